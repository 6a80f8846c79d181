"""Qdrant as a cluster (issue 17): several node URLs, node loss, shard-level partial failures.

The Qdrant test server runs in cluster mode (3 nodes sharing one store, shards placed on nodes,
writes whose shards are on a down node answering Qdrant's real 500 `1 out of 3 shards failed to
apply operation`, with the healthy shards applied). `[qdrant] url` lists the three nodes.

- test_node_loss_default_settings: `apply` creates the collection on the 3-node cluster with the
  cluster default (replication_factor 2, logged); a node dies under insert/update/delete load
  and comes back: zero dead letters, no attempt used, no write failed, exact final state.
- test_node_loss_single_replica: the collection has one replica per shard (created before, or
  `replication_factor = 1` chosen): while a node is down, writes to its shards fail with the
  shard-level 500 (the healthy shards applied, the whole batch re-sent later): the collection's
  breaker opens and probes with a write reaching every shard, nothing burns an attempt, nothing
  is dead-lettered, and the backlog drains within seconds of the node's return (printed).
  apply and check warn about the single replica.
- test_first_node_dies_failover: the first URL's node stops like on SIGTERM (open connections
  served for a grace, new ones refused, then reset) under load: events keep flowing through
  the other nodes meanwhile (rows written during the outage arrive during it), /readyz stays
  200 naming the node skipped, /status and /metrics report each node; exact final state.

Settings: the shipped defaults for everything the guarantee depends on (max_attempts 10,
retry_min 1s, retry_max 5m, breaker_threshold 5, breaker_max 30s, qdrant timeout 30s,
connect_timeout 5s, sweep_interval 30s). Only the fault window is shortened (P2Q_FAULT_S,
default 20 s; the issue's scenario is 5 minutes: P2Q_FAULT_S=300) — never the settings.
"""
import json
import os
import threading
import time
import urllib.request

import psycopg
import pytest

from conftest import Daemon, free_port, outbox_counts, wait_until
from tests.qdrant_server.client import QdrantStub

DIM = 4
FAULT_S = float(os.environ.get("P2Q_FAULT_S", "20"))
SHIPPED = {"sweep_interval": "30s", "retry_min": "1s", "retry_max": "5m", "breaker_max": "30s",
           "breaker_threshold": "5", "max_attempts": "10", "shutdown_timeout": "10s"}


@pytest.fixture
def cluster():
    q = QdrantStub.start(nodes=3)
    try:
        yield q
    finally:
        q.stop()


@pytest.fixture
def docs(db):
    db.execute("CREATE TABLE docs (id int PRIMARY KEY, n int NOT NULL DEFAULT 0, emb real[] NOT NULL)")
    return db


def vec(i, n):
    return [float(i % 7) + 1.0, float(n % 5), 1.0, 0.5]


def config(http_port=None, **rule):
    sections = {"qdrant": {"timeout": "30s", "connect_timeout": "5s"}, "daemon": dict(SHIPPED),
                "rule.docs": dict({"table": "public.docs", "key": "id", "columns": "id, n",
                                   "vector_column": "emb", "dimension": str(DIM), "distance": "Dot",
                                   "collection": "docs"}, **rule)}
    if http_port:
        sections["http"] = {"listen": f"127.0.0.1:{http_port}"}
    return sections


class Writer(threading.Thread):
    """Inserts, updates and deletes rows of docs until stopped; remembers what it wrote when."""

    def __init__(self, dbname, ids=200):
        super().__init__(daemon=True)
        self.dbname, self.ids = dbname, ids
        self.stop_flag = threading.Event()
        self.rounds = 0
        self.error = None

    def run(self):
        try:
            with psycopg.connect(dbname=self.dbname, autocommit=True) as c:
                while not self.stop_flag.is_set():
                    self.rounds += 1
                    r = self.rounds
                    with c.transaction():
                        for k in range(10):
                            i = (r * 13 + k * 17) % self.ids
                            if (r + k) % 9 == 0:
                                c.execute("DELETE FROM docs WHERE id = %s", (i,))
                            else:
                                c.execute("INSERT INTO docs (id, n, emb) VALUES (%s, %s, %s) ON CONFLICT (id)"
                                          " DO UPDATE SET n = EXCLUDED.n, emb = EXCLUDED.emb", (i, r, vec(i, r)))
                    time.sleep(0.05)
        except Exception as e:  # surfaced by the test
            self.error = e


class Sampler(threading.Thread):
    """max(attempts) in the outbox, every 200 ms."""

    def __init__(self, dbname):
        super().__init__(daemon=True)
        self.dbname, self.max_attempts, self.samples = dbname, 0, 0
        self.stop_flag = threading.Event()

    def run(self):
        with psycopg.connect(dbname=self.dbname, autocommit=True) as c:
            while not self.stop_flag.is_set():
                a = c.execute("SELECT COALESCE(max(attempts), 0) FROM sync_outbox").fetchone()[0]
                self.max_attempts = max(self.max_attempts, a)
                self.samples += 1
                time.sleep(0.2)


def expected(db):
    return {r[0]: ({"id": r[0], "n": r[1]}, vec(r[0], r[1]))
            for r in db.execute("SELECT id, n FROM docs").fetchall()}


def actual(cluster):
    out = {}
    for p in cluster.points("docs"):
        pl = {k: v for k, v in p["payload"].items() if not k.startswith("_")}
        out[p["id"]] = (pl, [float(x) for x in p["vector"]])
    return out


def make(tmp_path, pgdb, cluster, sections):
    return Daemon(tmp_path, pgdb, cluster.cluster_url, sections)


def drained(db):
    return outbox_counts(db) == (0, 0)


def run_load(d, docs, pgdb, cluster, fault, restore, during=None):
    """Start the daemon, write under load, apply `fault` for FAULT_S, `restore`, stop writing;
    returns (writer, sampler, seconds from restore to drained)."""
    p = d.start()
    wait_until(lambda: "worker_connected" in d.log_text(p), what="daemon up")
    writer, sampler = Writer(pgdb), Sampler(pgdb)
    writer.start()
    sampler.start()
    time.sleep(2)
    fault()
    t0 = time.monotonic()
    while time.monotonic() - t0 < FAULT_S:
        if during:
            during(time.monotonic() - t0)
        time.sleep(0.5)
    writer.stop_flag.set()
    writer.join(10)
    restore()
    t_restore = time.monotonic()
    wait_until(lambda: drained(docs), timeout=90, what="backlog drained after the node came back",
               explain=lambda: f"outbox {outbox_counts(docs)}")
    drain_s = time.monotonic() - t_restore
    sampler.stop_flag.set()
    sampler.join(5)
    assert writer.error is None, writer.error
    return p, writer, sampler, drain_s


def test_node_loss_default_settings(tmp_path, pgdb, docs, cluster):
    d = make(tmp_path, pgdb, cluster, config())
    r = d.cli("apply")
    assert "collection docs: created" in r.stdout
    assert "event=qdrant_cluster_default" in r.stderr and "replication_factor=2" in r.stderr, r.stderr
    assert cluster.cluster()["collections"]["docs__v1"]["replication_factor"] == 2
    cluster.clear_log()
    p, writer, sampler, drain_s = run_load(d, docs, pgdb, cluster, lambda: cluster.node_down(2),
                                           lambda: cluster.node_up(2))
    log = cluster.log()
    failed = [e for e in log if e["status"] != 200 and "/points" in e["path"]]
    print(f"\ndefault settings, node 2 down {FAULT_S:.0f}s: writer rounds {writer.rounds}, writes {len(log)}, "
          f"failed writes {len(failed)}, max attempts {sampler.max_attempts} over {sampler.samples} samples, "
          f"drained {drain_s:.1f}s after the node's return")
    assert failed == []                          # two replicas: losing a node costs nothing
    assert outbox_counts(docs) == (0, 0)         # zero dead letters
    assert sampler.max_attempts <= 1
    assert actual(cluster) == expected(docs)
    assert "event=qdrant_node_down" in d.log_text(p)   # seen by the background probes
    wait_until(lambda: "event=qdrant_node_up" in d.log_text(p), timeout=60, what="node 2 seen back")
    assert "breaker_open" not in d.log_text(p)
    assert d.stop(p) == 0                        # clean exit (ASan: no leak)


def test_node_loss_single_replica(tmp_path, pgdb, docs, cluster):
    # the collection: created by an older pg2qdrant with Qdrant's default (1 replica)
    status, body = cluster.call_node(0, "PUT", "/collections/docs", {"vectors": {"size": DIM, "distance": "Dot"}})
    assert status == 200, body
    d = make(tmp_path, pgdb, cluster, config())
    r = d.cli("apply")
    assert "warning: collection docs has one replica per shard on a 3-node Qdrant cluster" in r.stdout, r.stdout
    r = d.cli("check", "--json", check=False)
    checks = {c["check"]: c for c in json.loads(r.stdout)["checks"]}
    assert checks["collection.docs.replicas"]["status"] == "warn"
    assert checks["qdrant.cluster"]["status"] == "ok" and "3-node cluster, 3 nodes" in checks["qdrant.cluster"]["message"]
    cluster.clear_log()
    p, writer, sampler, drain_s = run_load(d, docs, pgdb, cluster, lambda: cluster.node_down(2),
                                           lambda: cluster.node_up(2))
    log = cluster.log()
    shard_500 = [e for e in log if e["fault"] == "shards"]
    print(f"\none replica, node 2 down {FAULT_S:.0f}s: writer rounds {writer.rounds}, requests {len(log)}, "
          f"answered '1 out of 3 shards failed' {len(shard_500)}, max attempts {sampler.max_attempts} over "
          f"{sampler.samples} samples, drained {drain_s:.1f}s after the node's return")
    assert shard_500, "the partial failure was never hit"
    assert all(e["status"] == 500 for e in shard_500)
    assert outbox_counts(docs) == (0, 0)         # zero dead letters
    assert sampler.max_attempts <= 1             # no attempt used
    assert actual(cluster) == expected(docs)     # exact, although batches were partly applied
    assert drain_s < 15, f"drained {drain_s:.1f}s after the node came back"
    text = d.log_text(p)
    assert "target=collection:docs" in text and "event=breaker_open" in text
    assert "shards failed to apply operation" in text
    probes = [e for e in log if e["path"].endswith("/points/delete") and e["points"] is None]
    assert probes, "the collection was never probed with a write reaching every shard"
    assert d.stop(p) == 0                        # clean exit (ASan: no leak)


def get(port, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
        return r.status, r.read().decode()


def test_first_node_dies_failover(tmp_path, pgdb, docs, cluster):
    port = free_port()
    d = make(tmp_path, pgdb, cluster, config(http_port=port))
    d.cli("apply")
    cluster.clear_log()
    seen = {"flowing": False, "readyz": None}

    def during(t):
        if t < 6 or seen["flowing"]:
            return
        # a row written now arrives while node 0 is still down
        with psycopg.connect(dbname=pgdb, autocommit=True) as c:
            c.execute("INSERT INTO docs (id, n, emb) VALUES (9999, 1, %s) ON CONFLICT (id) DO UPDATE SET n = 1",
                      (vec(9999, 1),))
        wait_until(lambda: any(p["id"] == 9999 for p in cluster.points("docs")), timeout=10,
                   what="a row written during the outage arrives")
        seen["flowing"] = True
        seen["readyz"] = get(port, "/readyz")
        seen["status"] = json.loads(get(port, "/status")[1])
        seen["metrics"] = get(port, "/metrics")[1]

    p, writer, sampler, drain_s = run_load(d, docs, pgdb, cluster, lambda: cluster.node_stop(0, grace=3),
                                           lambda: cluster.node_up(0), during)
    log = cluster.log()
    by_node = {n: sum(1 for e in log if e["node"] == n and "/points" in e["path"]) for n in range(3)}
    print(f"\nfirst node stopped (grace 3 s) for {FAULT_S:.0f}s: writes per node {by_node}, "
          f"max attempts {sampler.max_attempts}, drained {drain_s:.1f}s after its return")
    assert seen["flowing"]
    status, body = seen["readyz"]
    assert status == 200 and body.startswith("ready\n"), body
    assert f"degraded: node:{cluster.urls[0]} down, skipped" in body, body
    targets = {t["name"]: t for t in seen["status"]["targets"]}
    assert targets[f"node:{cluster.urls[0]}"]["state"] == "open"
    assert targets[f"node:{cluster.urls[1]}"]["state"] == "closed"
    assert f'pg2qdrant_qdrant_node_up{{node="{cluster.urls[0]}"}} 0' in seen["metrics"]
    assert f'pg2qdrant_qdrant_node_up{{node="{cluster.urls[1]}"}} 1' in seen["metrics"]
    assert by_node[1] > 0                        # the second node took the traffic
    assert outbox_counts(docs) == (0, 0)
    assert sampler.max_attempts <= 1
    assert actual(cluster) == expected(docs)
    assert "event=qdrant_node_down" in d.log_text(p)
    wait_until(lambda: "event=qdrant_node_up" in d.log_text(p), timeout=60, what="node 0 seen back")
    assert "target=collection:docs" not in d.log_text(p)  # a node's failure is not the collection's
    refused = [ln for ln in d.log_text(p).splitlines() if "qdrant_write_failed" in ln and "connect" in ln]
    assert refused == [], refused[:3]            # a refusal goes to the next node, never to a worker
    wait_until(lambda: get(port, "/readyz") == (200, "ready\n"), what="node 0 back in readiness")
    assert d.stop(p) == 0                        # clean exit (ASan: no leak)

"""Failures of the outside world cost time, never data (issue 9): the failure matrix.

One daemon, one worker, one table, eleven rules: each rule writes its own rows (by `mode`) to its
own collection. Ten collections get one fault each on their point writes only — `GET /readyz`,
collection info and every other collection stay healthy, as with one overloaded collection, a
proxy, a rate limiter or a rotated key — and one collection (`ok`) gets none:

  503, 500, 429 (Retry-After 1), 413 (a proxy's body limit: only bodies of several points),
  401, 404 (Qdrant's `Collection … doesn't exist!`), 307 (a redirect, not followed), TCP resets
  after the write was applied, 200 with an error envelope (`{"status":{"error":…},"result":null}`),
  200 with a proxy's HTML page.

While the faults last, rows of every mode are inserted, updated and deleted. Then: zero dead
letters, no attempt ever used (max(attempts) ≤ 1 in every sample: attempts are counted at the
claim and given back on requeue), the healthy collection keeps flowing during the faults, every
backlog drains after them, and each collection ends exactly equal to its rows in PostgreSQL.

Settings: the shipped defaults for everything the guarantee depends on (max_attempts 10,
retry_min 1s, retry_max 5m, breaker_threshold 5, breaker_max 30s, qdrant timeout 30s,
sweep_interval 30s). To keep CI short the fault window is shortened (FAULT_S, default 20 s; the
issue's scenario is 5 minutes: set P2Q_FAULT_S=300 to run it) — never the settings. Figures per
mode (dead letters, max attempts, requests answered with the fault, drain time after the window)
are printed (pytest -s) for the closing note.
"""
import os
import threading
import time

import psycopg
import pytest

from conftest import outbox_counts, points_by_id, wait_until

DIM = 4
FAULT_S = float(os.environ.get("P2Q_FAULT_S", "20"))
ROWS = 12  # per mode at the start

ENVELOPE = {"status": {"error": "boom: injected error envelope"}, "result": None}

# mode -> how to inject its fault (qdrant client, collection, seconds)
MODES = {
    "m503": lambda q, c, s: q.fail(503, seconds=s, writes=True, collection=c),
    "m500": lambda q, c, s: q.fail(500, seconds=s, writes=True, collection=c),
    "m429": lambda q, c, s: q.fail(429, seconds=s, writes=True, collection=c, retry_after=1),
    "m413": lambda q, c, s: q.fail(413, seconds=s, writes=True, collection=c, min_body=400, html=True),
    "m401": lambda q, c, s: q.fail(401, seconds=s, writes=True, collection=c),
    "m404": lambda q, c, s: q.fail(404, seconds=s, writes=True, collection=c),
    "m307": lambda q, c, s: q.fail(307, seconds=s, writes=True, collection=c,
                                   location="http://user:secret@elsewhere:6333/", body=""),
    "mreset": lambda q, c, s: q.reset_connection(seconds=s, writes=True, collection=c),
    "menv": lambda q, c, s: q.fail(200, seconds=s, writes=True, collection=c, json=ENVELOPE),
    "mhtml": lambda q, c, s: q.fail(200, seconds=s, writes=True, collection=c, html=True),
}
HEALTHY = "ok"
ALL = list(MODES) + [HEALTHY]

SHIPPED = {"sweep_interval": "30s", "retry_min": "1s", "retry_max": "5m", "breaker_max": "30s",
           "breaker_threshold": "5", "max_attempts": "10", "shutdown_timeout": "10s"}


def vec(i, n):
    return [float(i % 7) + 1.0, float(n % 5), 1.0, 0.5]


def config():
    sections = {"qdrant": {"timeout": "30s", "connect_timeout": "5s"}, "daemon": dict(SHIPPED),
                "worker.w1": {"event_types": ", ".join(ALL)}}
    for m in ALL:
        sections[f"rule.{m}"] = {"table": "public.ev", "key": "id", "columns": "id, mode, n",
                                 "vector_column": "emb", "dimension": str(DIM), "distance": "Dot",
                                 "collection": m, "filter": f"mode = '{m}'"}
    return sections


def expected(db, mode):
    return {r[0]: ({"id": r[0], "mode": mode, "n": r[1]}, vec(r[0], r[1]))
            for r in db.execute("SELECT id, n FROM ev WHERE mode = %s", (mode,)).fetchall()}


def actual(qdrant, mode):
    return {pid: (p["payload"], [float(x) for x in p["vector"]])
            for pid, p in points_by_id(qdrant, mode).items()}


def pending(db, mode):
    return db.execute("SELECT count(*) FROM sync_outbox WHERE event_type = %s", (mode,)).fetchone()[0]


class Sampler(threading.Thread):
    """max(attempts) of the outbox, sampled every 200 ms until stopped."""

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


@pytest.fixture
def ev(db):
    db.execute("CREATE TABLE ev (id int PRIMARY KEY, mode text NOT NULL, n int NOT NULL DEFAULT 0,"
               " emb real[] NOT NULL)")
    return db


def test_failure_matrix_costs_time_not_data(make_daemon, ev, pgdb, qdrant):
    d = make_daemon(config())
    d.cli("apply")
    p = d.start()
    wait_until(lambda: "worker_connected" in d.log_text(p), what="daemon up")
    qdrant.clear_log()
    sampler = Sampler(pgdb)
    sampler.start()
    t0 = time.monotonic()
    for i, m in enumerate(MODES):
        MODES[m](qdrant, m, FAULT_S)

    def write(mode, base, k, n):
        ev.execute("INSERT INTO ev (id, mode, n, emb) VALUES (%s, %s, %s, %s) ON CONFLICT (id) DO UPDATE"
                   " SET n = EXCLUDED.n, emb = EXCLUDED.emb", (base + k, mode, n, vec(base + k, n)))

    # traffic on every mode while the faults last: inserts, then updates and deletes
    bases = {m: 1000 * (i + 1) for i, m in enumerate(ALL)}
    with ev.transaction():  # one commit: big batches, so the 413 (bodies of several points) is hit
        for m in ALL:
            for k in range(ROWS):
                write(m, bases[m], k, 0)
    healthy_latency = []
    rnd = 0
    # a round (its writes, then the healthy row's wait of up to 5 s, then 1 s) must end inside the
    # window: on a loaded machine the healthy wait alone can take seconds, so a round starts only
    # while the window has room for one as slow as the slowest so far
    while time.monotonic() - t0 + max(healthy_latency, default=0.0) < FAULT_S - 4:
        rnd += 1
        for m in MODES:
            write(m, bases[m], rnd % ROWS, rnd)                      # update
            write(m, bases[m], ROWS + rnd, rnd)                      # insert
            ev.execute("DELETE FROM ev WHERE id = %s", (bases[m] + (rnd * 5) % ROWS,))
        # the healthy collection flows meanwhile: one new row, timed until Qdrant has it
        hid = bases[HEALTHY] + ROWS + rnd
        ts = time.monotonic()
        write(HEALTHY, bases[HEALTHY], ROWS + rnd, rnd)
        wait_until(lambda: hid in points_by_id(qdrant, HEALTHY), timeout=5, interval=0.01,
                   what="a healthy-collection row synced during the faults")
        healthy_latency.append(time.monotonic() - ts)
        time.sleep(1.0)
    assert time.monotonic() - t0 < FAULT_S, "the traffic outlived the fault window: raise P2Q_FAULT_S"
    log_during = qdrant.log()
    # faults end; every backlog drains (each collection timed from the window's end)
    drained = {}
    end = t0 + FAULT_S
    while time.monotonic() < end:
        time.sleep(0.1)
    deadline = end + 150
    while len(drained) < len(ALL) and time.monotonic() < deadline:
        for m in ALL:
            if m not in drained and pending(ev, m) == 0 and expected(ev, m) == actual(qdrant, m):
                drained[m] = max(0.0, time.monotonic() - end)
        time.sleep(0.2)
    sampler.stop_flag.set()
    sampler.join()
    faulted = {m: sum(1 for e in log_during if e.get("fault") and e.get("collection") == m) for m in MODES}
    figures = {m: {"faulted_requests": faulted.get(m, 0), "drain_s": round(drained[m], 1) if m in drained else None}
               for m in ALL}
    print(f"\nfailure matrix (fault window {FAULT_S:.0f} s, shipped defaults): max attempts seen "
          f"{sampler.max_attempts} in {sampler.samples} samples; dead letters {outbox_counts(ev)[1]}; "
          f"healthy collection write→Qdrant during the faults: max {max(healthy_latency) * 1000:.0f} ms over "
          f"{len(healthy_latency)} rows")
    for m, f in figures.items():
        print(f"  {m:7s} requests answered with the fault: {f['faulted_requests']:4d}   drained "
              f"{f['drain_s']} s after the window")
    assert not [m for m in ALL if m not in drained], \
        f"not drained: {[m for m in ALL if m not in drained]}\n{d.log_text(p)[-3000:]}"
    assert outbox_counts(ev) == (0, 0), "an event was dead-lettered"
    assert sampler.max_attempts <= 1, f"an attempt was used: max(attempts) = {sampler.max_attempts}"
    for m in MODES:  # every fault was really hit (the matrix tests what it claims)
        assert faulted[m] > 0, f"{m}: no request answered with the fault"
    for m in ALL:    # exact final state, per collection
        assert expected(ev, m) == actual(qdrant, m), m
    text = d.log_text(p)
    assert "breaker_open target=collection:m503" in text
    assert "reason=config alarm=1" in text and "reason=missing alarm=1" in text
    assert "rate_limited target=collection:m429" in text
    assert "breaker_open target=qdrant " not in text, "a collection's faults stopped the whole host"
    assert d.stop(p) == 0


def test_429_storm_one_pause_for_every_worker(make_daemon, ev, pgdb, qdrant):
    """429s with Retry-After (seconds, then an HTTP date in 2037 and an absurd number): two
    workers writing to one collection pause together for Retry-After — no request from either
    arrives inside a pause another request's 429 started —, no attempt is used, nothing is
    parked beyond retry_max (shipped: 5 min), and the backlog drains once the storm ends."""
    sections = {"qdrant": {"timeout": "30s", "connect_timeout": "5s"}, "daemon": dict(SHIPPED),
                "worker.w1": {"event_types": "ra", "max_inflight": "1", "batch_size": "4"},
                "worker.w2": {"event_types": "rb", "max_inflight": "1", "batch_size": "4"}}
    for m in ("ra", "rb"):
        sections[f"rule.{m}"] = {"table": "public.ev", "key": "id", "columns": "id, mode, n",
                                 "vector_column": "emb", "dimension": str(DIM), "distance": "Dot",
                                 "collection": "shared", "event_type": m, "filter": f"mode = '{m}'"}
    d = make_daemon(sections)
    d.cli("apply")
    p = d.start()
    wait_until(lambda: d.log_text(p).count("worker_connected") >= 2, what="daemon up")
    storm_s, ra_s = 8, 2
    qdrant.clear_log()
    storm_from = time.time()  # (the server's clock: its log's ts; the storm starts when it gets this)
    qdrant.fail(429, seconds=storm_s, writes=True, collection="shared", retry_after=ra_s)
    sampler = Sampler(pgdb)
    sampler.start()
    for k in range(40):
        m = "ra" if k % 2 else "rb"
        ev.execute("INSERT INTO ev (id, mode, n, emb) VALUES (%s, %s, 0, %s)", (k, m, vec(k, 0)))
    time.sleep(storm_s)
    log = [e for e in qdrant.log() if e.get("collection") == "shared" and e["method"] in ("PUT", "POST")]
    limited = sorted(e["ts"] for e in log if e.get("status") == 429)
    starts = sorted(e["ts"] for e in log)
    assert len(limited) >= 2, "the storm was not hit"
    # a request already on the wire when a 429 comes back is fine (<= 0.3 s after it); none later
    # inside the pause, from either worker
    inside = [(t, s) for t in limited for s in starts if t + 0.3 < s < t + ra_s - 0.3]
    wait_until(lambda: outbox_counts(ev)[0] == 0, timeout=60, what="drained after the storm")
    sampler.stop_flag.set()
    sampler.join()
    print(f"\n429 storm {storm_s} s, Retry-After {ra_s} s, 2 workers: {len(starts)} writes, "
          f"{len(limited)} answered 429, requests inside a pause: {len(inside)}, max attempts "
          f"{sampler.max_attempts}, dead {outbox_counts(ev)[1]}")
    assert not inside, f"requests sent during a Retry-After pause: {inside[:5]}"
    # the limit across all workers, counted per second at the server during the storm: one shared
    # pause, then each worker's one batch (1 request: a 429 never splits) — never a burst. The
    # storm ends storm_s after it began, not after the first request: on a loaded machine that
    # request can come seconds later, and the window then took in the drain after the storm
    t0 = min(starts)
    per_s = {}
    for t in starts:
        if t < storm_from + storm_s:
            per_s[int(t - t0)] = per_s.get(int(t - t0), 0) + 1
    print(f"requests per second during the storm: {[per_s.get(i, 0) for i in range(storm_s)]}")
    assert max(per_s.values()) <= 2 * 2, per_s  # workers x max_inflight, twice (a pause may end mid-second)
    assert len(limited) <= (storm_s / ra_s + 1) * 2
    assert sampler.max_attempts <= 1 and outbox_counts(ev) == (0, 0)
    assert sorted(points_by_id(qdrant, "shared")) == list(range(40))
    # absurd Retry-After values: paused, never beyond retry_max (5 min), no attempt used
    for ra in ("Wed, 21 Oct 2037 07:28:00 GMT", "99999999999"):
        qdrant.fail(429, count=1, writes=True, collection="shared", retry_after=ra)
    for k in range(40, 44):
        ev.execute("INSERT INTO ev (id, mode, n, emb) VALUES (%s, 'ra', 0, %s)", (k, vec(k, 0)))
    wait_until(lambda: "rate_limited target=collection:shared hold_ms=300000" in d.log_text(p),
               what="the 2037 date capped at retry_max", explain=lambda: d.log_text(p)[-2000:])
    wait_until(lambda: ev.execute("SELECT count(*) FROM sync_outbox WHERE claimed_by IS NULL").fetchone()[0] == 4,
               what="the events given back")
    parked = ev.execute("SELECT max(extract(epoch FROM available_at - now())), max(attempts)"
                        " FROM sync_outbox").fetchone()
    print(f"absurd Retry-After: parked at most {parked[0]:.0f} s, max attempts {parked[1]}")
    assert parked[0] <= 300 + 1 and parked[1] == 0
    assert d.stop(p) == 0

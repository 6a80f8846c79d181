"""Source-table DDL and `apply` while the daemon runs under application write load.

What the README's "Schema changes on a source table" table promises, end to end: application
writes never fail (every statement of the writer threads succeeds), drift is reported where it
says, and Qdrant ends in the state it describes. Also: `apply` on a table under concurrent writes
ends exact (no gap, no older snapshot winning), since it no longer locks the table.
"""
import random
import threading

import psycopg
import pytest

from conftest import outbox_counts, points_by_id, wait_until


def rule(**kw):
    r = {"table": "public.docs", "key": "id", "columns": "id, title, n, extra", "vector_column": "emb",
         "dimension": "3", "distance": "Dot", "collection": "docs"}
    r.update(kw)
    return r


@pytest.fixture
def docs(db):
    # the writers name only id and n: an application adapted to the DDL below never names a
    # column it drops; every error they see comes from pg2qdrant
    db.execute("CREATE TABLE docs (id bigint PRIMARY KEY, title text DEFAULT 'T', n int NOT NULL DEFAULT 0,"
               " extra text DEFAULT 'x', emb real[] DEFAULT '{1,2,3}')")
    return db


class Writers:
    """Application writers on ids 1..ids: upsert (insert, or update n to a never-repeated value)
    and delete, autocommit, own connections. Every exception is recorded as a write error."""

    def __init__(self, dbname, threads=2, ids=120):
        self.dbname, self.threads, self.ids = dbname, threads, ids
        self.errors, self.upserts, self.deletes = [], 0, 0
        self.counter = 1000
        self.lock = threading.Lock()
        self.stop_ev = threading.Event()
        self.pool = []

    def _run(self, seed):
        rnd = random.Random(seed)
        with psycopg.connect(dbname=self.dbname, autocommit=True) as c:
            while not self.stop_ev.is_set():
                i = rnd.randint(1, self.ids)
                with self.lock:
                    self.counter += 1
                    n = self.counter
                try:
                    if rnd.random() < 0.15:
                        cur = c.execute("DELETE FROM docs WHERE id = %s", (i,))
                        with self.lock:
                            self.deletes += cur.rowcount
                    else:
                        c.execute("INSERT INTO docs (id, n) VALUES (%s, %s) ON CONFLICT (id) DO UPDATE SET n = EXCLUDED.n",
                                  (i, n))
                        with self.lock:
                            self.upserts += 1
                except Exception as e:  # noqa: BLE001 — any failure is the finding
                    self.errors.append(repr(e))

    def start(self):
        self.stop_ev.clear()
        self.upserts = self.deletes = 0
        self.pool = [threading.Thread(target=self._run, args=(k + random.random(),), daemon=True)
                     for k in range(self.threads)]
        for t in self.pool:
            t.start()

    def pause(self):
        self.stop_ev.set()
        for t in self.pool:
            t.join(timeout=30)


def run_for(writers, seconds=1.0):
    writers.start()
    threading.Event().wait(seconds)
    writers.pause()


def expected(db, cols):
    """{id: payload} of the rows: the rule's listed columns that still exist, by name."""
    out = {}
    for (row,) in db.execute("SELECT row_to_json(d) FROM docs d"):
        out[row["id"]] = {k: v for k, v in row.items() if k in cols}
    return out


def actual(qdrant):
    return {pid: p["payload"] for pid, p in points_by_id(qdrant, "docs").items()}


def drained(db):
    return outbox_counts(db)[0] == 0


def test_ddl_under_write_load(make_daemon, docs, qdrant, pgdb):
    docs.execute("INSERT INTO docs (id, n) SELECT g, g FROM generate_series(1, 60) g")
    d = make_daemon({"rule.docs": rule()})
    d.cli("apply")
    d.start()
    w = Writers(pgdb)
    run_for(w, 0.5)
    cols = ["id", "title", "n", "extra"]
    wait_until(lambda: drained(docs) and actual(qdrant) == expected(docs, cols), what="initial sync")

    # payload columns: drop, rename, type change, add (columns listed: an added column is not captured)
    w.start()
    for ddl in ["ALTER TABLE docs DROP COLUMN extra", "ALTER TABLE docs RENAME COLUMN title TO headline",
                "ALTER TABLE docs ALTER COLUMN n TYPE text", "ALTER TABLE docs ADD COLUMN added int DEFAULT 5"]:
        threading.Event().wait(0.4)
        docs.execute(ddl)
    threading.Event().wait(0.4)
    w.pause()
    assert w.errors == []
    wait_until(lambda: drained(docs), what="outbox drained")
    assert outbox_counts(docs) == (0, 0)
    # the drift, as the README says: the drift function, and apply (which then reloads every row)
    assert docs.execute("SELECT item, used_as, breaks FROM p2q_drift_docs() ORDER BY 1").fetchall() == [
        ("extra", "columns", False), ("title", "columns", False)]
    r = d.cli("apply")
    assert 'rule docs: drift: column "extra"' in r.stderr and 'rule docs: drift: column "title"' in r.stderr
    assert "table changed since the last apply" in r.stdout
    cols = ["id", "n"]
    wait_until(lambda: drained(docs) and actual(qdrant) == expected(docs, cols),
               what="Qdrant = the rows' existing listed columns", explain=lambda: f"{actual(qdrant)}")
    assert all(isinstance(p["n"], str) for p in actual(qdrant).values())   # the new type's JSON

    # the vector column: refused by the DDL guard (apply ran as a superuser), naming the rule
    with pytest.raises(psycopg.errors.RaiseException, match=r'rule docs needs vector_column "emb"'):
        docs.execute("ALTER TABLE docs DROP COLUMN emb")
    # let through on purpose: writes go on, upserts are born dead with the reason, deletes apply
    before = actual(qdrant)
    with psycopg.connect(dbname=pgdb, autocommit=True) as c:
        c.execute("SET pg2qdrant.allow_ddl = on")
        c.execute("ALTER TABLE docs DROP COLUMN emb")
    run_for(w, 1.0)
    assert w.errors == []
    assert w.upserts > 0 and w.deletes > 0
    wait_until(lambda: drained(docs), what="born-dead events swept into the dead letters")
    dead = docs.execute("SELECT op, last_error FROM sync_outbox_dead").fetchall()
    assert len(dead) == w.upserts
    assert {op for op, _ in dead} == {"upsert"}
    assert all("vector column (emb) is no longer in public.docs" in e for _, e in dead)
    after, rows = actual(qdrant), {r[0] for r in docs.execute("SELECT id FROM docs")}
    assert set(after) <= rows                                   # deletes were applied
    assert all(after[i] == before[i] for i in after)            # no point rewritten without its vector
    r = d.cli("apply", check=False)
    assert r.returncode == 1 and 'column "emb" (its vector_column)' in r.stderr
    assert docs.execute("SELECT item, used_as, breaks FROM p2q_drift_docs() ORDER BY 1").fetchall() == [
        ("emb", "vector_column", True), ("extra", "columns", False), ("title", "columns", False)]
    assert d.stop(d.procs[0]) == 0


def test_without_the_guard_writes_go_on_and_events_are_dead_lettered(make_daemon, docs, pgdb):
    """apply run by a role that is not a superuser: no DDL guard; dropping the vector column is
    not refused, writes go on, the rule's upserts end in the dead letters with the reason."""
    role = "p2q_owner_" + pgdb[-6:]
    docs.execute(f'CREATE ROLE "{role}" LOGIN')
    docs.execute(f'GRANT CREATE ON DATABASE "{pgdb}" TO "{role}"')
    docs.execute(f'GRANT CREATE ON SCHEMA public TO "{role}"')
    docs.execute(f'ALTER TABLE docs OWNER TO "{role}"')
    try:
        d = make_daemon({"rule.docs": rule()})
        env = dict(d.env, PGUSER=role)
        d.cli("init", env=env)
        out = d.cli("apply", env=env).stdout
        assert "ddl guard: not installed" in out
        docs.execute("ALTER TABLE docs DROP COLUMN emb")            # not refused
        docs.execute("INSERT INTO docs (id, n) VALUES (1, 1)")        # the write goes on
        docs.execute("DELETE FROM docs WHERE id = 1")
        docs.execute("SELECT sync_outbox_recover(0)")                 # what the daemon's sweep runs
        assert docs.execute("SELECT op, last_error FROM sync_outbox_dead").fetchall() == [
            ("upsert", "rule docs: its vector column (emb) is no longer in public.docs (dropped or renamed)")]
        assert docs.execute("SELECT op, max_attempts FROM sync_outbox").fetchall() == [("delete", 10)]
    finally:
        docs.execute(f'ALTER TABLE docs OWNER TO CURRENT_USER')
        docs.execute(f'DROP OWNED BY "{role}" CASCADE')
        docs.execute(f'DROP ROLE "{role}"')


def test_apply_under_concurrent_writes_is_exact(make_daemon, docs, qdrant, pgdb):
    """apply loads 3,000 rows in chunks of 100 while writers insert, update and delete: the
    final Qdrant state equals the table exactly (no gap, no older snapshot overtaking)."""
    docs.execute("INSERT INTO docs (id, n) SELECT g, g FROM generate_series(1, 3000) g")
    d = make_daemon({"rule.docs": rule(columns="id, n")})
    d.cli("init")
    d.start()
    w = Writers(pgdb, threads=3, ids=3200)
    w.start()
    try:
        out = d.cli("apply", "--chunk", "100").stdout
    finally:
        threading.Event().wait(0.3)
        w.pause()
    assert w.errors == []
    assert "existing row(s) enqueued in" in out
    wait_until(lambda: drained(docs) and actual(qdrant) == expected(docs, ["id", "n"]), timeout=60,
               what="Qdrant equal to the table",
               explain=lambda: f"{len(actual(qdrant))} points, {len(expected(docs, ['id', 'n']))} rows")
    assert outbox_counts(docs) == (0, 0)
    assert d.stop(d.procs[0]) == 0


@pytest.mark.daemon_role
def test_daemon_reports_drift(make_daemon, docs, qdrant, pgdb):
    """The running daemon reports drift (README "Schema changes on a source table"): a dropped
    payload column is a WARN log line naming rule and column, a pg2qdrant_rule_drift series, a
    /status entry and a line in /readyz's 200 body; a dropped vector column makes the rule
    impossible: /readyz 503 naming the rule and column. Checked on the sweep (1 s here), as the
    daemon's own role (conf/roles.sql grants)."""
    import json
    import socket
    import urllib.error
    import urllib.request

    def get(path):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()
        except OSError as e:  # not listening yet
            return None, str(e)

    def drift_series():
        return sorted(line for line in get("/metrics")[1].splitlines() if line.startswith("pg2qdrant_rule_drift{"))

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    docs.execute("INSERT INTO docs (id, n) SELECT g, g FROM generate_series(1, 5) g")
    d = make_daemon({"rule.docs": rule(), "http": {"listen": f"127.0.0.1:{port}"}})
    d.cli("apply")
    p = d.start()
    wait_until(lambda: get("/readyz") == (200, "ready\n"), what="ready, no drift", explain=lambda: get("/readyz"))
    assert json.loads(get("/status")[1])["drift"] == [] and drift_series() == []

    docs.execute("ALTER TABLE docs DROP COLUMN extra")  # a payload column: reported, still ready
    line = 'drift: rule docs: column "extra" (columns) is not in public.docs: snapshots lack it\n'
    wait_until(lambda: get("/readyz") == (200, "ready\n" + line), what="/readyz 200 naming the column",
               explain=lambda: get("/readyz"))
    assert json.loads(get("/status")[1])["drift"] == [
        {"rule": "docs", "column": "extra", "used_as": "columns", "breaks": False,
         "message": line[len("drift: "):-1]}]
    assert drift_series() == ['pg2qdrant_rule_drift{rule="docs",column="extra",kind="columns"} 1']
    log = d.log_text(p)
    assert log.count("event=rule_drift ") == 1, log  # logged once, not on every sweep
    assert 'rule=docs column="extra" used_as="columns" breaks=0' in log, log

    with psycopg.connect(dbname=pgdb, autocommit=True) as c:  # the vector column: the rule is impossible
        c.execute("SET pg2qdrant.allow_ddl = on")
        c.execute("ALTER TABLE docs DROP COLUMN emb")
    vline = 'drift: rule docs: column "emb" (vector_column) is not in public.docs: its events are dead-lettered\n'
    st, body = wait_until(lambda: (lambda r: r if r[0] == 503 else None)(get("/readyz")),
                          what="/readyz 503", explain=lambda: get("/readyz"))
    assert body == vline, body  # the payload column is not a reason to be unready
    drift = json.loads(get("/status")[1])["drift"]
    assert {(x["column"], x["used_as"], x["breaks"]) for x in drift} == {("extra", "columns", False),
                                                                           ("emb", "vector_column", True)}
    assert drift_series() == ['pg2qdrant_rule_drift{rule="docs",column="emb",kind="vector_column"} 1',
                              'pg2qdrant_rule_drift{rule="docs",column="extra",kind="columns"} 1']
    assert 'rule=docs column="emb" used_as="vector_column" breaks=1' in d.log_text(p)

    # fixed: the column is back, the rule fits again (without "extra", reported until the rule changes)
    docs.execute("ALTER TABLE docs ADD COLUMN emb real[]")
    wait_until(lambda: get("/readyz") == (200, "ready\n" + line), what="ready again", explain=lambda: get("/readyz"))
    assert 'event=rule_drift_resolved' in d.log_text(p) and 'column="emb"' in d.log_text(p)
    assert d.stop(p) == 0

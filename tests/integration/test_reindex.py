"""Zero-downtime re-embedding (issue 12; README "Re-embedding without downtime").

A text rule's embedder changes (model m1 at 8 dimensions -> model m2 at 12: the openai_stub's
vectors are a function of the text and the dimension, so the two models' vectors differ) while a
writer keeps inserting and updating rows. Searches go through the alias `notes`; a monitor reads
it every ~20 ms (a scroll of the whole served collection with `_model`: stricter than one search,
and valid across the dimension change) and asserts: never an empty answer, never two models in one
answer, and the old model never again once the new one was seen. The end state is checked against
PostgreSQL: every row's point has the latest text embedded by m2 (vector = the stub's function of
the title at 12 dimensions), the alias serves notes__v2, notes__v1 is gone, no job is left.
Every setting the guarantee depends on runs at its shipped default (lease, batch sizes, sweep is
not involved: the executor ticks on its own 1 s timer); reindex_grace is shortened to 3 s only to
see the retirement: the guarantee does not depend on its length, because the alias moves to the
new version atomically and only after its backfill is done, and the old version is deleted only
after every live daemon process stopped writing it (sync_reindex_seen), whatever the grace.
"""
import json
import os
import random
import subprocess
import threading
import time
import urllib.request

import psycopg
import pytest

from conftest import free_port, outbox_counts, wait_until
from openai_stub import OpenAIStub, vector_for

ROWS = 300


def emb(model, dim, url):
    return {"type": "openai", "url": url, "model": model, "api_key_env": "P2Q_TEST_OPENAI_KEY",
            "dimensions": str(dim)}


class Monitor(threading.Thread):
    """Reads the alias every ~20 ms; records what it saw."""

    def __init__(self, qdrant, name="notes"):
        super().__init__(daemon=True)
        self.qdrant, self.name = qdrant, name
        self.stop_flag = threading.Event()
        self.seen = []          # (t, status, models, n)
        self.errors = []

    def run(self):
        while not self.stop_flag.is_set():
            t = time.monotonic()
            try:
                st, body = self.qdrant.call("POST", f"/collections/{self.name}/points/scroll",
                                            {"limit": 10000, "with_payload": ["_model"], "with_vector": False},
                                            timeout=10)
            except Exception as e:  # noqa: BLE001 (a transport error is recorded, not fatal here)
                self.errors.append(repr(e))
                continue
            if st == 200:
                pts = body["result"]["points"]
                self.seen.append((t, st, frozenset(p["payload"].get("_model") for p in pts), len(pts)))
            else:
                self.seen.append((t, st, frozenset(), 0))
            time.sleep(0.02)

    def check(self, old, new, allow_404=False):
        """Never empty, never mixed, never the old model after the new one; returns the longest run of
        non-200 answers in seconds (the legacy migration's window)."""
        new_seen, window, start = False, 0.0, None
        for t, st, models, n in self.seen:
            if st != 200:
                assert allow_404 and st == 404, f"monitor got HTTP {st}"
                start = start if start is not None else t
                continue
            if start is not None:
                window, start = max(window, t - start), None
            assert n > 0, "a search through the alias saw an empty collection"
            assert len(models) == 1, f"a search saw two models at once: {sorted(models)}"
            m = next(iter(models))
            assert m in (old, new), m
            if m == new:
                new_seen = True
            assert not (new_seen and m == old), "the old model came back after the new one"
        assert new_seen, "the monitor never saw the new model"
        return window


class Writer(threading.Thread):
    """Inserts and updates rows (~100 statements/s) until stopped."""

    def __init__(self, dbname):
        super().__init__(daemon=True)
        self.dbname = dbname
        self.stop_flag = threading.Event()
        self.error = None
        self.n = 0

    def run(self):
        try:
            with psycopg.connect(dbname=self.dbname, autocommit=True) as c:
                nxt = ROWS + 1
                while not self.stop_flag.is_set():
                    if random.random() < 0.3:
                        c.execute("INSERT INTO notes VALUES (%s, %s)", (nxt, f"new row {nxt}"))
                        nxt += 1
                    else:
                        i = random.randint(1, 100)  # rows 101.. are never touched: the lock test holds one
                        c.execute("UPDATE notes SET title = %s WHERE id = %s", (f"title {i} v{self.n}", i))
                    self.n += 1
                    time.sleep(0.01)
        except Exception as e:  # noqa: BLE001
            self.error = e


def phase(db):
    r = db.execute("SELECT phase, backfill_done FROM sync_reindex WHERE rule = 'notes'").fetchone()
    return r if r else (None, None)


def aliases(qdrant):
    return {a["alias_name"]: a["collection_name"] for a in qdrant.call("GET", "/aliases")[1]["result"]["aliases"]}


def collections(qdrant):
    return sorted(c["name"] for c in qdrant.call("GET", "/collections")[1]["result"]["collections"])


def check_end_state(d, db, qdrant, version):
    """Every row's point at the alias: the latest title embedded by m2 (12 dimensions)."""
    wait_until(lambda: outbox_counts(db) == (0, 0), timeout=60, what="outbox drained", explain=lambda: d.log_text()[-3000:])
    rows = dict(db.execute("SELECT id, title FROM notes").fetchall())
    pts = qdrant.scroll_all("notes", limit=1000, with_payload=True, with_vector=True)
    assert {p["id"] for p in pts} == set(rows)
    for p in pts:
        assert p["payload"]["_model"] == "openai/m2@12"
        assert p["payload"]["title"] == rows[p["id"]]
        want = vector_for(rows[p["id"]], 12)
        got = p["vector"]
        norm = sum(x * x for x in want) ** 0.5  # Cosine: Qdrant stores normalised vectors
        assert all(abs(a - b / norm) < 1e-4 for a, b in zip(got, want)), p["id"]
    assert aliases(qdrant) == {"notes": f"notes__v{version}"}
    assert collections(qdrant) == [f"notes__v{version}"]
    assert db.execute("SELECT count(*) FROM sync_reindex").fetchone()[0] == 0
    assert db.execute("SELECT version, signature LIKE 'model=openai/m2@12;%' FROM sync_reindex_rule").fetchone() == \
        (version, True)


def setup(make_daemon, db, qdrant, stub, legacy=False, http=None, grace="3s"):
    db.execute("CREATE TABLE notes (id int PRIMARY KEY, title text)")
    db.execute("INSERT INTO notes SELECT i, 'title ' || i FROM generate_series(1, %s) i" % ROWS)
    if legacy:  # a collection made before aliases: a real collection named like the rule's
        qdrant.create_collection("notes", size=8)
    d = make_daemon({"daemon": {"reindex_grace": grace}, "embedder.oa": emb("m1", 8, stub.url),
                     "rule.notes": {"table": "public.notes", "key": "id", "columns": "id, title", "text": "{title}",
                                    "embedder": "oa", "collection": "notes"},
                     "http": {"listen": f"127.0.0.1:{http}" if http else ""}})
    d.env["P2Q_TEST_OPENAI_KEY"] = "sk-test"
    out = d.cli("apply").stdout
    if not legacy:
        assert "collection notes: created as notes__v1 behind the alias notes" in out, out
        assert aliases(qdrant) == {"notes": "notes__v1"}
    else:
        assert aliases(qdrant) == {} and collections(qdrant) == ["notes"]
    p = d.start()
    wait_until(lambda: outbox_counts(db) == (0, 0) and qdrant.count("notes")[1]["result"]["count"] == ROWS,
               timeout=60, what="first sync", explain=lambda: d.log_text()[-3000:])
    return d, p


def change_model(d):
    d.path.write_text(d.path.read_text().replace("model = m1", "model = m2").replace("dimensions = 8", "dimensions = 12"))


@pytest.mark.parametrize("kill_at", [None, "dual", "backfill", "catch_up", "swapped", "grace"])
def test_reembedding_under_writes_never_mixes_models(make_daemon, db, pgdb, qdrant, kill_at):
    """The whole flow, with the daemon killed (-9) at one step and restarted: the same end state."""
    stub = OpenAIStub(dim=8, api_key="sk-test")
    mon, writer = Monitor(qdrant), Writer(pgdb)
    lock = None
    # killed after the swap, the job must still be in its grace when `reindex` below runs (it
    # waits for a running job; with none it starts the next version): the kill and the restart
    # took more than the 3 s grace under ASan on a loaded CI machine (the job was retired first,
    # and `reindex` made notes__v3)
    grace = "15s" if kill_at in ("swapped", "grace") else "3s"
    try:
        d, p = setup(make_daemon, db, qdrant, stub, grace=grace)
        mon.start()
        writer.start()
        time.sleep(0.5)
        change_model(d)
        if kill_at == "catch_up":  # writes to the new version slow: catch-up lasts
            qdrant.latency(300, path="notes__v2/points", count=20)
        out = d.cli("apply").stdout
        assert "reindex notes: started: notes__v1 -> notes__v2" in out, out
        assert "existing row(s) enqueued" not in out, out  # the job loads them, not apply too
        if kill_at == "backfill":  # the backfill's FOR SHARE waits for this row: the phase lasts
            lock = psycopg.connect(dbname=pgdb)
            lock.execute("SELECT 1 FROM notes WHERE id = 200 FOR UPDATE")
        # the running daemon has the old file: it keeps writing through the alias (old model) and
        # never says it writes dual, so nothing moves on until it is restarted with the new file
        time.sleep(1.5)
        assert phase(db)[0] == "dual"
        d.stop(p)
        p = d.start()
        if kill_at:
            wait_until(lambda: phase(db)[0] == kill_at or (kill_at == "grace" and phase(db)[0] == "swapped"),
                       timeout=60, interval=0.005, what=f"phase {kill_at}", explain=lambda: d.log_text()[-3000:])
            if kill_at == "grace":
                time.sleep(1.0)
            killed_in = phase(db)
            d.kill(p)
            if kill_at == "swapped":  # the old version is still there, the alias serves the new one
                assert aliases(qdrant) == {"notes": "notes__v2"} and "notes__v1" in collections(qdrant)
            if lock:
                lock.rollback()
                lock.close()
                lock = None
            print(f"killed in phase {killed_in}")
            p = d.start()
        r = subprocess.run([os.environ["P2Q_BIN"], "-c", str(d.path), "reindex", "notes"], env=d.env,
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "searches now read the new version" in r.stdout, r.stdout
        if kill_at not in ("swapped", "grace"):
            assert "backfilled" in r.stdout  # progress lines
        wait_until(lambda: phase(db)[0] is None, timeout=60, what="old version retired after the grace",
                   explain=lambda: d.log_text()[-3000:])
        writer.stop_flag.set()
        writer.join(10)
        assert writer.error is None, writer.error
        check_end_state(d, db, qdrant, 2)
        mon.stop_flag.set()
        mon.join(10)
        mon.check("openai/m1@8", "openai/m2@12")
        assert len(mon.seen) > 50
        assert "event=reindex_step" in d.log_text() and "event=reindex_done" in d.log_text()
        d.stop(p)
    finally:
        writer.stop_flag.set()
        mon.stop_flag.set()
        if lock:
            lock.close()
        stub.close()


def test_grace_keeps_the_old_version_then_retires_it(make_daemon, db, pgdb, qdrant):
    """After the swap the old version stays for reindex_grace (3 s here), then goes; the job row
    with it. `reconcile` compares the rows with what the alias serves."""
    stub = OpenAIStub(dim=8, api_key="sk-test")
    port = free_port()
    try:
        d, p = setup(make_daemon, db, qdrant, stub, http=port)
        m1_texts = lambda: sum(len(json.loads(r["body"])["input"]) for r in list(stub.requests)
                               if r.get("status") == 200 and json.loads(r["body"])["model"] == "m1")
        n_m1 = m1_texts()
        assert n_m1 == ROWS
        change_model(d)
        d.cli("apply")
        d.stop(p)
        qdrant.latency(1000, seconds=8, path="notes__v2/points")  # catch-up lasts: /status sees it
        p = d.start()

        def status_job():
            try:
                st = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=5))
            except OSError:
                return None
            jobs = [j for j in st["reindex"] if j["rule"] == "notes" and j["phase"] == "catch_up"]
            return jobs[0] if jobs and jobs[0]["pending"] > 0 else None
        job = wait_until(status_job, timeout=60, what="/status shows the catch-up",
                         explain=lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/status").read().decode()[:3000]
                         + str(phase(db)) + d.log_text()[-3000:])
        assert job["from"] == 1 and job["to"] == 2 and job["backfilled"] == ROWS, job
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        assert f'pg2qdrant_reindex_backfilled{{rule="notes",phase="catch_up"}} {ROWS}' in metrics, metrics
        assert 'pg2qdrant_reindex_pending{rule="notes",phase="catch_up"}' in metrics
        wait_until(lambda: phase(db)[0] == "swapped", timeout=60, interval=0.01, what="swap",
                   explain=lambda: d.log_text()[-3000:])
        t_swap = time.monotonic()
        # the backfill's events reached the old version as payload-only updates: no old-model call
        assert m1_texts() == n_m1
        assert any(e["path"] == "/collections/notes__v1/points/batch" for e in qdrant.log())
        assert aliases(qdrant) == {"notes": "notes__v2"}
        assert collections(qdrant) == ["notes__v1", "notes__v2"]
        wait_until(lambda: collections(qdrant) == ["notes__v2"], timeout=30, interval=0.05, what="retired")
        assert time.monotonic() - t_swap >= 2.0  # not before the grace (3 s; polling slack)
        wait_until(lambda: phase(db)[0] is None, timeout=10)
        assert d.cli("reconcile", check=False).returncode == 0
        check_end_state(d, db, qdrant, 2)
        # a second change: v2 -> v3 the same way
        d.path.write_text(d.path.read_text().replace("dimensions = 12", "dimensions = 16"))
        assert "notes__v2 -> notes__v3" in d.cli("apply").stdout
        d.stop(p)
        p = d.start()
        wait_until(lambda: phase(db)[0] is None and collections(qdrant) == ["notes__v3"], timeout=60,
                   what="second re-embedding", explain=lambda: d.log_text()[-3000:])
        assert aliases(qdrant) == {"notes": "notes__v3"}
        d.stop(p)
    finally:
        stub.close()


def test_a_daemon_with_the_old_file_holds_the_job_back(make_daemon, db, pgdb, qdrant):
    """Two daemon processes: one restarted with the new file, one still running the old one. The
    old one cannot write the new definition, so it keeps writing through the alias (the old
    version, still the one searched) and records `single`; the job waits in phase dual (no
    backfill that it would miss) until that process is gone, then completes."""
    stub = OpenAIStub(dim=8, api_key="sk-test")
    mon = Monitor(qdrant)
    try:
        d, old = setup(make_daemon, db, qdrant, stub)
        mon.start()
        change_model(d)
        d.cli("apply")
        new = d.start()
        modes = lambda: sorted(r[0] for r in db.execute("SELECT mode FROM sync_reindex_seen"))
        wait_until(lambda: modes() == ["dual", "single"], timeout=30, what="both processes recorded",
                   explain=lambda: d.log_text()[-3000:])
        db.execute("UPDATE notes SET title = 'changed by the writer' WHERE id = 7")
        time.sleep(3)
        assert phase(db)[0] == "dual"
        assert "event=reindex_modes_failed" in d.log_text(old) and "writes=single" in d.log_text(old)
        d.stop(old)
        wait_until(lambda: phase(db)[0] is None, timeout=60, what="job done once the old daemon is gone",
                   explain=lambda: d.log_text(new)[-3000:])
        check_end_state(d, db, qdrant, 2)
        mon.stop_flag.set()
        mon.join(10)
        mon.check("openai/m1@8", "openai/m2@12")
        d.stop(new)
    finally:
        mon.stop_flag.set()
        stub.close()


def test_unchanged_rule_starts_nothing_and_a_crash_in_create_resumes(make_daemon, db, pgdb, qdrant):
    """apply on an unchanged rule starts no job; a job whose new collection could not be made
    (Qdrant refused: the CLI died in phase create) is resumed by running apply again."""
    stub = OpenAIStub(dim=8, api_key="sk-test")
    try:
        d, p = setup(make_daemon, db, qdrant, stub)
        d.cli("apply")
        assert phase(db)[0] is None
        change_model(d)
        qdrant.fail(500, count=10, path="notes__v2", method="PUT")
        r = d.cli("apply", check=False)
        assert r.returncode != 0
        assert phase(db)[0] == "create"
        qdrant.clear_faults()
        d.cli("apply")
        assert phase(db)[0] in ("dual", "backfill", "catch_up", "swapped")
        d.stop(p)
        p = d.start()
        r = d.cli("reindex", "notes")
        assert "searches now read the new version" in r.stdout
        wait_until(lambda: phase(db)[0] is None, timeout=30)
        check_end_state(d, db, qdrant, 2)
        d.stop(p)
    finally:
        stub.close()


def test_legacy_collection_is_migrated_behind_an_alias(make_daemon, db, pgdb, qdrant):
    """A collection `notes` made before aliases (a real collection): the first re-embedding builds
    notes__v2, deletes `notes` and creates the alias `notes` -> notes__v2. Between the two calls a
    search of `notes` gets 404 for one round trip (measured and printed, never a mix, never empty)."""
    stub = OpenAIStub(dim=8, api_key="sk-test")
    mon, writer = Monitor(qdrant), Writer(pgdb)
    try:
        d, p = setup(make_daemon, db, qdrant, stub, legacy=True)
        mon.start()
        writer.start()
        change_model(d)
        assert "reindex notes: started: notes__v1 (legacy collection) -> notes__v2" in d.cli("apply").stdout
        d.stop(p)
        p = d.start()
        r = d.cli("reindex", "notes")
        assert "searches now read the new version" in r.stdout
        wait_until(lambda: phase(db)[0] is None, timeout=60, what="job done", explain=lambda: d.log_text()[-3000:])
        writer.stop_flag.set()
        writer.join(10)
        assert writer.error is None
        check_end_state(d, db, qdrant, 2)
        mon.stop_flag.set()
        mon.join(10)
        window = mon.check("openai/m1@8", "openai/m2@12", allow_404=True)
        print(f"legacy migration: longest 404 run seen by the monitor {window * 1000:.1f} ms "
              f"({sum(1 for s in mon.seen if s[1] == 404)} of {len(mon.seen)} reads)")
        log = [e for e in qdrant.log() if e["path"] in ("/collections/notes", "/collections/aliases")
               and e["method"] in ("DELETE", "POST")]
        assert [e["method"] for e in log] == ["DELETE", "POST"], log
        # the window itself, at the server: from the DELETE applied to the alias created
        print(f"legacy migration: 404 window at the server {(log[1]['te'] - log[0]['te']) * 1000:.2f} ms")
        d.stop(p)
    finally:
        writer.stop_flag.set()
        mon.stop_flag.set()
        stub.close()


@pytest.mark.skipif(not os.environ.get("P2Q_BENCH_REINDEX"), reason="a measurement: P2Q_BENCH_REINDEX=ROWS to run")
def test_reindex_time(make_daemon, db, pgdb, qdrant):
    """Prints how long each phase of a re-embedding of ROWS rows takes (shipped defaults, the
    openai stand-in, the Python test server), and the embedder texts each model got. No assertion
    on time: a figure for the README/notes, reproduced by
    P2Q_BENCH_REINDEX=20000 pytest -s tests/integration/test_reindex.py -k reindex_time"""
    n = int(os.environ["P2Q_BENCH_REINDEX"])
    stub = OpenAIStub(dim=8, api_key="sk-test")
    try:
        db.execute("CREATE TABLE notes (id int PRIMARY KEY, title text)")
        db.execute("INSERT INTO notes SELECT i, 'title ' || i FROM generate_series(1, %s) i" % n)
        d = make_daemon({"embedder.oa": emb("m1", 8, stub.url),
                         "rule.notes": {"table": "public.notes", "key": "id", "columns": "id, title",
                                        "text": "{title}", "embedder": "oa", "collection": "notes"}})
        d.env["P2Q_TEST_OPENAI_KEY"] = "sk-test"
        d.cli("apply")
        t0 = time.monotonic()
        p = d.start()
        wait_until(lambda: outbox_counts(db) == (0, 0), timeout=1800, interval=0.2)
        t_sync = time.monotonic() - t0
        texts = lambda m: sum(len(json.loads(r["body"])["input"]) for r in list(stub.requests)
                              if r.get("status") == 200 and json.loads(r["body"])["model"] == m)
        m1 = texts("m1")
        change_model(d)
        d.cli("apply")
        d.stop(p)
        t0 = time.monotonic()
        p = d.start()
        marks = {}
        while True:
            ph = phase(db)[0]
            if ph and ph not in marks:
                marks[ph] = time.monotonic() - t0
            if ph == "swapped":  # the retirement waits for reindex_grace (10 min by default)
                break
            time.sleep(0.05)
        print(f"\nreindex of {n} rows: first sync {t_sync:.1f} s ({n / t_sync:.0f} rows/s); "
              + ", ".join(f"{k} at {v:.1f} s" for k, v in marks.items())
              + f"; swap {marks['swapped'] - marks.get('backfill', 0):.1f} s after the backfill started; "
              f"texts embedded during the job: old model {texts('m1') - m1}, new model {texts('m2')}")
        d.stop(p)
    finally:
        stub.close()


@pytest.mark.parametrize("target,status", [("notes__v2", 503), ("notes__v1", 429)])
def test_one_version_failing_writes_costs_time_not_data(make_daemon, db, pgdb, qdrant, target, status):
    """Partial failure during a re-embedding: the point writes of ONE version fail (503 on the new
    version, or 429 with Retry-After on the old one) for 4 s while every health check, collection
    info and read passes. The events of both versions wait and are retried: nothing is
    dead-lettered (max_attempts at its shipped default), the alias never serves a mix or nothing,
    and the job ends exactly as without the failure."""
    stub = OpenAIStub(dim=8, api_key="sk-test")
    mon, writer = Monitor(qdrant), Writer(pgdb)
    try:
        d, p = setup(make_daemon, db, qdrant, stub)
        mon.start()
        writer.start()
        change_model(d)
        out = d.cli("apply").stdout
        assert "reindex notes: started: notes__v1 -> notes__v2" in out, out
        extra = {"retry_after": 1} if status == 429 else {}
        qdrant.fail(status, seconds=4, writes=True, collection=target, **extra)
        d.stop(p)
        p = d.start()  # the new file: dual writes, backfill while the target refuses writes
        r = subprocess.run([os.environ["P2Q_BIN"], "-c", str(d.path), "reindex", "notes"], env=d.env,
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr
        wait_until(lambda: phase(db)[0] is None, timeout=60, what="job done",
                   explain=lambda: d.log_text()[-3000:])
        writer.stop_flag.set()
        writer.join(10)
        assert writer.error is None, writer.error
        check_end_state(d, db, qdrant, 2)
        assert db.execute("SELECT count(*) FROM sync_outbox_dead").fetchone()[0] == 0
        refused = [e for e in qdrant.log() if e.get("status") == status and e.get("collection") == target]
        assert refused, "the fault never hit a write: the test would not test anything"
        mon.stop_flag.set()
        mon.join(10)
        mon.check("openai/m1@8", "openai/m2@12")
        d.stop(p)
    finally:
        writer.stop_flag.set()
        mon.stop_flag.set()
        stub.close()

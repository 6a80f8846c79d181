"""The claim's low-water mark (issue 11, sync_outbox_mark and sync_outbox_mark_refresh in
sql/functions.sql): the claim starts its ordered index scan at a per-type bound instead of the
drained front of the index, and no event is ever left below that bound.

What can put an event below a bound that already moved, each tested here: a transaction that drew
its id early and commits late (open, or prepared), `retry --dead` (old ids), TRUNCATE and a reload
with explicit ids (`bench`), and anything else outside the contract (the 30 s safety net).
Daemon tests run with the shipped defaults for what delivery depends on (sweep_interval 30 s,
lease, retry): an event must arrive by its NOTIFY, long before a sweep.
"""
import json
import time

import psycopg
import pytest
from psycopg import sql

from conftest import outbox_counts, points_by_id, wait_until  # noqa: F401
from docs_table import actual, docs, in_sync, rule, vec  # noqa: F401

SHIPPED = {"sweep_interval": None, "retry_min": None, "retry_max": None, "breaker_max": None}


def mark(db, t="docs"):
    r = db.execute("SELECT lo FROM sync_outbox_mark WHERE event_type = %s", (t,)).fetchone()
    return r[0] if r else 0


def event(i, t="docs"):
    return (t, "docs", "public.docs", json.dumps({"id": i}), json.dumps({"id": i, "title": f"t{i}", "n": 0,
                                                                             "emb": vec(i)}))


INSERT = ("INSERT INTO sync_outbox (event_type, rule, source_table, row_key, op, payload)"
          " VALUES (%s, %s, %s, %s::jsonb, 'upsert', %s::json) RETURNING id")


def claim_all(conn, owner="t.1", t="docs"):
    """One claim of up to 256 events, deleted at once (a done ack without the lease bookkeeping:
    every test event has its own row key). Returns the ids claimed."""
    ids = [r[0] for r in conn.execute("SELECT id FROM sync_outbox_claim(%s, %s, NULL, 256, 30000)"
                                      " WHERE op = 'upsert'", (owner, [t])).fetchall()]
    conn.execute("DELETE FROM sync_outbox WHERE id = ANY (%s)", (ids,))
    return ids


def refreshes(conn, n=3, **kw):
    """n claims 0.25 s apart (the mark is refreshed at most every 200 ms): enough for an epoch to
    begin and be promoted."""
    got = []
    for _ in range(n):
        time.sleep(0.25)
        got += claim_all(conn, **kw)
    return got


def fill(conn, lo_id, hi_id, t="docs"):
    conn.execute("INSERT INTO sync_outbox (event_type, rule, source_table, row_key, op, payload)"
                 " SELECT %s, 'docs', 'public.docs', jsonb_build_object('id', g), 'upsert',"
                 " json_build_object('id', g) FROM generate_series(%s::bigint, %s::bigint) g", (t, lo_id, hi_id))


def insert_below(conn, event_id):
    """An event written with an explicit id (as `retry --dead` and `bench`'s reload do), of row
    1,000,000 + id, reported to no mark."""
    conn.execute("INSERT INTO sync_outbox (id, event_type, rule, source_table, row_key, op, payload)"
                 " OVERRIDING SYSTEM VALUE VALUES (%s, 'docs', 'docs', 'public.docs',"
                 " jsonb_build_object('id', 1000000 + %s), 'upsert', '{}')", (event_id, event_id))


def insert_later_rows(docs, size, batches=4):
    """Rows 2 .. batches * size + 1 of docs, one committed INSERT of `size` rows each 0.3 s."""
    for r in range(batches):
        docs.execute("INSERT INTO docs (id, title, emb) SELECT g, 't' || g, ARRAY[g %% 7, 0, 1, g %% 3]::real[]"
                     " FROM generate_series(%s::bigint, %s::bigint) g", (r * size + 2, r * size + size + 1))
        time.sleep(0.3)


@pytest.fixture
def outbox(make_daemon, db):
    d = make_daemon({"rule.docs": rule()})
    d.cli("init")
    return db


def test_mark_moves_after_a_start_on_an_empty_outbox(outbox):
    """A daemon started on a drained outbox (the usual start, and every steady bench run): the
    first refresh sees no event. It used to begin an epoch with V NULL that could never be
    promoted, and lo stayed 0 for good (found by the session-5 sustained run)."""
    db = outbox
    assert claim_all(db) == []          # the first refresh: no event visible
    refreshes(db, n=2)                  # still empty
    fill(db, 1, 10000)
    db.execute("DELETE FROM sync_outbox WHERE id <= 9000")
    refreshes(db, n=3)
    assert mark(db) > 9000, db.execute("SELECT lo, epoch_id, epoch_locks FROM sync_outbox_mark").fetchall()


def test_a_stuck_mark_row_heals(outbox):
    """Databases upgraded from the release with that defect hold such a row (lo 0, epoch_id NULL,
    epoch_locks '{}'): the next refreshes begin an epoch and move lo."""
    db = outbox
    fill(db, 1, 10000)
    db.execute("INSERT INTO sync_outbox_mark (event_type, lo, epoch_id, epoch_locks, due_at)"
               " VALUES ('docs', 0, NULL, '{}', now() - interval '1 second')"
               " ON CONFLICT (event_type) DO UPDATE SET lo = 0, epoch_id = NULL, epoch_locks = '{}',"
               " due_at = now() - interval '1 second'")
    db.execute("DELETE FROM sync_outbox WHERE id <= 9000")
    refreshes(db, n=3)
    assert mark(db) > 9000, db.execute("SELECT lo, epoch_id, epoch_locks FROM sync_outbox_mark").fetchall()


def test_open_writer_holds_the_mark_back_and_its_event_is_claimed(outbox):
    """A transaction that inserted an event (its id drawn) and stays open: later events are claimed
    and deleted, refresh after refresh, but the mark stays at or below the open event's id; once it
    commits, the next claim returns it. A long read-only transaction does not hold the mark back."""
    db = outbox
    fill(db, 1, 300)
    late = psycopg.connect(dbname=db.info.dbname)  # not autocommit: stays open
    reader = psycopg.connect(dbname=db.info.dbname)
    try:
        late_id = late.execute(INSERT, event(1000)).fetchone()[0]
        fill(db, 1001, 1600)
        claimed = []
        for _ in range(8):
            claimed += refreshes(db, n=1)
            assert mark(db) <= late_id, "the mark passed an open transaction's event"
        assert len(claimed) == 900 and late_id not in claimed
        late.commit()
        got = claim_all(db)
        assert got == [late_id]
        # now the mark moves past it: nothing can commit below any more
        fill(db, 1601, 1700)
        refreshes(db, n=3)
        assert mark(db) > late_id
        # a read-only transaction (a snapshot held open) does not pin the mark
        reader.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        reader.execute("SELECT count(*) FROM sync_outbox").fetchone()
        before = mark(db)
        fill(db, 1701, 1800)
        refreshes(db, n=4)
        assert mark(db) > before
    finally:
        late.close()
        reader.close()


def test_prepared_writer_holds_the_mark_back(outbox):
    """Same with a transaction that is prepared while epochs that saw it running are pending (then
    it has no session, only its locks). A transaction that
    inserts into the outbox cannot normally be prepared (the NOTIFY trigger forbids PREPARE), so
    the event is written as a replicating session would, with triggers off."""
    db = outbox
    if int(db.execute("SHOW max_prepared_transactions").fetchone()[0]) == 0:
        pytest.skip("max_prepared_transactions = 0 (scripts/pg-tmp sets it)")
    fill(db, 1, 100)
    prep = psycopg.connect(dbname=db.info.dbname)
    gid = f"p2q-{db.info.dbname}"
    try:
        prep.execute("SET session_replication_role = replica")
        late_id = prep.execute(INSERT, event(1000)).fetchone()[0]
        fill(db, 1001, 1300)
        claimed = []
        for _ in range(3):  # epochs begin while it runs (a session holding the lock) ...
            claimed += refreshes(db, n=1)
            assert mark(db) <= late_id, "the mark passed an open transaction's event"
        prep.execute(sql.SQL("PREPARE TRANSACTION {}").format(sql.Literal(gid)))
        prep.close()  # ... and are checked after it is prepared (no session any more)
        fill(db, 1301, 1600)
        for _ in range(8):
            claimed += refreshes(db, n=1)
            assert mark(db) <= late_id, "the mark passed a prepared transaction's event"
        assert len(claimed) == 700
        db.execute(sql.SQL("COMMIT PREPARED {}").format(sql.Literal(gid)))
        assert claim_all(db) == [late_id]
    finally:
        if db.execute("SELECT 1 FROM pg_prepared_xacts WHERE gid = %s", (gid,)).fetchone():
            db.execute(sql.SQL("ROLLBACK PREPARED {}").format(sql.Literal(gid)))


def test_explicit_ids_below_the_mark(outbox):
    """`retry --dead`'s path (sync_outbox_mark_lower with the insert), TRUNCATE (forgets every
    mark: `bench` reloads its saved backlog with the same ids), and the safety net for an explicit
    id nobody reported (found within 30 s; forced here by making the check due)."""
    db = outbox
    fill(db, 1, 600)
    refreshes(db, n=4)
    lo = mark(db)
    assert lo > 500
    # reported: lowered in the same statement, claimed by the next claim
    db.execute("WITH e AS (INSERT INTO sync_outbox (id, event_type, rule, source_table, row_key, op, payload)"
               " OVERRIDING SYSTEM VALUE VALUES (7, 'docs', 'docs', 'public.docs', '{\"id\": 1000007}', 'upsert', '{}')"
               " RETURNING id, event_type) SELECT sync_outbox_mark_lower(e.event_type, e.id) FROM e")
    assert mark(db) == 7
    assert claim_all(db) == [7]
    # TRUNCATE forgets the marks; the same ids again are all claimed
    fill(db, 601, 700)
    refreshes(db, n=4)
    assert mark(db) > 600
    db.execute("TRUNCATE sync_outbox")
    assert db.execute("SELECT count(*) FROM sync_outbox_mark").fetchone()[0] == 0
    db.execute("INSERT INTO sync_outbox (id, event_type, rule, source_table, row_key, op, payload)"
               " OVERRIDING SYSTEM VALUE SELECT g, 'docs', 'docs', 'public.docs',"
               " jsonb_build_object('id', 2000000 + g), 'upsert', '{}' FROM generate_series(1, 100) g")
    assert sorted(claim_all(db)) == list(range(1, 101))
    # not reported: the safety net lowers the mark to it at its next check
    fill(db, 701, 800)
    refreshes(db, n=4)
    assert mark(db) > 700
    insert_below(db, 50)
    assert claim_all(db) == []
    db.execute("UPDATE sync_outbox_mark SET checked_at = now() - interval '31 seconds', due_at = now()")
    assert claim_all(db) == [50]


def test_the_maintenance_check_looks_below_the_mark(outbox):
    """sync_outbox_mark_check, the safety net off the claims' path: a mark looked below within
    p_age is left alone; an older one is looked below, lowered to the event found there and
    stamped, so the claim's own look (due after 30 s) does not run in front of a claim."""
    db = outbox
    fill(db, 1, 600)
    refreshes(db, n=4)
    lo = mark(db)
    assert lo > 500
    insert_below(db, 50)
    assert db.execute("SELECT sync_outbox_mark_check('20 seconds')").fetchone()[0] == 0
    assert mark(db) == lo
    db.execute("UPDATE sync_outbox_mark SET checked_at = now() - interval '21 seconds'")
    assert db.execute("SELECT sync_outbox_mark_check('20 seconds')").fetchone()[0] == 1
    assert mark(db) == 50
    assert db.execute("SELECT checked_at > now() - interval '1 second' FROM sync_outbox_mark").fetchone()[0]
    assert claim_all(db) == [50]


def test_the_daemon_looks_below_the_mark_off_the_claims(make_daemon, docs, qdrant):
    """A running daemon stamps every mark from its maintenance connection before 30 s pass, so no
    claim finds the look below lo due: behind a held xmin horizon that look walks every event
    acknowledged since the horizon was taken (0.3 -> 2.2 s in a 90 s hold at 2,000 events/s,
    in front of every claim and ack of the worker's connection). Shipped defaults; no claim runs
    between the stamp and the check below (nothing is written, the first sweep is 30 s away)."""
    d = make_daemon({"rule.docs": rule(), "daemon": SHIPPED})
    d.cli("apply")
    p = d.start()
    docs.execute("INSERT INTO docs (id, title, emb) VALUES (1, 't1', %s)", (vec(1),))
    wait_until(lambda: 1 in actual(qdrant), timeout=20, what="the row synced", explain=d.log_text)
    docs.execute("UPDATE sync_outbox_mark SET checked_at = now() - interval '25 seconds'")
    wait_until(lambda: docs.execute("SELECT bool_and(checked_at > now() - interval '15 seconds')"
                                    " FROM sync_outbox_mark").fetchone()[0],
               timeout=12, what="the mark stamped by the maintenance connection", explain=d.log_text)
    assert d.stop(p) == 0


def test_claim_scans_from_the_mark(outbox):
    """The claim's candidate scan has the mark as an Index Cond on id and reads a few buffers,
    while the drained front (500,000 deleted events, never vacuumed) spans thousands of pages.
    The nested plan comes from auto_explain (JSON, sent to this session as LOG notices)."""
    db = outbox
    db.execute("ALTER TABLE sync_outbox SET (autovacuum_enabled = false)")
    fill(db, 1, 510000)
    db.execute("DELETE FROM sync_outbox WHERE id <= 500000")  # drained: dead index entries remain
    refreshes(db, n=3)
    assert mark(db) > 500000
    leaf = db.execute("SELECT pg_relation_size('sync_outbox_claim_idx') / 8192").fetchone()[0]
    assert leaf > 1000
    plans = []
    with psycopg.connect(dbname=db.info.dbname, autocommit=True) as c:
        c.add_notice_handler(lambda d: plans.append(d.message_primary))
        for s in ("LOAD 'auto_explain'", "SET auto_explain.log_min_duration = 0",
                  "SET auto_explain.log_nested_statements = on", "SET auto_explain.log_analyze = on",
                  "SET auto_explain.log_buffers = on", "SET auto_explain.log_format = json",
                  "SET client_min_messages = log"):
            c.execute(s)
        n = len(c.execute("SELECT * FROM sync_outbox_claim('plan.1', '{docs}', NULL, 256, 30000)").fetchall())
    assert n == 256
    scans = []

    def walk(node):
        if node.get("Relation Name") == "sync_outbox" and "Index Cond" in node and "event_type" in node["Index Cond"]:
            scans.append(node)
        for ch in node.get("Plans", []):
            walk(ch)
    for msg in plans:
        if "WITH cand AS" in msg and "{" in msg:
            walk(json.loads(msg[msg.index("{"):])["Plan"])
    assert scans, "no candidate scan in the claim's nested plans:\n" + "\n".join(plans)[:3000]
    s = scans[0]
    assert "id >= COALESCE(m.lo" in s["Index Cond"], s["Index Cond"]
    touched = s["Shared Hit Blocks"] + s["Shared Read Blocks"]
    assert touched < 100, (touched, leaf)


def test_late_commit_is_delivered_by_its_notify(make_daemon, docs, qdrant):
    """End to end, shipped defaults: a writer opens a transaction and captures a row (its event id
    drawn); meanwhile 2,000 later rows are synced (claims and acks move the mark as far as it may);
    then it commits. Its row reaches Qdrant by its NOTIFY, within seconds (a sweep would take up to
    30 s)."""
    d = make_daemon({"rule.docs": rule(), "daemon": SHIPPED})
    d.cli("apply")
    p = d.start()
    late = psycopg.connect(dbname=docs.info.dbname)
    try:
        late.execute("INSERT INTO docs (id, title, emb) VALUES (1, 'late', %s)", (vec(1),))
        late_id = late.execute("SELECT max(id) FROM sync_outbox").fetchone()[0]
        insert_later_rows(docs, 500)
        wait_until(lambda: len(actual(qdrant)) == 2000, timeout=60, what="the later rows synced", explain=d.log_text)
        assert mark(docs) <= late_id
        t0 = time.monotonic()
        late.commit()
        wait_until(lambda: 1 in actual(qdrant), timeout=25, what="the late row synced", explain=d.log_text)
        took = time.monotonic() - t0
        print(f"late commit -> Qdrant: {took:.2f} s (sweep_interval 30 s)")
        assert took < 10
    finally:
        late.close()
    wait_until(lambda: in_sync(docs, qdrant), what="in sync")
    assert d.stop(p) == 0


def test_requeued_dead_event_flows(make_daemon, docs, qdrant):
    """A dead letter retried with `retry --dead` after the mark moved past it: its row comes back as
    it is now (since migration 015: a new id, above the mark; before, the dead letter's old id,
    below it), synced at once (shipped defaults: by the retry's NOTIFY, not a sweep)."""
    # max_attempts 1: the bad event dies at once (what is tested is the way back)
    d = make_daemon({"rule.docs": rule(), "daemon": dict(SHIPPED, max_attempts="1")})
    d.cli("apply")
    p = d.start()
    docs.execute("INSERT INTO docs (id, title, emb) VALUES (1, 'bad', ARRAY[1, 2]::real[])")  # wrong dimension
    wait_until(lambda: outbox_counts(docs) == (0, 1), timeout=30, what="dead-lettered", explain=d.log_text)
    dead_id = docs.execute("SELECT id FROM sync_outbox_dead").fetchone()[0]
    insert_later_rows(docs, 100)
    wait_until(lambda: len(actual(qdrant)) == 400, timeout=60, what="the later rows synced", explain=d.log_text)
    wait_until(lambda: mark(docs) > dead_id, timeout=10, what="the mark past the dead letter")
    # repair the row (no trigger firing, as a restore would: only the retry brings it back)
    with docs.transaction():
        docs.execute("SET LOCAL session_replication_role = replica")
        docs.execute("UPDATE docs SET title = 'fixed', emb = ARRAY[1, 0, 1, 1]::real[] WHERE id = 1")
    t0 = time.monotonic()
    d.cli("retry", "--dead")
    wait_until(lambda: 1 in actual(qdrant), timeout=25, what="the retried dead letter synced", explain=d.log_text)
    took = time.monotonic() - t0
    print(f"retry --dead -> Qdrant: {took:.2f} s (sweep_interval 30 s)")
    assert took < 10
    assert actual(qdrant)[1][0]["title"] == "fixed"
    assert outbox_counts(docs) == (0, 0)
    assert d.stop(p) == 0

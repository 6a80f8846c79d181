"""The outbox's statements stay cheap whatever the backlog and whatever the planner believes
(issue 11). A queue's statistics are always stale: a backlog appears in seconds, long before
autovacuum analyzes it. Speed is benchmarked in bench/outbox_sql_bench.py; here only the access
path is checked, by the buffers a claim and its ack touch (a sequential scan or a sort of the
backlog would read the whole table)."""
import json

import psycopg

from conftest import wait_until  # noqa: F401  (conftest fixtures: make_daemon, db)

N = 1_000_000


def rule():
    return {"table": "public.docs", "key": "id", "vector_column": "emb", "dimension": "4",
            "collection": "docs"}


def buffers(plan):
    top = plan[0]["Plan"]
    return top["Shared Hit Blocks"] + top["Shared Read Blocks"], top["Actual Rows"]


def test_claim_and_ack_stay_on_the_index_under_a_fresh_million_event_backlog(make_daemon, db):
    db.execute("CREATE TABLE docs (id bigint PRIMARY KEY, emb real[])")
    d = make_daemon({"rule.docs": rule()})
    d.cli("init")
    db.execute("ANALYZE sync_outbox")  # the statistics of an empty outbox, as after any drain
    db.execute("ALTER TABLE sync_outbox SET (autovacuum_enabled = false)")  # and they stay stale
    # a second event type ahead of ours in the index, and ours behind it: the claim must seek
    db.execute("INSERT INTO sync_outbox (event_type, rule, source_table, row_key, op, payload)"
               " SELECT CASE WHEN i <= %s THEN 'aaa' ELSE 'docs' END, 'docs', 'public.docs',"
               " jsonb_build_object('id', i), 'upsert', json_build_object('id', i)"
               " FROM generate_series(1, %s) i", (N // 2, N))
    pages = db.execute("SELECT relpages FROM pg_class WHERE relname = 'sync_outbox'").fetchone()[0]
    stats = db.execute("SELECT reltuples FROM pg_class WHERE relname = 'sync_outbox'").fetchone()[0]
    assert stats <= 0, "the planner must still believe the outbox is empty"
    heap_pages = db.execute("SELECT pg_relation_size('sync_outbox') / current_setting('block_size')::int").fetchone()[0]
    assert pages <= 1 and heap_pages > 5000
    with psycopg.connect(dbname=d.dbname) as c:  # one transaction, rolled back
        for attempt in range(2):  # the first call plans, the second runs the cached plan
            plan = c.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) SELECT * FROM"
                             " sync_outbox_claim('plan.test', '{docs}', NULL, 256, 30000)").fetchone()[0]
            touched, rows = buffers(plan)
            assert rows == 256
            # an index walk touches a few pages per event; the heap has thousands
            assert touched < heap_pages / 5, (attempt, touched, heap_pages, json.dumps(plan)[:2000])
        claimed = c.execute("SELECT id, rule, row_key::text FROM sync_outbox"
                            " WHERE claimed_by = 'plan.test' ORDER BY id").fetchall()
        assert len(claimed) == 512 and claimed[0][0] == N // 2 + 1
        claimed = claimed[:256]
        plan = c.execute(
            "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) SELECT sync_outbox_ack('plan.test', %s::bigint[],"
            " %s::text[], %s::jsonb[], %s::text[], %s::int[], %s::text[])",
            ([r[0] for r in claimed], [r[1] for r in claimed], [r[2] for r in claimed],
             ["done"] * len(claimed), [0] * len(claimed), [None] * len(claimed))).fetchone()[0]
        touched, _ = buffers(plan)
        assert touched < heap_pages / 4, (touched, heap_pages, json.dumps(plan)[:2000])
        left = c.execute("SELECT count(*) FROM sync_outbox WHERE claimed_by = 'plan.test'").fetchone()[0]
        assert left == 256
        c.rollback()


def nested_plans(dbname, sql):
    """The plans of the statements `sql` runs inside functions (auto_explain, JSON, sent to this
    session as LOG notices), and the rows sql returned."""
    plans = []
    with psycopg.connect(dbname=dbname, autocommit=True) as c:
        c.add_notice_handler(lambda d: plans.append(d.message_primary))
        for s in ("LOAD 'auto_explain'", "SET auto_explain.log_min_duration = 0",
                  "SET auto_explain.log_nested_statements = on", "SET auto_explain.log_analyze = on",
                  "SET auto_explain.log_timing = off", "SET auto_explain.log_buffers = on",
                  "SET auto_explain.sample_rate = 1",
                  "SET auto_explain.log_format = json",
                  "SET client_min_messages = log"):
            c.execute(s)
        rows = c.execute(sql).fetchall()
    return [json.loads(m[m.index("{"):]) for m in plans if "{" in m], rows


def rows_produced(node):
    """Rows every node of a plan produced, over all its loops (a join of two CTE scans planned as
    a nested loop rescans its inner side once per outer row: batch x batch)."""
    return node.get("Actual Rows", 0) * node.get("Actual Loops", 1) + sum(rows_produced(ch) for ch in node.get("Plans", []))


def test_claim_work_is_linear_in_the_batch_whatever_the_statistics(make_daemon, db):
    """Analyzed statistics of a 20,000-event outbox make the claim's generic plan estimate its
    candidates at one row. Whatever the planner then picks, the claim's statement must not compare
    every candidate with every won lease (a nested loop over two CTE scans: 65,536 rows per join at
    batch 256): the rows its plan nodes produce stay a small multiple of the batch."""
    db.execute("CREATE TABLE docs (id bigint PRIMARY KEY, emb real[])")
    d = make_daemon({"rule.docs": rule()})
    d.cli("init")
    db.execute("INSERT INTO sync_outbox (event_type, rule, source_table, row_key, op, payload)"
               " SELECT 'docs', 'docs', 'public.docs', jsonb_build_object('id', i), 'upsert',"
               " json_build_object('id', i) FROM generate_series(1, 20000) i")
    db.execute("VACUUM ANALYZE sync_outbox")
    for attempt in range(2):  # the first call plans, the second runs the cached plan
        plans, rows = nested_plans(d.dbname, f"SELECT * FROM sync_outbox_claim('plan.{attempt}', '{{docs}}', NULL, 256, 30000)")
        assert len(rows) == 256
        claim = [p for p in plans if "WITH cand AS" in p.get("Query Text", "")]  # its candidates, its set statement
        assert claim, [p.get("Query Text", "")[:80] for p in plans]
        produced = sum(rows_produced(p["Plan"]) for p in claim)
        print(f"claim {attempt}: plan nodes produced {produced} rows")
        assert produced < 40 * 256, (attempt, produced, json.dumps([p["Plan"] for p in claim])[:3000])


def drained_outbox(make_daemon, db):
    """A daemon's schema whose outbox has the statistics of a drained outbox under traffic:
    autovacuum found no live event and could not truncate the table (truncation waits for a lock
    the writers keep taking): reltuples 0 over hundreds of pages. Returns the daemon and an INSERT
    of events ids %s..%s."""
    db.execute("CREATE TABLE docs (id bigint PRIMARY KEY, emb real[])")
    d = make_daemon({"rule.docs": rule()})
    d.cli("init")
    ins = ("INSERT INTO sync_outbox (event_type, rule, source_table, row_key, op, payload)"
           " SELECT 'docs', 'docs', 'public.docs', jsonb_build_object('id', i), 'upsert',"
           " json_build_object('id', i) FROM generate_series(%s::bigint, %s::bigint) i")
    db.execute(ins, (1, 20000))
    db.execute("DELETE FROM sync_outbox")
    db.execute("VACUUM (ANALYZE, TRUNCATE false) sync_outbox")
    db.execute("ALTER TABLE sync_outbox SET (autovacuum_enabled = false)")
    pages, stats = db.execute("SELECT relpages, reltuples FROM pg_class WHERE relname = 'sync_outbox'").fetchone()
    assert stats == 0 and pages > 500, (pages, stats)
    return d, ins


def behind_a_held_snapshot(d, db, ins, measure):
    """measure(first_id, owner) for a batch of 256, before and after 60,000 events were
    acknowledged behind a REPEATABLE READ snapshot held by another session. No VACUUM between: it
    would remove nothing while the snapshot is held, and would count them in the statistics the
    plan is made from."""
    with psycopg.connect(dbname=d.dbname) as held:
        held.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        held.execute("SELECT 1").fetchone()
        before = measure(100001, "held.a")
        db.execute(ins, (200001, 260000))
        db.execute("DELETE FROM sync_outbox WHERE id > 200000 AND id <= 260000")
        after = measure(300001, "held.b")
        held.rollback()
    return before, after


def test_claim_work_does_not_grow_with_events_acknowledged_behind_a_held_snapshot(make_daemon, db):
    """While a snapshot is held (an ANALYZE of a big table, a report, pg_dump), VACUUM removes no
    acknowledged event from the outbox's indexes. The claim's set statement reads its events by
    id list: with the statistics of a near-empty outbox its generic plan took (event_type, id)
    with `id = ANY` on the second column, which PostgreSQL 15 walks from the left edge once per
    element, batch x index size, growing with every event acknowledged behind the snapshot (the
    sustained steady run's 45 s ack stalls). Measured in buffers, never in time: the set
    statement's buffers for a batch of 256 must not grow with 60,000 acknowledged events."""
    d, ins = drained_outbox(make_daemon, db)

    def set_statement_buffers(n0, owner):
        db.execute(ins, (n0, n0 + 255))
        plans, rows = nested_plans(d.dbname, f"SELECT * FROM sync_outbox_claim('{owner}', '{{docs}}', NULL, 256, 30000)")
        assert len(rows) == 256, len(rows)
        st = [p for p in plans if "unnest(c_ids, c_rules, c_keys" in p.get("Query Text", "")]
        assert len(st) == 1, [p.get("Query Text", "")[:80] for p in plans]
        top = st[0]["Plan"]
        db.execute("DELETE FROM sync_outbox WHERE claimed_by = %s", (owner,))  # acknowledged
        return top["Shared Hit Blocks"] + top["Shared Read Blocks"]

    before, after = behind_a_held_snapshot(d, db, ins, set_statement_buffers)
    print(f"set statement: {before} buffers, {after} after 60,000 events acknowledged behind a held snapshot")
    assert after < 2 * before + 512, (before, after)


def test_ack_work_does_not_grow_with_events_acknowledged_behind_a_held_snapshot(make_daemon, db):
    """The ack's side of the same hazard (migration 011): its DELETE looks events up by id alone
    (`o.id = ANY (p_ids)`, in another transaction than the claim, so no locked ctid to use), and
    with a drained outbox's statistics its generic plan took sync_outbox_claim_idx with the id on
    the second key, walking the whole index once per id (0.9-1.9 s per ack of 256 during a held
    snapshot in the sustained run). The claim index now serves only statements that name an event
    type; the ack's DELETE must read through the primary key, and its buffers for a batch of 256
    must not grow with 60,000 events acknowledged behind a held snapshot."""
    d, ins = drained_outbox(make_daemon, db)

    def ack_buffers(n0, owner):
        db.execute(ins, (n0, n0 + 255))
        claimed = db.execute(f"SELECT id, rule, row_key FROM sync_outbox_claim('{owner}', '{{docs}}', NULL, 256, 30000)"
                             " WHERE op = 'upsert'").fetchall()
        assert len(claimed) == 256, len(claimed)
        ids = "{" + ",".join(str(r[0]) for r in claimed) + "}"
        plans, rows = nested_plans(d.dbname, f"SELECT sync_outbox_ack('{owner}', '{ids}'::bigint[], "
                                   f"array_fill('docs'::text, ARRAY[256]), ARRAY(SELECT row_key FROM sync_outbox "
                                   f"WHERE id = ANY ('{ids}'::bigint[]) ORDER BY id), array_fill('done'::text, ARRAY[256]), "
                                   f"array_fill(0, ARRAY[256]), array_fill(NULL::text, ARRAY[256]))")
        assert rows == [(256,)], rows
        st = [p for p in plans if "o.id = ANY (p_ids)" in p.get("Query Text", "")]
        assert len(st) == 1, [p.get("Query Text", "")[:80] for p in plans]
        scans = []

        def walk(node):
            if node.get("Relation Name") == "sync_outbox" and "Scan" in node.get("Node Type", ""):
                scans.append(node.get("Index Name"))
            for ch in node.get("Plans", []):
                walk(ch)
        walk(st[0]["Plan"])
        assert scans == ["sync_outbox_pkey"], scans
        top = st[0]["Plan"]
        return top["Shared Hit Blocks"] + top["Shared Read Blocks"]

    before, after = behind_a_held_snapshot(d, db, ins, ack_buffers)
    print(f"ack: {before} buffers, {after} after 60,000 events acknowledged behind a held snapshot")
    assert after < 2 * before + 512, (before, after)

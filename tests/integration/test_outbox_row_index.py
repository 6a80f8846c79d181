"""sync_outbox_row_idx on jsonb_hash_extended(row_key, 0) (migration 012, issue 11: the writer's
cost). The upgrade from (rule, row_key) keeps every pending event and claim as they were, and the
statements that look up a row's events still go through the index (a reader left without it would
scan the outbox once per candidate)."""
from docs_table import rule
from test_upgrade import outbox_state

HASH_IDX = "CREATE INDEX sync_outbox_row_idx ON public.sync_outbox USING btree (jsonb_hash_extended(row_key, (0)::bigint))"


def row_idx(conn):
    return conn.execute("SELECT pg_get_indexdef('sync_outbox_row_idx'::regclass)").fetchone()[0]


def test_upgrade_from_the_rule_row_key_index_keeps_every_event(make_daemon, db):
    d = make_daemon({"rule.docs": rule()})
    d.cli("init")
    assert row_idx(db) == HASH_IDX
    # an install as migration 011 left it: the old index, version 11
    db.execute("DROP INDEX sync_outbox_row_idx")
    db.execute("CREATE INDEX sync_outbox_row_idx ON sync_outbox (rule, row_key)")
    db.execute("UPDATE sync_outbox_meta SET value = '11' WHERE key = 'schema_version'")
    # pending events, several per row, some claimed
    db.execute("INSERT INTO sync_outbox (event_type, rule, source_table, row_key, op, payload)"
               " SELECT 'docs', 'docs', 'public.docs', jsonb_build_object('id', i % 50), 'upsert',"
               " json_build_object('id', i % 50, 'v', i) FROM generate_series(1, 200) i")
    assert len(db.execute("SELECT * FROM sync_outbox_claim('old.1', ARRAY['docs'], NULL, 20, 60000)").fetchall()) == 20
    before = outbox_state(db)
    assert "installed or upgraded" in d.cli("init").stdout
    assert row_idx(db) == HASH_IDX
    assert db.execute("SELECT value FROM sync_outbox_meta WHERE key = 'schema_version'").fetchone()[0] == "15"
    after = outbox_state(db)  # every event and claim; the leases went with their table (migration 015)
    assert (after[0], after[2]) == (before[0], before[2]) and after[1] is None
    assert "already up to date" in d.cli("init").stdout
    assert row_idx(db) == HASH_IDX and outbox_state(db) == after


def test_the_claim_finds_a_rows_older_events_through_the_index(make_daemon, db):
    """The claim's probe for each candidate's older events (order per row since migration 015; it was
    the lease reclaimer's before) goes through sync_outbox_row_idx: one probe per candidate, never
    a scan of the outbox, whatever the backlog; rows with an older event in flight are held, another
    rule's event of the same key does not hold."""
    d = make_daemon({"rule.docs": rule()})
    d.cli("init")
    db.execute("INSERT INTO sync_outbox (event_type, rule, source_table, row_key, op, payload)"
               " SELECT 'docs', 'docs', 'public.docs', jsonb_build_object('id', i), 'upsert', '{}'"
               " FROM generate_series(1, 20000) i")
    # the first 400 rows in flight; then newer events of them, of 400 other rows, and of row 1 under
    # another rule
    assert len(db.execute("SELECT * FROM sync_outbox_claim('old.1', ARRAY['docs'], NULL, 400, 60000)").fetchall()) == 400
    db.execute("DELETE FROM sync_outbox WHERE claimed_by IS NULL")
    db.execute("INSERT INTO sync_outbox (event_type, rule, source_table, row_key, op, payload)"
               " SELECT 'docs', 'docs', 'public.docs', jsonb_build_object('id', i), 'upsert', '{}'::json"
               " FROM (SELECT generate_series(1, 400) UNION ALL SELECT generate_series(100001, 100400)) g(i)"
               " UNION ALL SELECT 'docs', 'other', 'public.docs', '{\"id\": 1}', 'upsert', '{}'::json")
    numscans = ("SELECT pg_stat_get_xact_numscans('sync_outbox'::regclass),"
                " pg_stat_get_xact_numscans('sync_outbox_row_idx'::regclass)")
    with db.transaction():  # (the counters also hold earlier statements' not yet reported: a difference)
        s0 = db.execute(numscans).fetchone()
        rows = db.execute("SELECT id, op FROM sync_outbox_claim('new.1', ARRAY['docs'], NULL, 1000, 60000, true)").fetchall()
        s1 = db.execute(numscans).fetchone()
    scans = (s1[0] - s0[0], s1[1] - s0[1])
    assert sorted(r[1] for r in rows if r[1] != "upsert") == ["held"] and (400, "held") in rows
    assert sum(1 for r in rows if r[1] == "upsert") == 401
    # one index probe per candidate (801), no sequential scan of the outbox
    assert scans == (0, 801), scans

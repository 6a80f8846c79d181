"""sync_outbox_row_idx on jsonb_hash_extended(row_key, 0) (migration 012, issue 11: the writer's
cost). The upgrade from (rule, row_key) keeps every pending event, claim and lease as they were,
and the statements that look up a row's events still go through the index (a reader left without
it would scan the outbox once per lease)."""
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
    # pending events, several per row, some claimed with their leases
    db.execute("INSERT INTO sync_outbox (event_type, rule, source_table, row_key, op, payload)"
               " SELECT 'docs', 'docs', 'public.docs', jsonb_build_object('id', i % 50), 'upsert',"
               " json_build_object('id', i % 50, 'v', i) FROM generate_series(1, 200) i")
    assert len(db.execute("SELECT * FROM sync_outbox_claim('old.1', ARRAY['docs'], NULL, 20, 60000)").fetchall()) == 20
    before = outbox_state(db)
    assert "installed or upgraded" in d.cli("init").stdout
    assert row_idx(db) == HASH_IDX
    assert db.execute("SELECT value FROM sync_outbox_meta WHERE key = 'schema_version'").fetchone()[0] == "14"
    assert outbox_state(db) == before
    assert "already up to date" in d.cli("init").stdout
    assert row_idx(db) == HASH_IDX and outbox_state(db) == before


def test_the_lease_reclaimer_finds_a_rows_older_events_through_the_index(make_daemon, db):
    d = make_daemon({"rule.docs": rule()})
    d.cli("init")
    db.execute("INSERT INTO sync_outbox (event_type, rule, source_table, row_key, op, payload)"
               " SELECT 'docs', 'docs', 'public.docs', jsonb_build_object('id', i), 'upsert', '{}'"
               " FROM generate_series(1, 20000) i")
    top = db.execute("SELECT max(id) FROM sync_outbox").fetchone()[0]
    # released leases above every pending id: rows 1..400 have an older event pending (kept),
    # rows 100001..100400 have none (reclaimed), and another rule's lease of row 1 has none either
    db.execute("INSERT INTO sync_outbox_lease (key_hash, rule, row_key, claimed_id, released_at)"
               " SELECT jsonb_hash_extended(jsonb_build_object('id', i), 0), 'docs', jsonb_build_object('id', i), %s + i,"
               " now() - interval '1 hour'"
               " FROM (SELECT generate_series(1, 400) UNION ALL SELECT generate_series(100001, 100400)) g(i)"
               " UNION ALL SELECT jsonb_hash_extended('{\"id\": 1}', 0), 'other', '{\"id\": 1}', %s + 1,"
               " now() - interval '1 hour'", (top, top))
    with db.transaction():
        got = db.execute("SELECT reclaimed, scanned, blocked FROM sync_outbox_reclaim_leases(NULL, NULL, 1000)").fetchone()
        scans = db.execute("SELECT pg_stat_get_xact_numscans('sync_outbox'::regclass),"
                           " pg_stat_get_xact_numscans('sync_outbox_row_idx'::regclass)").fetchone()
    assert got == (401, 801, None)
    # one index probe per lease tested, no sequential scan of the outbox
    assert scans == (0, 801), scans
    left = db.execute("SELECT rule, (row_key->>'id')::int FROM sync_outbox_lease ORDER BY 1, 2").fetchall()
    assert left == [("docs", i) for i in range(1, 401)]

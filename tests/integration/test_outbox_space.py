"""The outbox's space stays bounded by design (issue 11): idle leases are reclaimed by the daemon
(sync_outbox_reclaim_leases on its own timer, src/lease_gc.c) and by `prune`, with the rule of the
function's comment: a released lease goes once no event of its row is left and every transaction
still running started after it was released.

Shipped defaults for everything the guarantees depend on (the reclaim rule is SQL, lease and
retry settings are the shipped ones). Shortened, and not part of what is proved: the reclaim
interval (1 s instead of 10 s: how often, not what may go) and the conftest's sweep/retry timers.
"""
import pathlib
import threading
import time

import psycopg
import pytest

from conftest import BIN, ROOT, outbox_counts, wait_until  # noqa: F401
from docs_table import DIM, actual, docs, expected, in_sync, rule, vec  # noqa: F401

FAST = {"lease_reclaim_interval": "1s"}
N_MIGRATIONS = len(list((ROOT / "sql" / "migrations").glob("*.sql")))


def leases(db):
    return db.execute("SELECT count(*) FROM sync_outbox_lease").fetchone()[0]


def lease_of(db, i):
    return db.execute("SELECT claimed_id, owner, released_at IS NOT NULL FROM sync_outbox_lease"
                      " WHERE row_key = jsonb_build_object('id', %s::bigint)", (i,)).fetchone()


@pytest.mark.daemon_role
def test_lease_table_stays_bounded_under_distinct_key_inserts(make_daemon, docs, qdrant):
    """Insert-only load, every key new: without reclaiming the lease table holds one row per key
    ever inserted (5,000 here); with it, only the rows of the last few seconds. Runs as the
    least-privilege daemon role of conf/roles.sql (DELETE on sync_outbox_lease, no
    pg_read_all_stats: the test's own sessions are another role's, idle between statements)."""
    d = make_daemon({"rule.docs": rule(), "daemon": FAST})
    d.cli("apply")
    p = d.start()
    rounds, per_round, seen = 20, 250, []
    for r in range(rounds):
        docs.execute("INSERT INTO docs (id, title, emb) SELECT g, 't' || g, ARRAY[g %% 7, 0, 1, g %% 3]::real[]"
                     " FROM generate_series(%s::bigint, %s::bigint) g", (r * per_round + 1, (r + 1) * per_round))
        time.sleep(0.3)
        seen.append(leases(docs))
    total = rounds * per_round
    wait_until(lambda: in_sync(docs, qdrant), timeout=120, what="every row in Qdrant", explain=d.log_text)
    # every lease goes once its row is done and no older transaction runs
    wait_until(lambda: leases(docs) == 0, timeout=30, what="every idle lease reclaimed",
               explain=lambda: f"leases={leases(docs)}\n{d.log_text()[-3000:]}")
    assert max(seen) < total // 2, f"lease rows while inserting: {seen}"
    assert len(actual(qdrant)) == total
    assert d.stop(p) == 0
    assert "lease_reclaim_failed" not in d.log_text()


def test_lease_kept_while_an_older_transaction_is_open(make_daemon, docs, qdrant):
    """A transaction that started before a lease's claim may still commit an event older than the
    lease's claimed_id (here: a late snapshot written straight into the outbox, as any path that
    allocates an id early and commits late would). While it is open the lease stays, however many
    reclaim passes run; when it commits, its older event is superseded (coalesced), never applied;
    afterwards the lease goes."""
    d = make_daemon({"rule.docs": rule(), "daemon": FAST})
    d.cli("apply")
    docs.execute("INSERT INTO docs (id, title, emb) VALUES (1, 'v1', %s)", (vec(1),))
    ev = docs.execute("SELECT event_type, rule, source_table, row_key::text, payload::text FROM sync_outbox"
                      " WHERE row_key = '{\"id\": 1}'").fetchone()
    p = d.start()
    wait_until(lambda: in_sync(docs, qdrant), what="v1 synced")
    wait_until(lambda: leases(docs) == 0, what="the first lease reclaimed (the reclaimer runs)",
               explain=d.log_text)

    late = psycopg.connect(dbname=docs.info.dbname)  # not autocommit: stays open
    try:
        late.execute("SELECT 1")  # the transaction starts here, before the claim below
        stale = ev[4].replace('"v1"', '"stale"')
        assert stale != ev[4]
        late.execute("INSERT INTO sync_outbox (event_type, rule, source_table, row_key, op, payload)"
                     " VALUES (%s, %s, %s, %s::jsonb, 'upsert', %s::json)", (ev[0], ev[1], ev[2], ev[3], stale))
        late_id = late.execute("SELECT max(id) FROM sync_outbox").fetchone()[0]
        docs.execute("UPDATE docs SET title = 'v2', n = 2 WHERE id = 1")
        wait_until(lambda: actual(qdrant).get(1, ({},))[0].get("title") == "v2", what="v2 applied")
        wait_until(lambda: (lease_of(docs, 1) or (0, 'x', False))[1:] == (None, True), what="v2's lease released")
        claimed = lease_of(docs, 1)[0]
        assert claimed > late_id
        # v2's event settled (a lease is also released by a `retry` ack: a write that timed out
        # under load is sent again after this point, which is not the late snapshot)
        wait_until(lambda: outbox_counts(docs) == (0, 0), what="v2's event done", explain=d.log_text)
        writes = qdrant_writes(qdrant)
        for _ in range(5):  # five reclaim intervals, each a pass that must keep the lease
            time.sleep(1.0)
            assert lease_of(docs, 1) is not None, "lease reclaimed while an older transaction was open"
        late.commit()
    finally:
        late.close()
    # the late event is visible now: claimed, older than the fence, superseded without a write
    wait_until(lambda: outbox_counts(docs) == (0, 0), what="late event consumed", explain=d.log_text)
    assert actual(qdrant)[1][0]["title"] == "v2"
    assert qdrant_writes(qdrant) == writes, "the late, older snapshot was written"
    assert in_sync(docs, qdrant)
    wait_until(lambda: lease_of(docs, 1) is None, what="lease reclaimed once nothing can need it",
               explain=d.log_text)
    assert d.stop(p) == 0
    assert "coalesced=1" in d.log_text()


def qdrant_writes(qdrant):
    return sum(1 for e in qdrant.log() if e["method"] == "PUT" and e["path"].endswith("/points"))


def test_prune_uses_the_same_rule(make_daemon, docs, qdrant):
    """`prune` reclaims with the daemon's function: idle leases go, a lease whose row has a dead
    letter or a pending event older than its claimed_id stays, and none goes while an older
    transaction is open."""
    d = make_daemon({"rule.docs": rule(), "daemon": {"lease_reclaim_interval": "0"}})  # 0: off
    d.cli("apply")
    docs.execute("INSERT INTO sync_outbox_lease (key_hash, rule, row_key, claimed_id, released_at)"
                 " SELECT jsonb_hash_extended(jsonb_build_object('id', g), 0), 'docs', jsonb_build_object('id', g), g,"
                 " now() - interval '1 s' FROM generate_series(1, 12000) g")
    docs.execute("INSERT INTO sync_outbox_dead (id, event_type, rule, source_table, row_key, op, attempts,"
                 " max_attempts, created_at) VALUES (999999, 'docs', 'docs', 'public.docs', '{\"id\": 5}',"
                 " 'upsert', 3, 3, now())")
    docs.execute("INSERT INTO docs (id, title, emb) VALUES (7, 'a', %s), (8, 'b', %s)", (vec(7), vec(8)))
    # rows 5 and 7 have a dead letter / a pending event OLDER than their lease's claimed_id: kept;
    # row 8's pending event is newer than its lease's claimed_id: no fence needed, the lease goes
    docs.execute("UPDATE sync_outbox_lease SET claimed_id = 2000000 WHERE row_key->>'id' IN ('5', '7')")
    docs.execute("UPDATE sync_outbox_lease SET claimed_id = 0 WHERE row_key->>'id' = '8'")
    older = psycopg.connect(dbname=docs.info.dbname)  # open, but started after those releases
    try:
        older.execute("SELECT 1")
        out = d.cli("prune").stdout
        assert "and 11998 idle lease(s)" in out, out
        assert {r[0] for r in docs.execute("SELECT row_key->>'id' FROM sync_outbox_lease")} == {"5", "7"}
        # the dead letter gone, lease 5 released after `older` began: kept while `older` is open
        docs.execute("DELETE FROM sync_outbox_dead")
        docs.execute("UPDATE sync_outbox_lease SET released_at = clock_timestamp() WHERE row_key = '{\"id\": 5}'")
        out = d.cli("prune").stdout
        assert "and 0 idle lease(s)" in out, out
    finally:
        older.close()
    assert "and 1 idle lease(s)" in d.cli("prune").stdout


def test_upgrade_adds_the_dead_row_index(make_daemon, docs, qdrant):
    """Migration 005 on a schema at version 4 holding leases and a dead letter: `init` adds the
    index (and re-runs the later migrations, which are idempotent), keeps every row, and the
    reclaimer then keeps the dead letter's lease."""
    d = make_daemon({"rule.docs": rule()})
    d.cli("init")
    docs.execute("DROP INDEX sync_outbox_dead_row_idx")
    docs.execute("UPDATE sync_outbox_meta SET value = '4' WHERE key = 'schema_version'")
    docs.execute("INSERT INTO sync_outbox_lease (key_hash, rule, row_key, claimed_id, released_at) VALUES"
                 " (jsonb_hash_extended('{\"id\": 1}', 0), 'docs', '{\"id\": 1}', 10, now() - interval '1 s'),"
                 " (jsonb_hash_extended('{\"id\": 2}', 0), 'docs', '{\"id\": 2}', 11, now() - interval '1 s')")
    docs.execute("INSERT INTO sync_outbox_dead (id, event_type, rule, source_table, row_key, op, attempts,"
                 " max_attempts, created_at) VALUES (9, 'docs', 'docs', 'public.docs', '{\"id\": 1}', 'upsert', 3, 3, now())")
    r = d.cli("run", check=False)
    assert r.returncode != 0 and "init" in r.stderr  # a version-4 schema is refused until upgraded
    d.cli("init")
    n = len(list((pathlib.Path(__file__).resolve().parents[2] / "sql" / "migrations").glob("*.sql")))
    assert docs.execute("SELECT value FROM sync_outbox_meta WHERE key = 'schema_version'").fetchone()[0] == str(n)
    assert docs.execute("SELECT to_regclass('sync_outbox_dead_row_idx') IS NOT NULL").fetchone()[0]
    assert docs.execute("SELECT count(*) FROM sync_outbox_dead").fetchone()[0] == 1
    assert "and 1 idle lease(s)" in d.cli("prune", "--older-than", "30d").stdout
    assert [r[0] for r in docs.execute("SELECT row_key->>'id' FROM sync_outbox_lease")] == ["1"]


def test_a_transaction_the_role_cannot_see_pauses_reclaiming(make_daemon, docs, pgdb):
    """Without pg_read_all_stats another role's xact_start reads as NULL: while such a session is
    inside a transaction (its backend_xid/backend_xmin are visible to every role) nothing is
    reclaimed (reason hidden_transaction); an idle one does not block; with pg_read_all_stats the
    start is seen and the ordinary rule applies."""
    d = make_daemon({"rule.docs": rule()})
    d.cli("init")
    role = "p2q_l11_" + pgdb[-8:]
    docs.execute(f'CREATE ROLE "{role}"')
    try:
        docs.execute(f'GRANT SELECT, UPDATE, DELETE ON sync_outbox_lease TO "{role}"')
        docs.execute(f'GRANT SELECT ON sync_outbox, sync_outbox_dead TO "{role}"')
        docs.execute("INSERT INTO sync_outbox_lease (key_hash, rule, row_key, claimed_id, released_at)"
                     " SELECT jsonb_hash_extended(jsonb_build_object('id', g), 0), 'docs', jsonb_build_object('id', g), g,"
                     " now() - interval '1 s' FROM generate_series(1, 6) g")
        with psycopg.connect(dbname=pgdb, autocommit=True) as low, psycopg.connect(dbname=pgdb) as other:
            low.execute(f'SET ROLE "{role}"')

            def reclaim():
                return low.execute("SELECT reclaimed, blocked FROM sync_outbox_reclaim_leases(NULL, NULL, 2)").fetchone()
            other.execute("SELECT 1")  # the superuser's session: idle between statements does not block
            other.rollback()
            assert reclaim() == (2, None)
            other.execute("SELECT count(*) FROM sync_outbox")  # in a transaction that drew no id and
            assert reclaim() == (2, None)                      # holds no snapshot: cannot commit an old id
            other.execute("SELECT pg_current_xact_id()")       # with an xid (as after an outbox insert)
            assert reclaim() == (0, "hidden_transaction")
            assert leases(docs) == 2
            docs.execute(f'GRANT pg_read_all_stats TO "{role}"')
            assert reclaim() == (2, None)  # seen now; started after those releases: they go
            other.rollback()
    finally:
        docs.execute(f'DROP OWNED BY "{role}"')
        docs.execute(f'DROP ROLE "{role}"')

"""The outbox's space stays bounded by design (issue 11). Since migration 015 there is no per-row
state at all: order per row is the claim's rule (a candidate is claimed only when no older event of
its row is left in sync_outbox), so nothing outlives a row's last event, and nothing needs
reclaiming (the lease table, its reclaimer src/lease_gc.c and `prune`'s lease walk are gone).
What the lease's fence did for late events is now the writers' contract (sql/functions.sql,
sync_outbox_claim): a writer holds the source row's lock from before it draws an event's id until it
commits, so a row's events commit in id order; these tests check that, and what is left of the
old machinery for daemons of the previous release.

Shipped defaults for everything the guarantees depend on; the conftest's sweep/retry timers are
shortened (how often, not what may happen).
"""
import pathlib
import threading

import psycopg
import pytest

from conftest import BIN, ROOT, outbox_counts, wait_until  # noqa: F401
from docs_table import DIM, actual, docs, expected, in_sync, rule, vec  # noqa: F401

N_MIGRATIONS = len(list((ROOT / "sql" / "migrations").glob("*.sql")))


def no_lease_table(db):
    return db.execute("SELECT to_regclass('sync_outbox_lease') IS NULL").fetchone()[0]


@pytest.mark.daemon_role
def test_no_per_row_state_under_distinct_key_inserts(make_daemon, docs, qdrant):
    """Insert-only load, every key new: before migration 015 the lease table held one row per key
    until the reclaimer deleted it; now nothing but the events themselves, deleted by their acks.
    Runs as the least-privilege daemon role of conf/roles.sql (no lease table to be granted)."""
    d = make_daemon({"rule.docs": rule()})
    d.cli("apply")
    p = d.start()
    rounds, per_round = 20, 250
    for r in range(rounds):
        docs.execute("INSERT INTO docs (id, title, emb) SELECT g, 't' || g, ARRAY[g %% 7, 0, 1, g %% 3]::real[]"
                     " FROM generate_series(%s::bigint, %s::bigint) g", (r * per_round + 1, (r + 1) * per_round))
    total = rounds * per_round
    wait_until(lambda: in_sync(docs, qdrant), timeout=120, what="every row in Qdrant", explain=d.log_text)
    wait_until(lambda: outbox_counts(docs) == (0, 0), what="every event acknowledged", explain=d.log_text)
    assert no_lease_table(docs)
    assert len(actual(qdrant)) == total
    assert d.stop(p) == 0


def test_a_writer_holding_the_row_commits_its_older_event_first(make_daemon, docs, qdrant):
    """A path that draws an event's id early and commits late (here: a snapshot written straight
    into the outbox by a transaction that stays open) while the row changes again: the contract is
    that it holds the row's lock (FOR SHARE here, as backfill and reconcile --fix do) from before the
    id until its commit. The newer change then waits for it, its event is newer in id AND commit
    order, and the older snapshot can never land on top of it (before migration 015 the lease's
    claimed_id fenced a late event; now nothing needs to)."""
    d = make_daemon({"rule.docs": rule()})
    d.cli("apply")
    docs.execute("INSERT INTO docs (id, title, emb) VALUES (1, 'v1', %s)", (vec(1),))
    ev = docs.execute("SELECT event_type, rule, source_table, row_key::text, payload::text FROM sync_outbox"
                      " WHERE row_key = '{\"id\": 1}'").fetchone()
    p = d.start()
    wait_until(lambda: in_sync(docs, qdrant), what="v1 synced")
    late = psycopg.connect(dbname=docs.info.dbname)  # not autocommit: stays open
    done = {}
    try:
        late.execute("SELECT 1 FROM docs WHERE id = 1 FOR SHARE")  # the row's lock first
        stale = ev[4].replace('"v1"', '"stale"')
        assert stale != ev[4]
        late.execute("INSERT INTO sync_outbox (event_type, rule, source_table, row_key, op, payload)"
                     " VALUES (%s, %s, %s, %s::jsonb, 'upsert', %s::json)", (ev[0], ev[1], ev[2], ev[3], stale))
        late_id = late.execute("SELECT max(id) FROM sync_outbox").fetchone()[0]

        def update():
            with psycopg.connect(dbname=docs.info.dbname, autocommit=True) as w:
                w.execute("UPDATE docs SET title = 'v2', n = 2 WHERE id = 1")
                done["id"] = w.execute("SELECT max(id) FROM sync_outbox").fetchone()[0]
        t = threading.Thread(target=update)
        t.start()
        t.join(timeout=1.0)
        assert t.is_alive(), "the newer change did not wait for the row's lock"
        late.commit()
        t.join(timeout=20)
        assert not t.is_alive()
    finally:
        late.close()
    wait_until(lambda: outbox_counts(docs) == (0, 0) and in_sync(docs, qdrant), what="v2 applied last",
               explain=d.log_text)
    assert actual(qdrant)[1][0]["title"] == "v2"
    assert done["id"] is None or done["id"] > late_id
    assert d.stop(p) == 0


def test_prune_and_the_old_reclaimers_function(make_daemon, docs, qdrant):
    """`prune` prunes dead letters only (no lease table); sync_outbox_reclaim_leases, which a daemon
    of the previous release still calls on its timer beside an upgraded outbox, answers "nothing to
    reclaim, the end of the table" (kept for one release)."""
    d = make_daemon({"rule.docs": rule()})
    d.cli("apply")
    docs.execute("INSERT INTO sync_outbox_dead (id, event_type, rule, source_table, row_key, op, attempts,"
                 " max_attempts, created_at, died_at) VALUES (999999, 'docs', 'docs', 'public.docs', '{\"id\": 5}',"
                 " 'upsert', 3, 3, now(), now() - interval '30 days')")
    out = d.cli("prune").stdout
    assert "pruned 1 dead letter(s)" in out and "lease" not in out, out
    assert docs.execute("SELECT * FROM sync_outbox_reclaim_leases(NULL, NULL, 5000)").fetchall() == \
        [(0, 0, None, None, None)]
    assert no_lease_table(docs)


def test_upgrade_drops_the_lease_table_and_keeps_the_rest(make_daemon, docs, qdrant):
    """Migrations 005..015 on a schema at version 4 holding leases and a dead letter: `init` adds the
    dead-row index, drops the lease table (015), keeps every event and dead letter."""
    d = make_daemon({"rule.docs": rule()})
    d.cli("init")
    docs.execute("DROP INDEX sync_outbox_dead_row_idx")
    docs.execute("UPDATE sync_outbox_meta SET value = '4' WHERE key = 'schema_version'")
    docs.execute("CREATE TABLE sync_outbox_lease (rule text NOT NULL, row_key jsonb NOT NULL, owner text,"
                 " expires_at timestamptz, claimed_id bigint NOT NULL, leased_at timestamptz, released_at timestamptz,"
                 " CONSTRAINT sync_outbox_lease_pkey PRIMARY KEY (rule, row_key))")
    docs.execute("INSERT INTO sync_outbox_lease (rule, row_key, claimed_id, released_at) VALUES"
                 " ('docs', '{\"id\": 1}', 10, now() - interval '1 s'), ('docs', '{\"id\": 2}', 11, now() - interval '1 s')")
    docs.execute("INSERT INTO sync_outbox_dead (id, event_type, rule, source_table, row_key, op, attempts,"
                 " max_attempts, created_at) VALUES (9, 'docs', 'docs', 'public.docs', '{\"id\": 1}', 'upsert', 3, 3, now())")
    r = d.cli("run", check=False)
    assert r.returncode != 0 and "init" in r.stderr  # a version-4 schema is refused until upgraded
    d.cli("init")
    n = len(list((pathlib.Path(__file__).resolve().parents[2] / "sql" / "migrations").glob("*.sql")))
    assert docs.execute("SELECT value FROM sync_outbox_meta WHERE key = 'schema_version'").fetchone()[0] == str(n)
    assert docs.execute("SELECT to_regclass('sync_outbox_dead_row_idx') IS NOT NULL").fetchone()[0]
    assert docs.execute("SELECT count(*) FROM sync_outbox_dead").fetchone()[0] == 1
    assert no_lease_table(docs)


def test_a_claim_the_role_cannot_see_is_never_recovered(make_daemon, docs, pgdb):
    """Without pg_read_all_stats another role's backend_start reads as NULL: a claim of such a
    session counts as alive while its pid exists (the sweep must never free a claim that is still
    working); with pg_read_all_stats the start is seen, and a claim of a gone backend is freed.
    (Before migration 015 this visibility rule also paused the lease reclaimer.)"""
    d = make_daemon({"rule.docs": rule()})
    d.cli("init")
    role = "p2q_l11_" + pgdb[-8:]
    docs.execute(f'CREATE ROLE "{role}"')
    try:
        docs.execute(f'GRANT SELECT, UPDATE, DELETE ON sync_outbox TO "{role}"')
        docs.execute(f'GRANT SELECT, INSERT, UPDATE, DELETE ON sync_outbox_instance TO "{role}"')
        docs.execute(f'GRANT SELECT, INSERT, UPDATE ON sync_outbox_dead TO "{role}"')
        docs.execute("INSERT INTO sync_outbox (event_type, rule, source_table, row_key, op, payload)"
                     " SELECT 'docs', 'docs', 'public.docs', jsonb_build_object('id', g), 'upsert', '{}'"
                     " FROM generate_series(1, 4) g")
        with psycopg.connect(dbname=pgdb, autocommit=True) as low, \
                psycopg.connect(dbname=pgdb, autocommit=True) as other:
            low.execute(f'SET ROLE "{role}"')
            me = other.execute("SELECT pg_backend_pid()::text || '.' || (extract(epoch FROM backend_start)"
                               " * 1000000)::bigint::text FROM pg_stat_activity WHERE pid = pg_backend_pid()").fetchone()[0]
            mine = [r[0] for r in other.execute("SELECT id FROM sync_outbox_claim(%s, ARRAY['docs'], NULL, 2, 600000)",
                                                (me,)).fetchall()]
            ghost = [r[0] for r in other.execute("SELECT id FROM sync_outbox_claim('999999995.1', ARRAY['docs'],"
                                                 " NULL, 2, 600000)").fetchall()]
            assert len(mine) == 2 and len(ghost) == 2
            assert low.execute("SELECT sync_outbox_recover(0)").fetchone()[0] == 2  # the ghost's only
            assert docs.execute("SELECT count(*) FROM sync_outbox WHERE id = ANY (%s) AND claimed_by = %s",
                                (mine, me)).fetchone()[0] == 2, "a hidden live session's claim was freed"
            docs.execute(f'GRANT pg_read_all_stats TO "{role}"')
            assert low.execute("SELECT sync_outbox_recover(0)").fetchone()[0] == 0  # seen alive now
            assert docs.execute("SELECT count(*) FROM sync_outbox WHERE claimed_by = %s", (me,)).fetchone()[0] == 2
    finally:
        docs.execute(f'DROP OWNED BY "{role}"')
        docs.execute(f'DROP ROLE "{role}"')

"""The lease table's key_hash is written by the statements that insert leases (migration 014).

The lease's primary key is (key_hash, rule, row_key), and every claim upserts ON CONFLICT on it: a
lease whose key_hash is not jsonb_hash_extended(row_key, 0) would be a second lease of its row, the
next claim's upsert would not find it, and two claimers could hold one row (order per row and the
claimed_id fence lost, silently). Until migration 014 PostgreSQL computed the column (a stored
generated column); now the claim's statements do. Here a CHECK constraint, added by the test only,
makes any lease written with another hash fail at once, while every path that writes leases runs:
the claim's one-candidate and set statements (claimed, held, coalesced, released), acks of every
outcome alone and riding, the sweep's and the liveness check's recovery, the lease reclaimer and
`prune`, `retry --dead`, and a daemon's drain (the guard is the check: a statement that writes
another hash fails, and the test with it). And `init` on an install at version 13 keeps its
pending leases as they were, and does not deadlock with a claim in flight.
"""
import json
import threading

import psycopg

from conftest import wait_until
from docs_table import docs, in_sync, rule, vec  # noqa: F401

# row keys of every JSON kind the capture can write (composite keys are objects of several columns)
KEYS = [{"id": 1}, {"id": "a"}, {"id": 1.5}, {"id": -9223372036854775808}, {"id": "\u00fcn\u00ef c\u00f8d\u00e9"},
        {"id": 2, "tenant": "x"}, {"id": None}, {"id": [1, {"k": True}]}]

CLAIM = ("SELECT id, rule, op, row_key::text FROM sync_outbox_claim(%s, ARRAY['docs'], NULL, %s, %s, true,"
         " %s::bigint[], %s::text[], %s::jsonb[], %s::text[], %s::int[], %s::text[])")
ACK = "SELECT sync_outbox_ack(%s, %s::bigint[], %s::text[], %s::jsonb[], %s::text[], %s::int[], %s::text[])"


def guard(db):
    db.execute("ALTER TABLE sync_outbox_lease ADD CONSTRAINT test_key_hash"
               " CHECK (key_hash = pg_catalog.jsonb_hash_extended(row_key, 0))")


def as_version_13(db):
    """The lease table as migrations 009-013 left it: key_hash a stored generated column."""
    db.execute("ALTER TABLE sync_outbox_lease DROP COLUMN key_hash")
    db.execute("ALTER TABLE sync_outbox_lease ADD COLUMN key_hash bigint"
               " GENERATED ALWAYS AS (pg_catalog.jsonb_hash_extended(row_key, 0)) STORED")
    db.execute("ALTER TABLE sync_outbox_lease ADD CONSTRAINT sync_outbox_lease_pkey PRIMARY KEY (key_hash, rule, row_key)")
    db.execute("UPDATE sync_outbox_meta SET value = '13' WHERE key = 'schema_version'")


def add(db, key, max_attempts=10):
    return db.execute("INSERT INTO sync_outbox (event_type, rule, source_table, row_key, op, payload, max_attempts)"
                      " VALUES ('docs', 'docs', 'public.docs', %s::jsonb, 'upsert', '{}', %s) RETURNING id",
                      (json.dumps(key), max_attempts)).fetchone()[0]


def args(rows, outcome):
    """An ack's arrays for the claim's rows (outcome for events, 'release' for release rows)."""
    rows = [r for r in rows if r[2] in ("upsert", "delete", "release")]
    return ([r[0] for r in rows], [r[1] for r in rows], [r[3] for r in rows],
            [outcome if r[2] != "release" else "release" for r in rows], [0] * len(rows), ["e"] * len(rows))


def claim(db, owner, limit=256, lease_ms=30000, ack=None):
    return db.execute(CLAIM, (owner, limit, lease_ms, *(ack or [None] * 6))).fetchall()


def test_every_lease_written_has_its_row_keys_hash(make_daemon, docs, qdrant):  # noqa: F811
    d = make_daemon({"rule.docs": rule(), "worker.w": {"event_types": "docs", "batch_size": "4"}})
    d.cli("init")
    db = docs
    guard(db)
    # the one-candidate statement: a new lease per key (INSERT), claimed
    for k in KEYS:
        add(db, k)
        rows = claim(db, "11.1")
        assert [r[2] for r in rows] == ["upsert"], rows
        db.execute(ACK, ("11.1", *args(rows, "done")))
    # ... and on released leases (DO UPDATE), held, coalesced + release, acks riding
    rows = None
    for k in KEYS:
        add(db, k)
        rows = claim(db, "12.1", ack=args(rows, "done") if rows else None)
        add(db, k)
        assert [r[2] for r in claim(db, "13.1")] == ["held"]
    db.execute(ACK, ("12.1", *args(rows, "done")))
    # the set statement: several rows, several events per row (coalesced), new and released leases
    for k in KEYS + [{"id": 1000 + i} for i in range(20)]:
        add(db, k)
    rows = claim(db, "14.1")
    assert {r[2] for r in rows} >= {"upsert", "coalesced"} and len({r[3] for r in rows}) == len(KEYS) + 20, rows
    # acks of every outcome (the general statement): retry and requeue keep the events, dead buries
    ups = [r for r in rows if r[2] == "upsert"]
    for outcome, part in (("retry", ups[0::3]), ("requeue", ups[1::3]), ("dead", ups[2::3])):
        db.execute(ACK, ("14.1", *args(part, outcome)))
    # a claimer that is gone (no such backend): the sweep frees its claims and releases its leases
    assert len(claim(db, "999999.1", limit=5)) == 5
    assert db.execute("SELECT sync_outbox_recover(0)").fetchone()[0] == 5
    # ... and one the registry knows is dead: the liveness check
    db.execute("INSERT INTO sync_outbox_instance (owner, instance, pid, backend_start, registered_at, gone_since)"
               " VALUES ('999998.1', 'dead:1:1', 999998, now() - interval '1 hour',"
               " GREATEST(now() - interval '20 seconds', pg_postmaster_start_time() + interval '1 ms'),"
               " now() - interval '10 seconds')")
    assert len(claim(db, "999998.1", limit=5)) == 5
    assert db.execute("SELECT events FROM sync_outbox_reap(0)").fetchall() == [(5,)]
    # claims of rows whose leases the recovery released; `retry --dead` brings the dead letters back
    # below their leases' claimed_id; the lease reclaimer and `prune` delete released leases
    rows = claim(db, "15.1")
    assert rows
    db.execute(ACK, ("15.1", *args(rows, "done")))
    assert "dead event(s)" in d.cli("retry", "--dead").stdout
    db.execute("SELECT * FROM sync_outbox_reclaim_leases(NULL, NULL, 1000)")
    d.cli("prune")
    while rows := claim(db, "16.1"):
        db.execute(ACK, ("16.1", *args(rows, "done")))
    assert db.execute("SELECT count(*) FROM sync_outbox").fetchone()[0] == 0
    # a daemon's drain (its own claims, acks, lease reclaimer and sweep) over rows leased before
    d.cli("apply")
    for i in range(1, 41):
        docs.execute("INSERT INTO docs (id, title, emb) VALUES (%s, %s, %s)", (i, f"t{i}", vec(i)))
    d.start()
    for n in range(3):
        docs.execute("UPDATE docs SET title = title || '+', n = n + 1 WHERE id %% 3 = %s", (n,))
    wait_until(lambda: in_sync(docs, qdrant), what="drained with the guard on")
    assert d.stop(d.procs[0]) == 0
    assert db.execute("SELECT count(*) FROM sync_outbox_lease").fetchone()[0] > 0


def test_init_at_version_13_keeps_pending_leases(make_daemon, db):
    """A lease table as migration 009 made it (key_hash generated), holding held, expired and
    released leases: init's migration 014 keeps every lease, its hash and the primary key, and
    the next claims find them (a held lease still holds its row)."""
    d = make_daemon({"rule.docs": rule()})
    d.cli("init")
    as_version_13(db)
    # held (unexpired), expired, and released leases
    db.execute("INSERT INTO sync_outbox_lease (rule, row_key, owner, expires_at, claimed_id, leased_at, released_at)"
               " VALUES ('docs', %s::jsonb, '21.1', now() + interval '5 minutes', 101, now(), NULL),"
               " ('docs', %s::jsonb, '22.1', now() - interval '1 minute', 102, now() - interval '2 minutes', NULL),"
               " ('docs', %s::jsonb, NULL, NULL, 103, now() - interval '2 minutes', now() - interval '1 second')",
               [json.dumps(k) for k in KEYS[:3]])
    before = db.execute("SELECT key_hash, rule, row_key, owner, expires_at, claimed_id, leased_at, released_at"
                        " FROM sync_outbox_lease ORDER BY 1, 2, 3").fetchall()
    assert len(before) == 3
    assert "installed or upgraded" in d.cli("init").stdout
    assert db.execute("SELECT value FROM sync_outbox_meta WHERE key = 'schema_version'").fetchone()[0] == "14"
    assert db.execute("SELECT attgenerated FROM pg_attribute WHERE attrelid = 'sync_outbox_lease'::regclass"
                      " AND attname = 'key_hash'").fetchone()[0] == ""
    assert db.execute("SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'sync_outbox_lease_pkey'"
                      ).fetchone()[0] == "PRIMARY KEY (key_hash, rule, row_key)"
    assert db.execute("SELECT key_hash, rule, row_key, owner, expires_at, claimed_id, leased_at, released_at"
                      " FROM sync_outbox_lease ORDER BY 1, 2, 3").fetchall() == before
    assert "already up to date" in d.cli("init").stdout  # re-runnable: nothing left to do
    guard(db)
    db.execute("SELECT setval(pg_get_serial_sequence('sync_outbox', 'id'), 1000)")
    ids = [add(db, k) for k in KEYS[:3]]
    rows = claim(db, "n.1")
    # the held row's event waits; the expired and the released leases are taken over (their
    # claimed_id is below the new events' ids)
    assert sorted((r[0], r[2]) for r in rows) == [(1, "held"), (ids[1], "upsert"), (ids[2], "upsert")], rows
    assert db.execute("SELECT count(*) FROM sync_outbox_lease").fetchone()[0] == 3


def test_init_at_version_13_beside_a_claim(make_daemon, db, pgdb):
    """The upgrade to 14 while a claim holds its candidates and has yet to write their leases (the
    order every claim takes its locks in: sync_outbox's rows, then sync_outbox_lease), with new
    functions to install (their DROP ... CASCADE locks sync_outbox): the migration takes
    sync_outbox first, so init waits for the claim's transaction and neither is aborted. (With the
    lease table locked first, the claim's lease INSERT and init's wait for sync_outbox were a
    deadlock: PostgreSQL aborted one of them after deadlock_timeout.)"""
    d = make_daemon({"rule.docs": rule()})
    d.cli("init")
    as_version_13(db)
    db.execute("UPDATE sync_outbox_meta SET value = 'an older build' WHERE key = 'functions_hash'")
    ids = [add(db, k) for k in KEYS[:2]]
    out = {}
    with psycopg.connect(dbname=pgdb) as claim_tx:
        assert claim_tx.execute("SELECT id FROM sync_outbox ORDER BY id FOR UPDATE SKIP LOCKED").fetchall() == \
            [(i,) for i in ids]
        t = threading.Thread(target=lambda: out.update(init=d.cli("init", check=False)))
        t.start()
        wait_until(lambda: db.execute("SELECT count(*) FROM pg_locks WHERE NOT granted AND locktype = 'relation'"
                                      " AND relation = 'sync_outbox'::regclass").fetchone()[0] > 0,
                   what="init waiting for sync_outbox")
        for i, k in zip(ids, KEYS):  # as a version-13 claim writes them (key_hash generated)
            claim_tx.execute("INSERT INTO sync_outbox_lease (rule, row_key, owner, expires_at, claimed_id, leased_at)"
                             " VALUES ('docs', %s::jsonb, 'c.1', now() + interval '1 minute', %s, now())",
                             (json.dumps(k), i))
        claim_tx.commit()
    t.join(120)
    assert out["init"].returncode == 0, out["init"].stderr
    assert "installed or upgraded" in out["init"].stdout
    assert db.execute("SELECT value FROM sync_outbox_meta WHERE key = 'schema_version'").fetchone()[0] == "14"
    assert db.execute("SELECT count(*) FROM sync_outbox_lease WHERE owner = 'c.1'").fetchone()[0] == 2

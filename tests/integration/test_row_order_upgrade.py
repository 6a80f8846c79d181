"""Order per row without the lease table (migration 015), for every kind of row key, and the upgrade
that drops the table beside running daemons.

Since migration 015 a candidate is claimed only when no older event of its row (rule, row_key) is
left in sync_outbox outside the claim's own candidates, looked up through sync_outbox_row_idx
(jsonb_hash_extended(row_key, 0), migration 012). A key whose hash the probe did not meet would
let two claimers apply one row's events out of order, silently; before 015 the same property was
the lease's key_hash (this file was test_lease_key_hash.py). Here every JSON kind of key the capture
writes, each also written with other text for the same jsonb value, must hold its row's newer event
while the older one is in flight. And `init` on an install at version 14 (leases of a running
daemon in the table) drops the table without touching an event, the in-flight ones still holding
their rows, and does not deadlock with an old daemon's claim in flight.
"""
import json
import threading

import psycopg

from conftest import wait_until
from docs_table import docs, rule  # noqa: F401

# row keys of every JSON kind the capture can write (composite keys are objects of several columns),
# each with a second spelling of the same jsonb value
KEYS = [('{"id": 1}', '{"id":1.0}'), ('{"id": "a"}', '{"id":"a"}'), ('{"id": 1.5}', '{"id": 1.50}'),
        ('{"id": -9223372036854775808}', '{"id": -9223372036854775808.0}'),
        ('{"id": "\\u00fcn\\u00ef c\\u00f8d\\u00e9"}', '{"id": "ünï cødé"}'),
        ('{"id": 2, "tenant": "x"}', '{"tenant": "x", "id": 2}'), ('{"id": null}', '{ "id" : null }'),
        ('{"id": [1, {"k": true}]}', '{"id": [1.0, {"k": true}]}')]

CLAIM = "SELECT id, op FROM sync_outbox_claim(%s, ARRAY['docs'], NULL, 256, 30000, true)"
ACK = ("SELECT sync_outbox_ack(%s, %s::bigint[], NULL::text[], NULL::jsonb[], %s::text[], %s::int[],"
       " %s::text[])")


def add(db, key):
    return db.execute("INSERT INTO sync_outbox (event_type, rule, source_table, row_key, op, payload)"
                      " VALUES ('docs', 'docs', 'public.docs', %s::jsonb, 'upsert', '{}') RETURNING id",
                      (key,)).fetchone()[0]


def test_every_key_kind_holds_its_rows_newer_event(make_daemon, db):
    d = make_daemon({"rule.docs": rule()})
    d.cli("init")
    first = [add(db, k[0]) for k in KEYS]
    rows = db.execute(CLAIM, ("n.1",)).fetchall()
    assert sorted(r[0] for r in rows) == first, rows
    second = [add(db, k[1]) for k in KEYS]  # the same rows, spelled otherwise
    rows = db.execute(CLAIM, ("n.2",)).fetchall()
    assert rows == [(len(KEYS), "held")], rows  # every row held by its older event in flight
    db.execute(ACK, ("n.1", first, ["done"] * len(first), [0] * len(first), [None] * len(first)))
    rows = db.execute(CLAIM, ("n.2",)).fetchall()
    assert sorted(r[0] for r in rows) == second, rows
    # two pending events of each row in one claim: the older coalesced, the newer claimed
    db.execute(ACK, ("n.2", second, ["done"] * len(second), [0] * len(second), [None] * len(second)))
    a = [add(db, k[0]) for k in KEYS]
    b = [add(db, k[1]) for k in KEYS]
    rows = db.execute(CLAIM, ("n.3",)).fetchall()
    assert sorted(rows) == sorted([(i, "coalesced") for i in a] + [(i, "upsert") for i in b]), rows


def as_version_14(db):
    """The lease table as migration 014 left it, and the schema at version 14."""
    db.execute("CREATE TABLE sync_outbox_lease (rule text NOT NULL, row_key jsonb NOT NULL, owner text,"
               " expires_at timestamptz, claimed_id bigint NOT NULL, leased_at timestamptz, released_at timestamptz,"
               " key_hash bigint NOT NULL, CONSTRAINT sync_outbox_lease_pkey PRIMARY KEY (key_hash, rule, row_key))")
    db.execute("UPDATE sync_outbox_meta SET value = '14' WHERE key = 'schema_version'")


def test_init_at_version_14_keeps_events_in_flight(make_daemon, db):
    """A running daemon of the previous release has an event in flight (claimed, its lease held): the
    upgrade drops the lease table and leaves the event as it is; under the new rule the event still
    holds its row's newer event, exactly as its lease did."""
    d = make_daemon({"rule.docs": rule()})
    d.cli("init")
    as_version_14(db)
    e1 = add(db, KEYS[0][0])
    db.execute("UPDATE sync_outbox SET claimed_by = '21.1', claimed_at = now(), attempts = 1,"
               " available_at = now() + interval '5 minutes' WHERE id = %s", (e1,))
    db.execute("INSERT INTO sync_outbox_lease (key_hash, rule, row_key, owner, expires_at, claimed_id, leased_at)"
               " VALUES (jsonb_hash_extended(%s::jsonb, 0), 'docs', %s::jsonb, '21.1', now() + interval '5 minutes',"
               " %s, now())", (KEYS[0][0], KEYS[0][0], e1))
    before = db.execute("SELECT * FROM sync_outbox ORDER BY id").fetchall()
    assert "installed or upgraded" in d.cli("init").stdout
    assert db.execute("SELECT value FROM sync_outbox_meta WHERE key = 'schema_version'").fetchone()[0] == "15"
    assert db.execute("SELECT to_regclass('sync_outbox_lease')").fetchone()[0] is None
    assert db.execute("SELECT * FROM sync_outbox ORDER BY id").fetchall() == before
    assert "already up to date" in d.cli("init").stdout  # re-runnable: nothing left to do
    e2 = add(db, KEYS[0][1])
    assert db.execute(CLAIM, ("n.1",)).fetchall() == [(1, "held")]
    # the old daemon's ack ('release' rows included) still works by the same name
    db.execute(ACK, ("21.1", [e1, e1], ["done", "release"], [0, 0], [None, None]))
    assert db.execute(CLAIM, ("n.1",)).fetchall() == [(e2, "upsert")]


def test_init_at_version_14_beside_a_claim(make_daemon, db, pgdb):
    """The upgrade to 15 while an old daemon's claim holds its candidates and has yet to write their
    leases (the order every claim of that release takes its locks in: sync_outbox's rows, then
    sync_outbox_lease), with new functions to install: migration 015 takes sync_outbox first, so
    init waits for the claim's transaction and neither is aborted (migration 014's lesson)."""
    d = make_daemon({"rule.docs": rule()})
    d.cli("init")
    as_version_14(db)
    db.execute("UPDATE sync_outbox_meta SET value = 'an older build' WHERE key = 'functions_hash'")
    ids = [add(db, k[0]) for k in KEYS[:2]]
    out = {}
    with psycopg.connect(dbname=pgdb) as claim_tx:
        assert claim_tx.execute("SELECT id FROM sync_outbox ORDER BY id FOR UPDATE SKIP LOCKED").fetchall() == \
            [(i,) for i in ids]
        t = threading.Thread(target=lambda: out.update(init=d.cli("init", check=False)))
        t.start()
        wait_until(lambda: db.execute("SELECT count(*) FROM pg_locks WHERE NOT granted AND locktype = 'relation'"
                                      " AND relation = 'sync_outbox'::regclass").fetchone()[0] > 0,
                   what="init waiting for sync_outbox")
        for i, k in zip(ids, KEYS):  # as a version-14 claim writes them
            claim_tx.execute("INSERT INTO sync_outbox_lease (key_hash, rule, row_key, owner, expires_at, claimed_id,"
                             " leased_at) VALUES (jsonb_hash_extended(%s::jsonb, 0), 'docs', %s::jsonb, 'c.1',"
                             " now() + interval '1 minute', %s, now())", (k[0], k[0], i))
            claim_tx.execute("UPDATE sync_outbox SET claimed_by = 'c.1', attempts = 1, claimed_at = now(),"
                             " available_at = now() + interval '1 minute' WHERE id = %s", (i,))
        claim_tx.commit()
    t.join(120)
    assert out["init"].returncode == 0, out["init"].stderr
    assert "installed or upgraded" in out["init"].stdout
    assert db.execute("SELECT value FROM sync_outbox_meta WHERE key = 'schema_version'").fetchone()[0] == "15"
    assert db.execute("SELECT to_regclass('sync_outbox_lease')").fetchone()[0] is None
    assert db.execute("SELECT count(*) FROM sync_outbox WHERE claimed_by = 'c.1'").fetchone()[0] == 2


def test_init_at_version_14_applies_the_leases_fences_once(make_daemon, db):
    """The previous release's `retry --dead` brought a dead letter back with its old id after a newer
    event of its row was claimed (the lease's claimed_id above it): that release's next claim would
    have superseded it. Migration 015 does that once before dropping the table (rv13, H2); a newer
    pending event of the row, and every other row's events, stay."""
    d = make_daemon({"rule.docs": rule()})
    d.cli("init")
    as_version_14(db)
    old = add(db, KEYS[0][0])      # the dead letter brought back, below the fence
    fence = add(db, KEYS[0][0])    # stands for the newer event that was claimed (and applied)
    db.execute("DELETE FROM sync_outbox WHERE id = %s", (fence,))
    newer = add(db, KEYS[0][0])    # a newer pending event of the row: above the fence
    other = add(db, KEYS[1][0])
    db.execute("INSERT INTO sync_outbox_lease (key_hash, rule, row_key, owner, expires_at, claimed_id, leased_at,"
               " released_at) VALUES (jsonb_hash_extended(%s::jsonb, 0), 'docs', %s::jsonb, NULL, NULL, %s,"
               " now(), now())", (KEYS[0][0], KEYS[0][0], fence))
    assert "installed or upgraded" in d.cli("init").stdout
    assert [r[0] for r in db.execute("SELECT id FROM sync_outbox ORDER BY id").fetchall()] == [newer, other]
    assert db.execute(CLAIM, ("n.1",)).fetchall() == [(newer, "upsert"), (other, "upsert")]


def test_init_at_version_14_fences_an_old_event_alone_and_keeps_one_in_flight(make_daemon, db):
    """rv13b: the fence must apply without a newer pending event of the row (the old event alone
    would come back as an upsert), a spent one goes to the dead letters (as the sweep would have
    moved it), and an event below the fence whose own claim is still running stays."""
    d = make_daemon({"rule.docs": rule()})
    d.cli("init")
    as_version_14(db)
    alone = add(db, KEYS[0][0])
    spent = add(db, KEYS[1][0])
    db.execute("UPDATE sync_outbox SET attempts = 10, max_attempts = 10 WHERE id = %s", (spent,))
    flying = add(db, KEYS[2][0])
    db.execute("UPDATE sync_outbox SET claimed_by = '31.1', claimed_at = now(), attempts = 1,"
               " available_at = now() + interval '5 minutes' WHERE id = %s", (flying,))
    fence = add(db, KEYS[3][0])  # an id above the three
    db.execute("DELETE FROM sync_outbox WHERE id = %s", (fence,))
    for k in KEYS[:3]:
        db.execute("INSERT INTO sync_outbox_lease (key_hash, rule, row_key, owner, expires_at, claimed_id, leased_at,"
                   " released_at) VALUES (jsonb_hash_extended(%s::jsonb, 0), 'docs', %s::jsonb, NULL, NULL, %s,"
                   " now(), now())", (k[0], k[0], fence))
    assert "installed or upgraded" in d.cli("init").stdout
    assert [r[0] for r in db.execute("SELECT id FROM sync_outbox ORDER BY id").fetchall()] == [flying]
    assert [r[0] for r in db.execute("SELECT id FROM sync_outbox_dead").fetchall()] == [spent]
    assert db.execute(CLAIM, ("n.1",)).fetchall() == []

"""sync_outbox_claim's one-candidate path gives what its set statement gives (issue 11), and order
per row without a lease (migration 015: a candidate is claimed only when no older event of its row
is left in the outbox outside the claim's own candidates).

At low rates most claims find one event, and the claim handles a lone candidate with one plain
UPDATE instead of the statement that coalesces a batch (sql/functions.sql). Each case below runs
twice: with the case's event as the only candidate (the plain path) and with an unrelated event
beside it (two candidates: the set statement); the rows returned for the case's row and the
event's state must be the same.
"""
import json

import pytest

from conftest import wait_until  # noqa: F401  (conftest fixtures: make_daemon, db)
from docs_table import docs, rule  # noqa: F401

CLAIM = ("SELECT id, rule, op, row_key::text, attempts FROM sync_outbox_claim(%s, %s, NULL, 256, 30000, %s,"
         " %s::bigint[], %s::text[], %s::jsonb[], %s::text[], %s::int[], %s::text[])")


@pytest.fixture
def outbox(make_daemon, db):
    d = make_daemon({"rule.docs": rule()})
    d.cli("init")
    return db


def add(db, key, at_id=None):
    """An event of row `key`; with at_id, that explicit id (below ids already handed out), lowering
    the claim's mark in the same transaction as the contract asks."""
    with db.transaction():
        if at_id is not None:
            db.execute("SELECT sync_outbox_mark_lower('docs', %s)", (at_id,))
            return db.execute("INSERT INTO sync_outbox (id, event_type, rule, source_table, row_key, op, payload)"
                              " OVERRIDING SYSTEM VALUE VALUES (%s, 'docs', 'docs', 'public.docs', %s::jsonb,"
                              " 'upsert', '{}') RETURNING id", (at_id, json.dumps({"id": key}))).fetchone()[0]
        return db.execute("INSERT INTO sync_outbox (event_type, rule, source_table, row_key, op, payload)"
                          " VALUES ('docs', 'docs', 'public.docs', %s::jsonb, 'upsert', '{}') RETURNING id",
                          (json.dumps({"id": key}),)).fetchone()[0]


def claim(db, owner, held=True, ack=None):
    """One claim; ack = [(id, key, outcome)] rides on it. Returns its rows."""
    ack = ack or []
    return db.execute(CLAIM, (owner, ["docs"], held, [a[0] for a in ack] or None, ["docs"] * len(ack) or None,
                              [json.dumps({"id": a[1]}) for a in ack] or None, [a[2] for a in ack] or None,
                              [0] * len(ack) or None, [None] * len(ack) or None)).fetchall()


def event(db, i):
    return db.execute("SELECT claimed_by, attempts FROM sync_outbox WHERE id = %s", (i,)).fetchone()


def of_row(rows, key):
    return sorted((r[0], r[2], r[4]) for r in rows if r[3] == json.dumps({"id": key}) or r[2] == "held")


@pytest.mark.parametrize("beside", [False, True], ids=["one candidate", "two candidates"])
def test_claimed_held_and_coalesced_rows_are_the_same_on_both_paths(outbox, beside):
    db = outbox
    other = [1000] if beside else None

    def another():
        """the unrelated row's next event (the previous one's claim, done)"""
        if other:
            db.execute("DELETE FROM sync_outbox WHERE row_key = %s::jsonb", (json.dumps({"id": other[0]}),))
            other[0] += 1
            add(db, other[0])

    # claimed: the event is updated (attempt counted)
    e1 = add(db, 1)
    another()
    rows = claim(db, "t.1")
    assert of_row(rows, 1) == [(e1, "upsert", 1)], rows
    assert event(db, e1) == ("t.1", 1)
    # held: a newer event of the same row while t.1 has the older one in flight: one 'held' row
    # (id = how many rows were held back), nothing claimed; without p_held no row at all
    e2 = add(db, 1)
    another()
    rows = claim(db, "t.2")
    assert [r for r in rows if r[2] == "held"] == [(1, None, "held", None, 0)], rows
    assert event(db, e2) == (None, 0) and event(db, e1) == ("t.1", 1)
    another()
    rows = claim(db, "t.2", held=False)
    assert not [r for r in rows if r[2] == "held" or r[0] in (e1, e2)], rows
    assert event(db, e2) == (None, 0)
    # the riding ack of e1 deletes it; the claim in the same call takes e2
    another()
    rows = claim(db, "t.1", ack=[(e1, 1, "done")])
    assert of_row(rows, 1) == [(e2, "upsert", 1)], rows
    assert event(db, e1) is None and event(db, e2) == ("t.1", 1)
    claim(db, "t.1", ack=[(e2, 1, "done")])
    assert event(db, e2) is None
    # coalesced: two pending events of the row in one claim: the older deleted, the newer claimed
    db.execute("DELETE FROM sync_outbox")
    e3, e4 = add(db, 1), add(db, 1)
    another()
    rows = claim(db, "t.3")
    assert of_row(rows, 1) == [(e3, "coalesced", 0), (e4, "upsert", 1)], rows
    assert event(db, e3) is None and event(db, e4) == ("t.3", 1)
    # superseded: an older event that only waits for a retry backoff (acked 'retry': claimed_by
    # NULL) does not hold its row: the newer event is claimed, the older one deleted ('coalesced'),
    # as the lease let the newer one win at once before migration 015
    db.execute("UPDATE sync_outbox SET claimed_by = NULL, available_at = now() + interval '1 hour'"
               " WHERE id = %s", (e4,))
    e5 = add(db, 1)
    another()
    rows = claim(db, "t.4")
    assert of_row(rows, 1) == [(e4, "coalesced", 0), (e5, "upsert", 1)], rows
    assert event(db, e4) is None and event(db, e5) == ("t.4", 1)
    # exhausted (attempts spent, no claim running: waiting for the sweep's dead letter): the claim
    # dead-letters it as the sweep would (never a silent delete) and claims the newer event, as the
    # lease let the newer one pass it at once
    db.execute("UPDATE sync_outbox SET claimed_by = NULL, available_at = now() - interval '1 second',"
               " attempts = max_attempts WHERE id = %s", (e5,))
    e6 = add(db, 1)
    another()
    rows = claim(db, "t.5")
    assert of_row(rows, 1) == [(e6, "upsert", 1)], rows
    assert event(db, e5) is None and event(db, e6) == ("t.5", 1)
    assert db.execute("SELECT attempts FROM sync_outbox_dead WHERE id = %s", (e5,)).fetchone() == (10,)
    # ... but one whose final attempt is still in flight (its claim running) holds the row
    db.execute("UPDATE sync_outbox SET attempts = max_attempts WHERE id = %s", (e6,))
    e7 = add(db, 1)
    another()
    rows = claim(db, "t.6")
    assert [r for r in rows if r[2] == "held"] == [(1, None, "held", None, 0)], rows
    assert event(db, e6) == ("t.5", 10) and event(db, e7) == (None, 0)


def test_an_older_event_beyond_the_claims_limit_holds_its_row(outbox):
    """Order per row across claims: a newer event is never claimed while an older one of its row is
    in the outbox outside the claim (here beyond its LIMIT: the older one is claimable, but in
    another claim's candidates), and two claimers each holding one event of a row never hold each
    other (only an OLDER event holds)."""
    db = outbox
    a1 = add(db, 7)
    b1 = add(db, 8)
    a2 = add(db, 7)
    # a claim of 1 from a2's side: take a1 (the oldest) — a2 is not a candidate
    rows = db.execute("SELECT id, op FROM sync_outbox_claim('t.1', ARRAY['docs'], NULL, 1, 30000, true)").fetchall()
    assert rows == [(a1, "upsert")], rows
    # the next claim sees b1 and a2: b1 claimed, a2 held behind a1 (in flight)
    rows = claim(db, "t.2")
    assert sorted((r[0], r[2]) for r in rows) == [(1, "held"), (b1, "upsert")], rows
    # a1 retried (waiting its backoff) is superseded by a2 (and so would be an older event no worker
    # claims any more: below)
    db.execute("SELECT sync_outbox_ack('t.1', ARRAY[%s]::bigint[], ARRAY['docs'], ARRAY[%s::jsonb], ARRAY['retry'],"
               " ARRAY[3600000], ARRAY['x'])", (a1, json.dumps({"id": 7})))
    rows = claim(db, "t.2")
    assert sorted((r[0], r[2]) for r in rows) == [(a1, "coalesced"), (a2, "upsert")], rows


def test_an_older_event_no_worker_claims_does_not_hold_its_row(outbox):
    """An older event of the row under an event type no worker claims any more (the rule's type was
    renamed), or with a routing key no worker serves: not in flight, so it cannot hold the row
    (it would, for good: it is never claimed, never exhausted); superseded by the newer event
    (rv13, H3)."""
    db = outbox
    old = db.execute("INSERT INTO sync_outbox (event_type, rule, source_table, row_key, op, payload)"
                     " VALUES ('docs_old', 'docs', 'public.docs', '{\"id\": 9}', 'upsert', '{}') RETURNING id").fetchone()[0]
    new = add(db, 9)
    rows = claim(db, "t.1")
    assert sorted((r[0], r[2]) for r in rows) == [(old, "coalesced"), (new, "upsert")], rows
    assert event(db, old) is None

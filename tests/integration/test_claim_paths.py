"""sync_outbox_claim's one-candidate path gives what its set statement gives (issue 11).

At low rates most claims find one event, and the claim handles a lone candidate with plain
statements instead of the statement that coalesces a batch (sql/functions.sql). Each case below runs
twice: with the case's event as the only candidate (the plain path) and with an unrelated event
beside it (two candidates: the set statement); the rows returned for the case's row, the event's
state and the lease must be the same. Leases are made through the functions themselves.
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


def lease(db, key):
    return db.execute("SELECT owner, claimed_id, expires_at IS NOT NULL FROM sync_outbox_lease"
                      " WHERE rule = 'docs' AND row_key = %s::jsonb", (json.dumps({"id": key}),)).fetchone()


def event(db, i):
    return db.execute("SELECT claimed_by, attempts FROM sync_outbox WHERE id = %s", (i,)).fetchone()


def of_row(rows, key):
    return sorted((r[0], r[2], r[4]) for r in rows if r[3] == json.dumps({"id": key}) or r[2] == "held")


@pytest.mark.parametrize("beside", [False, True], ids=["one candidate", "two candidates"])
def test_claimed_held_and_coalesced_rows_are_the_same_on_both_paths(outbox, beside):
    db = outbox
    other = 1000 if beside else None
    # claimed: the event is updated (attempt counted) and its row leased to the claimer
    e1 = add(db, 1)
    if other:
        add(db, other)
    rows = claim(db, "t.1")
    assert of_row(rows, 1) == [(e1, "upsert", 1)], rows
    assert event(db, e1) == ("t.1", 1) and lease(db, 1) == ("t.1", e1, True)
    # held: a newer event of the same row while t.1 holds its lease: one 'held' row (id = how many
    # rows were held back), nothing claimed; without p_held no row at all
    e2 = add(db, 1)
    if other:
        other += 1
        add(db, other)
    rows = claim(db, "t.2")
    assert [r for r in rows if r[2] == "held"] == [(1, None, "held", None, 0)], rows
    assert event(db, e2) == (None, 0) and lease(db, 1) == ("t.1", e1, True)
    if other:
        db.execute("DELETE FROM sync_outbox WHERE claimed_by = 't.2'")  # the other row's claim, done
        other += 1
        add(db, other)
    rows = claim(db, "t.2", held=False)
    assert not [r for r in rows if r[2] == "held" or r[0] in (e1, e2)], rows
    assert event(db, e2) == (None, 0)
    # the riding ack of e1 gives the lease back; the claim in the same call takes e2
    if other:
        db.execute("DELETE FROM sync_outbox WHERE claimed_by = 't.2'")
        other += 1
        add(db, other)
    rows = claim(db, "t.1", ack=[(e1, 1, "done")])
    assert of_row(rows, 1) == [(e2, "upsert", 1)], rows
    assert event(db, e1) is None and lease(db, 1) == ("t.1", e2, True)
    claim(db, "t.1", ack=[(e2, 1, "done")] + ([(None, other, "release")] if other else []))
    assert event(db, e2) is None and lease(db, 1) == (None, e2, False)
    # coalesced: an older event of the row committed after e2 was applied (an explicit lower id):
    # deleted, not applied, and the lease taken for nothing is given back by a 'release' row
    db.execute("DELETE FROM sync_outbox")
    e0 = add(db, 1, at_id=e1)  # e1's id: free again since its ack deleted it
    assert e0 < e2
    if other:
        other += 1
        add(db, other)
    rows = claim(db, "t.3")
    assert of_row(rows, 1) == sorted([(e0, "coalesced", 0), (e2, "release", 0)]), rows
    assert event(db, e0) is None and lease(db, 1) == ("t.3", e2, True)

"""An outbox row that pg2qdrant's own SQL would never write is the event's own fault: it is
dead-lettered at once with an error that says what is wrong, and the events around it flow.

Since migration 010 the outbox has no CHECK on `op` (PostgreSQL prepared it again for every
event the trigger inserted): a row inserted by hand with another op reaches the daemon, which must
neither apply it nor treat it as a lease to give back (it then came back after every lease
expiry until its attempts ran out).
"""
from conftest import outbox_counts, wait_until

RULE = {"table": "public.docs", "key": "id", "columns": "title", "vector_column": "emb",
        "dimension": "2", "distance": "Dot", "collection": "docs"}


def test_an_event_of_unknown_op_is_dead_lettered_with_its_op(make_daemon, db, qdrant):
    db.execute("CREATE TABLE docs (id int PRIMARY KEY, title text, emb real[])")
    d = make_daemon({"rule.docs": RULE})
    d.cli("init")
    d.cli("apply")
    db.execute("INSERT INTO docs VALUES (1, 'a', '{1,2}')")
    db.execute("""INSERT INTO sync_outbox (event_type, rule, source_table, row_key, op, payload)
                  VALUES ('docs', 'docs', 'public.docs', '{"id": 2}', 'upsrt', '{"title": "b", "emb": [1, 2]}'),
                         ('docs', 'docs', 'public.docs', '{"id": 3}', E'x\\u00e9\\ty', NULL)""")
    db.execute("INSERT INTO docs VALUES (4, 'd', '{3,4}')")
    p = d.start()
    wait_until(lambda: outbox_counts(db) == (0, 2), what="2 dead letters, nothing pending")
    dead = dict(db.execute("SELECT (row_key->>'id')::int, last_error FROM sync_outbox_dead").fetchall())
    assert dead == {2: "the event's op 'upsrt' is neither upsert nor delete",
                    3: "the event's op 'x???y' is neither upsert nor delete"}, dead
    # dead at their first attempt, not after max_attempts of lease expiries
    assert [a for (a,) in db.execute("SELECT attempts FROM sync_outbox_dead ORDER BY id")] == [1, 1]
    r = qdrant.points("docs")
    got = sorted(pt["id"] for pt in (r["points"] if isinstance(r, dict) else r))
    assert got == [1, 4], got
    d.stop(p)

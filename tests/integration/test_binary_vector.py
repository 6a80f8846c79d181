"""A real[] vector travels unprinted from the writer's trigger to the daemon (issue 11: the
writer's cost; migration 008, src/vector_bin.c, src/float_text.c).

- test_points_are_those_of_a_printed_snapshot: events whose vector the trigger sent in binary
  (INSERT and UPDATE) and by backfill, and an event in the old format (the vector printed in the
  payload, as written by a trigger from before the upgrade, still in the outbox) give points
  whose vector is the row's floats and whose `_hash` is FNV-1a of the snapshot text PostgreSQL
  prints (json_build_object with extra_float_digits = 3): -0, denormals, FLT_MAX, FLT_MIN, the
  floats whose shortest text PostgreSQL refuses (midpoints); `reconcile` agrees. Every session
  of the database (the daemon's too) has bytea_output = escape and extra_float_digits = 0.
- test_vectors_that_are_not_numbers_dead_letter_as_before: NaN, Infinity, a NULL element and a
  2-D array are dead-lettered with the same error whether the event carried the vector in binary
  or printed (as older triggers wrote them); the dead letter keeps the binary vector, and `retry --dead` brings it
  back with it (fixed in place here: the point lands with the fixed vector).
- test_update_change_test_of_a_real_vector: the binary image decides (no printing); an image that
  prints the same text (another lower bound) costs one event more, of the same snapshot.
- test_other_vector_types_and_type_changes_print_as_before: a float8[] column, and a real[]
  column altered to float8[] after `apply`, are printed by the trigger as before (no vec).
"""
import struct

from conftest import outbox_counts, snapshot_sql, wait_until

RULE = {"table": "public.docs", "key": "id", "columns": "title", "vector_column": "emb",
        "dimension": "4", "distance": "Dot", "collection": "docs"}


def fnv1a64(data: bytes) -> str:
    h = 0xcbf29ce484222325
    for b in data:
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def f32_bits(x):
    return struct.pack(">f", x)


def points(qdrant, collection):
    r = qdrant.points(collection)
    return {p["id"]: p for p in (r["points"] if isinstance(r, dict) else r)}


ROWS = {  # id: the vector as SQL text
    1: "{0.1,-0.009765625,2.7182817,1}",
    2: "{-0,1e-45,3.4028235e38,1.1754944e-38}",          # -0, the smallest denormal, FLT_MAX, FLT_MIN
    3: "{117760704,-36646552,-617724032,1e-7}",          # midpoints PostgreSQL never prints
    4: "{1.17549421e-38,999999.94,1e6,123456}",          # a denormal, fixed and exponent layouts
}


def test_points_are_those_of_a_printed_snapshot(make_daemon, db, pgdb, qdrant):
    db.execute(f'ALTER DATABASE "{pgdb}" SET bytea_output = escape')
    db.execute(f'ALTER DATABASE "{pgdb}" SET extra_float_digits = 0')
    db.execute("CREATE TABLE docs (id int PRIMARY KEY, title text, emb real[])")
    d = make_daemon({"rule.docs": RULE})
    d.cli("init")
    d.cli("apply")
    for i, v in ROWS.items():
        db.execute("INSERT INTO docs VALUES (%s, %s, %s)", (i, f"t{i}", v))
    db.execute("UPDATE docs SET emb = '{0.5,0.25,-0.125,3e-5}' WHERE id = 4")
    assert db.execute("SELECT count(*) FILTER (WHERE vec IS NOT NULL), count(*) FILTER (WHERE payload::text LIKE "
                      "'%\"emb\" : null}') FROM sync_outbox").fetchone() == (5, 5)
    # an event in the old format (a trigger from before migration 008 printed the vector)
    db.execute("ALTER TABLE docs DISABLE TRIGGER USER")
    db.execute("INSERT INTO docs VALUES (5, 't5', '{0.3,-1.5e-40,7,8}')")
    db.execute("ALTER TABLE docs ENABLE TRIGGER USER")
    db.execute("SET extra_float_digits = 3")
    db.execute("INSERT INTO sync_outbox (event_type, rule, source_table, row_key, op, payload) "
               "SELECT 'docs', 'docs', 'public.docs', jsonb_build_object('id', id), 'upsert', "
               "json_build_object('title', title, 'emb', emb) FROM docs WHERE id = 5")
    d.cli("backfill", "docs", "--where", "id = 3")  # backfill sends it unprinted too
    assert db.execute("SELECT count(*) FILTER (WHERE vec IS NULL), count(*) FROM sync_outbox").fetchone() == (1, 7)
    p = d.start()
    wait_until(lambda: outbox_counts(db) == (0, 0) and len(points(qdrant, "docs")) == 5, what="5 points")
    got = points(qdrant, "docs")
    for i in range(1, 6):
        text, floats = db.execute("SELECT json_build_object('title', title, 'emb', emb)::text, emb::float8[] "
                                  "FROM docs WHERE id = %s", (i,)).fetchone()
        pt = got[i]
        assert pt["payload"]["_hash"] == fnv1a64(text.encode()), (i, text)
        assert pt["payload"]["title"] == f"t{i}" and "emb" not in pt["payload"]
        # the test server keeps JSON numbers as Python numbers: -0 reads back as 0
        assert [f32_bits(x) for x in pt["vector"]] == [f32_bits(x if x else 0.0) for x in floats], (i, pt["vector"])
    r = d.cli("reconcile", check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    d.stop(p)


BAD = {  # id: a vector the point builder refuses
    1: "{1,NaN,2,3}",
    2: "{1,Infinity,2,3}",
    3: "{1,NULL,2,3}",
    4: "{{1,2},{3,4}}",
}


def test_vectors_that_are_not_numbers_dead_letter_as_before(make_daemon, db, qdrant):
    db.execute("CREATE TABLE docs (id int PRIMARY KEY, title text, emb real[])")
    d = make_daemon({"rule.docs": RULE})
    d.cli("init")
    d.cli("apply")
    for i, v in BAD.items():
        db.execute("INSERT INTO docs VALUES (%s, 'x', %s)", (i, v))
    assert db.execute("SELECT count(*) FROM sync_outbox WHERE vec IS NOT NULL").fetchone()[0] == 4
    p = d.start()
    wait_until(lambda: outbox_counts(db) == (0, 4), what="4 dead letters")
    binary = dict(db.execute("SELECT (row_key->>'id')::int, last_error FROM sync_outbox_dead "
                             "WHERE vec IS NOT NULL").fetchall())
    assert len(binary) == 4
    # `retry --dead` enqueues the dead letter's row as it is now (since migration 015), its vector
    # read from the table: fixed here without a trigger firing (as a restore would), so only the
    # retry brings it to Qdrant
    db.execute("DELETE FROM sync_outbox_dead WHERE (row_key->>'id')::int <> 1")
    with db.transaction():
        db.execute("SET LOCAL session_replication_role = replica")
        db.execute("UPDATE docs SET emb = '{1,2,3,-0.5}' WHERE id = 1")
    assert outbox_counts(db) == (0, 1)
    assert "1 dead event(s)" in d.cli("retry", "--dead").stdout
    wait_until(lambda: outbox_counts(db) == (0, 0) and 1 in points(qdrant, "docs"), what="the retried point")
    assert points(qdrant, "docs")[1]["vector"] == [1, 2, 3, -0.5]
    with db.transaction():  # row 1 bad again, as the rest of the test expects (no trigger either)
        db.execute("SET LOCAL session_replication_role = replica")
        db.execute("UPDATE docs SET emb = %s WHERE id = 1", (BAD[1],))
    db.execute("SET extra_float_digits = 3")  # the same rows as printed snapshots (older triggers')
    db.execute("INSERT INTO sync_outbox (event_type, rule, source_table, row_key, op, payload) "
               "SELECT 'docs', 'docs', 'public.docs', jsonb_build_object('id', id), 'upsert', "
               "json_build_object('title', title, 'emb', emb) FROM docs ORDER BY id")
    wait_until(lambda: outbox_counts(db) == (0, 4), what="4 dead letters again")
    printed = dict(db.execute("SELECT (row_key->>'id')::int, last_error FROM sync_outbox_dead "
                              "WHERE vec IS NULL").fetchall())
    assert printed == binary and all(printed.values()), (printed, binary)
    d.stop(p)


def test_other_vector_types_and_type_changes_print_as_before(make_daemon, db, qdrant):
    db.execute("CREATE TABLE docs (id int PRIMARY KEY, title text, emb real[])")
    d = make_daemon({"rule.docs": RULE})
    d.cli("init")
    d.cli("apply")
    db.execute("INSERT INTO docs VALUES (1, 'a', '{1,2,3,4}')")
    db.execute("ALTER TABLE docs ALTER COLUMN emb TYPE float8[]")  # after apply: no reinstall
    db.execute("INSERT INTO docs VALUES (2, 'b', '{0.1,2,3,4}')")
    db.execute("UPDATE docs SET emb = '{0.2,2,3,4}' WHERE id = 1")
    got = db.execute(f"SELECT vec IS NULL, {snapshot_sql()} FROM sync_outbox ORDER BY id").fetchall()
    assert got == [(False, '{"title" : "a", "emb" : [1,2,3,4]}'), (True, '{"title" : "b", "emb" : [0.1,2,3,4]}'),
                   (True, '{"title" : "a", "emb" : [0.2,2,3,4]}')]
    p = d.start()
    wait_until(lambda: outbox_counts(db) == (0, 0) and len(points(qdrant, "docs")) == 2, what="2 points")
    assert points(qdrant, "docs")[2]["vector"][0] == struct.unpack("f", struct.pack("f", 0.1))[0]
    d.stop(p)


def test_update_change_test_of_a_real_vector(make_daemon, db):
    """An UPDATE changes a real[] vector when its binary image changes (no printing of either
    side): a new value, -0 for 0, a NULL; the same image writes nothing; an image that prints the
    same text (another lower bound) writes one event more, of the same snapshot."""
    db.execute("CREATE TABLE docs (id int PRIMARY KEY, title text, emb real[])")
    d = make_daemon({"rule.docs": RULE})
    d.cli("apply")
    db.execute("INSERT INTO docs VALUES (1, 'a', '{0,1,2,3}')")
    n = lambda: db.execute("SELECT count(*) FROM sync_outbox").fetchone()[0]  # noqa: E731
    assert n() == 1
    db.execute("UPDATE docs SET emb = '{0.0,1.00,2,3}'")   # the same image: nothing
    db.execute("UPDATE docs SET title = title")
    assert n() == 1
    db.execute("UPDATE docs SET emb = '{-0,1,2,3}'")       # -0: another text, an event
    assert n() == 2
    db.execute("UPDATE docs SET emb = '[0:3]={-0,1,2,3}'")  # another lower bound: the same text, an event
    assert n() == 3
    db.execute("UPDATE docs SET emb = NULL")
    assert n() == 4
    got = db.execute(f"SELECT {snapshot_sql()} FROM sync_outbox ORDER BY id").fetchall()
    assert [g for (g,) in got] == ['{"title" : "a", "emb" : [0,1,2,3]}', '{"title" : "a", "emb" : [-0,1,2,3]}',
                                   '{"title" : "a", "emb" : [-0,1,2,3]}', '{"title" : "a", "emb" : null}']

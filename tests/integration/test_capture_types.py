"""The statement capture's type check (src/capture_stmt.c type_guard, issue 11): a multi-row INSERT
or DELETE checks once per statement that the columns its INSERT ... SELECT names are of types whose
json cannot fail, and then evaluates per row only what still can (the filter, the routing key)
before writing; with any other type every expression per row, as before. These tests retype
columns since `apply` and hold multi-row statements to the one-row path's events: the writer's
statement never fails, whatever the types. No daemon: the events in sync_outbox are the contract."""
import pytest

from test_capture_statement import STATEMENT, docs, rule, take_events, triggers  # noqa: F401 (docs: a fixture)

ROWS = ["1, 'a', '{1,2,3}'", "2, NULL, NULL", "NULL, 'c', '{0.5,0.25,1}'", "3, 'd', '{1e-45,3.4e38,-0}'"]


def both_ways(db, rows):
    """The events of rows (id, title, emb) by one multi-row INSERT and by one-row INSERTs, then of
    their DELETE by one statement and one by one."""
    out = {}
    db.execute("INSERT INTO docs (id, title, emb) VALUES " + ", ".join(f"({v})" for v in rows))
    out["multi"] = take_events(db)
    db.execute("DELETE FROM docs")
    out["delete"] = take_events(db)
    for v in rows:
        db.execute(f"INSERT INTO docs (id, title, emb) VALUES ({v})")
    out["single"] = take_events(db)
    for (ctid,) in db.execute("SELECT ctid FROM docs ORDER BY ctid").fetchall():
        db.execute("DELETE FROM docs WHERE ctid = %s", (ctid,))
    out["delete-single"] = take_events(db)
    return out


@pytest.mark.parametrize("alter,rows", [
    # the vector unprinted needs a real[]: a text vector made the set INSERT fail to plan (before this check)
    ("emb TYPE text", ROWS),
    ("emb TYPE double precision[]", ROWS),
    # a key of json: to_jsonb of "\u0000" raises for that row only
    ("id TYPE json USING to_json(id)", ["'1', 'a', '{1,2,3}'", "'\"\\u0000\"', 'b', '{1,2,3}'", "'3', NULL, NULL"]),
    ("title TYPE json USING to_json(title)", ["1, '\"\\u0000\"', '{1,2,3}'", "2, '{\"a\": 1}', NULL", "3, NULL, '{1,2,3}'"]),
    ("title TYPE varchar(20)", ROWS),  # json-safe: the statement's types checked, no per-row validation
], ids=["vector-text", "vector-float8", "key-json", "title-json", "title-varchar"])
def test_columns_retyped_since_apply_fail_no_writer(make_daemon, docs, alter, rows):
    d = make_daemon({"rule.docs": rule(columns="id, title")})
    d.cli("apply")
    assert triggers(docs) == STATEMENT
    docs.execute("SET pg2qdrant.allow_ddl = on")
    docs.execute(f"ALTER TABLE docs ALTER COLUMN {alter}")
    got = both_ways(docs, rows)
    assert len(got["multi"]) == len(rows) and got["multi"] == got["single"]
    assert len(got["delete"]) == len(rows) and got["delete"] == got["delete-single"]
    if alter.startswith("id TYPE json"):
        assert [e[8] for e in got["multi"]] == [10, 0, 10]  # the row whose key cannot be jsonb: born dead


@pytest.mark.parametrize("kw", [
    {"filter": "title IS DISTINCT FROM 'c'", "routing_key": "coalesce(title, 'none')"},
    {"routing_key": "(10 / (id - 2))::text"},  # raises for id 2: the rows go one by one
    {"filter": "(10 / (id - 2)) > 0"},
], ids=["filter-routing", "routing-raises", "filter-raises"])
def test_filter_and_routing_key_validated_per_row(make_daemon, docs, kw):
    d = make_daemon({"rule.docs": rule(columns="id, title", **kw)})
    d.cli("apply")
    got = both_ways(docs, ROWS)
    assert got["multi"] == got["single"] and got["delete"] == got["delete-single"]
    assert len(got["multi"]) >= 2


def test_a_value_too_big_for_json_fails_no_writer(make_daemon, docs):
    """Json-safe types, but one row's title escapes past json's 1 GB (180 MB of control characters,
    6 bytes each escaped; stored compressed in a few MB): the rows' stored sizes send the statement to
    the per-row validation, which fails for that row, and the rows go one by one: that one is born
    dead, the other captured, the writer's multi-row INSERT commits (it failed with "out of memory"
    when only the types were checked)."""
    d = make_daemon({"rule.docs": rule(columns="id, title")})
    d.cli("apply")
    assert triggers(docs) == STATEMENT
    docs.execute("INSERT INTO docs (id, title, emb) SELECT g, CASE WHEN g = 1 THEN repeat(E'\\x01', 180000000)"
                 " ELSE 'b' END, '{1,2,3}' FROM generate_series(1, 2) g")
    got = take_events(docs)
    assert [e[8] for e in got] == [0, 10]  # the first born dead, the second as usual
    assert docs.execute("SELECT count(*) FROM docs").fetchone()[0] == 2

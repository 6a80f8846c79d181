"""Statement functions without the output pins (src/capture_stmt.c, issue 11): a rule without
filter and routing key whose columns all have types whose json no setting changes (integers,
numeric, text, uuid, dates, timestamps without time zone, arrays of these; the vector an unprinted
real[]) gets INSERT and DELETE statement functions without any SET clause (every function,
operator and type they name is in pg_catalog). They must write the row trigger's events byte for
byte, in any writer session, also one whose search_path puts its own functions and operators
first; a column whose type changed since
`apply` to one whose text depends on a setting (a float, a timestamptz) hands each row to the
rule's pinned row function, whose pins hold. No daemon: the events in sync_outbox are the
contract."""
import psycopg
import pytest

from conftest import wait_until

COLS = ("event_type, routing_key, rule, source_table, row_key::text, op, payload::text, vec::text,"
        " max_attempts, last_error")
ROWS = [(1, "a \"quoted\" \\ é", "1.50", "2025-01-02", "2025-01-02 03:04:05.678+00", "{x,NULL,\"y z\"}", "{1,2,3}"),
        (2, "", "NaN", "infinity", "-infinity", None, None),
        (None, "nul key", "-0.000001", None, None, "{}", "{0.1,0.2,0.3}"),
        (3, None, None, "0099-12-31", "2000-02-29 23:59:59.999999+00", "{a}", "{1e-45,3.4e38,-0}")]
NAMES = "(id, title, n, d, ts, tags, emb)"
HOSTILE = ("TimeZone = 'America/Los_Angeles'", "DateStyle = 'SQL, DMY'", "extra_float_digits = -15",
           "IntervalStyle = 'postgres_verbose'", "search_path = pg_temp, public", "bytea_output = 'escape'",
           "plpgsql.extra_errors = 'all'", "plpgsql.variable_conflict = 'use_column'", "work_mem = '64kB'")


def rule(columns="id, title, n, d, ts, tags"):
    return {"table": "public.items", "key": "id", "vector_column": "emb", "dimension": "3",
            "collection": "items", "columns": columns}


@pytest.fixture
def items(db):
    # no primary key: a NULL key must be writable (its events are born dead)
    db.execute("CREATE TABLE items (id bigint, title text, n numeric, d date, ts timestamp, tags text[],"
               " emb real[], at timestamptz, f float8)")
    return db


def take_events(db):
    rows = db.execute(f"SELECT {COLS} FROM sync_outbox ORDER BY id").fetchall()
    db.execute("DELETE FROM sync_outbox")
    return rows


def proconfig(db, fn):
    return db.execute("SELECT proconfig FROM pg_proc WHERE proname = %s", (fn,)).fetchone()[0]


def all_ways(db, w):
    """The rows by a multi-row INSERT, one-row INSERTs and COPY, deleted by one DELETE and by
    one-row DELETEs, all written by connection w (events read and cleared by db): events per way."""
    out = {}
    values = ", ".join(["(%s, %s, %s, %s, %s, %s, %s)"] * len(ROWS))
    w.execute(f"INSERT INTO public.items {NAMES} VALUES {values}", [v for r in ROWS for v in r])
    out["multi"] = take_events(db)
    db.execute("TRUNCATE items")
    take_events(db)
    for r in ROWS:
        w.execute(f"INSERT INTO public.items {NAMES} VALUES (%s, %s, %s, %s, %s, %s, %s)", r)
    out["single"] = take_events(db)
    db.execute("TRUNCATE items")
    take_events(db)
    with w.cursor().copy(f"COPY public.items {NAMES} FROM STDIN") as cp:
        for r in ROWS:
            cp.write_row(r)
    out["copy"] = take_events(db)
    w.execute("DELETE FROM public.items")
    out["delete"] = take_events(db)
    db.execute(f"INSERT INTO items {NAMES} VALUES {values}", [v for r in ROWS for v in r])
    take_events(db)
    for (ctid,) in db.execute("SELECT ctid FROM items ORDER BY ctid").fetchall():
        w.execute("DELETE FROM public.items WHERE ctid = %s", (ctid,))
    out["delete-single"] = take_events(db)
    db.execute("TRUNCATE items")
    take_events(db)
    return out


def calls(db, w):
    """The writer session w's calls of rule items' functions (track_functions = 'pl' in w), once
    its statistics reached the shared ones: {name: calls}."""
    w.execute("SELECT pg_stat_force_next_flush()")
    w.execute("SELECT 1")  # idle again: the flush

    def read():
        db.execute("SELECT pg_stat_clear_snapshot()")
        got = dict(db.execute("SELECT funcname, calls FROM pg_stat_user_functions WHERE funcname ~ '^p2q_.*_items$'"
                              ).fetchall())
        return got if got.get("p2q_insert_items") else None
    return wait_until(read, what="the writer's function statistics")


def hostile(pgdb, search_path=None):
    w = psycopg.connect(dbname=pgdb, autocommit=True)
    for s in HOSTILE + ((f"search_path = {search_path}",) if search_path else ()):
        w.execute(f"SET {s}")
    return w


def evil(db):
    """Schema evil: what an unqualified name in the functions would meet under `search_path = evil,
    pg_catalog`: json builders with the exact signatures of the rule's calls (they win over
    pg_catalog's variadic "any" ones and write another json), and every operator and function the
    unpinned bodies use, on their exact types, giving the right answer but logging each call in
    evil.calls (a call there means code of the writer's choosing ran as the functions' owner)."""
    db.execute("CREATE SCHEMA evil")
    db.execute("CREATE TABLE evil.calls (name text)")
    db.execute("GRANT ALL ON evil.calls TO PUBLIC")
    db.execute("CREATE FUNCTION evil.jsonb_build_object(text, bigint) RETURNS jsonb LANGUAGE sql AS $$"
               "INSERT INTO evil.calls VALUES ('jsonb_build_object'); SELECT '{\"evil\": 1}'::pg_catalog.jsonb$$")
    db.execute("CREATE FUNCTION evil.json_build_object(text, bigint, text, text, text, numeric, text, date, text,"
               " timestamp, text, text[], text, json) RETURNS json LANGUAGE sql AS $$"
               "INSERT INTO evil.calls VALUES ('json_build_object'); SELECT '{\"evil\": 1}'::pg_catalog.json$$")
    for t in ("bigint", "real[]", "text", "numeric", "date", "timestamp", "text[]"):  # exact: they win over "any"
        db.execute(f"CREATE FUNCTION evil.pg_typeof({t}) RETURNS regtype LANGUAGE sql AS $$"
                   "INSERT INTO evil.calls VALUES ('pg_typeof'); SELECT pg_catalog.pg_typeof($1)$$")
    db.execute("CREATE FUNCTION evil.pg_column_size(bigint) RETURNS integer LANGUAGE sql AS $$"
               "INSERT INTO evil.calls VALUES ('pg_column_size'); SELECT pg_catalog.pg_column_size($1)$$")
    for op, left, right, ret in (("+", "bigint", "integer", "bigint"), ("+", "integer", "integer", "integer"),
                                 (">", "bigint", "integer", "boolean"), (">", "integer", "integer", "boolean"),
                                 (">=", "bigint", "integer", "boolean"), ("=", "bigint", "integer", "boolean"),
                                 ("=", "oid", "oid", "boolean"), ("=", "regtype", "regtype", "boolean"),
                                 ("<>", "text", "text", "boolean")):
        fn = "evil.op_" + {"+": "plus", ">": "gt", ">=": "ge", "=": "eq", "<>": "ne"}[op] + f"_{left}_{right}"
        db.execute(f"CREATE FUNCTION {fn}({left}, {right}) RETURNS {ret} LANGUAGE sql AS $$"
                   f"INSERT INTO evil.calls VALUES ('{left} {op} {right}'); SELECT $1 OPERATOR(pg_catalog.{op}) $2$$")
        db.execute(f"CREATE OPERATOR evil.{op} (LEFTARG = {left}, RIGHTARG = {right}, FUNCTION = {fn})")
    db.execute("CREATE TYPE evil.jsonb AS (a int)")


def row_trigger_reference(d, db, pgdb):
    """Every way again with INSERTs and DELETEs on the row trigger (another AFTER INSERT and AFTER
    DELETE trigger on the table: apply keeps the row trigger), in a plain session."""
    db.execute("CREATE FUNCTION noop() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NULL; END'")
    db.execute("CREATE TRIGGER z_noop AFTER INSERT OR DELETE ON items FOR EACH ROW EXECUTE FUNCTION noop()")
    d.cli("apply")
    assert db.execute("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'items'::regclass AND tgname LIKE 'p2q%'"
                      ).fetchone()[0] == 2  # p2q_items (all three) and the TRUNCATE trigger
    with psycopg.connect(dbname=pgdb, autocommit=True) as w:
        return all_ways(db, w)


def test_setting_free_rule_writes_the_row_triggers_events_in_any_session(make_daemon, items, pgdb):
    d = make_daemon({"rule.items": rule()})
    d.cli("apply")
    for fn in ("p2q_insert_items", "p2q_delete_items"):
        assert proconfig(items, fn) is None, fn
    assert len(proconfig(items, "p2q_pinned_items")) == 7
    with psycopg.connect(dbname=pgdb, autocommit=True) as w:
        w.execute("SET track_functions = 'pl'")
        plain = all_ways(items, w)
        # every statement captured by the unpinned functions themselves: none handed on
        got = calls(items, w)
        assert got.get("p2q_insert_items") == 6 and got.get("p2q_delete_items") == 5, got
        assert "p2q_pinned_items" not in got, got
    assert len(plain["multi"]) == 4 and plain["multi"] == plain["single"] == plain["copy"]
    assert len(plain["delete"]) == 4 and plain["delete"] == plain["delete-single"]
    assert [e[8] for e in plain["multi"]] == [10, 10, 0, 10]  # the NULL key born dead
    assert plain["multi"][0][7] == "{1,2,3}"  # the vector sent unprinted
    assert '"d" : "2025-01-02", "ts" : "2025-01-02T03:04:05.678"' in plain["multi"][0][6]
    with hostile(pgdb) as w:
        assert all_ways(items, w) == plain
    evil(items)
    with hostile(pgdb, "evil, pg_catalog, public") as w:
        assert w.execute("SELECT jsonb_build_object('id', 1::bigint)::text, 1::bigint + 1, 1::oid = 1::oid,"
                         " pg_typeof(1::bigint)::text").fetchone() == ('{"evil": 1}', 2, True, "bigint")
        assert items.execute("SELECT count(*) FROM evil.calls").fetchone()[0] == 4  # what an unqualified name meets
        items.execute("TRUNCATE evil.calls")
        assert all_ways(items, w) == plain
    assert items.execute("SELECT array_agg(DISTINCT name) FROM evil.calls").fetchone()[0] is None
    assert row_trigger_reference(d, items, pgdb) == plain


def test_setting_dependent_rule_keeps_every_pin(make_daemon, items, pgdb):
    d = make_daemon({"rule.items": rule("id, title, at")})
    d.cli("apply")
    assert len(proconfig(items, "p2q_insert_items")) == 7  # at is a timestamptz: the INSERT pins all
    assert proconfig(items, "p2q_delete_items") is None  # the key only
    # float key: both pinned
    d2 = make_daemon({"rule.items": {**rule(), "key": "f"}})
    d2.cli("apply")
    assert len(proconfig(items, "p2q_insert_items")) == 7
    assert len(proconfig(items, "p2q_delete_items")) == 7
    # the vector in the key: the key's jsonb prints its floats (extra_float_digits): every pin stays
    d3 = make_daemon({"rule.items": {**rule(), "key": "id, emb"}})
    d3.cli("apply")
    assert len(proconfig(items, "p2q_insert_items")) == 7
    assert len(proconfig(items, "p2q_delete_items")) == 7
    rows = "(1, '{0.123456789,2.5e-7,1}')"
    items.execute(f"INSERT INTO items (id, emb) VALUES {rows}")
    items.execute(f"INSERT INTO items (id, emb) VALUES {rows.replace('(1', '(2')}, {rows.replace('(1', '(3')}")
    items.execute("DELETE FROM items WHERE id = 1")
    plain = take_events(items)
    items.execute("TRUNCATE items")
    take_events(items)
    with hostile(pgdb) as w:
        w.execute(f"INSERT INTO public.items (id, emb) VALUES {rows}")
        w.execute(f"INSERT INTO public.items (id, emb) VALUES {rows.replace('(1', '(2')}, {rows.replace('(1', '(3')}")
        w.execute("DELETE FROM public.items WHERE id = 1")
    assert take_events(items) == plain
    assert '"emb": [0.12345679, 0.00000025, 1]' in plain[0][4]


def test_types_changed_since_apply_take_the_pinned_row_function(make_daemon, items, pgdb):
    """A float and a timestamptz since `apply` (the next apply installs again: the table changed):
    each row goes to the pinned row function, so a hostile session still changes no event."""
    d = make_daemon({"rule.items": rule()})
    d.cli("apply")
    items.execute("SET pg2qdrant.allow_ddl = on")
    items.execute("ALTER TABLE items ALTER COLUMN n TYPE float8 USING n::float8,"
                  " ALTER COLUMN ts TYPE timestamptz USING ts AT TIME ZONE 'UTC'")
    assert proconfig(items, "p2q_insert_items") is None  # as apply left it
    with psycopg.connect(dbname=pgdb, autocommit=True) as w:
        w.execute("SET track_functions = 'pl'")
        plain = all_ways(items, w)
        assert calls(items, w).get("p2q_pinned_items", 0) >= 12  # every inserted row handed on
    assert len(plain["multi"]) == 4 and plain["multi"] == plain["single"] == plain["copy"]
    assert '"n" : 1.5, "d" : "2025-01-02", "ts" : "2025-01-02T03:04:05.678+00:00"' in plain["multi"][0][6]
    with hostile(pgdb) as w:
        w.execute("INSERT INTO public.items (id, n) VALUES (7, 1.0 / 3)")
        assert '"n" : 0.3333333333333333' in take_events(items)[0][6]  # extra_float_digits 3, not -15
        items.execute("TRUNCATE items")
        take_events(items)
        assert all_ways(items, w) == plain
    # the key a float too: the DELETE function hands its rows on as well
    items.execute("ALTER TABLE items ALTER COLUMN id TYPE float8")
    with psycopg.connect(dbname=pgdb, autocommit=True) as w:
        plain = all_ways(items, w)
    assert plain["delete"] == plain["delete-single"] and len(plain["delete"]) == 4
    with hostile(pgdb) as w:
        assert all_ways(items, w) == plain
    # a column gone: the pinned row function's slow path, never a failed write
    items.execute("ALTER TABLE items DROP COLUMN title")
    with hostile(pgdb) as w:
        w.execute("INSERT INTO public.items (id, emb) VALUES (1, '{1,2,3}'), (2, '{4,5,6}')")
        multi = take_events(items)
        items.execute("TRUNCATE items")
        take_events(items)
        w.execute("INSERT INTO public.items (id, emb) VALUES (1, '{1,2,3}')")
        w.execute("INSERT INTO public.items (id, emb) VALUES (2, '{4,5,6}')")
        assert take_events(items) == multi and len(multi) == 2
    assert all(e[8] == 10 and '"title"' not in e[6] for e in multi)
    assert "unchanged" not in d.cli("apply").stdout  # the table changed: installed again (pinned now)
    assert len(proconfig(items, "p2q_insert_items")) == 7

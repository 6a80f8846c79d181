"""The row trigger's gate (src/capture_body.c p2q_capture_gate_body, issue 11): for a rule without a
filter, p2q_capture_<rule>() is an unpinned function that returns at once from an UPDATE that left
every watched and key column binary-identical and hands everything else to the pinned
p2q_pinned_<rule>(tg_op, new, old), whose body is the row trigger's. These tests hold the pair to
the single pinned function it replaced, event for event (all ten columns), over UPDATEs of every
kind, INSERTs and DELETEs on the row path, DDL since `apply` (a watched column dropped: the gate's
test raises), and writer sessions whose search_path holds an operator *= and a type record of
their own. The reference is rebuilt from the installed pair (conftest's `ungate`: the pinned body
with the gate's test put back as its early return, byte-identical to the previous release's). No daemon: the
events in the outbox are the contract."""
import psycopg
import pytest

from conftest import ungate

OUTBOX = "p2q_outbox"  # the outbox in its own schema: writers get no privilege on it
COLS = ("event_type, routing_key, rule, source_table, row_key::text, op, payload::text, vec::text,"
        " max_attempts, last_error")
ROWS = ("(1, 'a', '{1,2,3}', '2025-01-01 12:00Z', 'x'), (2, 'b', NULL, NULL, NULL),"
        " (NULL, 'c', '{0.1,0.2,0.3}', '2025-06-01 00:00Z', 'z'), (3, 'd', '{1e-45,3.4e38,-0}', NULL, '')")
# (statement, events it writes on the gated trigger: None = not checked)
STEPS = [
    (f"INSERT INTO docs (id, title, emb, at, body) VALUES {ROWS}", 4),
    ("UPDATE docs SET body = 'y'", 0),                          # unwatched: the gate returns
    ("UPDATE docs SET body = body, at = at", 0),                # nothing changed
    ("UPDATE docs SET title = 'T' || id WHERE id = 1", None),   # watched (not by a whole-row rule's test only)
    ("UPDATE docs SET emb = '{3,2,1}' WHERE id = 1", 1),        # the vector
    ("UPDATE docs SET emb = '{3,2,1}' WHERE id = 1", 0),        # the same vector again
    ("UPDATE docs SET emb = NULL WHERE id = 3", 1),
    ("UPDATE docs SET at = at + interval '1 hour'", None),      # a timestamptz (pinned TimeZone)
    ("UPDATE docs SET id = 10 WHERE id = 2", 2),                # key change: delete + upsert
    ("UPDATE docs SET id = 20 WHERE id IS NULL", None),         # a NULL key gets one
    ("UPDATE docs SET id = NULL WHERE id = 20", None),          # and loses it (born dead)
    ("SET pg2qdrant.allow_ddl = on", 0),
    ("ALTER TABLE docs ADD COLUMN extra int", 0),
    ("UPDATE docs SET extra = 1", None),                        # a column added since apply
    ("ALTER TABLE docs DROP COLUMN title", 0),                  # a watched column gone: the gate's test raises
    ("UPDATE docs SET body = 'w'", None),
    ("UPDATE docs SET emb = '{5,5,5}' WHERE id = 1", 1),
    ("ALTER TABLE docs RENAME COLUMN at TO at2", 0),            # renamed
    ("UPDATE docs SET body = 'v'", None),
    ("UPDATE docs SET at2 = '2030-01-01Z' WHERE id = 1", None),
    ("ALTER TABLE docs ALTER COLUMN body TYPE varchar(20)", 0),  # an unwatched column's type changed
    ("UPDATE docs SET body = 'u' WHERE id = 3", None),
    ("ALTER TABLE docs ALTER COLUMN emb TYPE float8[]", 0),     # a watched one's (the vector's)
    ("UPDATE docs SET body = 't'", None),
    ("UPDATE docs SET emb = '{0.5,0.25,1}' WHERE id = 1", 1),
    ("DELETE FROM docs WHERE id = 1", 1),
    ("DELETE FROM docs", None),
]


def rule(**kw):
    r = {"table": "public.docs", "key": "id", "vector_column": "emb", "dimension": "3",
         "collection": "docs", "columns": "id, title, at"}
    r.update(kw)
    return {k: v for k, v in r.items() if v is not None}


def make_table(db, shape):
    db.execute("DROP TABLE IF EXISTS docs")
    if shape == "partitioned":  # the row trigger for all three (cloned onto each partition)
        db.execute("CREATE TABLE docs (id bigint, title text, emb real[], at timestamptz, body text)"
                   " PARTITION BY RANGE (id)")
        db.execute("CREATE TABLE docs_lo PARTITION OF docs FOR VALUES FROM (MINVALUE) TO (5)")
        db.execute("CREATE TABLE docs_hi (body text, at timestamptz, emb real[], title text, id bigint)")
        db.execute("ALTER TABLE docs ATTACH PARTITION docs_hi FOR VALUES FROM (5) TO (MAXVALUE)")
        db.execute("CREATE TABLE docs_null PARTITION OF docs DEFAULT")
    else:  # no primary key: a NULL key must be writable (its events are born dead)
        db.execute("CREATE TABLE docs (id bigint, title text, emb real[], at timestamptz, body text)")
    if shape == "rowpath":  # another AFTER INSERT trigger: INSERTs and DELETEs on the row trigger
        db.execute("CREATE OR REPLACE FUNCTION noop() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NULL; END'")
        db.execute("CREATE TRIGGER z_noop AFTER INSERT ON docs FOR EACH ROW EXECUTE FUNCTION noop()")


def take_events(db):
    rows = db.execute(f"SELECT {COLS} FROM {OUTBOX}.sync_outbox ORDER BY id").fetchall()
    db.execute(f"DELETE FROM {OUTBOX}.sync_outbox")
    return rows


def fn(db, sig):
    return db.execute("SELECT to_regprocedure(%s)", (f"{OUTBOX}.{sig}",)).fetchone()[0]


def run(d, db, shape, ref=False, conn=None):
    """The table made again, applied, (the reference installed,) STEPS run (the writes on conn, the
    DDL as the table's owner): events per step."""
    make_table(db, shape)
    assert "trigger installed" in d.cli("apply").stdout
    if ref:
        ungate(db, OUTBOX)
    take_events(db)
    out = []
    for sql, _ in STEPS:
        (db if sql.startswith(("ALTER", "SET")) else conn or db).execute(sql)
        out.append(take_events(db))
    return out


@pytest.mark.parametrize("shape,kw", [
    ("plain", {}),
    ("rowpath", {}),
    ("partitioned", {}),
    ("plain", {"routing_key": "coalesce(title, 'none')"}),
    ("rowpath", {"columns": None}),   # the whole row: NEW *= OLD
    ("rowpath", {"watch": "title"}),  # an explicit watch list
], ids=["plain", "rowpath", "partitioned", "routing", "whole-row", "watch"])
def test_gate_writes_the_single_functions_events(make_daemon, db, shape, kw):
    d = make_daemon({"postgres": {"schema": OUTBOX}, "rule.docs": rule(**kw)})
    d.cli("init")
    gated = run(d, db, shape)
    # the pair is installed: an unpinned SECURITY DEFINER gate, the pinned function behind it
    gate = db.execute(f"SELECT prosecdef, proconfig FROM pg_proc WHERE oid = '{OUTBOX}.p2q_capture_docs()'::regprocedure").fetchone()
    assert gate == (True, None)
    pinned = db.execute("SELECT prosecdef, proconfig FROM pg_proc WHERE oid = %s::regprocedure",
                        (f"{OUTBOX}.p2q_pinned_docs(text, record, record)",)).fetchone()
    assert pinned[0] is False and any(c.startswith("TimeZone=") for c in pinned[1])
    single = run(d, db, shape, ref=True)
    assert gated == single
    for (sql, n), events in zip(STEPS, gated):
        assert n is None or len(events) == n or (n == 0 and "columns" in kw and "UPDATE" in sql), (sql, events)
    assert sum(len(e) for e in gated) >= 15


def test_a_rule_with_a_filter_keeps_the_single_pinned_function(make_daemon, db):
    """Its early return compares the filter on both rows, which may depend on the writer's
    settings: no gate. The pinned function a filterless definition left is dropped."""
    make_table(db, "plain")
    d = make_daemon({"postgres": {"schema": OUTBOX}, "rule.docs": rule()})
    d.cli("init")
    d.cli("apply")
    assert fn(db, "p2q_pinned_docs(text, record, record)") is not None
    d.path.write_text(d.path.read_text().replace("columns = id, title, at", "columns = id, title, at\nfilter = body IS DISTINCT FROM 'z'"))
    d.cli("apply")
    assert fn(db, "p2q_pinned_docs(text, record, record)") is None
    cfg = db.execute(f"SELECT prosecdef, proconfig FROM pg_proc WHERE oid = '{OUTBOX}.p2q_capture_docs()'::regprocedure").fetchone()
    assert cfg[0] is True and any(c.startswith("TimeZone=") for c in cfg[1])
    db.execute("INSERT INTO docs (id, title, emb, body) VALUES (1, 'a', '{1,2,3}', 'x')")
    take_events(db)
    db.execute("UPDATE docs SET body = 'z'")  # an unwatched column that moves the row out of the filter
    assert [e[5] for e in take_events(db)] == ["delete"]
    # the rule removed from the config: every function goes, the pinned one of a filterless rule too
    d.path.write_text(d.path.read_text().replace("\nfilter = body IS DISTINCT FROM 'z'", ""))
    d.cli("apply")
    assert fn(db, "p2q_pinned_docs(text, record, record)") is not None
    d.path.write_text(d.path.read_text().replace("[rule.docs]", "[rule.other]"))
    d.cli("apply")
    assert fn(db, "p2q_pinned_docs(text, record, record)") is None and fn(db, "p2q_capture_docs()") is None


HOSTILE = ["search_path = evil, pg_catalog, public", "plpgsql.extra_errors = 'all'",
           "plpgsql.extra_warnings = 'all'", "TimeZone = 'America/Los_Angeles'", "DateStyle = 'SQL, DMY'",
           "extra_float_digits = -15", "IntervalStyle = 'postgres_verbose'", "bytea_output = 'escape'",
           "lc_monetary = 'C.utf8'", "work_mem = '64kB'"]


@pytest.mark.parametrize("conflict", ["use_column", "use_variable", "error"])
def test_gate_answers_the_same_in_a_hostile_session(make_daemon, db, pgdb, conflict):
    """A writer whose search_path puts a schema first holding an operator *= on records that says
    "the same" for any two rows, an operator = on text that says "different", a type named record
    that the watched columns' ROW() casts to (an unqualified test would skip every UPDATE), a type
    named bool, with plpgsql's extra checks as errors and each variable_conflict: as a role with no
    privilege on the outbox's schema, the same events as the owner's plain session."""
    d = make_daemon({"postgres": {"schema": OUTBOX}, "rule.docs": rule()})
    d.cli("init")
    plain = run(d, db, "plain")
    db.execute("DROP SCHEMA IF EXISTS evil CASCADE")
    db.execute("CREATE SCHEMA evil")
    db.execute("CREATE FUNCTION evil.same(record, record) RETURNS boolean LANGUAGE plpgsql AS 'BEGIN RETURN true; END'")
    db.execute("CREATE OPERATOR evil.*= (LEFTARG = record, RIGHTARG = record, FUNCTION = evil.same)")
    db.execute("CREATE FUNCTION evil.differ(text, text) RETURNS boolean LANGUAGE sql AS 'SELECT false'")
    db.execute("CREATE OPERATOR evil.= (LEFTARG = text, RIGHTARG = text, FUNCTION = evil.differ)")
    # a type record that the watched columns' ROW() casts to, so that the operator above would be used
    db.execute("CREATE TYPE evil.record AS (id bigint, title text, at timestamptz, emb real[])")
    db.execute("CREATE TYPE evil.bool AS (a int)")
    db.execute("DROP ROLE IF EXISTS gate_writer")
    db.execute("CREATE ROLE gate_writer LOGIN")
    db.execute("GRANT USAGE ON SCHEMA evil TO gate_writer")
    db.execute("ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON TABLES TO gate_writer")
    try:
        with psycopg.connect(dbname=pgdb, autocommit=True, user="gate_writer") as w:
            for s in HOSTILE + [f"plpgsql.variable_conflict = '{conflict}'"]:
                w.execute(f"SET {s}")
            # what an unqualified test would have met
            assert w.execute("SELECT ROW(1::bigint, 'a'::text, NULL::timestamptz, '{1}'::real[])::record"
                             " *= ROW(2::bigint, 'b'::text, NULL::timestamptz, '{2}'::real[])::record,"
                             " pg_typeof(ROW(1::bigint, 'a'::text, NULL::timestamptz, '{1}'::real[])::record)"
                             " = 'evil.record'::regtype, 'UPDATE'::text = 'UPDATE'").fetchone() == (True, True, False)
            hostile = run(d, db, "plain", conn=w)
    finally:
        db.execute("DROP OWNED BY gate_writer")
        db.execute("DROP ROLE gate_writer")
        db.execute("DROP SCHEMA evil CASCADE")
    assert hostile == plain
    assert sum(len(e) for e in plain) >= 15


def test_the_pinned_function_confers_no_privilege(make_daemon, db, pgdb):
    """p2q_pinned_<rule> is SECURITY INVOKER: a role that may call it cannot write an event with it
    (only the gate, SECURITY DEFINER and callable by a trigger only, runs it as the owner)."""
    make_table(db, "plain")
    d = make_daemon({"postgres": {"schema": OUTBOX}, "rule.docs": rule()})
    d.cli("init")
    d.cli("apply")
    db.execute("DROP ROLE IF EXISTS gate_caller")
    db.execute("CREATE ROLE gate_caller LOGIN")
    db.execute(f"GRANT USAGE ON SCHEMA {OUTBOX} TO gate_caller")
    db.execute("GRANT SELECT, INSERT, UPDATE ON docs TO gate_caller")
    try:
        with psycopg.connect(dbname=pgdb, autocommit=True, user="gate_caller") as w:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                w.execute(f"SELECT {OUTBOX}.p2q_pinned_docs('INSERT', ROW(7, 'x', '{{1,2,3}}', NULL, NULL)::docs, NULL)")
            w.execute("INSERT INTO docs (id, title, emb) VALUES (8, 'y', '{1,2,3}')")  # its writes are captured
            w.execute("UPDATE docs SET title = 'z' WHERE id = 8")
    finally:
        db.execute(f"REVOKE ALL ON SCHEMA {OUTBOX} FROM gate_caller")
        db.execute("DROP OWNED BY gate_caller")
        db.execute("DROP ROLE gate_caller")
    assert [(e[4], e[5]) for e in take_events(db)] == [('{"id": 8}', "upsert")] * 2


def test_an_install_of_the_previous_release_is_upgraded_without_a_reload(make_daemon, db):
    """The previous release's single pinned function (and its recorded definition, other SQL with
    the same events fingerprint): the next `apply` re-installs the code and enqueues nothing, the
    one after says unchanged; the pair then captures as before."""
    make_table(db, "plain")
    db.execute("INSERT INTO docs (id, title, emb) SELECT g, 't', '{1,2,3}' FROM generate_series(1, 20) g")
    d = make_daemon({"postgres": {"schema": OUTBOX}, "rule.docs": rule()})
    d.cli("init")
    assert "20 existing row(s) enqueued" in d.cli("apply").stdout
    take_events(db)
    ungate(db, OUTBOX)
    db.execute(f"UPDATE {OUTBOX}.sync_outbox_rule SET definition = replace(definition,"
               " '-- the events and their wake-up', '-- the previous release')")
    db.execute("UPDATE docs SET body = 'b' WHERE id = 1")
    db.execute("UPDATE docs SET title = 'u' WHERE id = 2")
    before = take_events(db)
    out = d.cli("apply").stdout
    assert "trigger re-installed" in out and "nothing enqueued" in out, out
    assert take_events(db) == []
    assert fn(db, "p2q_pinned_docs(text, record, record)") is not None
    assert db.execute(f"SELECT proconfig FROM pg_proc WHERE oid = '{OUTBOX}.p2q_capture_docs()'::regprocedure").fetchone()[0] is None
    assert "rule docs: unchanged" in d.cli("apply").stdout
    db.execute("UPDATE docs SET body = 'b' WHERE id = 1")
    db.execute("UPDATE docs SET title = 'v' WHERE id = 2")
    db.execute("UPDATE docs SET title = 'u' WHERE id = 2")
    after = take_events(db)
    assert len(before) == 1 and after[1:] == before and len(after) == 2


def test_the_pinned_function_dropped_by_hand_is_drift_and_apply_puts_it_back(make_daemon, db):
    """No dependency ties the gate to its pinned function (plpgsql resolves the call when it runs):
    dropped by hand, the UPDATEs the gate hands on fail their statements (as with the outbox
    dropped: an event is never lost silently), drift says so, and `apply` installs the code again
    without a reload (no committed change went uncaptured), then says unchanged."""
    make_table(db, "plain")
    db.execute("INSERT INTO docs (id, title, emb) SELECT g, 't', '{1,2,3}' FROM generate_series(1, 5) g")
    d = make_daemon({"postgres": {"schema": OUTBOX}, "rule.docs": rule()})
    d.cli("init")
    d.cli("apply")
    take_events(db)
    db.execute(f"DROP FUNCTION {OUTBOX}.p2q_pinned_docs(text, record, record)")
    db.execute("UPDATE docs SET body = 'b'")  # unwatched: the gate alone
    with pytest.raises(psycopg.errors.UndefinedFunction):
        db.execute("UPDATE docs SET title = 'u' WHERE id = 1")
    drift = db.execute(f"SELECT item, used_as, breaks FROM {OUTBOX}.p2q_drift_docs()").fetchall()
    assert drift == [(f'"{OUTBOX}"."p2q_pinned_docs"(text, record, record)', "function", True)]
    assert "p2q_pinned_docs" in d.cli("status", check=False).stdout
    out = d.cli("apply").stdout
    assert "trigger re-installed" in out and "nothing enqueued" in out, out
    assert db.execute(f"SELECT count(*) FROM {OUTBOX}.p2q_drift_docs()").fetchone()[0] == 0
    assert "rule docs: unchanged" in d.cli("apply").stdout
    db.execute("UPDATE docs SET title = 'u' WHERE id = 1")
    assert [(e[4], e[5]) for e in take_events(db)] == [('{"id": 1}', "upsert")]

"""The capture trigger functions act only for their rule's table (rv14b H1; src/capture_relid.c).

They are SECURITY DEFINER and, like every function, executable by PUBLIC; CREATE TRIGGER needs
only EXECUTE and ownership of the table, so any role could attach them to a TEMP table of its own
and have them write forged upserts and deletes (arbitrary points in Qdrant, real ones deleted).
EXECUTE stays PUBLIC (revoking it makes the application's CREATE TABLE … PARTITION OF / ATTACH
PARTITION fail: PostgreSQL checks it when it clones the row trigger); instead each function's
first statement compares TG_RELID with the table's oid and, for another table that is no
partition of it, returns with a WARNING and writes nothing.

What a demanding user expects, and what is asserted: the forger's statements are NOT failed (a
capture function never fails a statement: the same rule as for the application; the forger
learns nothing it could not read in pg_proc), they write no event, and the WARNING names the rule,
the trigger and the table, so a DBA sees the attempt in the log. The application's partitioned
table still captures, through partitions created or attached later by the application's role,
and a table renamed after `apply` still captures in a new session (the oid is written into the
function, not looked up by name).
"""
import psycopg
import pytest

COLS = "id bigint, title text, emb real[]"
RULES = {
    "rule.docs": {"table": "public.docs", "key": "id", "vector_column": "emb", "dimension": "3",
                  "collection": "docs", "columns": "id, title"},
    # a filter: the single pinned row function (no gate) and the pinned statement functions
    "rule.fdocs": {"table": "public.fdocs", "key": "id", "vector_column": "emb", "dimension": "3",
                   "collection": "fdocs", "columns": "id, title", "filter": "r.title IS NOT NULL"},
}


@pytest.fixture
def forger(db, pgdb):
    """A role with no privilege but PostgreSQL's defaults (CONNECT, TEMP, EXECUTE)."""
    role = "p2q_forger_" + pgdb[-8:]
    db.execute(f'CREATE ROLE "{role}"')
    yield role
    db.execute("RESET ROLE")
    db.execute(f'DROP OWNED BY "{role}"')
    db.execute(f'DROP ROLE "{role}"')


def forge(db, role, rule):
    """repro_forge.sh and atk3.sql, as role, against every trigger function of rule: returns the
    WARNINGs raised. Every statement must succeed."""
    warned = []
    db.add_notice_handler(lambda n: warned.append(n.message_primary))
    db.execute(f'SET ROLE "{role}"')
    assert db.execute("SELECT has_table_privilege('public.sync_outbox', 'INSERT')").fetchone() == (False,)
    fn = lambda kind: f"public.p2q_{kind}_{rule}()"  # noqa: E731
    db.execute(f"CREATE TEMP TABLE fake_{rule} ({COLS})")
    db.execute(f"CREATE TRIGGER fi AFTER INSERT ON fake_{rule} REFERENCING NEW TABLE AS p2q_new"
               f" FOR EACH STATEMENT EXECUTE FUNCTION {fn('insert')}")
    db.execute(f"CREATE TRIGGER fd AFTER DELETE ON fake_{rule} REFERENCING OLD TABLE AS p2q_old"
               f" FOR EACH STATEMENT EXECUTE FUNCTION {fn('delete')}")
    db.execute(f"CREATE TRIGGER ft BEFORE TRUNCATE ON fake_{rule} FOR EACH STATEMENT EXECUTE FUNCTION {fn('truncate')}")
    db.execute(f"INSERT INTO fake_{rule} VALUES (666, 'FORGED', '{{6,6,6}}')")
    db.execute(f"INSERT INTO fake_{rule} VALUES (667, 'FORGED set', '{{6,6,6}}'), (668, 'FORGED set', '{{6,6,6}}')")
    db.execute(f"DELETE FROM fake_{rule} WHERE id = 666")
    db.execute(f"DELETE FROM fake_{rule}")
    db.execute(f"INSERT INTO fake_{rule} VALUES (1, 'x', '{{1,1,1}}')")
    db.execute(f"TRUNCATE fake_{rule}")
    # no transition table: the unqualified p2q_old must not resolve to the forger's pg_temp.p2q_old
    db.execute(f"CREATE TEMP TABLE IF NOT EXISTS p2q_old ({COLS})")
    db.execute("INSERT INTO p2q_old VALUES (1, 'x', '{1,1,1}'), (2, 'x', '{1,1,1}')")
    db.execute("GRANT SELECT ON p2q_old TO PUBLIC")
    db.execute(f"CREATE TEMP TABLE fake2_{rule} (x int)")
    db.execute(f"INSERT INTO fake2_{rule} VALUES (1)")
    db.execute(f"CREATE TRIGGER g AFTER DELETE ON fake2_{rule} FOR EACH STATEMENT EXECUTE FUNCTION {fn('delete')}")
    db.execute(f"DELETE FROM fake2_{rule}")
    # the row function (the gate, or the filtered rule's pinned function)
    db.execute(f"CREATE TEMP TABLE fake3_{rule} ({COLS})")
    db.execute(f"CREATE TRIGGER h AFTER INSERT OR UPDATE OR DELETE ON fake3_{rule} FOR EACH ROW"
               f" EXECUTE FUNCTION {fn('capture')}")
    db.execute(f"INSERT INTO fake3_{rule} VALUES (5555, 'FORGED gate', '{{7,7,7}}')")
    db.execute(f"UPDATE fake3_{rule} SET title = 'FORGED again', emb = '{{8,8,8}}'")
    db.execute(f"DELETE FROM fake3_{rule}")
    db.execute("RESET ROLE")
    return warned


@pytest.mark.parametrize("rule", ["docs", "fdocs"], ids=["gate", "filtered"])
def test_forged_triggers_write_no_event(make_daemon, db, forger, rule):
    for t in ("docs", "fdocs"):
        db.execute(f"CREATE TABLE {t} ({COLS}, PRIMARY KEY (id))")
    make_daemon(RULES).cli("apply", "--no-backfill")
    kinds = {k for (k,) in db.execute(
        "SELECT split_part(proname, '_', 2) FROM pg_proc WHERE proname ~ %s AND prosecdef",
        (f"^p2q_(capture|insert|delete|truncate)_{rule}$",))}
    assert kinds == {"capture", "insert", "delete", "truncate"}, kinds
    warned = forge(db, forger, rule)
    assert db.execute("SELECT count(*) FROM sync_outbox").fetchone() == (0,)
    assert len(warned) >= 9, warned
    assert all(w.startswith(f"pg2qdrant: rule {rule}: trigger ") and "not on the rule's table: no event written" in w
               for w in warned), warned
    # the real table still captures (its statements and its row path)
    db.execute(f"INSERT INTO {rule} VALUES (1, 'a', '{{1,2,3}}')")
    db.execute(f"INSERT INTO {rule} VALUES (2, 'b', '{{1,2,3}}'), (3, 'c', '{{1,2,3}}')")
    db.execute(f"UPDATE {rule} SET title = 'z' WHERE id = 2")
    db.execute(f"DELETE FROM {rule} WHERE id = 3")
    db.execute(f"TRUNCATE {rule}")
    got = db.execute("SELECT op, (row_key->>'id')::int FROM sync_outbox ORDER BY id").fetchall()
    assert got == [("upsert", 1), ("upsert", 2), ("upsert", 3), ("upsert", 2), ("delete", 3),
                   ("delete", 1), ("delete", 2)] or sorted(got) == sorted(
        [("upsert", 1), ("upsert", 2), ("upsert", 3), ("upsert", 2), ("delete", 3), ("delete", 1), ("delete", 2)]), got


def test_application_partitions_still_capture(make_daemon, db, pgdb):
    """EXECUTE stays PUBLIC: the application's role (owner of the table, no superuser) creates and
    attaches partitions, the cloned row trigger captures on them (the guard's partition test),
    at any depth; a rule on a sub-partitioned partition (its root another table) too."""
    app = "p2q_app_" + pgdb[-8:]
    db.execute(f'CREATE ROLE "{app}"')
    try:
        db.execute(f'GRANT CREATE ON SCHEMA public TO "{app}"')
        db.execute(f'SET ROLE "{app}"')
        db.execute(f"CREATE TABLE docs ({COLS}, region int, PRIMARY KEY (id, region)) PARTITION BY LIST (region)")
        db.execute("CREATE TABLE docs_1 PARTITION OF docs FOR VALUES IN (1)")
        db.execute("CREATE TABLE docs_2 PARTITION OF docs FOR VALUES IN (2, 3) PARTITION BY LIST (region)")
        db.execute("CREATE TABLE docs_2a PARTITION OF docs_2 FOR VALUES IN (2)")
        db.execute("RESET ROLE")
        rule = dict(RULES["rule.docs"], key="id, region")
        d = make_daemon({"rule.docs": rule, "rule.sub": dict(rule, table="public.docs_2", collection="sub")})
        d.cli("apply", "--no-backfill")
        db.execute(f'GRANT USAGE ON SCHEMA public TO "{app}"')
        db.execute(f'SET ROLE "{app}"')
        warned = []
        db.add_notice_handler(lambda n: warned.append(n.message_primary))
        db.execute("CREATE TABLE docs_2b PARTITION OF docs_2 FOR VALUES IN (3)")  # the clone checks EXECUTE
        db.execute("CREATE TABLE docs_4 (LIKE docs INCLUDING ALL)")
        db.execute("ALTER TABLE docs ATTACH PARTITION docs_4 FOR VALUES IN (4)")
        db.execute("INSERT INTO docs VALUES (1, 'a', '{1,2,3}', 1), (2, 'b', '{1,2,3}', 2), (3, 'c', '{1,2,3}', 3),"
                   " (4, 'd', '{1,2,3}', 4)")
        db.execute("INSERT INTO docs_4 VALUES (5, 'e', '{1,2,3}', 4)")
        db.execute("DELETE FROM docs WHERE id IN (1, 3)")
        db.execute("RESET ROLE")
        assert not [w for w in warned if "no event written" in w], warned
        got = db.execute("SELECT rule, op, (row_key->>'id')::int FROM sync_outbox ORDER BY id").fetchall()
        assert sorted(got) == sorted([("docs", "upsert", i) for i in range(1, 6)] + [("docs", "delete", 1), ("docs", "delete", 3)]
                                     + [("sub", "upsert", 2), ("sub", "upsert", 3), ("sub", "delete", 3)]), got
    finally:
        db.execute("RESET ROLE")
        db.execute(f'DROP OWNED BY "{app}"')
        db.execute(f'DROP ROLE "{app}"')


def test_renamed_table_still_captures_in_a_new_session(make_daemon, db, pgdb):
    """The table's oid is in the function: a rename after `apply` fails no statement of a session
    that never ran the function (a '<table>'::regclass would be parsed again and raise)."""
    db.execute(f"CREATE TABLE docs ({COLS}, PRIMARY KEY (id))")
    make_daemon({"rule.docs": RULES["rule.docs"]}).cli("apply", "--no-backfill")
    db.execute("SET pg2qdrant.allow_ddl = on")
    db.execute("ALTER TABLE docs RENAME TO docs_renamed")
    with psycopg.connect(dbname=pgdb, autocommit=True) as c:
        c.execute("INSERT INTO docs_renamed VALUES (1, 'a', '{1,2,3}')")
        c.execute("INSERT INTO docs_renamed VALUES (2, 'b', '{1,2,3}'), (3, 'c', '{1,2,3}')")
        c.execute("UPDATE docs_renamed SET title = 'z'")
        c.execute("DELETE FROM docs_renamed")
    assert db.execute("SELECT count(*) FROM sync_outbox").fetchone() == (9,)

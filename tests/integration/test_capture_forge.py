"""The capture trigger functions act only for their rule's table (src/capture_relid.c,
sync_outbox_capture_accepts in sql/functions.sql), and what they refuse is kept, never lost.

They are SECURITY DEFINER and, like every function, executable by PUBLIC; CREATE TRIGGER needs
only EXECUTE and ownership of the table, so any role could attach them to a table of its own and
have them write forged upserts and deletes (arbitrary points in Qdrant, real ones deleted).
EXECUTE stays PUBLIC (revoking it makes the application's CREATE TABLE … PARTITION OF / ATTACH
PARTITION fail: PostgreSQL checks it when it clones the row trigger). Instead each function's first
statement compares TG_RELID and the table's names with what `apply` wrote in; when they differ, a
catalog test follows the fired trigger to its root and that table's ancestors.

What a demanding user expects, and what is asserted: a forger's statements are NOT failed (a
capture function never fails a statement), they write no event: their rows become dead letters
(harmless: `retry --dead` enqueues the rule's table's row of that key as it is now) and a WARNING
names the trigger, the table and the rule. Nothing of the forger's runs as the functions' owner
(its cast to json, its pg_temp transition-table look-alike, its search_path's functions and
operators). The application's partitioned table captures through partitions created or attached
later by the application's role, at any depth, with a DETACH … CONCURRENTLY pending or cancelled;
a renamed table captures in a new session; a pg_dump restored into a new database (also
--no-acl --no-owner) captures with the stale oid, `check` warns, `apply` installs again. M1 (a
stranger takes the renamed table's name) and M2 (a stranger's table given the stale oid) refused.
"""
import os
import re
import shutil
import subprocess
import threading
import time

import psycopg
import pytest

from test_capture_unpinned import HOSTILE, evil

COLS = "id bigint, title text, emb real[]"
RULES = {
    "rule.docs": {"table": "public.docs", "key": "id", "vector_column": "emb", "dimension": "3",
                  "collection": "docs", "columns": "id, title"},
    # a filter: the single pinned row function (no gate) and the pinned statement functions
    "rule.fdocs": {"table": "public.fdocs", "key": "id", "vector_column": "emb", "dimension": "3",
                   "collection": "fdocs", "columns": "id, title", "filter": "r.title IS NOT NULL"},
}
WARN = "is not on rule {}'s table: not applied"


def pg_tool(name):
    for d in ("/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/17/bin"):
        if os.path.exists(os.path.join(d, name)):
            return os.path.join(d, name)
    return shutil.which(name) or name


@pytest.fixture
def forger(db, pgdb):
    """A role with no privilege but PostgreSQL's defaults (CONNECT, TEMP, EXECUTE) and CREATE in
    its own schema."""
    role = "p2q_forger_" + pgdb[-8:]
    db.execute(f'CREATE ROLE "{role}"')
    db.execute(f'CREATE SCHEMA forger AUTHORIZATION "{role}"')
    yield role
    db.execute("RESET ROLE")
    db.execute("DROP SCHEMA forger CASCADE")
    db.execute(f'DROP OWNED BY "{role}"')
    db.execute(f'DROP ROLE "{role}"')


def events(db):
    return db.execute("SELECT rule, op, (row_key->>'id')::int FROM sync_outbox ORDER BY id").fetchall()


def dead(db):
    return db.execute("SELECT rule, op, row_key::text, last_error FROM sync_outbox_dead ORDER BY id").fetchall()


def forge(db, role, rule, schema="pg_temp"):
    """repro_forge.sh and atk3.sql, as role (hostile session settings, search_path = evil first),
    against every trigger function of rule, from tables in `schema`: returns the WARNINGs raised.
    Every statement must succeed."""
    warned = []  # (a non-superuser's SET of a plpgsql.* placeholder warns as well: not ours)
    db.add_notice_handler(lambda n: warned.append(n.message_primary) if "permission denied to set" not in n.message_primary
                          else None)
    db.execute(f'SET ROLE "{role}"')
    for s in HOSTILE:
        db.execute(f"SET {s}")
    db.execute("SET search_path = evil, pg_catalog, pg_temp")
    assert db.execute("SELECT pg_catalog.has_table_privilege('public.sync_outbox', 'INSERT')").fetchone() == (False,)
    fn = lambda kind: f"public.p2q_{kind}_{rule}()"  # noqa: E731
    t = f"{schema}.fake_{rule}"
    db.execute(f"CREATE TABLE {t} ({COLS})")
    db.execute(f"CREATE TRIGGER fi AFTER INSERT ON {t} REFERENCING NEW TABLE AS p2q_new"
               f" FOR EACH STATEMENT EXECUTE FUNCTION {fn('insert')}")
    db.execute(f"CREATE TRIGGER fd AFTER DELETE ON {t} REFERENCING OLD TABLE AS p2q_old"
               f" FOR EACH STATEMENT EXECUTE FUNCTION {fn('delete')}")
    db.execute(f"CREATE TRIGGER ft BEFORE TRUNCATE ON {t} FOR EACH STATEMENT EXECUTE FUNCTION {fn('truncate')}")
    db.execute(f"INSERT INTO {t} VALUES (666, 'FORGED', '{{6,6,6}}')")
    db.execute(f"INSERT INTO {t} VALUES (667, 'FORGED set', '{{6,6,6}}'), (668, 'FORGED set', '{{6,6,6}}')")
    db.execute(f"DELETE FROM {t} WHERE id OPERATOR(pg_catalog.=) 666")
    db.execute(f"DELETE FROM {t}")
    db.execute(f"INSERT INTO {t} VALUES (1, 'x', '{{1,1,1}}')")
    db.execute(f"TRUNCATE {t}")
    # no transition table: the unqualified p2q_old must not resolve to the forger's pg_temp.p2q_old,
    # here a view whose function would run as the functions' owner
    db.execute("CREATE FUNCTION pg_temp.spy() RETURNS bigint LANGUAGE plpgsql AS"
               " $$BEGIN INSERT INTO evil.calls VALUES ('spy as ' || current_user); RETURN 2; END$$")
    db.execute("CREATE TEMP VIEW p2q_old AS SELECT pg_temp.spy() AS id, 'x'::text AS title, '{1,1,1}'::real[] AS emb")
    db.execute("CREATE TEMP VIEW p2q_new AS SELECT pg_temp.spy() AS id, 'x'::text AS title, '{1,1,1}'::real[] AS emb")
    db.execute("GRANT SELECT ON p2q_old, p2q_new TO PUBLIC")
    db.execute(f"CREATE TEMP TABLE fake2_{rule} (x int)")
    db.execute(f"INSERT INTO fake2_{rule} VALUES (1)")
    db.execute(f"CREATE TRIGGER g AFTER DELETE ON fake2_{rule} FOR EACH STATEMENT EXECUTE FUNCTION {fn('delete')}")
    db.execute(f"CREATE TRIGGER g2 AFTER INSERT ON fake2_{rule} FOR EACH STATEMENT EXECUTE FUNCTION {fn('insert')}")
    db.execute(f"CREATE TRIGGER g3 AFTER INSERT ON fake2_{rule} FOR EACH ROW EXECUTE FUNCTION {fn('insert')}")
    db.execute(f"CREATE TRIGGER g4 AFTER INSERT ON fake2_{rule} FOR EACH STATEMENT EXECUTE FUNCTION {fn('capture')}")
    db.execute(f"DELETE FROM fake2_{rule}")
    db.execute(f"INSERT INTO fake2_{rule} VALUES (2)")
    # the row function (the gate, or the filtered rule's pinned function)
    db.execute(f"CREATE TABLE {schema}.fake3_{rule} ({COLS})")
    db.execute(f"CREATE TRIGGER h AFTER INSERT OR UPDATE OR DELETE ON {schema}.fake3_{rule} FOR EACH ROW"
               f" EXECUTE FUNCTION {fn('capture')}")
    db.execute(f"INSERT INTO {schema}.fake3_{rule} VALUES (5555, 'FORGED gate', '{{7,7,7}}')")
    db.execute(f"UPDATE {schema}.fake3_{rule} SET title = 'FORGED again', emb = '{{8,8,8}}', id = 5556")
    db.execute(f"DELETE FROM {schema}.fake3_{rule}")
    # a key of the forger's own type, whose cast to json would run as the functions' owner
    db.execute("CREATE TYPE forger.k AS (v int)")
    db.execute("CREATE FUNCTION forger.k_json(forger.k) RETURNS json LANGUAGE plpgsql AS"
               " $$BEGIN INSERT INTO evil.calls VALUES ('cast as ' || current_user); RETURN '1'; END$$")
    db.execute("CREATE CAST (forger.k AS json) WITH FUNCTION forger.k_json(forger.k)")
    db.execute(f"CREATE TEMP TABLE fake4_{rule} (id forger.k, title text, emb real[])")
    db.execute(f"CREATE TRIGGER h AFTER INSERT ON fake4_{rule} FOR EACH ROW EXECUTE FUNCTION {fn('capture')}")
    db.execute(f"CREATE TRIGGER s AFTER INSERT ON fake4_{rule} REFERENCING NEW TABLE AS p2q_new"
               f" FOR EACH STATEMENT EXECUTE FUNCTION {fn('insert')}")
    db.execute(f"INSERT INTO fake4_{rule} VALUES (ROW(9), 'FORGED type', '{{9,9,9}}')")
    db.execute("RESET ROLE")
    db.execute("RESET ALL")
    return warned


def write_all(c, t, extra="", truncate=True):
    """INSERT one row and two rows, UPDATE, DELETE, TRUNCATE (or DELETE) on t: 7 events."""
    c.execute(f"INSERT INTO {t} VALUES (1, 'a', '{{1,2,3}}'{extra})")
    c.execute(f"INSERT INTO {t} VALUES (2, 'b', '{{1,2,3}}'{extra}), (3, 'c', '{{1,2,3}}'{extra})")
    c.execute(f"UPDATE {t} SET title = 'z' WHERE id = 2")
    c.execute(f"DELETE FROM {t} WHERE id = 3")
    c.execute(f"TRUNCATE {t}" if truncate else f"DELETE FROM {t}")


EXPECTED_7 = [("upsert", 1), ("upsert", 2), ("upsert", 3), ("upsert", 2), ("delete", 3), ("delete", 1), ("delete", 2)]


@pytest.mark.parametrize("where", ["temp", "permanent"])
@pytest.mark.parametrize("rule", ["docs", "fdocs"], ids=["gate", "filtered"])
def test_forged_triggers_write_dead_letters_not_events(make_daemon, db, forger, rule, where):
    evil(db)
    db.execute("GRANT USAGE ON SCHEMA evil TO PUBLIC")
    for t in ("docs", "fdocs"):
        db.execute(f"CREATE TABLE {t} ({COLS}, PRIMARY KEY (id))")
    make_daemon(RULES).cli("apply", "--no-backfill")
    kinds = {k for (k,) in db.execute(
        "SELECT split_part(proname, '_', 2) FROM pg_proc WHERE proname ~ %s AND prosecdef",
        (f"^p2q_(capture|insert|delete|truncate)_{rule}$",))}
    assert kinds == {"capture", "insert", "delete", "truncate"}, kinds
    if where == "temp":
        warned = forge(db, forger, rule)
    else:
        warned = forge(db, forger, rule, schema="forger")
    assert db.execute("SELECT count(*) FROM sync_outbox").fetchone() == (0,)
    assert db.execute("SELECT * FROM evil.calls").fetchall() == []  # nothing of the forger's ran
    fakes = ("fake", "fake2", "fake3", "fake4")
    assert len(warned) == 15, warned
    assert all(w.startswith("pg2qdrant: trigger ") and WARN.format(rule) in w for w in warned), warned
    got = dead(db)
    assert all(r == rule and "pg2qdrant: trigger " in e and WARN.format(rule) in e for r, _, _, e in got), got
    assert all(any(f".{f}_{rule} " in e for f in fakes) for _, _, _, e in got), got
    keys = sorted((op, k) for _, op, k, _ in got)
    assert keys == sorted([("upsert", '{"id": 666}'), ("upsert", '{"id": 667}'), ("upsert", '{"id": 668}'),
                           ("delete", '{"id": 666}'), ("delete", '{"id": 667}'), ("delete", '{"id": 668}'),
                           ("upsert", '{"id": 1}'),
                           ("upsert", '{"id": 5555}'), ("upsert", '{"id": 5556}'), ("delete", '{"id": 5555}'),
                           ("delete", '{"id": 5556}'),
                           ("upsert", '{"id": "(9)"}'), ("upsert", '{"id": "(9)"}')]), keys
    # status counts them; retry --dead re-captures those keys from the rule's table: none exist,
    # so each becomes a delete of a point no row has (harmless), and the dead letters go
    d = make_daemon(RULES)
    assert "dead" in d.cli("status").stdout
    out = d.cli("retry", "--dead")
    # the two keys of the forger's own type ("(9)") are no bigint: kept, said, the rest brought back
    assert "1 dead event key(s) kept" in out.stderr, out.stderr
    assert [k for _, _, k, _ in dead(db)] == ['{"id": "(9)"}'] * 2
    assert {op for _, op, _ in events(db)} == {"delete"}
    assert sorted(k for _, _, k in events(db)) == [1, 666, 667, 668, 5555, 5556]  # one delete a key
    db.execute("DELETE FROM sync_outbox")
    # the real table still captures (its statements and its row path), with no WARNING
    warned.clear()
    write_all(db, rule)
    assert not warned, warned
    got = [(op, k) for _, op, k in events(db)]
    assert sorted(got) == sorted(EXPECTED_7), got


def test_forged_dead_letter_of_a_real_key_is_recaptured_as_the_row_is(make_daemon, db, forger):
    """A forger's upsert of a real row's key becomes a dead letter; `retry --dead` enqueues the
    row as the table holds it, never the forger's content."""
    db.execute(f"CREATE TABLE docs ({COLS}, PRIMARY KEY (id))")
    d = make_daemon({"rule.docs": RULES["rule.docs"]})
    d.cli("apply", "--no-backfill")
    db.execute("INSERT INTO docs VALUES (7, 'real', '{1,2,3}')")
    db.execute("DELETE FROM sync_outbox")
    db.execute(f'SET ROLE "{forger}"')
    db.execute(f"CREATE TEMP TABLE f ({COLS})")
    db.execute("CREATE TRIGGER h AFTER INSERT ON f FOR EACH ROW EXECUTE FUNCTION public.p2q_capture_docs()")
    db.execute("INSERT INTO f VALUES (7, 'FORGED', '{6,6,6}')")
    db.execute("RESET ROLE")
    assert db.execute("SELECT count(*) FROM sync_outbox").fetchone() == (0,)
    assert [(op, k) for _, op, k, _ in dead(db)] == [("upsert", '{"id": 7}')]
    d.cli("retry", "--dead")
    got = db.execute("SELECT op, row_key::text, payload::text FROM sync_outbox").fetchall()
    assert got == [("upsert", '{"id": 7}', '{"id" : 7, "title" : "real", "emb" : null}')] or (
        len(got) == 1 and got[0][0] == "upsert" and "real" in got[0][2] and "FORGED" not in got[0][2]), got


def test_application_partitions_still_capture(make_daemon, db, pgdb):
    """EXECUTE stays PUBLIC: the application's role (owner of the table, no superuser) creates and
    attaches partitions, the cloned row trigger captures on them at any depth, under hostile
    settings; a rule on a sub-partitioned partition (its root another table) too."""
    evil(db)
    db.execute("GRANT USAGE ON SCHEMA evil TO PUBLIC")
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
        db.execute("SET track_functions = 'all'")  # sync_outbox_capture_accepts' calls: the slow test
        db.execute(f'SET ROLE "{app}"')
        for s in HOSTILE:
            db.execute(f"SET {s}")
        db.execute("SET search_path = public, evil, pg_catalog")
        warned = []  # ours (the DDL guard's notice of a partition's missing TRUNCATE trigger is not one)
        db.add_notice_handler(lambda n: warned.append(n.message_primary) if "pg2qdrant: trigger" in n.message_primary
                              else None)
        db.execute("CREATE TABLE docs_2b PARTITION OF docs_2 FOR VALUES IN (3)")  # the clone checks EXECUTE
        db.execute("CREATE TABLE docs_4 (LIKE docs INCLUDING ALL)")
        db.execute("ALTER TABLE docs ATTACH PARTITION docs_4 FOR VALUES IN (4)")
        db.execute("INSERT INTO docs VALUES (1, 'a', '{1,2,3}', 1), (2, 'b', '{1,2,3}', 2), (3, 'c', '{1,2,3}', 3),"
                   " (4, 'd', '{1,2,3}', 4)")
        db.execute("INSERT INTO docs_4 VALUES (5, 'e', '{1,2,3}', 4)")
        db.execute("DELETE FROM docs WHERE id OPERATOR(pg_catalog.=) 1 OR id OPERATOR(pg_catalog.=) 3")
        db.execute("RESET ROLE")
        db.execute("RESET ALL")
        assert not warned, warned
        assert db.execute("SELECT * FROM evil.calls").fetchall() == []
        assert db.execute("SELECT count(*) FROM sync_outbox_dead").fetchone() == (0,)
        got = events(db)
        assert sorted(got) == sorted([("docs", "upsert", i) for i in range(1, 6)] + [("docs", "delete", 1), ("docs", "delete", 3)]
                                     + [("sub", "upsert", 2), ("sub", "upsert", 3), ("sub", "delete", 3)]), got
        # the partitions created or attached since apply took the slow test; apply writes them into
        # the fast one (its check of the installed functions sees them missing), and then none does
        assert accepts_calls(db) > 0
        out = d.cli("apply", "--no-backfill").stdout
        assert out.count("its functions re-installed with the table's partitions") == 2, out
        db.execute("DELETE FROM sync_outbox")
        db.execute("SELECT pg_stat_reset()")
        db.execute(f'SET ROLE "{app}"')
        db.execute("INSERT INTO docs VALUES (11, 'a', '{1,2,3}', 1), (12, 'b', '{1,2,3}', 2), (13, 'c', '{1,2,3}', 3),"
                   " (14, 'd', '{1,2,3}', 4)")
        db.execute("DELETE FROM docs WHERE id OPERATOR(pg_catalog.>) 10")
        db.execute("RESET ROLE")
        assert not warned, warned
        assert accepts_calls(db) == 0
        got = events(db)
        assert sorted(got) == sorted([("docs", "upsert", i) for i in range(11, 15)] + [("docs", "delete", i) for i in range(11, 15)]
                                     + [("sub", "upsert", 12), ("sub", "upsert", 13), ("sub", "delete", 12),
                                        ("sub", "delete", 13)]), got
    finally:
        db.execute("RESET ROLE")
        db.execute(f'DROP OWNED BY "{app}"')
        db.execute(f'DROP ROLE "{app}"')


def accepts_calls(db):
    """Calls of sync_outbox_capture_accepts (the slow test) by this session (track_functions = 'all')."""
    db.execute("SELECT pg_stat_force_next_flush()")
    db.execute("SELECT pg_stat_clear_snapshot()")
    got = db.execute("SELECT calls FROM pg_stat_user_functions WHERE funcname = 'sync_outbox_capture_accepts'").fetchone()
    return got[0] if got else 0


@pytest.mark.parametrize("path", ["fast", "slow"])
def test_partition_with_a_pending_detach_still_captures(make_daemon, db, pgdb, path):
    """rv14d H1: ALTER TABLE … DETACH PARTITION … CONCURRENTLY waiting for an older snapshot, then
    cancelled: the partition keeps its cloned row trigger (and its TRUNCATE trigger) and its
    pg_inherits row (inhdetachpending); its rows are still the rule's until the detach finishes.
    fast: the partition as `apply` wrote it into the functions; slow: renamed since, so the catalog
    test (root trigger, pg_inherits with the pending row) decides."""
    db.execute(f"CREATE TABLE docs ({COLS}, region int, PRIMARY KEY (id, region)) PARTITION BY LIST (region)")
    db.execute("CREATE TABLE docs_1 PARTITION OF docs FOR VALUES IN (1)")
    db.execute("CREATE TABLE docs_2 PARTITION OF docs FOR VALUES IN (2)")
    d = make_daemon({"rule.docs": dict(RULES["rule.docs"], key="id, region")})
    d.cli("apply", "--no-backfill")
    part = "docs_1"
    if path == "slow":
        db.execute("SET pg2qdrant.allow_ddl = on")
        db.execute("ALTER TABLE docs_1 RENAME TO docs_1x")
        part = "docs_1x"
    db.execute("SET track_functions = 'all'")
    warned = []
    db.add_notice_handler(lambda n: warned.append(n.message_primary))
    with psycopg.connect(dbname=pgdb) as old, psycopg.connect(dbname=pgdb, autocommit=True) as w:
        old.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        old.execute("SELECT count(*) FROM docs")  # the snapshot the detach waits for
        err = []

        def detach():
            with psycopg.connect(dbname=pgdb, autocommit=True) as c:
                c.execute("SET statement_timeout = '6s'")
                try:
                    c.execute(f"ALTER TABLE docs DETACH PARTITION {part} CONCURRENTLY")
                except psycopg.Error as e:
                    err.append(e)
        th = threading.Thread(target=detach)
        th.start()
        for _ in range(100):  # the detach's first transaction committed: pending
            if db.execute(f"SELECT inhdetachpending FROM pg_inherits WHERE inhrelid = '{part}'::regclass").fetchone() == (True,):
                break
            time.sleep(0.05)
        else:
            raise AssertionError("the detach never became pending")
        write_all(w, part, ", 1", truncate=False)  # while the detach waits (TRUNCATE would wait for `old`)
        th.join()
        old.rollback()
    assert err and "statement timeout" in str(err[0]), err  # cancelled: still pending
    assert db.execute(f"SELECT inhdetachpending FROM pg_inherits WHERE inhrelid = '{part}'::regclass").fetchone() == (True,)
    db.execute("SELECT pg_stat_reset()")
    write_all(db, part, ", 1")  # after the cancel
    assert (accepts_calls(db) > 0) == (path == "slow")
    assert not warned, warned
    assert db.execute("SELECT count(*) FROM sync_outbox_dead").fetchone() == (0,)
    got = [(op, k) for _, op, k in events(db)]
    assert sorted(got) == sorted(EXPECTED_7 * 2), got
    # finished: the cloned row trigger goes with the membership, a write there is no event
    db.execute("DELETE FROM sync_outbox")
    db.execute(f"ALTER TABLE docs DETACH PARTITION {part} FINALIZE")
    db.execute(f"INSERT INTO {part} VALUES (9, 'x', '{{1,2,3}}', 1)")
    assert events(db) == []


def test_renamed_table_still_captures_in_a_new_session(make_daemon, db, pgdb):
    """The table's oid is in the function: a rename after `apply` fails no statement of a session
    that never ran the function (a '<table>'::regclass would be parsed again and raise); the
    names differ, so the catalog test accepts it by its oid."""
    db.execute(f"CREATE TABLE docs ({COLS}, PRIMARY KEY (id))")
    make_daemon({"rule.docs": RULES["rule.docs"]}).cli("apply", "--no-backfill")
    db.execute("SET pg2qdrant.allow_ddl = on")
    db.execute("ALTER TABLE docs RENAME TO docs_renamed")
    with psycopg.connect(dbname=pgdb, autocommit=True) as c:
        warned = []
        c.add_notice_handler(lambda n: warned.append(n.message_primary))
        write_all(c, "docs_renamed")
        assert not warned, warned
    assert sorted((op, k) for _, op, k in events(db)) == sorted(EXPECTED_7)


def test_stranger_taking_a_renamed_tables_name_is_refused(make_daemon, db, forger):
    """rv14d M1: the rule's table renamed, a role with CREATE in its schema creates a table of that
    name and attaches the functions: the table the written oid names still carries them, so the
    name alone does not pass."""
    db.execute(f"CREATE TABLE docs ({COLS}, PRIMARY KEY (id))")
    make_daemon({"rule.docs": RULES["rule.docs"]}).cli("apply", "--no-backfill")
    db.execute("SET pg2qdrant.allow_ddl = on")
    db.execute("ALTER TABLE docs RENAME TO docs_renamed")
    db.execute(f'GRANT CREATE ON SCHEMA public TO "{forger}"')
    warned = []
    db.add_notice_handler(lambda n: warned.append(n.message_primary))
    db.execute(f'SET ROLE "{forger}"')
    db.execute(f"CREATE TABLE public.docs ({COLS})")
    db.execute("CREATE TRIGGER h AFTER INSERT ON public.docs FOR EACH ROW EXECUTE FUNCTION public.p2q_capture_docs()")
    db.execute("CREATE TRIGGER i AFTER INSERT ON public.docs REFERENCING NEW TABLE AS p2q_new FOR EACH STATEMENT"
               " EXECUTE FUNCTION public.p2q_insert_docs()")
    db.execute("INSERT INTO public.docs VALUES (666, 'FORGED', '{6,6,6}')")
    db.execute("RESET ROLE")
    assert db.execute("SELECT count(*) FROM sync_outbox").fetchone() == (0,)
    assert len(warned) == 2 and all(WARN.format("docs") in w for w in warned), warned
    assert [(op, k) for _, op, k, _ in dead(db)] == [("upsert", '{"id": 666}')] * 2
    db.execute(f'DROP TABLE public.docs')
    db.execute(f'REVOKE CREATE ON SCHEMA public FROM "{forger}"')


def restore(db, pgdb, new, *opts):
    """pg_dump -Fc of pgdb restored by pg_restore (opts) into the new database `new`."""
    db.execute(f'CREATE DATABASE "{new}"')
    dump = subprocess.run([pg_tool("pg_dump"), "-Fc", "-d", pgdb], capture_output=True, check=True).stdout
    subprocess.run([pg_tool("pg_restore"), "-d", new, *opts], input=dump, capture_output=True, check=True)


def rewrite_oid(c, rule, new_oid):
    """Every function of rule with new_oid in place of the oid apply wrote in (what a restore into
    another cluster, or an oid collision, leaves)."""
    c.execute(f"""DO $$DECLARE f oid; BEGIN
      FOR f IN SELECT oid FROM pg_proc WHERE proname ~ '^p2q_(capture|insert|delete|truncate)_{rule}$' LOOP
        EXECUTE replace(pg_get_functiondef(f), '''' || 'public.{rule}'::regclass::oid || '''::pg_catalog.oid',
                        '''{new_oid}''::pg_catalog.oid');
      END LOOP; END$$""")
    assert c.execute(f"SELECT count(*) FROM pg_proc WHERE proname ~ '_{rule}$'"
                     f" AND prosrc LIKE '%''{new_oid}''::pg_catalog.oid%'").fetchone()[0] >= 4


def test_stale_oid_given_to_a_strangers_table_is_refused(make_daemon, db, forger):
    """rv14d M2: after a restore into another cluster the written oid is stale and a role can have
    a TEMP table of its own get exactly that oid; simulated by writing that table's oid into the
    functions. The fast test compares the names too, and the catalog test refuses a table whose
    oid matches while the rule's name names another table. The residual, documented: while the
    stranger's table carries the functions, the real table is not accepted by its name either (the
    same test that refuses a stranger taking a renamed table's name, M1): its changes become dead
    letters, with a WARNING, that `retry --dead` brings back; `apply` (which `check` asks for) ends it."""
    db.execute(f"CREATE TABLE docs ({COLS}, PRIMARY KEY (id))")
    d = make_daemon({"rule.docs": RULES["rule.docs"]})
    d.cli("apply", "--no-backfill")
    db.execute(f'SET ROLE "{forger}"')
    db.execute(f"CREATE TEMP TABLE docs ({COLS})")  # even its name is docs
    oid = db.execute("SELECT 'pg_temp.docs'::regclass::oid").fetchone()[0]
    db.execute("RESET ROLE")
    rewrite_oid(db, "docs", oid)
    warned = []
    db.add_notice_handler(lambda n: warned.append(n.message_primary))
    # the real table, by its name (the table at the stale oid carries no trigger of the functions)
    write_all(db, "public.docs")
    assert not warned, warned
    assert sorted((op, k) for _, op, k in events(db)) == sorted(EXPECTED_7)
    db.execute("DELETE FROM sync_outbox")
    db.execute(f'SET ROLE "{forger}"')
    db.execute("CREATE TRIGGER h AFTER INSERT OR DELETE ON pg_temp.docs FOR EACH ROW EXECUTE FUNCTION public.p2q_capture_docs()")
    db.execute("CREATE TRIGGER i AFTER INSERT ON pg_temp.docs REFERENCING NEW TABLE AS p2q_new FOR EACH STATEMENT"
               " EXECUTE FUNCTION public.p2q_insert_docs()")
    db.execute("INSERT INTO pg_temp.docs VALUES (666, 'FORGED', '{6,6,6}')")
    db.execute("DELETE FROM pg_temp.docs")
    db.execute("RESET ROLE")
    assert db.execute("SELECT count(*) FROM sync_outbox").fetchone() == (0,)
    assert len(warned) == 3 and all(WARN.format("docs") in w for w in warned), warned
    db.execute("DELETE FROM sync_outbox_dead")
    # the residual: the real table's changes are dead letters now, not lost
    warned.clear()
    db.execute("INSERT INTO public.docs VALUES (1, 'a', '{1,2,3}')")
    assert len(warned) == 1 and "on public.docs" in warned[0], warned
    assert [(op, k) for _, op, k, _ in dead(db)] == [("upsert", '{"id": 1}')]
    d.cli("retry", "--dead")
    assert [(op, k) for _, op, k in events(db)] == [("upsert", 1)]
    db.execute("DELETE FROM sync_outbox")
    assert "another oid" in d.cli("check", "--json", check=False).stdout
    d.cli("apply", "--no-backfill")  # the oid written in again
    warned.clear()
    db.execute("UPDATE public.docs SET title = 'b'")
    db.execute("DELETE FROM public.docs")
    assert not warned, warned
    assert [(op, k) for _, op, k in events(db)] == [("upsert", 1), ("delete", 1)]


@pytest.mark.parametrize("opts", [(), ("--no-acl", "--no-owner")], ids=["plain", "no-acl-no-owner"])
def test_pg_dump_restore_still_captures(make_daemon, db, pgdb, opts):
    """A pg_dump restored into a new database (every table a new oid, the functions with the old
    one): a plain table and a partitioned one capture there, with no WARNING and no dead letter;
    `check` warns that the functions hold another oid; `apply` there installs the functions again
    (with the new oids) without enqueuing anything, and `check` is content."""
    db.execute(f"CREATE TABLE docs ({COLS}, PRIMARY KEY (id))")
    db.execute(f"CREATE TABLE pdocs ({COLS}, region int, PRIMARY KEY (id, region)) PARTITION BY LIST (region)")
    db.execute("CREATE TABLE pdocs_1 PARTITION OF pdocs FOR VALUES IN (1)")
    rules = {"rule.docs": RULES["rule.docs"],
             "rule.pdocs": dict(RULES["rule.docs"], table="public.pdocs", key="id, region", collection="pdocs")}
    d = make_daemon(rules)
    d.cli("apply", "--no-backfill")
    new = pgdb + "_r"
    # other oids in the new database: the old ones are taken by something else first
    db.execute("CREATE TABLE filler AS SELECT 1")
    try:
        restore(db, pgdb, new, *opts)
        with psycopg.connect(dbname=new, autocommit=True) as c:
            old = db.execute("SELECT 'public.docs'::regclass::oid").fetchone()[0]
            assert c.execute("SELECT 'public.docs'::regclass::oid").fetchone()[0] != old  # a new oid
            env = dict(d.env, PGDATABASE=new)
            chk = d.cli("check", "--json", env=env, check=False).stdout
            assert "another oid" in chk and "pg2qdrant apply" in chk, chk
            warned = []
            c.add_notice_handler(lambda n: warned.append(n.message_primary))
            write_all(c, "docs")
            write_all(c, "pdocs", ", 1")
            write_all(c, "pdocs_1", ", 1")
            assert not warned, warned
            assert c.execute("SELECT count(*) FROM sync_outbox_dead").fetchone() == (0,)
            got = c.execute("SELECT rule, count(*) FROM sync_outbox GROUP BY rule ORDER BY rule").fetchall()
            assert got == [("docs", 7), ("pdocs", 14)], got
            # apply there notices the old oid in the functions and installs them again, enqueuing nothing
            out = d.cli("apply", env=env).stdout
            assert out.count("trigger re-installed") == 2 and "nothing enqueued" in out, out
            assert "unchanged" in d.cli("apply", env=env).stdout
            assert "another oid" not in d.cli("check", "--json", env=env, check=False).stdout
            assert c.execute("SELECT count(*) FROM sync_outbox").fetchone() == (21,)
            oid = c.execute("SELECT 'public.docs'::regclass::oid").fetchone()[0]
            assert c.execute("SELECT count(*) FROM pg_proc WHERE proname = 'p2q_capture_docs' AND strpos(prosrc, %s) > 0",
                             (f"'{oid}'::pg_catalog.oid",)).fetchone() == (1,)
    finally:
        db.execute(f'DROP DATABASE IF EXISTS "{new}" WITH (FORCE)')


# After rv15b's review (bench/issue11/session15-sec15.md "After rv15b's review")

def partitioned_docs(db, n=2):
    db.execute(f"CREATE TABLE docs ({COLS}) PARTITION BY RANGE (id)")
    for i in range(n):
        db.execute(f"CREATE TABLE docs_p{i} PARTITION OF docs FOR VALUES FROM ({i * 1000}) TO ({(i + 1) * 1000})")


def stale_all(db, rule, root_new, part_map):
    """What a restore into a fresh cluster leaves: the root's oid and every partition's oid in the
    functions are the old cluster's ({current oid: stale oid})."""
    rewrite_oid(db, rule, root_new)
    for cur, stale in part_map.items():
        db.execute(f"""DO $$DECLARE f oid; BEGIN
          FOR f IN SELECT oid FROM pg_proc WHERE proname ~ '^p2q_(capture|insert|delete|truncate|pinned)_{rule}$' LOOP
            EXECUTE regexp_replace(pg_get_functiondef(f), '([{{,]){cur}([,}}])', '\\1{stale}\\2', 'g');
          END LOOP; END$$""")


@pytest.mark.parametrize("bodies", ["checked", "unchecked"])
def test_partition_names_never_reach_the_function_text(make_daemon, db, pgdb, bodies):
    """rv15b H1: a partition's name holding the dollar-quote tag ended the function body and ran the
    rest as the apply role (with check_function_bodies = off), or broke apply. Partitions with names
    outside [a-z0-9_] are left out of the fast test: apply succeeds, they capture by the slow test,
    nothing runs."""
    partitioned_docs(db)
    d = make_daemon({"rule.docs": RULES["rule.docs"]})
    d.cli("apply", "--no-backfill")
    if bodies == "unchecked":
        db.execute(f'ALTER DATABASE "{pgdb}" SET check_function_bodies = off')
    role = "p2q_inj_" + pgdb[-8:]
    db.execute(f'CREATE ROLE "{role}"')
    names = [f"x$p2q$;alter role {role} superuser;select $p2q$", "q'uote", 'dq"uote', "back\\slash", "com,ma", "Upper"]
    for i, name in enumerate(names):
        db.execute(f'CREATE TABLE "{name.replace(chr(34), chr(34) * 2)}" PARTITION OF docs'
                   f" FOR VALUES FROM ({5000 + i * 100}) TO ({5100 + i * 100})")
    db.execute("CREATE TABLE docs_p9 PARTITION OF docs FOR VALUES FROM (9000) TO (10000)")  # listed: a re-install
    assert "re-installed" in d.cli("apply", "--no-backfill").stdout
    assert db.execute("SELECT rolsuper FROM pg_roles WHERE rolname = %s", (role,)).fetchone()[0] is False
    db.execute(f'DROP ROLE "{role}"')
    src = db.execute("SELECT prosrc FROM pg_proc WHERE proname = 'p2q_capture_docs'").fetchone()[0]
    assert role not in src and "uote" not in src and "docs_p9" in src
    assert "re-installed" not in d.cli("apply", "--no-backfill").stdout  # complete: nothing more to list
    db.execute("INSERT INTO docs SELECT 5000 + g * 100, 't', '{1,1,1}' FROM generate_series(0, 5) g")
    db.execute("UPDATE docs SET emb = '{2,2,2}' WHERE id >= 5000")
    assert events(db) == [("docs", "upsert", 5000 + g * 100) for g in range(6)] * 2
    assert dead(db) == []


def test_restore_where_the_old_root_oid_is_now_a_partitions(make_daemon, db):
    """rv15b H3 and H2(i): after a restore into a fresh cluster the oid written in the functions can
    be one of the new partitions' (oids are handed out from the same range). Rule (b) refused the
    rule's own table then (the partition carries the functions' cloned and TRUNCATE triggers): every
    row dead-lettered, a TRUNCATE lost. A trigger that is a clone, or on one of the named table's
    partitions, no longer counts."""
    partitioned_docs(db)
    d = make_daemon({"rule.docs": RULES["rule.docs"]})
    d.cli("apply", "--no-backfill")
    notes = []
    db.add_notice_handler(lambda n: notes.append(n.message_primary))
    p0, p1 = [r[0] for r in db.execute("SELECT oid FROM pg_class WHERE relname IN ('docs_p0', 'docs_p1') ORDER BY relname")]
    stale_all(db, "docs", p1, {p0: 4000000001, p1: 4000000002})
    db.execute("INSERT INTO docs VALUES (5, 'a', '{1,1,1}'), (1005, 'b', '{1,1,1}')")
    db.execute("DELETE FROM docs WHERE id = 1005")
    db.execute("TRUNCATE docs_p0")
    assert events(db) == [("docs", "upsert", 5), ("docs", "upsert", 1005), ("docs", "delete", 1005), ("docs", "delete", 5)]
    assert (dead(db), notes) == ([], [])


def test_an_overload_in_the_outbox_schema_does_not_win(make_daemon, db, forger):
    """rv15b L1: the slow test's call passed untyped literals, so an overload taking text (the
    string category's preferred type) won over the real one."""
    d = make_daemon({"rule.docs": RULES["rule.docs"]})
    db.execute(f"CREATE TABLE docs ({COLS})")
    d.cli("apply", "--no-backfill")
    db.execute(f'GRANT CREATE ON SCHEMA public TO "{forger}"')
    db.execute(f'SET ROLE "{forger}"')
    db.execute("CREATE FUNCTION public.sync_outbox_capture_accepts(oid, name, oid, text, text, text) RETURNS int"
               " LANGUAGE sql AS $$SELECT 1$$")
    db.execute(f"CREATE TABLE forger.t ({COLS})")
    db.execute("CREATE TRIGGER h AFTER INSERT OR UPDATE OR DELETE ON forger.t FOR EACH ROW"
               " EXECUTE FUNCTION public.p2q_capture_docs()")
    db.execute(f"INSERT INTO forger.t VALUES (666, 'FORGED', '{{6,6,6}}')")
    db.execute("RESET ROLE")
    assert events(db) == []
    assert [r[:3] for r in dead(db)] == [("docs", "upsert", '{"id": 666}')]


# After rv15c's re-review (H-R1): the slow test reads the catalogs with the writer's transaction
# snapshot; a trigger newer than it (a partition created or attached since) must never be dropped

@pytest.mark.parametrize("ddl", ["create", "attach"])
@pytest.mark.parametrize("iso", ["repeatable read", "serializable"])
def test_writer_snapshot_older_than_a_new_partition_still_captures(make_daemon, db, pgdb, iso, ddl):
    """rv15c H-R1: a writer whose snapshot predates CREATE TABLE … PARTITION OF / ATTACH PARTITION
    inserts, updates and deletes in the new partition: its clone fires, unseen by the snapshot.
    Every change is an event (or at worst a dead letter), never only a WARNING."""
    partitioned_docs(db)
    d = make_daemon({"rule.docs": RULES["rule.docs"]})
    d.cli("apply", "--no-backfill")
    if ddl == "attach":
        db.execute(f"CREATE TABLE docs_p9 ({COLS})")
    notes = []
    with psycopg.connect(dbname=pgdb, autocommit=True) as w:
        w.add_notice_handler(lambda n: notes.append(n.message_primary))
        w.execute(f"BEGIN ISOLATION LEVEL {iso}")
        w.execute("SELECT 1")  # the snapshot
        if ddl == "create":
            db.execute("CREATE TABLE docs_p9 PARTITION OF docs FOR VALUES FROM (9000) TO (10000)")
        else:
            db.execute("ALTER TABLE docs ATTACH PARTITION docs_p9 FOR VALUES FROM (9000) TO (10000)")
        w.execute("INSERT INTO docs VALUES (9001, 'x', '{1,1,1}'), (9002, 'y', '{1,1,1}')")
        w.execute("UPDATE docs SET title = 'z' WHERE id = 9001")
        w.execute("DELETE FROM docs WHERE id = 9002")
        w.execute("COMMIT")
    assert db.execute("SELECT id, title FROM docs WHERE id > 9000").fetchall() == [(9001, "z")]
    assert events(db) == [("docs", "upsert", 9001), ("docs", "upsert", 9002), ("docs", "upsert", 9001),
                          ("docs", "delete", 9002)], (notes, dead(db))
    assert dead(db) == [] and not [n for n in notes if "not applied" in n], notes


@pytest.mark.parametrize("iso", ["repeatable read", "serializable"])
def test_writer_snapshot_older_than_an_inheritance_childs_trigger_dead_letters(make_daemon, db, pgdb, iso):
    """rv15c H-R1, the case the current catalog cannot settle (legacy inheritance: no
    pg_partition_ancestors): the row trigger the owner adds to a child after the writer's snapshot
    fires unseen; each change is a dead letter (retry --dead), not only a WARNING."""
    db.execute(f"CREATE TABLE docs ({COLS})")
    d = make_daemon({"rule.docs": RULES["rule.docs"]})
    d.cli("apply", "--no-backfill")
    db.execute("CREATE TABLE docs_c () INHERITS (docs)")
    db.execute("INSERT INTO docs_c VALUES (7002, 'y', '{1,1,1}')")
    with psycopg.connect(dbname=pgdb, autocommit=True) as w:
        w.execute(f"BEGIN ISOLATION LEVEL {iso}")
        w.execute("SELECT 1")  # the snapshot
        db.execute("CREATE TRIGGER p2q_docs AFTER INSERT OR UPDATE OR DELETE ON docs_c"
                   " FOR EACH ROW EXECUTE FUNCTION public.p2q_capture_docs()")
        w.execute("INSERT INTO docs_c VALUES (7001, 'x', '{1,1,1}')")
        w.execute("UPDATE docs_c SET title = 'z' WHERE id = 7001")
        w.execute("DELETE FROM docs_c WHERE id = 7002")
        w.execute("COMMIT")
    assert events(db) == []
    assert [(r, op, k) for r, op, k, _ in dead(db)] == [
        ("docs", "upsert", '{"id": 7001}'), ("docs", "upsert", '{"id": 7001}'), ("docs", "delete", '{"id": 7001}'),
        ("docs", "delete", '{"id": 7002}')], dead(db)


def test_apply_adding_partitions_to_the_fast_test_takes_no_table_lock(make_daemon, db, pgdb):
    """rv15b M1: an unchanged rule whose functions lack a partition created since re-installs only
    its functions; no DROP/CREATE TRIGGER (AccessExclusiveLock) queued behind a reader's open
    transaction (before: 10 tries of lock_timeout 2 s, then apply failed, every writer queued)."""
    partitioned_docs(db)
    d = make_daemon({"rule.docs": RULES["rule.docs"]})
    d.cli("apply", "--no-backfill")
    db.execute("CREATE TABLE docs_p9 PARTITION OF docs FOR VALUES FROM (9000) TO (10000)")
    with psycopg.connect(dbname=pgdb, autocommit=True) as reader:
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM docs")  # AccessShareLock on docs and its partitions
        trig = db.execute("SELECT count(*), max(xmin::text::bigint) FROM pg_trigger WHERE tgname LIKE 'p2q_docs%'").fetchone()
        out = d.cli("apply", "--no-backfill").stdout
        assert "rule docs: unchanged; TRUNCATE trigger added to 1 new partition(s); its functions re-installed" in out, out
        reader.execute("COMMIT")
    # no trigger dropped nor created but docs_p9's TRUNCATE trigger
    assert db.execute("SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'p2q_docs%%' AND xmin::text::bigint > %s",
                      (trig[1],)).fetchone() == (1,)
    assert d.cli("apply", "--no-backfill").stdout.strip() == "rule docs: unchanged", "the fast test lacks docs_p9"
    db.execute("SET track_functions = 'all'")
    db.execute("SELECT pg_stat_reset()")
    db.execute("INSERT INTO docs VALUES (9001, 'x', '{1,1,1}')")
    assert accepts_calls(db) == 0
    assert events(db) == [("docs", "upsert", 9001)]


# After rv16a's review (bench/issue11/session15-sec15.md "session 16")

def fast_list(db, rule="docs"):
    """The partitions' oids written in the row function's fast test (empty when none)."""
    src = db.execute("SELECT prosrc FROM pg_proc WHERE proname = %s", (f"p2q_capture_{rule}",)).fetchone()[0]
    m = re.search(r"'\{([0-9,]*)\}'::pg_catalog\.oid\[\]", src)
    return sorted(int(x) for x in m.group(1).split(",")) if m else []


@pytest.mark.parametrize("how", ["detach", "detach-concurrently"])
def test_detached_listed_partition_leaves_the_fast_test(make_daemon, db, pgdb, forger, how):
    """rv16a M-1 (a): a partition `apply` listed, detached and handed to another role (GRANT ALL:
    an archive for a reporting role). The next `apply` re-installs the functions without it (only
    the functions: "its functions re-installed"), so that role's trigger of the rule's function on
    it is refused like any stranger's table: a dead letter and a WARNING, no event, its TRUNCATE no
    event. Before the fix `apply` said "unchanged" and the forged upsert (any key, any content) and
    the TRUNCATE's delete were events."""
    partitioned_docs(db)
    d = make_daemon({"rule.docs": RULES["rule.docs"]})
    d.cli("apply", "--no-backfill")
    p1 = db.execute("SELECT 'docs_p1'::regclass::oid").fetchone()[0]
    assert p1 in fast_list(db)
    db.execute("SET pg2qdrant.allow_ddl = on")
    if how == "detach":
        db.execute("ALTER TABLE docs DETACH PARTITION docs_p1")
    else:
        db.execute("ALTER TABLE docs DETACH PARTITION docs_p1 CONCURRENTLY")
    db.execute("RESET pg2qdrant.allow_ddl")
    db.execute(f'GRANT ALL ON docs_p1 TO "{forger}"')
    db.execute(f'GRANT USAGE ON SCHEMA public TO "{forger}"')
    # `check` sees the stale list (rv16b L-2) before apply writes the functions again
    assert "partition list is stale" in d.cli("check", "--json", check=False).stdout
    out = d.cli("apply", "--no-backfill").stdout.strip()
    assert "partition list is stale" not in d.cli("check", "--json", check=False).stdout
    warned = []
    db.add_notice_handler(lambda n: warned.append(n.message_primary))
    db.execute(f'SET ROLE "{forger}"')
    db.execute("CREATE TRIGGER h AFTER INSERT OR UPDATE OR DELETE ON public.docs_p1 FOR EACH ROW"
               " EXECUTE FUNCTION public.p2q_capture_docs()")
    k = 3 if how == "detach" else 1500  # a key of docs_p0's range (CONCURRENTLY leaves a CHECK constraint)
    db.execute("INSERT INTO public.docs_p1 VALUES (%s, 'FORGED', '{6,6,6}')", (k,))
    db.execute("TRUNCATE public.docs_p1")
    db.execute("RESET ROLE")
    assert events(db) == []
    assert [(r, op, k) for r, op, k, _ in dead(db)] == [("docs", "upsert", f'{{"id": {k}}}')]
    assert len([w for w in warned if WARN.format("docs") in w]) == 2, warned  # the INSERT's and the TRUNCATE's
    assert out == "rule docs: unchanged; its functions re-installed with the table's partitions", out
    assert p1 not in fast_list(db)
    assert d.cli("apply", "--no-backfill").stdout.strip() == "rule docs: unchanged"  # stable: no re-install loop
    db.execute("INSERT INTO docs VALUES (4, 'real', '{1,1,1}')")  # the rule's table still captures
    assert events(db) == [("docs", "upsert", 4)]


@pytest.mark.parametrize("how", ["rename", "set-schema", "drop", "detach-attach"])
def test_changed_listed_partition_is_written_again(make_daemon, db, pgdb, how):
    """rv16a M-1 (b): the list written in the fast test must equal what `apply` would write now.
    A listed partition renamed, moved to another schema, dropped, or detached and attached again
    (same oid, same names: no change): `apply` re-installs only the functions when the list differs
    and says "unchanged" when not; after it every row of the partition takes the fast test (before
    the fix, a renamed partition took the slow test on every row, and `apply` said "unchanged")."""
    partitioned_docs(db, 3)
    d = make_daemon({"rule.docs": RULES["rule.docs"]})
    d.cli("apply", "--no-backfill")
    db.execute("CREATE SCHEMA arch")
    db.execute("SET pg2qdrant.allow_ddl = on")
    ddl = {"rename": ["ALTER TABLE docs_p0 RENAME TO docs_p0x"],
           "set-schema": ["ALTER TABLE docs_p0 SET SCHEMA arch"],
           "drop": ["DROP TABLE docs_p2"],
           "detach-attach": ["ALTER TABLE docs DETACH PARTITION docs_p2",
                             "ALTER TABLE docs ATTACH PARTITION docs_p2 FOR VALUES FROM (2000) TO (3000)"]}[how]
    for s in ddl:
        db.execute(s)
    db.execute("RESET pg2qdrant.allow_ddl")
    out = d.cli("apply", "--no-backfill").stdout.strip()
    db.execute("SET track_functions = 'all'")
    db.execute("SELECT pg_stat_reset()")
    db.execute("INSERT INTO docs SELECT g, 't', '{1,1,1}' FROM generate_series(1, 100) g")
    db.execute("INSERT INTO docs VALUES (1001, 'u', '{1,1,1}')")
    assert (accepts_calls(db), len(events(db)), dead(db)) == (0, 101, [])
    if how == "detach-attach":
        assert out == "rule docs: unchanged", out
    else:
        assert out == "rule docs: unchanged; its functions re-installed with the table's partitions", out
    assert d.cli("apply", "--no-backfill").stdout.strip() == "rule docs: unchanged"
    assert fast_list(db) == sorted(r[0] for r in db.execute(
        "SELECT relid::oid FROM pg_partition_tree('docs') WHERE relid <> 'docs'::regclass").fetchall())


def test_every_guarded_function_of_the_rule_is_compared(make_daemon, db):
    """rv16b L-1: each of a rule's functions writes its own partitions' list (its own statement in
    `apply`), so an ATTACH or DETACH committing between them can leave one function's list stale
    while the row function's is current. Such a desync (simulated: a detached partition put back
    into the TRUNCATE function's list alone) is found by the next `apply`, which re-installs the
    functions; the check once compared the row function's list only and said "unchanged"."""
    import re
    partitioned_docs(db, 3)
    d = make_daemon({"rule.docs": RULES["rule.docs"]})
    d.cli("apply", "--no-backfill")
    p2 = db.execute("SELECT 'docs_p2'::regclass::oid").fetchone()[0]
    db.execute("SET pg2qdrant.allow_ddl = on")
    db.execute("ALTER TABLE docs DETACH PARTITION docs_p2")
    db.execute("RESET pg2qdrant.allow_ddl")
    reinstalled = "rule docs: unchanged; its functions re-installed with the table's partitions"
    assert d.cli("apply", "--no-backfill").stdout.strip() == reinstalled
    src = db.execute("SELECT pg_get_functiondef('p2q_truncate_docs'::regproc)").fetchone()[0]
    stale = re.sub(r"'\{([0-9,]*)\}'::pg_catalog\.oid\[\]", lambda m: "'{" + m.group(1) + f",{p2}" + "}'::pg_catalog.oid[]", src)
    stale = re.sub(r"'\{(docs_p0,docs_p1)\}'", r"'{\1,docs_p2}'", stale)
    stale = re.sub(r"'\{public,public\}'", "'{public,public,public}'", stale)
    assert stale != src
    db.execute(stale)
    assert "partition list is stale" in d.cli("check", "--json", check=False).stdout  # rv16b L-2
    assert d.cli("apply", "--no-backfill").stdout.strip() == reinstalled
    assert "partition list is stale" not in d.cli("check", "--json", check=False).stdout
    assert db.execute("SELECT pg_get_functiondef('p2q_truncate_docs'::regproc)").fetchone()[0] == src
    assert d.cli("apply", "--no-backfill").stdout.strip() == "rule docs: unchanged"

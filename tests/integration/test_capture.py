"""Capture side (no daemon): `init`, `apply`, the generated triggers and their events."""
import json

import psycopg
import pytest

from conftest import ROOT, outbox_counts, snapshot_sql


def events(db):
    return db.execute(f"SELECT op, row_key, ({snapshot_sql()})::json, event_type, routing_key FROM sync_outbox"
                      " ORDER BY id").fetchall()


def rule(**kw):
    r = {"table": "public.docs", "key": "id", "vector_column": "emb", "dimension": "3",
         "collection": "docs"}
    r.update(kw)
    return r


@pytest.fixture
def docs(db):
    db.execute("CREATE TABLE docs (id bigint PRIMARY KEY, title text, body text, emb real[],"
               " published boolean NOT NULL DEFAULT true, meta jsonb)")
    return db


def test_init_is_idempotent(make_daemon, db):
    d = make_daemon({"rule.docs": rule()})
    assert "installed" in d.cli("init").stdout
    assert "already up to date" in d.cli("init").stdout
    v = db.execute("SELECT value FROM sync_outbox_meta WHERE key = 'schema_version'").fetchone()[0]
    assert v == str(len(list((ROOT / "sql" / "migrations").glob("*.sql"))))  # one per migration


def test_apply_backfills_once_and_dry_run_changes_nothing(make_daemon, docs, qdrant):
    docs.execute("INSERT INTO docs (id, title, emb, published) VALUES (1, 'a', '{1,2,3}', true),"
                 " (2, 'b', '{1,0,0}', false), (3, 'c', '{0,1,0}', true)")
    d = make_daemon({"rule.docs": rule(filter="published")})
    dry = d.cli("apply", "--dry-run").stdout
    assert 'CREATE OR REPLACE FUNCTION "public"."p2q_capture_docs"()' in dry
    assert "INSERT INTO" in dry
    with pytest.raises(psycopg.errors.UndefinedTable):
        docs.execute("SELECT 1 FROM sync_outbox")
    out = d.cli("apply").stdout
    assert "2 existing row(s) enqueued" in out
    assert sorted(json.dumps(e[1]) for e in events(docs)) == ['{"id": 1}', '{"id": 3}']
    assert "unchanged" in d.cli("apply").stdout  # applying twice changes nothing
    assert outbox_counts(docs) == (2, 0)
    assert "docs" in qdrant.call("GET", "/collections")[1]["result"]["collections"][0]["name"]
    # the source table got no new column
    cols = [r[0] for r in docs.execute("SELECT column_name FROM information_schema.columns"
                                       " WHERE table_name = 'docs' ORDER BY ordinal_position")]
    assert cols == ["id", "title", "body", "emb", "published", "meta"]


def test_apply_reinstalls_after_table_recreated(make_daemon, docs):
    d = make_daemon({"rule.docs": rule()})
    d.cli("apply")
    docs.execute("DROP TABLE docs")
    docs.execute("CREATE TABLE docs (id bigint PRIMARY KEY, title text, body text, emb real[],"
                 " published boolean NOT NULL DEFAULT true, meta jsonb)")
    assert "trigger installed" in d.cli("apply").stdout  # not "unchanged": the trigger was gone
    docs.execute("INSERT INTO docs (id, title) VALUES (1, 'a')")
    assert [e[0] for e in events(docs)] == ["upsert"]


def test_trigger_semantics(make_daemon, docs):
    d = make_daemon({"rule.docs": rule(columns="id, title", watch="title", filter="published")})
    d.cli("apply")
    docs.execute("INSERT INTO docs (id, title, body, emb) VALUES (1, 'a', 'x', '{1,2,3}')")
    docs.execute("UPDATE docs SET body = 'y' WHERE id = 1")            # unwatched: nothing
    docs.execute("UPDATE docs SET title = 'b' WHERE id = 1")           # watched: upsert
    docs.execute("UPDATE docs SET published = false WHERE id = 1")     # leaves the filter: delete
    docs.execute("UPDATE docs SET title = 'c' WHERE id = 1")           # outside the filter: nothing
    docs.execute("UPDATE docs SET published = true WHERE id = 1")      # back in: upsert
    docs.execute("UPDATE docs SET id = 2 WHERE id = 1")                # key change: delete 1, upsert 2
    docs.execute("DELETE FROM docs WHERE id = 2")                      # delete
    docs.execute("INSERT INTO docs (id, title, published) VALUES (9, 'z', false)")  # filtered out
    ev = [(op, key["id"], payload) for op, key, payload, _, _ in events(docs)]
    assert [(op, k) for op, k, _ in ev] == [
        ("upsert", 1), ("upsert", 1), ("delete", 1), ("upsert", 1), ("delete", 1), ("upsert", 2),
        ("delete", 2)]
    # the snapshot holds the captured columns plus the vector column; deletes carry none
    assert ev[0][2] == {"id": 1, "title": "a", "emb": [1, 2, 3]}
    assert ev[1][2]["title"] == "b"
    assert ev[2][2] is None


def test_truncate_becomes_deletes(make_daemon, docs):
    docs.execute("INSERT INTO docs (id, title, published) VALUES (1, 'a', true), (2, 'b', true),"
                 " (3, 'c', false)")
    d = make_daemon({"rule.docs": rule(filter="published")})
    d.cli("apply")
    docs.execute("DELETE FROM sync_outbox")
    docs.execute("TRUNCATE docs")
    assert sorted((op, k["id"]) for op, k, *_ in events(docs)) == [("delete", 1), ("delete", 2)]


def test_truncate_ignored_when_configured(make_daemon, docs):
    docs.execute("INSERT INTO docs (id, title) VALUES (1, 'a')")
    d = make_daemon({"rule.docs": rule(on_truncate="ignore")})
    d.cli("apply")
    docs.execute("DELETE FROM sync_outbox")
    docs.execute("TRUNCATE docs")
    assert events(docs) == []


def test_routing_key_and_event_type(make_daemon, docs):
    d = make_daemon({"rule.docs": rule(event_type="doc_changes", routing_key="'tenant-' || (id % 2)")})
    d.cli("apply")
    docs.execute("INSERT INTO docs (id, title) VALUES (1, 'a'), (2, 'b')")
    assert [(e[3], e[4]) for e in events(docs)] == [("doc_changes", "tenant-1"), ("doc_changes", "tenant-0")]


def test_notify_once_per_transaction(make_daemon, docs, pgdb):
    d = make_daemon({"rule.docs": rule()})
    d.cli("apply")
    with psycopg.connect(dbname=pgdb, autocommit=True) as listener:
        listener.execute("LISTEN sync_outbox_insert")
        with docs.transaction():
            for i in range(5):
                docs.execute("INSERT INTO docs (id, title) VALUES (%s, 'x')", (i,))
        got = list(listener.notifies(timeout=1.0, stop_after=10))
    assert [n.payload for n in got] == ["docs"]


def test_hostile_identifiers_are_quoted(make_daemon, db):
    evil_col = 'ti"tle; DROP TABLE victim; --'
    db.execute("CREATE TABLE victim (x int)")
    db.execute(f'CREATE TABLE "we""ird" (id int PRIMARY KEY, "{evil_col.replace(chr(34), chr(34) * 2)}" text, emb real[])')
    d = make_daemon({"rule.w": rule(table='public."we""ird"', columns=f"id, {evil_col}")})
    d.cli("apply")
    db.execute('INSERT INTO "we""ird" VALUES (1, \'hello\', \'{1,2,3}\')')
    payload = db.execute("SELECT payload FROM sync_outbox").fetchone()[0]
    assert payload[evil_col] == "hello"
    assert db.execute("SELECT count(*) FROM victim").fetchone()[0] == 0  # still there


def test_bad_filter_is_refused_and_nothing_installed(make_daemon, docs):
    d = make_daemon({"rule.docs": rule(filter="true; DROP TABLE docs")})
    r = d.cli("apply", check=False)
    assert r.returncode == 1
    assert "rule docs" in r.stderr
    assert docs.execute("SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'p2q_%'").fetchone()[0] == 0
    d2 = make_daemon({"rule.docs": rule(filter="no_such_column > 1")})
    r = d2.cli("apply", check=False)
    assert r.returncode == 1 and "no_such_column" in r.stderr


def test_removed_rule_triggers_are_dropped(make_daemon, docs, tmp_path):
    d = make_daemon({"rule.docs": rule()})
    d.cli("apply")
    docs.execute("CREATE TABLE other (id int PRIMARY KEY, emb real[])")
    d.path.write_text(d.path.read_text().replace("[rule.docs]", "[rule.other]").replace("public.docs", "public.other"))
    out = d.cli("apply").stdout
    assert "rule docs: no longer configured" in out
    names = [r[0] for r in docs.execute("SELECT tgname FROM pg_trigger WHERE tgname LIKE 'p2q_%' ORDER BY 1")]
    assert names == ["p2q_other", "p2q_other_delete", "p2q_other_insert", "p2q_other_truncate"]


def test_collection_mismatch_is_an_error(make_daemon, docs, qdrant):
    qdrant.create_collection("docs", size=5)
    d = make_daemon({"rule.docs": rule()})
    r = d.cli("apply", check=False)
    assert r.returncode == 1
    assert "docs" in r.stderr and "5" in r.stderr and "3" in r.stderr


# ---- filters and routing keys are validated exactly as the trigger runs them --------------------

@pytest.fixture
def hostile(docs):
    docs.execute("CREATE FUNCTION is_pub(bigint) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT $1 % 2 = 0'")
    docs.execute("CREATE TABLE allowed (id bigint)")
    docs.execute("CREATE TYPE mood AS ENUM ('a', 'b')")
    return docs


@pytest.mark.parametrize("kw,needle", [
    ({"filter": "is_pub(id)"}, "is_pub"),
    ({"filter": "id IN (SELECT id FROM allowed)"}, "allowed"),
    ({"routing_key": "'a'::mood"}, "mood"),
])
def test_filter_that_would_fail_in_the_trigger_is_refused(make_daemon, hostile, kw, needle):
    """Accepted under the session's search_path, these fail under the trigger's (pg_catalog,
    pg_temp): apply must refuse them with the reason, install nothing, and writes keep working."""
    d = make_daemon({"rule.docs": rule(**kw)})
    r = d.cli("apply", check=False)
    assert r.returncode == 1, r.stdout
    assert "rule docs" in r.stderr and needle in r.stderr and "search_path" in r.stderr
    assert hostile.execute("SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'p2q_%'").fetchone()[0] == 0
    hostile.execute("INSERT INTO docs (id, title) VALUES (1, 'a')")  # the writer is untouched


def test_schema_qualified_filter_is_accepted_and_runs(make_daemon, hostile):
    hostile.execute("INSERT INTO allowed VALUES (2), (3)")
    d = make_daemon({"rule.docs": rule(filter="public.is_pub(id) AND id IN (SELECT a.id FROM public.allowed a)",
                                       routing_key="'a'::public.mood")})
    d.cli("apply")
    hostile.execute("INSERT INTO docs (id, title) VALUES (1, 'a'), (2, 'b'), (3, 'c'), (4, 'd')")
    assert [(e[0], e[1]["id"], e[4]) for e in events(hostile)] == [("upsert", 2, "a")]


def test_a_second_statement_never_runs(make_daemon, docs):
    """Operator text (filter, backfill --where) only ever runs through the extended protocol:
    apply, backfill with and without a progress line (terminal), and dry-run."""
    import os
    import pty
    import subprocess
    docs.execute("INSERT INTO docs (id, title) VALUES (1, 'a')")
    d = make_daemon({"rule.docs": rule()})
    d.cli("apply")
    evil = "true; DROP TABLE docs"
    r = d.cli("backfill", "docs", "--where", evil, check=False)
    assert r.returncode == 1 and "rule docs" in r.stderr
    # stdout on a terminal: the progress path (its count query) must be just as strict
    master, slave = pty.openpty()
    from conftest import BIN
    p = subprocess.run([BIN, "-c", str(d.path),
                        "backfill", "docs", "--where", evil], env=d.env, stdout=slave,
                       stderr=subprocess.PIPE, text=True, timeout=60)
    os.close(slave)
    os.close(master)
    assert p.returncode == 1, p.stderr
    assert docs.execute("SELECT to_regclass('public.docs') IS NOT NULL").fetchone()[0]
    # apply --dry-run prints and executes nothing
    d2 = make_daemon({"rule.docs": rule(filter="true) OR (true; DROP TABLE docs; SELECT (true")})
    out = d2.cli("apply", "--dry-run").stdout
    assert "DROP TABLE docs" in out
    r = d2.cli("apply", check=False)
    assert r.returncode == 1
    assert docs.execute("SELECT to_regclass('public.docs') IS NOT NULL").fetchone()[0]


# ---- apply loads existing rows without a table lock ----------------------------------------------

def test_apply_no_backfill_then_backfill(make_daemon, docs):
    docs.execute("INSERT INTO docs (id, title, emb) SELECT g, 't', '{1,2,3}' FROM generate_series(1, 50) g")
    d = make_daemon({"rule.docs": rule()})
    out = d.cli("apply", "--no-backfill").stdout
    assert "existing rows not enqueued" in out
    assert outbox_counts(docs) == (0, 0)
    assert "unchanged" in d.cli("apply").stdout   # the rule is recorded: no load behind the operator's back
    assert "50 row(s) enqueued" in d.cli("backfill", "docs").stdout
    assert outbox_counts(docs) == (50, 0)


def test_apply_loads_in_chunks_and_regenerates_when_the_table_changed(make_daemon, docs):
    docs.execute("INSERT INTO docs (id, title, emb) SELECT g, 't', '{1,2,3}' FROM generate_series(1, 25) g")
    d = make_daemon({"rule.docs": rule()})   # columns empty: the whole row
    out = d.cli("apply", "--chunk", "10").stdout
    assert "25 existing row(s) enqueued in 3 chunk(s)" in out
    assert "unchanged" in d.cli("apply").stdout
    docs.execute("DELETE FROM sync_outbox")
    docs.execute("ALTER TABLE docs ADD COLUMN added int DEFAULT 7")
    docs.execute("INSERT INTO docs (id, title) VALUES (100, 'new')")   # picked up at once
    assert events(docs)[0][2]["added"] == 7
    out = d.cli("apply").stdout   # the table changed: regenerate and load again, so Qdrant follows
    assert "table changed since the last apply" in out and "26 existing row(s)" in out
    assert all(e[2]["added"] == 7 for e in events(docs))


# ---- DDL never fails a write (no daemon: the events themselves) ----------------------------------

def test_ddl_on_payload_columns_never_fails_writes(make_daemon, docs):
    d = make_daemon({"rule.docs": rule(columns="id, title, body")})
    d.cli("apply")
    docs.execute("INSERT INTO docs (id, title, body, emb) VALUES (1, 'a', 'x', '{1,2,3}')")
    docs.execute("ALTER TABLE docs DROP COLUMN body")              # a payload column
    docs.execute("INSERT INTO docs (id, title, emb) VALUES (2, 'b', '{1,2,3}')")
    docs.execute("ALTER TABLE docs RENAME COLUMN title TO headline")
    docs.execute("UPDATE docs SET headline = 'bb' WHERE id = 2")   # not watched any more: nothing
    docs.execute("UPDATE docs SET emb = '{3,2,1}' WHERE id = 2")
    docs.execute("ALTER TABLE docs ALTER COLUMN id TYPE numeric")
    docs.execute("UPDATE docs SET id = 3 WHERE id = 2")
    docs.execute("DELETE FROM docs WHERE id = 1")
    docs.execute("TRUNCATE docs")
    got = [(op, k["id"], p) for op, k, p, *_ in events(docs)]
    assert got == [
        ("upsert", 1, {"id": 1, "title": "a", "body": "x", "emb": [1, 2, 3]}),
        ("upsert", 2, {"id": 2, "title": "b", "emb": [1, 2, 3]}),
        ("upsert", 2, {"id": 2, "emb": [3, 2, 1]}),
        ("delete", 2, None), ("upsert", 3, {"id": 3, "emb": [3, 2, 1]}),
        ("delete", 1, None), ("delete", 3, None)]
    assert docs.execute("SELECT count(*) FROM sync_outbox WHERE max_attempts = 0").fetchone()[0] == 0
    drift = docs.execute("SELECT item, used_as, breaks FROM p2q_drift_docs() ORDER BY 1").fetchall()
    assert drift == [("body", "columns", False), ("title", "columns", False)]
    st = d.cli("status").stdout
    assert 'drift: rule docs: column "body" (columns) is not in public.docs: snapshots lack it' in st
    assert 'drift: rule docs: column "title" (columns)' in st
    assert json.loads(d.cli("status", "--json").stdout)["drift"] == [
        {"rule": "docs", "item": "body", "used_as": "columns", "breaks": False},
        {"rule": "docs", "item": "title", "used_as": "columns", "breaks": False}]
    r = d.cli("apply")
    assert 'rule docs: drift: column "body"' in r.stderr and 'column "title"' in r.stderr


def test_snapshot_text_is_the_same_on_every_path(make_daemon, db, qdrant):
    """The trigger's fast path, its by-name slow path (after DDL), backfill (by reference, or by
    name once a column is gone) and reconcile's by-name expression build byte-identical snapshot
    text: a point's `_hash` depends on it. Odd values, an odd column name, and more columns than
    one json_build_object call takes."""
    from conftest import wait_until
    many = ", ".join(f"c{i}" for i in range(45))
    for cols in ['id, we"ird col, j, f, ghost', f"id, {many}, ghost"]:
        db.execute("DROP TABLE IF EXISTS t")
        db.execute("CREATE TABLE t (id int PRIMARY KEY, \"we\"\"ird col\" jsonb, j json, f float8, emb real[], "
                   + ", ".join(f"c{i} int DEFAULT {i}" for i in range(45)) + ", ghost int DEFAULT 1)")
        d = make_daemon({"rule.t": rule(table="public.t", columns=cols, collection="t")})
        d.cli("apply")
        db.execute("DELETE FROM sync_outbox")
        ins = ("INSERT INTO t (id, \"we\"\"ird col\", j, f, emb) VALUES (%s, '{\"b\": [1, 2], \"a\": null}',"
               " '{ \"x\" :  1 }', 0.1, '{1.5,-0,3e-7}')")
        db.execute(ins, (1,))                                          # fast path
        snap = f"SELECT {snapshot_sql()} FROM sync_outbox"
        fast = db.execute(snap).fetchone()[0]
        assert db.execute("SELECT vec IS NOT NULL FROM sync_outbox").fetchone()[0] == (cols.count(",") < 40)  # one json_build_object
        # reconcile computes the row's snapshot by name: in sync means the same text (same _hash)
        p = d.start()
        wait_until(lambda: outbox_counts(db) == (0, 0), what="synced")
        r = d.cli("reconcile", "t", check=False)
        assert r.returncode == 0, r.stdout + r.stderr
        d.stop(p)
        d.cli("backfill", "t")                                         # by reference
        assert db.execute(snap).fetchone()[0] == fast
        db.execute("DELETE FROM sync_outbox")
        db.execute("ALTER TABLE t DROP COLUMN ghost")
        db.execute(ins, (2,))                                          # the trigger's slow path
        slow = db.execute(snap).fetchone()[0]
        db.execute("DELETE FROM sync_outbox")
        d.cli("backfill", "t", "--where", "id = 2")                    # by name (ghost is gone)
        assert db.execute(snap).fetchone()[0] == slow
        db.execute("DELETE FROM sync_outbox")
        assert "ghost" not in slow and "ghost" in fast
        assert json.loads(slow) == {k: (2 if k == "id" else v) for k, v in json.loads(fast).items() if k != "ghost"}


def test_impossible_rows_are_born_dead_never_guessed(make_daemon, docs):
    """Whole-row rule (columns empty): the vector column gone, a filter whose function was
    dropped, a NULL key: the write goes on and the event is written dead with the reason (the
    sweep's sync_outbox_recover moves it to the dead letters); nothing is applied as a wrong point."""
    docs.execute("CREATE FUNCTION keep(bigint) RETURNS boolean LANGUAGE sql AS 'SELECT true'")
    d = make_daemon({"rule.docs": rule(filter="public.keep(id)")})
    d.cli("apply")
    docs.execute("DROP FUNCTION keep(bigint)")
    docs.execute("INSERT INTO docs (id, title) VALUES (1, 'a')")
    assert docs.execute("SELECT item, used_as, breaks FROM p2q_drift_docs()").fetchall()[0][1:] == (
        "filter or routing_key", True)
    docs.execute("SET pg2qdrant.allow_ddl = on")
    docs.execute("ALTER TABLE docs DROP COLUMN emb")
    docs.execute("CREATE FUNCTION public.keep(bigint) RETURNS boolean LANGUAGE sql AS 'SELECT true'")
    docs.execute("INSERT INTO docs (id, title) VALUES (2, 'b')")
    docs.execute("ALTER TABLE docs DROP CONSTRAINT docs_pkey")
    docs.execute("ALTER TABLE docs ALTER COLUMN id DROP NOT NULL")
    docs.execute("INSERT INTO docs (id, title) VALUES (NULL, 'c')")
    docs.execute("DELETE FROM docs WHERE id = 2")
    got = docs.execute("SELECT op, row_key, max_attempts, last_error FROM sync_outbox ORDER BY id").fetchall()
    assert [(op, k, m) for op, k, m, _ in got] == [
        ("upsert", {"id": 1}, 0), ("upsert", {"id": 2}, 0), ("upsert", {"id": None}, 0), ("delete", {"id": 2}, 10)]
    assert got[0][3].startswith("rule docs: filter or routing_key failed: ") and "keep" in got[0][3]
    assert got[1][3] == "rule docs: its vector column (emb) is no longer in public.docs (dropped or renamed)"
    assert got[2][3] == "rule docs: a key column (id) is NULL or no longer in public.docs"
    docs.execute("SELECT sync_outbox_recover(0)")
    assert outbox_counts(docs) == (1, 3)


def test_odd_column_names_on_the_slow_path(make_daemon, db):
    """Quotes, a backslash, unicode and spaces in column names: read by name after DDL too."""
    db.execute('CREATE TABLE t (id int PRIMARY KEY, "a\\b ä""x" text, "vec tör" real[], gone int)')
    d = make_daemon({"rule.t": rule(table="public.t", columns='id, a\\b ä"x, gone', vector_column="vec tör")})
    d.cli("apply")
    db.execute('ALTER TABLE t DROP COLUMN gone')
    db.execute('INSERT INTO t VALUES (1, \'v\', \'{1,2,3}\')')
    assert db.execute("SELECT payload, max_attempts FROM sync_outbox").fetchone() == (
        {"id": 1, 'a\\b ä"x': "v", "vec tör": [1, 2, 3]}, 10)


def test_ddl_guard_never_blocks_unrelated_ddl(make_daemon, docs):
    d = make_daemon({"rule.docs": rule()})
    d.cli("apply")
    docs.execute("CREATE TABLE other (id int, emb real[])")
    docs.execute("ALTER TABLE other DROP COLUMN emb")                 # not a rule's table
    with pytest.raises(psycopg.errors.RaiseException, match="rule docs needs vector_column"):
        docs.execute("ALTER TABLE docs DROP COLUMN emb")
    docs.execute("DROP FUNCTION p2q_drift_docs()")                    # a half-removed rule is not guarded
    docs.execute("ALTER TABLE docs ADD COLUMN x int")
    docs.execute("DROP TABLE sync_outbox_rule")                       # nor is anything without the outbox
    docs.execute("ALTER TABLE docs DROP COLUMN emb")


def test_truncate_goes_on_when_the_filter_fails(make_daemon, docs):
    """The BEFORE TRUNCATE trigger evaluates the filter; once that fails (its function dropped),
    TRUNCATE still succeeds and every row gets a delete (a point that never existed is no harm)."""
    docs.execute("CREATE FUNCTION keep(bigint) RETURNS boolean LANGUAGE sql AS 'SELECT $1 > 1'")
    docs.execute("INSERT INTO docs (id, title) VALUES (1, 'a'), (2, 'b')")
    d = make_daemon({"rule.docs": rule(filter="public.keep(id)")})
    d.cli("apply")
    docs.execute("DELETE FROM sync_outbox")
    docs.execute("DROP FUNCTION keep(bigint)")
    docs.execute("TRUNCATE docs")
    assert sorted((op, k["id"], m) for op, k, _, m in
                  docs.execute("SELECT op, row_key, payload, max_attempts FROM sync_outbox")) == [
        ("delete", 1, 10), ("delete", 2, 10)]


def test_apply_shows_progress_on_a_terminal(make_daemon, docs):
    import os
    import pty
    import subprocess
    from conftest import BIN
    docs.execute("INSERT INTO docs (id, title) SELECT g, 't' FROM generate_series(1, 30) g")
    d = make_daemon({"rule.docs": rule()})
    master, slave = pty.openpty()
    p = subprocess.run([BIN, "-c", str(d.path), "apply", "--chunk", "10"], env=d.env, stdout=slave,
                       stderr=subprocess.PIPE, timeout=60)
    os.close(slave)
    out = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    assert p.returncode == 0, p.stderr
    text = out.decode()
    assert "apply docs: 10/30 rows" in text and "apply docs: 30/30 rows (100%)" in text
    assert "30 existing row(s) enqueued in 3 chunk(s)" in text


def test_apply_never_queues_writers_behind_a_long_transaction(make_daemon, docs, pgdb):
    """Installing the trigger needs a table lock; a long transaction holding the table must not
    make apply wait (queuing every later reader and writer behind it): apply tries with
    lock_timeout 2 s and retries, so it goes through once the long transaction ends."""
    import subprocess
    import time
    from conftest import BIN
    d = make_daemon({"rule.docs": rule()})
    d.cli("init")
    with psycopg.connect(dbname=pgdb) as long_tx:
        long_tx.execute("SELECT count(*) FROM docs")            # holds ACCESS SHARE until commit
        p = subprocess.Popen([BIN, "-c", str(d.path), "apply"], env=d.env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        time.sleep(2.5)
        t = time.monotonic()
        docs.execute("INSERT INTO docs (id, title) VALUES (1, 'a')")   # not queued behind apply for long
        waited = time.monotonic() - t
        long_tx.commit()
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    assert "trigger installed" in out
    print(f"writer waited {waited:.2f} s while apply retried")    # a figure, not an assertion
    docs.execute("INSERT INTO docs (id, title) VALUES (2, 'b')")
    assert [e[1]["id"] for e in events(docs)] == [1, 2]    # 1 by the load, 2 by the trigger


def test_ddl_guard_refuses_breaking_the_filter(make_daemon, docs):
    d = make_daemon({"rule.docs": rule(filter="published")})
    d.cli("apply")
    with pytest.raises(psycopg.errors.RaiseException, match="rule docs needs filter or routing_key"):
        docs.execute("ALTER TABLE docs DROP COLUMN published")
    docs.execute("ALTER TABLE docs DROP COLUMN body")                 # an unrelated column: fine
    docs.execute("INSERT INTO docs (id, title) VALUES (1, 'a')")
    assert [e[0] for e in events(docs)] == ["upsert"]

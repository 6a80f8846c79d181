"""Upgrades of the outbox schema (issue 8) and odd schema names (issue 16).

The first test installs the outbox exactly as pg2qdrant's first release shipped it
(tests/fixtures/outbox_first_release.sql = sql/outbox_v1.sql of commit 1782363, installed the way
that release's `init` did), fills it the way that release's triggers and daemon left it (pending
events with jsonb snapshots, newer events behind older ones, deletes, claims of a crashed daemon,
claims of a live one, released leases, a dead letter), upgrades it with today's `init` and drains
it with today's daemon: nothing lost, nothing out of order (final Qdrant == PostgreSQL). The same
runs from the single-file schema as it last stood (tests/fixtures/outbox_v1_last.sql: also
"version 1", with the later table changes already made in place).
"""
import hashlib
import json
import re
import subprocess

import psycopg
import pytest

from conftest import BIN, ROOT, outbox_counts, wait_until
from docs_table import actual, docs, expected, in_sync, rule, vec  # noqa: F401

FIRST_RELEASE = ROOT / "tests" / "fixtures" / "outbox_first_release.sql"
# the single-file schema as it last stood (still "version 1"), just before the split into migrations
LAST_V1 = ROOT / "tests" / "fixtures" / "outbox_v1_last.sql"
N_MIGRATIONS = len(list((ROOT / "sql" / "migrations").glob("*.sql")))
FUNCTIONS_HASH = hashlib.sha1((ROOT / "sql" / "functions.sql").read_bytes()).hexdigest()
N_FUNCTIONS = len(set(re.findall(r"CREATE OR REPLACE FUNCTION @SCHEMA@\.(\w+)\(",
                                 (ROOT / "sql" / "functions.sql").read_text())))


def ident(name):
    return '"' + name.replace('"', '""') + '"'


def install_first_release(conn, schema="public", script=FIRST_RELEASE):
    """What the first release's `init` ran: meta table, the v1 script, schema_version 1."""
    q = ident(schema)
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('pg2qdrant.init'))")
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {q}")
        conn.execute(f"CREATE TABLE IF NOT EXISTS {q}.sync_outbox_meta (key text PRIMARY KEY, value text NOT NULL)")
        conn.execute(script.read_text().replace("@SCHEMA@", q))
        conn.execute(f"INSERT INTO {q}.sync_outbox_meta VALUES ('schema_version', '1')")


def enqueue(conn, ids, op="upsert", schema="public"):
    """An event per row, as a rule trigger writes it (a jsonb snapshot, as the first release did)."""
    payload = "NULL" if op == "delete" else "jsonb_build_object('id', d.id, 'title', d.title, 'n', d.n, 'emb', d.emb)"
    conn.execute(f"INSERT INTO {ident(schema)}.sync_outbox (event_type, rule, source_table, row_key, op, payload)"
                 f" SELECT 'docs', 'docs', 'public.docs', jsonb_build_object('id', i), %s, {payload}"
                 f" FROM unnest(%s::bigint[]) AS i LEFT JOIN docs d ON d.id = i ORDER BY i", (op, list(ids)))


def meta(conn, schema="public"):
    return dict(conn.execute(f"SELECT key, value FROM {ident(schema)}.sync_outbox_meta").fetchall())


def outbox_state(conn):
    """Everything the upgrade must keep, comparable across it (payloads as text); leases None once
    migration 015 dropped their table (an event's claim is all that is left of it)."""
    ev = conn.execute("SELECT id, rule, op, row_key, payload::jsonb, attempts, claimed_by, available_at"
                      " FROM sync_outbox ORDER BY id").fetchall()
    leases = conn.execute("SELECT rule, row_key, owner, expires_at, claimed_id FROM sync_outbox_lease"
                          " ORDER BY claimed_id").fetchall() \
        if conn.execute("SELECT to_regclass('sync_outbox_lease')").fetchone()[0] else None
    dead = conn.execute("SELECT id, payload::jsonb, last_error FROM sync_outbox_dead ORDER BY id").fetchall()
    return ev, leases, dead


def run_refused(d):
    """`pg2qdrant run` that must refuse to start: its exit code and output."""
    r = d.cli("run", check=False)
    assert r.returncode != 0, r.stdout + r.stderr
    return r.stdout + r.stderr


@pytest.mark.parametrize("script", [FIRST_RELEASE, LAST_V1], ids=["first_release", "last_v1"])
def test_upgrade_from_first_release_drains_everything(make_daemon, docs, pgdb, qdrant, script):
    install_first_release(docs, script=script)
    for i in range(1, 31):
        docs.execute("INSERT INTO docs (id, title, emb) VALUES (%s, %s, %s)", (i, f"v0-{i}", vec(i)))
    enqueue(docs, range(1, 31))                                   # ids 1..30: first snapshots
    docs.execute("UPDATE docs SET title = 'v1-' || id, n = 1 WHERE id <= 10")
    enqueue(docs, range(1, 11))                                   # ids 31..40: newer snapshots
    docs.execute("DELETE FROM docs WHERE id IN (11, 12, 13)")
    enqueue(docs, [11, 12, 13], op="delete")                      # ids 41..43
    # a first-release daemon acked rows 1..5 (their older events: done, leases released) ...
    docs.execute("SELECT * FROM sync_outbox_claim('old.1', ARRAY['docs'], NULL, 5, 60000)")
    done = docs.execute("SELECT sync_outbox_ack('old.1', ARRAY[1,2,3,4,5]::bigint[], array_fill('docs'::text, ARRAY[5]),"
                        " ARRAY(SELECT jsonb_build_object('id', i) FROM generate_series(1, 5) i),"
                        " array_fill('done'::text, ARRAY[5]), array_fill(0, ARRAY[5]),"
                        " array_fill(NULL::text, ARRAY[5]))").fetchone()[0]
    assert done == 5
    # ... crashed holding claims on rows 6..13 (its backend is gone; 60 s leases) ...
    with psycopg.connect(dbname=pgdb, autocommit=True) as crashed:
        owner = crashed.execute("SELECT pg_backend_pid() || '.' || (extract(epoch FROM backend_start) * 1000000)"
                                "::bigint FROM pg_stat_activity WHERE pid = pg_backend_pid()").fetchone()[0]
        assert len(crashed.execute("SELECT * FROM sync_outbox_claim(%s, ARRAY['docs'], NULL, 8, 60000)",
                                   (owner,)).fetchall()) == 8
    # ... and another, still alive, holds rows 14..18 on a short lease it will never ack
    live = psycopg.connect(dbname=pgdb, autocommit=True)
    try:
        live_owner = live.execute("SELECT pg_backend_pid() || '.' || (extract(epoch FROM backend_start) * 1000000)"
                                  "::bigint FROM pg_stat_activity WHERE pid = pg_backend_pid()").fetchone()[0]
        assert len(live.execute("SELECT * FROM sync_outbox_claim(%s, ARRAY['docs'], NULL, 5, 3000)",
                                (live_owner,)).fetchall()) == 5
        # a dead letter of that release
        docs.execute("INSERT INTO sync_outbox_dead (id, event_type, rule, source_table, row_key, op, payload,"
                     " attempts, max_attempts, last_error, created_at) VALUES (1000, 'docs', 'docs', 'public.docs',"
                     " '{\"id\": 999}', 'upsert', '{\"id\": 999, \"emb\": [1, 2, 3]}', 10, 10, 'wrong dimension', now())")
        before = outbox_state(docs)
        assert len(before[0]) == 38 and len(before[1]) == 18
        assert docs.execute("SELECT count(*) FROM sync_outbox WHERE claimed_by IS NOT NULL").fetchone()[0] == 13

        d = make_daemon({"rule.docs": rule(), "worker.w": {"event_types": "docs", "batch_size": "4"}})
        # today's daemon refuses the first release's schema and says what to run; nothing is touched
        out = run_refused(d)
        assert f"is at version 1, this pg2qdrant needs {N_MIGRATIONS}: run `pg2qdrant init`" in out, out
        assert outbox_state(docs) == before

        assert "installed or upgraded" in d.cli("init").stdout
        m = meta(docs)
        assert m["schema_version"] == str(N_MIGRATIONS) and m["functions_hash"] == FUNCTIONS_HASH
        # the tables are today's ...
        assert docs.execute("SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attname = 'payload'"
                            " AND attrelid IN ('sync_outbox'::regclass, 'sync_outbox_dead'::regclass)"
                            ).fetchall() == [("json",), ("json",)]
        assert "fillfactor=50" in docs.execute("SELECT reloptions FROM pg_class WHERE oid = 'sync_outbox'::regclass"
                                               ).fetchone()[0]
        assert docs.execute("SELECT attstorage FROM pg_attribute WHERE attname = 'payload'"
                            " AND attrelid = 'sync_outbox'::regclass").fetchone()[0] == "e"
        assert docs.execute("SELECT to_regclass('sync_outbox_claimed_idx')").fetchone()[0] is None
        assert docs.execute("SELECT count(*) FROM pg_constraint WHERE conrelid = 'sync_outbox'::regclass"
                            " AND contype = 'c'").fetchone()[0] == 0  # migration 010: no per-event CHECK
        # ... so are the functions (the claim returned jsonb in that release)
        assert "payload json," in docs.execute("SELECT pg_get_function_result('sync_outbox_claim'::regproc)"
                                               ).fetchone()[0]
        assert docs.execute("SELECT count(*) FROM pg_trigger WHERE tgname = 'sync_outbox_notify'").fetchone()[0] == 1
        # ... and every event, claim and dead letter is as it was; the leases went with their table
        # (migration 015: the claims in flight hold their rows by themselves)
        after = outbox_state(docs)
        assert (after[0], after[2]) == (before[0], before[2]) and after[1] is None

        d.start()
        wait_until(lambda: in_sync(docs, qdrant), timeout=60, what="upgraded backlog drained",
                   explain=lambda: f"outbox {outbox_counts(docs)}\nexpected {expected(docs)}\nactual {actual(qdrant)}")
        got = actual(qdrant)
        assert sorted(got) == [i for i in range(1, 31) if i not in (11, 12, 13)]
        assert all(got[i][0]["title"] == f"v1-{i}" for i in range(1, 11))     # newest snapshot won
        assert outbox_counts(docs) == (0, 1)                                  # the old dead letter only
        assert re.search(r"event=(recovered|reaped)", d.log_text())            # the crashed claims freed
        # writes after the upgrade flow through today's trigger
        d.cli("apply")
        docs.execute("UPDATE docs SET title = 'after' WHERE id = 20")
        wait_until(lambda: in_sync(docs, qdrant) and actual(qdrant)[20][0]["title"] == "after",
                   what="post-upgrade write synced")
        assert d.stop(d.procs[0]) == 0
    finally:
        live.close()


def test_daemon_refuses_a_schema_that_is_not_its_own(make_daemon, db, qdrant):
    d = make_daemon({"rule.docs": rule()})
    out = run_refused(d)
    assert 'the outbox schema "public" is not installed: run `pg2qdrant init`' in out, out
    # refused before anything is touched: the schema check runs before the collection check,
    # which would have created the rule's collection
    assert qdrant.call("GET", "/collections/docs")[0] == 404, "the refused daemon created its collection"
    assert not [r for r in qdrant.log() if r.get("method") in ("PUT", "POST", "PATCH", "DELETE")], qdrant.log()
    d.cli("init")
    # functions of another build (e.g. a pg2qdrant upgraded without running init)
    db.execute("UPDATE sync_outbox_meta SET value = 'feedfacefeedfacefeedfacefeedfacefeedface'"
               " WHERE key = 'functions_hash'")
    out = run_refused(d)
    assert (f'the outbox functions in schema "public" (feedfacefeed) are not this pg2qdrant\'s '
            f'({FUNCTIONS_HASH[:12]}): run `pg2qdrant init` to install them') in out, out
    assert "event=schema_mismatch" in out
    # `status` says the same, in both forms
    assert "outbox schema: the outbox functions in schema" in d.cli("status").stdout
    st = json.loads(d.cli("status", "--json").stdout)["schema"]
    assert st["ok"] is False and "run `pg2qdrant init`" in st["message"]
    assert st["expected_functions_hash"] == FUNCTIONS_HASH and st["expected_version"] == N_MIGRATIONS
    db.execute("DELETE FROM sync_outbox_meta WHERE key = 'functions_hash'")
    assert 'schema "public" (none) are not' in run_refused(d)
    # a schema newer than this build: init refuses to touch it, the daemon to run on it
    db.execute(f"UPDATE sync_outbox_meta SET value = '{N_MIGRATIONS + 1}' WHERE key = 'schema_version'")
    assert f"newer than this pg2qdrant ({N_MIGRATIONS})" in run_refused(d)
    r = d.cli("init", check=False)
    assert r.returncode == 1 and f"is at version {N_MIGRATIONS + 1}, newer than this pg2qdrant" in r.stderr
    db.execute(f"UPDATE sync_outbox_meta SET value = '{N_MIGRATIONS}' WHERE key = 'schema_version'")
    # init repairs it, and the daemon starts
    assert "installed or upgraded" in d.cli("init").stdout
    assert meta(db)["functions_hash"] == FUNCTIONS_HASH
    assert "outbox schema: up to date" in d.cli("status").stdout
    assert json.loads(d.cli("status", "--json").stdout)["schema"]["ok"] is True
    p = d.start()
    wait_until(lambda: "event=listening" in d.log_text(p) or p.poll() is not None,
               what="daemon up")
    assert p.poll() is None, d.log_text(p)
    assert d.stop(p) == 0


def catalog(conn, schema="public"):
    """Functions (oid, body, result), the notify trigger's oid, the meta rows."""
    fns = conn.execute("SELECT p.oid::int, p.proname, p.prosrc, pg_get_function_result(p.oid) FROM pg_proc p"
                       " JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = %s"
                       " AND p.proname LIKE 'sync_outbox%%' ORDER BY 2", (schema,)).fetchall()
    trig = conn.execute("SELECT t.oid::int FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid"
                        " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s"
                        " AND t.tgname = 'sync_outbox_notify'", (schema,)).fetchall()
    return fns, trig, meta(conn, schema)


def test_init_twice_is_a_no_op(make_daemon, db):
    d = make_daemon({"rule.docs": rule()})
    assert "installed or upgraded" in d.cli("init").stdout
    db.execute("INSERT INTO sync_outbox (event_type, rule, source_table, row_key, op, payload)"
               " VALUES ('docs', 'docs', 'public.docs', '{\"id\": 1}', 'upsert', '{\"id\": 1}')")
    before = catalog(db), outbox_state(db)
    assert len(before[0][0]) == N_FUNCTIONS and len(before[0][1]) == 1
    assert "already up to date" in d.cli("init").stdout
    assert (catalog(db), outbox_state(db)) == before
    # a function edited by hand is put back by the next init (same hash, same oid)
    db.execute("CREATE OR REPLACE FUNCTION sync_outbox_recover(p_grace_ms integer) RETURNS integer"
               " LANGUAGE sql AS 'SELECT 0'")
    assert "already up to date" in d.cli("init").stdout
    assert catalog(db) == before[0]


def concurrent_inits(d, n=6):
    procs = [subprocess.Popen([BIN, "-c", str(d.path), "init"], env=d.env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(n)]
    outs = [(p.wait(timeout=60), *p.communicate()) for p in procs]
    assert all(rc == 0 for rc, _, _ in outs), outs
    return [o for _, o, _ in outs]


@pytest.mark.parametrize("start", ["empty", "first_release"])
def test_concurrent_inits_are_safe(make_daemon, db, start):
    if start == "first_release":
        install_first_release(db)
        db.execute("INSERT INTO sync_outbox (event_type, rule, source_table, row_key, op, payload)"
                   " VALUES ('docs', 'docs', 'public.docs', '{\"id\": 1}', 'upsert', '{\"id\": 1}')")
    d = make_daemon({"rule.docs": rule()})
    outs = concurrent_inits(d)
    assert sum("installed or upgraded" in o for o in outs) == 1, outs
    assert sum("already up to date" in o for o in outs) == len(outs) - 1, outs
    assert meta(db).items() >= {"schema_version": str(N_MIGRATIONS), "functions_hash": FUNCTIONS_HASH}.items()
    assert len(catalog(db)[0]) == N_FUNCTIONS
    assert db.execute("SELECT count(*) FROM sync_outbox").fetchone()[0] == (1 if start == "first_release" else 0)


ODD = ["we$p2q$ird", "it's \"quoted\"", "sp ace\\back", "\u00fcn\u00ef c\u00f8d\u00e9 $p2q_1$", "$p2q", "x$p2q$$p2q_1$"]


@pytest.mark.parametrize("schema", ODD)
def test_odd_schema_names_install_and_drain(make_daemon, docs, qdrant, schema):
    """Issue 16: a schema name is only ever data; `init` works whatever it contains, twice, and the
    daemon claims, acks and recovers through it."""
    d = make_daemon({"postgres": {"schema": schema}, "rule.docs": rule(),
                     "worker.w": {"event_types": "docs", "batch_size": "4"}})
    assert "not installed" in run_refused(d)
    assert "installed or upgraded" in d.cli("init").stdout
    assert "already up to date" in d.cli("init").stdout
    assert meta(docs, schema).items() >= {"schema_version": str(N_MIGRATIONS), "functions_hash": FUNCTIONS_HASH}.items()
    assert len(catalog(docs, schema)[0]) == N_FUNCTIONS and len(catalog(docs, schema)[1]) == 1
    for i in range(1, 9):
        docs.execute("INSERT INTO docs (id, title, emb) VALUES (%s, %s, %s)", (i, f"t{i}", vec(i)))
    enqueue(docs, range(1, 9), schema=schema)
    # the notify trigger of that schema fires (a LISTENing daemon is woken)
    listener = psycopg.connect(dbname=d.dbname, autocommit=True)
    try:
        listener.execute("LISTEN sync_outbox_insert")
        enqueue(docs, [1], schema=schema)
        assert [n.payload for n in listener.notifies(timeout=5, stop_after=1)] == ["docs"]
    finally:
        listener.close()
    d.start()
    n = lambda: docs.execute(f"SELECT count(*) FROM {ident(schema)}.sync_outbox").fetchone()[0]  # noqa: E731
    wait_until(lambda: n() == 0 and expected(docs) == actual(qdrant), what="drained through the odd schema")
    status = d.cli("status").stdout
    assert status.startswith("event_type") and "docs" not in status, status  # read there: nothing left
    assert "outbox schema: up to date" in status
    # apply installs the rule's functions quoted with a tag the schema name cannot end early
    d.cli("apply")
    docs.execute("UPDATE docs SET title = 'through the trigger' WHERE id = 2")
    docs.execute("INSERT INTO docs (id, title, emb) VALUES (9, 'a new row', %s)", (vec(9),))
    wait_until(lambda: n() == 0 and actual(qdrant)[2][0]["title"] == "through the trigger"
               and 9 in actual(qdrant), what="writes captured into the odd schema")
    assert expected(docs) == actual(qdrant)
    assert "drift" not in d.cli("status").stdout  # the drift function runs in that schema too
    assert d.stop(d.procs[0]) == 0


def test_init_by_a_role_that_does_not_own_the_functions(make_daemon, db, pgdb):
    """`apply` runs init first: a role allowed to create in the schema but not owning the functions
    goes on when they are already this build's, and is told who must run init when they are not."""
    role = "p2q_other_" + pgdb[-6:]
    db.execute(f'CREATE ROLE "{role}" LOGIN')
    try:
        d = make_daemon({"rule.docs": rule()})
        d.cli("init")
        db.execute(f'GRANT CREATE ON DATABASE "{pgdb}" TO "{role}"')
        db.execute(f'GRANT CREATE, USAGE ON SCHEMA public TO "{role}"')
        db.execute(f'GRANT SELECT, INSERT, UPDATE ON sync_outbox_meta TO "{role}"')
        env = dict(d.env, PGUSER=role)
        before = catalog(db)
        assert "already up to date" in d.cli("init", env=env).stdout
        assert catalog(db) == before
        db.execute("UPDATE sync_outbox_meta SET value = 'older' WHERE key = 'functions_hash'")
        r = d.cli("init", check=False, env=env)
        assert r.returncode == 1 and "must be owner of function" in r.stderr
        assert "(run `pg2qdrant init` as the role that owns the outbox schema)" in r.stderr
        assert meta(db)["functions_hash"] == "older"          # rolled back, nothing half-done
        assert "installed or upgraded" in d.cli("init").stdout
    finally:
        db.execute(f'DROP OWNED BY "{role}"')
        db.execute(f'DROP ROLE "{role}"')

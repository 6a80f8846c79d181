"""Least privilege (issue 13): the three roles of conf/roles.sql (README "Least privilege"), created
from that file and holding nothing else, each run their commands end to end: the owner `init`s and
`apply`s (triggers, backfill), the daemon `run`s (claims, acks, a dead letter, a retried dead letter
dying again), the reader runs `status`, `reconcile` and `check`. And each role is refused what it
should not do."""
import json

import psycopg
import pytest

from conftest import outbox_counts, points_by_id, roles_sql, wait_until


@pytest.fixture
def roles(db, pgdb):
    names = {k: f"{k}_{pgdb[-8:]}" for k in ("p2q_owner", "p2q_daemon", "p2q_reader")}
    db.execute("CREATE TABLE docs (id int PRIMARY KEY, title text, emb real[])")
    for st in roles_sql("superuser", names) + roles_sql("source-table", names):
        db.execute(st)
    yield names
    db.execute("DROP TABLE IF EXISTS docs CASCADE")
    for r in names.values():
        db.execute(f'DROP OWNED BY "{r}"')
    for r in names.values():
        db.execute(f'DROP ROLE "{r}"')


def as_role(d, role):
    return dict(d.env, PGUSER=role)


def test_three_roles_end_to_end(make_daemon, db, pgdb, qdrant, roles):
    rule = {"table": "public.docs", "key": "id", "columns": "id, title", "vector_column": "emb",
            "dimension": "4", "distance": "Dot", "collection": "docs"}
    d = make_daemon({"rule.docs": rule, "daemon": {"max_attempts": "1"}})
    owner, daemon, reader = roles["p2q_owner"], roles["p2q_daemon"], roles["p2q_reader"]
    db.execute("INSERT INTO docs SELECT i, 't' || i, ARRAY[i, 1, 0, 0]::real[] FROM generate_series(1, 20) i")

    d.cli("init", env=as_role(d, owner))
    # the owner grants the daemon and the reader their part (conf/roles.sql, section [owner])
    with psycopg.connect(dbname=pgdb, user=owner, autocommit=True) as oc:
        for st in roles_sql("owner", roles):
            oc.execute(st)
    d.cli("apply", env=as_role(d, owner))
    assert db.execute("SELECT proowner::regrole::text FROM pg_proc WHERE proname = 'p2q_capture_docs'")\
        .fetchone()[0] == owner

    # the daemon role cannot apply or init; the reader cannot run
    r = d.cli("apply", check=False, env=as_role(d, daemon))
    assert r.returncode != 0 and "permission denied" in r.stderr
    # a bad vector dies; the daemon, holding only its GRANTs, syncs the rest
    db.execute("INSERT INTO docs VALUES (21, 'bad', ARRAY[1, 2]::real[])")
    env, d.env = d.env, as_role(d, daemon)
    p = d.start()
    d.env = env
    wait_until(lambda: len(points_by_id(qdrant, "docs")) == 20 and outbox_counts(db) == (0, 1),
               what="synced as the daemon role", explain=lambda: d.log_text())
    # a retried dead letter that dies again is updated in sync_outbox_dead by the daemon role
    died = db.execute("SELECT died_at FROM sync_outbox_dead").fetchone()[0]
    d.cli("retry", "--dead", env=as_role(d, owner))
    wait_until(lambda: outbox_counts(db) == (0, 1) and db.execute(
        "SELECT died_at FROM sync_outbox_dead").fetchone()[0] > died, what="dead again")
    log = d.log_text()
    assert "permission denied" not in log, log[-3000:]
    d.stop(p)

    # the reader: status and reconcile (no --fix) work; writing does not
    db.execute("DELETE FROM docs WHERE id = 21")  # the dead one: no drift left
    st = d.cli("status", "--json", env=as_role(d, reader))
    assert json.loads(st.stdout)
    rc = d.cli("reconcile", check=False, env=as_role(d, reader))
    assert rc.returncode == 0, rc.stdout + rc.stderr
    r = d.cli("retry", "--dead", check=False, env=as_role(d, reader))
    assert r.returncode != 0 and "permission denied" in r.stderr

    # check agrees, for each role
    def privs(role):
        out = json.loads(d.cli("check", "--json", check=False, env=as_role(d, role)).stdout)
        return {c["check"]: c["status"] for c in out["checks"] if c["check"].startswith("privileges")}
    # (the owner's CREATE on the schema is the outbox owner's: no writer may create there)
    assert privs(daemon) == {"privileges.run": "ok", "privileges.apply": "warn", "privileges.reconcile": "warn",
                             "privileges.schema_create": "ok"}
    assert privs(owner) == {"privileges.run": "ok", "privileges.apply": "ok", "privileges.reconcile": "ok",
                            "privileges.schema_create": "ok"}
    assert privs(reader)["privileges.reconcile"] == "ok" and privs(reader)["privileges.run"] == "fail"
    # apply by a non-superuser owner could not install the DDL guard: check says so
    out = json.loads(d.cli("check", "--json", check=False, env=as_role(d, owner)).stdout)
    assert {c["check"]: c["status"] for c in out["checks"]}["outbox.ddl_guard"] == "warn"


def test_retry_dead_without_the_table_lock_keeps_gone_rows(make_daemon, db, pgdb, qdrant, roles):
    """`retry --dead` as the owner role, which may not take the source table's SHARE lock (it has no
    UPDATE, DELETE or TRUNCATE on it): a dead letter whose row exists comes back as the row's
    present state; one whose row is gone stays a dead letter, with a message, because its delete,
    enqueued without the lock, could be applied after a concurrent insert of its key (rv13b). A
    role that may lock the table brings that one back too, as a delete."""
    rule = {"table": "public.docs", "key": "id", "columns": "id, title", "vector_column": "emb",
            "dimension": "4", "distance": "Dot", "collection": "docs"}
    d = make_daemon({"rule.docs": rule})
    owner = roles["p2q_owner"]
    d.cli("init", env=as_role(d, owner))
    with psycopg.connect(dbname=pgdb, user=owner, autocommit=True) as oc:
        for st in roles_sql("owner", roles):
            oc.execute(st)
    d.cli("apply", env=as_role(d, owner))
    db.execute("INSERT INTO docs VALUES (1, 'one', ARRAY[1, 0, 0, 0]::real[]), (2, 'two', ARRAY[0, 1, 0, 0]::real[])")
    db.execute("DELETE FROM docs WHERE id = 2")
    db.execute("WITH x AS (DELETE FROM sync_outbox RETURNING *) SELECT sync_outbox_bury(ARRAY(SELECT x::sync_outbox FROM x))")
    dead = lambda: sorted(db.execute("SELECT row_key::text, op FROM sync_outbox_dead").fetchall())
    assert dead() == [('{"id": 1}', "upsert"), ('{"id": 2}', "delete"), ('{"id": 2}', "upsert")]

    r = d.cli("retry", "--dead", env=as_role(d, owner))
    assert "1 dead event(s)" in r.stdout, r.stdout
    assert "2 dead event(s) kept" in r.stderr and "SHARE lock" in r.stderr, r.stderr
    assert dead() == [('{"id": 2}', "delete"), ('{"id": 2}', "upsert")]
    assert db.execute("SELECT row_key::text, op, payload->>'title' FROM sync_outbox").fetchall() == \
        [('{"id": 1}', "upsert", "one")]

    r = d.cli("retry", "--dead")  # the superuser may lock the table
    assert "2 dead event(s)" in r.stdout and "kept" not in r.stderr, (r.stdout, r.stderr)
    assert dead() == []
    assert sorted(db.execute("SELECT row_key::text, op FROM sync_outbox").fetchall()) == \
        [('{"id": 1}', "upsert"), ('{"id": 2}', "delete")]

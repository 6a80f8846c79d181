"""`pg2qdrant check` (issue 13): a good setup passes (exit 0), and each kind of broken setup fails
(exit 1) with its own FAIL line naming the fix: PostgreSQL unreachable, outbox schema missing or
stale, table/column missing, wrong vector column type, trigger missing or from another config,
the table drifted, the daemon role lacking a privilege (each one named), Qdrant unreachable, API
key missing, collection missing or different, embedder failing or answering another dimension,
the listen address taken. `--json` carries the same."""
import json
import os
import socket

import psycopg
import pytest

from conftest import free_port, roles_sql
from openai_stub import OpenAIStub
from tests.qdrant_server.client import QdrantStub

RULE = {"table": "public.docs", "key": "id", "columns": "id, title", "vector_column": "emb",
        "dimension": "4", "collection": "docs"}


@pytest.fixture
def make_daemon(make_daemon):
    """Every config of this module gets a free [http] listen port (9187 may be taken here)."""
    def make(sections):
        sections = dict(sections)
        sections.setdefault("http", {"listen": f"127.0.0.1:{free_port()}"})
        return make_daemon(sections)
    return make


@pytest.fixture
def docs(db):
    db.execute("CREATE TABLE docs (id int PRIMARY KEY, title text, emb real[])")
    return db


def check(d, *args, env=None):
    r = d.cli("check", "--json", *args, check=False, env=env)
    assert r.returncode in (0, 1), r.stderr
    doc = json.loads(r.stdout)
    assert doc["ok"] == (r.returncode == 0) and doc["failed"] == sum(c["status"] == "fail" for c in doc["checks"])
    return r.returncode, {c["check"]: c for c in doc["checks"]}


def failed(checks):
    return {k: c for k, c in checks.items() if c["status"] == "fail"}


def good(make_daemon, extra=None):
    sections = {"rule.docs": dict(RULE), "http": {"listen": f"127.0.0.1:{free_port()}"}}
    for k, v in (extra or {}).items():
        sections.setdefault(k, {}).update(v)
    d = make_daemon(sections)
    d.cli("apply")
    return d


def test_good_setup_passes_and_text_output(make_daemon, docs):
    d = good(make_daemon)
    rc, checks = check(d)
    assert rc == 0, failed(checks)
    for name in ("config", "postgres.connect", "postgres.server", "postgres.writable", "postgres.session",
                 "outbox.schema", "outbox.ddl_guard", "rule.docs.table", "rule.docs.trigger", "qdrant.reachable", "qdrant.auth",
                 "collection.docs", "http.listen"):
        assert checks[name]["status"] == "ok", checks[name]
    assert checks["privileges"]["status"] == "warn"  # the test's superuser: nothing to check
    r = d.cli("check")
    lines = r.stdout.splitlines()
    assert lines[-1] == "ok: 0 check(s) failed, 1 warning(s)"
    assert any(ln.startswith("ok    rule.docs.trigger") for ln in lines)


def test_postgres_unreachable(make_daemon, docs):
    d = good(make_daemon)
    env = dict(d.env, PGHOST="127.0.0.1", PGPORT=str(free_port()))
    rc, checks = check(d, env=env)
    assert rc == 1 and set(failed(checks)) == {"postgres.connect"}
    assert "conninfo" in checks["postgres.connect"]["fix"]
    assert "qdrant.reachable" in checks  # the remote side is still checked


def test_schema_missing_and_stale(make_daemon, docs):
    d = make_daemon({"rule.docs": dict(RULE)})
    rc, checks = check(d)
    assert rc == 1 and "outbox.schema" in failed(checks)
    assert "not installed" in checks["outbox.schema"]["message"] and "init" in checks["outbox.schema"]["fix"]
    d.cli("apply")
    docs.execute("UPDATE sync_outbox_meta SET value = 'abc' WHERE key = 'functions_hash'")
    rc, checks = check(d)
    assert set(failed(checks)) == {"outbox.schema"}
    assert "not this pg2qdrant's" in checks["outbox.schema"]["message"]


@pytest.mark.parametrize("ddl,expect", [
    ("DROP TABLE docs", "does not exist"),
    ("ALTER TABLE docs RENAME COLUMN title TO t2", 'columns "title"'),
    ("ALTER TABLE docs ALTER COLUMN emb TYPE int USING 0", "not an array"),
])
def test_table_problems(make_daemon, docs, ddl, expect):
    d = make_daemon({"rule.docs": dict(RULE)})
    d.cli("init")
    docs.execute(ddl)
    rc, checks = check(d)
    assert rc == 1 and "rule.docs.table" in failed(checks), checks["rule.docs.table"]
    assert expect in checks["rule.docs.table"]["message"]


def test_trigger_missing_stale_and_drifted(make_daemon, docs, qdrant):
    d = make_daemon({"rule.docs": dict(RULE)})
    d.cli("init")
    qdrant.create_collection("docs", size=4)
    rc, checks = check(d)
    assert set(failed(checks)) == {"rule.docs.trigger"}
    assert "not applied" in checks["rule.docs.trigger"]["message"]
    d.cli("apply")
    assert check(d)[0] == 0
    # the config changed since apply: the installed trigger is another one
    d.path.write_text(d.path.read_text().replace("columns = id, title", "columns = id"))
    rc, checks = check(d)
    assert set(failed(checks)) == {"rule.docs.trigger"}
    assert "another config" in checks["rule.docs.trigger"]["message"]
    d.cli("apply")
    docs.execute("DROP TRIGGER p2q_docs ON docs")
    rc, checks = check(d)
    assert "missing" in failed(checks)["rule.docs.trigger"]["message"]
    d.cli("apply")
    docs.execute("SET pg2qdrant.allow_ddl = on")
    docs.execute("ALTER TABLE docs RENAME COLUMN emb TO emb2")
    rc, checks = check(d)
    assert "emb" in failed(checks)["rule.docs.trigger"]["message"]


def daemon_role(docs, pgdb, grants=True):
    role = "p2q_chk_" + pgdb[-8:]
    docs.execute(f'CREATE ROLE "{role}" LOGIN')
    if grants:
        for st in roles_sql("owner", {"p2q_daemon": role, "p2q_reader": role}):
            docs.execute(st)
    return role


def drop_role(docs, role):
    docs.execute(f'DROP OWNED BY "{role}"')
    docs.execute(f'DROP ROLE "{role}"')


def test_privileges_each_missing_one_named(make_daemon, docs, pgdb):
    d = good(make_daemon)
    role = daemon_role(docs, pgdb)
    try:
        env = dict(d.env, PGUSER=role)
        rc, checks = check(d, env=env)
        assert rc == 0, failed(checks)
        assert checks["privileges.run"]["status"] == "ok"
        # the daemon role cannot apply (warned, not failed: it should not)
        assert checks["privileges.apply"]["status"] == "warn"
        assert "CREATE on schema" in checks["privileges.apply"]["message"]
        assert "TRIGGER on" in checks["privileges.apply"]["message"]
        docs.execute(f'REVOKE UPDATE ON sync_outbox FROM "{role}"')
        docs.execute(f'REVOKE INSERT ON sync_outbox_dead FROM "{role}"')  # (sync_outbox_lease before 015)
        rc, checks = check(d, env=env)
        assert rc == 1 and set(failed(checks)) == {"privileges.run"}
        msg, fix = checks["privileges.run"]["message"], checks["privileges.run"]["fix"]
        assert 'UPDATE on "public".sync_outbox' in msg and 'INSERT on "public".sync_outbox_dead' in msg
        assert "SELECT on" not in msg  # only what is missing
        assert f'GRANT UPDATE ON "public".sync_outbox TO {role};' in fix
        docs.execute(f'REVOKE EXECUTE ON FUNCTION sync_outbox_ack FROM PUBLIC')
        rc, checks = check(d, env=env)
        assert "EXECUTE on function" in checks["privileges.run"]["message"]
    finally:
        drop_role(docs, role)


def test_schema_create_by_others_warned(make_daemon, docs, pgdb):
    """rv14b M1: a writer that may CREATE in the outbox schema could overload p2q_pinned_<rule>;
    check names PUBLIC, or each login role besides the schema's and the outbox's owners."""
    d = good(make_daemon)
    rc, checks = check(d)
    assert checks["privileges.schema_create"]["status"] == "ok", checks["privileges.schema_create"]
    role = daemon_role(docs, pgdb, grants=False)
    try:
        docs.execute("GRANT CREATE ON SCHEMA public TO PUBLIC")  # PostgreSQL 12-14's default
        rc, checks = check(d)
        c = checks["privileges.schema_create"]
        assert rc == 0 and c["status"] == "warn" and c["message"].startswith("PUBLIC may create objects"), c
        assert c["fix"].startswith('REVOKE CREATE ON SCHEMA public FROM PUBLIC;'), c
        docs.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
        docs.execute(f'GRANT CREATE ON SCHEMA public TO "{role}"')
        rc, checks = check(d, env=dict(d.env, PGUSER=role))  # whoever runs check sees it
        c = checks["privileges.schema_create"]
        assert c["status"] == "warn" and c["message"].startswith(f"{role} may create objects"), c
        docs.execute(f'REVOKE CREATE ON SCHEMA public FROM "{role}"')
        rc, checks = check(d)
        assert checks["privileges.schema_create"]["status"] == "ok"
    finally:
        drop_role(docs, role)


def test_qdrant_unreachable(make_daemon, docs, qdrant):
    d = good(make_daemon)
    d.path.write_text(d.path.read_text().replace(qdrant.url, f"http://127.0.0.1:{free_port()}"))
    rc, checks = check(d)
    assert rc == 1 and set(failed(checks)) == {"qdrant.reachable"}
    assert "collection.docs" not in checks


def test_qdrant_api_key(make_daemon, docs, tmp_path):
    stub = QdrantStub.start(api_key="k-123")
    try:
        d = make_daemon({"rule.docs": dict(RULE), "qdrant": {"url": stub.url, "api_key_env": "P2Q_TEST_QKEY"}})
        d.env["P2Q_TEST_QKEY"] = "k-123"
        d.cli("apply")
        assert check(d)[0] == 0
        d.env["P2Q_TEST_QKEY"] = "wrong"
        rc, checks = check(d)
        assert set(failed(checks)) == {"qdrant.auth"} and "rejected" in checks["qdrant.auth"]["message"]
        del d.env["P2Q_TEST_QKEY"]
        rc, checks = check(d)
        assert "not set" in failed(checks)["qdrant.auth"]["message"]
    finally:
        stub.stop()


def test_collection_missing_or_different(make_daemon, docs, qdrant):
    d = good(make_daemon)
    qdrant.delete_collection("docs__v1")  # apply made docs__v1 behind the alias docs (README "Re-embedding")
    rc, checks = check(d)
    assert set(failed(checks)) == {"collection.docs"}
    assert "apply" in checks["collection.docs"]["fix"]
    qdrant.create_collection("docs", size=8)
    rc, checks = check(d)
    assert "is 8/Cosine, configured 4/Cosine" in failed(checks)["collection.docs"]["message"]
    info = qdrant.collection_info("docs")[1]["result"]
    assert info["config"]["params"]["vectors"]["size"] == 8  # check changed nothing
    # a setting Qdrant changes in place (apply fixes it): a warning, not a failure
    qdrant.delete_collection("docs")
    d.cli("apply")
    d.path.write_text(d.path.read_text().replace("collection = docs", "collection = docs\nhnsw_m = 32"))
    rc, checks = check(d)
    assert rc == 0 and checks["collection.docs"]["status"] == "warn", checks["collection.docs"]
    assert "32" in checks["collection.docs"]["message"] and "apply" in checks["collection.docs"]["fix"]


def test_embedders(make_daemon, docs, qdrant, tmp_path):
    stub = OpenAIStub(dim=8, api_key="sk-test")
    try:
        docs.execute("ALTER TABLE docs ADD COLUMN body text")
        emb = {"type": "openai", "url": stub.url, "model": "m", "api_key_env": "P2Q_TEST_OPENAI_KEY"}
        rule = {"table": "public.docs", "key": "id", "columns": "id, title", "text": "title, body",
                "embedder": "oa", "dimension": "8", "collection": "docs"}
        d = make_daemon({"rule.docs": rule, "embedder.oa": emb, "embedder.spare": {"type": "minilm"}})
        d.env["P2Q_TEST_OPENAI_KEY"] = "sk-test"
        d.cli("apply")
        rc, checks = check(d)
        assert rc == 0, failed(checks)
        assert checks["embedder.oa"]["status"] == "ok" and "8 dimensions" in checks["embedder.oa"]["message"]
        assert stub.url in checks["embedder.oa"]["message"]  # the endpoint the daemon will call
        assert checks["embedder"]["status"] == "warn"  # [embedder.spare] is used by no rule
        base = stub.url[: -len("/embeddings")]
        d.path.write_text(d.path.read_text().replace(stub.url, base))
        rc, checks = check(d)
        assert rc == 0 and stub.url in checks["embedder.oa"]["message"]  # base URL: /embeddings appended
        stub.wrong_dim = 1
        rc, checks = check(d)
        assert set(failed(checks)) == {"embedder.oa"}
        stub.fail(401, count=5)
        rc, checks = check(d)
        assert "embedder.oa" in failed(checks)
    finally:
        stub.close()
    d2 = make_daemon({"rule.docs": dict(rule, embedder="m", dimension="384"),
                      "embedder.m": {"type": "minilm", "model_dir": str(tmp_path / "no-model")}})
    rc, checks = check(d2)
    assert "pg2qdrant-fetch-model" in failed(checks)["embedder.m"]["fix"]


def test_listen_address_taken(make_daemon, docs):
    d = good(make_daemon)
    listen = [ln for ln in d.path.read_text().splitlines() if ln.startswith("listen")][0].split("= ")[1]
    host, port = listen.rsplit(":", 1)
    s = socket.socket()
    s.bind((host, int(port)))
    s.listen(1)
    try:
        rc, checks = check(d)
        assert set(failed(checks)) == {"http.listen"}
        assert "in use" in checks["http.listen"]["message"]
    finally:
        s.close()


def test_listen_host_name_refused_by_config(make_daemon, docs):
    """The validator accepts exactly what the daemon binds: a host name is a config error (exit
    2) for every command, not a silent `status_http_failed` at run time."""
    d = make_daemon({"rule.docs": dict(RULE), "http": {"listen": "metrics.example:9187"}})
    r = d.cli("check", check=False)
    assert r.returncode == 2 and "is not an IP address and port" in r.stderr


def test_server_settings(make_daemon, docs, pgdb):
    d = good(make_daemon)
    docs.execute(f"ALTER DATABASE \"{pgdb}\" SET statement_timeout = '5s'")
    rc, checks = check(d)
    assert rc == 0 and checks["postgres.settings"]["status"] == "warn"
    assert "statement_timeout = 5s" in checks["postgres.settings"]["message"]
    docs.execute(f"ALTER DATABASE \"{pgdb}\" SET default_transaction_read_only = on")
    rc, checks = check(d)
    assert set(failed(checks)) == {"postgres.writable"}
    assert "default_transaction_read_only" in checks["postgres.writable"]["message"]

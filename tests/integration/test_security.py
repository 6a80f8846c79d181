"""Secrets never leave the process in text (issue: security hygiene).

Canary secrets are placed everywhere a user could put them — the Qdrant URL's userinfo, the
Qdrant api key, PGPASSWORD, `password=` in a keyword/value conninfo, a postgres:// URI password,
an embedder's key — and every text the product prints is searched for them: the daemon's log at
debug level in both formats, `config --dump`, `status` (text and JSON), /status, /metrics, and the
CLI's errors for malformed conninfos (libpq quotes the input it stumbled on). Plus: collection
names that are URL dot-segments or contain characters Qdrant forbids are refused by the config.
"""
import urllib.request

import pytest

from conftest import BIN, free_port, outbox_counts, points_by_id, wait_until
from openai_stub import OpenAIStub
from tests.qdrant_server.client import QdrantStub

CANARIES = {
    "url": "CanaryUrlPw7731",
    "qkey": "CanaryQdrantKey5519",
    "pgpw": "CanaryPgPassword4407",
    "conn": "CanaryConninfoPw8823",
    "emb": "CanaryEmbedderKey3391",
}


def leaked(text):
    return sorted(k for k, v in CANARIES.items() if v in text)


@pytest.fixture
def keyed_qdrant():
    stub = QdrantStub.start(api_key=CANARIES["qkey"])
    yield stub
    stub.stop()


@pytest.fixture
def embedder():
    stub = OpenAIStub(dim=4, api_key=CANARIES["emb"])
    yield stub
    stub.close()


def secret_daemon(make_daemon, db, pgdb, keyed_qdrant, embedder, fmt):
    db.execute("CREATE TABLE docs (id bigint PRIMARY KEY, title text, emb real[])")
    db.execute("CREATE TABLE notes (id bigint PRIMARY KEY, body text)")
    port = free_port()
    url = keyed_qdrant.url.replace("http://", f"http://admin:{CANARIES['url']}@")
    d = make_daemon({
        "qdrant": {"url": url, "api_key_env": "P2Q_CANARY_QKEY"},
        # trust authentication: the password is never needed, but libpq is handed it
        "postgres": {"conninfo": f"dbname={pgdb} password={CANARIES['conn']}"},
        "log": {"level": "debug", "format": fmt},
        "http": {"listen": f"127.0.0.1:{port}"},
        "embedder.oa": {"type": "openai", "url": embedder.url, "model": "m", "dimensions": "4",
                        "api_key_env": "P2Q_CANARY_EMB"},
        "rule.docs": {"table": "public.docs", "key": "id", "columns": "id, title",
                      "vector_column": "emb", "dimension": "4", "distance": "Dot",
                      "collection": "docs"},
        "rule.notes": {"table": "public.notes", "key": "id", "text": "body", "embedder": "oa",
                       "collection": "notes"},
    })
    d.env.update(P2Q_CANARY_QKEY=CANARIES["qkey"], P2Q_CANARY_EMB=CANARIES["emb"],
                 PGPASSWORD=CANARIES["pgpw"])
    d.port = port
    return d


@pytest.mark.parametrize("fmt", ["logfmt", "json"])
def test_no_secret_in_any_output(make_daemon, db, pgdb, keyed_qdrant, embedder, fmt):
    d = secret_daemon(make_daemon, db, pgdb, keyed_qdrant, embedder, fmt)
    texts = []
    for args in (["config", "--dump"], ["init"], ["apply"], ["status"], ["status", "--json"]):
        r = d.cli(*args)
        texts += [r.stdout, r.stderr]
    p = d.start()
    for i in range(5):
        db.execute("INSERT INTO docs VALUES (%s, %s, %s)", (i, f"t{i}", [1.0, 0.0, 0.0, float(i)]))
        db.execute("INSERT INTO notes VALUES (%s, %s)", (i, f"note {i}"))
    wait_until(lambda: outbox_counts(db) == (0, 0), timeout=60, what="events synced")
    assert len(points_by_id(keyed_qdrant, "docs")) == 5
    assert len(points_by_id(keyed_qdrant, "notes")) == 5
    for path in ("/status", "/metrics", "/readyz"):
        with urllib.request.urlopen(f"http://127.0.0.1:{d.port}{path}", timeout=10) as resp:
            texts.append(resp.read().decode())
    # a failing Qdrant makes the daemon log request errors (with the URL in reach)
    keyed_qdrant.fail(500, count=2)
    db.execute("UPDATE docs SET title = 'x' WHERE id = 1")
    wait_until(lambda: outbox_counts(db) == (0, 0), timeout=60, what="retried update synced")
    assert d.stop(p) == 0
    log = d.log_text(p)
    assert "starting" in log and "worker_connected" in log  # the log was really written
    texts.append(log)
    assert leaked("\n".join(texts)) == []


@pytest.mark.parametrize("conninfo", [
    "postgresql://app:{pw}@[::1/db",                      # unterminated IPv6 host: libpq quotes the URI
    "postgresql://app:{pw}%zz@localhost/db",              # bad percent-escape: libpq quotes the token
    "host=localhost password={pw} dbname",                # missing '=': libpq quotes the keyword
    "postgresql://app:{pw}@localhost/db?application_name=a b&bogus=1",  # a space, an unknown option
])
def test_conninfo_errors_never_echo_the_password(make_daemon, db, pgdb, keyed_qdrant, embedder,
                                                 conninfo):
    d = secret_daemon(make_daemon, db, pgdb, keyed_qdrant, embedder, "logfmt")
    text = d.path.read_text().replace(f"dbname={pgdb} password={CANARIES['conn']}",
                                      conninfo.format(pw=CANARIES["conn"]))
    d.path.write_text(text)
    outputs = []
    for args in (["status"], ["init"], ["config", "--dump"], ["run"]):
        r = d.cli(*args, check=False)
        outputs += [r.stdout, r.stderr]
        if args != ["config", "--dump"]:
            assert r.returncode != 0, f"{args} should fail on a malformed conninfo"
    joined = "\n".join(outputs)
    assert "PostgreSQL" in joined or "conninfo" in joined  # the error itself is reported
    assert leaked(joined) == []


@pytest.mark.parametrize("name, why", [
    ("..", "dot-segment"), (".", "dot-segment"), ("a:b", 'cannot contain ":" char'),
    ("a/b", 'cannot contain "/" char'), ("x" * 256, "at most 255"),
])
def test_collection_names_checked_as_qdrant_does(tmp_path, name, why):
    ini = tmp_path / "p.ini"
    ini.write_text("[qdrant]\nurl = http://127.0.0.1:6333\n[rule.r]\ntable = public.t\nkey = id\n"
                   f"vector_column = v\ndimension = 4\ncollection = {name}\n")
    import subprocess
    r = subprocess.run([BIN, "-c", str(ini), "config", "--dump"], capture_output=True, text=True)
    assert r.returncode == 2
    assert "collection" in r.stderr and why in r.stderr

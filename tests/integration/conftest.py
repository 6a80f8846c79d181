"""Shared fixtures for the integration tests.

Owns: a fresh PostgreSQL database per test (on the server scripts/test started, reached through
libpq's environment: PGHOST/PGPORT/PGUSER), the Qdrant-compatible test server fixture, and
`Daemon`, a helper that writes a pg2qdrant config for the test, runs CLI commands and starts,
signals and kills daemon processes. Everything a test starts is stopped when it ends.
"""
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
import uuid

import psycopg
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from tests import pg_tmp  # noqa: E402
from tests.qdrant_server.fixture import qdrant, qdrant_session  # noqa: E402,F401

BIN = os.environ.get("P2Q_BIN", str(ROOT / "build" / "pg2qdrant"))
ROLES_SQL = ROOT / "conf" / "roles.sql"


def roles_sql(section, names, tables=(("public.docs", "id"),)):
    """The statements of one section of conf/roles.sql ("superuser", "source-table" (repeated for
    each (table, key column) of `tables`), "owner"): README's least-privilege GRANTs, with the
    roles renamed by `names` ({"p2q_owner": "x", ...}). Comments dropped; one statement per item."""
    text = ROLES_SQL.read_text()
    body = text.split(f"-- [{section}]", 1)[1].split("\n-- [", 1)[0]
    lines = [ln.split("--", 1)[0].strip() for ln in body.splitlines()[1:]]
    stmts = [ln for ln in lines if ln]
    out = []
    for table, key in (tables if section == "source-table" else [("public.docs", "id")]):
        for st in stmts:
            st = st.replace("public.docs", table).replace("UPDATE (id)", f'UPDATE ("{key}")')
            for old, new in sorted(names.items(), key=lambda kv: -len(kv[0])):
                st = st.replace(old, f'"{new}"')
            out.append(st)
    return out


def pytest_configure(config):
    config.addinivalue_line("markers", "daemon_role: `run` connects as a role with only the daemon's "
                            "GRANTs of conf/roles.sql (README \"Least privilege\")")
    worker_postgres_start()


def pytest_unconfigure(config):
    worker_postgres_stop()


def worker_postgres_start():
    """With P2Q_PG_PER_WORKER=1 (scripts/test), each pytest-xdist worker runs its tests on a
    PostgreSQL of its own, beside the suite's (P2Q_PG_DIR + "-" + worker id), started with
    scripts/pg-tmp: tests restart and crash their server, create roles and read its log, so two
    workers must not share one. Its PGHOST/PGPORT/P2Q_PG_DIR replace the suite's in this process."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not worker or os.environ.get("P2Q_PG_PER_WORKER") != "1" or not os.environ.get("P2Q_PG_DIR"):
        return
    pgdir = f"{os.environ['P2Q_PG_DIR']}-{worker}"
    os.environ.update(pg_tmp.start(pgdir))
    os.environ["P2Q_WORKER_PG_DIR"] = pgdir


def worker_postgres_stop():
    pgdir = os.environ.pop("P2Q_WORKER_PG_DIR", None)
    if pgdir:
        pg_tmp.stop(pgdir)


def free_port():
    """A TCP port of 127.0.0.1 nothing listens on right now (for [http] listen, stubs)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(pred, timeout=30.0, interval=0.05, what="condition", explain=None):
    """Poll pred() until it returns a truthy value; fail the test after timeout seconds
    (with explain()'s text in the message, when given)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(interval)
    detail = f"\n{explain()}" if explain else ""
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r}){detail}")


def need_postgres():
    """Skip without a PostgreSQL (PGHOST unset), or fail under P2Q_REQUIRE_PG=1 (scripts/test sets
    it, as for the unit tests: a run that asked for PostgreSQL must not pass by skipping)."""
    if os.environ.get("PGHOST"):
        return
    if os.environ.get("P2Q_REQUIRE_PG") == "1":
        pytest.fail("PGHOST unset but P2Q_REQUIRE_PG=1 (start one: eval \"$(scripts/pg-tmp start DIR)\")")
    pytest.skip("no PostgreSQL (run through scripts/test)")


@pytest.fixture
def pgdb():
    """A fresh database; yields its name. Dropped (connections terminated) afterwards."""
    need_postgres()
    name = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(dbname="postgres", autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    yield name
    with psycopg.connect(dbname="postgres", autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def db(pgdb):
    """An autocommit psycopg connection to the test database."""
    with psycopg.connect(dbname=pgdb, autocommit=True) as c:
        yield c


def ini(sections):
    """Render {section: {key: value}} as INI text."""
    out = []
    for sec, kv in sections.items():
        out.append(f"[{sec}]")
        out += [f"{k} = {v}" for k, v in kv.items()]
        out.append("")
    return "\n".join(out)


class Daemon:
    """Config + CLI + daemon processes for one test."""

    def __init__(self, tmp_path, dbname, qdrant_url, sections):
        self.dir = tmp_path
        self.dbname = dbname
        base = {
            "qdrant": {"url": qdrant_url, "timeout": "3s", "connect_timeout": "1s"},
            "daemon": {"sweep_interval": "1s", "retry_min": "50ms", "retry_max": "500ms",
                       "breaker_max": "500ms", "shutdown_timeout": "5s"},
            "log": {"level": "info"},
        }
        for sec, kv in sections.items():  # a value of None removes the key: the shipped default
            base.setdefault(sec, {}).update(kv)
            for k in [k for k, v in kv.items() if v is None]:
                del base[sec][k]
        self.path = tmp_path / "p2q.ini"
        self.path.write_text(ini(base))
        self.env = dict(os.environ, PGDATABASE=dbname)
        self.procs = []
        self.daemon_role = None  # set by the daemon_role marker: `run` connects as this role

    def grant_daemon_role(self):
        """Create self.daemon_role with exactly the daemon's GRANTs of conf/roles.sql (as the
        superuser; the outbox must exist: call after init/apply)."""
        with psycopg.connect(dbname=self.dbname, autocommit=True) as c:
            if not c.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (self.daemon_role,)).fetchone():
                c.execute(f'CREATE ROLE "{self.daemon_role}" LOGIN')
            for st in roles_sql("owner", {"p2q_daemon": self.daemon_role, "p2q_reader": self.daemon_role}):
                c.execute(st)

    def cli(self, *args, check=True, env=None):
        r = subprocess.run([BIN, "-c", str(self.path), *args], env=env or self.env,
                           capture_output=True, text=True, timeout=120)
        if check and r.returncode != 0:
            raise AssertionError(f"pg2qdrant {' '.join(args)} exited {r.returncode}\n"
                                 f"stdout: {r.stdout}\nstderr: {r.stderr}")
        return r

    def start(self, name=None):
        log = open(self.dir / f"daemon-{len(self.procs)}.log", "w")
        env = self.env
        if self.daemon_role and env.get("PGUSER") == os.environ.get("PGUSER"):
            self.grant_daemon_role()
            env = dict(env, PGUSER=self.daemon_role)
        p = subprocess.Popen([BIN, "-c", str(self.path), "run"], env=env, stdout=log,
                             stderr=subprocess.STDOUT)
        p.logfile = self.dir / f"daemon-{len(self.procs)}.log"
        self.procs.append(p)
        return p

    def log_text(self, p=None):
        procs = [p] if p else self.procs
        return "".join(pathlib.Path(x.logfile).read_text(errors="replace") for x in procs)

    def stop(self, p, timeout=15):
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
        return p.wait(timeout=timeout)

    def kill(self, p):
        if p.poll() is None:
            p.kill()
        p.wait(timeout=10)

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=10)


@pytest.fixture
def make_daemon(request, tmp_path, pgdb, qdrant):
    """Daemon factory. Under `@pytest.mark.daemon_role`, `run` connects as a role holding exactly
    the daemon's GRANTs of conf/roles.sql (README "Least privilege"): no superuser."""
    made = []
    role = ("p2q_daemon_" + pgdb[-8:]) if request.node.get_closest_marker("daemon_role") else None

    def make(sections):
        d = Daemon(tmp_path, pgdb, qdrant.url, sections)
        d.daemon_role = role
        made.append(d)
        return d

    yield make
    for d in made:
        d.close()
    if role:
        with psycopg.connect(dbname=pgdb, autocommit=True) as c:
            if c.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
                c.execute(f'DROP OWNED BY "{role}"')
                c.execute(f'DROP ROLE "{role}"')


def snapshot_sql(col="emb"):
    """SQL for the snapshot text an event stands for, as the daemon reads it: a trigger that sends
    a real[] vector unprinted (sync_outbox.vec, migration 008) leaves null in its place in the
    payload, and the daemon splices in the text to_json() prints (src/vector_bin.c). Needs a
    session with extra_float_digits > 0 (the default 1 is)."""
    q = '"' + col.replace('"', '\\"') + '"'
    return (f"CASE WHEN vec IS NULL THEN payload::text ELSE replace(payload::text, "
            f"'{q} : null', '{q} : ' || to_json(vec)::text) END")


def ungate(db, schema="public", rule="docs"):
    """Put the row trigger function of the releases before the gate (session 10) in place of a
    filterless rule's pair: p2q_capture_<rule>() becomes the single pinned trigger function again
    (the pinned body, a trigger's signature, SECURITY DEFINER, and the gate's test, unqualified,
    as the early return of an UPDATE: byte-identical to what the previous release generated) and
    p2q_pinned_<rule> goes; a rule with a filter has it already. For tests that simulate an older
    install, or compare with one."""
    import re
    if db.execute("SELECT to_regprocedure(%s)", (f"{schema}.p2q_pinned_{rule}(text, record, record)",)).fetchone()[0] is None:
        return
    gate = db.execute("SELECT prosrc FROM pg_proc WHERE oid = %s::regprocedure",
                      (f"{schema}.p2q_capture_{rule}()",)).fetchone()[0]
    test = re.search(r"\n      IF (.*) THEN\n        RETURN NULL;", gate).group(1)
    test = test.replace("::pg_catalog.record", "::record").replace(" OPERATOR(pg_catalog.*=) ", " *= ")
    pinned = db.execute("SELECT pg_get_functiondef(%s::regprocedure)",
                        (f"{schema}.p2q_pinned_{rule}(text, record, record)",)).fetchone()[0]
    head = f"{schema}.p2q_pinned_{rule}(tg_op text, new record, old record)\n RETURNS boolean\n LANGUAGE plpgsql\n"
    assert head in pinned and "\n    ELSE\n" in pinned and "SECURITY DEFINER" not in pinned
    single = pinned.replace(head, f"{schema}.p2q_capture_{rule}()\n RETURNS trigger\n LANGUAGE plpgsql\n SECURITY DEFINER\n")
    single = single.replace("\n    ELSE\n", f"\n    ELSE\n      IF TG_OP = 'UPDATE' AND {test} THEN\n"
                                            "        RETURN NULL;\n      END IF;\n", 1)
    db.execute(single)
    db.execute(f"DROP FUNCTION {schema}.p2q_pinned_{rule}(text, record, record)")


def outbox_counts(conn):
    """(events in sync_outbox, dead letters)."""
    n = conn.execute("SELECT count(*) FROM sync_outbox").fetchone()[0]
    dead = conn.execute("SELECT count(*) FROM sync_outbox_dead").fetchone()[0]
    return n, dead


def points_by_id(qdrant, collection):
    """{id: point}; the payload's `_hash` (content hash for reconcile), `_text_hash` and `_model`
    (a text rule's rendered text and embedder) are dropped so tests compare the row's columns
    only (test_reconcile.py and test_search.py check them)."""
    r = qdrant.points(collection)
    pts = r["points"] if isinstance(r, dict) else r
    for p in pts:
        if isinstance(p.get("payload"), dict):
            p["payload"].pop("_hash", None)
            p["payload"].pop("_text_hash", None)
            p["payload"].pop("_model", None)
    return {p["id"]: p for p in pts}

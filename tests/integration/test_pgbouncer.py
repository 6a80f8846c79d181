"""PgBouncer (issue 13, README "PgBouncer and managed PostgreSQL"): Debian's pgbouncer in front of
the test cluster. Session pooling works end to end: `apply`, `check` and `run` all go through it,
LISTEN delivers (the sweep is set to an hour, so only a notification can wake the daemon), the
pinned settings hold, a clean restart drains. Transaction pooling is refused: `check` fails
`postgres.session` with the evidence and `run` exits 1 before claiming anything."""
import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import psycopg
import pytest

from conftest import free_port, outbox_counts, points_by_id, wait_until

PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"


class Bouncer:
    """One pgbouncer process (as the unprivileged cluster owner when we are root: pgbouncer
    refuses to run as root) on a free loopback port, forwarding every database to the test
    cluster's Unix socket with trust auth."""

    def __init__(self, mode):
        self.dir = pathlib.Path(tempfile.mkdtemp(prefix="p2q-bouncer-"))
        self.port = free_port()
        (self.dir / "users.txt").write_text(f'"{os.environ.get("PGUSER", "postgres")}" ""\n')
        (self.dir / "pgbouncer.ini").write_text(f"""[databases]
* = host={os.environ["PGHOST"]} port={os.environ["PGPORT"]}
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {self.port}
unix_socket_dir =
auth_type = trust
auth_file = {self.dir}/users.txt
pool_mode = {mode}
default_pool_size = 20
max_client_conn = 200
logfile = {self.dir}/pgbouncer.log
pidfile = {self.dir}/pgbouncer.pid
""")
        cmd = [PGBOUNCER, str(self.dir / "pgbouncer.ini")]
        if os.geteuid() == 0:
            shutil.chown(self.dir, "p2qtest")
            for f in self.dir.iterdir():
                shutil.chown(f, "p2qtest")
            cmd = ["runuser", "-u", "p2qtest", "--"] + cmd
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        wait_until(self.ready, timeout=15, what="pgbouncer listening", explain=self.log)

    def ready(self):
        assert self.proc.poll() is None, self.log()
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
            return True
        except OSError:
            return False

    def log(self):
        p = self.dir / "pgbouncer.log"
        return p.read_text(errors="replace")[-3000:] if p.exists() else "(no log)"

    def conninfo(self, dbname):
        return f"host=127.0.0.1 port={self.port} dbname={dbname}"

    def close(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def bouncer():
    if not os.path.exists(PGBOUNCER):
        if os.environ.get("P2Q_REQUIRE_PG"):
            pytest.fail("pgbouncer is not installed (scripts/deps installs Debian's pgbouncer)")
        pytest.skip("pgbouncer is not installed")
    made = []

    def make(mode):
        b = Bouncer(mode)
        made.append(b)
        return b
    yield make
    for b in made:
        b.close()


RULE = {"table": "public.docs", "key": "id", "columns": "id, title, at", "vector_column": "emb",
        "dimension": "4", "distance": "Dot", "collection": "docs"}


def config(make_daemon, b, pgdb):
    return make_daemon({"rule.docs": RULE, "postgres": {"conninfo": b.conninfo(pgdb)},
                        "daemon": {"sweep_interval": "1h"},  # only LISTEN/NOTIFY can wake the daemon
                        "http": {"listen": f"127.0.0.1:{free_port()}"}})


@pytest.fixture
def docs(db):
    db.execute("CREATE TABLE docs (id int PRIMARY KEY, title text, at timestamptz, emb real[])")
    return db


def test_session_pooling_end_to_end(make_daemon, docs, pgdb, qdrant, bouncer):
    b = bouncer("session")
    d = config(make_daemon, b, pgdb)
    docs.execute("INSERT INTO docs VALUES (1, 'before', '2025-01-01 12:00+02', '{1,0,0,0}')")
    d.cli("apply")  # through pgbouncer
    out = json.loads(d.cli("check", "--json").stdout)
    checks = {c["check"]: c for c in out["checks"]}
    assert out["ok"] and checks["postgres.session"]["status"] == "ok", out
    assert str(b.port) in checks["postgres.connect"]["message"]
    p = d.start()
    wait_until(lambda: len(points_by_id(qdrant, "docs")) == 1, what="backfill synced", explain=d.log_text)
    # writers set another time zone; the daemon's pinned session keeps UTC snapshots
    with psycopg.connect(dbname=pgdb, autocommit=True, options="-c TimeZone=Asia/Tokyo") as w:
        for i in range(2, 40):
            w.execute("INSERT INTO docs VALUES (%s, %s, '2025-01-01 12:00+02', %s)", (i, f"t{i}", [i, 1, 0, 0]))
    wait_until(lambda: len(points_by_id(qdrant, "docs")) == 39 and outbox_counts(docs) == (0, 0),
               timeout=30, what="synced through LISTEN (sweep is 1h)", explain=d.log_text)
    pts = points_by_id(qdrant, "docs")
    assert {pt["payload"]["at"] for pt in pts.values()} == {"2025-01-01T10:00:00+00:00"}
    # a clean restart through the pool (its server connections were reset and reused) drains again
    assert d.stop(p) == 0
    docs.execute("UPDATE docs SET title = 'again' WHERE id < 10")
    p2 = d.start()
    wait_until(lambda: sum(pt["payload"]["title"] == "again" for pt in points_by_id(qdrant, "docs").values()) == 9
               and outbox_counts(docs) == (0, 0), timeout=30, what="synced after restart", explain=d.log_text)
    assert d.stop(p2) == 0
    log = d.log_text()
    assert "transaction_pooling_refused" not in log and "listen_failed" not in log


def test_transaction_pooling_refused(make_daemon, docs, pgdb, qdrant, bouncer):
    b = bouncer("transaction")
    d = config(make_daemon, b, pgdb)
    direct = dict(d.env)
    d.cli("apply")  # init/apply are single transactions: they work through it
    r = d.cli("check", "--json", check=False)
    assert r.returncode == 1
    checks = {c["check"]: c for c in json.loads(r.stdout)["checks"]}
    assert checks["postgres.session"]["status"] == "fail"
    assert "transaction pooling" in checks["postgres.session"]["message"]
    assert "pool_mode = session" in checks["postgres.session"]["fix"]
    docs.execute("INSERT INTO docs VALUES (1, 'x', now(), '{1,0,0,0}')")
    p = d.start()
    assert p.wait(timeout=30) == 1
    log = d.log_text(p)
    assert "refusing a transaction-pooled PostgreSQL connection" in log and "pool_mode = session" in log
    assert outbox_counts(docs)[0] >= 1 and docs.execute(
        "SELECT count(*) FROM sync_outbox WHERE claimed_by IS NOT NULL").fetchone()[0] == 0
    assert direct == d.env


def test_session_pooling_crash_nothing_lost(make_daemon, docs, pgdb, qdrant, bouncer):
    """kill -9 with claims in flight behind session pooling: the killed daemon's server connection
    lives on in the pool, so its claims may look owned by a live session; they are freed at the
    latest when their lease expires, and nothing is lost (lease shortened to keep the test short)."""
    b = bouncer("session")
    d = config(make_daemon, b, pgdb)
    d.path.write_text(d.path.read_text().replace("sweep_interval = 1h", "sweep_interval = 1s\nlease = 10s"))
    d.cli("apply")
    with docs.transaction():
        for i in range(30):
            docs.execute("INSERT INTO docs VALUES (%s, 'x', now(), %s)", (i, [i, 1, 0, 0]))
    qdrant.latency(2000)
    p = d.start()
    wait_until(lambda: docs.execute("SELECT count(*) FROM sync_outbox WHERE claimed_by IS NOT NULL")
               .fetchone()[0] > 0, what="claims in flight", explain=d.log_text)
    d.kill(p)
    qdrant.latency(0)
    t0 = time.monotonic()
    p2 = d.start()
    wait_until(lambda: len(points_by_id(qdrant, "docs")) == 30 and outbox_counts(docs) == (0, 0),
               timeout=60, what="recovered", explain=d.log_text)
    print(f"recovered after {time.monotonic() - t0:.1f}s; recovered-by-owner-gone: "
          f"{'event=recovered' in d.log_text(p2)}")
    assert d.stop(p2) == 0

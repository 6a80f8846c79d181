#!/usr/bin/env python3
"""What the liveness check (sync_outbox_reap every 500 ms per daemon) costs PostgreSQL while idle.

    python3 bench/liveness_check_cost.py [--daemons 3] [--workers 2] [--seconds 30]

Starts --daemons idle daemons (--workers worker connections each, shipped defaults otherwise)
on one database, then prints
  * the function's execution time, EXPLAIN (ANALYZE) over 200 calls in separate transactions
    (the registry then holds daemons × (workers + 1) live rows): min / median / p90;
  * the CPU time PostgreSQL spent over --seconds in each idle daemon's backends (read from
    /proc, so PostgreSQL must run on this host), per daemon as % of one core, split into the
    check connection (its last query is sync_outbox_reap) and the others (LISTEN, workers).
Uses PostgreSQL from libpq's environment and the Python Qdrant test server. Asserts nothing.
"""
import argparse
import os
import pathlib
import statistics
import sys
import tempfile
import time
import uuid

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "integration"))
import psycopg  # noqa: E402

import recovery  # noqa: E402
from conftest import Daemon  # noqa: E402
from test_guarantees import rule  # noqa: E402
from tests.qdrant_server.client import QdrantStub  # noqa: E402

DEFAULTS = recovery.SHIPPED_DEFAULTS


def cpu_s(pid):
    """CPU seconds of a process: /proc/PID/schedstat (nanoseconds on CPU), finer than the tick."""
    with open(f"/proc/{pid}/schedstat") as f:
        return int(f.read().split()[0]) / 1e9


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--daemons", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=30)
    args = ap.parse_args()
    if not os.environ.get("PGHOST"):
        sys.exit("set PGHOST etc. (eval \"$(scripts/pg-tmp start /tmp/pg)\")")
    db = "bench_live_" + uuid.uuid4().hex[:8]
    with psycopg.connect(dbname="postgres", autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{db}"')
    qdrant = QdrantStub.start()
    tmp = tempfile.TemporaryDirectory(prefix="p2q-live-")
    d = None
    try:
        conn = psycopg.connect(dbname=db, autocommit=True)
        conn.execute("CREATE TABLE items (id int PRIMARY KEY, n int NOT NULL DEFAULT 0, label text,"
                     " emb real[] NOT NULL)")
        sections = {k: dict(v) for k, v in DEFAULTS.items()}
        sections["rule.items"] = rule()
        for w in range(args.workers):
            sections[f"worker.w{w}"] = {"event_types": "items"}
        d = Daemon(pathlib.Path(tmp.name), db, qdrant.url, sections)
        d.cli("apply")
        procs = [d.start() for _ in range(args.daemons)]
        want = args.daemons * (args.workers + 1)
        deadline = time.monotonic() + 30
        while conn.execute("SELECT count(*) FROM sync_outbox_instance").fetchone()[0] < want:
            if time.monotonic() > deadline:
                sys.exit("daemons did not register")
            time.sleep(0.1)
        time.sleep(2)
        ms = []
        for _ in range(200):
            plan = conn.execute("EXPLAIN (ANALYZE, TIMING OFF) SELECT * FROM sync_outbox_reap(2000)").fetchall()
            ms.append(float([r[0] for r in plan if r[0].startswith("Execution Time")][0].split()[2]))
        ms.sort()
        nbackends = conn.execute("SELECT count(*) FROM pg_stat_activity").fetchone()[0]
        print(f"registry rows {want}, pg_stat_activity rows {nbackends}")
        print(f"sync_outbox_reap execution ms: min {ms[0]:.3f}  median {statistics.median(ms):.3f}  "
              f"p90 {ms[int(0.9 * (len(ms) - 1))]:.3f}  (200 calls, EXPLAIN ANALYZE)")
        backends = {}
        for pid, query in conn.execute("SELECT pid, query FROM pg_stat_activity"
                                       " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                                       " AND backend_type = 'client backend'").fetchall():
            backends[pid] = "check" if "sync_outbox_reap" in query else "other"
        before = {pid: cpu_s(pid) for pid in backends}
        conn.close()
        time.sleep(args.seconds)
        rec = sum(cpu_s(p) - before[p] for p, a in backends.items() if a == "check")
        other = sum(cpu_s(p) - before[p] for p, a in backends.items() if a != "check")
        per = lambda x: 100.0 * x / args.seconds / args.daemons
        print(f"idle, {args.seconds:.0f} s, {args.daemons} daemons x {args.workers} workers: PostgreSQL CPU per daemon "
              f"{per(rec + other):.3f} % of a core (check connection {per(rec):.3f} %, LISTEN + workers "
              f"{per(other):.3f} %)")
        calls = args.seconds * 1000 / 500
        print(f"check connection: {1e6 * rec / args.daemons / calls:.0f} us of backend CPU per check "
              f"(every 500 ms)")
        for p in procs:
            d.stop(p)
    finally:
        if d:
            d.close()
        qdrant.stop()
        with psycopg.connect(dbname="postgres", autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        tmp.cleanup()


if __name__ == "__main__":
    main()

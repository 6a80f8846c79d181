#!/usr/bin/env python3
"""kill -9 recovery benchmark: how long a killed daemon's claims take to flow again, with the
shipped defaults (qdrant.timeout 30 s, sweep_interval 30 s, lease 5 min: nothing shortened).

    python3 bench/kill9_recovery.py [--kills 20] [--mode survivor|restart] [--latency-ms 150]

Under write traffic (the guarantee tests' random inserts/updates/deletes on 150 rows), a victim
daemon is SIGKILLed while it holds claims; the figure is the time from the kill until none of
the events it held is left in the outbox (each written or superseded by another daemon).
--mode survivor: a second replica runs all along and recovers them (a new victim is started for
each kill); --mode restart: the only daemon is killed and started again at once. Qdrant answers
every write after --latency-ms so that the kills land on batches on the wire.

Uses PostgreSQL from libpq's environment (PGHOST, ... as scripts/pg-tmp prints them) and the
Python Qdrant test server. Prints min / median / p90 / max over the kills; asserts nothing.
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
from test_guarantees import Traffic, rule  # noqa: E402
from tests.qdrant_server.client import QdrantStub  # noqa: E402

DEFAULTS = recovery.SHIPPED_DEFAULTS


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--mode", choices=["survivor", "restart"], default="survivor")
    ap.add_argument("--latency-ms", type=int, default=150)
    args = ap.parse_args()
    if not os.environ.get("PGHOST"):
        sys.exit("set PGHOST etc. (eval \"$(scripts/pg-tmp start /tmp/pg)\")")
    db = "bench_kill9_" + uuid.uuid4().hex[:8]
    with psycopg.connect(dbname="postgres", autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{db}"')
    qdrant = QdrantStub.start()
    tmp = tempfile.TemporaryDirectory(prefix="p2q-kill9-")
    d = None
    try:
        conn = psycopg.connect(dbname=db, autocommit=True)
        conn.execute("CREATE TABLE items (id int PRIMARY KEY, n int NOT NULL DEFAULT 0, label text,"
                     " emb real[] NOT NULL)")
        sections = {k: dict(v) for k, v in DEFAULTS.items()}
        sections.update({"rule.items": rule(),
                         "worker.w": {"event_types": "items", "batch_size": "16", "max_inflight": "2"}})
        d = Daemon(pathlib.Path(tmp.name), db, qdrant.url, sections)
        d.cli("apply")
        qdrant.latency(args.latency_ms)
        traffic = Traffic(db, rows=150, seed=11)
        traffic.start()
        survivor = d.start() if args.mode == "survivor" else None
        victim = d.start()
        times, held = [], []
        for k in range(args.kills):
            restarted = []
            after = (lambda: restarted.append(d.start())) if args.mode == "restart" else None
            n, secs = recovery.kill_and_measure(d, victim, conn, timeout=120, after_kill=after)
            times.append(secs)
            held.append(n)
            print(f"kill {k + 1:2d}: {n:3d} claims back in {secs:.2f} s", flush=True)
            victim = restarted[0] if restarted else d.start()
            time.sleep(1.0)
        traffic.stop()
        qdrant.latency(0)
        times.sort()
        p90 = times[min(len(times) - 1, int(round(0.9 * (len(times) - 1))))]
        print(f"mode={args.mode} kills={len(times)} latency_ms={args.latency_ms} claims_per_kill="
              f"{statistics.median(held):.0f} (median)")
        print(f"recovery seconds: min {times[0]:.2f}  median {statistics.median(times):.2f}  "
              f"p90 {p90:.2f}  max {times[-1]:.2f}")
        if survivor is not None:
            log = d.log_text(survivor)
            print(f"survivor log: {log.count('reason=process_dead')} recovered lines")
    finally:
        if d:
            d.close()
        qdrant.stop()
        with psycopg.connect(dbname="postgres", autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        tmp.cleanup()


if __name__ == "__main__":
    main()

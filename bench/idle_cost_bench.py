#!/usr/bin/env python3
"""What an idle pg2qdrant costs: CPU of the daemon and of the PostgreSQL backends serving it while
nothing is written, the status endpoint on (its refresh query every 2 s, the liveness check every
500 ms, LISTEN, the sweep).

    python3 bench/idle_cost_bench.py [--seconds 60] [--bin build/pg2qdrant] [--bin OTHER ...]
                                     [--backlog 0]

Uses PostgreSQL from libpq's environment (on this machine: /proc/<pid>/stat of the backends is
read; they are found by application_name 'pg2qdrant') and the Qdrant test server. Every --bin
runs the same idle period in turn (interleaved over --rounds). --backlog N leaves N events of an
event type no worker claims in the outbox (what the status query must count while idle).
Prints % of one core. Nothing is asserted.
"""
import argparse
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.qdrant_server.client import QdrantStub  # noqa: E402

import psycopg  # noqa: E402


def cpu(pid):
    try:
        f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return 0.0


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def one(binary, db, qurl, seconds, backlog):
    tmp = tempfile.mkdtemp(prefix="p2q-idle-")
    ini = pathlib.Path(tmp) / "i.ini"
    ini.write_text(f"[qdrant]\nurl = {qurl}\n[http]\nlisten = 127.0.0.1:{free_port()}\n[log]\nlevel = warn\n"
                   "[rule.idle]\ntable = public.idle\nkey = id\nvector_column = emb\ndimension = 4\ncollection = idle\n")
    env = dict(os.environ, PGDATABASE=db)
    with psycopg.connect(dbname="postgres", autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        c.execute(f'CREATE DATABASE "{db}"')
    with psycopg.connect(dbname=db, autocommit=True) as c:
        c.execute("CREATE TABLE idle (id bigint PRIMARY KEY, emb real[])")
        subprocess.run([binary, "-c", str(ini), "apply"], env=env, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        if backlog:
            c.execute("INSERT INTO sync_outbox (event_type, rule, source_table, row_key, op, payload)"
                      " SELECT 'nobody', 'idle', 'public.idle', jsonb_build_object('id', i), 'upsert',"
                      " json_build_object('id', i) FROM generate_series(1, %s) i", (backlog,))
            c.execute("VACUUM ANALYZE sync_outbox")
        p = subprocess.Popen([binary, "-c", str(ini), "run"], env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        time.sleep(4)  # connected, first refresh done
        pids = [r[0] for r in c.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s"
                                        " AND application_name = 'pg2qdrant'", (db,)).fetchall()]
        b0 = sum(cpu(x) for x in pids)
        d0 = cpu(p.pid)
        time.sleep(seconds)
        b1 = sum(cpu(x) for x in pids)
        d1 = cpu(p.pid)
        p.terminate()
        p.wait()
    return (b1 - b0) / seconds * 100, (d1 - d0) / seconds * 100, len(pids)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--bin", action="append")
    ap.add_argument("--backlog", type=int, default=0)
    ap.add_argument("--db", default="p2q_idle_bench")
    args = ap.parse_args()
    bins = args.bin or [str(ROOT / "build" / "pg2qdrant")]
    qdrant = QdrantStub.start(bench=True)
    res = {b: [] for b in bins}
    try:
        print(f"idle cost: {args.seconds:.0f} s per run, backlog {args.backlog}, load {os.getloadavg()[0]:.1f}")
        for r in range(args.rounds):
            for b in bins:
                pg, d, n = one(b, args.db, qdrant.url, args.seconds, args.backlog)
                res[b].append((pg, d))
                print(f"  {b}: PostgreSQL ({n} backends) {pg:.2f} % of a core, daemon {d:.2f} %")
        for b in bins:
            print(f"median {b}: PostgreSQL {statistics.median(x[0] for x in res[b]):.2f} % of a core"
                  f" (target <= 0.5), daemon {statistics.median(x[1] for x in res[b]):.2f} %")
    finally:
        qdrant.stop()


if __name__ == "__main__":
    main()

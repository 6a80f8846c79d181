#!/usr/bin/env python3
"""PostgreSQL CPU per lease of the lease reclaimer (sync_outbox_reclaim_leases), alone.

    python3 bench/lease_reclaim_bench.py [--leases 50000] [--rounds 3] [--db p2q_reclaim_bench]
                                         [--sql FILE ...]

Installs the outbox (build/pg2qdrant init) in a scratch database, then per round and per variant
(the installed functions, then each --sql FILE run in the database first: CREATE OR REPLACE
variants of the function, interleaved) inserts --leases released leases of distinct rows (as a
drain of distinct keys leaves them, claimed_id below every pending id) and reclaims them all with
the daemon's calls (5,000 per statement, the cursor carried over), reading the backend's on-CPU
time from /proc/<pid>/schedstat. Prints CPU µs per lease reclaimed; nothing is asserted. Uses
PostgreSQL from libpq's environment, on this machine.
"""
import argparse
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile

import psycopg

ROOT = pathlib.Path(__file__).resolve().parents[1]
BIN = os.environ.get("P2Q_BIN", str(ROOT / "build" / "pg2qdrant"))


def cpu(pid):
    return int(open(f"/proc/{pid}/schedstat").read().split()[0]) / 1e9


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--leases", type=int, default=50000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--db", default="p2q_reclaim_bench")
    ap.add_argument("--sql", nargs="*", default=[], help="function variants (SQL files), measured interleaved")
    a = ap.parse_args()
    with psycopg.connect(dbname="postgres", autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{a.db}" WITH (FORCE)')
        c.execute(f'CREATE DATABASE "{a.db}"')
    ini = pathlib.Path(tempfile.mkdtemp(prefix="p2q-rbench-")) / "b.ini"
    ini.write_text("[qdrant]\nurl = http://127.0.0.1:1\n")
    subprocess.run([BIN, "-c", str(ini), "init"], env=dict(os.environ, PGDATABASE=a.db), check=True,
                   stdout=subprocess.DEVNULL)
    variants = ["installed"] + a.sql
    res = {v: [] for v in variants}
    with psycopg.connect(dbname=a.db, autocommit=True) as c:
        if c.execute("SELECT to_regclass('sync_outbox_lease') IS NULL").fetchone()[0]:
            sys.exit("lease_reclaim_bench.py: no sync_outbox_lease: migration 015 dropped the lease table and"
                     " its reclaimer (bench/issue11/session13-nl13.md); this bench measures releases before it"
                     " (git checkout 330dce3)")
        pid = c.info.backend_pid
        installed = c.execute("SELECT pg_get_functiondef('sync_outbox_reclaim_leases'::regproc)").fetchone()[0]
        # one pending event above every claimed_id (as during a drain)
        c.execute("INSERT INTO sync_outbox (id, event_type, rule, source_table, row_key, op, payload)"
                  " OVERRIDING SYSTEM VALUE VALUES (900000000, 'b', 'b', 'public.b', '{\"id\": 0}', 'upsert', '{}')")
        for r in range(a.rounds):
            for v in variants:
                c.execute(installed if v == "installed" else pathlib.Path(v).read_text())
                c.execute("TRUNCATE sync_outbox_lease")
                c.execute("INSERT INTO sync_outbox_lease (key_hash, rule, row_key, claimed_id, leased_at, released_at)"
                          " SELECT jsonb_hash_extended(jsonb_build_object('id', i), 0), 'b', jsonb_build_object('id', i),"
                          " i, now() - interval '1 minute',"
                          " now() - interval '1 minute' FROM generate_series(1, %s) i", (a.leases,))
                t0, rule, key, n = cpu(pid), None, None, 0
                while True:
                    got, _, rule, key, _ = c.execute(
                        "SELECT reclaimed, scanned, last_rule, last_key::text, blocked"
                        " FROM sync_outbox_reclaim_leases(%s, %s::jsonb, 5000)", (rule, key)).fetchone()
                    n += got
                    if rule is None:
                        break
                us = (cpu(pid) - t0) / max(n, 1) * 1e6
                res[v].append(us)
                print(f"  round {r + 1} {v}: {n} leases reclaimed, {us:.2f} us/lease, load {os.getloadavg()[0]:.1f}",
                      flush=True)
    for v in variants:
        print(f"median {v}: {statistics.median(res[v]):.2f} us/lease")


if __name__ == "__main__":
    main()

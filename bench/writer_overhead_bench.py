#!/usr/bin/env python3
"""The writer's cost of pg2qdrant: the same INSERT (or UPDATE) into a table with the rule's trigger
and into an identical table without it, CPU of the writer's backend per row.

    python3 bench/writer_overhead_bench.py [--rows 3000] [--rounds 5] [--dim 384] [--before-bin OLD]

Uses PostgreSQL from libpq's environment (the server must run on this machine: the backend's
/proc/<pid>/stat is read) and the Qdrant test server (apply creates the collection). Four
statements, each run against both tables, interleaved, --rounds times (medians):
  single  one-row INSERT statements (autocommit), the vector sent as a parameter
  multi   1,000-row INSERT ... SELECT statements (the vector built once per statement)
  update-unwatched   UPDATE of a column the rule does not map (no event must be written)
  update-watched     UPDATE of the vector (an event per row)
Prints µs per row for each table and the difference (the overhead: trigger + outbox insert +
NOTIFY + the outbox's share of the commit). Nothing is asserted.
--before-bin OLD also installs an older build's outbox and trigger (its own `init` + `apply`) in a
second database and runs every statement there too, interleaved in the same rounds: a before/after
of a trigger or NOTIFY change measured side by side.
"""
import argparse
import os
import pathlib
import random
import statistics
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.qdrant_server.client import QdrantStub  # noqa: E402

import psycopg  # noqa: E402

BIN = os.environ.get("P2Q_BIN", str(ROOT / "build" / "pg2qdrant"))


def cpu(c):
    f = open(f"/proc/{c.info.backend_pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def run(c, table, kind, rows, dim, base):
    vec = "{" + ",".join(f"{random.random():.7f}" for _ in range(dim)) + "}"
    t0 = cpu(c)
    if kind == "single":
        for i in range(rows):
            c.execute(f"INSERT INTO {table} (id, note, emb) VALUES (%s, 'x', %s)", (base + i, vec))
    elif kind == "multi":
        for s in range(0, rows, 1000):
            c.execute(f"INSERT INTO {table} (id, note, emb) SELECT i, 'x', %s::real[]"
                      f" FROM generate_series(%s::bigint, %s::bigint) i", (vec, base + s, base + min(rows, s + 1000) - 1))
    elif kind == "update-unwatched":
        for s in range(0, rows, 1000):
            c.execute(f"UPDATE {table} SET note = 'y' WHERE id BETWEEN %s AND %s", (s, s + 999))
    elif kind == "update-watched":
        for s in range(0, rows, 1000):
            c.execute(f"UPDATE {table} SET emb = %s WHERE id BETWEEN %s AND %s", (vec, s, s + 999))
    return (cpu(c) - t0) / rows * 1e6


def setup(db, bin_, ini, dim):
    with psycopg.connect(dbname="postgres", autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        c.execute(f'CREATE DATABASE "{db}"')
    c = psycopg.connect(dbname=db, autocommit=True)
    for t in ("w", "plain"):
        c.execute(f"CREATE TABLE {t} (id bigint PRIMARY KEY, note text, emb real[])")
    subprocess.run([bin_, "-c", str(ini), "apply", "--no-backfill"], env=dict(os.environ, PGDATABASE=db),
                   check=True, stdout=subprocess.DEVNULL)
    return c


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--db", default="p2q_writer_bench")
    ap.add_argument("--before-bin", help="an older pg2qdrant build, measured alongside (a second database)")
    ap.add_argument("--compare-pglz", action="store_true",
                    help="also run every statement with the outbox as migration 003 left it (payload"
                         " compressed by pglz, fillfactor 80), interleaved: before/after of migration 004")
    args = ap.parse_args()
    qdrant = QdrantStub.start(bench=True)
    tmp = tempfile.mkdtemp(prefix="p2q-wbench-")
    ini = pathlib.Path(tmp) / "w.ini"
    # the rule maps id and emb only: note is unwatched
    ini.write_text(f"[qdrant]\nurl = {qdrant.url}\n[rule.w]\ntable = public.w\nkey = id\nvector_column = emb\n"
                   f"dimension = {args.dim}\ncollection = w\ncolumns = id\n")
    try:
        builds = [("this build", setup(args.db, BIN, ini, args.dim))]
        if args.before_bin:
            builds.append(("before", setup(args.db + "_before", args.before_bin, ini, args.dim)))
        res = {}
        print(f"writer overhead: {args.rows} rows per run, dim {args.dim}, {args.rounds} rounds,"
              f" load {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
        variants = ["installed"] + (["pglz,ff80"] if args.compare_pglz else [])
        c0 = builds[0][1]
        orig = c0.execute("SELECT attstorage, reloptions FROM pg_attribute a JOIN pg_class k ON k.oid = a.attrelid"
                          " WHERE attrelid = 'sync_outbox'::regclass AND attname = 'payload'").fetchone()
        for r in range(args.rounds):
            for v in (variants if r % 2 == 0 else variants[::-1]):
                if v == "installed":
                    st = {"e": "EXTERNAL", "x": "EXTENDED", "m": "MAIN", "p": "PLAIN"}[orig[0]]
                    ff = next((o.split("=")[1] for o in orig[1] or [] if o.startswith("fillfactor=")), "100")
                else:
                    st, ff = "EXTENDED", "80"
                for _, c in builds:
                    c.execute(f"ALTER TABLE sync_outbox SET (fillfactor = {ff}), ALTER COLUMN payload SET STORAGE {st}")
                for kind in ("single", "multi", "update-unwatched", "update-watched"):
                    for b, c in (builds if r % 2 == 0 else builds[::-1]):
                        for t in (("w", "plain") if r % 2 == 0 else ("plain", "w")):
                            if kind in ("single", "multi"):
                                c.execute(f"TRUNCATE {t}")
                                c.execute("TRUNCATE sync_outbox")
                            res.setdefault((b, v, kind, t), []).append(run(c, t, kind, args.rows, args.dim, 0))
                        c.execute("TRUNCATE sync_outbox")
                        c.execute("VACUUM w, plain")
        for b, _ in builds:
            for v in variants:
                print(f" {b}: outbox {v}" + (f" (payload storage {orig[0]}, {orig[1]})" if v == "installed" else ""))
                for kind in ("single", "multi", "update-unwatched", "update-watched"):
                    a = statistics.median(res[(b, v, kind, "w")])
                    p = statistics.median(res[(b, v, kind, "plain")])
                    diffs = [x - y for x, y in zip(res[(b, v, kind, "w")], res[(b, v, kind, "plain")])]
                    print(f"  {kind:17s} with pg2qdrant {a:7.1f} us/row, without {p:7.1f} us/row:"
                          f" overhead {statistics.median(diffs):6.1f} us/row (median of paired rounds;"
                          f" target <= 15 for inserts, ~0 for update-unwatched)")
        print(f" load at the end {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    finally:
        qdrant.stop()


if __name__ == "__main__":
    main()

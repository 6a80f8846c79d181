#!/usr/bin/env python3
"""reconcile benchmark: rows checked per second and peak RSS of `pg2qdrant reconcile` on a synced
table (payloads, hashes and vectors compared), at two table sizes to show memory stays bounded.

    python3 bench/reconcile_bench.py [--rows 20000] [--dim 128] [--keys int|text]

Uses PostgreSQL from libpq's environment (PGHOST, ...) and the Qdrant-compatible test server in
--bench-mode on loopback; the daemon syncs the table first (not timed). The binary is $P2Q_BIN
or build/pg2qdrant. Prints figures; nothing is asserted.
"""
import argparse
import os
import pathlib
import random
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.qdrant_server.client import QdrantStub  # noqa: E402

import psycopg  # noqa: E402

BIN = os.environ.get("P2Q_BIN", str(ROOT / "build" / "pg2qdrant"))


def run(cmd, env):
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, status, ru = os.wait4(p.pid, 0)
    out, err = p.stdout.read(), p.stderr.read()
    return time.monotonic() - t0, os.waitstatus_to_exitcode(status), ru.ru_maxrss, out, err


def one(args, rows, q, tmp):
    db = f"p2q_recbench_{os.getpid()}_{rows}"
    with psycopg.connect(dbname="postgres", autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{db}"')
        c.execute(f'CREATE DATABASE "{db}"')
    env = dict(os.environ, PGDATABASE=db)
    key = "bigint" if args.keys == "int" else "text"
    coll = f"rb{rows}"
    ini = pathlib.Path(tmp) / f"{coll}.ini"
    ini.write_text(f"""
[qdrant]
url = {q.url}
[log]
level = warn
[rule.{coll}]
table = public.t
key = id
vector_column = emb
dimension = {args.dim}
distance = Cosine
collection = {coll}
""")
    with psycopg.connect(dbname=db, autocommit=True) as c:
        c.execute(f"CREATE TABLE t (id {key} PRIMARY KEY, title text, n int, emb real[])")
        rnd = random.Random(7)
        with c.cursor().copy("COPY t (id, title, n, emb) FROM STDIN") as cp:
            for i in range(rows):
                k = i if args.keys == "int" else f"key-{i}"
                cp.write_row((k, f"title {i}", i % 100, [rnd.uniform(-1, 1) for _ in range(args.dim)]))
    subprocess.run([BIN, "-c", str(ini), "init"], env=env, check=True, capture_output=True)
    subprocess.run([BIN, "-c", str(ini), "apply"], env=env, check=True, capture_output=True)
    d = subprocess.Popen([BIN, "-c", str(ini), "run"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with psycopg.connect(dbname=db, autocommit=True) as c:
            while c.execute("SELECT count(*) FROM sync_outbox").fetchone()[0]:
                time.sleep(0.5)
    finally:
        d.terminate()
        d.wait()
    secs, rc, rss, out, err = run([BIN, "-c", str(ini), "reconcile"], env)
    with psycopg.connect(dbname="postgres", autocommit=True) as c:
        c.execute(f'DROP DATABASE "{db}"')
    q.delete_collection(coll)
    if rc != 0:
        print(f"reconcile exited {rc}: {out}{err}")
    print(f"rows={rows} dim={args.dim} keys={args.keys}: reconcile {secs:.2f} s, {rows / secs:,.0f} rows/s"
          f" (each row: its point scrolled, looked up, retrieved with its vector and compared),"
          f" peak RSS {rss / 1024:.1f} MiB, exit {rc}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=20000)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--keys", choices=("int", "text"), default="int")
    args = ap.parse_args()
    q = QdrantStub.start(bench=True)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for rows in (args.rows, args.rows * 2):
                one(args, rows, q, tmp)
    finally:
        q.stop()


if __name__ == "__main__":
    main()

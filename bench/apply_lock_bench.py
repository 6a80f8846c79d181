#!/usr/bin/env python3
"""bench/apply_lock_bench.py — how long can an application write wait while `apply` loads a
large table? (issue 8: the initial load must never hold a table-wide write lock.)

Creates a database with `docs` (--rows rows, --dim-float vectors), starts the Qdrant test server,
runs `pg2qdrant init`, then starts application writers and, after a baseline period, runs
`pg2qdrant apply` (trigger install + chunked load). Writers, each on its own autocommit
connection, time every statement:
  - random: UPDATE of a random existing row, or INSERT of a new row;
  - hot:    UPDATE of a row just ahead of the load's cursor (read from the newest outbox event),
            i.e. the rows a chunk is about to lock FOR SHARE: the worst case.
Prints the longest single wait (and p50/p99) before and during apply, and the load's duration —
with the old design (one transaction holding SHARE ROW EXCLUSIVE for the whole load) every writer
waited about that long. A figure, not an assertion.

  eval "$(scripts/pg-tmp start /tmp/pg)"; python3 bench/apply_lock_bench.py [--rows 1000000]
      [--dim 8] [--chunk 1000] [--writers 3] [--baseline 3]
"""
import argparse
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import psycopg

ROOT = pathlib.Path(__file__).resolve().parents[1]


def start_qdrant():
    p = subprocess.Popen([sys.executable, str(ROOT / "tests/qdrant_server/server.py"), "--port", "0",
                          "--control-port", "0", "--bench-mode"], stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    port = int(line.split("port=")[1].split()[0])
    return p, port


class Writer(threading.Thread):
    def __init__(self, dbname, kind, rows, seed, stop):
        super().__init__(daemon=True)
        self.dbname, self.kind, self.rows, self.stop = dbname, kind, rows, stop
        self.samples = []  # (start time, seconds)
        self.errors = 0
        self.seed = seed

    def run(self):
        import random
        rnd = random.Random(self.seed)
        next_id = 10_000_000 + self.seed * 1_000_000
        cursor, cursor_at = 1, 0.0
        with psycopg.connect(dbname=self.dbname, autocommit=True) as c:
            while not self.stop.is_set():
                if self.kind == "hot":
                    if time.monotonic() - cursor_at > 0.2:
                        r = c.execute("SELECT (row_key->>'id')::bigint FROM sync_outbox ORDER BY id DESC LIMIT 1"
                                      ).fetchone() if c.execute("SELECT to_regclass('sync_outbox')").fetchone()[0] else None
                        cursor, cursor_at = (r[0] if r and r[0] else cursor), time.monotonic()
                    sql, args = "UPDATE docs SET n = n + 1 WHERE id = %s", (min(self.rows, cursor + rnd.randint(1, 1500)),)
                elif rnd.random() < 0.8:
                    sql, args = "UPDATE docs SET n = n + 1 WHERE id = %s", (rnd.randint(1, self.rows),)
                else:
                    next_id += 1
                    sql, args = "INSERT INTO docs (id, title, n) VALUES (%s, 'w', 0)", (next_id,)
                t = time.monotonic()
                try:
                    c.execute(sql, args)
                except Exception:  # noqa: BLE001
                    self.errors += 1
                self.samples.append((t, time.monotonic() - t))


def summary(samples):
    if not samples:
        return "no statements"
    lat = sorted(s for _, s in samples)
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
    return (f"{len(lat)} statements, p50 {statistics.median(lat) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, "
            f"max {lat[-1] * 1000:.1f} ms")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=8)
    ap.add_argument("--chunk", type=int, default=1000)
    ap.add_argument("--writers", type=int, default=3, help="random writers (plus one hot writer)")
    ap.add_argument("--baseline", type=float, default=3.0, help="seconds of writes before apply")
    ap.add_argument("--bin", default=os.environ.get("P2Q_BIN", str(ROOT / "build/pg2qdrant")))
    a = ap.parse_args()
    if not os.environ.get("PGHOST"):
        sys.exit("no PostgreSQL: eval \"$(scripts/pg-tmp start /tmp/pg)\" first")
    db = "p2q_apply_bench"
    with psycopg.connect(dbname="postgres", autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        c.execute(f'CREATE DATABASE "{db}"')
    t = time.monotonic()
    with psycopg.connect(dbname=db, autocommit=True) as c:
        c.execute("CREATE TABLE docs (id bigint PRIMARY KEY, title text, n int NOT NULL DEFAULT 0, emb real[])")
        c.execute(f"INSERT INTO docs SELECT g, 'title ' || g, 0, array_fill((g % 97)::real / 97, ARRAY[{a.dim}])"
                  f" FROM generate_series(1, {a.rows}) g")
        c.execute("VACUUM ANALYZE docs")
    print(f"table: {a.rows} rows, dim {a.dim}, created in {time.monotonic() - t:.1f} s", flush=True)
    qd, port = start_qdrant()
    tmp = pathlib.Path(tempfile.mkdtemp())
    ini = tmp / "p2q.ini"
    ini.write_text(f"[qdrant]\nurl = http://127.0.0.1:{port}\n\n[rule.docs]\ntable = public.docs\nkey = id\n"
                   f"columns = id, title, n\nvector_column = emb\ndimension = {a.dim}\ncollection = docs\n")
    env = dict(os.environ, PGDATABASE=db)
    try:
        subprocess.run([a.bin, "-c", str(ini), "init"], env=env, check=True, capture_output=True)
        stop = threading.Event()
        ws = [Writer(db, "random", a.rows, k, stop) for k in range(a.writers)] + [Writer(db, "hot", a.rows, 99, stop)]
        for w in ws:
            w.start()
        time.sleep(a.baseline)
        t0 = time.monotonic()
        r = subprocess.run([a.bin, "-c", str(ini), "apply", "--chunk", str(a.chunk)], env=env,
                           capture_output=True, text=True)
        t1 = time.monotonic()
        time.sleep(0.5)
        stop.set()
        for w in ws:
            w.join()
        if r.returncode:
            sys.exit(f"apply failed: {r.stderr}")
        print(r.stdout.strip())
        print(f"apply: {t1 - t0:.1f} s for {a.rows} rows in chunks of {a.chunk} "
              f"(the old single-transaction apply blocked every writer for about the whole load)")
        before = [s for w in ws for s in w.samples if s[0] < t0]
        during = [s for w in ws for s in w.samples if t0 <= s[0] < t1]
        hot = [s for w in ws if w.kind == "hot" for s in w.samples if t0 <= s[0] < t1]
        print(f"writers before apply: {summary(before)}")
        print(f"writers during apply: {summary(during)}")
        print(f"  hot writer (rows just ahead of the load cursor): {summary(hot)}")
        print(f"write errors: {sum(w.errors for w in ws)}")
        longest = max((s for _, s in during), default=0)
        print(f"LONGEST SINGLE WRITER WAIT DURING APPLY: {longest * 1000:.1f} ms")
    finally:
        qd.terminate()
        qd.wait()
        with psycopg.connect(dbname="postgres", autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


if __name__ == "__main__":
    main()

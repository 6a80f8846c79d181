#!/usr/bin/env python3
"""Per-row cost of the pinned session settings (include/pg2qdrant/session.h) on a writer's INSERT.

    python3 bench/capture_settings_bench.py [--rows 20000] [--runs 5] [--dim 384]

The trigger functions `apply` generates carry SET clauses (TimeZone, DateStyle, IntervalStyle,
extra_float_digits, bytea_output, lc_monetary) on top of search_path; PostgreSQL applies them on
entry and restores the writer's values on exit, once per row. This measures an INSERT of --rows
rows (id, title, a timestamptz, a double, a real[--dim] vector; read from a pre-filled unlogged
table) into a table with a rule, in three variants of the same generated function:
  none        no trigger at all (the table's own cost)
  search_path the function with only its search_path clause (ALTER FUNCTION … RESET ALL + SET)
  pinned      the function exactly as `apply` generates it
and prints µs/row (median of --runs; each run in a rolled-back transaction, so the table and
the outbox start empty; the variants are interleaved). Uses PostgreSQL from libpq's environment (PGHOST, …) and the Qdrant
test server for `apply`. Nothing is asserted: speed is reported, not tested.
"""
import argparse
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.qdrant_server.client import QdrantStub  # noqa: E402

import psycopg  # noqa: E402

BIN = os.environ.get("P2Q_BIN", str(ROOT / "build" / "pg2qdrant"))


def insert_us_per_row(conn, rows):
    conn.execute("BEGIN")
    t = time.perf_counter()
    conn.execute(f"INSERT INTO bench SELECT * FROM src WHERE id <= {rows}")
    dt = time.perf_counter() - t
    conn.execute("ROLLBACK")
    return dt * 1e6 / rows


def set_variant(conn, fn, pinned, variant):
    conn.execute(f"ALTER FUNCTION {fn} RESET ALL")
    conn.execute(f"ALTER TABLE bench {'DISABLE' if variant == 'none' else 'ENABLE'} TRIGGER USER")
    for setting in pinned if variant == "pinned" else pinned[:1]:  # search_path comes first
        name, value = setting.split("=", 1)
        conn.execute(f"ALTER FUNCTION {fn} SET {name} = '{value}'")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=20000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--dim", type=int, default=384)
    args = ap.parse_args()
    db = "bench_" + uuid.uuid4().hex[:8]
    with psycopg.connect(dbname="postgres", autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{db}"')
    qdrant = QdrantStub.start(bench=True)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            ini = pathlib.Path(tmp) / "p2q.ini"
            ini.write_text(f"""
[qdrant]
url = {qdrant.url}
[rule.bench]
table = public.bench
key = id
vector_column = emb
dimension = {args.dim}
collection = bench
""")
            env = dict(os.environ, PGDATABASE=db)
            with psycopg.connect(dbname=db, autocommit=True) as conn:
                conn.execute("CREATE TABLE bench (id bigint PRIMARY KEY, title text, at timestamptz, "
                             "score double precision, emb real[])")
                for cmd in (["init"], ["apply"]):
                    subprocess.run([BIN, "-c", str(ini), *cmd], env=env, check=True, capture_output=True)
                fn = conn.execute("SELECT p.oid::regprocedure::text FROM pg_proc p "
                                  "WHERE p.proname = 'p2q_capture_bench'").fetchone()[0]
                pinned = conn.execute("SELECT proconfig FROM pg_proc WHERE proname = 'p2q_capture_bench'").fetchone()[0]
                assert pinned[0].startswith("search_path="), pinned
                conn.execute(f"CREATE UNLOGGED TABLE src AS SELECT g AS id, 'title ' || g AS title, "
                             f"'2025-01-01'::timestamptz + g * interval '1 second' AS at, g / 7.0 AS score, "
                             f"(SELECT array_agg(((g + i) % 97) / 97.0)::real[] FROM generate_series(1, {args.dim}) i) AS emb "
                             f"FROM generate_series(1, {args.rows}) g")
                conn.execute("ANALYZE src")
                insert_us_per_row(conn, args.rows)  # warm-up
                runs = {v: [] for v in ("none", "search_path", "pinned")}
                for _ in range(args.runs):  # variants interleaved, so drift hits all alike
                    for variant in runs:
                        set_variant(conn, fn, pinned, variant)
                        runs[variant].append(insert_us_per_row(conn, args.rows))
                res = {k: statistics.median(v) for k, v in runs.items()}
                best = {k: min(v) for k, v in runs.items()}
                paired = statistics.median(p - q for p, q in zip(runs["pinned"], runs["search_path"]))
    finally:
        qdrant.stop()
        with psycopg.connect(dbname="postgres", autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
    print(f"pinned function settings: {', '.join(pinned)}")
    print(f"INSERT of {args.rows} rows (real[{args.dim}] vector), {args.runs} interleaved runs:")
    for k in ("none", "search_path", "pinned"):
        print(f"  {k:12s} median {res[k]:8.2f} us/row   best {best[k]:8.2f} us/row")
    print(f"  cost of the pinned settings: {paired:+.2f} us/row (median of the per-run differences; "
          f"best-of: {best['pinned'] - best['search_path']:+.2f} us/row, "
          f"{(best['pinned'] / best['search_path'] - 1) * 100:+.1f}%)")


if __name__ == "__main__":
    main()

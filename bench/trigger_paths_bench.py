#!/usr/bin/env python3
"""Per-row cost of the capture trigger's two paths (src/capture.c, capture_body).

    python3 bench/trigger_paths_bench.py [--rows 4000] [--runs 3] [--dim 384] [--before-bin OLD]

The trigger reads the rule's columns by reference in a fast path inside an exception block (a
read-only subtransaction), and by name from row_to_json(NEW) in a slow path taken only once a
column the rule names is gone (dropped or renamed). This measures, on a table
(id, title, body, emb real[--dim]) with a rule `columns = id, title` + the vector column, the
trigger's cost per row (µs, the statement's time minus the same statement without the trigger,
minimum of --runs, variants interleaved; each pass in a rolled-back transaction) for:
  insert            INSERT of --rows rows
  update watched    UPDATE of title (an upsert event per row)
  update unwatched  UPDATE of body (no event)
  delete            DELETE of every row
in two variants: `fast` (the table as the rule was applied) and `slow` (a column listed in the
rule, `gone`, dropped after apply: every row takes the slow path). With --before-bin (another
build of pg2qdrant), a `before` variant first: that build's generated trigger function (from its
`apply --dry-run`) with this build's function settings, on the same table. Uses PostgreSQL from
libpq's environment and the Qdrant test server for `apply`. Nothing is asserted.
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
OPS = [("insert", None), ("update watched", "UPDATE docs SET title = title || 'x'"),
       ("update unwatched", "UPDATE docs SET body = body || 'x'"), ("delete", "DELETE FROM docs")]


def one_run(conn, rows, trigger):
    """{op: seconds} for one pass of OPS in a rolled-back transaction."""
    out = {}
    conn.execute("BEGIN")
    conn.execute(f"ALTER TABLE docs {'ENABLE' if trigger else 'DISABLE'} TRIGGER USER")
    for op, sql in OPS:
        sql = sql or f"INSERT INTO docs (id, title, body, emb) SELECT id, title, 'b', emb FROM src WHERE id <= {rows}"
        t = time.perf_counter()
        conn.execute(sql)
        out[op] = time.perf_counter() - t
    conn.execute("ROLLBACK")
    return out


def measure(conn, rows, runs, defs):
    """{variant: {op: µs/row}}: each run measures the table without the trigger, then with each
    variant's function (installed from its definition): interleaved, and the minimum of the runs
    is kept (this machine is shared: the minimum is the least disturbed figure)."""
    base = {op: [] for op, _ in OPS}
    trig = {v: {op: [] for op, _ in OPS} for v in defs}
    one_run(conn, rows, True)  # warm-up
    for _ in range(runs):
        for k, t in one_run(conn, rows, False).items():
            base[k].append(t)
        for v, sql in defs.items():
            conn.execute(sql)
            for k, t in one_run(conn, rows, True).items():
                trig[v][k].append(t)
    return {v: {op: (min(trig[v][op]) - min(base[op])) * 1e6 / rows for op, _ in OPS} for v in defs}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=4000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--before-bin", help="another pg2qdrant build: measure its trigger function too")
    args = ap.parse_args()
    db = "bench_" + uuid.uuid4().hex[:8]
    with psycopg.connect(dbname="postgres", autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{db}"')
    qdrant = QdrantStub.start(bench=True)
    res = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            ini = pathlib.Path(tmp) / "p2q.ini"
            ini.write_text(f"[qdrant]\nurl = {qdrant.url}\n[rule.docs]\ntable = public.docs\nkey = id\n"
                           f"columns = id, title, gone\nvector_column = emb\ndimension = {args.dim}\n"
                           f"collection = docs\n")
            env = dict(os.environ, PGDATABASE=db)
            with psycopg.connect(dbname=db, autocommit=True) as conn:
                conn.execute("CREATE TABLE docs (id bigint PRIMARY KEY, title text, body text, gone int, emb real[])")
                for cmd in (["init"], ["apply"]):
                    subprocess.run([BIN, "-c", str(ini), *cmd], env=env, check=True, capture_output=True)
                conn.execute(f"CREATE UNLOGGED TABLE src AS SELECT g AS id, 't' || g AS title, "
                             f"(SELECT array_agg(((g + i) % 97) / 97.0)::real[] FROM generate_series(1, {args.dim}) i)"
                             f" AS emb FROM generate_series(1, {args.rows}) g")
                mine = conn.execute("SELECT pg_get_functiondef(oid) FROM pg_proc"
                                    " WHERE proname = 'p2q_capture_docs'").fetchone()[0]
                defs = {"fast": mine}
                if args.before_bin:  # the other build's function body, this build's settings
                    dry = subprocess.run([args.before_bin, "-c", str(ini), "apply", "--dry-run"], env=env,
                                         check=True, capture_output=True, text=True).stdout
                    start = dry.index('CREATE OR REPLACE FUNCTION "public"."p2q_capture_docs"')
                    head, body = dry[start:dry.index("$p2q$;", start) + 6].split(" AS $p2q$", 1)
                    settings = mine[mine.index("SECURITY DEFINER") + 16:mine.index("\nAS $function$")]
                    defs["before"] = head.split("\n")[0] + "\n LANGUAGE plpgsql SECURITY DEFINER" + \
                        settings.replace("\n", " ") + " AS $p2q$" + body
                res.update(measure(conn, args.rows, args.runs, defs))
                conn.execute(mine)
                conn.execute("ALTER TABLE docs DROP COLUMN gone")
                res.update({"slow": measure(conn, args.rows, args.runs, {"slow": mine})["slow"]})
    finally:
        qdrant.stop()
        with psycopg.connect(dbname="postgres", autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
    print(f"trigger cost, µs/row ({args.rows} rows, real[{args.dim}], min of {args.runs}, minus no trigger):")
    print(f"  {'path':6s} " + " ".join(f"{op:>17s}" for op, _ in OPS))
    for path in [p for p in ("before", "fast", "slow") if p in res]:
        print(f"  {path:6s} " + " ".join(f"{res[path][op]:17.1f}" for op, _ in OPS))


if __name__ == "__main__":
    main()

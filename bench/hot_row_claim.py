#!/usr/bin/env python3
"""One claim of 256 pending events of ONE row (the hot-row case of the claim's row rule), and of
256 events of distinct rows, side by side for several builds.

    python3 bench/hot_row_claim.py BIN [BIN ...] [--reps 11]

Each BIN gets a database of its own (p2q_hot_<n>, dropped first) on PostgreSQL from libpq's
environment, `init`ed by that build; the outbox is filled with 256 events directly (one rule,
payload '{}'), ANALYZEd, and one `sync_outbox_claim(…, 256, …)` is timed per repetition inside a
rolled-back transaction, with and without an older event of the row in flight (claimed first by
another owner in the same transaction: the claim then only reports the row held). Prints
(claimed, coalesced, held) of the claim, min/median/max ms, the WAL bytes of the last claim and the
load average. Nothing is asserted (review rv13b's script, session13-lead.md; M1's figures)."""
import argparse
import os
import pathlib
import subprocess
import tempfile
import time

import psycopg

INI = """[qdrant]
url = http://127.0.0.1:1
[rule.docs]
table = public.docs
key = id
columns = id, title
collection = docs
vector_column = emb
dimension = 4
distance = Dot
"""
CL = ("SELECT count(*) FILTER (WHERE op IN ('upsert', 'delete')), count(*) FILTER (WHERE op = 'coalesced'),"
      " max(id) FILTER (WHERE op = 'held') FROM sync_outbox_claim(%s, ARRAY['docs'], NULL, 256, 60000, true)")


def setup(name, binary, tmp):
    with psycopg.connect(dbname="postgres", autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        c.execute(f'CREATE DATABASE "{name}"')
    db = psycopg.connect(dbname=name, autocommit=True)
    db.execute("CREATE TABLE docs (id bigint PRIMARY KEY, title text, emb real[])")
    ini = tmp / f"{name}.ini"
    ini.write_text(INI)
    r = subprocess.run([binary, "-c", str(ini), "init"], env=dict(os.environ, PGDATABASE=name),
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"{binary} init: {r.stderr}{r.stdout}")
    db.execute("SELECT * FROM sync_outbox_claim('x', ARRAY['docs'], NULL, 256, 60000, true)").fetchall()  # the mark
    return db


def fill(db, hot):
    db.execute("TRUNCATE sync_outbox")
    key = "'{\"id\": 1}'::jsonb" if hot else "jsonb_build_object('id', i)"
    db.execute("INSERT INTO sync_outbox (event_type, rule, source_table, row_key, op, payload)"
               f" SELECT 'docs', 'docs', 'public.docs', {key}, 'upsert', '{{}}' FROM generate_series(1, 256) i")
    db.execute("ANALYZE sync_outbox")


def timed(db, inflight, reps):
    ts, res, wal = [], None, None
    for _ in range(reps):
        with db.transaction(force_rollback=True):
            if inflight:
                db.execute("SELECT * FROM sync_outbox_claim('other', ARRAY['docs'], NULL, 1, 60000, true)").fetchall()
            l0 = db.execute("SELECT pg_current_wal_insert_lsn()").fetchone()[0]
            t = time.perf_counter()
            res = db.execute(CL, ("w",)).fetchone()
            ts.append((time.perf_counter() - t) * 1000)
            wal = db.execute("SELECT pg_current_wal_insert_lsn() - %s::pg_lsn", (str(l0),)).fetchone()[0]
    return res, sorted(ts), wal


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bins", nargs="+")
    ap.add_argument("--reps", type=int, default=11)
    a = ap.parse_args()
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="p2q-hot-"))
    dbs = [(b, setup(f"p2q_hot_{i}", b, tmp)) for i, b in enumerate(a.bins)]
    for hot, inflight in ((True, False), (True, True), (False, False)):
        for b, db in dbs:
            fill(db, hot)
            res, ts, wal = timed(db, inflight, a.reps)
            print(f"{'one row' if hot else 'distinct rows':13} in_flight={inflight!s:5} {b}: (claimed, coalesced, held)={res}"
                  f" ms min/med/max {ts[0]:.1f}/{ts[len(ts) // 2]:.1f}/{ts[-1]:.1f} WAL {wal} B"
                  f" load {os.getloadavg()[0]:.2f}", flush=True)


if __name__ == "__main__":
    main()

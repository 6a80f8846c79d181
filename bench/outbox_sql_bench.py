#!/usr/bin/env python3
"""PostgreSQL CPU per event of the outbox's own statements: claim + lease + ack, without the daemon.

    python3 bench/outbox_sql_bench.py [--events 100000] [--batch 256] [--rounds 3] [--dim 384]
                                      [--fillfactor 80,50] [--db p2q_outbox_bench] [--ride]
                                      [--sql FILE]

Installs the outbox (build/pg2qdrant init) in a scratch database, fills it with --events events of
one rule (random 384-float vectors: payloads as big and as incompressible as real ones), then
drains it from ONE connection exactly as a worker does (the daemon's claim statement, then the ack
of every row it returned as done/release; with --ride each ack rides on the next claim, one
statement: sync_outbox_claim's trailing ack arguments, as the daemon does when a claim follows within linger_ms) and reads that backend's CPU time (utime + stime from
/proc/<pid>/stat) before and after. The figure is CPU µs per event, so it does not depend on the
machine's load (wall-clock does). --fillfactor runs the drain once per value (interleaved over
--rounds) with sync_outbox's fillfactor set to it before the fill. Also prints WAL bytes per event
(pg_stat_wal) and the outbox's HOT update ratio. --sql FILE runs FILE in the scratch database after
`init` (e.g. CREATE OR REPLACE FUNCTION variants of the claim, to measure one before changing
sql/functions.sql). Uses PostgreSQL from libpq's environment; the
server must run on this machine (its backend's /proc is read). Nothing is asserted.
"""
import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile

import psycopg

ROOT = pathlib.Path(__file__).resolve().parents[1]
BIN = os.environ.get("P2Q_BIN", str(ROOT / "build" / "pg2qdrant"))
CLAIM = ("SELECT id, rule, op, row_key::text, payload::text, attempts, max_attempts,"
         " extract(epoch FROM created_at)::float8 FROM sync_outbox_claim(%s, %s::text[], %s, %s, %s, true)")
# the ack riding on the claim, as the daemon sends it (src/outbox.c): the claim's trailing arguments
ACK_CLAIM = ("SELECT id, rule, op, row_key::text, payload::text, attempts, max_attempts,"
             " extract(epoch FROM created_at)::float8 FROM sync_outbox_claim(%(o)s, %(t)s::text[], %(r)s, %(l)s,"
             " %(lease)s, true, %(i)s::bigint[], %(ru)s::text[], %(k)s::jsonb[], %(out)s::text[], %(d)s::int[], %(e)s::text[])")
# builds before the ack rode on sync_outbox_claim's arguments (the nested sync_outbox_ack_claim)
ACK_CLAIM_OLD = ("SELECT id, rule, op, row_key::text, payload::text, attempts, max_attempts,"
                 " extract(epoch FROM created_at)::float8 FROM sync_outbox_ack_claim(%(o)s, %(i)s::bigint[],"
                 " %(ru)s::text[], %(k)s::jsonb[], %(out)s::text[], %(d)s::int[], %(e)s::text[], %(t)s::text[], %(r)s,"
                 " %(l)s, %(lease)s)")


def with_vec(q):
    """--vec: the claim read as the daemon reads it (src/outbox.c): its columns, vec included."""
    return q.replace("::float8 FROM", "::float8, vec FROM", 1)


ACK = "SELECT sync_outbox_ack(%s, %s::bigint[], %s::text[], %s::jsonb[], %s::text[], %s::int[], %s::text[])"


def cpu_seconds(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def install(db, dim):
    tmp = tempfile.mkdtemp(prefix="p2q-obench-")
    ini = pathlib.Path(tmp) / "b.ini"
    ini.write_text(f"[qdrant]\nurl = http://127.0.0.1:1\n[rule.b]\ntable = public.b\nkey = id\n"
                   f"vector_column = emb\ndimension = {dim}\ncollection = b\n")
    env = dict(os.environ, PGDATABASE=db)
    subprocess.run([BIN, "-c", str(ini), "init"], env=env, check=True, stdout=subprocess.DEVNULL)
    return ini


def fill(c, n, dim, ff, storage, vec=False):
    """n events of one rule straight into the outbox (the writer's trigger is measured elsewhere:
    bench/writer_overhead_bench.py); returns the backend CPU seconds of the INSERT."""
    c.execute("TRUNCATE sync_outbox")  # (and the lease table of an outbox before migration 015)
    if c.execute("SELECT to_regclass('sync_outbox_lease')").fetchone()[0]:
        c.execute("TRUNCATE sync_outbox_lease")
    c.execute(f"ALTER TABLE sync_outbox SET (fillfactor = {ff})")
    if storage:
        st, comp = (storage.split(":") + ["pglz"])[:2]
        c.execute(f"ALTER TABLE sync_outbox ALTER COLUMN payload SET STORAGE {st}, ALTER COLUMN payload SET COMPRESSION {comp}")
    t0 = cpu_seconds(c.info.backend_pid)
    if vec:  # as the capture trigger writes it: the vector unprinted in vec, null in the snapshot
        c.execute("INSERT INTO sync_outbox (event_type, rule, source_table, row_key, op, payload, vec)"
                  " SELECT 'b', 'b', 'public.b', jsonb_build_object('id', i), 'upsert',"
                  " json_build_object('id', i, 'seq', i, 'pad', repeat('x', 64), 'emb', NULL::json),"
                  f" (SELECT array_agg(random()::real) FROM generate_series(1, {dim}) WHERE i > 0)"
                  " FROM generate_series(1, %s) i", (n,))
    else:
        c.execute("INSERT INTO sync_outbox (event_type, rule, source_table, row_key, op, payload)"
                  " SELECT 'b', 'b', 'public.b', jsonb_build_object('id', i), 'upsert',"
                  f" json_build_object('id', i, 'emb', (SELECT array_agg(random()::real) FROM generate_series(1, {dim}) WHERE i > 0))"
                  " FROM generate_series(1, %s) i", (n,))
    cpu = cpu_seconds(c.info.backend_pid) - t0
    c.execute("VACUUM ANALYZE sync_outbox")
    return cpu


def ack_arrays(rows):
    """The ack of a claim's rows (every event done, every 'release' row released)."""
    ids, rules, keys, outs = [], [], [], []
    for r in rows:
        if r[2] in ("coalesced", "held"):
            continue
        ids.append(None if r[2] == "release" else r[0])
        rules.append(r[1])
        keys.append(r[3])
        outs.append("release" if r[2] == "release" else "done")
    return ids, rules, keys, outs


def drain(c, batch, ride=False, vec=False):
    pid = c.info.backend_pid
    owner = c.execute("SELECT pg_backend_pid()::text || '.bench'").fetchone()[0]
    wal0 = c.execute("SELECT wal_bytes FROM pg_stat_wal").fetchone()[0]
    st0 = c.execute("SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = 'sync_outbox'").fetchone()
    t0 = cpu_seconds(pid)
    n = claims = 0
    rows = []
    ack_claim = ACK_CLAIM if c.execute("SELECT max(pronargs) FROM pg_proc WHERE proname = 'sync_outbox_claim'"
                                       ).fetchone()[0] > 6 else ACK_CLAIM_OLD
    while True:
        ids, rules, keys, outs = ack_arrays(rows)
        if ride:
            rows = c.execute(with_vec(ack_claim) if vec else ack_claim, {"o": owner, "i": ids, "ru": rules, "k": keys, "out": outs,
                                         "d": [0] * len(ids), "e": [None] * len(ids), "t": ["b"], "r": None,
                                         "l": batch, "lease": 30000}, binary=vec).fetchall()
        else:
            rows = c.execute(with_vec(CLAIM) if vec else CLAIM, (owner, ["b"], None, batch, 30000), binary=vec).fetchall()
        claims += 1
        n += sum(r[2] in ("upsert", "delete") for r in rows)
        if not ride and rows:
            ids, rules, keys, outs = ack_arrays(rows)
            c.execute(ACK, (owner, ids, rules, keys, outs, [0] * len(ids), [None] * len(ids)))
        if not rows:
            break
    cpu = cpu_seconds(pid) - t0
    c.execute("SELECT pg_stat_force_next_flush()") if c.info.server_version >= 150000 else None
    wal = c.execute("SELECT wal_bytes FROM pg_stat_wal").fetchone()[0] - wal0
    st1 = c.execute("SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = 'sync_outbox'").fetchone()
    upd, hot = st1[0] - st0[0], st1[1] - st0[1]
    return n, cpu, float(wal), claims, (hot / upd if upd else float("nan"))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=100000)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--fillfactor", default="")
    ap.add_argument("--storage", default="", help="comma list of payload STORAGE[:COMPRESSION] variants,"
                    " e.g. extended:pglz,extended:lz4,external (default: as installed)")
    ap.add_argument("--db", default="p2q_outbox_bench")
    ap.add_argument("--ride", action="store_true", help="each ack rides on the next claim (sync_outbox_ack_claim)")
    ap.add_argument("--vec", action="store_true", help="events carry the vector in vec (as the capture"
                    " trigger writes a real[] since migration 008) and the claim is read as the daemon"
                    " reads it (its columns, binary results)")
    ap.add_argument("--sql", help="an SQL file run in the scratch database after init (function variants)")
    args = ap.parse_args()
    with psycopg.connect(dbname="postgres", autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{args.db}" WITH (FORCE)')
        c.execute(f'CREATE DATABASE "{args.db}"')
    install(args.db, args.dim)
    if args.sql:
        with psycopg.connect(dbname=args.db, autocommit=True) as c:
            c.execute(pathlib.Path(args.sql).read_text())
    ffs = [(int(f) if f else None, st or None) for f in (args.fillfactor or "").split(",")
           for st in (args.storage or "").split(",")]
    res = {f: [] for f in ffs}
    print(f"outbox SQL benchmark: {args.events} events, batch {args.batch}, dim {args.dim}, load {os.getloadavg()[0]:.1f}")
    with psycopg.connect(dbname=args.db, autocommit=True) as c:
        cur_ff = c.execute("SELECT coalesce((SELECT split_part(o, '=', 2) FROM pg_class, unnest(reloptions) o"
                           " WHERE relname = 'sync_outbox' AND o LIKE 'fillfactor=%'), '100')").fetchone()[0]
        for r in range(args.rounds):
            for v in ffs:
                ff, st = v
                fcpu = fill(c, args.events, args.dim, ff if ff is not None else int(cur_ff), st, args.vec)
                n, cpu, wal, claims, hot = drain(c, args.batch, args.ride, args.vec)
                res[v].append((cpu / n * 1e6, wal / n, fcpu / n * 1e6))
                print(f"  round {r + 1} fillfactor {ff or cur_ff} payload {st or 'as installed'}: {n} events, {claims} claims,"
                      f" PostgreSQL CPU {cpu / n * 1e6:.1f} us/event, WAL {wal / n:.0f} B/event, HOT updates {hot:.0%};"
                      f" fill {fcpu / n * 1e6:.1f} us/event")
    for v in ffs:
        print(f"median fillfactor {v[0] or cur_ff} payload {v[1] or 'as installed'}: {statistics.median(x[0] for x in res[v]):.1f} us/event CPU"
              f" (claim + lease + ack; target <= 30), {statistics.median(x[1] for x in res[v]):.0f} B WAL/event,"
              f" fill {statistics.median(x[2] for x in res[v]):.1f} us/event")


if __name__ == "__main__":
    main()

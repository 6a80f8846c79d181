#!/usr/bin/env python3
"""Daemon benchmark: backlog drain (events/s, peak RSS) and commit→Qdrant latency (p50/p99).

    python3 bench/daemon_bench.py [--events 200000] [--runs 1] [--rate 200] [--seconds 10]
                                  [--batch-size 256] [--max-inflight 4] [--linger-ms 5] [--workers 1]

Uses PostgreSQL from libpq's environment (PGHOST, ...) or starts a throwaway one with
scripts/pg-tmp, and the Qdrant-compatible test server in --bench-mode (full JSON parsing and
structure checks, no per-element vector type checks) on loopback. The binary is $P2Q_BIN or
build/pg2qdrant. Prints each figure with its target and the ratio; medians over --runs.
Nothing here is asserted: speed is reported, not tested.
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

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests import pg_tmp  # noqa: E402
from tests.qdrant_server.client import QdrantStub  # noqa: E402

import psycopg  # noqa: E402

BIN = os.environ.get("P2Q_BIN", str(ROOT / "build" / "pg2qdrant"))
DIM = 384


def config(tmp, qurl, db, args, table):
    text = f"""
[qdrant]
url = {qurl}
[daemon]
sweep_interval = 30s
[log]
level = warn
stats_interval = 0
[rule.{table}]
table = public.{table}
key = id
vector_column = emb
dimension = {DIM}
distance = Dot
collection = {table}
"""
    for i in range(args.workers):
        text += f"""
[worker.w{i}]
event_types = {table}
batch_size = {args.batch_size}
max_inflight = {args.max_inflight}
linger_ms = {args.linger_ms}
"""
    path = pathlib.Path(tmp) / f"{table}.ini"
    path.write_text(text)
    return path


def run(cmd, env):
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)


def peak_rss_kb(pid):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        return -1
    return -1


def cpu_seconds(pid):
    """utime + stime of a process, in seconds (0 if it is gone)."""
    try:
        f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def drain(args, tmp, qdrant, dbname, env):
    table = "drain"
    with psycopg.connect(dbname=dbname, autocommit=True) as c:
        c.execute(f"DROP TABLE IF EXISTS {table}")
        c.execute(f"CREATE TABLE {table} (id bigint PRIMARY KEY, title text, emb real[])")
        # distinct cheap vectors: one value repeated, varying per row
        c.execute(f"INSERT INTO {table} SELECT i, 'row ' || i, array_fill(((i % 1000) / 1000.0)::real, ARRAY[{DIM}])"
                  f" FROM generate_series(1, {args.events}) i")
        c.execute("DELETE FROM sync_outbox WHERE rule = %s", (table,)) if c.execute(
            "SELECT to_regclass('sync_outbox')").fetchone()[0] else None
    cfg = config(tmp, qdrant.url, dbname, args, table)
    qdrant.call("DELETE", f"/collections/{table}")
    run([BIN, "-c", str(cfg), "apply"], env)  # trigger + backfill: the backlog
    with psycopg.connect(dbname=dbname, autocommit=True) as c:
        c.execute(f"DELETE FROM sync_outbox_rule WHERE name = '{table}'")  # next run re-applies
        n = c.execute("SELECT count(*) FROM sync_outbox").fetchone()[0]
        c.execute("SET max_parallel_workers_per_gather = 0")  # the progress poll must stay cheap
        server0 = cpu_seconds(qdrant.proc.pid)
        t0 = time.monotonic()
        p = subprocess.Popen([BIN, "-c", str(cfg), "run"], env=env)
        rss, backends, pg_cpu = 0, set(), {}
        while True:
            left = c.execute("SELECT count(*) FROM sync_outbox").fetchone()[0]
            rss = max(rss, peak_rss_kb(p.pid))
            backends |= {r[0] for r in c.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
                " AND backend_type = 'client backend'").fetchall()}
            for b in backends:  # sampled while alive: a backend's CPU is gone once it exits
                pg_cpu[b] = max(pg_cpu.get(b, 0.0), cpu_seconds(b))
            if left == 0:
                break
            time.sleep(0.25)
        elapsed = time.monotonic() - t0
        rss = max(rss, peak_rss_kb(p.pid))
        daemon_cpu = cpu_seconds(p.pid)
        for b in backends:
            pg_cpu[b] = max(pg_cpu.get(b, 0.0), cpu_seconds(b))
        server_cpu = cpu_seconds(qdrant.proc.pid) - server0
        p.terminate()
        p.wait()
    count = qdrant.count(table)[1]["result"]["count"]
    cpu = {"daemon": daemon_cpu, "postgres backends": sum(pg_cpu.values()), "qdrant test server": server_cpu}
    return n / elapsed, rss / 1024.0, n, count, cpu


def latency(args, tmp, qdrant, dbname, env):
    table = "lat"
    with psycopg.connect(dbname=dbname, autocommit=True) as c:
        c.execute(f"DROP TABLE IF EXISTS {table}")
        c.execute(f"CREATE TABLE {table} (id bigint PRIMARY KEY, title text, emb real[])")
    cfg = config(tmp, qdrant.url, dbname, args, table)
    qdrant.call("DELETE", f"/collections/{table}")
    run([BIN, "-c", str(cfg), "apply"], env)
    p = subprocess.Popen([BIN, "-c", str(cfg), "run"], env=env)
    time.sleep(1.0)
    qdrant.clear_log()
    commits = {}
    vec = "{" + ",".join(["0.5"] * DIM) + "}"
    with psycopg.connect(dbname=dbname, autocommit=True) as c:
        interval = 1.0 / args.rate
        start = time.monotonic()
        i = 0
        while time.monotonic() - start < args.seconds:
            due = start + i * interval
            now = time.monotonic()
            if due > now:
                time.sleep(due - now)
            c.execute(f"INSERT INTO {table} (id, title, emb) VALUES (%s, 'x', %s)", (i, vec))
            commits[i] = time.time()  # COMMIT has returned (autocommit)
            i += 1
        achieved = i / (time.monotonic() - start)
        deadline = time.monotonic() + 60
        while c.execute("SELECT count(*) FROM sync_outbox").fetchone()[0] and time.monotonic() < deadline:
            time.sleep(0.1)
    p.terminate()
    p.wait()
    arrived = {}
    for e in qdrant.log():
        if e["method"] == "PUT" and e.get("status") == 200 and e.get("ids"):
            done = e.get("te", e["ts"])
            for pid in e["ids"]:
                arrived.setdefault(pid, done)
    lat = sorted((arrived[k] - commits[k]) * 1000 for k in commits if k in arrived)
    if not lat:
        return achieved, float("nan"), float("nan"), 0
    p50 = lat[len(lat) // 2]
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
    return achieved, p50, p99, len(lat)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=200000)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--rate", type=float, default=200)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--max-inflight", type=int, default=4)
    ap.add_argument("--linger-ms", type=int, default=5)
    ap.add_argument("--workers", type=int, default=1, help="workers claiming the event type (each its own connection)")
    ap.add_argument("--skip-drain", action="store_true")
    ap.add_argument("--skip-latency", action="store_true")
    args = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="p2q-bench-")
    os.chmod(tmp, 0o755)
    env = dict(os.environ)
    started_pg = None
    if not env.get("PGHOST"):
        started_pg = f"{tmp}/pg"
        pg = pg_tmp.start(started_pg)
        env.update(pg)
        os.environ.update(pg)
    dbname = "p2q_bench"
    with psycopg.connect(dbname="postgres", autocommit=True) as c:
        c.execute(f"DROP DATABASE IF EXISTS {dbname} WITH (FORCE)")
        c.execute(f"CREATE DATABASE {dbname}")
    env["PGDATABASE"] = dbname
    os.environ["PGDATABASE"] = dbname
    qdrant = QdrantStub.start(bench=True)
    try:
        print(f"pg2qdrant daemon benchmark: workers={args.workers} batch_size={args.batch_size} max_inflight={args.max_inflight}"
              f" linger_ms={args.linger_ms} dim={DIM} cores={os.cpu_count()}")
        if not args.skip_drain:
            rates, rss, cpu_rates = [], [], []
            for r in range(args.runs):
                eps, mb, n, count, cpu = drain(args, tmp, qdrant, dbname, env)
                per = {k: v / n * 1e6 for k, v in cpu.items()}
                total = sum(per.values())
                cpu_rates.append(os.cpu_count() * 1e6 / total)
                print(f"  drain run {r + 1}: {n} events in Qdrant={count}: {eps:,.0f} events/s wall, peak RSS {mb:.1f} MiB;"
                      f" CPU per event: " + ", ".join(f"{k} {v:.1f} us" for k, v in per.items()) +
                      f" (total {total:.1f} us -> {cpu_rates[-1]:,.0f} events/s if all {os.cpu_count()} cores were ours)")
                rates.append(eps)
                rss.append(mb)
            med = statistics.median(rates)
            print(f"backlog drain: median {med:,.0f} events/s wall-clock (target >= 10,000: ratio {med / 10000:.2f}),"
                  f" CPU-bound {statistics.median(cpu_rates):,.0f} events/s (ratio {statistics.median(cpu_rates) / 10000:.2f}),"
                  f" peak RSS median {statistics.median(rss):.1f} MiB")
        if not args.skip_latency:
            res = [latency(args, tmp, qdrant, dbname, env) for _ in range(args.runs)]
            achieved = statistics.median(r[0] for r in res)
            p50 = statistics.median(r[1] for r in res)
            p99 = statistics.median(r[2] for r in res)
            print(f"latency at {achieved:.0f} commits/s over {args.seconds:.0f}s ({res[0][3]} events):"
                  f" p50 {p50:.2f} ms (target <= 5: ratio {p50 / 5:.2f}),"
                  f" p99 {p99:.2f} ms (target <= 25: ratio {p99 / 25:.2f})")
    finally:
        qdrant.stop()
        if started_pg:
            pg_tmp.stop(started_pg)


if __name__ == "__main__":
    main()

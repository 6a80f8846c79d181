#!/usr/bin/env python3
"""Side sampler for a long `pg2qdrant bench --workload steady` run (issue 11's sustained goal).

The harness reports one figure set per run; this script samples, while the run goes on, what the
issue asks for per minute: the bench's outbox (the newest `p2q_bench_*` schema) table / index /
lease sizes, dead and live tuples, autovacuum counts, commits and Qdrant points per minute, the
backlog and the age of the oldest pending event (an upper bound of commit -> ack latency at that
instant, sampled every --fast seconds), CPU seconds per event per process group from /proc, and
the load average. PostgreSQL env (PGHOST...) as for psql. Optional --control URL of the test
server: its point count is read and its request log (unbounded in memory, one entry per observer
poll) is cleared every minute.

    python3 bench/steady_sizes.py --minutes 28 [--control http://127.0.0.1:C] [--qdrant-pid P] > sizes.txt

One line per minute (fixed columns, header first). Read-only on PostgreSQL.
"""
import argparse
import json
import os
import time
import urllib.request

import psycopg

HZ = os.sysconf("SC_CLK_TCK")


def cpu_of(pids):
    t = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                s = f.read().rsplit(")", 1)[1].split()
            t += int(s[11]) + int(s[12])
        except OSError:
            pass
    return t / HZ


def pids_of(comm_pred):
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/cmdline", "rb") as f:
                    cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if comm_pred(cmd):
                out.append(int(d))
    return out


def ppid_of(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except OSError:
        return -1


def http(url, method="GET"):
    req = urllib.request.Request(url, method=method)
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read() or b"null")


def rss_mib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for ln in f:
                if ln.startswith("VmRSS:"):
                    return int(ln.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--fast", type=float, default=5, help="seconds between backlog samples")
    ap.add_argument("--control", help="test server control URL (point count, log clearing)")
    ap.add_argument("--qdrant-pid", type=int)
    ap.add_argument("--trim-url", help="Qdrant (test server) URL: every minute delete the bench's points whose seq "
                    "is older than two minutes (bounds the Python store's memory; the observer only "
                    "reads pending ids)")
    ap.add_argument("--bench-match", default="bench.ini",
                    help="a string in the bench command line (its config path) to find it and its daemons")
    a = ap.parse_args()
    conn = psycopg.connect(application_name="p2q_steady_sizes", autocommit=True)
    cur = conn.cursor()
    schema = None
    while schema is None:   # wait for the bench's scratch schema and its outbox
        cur.execute("SELECT n.nspname FROM pg_namespace n JOIN pg_class c ON c.relnamespace = n.oid "
                    "WHERE n.nspname LIKE 'p2q\\_bench\\_%' AND c.relname = 'sync_outbox' "
                    "ORDER BY n.oid DESC LIMIT 1")
        r = cur.fetchone()
        schema = r[0] if r else None
        if schema is None:
            time.sleep(0.5)
    q = f'"{schema}"'
    time.sleep(3)   # the bench creates its tables and sequences right after the schema
    print(f"# schema {schema}", flush=True)
    cols = ("min", "utc", "load1", "commits_pm", "acked_pm", "backlog_end", "backlog_max", "oldest_max_ms",
            "outbox_total_kib", "outbox_heap_kib", "outbox_idx_kib", "lease_total_kib",
            "outbox_live", "outbox_dead", "lease_live", "lease_dead", "outbox_autovac", "lease_autovac",
            "cpu_us_ev_daemon", "cpu_us_ev_pg_all", "cpu_us_ev_qdrant", "cpu_us_ev_bench",
            "qdrant_rss_mib", "toast_kib", "toast_idx_kib", "toast_live", "toast_dead", "toast_autovac",
            "lease_rows", "dead_total_kib", "oldest_xact_s")
    print(" ".join(cols), flush=True)

    def seqval():
        cur.execute(f"SELECT last_value FROM {q}.ver")
        return cur.fetchone()[0]

    def backlog():
        cur.execute(f"SELECT count(*) FROM {q}.sync_outbox")
        return cur.fetchone()[0]

    # events acknowledged in a minute = commits - growth of the backlog (exact; n_tup_del of a busy
    # backend reaches pg_stat_user_tables only every ~60 s, which aliases with a 1-minute period).
    # The bench commits one row (one event) per transaction and its seq sequence counts changes.

    cur.execute("SELECT setting FROM pg_settings WHERE name = 'data_directory'")
    with open(os.path.join(cur.fetchone()[0], "postmaster.pid")) as f:
        postmaster = int(f.readline())

    def groups():   # this cluster's processes only; daemons = children of the bench process
        bench = pids_of(lambda c: " bench " in c and a.bench_match in c)
        every = [int(d) for d in os.listdir("/proc") if d.isdigit()]
        return {"daemon": [p for p in every if ppid_of(p) in bench],
                "pg_all": [postmaster] + [p for p in every if ppid_of(p) == postmaster],
                "qdrant": [a.qdrant_pid] if a.qdrant_pid else [],
                "bench": bench}

    t0 = time.time()
    prev_seq, prev_bl = seqval(), backlog()
    g = groups()
    prev_cpu = {k: cpu_of(v) for k, v in g.items()}
    minute, trim_below = 0, 0
    while time.time() - t0 < a.minutes * 60:
        backlog_max, oldest_max = 0, 0.0
        end = t0 + (minute + 1) * 60
        while time.time() < end:
            cur.execute(f"SELECT count(*), coalesce(extract(epoch FROM clock_timestamp() - min(created_at)) * 1000, 0) "
                        f"FROM {q}.sync_outbox")
            n, age = cur.fetchone()
            backlog_max, oldest_max = max(backlog_max, n), max(oldest_max, float(age))
            time.sleep(max(0.0, min(a.fast, end - time.time())))
        minute += 1
        s, bl = seqval(), backlog()
        k = (s - prev_seq) - (bl - prev_bl)
        g = groups()
        cpu = {kk: cpu_of(v) for kk, v in g.items()}
        ev = max(1, k)
        us = {kk: (cpu[kk] - prev_cpu.get(kk, 0)) * 1e6 / ev for kk in cpu}
        cur.execute(
            "SELECT pg_total_relation_size(c.oid) / 1024, pg_relation_size(c.oid) / 1024, "
            "pg_indexes_size(c.oid) / 1024, s.n_live_tup, s.n_dead_tup, s.autovacuum_count "
            "FROM pg_class c JOIN pg_stat_user_tables s ON s.relid = c.oid "
            "WHERE s.schemaname = %s AND c.relname = %s", (schema, "sync_outbox"))
        ot, oh, oi, ol, od, oa = cur.fetchone()
        cur.execute(
            "SELECT pg_total_relation_size(c.oid) / 1024, s.n_live_tup, s.n_dead_tup, s.autovacuum_count "
            "FROM pg_class c JOIN pg_stat_user_tables s ON s.relid = c.oid "
            "WHERE s.schemaname = %s AND c.relname = %s", (schema, "sync_outbox_lease"))
        lt, ll, ld, la = cur.fetchone()
        # the outbox's TOAST table: its own size, tuples and autovacuum runs (pg_stat_all_tables)
        cur.execute(
            "SELECT pg_relation_size(t.oid) / 1024, pg_indexes_size(t.oid) / 1024, s.n_live_tup, s.n_dead_tup, "
            "s.autovacuum_count FROM pg_class c JOIN pg_class t ON t.oid = c.reltoastrelid "
            "JOIN pg_stat_all_tables s ON s.relid = t.oid "
            "WHERE c.relnamespace = %s::regnamespace AND c.relname = 'sync_outbox'", (q,))
        tt, ti, tl, tdd, tav = cur.fetchone()
        cur.execute(f"SELECT (SELECT count(*) FROM {q}.sync_outbox_lease), "
                    f"pg_total_relation_size('{q}.sync_outbox_dead') / 1024, "
                    "(SELECT coalesce(extract(epoch FROM max(clock_timestamp() - xact_start)), 0) "
                    " FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    " AND xact_start IS NOT NULL)")
        lrows, deadt, oldx = cur.fetchone()
        if a.control:
            try:
                http(a.control + "/control/log", "DELETE")
            except OSError:
                pass
        if a.trim_url and trim_below:
            body = json.dumps({"filter": {"must": [{"key": "seq", "range": {"lt": trim_below}}]}}).encode()
            req = urllib.request.Request(f"{a.trim_url}/collections/{schema}_vec/points/delete?wait=false",
                                         data=body, method="POST", headers={"content-type": "application/json"})
            try:
                urllib.request.urlopen(req, timeout=30).read()
            except OSError as e:
                print(f"# trim failed: {e}", flush=True)
        trim_below = prev_seq
        row = (minute, time.strftime("%H:%M:%S", time.gmtime()), f"{os.getloadavg()[0]:.1f}",
               s - prev_seq, k, bl, backlog_max, f"{oldest_max:.0f}", ot, oh, oi, lt, ol, od, ll, ld, oa, la,
               f"{us['daemon']:.0f}", f"{us['pg_all']:.0f}", f"{us['qdrant']:.0f}", f"{us['bench']:.0f}",
               f"{rss_mib(a.qdrant_pid):.0f}" if a.qdrant_pid else "", tt, ti, tl, tdd, tav, lrows, deadt,
               f"{float(oldx):.1f}")
        print(" ".join(str(x) for x in row), flush=True)
        prev_seq, prev_bl, prev_cpu = s, bl, cpu


if __name__ == "__main__":
    main()

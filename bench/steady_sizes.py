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

One line per minute (fixed columns, header first). Read-only on PostgreSQL, except with --probe-ms.

--probe-ms N: per-minute commit -> acknowledged latency (the harness reports its percentiles only
at the end of a run). Every N ms a probe thread commits one row of its own into the bench's
source table (a 1-row transaction, same INSERT shape as the writers', ids and seq from the bench's
sequences, so they never collide) and polls the sink the bench's daemons write to (url and
collection read from their generated config) every 2 ms until the point carries the probe's seq:
latency = time that answer arrived - COMMIT returned, as the harness measures it. Columns
probe_n/p50/p99/max: the probes acknowledged in that minute. events_pm excludes the probes.
--rel-out FILE: every minute, one CSV line per table of the bench's schema and per TOAST table
(sizes, live/dead tuples, vacuum counts), for tables the fixed columns do not show.
"""
import argparse
import http.client
import json
import os
import random
import sys
import threading
import time
import urllib.parse
import urllib.request

import psycopg

HZ = os.sysconf("SC_CLK_TCK")


def wait_bench_schema(cur):
    """Wait for the bench's newest scratch schema with its outbox; return its name (also used by
    steady_trace.py)."""
    while True:
        cur.execute("SELECT n.nspname FROM pg_namespace n JOIN pg_class c ON c.relnamespace = n.oid "
                    "WHERE n.nspname LIKE 'p2q\\_bench\\_%' AND c.relname = 'sync_outbox' "
                    "ORDER BY n.oid DESC LIMIT 1")
        r = cur.fetchone()
        if r:
            time.sleep(3)   # the bench creates its tables and sequences right after the schema
            return r[0]
        time.sleep(0.5)


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


def http_json(url, method="GET"):
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


class Prober(threading.Thread):
    """One probe row every `every` s; each one's COMMIT -> visible-in-the-sink latency (ms)."""

    def __init__(self, schema, url, coll, dim, every):
        super().__init__(daemon=True)
        self.q, self.coll, self.dim, self.every = f'"{schema}"', coll, dim, every
        u = urllib.parse.urlsplit(url)
        self.host, self.port = u.hostname, u.port or 80
        self.lock = threading.Lock()
        self.done = []          # latencies (ms) acknowledged since the last take()
        self.count = 0          # probes committed (they advance the bench's seq)
        self.errors = 0
        self.stop = False

    def take(self):
        with self.lock:
            d, self.done = self.done, []
            return d, self.count, self.errors

    def retrieve(self, h, ids):
        body = json.dumps({"ids": ids, "with_payload": True, "with_vector": False})
        h.request("POST", f"/collections/{self.coll}/points", body, {"Content-Type": "application/json"})
        r = h.getresponse()
        data = r.read()
        if r.status != 200:
            raise OSError(f"retrieve: HTTP {r.status}")
        return {p["id"]: (p.get("payload") or {}).get("seq", -1) for p in json.loads(data)["result"]}

    def run(self):
        conn = psycopg.connect(application_name="p2q_steady_probe")
        cur = conn.cursor()
        h = http.client.HTTPConnection(self.host, self.port, timeout=10)
        pending = {}            # id -> (seq, commit time)
        nxt = time.monotonic()
        ins = (f"INSERT INTO {self.q}.items (id, seq, pad, emb) VALUES (nextval('{self.q}.ids'), "
               f"nextval('{self.q}.ver'), 'probe', %s::real[]) RETURNING id, seq")
        while not self.stop:
            now = time.monotonic()
            if now >= nxt:
                nxt += self.every
                if nxt < now:
                    nxt = now + self.every
                vec = "{" + ",".join(f"{random.uniform(-1, 1):.6f}" for _ in range(self.dim)) + "}"
                try:
                    cur.execute(ins, (vec,))
                    i, sq = cur.fetchone()
                    conn.commit()
                    pending[i] = (sq, time.monotonic())
                    with self.lock:
                        self.count += 1
                except psycopg.Error:
                    conn.rollback()
                    with self.lock:
                        self.errors += 1
            if pending:
                try:
                    got = self.retrieve(h, list(pending)[:256])
                except (OSError, http.client.HTTPException, ValueError, KeyError):
                    h.close()
                    h = http.client.HTTPConnection(self.host, self.port, timeout=10)
                    with self.lock:
                        self.errors += 1
                    got = {}
                t = time.monotonic()
                for i, sq in got.items():
                    if i in pending and sq is not None and sq >= pending[i][0]:
                        lat = (t - pending.pop(i)[1]) * 1000
                        with self.lock:
                            self.done.append(lat)
            time.sleep(0.002 if pending else max(0.0, min(0.002, nxt - time.monotonic())))


def pct(v, p):
    if not v:
        return ""
    v = sorted(v)
    return f"{v[min(len(v) - 1, int(p * len(v)))]:.1f}"


def bench_ini(pids):
    """url, collection and dimension from the generated config of one of the bench's daemons"""
    for p in pids:
        try:
            with open(f"/proc/{p}/cmdline", "rb") as f:
                args = f.read().split(b"\0")
        except OSError:
            continue
        if b"-c" in args:
            path = args[args.index(b"-c") + 1].decode()
            kv, sec = {}, ""
            with open(path) as f:
                for ln in f:
                    ln = ln.strip()
                    if ln.startswith("["):
                        sec = ln
                    elif "=" in ln:
                        k, v = (x.strip() for x in ln.split("=", 1))
                        kv.setdefault((sec, k), v)
            return kv[("[qdrant]", "url")], kv[("[rule.bench]", "collection")], int(kv[("[rule.bench]", "dimension")])
    return None


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
    ap.add_argument("--probe-ms", type=float, default=0, help="latency probe interval (0: no probes)")
    ap.add_argument("--rel-out", help="CSV file: every table of the bench schema (and TOAST) each minute")
    a = ap.parse_args()
    conn = psycopg.connect(application_name="p2q_steady_sizes", autocommit=True)
    cur = conn.cursor()
    schema = wait_bench_schema(cur)
    q = f'"{schema}"'
    print(f"# schema {schema}", flush=True)
    cols = ("min", "utc", "load1", "events_pm", "acked_pm", "backlog_end", "backlog_max", "oldest_max_ms",
            "outbox_total_kib", "outbox_heap_kib", "outbox_idx_kib", "lease_total_kib",
            "outbox_live", "outbox_dead", "lease_live", "lease_dead", "outbox_autovac", "lease_autovac",
            "cpu_us_ev_daemon", "cpu_us_ev_pg_all", "cpu_us_ev_qdrant", "cpu_us_ev_bench",
            "qdrant_rss_mib", "toast_kib", "toast_idx_kib", "toast_live", "toast_dead", "toast_autovac",
            "lease_rows", "dead_total_kib", "oldest_xact_s", "mark_kib", "probe_n", "probe_p50_ms", "probe_p99_ms",
            "probe_max_ms", "daemon_rss_mib")
    print(" ".join(cols), flush=True)

    def seqval():
        cur.execute(f"SELECT last_value FROM {q}.ver")
        return cur.fetchone()[0]

    def backlog():
        cur.execute(f"SELECT count(*) FROM {q}.sync_outbox")
        return cur.fetchone()[0]

    # events acknowledged in a minute = commits - growth of the backlog (exact; n_tup_del of a busy
    # backend reaches pg_stat_user_tables only every ~60 s, which aliases with a 1-minute period).
    # The bench's seq sequence counts changes (rows, whatever --rows-per-txn), the probes' included.

    cur.execute("SELECT setting FROM pg_settings WHERE name = 'data_directory'")
    with open(os.path.join(cur.fetchone()[0], "postmaster.pid")) as f:
        postmaster = int(f.readline())

    def groups():   # this cluster's processes only; daemons = `run` children of the bench process
        match = pids_of(lambda c: " bench " in c and a.bench_match in c)
        bench = [p for p in match if ppid_of(p) not in match]
        sink = [p for p in match if ppid_of(p) in bench]   # --sink null: a fork of the bench
        every = [int(d) for d in os.listdir("/proc") if d.isdigit()]
        return {"daemon": [p for p in every if ppid_of(p) in bench and p not in sink],
                "pg_all": [postmaster] + [p for p in every if ppid_of(p) == postmaster],
                "qdrant": [a.qdrant_pid] if a.qdrant_pid else sink,
                "bench": bench}

    prober = None
    if a.probe_ms > 0:
        ini, waited = None, 0.0
        while ini is None:   # the daemons start after the bench's setup
            ini = bench_ini(groups()["daemon"])
            if ini is None:
                time.sleep(0.5)
                waited += 0.5
                if waited == 30:   # said once: a wrong --bench-match waits here for ever
                    print(f"# no daemon of a bench whose command line holds {a.bench_match!r} after 30 s; "
                          f"--bench-match must be in it (pass bench -c the same path)", file=sys.stderr, flush=True)
        print(f"# probes every {a.probe_ms:g} ms: sink {ini[0]}, collection {ini[1]}, dim {ini[2]}", flush=True)
        prober = Prober(schema, ini[0], ini[1], ini[2], a.probe_ms / 1000)
        prober.start()
    rel = open(a.rel_out, "a") if a.rel_out else None
    if rel:
        print("min,utc,relname,total_kib,heap_kib,idx_kib,live,dead,autovacuum_count,vacuum_count,"
              "autoanalyze_count,last_autovacuum", file=rel, flush=True)

    t0 = time.time()
    prev_seq, prev_bl = seqval(), backlog()
    prev_probes = 0
    g = groups()
    prev_cpu = {k: cpu_of(v) for k, v in g.items()}
    minute, trim_below = 0, 0
    while time.time() - t0 < a.minutes * 60:
        backlog_max, oldest_max = 0, 0.0
        end = t0 + (minute + 1) * 60
        while time.time() < end:
            # cheap every --fast s (index ends, not a count(*) over a heap of up to a GB): the oldest
            # pending event and max(id) - min(id) + 1, an upper bound of the backlog (ids are drawn
            # in insertion order; acknowledged events inside the range are counted too)
            cur.execute(f"SELECT o.id, extract(epoch FROM clock_timestamp() - o.created_at) * 1000, "
                        f"(SELECT max(id) FROM {q}.sync_outbox) FROM {q}.sync_outbox o ORDER BY o.id LIMIT 1")
            r = cur.fetchone()
            n, age = (r[2] - r[0] + 1, r[1]) if r else (0, 0)
            backlog_max, oldest_max = max(backlog_max, n), max(oldest_max, float(age))
            time.sleep(max(0.0, min(a.fast, end - time.time())))
        minute += 1
        s, bl = seqval(), backlog()
        lats, nprobes, _ = prober.take() if prober else ([], 0, 0)
        ev_w = (s - prev_seq) - (nprobes - prev_probes)   # the writers' events (seq counts rows)
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
        # (no lease table since migration 015: its columns read 0)
        lt, ll, ld, la = cur.fetchone() or (0, 0, 0, 0)
        # the outbox's TOAST table: its own size, tuples and autovacuum runs (pg_stat_all_tables)
        cur.execute(
            "SELECT pg_relation_size(t.oid) / 1024, pg_indexes_size(t.oid) / 1024, s.n_live_tup, s.n_dead_tup, "
            "s.autovacuum_count FROM pg_class c JOIN pg_class t ON t.oid = c.reltoastrelid "
            "JOIN pg_stat_all_tables s ON s.relid = t.oid "
            "WHERE c.relnamespace = %s::regnamespace AND c.relname = 'sync_outbox'", (q,))
        tt, ti, tl, tdd, tav = cur.fetchone()
        lease = f"{q}.sync_outbox_lease"
        has_lease = cur.execute("SELECT to_regclass(%s) IS NOT NULL", (lease,)).fetchone()[0]
        cur.execute(f"SELECT {'(SELECT count(*) FROM ' + lease + ')' if has_lease else '0'}, "
                    f"pg_total_relation_size('{q}.sync_outbox_dead') / 1024, "
                    "(SELECT coalesce(extract(epoch FROM max(clock_timestamp() - xact_start)), 0) "
                    " FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    " AND xact_start IS NOT NULL)")
        lrows, deadt, oldx = cur.fetchone()
        cur.execute(f"SELECT coalesce(pg_total_relation_size(to_regclass('{q}.sync_outbox_mark')), 0) / 1024")
        markk = cur.fetchone()[0]
        if rel:
            cur.execute(
                "SELECT coalesce((SELECT o.relname || '.toast' FROM pg_class o WHERE o.reltoastrelid = c.oid), "
                "c.relname), pg_total_relation_size(c.oid) / 1024, pg_relation_size(c.oid) / 1024, "
                "pg_indexes_size(c.oid) / 1024, s.n_live_tup, s.n_dead_tup, s.autovacuum_count, s.vacuum_count, "
                "s.autoanalyze_count, coalesce(to_char(s.last_autovacuum AT TIME ZONE 'UTC', 'HH24:MI:SS'), '') "
                "FROM pg_class c JOIN pg_stat_all_tables s ON s.relid = c.oid "
                "WHERE c.relnamespace = %s::regnamespace OR c.oid IN (SELECT reltoastrelid FROM pg_class "
                "WHERE relnamespace = %s::regnamespace) ORDER BY 1", (q, q))
            ts = time.strftime("%H:%M:%S", time.gmtime())
            for r in cur.fetchall():
                print(",".join(str(x) for x in (minute, ts) + tuple(r)), file=rel, flush=True)
        drss = sum(rss_mib(p) for p in g["daemon"])
        if a.control:
            try:
                http_json(a.control + "/control/log", "DELETE")
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
               ev_w, k, bl, backlog_max, f"{oldest_max:.0f}", ot, oh, oi, lt, ol, od, ll, ld, oa, la,
               f"{us['daemon']:.0f}", f"{us['pg_all']:.0f}", f"{us['qdrant']:.0f}", f"{us['bench']:.0f}",
               f"{rss_mib(a.qdrant_pid):.0f}" if a.qdrant_pid else "", tt, ti, tl, tdd, tav, lrows, deadt,
               f"{float(oldx):.1f}", markk, len(lats), pct(lats, 0.5), pct(lats, 0.99),
               f"{max(lats):.1f}" if lats else "", f"{drss:.0f}")
        print(" ".join(str(x) for x in row), flush=True)
        prev_seq, prev_bl, prev_cpu, prev_probes = s, bl, cpu, nprobes


if __name__ == "__main__":
    main()

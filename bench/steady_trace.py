#!/usr/bin/env python3
"""Per-second trace of a running `pg2qdrant bench --workload steady` (issue 11): where the
acknowledgements stall. Every --every s, one line: the ack front (oldest pending id; with inserts
in id order and FIFO claims its advance is the events acknowledged), the newest id, the oldest
pending age, what autovacuum is doing to the outbox tables (pg_stat_progress_vacuum phase and
blocks), and the wait events of the bench's daemon and writer backends. PostgreSQL env as psql.

    python3 bench/steady_trace.py --seconds 480 > trace.txt
"""
import argparse
import time

import psycopg

from steady_sizes import wait_bench_schema


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=480)
    ap.add_argument("--every", type=float, default=1.0)
    a = ap.parse_args()
    conn = psycopg.connect(application_name="p2q_steady_trace", autocommit=True)
    cur = conn.cursor()
    schema = wait_bench_schema(cur)
    q = f'"{schema}"'
    print(f"# schema {schema}")
    print("t utc front newest pending_ub acked_s oldest_ms vacuum daemon_waits writer_waits", flush=True)
    t0 = time.monotonic()
    prev = None
    while time.monotonic() - t0 < a.seconds:
        tick = time.monotonic()
        cur.execute(f"SELECT (SELECT id FROM {q}.sync_outbox ORDER BY id LIMIT 1), "
                    f"(SELECT max(id) FROM {q}.sync_outbox), "
                    f"(SELECT extract(epoch FROM clock_timestamp() - created_at) * 1000 FROM {q}.sync_outbox "
                    "ORDER BY id LIMIT 1)")
        front, newest, age = cur.fetchone()
        cur.execute("SELECT string_agg(c.relname || ':' || replace(p.phase, ' ', '_') || ':' || p.heap_blks_scanned "
                    "|| '/' || p.heap_blks_total, ',') FROM pg_stat_progress_vacuum p JOIN pg_class c ON c.oid = p.relid "
                    "WHERE c.relnamespace = %s::regnamespace", (q,))
        vac = cur.fetchone()[0] or "-"
        cur.execute("SELECT application_name, state, coalesce(wait_event_type || '/' || wait_event, 'cpu') FROM pg_stat_activity "
                    "WHERE datname = current_database() AND (application_name LIKE %s OR application_name = 'p2q_bench_writer')",
                    (schema + "%",))
        dw, ww = [], []
        for app, st, we in cur.fetchall():
            if st == "idle":
                continue
            (ww if app == "p2q_bench_writer" else dw).append(we)
        acked = "" if prev is None or front is None or prev is None else (front - prev) / a.every
        prev = front if front is not None else prev
        print(f"{tick - t0:.0f} {time.strftime('%H:%M:%S', time.gmtime())} {front} {newest} "
              f"{(newest - front + 1) if front else 0} {acked if acked == '' else f'{acked:.0f}'} "
              f"{(age or 0):.0f} {vac} {','.join(dw) or '-'} {','.join(ww) or '-'}", flush=True)
        time.sleep(max(0.0, a.every - (time.monotonic() - tick)))


if __name__ == "__main__":
    main()

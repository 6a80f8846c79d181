#!/usr/bin/env python3
"""CPU of each PostgreSQL backend of a `pg2qdrant bench` run, per backend, over a window
(issue 11: what the daemon's PostgreSQL figure is made of; bench/issue11/session12-lead.md).

    python3 bench/backend_cpu.py START END &     # seconds after now: the window sampled
    pg2qdrant -c null.ini bench --sink null --workload steady --rate 200 --duration 45s

Run beside the bench, on the PostgreSQL host, with libpq's environment (PGHOST, ...) reaching the
server the bench uses (superuser, or pg_read_all_stats: other roles' queries read as hidden).
Backends are the bench daemon's (application_name p2q_bench_*_d) and PostgreSQL's own processes;
each line gives the backend's share of a core over the window ((utime + stime) from /proc) and
the start of its last query, which names what the backend does.
"""
import os
import subprocess
import sys
import time

TCK = os.sysconf("SC_CLK_TCK")
Q = ("SELECT pid, backend_type, left(regexp_replace(query, '\\s+', ' ', 'g'), 90) FROM pg_stat_activity"
     " WHERE application_name LIKE 'p2q_bench_%_d' OR backend_type <> 'client backend'")


def cpu(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TCK
    except (OSError, IndexError, ValueError):
        return None


def snap():
    out = subprocess.run(["psql", "-d", "postgres", "-AtF", "\t", "-c", Q], capture_output=True, text=True,
                         check=True).stdout
    d = {}
    for line in out.splitlines():
        pid, kind, query = line.split("\t")
        d[int(pid)] = (kind, query, cpu(int(pid)))
    return d


def main():
    start, end = float(sys.argv[1]), float(sys.argv[2])
    time.sleep(start)
    a, ta = snap(), time.time()
    time.sleep(end - start)
    b, tb = snap(), time.time()
    total = 0.0
    for pid, (kind, query, cb) in sorted(b.items()):
        ca = a.get(pid, (None, None, None))[2]
        if ca is None or cb is None:
            continue
        total += cb - ca
        print(f"{pid:7d} {kind[:18]:18s} {100 * (cb - ca) / (tb - ta):6.2f}%  {query}")
    print(f"total {100 * total / (tb - ta):.2f}% of a core over {tb - ta:.1f} s")


if __name__ == "__main__":
    main()

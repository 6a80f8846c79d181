#!/bin/bash
# What a held xmin horizon costs the daemon's statements (issue 11; bench/issue11/session8-lead.md):
# `pg2qdrant bench --sink null --workload steady` at 2,000 events/s for 150 s, a REPEATABLE READ
# snapshot held from t=30 s to t=120 s, and pg_stat_statements (track = all) reset at 5 s and 30 s
# and printed at 29 s (OUT.pre: before the hold) and 118 s (OUT.during), top 25 statements by
# buffers. Divide a statement's buffers by the events claimed in the window (the claim UPDATE's
# rows) for buffers per event. Prints the run's latency line. Nothing is asserted.
#
#   bench/held_snapshot_run.sh BIN OUT
#
# Needs PostgreSQL from libpq's environment with shared_preload_libraries = 'pg_stat_statements',
# pg_stat_statements.track = all, and CREATE EXTENSION pg_stat_statements in database postgres.
set -eu
bin=$1 out=$2
# the writer its recorded figures were taken with (session 14 made prepared statements the default);
# a build older than `bench --writer` has only that writer and refuses the option
writer=
if "$bin" bench --help 2>&1 | grep -q -- '--writer'; then writer="--writer unprepared-text"; fi
ini=$(mktemp --suffix=.ini)
trap 'rm -f "$ini"' EXIT
printf '[qdrant]\nurl = http://127.0.0.1:1\ntimeout = 10s\n[daemon]\nretry_min = 50ms\n' > "$ini"
q="SELECT calls, shared_blks_hit, shared_blks_read, round(total_exec_time::numeric, 1) AS ms, rows,
      regexp_replace(left(query, 90), '\s+', ' ', 'g') AS q
     FROM pg_stat_statements WHERE calls > 0 ORDER BY shared_blks_hit + shared_blks_read DESC LIMIT 25"
"$bin" -c "$ini" bench --sink null --workload steady --rate 200 --rows-per-txn 10 --writers 2 $writer \
  --duration 150s --out "$out" > "$out.log" 2>&1 &
sleep 5; psql -qAt -d postgres -c "SELECT pg_stat_statements_reset()" > /dev/null
sleep 24; psql -d postgres -c "$q" > "$out.pre"
psql -qAt -d postgres -c "SELECT pg_stat_statements_reset()" > /dev/null
psql -q -d postgres -c "BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM pg_class; SELECT pg_sleep(90); COMMIT;" > /dev/null &
sleep 88; psql -d postgres -c "$q" > "$out.during"
wait
echo "load $(cut -d' ' -f1-3 /proc/loadavg)"
grep -h "commit->Qdrant" "$out.log" || tail -3 "$out.log"

#!/usr/bin/env bash
# bench/steady_claims_ab.sh — two builds of pg2qdrant A/B, interleaved (the order alternates every
# pair), on `bench --workload steady`: per run the claims the daemon made and how many found
# nothing, from pg_stat_statements (session 12, bench/issue11/session12-em12.md), with the CPU and
# latency columns of the bench's runs.csv.
#
#   BASE=/path/old/pg2qdrant MINE=/path/new/pg2qdrant INI=null.ini [PAIRS=5] [DUR=30s] [RATE=200] \
#     [OUT=DIR] bench/steady_claims_ab.sh
#
# INI: a config whose [postgres] is the database `bench` uses (e.g. [qdrant] url =
# http://127.0.0.1:1 with --sink null); libpq's environment (PGHOST, ...) must reach the same
# server, with pg_stat_statements preloaded, `pg_stat_statements.track = all` (the claim's inner
# statements) and the extension created in that database. A claim is one call of
# sync_outbox_claim's candidates' statement (`WITH cand AS (... SKIP LOCKED)`); one that found
# something goes on to exactly one of: the one-candidate path's `UPDATE ... SET attempts`, the
# batch's `WITH cl AS (UPDATE ...)` or the set path's `WITH g AS (...)` (since migration 015; before
# it, a lease upsert, which this no longer counts: every claim of an older build reads as empty).
# Counting only the first path (session 11) counts every claim of two or more events as empty.
# `plain`: the daemon's plain ack+claim statement (`WITH ack AS (…)`, src/outbox.c, session 14),
# which pg_stat_statements cannot split into empty and not; `claims` and `empty` count the
# function's claims only (its 'again' answers come back as function claims).
set -euo pipefail
: "${BASE:?the base build}" "${MINE:?the build measured}" "${INI:?a config}"
PAIRS=${PAIRS:-5} DUR=${DUR:-30s} RATE=${RATE:-200} OUT=${OUT:-p2q-claims-ab-$(date +%s)}
mkdir -p "$OUT"
for i in $(seq 1 "$PAIRS"); do
  if [ $((i % 2)) = 1 ]; then order="base mine"; else order="mine base"; fi
  for b in $order; do
    if [ "$b" = base ]; then bin=$BASE; else bin=$MINE; fi
    load=$(cut -d' ' -f1 /proc/loadavg)
    # the writer the recorded figures were taken with (session 14 made prepared statements the
    # default); a build older than `bench --writer` has only that writer and refuses the option
    writer=
    if "$bin" bench --help 2>&1 | grep -q -- '--writer'; then writer="--writer unprepared-text"; fi
    "$bin" -c "$INI" bench --sink null --workload steady --rate "$RATE" --duration "$DUR" $writer \
      --out "$OUT/$b-$i" > "$OUT/$b-$i.log" 2>&1
    scratch=$(grep -o 'scratch p2q_bench_[0-9a-f]*' "$OUT/$b-$i.log" | cut -d' ' -f2)
    counts=$(psql -qAtF' ' -c "SELECT
        coalesce(sum(calls) FILTER (WHERE query LIKE 'WITH cand AS (%SKIP LOCKED%'), 0),
        coalesce(sum(calls) FILTER (WHERE query LIKE 'UPDATE %sync_outbox o%SET attempts%'
                                       OR query LIKE 'WITH cl AS (%' OR query LIKE 'WITH g AS (%'), 0),
        coalesce(sum(calls) FILTER (WHERE query LIKE 'WITH ack AS (%'), 0)
      FROM pg_stat_statements WHERE query LIKE '%$scratch%'")
    python3 - "$b" "$i" "$load" "$counts" "$OUT/$b-$i/runs.csv" <<'PY'
import csv, sys
b, i, load, counts, path = sys.argv[1:]
row = list(csv.DictReader(open(path)))[-1]
claims, found, plain = map(int, counts.split())
ev = int(row["events"])
print(f"{b} {i} load={load} events={ev} claims={claims} empty={claims - found} "
      f"({100 * (claims - found) / max(claims, 1):.1f} %) plain={plain} claims/event={(claims + plain) / max(ev, 1):.3f} "
      f"cpu_us_pg_daemon={row['cpu_us_pg_daemon']} cpu_us_pg2qdrant={row['cpu_us_pg2qdrant']} "
      f"p50_ms={row['p50_ms']} p99_ms={row['p99_ms']} ok={row['ok']}", flush=True)
PY
  done
done

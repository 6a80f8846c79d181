#!/bin/bash
# Issue 11's goals measured again in one sitting (session 17): every figure of
# bench/issue11/session17-lead.md comes from this script, run on a quiet machine.
#
#   bench/issue11/session17-goals.sh BIN CONFIG OUT
#
# BIN: a pg2qdrant build (copy it somewhere a rebuild cannot touch); CONFIG: a config whose
# [postgres] conninfo points at a scratch cluster (scripts/pg-tmp) and whose [qdrant] url is any
# unused address (the benches use --sink null):
#
#   [postgres]
#   conninfo = host=/tmp/pg port=5432 user=postgres dbname=p2q
#   [qdrant]
#   url = http://127.0.0.1:1
#   timeout = 10s
#   [daemon]
#   retry_min = 50ms
#
# PostgreSQL for the Python benches comes from libpq's environment (PGHOST, PGPORT, PGUSER,
# PGDATABASE: the same cluster). Wall-clock runs go one after another, never beside another
# benchmark; the instruction counts (callgrind) are load-proof and are not in here:
#
#   P2Q_BIN=BIN python3 bench/claim_instructions.py --batch 256 --events 2560 --mark-every 20
#   P2Q_BIN=BIN python3 bench/claim_instructions.py --mark-every 20
#   P2Q_BIN=BIN python3 bench/writer_components_bench.py --instructions --rows 1000 --mode multi notrig ship
#   P2Q_BIN=BIN python3 bench/writer_components_bench.py --instructions --rows 1000 --mode stmt notrig ship
#
# Takes ~40 minutes. Each step's output goes to OUT/<step>.log (and the bench's runs.csv under
# OUT/<step>/); OUT/steps.log has each step's start time and load average.
set -u
B=${1:?BIN}; I=${2:?CONFIG}; R=${3:?OUT}
cd "$(dirname "$0")/../.."
mkdir -p "$R"
ld() { echo "$(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg) $*" | tee -a "$R/steps.log"; }
bench() { local name=$1; shift; ld "$name"; "$B" -c "$I" bench --sink null --out "$R/$name" "$@" > "$R/$name.log" 2>&1; }

# drain: 100k and 1M alternated, each paying its own outbox vacuum
for r in 1 2; do for n in 100000 1000000; do
  bench "d$n-$r" --workload drain --rows $n --wait-vacuum 300s
done; done
# 200 commits/s with the shipped default (idle_linger_ms = 0) and with 10 ms, alternated
for r in 1 2 3; do for v in 0 10; do
  bench "s200-i$v-$r" --workload steady --rate 200 --duration 30s --sweep idle_linger_ms=$v
done; done
# 2,000 commits/s, both prepared writers, alternated
for r in 1 2 3; do for w in prepared-text prepared-binary; do
  bench "s2000-$w-$r" --workload steady --rate 2000 --writers 2 --duration 20s --writer $w
done; done
ld idle; python3 bench/idle_cost_bench.py --seconds 60 --rounds 2 --bin "$B" > "$R/idle.log" 2>&1
ld model256; python3 bench/outbox_model_bench.py --events 30000 --rounds 3 --models current,nolease,naive > "$R/model256.log" 2>&1
ld model1; python3 bench/outbox_model_bench.py --events 3000 --batch 1 --rounds 3 --models current,naive > "$R/model1.log" 2>&1
ld writer; P2Q_BIN="$B" python3 bench/writer_overhead_bench.py --rows 3000 --rounds 5 > "$R/writer.log" 2>&1
# what reading a 384-float real[] out costs PostgreSQL, binary (what the claim sends) and text
ld array_send
{
  echo "DROP TABLE IF EXISTS s17_vt;"
  echo "CREATE TABLE s17_vt AS SELECT i, (SELECT array_agg((random()*2-1)::real) FROM generate_series(1,384) g WHERE i > -g) v FROM generate_series(1,20000) i;"
  echo "ALTER TABLE s17_vt ALTER v SET STORAGE EXTERNAL;"
  echo "VACUUM ANALYZE s17_vt;"
  echo "SET max_parallel_workers_per_gather = 0;"
  echo "\\timing on"
  for r in 1 2 3 4 5; do
    echo "SELECT 'scan', sum(pg_column_size(v)) FROM s17_vt;"
    echo "SELECT 'send', sum(length(array_send(v))) FROM s17_vt;"
    echo "SELECT 'text', sum(length(v::text)) FROM s17_vt;"
  done
  echo "DROP TABLE s17_vt;"
} | psql -q -X -v ON_ERROR_STOP=1 > "$R/array_send.log" 2>&1
ld done

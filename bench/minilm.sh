#!/usr/bin/env bash
# minilm.sh — C all-MiniLM-L6-v2 vs sentence-transformers (PyTorch CPU) vs ONNX Runtime fp32,
# same texts, batch sizes (1/8/32/128), lengths (~16 / ~128 tokens) and thread counts (1, 2).
# The sweeps alternate (C, Python, C, Python, …) for --rounds rounds so background load hits
# all implementations alike; the table shows the median over rounds of each run's median.
# Usage: bench/minilm.sh [--rounds N] [--quick] [--no-python] [--e2e]
# --e2e: also bench/minilm_e2e.py — `pg2qdrant embed` (whole process) vs sentence-transformers vs
#        ONNX Runtime on one mixed text set, wall-clock and per CPU-second, with each one's kernel.
# Run it with no OPENBLAS_CORETYPE set to measure what a new user gets.
# Needs: cmake + the C deps; Python deps are installed into .cache/venv on first use
# (torch, sentence-transformers, onnxruntime, onnx, onnxscript — large).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
rounds=3 quick="" python=1 e2e=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --rounds) rounds="$2"; shift 2 ;;
    --quick) quick="--quick"; shift ;;
    --no-python) python=0; shift ;;
    --e2e) e2e=1; shift ;;
    *) echo "usage: $0 [--rounds N] [--quick] [--no-python] [--e2e]" >&2; exit 2 ;;
  esac
done
model="${P2Q_MODEL_DIR:-$here/models/all-MiniLM-L6-v2}"
build="${P2Q_BENCH_BUILD:-$here/build-bench}"
venv="${P2Q_VENV:-$here/.cache/venv}"
"$here/scripts/fetch-model" "$model" >&2
cmake -S "$here" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j2 --target bench_minilm pg2qdrant >/dev/null
if [[ $python == 1 ]]; then
  [[ -x "$venv/bin/python" ]] || python3 -m venv "$venv"
  "$venv/bin/python" -c "import sentence_transformers, torch, onnxruntime, onnx" 2>/dev/null ||
    "$venv/bin/pip" install --quiet torch sentence-transformers onnxruntime onnx onnxscript
fi
log="$(mktemp /tmp/minilm-bench.XXXXXX)"
echo "raw results: $log" >&2
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$log"
for ((r = 1; r <= rounds; r++)); do
  echo "round $r/$rounds: C" >&2
  "$build/bench_minilm" --model "$model" --reps 3 $quick 2>/dev/null | sed "s/^RESULT /RESULT round=$r /" >>"$log"
  if [[ $python == 1 ]]; then
    echo "round $r/$rounds: sentence-transformers + ONNX Runtime" >&2
    "$venv/bin/python" "$here/bench/minilm_reference.py" --model "$model" --reps 3 $quick 2>>"$log.err" |
      sed "s/^RESULT /RESULT round=$r /" >>"$log"
  fi
done
echo "load at end: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$log"
if [[ $e2e == 1 && $python == 1 ]]; then
  "$venv/bin/python" "$here/bench/minilm_e2e.py" --bin "$build/pg2qdrant" --model "$model" --rounds "$rounds" \
    2>>"$log.err" | tee -a "$log"
fi
python3 - "$log" <<'PY'
import re, statistics, sys
rows, cpu, sgemm = {}, {}, {}
for line in open(sys.argv[1]):
    if not line.startswith("RESULT"):
        continue
    kv = dict(re.findall(r"(\w+)=(\S+)", line))
    if kv["kind"] == "blas":
        print("C: OpenBLAS kernel %s (detected %s, CPU %s, selected by %s)" % (kv["core"], kv["detected"], kv["cpu"], kv["selected_by"]))
        continue
    if kv["kind"] == "sgemm":
        sgemm.setdefault(int(kv["threads"]), []).append(max(float(v) for k, v in kv.items() if k.endswith("gflops")))
        continue
    impl = kv["impl"]
    key = impl if impl.startswith("c-") else "%s-%st" % (impl, kv["threads"])
    cfg = (kv["len"], int(kv["batch"]))
    rows.setdefault(cfg, {}).setdefault(key, []).append((float(kv["sent_s"]), float(kv.get("gflops", "nan"))))
    if "sent_cpu_s" in kv:
        cpu.setdefault(cfg, {}).setdefault(key, []).append(float(kv["sent_cpu_s"]))
nan = float("nan")
med = lambda xs: statistics.median(xs) if xs else nan
best = lambda *xs: max((x for x in xs if x == x), default=nan)
peak = {t: med(sgemm[t]) for t in sgemm}
for t in sorted(sgemm):
    print("sgemm ceiling, %d thread(s): %.1f GFLOP/s (median of %d rounds)" % (t, peak[t], len(sgemm[t])))
order = lambda k: (k[0] != "short", k[1])

cols = ["c-1t", "st-1t", "ort-1t", "ort-opt-1t", "c-pool2", "c-blas2", "st-2t", "ort-2t", "ort-opt-2t"]
print("\nA. wall-clock sentences/s (median over rounds). C2 = best of c-pool2/c-blas2, ORT = best of")
print("   plain/fused ONNX; sgemm% = the C run's model FLOP rate / the sgemm ceiling, same threads")
hdr = "%-6s %5s " % ("len", "batch") + " ".join("%10s" % c for c in cols) + \
      " %7s %7s %7s %7s %6s %6s" % ("C1/ST1", "C1/ORT1", "C2/ST2", "C2/ORT2", "sg%1t", "sg%2t")
print(hdr)
print("-" * len(hdr))
for cfg in sorted(rows, key=order):
    r = rows[cfg]
    v = {c: med([x[0] for x in r.get(c, [])]) for c in cols}
    g = {c: med([x[1] for x in r.get(c, [])]) for c in ("c-1t", "c-pool2", "c-blas2")}
    c2 = best(v["c-pool2"], v["c-blas2"])
    g2 = g["c-pool2"] if v["c-pool2"] >= v["c-blas2"] else g["c-blas2"]
    o1, o2 = best(v["ort-1t"], v["ort-opt-1t"]), best(v["ort-2t"], v["ort-opt-2t"])
    print("%-6s %5d " % cfg + " ".join("%10.1f" % v[c] for c in cols) +
          " %7.2f %7.2f %7.2f %7.2f %5.0f%% %5.0f%%" % (v["c-1t"] / v["st-1t"], v["c-1t"] / o1, c2 / v["st-2t"],
          c2 / o2, 100 * g["c-1t"] / peak.get(1, nan), 100 * g2 / peak.get(2, nan)))

ccols = ["c-1t", "st-1t", "ort-1t", "ort-opt-1t", "c-pool2", "st-2t", "ort-2t", "ort-opt-2t"]
print("\nB. sentences per CPU-second (process CPU time; robust to other load on the machine for the")
print("   1-thread runs; for 2 threads it also charges spinning/idle-wait CPU)")
hdr = "%-6s %5s " % ("len", "batch") + " ".join("%10s" % c for c in ccols) + " %7s %7s %7s %7s" % (
      "C1/ST1", "C1/ORT1", "C2/ST2", "C2/ORT2")
print(hdr)
print("-" * len(hdr))
for cfg in sorted(cpu, key=order):
    r = cpu[cfg]
    v = {c: med(r.get(c, [])) for c in ccols}
    o1, o2 = best(v["ort-1t"], v["ort-opt-1t"]), best(v["ort-2t"], v["ort-opt-2t"])
    print("%-6s %5d " % cfg + " ".join("%10.1f" % v[c] for c in ccols) +
          " %7.2f %7.2f %7.2f %7.2f" % (v["c-1t"] / v["st-1t"], v["c-1t"] / o1, v["c-pool2"] / v["st-2t"], v["c-pool2"] / o2))
PY

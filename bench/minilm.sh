#!/usr/bin/env bash
# minilm.sh — C all-MiniLM-L6-v2 vs sentence-transformers (PyTorch CPU) vs ONNX Runtime fp32,
# same texts, batch sizes (1/8/32/128), lengths (~16 / ~128 tokens) and thread counts (1, 2).
# The sweeps alternate (C, Python, C, Python, …) for --rounds rounds so background load hits
# all implementations alike; the table shows the median over rounds of each run's median.
# Usage: bench/minilm.sh [--rounds N] [--quick] [--no-python]
# Needs: cmake + the C deps; Python deps are installed into .cache/venv on first use
# (torch, sentence-transformers, onnxruntime, onnx, onnxscript — large).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
rounds=3 quick="" python=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    --rounds) rounds="$2"; shift 2 ;;
    --quick) quick="--quick"; shift ;;
    --no-python) python=0; shift ;;
    *) echo "usage: $0 [--rounds N] [--quick] [--no-python]" >&2; exit 2 ;;
  esac
done
model="${P2Q_MODEL_DIR:-$here/models/all-MiniLM-L6-v2}"
build="${P2Q_BENCH_BUILD:-$here/build-bench}"
venv="${P2Q_VENV:-$here/.cache/venv}"
"$here/scripts/fetch-model" "$model" >&2
cmake -S "$here" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j2 --target bench_minilm >/dev/null
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
python3 - "$log" <<'PY'
import re, statistics, sys
rows = {}
sgemm = {}
for line in open(sys.argv[1]):
    if not line.startswith("RESULT"):
        continue
    kv = dict(re.findall(r"(\w+)=(\S+)", line))
    if kv["kind"] == "sgemm":
        sgemm.setdefault(int(kv["threads"]), []).append(max(float(v) for k, v in kv.items() if k.endswith("gflops")))
        continue
    impl = kv["impl"]
    if impl.startswith("c-"):
        key = impl
    else:
        key = "%s-%st" % (impl, kv["threads"])
    rows.setdefault((kv["len"], int(kv["batch"])), {}).setdefault(key, []).append(
        (float(kv["sent_s"]), float(kv.get("gflops", "nan"))))
med = lambda xs: statistics.median(xs) if xs else float("nan")
peak = {t: med(sgemm[t]) for t in sgemm}
for t in sorted(sgemm):
    print("sgemm ceiling, %d thread(s): %.1f GFLOP/s (median of %d rounds)" % (t, peak[t], len(sgemm[t])))
cols = ["c-1t", "st-1t", "ort-1t", "ort-opt-1t", "c-pool2", "c-blas2", "st-2t", "ort-2t", "ort-opt-2t"]
print("\nsentences/s (median over rounds); C2 = best of c-pool2/c-blas2; ORT = best of plain/fused;")
print("C2 sgemm% = C2's model FLOP rate / the 2-thread sgemm ceiling")
hdr = "%-6s %5s " % ("len", "batch") + " ".join("%10s" % c for c in cols) + \
      " %8s %8s %8s %8s %9s" % ("C1/ST1", "C1/ORT1", "C2/ST2", "C2/ORT2", "C2 sgemm%")
print(hdr)
print("-" * len(hdr))
for (ln, b) in sorted(rows, key=lambda k: (k[0] != "short", k[1])):
    r = rows[(ln, b)]
    v = {c: med([x[0] for x in r.get(c, [])]) for c in cols}
    frac = {c: med([x[1] for x in r.get(c, [])]) / peak.get(2, float("nan")) for c in ("c-pool2", "c-blas2")}
    c2 = max(v["c-pool2"], v["c-blas2"])
    c2f = frac["c-pool2"] if v["c-pool2"] >= v["c-blas2"] else frac["c-blas2"]
    o1 = max(v["ort-1t"], v["ort-opt-1t"]) if v["ort-1t"] == v["ort-1t"] else float("nan")
    o2 = max(v["ort-2t"], v["ort-opt-2t"]) if v["ort-2t"] == v["ort-2t"] else float("nan")
    print("%-6s %5d " % (ln, b) + " ".join("%10.1f" % v[c] for c in cols) +
          " %8.2f %8.2f %8.2f %8.2f %8.0f%%" % (v["c-1t"] / v["st-1t"], v["c-1t"] / o1, c2 / v["st-2t"], c2 / o2, 100 * c2f))
PY

#!/usr/bin/env python3
"""End-to-end sentences/s on one 2,000-text mix: `pg2qdrant embed` (the whole process: start,
model load, tokenizer, output) vs sentence-transformers (model already loaded, batch 32) vs ONNX
Runtime (plain and BERT-fused graph, batch 32, tokenizer included), at 1 and 2 threads, with the
kernel each one runs. Runs alternate (C, ST, ORT, C, …) for --rounds rounds so background load
hits all alike; reported: the median over rounds of wall-clock sentences/s and of sentences per
CPU-second (process CPU time: user + sys; robust to other load on a shared machine).

The mix: half short texts (13 words, ~15 tokens), half long (119 words, ~121 tokens), interleaved
(the same generator as bench/minilm_reference.py). Run from bench/minilm.sh --e2e, or directly:
  minilm_e2e.py --bin build-bench/pg2qdrant [--model DIR] [--rounds 3] [--texts 2000]
Prints "E2E key=value …" lines and a table.
"""
import argparse, json, os, resource, statistics, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from minilm_reference import export_onnx, make_texts, optimize_onnx  # noqa: E402


def mix(n):
    short, long = make_texts(n // 2, 13, 777), make_texts(n - n // 2, 119, 778)
    out = []
    for i in range(max(len(short), len(long))):
        out += ([short[i]] if i < len(short) else []) + ([long[i]] if i < len(long) else [])
    return out


def run_c(binary, model, threads, texts):
    ini = tempfile.NamedTemporaryFile("w", suffix=".ini", delete=False)
    ini.write("[postgres]\nconninfo = dbname=unused\n[qdrant]\nurl = http://127.0.0.1:1\n"
              f"[embedder.e]\ntype = minilm\nmodel_dir = {model}\nthreads = {threads}\n")
    ini.close()
    data = "".join(t + "\n" for t in texts).encode()
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    p = subprocess.run([binary, "-c", ini.name, "embed"], input=data, capture_output=True)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    os.unlink(ini.name)
    if p.returncode != 0 or p.stdout.count(b"\n") != len(texts):
        raise SystemExit("pg2qdrant embed failed: %s" % p.stderr[-2000:].decode(errors="replace"))
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    kernel = "?"
    for line in p.stderr.decode(errors="replace").splitlines():
        if "BLAS kernel" in line:
            kernel = line.split("BLAS kernel ", 1)[1].split(" (")[0]
    return wall, cpu, "OpenBLAS " + kernel, p.stdout.splitlines()


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(here, "..", "build-bench", "pg2qdrant"))
    ap.add_argument("--model", default=os.environ.get("P2Q_MODEL_DIR", os.path.join(here, "..", "models", "all-MiniLM-L6-v2")))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--texts", type=int, default=2000)
    ap.add_argument("--threads", default="1,2")
    a = ap.parse_args()
    import numpy as np
    import onnxruntime as ort
    import torch
    from sentence_transformers import SentenceTransformer
    texts = mix(a.texts)
    st = SentenceTransformer(a.model, device="cpu")
    tok = st.tokenizer
    ntok = sum(len(x) for x in tok(texts, truncation=True, max_length=256)["input_ids"])
    onnx_dir = os.path.join(here, "..", ".cache", "minilm-onnx")
    paths = {"ort": export_onnx(st, onnx_dir)}
    try:
        paths["ort-opt"] = optimize_onnx(paths["ort"])
    except Exception as e:  # noqa: BLE001
        print("ORT transformer optimiser failed: %s" % e, file=sys.stderr)
    torch_kernel = "torch %s, CPU capability %s" % (torch.__version__.split("+")[0], torch.backends.cpu.get_cpu_capability())
    ort_kernel = "onnxruntime %s MLAS (own cpuid dispatch)" % ort.__version__

    def ort_embed(sess, batch):
        enc = tok(batch, padding=True, truncation=True, max_length=256, return_tensors="np")
        feed = {k: enc[k].astype(np.int64) for k in ("input_ids", "attention_mask", "token_type_ids")}
        h = sess.run(None, feed)[0]
        m = enc["attention_mask"][..., None].astype(np.float32)
        e = (h * m).sum(1) / np.maximum(m.sum(1), 1e-9)
        return e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)

    def timed(f):
        t0, c0 = time.perf_counter(), time.process_time()
        out = f()
        return time.perf_counter() - t0, time.process_time() - c0, out

    print("E2E info texts=%d tokens=%d env_OPENBLAS_CORETYPE=%s load=%s" % (len(texts), ntok,
          os.environ.get("OPENBLAS_CORETYPE", "-"), open("/proc/loadavg").read().split()[0]), flush=True)
    ref = st.encode(texts[:64], batch_size=32)
    res = {}
    for r in range(a.rounds):
        for threads in [int(t) for t in a.threads.split(",")]:
            torch.set_num_threads(threads)
            wall, cpu, kern, lines = run_c(a.bin, a.model, threads, texts)
            if r == 0:
                v = np.array([json.loads(x) for x in lines[:64]], dtype=np.float32)
                print("E2E check impl=c min_cosine_vs_st=%.6f" % float((v * ref).sum(1).min()), flush=True)
            res.setdefault(("c", threads), []).append((wall, cpu, kern))
            w, c, _ = timed(lambda: st.encode(texts, batch_size=32, show_progress_bar=False))
            res.setdefault(("st", threads), []).append((w, c, torch_kernel))
            for name, path in paths.items():
                so = ort.SessionOptions()
                so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
                sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
                w, c, _ = timed(lambda: [ort_embed(sess, texts[i:i + 32]) for i in range(0, len(texts), 32)])
                res.setdefault((name, threads), []).append((w, c, ort_kernel))
            for (impl, t), runs in res.items():
                if t == threads and len(runs) == r + 1:
                    w, c, k = runs[-1]
                    print("E2E round=%d impl=%s threads=%d wall_s=%.2f cpu_s=%.2f sent_s=%.1f sent_cpu_s=%.1f kernel=%r"
                          % (r + 1, impl, t, w, c, len(texts) / w, len(texts) / c, k), flush=True)
    med = {k: (statistics.median(len(texts) / w for w, _, _ in v), statistics.median(len(texts) / c for _, c, _ in v),
               v[0][2]) for k, v in res.items()}
    print("\nsentences/s on %d texts (%d tokens), median of %d alternating rounds; load at end %s"
          % (len(texts), ntok, a.rounds, open("/proc/loadavg").read().split()[0]))
    print("%-8s %3s %10s %12s  %s" % ("impl", "thr", "wall s/s", "per CPU-s", "kernel"))
    for (impl, t) in sorted(med, key=lambda k: (k[1], k[0])):
        w, c, k = med[(impl, t)]
        print("%-8s %3d %10.1f %12.1f  %s" % (impl, t, w, c, k))
    for t in [int(t) for t in a.threads.split(",")]:
        if ("c", t) in med:
            c = med[("c", t)]
            o = max((med[(n, t)] for n in paths if (n, t) in med), key=lambda x: x[0])
            print("threads=%d: C/ST %.2f (wall) %.2f (CPU)   C/ORT-best %.2f (wall) %.2f (CPU)" % (
                t, c[0] / med[("st", t)][0], c[1] / med[("st", t)][1], c[0] / o[0], c[1] / o[1]))
    if ("c", 1) in med and ("c", 2) in med:
        print("C scaling threads 2 / 1: %.2f (wall)" % (med[("c", 2)][0] / med[("c", 1)][0]))


if __name__ == "__main__":
    main()

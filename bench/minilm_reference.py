#!/usr/bin/env python3
"""Reference throughput for bench/minilm.sh: sentence-transformers (PyTorch CPU) and ONNX Runtime
fp32 on the same texts, batch sizes and thread counts as bench/bench_minilm.c.

Both pipelines go from text to normalised vector (tokenizer included), like the C code.
ONNX: the BertModel is exported once (torch.onnx) to .cache/minilm-onnx/, then run plain
("ort", graph optimisation ALL) and after onnxruntime.transformers' BERT fusion ("ort-opt",
fused attention/LayerNorm/GELU) when that optimiser works.
Prints "RESULT key=value …" lines. Usage: minilm_reference.py [--model DIR] [--reps N] [--quick]
"""
import argparse, os, sys, time

WORDS = """the of and to in is was he for it with as his on be at by had are but from or have an
they which one you were her all she there would their we him been has when who will more no if
out so said what up its about into than them can only other new some could time these two may
then do first any my now such like our over man me even most made after also did many before
must through back years where much your way well down should because each just those people how
too little state good very make world still own see men work long get here between both life
being under never day same another know while last might us great old year off come since
against go came right used take three""".split()

class Lcg:
    def __init__(self, seed):
        self.g = seed
    def next(self):
        self.g = (self.g * 1103515245 + 12345) & 0xFFFFFFFF
        return (self.g >> 16) & 0x7FFF

def make_texts(n, words, seed):
    r = Lcg(seed)
    return [" ".join(WORDS[r.next() % len(WORDS)] for _ in range(words)) for _ in range(n)]

def export_onnx(st_model, out_dir):
    import torch
    path = os.path.join(out_dir, "model.onnx")
    if os.path.exists(path):
        return path
    os.makedirs(out_dir, exist_ok=True)
    bert = st_model[0].auto_model.eval()
    ids = torch.ones(2, 16, dtype=torch.long)
    args = (ids, torch.ones_like(ids), torch.zeros_like(ids))
    names = ["input_ids", "attention_mask", "token_type_ids"]
    axes = {n: {0: "batch", 1: "seq"} for n in names}
    axes["last_hidden_state"] = {0: "batch", 1: "seq"}
    try:
        torch.onnx.export(bert, args, path, input_names=names, output_names=["last_hidden_state"],
                          dynamic_axes=axes, opset_version=17, dynamo=False)
    except Exception as e:  # newer torch: dynamo exporter only
        print("legacy ONNX export failed (%s); trying dynamo" % e, file=sys.stderr)
        b, s = torch.export.Dim("batch"), torch.export.Dim("seq", max=512)
        shapes = {"input_ids": {0: b, 1: s}, "attention_mask": {0: b, 1: s}, "token_type_ids": {0: b, 1: s}}
        torch.onnx.export(bert, args, path, input_names=names, output_names=["last_hidden_state"],
                          dynamic_shapes=shapes, opset_version=17, dynamo=True)
    return path

def optimize_onnx(path):
    out = path.replace(".onnx", "-opt.onnx")
    if os.path.exists(out):
        return out
    from onnxruntime.transformers import optimizer
    m = optimizer.optimize_model(path, model_type="bert", num_heads=12, hidden_size=384,
                                 opt_level=1, use_gpu=False)
    m.save_model_to_file(out)
    return out

def main():
    ap = argparse.ArgumentParser()
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--model", default=os.environ.get("P2Q_MODEL_DIR",
                    os.path.join(here, "..", "models", "all-MiniLM-L6-v2")))
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--impls", default="st,ort,ort-opt")
    a = ap.parse_args()
    import numpy as np
    import torch
    import onnxruntime as ort
    from sentence_transformers import SentenceTransformer
    torch.set_num_threads(1)
    st = SentenceTransformer(a.model, device="cpu")
    tok = st.tokenizer
    sessions = {}
    impls = a.impls.split(",")
    onnx_dir = os.path.join(here, "..", ".cache", "minilm-onnx")
    paths = {}
    if "ort" in impls or "ort-opt" in impls:
        paths["ort"] = export_onnx(st, onnx_dir)
        if "ort-opt" in impls:
            try:
                paths["ort-opt"] = optimize_onnx(paths["ort"])
            except Exception as e:
                print("ORT transformer optimiser failed: %s" % e, file=sys.stderr)

    def ort_embed(sess, texts):
        enc = tok(texts, padding=True, truncation=True, max_length=256, return_tensors="np")
        feed = {"input_ids": enc["input_ids"].astype(np.int64),
                "attention_mask": enc["attention_mask"].astype(np.int64),
                "token_type_ids": enc["token_type_ids"].astype(np.int64)}
        h = sess.run(None, feed)[0]
        m = enc["attention_mask"][..., None].astype(np.float32)
        e = (h * m).sum(1) / np.maximum(m.sum(1), 1e-9)
        return e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)

    # sanity: every pipeline agrees with sentence-transformers
    probe = make_texts(4, 20, 7)
    ref = st.encode(probe, batch_size=4)
    for name, path in paths.items():
        so = ort.SessionOptions()
        so.intra_op_num_threads, so.inter_op_num_threads = 1, 1
        s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        cos = float((ort_embed(s, probe) * ref).sum(1).min())
        print("check impl=%s min_cosine_vs_st=%.6f" % (name, cos), file=sys.stderr)

    for threads in [int(t) for t in a.threads.split(",")]:
        torch.set_num_threads(threads)
        for name, path in paths.items():
            so = ort.SessionOptions()
            so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
            so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            sessions[(name, threads)] = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        for li, (lname, words) in enumerate((("short", 14), ("long", 126))):
            L = words + 2
            for B in (1, 8, 32, 128):
                target = 1024 if a.quick else 4096
                n = max((target + L - 1) // L, B)
                n = (n + B - 1) // B * B
                texts = make_texts(n, words, 12345 + li)
                runs = {"st": lambda ts, B=B: st.encode(ts, batch_size=B, show_progress_bar=False)}
                for name in paths:
                    sess = sessions[(name, threads)]
                    runs[name] = lambda ts, B=B, sess=sess: [ort_embed(sess, ts[i:i + B]) for i in range(0, len(ts), B)]
                for name in [i for i in impls if i in runs]:
                    f = runs[name]
                    f(texts[:B])  # warm-up
                    dts, cts = [], []
                    for _ in range(a.reps):
                        t0, c0 = time.perf_counter(), time.process_time()
                        f(texts)
                        dts.append(time.perf_counter() - t0)
                        cts.append(time.process_time() - c0)
                    med = sorted(dts)[len(dts) // 2]
                    cmed = sorted(cts)[len(cts) // 2]
                    print("RESULT kind=model impl=%s threads=%d len=%s tokens=%d batch=%d texts=%d "
                          "sent_s=%.1f tok_s=%.0f sent_cpu_s=%.1f" % (name, threads, lname, L, B, n, n / med,
                          n * L / med, n / cmed), flush=True)

if __name__ == "__main__":
    main()

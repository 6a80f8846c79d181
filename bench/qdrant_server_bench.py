#!/usr/bin/env python3
"""Upsert throughput benchmark of the Qdrant-compatible test server.

Usage (from the repo root)::

    python3 bench/qdrant_server_bench.py [--runs 5] [--requests 80] [--conns 3] [--batch 256]
                                         [--dim 384]

Owns: starting the server twice (``--bench-mode`` and full validation) side by side, then for
each mode running the same load several times — ``--conns`` keep-alive connections in a
separate client process sending pre-serialised ``PUT /collections/bench/points?wait=true``
bodies of ``--batch`` points with ``--dim``-dim vectors — and printing the median points/s.

Invariants: every response must be 200 (the run aborts otherwise); bodies are serialised once
before timing so the client costs little; the collection is recreated before each run.
"""
import argparse
import http.client
import json
import multiprocessing as mp
import os
import random
import statistics
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from tests.qdrant_server.client import QdrantStub  # noqa: E402


def make_bodies(n_bodies, batch, dim, seed=7):
    rnd = random.Random(seed)
    bodies = []
    next_id = 0
    for _ in range(n_bodies):
        pts = []
        for _ in range(batch):
            vec = [round(rnd.uniform(-1, 1), 6) for _ in range(dim)]
            pts.append({"id": next_id, "vector": vec,
                        "payload": {"_pk": str(next_id), "table": "docs", "n": next_id}})
            next_id += 1
        bodies.append(json.dumps({"points": pts}, separators=(",", ":")).encode())
    return bodies


def _client(port, bodies, conns, start_evt, out_q):
    """Runs in a separate process: conns threads, each with one keep-alive connection."""
    errors = []
    per_conn = [bodies[i::conns] for i in range(conns)]

    def worker(chunk):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        hdrs = {"Content-Type": "application/json"}
        for b in chunk:
            c.request("PUT", "/collections/bench/points?wait=true", body=b, headers=hdrs)
            r = c.getresponse()
            data = r.read()
            if r.status != 200:
                errors.append((r.status, data[:200]))
                return
        c.close()

    threads = [threading.Thread(target=worker, args=(ch,)) for ch in per_conn]
    start_evt.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out_q.put((time.perf_counter() - t0, errors))


def run_once(stub, bodies, batch, dim, conns):
    stub.delete_collection("bench")
    status, res = stub.create_collection("bench", size=dim, distance="Cosine")
    assert status == 200, res
    ctx = mp.get_context("fork")
    evt, q = ctx.Event(), ctx.Queue()
    proc = ctx.Process(target=_client, args=(stub.port, bodies, conns, evt, q))
    proc.start()
    time.sleep(0.3)
    evt.set()
    elapsed, errors = q.get()
    proc.join()
    if errors:
        raise SystemExit(f"benchmark request failed: {errors[0]}")
    stub.clear_log()
    return len(bodies) * batch / elapsed


def main():
    ap = argparse.ArgumentParser(description="Qdrant test server upsert benchmark")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--requests", type=int, default=80, help="upsert requests per run")
    ap.add_argument("--conns", type=int, default=3)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--dim", type=int, default=384)
    args = ap.parse_args()

    bodies = make_bodies(args.requests, args.batch, args.dim)
    mb = sum(map(len, bodies)) / len(bodies) / 1e6
    print(f"{args.requests} requests x {args.batch} points x {args.dim} dims "
          f"({mb:.2f} MB/request), {args.conns} keep-alive connections, {args.runs} runs/mode")
    stubs = {"bench-mode": QdrantStub.start(bench=True),
             "full-validation": QdrantStub.start(bench=False)}
    try:
        results = {m: [] for m in stubs}
        for _ in range(args.runs):          # interleave modes so drift affects both alike
            for mode, stub in stubs.items():
                results[mode].append(run_once(stub, bodies, args.batch, args.dim, args.conns))
        for mode, rates in results.items():
            print(f"{mode:16s} median {statistics.median(rates):9.0f} points/s   "
                  f"(runs: {', '.join(f'{r:.0f}' for r in rates)})")
    finally:
        for s in stubs.values():
            s.stop()


if __name__ == "__main__":
    main()

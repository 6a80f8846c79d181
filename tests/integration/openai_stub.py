"""A small stand-in for an OpenAI-compatible /v1/embeddings endpoint, for tests.

Owns: a threaded HTTP server on a free loopback port answering POST /v1/embeddings with the
OpenAI response shape ({"object": "list", "data": [{"object": "embedding", "index": i,
"embedding": [...]}], "model": ..., "usage": {...}}). Vectors are deterministic functions of the
text (so tests can predict them), of the requested "dimensions" when the body has it, else of the
model's native size `dim`. Faults scripted by tests: the next N answers with a status (429 with a
Retry-After in seconds, an HTTP date or an absurd value; 500; 401), vectors of the wrong
dimension, answers padded to 8 MB (more than any real answer), and — like the real API — a 400 with OpenAI's error shape for a whole request when any
of its inputs is longer than `max_tokens` (the stub's tokenizer: `count_tokens`, by default one
token per 4 UTF-8 bytes). Records every request with its arrival time and the status answered.
"""
import hashlib
import json
import math
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def vector_for(text, dim):
    """Deterministic unit-ish vector for a text."""
    h = hashlib.sha256(text.encode()).digest()
    return [((h[i % len(h)] / 255.0) - 0.5) for i in range(dim)]


def default_tokens(text):
    return math.ceil(len(text.encode()) / 4)


def estimate_cut(text, max_tokens):
    """pg2qdrant's client-side cut (embedder.h): the longest prefix, on a character boundary,
    whose estimate (ASCII bytes / 3 rounded up + one per other byte) is <= max_tokens."""
    b = text.encode()
    ascii_n = other = 0
    for i, byte in enumerate(b):
        if byte < 0x80:
            ascii_n += 1
        else:
            other += 1
        if (ascii_n + 2) // 3 + other > max_tokens:
            while i > 0 and (b[i] & 0xC0) == 0x80:
                i -= 1
            return b[:i].decode()
    return text


class OpenAIStub:
    def __init__(self, dim=8, api_key=None, max_tokens=None, count_tokens=default_tokens):
        self.dim = dim
        self.api_key = api_key
        self.max_tokens = max_tokens
        self.count_tokens = count_tokens
        self.faults = []          # list of (status, retry_after or None)
        self.wrong_dim = 0
        self.huge = 0             # next N successful answers padded to 8 MB
        self.requests = []        # {"path", "auth", "body", "t", "status"}
        self.lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _send(self, status, obj, headers=()):
                body = json.dumps(obj).encode()
                with stub.lock:
                    self.rec["status"] = status
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for k, v in headers:
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                n = int(self.headers.get("Content-Length", 0))
                raw = self.rfile.read(n)
                with stub.lock:
                    self.rec = {"path": self.path, "auth": self.headers.get("Authorization"),
                                "body": raw, "t": time.monotonic(), "status": None}
                    stub.requests.append(self.rec)
                    fault = stub.faults.pop(0) if stub.faults else None
                    wrong = stub.wrong_dim > 0
                    if wrong:
                        stub.wrong_dim -= 1
                    huge = stub.huge > 0
                    if huge:
                        stub.huge -= 1
                if self.path != "/v1/embeddings":
                    return self._send(404, {"error": {"message": "not found"}})
                if stub.api_key and self.headers.get("Authorization") != f"Bearer {stub.api_key}":
                    return self._send(401, {"error": {"message": "bad key"}})
                if fault:
                    status, retry_after = fault
                    hdrs = [("Retry-After", str(retry_after))] if retry_after is not None else []
                    return self._send(status, {"error": {"message": f"injected {status}",
                                                         "type": "requests", "param": None,
                                                         "code": "rate_limit_exceeded" if status == 429 else None}},
                                      hdrs)
                try:
                    req = json.loads(raw)
                    inputs = req["input"] if isinstance(req["input"], list) else [req["input"]]
                except (ValueError, KeyError):
                    return self._send(400, {"error": {"message": "bad request"}})
                if stub.max_tokens is not None:
                    worst = max(stub.count_tokens(t) for t in inputs)
                    if worst > stub.max_tokens:  # the real API rejects the whole request
                        return self._send(400, {"error": {
                            "message": f"This model's maximum context length is {stub.max_tokens} tokens, "
                                       f"however you requested {worst} tokens ({worst} in your prompt; 0 for "
                                       f"the completion). Please reduce your prompt; or completion length.",
                            "type": "invalid_request_error", "param": None, "code": None}})
                dim = req.get("dimensions", stub.dim) + (1 if wrong else 0)
                data = [{"object": "embedding", "index": i, "embedding": vector_for(t, dim)}
                        for i, t in enumerate(inputs)]
                used = sum(stub.count_tokens(t) for t in inputs)
                answer = {"object": "list", "data": data, "model": req.get("model"),
                          "usage": {"prompt_tokens": used, "total_tokens": used}}
                if huge:
                    answer["padding"] = "x" * (8 << 20)
                self._send(200, answer)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/embeddings"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def fail(self, status, count=1, retry_after=None):
        with self.lock:
            self.faults += [(status, retry_after)] * count

    def bodies(self):
        with self.lock:
            return [json.loads(r["body"]) for r in self.requests]

    def times(self, status=None):
        """Arrival times of the requests answered with `status` (any when None)."""
        with self.lock:
            return [r["t"] for r in self.requests if status is None or r["status"] == status]

    def max_per_window(self, window=1.0, status=200):
        """Most requests answered `status` that arrived within any `window` seconds."""
        ts = sorted(self.times(status))
        best, j = 0, 0
        for i, t in enumerate(ts):
            while ts[j] < t - window:
                j += 1
            best = max(best, i - j + 1)
        return best

    def close(self):
        self.server.shutdown()
        self.server.server_close()

"""A small stand-in for an OpenAI-compatible /v1/embeddings endpoint, for tests.

Owns: a threaded HTTP server on a free loopback port answering POST /v1/embeddings with the
OpenAI response shape ({"object": "list", "data": [{"object": "embedding", "index": i,
"embedding": [...]}], "model": ..., "usage": {...}}). Vectors are deterministic functions of the
text (so tests can predict them). Faults scripted by tests: the next N answers with a status
(429 with or without Retry-After, 500), or vectors of the wrong dimension. Records every request.
"""
import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def vector_for(text, dim):
    """Deterministic unit-ish vector for a text."""
    h = hashlib.sha256(text.encode()).digest()
    return [((h[i % len(h)] / 255.0) - 0.5) for i in range(dim)]


class OpenAIStub:
    def __init__(self, dim=8, api_key=None):
        self.dim = dim
        self.api_key = api_key
        self.faults = []          # list of (status, retry_after or None)
        self.wrong_dim = 0
        self.requests = []
        self.lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _send(self, status, obj, headers=()):
                body = json.dumps(obj).encode()
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
                    stub.requests.append({"path": self.path, "auth": self.headers.get("Authorization"),
                                          "body": raw})
                    fault = stub.faults.pop(0) if stub.faults else None
                    wrong = stub.wrong_dim > 0
                    if wrong:
                        stub.wrong_dim -= 1
                if self.path != "/v1/embeddings":
                    return self._send(404, {"error": {"message": "not found"}})
                if stub.api_key and self.headers.get("Authorization") != f"Bearer {stub.api_key}":
                    return self._send(401, {"error": {"message": "bad key"}})
                if fault:
                    status, retry_after = fault
                    hdrs = [("Retry-After", str(retry_after))] if retry_after is not None else []
                    return self._send(status, {"error": {"message": f"injected {status}"}}, hdrs)
                try:
                    req = json.loads(raw)
                    inputs = req["input"] if isinstance(req["input"], list) else [req["input"]]
                except (ValueError, KeyError):
                    return self._send(400, {"error": {"message": "bad request"}})
                dim = stub.dim + (1 if wrong else 0)
                data = [{"object": "embedding", "index": i, "embedding": vector_for(t, dim)}
                        for i, t in enumerate(inputs)]
                self._send(200, {"object": "list", "data": data, "model": req.get("model"),
                                 "usage": {"prompt_tokens": 0, "total_tokens": 0}})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/embeddings"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def fail(self, status, count=1, retry_after=None):
        with self.lock:
            self.faults += [(status, retry_after)] * count

    def close(self):
        self.server.shutdown()
        self.server.server_close()

"""Test-side helper for the Qdrant-compatible test server.

Owns: spawning ``server.py`` as a subprocess on free loopback ports (``QdrantStub.start``),
the control-API calls (faults, log, stored points) and thin Qdrant REST calls for tests.

Invariants:
  * ``start()`` returns only after the server printed ``READY``; ``stop()`` terminates exactly
    the process it started (by its pid) and waits for it.
  * Qdrant calls return ``(status, parsed JSON or text)`` and never raise on HTTP errors, so
    tests can assert on error answers; control calls raise ``RuntimeError`` when not ``ok``.
  * Only the standard library is used (urllib / http.client), so importing this module needs
    no third-party package.
"""
import http.client
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SERVER = os.path.join(HERE, "server.py")


class QdrantStub:
    def __init__(self, proc, host, port, control_port, api_key, ports=None):
        self.proc = proc
        self.host = host
        self.port = port
        self.control_port = control_port
        self.api_key = api_key
        self.url = f"http://{host}:{port}"
        self.control_url = f"http://{host}:{control_port}"
        self.ports = ports or [port]                              # cluster mode: every node's
        self.urls = [f"http://{host}:{p}" for p in self.ports]
        self.cluster_url = ", ".join(self.urls)                   # [qdrant] url of all nodes

    # -- lifecycle ----------------------------------------------------------------------------
    @classmethod
    def start(cls, api_key=None, bench=False, host="127.0.0.1", port=0, timeout=20.0, nodes=1):
        cmd = [sys.executable, SERVER, "--port", str(port), "--control-port", "0",
               "--host", host, "--parent-pid", str(os.getpid()), "--nodes", str(nodes)]
        if api_key is not None:
            cmd += ["--api-key", api_key]
        if bench:
            cmd.append("--bench-mode")
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=None, text=True)
        deadline = time.monotonic() + timeout
        line = ""
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if line.startswith("READY"):
                break
            if not line and proc.poll() is not None:
                raise RuntimeError(f"qdrant test server exited with {proc.returncode}")
        else:
            proc.kill()
            raise RuntimeError("qdrant test server did not become ready")
        fields = dict(kv.split("=") for kv in line.split()[1:])
        ports = [int(p) for p in fields.get("ports", fields["port"]).split(",")]
        return cls(proc, host, int(fields["port"]), int(fields["control_port"]), api_key, ports)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc.stdout:
            self.proc.stdout.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    # -- raw HTTP -----------------------------------------------------------------------------
    def request(self, method, path, body=None, headers=None, api_key="default", raw=None,
                timeout=30):
        """One request on a fresh connection -> (status, parsed body, response headers)."""
        hdrs = {}
        if body is not None or raw is not None:
            hdrs["Content-Type"] = "application/json"
        key = self.api_key if api_key == "default" else api_key
        if key is not None:
            hdrs["api-key"] = key
        hdrs.update(headers or {})
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None
                                            else None)
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            conn.request(method, path, body=data, headers=hdrs)
            resp = conn.getresponse()
            payload = resp.read()
            ctype = resp.getheader("Content-Type") or ""
            if ctype.startswith("application/json") and payload:
                parsed = json.loads(payload)
            else:
                parsed = payload.decode("utf-8", "replace")
            return resp.status, parsed, dict(resp.getheaders())
        finally:
            conn.close()

    def call(self, method, path, body=None, **kw):
        status, parsed, _ = self.request(method, path, body, **kw)
        return status, parsed

    # -- control API --------------------------------------------------------------------------
    def control(self, method, path, body=None):
        conn = http.client.HTTPConnection(self.host, self.control_port, timeout=30)
        try:
            data = json.dumps(body).encode() if body is not None else None
            conn.request(method, "/control/" + path, body=data,
                         headers={"Content-Type": "application/json"} if data else {})
            resp = conn.getresponse()
            out = json.loads(resp.read())
        finally:
            conn.close()
        if isinstance(out, list):
            return out
        if not out.get("ok"):
            raise RuntimeError(f"control {method} {path} failed: {out.get('error')}")
        return out

    def reset(self):
        self.control("POST", "reset")

    # -- cluster mode (start(nodes=N)) ----------------------------------------------------------
    def cluster(self):
        return self.control("GET", "cluster")

    def node_down(self, node):
        self.control("POST", "node/down", {"node": node})

    def node_up(self, node):
        self.control("POST", "node/up", {"node": node})

    def node_stop(self, node, grace=30):
        """SIGTERM-like: new connections refused now, open ones served for grace s, then down."""
        self.control("POST", "node/stop", {"node": node, "grace": grace})

    def shard_of(self, collection, ids):
        return self.control("POST", "shard_of", {"collection": collection, "ids": ids})["shards"]

    def call_node(self, node, method, path, body=None, timeout=30):
        """A Qdrant call to one node of the cluster -> (status, parsed body)."""
        conn = http.client.HTTPConnection(self.host, self.ports[node], timeout=timeout)
        try:
            data = json.dumps(body).encode() if body is not None else None
            hdrs = {"Content-Type": "application/json"} if data else {}
            if self.api_key:
                hdrs["api-key"] = self.api_key
            conn.request(method, path, body=data, headers=hdrs)
            resp = conn.getresponse()
            raw = resp.read()
        finally:
            conn.close()
        try:
            return resp.status, json.loads(raw)
        except ValueError:
            return resp.status, raw.decode("utf-8", "replace")

    def down(self):
        self.control("POST", "down")

    def up(self):
        self.control("POST", "up")

    def fail(self, status, count=None, seconds=None, retry_after=None, path=None, method=None,
             message=None, body=None, **extra):
        """Inject a failure; ``extra``: writes, collection, json, content_type, html, headers,
        location, huge, chunked, apply (see faults.py)."""
        spec = dict(extra, status=status)
        for k, v in (("count", count), ("seconds", seconds), ("retry_after", retry_after),
                     ("path", path), ("method", method), ("message", message),
                     ("body", body)):
            if v is not None:
                spec[k] = v
        self.control("POST", "fail", spec)

    def latency(self, ms, count=None, seconds=None, path=None, method=None, **extra):
        spec = dict(extra, ms=ms)
        for k, v in (("count", count), ("seconds", seconds), ("path", path),
                     ("method", method)):
            if v is not None:
                spec[k] = v
        self.control("POST", "latency", spec)

    def update_status(self, status="wait_timeout", count=1, path=None, method=None):
        spec = {"status": status, "count": count}
        if path is not None:
            spec["path"] = path
        if method is not None:
            spec["method"] = method
        self.control("POST", "update_status", spec)

    def empty_reply(self, count=None, path=None, method=None, apply=True, **extra):
        self.reset_connection(count, path, method, apply, mode="empty", **extra)

    def reset_connection(self, count=None, path=None, method=None, apply=True, mode="rst",
                         **extra):
        """``count`` defaults to 1 unless ``seconds`` is given (extra: writes, collection)."""
        spec = dict(extra, apply=apply, mode=mode)
        if count is not None or "seconds" not in extra:
            spec["count"] = 1 if count is None else count
        if path is not None:
            spec["path"] = path
        if method is not None:
            spec["method"] = method
        self.control("POST", "reset_connection", spec)

    def clear_faults(self):
        self.control("POST", "clear_faults")

    def state(self):
        return self.control("GET", "state")

    def log(self, since=0):
        return self.control("GET", f"log?since={since}")

    def clear_log(self):
        self.control("DELETE", "log")

    def points(self, collection):
        return self.control("GET", f"points/{collection}")

    def corrupt(self, collection, point_id, **changes):
        self.control("POST", "corrupt", dict(changes, collection=collection, id=point_id))

    # -- thin Qdrant API ----------------------------------------------------------------------
    def create_collection(self, name, size=4, distance="Cosine", vectors=None,
                          sparse_vectors=None):
        body = {"vectors": vectors if vectors is not None else
                {"size": size, "distance": distance}}
        if sparse_vectors is not None:
            body["sparse_vectors"] = sparse_vectors
        return self.call("PUT", f"/collections/{name}", body)

    def delete_collection(self, name):
        return self.call("DELETE", f"/collections/{name}")

    def collection_info(self, name):
        return self.call("GET", f"/collections/{name}")

    def upsert(self, name, points, wait=True):
        return self.call("PUT", f"/collections/{name}/points?wait={str(wait).lower()}",
                         {"points": points})

    def upsert_batch(self, name, ids, vectors, payloads=None, wait=True):
        batch = {"ids": ids, "vectors": vectors}
        if payloads is not None:
            batch["payloads"] = payloads
        return self.call("PUT", f"/collections/{name}/points?wait={str(wait).lower()}",
                         {"batch": batch})

    def delete(self, name, ids=None, filter=None, wait=True):
        body = {"points": ids} if ids is not None else {"filter": filter}
        return self.call("POST", f"/collections/{name}/points/delete?wait={str(wait).lower()}",
                         body)

    def set_payload(self, name, payload, ids=None, filter=None, overwrite=False):
        body = {"payload": payload}
        if ids is not None:
            body["points"] = ids
        if filter is not None:
            body["filter"] = filter
        return self.call("PUT" if overwrite else "POST",
                         f"/collections/{name}/points/payload?wait=true", body)

    def scroll(self, name, **body):
        return self.call("POST", f"/collections/{name}/points/scroll", body)

    def scroll_all(self, name, limit=10, **body):
        """Follow next_page_offset to the end; returns all records."""
        out, offset = [], None
        while True:
            req = dict(body, limit=limit)
            if offset is not None:
                req["offset"] = offset
            status, res = self.scroll(name, **req)
            assert status == 200, res
            out.extend(res["result"]["points"])
            offset = res["result"]["next_page_offset"]
            if offset is None:
                return out

    def count(self, name, filter=None, exact=True):
        body = {"exact": exact}
        if filter is not None:
            body["filter"] = filter
        return self.call("POST", f"/collections/{name}/points/count", body)

    def query(self, name, **body):
        return self.call("POST", f"/collections/{name}/points/query", body)

    def retrieve(self, name, ids, **body):
        return self.call("POST", f"/collections/{name}/points", dict(body, ids=ids))

    def create_index(self, name, field, schema="keyword"):
        return self.call("PUT", f"/collections/{name}/index?wait=true",
                         {"field_name": field, "field_schema": schema})

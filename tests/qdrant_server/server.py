#!/usr/bin/env python3
"""Qdrant-compatible test server (HTTP layer + process entry point).

Usage::

    python3 tests/qdrant_server/server.py --port P --control-port C [--api-key K]
                                          [--bench-mode] [--host 127.0.0.1] [--nodes N]

Prints ``READY port=P control_port=C ports=P,P2,…`` on stdout once the ports listen (port 0
picks a free port; the line reports the real ones). ``--nodes N`` (N ≥ 2) is cluster mode
(cluster.py): N Qdrant ports sharing one store, ``GET /cluster`` enabled, shards on nodes.

Owns: the HTTP/1.1 keep-alive transport of the Qdrant port (thread per connection, idle
connections closed after 5 s like Qdrant/actix), request framing (Content-Length or chunked),
trailing-slash trimming, API-key checks (401 plain text; ``/``, ``/healthz``, ``/livez``,
``/readyz`` need no key), the 32 MiB body limit, fault injection (latency, injected statuses
with envelope / raw / JSON / HTML bodies and extra headers, huge bodies streamed without being
held in memory, TCP RST mid-response or empty reply, ``wait_timeout`` update statuses,
listening socket down/up), the request log, and the control port.

Invariants:
  * One ``App`` per process; the Qdrant port can be closed and reopened on the same port number
    (``down`` also aborts open keep-alive connections so clients see refused/reset).
  * Every Qdrant request (except ones refused by the socket being down) gets exactly one log
    entry, including injected failures and auth failures.
  * ``--bench-mode`` only relaxes per-element vector type checks; answers are otherwise equal.
"""
import argparse
import json
import os
import socket
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, unquote, urlsplit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import api as qapi          # noqa: E402
import cluster as qcluster  # noqa: E402
import control              # noqa: E402
from faults import Faults   # noqa: E402
from store import Store     # noqa: E402
from validator import Validator  # noqa: E402

IDLE_TIMEOUT = 5.0
WHITELIST_EXACT = {"/", "/healthz"}
WHITELIST_PREFIX = ("/readyz", "/livez")
REASONS = {200: "OK", 301: "Moved Permanently", 302: "Found", 303: "See Other",
           307: "Temporary Redirect", 308: "Permanent Redirect", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
           404: "Not Found", 405: "Method Not Allowed", 408: "Request Timeout",
           409: "Conflict", 413: "Payload Too Large", 422: "Unprocessable Entity",
           429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway",
           503: "Service Unavailable", 504: "Gateway Timeout", 507: "Insufficient Storage"}


class _Headers:
    """Case-insensitive view over http.client.HTTPMessage with a dict-like .get."""

    def __init__(self, msg):
        self.msg = msg

    def get(self, name, default=None):
        return self.msg.get(name, default)


class App:
    def __init__(self, host, port, api_key, bench, nodes=1):
        self.host = host
        self.port = port
        self.api_key = api_key
        self.bench = bench
        with open(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                               "openapi.json"), "rb") as f:
            spec = json.loads(f.read())
        self.store = Store()
        self.api = qapi.Api(self.store, Validator(spec, fast=bench))
        self.faults = Faults()
        self.state_lock = threading.Lock()
        self.cluster = qcluster.Cluster(self, nodes) if nodes > 1 else None
        self.nodes = self.cluster.nodes if self.cluster else [qcluster.Node(0, host, port)]
        self.api.cluster = self.cluster
        # The reset epoch: a connection belongs to the epoch it was accepted in, and a reset ends
        # the epoch (sets the event): a request of an ended epoch, still held by a latency rule
        # (woken at once) or arriving later on that connection, is dropped unanswered, never
        # applied. Tests share one server, reset per test: a daemon of the previous test killed
        # while a latency held its write must not write into the next test's collection.
        self.epoch = threading.Event()

    def end_epoch(self):
        with self.state_lock:
            ended, self.epoch = self.epoch, threading.Event()
        ended.set()

    @property
    def server(self):
        return self.nodes[0].server

    # -- listening socket lifecycle -------------------------------------------------------------
    def is_down(self):
        return all(nd.server is None for nd in self.nodes)

    def node_listen(self, nd):
        with self.state_lock:
            if nd.server is not None:
                return
            srv = QdrantHTTPServer((nd.host, nd.port), QdrantHandler)
            srv.app = self
            srv.node = nd
            nd.port = srv.server_address[1]
            if nd.index == 0:
                self.port = nd.port
            nd.server = srv
            threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05},
                             daemon=True).start()

    def node_close(self, nd, abort=True):
        """Stop listening (refused from now on); abort: also reset the open connections."""
        with self.state_lock:
            srv, nd.server = nd.server, None
            if srv is not None:
                srv.shutdown()
                srv.server_close()
            if not abort:
                return
            with nd.conns_lock:
                conns = list(nd.conns)
            for c in conns:
                _abort_foreign(c)

    def go_up(self):
        for nd in self.nodes:
            nd.down = False
            nd.stopping_until = None
            self.node_listen(nd)

    def go_down(self):
        for nd in self.nodes:
            self.node_close(nd, abort=True)

    # -- auth -----------------------------------------------------------------------------------
    def auth_error(self, path, headers):
        if self.api_key is None or path in WHITELIST_EXACT or path.startswith(WHITELIST_PREFIX):
            return None
        key = headers.get("api-key")
        if key is None:
            auth = headers.get("Authorization") or ""
            if auth[:7].lower() == "bearer ":
                key = auth[7:].strip()
        if key is None:
            return "Must provide an API key or an Authorization bearer token"
        if key != self.api_key:
            return "Invalid API key or JWT"
        return None


def _rst_close(sock):
    """Abort a TCP connection: SO_LINGER 0 then close -> the peer sees RST.

    Only closes the fd when no makefile() object still references it, so handler threads
    close their rfile/wfile first."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


def _abort_foreign(sock):
    """Abort a connection owned by another thread: linger 0 (so its final close sends RST)
    and shutdown(), which acts on the fd at once and wakes the blocked handler."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _override_status(resp, status):
    """Rewrite an UpdateResult's status (e.g. ``wait_timeout``) keeping the operation."""
    doc = json.loads(resp.body)
    doc["result"]["status"] = status
    return qapi.Response(resp.status, qapi.dumps(doc), resp.content_type, resp.headers)


class QdrantHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 128


class QdrantHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "qdrant-test-server"
    sys_version = ""
    timeout = IDLE_TIMEOUT

    def setup(self):
        super().setup()
        self.epoch = self.server.app.epoch
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.server.node.conns_lock:
            self.server.node.conns.add(self.connection)

    def finish(self):
        with self.server.node.conns_lock:
            self.server.node.conns.discard(self.connection)
        try:
            super().finish()
        except OSError:
            pass

    def log_message(self, fmt, *args):
        pass

    def handle_one_request(self):
        try:
            super().handle_one_request()
        except (ConnectionError, OSError, ValueError):   # ValueError: wfile closed by a reset
            self.close_connection = True

    def do_GET(self):
        self._dispatch()

    do_PUT = do_POST = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_GET

    # -- request body ---------------------------------------------------------------------------
    def _read_body(self):
        """Returns (body bytes or None when over the limit, length)."""
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            chunks, total = [], 0
            while True:
                line = self.rfile.readline(65537)
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                data = self.rfile.read(size)
                self.rfile.readline(65537)
                total += size
                if total <= qapi.MAX_BODY:
                    chunks.append(data)
            return (b"".join(chunks) if total <= qapi.MAX_BODY else None), total
        length = int(self.headers.get("Content-Length") or 0)
        if length > qapi.MAX_BODY:
            left = length
            while left > 0:
                got = self.rfile.read(min(left, 1 << 20))
                if not got:
                    break
                left -= len(got)
            return None, length
        return (self.rfile.read(length) if length else b""), length

    # -- dispatch -------------------------------------------------------------------------------
    def _dispatch(self):
        app = self.server.app
        t0 = time.time()
        parts = urlsplit(self.path)
        path = unquote(parts.path)
        if len(path) > 1:
            path = path.rstrip("/") or "/"
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        method = self.command
        body, length = self._read_body()
        node = self.server.node.index
        entry = {"ts": t0, "method": method, "path": path, "query": query,
                 "collection": None, "points": None, "ids": None, "status": None,
                 "fault": None, "node": node}
        ms = app.faults.latency_ms(method, path, node=node)
        if ms:
            self.epoch.wait(ms / 1000.0)
        if self.epoch.is_set():   # a reset since this connection was accepted: drop, unanswered
            self.close_connection = True
            return
        rule = app.faults.take_fail(method, path, length or 0, node=node)
        req = qapi.Request(method, path, query, _Headers(self.headers), body or b"")
        req.node = node
        if rule is not None:
            if rule.apply and app.auth_error(path, self.headers) is None and body is not None:
                app.api.handle(req)            # applied; the injected answer replaces the real one
            resp = self._injected(rule, path)
            entry["fault"] = "fail"
            self._note_points(app, req, entry)
            if rule.huge:
                self._log(app, req, entry, resp.status)
                self._send_huge(resp, rule, method == "HEAD")
                return
        else:
            auth = app.auth_error(path, self.headers)
            if body is None:
                req.oversize = length   # the API answers 400 where Qdrant's extractor would
            if auth is not None:
                resp = qapi.Response(401, auth.encode(), None)   # Qdrant: no Content-Type
            else:
                reset = app.faults.take_reset(method, path, node=node)
                if reset is not None and not reset.apply:
                    entry["fault"] = "reset"
                    self._note_points(app, req, entry)
                    self._log(app, req, entry, 0)   # status 0: nothing was processed
                    self._reset_mid_response(qapi.error(500, "reset"), reset.mode)
                    return
                resp = app.cluster.write(req) if app.cluster and body is not None else None
                if resp is not None:
                    entry["fault"] = "shards"
                    self._note_points(app, req, entry)
                else:
                    resp = app.api.handle(req)
                if resp.status == 200 and req.method in ("PUT", "POST") and \
                        b'"operation_id"' in resp.body[:200]:
                    srule = app.faults.take_status(method, path, node=node)
                    if srule is not None:
                        entry["fault"] = "update_status"
                        resp = _override_status(resp, srule.update_status)
                if reset is not None:
                    entry["fault"] = "reset"
                    entry.update(req.log)
                    self._log(app, req, entry, resp.status)
                    self._reset_mid_response(resp, reset.mode)
                    return
        entry.update({k: v for k, v in req.log.items() if v is not None})
        self._log(app, req, entry, resp.status)
        self._send(resp, method == "HEAD")

    def _note_points(self, app, req, entry):
        """Best-effort collection / point count of a request answered by an injected fault."""
        found = app.api.match(req.method, req.path)
        if found and "c" in found[2]:
            entry["collection"] = found[2]["c"]
        if found and found[1] in ("PointInsertOperations", "PointsSelector") and req.body:
            try:
                qapi._note_ids(req, qapi.loads(req.body))
            except Exception:   # malformed body: the log just lacks the count
                pass
            entry["points"], entry["ids"] = req.log["points"], req.log["ids"]

    def _log(self, app, req, entry, status):
        entry["status"] = status
        entry["te"] = time.time()   # the answer is ready (the write is applied): for latency figures
        app.faults.record(entry)

    def _injected(self, rule, path):
        status, headers, ctype, body = rule.answer(
            path, REASONS.get(rule.status, "Unknown"),
            lambda st, msg: qapi.error(st, msg, time.perf_counter()).body)
        return qapi.Response(status, body if body is not None else b"", ctype, headers)

    def _send_huge(self, resp, rule, head_only=False):
        """Stream a huge injected body (never held in memory): Content-Length, or chunked."""
        lines = [f"HTTP/1.1 {resp.status} {REASONS.get(resp.status, 'Unknown')}"]
        lines.append("transfer-encoding: chunked" if rule.chunked else
                     f"content-length: {rule.huge}")
        lines.append(f"content-type: {resp.content_type}")
        lines += [f"{k}: {v}" for k, v in resp.headers]
        try:
            self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
            if head_only:
                return
            for piece in rule.huge_chunks():
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece) if rule.chunked
                                 else piece)
            if rule.chunked:
                self.wfile.write(b"0\r\n\r\n")
        except OSError:                        # the client gave up (e.g. its body cap): fine
            self.close_connection = True

    def _encode(self, resp, head_only=False):
        lines = [f"HTTP/1.1 {resp.status} {REASONS.get(resp.status, 'Unknown')}",
                 f"content-length: {len(resp.body)}"]
        if resp.content_type:
            lines.append(f"content-type: {resp.content_type}")
        for k, v in resp.headers:
            lines.append(f"{k}: {v}")
        if self.close_connection:
            lines.append("connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        return head + (b"" if head_only else resp.body)

    def _send(self, resp, head_only=False):
        try:
            self.wfile.write(self._encode(resp, head_only))
        except OSError:
            self.close_connection = True

    def _reset_mid_response(self, resp, mode="rst"):
        """mode "rst": half the response then RST; "empty": close (FIN) without a byte."""
        self.close_connection = True
        if mode == "rst":
            data = self._encode(resp)
            try:
                self.wfile.write(data[:max(1, len(data) // 2)])
                time.sleep(0.02)
            except OSError:
                pass
        for f in (self.wfile, self.rfile):
            try:
                f.close()
            except OSError:
                pass
        if mode == "rst":
            _rst_close(self.connection)
        else:
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


# -- control port ----------------------------------------------------------------------------------
class ControlHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 30

    def log_message(self, fmt, *args):
        pass

    def do_GET(self):
        app = self.server.app
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw.strip() else {}
            status, obj = control.handle_control(app, self.command, unquote(parts.path),
                                                 dict(parse_qsl(parts.query)), body)
        except control.ControlError as e:
            status, obj = e.status, {"ok": False, "error": str(e)}
        except (ValueError, KeyError, TypeError) as e:
            status, obj = 400, {"ok": False, "error": f"{type(e).__name__}: {e}"}
        data = qapi.dumps(obj)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_POST = do_PUT = do_DELETE = do_GET


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=6333)
    ap.add_argument("--control-port", type=int, default=0)
    ap.add_argument("--api-key", default=None)
    ap.add_argument("--bench-mode", action="store_true")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--nodes", type=int, default=1,
                    help="cluster mode: this many Qdrant ports sharing one store (cluster.py)")
    ap.add_argument("--parent-pid", type=int, default=0,
                    help="exit when this process is gone (set by client.QdrantStub)")
    args = ap.parse_args(argv)
    app = App(args.host, args.port, args.api_key, args.bench_mode, max(1, args.nodes))
    app.go_up()
    ctl = ThreadingHTTPServer((args.host, args.control_port), ControlHandler)
    ctl.daemon_threads = True
    ctl.app = app
    threading.Thread(target=ctl.serve_forever, daemon=True).start()
    ports = ",".join(str(nd.port) for nd in app.nodes)
    print(f"READY port={app.port} control_port={ctl.server_address[1]} ports={ports}", flush=True)
    try:
        while True:
            time.sleep(1.0)
            if args.parent_pid and os.getppid() != args.parent_pid:
                break    # the test process died (we were reparented): don't linger
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()

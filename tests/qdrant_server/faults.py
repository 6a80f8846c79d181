"""Fault-injection state and the request log of the Qdrant test server.

Owns: injected failures (fixed status for the next N matching requests or for S seconds, with
optional path regex / method / collection / point-writes-only filters, ``Retry-After`` in
seconds, as an HTTP date or any raw string, extra headers such as a redirect's ``Location``, a
Qdrant error envelope, a raw or JSON body, a proxy's HTML error page, or a huge body), injected
latency, TCP resets mid-response or empty replies, overridden update statuses
(``wait_timeout``), and the append-only request log served by the control API.

Invariants:
  * Rules are consumed in the order they were added; a request consumes at most one fail rule
    and at most one reset rule; an exhausted (count 0) or expired rule is dropped.
  * Fail rules answer *before* the request reaches the API (nothing is applied) unless
    ``"apply": true`` (the API runs, then the injected answer replaces the real one: a proxy
    timing out after Qdrant wrote); reset rules act *after* the API ran (by default the write
    is applied, the client just never sees the full answer — the idempotent-retry case).
    ``"apply": false`` resets before applying.
  * ``"writes": true`` matches point writes only (upsert, delete, payload and vector updates,
    batch), so ``/readyz``, collection info, scroll, count, query and retrieve stay healthy;
    ``"collection": name`` matches only that collection's routes; ``"min_body": N`` only
    requests whose body has at least N bytes (a proxy's body limit).
  * All state is guarded by one lock; ``reset()`` restores the pristine state.
"""
import json
import re
import threading
import time
from collections import deque

DEFAULT_MESSAGES = {
    400: "Wrong input: injected fault",
    404: "Not found: injected fault",
    408: "Timeout error: injected fault",
    401: "Invalid API key or JWT",
    403: "Forbidden: injected fault",
    409: "Wrong input: injected fault",
    413: "Payload too large: injected fault",
    429: "Too many requests: Rate limiting exceeded: injected fault",
    500: "Service internal error: injected fault",
    502: "Bad gateway: injected fault",
    503: "Service unavailable: Shard temporarily unavailable: injected fault",
    504: "Gateway timeout: injected fault",
    507: "Insufficient storage: injected fault",
}
# Qdrant's own 404 for a missing collection (real 1.18 answer, see shared/qdrant/recordings)
MISSING_COLLECTION = "Not found: Collection `{collection}` doesn't exist!"
# Plain-text answers (not Qdrant's JSON envelope): Qdrant's auth middleware answers 401 in text
# without a Content-Type header
PLAIN_TEXT = {401}
LOG_CAP = 200000
HUGE_MAX = 1 << 34   # 16 GiB: a bound on the generator, not a realistic size

_COLLECTION_PATH = re.compile(r"^/collections/([^/]+)(/|$)")
_WRITE_ROUTES = (
    ("PUT", re.compile(r"^/collections/[^/]+/points$")),                        # upsert
    ("POST", re.compile(r"^/collections/[^/]+/points/(delete|batch)$")),
    ("POST", re.compile(r"^/collections/[^/]+/points/payload(/delete|/clear)?$")),
    ("PUT", re.compile(r"^/collections/[^/]+/points/payload$")),                # overwrite
    ("PUT", re.compile(r"^/collections/[^/]+/points/vectors$")),
    ("POST", re.compile(r"^/collections/[^/]+/points/vectors/delete$")),
)

PROXY_HTML = ("<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n"
              "<center><h1>{status} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n"
              "</body>\r\n</html>\r\n")


def is_point_write(method, path):
    return any(method == m and rx.search(path) for m, rx in _WRITE_ROUTES)


def path_collection(path):
    m = _COLLECTION_PATH.search(path)
    return m.group(1) if m else None


class Rule:
    def __init__(self, spec, kind):
        self.kind = kind
        self.status = int(spec.get("status", 503))
        self.count = spec.get("count")
        seconds = spec.get("seconds")
        self.until = time.monotonic() + float(seconds) if seconds is not None else None
        if self.count is None and self.until is None:
            self.count = 1
        try:
            self.path = re.compile(spec["path"]) if spec.get("path") else None
        except re.error as e:
            raise ValueError(f"bad path regex: {e}") from None
        self.method = spec.get("method").upper() if spec.get("method") else None
        self.collection = spec.get("collection")
        self.node = spec.get("node")     # cluster mode: requests to that node only (its index)
        self.writes = bool(spec.get("writes", False))
        self.min_body = int(spec.get("min_body") or 0)  # only requests with a body this large
        #                                                 (a proxy's body limit: 413 on big batches)
        self.retry_after = spec.get("retry_after")      # int seconds, or a raw string (date...)
        if self.retry_after is not None and not isinstance(self.retry_after, (int, float, str)):
            raise ValueError("retry_after must be a number or a string")
        self.message = spec.get("message")
        self.body = spec.get("body")     # raw body override (str), e.g. "" for an empty reply
        self.json = spec.get("json")     # JSON body override (any value), application/json
        self.content_type = spec.get("content_type")
        self.html = bool(spec.get("html", False))       # a proxy's HTML error page
        headers = spec.get("headers") or {}
        if not isinstance(headers, dict):
            raise ValueError("headers must be an object")
        self.headers = [(str(k), str(v)) for k, v in headers.items()]
        if spec.get("location") is not None:
            self.headers.append(("Location", str(spec["location"])))
        self.huge = int(spec.get("huge") or 0)          # body of that many bytes (streamed)
        if self.huge < 0 or self.huge > HUGE_MAX:
            raise ValueError(f"huge must be within 0..{HUGE_MAX}")
        self.chunked = bool(spec.get("chunked", False))  # huge body without Content-Length
        self.apply = spec.get("apply", kind == "reset")
        self.ms = spec.get("ms", 0)
        self.mode = spec.get("mode", "rst")            # reset rules: "rst" | "empty"
        if self.mode not in ("rst", "empty"):
            raise ValueError(f"unknown reset mode {self.mode!r}")
        self.update_status = spec.get("update_status")  # update_status rules

    def expired(self, now):
        return (self.count is not None and self.count <= 0) or \
            (self.until is not None and now >= self.until)

    def matches(self, method, path, length=0, node=None):
        if self.min_body and length < self.min_body:
            return False
        if self.node is not None and node != self.node:
            return False
        if self.method is not None and method != self.method:
            return False
        if self.path is not None and not self.path.search(path):
            return False
        if self.writes and not is_point_write(method, path):
            return False
        if self.collection is not None and path_collection(path) != self.collection:
            return False
        return True

    def answer_message(self, path):
        """The error text of an injected answer (Qdrant's wording where known)."""
        if self.message:
            return self.message
        coll = path_collection(path)
        if self.status == 404 and coll is not None:
            return MISSING_COLLECTION.format(collection=coll)
        return DEFAULT_MESSAGES.get(self.status, "Injected fault")

    def answer(self, path, reason, envelope):
        """(status, headers, content_type, body bytes) of an injected answer; body is None for
        a huge body (the transport streams it, see ``huge_chunks``). ``envelope(status, msg)``
        builds Qdrant's JSON error envelope."""
        headers = list(self.headers)
        if self.retry_after is not None:
            ra = self.retry_after
            headers.append(("Retry-After", str(int(ra)) if isinstance(ra, (int, float)) else ra))
        if self.huge:
            return self.status, headers, self.content_type or "application/json", None
        if self.json is not None:
            return (self.status, headers, self.content_type or "application/json",
                    json.dumps(self.json, separators=(",", ":")).encode())
        if self.body is not None:
            return (self.status, headers, self.content_type or "text/plain; charset=utf-8",
                    self.body.encode())
        if self.html:
            return (self.status, headers, self.content_type or "text/html",
                    PROXY_HTML.format(status=self.status, reason=reason).encode())
        msg = self.answer_message(path)
        if self.status in PLAIN_TEXT:    # no Content-Type at all, as Qdrant 1.18.3 answers
            return self.status, headers, self.content_type, msg.encode()
        return self.status, headers, self.content_type or "application/json", \
            envelope(self.status, msg)

    def huge_chunks(self, size=1 << 20):
        """A syntactically valid success envelope of exactly ``self.huge`` bytes (or the bare
        padding when huge is smaller than the envelope), in pieces of ``size`` bytes."""
        head, tail = b'{"result":{"pad":"', b'"},"status":"ok","time":0.0}'
        pad = self.huge - len(head) - len(tail)
        if pad < 0:
            yield b"x" * self.huge
            return
        yield head
        block = b"x" * size
        while pad > 0:
            n = min(pad, size)
            yield block[:n]
            pad -= n
        yield tail

    def describe(self):
        return {"kind": self.kind, "status": self.status, "count": self.count,
                "seconds_left": None if self.until is None else
                max(0.0, self.until - time.monotonic()),
                "path": self.path.pattern if self.path else None, "method": self.method,
                "collection": self.collection, "node": self.node, "writes": self.writes,
                "retry_after": self.retry_after, "apply": self.apply, "ms": self.ms,
                "mode": self.mode, "update_status": self.update_status,
                "headers": dict(self.headers), "huge": self.huge, "chunked": self.chunked,
                "html": self.html, "json": self.json is not None}


class Faults:
    def __init__(self):
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        with getattr(self, "lock", threading.Lock()):
            self.fail_rules = []
            self.reset_rules = []
            self.latency_rules = []
            self.status_rules = []
            self.log = deque(maxlen=LOG_CAP)
            self.seq = 0

    def clear_faults(self):
        with self.lock:
            self.fail_rules.clear()
            self.reset_rules.clear()
            self.latency_rules.clear()
            self.status_rules.clear()

    def add(self, kind, spec):
        rule = Rule(spec, kind)
        with self.lock:
            {"fail": self.fail_rules, "reset": self.reset_rules,
             "latency": self.latency_rules, "status": self.status_rules}[kind].append(rule)
        return rule

    def set_latency(self, spec):
        """``{"ms": M}`` replaces all latency; with count/seconds/path it adds a rule."""
        with self.lock:
            if not any(k in spec for k in ("count", "seconds", "path", "method", "writes",
                                           "collection", "node")):
                self.latency_rules.clear()
                if spec.get("ms", 0) <= 0:
                    return
                spec = dict(spec, seconds=10 ** 9)
        self.add("latency", spec)

    def _take(self, rules, method, path, length=0, node=None):
        now = time.monotonic()
        rules[:] = [r for r in rules if not r.expired(now)]
        for r in rules:
            if r.matches(method, path, length, node):
                if r.count is not None:
                    r.count -= 1
                return r
        return None

    def take_fail(self, method, path, length=0, node=None):
        with self.lock:
            return self._take(self.fail_rules, method, path, length, node)

    def take_reset(self, method, path, node=None):
        with self.lock:
            return self._take(self.reset_rules, method, path, 0, node)

    def take_status(self, method, path, node=None):
        with self.lock:
            return self._take(self.status_rules, method, path, 0, node)

    def latency_ms(self, method, path, node=None):
        with self.lock:
            r = self._take(self.latency_rules, method, path, 0, node)
            return r.ms if r else 0

    def describe(self):
        with self.lock:
            now = time.monotonic()
            return [r.describe() for rules in (self.fail_rules, self.reset_rules,
                                               self.latency_rules, self.status_rules)
                    for r in rules if not r.expired(now)]

    # -- request log ----------------------------------------------------------------------------
    def record(self, entry):
        with self.lock:
            self.seq += 1
            entry["seq"] = self.seq
            self.log.append(entry)

    def entries(self, since=0):
        with self.lock:
            return [e for e in self.log if e["seq"] > since]

    def clear_log(self):
        with self.lock:
            self.log.clear()

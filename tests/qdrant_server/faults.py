"""Fault-injection state and the request log of the Qdrant test server.

Owns: injected failures (fixed status for the next N matching requests or for S seconds, with
optional path regex / method filter and ``Retry-After``), injected latency, TCP resets
mid-response or empty replies, overridden update statuses (``wait_timeout``), and the
append-only request log served by the control API.

Invariants:
  * Rules are consumed in the order they were added; a request consumes at most one fail rule
    and at most one reset rule; an exhausted (count 0) or expired rule is dropped.
  * Fail rules answer *before* the request reaches the API (nothing is applied); reset rules
    act *after* the API ran (by default the write is applied, the client just never sees the
    full answer — the idempotent-retry case). ``"apply": false`` resets before applying.
  * All state is guarded by one lock; ``reset()`` restores the pristine state.
"""
import re
import threading
import time
from collections import deque

DEFAULT_MESSAGES = {
    400: "Wrong input: injected fault",
    404: "Not found: injected fault",
    408: "Timeout error: injected fault",
    409: "Wrong input: injected fault",
    429: "Too many requests: Rate limiting exceeded: injected fault",
    500: "Service internal error: injected fault",
    502: "Bad gateway: injected fault",
    503: "Service unavailable: Shard temporarily unavailable: injected fault",
    504: "Gateway timeout: injected fault",
    507: "Insufficient storage: injected fault",
}
LOG_CAP = 200000


class Rule:
    def __init__(self, spec, kind):
        self.kind = kind
        self.status = int(spec.get("status", 503))
        self.count = spec.get("count")
        seconds = spec.get("seconds")
        self.until = time.monotonic() + float(seconds) if seconds is not None else None
        if self.count is None and self.until is None:
            self.count = 1
        self.path = re.compile(spec["path"]) if spec.get("path") else None
        self.method = spec.get("method").upper() if spec.get("method") else None
        self.retry_after = spec.get("retry_after")
        self.message = spec.get("message") or DEFAULT_MESSAGES.get(self.status,
                                                                  "Injected fault")
        self.body = spec.get("body")     # raw body override (str), e.g. "" for an empty reply
        self.apply = spec.get("apply", True)
        self.ms = spec.get("ms", 0)
        self.mode = spec.get("mode", "rst")            # reset rules: "rst" | "empty"
        if self.mode not in ("rst", "empty"):
            raise ValueError(f"unknown reset mode {self.mode!r}")
        self.update_status = spec.get("update_status")  # update_status rules

    def expired(self, now):
        return (self.count is not None and self.count <= 0) or \
            (self.until is not None and now >= self.until)

    def matches(self, method, path):
        if self.method is not None and method != self.method:
            return False
        if self.path is not None and not self.path.search(path):
            return False
        return True

    def describe(self):
        return {"kind": self.kind, "status": self.status, "count": self.count,
                "seconds_left": None if self.until is None else
                max(0.0, self.until - time.monotonic()),
                "path": self.path.pattern if self.path else None, "method": self.method,
                "retry_after": self.retry_after, "apply": self.apply, "ms": self.ms,
                "mode": self.mode, "update_status": self.update_status}


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
            if not any(k in spec for k in ("count", "seconds", "path", "method")):
                self.latency_rules.clear()
                if spec.get("ms", 0) <= 0:
                    return
                spec = dict(spec, seconds=10 ** 9)
        self.add("latency", spec)

    def _take(self, rules, method, path):
        now = time.monotonic()
        rules[:] = [r for r in rules if not r.expired(now)]
        for r in rules:
            if r.matches(method, path):
                if r.count is not None:
                    r.count -= 1
                return r
        return None

    def take_fail(self, method, path):
        with self.lock:
            return self._take(self.fail_rules, method, path)

    def take_reset(self, method, path):
        with self.lock:
            return self._take(self.reset_rules, method, path)

    def take_status(self, method, path):
        with self.lock:
            return self._take(self.status_rules, method, path)

    def latency_ms(self, method, path):
        with self.lock:
            r = self._take(self.latency_rules, method, path)
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

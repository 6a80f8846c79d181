"""The daemon's operator surface: /healthz, /readyz (flips with Qdrant), /status JSON, /metrics
(Prometheus text, counters move with traffic), robustness against garbage, pipelining and
oversized requests, and SIGHUP reloads (a valid change applies, a broken file is refused)."""
import json
import re
import signal
import socket
import urllib.error
import urllib.request

import pytest

from conftest import free_port, outbox_counts, wait_until

DIM = 4


def rule(**kw):
    r = {"table": "public.docs", "key": "id", "columns": "id, title", "vector_column": "emb",
         "dimension": str(DIM), "distance": "Dot", "collection": "docs"}
    r.update(kw)
    return r


@pytest.fixture
def docs(db):
    db.execute("CREATE TABLE docs (id bigint PRIMARY KEY, title text, emb real[])")
    return db


def get(port, path, timeout=10):
    """(status, body text) of GET path; HTTP errors are answers too."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError as e:
        return None, str(e)


def raw(port, data, timeout=10):
    """Send raw bytes, read until the server closes; returns the bytes received."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return out
            out += chunk


SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')


def parse_metrics(text):
    """{(name, frozenset(labels)): value}; checks every line is a comment or a valid sample."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("# HELP ") or line.startswith("# TYPE "):
            continue
        m = SAMPLE.match(line)
        assert m, f"bad exposition line: {line!r}"
        labels = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        out[(m.group(1), labels)] = float(m.group(4))
    return out


def metric(ms, name, **labels):
    return sum(v for (n, ls), v in ms.items() if n == name and set(labels.items()) <= ls)


def start(make_daemon, extra=None):
    port = free_port()
    sections = {"rule.docs": rule(), "worker.w1": {"event_types": "docs", "batch_size": "10"},
                "http": {"listen": f"127.0.0.1:{port}"}}
    for k, v in (extra or {}).items():
        sections.setdefault(k, {}).update(v)
    d = make_daemon(sections)
    d.cli("apply")
    p = d.start()
    wait_until(lambda: get(port, "/healthz")[0] == 200, what="/healthz answers", explain=d.log_text)
    return d, p, port


def test_endpoints_and_metrics_move(make_daemon, docs, qdrant):
    d, p, port = start(make_daemon)
    assert get(port, "/healthz") == (200, "ok\n")
    wait_until(lambda: get(port, "/readyz")[0] == 200, what="ready", explain=lambda: get(port, "/readyz")[1])
    before = parse_metrics(get(port, "/metrics")[1])
    for i in range(1, 31):
        docs.execute("INSERT INTO docs VALUES (%s, %s, %s)", (i, f"t{i}", [1.0, 0.0, 0.0, float(i)]))
    wait_until(lambda: outbox_counts(docs)[0] == 0 and len(qdrant.points("docs")) == 30, what="synced")

    def moved():
        ms = parse_metrics(get(port, "/metrics")[1])
        return ms if metric(ms, "pg2qdrant_events_applied_total", worker="w1") >= 30 else None
    ms = wait_until(moved, what="applied counter reaches 30")
    assert metric(before, "pg2qdrant_events_applied_total", worker="w1") == 0
    assert metric(ms, "pg2qdrant_events_claimed_total", worker="w1") >= 30
    assert metric(ms, "pg2qdrant_batch_size_count") >= 3            # batch_size = 10
    assert metric(ms, "pg2qdrant_batch_size_sum") >= 30
    assert metric(ms, "pg2qdrant_qdrant_request_duration_seconds_count", endpoint="upsert", **{"class": "2xx"}) >= 3
    assert metric(ms, "pg2qdrant_sync_lag_seconds_count") >= 30
    assert metric(ms, "pg2qdrant_sync_lag_seconds_bucket", le="+Inf") >= 30
    assert metric(ms, "pg2qdrant_breaker_state", target="qdrant") == 0
    assert metric(ms, "pg2qdrant_postgres_connected") == 1
    assert metric(ms, "pg2qdrant_ready") == 1
    assert ("pg2qdrant_build_info", frozenset()) not in ms and metric(ms, "pg2qdrant_build_info") == 1
    # /status JSON
    st = json.loads(get(port, "/status")[1])
    assert st["ready"] is True and st["breaker"]["state"] == "closed"
    assert st["postgres"] == {"connected": True, "listening": True, "reconnects": 0}
    assert st["uptime_seconds"] > 0 and st["version"]
    assert st["workers"][0]["name"] == "w1" and st["workers"][0]["applied"] >= 30
    assert st["lag_seconds"]["samples"] >= 30 and st["lag_seconds"]["p99"] >= st["lag_seconds"]["p50"] >= 0
    blas = st["blas"]  # the OpenBLAS kernel in use and why (blas_kernel.h), also as a metric
    assert blas["core"] and blas["cpu"] in ("sse", "avx", "avx2", "avx512") and blas["reason"]
    assert metric(ms, "pg2qdrant_blas_info", core=blas["core"], cpu=blas["cpu"], selected_by=blas["selected_by"],
                  detected=blas["detected"]) == 1
    # backlog from the periodic status query: a dead letter and waiting events show up
    docs.execute("INSERT INTO sync_outbox_dead (id, event_type, rule, source_table, row_key, op,"
                 " attempts, max_attempts, last_error, created_at)"
                 " VALUES (999999, 'docs', 'docs', 'public.docs', '{\"id\": 999}', 'upsert', 1, 1, 'test', now())")

    def dead_seen():
        s = json.loads(get(port, "/status")[1])
        rows = {r["event_type"]: r for r in s["outbox"]["event_types"]}
        return s if rows.get("docs", {}).get("dead") == 1 else None
    st = wait_until(dead_seen, what="/status shows the dead letter")
    row = st["outbox"]["event_types"][0]
    assert set(row) == {"event_type", "pending", "in_flight", "retrying", "dead", "oldest_pending_age_seconds"}
    assert st["outbox"]["age_seconds"] is not None
    wait_until(lambda: metric(parse_metrics(get(port, "/metrics")[1]), "pg2qdrant_outbox_events",
                              event_type="docs", state="dead") == 1, what="dead gauge")
    assert d.stop(p) == 0


def test_readyz_follows_qdrant(make_daemon, docs, qdrant):
    d, p, port = start(make_daemon)
    wait_until(lambda: get(port, "/readyz")[0] == 200, what="ready")
    qdrant.down()
    st, body = wait_until(lambda: (lambda r: r if r[0] == 503 else None)(get(port, "/readyz")),
                          what="/readyz 503 while Qdrant is down", timeout=60)
    assert "qdrant" in body
    assert get(port, "/healthz")[0] == 200  # alive, just not ready
    qdrant.up()
    wait_until(lambda: get(port, "/readyz")[0] == 200, what="/readyz 200 again", timeout=60,
               explain=lambda: get(port, "/readyz")[1])
    assert d.stop(p) == 0


def test_garbage_and_protocol_errors(make_daemon, docs, qdrant):
    d, p, port = start(make_daemon)
    assert raw(port, b"garbage\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    assert raw(port, b"\x16\x03\x01\x00\xa5\x01\x00").startswith(b"HTTP/1.1 400 ")   # TLS hello
    assert raw(port, b"GET /" + b"a" * 9000).startswith(b"HTTP/1.1 413 ")             # no line end
    assert raw(port, b"GET /" + b"a" * 600 + b" HTTP/1.1\r\nHost: x\r\n\r\n").startswith(b"HTTP/1.1 414 ")
    assert raw(port, b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 9000).startswith(b"HTTP/1.1 413 ")
    assert raw(port, b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n") \
        .startswith(b"HTTP/1.1 405 ")
    assert get(port, "/nope")[0] == 404
    # pipelined: three answers in order on one connection, the last closes it
    out = raw(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nHEAD /readyz HTTP/1.1\r\nHost: x\r\n\r\n"
                    b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert out.count(b"HTTP/1.1 ") == 3 and out.endswith(b"ok\n")
    # a partial request sent in pieces still works
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        for b in b"GET /healthz HTTP/1.0\r\n\r\n":
            s.send(bytes([b]))
        assert s.recv(4096).startswith(b"HTTP/1.1 200 ")
    # still serving after all that
    assert get(port, "/healthz") == (200, "ok\n")
    assert p.poll() is None
    # a second daemon on the same address: the endpoint fails (logged), the daemon keeps syncing
    p2 = d.start()
    wait_until(lambda: "event=status_http_failed" in d.log_text(p2), what="status_http_failed",
               explain=d.log_text)
    wait_until(lambda: "event=listening" in d.log_text(p2), what="second daemon runs")
    assert p2.poll() is None and d.stop(p2) == 0
    assert d.stop(p) == 0


def test_healthz_while_slow_clients_hold_connections(make_daemon, docs, qdrant):
    """Issue 9, bounded memory: clients that open connections and send nothing, or trickle a
    request byte by byte, never keep a probe's GET /healthz waiting for their 10 s timeout: at
    the cap (64) a new connection evicts the oldest one not being answered."""
    import time
    d, p, port = start(make_daemon)
    assert get(port, "/healthz") == (200, "ok\n")
    slow = []
    try:
        for i in range(80):  # more than the cap: half silent, half trickling a partial request
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            if i % 2:
                s.sendall(b"GET /healthz HTTP/1.1\r\nHo")
            slow.append(s)
        for s in slow[1::2]:
            try:
                s.sendall(b"s")  # still trickling: never a complete request
            except OSError:  # one of the oldest, already evicted
                pass
        for _ in range(3):  # the probe, several times, while every slow client still holds on
            t0 = time.monotonic()
            assert get(port, "/healthz", timeout=8) == (200, "ok\n")
            assert time.monotonic() - t0 < 5  # generous: far below the 10 s idle timeout
        # the oldest were evicted (closed by the server), the newest are still open
        slow[0].settimeout(5)
        assert slow[0].recv(100) == b""
        slow[-1].sendall(b"t: x\r\n\r\n")
        slow[-1].settimeout(5)
        assert slow[-1].recv(100).startswith(b"HTTP/1.1 200 ")
    finally:
        for s in slow:
            s.close()
    assert p.poll() is None and d.stop(p) == 0


def test_sighup_reload(make_daemon, docs, qdrant):
    d, p, port = start(make_daemon)
    text = d.path.read_text()
    # a valid live change: log level and the worker's batch size
    d.path.write_text(text.replace("level = info", "level = debug").replace("batch_size = 10", "batch_size = 7"))
    p.send_signal(signal.SIGHUP)
    wait_until(lambda: "event=reloaded" in d.log_text(p), what="reloaded", explain=d.log_text)
    assert "[log] level" in d.log_text(p) and "[worker.w1] batch_size" in d.log_text(p)
    docs.execute("INSERT INTO docs VALUES (1, 'x', '{1,0,0,0}')")
    wait_until(lambda: "level=debug event=claimed" in d.log_text(p), what="debug logging applied",
               explain=d.log_text)
    # a broken file: logged, the old config keeps running
    d.path.write_text(text.replace("[worker.w1]", "[worker.w1]\nbatch_sise = 3"))
    p.send_signal(signal.SIGHUP)
    wait_until(lambda: "event=reload_failed" in d.log_text(p), what="reload_failed", explain=d.log_text)
    assert "batch_sise" in d.log_text(p)
    # a change that needs a restart is refused as a whole
    d.path.write_text(text.replace("collection = docs", "collection = other").replace("level = info", "level = warn"))
    p.send_signal(signal.SIGHUP)
    wait_until(lambda: "event=reload_refused" in d.log_text(p), what="reload_refused", explain=d.log_text)
    assert "restart_required" in d.log_text(p) and "[rule.docs] collection" in d.log_text(p)
    docs.execute("INSERT INTO docs VALUES (2, 'y', '{1,0,0,1}')")
    wait_until(lambda: len(qdrant.points("docs")) == 2, what="still syncing")
    assert p.poll() is None and get(port, "/healthz")[0] == 200
    ms = parse_metrics(get(port, "/metrics")[1])
    assert metric(ms, "pg2qdrant_config_reloads_total", result="ok") == 1
    assert metric(ms, "pg2qdrant_config_reloads_total", result="error") == 1
    assert metric(ms, "pg2qdrant_config_reloads_total", result="refused") == 1
    assert d.stop(p) == 0

"""Integration tests of the Qdrant test server's fault injection, control API and transport.

Owns: down/up (refused connections, aborted keep-alive connections, data kept), injected
statuses for N requests or a time window (path/method/collection/writes-only filters), 429 with
and without ``Retry-After`` (seconds, absurd, negative, HTTP dates, garbage), the answers a proxy
may give (200 with an error envelope, HTML pages, 3xx with ``Location``, 401/403/404/413 texts,
answers after applying), huge bodies (Content-Length and chunked), latency, TCP reset
mid-response (applied and not applied), idle keep-alive close after 5 s, the request log,
``corrupt``, ``reset`` and ``clear_faults``.

Invariants: every test starts from a reset server; the only timing assertions are lower
bounds of injected delays and the generous 5 s idle-close window.
"""
import http.client
import json
import pathlib
import socket
import sys
import time

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
from tests.qdrant_server.fixture import qdrant, qdrant_session  # noqa: E402,F401

PTS = [{"id": i, "vector": [float(i), 1.0, 0.0, 0.0], "payload": {"i": i}} for i in (1, 2, 3)]


def make(qdrant):
    status, body = qdrant.create_collection("c", size=4, distance="Dot")
    assert status == 200, body


def raw_request(qdrant, conn, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    conn.request(method, path, body=data,
                 headers={"Content-Type": "application/json"} if data else {})
    resp = conn.getresponse()
    return resp.status, resp.read(), resp


# -- down / up --------------------------------------------------------------------------------------
def test_down_refuses_connections_and_up_restores(qdrant):
    make(qdrant)
    keep = http.client.HTTPConnection(qdrant.host, qdrant.port, timeout=5)
    assert raw_request(qdrant, keep, "GET", "/collections/c")[0] == 200
    qdrant.down()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((qdrant.host, qdrant.port), timeout=5)
    with pytest.raises((ConnectionError, http.client.HTTPException, OSError)):
        raw_request(qdrant, keep, "GET", "/collections/c")   # open keep-alive conn was aborted
    keep.close()
    assert qdrant.state()["down"] is True
    qdrant.up()
    assert qdrant.state()["down"] is False
    assert qdrant.call("GET", "/collections/c/exists")[1]["result"] == {"exists": True}


def test_reset_brings_port_up_and_drops_everything(qdrant):
    make(qdrant)
    qdrant.fail(503, count=5)
    qdrant.down()
    qdrant.reset()
    status, body = qdrant.call("GET", "/collections")
    assert status == 200 and body["result"] == {"collections": []}
    assert [e["path"] for e in qdrant.log()] == ["/collections"]


def test_reset_drops_a_write_still_held_by_latency(qdrant):
    """A write on the wire when the server is reset (a daemon of the previous test, killed while
    a latency rule held its request) is dropped unanswered, never applied: the next test's
    collection of the same name never gets it (test_durability's crash test saw rows go back to
    an earlier test's snapshot ~20 s after test_recover_window's kill: session15-rx15.md)."""
    make(qdrant)
    qdrant.latency(1500, path="/points", method="PUT")
    stale = http.client.HTTPConnection(qdrant.host, qdrant.port, timeout=10)
    assert raw_request(qdrant, stale, "GET", "/collections/c")[0] == 200  # accepted before the reset
    stale.request("PUT", "/collections/c/points?wait=true",
                  body=json.dumps({"points": [dict(PTS[0], payload={"n": 0})]}).encode(),
                  headers={"Content-Type": "application/json"})
    time.sleep(0.3)  # (most likely asleep in its latency by now; read after the reset, dropped all the same)
    qdrant.reset()   # the next test's fixture
    make(qdrant)
    status, body = qdrant.upsert("c", [dict(PTS[0], payload={"n": 5})])
    assert status == 200, body
    with pytest.raises((ConnectionError, http.client.HTTPException, OSError)):
        stale.getresponse()  # unanswered: the reset woke it and it was dropped
    time.sleep(1.5)  # past the latency the request would have slept
    assert [p["payload"] for p in qdrant.points("c")] == [{"n": 5}]
    assert [e["ids"] for e in qdrant.log() if e["method"] == "PUT" and e["path"].endswith("/points")] == [[1]]
    stale.close()


# -- injected statuses ------------------------------------------------------------------------------
def test_fail_count_then_recover(qdrant):
    make(qdrant)
    qdrant.fail(503, count=2)
    for _ in range(2):
        status, body = qdrant.upsert("c", PTS)
        assert status == 503
        assert body["status"]["error"].startswith("Service unavailable")
        assert isinstance(body["time"], float)
    assert qdrant.points("c") == []          # nothing applied while failing
    status, body = qdrant.upsert("c", PTS)
    assert status == 200
    assert len(qdrant.points("c")) == 3
    log = qdrant.log()[-3:]
    assert [e["status"] for e in log] == [503, 503, 200]
    assert [e["fault"] for e in log] == ["fail", "fail", None]
    assert [e["points"] for e in log] == [3, 3, 3] and log[0]["ids"] == [1, 2, 3]


@pytest.mark.parametrize("status,prefix", [(500, "Service internal error"),
                                           (408, "Timeout error"),
                                           (507, "Insufficient storage")])
def test_fail_status_messages(qdrant, status, prefix):
    make(qdrant)
    qdrant.fail(status, count=1)
    got, body = qdrant.upsert("c", PTS)
    assert got == status and body["status"]["error"].startswith(prefix)


def test_fail_path_and_method_filters(qdrant):
    make(qdrant)
    qdrant.fail(500, count=1, path=r"/points/delete$", method="POST")
    assert qdrant.upsert("c", PTS)[0] == 200                  # not matched, rule kept
    assert qdrant.scroll("c")[0] == 200
    assert qdrant.delete("c", ids=[1])[0] == 500             # matched
    assert qdrant.delete("c", ids=[1])[0] == 200             # rule consumed
    assert [p["id"] for p in qdrant.points("c")] == [2, 3]


def test_fail_time_window(qdrant):
    make(qdrant)
    qdrant.fail(500, seconds=1.5)
    assert qdrant.upsert("c", PTS)[0] == 500
    assert qdrant.upsert("c", PTS)[0] == 500
    time.sleep(2.0)
    assert qdrant.upsert("c", PTS)[0] == 200


def test_429_with_and_without_retry_after(qdrant):
    make(qdrant)
    qdrant.fail(429, count=1, retry_after=3)
    status, body, headers = qdrant.request("PUT", "/collections/c/points?wait=true",
                                           {"points": PTS})
    assert status == 429 and headers["Retry-After"] == "3"
    assert body["status"]["error"].startswith("Too many requests")
    qdrant.fail(429, count=1)
    status, body, headers = qdrant.request("PUT", "/collections/c/points?wait=true",
                                           {"points": PTS})
    assert status == 429 and "Retry-After" not in headers


def test_fail_with_raw_body(qdrant):
    qdrant.fail(502, count=1, body="upstream gone")
    status, body, headers = qdrant.request("GET", "/collections")
    assert status == 502 and body == "upstream gone"


def test_clear_faults(qdrant):
    make(qdrant)
    qdrant.fail(503, count=10)
    qdrant.latency(50)
    assert len(qdrant.state()["faults"]) == 2
    qdrant.clear_faults()
    assert qdrant.state()["faults"] == []
    assert qdrant.upsert("c", PTS)[0] == 200


# -- latency ----------------------------------------------------------------------------------------
def test_latency(qdrant):
    make(qdrant)
    qdrant.latency(400)
    t0 = time.monotonic()
    assert qdrant.call("GET", "/collections/c")[0] == 200
    assert time.monotonic() - t0 >= 0.4
    qdrant.latency(0)
    assert qdrant.state()["faults"] == []


def test_latency_for_n_requests_on_path(qdrant):
    make(qdrant)
    qdrant.latency(300, count=1, path="/points/scroll")
    t0 = time.monotonic()
    assert qdrant.scroll("c")[0] == 200
    assert time.monotonic() - t0 >= 0.3
    assert qdrant.state()["faults"] == []


# -- connection resets ------------------------------------------------------------------------------
def test_reset_mid_response_after_applying(qdrant):
    make(qdrant)
    qdrant.reset_connection(count=1)
    with pytest.raises((ConnectionError, http.client.HTTPException)):
        qdrant.upsert("c", PTS)
    assert len(qdrant.points("c")) == 3         # the write happened; only the answer was lost
    entry = qdrant.log()[-1]
    assert entry["fault"] == "reset" and entry["status"] == 200 and entry["points"] == 3
    assert qdrant.upsert("c", PTS)[0] == 200    # next request is fine


def test_reset_before_applying(qdrant):
    make(qdrant)
    qdrant.reset_connection(count=2, apply=False, path="/points$")
    for _ in range(2):
        with pytest.raises((ConnectionError, http.client.HTTPException)):
            qdrant.upsert("c", PTS)
    assert qdrant.points("c") == []
    entry = qdrant.log()[-1]
    assert entry["fault"] == "reset" and entry["status"] == 0 and entry["points"] == 3
    assert entry["collection"] == "c"
    assert qdrant.upsert("c", PTS)[0] == 200


def test_reset_sends_partial_response_then_rst(qdrant):
    make(qdrant)
    qdrant.reset_connection(count=1)
    s = socket.create_connection((qdrant.host, qdrant.port), timeout=5)
    s.sendall(b"GET /collections/c HTTP/1.1\r\nHost: x\r\n\r\n")
    got = b""
    with pytest.raises(ConnectionResetError):
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
    s.close()
    assert got.startswith(b"HTTP/1.1 200")      # part of the answer arrived before the RST


# -- keep-alive -------------------------------------------------------------------------------------
def test_keep_alive_reuse_and_idle_close_after_5s(qdrant):
    s = socket.create_connection((qdrant.host, qdrant.port), timeout=15)
    for _ in range(2):        # two requests on one connection
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        buf = b""
        while b"healthz check passed" not in buf:
            buf += s.recv(4096)
        assert buf.startswith(b"HTTP/1.1 200")
    t0 = time.monotonic()
    assert s.recv(1) == b""   # server closes the idle connection
    idle = time.monotonic() - t0
    s.close()
    assert 4.0 <= idle <= 9.0, idle


def test_connection_close_header_honoured(qdrant):
    s = socket.create_connection((qdrant.host, qdrant.port), timeout=5)
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    buf = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        buf += chunk
    s.close()
    assert buf.startswith(b"HTTP/1.1 200") and buf.endswith(b"healthz check passed")


# -- request log, points dump, corrupt --------------------------------------------------------------
def test_request_log_contents(qdrant):
    make(qdrant)
    qdrant.upsert("c", PTS)
    qdrant.delete("c", ids=[2, "550e8400-e29b-41d4-a716-446655440000"])
    qdrant.upsert("c", [{"id": 9, "vector": [1.0, 2.0]}])      # dimension error
    log = qdrant.log()
    assert [e["seq"] for e in log] == sorted(e["seq"] for e in log)
    create, up, dele, bad = log
    assert create["method"] == "PUT" and create["path"] == "/collections/c"
    assert up["collection"] == "c" and up["points"] == 3 and up["ids"] == [1, 2, 3]
    assert up["query"] == {"wait": "true"} and up["status"] == 200
    assert dele["path"] == "/collections/c/points/delete" and dele["points"] == 2
    assert dele["ids"] == [2, "550e8400-e29b-41d4-a716-446655440000"]
    assert bad["status"] == 400 and bad["points"] == 1
    for e in log:
        assert set(e) >= {"seq", "ts", "method", "path", "query", "collection", "points",
                          "ids", "status"}
    assert [e["seq"] for e in qdrant.log(since=up["seq"])] == [dele["seq"], bad["seq"]]
    qdrant.clear_log()
    assert qdrant.log() == []


def test_points_dump_and_corrupt(qdrant):
    make(qdrant)
    qdrant.upsert("c", PTS)
    qdrant.corrupt("c", 1, payload={"i": 100, "extra": "x"})
    qdrant.corrupt("c", 2, set_payload={"only": 1})
    qdrant.corrupt("c", 3, delete=True)
    pts = qdrant.points("c")
    assert [(p["id"], p["payload"]) for p in pts] == [(1, {"i": 100, "extra": "x"}),
                                                      (2, {"only": 1})]
    assert pts[0]["vector"] == [1.0, 1.0, 0.0, 0.0]
    assert qdrant.log()[-1]["path"] == "/collections/c/points"   # control calls not logged
    with pytest.raises(RuntimeError):
        qdrant.points("missing")


def test_expect_100_continue(qdrant):
    make(qdrant)
    body = json.dumps({"points": PTS}).encode()
    s = socket.create_connection((qdrant.host, qdrant.port), timeout=5)
    s.sendall(b"PUT /collections/c/points?wait=true HTTP/1.1\r\nHost: x\r\n"
              b"Content-Type: application/json\r\nExpect: 100-continue\r\n"
              b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n")
    interim = s.recv(4096)
    assert interim.startswith(b"HTTP/1.1 100")
    s.sendall(body)
    buf = b""
    while b'"status":"ok"' not in buf:
        chunk = s.recv(4096)
        assert chunk
        buf += chunk
    s.close()
    assert b"HTTP/1.1 200" in buf and len(qdrant.points("c")) == 3


def test_empty_reply(qdrant):
    make(qdrant)
    qdrant.empty_reply(count=1, path="/points$")
    with pytest.raises((ConnectionError, http.client.HTTPException)) as exc:
        qdrant.upsert("c", PTS)
    assert isinstance(exc.value, (http.client.RemoteDisconnected, ConnectionResetError))
    assert len(qdrant.points("c")) == 3          # applied, answer never sent
    assert qdrant.log()[-1]["fault"] == "reset"
    assert qdrant.upsert("c", PTS)[0] == 200


def test_update_status_wait_timeout(qdrant):
    make(qdrant)
    qdrant.update_status("wait_timeout", count=1)
    status, body = qdrant.upsert("c", PTS)
    assert status == 200 and body["result"]["status"] == "wait_timeout"
    assert isinstance(body["result"]["operation_id"], int)
    assert len(qdrant.points("c")) == 3
    assert qdrant.upsert("c", PTS)[1]["result"]["status"] == "completed"


# -- failure-matrix modes: filters, answers a proxy may give, huge bodies ----------------------------
def _raw(qdrant, method, path, body=None):
    """(status, headers dict, raw body bytes) on a fresh connection."""
    conn = http.client.HTTPConnection(qdrant.host, qdrant.port, timeout=30)
    try:
        data = json.dumps(body).encode() if body is not None else None
        conn.request(method, path, body=data,
                     headers={"Content-Type": "application/json"} if data else {})
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


def test_fail_writes_only_keeps_reads_and_readyz_healthy(qdrant):
    make(qdrant)
    assert qdrant.upsert("c", PTS)[0] == 200
    qdrant.fail(503, seconds=60, writes=True)
    assert qdrant.upsert("c", PTS)[0] == 503
    assert qdrant.delete("c", ids=[1])[0] == 503
    assert qdrant.set_payload("c", {"x": 1}, ids=[1])[0] == 503
    assert qdrant.set_payload("c", {"x": 1}, ids=[1], overwrite=True)[0] == 503
    assert qdrant.call("POST", "/collections/c/points/payload/delete?wait=true",
                       {"keys": ["i"], "points": [1]})[0] == 503
    assert qdrant.call("POST", "/collections/c/points/payload/clear?wait=true",
                       {"points": [1]})[0] == 503
    # reads, health and collection management are not writes
    assert qdrant.call("GET", "/readyz")[0] == 200
    assert qdrant.call("GET", "/healthz")[0] == 200
    assert qdrant.collection_info("c")[0] == 200
    assert qdrant.scroll("c")[0] == 200
    assert qdrant.count("c")[0] == 200
    assert qdrant.retrieve("c", [1])[0] == 200                 # POST /points is a read
    assert qdrant.call("GET", "/collections/c/points/1")[0] == 200
    assert qdrant.create_index("c", "k")[0] == 200
    assert [p["payload"] for p in qdrant.points("c")][0] == {"i": 1}   # nothing applied
    assert qdrant.state()["faults"][0]["writes"] is True


def test_fail_one_collection_of_two(qdrant):
    for name in ("a", "ab"):
        assert qdrant.create_collection(name, size=4, distance="Dot")[0] == 200
    qdrant.fail(503, seconds=60, collection="a", writes=True)
    assert qdrant.upsert("a", PTS)[0] == 503
    assert qdrant.upsert("ab", PTS)[0] == 200                  # exact name, not a prefix
    assert qdrant.scroll("a")[0] == 200
    assert qdrant.points("a") == [] and len(qdrant.points("ab")) == 3
    log = qdrant.log()
    assert [(e["collection"], e["status"], e["fault"]) for e in log[-3:]] == \
        [("a", 503, "fail"), ("ab", 200, None), ("a", 200, None)]
    # a collection filter without `writes` also fails that collection's reads
    qdrant.clear_faults()
    qdrant.fail(500, count=1, collection="ab")
    assert qdrant.scroll("a")[0] == 200
    assert qdrant.scroll("ab")[0] == 500


def test_error_envelope_with_200_is_not_applied(qdrant):
    make(qdrant)
    qdrant.fail(200, count=1, writes=True, json={"status": {"error": "boom"}, "result": None})
    status, headers, raw = _raw(qdrant, "PUT", "/collections/c/points?wait=true",
                                {"points": PTS})
    assert status == 200 and headers["content-type"] == "application/json"
    assert json.loads(raw) == {"status": {"error": "boom"}, "result": None}
    assert qdrant.points("c") == []                            # a client taking this as success loses data
    assert qdrant.log()[-1]["fault"] == "fail" and qdrant.log()[-1]["points"] == 3


def test_fail_after_applying(qdrant):
    make(qdrant)
    qdrant.fail(504, count=1, writes=True, apply=True, html=True)
    status, headers, raw = _raw(qdrant, "PUT", "/collections/c/points?wait=true",
                                {"points": PTS})
    assert status == 504 and headers["content-type"] == "text/html"
    assert b"<center><h1>504 Gateway Timeout</h1></center>" in raw
    assert len(qdrant.points("c")) == 3                        # the write did happen


def test_413_proxy_page(qdrant):
    make(qdrant)
    qdrant.fail(413, count=1, writes=True, html=True)
    status, headers, raw = _raw(qdrant, "PUT", "/collections/c/points?wait=true",
                                {"points": PTS})
    assert status == 413 and headers["content-type"] == "text/html"
    assert raw.startswith(b"<html>") and b"413 Payload Too Large" in raw
    qdrant.fail(413, count=1)                                  # without html: Qdrant-style envelope
    status, body = qdrant.upsert("c", PTS)
    assert status == 413 and body["status"]["error"].startswith("Payload too large")


def test_401_403_404_texts(qdrant):
    make(qdrant)
    qdrant.fail(401, count=1)
    status, headers, raw = _raw(qdrant, "PUT", "/collections/c/points?wait=true",
                                {"points": PTS})
    assert status == 401 and raw == b"Invalid API key or JWT"      # Qdrant's plain-text 401
    assert "content-type" not in headers                          # nor a Content-Type
    qdrant.fail(403, count=1)
    status, body = qdrant.upsert("c", PTS)
    assert status == 403 and body["status"]["error"].startswith("Forbidden: ")
    qdrant.fail(404, count=1, writes=True)
    status, body = qdrant.upsert("c", PTS)
    assert status == 404 and body["status"]["error"] == "Not found: Collection `c` doesn't exist!"
    # the same text as a really missing collection
    assert qdrant.upsert("gone", PTS)[1]["status"]["error"] == \
        "Not found: Collection `gone` doesn't exist!"
    assert qdrant.points("c") == []


def test_redirect_with_location(qdrant):
    make(qdrant)
    qdrant.fail(307, count=1, writes=True, location="http://user:s3cret@elsewhere:6333/x",
                body="")
    status, headers, raw = _raw(qdrant, "PUT", "/collections/c/points?wait=true",
                                {"points": PTS})
    assert status == 307 and raw == b""
    assert headers["Location"] == "http://user:s3cret@elsewhere:6333/x"
    qdrant.fail(301, count=1, headers={"Location": "/elsewhere", "X-Proxy": "p"})
    status, headers, _ = _raw(qdrant, "GET", "/collections/c")
    assert status == 301 and headers["Location"] == "/elsewhere" and headers["X-Proxy"] == "p"


@pytest.mark.parametrize("value,sent", [
    (7, "7"),
    (99999999999, "99999999999"),
    (-5, "-5"),
    ("Wed, 21 Oct 2037 07:28:00 GMT", "Wed, 21 Oct 2037 07:28:00 GMT"),     # IMF-fixdate
    ("Sunday, 06-Nov-94 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT"),   # RFC 850
    ("Sun Nov  6 08:49:37 1994", "Sun Nov  6 08:49:37 1994"),               # asctime
    ("soon", "soon"),
])
def test_429_retry_after_forms(qdrant, value, sent):
    make(qdrant)
    qdrant.fail(429, count=1, writes=True, retry_after=value)
    status, body, headers = qdrant.request("PUT", "/collections/c/points?wait=true",
                                           {"points": PTS})
    assert status == 429 and headers["Retry-After"] == sent
    assert body["status"]["error"].startswith("Too many requests")


def test_reset_writes_only_for_a_time_window(qdrant):
    make(qdrant)
    qdrant.reset_connection(seconds=60, writes=True, collection="c", apply=False)
    for _ in range(3):
        with pytest.raises((ConnectionError, http.client.HTTPException)):
            qdrant.upsert("c", PTS)
    assert qdrant.call("GET", "/readyz")[0] == 200
    assert qdrant.scroll("c")[0] == 200
    assert qdrant.points("c") == []
    (rule,) = qdrant.state()["faults"]
    assert rule["kind"] == "reset" and rule["count"] is None and rule["seconds_left"] > 50


def test_latency_writes_only(qdrant):
    make(qdrant)
    qdrant.latency(400, count=1, writes=True)
    assert qdrant.scroll("c")[0] == 200
    assert qdrant.call("GET", "/readyz")[0] == 200
    (rule,) = qdrant.state()["faults"]
    assert rule["count"] == 1 and rule["writes"] is True     # reads did not consume it
    t0 = time.monotonic()
    assert qdrant.upsert("c", PTS)[0] == 200
    assert time.monotonic() - t0 >= 0.4
    assert qdrant.state()["faults"] == []


@pytest.mark.parametrize("chunked", [False, True])
def test_huge_body(qdrant, chunked):
    make(qdrant)
    size = 50 * 1024 * 1024
    qdrant.fail(200, count=1, writes=True, huge=size, chunked=chunked)
    conn = http.client.HTTPConnection(qdrant.host, qdrant.port, timeout=60)
    conn.request("PUT", "/collections/c/points?wait=true", body=json.dumps({"points": PTS}),
                 headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    assert resp.status == 200
    if chunked:
        assert resp.getheader("Transfer-Encoding") == "chunked"
        assert resp.getheader("Content-Length") is None
    else:
        assert resp.getheader("Content-Length") == str(size)
    total, head = 0, b""
    while True:
        piece = resp.read(1 << 20)
        if not piece:
            break
        if len(head) < 32:
            head += piece[:32]
        total += len(piece)
    conn.close()
    assert total == size and head.startswith(b'{"result":{"pad":"xxx')
    assert qdrant.points("c") == []
    # a small one is a valid success envelope of exactly that size
    qdrant.fail(200, count=1, huge=200, chunked=chunked)
    status, _, raw = _raw(qdrant, "GET", "/collections/c")
    doc = json.loads(raw)
    assert status == 200 and len(raw) == 200 and doc["status"] == "ok"


def test_huge_body_client_hangs_up(qdrant):
    """A client that stops reading (its body cap) does not wedge the server."""
    qdrant.fail(200, count=1, huge=200 * 1024 * 1024)
    s = socket.create_connection((qdrant.host, qdrant.port), timeout=10)
    s.sendall(b"GET /collections HTTP/1.1\r\nHost: x\r\n\r\n")
    assert s.recv(4096).startswith(b"HTTP/1.1 200")
    s.close()
    assert qdrant.call("GET", "/readyz")[0] == 200


def test_bad_fault_specs_rejected(qdrant):
    for spec in ({"status": 500, "path": "("}, {"status": 500, "huge": -1},
                 {"status": 500, "headers": ["x"]}, {"status": 500, "retry_after": [1]}):
        with pytest.raises(RuntimeError):
            qdrant.control("POST", "fail", spec)
    assert qdrant.state()["faults"] == []

"""Integration tests of the Qdrant test server's fault injection, control API and transport.

Owns: down/up (refused connections, aborted keep-alive connections, data kept), injected
statuses for N requests or a time window (path/method filters), 429 with and without
``Retry-After``, latency, TCP reset mid-response (applied and not applied), idle keep-alive
close after 5 s, the request log, ``corrupt``, ``reset`` and ``clear_faults``.

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

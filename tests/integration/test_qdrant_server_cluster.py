"""Integration tests of the Qdrant test server's cluster mode (``--nodes N``, cluster.py).

Owns: several ports sharing one store, ``GET /cluster`` (enabled on every node with its own
peer id, all peers listed, a down peer in ``message_send_failures``; ``disabled`` on a single
node, as real Qdrant answers), default ``shard_number`` = nodes, shard placement with
replication, a node taken down (refused, shards unavailable, back up with its data), writes
whose shards are partly down (the healthy shards apply, HTTP 500 with Qdrant's exact
``x out of y shards failed to apply operation`` text; all shards down: the first error alone,
nothing applied), replication keeping writes whole, ``write_consistency_factor``, deletes by
filter reaching every shard, a SIGTERM-like stop (open connections served during the grace,
new ones refused, then reset), fault rules for one node (a 503 from a node in recovery).

Invariants: each test starts its own 3-node server (stopped at the end); the only timing
assertions are the grace window's generous bounds.
"""
import http.client
import json
import pathlib
import select
import socket
import sys
import time

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
from tests.qdrant_server.client import QdrantStub  # noqa: E402
from tests.qdrant_server.fixture import qdrant, qdrant_session  # noqa: E402,F401

SHARDS_FAILED = ("Service internal error: {f} out of {t} shards failed to apply operation. "
                 "First error captured: Service internal error: Tonic status error: status: "
                 "Unavailable, message: \"error trying to connect: tcp connect error: Connection "
                 "refused (os error 111)\", details: [], metadata: MetadataMap {{ headers: {{}} }}")


@pytest.fixture
def cluster():
    q = QdrantStub.start(nodes=3)
    try:
        yield q
    finally:
        q.stop()


def pts(ids, v=1):
    return [{"id": i, "vector": [1.0, float(i)], "payload": {"v": v}} for i in ids]


def create(q, name="c", **extra):
    status, body = q.call_node(0, "PUT", f"/collections/{name}",
                               dict({"vectors": {"size": 2, "distance": "Dot"}}, **extra))
    assert status == 200, body


def payloads(q, name="c"):
    return {p["id"]: p["payload"].get("v") for p in q.points(name)}


def test_single_node_cluster_disabled(qdrant):
    status, body = qdrant.call("GET", "/cluster")
    assert status == 200 and body["result"] == {"status": "disabled"}
    assert qdrant.ports == [qdrant.port] and qdrant.cluster_url == qdrant.url


def test_cluster_status_every_node(cluster):
    assert len(cluster.ports) == 3 and len(set(cluster.ports)) == 3
    ids = set()
    for n in range(3):
        status, body = cluster.call_node(n, "GET", "/cluster")
        r = body["result"]
        assert status == 200 and r["status"] == "enabled"
        assert len(r["peers"]) == 3 and str(r["peer_id"]) in r["peers"]
        assert r["raft_info"]["leader"] == int(min(r["peers"], key=int))
        assert r["raft_info"]["role"] == ("Leader" if n == 0 else "Follower")
        assert r["consensus_thread_status"]["consensus_thread_status"] == "working"
        assert r["message_send_failures"] == {}
        ids.add(r["peer_id"])
    assert len(ids) == 3
    cluster.node_down(2)
    status, body = cluster.call_node(0, "GET", "/cluster")
    assert len(body["result"]["peers"]) == 3              # a peer gone is still a peer
    (fail,) = body["result"]["message_send_failures"].values()
    assert fail["count"] >= 1 and "Connection refused" in fail["latest_error"]


def test_shared_store_and_default_shards(cluster):
    create(cluster)
    status, body = cluster.call_node(1, "GET", "/collections/c")
    assert body["result"]["config"]["params"]["shard_number"] == 3   # one per node by default
    assert cluster.cluster()["collections"]["c"]["shards"] == [[0], [1], [2]]
    assert cluster.call_node(2, "PUT", "/collections/c/points?wait=true", {"points": pts(range(10))})[0] == 200
    status, body = cluster.call_node(0, "POST", "/collections/c/points/count", {"exact": True})
    assert body["result"]["count"] == 10
    create(cluster, "r", replication_factor=2, shard_number=4)
    assert cluster.cluster()["collections"]["r"]["shards"] == [[0, 1], [1, 2], [2, 0], [0, 1]]


def test_node_down_partial_write_applies_healthy_shards(cluster):
    create(cluster)
    ids = list(range(30))
    assert cluster.call_node(0, "PUT", "/collections/c/points?wait=true", {"points": pts(ids, 1)})[0] == 200
    where = {s["id"]: s["nodes"] for s in cluster.shard_of("c", ids)}
    assert {n for ns in where.values() for n in ns} == {0, 1, 2}
    cluster.node_down(2)
    with pytest.raises(ConnectionRefusedError):
        cluster.call_node(2, "GET", "/readyz")
    assert cluster.call_node(0, "GET", "/readyz")[0] == 200   # the others stay ready
    status, body = cluster.call_node(0, "PUT", "/collections/c/points?wait=true", {"points": pts(ids, 2)})
    assert status == 500
    assert body["status"]["error"] == SHARDS_FAILED.format(f=1, t=3)
    got = payloads(cluster)
    assert all(got[i] == (1 if where[i] == [2] else 2) for i in ids)   # healthy shards applied
    # the batch form and deletes by id behave the same
    status, body = cluster.call_node(1, "PUT", "/collections/c/points?wait=true",
                                     {"batch": {"ids": ids, "vectors": [[1.0, 0.0]] * 30,
                                                "payloads": [{"v": 3}] * 30}})
    assert status == 500 and "1 out of 3 shards failed" in body["status"]["error"]
    assert all(payloads(cluster)[i] == (1 if where[i] == [2] else 3) for i in ids)
    status, body = cluster.call_node(0, "POST", "/collections/c/points/delete?wait=true", {"points": ids})
    assert status == 500 and body["status"]["error"] == SHARDS_FAILED.format(f=1, t=3)
    assert sorted(payloads(cluster)) == sorted(i for i in ids if where[i] == [2])
    # only points of the down node's shard: the first error alone, nothing applied
    only = [i for i in ids if where[i] == [2]]
    status, body = cluster.call_node(0, "PUT", "/collections/c/points?wait=true", {"points": pts(only, 9)})
    assert status == 500 and body["status"]["error"].startswith("Service internal error: Tonic status error")
    assert "shards failed" not in body["status"]["error"]
    assert set(payloads(cluster).values()) == {1}
    # a delete by filter reaches every shard: fails while one is down, then passes
    probe = {"filter": {"must": [{"has_id": ["00000000-0000-0000-0000-000000000000"]}]}}
    status, body = cluster.call_node(1, "POST", "/collections/c/points/delete?wait=true", probe)
    assert status == 500 and body["status"]["error"] == SHARDS_FAILED.format(f=1, t=3)
    assert [e["fault"] for e in cluster.log()[-1:]] == ["shards"]
    cluster.node_up(2)
    assert cluster.call_node(2, "POST", "/collections/c/points/delete?wait=true", probe)[0] == 200
    assert cluster.call_node(2, "PUT", "/collections/c/points?wait=true", {"points": pts(ids, 4)})[0] == 200
    assert set(payloads(cluster).values()) == {4} and len(payloads(cluster)) == 30


def test_replication_keeps_writes_whole(cluster):
    create(cluster, replication_factor=2)
    cluster.node_down(1)
    ids = list(range(20))
    assert cluster.call_node(0, "PUT", "/collections/c/points?wait=true", {"points": pts(ids)})[0] == 200
    assert len(payloads(cluster)) == 20
    cluster.node_down(2)                                   # shard 2 has replicas on 2 and 0: ok;
    status, body = cluster.call_node(0, "PUT", "/collections/c/points?wait=true", {"points": pts(ids, 2)})
    assert status == 500 and "shards failed to apply operation" in body["status"]["error"]  # shard 1: 1, 2
    # write_consistency_factor 2 of 2 replicas: one replica down fails the shard
    cluster.node_up(1)
    cluster.node_up(2)
    create(cluster, "w", replication_factor=2, write_consistency_factor=2)
    cluster.node_down(0)
    status, body = cluster.call_node(1, "PUT", "/collections/w/points?wait=true", {"points": pts(ids)})
    assert status == 500 and "2 out of 3 shards failed" in body["status"]["error"]


def test_sigterm_like_stop_serves_open_connections_then_refuses(cluster):
    create(cluster)
    conn = http.client.HTTPConnection("127.0.0.1", cluster.ports[1], timeout=10)
    conn.request("GET", "/readyz")
    r = conn.getresponse()
    assert r.status == 200 and r.read()
    cluster.node_stop(1, grace=2)
    with pytest.raises(ConnectionRefusedError):            # new connections: refused at once
        socket.create_connection(("127.0.0.1", cluster.ports[1]), timeout=2)
    conn.request("PUT", "/collections/c/points?wait=true", json.dumps({"points": pts(range(6))}),
                 {"Content-Type": "application/json"})
    r = conn.getresponse()                                 # the open one: still served
    assert r.status == 200, r.read()
    r.read()
    st = cluster.cluster()["nodes"][1]
    assert st["stopping"] and not st["down"] and not st["listening"]
    time.sleep(2.5)
    # the server's grace timer (a thread) ends the stop: on a loaded machine it may wake late, so
    # the end of the grace is waited for (the node down, the open connection reset), not assumed
    deadline = time.monotonic() + 30
    while not (cluster.cluster()["nodes"][1]["down"]
               and (conn.sock is None or select.select([conn.sock], [], [], 0)[0])):
        assert time.monotonic() < deadline, "node 1 still stopping 30 s after its 2 s grace"
        time.sleep(0.05)
    with pytest.raises((ConnectionError, http.client.HTTPException, OSError)):
        conn.request("GET", "/readyz")
        conn.getresponse().read()
    st = cluster.cluster()["nodes"][1]
    assert st["down"] and not st["stopping"]
    status, body = cluster.call_node(0, "PUT", "/collections/c/points?wait=true", {"points": pts(range(30))})
    assert status == 500 and "1 out of 3 shards failed" in body["status"]["error"]
    cluster.node_up(1)
    assert cluster.call_node(1, "GET", "/readyz")[0] == 200
    conn.close()


def test_fault_rule_for_one_node(cluster):
    create(cluster)
    cluster.fail(503, seconds=30, writes=True, node=1, message="Service unavailable: node is recovering")
    status, body = cluster.call_node(1, "PUT", "/collections/c/points?wait=true", {"points": pts([1])})
    assert status == 503 and body["status"]["error"] == "Service unavailable: node is recovering"
    assert cluster.call_node(0, "PUT", "/collections/c/points?wait=true", {"points": pts([1])})[0] == 200
    assert [(e["node"], e["status"]) for e in cluster.log()[-2:]] == [(1, 503), (0, 200)]


def test_control_errors(cluster, qdrant):
    with pytest.raises(RuntimeError, match="no node"):
        cluster.node_down(7)
    with pytest.raises(RuntimeError, match="not in cluster mode"):
        qdrant.node_down(0)
    cluster.node_down(0)
    cluster.node_down(1)
    cluster.reset()                                        # brings every node back
    assert all(n["listening"] and not n["down"] for n in cluster.cluster()["nodes"])

"""Control API of the Qdrant test server (served on the separate control port, JSON in/out).

Owns the run-time scripting surface used by tests:
  GET  /control/ping                       -> {"ok": true}
  GET  /control/state                      -> {"down", "faults", "collections", "api_key_set"}
  POST /control/down | /control/up         close / reopen the Qdrant listening socket
  POST /control/fail            {"status", "count"|"seconds", "path"?, "method"?,
                                 "writes"?, "collection"?, "retry_after"? (int or raw
                                 string: an HTTP date...), "message"?, "body"?, "json"?,
                                 "content_type"?, "html"?, "headers"?, "location"?, "huge"?,
                                 "chunked"?, "apply"?: false}   (see faults.py)
  POST /control/latency         {"ms", "count"?|"seconds"?, "path"?, "method"?, "writes"?,
                                 "collection"?}
  POST /control/reset_connection {"count", "path"?, "method"?, "writes"?, "collection"?,
                                 "apply"?: true,
                                 "mode"?: "rst" (half the answer, then RST) | "empty"
                                 (close without answering: an empty reply)}
  POST /control/update_status   {"status": "wait_timeout"|"acknowledged", "count"?,
                                 "path"?, "method"?}  next point writes are applied but answer
                                 that UpdateResult status
  POST /control/clear_faults    drop fail/latency/reset rules only
  POST /control/reset           drop collections, faults and the log; bring the port up; a
                                request of a connection accepted before it (e.g. still held by
                                a latency rule) is dropped unanswered, never applied
  GET  /control/log?since=SEQ   -> [entry...] (seq, ts, method, path, query, collection, points,
                                ids, status, fault); DELETE /control/log clears it
  GET  /control/points/{c}      -> [{"id", "vector", "payload", "version"}...] in id order
  POST /control/corrupt         {"collection", "id", "payload"?: merge, "set_payload"?: replace,
                                 "delete_keys"?: [...], "vector"?: {...}|[...], "delete"?: bool}
                                edits stored points behind the daemon's back (drift)
  Cluster mode (``--nodes N``, cluster.py):
  GET  /control/cluster         -> {"nodes": [{node, peer_id, port, listening, down, stopping}],
                                 "collections": {c: {shard_number, replication_factor,
                                 write_consistency_factor, shards: [[node...]...]}}}
  POST /control/node/down {"node"}   the node's port refuses, open connections reset, its
                                 shards unavailable; /control/node/up {"node"} brings it back
  POST /control/node/stop {"node", "grace"}  SIGTERM-like: refuses new connections at once,
                                 serves open ones for grace seconds, then down
  POST /control/shard_of {"collection", "ids"} -> {"shards": [{id, shard, nodes}]}
  Fault rules (fail, latency, reset_connection, update_status) take "node": that node only
  (e.g. a 503 from one node in recovery).

Invariants: control requests never appear in the Qdrant request log and are never subject to
injected faults or the API key; ``GET /control/log`` and ``GET /control/points/{c}`` answer a
bare JSON list, every other answer is ``{"ok": true, ...}``; errors are ``{"ok": false,
"error": msg}`` with status 400/404.
"""
import api as qapi
import store as st


class ControlError(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


def _points_dump(coll):
    out = []
    for k in coll.sorted_keys():
        p = coll.points[k]
        out.append({"id": k, "vector": qapi.vector_output(coll, p, True) or None,
                    "payload": p.payload, "version": p.version})
    return out


def handle_control(app, method, path, query, body):
    """Returns (status, obj)."""
    faults = app.faults
    parts = [x for x in path.split("/") if x]
    if parts[:1] != ["control"]:
        raise ControlError(404, "unknown control route")
    rest = parts[1:]
    key = (method, rest[0] if rest else "")
    if key == ("GET", "ping"):
        return 200, {"ok": True}
    if key == ("GET", "state"):
        with app.store.lock:
            colls = {n: len(c.points) for n, c in app.store.collections.items()}
        return 200, {"ok": True, "down": app.is_down(), "faults": faults.describe(),
                     "collections": colls, "api_key_set": app.api_key is not None}
    if key == ("POST", "down"):
        app.go_down()
        return 200, {"ok": True}
    if key == ("POST", "up"):
        app.go_up()
        return 200, {"ok": True}
    if key == ("POST", "fail"):
        if "status" not in body:
            raise ControlError(400, "status is required")
        faults.add("fail", body)
        return 200, {"ok": True}
    if key == ("POST", "latency"):
        faults.set_latency(body)
        return 200, {"ok": True}
    if key == ("POST", "reset_connection"):
        faults.add("reset", dict(body, count=body.get("count", None if "seconds" in body else 1)))
        return 200, {"ok": True}
    if key == ("POST", "update_status"):
        if body.get("status") not in ("wait_timeout", "acknowledged", "completed"):
            raise ControlError(400, "status must be wait_timeout, acknowledged or completed")
        faults.add("status", {"update_status": body["status"],
                              "count": body.get("count", 1 if "seconds" not in body else None),
                              "seconds": body.get("seconds"), "path": body.get("path"),
                              "method": body.get("method"), "status": 200,
                              "writes": body.get("writes"),
                              "collection": body.get("collection")})
        return 200, {"ok": True}
    if key == ("POST", "clear_faults"):
        faults.clear_faults()
        return 200, {"ok": True}
    if key == ("POST", "reset"):
        app.end_epoch()
        app.store.reset()
        faults.reset()
        app.go_up()
        return 200, {"ok": True}
    if rest[:1] == ["log"]:
        if method == "GET":
            since = int(query.get("since", 0) or 0)
            return 200, faults.entries(since)
        if method == "DELETE":
            faults.clear_log()
            return 200, {"ok": True}
    if method == "GET" and rest[:1] == ["points"] and len(rest) == 2:
        with app.store.lock:
            coll = app.store.resolve(rest[1])   # an alias reads its collection
            if coll is None:
                raise ControlError(404, f"collection {rest[1]} does not exist")
            return 200, _points_dump(coll)
    if key == ("POST", "corrupt"):
        return 200, _corrupt(app, body)
    if rest[:1] in (["cluster"], ["node"], ["shard_of"]):
        return 200, _cluster(app, method, rest, body)
    raise ControlError(404, f"unknown control route {method} {path}")


def _corrupt(app, body):
    with app.store.lock:
        coll = app.store.resolve(body.get("collection") or "")
        if coll is None:
            raise ControlError(404, f"collection {body.get('collection')} does not exist")
        try:
            k = st.point_key(body.get("id"))
        except st.ApiError as e:
            raise ControlError(400, e.message)
        pt = coll.points.get(k)
        if pt is None:
            raise ControlError(404, f"point {k} does not exist")
        if body.get("delete"):
            del coll.points[k]
            coll.invalidate()
            return {"ok": True}
        if "set_payload" in body:
            pt.payload = dict(body["set_payload"])
        if "payload" in body:
            pt.payload.update(body["payload"])
        for dk in body.get("delete_keys") or []:
            pt.payload.pop(dk, None)
        if "vector" in body:
            vs = body["vector"]
            try:
                pt.vectors.update(coll.convert_vector_struct(vs))
            except st.ApiError as e:
                raise ControlError(400, e.message)
        return {"ok": True}


def _cluster(app, method, rest, body):
    cl = app.cluster
    if cl is None:
        raise ControlError(400, "not in cluster mode (start the server with --nodes N)")
    if method == "GET" and rest == ["cluster"]:
        return dict(cl.describe(), ok=True)
    if method == "POST" and rest == ["shard_of"]:
        return {"ok": True, "shards": cl.shard_of_ids(body.get("collection"), body.get("ids") or [])}
    if method == "POST" and len(rest) == 2 and rest[0] == "node":
        if "node" not in body:
            raise ControlError(400, "node is required")
        if rest[1] == "down":
            cl.node_down(body["node"])
        elif rest[1] == "up":
            cl.node_up(body["node"])
        elif rest[1] == "stop":
            cl.node_stop(body["node"], float(body.get("grace", 30)))
        else:
            raise ControlError(404, f"unknown node action {rest[1]}")
        return {"ok": True}
    raise ControlError(404, f"unknown cluster route {method} /control/{'/'.join(rest)}")

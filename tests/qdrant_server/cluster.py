"""Cluster mode of the Qdrant test server (``--nodes N``): several Qdrant ports sharing one store,
like the nodes of a real Qdrant cluster in distributed mode.

Owns: the nodes (index, peer id, port, up / stopping / down), the placement of each collection's
shards on the nodes, ``GET /cluster`` per node, and what a point write answers when some of its
shards live only on nodes that are down.

Model (Qdrant 1.18's documented behaviour, reduced to what a client can observe):
  * ``shard_number`` defaults to the number of nodes (Qdrant's default in distributed mode),
    ``replication_factor`` and ``write_consistency_factor`` to 1. Shard ``s`` has its replicas
    on nodes ``(s + r) % N`` for ``r < replication_factor``. A point's shard is
    ``crc32(str(point id)) % shard_number`` (Qdrant hashes ids onto a ring; any fixed function
    gives the same observable behaviour).
  * A shard takes a write while at least ``min(write_consistency_factor, replication_factor)``
    of its replicas are on nodes that are not down (a stopping node still serves).
  * A write (upsert, delete by ids: the shards of its points; anything by filter, payload,
    vector and batch operations: every shard) whose shards all take it is applied as usual.
    When only some do, the healthy shards apply their part and the answer is Qdrant's
    ``CollectionError::InconsistentShardFailure`` with the first error's status: HTTP 500
    ``Service internal error: F out of T shards failed to apply operation. First error
    captured: Service internal error: Tonic status error: status: Unavailable, message:
    "error trying to connect: tcp connect error: Connection refused (os error 111)", …``.
    When none does, the first error alone (500, nothing applied). Partial application is done
    for upserts and deletes (by ids or filter); other operations by filter apply nothing then.
  * A node down: its port refuses connections and its open connections are reset. A stopping
    node (SIGTERM): its port refuses new connections at once, open keep-alive connections are
    still served for ``grace`` seconds, then reset and the node is down.

Invariants: the store is shared (one lock, ``Store.lock``); node state changes under
``Cluster.lock``; every node answers ``/readyz`` 200 while it listens (as the real one does while
a peer is gone).
"""
import json
import threading
import time
import zlib

import api as qapi
import faults as qfaults
import store as st

PEER_BASE = 5_017_320_931_000   # peer ids: large, like Qdrant's random u64s
TONIC_REFUSED = ('Service internal error: Tonic status error: status: Unavailable, message: '
                 '"error trying to connect: tcp connect error: Connection refused (os error 111)", '
                 'details: [], metadata: MetadataMap { headers: {} }')


def shards_failed_message(failed, total):
    return (f"Service internal error: {failed} out of {total} shards failed to apply operation. "
            f"First error captured: {TONIC_REFUSED}")


class Node:
    def __init__(self, index, host, port):
        self.index = index
        self.host = host
        self.port = port
        self.server = None          # the listening HTTP server (None: not listening)
        self.conns = set()
        self.conns_lock = threading.Lock()
        self.down = False           # shards on it are unavailable
        self.stopping_until = None  # SIGTERM-like: open connections served until then

    @property
    def peer_id(self):
        return PEER_BASE + self.index


class Cluster:
    def __init__(self, app, n):
        self.app = app
        self.lock = threading.RLock()
        self.nodes = [Node(i, app.host, app.port if i == 0 else 0) for i in range(n)]
        self.commit = 0

    # -- placement ---------------------------------------------------------------------------
    def placement(self, coll):
        n = len(self.nodes)
        sn = int(coll.params.get("shard_number") or 1)
        rf = max(1, int(coll.params.get("replication_factor") or 1))
        return [[(s + r) % n for r in range(min(rf, n))] for s in range(sn)]

    @staticmethod
    def shard_of(coll, key):
        sn = int(coll.params.get("shard_number") or 1)
        return zlib.crc32(str(key).encode()) % sn

    def shard_ok(self, coll, replicas):
        need = min(int(coll.params.get("write_consistency_factor") or 1), len(replicas))
        live = sum(1 for i in replicas if not self.nodes[i].down)
        return live >= max(1, need)

    # -- writes ------------------------------------------------------------------------------
    def write(self, req):
        """A point write in cluster mode: None when every shard it touches takes it (apply as
        usual), else the Response (with the healthy shards' part applied)."""
        if not qfaults.is_point_write(req.method, req.path):
            return None
        try:
            body = qapi.loads(req.body) if req.body else None
        except Exception:
            return None                   # malformed: the API answers it
        name = qfaults.path_collection(req.path)
        with self.app.store.lock:
            coll = self.app.store.resolve(name) if name else None
            if coll is None or not isinstance(body, dict):
                return None
            place = self.placement(coll)
            keys = self._ids(req, body)
            try:
                shards = sorted({self.shard_of(coll, st.point_key(k)) for k in keys}) \
                    if keys is not None else list(range(len(place)))
            except st.ApiError:
                return None               # a bad id: the API answers it
            failed = [s for s in shards if not self.shard_ok(coll, place[s])]
            if not failed:
                return None
            if len(failed) == len(shards):
                return qapi.error(500, TONIC_REFUSED, time.perf_counter())
            sub = self._healthy_part(req, body, coll, place, keys)
        if sub is not None:
            self.app.api.handle(sub)
            req.log.update({k: v for k, v in sub.log.items() if v is not None})
        return qapi.error(500, shards_failed_message(len(failed), len(shards)), time.perf_counter())

    @staticmethod
    def _ids(req, body):
        """Ids addressed by an upsert or a delete by ids; None: every shard takes part."""
        if req.method == "PUT" and req.path.endswith("/points"):
            if isinstance(body.get("batch"), dict):
                return list(body["batch"].get("ids") or [])
            return [p.get("id") for p in body.get("points") or [] if isinstance(p, dict)]
        if req.path.endswith("/points/delete") and body.get("points") is not None:
            return list(body["points"])
        return None

    def _healthy_part(self, req, body, coll, place, keys):
        """The request reduced to the points of shards that take it (None: nothing to apply)."""
        ok = lambda k: self.shard_ok(coll, place[self.shard_of(coll, st.point_key(k))])  # noqa: E731
        if req.method == "PUT" and req.path.endswith("/points"):
            if isinstance(body.get("batch"), dict):
                b = body["batch"]
                idx = [i for i, k in enumerate(b.get("ids") or []) if ok(k)]
                nb = {"ids": [b["ids"][i] for i in idx]}
                vs = b.get("vectors")
                nb["vectors"] = [vs[i] for i in idx] if isinstance(vs, list) else \
                    {n: [col[i] for i in idx] for n, col in (vs or {}).items()}
                if b.get("payloads") is not None:
                    nb["payloads"] = [b["payloads"][i] for i in idx]
                new = dict(body, batch=nb)
                n = len(idx)
            else:
                pts = [p for p in body.get("points") or [] if ok(p.get("id"))]
                new = dict(body, points=pts)
                n = len(pts)
        elif req.path.endswith("/points/delete"):
            if keys is not None:
                ids = [k for k in keys if ok(k)]
            else:                         # by filter: the matching points of healthy shards
                flt = body.get("filter")
                ids = [k for k, pt in coll.points.items()
                       if flt is not None and st.match_filter(flt, pt) and ok(k)]
            new = {"points": ids}
            n = len(ids)
        else:
            return None
        if not n:
            return None
        sub = qapi.Request(req.method, req.path, req.query, req.headers,
                           json.dumps(new).encode())
        return sub

    # -- GET /cluster --------------------------------------------------------------------------
    def status(self, node_index):
        self.commit += 1
        peers = {str(nd.peer_id): {"uri": f"http://{nd.host}:{6335 + nd.index}/"} for nd in self.nodes}
        failures = {}
        for nd in self.nodes:
            if nd.down and nd.index != node_index:
                failures[f"http://{nd.host}:{6335 + nd.index}/"] = {
                    "count": 1, "latest_error": "Error in closure supplied to transport channel pool: "
                    "status: Unavailable, message: \"error trying to connect: tcp connect error: "
                    "Connection refused (os error 111)\"",
                    "latest_error_timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())}
        leader = self.nodes[0].peer_id
        return {"status": "enabled", "peer_id": self.nodes[node_index].peer_id, "peers": peers,
                "raft_info": {"term": 1, "commit": self.commit, "pending_operations": 0,
                              "leader": leader, "role": "Leader" if node_index == 0 else "Follower",
                              "is_voter": True},
                "consensus_thread_status": {"consensus_thread_status": "working",
                                            "last_update": time.strftime("%Y-%m-%dT%H:%M:%S.000000Z",
                                                                         time.gmtime())},
                "message_send_failures": failures}

    # -- node lifecycle (control API) -----------------------------------------------------------
    def node(self, i):
        try:
            return self.nodes[int(i)]
        except (IndexError, ValueError, TypeError):
            raise ValueError(f"no node {i!r} (0..{len(self.nodes) - 1})") from None

    def node_down(self, i):
        nd = self.node(i)
        with self.lock:
            nd.down = True
            nd.stopping_until = None
        self.app.node_close(nd, abort=True)

    def node_up(self, i):
        nd = self.node(i)
        with self.lock:
            nd.down = False
            nd.stopping_until = None
        self.app.node_listen(nd)

    def node_stop(self, i, grace):
        """SIGTERM-like: refuse new connections now, serve open ones for grace s, then down."""
        nd = self.node(i)
        with self.lock:
            nd.stopping_until = time.monotonic() + float(grace)
        self.app.node_close(nd, abort=False)

        def finish():
            time.sleep(float(grace))
            with self.lock:
                if nd.stopping_until is None:   # brought up (or down) meanwhile
                    return
                nd.stopping_until = None
                nd.down = True
            self.app.node_close(nd, abort=True)
        threading.Thread(target=finish, daemon=True).start()

    def describe(self):
        with self.app.store.lock:
            colls = {name: {"shard_number": c.params.get("shard_number"),
                            "replication_factor": c.params.get("replication_factor"),
                            "write_consistency_factor": c.params.get("write_consistency_factor"),
                            "shards": self.placement(c)}
                     for name, c in self.app.store.collections.items()}
        return {"nodes": [{"node": nd.index, "peer_id": nd.peer_id, "port": nd.port,
                           "listening": nd.server is not None, "down": nd.down,
                           "stopping": nd.stopping_until is not None} for nd in self.nodes],
                "collections": colls}

    def shard_of_ids(self, name, ids):
        with self.app.store.lock:
            coll = self.app.store.resolve(name)
            if coll is None:
                raise ValueError(f"collection {name} does not exist")
            place = self.placement(coll)
            out = []
            for i in ids:
                s = self.shard_of(coll, st.point_key(i))
                out.append({"id": i, "shard": s, "nodes": place[s]})
            return out

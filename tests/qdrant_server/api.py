"""Qdrant REST API routes of the test server (transport-free request -> response logic).

Owns: routing of ``(method, path)`` to handlers, body parsing + schema validation through
:mod:`validator`, query-parameter parsing, and the Qdrant semantics of every endpoint listed in
``/work/shared/design/qdrant-rest.md`` (collections, aliases, upsert/delete/payload, update/delete
vectors, scroll, count, query, retrieve, payload index, health).

Invariants:
  * Check order follows actix/Qdrant: route match (else empty 404) -> API key (done by the HTTP
    layer) -> size (400) -> JSON parse (400 ``Format error in JSON body … at line L column C``)
    -> schema shape (400) -> constraints (422) -> handler (404 collection, 400 ``Wrong input``,
    ``Bad request: Empty update request``...). No Content-Type check (Qdrant 1.18.3 has none).
  * Collection routes resolve aliases (``Store.get``); records omit ``payload``/``vector`` when
    not requested. Behaviour is checked against a real Qdrant's recorded answers (replay.py).
  * Errors raised before the handler use ``"time": 0.0`` like Qdrant's extractor error handler.
  * Each handler runs under ``Store.lock`` and validates every point before mutating anything.
  * Handlers record ``req.log`` fields (collection, points, ids) for the control request log.
"""
import json
import re
import time
import traceback

import store as st
from store import ApiError, DEFAULT_VECTOR, point_key, wrong_input
from validator import FormatError, error_position, label_errors, line_col

try:
    import orjson

    def dumps(obj):
        return orjson.dumps(obj)

    def _loads_fast(b):
        return orjson.loads(b)
    _FastError = orjson.JSONDecodeError
except ImportError:  # pragma: no cover - orjson is in tests/requirements.txt
    orjson = None

    def dumps(obj):
        return json.dumps(obj, separators=(",", ":")).encode()

    def _loads_fast(b):
        return json.loads(b, parse_constant=_no_constant)
    _FastError = ValueError

VERSION = "1.19.0"
MAX_BODY = 32 * 1024 * 1024
NAME_FORBIDDEN = '<>:"/\\|?*\0\x1f'   # Qdrant's INVALID_CHARS, reported in this order


def _no_constant(name):
    raise ValueError(f"{name} is not valid JSON")


def loads(body):
    """Parse JSON like serde_json would accept it; raises ApiError(400) with a serde-ish message."""
    try:
        return _loads_fast(body)
    except _FastError:
        pass
    try:   # orjson refuses integers beyond 64 bits; serde reads them as floats
        return json.loads(body, parse_constant=_no_constant)
    except ValueError as e:
        raise ApiError(400, f"Format error in JSON body: {_serde_message(body, e)}")


def _open_container(text, pos):
    """The innermost unclosed bracket before ``pos`` ('[' or '{'), ignoring strings."""
    stack, in_str, esc = [], False, False
    for ch in text[:pos]:
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in "[{":
            stack.append(ch)
        elif ch in "]}" and stack:
            stack.pop()
    return stack[-1] if stack else None


def _serde_message(body, e):
    """Translate a stdlib JSONDecodeError into serde_json's wording and position (serde_json
    counts columns in bytes)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as u:
        # serde_json checks a string's UTF-8 when it reaches its closing quote
        q = u.start
        while q < len(body) and body[q] != 0x22:
            q += 2 if body[q] == 0x5C else 1
        line, col = line_col(body, min(q + 1, len(body)))
        return f"invalid unicode code point at line {line} column {col}"
    if not isinstance(e, json.JSONDecodeError):   # NaN / Infinity constants
        name = str(e).split()[0]
        pos = max(text.find(name), 0)
        msg = "Expecting value"
    else:
        msg, pos = e.msg, e.pos
    if msg.startswith("Unterminated string"):
        pos = len(text)
    at_eof = not text[pos:].strip()
    if at_eof:
        inner = _open_container(text, pos)
        last = text.rstrip()[-1:]
        if msg.startswith("Unterminated string"):
            what = "a string"
        elif last in (",", ":") or inner is None:
            what = "a value"        # a value was due (after a comma, a colon, or at the top)
        else:
            what = {"[": "a list", "{": "an object"}[inner]
        line, col = line_col(body, len(body))
        return f"EOF while parsing {what} at line {line} column {col}"
    line, col = line_col(body, len(text[:pos].encode()) + 1)
    if msg == "Expecting ',' delimiter":
        closing = "]" if _open_container(text, pos) == "[" else "}"
        what = f"expected `,` or `{closing}`"
    elif msg == "Expecting ':' delimiter":
        what = "expected `:`"
    elif msg.startswith("Expecting property name"):
        what = "key must be a string"
    elif msg == "Extra data":
        what = "trailing characters"
    elif msg.startswith("Invalid control character"):
        what = "control character (\\u0000-\\u001F) found while parsing a string"
    elif msg.startswith("Invalid \\escape"):
        what = "invalid escape"
    else:
        what = "expected value"
    return f"{what} at line {line} column {col}"


class Request:
    """A parsed HTTP request plus the fields the control log wants."""

    def __init__(self, method, path, query, headers, body):
        self.method = method
        self.path = path
        self.query = query          # dict name -> last value
        self.headers = headers      # mapping with case-insensitive .get
        self.body = body
        self.oversize = 0           # length of a body discarded for exceeding MAX_BODY
        self.log = {"collection": None, "points": None, "ids": None}


def _note_ids(req, body):
    """Log the point count / raw ids of an upsert or delete-by-ids even if it later fails."""
    if req.method == "PUT" and req.path.endswith("/points"):
        ids = body["batch"]["ids"] if "batch" in body else [p["id"] for p in body["points"]]
    elif req.path.endswith("/points/delete") and isinstance(body.get("points"), list):
        ids = body["points"]
    else:
        return
    req.log["points"] = len(ids)
    req.log["ids"] = ids


class Response:
    __slots__ = ("status", "body", "content_type", "headers")

    def __init__(self, status, body=b"", content_type="application/json", headers=None):
        self.status = status
        self.body = body
        self.content_type = content_type
        self.headers = headers or []


def ok(result, started):
    return Response(200, dumps({"result": result, "status": "ok",
                                "time": time.perf_counter() - started}))


def error(status, message, started=None):
    t = 0.0 if started is None else time.perf_counter() - started
    return Response(status, dumps({"status": {"error": message}, "time": t}))


# -- query parameters ----------------------------------------------------------------------------
def _query_error(detail):
    e = ApiError(400, f"Deserialize error in query parameters: {detail}")
    e.extractor = True
    return e


def _qbool(req, name, default):
    v = req.query.get(name)
    if v is None:
        return default
    if v in ("true", "false"):
        return v == "true"
    raise _query_error("provided string was not `true` or `false`")


def _check_write_params(req):
    """``wait``, ``ordering`` and ``timeout`` of update endpoints (serde_urlencoded wording)."""
    wait = _qbool(req, "wait", False)
    ordering = req.query.get("ordering")
    if ordering is not None and ordering not in ("weak", "medium", "strong"):
        raise _query_error(f"unknown variant `{ordering}`, expected one of `weak`, `medium`, "
                           "`strong`")
    timeout = req.query.get("timeout")
    if timeout is not None:
        if not timeout.isdigit():
            raise _query_error("invalid digit found in string" if timeout else
                               "cannot parse integer from empty string")
    return wait


def update_result(coll, wait):
    return {"operation_id": coll.next_op(), "status": "completed" if wait else "acknowledged"}


# -- payload / vector output helpers ---------------------------------------------------------------
def select_payload(payload, spec):
    if spec is None or spec is True:
        return payload
    if spec is False:
        return None
    if isinstance(spec, list):
        return _include(payload, spec)
    if "include" in spec:
        return _include(payload, spec["include"])
    if "exclude" in spec:
        out = dict(payload)
        for k in spec["exclude"]:
            out.pop(k, None)
        return out
    return payload


def _include(payload, keys):
    out = {}
    for k in keys:
        if k in payload:
            out[k] = payload[k]
        elif "." in k:
            head, rest = k.split(".", 1)
            sub = payload.get(head)
            if isinstance(sub, dict):
                picked = _include(sub, [rest])
                if picked:
                    out.setdefault(head, {}).update(picked)
    return out


def vector_output(coll, point, spec):
    """Qdrant's VectorStructOutput: a bare list for a lone default vector, else a name map."""
    if not spec:
        return None
    names = None if spec is True else set(spec)
    sel = {n: v for n, v in point.vectors.items() if names is None or n in names}
    out = {n: st.vec_value(v) for n, v in sel.items()}
    if list(out) == [DEFAULT_VECTOR]:
        return out[DEFAULT_VECTOR]
    return out


def record(coll, p, with_payload, with_vector, extra=None):
    """A Record / ScoredPoint: ``payload`` and ``vector`` are omitted when not requested
    (Qdrant skips them rather than sending null)."""
    out = {"id": p.key}
    if extra:
        out.update(extra)
    if with_payload is not None and with_payload is not False:
        out["payload"] = select_payload(p.payload, with_payload)
    if with_vector:
        out["vector"] = vector_output(coll, p, with_vector)
    return out


# -- handlers --------------------------------------------------------------------------------------
class Api:
    """All Qdrant routes; one instance per server process."""

    def __init__(self, store, validator):
        self.store = store
        self.v = validator
        self.cluster = None         # cluster.Cluster in cluster mode (set by the server)
        self._checks = {}
        self.routes = []
        R = self._route
        R("GET", r"/", self.root, None)
        R("GET", r"/healthz", self.healthz, None)
        R("GET", r"/livez", self.livez, None)
        R("GET", r"/readyz", self.readyz, None)
        R("GET", r"/cluster", self.cluster_status, None)
        R("GET", r"/collections", self.list_collections, None)
        R("GET", r"/collections/{c}", self.get_collection, None)
        R("PUT", r"/collections/{c}", self.create_collection, "CreateCollection")
        R("PATCH", r"/collections/{c}", self.update_collection, "UpdateCollection")
        R("DELETE", r"/collections/{c}", self.delete_collection, None)
        R("GET", r"/collections/{c}/exists", self.exists, None)
        R("PUT", r"/collections/{c}/index", self.create_index, "CreateFieldIndex")
        R("DELETE", r"/collections/{c}/index/{f}", self.delete_index, None)
        R("PUT", r"/collections/{c}/points", self.upsert, "PointInsertOperations")
        R("POST", r"/collections/{c}/points", self.retrieve, "PointRequest")
        R("POST", r"/collections/{c}/points/delete", self.delete_points, "PointsSelector")
        R("POST", r"/collections/{c}/points/payload", self.set_payload, "SetPayload")
        R("PUT", r"/collections/{c}/points/payload", self.overwrite_payload, "SetPayload")
        R("POST", r"/collections/{c}/points/payload/delete", self.delete_payload,
          "DeletePayload")
        R("POST", r"/collections/{c}/points/payload/clear", self.clear_payload,
          "PointsSelector")
        R("POST", r"/collections/{c}/points/scroll", self.scroll, "ScrollRequest")
        R("POST", r"/collections/{c}/points/count", self.count, "CountRequest")
        R("POST", r"/collections/{c}/points/query", self.query, "QueryRequest")
        R("POST", r"/collections/{c}/points/query/batch", self.query_batch,
          "QueryRequestBatch")
        R("POST", r"/collections/{c}/points/batch", self.batch_update, "UpdateOperations")
        R("PUT", r"/collections/{c}/points/vectors", self.update_vectors, "UpdateVectors")
        R("POST", r"/collections/{c}/points/vectors/delete", self.delete_vectors,
          "DeleteVectors")
        R("POST", r"/collections/aliases", self.update_aliases, "ChangeAliasesOperation")
        R("GET", r"/collections/{c}/aliases", self.collection_aliases, None)
        R("GET", r"/aliases", self.list_aliases, None)
        R("GET", r"/collections/{c}/points/{id}", self.get_point, None)
        for _, _, _, schema in self.routes:   # compile eagerly: no races between threads
            if schema is not None and schema not in self._checks:
                self._checks[schema] = self.v.validator_for(schema)

    def _route(self, method, pattern, fn, schema):
        rx = "^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern) + "$"
        self.routes.append((method, re.compile(rx), fn, schema))

    def match(self, method, path):
        for m, rx, fn, schema in self.routes:
            if m == method:
                mo = rx.match(path)
                if mo:
                    return fn, schema, mo.groupdict()
        return None

    def check_body(self, schema, obj, raw=None):
        chk = self._checks.get(schema)
        if chk is None:
            chk = self._checks[schema] = self.v.validator_for(schema)
        try:
            errs = chk(obj)
        except FormatError as e:
            where = error_position(raw, e) if raw is not None else ""
            raise ApiError(400, f"Format error in JSON body: {e}{where}")
        if errs:
            raise ApiError(422, label_errors(errs))

    def handle(self, req):
        """Route and run ``req``; returns a Response (never raises)."""
        started = time.perf_counter()
        found = self.match(req.method, req.path)
        if found is None:
            return Response(404, b"", content_type=None)
        fn, schema, params = found
        if "c" in params:
            req.log["collection"] = params["c"]
        body = None
        try:
            if schema is not None:
                body = self._read_json(req, schema)
                _note_ids(req, body)
        except ApiError as e:
            return error(e.status, e.message)   # extractor errors carry time 0.0
        try:
            with self.store.lock:
                return fn(req, params, body, started)
        except ApiError as e:
            return error(e.status, e.message,
                         None if getattr(e, "extractor", False) else started)
        except Exception as e:   # a bug in the test server: make it loud but keep serving
            traceback.print_exc()
            return error(500, f"Service internal error: test server bug: {e!r}", started)

    def _read_json(self, req, schema):
        # Qdrant reads the body as JSON whatever the Content-Type (none, text/plain, libcurl's
        # default form-urlencoded): no 400 "Content type error" (recorded against 1.18.3)
        size = req.oversize or len(req.body)
        if size > MAX_BODY:
            raise ApiError(400, f"JSON payload ({size} bytes) is larger than allowed "
                                f"(limit: {MAX_BODY} bytes).")
        obj = loads(req.body)
        self.check_body(schema, obj, req.body)
        return obj

    # -- service ----------------------------------------------------------------------------
    def root(self, req, p, body, t0):
        return Response(200, dumps({"title": "qdrant - vector search engine",
                                    "version": VERSION, "commit": "pg2qdrant-test-server"}))

    def healthz(self, req, p, body, t0):
        return Response(200, b"healthz check passed", "text/plain; charset=utf-8")

    def livez(self, req, p, body, t0):
        return Response(200, b"healthz check passed", "text/plain; charset=utf-8")

    def readyz(self, req, p, body, t0):
        return Response(200, b"all shards are ready", "text/plain; charset=utf-8")

    def cluster_status(self, req, p, body, t0):
        if self.cluster is None:
            return ok({"status": "disabled"}, t0)
        return ok(self.cluster.status(getattr(req, "node", 0)), t0)

    # -- collections ------------------------------------------------------------------------
    def list_collections(self, req, p, body, t0):
        return ok({"collections": [{"name": n} for n in self.store.collections]}, t0)

    def get_collection(self, req, p, body, t0):
        return ok(self.store.get(p["c"]).info(), t0)

    def exists(self, req, p, body, t0):
        return ok({"exists": self.store.resolve(p["c"]) is not None}, t0)

    def create_collection(self, req, p, body, t0):
        name = p["c"]
        bad = next((ch for ch in NAME_FORBIDDEN if ch in name), None)
        if not name or len(name) > 255:
            e = ApiError(422, "Validation error in path parameters: [collection_name: value "
                              f"{json.dumps(name)} invalid, must be from 1 to 255 characters]")
            e.extractor = True
            raise e
        if bad is not None:
            e = ApiError(422, "Validation error in path parameters: [collection_name: "
                              f"collection name cannot contain \"{bad}\" char]")
            e.extractor = True
            raise e
        if name in self.store.collections:
            raise ApiError(409, f"Wrong input: Collection `{name}` already exists!")
        if name in self.store.aliases:
            raise wrong_input(f"Can't create collection with name {name}. Alias with the same "
                              "name already exists")
        for vname in (body.get("sparse_vectors") or {}):
            vecs = body.get("vectors")
            if isinstance(vecs, dict) and vname in vecs and "size" not in vecs:
                raise wrong_input(f"Sparse vector name `{vname}` conflicts with dense vector")
        if self.cluster is not None and not body.get("shard_number"):
            body = dict(body, shard_number=len(self.cluster.nodes))   # Qdrant: one per peer
        self.store.collections[name] = st.Collection(name, body)
        return ok(True, t0)

    def update_collection(self, req, p, body, t0):
        _check_write_params(req)
        self.store.get(p["c"]).update(body)
        return ok(True, t0)

    def delete_collection(self, req, p, body, t0):
        return ok(self.store.drop(p["c"]), t0)

    # -- aliases ----------------------------------------------------------------------------
    def update_aliases(self, req, p, body, t0):
        """All actions or none: they are applied to a copy that replaces the table at the end."""
        _check_write_params(req)
        aliases = dict(self.store.aliases)
        colls = self.store.collections
        for action in body["actions"]:
            if "create_alias" in action:
                a = action["create_alias"]
                if a["collection_name"] not in colls:
                    raise st.not_found_collection(a["collection_name"])
                if a["alias_name"] in colls:
                    raise ApiError(409, f"Wrong input: Collection `{a['alias_name']}` already "
                                        "exists!")
                aliases[a["alias_name"]] = a["collection_name"]
            elif "delete_alias" in action:
                aliases.pop(action["delete_alias"]["alias_name"], None)
            else:
                a = action["rename_alias"]
                old, new = a["old_alias_name"], a["new_alias_name"]
                if old not in aliases:
                    raise ApiError(404, f"Not found: Alias {old} does not exists!")
                if new in colls:
                    raise ApiError(409, f"Wrong input: Collection `{new}` already exists!")
                aliases[new] = aliases.pop(old)
        self.store.aliases = aliases
        return ok(True, t0)

    def _alias_list(self, only=None):
        return {"aliases": [{"alias_name": a, "collection_name": c}
                            for a, c in sorted(self.store.aliases.items())
                            if only is None or c == only]}

    def collection_aliases(self, req, p, body, t0):
        # a missing collection has no aliases: 200 with an empty list, as Qdrant answers
        return ok(self._alias_list(p["c"]), t0)

    def list_aliases(self, req, p, body, t0):
        return ok(self._alias_list(), t0)

    def create_index(self, req, p, body, t0):
        wait = _check_write_params(req)
        coll = self.store.get(p["c"])
        coll.payload_schema[body["field_name"]] = body.get("field_schema") or "keyword"
        return ok(update_result(coll, wait), t0)

    def delete_index(self, req, p, body, t0):
        wait = _check_write_params(req)
        coll = self.store.get(p["c"])
        coll.payload_schema.pop(p["f"], None)
        return ok(update_result(coll, wait), t0)

    # -- point writes -----------------------------------------------------------------------
    def upsert(self, req, p, body, t0):
        wait = _check_write_params(req)
        coll = self.store.get(p["c"])
        if "batch" in body:
            ids, vectors, payloads = self._batch_columns(coll, body["batch"])
        else:
            pts = body["points"]
            ids = [x["id"] for x in pts]
            vectors = [coll.convert_vector_struct(x["vector"]) for x in pts]
            payloads = [x.get("payload") for x in pts]
        keys = [point_key(i) for i in ids]
        req.log["points"] = len(keys)
        req.log["ids"] = keys
        if not keys:
            raise ApiError(400, "Bad request: Empty update request")
        mode = body.get("update_mode") or "upsert"
        flt = body.get("update_filter")
        op = coll.next_op()
        points = coll.points
        for k, vecs, pl in zip(keys, vectors, payloads):
            old = points.get(k)
            if old is not None:
                if mode == "insert_only":
                    continue
                if flt is not None and not st.match_filter(flt, old):
                    continue
            elif mode == "update_only":
                continue
            points[k] = st.Point(k, vecs, pl if pl is not None else {}, op)
        coll.invalidate()
        return ok({"operation_id": op, "status": "completed" if wait else "acknowledged"}, t0)

    def _batch_columns(self, coll, batch):
        """Columns of the batch form (lengths were checked by the validator: 422)."""
        ids = batch["ids"]
        n = len(ids)
        vs = batch["vectors"]
        if isinstance(vs, list):
            vectors = [coll.convert_vector_struct(v) for v in vs]
        else:
            vectors = [{} for _ in range(n)]
            for name, column in vs.items():
                for i, v in enumerate(column):
                    vectors[i].update(coll.convert_vector_struct({name: v}))
        payloads = batch.get("payloads") or [None] * n
        return ids, vectors, payloads

    def _select(self, coll, body, req=None):
        """Keys addressed by a PointsSelector-like body (``points`` ids or ``filter``)."""
        if body.get("points") is not None:
            keys = [point_key(i) for i in body["points"]]
            if req is not None:
                req.log["points"] = len(keys)
                req.log["ids"] = keys
            return keys, True
        if body.get("filter") is not None:
            flt = body["filter"]
            return [k for k, pt in coll.points.items() if st.match_filter(flt, pt)], False
        raise ApiError(400, "Format error in JSON body: Either list of point ids or filter "
                            "must be provided")

    def delete_points(self, req, p, body, t0):
        wait = _check_write_params(req)
        coll = self.store.get(p["c"])
        keys, by_id = self._select(coll, body, req)
        if by_id and not keys:
            raise ApiError(400, "Bad request: Empty update request")
        for k in keys:
            coll.points.pop(k, None)
        coll.invalidate()
        return ok(update_result(coll, wait), t0)

    def _payload_op(self, req, p, body, t0, apply):
        """Run ``apply(point, op)`` on every addressed point that exists. Like Qdrant, points
        are processed in order and the first absent id stops the operation with 404 (earlier
        points stay changed); with ``wait=false`` the failure happens after the 200
        ``acknowledged`` answer, so the client never sees it."""
        wait = _check_write_params(req)
        coll = self.store.get(p["c"])
        keys, by_id = self._select(coll, body, req)
        op = coll.next_op()
        for k in keys:
            pt = coll.points.get(k)
            if pt is None:
                if not wait:
                    break
                raise ApiError(404, f"Not found: No point with id {k} found")
            apply(pt, op)
        return ok({"operation_id": op, "status": "completed" if wait else "acknowledged"}, t0)

    def set_payload(self, req, p, body, t0):
        def apply(pt, op):
            if body.get("key"):
                st.set_by_key(pt.payload, body["key"], body["payload"])
            else:
                pt.payload.update(body["payload"])
            pt.version = op
        return self._payload_op(req, p, body, t0, apply)

    def overwrite_payload(self, req, p, body, t0):
        def apply(pt, op):
            pt.payload = dict(body["payload"])
            pt.version = op
        return self._payload_op(req, p, body, t0, apply)

    def delete_payload(self, req, p, body, t0):
        def apply(pt, op):
            for key in body["keys"]:
                pt.payload.pop(key, None)
            pt.version = op
        return self._payload_op(req, p, body, t0, apply)

    def clear_payload(self, req, p, body, t0):
        def apply(pt, op):
            pt.payload = {}
            pt.version = op
        return self._payload_op(req, p, body, t0, apply)

    def batch_update(self, req, p, body, t0):
        """``POST /points/batch``: the operations in order, each as its own endpoint does it;
        the first failing one answers its error (the earlier ones stay applied, as in Qdrant,
        which does not make a batch atomic). Result: one UpdateResult per operation."""
        handlers = {"upsert": self.upsert, "delete": self.delete_points,
                    "set_payload": self.set_payload, "overwrite_payload": self.overwrite_payload,
                    "delete_payload": self.delete_payload, "clear_payload": self.clear_payload,
                    "update_vectors": self.update_vectors, "delete_vectors": self.delete_vectors}
        results = []
        for op in body["operations"]:
            (kind, sub), = op.items()
            resp = handlers[kind](req, p, sub, t0)
            results.append(_loads_fast(resp.body)["result"])
        return ok(results, t0)

    # -- vectors ----------------------------------------------------------------------------
    def update_vectors(self, req, p, body, t0):
        """``PUT /points/vectors``: replace the given vectors of existing points, keeping their
        other vectors and payload. Every vector is converted (dimension, name, sparse/dense)
        before anything changes; then points are updated in order and the first absent id
        answers 404 (earlier points stay updated), as for payload operations."""
        wait = _check_write_params(req)
        coll = self.store.get(p["c"])
        items = [(point_key(x["id"]), coll.convert_vector_struct(x["vector"]))
                 for x in body["points"]]
        req.log["points"] = len(items)
        req.log["ids"] = [k for k, _ in items]
        flt = body.get("update_filter")
        op = coll.next_op()
        for k, vecs in items:
            pt = coll.points.get(k)
            if pt is None:
                if not wait:
                    break
                raise ApiError(404, f"Not found: No point with id {k} found")
            if flt is not None and not st.match_filter(flt, pt):
                continue
            pt.vectors = dict(pt.vectors, **vecs)
            pt.version = op
        return ok({"operation_id": op, "status": "completed" if wait else "acknowledged"}, t0)

    def delete_vectors(self, req, p, body, t0):
        """``POST /points/vectors/delete``: drop the named vectors of the selected points."""
        wait = _check_write_params(req)
        coll = self.store.get(p["c"])
        names = body["vector"]
        for n in names:
            if n not in coll.named and n not in coll.sparse:
                raise wrong_input(f"Not existing vector name error: {n}")
        keys, by_id = self._select(coll, body, req)
        op = coll.next_op()
        for k in keys:
            pt = coll.points.get(k)
            if pt is None:
                if not wait:
                    break
                raise ApiError(404, f"Not found: No point with id {k} found")
            for n in names:
                pt.vectors.pop(n, None)
            pt.version = op
        return ok({"operation_id": op, "status": "completed" if wait else "acknowledged"}, t0)

    # -- point reads ------------------------------------------------------------------------
    def retrieve(self, req, p, body, t0):
        coll = self.store.get(p["c"])
        wp = body.get("with_payload", True)
        wv = body.get("with_vector", False)
        out, seen = [], set()
        for raw in body["ids"]:
            k = point_key(raw)
            pt = coll.points.get(k)
            if pt is not None and k not in seen:
                seen.add(k)
                out.append(record(coll, pt, wp, wv))
        return ok(out, t0)

    def get_point(self, req, p, body, t0):
        coll = self.store.get(p["c"])
        k = st.parse_path_id(p["id"])
        pt = coll.points.get(k)
        if pt is None:   # Qdrant's get_point has its own wording (sic)
            raise ApiError(404, f"Not found: Point with id {k} does not exists!")
        return ok(record(coll, pt, True, True), t0)

    def scroll(self, req, p, body, t0):
        coll = self.store.get(p["c"])
        limit = body.get("limit") or 10
        flt = body.get("filter")
        wp = body.get("with_payload", True)
        wp = True if wp is None else wp
        wv = body.get("with_vector", False)
        keys = coll.sorted_keys()
        start = 0
        if body.get("offset") is not None:
            off = st.id_sort_key(point_key(body["offset"]))
            lo, hi = 0, len(keys)
            while lo < hi:
                mid = (lo + hi) // 2
                if st.id_sort_key(keys[mid]) < off:
                    lo = mid + 1
                else:
                    hi = mid
            start = lo
        out, nxt = [], None
        for i in range(start, len(keys)):
            k = keys[i]
            pt = coll.points[k]
            if flt and not st.match_filter(flt, pt):
                continue
            if len(out) == limit:
                nxt = k
                break
            out.append(record(coll, pt, wp, wv))
        return ok({"points": out, "next_page_offset": nxt}, t0)

    def count(self, req, p, body, t0):
        coll = self.store.get(p["c"])
        flt = body.get("filter")
        n = sum(1 for pt in coll.points.values() if st.match_filter(flt, pt)) if flt \
            else len(coll.points)
        return ok({"count": n}, t0)

    def query(self, req, p, body, t0):
        coll = self.store.get(p["c"])
        return ok({"points": self._query(coll, body)}, t0)

    def query_batch(self, req, p, body, t0):
        coll = self.store.get(p["c"])
        return ok([{"points": self._query(coll, q)} for q in body["searches"]], t0)

    def _query(self, coll, body):
        from query import run_query   # local import keeps module graph simple
        limit = body.get("limit") or 10
        offset = body.get("offset") or 0
        scored = run_query(coll, body, limit + offset)
        wp = body.get("with_payload", False)
        wv = body.get("with_vector", False)
        out = []
        for score, pt in scored[offset:offset + limit]:
            out.append(record(coll, pt, wp, wv, {"version": pt.version, "score": score}))
        return out

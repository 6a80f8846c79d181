"""In-memory collections, points, payload filters and scoring of the Qdrant test server.

Owns: the data model (``Store`` -> ``Collection`` -> ``Point``), point-id canonicalisation,
filter evaluation (must/should/must_not/min_should, match value/any/except/text, range,
values_count, is_empty/is_null, has_id, has_vector, nested, dotted keys with ``[]``) and exact
vector scoring (Cosine/Dot/Euclid/Manhattan over dense vectors, dot/IDF over sparse vectors).

Invariants:
  * A point key is an ``int`` (u64 id) or a canonical lowercase hyphenated UUID ``str``; the two
    kinds never collide (integer 1 and UUID ...0001 are different points).
  * Id order (scroll paging) is Qdrant's: every integer id before every UUID, integers
    numerically, UUIDs by their 128-bit value (== canonical string order).
  * Dense vectors are ``Dense`` objects (float32 arrays) whose ``value()`` is what Qdrant would
    return: float32 values, normalised for Cosine collections (as Qdrant does on insert; done
    lazily on first read to keep upserts cheap); sparse vectors are ``(indices, values)``
    tuples sorted by index.
  * All mutation happens under ``Store.lock``; callers hold it for a whole request so each
    request is atomic (one bad point fails the whole upsert, nothing applied).
"""
import math
import operator
import threading
from datetime import datetime, timezone
from array import array

from validator import MAX_U64, parse_uuid, point_id_error

DEFAULT_VECTOR = ""   # internal name of the unnamed vector


class ApiError(Exception):
    """An error answered with Qdrant's JSON error envelope."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status
        self.message = message


def not_found_collection(name):
    return ApiError(404, f"Not found: Collection `{name}` doesn't exist!")


def wrong_input(msg):
    return ApiError(400, f"Wrong input: {msg}")


# -- point ids ---------------------------------------------------------------------------------
def point_key(raw):
    """Canonical key of an ExtendedPointId (int or lowercase hyphenated uuid str)."""
    if type(raw) is int:
        if 0 <= raw <= MAX_U64:
            return raw
    elif isinstance(raw, str):
        key = parse_uuid(raw)
        if key is not None:
            return key
    raise ApiError(400, "Format error in JSON body: " + str(point_id_error(raw)))


def id_sort_key(key):
    return (0, key, "") if type(key) is int else (1, 0, key)


def parse_path_id(text):
    """Point id given in a URL path segment (``GET /points/{id}``)."""
    if text.isdigit():
        v = int(text)
        if v <= MAX_U64:
            return v
    key = parse_uuid(text)
    if key is None:
        raise wrong_input(f'Can not recognize "{text}" as point id')
    return key


# -- payload access ------------------------------------------------------------------------------
def _split_key(key):
    """'a.b[].c' -> ['a', 'b', '[]', 'c']; '"x.y".z' quoting is honoured."""
    parts, cur, quoted = [], "", False
    for ch in key:
        if ch == '"':
            quoted = not quoted
        elif ch == "." and not quoted:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    out = []
    for p in parts:
        n = 0
        while p.endswith("[]"):
            p = p[:-2]
            n += 1
        out.append(p)
        out.extend(["[]"] * n)
    return [p for p in out if p != ""]


def get_values(payload, key):
    """All values at ``key``; arrays at the leaf are flattened (Qdrant semantics)."""
    cur = [payload]
    for part in _split_key(key):
        nxt = []
        for obj in cur:
            if part == "[]":
                if isinstance(obj, list):
                    nxt.extend(obj)
            elif isinstance(obj, dict):
                if part in obj:
                    nxt.append(obj[part])
            elif isinstance(obj, list):
                for el in obj:
                    if isinstance(el, dict) and part in el:
                        nxt.append(el[part])
        cur = nxt
    flat = []
    for v in cur:
        if isinstance(v, list):
            flat.extend(v)
        else:
            flat.append(v)
    return cur, flat


def set_by_key(payload, key, value):
    """Merge ``value`` (a dict) into the object at dotted ``key`` (``set_payload`` with key)."""
    obj = payload
    for part in _split_key(key):
        if not isinstance(obj.get(part), dict):
            obj[part] = {}
        obj = obj[part]
    obj.update(value)


def _is_int(v):
    return type(v) is int


def _is_num(v):
    return type(v) is int or type(v) is float


# -- filters -----------------------------------------------------------------------------------
def _as_list(x):
    if x is None:
        return []
    return x if isinstance(x, list) else [x]


def match_filter(flt, point):
    """True when ``point`` satisfies the Qdrant filter object ``flt`` (None matches all)."""
    if not flt:
        return True
    for c in _as_list(flt.get("must")):
        if not match_condition(c, point):
            return False
    for c in _as_list(flt.get("must_not")):
        if match_condition(c, point):
            return False
    should = _as_list(flt.get("should"))
    if should and not any(match_condition(c, point) for c in should):
        return False
    ms = flt.get("min_should")
    if ms:
        hits = sum(1 for c in ms["conditions"] if match_condition(c, point))
        if hits < ms["min_count"]:
            return False
    return True


def _match_value(m, values):
    if "value" in m:
        want = m["value"]
        if isinstance(want, bool):
            return any(v is want for v in values)
        if _is_int(want):
            return any(_is_int(v) and v == want for v in values)
        return any(isinstance(v, str) and v == want for v in values)
    if "any" in m:
        allowed = m["any"]
        if not allowed:
            return False
        if isinstance(allowed[0], str):
            s = set(allowed)
            return any(isinstance(v, str) and v in s for v in values)
        s = set(allowed)
        return any(_is_int(v) and v in s for v in values)
    if "except" in m:
        # Qdrant: a missing/empty field never matches; null never matches; a value of another
        # type than the list (or a nested array/object) always matches.
        excluded = m["except"]
        s = set(excluded)
        strings = bool(excluded) and isinstance(excluded[0], str)

        def ok(v):
            if v is None:
                return False
            if isinstance(v, str):
                return not (strings and v in s) if strings else True
            if _is_int(v):
                return (v not in s) if not strings else True
            return True
        return any(ok(v) for v in values)
    if "text" in m:
        return any(isinstance(v, str) and m["text"] in v for v in values)
    if "text_any" in m:
        words = m["text_any"].split()
        return any(isinstance(v, str) and any(w in v for w in words) for v in values)
    if "phrase" in m:
        return any(isinstance(v, str) and m["phrase"] in v for v in values)
    if "prefix" in m:
        return any(isinstance(v, str) and v.startswith(m["prefix"]) for v in values)
    return False


def _in_range(r, v):
    if r.get("lt") is not None and not v < r["lt"]:
        return False
    if r.get("gt") is not None and not v > r["gt"]:
        return False
    if r.get("lte") is not None and not v <= r["lte"]:
        return False
    if r.get("gte") is not None and not v >= r["gte"]:
        return False
    return True


def parse_datetime(v):
    """A payload/filter datetime as a UTC instant (naive = UTC, as Qdrant reads RFC 3339 and
    its relaxed forms), or None when ``v`` is not one."""
    if not isinstance(v, str):
        return None
    try:
        d = datetime.fromisoformat(v)
    except ValueError:
        return None
    return d if d.tzinfo is not None else d.replace(tzinfo=timezone.utc)


def _dt_range(r):
    out = {}
    for k in ("lt", "gt", "lte", "gte"):
        if r.get(k) is not None:
            out[k] = parse_datetime(r[k])
            if out[k] is None:
                return None
    return out


def _is_empty(raw):
    return not raw or all(v is None or v == [] for v in raw)


def _is_null(raw):
    return any(v is None or (isinstance(v, list) and any(x is None for x in v)) for v in raw)


def match_condition(c, point):
    if "key" in c:
        raw, values = get_values(point.payload, c["key"])
        if c.get("match") is not None:
            return _match_value(c["match"], values)
        if c.get("range") is not None:
            r = c["range"]
            if any(isinstance(r.get(k), str) for k in ("lt", "gt", "lte", "gte")):
                dr = _dt_range(r)      # datetimes compare as instants: ...Z == ...+00:00
                return dr is not None and any(
                    d is not None and _in_range(dr, d) for d in map(parse_datetime, values))
            return any(_is_num(v) and _in_range(r, v) for v in values)
        if c.get("values_count") is not None:
            n = len(values) if raw else 0
            return _in_range(c["values_count"], n)
        if c.get("is_empty") is not None:
            return _is_empty(raw) == c["is_empty"]
        if c.get("is_null") is not None:
            if not raw:
                return not c["is_null"]
            return _is_null(raw) == c["is_null"]
        return False
    if "is_empty" in c:
        raw, _ = get_values(point.payload, c["is_empty"]["key"])
        return _is_empty(raw)
    if "is_null" in c:
        raw, _ = get_values(point.payload, c["is_null"]["key"])
        return _is_null(raw)
    if "has_id" in c:
        keys = set()
        for raw in c["has_id"]:
            keys.add(point_key(raw))
        return point.key in keys
    if "has_vector" in c:
        return c["has_vector"] in point.vectors
    if "nested" in c:
        raw, values = get_values(point.payload, c["nested"]["key"])
        sub = c["nested"]["filter"]
        return any(isinstance(el, dict) and match_filter(sub, _PayloadView(el)) for el in values)
    return match_filter(c, point)


class _PayloadView:
    """A stand-in point for evaluating a nested filter against one array element."""
    __slots__ = ("payload", "key", "vectors")

    def __init__(self, payload):
        self.payload = payload
        self.key = None
        self.vectors = {}


# -- scoring -----------------------------------------------------------------------------------
def to_f32(v):
    """Round to float32 like Qdrant's storage (returns Python floats)."""
    return array("f", v).tolist()


def normalise(v):
    n = math.sqrt(sum(map(operator.mul, v, v)))
    if n == 0.0:
        return to_f32(v)
    return to_f32([x / n for x in v])


def dense_score(distance, q, v):
    if distance == "Cosine" or distance == "Dot":
        return sum(map(operator.mul, q, v))
    if distance == "Euclid":
        return math.sqrt(sum((a - b) * (a - b) for a, b in zip(q, v)))
    return sum(abs(a - b) for a, b in zip(q, v))  # Manhattan


def higher_is_better(distance):
    return distance in ("Cosine", "Dot", None)


def sparse_score(q, v, idf=None):
    qi, qv = q
    vi, vv = v
    d = dict(zip(vi, vv))
    s = 0.0
    hit = False
    for i, x in zip(qi, qv):
        y = d.get(i)
        if y is not None:
            hit = True
            s += x * y * (idf.get(i, 1.0) if idf is not None else 1.0)
    return s if hit else None


class Dense:
    """A stored dense vector (float32 array, 4 bytes/dim); ``value()`` gives Qdrant's stored
    numbers. Cosine vectors are normalised in place on first read (from their float32-rounded
    input, so results can differ from Qdrant's in the last float32 ulp)."""
    __slots__ = ("arr", "pending_norm")

    def __init__(self, raw, cosine):
        self.arr = array("f", raw)
        self.pending_norm = cosine

    def value(self):
        if self.pending_norm:
            self.arr = array("f", normalise(self.arr))
            self.pending_norm = False
        return self.arr.tolist()


def vec_value(v):
    """JSON form of a stored vector (dense list or sparse {"indices","values"})."""
    if isinstance(v, tuple):
        return {"indices": v[0], "values": v[1]}
    return v.value()


class Point:
    __slots__ = ("key", "vectors", "payload", "version")

    def __init__(self, key, vectors, payload, version):
        self.key = key
        self.vectors = vectors
        self.payload = payload
        self.version = version


DEFAULT_HNSW = {"m": 16, "ef_construct": 100, "full_scan_threshold": 10000,
                "max_indexing_threads": 0, "on_disk": False}
DEFAULT_OPTIMIZER = {"deleted_threshold": 0.2, "vacuum_min_vector_number": 1000,
                     "default_segment_number": 0, "max_segment_size": None,
                     "memmap_threshold": None, "indexing_threshold": 10000,
                     "flush_interval_sec": 5, "max_optimization_threads": None,
                     "prevent_unoptimized": None}
DEFAULT_WAL = {"wal_capacity_mb": 32, "wal_segments_ahead": 0, "wal_retain_closed": 1}


def _set(d):
    """A config object as Qdrant echoes it: unset (null) options left out, nested too."""
    if not isinstance(d, dict):
        return d
    return {k: _set(v) for k, v in d.items() if v is not None}


def _merge(base, diff):
    """``base`` updated with the non-null entries of ``diff`` (a Qdrant *Diff object)."""
    out = dict(base)
    for k, v in (diff or {}).items():
        if v is not None:
            out[k] = _set(v)
    return out


def _quantization(q):
    """A quantization config or diff: ``"Disabled"`` (PATCH) means none."""
    return None if q in (None, "Disabled") else _set(q)


class Collection:
    """One collection: its configuration as created (and PATCHed), its points and indexes.
    ``info()`` echoes the configuration like Qdrant (defaults filled in, unset options left
    out), so a client comparing what it asked for with what exists sees its own settings."""

    def __init__(self, name, body):
        self.name = name
        self.body = body
        vectors = body.get("vectors")
        self.named = {}          # name -> {"size", "distance", ...}
        self.unnamed = False
        if isinstance(vectors, dict) and "size" in vectors and "distance" in vectors:
            self.unnamed = True
            self.named[DEFAULT_VECTOR] = _set(vectors)
        elif isinstance(vectors, dict):
            self.named.update({n: _set(v) for n, v in vectors.items()})
        self.sparse = {n: _set(v or {}) for n, v in (body.get("sparse_vectors") or {}).items()}
        self.params = {"shard_number": body.get("shard_number") or 1,
                       "replication_factor": body.get("replication_factor") or 1,
                       "write_consistency_factor": body.get("write_consistency_factor") or 1,
                       "on_disk_payload": True if body.get("on_disk_payload") is None
                       else body["on_disk_payload"]}
        if body.get("sharding_method") is not None:
            self.params["sharding_method"] = body["sharding_method"]
        self.hnsw = _merge(DEFAULT_HNSW, body.get("hnsw_config"))
        self.optimizer = _merge(DEFAULT_OPTIMIZER, body.get("optimizers_config"))
        self.wal = _merge(DEFAULT_WAL, body.get("wal_config"))
        self.quantization = _quantization(body.get("quantization_config"))
        self.points = {}
        self.op_id = 0
        self.payload_schema = {}
        self._sorted = None

    def next_op(self):
        op = self.op_id
        self.op_id += 1
        return op

    def sorted_keys(self):
        if self._sorted is None:
            self._sorted = sorted(self.points, key=id_sort_key)
        return self._sorted

    def invalidate(self):
        self._sorted = None

    # -- vector input normalisation ---------------------------------------------------------
    def convert_vector_struct(self, vs):
        """Turn a point's ``vector`` (list or name map) into {name: stored vector}; raises."""
        if isinstance(vs, list):
            if vs and isinstance(vs[0], list):
                raise wrong_input("Multi-dense vectors are not supported by this test server")
            return {DEFAULT_VECTOR: self._dense(DEFAULT_VECTOR, vs)}
        if isinstance(vs, dict):
            out = {}
            for name, v in vs.items():
                if isinstance(v, dict) and "indices" in v:
                    out[name] = self._sparse(name, v)
                elif isinstance(v, list):
                    if v and isinstance(v[0], list):
                        raise wrong_input("Multi-dense vectors are not supported by this test "
                                          "server")
                    out[name] = self._dense(name, v)
                else:
                    raise wrong_input("Inference is not supported by this test server")
            return out
        raise wrong_input("Inference is not supported by this test server")

    def _dense(self, name, v):
        params = self.named.get(name)
        if params is None:
            if name in self.sparse:
                raise wrong_input(f"Conversion between sparse and regular vectors failed")
            raise wrong_input(f"Not existing vector name error: {name}")
        if len(v) != params["size"]:
            raise wrong_input(f"Vector dimension error: expected dim: {params['size']}, "
                              f"got {len(v)}")
        return Dense(v, params["distance"] == "Cosine")

    def _sparse(self, name, v):
        if name not in self.sparse:
            if name in self.named:
                raise wrong_input("Conversion between sparse and regular vectors failed")
            raise wrong_input(f"Not existing vector name error: {name}")
        idx, vals = v["indices"], v["values"]
        if len(idx) != len(vals):
            raise ApiError(422, "Validation error in JSON body: [points[0].vector: must be the "
                           "same length as indices]")
        if len(set(idx)) != len(idx):
            raise ApiError(422, "Validation error in JSON body: [points[0].vector: must be "
                           "unique]")
        pairs = sorted(zip(idx, vals))
        return ([i for i, _ in pairs], to_f32([x for _, x in pairs]))

    def idf(self, name, indices):
        """Qdrant's IDF for the sparse vector ``name`` (``modifier: idf``): over the points that
        have that vector (N) and those whose vector holds the index (df),
        ln((N - df + 0.5) / (df + 0.5) + 1)."""
        vecs = [p.vectors[name] for p in self.points.values()
                if isinstance(p.vectors.get(name), tuple)]
        n = len(vecs)
        out = {}
        for i in indices:
            df = sum(1 for v in vecs if i in v[0])
            out[i] = math.log((n - df + 0.5) / (df + 0.5) + 1.0)
        return out

    def update(self, body):
        """``PATCH /collections/{c}`` (UpdateCollection): merge what Qdrant lets you change in
        place. Vector names are checked first: nothing changes on an error."""
        for vname in (body.get("vectors") or {}):
            if vname not in self.named:
                raise wrong_input(f"Not existing vector name error: {vname}")
        for vname, diff in (body.get("vectors") or {}).items():
            vp = dict(self.named[vname])
            for k, v in (diff or {}).items():
                if k == "quantization_config":
                    q = _quantization(v)
                    if q is None and v is not None:
                        vp.pop(k, None)
                    elif q is not None:
                        vp[k] = q
                elif k == "hnsw_config" and v is not None:
                    vp[k] = _merge(vp.get(k) or {}, v)
                elif v is not None:
                    vp[k] = _set(v)
            self.named[vname] = vp
        self.params = _merge(self.params, {k: v for k, v in (body.get("params") or {}).items()
                                           if k != "payload"})
        self.hnsw = _merge(self.hnsw, body.get("hnsw_config"))
        self.optimizer = _merge(self.optimizer, body.get("optimizers_config"))
        if body.get("quantization_config") is not None:
            self.quantization = _quantization(body["quantization_config"])
        for vname, sp in (body.get("sparse_vectors") or {}).items():
            if vname not in self.sparse:
                raise wrong_input(f"Not existing vector name error: {vname}")
            self.sparse[vname] = _merge(self.sparse[vname], sp)

    def info(self):
        vectors = self.named.get(DEFAULT_VECTOR) if self.unnamed else self.named
        params = dict({"vectors": vectors}, **self.params)
        if self.sparse:
            params["sparse_vectors"] = self.sparse
        schema = {}
        for field, fs in self.payload_schema.items():
            dtype = fs if isinstance(fs, str) else (fs or {}).get("type", "keyword")
            entry = {"data_type": dtype, "points": sum(
                1 for p in self.points.values() if get_values(p.payload, field)[1])}
            if isinstance(fs, dict):
                entry["params"] = fs
            schema[field] = entry
        n = len(self.points)
        return {
            "status": "green", "optimizer_status": "ok", "indexed_vectors_count": 0,
            "points_count": n, "segments_count": 1,
            "config": {
                "params": params,
                "hnsw_config": self.hnsw,
                "optimizer_config": self.optimizer,
                "wal_config": self.wal,
                "quantization_config": self.quantization,
            },
            "payload_schema": schema,
            "update_queue": {"length": 0},
        }


class Store:
    """Collections by name and aliases (alias name -> collection name)."""

    def __init__(self):
        self.lock = threading.RLock()
        self.collections = {}
        self.aliases = {}

    def resolve(self, name):
        """The collection ``name`` designates: itself, or the target of the alias ``name``."""
        c = self.collections.get(name)
        if c is None and name in self.aliases:
            c = self.collections.get(self.aliases[name])
        return c

    def get(self, name):
        c = self.resolve(name)
        if c is None:
            raise not_found_collection(name)
        return c

    def drop(self, name):
        """Delete collection ``name`` (not through an alias) and the aliases pointing to it."""
        if self.collections.pop(name, None) is None:
            return False
        for a in [a for a, c in self.aliases.items() if c == name]:
            del self.aliases[a]
        return True

    def reset(self):
        with self.lock:
            self.collections.clear()
            self.aliases.clear()

"""Universal query (``POST /collections/{c}/points/query``) evaluation for the test server.

Owns: exact (brute-force) nearest-neighbour search over the in-memory store, prefetch trees,
fusion (``rrf`` with k=2 or ``{"rrf": {"k": K}}``, ``dbsf``), ``score_threshold``, and the
"no query" form (points in id order).

Invariants:
  * Ordering is Qdrant's: Cosine/Dot (and sparse, fusion) by descending score; Euclid/Manhattan
    by ascending distance (the returned ``score`` is the distance). Ties break by id order.
  * Cosine query vectors are normalised like stored vectors, so Cosine scores are dot products
    of unit vectors.
  * Query by point id uses that point's vector and excludes the point itself.
  * Anything not implemented (recommend, discover, context, formula, multi-vectors, inference)
    answers 400 ``Wrong input: ...`` rather than a silently wrong result.
"""
import store as st
from store import ApiError, DEFAULT_VECTOR, wrong_input


def _resolve_input(coll, q, using):
    """Return (kind, vector, exclude_key) for a VectorInput ``q``."""
    if isinstance(q, dict) and "nearest" in q:
        q = q["nearest"]
    if isinstance(q, list):
        if q and isinstance(q[0], list):
            raise wrong_input("Multi-dense vectors are not supported by this test server")
        return "dense", q, None
    if isinstance(q, dict) and "indices" in q:
        return "sparse", q, None
    if isinstance(q, (int, str)) and not isinstance(q, bool):
        k = st.point_key(q)
        pt = coll.points.get(k)
        if pt is None:
            raise ApiError(404, f"Not found: No point with id {k} found")
        v = pt.vectors.get(using)
        if v is None:
            raise wrong_input(f"Not existing vector name error: {using}")
        if isinstance(v, tuple):
            return "sparse", {"indices": v[0], "values": v[1]}, k
        return "dense", v.value(), k
    raise wrong_input("This query type is not supported by this test server")


def _search(coll, q, using, flt, candidates, threshold):
    using = DEFAULT_VECTOR if using is None else using
    kind, vec, exclude = _resolve_input(coll, q, using)
    pool = candidates if candidates is not None else list(coll.points.values())
    if flt:
        pool = [pt for pt in pool if st.match_filter(flt, pt)]
    if kind == "dense":
        params = coll.named.get(using)
        if params is None and using in coll.sparse:
            raise wrong_input("Conversion between sparse and regular vectors failed")
        if params is None:
            raise wrong_input(f"Not existing vector name error: {using}")
        if len(vec) != params["size"]:
            raise wrong_input(f"Vector dimension error: expected dim: {params['size']}, "
                              f"got {len(vec)}")
        dist = params["distance"]
        qv = st.normalise(vec) if dist == "Cosine" else st.to_f32(vec)
        res = []
        for pt in pool:
            v = pt.vectors.get(using)
            if v is None or pt.key == exclude or isinstance(v, tuple):
                continue
            res.append((st.dense_score(dist, qv, v.value()), pt))
        better_high = st.higher_is_better(dist)
    else:
        if using not in coll.sparse and using in coll.named:
            raise wrong_input("Conversion between sparse and regular vectors failed")
        if using not in coll.sparse:
            raise wrong_input(f"Not existing vector name error: {using}")
        if len(vec["indices"]) != len(vec["values"]):
            raise ApiError(422, "Validation error in JSON body: [query.values: must be the "
                                "same length as indices]")
        idf = None
        if (coll.sparse[using] or {}).get("modifier") == "idf":
            idf = coll.idf(using, vec["indices"])
        qs = (vec["indices"], vec["values"])
        res = []
        for pt in pool:
            v = pt.vectors.get(using)
            if not isinstance(v, tuple) or pt.key == exclude:
                continue
            s = st.sparse_score(qs, v, idf)
            if s is not None:
                res.append((s, pt))
        better_high = True
    if threshold is not None:
        res = [r for r in res if (r[0] > threshold if better_high else r[0] < threshold)]
    return _sort(res, better_high)


def _sort(res, better_high):
    if better_high:
        res.sort(key=lambda r: (-r[0], st.id_sort_key(r[1].key)))
    else:
        res.sort(key=lambda r: (r[0], st.id_sort_key(r[1].key)))
    return res


def _fuse(kind, lists, k=2):
    scores, points = {}, {}
    if kind == "rrf":
        for lst in lists:
            for rank, (_, pt) in enumerate(lst):
                scores[pt.key] = scores.get(pt.key, 0.0) + 1.0 / (rank + k)
                points[pt.key] = pt
    elif kind == "dbsf":
        for lst in lists:
            if not lst:
                continue
            vals = [s for s, _ in lst]
            mean = sum(vals) / len(vals)
            # Qdrant: the sample standard deviation (n - 1), recorded against 1.18.3
            sd = (sum((x - mean) ** 2 for x in vals) / (len(vals) - 1)) ** 0.5 \
                if len(vals) > 1 else 0.0
            lo, hi = mean - 3 * sd, mean + 3 * sd
            for s, pt in lst:
                norm = 0.5 if hi == lo else min(1.0, max(0.0, (s - lo) / (hi - lo)))
                scores[pt.key] = scores.get(pt.key, 0.0) + norm
                points[pt.key] = pt
    else:
        raise wrong_input(f"Unsupported fusion {kind}")
    # ties: the higher point id first (what 1.18.3 answered for two RRF scores of 0.25)
    fused = [(s, points[key]) for key, s in scores.items()]
    fused.sort(key=lambda r: st.id_sort_key(r[1].key), reverse=True)
    fused.sort(key=lambda r: -r[0])
    return fused


def run_query(coll, body, limit):
    """Evaluate a QueryRequest/Prefetch ``body``; returns [(score, Point)] best first."""
    prefetch = body.get("prefetch")
    if isinstance(prefetch, dict):
        prefetch = [prefetch]
    sub = []
    for pf in prefetch or []:
        sub.append(run_query(coll, pf, pf.get("limit") or 10))
    q = body.get("query")
    flt = body.get("filter")
    threshold = body.get("score_threshold")
    if q is None:
        if sub:
            res = sub[0]
            if flt:
                res = [r for r in res if st.match_filter(flt, r[1])]
            return res[:limit]
        res = []
        for key in coll.sorted_keys():
            pt = coll.points[key]
            if not flt or st.match_filter(flt, pt):
                res.append((1.0, pt))    # Qdrant scores every point 1.0 without a query
                if len(res) >= limit:
                    break
        return res
    if isinstance(q, dict) and "fusion" in q:
        res = _fuse(q["fusion"], sub)
    elif isinstance(q, dict) and "rrf" in q:
        res = _fuse("rrf", sub, (q["rrf"] or {}).get("k") or 2)
    elif isinstance(q, dict) and not ("nearest" in q or "indices" in q):
        raise wrong_input(f"Query type `{next(iter(q), '')}` is not supported by this test "
                          "server")
    else:
        candidates = None
        if sub:
            seen = {}
            for lst in sub:
                for _, pt in lst:
                    seen[pt.key] = pt
            candidates = list(seen.values())
        res = _search(coll, q, body.get("using"), flt, candidates, threshold)
        threshold = None
    if flt and (isinstance(q, dict) and ("fusion" in q or "rrf" in q)):
        res = [r for r in res if st.match_filter(flt, r[1])]
    if threshold is not None:
        res = [r for r in res if r[0] > threshold]
    return res[:limit]

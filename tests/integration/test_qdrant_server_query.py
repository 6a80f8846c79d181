"""Integration tests of the Qdrant test server's query and filter semantics.

Owns: score ordering per distance (Cosine/Dot higher first, Euclid/Manhattan lower first),
exact score values, ``using`` for named vectors, sparse dot-product (and IDF) queries, hybrid
prefetch + RRF fusion, ``score_threshold``/``offset``, and payload filters (must/should/
must_not/min_should, match value/any/except, range, has_id, is_empty/is_null, nested keys,
values_count, nested arrays).

Invariant: every test starts from an empty server (the ``qdrant`` fixture resets it).
"""
import math
import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
from tests.qdrant_server.fixture import qdrant, qdrant_session  # noqa: E402,F401

VECS = {1: [1.0, 0.0, 0.0], 2: [0.0, 1.0, 0.0], 3: [0.7, 0.7, 0.0], 4: [2.0, 2.0, 2.0],
        5: [-1.0, 0.0, 0.0]}
Q = [1.0, 0.2, 0.0]


def result(status, body):
    assert status == 200, body
    return body["result"]


def load(qdrant, distance, name="q"):
    qdrant.create_collection(name, size=3, distance=distance)
    result(*qdrant.upsert(name, [{"id": i, "vector": v, "payload": {"i": i}}
                                 for i, v in VECS.items()]))


def expected(distance):
    def score(v):
        if distance == "Cosine":
            nq = math.sqrt(sum(x * x for x in Q))
            nv = math.sqrt(sum(x * x for x in v))
            return sum(a * b for a, b in zip(Q, v)) / (nq * nv)
        if distance == "Dot":
            return sum(a * b for a, b in zip(Q, v))
        if distance == "Euclid":
            return math.sqrt(sum((a - b) ** 2 for a, b in zip(Q, v)))
        return sum(abs(a - b) for a, b in zip(Q, v))
    scores = {i: score(v) for i, v in VECS.items()}
    reverse = distance in ("Cosine", "Dot")
    return sorted(scores.items(), key=lambda kv: (-kv[1] if reverse else kv[1], kv[0]))


@pytest.mark.parametrize("distance", ["Cosine", "Dot", "Euclid", "Manhattan"])
def test_query_order_and_scores_per_distance(qdrant, distance):
    load(qdrant, distance)
    res = result(*qdrant.query("q", query=Q, limit=5, with_payload=True))
    exp = expected(distance)
    assert [p["id"] for p in res["points"]] == [i for i, _ in exp]
    for p, (_, s) in zip(res["points"], exp):
        assert p["score"] == pytest.approx(s, abs=1e-5)
        assert p["payload"] == {"i": p["id"]} and p["version"] == 0
        assert set(p) == {"id", "version", "score", "payload"}   # no vector: not requested


def test_query_limit_offset_threshold_and_filter(qdrant):
    load(qdrant, "Dot")
    exp = [i for i, _ in expected("Dot")]
    res = result(*qdrant.query("q", query=Q, limit=2, offset=1))
    assert [p["id"] for p in res["points"]] == exp[1:3]
    # with_payload/with_vector default to false: Qdrant omits the keys (it never sends null)
    assert all(set(p) == {"id", "version", "score"} for p in res["points"])
    res = result(*qdrant.query("q", query=Q, score_threshold=0.5))
    assert [p["id"] for p in res["points"]] == [i for i, s in expected("Dot") if s > 0.5]
    res = result(*qdrant.query("q", query={"nearest": Q}, limit=10,
                               filter={"must_not": [{"has_id": [4]}]}))
    assert 4 not in [p["id"] for p in res["points"]] and len(res["points"]) == 4


def test_query_dimension_and_name_errors(qdrant):
    load(qdrant, "Dot")
    status, body = qdrant.query("q", query=[1.0, 2.0])
    assert status == 400
    assert body["status"]["error"] == \
        "Wrong input: Vector dimension error: expected dim: 3, got 2"
    status, body = qdrant.query("q", query=Q, using="nope")
    assert status == 400
    assert body["status"]["error"] == "Wrong input: Not existing vector name error: nope"


def test_query_without_vector_returns_id_order(qdrant):
    load(qdrant, "Dot")
    res = result(*qdrant.query("q", limit=3))
    assert [p["id"] for p in res["points"]] == [1, 2, 3]


def hybrid(qdrant):
    qdrant.create_collection("h", vectors={"dense": {"size": 3, "distance": "Cosine"}},
                             sparse_vectors={"bm25": {}})
    pts = [
        {"id": 1, "vector": {"dense": [1, 0, 0], "bm25": {"indices": [1, 2], "values": [1, 1]}}},
        {"id": 2, "vector": {"dense": [0, 1, 0], "bm25": {"indices": [2], "values": [3]}}},
        {"id": 3, "vector": {"dense": [1, 1, 0], "bm25": {"indices": [7], "values": [5]}}},
        {"id": 4, "vector": {"dense": [0, 0, 1]}},
    ]
    result(*qdrant.upsert("h", pts))


def test_named_dense_query_with_using(qdrant):
    hybrid(qdrant)
    res = result(*qdrant.query("h", query=[1, 0.1, 0], using="dense", limit=2))
    assert [p["id"] for p in res["points"]] == [1, 3]
    status, body = qdrant.query("h", query=[1, 0, 0])   # no default vector in this collection
    assert status == 400 and body["status"]["error"].startswith(
        "Wrong input: Not existing vector name error")


def test_sparse_dot_product_query(qdrant):
    hybrid(qdrant)
    res = result(*qdrant.query("h", query={"indices": [2, 1], "values": [0.5, 2.0]},
                               using="bm25", limit=10))
    # id1: 1*2 + 1*0.5 = 2.5; id2: 3*0.5 = 1.5; id3/id4 share no index -> not returned
    assert [(p["id"], p["score"]) for p in res["points"]] == [(1, 2.5), (2, 1.5)]


def test_sparse_idf_modifier(qdrant):
    qdrant.create_collection("idf", vectors={}, sparse_vectors={"s": {"modifier": "idf"}})
    result(*qdrant.upsert("idf", [
        {"id": 1, "vector": {"s": {"indices": [1], "values": [1.0]}}},
        {"id": 2, "vector": {"s": {"indices": [1, 2], "values": [1.0, 1.0]}}},
        {"id": 3, "vector": {"s": {"indices": [3], "values": [1.0]}}}]))
    res = result(*qdrant.query("idf", query={"indices": [1, 2], "values": [1.0, 1.0]},
                               using="s"))
    idf = {1: math.log((3 - 2 + 0.5) / (2 + 0.5) + 1), 2: math.log((3 - 1 + 0.5) / 1.5 + 1)}
    scores = {p["id"]: p["score"] for p in res["points"]}
    assert scores == {2: pytest.approx(idf[1] + idf[2]), 1: pytest.approx(idf[1])}


def test_sparse_idf_counts_only_that_vector(qdrant):
    """N and df are those of the queried sparse vector: another sparse vector's indices and
    points without this vector do not count."""
    qdrant.create_collection("idf2", vectors={}, sparse_vectors={"s": {"modifier": "idf"},
                                                                   "o": {}})
    result(*qdrant.upsert("idf2", [
        {"id": 1, "vector": {"s": {"indices": [1], "values": [1.0]}}},
        {"id": 2, "vector": {"s": {"indices": [2], "values": [1.0]},
                             "o": {"indices": [1], "values": [1.0]}}},
        {"id": 3, "vector": {"o": {"indices": [1], "values": [1.0]}}}]))
    res = result(*qdrant.query("idf2", query={"indices": [1], "values": [1.0]}, using="s"))
    # N = 2 points with `s`, df(1) = 1
    assert [(p["id"], p["score"]) for p in res["points"]] == [
        (1, pytest.approx(math.log((2 - 1 + 0.5) / 1.5 + 1)))]


def test_prefetch_rrf_fusion(qdrant):
    hybrid(qdrant)
    res = result(*qdrant.query("h", prefetch=[
        {"query": [1, 0.1, 0], "using": "dense", "limit": 3},
        {"query": {"indices": [2], "values": [1.0]}, "using": "bm25", "limit": 3}],
        query={"fusion": "rrf"}, limit=10))
    # dense ranks: 1, 3, 2; sparse ranks: 2, 1  -> rrf (k=2): 1: 1/2+1/3, 2: 1/4+1/2, 3: 1/3
    got = [(p["id"], round(p["score"], 6)) for p in res["points"]]
    assert got == [(1, round(1 / 2 + 1 / 3, 6)), (2, round(1 / 4 + 1 / 2, 6)),
                   (3, round(1 / 3, 6))]


# -- filters ----------------------------------------------------------------------------------------
DOCS = {
    1: {"city": "Berlin", "n": 1, "tags": ["a", "b"], "meta": {"lang": "de", "score": 0.5},
        "flag": True},
    2: {"city": ["Berlin", "London"], "n": 2, "meta": {"lang": "en"}, "empty": [],
        "arrn": [1, None]},
    3: {"city": "Paris", "n": 3.5, "tags": [], "nul": None, "meta": {"lang": "fr"},
        "arrn": [1, 2]},
    4: {"n": 10, "items": [{"k": "x", "v": 1}, {"k": "y", "v": 2}], "flag": False},
    5: {},
}


def ids(qdrant, flt):
    status, body = qdrant.count("f", filter=flt)
    assert status == 200, body
    pts = qdrant.scroll_all("f", limit=100, filter=flt)
    assert body["result"]["count"] == len(pts)
    return [p["id"] for p in pts]


@pytest.fixture
def fq(qdrant):
    qdrant.create_collection("f", size=2, distance="Dot")
    result(*qdrant.upsert("f", [{"id": i, "vector": [1, 0], "payload": p}
                                for i, p in DOCS.items()]))
    return lambda flt: ids(qdrant, flt)


@pytest.mark.parametrize("flt,want", [
    ({"must": [{"key": "city", "match": {"value": "Berlin"}}]}, [1, 2]),
    ({"must": {"key": "city", "match": {"value": "London"}}}, [2]),
    ({"should": [{"key": "city", "match": {"value": "Paris"}},
                 {"key": "n", "match": {"value": 10}}]}, [3, 4]),
    ({"must_not": [{"key": "city", "match": {"value": "Berlin"}}]}, [3, 4, 5]),
    ({"must": [{"key": "city", "match": {"any": ["Paris", "London"]}}]}, [2, 3]),
    # except: missing fields never match, other value types always do
    ({"must": [{"key": "city", "match": {"except": ["Berlin"]}}]}, [2, 3]),
    ({"must": [{"key": "n", "match": {"except": [1, 10]}}]}, [2, 3]),
    ({"must": [{"key": "arr", "match": {"except": ["a"]}}]}, []),
    ({"must": [{"key": "arrn", "is_null": True}]}, [2]),
    ({"must": [{"key": "arrn", "is_null": False}]}, [1, 3, 4, 5]),
    ({"must": [{"key": "n", "match": {"any": [1, 2]}}]}, [1, 2]),
    ({"must": [{"key": "n", "range": {"gt": 1, "lte": 10}}]}, [2, 3, 4]),
    ({"must": [{"key": "n", "range": {"gte": 3.5, "lt": 10}}]}, [3]),
    ({"must": [{"key": "meta.lang", "match": {"value": "en"}}]}, [2]),
    ({"must": [{"key": "meta.score", "range": {"gte": 0.1}}]}, [1]),
    ({"must": [{"key": "items[].k", "match": {"value": "y"}}]}, [4]),
    ({"must": [{"has_id": [5, 1, 77]}]}, [1, 5]),
    ({"must": [{"is_empty": {"key": "tags"}}]}, [2, 3, 4, 5]),
    ({"must": [{"is_empty": {"key": "empty"}}]}, [1, 2, 3, 4, 5]),
    ({"must": [{"is_null": {"key": "nul"}}]}, [3]),
    ({"must_not": [{"is_empty": {"key": "city"}}]}, [1, 2, 3]),
    ({"must": [{"key": "flag", "match": {"value": True}}]}, [1]),
    ({"must": [{"key": "n", "match": {"value": 1}}]}, [1]),
    ({"must": [{"key": "tags", "values_count": {"gte": 2}}]}, [1]),
    ({"min_should": {"conditions": [{"key": "city", "match": {"value": "Berlin"}},
                                    {"key": "n", "range": {"lt": 2}},
                                    {"key": "flag", "match": {"value": True}}],
                     "min_count": 2}}, [1]),
    ({"must": [{"should": [{"has_id": [1]}, {"has_id": [4]}]},
               {"must_not": [{"has_id": [4]}]}]}, [1]),
    ({"must": [{"nested": {"key": "items", "filter": {"must": [
        {"key": "k", "match": {"value": "x"}}, {"key": "v", "range": {"gte": 1}}]}}}]}, [4]),
    ({"must": [{"nested": {"key": "items", "filter": {"must": [
        {"key": "k", "match": {"value": "x"}}, {"key": "v", "range": {"gte": 2}}]}}}]}, []),
    ({}, [1, 2, 3, 4, 5]),
])
def test_filters(fq, flt, want):
    assert fq(flt) == want


def test_filter_on_delete_and_query(qdrant, fq):
    res = result(*qdrant.query("f", query=[1, 0], filter={"must": [
        {"key": "city", "match": {"value": "Berlin"}}]}))
    assert sorted(p["id"] for p in res["points"]) == [1, 2]
    result(*qdrant.delete("f", filter={"must": [{"key": "n", "range": {"gte": 3}}]}))
    assert fq({}) == [1, 2, 5]


def test_invalid_filter_condition_is_400(qdrant, fq):
    status, body = qdrant.scroll("f", filter={"must": [{"nope": 1}]})
    assert status == 400
    assert body["status"]["error"].startswith(
        "Format error in JSON body: Expected some form of condition")

"""Integration tests of the Qdrant test server's REST behaviour (tests/qdrant_server).

Owns: envelopes, status codes and messages, point-id rules, collections, upserts (record,
column, named, sparse), deletes, payload updates, scroll paging, count, retrieve, payload
index, routing details (trailing slash, unknown route, content type, body limit) and the API
key. Query/filter semantics live in test_qdrant_server_query.py, fault injection in
test_qdrant_server_faults.py.

Invariant: every test starts from an empty server (the ``qdrant`` fixture resets it).
"""
import http.client
import json
import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
from tests.qdrant_server.client import QdrantStub  # noqa: E402
from tests.qdrant_server.fixture import qdrant, qdrant_session  # noqa: E402,F401

FORMAT = "Format error in JSON body: "


def vec(i, dim=4):
    return [float(i + 1)] + [0.5] * (dim - 1)


def assert_ok(status, body):
    assert status == 200, body
    assert body["status"] == "ok"
    assert isinstance(body["time"], float)
    return body["result"]


def assert_err(status, body, code, message=None, prefix=None):
    assert status == code, body
    assert set(body) == {"status", "time"}
    err = body["status"]["error"]
    if message is not None:
        assert err == message
    if prefix is not None:
        assert err.startswith(prefix), err
    return err


# -- service endpoints ----------------------------------------------------------------------------
def test_root_and_health(qdrant):
    status, body, _ = qdrant.request("GET", "/")
    assert status == 200 and set(body) == {"title", "version", "commit"}
    assert body["version"].startswith("1.19")
    for path, text in (("/healthz", "healthz check passed"), ("/livez", "healthz check passed"),
                       ("/readyz", "all shards are ready")):
        status, body, headers = qdrant.request("GET", path)
        assert status == 200 and body == text
        assert headers["content-type"].startswith("text/plain")


def test_unknown_route_is_empty_404(qdrant):
    for method, path in (("GET", "/nope"), ("POST", "/collections"),
                         ("GET", "/collections/a/b/c/d")):
        status, body, headers = qdrant.request(method, path)
        assert status == 404 and body == "" and headers["content-length"] == "0"


def test_trailing_slash_is_trimmed(qdrant):
    assert_ok(*qdrant.call("PUT", "/collections/t/", {"vectors": {"size": 4,
                                                                    "distance": "Dot"}}))
    assert assert_ok(*qdrant.call("GET", "/collections/t/exists/")) == {"exists": True}


# -- collections ----------------------------------------------------------------------------------
def test_collection_lifecycle(qdrant):
    assert assert_ok(*qdrant.call("GET", "/collections")) == {"collections": []}
    assert assert_ok(*qdrant.create_collection("c1", size=384)) is True
    assert assert_ok(*qdrant.call("GET", "/collections/c1/exists")) == {"exists": True}
    assert assert_ok(*qdrant.call("GET", "/collections/zz/exists")) == {"exists": False}
    info = assert_ok(*qdrant.collection_info("c1"))
    assert info["status"] == "green" and info["points_count"] == 0
    assert info["config"]["params"]["vectors"] == {"size": 384, "distance": "Cosine"}
    assert assert_ok(*qdrant.call("GET", "/collections")) == {"collections": [{"name": "c1"}]}
    assert assert_ok(*qdrant.delete_collection("c1")) is True
    assert assert_ok(*qdrant.delete_collection("c1")) is False


def test_duplicate_create_is_409(qdrant):
    qdrant.create_collection("dup")
    assert_err(*qdrant.create_collection("dup"), 409,
               "Wrong input: Collection `dup` already exists!")


def test_missing_collection_is_404(qdrant):
    msg = "Not found: Collection `ghost` doesn't exist!"
    assert_err(*qdrant.collection_info("ghost"), 404, msg)
    assert_err(*qdrant.upsert("ghost", [{"id": 1, "vector": vec(1)}]), 404, msg)
    assert_err(*qdrant.scroll("ghost"), 404, msg)
    assert_err(*qdrant.query("ghost", query=vec(1)), 404, msg)
    assert_err(*qdrant.count("ghost"), 404, msg)


def test_named_and_sparse_collection_info(qdrant):
    assert_ok(*qdrant.create_collection(
        "h", vectors={"dense": {"size": 4, "distance": "Cosine"}},
        sparse_vectors={"bm25": {"modifier": "idf"}}))
    params = assert_ok(*qdrant.collection_info("h"))["config"]["params"]
    assert params["vectors"] == {"dense": {"size": 4, "distance": "Cosine"}}
    assert params["sparse_vectors"] == {"bm25": {"modifier": "idf"}}


# -- upsert ---------------------------------------------------------------------------------------
def test_upsert_record_form_and_status(qdrant):
    qdrant.create_collection("u", size=4, distance="Dot")
    res = assert_ok(*qdrant.upsert("u", [{"id": 1, "vector": vec(1), "payload": {"a": 1}}]))
    assert res == {"operation_id": 0, "status": "completed"}
    res2 = assert_ok(*qdrant.upsert("u", [{"id": 2, "vector": vec(2)}], wait=False))
    assert res2["status"] == "acknowledged"
    assert res2["operation_id"] == 1
    pts = qdrant.points("u")
    assert [p["id"] for p in pts] == [1, 2]
    assert pts[0]["payload"] == {"a": 1} and pts[1]["payload"] == {}
    assert pts[0]["vector"] == vec(1)


def test_upsert_column_form(qdrant):
    qdrant.create_collection("b", size=4, distance="Euclid")
    assert_ok(*qdrant.upsert_batch("b", [3, 1, 2], [vec(3), vec(1), vec(2)],
                                   [{"k": 3}, None, {"k": 2}]))
    pts = qdrant.points("b")
    assert [(p["id"], p["payload"]) for p in pts] == [(1, {}), (2, {"k": 2}), (3, {"k": 3})]


def test_upsert_replaces_whole_point(qdrant):
    qdrant.create_collection("r", size=4, distance="Dot")
    qdrant.upsert("r", [{"id": 7, "vector": vec(1), "payload": {"a": 1, "b": 2}}])
    qdrant.upsert("r", [{"id": 7, "vector": vec(2), "payload": {"c": 3}}])
    (p,) = qdrant.points("r")
    assert p["payload"] == {"c": 3} and p["vector"] == vec(2)


def test_cosine_vectors_are_normalised(qdrant):
    qdrant.create_collection("cos", size=4, distance="Cosine")
    qdrant.upsert("cos", [{"id": 1, "vector": [3.0, 4.0, 0.0, 0.0]}])
    (p,) = qdrant.points("cos")
    assert p["vector"] == pytest.approx([0.6, 0.8, 0.0, 0.0], abs=1e-6)


def test_dimension_error_fails_whole_request(qdrant):
    qdrant.create_collection("d", size=384)
    good = {"id": 1, "vector": [0.1] * 384}
    bad = {"id": 2, "vector": [0.1, 0.2, 0.3]}
    assert_err(*qdrant.upsert("d", [good, bad]), 400,
               "Wrong input: Vector dimension error: expected dim: 384, got 3")
    assert qdrant.points("d") == []


def test_named_vectors_and_unknown_name(qdrant):
    qdrant.create_collection("n", vectors={"dense": {"size": 4, "distance": "Dot"}},
                             sparse_vectors={"bm25": {}})
    assert_ok(*qdrant.upsert("n", [{"id": 1, "vector": {
        "dense": vec(1), "bm25": {"indices": [5, 2], "values": [0.5, 0.25]}}}]))
    (p,) = qdrant.points("n")
    assert p["vector"] == {"dense": vec(1), "bm25": {"indices": [2, 5], "values": [0.25, 0.5]}}
    assert_err(*qdrant.upsert("n", [{"id": 2, "vector": {"x": vec(1)}}]), 400,
               "Wrong input: Not existing vector name error: x")
    assert_err(*qdrant.upsert("n", [{"id": 2, "vector": {"dense": [1.0]}}]), 400,
               "Wrong input: Vector dimension error: expected dim: 4, got 1")


# -- point ids ------------------------------------------------------------------------------------
UUID = "550e8400-e29b-41d4-a716-446655440000"


@pytest.mark.parametrize("raw", [UUID, UUID.upper(), UUID.replace("-", ""),
                                 "urn:uuid:" + UUID, "{" + UUID + "}"])
def test_uuid_forms_are_canonicalised(qdrant, raw):
    qdrant.create_collection("ids", size=4, distance="Dot")
    assert_ok(*qdrant.upsert("ids", [{"id": raw, "vector": vec(1)}]))
    assert [p["id"] for p in qdrant.points("ids")] == [UUID]
    got = assert_ok(*qdrant.retrieve("ids", [raw]))
    assert got[0]["id"] == UUID


@pytest.mark.parametrize("raw,shown", [("42", "42"), (-1, "-1"), (1.5, "1.5"),
                                       (2 ** 64, None), ("not-a-uuid", "not-a-uuid"),
                                       (True, "true"), (None, "Unit"), (3.0, "3"),
                                       ("3f25-04e04f89-11d3-9a0c-0305e82c3301",
                                        "3f25-04e04f89-11d3-9a0c-0305e82c3301")])
def test_invalid_point_ids_rejected(qdrant, raw, shown):
    qdrant.create_collection("ids", size=4, distance="Dot")
    status, body = qdrant.upsert("ids", [{"id": 1, "vector": vec(1)},
                                         {"id": raw, "vector": vec(2)}])
    err = assert_err(status, body, 400, prefix=FORMAT)
    assert err.endswith("is not a valid point ID, valid values are either an unsigned "
                        "integer or a UUID")
    if shown is not None:
        assert err == (FORMAT + f"value {shown} is not a valid point ID, valid values are "
                       "either an unsigned integer or a UUID")
    assert qdrant.points("ids") == []


def test_max_u64_id_ok_and_int_differs_from_uuid(qdrant):
    qdrant.create_collection("ids", size=4, distance="Dot")
    one_uuid = "00000000-0000-0000-0000-000000000001"
    assert_ok(*qdrant.upsert("ids", [{"id": 2 ** 64 - 1, "vector": vec(1)},
                                     {"id": 1, "vector": vec(2)},
                                     {"id": one_uuid, "vector": vec(3)}]))
    assert [p["id"] for p in qdrant.points("ids")] == [1, 2 ** 64 - 1, one_uuid]


# -- delete / payload -----------------------------------------------------------------------------
def seed(qdrant, name="p", n=5, distance="Dot"):
    qdrant.create_collection(name, size=4, distance=distance)
    pts = [{"id": i, "vector": vec(i), "payload": {"_pk": f"k{i % 2}", "n": i}}
           for i in range(1, n + 1)]
    assert_ok(*qdrant.upsert(name, pts))


def test_delete_by_ids_and_filter(qdrant):
    seed(qdrant)
    assert assert_ok(*qdrant.delete("p", ids=[1, 99]))["status"] == "completed"
    assert [p["id"] for p in qdrant.points("p")] == [2, 3, 4, 5]
    assert_ok(*qdrant.delete("p", filter={"must": [{"key": "_pk",
                                                   "match": {"value": "k0"}}]}))
    assert [p["id"] for p in qdrant.points("p")] == [3, 5]
    assert_err(*qdrant.call("POST", "/collections/p/points/delete", {}), 400, prefix=FORMAT)


def test_set_and_overwrite_payload(qdrant):
    seed(qdrant, n=3)
    assert_ok(*qdrant.set_payload("p", {"x": 1}, ids=[1]))
    assert_ok(*qdrant.set_payload("p", {"y": 2}, filter={"must": [{"key": "n",
                                                                  "range": {"gte": 2}}]}))
    assert_ok(*qdrant.set_payload("p", {"only": True}, ids=[3], overwrite=True))
    got = {p["id"]: p["payload"] for p in qdrant.points("p")}
    assert got == {1: {"_pk": "k1", "n": 1, "x": 1}, 2: {"_pk": "k0", "n": 2, "y": 2},
                   3: {"only": True}}
    assert_err(*qdrant.set_payload("p", {"x": 1}, ids=[42]), 404,
               "Not found: No point with id 42 found")


# -- reads ----------------------------------------------------------------------------------------
def test_scroll_paging_in_id_order(qdrant):
    qdrant.create_collection("s", size=4, distance="Dot")
    ids = [9, 3, UUID, 1, 2 ** 40, 5, "00000000-0000-0000-0000-000000000002"]
    assert_ok(*qdrant.upsert("s", [{"id": i, "vector": vec(1), "payload": {"i": str(i)}}
                                   for i in ids]))
    status, body = qdrant.scroll("s", limit=3)
    page = assert_ok(status, body)
    assert [p["id"] for p in page["points"]] == [1, 3, 5]
    assert page["next_page_offset"] == 9
    assert page["points"][0] == {"id": 1, "payload": {"i": "1"}}   # vector not requested: omitted
    allp = qdrant.scroll_all("s", limit=2)
    assert [p["id"] for p in allp] == [1, 3, 5, 9, 2 ** 40,
                                       "00000000-0000-0000-0000-000000000002", UUID]
    page = assert_ok(*qdrant.scroll("s", limit=10, offset=4, with_payload=False,
                                    with_vector=True))
    assert page["points"][0]["id"] == 5 and "payload" not in page["points"][0]
    assert page["points"][0]["vector"] == vec(1)
    assert page["next_page_offset"] is None


def test_scroll_with_payload_selection_and_filter(qdrant):
    seed(qdrant)
    page = assert_ok(*qdrant.scroll("p", with_payload=["n"],
                                    filter={"must": [{"key": "_pk", "match": {"value": "k1"}}]}))
    assert page["points"] == [{"id": i, "payload": {"n": i}} for i in (1, 3, 5)]


def test_count_and_retrieve(qdrant):
    seed(qdrant)
    assert assert_ok(*qdrant.count("p")) == {"count": 5}
    assert assert_ok(*qdrant.count("p", filter={"must_not": [
        {"key": "_pk", "match": {"value": "k1"}}]})) == {"count": 2}
    got = assert_ok(*qdrant.retrieve("p", [2, 99, 1], with_vector=True))
    assert [r["id"] for r in got] == [2, 1] and got[0]["vector"] == vec(2)
    rec = assert_ok(*qdrant.call("GET", "/collections/p/points/3"))
    assert rec["id"] == 3 and rec["payload"] == {"_pk": "k1", "n": 3}
    assert_err(*qdrant.call("GET", "/collections/p/points/77"), 404,
               "Not found: Point with id 77 does not exists!")
    assert_err(*qdrant.call("GET", "/collections/p/points/abc"), 400,
               'Wrong input: Can not recognize "abc" as point id')
    qdrant.upsert("p", [{"id": UUID, "vector": vec(1)}])
    rec = assert_ok(*qdrant.call("GET", "/collections/p/points/" + UUID.upper()))
    assert rec["id"] == UUID and rec["vector"] == vec(1)


def test_payload_index_is_recorded(qdrant):
    seed(qdrant)
    res = assert_ok(*qdrant.create_index("p", "_pk", "keyword"))
    assert res["status"] == "completed"
    schema = assert_ok(*qdrant.collection_info("p"))["payload_schema"]
    assert schema == {"_pk": {"data_type": "keyword", "points": 5}}


# -- request-level errors -------------------------------------------------------------------------
def test_content_type_not_checked(qdrant):
    """Qdrant 1.18.3 reads the body as JSON whatever the Content-Type (recorded)."""
    qdrant.create_collection("ct", size=4)
    for n, ctype in enumerate(("application/x-www-form-urlencoded", "text/plain"), 1):
        status, body, _ = qdrant.request(
            "PUT", "/collections/ct/points?wait=true",
            raw=b'{"points":[{"id":%d,"vector":[1,2,3,4]}]}' % n, headers={"Content-Type": ctype})
        assert_ok(status, body)
    # no Content-Type header at all
    conn = http.client.HTTPConnection(qdrant.host, qdrant.port, timeout=10)
    conn.putrequest("PUT", "/collections/ct/points?wait=true")
    raw = b'{"points":[{"id":3,"vector":[1,2,3,4]}]}'
    conn.putheader("Content-Length", str(len(raw)))
    conn.endheaders(raw)
    resp = conn.getresponse()
    body = json.loads(resp.read())
    conn.close()
    assert_ok(resp.status, body)
    assert [p["id"] for p in qdrant.points("ct")] == [1, 2, 3]
    # application/json with a charset parameter is fine
    status, body, _ = qdrant.request("PUT", "/collections/ct/points?wait=true", raw=raw,
                                     headers={"Content-Type": "application/json; charset=utf-8"})
    assert_ok(status, body)


def test_body_over_32_mib_is_400(qdrant):
    qdrant.create_collection("big", size=4)
    raw = b'{"points":[],"pad":"' + b"x" * (32 * 1024 * 1024) + b'"}'
    status, body, _ = qdrant.request("PUT", "/collections/big/points", raw=raw)
    err = assert_err(status, body, 400)
    assert "larger than allowed" in err and "33554432" in err


@pytest.mark.parametrize("raw,message", [
    (b"", "EOF while parsing a value at line 1 column 0"),
    (b'{"points": [', "EOF while parsing a list at line 1 column 12"),
    (b'{"points": [1 2]}', "expected `,` or `]` at line 1 column 15"),
    (b'{"points": []\n "x": 1}', "expected `,` or `}` at line 2 column 2"),
    (b'{"points": []} x', "trailing characters at line 1 column 16"),
    (b'{"points": [NaN]}', "expected value at line 1 column 13"),
])
def test_malformed_json_is_400(qdrant, raw, message):
    qdrant.create_collection("m", size=4)
    status, body, _ = qdrant.request("PUT", "/collections/m/points", raw=raw)
    assert_err(status, body, 400, FORMAT + message)
    assert body["time"] == 0.0


def test_bad_query_params(qdrant):
    qdrant.create_collection("q", size=4)
    prefix = "Deserialize error in query parameters: "
    one = {"points": [{"id": 1, "vector": vec(1)}]}
    assert_err(*qdrant.call("PUT", "/collections/q/points?wait=yes", one), 400,
               prefix + "provided string was not `true` or `false`")
    assert_err(*qdrant.call("PUT", "/collections/q/points?ordering=eventual", one),
               400, prefix + "unknown variant `eventual`, expected one of `weak`, `medium`, "
                             "`strong`")
    assert_ok(*qdrant.call("PUT", "/collections/q/points?timeout=0", one))   # accepted
    assert_ok(*qdrant.call("PUT", "/collections/q/points?wait=true&ordering=strong&timeout=5",
                           one))
    # an empty update is refused by the handler (400, not an extractor error)
    assert_err(*qdrant.call("PUT", "/collections/q/points?wait=true", {"points": []}), 400,
               "Bad request: Empty update request")
    assert_err(*qdrant.call("POST", "/collections/q/points/delete?wait=true", {"points": []}),
               400, "Bad request: Empty update request")


# -- schema validation: 400 (shape) vs 422 (constraints) ----------------------------------------
@pytest.mark.parametrize("path,body,message", [
    ("/collections/v", {"vectors": {"size": 4, "distance": "cosine"}},
     FORMAT + "data did not match any variant of untagged enum VectorsConfig at line 1 "
              "column 46"),
    ("/collections/v", {"vectors": {"size": 0, "distance": "Cosine"}},
     FORMAT + "data did not match any variant of untagged enum VectorsConfig at line 1 "
              "column 46"),
    ("/collections/v", {"sparse_vectors": {"s": {"modifier": "IDF"}}},
     FORMAT + "unknown variant `IDF`, expected `none` or `idf` at line 1 column 43"),
    ("/collections/v/points", {"points": [{"id": 1}]}, FORMAT + "missing field `vector`"),
    ("/collections/v/points", {"points": [{"id": 1, "vector": [1, "x", 3, 4]}]}, None),
    ("/collections/v/points", {"points": "nope"}, None),
])
def test_shape_errors_are_400(qdrant, path, body, message):
    qdrant.create_collection("v", size=4)
    status, res = qdrant.call("PUT", path, body)
    assert_err(status, res, 400, message, prefix=FORMAT)
    assert res["time"] == 0.0


def test_constraint_errors_are_422(qdrant):
    assert_err(*qdrant.call("PUT", "/collections/v", {"vectors": {"size": 65537,
                                                                  "distance": "Cosine"}}),
               422, "Validation error in JSON body: [vectors.size: value 65537 invalid, "
                    "must be from 1 to 65536]")
    qdrant.create_collection("v", size=4)
    assert_err(*qdrant.scroll("v", limit=0), 422, "Validation error in JSON body: "
               "[scroll_request.limit: value 0 invalid, must be 1 or larger]")
    assert_err(*qdrant.query("v", query=vec(1), limit=0), 422, "Validation error in JSON body: "
               "[internal.limit: value 0 invalid, must be 1 or larger]")
    assert_err(*qdrant.call("PUT", "/collections/v/points", {"batch": {
        "ids": [1, 2], "vectors": [vec(1)]}}), 422, "Validation error in JSON body: "
        "[batch.batch: number of ids and vectors must be equal (2 != 1)]")
    assert_err(*qdrant.call("POST", "/collections/v/points/scroll",
                            {"filter": {"must": [{"key": "a"}], "bogus": 1}}), 400,
               prefix=FORMAT + "unknown field `bogus`")


# -- api key --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def keyed():
    stub = QdrantStub.start(api_key="s3cret")
    yield stub
    stub.stop()


def test_api_key_required(keyed):
    status, body, headers = keyed.request("GET", "/collections", api_key=None)
    assert status == 401 and body == "Must provide an API key or an Authorization bearer token"
    assert "content-type" not in headers      # Qdrant's 401 carries no Content-Type
    status, body, _ = keyed.request("GET", "/collections", api_key="wrong")
    assert status == 401 and body == "Invalid API key or JWT"
    status, body, _ = keyed.request("GET", "/nope", api_key=None)
    assert status == 401
    assert keyed.request("GET", "/collections")[0] == 200
    status, _, _ = keyed.request("GET", "/collections", api_key=None,
                                 headers={"Authorization": "Bearer s3cret"})
    assert status == 200
    for path in ("/", "/healthz", "/livez", "/readyz"):
        assert keyed.request("GET", path, api_key=None)[0] == 200
    log = keyed.log()
    assert [e["status"] for e in log[:3]] == [401, 401, 401]


def test_update_mode_and_update_filter(qdrant):
    seed(qdrant, n=2)
    body = {"points": [{"id": 1, "vector": vec(9), "payload": {"v": "new"}},
                       {"id": 3, "vector": vec(3), "payload": {"v": "new"}}],
            "update_mode": "insert_only"}
    assert_ok(*qdrant.call("PUT", "/collections/p/points?wait=true", body))
    got = {p["id"]: p["payload"] for p in qdrant.points("p")}
    assert got[1] == {"_pk": "k1", "n": 1} and got[3] == {"v": "new"}
    body = {"points": [{"id": 1, "vector": vec(1), "payload": {"v": "upd"}},
                       {"id": 2, "vector": vec(2), "payload": {"v": "upd"}},
                       {"id": 4, "vector": vec(4), "payload": {"v": "upd"}}],
            "update_filter": {"must": [{"key": "n", "match": {"value": 2}}]}}
    assert_ok(*qdrant.call("PUT", "/collections/p/points?wait=true", body))
    got = {p["id"]: p["payload"] for p in qdrant.points("p")}
    assert got[1] == {"_pk": "k1", "n": 1}          # existing, filter not matched: kept
    assert got[2] == {"v": "upd"} and got[4] == {"v": "upd"}   # matched / new point
    body["update_mode"] = "update_only"
    body["points"] = [{"id": 5, "vector": vec(5)}]
    assert_ok(*qdrant.call("PUT", "/collections/p/points?wait=true", body))
    assert 5 not in {p["id"] for p in qdrant.points("p")}


def test_sparse_vector_validation_is_422(qdrant):
    qdrant.create_collection("sv", vectors={}, sparse_vectors={"s": {}})
    status, body = qdrant.upsert("sv", [{"id": 1, "vector": {
        "s": {"indices": [1, 2], "values": [0.5]}}}])
    assert_err(status, body, 422, "Validation error in JSON body: [points[0].vector.?.values: "
                                  "Validation error: must be the same length as indices [{}]]")
    status, body = qdrant.upsert("sv", [{"id": 1, "vector": {
        "s": {"indices": [3, 3], "values": [0.5, 0.1]}}}])
    assert_err(status, body, 422, prefix="Validation error in JSON body: [points[0].vector.?."
                                         "indices: Validation error: must be unique")
    assert qdrant.points("sv") == []


# -- aliases / update_vectors (issue 15: Qdrant's semantics, recorded against 1.18.3) -------------
def aliases(qdrant, body):
    return qdrant.call("POST", "/collections/aliases", {"actions": body})


def test_aliases_create_switch_rename_and_use(qdrant):
    seed(qdrant, "a1", n=3)
    seed(qdrant, "a2", n=1)
    assert assert_ok(*aliases(qdrant, [{"create_alias": {"collection_name": "a1",
                                                         "alias_name": "live"}}])) is True
    assert assert_ok(*qdrant.count("live")) == {"count": 3}        # reads through the alias
    assert_ok(*qdrant.upsert("live", [{"id": 9, "vector": vec(9)}]))   # and writes
    assert assert_ok(*qdrant.count("a1")) == {"count": 4}
    assert assert_ok(*qdrant.call("GET", "/collections/live/exists")) == {"exists": True}
    # switch in one call: delete + create, atomic
    assert_ok(*aliases(qdrant, [{"delete_alias": {"alias_name": "live"}},
                                {"create_alias": {"collection_name": "a2",
                                                  "alias_name": "live"}}]))
    assert assert_ok(*qdrant.count("live")) == {"count": 1}
    listed = {"alias_name": "live", "collection_name": "a2"}
    assert assert_ok(*qdrant.call("GET", "/aliases")) == {"aliases": [listed]}
    assert assert_ok(*qdrant.call("GET", "/collections/a2/aliases")) == {"aliases": [listed]}
    assert assert_ok(*qdrant.call("GET", "/collections/a1/aliases")) == {"aliases": []}
    assert assert_ok(*qdrant.call("GET", "/collections/zz/aliases")) == {"aliases": []}
    assert_ok(*aliases(qdrant, [{"rename_alias": {"old_alias_name": "live",
                                                  "new_alias_name": "prod"}}]))
    assert assert_ok(*qdrant.call("GET", "/aliases"))["aliases"] == [
        {"alias_name": "prod", "collection_name": "a2"}]
    # a failing action applies nothing of the call
    assert_err(*aliases(qdrant, [{"delete_alias": {"alias_name": "prod"}},
                                 {"create_alias": {"collection_name": "nope",
                                                   "alias_name": "x"}}]),
               404, "Not found: Collection `nope` doesn't exist!")
    assert assert_ok(*qdrant.count("prod")) == {"count": 1}
    # deleting the target collection drops its aliases
    assert_ok(*qdrant.call("DELETE", "/collections/a2"))
    assert assert_ok(*qdrant.call("GET", "/aliases")) == {"aliases": []}


def test_alias_errors(qdrant):
    seed(qdrant, "c", n=1)
    assert_err(*aliases(qdrant, [{"create_alias": {"collection_name": "c", "alias_name": "c"}}]),
               409, "Wrong input: Collection `c` already exists!")
    assert_ok(*aliases(qdrant, [{"delete_alias": {"alias_name": "never"}}]))   # 200 true
    assert_ok(*aliases(qdrant, [{"create_alias": {"collection_name": "c", "alias_name": "al"}}]))
    assert_err(*qdrant.call("PUT", "/collections/al", {"vectors": {"size": 4,
                                                                    "distance": "Dot"}}),
               400, "Wrong input: Can't create collection with name al. Alias with the same "
                    "name already exists")
    status, body = aliases(qdrant, [{"frobnicate_alias": {"alias_name": "al"}}])
    assert_err(status, body, 400, FORMAT + "data did not match any variant of untagged enum "
               "AliasOperations at line 1 column 56")


def test_update_vectors(qdrant):
    qdrant.create_collection("uv", vectors={"d": {"size": 4, "distance": "Dot"}},
                             sparse_vectors={"s": {}})
    assert_ok(*qdrant.upsert("uv", [
        {"id": i, "vector": {"d": vec(i), "s": {"indices": [1], "values": [1.0]}},
         "payload": {"k": i}} for i in (1, 2)]))
    path = "/collections/uv/points/vectors?wait=true"
    assert_ok(*qdrant.call("PUT", path, {"points": [
        {"id": 1, "vector": {"s": {"indices": [4, 2], "values": [0.5, 0.25]}}}]}))
    p1 = assert_ok(*qdrant.retrieve("uv", [1], with_vector=True))[0]
    assert p1["payload"] == {"k": 1} and p1["vector"]["d"] == vec(1)    # others kept
    assert p1["vector"]["s"] == {"indices": [2, 4], "values": [0.25, 0.5]}   # sorted
    assert_err(*qdrant.call("PUT", path, {"points": [{"id": 2, "vector": {"d": [1.0]}}]}),
               400, "Wrong input: Vector dimension error: expected dim: 4, got 1")
    assert_err(*qdrant.call("PUT", path, {"points": []}), 422,
               "Validation error in JSON body: [points: must specify points to update]")
    # [present, absent]: the present point is updated, then 404 (as Qdrant does)
    assert_err(*qdrant.call("PUT", path, {"points": [{"id": 2, "vector": {"d": vec(7)}},
                                                     {"id": 99, "vector": {"d": vec(7)}}]}),
               404, "Not found: No point with id 99 found")
    assert qdrant.retrieve("uv", [2], with_vector=True)[1]["result"][0]["vector"]["d"] == vec(7)
    # delete_vectors drops the named vectors only
    assert_ok(*qdrant.call("POST", "/collections/uv/points/vectors/delete?wait=true",
                           {"points": [1, 2], "vector": ["s"]}))
    got = qdrant.retrieve("uv", [1, 2], with_vector=True)[1]["result"]
    assert [set(p["vector"]) for p in got] == [{"d"}, {"d"}]
    assert_err(*qdrant.call("POST", "/collections/uv/points/vectors/delete",
                            {"points": [1], "vector": ["zz"]}),
               400, "Wrong input: Not existing vector name error: zz")


def test_payload_ops_on_present_and_absent_points(qdrant):
    seed(qdrant, n=2)
    assert_err(*qdrant.set_payload("p", {"x": 1}, ids=[1, 99]), 404,
               "Not found: No point with id 99 found")
    assert qdrant.retrieve("p", [1])[1]["result"][0]["payload"]["x"] == 1   # applied first
    # wait=false: acknowledged; the failure happens after the answer
    st, body = qdrant.call("POST", "/collections/p/points/payload?wait=false",
                           {"payload": {"y": 1}, "points": [99]})
    assert assert_ok(st, body)["status"] == "acknowledged"


def test_collection_config_echoed_and_patched(qdrant):
    """info shows the settings a collection was created with (defaults filled in, unset options
    left out) and what PATCH changed, so `apply` can compare them."""
    assert_ok(*qdrant.call("PUT", "/collections/cfg", {
        "vectors": {"d": {"size": 4, "distance": "Dot", "on_disk": True}},
        "sparse_vectors": {"kw": {"modifier": "idf"}},
        "shard_number": 2, "replication_factor": 1, "on_disk_payload": False,
        "hnsw_config": {"m": 32, "ef_construct": 200},
        "quantization_config": {"scalar": {"type": "int8", "always_ram": True}}}))
    cfg = assert_ok(*qdrant.call("GET", "/collections/cfg"))["config"]
    assert cfg["params"]["vectors"] == {"d": {"size": 4, "distance": "Dot", "on_disk": True}}
    assert cfg["params"]["sparse_vectors"] == {"kw": {"modifier": "idf"}}
    assert (cfg["params"]["shard_number"], cfg["params"]["on_disk_payload"]) == (2, False)
    assert cfg["hnsw_config"] == {"m": 32, "ef_construct": 200, "full_scan_threshold": 10000,
                                  "max_indexing_threads": 0, "on_disk": False}
    assert cfg["quantization_config"] == {"scalar": {"type": "int8", "always_ram": True}}
    assert_ok(*qdrant.call("PATCH", "/collections/cfg", {
        "hnsw_config": {"m": 8}, "params": {"replication_factor": 2},
        "vectors": {"d": {"on_disk": False, "hnsw_config": {"m": 4}}},
        "quantization_config": "Disabled"}))
    cfg = assert_ok(*qdrant.call("GET", "/collections/cfg"))["config"]
    assert cfg["hnsw_config"]["m"] == 8 and cfg["hnsw_config"]["ef_construct"] == 200
    assert cfg["params"]["replication_factor"] == 2 and cfg["quantization_config"] is None
    assert cfg["params"]["vectors"]["d"] == {"size": 4, "distance": "Dot", "on_disk": False,
                                             "hnsw_config": {"m": 4}}
    assert_err(*qdrant.call("PATCH", "/collections/cfg", {"vectors": {"x": {"on_disk": True}}}),
               400, "Wrong input: Not existing vector name error: x")


def test_batch_update_operations(qdrant):
    qdrant.create_collection("b", vectors={"d": {"size": 4, "distance": "Dot"}},
                             sparse_vectors={"s": {}})
    res = assert_ok(*qdrant.call("POST", "/collections/b/points/batch?wait=true", {"operations": [
        {"upsert": {"points": [{"id": 1, "vector": {"d": vec(1)}, "payload": {"a": 1}}]}},
        {"update_vectors": {"points": [{"id": 1, "vector": {"s": {"indices": [3],
                                                                   "values": [1.0]}}}]}},
        {"set_payload": {"payload": {"b": 2}, "points": [1]}},
        {"delete_payload": {"keys": ["a"], "points": [1]}}]}))
    assert [r["status"] for r in res] == ["completed"] * 4
    p = qdrant.retrieve("b", [1], with_vector=True)[1]["result"][0]
    assert p["payload"] == {"b": 2} and set(p["vector"]) == {"d", "s"}
    # the first failing operation answers; the earlier ones stay applied
    assert_err(*qdrant.call("POST", "/collections/b/points/batch?wait=true", {"operations": [
        {"overwrite_payload": {"payload": {"c": 3}, "points": [1]}},
        {"update_vectors": {"points": [{"id": 2, "vector": {"d": vec(2)}}]}}]}),
        404, "Not found: No point with id 2 found")
    assert qdrant.retrieve("b", [1])[1]["result"][0]["payload"] == {"c": 3}

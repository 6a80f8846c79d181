"""The search side (issue 12): collections and payload indexes from the config (created as
configured, differences reported and fixed in place where Qdrant allows it), hybrid search with
a BM25 keyword vector beside the dense one (a keyword query finds the row dense search misses),
keyword-only rules without an embedder.

Every request pg2qdrant sends goes through the test server, which validates bodies against
Qdrant's OpenAPI schema (tests/qdrant_server/validator.py): a body that does not fit is a 4xx
and the test fails."""
import json
import os
import pathlib
import subprocess

import pytest

from conftest import BIN, ROOT, outbox_counts, points_by_id, wait_until

MODEL = pathlib.Path(os.environ.get("P2Q_MODEL_DIR", ROOT / "models" / "all-MiniLM-L6-v2"))


def need_model():
    if not (MODEL / "model.safetensors").exists():
        if os.environ.get("P2Q_REQUIRE_MODEL") == "1":
            pytest.fail(f"model missing at {MODEL} (scripts/fetch-model)")
        pytest.skip("model not fetched (scripts/fetch-model)")


@pytest.fixture
def items(db):
    db.execute("CREATE TABLE items (id int PRIMARY KEY, category text, price numeric, tenant text,"
               " published_at timestamptz, embedding real[])")
    return db


def rule(**kw):
    r = {"table": "public.items", "key": "id", "vector_column": "embedding", "dimension": "4",
         "collection": "items"}
    r.update(kw)
    return r


SETTINGS = dict(hnsw_m="32", hnsw_ef_construct="200", on_disk="true", on_disk_payload="false",
                quantization="scalar", quantization_always_ram="true", shard_number="2",
                replication_factor="2", write_consistency_factor="1",
                index="category:keyword, price:float, published_at:datetime, tenant:keyword:tenant")


def test_collection_created_as_configured_and_differences_reported(make_daemon, items, qdrant):
    d = make_daemon({"rule.items": rule(**SETTINGS)})
    out = d.cli("apply").stdout
    assert "collection items: created" in out
    info = qdrant.collection_info("items")[1]["result"]
    params = info["config"]["params"]
    assert params["vectors"] == {"size": 4, "distance": "Cosine", "on_disk": True}
    assert (params["shard_number"], params["replication_factor"], params["write_consistency_factor"],
            params["on_disk_payload"]) == (2, 2, 1, False)
    assert info["config"]["hnsw_config"]["m"] == 32 and info["config"]["hnsw_config"]["ef_construct"] == 200
    assert info["config"]["quantization_config"] == {"scalar": {"type": "int8", "always_ram": True}}
    schema = info["payload_schema"]
    assert {k: v["data_type"] for k, v in schema.items()} == {
        "category": "keyword", "price": "float", "published_at": "datetime", "tenant": "keyword"}
    assert schema["tenant"]["params"]["is_tenant"] is True
    # applying again: nothing differs, nothing said
    out = d.cli("apply").stdout
    assert "collection items" not in out, out

    # change what Qdrant changes in place, and what it cannot
    d2 = make_daemon({"rule.items": rule(**dict(SETTINGS, hnsw_m="48", quantization="binary",
                                                 quantization_always_ram="false", on_disk="false",
                                                 replication_factor="3", shard_number="3",
                                                 index=SETTINGS["index"] + ", tags:text"))})
    dry = d2.cli("apply", "--dry-run").stdout                    # says it, changes nothing
    assert "collection items: hnsw m is 32, configured 48" in dry, dry
    assert qdrant.collection_info("items")[1]["result"]["config"]["hnsw_config"]["m"] == 32
    out = d2.cli("apply").stdout
    assert "collection items: hnsw m is 32, configured 48 (fixed in place" in out, out
    assert "collection items: quantization is scalar (always_ram), configured binary (fixed in place)" in out
    assert "collection items: vector (unnamed) on_disk is true, configured false (fixed in place)" in out
    assert "collection items: replication_factor is 2, configured 3 (fixed in place)" in out
    assert "collection items: shard_number is 2, configured 3: fixed at creation" in out
    assert "collection items: payload index tags:text is missing (created)" in out
    info = qdrant.collection_info("items")[1]["result"]
    assert info["config"]["hnsw_config"]["m"] == 48
    assert info["config"]["quantization_config"] == {"binary": {"always_ram": False}}
    assert info["config"]["params"]["vectors"].get("on_disk") is False
    assert info["config"]["params"]["replication_factor"] == 3
    assert info["config"]["params"]["shard_number"] == 2          # cannot change: reported only
    assert info["payload_schema"]["tags"]["data_type"] == "text"


def test_vector_mismatch_is_an_error(make_daemon, items, qdrant):
    qdrant.create_collection("items", size=8)
    d = make_daemon({"rule.items": rule()})
    r = d.cli("apply", check=False)
    assert r.returncode == 1
    assert "vector (unnamed) is 8/Cosine, configured 4/Cosine: writes would fail" in r.stdout + r.stderr


def test_conflicting_settings_of_one_collection_are_refused(make_daemon, items, qdrant):
    d = make_daemon({"rule.a": rule(hnsw_m="16", vector_name="a"),
                     "rule.b": rule(hnsw_m="32", vector_name="b")})
    r = d.cli("apply", check=False)
    assert r.returncode == 2
    assert "hnsw_m 32 conflicts with [rule.a] (16) for collection 'items'" in r.stderr


def test_bad_index_is_refused(make_daemon, items, qdrant):
    d = make_daemon({"rule.items": rule(index="price:money")})
    r = d.cli("apply", check=False)
    assert r.returncode == 2 and "type \"money\" is not one of keyword" in r.stderr


# ---- hybrid search -----------------------------------------------------------------------------

# Row 3's product code is the query. MiniLM ranks row 4 (a near-identical code in the same
# product family) first and row 3 second; BM25 finds only row 3 (terms "qzx" and "7731"), so the
# hybrid query (RRF: 1/61 + 1/62 against 1/61) puts row 3 first.
PRODUCTS = [
    (1, "Trail running shoes", "Lightweight shoes with a grippy sole for muddy mountain paths."),
    (2, "Espresso machine", "Brews rich coffee with a creamy crema in under a minute."),
    (3, "Noise cancelling headphones, part QZX-7731", "Wireless headphones that block out the sound of the city."),
    (4, "Replacement ear cushions, part QZX7713", "Soft memory foam pads for over-ear headphones."),
    (5, "Camping tent", "A two person tent that packs small and stands up to strong wind."),
    (6, "Kitchen knife", "A sharp chef's knife forged from a single piece of steel."),
]


@pytest.fixture
def products(db):
    db.execute("CREATE TABLE products (id int PRIMARY KEY, name text, body text)")
    with db.transaction():
        for p in PRODUCTS:
            db.execute("INSERT INTO products VALUES (%s, %s, %s)", p)
    return db


def sparse_query(d, rule, text):
    out = subprocess.run([BIN, "-c", str(d.path), "embed", "--sparse", rule], input=text + "\n",
                         capture_output=True, text=True, env=d.env, check=True).stdout
    return json.loads(out)


def dense_query(d, text):
    out = subprocess.run([BIN, "-c", str(d.path), "embed"], input=text + "\n",
                         capture_output=True, text=True, env=d.env, check=True).stdout
    return json.loads(out)


def ids(res):
    return [p["id"] for p in res["result"]["points"]]


def test_hybrid_keyword_finds_what_dense_misses(make_daemon, products, qdrant):
    need_model()
    d = make_daemon({"embedder.mini": {"type": "minilm", "model_dir": str(MODEL), "threads": "2"},
                     "rule.products": {"table": "public.products", "key": "id", "text": "{name}. {body}",
                                       "embedder": "mini", "collection": "products", "vector_name": "dense",
                                       "sparse": "bm25"}})
    d.cli("apply")
    info = qdrant.collection_info("products")[1]["result"]["config"]["params"]
    assert info["sparse_vectors"] == {"bm25": {"modifier": "idf"}}
    assert info["vectors"] == {"dense": {"size": 384, "distance": "Cosine"}}
    p = d.start()
    wait_until(lambda: len(points_by_id(qdrant, "products")) == 6 and outbox_counts(products)[0] == 0,
               timeout=120, what="products synced")
    pts = points_by_id(qdrant, "products")
    # dense and sparse in the same point, written by one upsert
    assert set(pts[3]["vector"]) == {"dense", "bm25"}
    assert len(pts[3]["vector"]["dense"]) == 384
    doc = subprocess.run([BIN, "-c", str(d.path), "embed", "--sparse", "products", "--document"],
                         input=PRODUCTS[2][1] + ". " + PRODUCTS[2][2] + "\n", capture_output=True,
                         text=True, env=d.env, check=True).stdout
    want = json.loads(doc)
    got = pts[3]["vector"]["bm25"]
    assert got["indices"] == want["indices"]
    assert all(abs(a - b) < 1e-6 for a, b in zip(got["values"], want["values"]))
    upserts = [e for e in qdrant.log() if e["method"] == "PUT" and e["path"].endswith("/points")]
    assert upserts and all(e["status"] == 200 for e in upserts)

    query = "QZX-7731"
    dq, sq = dense_query(d, query), sparse_query(d, "products", query)
    status, dense = qdrant.query("products", query=dq, using="dense", limit=3)
    assert status == 200, dense
    assert ids(dense)[0] == 4, "the dense model alone finds the product code: pick another code"
    status, kw = qdrant.query("products", query=sq, using="bm25", limit=3)
    assert status == 200, kw
    assert ids(kw)[0] == 3                                 # only that row has both of the code's terms
    status, hybrid = qdrant.query("products", prefetch=[{"query": dq, "using": "dense", "limit": 10},
                                                        {"query": sq, "using": "bm25", "limit": 10}],
                                  query={"fusion": "rrf"}, limit=3)
    assert status == 200, hybrid
    assert ids(hybrid)[0] == 3
    # and a meaning-only query still works through the same hybrid request
    dq = dense_query(d, "something to make coffee")
    sq = sparse_query(d, "products", "something to make coffee")
    status, hybrid = qdrant.query("products", prefetch=[{"query": dq, "using": "dense", "limit": 10},
                                                        {"query": sq, "using": "bm25", "limit": 10}],
                                  query={"fusion": "rrf"}, limit=3)
    assert ids(hybrid)[0] == 2
    d.stop(p)


def test_keyword_only_rule_needs_no_embedder(make_daemon, products, qdrant):
    d = make_daemon({"rule.kw": {"table": "public.products", "key": "id", "text": "{name} {body}",
                                 "collection": "kw", "sparse": "bm25", "sparse_name": "words",
                                 "store_text": "true"}})
    d.cli("apply")
    info = qdrant.collection_info("kw")[1]["result"]["config"]["params"]
    assert info["sparse_vectors"] == {"words": {"modifier": "idf"}}
    p = d.start()
    wait_until(lambda: len(points_by_id(qdrant, "kw")) == 6 and outbox_counts(products)[0] == 0,
               timeout=60, what="keyword-only rule synced")
    pts = points_by_id(qdrant, "kw")
    assert set(pts[1]["vector"]) == {"words"}
    assert pts[1]["payload"]["_text"] == PRODUCTS[0][1] + " " + PRODUCTS[0][2]
    status, kw = qdrant.query("kw", query=sparse_query(d, "kw", "muddy paths"), using="words", limit=3)
    assert ids(kw) == [1]
    # an update changes the keyword vector; a delete removes the point
    products.execute("UPDATE products SET body = 'Now also sold as QZX-7731 kits' WHERE id = 6")
    products.execute("DELETE FROM products WHERE id = 5")
    wait_until(lambda: 5 not in points_by_id(qdrant, "kw") and outbox_counts(products)[0] == 0,
               timeout=30, what="update and delete synced")
    status, kw = qdrant.query("kw", query=sparse_query(d, "kw", "QZX-7731"), using="words", limit=3)
    assert sorted(ids(kw)) == [3, 6]
    r = d.cli("reconcile", check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    d.stop(p)


# ---- less work per change ------------------------------------------------------------------------

def test_payload_only_update_makes_no_embedder_call(make_daemon, db, qdrant):
    """A text rule's row whose rendered text did not change (only a payload column did) keeps its
    vectors: the worker sees the point's `_text_hash`/`_model` unchanged and replaces the payload
    only. Counted at the embedder stand-in: zero requests for the payload-only updates, one text
    per changed row otherwise."""
    from openai_stub import OpenAIStub
    db.execute("CREATE TABLE notes (id int PRIMARY KEY, title text, body text, views int)")
    stub = OpenAIStub(dim=8, api_key="sk-test")
    try:
        d = make_daemon({"embedder.oa": {"type": "openai", "url": stub.url, "model": "m1",
                                         "api_key_env": "P2Q_TEST_OPENAI_KEY", "dimensions": "8"},
                         "rule.notes": {"table": "public.notes", "key": "id", "columns": "id, title, views",
                                        "text": "{title}\\n{body}", "embedder": "oa", "collection": "notes",
                                        "sparse": "bm25", "store_text": "true"}})
        d.env["P2Q_TEST_OPENAI_KEY"] = "sk-test"
        d.cli("apply")
        with db.transaction():
            for i in range(10):
                db.execute("INSERT INTO notes VALUES (%s, %s, %s, 0)", (i, f"title {i}", f"body {i}"))
        p = d.start()
        wait_until(lambda: len(points_by_id(qdrant, "notes")) == 10 and outbox_counts(db) == (0, 0),
                   timeout=30, what="first sync")
        before = points_by_id(qdrant, "notes")
        assert before[3]["payload"]["_text"] == "title 3\nbody 3"
        raw = {pt["id"]: pt["payload"] for pt in qdrant.points("notes")}
        assert raw[3]["_model"] == "openai/m1@8" and len(raw[3]["_text_hash"]) == 16
        texts_sent = lambda: sum(len(json.loads(r["body"])["input"]) for r in list(stub.requests)
                                 if r.get("status") == 200)
        n0 = texts_sent()
        assert n0 == 10
        # payload-only updates: views changes, the rendered text does not
        with db.transaction():
            for i in range(10):
                db.execute("UPDATE notes SET views = views + 5 WHERE id = %s", (i,))
        wait_until(lambda: outbox_counts(db) == (0, 0) and
                   all(pt["payload"]["views"] == 5 for pt in points_by_id(qdrant, "notes").values()),
                   timeout=30, what="payload-only updates")
        assert texts_sent() == n0, "a payload-only update called the embedder"
        after = points_by_id(qdrant, "notes")
        for i in range(10):
            assert after[i]["vector"] == before[i]["vector"]           # dense and sparse kept
            assert after[i]["payload"] == dict(before[i]["payload"], views=5)
        payload_ops = [e for e in qdrant.log() if e["path"].endswith("/points/batch")]
        assert payload_ops and all(e["status"] == 200 for e in payload_ops)
        # a text change is embedded again: exactly the changed row
        db.execute("UPDATE notes SET body = 'new body' WHERE id = 4")
        wait_until(lambda: points_by_id(qdrant, "notes")[4]["payload"]["_text"] == "title 4\nnew body"
                   and outbox_counts(db) == (0, 0), timeout=30, what="text change")
        assert texts_sent() == n0 + 1
        assert points_by_id(qdrant, "notes")[4]["vector"] != before[4]["vector"]
        r = d.cli("reconcile", check=False)
        assert r.returncode == 0, r.stdout + r.stderr
        d.stop(p)
    finally:
        stub.close()


# ---- several rules, one point ---------------------------------------------------------------------

def test_two_rules_on_one_point_never_clobber_each_other(make_daemon, db, qdrant):
    """Rule `txt` (a vector column plus a BM25 keyword vector of its title) and rule `img` (another
    table's vector) write the same points of one collection from two workers, under concurrent
    updates of both tables: each rule updates only its own named vectors and payload keys, so the
    final point holds both rules' latest vectors and keys. A row deleted from one table removes
    only that rule's vector and keys."""
    import random
    import threading
    import psycopg
    db.execute("CREATE TABLE txt (id int PRIMARY KEY, title text, v real[])")
    db.execute("CREATE TABLE img (id int PRIMARY KEY, color text, v real[])")
    d = make_daemon({
        "rule.txt": {"table": "public.txt", "key": "id", "columns": "id, title", "vector_column": "v",
                     "dimension": "4", "vector_name": "text", "text": "{title}", "sparse": "bm25",
                     "collection": "shared"},
        "rule.img": {"table": "public.img", "key": "id", "columns": "id, color", "vector_column": "v",
                     "dimension": "3", "vector_name": "image", "collection": "shared"},
        "worker.a": {"event_types": "txt", "batch_size": "8"},
        "worker.b": {"event_types": "img", "batch_size": "8"}})
    d.cli("apply")
    info = qdrant.collection_info("shared")[1]["result"]["config"]["params"]
    assert info["vectors"] == {"text": {"size": 4, "distance": "Cosine"}, "image": {"size": 3, "distance": "Cosine"}}
    assert info["sparse_vectors"] == {"bm25": {"modifier": "idf"}}
    p = d.start()
    ids = list(range(1, 21))
    latest_txt, latest_img = {}, {}

    def writer(table, latest, seed):
        rnd = random.Random(seed)
        with psycopg.connect(dbname=d.dbname, autocommit=True) as c:
            for n in range(150):
                i = rnd.choice(ids)
                if table == "txt":
                    vals = (f"title {i} v{n}", [rnd.random() + 0.1 for _ in range(4)])
                    c.execute("INSERT INTO txt VALUES (%s, %s, %s) ON CONFLICT (id) DO UPDATE"
                              " SET title = EXCLUDED.title, v = EXCLUDED.v", (i, *vals))
                else:
                    vals = (f"color {i} v{n}", [rnd.random() + 0.1 for _ in range(3)])
                    c.execute("INSERT INTO img VALUES (%s, %s, %s) ON CONFLICT (id) DO UPDATE"
                              " SET color = EXCLUDED.color, v = EXCLUDED.v", (i, *vals))
                latest[i] = vals

    ts = [threading.Thread(target=writer, args=("txt", latest_txt, 1)),
          threading.Thread(target=writer, args=("img", latest_img, 2))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()

    def norm(v):
        s = sum(x * x for x in v) ** 0.5
        return [x / s for x in v]

    def exact():
        if outbox_counts(db) != (0, 0):
            return False
        pts = points_by_id(qdrant, "shared")
        for i in set(latest_txt) | set(latest_img):
            pt = pts.get(i)
            if pt is None:
                return False
            if i in latest_txt:
                title, v = latest_txt[i]
                if pt["payload"].get("title") != title or "bm25" not in pt["vector"]:
                    return False
                if any(abs(a - b) > 1e-5 for a, b in zip(pt["vector"]["text"], norm(v))):
                    return False
            if i in latest_img:
                color, v = latest_img[i]
                if pt["payload"].get("color") != color:
                    return False
                if any(abs(a - b) > 1e-5 for a, b in zip(pt["vector"]["image"], norm(v))):
                    return False
        return True
    wait_until(exact, timeout=60, what="both rules' latest vectors and keys in every point",
               explain=lambda: db.execute("SELECT id, last_error FROM sync_outbox_dead").fetchall())
    both = [i for i in ids if i in latest_txt and i in latest_img]
    assert both, "the writers never touched one id from both tables"
    # a row deleted from one table: only that rule's vector and keys go
    i = both[0]
    db.execute("DELETE FROM img WHERE id = %s", (i,))
    wait_until(lambda: "image" not in points_by_id(qdrant, "shared")[i]["vector"] and outbox_counts(db) == (0, 0),
               timeout=30, what="img delete applied")
    pt = points_by_id(qdrant, "shared")[i]
    assert "color" not in pt["payload"] and pt["payload"]["title"] == latest_txt[i][0]
    assert set(pt["vector"]) == {"text", "bm25"}
    writes = [e for e in qdrant.log() if e["path"].endswith("/points/batch")]
    assert writes and all(e["status"] == 200 for e in writes)
    d.stop(p)


def test_reconcile_reports_points_of_another_model(make_daemon, db, qdrant):
    from openai_stub import OpenAIStub
    db.execute("CREATE TABLE notes (id int PRIMARY KEY, title text)")
    stub = OpenAIStub(dim=8, api_key="sk-test")
    try:
        d = make_daemon({"embedder.oa": {"type": "openai", "url": stub.url, "model": "m2",
                                         "api_key_env": "P2Q_TEST_OPENAI_KEY", "dimensions": "8"},
                         "rule.notes": {"table": "public.notes", "key": "id", "text": "{title}", "embedder": "oa",
                                        "collection": "notes"}})
        d.env["P2Q_TEST_OPENAI_KEY"] = "sk-test"
        d.cli("apply")
        db.execute("INSERT INTO notes SELECT i, 'title ' || i FROM generate_series(1, 5) i")
        p = d.start()
        wait_until(lambda: len(points_by_id(qdrant, "notes")) == 5 and outbox_counts(db) == (0, 0),
                   timeout=30, what="synced")
        assert d.cli("reconcile").returncode == 0
        qdrant.corrupt("notes", 2, payload={"_model": "openai/m1@8"})   # a point of the old model
        r = d.cli("reconcile", check=False)
        assert r.returncode == 3, r.stdout + r.stderr
        assert "1 stale point(s) built by another model (_model is not openai/m2@8)" in r.stdout, r.stdout
        d.stop(p)
    finally:
        stub.close()

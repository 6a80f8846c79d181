"""Text rules end to end: the native MiniLM embedder (vectors equal sentence-transformers'
reference, a paraphrase query finds its row), blank texts, the `embed` command, and the
OpenAI-compatible HTTP embedder against a local stand-in with faults."""
import json
import math
import os
import pathlib
import subprocess

import pytest

from conftest import BIN, ROOT, outbox_counts, points_by_id, wait_until
from openai_stub import OpenAIStub, vector_for

MODEL = pathlib.Path(os.environ.get("P2Q_MODEL_DIR", ROOT / "models" / "all-MiniLM-L6-v2"))
GOLDEN = ROOT / "tests" / "golden" / "minilm_texts.jsonl"


def need_model():
    if not (MODEL / "model.safetensors").exists():
        if os.environ.get("P2Q_REQUIRE_MODEL") == "1":
            pytest.fail(f"model missing at {MODEL} (scripts/fetch-model)")
        pytest.skip("model not fetched (scripts/fetch-model)")


def cosine(a, b):
    dot = sum(x * y for x, y in zip(a, b))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def golden(n):
    out = []
    for line in GOLDEN.read_text().splitlines():
        g = json.loads(line)
        if g["text"].strip() and "\x00" not in g["text"]:
            out.append(g)
        if len(out) == n:
            break
    return out


@pytest.fixture
def texts(db):
    db.execute("CREATE TABLE notes (id int PRIMARY KEY, title text, body text)")
    return db


def minilm_daemon(make_daemon, **rule):
    r = {"table": "public.notes", "key": "id", "columns": "id, title", "text": "{title}",
         "embedder": "mini", "collection": "notes"}
    r.update(rule)
    return make_daemon({"embedder.mini": {"type": "minilm", "model_dir": str(MODEL), "threads": "2"},
                        "rule.notes": r})


def test_minilm_vectors_match_reference_and_query_finds_paraphrase(make_daemon, texts, qdrant):
    need_model()
    gold = golden(40)
    with texts.transaction():
        for i, g in enumerate(gold):
            texts.execute("INSERT INTO notes VALUES (%s, %s, '')", (i, g["text"]))
        texts.execute("INSERT INTO notes VALUES (1000, 'The cat is sleeping on the sofa', ''),"
                      " (1001, 'Interest rates were raised by the central bank', ''),"
                      " (1002, 'How to bake sourdough bread at home', '')")
    d = minilm_daemon(make_daemon)
    d.cli("apply")
    p = d.start()
    wait_until(lambda: len(points_by_id(qdrant, "notes")) == len(gold) + 3 and outbox_counts(texts)[0] == 0,
               timeout=120, what="all texts embedded",
               explain=lambda: texts.execute("SELECT id, row_key::text, last_error FROM sync_outbox_dead").fetchall())
    pts = points_by_id(qdrant, "notes")
    worst = min(cosine(pts[i]["vector"], g["vec"]) for i, g in enumerate(gold))
    assert worst >= 0.99999, worst
    assert pts[1000]["payload"] == {"id": 1000, "title": "The cat is sleeping on the sofa"}
    # a paraphrase, embedded by the same binary, finds its row first
    q = subprocess.run([BIN, "-c", str(d.path), "embed"], input="A kitten naps on the couch\n",
                       capture_output=True, text=True, env=d.env, check=True).stdout
    status, res = qdrant.query("notes", query=json.loads(q), limit=3, with_payload=True)
    assert status == 200, res
    assert res["result"]["points"][0]["id"] == 1000
    # a changed text is re-embedded; a blank one deletes the point
    texts.execute("UPDATE notes SET title = 'Mortgage costs climb as rates go up' WHERE id = 1002")
    texts.execute("UPDATE notes SET title = '   ' WHERE id = 1001")
    wait_until(lambda: 1001 not in points_by_id(qdrant, "notes"), what="blank text deleted")
    q2 = subprocess.run([BIN, "-c", str(d.path), "embed"], input="Mortgage costs climb as rates go up\n",
                        capture_output=True, text=True, env=d.env, check=True).stdout
    wait_until(lambda: cosine(points_by_id(qdrant, "notes")[1002]["vector"], json.loads(q2)) > 0.99999,
               what="changed text re-embedded")
    assert d.stop(p) == 0


def test_embed_command_matches_reference(make_daemon):
    need_model()
    gold = golden(20)
    d = minilm_daemon(make_daemon)
    inp = "".join(json.dumps(g["text"]) + "\n" for g in gold) + "not json\n"
    r = d.cli("embed", "--jsonl", check=False, env=d.env) if False else subprocess.run(
        [BIN, "-c", str(d.path), "embed", "--jsonl"], input=inp, capture_output=True, text=True, env=d.env)
    lines = r.stdout.splitlines()
    assert len(lines) == len(gold) + 1
    for g, line in zip(gold, lines):
        assert cosine(json.loads(line), g["vec"]) >= 0.99999
    assert "error" in json.loads(lines[-1])
    assert r.returncode == 1  # one line could not be embedded


@pytest.fixture
def openai():
    stub = OpenAIStub(dim=8, api_key="sk-test")
    yield stub
    stub.close()


def openai_daemon(make_daemon, stub, **emb):
    e = {"type": "openai", "url": stub.url, "model": "text-embedding-3-small", "api_key_env": "P2Q_TEST_OPENAI_KEY",
         "dimensions": "8", "batch_size": "4", "max_inflight": "2"}
    e.update(emb)
    d = make_daemon({"embedder.oa": e, "daemon": {"max_attempts": "3"},
                     "rule.notes": {"table": "public.notes", "key": "id", "columns": "id, title",
                                    "text": "title, body", "embedder": "oa", "collection": "notes"}})
    d.env["P2Q_TEST_OPENAI_KEY"] = "sk-test"
    return d


def test_openai_embedder_with_faults(make_daemon, texts, qdrant, openai):
    d = openai_daemon(make_daemon, openai)
    d.cli("apply")
    openai.fail(429, count=1, retry_after=1)  # honoured, then the same texts succeed
    openai.fail(500, count=1)
    with texts.transaction():
        for i in range(10):
            texts.execute("INSERT INTO notes VALUES (%s, %s, %s)", (i, f"title {i}", f"body {i}"))
    p = d.start()
    wait_until(lambda: len(points_by_id(qdrant, "notes")) == 10 and outbox_counts(texts) == (0, 0),
               timeout=60, what="texts embedded through the HTTP embedder")
    pts = points_by_id(qdrant, "notes")
    for i in range(10):
        assert cosine(pts[i]["vector"], vector_for(f"title {i}\nbody {i}", 8)) > 0.9999
    assert all(r["auth"] == "Bearer sk-test" for r in openai.requests)
    assert "sk-test" not in d.log_text(p)  # the key is never logged
    sent = [json.loads(r["body"]) for r in openai.requests]
    assert all(len(b["input"]) <= 4 for b in sent) and sent[0]["model"] == "text-embedding-3-small"
    assert d.stop(p) == 0


def test_openai_wrong_dimension_is_a_clear_per_event_error(make_daemon, texts, qdrant, openai):
    d = openai_daemon(make_daemon, openai)
    d.cli("apply")
    openai.wrong_dim = 100  # every answer has 9 dimensions
    texts.execute("INSERT INTO notes VALUES (1, 'a', 'b')")
    p = d.start()
    wait_until(lambda: outbox_counts(texts) == (0, 1), timeout=60, what="dead-lettered")
    err = texts.execute("SELECT last_error FROM sync_outbox_dead").fetchone()[0]
    assert "dimension 9, expected 8" in err
    d.stop(p)


def test_chunked_rows_write_one_point_per_chunk(make_daemon, texts, qdrant):
    need_model()
    long = next(g for g in map(json.loads, GOLDEN.read_text().splitlines()) if len(g["ids"]) >= 200
                and "\x00" not in g["text"])
    # the golden ids are truncated at 256; build a text whose length we know from its own ids
    words = " ".join(f"word{i} sentence about topic {i % 7}." for i in range(60))
    d = minilm_daemon(make_daemon, text="{body}", chunk_tokens="32", chunk_overlap="8")
    d.cli("apply")
    texts.execute("INSERT INTO notes VALUES (1, 'long', %s), (2, 'short', 'just a few words')", (words,))
    p = d.start()

    def chunks(row):
        return sorted((pt["payload"]["_chunk"], pid) for pid, pt in points_by_id(qdrant, "notes").items()
                      if pt["payload"].get("_pk") == json.dumps({"id": row}).replace(",", ", "))

    wait_until(lambda: outbox_counts(texts)[0] == 0 and len(chunks(1)) > 3, timeout=60, what="chunks written",
               explain=lambda: [pt["payload"] for pt in points_by_id(qdrant, "notes").values()][:5])
    n_long = len(chunks(1))
    assert [c for c, _ in chunks(1)] == list(range(n_long))   # 0..k-1, one point each
    assert len({pid for _, pid in chunks(1)}) == n_long         # distinct ids
    assert [c for c, _ in chunks(2)] == [0]
    pts = points_by_id(qdrant, "notes")
    assert all(abs(sum(x * x for x in pt["vector"]) - 1) < 1e-3 for pt in pts.values())
    assert pts[chunks(2)[0][1]]["payload"]["title"] == "short"
    # a shorter text replaces the chunks and prunes the old extra ones; a delete removes them all
    texts.execute("UPDATE notes SET body = 'now it is short' WHERE id = 1")
    wait_until(lambda: [c for c, _ in chunks(1)] == [0], what="stale chunks pruned")
    texts.execute("DELETE FROM notes WHERE id = 2")
    wait_until(lambda: chunks(2) == [], what="all chunks of a deleted row removed")
    assert long  # the golden set does hold long texts (truncation is covered by the golden test)
    assert d.stop(p) == 0


def test_embedder_outage_opens_its_breaker_without_burning_attempts(make_daemon, texts, qdrant, openai):
    d = openai_daemon(make_daemon, openai)
    text = d.path.read_text().replace("max_attempts = 3", "max_attempts = 2\nbreaker_threshold = 2")
    d.path.write_text(text)
    d.cli("apply")
    openai.fail(503, count=10000)  # the embedder is down; Qdrant is fine
    with texts.transaction():
        for i in range(20):
            texts.execute("INSERT INTO notes VALUES (%s, %s, 'b')", (i, f"t{i}"))
    p = d.start()
    wait_until(lambda: "breaker_open target=embedder:oa" in d.log_text(p), what="embedder breaker open")
    wait_until(lambda: "breaker_probe_failed target=embedder:oa" in d.log_text(p), what="probing the embedder")
    assert outbox_counts(texts) == (20, 0)  # nothing dead-lettered although max_attempts = 2
    assert texts.execute("SELECT max(attempts) FROM sync_outbox").fetchone()[0] <= 1
    with openai.lock:
        openai.faults.clear()  # the embedder is back
    wait_until(lambda: outbox_counts(texts) == (0, 0) and len(points_by_id(qdrant, "notes")) == 20,
               timeout=60, what="backlog drained after the embedder came back")
    assert "breaker_closed target=embedder:oa" in d.log_text(p)
    assert d.stop(p) == 0

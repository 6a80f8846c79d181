"""Chunked rows (issue 12, "less work per change"): a chunk's point carries its own text, and a
chunked row's unchanged chunks are not re-embedded.

Chunks are cut by the worker from the embedder's word pieces (chunk.h): each chunk's text is an
exact substring of the row's rendered text, embedded as one text. Counted at the OpenAI-compatible
stand-in (openai_stub: every input it is sent), against the Qdrant test server (bodies validated
against Qdrant's OpenAPI schema); the native MiniLM path is checked against sentence-transformers."""
import json
import os
import pathlib

import pytest

from conftest import ROOT, outbox_counts, wait_until
from openai_stub import OpenAIStub, vector_for

MODEL = pathlib.Path(os.environ.get("P2Q_MODEL_DIR", ROOT / "models" / "all-MiniLM-L6-v2"))
VOCAB = MODEL / "vocab.txt"


def need_vocab(f="vocab.txt"):
    if not (MODEL / f).exists():
        if os.environ.get("P2Q_REQUIRE_MODEL") == "1":
            pytest.fail(f"model missing at {MODEL} (scripts/fetch-model)")
        pytest.skip("model not fetched (scripts/fetch-model)")


def fnv64(b):
    h = 0xcbf29ce484222325
    for c in b:
        h = ((h ^ c) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def chunks_of(qdrant, row):
    """{chunk number: point} of one row (the whole payload: `_text_hash` and `_model` kept)."""
    pk = json.dumps({"id": row}).replace(",", ", ")
    r = qdrant.points("notes")
    return {pt["payload"]["_chunk"]: pt for pt in (r["points"] if isinstance(r, dict) else r)
            if pt["payload"].get("_pk") == pk}


def inputs(stub):
    """Every text the stand-in embedded, in order."""
    return [t for r in list(stub.requests) if r.get("status") == 200 for t in json.loads(r["body"])["input"]]


WORDS = ("apple river stone cloud tiger paper garden silver window candle forest music bridge winter "
         "orange letter mountain island coffee pencil rocket castle dragon flower mirror planet").split()


def paragraph(k):
    """Three sentences (5, 5 and 4 one-piece words), 17 pieces."""
    w = [WORDS[(k * 7 + i) % len(WORDS)] for i in range(14)]
    return " ".join(w[0:5]) + ". " + " ".join(w[5:10]) + ". " + " ".join(w[10:14]) + "."


def cosine(a, b):
    dot = sum(x * y for x, y in zip(a, b))
    return dot / (sum(x * x for x in a) * sum(y * y for y in b)) ** 0.5


def check_chunks(pts, body, model):
    """Chunks 0..k-1, each `_text` an exact substring of the body, in order, covering it; its
    hash and model; the vector the stand-in gives that very text."""
    assert sorted(pts) == list(range(len(pts)))
    pos = 0
    for j in range(len(pts)):
        p = pts[j]["payload"]
        t = p["_text"]
        at = body.find(t, pos) if t else pos
        assert at >= 0, f"chunk {j} {t!r} is not a substring after {pos}"
        if j == 0:
            assert at == len(body) - len(body.lstrip())
        pos = at + 1 if t else pos
        assert p["_text_hash"] == fnv64(t.encode()) and p["_model"] == model
        if model.startswith("openai/"):
            assert cosine(pts[j]["vector"], vector_for(t, 8)) > 0.99999  # Qdrant normalises (Cosine)
    last = pts[len(pts) - 1]["payload"]["_text"]
    assert body.rstrip().endswith(last)


def test_chunk_texts_and_unchanged_chunks_not_reembedded(make_daemon, db, qdrant):
    need_vocab()
    db.execute("CREATE TABLE notes (id int PRIMARY KEY, title text, body text, views int)")
    stub = OpenAIStub(dim=8, api_key="sk-test")
    try:
        d = make_daemon({"embedder.oa": {"type": "openai", "url": stub.url, "model": "m1",
                                         "api_key_env": "P2Q_TEST_OPENAI_KEY", "dimensions": "8",
                                         "chunk_vocab": str(VOCAB)},
                         "rule.notes": {"table": "public.notes", "key": "id", "columns": "id, title, views",
                                        "text": "{body}", "embedder": "oa", "collection": "notes",
                                        "chunk_tokens": "48", "chunk_overlap": "8", "store_text": "true"}})
        d.env["P2Q_TEST_OPENAI_KEY"] = "sk-test"
        d.cli("apply")
        paras = [paragraph(k) for k in range(24)]
        body = "\n\n".join(paras)
        uni = "  Caf\u00e9 cre\u0300me br\u00fbl\u00e9e, \u6771\u4eac\u90fd\u306e\u6674\u308c \U0001F600 emoji " \
              "d\u00e9j\u00e0 vu \uac00\ub098 \ufb01sh and a very ordinary sentence to end with. " * 3
        with db.transaction():
            db.execute("INSERT INTO notes VALUES (1, 'long', %s, 0)", (body,))
            db.execute("INSERT INTO notes VALUES (2, 'unicode', %s, 0)", (uni,))
            db.execute("INSERT INTO notes VALUES (3, 'short', 'just a few words', 0)")
            db.execute("INSERT INTO notes VALUES (4, 'no pieces', %s, 0)", ("\u00a0\u3000\u200b",))
        p = d.start()
        wait_until(lambda: outbox_counts(db) == (0, 0) and len(chunks_of(qdrant, 1)) > 5
                   and len(chunks_of(qdrant, 3)) == 1, timeout=30, what="first sync")
        first = {r: chunks_of(qdrant, r) for r in (1, 2, 3)}
        check_chunks(first[1], body, "openai/m1@8")
        check_chunks(first[2], uni, "openai/m1@8")
        check_chunks(first[3], "just a few words", "openai/m1@8")
        assert first[3][0]["payload"]["_text"] == "just a few words"
        assert len(first[2]) >= 2  # the Unicode text really is cut
        assert chunks_of(qdrant, 4) == {}  # no word piece: no point, like a blank text, nothing sent
        # the overlap: consecutive chunks of the long row share text
        t0, t1 = first[1][0]["payload"]["_text"], first[1][1]["payload"]["_text"]
        assert t1.split()[0] in t0.split()
        sent = inputs(stub)
        n_chunks = sum(len(c) for c in first.values())
        assert sorted(sent) == sorted(pt["payload"]["_text"] for c in first.values() for pt in c.values())
        assert len(sent) == n_chunks

        # a payload-only update of chunked rows: no embedder call, payloads updated, vectors kept
        with db.transaction():
            for r in (1, 2, 3):
                db.execute("UPDATE notes SET views = 5 WHERE id = %s", (r,))
        wait_until(lambda: outbox_counts(db) == (0, 0) and
                   all(pt["payload"]["views"] == 5 for r in (1, 2, 3) for pt in chunks_of(qdrant, r).values()),
                   timeout=30, what="payload-only updates")
        assert len(inputs(stub)) == n_chunks, "a payload-only update called the embedder"
        for r in (1, 2, 3):
            now = chunks_of(qdrant, r)
            assert sorted(now) == sorted(first[r])
            for j, pt in now.items():
                assert pt["vector"] == first[r][j]["vector"]
                assert pt["payload"] == dict(first[r][j]["payload"], views=5, _hash=pt["payload"]["_hash"])

        # one word of one paragraph changes (same number of pieces): only the chunks holding it
        n0 = len(inputs(stub))
        edited = body.replace(paras[4], paras[4].replace(WORDS[(4 * 7 + 3) % len(WORDS)], "zebra", 1))
        assert edited != body
        db.execute("UPDATE notes SET body = %s WHERE id = 1", (edited,))
        wait_until(lambda: outbox_counts(db) == (0, 0) and
                   any(pt["payload"]["_text"] != first[1][j]["payload"]["_text"]
                       for j, pt in chunks_of(qdrant, 1).items()), timeout=30, what="paragraph edit")
        now = chunks_of(qdrant, 1)
        check_chunks(now, edited, "openai/m1@8")
        changed = [j for j in now if now[j]["payload"]["_text"] != first[1][j]["payload"]["_text"]]
        new_inputs = inputs(stub)[n0:]
        assert sorted(new_inputs) == sorted(now[j]["payload"]["_text"] for j in changed)
        assert 1 <= len(changed) <= 2 < len(now), (changed, len(now))
        for j in now:
            if j not in changed:
                assert now[j]["vector"] == first[1][j]["vector"]

        # a sentence added to paragraph 2 (more pieces): windows end at sentence ends, so the
        # chunks after the edit are cut as before and keep their vectors
        n0 = len(inputs(stub))
        grown = edited.replace(paras[2], paras[2] + " A new short sentence here.", 1)
        db.execute("UPDATE notes SET body = %s WHERE id = 1", (grown,))
        wait_until(lambda: outbox_counts(db) == (0, 0) and
                   any(grown.find(pt["payload"]["_text"]) >= 0 and "new short" in pt["payload"]["_text"]
                       for pt in chunks_of(qdrant, 1).values()), timeout=30, what="sentence added")
        after = chunks_of(qdrant, 1)
        check_chunks(after, grown, "openai/m1@8")
        old_texts = {pt["payload"]["_text"] for pt in now.values()}
        new_inputs = inputs(stub)[n0:]
        assert sorted(new_inputs) == sorted(pt["payload"]["_text"] for j, pt in after.items()
                                            if j not in now or pt["payload"]["_text"] != now[j]["payload"]["_text"])
        assert 1 <= len(new_inputs) <= 3 < len(after), (new_inputs, len(after))
        assert sum(pt["payload"]["_text"] in old_texts for pt in after.values()) >= len(after) - 3
        now, edited = after, grown

        # the text shrinks: the chunks before the cut are kept, the old extra ones pruned
        n0 = len(inputs(stub))
        shorter = edited[:edited.index(paras[2]) - 2]
        db.execute("UPDATE notes SET body = %s WHERE id = 1", (shorter,))
        wait_until(lambda: outbox_counts(db) == (0, 0) and len(chunks_of(qdrant, 1)) < len(now),
                   timeout=30, what="shrink")
        wait_until(lambda: chunks_of(qdrant, 1).keys() == set(range(len(chunks_of(qdrant, 1)))), what="pruned")
        short = chunks_of(qdrant, 1)
        check_chunks(short, shorter, "openai/m1@8")
        redone = [j for j in short if short[j]["payload"]["_text"] != now[j]["payload"]["_text"]]
        assert sorted(inputs(stub)[n0:]) == sorted(short[j]["payload"]["_text"] for j in redone)
        assert len(redone) < len(short)

        # a text without word pieces removes the row's chunks; a delete removes every chunk
        db.execute("UPDATE notes SET body = %s WHERE id = 3", ("\u3000",))
        wait_until(lambda: chunks_of(qdrant, 3) == {}, what="piece-less text: no chunk")
        db.execute("DELETE FROM notes WHERE id = 2")
        wait_until(lambda: chunks_of(qdrant, 2) == {}, what="chunks of a deleted row removed")
        assert db.execute("SELECT count(*) FROM sync_outbox_dead").fetchone()[0] == 0
        d.stop(p)
    finally:
        stub.close()


def test_openai_chunking_needs_a_vocabulary(make_daemon, db):
    d = make_daemon({"embedder.oa": {"type": "openai", "url": "http://127.0.0.1:9/v1", "model": "m1",
                                     "dimensions": "8"},
                     "rule.notes": {"table": "public.notes", "key": "id", "text": "{body}", "embedder": "oa",
                                    "collection": "notes", "chunk_tokens": "16"}})
    r = d.cli("apply", "--dry-run", check=False)
    assert r.returncode != 0 and "chunk_vocab" in r.stderr, r.stdout + r.stderr


def test_native_chunks_are_the_model_vectors_of_their_text(make_daemon, db, qdrant):
    """With the native MiniLM embedder each chunk's vector is sentence-transformers' vector of the
    chunk's own `_text` (an exact substring), and a payload-only update keeps every vector."""
    need_vocab("model.safetensors")
    st = pytest.importorskip("sentence_transformers")
    db.execute("CREATE TABLE notes (id int PRIMARY KEY, title text, body text, views int)")
    d = make_daemon({"embedder.mini": {"type": "minilm", "model_dir": str(MODEL), "threads": "2"},
                     "rule.notes": {"table": "public.notes", "key": "id", "columns": "id, title, views",
                                    "text": "{body}", "embedder": "mini", "collection": "notes",
                                    "chunk_tokens": "24", "chunk_overlap": "6", "store_text": "true"}})
    d.cli("apply")
    body = "\n\n".join(paragraph(k) for k in range(4)) + " Cr\u00e8me br\u00fbl\u00e9e \u6771\u4eac \U0001F600 unaffable."
    db.execute("INSERT INTO notes VALUES (1, 'long', %s, 0)", (body,))
    p = d.start()
    wait_until(lambda: outbox_counts(db) == (0, 0) and len(chunks_of(qdrant, 1)) > 3, timeout=60, what="sync")
    pts = chunks_of(qdrant, 1)
    check_chunks(pts, body, "minilm/" + MODEL.name)
    model = st.SentenceTransformer(str(MODEL), device="cpu")
    texts = [pts[j]["payload"]["_text"] for j in range(len(pts))]
    ref = model.encode(texts, normalize_embeddings=False)
    for j, v in enumerate(ref):
        got = pts[j]["vector"]
        assert cosine(got, v) > 0.9999, (j, texts[j], cosine(got, v))
    db.execute("UPDATE notes SET views = 9 WHERE id = 1")
    wait_until(lambda: all(pt["payload"]["views"] == 9 for pt in chunks_of(qdrant, 1).values()), what="payload")
    assert all(chunks_of(qdrant, 1)[j]["vector"] == pts[j]["vector"] for j in pts)
    d.stop(p)

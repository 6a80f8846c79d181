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
from openai_stub import OpenAIStub, estimate_cut, vector_for

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
    openai.fail(429, count=1)                 # no Retry-After: a short backoff of the budget
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


def test_openai_wrong_dimension_costs_time_not_attempts(make_daemon, texts, qdrant, openai):
    """An endpoint answering vectors of the wrong size (another model behind the URL, a proxy) is
    the outside world's fault: the events wait (no attempt used, nothing dead-lettered), the log
    says why, and they are embedded once the endpoint answers right."""
    d = openai_daemon(make_daemon, openai)
    d.cli("apply")
    openai.wrong_dim = 3  # the next three answers have 9 dimensions
    texts.execute("INSERT INTO notes VALUES (1, 'a', 'b')")
    p = d.start()
    wait_until(lambda: len(points_by_id(qdrant, "notes")) == 1 and outbox_counts(texts) == (0, 0),
               timeout=90, what="embedded once the endpoint answers right")
    assert openai.wrong_dim == 0  # the wrong answers were really given
    assert "dimension 9, expected 8" in d.log_text(p)
    assert texts.execute("SELECT count(*) FROM sync_outbox_dead").fetchone()[0] == 0
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


def test_openai_one_overlong_text_is_dead_alone_with_the_reason(make_daemon, texts, qdrant):
    """The real API rejects a whole request for one over-long input: the embedder bisects it,
    so only that text's event is dead-lettered (at once, with the API's words); the 19 others of
    the same HTTP batch are embedded."""
    stub = OpenAIStub(dim=8, api_key="sk-test", max_tokens=50)
    try:
        d = openai_daemon(make_daemon, stub, batch_size="20", max_inflight="1")
        d.cli("apply")
        with texts.transaction():
            for i in range(20):
                body = "word " * 400 if i == 7 else f"body {i}"
                texts.execute("INSERT INTO notes VALUES (%s, %s, %s)", (i, f"title {i}", body))
        p = d.start()
        wait_until(lambda: outbox_counts(texts) == (0, 1) and len(points_by_id(qdrant, "notes")) == 19,
                   timeout=60, what="19 embedded, 1 dead",
                   explain=lambda: (outbox_counts(texts), d.log_text(p)[-3000:]))
        row_key, attempts, err = texts.execute(
            "SELECT row_key::text, attempts, last_error FROM sync_outbox_dead").fetchone()
        assert json.loads(row_key) == {"id": 7}
        assert "HTTP 400" in err and "maximum context length is 50 tokens" in err, err
        pts = points_by_id(qdrant, "notes")
        assert 7 not in pts
        for i in (0, 6, 8, 19):
            assert cosine(pts[i]["vector"], vector_for(f"title {i}\nbody {i}", 8)) > 0.9999
        # one request of 20, then halves down to the lone text: 1 + 2 * ceil(log2(20)) at most
        sent = stub.bodies()
        assert len(sent[0]["input"]) == 20
        assert len(sent) <= 1 + 2 * 5, [len(b["input"]) for b in sent]
        assert sum(1 for b in sent if len(b["input"]) == 1 and b["input"][0].startswith("title 7")) == 1
        assert d.stop(p) == 0
    finally:
        stub.close()


def test_openai_max_input_tokens_cuts_long_texts_instead_of_losing_them(make_daemon, texts, qdrant):
    """With max_input_tokens set, a long text is embedded cut (on a character boundary) to the
    client-side estimate; a text the estimate under-counts (here digits, one token per byte at
    the stub) is rejected once, then sent cut to max_input_tokens bytes and embedded."""
    def tokens(t):
        digits = sum(ch.isdigit() for ch in t)
        return digits + math.ceil((len(t.encode()) - digits) / 4)

    stub = OpenAIStub(dim=8, api_key="sk-test", max_tokens=50, count_tokens=tokens)
    try:
        d = openai_daemon(make_daemon, stub, max_input_tokens="50")
        text = d.path.read_text().replace('text = title, body', 'text = {body}')
        d.path.write_text(text)
        d.cli("apply")
        prose = "Les élèves étudient à l'école. " * 40
        digits = "1234567890" * 100
        texts.execute("INSERT INTO notes VALUES (1, 't', %s), (2, 't', %s), (3, 't', 'short')", (prose, digits))
        p = d.start()
        wait_until(lambda: outbox_counts(texts) == (0, 0) and len(points_by_id(qdrant, "notes")) == 3,
                   timeout=60, what="all three embedded",
                   explain=lambda: (outbox_counts(texts), texts.execute(
                       "SELECT last_error FROM sync_outbox_dead").fetchall()))
        pts = points_by_id(qdrant, "notes")
        cut = estimate_cut(prose, 50)
        assert 0 < len(cut) < len(prose)
        assert cosine(pts[1]["vector"], vector_for(cut, 8)) > 0.9999
        assert cosine(pts[2]["vector"], vector_for(digits[:50], 8)) > 0.9999
        assert cosine(pts[3]["vector"], vector_for("short", 8)) > 0.9999
        sent = [t for b in stub.bodies() for t in b["input"]]
        assert prose not in sent and cut in sent          # never sent whole
        assert digits[:150] in sent and digits[:50] in sent  # estimate cut, then the byte cut
        assert d.stop(p) == 0
    finally:
        stub.close()


def test_openai_dimensions_is_sent_when_set(make_daemon, texts, qdrant):
    stub = OpenAIStub(dim=16, api_key="sk-test")  # the model's native size is 16
    try:
        d = openai_daemon(make_daemon, stub)       # dimensions = 8
        d.cli("apply")
        texts.execute("INSERT INTO notes VALUES (1, 'a', 'b'), (2, 'c', 'd')")
        p = d.start()
        wait_until(lambda: outbox_counts(texts) == (0, 0) and len(points_by_id(qdrant, "notes")) == 2,
                   timeout=30, what="embedded at the requested size")
        assert all(b["dimensions"] == 8 for b in stub.bodies())
        assert len(points_by_id(qdrant, "notes")[1]["vector"]) == 8
        assert d.stop(p) == 0
    finally:
        stub.close()


def test_openai_dimensions_zero_uses_the_rules_dimension(make_daemon, texts, qdrant, openai):
    d = openai_daemon(make_daemon, openai)
    text = d.path.read_text().replace("dimensions = 8\n", "").replace("collection = notes", "collection = notes\ndimension = 8")
    d.path.write_text(text)
    d.cli("apply")
    texts.execute("INSERT INTO notes VALUES (1, 'a', 'b')")
    p = d.start()
    wait_until(lambda: outbox_counts(texts) == (0, 0) and len(points_by_id(qdrant, "notes")) == 1,
               timeout=30, what="embedded", explain=lambda: texts.execute(
                   "SELECT last_error FROM sync_outbox_dead").fetchall())
    assert cosine(points_by_id(qdrant, "notes")[1]["vector"], vector_for("a\nb", 8)) > 0.9999
    assert all("dimensions" not in b for b in openai.bodies())  # not sent: the model's own size
    assert d.stop(p) == 0


def test_openai_429_storm_burns_no_attempt_and_the_budget_is_respected(make_daemon, texts, qdrant, openai):
    """A 429 pauses every caller of the embedder until its Retry-After and never costs an
    attempt; requests_per_minute paces all workers' requests together (counted at the stub)."""
    d = openai_daemon(make_daemon, openai, batch_size="1", requests_per_minute="600")
    text = d.path.read_text().replace("max_attempts = 3", "max_attempts = 2").replace(
        "retry_max = 500ms", "retry_max = 5m")
    # two rules on the same embedder, each with its own worker: one budget for both
    texts.execute("CREATE TABLE notes2 (id int PRIMARY KEY, title text, body text)")
    d.path.write_text(text + "\n[rule.notes2]\ntable = public.notes2\nkey = id\ncolumns = id, title\n"
                      "text = title, body\nembedder = oa\ncollection = notes2\n"
                      "[worker.w]\nevent_types = notes\nbatch_size = 5\nmax_inflight = 4\n"
                      "[worker.w2]\nevent_types = notes2\nbatch_size = 5\nmax_inflight = 4\n")
    d.cli("apply")
    openai.fail(429, count=6, retry_after=1)
    with texts.transaction():
        for i in range(40):
            texts.execute("INSERT INTO notes VALUES (%s, %s, 'b')", (i, f"t{i}"))
            texts.execute("INSERT INTO notes2 VALUES (%s, %s, 'b')", (i, f"u{i}"))
    p = d.start()
    wait_until(lambda: outbox_counts(texts) == (0, 0) and len(points_by_id(qdrant, "notes")) == 40
               and len(points_by_id(qdrant, "notes2")) == 40,
               timeout=90, what="drained after the 429s",
               explain=lambda: (outbox_counts(texts), texts.execute(
                   "SELECT last_error FROM sync_outbox_dead").fetchall(), d.log_text(p)[-2000:]))
    assert len(openai.times(429)) == 6
    # Retry-After honoured by every caller: after a 429, the next request comes >= ~1 s later
    # (requests already in flight when it came back excepted: at most max_inflight of them)
    for t in openai.times(429):
        later = [u for u in openai.times() if u > t + 0.05]
        assert not later or later[0] >= t + 0.9 or len([u for u in later if u < t + 0.9]) <= 1
    # 600/min = 10/s with a 1 s burst: never more than 20 in any second, whatever the workers
    # (unpaced, this pipeline sends ~50/s here)
    assert openai.max_per_window(1.0) <= 20, openai.max_per_window(1.0)
    assert "embed_failed" in d.log_text(p)
    assert d.stop(p) == 0


def test_openai_absurd_retry_after_is_capped_by_retry_max(make_daemon, texts, qdrant, openai):
    d = openai_daemon(make_daemon, openai)
    text = d.path.read_text().replace("retry_max = 500ms", "retry_max = 2s").replace(
        "max_attempts = 3", "max_attempts = 2")
    d.path.write_text(text)
    d.cli("apply")
    openai.fail(429, count=1, retry_after=99999999999)
    openai.fail(429, count=1, retry_after="Fri, 01 Jan 2037 00:00:00 GMT")
    with texts.transaction():
        for i in range(4):
            texts.execute("INSERT INTO notes VALUES (%s, %s, 'b')", (i, f"t{i}"))
    p = d.start()
    wait_until(lambda: outbox_counts(texts) == (0, 0) and len(points_by_id(qdrant, "notes")) == 4,
               timeout=30, what="drained within a few retry_max (not 24 days)",
               explain=lambda: (outbox_counts(texts), d.log_text(p)[-2000:]))
    ts = openai.times()
    t429 = openai.times(429)
    assert len(t429) == 2
    after = [u for u in ts if u > t429[0] + 0.05]
    assert after and after[0] >= t429[0] + 1.5  # the pause (capped at 2 s) was honoured
    assert d.stop(p) == 0


def test_openai_oversized_answer_is_refused_and_costs_no_attempt(make_daemon, texts, qdrant, openai):
    """An answer is bounded by texts × dimension: an 8 MB one (for 3 texts of 8 dimensions) is
    aborted unread, the events wait without burning an attempt, and drain once answers are sane."""
    d = openai_daemon(make_daemon, openai)
    d.path.write_text(d.path.read_text().replace("max_attempts = 3", "max_attempts = 2"))
    d.cli("apply")
    openai.huge = 4
    texts.execute("INSERT INTO notes VALUES (1, 'a', 'b'), (2, 'c', 'd'), (3, 'e', 'f')")
    p = d.start()
    wait_until(lambda: outbox_counts(texts) == (0, 0) and len(points_by_id(qdrant, "notes")) == 3,
               timeout=60, what="drained after the oversized answers",
               explain=lambda: (outbox_counts(texts), d.log_text(p)[-2000:]))
    assert openai.huge == 0 and "embed_failed" in d.log_text(p)
    assert d.stop(p) == 0


def test_openai_rejected_key_costs_time_not_attempts(make_daemon, texts, qdrant, openai):
    """401 (a rotated key) is configuration, not the events' fault: nothing is dead-lettered
    however long it lasts, and the backlog drains once the key is accepted again."""
    d = openai_daemon(make_daemon, openai)
    d.path.write_text(d.path.read_text().replace("max_attempts = 3", "max_attempts = 2"))
    d.cli("apply")
    openai.api_key = "sk-rotated"
    with texts.transaction():
        for i in range(6):
            texts.execute("INSERT INTO notes VALUES (%s, %s, 'b')", (i, f"t{i}"))
    p = d.start()
    wait_until(lambda: sum(1 for r in openai.requests if r["status"] == 401) >= 6, what="several 401s")
    assert outbox_counts(texts) == (6, 0)
    assert "HTTP 401 (check url, model and key)" in d.log_text(p)
    openai.api_key = "sk-test"
    wait_until(lambda: outbox_counts(texts) == (0, 0) and len(points_by_id(qdrant, "notes")) == 6,
               timeout=60, what="drained once the key is accepted")
    assert d.stop(p) == 0

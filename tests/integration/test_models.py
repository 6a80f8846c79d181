"""More than one model: tiny random BERT models of several shapes (cased and uncased WordPiece,
mean and CLS pooling, with and without Normalize, max length 512 and 128), written with numpy
(tests/integration/tiny_models.py: seeded weights, laid out as sentence-transformers saves them);
`pg2qdrant embed` must reproduce the vectors sentence-transformers computed from the very same
directories (tests/golden/tiny_models.jsonl, made by scripts/gen-tiny-model-goldens, which needs
torch; this test does not) for every text: cosine >= 0.99999, max |diff| <= 1e-4, exactly as the
MiniLM golden test does for the real model. Also: the config takes the model's dimension and max
length (chunk_tokens is checked against it)."""
import json
import math
import os
import pathlib
import subprocess

import pytest

import tiny_models as tm
from conftest import BIN, ROOT

MINILM = pathlib.Path(os.environ.get("P2Q_MODEL_DIR", ROOT / "models" / "all-MiniLM-L6-v2"))
GOLDEN = ROOT / "tests" / "golden" / "tiny_models.jsonl"
SHAPES = tm.SHAPES


def need_vocab():
    if not (MINILM / "vocab.txt").exists():
        if os.environ.get("P2Q_CI") or os.environ.get("P2Q_REQUIRE_MODEL") == "1":
            pytest.fail("MiniLM vocabulary not fetched (scripts/fetch-model)")
        pytest.skip("MiniLM vocabulary not fetched (scripts/fetch-model)")


def golden():
    lines = GOLDEN.read_text(encoding="utf-8").rstrip("\n").split("\n")  # texts hold U+2028
    texts = json.loads(lines[0])["texts"]
    return texts, {m["model"]: m for m in map(json.loads, lines[1:])}


def cosine(a, b):
    dot = sum(x * y for x, y in zip(a, b))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


@pytest.mark.parametrize("shape", SHAPES, ids=[s[0] for s in SHAPES])
def test_tiny_bert_matches_sentence_transformers(tmp_path, shape):
    need_vocab()
    tx, gold = golden()
    name, seed, hidden, layers, heads, ffn, cased, pooling, normalize, max_len = shape
    mdir = tmp_path / name
    sha = tm.write_model(mdir, MINILM, *shape)
    g = gold[name]
    # the weights must be the bytes sentence-transformers was given (numpy's seeded stream, the
    # MiniLM vocabulary); otherwise the reference is for another model: regenerate the golden file
    assert sha == g["weights_sha256"], (name, "weights differ from the golden file's: numpy's random "
                                        "stream or the MiniLM vocabulary changed; run scripts/gen-tiny-model-goldens")
    ref = g["vectors"]
    assert len(ref) == len(tx)
    ini = tmp_path / "m.ini"
    ini.write_text("[postgres]\nconninfo = dbname=unused\n[qdrant]\nurl = http://127.0.0.1:1\n"
                   f"[embedder.tiny]\ntype = minilm\nmodel_dir = {mdir}\nthreads = 2\n")
    r = subprocess.run([BIN, "-c", str(ini), "embed", "--jsonl"], input="".join(json.dumps(t) + "\n" for t in tx),
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"hidden={hidden}" in r.stderr and f"pooling={pooling}" in r.stderr
    assert f"max_tokens={max_len}" in r.stderr and f"lowercase={0 if cased else 1}" in r.stderr
    out = [json.loads(l) for l in r.stdout.splitlines()]
    assert len(out) == len(tx)
    worst, worst_diff = 1.0, 0.0
    for t, v, e in zip(tx, out, ref):
        assert len(v) == hidden
        c = cosine(v, e)
        d = max(abs(a - b) for a, b in zip(v, e))
        assert c >= 0.99999 and d <= 1e-4, (name, t[:60], c, d)
        worst, worst_diff = min(worst, c), max(worst_diff, d)
    if not normalize:
        assert any(abs(sum(x * x for x in v) - 1) > 1e-3 for v in out)  # really not normalised
    print(f"{name}: {len(tx)} texts, worst cosine {worst:.9f}, worst max|diff| {worst_diff:.3g}")


def test_config_takes_dimension_and_chunk_limit_from_the_model(tmp_path):
    need_vocab()
    mdir = tmp_path / "cfg-model"
    tm.write_model(mdir, MINILM, "cfg-model", 1, 32, 1, 2, 64, False, "mean", True, 128)
    base = ("[postgres]\nconninfo = dbname=unused\n[qdrant]\nurl = http://127.0.0.1:1\n"
            f"[embedder.tiny]\ntype = minilm\nmodel_dir = {mdir}\n"
            "[rule.r]\ntable = public.t\nkey = id\ntext = {{body}}\nembedder = tiny\ncollection = c\n")
    ini = tmp_path / "c.ini"
    ini.write_text(base + "dimension = 384\n")
    r = subprocess.run([BIN, "-c", str(ini), "config", "--dump"], capture_output=True, text=True)
    assert r.returncode == 2 and "does not match [embedder.tiny] (32)" in r.stderr, r.stderr
    ini.write_text(base + "chunk_tokens = 127\n")
    r = subprocess.run([BIN, "-c", str(ini), "config", "--dump"], capture_output=True, text=True)
    assert r.returncode == 2 and "126 tokens" in r.stderr, r.stderr
    ini.write_text(base + "chunk_tokens = 126\n")
    r = subprocess.run([BIN, "-c", str(ini), "config", "--dump"], capture_output=True, text=True)
    assert "chunk_tokens" not in r.stderr, r.stderr

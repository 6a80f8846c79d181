"""More than one model: tiny randomly initialised BERT models of several shapes (cased and
uncased WordPiece, mean and CLS pooling, with and without Normalize, max length 512), built
locally with transformers + sentence-transformers (nothing from a model hub), saved as
sentence-transformers directories; `pg2qdrant embed` must reproduce sentence-transformers' own
vectors for every text (cosine >= 0.99999, max |diff| <= 1e-4), exactly as the MiniLM golden
test does for the real model. Also: the config takes the model's dimension and max length
(chunk_tokens is checked against it)."""
import json
import math
import os
import pathlib
import subprocess

import pytest

from conftest import BIN, ROOT

MINILM = pathlib.Path(os.environ.get("P2Q_MODEL_DIR", ROOT / "models" / "all-MiniLM-L6-v2"))
GOLDEN = ROOT / "tests" / "golden" / "minilm_texts.jsonl"

# name, hidden, layers, heads, intermediate, cased, pooling, normalize, max_seq_length
SHAPES = [
    ("uncased-mean-norm", 64, 2, 4, 128, False, "mean", True, 512),
    ("uncased-cls-norm", 48, 3, 3, 96, False, "cls", True, 512),     # bge-style CLS pooling
    ("cased-mean", 32, 2, 2, 64, True, "mean", False, 128),          # no Normalize module
    ("cased-cls-odd", 40, 1, 5, 72, True, "cls", True, 512),         # sizes not multiples of 16
]


def need_torch():
    try:
        import sentence_transformers  # noqa: F401
        import torch  # noqa: F401
    except ImportError:
        if os.environ.get("P2Q_CI") or os.environ.get("P2Q_REQUIRE_MODEL") == "1":
            pytest.fail("torch / sentence-transformers missing (tests/requirements.txt)")
        pytest.skip("torch / sentence-transformers not installed")
    if not (MINILM / "vocab.txt").exists():
        pytest.skip("MiniLM vocabulary not fetched (scripts/fetch-model)")


def cased_vocab(path):
    """MiniLM's vocabulary plus capitalised copies of its whole words (a cased vocabulary)."""
    words = MINILM.joinpath("vocab.txt").read_text(encoding="utf-8").splitlines()
    seen = set(words)
    extra = []
    for w in words:
        c = w[:1].upper() + w[1:]
        if w.isalpha() and c != w and c not in seen:
            seen.add(c)
            extra.append(c)
    path.write_text("\n".join(words + extra) + "\n", encoding="utf-8")
    return len(words) + len(extra)


def build(tmp, name, hidden, layers, heads, ffn, cased, pooling, normalize, max_len):
    import torch
    from sentence_transformers import SentenceTransformer, models
    from transformers import BertConfig, BertModel, BertTokenizerFast

    base = tmp / (name + "-hf")
    base.mkdir()
    vocab = base / "vocab.txt"
    if cased:
        n_vocab = cased_vocab(vocab)
    else:
        vocab.write_text(MINILM.joinpath("vocab.txt").read_text(encoding="utf-8"), encoding="utf-8")
        n_vocab = len(vocab.read_text(encoding="utf-8").splitlines())
    tok = BertTokenizerFast(vocab_file=str(vocab), do_lower_case=not cased, strip_accents=None,
                            tokenize_chinese_chars=True)
    tok.save_pretrained(base)
    torch.manual_seed(hash(name) % 1000)
    cfg = BertConfig(vocab_size=n_vocab, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                     intermediate_size=ffn, max_position_embeddings=512, hidden_act="gelu")
    model = BertModel(cfg, add_pooling_layer=False)
    with torch.no_grad():  # larger than the default init so that layers matter
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0, 0.08)
    model.save_pretrained(base, safe_serialization=True)
    tr = models.Transformer(str(base), max_seq_length=max_len, do_lower_case=False)
    mods = [tr, models.Pooling(hidden, pooling_mode=pooling)] + ([models.Normalize()] if normalize else [])
    st = SentenceTransformer(modules=mods, device="cpu")
    out = tmp / name
    st.save(str(out))
    return st, out


def texts():
    t = [json.loads(l)["text"] for l in GOLDEN.read_text(encoding="utf-8").splitlines()]
    t = [x for x in t if "\n" not in x and "\r" not in x and "\x00" not in x]
    long = " ".join(f"Word{i} and some MORE text, Ünïcödé café {i}." for i in range(200))  # > 512 tokens
    return t[:120] + ["Hello World", "HELLO WORLD", "hello world", "Crème Brûlée à Paris", long, long[:900]]


def cosine(a, b):
    dot = sum(x * y for x, y in zip(a, b))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


@pytest.mark.parametrize("shape", SHAPES, ids=[s[0] for s in SHAPES])
def test_tiny_bert_matches_sentence_transformers(tmp_path, shape):
    need_torch()
    import torch
    torch.set_num_threads(1)
    st, mdir = build(tmp_path, *shape)
    name, hidden, _, _, _, cased, pooling, normalize, max_len = shape
    tx = texts()
    ref = st.encode(tx, batch_size=32, convert_to_numpy=True)
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
    need_torch()
    _, mdir = build(tmp_path, "cfg-model", 32, 1, 2, 64, False, "mean", True, 128)
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

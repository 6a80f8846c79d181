"""Tiny random BERT sentence-transformers models, written with numpy only (no torch).

Shared by tests/integration/test_models.py (runs in CI, numpy only) and scripts/gen_tiny_models.py
(run by hand, needs tests/requirements-dev.txt: loads the same directories in sentence-transformers
and writes the reference vectors to tests/golden/tiny_models.jsonl).

Each model's weights come from numpy's PCG64 generator seeded with the model's fixed seed, so the
bytes of model.safetensors are the same on every machine; the golden file records their sha256 and
the test checks it first (a numpy that changed its random stream is reported as such, not as a
wrong vector). The directory is laid out the way sentence-transformers 6 / transformers 5 save a
BertModel + Pooling (+ Normalize): config.json, model.safetensors, modules.json,
sentence_bert_config.json, 1_Pooling/config.json, 2_Normalize/config.json, tokenizer.json (the
WordPiece vocabulary inside; v5 writes no vocab.txt) and tokenizer_config.json."""
import hashlib
import json
import pathlib
import struct

import numpy as np

# name, seed, hidden, layers, heads, intermediate, cased, pooling, normalize, max_seq_length
SHAPES = [
    ("uncased-mean-norm", 11, 64, 2, 4, 128, False, "mean", True, 512),
    ("uncased-cls-norm", 12, 48, 3, 3, 96, False, "cls", True, 512),     # bge-style CLS pooling
    ("cased-mean", 13, 32, 2, 2, 64, True, "mean", False, 128),          # no Normalize module
    ("cased-cls-odd", 14, 40, 1, 5, 72, True, "cls", True, 512),         # sizes not multiples of 16
]
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def vocabulary(minilm_dir, cased):
    """MiniLM's vocabulary; cased: plus capitalised copies of its whole words."""
    words = pathlib.Path(minilm_dir, "vocab.txt").read_text(encoding="utf-8").splitlines()
    if not cased:
        return words
    seen = set(words)
    extra = []
    for w in words:
        c = w[:1].upper() + w[1:]
        if w.isalpha() and c != w and c not in seen:
            seen.add(c)
            extra.append(c)
    return words + extra


def weights(seed, n_vocab, hidden, layers, ffn, max_pos=512):
    """BertModel's state dict (with pooler, as transformers 5 saves it), float32, seeded."""
    rng = np.random.Generator(np.random.PCG64(seed))

    def mat(*shape):  # larger than the default init (0.02) so that layers matter
        return (rng.standard_normal(shape) * 0.08).astype(np.float32)

    def bias(n):
        return (rng.standard_normal(n) * 0.02).astype(np.float32)

    def gain(n):
        return (1.0 + rng.standard_normal(n) * 0.1).astype(np.float32)

    w = {
        "embeddings.word_embeddings.weight": mat(n_vocab, hidden),
        "embeddings.position_embeddings.weight": mat(max_pos, hidden),
        "embeddings.token_type_embeddings.weight": mat(2, hidden),
        "embeddings.LayerNorm.weight": gain(hidden),
        "embeddings.LayerNorm.bias": bias(hidden),
    }
    for i in range(layers):
        p = f"encoder.layer.{i}."
        for part in ("query", "key", "value"):
            w[p + f"attention.self.{part}.weight"] = mat(hidden, hidden)
            w[p + f"attention.self.{part}.bias"] = bias(hidden)
        w[p + "attention.output.dense.weight"] = mat(hidden, hidden)
        w[p + "attention.output.dense.bias"] = bias(hidden)
        w[p + "attention.output.LayerNorm.weight"] = gain(hidden)
        w[p + "attention.output.LayerNorm.bias"] = bias(hidden)
        w[p + "intermediate.dense.weight"] = mat(ffn, hidden)
        w[p + "intermediate.dense.bias"] = bias(ffn)
        w[p + "output.dense.weight"] = mat(hidden, ffn)
        w[p + "output.dense.bias"] = bias(hidden)
        w[p + "output.LayerNorm.weight"] = gain(hidden)
        w[p + "output.LayerNorm.bias"] = bias(hidden)
    w["pooler.dense.weight"] = mat(hidden, hidden)
    w["pooler.dense.bias"] = bias(hidden)
    return w


def write_safetensors(path, tensors):
    """The safetensors format: u64 LE header length, JSON header (space-padded to 8), raw LE data."""
    header = {"__metadata__": {"format": "pt"}}
    blobs, off = [], 0
    for k in sorted(tensors):
        a = np.ascontiguousarray(tensors[k], dtype="<f4")
        header[k] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + a.nbytes]}
        blobs.append(a.tobytes())
        off += a.nbytes
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for b in blobs:
            f.write(b)


def tokenizer_json(vocab, cased):
    ids = {t: i for i, t in enumerate(vocab)}
    special = lambda t: {"id": ids[t], "content": t, "single_word": False, "lstrip": False, "rstrip": False,
                         "normalized": False, "special": True}
    tpl = lambda s, t: {"SpecialToken": {"id": s, "type_id": t}}
    seq = lambda s, t: {"Sequence": {"id": s, "type_id": t}}
    return {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [special(t) for t in sorted(SPECIALS, key=ids.get)],
        "normalizer": {"type": "BertNormalizer", "clean_text": True, "handle_chinese_chars": True,
                       "strip_accents": None, "lowercase": not cased},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [tpl("[CLS]", 0), seq("A", 0), tpl("[SEP]", 0)],
            "pair": [tpl("[CLS]", 0), seq("A", 0), tpl("[SEP]", 0), seq("B", 1), tpl("[SEP]", 1)],
            "special_tokens": {t: {"id": t, "ids": [ids[t]], "tokens": [t]} for t in ("[CLS]", "[SEP]")},
        },
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": True},
        "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                  "max_input_chars_per_word": 100, "vocab": ids},
    }


def dump(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False), encoding="utf-8")


def write_model(out, minilm_dir, name, seed, hidden, layers, heads, ffn, cased, pooling, normalize, max_len):
    """Writes the model directory `out`; returns the sha256 of its model.safetensors."""
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    vocab = vocabulary(minilm_dir, cased)
    write_safetensors(out / "model.safetensors", weights(seed, len(vocab), hidden, layers, ffn))
    dump(out / "config.json", {
        "architectures": ["BertModel"], "attention_probs_dropout_prob": 0.1, "classifier_dropout": None,
        "dtype": "float32", "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "hidden_size": hidden,
        "initializer_range": 0.02, "intermediate_size": ffn, "layer_norm_eps": 1e-12,
        "max_position_embeddings": 512, "model_type": "bert", "num_attention_heads": heads,
        "num_hidden_layers": layers, "pad_token_id": 0, "type_vocab_size": 2, "use_cache": False,
        "vocab_size": len(vocab)})
    mods = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.base.modules.transformer.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling",
             "type": "sentence_transformers.sentence_transformer.modules.pooling.Pooling"}]
    if normalize:
        mods.append({"idx": 2, "name": "2", "path": "2_Normalize",
                     "type": "sentence_transformers.base.modules.normalize.Normalize"})
        dump(out / "2_Normalize" / "config.json",
             {"module_input_name": "sentence_embedding", "module_output_name": "sentence_embedding"})
    dump(out / "modules.json", mods)
    dump(out / "1_Pooling" / "config.json",
         {"embedding_dimension": hidden, "pooling_mode": pooling, "include_prompt": True})
    dump(out / "sentence_bert_config.json", {
        "transformer_task": "feature-extraction", "max_seq_length": max_len, "do_lower_case": False,
        "modality_config": {"text": {"method": "forward", "method_output_name": "last_hidden_state"}},
        "module_output_name": "token_embeddings"})
    dump(out / "tokenizer.json", tokenizer_json(vocab, cased))
    dump(out / "tokenizer_config.json", {
        "backend": "tokenizers", "cls_token": "[CLS]", "do_lower_case": not cased, "mask_token": "[MASK]",
        "model_max_length": max_len, "pad_token": "[PAD]", "sep_token": "[SEP]", "strip_accents": None,
        "tokenize_chinese_chars": True, "tokenizer_class": "BertTokenizer", "unk_token": "[UNK]"})
    return hashlib.sha256((out / "model.safetensors").read_bytes()).hexdigest()


def texts(golden_minilm):
    """The fixed text set: 120 of the MiniLM golden texts (one line each) plus case, accent and
    longer-than-512-token cases."""
    t = [json.loads(l)["text"] for l in pathlib.Path(golden_minilm).read_text(encoding="utf-8").splitlines()]
    t = [x for x in t if "\n" not in x and "\r" not in x and "\x00" not in x]
    long = " ".join(f"Word{i} and some MORE text, Ünïcödé café {i}." for i in range(200))  # > 512 tokens
    return t[:120] + ["Hello World", "HELLO WORLD", "hello world", "Crème Brûlée à Paris", long, long[:900]]

#!/usr/bin/env python3
"""Reference vectors of the tiny random BERT models (see scripts/gen-tiny-model-goldens).

Writes each model with numpy (tests/integration/tiny_models.py, the same code the CI test runs),
loads the directory in sentence-transformers exactly as a user would, checks that every numpy
weight was loaded as written, that the tokenizer really holds the whole vocabulary and that the
max length is the model's, then encodes the fixed text set. Needs tests/requirements-dev.txt
(torch, transformers, sentence-transformers); CI never runs it.

Output (tests/golden/tiny_models.jsonl): line 1 {"texts": [...]}; then one line per model
{"model", "weights_sha256", "versions", "vectors"}; vectors as the shortest decimal that reads
back as the same float32.
"""
import pathlib
import json
import sys
import tempfile

import numpy as np
import torch
from sentence_transformers import SentenceTransformer

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration"))
import tiny_models as tm  # noqa: E402


def f32(x):
    return np.format_float_positional(np.float32(x), unique=True, trim="-")


def main(minilm_dir, out_path):
    torch.set_num_threads(1)
    tx = tm.texts(ROOT / "tests" / "golden" / "minilm_texts.jsonl")
    import sentence_transformers
    import transformers
    versions = {"torch": torch.__version__, "transformers": transformers.__version__,
                "sentence_transformers": sentence_transformers.__version__, "numpy": np.__version__}
    lines = [json.dumps({"texts": tx}, ensure_ascii=False)]
    with tempfile.TemporaryDirectory() as tmp:
        for shape in tm.SHAPES:
            name, seed, hidden, layers, _, ffn, cased, pooling, normalize, max_len = shape
            d = pathlib.Path(tmp) / name
            sha = tm.write_model(d, minilm_dir, *shape)
            st = SentenceTransformer(str(d), device="cpu")
            assert st.max_seq_length == max_len, (name, st.max_seq_length)
            assert getattr(st, "get_embedding_dimension", st.get_sentence_embedding_dimension)() == hidden
            assert any(type(m).__name__ == "Normalize" for m in st) == normalize, name
            vocab = tm.vocabulary(minilm_dir, cased)
            tok = st.tokenizer
            assert len(tok) == len(vocab), (name, len(tok), len(vocab))
            ids = tok("Hello World, the cat")["input_ids"]
            unk = vocab.index("[UNK]")
            assert unk not in ids, (name, ids)
            want = tm.weights(seed, len(vocab), hidden, layers, ffn)
            got = {k: v.detach().numpy() for k, v in st[0].auto_model.state_dict().items()}
            for k, v in want.items():
                assert k in got and np.array_equal(got[k], v), (name, k)
            assert not set(got) - set(want) - {"embeddings.position_ids"}, (name, set(got) - set(want))
            vec = st.encode(tx, batch_size=32, convert_to_numpy=True)
            assert vec.shape == (len(tx), hidden) and vec.dtype == np.float32
            rows = ",".join("[" + ",".join(f32(x) for x in row) + "]" for row in vec)
            lines.append('{"model":%s,"weights_sha256":"%s","versions":%s,"vectors":[%s]}'
                         % (json.dumps(name), sha, json.dumps(versions), rows))
            print(f"{name}: {len(tx)} texts, dim {hidden}, sha256 {sha[:16]}", file=sys.stderr)
    pathlib.Path(out_path).write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

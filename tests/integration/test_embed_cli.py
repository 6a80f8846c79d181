"""`pg2qdrant embed` as a robust filter: texts are (pointer, length) end to end (a NUL byte or
\\u0000 is data), invalid UTF-8, empty, 10 MB lines and bad JSON lines each get their own output
line, the other lines' vectors are never lost, and lines longer than the 64 MiB bound are skipped
with an error. Runs under whatever binary P2Q_BIN is (the ASan suite runs it under ASan/UBSan)
and, for the plain build, under valgrind (no invalid read, no uninitialised use)."""
import json
import math
import os
import pathlib
import shutil
import subprocess

import pytest

import tiny_models as tm
from conftest import BIN, ROOT

MODEL = pathlib.Path(os.environ.get("P2Q_MODEL_DIR", ROOT / "models" / "all-MiniLM-L6-v2"))
GOLDEN = ROOT / "tests" / "golden" / "minilm_texts.jsonl"
BIG = (b"The quick brown fox jumps over the lazy dog. " * 240000)[: 10 * 1024 * 1024]  # 10 MiB


def need_model():
    if not (MODEL / "model.safetensors").exists():
        if os.environ.get("P2Q_REQUIRE_MODEL") == "1":
            pytest.fail(f"model missing at {MODEL} (scripts/fetch-model)")
        pytest.skip("model not fetched (scripts/fetch-model)")


def golden_vec(text):
    for line in GOLDEN.read_text().splitlines():
        g = json.loads(line)
        if g["text"] == text:
            return g["vec"]
    raise KeyError(text)


def cosine(a, b):
    dot = sum(x * y for x, y in zip(a, b))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


@pytest.fixture
def cfg(tmp_path):
    need_model()
    p = tmp_path / "embed.ini"
    p.write_text("[postgres]\nconninfo = dbname=unused\n[qdrant]\nurl = http://127.0.0.1:1\n"
                 f"[embedder.mini]\ntype = minilm\nmodel_dir = {MODEL}\nthreads = 2\n")
    return p


def is_asan():
    with open(BIN, "rb") as f:
        return b"__asan_init" in f.read()


def run_embed(cfg, data, *args, wrap=()):
    env = dict(os.environ)
    r = subprocess.run([*wrap, BIN, "-c", str(cfg), "embed", *args], input=data, capture_output=True, env=env,
                       timeout=600)
    return r, r.stdout.decode().splitlines()


def check_plain(lines, out):
    assert len(out) == len(lines), (len(out), len(lines))
    res = [json.loads(o) for o in out]
    by = dict(zip(range(len(lines)), res))
    assert cosine(by[0], golden_vec("hello world")) > 0.99999
    assert cosine(by[1], golden_vec("nul\x00byte")) > 0.99999     # NUL is data, dropped like HF does
    assert by[2] == {"error": "invalid UTF-8 input"}
    assert cosine(by[3], golden_vec("")) > 0.99999                # empty line: [CLS][SEP]
    assert isinstance(by[4], list) and len(by[4]) == 384           # 10 MiB line, truncated at 256 tokens
    assert isinstance(by[5], list) and len(by[5]) == 384           # a long line after a NUL
    assert cosine(by[6], golden_vec("A man is eating food.")) > 0.99999
    assert by[7] == {"error": "invalid UTF-8 input"}               # truncated sequence at the end
    assert cosine(by[8], golden_vec("hello world")) > 0.99999


def plain_lines(big):
    return [b"hello world", b"nul\x00byte", b"bad \xff utf8", b"", big, b"abc\x00" + big, b"A man is eating food.",
            b"cut \xe2\x82", b"hello world"]


def jsonl_lines(big):
    return [json.dumps("hello world"), json.dumps("nul\x00byte"), json.dumps("\ud800 lone surrogate"), json.dumps(""),
            json.dumps({"text": big.decode()}), "not json", json.dumps({"title": "no text"}),
            json.dumps({"text": "A man is eating food."}) + "  ", json.dumps("abc\x00" + big.decode()),
            '"hello world" trailing', json.dumps("hello world")]


def check_jsonl(out):
    assert len(out) == 11
    res = [json.loads(o) for o in out]
    assert cosine(res[0], golden_vec("hello world")) > 0.99999
    assert cosine(res[1], golden_vec("nul\x00byte")) > 0.99999   # \u0000 is not the end of the string
    assert res[2] == {"error": "invalid UTF-8 input"}
    assert cosine(res[3], golden_vec("")) > 0.99999
    assert isinstance(res[4], list) and len(res[4]) == 384
    assert "error" in res[5] and "error" in res[6]
    assert cosine(res[7], golden_vec("A man is eating food.")) > 0.99999
    assert isinstance(res[8], list) and len(res[8]) == 384
    assert "error" in res[9]
    assert cosine(res[10], golden_vec("hello world")) > 0.99999


def test_plain_lines_nul_utf8_empty_huge(cfg):
    r, out = run_embed(cfg, b"\n".join(plain_lines(BIG)) + b"\n")
    assert r.returncode == 1, r.stderr[-2000:]  # some lines failed …
    check_plain(plain_lines(BIG), out)                      # … and every other line has its vector
    assert b"BLAS kernel" in r.stderr
    # no final newline, CRLF line ends
    r, out = run_embed(cfg, b"hello world\r\nA man is eating food.")
    assert r.returncode == 0 and len(out) == 2
    assert cosine(json.loads(out[1]), golden_vec("A man is eating food.")) > 0.99999


def test_jsonl_lines_nul_surrogate_bad_json_huge(cfg):
    r, out = run_embed(cfg, ("\n".join(jsonl_lines(BIG)) + "\n").encode(), "--jsonl")
    assert r.returncode == 1, r.stderr[-2000:]
    check_jsonl(out)


def test_line_over_the_bound_is_skipped_not_stored(cfg):
    over = b"a " * (33 * 1024 * 1024)  # 66 MiB > 64 MiB
    r, out = run_embed(cfg, b"hello world\n" + over + b"\nA man is eating food.\n")
    assert r.returncode == 1
    assert len(out) == 3
    assert "64 MiB" in json.loads(out[1])["error"]
    assert cosine(json.loads(out[2]), golden_vec("A man is eating food.")) > 0.99999


def test_many_lines_keep_order_across_parallel_calls(cfg):
    gold = [json.loads(l) for l in GOLDEN.read_text().splitlines()]
    gold = [g for g in gold if "\n" not in g["text"] and "\r" not in g["text"]]
    texts = [g["text"] for g in gold] * 2  # 8 calls of 64: 4 in flight at once (2 x threads), then refilled
    r, out = run_embed(cfg, "".join(json.dumps(t) + "\n" for t in texts).encode(), "--jsonl")
    assert r.returncode == 0, r.stderr[-2000:]
    assert len(out) == len(texts)
    for i, line in enumerate(out):
        assert cosine(json.loads(line), gold[i % len(gold)]["vec"]) > 0.99999, texts[i]


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind not installed (scripts/deps)")
def test_under_valgrind(cfg, tmp_path):
    """No invalid read and no uninitialised use (valgrind's error exit 99) in the plain build, on
    every kind of line. valgrind emulates the AVX kernels ~1000x slower (MiniLM: ~4 s of CPU per
    forward pass, ~10 minutes for both line sets at CI's load), so the line sets run on a tiny
    BERT of odd sizes (tests/integration/tiny_models.py: hidden 40, 5 heads, the kernels' tails)
    and must print exactly what the same binary prints without valgrind; MiniLM itself runs one
    line under valgrind (its loader, its 384-wide kernels) and must match its golden vector."""
    if is_asan():
        pytest.skip("the ASan build cannot run under valgrind (this suite runs the test under ASan instead)")
    vg = ("valgrind", "-q", "--error-exitcode=99", "--leak-check=no")
    r, out = run_embed(cfg, b"hello world\n", wrap=vg)
    assert r.returncode == 0, r.stderr.decode(errors="replace")[-4000:]  # 99 would be a valgrind error
    assert len(out) == 1 and cosine(json.loads(out[0]), golden_vec("hello world")) > 0.99999
    shape = next(s for s in tm.SHAPES if s[0] == "cased-cls-odd")
    tm.write_model(tmp_path / shape[0], MODEL, *shape)
    tiny = tmp_path / "tiny.ini"
    tiny.write_text(cfg.read_text().replace(f"model_dir = {MODEL}", f"model_dir = {tmp_path / shape[0]}"))
    # the big lines are one 2 MiB word ([CLS] [UNK] [SEP]): read, copied and scanned whole
    small = b"x" * (2 * 1024 * 1024)
    for data, args, n, errors in ((b"\n".join(plain_lines(small)) + b"\n", (), 9, {2, 7}),
                                  (("\n".join(jsonl_lines(small)) + "\n").encode(), ("--jsonl",), 11, {2, 5, 6, 9})):
        r0, want = run_embed(tiny, data, *args)
        r, out = run_embed(tiny, data, *args, wrap=vg)
        assert r.returncode == 1 == r0.returncode, r.stderr.decode(errors="replace")[-4000:]
        assert out == want and len(out) == n
        res = [json.loads(o) for o in out]
        assert {i for i, v in enumerate(res) if "error" in v} == errors, res
        assert all(len(v) == shape[2] for i, v in enumerate(res) if i not in errors)


def best_core():
    """The kernel blas_kernel.c selects on this CPU (from /proc/cpuinfo's flags)."""
    flags = set()
    for line in open("/proc/cpuinfo"):
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            break
    if {"avx512f", "avx512dq", "avx512cd", "avx512bw", "avx512vl"} <= flags:
        return "SkylakeX", "avx512"
    if {"avx2", "fma"} <= flags:
        return "Haswell", "avx2"
    if "avx" in flags:
        return "Sandybridge", "avx"
    return None, "sse"


def test_generic_blas_kernel_is_replaced_by_the_best_one(cfg):
    """OpenBLAS falling back to its generic Prescott kernel (simulated with the test hook
    P2Q_BLAS_PRETEND_CORE) makes pg2qdrant re-execute itself with the best OPENBLAS_CORETYPE for
    this CPU; a user's own OPENBLAS_CORETYPE is never overridden."""
    core, level = best_core()
    env = dict(os.environ, P2Q_BLAS_PRETEND_CORE="Prescott")
    user = env.get("OPENBLAS_CORETYPE")
    r = subprocess.run([BIN, "-c", str(cfg), "embed"], input=b"hello world\n", capture_output=True, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    err = r.stderr.decode()
    if user:  # this machine pins the kernel in the environment: kept as it is
        assert f"selected by user" in err and "selected_by=user" in err, err
    elif core:
        assert f"BLAS kernel {core} (OpenBLAS detected Prescott, CPU {level}, selected by auto)" in err, err
        assert "event=blas_kernel" in err and "selected_by=auto" in err
    assert cosine(json.loads(r.stdout), golden_vec("hello world")) > 0.99999
    # the user's choice, even a generic one, is kept
    env = dict(os.environ, OPENBLAS_CORETYPE="Prescott")
    r = subprocess.run([BIN, "-c", str(cfg), "embed"], input=b"hello world\n", capture_output=True, env=env)
    assert r.returncode == 0 and "BLAS kernel Prescott" in r.stderr.decode() and "selected by user" in r.stderr.decode()
    assert cosine(json.loads(r.stdout), golden_vec("hello world")) > 0.99999

"""Replay a real Qdrant's recorded answers against the test server and list every difference.

Owns: reading ``../shared/qdrant/recordings/*.jsonl`` (format in that folder's README), replaying
each case (its setup and steps, in order, on a freshly reset server, with the recorded paths,
queries, headers and bodies) and comparing every answer with the recorded one:

- the status code;
- the content type (media type only; a recorded answer without one must have none);
- the body: JSON shape (the same keys at every level: ``payload``/``vector`` omitted when not
  requested is a difference), error texts exactly, values exactly, numbers of the same kind
  (``16.0`` is not ``16``), floats to 1e-5 relative (real Qdrant scores in float32, the stand-in
  in float64); plain-text bodies exactly.

Fields that differ from run to run by nature (the recordings' README) are compared by type only,
and only where Qdrant puts them (see ``_volatile``): the envelope's ``time``/``usage``, an
UpdateResult's ``operation_id``, collection info's ``segments_count``/``update_queue``, a point
record's ``version``, and ``version``/``commit`` of ``GET /``.

Request bodies are sent compact (the recorded serde positions are those of the compact form);
the two bodies too large to record are synthesised (``SYNTHESISED``); the "invalid UTF-8" text
body gets its invalid byte back (the recorder stored it as U+FFFD).

Command line: ``python3 -m tests.qdrant_server.replay [RECORDING…]`` prints one line per
difference and a summary; the pytest in tests/integration/test_qdrant_server_replay.py asserts
that every difference is in its commented allow-list.
"""
import http.client
import json
import math
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
# A copy lives in the repository (tests/qdrant_server/recordings: CI runs on a fresh clone);
# ../shared/qdrant/recordings beside the checkout is the source it was copied from.
RECORDINGS = pathlib.Path(__file__).resolve().parent / "recordings"
REAL_KEY = "<api-key>"


def load(path):
    """{case: [exchange, …]} in recorded order, and the meta line."""
    cases, meta = {}, {}
    for line in pathlib.Path(path).read_text().splitlines():
        d = json.loads(line)
        if "meta" in d:
            meta = d["meta"]
            continue
        cases.setdefault(d["case"], []).append(d)
    return cases, meta


def _headers(req, key):
    out = {}
    for name, value in req["headers"].items():
        if req["auth"] == "wrong" and name == "api-key":
            value = "definitely-wrong-key"
        elif req["auth"] == "bearer" and name == "authorization":
            value = f"Bearer {key}"
        elif req["auth"] == "bearer-wrong" and name == "authorization":
            value = "Bearer definitely-wrong-key"
        elif value == REAL_KEY:
            value = key
        out[name] = value
    if req["auth"] == "key" and key and "api-key" not in out:
        out["api-key"] = key
    return out


def _synth_10k(b, later):
    """``upsert-10k-points``: points 1..10000 with payload ``{"_pk": "<id>"}`` (what the head
    shows); the vectors of the points a later step reads back are the recorded ones (Cosine:
    the stored unit vectors are what was sent, normalised), the others are arbitrary."""
    known = {}
    for ex in later:
        res = ((ex["response"]["body"] or {}).get("json") or {}).get("result")
        for p in (res or {}).get("points", []) if isinstance(res, dict) else []:
            if "vector" in p:
                known[p["id"]] = p["vector"]
    pts = [{"id": i, "vector": known.get(i, [((i * k) % 97 + 1) / 97 for k in (3, 5, 7, 11)]),
            "payload": {"_pk": str(i)}} for i in range(1, 10001)]
    return json.dumps({"points": pts}, separators=(",", ":")).encode()


def _synth_blob(b, later):
    """``upsert-40mb``: the head's first point with its ``blob`` padded so that the body has
    exactly the recorded size (over Qdrant's 32 MiB limit: the answer is the size error)."""
    head = b["head"].split('"blob":"')[0] + '"blob":"'
    tail = '"}}]}'
    return (head + "x" * (b["bytes"] - len(head) - len(tail)) + tail).encode()


# Bodies too large to record (the recordings keep their size, hash and head): equivalent bodies
# are synthesised so that the exchange and the later steps of its case replay.
SYNTHESISED = {"upsert-10k-points": _synth_10k, "upsert-40mb": _synth_blob}


def _body(req, case=None, later=()):
    b = req["body"]
    if b is None:
        return None, None
    if "truncated" in b:
        if case in SYNTHESISED:
            return SYNTHESISED[case](b, later), None
        return None, f"request body not recorded ({b['bytes']} bytes, {b.get('note', '')})"
    if "text" in b:
        # the recorder stored an invalid byte as U+FFFD ("invalid UTF-8" case): send one byte
        # that is invalid UTF-8 again (serde_json's column counts it as one byte)
        return b["text"].encode("utf-8").replace("\ufffd".encode("utf-8"), b"\xff"), None
    # sent compact: serde_json's `at line L column C` positions in the recorded errors are
    # those of the compact form
    return json.dumps(b["json"], separators=(",", ":")).encode(), None


def send(stub, req, case=None, later=()):
    """(status, content type or None, body as {"json": …} or {"text": …}) of one request."""
    data, why = _body(req, case, later)
    if why:
        return None, None, {"skipped": why}
    path = req["path"] + (f"?{req['query']}" if req["query"] else "")
    conn = http.client.HTTPConnection(stub.host, stub.port, timeout=60)
    try:
        conn.request(req["method"], path, body=data, headers=_headers(req, stub.api_key))
        resp = conn.getresponse()
        raw = resp.read()
        ctype = resp.getheader("Content-Type")
    finally:
        conn.close()
    if not raw:
        return resp.status, ctype, None
    try:
        return resp.status, ctype, {"json": json.loads(raw)}
    except ValueError:
        return resp.status, ctype, {"text": raw.decode("utf-8", "replace")}


def _media(ctype):
    return ctype.split(";")[0].strip().lower() if ctype else None


def _volatile(path, parent, root_get):
    """Is the member at ``path`` (of the object ``parent``) one that differs by nature? Only
    where Qdrant puts it: ``time``/``usage`` of the envelope, ``operation_id`` of an
    UpdateResult, ``segments_count``/``update_queue`` of collection info, ``version`` of a
    point record, ``version``/``commit`` of ``GET /`` (a payload key of the same name is
    compared like any value)."""
    key = path.rsplit(".", 1)[-1]
    if root_get:
        return path in ("version", "commit")
    if path in ("time", "usage"):
        return True
    if key == "operation_id":
        return "status" in parent
    if path in ("result.segments_count", "result.update_queue"):
        return True
    return key == "version" and "id" in parent


def _cmp(want, got, path, out, root_get=False, parent=None):
    if parent is not None and _volatile(path, parent, root_get):
        if type(want) is not type(got) and not (isinstance(want, (int, float)) and isinstance(got, (int, float))
                                                 and not isinstance(got, bool)):
            out.append((path, f"type {type(want).__name__}", f"type {type(got).__name__}"))
        return
    if isinstance(want, dict) and isinstance(got, dict):
        for k in sorted(set(want) | set(got)):
            p = f"{path}.{k}" if path else k
            if k not in got:
                out.append((p, "present", "missing"))
            elif k not in want:
                out.append((p, "absent", f"present: {json.dumps(got[k])[:80]}"))
            else:
                _cmp(want[k], got[k], p, out, root_get, want)
    elif isinstance(want, list) and isinstance(got, list):
        if len(want) != len(got):
            out.append((path, f"{len(want)} items", f"{len(got)} items"))
        for i, (a, b) in enumerate(zip(want, got)):
            _cmp(a, b, f"{path}[{i}]", out, root_get)
    elif isinstance(want, float) or isinstance(got, float):
        # same JSON number kind (16.0 is not 16), floats to 1e-5 (Qdrant scores in float32)
        ok = (type(want) is type(got)
              and (want == got or math.isclose(want, got, rel_tol=1e-5, abs_tol=1e-6)))
        if not ok:
            out.append((path, json.dumps(want), json.dumps(got)))
    elif want != got or type(want) is not type(got):
        out.append((path, json.dumps(want)[:200], json.dumps(got)[:200]))


def compare(rec, status, ctype, body):
    """List of (field, wanted, got) differences between a recorded answer and ours."""
    want = rec["response"]
    out = []
    if status != want["status"]:
        out.append(("status", want["status"], status))
    wct, gct = _media(want["headers"].get("content-type")), _media(ctype)
    if wct != gct:
        out.append(("content-type", wct, gct))
    wb = want["body"]
    if (wb is None) != (body is None):
        out.append(("body", json.dumps(wb)[:120], json.dumps(body)[:120]))
    elif wb is not None:
        if set(wb) != set(body):
            out.append(("body kind", "/".join(wb), "/".join(body)))
        elif "text" in wb:
            if wb["text"] != body["text"]:
                out.append(("text", wb["text"][:200], body["text"][:200]))
        else:
            _cmp(wb["json"], body["json"], "", out, root_get=rec["request"]["path"] == "/")
    return out


def replay_case(stub, exchanges):
    """Replay one case on a reset server; yields (exchange, differences or skip reason)."""
    stub.reset()
    for n, ex in enumerate(exchanges):
        status, ctype, body = send(stub, ex["request"], ex["case"], exchanges[n + 1:])
        if isinstance(body, dict) and "skipped" in body:
            yield ex, body["skipped"]
            continue
        yield ex, compare(ex, status, ctype, body)


def ident(recording, ex):
    """A stable name for an exchange: recording:case:seq (seq as recorded)."""
    return f"{pathlib.Path(recording).stem}:{ex['case']}:{ex['seq']}"


def run(stub, recording):
    """({ident: (exchange, differences list or skip reason)} for every exchange that differs or
    was skipped, number of exchanges replayed)."""
    cases, _ = load(recording)
    found, n = {}, 0
    for case, exchanges in cases.items():
        for ex, diff in replay_case(stub, exchanges):
            n += 1
            if diff:
                found[ident(recording, ex)] = (ex, diff)
    return found, n


def main(argv):
    from tests.qdrant_server.client import QdrantStub
    paths = argv or sorted(str(p) for p in RECORDINGS.glob("*.jsonl"))
    total = 0
    for path in paths:
        _, meta = load(path)
        stub = QdrantStub.start(api_key="replay-key" if meta.get("api_key") else None)
        try:
            found, _ = run(stub, path)
        finally:
            stub.stop()
        for name, (ex, diff) in found.items():
            req = ex["request"]
            print(f"{name} {req['method']} {req['path_template']} [{ex.get('label', '')}]")
            if isinstance(diff, str):
                print(f"    skipped: {diff}")
                continue
            for field, want, got in diff:
                print(f"    {field}: real {want} | stand-in {got}")
        total += len(found)
        print(f"# {path}: {len(found)} exchanges differ")
    return 1 if total else 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main(sys.argv[1:]))

"""reconcile (missing / orphaned / stale points, --fix through the outbox, paging) and backfill
(chunks, --where, concurrent updates) against a real PostgreSQL and the Qdrant test server."""
import math
import re
import threading
import uuid

import psycopg
import pytest

from conftest import outbox_counts, points_by_id, wait_until

from docs_table import DIM, actual, docs, expected, in_sync, rule, vec  # noqa: F401


def counts(out):
    m = re.search(r"(\d+) missing, (\d+) orphaned, (\d+) stale", out)
    assert m, out
    return tuple(int(x) for x in m.groups())


def drift(out):
    """(missing, orphaned, stale, vector_stale) of a reconcile report."""
    m = re.search(r"(\d+) missing, (\d+) orphaned, (\d+) stale, (\d+) vector_stale", out)
    assert m, out
    return tuple(int(x) for x in m.groups())


def sample(out, kind):
    m = re.search(rf"^  {kind}: (.*)$", out, re.M)
    return set(m.group(1).replace('"', "").split()) if m else set()


def unit(v):
    n = math.sqrt(sum(x * x for x in v))
    return [x / n for x in v]


def synced_daemon(make_daemon, docs, qdrant, n=20, **kw):
    d = make_daemon({"rule.docs": rule(**kw)})
    for i in range(1, n + 1):
        docs.execute("INSERT INTO docs (id, title, emb) VALUES (%s, %s, %s)", (i, f"t{i}", vec(i)))
    d.cli("apply")
    p = d.start()
    wait_until(lambda: in_sync(docs, qdrant), what="initial sync")
    return d, p


def test_clean_state_exits_0_and_points_carry_hash(make_daemon, docs, qdrant):
    d, p = synced_daemon(make_daemon, docs, qdrant)
    d.stop(p)
    r = d.cli("reconcile")
    assert counts(r.stdout) == (0, 0, 0)
    assert "20 point(s), 20 row(s)" in r.stdout
    raw = qdrant.points("docs")
    raw = raw["points"] if isinstance(raw, dict) else raw
    assert all(re.fullmatch(r"[0-9a-f]{16}", pt["payload"]["_hash"]) for pt in raw)


def test_detects_each_kind_and_fix_repairs(make_daemon, docs, qdrant):
    d, p = synced_daemon(make_daemon, docs, qdrant)
    d.stop(p)
    qdrant.corrupt("docs", 3, delete=True)                   # missing
    qdrant.upsert("docs", [{"id": 999, "vector": vec(1), "payload": {"id": 999}}])  # orphan
    qdrant.corrupt("docs", 5, payload={"title": "edited"})   # stale (hash kept, payload changed)
    qdrant.corrupt("docs", 6, delete_keys=["_hash"])          # stale (no hash)
    r = d.cli("reconcile", "--sample", "5", check=False)
    assert r.returncode == 3, r.stdout + r.stderr
    assert counts(r.stdout) == (1, 1, 2)
    assert re.search(r"missing: 3\b", r.stdout) and re.search(r"orphaned: 999\b", r.stdout)
    assert re.search(r"stale: 5 6\b", r.stdout), r.stdout
    # a row changed while no daemon ran: the point is stale (older snapshot)
    docs.execute("ALTER TABLE docs DISABLE TRIGGER USER")
    docs.execute("UPDATE docs SET title = 'behind its back' WHERE id = 7")
    docs.execute("ALTER TABLE docs ENABLE TRIGGER USER")
    r = d.cli("reconcile", "--fix", check=False)
    assert r.returncode == 3 and counts(r.stdout) == (1, 1, 3), r.stdout + r.stderr
    assert "4 upsert event(s) and 1 delete event(s) enqueued" in r.stdout  # 1 missing + 3 stale
    d.start()
    wait_until(lambda: in_sync(docs, qdrant), what="repaired")
    r = d.cli("reconcile")
    assert counts(r.stdout) == (0, 0, 0)


def test_filter_and_null_vector_rows_are_not_expected(make_daemon, docs, qdrant):
    d, p = synced_daemon(make_daemon, docs, qdrant, n=10)
    docs.execute("UPDATE docs SET published = false WHERE id = 2")
    docs.execute("UPDATE docs SET emb = NULL WHERE id = 3")
    wait_until(lambda: in_sync(docs, qdrant), what="filter transitions synced")
    assert d.cli("reconcile").returncode == 0
    # a point for a row outside the filter is an orphan, and --fix deletes it through the outbox
    qdrant.upsert("docs", [{"id": 2, "vector": vec(2), "payload": {"id": 2}}])
    r = d.cli("reconcile", "--fix", check=False)
    assert r.returncode == 3 and counts(r.stdout) == (0, 1, 0)
    wait_until(lambda: in_sync(docs, qdrant), what="orphan deleted")
    assert d.cli("reconcile").returncode == 0


def test_uuid_keys_and_foreign_points(make_daemon, db, qdrant):
    db.execute("CREATE TABLE notes (k text PRIMARY KEY, body text, emb real[])")
    d = make_daemon({"rule.notes": {"table": "public.notes", "key": "k", "columns": "k, body",
                                    "vector_column": "emb", "dimension": str(DIM), "collection": "notes"}})
    for i in range(30):
        db.execute("INSERT INTO notes VALUES (%s, %s, %s)", (f"key-{i}", f"b{i}", vec(i)))
    d.cli("apply")
    p = d.start()
    wait_until(lambda: outbox_counts(db)[0] == 0 and len(points_by_id(qdrant, "notes")) == 30, what="notes synced")
    d.stop(p)
    assert d.cli("reconcile").returncode == 0
    pts = points_by_id(qdrant, "notes")
    by_k = {pt["payload"]["k"]: pid for pid, pt in pts.items()}
    qdrant.corrupt("notes", by_k["key-4"], delete=True)
    qdrant.corrupt("notes", by_k["key-5"], payload={"body": "x"})
    foreign = str(uuid.uuid4())
    qdrant.upsert("notes", [{"id": foreign, "vector": vec(1), "payload": {"k": "nope"}}])  # no _pk
    gone = by_k["key-6"]
    db.execute("ALTER TABLE notes DISABLE TRIGGER USER")
    db.execute("DELETE FROM notes WHERE k = 'key-6'")               # orphan with a _pk
    db.execute("ALTER TABLE notes ENABLE TRIGGER USER")
    r = d.cli("reconcile", "--fix", check=False)
    assert r.returncode == 3 and counts(r.stdout) == (1, 2, 1), r.stdout + r.stderr
    assert "1 delete event(s) enqueued, 1 point(s) deleted directly" in r.stdout
    d.start()
    wait_until(lambda: outbox_counts(db)[0] == 0 and foreign not in points_by_id(qdrant, "notes")
               and gone not in points_by_id(qdrant, "notes") and len(points_by_id(qdrant, "notes")) == 29,
               what="notes repaired")
    assert d.cli("reconcile").returncode == 0


def test_large_table_pages(make_daemon, docs, qdrant):
    d = make_daemon({"rule.docs": rule()})
    docs.execute("INSERT INTO docs (id, title, emb) SELECT g, 't' || g, ARRAY[g % 7, 0, 1, g % 3]::real[]"
                 " FROM generate_series(1, 3000) g")
    d.cli("apply")
    p = d.start()
    wait_until(lambda: in_sync(docs, qdrant), timeout=120, what="3000 rows synced")
    d.stop(p)
    qdrant.delete("docs", ids=[10, 1500, 2999])
    qdrant.corrupt("docs", 2000, payload={"n": 42})
    r = d.cli("reconcile", check=False)
    assert r.returncode == 3
    assert "3000 row(s)" in r.stdout and "2997 point(s)" in r.stdout
    assert counts(r.stdout) == (3, 0, 1)
    scrolls = [e for e in qdrant.log() if e["path"].endswith("/points/scroll")]
    assert len(scrolls) >= 3000 // 256


def test_usage_and_errors(make_daemon, docs, qdrant):
    d = make_daemon({"rule.docs": rule()})
    assert d.cli("reconcile", "nope", check=False).returncode == 2
    assert d.cli("reconcile", "--sample", "x", check=False).returncode == 2
    assert d.cli("backfill", check=False).returncode == 2
    assert d.cli("backfill", "docs", "--chunk", "0", check=False).returncode == 2
    # the collection does not exist yet: an error, not drift
    r = d.cli("reconcile", check=False)
    assert r.returncode == 1 and "docs" in r.stderr


def test_backfill_where_in_chunks(make_daemon, docs, qdrant):
    d = make_daemon({"rule.docs": rule()})
    d.cli("apply")
    docs.execute("ALTER TABLE docs DISABLE TRIGGER USER")
    docs.execute("INSERT INTO docs (id, title, n, emb, published) SELECT g, 't' || g, g % 10,"
                 " ARRAY[g % 7, 0, 1, g % 3]::real[], g % 17 <> 0 FROM generate_series(1, 2500) g")
    docs.execute("ALTER TABLE docs ENABLE TRIGGER USER")
    assert outbox_counts(docs)[0] == 0
    r = d.cli("backfill", "docs", "--where", "n < 3", "--chunk", "100")
    want = {i for i in range(1, 2501) if i % 17 != 0 and i % 10 < 3}
    got = [row[0]["id"] for row in docs.execute("SELECT row_key FROM sync_outbox WHERE op = 'upsert' ORDER BY id")]
    assert sorted(got) == sorted(want) and len(got) == len(want)
    assert got == sorted(got)  # key order
    m = re.search(r"(\d+) row\(s\) enqueued in (\d+) chunk", r.stdout)
    assert m and int(m.group(1)) == len(want) and int(m.group(2)) == -(-len(want) // 100), r.stdout
    p = d.start()
    wait_until(lambda: outbox_counts(docs)[0] == 0 and set(points_by_id(qdrant, "docs")) == want,
               timeout=120, what="backfill applied")
    d.stop(p)
    r = d.cli("reconcile", check=False)
    assert r.returncode == 3 and counts(r.stdout)[0] == len(expected(docs)) - len(want)
    d.cli("backfill", "docs")
    p = d.start()
    wait_until(lambda: in_sync(docs, qdrant), timeout=120, what="full backfill applied")
    assert d.cli("reconcile").returncode == 0


def test_backfill_composite_key(make_daemon, db, qdrant):
    db.execute("CREATE TABLE pairs (a int, b text, emb real[], PRIMARY KEY (a, b))")
    d = make_daemon({"rule.pairs": {"table": "public.pairs", "key": "a, b", "vector_column": "emb",
                                    "dimension": str(DIM), "collection": "pairs"}})
    d.cli("apply")
    db.execute("ALTER TABLE pairs DISABLE TRIGGER USER")
    db.execute("INSERT INTO pairs SELECT g / 3, 'x' || (g % 3), ARRAY[1, 2, 3, g]::real[] FROM generate_series(0, 299) g")
    db.execute("ALTER TABLE pairs ENABLE TRIGGER USER")
    d.cli("backfill", "pairs", "--chunk", "7")
    keys = [(k["a"], k["b"]) for (k,) in db.execute("SELECT row_key FROM sync_outbox ORDER BY id")]
    assert len(keys) == 300 and len(set(keys)) == 300
    p = d.start()
    wait_until(lambda: outbox_counts(db)[0] == 0 and len(points_by_id(qdrant, "pairs")) == 300, what="pairs")
    d.stop(p)
    assert d.cli("reconcile").returncode == 0


def test_backfill_concurrent_with_updates(make_daemon, docs, qdrant, pgdb):
    d = make_daemon({"rule.docs": rule()})
    docs.execute("INSERT INTO docs (id, title, emb) SELECT g, 't' || g, ARRAY[g % 7, 0, 1, g % 3]::real[]"
                 " FROM generate_series(1, 2000) g")
    d.cli("apply")
    p = d.start()
    stop = threading.Event()
    errors = []

    def writer(seed):
        try:
            with psycopg.connect(dbname=pgdb, autocommit=True) as c:
                k = 0
                while not stop.is_set():
                    k += 1
                    i = (seed * 7919 + k * 104729) % 2000 + 1
                    c.execute("UPDATE docs SET n = n + 1, title = %s, emb = %s WHERE id = %s",
                              (f"w{seed}-{k}", vec(i, k), i))
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(s,)) for s in range(3)]
    for t in threads:
        t.start()
    try:
        for _ in range(2):
            d.cli("backfill", "docs", "--chunk", "150")
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors, errors
    wait_until(lambda: in_sync(docs, qdrant), timeout=120, what="Qdrant equal to PostgreSQL")
    d.stop(p)
    assert d.cli("reconcile").returncode == 0


def test_backfill_does_not_skip_rows_when_a_key_changes_mid_chunk(make_daemon, docs, pgdb):
    """A row whose key an open transaction raises is re-read by the chunk's row lock with its new
    key; the next chunk must still start at the chunk's own end, not after that new key."""
    import subprocess
    from conftest import BIN
    d = make_daemon({"rule.docs": rule()})
    d.cli("apply")
    docs.execute("ALTER TABLE docs DISABLE TRIGGER USER")
    docs.execute("INSERT INTO docs (id, title, n, emb) SELECT g, 't', 0, ARRAY[1, 0, 1, 0]::real[]"
                 " FROM generate_series(1, 100) g")
    docs.execute("ALTER TABLE docs ENABLE TRIGGER USER")
    with psycopg.connect(dbname=pgdb) as writer:  # an open transaction holding row 5
        writer.execute("UPDATE docs SET id = 5000 WHERE id = 5")
        bf = subprocess.Popen([BIN, "-c", str(d.path), "backfill", "docs", "--chunk", "10"], env=d.env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_until(lambda: docs.execute("SELECT count(*) FROM pg_locks WHERE NOT granted").fetchone()[0] > 0,
                   what="backfill waiting on the updated row")
        writer.commit()
    out, err = bf.communicate(timeout=60)
    assert bf.returncode == 0, err
    keys = {k["id"] for (k,) in docs.execute("SELECT row_key FROM sync_outbox WHERE op = 'upsert'")}
    assert keys == (set(range(1, 101)) - {5}) | {5000}


def test_lost_pk_copied_payload_and_vectors_uuid_cosine(make_daemon, db, qdrant):
    """Text keys (UUID point ids) in a Cosine collection: a point at its row's id is never an
    orphan whatever its payload (lost `_pk`, another row's payload are stale and re-enqueued, never
    deleted); a corrupted vector is vector_stale; a vector only scaled (Qdrant normalises Cosine
    vectors on write) is not drift; reconcile and --fix report the same counts; exact repair."""
    db.execute("CREATE TABLE notes (k text PRIMARY KEY, body text, emb real[])")
    d = make_daemon({"rule.notes": {"table": "public.notes", "key": "k", "columns": "k, body",
                                    "vector_column": "emb", "dimension": str(DIM), "distance": "Cosine",
                                    "collection": "notes"}})
    for i in range(30):
        db.execute("INSERT INTO notes VALUES (%s, %s, %s)", (f"key-{i}", f"b{i}", vec(i + 1)))
    d.cli("apply")
    p = d.start()
    wait_until(lambda: outbox_counts(db)[0] == 0 and len(points_by_id(qdrant, "notes")) == 30, what="notes synced")
    d.stop(p)
    assert d.cli("reconcile").returncode == 0
    raw = {pt["payload"]["k"]: pt for pt in qdrant.points("notes")}
    pid = {k: pt["id"] for k, pt in raw.items()}
    qdrant.corrupt("notes", pid["key-1"], delete_keys=["_pk"])                      # lost _pk
    qdrant.corrupt("notes", pid["key-2"], set_payload=raw["key-3"]["payload"])      # copied payload
    qdrant.corrupt("notes", pid["key-4"], vector=[9.0, 0.0, 0.0, 1.0])              # corrupted vector
    qdrant.corrupt("notes", pid["key-5"], vector=[2 * x for x in vec(6)])           # scaled: same point
    qdrant.corrupt("notes", pid["key-6"], delete_keys=["_pk"])                      # lost _pk, row gone:
    db.execute("ALTER TABLE notes DISABLE TRIGGER USER")
    db.execute("DELETE FROM notes WHERE k = 'key-6'")                                # an orphan
    db.execute("ALTER TABLE notes ENABLE TRIGGER USER")
    foreign = str(uuid.uuid4())
    qdrant.upsert("notes", [{"id": foreign, "vector": vec(1), "payload": {}}])       # orphan
    r1 = d.cli("reconcile", check=False)
    assert r1.returncode == 3 and drift(r1.stdout) == (0, 2, 2, 1), r1.stdout + r1.stderr
    assert sample(r1.stdout, "stale") == {pid["key-1"], pid["key-2"]}, r1.stdout
    assert sample(r1.stdout, "vector_stale") == {pid["key-4"]}, r1.stdout
    assert sample(r1.stdout, "orphaned") == {pid["key-6"], foreign}, r1.stdout
    r2 = d.cli("reconcile", "--fix", check=False)
    assert r2.returncode == 3 and drift(r2.stdout) == drift(r1.stdout), r2.stdout + r2.stderr
    assert "3 upsert event(s) and 0 delete event(s) enqueued, 2 point(s) deleted directly" in r2.stdout
    left = points_by_id(qdrant, "notes")
    assert {pid["key-1"], pid["key-2"], pid["key-4"]} <= set(left)        # re-enqueued, not deleted
    assert pid["key-6"] not in left and foreign not in left and len(left) == 29
    enq = {k["k"] for (k, op) in db.execute("SELECT row_key, op FROM sync_outbox") if op == "upsert"}
    assert enq == {"key-1", "key-2", "key-4"} and outbox_counts(db)[0] == 3
    d.start()
    wait_until(lambda: outbox_counts(db)[0] == 0, what="repairs applied")
    pts = points_by_id(qdrant, "notes")
    assert len(pts) == 29
    for k in ("key-1", "key-2", "key-4"):
        i = int(k.split("-")[1])
        assert pts[pid[k]]["payload"] == {"k": k, "body": f"b{i}", "_pk": {"k": k}}, pts[pid[k]]
        assert pts[pid[k]]["vector"] == pytest.approx(unit(vec(i + 1)), rel=1e-5, abs=1e-6)
    r = d.cli("reconcile")
    assert drift(r.stdout) == (0, 0, 0, 0) and "29 point(s), 29 row(s)" in r.stdout


def test_int_keys_foreign_payload_and_vectors_same_counts_with_fix(make_daemon, docs, qdrant):
    """Integer ids name their row whatever the payload: another row's payload or a foreign `_pk`
    is stale; corrupted vectors (Dot: compared as stored) are vector_stale; the counts of
    reconcile and reconcile --fix on one state are equal; after the daemon drained, all exact."""
    d, p = synced_daemon(make_daemon, docs, qdrant)
    d.stop(p)
    raw = {pt["id"]: pt for pt in qdrant.points("docs")}
    qdrant.corrupt("docs", 3, set_payload=raw[4]["payload"])          # stale: row 4's payload at 3
    qdrant.corrupt("docs", 9, payload={"_pk": {"id": 10}})            # stale: a foreign _pk
    qdrant.corrupt("docs", 5, vector=[0.0, 0.0, 0.0, 0.0])            # vector_stale
    v6 = vec(6)
    v6[0] += 1e-3                                                       # vector_stale: one component off
    qdrant.corrupt("docs", 6, vector=v6)
    qdrant.corrupt("docs", 7, vector=[x * (1 + 1e-9) for x in vec(7)])  # float32-equal: not drift
    qdrant.corrupt("docs", 8, delete=True)                              # missing
    qdrant.upsert("docs", [{"id": 999, "vector": vec(1), "payload": raw[2]["payload"]}])  # orphan
    r1 = d.cli("reconcile", "--sample", "5", check=False)
    assert r1.returncode == 3 and drift(r1.stdout) == (1, 1, 2, 2), r1.stdout + r1.stderr
    assert sample(r1.stdout, "stale") == {"3", "9"} and sample(r1.stdout, "vector_stale") == {"5", "6"}
    assert sample(r1.stdout, "missing") == {"8"} and sample(r1.stdout, "orphaned") == {"999"}
    r2 = d.cli("reconcile", "--fix", "--sample", "5", check=False)
    assert r2.returncode == 3 and r2.stdout.split("\n")[:5] == r1.stdout.split("\n")[:5], r2.stdout
    assert "5 upsert event(s) and 1 delete event(s) enqueued, 0 point(s) deleted directly" in r2.stdout
    assert {3, 5, 6, 9} <= set(points_by_id(qdrant, "docs"))
    d.start()
    wait_until(lambda: in_sync(docs, qdrant), what="repaired")
    assert actual(qdrant)[5][1] == vec(5) and actual(qdrant)[3][0] == {"id": 3, "title": "t3", "n": 0}
    r = d.cli("reconcile")
    assert drift(r.stdout) == (0, 0, 0, 0)


def test_integer_ids_beyond_2_53_are_compared_exactly(make_daemon, docs, qdrant):
    """Ids 2^53 and 2^53+1 are one double apart from each other: read from the reply's text, each
    is checked against its own row."""
    big = [2**53, 2**53 + 1, 2**63 - 1]
    d = make_daemon({"rule.docs": rule()})
    for i in big:
        docs.execute("INSERT INTO docs (id, title, emb) VALUES (%s, %s, %s)", (i, f"t{i}", vec(i)))
    d.cli("apply")
    p = d.start()
    wait_until(lambda: in_sync(docs, qdrant), what="big ids synced")
    d.stop(p)
    r = d.cli("reconcile")
    assert drift(r.stdout) == (0, 0, 0, 0) and "3 point(s), 3 row(s)" in r.stdout
    qdrant.corrupt("docs", 2**53 + 1, delete=True)
    qdrant.corrupt("docs", 2**53, payload={"title": "edited"})
    qdrant.upsert("docs", [{"id": 2**53 + 3, "vector": vec(1), "payload": {}}])
    r = d.cli("reconcile", "--fix", check=False)
    assert r.returncode == 3 and drift(r.stdout) == (1, 1, 1, 0), r.stdout + r.stderr
    assert sample(r.stdout, "missing") == {str(2**53 + 1)} and sample(r.stdout, "stale") == {str(2**53)}
    assert sample(r.stdout, "orphaned") == {str(2**53 + 3)}
    d.start()
    wait_until(lambda: in_sync(docs, qdrant), what="big ids repaired")
    assert d.cli("reconcile").returncode == 0


def test_unresolved_points_settled_in_bounded_batches(make_daemon, db, qdrant):
    """UUID points that name no row by themselves (no `_pk`) wait in a bounded set until the
    rows' ids settle them; with the set shrunk to 2 ids (several settling scans), the verdicts,
    counts and fixes are the same as in one batch."""
    db.execute("CREATE TABLE notes (k text PRIMARY KEY, body text, emb real[])")
    d = make_daemon({"rule.notes": {"table": "public.notes", "key": "k", "columns": "k, body",
                                    "vector_column": "emb", "dimension": str(DIM), "collection": "notes"}})
    for i in range(10):
        db.execute("INSERT INTO notes VALUES (%s, %s, %s)", (f"key-{i}", f"b{i}", vec(i + 1)))
    d.cli("apply")
    p = d.start()
    wait_until(lambda: outbox_counts(db)[0] == 0 and len(points_by_id(qdrant, "notes")) == 10, what="notes synced")
    d.stop(p)
    pid = {pt["payload"]["k"]: pt["id"] for pt in qdrant.points("notes")}
    for k in ("key-1", "key-4", "key-8"):
        qdrant.corrupt("notes", pid[k], delete_keys=["_pk"])
    foreign = [str(uuid.uuid4()) for _ in range(7)]
    qdrant.upsert("notes", [{"id": f, "vector": vec(2), "payload": {"k": "key-2"}} for f in foreign])
    one = d.cli("reconcile", "--sample", "20", check=False)
    small = dict(d.env, P2Q_RECONCILE_UNRESOLVED_MAX="2")
    batched = d.cli("reconcile", "--sample", "20", check=False, env=small)
    assert one.returncode == batched.returncode == 3, one.stdout + one.stderr + batched.stderr
    assert drift(one.stdout) == drift(batched.stdout) == (0, 7, 3, 0), one.stdout + batched.stdout
    assert "extra key scan" not in one.stdout
    # 10 such points (7 foreign, 3 lost _pk), 2 at a time: 4 extra scans, the last 2 settled by pass 2
    assert re.search(r"\b4 extra key scan", batched.stdout), batched.stdout
    for out in (one.stdout, batched.stdout):
        assert sample(out, "orphaned") == set(foreign) and sample(out, "stale") == {pid[k] for k in ("key-1", "key-4", "key-8")}
    r = d.cli("reconcile", "--fix", check=False, env=small)
    assert drift(r.stdout) == (0, 7, 3, 0)
    assert "3 upsert event(s) and 0 delete event(s) enqueued, 7 point(s) deleted directly" in r.stdout, r.stdout
    assert set(points_by_id(qdrant, "notes")) == set(pid.values())
    d.start()
    wait_until(lambda: outbox_counts(db)[0] == 0, what="repairs applied")
    assert d.cli("reconcile", env=small).returncode == 0


def test_text_rule_compares_payload_not_vectors(make_daemon, db, qdrant):
    """A text rule's vectors come from an embedder: reconcile does not re-embed every row to
    compare them (says so in its report); the text is covered by the payload's `_hash`, so a row
    whose text changed behind the daemon's back is stale and --fix re-embeds it."""
    from test_embed import MODEL, need_model
    need_model()
    db.execute("CREATE TABLE notes (id int PRIMARY KEY, title text)")
    d = make_daemon({"embedder.mini": {"type": "minilm", "model_dir": str(MODEL), "threads": "1"},
                     "rule.notes": {"table": "public.notes", "key": "id", "columns": "id, title",
                                    "text": "{title}", "embedder": "mini", "collection": "notes"}})
    for i in range(1, 6):
        db.execute("INSERT INTO notes VALUES (%s, %s)", (i, f"note number {i}"))
    d.cli("apply")
    p = d.start()
    wait_until(lambda: outbox_counts(db)[0] == 0 and len(points_by_id(qdrant, "notes")) == 5, what="notes embedded")
    d.stop(p)
    before = points_by_id(qdrant, "notes")
    qdrant.corrupt("notes", 1, vector=[1.0] + [0.0] * (len(before[1]["vector"]) - 1))
    r = d.cli("reconcile")
    assert drift(r.stdout) == (0, 0, 0, 0) and "vectors not compared" in r.stdout
    db.execute("ALTER TABLE notes DISABLE TRIGGER USER")
    db.execute("UPDATE notes SET title = 'a different text' WHERE id = 2")
    db.execute("ALTER TABLE notes ENABLE TRIGGER USER")
    r = d.cli("reconcile", "--fix", check=False)
    assert r.returncode == 3 and drift(r.stdout) == (0, 0, 1, 0) and sample(r.stdout, "stale") == {"2"}
    d.start()
    wait_until(lambda: outbox_counts(db)[0] == 0, what="re-embedded")
    after = points_by_id(qdrant, "notes")
    assert after[2]["payload"]["title"] == "a different text" and after[2]["vector"] != before[2]["vector"]
    assert d.cli("reconcile").returncode == 0


def test_fix_under_concurrent_writes_never_loses_a_row(make_daemon, db, qdrant, pgdb):
    """--fix while the daemon runs and writers insert, update and delete rows (UUID ids), with
    foreign points and points whose `_pk` was lost among them: whatever --fix deletes directly or
    enqueues, once the writers stop and the daemon drained, every row has its exact point and
    reconcile exits 0."""
    db.execute("CREATE TABLE notes (k text PRIMARY KEY, body text, emb real[])")
    d = make_daemon({"rule.notes": {"table": "public.notes", "key": "k", "columns": "k, body",
                                    "vector_column": "emb", "dimension": str(DIM), "distance": "Dot",
                                    "collection": "notes"}})
    for i in range(200):
        db.execute("INSERT INTO notes VALUES (%s, %s, %s)", (f"key-{i}", f"b{i}", vec(i + 1)))
    d.cli("apply")
    d.start()
    wait_until(lambda: outbox_counts(db)[0] == 0 and len(points_by_id(qdrant, "notes")) == 200, what="synced")
    pid = {pt["payload"]["k"]: pt["id"] for pt in qdrant.points("notes")}
    for i in range(0, 200, 20):
        qdrant.corrupt("notes", pid[f"key-{i}"], delete_keys=["_pk"])
    qdrant.upsert("notes", [{"id": str(uuid.uuid4()), "vector": vec(3), "payload": {}} for _ in range(5)])
    stop = threading.Event()
    errors = []

    def writer(seed):
        try:
            with psycopg.connect(dbname=pgdb, autocommit=True) as c:
                k = 0
                while not stop.is_set():
                    k += 1
                    i = (seed * 7919 + k * 104729) % 300
                    c.execute("INSERT INTO notes VALUES (%s, %s, %s) ON CONFLICT (k) DO UPDATE"
                              " SET body = excluded.body, emb = excluded.emb", (f"key-{i}", f"w{seed}-{k}", vec(i, k)))
                    if k % 5 == 0:
                        c.execute("DELETE FROM notes WHERE k = %s", (f"key-{(i * 31) % 300}",))
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(s,)) for s in range(2)]
    for t in threads:
        t.start()
    try:
        for _ in range(3):
            r = d.cli("reconcile", "--fix", check=False)
            assert r.returncode in (0, 3), r.stdout + r.stderr
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors, errors
    d.cli("reconcile", "--fix", check=False)  # the last of the planted drift, now without writers

    def state():
        rows = {k: (b, [float(x) for x in e]) for k, b, e in db.execute("SELECT k, body, emb FROM notes")}
        pts = {p["payload"].get("k"): (p["payload"].get("body"), p["vector"]) for p in points_by_id(qdrant, "notes").values()}
        return rows, pts

    def diff():
        rows, pts = state()
        return {k: (rows.get(k), pts.get(k)) for k in set(rows) | set(pts) if rows.get(k) != pts.get(k)}
    wait_until(lambda: outbox_counts(db)[0] == 0 and not diff(), timeout=60, what="Qdrant equal to PostgreSQL",
               explain=lambda: repr(diff()))
    r = d.cli("reconcile")
    assert drift(r.stdout) == (0, 0, 0, 0), r.stdout


def test_agrees_with_itself_under_any_reader_session(make_daemon, db, qdrant):
    """The rows reconcile reads are turned into text under pinned settings: a synced table with
    timestamptz, double precision and interval columns is in sync whatever PGTZ, DateStyle or
    extra_float_digits the reader's environment sets."""
    db.execute("CREATE TABLE ev (id int PRIMARY KEY, at timestamptz, x double precision, d interval, emb real[])")
    d = make_daemon({"rule.ev": {"table": "public.ev", "key": "id", "vector_column": "emb",
                                 "dimension": str(DIM), "distance": "Dot", "collection": "ev"}})
    for i in range(1, 6):
        db.execute("INSERT INTO ev VALUES (%s, '2025-01-01 12:00:00+00'::timestamptz + %s * interval '7 hours',"
                   " %s, %s * interval '90 minutes', %s)", (i, i, 1 / 3 + i, i, [0.1 * i, 1 / 3, 2.0, 1e-7]))
    d.cli("apply")
    p = d.start()
    wait_until(lambda: outbox_counts(db)[0] == 0 and len(points_by_id(qdrant, "ev")) == 5, what="ev synced")
    d.stop(p)
    for tz, opts in (("UTC", ""), ("Asia/Kolkata", "-c extra_float_digits=0"),
                     ("America/Los_Angeles", "-c DateStyle=SQL,DMY -c IntervalStyle=postgres_verbose")):
        r = d.cli("reconcile", env=dict(d.env, PGTZ=tz, PGOPTIONS=opts))
        assert drift(r.stdout) == (0, 0, 0, 0) and "5 point(s), 5 row(s)" in r.stdout, (tz, r.stdout)

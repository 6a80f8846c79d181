"""reconcile (missing / orphaned / stale points, --fix through the outbox, paging) and backfill
(chunks, --where, concurrent updates) against a real PostgreSQL and the Qdrant test server."""
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

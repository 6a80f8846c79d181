"""The `docs` table, rule and comparison helpers shared by test_sync.py and test_reconcile.py:
a vector_column rule with a filter, and "is Qdrant equal to what the rule selects" checks."""
import pytest

from conftest import outbox_counts, points_by_id

DIM = 4


def rule(**kw):
    r = {"table": "public.docs", "key": "id", "columns": "id, title, n", "vector_column": "emb",
         "dimension": str(DIM), "distance": "Dot", "collection": "docs", "filter": "published"}
    r.update(kw)
    return r


@pytest.fixture
def docs(db):
    db.execute("CREATE TABLE docs (id bigint PRIMARY KEY, title text, n int NOT NULL DEFAULT 0,"
               " emb real[], published boolean NOT NULL DEFAULT true)")
    return db


def vec(i, n=0):
    return [float(i % 7), float(n % 5), 1.0, float(i % 3)]


def expected(db):
    rows = db.execute("SELECT id, title, n, emb FROM docs WHERE published AND emb IS NOT NULL").fetchall()
    return {r[0]: ({"id": r[0], "title": r[1], "n": r[2]}, [float(x) for x in r[3]]) for r in rows}


def actual(qdrant, coll="docs"):
    return {pid: (p["payload"], [float(x) for x in p["vector"]]) for pid, p in points_by_id(qdrant, coll).items()}


def in_sync(db, qdrant):
    return outbox_counts(db)[0] == 0 and expected(db) == actual(qdrant)

"""Capture side (no daemon): `init`, `apply`, the generated triggers and their events."""
import json

import psycopg
import pytest

from conftest import ROOT, outbox_counts


def events(db):
    return db.execute("SELECT op, row_key, payload, event_type, routing_key FROM sync_outbox ORDER BY id").fetchall()


def rule(**kw):
    r = {"table": "public.docs", "key": "id", "vector_column": "emb", "dimension": "3",
         "collection": "docs"}
    r.update(kw)
    return r


@pytest.fixture
def docs(db):
    db.execute("CREATE TABLE docs (id bigint PRIMARY KEY, title text, body text, emb real[],"
               " published boolean NOT NULL DEFAULT true, meta jsonb)")
    return db


def test_init_is_idempotent(make_daemon, db):
    d = make_daemon({"rule.docs": rule()})
    assert "installed" in d.cli("init").stdout
    assert "already up to date" in d.cli("init").stdout
    v = db.execute("SELECT value FROM sync_outbox_meta WHERE key = 'schema_version'").fetchone()[0]
    assert v == str(len(list((ROOT / "sql" / "migrations").glob("*.sql"))))  # one per migration


def test_apply_backfills_once_and_dry_run_changes_nothing(make_daemon, docs, qdrant):
    docs.execute("INSERT INTO docs (id, title, emb, published) VALUES (1, 'a', '{1,2,3}', true),"
                 " (2, 'b', '{1,0,0}', false), (3, 'c', '{0,1,0}', true)")
    d = make_daemon({"rule.docs": rule(filter="published")})
    dry = d.cli("apply", "--dry-run").stdout
    assert 'CREATE OR REPLACE FUNCTION "public"."p2q_capture_docs"()' in dry
    assert "INSERT INTO" in dry
    with pytest.raises(psycopg.errors.UndefinedTable):
        docs.execute("SELECT 1 FROM sync_outbox")
    out = d.cli("apply").stdout
    assert "2 existing row(s) enqueued" in out
    assert sorted(json.dumps(e[1]) for e in events(docs)) == ['{"id": 1}', '{"id": 3}']
    assert "unchanged" in d.cli("apply").stdout  # applying twice changes nothing
    assert outbox_counts(docs) == (2, 0)
    assert "docs" in qdrant.call("GET", "/collections")[1]["result"]["collections"][0]["name"]
    # the source table got no new column
    cols = [r[0] for r in docs.execute("SELECT column_name FROM information_schema.columns"
                                       " WHERE table_name = 'docs' ORDER BY ordinal_position")]
    assert cols == ["id", "title", "body", "emb", "published", "meta"]


def test_apply_reinstalls_after_table_recreated(make_daemon, docs):
    d = make_daemon({"rule.docs": rule()})
    d.cli("apply")
    docs.execute("DROP TABLE docs")
    docs.execute("CREATE TABLE docs (id bigint PRIMARY KEY, title text, body text, emb real[],"
                 " published boolean NOT NULL DEFAULT true, meta jsonb)")
    assert "trigger installed" in d.cli("apply").stdout  # not "unchanged": the trigger was gone
    docs.execute("INSERT INTO docs (id, title) VALUES (1, 'a')")
    assert [e[0] for e in events(docs)] == ["upsert"]


def test_trigger_semantics(make_daemon, docs):
    d = make_daemon({"rule.docs": rule(columns="id, title", watch="title", filter="published")})
    d.cli("apply")
    docs.execute("INSERT INTO docs (id, title, body, emb) VALUES (1, 'a', 'x', '{1,2,3}')")
    docs.execute("UPDATE docs SET body = 'y' WHERE id = 1")            # unwatched: nothing
    docs.execute("UPDATE docs SET title = 'b' WHERE id = 1")           # watched: upsert
    docs.execute("UPDATE docs SET published = false WHERE id = 1")     # leaves the filter: delete
    docs.execute("UPDATE docs SET title = 'c' WHERE id = 1")           # outside the filter: nothing
    docs.execute("UPDATE docs SET published = true WHERE id = 1")      # back in: upsert
    docs.execute("UPDATE docs SET id = 2 WHERE id = 1")                # key change: delete 1, upsert 2
    docs.execute("DELETE FROM docs WHERE id = 2")                      # delete
    docs.execute("INSERT INTO docs (id, title, published) VALUES (9, 'z', false)")  # filtered out
    ev = [(op, key["id"], payload) for op, key, payload, _, _ in events(docs)]
    assert [(op, k) for op, k, _ in ev] == [
        ("upsert", 1), ("upsert", 1), ("delete", 1), ("upsert", 1), ("delete", 1), ("upsert", 2),
        ("delete", 2)]
    # the snapshot holds the captured columns plus the vector column; deletes carry none
    assert ev[0][2] == {"id": 1, "title": "a", "emb": [1, 2, 3]}
    assert ev[1][2]["title"] == "b"
    assert ev[2][2] is None


def test_truncate_becomes_deletes(make_daemon, docs):
    docs.execute("INSERT INTO docs (id, title, published) VALUES (1, 'a', true), (2, 'b', true),"
                 " (3, 'c', false)")
    d = make_daemon({"rule.docs": rule(filter="published")})
    d.cli("apply")
    docs.execute("DELETE FROM sync_outbox")
    docs.execute("TRUNCATE docs")
    assert sorted((op, k["id"]) for op, k, *_ in events(docs)) == [("delete", 1), ("delete", 2)]


def test_truncate_ignored_when_configured(make_daemon, docs):
    docs.execute("INSERT INTO docs (id, title) VALUES (1, 'a')")
    d = make_daemon({"rule.docs": rule(on_truncate="ignore")})
    d.cli("apply")
    docs.execute("DELETE FROM sync_outbox")
    docs.execute("TRUNCATE docs")
    assert events(docs) == []


def test_routing_key_and_event_type(make_daemon, docs):
    d = make_daemon({"rule.docs": rule(event_type="doc_changes", routing_key="'tenant-' || (id % 2)")})
    d.cli("apply")
    docs.execute("INSERT INTO docs (id, title) VALUES (1, 'a'), (2, 'b')")
    assert [(e[3], e[4]) for e in events(docs)] == [("doc_changes", "tenant-1"), ("doc_changes", "tenant-0")]


def test_notify_once_per_transaction(make_daemon, docs, pgdb):
    d = make_daemon({"rule.docs": rule()})
    d.cli("apply")
    with psycopg.connect(dbname=pgdb, autocommit=True) as listener:
        listener.execute("LISTEN sync_outbox_insert")
        with docs.transaction():
            for i in range(5):
                docs.execute("INSERT INTO docs (id, title) VALUES (%s, 'x')", (i,))
        got = list(listener.notifies(timeout=1.0, stop_after=10))
    assert [n.payload for n in got] == ["docs"]


def test_hostile_identifiers_are_quoted(make_daemon, db):
    evil_col = 'ti"tle; DROP TABLE victim; --'
    db.execute("CREATE TABLE victim (x int)")
    db.execute(f'CREATE TABLE "we""ird" (id int PRIMARY KEY, "{evil_col.replace(chr(34), chr(34) * 2)}" text, emb real[])')
    d = make_daemon({"rule.w": rule(table='public."we""ird"', columns=f"id, {evil_col}")})
    d.cli("apply")
    db.execute('INSERT INTO "we""ird" VALUES (1, \'hello\', \'{1,2,3}\')')
    payload = db.execute("SELECT payload FROM sync_outbox").fetchone()[0]
    assert payload[evil_col] == "hello"
    assert db.execute("SELECT count(*) FROM victim").fetchone()[0] == 0  # still there


def test_bad_filter_is_refused_and_nothing_installed(make_daemon, docs):
    d = make_daemon({"rule.docs": rule(filter="true; DROP TABLE docs")})
    r = d.cli("apply", check=False)
    assert r.returncode == 1
    assert "rule docs" in r.stderr
    assert docs.execute("SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'p2q_%'").fetchone()[0] == 0
    d2 = make_daemon({"rule.docs": rule(filter="no_such_column > 1")})
    r = d2.cli("apply", check=False)
    assert r.returncode == 1 and "no_such_column" in r.stderr


def test_removed_rule_triggers_are_dropped(make_daemon, docs, tmp_path):
    d = make_daemon({"rule.docs": rule()})
    d.cli("apply")
    docs.execute("CREATE TABLE other (id int PRIMARY KEY, emb real[])")
    d.path.write_text(d.path.read_text().replace("[rule.docs]", "[rule.other]").replace("public.docs", "public.other"))
    out = d.cli("apply").stdout
    assert "rule docs: no longer configured" in out
    names = [r[0] for r in docs.execute("SELECT tgname FROM pg_trigger WHERE tgname LIKE 'p2q_%' ORDER BY 1")]
    assert names == ["p2q_other", "p2q_other_truncate"]


def test_collection_mismatch_is_an_error(make_daemon, docs, qdrant):
    qdrant.create_collection("docs", size=5)
    d = make_daemon({"rule.docs": rule()})
    r = d.cli("apply", check=False)
    assert r.returncode == 1
    assert "docs" in r.stderr and "5" in r.stderr and "3" in r.stderr

"""The statement-level INSERT capture (src/capture_stmt.c, issue 11): a multi-row INSERT or COPY
writes its events with one INSERT ... SELECT from the statement's transition table. These tests
hold it to the row trigger's events byte for byte, on every path (set, one row, per-row fallback
after DDL, born dead, hostile writer sessions), and check where `apply` keeps the row trigger
(partitioned tables, partitions, other AFTER INSERT triggers, filters and routing keys). No daemon:
the events in sync_outbox are the contract."""
import time

import psycopg
import pytest

from conftest import wait_until

COLS = ("event_type, routing_key, rule, source_table, row_key::text, op, payload::text, vec::text,"
        " max_attempts, last_error")


def rule(**kw):
    r = {"table": "public.docs", "key": "id", "vector_column": "emb", "dimension": "3",
         "collection": "docs", "columns": "id, title, at"}
    r.update(kw)
    return {k: v for k, v in r.items() if v is not None}


@pytest.fixture
def docs(db):
    # no primary key: a NULL key must be writable (its events are born dead)
    db.execute("CREATE TABLE docs (id bigint, title text, emb real[], at timestamptz, body text)")
    return db


def take_events(db):
    rows = db.execute(f"SELECT {COLS} FROM sync_outbox ORDER BY id").fetchall()
    db.execute("DELETE FROM sync_outbox")
    return rows


def triggers(db, table="docs"):
    return db.execute("SELECT tgname, (tgtype & 4) <> 0, (tgtype & 1) <> 0 FROM pg_trigger"
                      " WHERE tgrelid = %s::regclass AND tgname LIKE 'p2q%%' ORDER BY 1", (table,)).fetchall()


STATEMENT = [("p2q_docs", False, True), ("p2q_docs_delete", False, False), ("p2q_docs_insert", True, False),
             ("p2q_docs_truncate", False, False)]
ROW = [("p2q_docs", True, True), ("p2q_docs_truncate", False, False)]
ROWS = ("(1, 'a', '{1,2,3}', '2025-01-01 12:00Z', 'x'), (2, 'b', NULL, NULL, NULL),"
        " (NULL, 'c', '{0.1,0.2,0.3}', '2025-06-01 00:00Z', 'z'), (3, 'd', '{1e-45,3.4e38,-0}', NULL, '')")


def delete_all_ways(db):
    """The four rows deleted by one DELETE, and by one-row DELETEs (by ctid: the NULL key's row
    too): their events, per way (the rows inserted again in between)."""
    out = {}
    db.execute("DELETE FROM docs")
    out["multi"] = take_events(db)
    db.execute(f"INSERT INTO docs (id, title, emb, at, body) VALUES {ROWS}")
    take_events(db)
    for (ctid,) in db.execute("SELECT ctid FROM docs ORDER BY ctid").fetchall():
        db.execute("DELETE FROM docs WHERE ctid = %s", (ctid,))
    out["single"] = take_events(db)
    return out


def insert_all_ways(db):
    """The same four rows by a multi-row INSERT, one-row INSERTs, COPY (and then deleted: see
    delete_all_ways): their events, per way."""
    out = {}
    db.execute(f"INSERT INTO docs (id, title, emb, at, body) VALUES {ROWS}")
    out["multi"] = take_events(db)
    db.execute("TRUNCATE docs")
    take_events(db)
    for v in ROWS.split("), ("):
        db.execute(f"INSERT INTO docs (id, title, emb, at, body) VALUES ({v.strip('()')})")
    out["single"] = take_events(db)
    db.execute("TRUNCATE docs")
    take_events(db)
    with db.cursor().copy("COPY docs (id, title, emb, at, body) FROM STDIN") as cp:
        for row in ((1, "a", "{1,2,3}", "2025-01-01 12:00Z", "x"), (2, "b", None, None, None),
                    (None, "c", "{0.1,0.2,0.3}", "2025-06-01 00:00Z", "z"), (3, "d", "{1e-45,3.4e38,-0}", None, "")):
            cp.write_row(row)
    out["copy"] = take_events(db)
    deleted = delete_all_ways(db)
    out["delete"], out["delete-single"] = deleted["multi"], deleted["single"]
    return out


def test_statement_capture_writes_the_row_triggers_events(make_daemon, docs):
    d = make_daemon({"rule.docs": rule()})
    d.cli("apply")
    assert triggers(docs) == STATEMENT
    stmt = insert_all_ways(docs)
    assert len(stmt["multi"]) == 4 and stmt["multi"] == stmt["single"] == stmt["copy"]
    assert len(stmt["delete"]) == 4 and stmt["delete"] == stmt["delete-single"]
    assert [e[5] for e in stmt["delete"]] == ["delete"] * 4
    born_dead = [e for e in stmt["multi"] if e[8] == 0]
    assert len(born_dead) == 1 and "a key column (id) is NULL" in born_dead[0][9]
    assert stmt["multi"][0][7] == "{1,2,3}"  # the vector sent unprinted (migration 008)

    # another AFTER INSERT trigger: apply moves INSERTs back to the row trigger (not "unchanged")
    docs.execute("CREATE FUNCTION noop() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NULL; END'")
    docs.execute("CREATE TRIGGER z_noop AFTER INSERT ON docs FOR EACH ROW EXECUTE FUNCTION noop()")
    assert "unchanged" not in d.cli("apply").stdout  # (and an AFTER DELETE trigger: the next test)
    assert triggers(docs) == ROW
    row = insert_all_ways(docs)
    assert row == stmt
    # gone again: the next apply leaves the row trigger (correct, only slower) ...
    docs.execute("DROP TRIGGER z_noop ON docs")
    assert "unchanged" in d.cli("apply").stdout
    assert triggers(docs) == ROW


def test_hostile_writer_session_changes_no_event(make_daemon, docs, pgdb):
    d = make_daemon({"rule.docs": rule()})
    d.cli("apply")
    docs.execute(f"INSERT INTO docs (id, title, emb, at, body) VALUES {ROWS}")
    plain = take_events(docs)
    docs.execute("TRUNCATE docs")
    take_events(docs)
    with psycopg.connect(dbname=pgdb, autocommit=True) as w:
        for s in ("TimeZone = 'America/Los_Angeles'", "DateStyle = 'SQL, DMY'", "extra_float_digits = -15",
                  "IntervalStyle = 'postgres_verbose'", "search_path = pg_temp, public", "bytea_output = 'escape'",
                  "plpgsql.extra_errors = 'all'", "plpgsql.variable_conflict = 'use_column'", "work_mem = '64kB'"):
            w.execute(f"SET {s}")
        w.execute(f"INSERT INTO public.docs (id, title, emb, at, body) VALUES {ROWS}")
    assert take_events(docs) == plain


def test_ddl_since_apply_falls_back_row_by_row(make_daemon, docs):
    """A column gone since `apply`: the set statement fails (its plan names the column), the rows go
    through the row trigger's own INSERT path one by one: the same events as one-row INSERTs."""
    d = make_daemon({"rule.docs": rule()})
    d.cli("apply")
    docs.execute("SET pg2qdrant.allow_ddl = on")
    docs.execute("ALTER TABLE docs DROP COLUMN title")
    docs.execute("INSERT INTO docs (id, emb, at) VALUES (1, '{1,2,3}', NULL), (2, '{4,5,6}', '2025-01-01Z')")
    multi = take_events(docs)
    docs.execute("TRUNCATE docs")
    take_events(docs)
    docs.execute("INSERT INTO docs (id, emb, at) VALUES (1, '{1,2,3}', NULL)")
    docs.execute("INSERT INTO docs (id, emb, at) VALUES (2, '{4,5,6}', '2025-01-01Z')")
    single = take_events(docs)
    assert len(multi) == 2 and multi == single
    assert all(e[8] == 10 and e[9] is None for e in multi)  # title is only a payload column: not dead
    assert all('"title"' not in e[6] for e in multi)
    # the vector column gone: every upsert born dead with the reason, on both paths
    docs.execute("TRUNCATE docs")
    take_events(docs)
    docs.execute("ALTER TABLE docs DROP COLUMN emb")
    docs.execute("INSERT INTO docs (id, at) VALUES (1, NULL), (2, NULL)")
    multi = take_events(docs)
    docs.execute("TRUNCATE docs")
    take_events(docs)
    docs.execute("INSERT INTO docs (id, at) VALUES (1, NULL)")
    docs.execute("INSERT INTO docs (id, at) VALUES (2, NULL)")
    assert take_events(docs) == multi
    assert [(e[8], "vector column (emb) is no longer in" in e[9]) for e in multi] == [(0, True), (0, True)]


@pytest.mark.parametrize("kw", [
    {"filter": "body IS DISTINCT FROM 'z'"},
    {"routing_key": "coalesce(title, 'none')"},
    {"filter": "id > 1", "routing_key": "upper(title)"},
    {"routing_key": "(10 / (id - 2))::text"},  # raises for id 2: that row's event is born dead
    {"columns": None},  # the whole row as the snapshot (to_json of the row, the vector printed)
], ids=["filter", "routing", "both", "routing-raises", "whole-row"])
def test_filter_and_routing_key_events_equal_the_row_triggers(make_daemon, docs, kw):
    d = make_daemon({"rule.docs": rule(**kw)})
    d.cli("apply")
    assert triggers(docs) == STATEMENT
    stmt = insert_all_ways(docs)
    assert stmt["multi"] == stmt["single"] == stmt["copy"]
    assert stmt["delete"] == stmt["delete-single"]
    docs.execute("CREATE FUNCTION noop() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NULL; END'")
    docs.execute("CREATE TRIGGER z_noop AFTER INSERT ON docs FOR EACH ROW EXECUTE FUNCTION noop()")
    d.cli("apply")
    assert triggers(docs) == ROW
    docs.execute("TRUNCATE docs")
    take_events(docs)
    assert insert_all_ways(docs) == stmt
    if "10 / (id - 2)" in kw.get("routing_key", ""):
        dead = [e for e in stmt["multi"] if e[8] == 0]
        assert [e[4] for e in dead] == ['{"id": 2}', '{}'] or [e[4] for e in dead] == ['{"id": 2}', '{"id": null}']
        assert "filter or routing_key failed: division by zero" in dead[0][9]


@pytest.mark.parametrize("kw", [
    {"filter": "body IS DISTINCT FROM 'z'", "routing_key": "coalesce(title, 'none')"},
    {"routing_key": "(10 / (id - 2))::text"},
], ids=["filter-routing", "routing-raises"])
def test_filter_and_routing_key_after_ddl_fall_back_row_by_row(make_daemon, docs, kw):
    """The per-row fallback evaluates them over the row typed through its json: the same events
    as the one-row path, which reads the row from the transition table itself."""
    d = make_daemon({"rule.docs": rule(**kw)})
    d.cli("apply")
    docs.execute("SET pg2qdrant.allow_ddl = on")
    docs.execute("ALTER TABLE docs DROP COLUMN at")  # named by the snapshot: the set plan fails
    values = [v.strip("()") for v in ROWS.split("), (")]
    values = [v.replace(", '2025-01-01 12:00Z'", "").replace(", '2025-06-01 00:00Z'", "") for v in values]
    values = [v.replace(", NULL, NULL", ", NULL").replace("}', NULL, ''", "}', ''") for v in values]
    docs.execute("INSERT INTO docs (id, title, emb, body) VALUES " + ", ".join(f"({v})" for v in values))
    multi = take_events(docs)
    docs.execute("TRUNCATE docs")
    take_events(docs)
    for v in values:
        docs.execute(f"INSERT INTO docs (id, title, emb, body) VALUES ({v})")
    assert take_events(docs) == multi
    assert len(multi) >= 3


def test_tables_that_keep_the_row_trigger(make_daemon, db):
    """Partitioned tables (a partition's statement triggers do not fire for rows routed through
    the parent, nor the parent's for rows inserted into a partition) keep INSERTs on the row
    trigger; their multi-row INSERTs are captured whole, as are a filtered rule's."""
    db.execute("CREATE TABLE docs (id bigint, title text, emb real[], at timestamptz, body text)"
               " PARTITION BY RANGE (id)")
    db.execute("CREATE TABLE docs_1 PARTITION OF docs FOR VALUES FROM (0) TO (100)")
    db.execute("CREATE TABLE docs_2 PARTITION OF docs FOR VALUES FROM (100) TO (200)")
    db.execute("CREATE TABLE flt (id bigint, title text, emb real[], at timestamptz, body text)")
    d = make_daemon({"rule.docs": rule(), "rule.flt": rule(table="public.flt", collection="flt", filter="id > 1")})
    d.cli("apply")
    assert [t for t in triggers(db) if t[0] != "p2q_docs_truncate"] == [("p2q_docs", True, True)]
    assert [t[0] for t in triggers(db, "flt")] == ["p2q_flt", "p2q_flt_delete", "p2q_flt_insert", "p2q_flt_truncate"]
    db.execute("INSERT INTO docs (id, emb) VALUES (1, '{1,2,3}'), (150, '{1,2,3}')")
    db.execute("INSERT INTO docs_2 (id, emb) VALUES (151, '{1,2,3}'), (152, '{1,2,3}')")
    db.execute("INSERT INTO flt (id, emb) VALUES (1, '{1,2,3}'), (2, '{1,2,3}'), (3, '{1,2,3}')")
    ev = take_events(db)
    assert sorted((e[2], e[4]) for e in ev) == sorted([
        ("docs", '{"id": 1}'), ("docs", '{"id": 150}'), ("docs", '{"id": 151}'), ("docs", '{"id": 152}'),
        ("flt", '{"id": 2}'), ("flt", '{"id": 3}')])


def test_a_trigger_that_changes_inserted_rows_never_leaves_the_older_snapshot_last(make_daemon, docs):
    """An AFTER INSERT trigger that updates the row it fires for runs before any statement trigger:
    with the statement capture its UPDATE's event would come first and the inserted image last.
    `apply` keeps such a table on the row trigger; one created after `apply` is reported as drift
    and the next `apply` moves the table back."""
    docs.execute("CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS"
                 " $$BEGIN UPDATE docs SET title = 'touched' WHERE id = NEW.id; RETURN NULL; END$$")
    d = make_daemon({"rule.docs": rule()})
    d.cli("apply")
    assert triggers(docs) == STATEMENT
    docs.execute("CREATE TRIGGER zz_touch AFTER INSERT ON docs FOR EACH ROW EXECUTE FUNCTION touch()")
    drift = docs.execute("SELECT item, used_as, breaks FROM p2q_drift_docs()").fetchall()
    assert drift == [("zz_touch", "after write trigger", False)]
    assert "unchanged" not in d.cli("apply").stdout
    assert triggers(docs) == ROW
    assert docs.execute("SELECT count(*) FROM p2q_drift_docs()").fetchone()[0] == 0
    take_events(docs)
    docs.execute("INSERT INTO docs (id, title, emb) VALUES (1, 'a', '{1,2,3}'), (2, 'b', '{1,2,3}')")
    last = {}
    for e in take_events(docs):
        last[e[4]] = e[6]
    assert all('"title" : "touched"' in p for p in last.values()), last


def test_statement_trigger_gone_is_drift_that_breaks(make_daemon, docs):
    d = make_daemon({"rule.docs": rule()})
    d.cli("apply")
    docs.execute("DROP TRIGGER p2q_docs_insert ON docs")
    assert docs.execute("SELECT item, used_as, breaks FROM p2q_drift_docs()").fetchall() == [
        ("p2q_docs_insert", "trigger", True)]
    assert "unchanged" not in d.cli("apply").stdout
    assert triggers(docs) == STATEMENT


def test_temp_file_limit_keeps_the_row_trigger(make_daemon, docs, pgdb):
    """A transition table beyond work_mem spills to temporary files: under a temp_file_limit a big
    INSERT would fail because of the statement capture. Any such setting of this database or of a
    role keeps (or, set after `apply`, moves) INSERTs on the row trigger, whose queue stays in memory."""
    d = make_daemon({"rule.docs": rule()})
    d.cli("apply")
    assert triggers(docs) == STATEMENT
    docs.execute(f'ALTER DATABASE "{pgdb}" SET temp_file_limit = \'1MB\'')
    assert docs.execute("SELECT item, used_as, breaks FROM p2q_drift_docs()").fetchall() == [
        ("temp_file_limit", "setting", False)]
    assert "unchanged" not in d.cli("apply").stdout
    assert triggers(docs) == ROW
    with psycopg.connect(dbname=pgdb, autocommit=True) as w:  # the database's setting: 1MB
        w.execute("SET work_mem = '64kB'")
        w.execute("INSERT INTO docs (id, emb) SELECT i, array_fill(0.5::real, ARRAY[384])"
                  " FROM generate_series(1, 2000) i")  # ~3 MB of rows
    assert docs.execute("SELECT count(*) FROM sync_outbox").fetchone()[0] == 2000


def test_table_attached_as_a_partition_is_drift_that_breaks(make_daemon, docs):
    """Rows routed through a parent fire the partition's row triggers but not its statement
    triggers: once the table is attached as a partition its INSERTs through the parent would be
    missed. Drift says so (breaking: /readyz 503), and `apply` moves INSERTs to the row trigger."""
    d = make_daemon({"rule.docs": rule()})
    d.cli("apply")
    docs.execute("CREATE TABLE parent (id bigint, title text, emb real[], at timestamptz, body text)"
                 " PARTITION BY RANGE (id)")
    docs.execute("SET pg2qdrant.allow_ddl = on")
    docs.execute("ALTER TABLE parent ATTACH PARTITION docs FOR VALUES FROM (0) TO (100)")
    assert docs.execute("SELECT item, used_as, breaks FROM p2q_drift_docs()").fetchall() == [
        ("docs", "partition", True)]
    assert "unchanged" not in d.cli("apply").stdout
    assert triggers(docs) == ROW
    take_events(docs)
    docs.execute("INSERT INTO parent (id, emb) VALUES (1, '{1,2,3}'), (2, '{1,2,3}')")
    assert [e[4] for e in take_events(docs)] == ['{"id": 1}', '{"id": 2}']


def test_truncate_with_a_routing_key_that_raises_is_captured(make_daemon, docs):
    """Found by the tests above: the TRUNCATE trigger's by-name statement still evaluated the
    routing key, so a key that raised for one row failed the writer's TRUNCATE. Its last resort
    now writes the delete events without it."""
    d = make_daemon({"rule.docs": rule(routing_key="(10 / (id - 2))::text")})
    d.cli("apply")
    docs.execute("INSERT INTO docs (id, emb) VALUES (1, '{1,2,3}'), (2, '{1,2,3}'), (3, '{1,2,3}')")
    take_events(docs)
    docs.execute("TRUNCATE docs")
    ev = take_events(docs)
    assert sorted((e[5], e[4], e[1]) for e in ev) == [
        ("delete", '{"id": 1}', None), ("delete", '{"id": 2}', None), ("delete", '{"id": 3}', None)]


def test_a_trigger_that_writes_a_deleted_key_again_keeps_deletes_on_the_row_trigger(make_daemon, docs):
    """An AFTER DELETE trigger that inserts the row again runs before any statement trigger: with
    the statement capture the delete would come last and remove a point whose row exists."""
    docs.execute("CREATE FUNCTION again() RETURNS trigger LANGUAGE plpgsql AS"
                 " $$BEGIN INSERT INTO docs (id, title, emb) VALUES (OLD.id, 'again', OLD.emb); RETURN NULL; END$$")
    d = make_daemon({"rule.docs": rule()})
    d.cli("apply")
    docs.execute("CREATE TRIGGER zz_again AFTER DELETE ON docs FOR EACH ROW WHEN (OLD.title <> 'again')"
                 " EXECUTE FUNCTION again()")
    assert docs.execute("SELECT item, used_as, breaks FROM p2q_drift_docs()").fetchall() == [
        ("zz_again", "after write trigger", False)]
    d.cli("apply")
    assert triggers(docs) == ROW
    docs.execute("INSERT INTO docs (id, title, emb) VALUES (1, 'a', '{1,2,3}'), (2, 'b', '{1,2,3}')")
    take_events(docs)
    docs.execute("DELETE FROM docs WHERE title <> 'again'")
    last = {}
    for e in take_events(docs):
        last[e[4]] = e[5]
    assert last == {'{"id": 1}': "upsert", '{"id": 2}': "upsert"}
    assert docs.execute("SELECT count(*) FROM docs").fetchone()[0] == 2


def test_cascaded_deletes_are_captured(make_daemon, docs):
    """ON DELETE CASCADE deletes the rows by a statement of its own, which fires the statement
    trigger with the cascaded rows."""
    docs.execute("CREATE TABLE parent (id bigint PRIMARY KEY)")
    docs.execute("INSERT INTO parent VALUES (1), (2)")
    docs.execute("ALTER TABLE docs ADD COLUMN pid bigint REFERENCES parent ON DELETE CASCADE")
    d = make_daemon({"rule.docs": rule()})
    d.cli("apply")
    assert triggers(docs) == STATEMENT
    docs.execute("INSERT INTO docs (id, emb, pid) VALUES (1, '{1,2,3}', 1), (2, '{1,2,3}', 1), (3, '{1,2,3}', 2)")
    take_events(docs)
    docs.execute("DELETE FROM parent")
    assert sorted((e[5], e[4]) for e in take_events(docs)) == [
        ("delete", '{"id": 1}'), ("delete", '{"id": 2}'), ("delete", '{"id": 3}')]


def traffic_daemon(make_daemon, db):
    """The traffic tests' table (a counter n beside the rule's columns) on the statement capture,
    the daemon started with its shipped defaults: (daemon, process)."""
    import docs_table
    db.execute("CREATE TABLE docs (id bigint PRIMARY KEY, title text, n int NOT NULL DEFAULT 0,"
               " emb real[], published boolean NOT NULL DEFAULT true)")
    d = make_daemon({"rule.docs": docs_table.rule()})
    d.cli("apply")
    assert triggers(db) == STATEMENT
    return d, d.start()


def ran_enough(counts, key, n, least=4.0, most=120.0):
    """A `during` for run_writers: at least `least` seconds of traffic and until counts[key] > n
    (at most `most` seconds). The traffic's length follows progress, not the clock: under ASan on a
    loaded CI machine 4 s gave 30 statements where the test needs more than 50 (ci, stop 31)."""
    def during():
        start = time.monotonic()
        time.sleep(least)
        while counts[key] <= n and time.monotonic() - start < most:
            time.sleep(0.1)
    return during


def run_writers(writer, n, stop, during):
    """n threads of writer(seed) while during() runs, then stop set and the threads joined."""
    import threading
    threads = [threading.Thread(target=writer, args=(s,)) for s in range(n)]
    for t in threads:
        t.start()
    during()
    stop.set()
    for t in threads:
        t.join(timeout=30)


def test_concurrent_multi_row_writers_end_in_sync(make_daemon, db, pgdb, qdrant):
    """Writers racing on a few hot keys with multi-row upserts (inserted rows captured by the
    statement trigger, updated ones by the row trigger, in one statement), multi-row DELETEs and
    INSERT ... SELECTs, some in one transaction, while the daemon runs with its shipped defaults:
    Qdrant ends equal to what the rule selects (order per row, nothing lost)."""
    import random
    import threading

    import docs_table
    d, p = traffic_daemon(make_daemon, db)
    stop, counts = threading.Event(), {"ok": 0, "err": 0}

    def writer(seed):
        rng = random.Random(seed)
        with psycopg.connect(dbname=pgdb, autocommit=True) as c:
            while not stop.is_set():
                keys = sorted(rng.sample(range(40), rng.randint(2, 12)))
                op = rng.random()
                try:
                    if op < 0.5:
                        c.execute("INSERT INTO docs (id, title, emb, published) SELECT k, 't' || k,"
                                  " ARRAY[k %% 7, 0, 1, k %% 3]::real[], k %% 5 <> 0 FROM unnest(%s::bigint[]) k"
                                  " ON CONFLICT (id) DO UPDATE SET n = docs.n + 1, title = 'u' || (docs.n + 1),"
                                  " emb = ARRAY[docs.id %% 7, (docs.n + 1) %% 5, 1, docs.id %% 3]::real[],"
                                  " published = NOT docs.published OR docs.n %% 3 = 0", (keys,))
                    elif op < 0.8:
                        c.execute("DELETE FROM docs WHERE id = ANY(%s)", (keys,))
                    else:
                        with c.transaction():
                            c.execute("DELETE FROM docs WHERE id = ANY(%s)", (keys[::2],))
                            c.execute("INSERT INTO docs (id, title, emb) SELECT k, 'x', ARRAY[1, 2, 3, 4]::real[]"
                                      " FROM unnest(%s::bigint[]) k ON CONFLICT DO NOTHING", (keys,))
                    counts["ok"] += 1
                except psycopg.errors.DeadlockDetected:
                    counts["err"] += 1

    run_writers(writer, 3, stop, ran_enough(counts, "ok", 60))
    print("statements:", counts)
    assert counts["ok"] > 50, counts
    wait_until(lambda: docs_table.in_sync(db, qdrant), timeout=60, what="Qdrant in sync with the table",
               explain=lambda: d.log_text(p))
    assert d.stop(p) == 0


def test_ddl_under_multi_row_traffic_fails_no_writer_and_ends_in_sync(make_daemon, db, pgdb, qdrant):
    """Columns the rule does not name added and dropped while writers run multi-row INSERTs and
    DELETEs (the statement functions' plans made again after each change, under the writers'
    locks): no writer's statement fails, and Qdrant ends equal to the table (shipped defaults).
    Columns the rule names, gone: test_ddl_since_apply_falls_back_row_by_row."""
    import random
    import threading

    import docs_table
    d, p = traffic_daemon(make_daemon, db)
    stop, failures, counts = threading.Event(), [], {"ok": 0}

    def writer(seed):
        rng = random.Random(seed)
        with psycopg.connect(dbname=pgdb, autocommit=True) as c:
            while not stop.is_set():
                keys = sorted(rng.sample(range(200), rng.randint(2, 10)))
                try:
                    if rng.random() < 0.6:
                        c.execute("INSERT INTO docs (id, title, emb) SELECT k, 't' || k, ARRAY[k %% 7, 1, 1, 0]::real[]"
                                  " FROM unnest(%s::bigint[]) k ON CONFLICT DO NOTHING", (keys,))
                    else:
                        c.execute("DELETE FROM docs WHERE id = ANY(%s)", (keys,))
                    counts["ok"] += 1
                except psycopg.errors.DeadlockDetected:
                    pass
                except psycopg.Error as e:  # anything else is the capture failing a writer
                    failures.append(str(e))

    def ddl_loop():
        with psycopg.connect(dbname=pgdb, autocommit=True) as ddl:
            ddl.execute("SET pg2qdrant.allow_ddl = on")
            for i in range(6):
                time.sleep(0.3)
                ddl.execute(f"ALTER TABLE docs ADD COLUMN extra{i} int DEFAULT {i}")
                time.sleep(0.3)
                ddl.execute(f"ALTER TABLE docs DROP COLUMN extra{i}")

    def ddl_then_enough():
        ddl_loop()
        ran_enough(counts, "ok", 30, least=0)()

    run_writers(writer, 2, stop, ddl_then_enough)
    assert not failures, failures[:3]
    assert counts["ok"] > 20, counts
    wait_until(lambda: docs_table.in_sync(db, qdrant), timeout=60, what="Qdrant in sync with the table",
               explain=lambda: d.log_text(p))
    assert d.stop(p) == 0

"""Capture edges found by the review (see /work/notes/review.md). The partition TRUNCATE one is an
open defect of the trigger (src/capture.c), marked xfail(strict): the mark must go when fixed.

- TRUNCATE of one partition of a partitioned source table: the rule's BEFORE TRUNCATE trigger is
  a statement trigger on the parent, which PostgreSQL neither clones to partitions nor fires for
  a partition truncated on its own: the rows are gone, no delete event is written, and their
  points stay in Qdrant (README "TRUNCATE is captured").
- A row whose snapshot cannot be built on either path (here an enum whose cast to json raises;
  in practice a value whose JSON text passes 1 GB): the fast path's error sends it to the slow
  path, whose row_to_json ran outside any exception block, so the writer's statement failed
  ("no trigger may fail an application's statement"). Fixed: born dead with the reason.
"""
import pytest

RULE = {"table": "public.docs", "key": "id, region", "vector_column": "emb", "dimension": "3",
        "collection": "docs"}


@pytest.mark.xfail(strict=True, reason="open defect: a partition's TRUNCATE writes no delete events")
def test_truncate_of_one_partition_enqueues_deletes(make_daemon, db):
    db.execute("CREATE TABLE docs (id bigint, region int, title text, emb real[], PRIMARY KEY (id, region))"
               " PARTITION BY LIST (region)")
    db.execute("CREATE TABLE docs_1 PARTITION OF docs FOR VALUES IN (1)")
    db.execute("CREATE TABLE docs_2 PARTITION OF docs FOR VALUES IN (2)")
    make_daemon({"rule.docs": RULE}).cli("apply", "--no-backfill")
    db.execute("INSERT INTO docs VALUES (1, 1, 'a', '{1,2,3}'), (2, 2, 'b', '{1,2,3}'), (3, 2, 'c', '{1,2,3}')")
    db.execute("DELETE FROM sync_outbox")
    db.execute("TRUNCATE docs_2")
    got = db.execute("SELECT op, row_key FROM sync_outbox ORDER BY id").fetchall()
    assert sorted((op, k["id"]) for op, k in got) == [("delete", 2), ("delete", 3)]


def test_snapshot_failing_on_both_paths_never_fails_the_writer(make_daemon, db):
    db.execute("CREATE TYPE fragile AS ENUM ('fine', 'bad')")
    db.execute("CREATE FUNCTION fragile_json(fragile) RETURNS json LANGUAGE plpgsql IMMUTABLE AS"
               " $$ BEGIN IF $1 = 'bad' THEN RAISE EXCEPTION 'cannot serialize %', $1; END IF;"
               " RETURN to_json($1::text); END $$")
    db.execute("CREATE CAST (fragile AS json) WITH FUNCTION fragile_json(fragile)")
    db.execute("CREATE TABLE docs (id bigint, region int, f fragile, emb real[], PRIMARY KEY (id, region))")
    make_daemon({"rule.docs": RULE}).cli("apply", "--no-backfill")
    db.execute("INSERT INTO docs VALUES (1, 1, 'fine', '{1,2,3}')")  # serializable: a live event
    assert db.execute("SELECT max_attempts > 0 FROM sync_outbox").fetchone() == (True,)
    db.execute("INSERT INTO docs VALUES (2, 1, 'bad', '{1,2,3}')")  # the writer must not fail
    got = db.execute("SELECT max_attempts, last_error FROM sync_outbox WHERE row_key->>'id' = '2'").fetchone()
    assert got is not None and got[0] == 0 and "cannot serialize" in got[1]
    db.execute("UPDATE docs SET emb = '{3,2,1}' WHERE id = 2")
    db.execute("DELETE FROM docs WHERE id = 2")
    got = db.execute("SELECT op, row_key, max_attempts, last_error LIKE 'rule docs: the row cannot be captured: %'"
                     " FROM sync_outbox WHERE row_key->>'id' = '2' ORDER BY id").fetchall()
    key = {"id": 2, "region": 1}  # salvaged by reference: the dead letters name the row
    # (a delete needs no snapshot: the fast path writes it live)
    assert got == [("upsert", key, 0, True), ("upsert", key, 0, True), ("delete", key, 10, None)]

-- Migration 012: sync_outbox_row_idx on one bigint, jsonb_hash_extended(row_key, 0), instead of
-- (rule, row_key) (issue 11, the writer's cost). Every event's INSERT descends this index, and
-- each descent compared (rule, jsonb) pairs (every jsonb comparison copies both values out of
-- their short headers): 23.4k instructions per inserted row of a 1,000-row INSERT, the dearest
-- piece of the writer's overhead; on a bigint 9.1k (bench/writer_components_bench.py
-- --instructions; bench/issue11/session10-wr10.md). As the lease table's key (migration 009): the
-- hash orders, never identifies. Its readers (the lease reclaimer's look for an older event of a
-- row, reconcile's) state the hash equality next to rule = and row_key = (sql/functions.sql,
-- src/reconcile_io.c); reads of a whole rule (reindex's catch-up count, reconcile's list of a
-- rule's events) walk the primary key or the table instead. Not a hash index: one bucket holds
-- every event of a row, and each insert walks its overflow chain (a row with 240,000 pending
-- events: 830 us per insert, against 14 us here).
-- Built next to the old one, swapped, then the outbox analyzed (a SHARE lock on sync_outbox
-- meanwhile: writers wait, ~4.5 s per 1,000,000 pending events). Rows are not touched.
-- Idempotent: the swap happens only while the index is not this one yet.
DO $p2q$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_index i
                  WHERE i.indexrelid = pg_catalog.to_regclass(pg_catalog.quote_ident(@SCHEMA_NAME@) || '.sync_outbox_row_idx')
                    AND i.indexprs IS NOT NULL) THEN
    CREATE INDEX sync_outbox_row_idx_012 ON @SCHEMA@.sync_outbox (pg_catalog.jsonb_hash_extended(row_key, 0));
    DROP INDEX IF EXISTS @SCHEMA@.sync_outbox_row_idx;
    ALTER INDEX @SCHEMA@.sync_outbox_row_idx_012 RENAME TO sync_outbox_row_idx;
    ANALYZE @SCHEMA@.sync_outbox;  -- the expression's statistics (none until then: 5,000 rows per key guessed)
  END IF;
END
$p2q$;

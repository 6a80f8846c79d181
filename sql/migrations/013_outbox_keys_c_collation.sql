-- Migration 013: sync_outbox's event_type and routing_key in the "C" collation (issue 11, the
-- writer's cost; bench/issue11/session11-wr11.md). Under any other collation (a database created
-- with en_US.UTF-8, as most are; PostgreSQL 15 treats even C.UTF-8 so) a comparison of two
-- different strings calls strcoll, and every event's insert descends sync_outbox_claim_idx
-- (event_type, id) and, with a routing key, sync_outbox_routing_idx (event_type, routing_key, id):
-- with other event types pending, each descent meets them (1,000-row INSERT, 100,000 events of two
-- other types pending, en_US.UTF-8: 87,818 -> 83,731 instructions per row over the plain INSERT;
-- bench/writer_components_bench.py --instructions --locale en_US.UTF-8 others others+collc). Both
-- columns are only compared with = and ordered by these indexes (ids order everything that
-- matters); `status` lists event types in byte order now. Queries keep working unchanged: the
-- column's collation wins over the default one of parameters and other tables' columns.
-- The heap is not rewritten; the two indexes are rebuilt under an ACCESS EXCLUSIVE lock on
-- sync_outbox (~0.4 s per 100,000 pending events: writers and claims wait). The outbox's NOTIFY
-- trigger of installs older than the capture functions' own NOTIFY names NEW.event_type in its
-- WHEN clause, which forbids the ALTER: dropped first; functions.sql (run after the migrations, in
-- the same transaction) creates it again while such capture functions remain.
-- Idempotent: only while a column is in another collation.
DO $p2q$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a
              WHERE a.attrelid = (pg_catalog.quote_ident(@SCHEMA_NAME@) || '.sync_outbox')::regclass
                AND a.attname IN ('event_type', 'routing_key')
                AND a.attcollation <> (SELECT c.oid FROM pg_catalog.pg_collation c
                                        WHERE c.collname = 'C' AND c.collnamespace = 'pg_catalog'::regnamespace)) THEN
    DROP TRIGGER IF EXISTS sync_outbox_notify ON @SCHEMA@.sync_outbox;
    ALTER TABLE @SCHEMA@.sync_outbox ALTER COLUMN event_type TYPE text COLLATE "C",
                                     ALTER COLUMN routing_key TYPE text COLLATE "C";
  END IF;
END
$p2q$;

-- Migration 011: sync_outbox_claim_idx (event_type, id) serves only statements that name an event
-- type (issue 11, the sustained run's ack stalls). The claim's candidate scan, the mark refresh and
-- the status name one; the ack (DELETE ... WHERE o.id = ANY (p_ids)), recovery and the claim's
-- one-event statements look events up by id alone, and with the statistics of a drained outbox
-- (reltuples 0 over thousands of pages: autovacuum finds it empty and cannot truncate it under
-- traffic) their generic plans took this index with `id` as its second key: PostgreSQL 15 then
-- walks the whole index once per id. While anything holds the xmin horizon (an autovacuum ANALYZE
-- of a big table, a report, pg_dump) VACUUM removes no acknowledged event's entry, the index grows
-- with every ack, and each ack of 256 events walked it 256 times (0.9-1.9 s per ack, 13k-30k
-- buffers; the acknowledgements then moved one batch per 1-3 s). A partial index is used only by a
-- statement whose WHERE implies its predicate: `event_type = <anything>` (a strict operator)
-- implies `event_type IS NOT NULL`, an id lookup does not, so only the primary key is left to it.
-- The column is NOT NULL: the index holds exactly the rows it held. Built next to the old one, then
-- swapped (a SHARE lock on sync_outbox while it builds: writers wait, for a drained outbox briefly).
DO $p2q$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_catalog.pg_index i
              WHERE i.indexrelid = (pg_catalog.quote_ident(@SCHEMA_NAME@) || '.sync_outbox_claim_idx')::regclass
                AND i.indpred IS NULL) THEN
    CREATE INDEX sync_outbox_claim_idx_011 ON @SCHEMA@.sync_outbox (event_type, id) WHERE event_type IS NOT NULL;
    DROP INDEX @SCHEMA@.sync_outbox_claim_idx;
    ALTER INDEX @SCHEMA@.sync_outbox_claim_idx_011 RENAME TO sync_outbox_claim_idx;
  END IF;
END
$p2q$;

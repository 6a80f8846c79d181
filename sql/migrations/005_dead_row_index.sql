-- Migration 005: an index on sync_outbox_dead (rule, row_key). The lease reclaimer
-- (sync_outbox_reclaim_leases in sql/functions.sql: the daemon's timer and `pg2qdrant prune`) keeps
-- a row's lease while a dead letter of that row exists (`retry --dead` brings it back with its old
-- id, and the lease's fence must still supersede it); without this index every batch of leases
-- looked at would read the whole dead-letter table. Dead letters are rare writes: the index costs
-- nothing on the claim/ack path. Takes a SHARE lock on sync_outbox_dead for the build (acks that
-- dead-letter an event wait for it; sync_outbox itself is not locked).
CREATE INDEX IF NOT EXISTS sync_outbox_dead_row_idx ON @SCHEMA@.sync_outbox_dead (rule, row_key);

-- Migration 009: the lease table's primary key leads with a hash of row_key, and its pages keep
-- room for their releases (issue 11, PostgreSQL's cost per event).
--   * key_hash = jsonb_hash_extended(row_key, 0), a stored generated column, and the primary key
--     (key_hash, rule, row_key) instead of (rule, row_key). Every claim upserts a lease per row and
--     every ack releases it through this key: each index descent compared ~17 (rule, jsonb) pairs,
--     and every jsonb comparison copies both values out of their short headers (~11 % of the
--     daemon's PostgreSQL CPU in a drain profile). Now a descent compares bigints, and rule and
--     row_key only where the hashes are equal (the key stays unique on (rule, row_key): the hash
--     orders, never identifies). Statements locate a lease by all three columns, and lock leases
--     in this key's order (sql/functions.sql).
--   * fillfactor 40 (was 70): a claim inserts its batch's leases together and the ack releases
--     them together; at 70 only about half of a page's releases found room on the page (the rest
--     went non-HOT: a new index entry each).
-- Rewrites the lease table (ACCESS EXCLUSIVE on it for the rewrite; claims and acks wait;
-- sync_outbox and the writers are not touched). Idempotent: the key is replaced only when it is
-- not this one yet.
ALTER TABLE @SCHEMA@.sync_outbox_lease
  ADD COLUMN IF NOT EXISTS key_hash bigint GENERATED ALWAYS AS (pg_catalog.jsonb_hash_extended(row_key, 0)) STORED;
ALTER TABLE @SCHEMA@.sync_outbox_lease SET (fillfactor = 40);
DO $p2q$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint c
                   JOIN pg_catalog.pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
                  WHERE c.conrelid = (pg_catalog.quote_ident(@SCHEMA_NAME@) || '.sync_outbox_lease')::regclass
                    AND c.conname = 'sync_outbox_lease_pkey' AND a.attname = 'key_hash') THEN
    ALTER TABLE @SCHEMA@.sync_outbox_lease DROP CONSTRAINT IF EXISTS sync_outbox_lease_pkey;
    ALTER TABLE @SCHEMA@.sync_outbox_lease ADD CONSTRAINT sync_outbox_lease_pkey PRIMARY KEY (key_hash, rule, row_key);
  END IF;
END
$p2q$;

-- Migration 014: the lease table's key_hash a plain column, written by the statements that insert
-- leases (issue 11, PostgreSQL's cost per claim; bench/issue11/session12-kh12.md). As the stored
-- generated column of migration 009, PostgreSQL re-read its expression at the executor start of
-- every INSERT and UPDATE of the table (ExecInitStoredGenerated: the claim's lease upsert and the
-- ack's release, ~36k instructions per one-event claim) and computed it again for every row any
-- UPDATE wrote (the upsert's DO UPDATE, the releases: a jsonb hash per row at any batch size),
-- though a lease's row_key never changes. Now the claim's two lease upserts (sql/functions.sql)
-- insert key_hash = pg_catalog.jsonb_hash_extended(row_key, 0) themselves, the one value the
-- primary key (key_hash, rule, row_key) may hold: a different one would be a second lease of the
-- row, and the key's ON CONFLICT would no longer fence it (test_lease_key_hash.py checks every
-- lease every path writes). Nothing else inserts leases; the writers never touch this table.
-- The values and the primary key stay as they are: DROP EXPRESSION changes the catalog only.
-- Locks: sync_outbox first, then the lease table, both ACCESS EXCLUSIVE, in the order every claim
-- and ack takes them (the outbox's rows, then the leases). The lease table alone first would
-- deadlock with a running daemon's claim once `init` goes on to replace the functions (their
-- DROP … CASCADE takes sync_outbox's lock for its triggers): one of the two aborted. Writers and
-- claims wait for the upgrade's transaction, as they already do for the functions' replacement.
-- PostgreSQL 12 has no DROP EXPRESSION: there the column is replaced by a plain copy and the key
-- rebuilt (a rewrite of the lease table under the same lock).
-- Idempotent: only while the column is generated (and the table exists: migration 015 drops it).
DO $p2q$
DECLARE
  t text := pg_catalog.quote_ident(@SCHEMA_NAME@) || '.sync_outbox_lease';
BEGIN
  IF EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a  -- (none once migration 015 dropped the table)
              WHERE a.attrelid = pg_catalog.to_regclass(t) AND a.attname = 'key_hash' AND a.attgenerated <> '') THEN
    LOCK TABLE @SCHEMA@.sync_outbox, @SCHEMA@.sync_outbox_lease IN ACCESS EXCLUSIVE MODE;
    IF pg_catalog.current_setting('server_version_num')::integer >= 130000 THEN
      EXECUTE 'ALTER TABLE ' || t || ' ALTER COLUMN key_hash DROP EXPRESSION';  -- (a syntax error before 13)
    ELSE
      ALTER TABLE @SCHEMA@.sync_outbox_lease ADD COLUMN key_hash_014 bigint;
      UPDATE @SCHEMA@.sync_outbox_lease SET key_hash_014 = key_hash;
      ALTER TABLE @SCHEMA@.sync_outbox_lease DROP COLUMN key_hash;  -- and the primary key with it
      ALTER TABLE @SCHEMA@.sync_outbox_lease RENAME COLUMN key_hash_014 TO key_hash;
      ALTER TABLE @SCHEMA@.sync_outbox_lease ADD CONSTRAINT sync_outbox_lease_pkey PRIMARY KEY (key_hash, rule, row_key);
    END IF;
  END IF;
END
$p2q$;

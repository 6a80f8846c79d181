-- Migration 008: sync_outbox.vec and sync_outbox_dead.vec, a rule's vector carried unprinted
-- (issue 11, the writer's cost). When a rule's vector column is a real[] and its snapshot is one
-- json_build_object, the trigger copies the value into vec and writes the snapshot with the vector
-- member's value null; the daemon prints the floats exactly as PostgreSQL would have
-- (src/vector_bin.c, float_text.c), so points and their `_hash` are those of a printed snapshot.
-- The writer no longer prints 384 floats (~22 us per row), and the ~1.6 KB array keeps an event
-- row under the TOAST threshold where the ~3.8 KB printed snapshot went out of line (~14 us per
-- row to write, a TOAST fetch per claim, TOAST pages for vacuum). NULL: the vector, if any, is in
-- the payload (other vector types, backfill, events written before this migration).
-- Metadata only (nullable, no default): no rewrite; a brief ACCESS EXCLUSIVE lock on each table.
-- STORAGE EXTERNAL as payload's (migration 004): floats do not compress, so a row that still
-- passes the threshold (a bigger vector or payload) moves it out of line without a pglz attempt.
ALTER TABLE @SCHEMA@.sync_outbox ADD COLUMN IF NOT EXISTS vec real[];
ALTER TABLE @SCHEMA@.sync_outbox ALTER COLUMN vec SET STORAGE EXTERNAL;
ALTER TABLE @SCHEMA@.sync_outbox_dead ADD COLUMN IF NOT EXISTS vec real[];

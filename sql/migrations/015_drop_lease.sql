-- Migration 015: the per-row lease table goes (issue 11; bench/issue11/session13-nl13.md). Order per
-- row is now the claim's rule (sql/functions.sql, sync_outbox_claim): a candidate is claimed only
-- when no older event of its row is left in sync_outbox outside the claim's own candidates. The
-- lease's writes (an upsert per claimed row, a release per ack, the reclaimer's delete) were about
-- a third of PostgreSQL's cost per event at batch 256 and half of it at one event per claim
-- (bench/outbox_model_bench.py's `nolease`).
-- An upgrade with events in flight beside running daemons: a claimed event keeps claimed_by and
-- available_at, so under the new rule it holds its row's newer events exactly as its lease did,
-- and recovery finds it at the front of its type (sync_outbox_front). A lease's fence (claimed_id)
-- is needed only by an event older than a row's claimed one, which only `retry --dead` (old ids)
-- or a late writer made: such events are superseded here, once, as the next claim would have; from
-- now on `retry --dead` re-captures the row's present state instead (src/cmd_admin.c).
-- Daemons of the previous release keep running until restarted: their calls reach the new
-- functions under the same names ('release' acks do nothing; sync_outbox_reclaim_leases answers
-- "nothing to reclaim", for one release).
-- Locks: sync_outbox first, then the lease table, both ACCESS EXCLUSIVE, in the order every claim
-- and ack of the previous release takes them (the outbox's rows, then the leases): the lease table
-- alone first would deadlock with a running daemon's claim once `init` goes on to replace the
-- functions (session 12's finding, migration 014).
DO $p2q$
BEGIN
  IF pg_catalog.to_regclass(pg_catalog.quote_ident(@SCHEMA_NAME@) || '.sync_outbox_lease') IS NOT NULL THEN
    LOCK TABLE @SCHEMA@.sync_outbox, @SCHEMA@.sync_outbox_lease IN ACCESS EXCLUSIVE MODE;
    -- The fences still needed, applied once (rv13, H2): an event older than its row's lease's
    -- claimed_id (a dead letter the previous release's `retry --dead` brought back with its old id
    -- after a newer event of the row was claimed, or a late writer) would be superseded by that
    -- release's next claim; without the lease nothing would stop it. Deleted as superseded now
    -- (one with a claim still running is left to it: the lease's rules allow none such).
    -- One whose attempts are spent goes to the dead letters, as that release's sweep would have
    -- moved it (rv13b).
    WITH x AS (
      DELETE FROM @SCHEMA@.sync_outbox o USING @SCHEMA@.sync_outbox_lease l
       WHERE l.rule = o.rule AND l.row_key = o.row_key AND o.id < l.claimed_id
         AND NOT (o.claimed_by IS NOT NULL AND o.available_at > now())
      RETURNING o.*
    )
    INSERT INTO @SCHEMA@.sync_outbox_dead (id, event_type, routing_key, rule, source_table, row_key, op,
                                           payload, vec, attempts, max_attempts, last_error, created_at)
    SELECT x.id, x.event_type, x.routing_key, x.rule, x.source_table, x.row_key, x.op, x.payload, x.vec,
           x.attempts, x.max_attempts,
           COALESCE(x.last_error, 'no outcome reported after the final attempt (worker crashed or lease expired)'),
           x.created_at
      FROM x WHERE x.attempts >= x.max_attempts
    ON CONFLICT (id) DO NOTHING;
    DROP TABLE @SCHEMA@.sync_outbox_lease;
  END IF;
END
$p2q$;

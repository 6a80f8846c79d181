-- Migration 007: the claim's low-water mark per event type (issue 11). Append-only, like every
-- migration; the functions that keep it (sync_outbox_mark_*) are in sql/functions.sql.
--
-- sync_outbox_mark  one row per event type a claim has asked for: lo, an id no event of that type
--                   in sync_outbox has or will have less than, so the claim's ordered index scan
--                   starts at lo instead of walking the drained front of the index (dead entries
--                   until VACUUM: ~1 buffer per ~360 events drained). The rest of the row is the
--                   epoch that will move lo forward (see sync_outbox_mark_refresh for the proof).
--                   No row, or lo 0: no bound. UNLOGGED: never WAL-logged (refreshed several times a
--                   second), and a crash restart (or a promoted standby) finds it empty, which is
--                   always safe.
CREATE UNLOGGED TABLE IF NOT EXISTS @SCHEMA@.sync_outbox_mark (
  event_type  text        PRIMARY KEY,
  lo          bigint      NOT NULL DEFAULT 0,
  epoch_id    bigint,                  -- an id drawn before the epoch began (NULL: none known)
  epoch_locks text[],                  -- the transactions that could still write sync_outbox then
  due_at      timestamptz NOT NULL DEFAULT now(),  -- next refresh
  checked_at  timestamptz NOT NULL DEFAULT now()   -- last look below lo (the safety net)
) WITH (fillfactor = 50);

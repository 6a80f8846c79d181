-- Migration 004: the outbox's storage for speed (issue 11). Metadata only: no rewrite, and existing
-- rows keep their storage; new pages and new payloads take it.
--   * payload STORAGE EXTERNAL: out of line when large, never compressed. pglz compression of a
--     384-float snapshot cost the writer ~90 us per row and its decompression ~8 us per event in
--     the claim; the payload is written once and read once, so compressing it never paid
--     (bench/outbox_sql_bench.py --storage extended:pglz,external: fill 158 -> 68 us/event,
--     claim + ack 51 -> 43 us/event).
--   * fillfactor 50: the claim's UPDATE (attempts, claimed_by, available_at: no indexed column)
--     stays HOT (26% -> 88% of updates at fillfactor 80 -> 50), so it inserts no entry into the
--     four indexes: claim + ack 63 -> 51 us/event, WAL 1206 -> 973 bytes/event. The main heap holds
--     only the small columns (the payload is out of line), so its doubled size is a few MB per
--     100,000 pending events.
ALTER TABLE @SCHEMA@.sync_outbox SET (fillfactor = 50);
ALTER TABLE @SCHEMA@.sync_outbox ALTER COLUMN payload SET STORAGE EXTERNAL;

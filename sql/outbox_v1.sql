-- pg2qdrant outbox schema, version 1.
--
-- Installed by `pg2qdrant init` (idempotently, under an advisory lock) into the configured schema;
-- @SCHEMA@ is replaced by the quoted schema name. Design (see README "Guarantees"):
--
--   sync_outbox        one event per captured change, written by the rule triggers in the writer's
--                      transaction. Finished events are deleted at once; the table stays small.
--   sync_outbox_lease  one row per source row ever claimed: who holds it (owner, expires_at) and the
--                      newest event id ever claimed for it (claimed_id). A row is processed by one
--                      worker at a time, and an event older than claimed_id is superseded: it is
--                      deleted without a Qdrant write. Together these keep per-row order across any
--                      number of workers and replicas, retries and crashes.
--   sync_outbox_dead   events that exhausted max_attempts, kept with their last error.
--
-- A claim's owner is "<backend pid>.<backend start µs>" of the claiming connection, so the events and
-- leases of a crashed daemon are recognised (its backends are gone) and freed by sync_outbox_recover().

CREATE TABLE IF NOT EXISTS @SCHEMA@.sync_outbox (
  id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  event_type   text        NOT NULL,
  routing_key  text,
  rule         text        NOT NULL,
  source_table text        NOT NULL,
  row_key      jsonb       NOT NULL,
  op           text        NOT NULL CHECK (op IN ('upsert', 'delete')),
  payload      json,        -- the snapshot: json (text), cheap to build in triggers and to read back
  attempts     integer     NOT NULL DEFAULT 0,
  max_attempts integer     NOT NULL DEFAULT 10,
  available_at timestamptz NOT NULL DEFAULT now(),
  claimed_by   text,
  claimed_at   timestamptz,
  last_error   text,
  created_at   timestamptz NOT NULL DEFAULT clock_timestamp()
) WITH (fillfactor = 80, autovacuum_vacuum_scale_factor = 0.01, autovacuum_analyze_scale_factor = 0.02,
        autovacuum_vacuum_cost_delay = 0);

-- The claim walks one event type in id order; only events still in the table are claimable
-- (finished ones are deleted, dead ones moved), so the index covers exactly the claimable rows.
CREATE INDEX IF NOT EXISTS sync_outbox_claim_idx ON @SCHEMA@.sync_outbox (event_type, id);
CREATE INDEX IF NOT EXISTS sync_outbox_routing_idx ON @SCHEMA@.sync_outbox (event_type, routing_key, id)
  WHERE routing_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS sync_outbox_row_idx ON @SCHEMA@.sync_outbox (rule, row_key);
-- No index on the claim columns (claimed_by, available_at, attempts): claim and ack updates then
-- stay HOT (heap-only, no index writes), which is what lets a backlog drain fast. The periodic
-- sync_outbox_recover() scans the table instead.

CREATE TABLE IF NOT EXISTS @SCHEMA@.sync_outbox_lease (
  rule        text        NOT NULL,
  row_key     jsonb       NOT NULL,
  owner       text,
  expires_at  timestamptz,
  claimed_id  bigint      NOT NULL,
  leased_at   timestamptz,
  released_at timestamptz,
  CONSTRAINT sync_outbox_lease_pkey PRIMARY KEY (rule, row_key)
) WITH (fillfactor = 70, autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_cost_delay = 0);

CREATE TABLE IF NOT EXISTS @SCHEMA@.sync_outbox_dead (
  id           bigint      PRIMARY KEY,
  event_type   text        NOT NULL,
  routing_key  text,
  rule         text        NOT NULL,
  source_table text        NOT NULL,
  row_key      jsonb       NOT NULL,
  op           text        NOT NULL,
  payload      json,        -- the snapshot: json (text), cheap to build in triggers and to read back
  attempts     integer     NOT NULL,
  max_attempts integer     NOT NULL,
  last_error   text,
  created_at   timestamptz NOT NULL,
  died_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS sync_outbox_dead_type_idx ON @SCHEMA@.sync_outbox_dead (event_type, id);

-- Rules installed by `apply`: name → hash of the generated SQL, so applying twice changes nothing.
CREATE TABLE IF NOT EXISTS @SCHEMA@.sync_outbox_rule (
  name         text PRIMARY KEY,
  source_table text NOT NULL,
  definition   text NOT NULL,
  applied_at   timestamptz NOT NULL DEFAULT now()
);

-- One NOTIFY per transaction and event type (identical payloads fold within a transaction).
-- The payload is the event type: a hint to wake the right workers, never the data.
CREATE OR REPLACE FUNCTION @SCHEMA@.sync_outbox_notify() RETURNS trigger
LANGUAGE plpgsql AS $p2q$
BEGIN
  PERFORM pg_notify('sync_outbox_insert', t.event_type)
     FROM (SELECT DISTINCT n.event_type FROM sync_outbox_new n) t;
  RETURN NULL;
END
$p2q$;

DROP TRIGGER IF EXISTS sync_outbox_notify ON @SCHEMA@.sync_outbox;
CREATE TRIGGER sync_outbox_notify AFTER INSERT ON @SCHEMA@.sync_outbox
  REFERENCING NEW TABLE AS sync_outbox_new
  FOR EACH STATEMENT EXECUTE FUNCTION @SCHEMA@.sync_outbox_notify();

-- Claim up to p_limit events of p_types (and p_routing, when not null) for p_owner.
-- Returns one row per event to apply (op upsert|delete), one per superseded event (op 'coalesced':
-- deleted, an equal or newer event of its row was claimed), and one per row whose lease was taken
-- with nothing left to apply (op 'release': the caller gives the lease back with its ack).
-- Candidates are locked FOR UPDATE SKIP LOCKED, so concurrent claimers pick disjoint events; the
-- lease upsert (in key order, so concurrent claimers cannot deadlock) admits one claimer per row.
CREATE OR REPLACE FUNCTION @SCHEMA@.sync_outbox_claim(p_owner text, p_types text[], p_routing text,
    p_limit integer, p_lease_ms integer)
RETURNS TABLE (id bigint, rule text, op text, row_key jsonb, payload json, attempts integer,
               max_attempts integer, created_at timestamptz, event_type text)
LANGUAGE plpgsql
-- A queue's statistics are always stale (a backlog appears in seconds); with a low estimate the
-- planner sorts the whole backlog instead of walking (event_type, id). Index access only.
SET enable_seqscan = off SET enable_bitmapscan = off
AS $p2q$
#variable_conflict use_column
BEGIN
  RETURN QUERY
  WITH cand AS (
    -- one ordered index scan per event type on (event_type, id), so LIMIT stops early whatever
    -- the backlog (`event_type = ANY (…)` would scan and sort every pending event)
    SELECT c.id, c.rule, c.row_key
      FROM unnest(p_types) AS t(event_type),
           LATERAL (SELECT o.id, o.rule, o.row_key FROM @SCHEMA@.sync_outbox o
                     WHERE o.event_type = t.event_type
                       AND (p_routing IS NULL OR o.routing_key = p_routing)
                       AND o.available_at <= now()
                       AND o.attempts < o.max_attempts
                     ORDER BY o.id
                     LIMIT p_limit
                       FOR UPDATE SKIP LOCKED) c
     ORDER BY c.id
     LIMIT p_limit
  ), rws AS (
    SELECT c.rule, c.row_key, max(c.id) AS max_id FROM cand c GROUP BY c.rule, c.row_key
  ), won AS (
    INSERT INTO @SCHEMA@.sync_outbox_lease AS l (rule, row_key, owner, expires_at, claimed_id, leased_at)
    SELECT r.rule, r.row_key, p_owner, now() + p_lease_ms * interval '1 millisecond', r.max_id, now()
      FROM rws r ORDER BY r.rule, r.row_key
    ON CONFLICT ON CONSTRAINT sync_outbox_lease_pkey DO UPDATE
       SET owner = EXCLUDED.owner, expires_at = EXCLUDED.expires_at, released_at = NULL,
           leased_at = EXCLUDED.leased_at,
           claimed_id = GREATEST(l.claimed_id, EXCLUDED.claimed_id)
     WHERE l.expires_at IS NULL OR l.expires_at < now()
    RETURNING l.rule, l.row_key, l.claimed_id
  ), sup AS (
    DELETE FROM @SCHEMA@.sync_outbox o
     USING cand c JOIN won w ON c.rule = w.rule AND c.row_key = w.row_key
     WHERE o.id = c.id AND c.id < w.claimed_id
    RETURNING o.id, o.rule, o.row_key, o.event_type
  ), cl AS (
    UPDATE @SCHEMA@.sync_outbox o
       SET attempts = o.attempts + 1, claimed_by = p_owner, claimed_at = now(),
           available_at = now() + p_lease_ms * interval '1 millisecond'
      FROM cand c JOIN won w ON c.rule = w.rule AND c.row_key = w.row_key
     WHERE o.id = c.id AND c.id = w.claimed_id
    RETURNING o.id, o.rule, o.op, o.row_key, o.payload, o.attempts, o.max_attempts, o.created_at,
              o.event_type
  )
  SELECT * FROM cl
  UNION ALL
  SELECT s.id, s.rule, 'coalesced'::text, s.row_key, NULL::json, 0, 0, NULL::timestamptz, s.event_type
    FROM sup s
  UNION ALL
  SELECT w.claimed_id, w.rule, 'release'::text, w.row_key, NULL::json, 0, 0, NULL::timestamptz, NULL::text
    FROM won w
   WHERE NOT EXISTS (SELECT 1 FROM cand c
                      WHERE c.rule = w.rule AND c.row_key = w.row_key AND c.id = w.claimed_id);
END
$p2q$;

-- Report the outcome of claimed events and give their rows' leases back.
--   done    applied (or nothing to do): deleted
--   retry   failed, will be tried again after p_delay_ms (attempts were counted at claim)
--   dead    exhausted or hopeless: moved to sync_outbox_dead with p_error
--   requeue not the event's fault (breaker open, shutdown): the attempt is given back
--   release a 'release' row from the claim: only the lease is given back
-- Only events still claimed by p_owner are touched: a claim that expired and was taken over by
-- another worker is left to that worker. Returns how many events were updated.
CREATE OR REPLACE FUNCTION @SCHEMA@.sync_outbox_ack(p_owner text, p_ids bigint[], p_rules text[],
    p_keys jsonb[], p_outcomes text[], p_delay_ms integer[], p_errors text[])
RETURNS integer
LANGUAGE plpgsql
SET enable_seqscan = off SET enable_bitmapscan = off
AS $p2q$
DECLARE
  n integer;
BEGIN
  WITH r AS (
    SELECT * FROM unnest(p_ids, p_rules, p_keys, p_outcomes, p_delay_ms, p_errors)
        AS t(id, rule, row_key, outcome, delay_ms, err)
  ), done AS (
    DELETE FROM @SCHEMA@.sync_outbox o USING r
     WHERE o.id = r.id AND r.outcome = 'done' AND o.claimed_by = p_owner
    RETURNING 1
  ), gone AS (
    DELETE FROM @SCHEMA@.sync_outbox o USING r
     WHERE o.id = r.id AND r.outcome = 'dead' AND o.claimed_by = p_owner
    RETURNING o.*, r.err AS err
  ), buried AS (
    INSERT INTO @SCHEMA@.sync_outbox_dead (id, event_type, routing_key, rule, source_table, row_key,
                                           op, payload, attempts, max_attempts, last_error, created_at)
    SELECT g.id, g.event_type, g.routing_key, g.rule, g.source_table, g.row_key, g.op, g.payload,
           g.attempts, g.max_attempts, g.err, g.created_at
      FROM gone g
    ON CONFLICT (id) DO UPDATE SET last_error = EXCLUDED.last_error, died_at = now(),
                                   attempts = EXCLUDED.attempts
    RETURNING 1
  ), again AS (
    UPDATE @SCHEMA@.sync_outbox o
       SET available_at = now() + r.delay_ms * interval '1 millisecond',
           attempts = CASE WHEN r.outcome = 'requeue' THEN GREATEST(o.attempts - 1, 0) ELSE o.attempts END,
           last_error = COALESCE(r.err, o.last_error), claimed_by = NULL
      FROM r
     WHERE o.id = r.id AND r.outcome IN ('retry', 'requeue') AND o.claimed_by = p_owner
    RETURNING 1
  ), locked AS (
    -- leases are locked in key order, as the claim does, so acks and claims cannot deadlock
    SELECT l.rule, l.row_key FROM @SCHEMA@.sync_outbox_lease l
      JOIN (SELECT DISTINCT r.rule, r.row_key FROM r) k ON l.rule = k.rule AND l.row_key = k.row_key
     WHERE l.owner = p_owner
     ORDER BY l.rule, l.row_key
       FOR UPDATE OF l
  ), freed AS (
    UPDATE @SCHEMA@.sync_outbox_lease l SET owner = NULL, expires_at = NULL, released_at = now()
      FROM locked k
     WHERE l.rule = k.rule AND l.row_key = k.row_key AND l.owner = p_owner
    RETURNING 1
  )
  -- (every data-modifying CTE runs to completion whether or not it is read)
  SELECT (SELECT count(*) FROM done) + (SELECT count(*) FROM gone) + (SELECT count(*) FROM again) INTO n;
  RETURN n;
END
$p2q$;

-- Free the claims and leases of owners whose backend is gone (a crashed or killed daemon, a lost
-- connection) once they are older than p_grace_ms, so their events flow again without waiting for
-- the lease to expire. Also dead-letters events whose last claim expired after their final attempt
-- (a poison event that crashes the worker is counted at claim, so it cannot loop forever).
-- Returns the number of events freed.
CREATE OR REPLACE FUNCTION @SCHEMA@.sync_outbox_recover(p_grace_ms integer)
RETURNS integer
LANGUAGE plpgsql AS $p2q$
DECLARE
  n integer;
  live text[];
  hidden integer[];
BEGIN
  -- Without pg_read_all_stats, backend_start of other roles' sessions reads as NULL: such an
  -- owner counts as alive while its pid exists (never "recover" a claim that is still working).
  SELECT COALESCE(array_agg(a.pid::text || '.' || (extract(epoch FROM a.backend_start) * 1000000)::bigint::text)
                  FILTER (WHERE a.backend_start IS NOT NULL), '{}'),
         COALESCE(array_agg(a.pid) FILTER (WHERE a.backend_start IS NULL), '{}')
    INTO live, hidden FROM pg_stat_activity a;
  UPDATE @SCHEMA@.sync_outbox o SET available_at = now(), claimed_by = NULL
   WHERE o.claimed_by IS NOT NULL AND o.available_at > now()
     AND o.claimed_at < now() - p_grace_ms * interval '1 millisecond'
     AND NOT (o.claimed_by = ANY (live))
     AND NOT (split_part(o.claimed_by, '.', 1)::integer = ANY (hidden));
  GET DIAGNOSTICS n = ROW_COUNT;
  UPDATE @SCHEMA@.sync_outbox_lease l SET owner = NULL, expires_at = NULL, released_at = now()
    FROM (SELECT l2.rule, l2.row_key FROM @SCHEMA@.sync_outbox_lease l2
           WHERE l2.owner IS NOT NULL AND NOT (l2.owner = ANY (live))
             AND NOT (split_part(l2.owner, '.', 1)::integer = ANY (hidden))
             AND l2.leased_at < now() - p_grace_ms * interval '1 millisecond'
           ORDER BY l2.rule, l2.row_key FOR UPDATE OF l2 SKIP LOCKED) k
   WHERE l.rule = k.rule AND l.row_key = k.row_key;
  WITH exhausted AS (
    DELETE FROM @SCHEMA@.sync_outbox o
     WHERE o.attempts >= o.max_attempts AND o.available_at <= now()
    RETURNING o.*
  )
  INSERT INTO @SCHEMA@.sync_outbox_dead (id, event_type, routing_key, rule, source_table, row_key, op,
                                         payload, attempts, max_attempts, last_error, created_at)
  SELECT e.id, e.event_type, e.routing_key, e.rule, e.source_table, e.row_key, e.op, e.payload,
         e.attempts, e.max_attempts,
         COALESCE(e.last_error, 'no outcome reported after the final attempt (worker crashed or lease expired)'),
         e.created_at
    FROM exhausted e
  ON CONFLICT (id) DO NOTHING;
  RETURN n;
END
$p2q$;

-- Migration 001: the outbox tables exactly as pg2qdrant's first release shipped them
-- (sql/outbox_v1.sql of commit 1782363). Append-only: never edit a migration once released;
-- table changes go into a new file (NNN_what.sql, the next number). Functions and triggers live in
-- sql/functions.sql, which `init` re-applies every time.
--
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
--   sync_outbox_rule   rules installed by `apply`.
--

CREATE TABLE IF NOT EXISTS @SCHEMA@.sync_outbox (
  id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  event_type   text        NOT NULL,
  routing_key  text,
  rule         text        NOT NULL,
  source_table text        NOT NULL,
  row_key      jsonb       NOT NULL,
  op           text        NOT NULL CHECK (op IN ('upsert', 'delete')),
  payload      jsonb,
  attempts     integer     NOT NULL DEFAULT 0,
  max_attempts integer     NOT NULL DEFAULT 10,
  available_at timestamptz NOT NULL DEFAULT now(),
  claimed_by   text,
  claimed_at   timestamptz,
  last_error   text,
  created_at   timestamptz NOT NULL DEFAULT clock_timestamp()
) WITH (autovacuum_vacuum_scale_factor = 0.01, autovacuum_analyze_scale_factor = 0.02,
        autovacuum_vacuum_cost_delay = 0);

-- The claim walks one event type in id order; only events still in the table are claimable
-- (finished ones are deleted, dead ones moved), so the index covers exactly the claimable rows.
CREATE INDEX IF NOT EXISTS sync_outbox_claim_idx ON @SCHEMA@.sync_outbox (event_type, id);
CREATE INDEX IF NOT EXISTS sync_outbox_routing_idx ON @SCHEMA@.sync_outbox (event_type, routing_key, id)
  WHERE routing_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS sync_outbox_row_idx ON @SCHEMA@.sync_outbox (rule, row_key);
CREATE INDEX IF NOT EXISTS sync_outbox_claimed_idx ON @SCHEMA@.sync_outbox (claimed_by)
  WHERE claimed_by IS NOT NULL;

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
  payload      jsonb,
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


-- Migration 006: zero-downtime re-embedding (issue 12; README "Re-embedding without downtime").
-- Searches go through a Qdrant alias named like the rule's collection (NAME); the physical
-- collections are versioned NAME__v1, NAME__v2, …
--
-- sync_reindex_rule  per rule: the version its alias serves and what that version's vectors mean
--                    (signature, src/reindex.c) with the rule's definition that built it (the
--                    [rule.R] and [embedder.E] keys, INI text parsed by the config loader), so a
--                    later re-embedding can keep writing the old version with the OLD definition.
--                    legacy: NAME is a real collection made before aliases (served as version 1).
-- sync_reindex       one running re-embedding per rule (the job): from/to versions, the new
--                    definition's signature and text, its phase, the backfill's progress (key of
--                    the last chunk, rows enqueued, the outbox id that ends it), the swap time.
--                    Phases: create → dual → backfill → catch_up → [preswap, legacy only] →
--                    swapped; the row is deleted when the old version is retired.
-- sync_reindex_seen  per rule and daemon process (sync_outbox_instance.instance): which write mode
--                    of which job that process runs (dual, new_only, single). The executor moves a
--                    job on only once every live process writes the way the next step needs.
CREATE TABLE IF NOT EXISTS @SCHEMA@.sync_reindex_rule (
  rule         text        PRIMARY KEY,
  collection   text        NOT NULL,
  version      integer     NOT NULL,
  legacy       boolean     NOT NULL DEFAULT false,
  signature    text        NOT NULL,
  definition   text        NOT NULL,
  updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS @SCHEMA@.sync_reindex (
  rule           text        PRIMARY KEY,
  collection     text        NOT NULL,
  from_version   integer     NOT NULL,
  to_version     integer     NOT NULL,
  legacy         boolean     NOT NULL,
  signature      text        NOT NULL,
  definition     text        NOT NULL,
  old_definition text        NOT NULL,
  phase          text        NOT NULL DEFAULT 'create'
                 CHECK (phase IN ('create', 'dual', 'backfill', 'catch_up', 'preswap', 'swapped')),
  backfill_key   text,
  backfill_done  bigint      NOT NULL DEFAULT 0,
  backfill_upto  bigint,
  started_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
  swapped_at     timestamptz
);

CREATE TABLE IF NOT EXISTS @SCHEMA@.sync_reindex_seen (
  rule         text        NOT NULL,
  instance     text        NOT NULL,
  started_at   timestamptz NOT NULL,
  mode         text        NOT NULL,
  seen_at      timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (rule, instance)
);

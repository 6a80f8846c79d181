-- Migration 003: the daemon registry (fast crash recovery; functions sync_outbox_register and
-- sync_outbox_reap in sql/functions.sql). Append-only, like every migration.
--
-- sync_outbox_instance  one row per PostgreSQL connection of a running daemon process (its liveness
--                       check connection and every worker connection): its owner id (as in
--                       sync_outbox.claimed_by and sync_outbox_lease.owner), the process it belongs
--                       to (instance), and its backend (pid, backend_start). UNLOGGED: no WAL for
--                       a registration, and a crash restart empties it — after which every claim
--                       takes the slow, always-safe path (sync_outbox_recover's grace).
--
-- A process is dead when none of its backends exists any more (a killed process closes its
-- sockets, so its backends exit at once); its claims are then freed without the grace that a
-- live process's lost connection needs (sync_outbox_reap). See README "Guarantees".

CREATE UNLOGGED TABLE IF NOT EXISTS @SCHEMA@.sync_outbox_instance (
  owner         text        PRIMARY KEY,   -- "<backend pid>.<backend start µs>"
  instance      text        NOT NULL,      -- one daemon process
  pid           integer     NOT NULL,
  backend_start timestamptz NOT NULL,
  registered_at timestamptz NOT NULL DEFAULT now(),
  gone_since    timestamptz               -- first time a check found the backend gone
);

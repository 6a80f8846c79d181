-- pg2qdrant — least privilege: three roles and exactly the GRANTs each needs (README "Least
-- privilege"). The outbox lives in schema public here; for another [postgres] schema replace
-- `public.` and `SCHEMA public` below. tests/integration/test_privileges.py and the guarantee
-- tests run pg2qdrant with exactly these statements (this file, sections by their markers).
--
--   p2q_owner   runs `init` and `apply` (owns the outbox tables and the trigger functions)
--   p2q_daemon  runs `run` (claims, acks, dead letters; nothing else)
--   p2q_reader  runs `status`, `reconcile` (without --fix) and `check`

-- [superuser] once, as a superuser (or a role with CREATEROLE) and the schema's owner:
CREATE ROLE p2q_owner LOGIN;
CREATE ROLE p2q_daemon LOGIN;
CREATE ROLE p2q_reader LOGIN;
GRANT CREATE ON SCHEMA public TO p2q_owner;  -- or: CREATE SCHEMA p2q AUTHORIZATION p2q_owner

-- [source-table] for each rule's table, as the table's owner:
GRANT SELECT, TRIGGER ON public.docs TO p2q_owner;  -- apply: read rows, create the triggers
GRANT UPDATE (id) ON public.docs TO p2q_owner;      -- backfill locks rows FOR SHARE (updates none)
GRANT SELECT ON public.docs TO p2q_reader;          -- reconcile reads the rows

-- [owner] as p2q_owner, after `pg2qdrant init` (then run `pg2qdrant apply`, also as p2q_owner):
GRANT USAGE ON SCHEMA public TO p2q_daemon, p2q_reader;
GRANT SELECT, UPDATE, DELETE ON public.sync_outbox TO p2q_daemon;
GRANT SELECT, INSERT, UPDATE ON public.sync_outbox_dead TO p2q_daemon;  -- UPDATE: a dead letter dying again
GRANT SELECT, INSERT, UPDATE, DELETE ON public.sync_outbox_instance TO p2q_daemon;  -- the daemon registry
GRANT SELECT ON public.sync_outbox_meta, public.sync_outbox_rule TO p2q_daemon, p2q_reader;
-- re-embedding (README "Re-embedding without downtime"): the daemons run the jobs
GRANT SELECT, INSERT, UPDATE ON public.sync_reindex_rule TO p2q_daemon;
GRANT SELECT, UPDATE, DELETE ON public.sync_reindex TO p2q_daemon;
GRANT SELECT, INSERT, UPDATE, DELETE ON public.sync_reindex_seen TO p2q_daemon;
GRANT SELECT ON public.sync_outbox, public.sync_outbox_dead TO p2q_reader;
-- optional: GRANT pg_read_all_stats TO p2q_daemon;  (recovery sees other roles' backend_start)

-- pg2qdrant outbox functions and triggers: ONE idempotent script that `pg2qdrant init` (and
-- `apply`) runs every time, after the table migrations (sql/migrations/), under the same advisory
-- lock and in the same transaction. Its hash (SHA-1 of this file's text) is recorded in
-- sync_outbox_meta ('functions_hash'); `pg2qdrant run` refuses to start when the recorded hash is
-- not the one it was built with.
--
-- Rules for editing (see README "Upgrading"):
--   * Edit functions here freely: every statement must be re-runnable (CREATE OR REPLACE, or a
--     guarded CREATE) and must take no lock that blocks the application's writers (no DROP/CREATE
--     TRIGGER on sync_outbox unconditionally: writers insert into it).
--   * Every function is named sync_outbox_*. When the hash changes, init first drops every
--     sync_outbox_* function of the schema whose only dependents are triggers on the outbox's own
--     tables (those triggers with them), then runs this script: a changed signature or result
--     type needs no hand-written DROP, and the triggers are created again below.
--   * Tables, columns and indexes are NOT created here: add a new sql/migrations/NNN_*.sql.
--   * @SCHEMA@ is the quoted schema name, @SCHEMA_NAME@ the schema name as a string literal.
--     Dollar quotes are written $p2q$; init renames the tag when it would collide with the schema
--     name (issue 16), so a body must never contain a literal `$p2q` of its own.
--
-- A claim's owner is "<backend pid>.<backend start µs>" of the claiming connection, so the claims
-- of a crashed daemon are recognised (its backends are gone) and freed: by sync_outbox_reap()
-- within seconds when every backend of its process is gone, by sync_outbox_recover() after a grace
-- when one connection of a live process was lost.

-- Wake-ups: every writer of the outbox NOTIFYs sync_outbox_insert itself, the event type as
-- payload, in the statement that writes the event (pg2qdrant's generated INSERTs carry it in their
-- event_type column: capture.h). Until a rule's capture function did that, the outbox's own row
-- trigger did it for every writer, by its WHEN clause (pg_notify() returns void, never NULL: the
-- condition is false, this function never runs). PostgreSQL prepares that clause again for every
-- INSERT statement, and a capture trigger writes each event by one statement of its own: 21,790 of
-- the ~204,000 instructions a captured row cost (bench/writer_components_bench.py --instructions).
-- The trigger stays while an older pg2qdrant's trigger function writes this outbox (a capture or
-- TRUNCATE function of an older `apply`: it does not notify), and before any rule is applied:
-- sync_outbox_notify_settle keeps or creates it then, and drops it once every one is of this
-- generation; from then on, anything else that writes the outbox must notify too. This script
-- runs it (init; apply too, before it installs the rules' triggers), and apply runs it again once
-- it has installed them. Each rule's install replaces its functions while holding the table's
-- lock, so no writer runs an old function once it committed: no event waits for the sweep because
-- of an upgrade (tests/integration/test_wakeups.py).
CREATE OR REPLACE FUNCTION @SCHEMA@.sync_outbox_notify() RETURNS trigger
LANGUAGE plpgsql AS $p2q$
BEGIN
  RETURN NULL;
END
$p2q$;

-- Create or drop sync_outbox_notify (above); true when it is (still) needed: while a trigger
-- function of an older pg2qdrant writes the outbox (it names no channel: it does not notify), or
-- while none of this generation does (no rule applied yet: the outbox's only writers are others,
-- e.g. events written by hand, which it keeps waking at no cost to any capture). The drop waits
-- at most 2 s for the outbox's lock (writers hold it until they commit): if it cannot have it, or
-- the role does not own the outbox, the trigger stays (a redundant NOTIFY, never a lost one)
-- until the next init or apply.
CREATE OR REPLACE FUNCTION @SCHEMA@.sync_outbox_notify_settle() RETURNS boolean
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET lock_timeout = '2s' AS $p2q$
DECLARE
  fns record;
  need boolean;
  have boolean := EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t
                           WHERE t.tgrelid = (pg_catalog.quote_ident(@SCHEMA_NAME@) || '.sync_outbox')::regclass
                             AND t.tgname = 'sync_outbox_notify');
BEGIN
  SELECT count(*) FILTER (WHERE strpos(p.prosrc, 'sync_outbox_insert') = 0) AS old,
         count(*) FILTER (WHERE strpos(p.prosrc, 'sync_outbox_insert') > 0) AS new INTO fns
    FROM pg_catalog.pg_trigger t JOIN pg_catalog.pg_proc p ON p.oid = t.tgfoid
    JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
   WHERE n.nspname = @SCHEMA_NAME@ AND (p.proname LIKE 'p2q\_capture\_%' OR p.proname LIKE 'p2q\_truncate\_%');
  need := fns.old > 0 OR fns.new = 0;
  IF need AND NOT have THEN
    PERFORM pg_catalog.set_config('lock_timeout', '0', true);  -- never skipped
    CREATE TRIGGER sync_outbox_notify AFTER INSERT ON @SCHEMA@.sync_outbox
      FOR EACH ROW WHEN (pg_catalog.pg_notify('sync_outbox_insert', NEW.event_type) IS NULL)
      EXECUTE FUNCTION @SCHEMA@.sync_outbox_notify();
  ELSIF have AND NOT need THEN
    BEGIN
      DROP TRIGGER sync_outbox_notify ON @SCHEMA@.sync_outbox;
    EXCEPTION WHEN lock_not_available OR insufficient_privilege THEN
      RETURN true;
    END;
  END IF;
  RETURN need;
END
$p2q$;

-- ---- the claim's low-water mark (migration 007, issue 11) ---------------------------------------
-- The claim walks (event_type, id) in id order. Finished events are deleted, but their index
-- entries stay until VACUUM (which rarely reaches the outbox during a drain), so a claim that
-- starts at the left edge reads ~1 buffer per ~360 events already drained: at 1,000,000 events,
-- 2,500 buffers and 10-20 ms per claim. sync_outbox_mark.lo lets it start further right.
--
-- The invariant: no event of type t is, or will ever be, in sync_outbox with an id below lo(t).
-- Three ways in below a bound, each handled:
--   * ids are drawn at INSERT and committed later: an open transaction can still commit an id
--     lower than anything visible now. The epoch rule below waits for such transactions.
--   * `retry --dead` re-inserts dead letters with their old ids: it calls sync_outbox_mark_lower
--     in the same statement (any other explicit-id insert must do the same).
--   * TRUNCATE (may restart the identity; `bench` reloads a saved backlog with its old ids): the
--     trigger below deletes every mark (no row = no bound).
-- And a safety net for what breaks the contract (an explicit id not reported, setval backwards):
-- every 30 s the refresh looks below lo once (one walk of the drained front) and lowers lo to
-- whatever it finds, so such an event is late, never lost. A running daemon does it first, from
-- its maintenance connection (sync_outbox_mark_check, below): the walk never runs in a claim.
--
-- The epoch rule (sync_outbox_mark_refresh, every ~200 ms per type, by whichever claim comes):
--   an epoch records V = max(id) visible at a snapshot S3 (an id drawn before S3), then, after
--   S3, L = the transactions holding ROW EXCLUSIVE on sync_outbox (read from pg_locks: every
--   transaction that inserted an event, or is inserting one, holds it until it ends; prepared
--   transactions too). A later refresh that finds none of L still holding it, and no prepared
--   transaction holding it, reads m = min(id) of type t at a snapshot S2 taken after that check,
--   and sets lo = greatest(lo, least(m, V + 1)).
-- Why it is safe: let an event r of type t commit after S2 (earlier ones are in m). Its id was
--   drawn at d by its transaction T. If d came after S3, id > V (the identity hands out ids in
--   time order: cache 1, checked below; V was drawn before S3). If d came before S3, T took its
--   lock on sync_outbox before d (relation locks are taken before a statement executes) and still
--   held it at L's read (T ends after S2, after L was read): T is in L, and since it still holds
--   the lock at the check (or, prepared in between, is a prepared holder), no promotion happens.
--   Long read-only transactions do not hold the bound back (only writers of sync_outbox do),
--   and pg_locks is readable by every role (no pg_read_all_stats needed).
-- Cost: per claim, the mark's row read with the candidates (its lo) and one cheap "due?" read,
-- and per refresh a pg_locks read plus two index probes bounded by lo (the events drained since
-- the last refresh). Conservative cases (no bound moves): the id sequence caches values, the
-- caller is not in READ COMMITTED (S2 must be a fresh snapshot), a prepared transaction holds a
-- write lock on sync_outbox, a writer of sync_outbox stays open (lo waits for it to end).
-- The functions that write the mark are SECURITY DEFINER (the daemon role needs no privilege on
-- the table but SELECT, granted to PUBLIC below); each can only keep lo safe, never move it past
-- an event, so PUBLIC may call them.

-- The claim reads the marks directly (a function call per claim cost ~100 us at one event per
-- claim: a SQL function's body is planned again at every call); they are not secret.
GRANT SELECT ON @SCHEMA@.sync_outbox_mark TO PUBLIC;

-- lo of one event type (0: no bound), for other readers of the outbox (sync_outbox_status).
-- STABLE: read in the calling statement's snapshot. Plain SQL, inlined into the caller.
CREATE OR REPLACE FUNCTION @SCHEMA@.sync_outbox_mark_lo(p_type text)
RETURNS bigint
LANGUAGE sql STABLE AS $p2q$
  SELECT COALESCE((SELECT m.lo FROM @SCHEMA@.sync_outbox_mark m WHERE m.event_type = p_type), 0)
$p2q$;

-- Events of p_type are about to be inserted with explicit ids, the lowest p_id: lower the mark
-- (in the inserting transaction, so the mark and the events become visible together).
CREATE OR REPLACE FUNCTION @SCHEMA@.sync_outbox_mark_lower(p_type text, p_id bigint)
RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $p2q$
  INSERT INTO @SCHEMA@.sync_outbox_mark AS m (event_type, lo) VALUES (p_type, 0)
  ON CONFLICT (event_type) DO UPDATE SET lo = LEAST(m.lo, p_id)
$p2q$;

-- The safety net's look: the lowest event of p_type below p_lo (NULL: none), logged when found.
-- It reads every index entry of the type below p_lo, i.e. the drained front, which VACUUM cannot
-- remove while anything holds the xmin horizon (a report, pg_dump): 0.3 -> 2.2 s over a 90 s
-- hold at 2,000 events/s. Written so that only (event_type, id) can serve it: a range on
-- event_type (not `=`, which would let the primary key's id order do) and a row comparison.
CREATE OR REPLACE FUNCTION @SCHEMA@.sync_outbox_mark_below(p_type text, p_lo bigint)
RETURNS bigint
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
SET enable_seqscan = off SET enable_bitmapscan = off SET plan_cache_mode = force_generic_plan SET jit = off
AS $p2q$
DECLARE
  c bigint;
BEGIN
  SELECT o.id INTO c FROM @SCHEMA@.sync_outbox o
   WHERE o.event_type >= p_type AND o.event_type <= p_type
     AND (o.event_type, o.id) < (p_type, p_lo)
   ORDER BY o.event_type, o.id LIMIT 1;
  IF c IS NOT NULL THEN
    RAISE LOG 'pg2qdrant: event % of type % was inserted below the claim''s low-water mark %', c, p_type, p_lo;
  END IF;
  RETURN c;
END
$p2q$;

-- The safety net off the claims' path: every mark not looked below for p_age is locked (one a
-- claim is refreshing is skipped), looked below and lowered to what is found. The daemon calls
-- it every 5 s with 20 s on its maintenance connection, so a claim's refresh (which looks when
-- 30 s passed) finds the look done; the claim keeps its own look for when no daemon does it.
-- Lowering lo is always safe. Returns how many marks were looked below.
CREATE OR REPLACE FUNCTION @SCHEMA@.sync_outbox_mark_check(p_age interval)
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $p2q$
DECLARE
  r record;
  n integer := 0;
BEGIN
  FOR r IN SELECT m.event_type, m.lo FROM @SCHEMA@.sync_outbox_mark m
            WHERE m.checked_at <= now() - p_age ORDER BY m.event_type FOR UPDATE SKIP LOCKED LOOP
    UPDATE @SCHEMA@.sync_outbox_mark m
       SET lo = LEAST(m.lo, COALESCE(@SCHEMA@.sync_outbox_mark_below(r.event_type, r.lo), m.lo)), checked_at = now()
     WHERE m.event_type = r.event_type;
    n := n + 1;
  END LOOP;
  RETURN n;
END
$p2q$;

-- Advance the marks of p_types that are due (called by every claim; a no-op unless one is due).
-- Concurrent claims never wait for each other: a mark being refreshed is skipped.
CREATE OR REPLACE FUNCTION @SCHEMA@.sync_outbox_mark_refresh(p_types text[])
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET enable_seqscan = off SET enable_bitmapscan = off SET plan_cache_mode = force_generic_plan SET jit = off
AS $p2q$
DECLARE
  rel oid;
  r record;
  types text[];
  lows bigint;
  v bigint;
  holders text[];
  prepared boolean;
  promote boolean;
  c bigint;
  new_lo bigint;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM unnest(p_types) AS x(event_type)
                   LEFT JOIN @SCHEMA@.sync_outbox_mark m ON m.event_type = x.event_type
                  WHERE m.event_type IS NULL OR m.due_at <= now()) THEN
    RETURN;  -- the common case: one index lookup per type
  END IF;
  IF current_setting('transaction_isolation') <> 'read committed' THEN
    RETURN;  -- S2 must be a snapshot taken after the check (see above)
  END IF;
  INSERT INTO @SCHEMA@.sync_outbox_mark AS mk (event_type)
  SELECT DISTINCT x.event_type FROM unnest(p_types) AS x(event_type)
   WHERE x.event_type IS NOT NULL
     AND NOT EXISTS (SELECT 1 FROM @SCHEMA@.sync_outbox_mark m2 WHERE m2.event_type = x.event_type)
  ON CONFLICT (event_type) DO NOTHING;
  rel := (quote_ident(@SCHEMA_NAME@) || '.sync_outbox')::regclass;
  IF (SELECT s.seqcache FROM pg_sequence s
       WHERE s.seqrelid = pg_get_serial_sequence(quote_ident(@SCHEMA_NAME@) || '.sync_outbox', 'id')::regclass) > 1 THEN
    -- ids are not handed out in time order: no bound (look again in a minute)
    UPDATE @SCHEMA@.sync_outbox_mark m SET lo = 0, epoch_id = NULL, epoch_locks = NULL,
           due_at = clock_timestamp() + interval '1 minute'
     WHERE m.event_type = ANY (p_types);
    RETURN;
  END IF;
  -- the due marks, locked (a mark another claim is refreshing, or a `retry --dead` is lowering,
  -- is skipped); everything below happens after the lock: a lowering committed before it is seen
  SELECT array_agg(m.event_type ORDER BY m.event_type), min(m.lo) INTO types, lows
    FROM (SELECT m1.event_type, m1.lo FROM @SCHEMA@.sync_outbox_mark m1
           WHERE m1.event_type = ANY (p_types) AND m1.due_at <= now()
           ORDER BY m1.event_type FOR UPDATE SKIP LOCKED) m;
  IF types IS NULL THEN
    RETURN;
  END IF;
  -- S3: an id drawn before this point (bounded by lo: the walk from the right edge stops at the
  -- newest live event, at worst at the lowest due lo)
  SELECT max(o.id) INTO v FROM @SCHEMA@.sync_outbox o WHERE o.id >= lows;
  -- then L: who may still write sync_outbox (prepared transactions show pid NULL)
  SELECT COALESCE(array_agg(l.virtualtransaction), '{}'), COALESCE(bool_or(l.pid IS NULL), false)
    INTO holders, prepared
    FROM pg_locks l
   WHERE l.locktype = 'relation' AND l.relation = rel AND l.mode = 'RowExclusiveLock'
     AND l.database = (SELECT d.oid FROM pg_database d WHERE d.datname = current_database())
     AND l.pid IS DISTINCT FROM pg_backend_pid();
  FOR r IN SELECT * FROM @SCHEMA@.sync_outbox_mark m1 WHERE m1.event_type = ANY (types) ORDER BY m1.event_type LOOP
    new_lo := r.lo;
    promote := r.epoch_id IS NOT NULL AND r.epoch_locks IS NOT NULL AND NOT prepared
               AND NOT (r.epoch_locks && holders);
    IF promote THEN
      -- S2: every transaction of the epoch has ended; what they committed is visible here
      -- Written so that only (event_type, id) can serve it: a range on event_type (not `=`, which
      -- would let the primary key's id order do) and a row comparison. min(id) took the primary
      -- key with event_type as a filter (statistics of one type) and walked every other type's
      -- events: 80-950 ms at 300,000-1,000,000 of them.
      SELECT o.id INTO c FROM @SCHEMA@.sync_outbox o
       WHERE o.event_type >= r.event_type AND o.event_type <= r.event_type
         AND (o.event_type, o.id) >= (r.event_type, r.lo)
       ORDER BY o.event_type, o.id LIMIT 1;
      new_lo := GREATEST(r.lo, LEAST(COALESCE(c, r.epoch_id + 1), r.epoch_id + 1));
    END IF;
    IF r.checked_at <= now() - interval '30 seconds' THEN
      -- the safety net: an event below lo was inserted outside the contract; lower lo to it
      new_lo := COALESCE(@SCHEMA@.sync_outbox_mark_below(r.event_type, new_lo), new_lo);
    END IF;
    -- A new epoch begins when the last one was promoted, or when there is none: no row yet
    -- (epoch_locks NULL), or an epoch begun with no visible event (V NULL: a daemon started on a
    -- drained outbox; such an epoch can never be promoted, so without this lo stayed 0 for good).
    -- Beginning an epoch is always safe: it only records V and L; promotion is what moves lo.
    UPDATE @SCHEMA@.sync_outbox_mark mk
       SET lo = new_lo,
           epoch_id = CASE WHEN promote OR r.epoch_id IS NULL OR r.epoch_locks IS NULL THEN GREATEST(v, r.epoch_id) ELSE r.epoch_id END,
           epoch_locks = CASE WHEN promote OR r.epoch_id IS NULL OR r.epoch_locks IS NULL THEN holders ELSE r.epoch_locks END,
           due_at = clock_timestamp() + interval '200 milliseconds',
           checked_at = CASE WHEN r.checked_at <= now() - interval '30 seconds' THEN now() ELSE r.checked_at END
     WHERE mk.event_type = r.event_type;
  END LOOP;
END
$p2q$;

-- TRUNCATE of the outbox (which may restart the identity) forgets every mark.
CREATE OR REPLACE FUNCTION @SCHEMA@.sync_outbox_mark_reset() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $p2q$
BEGIN
  DELETE FROM @SCHEMA@.sync_outbox_mark;
  RETURN NULL;
END
$p2q$;

-- The outbox's triggers, each created only when missing (a DROP/CREATE would lock sync_outbox
-- against the writers at every init); a changed definition changes the hash, which drops a
-- trigger with its function first. sync_outbox_notify: only while it is needed (above).
DO $p2q$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t
                  WHERE t.tgrelid = (pg_catalog.quote_ident(@SCHEMA_NAME@) || '.sync_outbox')::regclass
                    AND t.tgname = 'sync_outbox_mark_reset') THEN
    CREATE TRIGGER sync_outbox_mark_reset AFTER TRUNCATE ON @SCHEMA@.sync_outbox
      FOR EACH STATEMENT EXECUTE FUNCTION @SCHEMA@.sync_outbox_mark_reset();
  END IF;
  PERFORM @SCHEMA@.sync_outbox_notify_settle();
END
$p2q$;

-- Claim up to p_limit events of p_types (and p_routing, when not null) for p_owner.
-- Returns one row per event to apply (op upsert|delete) and one per superseded event (op
-- 'coalesced': deleted, a newer event of its row was claimed). With p_held, one more row (op
-- 'held', id = how many rows) when candidates were held back because an older event of their row
-- is still in the outbox (in flight with another claim, maybe the caller's own earlier one): the
-- caller claims again after its next ack instead of after every ack (an ack's re-claim is
-- otherwise empty most of the time at low rates). ('release' rows, which gave back a per-row lease
-- taken for nothing, are no longer returned: there is no lease since migration 015.)
-- Candidates are locked FOR UPDATE SKIP LOCKED, so concurrent claimers pick disjoint events; order
-- per row is the rule below (only an older event holds a row, so two claimers never hold each other).
-- With p_ack_ids (not null), the ack of the caller's previous batch runs first, in the same
-- statement and transaction (sync_outbox_ack's arguments and meaning; see sync_outbox_ack_claim).
-- The one function does it all, so a call pays one set of SET clauses (a GUC save and restore
-- each) and no nested call in the common case: at one event per claim (low rates) the fixed
-- cost per call is the cost per event.
-- p_mark false: skip the look at whether a mark is due (the refresh, above). The daemon asks for
-- it at most every 100 ms per session (src/outbox.c): the look is a statement of its own, ~40k of
-- the ~1.15M instructions a one-event claim cost (bench/claim_instructions.py --mark-every 20),
-- and a refresh is due every 200 ms at most. Skipping it is always safe: lo only bounds where the
-- scan starts, and the mark is read by the candidates' statement either way.
CREATE OR REPLACE FUNCTION @SCHEMA@.sync_outbox_claim(p_owner text, p_types text[], p_routing text,
    p_limit integer, p_lease_ms integer, p_held boolean DEFAULT false,
    p_ack_ids bigint[] DEFAULT NULL, p_ack_rules text[] DEFAULT NULL, p_ack_keys jsonb[] DEFAULT NULL,
    p_ack_outcomes text[] DEFAULT NULL, p_ack_delay_ms integer[] DEFAULT NULL, p_ack_errors text[] DEFAULT NULL,
    p_mark boolean DEFAULT true)
RETURNS TABLE (id bigint, rule text, op text, row_key jsonb, payload json, attempts integer,
               max_attempts integer, created_at timestamptz, event_type text, vec real[])
LANGUAGE plpgsql
-- A queue's statistics are always stale (a backlog appears in seconds); with a low estimate the
-- planner sorts the whole backlog instead of walking (event_type, id). Index access only. jit off:
-- once statistics see a big backlog the generic plan costs over jit_optimize_above_cost and every
-- claim was JIT-compiled (1.2 s per claim at 1,000,000 events: Inlining 99 ms, Optimization 642 ms,
-- Emission 468 ms), whatever the few pages it then reads.
SET enable_seqscan = off SET enable_bitmapscan = off SET plan_cache_mode = force_generic_plan SET jit = off
AS $p2q$
#variable_conflict use_column
DECLARE
  c_ids bigint[];
  c_rules text[];
  c_keys jsonb[];
  c_tids tid[];
  o_ids bigint[];
  o_tids tid[];
  o_rules text[];
  o_keys jsonb[];
  o_busy boolean[];
  o_spent boolean[];
  l_tids tid[];
  x_tids tid[];
  n_buried integer;
BEGIN
  IF p_ack_ids IS NOT NULL THEN
    IF p_ack_outcomes <@ ARRAY['done', 'release'] THEN
      -- every event applied: sync_outbox_ack's common case as one plain statement
      DELETE FROM @SCHEMA@.sync_outbox o WHERE o.id = ANY (p_ack_ids) AND o.claimed_by = p_owner;
    ELSE
      PERFORM @SCHEMA@.sync_outbox_ack(p_owner, p_ack_ids, p_ack_rules, p_ack_keys, p_ack_outcomes,
                                       p_ack_delay_ms, p_ack_errors);
    END IF;
  END IF;
  IF p_mark THEN  -- (nested: `p_mark AND EXISTS (…)` would be a query, its executor started at every call)
    IF EXISTS (SELECT 1 FROM unnest(p_types) AS x(event_type)
                 LEFT JOIN @SCHEMA@.sync_outbox_mark m ON m.event_type = x.event_type
                WHERE m.event_type IS NULL OR m.due_at <= now()) THEN
      PERFORM @SCHEMA@.sync_outbox_mark_refresh(p_types);  -- a few times a second at most
    END IF;
  END IF;
  -- The candidates first, locked, in one statement: one ordered index scan per event type on
  -- (event_type, id), so LIMIT stops early whatever the backlog (`event_type = ANY (…)` would scan
  -- and sort every pending event), from the type's low-water mark (read in the same snapshot as
  -- the events: a lowered mark and the events that lowered it are seen together), not from the
  -- drained front of the index. None: done (no other statement starts at all).
  WITH cand AS (
    SELECT c.id, c.rule, c.row_key, c.ctid
      FROM unnest(p_types) AS t(event_type)
           LEFT JOIN @SCHEMA@.sync_outbox_mark m ON m.event_type = t.event_type,
           LATERAL (SELECT o.id, o.rule, o.row_key, o.ctid FROM @SCHEMA@.sync_outbox o
                     WHERE o.event_type = t.event_type
                       AND o.id >= COALESCE(m.lo, 0)
                       AND (p_routing IS NULL OR o.routing_key = p_routing)
                       AND o.available_at <= now()
                       AND o.attempts < o.max_attempts
                     ORDER BY o.id
                     LIMIT p_limit
                       FOR UPDATE SKIP LOCKED) c
     ORDER BY c.id
     LIMIT p_limit
  )
  -- (no ORDER BY in the aggregates: one Agg feeds all four the same rows in the same order, so the
  -- arrays stay aligned, which is all that follows needs; each ORDER BY was a sort of its own, 25k
  -- of a one-event claim's ~950k instructions: bench/claim_instructions.py --mark-every 20)
  SELECT array_agg(c.id), array_agg(c.rule), array_agg(c.row_key), array_agg(c.ctid)
    INTO c_ids, c_rules, c_keys, c_tids
    FROM cand c;
  IF c_ids IS NULL THEN
    RETURN;
  END IF;
  -- Order per row without a lease (issue 11, bench/issue11/session13-nl13.md D2): for one row,
  -- events commit in id order (the writer's row lock; backfill, apply's load and reconcile --fix
  -- read FOR SHARE), so a row's newest candidate may be claimed once no OLDER event of the row is
  -- in flight (claimed, unexpired) anywhere or locked by another transaction ('held' otherwise);
  -- the row's other older events are superseded with it (deleted, 'coalesced'; dead-lettered when
  -- their attempts are spent), below. One probe of
  -- sync_outbox_row_idx (jsonb_hash_extended(row_key, 0), migration 012) per candidate collects
  -- its row's older events; in a drain of distinct rows it finds none (the candidate itself is
  -- not older than itself). A probe per candidate, never a join: `OFFSET 0` keeps the subquery
  -- from being flattened (the planner then hashed the candidates and walked the whole index: every
  -- event acknowledged behind a held snapshot, 60,734 buffers per claim of 256 after 60,000 in
  -- test_outbox_plan.py), and `o.id + 0` lets no index on id serve it. One candidate (low rates):
  -- the same probe as a plain EXISTS (no unnest, no aggregate), the event claimed at once.
  IF cardinality(c_ids) = 1 THEN
    IF NOT EXISTS (SELECT 1 FROM @SCHEMA@.sync_outbox o
                    WHERE pg_catalog.jsonb_hash_extended(o.row_key, 0) = pg_catalog.jsonb_hash_extended(c_keys[1], 0)
                      AND o.rule = c_rules[1] AND o.row_key = c_keys[1] AND o.id + 0 < c_ids[1]) THEN
      RETURN QUERY
      UPDATE @SCHEMA@.sync_outbox o
         SET attempts = o.attempts + 1, claimed_by = p_owner, claimed_at = now(),
             available_at = now() + p_lease_ms * interval '1 millisecond'
       WHERE o.ctid = c_tids[1]
      RETURNING o.id, o.rule, o.op, o.row_key, o.payload, o.attempts, o.max_attempts, o.created_at,
                o.event_type, o.vec;
      IF FOUND AND current_setting('synchronous_commit') IN ('off', 'local') THEN
        SET LOCAL synchronous_commit TO DEFAULT;  -- Durability, below
      END IF;
      RETURN;
    END IF;
  END IF;
  -- One probe per distinct row, for its events older than the row's newest candidate (its older
  -- candidates among them): linear in the batch whatever the rows (per candidate, a hot row's 256
  -- events cost 32,640 probe rows: rv13, M1).
  SELECT array_agg(x.id), array_agg(x.tid), array_agg(x.rule), array_agg(x.row_key), array_agg(x.in_flight),
         array_agg(x.spent)
    INTO o_ids, o_tids, o_rules, o_keys, o_busy, o_spent
    FROM (SELECT c.rule, c.row_key, max(c.id) AS top
            FROM unnest(c_ids, c_rules, c_keys) AS c(id, rule, row_key) GROUP BY c.rule, c.row_key) c,
         LATERAL (SELECT o.id, o.ctid AS tid, o.rule, o.row_key,
                         o.claimed_by IS NOT NULL AND o.available_at > now() AS in_flight,
                         o.attempts >= o.max_attempts AS spent
                    FROM @SCHEMA@.sync_outbox o
                   WHERE pg_catalog.jsonb_hash_extended(o.row_key, 0) = pg_catalog.jsonb_hash_extended(c.row_key, 0)
                     AND o.rule = c.rule AND o.row_key = c.row_key AND o.id + 0 < c.top
                  OFFSET 0) x;
  IF o_ids IS NULL THEN
    -- The common case (a drain's): every candidate is its row's oldest event, and only one: all
    -- are claimed by one plain UPDATE. The rows are read by the
    -- address the candidate scan locked them at (a Tid Scan: a row locked FOR UPDATE by this
    -- transaction keeps it until this statement changes it): by id, a generic plan could take
    -- (event_type, id) with `id = ANY` on its second column, walked from the left edge once per
    -- id (notes/st6.md).
    RETURN QUERY
    WITH cl AS (
      UPDATE @SCHEMA@.sync_outbox o
         SET attempts = o.attempts + 1, claimed_by = p_owner, claimed_at = now(),
             available_at = now() + p_lease_ms * interval '1 millisecond'
       WHERE o.ctid = ANY (c_tids)
      RETURNING o.id, o.rule, o.op, o.row_key, o.payload, o.attempts, o.max_attempts, o.created_at,
                o.event_type, o.vec
    )
    SELECT * FROM cl ORDER BY cl.id;  -- in id order (a Tid Scan returns them by address)
    IF FOUND AND current_setting('synchronous_commit') IN ('off', 'local') THEN
      SET LOCAL synchronous_commit TO DEFAULT;  -- Durability, below
    END IF;
    RETURN;
  END IF;
  -- Older events not in flight (rv13, H3): every one is locked (SKIP LOCKED; the conditions
  -- re-checked on its newest version; the row's own older candidates, locked already, are
  -- returned as they are) and superseded below with the row's older candidates, whatever it waits
  -- for: a retry backoff (D3: the lease let a newer event win at once), a claim that expired, a
  -- type or routing key no worker claims any more (it would hold the row for good). One with its
  -- attempts spent is dead-lettered instead, here and now, as the sweep's window would (never a
  -- silent delete; it holds the row no longer). Only a claim running (in flight: bounded by its
  -- lease) or a lock this claim cannot take holds a row ('held').
  SELECT array_agg(l.tid), array_agg(l.tid) FILTER (WHERE l.spent) INTO l_tids, x_tids
    FROM (SELECT o.ctid AS tid, o.attempts >= o.max_attempts AS spent FROM @SCHEMA@.sync_outbox o
           WHERE o.ctid = ANY (ARRAY(SELECT x.tid FROM unnest(o_tids, o_busy) AS x(tid, busy) WHERE NOT x.busy))
             AND NOT (o.claimed_by IS NOT NULL AND o.available_at > now())
             FOR UPDATE OF o SKIP LOCKED) l;
  IF x_tids IS NOT NULL THEN
    WITH x AS (
      DELETE FROM @SCHEMA@.sync_outbox o WHERE o.ctid = ANY (x_tids) RETURNING o
    )
    SELECT @SCHEMA@.sync_outbox_bury(ARRAY(SELECT x.o FROM x)) INTO n_buried;
  END IF;
  RETURN QUERY
  WITH g AS (
    -- each candidate row: its candidates and newest one, its older events locked above (deleted
    -- when the row is claimed), and whether one holds it. Grouped, not joined: a join of two CTEs
    -- is planned from their estimates, which are guesses here, and under estimates near one row
    -- the planner picks a nested loop: every pair of candidates compared, 65,536 row-key
    -- comparisons per join at batch 256 (250 µs per event in bench/outbox_sql_bench.py;
    -- test_outbox_plan.py).
    SELECT x.rule, x.row_key,
           array_agg(x.id) FILTER (WHERE x.kind = 'c') AS ids, array_agg(x.tid) FILTER (WHERE x.kind = 'c') AS tids,
           max(x.id) FILTER (WHERE x.kind = 'c') AS top,
           array_agg(x.tid) FILTER (WHERE x.kind = 'd') AS dtids, bool_or(x.kind = 'h') AS busy
      FROM (SELECT c.rule, c.row_key, c.id, c.tid, 'c'::text AS kind
              FROM unnest(c_ids, c_rules, c_keys, c_tids) AS c(id, rule, row_key, tid)
            UNION ALL
            SELECT o.rule, o.row_key, o.id, o.tid,
                   CASE WHEN o.busy OR NOT (o.tid = ANY (COALESCE(l_tids, '{}'))) THEN 'h'
                        WHEN o.tid = ANY (COALESCE(x_tids, '{}')) THEN 'x' ELSE 'd' END
              FROM unnest(o_ids, o_tids, o_rules, o_keys, o_busy) AS o(id, tid, rule, row_key, busy)) x
     GROUP BY x.rule, x.row_key
  ), sup AS (
    -- a claimed row's older events (a list of row addresses, no join to plan; see `cl`)
    DELETE FROM @SCHEMA@.sync_outbox o
     WHERE o.ctid = ANY (ARRAY(SELECT s.tid FROM g, unnest(g.dtids) AS s(tid) WHERE NOT g.busy))
    RETURNING o.id, o.rule, o.row_key, o.event_type
  ), cl AS (
    -- a claimed row's newest candidate (locked above): the event to apply. Rows are read by the
    -- address the candidate scan locked them at (a Tid Scan: no index, no statistics; a row locked
    -- FOR UPDATE by this transaction keeps its address until this statement changes it, and the
    -- lock returned its newest version). By id, the generic plan took (event_type, id) with
    -- `id = ANY` on its second column whenever the statistics saw a drained outbox (reltuples 0),
    -- which PostgreSQL 15 walks from the left edge once per element: batch x index size, and the
    -- index grows by every event acknowledged while anything holds the xmin horizon (an ANALYZE of
    -- a big table, a report, pg_dump): claims of 256 went 200 -> 800 ms within 10 s of a held
    -- snapshot (test_outbox_plan.py).
    UPDATE @SCHEMA@.sync_outbox o
       SET attempts = o.attempts + 1, claimed_by = p_owner, claimed_at = now(),
           available_at = now() + p_lease_ms * interval '1 millisecond'
     WHERE o.ctid = ANY (ARRAY(SELECT s.tid FROM g, unnest(g.ids, g.tids) AS s(id, tid) WHERE NOT g.busy AND s.id = g.top))
    RETURNING o.id, o.rule, o.op, o.row_key, o.payload, o.attempts, o.max_attempts, o.created_at,
              o.event_type, o.vec
  )
  -- (in id order, as the rows come by id: a Tid Scan returns them in the order of their addresses)
  (SELECT * FROM cl ORDER BY cl.id)
  UNION ALL
  (SELECT s.id, s.rule, 'coalesced'::text, s.row_key, NULL::json, 0, 0, NULL::timestamptz, s.event_type,
          NULL::real[]
     FROM sup s ORDER BY s.id)
  UNION ALL
  SELECT h.n, NULL::text, 'held'::text, NULL::jsonb, NULL::json, 0, 0, NULL::timestamptz, NULL::text,
         NULL::real[]
    FROM (SELECT count(*) AS n FROM g WHERE p_held AND g.busy) h
   WHERE h.n > 0;
  -- Durability. The daemon's sessions commit with synchronous_commit off ([postgres]
  -- daemon_synchronous_commit): a crash then loses a suffix of its transactions, which only
  -- re-delivers events. A row's newer event E2 is claimable only once its older E1 left the outbox
  -- (E1's ack, earlier in WAL, or this claim's own delete); a claim that returns rows commits with
  -- the server's (role's, database's) setting when the session's is off or local (not waiting for a
  -- synchronous standby), so once E2 may reach Qdrant, E1's ack is durable too, and a crash can
  -- never bring E1 back to be applied over E2.
  IF FOUND AND current_setting('synchronous_commit') IN ('off', 'local') THEN
    SET LOCAL synchronous_commit TO DEFAULT;
  END IF;
END
$p2q$;

-- Report the outcome of claimed events.
--   done    applied (or nothing to do): deleted
--   retry   failed, will be tried again after p_delay_ms (attempts were counted at claim)
--   dead    exhausted or hopeless: moved to sync_outbox_dead with p_error
--   requeue not the event's fault (breaker open, shutdown): the attempt is given back
--   release (a daemon from before migration 015 gave a row's lease back): nothing to do
-- Only events still claimed by p_owner are touched: a claim that expired and was taken over by
-- another worker is left to that worker. Returns how many events were updated. p_rules and p_keys
-- are no longer read (they named the leases to give back); kept for the daemon's call.
CREATE OR REPLACE FUNCTION @SCHEMA@.sync_outbox_ack(p_owner text, p_ids bigint[], p_rules text[],
    p_keys jsonb[], p_outcomes text[], p_delay_ms integer[], p_errors text[])
RETURNS integer
LANGUAGE plpgsql
SET enable_seqscan = off SET enable_bitmapscan = off SET plan_cache_mode = force_generic_plan SET jit = off
AS $p2q$
DECLARE
  n integer;
BEGIN
  IF p_outcomes <@ ARRAY['done', 'release'] THEN
    -- the common case, every event applied: only the statement it needs (each CTE of the general
    -- case below costs executor start-up at every call, used or not)
    DELETE FROM @SCHEMA@.sync_outbox o WHERE o.id = ANY (p_ids) AND o.claimed_by = p_owner;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
  END IF;
  WITH r AS (
    SELECT * FROM unnest(p_ids, p_outcomes, p_delay_ms, p_errors) AS t(id, outcome, delay_ms, err)
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
                                           op, payload, vec, attempts, max_attempts, last_error, created_at)
    SELECT g.id, g.event_type, g.routing_key, g.rule, g.source_table, g.row_key, g.op, g.payload, g.vec,
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
  )
  -- (every data-modifying CTE runs to completion whether or not it is read)
  SELECT (SELECT count(*) FROM done) + (SELECT count(*) FROM gone) + (SELECT count(*) FROM again) INTO n;
  RETURN n;
END
$p2q$;

-- An ack and the next claim in one statement: one round trip and one transaction instead of two.
-- A worker whose batch finished lets its ack ride on its next claim when that claim comes soon
-- (src/worker.c). The ack runs first, so the claim can take the newer events of the rows it
-- acknowledged. The daemon calls
-- sync_outbox_claim with the ack's arrays directly (no nested call); this is the same by name.
CREATE OR REPLACE FUNCTION @SCHEMA@.sync_outbox_ack_claim(p_owner text, p_ids bigint[], p_rules text[],
    p_keys jsonb[], p_outcomes text[], p_delay_ms integer[], p_errors text[],
    p_types text[], p_routing text, p_limit integer, p_lease_ms integer)
RETURNS TABLE (id bigint, rule text, op text, row_key jsonb, payload json, attempts integer,
               max_attempts integer, created_at timestamptz, event_type text, vec real[])
LANGUAGE plpgsql AS $p2q$
BEGIN
  RETURN QUERY SELECT * FROM @SCHEMA@.sync_outbox_claim(p_owner, p_types, p_routing, p_limit, p_lease_ms, true,
                                                        p_ids, p_rules, p_keys, p_outcomes, p_delay_ms, p_errors);
END
$p2q$;

-- ---- slow recovery: the sweep (sync_outbox_recover_step) ----------------------------------------
-- Frees the claims of owners whose backend is gone (a lost connection of a live daemon, a crashed
-- one the liveness check did not reap, a PostgreSQL restart) once they are older than p_grace_ms,
-- so their events flow again without waiting for the claim to expire, and dead-letters events
-- whose last claim ended after their final attempt (a poison event that crashes the worker is
-- counted at claim, so it cannot loop forever). Issue 11: no statement scans the backlog.
--
-- In-flight work is found where claims take it, never through an index on claimed_by (which would
-- make every claim UPDATE non-HOT, migration 004): a claim walks (event_type, id) from the type's
-- low-water mark and takes the first claimable events, so in-flight events sit at the front of
-- their type, among its first events from the mark, with the retrying, held and exhausted ones
-- (sync_outbox_front, below: the walk sync_outbox_status makes every 2 s). A claim beyond the
-- front (a front of more than p_limit events) is found by the outbox window (step 3, which walks
-- the whole outbox in id order, window by window, wrapping around), and, at worst, is claimable
-- again when it expires (available_at = claim + lease): late, never lost.
--
-- Exhausted events (attempts >= max_attempts, available_at <= now(); the claim skips them): a
-- final attempt's claim held by an owner that is gone is dead-lettered at once instead of freed;
-- anything else — born dead (max_attempts 0, written by a trigger whose rule its table no longer
-- fits: never claimed), a final-attempt claim that expired while its owner stayed alive (a hung
-- process), a final attempt acked `retry` by another build — is found by the window (step 3).
-- Which owners are gone: a connection the registry (sync_outbox_instance) knows is gone has its
-- claims freed once, one grace after it went (step 0; its registry row is deleted with them).
-- Owners the registry does not know — a PostgreSQL restart empties it, the reap drops rows older
-- than the postmaster — are recognised by their backend's absence from pg_stat_activity, their
-- claims older than the grace.
-- p_limit NULL: everything in one call (sync_outbox_recover). Returns the events freed or
-- dead-lettered from gone owners' claims, the exhausted events dead-lettered by the window, and
-- the window's cursor for the next call (NULL: the walk wrapped around). p_after_rule and
-- p_after_key (the cursor of a walk of the lease table, before migration 015) are ignored;
-- last_rule and last_key are always NULL.
-- Without pg_read_all_stats, backend_start of other roles' sessions reads as NULL: such an
-- owner counts as alive while its pid exists (never "recover" a claim that is still working).
CREATE OR REPLACE FUNCTION @SCHEMA@.sync_outbox_recover_step(p_grace_ms integer, p_after_rule text,
    p_after_key jsonb, p_after_id bigint, p_limit integer)
RETURNS TABLE (freed integer, buried integer, last_rule text, last_key jsonb, last_id bigint)
LANGUAGE plpgsql
-- index access only (a window is a range of a primary key; stale statistics must not turn it
-- into a scan); each call plans with its actual window size. jit off: a plan whose only path is
-- a disabled one (a small catalog, pg_stat_activity's) costs over jit_above_cost, and compiling
-- it would cost ~100 ms per statement.
SET enable_seqscan = off SET enable_bitmapscan = off SET plan_cache_mode = force_custom_plan SET jit = off
AS $p2q$
#variable_conflict use_column
DECLARE
  live text[];
  hidden integer[];
  lost text[];
  dead_ids bigint[];
  g_ids bigint[];
  g_owners text[];
  n bigint;
BEGIN
  freed := 0; buried := 0; last_rule := NULL; last_key := NULL;
  SELECT COALESCE(array_agg(a.pid::text || '.' || (extract(epoch FROM a.backend_start) * 1000000)::bigint::text)
                  FILTER (WHERE a.backend_start IS NOT NULL), '{}'),
         COALESCE(array_agg(a.pid) FILTER (WHERE a.backend_start IS NULL), '{}')
    INTO live, hidden FROM pg_stat_activity a;
  -- 0. connections the registry knows are gone (gone_since, set by the liveness check) since
  -- before the grace: every claim of theirs was taken before the backend went, so all of them are
  -- due now. Their registry rows are deleted (a process all of whose connections are gone is
  -- sync_outbox_reap's, seconds after; rows it is deleting are locked and skipped here).
  WITH r AS (
    DELETE FROM @SCHEMA@.sync_outbox_instance i
     WHERE i.owner IN (SELECT i2.owner FROM @SCHEMA@.sync_outbox_instance i2
                        WHERE i2.gone_since < now() - p_grace_ms * interval '1 millisecond'
                          AND NOT (i2.owner = ANY (live)) AND NOT (i2.pid = ANY (hidden))
                          FOR UPDATE SKIP LOCKED)
    RETURNING i.owner
  )
  SELECT COALESCE(array_agg(r.owner), '{}') INTO lost FROM r;
  -- 1. the front of every type (where claims take their events) and 3. the window of the outbox
  -- (p_limit events in id order after the cursor): claims of gone owners, and exhausted events
  WITH w AS (
    SELECT o.id, o.claimed_by, o.claimed_at, o.available_at > now() AS claimed,
           o.attempts >= o.max_attempts AND o.available_at <= now() AS exhausted
      FROM @SCHEMA@.sync_outbox o
     WHERE o.id > COALESCE(p_after_id, -9223372036854775808)
     ORDER BY o.id LIMIT p_limit
  ), c AS (
    SELECT w.id, w.claimed_by, w.claimed_at FROM w WHERE w.claimed AND w.claimed_by IS NOT NULL
    UNION
    -- The fronts only when a gone owner can have claims there (rv13, M2: 137-163 ms per sweep at
    -- 200,000 events over 4 types, per replica): a lost connection the registry knows (the first
    -- 20,000 events of each type, whatever the window, so its claims there come back one grace
    -- after it went, as its leases did), or owners it cannot know, i.e. a PostgreSQL restart within
    -- the hour (the registry is unlogged: the previous postmaster's backends' claims). Otherwise
    -- the window, then the claim's expiry, find them (late, never lost), as the lease walk's
    -- window did before migration 015: so also after a failover to a standby whose postmaster
    -- started more than an hour before (its registry is empty, the gate does not see it). After a
    -- restart, the first 5,000 of each type (the sample sync_outbox_status counts in-flight events
    -- in), not the window's 20,000: with the window beside it, 20,000 read a third of the outbox's
    -- pages in test_recover_window's big backlog, over its bound.
    SELECT f.id, f.claimed_by, f.claimed_at
      FROM @SCHEMA@.sync_outbox_front(CASE WHEN cardinality(lost) > 0 THEN GREATEST(p_limit, 20000)
                                           ELSE LEAST(p_limit, 5000) END) f
     WHERE cardinality(lost) > 0 OR pg_postmaster_start_time() > now() - interval '1 hour'
  ), g AS (
    SELECT c.id, c.claimed_by FROM c
     WHERE c.claimed_by = ANY (lost)
        OR (NOT (c.claimed_by = ANY (live))
            AND NOT (split_part(c.claimed_by, '.', 1)::integer = ANY (hidden))
            AND c.claimed_at < now() - p_grace_ms * interval '1 millisecond')
  )
  SELECT (SELECT count(*) FROM w), (SELECT max(w.id) FROM w),
         ARRAY(SELECT w.id FROM w WHERE w.exhausted),
         ARRAY(SELECT g.id FROM g), ARRAY(SELECT DISTINCT g.claimed_by FROM g)
    INTO n, last_id, dead_ids, g_ids, g_owners;
  IF p_limit IS NULL OR n < p_limit THEN last_id := NULL; END IF;
  -- 2. free them (the common case: none), each re-checked on its current version: still claimed,
  -- unexpired, by one of those owners (a claim taken meanwhile by a live owner is not touched); a
  -- claim that was its event's final attempt is dead-lettered (sync_outbox_free_claimed)
  IF cardinality(g_ids) > 0 THEN
    freed := @SCHEMA@.sync_outbox_free_claimed(g_ids, g_owners);
  END IF;
  IF cardinality(dead_ids) > 0 THEN
    WITH exhausted AS (
      DELETE FROM @SCHEMA@.sync_outbox o
       WHERE o.id = ANY (dead_ids) AND o.attempts >= o.max_attempts AND o.available_at <= now()
      RETURNING o
    )
    SELECT @SCHEMA@.sync_outbox_bury(ARRAY(SELECT e.o FROM exhausted e)) INTO buried;
  END IF;
  RETURN NEXT;
END
$p2q$;

-- The event types of the outbox's events: a skip scan of sync_outbox_claim_idx from the right (one
-- descent per type, landing on its newest events).
CREATE OR REPLACE FUNCTION @SCHEMA@.sync_outbox_types()
RETURNS SETOF text
LANGUAGE sql STABLE AS $p2q$
  WITH RECURSIVE o(et) AS (
    SELECT (SELECT x.event_type FROM @SCHEMA@.sync_outbox x WHERE x.event_type IS NOT NULL  -- (migration 011's predicate)
              ORDER BY x.event_type DESC, x.id DESC LIMIT 1)
    UNION ALL
    SELECT (SELECT x.event_type FROM @SCHEMA@.sync_outbox x WHERE x.event_type < o.et
             ORDER BY x.event_type DESC, x.id DESC LIMIT 1)
      FROM o WHERE o.et IS NOT NULL
  )
  SELECT o.et FROM o WHERE o.et IS NOT NULL
$p2q$;

-- The claimed, unexpired events (claimed_by not NULL, available_at > now()) among the first p_cap
-- events of every type from its low-water mark (p_cap NULL: all of them): where claims take their
-- events, hence where in-flight ones are (recover_step above; sync_outbox_reap). The types come
-- from a skip scan of sync_outbox_claim_idx (sync_outbox_types); per type one range scan of the
-- same index from the mark, in id order, as sync_outbox_status reads it.
CREATE OR REPLACE FUNCTION @SCHEMA@.sync_outbox_front(p_cap integer)
RETURNS TABLE (id bigint, claimed_by text, claimed_at timestamptz)
LANGUAGE sql STABLE AS $p2q$
  SELECT x.id, x.claimed_by, x.claimed_at
    FROM @SCHEMA@.sync_outbox_types() AS t(event_type),
         LATERAL (SELECT o.id, o.claimed_by, o.claimed_at, o.available_at FROM @SCHEMA@.sync_outbox o
                   WHERE o.event_type = t.event_type AND o.id >= @SCHEMA@.sync_outbox_mark_lo(t.event_type)
                   ORDER BY o.event_type, o.id LIMIT p_cap) x
   WHERE x.claimed_by IS NOT NULL AND x.available_at > now()
$p2q$;

-- Dead-letter events the recovery deleted from the outbox (whole rows, from a DELETE ... RETURNING
-- in the same statement): an event whose claim was its final attempt and whose worker reported
-- no outcome (recover_step's window, sync_outbox_free_claimed). A dead letter already there is
-- kept. Returns how many events were given. (The ack writes its own dead letters: its error and
-- conflict rule differ, and it stays one statement.)
CREATE OR REPLACE FUNCTION @SCHEMA@.sync_outbox_bury(p_events @SCHEMA@.sync_outbox[])
RETURNS integer
LANGUAGE sql AS $p2q$
  INSERT INTO @SCHEMA@.sync_outbox_dead (id, event_type, routing_key, rule, source_table, row_key, op,
                                         payload, vec, attempts, max_attempts, last_error, created_at)
  SELECT e.id, e.event_type, e.routing_key, e.rule, e.source_table, e.row_key, e.op, e.payload, e.vec,
         e.attempts, e.max_attempts,
         COALESCE(e.last_error, 'no outcome reported after the final attempt (worker crashed or lease expired)'),
         e.created_at
    FROM unnest(p_events) e
  ON CONFLICT (id) DO NOTHING;
  SELECT cardinality(p_events)
$p2q$;

-- Free gone owners' claims, in one statement: the one place sync_outbox_recover_step and
-- sync_outbox_reap do it. Events p_ids (read through the primary key) that are still claimed,
-- unexpired (available_at > now()), by one of p_owners are freed (claimable now), or dead-lettered
-- when that claim was their final attempt (the claim skips exhausted events). Returns how many.
-- No SET clause: it plans under its caller's settings.
CREATE OR REPLACE FUNCTION @SCHEMA@.sync_outbox_free_claimed(p_ids bigint[], p_owners text[])
RETURNS integer
LANGUAGE plpgsql AS $p2q$
DECLARE
  n integer;
BEGIN
  WITH ev AS (
    UPDATE @SCHEMA@.sync_outbox o SET available_at = now(), claimed_by = NULL
     WHERE o.id = ANY (p_ids) AND o.claimed_by = ANY (p_owners) AND o.available_at > now()
       AND o.attempts < o.max_attempts
    RETURNING 1
  ), gone AS (
    DELETE FROM @SCHEMA@.sync_outbox o
     WHERE o.id = ANY (p_ids) AND o.claimed_by = ANY (p_owners) AND o.available_at > now()
       AND o.attempts >= o.max_attempts
    RETURNING o
  )
  -- (every data-modifying CTE runs to completion whether or not it is read)
  SELECT (SELECT count(*) FROM ev) + @SCHEMA@.sync_outbox_bury(ARRAY(SELECT g.o FROM gone g)) INTO n;
  RETURN n;
END
$p2q$;

-- Everything sync_outbox_recover_step does, over the whole outbox in one call (tests, and whoever
-- wants it all now). Returns the number of events freed.
CREATE OR REPLACE FUNCTION @SCHEMA@.sync_outbox_recover(p_grace_ms integer)
RETURNS integer
LANGUAGE sql AS $p2q$
  SELECT s.freed FROM @SCHEMA@.sync_outbox_recover_step(p_grace_ms, NULL, NULL, NULL, NULL) s
$p2q$;

-- ---- fast crash recovery: the daemon registry (migration 003) -----------------------------------
-- A process is dead when none of its registered backends exists any more (a killed process closes
-- its sockets, so its backends exit at once); its claims are then freed without the grace that a
-- live process's lost connection needs. See README "Guarantees" and src/recover.c.

-- Register the calling connection as one of p_instance's; returns its owner id.
CREATE OR REPLACE FUNCTION @SCHEMA@.sync_outbox_register(p_instance text)
RETURNS text
LANGUAGE sql AS $p2q$
  INSERT INTO @SCHEMA@.sync_outbox_instance AS i (owner, instance, pid, backend_start)
  SELECT a.pid::text || '.' || (extract(epoch FROM a.backend_start) * 1000000)::bigint::text,
         p_instance, a.pid, a.backend_start
    FROM pg_stat_activity a WHERE a.pid = pg_backend_pid()
  ON CONFLICT (owner) DO UPDATE SET instance = EXCLUDED.instance, registered_at = now(), gone_since = NULL
  RETURNING i.owner
$p2q$;

-- The liveness check every daemon runs on a short timer of its own. Cheap when nothing died: one
-- read of the registry joined with pg_stat_activity, no write. It
--   1. marks registered backends that are gone (gone_since; a backend whose backend_start is
--      hidden from this role counts as alive while its pid exists, as in sync_outbox_recover);
--   2. finds the processes all of whose backends have been gone for p_dead_ms, deletes their
--      registry rows (one reaper wins; concurrent checks skip locked rows) and frees their
--      claims at once;
--   3. drops rows registered before the postmaster started (a restart closed every backend
--      whatever the state of their processes: those claims take sync_outbox_recover's grace) and
--      gone rows of live processes older than an hour (their claims, if any, take the grace too).
-- Returns one row per reaped process: its instance id, the events freed (or dead-lettered: the claim
-- was their final attempt) and 0 (the leases released, before migration 015).
CREATE OR REPLACE FUNCTION @SCHEMA@.sync_outbox_reap(p_dead_ms integer)
RETURNS TABLE (instance text, events integer, leases integer)
LANGUAGE plpgsql AS $p2q$
#variable_conflict use_column
DECLARE
  r record;
  owners text[];
  k_ids bigint[];
BEGIN
  IF NOT EXISTS (SELECT 1 FROM @SCHEMA@.sync_outbox_instance i
                  WHERE i.gone_since IS NOT NULL
                     OR NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = i.pid
                                       AND (a.backend_start IS NULL OR a.backend_start = i.backend_start))) THEN
    RETURN; -- every registered backend is alive: the common case, no write
  END IF;
  DELETE FROM @SCHEMA@.sync_outbox_instance i
   WHERE i.owner IN (SELECT i2.owner FROM @SCHEMA@.sync_outbox_instance i2
                      WHERE i2.registered_at < pg_postmaster_start_time()
                         OR i2.gone_since < now() - interval '1 hour'
                        FOR UPDATE SKIP LOCKED);
  UPDATE @SCHEMA@.sync_outbox_instance i SET gone_since = now()
   WHERE i.owner IN (SELECT i2.owner FROM @SCHEMA@.sync_outbox_instance i2
                      WHERE i2.gone_since IS NULL
                        -- registered before this transaction began, hence before its one
                        -- pg_stat_activity snapshot (taken by the first read, kept until commit):
                        -- a backend registered later is missing from it, yet alive
                        AND i2.registered_at < now()
                        AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = i2.pid
                                           AND (a.backend_start IS NULL OR a.backend_start = i2.backend_start))
                        FOR UPDATE SKIP LOCKED);
  FOR r IN SELECT i.instance FROM @SCHEMA@.sync_outbox_instance i GROUP BY i.instance
            HAVING bool_and(COALESCE(i.gone_since <= now() - p_dead_ms * interval '1 millisecond', false)) LOOP
    WITH gone AS (
      DELETE FROM @SCHEMA@.sync_outbox_instance i
       WHERE i.owner IN (SELECT i2.owner FROM @SCHEMA@.sync_outbox_instance i2
                          WHERE i2.instance = r.instance
                            -- not a connection the process registered since the loop's query:
                            -- it is alive again, and that connection's claims are live ones
                            AND i2.gone_since <= now() - p_dead_ms * interval '1 millisecond'
                            FOR UPDATE SKIP LOCKED)
      RETURNING i.owner
    )
    SELECT array_agg(g.owner) INTO owners FROM gone g;
    CONTINUE WHEN owners IS NULL; -- another daemon's check is reaping it
    -- the owners' in-flight events are at the front of their types (sync_outbox_front: the first
    -- P2Q_OUTBOX_RECOVER_WINDOW of each from its mark; see recover_step). A claim beyond it is
    -- the sweep's window's, or claimable again when it expires. A claim that was its event's
    -- final attempt is dead-lettered now (the claim skips exhausted events).
    SELECT array_agg(f.id) INTO k_ids FROM @SCHEMA@.sync_outbox_front(20000) f WHERE f.claimed_by = ANY (owners);
    instance := r.instance; leases := 0;
    events := CASE WHEN k_ids IS NULL THEN 0 ELSE @SCHEMA@.sync_outbox_free_claimed(k_ids, owners) END;
    RETURN NEXT;
  END LOOP;
END
$p2q$;

-- ---- sync_outbox_reclaim_leases: kept for one release (migration 015 dropped the lease table) ---
-- A daemon from before migration 015 calls it on its lease reclaimer's timer (src/lease_gc.c of
-- that release) while it runs beside an upgraded outbox: it answers "nothing reclaimed, the end
-- of the table" (no cursor, not blocked), so that daemon goes on harmlessly. To be dropped in the
-- release after the next.
CREATE OR REPLACE FUNCTION @SCHEMA@.sync_outbox_reclaim_leases(p_after_rule text, p_after_key jsonb,
    p_limit integer)
RETURNS TABLE (reclaimed integer, scanned integer, last_rule text, last_key jsonb, blocked text)
LANGUAGE sql AS $p2q$
  SELECT 0, 0, NULL::text, NULL::jsonb, NULL::text
$p2q$;

-- ---- the backlog as `status`, /status and /metrics show it (src/admin.c) ------------------------
-- Per event type (in sync_outbox or sync_outbox_dead): pending (available_at <= now(): claimable,
-- or exhausted and about to be dead-lettered), in flight (claimed, lease running), retrying
-- (waiting for a backoff), dead, and the age of the oldest pending event. Issue 11: the cost must
-- not grow with the backlog (every replica refreshes it every 2 s, and an idle daemon over a big
-- backlog pays nothing else), so only the first p_cap + 1 events of each type are read, in id
-- order through sync_outbox_claim_idx — the claim's own order, so in-flight and retrying events
-- (claimed by then) and the oldest pending one (ids and created_at are drawn together at insert)
-- are among them; the walk starts at the type's low-water mark (no event of the type is below it,
-- see sync_outbox_mark), not at the drained front of the index. Up to p_cap events of a type,
-- every figure is exact. Beyond, `estimated` is
-- true: the total is the sample's density of ids extrapolated to the type's highest id (one index
-- descent), in_flight and retrying are those counted in the sample, and pending is the rest; the
-- same for dead letters (sync_outbox_dead_type_idx). The event types themselves come from a skip
-- scan of the same indexes, from the right (one descent per type, landing on its newest events:
-- live ones, unless the type has drained entirely).
CREATE OR REPLACE FUNCTION @SCHEMA@.sync_outbox_status(p_cap integer)
RETURNS TABLE (event_type text, pending bigint, in_flight bigint, retrying bigint, dead bigint,
               oldest_pending_age_seconds numeric, estimated boolean)
LANGUAGE plpgsql STABLE
-- index access only, whatever stale statistics say; jit off (see sync_outbox_recover_step)
SET enable_seqscan = off SET enable_bitmapscan = off SET jit = off
AS $p2q$
#variable_conflict use_column
DECLARE
  t text;
  s record;
  lo bigint;
  top bigint;
  total bigint;
BEGIN
  FOR t IN
    WITH RECURSIVE d(et) AS (
      SELECT (SELECT x.event_type FROM @SCHEMA@.sync_outbox_dead x ORDER BY x.event_type, x.id LIMIT 1)
      UNION ALL
      SELECT (SELECT x.event_type FROM @SCHEMA@.sync_outbox_dead x WHERE x.event_type > d.et
               ORDER BY x.event_type, x.id LIMIT 1)
        FROM d WHERE d.et IS NOT NULL
    )
    SELECT o.et FROM @SCHEMA@.sync_outbox_types() AS o(et) UNION SELECT d.et FROM d WHERE d.et IS NOT NULL ORDER BY 1
  LOOP
    event_type := t; estimated := false;
    lo := @SCHEMA@.sync_outbox_mark_lo(t);
    SELECT count(*) AS n,
           count(*) FILTER (WHERE x.available_at <= now()) AS pending,
           count(*) FILTER (WHERE x.claimed_by IS NOT NULL AND x.available_at > now()) AS in_flight,
           count(*) FILTER (WHERE x.claimed_by IS NULL AND x.available_at > now()) AS retrying,
           min(x.created_at) FILTER (WHERE x.available_at <= now()) AS oldest,
           min(x.id) AS lo, max(x.id) AS hi
      INTO s
      FROM (SELECT x.id, x.available_at, x.claimed_by, x.created_at FROM @SCHEMA@.sync_outbox x
             WHERE x.event_type = t AND x.id >= lo ORDER BY x.event_type, x.id LIMIT p_cap + 1) x;
    pending := s.pending; in_flight := s.in_flight; retrying := s.retrying;
    oldest_pending_age_seconds := round(COALESCE(extract(epoch FROM now() - s.oldest), 0)::numeric, 3);
    IF s.n > p_cap THEN
      estimated := true;
      SELECT x.id INTO top FROM @SCHEMA@.sync_outbox x WHERE x.event_type = t
       ORDER BY x.event_type DESC, x.id DESC LIMIT 1;
      total := GREATEST(s.n, round(s.n::numeric * (top - s.lo + 1) / (s.hi - s.lo + 1))::bigint);
      pending := total - s.in_flight - s.retrying;
      IF s.oldest IS NULL THEN -- the sample is all in flight or retrying: the first pending after it
        SELECT round(COALESCE(extract(epoch FROM now() - min(x.created_at)), 0)::numeric, 3)
          INTO oldest_pending_age_seconds
          FROM (SELECT x.created_at, x.available_at FROM @SCHEMA@.sync_outbox x
                 WHERE x.event_type = t AND x.id > s.hi ORDER BY x.event_type, x.id LIMIT 10 * p_cap) x
         WHERE x.available_at <= now();
      END IF;
    END IF;
    SELECT count(*) AS n, min(x.id) AS lo, max(x.id) AS hi INTO s
      FROM (SELECT x.id FROM @SCHEMA@.sync_outbox_dead x
             WHERE x.event_type = t ORDER BY x.event_type, x.id LIMIT p_cap + 1) x;
    dead := s.n;
    IF s.n > p_cap THEN
      estimated := true;
      SELECT x.id INTO top FROM @SCHEMA@.sync_outbox_dead x WHERE x.event_type = t
       ORDER BY x.event_type DESC, x.id DESC LIMIT 1;
      dead := GREATEST(s.n, round(s.n::numeric * (top - s.lo + 1) / (s.hi - s.lo + 1))::bigint);
    END IF;
    RETURN NEXT;
  END LOOP;
END
$p2q$;

-- Whether p_ancestor is an ancestor of p_rel in pg_inherits (partitions and legacy inheritance, a
-- pending DETACH … CONCURRENTLY included), at most 64 levels up; read in the caller's snapshot.
-- sync_outbox_capture_accepts' walk (both of its uses): plpgsql without a SET clause for the same
-- reason as that function, every name and operator pg_catalog-qualified; nothing here raises.
CREATE OR REPLACE FUNCTION @SCHEMA@.sync_outbox_inherits_from(p_rel oid, p_ancestor oid)
RETURNS boolean LANGUAGE plpgsql STABLE AS $p2q$
BEGIN
  RETURN EXISTS (WITH RECURSIVE anc AS (
      SELECT i.inhparent AS relid, 1 AS depth FROM pg_catalog.pg_inherits i WHERE i.inhrelid OPERATOR(pg_catalog.=) p_rel
      UNION ALL
      SELECT i.inhparent, anc.depth OPERATOR(pg_catalog.+) 1 FROM pg_catalog.pg_inherits i JOIN anc
          ON i.inhrelid OPERATOR(pg_catalog.=) anc.relid WHERE anc.depth OPERATOR(pg_catalog.<) 64)
      SELECT FROM anc WHERE anc.relid OPERATOR(pg_catalog.=) p_ancestor);
END
$p2q$;

-- Whether a rule's capture trigger function may write events for the table it fired on: the slow
-- test behind the one the function makes itself (its table's oid and names, written in by `apply`;
-- src/capture_relid.c). The functions are SECURITY DEFINER and, like every function, executable by
-- PUBLIC (revoking it fails the application's new partitions: PARTITION OF, ATTACH), so any role could
-- attach one to a table of its own. Reads only catalogs PUBLIC may read, by oid and by name
-- strings (no regclass: nothing here can raise for a missing table or schema privilege).
-- p_relid/p_tgname: TG_RELID, TG_NAME; p_oid: the rule's table's oid as `apply` found it; p_schema,
-- p_table: the rule's table's names; p_kind: the function's kind ('row', 'insert', 'delete',
-- 'truncate'). The trigger that fired is followed by tgparentid to the root trigger (a partition's
-- clone, at any depth; a partition whose DETACH … CONCURRENTLY is pending or was cancelled keeps
-- its clone and its pg_inherits row, which is how it is still recognised) and that trigger's table
-- up through pg_inherits (TRUNCATE triggers, which `apply` creates on each partition). Accepted
-- (1) when that chain holds the rule's table and the trigger is of the function's kind: (a) by
-- p_oid, unless the rule's name now names another table (a stranger's table that got an oid freed
-- by a restore); (b) by the rule's schema and name, unless the table p_oid still carries a trigger
-- of the same function (the real table renamed, a stranger's table taking its name). Otherwise 0
-- when the trigger is of the function's kind (its NEW/OLD or transition table are the firing
-- statement's rows: the caller writes them to sync_outbox_dead), -1 when not (nothing to read).
-- The reads of pg_trigger/pg_inherits/pg_class use the writer's transaction snapshot (STABLE), the
-- executor the current catalog: a REPEATABLE READ/SERIALIZABLE writer can fire a trigger newer
-- than its snapshot (a partition created or attached since, rv15c H-R1). The chain is then first
-- tested on the current catalog (pg_partition_ancestors), and a trigger not seen never gives -1:
-- 2 when TG_RELID is the rule's table or one of its partitions now, else 3; the caller, which
-- knows TG_LEVEL/TG_WHEN/TG_OP, accepts or dead-letters (capture_relid.c).
CREATE OR REPLACE FUNCTION @SCHEMA@.sync_outbox_capture_accepts(p_relid oid, p_tgname name, p_oid oid,
    p_schema name, p_table name, p_kind text)
RETURNS integer LANGUAGE plpgsql STABLE AS $p2q$
-- plpgsql, its plans kept for the session, and no SET clause (a SQL function with one is never
-- inlined: it started its recursive CTEs' plan again on every call, ~354,000 instructions a row):
-- every name and operator is pg_catalog-qualified instead, as the caller's search_path applies.
-- The common case (a partition's clone of the table's trigger) is three single-row catalog reads.
-- Nothing here raises: every SELECT INTO finds at most one row, and no cast.
DECLARE
  v_foid pg_catalog.oid;     -- the fired trigger's function
  v_kind pg_catalog.bool;    -- the fired trigger is of p_kind
  v_up pg_catalog.oid;       -- the parent of the trigger reached (0: that one is the root)
  v_root pg_catalog.oid;     -- the table of the trigger reached: the root's, once v_up = 0
  v_named pg_catalog.oid;    -- the table called p_schema.p_table now
  v_depth pg_catalog.int4 := 0;
BEGIN
  SELECT t.tgfoid, CASE WHEN p_kind OPERATOR(pg_catalog.=) 'row'
                          THEN (t.tgtype OPERATOR(pg_catalog.&) 67) OPERATOR(pg_catalog.=) 1
                        WHEN p_kind OPERATOR(pg_catalog.=) 'insert'
                          THEN (t.tgtype OPERATOR(pg_catalog.&) 71) OPERATOR(pg_catalog.=) 4
                               AND t.tgnewtable OPERATOR(pg_catalog.=) 'p2q_new'
                        WHEN p_kind OPERATOR(pg_catalog.=) 'delete'
                          THEN (t.tgtype OPERATOR(pg_catalog.&) 75) OPERATOR(pg_catalog.=) 8
                               AND t.tgoldtable OPERATOR(pg_catalog.=) 'p2q_old'
                        WHEN p_kind OPERATOR(pg_catalog.=) 'truncate'
                          THEN (t.tgtype OPERATOR(pg_catalog.&) 32) OPERATOR(pg_catalog.=) 32
                        ELSE false END, t.tgparentid, t.tgrelid
    INTO v_foid, v_kind, v_up, v_root
    FROM pg_catalog.pg_trigger t
   WHERE t.tgrelid OPERATOR(pg_catalog.=) p_relid AND t.tgname OPERATOR(pg_catalog.=) p_tgname;
  IF NOT v_kind THEN
    RETURN -1; -- seen, and not of the kind (NULL: not seen, below)
  END IF;
  -- one statement each, single-table lookups: an executor start costs per plan node (a join of
  -- the first two was ~60,000 instructions more a call)
  SELECT c.oid INTO v_named FROM pg_catalog.pg_class c
   WHERE c.relname OPERATOR(pg_catalog.=) p_table AND c.relnamespace OPERATOR(pg_catalog.=)
         (SELECT n.oid FROM pg_catalog.pg_namespace n WHERE n.nspname OPERATOR(pg_catalog.=) p_schema);
  -- (b): the rule's name names another table than p_oid: it is the one looked for, unless p_oid
  -- still carries a trigger of this function of its own (not a clone) and is not one of the named
  -- table's partitions (after a restore the stale oid can be a partition's now: rv15b H3)
  IF v_named OPERATOR(pg_catalog.<>) p_oid THEN
    IF v_foid IS NULL THEN
      RETURN 3; -- the fired trigger not seen: its function unknown, (b) undecided
    END IF;
    IF EXISTS (SELECT FROM pg_catalog.pg_trigger t WHERE t.tgrelid OPERATOR(pg_catalog.=) p_oid
                  AND t.tgfoid OPERATOR(pg_catalog.=) v_foid AND t.tgparentid OPERATOR(pg_catalog.=) 0)
       AND NOT @SCHEMA@.sync_outbox_inherits_from(p_oid, v_named) THEN
      RETURN 0;
    END IF;
    p_oid := v_named;
  END IF;
  -- the current catalog first (pg_partition_ancestors reads pg_inherits with the catalog snapshot,
  -- not the transaction's: a partition created or attached after a REPEATABLE READ writer's
  -- snapshot is found, rv15c H-R1; only the table's owner makes its partitions). Not for legacy
  -- inheritance nor a pending DETACH (the walks below)
  IF p_relid OPERATOR(pg_catalog.=) p_oid OR EXISTS (SELECT FROM pg_catalog.pg_partition_ancestors(p_relid) a
      WHERE a.relid::pg_catalog.oid OPERATOR(pg_catalog.=) p_oid) THEN
    RETURN CASE WHEN v_kind THEN 1 ELSE 2 END; -- 2: the fired trigger not seen, the caller decides by TG_LEVEL
  END IF;
  IF v_kind IS NULL THEN
    RETURN 3; -- the fired trigger not seen (newer than this snapshot): never -1, the caller decides
  END IF;
  -- up to the root trigger (a clone of a clone: a sub-partition), at most 64 levels
  WHILE v_up OPERATOR(pg_catalog.<>) 0 AND v_depth OPERATOR(pg_catalog.<) 64 LOOP
    SELECT u.tgparentid, u.tgrelid INTO v_up, v_root FROM pg_catalog.pg_trigger u WHERE u.oid OPERATOR(pg_catalog.=) v_up;
    v_depth := v_depth OPERATOR(pg_catalog.+) 1;
  END LOOP;
  IF v_up IS NULL OR v_up OPERATOR(pg_catalog.<>) 0 THEN
    RETURN 0; -- no root trigger: nothing holds the rule's table
  END IF;
  -- (a), or (b) with p_oid now the named table: the root trigger's table or one of its ancestors
  IF v_root OPERATOR(pg_catalog.=) p_oid THEN
    RETURN 1;
  END IF;
  IF @SCHEMA@.sync_outbox_inherits_from(v_root, p_oid) THEN
    RETURN 1;
  END IF;
  RETURN 0;
END
$p2q$;

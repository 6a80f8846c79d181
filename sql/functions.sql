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
-- A claim's owner is "<backend pid>.<backend start µs>" of the claiming connection, so the events and
-- leases of a crashed daemon are recognised (its backends are gone) and freed: by sync_outbox_reap()
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
-- Returns one row per event to apply (op upsert|delete), one per superseded event (op 'coalesced':
-- deleted, an equal or newer event of its row was claimed), and one per row whose lease was taken
-- with nothing left to apply (op 'release': the caller gives the lease back with its ack).
-- With p_held, one more row (op 'held', id = how many rows) when candidates were held back
-- because another claim (maybe the caller's own earlier one) holds their row's lease: the caller
-- claims again after its next ack instead of after every ack (an ack's re-claim is otherwise
-- empty most of the time at low rates).
-- Candidates are locked FOR UPDATE SKIP LOCKED, so concurrent claimers pick disjoint events; the
-- lease upsert (in key order, so concurrent claimers cannot deadlock) admits one claimer per row.
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
  won_id bigint;
  w_rules text[];
  w_keys jsonb[];
  w_ids bigint[];
  w_sum numeric;
BEGIN
  IF p_ack_ids IS NOT NULL THEN
    IF cardinality(p_ack_ids) = 1 AND p_ack_outcomes[1] IN ('done', 'release') THEN
      -- one event applied (or one lease to give back): sync_outbox_ack's common case as two
      -- plain statements
      DELETE FROM @SCHEMA@.sync_outbox o WHERE o.id = p_ack_ids[1] AND o.claimed_by = p_owner;
      UPDATE @SCHEMA@.sync_outbox_lease l SET owner = NULL, expires_at = NULL, released_at = now()
       WHERE l.key_hash = pg_catalog.jsonb_hash_extended(p_ack_keys[1], 0) AND l.rule = p_ack_rules[1]
         AND l.row_key = p_ack_keys[1] AND l.owner = p_owner;
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
  -- drained front of the index. None: done (no lease or update statement starts at all).
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
  SELECT array_agg(c.id ORDER BY c.id), array_agg(c.rule ORDER BY c.id), array_agg(c.row_key ORDER BY c.id),
         array_agg(c.ctid ORDER BY c.id)
    INTO c_ids, c_rules, c_keys, c_tids
    FROM cand c;
  IF c_ids IS NULL THEN
    RETURN;
  END IF;
  IF cardinality(c_ids) = 1 THEN
    -- One candidate (the common case at low rates): what the statement below does for one row,
    -- as plain statements, without starting the executor for the arms that stay empty. The lease
    -- upsert is the same (won: not expired, claimed_id raised to the newest claimed); the event
    -- is then claimed (cl), or superseded by a newer event of its row claimed before (sup: deleted,
    -- 'coalesced', plus 'release' for the lease taken with nothing to apply), or held back ('held').
    INSERT INTO @SCHEMA@.sync_outbox_lease AS l (key_hash, rule, row_key, owner, expires_at, claimed_id, leased_at)
    VALUES (pg_catalog.jsonb_hash_extended(c_keys[1], 0), c_rules[1], c_keys[1], p_owner,
            now() + p_lease_ms * interval '1 millisecond', c_ids[1], now())
    ON CONFLICT ON CONSTRAINT sync_outbox_lease_pkey DO UPDATE
       SET owner = EXCLUDED.owner, expires_at = EXCLUDED.expires_at, released_at = NULL,
           leased_at = EXCLUDED.leased_at,
           claimed_id = GREATEST(l.claimed_id, EXCLUDED.claimed_id)
     WHERE l.expires_at IS NULL OR l.expires_at < now()
    RETURNING l.claimed_id INTO won_id;
    IF won_id IS NULL THEN
      IF p_held THEN
        RETURN QUERY SELECT 1::bigint, NULL::text, 'held'::text, NULL::jsonb, NULL::json, 0, 0,
                            NULL::timestamptz, NULL::text, NULL::real[];
      END IF;
    ELSIF won_id = c_ids[1] THEN
      RETURN QUERY
      UPDATE @SCHEMA@.sync_outbox o
         SET attempts = o.attempts + 1, claimed_by = p_owner, claimed_at = now(),
             available_at = now() + p_lease_ms * interval '1 millisecond'
       WHERE o.ctid = c_tids[1]  -- the candidate's row (see `cl` below)
      RETURNING o.id, o.rule, o.op, o.row_key, o.payload, o.attempts, o.max_attempts, o.created_at,
                o.event_type, o.vec;
    ELSE
      RETURN QUERY
      WITH sup AS (
        DELETE FROM @SCHEMA@.sync_outbox o WHERE o.ctid = c_tids[1]
        RETURNING o.id, o.rule, o.row_key, o.event_type
      )
      SELECT s.id, s.rule, 'coalesced'::text, s.row_key, NULL::json, 0, 0, NULL::timestamptz, s.event_type,
             NULL::real[]
        FROM sup s
      UNION ALL
      SELECT won_id, c_rules[1], 'release'::text, c_keys[1], NULL::json, 0, 0, NULL::timestamptz, NULL::text,
             NULL::real[];
    END IF;
    IF FOUND AND current_setting('synchronous_commit') IN ('off', 'local') THEN
      SET LOCAL synchronous_commit TO DEFAULT;  -- as after the set statement (Durability, below)
    END IF;
    RETURN;
  END IF;
  -- More candidates: their rows' leases first, upserted in the key's order (migration 009) at
  -- each row's newest candidate; won = not expired, claimed_id raised to the newest claimed.
  -- key_hash is the one value the key may hold for the row (migration 014), as in the upsert above.
  WITH cand AS (
    SELECT * FROM unnest(c_ids, c_rules, c_keys) AS c(id, rule, row_key)
  ), rws AS (
    SELECT pg_catalog.jsonb_hash_extended(c.row_key, 0) AS key_hash, c.rule, c.row_key, max(c.id) AS max_id
      FROM cand c GROUP BY c.rule, c.row_key
  ), won AS (
    INSERT INTO @SCHEMA@.sync_outbox_lease AS l (key_hash, rule, row_key, owner, expires_at, claimed_id, leased_at)
    SELECT r.key_hash, r.rule, r.row_key, p_owner, now() + p_lease_ms * interval '1 millisecond', r.max_id, now()
      FROM rws r ORDER BY r.key_hash, r.rule, r.row_key
    ON CONFLICT ON CONSTRAINT sync_outbox_lease_pkey DO UPDATE
       SET owner = EXCLUDED.owner, expires_at = EXCLUDED.expires_at, released_at = NULL,
           leased_at = EXCLUDED.leased_at,
           claimed_id = GREATEST(l.claimed_id, EXCLUDED.claimed_id)
     WHERE l.expires_at IS NULL OR l.expires_at < now()
    RETURNING l.rule, l.row_key, l.claimed_id
  )
  SELECT array_agg(w.rule), array_agg(w.row_key), array_agg(w.claimed_id), sum(w.claimed_id)
    INTO w_rules, w_keys, w_ids, w_sum
    FROM won w;
  IF cardinality(w_ids) = cardinality(c_ids) AND w_sum = (SELECT sum(x.id) FROM unnest(c_ids) AS x(id)) THEN
    -- A drain's common case: as many leases won as candidates, so every candidate is its row's
    -- only one and won its row; each claimed_id is at least its candidate's id, and the sums are
    -- equal, so each is that id: every candidate is claimed. One plain UPDATE instead of the
    -- statement below, which would find no 'coalesced', 'release' or 'held' row but still group
    -- and materialise every candidate and lease (bench/outbox_sql_bench.py --vec --ride: 64.0 ->
    -- 58.0 us/event, median of 5 interleaved pairs). The rows are read by the address the
    -- candidate scan locked them at (a Tid Scan: a row locked FOR UPDATE by this transaction keeps
    -- it until this statement changes it): by id, a generic plan could take (event_type, id) with
    -- `id = ANY` on its second column, walked from the left edge once per id (notes/st6.md).
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
  RETURN QUERY
  WITH cand AS (
    SELECT * FROM unnest(c_ids, c_rules, c_keys, c_tids) AS c(id, rule, row_key, tid)
  ), won AS (
    SELECT * FROM unnest(w_rules, w_keys, w_ids) AS w(rule, row_key, claimed_id)
  ), g AS (
    -- each candidate row key: its candidates' ids and, when its lease was won, the lease's
    -- claimed_id. Grouped, not joined: a join of two CTEs is planned from their estimates, which
    -- are guesses here, and under estimates near one row (the candidate scan's, once taken from
    -- the outbox's statistics) the planner picks a nested loop: every pair of candidates
    -- compared, 65,536 row-key comparisons per join at batch 256 (250 µs per event in
    -- bench/outbox_sql_bench.py; test_outbox_plan.py).
    SELECT x.rule, x.row_key, array_agg(x.id) FILTER (WHERE x.id IS NOT NULL) AS ids,
           array_agg(x.tid) FILTER (WHERE x.id IS NOT NULL) AS tids, max(x.claimed_id) AS claimed_id
      FROM (SELECT c.rule, c.row_key, c.id, c.tid, NULL::bigint AS claimed_id FROM cand c
            UNION ALL
            SELECT w.rule, w.row_key, NULL::bigint, NULL::tid, w.claimed_id FROM won w) x
     GROUP BY x.rule, x.row_key
  ), sup AS (
    -- a won row's candidates older than its lease's claimed_id (a list of row addresses, no join
    -- to plan; see `cl`)
    DELETE FROM @SCHEMA@.sync_outbox o
     WHERE o.ctid = ANY (ARRAY(SELECT s.tid FROM g, unnest(g.ids, g.tids) AS s(id, tid) WHERE s.id < g.claimed_id))
    RETURNING o.id, o.rule, o.row_key, o.event_type
  ), cl AS (
    -- a won row's claimed_id when it is one of the candidates (locked above): the event to apply.
    -- Rows are read by the address the candidate scan locked them at (a Tid Scan: no index, no
    -- statistics; a row locked FOR UPDATE by this transaction keeps its address until this
    -- statement changes it, and the lock returned its newest version). By id, the generic plan
    -- took (event_type, id) with `id = ANY` on its second column whenever the statistics saw a
    -- drained outbox (reltuples 0), which PostgreSQL 15 walks from the left edge once per
    -- element: batch x index size, and the index grows by every event acknowledged while
    -- anything holds the xmin horizon (an ANALYZE of a big table, a report, pg_dump): claims of
    -- 256 went 200 -> 800 ms within 10 s of a held snapshot (test_outbox_plan.py).
    UPDATE @SCHEMA@.sync_outbox o
       SET attempts = o.attempts + 1, claimed_by = p_owner, claimed_at = now(),
           available_at = now() + p_lease_ms * interval '1 millisecond'
     WHERE o.ctid = ANY (ARRAY(SELECT s.tid FROM g, unnest(g.ids, g.tids) AS s(id, tid) WHERE s.id = g.claimed_id))
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
  SELECT g.claimed_id, g.rule, 'release'::text, g.row_key, NULL::json, 0, 0, NULL::timestamptz, NULL::text,
         NULL::real[]
    FROM g
   WHERE g.claimed_id IS NOT NULL AND NOT (g.claimed_id = ANY (g.ids))
  UNION ALL
  SELECT h.n, NULL::text, 'held'::text, NULL::jsonb, NULL::json, 0, 0, NULL::timestamptz, NULL::text,
         NULL::real[]
    FROM (SELECT count(*) AS n FROM g WHERE p_held AND g.claimed_id IS NULL) h
   WHERE h.n > 0;
  -- Durability. The daemon's sessions commit with synchronous_commit off ([postgres]
  -- daemon_synchronous_commit): a crash then loses a suffix of its transactions, which only
  -- re-delivers events. But a claim whose events reach Qdrant must not be lost: its lease's
  -- claimed_id is what keeps an older event of the row from being applied after them, and after a
  -- crash (or a failover) that lost it both events would be pending and the older one could be
  -- claimed alone. So a claim that returns rows commits with the server's (role's, database's)
  -- setting when the session's is off or local (not waiting for a synchronous standby).
  IF FOUND AND current_setting('synchronous_commit') IN ('off', 'local') THEN
    SET LOCAL synchronous_commit TO DEFAULT;
  END IF;
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
SET enable_seqscan = off SET enable_bitmapscan = off SET plan_cache_mode = force_generic_plan SET jit = off
AS $p2q$
DECLARE
  n integer;
BEGIN
  -- Leases are released by one UPDATE whose rows come in key order (the sorted keys drive the
  -- join; the lease table is read through its primary key only), the order the claim locks them
  -- in, so acks and claims cannot deadlock.
  IF p_outcomes <@ ARRAY['done', 'release'] THEN
    -- the common case, every event applied: only the statements it needs (each CTE of the
    -- general case below costs executor start-up at every call, used or not)
    WITH done AS (
      DELETE FROM @SCHEMA@.sync_outbox o WHERE o.id = ANY (p_ids) AND o.claimed_by = p_owner
      RETURNING 1
    ), freed AS (
      UPDATE @SCHEMA@.sync_outbox_lease l SET owner = NULL, expires_at = NULL, released_at = now()
        FROM (SELECT DISTINCT pg_catalog.jsonb_hash_extended(k.row_key, 0) AS key_hash, k.rule, k.row_key
                FROM unnest(p_rules, p_keys) AS k(rule, row_key) ORDER BY 1, 2, 3) k
       WHERE l.key_hash = k.key_hash AND l.rule = k.rule AND l.row_key = k.row_key AND l.owner = p_owner
      RETURNING 1
    )
    SELECT count(*) FROM done INTO n;
    RETURN n;
  END IF;
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
  ), freed AS (
    UPDATE @SCHEMA@.sync_outbox_lease l SET owner = NULL, expires_at = NULL, released_at = now()
      FROM (SELECT DISTINCT pg_catalog.jsonb_hash_extended(r.row_key, 0) AS key_hash, r.rule, r.row_key FROM r ORDER BY 1, 2, 3) k
     WHERE l.key_hash = k.key_hash AND l.rule = k.rule AND l.row_key = k.row_key AND l.owner = p_owner
    RETURNING 1
  )
  -- (every data-modifying CTE runs to completion whether or not it is read)
  SELECT (SELECT count(*) FROM done) + (SELECT count(*) FROM gone) + (SELECT count(*) FROM again) INTO n;
  RETURN n;
END
$p2q$;

-- An ack and the next claim in one statement: one round trip and one transaction instead of two.
-- A worker whose batch finished lets its ack ride on its next claim when that claim comes soon
-- (src/worker.c). The ack runs first, so the claim can take the leases it gives back. (Its lease
-- release and the claim's lease upserts are each in key order, but not together: two of these
-- can deadlock; PostgreSQL aborts one, whose ack is sent again alone.) The daemon calls
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
-- Frees the claims and leases of owners whose backend is gone (a lost connection of a live daemon,
-- a crashed one the liveness check did not reap, a PostgreSQL restart) once they are older than
-- p_grace_ms, so their events flow again without waiting for the lease to expire, and dead-letters
-- events whose last claim ended after their final attempt (a poison event that crashes the worker
-- is counted at claim, so it cannot loop forever). Issue 11: no statement scans the backlog.
--
-- In-flight work is found from the lease table, never by scanning sync_outbox:
--   (I) an event E with claimed_by = X and available_at > now() (X's claim of it is unexpired) has
--       a lease on its row with owner = X, claimed_id = E.id and leased_at = E.claimed_at.
-- Proof. claimed_by is set only by the claim (its `cl` UPDATE), which claims E only when the lease
-- it just won has claimed_id = E.id, and writes owner, leased_at and expires_at (= E's new
-- available_at: the same expression in the same statement) on the lease in the same statement.
-- Afterwards, while E stays claimed_by = X with available_at > now():
--   * no other claim takes the lease: it needs expires_at < now() (the lease is won only when
--     expired or released), and expires_at = E.available_at;
--   * X's ack releases the lease of a row only in the statement that settles X's event of that row:
--     done/dead delete E, retry/requeue set claimed_by NULL (E leaves the premise); a `release` row
--     is only returned for a row whose lease the claim won without claiming any event, and X cannot
--     win its own held lease again while it is unexpired (first point). One residual: an ack of an
--     older batch of X's that arrives after that batch's lease expired, and after X re-won the same
--     row for E (same owner), releases E's lease too (the ack matches leases by owner and row). Such
--     an E is found neither here nor by sync_outbox_reap and is claimable again when its own lease
--     expires (the old full scans found it by claimed_by) — late by at
--     most `lease`, never lost (and the same early release already lets another claimer take the
--     row: that ack is the anomaly, not this function);
--   * this function and sync_outbox_reap release a lease only in the statement that frees its
--     event (sync_outbox_free_claimed, below), the lease reclaimer deletes only released leases
--     (owner NULL);
--   * nothing else writes claimed_by, available_at of a claimed event, or a lease (`retry` touches
--     only claimed_by IS NULL events; `retry --dead` inserts unclaimed ones).
-- So the old query's set — `claimed_by IS NOT NULL AND available_at > now() AND claimed_at < now()
-- - grace AND the owner's backend is gone` — is, but for that residual, {event claimed_id of lease
-- L : L.owner gone, L.leased_at < now() - grace, that event still claimed_by L.owner with
-- available_at > now()},
-- found through the lease table and the outbox's primary key. (Events whose lease was released by
-- a retry/requeue ack have claimed_by NULL: they wait their backoff, as before; an event whose
-- claim expired (available_at <= now()) is claimable again, as before.)
--
-- Exhausted events (attempts >= max_attempts, available_at <= now(); the claim skips them):
--   (a) the final attempt's claim held by an owner that is gone: found with its lease (above) and
--       dead-lettered at once instead of freed, in the same statement;
--   (b) anything else — born dead (max_attempts 0, written by a trigger whose rule its table no
--       longer fits: never claimed, no lease), a final-attempt claim that expired while its owner
--       stayed alive (a hung process), a final attempt acked `retry` by another build — has no
--       lease to find it by. Finding those needs a scan, and no index may cover attempts or
--       available_at (the claim's UPDATE must stay HOT, migration 004). So each call scans one
--       window of the outbox in id order (p_limit events after p_after_id, the caller's cursor),
--       and the sweep walks the whole outbox window by window, wrapping around.
-- Which leases to look at: a connection the registry (sync_outbox_instance) knows is gone has its
-- leases looked up by owner once, one grace after it went (step 0 below; its registry row is
-- deleted with them). Owners the registry does not know — a PostgreSQL restart empties it, the
-- reap drops rows older than the postmaster — are found by walking the lease table the same way
-- as the outbox (p_limit leases after (p_after_rule, p_after_key)): in steady state it holds a few
-- sweep intervals of changed rows, one window; after a large drain it can be as large as the
-- drained backlog until lease_gc.c catches up, and such claims are then freed when the walk
-- reaches them or when their lease expires, whichever comes first.
-- p_limit NULL: everything in one call (sync_outbox_recover). Returns the events freed or
-- dead-lettered from gone owners' claims, the exhausted events dead-lettered by the window, and
-- the cursors for the next call (NULL: the walk wrapped around).
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
  gone_tids tid[];
  lost text[];
  dead_ids bigint[];
  k_rules text[];
  k_keys jsonb[];
  k_ids bigint[];
  k_owners text[];
  n bigint;
BEGIN
  freed := 0; buried := 0;
  SELECT COALESCE(array_agg(a.pid::text || '.' || (extract(epoch FROM a.backend_start) * 1000000)::bigint::text)
                  FILTER (WHERE a.backend_start IS NOT NULL), '{}'),
         COALESCE(array_agg(a.pid) FILTER (WHERE a.backend_start IS NULL), '{}')
    INTO live, hidden FROM pg_stat_activity a;
  -- 0. connections the registry knows are gone (gone_since, set by the liveness check) since
  -- before the grace: every lease of theirs was taken before the backend went, so all of them are
  -- due now. Their registry rows are deleted and their leases looked up by owner (one scan of the
  -- lease table per lost connection, not per call): whatever the window, a registered connection's
  -- claims come back one grace after it was lost. (A process all of whose connections are gone is
  -- sync_outbox_reap's, seconds after; rows it is deleting are locked and skipped here.)
  WITH r AS (
    DELETE FROM @SCHEMA@.sync_outbox_instance i
     WHERE i.owner IN (SELECT i2.owner FROM @SCHEMA@.sync_outbox_instance i2
                        WHERE i2.gone_since < now() - p_grace_ms * interval '1 millisecond'
                          AND NOT (i2.owner = ANY (live)) AND NOT (i2.pid = ANY (hidden))
                          FOR UPDATE SKIP LOCKED)
    RETURNING i.owner
  )
  SELECT array_agg(r.owner) INTO lost FROM r;
  -- 1. the window of leases: one pass over p_limit leases, keeping those of gone owners
  WITH w AS (
    SELECT l.ctid AS tid, l.key_hash, l.rule, l.row_key, l.owner, l.leased_at FROM @SCHEMA@.sync_outbox_lease l
     WHERE (l.key_hash, l.rule, l.row_key) > (COALESCE(pg_catalog.jsonb_hash_extended(p_after_key, 0), -9223372036854775808),
                                              COALESCE(p_after_rule, ''), COALESCE(p_after_key, 'null'::jsonb))
     ORDER BY l.key_hash, l.rule, l.row_key LIMIT p_limit
  ), last AS (
    SELECT w.rule, w.row_key FROM w ORDER BY w.key_hash DESC, w.rule DESC, w.row_key DESC LIMIT 1
  )
  SELECT (SELECT count(*) FROM w), (SELECT last.rule FROM last), (SELECT last.row_key FROM last),
         ARRAY(SELECT w.tid FROM w
                WHERE w.owner IS NOT NULL AND NOT (w.owner = ANY (live))
                  AND NOT (split_part(w.owner, '.', 1)::integer = ANY (hidden))
                  AND w.leased_at < now() - p_grace_ms * interval '1 millisecond')
    INTO n, last_rule, last_key, gone_tids;
  IF p_limit IS NULL OR n < p_limit THEN last_rule := NULL; last_key := NULL; END IF;
  IF lost IS NOT NULL THEN
    gone_tids := gone_tids || ARRAY(SELECT l.ctid FROM @SCHEMA@.sync_outbox_lease l WHERE l.owner = ANY (lost));
  END IF;
  -- 2. free them (the common case: none): the leases locked in key order, as claims and acks lock
  -- them, and re-checked on their current version (a lease taken meanwhile is skipped); then, by
  -- sync_outbox_free_claimed, each one's claimed event (I) read through the primary key: freed, or
  -- dead-lettered when that claim was its final attempt (a); both in one statement with the
  -- lease's release (the leases stay locked from this statement to the end of the transaction)
  IF cardinality(gone_tids) > 0 THEN
    SELECT array_agg(k.rule), array_agg(k.row_key), array_agg(k.claimed_id), array_agg(k.owner)
      INTO k_rules, k_keys, k_ids, k_owners
      FROM (SELECT l.rule, l.row_key, l.owner, l.claimed_id FROM @SCHEMA@.sync_outbox_lease l
             WHERE l.ctid = ANY (gone_tids)
               AND l.owner IS NOT NULL AND NOT (l.owner = ANY (live))
               AND NOT (split_part(l.owner, '.', 1)::integer = ANY (hidden))
               AND l.leased_at < now() - p_grace_ms * interval '1 millisecond'
             ORDER BY l.key_hash, l.rule, l.row_key FOR UPDATE OF l SKIP LOCKED) k;
    IF k_rules IS NOT NULL THEN
      -- an event matched by (its id, its claimer) = (the lease's claimed_id, the lease's owner)
      SELECT f.events INTO freed
        FROM @SCHEMA@.sync_outbox_free_claimed(k_rules, k_keys, k_ids, k_owners, NULL,
                                               now() - p_grace_ms * interval '1 millisecond') f;
    END IF;
  END IF;
  -- 3. the window of the outbox (b): one pass over p_limit events in id order
  WITH w AS (
    SELECT o.id, o.attempts >= o.max_attempts AND o.available_at <= now() AS exhausted
      FROM @SCHEMA@.sync_outbox o
     WHERE o.id > COALESCE(p_after_id, -9223372036854775808)
     ORDER BY o.id LIMIT p_limit
  )
  SELECT count(*), max(w.id), array_agg(w.id) FILTER (WHERE w.exhausted) INTO n, last_id, dead_ids FROM w;
  IF p_limit IS NULL OR n < p_limit THEN last_id := NULL; END IF;
  IF dead_ids IS NOT NULL THEN
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

-- Dead-letter events the recovery deleted from the outbox (whole rows, from a DELETE ... RETURNING
-- in the same statement): an event whose claim was its final attempt and whose worker reported
-- no outcome (recover_step's window, sync_outbox_free_claimed). A dead letter already there
-- (`retry --dead` brought it back) is kept. Returns how many events were given. (The ack writes
-- its own dead letters: its error and conflict rule differ, and it stays one statement.)
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

-- Free the claimed events of gone owners' leases and release those leases, in one statement: the
-- one place sync_outbox_recover_step (step 2) and sync_outbox_reap do it. The caller has found
-- the leases (p_rules, p_keys; each one's claimed_id and owner) and locked them FOR UPDATE in key
-- order, as claims and acks lock them, in this transaction. A lease's event is its claimed_id
-- (invariant (I) above sync_outbox_recover_step), read through the primary key, when it is still
-- claimed and unexpired (available_at > now()) and its claimer is
--   p_owner_set NULL: that lease's owner (p_owners: the pair (claimed_id, owner); the sweep);
--   otherwise: any owner of p_owner_set, whose leases are all the caller passes (the reap).
-- The two rules differ only in (I)'s residual, where a released lease was re-won, without an event,
-- by another owner: each caller keeps its own. p_claimed_before, when not NULL: only claims taken
-- before it (the sweep's grace). A claim that was its event's final attempt is dead-lettered
-- instead of freed (the claim skips exhausted events). Returns the events freed or dead-lettered
-- and the leases released. No SET clause: it plans under its caller's settings (recover_step's
-- index-only access and custom plans; reap's defaults), as the statement did in each caller.
CREATE OR REPLACE FUNCTION @SCHEMA@.sync_outbox_free_claimed(p_rules text[], p_keys jsonb[],
    p_claimed_ids bigint[], p_owners text[], p_owner_set text[], p_claimed_before timestamptz)
RETURNS TABLE (events integer, leases integer)
LANGUAGE plpgsql AS $p2q$
BEGIN
  WITH k AS (
    SELECT * FROM unnest(p_rules, p_keys, p_claimed_ids, p_owners) AS k(rule, row_key, claimed_id, owner)
  ), ev AS (
    UPDATE @SCHEMA@.sync_outbox o SET available_at = now(), claimed_by = NULL
     WHERE o.id = ANY (p_claimed_ids)
       AND (p_owner_set IS NULL OR o.claimed_by = ANY (p_owner_set))
       AND (p_owner_set IS NOT NULL OR (o.id, o.claimed_by) IN (SELECT k.claimed_id, k.owner FROM k))
       AND o.available_at > now() AND (p_claimed_before IS NULL OR o.claimed_at < p_claimed_before)
       AND o.attempts < o.max_attempts
    RETURNING 1
  ), gone AS (
    DELETE FROM @SCHEMA@.sync_outbox o
     WHERE o.id = ANY (p_claimed_ids)
       AND (p_owner_set IS NULL OR o.claimed_by = ANY (p_owner_set))
       AND (p_owner_set IS NOT NULL OR (o.id, o.claimed_by) IN (SELECT k.claimed_id, k.owner FROM k))
       AND o.available_at > now() AND (p_claimed_before IS NULL OR o.claimed_at < p_claimed_before)
       AND o.attempts >= o.max_attempts
    RETURNING o
  ), rel AS (
    UPDATE @SCHEMA@.sync_outbox_lease l SET owner = NULL, expires_at = NULL, released_at = now()
      FROM k WHERE l.key_hash = pg_catalog.jsonb_hash_extended(k.row_key, 0) AND l.rule = k.rule AND l.row_key = k.row_key
       AND (p_owner_set IS NULL OR l.owner = ANY (p_owner_set))
    RETURNING 1
  )
  -- (every data-modifying CTE runs to completion whether or not it is read)
  SELECT (SELECT count(*) FROM ev) + @SCHEMA@.sync_outbox_bury(ARRAY(SELECT g.o FROM gone g)),
         (SELECT count(*) FROM rel)
    INTO events, leases;
  RETURN NEXT;
END
$p2q$;

-- Everything sync_outbox_recover_step does, over the whole lease table and outbox in one call
-- (tests, and whoever wants it all now). Returns the number of events freed.
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
--      claims and leases at once;
--   3. drops rows registered before the postmaster started (a restart closed every backend
--      whatever the state of their processes: those claims take sync_outbox_recover's grace) and
--      gone rows of live processes older than an hour (their claims, if any, take the grace too).
-- Returns one row per reaped process: its instance id, the events freed (or dead-lettered: the claim
-- was their final attempt) and the leases released.
CREATE OR REPLACE FUNCTION @SCHEMA@.sync_outbox_reap(p_dead_ms integer)
RETURNS TABLE (instance text, events integer, leases integer)
LANGUAGE plpgsql AS $p2q$
#variable_conflict use_column
DECLARE
  r record;
  owners text[];
  k_rules text[];
  k_keys jsonb[];
  k_ids bigint[];
  n integer;
  m integer;
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
    -- the owners' in-flight events are their leases' claimed events (invariant (I) above
    -- sync_outbox_recover_step): read through the primary key, not by scanning the outbox. The
    -- leases are locked in key order first, as claims and acks lock them (`id = ANY (...)` is an
    -- index scan of the pkey even under stale statistics: the planner sizes a table by its actual
    -- pages; no enable_seqscan = off here, which would make the registry's small queries JIT
    -- compile every 500 ms). A claim that was its event's final attempt is dead-lettered now (the
    -- claim skips exhausted events; the sweep would move it later): sync_outbox_free_claimed.
    SELECT array_agg(k.rule), array_agg(k.row_key), array_agg(k.claimed_id) INTO k_rules, k_keys, k_ids
      FROM (SELECT l2.rule, l2.row_key, l2.claimed_id FROM @SCHEMA@.sync_outbox_lease l2
             WHERE l2.owner = ANY (owners)
             ORDER BY l2.key_hash, l2.rule, l2.row_key FOR UPDATE OF l2) k;
    -- an event matched by its id = a lease's claimed_id and its claimer in the set of owners
    SELECT f.events, f.leases INTO n, m
      FROM @SCHEMA@.sync_outbox_free_claimed(k_rules, k_keys, k_ids, NULL, owners, NULL) f;
    instance := r.instance; events := n; leases := m;
    RETURN NEXT;
  END LOOP;
END
$p2q$;

-- ---- reclaiming idle leases (the daemon's lease reclaimer, src/lease_gc.c, and `prune`) ---------
-- A lease row exists to keep one claimer per row and its fence, claimed_id: an event of the row
-- older than claimed_id is superseded, never applied. Without reclaiming, the table keeps one row
-- per row key ever changed. A released lease (owner NULL) may be deleted once its fence can never
-- matter again, i.e. once no event older than claimed_id can still be claimed:
--   (a) no event of the row older than claimed_id is in sync_outbox or in sync_outbox_dead (a
--       dead letter comes back with its old id: `retry --dead`), read with a snapshot S taken
--       after (b). An event at or above claimed_id needs no fence: its claim, with or without
--       this lease, leases the row at max(claimed_id, its id);
--   (b) no transaction that could still commit an older event of the row is running: with h =
--       the least xact_start of every transaction of this database running when (b) is read
--       (this one included: h <= now()), every lease released before h qualifies.
-- Why (b) suffices. Let L < C = claimed_id be the ids of a late event and of the newest claimed
-- one, K the claim that set claimed_id = C, cs its snapshot. The identity sequence hands out ids
-- in time order (cache 1, checked below), so the late transaction T started before it drew L,
-- before C was drawn, before C's transaction committed, before cs: start(T) < cs. A lease's
-- released_at r is the now() of the transaction that released it: an ack (alone, or the first
-- half of sync_outbox_ack_claim, which acks before it claims; sent on the claim's connection after
-- the claim committed: r > cs), the liveness check's reap (r > gone_since +
-- dead_ms > the owner's exit > cs) or sync_outbox_recover (r > leased_at + grace). If T runs
-- when (b) is read, h <= start(T) < cs <= r: the lease is kept. If T committed before S, its
-- event is seen by (a) (or was already claimed: superseded by this very lease). T cannot start
-- after (b) was read (start(T) < cs < r < h). So every event of the row committing after the
-- lease is gone has an id above C and is newer than anything applied: a fresh lease for it is
-- exactly what the old one would have allowed. The same holds for a newer version of the lease
-- met under FOR UPDATE (re-checked against the same h and the same S). One residual, outside
-- this function: recover's (or reap's) r precedes cs only if the releasing transaction stalled
-- between its start and its first statement for longer than its grace (seconds) while K ran —
-- and a row whose claimed event is still pending is kept by (a) anyway.
-- Conservative cases: nothing is reclaimed while a prepared transaction of this database exists
-- (it has no start time), while a session whose xact_start this role cannot see (another role's,
-- without pg_read_all_stats) is inside a transaction (backend_xid or backend_xmin set: a
-- transaction that drew an id has one of them until it ends; one that drew none yet can only draw
-- ids above claimed_id), when the id sequence caches
-- values, or outside READ COMMITTED (S must be taken after (b)). Replicas do not fight: leases
-- are locked FOR UPDATE SKIP LOCKED as they are read (claims and acks hold theirs; they are
-- skipped, never waited for); one locked and kept ((a) failed) stays locked until the statement
-- commits (a claim of its row waits that long; held leases are never locked).
-- Walks the lease table in key order, up to p_limit leases released before h per call, after
-- (p_after_rule, p_after_key) (NULL: from the start); returns the number deleted, the number
-- locked and tested, the last key locked (the next call's cursor; NULL at the end) and why nothing could be reclaimed (NULL: not
-- blocked; 'prepared_transaction', 'hidden_transaction', 'sequence_cache').
CREATE OR REPLACE FUNCTION @SCHEMA@.sync_outbox_reclaim_leases(p_after_rule text, p_after_key jsonb,
    p_limit integer)
RETURNS TABLE (reclaimed integer, scanned integer, last_rule text, last_key jsonb, blocked text)
LANGUAGE plpgsql
SET enable_seqscan = off SET enable_bitmapscan = off SET plan_cache_mode = force_generic_plan SET jit = off
AS $p2q$
#variable_conflict use_column
DECLARE
  h timestamptz;
  hidden boolean;
BEGIN
  reclaimed := 0; scanned := 0;
  IF pg_catalog.current_setting('transaction_isolation') <> 'read committed' THEN
    RAISE EXCEPTION 'sync_outbox_reclaim_leases runs in READ COMMITTED only';
  END IF;
  IF (SELECT s.seqcache FROM pg_catalog.pg_sequence s
       WHERE s.seqrelid = pg_catalog.pg_get_serial_sequence(
               pg_catalog.quote_ident(@SCHEMA_NAME@) || '.sync_outbox', 'id')::regclass) > 1 THEN
    blocked := 'sequence_cache'; RETURN NEXT; RETURN;
  END IF;
  IF EXISTS (SELECT 1 FROM pg_catalog.pg_prepared_xacts p WHERE p.database = pg_catalog.current_database()) THEN
    blocked := 'prepared_transaction'; RETURN NEXT; RETURN;
  END IF;
  -- (b), read before (a)'s snapshot; a fresh read, not one cached earlier in this transaction.
  -- Sessions without a user (autovacuum, background processes) write no events.
  PERFORM pg_catalog.pg_stat_clear_snapshot();
  SELECT min(a.xact_start),
         COALESCE(bool_or(a.xact_start IS NULL AND (a.backend_xid IS NOT NULL OR a.backend_xmin IS NOT NULL)), false)
    INTO h, hidden
    FROM pg_catalog.pg_stat_activity a
   WHERE a.datid = (SELECT d.oid FROM pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database())
     AND a.usesysid IS NOT NULL
     AND a.pid <> pg_catalog.pg_backend_pid();  -- this transaction: now(), below
  IF hidden THEN
    blocked := 'hidden_transaction'; RETURN NEXT; RETURN;
  END IF;
  h := LEAST(h, now());
  -- One statement, one snapshot S (taken after h was read): the next p_limit leases in key order
  -- released before h (a range scan of the primary key (key_hash, rule, row_key); rule is never
  -- '', so (least bigint, '', null) is below every key), each locked as it is read (SKIP LOCKED:
  -- one that a claim, an ack or another replica holds is passed over; a lease updated since S is
  -- met in its new version and tested again), then those that (a) allows deleted by ctid. One heap
  -- visit per lease to read and lock it, one to delete it (a lock step of its own and a join per
  -- deleted row cost two more: 6.0 -> 4.1 us per lease reclaimed). Held leases are never locked:
  -- the ack that releases them must not wait for this statement.
  WITH w AS (
    SELECT l.ctid AS tid, l.key_hash, l.rule, l.row_key, l.owner, l.released_at, l.claimed_id
      FROM @SCHEMA@.sync_outbox_lease l
     WHERE (l.key_hash, l.rule, l.row_key) > (COALESCE(pg_catalog.jsonb_hash_extended(p_after_key, 0), -9223372036854775808),
                                              COALESCE(p_after_rule, ''), COALESCE(p_after_key, 'null'::jsonb))
       AND l.owner IS NULL AND l.released_at < h
     ORDER BY l.key_hash, l.rule, l.row_key LIMIT p_limit
       FOR UPDATE OF l SKIP LOCKED
  ), gone AS (
    -- released before h, and (a): only events older than claimed_id need the fence (see above);
    -- none exists when claimed_id is below every pending id and every dead letter's id
    DELETE FROM @SCHEMA@.sync_outbox_lease l
     WHERE l.ctid = ANY (ARRAY(
             SELECT w.tid FROM w
              WHERE w.owner IS NULL AND w.released_at < h
                AND (w.claimed_id < LEAST(COALESCE((SELECT min(o.id) FROM @SCHEMA@.sync_outbox o), 9223372036854775807),
                                          COALESCE((SELECT min(x.id) FROM @SCHEMA@.sync_outbox_dead x), 9223372036854775807))
                     OR (NOT EXISTS (SELECT 1 FROM @SCHEMA@.sync_outbox o  -- sync_outbox_row_idx (012)
                                      WHERE pg_catalog.jsonb_hash_extended(o.row_key, 0) = pg_catalog.jsonb_hash_extended(w.row_key, 0)
                                        AND o.rule = w.rule AND o.row_key = w.row_key AND o.id < w.claimed_id)
                         AND NOT EXISTS (SELECT 1 FROM @SCHEMA@.sync_outbox_dead x
                                          WHERE x.rule = w.rule AND x.row_key = w.row_key AND x.id < w.claimed_id)))))
    RETURNING 1
  ), last AS (
    SELECT w.rule, w.row_key FROM w ORDER BY w.key_hash DESC, w.rule DESC, w.row_key DESC LIMIT 1
  )
  SELECT (SELECT count(*) FROM gone)::integer, (SELECT count(*) FROM w)::integer,
         (SELECT last.rule FROM last), (SELECT last.row_key FROM last)
    INTO reclaimed, scanned, last_rule, last_key;
  IF scanned < p_limit THEN last_rule := NULL; last_key := NULL; END IF;
  RETURN NEXT;
END
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
    WITH RECURSIVE o(et) AS (
      SELECT (SELECT x.event_type FROM @SCHEMA@.sync_outbox x WHERE x.event_type IS NOT NULL  -- (migration 011's predicate)
                ORDER BY x.event_type DESC, x.id DESC LIMIT 1)
      UNION ALL
      SELECT (SELECT x.event_type FROM @SCHEMA@.sync_outbox x WHERE x.event_type < o.et
               ORDER BY x.event_type DESC, x.id DESC LIMIT 1)
        FROM o WHERE o.et IS NOT NULL
    ), d(et) AS (
      SELECT (SELECT x.event_type FROM @SCHEMA@.sync_outbox_dead x ORDER BY x.event_type, x.id LIMIT 1)
      UNION ALL
      SELECT (SELECT x.event_type FROM @SCHEMA@.sync_outbox_dead x WHERE x.event_type > d.et
               ORDER BY x.event_type, x.id LIMIT 1)
        FROM d WHERE d.et IS NOT NULL
    )
    SELECT o.et FROM o WHERE o.et IS NOT NULL UNION SELECT d.et FROM d WHERE d.et IS NOT NULL ORDER BY 1
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

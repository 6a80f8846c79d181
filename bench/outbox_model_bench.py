#!/usr/bin/env python3
"""What another outbox data model would cost PostgreSQL: the floor of its common path, measured
side by side with today's claim + lease + ack (issue 11: "what would move the floors").

    python3 bench/outbox_model_bench.py [--events 50000] [--batch 256] [--rounds 5] [--slices 16]
                                        [--models current,slice_delete,slice_cursor,slice_tick,nolease,naive]

Today every event is claimed by an UPDATE (attempts counted, claimed_by) under a per-row lease
(an upsert, a release at the ack, a delete by the reclaimer) and deleted at the ack: about six row
writes per event (session 6's cl6/lr6 notes). The prototypes here keep per-row order another way:
each event carries a slice, hash(row key) mod --slices, fixed at insert, and a slice is claimed as
a whole by one worker at a time (one row in a slice table: owner, lease expiry, the position of
the last acknowledged event, attempts of the batch at the head). A row always maps to the same
slice, so one claimer per slice is one claimer per row with no per-row lease; the attempts are
counted once per batch on the slice row, not per event.

  current       sync_outbox_claim with the ack riding on the next claim, vectors read in binary
                (bench/outbox_sql_bench.py's drain --ride --vec: exactly what the daemon runs)
  slice_delete  claim = one UPDATE of the slice row + the slice's next events by (event_type,
                slice, id); ack (riding on the next claim) = DELETE of the batch's events by id +
                the slice row's position and owner
  slice_cursor  the same without the DELETE: events stay until their table is truncated (PgQ's
                rotation; the TRUNCATE's own cost is timed after the drain and included per event)
  slice_tick    slice_cursor with PgQ's batch bounds, the answer to late events: each event
                carries its writer's xid8; a batch of a slice is its events whose transactions
                committed between two ticks (pg_current_snapshot() recorded in a tick table),
                read by (event_type, slice, xid, id) and filtered by pg_visible_in_snapshot; the
                position is (xid, id) within the tick range. Filled by 100-event transactions
  nolease       today's outbox and claim UPDATE (attempts counted per event) without the lease
                table: a candidate whose row has an older event in the outbox is not claimed (the
                older one is looked up through sync_outbox_row_idx, on jsonb_hash_extended(row_key,
                0) since migration 012); the ack DELETEs. What dropping only the per-row lease
                would save (its gaps: below)
  slice_pick    slice_delete where the claim picks the slice itself (a real claim must): the
                oldest event from the caller's bound whose slice is free (an ordered scan of
                (event_type, id), the slice row locked SKIP LOCKED), then that slice's next events
  naive         a plain queue, the floor of any design that deletes what it hands out: one
                `DELETE ... WHERE id IN (SELECT ... ORDER BY id LIMIT n FOR UPDATE SKIP LOCKED)
                RETURNING` per batch, no order per row, no attempts, no recovery

`nolease` loses what the lease's claimed_id remembers once a row's newer event is gone (a dead
letter re-queued by `retry --dead` with its old id) and the lease table that recovery finds a lost
owner's claims by. The prototypes are the common path only: no retries, dead letters, recovery or status. What they
leave out is what a real design must add (and measure): a retrying event holds its whole slice
(head-of-line blocking) unless rows with a retrying event get a per-row lease of their own;
concurrency per event type is at most --slices claimers; a slice's lease expiring under a hung
worker needs the same fence as today's claimed_id. Batch 1 (`--batch 1`) is the 200 commits/s
case: one event per claim.

Each model has its own tables in the same database, filled with the same events (one rule,
random --dim-float vectors, unique row keys), drained from ONE connection; the backend's CPU
time (/proc/<pid>/stat) and WAL bytes (pg_stat_wal) per event are printed per round, models
interleaved (order rotated every round), and medians at the end. Uses PostgreSQL from libpq's
environment on this machine. Nothing is asserted.
"""
import argparse
import os
import statistics
import sys
import pathlib
import time

import psycopg

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
import outbox_sql_bench as ob  # noqa: E402

# what every prototype claim function returns and how it runs (today's claim's settings)
CLAIM_HEAD = """RETURNS TABLE (id bigint, rule text, op text, row_key jsonb, payload json, attempts integer,
               max_attempts integer, created_at timestamptz, event_type text, vec real[])
LANGUAGE plpgsql
SET enable_seqscan = off SET enable_bitmapscan = off SET plan_cache_mode = force_generic_plan SET jit = off
AS $p$
#variable_conflict use_column"""

PROTO = """
DROP SCHEMA IF EXISTS proto CASCADE;
CREATE SCHEMA proto;
CREATE TABLE proto.ev (
  id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
  event_type text NOT NULL, slice integer NOT NULL, routing_key text, rule text NOT NULL,
  source_table text NOT NULL, row_key jsonb NOT NULL, op text NOT NULL, payload json, vec real[],
  created_at timestamptz NOT NULL DEFAULT now(), max_attempts integer NOT NULL DEFAULT 10)
  WITH (fillfactor = 100, autovacuum_vacuum_scale_factor = 0.01);
ALTER TABLE proto.ev ALTER COLUMN payload SET STORAGE EXTERNAL;
CREATE INDEX ev_slice_idx ON proto.ev (event_type, slice, id);
CREATE TABLE proto.slice (
  event_type text NOT NULL, slice integer NOT NULL, pos bigint NOT NULL DEFAULT 0, owner text,
  expires_at timestamptz, attempts integer NOT NULL DEFAULT 0, PRIMARY KEY (event_type, slice))
  WITH (fillfactor = 10);
CREATE TABLE proto.q (LIKE proto.ev INCLUDING ALL);
CREATE TABLE proto.evt (LIKE proto.ev INCLUDING DEFAULTS INCLUDING IDENTITY INCLUDING STORAGE,
                        tx xid8 NOT NULL DEFAULT pg_current_xact_id()) WITH (fillfactor = 100);
CREATE INDEX evt_slice_idx ON proto.evt (event_type, slice, tx, id);
CREATE TABLE proto.tick (id bigint PRIMARY KEY, snap pg_snapshot NOT NULL);
CREATE TABLE proto.tslice (
  event_type text NOT NULL, slice integer NOT NULL, tick bigint NOT NULL DEFAULT 0,
  last_tx xid8 NOT NULL DEFAULT '0', last_id bigint NOT NULL DEFAULT 0, owner text,
  expires_at timestamptz, attempts integer NOT NULL DEFAULT 0, PRIMARY KEY (event_type, slice))
  WITH (fillfactor = 10);

-- the next events of p_slice committed after its tick and by the newest tick, after (last_tx,
-- last_id); the ack (riding) records the position reached
CREATE FUNCTION proto.claim_tick(p_owner text, p_slice integer, p_limit integer, p_lease_ms integer,
    p_ack_slice integer DEFAULT NULL, p_ack_tx xid8 DEFAULT NULL, p_ack_id bigint DEFAULT NULL)
RETURNS TABLE (id bigint, rule text, op text, row_key jsonb, payload json, attempts integer,
               max_attempts integer, created_at timestamptz, event_type text, vec real[], tx xid8)
LANGUAGE plpgsql
SET enable_seqscan = off SET enable_bitmapscan = off SET plan_cache_mode = force_generic_plan SET jit = off
AS $p$
#variable_conflict use_column
DECLARE
  s record;
  prev pg_snapshot;
  cur pg_snapshot;
BEGIN
  IF p_ack_tx IS NOT NULL THEN
    UPDATE proto.tslice s SET last_tx = p_ack_tx, last_id = p_ack_id, owner = NULL, expires_at = NULL, attempts = 0
     WHERE s.event_type = 'b' AND s.slice = p_ack_slice AND s.owner = p_owner;
  END IF;
  UPDATE proto.tslice s SET owner = p_owner, expires_at = now() + p_lease_ms * interval '1 millisecond',
         attempts = s.attempts + 1
   WHERE s.event_type = 'b' AND s.slice = p_slice AND (s.owner IS NULL OR s.expires_at < now())
  RETURNING s.tick, s.last_tx, s.last_id, s.attempts INTO s;
  IF s IS NULL THEN
    RETURN;
  END IF;
  SELECT t.snap INTO prev FROM proto.tick t WHERE t.id = s.tick;
  SELECT t.snap INTO cur FROM proto.tick t ORDER BY t.id DESC LIMIT 1;
  RETURN QUERY
  SELECT o.id, o.rule, o.op, o.row_key, o.payload, s.attempts, o.max_attempts, o.created_at, o.event_type, o.vec, o.tx
    FROM proto.evt o
   WHERE o.event_type = 'b' AND o.slice = p_slice
     AND (o.tx, o.id) > (s.last_tx, s.last_id)
     AND o.tx >= pg_snapshot_xmin(prev) AND o.tx < pg_snapshot_xmax(cur)
     AND pg_visible_in_snapshot(o.tx, cur) AND NOT pg_visible_in_snapshot(o.tx, prev)
   ORDER BY o.tx, o.id LIMIT p_limit;
END
$p$;
-- slice_pick: the claim chooses the slice itself, as a real one must: the oldest event from the
-- caller's bound (the mark's role) whose slice is free; then that slice's next events
CREATE TABLE proto.evp (LIKE proto.ev INCLUDING ALL);
CREATE INDEX evp_type_idx ON proto.evp (event_type, id);
CREATE TABLE proto.pslice (LIKE proto.slice INCLUDING ALL) WITH (fillfactor = 10);
CREATE FUNCTION proto.claim_pick(p_owner text, p_type text, p_lo bigint, p_limit integer, p_lease_ms integer,
    p_ack_slice integer DEFAULT NULL, p_ack_pos bigint DEFAULT NULL, p_ack_ids bigint[] DEFAULT NULL)
@PICK_HEAD@
DECLARE
  v_slice integer;
  v_pos bigint;
  v_att integer;
BEGIN
  IF p_ack_ids IS NOT NULL THEN
    DELETE FROM proto.evp o WHERE o.id = ANY (p_ack_ids);
    UPDATE proto.pslice s SET pos = p_ack_pos, owner = NULL, expires_at = NULL, attempts = 0
     WHERE s.event_type = p_type AND s.slice = p_ack_slice AND s.owner = p_owner;
  END IF;
  UPDATE proto.pslice s SET owner = p_owner, expires_at = now() + p_lease_ms * interval '1 millisecond',
         attempts = s.attempts + 1
   WHERE (s.event_type, s.slice) = (
           SELECT f.event_type, f.slice
             FROM proto.evp o,
                  LATERAL (SELECT f.event_type, f.slice FROM proto.pslice f
                            WHERE f.event_type = o.event_type AND f.slice = o.slice
                              AND (f.owner IS NULL OR f.expires_at < now())
                              FOR UPDATE SKIP LOCKED) f
            WHERE o.event_type = p_type AND o.id >= p_lo
            ORDER BY o.id LIMIT 1)
  RETURNING s.slice, s.pos, s.attempts INTO v_slice, v_pos, v_att;
  IF v_slice IS NULL THEN
    RETURN;
  END IF;
  RETURN QUERY
  SELECT o.id, o.rule, o.op, o.row_key, o.payload, v_att, o.max_attempts, o.created_at, o.event_type, o.vec, v_slice
    FROM proto.evp o
   WHERE o.event_type = p_type AND o.slice = v_slice AND o.id > v_pos
   ORDER BY o.id LIMIT p_limit;
END
$p$;
CREATE TABLE proto.ob (LIKE public.sync_outbox INCLUDING ALL) WITH (fillfactor = 50);

-- today's claim without the lease: candidates locked as today, one whose row has an older event
-- left out (held), the rest claimed by one UPDATE by address; the previous batch's ack first
CREATE FUNCTION proto.claim_nolease(p_owner text, p_lo bigint, p_limit integer, p_lease_ms integer,
    p_ack_ids bigint[] DEFAULT NULL)
@CLAIM_HEAD@
DECLARE
  c_tids tid[];
BEGIN
  IF p_ack_ids IS NOT NULL THEN
    DELETE FROM proto.ob o WHERE o.id = ANY (p_ack_ids) AND o.claimed_by = p_owner;
  END IF;
  WITH cand AS (
    SELECT o.id, o.rule, o.row_key, o.ctid FROM proto.ob o
     WHERE o.event_type = 'b' AND o.id >= p_lo AND o.available_at <= now() AND o.attempts < o.max_attempts
     ORDER BY o.id LIMIT p_limit
       FOR UPDATE SKIP LOCKED
  )
  SELECT array_agg(c.ctid) INTO c_tids FROM cand c
   WHERE NOT EXISTS (SELECT 1 FROM proto.ob x
                      WHERE pg_catalog.jsonb_hash_extended(x.row_key, 0) = pg_catalog.jsonb_hash_extended(c.row_key, 0)
                        AND x.rule = c.rule AND x.row_key = c.row_key AND x.id < c.id);
  IF c_tids IS NULL THEN
    RETURN;
  END IF;
  RETURN QUERY
  WITH cl AS (
    UPDATE proto.ob o
       SET attempts = o.attempts + 1, claimed_by = p_owner, claimed_at = now(),
           available_at = now() + p_lease_ms * interval '1 millisecond'
     WHERE o.ctid = ANY (c_tids)
    RETURNING o.id, o.rule, o.op, o.row_key, o.payload, o.attempts, o.max_attempts, o.created_at, o.event_type, o.vec
  )
  SELECT * FROM cl ORDER BY cl.id;
END
$p$;

-- claim p_slice of p_type for p_owner, after acknowledging the caller's previous batch of
-- p_ack_slice up to p_ack_pos (p_ack_ids deleted when p_delete)
CREATE FUNCTION proto.claim(p_owner text, p_type text, p_slice integer, p_limit integer, p_lease_ms integer,
    p_delete boolean, p_ack_slice integer DEFAULT NULL, p_ack_pos bigint DEFAULT NULL, p_ack_ids bigint[] DEFAULT NULL)
@CLAIM_HEAD@
DECLARE
  v_pos bigint;
  v_att integer;
BEGIN
  IF p_ack_pos IS NOT NULL THEN
    IF p_delete THEN
      DELETE FROM proto.ev o WHERE o.id = ANY (p_ack_ids);
    END IF;
    UPDATE proto.slice s SET pos = p_ack_pos, owner = NULL, expires_at = NULL, attempts = 0
     WHERE s.event_type = p_type AND s.slice = p_ack_slice AND s.owner = p_owner;
  END IF;
  UPDATE proto.slice s SET owner = p_owner, expires_at = now() + p_lease_ms * interval '1 millisecond',
         attempts = s.attempts + 1
   WHERE s.event_type = p_type AND s.slice = p_slice AND (s.owner IS NULL OR s.expires_at < now())
  RETURNING s.pos, s.attempts INTO v_pos, v_att;
  IF v_pos IS NULL THEN
    RETURN;
  END IF;
  RETURN QUERY
  SELECT o.id, o.rule, o.op, o.row_key, o.payload, v_att, o.max_attempts, o.created_at, o.event_type, o.vec
    FROM proto.ev o
   WHERE o.event_type = p_type AND o.slice = p_slice AND o.id > v_pos
   ORDER BY o.id LIMIT p_limit;
END
$p$;
"""

CLAIM = ("SELECT id, rule, op, row_key::text, payload::text, attempts, max_attempts,"
         " extract(epoch FROM created_at)::float8, vec FROM proto.claim(%s, 'b', %s, %s, 30000, %s, %s, %s, %s)")
CLAIM_TICK = ("SELECT id, rule, op, row_key::text, payload::text, attempts, max_attempts,"
              " extract(epoch FROM created_at)::float8, vec, tx::text FROM proto.claim_tick(%s, %s, %s, 30000, %s, %s::xid8, %s)")
NOLEASE = ("SELECT id, rule, op, row_key::text, payload::text, attempts, max_attempts,"
           " extract(epoch FROM created_at)::float8, vec FROM proto.claim_nolease(%s, %s, %s, 30000, %s)")
PICK = ("SELECT id, rule, op, row_key::text, payload::text, attempts, max_attempts,"
        " extract(epoch FROM created_at)::float8, vec, slice FROM proto.claim_pick(%s, 'b', %s, %s, 30000, %s, %s, %s)")
NAIVE = ("DELETE FROM proto.q WHERE id IN (SELECT id FROM proto.q WHERE event_type = 'b' ORDER BY id LIMIT %s"
         " FOR UPDATE SKIP LOCKED) RETURNING id, rule, op, row_key::text, payload::text, 1, max_attempts,"
         " extract(epoch FROM created_at)::float8, vec")

EV_COLS = "event_type, slice, rule, source_table, row_key, op, payload, vec"


def fill_proto(c, table, n, dim, slices):
    c.execute(f"TRUNCATE {table}")
    c.execute(f"INSERT INTO {table} ({EV_COLS})"
              f" SELECT 'b', (abs(jsonb_hash_extended(jsonb_build_object('id', i), 0)) %% {slices})::int, 'b', 'public.b',"
              " jsonb_build_object('id', i), 'upsert',"
              " json_build_object('id', i, 'seq', i, 'pad', repeat('x', 64), 'emb', NULL::json),"
              f" (SELECT array_agg(random()::real) FROM generate_series(1, {dim}) WHERE i > 0)"
              " FROM generate_series(1, %s) i", (n,))
    c.execute(f"VACUUM ANALYZE {table}")


def fill_tick(c, n, dim, slices):
    """proto.evt: the same events by transactions of 100, a tick before and after."""
    c.execute("TRUNCATE proto.evt, proto.tick")
    c.execute("INSERT INTO proto.tick VALUES (0, pg_current_snapshot())")
    for lo in range(1, n + 1, 100):
        c.execute(f"INSERT INTO proto.evt ({EV_COLS})"
                  f" SELECT 'b', (abs(jsonb_hash_extended(jsonb_build_object('id', i), 0)) %% {slices})::int, 'b', 'public.b',"
                  " jsonb_build_object('id', i), 'upsert',"
                  " json_build_object('id', i, 'seq', i, 'pad', repeat('x', 64), 'emb', NULL::json),"
                  f" (SELECT array_agg(random()::real) FROM generate_series(1, {dim}) WHERE i > 0)"
                  " FROM generate_series(%s::int, %s::int) i", (lo, min(lo + 99, n)))
    c.execute("INSERT INTO proto.tick VALUES (1, pg_current_snapshot())")
    c.execute("VACUUM ANALYZE proto.evt")


def wal_bytes(c):
    return c.execute("SELECT wal_bytes FROM pg_stat_wal").fetchone()[0]


def measure(c, body):
    """CPU seconds of this connection's backend and WAL bytes spent by body(); returns (n, cpu, wal)."""
    pid = c.info.backend_pid
    w0, t0 = wal_bytes(c), ob.cpu_seconds(pid)
    n = body()
    cpu = ob.cpu_seconds(pid) - t0
    c.execute("SELECT pg_stat_force_next_flush()")
    return n, cpu, float(wal_bytes(c) - w0)


def drain_slices(c, batch, slices, table, claim, extra, ack_of):
    """Claim the slices of table in turn, each until empty, by claim(owner, slice, batch, *extra,
    *ack); each ack (ack_of(slice, rows): the claim's trailing arguments) rides on the next claim."""
    owner = c.execute("SELECT pg_backend_pid()::text || '.bench'").fetchone()[0]
    c.execute(f"DELETE FROM {table}")
    c.execute(f"INSERT INTO {table} (event_type, slice) SELECT 'b', s FROM generate_series(0, %s) s", (slices - 1,))
    n = 0
    ack = (None, None, None)
    for s in range(slices):
        while True:
            rows = c.execute(claim, (owner, s, batch) + extra + ack, binary=True).fetchall()
            if not rows:
                ack = (None, None, None)
                # the empty claim leased the slice: give it back (as the next claim's ack would)
                c.execute(f"UPDATE {table} SET owner = NULL WHERE event_type = 'b' AND slice = %s", (s,))
                break
            n += len(rows)
            ack = ack_of(s, rows)
    return n


def fill_nolease(c, n, dim):
    """proto.ob gets the events today's outbox gets (bench/outbox_sql_bench.py's fill)."""
    c.execute("TRUNCATE proto.ob")
    c.execute("INSERT INTO proto.ob (event_type, rule, source_table, row_key, op, payload, vec)"
              " SELECT 'b', 'b', 'public.b', jsonb_build_object('id', i), 'upsert',"
              " json_build_object('id', i, 'seq', i, 'pad', repeat('x', 64), 'emb', NULL::json),"
              f" (SELECT array_agg(random()::real) FROM generate_series(1, {dim}) WHERE i > 0)"
              " FROM generate_series(1, %s) i", (n,))
    c.execute("VACUUM ANALYZE proto.ob")


def drain_nolease(c, batch):
    """Claims from the previous batch's first id (the mark's role), each ack riding on the next claim."""
    owner = c.execute("SELECT pg_backend_pid()::text || '.bench'").fetchone()[0]
    n, lo, ack = 0, 0, None
    while True:
        rows = c.execute(NOLEASE, (owner, lo, batch, ack), binary=True).fetchall()
        if not rows:
            if ack is None:
                return n
            ack = None
            continue
        n += len(rows)
        lo, ack = rows[0][0], [r[0] for r in rows]


def drain_pick(c, batch, slices):
    """slice_pick: the claim picks the slice (the oldest event from the bound whose slice is free);
    the bound is the previous batch's first id (one claimer: nothing older is left)."""
    owner = c.execute("SELECT pg_backend_pid()::text || '.bench'").fetchone()[0]
    c.execute("DELETE FROM proto.pslice")
    c.execute("INSERT INTO proto.pslice (event_type, slice) SELECT 'b', s FROM generate_series(0, %s) s", (slices - 1,))
    n, lo, ack = 0, 0, (None, None, None)
    while True:
        rows = c.execute(PICK, (owner, lo, batch) + ack, binary=True).fetchall()
        if not rows:
            if ack[0] is None:
                return n
            ack = (None, None, None)
            continue
        n += len(rows)
        lo, ack = rows[0][0], (rows[0][9], rows[-1][0], [r[0] for r in rows])


def drain_naive(c, batch):
    n = 0
    while True:
        rows = c.execute(NAIVE, (batch,), binary=True).fetchall()
        if not rows:
            return n
        n += len(rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=50000)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--slices", type=int, default=16)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--db", default="p2q_model_bench")
    ap.add_argument("--models", default="current,slice_delete,slice_cursor,slice_tick,nolease,naive")
    args = ap.parse_args()
    models = args.models.split(",")
    with psycopg.connect(dbname="postgres", autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{args.db}" WITH (FORCE)')
        c.execute(f'CREATE DATABASE "{args.db}"')
    ob.install(args.db, args.dim)
    res = {m: [] for m in models}
    print(f"outbox models: {args.events} events, batch {args.batch}, {args.slices} slices, dim {args.dim},"
          f" load {os.getloadavg()[0]:.1f}")
    with psycopg.connect(dbname=args.db, autocommit=True) as c:
        c.execute(PROTO.replace("@CLAIM_HEAD@", CLAIM_HEAD)  # claim_pick also returns the slice
                  .replace("@PICK_HEAD@", CLAIM_HEAD.replace("vec real[])", "vec real[], slice integer)")))
        for r in range(args.rounds):
            order = models[r % len(models):] + models[:r % len(models)]
            for m in order:
                extra = 0.0
                if m == "current":
                    ob.fill(c, args.events, args.dim, 50, None, True)
                    n, cpu, wal, _, _ = ob.drain(c, args.batch, True, True)
                elif m == "slice_tick":
                    fill_tick(c, args.events, args.dim, args.slices)
                    n, cpu, wal = measure(c, lambda: drain_slices(  # position: the last (xid, id)
                        c, args.batch, args.slices, "proto.tslice", CLAIM_TICK, (),
                        lambda s, rows: (s, rows[-1][9], rows[-1][0])))
                elif m == "nolease":
                    fill_nolease(c, args.events, args.dim)
                    n, cpu, wal = measure(c, lambda: drain_nolease(c, args.batch))
                elif m == "slice_pick":
                    fill_proto(c, "proto.evp", args.events, args.dim, args.slices)
                    n, cpu, wal = measure(c, lambda: drain_pick(c, args.batch, args.slices))
                elif m == "naive":
                    fill_proto(c, "proto.q", args.events, args.dim, args.slices)
                    n, cpu, wal = measure(c, lambda: drain_naive(c, args.batch))
                else:
                    fill_proto(c, "proto.ev", args.events, args.dim, args.slices)
                    delete = m == "slice_delete"
                    n, cpu, wal = measure(c, lambda: drain_slices(  # position: the last id
                        c, args.batch, args.slices, "proto.slice", CLAIM, (delete,),
                        lambda s, rows: (s, rows[-1][0], [r[0] for r in rows] if delete else None)))
                    if m == "slice_cursor":  # the rotation's TRUNCATE, per event of the table
                        pid = c.info.backend_pid
                        t0 = ob.cpu_seconds(pid)
                        c.execute("TRUNCATE proto.ev")
                        extra = ob.cpu_seconds(pid) - t0
                        cpu += extra
                res[m].append((cpu / n * 1e6, wal / n))
                print(f"  round {r + 1} {m:13s} {n} events: PostgreSQL CPU {cpu / n * 1e6:7.1f} us/event,"
                      f" WAL {wal / n:6.0f} B/event" + (f" (TRUNCATE {extra * 1e3:.0f} ms)" if extra else ""),
                      flush=True)
                time.sleep(0.5)
    base = statistics.median(x[0] for x in res[models[0]])
    print(f"medians (load {os.getloadavg()[0]:.1f}):")
    for m in models:
        med = statistics.median(x[0] for x in res[m])
        print(f"  {m:13s} {med:7.1f} us/event ({med / base:.2f} x {models[0]}),"
              f" WAL {statistics.median(x[1] for x in res[m]):6.0f} B/event")


if __name__ == "__main__":
    main()

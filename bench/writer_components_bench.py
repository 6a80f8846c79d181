#!/usr/bin/env python3
"""The writer's cost piece by piece, on pg2qdrant's REAL trigger and outbox (issue 11): the rule of
bench/writer_overhead_bench.py (key id, columns id, a 384-float real[] sent unprinted) installed on
table w, and sync_outbox changed by DDL between runs, one change per configuration:

  ship          as `init` and `apply` install it (the baseline of every delta): INSERTs and DELETEs
                captured per statement (p2q_insert_w, p2q_delete_w), UPDATEs by the row trigger (p2q_capture_w:
                since session 10 an unpinned gate that returns from an UPDATE of unwatched columns and calls
                the pinned p2q_pinned_w for the rest)
  notrig        no capture trigger at all (the plain INSERT)
  rowins        INSERTs and DELETEs captured by the row trigger too (tables with another AFTER INSERT
                or DELETE trigger, partitioned tables and partitions; every table before the
                statement capture);
                the function configurations below change the pinned function (p2q_pinned_w, or
                p2q_capture_w of a build before the gate): combine them with rowins; or, with
                --function p2q_insert_w (p2q_delete_w), the statement functions
  NAME          with --proto NAME=FILE: FILE's hand-written CREATE OR REPLACE FUNCTION statements
                (a prototype of rule w's functions, measured before it is built)
  check         + the CHECK (op IN ('upsert', 'delete')) that migration 010 dropped
  nonotify      the trigger without its NOTIFY (`probe := pg_notify(...) IS NULL` before the event)
  notifytrig    + the outbox's own NOTIFY trigger (sync_outbox_notify, a WHEN clause per row): with
                nonotify, how every event was notified before the capture functions did it
  notifycase    the NOTIFY in the event INSERT's event_type column instead (CASE WHEN pg_notify(...)
                IS NULL ..., as the statement-level INSERTs do), to be combined with nonotify
  norow, rowhash, rowold   sync_outbox_row_idx (shipped: jsonb_hash_extended(row_key, 0), migration
                012) dropped / as hash (row_key) / as (rule, row_key), what migrations 001-011 built
  rowrint, rowintr, rowfold   sync_outbox_row_idx as btree (rule, jsonb_hash_extended(row_key, 0)) /
                (jsonb_hash_extended(row_key, 0), rule) / (jsonb_hash_extended(row_key, hashtext(rule)))
  backlog       100,000 events pending before the rows are written (keys id 1..100,000, the rows'
                among them; --instructions only: a CPU-time run truncates the outbox)
  notrig1       --partitioned's notrig: no row trigger (it is the only capture trigger there)
  noparts       with --partitioned --function p2q_capture_w: the gate without the partitions' fast
                test (capture_relid.c), so every row takes the slow test sync_outbox_capture_accepts,
                as a partition created since `apply`, a renamed or a restored table does
  norouting, nopkey, noclaim   without that index;  ff100   fillfactor 100 instead of 50
  slice         + stage 2's slice index (session15-lead.md, S1): sync_outbox_slice_idx (event_type,
                ((jsonb_hash_extended(row_key, 0) & 63)::int), id), an expression index (no column);
                slicep the same, partial WHERE event_type IS NOT NULL (as sync_outbox_claim_idx);
                slicecol  a stored generated column slice (the same expression) + an index
                (event_type, slice, id). With +norow: the slice index instead of sync_outbox_row_idx.
                Key orders: slicefirst (slice, event_type, id); slicenotype (slice, id), no event type
                (the keys after a varlena key are read by nocache_index_getattr in every comparison)
  others        100,000 events of two other event types pending ('articles', 'zebras': w sorts
                between them), so that the claim index's descents compare unequal event types
  colldb        sync_outbox.event_type and routing_key in the database's collation, as migrations
                001-012 left them (shipped since 013: COLLATE "C", memcmp instead of strcoll; see --locale)
  noset_NAME    the trigger function without its SET clause of setting NAME (noset_TimeZone, ...)
  onlysp        with SET search_path only;  typecheck   + a per-row pg_typeof() check of its columns
  nolcm, nosets, nosecdef, noexc   the trigger function without SET lc_monetary / any SET clause
                / SECURITY DEFINER / its fast path's exception block (measurement only: none of
                these is a correct trigger)
Configurations join with "+". Each run truncates w and sync_outbox and inserts --rows rows:
  multi   1,000-row INSERT ... SELECT statements
  stmt    single-row INSERTs, 1,000 per transaction (per-statement costs)
  single  single-row INSERTs, autocommit (per-statement and per-transaction costs)
  delete  1,000-row DELETEs of rows inserted with triggers off (session_replication_role =
          replica; the same INSERTs in every configuration, so a difference is the DELETEs')
  delete1 one-row DELETEs, 1,000 per transaction, likewise
  upd_unwatched, upd_watched   1,000-row UPDATEs of rows inserted likewise: of an unwatched column
          (note), or of the vector (a watched column: one event per row)
  upd1_unwatched, upd1_watched   the same as one-row UPDATEs, 1,000 per transaction
Configurations are interleaved (order reversed every other round); the writer backend's on-CPU
time from /proc/<pid>/schedstat (ns); medians over --rounds. Nothing is asserted.

    python3 bench/writer_components_bench.py [--mode multi] [--rows 20000] [--rounds 5] CONFIG...

Uses PostgreSQL from libpq's environment (on this machine: /proc is read); creates (drops first)
the database --db (default p2q_components); no Qdrant needed (`apply --dry-run` piped to psql).

--instructions: instructions per row counted by callgrind instead (bench/pg_callgrind.py), which
the machine's load cannot move (CPU time moved 49-102 us/row for the same configuration at load 1).
The database is built once in a scratch cluster (--dir); for each configuration a single-user
postgres runs, from the same copy of that cluster, the configuration's DDL and then --rows rows,
and again with 2 x --rows rows: the difference / --rows is the configuration's cost per row, free
of start-up, DDL and first-call costs (plpgsql compiling, catalog caches). Printed: instructions per
row, and each configuration minus notrig (the writer's overhead) when notrig is among them. Name a
configuration twice (e.g. `ship ship`) to see the method's own spread. Single-user mode has no
NOTIFY listener and no wire protocol: what it counts is the backend's own work.

    python3 bench/writer_components_bench.py --instructions [--rows 2000] [--mode multi] notrig ship ...
"""
import argparse
import os
import random
import re
import statistics

import psycopg

import pg_callgrind
import writer_db

NOTIFY = ("CREATE TRIGGER sync_outbox_notify AFTER INSERT ON sync_outbox FOR EACH ROW WHEN "
          "(pg_catalog.pg_notify('sync_outbox_insert', NEW.event_type) IS NULL) EXECUTE FUNCTION sync_outbox_notify()")
ROW_TRIG = "CREATE TRIGGER p2q_w AFTER UPDATE ON w FOR EACH ROW EXECUTE FUNCTION p2q_capture_w()"
STMT_TRIG = ("CREATE TRIGGER p2q_w_insert AFTER INSERT ON w REFERENCING NEW TABLE AS p2q_new FOR EACH STATEMENT"
             " EXECUTE FUNCTION p2q_insert_w()")
DEL_TRIG = ("CREATE TRIGGER p2q_w_delete AFTER DELETE ON w REFERENCING OLD TABLE AS p2q_old FOR EACH STATEMENT"
            " EXECUTE FUNCTION p2q_delete_w()")
NO_STMT = ["DROP TRIGGER p2q_w ON w", "DROP TRIGGER p2q_w_insert ON w", "DROP TRIGGER p2q_w_delete ON w"]
ROW = "CREATE INDEX sync_outbox_row_idx ON sync_outbox (jsonb_hash_extended(row_key, 0))"  # migration 012
SLICE = "((jsonb_hash_extended(row_key, 0) & 63)::int)"  # stage 2's slice (session15-lead.md, S1), 64 slices
# configuration: (DDL to apply, DDL to undo)
DDL = {
    "notrig": (NO_STMT, [ROW_TRIG, STMT_TRIG, DEL_TRIG]),
    "notrig1": (["DROP TRIGGER p2q_w ON w"], [ROW_TRIG]),  # --partitioned: the row trigger is the only one
    "rowins": (NO_STMT + ["CREATE TRIGGER p2q_w AFTER INSERT OR UPDATE OR DELETE ON w FOR EACH ROW"
                          " EXECUTE FUNCTION p2q_capture_w()"],
               ["DROP TRIGGER p2q_w ON w", ROW_TRIG, STMT_TRIG, DEL_TRIG]),
    "check": (["ALTER TABLE sync_outbox ADD CONSTRAINT sync_outbox_op_check CHECK (op IN ('upsert', 'delete'))"],
              ["ALTER TABLE sync_outbox DROP CONSTRAINT sync_outbox_op_check"]),
    "notifytrig": ([NOTIFY], ["DROP TRIGGER sync_outbox_notify ON sync_outbox"]),
    "norow": (["DROP INDEX sync_outbox_row_idx"], [ROW]),
    "rowhash": (["DROP INDEX sync_outbox_row_idx", "CREATE INDEX sync_outbox_row_idx ON sync_outbox USING hash (row_key)"],
                ["DROP INDEX sync_outbox_row_idx", ROW]),
    "rowold": (["DROP INDEX sync_outbox_row_idx", "CREATE INDEX sync_outbox_row_idx ON sync_outbox (rule, row_key)"],
               ["DROP INDEX sync_outbox_row_idx", ROW]),
    "rowrint": (["DROP INDEX sync_outbox_row_idx",
                 "CREATE INDEX sync_outbox_row_idx ON sync_outbox (rule, jsonb_hash_extended(row_key, 0))"],
                ["DROP INDEX sync_outbox_row_idx", ROW]),
    "rowintr": (["DROP INDEX sync_outbox_row_idx",
                 "CREATE INDEX sync_outbox_row_idx ON sync_outbox (jsonb_hash_extended(row_key, 0), rule)"],
                ["DROP INDEX sync_outbox_row_idx", ROW]),
    "rowfold": (["DROP INDEX sync_outbox_row_idx",
                 "CREATE INDEX sync_outbox_row_idx ON sync_outbox (jsonb_hash_extended(row_key, hashtext(rule)))"],
                ["DROP INDEX sync_outbox_row_idx", ROW]),
    "backlog": (["INSERT INTO sync_outbox (event_type, rule, source_table, row_key, op, payload) SELECT 'w', 'w',"
                 " 'public.w', jsonb_build_object('id', i), 'upsert', '{}' FROM generate_series(1, 100000) i"],
                ["TRUNCATE sync_outbox"]),
    "norouting": (["DROP INDEX sync_outbox_routing_idx"],
                  ["CREATE INDEX sync_outbox_routing_idx ON sync_outbox (event_type, routing_key, id)"
                   " WHERE routing_key IS NOT NULL"]),
    "nopkey": (["ALTER TABLE sync_outbox DROP CONSTRAINT sync_outbox_pkey"],
               ["ALTER TABLE sync_outbox ADD CONSTRAINT sync_outbox_pkey PRIMARY KEY (id)"]),
    "noclaim": (["DROP INDEX sync_outbox_claim_idx"], ["CREATE INDEX sync_outbox_claim_idx ON sync_outbox (event_type, id)"]),
    "others": (["INSERT INTO sync_outbox (event_type, rule, source_table, row_key, op, payload) SELECT t, t,"
                " 'public.' || t, jsonb_build_object('id', i), 'upsert', '{}' FROM generate_series(1, 100000) i,"
                " LATERAL (SELECT CASE WHEN i % 2 = 0 THEN 'articles' ELSE 'zebras' END AS t) e"],
               ["TRUNCATE sync_outbox"]),
    "colldb": (["ALTER TABLE sync_outbox ALTER COLUMN event_type TYPE text COLLATE \"default\","
                " ALTER COLUMN routing_key TYPE text COLLATE \"default\""],
               ["ALTER TABLE sync_outbox ALTER COLUMN event_type TYPE text COLLATE \"C\","
                " ALTER COLUMN routing_key TYPE text COLLATE \"C\""]),
    "slice": ([f"CREATE INDEX sync_outbox_slice_idx ON sync_outbox (event_type, {SLICE}, id)"],
              ["DROP INDEX sync_outbox_slice_idx"]),
    "slicep": ([f"CREATE INDEX sync_outbox_slice_idx ON sync_outbox (event_type, {SLICE}, id) WHERE event_type IS NOT NULL"],
               ["DROP INDEX sync_outbox_slice_idx"]),
    "slicefirst": ([f"CREATE INDEX sync_outbox_slice_idx ON sync_outbox ({SLICE}, event_type, id)"],
                   ["DROP INDEX sync_outbox_slice_idx"]),
    "slicenotype": ([f"CREATE INDEX sync_outbox_slice_idx ON sync_outbox ({SLICE}, id)"],
                    ["DROP INDEX sync_outbox_slice_idx"]),
    "slicecol": ([f"ALTER TABLE sync_outbox ADD COLUMN slice int GENERATED ALWAYS AS {SLICE} STORED",
                  "CREATE INDEX sync_outbox_slice_idx ON sync_outbox (event_type, slice, id)"],
                 ["ALTER TABLE sync_outbox DROP COLUMN slice"]),
    "ff100": (["ALTER TABLE sync_outbox SET (fillfactor = 100)"], ["ALTER TABLE sync_outbox SET (fillfactor = 50)"]),
}
NOTIFY_STMT = "probe := pg_catalog.pg_notify('sync_outbox_insert', 'w') IS NULL; "
NOTIFY_CASE = "CASE WHEN pg_catalog.pg_notify('sync_outbox_insert', 'w') IS NULL THEN NULL ELSE 'w' END"


def variant(orig, part):
    """The capture function's definition orig changed for one function configuration."""
    if part == "nolcm":
        d = orig.replace(" SET lc_monetary TO 'C'", "")
    elif part == "nosets":
        d = re.sub(r"\n SET [^\n]*", "", orig)
    elif part.startswith("noset_"):  # one SET clause less, e.g. noset_TimeZone, noset_search_path
        d = re.sub(r'\n SET "?' + re.escape(part[6:]) + r'"? TO [^\n]*', "", orig, flags=re.I)
    elif part == "onlysp":  # SET search_path only (the SECURITY DEFINER defence; no output pin)
        d = re.sub(r"\n SET (?!search_path)[^\n]*", "", orig)
    elif part == "typecheck":  # + a per-row check of the rule's column types (what a pin-free path would need)
        d = orig.replace("BEGIN\n  BEGIN\n", "BEGIN\n  IF pg_typeof(NEW.id) = 'bigint'::regtype AND pg_typeof(NEW.emb)"
                         " = 'real[]'::regtype THEN probe := true; END IF;\n  BEGIN\n", 1)
    elif part == "nosecdef":
        d = orig.replace(" SECURITY DEFINER", "")
    elif part == "noexc":
        d = orig.replace("  EXCEPTION WHEN OTHERS THEN\n    slow := true;\n  END;", "  END;", 1)
    elif part == "nonotify":
        d = orig.replace(NOTIFY_STMT, "")
    elif part == "notifycase":
        d = orig.replace("VALUES ('w', ", f"VALUES ({NOTIFY_CASE}, ")
    elif part == "noparts":  # the guard's partitions' fast test taken out: every partition's row takes the slow test
        d = re.sub(r" OR COALESCE\(\(.*?TG_TABLE_SCHEMA, false\)", "", orig, count=1)
    else:
        raise SystemExit(f"unknown configuration {part}")
    assert d != orig, part
    return d


PROTO = {}  # --proto NAME=FILE: configuration NAME runs FILE (hand-written function definitions)
SHIPPED = []  # the shipped definitions of rule w's functions (what undoing a --proto restores)


def config_sql(cfg, orig, undo):
    """The statements that set up (undo: take down) configuration cfg; orig = the shipped
    definition of the function that function configurations change (--function)."""
    out, fn = [], orig
    for part in cfg.split("#")[0].split("+"):
        if part in DDL:
            out += DDL[part][1 if undo else 0]
        elif part in PROTO:
            out += SHIPPED if undo else [PROTO[part]]
        elif part != "ship":
            fn = variant(fn, part)  # function configurations combine
    if fn != orig:
        out.append(orig if undo else fn)
    return out


def pinned_definition(c, function=None):
    """The definition of the function that function configurations change: --function (e.g.
    p2q_insert_w, the INSERT statement trigger's), by default rule w's pinned function:
    p2q_pinned_w behind the gate, or (a build before it) the trigger function p2q_capture_w itself.
    Also keeps every shipped definition of rule w's functions in SHIPPED."""
    SHIPPED[:] = [r[0] for r in c.execute(
        "SELECT pg_get_functiondef(p.oid) FROM pg_proc p WHERE p.proname ~ '^p2q_[a-z]+_w$' ORDER BY p.proname")]
    if function:
        return c.execute("SELECT pg_get_functiondef(%s::regproc)", (function,)).fetchone()[0]
    return c.execute("SELECT pg_get_functiondef(coalesce(to_regproc('p2q_pinned_w'), 'p2q_capture_w'::regproc))").fetchone()[0]


def writes(mode, rows, vec):
    """The writer's statements, (sql, params), for rows rows; BEGIN/COMMIT around stmt's groups."""
    if mode.startswith("delete") or mode.startswith("upd"):
        yield ("SET session_replication_role = replica", ())
        yield ("INSERT INTO w (id, note, emb) SELECT i, 'x', %s::real[] FROM generate_series(0::bigint, %s::bigint) i",
               (vec, rows - 1))
        yield ("SET session_replication_role = origin", ())
    for s in range(0, rows, 1000):
        n = min(1000, rows - s)
        if mode == "delete":
            yield ("DELETE FROM w WHERE id BETWEEN %s AND %s", (s, s + n - 1))
            continue
        if mode == "delete1":
            yield ("BEGIN", ())
            for i in range(s, s + n):
                yield ("DELETE FROM w WHERE id = %s", (i,))
            yield ("COMMIT", ())
            continue
        if mode.startswith("upd"):  # upd_/upd1_ + unwatched (note) or watched (the vector)
            what = ("note = 'y'" if mode.endswith("_unwatched") else "emb = %s::real[]",
                    () if mode.endswith("_unwatched") else ("{0.5" + vec[vec.index(","):],))
            if mode.startswith("upd1"):
                yield ("BEGIN", ())
                for i in range(s, s + n):
                    yield (f"UPDATE w SET {what[0]} WHERE id = %s", what[1] + (i,))
                yield ("COMMIT", ())
            else:
                yield (f"UPDATE w SET {what[0]} WHERE id BETWEEN %s AND %s", what[1] + (s, s + n - 1))
            continue
        if mode == "multi":
            yield ("INSERT INTO w (id, note, emb) SELECT i, 'x', %s::real[]"
                   " FROM generate_series(%s::bigint, %s::bigint) i", (vec, s, s + n - 1))
            continue
        if mode == "stmt":
            yield ("BEGIN", ())
        for i in range(s, s + n):
            yield ("INSERT INTO w (id, note, emb) VALUES (%s, 'x', %s::real[])", (i, vec))
        if mode == "stmt":
            yield ("COMMIT", ())


def literal_sql(q, params):
    """q with its %s replaced by params as SQL literals (ints, and strings without quotes)."""
    for p in params:
        assert "'" not in str(p)
        q = q.replace("%s", str(p) if isinstance(p, int) else f"'{p}'", 1)
    return q


def instructions(args, vec):
    """--instructions: see the docstring."""
    d = args.dir
    pg_callgrind.start(d)
    writer_db.create(args.db, force=True, locale=args.locale, partitioned=args.partitioned)
    with psycopg.connect(dbname=args.db, autocommit=True) as c:
        orig = pinned_definition(c, args.function)
        c.execute("CHECKPOINT")
    pg_callgrind.freeze(d)
    per_row, seen = {}, {}
    for cfg in args.configs:
        seen[cfg] = seen.get(cfg, 0) + 1
        name = cfg if seen[cfg] == 1 else f"{cfg}#{seen[cfg]}"
        counts = []
        for n in (args.rows, 2 * args.rows):
            stmts = config_sql(cfg, orig, False) + [literal_sql(q, p) for q, p in writes(args.mode, n, vec)]
            text = "".join(s.rstrip().rstrip(";") + ";\n\n" for s in stmts)
            assert all(";\n\n" not in s.rstrip().rstrip(";") for s in stmts)
            counts.append(pg_callgrind.count(d, args.db, f"{name.replace('+', '_')}.{n}", text, joined=True))
        per_row[name] = (counts[1] - counts[0]) / args.rows
    print(f"writer components, instructions per row (callgrind, single-user postgres): mode {args.mode},"
          f" {args.rows} vs {2 * args.rows} rows")
    base = per_row.get("notrig")
    first = per_row[args.configs[0]]
    for k, v in per_row.items():
        over = f"  {v - base:+12,.0f} over notrig" if base is not None else ""
        print(f"  {k:28s} {v:12,.0f}{over}  ({v - first:+10,.0f} vs {args.configs[0]})")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", default="p2q_components")
    ap.add_argument("--mode", choices=("multi", "stmt", "single", "delete", "delete1", "upd_unwatched",
                                                "upd_watched", "upd1_unwatched", "upd1_watched"), default="multi")
    ap.add_argument("--locale", help="create --db with this LOCALE (from template0), e.g. en_US.UTF-8; default:"
                    " the cluster's (scripts/pg-tmp: C.UTF-8)")
    ap.add_argument("--rows", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--instructions", action="store_true", help="count instructions by callgrind instead of CPU time")
    ap.add_argument("--partitioned", action="store_true", help="--instructions: w partitioned, every row in its one"
                    " partition w_0 (the row trigger's clone fires there)")
    ap.add_argument("--dir", default="/tmp/p2q-writer-instr", help="--instructions: the scratch cluster")
    ap.add_argument("--function", help="the function that function configurations (nosets, noexc, ...) change,"
                    " e.g. p2q_insert_w (the INSERT statement trigger's); default: the pinned row function")
    ap.add_argument("--proto", action="append", default=[], metavar="NAME=FILE",
                    help="configuration NAME: run FILE (hand-written CREATE OR REPLACE FUNCTION ... of rule w's"
                    " functions) before the rows; undone by the shipped definitions")
    ap.add_argument("configs", nargs="+")
    args = ap.parse_args()
    for p in args.proto:
        name, path = p.split("=", 1)
        PROTO[name] = open(path).read()
    rnd = random.Random(11)
    vec = "{" + ",".join(f"{rnd.random():.7f}" for _ in range(384)) + "}"
    if args.instructions:
        instructions(args, vec)
        return
    writer_db.create(args.db, force=True, locale=args.locale)
    c = psycopg.connect(dbname=args.db, autocommit=True)
    pid = c.execute("SELECT pg_backend_pid()").fetchone()[0]
    orig = pinned_definition(c, args.function)

    def on_cpu_ns():
        return int(open(f"/proc/{pid}/schedstat").read().split()[0])

    def change(cfg, undo):
        for s in config_sql(cfg, orig, undo):
            c.execute(s)

    res = {k: [] for k in args.configs}
    for r in range(args.rounds):
        for cfg in (args.configs if r % 2 == 0 else args.configs[::-1]):
            c.execute("TRUNCATE w, sync_outbox")
            change(cfg, False)
            c.execute("VACUUM w")
            t0 = on_cpu_ns()
            for q, p in writes(args.mode, args.rows, vec):
                c.execute(q, p)
            res[cfg].append((on_cpu_ns() - t0) / args.rows / 1000)
            change(cfg, True)
    base = statistics.median(res[args.configs[0]])
    print(f"writer components: mode {args.mode}, {args.rows} rows per run, {args.rounds} rounds,"
          f" load {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    for k in args.configs:
        m = statistics.median(res[k])
        print(f"  {k:24s} {m:7.2f} us/row ({m - base:+6.2f} vs {args.configs[0]})  runs "
              + " ".join(f"{x:.1f}" for x in res[k]))


if __name__ == "__main__":
    main()

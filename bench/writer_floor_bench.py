#!/usr/bin/env python3
"""The writer's floor: what a row trigger that writes one event costs, piece by piece, next to
pg2qdrant's own trigger (issue 11). CPU of the writer's backend per row (/proc/<pid>/stat, 10 ms
ticks: 20,000 rows give 0.5 us resolution), one 20,000-row INSERT ... SELECT of 384-float rows per
table and round, tables interleaved, medians of --rounds:

  f_plain    no trigger
  f_empty    an empty AFTER ROW plpgsql trigger
  f_secdef   + SECURITY DEFINER, the 7 SET clauses of pg2qdrant's triggers, an exception block
  f_insert   + one small INSERT into a copy of sync_outbox (its 4 indexes, the NOTIFY WHEN trigger;
             and its CHECK before migration 010): the cheapest event a row trigger can write
  f_nocheck  the same without the NOTIFY trigger (and the CHECK, before migration 010)
  f_noidx    the same without any index either
  w          pg2qdrant's trigger for a rule with columns = id (a real[] vector sent unprinted)

    python3 bench/writer_floor_bench.py [--db NAME] [--rounds 5]

Uses PostgreSQL from libpq's environment (on this machine: /proc is read); creates (drops first)
the database NAME (default p2q_floor) and installs the outbox with `init` and the rule's trigger
with `apply --dry-run` piped to psql (no Qdrant needed). Nothing is asserted.
"""
import argparse
import os
import statistics

import psycopg

import writer_db


ap = argparse.ArgumentParser()
ap.add_argument("--db", default="p2q_floor")
ap.add_argument("--rounds", type=int, default=5)
ap.add_argument("--rows", type=int, default=20000)
args = ap.parse_args()
writer_db.create(args.db, schema="p2q")

ROWS, ROUNDS = args.rows, args.rounds
db = psycopg.connect(dbname=args.db, autocommit=True)
pid = db.execute("SELECT pg_backend_pid()").fetchone()[0]
tick = os.sysconf("SC_CLK_TCK")
def cpu():
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / tick
SETS = ("SET search_path = pg_catalog, pg_temp SET TimeZone = 'UTC' SET DateStyle = 'ISO, YMD' "
        "SET IntervalStyle = 'iso_8601' SET extra_float_digits = '3' SET bytea_output = 'hex' SET lc_monetary = 'C'")
# the same trigger body (the capture trigger's SECURITY DEFINER, SET clauses and exception block, then
# one event INSERT) into each outbox copy: only the copy's constraints and indexes differ
def outbox_trigger(fn, table):
    return ("CREATE OR REPLACE FUNCTION %s() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER %s AS $$\n"
            "BEGIN BEGIN NULL; EXCEPTION WHEN OTHERS THEN NULL; END;\n"
            "  INSERT INTO public.%s (event_type, routing_key, rule, source_table, row_key, op, payload, max_attempts, last_error)\n"
            "  VALUES ('w', NULL, 'w', 'public.w', jsonb_build_object('id', NEW.id), 'upsert', '{}'::json, 10, NULL);\n"
            "  RETURN NULL; END$$;") % (fn, SETS, table)
db.execute("""
DROP TABLE IF EXISTS f_plain, f_empty, f_secdef, f_insert, fob, f_nocheck, fob2, f_noidx, fob3 CASCADE;
CREATE TABLE f_plain (id bigint PRIMARY KEY, note text, emb real[]);
CREATE TABLE f_empty (LIKE f_plain INCLUDING ALL);
CREATE TABLE f_secdef (LIKE f_plain INCLUDING ALL);
CREATE TABLE f_insert (LIKE f_plain INCLUDING ALL);
CREATE TABLE fob (LIKE p2q.sync_outbox INCLUDING ALL) WITH (fillfactor = 50);
CREATE TRIGGER fob_notify AFTER INSERT ON fob FOR EACH ROW
  WHEN (pg_catalog.pg_notify('fob_insert', NEW.event_type) IS NULL) EXECUTE FUNCTION p2q.sync_outbox_notify();
CREATE OR REPLACE FUNCTION f_empty() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NULL; END$$;
CREATE OR REPLACE FUNCTION f_secdef() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER %s AS $$
BEGIN BEGIN NULL; EXCEPTION WHEN OTHERS THEN NULL; END; RETURN NULL; END$$;
{f_insert}
CREATE TABLE f_nocheck (LIKE f_plain INCLUDING ALL);
CREATE TABLE fob2 (LIKE p2q.sync_outbox INCLUDING DEFAULTS INCLUDING IDENTITY INCLUDING INDEXES) WITH (fillfactor = 50);
{f_nocheck}
CREATE TRIGGER t AFTER INSERT ON f_nocheck FOR EACH ROW EXECUTE FUNCTION f_nocheck();
CREATE TABLE f_noidx (LIKE f_plain INCLUDING ALL);
CREATE TABLE fob3 (LIKE p2q.sync_outbox INCLUDING DEFAULTS INCLUDING IDENTITY) WITH (fillfactor = 50);
{f_noidx}
CREATE TRIGGER t AFTER INSERT ON f_noidx FOR EACH ROW EXECUTE FUNCTION f_noidx();
CREATE TRIGGER t AFTER INSERT ON f_empty FOR EACH ROW EXECUTE FUNCTION f_empty();
CREATE TRIGGER t AFTER INSERT ON f_secdef FOR EACH ROW EXECUTE FUNCTION f_secdef();
CREATE TRIGGER t AFTER INSERT ON f_insert FOR EACH ROW EXECUTE FUNCTION f_insert();
""".replace("%s", SETS, 1).format(f_insert=outbox_trigger("f_insert", "fob"),
           f_nocheck=outbox_trigger("f_nocheck", "fob2"), f_noidx=outbox_trigger("f_noidx", "fob3")))
tables = ["f_plain", "f_empty", "f_secdef", "f_insert", "f_nocheck", "f_noidx", "w"]
NOTE = {"f_plain": "no trigger", "f_empty": "empty AFTER ROW plpgsql trigger",
        "f_secdef": "+ SECURITY DEFINER, the 7 SET clauses, an exception block",
        "f_insert": "+ one small INSERT into an outbox copy (4 indexes, NOTIFY WHEN trigger)",
        "f_nocheck": "the same without the NOTIFY trigger",
        "f_noidx": "the same without any index either", "w": "pg2qdrant's trigger (real[] sent unprinted)"}
vec = "{" + ",".join(str((i % 97) / 97.0 - 0.5) for i in range(384)) + "}"
res = {t: [] for t in tables}
for r in range(ROUNDS):
    for t in tables:
        db.execute(f"TRUNCATE {t}")
        db.execute("TRUNCATE fob, fob2, fob3")
        db.execute("TRUNCATE p2q.sync_outbox")
        c0 = cpu()
        db.execute(f"INSERT INTO {t} (id, note, emb) SELECT i, 'x', %s::real[] FROM generate_series(1, {ROWS}) i", (vec,))
        res[t].append((cpu() - c0) / ROWS * 1e6)
base = statistics.median(res["f_plain"])
print(f"writer floor: {ROWS} rows per INSERT, dim 384, {ROUNDS} rounds, load {os.getloadavg()}")
for t in tables:
    m = statistics.median(res[t])
    print(f"{t:10s} {m:6.1f} us/row  (+{m - base:5.1f} over the plain INSERT)  {NOTE[t]}")

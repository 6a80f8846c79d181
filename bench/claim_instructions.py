#!/usr/bin/env python3
"""Instructions per claim of sync_outbox_claim (and variants), counted by callgrind: an A/B that
does not depend on the machine's load.

    python3 bench/claim_instructions.py [--events 200] [--sql FILE ...] [--noride] [--mark-every N]
                                        [--batch B] [--empty] [--dir DIR] [FUNC ...]

At one event per claim (200 commits/s) the claim's fixed cost per call is the cost per event, and
on a shared machine CPU time per event moves by ±10 % from run to run with the load (2 cores,
other benchmarks: the same function measured 490 and 720 µs/event ten minutes apart), which hides
any change below ~20 %. Instruction counts do not move. This installs the outbox (build/pg2qdrant
init) in a scratch cluster (scripts/pg-tmp, DIR), loads the --sql files (CREATE FUNCTION variants
with sync_outbox_claim's arguments, under other names), stops it and runs, per FUNC (default
sync_outbox_claim), a single-user `postgres --single` under `valgrind --tool=callgrind` over a
script of --events x (INSERT one event; EXECUTE the claim as the daemon prepares it, the previous
event's ack riding on it, or with --noride sent alone before it through sync_outbox_ack), plus a
baseline of the INSERTs alone. Prints (instructions(FUNC) - instructions(baseline)) / events.
--mark-every N: p_mark = true on every Nth claim only, false on the others, as the daemon does (it
asks for the mark's due look at most every 100 ms per session: N = 20 at 200 claims/s; default:
p_mark not passed, the function's default). --batch B: B events of B rows per round (one INSERT),
claimed by one claim (limit 256) that carries the previous round's ack of B events:
a drain's batch; the figure is then per event (--events / B rounds); with --mark-every, p_mark
on every Nth batch's claim. --empty (one event per claim):
each claim is followed by one that finds nothing (no ack riding, p_mark false): the difference to a
run without it is what an empty claim costs (session 12: ~361,000 instructions, a one-event claim
with its ack 1,131,859). Every run starts from the same copy of the cluster.
Callgrind files stay in DIR/cg (callgrind_annotate --inclusive=yes for a profile). A variant that
drops a nested function call also drops that function's one-time compile and planning (~8.5M
instructions for sync_outbox_mark_refresh: 42k per claim over 200 events): compare like with like.

What it does not see, so compare variants with it, not absolute figures with the daemon's: the
wire protocol (single-user mode), the walwriter's wake-up per commit, NOTIFY. The mark's refresh
is made due once a day (it is time-based, and valgrind runs ~50x slower), so every variant claims
from the same bound; dead index entries are not marked killed in single-user mode, so the
candidate scan walks the run's drained events (the same for every variant). Needs valgrind and the
root-run pg-tmp's p2qtest user (postgres refuses root); the runs: bench/pg_callgrind.py.
"""
import argparse
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
import outbox_sql_bench as ob  # noqa: E402
import pg_callgrind as cg  # noqa: E402

COLS = ("id, rule, op, row_key::text, payload::text, attempts, max_attempts,"  # as src/outbox.c's claim
        " date_part('epoch', created_at), length(array_send(vec))")


def setup(d, sqls):
    cg.start(d)
    import psycopg
    with psycopg.connect(dbname="postgres", autocommit=True) as c:
        c.execute("DROP DATABASE IF EXISTS claim_instr")
        c.execute("CREATE DATABASE claim_instr")
    ob.install("claim_instr", 384)
    with psycopg.connect(dbname="claim_instr", autocommit=True) as c:
        for f in sqls:
            c.execute(pathlib.Path(f).read_text())
        d_ = c.execute("SELECT pg_get_functiondef('sync_outbox_mark_refresh'::regproc)").fetchone()[0]
        c.execute(d_.replace("interval '200 milliseconds'", "interval '1 day'"))
        c.execute("CHECKPOINT")
    cg.freeze(d)


def script(fn, n, noride, mark_every=0, batch=1, empty=False):
    vec = "array_fill(0.5::real, ARRAY[384])"
    if batch > 1:
        return batch_script(fn, n // batch, batch, vec, mark_every)
    out = ["TRUNCATE sync_outbox;",
           "SELECT setval(pg_get_serial_sequence('sync_outbox', 'id'), 1000, false);"]
    if fn:
        mk = (", boolean", ", $12") if mark_every else ("", "")
        out.append(f"PREPARE p(text, text[], text, int, int, bigint[], text[], jsonb[], text[], int[], text[]{mk[0]}) AS"
                   f" SELECT {COLS} FROM {fn}($1, $2, $3, $4, $5, true, $6, $7, $8, $9, $10, $11{mk[1]});")
    for i in range(n):
        e = 1000 + i
        out.append("INSERT INTO sync_outbox (event_type, rule, source_table, row_key, op, payload, vec) VALUES"
                   f" ('b', 'b', 'public.b', '{{\"id\": {e}}}', 'upsert', '{{\"id\": {e}, \"emb\": null}}', {vec});")
        if not fn:
            continue
        ack = (f"ARRAY[{e - 1}]::bigint[], ARRAY['b'], ARRAY['{{\"id\": {e - 1}}}']::jsonb[], ARRAY['done'],"
               " ARRAY[0], ARRAY[NULL]::text[]")
        if i and noride:
            out.append(f"SELECT sync_outbox_ack('o.1', {ack});")
        if i == 0 or noride:
            ack = "NULL, NULL, NULL, NULL, NULL, NULL"
        mark = f", {'true' if i % mark_every == 0 else 'false'}" if mark_every else ""
        out.append(f"EXECUTE p('o.1', ARRAY['b'], NULL, 256, 30000, {ack}{mark});")
        if empty:  # finds nothing: the event was just claimed
            out.append("EXECUTE p('o.1', ARRAY['b'], NULL, 256, 30000, NULL, NULL, NULL, NULL, NULL, NULL"
                       f"{', false' if mark_every else ''});")
    return "\n".join(out) + "\n"


def batch_script(fn, rounds, b, vec, mark_every=0):
    """--batch: rounds x (INSERT b events of b rows; claim them, the previous round's ack riding)."""
    out = ["TRUNCATE sync_outbox;",
           "SELECT setval(pg_get_serial_sequence('sync_outbox', 'id'), 1000, false);"]
    mk = (", boolean", ", $12") if mark_every else ("", "")
    if fn:
        out.append(f"PREPARE p(text, text[], text, int, int, bigint[], text[], jsonb[], text[], int[], text[]{mk[0]}) AS"
                   f" SELECT {COLS} FROM {fn}($1, $2, $3, $4, $5, true, $6, $7, $8, $9, $10, $11{mk[1]});")
    for i in range(rounds):
        e = 1000 + i * b
        out.append("INSERT INTO sync_outbox (event_type, rule, source_table, row_key, op, payload, vec)"
                   f" SELECT 'b', 'b', 'public.b', jsonb_build_object('id', g), 'upsert',"
                   f" jsonb_build_object('id', g, 'emb', null), {vec} FROM generate_series({e}, {e + b - 1}) g;")
        if not fn:
            continue
        ack = "NULL, NULL, NULL, NULL, NULL, NULL"
        if i:  # (literals: EXECUTE's parameters may not hold subqueries)
            ids = range(e - b, e)
            keys = ", ".join("'{\"id\": %d}'" % k for k in ids)
            ack = (f"ARRAY[{', '.join(map(str, ids))}]::bigint[], array_fill('b'::text, ARRAY[{b}]),"
                   f" ARRAY[{keys}]::jsonb[], array_fill('done'::text, ARRAY[{b}]), array_fill(0, ARRAY[{b}]),"
                   f" array_fill(NULL::text, ARRAY[{b}])")
        mark = f", {'true' if i % mark_every == 0 else 'false'}" if mark_every else ""
        out.append(f"EXECUTE p('o.1', ARRAY['b'], NULL, 256, 30000, {ack}{mark});")
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("funcs", nargs="*", default=["sync_outbox_claim"])
    ap.add_argument("--events", type=int, default=200)
    ap.add_argument("--sql", action="append", default=[])
    ap.add_argument("--noride", action="store_true", help="each ack alone (sync_outbox_ack) before the next claim")
    ap.add_argument("--mark-every", type=int, default=0, metavar="N",
                    help="p_mark true on every Nth claim only, false on the others (as the daemon: 20 at 200/s)")
    ap.add_argument("--batch", type=int, default=1, metavar="B",
                    help="B events per claim (one claim per round of B inserted events; figures per event)")
    ap.add_argument("--empty", action="store_true", help="each claim followed by one that finds nothing")
    ap.add_argument("--dir", default="/tmp/p2q-claim-instr")
    a = ap.parse_args()
    setup(a.dir, a.sql)
    base = cg.count(a.dir, "claim_instr", "baseline", script(None, a.events, False, batch=a.batch))
    print(f"baseline (the INSERTs alone): {base:,} instructions")
    for f in a.funcs:
        n = cg.count(a.dir, "claim_instr", f, script(f, a.events, a.noride, a.mark_every, a.batch, a.empty))
        if a.batch > 1:
            ev = a.events // a.batch * a.batch
            print(f"{f}: {(n - base) / ev:,.0f} instructions per event at {a.batch} events per claim")
            continue
        print(f"{f}: {(n - base) / a.events:,.0f} instructions per claim{' (+ its ack alone)' if a.noride else ''}"
              f"{f' (p_mark on every {a.mark_every}th)' if a.mark_every else ''}"
              f"{' (+ an empty claim after it)' if a.empty else ''}")


if __name__ == "__main__":
    main()

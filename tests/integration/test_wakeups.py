"""A worker hears of new events through NOTIFY on the daemon's LISTEN connection, and a PostgreSQL
backend delivers notifications only between statements. So nothing slow may run on that
connection: the sweep's recovery, the status query and the lease reclaimer run on a maintenance
connection of their own (src/daemon.c, `maint_pg`). On the LISTEN connection, behind a held xmin
horizon (a long REPEATABLE READ report, pg_dump), those statements took 1-2.6 s each and the
workers heard of nothing meanwhile: `bench --workload steady` with a snapshot held 90 s, p99
6.8-10.6 s (bench/issue11/session7-hs7.md). Shipped defaults for delivery (sweep_interval 30 s:
a wake-up that waited for the sweep would take up to 30 s).

Every writer of the outbox notifies in the statement that writes its events (capture.h: the
generated INSERTs carry pg_notify in their event_type column); the outbox's own NOTIFY trigger
is kept only while a trigger function of an older pg2qdrant writes it (sync_outbox_notify_settle).
The tests of that run with sweep_interval 1h: an event whose wake-up is lost never arrives.
"""
import time

import psycopg

from conftest import ungate, wait_until
from docs_table import actual, docs, in_sync, rule, vec  # noqa: F401

SHIPPED = {"sweep_interval": None, "retry_min": None, "retry_max": None, "breaker_max": None}


def test_a_waiting_maintenance_statement_holds_back_no_wake_up(make_daemon, docs, qdrant):
    """A maintenance statement (the status query or the lease reclaimer, whichever comes first)
    waits for a lock on sync_outbox_dead, a stand-in for any that takes long; a row committed
    meanwhile is synced by its NOTIFY while that statement still waits. Before the maintenance
    connection it waited for the next sweep."""
    # lease_reclaim_interval does not decide delivery; 1 s makes a statement wait early, long
    # before the first sweep (30 s after the start)
    d = make_daemon({"rule.docs": rule(), "daemon": dict(SHIPPED, lease_reclaim_interval="1s")})
    d.cli("apply")
    p = d.start()
    docs.execute("INSERT INTO docs (id, title, emb) VALUES (1, 'first', %s)", (vec(1),))
    wait_until(lambda: 1 in actual(qdrant), timeout=20, what="the first row synced", explain=d.log_text)

    def waiting():  # daemon backends waiting for the lock (the status query, the lease reclaimer)
        return docs.execute("SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
                            " WHERE NOT l.granted AND l.relation = 'sync_outbox_dead'::regclass"
                            " AND a.application_name = 'pg2qdrant'").fetchone()[0]
    blocker = psycopg.connect(dbname=docs.info.dbname)
    try:
        blocker.execute("LOCK TABLE sync_outbox_dead IN ACCESS EXCLUSIVE MODE")
        wait_until(lambda: waiting() == 1, timeout=10, what="a maintenance statement waiting for the lock")
        docs.execute("INSERT INTO docs (id, title, emb) VALUES (2, 'woken', %s)", (vec(2),))
        wait_until(lambda: 2 in actual(qdrant), timeout=15, what="the row synced by its NOTIFY", explain=d.log_text)
        assert waiting() == 1  # synced while the maintenance statement still waited
    finally:
        blocker.close()
    wait_until(lambda: in_sync(docs, qdrant), what="in sync")
    assert d.stop(p) == 0


NO_SWEEP = dict(SHIPPED, sweep_interval="1h")  # only a NOTIFY can wake a worker


def outbox_notify_trigger(db):
    return db.execute("SELECT count(*) FROM pg_trigger WHERE tgname = 'sync_outbox_notify'"
                      " AND tgrelid = 'sync_outbox'::regclass").fetchone()[0]


def synced(d, qdrant, cond, what):
    t0 = time.monotonic()
    wait_until(lambda: cond(actual(qdrant)), timeout=20, what=what, explain=d.log_text)
    return time.monotonic() - t0


def listening(d, p, db):
    """The daemon listens and its worker's catch-up claim (at start) is over: from now on only a
    NOTIFY makes it claim."""
    wait_until(lambda: "event=listening" in d.log_text(p), timeout=20, what="daemon listening", explain=d.log_text)
    wait_until(lambda: db.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pg2qdrant'"
                                  " AND state = 'idle' AND query LIKE '%%sync_outbox_claim%%'").fetchone()[0] > 0,
               timeout=20, what="the worker's first claim done", explain=d.log_text)


def hidden_rows(db, ids, title):
    """Rows written with the triggers off (session_replication_role = replica): no event."""
    with db.transaction():
        db.execute("SET LOCAL session_replication_role = replica")
        db.execute("INSERT INTO docs (id, title, emb) SELECT i, %s, ARRAY[i %% 7, 0, 1, i %% 3]::real[]"
                   " FROM unnest(%s::bigint[]) i", (title, list(ids)))


def test_every_writer_path_wakes_the_daemon(make_daemon, docs, qdrant):
    """Each of pg2qdrant's writers of the outbox wakes the daemon by its own NOTIFY: the row
    trigger (INSERT, UPDATE, DELETE), the TRUNCATE trigger, `backfill` (and apply's load, the same
    chunks) and `reconcile --fix`. With no sweep, a writer that did not notify leaves its events
    unclaimed. The outbox's own NOTIFY trigger is gone once apply installed this build's triggers."""
    d = make_daemon({"rule.docs": rule(), "daemon": NO_SWEEP})
    d.cli("apply")
    assert outbox_notify_trigger(docs) == 0
    p = d.start()
    listening(d, p, docs)
    took = {}
    docs.execute("INSERT INTO docs (id, title, emb) VALUES (1, 'a', %s)", (vec(1),))
    took["insert"] = synced(d, qdrant, lambda a: 1 in a, "the inserted row")
    docs.execute("UPDATE docs SET title = 'b' WHERE id = 1")
    took["update"] = synced(d, qdrant, lambda a: a.get(1, ({},))[0].get("title") == "b", "the update")
    docs.execute("DELETE FROM docs WHERE id = 1")
    took["delete"] = synced(d, qdrant, lambda a: 1 not in a, "the delete")
    hidden_rows(docs, [2, 3], "backfilled")
    d.cli("backfill", "docs")
    took["backfill"] = synced(d, qdrant, lambda a: 2 in a and 3 in a, "the backfilled rows")
    hidden_rows(docs, [4], "reconciled")
    d.cli("reconcile", "docs", "--fix", check=False)
    took["reconcile --fix"] = synced(d, qdrant, lambda a: 4 in a, "the reconciled row")
    docs.execute("TRUNCATE docs")
    took["truncate"] = synced(d, qdrant, lambda a: not a, "the truncate's deletes")
    print("writer -> Qdrant, s:", {k: round(v, 2) for k, v in took.items()})
    assert max(took.values()) < 10, took
    wait_until(lambda: in_sync(docs, qdrant), what="in sync")
    assert d.stop(p) == 0


def older_generation(db):
    """Make rule docs's trigger functions and recorded definition what an older pg2qdrant's
    `apply` installed: the same, except that they do not notify (the row trigger before each
    event's INSERT, the TRUNCATE trigger's INSERT ... SELECT in its event_type column), and that
    the row trigger captures INSERTs and DELETEs too (no statement-level triggers yet)."""
    def old(text):
        # the recorded definition: the gate's comment (the older release had no gate)
        text = text.replace("-- the events and their wake-up (NOTIFY sync_outbox_insert) are written by the pinned function\n", "")
        for q in ("'", "''"):
            text = text.replace(f"probe := pg_catalog.pg_notify({q}sync_outbox_insert{q}, {q}docs{q}) IS NULL; ", "")
            text = text.replace(f"probe := pg_catalog.pg_notify({q}sync_outbox_insert{q}, {q}docs{q}) IS NULL;", "")
            text = text.replace(f"CASE WHEN pg_catalog.pg_notify({q}sync_outbox_insert{q}, {q}docs{q}) IS NULL"
                                f" THEN NULL ELSE {q}docs{q} END", f"{q}docs{q}")
        assert "sync_outbox_insert" not in text, text
        return text
    ungate(db)  # one trigger function then, not the gate and the pinned one
    db.execute("DROP TRIGGER p2q_docs_insert ON docs")
    db.execute("DROP TRIGGER p2q_docs_delete ON docs")
    db.execute("DROP FUNCTION p2q_insert_docs()")
    db.execute("DROP FUNCTION p2q_delete_docs()")
    db.execute("DROP TRIGGER p2q_docs ON docs")
    db.execute("CREATE TRIGGER p2q_docs AFTER INSERT OR UPDATE OR DELETE ON docs FOR EACH ROW EXECUTE FUNCTION p2q_capture_docs()")
    for fn in ("p2q_capture_docs", "p2q_truncate_docs"):
        db.execute(old(db.execute("SELECT pg_get_functiondef(%s::regproc)", (fn,)).fetchone()[0]))
    definition = db.execute("SELECT definition FROM sync_outbox_rule WHERE name = 'docs'").fetchone()[0]
    db.execute("UPDATE sync_outbox_rule SET definition = %s WHERE name = 'docs'", (old(definition),))


def test_an_upgrade_keeps_the_wake_ups_of_older_triggers(make_daemon, docs, qdrant):
    """An older pg2qdrant's triggers still in place after `init` upgraded the outbox: init keeps
    (or creates) the outbox's NOTIFY trigger for them, so their events wake the daemon; apply
    re-installs them as this build's and only then drops it. At no point does an event wait."""
    d = make_daemon({"rule.docs": rule(), "daemon": NO_SWEEP})
    d.cli("apply")
    older_generation(docs)
    # the upgrade: init of a build whose functions differ (their hash), which drops and re-creates
    # the outbox's functions and triggers
    docs.execute("UPDATE sync_outbox_meta SET value = 'feedfacefeedfacefeedfacefeedfacefeedface'"
                 " WHERE key = 'functions_hash'")
    assert "installed or upgraded" in d.cli("init").stdout
    assert outbox_notify_trigger(docs) == 1
    assert "already up to date" in d.cli("init").stdout
    assert outbox_notify_trigger(docs) == 1
    p = d.start()
    listening(d, p, docs)
    took = {}
    docs.execute("INSERT INTO docs (id, title, emb) VALUES (1, 'old trigger', %s)", (vec(1),))
    took["old row trigger"] = synced(d, qdrant, lambda a: 1 in a, "the row written by the old trigger")
    docs.execute("TRUNCATE docs")
    took["old truncate trigger"] = synced(d, qdrant, lambda a: not a, "the old truncate's deletes")
    out = d.cli("apply").stdout
    assert "trigger re-installed" in out, out
    assert outbox_notify_trigger(docs) == 0
    docs.execute("INSERT INTO docs (id, title, emb) VALUES (2, 'new trigger', %s)", (vec(2),))
    took["new row trigger"] = synced(d, qdrant, lambda a: 2 in a, "the row written by the new trigger")
    print("writer -> Qdrant, s:", {k: round(v, 2) for k, v in took.items()})
    assert max(took.values()) < 10, took
    wait_until(lambda: in_sync(docs, qdrant), what="in sync")
    assert d.stop(p) == 0

"""A worker hears of new events through NOTIFY on the daemon's LISTEN connection, and a PostgreSQL
backend delivers notifications only between statements. So nothing slow may run on that
connection: the sweep's recovery, the status query and the lease reclaimer run on a maintenance
connection of their own (src/daemon.c, `maint_pg`). On the LISTEN connection, behind a held xmin
horizon (a long REPEATABLE READ report, pg_dump), those statements took 1-2.6 s each and the
workers heard of nothing meanwhile: `bench --workload steady` with a snapshot held 90 s, p99
6.8-10.6 s (bench/issue11/session7-hs7.md). Shipped defaults for delivery (sweep_interval 30 s:
a wake-up that waited for the sweep would take up to 30 s).
"""
import psycopg

from conftest import wait_until
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

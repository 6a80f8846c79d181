"""Races of the liveness check (sync_outbox_reap, sql/functions.sql) with daemons registering.

sync_outbox_reap frees the claims of a process all of whose registered backends are gone, with no
grace: it must never count a live backend as gone, nor free the claims of a connection a process
registered after the check decided the process was dead. Both races are made deterministic here
with plain SQL sessions (no daemon): the check's view of pg_stat_activity is one snapshot per
transaction, and its loop over dead processes runs statement after statement.
"""
import threading
import time

import psycopg

from conftest import wait_until

RULE = {"rule.docs": {"table": "public.docs", "key": "id", "columns": "id, title",
                      "vector_column": "embedding", "dimension": "4", "collection": "docs"}}


def init(make_daemon, db):
    db.execute("CREATE TABLE docs (id bigint PRIMARY KEY, title text, embedding real[])")
    make_daemon(RULE).cli("init")


def claimed_event(db, owner, key):
    """An event claimed by `owner` (its claim running for minutes); returns its id. (Before migration
    015 its row's lease too; the reap now finds it at the front of its type.)"""
    eid = db.execute(
        "INSERT INTO sync_outbox (event_type, rule, source_table, row_key, op, attempts, claimed_by,"
        " claimed_at, available_at) VALUES ('docs', 'docs', 'public.docs', %s::jsonb, 'upsert', 1, %s,"
        " now(), now() + interval '5 minutes') RETURNING id", (str(key), owner)).fetchone()[0]
    return eid


def dead_instance(db, instance, owner, pid):
    """A registry row of a process whose backend is gone (gone_since 10 s ago)."""
    db.execute("INSERT INTO sync_outbox_instance (owner, instance, pid, backend_start, registered_at, gone_since)"
               " VALUES (%s, %s, %s, now() - interval '1 hour',"
               " GREATEST(now() - interval '20 seconds', pg_postmaster_start_time() + interval '1 ms'),"
               " now() - interval '10 seconds')", (owner, instance, pid))


def still_claimed(db, eid, owner):
    return db.execute("SELECT claimed_by = %s FROM sync_outbox WHERE id = %s", (owner, eid)).fetchone()[0]


def test_backend_registered_after_the_checks_snapshot_is_not_gone(make_daemon, pgdb, db):
    """A daemon starting (registering its connections) while another daemon's check runs: the
    check's pg_stat_activity snapshot predates the new backends, which must not be marked gone
    (else, 2 s later, the live process is reaped and its claims freed while it writes)."""
    init(make_daemon, db)
    dead_instance(db, "dead:1:1", "1.1", 0)  # a predecessor to reap: the check takes its slow path
    with psycopg.connect(dbname=pgdb) as reaper:
        reaper.execute("SELECT count(*) FROM pg_stat_activity")  # the check's snapshot of backends
        fresh = psycopg.connect(dbname=pgdb, autocommit=True)  # a backend the snapshot does not hold
        owner = fresh.execute("SELECT sync_outbox_register('alive:2:2')").fetchone()[0]
        eid = claimed_event(db, owner, 1)
        reaped = [r[0] for r in reaper.execute("SELECT instance FROM sync_outbox_reap(2000)").fetchall()]
        reaper.commit()
        assert "alive:2:2" not in reaped
        gone = db.execute("SELECT gone_since FROM sync_outbox_instance WHERE owner = %s", (owner,)).fetchone()
        assert gone == (None,), f"a live backend registered after the check's snapshot was marked gone: {gone}"
        time.sleep(2.3)  # past the 2 s a gone process waits before it is reaped
        reaped = [r[0] for r in db.execute("SELECT instance FROM sync_outbox_reap(2000)").fetchall()]
        assert "alive:2:2" not in reaped, "a live process was reaped"
        assert still_claimed(db, eid, owner), "a live process's claim was freed"
        assert db.execute("SELECT claimed_by, available_at > now() FROM sync_outbox WHERE id = %s",
                          (eid,)).fetchone() == (owner, True)
        fresh.close()


def test_connection_registered_during_the_reap_keeps_its_claims(make_daemon, pgdb, db):
    """Two processes found dead in one check; while the check frees the first one's claims, the
    second reconnects (registers a new connection under its instance id) and claims. The check,
    reaching the second, must free only the connections it found gone, never the new one's claims
    (its batch is being written: freeing them lets another worker write the row concurrently)."""
    init(make_daemon, db)
    dead_instance(db, "x:1:1", "101.1", 0)
    dead_instance(db, "y:2:2", "102.2", 0)
    old = {"x:1:1": claimed_event(db, "101.1", 1), "y:2:2": claimed_event(db, "102.2", 2)}
    lockers = {}
    for inst, eid in old.items():  # hold each dead process's event: the check's loop waits there
        c = psycopg.connect(dbname=pgdb)
        c.execute("SELECT 1 FROM sync_outbox WHERE id = %s FOR UPDATE", (eid,))
        lockers[inst] = c
    reaper = psycopg.connect(dbname=pgdb, autocommit=True)
    reaper_pid = reaper.info.backend_pid
    out = {}

    def reap():
        out["rows"] = reaper.execute("SELECT instance, events FROM sync_outbox_reap(2000)").fetchall()

    t = threading.Thread(target=reap)
    t.start()
    fresh = None
    try:
        pids = {c.info.backend_pid: inst for inst, c in lockers.items()}
        def blocker():
            for (p,) in db.execute("SELECT unnest(pg_blocking_pids(%s))", (reaper_pid,)).fetchall():
                if p in pids:
                    return pids[p]
            return None

        first = wait_until(blocker, timeout=10, what="the check waiting in its first dead process")
        second = next(i for i in old if i != first)
        # the second process is back: a new connection registered under its instance, and a claim
        fresh = psycopg.connect(dbname=pgdb, autocommit=True)
        owner = fresh.execute("SELECT sync_outbox_register(%s)", (second,)).fetchone()[0]
        eid = claimed_event(db, owner, 3)
        for c in lockers.values():
            c.commit()
        t.join(timeout=20)
        assert not t.is_alive()
        assert db.execute("SELECT claimed_by FROM sync_outbox WHERE id = %s", (old[first],)).fetchone() == (None,)
        assert db.execute("SELECT claimed_by FROM sync_outbox WHERE id = %s", (old[second],)).fetchone() == (None,)
        assert still_claimed(db, eid, owner), \
            f"the claim of a connection registered during the check was freed (reap: {out.get('rows')})"
        assert db.execute("SELECT claimed_by, available_at > now() FROM sync_outbox WHERE id = %s",
                          (eid,)).fetchone() == (owner, True)
        assert db.execute("SELECT count(*) FROM sync_outbox_instance WHERE owner = %s", (owner,)).fetchone()[0] == 1
    finally:
        for c in lockers.values():
            c.close()
        t.join(timeout=20)
        reaper.close()
        if fresh:
            fresh.close()

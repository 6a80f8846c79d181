"""`retry --dead` against a concurrent INSERT of a dead letter's key (rv13b's reproduction of H1,
adopted): the retry finds no row, enqueues a delete at the dead letter's old id; a writer inserts
the key meanwhile. The delete must never be applied after the insert's upsert, transiently or for
good (the retry killed between its transactions). Every retry transaction that inserts an event
is slowed 3 s at COMMIT by a deferred trigger to open the window. The test's role may take the
table's SHARE lock (the superuser); a role that may not keeps the dead letters of gone rows
(test_privileges.py::test_retry_dead_without_the_table_lock_keeps_gone_rows)."""
import json, subprocess, time, os
import psycopg, pytest
from conftest import BIN
from docs_table import docs, rule  # noqa: F401

CL = ("SELECT id, op, row_key::text FROM sync_outbox_claim(%s, ARRAY['docs'], NULL, 256, 60000, true)")

def setup(make_daemon, docs):
    d = make_daemon({"rule.docs": rule()})
    d.cli("apply")
    docs.execute("INSERT INTO docs (id, title, emb) VALUES (1, 'v1', ARRAY[1,0,0,0]::real[])")
    docs.execute("DELETE FROM docs WHERE id = 1")
    docs.execute("WITH x AS (DELETE FROM sync_outbox RETURNING *) SELECT sync_outbox_bury(ARRAY(SELECT x::sync_outbox FROM x))")
    assert docs.execute("SELECT count(*) FROM sync_outbox_dead").fetchone()[0] == 2
    # every retry transaction that inserts an event sleeps 3 s at COMMIT (before it becomes visible)
    docs.execute("""CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
      IF current_setting('application_name') LIKE 'pg2qdrant/retry%' THEN PERFORM pg_sleep(3); END IF; RETURN NULL; END $$""")
    docs.execute("CREATE CONSTRAINT TRIGGER slow AFTER INSERT ON sync_outbox DEFERRABLE INITIALLY DEFERRED"
                 " FOR EACH ROW EXECUTE FUNCTION slow()")
    docs.execute(CL, ("w",)).fetchall()  # the mark exists (as it does in a running system)
    print("mark", docs.execute("SELECT * FROM sync_outbox_mark").fetchall())
    return d

def applied(db, rows, log):
    for r in rows:
        log.append((time.monotonic(), r))
    ids = [r[0] for r in rows if r[1] in ("upsert", "delete")]
    if ids:
        db.execute("SELECT sync_outbox_ack('w', %s::bigint[], NULL, NULL, %s, NULL, NULL)", (ids, ["done"] * len(ids)))

@pytest.mark.parametrize("kill", [False, True])
def test_h1(make_daemon, docs, kill):
    d = setup(make_daemon, docs)
    p = subprocess.Popen([BIN, "-c", str(d.path), "retry", "--dead"], env=d.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    # wait until the retry's first transaction is committing (sleeping in the deferred trigger)
    t0 = time.monotonic()
    while not docs.execute("SELECT 1 FROM pg_stat_activity WHERE application_name LIKE 'pg2qdrant/retry%%' AND wait_event = 'PgSleep'").fetchone():
        time.sleep(0.02)
        assert time.monotonic() - t0 < 60  # (waiting only: the retry starts slowly on a loaded CI machine)
    docs.execute("INSERT INTO docs (id, title, emb) VALUES (1, 'v2', ARRAY[0,1,0,0]::real[])")
    log = []
    t1 = time.monotonic()
    applied(docs, docs.execute(CL, ("w",)).fetchall(), log)   # I: the insert's upsert, applied
    print("first claim took", time.monotonic() - t1, log)
    # wait for the delete at the old id to be visible
    while docs.execute("SELECT 1 FROM sync_outbox_dead").fetchone():
        time.sleep(0.02)
        if time.monotonic() - t0 > 60:
            print("LOG", log, docs.execute("SELECT id, op, row_key FROM sync_outbox").fetchall(), docs.execute("SELECT id, op, row_key FROM sync_outbox_dead").fetchall(), p.poll())
            print(p.communicate(timeout=60)[0]); assert 0
    if kill:  # the retry's later transaction, if it has one that writes (under the SHARE lock it may not)
        t2 = time.monotonic()
        while not docs.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE 'pg2qdrant/retry%%' AND wait_event = 'PgSleep'").fetchone():
            time.sleep(0.02)
            if p.poll() is not None or time.monotonic() - t2 > 30:
                break
    rows = docs.execute(CL, ("w",)).fetchall()
    applied(docs, rows, log)
    out = p.communicate(timeout=60)[0]
    for _ in range(20):
        applied(docs, docs.execute(CL, ("w",)).fetchall(), log)
        time.sleep(0.2)
    print("retry:", out, p.returncode)
    print("applied in order:", [r for _, r in log])
    print("outbox now:", docs.execute("SELECT id, op FROM sync_outbox").fetchall(),
          "row:", docs.execute("SELECT id, title FROM docs").fetchall())
    last = [r for _, r in log if r[1] in ("upsert", "delete")][-1]
    assert not any(r[1] == "delete" for _, r in log), "a delete applied while the row exists (last applied %r)" % (last,)
    assert last[1] == "upsert" and docs.execute("SELECT title FROM docs WHERE id = 1").fetchone()[0] == "v2"
    if not kill:
        assert p.returncode == 0, out

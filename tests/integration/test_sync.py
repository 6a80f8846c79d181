"""The daemon end to end: sync, coalescing, poison isolation, filter transitions, shutdown,
status/retry/prune (real PostgreSQL, the Qdrant test server)."""
import random
import signal
import time

import pytest

from conftest import outbox_counts, points_by_id, wait_until

from docs_table import DIM, actual, docs, expected, in_sync, rule, vec  # noqa: F401


def upserts_of(qdrant, point_id):
    return sum(1 for e in qdrant.log() if e["method"] == "PUT" and e.get("ids") and point_id in e["ids"]
               and e["status"] == 200)


def test_sync_end_to_end(make_daemon, docs, qdrant):
    d = make_daemon({"rule.docs": rule(), "worker.w": {"event_types": "docs", "batch_size": "50"}})
    for i in range(1, 21):
        docs.execute("INSERT INTO docs (id, title, emb) VALUES (%s, %s, %s)", (i, f"t{i}", vec(i)))
    d.cli("apply")
    d.start()
    wait_until(lambda: in_sync(docs, qdrant), what="backfill synced")
    docs.execute("UPDATE docs SET title = 'changed', n = 1, emb = %s WHERE id = 3", (vec(3, 1),))
    docs.execute("DELETE FROM docs WHERE id = 4")
    docs.execute("UPDATE docs SET published = false WHERE id = 5")
    docs.execute("INSERT INTO docs (id, title, emb) VALUES (100, 'new', %s)", (vec(100),))
    docs.execute("UPDATE docs SET emb = NULL WHERE id = 6")  # no vector: no point
    wait_until(lambda: in_sync(docs, qdrant), what="changes synced")
    assert 4 not in actual(qdrant) and 5 not in actual(qdrant) and 6 not in actual(qdrant)
    docs.execute("UPDATE docs SET published = true WHERE id = 5")  # matching again brings it back
    wait_until(lambda: 5 in actual(qdrant), what="re-published row back")
    wait_until(lambda: in_sync(docs, qdrant), what="synced")
    # requests carried the Qdrant contract's headers and wait=true
    writes = [e for e in qdrant.log() if e["method"] == "PUT" and e["path"].endswith("/points")]
    assert writes and all("wait=true" in (e.get("query") or "") or e.get("query", {}).get("wait") == "true"
                          for e in writes)
    assert d.stop(d.procs[0]) == 0


def test_coalescing_ten_updates_one_write(make_daemon, docs, qdrant):
    d = make_daemon({"rule.docs": rule()})
    d.cli("apply")
    docs.execute("INSERT INTO docs (id, title, emb) VALUES (1, 'v0', %s)", (vec(1),))
    for n in range(1, 11):
        docs.execute("UPDATE docs SET n = %s, title = %s WHERE id = 1", (n, f"v{n}"))
    assert outbox_counts(docs)[0] == 11
    d.start()
    wait_until(lambda: in_sync(docs, qdrant), what="synced")
    assert actual(qdrant)[1][0]["title"] == "v10"
    assert upserts_of(qdrant, 1) == 1
    assert "coalesced=10" in _stop_and_log(d)


def _stop_and_log(d):
    for p in d.procs:
        d.stop(p)
    return d.log_text()


def test_poison_point_is_isolated_and_dead_lettered(make_daemon, docs, qdrant):
    d = make_daemon({"rule.docs": rule(), "daemon": {"max_attempts": "2"},
                     "worker.w": {"event_types": "docs", "batch_size": "64", "linger_ms": "0"}})
    d.cli("apply")
    rows = [(i, f"t{i}", vec(i)) for i in range(1, 41)]
    rows[16] = (17, "bad", [1.0, 2.0, 3.0])  # wrong dimension: Qdrant rejects the whole request
    with docs.transaction():
        for r in rows:
            docs.execute("INSERT INTO docs (id, title, emb) VALUES (%s, %s, %s)", r)
    d.start()
    wait_until(lambda: outbox_counts(docs) == (0, 1), what="all applied but one dead")
    got = actual(qdrant)
    assert sorted(got) == [i for i in range(1, 41) if i != 17]
    err, attempts = docs.execute("SELECT last_error, attempts FROM sync_outbox_dead").fetchone()
    assert "Vector dimension error" in err and "expected dim: 4, got 3" in err
    assert attempts == 2
    status = d.cli("status").stdout
    assert "docs" in status and " 1 " in status
    # the operator fixes the row; `retry --dead` brings the event back... but a newer event of the
    # same row supersedes the dead one, so fixing the data is enough:
    docs.execute("UPDATE docs SET emb = %s WHERE id = 17", (vec(17),))
    wait_until(lambda: 17 in actual(qdrant), what="fixed row applied")
    assert "splits=" in _stop_and_log(d)


def test_retry_dead_brings_events_back(make_daemon, docs, qdrant):
    d = make_daemon({"rule.docs": rule(), "daemon": {"max_attempts": "1"}})
    d.cli("apply")
    docs.execute("INSERT INTO docs (id, title, emb) VALUES (1, 'a', %s)", (vec(1),))
    qdrant.fail(400, count=1, path="/points")  # one permanent rejection
    p = d.start()
    wait_until(lambda: outbox_counts(docs) == (0, 1), what="dead-lettered")
    out = d.cli("retry", "--dead").stdout
    assert "1 dead event(s)" in out
    wait_until(lambda: in_sync(docs, qdrant), what="retried event applied")
    assert outbox_counts(docs) == (0, 0)
    d.stop(p)


def test_prune_leaves_pending_work(make_daemon, docs, qdrant):
    d = make_daemon({"rule.docs": rule()})
    d.cli("apply")
    docs.execute("INSERT INTO docs (id, title, emb) VALUES (1, 'a', %s), (2, 'b', %s)", (vec(1), vec(2)))
    docs.execute("INSERT INTO sync_outbox_dead (id, event_type, rule, source_table, row_key, op, attempts,"
                 " max_attempts, created_at, died_at) VALUES (999999, 'docs', 'docs', 'public.docs',"
                 " '{\"id\": 5}', 'upsert', 3, 3, now(), now() - interval '30 days')")
    out = d.cli("prune", "--older-than", "7d").stdout
    assert "pruned 1 dead letter(s)" in out
    assert outbox_counts(docs) == (2, 0)  # pending events untouched


def test_sigterm_exits_zero_and_requeues_nothing_lost(make_daemon, docs, qdrant):
    d = make_daemon({"rule.docs": rule()})
    d.cli("apply")
    qdrant.latency(300)
    p = d.start()
    for i in range(1, 30):
        docs.execute("INSERT INTO docs (id, title, emb) VALUES (%s, 'x', %s)", (i, vec(i)))
    time.sleep(0.5)
    assert d.stop(p) == 0
    assert "event=exit code=0" in d.log_text(p)
    qdrant.latency(0)
    p2 = d.start()
    wait_until(lambda: in_sync(docs, qdrant), what="synced after restart")
    d.stop(p2)


def test_sigterm_during_start_up_exits_cleanly(make_daemon, docs, qdrant):
    """A SIGTERM while the daemon still starts (here: every Qdrant answer takes 1.5 s, so it is
    in its collection check) is acted on once the loop runs: a clean exit 0, not death by the
    signal's default action (systemd stopping a daemon that is loading its model)."""
    d = make_daemon({"rule.docs": rule()})
    d.cli("apply")
    docs.execute("INSERT INTO docs (id, title, emb) VALUES (1, 'x', %s)", (vec(1),))
    qdrant.latency(1500)
    p = d.start()

    def term_caught():  # the start-up handler is in place (SigCgt bit of SIGTERM): the test's window
        for line in open(f"/proc/{p.pid}/status"):
            if line.startswith("SigCgt:"):
                return int(line.split()[1], 16) & (1 << (signal.SIGTERM - 1))
        return 0
    wait_until(term_caught, timeout=20, what="the daemon catching SIGTERM")
    assert "event=starting" not in d.log_text(p)  # still in its collection check (1.5 s per answer)
    assert d.stop(p, timeout=30) == 0, d.log_text(p)
    log = d.log_text(p)
    assert "event=shutdown signal=SIGTERM" in log and "event=exit code=0" in log
    qdrant.latency(0)
    assert outbox_counts(docs)[0] == 1  # nothing claimed, nothing lost


def test_status_json(make_daemon, docs):
    d = make_daemon({"rule.docs": rule()})
    d.cli("apply")
    docs.execute("INSERT INTO docs (id, title, emb) VALUES (1, 'a', %s)", (vec(1),))
    import json
    st = json.loads(d.cli("status", "--json").stdout)
    assert st["event_types"][0]["event_type"] == "docs"
    assert st["event_types"][0]["pending"] == 1


def test_error_text_cut_mid_character_still_acks(make_daemon, docs, qdrant):
    """Qdrant's message is cut to fit; a cut inside a multi-byte character must not make the
    whole ack fail (PostgreSQL rejects invalid UTF-8), or every event of the batch would stall."""
    d = make_daemon({"rule.docs": rule(), "daemon": {"max_attempts": "1"}})
    d.cli("apply")
    docs.execute("INSERT INTO docs (id, title, emb) VALUES (1, 'a', %s), (2, 'b', %s)", (vec(1), vec(2)))
    qdrant.fail(400, count=100, path="/points", message="Wrong input: " + "\u20ac" * 600)
    p = d.start()
    wait_until(lambda: outbox_counts(docs) == (0, 2), what="both dead-lettered with their message")
    errs = [r[0] for r in docs.execute("SELECT last_error FROM sync_outbox_dead").fetchall()]
    assert all("Wrong input: \u20ac\u20ac" in e for e in errs)
    assert "ack_failed" not in d.log_text(p)
    d.stop(p)

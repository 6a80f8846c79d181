"""Answers that are not Qdrant's success never ack events: a 200 carrying an error envelope (as a
proxy may send) and a runaway 50 MB answer (aborted at the 1 MiB write cap) leave the events
pending; they are written once Qdrant answers properly, nothing dead (real PostgreSQL, the Qdrant
test server's fault rules on writes only)."""
from conftest import outbox_counts, wait_until
from docs_table import DIM, actual, docs, expected, in_sync, rule, vec  # noqa: F401


def test_error_envelope_200_not_acked(make_daemon, docs, qdrant):
    d = make_daemon({"rule.docs": rule()})
    d.cli("apply")
    qdrant.fail(200, count=3, writes=True, json={"status": {"error": "boom"}, "result": None})
    for i in range(1, 21):
        docs.execute("INSERT INTO docs (id, title, emb) VALUES (%s, %s, %s)", (i, f"t{i}", vec(i)))
    d.start()
    wait_until(lambda: in_sync(docs, qdrant), what="synced after error envelopes")
    assert outbox_counts(docs) == (0, 0)
    faults = [e for e in qdrant.log() if e["fault"] == "fail"]
    assert len(faults) == 3
    log = d.log_text()
    assert "carrying an error" in log, log[-2000:]
    d.stop(d.procs[0])


def test_huge_answer_not_acked(make_daemon, docs, qdrant):
    d = make_daemon({"rule.docs": rule()})
    d.cli("apply")
    qdrant.fail(200, count=2, writes=True, huge=50 << 20)
    for i in range(1, 11):
        docs.execute("INSERT INTO docs (id, title, emb) VALUES (%s, %s, %s)", (i, f"t{i}", vec(i)))
    d.start()
    wait_until(lambda: in_sync(docs, qdrant), what="synced after huge answers")
    assert outbox_counts(docs) == (0, 0)
    assert "transfer aborted" in d.log_text()
    d.stop(d.procs[0])

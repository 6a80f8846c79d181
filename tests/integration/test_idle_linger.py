"""[worker.*] idle_linger_ms (src/batch.c, batch.h): a worker woken by a NOTIFY with nothing in
flight claims only once that long has passed since its previous claim was sent, so at low rates
one claim collects the events of the interval (a claim's fixed cost in PostgreSQL is most of an
event's at one event per claim: bench/issue11/session12-il12.md). It must never make an event wait
for the sweep (sweep_interval 1h here: only a NOTIFY or the worker's own timer can make it claim),
nor slow a backlog: a claim after a full claim goes at once.

Behaviour only (claims counted on /metrics, events delivered); the only times are generous bounds:
a trickle of 30 commits 20 ms apart makes far fewer claims than commits with 1 s of idle linger,
and a 200-event backlog in claims of 8 drains in well under what 25 claims x 5 s of linger would
take.
"""
import signal
import time
import urllib.request

from conftest import free_port, wait_until
from docs_table import docs, in_sync, rule  # noqa: F401
from test_ops_http import metric, parse_metrics

NO_SWEEP = {"sweep_interval": "1h"}


def counter(port, name):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        return metric(parse_metrics(r.read().decode()), name)


def claims(port):
    return counter(port, "pg2qdrant_claims_total")


def start(make_daemon, worker):
    port = free_port()
    d = make_daemon({"rule.docs": rule(), "worker.w1": dict({"event_types": "docs"}, **worker),
                     "daemon": NO_SWEEP, "http": {"listen": f"127.0.0.1:{port}"}})
    d.cli("apply")
    p = d.start()
    wait_until(lambda: "event=listening" in d.log_text(p), timeout=20, what="daemon listening", explain=d.log_text)
    wait_until(lambda: claims(port) >= 1, timeout=20, what="the catch-up claim", explain=d.log_text)
    settle(port)
    return d, p, port


def settle(port, quiet=1.0, timeout=20.0, name="pg2qdrant_claims_total"):
    """Until a counter (claims by default) has not moved for `quiet` seconds: each of the worker's claimers
    (2 by default) makes its own catch-up claim when its connection is ready, and the LISTEN
    connection wakes them all once more when it is listening; under load the last of these can
    come after the first was counted (ci15c: 2.0 == 1.0 in the reload test)."""
    deadline, last, since = time.monotonic() + timeout, counter(port, name), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.2)
        now = counter(port, name)
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return last
    raise AssertionError(f"{name} still moving after {timeout} s: {last}")


def test_a_trickle_is_delivered_in_fewer_claims(make_daemon, docs, qdrant):
    """Off at start, on by SIGHUP (a live setting): then 30 single-row commits 20 ms apart are all
    delivered by NOTIFY and the idle linger's timer alone (no sweep), in a few claims instead of
    about one each."""
    d, p, port = start(make_daemon, {"idle_linger_ms": "0"})
    d.path.write_text(d.path.read_text().replace("idle_linger_ms = 0", "idle_linger_ms = 1s"))
    p.send_signal(signal.SIGHUP)
    wait_until(lambda: "event=reloaded" in d.log_text(p), what="reloaded", explain=d.log_text)
    assert "[worker.w1] idle_linger_ms" in d.log_text(p)
    before = claims(port)
    for i in range(1, 31):
        docs.execute("INSERT INTO docs (id, title, emb) VALUES (%s, 't', ARRAY[%s, 0, 1, 0]::real[])", (i, i % 7))
        time.sleep(0.02)
    wait_until(lambda: in_sync(docs, qdrant), timeout=30, what="the trickle delivered", explain=d.log_text)
    made = claims(port) - before
    print("claims for 30 commits:", made)
    assert 1 <= made <= 10, made
    assert d.stop(p) == 0


def test_a_trickle_acks_ride_on_the_lingered_claims(make_daemon, docs, qdrant):
    """A batch's ack waits (linger_ms, the shipped 5 ms) to ride on the next claim; with an idle
    linger that claim comes only when the linger is over, so the ack waits for it (looking again
    every linger_ms until the window since the last claim is over) instead of going alone 5 ms
    after the batch: 40 commits 50 ms apart with idle_linger_ms 300 ms are acknowledged mostly by
    the claims that carry their acks (one transaction for both, pg2qdrant_acks_riding_total).
    Before: every ack went alone (riding 0). The bound (half) leaves room for a slow machine, where a
    write outlasting the window makes the next claim go at once and an ack go alone."""
    d, p, port = start(make_daemon, {"idle_linger_ms": "300ms"})
    acks0, riding0 = counter(port, "pg2qdrant_acks_total"), counter(port, "pg2qdrant_acks_riding_total")
    for i in range(1, 41):
        docs.execute("INSERT INTO docs (id, title, emb) VALUES (%s, 't', ARRAY[%s, 0, 1, 0]::real[])", (i, i % 7))
        time.sleep(0.05)
    wait_until(lambda: in_sync(docs, qdrant), timeout=30, what="the trickle delivered", explain=d.log_text)
    # in_sync saw the outbox empty: the last ack committed; its answer is counted just after
    acks = settle(port, name="pg2qdrant_acks_total") - acks0
    riding = counter(port, "pg2qdrant_acks_riding_total") - riding0
    print(f"40 commits: {acks} acks, {riding} of them riding on a claim")
    assert acks >= 3, acks
    assert 2 * riding >= acks, (riding, acks)
    assert d.stop(p) == 0


def test_a_backlog_is_not_slowed(make_daemon, docs, qdrant):
    """200 events in one statement (one NOTIFY), claims of 8, idle linger 5 s: the claims after a
    full claim go at once, so the drain takes at least 25 claims and nowhere near 25 lingers."""
    d, p, port = start(make_daemon, {"idle_linger_ms": "5s", "batch_size": "8"})
    before = claims(port)
    docs.execute("INSERT INTO docs (id, title, emb) SELECT i, 'b', ARRAY[i % 7, 0, 1, i % 3]::real[]"
                 " FROM generate_series(1, 200) i")
    t0 = time.monotonic()
    wait_until(lambda: in_sync(docs, qdrant), timeout=60, what="the backlog drained", explain=d.log_text)
    took = time.monotonic() - t0
    made = claims(port) - before
    print(f"backlog of 200 in claims of 8: {made} claims, {took:.2f} s")
    assert made >= 25, made
    assert took < 40, took  # 25 claims each waiting 5 s would take 125 s
    assert d.stop(p) == 0


def test_a_reload_shortens_a_running_linger(make_daemon, docs, qdrant):
    """A commit waits in a 1 min idle linger (the longest); a reload to 0 delivers it at once, not
    when that timer runs out (every reload wakes the workers as the sweep does: urgent)."""
    d, p, port = start(make_daemon, {"idle_linger_ms": "1m"})
    before = claims(port)
    docs.execute("INSERT INTO docs (id, title, emb) VALUES (1, 't', ARRAY[1, 0, 1, 0]::real[])")
    time.sleep(1)  # the NOTIFY arrived and started the linger: nothing claimed
    assert claims(port) == before and not in_sync(docs, qdrant)
    d.path.write_text(d.path.read_text().replace("idle_linger_ms = 1m", "idle_linger_ms = 0"))
    p.send_signal(signal.SIGHUP)
    wait_until(lambda: in_sync(docs, qdrant), timeout=30, what="delivered after the reload", explain=d.log_text)
    assert claims(port) > before
    assert d.stop(p) == 0

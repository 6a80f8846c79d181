"""Crash-recovery helpers shared by test_guarantees.py and bench/kill9_recovery.py: a daemon
process's registered owners (sync_outbox_instance) and "kill it, then time until its claims are
processed by someone else"."""
import time


# every setting conftest shortens for speed, back to the shipped default (None = key removed):
# what the kill -9 benchmarks run with
SHIPPED_DEFAULTS = {"qdrant": {"timeout": None, "connect_timeout": None},
                    "daemon": {"sweep_interval": None, "retry_min": None, "retry_max": None,
                               "breaker_max": None, "shutdown_timeout": None},
                    "log": {"level": "info"}}


def owners(conn, proc):
    """Owner ids of every registered connection of the daemon process `proc` (its instance id is
    "<host>:<os pid>:<hex>")."""
    return [r[0] for r in conn.execute(
        "SELECT owner FROM sync_outbox_instance WHERE instance LIKE %s", (f"%:{proc.pid}:%",)).fetchall()]


def held(conn, owner_ids):
    """Ids of the events these owners hold claimed."""
    return [r[0] for r in conn.execute(
        "SELECT id FROM sync_outbox WHERE claimed_by = ANY (%s) AND available_at > now()",
        (owner_ids,)).fetchall()]


def kill_and_measure(d, victim, conn, timeout=30.0, wait_claims=20.0, after_kill=None):
    """Wait until `victim` holds claims, SIGKILL it (then call after_kill(), e.g. to start a new
    daemon), and return (number of events it held, seconds from the kill until none of them is
    left in the outbox: each was written or superseded by another daemon)."""
    own = owners(conn, victim)
    deadline = time.monotonic() + wait_claims
    while not held(conn, own):
        if time.monotonic() > deadline:
            raise AssertionError("the victim never held claims")
        time.sleep(0.01)
        own = owners(conn, victim) or own
    d.kill(victim)
    t0 = time.monotonic()
    ids = held(conn, own)  # frozen now: a dead process claims and acks nothing more
    if after_kill:
        after_kill()
    while conn.execute("SELECT count(*) FROM sync_outbox WHERE id = ANY (%s)", (ids,)).fetchone()[0]:
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"{len(ids)} claims of the killed daemon not processed after {timeout} s")
        time.sleep(0.02)
    return len(ids), time.monotonic() - t0

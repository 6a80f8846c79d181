/*
 * batch.h — a pull worker's batching policy (pure; unit-tested). The worker feeds it events
 * (a wake-up, a claim result, an acknowledged batch) and asks it what to do next.
 *
 * Policy: at most one claim query outstanding and at most max_inflight batches between claim and
 * ack. An idle worker claims at once when woken (no added latency at low load). While batches are
 * in flight, a wake-up lingers up to linger_ms so the next batch fills up (Nagle-like), unless the
 * last claim came back full (a backlog: claim again at once). A wake-up that cannot be served now
 * is remembered and served when a slot frees up. An ack claims again only when the last claim
 * held events back behind an older event of their row (the ack may have settled it) or a wake-up came since: at
 * low rates the claim after each ack used to come back empty. Nothing polls, except a claim
 * that held events back with no batch of its own in flight (the older event is another claimer's, whose
 * ack does not wake this worker): it looks again after held_delay (50 ms doubling to 1 s).
 *
 * A standby policy (a worker's second and later claimers, worker.h) claims only while `active`:
 * from a sibling's run of full claims (p2q_batch_on_backlog; `full_run`: two in a row, since with
 * a small batch_size one event can fill a claim), or p2q_batch_on_due, until one of its claims
 * comes back neither full nor holding rows back (the worker sends its claimers' timers to the
 * first claimer, whose policy is never standby). Wake-ups alone never make it claim, so
 * at low rates it costs PostgreSQL nothing; in a backlog each claimer keeps its own PostgreSQL
 * backend busy. A sibling's ack may settle the older events this policy's last claim was held back by
 * (p2q_batch_on_sibling_acked), as its own ack does.
 *
 * Idle linger (idle_linger_ms, 0: off): a worker woken by a NOTIFY (p2q_batch_on_notify) while
 * idle — nothing in flight, no backlog — claims only once idle_linger_ms have passed since its
 * previous claim was sent (p2q_batch_on_claim_sent_at), so at low rates one claim collects the
 * events of that interval instead of one each (a claim's fixed cost in PostgreSQL dwarfs its
 * per-event cost). Every other reason to claim is `urgent` and never waits for it: a full claim
 * (backlog), the retry/held timers (on_due), an ack that may free held rows, another wake-up
 * (the sweep, a reconnect, a health change: p2q_batch_on_wake), a linger that ran out. The
 * clock is the caller's (ms); p2q_batch_next() is p2q_batch_next_at() with the linger run out.
 */
#ifndef P2Q_BATCH_H
#define P2Q_BATCH_H

#include <stdint.h>

typedef enum { P2Q_BATCH_WAIT = 0, P2Q_BATCH_CLAIM, P2Q_BATCH_LINGER } p2q_batch_action_t;

typedef struct {
  int batch_size;
  int max_inflight;
  int64_t linger_ms;
  int inflight;       /* batches claimed and not yet acknowledged */
  int claiming;       /* a claim query is outstanding */
  int wanted;         /* a wake-up not yet served */
  int backlog;        /* the last claim returned a full batch */
  int lingering;      /* the linger timer is running */
  int idle_lingering; /* ... and it is the idle linger's (a claim sent makes it moot) */
  int held;           /* the last claim held events back behind an older event of their row */
  int held_polls;     /* consecutive claims that held events back with nothing in flight */
  int paused;         /* breaker open, stopping, or not connected */
  int standby;        /* claims only while active (a worker's second and later claimers) */
  int active;         /* standby: a backlog was seen, or its own timer is due */
  int full_run;       /* consecutive full claims (a backlog for the siblings from 2) */
  int64_t idle_linger_ms; /* an idle worker's NOTIFY waits this long since the last claim sent */
  int urgent;         /* a wake-up that must not wait for the idle linger */
  int sent;           /* a claim was sent (at sent_at, the caller's clock in ms) */
  uint64_t sent_at;
} p2q_batch_t;

void p2q_batch_init(p2q_batch_t *b, int batch_size, int max_inflight, int64_t linger_ms);
/* What to do now (after recording a wake-up, a claim result, an ack, a linger expiry…). */
p2q_batch_action_t p2q_batch_next(p2q_batch_t *b);
/* The same at the caller's clock `now` (ms): P2Q_BATCH_LINGER also for an idle linger. */
p2q_batch_action_t p2q_batch_next_at(p2q_batch_t *b, uint64_t now);
/* After P2Q_BATCH_LINGER: how long the linger timer runs (ms). */
int64_t p2q_batch_linger_ms(const p2q_batch_t *b, uint64_t now);
/* Events that change the state; each is followed by p2q_batch_next(). */
void p2q_batch_on_wake(p2q_batch_t *b);   /* a wake-up that claims at once (sweep, reconnect…) */
void p2q_batch_on_notify(p2q_batch_t *b); /* a NOTIFY's: an idle worker may wait idle_linger_ms */
void p2q_batch_on_claim_sent(p2q_batch_t *b);
/* The same, remembering when (the idle linger counts from there). */
void p2q_batch_on_claim_sent_at(p2q_batch_t *b, uint64_t now);
/* n_rows: rows the claim returned (incl. coalesced/release, not the 'held' row); has_work: a batch
   was started; held: rows the claim held back behind an older event in flight (its 'held' row). */
void p2q_batch_on_claimed(p2q_batch_t *b, int n_rows, int has_work, int held);
/* After p2q_batch_on_claimed: ms until this worker must look again by itself (0: not needed). */
int64_t p2q_batch_held_delay(p2q_batch_t *b);
/* A finished batch's ack deferred to ride on the next claim has waited linger_ms: how much longer
   it may wait (ms; 0: it goes alone now). While the idle linger since the last claim sent is not
   over, a NOTIFY in it makes the claim that ends it, and that claim takes the ack along (one
   statement and one transaction instead of two): the ack waits until just past the window's end
   (the linger's claim, due at the end, goes first). Not for a standby claimer (no NOTIFY wakes
   it) nor while rows are held back (they want the ack now). The caller also bounds the wait by
   the batch's lease. */
int64_t p2q_batch_ack_wait_more(const p2q_batch_t *b, uint64_t now);
void p2q_batch_on_claim_failed(p2q_batch_t *b);
void p2q_batch_on_acked(p2q_batch_t *b);
void p2q_batch_on_linger_started(p2q_batch_t *b, uint64_t now); /* after LINGER, same clock */
void p2q_batch_on_linger_done(p2q_batch_t *b);
/* A sibling's claim came back full: claim at once (a standby policy too, and as long as a backlog
   lasts), as after a full claim of one's own. */
void p2q_batch_on_backlog(p2q_batch_t *b);
/* The worker's own timer (a retry, rows held back) is due: claim once, standby or not. */
void p2q_batch_on_due(p2q_batch_t *b);
/* Another claimer of the worker finished a batch: its events are settled, as after an ack of one's own. */
void p2q_batch_on_sibling_acked(p2q_batch_t *b);
/* After p2q_batch_on_claimed: should the worker's other claimers join in (a run of full claims)? */
int p2q_batch_siblings_wanted(const p2q_batch_t *b);

#endif

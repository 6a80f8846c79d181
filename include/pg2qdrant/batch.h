/*
 * batch.h — a pull worker's batching policy (pure; unit-tested). The worker feeds it events
 * (a wake-up, a claim result, an acknowledged batch) and asks it what to do next.
 *
 * Policy: at most one claim query outstanding and at most max_inflight batches between claim and
 * ack. An idle worker claims at once when woken (no added latency at low load). While batches are
 * in flight, a wake-up lingers up to linger_ms so the next batch fills up (Nagle-like), unless the
 * last claim came back full (a backlog: claim again at once). A wake-up that cannot be served now
 * is remembered and served when a slot frees up. Nothing polls: without a wake-up, a full last
 * claim or a freed slot with a remembered wake-up, the worker waits.
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
  int paused;         /* breaker open, stopping, or not connected */
} p2q_batch_t;

void p2q_batch_init(p2q_batch_t *b, int batch_size, int max_inflight, int64_t linger_ms);
/* What to do now (after recording a wake-up, a claim result, an ack, a linger expiry…). */
p2q_batch_action_t p2q_batch_next(p2q_batch_t *b);
/* Events that change the state; each is followed by p2q_batch_next(). */
void p2q_batch_on_wake(p2q_batch_t *b);
void p2q_batch_on_claim_sent(p2q_batch_t *b);
/* n_rows: rows the claim returned (incl. coalesced/release); has_work: a batch was started. */
void p2q_batch_on_claimed(p2q_batch_t *b, int n_rows, int has_work);
void p2q_batch_on_claim_failed(p2q_batch_t *b);
void p2q_batch_on_acked(p2q_batch_t *b);
void p2q_batch_on_linger_started(p2q_batch_t *b);
void p2q_batch_on_linger_done(p2q_batch_t *b);

#endif

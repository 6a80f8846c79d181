/*
 * batch.c — the pull worker's batching policy (see batch.h). Pure; the worker calls it from the
 * loop thread. Invariants: claiming ∈ {0,1}; 0 ≤ inflight ≤ max_inflight; a CLAIM answer is only
 * given when a claim can be sent right now.
 */
#include "pg2qdrant/batch.h"

void p2q_batch_init(p2q_batch_t *b, int batch_size, int max_inflight, int64_t linger_ms) {
  b->batch_size = batch_size > 0 ? batch_size : 1;
  b->max_inflight = max_inflight > 0 ? max_inflight : 1;
  b->linger_ms = linger_ms > 0 ? linger_ms : 0;
  b->inflight = b->claiming = b->wanted = b->backlog = b->lingering = b->held = b->held_polls = 0;
  b->paused = b->standby = b->active = b->full_run = 0;
  b->idle_linger_ms = 0;
  b->idle_lingering = 0;
  b->urgent = b->sent = 0;
  b->sent_at = 0;
}

/* Idle, woken only by NOTIFYs, and the idle linger since the last claim not yet over? */
static int idle_lingers(const p2q_batch_t *b, uint64_t now) {
  if (b->idle_linger_ms <= 0 || !b->sent || b->urgent || b->backlog || b->inflight > 0) return 0;
  return now < b->sent_at + (uint64_t)b->idle_linger_ms;
}

p2q_batch_action_t p2q_batch_next_at(p2q_batch_t *b, uint64_t now) {
  if (b->paused || b->claiming || b->inflight >= b->max_inflight) return P2Q_BATCH_WAIT;
  if (b->standby && !b->active) return P2Q_BATCH_WAIT;
  if (!b->wanted && !b->backlog) return P2Q_BATCH_WAIT;
  if (idle_lingers(b, now)) return b->lingering ? P2Q_BATCH_WAIT : P2Q_BATCH_LINGER;
  if (b->backlog || b->inflight == 0 || b->linger_ms == 0) return P2Q_BATCH_CLAIM;
  if (b->lingering) return P2Q_BATCH_WAIT;
  return P2Q_BATCH_LINGER;
}

p2q_batch_action_t p2q_batch_next(p2q_batch_t *b) { return p2q_batch_next_at(b, UINT64_MAX); }

int64_t p2q_batch_linger_ms(const p2q_batch_t *b, uint64_t now) {
  if (!idle_lingers(b, now)) return b->linger_ms;
  return (int64_t)(b->sent_at + (uint64_t)b->idle_linger_ms - now);
}

void p2q_batch_on_wake(p2q_batch_t *b) { b->wanted = b->urgent = 1; }

void p2q_batch_on_notify(p2q_batch_t *b) { b->wanted = 1; }

void p2q_batch_on_claim_sent(p2q_batch_t *b) {
  b->claiming = 1;
  b->wanted = 0;
  b->urgent = 0;
  b->backlog = 0;
  b->lingering = b->idle_lingering = 0;
}

void p2q_batch_on_claim_sent_at(p2q_batch_t *b, uint64_t now) {
  p2q_batch_on_claim_sent(b);
  b->sent = 1;
  b->sent_at = now;
}

void p2q_batch_on_claimed(p2q_batch_t *b, int n_rows, int has_work, int held) {
  b->claiming = 0;
  if (has_work) b->inflight++;
  b->held = held > 0;
  /* a full claim means more is probably waiting; a claim that only coalesced or released rows
     made progress too, so look again */
  b->backlog = n_rows >= b->batch_size || (n_rows > 0 && !has_work);
  b->full_run = n_rows >= b->batch_size ? b->full_run + 1 : 0;
  /* a standby claimer stays on while the backlog lasts, or while its ack may free held rows */
  if (b->standby && !b->backlog && !b->held) b->active = 0;
}

void p2q_batch_on_claim_failed(p2q_batch_t *b) { b->claiming = 0; }

void p2q_batch_on_acked(p2q_batch_t *b) {
  if (b->inflight > 0) b->inflight--;
  /* an ack settles events: newer ones the last claim held back behind them are claimable now (events
     that arrived since that claim sent a wake-up, already remembered in `wanted`) */
  if (b->held) b->wanted = b->urgent = 1;
}

int64_t p2q_batch_held_delay(p2q_batch_t *b) {
  if (!b->held || b->inflight > 0) { /* nothing held back, or our own ack will claim again */
    b->held_polls = 0;
    return 0;
  }
  int64_t ms = (int64_t)50 << (b->held_polls < 5 ? b->held_polls : 5);
  b->held_polls++;
  return ms < 1000 ? ms : 1000;
}

int64_t p2q_batch_ack_wait_more(const p2q_batch_t *b, uint64_t now) {
  /* a standby claimer is never woken by a NOTIFY, and held rows want the ack now */
  if (b->idle_linger_ms <= 0 || !b->sent || b->linger_ms <= 0 || b->standby || b->held) return 0;
  uint64_t end = b->sent_at + (uint64_t)b->idle_linger_ms;
  return now > end ? 0 : (int64_t)(end - now) + 1;
}

void p2q_batch_on_linger_started(p2q_batch_t *b, uint64_t now) {
  b->idle_lingering = idle_lingers(b, now);
  b->lingering = 1;
}

void p2q_batch_on_linger_done(p2q_batch_t *b) {
  b->lingering = b->idle_lingering = 0;
  b->wanted = b->urgent = 1; /* a linger that ran out (either kind) claims */
  if (b->inflight > 0) b->backlog = 1; /* linger served: claim now even with batches in flight */
}

void p2q_batch_on_backlog(p2q_batch_t *b) {
  b->active = 1;
  b->backlog = 1;
}

void p2q_batch_on_due(p2q_batch_t *b) {
  b->active = 1;
  b->wanted = b->urgent = 1;
}

void p2q_batch_on_sibling_acked(p2q_batch_t *b) {
  if (b->held) b->wanted = b->urgent = 1;
}

int p2q_batch_siblings_wanted(const p2q_batch_t *b) { return b->full_run >= 2; }

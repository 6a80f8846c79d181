/*
 * worker.h — one pull worker of the WorkerPool: its own PostgreSQL connection, its own event
 * types (and routing key) and batching policy. Cycle: claim → build points → write to Qdrant
 * (bisecting rejected batches) → ack per event. Loop thread only.
 */
#ifndef P2Q_WORKER_H
#define P2Q_WORKER_H

#include "pg2qdrant/daemon.h"

int  p2q_worker_new(p2q_daemon_t *d, const p2q_worker_config_t *cfg, p2q_worker_t **out);
/* Something may be claimable (notification, sweep, retry timer, breaker closed). */
void p2q_worker_wake(p2q_worker_t *w);
/* Does this worker claim event_type? */
int  p2q_worker_claims(const p2q_worker_t *w, const char *event_type);
/* Nothing claimed or in flight (used by shutdown). */
int  p2q_worker_idle(const p2q_worker_t *w);
/* Close the connection and timers; cb when done. Only when idle or forced. */
void p2q_worker_close(p2q_worker_t *w, void (*cb)(void *arg), void *arg);
const p2q_stats_t *p2q_worker_stats(const p2q_worker_t *w);
const char *p2q_worker_name(const p2q_worker_t *w);

#endif

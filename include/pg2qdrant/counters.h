/*
 * counters.h — the one list of a worker's counters. P2Q_WORKER_COUNTERS(X) calls
 * X(field, metric name, help) once per counter; it generates the p2q_stats_t struct, the
 * periodic `stats` log line (daemon.c), the /status JSON fields and the /metrics families
 * (status_http.c, labelled by worker). Add a counter here and it appears everywhere.
 */
#ifndef P2Q_COUNTERS_H
#define P2Q_COUNTERS_H

#include <stdint.h>

#define P2Q_WORKER_COUNTERS(X)                                                                      \
  X(claimed, "pg2qdrant_events_claimed_total", "Outbox events claimed.")                            \
  X(applied, "pg2qdrant_events_applied_total", "Events written to Qdrant and acknowledged done.")    \
  X(retried, "pg2qdrant_events_retried_total", "Events scheduled for a retry (attempt used).")       \
  X(requeued, "pg2qdrant_events_requeued_total", "Events given back without using an attempt.")      \
  X(dead, "pg2qdrant_events_dead_lettered_total", "Events moved to sync_outbox_dead.")               \
  X(coalesced, "pg2qdrant_events_coalesced_total", "Events superseded by a newer event of the row.") \
  X(batches, "pg2qdrant_batches_total", "Claimed batches.")                                         \
  X(claims, "pg2qdrant_claims_total", "Claim statements answered.")                                 \
  X(acks, "pg2qdrant_acks_total", "Ack statements committed.")                                      \
  X(acks_riding, "pg2qdrant_acks_riding_total", "Acks that rode on a claim (one transaction).")     \
  X(qdrant_requests, "pg2qdrant_qdrant_writes_total", "Qdrant write requests sent.")                \
  X(qdrant_failures, "pg2qdrant_qdrant_write_failures_total", "Qdrant write requests that failed.") \
  X(rate_limited, "pg2qdrant_rate_limited_total", "Requests answered 429 (Qdrant or embedder).")    \
  X(splits, "pg2qdrant_batch_splits_total", "Rejected or oversized Qdrant batches split in halves.") \
  X(pg_reconnects, "pg2qdrant_worker_postgres_reconnects_total", "Reconnects of the worker's PostgreSQL connections (one per claimer).")

typedef struct {
#define P2Q_COUNTER_FIELD(field, metric, help) uint64_t field;
  P2Q_WORKER_COUNTERS(P2Q_COUNTER_FIELD)
#undef P2Q_COUNTER_FIELD
} p2q_stats_t;

/* to += s, field by field */
static inline void p2q_stats_add(p2q_stats_t *to, const p2q_stats_t *s) {
#define P2Q_COUNTER_ADD(field, metric, help) to->field += s->field;
  P2Q_WORKER_COUNTERS(P2Q_COUNTER_ADD)
#undef P2Q_COUNTER_ADD
}

#endif

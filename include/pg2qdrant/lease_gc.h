/*
 * lease_gc.h — the daemon's lease reclaimer: deletes idle sync_outbox_lease rows whose fence can
 * no longer matter (sync_outbox_reclaim_leases in sql/functions.sql has the rule and why it is
 * safe), so the lease table stays as small as the set of rows recently changed instead of
 * growing with every row key ever changed. `pg2qdrant prune` runs the same SQL function.
 *
 * Loop thread only. Every [daemon] lease_reclaim_interval one pass walks the whole lease table in
 * key order, P2Q_LEASE_GC_BATCH rows per statement, on the given connection (the daemon's LISTEN
 * connection), one statement at a time; a pass still running when the timer fires again is not
 * doubled. Replicas may run passes at the same time: the function skips locked leases.
 * Metrics: pg2qdrant_leases_reclaimed_total, pg2qdrant_lease_reclaim_blocked_total{reason}.
 */
#ifndef P2Q_LEASE_GC_H
#define P2Q_LEASE_GC_H

#include <stdint.h>
#include <uv.h>

#include "pg2qdrant/metrics.h"
#include "pg2qdrant/pg.h"

#define P2Q_LEASE_GC_BATCH 5000

typedef struct p2q_lease_gc_s p2q_lease_gc_t;

/* interval_ms 0: never runs (the object still exists). metrics may be NULL. */
int  p2q_lease_gc_new(uv_loop_t *loop, p2q_pg_t *pg, const char *schema, int64_t interval_ms,
                      p2q_metrics_t *metrics, p2q_lease_gc_t **out);
/* Stop the timer and close its handle (a statement in flight is cancelled by the connection's
   close, or finishes and ends the pass). Free after the loop has ended. */
void p2q_lease_gc_close(p2q_lease_gc_t *g);
void p2q_lease_gc_free(p2q_lease_gc_t *g);

#endif

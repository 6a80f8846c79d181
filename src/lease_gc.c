/*
 * lease_gc.c — the daemon's lease reclaimer (see lease_gc.h). Loop thread only.
 *
 * Owns: one uv_timer_t, the statement text for one schema, the walk's cursor (the last lease key
 * looked at, copied from the previous result) and the counters. The rule for what may be deleted
 * lives in SQL only (sync_outbox_reclaim_leases): this file schedules passes, carries the cursor
 * from one batch to the next, counts and logs. Invariants: at most one statement in flight; a
 * pass ends at the end of the table, on an error or when the function reports it is blocked
 * (nothing is reclaimable until the blocking transaction ends: the next pass retries).
 */
#include "pg2qdrant/lease_gc.h"
#include "pg2qdrant/commands.h"
#include "pg2qdrant/errors.h"
#include "pg2qdrant/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct p2q_lease_gc_s {
  uv_timer_t timer;
  p2q_pg_t *pg;
  char *sql;
  char *after_rule, *after_key;  /* cursor of the running pass; NULL: from the start */
  int busy, closing, timer_open;
  uint64_t pass_reclaimed, pass_scanned, pass_started;
  char blocked[64];              /* last reason reported ("" = not blocked) */
  unsigned logged;               /* reasons already logged at info (bit per reason) */
  char last_err[128];            /* last error logged (logged again only when it changes) */
  p2q_metric_t *m_reclaimed, *m_blocked;
};

static void run_batch(p2q_lease_gc_t *g);

static void set_cursor(p2q_lease_gc_t *g, const char *rule, const char *key) {
  free(g->after_rule);
  free(g->after_key);
  g->after_rule = rule ? strdup(rule) : NULL;
  g->after_key = key ? strdup(key) : NULL;
  if ((rule && !g->after_rule) || (key && !g->after_key)) { /* out of memory: restart next pass */
    free(g->after_rule); free(g->after_key);
    g->after_rule = g->after_key = NULL;
  }
}

static void end_pass(p2q_lease_gc_t *g) {
  g->busy = 0;
  set_cursor(g, NULL, NULL);
  if (g->pass_reclaimed)
    P2Q_DEBUG("leases_reclaimed", "leases=%llu scanned=%llu ms=%llu", (unsigned long long)g->pass_reclaimed,
              (unsigned long long)g->pass_scanned, (unsigned long long)(uv_now(g->timer.loop) - g->pass_started));
}

/* A reason is logged at info the first time it blocks a pass, at debug afterwards (open
   transactions come and go: the state may flip at every pass). */
static void note_blocked(p2q_lease_gc_t *g, const char *why) {
  static const char *const reasons[] = {"prepared_transaction", "hidden_transaction", "sequence_cache"};
  if (g->m_blocked && *why) p2q_series_inc(p2q_metric_series1(g->m_blocked, why), 1);
  if (!strcmp(g->blocked, why)) return;
  snprintf(g->blocked, sizeof g->blocked, "%s", why);
  if (!*why) return;
  unsigned bit = 1u << 31;
  for (unsigned i = 0; i < sizeof reasons / sizeof reasons[0]; i++)
    if (!strcmp(reasons[i], why)) bit = 1u << i;
  if (!(g->logged & bit))
    P2Q_INFO("lease_reclaim_blocked", "reason=%s%s", why,
             bit == 2 ? " hint=\"another role's open transaction hides its start: GRANT pg_read_all_stats to the daemon's role\""
                      : "");
  else
    P2Q_DEBUG("lease_reclaim_blocked", "reason=%s", why);
  g->logged |= bit;
}

static void batch_done(p2q_pg_t *pg, PGresult *res, int err, const char *errmsg, void *arg) {
  p2q_lease_gc_t *g = arg;
  (void)pg;
  if (err) {
    char q[600];
    if (err != P2Q_ECANCELED && err != P2Q_EPG_LOST && strncmp(g->last_err, errmsg, sizeof g->last_err - 1)) {
      P2Q_WARN("lease_reclaim_failed", "err=%s", p2q_log_q(q, sizeof q, errmsg));
      snprintf(g->last_err, sizeof g->last_err, "%s", errmsg);
    }
    end_pass(g);
    return;
  }
  g->last_err[0] = 0;
  if (PQntuples(res) != 1 || PQnfields(res) != 5) { end_pass(g); return; }
  long long n = atoll(PQgetvalue(res, 0, 0));
  g->pass_reclaimed += (uint64_t)(n > 0 ? n : 0);
  g->pass_scanned += (uint64_t)atoll(PQgetvalue(res, 0, 1));
  if (g->m_reclaimed && n > 0) p2q_series_inc(p2q_metric_series0(g->m_reclaimed), (double)n);
  note_blocked(g, PQgetisnull(res, 0, 4) ? "" : PQgetvalue(res, 0, 4));
  if (PQgetisnull(res, 0, 2) || g->closing) { end_pass(g); return; }
  set_cursor(g, PQgetvalue(res, 0, 2), PQgetvalue(res, 0, 3));
  if (!g->after_rule) { end_pass(g); return; }
  run_batch(g);
}

static void run_batch(p2q_lease_gc_t *g) {
  char limit[16];
  snprintf(limit, sizeof limit, "%d", P2Q_LEASE_GC_BATCH);
  const char *params[] = {g->after_rule, g->after_key, limit};
  if (p2q_pg_query(g->pg, g->sql, 3, params, batch_done, g)) end_pass(g); /* not connected: next tick */
}

static void tick(uv_timer_t *t) {
  p2q_lease_gc_t *g = t->data;
  if (g->busy || g->closing || !p2q_pg_is_connected(g->pg)) return;
  g->busy = 1;
  g->pass_reclaimed = g->pass_scanned = 0;
  g->pass_started = uv_now(t->loop);
  set_cursor(g, NULL, NULL);
  run_batch(g);
}

int p2q_lease_gc_new(uv_loop_t *loop, p2q_pg_t *pg, const char *schema, int64_t interval_ms,
                     p2q_metrics_t *metrics, p2q_lease_gc_t **out) {
  static const char sql[] = "SELECT reclaimed, scanned, last_rule, last_key::text, blocked"
                            " FROM @SCHEMA@.sync_outbox_reclaim_leases($1, $2::jsonb, $3::int)";
  static const char *const reason[] = {"reason"};
  p2q_lease_gc_t *g = calloc(1, sizeof *g);
  if (!g) return P2Q_ENOMEM;
  g->pg = pg;
  g->sql = p2q_outbox_sql(sql, schema);
  if (!g->sql) { free(g); return P2Q_ENOMEM; }
  if (metrics) {
    g->m_reclaimed = p2q_metrics_register(metrics, "pg2qdrant_leases_reclaimed_total",
                                          "Idle sync_outbox_lease rows deleted by this process.",
                                          P2Q_METRIC_COUNTER, 0, NULL, 0, NULL);
    g->m_blocked = p2q_metrics_register(metrics, "pg2qdrant_lease_reclaim_blocked_total",
                                        "Lease reclaim statements that could delete nothing, by reason "
                                        "(prepared_transaction, hidden_transaction, sequence_cache).",
                                        P2Q_METRIC_COUNTER, 1, reason, 0, NULL);
    if (!g->m_reclaimed || !g->m_blocked) { free(g->sql); free(g); return P2Q_ENOMEM; }
  }
  uv_timer_init(loop, &g->timer);
  g->timer.data = g;
  g->timer_open = 1;
  if (interval_ms > 0) uv_timer_start(&g->timer, tick, (uint64_t)interval_ms, (uint64_t)interval_ms);
  *out = g;
  return 0;
}

static void timer_closed(uv_handle_t *h) { ((p2q_lease_gc_t *)h->data)->timer_open = 0; }

void p2q_lease_gc_close(p2q_lease_gc_t *g) {
  if (!g || g->closing) return;
  g->closing = 1;
  uv_timer_stop(&g->timer);
  uv_close((uv_handle_t *)&g->timer, timer_closed);
}

void p2q_lease_gc_free(p2q_lease_gc_t *g) {
  if (!g) return;
  set_cursor(g, NULL, NULL);
  free(g->sql);
  free(g);
}


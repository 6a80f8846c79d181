/*
 * status_http.h — the daemon's operator surface ("ops"): the metrics registry, a cached outbox
 * status refreshed by a periodic async query on the LISTEN connection, Qdrant readiness, and a
 * small HTTP/1.1 server on the daemon's loop serving
 *
 *   GET /healthz  200 "ok" (the loop answers)
 *   GET /readyz   200 "ready", or 503 with the reasons (PostgreSQL not connected, LISTEN not
 *                 active, Qdrant unreachable, a target's breaker not closed, a rule made
 *                 impossible by its table (drift.h), shutting down); a 200 lists a rule's
 *                 dropped payload columns after "ready"
 *   GET /status   JSON: version, uptime, readiness, breaker (worst of all targets) and every
 *                 target's health (health.h), per event type backlog (cached, at most
 *                 P2Q_OPS_REFRESH_MS old, or 20× the query's last duration when it is slow: a
 *                 huge backlog), recent commit→Qdrant lag, per worker counters
 *                 (counters.h)
 *   GET /metrics  Prometheus text format 0.0.4
 *
 * Loop thread only. Nothing here blocks: the status query and the readiness probe are async and
 * at most one of each is outstanding; requests are answered from memory. The hooks
 * (p2q_ops_*) accept a NULL ops and are cheap enough for per-event use.
 *
 * It sees the daemon only through p2q_ops_deps_t (no daemon struct).
 * Lifetime: p2q_ops_start() after the daemon's Qdrant client, LISTEN connection and workers exist;
 * p2q_ops_close() with the daemon's other handles (connections are dropped); p2q_ops_free()
 * after the loop has ended. Hooks stay valid until p2q_ops_free().
 */
#ifndef P2Q_STATUS_HTTP_H
#define P2Q_STATUS_HTTP_H

#include <uv.h>

#include "pg2qdrant/config.h"
#include "pg2qdrant/drift.h"
#include "pg2qdrant/health.h"
#include "pg2qdrant/metrics.h"
#include "pg2qdrant/pg.h"
#include "pg2qdrant/qdrant.h"
#include "pg2qdrant/worker.h"

#define P2Q_OPS_REFRESH_MS 2000      /* outbox status query and idle Qdrant probe period */
#define P2Q_OPS_MAX_HEADER 8192      /* request header section limit (413 above) */
#define P2Q_OPS_MAX_BODY 1024        /* request body limit (413 above; bodies are ignored) */
#define P2Q_OPS_CONN_TIMEOUT_MS 10000 /* per request and per idle keep-alive connection */
#define P2Q_OPS_MAX_CONNS 64

typedef struct p2q_ops_s p2q_ops_t;

/* The daemon's state as the operator surface reads it (asked for at every use). */
typedef struct {
  int stopping, closing, listening;
  uint64_t pg_reconnects;   /* of the LISTEN connection (workers count their own) */
  p2q_qdrant_t *qdrant;     /* NULL once closed */
  int live;                 /* liveness confirmed (recover.h): else claims and writes are fenced */
  const char *instance;     /* this process's id in sync_outbox_instance (NULL: none) */
  const p2q_drift_t *drift; /* the last drift check (drift.h; NULL: none) */
  const struct p2q_reindex_exec_s *reindex; /* re-embedding jobs (reindex_exec.h; NULL: none) */
} p2q_daemon_view_t;

typedef struct {
  uv_loop_t *loop;
  const p2q_config_t *cfg;          /* http_listen and pg_schema (not reloadable) */
  p2q_health_t *health;
  p2q_pg_t *listen_pg;              /* LISTEN: readiness and `postgres.connected` */
  p2q_pg_t *maint_pg;               /* runs the status query */
  p2q_worker_t *const *workers;
  int n_workers;
  void (*view)(void *arg, p2q_daemon_view_t *out);
  void *arg;
} p2q_ops_deps_t;

/* Create the registry and, when cfg->http_listen is not empty, the refresh timer and the
 * server. A listen failure (address in use, bad address) is logged and not fatal: syncing is the
 * daemon's job, the endpoint is secondary. 0 or P2Q_ENOMEM. */
int  p2q_ops_start(const p2q_ops_deps_t *deps, p2q_ops_t **out);
void p2q_ops_close(p2q_ops_t *o);
void p2q_ops_free(p2q_ops_t *o);
p2q_metrics_t *p2q_ops_metrics(p2q_ops_t *o);

/* ---- hooks (loop thread) ---- */
void p2q_ops_batch(p2q_ops_t *o, int events);                       /* a claimed batch */
/* A finished Qdrant request; endpoint: "upsert", "delete", "probe", … Cancelled ones are skipped. */
void p2q_ops_qdrant_request(p2q_ops_t *o, const char *endpoint, const p2q_qdrant_resp_t *r);
/* An event acknowledged done; created_at: the event's created_at (epoch seconds). */
void p2q_ops_event_done(p2q_ops_t *o, double created_at);
/* Registration point for the embedder: one embedding call of `tokens` tokens. */
void p2q_ops_embed(p2q_ops_t *o, const char *embedder, double seconds, long tokens);
void p2q_ops_reload(p2q_ops_t *o, const char *result);              /* "ok" | "error" | "refused" */

#endif

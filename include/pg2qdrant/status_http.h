/*
 * status_http.h — the daemon's operator surface ("ops"): the metrics registry, a cached outbox
 * status refreshed by a periodic async query on the LISTEN connection, Qdrant readiness, and a
 * small HTTP/1.1 server on the daemon's loop serving
 *
 *   GET /healthz  200 "ok" (the loop answers)
 *   GET /readyz   200 "ready", or 503 with the reasons (PostgreSQL not connected, LISTEN not
 *                 active, Qdrant unreachable, breaker not closed, shutting down)
 *   GET /status   JSON: version, uptime, readiness, breaker, per event type backlog (cached,
 *                 at most P2Q_OPS_REFRESH_MS old), recent commit→Qdrant lag, per worker counters
 *   GET /metrics  Prometheus text format 0.0.4
 *
 * Loop thread only. Nothing here blocks: the status query and the readiness probe are async and
 * at most one of each is outstanding; requests are answered from memory. The hooks
 * (p2q_ops_*) accept a NULL ops and are cheap enough for per-event use.
 *
 * Lifetime: p2q_ops_start() after the daemon's Qdrant client and LISTEN connection exist;
 * p2q_ops_close() with the daemon's other handles (connections are dropped); p2q_ops_free()
 * after the loop has ended. Hooks stay valid until p2q_ops_free().
 */
#ifndef P2Q_STATUS_HTTP_H
#define P2Q_STATUS_HTTP_H

#include "pg2qdrant/daemon.h"
#include "pg2qdrant/metrics.h"

#define P2Q_OPS_REFRESH_MS 2000      /* outbox status query and idle Qdrant probe period */
#define P2Q_OPS_MAX_HEADER 8192      /* request header section limit (413 above) */
#define P2Q_OPS_MAX_BODY 1024        /* request body limit (413 above; bodies are ignored) */
#define P2Q_OPS_CONN_TIMEOUT_MS 10000 /* per request and per idle keep-alive connection */
#define P2Q_OPS_MAX_CONNS 64

typedef struct p2q_ops_s p2q_ops_t;

/* Create the registry and, when d->cfg->http_listen is not empty, the refresh timer and the
 * server. A listen failure (address in use, bad address) is logged and not fatal: syncing is the
 * daemon's job, the endpoint is secondary. 0 or P2Q_ENOMEM. */
int  p2q_ops_start(p2q_daemon_t *d, p2q_ops_t **out);
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

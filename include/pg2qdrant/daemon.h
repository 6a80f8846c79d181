/*
 * daemon.h — the sync daemon (`pg2qdrant run`): one libuv loop holding the LISTEN connection,
 * the sweep timer, the Qdrant client with its circuit breaker, the signal handlers and the
 * WorkerPool (worker.c). Loop thread only. Workers reach shared state through this struct.
 */
#ifndef P2Q_DAEMON_H
#define P2Q_DAEMON_H

#include <uv.h>

#include "pg2qdrant/breaker.h"
#include "pg2qdrant/config.h"
#include "pg2qdrant/pg.h"
#include "pg2qdrant/qdrant.h"

typedef struct p2q_worker_s p2q_worker_t;
typedef struct p2q_embedder_s p2q_embedder_t;
typedef struct p2q_ops_s p2q_ops_t;

typedef struct {
  uint64_t claimed, applied, retried, requeued, dead, coalesced, batches, claims, acks;
  uint64_t qdrant_requests, qdrant_failures, splits;
} p2q_stats_t;

typedef struct p2q_daemon_s {
  uv_loop_t *loop;
  const p2q_config_t *cfg;
  p2q_pg_t *listen_pg;
  p2q_qdrant_t *qdrant;
  p2q_breaker_t breaker;
  uv_timer_t sweep_timer, probe_timer, shutdown_timer, stats_timer;
  uv_signal_t sig_term, sig_int;
  p2q_worker_t **workers;
  p2q_embedder_t **embedders;   /* parallel to cfg->embedders; NULL where no rule uses it */
  int n_workers;
  int stopping;        /* SIGTERM/SIGINT received: claim nothing more */
  int forced;          /* shutdown_timeout passed: in-flight requests cancelled */
  int closing;         /* handles are being closed */
  int exit_code;
  int probing;
  char *claim_sql, *ack_sql, *recover_sql;
  int recover_grace_ms;
  p2q_stats_t stats;
  uint64_t pg_reconnects;
  /* one breaker per embedder (embed_breaker.c), parallel to cfg->embedders */
  p2q_breaker_t *emb_breakers;
  uint64_t *emb_due;         /* loop time of the next probe of an open breaker */
  int *emb_probing;
  uv_timer_t emb_timer;
  int listening;       /* LISTEN is active on listen_pg */
  p2q_ops_t *ops;      /* metrics, /status, the HTTP server (status_http.c); hooks accept NULL */
  uv_signal_t sig_hup; /* SIGHUP: reload the config (reload.c) */
  p2q_config_t **cfgs; /* configs loaded by reloads (d->cfg may be the last); freed after the loop */
  int n_cfgs;
} p2q_daemon_t;

/* Called by workers. */
void p2q_daemon_qdrant_result(p2q_daemon_t *d, int transient_failure);
void p2q_daemon_worker_idle(p2q_daemon_t *d);
/* embed_breaker.c: an embedding call of `embedder` succeeded (0) or failed transiently (1).
   Returns how long to wait before those events are tried again (grows with the embedder's
   consecutive failures, capped at breaker_max; 0 on success). */
uint64_t p2q_daemon_embed_result(p2q_daemon_t *d, const char *embedder, int transient_failure);
/* May rules using `embedder` claim now (its breaker closed, or no such embedder)? */
int  p2q_daemon_embedder_allows(const p2q_daemon_t *d, const char *embedder);
int  p2q_embed_breakers_init(p2q_daemon_t *d);
void p2q_embed_breakers_free(p2q_daemon_t *d);

/* The running embedder called `name` (NULL if none). */
p2q_embedder_t *p2q_daemon_embedder(p2q_daemon_t *d, const char *name);
/* SIGHUP (reload.c): load and validate cfg->path, apply it if valid and live-applicable. */
void p2q_daemon_reload(p2q_daemon_t *d);
/* worker.c: take a reloaded worker config (same name, event types and routing key): batch
 * policy, lease and retry backoff change at once. */
void p2q_worker_reconfigure(p2q_worker_t *w, const p2q_worker_config_t *cfg);

#endif

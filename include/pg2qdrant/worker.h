/*
 * worker.h — one pull worker of the WorkerPool: its own outbox sessions (PostgreSQL connections:
 * `claimers` of them, the second and later claiming only while a backlog lasts, worker.c), its own
 * event types (and routing key) and batching policy. Cycle: claim → embed → write → ack
 * (worker.c, worker_embed.c, worker_write.c). Loop thread only. The functions below take the
 * worker (its first claimer) and act on all its sessions.
 *
 * A worker sees the rest of the daemon only through its context (p2q_worker_ctx_t): outbox
 * operations, a Qdrant writer, an embedder call, a health gate, a stats sink and a clock. The
 * daemon fills it with the real thing; tests/unit/test_worker.c with fakes.
 */
#ifndef P2Q_WORKER_H
#define P2Q_WORKER_H

#include <uv.h>

#include "pg2qdrant/classify.h"
#include "pg2qdrant/config.h"
#include "pg2qdrant/counters.h"
#include "pg2qdrant/embedder.h"
#include "pg2qdrant/outbox.h"
#include "pg2qdrant/qdrant.h"

typedef struct p2q_worker_s p2q_worker_t;

typedef struct {
  void *arg;                /* first argument of every hook */
  uv_loop_t *loop;          /* the worker's timers (linger, retry) */
  const p2q_config_t *(*config)(void *arg);   /* the running config (a SIGHUP may swap it) */
  uint64_t (*now)(void *arg);                 /* monotonic ms */
  /* outbox (outbox.h): outbox_open is called once per claimer, each session then used alone */
  int  (*outbox_open)(void *arg, const char *name, const p2q_outbox_conn_cbs_t *cbs, p2q_outbox_conn_t **out);
  int  (*claim)(p2q_outbox_conn_t *c, const char *const *types, int n_types, const char *routing_key,
                int limit, int64_t lease_ms, p2q_claim_cb cb, void *cb_arg);
  int  (*ack)(p2q_outbox_conn_t *c, const p2q_ack_item_t *items, int n, p2q_ack_cb cb, void *cb_arg);
  /* a finished batch's ack riding on the next claim, one statement (p2q_outbox_ack_claim); NULL:
     every ack goes alone */
  int  (*ack_claim)(p2q_outbox_conn_t *c, const p2q_ack_item_t *items, int n, const char *const *types,
                    int n_types, const char *routing_key, int limit, int64_t lease_ms, p2q_claim_cb cb,
                    void *cb_arg);
  void (*outbox_close)(p2q_outbox_conn_t *c, void (*cb)(void *), void *cb_arg);
  /* writer: one Qdrant request (op UPSERT: PUT points; DELETE/PRUNE: POST points/delete) taking
     the malloc()ed body (not on failure), or, lent (UPSERT only), using it as it is: the worker
     keeps it alive and unchanged until cb has returned. 0 when sent: cb fires once. */
  int  (*write)(void *arg, const char *collection, p2q_op_t op, char *body, size_t len, int lent, p2q_qdrant_cb cb,
                void *cb_arg);
  /* embedder: embed texts with the named embedder (one vector per text). 0 when started. */
  int  (*embed)(void *arg, const char *embedder, const char *const *texts, const size_t *lens, int n,
                p2q_embedder_cb cb, void *cb_arg);
  /* the word-piece tokenizer chunked rules are cut with (the named embedder's), or NULL */
  const struct p2q_wordpiece_s *(*tokenizer)(void *arg, const char *embedder);
  /* health gate (health.h) */
  int  (*may_claim)(void *arg, int rule);
  /* a target of the rule is held back by a 429 (health.h): the worker's standby claimers stay out,
     so a rate limit sees no more concurrent batches than one session's. May be NULL (never). */
  int  (*paced)(void *arg, int rule);
  uint64_t (*report)(void *arg, int rule, int embedder, p2q_verdict_t v, int host_wide, int64_t retry_after_ms,
                     const char *msg);
  /* stats sink (each may be NULL) */
  void (*on_batch)(void *arg, int events);
  void (*on_done)(void *arg, double created_at);
  void (*on_qdrant)(void *arg, const char *endpoint, const p2q_qdrant_resp_t *r);
  void (*on_embed)(void *arg, const char *embedder, double seconds, long tokens);
  /* liveness (recover.h): 0 while this process cannot confirm it is alive (claim nothing, write
     nothing), else an epoch that changes after every such period: a batch writes only in the
     epoch of its claim. May be NULL (always alive). */
  uint32_t (*liveness)(void *arg);
  /* lifecycle: 0 running, 1 stopping (claim nothing), 2 forced (in-flight cancelled) */
  int  (*stopping)(void *arg);
  void (*idle)(void *arg);  /* a worker became idle (shutdown waits for all) */
} p2q_worker_ctx_t;

int  p2q_worker_new(const p2q_worker_ctx_t *ctx, const p2q_worker_config_t *cfg, p2q_worker_t **out);
/* Something may be claimable (notification, sweep, retry timer, a target healthy again). */
void p2q_worker_wake(p2q_worker_t *w);
/* The same for a NOTIFY: an idle worker may wait until idle_linger_ms passed since its last claim. */
void p2q_worker_notify(p2q_worker_t *w);
/* Does this worker claim event_type (NULL or "": any)? */
int  p2q_worker_claims(const p2q_worker_t *w, const char *event_type);
/* Nothing claimed or in flight (used by shutdown). */
int  p2q_worker_idle(const p2q_worker_t *w);
/* Take a reloaded worker config (same name, event types and routing key): batch policy, lease
 * and retry backoff change at once. */
void p2q_worker_reconfigure(p2q_worker_t *w, const p2q_worker_config_t *cfg);
/* Close the session and timers; cb when done. Only when idle or forced. */
void p2q_worker_close(p2q_worker_t *w, void (*cb)(void *arg), void *arg);
const p2q_stats_t *p2q_worker_stats(const p2q_worker_t *w);
const char *p2q_worker_name(const p2q_worker_t *w);

#endif

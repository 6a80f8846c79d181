/*
 * worker_internal.h — what the worker's stages share (not a public header): the batch and
 * event types and the stage entry points. The worker moves each claimed batch through
 *   worker.c (claim) → worker_embed.c (text → vectors, text rules only) → worker_write.c
 *   (Qdrant requests, bisection, per-event outcomes) → worker.c (ack),
 * all on the loop thread.
 */
#ifndef P2Q_WORKER_INTERNAL_H
#define P2Q_WORKER_INTERNAL_H

#include "pg2qdrant/backoff.h"
#include "pg2qdrant/batch.h"
#include "pg2qdrant/buf.h"
#include "pg2qdrant/points.h"
#include "pg2qdrant/worker.h"

/* OP_PRUNE: after a chunked upsert, delete the row's chunks beyond the new count. */
enum { OP_UPSERT = 0, OP_DELETE = 1, OP_RELEASE = 2, OP_PRUNE = 3 };

typedef struct {
  long long id;
  int rule;               /* index in cfg->rules, -1 when not configured */
  int op;
  char *row_key;
  char *payload;
  char *point;            /* built point JSON (upserts) */
  char *text;             /* rendered text to embed (text rules) */
  size_t text_len;
  int n_chunks;           /* chunked rules: points written for this row */
  size_t point_len;
  char point_id[P2Q_POINT_ID_MAX];
  int attempts, max_attempts;
  double created_at;
  const char *outcome;    /* NULL until decided */
  int delay_ms;
  char *error;
} wevent_t;

typedef struct wbatch_s {
  p2q_worker_t *w;
  wevent_t *ev;
  int n;
  int pending;            /* Qdrant requests in flight */
  int orphaned;
  int ack_tries;
  uint64_t claimed_at;       /* loop time of the claim (the lease runs from here) */
  struct embctx_s *embeds;   /* embedding calls in flight (see embed_group) */
  struct wbatch_s *next;
} wbatch_t;

/* One embedding call for the upserts of one text rule in a batch. */
typedef struct embctx_s {
  wbatch_t *b;               /* NULL once the batch is gone: the result is dropped */
  struct embctx_s *next;
  int rule, n;
  int idx[];
} embctx_t;

typedef struct {
  wbatch_t *b;
  int rule, op, n;
  int idx[];
} wreq_t;

struct p2q_worker_s {
  p2q_daemon_t *d;
  const p2q_worker_config_t *cfg;
  p2q_pg_t *pg;
  char owner[64];
  int ready;
  char *types_param;      /* text[] literal of the event types */
  char limit_param[16];
  char lease_param[16];
  p2q_batch_t pol;
  p2q_backoff_t backoff;
  uv_timer_t linger_timer, retry_timer;
  uint64_t retry_due;     /* loop time the retry timer fires at, 0 = not armed */
  wbatch_t *batches;
  p2q_stats_t stats;
  int closing, open_handles;
  void (*close_cb)(void *);
  void *close_arg;
};

/* worker.c */
void p2q_wk_set_outcome(wevent_t *e, const char *outcome, int delay_ms, const char *err);
/* One stage of the batch finished (a request, an embedding call); the last one sends the ack. */
void p2q_wk_request_finished(wbatch_t *b);

/* worker_write.c: send the events idx[0..n) of one rule as one Qdrant request of kind op. */
void p2q_wk_send(wbatch_t *b, int rule, int op, const int *idx, int n);
/* Give those events their failure outcome: requeue (transient with the breaker open or while
   stopping), dead (attempts exhausted) or retry after a backoff (or the server's delay). */
void p2q_wk_fail(wbatch_t *b, const int *idx, int n, int transient, long server_delay_ms, const char *msg);

/* worker_embed.c: build points / render texts for a fresh batch, and embed one rule's texts. */
void p2q_wk_prepare(wbatch_t *b);
void p2q_wk_embed(wbatch_t *b, int rule, const int *idx, int n);

#endif

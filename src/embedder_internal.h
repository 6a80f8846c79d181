/*
 * embedder_internal.h — what embedder.c (the interface, minilm) and embedder_openai.c (the HTTP
 * embedder) share: the embedder and one call. Not a public header. Loop thread only, except a
 * minilm job's work function (pool thread), which touches only the call's own buffers.
 */
#ifndef P2Q_EMBEDDER_INTERNAL_H
#define P2Q_EMBEDDER_INTERNAL_H

#include "pg2qdrant/embed_pool.h"
#include "pg2qdrant/embedder.h"
#include "pg2qdrant/http.h"
#include "pg2qdrant/minilm.h"
#include "pg2qdrant/ratelimit.h"

#include <stdint.h>

typedef struct oreq_s oreq_t;

struct p2q_embedder_s {
  const p2q_embedder_config_t *cfg;
  uv_loop_t *loop;
  int dim;
  p2q_minilm_t *model;
  p2q_embed_pool_t *pool;
  void (*close_cb)(void *);
  void *close_arg;
  int closing;
  /* openai: every caller's requests wait in one FIFO, paced by one shared budget */
  p2q_http_t *http;
  char *url;                     /* the endpoint: url, with /embeddings appended to a base URL */
  oreq_t *q_head, *q_tail;
  int inflight;                  /* requests sent, not yet answered */
  int dispatching, redispatch;   /* dispatch() is not re-entered from a callback */
  uv_timer_t timer;              /* wakes dispatch() when the budget allows the next request */
  int has_timer;
  void (*closed)(void *e);      /* after the HTTP client and the timer are closed */
  p2q_ratelimit_t rl_req, rl_tok;
  uint64_t throttled;            /* 429s received */
};

/* One call: owns the copied texts and the result buffers. */
typedef struct {
  p2q_embedder_t *e;
  p2q_embedder_cb cb;
  void *arg;
  int n;
  char **texts;
  size_t *lens;
  size_t *orig_lens;      /* before client-side truncation (openai) */
  float *vecs;
  int *status;
  char **reasons;         /* per text, when the API rejected it (openai) */
  int *chunks;            /* chunked calls */
  int chunk_tokens, overlap;
  long tokens;
  uint64_t start;
  /* minilm */
  p2q_embed_job_t job;
  /* openai */
  int pending;            /* requests queued or in flight */
  int err, transient;
  int64_t retry_after_ms;
  char msg[512];
} call_t;

void p2q_emb_call_finish(call_t *c);
void p2q_emb_call_free(call_t *c);

/* openai (embedder_openai.c) */
int p2q_emb_openai_new(p2q_embedder_t *e, char *err, size_t errlen);
int p2q_emb_openai_embed(call_t *c);
void p2q_emb_openai_close(p2q_embedder_t *e, void (*done)(void *arg));

#endif

/*
 * embedder_openai.h — the OpenAI-compatible HTTP embedder (embedder_openai.c), a module below
 * embedder.c: its state and the narrow context it works through. Not a public header.
 *
 * embedder.c owns the calls: it creates a p2q_emb_call_t (inside its own call), fills the texts
 * and result buffers and sets `finish`; this module fills the results and calls c->finish(c)
 * exactly once, when the call's last request is answered or dropped. It never calls up into
 * embedder.c. Loop thread only.
 */
#ifndef P2Q_EMBEDDER_OPENAI_H
#define P2Q_EMBEDDER_OPENAI_H

#include "pg2qdrant/config.h"
#include "pg2qdrant/http.h"
#include "pg2qdrant/ratelimit.h"

#include <stdint.h>
#include <uv.h>

typedef struct oreq_s oreq_t;

/* One embedder's HTTP side (embedder.c embeds it in its p2q_embedder_t; cfg, loop, dim and
   closing are shared with the minilm side). */
typedef struct {
  const p2q_embedder_config_t *cfg;
  uv_loop_t *loop;
  int dim;
  int closing;
  /* every caller's requests wait in one FIFO, paced by one shared budget */
  p2q_http_t *http;
  char *url;                     /* the endpoint: url, with /embeddings appended to a base URL */
  oreq_t *q_head, *q_tail;
  int inflight;                  /* requests sent, not yet answered */
  int dispatching, redispatch;   /* dispatch() is not re-entered from a callback */
  uv_timer_t timer;              /* wakes dispatch() when the budget allows the next request */
  int has_timer;
  void (*closed)(void *arg);     /* after the HTTP client and the timer are closed */
  void *closed_arg;
  p2q_ratelimit_t rl_req, rl_tok;
} p2q_emb_openai_t;

/* One call as this module sees it: the texts in, the results out, and how to finish. */
typedef struct p2q_emb_call_s p2q_emb_call_t;
struct p2q_emb_call_s {
  p2q_emb_openai_t *o;
  void (*finish)(p2q_emb_call_t *c); /* the owner's: delivers the results, frees the call */
  int n;
  char **texts;
  size_t *lens;
  size_t *orig_lens;      /* before client-side truncation */
  float *vecs;            /* n × dim */
  int *status;
  char **reasons;         /* per text, when the API rejected it */
  long tokens;
  int pending;            /* requests queued or in flight */
  int err, transient;
  int64_t retry_after_ms;
  char msg[512];
};

int  p2q_emb_openai_new(p2q_emb_openai_t *o, char *err, size_t errlen);
int  p2q_emb_openai_embed(p2q_emb_call_t *c);
void p2q_emb_openai_close(p2q_emb_openai_t *o, void (*done)(void *arg), void *arg);

#endif

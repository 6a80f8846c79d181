/*
 * embedder.c — the two embedders behind one asynchronous interface (see embedder.h): the calls
 * (copied texts, result buffers, the one callback) and the minilm embedder.
 *
 * minilm: each call is one job on the dedicated embedding pool (embed_pool.c), which tokenizes
 * once, splits the job across idle workers, counts tokens and runs the model; the result comes
 * back to the loop through uv_async.
 * openai: embedder_openai.c (requests, bisection, the shared budget).
 * Loop thread only, except the job's work function (pool thread), which touches nothing but the
 * job's own buffers.
 */
#include "embedder_internal.h"
#include "pg2qdrant/errors.h"
#include "pg2qdrant/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void p2q_emb_call_free(call_t *c) {
  for (int i = 0; c->texts && i < c->n; i++) free(c->texts[i]);
  for (int i = 0; c->reasons && i < c->n; i++) free(c->reasons[i]);
  free(c->reasons);
  free(c->orig_lens);
  free(c->texts);
  free(c->lens);
  free(c->vecs);
  free(c->status);
  free(c->chunks);
  free(c);
}

void p2q_emb_call_finish(call_t *c) {
  int truncated = 0;
  for (int i = 0; c->orig_lens && i < c->n; i++) truncated += c->lens[i] < c->orig_lens[i];
  p2q_embed_result_t r = {.err = c->err, .transient = c->transient, .retry_after_ms = c->retry_after_ms,
                          .msg = c->msg, .vecs = c->vecs, .status = c->status,
                          .reasons = (const char *const *)c->reasons, .truncated = truncated,
                          .chunks = c->chunks, .n = c->n, .dim = c->e->dim, .tokens = c->tokens,
                          .seconds = (double)(uv_hrtime() - c->start) / 1e9};
  c->cb(&r, c->arg);
  p2q_emb_call_free(c);
}

static call_t *call_new(p2q_embedder_t *e, const char *const *texts, const size_t *lens, int n,
                        p2q_embedder_cb cb, void *arg) {
  call_t *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->e = e; c->cb = cb; c->arg = arg; c->n = n; c->retry_after_ms = -1;
  c->start = uv_hrtime();
  c->texts = calloc((size_t)(n ? n : 1), sizeof *c->texts);
  c->lens = calloc((size_t)(n ? n : 1), sizeof *c->lens);
  c->vecs = calloc((size_t)(n ? n : 1) * (size_t)e->dim, sizeof *c->vecs);
  c->status = calloc((size_t)(n ? n : 1), sizeof *c->status);
  if (!c->texts || !c->lens || !c->vecs || !c->status) goto fail;
  for (int i = 0; i < n; i++) {
    c->lens[i] = lens ? lens[i] : strlen(texts[i]);
    if (!(c->texts[i] = malloc(c->lens[i] + 1))) goto fail;
    memcpy(c->texts[i], texts[i], c->lens[i]);
    c->texts[i][c->lens[i]] = 0;
  }
  return c;
fail:
  p2q_emb_call_free(c);
  return NULL;
}

/* ---- minilm ------------------------------------------------------------------------------- */

int p2q_chunk_windows(int m, int chunk_tokens, int overlap) {
  if (chunk_tokens <= 0 || overlap < 0 || overlap >= chunk_tokens) return P2Q_EINVAL;
  int step = chunk_tokens - overlap;
  return m <= chunk_tokens ? 1 : 1 + (m - chunk_tokens + step - 1) / step;
}

void p2q_chunk_window(int m, int chunk_tokens, int overlap, int j, int *start, int *len) {
  int s = j * (chunk_tokens - overlap);
  int l = m - s < chunk_tokens ? m - s : chunk_tokens;
  *start = s;
  *len = l < 0 ? 0 : l;
}

static void minilm_done(p2q_embed_job_t *job, int status) {
  call_t *c = job->data;
  c->tokens = job->tokens;
  c->vecs = job->out; /* a chunked job's output was reallocated by the pool */
  if (status) {
    c->err = status;
    c->transient = status == P2Q_ECANCELED || status == P2Q_ENOMEM;
    snprintf(c->msg, sizeof c->msg, "minilm: %s", p2q_strerror(status));
  }
  p2q_emb_call_finish(c);
}

/* One job on the pool: the pool tokenizes once, splits across idle workers, counts tokens and,
 * for chunked calls, cuts windows (fills c->chunks, reallocates the vectors). */
static int minilm_embed(call_t *c) {
  p2q_embed_job_t *j = &c->job;
  j->texts = (const char *const *)c->texts;
  j->lens = c->lens;
  j->n = c->n;
  j->out = c->vecs;
  j->status = c->status;
  j->chunks = c->chunks;
  j->opts.max_batch_tokens = (size_t)c->e->cfg->max_batch_tokens;
  j->opts.chunk_tokens = c->chunk_tokens;
  j->opts.chunk_overlap = c->overlap;
  j->cb = minilm_done;
  j->data = c;
  return p2q_embed_pool_submit(c->e->pool, j);
}

/* ---- interface ----------------------------------------------------------------------------- */

int p2q_embedder_new(uv_loop_t *loop, const p2q_embedder_config_t *cfg, p2q_embedder_t **out,
                     char *err, size_t errlen) {
  p2q_embedder_t *e = calloc(1, sizeof *e);
  int rc = P2Q_ENOMEM;
  if (errlen) err[0] = 0;
  if (!e) goto fail;
  e->cfg = cfg;
  e->loop = loop;
  if (cfg->type == P2Q_EMB_MINILM) {
    if ((rc = p2q_minilm_load(cfg->model_dir, &e->model))) {
      snprintf(err, errlen, "embedder %s: cannot load the model from %s: %s (run scripts/fetch-model)",
               cfg->name, cfg->model_dir, p2q_strerror(rc));
      goto fail;
    }
    e->dim = p2q_minilm_dim(e->model);
    if ((rc = p2q_embed_pool_init(loop, e->model, cfg->threads > 0 ? (int)cfg->threads : 1, &e->pool))) {
      snprintf(err, errlen, "embedder %s: cannot start the pool: %s", cfg->name, p2q_strerror(rc));
      goto fail;
    }
  } else {
    e->dim = (int)cfg->dim;
    if ((rc = p2q_emb_openai_new(e, err, errlen))) goto fail;
  }
  *out = e;
  return 0;
fail:
  if (e && e->model) p2q_minilm_free(e->model);
  free(e);
  if (rc == P2Q_ENOMEM && errlen && !err[0]) snprintf(err, errlen, "out of memory");
  return rc;
}

int p2q_embedder_embed(p2q_embedder_t *e, const char *const *texts, const size_t *lens, int n,
                       p2q_embedder_cb cb, void *arg) {
  if (e->closing) return P2Q_ECANCELED;
  if (n <= 0 || !cb) return P2Q_EINVAL;
  call_t *c = call_new(e, texts, lens, n, cb, arg);
  if (!c) return P2Q_ENOMEM;
  int rc = e->model ? minilm_embed(c) : p2q_emb_openai_embed(c);
  if (rc) p2q_emb_call_free(c);
  return rc;
}

int p2q_embedder_embed_chunked(p2q_embedder_t *e, const char *const *texts, const size_t *lens, int n,
                               int chunk_tokens, int overlap, p2q_embedder_cb cb, void *arg) {
  if (e->closing) return P2Q_ECANCELED;
  /* windows leave room for [CLS] and [SEP] within the model's max length */
  if (n <= 0 || !cb || !e->model || chunk_tokens <= 0 || chunk_tokens > p2q_minilm_max_tokens(e->model) - 2 ||
      overlap < 0 || overlap >= chunk_tokens)
    return P2Q_EINVAL;
  call_t *c = call_new(e, texts, lens, n, cb, arg);
  if (!c) return P2Q_ENOMEM;
  c->chunk_tokens = chunk_tokens;
  c->overlap = overlap;
  if (!(c->chunks = calloc((size_t)n, sizeof *c->chunks))) { p2q_emb_call_free(c); return P2Q_ENOMEM; }
  int rc = minilm_embed(c);
  if (rc) p2q_emb_call_free(c);
  return rc;
}

int p2q_embedder_dim(const p2q_embedder_t *e) { return e->dim; }
const char *p2q_embedder_name(const p2q_embedder_t *e) { return e->cfg->name; }

static void embedder_closed(void *arg) {
  p2q_embedder_t *e = arg;
  void (*cb)(void *) = e->close_cb;
  void *cb_arg = e->close_arg;
  if (e->model) p2q_minilm_free(e->model);
  free(e->url);
  free(e);
  if (cb) cb(cb_arg);
}

void p2q_embedder_close(p2q_embedder_t *e, void (*cb)(void *arg), void *arg) {
  if (e->closing) return;
  e->closing = 1;
  e->close_cb = cb;
  e->close_arg = arg;
  if (e->pool) p2q_embed_pool_close(e->pool, embedder_closed, e);
  else p2q_emb_openai_close(e, embedder_closed);
}

/*
 * embedder.c — the two embedders behind one asynchronous interface (see embedder.h): the calls
 * (copied texts, result buffers, the one callback) and the minilm embedder.
 *
 * minilm: each call is one job on the dedicated embedding pool (embed_pool.c), which tokenizes
 * once, splits the job across idle workers, counts tokens and runs the model; the result comes
 * back to the loop through uv_async.
 * openai: embedder_openai.c (requests, bisection, the shared budget), a module below this one:
 * it sees a call as the p2q_emb_call_t at the start of ours and finishes it through c->finish.
 * Loop thread only, except the job's work function (pool thread), which touches nothing but the
 * job's own buffers.
 */
#include "embedder_openai.h"
#include "pg2qdrant/embed_pool.h"
#include "pg2qdrant/embedder.h"
#include "pg2qdrant/minilm.h"
#include "pg2qdrant/wordpiece.h"
#include "pg2qdrant/errors.h"
#include "pg2qdrant/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct p2q_embedder_s {
  p2q_emb_openai_t o;       /* cfg, loop, dim, closing (both kinds) + the HTTP side (openai) */
  p2q_minilm_t *model;      /* minilm */
  p2q_embed_pool_t *pool;
  p2q_wordpiece_t *chunk_wp;  /* openai: chunk_vocab, or NULL */
  void (*close_cb)(void *);
  void *close_arg;
};

/* One call: the part the HTTP embedder sees (b), the caller's callback and the minilm job. */
typedef struct {
  p2q_emb_call_t b;
  p2q_embedder_t *e;
  p2q_embedder_cb cb;
  void *arg;
  uint64_t start;
  p2q_embed_job_t job;
} call_t;

static void call_free(call_t *c) {
  for (int i = 0; c->b.texts && i < c->b.n; i++) free(c->b.texts[i]);
  for (int i = 0; c->b.reasons && i < c->b.n; i++) free(c->b.reasons[i]);
  free(c->b.reasons);
  free(c->b.orig_lens);
  free(c->b.texts);
  free(c->b.lens);
  free(c->b.vecs);
  free(c->b.status);
  free(c);
}

static void call_finish(call_t *c) {
  int truncated = 0;
  for (int i = 0; c->b.orig_lens && i < c->b.n; i++) truncated += c->b.lens[i] < c->b.orig_lens[i];
  p2q_embed_result_t r = {.err = c->b.err, .transient = c->b.transient, .retry_after_ms = c->b.retry_after_ms,
                          .msg = c->b.msg, .vecs = c->b.vecs, .status = c->b.status,
                          .reasons = (const char *const *)c->b.reasons, .truncated = truncated,
                          .n = c->b.n, .dim = c->e->o.dim, .tokens = c->b.tokens,
                          .seconds = (double)(uv_hrtime() - c->start) / 1e9};
  c->cb(&r, c->arg);
  call_free(c);
}

/* the HTTP embedder's finish callback: b is the first member of our call */
static void openai_finished(p2q_emb_call_t *b) { call_finish((call_t *)b); }

static call_t *call_new(p2q_embedder_t *e, const char *const *texts, const size_t *lens, int n,
                        p2q_embedder_cb cb, void *arg) {
  call_t *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->e = e; c->cb = cb; c->arg = arg; c->b.n = n; c->b.retry_after_ms = -1;
  c->b.o = &e->o;
  c->b.finish = openai_finished;
  c->start = uv_hrtime();
  c->b.texts = calloc((size_t)(n ? n : 1), sizeof *c->b.texts);
  c->b.lens = calloc((size_t)(n ? n : 1), sizeof *c->b.lens);
  c->b.vecs = calloc((size_t)(n ? n : 1) * (size_t)e->o.dim, sizeof *c->b.vecs);
  c->b.status = calloc((size_t)(n ? n : 1), sizeof *c->b.status);
  if (!c->b.texts || !c->b.lens || !c->b.vecs || !c->b.status) goto fail;
  for (int i = 0; i < n; i++) {
    c->b.lens[i] = lens ? lens[i] : strlen(texts[i]);
    if (!(c->b.texts[i] = malloc(c->b.lens[i] + 1))) goto fail;
    memcpy(c->b.texts[i], texts[i], c->b.lens[i]);
    c->b.texts[i][c->b.lens[i]] = 0;
  }
  return c;
fail:
  call_free(c);
  return NULL;
}

/* ---- minilm ------------------------------------------------------------------------------- */

static void minilm_done(p2q_embed_job_t *job, int status) {
  call_t *c = job->data;
  c->b.tokens = job->tokens;
  if (status) {
    c->b.err = status;
    c->b.transient = status == P2Q_ECANCELED || status == P2Q_ENOMEM;
    snprintf(c->b.msg, sizeof c->b.msg, "minilm: %s", p2q_strerror(status));
  }
  call_finish(c);
}

/* One job on the pool: the pool tokenizes once, splits across idle workers and counts tokens. */
static int minilm_embed(call_t *c) {
  p2q_embed_job_t *j = &c->job;
  j->texts = (const char *const *)c->b.texts;
  j->lens = c->b.lens;
  j->n = c->b.n;
  j->out = c->b.vecs;
  j->status = c->b.status;
  j->opts.max_batch_tokens = (size_t)c->e->o.cfg->max_batch_tokens;
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
  e->o.cfg = cfg;
  e->o.loop = loop;
  if (cfg->type == P2Q_EMB_MINILM) {
    if ((rc = p2q_minilm_load(cfg->model_dir, &e->model))) {
      snprintf(err, errlen, "embedder %s: cannot load the model from %s: %s (run scripts/fetch-model)",
               cfg->name, cfg->model_dir, p2q_strerror(rc));
      goto fail;
    }
    e->o.dim = p2q_minilm_dim(e->model);
    if ((rc = p2q_embed_pool_init(loop, e->model, cfg->threads > 0 ? (int)cfg->threads : 1, &e->pool))) {
      snprintf(err, errlen, "embedder %s: cannot start the pool: %s", cfg->name, p2q_strerror(rc));
      goto fail;
    }
  } else {
    e->o.dim = (int)cfg->dim;
    if (cfg->chunk_vocab && *cfg->chunk_vocab && (rc = p2q_wordpiece_load(cfg->chunk_vocab, &e->chunk_wp))) {
      snprintf(err, errlen, "embedder %s: cannot load chunk_vocab %s: %s", cfg->name, cfg->chunk_vocab,
               p2q_strerror(rc));
      goto fail;
    }
    if ((rc = p2q_emb_openai_new(&e->o, err, errlen))) goto fail;
  }
  *out = e;
  return 0;
fail:
  if (e && e->model) p2q_minilm_free(e->model);
  if (e) p2q_wordpiece_free(e->chunk_wp);
  free(e);
  if (rc == P2Q_ENOMEM && errlen && !err[0]) snprintf(err, errlen, "out of memory");
  return rc;
}

int p2q_embedder_embed(p2q_embedder_t *e, const char *const *texts, const size_t *lens, int n,
                       p2q_embedder_cb cb, void *arg) {
  if (e->o.closing) return P2Q_ECANCELED;
  if (n <= 0 || !cb) return P2Q_EINVAL;
  call_t *c = call_new(e, texts, lens, n, cb, arg);
  if (!c) return P2Q_ENOMEM;
  int rc = e->model ? minilm_embed(c) : p2q_emb_openai_embed(&c->b);
  if (rc) call_free(c);
  return rc;
}

int p2q_embedder_dim(const p2q_embedder_t *e) { return e->o.dim; }
const p2q_wordpiece_t *p2q_embedder_tokenizer(const p2q_embedder_t *e) {
  return e->model ? p2q_minilm_wordpiece(e->model) : e->chunk_wp;
}

static void embedder_closed(void *arg) {
  p2q_embedder_t *e = arg;
  void (*cb)(void *) = e->close_cb;
  void *cb_arg = e->close_arg;
  if (e->model) p2q_minilm_free(e->model);
  p2q_wordpiece_free(e->chunk_wp);
  free(e->o.url);
  free(e);
  if (cb) cb(cb_arg);
}

void p2q_embedder_close(p2q_embedder_t *e, void (*cb)(void *arg), void *arg) {
  if (e->o.closing) return;
  e->o.closing = 1;
  e->close_cb = cb;
  e->close_arg = arg;
  if (e->pool) p2q_embed_pool_close(e->pool, embedder_closed, e);
  else p2q_emb_openai_close(&e->o, embedder_closed, e);
}

/*
 * embedder.h — text → vector on the loop, whatever computes it: the native all-MiniLM-L6-v2
 * model on the embedding thread pool (type = minilm), or an OpenAI-compatible /v1/embeddings
 * endpoint through libcurl multi (type = openai). Loop thread only; a callback never fires when
 * the call that took it failed, and fires exactly once otherwise.
 *
 * The texts are copied by p2q_embedder_embed(), so the caller may free them at once. Results
 * (vectors, per-text status) are valid during the callback only.
 */
#ifndef P2Q_EMBEDDER_H
#define P2Q_EMBEDDER_H

#include <stddef.h>
#include <uv.h>

#include "pg2qdrant/config.h"

typedef struct p2q_embedder_s p2q_embedder_t;

typedef struct {
  int err;                /* 0, or a P2Q_E* code for the whole call */
  int transient;          /* the call may succeed later (transport, 429, 5xx, pool closing) */
  long retry_after_ms;    /* from a Retry-After header, or -1 */
  const char *msg;        /* what went wrong ("" on success) */
  const float *vecs;      /* n * dim floats when err == 0 */
  const int *status;      /* per text: 0, or P2Q_EUTF8 / P2Q_ETOOLONG (its vector is zero) */
  const int *chunks;      /* chunked calls: vectors per text (text i's start after those of
                             texts < i); NULL otherwise (one vector per text) */
  int n, dim;
  long tokens;            /* tokens embedded (minilm), 0 when unknown */
  double seconds;         /* wall time of the call */
} p2q_embed_result_t;

typedef void (*p2q_embedder_cb)(const p2q_embed_result_t *r, void *arg);

/* Create an embedder (loads the model / starts the pool, or sets up HTTP). err gets a message. */
int p2q_embedder_new(uv_loop_t *loop, const p2q_embedder_config_t *cfg, p2q_embedder_t **out,
                     char *err, size_t errlen);
int p2q_embedder_embed(p2q_embedder_t *e, const char *const *texts, const size_t *lens, int n,
                       p2q_embedder_cb cb, void *arg);
/* Chunked (minilm only): each text is tokenized whole and cut into windows of chunk_tokens
 * word pieces overlapping by overlap, each embedded as its own [CLS] … [SEP] sequence.
 * P2Q_EINVAL for an HTTP embedder or bad sizes. */
int p2q_embedder_embed_chunked(p2q_embedder_t *e, const char *const *texts, const size_t *lens, int n,
                               int chunk_tokens, int overlap, p2q_embedder_cb cb, void *arg);
/* Pure: how many windows of chunk_tokens, overlapping by overlap, cover m content tokens (an
 * empty text is one window), and where window j starts and how long it is. */
int p2q_chunk_windows(int m, int chunk_tokens, int overlap);
void p2q_chunk_window(int m, int chunk_tokens, int overlap, int j, int *start, int *len);
int p2q_embedder_dim(const p2q_embedder_t *e);
const char *p2q_embedder_name(const p2q_embedder_t *e);
/* Cancel what is queued, wait for what runs, deliver every callback, then cb. */
void p2q_embedder_close(p2q_embedder_t *e, void (*cb)(void *arg), void *arg);

/* Pure, for the OpenAI response: fill out[n*dim] from {"data":[{"embedding":[…],"index":i}…]}.
 * 0, or P2Q_EBADJSON / P2Q_EEMBED with a message. */
int p2q_openai_parse(const char *body, size_t len, int n, int dim, float *out, char *msg, size_t msglen);

#endif

/*
 * embedder.h — text → vector on the loop, whatever computes it: the native all-MiniLM-L6-v2
 * model on the embedding thread pool (type = minilm), or an OpenAI-compatible /v1/embeddings
 * endpoint through libcurl multi (type = openai). Loop thread only; a callback never fires when
 * the call that took it failed, and fires exactly once otherwise.
 *
 * The texts are copied by p2q_embedder_embed(), so the caller may free them at once. Results
 * (vectors, per-text status and reasons) are valid during the callback only.
 *
 * Outcome of a call (what the caller maps to event outcomes):
 *   - per text: status[i] != 0 is that text's own fault — it cannot be embedded (P2Q_EUTF8,
 *     P2Q_ETOOLONG from minilm; P2Q_EEMBED when the API rejected that one text, reasons[i]
 *     holding the API's words). The other texts' vectors are good.
 *   - whole call: err != 0 with transient = 1 costs time, not attempts: transport failures,
 *     408/429/5xx, 401/403/404/3xx and other configuration-like answers, a 2xx whose body is not
 *     an embeddings answer, the embedder closing. retry_after_ms is the server's Retry-After,
 *     already capped by [daemon] retry_max (64-bit), or -1.
 *   - whole call: err != 0 with transient = 0 is attributable to the texts: vectors of the wrong
 *     size or count for them.
 * HTTP embedder: a 400/413/422 answer to a request of several texts is bisected (each half sent
 * again) until the rejected texts stand alone; those get status P2Q_EEMBED and the reason, the
 * rest are embedded. A single text still rejected after client-side truncation (max_input_tokens)
 * is retried once cut to max_input_tokens bytes (a byte-level BPE never makes more tokens than
 * bytes) before it is declared rejected. Requests of every caller wait in one FIFO per embedder,
 * paced by requests_per_minute / tokens_per_minute (ratelimit.c); a 429 halves the pace and
 * pauses every caller until its Retry-After (capped by retry_max), and the call that got it fails
 * transiently (its unsent requests are dropped).
 */
#ifndef P2Q_EMBEDDER_H
#define P2Q_EMBEDDER_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "pg2qdrant/buf.h"

#include "pg2qdrant/config.h"
#include "pg2qdrant/openai.h" /* the HTTP embedder's pure parts */

typedef struct p2q_embedder_s p2q_embedder_t;

typedef struct {
  int err;                /* 0, or a P2Q_E* code for the whole call */
  int transient;          /* the call may succeed later (transport, 429, 5xx, pool closing) */
  int64_t retry_after_ms; /* from a Retry-After header (capped by retry_max), or -1 */
  const char *msg;        /* what went wrong ("" on success) */
  const float *vecs;      /* n * dim floats when err == 0 */
  const int *status;      /* per text: 0, or P2Q_EUTF8 / P2Q_ETOOLONG / P2Q_EEMBED (its vector
                             is zero) */
  const char *const *reasons; /* per text: why status[i] != 0 in the embedder's words, or NULL
                                 (the array itself may be NULL) */
  int truncated;          /* texts cut client-side to max_input_tokens */
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
int p2q_embedder_dim(const p2q_embedder_t *e);
/* The word-piece tokenizer chunked rules are cut with: minilm's own, or an openai embedder's
   chunk_vocab (uncased BERT normaliser); NULL when it has none. Immutable, any thread. */
const struct p2q_wordpiece_s *p2q_embedder_tokenizer(const p2q_embedder_t *e);
/* Cancel what is queued, wait for what runs, deliver every callback, then cb. */
void p2q_embedder_close(p2q_embedder_t *e, void (*cb)(void *arg), void *arg);

#endif

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

/* 429s this embedder received, and its current pacing in requests per second (0: unlimited). */
uint64_t p2q_embedder_throttled(const p2q_embedder_t *e);
double p2q_embedder_rate(const p2q_embedder_t *e);

/* ---- pure parts of the HTTP embedder (unit-tested) ---- */

/* Estimated tokens of a text, erring high for real tokenizers: ASCII bytes / 3 (rounded up) plus
 * one per non-ASCII byte. (English averages ~4 characters per token, code and digit runs ~3; a
 * CJK character is 3 bytes for 1–2 tokens.) */
int64_t p2q_embed_estimate_tokens(const char *s, size_t len);
/* The longest prefix of s whose estimate is <= max_tokens, ending on a UTF-8 character boundary
 * (never inside a multi-byte sequence). len when it already fits or max_tokens <= 0. */
size_t p2q_embed_truncate(const char *s, size_t len, int64_t max_tokens);
/* The largest cut <= `cut` that does not split a UTF-8 sequence of s[0, len). */
size_t p2q_utf8_floor(const char *s, size_t len, size_t cut);
/* The request body: {"model":…,"input":[…]} plus "dimensions" when dimensions > 0. */
void p2q_openai_body(p2q_buf_t *b, const char *model, int64_t dimensions, const char *const *texts,
                     const size_t *lens, int n);

/* What an HTTP answer means for the request that got it. */
typedef enum {
  P2Q_OAI_OK = 0,     /* 2xx: parse the vectors */
  P2Q_OAI_REJECT,     /* 400/413/422: some input is at fault: bisect, a lone text is rejected */
  P2Q_OAI_THROTTLE,   /* 429: slow every caller, retry later */
  P2Q_OAI_RETRY,      /* transport, 408, 5xx: retry later */
  P2Q_OAI_CONFIG      /* 401/403/404/3xx/other: fix the configuration; retry later */
} p2q_oai_class_t;
p2q_oai_class_t p2q_openai_classify(long status);
/* The error's message from {"error":{"message":…}} (or {"message":…}, {"error":"…"}, {"detail":…}),
 * else the body's start as one line. */
void p2q_openai_error_message(const char *body, size_t len, char *out, size_t n);
/* The endpoint for url: url itself when it ends with /embeddings, else url + "/embeddings" (a base
 * URL such as https://api.openai.com/v1). malloc()ed; NULL when out of memory. */
char *p2q_openai_endpoint(const char *url);
/* Bisection: split the range [first, first + n) of a rejected request into two halves. Returns
 * 2 (the halves in first2/n2) or 0 when n == 1 (that text is the one at fault). */
int p2q_embed_bisect(int first, int n, int first2[2], int n2[2]);

/* Pure, for the OpenAI response: fill out[n*dim] from {"data":[{"embedding":[…],"index":i}…]},
 * and *usage_tokens (may be NULL) from usage.prompt_tokens (0 when absent). 0, or P2Q_EBADJSON
 * (not an embeddings answer: costs time) / P2Q_EEMBED (wrong vectors for these texts) with a
 * message. */
int p2q_openai_parse(const char *body, size_t len, int n, int dim, float *out, long *usage_tokens,
                     char *msg, size_t msglen);

#endif

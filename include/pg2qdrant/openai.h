/*
 * openai.h — pure parts of the OpenAI-compatible HTTP embedder (embedder_openai.c), unit-tested:
 * token estimate and truncation, request body, answer classes and parsing, bisection. Any thread.
 */
#ifndef P2Q_OPENAI_H
#define P2Q_OPENAI_H

#include <stddef.h>
#include <stdint.h>

#include "pg2qdrant/buf.h"

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

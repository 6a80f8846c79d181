/*
 * backoff.h — exponential backoff with full jitter (pure, no I/O).
 *
 * delay(attempt) is drawn uniformly from [min_ms, cap] where cap = min(max_ms, min_ms * 2^attempt)
 * ("full jitter" with a floor of min_ms so a retry never spins at 0 ms). attempt counts from 0.
 * The random source is injectable for tests; the default is a per-struct xorshift64* generator,
 * so a p2q_backoff_t needs no locking as long as one thread owns it. Used by the PostgreSQL
 * reconnect, Qdrant event retries and the circuit breaker.
 *
 * Also the one parser of a server's Retry-After (Qdrant and embedders alike), capped by the
 * caller's retry_max so no server can park an event beyond it.
 */
#ifndef P2Q_BACKOFF_H
#define P2Q_BACKOFF_H

#include <stdint.h>

/* Returns a uniformly distributed 64-bit value. */
typedef uint64_t (*p2q_rand_fn)(void *ctx);

typedef struct {
  uint64_t min_ms;     /* first delay and floor of every delay (>= 1 recommended) */
  uint64_t max_ms;     /* cap; delays never exceed it */
  p2q_rand_fn rand;    /* NULL = built-in xorshift64* on `state` */
  void *rand_ctx;
  uint64_t state;      /* built-in generator state (never 0) */
} p2q_backoff_t;

/* Initialise with a seed (0 = seed from time and address). Returns 0 or P2Q_EINVAL (min > max). */
int p2q_backoff_init(p2q_backoff_t *b, uint64_t min_ms, uint64_t max_ms, uint64_t seed);
/* Replace the random source (tests). */
void p2q_backoff_set_rand(p2q_backoff_t *b, p2q_rand_fn fn, void *ctx);
/* The jitter-free ceiling for `attempt`: min(max_ms, min_ms * 2^attempt), overflow-safe. */
uint64_t p2q_backoff_cap(uint64_t min_ms, uint64_t max_ms, unsigned attempt);
/* A jittered delay in [min_ms, cap(attempt)]. */
uint64_t p2q_backoff_delay(p2q_backoff_t *b, unsigned attempt);

/* Retry-After (RFC 9110 §10.2.3) at `now_s` (Unix seconds): delta-seconds, or an HTTP-date in
 * any of the three forms a recipient must accept — IMF-fixdate "Sun, 06 Nov 1994 08:49:37 GMT",
 * the obsolete RFC 850 "Sunday, 06-Nov-94 08:49:37 GMT" (two-digit years more than 50 years
 * ahead are taken as last century, RFC 9110 §5.6.7) and asctime "Sun Nov  6 08:49:37 1994".
 * Returns the wait in milliseconds, at most cap_ms (0 = no cap), 0 for a date in the past, or
 * -1 when the value is NULL, empty or not one of those forms (a negative number, garbage, an
 * impossible date). 64-bit arithmetic throughout: huge values saturate at the cap, never wrap. */
int64_t p2q_retry_after_ms(const char *value, int64_t now_s, uint64_t cap_ms);
/* Days since 1970-01-01 of a proleptic Gregorian date (pure; any 64-bit year). */
int64_t p2q_days_from_civil(int64_t y, unsigned m, unsigned d);

#endif

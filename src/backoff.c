/*
 * backoff.c — exponential backoff with full jitter. Pure computation; a p2q_backoff_t belongs to
 * one thread (its built-in generator state is not shared). Invariant: min_ms <= delay <= max_ms.
 */
#include "pg2qdrant/backoff.h"

#include "pg2qdrant/errors.h"

#include <stddef.h>
#include <time.h>

static uint64_t xorshift64s(void *ctx) {
  uint64_t *s = ctx;
  uint64_t x = *s;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *s = x;
  return x * 0x2545F4914F6CDD1DULL;
}

int p2q_backoff_init(p2q_backoff_t *b, uint64_t min_ms, uint64_t max_ms, uint64_t seed) {
  if (!b || min_ms > max_ms) return P2Q_EINVAL;
  b->min_ms = min_ms;
  b->max_ms = max_ms;
  b->rand = NULL;
  b->rand_ctx = NULL;
  if (seed == 0) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    seed = ((uint64_t)ts.tv_sec * 1000000007ULL) ^ (uint64_t)ts.tv_nsec ^ (uint64_t)(uintptr_t)b;
  }
  b->state = seed ? seed : 0x9E3779B97F4A7C15ULL;
  return 0;
}

void p2q_backoff_set_rand(p2q_backoff_t *b, p2q_rand_fn fn, void *ctx) {
  b->rand = fn;
  b->rand_ctx = ctx;
}

uint64_t p2q_backoff_cap(uint64_t min_ms, uint64_t max_ms, unsigned attempt) {
  if (min_ms >= max_ms) return max_ms;
  uint64_t cap = min_ms ? min_ms : 1;
  for (unsigned i = 0; i < attempt; i++) {
    if (cap >= max_ms / 2) return max_ms; /* next doubling would reach or pass the cap */
    cap *= 2;
  }
  return cap < max_ms ? cap : max_ms;
}

uint64_t p2q_backoff_delay(p2q_backoff_t *b, unsigned attempt) {
  uint64_t cap = p2q_backoff_cap(b->min_ms, b->max_ms, attempt);
  if (cap < b->min_ms) cap = b->min_ms;
  uint64_t span = cap - b->min_ms;
  uint64_t r = b->rand ? b->rand(b->rand_ctx) : xorshift64s(&b->state);
  if (span == UINT64_MAX) return b->min_ms + r;
  return b->min_ms + r % (span + 1);
}

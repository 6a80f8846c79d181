/*
 * breaker.c — circuit breaker state machine (see breaker.h). Pure; loop thread in the daemon.
 */
#include "pg2qdrant/breaker.h"
#include "pg2qdrant/errors.h"

int p2q_breaker_init(p2q_breaker_t *b, int threshold, uint64_t probe_min_ms, uint64_t probe_max_ms) {
  b->state = P2Q_BREAKER_CLOSED;
  b->threshold = threshold > 0 ? threshold : 1;
  b->failures = 0;
  b->probes = 0;
  b->transitions = 0;
  return p2q_backoff_init(&b->backoff, probe_min_ms, probe_max_ms, 0);
}

int p2q_breaker_success(p2q_breaker_t *b) {
  b->failures = 0;
  if (b->state == P2Q_BREAKER_CLOSED) return 0;
  b->state = P2Q_BREAKER_CLOSED;
  b->probes = 0;
  b->transitions++;
  return 1;
}

int p2q_breaker_failure(p2q_breaker_t *b) {
  if (b->state != P2Q_BREAKER_CLOSED) return 0;
  if (++b->failures < b->threshold) return 0;
  b->state = P2Q_BREAKER_OPEN;
  b->probes = 0;
  b->transitions++;
  return 1;
}

int p2q_breaker_trip(p2q_breaker_t *b) {
  if (b->state != P2Q_BREAKER_CLOSED) return 0;
  b->failures = b->threshold - 1;
  return p2q_breaker_failure(b);
}

void p2q_breaker_probe_started(p2q_breaker_t *b) {
  if (b->state == P2Q_BREAKER_OPEN) { b->state = P2Q_BREAKER_HALF_OPEN; b->transitions++; }
}

uint64_t p2q_breaker_probe_failed(p2q_breaker_t *b) {
  if (b->state == P2Q_BREAKER_HALF_OPEN) { b->state = P2Q_BREAKER_OPEN; b->transitions++; }
  return p2q_backoff_delay(&b->backoff, ++b->probes);
}

uint64_t p2q_breaker_first_delay(p2q_breaker_t *b) { return p2q_backoff_delay(&b->backoff, 0); }

const char *p2q_breaker_state_name(p2q_breaker_state_t s) {
  return s == P2Q_BREAKER_CLOSED ? "closed" : s == P2Q_BREAKER_OPEN ? "open" : "half_open";
}

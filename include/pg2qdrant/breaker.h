/*
 * breaker.h — circuit breaker for one downstream target (Qdrant, an embedder). Pure state
 * machine; the daemon owns the probe timer and calls in from the loop thread.
 *
 *   closed --(threshold consecutive transient failures)--> open
 *   open   --(probe timer)--> half-open: one probe in flight
 *   half-open --probe ok--> closed        half-open --probe failed--> open (longer delay)
 *
 * One breaker per target (health.c): while it is not closed the rules using that target claim
 * nothing. Probe delays grow exponentially with jitter, capped (breaker_max).
 */
#ifndef P2Q_BREAKER_H
#define P2Q_BREAKER_H

#include "pg2qdrant/backoff.h"
#include <stdint.h>

typedef enum { P2Q_BREAKER_CLOSED = 0, P2Q_BREAKER_OPEN, P2Q_BREAKER_HALF_OPEN } p2q_breaker_state_t;

typedef struct {
  p2q_breaker_state_t state;
  int threshold;
  int failures;          /* consecutive transient failures while closed */
  unsigned probes;       /* failed probes since opening */
  uint64_t transitions;  /* state changes, for metrics */
  p2q_backoff_t backoff;
} p2q_breaker_t;

int p2q_breaker_init(p2q_breaker_t *b, int threshold, uint64_t probe_min_ms, uint64_t probe_max_ms);
/* A request succeeded. Returns 1 if this closed the breaker. */
int p2q_breaker_success(p2q_breaker_t *b);
/* A request failed transiently. Returns 1 if this opened the breaker. */
int p2q_breaker_failure(p2q_breaker_t *b);
/* Open at once whatever the count (configuration failures). Returns 1 if this opened it. */
int p2q_breaker_trip(p2q_breaker_t *b);
/* open → half-open when the probe starts. */
void p2q_breaker_probe_started(p2q_breaker_t *b);
/* The probe failed: back to open. Returns the delay before the next probe. */
uint64_t p2q_breaker_probe_failed(p2q_breaker_t *b);
/* Delay before the first probe after opening. */
uint64_t p2q_breaker_first_delay(p2q_breaker_t *b);
static inline int p2q_breaker_allows(const p2q_breaker_t *b) { return b->state == P2Q_BREAKER_CLOSED; }
const char *p2q_breaker_state_name(p2q_breaker_state_t s);

#endif

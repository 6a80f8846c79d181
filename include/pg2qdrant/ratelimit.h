/*
 * ratelimit.h — a shared request budget for one outside target (a Qdrant host or collection, an
 * embedder's requests or tokens). Pure state machine: no I/O, no clock, no libuv; the caller
 * passes a monotonic `now_ms`. One thread owns a p2q_ratelimit_t (the daemon's loop thread);
 * every worker that talks to the target takes from the same one, so a 429 slows them all.
 *
 * Model: a token bucket refilled at `rate` cost units per second (a cost is 1 per request, or the
 * number of tokens of an embeddings request), holding at most `burst_s` seconds of rate, plus a
 * global "not before" instant set by a server's Retry-After (capped by `max_wait_ms`).
 *
 *   take(now, cost)      0 = go (cost deducted), else milliseconds to wait before asking again
 *                        (nothing deducted). A request costing more than the bucket holds may go
 *                        when the bucket is full; the bucket then goes negative (debt), so the
 *                        average rate still holds.
 *   on_429(now, ra_ms)   multiplicative decrease (rate halves, at most once per second: the
 *                        in-flight requests that all come back 429 count as one signal), the
 *                        bucket is emptied, and nobody goes before now + min(ra_ms, max_wait_ms).
 *                        Without a Retry-After (ra_ms < 0) the pause doubles per consecutive
 *                        429 from 250 ms, capped by max_wait_ms.
 *   on_success(now)      additive increase: the rate grows back by ceiling/20 per second of
 *                        successful traffic (full recovery from one halving in ~10 s).
 *
 * Unlimited (rate 0): take() always says go until a 429 arrives; the limiter then measures the
 * throughput of the last second, halves it, and paces from there; once the additive increase
 * climbs back to that measured throughput it becomes unlimited again (the AIMD sawtooth around
 * the server's real limit). With a configured limit the rate never exceeds it.
 */
#ifndef P2Q_RATELIMIT_H
#define P2Q_RATELIMIT_H

#include <stdint.h>

typedef struct {
  double limit;           /* configured cost units per second; 0 = unlimited */
  double rate;            /* current pacing rate; 0 = unlimited right now */
  double ceiling;         /* where the additive increase stops (limit, or the measured rate) */
  double min_rate;        /* floor of the decrease: limit / 64, or 1 unit/s when unlimited */
  double burst_s;         /* bucket capacity in seconds of `rate` (default 1.0) */
  double tokens;          /* may be negative (debt of an oversized request) */
  uint64_t last_ms;       /* last refill */
  uint64_t last_inc_ms;   /* last additive increase */
  uint64_t last_dec_ms;   /* last multiplicative decrease (0 = never) */
  uint64_t not_before_ms; /* nobody goes before this (Retry-After) */
  uint64_t max_wait_ms;   /* cap on one pause (default 60000; set it to the caller's retry_max) */
  unsigned backoff_n;     /* consecutive 429s without Retry-After */
  /* measured throughput, for the unlimited case: cost taken in 1 s windows */
  uint64_t win_start_ms;
  double win_cost, prev_win_cost;
  /* counters for /status and metrics */
  uint64_t throttled;     /* 429s reported */
  uint64_t waits;         /* take() calls answered "wait" */
} p2q_ratelimit_t;

/* rate_per_s: cost units per second (requests_per_minute / 60.0, ...); 0 = unlimited. */
void p2q_ratelimit_init(p2q_ratelimit_t *rl, double rate_per_s);
/* Re-tune (SIGHUP): a new configured limit, keeping the pause and the counters. */
void p2q_ratelimit_set_limit(p2q_ratelimit_t *rl, double rate_per_s);
/* Cap on one pause (a Retry-After, or the backoff without one); 0 leaves it unchanged. */
void p2q_ratelimit_set_max_wait(p2q_ratelimit_t *rl, uint64_t max_wait_ms);
/* Bucket capacity in seconds of rate (> 0). */
void p2q_ratelimit_set_burst(p2q_ratelimit_t *rl, double burst_s);

/* 0 = go now (cost deducted); otherwise the milliseconds to wait before asking again. */
uint64_t p2q_ratelimit_take(p2q_ratelimit_t *rl, uint64_t now_ms, uint64_t cost);
/* Deduct cost unconditionally (a request already committed to, e.g. one of a claimed batch):
 * the bucket may go into debt, and take() then says wait until it is paid back. */
void p2q_ratelimit_spend(p2q_ratelimit_t *rl, uint64_t now_ms, uint64_t cost);
/* The target answered 429. retry_after_ms < 0 = no usable Retry-After. */
void p2q_ratelimit_on_429(p2q_ratelimit_t *rl, uint64_t now_ms, int64_t retry_after_ms);
/* A request to the target succeeded. */
void p2q_ratelimit_on_success(p2q_ratelimit_t *rl, uint64_t now_ms);

/* Current pacing rate (0 = unlimited) and the pause left at now_ms (0 = none). */
double p2q_ratelimit_rate(const p2q_ratelimit_t *rl);
uint64_t p2q_ratelimit_paused_ms(const p2q_ratelimit_t *rl, uint64_t now_ms);

#endif

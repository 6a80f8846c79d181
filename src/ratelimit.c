/*
 * ratelimit.c — token bucket with AIMD on 429 and a global Retry-After pause (see ratelimit.h).
 * Pure computation on a caller-supplied monotonic clock; one owning thread. Invariants:
 * 0 <= rate <= limit when limit > 0; tokens <= rate * burst_s; a pause never exceeds max_wait_ms
 * past the 429 that set it; time going backwards is treated as no time passing.
 */
#include "pg2qdrant/ratelimit.h"

#include <math.h>
#include <string.h>

#define RL_DEFAULT_MAX_WAIT_MS 60000u
#define RL_BACKOFF_MIN_MS 250u
#define RL_DECREASE_HOLD_MS 1000u
#define RL_WINDOW_MS 1000u
#define RL_RECOVERY_STEPS 20.0 /* additive increase: ceiling / 20 per second of success */

static double rl_min_rate(double limit) { return limit > 0 ? limit / 64.0 : 1.0; }

static double rl_capacity(const p2q_ratelimit_t *rl) {
  double c = rl->rate * rl->burst_s;
  return c < 1.0 ? 1.0 : c;
}

void p2q_ratelimit_init(p2q_ratelimit_t *rl, double rate_per_s) {
  memset(rl, 0, sizeof(*rl));
  rl->burst_s = 1.0;
  rl->max_wait_ms = RL_DEFAULT_MAX_WAIT_MS;
  p2q_ratelimit_set_limit(rl, rate_per_s);
  rl->tokens = rl->rate > 0 ? rl_capacity(rl) : 0; /* start full */
}

void p2q_ratelimit_set_limit(p2q_ratelimit_t *rl, double rate_per_s) {
  if (!(rate_per_s > 0) || isinf(rate_per_s)) rate_per_s = 0; /* NaN, negative, inf: unlimited */
  rl->limit = rate_per_s;
  rl->min_rate = rl_min_rate(rate_per_s);
  if (rate_per_s > 0) {
    rl->ceiling = rate_per_s;
    if (rl->rate == 0 || rl->rate > rate_per_s) rl->rate = rate_per_s;
    if (rl->tokens > rl_capacity(rl)) rl->tokens = rl_capacity(rl);
  } else if (rl->last_dec_ms == 0) {
    rl->rate = 0; /* never throttled: unlimited right away; otherwise recover through AIMD */
    rl->ceiling = 0;
  }
}

void p2q_ratelimit_set_max_wait(p2q_ratelimit_t *rl, uint64_t max_wait_ms) {
  if (max_wait_ms) rl->max_wait_ms = max_wait_ms;
}

void p2q_ratelimit_set_burst(p2q_ratelimit_t *rl, double burst_s) {
  if (burst_s > 0 && !isinf(burst_s)) rl->burst_s = burst_s;
}

static void rl_refill(p2q_ratelimit_t *rl, uint64_t now_ms) {
  if (now_ms <= rl->last_ms) return;
  if (rl->rate > 0) {
    rl->tokens += rl->rate * (double)(now_ms - rl->last_ms) / 1000.0;
    double cap = rl_capacity(rl);
    if (rl->tokens > cap) rl->tokens = cap;
  }
  rl->last_ms = now_ms;
}

/* Roll the 1 s throughput windows forward to now_ms. */
static void rl_window(p2q_ratelimit_t *rl, uint64_t now_ms) {
  if (now_ms < rl->win_start_ms) return;
  uint64_t age = now_ms - rl->win_start_ms;
  if (age < RL_WINDOW_MS) return;
  rl->prev_win_cost = age < 2 * RL_WINDOW_MS ? rl->win_cost : 0;
  rl->win_cost = 0;
  rl->win_start_ms = now_ms - age % RL_WINDOW_MS;
}

/* Throughput (cost per second) just before now_ms. */
static double rl_measured(p2q_ratelimit_t *rl, uint64_t now_ms) {
  rl_window(rl, now_ms);
  double m = rl->prev_win_cost;
  uint64_t in_win = now_ms >= rl->win_start_ms ? now_ms - rl->win_start_ms : 0;
  if (in_win >= 100) {
    double cur = rl->win_cost * 1000.0 / (double)in_win;
    if (cur > m) m = cur;
  } else if (rl->win_cost > m) {
    m = rl->win_cost; /* a burst at the very start of a window */
  }
  return m;
}

uint64_t p2q_ratelimit_take(p2q_ratelimit_t *rl, uint64_t now_ms, uint64_t cost) {
  if (now_ms < rl->not_before_ms) {
    rl->waits++;
    return rl->not_before_ms - now_ms;
  }
  rl_refill(rl, now_ms);
  double c = (double)cost;
  if (rl->rate > 0) {
    double cap = rl_capacity(rl);
    double need = c < cap ? c : cap;
    if (rl->tokens < need) {
      double ms = ceil((need - rl->tokens) * 1000.0 / rl->rate);
      rl->waits++;
      if (ms < 1) ms = 1;
      if (ms > (double)rl->max_wait_ms) ms = (double)rl->max_wait_ms;
      return (uint64_t)ms;
    }
    rl->tokens -= c;
  }
  rl_window(rl, now_ms);
  rl->win_cost += c;
  return 0;
}

void p2q_ratelimit_spend(p2q_ratelimit_t *rl, uint64_t now_ms, uint64_t cost) {
  rl_refill(rl, now_ms);
  if (rl->rate > 0) rl->tokens -= (double)cost;
  rl_window(rl, now_ms);
  rl->win_cost += (double)cost;
}

void p2q_ratelimit_on_429(p2q_ratelimit_t *rl, uint64_t now_ms, int64_t retry_after_ms) {
  rl->throttled++;
  uint64_t pause;
  if (retry_after_ms >= 0) {
    pause = (uint64_t)retry_after_ms;
  } else {
    pause = RL_BACKOFF_MIN_MS;
    for (unsigned i = 0; i < rl->backoff_n && pause < rl->max_wait_ms; i++) pause *= 2;
    if (rl->backoff_n < 64) rl->backoff_n++;
  }
  if (pause > rl->max_wait_ms) pause = rl->max_wait_ms;
  if (now_ms + pause > rl->not_before_ms) rl->not_before_ms = now_ms + pause;
  /* the bucket restarts empty after the pause: no burst the moment it ends */
  if (rl->tokens > 0) rl->tokens = 0;
  if (rl->last_ms < rl->not_before_ms) rl->last_ms = rl->not_before_ms;

  if (rl->last_dec_ms && now_ms < rl->last_dec_ms + RL_DECREASE_HOLD_MS) return; /* same signal */
  if (rl->rate == 0) {
    double m = rl_measured(rl, now_ms);
    rl->ceiling = m > rl->min_rate ? m : rl->min_rate;
    rl->rate = rl->ceiling / 2;
  } else {
    rl->rate /= 2;
  }
  if (rl->rate < rl->min_rate) rl->rate = rl->min_rate;
  rl->last_dec_ms = now_ms ? now_ms : 1;
  rl->last_inc_ms = now_ms;
}

void p2q_ratelimit_on_success(p2q_ratelimit_t *rl, uint64_t now_ms) {
  rl->backoff_n = 0;
  if (rl->rate == 0) return;
  if (now_ms <= rl->last_inc_ms) return;
  uint64_t dt = now_ms - rl->last_inc_ms;
  if (dt > 1000) dt = 1000; /* idle time earns at most one second of increase */
  rl->last_inc_ms = now_ms;
  rl_refill(rl, now_ms);
  double ceiling = rl->limit > 0 ? rl->limit : rl->ceiling;
  double step = ceiling / RL_RECOVERY_STEPS;
  if (step < rl->min_rate) step = rl->min_rate;
  rl->rate += step * (double)dt / 1000.0;
  if (rl->rate >= ceiling) {
    if (rl->limit > 0) {
      rl->rate = rl->limit;
    } else { /* back to unlimited until the next 429 */
      rl->rate = 0;
      rl->tokens = 0;
      rl->last_dec_ms = 0;
    }
  }
}

double p2q_ratelimit_rate(const p2q_ratelimit_t *rl) { return rl->rate; }

uint64_t p2q_ratelimit_paused_ms(const p2q_ratelimit_t *rl, uint64_t now_ms) {
  return now_ms < rl->not_before_ms ? rl->not_before_ms - now_ms : 0;
}

/*
 * test_ratelimit.c — the shared per-target budget: token bucket pacing, oversized costs (debt),
 * Retry-After pauses and their cap, backoff without Retry-After, AIMD decrease/increase (limited
 * and unlimited), one decrease per burst of 429s, clock going backwards, re-tuning, and a
 * simulation of several workers sharing one budget against a limit.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "pg2qdrant/ratelimit.h"

static void test_unlimited(void **st) {
  p2q_ratelimit_t rl;
  p2q_ratelimit_init(&rl, 0);
  for (uint64_t t = 0; t < 1000; t++) assert_int_equal(p2q_ratelimit_take(&rl, t, 1), 0);
  assert_int_equal(p2q_ratelimit_take(&rl, 1000, 1000000), 0);
  p2q_ratelimit_on_success(&rl, 2000);
  assert_true(p2q_ratelimit_rate(&rl) == 0);
  assert_int_equal(rl.waits, 0);
  /* NaN, negative and infinite limits mean unlimited too */
  p2q_ratelimit_init(&rl, -5);
  assert_true(rl.limit == 0);
  p2q_ratelimit_init(&rl, 1.0 / 0.0);
  assert_true(rl.limit == 0);
}

static void test_bucket(void **st) {
  p2q_ratelimit_t rl;
  p2q_ratelimit_init(&rl, 10); /* 10/s, burst 1 s = 10 */
  for (int i = 0; i < 10; i++) assert_int_equal(p2q_ratelimit_take(&rl, 1000, 1), 0);
  assert_int_equal(p2q_ratelimit_take(&rl, 1000, 1), 100);  /* one token takes 100 ms */
  assert_int_equal(p2q_ratelimit_take(&rl, 1050, 1), 50);
  assert_int_equal(p2q_ratelimit_take(&rl, 1100, 1), 0);
  assert_int_equal(p2q_ratelimit_take(&rl, 1100, 1), 100);
  assert_int_equal(rl.waits, 3);
  /* an idle period refills to the burst, not beyond */
  for (int i = 0; i < 10; i++) assert_int_equal(p2q_ratelimit_take(&rl, 100000, 1), 0);
  assert_true(p2q_ratelimit_take(&rl, 100000, 1) > 0);
  /* a cost of 3 needs 3 tokens */
  p2q_ratelimit_init(&rl, 10);
  for (int i = 0; i < 3; i++) assert_int_equal(p2q_ratelimit_take(&rl, 0, 3), 0);
  assert_int_equal(p2q_ratelimit_take(&rl, 0, 3), 200); /* 1 left, 2 more at 10/s */
  /* rates below one per second (requests_per_minute = 30) */
  p2q_ratelimit_init(&rl, 0.5);
  assert_int_equal(p2q_ratelimit_take(&rl, 0, 1), 0); /* capacity floor: one request */
  assert_int_equal(p2q_ratelimit_take(&rl, 0, 1), 2000);
  assert_int_equal(p2q_ratelimit_take(&rl, 2000, 1), 0);
}

static void test_oversized_cost(void **st) {
  p2q_ratelimit_t rl;
  p2q_ratelimit_init(&rl, 100); /* e.g. tokens per second; a request costs 500 */
  assert_int_equal(p2q_ratelimit_take(&rl, 0, 500), 0);       /* full bucket: goes, debt 400 */
  assert_int_equal(p2q_ratelimit_take(&rl, 0, 1), 4010);      /* (1 + 400) / 100 s */
  assert_int_equal(p2q_ratelimit_take(&rl, 4000, 500), 1000); /* debt paid; needs a full bucket (100) */
  assert_int_equal(p2q_ratelimit_take(&rl, 5000, 500), 0);
  /* average over a long run: 10 requests of 500 need >= 45 s at 100/s after the first burst */
  p2q_ratelimit_init(&rl, 100);
  uint64_t t = 0;
  for (int i = 0; i < 10; i++) {
    uint64_t w;
    while ((w = p2q_ratelimit_take(&rl, t, 500)) != 0) t += w;
  }
  assert_true(t >= 45000 && t <= 46000);
}

static void test_retry_after_pause(void **st) {
  p2q_ratelimit_t rl;
  p2q_ratelimit_init(&rl, 0);
  p2q_ratelimit_set_max_wait(&rl, 30000);
  assert_int_equal(p2q_ratelimit_take(&rl, 1000, 1), 0);
  p2q_ratelimit_on_429(&rl, 1000, 5000);
  assert_int_equal(rl.throttled, 1);
  assert_int_equal(p2q_ratelimit_paused_ms(&rl, 1000), 5000);
  assert_int_equal(p2q_ratelimit_take(&rl, 1000, 1), 5000);
  assert_int_equal(p2q_ratelimit_take(&rl, 4000, 1), 2000);
  assert_true(p2q_ratelimit_rate(&rl) > 0); /* now paced */
  uint64_t w = p2q_ratelimit_take(&rl, 6000, 1);
  assert_true(w <= 1000); /* paced at >= 1/s, never stuck */
  /* an absurd Retry-After (99999999999 s) is capped at max_wait */
  p2q_ratelimit_on_429(&rl, 10000, (int64_t)99999999999LL * 1000);
  assert_int_equal(p2q_ratelimit_paused_ms(&rl, 10000), 30000);
  /* a shorter pause never shortens a longer one in force */
  p2q_ratelimit_on_429(&rl, 11000, 1000);
  assert_int_equal(p2q_ratelimit_paused_ms(&rl, 11000), 29000);
  /* Retry-After: 0 is "retry now": no pause, but still a rate decrease */
  p2q_ratelimit_init(&rl, 50);
  p2q_ratelimit_on_429(&rl, 500, 0);
  assert_int_equal(p2q_ratelimit_paused_ms(&rl, 500), 0);
  assert_true(p2q_ratelimit_rate(&rl) == 25);
}

static void test_backoff_without_retry_after(void **st) {
  p2q_ratelimit_t rl;
  p2q_ratelimit_init(&rl, 100);
  p2q_ratelimit_set_max_wait(&rl, 1500);
  uint64_t expect[] = {250, 500, 1000, 1500, 1500};
  uint64_t t = 0;
  for (int i = 0; i < 5; i++) {
    t += 2000;
    p2q_ratelimit_on_429(&rl, t, -1);
    assert_int_equal(p2q_ratelimit_paused_ms(&rl, t), expect[i]);
  }
  p2q_ratelimit_on_success(&rl, t + 2000);
  p2q_ratelimit_on_429(&rl, t + 4000, -1);
  assert_int_equal(p2q_ratelimit_paused_ms(&rl, t + 4000), 250); /* success reset the backoff */
}

static void test_aimd_limited(void **st) {
  p2q_ratelimit_t rl;
  p2q_ratelimit_init(&rl, 100);
  p2q_ratelimit_on_429(&rl, 1000, -1);
  assert_true(p2q_ratelimit_rate(&rl) == 50);
  /* every in-flight request of the burst comes back 429 within the second: one decrease */
  for (int i = 1; i <= 9; i++) p2q_ratelimit_on_429(&rl, 1000 + (uint64_t)i * 100, -1);
  assert_true(p2q_ratelimit_rate(&rl) == 50);
  assert_int_equal(rl.throttled, 10);
  p2q_ratelimit_on_429(&rl, 2100, -1); /* a new signal a second later halves again */
  assert_true(p2q_ratelimit_rate(&rl) == 25);
  /* repeated halvings stop at the floor (limit / 64) */
  for (uint64_t t = 4000; t < 40000; t += 2000) p2q_ratelimit_on_429(&rl, t, -1);
  assert_true(p2q_ratelimit_rate(&rl) == 100.0 / 64);
  /* additive increase: limit/20 per second of success; never above the limit */
  uint64_t t = 40000;
  p2q_ratelimit_on_success(&rl, t);
  double r0 = p2q_ratelimit_rate(&rl);
  for (int i = 0; i < 100; i++) p2q_ratelimit_on_success(&rl, t += 10); /* 1 s */
  double r1 = p2q_ratelimit_rate(&rl);
  assert_true(r1 > r0 + 4.9 && r1 < r0 + 5.1);
  for (int i = 0; i < 3000; i++) p2q_ratelimit_on_success(&rl, t += 10); /* 30 s */
  assert_true(p2q_ratelimit_rate(&rl) == 100);
  /* an idle hour earns one second of increase, not a jump */
  p2q_ratelimit_on_429(&rl, t += 5000, -1);
  p2q_ratelimit_on_success(&rl, t += 3600000);
  assert_true(p2q_ratelimit_rate(&rl) > 54.9 && p2q_ratelimit_rate(&rl) < 55.1);
}

static void test_aimd_unlimited(void **st) {
  p2q_ratelimit_t rl;
  p2q_ratelimit_init(&rl, 0);
  uint64_t t = 0;
  for (int i = 0; i < 200; i++) assert_int_equal(p2q_ratelimit_take(&rl, t += 10, 1), 0); /* 100/s */
  p2q_ratelimit_on_429(&rl, t, 1000);
  double r = p2q_ratelimit_rate(&rl);
  assert_true(r >= 45 && r <= 55); /* half the measured 100/s */
  /* paced after the pause: about 50/s */
  t += 1000;
  int went = 0;
  for (uint64_t end = t + 1000; t < end; t++) went += p2q_ratelimit_take(&rl, t, 1) == 0;
  assert_true(went >= 45 && went <= 56);
  /* success for ~10 s climbs back to the measured rate, then unlimited again */
  for (int i = 0; i < 1200 && p2q_ratelimit_rate(&rl) > 0; i++) p2q_ratelimit_on_success(&rl, t += 10);
  assert_true(p2q_ratelimit_rate(&rl) == 0);
  assert_true(t > 10000 && t < 14000);
  assert_int_equal(p2q_ratelimit_take(&rl, t, 1000000), 0);
  /* a 429 with nothing measured (first request ever) paces from the floor: 1/s, halved → 1/s */
  p2q_ratelimit_init(&rl, 0);
  p2q_ratelimit_on_429(&rl, 5000, -1);
  assert_true(p2q_ratelimit_rate(&rl) == 1.0);
}

static void test_clock_backwards_and_retune(void **st) {
  p2q_ratelimit_t rl;
  p2q_ratelimit_init(&rl, 10);
  for (int i = 0; i < 10; i++) assert_int_equal(p2q_ratelimit_take(&rl, 5000, 1), 0);
  uint64_t w = p2q_ratelimit_take(&rl, 4000, 1); /* earlier than the last refill: no refill */
  assert_int_equal(w, 100);
  p2q_ratelimit_on_success(&rl, 3000);
  p2q_ratelimit_on_429(&rl, 2000, 100);
  assert_int_equal(p2q_ratelimit_take(&rl, 2000, 1), 100);
  /* re-tune: a lower limit clips the rate and the bucket; unlimited after a 429 recovers via AIMD */
  p2q_ratelimit_init(&rl, 100);
  p2q_ratelimit_set_limit(&rl, 10);
  assert_true(p2q_ratelimit_rate(&rl) == 10);
  int went = 0;
  for (int i = 0; i < 100; i++) went += p2q_ratelimit_take(&rl, 0, 1) == 0;
  assert_int_equal(went, 10);
  p2q_ratelimit_set_limit(&rl, 0);
  assert_true(p2q_ratelimit_rate(&rl) == 0); /* never throttled: unlimited now */
  p2q_ratelimit_set_limit(&rl, 10);
  p2q_ratelimit_on_429(&rl, 10000, -1);
  p2q_ratelimit_set_limit(&rl, 0);
  assert_true(p2q_ratelimit_rate(&rl) == 5); /* throttled: climbs back before going unlimited */
  p2q_ratelimit_set_burst(&rl, 0); /* ignored */
  assert_true(rl.burst_s == 1.0);
  p2q_ratelimit_set_max_wait(&rl, 0); /* ignored */
  assert_int_equal(rl.max_wait_ms, 60000);
}

/* Four workers hammer one budget of 20/s for 10 s: the number that went respects the limit
 * (20/s plus the initial burst), every worker gets a share, and nobody waits longer than needed. */
static void test_shared_by_workers(void **st) {
  p2q_ratelimit_t rl;
  p2q_ratelimit_init(&rl, 20);
  uint64_t next[4] = {0, 0, 0, 0};
  int went[4] = {0, 0, 0, 0};
  uint64_t seed = 88172645463325252ULL;
  for (uint64_t t = 0; t < 10000; t++) {
    seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
    for (int k = 0; k < 4; k++) {
      int w = (int)((seed >> 33) + (uint64_t)k) % 4; /* who asks first varies, as with callbacks */
      if (t < next[w]) continue;
      uint64_t d = p2q_ratelimit_take(&rl, t, 1);
      if (d == 0) { went[w]++; next[w] = t + 1; }
      else next[w] = t + d;
    }
  }
  int total = went[0] + went[1] + went[2] + went[3];
  print_message("went %d %d %d %d\n", went[0], went[1], went[2], went[3]);
  assert_true(total >= 200 && total <= 220);
  for (int w = 0; w < 4; w++) assert_true(went[w] > 20);
}

/* spend(): a committed request is always counted; the debt makes take(now, 0) wait. */
static void test_spend_debt(void **st) {
  p2q_ratelimit_t rl;
  p2q_ratelimit_init(&rl, 10); /* 10/s, bucket of 10 */
  for (int i = 0; i < 15; i++) p2q_ratelimit_spend(&rl, 1000, 1);
  assert_int_equal(p2q_ratelimit_take(&rl, 1000, 0), 500); /* 5 in debt at 10/s */
  assert_int_equal(p2q_ratelimit_take(&rl, 1500, 0), 0);
  p2q_ratelimit_init(&rl, 0);  /* unlimited: spending never blocks */
  for (int i = 0; i < 1000; i++) p2q_ratelimit_spend(&rl, 1000, 1);
  assert_int_equal(p2q_ratelimit_take(&rl, 1000, 0), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_unlimited),
      cmocka_unit_test(test_bucket),
      cmocka_unit_test(test_oversized_cost),
      cmocka_unit_test(test_retry_after_pause),
      cmocka_unit_test(test_backoff_without_retry_after),
      cmocka_unit_test(test_aimd_limited),
      cmocka_unit_test(test_aimd_unlimited),
      cmocka_unit_test(test_clock_backwards_and_retune),
      cmocka_unit_test(test_shared_by_workers),
      cmocka_unit_test(test_spend_debt),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

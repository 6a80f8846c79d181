/*
 * test_backoff.c — exponential backoff with full jitter: caps, bounds, overflow safety,
 * injected random source and the distribution of the built-in generator.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "pg2qdrant/backoff.h"
#include "pg2qdrant/errors.h"

static uint64_t fixed_rand(void *ctx) { return *(uint64_t *)ctx; }

static void test_cap(void **st) {
  assert_int_equal(p2q_backoff_cap(100, 30000, 0), 100);
  assert_int_equal(p2q_backoff_cap(100, 30000, 1), 200);
  assert_int_equal(p2q_backoff_cap(100, 30000, 3), 800);
  assert_int_equal(p2q_backoff_cap(100, 30000, 8), 25600);
  assert_int_equal(p2q_backoff_cap(100, 30000, 9), 30000);
  assert_int_equal(p2q_backoff_cap(100, 30000, 1000), 30000);  /* no overflow on huge attempts */
  assert_int_equal(p2q_backoff_cap(1, UINT64_MAX, 200), UINT64_MAX);
  assert_int_equal(p2q_backoff_cap(500, 500, 5), 500);
  assert_int_equal(p2q_backoff_cap(0, 1000, 3), 8);            /* min 0 starts at 1 ms */
}

static void test_init(void **st) {
  p2q_backoff_t b;
  assert_int_equal(p2q_backoff_init(&b, 10, 5, 1), P2Q_EINVAL);
  assert_int_equal(p2q_backoff_init(NULL, 1, 5, 1), P2Q_EINVAL);
  assert_int_equal(p2q_backoff_init(&b, 10, 10, 0), 0);
  assert_true(b.state != 0);
  assert_int_equal(p2q_backoff_delay(&b, 7), 10);
}

static void test_injected_random(void **st) {
  p2q_backoff_t b;
  uint64_t r = 0;
  assert_int_equal(p2q_backoff_init(&b, 100, 10000, 42), 0);
  p2q_backoff_set_rand(&b, fixed_rand, &r);
  assert_int_equal(p2q_backoff_delay(&b, 0), 100);        /* span 0 → always min */
  assert_int_equal(p2q_backoff_delay(&b, 3), 100);        /* r = 0 → min */
  r = 700;                                                /* cap(3) = 800: span 700 → r % 701 */
  assert_int_equal(p2q_backoff_delay(&b, 3), 800);
  r = 701;
  assert_int_equal(p2q_backoff_delay(&b, 3), 100);
  r = UINT64_MAX;
  uint64_t d = p2q_backoff_delay(&b, 50);
  assert_true(d >= 100 && d <= 10000);
}

static void test_distribution(void **st) {
  p2q_backoff_t b;
  assert_int_equal(p2q_backoff_init(&b, 100, 30000, 12345), 0);
  /* attempt 4: uniform in [100, 1600] */
  uint64_t lo = UINT64_MAX, hi = 0, sum = 0;
  const int N = 20000;
  for (int i = 0; i < N; i++) {
    uint64_t d = p2q_backoff_delay(&b, 4);
    assert_true(d >= 100 && d <= 1600);
    if (d < lo) lo = d;
    if (d > hi) hi = d;
    sum += d;
  }
  assert_true(lo < 130 && hi > 1570); /* jitter really spans the range */
  double mean = (double)sum / N;
  assert_true(mean > 800 && mean < 900); /* expected 850 */
  for (unsigned a = 0; a < 100; a++) {
    uint64_t d = p2q_backoff_delay(&b, a);
    assert_true(d >= 100 && d <= p2q_backoff_cap(100, 30000, a));
  }
  /* same seed, same sequence (reproducible tests); different seed, different sequence */
  p2q_backoff_t x, y, z;
  p2q_backoff_init(&x, 1, 1000000, 7);
  p2q_backoff_init(&y, 1, 1000000, 7);
  p2q_backoff_init(&z, 1, 1000000, 8);
  int same = 1, diff = 0;
  for (int i = 0; i < 10; i++) {
    uint64_t a = p2q_backoff_delay(&x, 20), c = p2q_backoff_delay(&y, 20), e = p2q_backoff_delay(&z, 20);
    same &= a == c;
    diff |= a != e;
  }
  assert_true(same);
  assert_true(diff);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_cap),
      cmocka_unit_test(test_init),
      cmocka_unit_test(test_injected_random),
      cmocka_unit_test(test_distribution),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

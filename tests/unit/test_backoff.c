/*
 * test_backoff.c — exponential backoff with full jitter: caps, bounds, overflow safety,
 * injected random source and the distribution of the built-in generator; the Retry-After
 * parser in every form (seconds, huge, negative, garbage, HTTP dates past/future/2037/2030 and
 * the obsolete RFC 850 and asctime forms) with its cap.
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


/* 2026-11-30 12:00:00 UTC */
#define NOW 1796040000LL

static void test_days_from_civil(void **st) {
  assert_int_equal(p2q_days_from_civil(1970, 1, 1), 0);
  assert_int_equal(p2q_days_from_civil(1969, 12, 31), -1);
  assert_int_equal(p2q_days_from_civil(2000, 2, 29), 11016);
  assert_int_equal(p2q_days_from_civil(2000, 3, 1), 11017);
  assert_int_equal(p2q_days_from_civil(2026, 11, 30) * 86400 + 12 * 3600, NOW);
  assert_int_equal(p2q_days_from_civil(2037, 10, 21) * 86400 + 7 * 3600 + 28 * 60, 2139722880LL);
  assert_true(p2q_days_from_civil(9999, 12, 31) > 2932000); /* far beyond 2038 */
}

static void test_retry_after_seconds(void **st) {
  assert_int_equal(p2q_retry_after_ms("7", NOW, 300000), 7000);
  assert_int_equal(p2q_retry_after_ms(" 7 \r\n", NOW, 300000), 7000);
  assert_int_equal(p2q_retry_after_ms("0", NOW, 300000), 0);
  assert_int_equal(p2q_retry_after_ms("300", NOW, 300000), 300000);
  assert_int_equal(p2q_retry_after_ms("301", NOW, 300000), 300000);           /* capped */
  /* absurd values: capped at retry_max, never wrapped or parked for days */
  assert_int_equal(p2q_retry_after_ms("99999999999", NOW, 300000), 300000);
  assert_int_equal(p2q_retry_after_ms("99999999999999999999999999", NOW, 300000), 300000);
  assert_int_equal(p2q_retry_after_ms("2147484", NOW, 0), 2147484000LL);      /* > INT32_MAX ms */
  assert_int_equal(p2q_retry_after_ms("99999999999", NOW, 0), 99999999999000LL);
  assert_int_equal(p2q_retry_after_ms("99999999999999999999999999", NOW, 0), INT64_MAX);
  /* not delta-seconds */
  const char *bad[] = {NULL, "", "   ", "-5", "+5", "5s", "1.5", "1e3", "0x10", "soon", "5 5",
                       "-99999999999"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    assert_int_equal(p2q_retry_after_ms(bad[i], NOW, 300000), -1);
}

static void test_retry_after_dates(void **st) {
  /* IMF-fixdate */
  assert_int_equal(p2q_retry_after_ms("Mon, 30 Nov 2026 12:00:10 GMT", NOW, 300000), 10000);
  assert_int_equal(p2q_retry_after_ms("Mon, 30 Nov 2026 12:00:00 GMT", NOW, 300000), 0);
  assert_int_equal(p2q_retry_after_ms("Mon, 30 Nov 2026 11:59:59 GMT", NOW, 300000), 0); /* past */
  assert_int_equal(p2q_retry_after_ms("Sun, 06 Nov 1994 08:49:37 GMT", NOW, 300000), 0);
  /* 2037 and 2030: capped at retry_max (no 24-day park, no int truncation into the past) */
  assert_int_equal(p2q_retry_after_ms("Wed, 21 Oct 2037 07:28:00 GMT", NOW, 300000), 300000);
  assert_int_equal(p2q_retry_after_ms("Mon, 01 Jul 2030 00:00:00 GMT", NOW, 300000), 300000);
  assert_int_equal(p2q_retry_after_ms("Wed, 21 Oct 2037 07:28:00 GMT", NOW, 0),
                   (2139722880LL - NOW) * 1000);
  assert_int_equal(p2q_retry_after_ms("Fri, 31 Dec 9999 23:59:59 GMT", NOW, 0),
                   ((p2q_days_from_civil(9999, 12, 31) + 1) * 86400 - 1 - NOW) * 1000);
  assert_int_equal(p2q_retry_after_ms("Tue, 01 Dec 2026 00:00:00 GMT", NOW, 0), 12 * 3600 * 1000LL);
  /* obsolete RFC 850: two-digit years; more than 50 years ahead means last century */
  assert_int_equal(p2q_retry_after_ms("Sunday, 06-Nov-94 08:49:37 GMT", NOW, 300000), 0);
  assert_int_equal(p2q_retry_after_ms("Monday, 30-Nov-26 12:01:00 GMT", NOW, 300000), 60000);
  assert_int_equal(p2q_retry_after_ms("Wednesday, 21-Oct-37 07:28:00 GMT", NOW, 0),
                   (2139722880LL - NOW) * 1000);
  assert_int_equal(p2q_retry_after_ms("Friday, 01-Jan-77 00:00:00 GMT", NOW, 0), 0);  /* 1977 */
  assert_int_equal(p2q_retry_after_ms("Tuesday, 01-Jan-70 00:00:00 GMT", NOW, 0),    /* 2070 */
                   (p2q_days_from_civil(2070, 1, 1) * 86400 - NOW) * 1000);
  /* asctime */
  assert_int_equal(p2q_retry_after_ms("Sun Nov  6 08:49:37 1994", NOW, 300000), 0);
  assert_int_equal(p2q_retry_after_ms("Mon Nov 30 12:00:30 2026", NOW, 300000), 30000);
  assert_int_equal(p2q_retry_after_ms("Tue Dec  1 00:00:00 2026", NOW, 0), 12 * 3600 * 1000LL);
  /* not HTTP-dates */
  const char *bad[] = {
      "Mon, 30 Nov 2026 12:00:10 UTC",  "Mon, 30 Nov 2026 12:00:10",     "mon, 30 Nov 2026 12:00:10 GMT",
      "Mon, 31 Nov 2026 12:00:10 GMT",  "Mon, 29 Feb 2027 12:00:10 GMT", "Mon, 30 Nov 2026 24:00:00 GMT",
      "Mon, 30 Nov 2026 12:60:00 GMT",  "Mon, 30 Foo 2026 12:00:10 GMT", "Mon, 3 Nov 2026 12:00:10 GMT",
      "Mon, 30 Nov 26 12:00:10 GMT",    "Monday, 30-Nov-2026 12:00:10 GMT", "Sun Nov 6 08:49:37 1994",
      "Mon, 30 Nov 2026 12:00:10 GMT x", "2026-11-30T12:00:10Z",         "Mon,30 Nov 2026 12:00:10 GMT",
      "Someday, 30-Nov-26 12:00:10 GMT", "Mon, 00 Nov 2026 12:00:10 GMT"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    if (p2q_retry_after_ms(bad[i], NOW, 300000) != -1) print_message("accepted: %s\n", bad[i]);
    assert_int_equal(p2q_retry_after_ms(bad[i], NOW, 300000), -1);
  }
  /* a leap day and a leap second are real dates */
  assert_int_equal(p2q_retry_after_ms("Tue, 29 Feb 2028 00:00:00 GMT", NOW, 1000), 1000);
  assert_int_equal(p2q_retry_after_ms("Thu, 31 Dec 2026 23:59:60 GMT", NOW, 1000), 1000);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_cap),
      cmocka_unit_test(test_init),
      cmocka_unit_test(test_injected_random),
      cmocka_unit_test(test_distribution),
      cmocka_unit_test(test_days_from_civil),
      cmocka_unit_test(test_retry_after_seconds),
      cmocka_unit_test(test_retry_after_dates),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

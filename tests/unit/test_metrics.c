/*
 * test_metrics.c — the Prometheus registry: registration rules, labelled series, counters that
 * never go down, histogram buckets (cumulative on output, +Inf, _sum, _count), escaping, value
 * formatting, clearing, and the exact text format 0.0.4 of a small registry.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "pg2qdrant/metrics.h"

static void test_register(void **st) {
  p2q_metrics_t *m;
  assert_int_equal(p2q_metrics_new(&m), 0);
  const char *w[] = {"worker"}, *bad[] = {"le"}, *bad2[] = {"9x"};
  const double b[] = {1, 2}, unsorted[] = {2, 1};
  assert_non_null(p2q_metrics_register(m, "a_total", "h", P2Q_METRIC_COUNTER, 1, w, 0, NULL));
  assert_null(p2q_metrics_register(m, "a_total", "dup", P2Q_METRIC_COUNTER, 0, NULL, 0, NULL));
  assert_null(p2q_metrics_register(m, "1bad", "h", P2Q_METRIC_GAUGE, 0, NULL, 0, NULL));
  assert_null(p2q_metrics_register(m, "bad-name", "h", P2Q_METRIC_GAUGE, 0, NULL, 0, NULL));
  assert_null(p2q_metrics_register(m, "g", "h", P2Q_METRIC_GAUGE, 1, bad, 0, NULL));
  assert_null(p2q_metrics_register(m, "g", "h", P2Q_METRIC_GAUGE, 1, bad2, 0, NULL));
  assert_null(p2q_metrics_register(m, "h", "h", P2Q_METRIC_HISTOGRAM, 0, NULL, 2, unsorted));
  assert_null(p2q_metrics_register(m, "h", "h", P2Q_METRIC_HISTOGRAM, 0, NULL, 0, NULL));
  assert_null(p2q_metrics_register(m, "g", "h", P2Q_METRIC_GAUGE, 0, NULL, 2, b));
  assert_non_null(p2q_metrics_register(m, "ns:h", "h", P2Q_METRIC_HISTOGRAM, 0, NULL, 2, b));
  assert_non_null(p2q_metrics_find(m, "ns:h"));
  assert_null(p2q_metrics_find(m, "nope"));
  p2q_metrics_free(m);
}

static void test_series(void **st) {
  p2q_metrics_t *m;
  p2q_metrics_new(&m);
  const char *l[] = {"worker", "kind"};
  p2q_metric_t *c = p2q_metrics_register(m, "ev_total", "events", P2Q_METRIC_COUNTER, 2, l, 0, NULL);
  const char *v1[] = {"w1", "a"}, *v2[] = {"w1", "b"}, *v3[] = {"w1\0x", "a"};
  p2q_series_t *s1 = p2q_metric_series(c, v1), *s2 = p2q_metric_series(c, v2);
  assert_ptr_not_equal(s1, s2);
  assert_ptr_equal(p2q_metric_series(c, v1), s1);
  assert_ptr_equal(p2q_metric_series(c, v3), s1); /* values are C strings */
  p2q_series_inc(s1, 2);
  p2q_series_inc(s1, -1); /* counters never go down */
  assert_true(p2q_series_value(s1) == 2);
  p2q_series_set(s2, 40);
  assert_true(p2q_series_value(s2) == 40);
  p2q_series_observe(s1, 3); /* not a histogram: ignored */
  assert_true(p2q_series_value(s1) == 2);
  p2q_series_inc(NULL, 1); /* NULL-safe */
  p2q_metric_clear(c);
  assert_true(p2q_series_value(p2q_metric_series(c, v1)) == 0);
  p2q_metrics_free(m);
}

static void test_render(void **st) {
  p2q_metrics_t *m;
  p2q_metrics_new(&m);
  const char *ep[] = {"endpoint", "class"};
  const double b[] = {0.1, 1, 2.5};
  p2q_metric_t *g = p2q_metrics_register(m, "up", "Is it \\ up\nnow", P2Q_METRIC_GAUGE, 0, NULL, 0, NULL);
  p2q_metric_t *h = p2q_metrics_register(m, "req_seconds", "latency", P2Q_METRIC_HISTOGRAM, 2, ep, 3, b);
  p2q_metric_t *c = p2q_metrics_register(m, "x_total", "x", P2Q_METRIC_COUNTER, 1, ep, 0, NULL);
  p2q_metrics_register(m, "empty_total", "no series yet", P2Q_METRIC_COUNTER, 0, NULL, 0, NULL);
  p2q_series_set(p2q_metric_series0(g), 1);
  const char *v[] = {"upsert", "2xx"};
  p2q_series_t *s = p2q_metric_series(h, v);
  p2q_series_observe(s, 0.05);
  p2q_series_observe(s, 0.1);  /* le is inclusive */
  p2q_series_observe(s, 2);
  p2q_series_observe(s, 100);
  p2q_series_observe(s, NAN);  /* ignored */
  p2q_series_inc(p2q_metric_series1(c, "a\"b\\c\nd"), 3);
  p2q_buf_t out = P2Q_BUF_INIT;
  assert_int_equal(p2q_metrics_render(m, &out), 0);
  const char *want =
      "# HELP up Is it \\\\ up\\nnow\n"
      "# TYPE up gauge\n"
      "up 1\n"
      "# HELP req_seconds latency\n"
      "# TYPE req_seconds histogram\n"
      "req_seconds_bucket{endpoint=\"upsert\",class=\"2xx\",le=\"0.1\"} 2\n"
      "req_seconds_bucket{endpoint=\"upsert\",class=\"2xx\",le=\"1\"} 2\n"
      "req_seconds_bucket{endpoint=\"upsert\",class=\"2xx\",le=\"2.5\"} 3\n"
      "req_seconds_bucket{endpoint=\"upsert\",class=\"2xx\",le=\"+Inf\"} 4\n"
      "req_seconds_sum{endpoint=\"upsert\",class=\"2xx\"} 102.15\n"
      "req_seconds_count{endpoint=\"upsert\",class=\"2xx\"} 4\n"
      "# HELP x_total x\n"
      "# TYPE x_total counter\n"
      "x_total{endpoint=\"a\\\"b\\\\c\\nd\"} 3\n"
      "# HELP empty_total no series yet\n"
      "# TYPE empty_total counter\n";
  assert_string_equal(p2q_buf_str(&out), want);
  assert_true(fabs(p2q_series_sum(s) - 102.15) < 1e-9);
  p2q_buf_free(&out);
  p2q_metrics_free(m);
}

static void test_format(void **st) {
  char b[64];
  p2q_metrics_format_value(0, b, sizeof b);         assert_string_equal(b, "0");
  p2q_metrics_format_value(1e15, b, sizeof b);      assert_string_equal(b, "1000000000000000");
  p2q_metrics_format_value(0.25, b, sizeof b);      assert_string_equal(b, "0.25");
  p2q_metrics_format_value(-3, b, sizeof b);        assert_string_equal(b, "-3");
  p2q_metrics_format_value(1e300, b, sizeof b);     assert_string_equal(b, "1e+300");
  p2q_metrics_format_value(INFINITY, b, sizeof b);  assert_string_equal(b, "+Inf");
  p2q_metrics_format_value(-INFINITY, b, sizeof b); assert_string_equal(b, "-Inf");
  p2q_metrics_format_value(NAN, b, sizeof b);       assert_string_equal(b, "NaN");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_register), cmocka_unit_test(test_series),
      cmocka_unit_test(test_render),   cmocka_unit_test(test_format),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

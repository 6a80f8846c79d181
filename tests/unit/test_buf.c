/*
 * test_buf.c — the byte buffer's integer printer: p2q_buf_put_i64 writes what "%" PRId64 would
 * (the ack's id and delay arrays are built with it: src/outbox.c), appended after what is there.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "pg2qdrant/buf.h"

static void check(int64_t v) {
  char want[32];
  snprintf(want, sizeof want, "x%" PRId64, v);
  p2q_buf_t b = P2Q_BUF_INIT;
  p2q_buf_putc(&b, 'x');
  p2q_buf_put_i64(&b, v);
  assert_int_equal(p2q_buf_error(&b), 0);
  assert_string_equal(p2q_buf_str(&b), want);
  assert_int_equal(b.len, strlen(want));
  p2q_buf_free(&b);
}

static void test_put_i64(void **state) {
  (void)state;
  static const int64_t edge[] = {0, 1, -1, 9, 10, -10, 99, 100, 2147483647, -2147483648LL,
                                 INT64_MAX, INT64_MIN, INT64_MAX - 1, INT64_MIN + 1};
  for (size_t i = 0; i < sizeof edge / sizeof edge[0]; i++) check(edge[i]);
  uint64_t x = 0x9e3779b97f4a7c15ULL;
  for (int i = 0; i < 100000; i++) { /* xorshift: every magnitude, both signs */
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    uint64_t u = x >> (x % 64);
    check((int64_t)((x & 1) ? 0 - u : u)); /* wraps in unsigned: no signed overflow */
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_put_i64)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}

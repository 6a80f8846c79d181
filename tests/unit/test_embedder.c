/* Unit tests for the pure parts of embedder.c: chunk windows and the OpenAI response parser. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "pg2qdrant/embedder.h"
#include "pg2qdrant/errors.h"

static void test_windows(void **state) {
  int st, ln;
  assert_int_equal(p2q_chunk_windows(0, 4, 1), 1);   /* empty text: one [CLS][SEP] window */
  p2q_chunk_window(0, 4, 1, 0, &st, &ln);
  assert_int_equal(ln, 0);
  assert_int_equal(p2q_chunk_windows(4, 4, 1), 1);
  assert_int_equal(p2q_chunk_windows(5, 4, 1), 2);
  assert_int_equal(p2q_chunk_windows(10, 4, 1), 3); /* starts 0, 3, 6 */
  p2q_chunk_window(10, 4, 1, 2, &st, &ln);
  assert_int_equal(st, 6);
  assert_int_equal(ln, 4);
  p2q_chunk_window(11, 4, 1, 3, &st, &ln);           /* the last window may be short */
  assert_int_equal(p2q_chunk_windows(11, 4, 1), 4);
  assert_int_equal(st, 9);
  assert_int_equal(ln, 2);
  /* every token is covered, consecutive windows overlap by exactly `overlap` */
  for (int m = 0; m < 300; m++) {
    int k = p2q_chunk_windows(m, 32, 8), covered = 0;
    for (int j = 0; j < k; j++) {
      p2q_chunk_window(m, 32, 8, j, &st, &ln);
      assert_true(ln <= 32 && st <= covered);
      if (j) assert_int_equal(st, covered - 8);
      covered = st + ln;
    }
    assert_int_equal(covered, m);
  }
  assert_int_equal(p2q_chunk_windows(10, 4, 4), P2Q_EINVAL);
  assert_int_equal(p2q_chunk_windows(10, 0, 0), P2Q_EINVAL);
}

static void test_openai_parse(void **state) {
  float v[4];
  char msg[128];
  const char *ok = "{\"object\":\"list\",\"data\":[{\"index\":1,\"embedding\":[3,4]},{\"index\":0,\"embedding\":[1,2]}]}";
  assert_int_equal(p2q_openai_parse(ok, strlen(ok), 2, 2, v, msg, sizeof msg), 0);
  assert_true(v[0] == 1 && v[1] == 2 && v[2] == 3 && v[3] == 4); /* placed by index */
  const char *dim = "{\"data\":[{\"index\":0,\"embedding\":[1,2,3]}]}";
  assert_int_equal(p2q_openai_parse(dim, strlen(dim), 1, 2, v, msg, sizeof msg), P2Q_EEMBED);
  assert_non_null(strstr(msg, "dimension 3, expected 2"));
  const char *few = "{\"data\":[{\"index\":0,\"embedding\":[1,2]}]}";
  assert_int_equal(p2q_openai_parse(few, strlen(few), 2, 2, v, msg, sizeof msg), P2Q_EEMBED);
  assert_non_null(strstr(msg, "1 vectors for 2 texts"));
  const char *dup = "{\"data\":[{\"index\":0,\"embedding\":[1,2]},{\"index\":0,\"embedding\":[1,2]}]}";
  assert_int_equal(p2q_openai_parse(dup, strlen(dup), 2, 2, v, msg, sizeof msg), P2Q_EEMBED);
  const char *str = "{\"data\":[{\"index\":0,\"embedding\":[1,\"x\"]}]}";
  assert_int_equal(p2q_openai_parse(str, strlen(str), 1, 2, v, msg, sizeof msg), P2Q_EEMBED);
  assert_int_equal(p2q_openai_parse("nope", 4, 1, 2, v, msg, sizeof msg), P2Q_EBADJSON);
  assert_int_equal(p2q_openai_parse("{}", 2, 1, 2, v, msg, sizeof msg), P2Q_EBADJSON);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_windows), cmocka_unit_test(test_openai_parse)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}

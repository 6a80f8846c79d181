/* Unit tests for template.c: placeholders, escapes, column lists, blanks, bad input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "pg2qdrant/errors.h"
#include "pg2qdrant/template.h"

static const char *snap = "{\"title\": \"Caf\\u00e9 \\\"x\\\"\", \"body\": \"b\\nody\", \"n\": 42,"
                          " \"tags\": [\"a\"], \"empty\": \"\", \"none\": null}";

static void check(const char *tmpl, int want_rc, const char *want) {
  p2q_buf_t b = P2Q_BUF_INIT;
  int rc = p2q_template_render(tmpl, snap, strlen(snap), &b);
  assert_int_equal(rc, want_rc);
  if (want) assert_string_equal(p2q_buf_str(&b), want);
  p2q_buf_free(&b);
}

static void test_template(void **state) {
  check("{title}\\n{body}", 1, "Caf\xc3\xa9 \"x\"\nb\nody");
  check("n={n} tags={tags} none=[{none}] {{lit}}", 1, "n=42 tags=[\"a\"] none=[] {lit}");
  check("{missing}", 0, "");
  check("{none}{empty}  \\t", 0, NULL);
  check("{unclosed", P2Q_EINVAL, NULL);
}

static void test_list(void **state) {
  check("title, body", 1, "Caf\xc3\xa9 \"x\"\nb\nody");
  check("empty, n, none, body", 1, "42\nb\nody");
  check("empty, none", 0, "");
}

static void test_bad_snapshot(void **state) {
  p2q_buf_t b = P2Q_BUF_INIT;
  assert_int_equal(p2q_template_render("{a}", "[1]", 3, &b), P2Q_EBADJSON);
  assert_int_equal(p2q_template_render("{a}", "{\"a\": ", 6, &b), P2Q_EBADJSON);
  p2q_buf_free(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_template), cmocka_unit_test(test_list),
                                     cmocka_unit_test(test_bad_snapshot)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test_outbox_sql.c — the outbox SQL text: schema substitution (quoted identifier, string
 * literal), dollar-quote tags that cannot collide with any schema name (issue 16), the functions
 * hash, and the split between table migrations and the functions script.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "pg2qdrant/commands.h"

extern const char p2q_sql_functions[];
extern const char *const p2q_sql_migrations[];
extern const int p2q_sql_n_migrations;

static void check(const char *tmpl, const char *schema, const char *want) {
  char *got = p2q_outbox_sql(tmpl, schema);
  assert_non_null(got);
  assert_string_equal(got, want);
  free(got);
}

static void test_substitution(void **state) {
  (void)state;
  static const char t[] = "DO $p2q$ BEGIN PERFORM @SCHEMA@.f(@SCHEMA_NAME@); END $p2q$;";
  check(t, "public", "DO $p2q$ BEGIN PERFORM \"public\".f('public'); END $p2q$;");
  check(t, "it's \"q\"", "DO $p2q$ BEGIN PERFORM \"it's \"\"q\"\"\".f('it''s \"q\"'); END $p2q$;");
  check(t, "back\\slash", "DO $p2q$ BEGIN PERFORM \"back\\slash\".f(E'back\\\\slash'); END $p2q$;");
  check(t, "sp ace \xc3\xbc", "DO $p2q$ BEGIN PERFORM \"sp ace \xc3\xbc\".f('sp ace \xc3\xbc'); END $p2q$;");
  /* no tag in the template: nothing to rename, whatever the name */
  check("SELECT 1 FROM @SCHEMA@.t", "we$p2q$ird", "SELECT 1 FROM \"we$p2q$ird\".t");
}

static void test_tag_never_collides(void **state) {
  (void)state;
  static const char t[] = "DO $p2q$ BEGIN PERFORM @SCHEMA@.f(@SCHEMA_NAME@); END $p2q$;";
  check(t, "we$p2q$ird", "DO $p2q_1$ BEGIN PERFORM \"we$p2q$ird\".f('we$p2q$ird'); END $p2q_1$;");
  check(t, "a$p2q_1$b$p2q$", "DO $p2q_2$ BEGIN PERFORM \"a$p2q_1$b$p2q$\".f('a$p2q_1$b$p2q$'); END $p2q_2$;");
  /* halves of a tag do not make one: the tag stays */
  check(t, "$p2q", "DO $p2q$ BEGIN PERFORM \"$p2q\".f('$p2q'); END $p2q$;");
  check(t, "p2q$", "DO $p2q$ BEGIN PERFORM \"p2q$\".f('p2q$'); END $p2q$;");
  /* a template that itself contains the first candidates moves on */
  check("$p2q$ x $p2q_1$ @SCHEMA@ $p2q$", "s", "$p2q$ x $p2q_1$ \"s\" $p2q$");
  check("$p2q$ x $p2q_1$ @SCHEMA@ $p2q$", "we$p2q$ird", "$p2q_2$ x $p2q_1$ \"we$p2q$ird\" $p2q_2$");
}

/* Occurrences, overlapping included. */
static size_t count(const char *s, const char *needle) {
  size_t n = 0;
  for (const char *p = s; (p = strstr(p, needle)) != NULL; p++) n++;
  return n;
}

/* On the real scripts: the tag chosen occurs exactly where the template has one. */
static void test_real_scripts_any_name(void **state) {
  (void)state;
  const char *names[] = {"public", "we$p2q$ird", "$p2q$", "$p2q$$p2q_1$$p2q_2$", "x\"$p2q$\"y",
                         "it's", "a\\b", "\xe6\x97\xa5\xe6\x9c\xac $p2q$", NULL};
  for (int i = 0; names[i]; i++) {
    for (int m = -1; m < p2q_sql_n_migrations; m++) {
      const char *tmpl = m < 0 ? p2q_sql_functions : p2q_sql_migrations[m];
      char *got = p2q_outbox_sql(tmpl, names[i]);
      assert_non_null(got);
      assert_null(strstr(got, "@SCHEMA"));
      size_t want = count(tmpl, "$p2q$");
      if (want) {
        /* the tag is what follows the first "AS " or "DO " quote opener: find it by candidates */
        int found = 0;
        for (unsigned k = 0; k < 16 && !found; k++) {
          char tag[32];
          if (k) snprintf(tag, sizeof tag, "$p2q_%u$", k);
          else snprintf(tag, sizeof tag, "$p2q$");
          if (count(got, tag) == want && !strstr(names[i], tag)) found = 1;
        }
        assert_true(found);
      }
      free(got);
    }
  }
}

static void test_hash_and_split(void **state) {
  (void)state;
  char a[41], b[41];
  p2q_outbox_functions_hash(a);
  p2q_outbox_functions_hash(b);
  assert_int_equal(strlen(a), 40);
  assert_string_equal(a, b);
  assert_int_equal(strspn(a, "0123456789abcdef"), 40);
  assert_int_equal(p2q_outbox_schema_version(), p2q_sql_n_migrations);
  assert_true(p2q_sql_n_migrations >= 2);
  assert_null(p2q_sql_migrations[p2q_sql_n_migrations]);
  /* functions live in the script, tables in migrations */
  for (int m = 0; m < p2q_sql_n_migrations; m++) assert_null(strstr(p2q_sql_migrations[m], "FUNCTION"));
  assert_null(strstr(p2q_sql_functions, "CREATE TABLE"));
  assert_null(strstr(p2q_sql_functions, "ALTER TABLE"));
  assert_null(strstr(p2q_sql_functions, "CREATE INDEX"));
  assert_non_null(strstr(p2q_sql_functions, "sync_outbox_claim"));
  assert_non_null(strstr(p2q_sql_migrations[0], "CREATE TABLE IF NOT EXISTS @SCHEMA@.sync_outbox ("));
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_substitution), cmocka_unit_test(test_tag_never_collides),
                                     cmocka_unit_test(test_real_scripts_any_name),
                                     cmocka_unit_test(test_hash_and_split)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}

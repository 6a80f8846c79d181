/*
 * test_redact.c — secret masking: URLs (userinfo, query parameters), keyword/value and URI
 * conninfos (spaces, quoting, sslpassword), libpq conninfo error texts, the registry of secret
 * values (raw and percent-decoded) and in-place masking with a capacity limit; collection names.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <stdio.h>
#include <unistd.h>

#include "pg2qdrant/log.h"
#include "pg2qdrant/qdrant_name.h"
#include "pg2qdrant/redact.h"

static void check(char *got, const char *want) {
  assert_non_null(got);
  assert_string_equal(got, want);
  free(got);
}

static void test_url(void **st) {
  (void)st;
  check(p2q_redact_url("http://admin:S3CRETq@qdrant:6333"), "http://admin:*****@qdrant:6333");
  check(p2q_redact_url("https://qdrant:6333/"), "https://qdrant:6333/");
  check(p2q_redact_url("http://user@host/"), "http://user@host/");
  /* a raw '@' or '/' in the password: everything up to the last '@' is masked */
  check(p2q_redact_url("http://u:p@ss/w@host:1/x"), "http://u:*****@host:1/x");
  check(p2q_redact_url("http://h/v1?api-key=K3Y&x=1&token=T0K#frag"),
        "http://h/v1?api-key=*****&x=1&token=*****#frag");
  check(p2q_redact_url("http://h/?API_KEY=a&sslpassword=b&keep=c"),
        "http://h/?API_KEY=*****&sslpassword=*****&keep=c");
  check(p2q_redact_url(""), "");
  check(p2q_redact_url(NULL), "");
}

static void test_conninfo(void **st) {
  (void)st;
  check(p2q_redact_conninfo("host=db password=S3CRET user=app"), "host=db password=***** user=app");
  check(p2q_redact_conninfo("password = 'a b\\' c' dbname=x"), "password = ***** dbname=x");
  check(p2q_redact_conninfo("sslpassword=k host=h"), "sslpassword=***** host=h");
  /* a URI with a space (libpq accepts it) is still a URI */
  check(p2q_redact_conninfo("postgresql://app:S3CRETpw@h/db?application_name=a b"),
        "postgresql://app:*****@h/db?application_name=a b");
  check(p2q_redact_conninfo("postgres://h/db?password=S3CRET&sslmode=require"),
        "postgres://h/db?password=*****&sslmode=require");
  check(p2q_redact_conninfo(NULL), "");
}

static void test_libpq_error(void **st) {
  (void)st;
  char m[] = "invalid percent-encoded token: \"S3CR%zzETpw\"";
  p2q_redact_libpq_error(m);
  assert_string_equal(m, "invalid percent-encoded token: \"...\"");
  char m2[] = "missing \"=\" after \"S3CRET\" in connection info string";
  p2q_redact_libpq_error(m2);
  assert_string_equal(m2, "missing \"=\" after \"...\" in connection info string");
  char m3[] = "looking for matching \"]\" in URI: \"postgresql://a:S3CRET@[::1/db\"";
  p2q_redact_libpq_error(m3);
  assert_string_equal(m3, "looking for matching \"]\" in URI: \"...\"");
}

static void test_registry(void **st) {
  (void)st;
  p2q_redact_reset();
  p2q_redact_register("abc"); /* too short: ignored */
  p2q_redact_register_url("http://u:p%40ssw0rd@h/?api-key=K3YK3Y");
  p2q_redact_register_conninfo("host=h password='pg secret'");
  char buf[256] = "a p%40ssw0rd b p@ssw0rd c K3YK3Y d pg secret e abc";
  p2q_redact_text(buf, sizeof buf);
  assert_string_equal(buf, "a ***** b ***** c ***** d ***** e abc");
  /* capacity: the text is cut, never overrun */
  char small[12] = "xx K3YK3Y y";
  p2q_redact_text(small, sizeof small);
  assert_string_equal(small, "xx ***** y");
  char tiny[8] = "xxxxK3Y";
  p2q_redact_register("xxK3Y");
  p2q_redact_text(tiny, sizeof tiny);
  assert_true(strlen(tiny) < sizeof tiny);
  assert_null(strstr(tiny, "K3Y"));
  p2q_redact_reset();
  char none[] = "K3YK3Y";
  p2q_redact_text(none, sizeof none);
  assert_string_equal(none, "K3YK3Y");
}

/* A secret holding a quote, a backslash or a tab reaches the logger already quoted by
   p2q_log_q ("pa\"ss..."): the quoted form is masked too, in logfmt and JSON lines. */
static void test_quoted_secret_in_log(void **st) {
  (void)st;
  static const char secret[] = "pa\"ss\\wo\trd9";
  p2q_redact_reset();
  p2q_redact_register_conninfo("host=h password='pa\\\"ss\\\\wo\trd9'");
  for (int json = 0; json < 2; json++) {
    FILE *f = tmpfile();
    char q[256], out[4096];
    assert_non_null(f);
    p2q_log_configure(P2Q_LOG_INFO, json ? P2Q_LOG_JSON : P2Q_LOG_LOGFMT, fileno(f));
    P2Q_WARN("pg_connect_failed", "err=%s", p2q_log_q(q, sizeof q, "FATAL: password \"pa\"ss\\wo\trd9\" rejected"));
    p2q_log_configure(P2Q_LOG_INFO, P2Q_LOG_LOGFMT, 2);
    rewind(f);
    size_t n = fread(out, 1, sizeof out - 1, f);
    out[n] = 0;
    fclose(f);
    assert_non_null(strstr(out, "*****"));
    assert_null(strstr(out, "ss\\\\wo"));  /* logfmt form: ss\\wo */
    assert_null(strstr(out, "wo\\trd9"));    /* the tab as p2q_log_q writes it */
    assert_null(strstr(out, secret));
  }
  p2q_redact_reset();
}

static void test_collection_names(void **st) {
  (void)st;
  char why[160];
  assert_null(p2q_qdrant_name_check("docs", why, sizeof why));
  assert_null(p2q_qdrant_name_check("a.b-c_d", why, sizeof why));
  assert_null(p2q_qdrant_name_check("dokumente_ü", why, sizeof why));
  assert_non_null(p2q_qdrant_name_check("", why, sizeof why));
  assert_non_null(p2q_qdrant_name_check(".", why, sizeof why));
  assert_non_null(p2q_qdrant_name_check("..", why, sizeof why));
  assert_non_null(p2q_qdrant_name_check("a:b", why, sizeof why));
  assert_string_equal(why, "collection name cannot contain \":\" char");
  assert_non_null(p2q_qdrant_name_check("a/b", why, sizeof why));
  assert_non_null(p2q_qdrant_name_check("a\tb", why, sizeof why));
  char longname[300];
  memset(longname, 'n', sizeof longname - 1);
  longname[sizeof longname - 1] = 0;
  assert_non_null(p2q_qdrant_name_check(longname, why, sizeof why));
  longname[255] = 0;
  assert_null(p2q_qdrant_name_check(longname, why, sizeof why));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_url),
      cmocka_unit_test(test_conninfo),
      cmocka_unit_test(test_libpq_error),
      cmocka_unit_test(test_registry),
      cmocka_unit_test(test_quoted_secret_in_log),
      cmocka_unit_test(test_collection_names),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

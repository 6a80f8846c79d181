/*
 * test_http_parse.c — the status endpoint's request parser: valid requests, keep-alive rules,
 * partial input fed byte by byte, pipelined requests, garbage, oversized headers and bodies,
 * unsupported versions and transfer codings.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "pg2qdrant/errors.h"
#include "pg2qdrant/http_parse.h"

#define HMAX 8192
#define BMAX 1024

static long parse(const char *s, p2q_http_req_t *r) { return p2q_http_parse(s, strlen(s), HMAX, BMAX, r); }

static int status_of(const char *s) {
  p2q_http_req_t r;
  long n = parse(s, &r);
  return n == P2Q_EINVAL ? r.status : n > 0 ? 200 : 0;
}

static void test_simple(void **st) {
  p2q_http_req_t r;
  const char *s = "GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\nUser-Agent: t\r\n\r\n";
  assert_int_equal(parse(s, &r), (long)strlen(s));
  assert_string_equal(r.method, "GET");
  assert_string_equal(r.path, "/metrics");
  assert_int_equal(r.minor, 1);
  assert_int_equal(r.keep_alive, 1);
  /* bare LF line ends, HTTP/1.0 without Host, keep-alive opt-in */
  assert_true(parse("HEAD /healthz HTTP/1.0\n\n", &r) > 0);
  assert_string_equal(r.method, "HEAD");
  assert_int_equal(r.keep_alive, 0);
  assert_true(parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", &r) > 0);
  assert_int_equal(r.keep_alive, 1);
  assert_true(parse("GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, close\r\n\r\n", &r) > 0);
  assert_int_equal(r.keep_alive, 0);
  /* leading empty lines are skipped */
  assert_true(parse("\r\n\r\nGET /a HTTP/1.1\r\nHost: a\r\n\r\n", &r) > 0);
  assert_string_equal(r.path, "/a");
}

static void test_partial_byte_by_byte(void **st) {
  const char *s = "GET /status HTTP/1.1\r\nHost: localhost:9187\r\nContent-Length: 5\r\n\r\nhello";
  size_t n = strlen(s);
  p2q_http_req_t r;
  for (size_t i = 0; i < n; i++) assert_int_equal(p2q_http_parse(s, i, HMAX, BMAX, &r), 0);
  assert_int_equal(p2q_http_parse(s, n, HMAX, BMAX, &r), (long)n);
  assert_string_equal(r.path, "/status");
  assert_int_equal(r.content_length, 5);
}

static void test_pipelined(void **st) {
  const char *s = "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n"
                  "GET /readyz HTTP/1.1\r\nHost: a\r\n\r\n"
                  "GET /status HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\nGET /x";
  const char *want[] = {"/healthz", "/readyz", "/status"};
  size_t off = 0, len = strlen(s);
  p2q_http_req_t r;
  for (int i = 0; i < 3; i++) {
    long n = p2q_http_parse(s + off, len - off, HMAX, BMAX, &r);
    assert_true(n > 0);
    assert_string_equal(r.path, want[i]);
    off += (size_t)n;
  }
  assert_int_equal(r.keep_alive, 0);
  assert_int_equal(p2q_http_parse(s + off, len - off, HMAX, BMAX, &r), 0); /* partial 4th */
}

static void test_garbage(void **st) {
  assert_int_equal(status_of("garbage\r\n\r\n"), 400);
  assert_int_equal(status_of("\x16\x03\x01\x02\x00"), 400);          /* a TLS hello: at once */
  assert_int_equal(status_of("GE\x01T / HTTP/1.1\r\n"), 400);
  assert_int_equal(status_of("GET  / HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
  assert_int_equal(status_of("GET / HTTP/1.1 \r\nHost: a\r\n\r\n"), 400);
  assert_int_equal(status_of("GET http://x/ HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
  assert_int_equal(status_of("GET / FTP/1.1\r\nHost: a\r\n\r\n"), 400);
  assert_int_equal(status_of("GET / HTTP/2.0\r\nHost: a\r\n\r\n"), 505);
  assert_int_equal(status_of("GET / HTTP/1.1\r\n\r\n"), 400);                 /* no Host */
  assert_int_equal(status_of("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), 400);
  assert_int_equal(status_of("GET / HTTP/1.1\r\nHost: a\r\nBad Header: x\r\n\r\n"), 400);
  assert_int_equal(status_of("GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n"), 400);
  assert_int_equal(status_of("GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n"), 400);
  assert_int_equal(status_of("GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n"), 400);
  assert_int_equal(status_of("GET / HTTP/1.1\r\nHost: a\r\nX: a\x01" "b\r\n\r\n"), 400);
  assert_int_equal(status_of("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1x\r\n\r\n"), 400);
  assert_int_equal(status_of("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"), 400);
  assert_int_equal(status_of("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n"), 400);
  assert_int_equal(status_of("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"), 501);
  /* random bytes never crash and never claim more than they were given */
  srand(7);
  char b[512];
  for (int i = 0; i < 20000; i++) {
    size_t n = (size_t)(rand() % (int)sizeof b);
    for (size_t j = 0; j < n; j++) b[j] = (char)(i % 3 ? rand() : " \r\nGET/HTTP1.:Host"[rand() % 18]);
    p2q_http_req_t r;
    long got = p2q_http_parse(b, n, 256, 16, &r);
    assert_true(got == P2Q_EINVAL || (got >= 0 && (size_t)got <= n));
    if (got == P2Q_EINVAL) assert_true(r.status >= 400 && r.status <= 505);
  }
}

static void test_oversized(void **st) {
  size_t n = HMAX + 100;
  char *s = malloc(n + 1);
  assert_non_null(s);
  strcpy(s, "GET / HTTP/1.1\r\nHost: a\r\nX-Big: ");
  for (size_t i = strlen(s); i < n; i++) s[i] = 'a';
  s[n] = 0;
  p2q_http_req_t r;
  assert_int_equal(p2q_http_parse(s, HMAX - 1, HMAX, BMAX, &r), 0); /* still might end */
  assert_int_equal(p2q_http_parse(s, HMAX, HMAX, BMAX, &r), P2Q_EINVAL);
  assert_int_equal(r.status, 413);
  assert_int_equal(p2q_http_parse(s, n, HMAX, BMAX, &r), P2Q_EINVAL);
  assert_int_equal(r.status, 413);
  /* a long target */
  memset(s, 'a', n);
  memcpy(s, "GET /", 5);
  strcpy(s + 600, " HTTP/1.1\r\nHost: a\r\n\r\n");
  assert_int_equal(p2q_http_parse(s, strlen(s), HMAX, BMAX, &r), P2Q_EINVAL);
  assert_int_equal(r.status, 414);
  free(s);
  /* a body above the limit is refused before it arrives */
  assert_int_equal(status_of("PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 1025\r\n\r\n"), 413);
}

static void test_reason(void **st) {
  assert_string_equal(p2q_http_reason(404), "Not Found");
  assert_string_equal(p2q_http_reason(503), "Service Unavailable");
  assert_string_equal(p2q_http_reason(299), "Unknown");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_simple),        cmocka_unit_test(test_partial_byte_by_byte),
      cmocka_unit_test(test_pipelined),     cmocka_unit_test(test_garbage),
      cmocka_unit_test(test_oversized),     cmocka_unit_test(test_reason),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

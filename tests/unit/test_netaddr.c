/*
 * test_netaddr.c — `[http] listen` parsing (netaddr.c), shared by the config validator, the
 * daemon's bind and `check`: every form the README documents is accepted with the right family,
 * address and port; host names, missing or out-of-range ports and malformed brackets are refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "pg2qdrant/errors.h"
#include "pg2qdrant/netaddr.h"

static void ok(const char *s, int family, const char *ip, int port) {
  struct sockaddr_storage ss;
  char buf[64];
  assert_int_equal(p2q_listen_parse(s, &ss), 0);
  assert_int_equal(ss.ss_family, family);
  if (family == AF_INET) {
    struct sockaddr_in *a = (struct sockaddr_in *)&ss;
    assert_string_equal(inet_ntop(AF_INET, &a->sin_addr, buf, sizeof buf), ip);
    assert_int_equal(ntohs(a->sin_port), port);
  } else {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
    assert_string_equal(inet_ntop(AF_INET6, &a->sin6_addr, buf, sizeof buf), ip);
    assert_int_equal(ntohs(a->sin6_port), port);
  }
  assert_int_equal(p2q_listen_parse(s, NULL), 0); /* validation only */
}

static void test_accepted(void **st) {
  (void)st;
  ok("127.0.0.1:9187", AF_INET, "127.0.0.1", 9187);
  ok("0.0.0.0:9187", AF_INET, "0.0.0.0", 9187);
  ok("localhost:80", AF_INET, "127.0.0.1", 80);
  ok("[::1]:9187", AF_INET6, "::1", 9187);
  ok("[::]:1", AF_INET6, "::", 1);
  ok("10.1.2.3:65535", AF_INET, "10.1.2.3", 65535);
}

static void test_refused(void **st) {
  (void)st;
  static const char *const bad[] = {
      "metrics-host.local:80", "example.com:9187", "9187", ":9187", "127.0.0.1", "127.0.0.1:",
      "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:99999", "127.0.0.1:80x", "127.0.0.1:-1",
      "127.0.0.1: 80", "::1:80", "[::1]", "[::1]9187", "[]:80", "[127.0.0.1]:80", "[::1:80",
      "256.0.0.1:80", "localhost6:80", "", NULL};
  for (int i = 0; bad[i]; i++) {
    struct sockaddr_storage ss;
    if (p2q_listen_parse(bad[i], &ss) != P2Q_EINVAL) fail_msg("accepted '%s'", bad[i]);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_accepted),
      cmocka_unit_test(test_refused),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

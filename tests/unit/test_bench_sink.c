/*
 * test_bench_sink.c — the pure parts of the bench's null sink (bench_sink_parse.c): point ids
 * (integers, UUIDs, what Qdrant refuses), the id set (put/get/del across growth, backward-shift
 * deletion keeping every probe run reachable, the id whose mix is 0), routing of every path the
 * daemon and the bench use, and applying upsert/delete/batch bodies (vectors skipped, `seq` kept,
 * filters and payload operations changing nothing, a malformed body changing nothing), and the
 * server itself (a forked sink): pipelined requests in one write answered in order, a body split
 * across writes, Qdrant's answer shapes, Connection: close.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "pg2qdrant/bench_sink.h"
#include "pg2qdrant/errors.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static p2q_span_t S(const char *s) { return (p2q_span_t){s, strlen(s)}; }

static void test_point_key(void **st) {
  (void)st;
  uint64_t a, b;
  assert_int_equal(p2q_sink_point_key(S("0"), &a), 0);
  assert_int_equal(a, 0);
  assert_int_equal(p2q_sink_point_key(S("18446744073709551615"), &a), 0);
  assert_true(a == UINT64_MAX);
  assert_int_equal(p2q_sink_point_key(S("18446744073709551616"), &a), P2Q_EINVAL);
  assert_int_equal(p2q_sink_point_key(S("-1"), &a), P2Q_EINVAL);
  assert_int_equal(p2q_sink_point_key(S("01"), &a), P2Q_EINVAL);
  assert_int_equal(p2q_sink_point_key(S("1.5"), &a), P2Q_EINVAL);
  assert_int_equal(p2q_sink_point_key(S("\"not-a-uuid\""), &a), P2Q_EINVAL);
  assert_int_equal(p2q_sink_point_key(S("\"d3e2b8f6-db1f-5e0c-af13-39be5f5a8e2f\""), &a), 0);
  assert_int_equal(p2q_sink_point_key(S("\"D3E2B8F6DB1F5E0CAF1339BE5F5A8E2F\""), &b), 0);
  assert_true(a == b); /* simple and hyphenated forms, any case: one point */
  assert_int_equal(p2q_sink_point_key(S("\"af1339be-5f5a-8e2f-d3e2-b8f6db1f5e0c\""), &b), 0);
  assert_true(a != b); /* halves swapped: another point */
  assert_int_equal(p2q_sink_point_key(S("\"d3e2b8f6+db1f-5e0c-af13-39be5f5a8e2f\""), &a), P2Q_EINVAL);
}

static void test_ids_set(void **st) {
  (void)st;
  p2q_sink_ids_t m;
  memset(&m, 0, sizeof m);
  int64_t seq;
  assert_int_equal(p2q_sink_ids_get(&m, 7, &seq), 0);
  assert_int_equal(p2q_sink_ids_del(&m, 7), 0);
  for (uint64_t i = 0; i < 5000; i++) assert_int_equal(p2q_sink_ids_put(&m, i * 3, (int64_t)i), 1);
  assert_int_equal(p2q_sink_ids_put(&m, 3, 99), 0); /* again: seq updated, not counted */
  assert_int_equal(p2q_sink_ids_count(&m), 5000);
  assert_int_equal(p2q_sink_ids_get(&m, 3, &seq), 1);
  assert_int_equal(seq, 99);
  assert_int_equal(p2q_sink_ids_get(&m, 4, &seq), 0);
  /* delete every other one: the rest must stay reachable (backward shift keeps probe runs whole) */
  for (uint64_t i = 0; i < 5000; i += 2) assert_int_equal(p2q_sink_ids_del(&m, i * 3), 1);
  assert_int_equal(p2q_sink_ids_count(&m), 2500);
  for (uint64_t i = 0; i < 5000; i++) {
    int present = p2q_sink_ids_get(&m, i * 3, &seq);
    assert_int_equal(present, (int)(i % 2));
    if (present && i != 1) assert_int_equal(seq, (int64_t)i);
  }
  assert_int_equal(p2q_sink_ids_del(&m, 0), 0);
  p2q_sink_ids_free(&m);
  assert_int_equal(p2q_sink_ids_count(&m), 0);
}

/* the raw id whose mixed key is 0 (the inverse of splitmix64's finaliser at 0 is 0) */
static void test_ids_zero_key(void **st) {
  (void)st;
  p2q_sink_ids_t m;
  memset(&m, 0, sizeof m);
  int64_t seq;
  assert_int_equal(p2q_sink_ids_put(&m, 0, 5), 1);
  assert_int_equal(p2q_sink_ids_put(&m, 0, 6), 0);
  assert_int_equal(p2q_sink_ids_get(&m, 0, &seq), 1);
  assert_int_equal(seq, 6);
  assert_int_equal(p2q_sink_ids_count(&m), 1);
  assert_int_equal(p2q_sink_ids_del(&m, 0), 1);
  assert_int_equal(p2q_sink_ids_count(&m), 0);
  p2q_sink_ids_free(&m);
}

static void test_route(void **st) {
  (void)st;
  char c[32];
  assert_int_equal(p2q_sink_route("GET", "/readyz", c, sizeof c), P2Q_SINK_R_READYZ);
  assert_int_equal(p2q_sink_route("GET", "/healthz", c, sizeof c), P2Q_SINK_R_HEALTHZ);
  assert_int_equal(p2q_sink_route("GET", "/cluster", c, sizeof c), P2Q_SINK_R_CLUSTER);
  assert_int_equal(p2q_sink_route("GET", "/collections", c, sizeof c), P2Q_SINK_R_LIST);
  assert_int_equal(p2q_sink_route("PUT", "/collections/a%20b", c, sizeof c), P2Q_SINK_R_CREATE);
  assert_string_equal(c, "a b");
  assert_int_equal(p2q_sink_route("GET", "/collections/x", c, sizeof c), P2Q_SINK_R_INFO);
  assert_string_equal(c, "x");
  assert_int_equal(p2q_sink_route("DELETE", "/collections/x", c, sizeof c), P2Q_SINK_R_DROP);
  assert_int_equal(p2q_sink_route("PATCH", "/collections/x", c, sizeof c), P2Q_SINK_R_UPDATE);
  assert_int_equal(p2q_sink_route("GET", "/collections/x/exists", c, sizeof c), P2Q_SINK_R_EXISTS);
  assert_int_equal(p2q_sink_route("PUT", "/collections/x/index", c, sizeof c), P2Q_SINK_R_INDEX);
  assert_int_equal(p2q_sink_route("DELETE", "/collections/x/index/_pk", c, sizeof c), P2Q_SINK_R_INDEX_DROP);
  assert_int_equal(p2q_sink_route("PUT", "/collections/x/points", c, sizeof c), P2Q_SINK_R_UPSERT);
  assert_int_equal(p2q_sink_route("POST", "/collections/x/points", c, sizeof c), P2Q_SINK_R_RETRIEVE);
  assert_int_equal(p2q_sink_route("POST", "/collections/x/points/delete", c, sizeof c), P2Q_SINK_R_DELETE);
  assert_int_equal(p2q_sink_route("POST", "/collections/x/points/batch", c, sizeof c), P2Q_SINK_R_BATCH);
  assert_int_equal(p2q_sink_route("POST", "/collections/x/points/count", c, sizeof c), P2Q_SINK_R_COUNT);
  assert_int_equal(p2q_sink_route("POST", "/collections/x/points/scroll", c, sizeof c), P2Q_SINK_R_SCROLL);
  assert_int_equal(p2q_sink_route("PUT", "/collections/x/points/payload", c, sizeof c), P2Q_SINK_R_PAYLOAD);
  assert_int_equal(p2q_sink_route("POST", "/collections/x/points/payload", c, sizeof c), P2Q_SINK_R_PAYLOAD);
  /* what Qdrant has no route for: 404 */
  assert_int_equal(p2q_sink_route("GET", "/no/such/route", c, sizeof c), P2Q_SINK_R_UNKNOWN);
  assert_int_equal(p2q_sink_route("POST", "/collections/x", c, sizeof c), P2Q_SINK_R_UNKNOWN);
  assert_int_equal(p2q_sink_route("PATCH", "/collections/x/points", c, sizeof c), P2Q_SINK_R_UNKNOWN);
  assert_int_equal(p2q_sink_route("DELETE", "/collections/x/points", c, sizeof c), P2Q_SINK_R_UNKNOWN);
  assert_int_equal(p2q_sink_route("GET", "/collections//points", c, sizeof c), P2Q_SINK_R_UNKNOWN);
  assert_int_equal(p2q_sink_route("GET", "/collections/%zz", c, sizeof c), P2Q_SINK_R_UNKNOWN);
  assert_int_equal(p2q_sink_route("GET", "/collections/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", c, sizeof c),
                   P2Q_SINK_R_UNKNOWN); /* longer than the buffer */
}

static void test_apply_upsert_delete(void **st) {
  (void)st;
  p2q_sink_ids_t m;
  memset(&m, 0, sizeof m);
  int64_t seq;
  /* the daemon's shape: id, vector, payload with seq (and strings holding brackets) */
  const char *up = "{\"points\":[{\"id\":1,\"vector\":[0.5,-1e-3,2],\"payload\":{\"pad\":\"]]\\\"[\",\"seq\":41,\"_hash\":\"ab\"}},"
                   " {\"id\":\"d3e2b8f6-db1f-5e0c-af13-39be5f5a8e2f\",\"vector\":{\"\":[1,2],\"kw\":{\"indices\":[1],\"values\":[0.5]}},"
                   "\"payload\":{\"x\":{\"seq\":3}}} ] }";
  assert_int_equal(p2q_sink_apply(&m, P2Q_SINK_R_UPSERT, up, strlen(up)), 2);
  assert_int_equal(p2q_sink_ids_count(&m), 2);
  assert_int_equal(p2q_sink_ids_get(&m, 1, &seq), 1);
  assert_int_equal(seq, 41);
  uint64_t u;
  assert_int_equal(p2q_sink_point_key(S("\"d3e2b8f6-db1f-5e0c-af13-39be5f5a8e2f\""), &u), 0);
  assert_int_equal(p2q_sink_ids_get(&m, u, &seq), 1);
  assert_true(seq == P2Q_SINK_NO_SEQ); /* only a top-level seq counts */
  /* the column form */
  const char *cols = "{\"batch\":{\"ids\":[2,3],\"vectors\":[[1],[2]],\"payloads\":[{\"seq\":7},{}]}}";
  assert_int_equal(p2q_sink_apply(&m, P2Q_SINK_R_UPSERT, cols, strlen(cols)), 2);
  assert_int_equal(p2q_sink_ids_get(&m, 2, &seq), 1);
  assert_int_equal(seq, 7);
  assert_int_equal(p2q_sink_ids_count(&m), 4);
  /* delete by ids (an absent one is fine, as in Qdrant), by filter: nothing */
  const char *del = "{\"points\":[1,999]}";
  assert_int_equal(p2q_sink_apply(&m, P2Q_SINK_R_DELETE, del, strlen(del)), 2);
  assert_int_equal(p2q_sink_ids_count(&m), 3);
  const char *flt = "{\"filter\":{\"must\":[{\"key\":\"_pk\",\"match\":{\"any\":[\"1\"]}}]}}";
  assert_int_equal(p2q_sink_apply(&m, P2Q_SINK_R_DELETE, flt, strlen(flt)), 0);
  assert_int_equal(p2q_sink_ids_count(&m), 3);
  /* refused bodies change nothing: a bad id after a good one, trailing garbage, no points */
  const char *bad[] = {"{\"points\":[{\"id\":5,\"vector\":[1]},{\"id\":-1,\"vector\":[1]}]}",
                       "{\"points\":[{\"id\":6,\"vector\":[1]}]} x", "{\"points\":[{\"vector\":[1]}]}", "{}",
                       "{\"points\":[{\"id\":7,\"vector\":[1,}]}", "{\"points\":[{\"id\":8", "[]"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    assert_int_equal(p2q_sink_apply(&m, P2Q_SINK_R_UPSERT, bad[i], strlen(bad[i])), P2Q_EBADJSON);
  const char *baddel = "{\"points\":[2,\"nope\"]}";
  assert_int_equal(p2q_sink_apply(&m, P2Q_SINK_R_DELETE, baddel, strlen(baddel)), P2Q_EBADJSON);
  assert_int_equal(p2q_sink_ids_count(&m), 3);
  assert_int_equal(p2q_sink_ids_get(&m, 5, NULL), 0);
  p2q_sink_ids_free(&m);
}

static void test_apply_batch(void **st) {
  (void)st;
  p2q_sink_ids_t m;
  memset(&m, 0, sizeof m);
  /* operations apply in order: upsert 1,2; overwrite_payload (no change); delete 1; upsert 1 again */
  const char *b = "{\"operations\":[{\"upsert\":{\"points\":[{\"id\":1,\"vector\":[1]},{\"id\":2,\"vector\":[2]}]}},"
                  "{\"overwrite_payload\":{\"payload\":{\"a\":1},\"points\":[2]}},"
                  "{\"delete\":{\"points\":[1]}},{\"delete\":{\"filter\":{}}},"
                  "{\"upsert\":{\"points\":[{\"id\":3,\"vector\":[3],\"payload\":{\"seq\":9}}]}}]}";
  assert_int_equal(p2q_sink_apply(&m, P2Q_SINK_R_BATCH, b, strlen(b)), 4);
  int64_t seq;
  assert_int_equal(p2q_sink_ids_count(&m), 2);
  assert_int_equal(p2q_sink_ids_get(&m, 1, NULL), 0);
  assert_int_equal(p2q_sink_ids_get(&m, 3, &seq), 1);
  assert_int_equal(seq, 9);
  const char *two = "{\"operations\":[{\"upsert\":{\"points\":[]},\"delete\":{\"points\":[2]}}]}";
  assert_int_equal(p2q_sink_apply(&m, P2Q_SINK_R_BATCH, two, strlen(two)), P2Q_EBADJSON);
  assert_int_equal(p2q_sink_ids_count(&m), 2);
  p2q_sink_ids_free(&m);
}

static int connect_to(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
  return fd;
}

/* read until `want` answers ("HTTP/1.1 " count) have arrived with their bodies, or EOF */
static char *read_answers(int fd, int want) {
  size_t cap = 1 << 16, len = 0;
  char *buf = malloc(cap);
  for (;;) {
    int got = 0;
    buf[len] = 0;
    for (char *p = buf; (p = strstr(p, "HTTP/1.1 ")); p++) {
      char *cl = strstr(p, "content-length: "), *end = strstr(p, "\r\n\r\n");
      if (!cl || !end || end + 4 + atoi(cl + 16) > buf + len) break;
      got++;
    }
    if (got >= want) return buf;
    ssize_t n = read(fd, buf + len, cap - len - 1);
    if (n <= 0) return buf;
    len += (size_t)n;
  }
}

static void test_server_pipelined(void **st) {
  (void)st;
  int port = 0;
  pid_t pid = p2q_bench_sink_spawn(&port);
  assert_true(pid > 0 && port > 0);
  int fd = connect_to(port);
  const char *coll = "{\"vectors\":{\"size\":2,\"distance\":\"Dot\"}}";
  const char *pts = "{\"points\":[{\"id\":1,\"vector\":[1,2],\"payload\":{\"seq\":5}},{\"id\":2,\"vector\":[3,4]}]}";
  char req[4096];
  int n = snprintf(req, sizeof req,
                   "PUT /collections/c HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n%s"
                   "GET /collections/c HTTP/1.1\r\nHost: x\r\n\r\n"
                   "PUT /collections/c/points?wait=true HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n%s"
                   "POST /collections/c/points/count HTTP/1.1\r\nHost: x\r\nContent-Length: 14\r\n\r\n{\"exact\":true}"
                   "GET /no/such/route HTTP/1.1\r\nHost: x\r\n\r\n"
                   "POST /collections/nope/points/count HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}",
                   strlen(coll), coll, strlen(pts), pts);
  assert_int_equal(write(fd, req, (size_t)n), n);
  char *a = read_answers(fd, 6);
  const char *expect[] = {
      "HTTP/1.1 200 OK", "{\"result\":true,\"status\":\"ok\",\"time\":0.0}",
      "\"config\":{\"params\":{\"vectors\":{\"size\":2,\"distance\":\"Dot\"},\"shard_number\":1",
      "{\"result\":{\"operation_id\":1,\"status\":\"completed\"},\"status\":\"ok\",\"time\":0.0}",
      "{\"result\":{\"count\":2},\"status\":\"ok\",\"time\":0.0}", "HTTP/1.1 404 Not Found",
      "{\"status\":{\"error\":\"Not found: Collection `nope` doesn't exist!\"},\"time\":0.0}"};
  const char *p = a;
  for (size_t i = 0; i < sizeof expect / sizeof *expect; i++) { /* in this order */
    const char *q = strstr(p, expect[i]);
    if (!q) fail_msg("missing, in order: %s\nin: %s", expect[i], a);
    p = q + 1;
  }
  free(a);
  /* a body in two writes, wait=false, then a retrieve (the observer's request) and close */
  const char *del = "{\"points\":[2]}";
  n = snprintf(req, sizeof req, "POST /collections/c/points/delete HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n%.5s",
               strlen(del), del);
  assert_int_equal(write(fd, req, (size_t)n), n);
  usleep(20000);
  assert_int_equal(write(fd, del + 5, strlen(del) - 5), (ssize_t)strlen(del) - 5);
  const char *get = "{\"ids\":[1,2],\"with_payload\":[\"seq\"],\"with_vector\":false}";
  n = snprintf(req, sizeof req, "POST /collections/c/points HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
               "Content-Length: %zu\r\n\r\n%s", strlen(get), get);
  assert_int_equal(write(fd, req, (size_t)n), n);
  a = read_answers(fd, 99); /* until the sink closes */
  assert_non_null(strstr(a, "\"status\":\"acknowledged\""));
  assert_non_null(strstr(a, "{\"result\":[{\"id\":1,\"payload\":{\"seq\":5}}],\"status\":\"ok\""));
  assert_non_null(strstr(a, "connection: close"));
  free(a);
  close(fd);
  kill(pid, SIGTERM);
  int ws;
  assert_int_equal(waitpid(pid, &ws, 0), pid);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_point_key),   cmocka_unit_test(test_ids_set),
      cmocka_unit_test(test_ids_zero_key), cmocka_unit_test(test_route),
      cmocka_unit_test(test_apply_upsert_delete), cmocka_unit_test(test_apply_batch),
      cmocka_unit_test(test_server_pipelined),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test_qdrant.c — the Qdrant client: classification table, envelope parsing, path escaping
 * (pure); then the async helpers against the scripted loopback server (tests/unit/http_test_server.h): every
 * outcome class (401/403/404 route vs collection vs point/410/413/429/3xx/2xx error envelope/
 * proxy HTML/huge answer) with its message, Retry-After capped, write answers capped.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "http_test_server.h"
#include "pg2qdrant/nodes.h"
#include "pg2qdrant/errors.h"
#include "pg2qdrant/log.h"
#include "pg2qdrant/qdrant.h"

static srv_t S;

/* ---------------- pure ---------------- */

static void test_classify_table(void **st) {
  static const struct { long status; int curl; int64_t ra; p2q_qdrant_class_t cls; long delay; } T[] = {
      {200, 0, -1, P2Q_QDRANT_OK, -1},         {201, 0, -1, P2Q_QDRANT_OK, -1},
      {0, 7, -1, P2Q_QDRANT_RETRY, -1},        /* refused */
      {0, 52, -1, P2Q_QDRANT_RETRY, -1},       /* empty reply */
      {0, 56, -1, P2Q_QDRANT_RETRY, -1},       /* reset */
      {0, 28, -1, P2Q_QDRANT_RETRY, -1},       /* timeout */
      {0, 23, -1, P2Q_QDRANT_RETRY, -1},       /* body over the cap */
      {408, 0, -1, P2Q_QDRANT_RETRY, -1},
      {429, 0, 5000, P2Q_QDRANT_RATE, 5000},   /* Retry-After: wait that long */
      {429, 0, -1, P2Q_QDRANT_RATE, -1},       /* no Retry-After: the caller's backoff */
      {500, 0, -1, P2Q_QDRANT_RETRY, -1},      {502, 0, -1, P2Q_QDRANT_RETRY, -1},
      {503, 0, 2000, P2Q_QDRANT_RETRY, 2000},  {504, 0, -1, P2Q_QDRANT_RETRY, -1},
      {507, 0, -1, P2Q_QDRANT_RETRY, -1},      {501, 0, -1, P2Q_QDRANT_RETRY, -1},
      {520, 0, -1, P2Q_QDRANT_RETRY, -1},      /* a CDN's 5xx */
      {301, 0, -1, P2Q_QDRANT_RETRY, -1},      {307, 0, 1000, P2Q_QDRANT_RETRY, 1000},
      {100, 0, -1, P2Q_QDRANT_RETRY, -1},
      {400, 0, -1, P2Q_QDRANT_PERMANENT, -1},  {409, 0, -1, P2Q_QDRANT_PERMANENT, -1},
      {422, 0, 9000, P2Q_QDRANT_PERMANENT, -1}, /* Retry-After ignored on the request's fault */
      {401, 0, -1, P2Q_QDRANT_CONFIG, -1},     {403, 0, -1, P2Q_QDRANT_CONFIG, -1},
      {405, 0, -1, P2Q_QDRANT_CONFIG, -1},     {407, 0, -1, P2Q_QDRANT_CONFIG, -1},
      {421, 0, -1, P2Q_QDRANT_CONFIG, -1},     {431, 0, -1, P2Q_QDRANT_CONFIG, -1},
      {404, 0, -1, P2Q_QDRANT_MISSING, -1},    {410, 0, -1, P2Q_QDRANT_MISSING, -1},
      {413, 0, 3000, P2Q_QDRANT_TOO_LARGE, -1},
  };
  for (size_t i = 0; i < sizeof T / sizeof T[0]; i++) {
    long d = 12345;
    p2q_qdrant_class_t c = p2q_qdrant_classify(T[i].status, T[i].curl, T[i].ra, &d);
    if (c != T[i].cls || d != T[i].delay)
      fail_msg("row %zu: status %ld -> class %d delay %ld", i, T[i].status, (int)c, d);
  }
  assert_int_equal(p2q_qdrant_classify(200, 0, -1, NULL), P2Q_QDRANT_OK);
  /* a day-long Retry-After survives in a long (no int truncation) */
  long d = 0;
  p2q_qdrant_classify(429, 0, (int64_t)86400000, &d);
  assert_int_equal(d, 86400000L);
  /* the name table and the cost of each class */
  static const struct { p2q_qdrant_class_t c; const char *name; int transient; } N[] = {
      {P2Q_QDRANT_OK, "ok", 0},           {P2Q_QDRANT_RETRY, "retry", 1},
      {P2Q_QDRANT_RATE, "rate_limited", 1}, {P2Q_QDRANT_TOO_LARGE, "too_large", 0},
      {P2Q_QDRANT_CONFIG, "config", 1},   {P2Q_QDRANT_MISSING, "missing", 1},
      {P2Q_QDRANT_PERMANENT, "permanent", 0},
  };
  assert_int_equal(sizeof N / sizeof N[0], P2Q_QDRANT_NCLASSES);
  for (size_t i = 0; i < sizeof N / sizeof N[0]; i++) {
    assert_string_equal(p2q_qdrant_class_name(N[i].c), N[i].name);
    assert_int_equal(p2q_qdrant_class_transient(N[i].c), N[i].transient);
  }
  assert_string_equal(p2q_qdrant_class_name(P2Q_QDRANT_NCLASSES), "unknown");
}

static int envelope(long status, const char *body, const cJSON **res, char *msg) {
  cJSON *root = NULL;
  int rc = p2q_qdrant_parse_envelope(status, body, strlen(body), &root, res, msg, 256);
  if (rc == 0) {
    assert_non_null(root);
    assert_non_null(*res);
  } else {
    assert_null(root);
    assert_null(*res);
  }
  static cJSON *keep;
  cJSON_Delete(keep); /* keep the last document alive for the caller's checks */
  keep = root;
  return rc;
}

static void test_envelope(void **st) {
  const cJSON *r;
  char msg[256];
  assert_int_equal(envelope(200, "{\"result\":{\"count\":42},\"status\":\"ok\",\"time\":0.1}", &r, msg), 0);
  assert_int_equal(cJSON_GetObjectItem(r, "count")->valueint, 42);
  assert_int_equal(envelope(200, "{\"result\":true,\"status\":\"ok\",\"time\":0}", &r, msg), 0);
  assert_true(cJSON_IsTrue(r));
  assert_int_equal(envelope(404, "{\"status\":{\"error\":\"Not found: Collection `x` doesn't exist!\"},\"time\":0}", &r, msg), P2Q_EQDRANT);
  assert_string_equal(msg, "Not found: Collection `x` doesn't exist!");
  assert_int_equal(envelope(401, "Must provide an API key or an Authorization bearer token\n", &r, msg), P2Q_EQDRANT);
  assert_string_equal(msg, "Must provide an API key or an Authorization bearer token");
  assert_int_equal(envelope(404, "", &r, msg), P2Q_EQDRANT);
  assert_string_equal(msg, "HTTP 404");
  assert_int_equal(envelope(500, "{\"status\":\"weird\"}", &r, msg), P2Q_EQDRANT);
  assert_string_equal(msg, "{\"status\":\"weird\"}");
  /* 2xx: a success envelope and nothing less */
  assert_int_equal(envelope(200, "not json", &r, msg), P2Q_EBADJSON);
  assert_string_equal(msg, "HTTP 200 answer is not Qdrant's success envelope (not JSON): \"not json\"");
  assert_int_equal(envelope(200, "", &r, msg), P2Q_EBADJSON);
  assert_string_equal(msg, "HTTP 200 answer is not Qdrant's success envelope (not JSON): an empty body");
  assert_int_equal(envelope(200, "<html>\n<body>Welcome to nginx!</body>\n</html>", &r, msg), P2Q_EBADJSON);
  assert_string_equal(msg, "HTTP 200 answer is not Qdrant's success envelope (not JSON): "
                           "\"<html> <body>Welcome to nginx!</body> </html>\"");
  assert_int_equal(envelope(200, "{\"title\":\"qdrant\"}", &r, msg), P2Q_EBADJSON);
  assert_string_equal(msg, "HTTP 200 answer is not Qdrant's success envelope (no `result`): "
                           "\"{\"title\":\"qdrant\"}\"");
  assert_int_equal(envelope(200, "{\"result\":1}", &r, msg), P2Q_EBADJSON);
  assert_string_equal(msg, "HTTP 200 answer is not Qdrant's success envelope (no \"status\":\"ok\"): "
                           "\"{\"result\":1}\"");
  assert_int_equal(envelope(200, "{\"result\":1,\"status\":\"accepted\"}", &r, msg), P2Q_EBADJSON);
  assert_int_equal(envelope(200, "[{\"result\":1,\"status\":\"ok\"}]", &r, msg), P2Q_EBADJSON);
  /* the error envelope a proxy may send with 200: never a success */
  assert_int_equal(envelope(200, "{\"status\":{\"error\":\"boom\"},\"result\":null}", &r, msg), P2Q_EQDRANT);
  assert_string_equal(msg, "HTTP 200 carrying an error, not Qdrant's success envelope: boom");
  assert_int_equal(envelope(200, "{\"status\":{\"error\":\"x\"},\"result\":{\"operation_id\":1}}", &r, msg),
                   P2Q_EQDRANT);
  /* a long body is quoted by its start only */
  char big[400];
  memset(big, 'y', sizeof big - 1);
  big[sizeof big - 1] = 0;
  assert_int_equal(envelope(200, big, &r, msg), P2Q_EBADJSON);
  assert_true(strlen(msg) < 200 && strstr(msg, "yyy...\""));
  assert_int_equal(envelope(200, "{\"result\":1,\"status\":\"ok\"}", &r, msg), 0);
  envelope(200, "{\"result\":1}", &r, msg);
  envelope(400, "", &r, msg); /* frees the kept document */
}

static void test_path_escape(void **st) {
  char out[32];
  assert_int_equal(p2q_qdrant_path_escape("docs_v1.2-x~", out, sizeof out), 12);
  assert_string_equal(out, "docs_v1.2-x~");
  assert_int_equal(p2q_qdrant_path_escape("my coll/x?#%", out, sizeof out), 22);
  assert_string_equal(out, "my%20coll%2Fx%3F%23%25");
  assert_int_equal(p2q_qdrant_path_escape("\xc3\xa9", out, sizeof out), 6);
  assert_string_equal(out, "%C3%A9");
  assert_int_equal(p2q_qdrant_path_escape("abcd", out, 4), P2Q_EOVERFLOW);
  assert_int_equal(p2q_qdrant_path_escape("abcd", out, 5), 4);
}

/* ---------------- async against the loopback server ---------------- */

typedef struct {
  int n, err[8], cls[8];
  long status[8], delay[8];
  char msg[8][256], body[8][256];
  int have_result[8];
  int closed;
} res_t;

static void on_resp(p2q_qdrant_t *q, const p2q_qdrant_resp_t *r, void *arg) {
  res_t *s = arg;
  assert_true(s->n < 8);
  int i = s->n++;
  s->err[i] = r->err;
  s->cls[i] = r->cls;
  s->status[i] = r->status;
  s->delay[i] = r->retry_delay_ms;
  s->have_result[i] = r->result != NULL;
  assert_non_null(r->error);
  snprintf(s->msg[i], sizeof s->msg[i], "%s", r->error);
  snprintf(s->body[i], sizeof s->body[i], "%.*s", (int)r->body_len, r->body);
}

static void on_closed(p2q_qdrant_t *q, void *arg) { ((res_t *)arg)->closed++; }

static void wait_n(uv_loop_t *l, res_t *s, int n) {
  uint64_t t0 = uv_hrtime();
  while (s->n < n) {
    uv_run(l, UV_RUN_ONCE);
    assert_true(uv_hrtime() - t0 < 10000000000ULL);
  }
}

static void url_of(char *buf, size_t n) { snprintf(buf, n, "http://127.0.0.1:%d/", S.port); }

static void test_async_helpers(void **st) {
  uv_loop_t loop;
  p2q_qdrant_t *q;
  res_t s;
  char url[64];
  memset(&s, 0, sizeof s);
  url_of(url, sizeof url);
  assert_int_equal(uv_loop_init(&loop), 0);
  p2q_qdrant_options_t o = {.url = url, .api_key = "k-123"};
  p2q_qdrant_options_t bad = {.url = "ftp://x"};
  assert_int_equal(p2q_qdrant_new(&loop, &bad, &q), P2Q_EINVAL);
  assert_int_equal(p2q_qdrant_new(&loop, &o, &q), 0);
  srv_script_reset(&S);

  /* upsert: path escaped, wait=true, body as given, api-key sent */
  const char *up = "{\"points\":[{\"id\":1,\"vector\":[0.1,0.2]}]}";
  srv_script(&S, 200, "{\"result\":{\"operation_id\":7,\"status\":\"completed\"},\"status\":\"ok\",\"time\":0.01}");
  assert_int_equal(p2q_qdrant_points_upsert(q, "my docs", up, strlen(up), on_resp, &s), 0);
  wait_n(&loop, &s, 1);
  assert_int_equal(s.err[0], 0);
  assert_int_equal(s.cls[0], P2Q_QDRANT_OK);
  assert_true(s.have_result[0]);
  assert_string_equal(S.paths[0], "PUT /collections/my%20docs/points?wait=true");
  assert_string_equal(S.last_body, up);
  assert_string_equal(S.last_apikey, "k-123");
  assert_string_equal(S.last_ctype, "application/json");

  /* delete (take ownership) + wait_timeout → retry */
  char *del = strdup("{\"points\":[1,2]}");
  srv_script(&S, 200, "{\"result\":{\"operation_id\":8,\"status\":\"wait_timeout\"},\"status\":\"ok\",\"time\":1}");
  assert_int_equal(p2q_qdrant_points_delete_take(q, "c", del, strlen(del), on_resp, &s), 0);
  wait_n(&loop, &s, 2);
  assert_string_equal(S.paths[1], "POST /collections/c/points/delete?wait=true");
  assert_int_equal(s.err[1], P2Q_ETIMEOUT);
  assert_int_equal(s.cls[1], P2Q_QDRANT_RETRY);

  /* count with filter, raw 429 with Retry-After, probe */
  srv_script(&S, 200, "{\"result\":{\"count\":5},\"status\":\"ok\",\"time\":0}");
  assert_int_equal(p2q_qdrant_points_count(q, "c", "{\"must\":[]}", on_resp, &s), 0);
  wait_n(&loop, &s, 3);
  assert_string_equal(S.last_body, "{\"exact\":true,\"filter\":{\"must\":[]}}");
  assert_string_equal(S.paths[2], "POST /collections/c/points/count");
  assert_int_equal(p2q_qdrant_request(q, "GET", "/retry-after/3", NULL, 0, 0, on_resp, &s), 0);
  wait_n(&loop, &s, 4);
  assert_int_equal(s.err[3], P2Q_EQDRANT);
  assert_int_equal(s.cls[3], P2Q_QDRANT_RATE);
  assert_int_equal(s.delay[3], 3000);
  assert_string_equal(s.msg[3], "rate limited");
  assert_int_equal(p2q_qdrant_probe(q, on_resp, &s), 0);
  wait_n(&loop, &s, 5);
  assert_int_equal(s.err[4], 0);
  assert_string_equal(S.last_path, "/readyz");

  /* argument errors never fire callbacks */
  assert_int_equal(p2q_qdrant_points_upsert(q, "", up, strlen(up), on_resp, &s), P2Q_EINVAL);
  assert_int_equal(p2q_qdrant_points_upsert(q, "c", NULL, 0, on_resp, &s), P2Q_EINVAL);
  assert_int_equal(p2q_qdrant_request(q, "GET", "no-slash", NULL, 0, 0, on_resp, &s), P2Q_EINVAL);

  assert_int_equal(p2q_qdrant_close(q, on_closed, &s), 0);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(s.closed, 1);
  assert_int_equal(s.n, 5);
  assert_int_equal(uv_loop_close(&loop), 0);
  srv_script_reset(&S);
}


/* Answers that are not success, each with its class and a message an operator can act on. */
static void test_async_outcomes(void **st) {
  uv_loop_t loop;
  p2q_qdrant_t *q;
  res_t s;
  char url[64];
  memset(&s, 0, sizeof s);
  url_of(url, sizeof url);
  assert_int_equal(uv_loop_init(&loop), 0);
  p2q_qdrant_options_t o = {.url = url, .retry_after_max_ms = 300000, .max_concurrent = 1};
  assert_int_equal(p2q_qdrant_new(&loop, &o, &q), 0);
  srv_script_reset(&S);
  const char *up = "{\"points\":[{\"id\":1,\"vector\":[0.1,0.2]}]}";
  srv_script(&S, 401, "Invalid API key or JWT");
  srv_script(&S, 403, "{\"status\":{\"error\":\"Forbidden: Write access is required\"},\"time\":0}");
  srv_script(&S, 404, "");
  srv_script(&S, 404, "{\"status\":{\"error\":\"Not found: No point with id 7 found\"},\"time\":0}");
  srv_script(&S, 413, "<html><head><title>413 Request Entity Too Large</title></head></html>");
  srv_script(&S, 410, "{\"status\":{\"error\":\"Not found: Collection `c` doesn't exist!\"},\"time\":0}");
  for (int i = 0; i < 6; i++) assert_int_equal(p2q_qdrant_points_upsert(q, "c", up, strlen(up), on_resp, &s), 0);
  wait_n(&loop, &s, 6);
  assert_int_equal(s.cls[0], P2Q_QDRANT_CONFIG);
  assert_string_equal(s.msg[0], "Invalid API key or JWT");
  assert_int_equal(s.cls[1], P2Q_QDRANT_CONFIG);
  assert_string_equal(s.msg[1], "Forbidden: Write access is required");
  assert_int_equal(s.cls[2], P2Q_QDRANT_CONFIG);
  assert_string_equal(s.msg[2], "HTTP 404 without Qdrant's error envelope (no such route: check qdrant.url): an empty body");
  assert_int_equal(s.cls[3], P2Q_QDRANT_PERMANENT);
  assert_int_equal(s.cls[4], P2Q_QDRANT_TOO_LARGE);
  assert_string_equal(s.msg[4], "<html><head><title>413 Request Entity Too Large</title></head></html>");
  assert_int_equal(s.cls[5], P2Q_QDRANT_MISSING);
  for (int i = 0; i < 6; i++) assert_int_equal(s.err[i], P2Q_EQDRANT);

  /* 2xx that are not success: the events must not be acked */
  struct { const char *path; int err; const char *msg; } R[] = {
      {"/envelope200", P2Q_EQDRANT, "HTTP 200 carrying an error, not Qdrant's success envelope: boom"},
      {"/html200", P2Q_EBADJSON, "HTTP 200 answer is not Qdrant's success envelope (not JSON): "
                                 "\"<html><body>Welcome to nginx!</body></html>\""},
  };
  for (int i = 0; i < 2; i++) {
    assert_int_equal(p2q_qdrant_request(q, "PUT", R[i].path, up, strlen(up), 0, on_resp, &s), 0);
    wait_n(&loop, &s, 7 + i);
    assert_int_equal(s.status[6 + i], 200);
    assert_int_equal(s.cls[6 + i], P2Q_QDRANT_RETRY);
    assert_int_equal(s.err[6 + i], R[i].err);
    assert_false(s.have_result[6 + i]);
    assert_string_equal(s.msg[6 + i], R[i].msg);
  }
  assert_int_equal(p2q_qdrant_close(q, on_closed, &s), 0);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);

  /* redirects (never followed, credentials masked), Retry-After capped, huge answers */
  memset(&s, 0, sizeof s);
  assert_int_equal(uv_loop_init(&loop), 0);
  assert_int_equal(p2q_qdrant_new(&loop, &o, &q), 0);
  assert_int_equal(p2q_qdrant_request(q, "PUT", "/redirect/307", up, strlen(up), 0, on_resp, &s), 0);
  assert_int_equal(p2q_qdrant_request(q, "PUT", "/retry-raw/2037", up, strlen(up), 0, on_resp, &s), 0);
  assert_int_equal(p2q_qdrant_request(q, "PUT", "/retry-raw/garbage", up, strlen(up), 0, on_resp, &s), 0);
  assert_int_equal(p2q_qdrant_points_upsert(q, "c", up, strlen(up), on_resp, &s), 0); /* default: success */
  srv_script_reset(&S);
  assert_int_equal(p2q_qdrant_request(q, "GET", "/collections/c", NULL, 0, 0, on_resp, &s), 0);
  wait_n(&loop, &s, 5);
  assert_int_equal(s.status[0], 307);
  assert_int_equal(s.cls[0], P2Q_QDRANT_RETRY);
  assert_null(strstr(s.msg[0], "s3cret"));
  assert_non_null(strstr(s.msg[0], "HTTP 307 redirect to http://user:"));
  assert_non_null(strstr(s.msg[0], "@elsewhere:6333/x, not followed"));
  assert_int_equal(s.cls[1], P2Q_QDRANT_RATE);
  assert_int_equal(s.delay[1], 300000); /* a 2037 date, capped at retry_max */
  assert_int_equal(s.cls[2], P2Q_QDRANT_RATE);
  assert_int_equal(s.delay[2], -1);     /* garbage: the caller's backoff */
  assert_int_equal(s.cls[3], P2Q_QDRANT_OK);
  assert_int_equal(s.cls[4], P2Q_QDRANT_OK);
  /* a write answer is small: 2 MB is not Qdrant, the transfer is aborted */
  assert_int_equal(p2q_qdrant_request(q, "GET", "/huge/2000000", NULL, 0, 0, on_resp, &s), 0);
  wait_n(&loop, &s, 6);
  assert_int_equal(s.err[5], 0); /* generic reads use the 64 MiB default */
  srv_script_reset(&S);
  assert_int_equal(p2q_qdrant_close(q, on_closed, &s), 0);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
}

/* Several nodes (nodes.h): a refused node is skipped at once and the request answered by the
   next one; the refused node is down (reported), probed, and requests keep going to the node
   that answers; every node refusing is one transport failure (the host's, curl 7). */
static int closed_port(void) {
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t l = sizeof a;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
  assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &l), 0);
  close(fd); /* nothing listens there any more: connections are refused */
  return ntohs(a.sin_port);
}

typedef struct { int calls, node, up; char url[64]; } node_ev_t;

static void on_node(void *arg, int node, const char *url, int up, const char *msg) {
  node_ev_t *e = arg;
  (void)msg;
  e->calls++;
  e->node = node;
  e->up = up;
  snprintf(e->url, sizeof e->url, "%s", url);
}

static void test_nodes_failover(void **st) {
  uv_loop_t loop;
  p2q_qdrant_t *q;
  res_t s;
  node_ev_t ev = {0};
  char url[160], dead[64];
  int p1 = closed_port(), p2 = closed_port();
  memset(&s, 0, sizeof s);
  snprintf(dead, sizeof dead, "http://127.0.0.1:%d", p1);
  snprintf(url, sizeof url, "%s, http://127.0.0.1:%d/", dead, S.port);
  assert_int_equal(uv_loop_init(&loop), 0);
  p2q_qdrant_options_t o = {.url = url, .max_concurrent = 2, .on_node = on_node, .on_node_arg = &ev};
  assert_int_equal(p2q_qdrant_new(&loop, &o, &q), 0);
  assert_int_equal(p2q_qdrant_node_count(q), 2);
  srv_script_reset(&S);
  const char *up = "{\"points\":[{\"id\":1,\"vector\":[0.1,0.2]}]}";
  char *take = strdup(up);
  assert_int_equal(p2q_qdrant_points_upsert_take(q, "c", take, strlen(take), on_resp, &s), 0);
  wait_n(&loop, &s, 1);
  assert_int_equal(s.err[0], 0);               /* answered by the second node */
  assert_int_equal(s.cls[0], P2Q_QDRANT_OK);
  assert_string_equal(S.last_body, up);        /* the body went out whole to it */
  assert_int_equal(ev.calls, 1);
  assert_int_equal(ev.node, 0);
  assert_int_equal(ev.up, 0);
  assert_string_equal(ev.url, dead);
  assert_int_equal(p2q_qdrant_node(q, 0)->up, 0);
  assert_int_equal(p2q_qdrant_node(q, 1)->up, 1);
  int hits = S.hits_total;
  assert_int_equal(p2q_qdrant_points_upsert(q, "c", up, strlen(up), on_resp, &s), 0);
  wait_n(&loop, &s, 2);
  assert_int_equal(s.err[1], 0);
  assert_int_equal(S.hits_total, hits + 1);
  assert_int_equal(p2q_qdrant_node(q, 0)->failures, 1); /* skipped: not tried again */
  assert_int_equal(p2q_qdrant_close(q, on_closed, &s), 0);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);

  /* every node refuses: one transport failure, as for one unreachable host */
  memset(&s, 0, sizeof s);
  snprintf(url, sizeof url, "http://127.0.0.1:%d,http://127.0.0.1:%d", p1, p2);
  o.on_node = NULL;
  assert_int_equal(uv_loop_init(&loop), 0);
  assert_int_equal(p2q_qdrant_new(&loop, &o, &q), 0);
  assert_int_equal(p2q_qdrant_points_upsert(q, "c", up, strlen(up), on_resp, &s), 0);
  wait_n(&loop, &s, 1);
  assert_int_equal(s.err[0], P2Q_EHTTP);
  assert_int_equal(s.cls[0], P2Q_QDRANT_RETRY);
  assert_int_equal(p2q_qdrant_node(q, 0)->up + p2q_qdrant_node(q, 1)->up, 0);
  assert_int_equal(p2q_qdrant_close(q, on_closed, &s), 0);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
  /* a single URL is not tracked */
  assert_int_equal(uv_loop_init(&loop), 0);
  o.url = dead;
  assert_int_equal(p2q_qdrant_new(&loop, &o, &q), 0);
  assert_int_equal(p2q_qdrant_node_count(q), 1);
  assert_null(p2q_qdrant_node(q, 0));
  assert_int_equal(p2q_qdrant_close(q, NULL, NULL), 0);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
}

/* Writes are capped at P2Q_QDRANT_SMALL_BODY whatever the route answers. */
static void test_write_answer_capped(void **st) {
  uv_loop_t loop;
  p2q_qdrant_t *q;
  res_t s;
  char url[96];
  memset(&s, 0, sizeof s);
  /* base URL with a path prefix so that the upsert lands on /huge/... */
  snprintf(url, sizeof url, "http://127.0.0.1:%d/hugechunked/3000000?", S.port);
  assert_int_equal(uv_loop_init(&loop), 0);
  p2q_qdrant_options_t o = {.url = url};
  assert_int_equal(p2q_qdrant_new(&loop, &o, &q), 0);
  const char *up = "{\"points\":[]}";
  assert_int_equal(p2q_qdrant_points_upsert(q, "c", up, strlen(up), on_resp, &s), 0);
  wait_n(&loop, &s, 1);
  assert_int_equal(s.err[0], P2Q_EOVERFLOW);
  assert_int_equal(s.cls[0], P2Q_QDRANT_RETRY);
  assert_string_equal(s.msg[0], "HTTP 200: response body larger than 1048576 bytes: transfer aborted "
                                "(not a Qdrant answer)");
  assert_int_equal(p2q_qdrant_close(q, on_closed, &s), 0);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_close_cancels(void **st) {
  uv_loop_t loop;
  p2q_qdrant_t *q;
  res_t s;
  char url[64];
  memset(&s, 0, sizeof s);
  url_of(url, sizeof url);
  assert_int_equal(uv_loop_init(&loop), 0);
  p2q_qdrant_options_t o = {.url = url};
  assert_int_equal(p2q_qdrant_new(&loop, &o, &q), 0);
  assert_int_equal(p2q_qdrant_request(q, "GET", "/slow/5000", NULL, 0, 0, on_resp, &s), 0);
  assert_int_equal(p2q_qdrant_pending(q), 1);
  uv_run(&loop, UV_RUN_NOWAIT);
  assert_int_equal(p2q_qdrant_close(q, on_closed, &s), 0);
  assert_int_equal(p2q_qdrant_probe(q, on_resp, &s), P2Q_ECANCELED);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(s.n, 1);
  assert_int_equal(s.err[0], P2Q_ECANCELED);
  assert_int_equal(s.cls[0], P2Q_QDRANT_RETRY);
  assert_int_equal(s.closed, 1);
  assert_int_equal(uv_loop_close(&loop), 0);
}

static int setup(void **st) { srv_start(&S); return 0; }
static int teardown(void **st) { srv_stop(&S); return 0; }

int main(void) {
  p2q_log_configure(P2Q_LOG_WARN, P2Q_LOG_LOGFMT, 2);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_classify_table),
      cmocka_unit_test(test_envelope),
      cmocka_unit_test(test_path_escape),
      cmocka_unit_test(test_async_helpers),
      cmocka_unit_test(test_async_outcomes),
      cmocka_unit_test(test_nodes_failover),
      cmocka_unit_test(test_write_answer_capped),
      cmocka_unit_test(test_close_cancels),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}

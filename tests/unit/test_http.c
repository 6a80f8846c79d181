/*
 * test_http.c — p2q_http against a scripted loopback server (tests/unit/http_test_server.h):
 * methods/headers/bodies, keep-alive reuse, status codes + Retry-After (both forms), timeouts,
 * refused/partial/empty replies, transparent retry of a keep-alive reset, the concurrency
 * limit and close() cancelling in-flight requests; Retry-After capped by retry_after_max_ms
 * (absurd seconds, 2037/2030 dates, negative, garbage); the Location of a 3xx (never followed);
 * response bodies capped per request (Content-Length over the cap, chunked past the cap, exactly
 * at the cap) without the process growing (peak RSS measured around a 50 MB answer).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <curl/curl.h>

#include "http_test_server.h"
#include "pg2qdrant/errors.h"
#include "pg2qdrant/http.h"
#include "pg2qdrant/log.h"

static srv_t S;

#define MAXR 16
typedef struct {
  uv_loop_t loop;
  p2q_http_t *h;
  int n;
  int err[MAXR];
  long status[MAXR];
  int code[MAXR];
  int64_t retry_after[MAXR];
  char location[MAXR][128];
  char error[MAXR][160];
  size_t body_len[MAXR];
  int retried[MAXR];
  char body[MAXR][256];
  int closed;
  int in_request; /* set while p2q_http_request runs: callbacks must not fire then */
  int close_after;
} ctx_t;

static void ctx_init(ctx_t *c, const p2q_http_options_t *o) {
  memset(c, 0, sizeof *c);
  assert_int_equal(uv_loop_init(&c->loop), 0);
  assert_int_equal(p2q_http_new(&c->loop, o, &c->h), 0);
}

static void on_closed(p2q_http_t *h, void *arg) {
  ctx_t *c = arg;
  c->closed++;
}

static void on_resp(p2q_http_t *h, int err, const p2q_http_response_t *r, void *arg) {
  ctx_t *c = arg;
  assert_false(c->in_request);
  assert_true(c->n < MAXR);
  assert_non_null(r);
  assert_non_null(r->body);
  assert_non_null(r->error);
  int i = c->n++;
  c->err[i] = err;
  c->status[i] = r->status;
  c->code[i] = r->curl_code;
  c->retry_after[i] = r->retry_after_ms;
  assert_non_null(r->location);
  snprintf(c->location[i], sizeof c->location[i], "%s", r->location);
  snprintf(c->error[i], sizeof c->error[i], "%s", r->error);
  c->body_len[i] = r->body_len;
  c->retried[i] = r->retried;
  assert_int_equal(strlen(r->body), r->body_len);
  snprintf(c->body[i], sizeof c->body[i], "%s", r->body);
  if (c->close_after && c->n == c->close_after) assert_int_equal(p2q_http_close(h, on_closed, c), 0);
}

static void req(ctx_t *c, const char *method, const char *path, const char *body) {
  char url[256];
  snprintf(url, sizeof url, "http://127.0.0.1:%d%s", S.port, path);
  c->in_request = 1;
  assert_int_equal(p2q_http_request(c->h, method, url, body, body ? strlen(body) : 0, 0, on_resp, c), 0);
  c->in_request = 0;
}

/* Run until n responses arrived. */
static void run_until(ctx_t *c, int n) {
  uint64_t t0 = uv_hrtime();
  while (c->n < n) {
    uv_run(&c->loop, UV_RUN_ONCE);
    assert_true(uv_hrtime() - t0 < 10000000000ULL);
  }
}

static void finish(ctx_t *c) {
  if (!c->closed) {
    int rc = p2q_http_close(c->h, on_closed, c);
    assert_true(rc == 0 || rc == P2Q_EBUSY);
  }
  uv_run(&c->loop, UV_RUN_DEFAULT);
  assert_int_equal(c->closed, 1);
  assert_int_equal(uv_loop_close(&c->loop), 0);
}

static int setup(void **st) { srv_start(&S); return 0; }
static int teardown(void **st) { srv_stop(&S); return 0; }

/* ---------- pure ---------- */

static void test_methods_headers_keepalive(void **st) {
  ctx_t c;
  p2q_http_options_t o = {0};
  o.api_key = "s3cret-key";
  ctx_init(&c, &o);
  int acc0 = srv_get(&S, &S.accepted);
  req(&c, "POST", "/echo", "{\"a\":1}");
  run_until(&c, 1);
  assert_int_equal(c.err[0], 0);
  assert_int_equal(c.status[0], 200);
  assert_string_equal(c.body[0], "{\"a\":1}");
  assert_string_equal(S.last_method, "POST");
  assert_string_equal(S.last_ctype, "application/json");
  assert_string_equal(S.last_apikey, "s3cret-key");
  req(&c, "PUT", "/echo", "[1,2,3]");
  run_until(&c, 2);
  assert_string_equal(S.last_method, "PUT");
  assert_string_equal(c.body[1], "[1,2,3]");
  req(&c, "GET", "/x", NULL);
  run_until(&c, 3);
  assert_string_equal(S.last_method, "GET");
  assert_string_equal(c.body[2], "{\"result\":true,\"status\":\"ok\",\"time\":0.0}");
  req(&c, "DELETE", "/y", NULL);
  run_until(&c, 4);
  assert_string_equal(S.last_method, "DELETE");
  /* a taken body is freed by the library (ASan would report a leak otherwise) */
  char *b = strdup("{\"taken\":true}");
  char url[128];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/echo", S.port);
  assert_int_equal(p2q_http_request(c.h, "POST", url, b, strlen(b), P2Q_HTTP_TAKE_BODY, on_resp, &c), 0);
  run_until(&c, 5);
  assert_string_equal(c.body[4], "{\"taken\":true}");
  /* all five sequential requests rode one keep-alive connection */
  assert_int_equal(srv_get(&S, &S.accepted) - acc0, 1);
  assert_int_equal(p2q_http_pending(c.h), 0);
  finish(&c);
}

static void test_status_and_retry_after(void **st) {
  ctx_t c;
  ctx_init(&c, NULL);
  req(&c, "GET", "/status/404", NULL);
  req(&c, "GET", "/retry-after/7", NULL);
  req(&c, "GET", "/retry-date", NULL);
  req(&c, "GET", "/status/500", NULL);
  run_until(&c, 4);
  /* completion order may vary with concurrency: find by status */
  int seen = 0;
  for (int i = 0; i < 4; i++) {
    assert_int_equal(c.err[i], 0); /* a response arrived: err 0, look at status */
    if (c.status[i] == 404) { seen |= 1; assert_int_equal(c.retry_after[i], -1); assert_string_equal(c.body[i], "{\"status\":{\"error\":\"code 404\"},\"time\":0}"); }
    if (c.status[i] == 429) { seen |= 2; assert_int_equal(c.retry_after[i], 7000); }
    if (c.status[i] == 503) { seen |= 4; assert_true(c.retry_after[i] >= 58000 && c.retry_after[i] <= 60000); } /* 120 s capped at the 60 s default */
    if (c.status[i] == 500) { seen |= 8; assert_int_equal(c.retry_after[i], -1); }
  }
  assert_int_equal(seen, 15);
  finish(&c);
}

static void test_transport_errors(void **st) {
  ctx_t c;
  p2q_http_options_t o = {0};
  o.timeout_ms = 300;
  ctx_init(&c, &o);
  /* timeout */
  req(&c, "GET", "/slow/3000", NULL);
  run_until(&c, 1);
  assert_int_equal(c.err[0], P2Q_ETIMEOUT);
  assert_int_equal(c.code[0], CURLE_OPERATION_TIMEDOUT);
  assert_int_equal(c.status[0], 0);
  /* response cut mid-body */
  req(&c, "GET", "/partial", NULL);
  run_until(&c, 2);
  assert_int_equal(c.err[1], P2Q_EHTTP);
  assert_int_equal(c.code[1], CURLE_PARTIAL_FILE);
  /* empty reply on a fresh connection: reported, not retried */
  int h0 = srv_get(&S, &S.hits_close);
  req(&c, "GET", "/close", NULL);
  run_until(&c, 3);
  assert_int_equal(c.err[2], P2Q_EHTTP);
  assert_int_equal(c.code[2], CURLE_GOT_NOTHING);
  assert_int_equal(srv_get(&S, &S.hits_close) - h0, 1);
  finish(&c);
  /* refused: a port nobody listens on */
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t al = sizeof a;
  assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
  getsockname(fd, (struct sockaddr *)&a, &al);
  close(fd);
  ctx_init(&c, NULL);
  char url[64];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/", ntohs(a.sin_port));
  assert_int_equal(p2q_http_request(c.h, "GET", url, NULL, 0, 0, on_resp, &c), 0);
  run_until(&c, 1);
  assert_int_equal(c.err[0], P2Q_EHTTP);
  assert_int_equal(c.code[0], CURLE_COULDNT_CONNECT);
  assert_int_equal(c.status[0], 0);
  finish(&c);
}

static void test_keepalive_reset_retried(void **st) {
  ctx_t c;
  ctx_init(&c, NULL);
  int acc0 = srv_get(&S, &S.accepted), k0 = srv_get(&S, &S.hits_kareset);
  req(&c, "GET", "/warm", NULL);
  run_until(&c, 1);
  assert_int_equal(c.err[0], 0);
  /* same connection is reused; the server drops it without answering */
  req(&c, "POST", "/kareset", "{\"points\":[]}");
  run_until(&c, 2);
  assert_int_equal(c.err[1], 0);
  assert_int_equal(c.status[1], 200);
  assert_string_equal(c.body[1], "{\"result\":\"fresh\",\"status\":\"ok\",\"time\":0}");
  assert_int_equal(srv_get(&S, &S.hits_kareset) - k0, 2); /* failed once, then answered */
  assert_int_equal(srv_get(&S, &S.accepted) - acc0, 2);   /* on a fresh connection */
  assert_string_equal(S.last_body, "{\"points\":[]}");      /* body re-sent */
  /* libcurl itself retries a reused connection that returned nothing at all; a reset after
   * some bytes is retried by p2q_http (resp.retried = 1). */
  req(&c, "GET", "/warm", NULL);
  run_until(&c, 3);
  k0 = srv_get(&S, &S.hits_kareset);
  acc0 = srv_get(&S, &S.accepted);
  req(&c, "PUT", "/karst", "{\"x\":2}");
  run_until(&c, 4);
  assert_int_equal(c.err[3], 0);
  assert_int_equal(c.status[3], 200);
  assert_int_equal(c.retried[3], 1);
  assert_string_equal(c.body[3], "{\"result\":\"fresh\",\"status\":\"ok\",\"time\":0}");
  assert_int_equal(srv_get(&S, &S.hits_kareset) - k0, 2);
  assert_int_equal(srv_get(&S, &S.accepted) - acc0, 1);
  /* only once: a reset on the fresh connection too is reported */
  finish(&c);
}

/* The server closes idle keep-alive connections (Qdrant: after 5 s): the next request still works. */
static void test_idle_close(void **st) {
  ctx_t c;
  ctx_init(&c, NULL);
  pthread_mutex_lock(&S.mu);
  S.idle_close_ms = 100;
  pthread_mutex_unlock(&S.mu);
  int acc0 = srv_get(&S, &S.accepted);
  req(&c, "POST", "/echo", "{\"n\":1}");
  run_until(&c, 1);
  usleep(300000); /* the server drops the idle connection meanwhile */
  req(&c, "POST", "/echo", "{\"n\":2}");
  run_until(&c, 2);
  pthread_mutex_lock(&S.mu);
  S.idle_close_ms = 0;
  pthread_mutex_unlock(&S.mu);
  assert_int_equal(c.err[0], 0);
  assert_int_equal(c.err[1], 0);
  assert_int_equal(c.status[1], 200);
  assert_string_equal(c.body[1], "{\"n\":2}");
  assert_int_equal(srv_get(&S, &S.accepted) - acc0, 2);
  finish(&c);
}

static void test_max_concurrent(void **st) {
  ctx_t c;
  p2q_http_options_t o = {0};
  o.max_concurrent = 2;
  ctx_init(&c, &o);
  pthread_mutex_lock(&S.mu);
  int base = S.slow_now; /* a timed-out /slow of an earlier test may still be pending */
  S.slow_max = base;
  pthread_mutex_unlock(&S.mu);
  for (int i = 0; i < 6; i++) req(&c, "GET", "/slow/80", NULL);
  assert_int_equal(p2q_http_pending(c.h), 6);
  run_until(&c, 6);
  for (int i = 0; i < 6; i++) {
    assert_int_equal(c.err[i], 0);
    assert_string_equal(c.body[i], "{\"result\":\"slow\",\"status\":\"ok\",\"time\":0}");
  }
  assert_int_equal(srv_get(&S, &S.slow_max) - base, 2); /* never more than 2 at once */
  finish(&c);
}

/* timeout_ms bounds a request from the moment it is handed over, the wait for a slot included:
   callers budget on it (a worker writes only while its lease outlasts qdrant.timeout). A request
   queued behind a slow one gets only what is left; one whose time ran out in the queue is never
   sent. */
static void test_timeout_counts_from_handover(void **st) {
  ctx_t c;
  p2q_http_options_t o = {0};
  o.max_concurrent = 1;
  o.timeout_ms = 400;
  ctx_init(&c, &o);
  req(&c, "GET", "/slow/250", NULL);
  req(&c, "GET", "/slow/250", NULL); /* starts after ~250 ms with <= 150 ms left */
  run_until(&c, 2);
  assert_int_equal(c.err[1], P2Q_ETIMEOUT);
  assert_int_equal(c.code[1], CURLE_OPERATION_TIMEDOUT);
  finish(&c);
  ctx_init(&c, &o);
  pthread_mutex_lock(&S.mu);
  S.last_body[0] = 0;
  pthread_mutex_unlock(&S.mu);
  req(&c, "GET", "/slow/1000", NULL);              /* times out itself at 400 ms */
  req(&c, "POST", "/echo", "{\"queued\":1}");      /* its 400 ms are gone by then */
  run_until(&c, 2);
  assert_int_equal(c.err[0], P2Q_ETIMEOUT);
  assert_int_equal(c.err[1], P2Q_ETIMEOUT);
  assert_int_equal(c.code[1], CURLE_OPERATION_TIMEDOUT);
  assert_non_null(strstr(c.error[1], "before the request could be sent"));
  pthread_mutex_lock(&S.mu);
  assert_null(strstr(S.last_body, "queued")); /* never reached the server */
  pthread_mutex_unlock(&S.mu);
  finish(&c);
}

static void test_close_cancels(void **st) {
  ctx_t c;
  p2q_http_options_t o = {0};
  o.max_concurrent = 2;
  ctx_init(&c, &o);
  for (int i = 0; i < 3; i++) req(&c, "GET", "/slow/5000", NULL); /* 2 running, 1 queued */
  uint64_t t0 = uv_hrtime();
  for (int i = 0; i < 10; i++) uv_run(&c.loop, UV_RUN_NOWAIT);
  usleep(50000);
  uv_run(&c.loop, UV_RUN_NOWAIT);
  assert_int_equal(c.n, 0);
  assert_int_equal(p2q_http_close(c.h, on_closed, &c), 0);
  assert_int_equal(p2q_http_close(c.h, on_closed, &c), P2Q_EBUSY);
  char url[64];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/", S.port);
  assert_int_equal(p2q_http_request(c.h, "GET", url, NULL, 0, 0, on_resp, &c), P2Q_ECANCELED);
  assert_int_equal(c.n, 0); /* nothing fires inside close */
  uv_run(&c.loop, UV_RUN_DEFAULT);
  assert_int_equal(c.n, 3);
  for (int i = 0; i < 3; i++) assert_int_equal(c.err[i], P2Q_ECANCELED);
  assert_int_equal(c.closed, 1);
  assert_true(uv_hrtime() - t0 < 2000000000ULL);
  assert_int_equal(uv_loop_close(&c.loop), 0);
}

static void test_close_from_callback(void **st) {
  ctx_t c;
  ctx_init(&c, NULL);
  c.close_after = 1;
  req(&c, "GET", "/fast", NULL);
  req(&c, "GET", "/slow/3000", NULL);
  uv_run(&c.loop, UV_RUN_DEFAULT);
  assert_int_equal(c.n, 2);
  assert_int_equal(c.err[0], 0);
  assert_int_equal(c.err[1], P2Q_ECANCELED);
  assert_int_equal(c.closed, 1);
  assert_int_equal(uv_loop_close(&c.loop), 0);
}

static void test_bad_args(void **st) {
  ctx_t c;
  ctx_init(&c, NULL);
  assert_int_equal(p2q_http_request(c.h, "GET", NULL, NULL, 0, 0, on_resp, &c), P2Q_EINVAL);
  assert_int_equal(p2q_http_request(c.h, "GET", "http://x/", NULL, 0, 0, NULL, &c), P2Q_EINVAL);
  assert_int_equal(p2q_http_request(c.h, "POST", "http://x/", NULL, 5, 0, on_resp, &c), P2Q_EINVAL);
  assert_int_equal(p2q_http_new(NULL, NULL, &c.h), P2Q_EINVAL);
  finish(&c);
  assert_int_equal(c.n, 0);
}


/* Retry-After in ms, capped at the client's retry_after_max_ms (the caller's retry_max). */
static void test_retry_after_capped(void **st) {
  ctx_t c;
  p2q_http_options_t o = {0};
  o.retry_after_max_ms = 300000;
  o.max_concurrent = 1; /* completion order = request order */
  ctx_init(&c, &o);
  const char *kinds[] = {"huge", "2037", "2030", "negative", "garbage"};
  int64_t want[] = {300000, 300000, 300000, -1, -1};
  char path[64];
  for (int i = 0; i < 5; i++) {
    snprintf(path, sizeof path, "/retry-raw/%s", kinds[i]);
    req(&c, "GET", path, NULL);
  }
  req(&c, "GET", "/retry-after/7", NULL);
  run_until(&c, 6);
  for (int i = 0; i < 5; i++) {
    assert_int_equal(c.status[i], 429);
    assert_int_equal(c.retry_after[i], want[i]);
  }
  assert_int_equal(c.retry_after[5], 7000);
  finish(&c);
}

static void test_redirect_location(void **st) {
  ctx_t c;
  ctx_init(&c, NULL);
  req(&c, "PUT", "/redirect/307", "{}");
  run_until(&c, 1);
  assert_int_equal(c.err[0], 0);
  assert_int_equal(c.status[0], 307); /* not followed */
  assert_string_equal(c.location[0], "http://user:s3cret@elsewhere:6333/x");
  assert_string_equal(S.last_path, "/redirect/307"); /* the server saw no second request */
  req(&c, "GET", "/status/200", NULL);
  run_until(&c, 2);
  assert_string_equal(c.location[1], ""); /* reset per response */
  finish(&c);
}

static void req_capped(ctx_t *c, const char *path, size_t cap) {
  char url[256];
  snprintf(url, sizeof url, "http://127.0.0.1:%d%s", S.port, path);
  assert_int_equal(p2q_http_request_capped(c->h, "GET", url, NULL, 0, 0, cap, on_resp, c), 0);
}

static void test_body_cap(void **st) {
  ctx_t c;
  p2q_http_options_t o = {0};
  o.max_concurrent = 1;
  o.max_body = 4096; /* the client's default cap */
  ctx_init(&c, &o);
  req_capped(&c, "/huge/2000000", 1 << 20);        /* Content-Length over the cap */
  req_capped(&c, "/hugechunked/2000000", 1 << 20); /* chunked past the cap */
  req_capped(&c, "/huge/1048576", 1 << 20);        /* exactly the cap: fine */
  req_capped(&c, "/hugechunked/1048576", 1 << 20);
  req_capped(&c, "/huge/5000", 0);                 /* the client's default (4096) applies */
  req_capped(&c, "/status/200", 0);
  run_until(&c, 6);
  for (int i = 0; i < 2; i++) {
    assert_int_equal(c.err[i], P2Q_EOVERFLOW);
    assert_int_equal(c.status[i], 200);
    assert_int_equal(c.body_len[i], 0); /* a partial answer is never handed over */
    assert_string_equal(c.error[i], "response body larger than 1048576 bytes: transfer aborted");
  }
  for (int i = 2; i < 4; i++) {
    assert_int_equal(c.err[i], 0);
    assert_int_equal(c.body_len[i], 1048576);
    assert_true(!strncmp(c.body[i], "{\"result\":{\"pad\":\"xxx", 20));
  }
  assert_int_equal(c.err[4], P2Q_EOVERFLOW);
  assert_string_equal(c.error[4], "response body larger than 4096 bytes: transfer aborted");
  assert_int_equal(c.err[5], 0); /* the client keeps working after aborted transfers */
  finish(&c);
}

static long peak_rss_kb(void) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  long kb = -1;
  while (f && fgets(line, sizeof line, f))
    if (!strncmp(line, "VmHWM:", 6)) kb = atol(line + 6);
  if (f) fclose(f);
  return kb;
}

/* A 50 MB answer to a request capped at 1 MiB: the peak RSS grows by far less than the body
 * (before the cap, the same answer cost ~276 MB RSS in the daemon). Printed for the notes. */
static void test_body_cap_rss(void **st) {
  ctx_t c;
  ctx_init(&c, NULL);
  long before = peak_rss_kb();
  req_capped(&c, "/hugechunked/52428800", 1 << 20);
  req_capped(&c, "/huge/52428800", 1 << 20);
  run_until(&c, 2);
  long after = peak_rss_kb();
  print_message("peak RSS before %ld kB, after two 50 MB answers capped at 1 MiB %ld kB (+%ld kB)\n",
                before, after, after - before);
  assert_int_equal(c.err[0], P2Q_EOVERFLOW);
  assert_int_equal(c.err[1], P2Q_EOVERFLOW);
  if (before > 0) assert_true(after - before < 8 * 1024);
  finish(&c);
}

int main(void) {
  p2q_log_configure(P2Q_LOG_WARN, P2Q_LOG_LOGFMT, 2);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_methods_headers_keepalive),
      cmocka_unit_test(test_status_and_retry_after),
      cmocka_unit_test(test_transport_errors),
      cmocka_unit_test(test_keepalive_reset_retried),
      cmocka_unit_test(test_timeout_counts_from_handover),
      cmocka_unit_test(test_idle_close),
      cmocka_unit_test(test_max_concurrent),
      cmocka_unit_test(test_close_cancels),
      cmocka_unit_test(test_close_from_callback),
      cmocka_unit_test(test_bad_args),
      cmocka_unit_test(test_retry_after_capped),
      cmocka_unit_test(test_redirect_location),
      cmocka_unit_test(test_body_cap),
      cmocka_unit_test(test_body_cap_rss),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}

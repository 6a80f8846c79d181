/*
 * test_health.c — per-target health (health.c) on a real libuv loop with fake probes: a
 * collection's breaker stops only the rules writing to it, probes use the target that failed
 * (the collection's name, not the host), configuration failures open at once, a host-wide
 * failure stops every rule, 429 holds the target for Retry-After capped at retry_max, and the
 * events' wait is capped by breaker_max.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg2qdrant/errors.h"
#include "pg2qdrant/health.h"

typedef struct {
  uv_loop_t loop;
  p2q_config_t *cfg;
  p2q_health_t *h;
  char probed[8][64];
  int n_probed;
  p2q_verdict_t answer;       /* what the next probe answers */
  int changed;
} fx_t;

static fx_t X;

typedef struct {
  uv_timer_t t; /* first: the close callback frees the struct through it */
  p2q_health_probe_cb cb;
  void *arg;
} pending_t;

static void fire(uv_timer_t *t) {
  pending_t *p = t->data;
  p->cb(p->arg, X.answer, -1, X.answer == P2Q_V_DONE ? "" : "still failing");
  uv_close((uv_handle_t *)&p->t, (uv_close_cb)free);
}

static int start_probe(const char *what, p2q_health_probe_cb cb, void *arg) {
  snprintf(X.probed[X.n_probed++ % 8], 64, "%s", what);
  pending_t *p = calloc(1, sizeof *p);
  p->cb = cb;
  p->arg = arg;
  uv_timer_init(&X.loop, &p->t);
  p->t.data = p;
  uv_timer_start(&p->t, fire, 1, 0);
  return 0;
}

static int probe_qdrant(void *a, const char *coll, p2q_health_probe_cb cb, void *arg) {
  return start_probe(coll ? coll : "(host)", cb, arg);
}
static int probe_embedder(void *a, const char *name, p2q_health_probe_cb cb, void *arg) {
  return start_probe(name, cb, arg);
}
static void changed(void *a) { X.changed++; }

static const char CONF[] =
    "[daemon]\nbreaker_threshold = 3\nbreaker_max = 300ms\nretry_min = 100ms\nretry_max = 2s\n"
    "[embedder.e]\ntype = openai\nurl = http://127.0.0.1:9/v1\nmodel = m\n"
    "[rule.a]\ntable = public.a\nkey = id\nvector_column = v\ndimension = 2\ncollection = ca\n"
    "[rule.b]\ntable = public.b\nkey = id\nvector_column = v\ndimension = 2\ncollection = cb\n"
    "[rule.c]\ntable = public.c\nkey = id\ntext = t\nembedder = e\ndimension = 2\ncollection = cb\n"
    "[worker.w1]\nevent_types = a, b, c\n";

static void setup(void) {
  char err[512];
  memset(&X, 0, sizeof X);
  assert_int_equal(uv_loop_init(&X.loop), 0);
  int rc = p2q_config_load_string(CONF, "t.ini", &X.cfg, err, sizeof err);
  if (rc) fprintf(stderr, "%s\n", err);
  assert_int_equal(rc, 0);
  p2q_health_io_t io = {.arg = &X, .probe_qdrant = probe_qdrant, .probe_embedder = probe_embedder,
                        .changed = changed};
  assert_int_equal(p2q_health_new(&X.loop, X.cfg, &io, &X.h), 0);
}

static void teardown(void) {
  p2q_health_close(X.h);
  uv_run(&X.loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&X.loop), 0);
  p2q_health_free(X.h);
  p2q_config_free(X.cfg);
}

/* run the loop until cond or ~3 s */
#define RUN_UNTIL(cond)                                                        \
  do {                                                                         \
    for (int i_ = 0; i_ < 300 && !(cond); i_++) {                              \
      uv_update_time(&X.loop);                                                 \
      uv_run(&X.loop, UV_RUN_NOWAIT);                                          \
      struct timespec ts_ = {0, 10 * 1000 * 1000};                             \
      nanosleep(&ts_, NULL);                                                   \
    }                                                                          \
  } while (0)

static p2q_target_info_t info(const char *name) {
  p2q_target_info_t t;
  memset(&t, 0, sizeof t);
  for (int i = 0; i < p2q_health_count(X.h); i++) {
    p2q_health_target(X.h, i, &t);
    if (!strcmp(t.name, name)) return t;
  }
  fail_msg("no target %s", name);
  return t;
}

static void test_targets(void **st) {
  setup();
  assert_int_equal(p2q_health_count(X.h), 4); /* qdrant, collection:ca, collection:cb, embedder:e */
  assert_string_equal(info("collection:ca").name, "collection:ca");
  assert_int_equal(info("embedder:e").kind, P2Q_TARGET_EMBEDDER);
  p2q_buf_t why = P2Q_BUF_INIT;
  assert_true(p2q_health_ready(X.h, &why));
  p2q_buf_free(&why);
  teardown();
}

static void test_collection_breaker_stops_only_its_rules(void **st) {
  setup();
  uint64_t w1 = p2q_health_report(X.h, 1, 0, P2Q_V_TRANSIENT, 0, -1, "HTTP 503");
  uint64_t w2 = p2q_health_report(X.h, 1, 0, P2Q_V_TRANSIENT, 0, -1, "HTTP 503");
  assert_int_equal(w1, 100);                  /* retry_min, then doubling */
  assert_int_equal(w2, 200);
  assert_true(p2q_health_rule_allows(X.h, 1));
  uint64_t w3 = p2q_health_report(X.h, 1, 0, P2Q_V_TRANSIENT, 0, 99999999, "HTTP 503"); /* opens */
  assert_int_equal(w3, 300);                  /* Retry-After raises it, breaker_max caps it */
  assert_false(p2q_health_rule_allows(X.h, 1));
  assert_false(p2q_health_rule_allows(X.h, 2)); /* c writes to cb too */
  assert_true(p2q_health_rule_allows(X.h, 0));  /* a's collection is fine */
  assert_int_equal(info("collection:cb").state, P2Q_BREAKER_OPEN);
  assert_int_equal(info("collection:cb").reason, P2Q_V_TRANSIENT);
  p2q_buf_t why = P2Q_BUF_INIT;
  assert_false(p2q_health_ready(X.h, &why));
  assert_non_null(strstr(p2q_buf_str(&why), "collection:cb"));
  p2q_buf_free(&why);
  /* the probe goes to that collection; failing, it stays open; then it closes */
  X.answer = P2Q_V_TRANSIENT;
  RUN_UNTIL(X.n_probed >= 1 && info("collection:cb").state == P2Q_BREAKER_OPEN);
  assert_string_equal(X.probed[0], "cb");
  assert_false(p2q_health_rule_allows(X.h, 1));
  X.answer = P2Q_V_DONE;
  RUN_UNTIL(X.changed);
  assert_int_equal(X.changed, 1);
  assert_true(p2q_health_rule_allows(X.h, 1));
  assert_int_equal(info("collection:cb").state, P2Q_BREAKER_CLOSED);
  teardown();
}

static void test_config_opens_at_once_and_host_wide_stops_all(void **st) {
  setup();
  p2q_health_report(X.h, 0, 0, P2Q_V_CONFIG, 0, -1, "HTTP 401");
  assert_false(p2q_health_rule_allows(X.h, 0));
  assert_true(p2q_health_rule_allows(X.h, 1));
  assert_int_equal(info("collection:ca").reason, P2Q_V_CONFIG);
  for (int i = 0; i < 3; i++) p2q_health_report(X.h, 1, 0, P2Q_V_TRANSIENT, 1, -1, "connection refused");
  assert_int_equal(info("qdrant").state, P2Q_BREAKER_OPEN);
  for (int r = 0; r < 3; r++) assert_false(p2q_health_rule_allows(X.h, r));
  X.answer = P2Q_V_DONE;
  RUN_UNTIL(p2q_health_rule_allows(X.h, 1));
  int host_probed = 0;
  for (int i = 0; i < X.n_probed && i < 8; i++) host_probed |= !strcmp(X.probed[i], "(host)");
  assert_true(host_probed);
  RUN_UNTIL(p2q_health_rule_allows(X.h, 0));
  assert_true(p2q_health_rule_allows(X.h, 0));
  teardown();
}

static void test_rate_limit_hold(void **st) {
  setup();
  uint64_t held = p2q_health_report(X.h, 0, 0, P2Q_V_RATE_LIMITED, 0, 99999999999L, "HTTP 429");
  assert_int_equal(held, 2000);                   /* absurd Retry-After: capped at retry_max */
  assert_false(p2q_health_rule_allows(X.h, 0));   /* every worker of the process waits */
  assert_true(p2q_health_rule_allows(X.h, 1));
  assert_int_equal(info("collection:ca").state, P2Q_BREAKER_CLOSED); /* backpressure, not an outage */
  assert_int_equal(info("collection:ca").rate_limited, 1);
  p2q_health_report(X.h, 0, 0, P2Q_V_RATE_LIMITED, 0, 300, "HTTP 429"); /* a shorter one does not shorten it */
  assert_true(info("collection:ca").held_ms > 1000);
  teardown();
  setup();
  held = p2q_health_report(X.h, 0, 0, P2Q_V_RATE_LIMITED, 0, 150, "HTTP 429");
  assert_int_equal(held, 150);
  RUN_UNTIL(X.changed);
  assert_true(p2q_health_rule_allows(X.h, 0));
  teardown();
}

/* After a 429 the collection's requests are paced (AIMD in ratelimit.c): requests sent beyond
   the halved rate put the budget in debt and the claims wait until it is paid back. */
static void test_pacing_after_429(void **st) {
  setup();
  for (int i = 0; i < 20; i++) p2q_health_spend(X.h, "ca"); /* ~20 requests in a burst */
  assert_true(p2q_health_rule_allows(X.h, 0));                /* unlimited until a 429 */
  p2q_health_report(X.h, 0, 0, P2Q_V_RATE_LIMITED, 0, 100, "HTTP 429");
  assert_false(p2q_health_rule_allows(X.h, 0));
  RUN_UNTIL(p2q_health_rule_allows(X.h, 0));                  /* the pause ends */
  assert_true(p2q_health_rule_allows(X.h, 0));
  int changed = X.changed;
  for (int i = 0; i < 15; i++) p2q_health_spend(X.h, "ca"); /* more than the halved rate allows */
  assert_false(p2q_health_rule_allows(X.h, 0));
  assert_true(p2q_health_rule_allows(X.h, 1));                /* the other collection is not paced */
  RUN_UNTIL(X.changed > changed && p2q_health_rule_allows(X.h, 0)); /* paid back: the timer wakes */
  assert_true(X.changed > changed);
  assert_true(p2q_health_rule_allows(X.h, 0));
  teardown();
}

static void test_embedder_target(void **st) {
  setup();
  for (int i = 0; i < 3; i++) p2q_health_report(X.h, 2, 1, P2Q_V_TRANSIENT, 0, -1, "embedder down");
  assert_false(p2q_health_rule_allows(X.h, 2));
  assert_true(p2q_health_rule_allows(X.h, 1)); /* same collection, no embedder */
  X.answer = P2Q_V_DONE;
  RUN_UNTIL(p2q_health_rule_allows(X.h, 2));
  assert_string_equal(X.probed[0], "e");
  assert_true(p2q_health_rule_allows(X.h, 2));
  teardown();
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_targets),
      cmocka_unit_test(test_collection_breaker_stops_only_its_rules),
      cmocka_unit_test(test_config_opens_at_once_and_host_wide_stops_all),
      cmocka_unit_test(test_rate_limit_hold),
      cmocka_unit_test(test_pacing_after_429),
      cmocka_unit_test(test_embedder_target),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

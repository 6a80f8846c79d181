/*
 * test_worker.c — the worker's outcome logic through its context, with fakes: an outbox that
 * records claims and acks, a writer whose answers the test gives, a health gate that records
 * reports and allows rules per test. Every outcome class of classify.h reaches the ack as the
 * right outcome (done / requeue without an attempt / retry or dead with one), bisection of
 * 400/422/413, and the claim asks only for the event types of healthy rules. Plus the pure
 * classifier itself.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pg2qdrant/classify.h"
#include "pg2qdrant/errors.h"
#include "pg2qdrant/batch.h"
#include "pg2qdrant/worker.h"

#define MAXN 64

typedef struct {
  char *coll;
  p2q_op_t op;
  char *body;
  p2q_qdrant_cb cb;
  void *arg;
  int answered;
} fwrite_t;

typedef struct {
  uv_loop_t loop;
  p2q_config_t *cfg;
  uint64_t now;
  int stopping;
  /* outbox: every session is F itself; cbs is the first one's (the worker's first claimer) */
  p2q_outbox_conn_cbs_t cbs;
  p2q_outbox_conn_cbs_t lane_cbs[4]; /* each session's, in the order opened */
  int n_opens;
  p2q_claim_cb claim_cb;
  void *claim_arg;
  int claims;
  char types[8][32];
  int n_types;
  int ack_calls;
  int ack_claims;         /* acks that rode on a claim (also counted in claims) */
  p2q_ack_item_t acks[MAXN];
  char *ack_err[MAXN];
  int n_acks;
  p2q_ack_cb ack_cb;
  void *ack_arg;
  /* writer */
  fwrite_t w[MAXN];
  int n_w;
  int n_lent;           /* writes whose body was lent (the batch's prebuilt request body) */
  /* health */
  int allow[4];
  struct { int rule, embedder, host_wide; p2q_verdict_t v; int64_t ra; } rep[MAXN];
  int n_rep;
  uint64_t wait;
  /* liveness (recover.h): fenced → 0, else epoch + 1 (so 1 by default) */
  int fenced;
  uint32_t epoch;
  int paced;              /* a target held back by a 429 (health.h) */
} fake_t;

static fake_t F;

static const p2q_config_t *f_config(void *a) { return ((fake_t *)a)->cfg; }
static uint64_t f_now(void *a) { return ((fake_t *)a)->now; }
static int f_open(void *a, const char *name, const p2q_outbox_conn_cbs_t *cbs, p2q_outbox_conn_t **out) {
  fake_t *f = a;
  if (f->n_opens == 0) f->cbs = *cbs;
  if (f->n_opens < 4) f->lane_cbs[f->n_opens] = *cbs;
  f->n_opens++;
  *out = (p2q_outbox_conn_t *)a;
  return 0;
}
static int f_claim(p2q_outbox_conn_t *c, const char *const *types, int n, const char *rk, int limit, int64_t lease,
                   p2q_claim_cb cb, void *arg) {
  fake_t *f = (fake_t *)c;
  f->claims++;
  f->n_types = n;
  for (int i = 0; i < n && i < 8; i++) snprintf(f->types[i], sizeof f->types[i], "%s", types[i]);
  f->claim_cb = cb;
  f->claim_arg = arg;
  return 0;
}
static int f_ack(p2q_outbox_conn_t *c, const p2q_ack_item_t *items, int n, p2q_ack_cb cb, void *arg) {
  fake_t *f = (fake_t *)c;
  f->ack_calls++;
  for (int i = 0; i < n && f->n_acks < MAXN; i++) {
    f->acks[f->n_acks] = items[i];
    f->ack_err[f->n_acks] = items[i].error ? strdup(items[i].error) : NULL;
    f->acks[f->n_acks].error = f->ack_err[f->n_acks];
    f->acks[f->n_acks].rule = NULL; /* pointers valid during the call only */
    f->acks[f->n_acks].row_key = NULL;
    f->n_acks++;
  }
  f->ack_cb = cb;
  f->ack_arg = arg;
  return 0;
}
static int f_ack_claim(p2q_outbox_conn_t *c, const p2q_ack_item_t *items, int n, const char *const *types,
                       int n_types, const char *rk, int limit, int64_t lease, p2q_claim_cb cb, void *arg) {
  fake_t *f = (fake_t *)c;
  f_ack(c, items, n, NULL, NULL);
  f->ack_calls--;
  f->ack_claims++;
  return f_claim(c, types, n_types, rk, limit, lease, cb, arg);
}
static int use_ack_claim; /* setup_worker: acks may ride on claims (linger_ms 5) */
static void f_close(p2q_outbox_conn_t *c, void (*cb)(void *), void *arg) { if (cb) cb(arg); }
static int f_write(void *a, const char *coll, p2q_op_t op, char *body, size_t len, int lent, p2q_qdrant_cb cb,
                   void *arg) {
  fake_t *f = a;
  fwrite_t *w = &f->w[f->n_w++];
  w->coll = strdup(coll);
  w->op = op;
  w->body = lent ? strndup(body, len) : body; /* a lent body is the batch's: kept as a copy */
  f->n_lent += lent;
  w->cb = cb;
  w->arg = arg;
  w->answered = 0;
  return 0;
}
static int f_embed(void *a, const char *e, const char *const *t, const size_t *l, int n, p2q_embedder_cb cb,
                   void *arg) {
  return P2Q_EINVAL;
}
static int f_may_claim(void *a, int rule) { return ((fake_t *)a)->allow[rule]; }
static int f_paced(void *a, int rule) { return ((fake_t *)a)->paced; }
static uint64_t wait_override; /* a wait for every report (setup_worker clears F) */
static uint64_t f_report(void *a, int rule, int emb, p2q_verdict_t v, int hw, int64_t ra, const char *msg) {
  fake_t *f = a;
  f->rep[f->n_rep].rule = rule;
  f->rep[f->n_rep].embedder = emb;
  f->rep[f->n_rep].v = v;
  f->rep[f->n_rep].host_wide = hw;
  f->rep[f->n_rep].ra = ra;
  f->n_rep++;
  return v == P2Q_V_DONE || v == P2Q_V_SPLIT || v == P2Q_V_EVENT_FAULT ? 0 : wait_override ? wait_override : f->wait;
}
static int f_stopping(void *a) { return ((fake_t *)a)->stopping; }
static uint32_t f_liveness(void *a) { return ((fake_t *)a)->fenced ? 0 : ((fake_t *)a)->epoch + 1; }

static const char CONF[] =
    "[rule.a]\ntable = public.a\nkey = id\nvector_column = v\ndimension = 2\ncollection = ca\n"
    "[rule.b]\ntable = public.b\nkey = id\nvector_column = v\ndimension = 2\ncollection = cb\n"
    "[worker.w1]\nevent_types = a, b\nbatch_size = 16\nlinger_ms = 0\nmax_inflight = 1\n";
static int claimers = 1; /* setup_worker: the worker's claimers (the shipped default is 2) */

static p2q_worker_t *setup_worker(void) {
  char err[512];
  p2q_worker_t *w = NULL;
  for (int i = 0; i < F.n_acks; i++) free(F.ack_err[i]);
  for (int i = 0; i < F.n_w; i++) free(F.w[i].coll);
  memset(&F, 0, sizeof F);
  assert_int_equal(uv_loop_init(&F.loop), 0);
  assert_int_equal(p2q_config_load_string(CONF, "t.ini", &F.cfg, err, sizeof err), 0);
  F.allow[0] = F.allow[1] = 1;
  if (use_ack_claim) F.cfg->workers[0].linger_ms = 5;
  F.cfg->workers[0].claimers = claimers;
  F.wait = 1234;
  F.now = 1000;
  p2q_worker_ctx_t c = {.arg = &F, .loop = &F.loop, .config = f_config, .now = f_now, .outbox_open = f_open,
                        .claim = f_claim, .ack = f_ack, .outbox_close = f_close, .write = f_write,
                        .embed = f_embed, .may_claim = f_may_claim, .paced = f_paced, .report = f_report, .stopping = f_stopping,
                        .liveness = f_liveness, .ack_claim = use_ack_claim ? f_ack_claim : NULL};
  assert_int_equal(p2q_worker_new(&c, &F.cfg->workers[0], &w), 0);
  for (int i = 0; i < F.n_opens && i < 4; i++) F.lane_cbs[i].ready(F.lane_cbs[i].arg, "1.2", 0); /* connected */
  return w;
}

static void teardown_worker(p2q_worker_t *w) {
  p2q_worker_close(w, NULL, NULL);
  uv_run(&F.loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&F.loop), 0);
  p2q_config_free(F.cfg);
  for (int i = 0; i < F.n_w; i++) if (!F.w[i].answered) free(F.w[i].body);
}

/* n upserts of rule (0 = a, 1 = b), ids from 1, with attempts already counted at the claim */
static void deliver(int n, const char *rule, int attempts, int max_attempts) {
  p2q_claim_row_t rows[MAXN];
  char keys[MAXN][32], payloads[MAXN][64];
  for (int i = 0; i < n; i++) {
    snprintf(keys[i], sizeof keys[i], "{\"id\": %d}", i + 1);
    snprintf(payloads[i], sizeof payloads[i], "{\"id\": %d, \"v\": [1, %d]}", i + 1, i);
    rows[i] = (p2q_claim_row_t){.id = 100 + i, .rule = rule, .op = P2Q_OP_UPSERT, .row_key = keys[i],
                                .payload = payloads[i], .attempts = attempts, .max_attempts = max_attempts,
                                .created_at = 1.0};
  }
  assert_non_null(F.claim_cb);
  p2q_claim_cb cb = F.claim_cb;
  F.claim_cb = NULL;
  cb(F.claim_arg, 0, NULL, rows, n);
}

static void answer(int i, long status, int err, int curl, p2q_qdrant_class_t cls, long retry_ms) {
  p2q_qdrant_resp_t r;
  memset(&r, 0, sizeof r);
  r.status = status;
  r.err = err;
  r.curl_code = curl;
  r.cls = cls;
  r.retry_delay_ms = retry_ms;
  r.error = status >= 300 || err ? "injected" : "";
  fwrite_t *w = &F.w[i];
  assert_false(w->answered);
  w->answered = 1;
  free(w->body);
  w->body = NULL;
  w->cb(NULL, &r, w->arg);
}

static void acked(void) {
  assert_non_null(F.ack_cb);
  p2q_ack_cb cb = F.ack_cb;
  F.ack_cb = NULL;
  cb(F.ack_arg, 0, NULL);
}

/* One request of 3 events answered (status, …): every event gets outcome with delay. */
static void one_class(long status, int err, int curl, p2q_qdrant_class_t cls, long ra, p2q_outcome_t outcome,
                      int delay, p2q_verdict_t v, int host_wide) {
  p2q_worker_t *w = setup_worker();
  deliver(3, "a", 1, 10);
  assert_int_equal(F.n_w, 1);
  assert_string_equal(F.w[0].coll, "ca");
  answer(0, status, err, curl, cls, ra);
  assert_int_equal(F.ack_calls, 1);
  assert_int_equal(F.n_acks, 3);
  for (int i = 0; i < 3; i++) {
    assert_int_equal(F.acks[i].outcome, outcome);
    if (delay >= 0) assert_int_equal(F.acks[i].delay_ms, delay);
  }
  if (v == P2Q_V_CANCELED) {
    assert_int_equal(F.n_rep, 0); /* nobody's fault: no health report */
  } else {
    assert_int_equal(F.n_rep, 1);
    assert_int_equal(F.rep[0].v, v);
    assert_int_equal(F.rep[0].rule, 0);
    assert_int_equal(F.rep[0].embedder, 0);
    assert_int_equal(F.rep[0].host_wide, host_wide);
    if (v == P2Q_V_RATE_LIMITED) assert_int_equal(F.rep[0].ra, ra);
  }
  acked();
  const p2q_stats_t *s = p2q_worker_stats(w);
  assert_int_equal(s->claimed, 3);
  assert_int_equal(s->applied, outcome == P2Q_OUTCOME_DONE ? 3 : 0);
  assert_int_equal(s->requeued, outcome == P2Q_OUTCOME_REQUEUE ? 3 : 0);
  assert_int_equal(s->retried + s->dead, 0);
  assert_int_equal(s->rate_limited, v == P2Q_V_RATE_LIMITED ? 1 : 0);
  teardown_worker(w);
}

/* Issue 9: 64-bit arithmetic on the whole delay path: a wait beyond 2^31 ms (the health module
   caps it at retry_max; the type must not) reaches the ack unchanged, never narrowed to int. */
static void test_delay_is_64_bit(void **st) {
  wait_override = 3000000000ULL;
  one_class(503, P2Q_EQDRANT, 0, P2Q_QDRANT_RETRY, -1, P2Q_OUTCOME_REQUEUE, -1, P2Q_V_TRANSIENT, 0);
  for (int i = 0; i < 3; i++) assert_true(F.acks[i].delay_ms == (int64_t)3000000000LL);
  wait_override = 0;
}

static void test_done(void **st) {
  one_class(200, 0, 0, P2Q_QDRANT_OK, -1, P2Q_OUTCOME_DONE, 0, P2Q_V_DONE, 0);
}
static void test_error_envelope_is_not_success(void **st) { /* 200 with an error envelope / garbage */
  one_class(200, P2Q_EBADJSON, 0, P2Q_QDRANT_RETRY, -1, P2Q_OUTCOME_REQUEUE, 1234, P2Q_V_TRANSIENT, 0);
  one_class(200, P2Q_EQDRANT, 0, P2Q_QDRANT_RETRY, -1, P2Q_OUTCOME_REQUEUE, 1234, P2Q_V_TRANSIENT, 0);
}
static void test_server_errors_cost_time(void **st) {
  one_class(503, P2Q_EQDRANT, 0, P2Q_QDRANT_RETRY, -1, P2Q_OUTCOME_REQUEUE, 1234, P2Q_V_TRANSIENT, 0);
  one_class(500, P2Q_EQDRANT, 0, P2Q_QDRANT_RETRY, -1, P2Q_OUTCOME_REQUEUE, 1234, P2Q_V_TRANSIENT, 0);
  one_class(408, P2Q_EQDRANT, 0, P2Q_QDRANT_RETRY, -1, P2Q_OUTCOME_REQUEUE, 1234, P2Q_V_TRANSIENT, 0);
  one_class(502, P2Q_EQDRANT, 0, P2Q_QDRANT_RETRY, -1, P2Q_OUTCOME_REQUEUE, 1234, P2Q_V_TRANSIENT, 0);
  one_class(307, P2Q_EQDRANT, 0, P2Q_QDRANT_RETRY, -1, P2Q_OUTCOME_REQUEUE, 1234, P2Q_V_TRANSIENT, 0); /* not followed */
}
static void test_transport_errors(void **st) {
  /* reset mid-answer (curl 56): the collection's; cannot connect (curl 7): the host's */
  one_class(0, P2Q_EHTTP, 56, P2Q_QDRANT_RETRY, -1, P2Q_OUTCOME_REQUEUE, 1234, P2Q_V_TRANSIENT, 0);
  one_class(0, P2Q_EHTTP, 7, P2Q_QDRANT_RETRY, -1, P2Q_OUTCOME_REQUEUE, 1234, P2Q_V_TRANSIENT, 1);
  one_class(0, P2Q_ETIMEOUT, 28, P2Q_QDRANT_RETRY, -1, P2Q_OUTCOME_REQUEUE, 1234, P2Q_V_TRANSIENT, 0);
}
static void test_rate_limited(void **st) {
  one_class(429, P2Q_EQDRANT, 0, P2Q_QDRANT_RATE, 2000, P2Q_OUTCOME_REQUEUE, 1234, P2Q_V_RATE_LIMITED, 0);
}
static void test_config_and_missing(void **st) {
  one_class(401, P2Q_EQDRANT, 0, P2Q_QDRANT_CONFIG, -1, P2Q_OUTCOME_REQUEUE, 1234, P2Q_V_CONFIG, 0);
  one_class(403, P2Q_EQDRANT, 0, P2Q_QDRANT_CONFIG, -1, P2Q_OUTCOME_REQUEUE, 1234, P2Q_V_CONFIG, 0);
  one_class(404, P2Q_EQDRANT, 0, P2Q_QDRANT_CONFIG, -1, P2Q_OUTCOME_REQUEUE, 1234, P2Q_V_CONFIG, 0); /* no route */
  one_class(404, P2Q_EQDRANT, 0, P2Q_QDRANT_MISSING, -1, P2Q_OUTCOME_REQUEUE, 1234, P2Q_V_MISSING, 0);
}
static void test_cancelled(void **st) {
  one_class(0, P2Q_ECANCELED, 0, P2Q_QDRANT_RETRY, -1, P2Q_OUTCOME_REQUEUE, 0, P2Q_V_CANCELED, 0);
}

/* 400/422/413 on several points: halves, no attempt; alone: the event's fault. */
static void bisect(long status, int attempts, p2q_outcome_t bad_outcome) {
  p2q_qdrant_class_t cls = status == 413 ? P2Q_QDRANT_TOO_LARGE : P2Q_QDRANT_PERMANENT;
  p2q_worker_t *w = setup_worker();
  deliver(4, "a", attempts, 3);
  answer(0, status, P2Q_EQDRANT, 0, cls, -1);  /* [1 2 3 4] → [1 2] [3 4] */
  assert_int_equal(F.n_w, 3);
  answer(1, 200, 0, 0, P2Q_QDRANT_OK, -1);                      /* [1 2] fine */
  answer(2, status, P2Q_EQDRANT, 0, cls, -1);  /* [3 4] → [3] [4] */
  assert_int_equal(F.n_w, 5);
  answer(3, 200, 0, 0, P2Q_QDRANT_OK, -1);
  assert_int_equal(F.ack_calls, 0);
  answer(4, status, P2Q_EQDRANT, 0, cls, -1);  /* [4] alone: its fault */
  assert_int_equal(F.ack_calls, 1);
  assert_int_equal(F.n_acks, 4);
  for (int i = 0; i < 3; i++) assert_int_equal(F.acks[i].outcome, P2Q_OUTCOME_DONE);
  assert_int_equal(F.acks[3].id, 103);
  assert_int_equal(F.acks[3].outcome, bad_outcome);
  assert_non_null(F.acks[3].error);
  assert_int_equal(p2q_worker_stats(w)->splits, 2);
  for (int i = 0; i < F.n_rep; i++) /* the target answered every time: nothing against it */
    assert_true(F.rep[i].v == P2Q_V_DONE || F.rep[i].v == P2Q_V_SPLIT || F.rep[i].v == P2Q_V_EVENT_FAULT);
  acked();
  assert_int_equal(p2q_worker_stats(w)->applied, 3);
  teardown_worker(w);
}

/* The upserts' request body is built in place while the points are (lent to the writer, not
   copied); the halves of a split are copies of its points: together they are the whole again. */
static void test_body_built_in_place(void **st) {
  p2q_worker_t *w = setup_worker();
  deliver(4, "a", 1, 3);
  assert_int_equal(F.n_w, 1);
  assert_int_equal(F.n_lent, 1);
  char *whole = strdup(F.w[0].body);
  assert_true(!strncmp(whole, "{\"points\":[{\"id\":1,", 19));
  assert_string_equal(whole + strlen(whole) - 3, "}]}");
  answer(0, 400, P2Q_EQDRANT, 0, P2Q_QDRANT_PERMANENT, -1);
  assert_int_equal(F.n_w, 3);
  assert_int_equal(F.n_lent, 1);
  p2q_buf_t again = P2Q_BUF_INIT;
  p2q_buf_append(&again, F.w[1].body, strlen(F.w[1].body) - 2);
  p2q_buf_putc(&again, ',');
  p2q_buf_puts(&again, F.w[2].body + 11);
  assert_string_equal(again.data, whole);
  p2q_buf_free(&again);
  free(whole);
  answer(1, 200, 0, 0, P2Q_QDRANT_OK, -1);
  answer(2, 200, 0, 0, P2Q_QDRANT_OK, -1);
  acked();
  assert_int_equal(p2q_worker_stats(w)->applied, 4);
  teardown_worker(w);
}

static void test_bisect_400(void **st) { bisect(400, 1, P2Q_OUTCOME_RETRY); }
static void test_bisect_422_dead_after_attempts(void **st) { bisect(422, 3, P2Q_OUTCOME_DEAD); }
static void test_bisect_413(void **st) { bisect(413, 1, P2Q_OUTCOME_RETRY); }

/* A split cannot go on once the shutdown cancelled requests: the events go back unharmed. */
static void test_split_when_forced(void **st) {
  p2q_worker_t *w = setup_worker();
  deliver(2, "a", 1, 3);
  F.stopping = 2;
  answer(0, 400, P2Q_EQDRANT, 0, P2Q_QDRANT_PERMANENT, -1);
  assert_int_equal(F.n_w, 1);
  assert_int_equal(F.acks[0].outcome, P2Q_OUTCOME_REQUEUE);
  assert_int_equal(F.acks[1].outcome, P2Q_OUTCOME_REQUEUE);
  acked();
  teardown_worker(w);
}

/* A process that cannot confirm its liveness claims nothing, and a batch claimed before such a
   period sends nothing more, even once liveness is back (its claims may have been freed): its
   events go back without losing an attempt. */
static void test_liveness_fence(void **st) {
  p2q_worker_t *w = setup_worker();
  deliver(4, "a", 1, 3);
  assert_int_equal(F.n_w, 1);
  F.fenced = 1;
  answer(0, 400, P2Q_EQDRANT, 0, P2Q_QDRANT_PERMANENT, -1); /* the split would send two halves */
  assert_int_equal(F.n_w, 1);
  assert_int_equal(F.n_acks, 4);
  for (int i = 0; i < 4; i++) {
    assert_int_equal(F.acks[i].outcome, P2Q_OUTCOME_REQUEUE);
    assert_non_null(strstr(F.acks[i].error, "liveness_unconfirmed"));
  }
  int claims = F.claims;
  acked();                        /* the ack frees a slot, but the fence holds the claim */
  assert_int_equal(F.claims, claims);
  F.fenced = 0;
  F.epoch = 1;                    /* liveness back: a new epoch */
  p2q_worker_wake(w);
  assert_int_equal(F.claims, claims + 1);
  deliver(2, "a", 1, 3);          /* claimed in the new epoch: writes */
  assert_int_equal(F.n_w, 2);
  F.epoch = 2;                    /* a fence came and went before its split */
  answer(1, 400, P2Q_EQDRANT, 0, P2Q_QDRANT_PERMANENT, -1);
  assert_int_equal(F.n_w, 2);
  assert_int_equal(F.acks[4].outcome, P2Q_OUTCOME_REQUEUE);
  assert_int_equal(F.acks[5].outcome, P2Q_OUTCOME_REQUEUE);
  acked();
  teardown_worker(w);
}

/* The lease runs from the claim's execution in PostgreSQL, which is after the claim was SENT but
   may be long before its answer is handled (a claim waiting on a lease row's lock, a starved
   loop): the write budget (lease - qdrant.timeout - 1 s) counts from the send, else a write could
   still run when the lease expires and another worker writes the row's newer snapshot. */
static void test_lease_budget_from_claim_sent(void **st) {
  p2q_worker_t *w = setup_worker();                      /* claim sent at F.now */
  int64_t budget = F.cfg->lease_ms - F.cfg->qdrant_timeout_ms - 1000;
  F.now += (uint64_t)budget;                             /* its answer handled this much later */
  deliver(2, "a", 1, 3);
  assert_int_equal(F.n_w, 0);                            /* too late to write: nothing sent */
  assert_int_equal(F.n_acks, 2);
  for (int i = 0; i < 2; i++) {
    assert_int_equal(F.acks[i].outcome, P2Q_OUTCOME_REQUEUE);
    assert_non_null(strstr(F.acks[i].error, "lease_nearly_expired"));
  }
  acked();
  p2q_worker_wake(w);                                    /* a notification: claims again */
  deliver(1, "a", 1, 3);                                 /* answered at once: writes */
  assert_int_equal(F.n_w, 1);
  answer(0, 200, 0, 0, P2Q_QDRANT_OK, -1);
  acked();
  teardown_worker(w);
}

/* An ack claims again only when the last claim held events back behind a row's lease (its
   'held' row) or a wake-up came since; the 'held' row is no event and no progress. */
static void test_claim_after_ack_only_when_held(void **st) {
  p2q_worker_t *w = setup_worker();
  assert_int_equal(F.claims, 1);
  p2q_claim_row_t rows[2] = {
      {.id = 1, .rule = "a", .op = P2Q_OP_UPSERT, .row_key = "{\"id\": 1}", .payload = "{\"id\": 1, \"v\": [1, 2]}",
       .attempts = 1, .max_attempts = 10},
      {.id = 3, .rule = "", .op = P2Q_OP_HELD, .row_key = ""}};
  F.claim_cb(F.claim_arg, 0, NULL, rows, 2); /* one event, 3 rows held back by leases */
  assert_int_equal(F.n_w, 1);
  assert_int_equal(p2q_worker_stats(w)->claimed, 1);
  assert_int_equal(F.claims, 1);
  answer(0, 200, 0, 0, P2Q_QDRANT_OK, -1);
  assert_int_equal(F.n_acks, 1); /* the held row is not acked */
  acked();
  assert_int_equal(F.claims, 2); /* held back: claims again after the ack */
  deliver(1, "a", 1, 3);
  answer(1, 200, 0, 0, P2Q_QDRANT_OK, -1);
  acked();
  assert_int_equal(F.claims, 2); /* nothing held back: the ack does not claim */
  p2q_worker_wake(w);
  assert_int_equal(F.claims, 3);
  deliver(0, "a", 1, 3);
  teardown_worker(w);
}

/* The policy alone: held back with a batch of our own in flight waits for its ack; with nothing
   in flight it looks again by itself, 50 ms doubling to 1 s, until a claim holds nothing back. */
static void test_batch_held_delay(void **st) {
  p2q_batch_t b;
  p2q_batch_init(&b, 10, 2, 0);
  p2q_batch_on_wake(&b);
  assert_int_equal(p2q_batch_next(&b), P2Q_BATCH_CLAIM);
  p2q_batch_on_claim_sent(&b);
  p2q_batch_on_claimed(&b, 1, 1, 2);          /* a batch, and rows held back */
  assert_int_equal(p2q_batch_held_delay(&b), 0); /* our ack will claim again */
  assert_int_equal(p2q_batch_next(&b), P2Q_BATCH_WAIT);
  p2q_batch_on_acked(&b);
  assert_int_equal(p2q_batch_next(&b), P2Q_BATCH_CLAIM);
  int64_t want[] = {50, 100, 200, 400, 800, 1000, 1000};
  for (int i = 0; i < 7; i++) {
    p2q_batch_on_claim_sent(&b);
    p2q_batch_on_claimed(&b, 0, 0, 1);        /* only held back, nothing in flight */
    assert_int_equal(p2q_batch_held_delay(&b), want[i]);
    assert_int_equal(p2q_batch_next(&b), P2Q_BATCH_WAIT); /* no spinning */
    p2q_batch_on_wake(&b);                    /* the timer */
  }
  p2q_batch_on_claim_sent(&b);
  p2q_batch_on_claimed(&b, 1, 1, 0);
  assert_int_equal(p2q_batch_held_delay(&b), 0);
  p2q_batch_on_acked(&b);
  assert_int_equal(p2q_batch_next(&b), P2Q_BATCH_WAIT); /* nothing held, no wake-up: no claim */
  p2q_batch_on_claim_sent(&b);
  p2q_batch_on_claimed(&b, 0, 0, 1);
  assert_int_equal(p2q_batch_held_delay(&b), 50); /* the doubling starts over */
}

/* A standby policy (a worker's second claimer) claims only from a sibling's full claim or its own
   timer, and goes quiet after a claim that is neither full nor holding rows back. */
static void test_batch_standby(void **st) {
  p2q_batch_t b;
  p2q_batch_init(&b, 10, 2, 0);
  b.standby = 1;
  p2q_batch_on_wake(&b);
  assert_int_equal(p2q_batch_next(&b), P2Q_BATCH_WAIT); /* a wake-up alone: nothing */
  p2q_batch_on_backlog(&b);
  assert_int_equal(p2q_batch_next(&b), P2Q_BATCH_CLAIM);
  p2q_batch_on_claim_sent(&b);
  p2q_batch_on_claimed(&b, 10, 1, 0);                  /* full: on */
  assert_int_equal(p2q_batch_next(&b), P2Q_BATCH_CLAIM);
  p2q_batch_on_claim_sent(&b);
  p2q_batch_on_claimed(&b, 4, 1, 2);                   /* rows held back: on until its ack */
  assert_int_equal(p2q_batch_next(&b), P2Q_BATCH_WAIT); /* both slots in flight */
  p2q_batch_on_acked(&b);
  assert_int_equal(p2q_batch_next(&b), P2Q_BATCH_CLAIM);
  p2q_batch_on_claim_sent(&b);
  p2q_batch_on_claimed(&b, 3, 1, 0);                   /* neither: quiet */
  p2q_batch_on_acked(&b);
  p2q_batch_on_wake(&b);
  assert_int_equal(p2q_batch_next(&b), P2Q_BATCH_WAIT);
  p2q_batch_on_due(&b);                                /* its own retry timer: one claim */
  assert_int_equal(p2q_batch_next(&b), P2Q_BATCH_CLAIM);
  p2q_batch_on_claim_sent(&b);
  p2q_batch_on_claimed(&b, 0, 0, 0);
  p2q_batch_on_wake(&b);
  assert_int_equal(p2q_batch_next(&b), P2Q_BATCH_WAIT);
  p2q_batch_t first;                                   /* the first claimer: a sibling's backlog */
  p2q_batch_init(&first, 10, 1, 5);                    /* claims at once, no linger */
  p2q_batch_on_wake(&first);
  p2q_batch_on_claim_sent(&first);
  p2q_batch_on_claimed(&first, 4, 1, 0);
  assert_int_equal(p2q_batch_next(&first), P2Q_BATCH_WAIT); /* its one slot in flight */
  p2q_batch_on_acked(&first);
  assert_int_equal(p2q_batch_next(&first), P2Q_BATCH_WAIT); /* nothing more known */
  p2q_batch_on_backlog(&first);
  assert_int_equal(p2q_batch_next(&first), P2Q_BATCH_CLAIM);
}

/* Two claimers: only the first claims on wake-ups; the second joins after two full claims in a row
   (its own session; paused meanwhile, it goes on at the worker's next wake-up), stops after a
   claim that is not full, and both count into the worker's stats. */
static void test_second_claimer_joins_a_backlog(void **st) {
  claimers = 2;
  p2q_worker_t *w = setup_worker();
  claimers = 1;
  assert_int_equal(F.n_opens, 2);
  assert_int_equal(F.claims, 1);                /* the first claimer only */
  void *first = F.claim_arg;
  assert_ptr_equal(first, w);
  deliver(16, "a", 1, 3);                       /* full (batch_size 16): one is no backlog yet */
  assert_int_equal(F.claims, 1);
  answer(0, 200, 0, 0, P2Q_QDRANT_OK, -1);
  acked();
  assert_int_equal(F.claims, 2);                /* the first again: its claim was full */
  assert_ptr_equal(F.claim_arg, first);
  F.allow[0] = F.allow[1] = 0;                  /* the targets paused: nobody may claim */
  deliver(16, "a", 1, 3);                       /* the second full claim in a row */
  assert_int_equal(F.claims, 2);
  F.allow[0] = F.allow[1] = 1;                  /* healthy again: the daemon wakes the worker */
  p2q_worker_wake(w);
  assert_int_equal(F.claims, 3);                /* the second claimer joined in (the first is full) */
  void *second = F.claim_arg;
  assert_ptr_not_equal(second, first);
  deliver(5, "b", 1, 3);                        /* not full: it goes quiet after this batch */
  assert_int_equal(F.claims, 3);
  assert_int_equal(F.n_w, 3);
  answer(2, 200, 0, 0, P2Q_QDRANT_OK, -1);
  acked();
  assert_int_equal(F.claims, 3);
  answer(1, 200, 0, 0, P2Q_QDRANT_OK, -1);
  acked();
  assert_int_equal(F.claims, 4);                /* the first claims again: its last claim was full */
  assert_ptr_equal(F.claim_arg, first);
  deliver(2, "a", 1, 3);
  answer(3, 200, 0, 0, P2Q_QDRANT_OK, -1);
  acked();
  p2q_worker_wake(w);                           /* a notification: the first claimer only */
  assert_int_equal(F.claims, 5);
  assert_ptr_equal(F.claim_arg, first);
  deliver(0, "a", 1, 3);
  const p2q_stats_t *s = p2q_worker_stats(w);
  assert_int_equal(s->claimed, 39);
  assert_int_equal(s->applied, 39);
  assert_int_equal(s->claims, 5);
  assert_int_equal(s->acks, 4);
  assert_true(p2q_worker_idle(w));
  teardown_worker(w);
}

/* While a 429 paces a target of the worker, its second claimer stays out (a rate limit sees one
   session's batches, as before claimers); it joins again at a full claim once the pacing ended. */
static void test_second_claimer_stays_out_of_a_rate_limit(void **st) {
  claimers = 2;
  p2q_worker_t *w = setup_worker();
  claimers = 1;
  void *first = F.claim_arg;
  F.paced = 1;
  deliver(16, "a", 1, 3);
  answer(0, 200, 0, 0, P2Q_QDRANT_OK, -1);
  acked();
  assert_int_equal(F.claims, 2);
  deliver(16, "a", 1, 3);                       /* two full in a row, but paced: it stays out */
  assert_int_equal(F.claims, 2);
  F.paced = 0;
  p2q_worker_wake(w);                           /* the first is busy (max_inflight 1) */
  assert_int_equal(F.claims, 2);
  answer(1, 200, 0, 0, P2Q_QDRANT_OK, -1);
  acked();
  assert_int_equal(F.claims, 3);                /* the first again (its last claim was full) */
  assert_ptr_equal(F.claim_arg, first);
  deliver(16, "a", 1, 3);                       /* full, not paced: the second joins */
  assert_int_equal(F.claims, 4);
  assert_ptr_not_equal(F.claim_arg, first);
  deliver(0, "a", 1, 3);
  answer(2, 200, 0, 0, P2Q_QDRANT_OK, -1);
  acked();
  assert_int_equal(p2q_worker_stats(w)->applied, 48);
  teardown_worker(w);
}

/* The lease a claim was held back by may be another claimer's: that claimer's ack makes the held
   one claim again at once (it would otherwise wait for its 50 ms poll), as its own ack would. */
static void test_sibling_ack_frees_held_rows(void **st) {
  claimers = 2;
  p2q_worker_t *w = setup_worker();
  claimers = 1;
  void *first = F.claim_arg;
  deliver(16, "a", 1, 3);
  answer(0, 200, 0, 0, P2Q_QDRANT_OK, -1);
  acked();
  deliver(16, "a", 1, 3);                       /* two full in a row: the second joins */
  assert_int_equal(F.claims, 3);
  void *second = F.claim_arg;
  assert_ptr_not_equal(second, first);
  p2q_claim_row_t held = {.id = 4, .rule = "", .op = P2Q_OP_HELD, .row_key = ""};
  F.claim_cb(F.claim_arg, 0, NULL, &held, 1);   /* the second: rows held back by the first's leases */
  assert_int_equal(F.claims, 3);                /* (its 50 ms poll is armed; the loop does not run) */
  answer(1, 200, 0, 0, P2Q_QDRANT_OK, -1);      /* the first's batch is acknowledged */
  acked();
  assert_int_equal(F.claims, 5);                /* the first (its claim was full), and the second at once */
  assert_ptr_equal(F.claim_arg, second);
  deliver(0, "a", 1, 3);
  teardown_worker(w);                           /* (the first's claim is still out: closed with it) */
}

/* A finished batch's ack waits up to linger_ms to ride on the next claim (one statement); alone
   after that; sent again alone when the ack+claim failed (neither happened). */
static void test_ack_rides_on_next_claim(void **st) {
  use_ack_claim = 1;
  p2q_worker_t *w = setup_worker();
  use_ack_claim = 0;
  assert_int_equal(F.claims, 1); /* nothing to ack yet: a plain claim */
  deliver(2, "a", 1, 3);
  answer(0, 200, 0, 0, P2Q_QDRANT_OK, -1);
  assert_int_equal(F.ack_calls, 0); /* finished: the ack waits */
  assert_int_equal(F.n_acks, 0);
  assert_int_equal(p2q_worker_stats(w)->applied, 0);
  p2q_worker_wake(w);               /* a notification: ack and claim in one statement */
  assert_int_equal(F.ack_claims, 1);
  assert_int_equal(F.claims, 2);
  assert_int_equal(F.n_acks, 2);
  assert_int_equal(F.acks[0].outcome, P2Q_OUTCOME_DONE);
  assert_int_equal(F.acks[1].outcome, P2Q_OUTCOME_DONE);
  deliver(1, "a", 1, 3);            /* its answer: the ack is done, one event claimed */
  assert_int_equal(p2q_worker_stats(w)->applied, 2);
  assert_int_equal(p2q_worker_stats(w)->acks, 1);
  answer(1, 200, 0, 0, P2Q_QDRANT_OK, -1);
  assert_int_equal(F.ack_calls, 0);
  uv_run(&F.loop, UV_RUN_DEFAULT);  /* no claim within linger_ms: the ack goes alone */
  assert_int_equal(F.ack_calls, 1);
  assert_int_equal(F.n_acks, 3);
  acked();
  assert_int_equal(p2q_worker_stats(w)->applied, 3);
  assert_int_equal(F.claims, 2);    /* nothing held back, no wake-up: no claim */
  p2q_worker_wake(w);
  assert_int_equal(F.claims, 3);
  deliver(1, "a", 1, 3);
  answer(2, 200, 0, 0, P2Q_QDRANT_OK, -1);
  p2q_worker_wake(w);
  assert_int_equal(F.ack_claims, 2);
  p2q_claim_cb cb = F.claim_cb;     /* a deadlock victim: neither the ack nor the claim happened */
  F.claim_cb = NULL;
  cb(F.claim_arg, P2Q_EPG_QUERY, "deadlock detected", NULL, 0);
  assert_int_equal(F.ack_calls, 2); /* the ack again, alone */
  assert_int_equal(F.n_acks, 5);
  assert_int_equal(F.acks[4].outcome, P2Q_OUTCOME_DONE);
  assert_int_equal(p2q_worker_stats(w)->applied, 3);
  acked();
  assert_int_equal(p2q_worker_stats(w)->applied, 4);
  teardown_worker(w);
}

/* Runs the loop, the fake clock following real time, until done() or `ms` fake ms; returns the
   fake ms it took (ms + 1: not done). */
static uint64_t run_until(int (*done)(p2q_worker_t *), p2q_worker_t *w, uint64_t ms) {
  uint64_t t0 = F.now;
  while (!done(w) && F.now < t0 + ms) {
    F.now += 1;
    uv_run(&F.loop, UV_RUN_NOWAIT);
    usleep(1000);
  }
  return done(w) ? F.now - t0 : ms + 1;
}
static int ack_sent(p2q_worker_t *w) { return F.ack_calls + F.ack_claims > 0; }
static int worker_is_idle(p2q_worker_t *w) { return p2q_worker_idle(w) && !F.claim_cb; }

/* idle_linger_ms 300: a finished batch's ack waits past linger_ms for the claim that ends the idle
   linger a NOTIFY started, and rides on it (before: alone after 5 ms). A standby claimer's ack
   (no NOTIFY wakes a standby) and a batch orphaned by a lost connection do not wait for it. */
static void test_ack_waits_for_the_idle_linger_claim(void **st) {
  use_ack_claim = 1;
  p2q_worker_t *w = setup_worker();
  use_ack_claim = 0;
  F.cfg->workers[0].idle_linger_ms = 300;
  p2q_worker_reconfigure(w, &F.cfg->workers[0]);
  deliver(2, "a", 1, 3);
  answer(0, 200, 0, 0, P2Q_QDRANT_OK, -1); /* deferred */
  assert_int_equal(run_until(ack_sent, w, 50), 51); /* still waiting after 50 ms (before: alone at 5) */
  p2q_worker_notify(w);                             /* the idle linger's claim is due at ~300 */
  assert_int_equal(F.claims, 1);
  assert_in_range(run_until(ack_sent, w, 1000), 1, 1000);
  assert_int_equal(F.ack_claims, 1); /* rode on the lingered claim */
  assert_int_equal(F.ack_calls, 0);
  assert_int_equal(F.n_acks, 2);
  deliver(0, "a", 1, 3);
  assert_int_equal(p2q_worker_stats(w)->acks_riding, 1);
  teardown_worker(w);
}

static void test_standby_and_orphaned_acks_do_not_wait(void **st) {
  claimers = 2; /* a standby claimer's batch finishes while its claim is out; the claim holds rows */
  use_ack_claim = 1;
  p2q_worker_t *w = setup_worker();
  claimers = 1;
  use_ack_claim = 0;
  F.cfg->workers[0].max_inflight = 2;
  F.cfg->workers[0].idle_linger_ms = 300;
  p2q_worker_reconfigure(w, &F.cfg->workers[0]);
  deliver(16, "a", 1, 3); /* head, full: claims again at once */
  deliver(16, "a", 1, 3); /* head, second full: the standby joins */
  void *second = F.claim_arg;
  assert_ptr_not_equal(second, w);
  deliver(16, "b", 1, 3); /* the standby's batch, full: it claims again */
  assert_ptr_equal(F.claim_arg, second);
  answer(2, 200, 0, 0, P2Q_QDRANT_OK, -1); /* done while its claim is out: deferred */
  assert_int_equal(F.ack_calls, 0);
  p2q_claim_row_t held = {.id = 1, .op = P2Q_OP_HELD, .row_key = "{}"};
  p2q_claim_cb cb = F.claim_cb;
  F.claim_cb = NULL;
  cb(F.claim_arg, 0, NULL, &held, 1); /* only a row held behind the batch's own events */
  assert_in_range(run_until(ack_sent, w, 200), 0, 50);
  answer(0, 200, 0, 0, P2Q_QDRANT_OK, -1); /* the head's two batches: their requests end */
  answer(1, 200, 0, 0, P2Q_QDRANT_OK, -1);
  F.stopping = 1;
  teardown_worker(w);

  use_ack_claim = 1; /* a batch orphaned by a lost connection, claims after the reconnect */
  w = setup_worker();
  use_ack_claim = 0;
  F.cfg->workers[0].idle_linger_ms = 300;
  p2q_worker_reconfigure(w, &F.cfg->workers[0]);
  deliver(2, "a", 1, 3);
  answer(0, 200, 0, 0, P2Q_QDRANT_OK, -1); /* deferred */
  F.lane_cbs[0].lost(F.lane_cbs[0].arg, "gone");
  F.lane_cbs[0].ready(F.lane_cbs[0].arg, "1.3", 1); /* a plain claim: the batch is orphaned */
  if (F.claim_cb) deliver(0, "a", 1, 3);
  assert_in_range(run_until(worker_is_idle, w, 200), 0, 50);
  F.stopping = 1;
  teardown_worker(w);
}

/* The claim names only the event types whose rules' targets are healthy. */
static void test_gate_per_rule(void **st) {
  p2q_worker_t *w = setup_worker();
  assert_int_equal(F.claims, 1);
  assert_int_equal(F.n_types, 2);
  deliver(1, "a", 1, 10);
  answer(0, 200, 0, 0, P2Q_QDRANT_OK, -1);
  F.allow[1] = 0; /* rule b's collection is sick */
  acked();
  assert_int_equal(F.claims, 1); /* nothing held back, no wake-up since: no claim */
  p2q_worker_wake(w);
  assert_int_equal(F.claims, 2);
  assert_int_equal(F.n_types, 1);
  assert_string_equal(F.types[0], "a");
  deliver(0, "a", 1, 10);
  F.allow[0] = 0; /* both sick: no claim at all */
  p2q_worker_wake(w);
  assert_int_equal(F.claims, 2);
  F.allow[0] = F.allow[1] = 1;
  p2q_worker_wake(w); /* healthy again: claims both */
  assert_int_equal(F.claims, 3);
  assert_int_equal(F.n_types, 2);
  deliver(0, "a", 1, 10);
  teardown_worker(w);
}

/* Rules of one batch write to their own collections; one failing does not touch the other. */
static void test_two_collections(void **st) {
  p2q_worker_t *w = setup_worker();
  p2q_claim_row_t rows[2] = {
      {.id = 1, .rule = "a", .op = P2Q_OP_UPSERT, .row_key = "{\"id\": 1}", .payload = "{\"id\": 1, \"v\": [1, 2]}",
       .attempts = 1, .max_attempts = 10},
      {.id = 2, .rule = "b", .op = P2Q_OP_UPSERT, .row_key = "{\"id\": 1}", .payload = "{\"id\": 1, \"v\": [1, 2]}",
       .attempts = 1, .max_attempts = 10}};
  F.claim_cb(F.claim_arg, 0, NULL, rows, 2);
  assert_int_equal(F.n_w, 2);
  int ia = !strcmp(F.w[0].coll, "ca") ? 0 : 1;
  answer(ia, 503, P2Q_EQDRANT, 0, P2Q_QDRANT_RETRY, -1);
  answer(1 - ia, 200, 0, 0, P2Q_QDRANT_OK, -1);
  assert_int_equal(F.n_acks, 2);
  for (int i = 0; i < 2; i++)
    assert_int_equal(F.acks[i].outcome, F.acks[i].id == 1 ? P2Q_OUTCOME_REQUEUE : P2Q_OUTCOME_DONE);
  acked();
  teardown_worker(w);
}

/* Re-embedding (worker_dual.c): rule b made the shadow of rule a (its old definition writing the
   old version) gets a twin of every event of a; the twin's failure holds the event back (requeue:
   both written again), its dead letter does not; twins are never acked or counted. */
static void dual(int n, long shadow_status, p2q_qdrant_class_t cls, p2q_outcome_t want) {
  p2q_worker_t *w = setup_worker();
  F.cfg->rules[1].shadow_of = 1; /* as reindex_def.c makes it: named like a, another collection */
  snprintf(F.cfg->rules[1].name, sizeof F.cfg->rules[1].name, "a");
  deliver(n, "a", 1, 1);
  assert_int_equal(F.n_w, 2);
  int ia = !strcmp(F.w[0].coll, "ca") ? 0 : 1;
  assert_string_equal(F.w[1 - ia].coll, "cb");
  assert_non_null(strstr(F.w[1 - ia].body, n == 3 ? "\"id\":3" : "\"id\":1")); /* the same points, old version */
  answer(ia, 200, 0, 0, P2Q_QDRANT_OK, -1);
  answer(1 - ia, shadow_status, shadow_status == 200 ? 0 : P2Q_EQDRANT, 0, cls, -1);
  assert_int_equal(F.n_acks, n);
  for (int i = 0; i < n; i++) assert_int_equal(F.acks[i].outcome, want);
  acked();
  const p2q_stats_t *s = p2q_worker_stats(w);
  assert_int_equal(s->claimed, n);
  assert_int_equal(s->applied + s->requeued, n);
  teardown_worker(w);
}
static void test_dual_both_written(void **st) { dual(3, 200, P2Q_QDRANT_OK, P2Q_OUTCOME_DONE); }
static void test_dual_old_version_down_requeues(void **st) { dual(3, 503, P2Q_QDRANT_RETRY, P2Q_OUTCOME_REQUEUE); }
static void test_dual_old_version_rejects_is_not_dead(void **st) { dual(1, 400, P2Q_QDRANT_PERMANENT, P2Q_OUTCOME_DONE); }

/* A malformed snapshot (wrong dimension) is the event's own fault: dead without a request. */
static void test_malformed_vector(void **st) {
  p2q_worker_t *w = setup_worker();
  p2q_claim_row_t row = {.id = 7, .rule = "a", .op = P2Q_OP_UPSERT, .row_key = "{\"id\": 1}",
                         .payload = "{\"id\": 1, \"v\": [1, \"x\"]}", .attempts = 1, .max_attempts = 10};
  F.claim_cb(F.claim_arg, 0, NULL, &row, 1);
  assert_int_equal(F.n_w, 0);
  assert_int_equal(F.n_acks, 1);
  assert_int_equal(F.acks[0].outcome, P2Q_OUTCOME_DEAD);
  acked();
  teardown_worker(w);
}

static void test_classify_table(void **st) {
  int hw;
  assert_int_equal(p2q_classify_qdrant(200, 0, 0, P2Q_QDRANT_OK, 5, &hw), P2Q_V_DONE);
  assert_int_equal(p2q_classify_qdrant(200, P2Q_EBADJSON, 0, P2Q_QDRANT_RETRY, 5, &hw), P2Q_V_TRANSIENT);
  assert_int_equal(p2q_classify_qdrant(200, P2Q_EQDRANT, 0, P2Q_QDRANT_OK, 5, &hw), P2Q_V_TRANSIENT);
  assert_int_equal(p2q_classify_qdrant(400, P2Q_EQDRANT, 0, P2Q_QDRANT_PERMANENT, 2, &hw), P2Q_V_SPLIT);
  assert_int_equal(p2q_classify_qdrant(400, P2Q_EQDRANT, 0, P2Q_QDRANT_PERMANENT, 1, &hw), P2Q_V_EVENT_FAULT);
  assert_int_equal(p2q_classify_qdrant(413, P2Q_EQDRANT, 0, P2Q_QDRANT_TOO_LARGE, 9, &hw), P2Q_V_SPLIT);
  assert_int_equal(p2q_classify_qdrant(413, P2Q_EQDRANT, 0, P2Q_QDRANT_TOO_LARGE, 1, &hw), P2Q_V_EVENT_FAULT);
  assert_int_equal(p2q_classify_qdrant(429, P2Q_EQDRANT, 0, P2Q_QDRANT_RATE, 1, &hw), P2Q_V_RATE_LIMITED);
  assert_int_equal(p2q_classify_qdrant(302, P2Q_EQDRANT, 0, P2Q_QDRANT_RETRY, 1, &hw), P2Q_V_TRANSIENT);
  assert_int_equal(p2q_classify_qdrant(401, P2Q_EQDRANT, 0, P2Q_QDRANT_CONFIG, 1, &hw), P2Q_V_CONFIG);
  assert_int_equal(p2q_classify_qdrant(404, P2Q_EQDRANT, 0, P2Q_QDRANT_MISSING, 1, &hw), P2Q_V_MISSING);
  assert_int_equal(p2q_classify_qdrant(502, P2Q_EQDRANT, 0, P2Q_QDRANT_RETRY, 1, &hw), P2Q_V_TRANSIENT);
  assert_int_equal(p2q_classify_qdrant(0, P2Q_EHTTP, 7, P2Q_QDRANT_RETRY, 1, &hw), P2Q_V_TRANSIENT);
  assert_int_equal(hw, 1);
  assert_int_equal(p2q_classify_qdrant(0, P2Q_EHTTP, 52, P2Q_QDRANT_RETRY, 1, &hw), P2Q_V_TRANSIENT);
  assert_int_equal(hw, 0);
  assert_int_equal(p2q_classify_qdrant(0, P2Q_ECANCELED, 0, P2Q_QDRANT_RETRY, 1, &hw), P2Q_V_CANCELED);
  assert_int_equal(p2q_classify_embed(0, 0, 0, 3), P2Q_V_DONE);
  assert_int_equal(p2q_classify_embed(P2Q_EHTTP, 1, 0, 3), P2Q_V_TRANSIENT);
  assert_int_equal(p2q_classify_embed(P2Q_EEMBED, 0, 0, 3), P2Q_V_EVENT_FAULT);
  assert_int_equal(p2q_classify_embed(P2Q_EEMBED, 1, 429, 3), P2Q_V_RATE_LIMITED);
  assert_int_equal(p2q_classify_embed(P2Q_EEMBED, 0, 401, 3), P2Q_V_CONFIG);
  assert_string_equal(p2q_verdict_name(P2Q_V_RATE_LIMITED), "rate_limited");
  assert_string_equal(p2q_outcome_name(P2Q_OUTCOME_REQUEUE), "requeue");
  assert_string_equal(p2q_op_name(P2Q_OP_COALESCED), "coalesced");
  assert_int_equal(p2q_op_parse("delete"), P2Q_OP_DELETE);
  assert_int_equal(p2q_op_parse("nope"), -1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_ack_waits_for_the_idle_linger_claim),
      cmocka_unit_test(test_standby_and_orphaned_acks_do_not_wait),
      cmocka_unit_test(test_classify_table),
      cmocka_unit_test(test_done), cmocka_unit_test(test_delay_is_64_bit),
      cmocka_unit_test(test_error_envelope_is_not_success),
      cmocka_unit_test(test_server_errors_cost_time),
      cmocka_unit_test(test_transport_errors),
      cmocka_unit_test(test_rate_limited),
      cmocka_unit_test(test_config_and_missing),
      cmocka_unit_test(test_cancelled),
      cmocka_unit_test(test_bisect_400),
      cmocka_unit_test(test_body_built_in_place),
      cmocka_unit_test(test_bisect_422_dead_after_attempts),
      cmocka_unit_test(test_bisect_413),
      cmocka_unit_test(test_split_when_forced),
      cmocka_unit_test(test_liveness_fence),
      cmocka_unit_test(test_lease_budget_from_claim_sent),
      cmocka_unit_test(test_gate_per_rule),
      cmocka_unit_test(test_claim_after_ack_only_when_held),
      cmocka_unit_test(test_batch_held_delay),
      cmocka_unit_test(test_batch_standby),
      cmocka_unit_test(test_second_claimer_joins_a_backlog),
      cmocka_unit_test(test_second_claimer_stays_out_of_a_rate_limit),
      cmocka_unit_test(test_sibling_ack_frees_held_rows),
      cmocka_unit_test(test_ack_rides_on_next_claim),
      cmocka_unit_test(test_two_collections),
      cmocka_unit_test(test_dual_both_written),
      cmocka_unit_test(test_dual_old_version_down_requeues),
      cmocka_unit_test(test_dual_old_version_rejects_is_not_dead),
      cmocka_unit_test(test_malformed_vector),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

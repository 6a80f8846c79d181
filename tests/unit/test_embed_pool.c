/*
 * test_embed_pool.c — the embedding pool on a real libuv loop: every submitted job's callback
 * fires exactly once on the loop thread; submit after close fails without a callback; close
 * cancels queued jobs and waits for running ones; callbacks may submit more work; and (with
 * the model) vectors from the pool equal direct p2q_minilm_embed() results.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "golden_util.h"
#include "pg2qdrant/embed_pool.h"
#include "pg2qdrant/errors.h"

static pthread_t g_loop_thread;
static int g_calls, g_wrong_thread, g_closed, g_cancelled, g_ok;
static atomic_int g_ran;

static int fake_work(p2q_embed_job_t *j) {
  atomic_fetch_add(&g_ran, 1);
  usleep((useconds_t)(j->n * 100));
  return j->n == 7 ? P2Q_EEMBED : 0;
}

static void on_done(p2q_embed_job_t *j, int status) {
  g_calls++;
  if (!pthread_equal(pthread_self(), g_loop_thread)) g_wrong_thread++;
  if (status == P2Q_ECANCELED) g_cancelled++;
  else if (status == 0) g_ok++;
  (*(int *)j->data)++;
}

static void on_closed(void *arg) { g_closed++; *(int *)arg = 1; }

static void reset(void) { g_calls = g_wrong_thread = g_closed = g_cancelled = g_ok = 0; atomic_store(&g_ran, 0); }

static void test_all_callbacks_on_loop(void **state) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  reset();
  g_loop_thread = pthread_self();
  p2q_embed_pool_t *pool;
  assert_int_equal(p2q_embed_pool_init(&loop, NULL, 2, &pool), 0);
  enum { N = 200 };
  static p2q_embed_job_t jobs[N];
  static int fired[N];
  memset(fired, 0, sizeof fired);
  for (int i = 0; i < N; i++) {
    memset(&jobs[i], 0, sizeof jobs[i]);
    jobs[i].n = i % 10;
    jobs[i].work = fake_work;
    jobs[i].cb = on_done;
    jobs[i].data = &fired[i];
    assert_int_equal(p2q_embed_pool_submit(pool, &jobs[i]), 0);
  }
  while (g_calls < N) uv_run(&loop, UV_RUN_ONCE);
  for (int i = 0; i < N; i++) assert_int_equal(fired[i], 1);
  assert_int_equal(g_wrong_thread, 0);
  assert_int_equal(g_ok, N - N / 10); /* n == 7 fails */
  assert_int_equal(p2q_embed_pool_pending(pool), 0);
  int closed = 0;
  p2q_embed_pool_close(pool, on_closed, &closed);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(closed, 1);
  assert_int_equal(g_calls, N);
  assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_close_cancels_queued(void **state) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  reset();
  g_loop_thread = pthread_self();
  p2q_embed_pool_t *pool;
  assert_int_equal(p2q_embed_pool_init(&loop, NULL, 1, &pool), 0);
  enum { N = 50 };
  static p2q_embed_job_t jobs[N];
  static int fired[N];
  memset(fired, 0, sizeof fired);
  for (int i = 0; i < N; i++) {
    memset(&jobs[i], 0, sizeof jobs[i]);
    jobs[i].n = 50; /* 5 ms each */
    jobs[i].work = fake_work;
    jobs[i].cb = on_done;
    jobs[i].data = &fired[i];
    assert_int_equal(p2q_embed_pool_submit(pool, &jobs[i]), 0);
  }
  int closed = 0;
  p2q_embed_pool_close(pool, on_closed, &closed);
  /* after close: submit fails and that job's callback never fires */
  static p2q_embed_job_t late;
  int late_fired = 0;
  memset(&late, 0, sizeof late);
  late.work = fake_work; late.cb = on_done; late.data = &late_fired;
  assert_int_equal(p2q_embed_pool_submit(pool, &late), P2Q_ECANCELED);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(closed, 1);
  for (int i = 0; i < N; i++) assert_int_equal(fired[i], 1);
  assert_int_equal(g_calls, N);
  assert_int_equal(g_ok + g_cancelled, N);
  assert_true(g_cancelled > 0);
  assert_int_equal(g_ok, atomic_load(&g_ran));
  assert_int_equal(g_wrong_thread, 0);
  assert_int_equal(late_fired, 0);
  assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_submit_errors(void **state) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  p2q_embed_pool_t *pool = (p2q_embed_pool_t *)1;
  assert_int_equal(p2q_embed_pool_init(&loop, NULL, 0, &pool), P2Q_EINVAL);
  assert_null(pool);
  assert_int_equal(p2q_embed_pool_init(&loop, NULL, 1, &pool), 0);
  p2q_embed_job_t j;
  memset(&j, 0, sizeof j);
  assert_int_equal(p2q_embed_pool_submit(pool, &j), P2Q_EINVAL); /* no callback */
  j.cb = on_done;
  j.n = 2;
  assert_int_equal(p2q_embed_pool_submit(pool, &j), P2Q_EINVAL); /* no texts/out */
  int closed = 0;
  p2q_embed_pool_close(pool, on_closed, &closed);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(closed, 1);
  assert_int_equal(uv_loop_close(&loop), 0);
}

/* A callback that submits a follow-up job (chained work from the loop thread). */
static p2q_embed_pool_t *g_pool;
static int g_chain;
static void on_chain(p2q_embed_job_t *j, int status) {
  assert_int_equal(status, 0);
  if (++g_chain < 20) assert_int_equal(p2q_embed_pool_submit(g_pool, j), 0);
}

static void test_resubmit_from_callback(void **state) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  assert_int_equal(p2q_embed_pool_init(&loop, NULL, 2, &g_pool), 0);
  p2q_embed_job_t j;
  memset(&j, 0, sizeof j);
  j.work = fake_work; j.cb = on_chain;
  g_chain = 0;
  assert_int_equal(p2q_embed_pool_submit(g_pool, &j), 0);
  while (g_chain < 20) uv_run(&loop, UV_RUN_ONCE);
  int closed = 0;
  p2q_embed_pool_close(g_pool, on_closed, &closed);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(closed, 1);
  assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_model_through_pool(void **state) {
  char dir[4096];
  gu_need_model(dir, sizeof dir);
  p2q_minilm_t *m;
  assert_int_equal(p2q_minilm_load(dir, &m), 0);
  golden_t *g = NULL;
  int ntot = gu_load(&g), n = ntot;
  assert_true(n > 0);
  if (n > 64) n = 64;
  uv_loop_t loop;
  uv_loop_init(&loop);
  reset();
  g_loop_thread = pthread_self();
  p2q_embed_pool_t *pool;
  assert_int_equal(p2q_embed_pool_init(&loop, m, 2, &pool), 0);
  enum { PER = 8 };
  const char *texts[64];
  size_t lens[64];
  float *out = calloc((size_t)n * 384, sizeof(float));
  p2q_embed_job_t jobs[8];
  int fired[8] = {0}, njobs = 0;
  for (int i = 0; i < n; i++) { texts[i] = g[i].text; lens[i] = g[i].len; }
  for (int i = 0; i < n; i += PER, njobs++) {
    p2q_embed_job_t *j = &jobs[njobs];
    memset(j, 0, sizeof *j);
    j->texts = texts + i; j->lens = lens + i; j->n = n - i < PER ? n - i : PER;
    j->out = out + (size_t)i * 384; j->cb = on_done; j->data = &fired[njobs];
    assert_int_equal(p2q_embed_pool_submit(pool, j), 0);
  }
  while (g_calls < njobs) uv_run(&loop, UV_RUN_ONCE);
  assert_int_equal(g_ok, njobs);
  assert_int_equal(g_wrong_thread, 0);
  for (int i = 0; i < n; i++) {
    double dot = 0;
    for (int k = 0; k < 384; k++) dot += (double)out[(size_t)i * 384 + k] * g[i].vec[k];
    if (dot < 0.99999) fail_msg("%s: cosine %.8f", g[i].name, dot);
  }
  /* one big job: split across the idle workers; same vectors; per-text status across parts */
  float *out2 = calloc((size_t)n * 384, sizeof(float));
  int *st = calloc((size_t)n, sizeof(int)), big_fired = 0;
  const char *saved = texts[n - 3];
  size_t saved_len = lens[n - 3];
  texts[n - 3] = "bad \xc3\x28 utf8";
  lens[n - 3] = strlen(texts[n - 3]);
  p2q_embed_job_t big;
  memset(&big, 0, sizeof big);
  big.texts = texts; big.lens = lens; big.n = n; big.out = out2; big.status = st;
  big.cb = on_done; big.data = &big_fired;
  g_ok = g_calls = 0;
  assert_int_equal(p2q_embed_pool_submit(pool, &big), 0);
  while (g_calls < 1) uv_run(&loop, UV_RUN_ONCE);
  assert_int_equal(big_fired, 1);
  assert_int_equal(g_ok, 1);
  for (int i = 0; i < n; i++) {
    if (i == n - 3) {
      assert_int_equal(st[i], P2Q_EUTF8);
      continue;
    }
    assert_int_equal(st[i], 0);
    for (int k = 0; k < 384; k++) assert_true(fabsf(out2[(size_t)i * 384 + k] - out[(size_t)i * 384 + k]) < 1e-5f);
  }
  texts[n - 3] = saved;
  lens[n - 3] = saved_len;
  free(out2);
  free(st);
  int closed = 0;
  p2q_embed_pool_close(pool, on_closed, &closed);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(closed, 1);
  assert_int_equal(uv_loop_close(&loop), 0);
  free(out);
  gu_free(g, ntot);
  p2q_minilm_free(m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_all_callbacks_on_loop),
    cmocka_unit_test(test_close_cancels_queued),
    cmocka_unit_test(test_submit_errors),
    cmocka_unit_test(test_resubmit_from_callback),
    cmocka_unit_test(test_model_through_pool),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test_minilm_golden.c — the C model against sentence-transformers' own vectors
 * (tests/golden/minilm_texts.jsonl, made by scripts/gen-goldens): every vector must have
 * cosine >= 0.99999 and max |diff| <= 1e-4. Also checks batching invariance, empty texts,
 * per-text error reporting and concurrent calls. Skips without the model unless
 * P2Q_REQUIRE_MODEL=1.
 */
#include <math.h>
#include <strings.h>
#include <unistd.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <spawn.h>
#include <sys/wait.h>
#include <cblas.h>

#include "golden_util.h"
#include "pg2qdrant/blas_kernel.h"
#include "pg2qdrant/errors.h"
#include "pg2qdrant/minilm.h"

static p2q_minilm_t *g_model;
static golden_t *g_gold;
static int g_n;

static int setup(void **state) {
  char dir[4096];
  if (!gu_model_dir(dir, sizeof dir)) return 0;
  if (p2q_minilm_load(dir, &g_model) != 0) return -1;
  g_n = gu_load(&g_gold);
  return g_n > 0 ? 0 : -1;
}

static int teardown(void **state) {
  p2q_minilm_free(g_model);
  if (g_n > 0) gu_free(g_gold, g_n);
  return 0;
}

static void need_model(void) {
  if (g_model) return;
  if (gu_require_model()) fail_msg("model missing and P2Q_REQUIRE_MODEL=1 (run scripts/fetch-model)");
  fprintf(stderr, "SKIP: model not found (set P2Q_MODEL_DIR or run scripts/fetch-model)\n");
  skip();
}

static void compare(const golden_t *g, const float *v, double *worst_cos, double *worst_diff) {
  double dot = 0, na = 0, nb = 0, md = 0;
  for (int j = 0; j < 384; j++) {
    dot += (double)v[j] * g->vec[j];
    na += (double)v[j] * v[j];
    nb += (double)g->vec[j] * g->vec[j];
    double d = fabs((double)v[j] - g->vec[j]);
    if (d > md) md = d;
  }
  double cos = dot / sqrt(na * nb);
  if (cos < 0.99999 || md > 1e-4)
    fail_msg("%s: cosine %.8f max abs diff %.3g", g->name, cos, md);
  if (cos < *worst_cos) *worst_cos = cos;
  if (md > *worst_diff) *worst_diff = md;
}

static void embed_all(int batch, size_t chunk_tokens) {
  float *out = malloc(sizeof(float) * 384 * (size_t)g_n);
  const char **t = malloc(sizeof *t * (size_t)g_n);
  size_t *l = malloc(sizeof *l * (size_t)g_n);
  for (int i = 0; i < g_n; i++) { t[i] = g_gold[i].text; l[i] = g_gold[i].len; }
  p2q_minilm_opts_t o = {.max_batch_tokens = chunk_tokens};
  for (int i = 0; i < g_n; i += batch) {
    int k = g_n - i < batch ? g_n - i : batch;
    assert_int_equal(p2q_minilm_embed_opts(g_model, t + i, l + i, k, out + (size_t)i * 384, NULL, &o), 0);
  }
  double wc = 1, wd = 0;
  for (int i = 0; i < g_n; i++) compare(&g_gold[i], out + (size_t)i * 384, &wc, &wd);
  fprintf(stderr, "batch=%d chunk=%zu texts=%d worst cosine=%.9f worst max|diff|=%.3g\n", batch,
          chunk_tokens, g_n, wc, wd);
  free(out); free(t); free(l);
}

static void test_golden_vectors_batched(void **state) { need_model(); embed_all(64, 0); }
static void test_golden_vectors_single(void **state) { need_model(); embed_all(1, 0); }
static void test_golden_vectors_small_chunks(void **state) { need_model(); embed_all(g_n, 300); }

static void test_golden_ids(void **state) {
  need_model();
  int32_t ids[256];
  for (int i = 0; i < g_n; i++) {
    int n = 0;
    assert_int_equal(p2q_minilm_tokenize(g_model, g_gold[i].text, g_gold[i].len, ids, 256, &n), 0);
    if (n != g_gold[i].n_ids || memcmp(ids, g_gold[i].ids, sizeof(int32_t) * (size_t)n) != 0)
      fail_msg("%s: token ids differ", g_gold[i].name);
  }
}

static void test_empty_is_cls_sep(void **state) {
  need_model();
  const char *t[3] = {"", "   \t\n", "\xe2\x80\x8b"}; /* empty, whitespace, zero-width space */
  float v[3 * 384];
  assert_int_equal(p2q_minilm_embed(g_model, t, NULL, 3, v, NULL), 0);
  for (int i = 1; i < 3; i++) assert_memory_equal(v, v + i * 384, sizeof(float) * 384);
  double n2 = 0;
  for (int j = 0; j < 384; j++) n2 += (double)v[j] * v[j];
  assert_true(fabs(n2 - 1.0) < 1e-5);
  for (int i = 0; i < g_n; i++)
    if (strcmp(g_gold[i].name, "edge00") == 0) {
      double wc = 1, wd = 0;
      compare(&g_gold[i], v, &wc, &wd);
    }
}

static void test_bad_texts(void **state) {
  need_model();
  const char *t[3] = {"good text", "bad \xff utf8", "also good"};
  float v[3 * 384], ref[384];
  int st[3];
  assert_int_equal(p2q_minilm_embed(g_model, t, NULL, 3, v, NULL), P2Q_EUTF8);
  assert_int_equal(p2q_minilm_embed(g_model, t, NULL, 3, v, st), 0);
  assert_int_equal(st[0], 0);
  assert_int_equal(st[1], P2Q_EUTF8);
  assert_int_equal(st[2], 0);
  for (int j = 0; j < 384; j++) assert_true(v[384 + j] == 0.0f);
  assert_int_equal(p2q_minilm_embed(g_model, t + 2, NULL, 1, ref, NULL), 0);
  for (int j = 0; j < 384; j++) assert_true(fabsf(ref[j] - v[2 * 384 + j]) < 1e-6f);
  assert_int_equal(p2q_minilm_embed(g_model, t, NULL, 0, v, NULL), 0);
  assert_int_equal(p2q_minilm_embed(g_model, t, NULL, -1, v, NULL), P2Q_EINVAL);
  assert_int_equal(p2q_minilm_embed(NULL, t, NULL, 1, v, NULL), P2Q_EINVAL);
}

static void test_huge_text(void **state) {
  need_model();
  size_t n = 10u * 1024 * 1024;
  char *big = malloc(n);
  for (size_t i = 0; i < n; i++) big[i] = (i % 6 == 5) ? ' ' : "hello"[i % 6];
  const char *t[1] = {big};
  float v[384];
  int32_t ids[256];
  int k;
  assert_int_equal(p2q_minilm_tokenize(g_model, big, n, ids, 256, &k), 0);
  assert_int_equal(k, 256);
  assert_int_equal(p2q_minilm_embed(g_model, t, &n, 1, v, NULL), 0);
  free(big);
}

typedef struct { int from, to; int ok; } thr_arg_t;

static void *thr_main(void *p) {
  thr_arg_t *a = p;
  float v[384];
  a->ok = 1;
  for (int r = 0; r < 2; r++)
    for (int i = a->from; i < a->to; i++) {
      const char *t[1] = {g_gold[i].text};
      if (p2q_minilm_embed(g_model, t, &g_gold[i].len, 1, v, NULL) != 0) a->ok = 0;
      double dot = 0;
      for (int j = 0; j < 384; j++) dot += (double)v[j] * g_gold[i].vec[j];
      if (dot < 0.99999) a->ok = 0;
    }
  return NULL;
}

static void test_concurrent_calls(void **state) {
  need_model();
  pthread_t th[3];
  thr_arg_t a[3];
  int per = g_n / 3 < 20 ? g_n / 3 : 20;
  for (int i = 0; i < 3; i++) {
    a[i].from = i * per; a[i].to = (i + 1) * per;
    assert_int_equal(pthread_create(&th[i], NULL, thr_main, &a[i]), 0);
  }
  for (int i = 0; i < 3; i++) {
    pthread_join(th[i], NULL);
    assert_true(a[i].ok);
  }
}

/* Exactness under every OpenBLAS kernel this CPU can run (the ones p2q_blas_autoselect may pick,
 * and the generic fallback): this binary re-runs itself with OPENBLAS_CORETYPE=<core> and
 * P2Q_GOLDEN_CHILD=<core>; the child checks the kernel really is <core> and runs the golden
 * vector tests. A machine whose environment pins OPENBLAS_CORETYPE runs only that kernel. */
extern char **environ;
static char g_self[4096];

static void test_golden_under_each_kernel(void **state) {
  need_model();
  const char *pinned = getenv("OPENBLAS_CORETYPE");
  const char *only[2] = {pinned, NULL};
  const char *const *cores = pinned ? only : p2q_blas_runnable_cores(p2q_cpu_level());
  for (int c = 0; cores[c]; c++) {
    char env_core[64], env_child[64];
    snprintf(env_core, sizeof env_core, "OPENBLAS_CORETYPE=%s", cores[c]);
    snprintf(env_child, sizeof env_child, "P2Q_GOLDEN_CHILD=%s", cores[c]);
    int n = 0;
    while (environ[n]) n++;
    char **env = calloc((size_t)n + 3, sizeof *env);
    int k = 0;
    for (int i = 0; i < n; i++)
      if (strncmp(environ[i], "OPENBLAS_CORETYPE=", 18) && strncmp(environ[i], "P2Q_GOLDEN_CHILD=", 17)) env[k++] = environ[i];
    env[k++] = env_core;
    env[k++] = env_child;
    char *argv[] = {g_self, NULL};
    pid_t pid;
    assert_int_equal(posix_spawn(&pid, g_self, NULL, NULL, argv, env), 0);
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    free(env);
    fprintf(stderr, "kernel %s: %s\n", cores[c], WIFEXITED(st) && WEXITSTATUS(st) == 0 ? "exact" : "FAILED");
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) fail_msg("golden vectors under OpenBLAS kernel %s failed", cores[c]);
  }
}

static void test_child_kernel_is_requested(void **state) {
  need_model();
  if (strcasecmp(openblas_get_corename(), getenv("P2Q_GOLDEN_CHILD")) != 0)
    fail_msg("asked for kernel %s, OpenBLAS runs %s", getenv("P2Q_GOLDEN_CHILD"), openblas_get_corename());
}

static void test_load_errors(void **state) {
  p2q_minilm_t *m = (p2q_minilm_t *)1;
  assert_int_equal(p2q_minilm_load("/nonexistent/dir", &m), P2Q_ENOENT);
  assert_null(m);
}

int main(int argc, char **argv) {
  (void)argc;
  ssize_t sl = readlink("/proc/self/exe", g_self, sizeof g_self - 1);
  if (sl > 0) g_self[sl] = 0;
  else snprintf(g_self, sizeof g_self, "%s", argv[0]);
  if (getenv("P2Q_GOLDEN_CHILD")) { /* one kernel: is it the one asked for, and exact? */
    const struct CMUnitTest child[] = {
      cmocka_unit_test(test_child_kernel_is_requested),
      cmocka_unit_test(test_golden_vectors_batched),
    };
    openblas_set_num_threads(1); /* the kernel is the point, not BLAS threading (shared machines) */
    return cmocka_run_group_tests(child, setup, teardown);
  }
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_golden_ids),
    cmocka_unit_test(test_golden_vectors_batched),
    cmocka_unit_test(test_golden_vectors_single),
    cmocka_unit_test(test_golden_vectors_small_chunks),
    cmocka_unit_test(test_empty_is_cls_sep),
    cmocka_unit_test(test_bad_texts),
    cmocka_unit_test(test_huge_text),
    cmocka_unit_test(test_concurrent_calls),
    cmocka_unit_test(test_load_errors),
    cmocka_unit_test(test_golden_under_each_kernel),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}

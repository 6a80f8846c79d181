/*
 * bench_minilm.c — throughput of the C all-MiniLM-L6-v2 (text in, unit vector out, tokenizer
 * included) for batches of 1/8/32/128 short (~16 token) and long (~128 token) texts, in three
 * modes: one caller with 1 BLAS thread ("c-1t"), the embed pool with 2 workers and 1 BLAS thread
 * each ("c-pool2"), one caller with 2 BLAS threads ("c-blas2"). Also measures this machine's
 * sgemm GFLOP/s (1 and 2 threads, the model's FFN shape and a large square) and reports each
 * run's achieved model FLOP rate as a fraction of it.
 * Output: "RESULT key=value …" lines (bench/minilm.sh makes the table) plus a readable summary.
 * Usage: bench_minilm [--model DIR] [--reps N] [--quick]
 * Texts come from a fixed LCG over one-token words, identical to bench/minilm_reference.py.
 */
#include <cblas.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#include "pg2qdrant/embed_pool.h"
#include "pg2qdrant/errors.h"
#include "pg2qdrant/blas_kernel.h"
#include "pg2qdrant/minilm.h"

static const char *const k_words[] = {
  "the", "of", "and", "to", "in", "is", "was", "he", "for", "it", "with", "as", "his", "on", "be",
  "at", "by", "had", "are", "but", "from", "or", "have", "an", "they", "which", "one", "you",
  "were", "her", "all", "she", "there", "would", "their", "we", "him", "been", "has", "when",
  "who", "will", "more", "no", "if", "out", "so", "said", "what", "up", "its", "about", "into",
  "than", "them", "can", "only", "other", "new", "some", "could", "time", "these", "two", "may",
  "then", "do", "first", "any", "my", "now", "such", "like", "our", "over", "man", "me", "even",
  "most", "made", "after", "also", "did", "many", "before", "must", "through", "back", "years",
  "where", "much", "your", "way", "well", "down", "should", "because", "each", "just", "those",
  "people", "how", "too", "little", "state", "good", "very", "make", "world", "still", "own",
  "see", "men", "work", "long", "get", "here", "between", "both", "life", "being", "under",
  "never", "day", "same", "another", "know", "while", "last", "might", "us", "great", "old",
  "year", "off", "come", "since", "against", "go", "came", "right", "used", "take", "three",
};
#define NWORDS (sizeof k_words / sizeof k_words[0])

static uint32_t g_lcg = 12345;
static uint32_t lcg(void) { g_lcg = g_lcg * 1103515245u + 12345u; return (g_lcg >> 16) & 0x7fff; }

/* A text of `words` one-token words → words + 2 tokens. */
static char *make_text(int words) {
  char *s = malloc((size_t)words * 12 + 2), *p = s;
  for (int i = 0; i < words; i++) p += sprintf(p, "%s%s", i ? " " : "", k_words[lcg() % NWORDS]);
  *p = 0;
  return s;
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double cpu_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double sgemm_gflops(int threads, int M, int N, int K) {
  if (threads > 1) openblas_set_num_threads(threads);
  float *a = calloc((size_t)M * K, 4), *b = calloc((size_t)N * K, 4), *c = calloc((size_t)M * N, 4);
  for (size_t i = 0; i < (size_t)M * K; i++) a[i] = (float)(i % 7) * 0.1f;
  for (size_t i = 0; i < (size_t)N * K; i++) b[i] = (float)(i % 5) * 0.1f;
  double best = 0;
  for (int r = 0; r < 7; r++) {
    double t0 = now();
    int iters = 0;
    do {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1, a, K, b, K, 0, c, N);
      iters++;
    } while (now() - t0 < 0.15);
    double g = 2.0 * M * N * K * iters / (now() - t0) / 1e9;
    if (g > best) best = g;
  }
  free(a); free(b); free(c);
  return best;
}

/* Two threads, each running single-threaded sgemm at once: the ceiling for the pool mode. */
typedef struct { int M, N, K; double gflops; } par_arg_t;
static void *par_main(void *p) {
  par_arg_t *a = p;
  a->gflops = sgemm_gflops(1, a->M, a->N, a->K);
  return NULL;
}
static double sgemm_gflops_pool2(int M, int N, int K) {
  pthread_t th[2];
  par_arg_t a[2] = {{M, N, K, 0}, {M, N, K, 0}};
  openblas_set_num_threads(1);
  for (int i = 0; i < 2; i++) pthread_create(&th[i], NULL, par_main, &a[i]);
  for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
  return a[0].gflops + a[1].gflops;
}

/* ---- pool mode --------------------------------------------------------------------------- */
static int g_done;
static void on_job(p2q_embed_job_t *j, int status) { if (status) fprintf(stderr, "job failed %d\n", status); g_done++; }
static void on_closed(void *arg) { (void)arg; }

static double run_pool(p2q_minilm_t *m, const char **texts, int ntexts, int batch, int threads) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  p2q_embed_pool_t *pool;
  if (p2q_embed_pool_init(&loop, m, threads, &pool) != 0) exit(1);
  int njobs = (ntexts + batch - 1) / batch;
  p2q_embed_job_t *jobs = calloc((size_t)njobs, sizeof *jobs);
  float *out = malloc(sizeof(float) * 384 * (size_t)ntexts);
  g_done = 0;
  double t0 = now();
  for (int k = 0; k < njobs; k++) {
    int i = k * batch;
    jobs[k].texts = texts + i;
    jobs[k].n = ntexts - i < batch ? ntexts - i : batch;
    jobs[k].out = out + (size_t)i * 384;
    jobs[k].cb = on_job;
    p2q_embed_pool_submit(pool, &jobs[k]);
  }
  while (g_done < njobs) uv_run(&loop, UV_RUN_ONCE);
  double dt = now() - t0;
  p2q_embed_pool_close(pool, on_closed, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  free(jobs);
  free(out);
  return dt;
}

static double run_direct(p2q_minilm_t *m, const char **texts, int ntexts, int batch) {
  float *out = malloc(sizeof(float) * 384 * (size_t)batch);
  double t0 = now();
  for (int i = 0; i < ntexts; i += batch) {
    int k = ntexts - i < batch ? ntexts - i : batch;
    if (p2q_minilm_embed(m, texts + i, NULL, k, out, NULL) != 0) exit(1);
  }
  double dt = now() - t0;
  free(out);
  return dt;
}

int main(int argc, char **argv) {
  const char *dir = getenv("P2Q_MODEL_DIR");
  int reps = 3, quick = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--model") && i + 1 < argc) dir = argv[++i];
    else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--quick")) quick = 1;
  }
  if (!dir) dir = "models/all-MiniLM-L6-v2";
  p2q_blas_autoselect(argv); /* as pg2qdrant does: may re-exec with the best OPENBLAS_CORETYPE */
  const p2q_blas_info_t *kernel = p2q_blas_info();
  printf("RESULT kind=blas core=%s detected=%s cpu=%s selected_by=%s\n", kernel->core,
         kernel->detected[0] ? kernel->detected : "-", kernel->cpu, kernel->how);
  p2q_minilm_t *m;
  int rc = p2q_minilm_load(dir, &m);
  if (rc) { fprintf(stderr, "load %s: %s\n", dir, p2q_strerror(rc)); return 1; }

  /* sgemm ceiling: 1 thread; 2 threads = the better of OpenBLAS's own 2 threads on one product
   * and two concurrent single-threaded products (what the pool does). FFN shape and square. */
  double peak[3];
  openblas_set_num_threads(1);
  double f1 = sgemm_gflops(1, 1024, 1536, 384), s1 = sgemm_gflops(1, 2048, 2048, 2048);
  double f2 = sgemm_gflops(2, 1024, 1536, 384), s2 = sgemm_gflops(2, 2048, 2048, 2048);
  double fp = sgemm_gflops_pool2(1024, 1536, 384), sp = sgemm_gflops_pool2(2048, 2048, 2048);
  peak[1] = f1 > s1 ? f1 : s1;
  peak[2] = f2 > s2 ? f2 : s2;
  if (fp > peak[2]) peak[2] = fp;
  if (sp > peak[2]) peak[2] = sp;
  printf("RESULT kind=sgemm threads=1 ffn_gflops=%.1f square_gflops=%.1f\n", f1, s1);
  printf("RESULT kind=sgemm threads=2 ffn_gflops=%.1f square_gflops=%.1f pool_ffn_gflops=%.1f "
         "pool_square_gflops=%.1f\n", f2, s2, fp, sp);
  static const int batches[] = {1, 8, 32, 128};
  static const struct { const char *name; int words; } lens[] = {{"short", 14}, {"long", 126}};
  for (size_t li = 0; li < 2; li++) {
    int L = lens[li].words + 2;
    for (size_t bi = 0; bi < sizeof batches / sizeof batches[0]; bi++) {
      int B = batches[bi];
      int target = quick ? 1024 : 4096; /* tokens per repetition */
      int ntexts = (target + L - 1) / L;
      if (ntexts < 2 * B) ntexts = 2 * B; /* at least two jobs for the pool */
      ntexts = (ntexts + B - 1) / B * B;
      g_lcg = 12345u + (uint32_t)li;
      const char **texts = malloc(sizeof *texts * (size_t)ntexts);
      for (int i = 0; i < ntexts; i++) texts[i] = make_text(lens[li].words);
      static const char *const modes[] = {"c-1t", "c-pool2", "c-blas2"};
      for (int mode = 0; mode < 3; mode++) {
        int threads = mode == 0 ? 1 : 2;
        double *dt = malloc(sizeof(double) * (size_t)reps), *ct = malloc(sizeof(double) * (size_t)reps);
        p2q_minilm_set_blas_threads(mode == 2 ? 2 : 1);
        if (mode == 1) run_pool(m, texts, B, B, 2); else run_direct(m, texts, B, B); /* warm-up */
        for (int r = 0; r < reps; r++) {
          double c0 = cpu_now();
          dt[r] = mode == 1 ? run_pool(m, texts, ntexts, B, 2) : run_direct(m, texts, ntexts, B);
          ct[r] = cpu_now() - c0;
        }
        qsort(dt, (size_t)reps, sizeof *dt, cmp_d);
        qsort(ct, (size_t)reps, sizeof *ct, cmp_d);
        double med = dt[reps / 2], toks = (double)ntexts * L;
        double flops = toks * (21233664.0 + 9216.0 * L);
        printf("RESULT kind=model impl=%s threads=%d len=%s tokens=%d batch=%d texts=%d "
               "sent_s=%.1f tok_s=%.0f gflops=%.1f sgemm_frac=%.2f sent_cpu_s=%.1f\n",
               modes[mode], threads, lens[li].name, L, B, ntexts, ntexts / med, toks / med,
               flops / med / 1e9, flops / med / 1e9 / peak[threads], ntexts / ct[reps / 2]);
        fflush(stdout);
        free(dt);
        free(ct);
      }
      for (int i = 0; i < ntexts; i++) free((void *)texts[i]);
      free(texts);
    }
  }
  p2q_minilm_free(m);
  return 0;
}

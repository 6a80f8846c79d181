/*
 * test_bench.c — the pure parts of `pg2qdrant bench`: sweep parsing and grid expansion (full and
 * one axis at a time), statistics (nearest-rank percentiles, median/spread with NaN), duration
 * parsing, the latency tracker (supersede, remove, growth), per-point aggregation, the
 * recommendation rule (bound, failed points, the 3% fewer-processes preference), the config
 * lines, the CSV writer (header/row column counts, quoting, NaN as empty) and the HTML writer
 * (every chart element, escaping, no external reference).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "pg2qdrant/bench.h"
#include "pg2qdrant/errors.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void test_sweep_parse(void **st) {
  p2q_bench_sweep_t s;
  char err[256];
  p2q_bench_sweep_init(&s);
  assert_int_equal(p2q_bench_sweep_add(&s, "batch_size=64,128,256,512", err, sizeof err), 0);
  assert_int_equal(s.n[P2Q_KNOB_BATCH_SIZE], 4);
  assert_int_equal(s.vals[P2Q_KNOB_BATCH_SIZE][3], 512);
  assert_int_equal(p2q_bench_sweep_add(&s, "replicas=1,2,4", err, sizeof err), 0);
  assert_int_equal(p2q_bench_sweep_add(&s, "nope=1", err, sizeof err), P2Q_EINVAL);
  assert_non_null(strstr(err, "unknown knob 'nope'"));
  assert_int_equal(p2q_bench_sweep_add(&s, "batch_size", err, sizeof err), P2Q_EINVAL);
  assert_int_equal(p2q_bench_sweep_add(&s, "batch_size=64,x", err, sizeof err), P2Q_EINVAL);
  assert_int_equal(p2q_bench_sweep_add(&s, "batch_size=64,", err, sizeof err), P2Q_EINVAL);
  assert_int_equal(p2q_bench_sweep_add(&s, "batch_size=0", err, sizeof err), P2Q_EINVAL);
  assert_non_null(strstr(err, "out of range"));
  assert_int_equal(p2q_bench_sweep_add(&s, "max_inflight=2,2", err, sizeof err), P2Q_EINVAL);
  assert_non_null(strstr(err, "given twice"));
  /* failures left the axes as they were */
  assert_int_equal(s.n[P2Q_KNOB_BATCH_SIZE], 4);
  /* one value sets the base: not an axis */
  assert_int_equal(p2q_bench_sweep_add(&s, "linger_ms=0", err, sizeof err), 0);
  assert_int_equal(s.base[P2Q_KNOB_LINGER_MS], 0);
  int axes[P2Q_KNOB_N];
  assert_int_equal(p2q_bench_sweep_axes(&s, axes), 2);
  assert_int_equal(axes[0], P2Q_KNOB_BATCH_SIZE);
  assert_int_equal(axes[1], P2Q_KNOB_REPLICAS);
  /* a repeated knob replaces the axis */
  assert_int_equal(p2q_bench_sweep_add(&s, "batch_size=100,200", err, sizeof err), 0);
  assert_int_equal(s.n[P2Q_KNOB_BATCH_SIZE], 2);
  assert_int_equal(p2q_bench_knob_find("threads"), P2Q_KNOB_EMBEDDER_THREADS);
  assert_string_equal(p2q_bench_knob_name(P2Q_KNOB_MAX_INFLIGHT), "max_inflight");
  p2q_bench_sweep_free(&s);
}

static void test_sweep_grid(void **st) {
  p2q_bench_sweep_t s;
  char err[256];
  p2q_bench_setting_t *p = NULL;
  p2q_bench_sweep_init(&s);
  /* no axis: the base alone */
  assert_int_equal(p2q_bench_sweep_expand(&s, 0, &p), 1);
  assert_int_equal(p[0].v[P2Q_KNOB_BATCH_SIZE], 256);
  assert_int_equal(p[0].v[P2Q_KNOB_MAX_INFLIGHT], 4);
  free(p);
  assert_int_equal(p2q_bench_sweep_add(&s, "batch_size=64,128,256", err, sizeof err), 0);
  assert_int_equal(p2q_bench_sweep_add(&s, "max_inflight=2,8", err, sizeof err), 0);
  assert_int_equal(p2q_bench_sweep_add(&s, "replicas=1,2,4", err, sizeof err), 0);
  int n = p2q_bench_sweep_expand(&s, 0, &p);
  assert_int_equal(n, 18);
  /* knob order: batch_size slowest, replicas fastest */
  assert_int_equal(p[0].v[P2Q_KNOB_BATCH_SIZE], 64);
  assert_int_equal(p[0].v[P2Q_KNOB_MAX_INFLIGHT], 2);
  assert_int_equal(p[0].v[P2Q_KNOB_REPLICAS], 1);
  assert_int_equal(p[1].v[P2Q_KNOB_REPLICAS], 2);
  assert_int_equal(p[3].v[P2Q_KNOB_MAX_INFLIGHT], 8);
  assert_int_equal(p[17].v[P2Q_KNOB_BATCH_SIZE], 256);
  assert_int_equal(p[17].v[P2Q_KNOB_MAX_INFLIGHT], 8);
  assert_int_equal(p[17].v[P2Q_KNOB_REPLICAS], 4);
  /* every combination exactly once; unswept knobs at base */
  for (int i = 0; i < n; i++) {
    assert_int_equal(p[i].v[P2Q_KNOB_LINGER_MS], 5);
    assert_int_equal(p[i].v[P2Q_KNOB_WORKERS], 1);
    for (int j = i + 1; j < n; j++) assert_true(memcmp(&p[i], &p[j], sizeof p[i]) != 0);
  }
  free(p);
  /* one axis at a time: 3 + 2 + 3 minus the duplicates of the base (256, 4->?, 1) */
  n = p2q_bench_sweep_expand(&s, 1, &p);
  /* base is batch 256, inflight 4, replicas 1: batch axis gives 64/128/256 (256 = base),
     inflight axis 2/8 (base 4 not listed), replicas 1 (= base, duplicate)/2/4 */
  assert_int_equal(n, 3 + 2 + 2);
  for (int i = 0; i < n; i++) {
    int differs = 0;
    differs += p[i].v[P2Q_KNOB_BATCH_SIZE] != 256;
    differs += p[i].v[P2Q_KNOB_MAX_INFLIGHT] != 4;
    differs += p[i].v[P2Q_KNOB_REPLICAS] != 1;
    assert_true(differs <= 1);
  }
  free(p);
  /* too big */
  p2q_bench_sweep_t big;
  p2q_bench_sweep_init(&big);
  assert_int_equal(p2q_bench_sweep_add(&big, "batch_size=1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22", err, sizeof err), 0);
  assert_int_equal(p2q_bench_sweep_add(&big, "max_inflight=1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22", err, sizeof err), 0);
  assert_int_equal(p2q_bench_sweep_add(&big, "replicas=1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22", err, sizeof err), 0);
  assert_int_equal(p2q_bench_sweep_expand(&big, 0, &p), P2Q_EOVERFLOW);
  assert_int_equal(p2q_bench_sweep_expand(&big, 1, &p), 66 - 1); /* inflight 4 and replicas 1 are the base */
  free(p);
  p2q_bench_sweep_free(&big);
  p2q_bench_sweep_free(&s);
}

static void test_stats(void **st) {
  double v[] = {5, 1, 4, 2, 3};
  p2q_bench_sort(v, 5);
  assert_true(v[0] == 1 && v[4] == 5);
  assert_true(p2q_bench_percentile(v, 5, 0.5) == 3);
  assert_true(p2q_bench_percentile(v, 5, 0.99) == 5);
  assert_true(p2q_bench_percentile(v, 5, 0.2) == 1); /* nearest rank: ceil(0.2*5) = 1 */
  assert_true(p2q_bench_percentile(v, 5, 0.21) == 2);
  assert_true(p2q_bench_percentile(v, 5, 0) == 1);
  assert_true(p2q_bench_percentile(v, 5, 1) == 5);
  assert_true(isnan(p2q_bench_percentile(v, 0, 0.5)));
  double h[100];
  for (int i = 0; i < 100; i++) h[i] = i + 1;
  assert_true(p2q_bench_percentile(h, 100, 0.99) == 99);
  assert_true(p2q_bench_percentile(h, 100, 0.50) == 50);

  p2q_bench_summary_t s;
  double r[] = {100, NAN, 120, 80};
  p2q_bench_summarize(r, 4, &s);
  assert_int_equal(s.n, 3);
  assert_true(s.median == 100 && s.min == 80 && s.max == 120);
  assert_true(fabs(s.spread_pct - 40.0) < 1e-9);
  double e[] = {10, 20};
  p2q_bench_summarize(e, 2, &s);
  assert_true(s.median == 15);
  p2q_bench_summarize(e, 1, &s);
  assert_true(s.median == 10 && s.spread_pct == 0);
  double nn[] = {NAN};
  p2q_bench_summarize(nn, 1, &s);
  assert_int_equal(s.n, 0);
  assert_true(isnan(s.median));

  assert_true(p2q_bench_parse_ms("25ms") == 25);
  assert_true(p2q_bench_parse_ms("2s") == 2000);
  assert_true(p2q_bench_parse_ms("0.5s") == 500);
  assert_true(p2q_bench_parse_ms("800us") == 0.8);
  assert_true(p2q_bench_parse_ms("7") == 7);
  assert_true(p2q_bench_parse_ms("7m") < 0);
  assert_true(p2q_bench_parse_ms("-1ms") < 0);
  assert_true(p2q_bench_parse_ms("x") < 0);
}

static void test_tracker(void **st) {
  p2q_bench_track_t t;
  p2q_bench_track_init(&t);
  assert_int_equal(p2q_bench_track_find(&t, 1), -1);
  for (long long i = 1; i <= 5000; i++) assert_int_equal(p2q_bench_track_add(&t, i, i, 0, (double)i), 0);
  assert_int_equal((int)t.n, 5000);
  for (long long i = 1; i <= 5000; i++) {
    long at = p2q_bench_track_find(&t, i);
    assert_true(at >= 0);
    assert_true(t.v[at].id == i && t.v[at].seq == i);
  }
  /* newer change of row 7 replaces the pending one; an older one arriving late is ignored */
  assert_int_equal(p2q_bench_track_add(&t, 7, 9000, 1, 42.0), 0);
  long at = p2q_bench_track_find(&t, 7);
  assert_true(t.v[at].seq == 9000 && t.v[at].is_delete == 1 && t.v[at].t_commit == 42.0);
  assert_int_equal(p2q_bench_track_add(&t, 7, 8000, 0, 43.0), 0);
  at = p2q_bench_track_find(&t, 7);
  assert_true(t.v[at].seq == 9000 && t.v[at].is_delete == 1);
  assert_int_equal((int)t.superseded, 2);
  assert_int_equal((int)t.n, 5000);
  /* remove every odd id; the rest stay findable (the moved last element too) */
  for (long long i = 1; i <= 5000; i += 2) {
    at = p2q_bench_track_find(&t, i);
    assert_true(at >= 0);
    p2q_bench_track_remove(&t, (size_t)at);
  }
  assert_int_equal((int)t.n, 2500);
  for (long long i = 1; i <= 5000; i++) assert_true((p2q_bench_track_find(&t, i) >= 0) == (i % 2 == 0));
  /* many add/remove cycles (tombstones) keep working */
  for (int round = 0; round < 20; round++) {
    for (long long i = 10000; i < 10500; i++) assert_int_equal(p2q_bench_track_add(&t, i, 1, 0, 0), 0);
    for (long long i = 10000; i < 10500; i++) p2q_bench_track_remove(&t, (size_t)p2q_bench_track_find(&t, i));
  }
  assert_int_equal((int)t.n, 2500);
  assert_true(p2q_bench_track_find(&t, 4000) >= 0);
  p2q_bench_track_free(&t);
}

static p2q_bench_run_t run_of(int point, const char *w, int tput, double eps, double p99) {
  p2q_bench_run_t r;
  memset(&r, 0, sizeof r);
  r.point = point;
  r.repeat = 1;
  snprintf(r.workload, sizeof r.workload, "%s", w);
  r.throughput = tput;
  r.events = 1000;
  r.seconds = 1;
  r.events_per_s = eps;
  r.commits_per_s = NAN;
  r.p50_ms = r.p90_ms = r.p99_ms = r.max_ms = r.observe_ms = NAN;
  r.qdrant_req_ms = r.qdrant_requests = r.rss_mib = r.dead_tuples = r.outbox_bytes = r.pgss_us_per_event = NAN;
  for (int c = 0; c < P2Q_COMP_N; c++) r.cpu_us[c] = c + 1.0;
  r.ok = 1;
  if (!isnan(p99)) {
    r.lat = malloc(3 * sizeof *r.lat);
    r.lat[0] = p99 / 4;
    r.lat[1] = p99 / 2;
    r.lat[2] = p99;
    r.lat_n = 3;
    r.p50_ms = p99 / 2;
    r.p99_ms = p99;
  }
  return r;
}

static void setting(p2q_bench_setting_t *s, long batch, long replicas, long workers) {
  memset(s->v, 0, sizeof s->v);
  s->v[P2Q_KNOB_BATCH_SIZE] = batch;
  s->v[P2Q_KNOB_LINGER_MS] = 5;
  s->v[P2Q_KNOB_MAX_INFLIGHT] = 4;
  s->v[P2Q_KNOB_CLAIMERS] = 2;
  s->v[P2Q_KNOB_WORKERS] = workers;
  s->v[P2Q_KNOB_REPLICAS] = replicas;
  s->v[P2Q_KNOB_EMBEDDER_THREADS] = 2;
}

static void test_points_and_recommend(void **st) {
  p2q_bench_setting_t sets[4];
  setting(&sets[0], 64, 1, 1);
  setting(&sets[1], 256, 1, 1);
  setting(&sets[2], 256, 4, 1);
  setting(&sets[3], 512, 1, 1);
  p2q_bench_run_t runs[] = {
      run_of(0, "drain", 1, 5000, NAN),  run_of(0, "steady", 0, 200, 4),   run_of(0, "drain", 1, 5200, NAN),
      run_of(1, "drain", 1, 9000, NAN),  run_of(1, "steady", 0, 200, 30),  /* over a 25 ms bound */
      run_of(2, "drain", 1, 8800, NAN),  run_of(2, "steady", 0, 200, 6),
      run_of(3, "drain", 1, 8900, NAN),  run_of(3, "steady", 0, 200, 5),
  };
  int nr = (int)(sizeof runs / sizeof *runs);
  p2q_bench_point_t pts[4];
  assert_int_equal(p2q_bench_points(runs, nr, sets, 4, pts), 0);
  assert_int_equal(pts[0].runs, 3);
  assert_true(pts[0].tput.median == 5100); /* drain runs only: the steady rate is not throughput */
  assert_true(pts[0].tput.min == 5000 && pts[0].tput.max == 5200);
  assert_true(pts[0].p99.median == 4);
  assert_int_equal((int)pts[0].lat_n, 3);
  assert_true(pts[0].cpu_us[P2Q_COMP_QDRANT] == P2Q_COMP_QDRANT + 1.0);
  char why[512];
  /* no bound: point 2 has the most (9000) but point 4 (8900) is within 3% with the same
     processes and a lower p99 (5 vs 30 ms) */
  assert_int_equal(p2q_bench_recommend(pts, 4, 0, why, sizeof why), 3);
  pts[3].tput.median = 8000;
  assert_int_equal(p2q_bench_recommend(pts, 4, 0, why, sizeof why), 1);
  assert_int_equal(p2q_bench_recommend(pts, 4, 25, why, sizeof why), 2); /* 8800 beats 8000 */
  pts[3].tput.median = 8900;
  /* 25 ms: point 2 is out; 3 (8800, 4 replicas) and 4 (8900, 1 replica) remain: 4 */
  assert_int_equal(p2q_bench_recommend(pts, 4, 25, why, sizeof why), 3);
  assert_non_null(strstr(why, "25 ms"));
  /* within 3%, fewer processes wins even over a slightly higher throughput */
  pts[2].tput.median = 8950;
  assert_int_equal(p2q_bench_recommend(pts, 4, 25, why, sizeof why), 3);
  assert_non_null(strstr(why, "within 3%"));
  /* beyond 3%, throughput wins */
  pts[2].tput.median = 9500;
  assert_int_equal(p2q_bench_recommend(pts, 4, 25, why, sizeof why), 2);
  /* a failed run disqualifies its point */
  pts[2].failed = 1;
  assert_int_equal(p2q_bench_recommend(pts, 4, 25, why, sizeof why), 3);
  /* nothing within the bound */
  assert_int_equal(p2q_bench_recommend(pts, 4, 1, why, sizeof why), -1);
  assert_non_null(strstr(why, "no point qualifies"));

  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  int swept[P2Q_KNOB_N] = {0};
  swept[P2Q_KNOB_EMBEDDER_THREADS] = 1;
  p2q_bench_config_lines(&pts[2], swept, "mini", f);
  fclose(f);
  assert_non_null(strstr(buf, "[worker.w1]\nbatch_size = 256\nlinger_ms = 5\nmax_inflight = 4\nclaimers = 2\n"));
  assert_non_null(strstr(buf, "run 4 `pg2qdrant run` processes"));
  assert_non_null(strstr(buf, "[embedder.mini]\nthreads = 2\n"));
  free(buf);
  p2q_bench_points_free(pts, 4);
  for (int i = 0; i < nr; i++) free(runs[i].lat);
}

static int count_char(const char *s, char c) {
  int n = 0;
  int quoted = 0;
  for (; *s; s++) {
    if (*s == '"') quoted = !quoted;
    if (*s == c && !quoted) n++;
  }
  return n;
}

static void test_csv(void **st) {
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  p2q_bench_csv_header(f);
  p2q_bench_run_t r = run_of(2, "steady", 0, 200, 12.5);
  setting(&r.set, 128, 2, 1);
  r.writer = P2Q_WRITER_PREPARED_BINARY;
  snprintf(r.error, sizeof r.error, "bad, \"quoted\"");
  r.ok = 0;
  p2q_bench_csv_row(f, &r);
  fclose(f);
  char *nl = strchr(buf, '\n');
  assert_non_null(nl);
  *nl = 0;
  const char *row = nl + 1;
  assert_int_equal(count_char(buf, ','), 40); /* 41 columns */
  assert_int_equal(count_char(row, ','), 40);
  assert_non_null(strstr(buf, "point,repeat,workload,writer,batch_size,linger_ms,max_inflight,claimers,workers,replicas,embedder_threads,idle_linger_ms,"));
  assert_non_null(strstr(buf, ",p99_ms,"));
  assert_non_null(strstr(buf, ",cpu_us_qdrant,"));
  assert_non_null(strstr(buf, ",cpu_us_pg_daemon,cpu_us_pg_autovacuum,cpu_us_pg_autovacuum_other,cpu_us_pg_writers,"));
  assert_non_null(strstr(buf, ",pgss_us_per_event,tail_s,leases_reclaimed,dead_letters,"));
  assert_true(!strncmp(row, "3,1,steady,prepared-binary,128,5,4,2,1,2,2,0,1000,", 50));
  assert_non_null(strstr(row, ",12.500,")); /* p99 */
  assert_non_null(strstr(row, ",0,\"bad, \"\"quoted\"\"\"\n")); /* ok=0 and RFC 4180 quoting */
  assert_non_null(strstr(row, ",,")); /* NaN: empty cells */
  assert_null(strstr(row, "nan"));
  free(buf);
  free(r.lat);
}

static void test_fixed4(void **st) {
  char a[32], b[32];
  /* every value the writers draw, against the printf they replace (same text, same length) */
  for (long long k = 0; k < 20000; k++) {
    size_t n = p2q_bench_fixed4(a, k - 10000);
    snprintf(b, sizeof b, "%.4f", (double)k / 10000.0 - 1.0);
    if (strcmp(a, b) || n != strlen(b)) fail_msg("k=%lld: '%s' vs printf '%s'", k, a, b);
  }
  long long big[] = {123456789, -123456789, 10000, -10000, 1, -1, 0, 99999999999LL};
  for (size_t i = 0; i < sizeof big / sizeof *big; i++) {
    p2q_bench_fixed4(a, big[i]);
    snprintf(b, sizeof b, "%.4f", (double)big[i] / 10000.0);
    assert_string_equal(a, b);
  }
  (void)st;
}

static void test_autovac_target(void **st) {
  const char *names[] = {"p2q_bench_1a2b3c4d.sync_outbox", "pg_toast.pg_toast_16421",
                         "p2q_bench_1a2b3c4d.sync_outbox_lease"};
  /* the forms autovacuum prints (autovacuum.c autovac_report_activity) */
  assert_int_equal(p2q_bench_autovac_target("autovacuum: VACUUM p2q_bench_1a2b3c4d.sync_outbox", names, 3), 1);
  assert_int_equal(p2q_bench_autovac_target("autovacuum: VACUUM ANALYZE p2q_bench_1a2b3c4d.sync_outbox_lease", names, 3), 1);
  assert_int_equal(p2q_bench_autovac_target("autovacuum: ANALYZE p2q_bench_1a2b3c4d.sync_outbox", names, 3), 1);
  assert_int_equal(p2q_bench_autovac_target("autovacuum: VACUUM pg_toast.pg_toast_16421 (to prevent wraparound)", names, 3), 1);
  assert_int_equal(p2q_bench_autovac_target("autovacuum: BRIN summarize p2q_bench_1a2b3c4d.sync_outbox 7", names, 3), 1);
  /* prefixes and extensions of a name are other tables */
  assert_int_equal(p2q_bench_autovac_target("autovacuum: VACUUM p2q_bench_1a2b3c4d.sync_outbox_dead", names, 3), 0);
  assert_int_equal(p2q_bench_autovac_target("autovacuum: VACUUM p2q_bench_1a2b3c4d.sync_outbo", names, 3), 0);
  assert_int_equal(p2q_bench_autovac_target("autovacuum: VACUUM pg_toast.pg_toast_164210", names, 3), 0);
  assert_int_equal(p2q_bench_autovac_target("autovacuum: VACUUM ANALYZE p2q_bench_1a2b3c4d.items", names, 3), 0);
  assert_int_equal(p2q_bench_autovac_target("autovacuum: VACUUM other.sync_outbox", names, 3), 0);
  /* nothing named: idle worker, hidden activity, not an autovacuum text */
  assert_int_equal(p2q_bench_autovac_target("", names, 3), -1);
  assert_int_equal(p2q_bench_autovac_target(NULL, names, 3), -1);
  assert_int_equal(p2q_bench_autovac_target("<insufficient privilege>", names, 3), -1);
  assert_int_equal(p2q_bench_autovac_target("autovacuum: VACUUM", names, 3), -1);
  assert_int_equal(p2q_bench_autovac_target("VACUUM p2q_bench_1a2b3c4d.sync_outbox", names, 3), -1);
  assert_int_equal(p2q_bench_autovac_target("autovacuum: VACUUM p2q_bench_1a2b3c4d.sync_outbox", names, 0), 0);
  (void)st;
}

static void test_autovac_account(void **st) {
  p2q_bench_autovac_t a;
  p2q_bench_autovac_reset(&a);
  /* baselines at the start sample: nothing counted */
  p2q_bench_autovac_sample(&a, 100, 5.0, 0, 1);
  p2q_bench_autovac_sample(&a, 101, 2.0, 1, 1);
  assert_true(a.outbox_s == 0 && a.other_s == 0);
  /* 100 moved from another table to the outbox: the interval is charged to the earlier target */
  p2q_bench_autovac_sample(&a, 100, 5.5, 1, 0);
  assert_true(a.other_s == 0.5 && a.outbox_s == 0);
  p2q_bench_autovac_sample(&a, 100, 6.25, 1, 0);
  assert_true(a.outbox_s == 0.75);
  /* 101 idle at the earlier sample: charged to what it works on now */
  p2q_bench_autovac_sample(&a, 101, 2.0, -1, 0);
  p2q_bench_autovac_sample(&a, 101, 3.0, 1, 0);
  assert_true(a.outbox_s == 1.75 && a.other_s == 0.5);
  /* idle at both samples: other */
  p2q_bench_autovac_sample(&a, 101, 3.5, -1, 0);
  p2q_bench_autovac_sample(&a, 101, 3.75, -1, 0);
  assert_true(a.outbox_s == 2.25 && a.other_s == 0.75);
  /* born during the run: all its CPU counts */
  p2q_bench_autovac_sample(&a, 102, 0.5, 1, 0);
  assert_true(a.outbox_s == 2.75);
  /* gone (NaN) or not advanced: nothing */
  p2q_bench_autovac_sample(&a, 102, NAN, 1, 0);
  p2q_bench_autovac_sample(&a, 102, 0.5, 1, 0);
  assert_true(a.outbox_s == 2.75 && a.other_s == 0.75);
  assert_int_equal(a.n, 3);
  /* more workers than slots: the oldest is forgotten, the count stays bounded */
  for (int pid = 200; pid < 300; pid++) p2q_bench_autovac_sample(&a, pid, 1.0, 0, 1);
  assert_int_equal(a.n, (int)(sizeof a.w / sizeof *a.w));
  assert_true(a.outbox_s == 2.75 && a.other_s == 0.75);
  p2q_bench_autovac_reset(&a);
  assert_true(a.n == 0 && a.outbox_s == 0 && a.other_s == 0);
  (void)st;
}

static void test_html(void **st) {
  p2q_bench_setting_t sets[2];
  setting(&sets[0], 64, 1, 1);
  setting(&sets[1], 256, 2, 1);
  p2q_bench_run_t runs[] = {run_of(0, "drain", 1, 5000, NAN), run_of(0, "steady", 0, 200, 4),
                            run_of(1, "drain", 1, 9000, NAN), run_of(1, "steady", 0, 200, 8)};
  snprintf(runs[3].error, sizeof runs[3].error, "<script>x</script>");
  p2q_bench_point_t pts[2];
  assert_int_equal(p2q_bench_points(runs, 4, sets, 2, pts), 0);
  char why[256];
  int rec = p2q_bench_recommend(pts, 2, 25, why, sizeof why);
  p2q_bench_report_meta_t m = {.title = "pg2qdrant bench --sweep batch_size=64,256 & more", .machine = "2 cores",
                               .p99_max_ms = 25, .recommended = rec, .why = why, .notes = "note <b>"};
  m.axes[0] = P2Q_KNOB_BATCH_SIZE;
  m.axes[1] = P2Q_KNOB_REPLICAS;
  m.naxes = 2;
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  p2q_bench_html(f, &m, pts, 2, runs, 4);
  fclose(f);
  assert_true(!strncmp(buf, "<!DOCTYPE html>", 15));
  assert_non_null(strstr(buf, "</html>\n"));
  const char *ids[] = {"id=\"tput-points\"", "id=\"tput-batch_size\"", "id=\"tput-replicas\"", "id=\"latency-cdf\"",
                       "id=\"latency-pct\"", "id=\"cpu-stack\"", "id=\"points\"", "id=\"runs\"", "id=\"recommendation\""};
  for (size_t i = 0; i < sizeof ids / sizeof *ids; i++) assert_non_null(strstr(buf, ids[i]));
  assert_non_null(strstr(buf, "class=\"cdf\""));
  assert_non_null(strstr(buf, "class=\"bar p99\""));
  assert_non_null(strstr(buf, "class=\"seg\""));
  assert_non_null(strstr(buf, "class=\"bound\""));
  assert_non_null(strstr(buf, "batch_size = 256")); /* the recommended config lines */
  assert_non_null(strstr(buf, "&amp; more"));
  assert_non_null(strstr(buf, "&lt;script&gt;"));
  assert_null(strstr(buf, "<script"));
  assert_null(strstr(buf, "note <b>"));
  /* no reference to the network: the only URL is the SVG namespace */
  int urls = 0, ns = 0;
  for (const char *p = buf; (p = strstr(p, "http")); p++) urls++;
  for (const char *p = buf; (p = strstr(p, "http://www.w3.org/2000/svg")); p++) ns++;
  assert_int_equal(urls, ns);
  assert_null(strstr(buf, "https://"));
  assert_null(strstr(buf, "nan"));
  /* svg tags balance */
  int open = 0, close = 0;
  for (const char *p = buf; (p = strstr(p, "<svg ")); p++) open++;
  for (const char *p = buf; (p = strstr(p, "</svg>")); p++) close++;
  assert_int_equal(open, 6);
  assert_int_equal(close, 6);
  free(buf);
  p2q_bench_points_free(pts, 2);
  for (int i = 0; i < 4; i++) free(runs[i].lat);
}

/* drain-only runs: no latency sample anywhere; the report still ends (the CDF axis once looped
   forever on an infinite range) and says why the latency charts are empty */
static void test_html_without_latency(void **st) {
  p2q_bench_setting_t sets[1];
  setting(&sets[0], 64, 1, 1);
  p2q_bench_run_t runs[] = {run_of(0, "drain", 1, 5000, NAN)};
  runs[0].cpu_us[P2Q_COMP_QDRANT] = NAN;
  p2q_bench_point_t pts[1];
  assert_int_equal(p2q_bench_points(runs, 1, sets, 1, pts), 0);
  char why[256];
  int rec = p2q_bench_recommend(pts, 1, 25, why, sizeof why);
  assert_int_equal(rec, 0);
  assert_non_null(strstr(why, "not checked"));
  p2q_bench_report_meta_t m = {.title = "t", .machine = "m", .p99_max_ms = 25, .recommended = rec, .why = why};
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  p2q_bench_html(f, &m, pts, 1, runs, 1);
  fclose(f);
  assert_non_null(strstr(buf, "no latency workload in this run"));
  assert_non_null(strstr(buf, "id=\"latency-cdf\""));
  assert_null(strstr(buf, "class=\"cdf\""));
  assert_null(strstr(buf, "nan"));
  assert_null(strstr(buf, "\"inf"));  /* no infinite coordinate */
  assert_null(strstr(buf, "\"-inf"));
  assert_null(strstr(buf, ">inf<"));
  assert_true(len < 100000);
  free(buf);
  p2q_bench_points_free(pts, 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_sweep_parse), cmocka_unit_test(test_sweep_grid),
      cmocka_unit_test(test_stats),       cmocka_unit_test(test_tracker),
      cmocka_unit_test(test_points_and_recommend), cmocka_unit_test(test_csv),
      cmocka_unit_test(test_autovac_target), cmocka_unit_test(test_autovac_account),
      cmocka_unit_test(test_fixed4),
      cmocka_unit_test(test_html),        cmocka_unit_test(test_html_without_latency),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * bench_stats.c — statistics for `pg2qdrant bench`: nearest-rank percentiles, median/min/max
 * and spread over repeats, duration parsing, the latency tracker (pending commits by point id).
 *
 * Pure and single-threaded (the tracker is locked by its caller, bench_load.c).
 */
#include "pg2qdrant/bench.h"
#include "pg2qdrant/errors.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

void p2q_bench_sort(double *v, size_t n) {
  if (n > 1) qsort(v, n, sizeof *v, cmp_double);
}

double p2q_bench_percentile(const double *sorted, size_t n, double q) {
  if (n == 0) return NAN;
  if (q <= 0) return sorted[0];
  if (q >= 1) return sorted[n - 1];
  size_t rank = (size_t)ceil(q * (double)n); /* 1-based nearest rank */
  if (rank < 1) rank = 1;
  return sorted[rank - 1];
}

void p2q_bench_summarize(const double *v, size_t n, p2q_bench_summary_t *out) {
  out->median = out->min = out->max = out->spread_pct = NAN;
  out->n = 0;
  double *c = malloc((n ? n : 1) * sizeof *c);
  if (!c) return;
  size_t m = 0;
  for (size_t i = 0; i < n; i++)
    if (!isnan(v[i])) c[m++] = v[i];
  if (m) {
    p2q_bench_sort(c, m);
    out->n = (int)m;
    out->min = c[0];
    out->max = c[m - 1];
    out->median = m % 2 ? c[m / 2] : (c[m / 2 - 1] + c[m / 2]) / 2;
    out->spread_pct = m > 1 && out->median != 0 ? (out->max - out->min) / fabs(out->median) * 100 : 0;
  }
  free(c);
}

double p2q_bench_parse_ms(const char *s) {
  char *end;
  double v = strtod(s, &end);
  if (end == s || v < 0 || isnan(v) || isinf(v)) return -1;
  if (!*end || !strcmp(end, "ms")) return v;
  if (!strcmp(end, "s")) return v * 1000;
  if (!strcmp(end, "us")) return v / 1000;
  return -1;
}

/* ---- latency tracker --------------------------------------------------------------------- */

void p2q_bench_track_init(p2q_bench_track_t *t) { memset(t, 0, sizeof *t); }

void p2q_bench_track_free(p2q_bench_track_t *t) {
  free(t->v);
  free(t->slot);
  memset(t, 0, sizeof *t);
}

static size_t hash_id(long long id, size_t slots) {
  unsigned long long x = (unsigned long long)id * 0x9E3779B97F4A7C15ull;
  return (size_t)(x >> 17) & (slots - 1);
}

/* slot index holding id, or the first free one (for insertion) when absent */
static size_t probe(const p2q_bench_track_t *t, long long id, int *found) {
  size_t h = hash_id(id, t->slots), tomb = (size_t)-1;
  for (size_t i = 0; i < t->slots; i++, h = (h + 1) & (t->slots - 1)) {
    long long s = t->slot[h];
    if (s == 0) { *found = 0; return tomb != (size_t)-1 ? tomb : h; }
    if (s < 0) { if (tomb == (size_t)-1) tomb = h; continue; }
    if (t->v[s - 1].id == id) { *found = 1; return h; }
  }
  *found = 0;
  return tomb;
}

static int rehash(p2q_bench_track_t *t, size_t slots) {
  long long *ns = calloc(slots, sizeof *ns);
  if (!ns) return P2Q_ENOMEM;
  free(t->slot);
  t->slot = ns;
  t->slots = slots;
  t->used = t->n;
  for (size_t i = 0; i < t->n; i++) {
    int f;
    size_t h = probe(t, t->v[i].id, &f);
    t->slot[h] = (long long)i + 1;
  }
  return 0;
}

long p2q_bench_track_find(const p2q_bench_track_t *t, long long id) {
  if (!t->slots) return -1;
  int f;
  size_t h = probe(t, id, &f);
  return f ? (long)(t->slot[h] - 1) : -1;
}

int p2q_bench_track_add(p2q_bench_track_t *t, long long id, long long seq, int is_delete,
                        double t_commit) {
  if ((t->used + 1) * 2 > t->slots) {
    size_t want = t->slots ? t->slots : 64;
    while ((t->n + 1) * 4 > want) want *= 2; /* tombstones alone: same size, cleared */
    if (rehash(t, want) < 0) return P2Q_ENOMEM;
  }
  int f;
  size_t h = probe(t, id, &f);
  if (f) {
    p2q_bench_pending_t *e = &t->v[t->slot[h] - 1];
    if (seq <= e->seq) { t->superseded++; return 0; } /* an older change committed late */
    t->superseded++;
    e->seq = seq;
    e->is_delete = is_delete;
    e->t_commit = t_commit;
    return 0;
  }
  if (t->n == t->cap) {
    size_t nc = t->cap ? t->cap * 2 : 256;
    p2q_bench_pending_t *nv = realloc(t->v, nc * sizeof *nv);
    if (!nv) return P2Q_ENOMEM;
    t->v = nv;
    t->cap = nc;
  }
  t->v[t->n] = (p2q_bench_pending_t){id, seq, t_commit, is_delete};
  t->n++;
  if (t->slot[h] == 0) t->used++;
  t->slot[h] = (long long)t->n;
  return 0;
}

void p2q_bench_track_remove(p2q_bench_track_t *t, size_t i) {
  if (i >= t->n) return;
  int f;
  size_t h = probe(t, t->v[i].id, &f);
  if (f) t->slot[h] = -1;
  size_t last = t->n - 1;
  if (i != last) {
    t->v[i] = t->v[last];
    size_t hl = probe(t, t->v[i].id, &f);
    if (f) t->slot[hl] = (long long)i + 1;
  }
  t->n--;
}

size_t p2q_bench_fixed4(char *out, long long v) {
  char tmp[24];
  size_t n = 0, k = 0;
  unsigned long long a = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
  unsigned long long ip = a / 10000, fp = a % 10000;
  if (v < 0) out[n++] = '-';
  do { tmp[k++] = (char)('0' + ip % 10); ip /= 10; } while (ip);
  while (k) out[n++] = tmp[--k];
  out[n++] = '.';
  out[n++] = (char)('0' + fp / 1000);
  out[n++] = (char)('0' + fp / 100 % 10);
  out[n++] = (char)('0' + fp / 10 % 10);
  out[n++] = (char)('0' + fp % 10);
  out[n] = 0;
  return n;
}

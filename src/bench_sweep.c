/*
 * bench_sweep.c — the knobs `pg2qdrant bench` can sweep and the grid of points to run, and the
 * names of the writers' modes (--writer).
 *
 * Pure: parses "--sweep knob=v1,v2,..." specs and expands them into settings (the full grid, or
 * one axis at a time with the other knobs at their base values). No I/O, no globals.
 */
#include "pg2qdrant/bench.h"
#include "pg2qdrant/config.h"
#include "pg2qdrant/errors.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const struct {
  const char *name;
  long lo, hi, base;
} knobs[P2Q_KNOB_N] = {
#define XX(id, name, lo, hi, base) {name, lo, hi, base},
    P2Q_BENCH_KNOBS(XX)
#undef XX
};

const char *p2q_bench_knob_name(int k) { return k >= 0 && k < P2Q_KNOB_N ? knobs[k].name : "?"; }

int p2q_bench_knob_find(const char *name) {
  for (int k = 0; k < P2Q_KNOB_N; k++)
    if (!strcmp(knobs[k].name, name)) return k;
  if (!strcmp(name, "replica") || !strcmp(name, "processes")) return P2Q_KNOB_REPLICAS;
  if (!strcmp(name, "threads")) return P2Q_KNOB_EMBEDDER_THREADS;
  return -1;
}

static const struct {
  const char *name;
  int prepared, binary;
} writer_modes[P2Q_WRITER_N] = {
#define XX(id, name, prep, bin) {name, prep, bin},
    P2Q_BENCH_WRITER_MODES(XX)
#undef XX
};

const char *p2q_bench_writer_name(int m) { return m >= 0 && m < P2Q_WRITER_N ? writer_modes[m].name : ""; }
int p2q_bench_writer_prepared(int m) { return m >= 0 && m < P2Q_WRITER_N && writer_modes[m].prepared; }
int p2q_bench_writer_binary(int m) { return m >= 0 && m < P2Q_WRITER_N && writer_modes[m].binary; }

int p2q_bench_writer_find(const char *name) {
  for (int m = 0; m < P2Q_WRITER_N; m++)
    if (!strcmp(writer_modes[m].name, name)) return m;
  return -1;
}

void p2q_bench_sweep_init(p2q_bench_sweep_t *s) {
  memset(s, 0, sizeof *s);
  for (int k = 0; k < P2Q_KNOB_N; k++) s->base[k] = knobs[k].base;
  /* the worker knobs' bases are what a [worker.*] section gets by default: one table holds them */
  const p2q_conf_section_t *ws = p2q_conf_section_find("worker");
  p2q_worker_config_t wc;
  memset(&wc, 0, sizeof wc);
  if (ws && p2q_conf_apply_defaults(ws, (char *)&wc) == 0) {
    s->base[P2Q_KNOB_BATCH_SIZE] = (long)wc.batch_size;
    s->base[P2Q_KNOB_LINGER_MS] = (long)wc.linger_ms;
    s->base[P2Q_KNOB_IDLE_LINGER_MS] = (long)wc.idle_linger_ms;
    s->base[P2Q_KNOB_MAX_INFLIGHT] = (long)wc.max_inflight;
    s->base[P2Q_KNOB_CLAIMERS] = (long)wc.claimers;
  }
  if (ws) p2q_conf_free_fields(ws, (char *)&wc);
}

void p2q_bench_sweep_free(p2q_bench_sweep_t *s) {
  for (int k = 0; k < P2Q_KNOB_N; k++) {
    free(s->vals[k]);
    s->vals[k] = NULL;
    s->n[k] = 0;
  }
}

int p2q_bench_sweep_add(p2q_bench_sweep_t *s, const char *spec, char *err, size_t errlen) {
  const char *eq = strchr(spec, '=');
  char name[64];
  size_t nl = eq ? (size_t)(eq - spec) : 0;
  if (!eq || nl == 0 || nl >= sizeof name) {
    snprintf(err, errlen, "--sweep %s: expected KNOB=V1,V2,... (knobs: %s)", spec, P2Q_BENCH_KNOB_LIST);
    return P2Q_EINVAL;
  }
  memcpy(name, spec, nl);
  name[nl] = 0;
  int k = p2q_bench_knob_find(name);
  if (k < 0) {
    snprintf(err, errlen, "--sweep: unknown knob '%s' (%s)", name, P2Q_BENCH_KNOB_LIST);
    return P2Q_EINVAL;
  }
  long *vals = NULL;
  int n = 0;
  const char *p = eq + 1;
  for (;;) {
    char *end;
    errno = 0;
    long v = strtol(p, &end, 10);
    if (end == p || errno || (*end && *end != ',')) {
      snprintf(err, errlen, "--sweep %s: '%s' is not a list of integers", name, eq + 1);
      free(vals);
      return P2Q_EINVAL;
    }
    if (v < knobs[k].lo || v > knobs[k].hi) {
      snprintf(err, errlen, "--sweep %s: %ld is out of range [%ld, %ld]", name, v, knobs[k].lo,
               knobs[k].hi);
      free(vals);
      return P2Q_EINVAL;
    }
    for (int i = 0; i < n; i++)
      if (vals[i] == v) {
        snprintf(err, errlen, "--sweep %s: %ld given twice", name, v);
        free(vals);
        return P2Q_EINVAL;
      }
    long *nv = realloc(vals, (size_t)(n + 1) * sizeof *nv);
    if (!nv) { free(vals); return P2Q_ENOMEM; }
    vals = nv;
    vals[n++] = v;
    if (!*end) break;
    p = end + 1;
  }
  free(s->vals[k]);
  s->vals[k] = vals;
  s->n[k] = n;
  /* a one-value "sweep" simply sets the knob */
  if (n == 1) s->base[k] = vals[0];
  return 0;
}

int p2q_bench_sweep_axes(const p2q_bench_sweep_t *s, int axes[P2Q_KNOB_N]) {
  int n = 0;
  for (int k = 0; k < P2Q_KNOB_N; k++)
    if (s->n[k] > 1) axes[n++] = k;
  return n;
}

static int same(const p2q_bench_setting_t *a, const p2q_bench_setting_t *b) {
  return memcmp(a->v, b->v, sizeof a->v) == 0;
}

int p2q_bench_sweep_expand(const p2q_bench_sweep_t *s, int one_axis, p2q_bench_setting_t **out) {
  int axes[P2Q_KNOB_N];
  int na = p2q_bench_sweep_axes(s, axes);
  long total = 1;
  if (one_axis) {
    total = na ? 0 : 1;
    for (int a = 0; a < na; a++) total += s->n[axes[a]];
  } else {
    for (int a = 0; a < na; a++) {
      total *= s->n[axes[a]];
      if (total > 10000) return P2Q_EOVERFLOW;
    }
  }
  if (total > 10000) return P2Q_EOVERFLOW;
  p2q_bench_setting_t *pts = calloc((size_t)total, sizeof *pts);
  if (!pts) return P2Q_ENOMEM;
  p2q_bench_setting_t base;
  for (int k = 0; k < P2Q_KNOB_N; k++) base.v[k] = s->base[k];
  int n = 0;
  if (na == 0) {
    pts[n++] = base;
  } else if (one_axis) {
    for (int a = 0; a < na; a++)
      for (int i = 0; i < s->n[axes[a]]; i++) {
        p2q_bench_setting_t p = base;
        p.v[axes[a]] = s->vals[axes[a]][i];
        int dup = 0;
        for (int j = 0; j < n && !dup; j++) dup = same(&pts[j], &p);
        if (!dup) pts[n++] = p;
      }
  } else {
    /* odometer: the last axis varies fastest */
    int idx[P2Q_KNOB_N] = {0};
    for (long c = 0; c < total; c++) {
      p2q_bench_setting_t p = base;
      for (int a = 0; a < na; a++) p.v[axes[a]] = s->vals[axes[a]][idx[a]];
      pts[n++] = p;
      for (int a = na - 1; a >= 0; a--) {
        if (++idx[a] < s->n[axes[a]]) break;
        idx[a] = 0;
      }
    }
  }
  *out = pts;
  return n;
}

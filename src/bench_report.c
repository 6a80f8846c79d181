/*
 * bench_report.c — what `pg2qdrant bench` hands back: per-point aggregates over repeats, the
 * recommendation rule and its config lines, the CSV of every run, and the one-file HTML report
 * (inline SVG charts drawn here: no script, no stylesheet or font from the network).
 *
 * Pure: input is arrays of results, output goes to a FILE *. NaN means "not measured" everywhere
 * (an empty CSV cell, a missing bar).
 */
#include "pg2qdrant/bench.h"
#include "pg2qdrant/errors.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const comp_labels[P2Q_COMP_N] = {
#define XX(id, label) label,
    P2Q_BENCH_COMPONENTS(XX)
#undef XX
};
static const char *const comp_csv[P2Q_COMP_N] = {"cpu_us_pg2qdrant",    "cpu_us_pg_daemon",
                                                 "cpu_us_pg_autovacuum", "cpu_us_pg_autovacuum_other",
                                                 "cpu_us_pg_writers",    "cpu_us_qdrant",
                                                 "cpu_us_bench"};
static const char *const palette[] = {"#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
                                      "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"};
#define NPAL (sizeof palette / sizeof *palette)

/* ---- aggregation ------------------------------------------------------------------------- */

int p2q_bench_points(const p2q_bench_run_t *runs, int nruns, const p2q_bench_setting_t *sets,
                     int npoints, p2q_bench_point_t *out) {
  memset(out, 0, (size_t)npoints * sizeof *out);
  double *a = malloc((size_t)(nruns ? nruns : 1) * sizeof *a);
  double *b = malloc((size_t)(nruns ? nruns : 1) * sizeof *b);
  if (!a || !b) { free(a); free(b); return P2Q_ENOMEM; }
  for (int p = 0; p < npoints; p++) {
    p2q_bench_point_t *pt = &out[p];
    pt->set = sets[p];
    int has_tput = 0;
    size_t lat_total = 0;
    for (int i = 0; i < nruns; i++)
      if (runs[i].point == p) {
        pt->runs++;
        if (!runs[i].ok) pt->failed++;
        if (runs[i].throughput) has_tput = 1;
        lat_total += (size_t)runs[i].lat_n;
        if (!isnan(runs[i].rss_mib) && runs[i].rss_mib > pt->rss_mib) pt->rss_mib = runs[i].rss_mib;
      }
    int m = 0;
    for (int i = 0; i < nruns; i++)
      if (runs[i].point == p && (!has_tput || runs[i].throughput)) a[m++] = runs[i].events_per_s;
    p2q_bench_summarize(a, (size_t)m, &pt->tput);
    for (int c = 0; c < P2Q_COMP_N; c++) {
      m = 0;
      for (int i = 0; i < nruns; i++)
        if (runs[i].point == p && (!has_tput || runs[i].throughput)) a[m++] = runs[i].cpu_us[c];
      p2q_bench_summary_t s;
      p2q_bench_summarize(a, (size_t)m, &s);
      pt->cpu_us[c] = s.median;
    }
    m = 0;
    for (int i = 0; i < nruns; i++)
      if (runs[i].point == p && runs[i].lat_n > 0) {
        a[m] = runs[i].p50_ms;
        b[m++] = runs[i].p99_ms;
      }
    p2q_bench_summarize(a, (size_t)m, &pt->p50);
    p2q_bench_summarize(b, (size_t)m, &pt->p99);
    if (lat_total) {
      pt->lat = malloc(lat_total * sizeof *pt->lat);
      if (!pt->lat) { free(a); free(b); return P2Q_ENOMEM; }
      for (int i = 0; i < nruns; i++)
        if (runs[i].point == p && runs[i].lat_n > 0 && runs[i].lat) {
          memcpy(pt->lat + pt->lat_n, runs[i].lat, (size_t)runs[i].lat_n * sizeof *pt->lat);
          pt->lat_n += (size_t)runs[i].lat_n;
        }
      p2q_bench_sort(pt->lat, pt->lat_n);
    }
  }
  free(a);
  free(b);
  return 0;
}

void p2q_bench_points_free(p2q_bench_point_t *pts, int n) {
  for (int i = 0; i < n; i++) {
    free(pts[i].lat);
    pts[i].lat = NULL;
  }
}

/* ---- recommendation ---------------------------------------------------------------------- */

static long cost(const p2q_bench_point_t *p) {
  return p->set.v[P2Q_KNOB_REPLICAS] * p->set.v[P2Q_KNOB_WORKERS];
}

int p2q_bench_recommend(const p2q_bench_point_t *pts, int n, double p99_max_ms, char *why,
                        size_t whylen) {
  int best = -1, unchecked = 0, over = 0, failed = 0;
  for (int i = 0; i < n; i++) {
    if (pts[i].failed || pts[i].runs == 0 || isnan(pts[i].tput.median)) { failed++; continue; }
    if (p99_max_ms > 0 && !isnan(pts[i].p99.median) && pts[i].p99.median > p99_max_ms) { over++; continue; }
    if (p99_max_ms > 0 && isnan(pts[i].p99.median)) unchecked = 1;
    if (best < 0 || pts[i].tput.median > pts[best].tput.median) best = i;
  }
  if (best < 0) {
    snprintf(why, whylen, "no point qualifies: %d over the p99 bound of %.3g ms, %d with failed runs",
             over, p99_max_ms, failed);
    return -1;
  }
  /* within 3% of the best, prefer fewer processes x workers, then the lower p99 */
  int pick = best;
  double floor_tput = pts[best].tput.median * 0.97;
  for (int i = 0; i < n; i++) {
    if (i == pick || pts[i].failed || pts[i].runs == 0 || isnan(pts[i].tput.median)) continue;
    if (p99_max_ms > 0 && !isnan(pts[i].p99.median) && pts[i].p99.median > p99_max_ms) continue;
    if (pts[i].tput.median < floor_tput) continue;
    long ci = cost(&pts[i]), cp = cost(&pts[pick]);
    double li = isnan(pts[i].p99.median) ? INFINITY : pts[i].p99.median;
    double lp = isnan(pts[pick].p99.median) ? INFINITY : pts[pick].p99.median;
    if (ci < cp || (ci == cp && li < lp)) pick = i;
  }
  int k = snprintf(why, whylen, "highest median throughput%s%s", p99_max_ms > 0 ? " with p99 <= " : "",
                   "");
  if (p99_max_ms > 0 && k > 0 && (size_t)k < whylen)
    k += snprintf(why + k, whylen - (size_t)k, "%.3g ms", p99_max_ms);
  if (pick != best && k > 0 && (size_t)k < whylen)
    k += snprintf(why + k, whylen - (size_t)k, "; point %d is within 3%% of the best (point %d, %.0f events/s) "
                  "with fewer processes x workers or a lower p99", pick + 1, best + 1, pts[best].tput.median);
  if (unchecked && k > 0 && (size_t)k < whylen)
    snprintf(why + k, whylen - (size_t)k, "; the latency bound was not checked for points without a "
             "latency workload (add --workload steady)");
  return pick;
}

void p2q_bench_config_lines(const p2q_bench_point_t *p, const int *swept, const char *embedder, FILE *f) {
  const long *v = p->set.v;
  fprintf(f, "; pg2qdrant bench: %.0f events/s", p->tput.median);
  if (!isnan(p->p99.median)) fprintf(f, ", commit->Qdrant p50 %.2f ms, p99 %.2f ms", p->p50.median, p->p99.median);
  fprintf(f, "\n");
  if (v[P2Q_KNOB_REPLICAS] > 1)
    fprintf(f, "; run %ld `pg2qdrant run` processes (replicas) against the database\n", v[P2Q_KNOB_REPLICAS]);
  if (v[P2Q_KNOB_WORKERS] > 1)
    fprintf(f, "; %ld [worker.*] sections per process with the same event_types (w1 .. w%ld)\n",
            v[P2Q_KNOB_WORKERS], v[P2Q_KNOB_WORKERS]);
  fprintf(f, "[worker.w1]\nbatch_size = %ld\nlinger_ms = %ld\nmax_inflight = %ld\nclaimers = %ld\n",
          v[P2Q_KNOB_BATCH_SIZE], v[P2Q_KNOB_LINGER_MS], v[P2Q_KNOB_MAX_INFLIGHT], v[P2Q_KNOB_CLAIMERS]);
  if (v[P2Q_KNOB_IDLE_LINGER_MS] > 0 || (swept && swept[P2Q_KNOB_IDLE_LINGER_MS]))
    fprintf(f, "idle_linger_ms = %ld\n", v[P2Q_KNOB_IDLE_LINGER_MS]);
  if (swept && swept[P2Q_KNOB_EMBEDDER_THREADS])
    fprintf(f, "[embedder.%s]\nthreads = %ld\n", embedder ? embedder : "NAME", v[P2Q_KNOB_EMBEDDER_THREADS]);
}

/* ---- CSV --------------------------------------------------------------------------------- */

static void csv_num(FILE *f, double v, const char *fmt) {
  fputc(',', f);
  if (!isnan(v)) fprintf(f, fmt, v);
}

static void csv_str(FILE *f, const char *s) {
  fputc(',', f);
  if (!strpbrk(s, ",\"\n\r")) { fputs(s, f); return; }
  fputc('"', f);
  for (; *s; s++) {
    if (*s == '"') fputc('"', f);
    fputc(*s, f);
  }
  fputc('"', f);
}

void p2q_bench_csv_header(FILE *f) {
  fputs("point,repeat,workload,writer", f);
  for (int k = 0; k < P2Q_KNOB_N; k++) fprintf(f, ",%s", p2q_bench_knob_name(k));
  fputs(",events,seconds,events_per_s,commits_per_s,p50_ms,p90_ms,p99_ms,max_ms,latency_samples,"
        "observe_rtt_ms", f);
  for (int c = 0; c < P2Q_COMP_N; c++) fprintf(f, ",%s", comp_csv[c]);
  fputs(",qdrant_request_ms,qdrant_requests,peak_rss_mib,outbox_dead_tuples,outbox_bytes,"
        "pgss_us_per_event,tail_s,leases_reclaimed,dead_letters,missing,ok,error\n", f);
}

void p2q_bench_csv_row(FILE *f, const p2q_bench_run_t *r) {
  fprintf(f, "%d,%d", r->point + 1, r->repeat);
  csv_str(f, r->workload);
  csv_str(f, p2q_bench_writer_name(r->writer));
  for (int k = 0; k < P2Q_KNOB_N; k++) fprintf(f, ",%ld", r->set.v[k]);
  fprintf(f, ",%ld", r->events);
  csv_num(f, r->seconds, "%.3f");
  csv_num(f, r->events_per_s, "%.1f");
  csv_num(f, r->commits_per_s, "%.1f");
  csv_num(f, r->p50_ms, "%.3f");
  csv_num(f, r->p90_ms, "%.3f");
  csv_num(f, r->p99_ms, "%.3f");
  csv_num(f, r->max_ms, "%.3f");
  fprintf(f, ",%ld", r->lat_n);
  csv_num(f, r->observe_ms, "%.3f");
  for (int c = 0; c < P2Q_COMP_N; c++) csv_num(f, r->cpu_us[c], "%.2f");
  csv_num(f, r->qdrant_req_ms, "%.3f");
  csv_num(f, r->qdrant_requests, "%.0f");
  csv_num(f, r->rss_mib, "%.1f");
  csv_num(f, r->dead_tuples, "%.0f");
  csv_num(f, r->outbox_bytes, "%.0f");
  csv_num(f, r->pgss_us_per_event, "%.2f");
  csv_num(f, r->tail_s, "%.2f");
  csv_num(f, r->leases_reclaimed, "%.0f");
  fprintf(f, ",%ld,%ld,%d", r->dead_letters, r->missing, r->ok);
  csv_str(f, r->error);
  fputc('\n', f);
}

/* ---- HTML -------------------------------------------------------------------------------- */

static void esc(FILE *f, const char *s) {
  for (; s && *s; s++) {
    switch (*s) {
    case '<': fputs("&lt;", f); break;
    case '>': fputs("&gt;", f); break;
    case '&': fputs("&amp;", f); break;
    case '"': fputs("&quot;", f); break;
    default: fputc(*s, f);
    }
  }
}

/* 1, 2 or 5 times a power of ten, >= v (v > 0) */
static double nice_up(double v) {
  if (!(v > 0) || isinf(v)) return 1;
  double e = pow(10, floor(log10(v)));
  double m = v / e;
  return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * e;
}

/* plot area of every chart */
enum { W = 720, H = 300, L = 70, R = 20, T = 30, B = 60 };

static double sy(double v, double ymax) { return T + (H - T - B) * (1 - v / ymax); }

static void svg_open(FILE *f, const char *id, const char *title) {
  fprintf(f, "<figure><svg id=\"%s\" class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" "
             "height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\"><title>", id, W, H, W, H);
  esc(f, title);
  fprintf(f, "</title><rect x=\"0\" y=\"0\" width=\"%d\" height=\"%d\" fill=\"#fff\"/>\n", W, H);
  fprintf(f, "<text x=\"%d\" y=\"18\" class=\"t\">", L);
  esc(f, title);
  fputs("</text>\n", f);
}

static void y_axis(FILE *f, double ymax, const char *label) {
  for (int i = 0; i <= 5; i++) {
    double v = ymax * i / 5, y = sy(v, ymax);
    fprintf(f, "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" class=\"g\"/>", L, W - R, y, y);
    if (ymax >= 1000) fprintf(f, "<text x=\"%d\" y=\"%.1f\" class=\"yl\">%.0f</text>\n", L - 6, y + 4, v);
    else fprintf(f, "<text x=\"%d\" y=\"%.1f\" class=\"yl\">%.3g</text>\n", L - 6, y + 4, v);
  }
  fprintf(f, "<text transform=\"translate(14,%d) rotate(-90)\" class=\"al\">", (T + H - B) / 2);
  esc(f, label);
  fputs("</text>\n", f);
  fprintf(f, "<line x1=\"%d\" x2=\"%d\" y1=\"%d\" y2=\"%d\" class=\"ax\"/>", L, W - R, H - B, H - B);
}

static double cat_x(int i, int n) { return L + (W - L - R) * (i + 0.5) / n; }

/* throughput against one knob: every point (median, min-max bar), the best per value joined */
static void chart_tput_knob(FILE *f, int knob, const p2q_bench_point_t *pts, int n) {
  long vals[64];
  int nv = 0;
  for (int i = 0; i < n && nv < 64; i++) {
    int seen = 0;
    for (int j = 0; j < nv; j++) seen |= vals[j] == pts[i].set.v[knob];
    if (!seen) vals[nv++] = pts[i].set.v[knob];
  }
  for (int i = 1; i < nv; i++) /* ascending */
    for (int j = i; j > 0 && vals[j] < vals[j - 1]; j--) { long t = vals[j]; vals[j] = vals[j - 1]; vals[j - 1] = t; }
  double ymax = 0;
  for (int i = 0; i < n; i++) if (!isnan(pts[i].tput.max) && pts[i].tput.max > ymax) ymax = pts[i].tput.max;
  ymax = nice_up(ymax * 1.05);
  char id[64], title[128];
  snprintf(id, sizeof id, "tput-%s", p2q_bench_knob_name(knob));
  snprintf(title, sizeof title, "Throughput (events/s) vs %s: every point, line = best per value",
           p2q_bench_knob_name(knob));
  svg_open(f, id, title);
  y_axis(f, ymax, "events/s");
  for (int j = 0; j < nv; j++)
    fprintf(f, "<text x=\"%.1f\" y=\"%d\" class=\"xl\">%ld</text>", cat_x(j, nv), H - B + 18, vals[j]);
  fprintf(f, "<text x=\"%d\" y=\"%d\" class=\"al\">%s</text>\n", (L + W - R) / 2, H - B + 40,
          p2q_bench_knob_name(knob));
  fputs("<polyline class=\"best\" fill=\"none\" stroke=\"#333\" stroke-width=\"2\" points=\"", f);
  for (int j = 0; j < nv; j++) {
    double b = NAN;
    for (int i = 0; i < n; i++)
      if (pts[i].set.v[knob] == vals[j] && !isnan(pts[i].tput.median) && (isnan(b) || pts[i].tput.median > b))
        b = pts[i].tput.median;
    if (!isnan(b)) fprintf(f, "%.1f,%.1f ", cat_x(j, nv), sy(b, ymax));
  }
  fputs("\"/>\n", f);
  for (int i = 0; i < n; i++) {
    if (isnan(pts[i].tput.median)) continue;
    int j = 0;
    while (j < nv && vals[j] != pts[i].set.v[knob]) j++;
    double x = cat_x(j, nv) + ((i % 7) - 3) * 4.0; /* spread overlapping points */
    fprintf(f, "<line class=\"err\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"%s\"/>", x, x,
            sy(pts[i].tput.min, ymax), sy(pts[i].tput.max, ymax), palette[i % NPAL]);
    fprintf(f, "<circle class=\"pt\" cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"%s\"><title>point %d: %.0f events/s "
               "(min %.0f, max %.0f)</title></circle>\n", x, sy(pts[i].tput.median, ymax), palette[i % NPAL], i + 1,
            pts[i].tput.median, pts[i].tput.min, pts[i].tput.max);
  }
  fputs("</svg></figure>\n", f);
}

/* bars per point: throughput (the chart that always exists, also with one point) */
static void chart_tput_points(FILE *f, const p2q_bench_point_t *pts, int n) {
  double ymax = 0;
  for (int i = 0; i < n; i++) if (!isnan(pts[i].tput.max) && pts[i].tput.max > ymax) ymax = pts[i].tput.max;
  ymax = nice_up(ymax * 1.05);
  svg_open(f, "tput-points", "Throughput per point (events/s, median; bar = min..max over repeats)");
  y_axis(f, ymax, "events/s");
  double bw = (W - L - R) / (double)n * 0.6;
  for (int i = 0; i < n; i++) {
    double x = cat_x(i, n);
    fprintf(f, "<text x=\"%.1f\" y=\"%d\" class=\"xl\">%d</text>", x, H - B + 18, i + 1);
    if (isnan(pts[i].tput.median)) continue;
    double y = sy(pts[i].tput.median, ymax);
    fprintf(f, "<rect class=\"bar\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\">"
               "<title>point %d: %.0f events/s</title></rect>", x - bw / 2, y, bw, H - B - y, palette[0], i + 1,
            pts[i].tput.median);
    fprintf(f, "<line class=\"err\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#333\"/>\n", x, x,
            sy(pts[i].tput.min, ymax), sy(pts[i].tput.max, ymax));
  }
  fprintf(f, "<text x=\"%d\" y=\"%d\" class=\"al\">point</text>\n", (L + W - R) / 2, H - B + 40);
  fputs("</svg></figure>\n", f);
}

static void legend(FILE *f, int x, int y, int i, const char *color, const char *label) {
  fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"10\" height=\"10\" fill=\"%s\"/><text x=\"%d\" y=\"%d\" "
             "class=\"lg\">", x, y + (i * 14), color, x + 14, y + (i * 14) + 9);
  esc(f, label);
  fputs("</text>\n", f);
}

/* latency CDF per point, log-scaled milliseconds */
static void chart_cdf(FILE *f, const p2q_bench_point_t *pts, int n) {
  double lo = INFINITY, hi = 0;
  for (int i = 0; i < n; i++)
    if (pts[i].lat_n) {
      if (pts[i].lat[0] < lo) lo = pts[i].lat[0];
      if (pts[i].lat[pts[i].lat_n - 1] > hi) hi = pts[i].lat[pts[i].lat_n - 1];
    }
  if (isinf(lo)) lo = 0.1, hi = 100; /* no samples: an empty axis */
  if (lo < 0.01) lo = 0.01;
  if (!(hi > lo) || isinf(hi)) hi = lo * 10;
  double l0 = floor(log10(lo)), l1 = ceil(log10(hi));
  if (l1 <= l0) l1 = l0 + 1;
  if (l1 - l0 > 12) l0 = l1 - 12; /* at most 12 decades (and a loop that ends) */
  svg_open(f, "latency-cdf", "Latency CDF: COMMIT to visible in Qdrant (ms, log scale), one line per point");
  for (int i = 0; i <= 4; i++) {
    double y = T + (H - T - B) * (1 - i / 4.0);
    fprintf(f, "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" class=\"g\"/><text x=\"%d\" y=\"%.1f\" "
               "class=\"yl\">%.2f</text>\n", L, W - R, y, y, L - 6, y + 4, i / 4.0);
  }
  fprintf(f, "<line x1=\"%d\" x2=\"%d\" y1=\"%d\" y2=\"%d\" class=\"ax\"/>", L, W - R, H - B, H - B);
  for (double e = l0; e <= l1; e++) {
    double x = L + (W - L - R) * (e - l0) / (l1 - l0);
    fprintf(f, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%d\" y2=\"%d\" class=\"g\"/><text x=\"%.1f\" y=\"%d\" "
               "class=\"xl\">%g</text>\n", x, x, T, H - B, x, H - B + 18, pow(10, e));
  }
  fprintf(f, "<text x=\"%d\" y=\"%d\" class=\"al\">milliseconds</text>\n", (L + W - R) / 2, H - B + 40);
  int shown = 0;
  for (int i = 0; i < n; i++) {
    if (!pts[i].lat_n) continue;
    fprintf(f, "<polyline class=\"cdf\" fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" points=\"", palette[i % NPAL]);
    size_t steps = pts[i].lat_n < 200 ? pts[i].lat_n : 200;
    for (size_t s = 0; s < steps; s++) {
      size_t idx = steps > 1 ? s * (pts[i].lat_n - 1) / (steps - 1) : 0;
      double v = pts[i].lat[idx] < lo ? lo : pts[i].lat[idx];
      double x = L + (W - L - R) * (log10(v) - l0) / (l1 - l0);
      double y = T + (H - T - B) * (1 - (double)(idx + 1) / (double)pts[i].lat_n);
      fprintf(f, "%.1f,%.1f ", x, y);
    }
    fprintf(f, "\"><title>point %d</title></polyline>\n", i + 1);
    if (shown < 16) {
      char lab[32];
      snprintf(lab, sizeof lab, "point %d", i + 1);
      legend(f, W - R - 70, T + 4, shown++, palette[i % NPAL], lab);
    }
  }
  if (!shown)
    fprintf(f, "<text x=\"%d\" y=\"%d\" class=\"al\">no latency workload in this run (--workload steady)</text>\n",
            (L + W - R) / 2, (T + H - B) / 2);
  fputs("</svg></figure>\n", f);
}

static void chart_pct(FILE *f, const p2q_bench_point_t *pts, int n, double bound) {
  double ymax = bound > 0 ? bound : 0;
  for (int i = 0; i < n; i++) if (!isnan(pts[i].p99.median) && pts[i].p99.median > ymax) ymax = pts[i].p99.median;
  ymax = nice_up(ymax * 1.1);
  svg_open(f, "latency-pct", "Latency per point: p50 and p99 (ms, median over repeats)");
  y_axis(f, ymax, "ms");
  double bw = (W - L - R) / (double)n * 0.35;
  for (int i = 0; i < n; i++) {
    double x = cat_x(i, n);
    fprintf(f, "<text x=\"%.1f\" y=\"%d\" class=\"xl\">%d</text>", x, H - B + 18, i + 1);
    const double v[2] = {pts[i].p50.median, pts[i].p99.median};
    for (int k = 0; k < 2; k++) {
      if (isnan(v[k])) continue;
      double y = sy(v[k], ymax);
      fprintf(f, "<rect class=\"bar %s\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\">"
                 "<title>point %d %s %.2f ms</title></rect>\n", k ? "p99" : "p50", x - bw + k * bw, y, bw,
              H - B - y, palette[k], i + 1, k ? "p99" : "p50", v[k]);
    }
  }
  if (bound > 0)
    fprintf(f, "<line class=\"bound\" x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#c00\" "
               "stroke-dasharray=\"6 4\"/><text x=\"%d\" y=\"%.1f\" class=\"lg\">--p99-max %.3g ms</text>\n",
            L, W - R, sy(bound, ymax), sy(bound, ymax), L + 4, sy(bound, ymax) - 4, bound);
  legend(f, W - R - 60, T + 4, 0, palette[0], "p50");
  legend(f, W - R - 60, T + 4, 1, palette[1], "p99");
  fprintf(f, "<text x=\"%d\" y=\"%d\" class=\"al\">point</text>\n", (L + W - R) / 2, H - B + 40);
  fputs("</svg></figure>\n", f);
}

static void chart_cpu(FILE *f, const p2q_bench_point_t *pts, int n) {
  double ymax = 0;
  for (int i = 0; i < n; i++) {
    double s = 0;
    for (int c = 0; c < P2Q_COMP_N; c++) if (!isnan(pts[i].cpu_us[c])) s += pts[i].cpu_us[c];
    if (s > ymax) ymax = s;
  }
  ymax = nice_up(ymax * 1.05);
  svg_open(f, "cpu-stack", "CPU per event by component (µs, median over repeats)");
  y_axis(f, ymax, "CPU µs per event");
  double bw = (W - L - R) / (double)n * 0.6;
  for (int i = 0; i < n; i++) {
    double x = cat_x(i, n), acc = 0;
    fprintf(f, "<text x=\"%.1f\" y=\"%d\" class=\"xl\">%d</text>", x, H - B + 18, i + 1);
    for (int c = 0; c < P2Q_COMP_N; c++) {
      if (isnan(pts[i].cpu_us[c]) || pts[i].cpu_us[c] <= 0) continue;
      double y0 = sy(acc, ymax), y1 = sy(acc + pts[i].cpu_us[c], ymax);
      fprintf(f, "<rect class=\"seg\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\">"
                 "<title>point %d %s %.1f µs</title></rect>\n", x - bw / 2, y1, bw, y0 - y1, palette[c], i + 1,
              comp_labels[c], pts[i].cpu_us[c]);
      acc += pts[i].cpu_us[c];
    }
  }
  for (int c = 0; c < P2Q_COMP_N; c++) legend(f, W - R - 185, T + 4, c, palette[c], comp_labels[c]);
  fprintf(f, "<text x=\"%d\" y=\"%d\" class=\"al\">point</text>\n", (L + W - R) / 2, H - B + 40);
  fputs("</svg></figure>\n", f);
}

static void td(FILE *f, double v, const char *fmt) {
  fputs("<td>", f);
  if (!isnan(v)) fprintf(f, fmt, v);
  fputs("</td>", f);
}

static void points_table(FILE *f, const p2q_bench_point_t *pts, int n, int rec) {
  fputs("<table id=\"points\"><tr><th>point</th>", f);
  for (int k = 0; k < P2Q_KNOB_N; k++) fprintf(f, "<th>%s</th>", p2q_bench_knob_name(k));
  fputs("<th>events/s (median)</th><th>spread %</th><th>p50 ms</th><th>p99 ms</th>", f);
  for (int c = 0; c < P2Q_COMP_N; c++) fprintf(f, "<th>CPU µs/event %s</th>", comp_labels[c]);
  fputs("<th>peak RSS MiB</th><th>runs</th><th>failed</th></tr>\n", f);
  for (int i = 0; i < n; i++) {
    fprintf(f, "<tr%s><td>%d</td>", i == rec ? " class=\"rec\"" : "", i + 1);
    for (int k = 0; k < P2Q_KNOB_N; k++) fprintf(f, "<td>%ld</td>", pts[i].set.v[k]);
    td(f, pts[i].tput.median, "%.0f");
    td(f, pts[i].tput.spread_pct, "%.1f");
    td(f, pts[i].p50.median, "%.2f");
    td(f, pts[i].p99.median, "%.2f");
    for (int c = 0; c < P2Q_COMP_N; c++) td(f, pts[i].cpu_us[c], "%.1f");
    td(f, pts[i].rss_mib, "%.1f");
    fprintf(f, "<td>%d</td><td>%d</td></tr>\n", pts[i].runs, pts[i].failed);
  }
  fputs("</table>\n", f);
}

static void runs_table(FILE *f, const p2q_bench_run_t *r, int n) {
  fputs("<table id=\"runs\"><tr><th>point</th><th>repeat</th><th>workload</th><th>events</th><th>s</th>"
        "<th>events/s</th><th>commits/s</th><th>p50</th><th>p99</th><th>max</th><th>Qdrant req ms</th>"
        "<th>dead tuples</th><th>outbox bytes</th><th>pg_stat_statements µs/event</th><th>CPU tail s</th>"
        "<th>leases reclaimed</th><th>ok</th><th>error</th></tr>\n", f);
  for (int i = 0; i < n; i++) {
    fprintf(f, "<tr><td>%d</td><td>%d</td><td>", r[i].point + 1, r[i].repeat);
    esc(f, r[i].workload);
    if (r[i].writer >= 0) fprintf(f, " (%s)", p2q_bench_writer_name(r[i].writer));
    fprintf(f, "</td><td>%ld</td>", r[i].events);
    td(f, r[i].seconds, "%.2f");
    td(f, r[i].events_per_s, "%.0f");
    td(f, r[i].commits_per_s, "%.1f");
    td(f, r[i].p50_ms, "%.2f");
    td(f, r[i].p99_ms, "%.2f");
    td(f, r[i].max_ms, "%.2f");
    td(f, r[i].qdrant_req_ms, "%.2f");
    td(f, r[i].dead_tuples, "%.0f");
    td(f, r[i].outbox_bytes, "%.0f");
    td(f, r[i].pgss_us_per_event, "%.1f");
    td(f, r[i].tail_s, "%.1f");
    td(f, r[i].leases_reclaimed, "%.0f");
    fprintf(f, "<td>%s</td><td>", r[i].ok ? "yes" : "NO");
    esc(f, r[i].error);
    fputs("</td></tr>\n", f);
  }
  fputs("</table>\n", f);
}

void p2q_bench_html(FILE *f, const p2q_bench_report_meta_t *m, const p2q_bench_point_t *pts,
                    int npoints, const p2q_bench_run_t *runs, int nruns) {
  fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>pg2qdrant bench</title>\n"
        "<style>body{font:14px/1.4 sans-serif;margin:1.5em;color:#222}h1{font-size:1.4em}"
        "table{border-collapse:collapse;margin:.5em 0;font-size:12px}td,th{border:1px solid #ccc;padding:2px 6px;"
        "text-align:right}tr.rec{background:#e6f4ea;font-weight:bold}pre{background:#f5f5f5;padding:.6em}"
        "figure{margin:.5em 0}svg .t{font-size:13px;font-weight:bold}svg .yl{font-size:11px;text-anchor:end}"
        "svg .xl{font-size:11px;text-anchor:middle}svg .al{font-size:12px;text-anchor:middle}"
        "svg .lg{font-size:11px}svg .g{stroke:#eee}svg .ax{stroke:#888}svg .err{stroke-width:2}"
        "</style></head><body>\n<h1>pg2qdrant bench</h1>\n<p class=\"meta\"><code>", f);
  esc(f, m->title);
  fputs("</code><br>", f);
  esc(f, m->machine);
  fputs("</p>\n<h2>Recommendation</h2>\n", f);
  if (m->recommended >= 0 && m->recommended < npoints) {
    fprintf(f, "<p id=\"recommendation\">Point %d: ", m->recommended + 1);
    esc(f, m->why);
    fputs("</p>\n<pre>", f);
    char *buf = NULL;
    size_t len = 0;
    FILE *mf = open_memstream(&buf, &len);
    if (mf) {
      p2q_bench_config_lines(&pts[m->recommended], m->swept, m->embedder, mf);
      fclose(mf);
      esc(f, buf);
      free(buf);
    }
    fputs("</pre>\n", f);
  } else {
    fputs("<p id=\"recommendation\">None: ", f);
    esc(f, m->why);
    fputs("</p>\n", f);
  }
  fputs("<h2>Throughput</h2>\n", f);
  chart_tput_points(f, pts, npoints);
  for (int a = 0; a < m->naxes; a++) chart_tput_knob(f, m->axes[a], pts, npoints);
  fputs("<h2>Latency</h2>\n", f);
  chart_cdf(f, pts, npoints);
  chart_pct(f, pts, npoints, m->p99_max_ms);
  fputs("<h2>Where the time goes</h2>\n", f);
  chart_cpu(f, pts, npoints);
  fputs("<h2>Points</h2>\n", f);
  points_table(f, pts, npoints, m->recommended);
  fputs("<h2>Runs</h2>\n", f);
  runs_table(f, runs, nruns);
  if (m->notes) {
    fputs("<h2>Notes</h2>\n<pre id=\"notes\">", f);
    esc(f, m->notes);
    fputs("</pre>\n", f);
  }
  fputs("</body></html>\n", f);
}

/*
 * metrics.c — the Prometheus registry and text renderer (see metrics.h). Pure; one thread.
 *
 * Storage: families in a singly linked list (registration order, appended at the tail), each
 * with a linked list of series. A series' key is its label values joined with '\0' separators,
 * so lookups compare bytes, not rendered text. Histogram series keep per-bucket (non-cumulative)
 * counts; rendering accumulates them, so observing is O(buckets) and never allocates.
 */
#include "pg2qdrant/metrics.h"
#include "pg2qdrant/errors.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct p2q_series_s {
  struct p2q_series_s *next;
  p2q_metric_t *f;
  char *key;           /* values joined by '\0' */
  size_t key_len;
  double value;        /* counter/gauge value; histogram count */
  double sum;
  unsigned long long *buckets; /* histograms: n_buckets + 1 (the last is +Inf) */
};

struct p2q_metric_s {
  struct p2q_metric_s *next;
  char *name, *help;
  p2q_metric_type_t type;
  int n_labels;
  char *labels[P2Q_METRIC_MAX_LABELS];
  int n_buckets;
  double bounds[P2Q_METRIC_MAX_BUCKETS];
  p2q_series_t *series, **series_tail;
};

struct p2q_metrics_s {
  p2q_metric_t *families, **tail;
};

static int valid_name(const char *s, int colon) {
  if (!s || !*s || (*s >= '0' && *s <= '9')) return 0;
  for (; *s; s++) {
    char c = *s;
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
          (colon && c == ':')))
      return 0;
  }
  return 1;
}

int p2q_metrics_new(p2q_metrics_t **out) {
  p2q_metrics_t *m = calloc(1, sizeof *m);
  if (!m) return P2Q_ENOMEM;
  m->tail = &m->families;
  *out = m;
  return 0;
}

static void series_free(p2q_series_t *s) {
  free(s->key);
  free(s->buckets);
  free(s);
}

void p2q_metric_clear(p2q_metric_t *f) {
  if (!f) return;
  while (f->series) {
    p2q_series_t *s = f->series;
    f->series = s->next;
    series_free(s);
  }
  f->series_tail = &f->series;
}

static void family_free(p2q_metric_t *f) {
  p2q_metric_clear(f);
  for (int i = 0; i < f->n_labels; i++) free(f->labels[i]);
  free(f->name);
  free(f->help);
  free(f);
}

void p2q_metrics_free(p2q_metrics_t *m) {
  if (!m) return;
  while (m->families) {
    p2q_metric_t *f = m->families;
    m->families = f->next;
    family_free(f);
  }
  free(m);
}

p2q_metric_t *p2q_metrics_find(const p2q_metrics_t *m, const char *name) {
  for (p2q_metric_t *f = m->families; f; f = f->next)
    if (!strcmp(f->name, name)) return f;
  return NULL;
}

p2q_metric_t *p2q_metrics_register(p2q_metrics_t *m, const char *name, const char *help,
                                   p2q_metric_type_t type, int n_labels, const char *const *labels,
                                   int n_buckets, const double *buckets) {
  if (!valid_name(name, 1) || p2q_metrics_find(m, name) || n_labels < 0 ||
      n_labels > P2Q_METRIC_MAX_LABELS || n_buckets < 0 || n_buckets > P2Q_METRIC_MAX_BUCKETS ||
      (type == P2Q_METRIC_HISTOGRAM) != (n_buckets > 0))
    return NULL;
  for (int i = 0; i < n_buckets; i++)
    if (!isfinite(buckets[i]) || (i > 0 && buckets[i] <= buckets[i - 1])) return NULL;
  for (int i = 0; i < n_labels; i++)
    if (!valid_name(labels[i], 0) || !strncmp(labels[i], "__", 2) || !strcmp(labels[i], "le"))
      return NULL;
  p2q_metric_t *f = calloc(1, sizeof *f);
  if (!f) return NULL;
  f->name = strdup(name);
  f->help = strdup(help ? help : "");
  f->type = type;
  f->series_tail = &f->series;
  for (int i = 0; i < n_labels; i++, f->n_labels++)
    if (!(f->labels[i] = strdup(labels[i]))) break;
  f->n_buckets = n_buckets;
  if (n_buckets) memcpy(f->bounds, buckets, sizeof(double) * (size_t)n_buckets);
  if (!f->name || !f->help || f->n_labels != n_labels) { family_free(f); return NULL; }
  *m->tail = f;
  m->tail = &f->next;
  return f;
}

p2q_series_t *p2q_metric_series(p2q_metric_t *f, const char *const *values) {
  if (!f) return NULL;
  char key[1024];
  size_t len = 0;
  for (int i = 0; i < f->n_labels; i++) {
    const char *v = values[i] ? values[i] : "";
    size_t n = strlen(v);
    if (len + n + 1 > sizeof key) return NULL;
    memcpy(key + len, v, n);
    len += n;
    key[len++] = 0;
  }
  for (p2q_series_t *s = f->series; s; s = s->next)
    if (s->key_len == len && !memcmp(s->key, key, len)) return s;
  p2q_series_t *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  s->f = f;
  s->key_len = len;
  s->key = malloc(len ? len : 1);
  if (f->type == P2Q_METRIC_HISTOGRAM) s->buckets = calloc((size_t)f->n_buckets + 1, sizeof *s->buckets);
  if (!s->key || (f->type == P2Q_METRIC_HISTOGRAM && !s->buckets)) { series_free(s); return NULL; }
  if (len) memcpy(s->key, key, len);
  *f->series_tail = s;
  f->series_tail = &s->next;
  return s;
}

p2q_series_t *p2q_metric_series0(p2q_metric_t *f) { return p2q_metric_series(f, NULL); }

p2q_series_t *p2q_metric_series1(p2q_metric_t *f, const char *value) {
  const char *v[] = {value};
  return p2q_metric_series(f, v);
}

void p2q_series_inc(p2q_series_t *s, double by) {
  if (s && s->f->type != P2Q_METRIC_HISTOGRAM && (s->f->type == P2Q_METRIC_GAUGE || by >= 0)) s->value += by;
}

void p2q_series_set(p2q_series_t *s, double v) {
  if (s && s->f->type != P2Q_METRIC_HISTOGRAM) s->value = v;
}

void p2q_series_observe(p2q_series_t *s, double v) {
  if (!s || s->f->type != P2Q_METRIC_HISTOGRAM || isnan(v)) return;
  int i = 0;
  while (i < s->f->n_buckets && v > s->f->bounds[i]) i++;
  s->buckets[i]++;
  s->value += 1;
  s->sum += v;
}

double p2q_series_value(const p2q_series_t *s) { return s ? s->value : 0; }
double p2q_series_sum(const p2q_series_t *s) { return s ? s->sum : 0; }

void p2q_metrics_format_value(double v, char *buf, size_t n) {
  if (isnan(v)) snprintf(buf, n, "NaN");
  else if (isinf(v)) snprintf(buf, n, v > 0 ? "+Inf" : "-Inf");
  else if (v == floor(v) && fabs(v) < 9007199254740992.0) snprintf(buf, n, "%.0f", v);
  else snprintf(buf, n, "%.9g", v);
}

static void put_escaped(p2q_buf_t *b, const char *s, size_t n, int help) {
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '\\') p2q_buf_puts(b, "\\\\");
    else if (s[i] == '\n') p2q_buf_puts(b, "\\n");
    else if (s[i] == '"' && !help) p2q_buf_puts(b, "\\\"");
    else p2q_buf_putc(b, s[i]);
  }
}

/* name{l1="v1",...[,le="x"]} value\n */
static void put_sample(p2q_buf_t *b, const p2q_metric_t *f, const char *suffix, const p2q_series_t *s,
                       const char *le, double v) {
  char num[64];
  p2q_buf_puts(b, f->name);
  p2q_buf_puts(b, suffix);
  if (f->n_labels || le) {
    const char *k = s->key;
    p2q_buf_putc(b, '{');
    for (int i = 0; i < f->n_labels; i++) {
      size_t n = strlen(k);
      p2q_buf_printf(b, "%s%s=\"", i ? "," : "", f->labels[i]);
      put_escaped(b, k, n, 0);
      p2q_buf_putc(b, '"');
      k += n + 1;
    }
    if (le) p2q_buf_printf(b, "%sle=\"%s\"", f->n_labels ? "," : "", le);
    p2q_buf_putc(b, '}');
  }
  p2q_metrics_format_value(v, num, sizeof num);
  p2q_buf_printf(b, " %s\n", num);
}

int p2q_metrics_render(const p2q_metrics_t *m, p2q_buf_t *out) {
  static const char *const type_names[] = {"counter", "gauge", "histogram"};
  for (const p2q_metric_t *f = m->families; f; f = f->next) {
    p2q_buf_printf(out, "# HELP %s ", f->name);
    put_escaped(out, f->help, strlen(f->help), 1);
    p2q_buf_printf(out, "\n# TYPE %s %s\n", f->name, type_names[f->type]);
    for (const p2q_series_t *s = f->series; s; s = s->next) {
      if (f->type != P2Q_METRIC_HISTOGRAM) { put_sample(out, f, "", s, NULL, s->value); continue; }
      unsigned long long acc = 0;
      char le[64];
      for (int i = 0; i <= f->n_buckets; i++) {
        acc += s->buckets[i];
        if (i < f->n_buckets) p2q_metrics_format_value(f->bounds[i], le, sizeof le);
        put_sample(out, f, "_bucket", s, i < f->n_buckets ? le : "+Inf", (double)acc);
      }
      put_sample(out, f, "_sum", s, NULL, s->sum);
      put_sample(out, f, "_count", s, NULL, s->value);
    }
  }
  return p2q_buf_error(out) ? P2Q_ENOMEM : 0;
}

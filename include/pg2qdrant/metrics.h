/*
 * metrics.h — a small Prometheus metrics registry: counters, gauges and histograms with fixed
 * buckets, labelled series, and rendering in the text exposition format 0.0.4. Pure (no I/O);
 * not thread-safe: the daemon uses one registry on the loop thread. Unit-tested in
 * tests/unit/test_metrics.c.
 *
 * A family is registered once (name, help, type, label names, buckets); a series is one
 * combination of label values, created on first use and kept until p2q_metric_clear(). Label
 * values are escaped on output (\\, \", \n); names are checked against [a-zA-Z_:][a-zA-Z0-9_:]*.
 * Families render in registration order, series in creation order.
 */
#ifndef P2Q_METRICS_H
#define P2Q_METRICS_H

#include <stddef.h>

#include "pg2qdrant/buf.h"

typedef enum { P2Q_METRIC_COUNTER = 0, P2Q_METRIC_GAUGE, P2Q_METRIC_HISTOGRAM } p2q_metric_type_t;

typedef struct p2q_metrics_s p2q_metrics_t;
typedef struct p2q_metric_s p2q_metric_t;
typedef struct p2q_series_s p2q_series_t;

#define P2Q_METRIC_MAX_LABELS 4
#define P2Q_METRIC_MAX_BUCKETS 24

int  p2q_metrics_new(p2q_metrics_t **out);
void p2q_metrics_free(p2q_metrics_t *m);

/* Register a family. labels: n_labels names (copied); buckets: strictly increasing upper bounds
 * (histograms only; +Inf is implicit). Returns NULL on a bad name, bad buckets, a duplicate
 * name or out of memory. */
p2q_metric_t *p2q_metrics_register(p2q_metrics_t *m, const char *name, const char *help,
                                   p2q_metric_type_t type, int n_labels, const char *const *labels,
                                   int n_buckets, const double *buckets);
p2q_metric_t *p2q_metrics_find(const p2q_metrics_t *m, const char *name);

/* The series for these label values (as many as the family has labels), created on first use.
 * NULL on out of memory (every operation below accepts NULL and does nothing). */
p2q_series_t *p2q_metric_series(p2q_metric_t *f, const char *const *values);
/* Shorthand for families with no label or one label. */
p2q_series_t *p2q_metric_series0(p2q_metric_t *f);
p2q_series_t *p2q_metric_series1(p2q_metric_t *f, const char *value);
/* Forget every series of a family (gauges mirrored from a snapshot whose label sets change). */
void p2q_metric_clear(p2q_metric_t *f);

void p2q_series_inc(p2q_series_t *s, double by);   /* counters (by >= 0) and gauges */
void p2q_series_set(p2q_series_t *s, double v);    /* gauges, and counters mirrored from a total */
void p2q_series_observe(p2q_series_t *s, double v);/* histograms */
double p2q_series_value(const p2q_series_t *s);    /* counter/gauge value; histogram count */
double p2q_series_sum(const p2q_series_t *s);      /* histogram sum */

/* Append the whole registry in text format 0.0.4 (# HELP, # TYPE, samples). 0 or P2Q_ENOMEM. */
int p2q_metrics_render(const p2q_metrics_t *m, p2q_buf_t *out);

/* Format a sample value: integers without a fraction, "+Inf", "-Inf", "NaN", else %.9g. */
void p2q_metrics_format_value(double v, char *buf, size_t n);

#endif

/*
 * status_http.c — the daemon's operator surface (see status_http.h): metrics registry and hooks,
 * the outbox status cache, Qdrant readiness, and the HTTP/1.1 status server. Loop thread only.
 *
 * Owns: the registry, the refresh timer, the listening uv_tcp_t and one conn_t per client
 * (its uv_tcp_t, its timeout timer and a fixed request buffer). Invariants:
 *  - the request parser (http_parse.c) sees the bytes received so far; a complete request is
 *    answered from memory at once, so the loop never waits on anything but the socket;
 *  - an invalid request gets its 4xx/5xx answer with "Connection: close", then the connection
 *    is closed once the answer is written; nothing more is read from it;
 *  - pipelined requests are answered in order; while more than 256 KiB of answers wait to be
 *    written the connection stops reading (back-pressure);
 *  - every connection has a deadline: P2Q_OPS_CONN_TIMEOUT_MS from its start or its previous
 *    answer, so partial (slowloris) and idle connections are closed; at P2Q_OPS_MAX_CONNS a new
 *    connection evicts the oldest one not being answered, so /healthz never waits for them;
 *  - at most one status query and one readiness probe are outstanding.
 */
#include "pg2qdrant/status_http.h"
#include "pg2qdrant/netaddr.h"
#include "pg2qdrant/commands.h"
#include "pg2qdrant/buf.h"
#include "pg2qdrant/blas_kernel.h"
#include "pg2qdrant/capture.h"
#include "pg2qdrant/errors.h"
#include "pg2qdrant/http_parse.h"
#include "pg2qdrant/log.h"
#include "pg2qdrant/reindex_exec.h"
#include "pg2qdrant/version.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LAG_RING 512
#define WRITE_HIGH_WATER (256 * 1024)
#define STR_(x) #x
#define STR(x) STR_(x)

typedef struct {
  char *event_type;
  long long pending, in_flight, retrying, dead;
  double oldest;
  int estimated; /* more than P2Q_OUTBOX_STATUS_EXACT events: the counts are estimates */
} outbox_row_t;

typedef struct conn_s {
  uv_tcp_t tcp;
  uv_timer_t timer;
  p2q_ops_t *o;
  struct conn_s *next;
  size_t len;
  int writes, handles, closing, want_close, paused, reading;
  char buf[P2Q_OPS_MAX_HEADER + P2Q_OPS_MAX_BODY];
} conn_t;

typedef struct {
  uv_write_t req;
  conn_t *c;
  char *data;
} write_t;

enum {
#define COUNTER_INDEX(field, metric, help) C_##field,
  P2Q_WORKER_COUNTERS(COUNTER_INDEX)
#undef COUNTER_INDEX
  N_COUNTERS
};

struct p2q_ops_s {
  p2q_ops_deps_t deps;
  uv_loop_t *loop;
  p2q_metrics_t *m;
  p2q_metric_t *counters[N_COUNTERS];    /* counters.h, labelled by worker */
  p2q_metric_t *target_failures, *target_limited, *target_unhealthy;
  p2q_metric_t *batch_size, *qdrant_seconds, *lag, *embed_seconds, *embed_tokens;
  p2q_metric_t *outbox, *oldest, *estimated, *breaker_state, *breaker_transitions, *pg_reconnects;
  p2q_metric_t *pg_connected, *inflight, *ready, *start_time, *build_info, *reloads, *drift;
  p2q_metric_t *rx_pending, *rx_backfilled;
  p2q_metric_t *node_up;                 /* several [qdrant] url nodes */
  char *status_sql;
  uv_timer_t refresh;
  uv_tcp_t server;
  int timer_open, server_open, closing;
  conn_t *conns;
  int n_conns;
  int query_pending, probe_pending;
  uint64_t query_sent_at, query_next_at; /* the status query's cost bound (refresh_cb) */
  outbox_row_t *rows;
  int n_rows;
  uint64_t rows_at;            /* loop time of the last status result, 0 = none yet */
  int qdrant_ok;               /* last Qdrant outcome was not a transient failure */
  char qdrant_err[256];
  uint64_t qdrant_seen_at;     /* loop time of the last finished Qdrant request */
  double lag_ring[LAG_RING];
  unsigned lag_n;
  double started;              /* epoch seconds */
  uint64_t started_loop;
};

static double now_epoch(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- registry -------------------------------------------------------------------------- */

static int register_all(p2q_ops_t *o) {
  static const double batch_b[] = {1, 2, 5, 10, 25, 50, 100, 250, 500, 1000};
  static const double req_b[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
  static const double lag_b[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600};
  static const char *const w[] = {"worker"}, *ec[] = {"endpoint", "class"}, *emb[] = {"embedder"},
                           *ets[] = {"event_type", "state"}, *et[] = {"event_type"}, *tg[] = {"target"},
                           *tgr[] = {"target", "reason"}, *rck[] = {"rule", "column", "kind"}, *nd[] = {"node"},
                           *ver[] = {"version"}, *res[] = {"result"},
                           *rp[] = {"rule", "phase"};
  p2q_metrics_t *m = o->m;
#define C(field, name, help, nl, l) (o->field = p2q_metrics_register(m, name, help, P2Q_METRIC_COUNTER, nl, l, 0, NULL))
#define G(field, name, help, nl, l) (o->field = p2q_metrics_register(m, name, help, P2Q_METRIC_GAUGE, nl, l, 0, NULL))
#define H(field, name, help, nl, l, b) \
  (o->field = p2q_metrics_register(m, name, help, P2Q_METRIC_HISTOGRAM, nl, l, (int)(sizeof b / sizeof b[0]), b))
  int ok = 1;
#define COUNTER_REGISTER(field, metric, help) ok = ok && C(counters[C_##field], metric, help, 1, w);
  P2Q_WORKER_COUNTERS(COUNTER_REGISTER)
#undef COUNTER_REGISTER
  ok = ok && H(batch_size, "pg2qdrant_batch_size", "Events per claimed batch.", 0, NULL, batch_b) &&
      H(qdrant_seconds, "pg2qdrant_qdrant_request_duration_seconds",
        "Qdrant request latency by endpoint and status class (2xx, 4xx, 5xx, error).", 2, ec, req_b) &&
      H(lag, "pg2qdrant_sync_lag_seconds",
        "Event created_at (the writing transaction's start) to acknowledged done.", 0, NULL, lag_b) &&
      H(embed_seconds, "pg2qdrant_embed_duration_seconds", "Embedding call latency.", 1, emb, req_b) &&
      C(embed_tokens, "pg2qdrant_embed_tokens_total", "Tokens embedded (rate() gives tokens/s).", 1, emb) &&
      G(outbox, "pg2qdrant_outbox_events", "Outbox events by state (pending, in_flight, retrying, dead).", 2, ets) &&
      G(oldest, "pg2qdrant_outbox_oldest_pending_age_seconds", "Age of the oldest claimable event.", 1, et) &&
      G(estimated, "pg2qdrant_outbox_events_estimated",
        "1 when the event type's outbox counts are estimates (more than " STR(P2Q_OUTBOX_STATUS_EXACT) " events).", 1, et) &&
      G(breaker_state, "pg2qdrant_breaker_state", "Circuit breaker of each target: 0 closed, 1 open, 2 half-open.", 1, tg) &&
      C(breaker_transitions, "pg2qdrant_breaker_transitions_total", "Circuit breaker state changes.", 1, tg) &&
      C(target_failures, "pg2qdrant_target_failures_total",
        "Failures of a target that cost time, not attempts (transient, config, missing).", 1, tg) &&
      C(target_limited, "pg2qdrant_target_rate_limited_total", "429 answers of a target (backpressure).", 1, tg) &&
      G(target_unhealthy, "pg2qdrant_target_unhealthy",
        "1 while a target's breaker is not closed, labelled with the class of its last failure.", 2, tgr) &&
      C(pg_reconnects, "pg2qdrant_postgres_reconnects_total", "PostgreSQL reconnects (all connections).", 0, NULL) &&
      G(pg_connected, "pg2qdrant_postgres_connected", "The LISTEN connection is up and listening.", 0, NULL) &&
      G(inflight, "pg2qdrant_qdrant_requests_in_flight", "Qdrant requests queued or running.", 0, NULL) &&
      G(ready, "pg2qdrant_ready", "1 when /readyz answers 200.", 0, NULL) &&
      G(node_up, "pg2qdrant_qdrant_node_up",
        "Each node of [qdrant] url (when several): 1 taking requests, 0 down (skipped, probed).", 1, nd) &&
      G(start_time, "pg2qdrant_start_time_seconds", "Daemon start, Unix time.", 0, NULL) &&
      G(build_info, "pg2qdrant_build_info", "Always 1; the version is a label.", 1, ver) &&
      C(reloads, "pg2qdrant_config_reloads_total", "SIGHUP reloads by result (ok, error, refused).", 1, res) &&
      G(drift, "pg2qdrant_rule_drift",
        "1 per way a rule's table no longer fits it (kind: key, vector_column, text, columns, watch, "
        "filter or routing_key, table, trigger; column: the column, or the filter's error).", 3, rck) &&
      G(rx_pending, "pg2qdrant_reindex_pending",
        "A re-embedding in catch-up: the rule's backfill events not yet done (0: the swap is next).", 2, rp) &&
      G(rx_backfilled, "pg2qdrant_reindex_backfilled",
        "A re-embedding: rows enqueued by its backfill so far, by rule and phase.", 2, rp);
#undef C
#undef G
#undef H
  return ok ? 0 : P2Q_ENOMEM;
}

static p2q_daemon_view_t view(const p2q_ops_t *o) {
  p2q_daemon_view_t v;
  memset(&v, 0, sizeof v);
  o->deps.view(o->deps.arg, &v);
  return v;
}

static uint64_t pg_reconnects(const p2q_ops_t *o, const p2q_daemon_view_t *v) {
  uint64_t n = v->pg_reconnects;
  for (int i = 0; i < o->deps.n_workers; i++) n += p2q_worker_stats(o->deps.workers[i])->pg_reconnects;
  return n;
}

/* Mirror the counters kept elsewhere (workers, targets, connections) into the registry. */
static void mirror(p2q_ops_t *o, int ready) {
  p2q_daemon_view_t v = view(o);
  for (int i = 0; i < o->deps.n_workers; i++) {
    const p2q_stats_t *s = p2q_worker_stats(o->deps.workers[i]);
    const char *n = p2q_worker_name(o->deps.workers[i]);
#define COUNTER_MIRROR(field, metric, help) p2q_series_set(p2q_metric_series1(o->counters[C_##field], n), (double)s->field);
    P2Q_WORKER_COUNTERS(COUNTER_MIRROR)
#undef COUNTER_MIRROR
  }
  p2q_metric_clear(o->target_unhealthy);
  for (int i = 0; i < p2q_health_count(o->deps.health); i++) {
    p2q_target_info_t t;
    p2q_health_target(o->deps.health, i, &t);
    p2q_series_set(p2q_metric_series1(o->breaker_state, t.name), (double)t.state);
    p2q_series_set(p2q_metric_series1(o->breaker_transitions, t.name), (double)t.transitions);
    p2q_series_set(p2q_metric_series1(o->target_failures, t.name), (double)t.failures);
    p2q_series_set(p2q_metric_series1(o->target_limited, t.name), (double)t.rate_limited);
    if (t.kind == P2Q_TARGET_NODE)
      p2q_series_set(p2q_metric_series1(o->node_up, t.name + 5 /* "node:" */), t.state == P2Q_BREAKER_CLOSED);
    if (t.state != P2Q_BREAKER_CLOSED) {
      const char *lv[] = {t.name, p2q_verdict_name(t.reason)};
      p2q_series_set(p2q_metric_series(o->target_unhealthy, lv), 1);
    }
  }
  p2q_series_set(p2q_metric_series0(o->pg_reconnects), (double)pg_reconnects(o, &v));
  p2q_series_set(p2q_metric_series0(o->pg_connected), v.listening && p2q_pg_is_connected(o->deps.listen_pg));
  p2q_series_set(p2q_metric_series0(o->inflight), v.qdrant ? (double)p2q_qdrant_pending(v.qdrant) : 0);
  p2q_series_set(p2q_metric_series0(o->ready), ready);
  p2q_metric_clear(o->drift);
  for (int i = 0; i < p2q_drift_count(v.drift); i++) {
    const p2q_drift_item_t *it = p2q_drift_item(v.drift, i);
    const char *lv[] = {it->rule, it->item, it->used_as};
    p2q_series_set(p2q_metric_series(o->drift, lv), 1);
  }
  p2q_metric_clear(o->rx_pending);
  p2q_metric_clear(o->rx_backfilled);
  for (int i = 0; i < p2q_reindex_exec_jobs(v.reindex); i++) {
    const char *lv[2];
    long long done, pending;
    p2q_reindex_exec_job(v.reindex, i, &lv[0], &lv[1], &done, &pending);
    p2q_series_set(p2q_metric_series(o->rx_backfilled, lv), (double)done);
    if (pending >= 0) p2q_series_set(p2q_metric_series(o->rx_pending, lv), (double)pending);
  }
}

/* ---- hooks ------------------------------------------------------------------------------ */

p2q_metrics_t *p2q_ops_metrics(p2q_ops_t *o) { return o ? o->m : NULL; }

void p2q_ops_batch(p2q_ops_t *o, int events) {
  if (o) p2q_series_observe(p2q_metric_series0(o->batch_size), events);
}

void p2q_ops_qdrant_request(p2q_ops_t *o, const char *endpoint, const p2q_qdrant_resp_t *r) {
  if (!o || r->err == P2Q_ECANCELED) return;
  char cls[8] = "error";
  if (r->status >= 100 && r->status < 600) { /* "2xx" … "5xx" */
    cls[0] = (char)('0' + r->status / 100);
    memcpy(cls + 1, "xx", 3);
  }
  const char *v[] = {endpoint, cls};
  p2q_series_observe(p2q_metric_series(o->qdrant_seconds, v), r->time);
  o->qdrant_seen_at = uv_now(o->loop);
  /* "reachable" is the host's: GET /readyz, a success anywhere, or a failure to connect. A
     collection's failing writes are its own target's (health.c), not the host being down. */
  int host = !strcmp(endpoint, "probe");
  if (r->cls == P2Q_QDRANT_OK) o->qdrant_ok = 1;
  else if (host || (r->status == 0 && (r->curl_code == 6 || r->curl_code == 7))) o->qdrant_ok =
      !p2q_qdrant_class_transient(r->cls);
  if (!o->qdrant_ok)
    snprintf(o->qdrant_err, sizeof o->qdrant_err, "%s: %s%s", endpoint, r->status ? "HTTP " : "",
             r->status ? cls : (r->error && *r->error ? r->error : "transport error"));
}

void p2q_ops_event_done(p2q_ops_t *o, double created_at) {
  if (!o || created_at <= 0) return;
  double lag = now_epoch() - created_at;
  if (lag < 0) lag = 0; /* clock skew between PostgreSQL and this host */
  p2q_series_observe(p2q_metric_series0(o->lag), lag);
  o->lag_ring[o->lag_n++ % LAG_RING] = lag;
}

void p2q_ops_embed(p2q_ops_t *o, const char *embedder, double seconds, long tokens) {
  if (!o) return;
  p2q_series_observe(p2q_metric_series1(o->embed_seconds, embedder), seconds);
  if (tokens > 0) p2q_series_inc(p2q_metric_series1(o->embed_tokens, embedder), (double)tokens);
}

void p2q_ops_reload(p2q_ops_t *o, const char *result) {
  if (o) p2q_series_inc(p2q_metric_series1(o->reloads, result), 1);
}

/* ---- outbox status and readiness (refresh timer) ----------------------------------------- */

static void rows_free(p2q_ops_t *o) {
  for (int i = 0; i < o->n_rows; i++) free(o->rows[i].event_type);
  free(o->rows);
  o->rows = NULL;
  o->n_rows = 0;
}

static void status_cb(p2q_pg_t *pg, PGresult *res, int err, const char *errmsg, void *arg) {
  p2q_ops_t *o = arg;
  o->query_pending = 0;
  /* its cost no longer grows with the backlog (sync_outbox_status reads at most
     P2Q_OUTBOX_STATUS_EXACT + 1 events per type); still, never run it more than 1/20 of the time */
  uint64_t took = uv_now(o->loop) - o->query_sent_at;
  o->query_next_at = o->query_sent_at + (took * 20 > P2Q_OPS_REFRESH_MS ? took * 20 : P2Q_OPS_REFRESH_MS);
  if (err) {
    char q[512];
    if (err != P2Q_ECANCELED) P2Q_WARN("status_query_failed", "err=%s", p2q_log_q(q, sizeof q, errmsg));
    return;
  }
  int n = PQntuples(res);
  outbox_row_t *rows = calloc((size_t)(n ? n : 1), sizeof *rows);
  if (!rows) return;
  rows_free(o);
  o->rows = rows;
  p2q_metric_clear(o->outbox);
  p2q_metric_clear(o->oldest);
  p2q_metric_clear(o->estimated);
  for (int i = 0; i < n; i++, o->n_rows++) {
    outbox_row_t *r = &rows[i];
    r->event_type = strdup(PQgetvalue(res, i, 0));
    if (!r->event_type) break;
    r->pending = atoll(PQgetvalue(res, i, 1));
    r->in_flight = atoll(PQgetvalue(res, i, 2));
    r->retrying = atoll(PQgetvalue(res, i, 3));
    r->dead = atoll(PQgetvalue(res, i, 4));
    r->oldest = atof(PQgetvalue(res, i, 5));
    r->estimated = PQgetvalue(res, i, 6)[0] == 't';
    const char *states[] = {"pending", "in_flight", "retrying", "dead"};
    long long vals[] = {r->pending, r->in_flight, r->retrying, r->dead};
    for (int s = 0; s < 4; s++) {
      const char *lv[] = {r->event_type, states[s]};
      p2q_series_set(p2q_metric_series(o->outbox, lv), (double)vals[s]);
    }
    p2q_series_set(p2q_metric_series1(o->oldest, r->event_type), r->oldest);
    p2q_series_set(p2q_metric_series1(o->estimated, r->event_type), r->estimated);
  }
  o->rows_at = uv_now(o->loop);
}

static void probe_cb(p2q_qdrant_t *q, const p2q_qdrant_resp_t *r, void *arg) {
  p2q_ops_t *o = arg;
  o->probe_pending = 0;
  p2q_ops_qdrant_request(o, "probe", r);
}

static void refresh_cb(uv_timer_t *t) {
  p2q_ops_t *o = t->data;
  p2q_daemon_view_t v = view(o);
  if (o->closing || v.closing) return;
  uint64_t now = uv_now(o->loop);
  if (!o->query_pending && now + 50 >= o->query_next_at && p2q_pg_is_connected(o->deps.maint_pg) &&
      p2q_pg_query(o->deps.maint_pg, o->status_sql, 0, NULL, status_cb, o) == 0) {
    o->query_pending = 1;
    o->query_sent_at = now;
  }
  /* idle: no write told us whether Qdrant answers lately, so ask it (GET /readyz) */
  if (!o->probe_pending && !v.stopping && v.qdrant &&
      (!o->qdrant_seen_at || now - o->qdrant_seen_at >= P2Q_OPS_REFRESH_MS) &&
      p2q_qdrant_probe(v.qdrant, probe_cb, o) == 0)
    o->probe_pending = 1;
}

/* Readiness; reasons (for the 503 body) are appended to why. */
static int readiness(p2q_ops_t *o, p2q_buf_t *why) {
  p2q_daemon_view_t v = view(o);
  size_t before = why->len;
  if (v.stopping) p2q_buf_puts(why, "shutting down\n");
  if (!p2q_pg_is_connected(o->deps.listen_pg)) p2q_buf_puts(why, "postgresql: not connected\n");
  else if (!v.listening) p2q_buf_puts(why, "postgresql: LISTEN not active\n");
  if (!v.live) p2q_buf_puts(why, "postgresql: liveness unconfirmed (claims and writes paused)\n");
  if (!o->qdrant_seen_at) p2q_buf_puts(why, "qdrant: not checked yet\n");
  else if (!o->qdrant_ok) p2q_buf_printf(why, "qdrant: unreachable (%s)\n", o->qdrant_err);
  p2q_health_ready(o->deps.health, why);
  p2q_drift_describe(v.drift, 1, why); /* a rule made impossible: its events are dead-lettered */
  return why->len == before;
}

/* ---- /status ------------------------------------------------------------------------------ */

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static void status_lag(p2q_ops_t *o, p2q_buf_t *b) {
  unsigned n = o->lag_n < LAG_RING ? o->lag_n : LAG_RING;
  double s[LAG_RING];
  memcpy(s, o->lag_ring, sizeof(double) * n);
  qsort(s, n, sizeof s[0], cmp_double);
  p2q_buf_printf(b, "\"lag_seconds\":{\"samples\":%u", n);
  if (n)
    p2q_buf_printf(b, ",\"p50\":%.6f,\"p90\":%.6f,\"p99\":%.6f,\"max\":%.6f", s[(n - 1) * 50 / 100],
                   s[(n - 1) * 90 / 100], s[(n - 1) * 99 / 100], s[n - 1]);
  p2q_buf_puts(b, "}");
}

/* "breaker": the worst state of any target (closed < half_open < open), and every target. */
static void status_targets(p2q_ops_t *o, p2q_buf_t *b) {
  int n = p2q_health_count(o->deps.health);
  p2q_breaker_state_t worst = P2Q_BREAKER_CLOSED;
  uint64_t transitions = 0;
  for (int i = 0; i < n; i++) {
    p2q_target_info_t t;
    p2q_health_target(o->deps.health, i, &t);
    transitions += t.transitions;
    if (t.state == P2Q_BREAKER_OPEN || (t.state == P2Q_BREAKER_HALF_OPEN && worst == P2Q_BREAKER_CLOSED))
      worst = t.state;
  }
  p2q_buf_printf(b, "\"breaker\":{\"state\":\"%s\",\"transitions\":%llu},\"targets\":[",
                 p2q_breaker_state_name(worst), (unsigned long long)transitions);
  for (int i = 0; i < n; i++) {
    p2q_target_info_t t;
    p2q_health_target(o->deps.health, i, &t);
    p2q_buf_puts(b, i ? ",{\"name\":" : "{\"name\":");
    p2q_buf_json_string(b, t.name, strlen(t.name));
    p2q_buf_printf(b, ",\"state\":\"%s\",\"transitions\":%llu,\"failures\":%llu,\"rate_limited\":%llu,"
                   "\"held_ms\":%llu,\"last_failure\":\"%s\",\"last_error\":", p2q_breaker_state_name(t.state),
                   (unsigned long long)t.transitions, (unsigned long long)t.failures,
                   (unsigned long long)t.rate_limited, (unsigned long long)t.held_ms,
                   t.reason == P2Q_V_DONE ? "" : p2q_verdict_name(t.reason));
    p2q_buf_json_string(b, t.last_error, strlen(t.last_error));
    p2q_buf_putc(b, '}');
  }
  p2q_buf_puts(b, "],");
}

/* "drift": every row of the last drift check (drift.h) */
static void status_drift(const p2q_daemon_view_t *v, p2q_buf_t *b) {
  p2q_buf_puts(b, "\"drift\":[");
  p2q_buf_t line = P2Q_BUF_INIT;
  for (int i = 0; i < p2q_drift_count(v->drift); i++) {
    const p2q_drift_item_t *it = p2q_drift_item(v->drift, i);
    p2q_buf_puts(b, i ? ",{\"rule\":" : "{\"rule\":");
    p2q_buf_json_string(b, it->rule, strlen(it->rule));
    p2q_buf_puts(b, ",\"column\":");
    p2q_buf_json_string(b, it->item, strlen(it->item));
    p2q_buf_puts(b, ",\"used_as\":");
    p2q_buf_json_string(b, it->used_as, strlen(it->used_as));
    p2q_buf_printf(b, ",\"breaks\":%s,\"message\":", it->breaks ? "true" : "false");
    p2q_buf_reset(&line);
    p2q_drift_line(&line, it->rule, it->table, it->item, it->used_as, it->breaks);
    p2q_buf_json_string(b, p2q_buf_str(&line), line.len);
    p2q_buf_putc(b, '}');
  }
  p2q_buf_free(&line);
  p2q_buf_puts(b, "],");
}

static void status_workers(p2q_ops_t *o, p2q_buf_t *b) {
  p2q_buf_puts(b, "\"workers\":[");
  for (int i = 0; i < o->deps.n_workers; i++) {
    const p2q_stats_t *s = p2q_worker_stats(o->deps.workers[i]);
    const char *n = p2q_worker_name(o->deps.workers[i]);
    p2q_buf_puts(b, i ? ",{\"name\":" : "{\"name\":");
    p2q_buf_json_string(b, n, strlen(n));
#define COUNTER_JSON(field, metric, help) p2q_buf_printf(b, ",\"" #field "\":%llu", (unsigned long long)s->field);
    P2Q_WORKER_COUNTERS(COUNTER_JSON)
#undef COUNTER_JSON
    p2q_buf_putc(b, '}');
  }
  p2q_buf_puts(b, "]");
}

static void status_json(p2q_ops_t *o, p2q_buf_t *b) {
  p2q_daemon_view_t v = view(o);
  p2q_buf_t why = P2Q_BUF_INIT;
  int ready = readiness(o, &why);
  uint64_t now = uv_now(o->loop);
  p2q_buf_printf(b, "{\"version\":\"%s\",\"pid\":%d,\"uptime_seconds\":%.3f,\"ready\":%s,\"not_ready\":",
                 P2Q_VERSION, (int)uv_os_getpid(), (double)(now - o->started_loop) / 1000.0,
                 ready ? "true" : "false");
  p2q_buf_json_string(b, p2q_buf_str(&why), why.len);
  p2q_buf_free(&why);
  p2q_buf_printf(b, ",\"stopping\":%s,", v.stopping ? "true" : "false");
  status_targets(o, b);
  p2q_buf_printf(b, "\"postgres\":{\"connected\":%s,\"listening\":%s,\"reconnects\":%llu},"
                 "\"qdrant\":{\"reachable\":%s,\"requests_in_flight\":%u},",
                 p2q_pg_is_connected(o->deps.listen_pg) ? "true" : "false", v.listening ? "true" : "false",
                 (unsigned long long)pg_reconnects(o, &v), o->qdrant_seen_at && o->qdrant_ok ? "true" : "false",
                 v.qdrant ? p2q_qdrant_pending(v.qdrant) : 0);
  p2q_buf_printf(b, "\"liveness\":{\"confirmed\":%s,\"instance\":", v.live ? "true" : "false");
  if (v.instance) p2q_buf_json_string(b, v.instance, strlen(v.instance));
  else p2q_buf_puts(b, "null");
  p2q_buf_puts(b, "},");
  status_drift(&v, b);
  p2q_buf_puts(b, "\"reindex\":");
  p2q_reindex_exec_status(v.reindex, b);
  p2q_buf_putc(b, ',');
  status_lag(o, b);
  p2q_buf_puts(b, ",\"outbox\":{\"age_seconds\":");
  if (o->rows_at) p2q_buf_printf(b, "%.3f", (double)(now - o->rows_at) / 1000.0);
  else p2q_buf_puts(b, "null");
  /* counts are exact up to P2Q_OUTBOX_STATUS_EXACT events of a type; the types listed in
     `estimated` have more (sync_outbox_status) */
  p2q_buf_printf(b, ",\"exact_up_to\":%d,\"estimated\":[", P2Q_OUTBOX_STATUS_EXACT);
  for (int i = 0, k = 0; i < o->n_rows; i++) {
    if (!o->rows[i].estimated) continue;
    if (k++) p2q_buf_putc(b, ',');
    p2q_buf_json_string(b, o->rows[i].event_type, strlen(o->rows[i].event_type));
  }
  p2q_buf_puts(b, "],\"event_types\":[");
  for (int i = 0; i < o->n_rows; i++) {
    const outbox_row_t *r = &o->rows[i];
    p2q_buf_printf(b, "%s{\"event_type\":", i ? "," : "");
    p2q_buf_json_string(b, r->event_type, strlen(r->event_type));
    p2q_buf_printf(b, ",\"pending\":%lld,\"in_flight\":%lld,\"retrying\":%lld,\"dead\":%lld,"
                   "\"oldest_pending_age_seconds\":%.3f}", r->pending, r->in_flight, r->retrying, r->dead, r->oldest);
  }
  p2q_buf_puts(b, "]},");
  status_workers(o, b);
  p2q_buf_puts(b, ",\"blas\":");
  p2q_blas_json(b); /* blas_kernel.h */
  p2q_buf_puts(b, "}\n");
}

/* ---- HTTP connections ------------------------------------------------------------------- */

static void process(conn_t *c);
static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void conn_handle_closed(uv_handle_t *h) {
  conn_t *c = h->data;
  if (--c->handles == 0) free(c);
}

static void conn_close(conn_t *c) {
  if (c->closing) return;
  c->closing = 1;
  for (conn_t **p = &c->o->conns; *p; p = &(*p)->next)
    if (*p == c) { *p = c->next; break; }
  c->o->n_conns--;
  c->handles = 2;
  uv_close((uv_handle_t *)&c->tcp, conn_handle_closed);
  uv_close((uv_handle_t *)&c->timer, conn_handle_closed);
}

static void timeout_cb(uv_timer_t *t) { conn_close(t->data); }

static void write_cb(uv_write_t *req, int status) {
  write_t *w = (write_t *)req;
  conn_t *c = w->c;
  free(w->data);
  free(w);
  c->writes--;
  if (c->closing) return;
  if (status < 0 || (c->want_close && c->writes == 0)) { conn_close(c); return; }
  if (c->paused && uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) < WRITE_HIGH_WATER / 2) {
    c->paused = 0;
    process(c); /* pipelined requests still buffered, then read again */
  }
}

static void respond(conn_t *c, int status, const char *ctype, const char *extra, const char *body,
                    size_t len, int head) {
  p2q_buf_t b = P2Q_BUF_INIT;
  p2q_buf_printf(&b, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                 "Cache-Control: no-store\r\n%sConnection: %s\r\n\r\n", status, p2q_http_reason(status),
                 ctype, len, extra ? extra : "", c->want_close ? "close" : "keep-alive");
  if (!head) p2q_buf_append(&b, body, len);
  write_t *w = malloc(sizeof *w);
  if (p2q_buf_error(&b) || !w) { free(w); p2q_buf_free(&b); conn_close(c); return; }
  w->c = c;
  uv_buf_t ub = uv_buf_init(b.data, (unsigned)b.len);
  w->data = p2q_buf_steal(&b);
  if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &ub, 1, write_cb) < 0) {
    free(w->data);
    free(w);
    conn_close(c);
    return;
  }
  c->writes++;
}

static void respond_text(conn_t *c, int status, const char *extra, const char *text, int head) {
  respond(c, status, "text/plain; charset=utf-8", extra, text, strlen(text), head);
}

static void route(conn_t *c, const p2q_http_req_t *req) {
  p2q_ops_t *o = c->o;
  const char *p = req->path;
  int known = !strcmp(p, "/healthz") || !strcmp(p, "/readyz") || !strcmp(p, "/status") || !strcmp(p, "/metrics");
  int head = !strcmp(req->method, "HEAD");
  if (!known) { respond_text(c, 404, NULL, "not found: try /healthz /readyz /status /metrics\n", head); return; }
  if (!head && strcmp(req->method, "GET")) {
    respond_text(c, 405, "Allow: GET, HEAD\r\n", "method not allowed\n", 0);
    return;
  }
  p2q_buf_t b = P2Q_BUF_INIT;
  if (!strcmp(p, "/healthz")) {
    respond_text(c, 200, NULL, "ok\n", head);
  } else if (!strcmp(p, "/readyz")) {
    int ready = readiness(o, &b);
    if (ready) { /* ready, and what an operator should still fix (a dropped payload column, a Qdrant node down) */
      p2q_buf_puts(&b, "ready\n");
      p2q_drift_describe(view(o).drift, 0, &b);
      p2q_health_degraded(o->deps.health, &b); /* Qdrant nodes skipped meanwhile */
    }
    respond_text(c, ready ? 200 : 503, NULL, p2q_buf_str(&b), head);
  } else if (!strcmp(p, "/status")) {
    status_json(o, &b);
    respond(c, p2q_buf_error(&b) ? 500 : 200, "application/json", NULL, p2q_buf_str(&b), b.len, head);
  } else {
    p2q_buf_t why = P2Q_BUF_INIT;
    mirror(o, readiness(o, &why));
    p2q_buf_free(&why);
    int rc = p2q_metrics_render(o->m, &b);
    respond(c, rc ? 500 : 200, "text/plain; version=0.0.4; charset=utf-8", NULL, p2q_buf_str(&b), b.len, head);
  }
  p2q_buf_free(&b);
}

/* Answer every complete request in the buffer, in order. */
static void process(conn_t *c) {
  while (!c->closing && !c->want_close && !c->paused) {
    p2q_http_req_t req;
    long n = p2q_http_parse(c->buf, c->len, P2Q_OPS_MAX_HEADER, P2Q_OPS_MAX_BODY, &req);
    if (n == 0) break;
    if (n < 0) {
      char msg[64];
      c->want_close = 1;
      snprintf(msg, sizeof msg, "%s\n", p2q_http_reason(req.status));
      respond_text(c, req.status, NULL, msg, 0);
      P2Q_DEBUG("status_http_bad_request", "status=%d", req.status);
      break;
    }
    if (!req.keep_alive) c->want_close = 1;
    route(c, &req);
    if (c->closing) return;
    memmove(c->buf, c->buf + n, c->len - (size_t)n);
    c->len -= (size_t)n;
    uv_timer_start(&c->timer, timeout_cb, P2Q_OPS_CONN_TIMEOUT_MS, 0);
    if (uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) > WRITE_HIGH_WATER) c->paused = 1;
  }
  if (c->closing) return;
  if (c->want_close || c->paused) {
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = 0;
    if (c->want_close && c->writes == 0) conn_close(c);
  } else if (!c->reading) {
    c->reading = uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb) == 0;
    if (!c->reading) conn_close(c);
  }
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  conn_t *c = h->data;
  *buf = uv_buf_init(c->buf + c->len, (unsigned)(sizeof c->buf - c->len));
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  conn_t *c = s->data;
  if (nread == 0) return;
  if (nread < 0) { /* EOF, reset, or a full buffer (cannot happen: the parser refuses first) */
    uv_read_stop(s);
    c->reading = 0;
    if (c->writes == 0) conn_close(c);
    else c->want_close = 1;
    return;
  }
  c->len += (size_t)nread;
  process(c);
}

/* At the cap, a new client (a probe's GET /healthz) must not wait for slow or idle ones to time
   out: close the oldest connection that has no answer being written (the list is newest first).
   A real client's request is answered as soon as it is complete, so what is evicted is a
   connection idle between requests or one trickling a request in. */
static void evict_oldest_idle(p2q_ops_t *o) {
  conn_t *victim = NULL;
  for (conn_t *c = o->conns; c; c = c->next)
    if (!c->closing && c->writes == 0) victim = c;
  if (victim) {
    P2Q_DEBUG("status_http_evicted", "conns=%d", o->n_conns);
    conn_close(victim);
  }
}

static void accept_cb(uv_stream_t *server, int status) {
  p2q_ops_t *o = server->data;
  if (status < 0 || o->closing) return;
  conn_t *c = calloc(1, sizeof *c);
  if (!c) return;
  c->o = o;
  uv_tcp_init(o->loop, &c->tcp);
  uv_timer_init(o->loop, &c->timer);
  c->tcp.data = c->timer.data = c;
  if (o->n_conns >= P2Q_OPS_MAX_CONNS) evict_oldest_idle(o);
  c->next = o->conns;
  o->conns = c;
  o->n_conns++;
  if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0 || o->n_conns > P2Q_OPS_MAX_CONNS) {
    conn_close(c); /* over the limit (every other one is being answered): closed */
    return;
  }
  uv_timer_start(&c->timer, timeout_cb, P2Q_OPS_CONN_TIMEOUT_MS, 0);
  process(c);
}

/* the validator's own parser (netaddr.c): what the config accepts is what binds */
static int parse_listen(const char *s, struct sockaddr_storage *ss) { return p2q_listen_parse(s, ss); }

static void start_server(p2q_ops_t *o, const char *listen) {
  struct sockaddr_storage ss;
  char q[256];
  int rc = parse_listen(listen, &ss);
  const char *why = "not an IP address and port";
  if (rc == 0) {
    uv_tcp_init(o->loop, &o->server);
    o->server.data = o;
    o->server_open = 1;
    if ((rc = uv_tcp_bind(&o->server, (struct sockaddr *)&ss, 0)) == 0)
      rc = uv_listen((uv_stream_t *)&o->server, 64, accept_cb);
    if (rc) why = uv_strerror(rc); /* uv_strerror(0) allocates */
  }
  if (rc) {
    P2Q_ERROR("status_http_failed", "listen=%s err=%s serving=0", p2q_log_q(q, sizeof q, listen),
              p2q_log_q(q + 128, sizeof q - 128, why));
    return;
  }
  struct sockaddr_storage bound;
  int len = sizeof bound;
  char ip[64] = "?";
  int port = 0;
  uv_tcp_getsockname(&o->server, (struct sockaddr *)&bound, &len);
  if (bound.ss_family == AF_INET6) {
    uv_ip6_name((struct sockaddr_in6 *)&bound, ip, sizeof ip);
    port = ntohs(((struct sockaddr_in6 *)&bound)->sin6_port);
  } else {
    uv_ip4_name((struct sockaddr_in *)&bound, ip, sizeof ip);
    port = ntohs(((struct sockaddr_in *)&bound)->sin_port);
  }
  P2Q_INFO("status_http_listening", "addr=%s port=%d", ip, port);
}

/* ---- lifecycle -------------------------------------------------------------------------------- */

int p2q_ops_start(const p2q_ops_deps_t *deps, p2q_ops_t **out) {
  p2q_ops_t *o = calloc(1, sizeof *o);
  const p2q_config_t *cfg = deps->cfg;
  int rc = P2Q_ENOMEM;
  if (!o) return rc;
  o->deps = *deps;
  o->loop = deps->loop;
  o->started = now_epoch();
  o->started_loop = uv_now(o->loop);
  o->qdrant_ok = 1;
  if ((rc = p2q_metrics_new(&o->m)) || (rc = register_all(o))) goto fail;
  p2q_series_set(p2q_metric_series0(o->start_time), o->started);
  p2q_series_set(p2q_metric_series1(o->build_info, P2Q_VERSION), 1);
  if (p2q_blas_metrics_register(o->m)) goto fail; /* pg2qdrant_blas_info */
  rc = P2Q_ENOMEM;
  if (!(o->status_sql = p2q_outbox_status_sql(cfg->pg_schema))) goto fail; /* same query as `status` */
  if (cfg->http_listen && *cfg->http_listen) {
    uv_timer_init(o->loop, &o->refresh);
    o->refresh.data = o;
    o->timer_open = 1;
    uv_timer_start(&o->refresh, refresh_cb, 200, P2Q_OPS_REFRESH_MS);
    start_server(o, cfg->http_listen);
  }
  *out = o;
  return 0;
fail:
  p2q_metrics_free(o->m);
  free(o);
  return rc;
}

static void closed_noop(uv_handle_t *h) {}

void p2q_ops_close(p2q_ops_t *o) {
  if (!o || o->closing) return;
  o->closing = 1;
  if (o->timer_open) uv_close((uv_handle_t *)&o->refresh, closed_noop);
  if (o->server_open) uv_close((uv_handle_t *)&o->server, closed_noop);
  while (o->conns) conn_close(o->conns);
}

void p2q_ops_free(p2q_ops_t *o) {
  if (!o) return;
  rows_free(o);
  free(o->status_sql);
  p2q_metrics_free(o->m);
  free(o);
}

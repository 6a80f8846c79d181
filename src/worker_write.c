/*
 * worker_write.c — the write stage of a worker's batch (loop thread): one Qdrant request per
 * rule and kind (upsert, delete, chunk prune), built from the events' prepared point JSON;
 * a request Qdrant rejects as malformed (400/422) is split in halves until the bad points are
 * isolated; every event gets its outcome here (done, retry, dead, requeue). Transient failures
 * feed the daemon's circuit breaker.
 */
#include "worker_internal.h"
#include "pg2qdrant/errors.h"
#include "pg2qdrant/log.h"
#include "pg2qdrant/status_http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int retry_delay(p2q_worker_t *w, const wevent_t *e, long server_delay_ms) {
  uint64_t d = p2q_backoff_delay(&w->backoff, e->attempts > 0 ? (unsigned)e->attempts - 1 : 0);
  if (server_delay_ms > 0 && (uint64_t)server_delay_ms > d) d = (uint64_t)server_delay_ms;
  return d > 0x7fffffff ? 0x7fffffff : (int)d;
}

void p2q_wk_fail(wbatch_t *b, const int *idx, int n, int transient, long server_delay_ms,
                     const char *msg) {
  p2q_worker_t *w = b->w;
  for (int i = 0; i < n; i++) {
    wevent_t *e = &b->ev[idx[i]];
    if (transient && (!p2q_breaker_allows(&w->d->breaker) || w->d->stopping)) {
      p2q_wk_set_outcome(e, "requeue", retry_delay(w, e, server_delay_ms), msg); /* not the event's fault */
    } else if (e->attempts >= e->max_attempts) {
      p2q_wk_set_outcome(e, "dead", 0, msg);
    } else {
      p2q_wk_set_outcome(e, "retry", retry_delay(w, e, server_delay_ms), msg);
    }
  }
}

static void fail_events(wreq_t *r, int transient, long server_delay_ms, const char *msg) {
  p2q_wk_fail(r->b, r->idx, r->n, transient, server_delay_ms, msg);
}

static void request_cb(p2q_qdrant_t *q, const p2q_qdrant_resp_t *resp, void *arg) {
  wreq_t *r = arg;
  wbatch_t *b = r->b;
  p2q_worker_t *w = b->w;
  const p2q_rule_config_t *rule = &w->d->cfg->rules[r->rule];
  char msg[1024];
  p2q_ops_qdrant_request(w->d->ops, r->op == OP_UPSERT ? "upsert" : "delete", resp);
  if (resp->cls == P2Q_QDRANT_OK && r->op == OP_UPSERT && rule->chunk_tokens > 0 && !b->orphaned) {
    p2q_daemon_qdrant_result(w->d, 0);
    p2q_wk_send(b, r->rule, OP_PRUNE, r->idx, r->n); /* the new chunks are in: drop the old extra ones */
  } else if (resp->cls == P2Q_QDRANT_OK) {
    for (int i = 0; i < r->n; i++) p2q_wk_set_outcome(&b->ev[r->idx[i]], "done", 0, NULL);
    p2q_daemon_qdrant_result(w->d, 0);
  } else if (((resp->cls == P2Q_QDRANT_PERMANENT && (resp->status == 400 || resp->status == 422)) || resp->cls == P2Q_QDRANT_TOO_LARGE) &&
             r->n > 1 && !b->orphaned && !w->d->forced) {
    int half = r->n / 2; /* isolate the bad points: each half is retried on its own */
    w->stats.splits++;
    p2q_daemon_qdrant_result(w->d, 0);
    p2q_wk_send(b, r->rule, r->op, r->idx, half);
    p2q_wk_send(b, r->rule, r->op, r->idx + half, r->n - half);
  } else {
    int transient = p2q_qdrant_class_transient(resp->cls) || resp->err == P2Q_ECANCELED;
    const char *what = r->op == OP_UPSERT ? "upsert" : r->op == OP_PRUNE ? "chunk prune" : "delete";
    const char *why = resp->error && *resp->error ? resp->error : "no details";
    if (resp->status)
      snprintf(msg, sizeof msg, "qdrant %s %s: HTTP %ld: %s", what, rule->collection, resp->status, why);
    else
      snprintf(msg, sizeof msg, "qdrant %s %s: transport error: %s", what, rule->collection, why);
    w->stats.qdrant_failures++;
    if (transient && resp->err != P2Q_ECANCELED) p2q_daemon_qdrant_result(w->d, 1);
    fail_events(r, transient, resp->retry_delay_ms, msg);
    char qm[1100];
    P2Q_WARN("qdrant_write_failed", "worker=%s points=%d status=%ld class=%s err=%s", w->cfg->name,
             r->n, resp->status, p2q_qdrant_class_name(resp->cls), p2q_log_q(qm, sizeof qm, msg));
  }
  free(r);
  p2q_wk_request_finished(b);
}

/* {"points":[…]} (points or ids), or for chunked rules a filter on the rows' `_pk` (and `_chunk`). */
static void request_body(p2q_buf_t *body, wbatch_t *b, const p2q_rule_config_t *rc, int op,
                         const int *idx, int n) {
  if (op == OP_UPSERT || (op == OP_DELETE && rc->chunk_tokens == 0)) {
    p2q_buf_puts(body, "{\"points\":[");
    for (int i = 0; i < n; i++) {
      wevent_t *e = &b->ev[idx[i]];
      if (i) p2q_buf_putc(body, ',');
      if (op == OP_UPSERT) p2q_buf_append(body, e->point, e->point_len);
      else p2q_buf_puts(body, e->point_id);
    }
    p2q_buf_puts(body, "]}");
  } else if (op == OP_DELETE) { /* every chunk of these rows */
    p2q_buf_puts(body, "{\"filter\":{\"must\":[{\"key\":\"_pk\",\"match\":{\"any\":[");
    for (int i = 0; i < n; i++) {
      if (i) p2q_buf_putc(body, ',');
      p2q_buf_json_string(body, b->ev[idx[i]].row_key, strlen(b->ev[idx[i]].row_key));
    }
    p2q_buf_puts(body, "]}}]}}");
  } else { /* OP_PRUNE: chunks numbered at or beyond each row's new count */
    p2q_buf_puts(body, "{\"filter\":{\"should\":[");
    for (int i = 0; i < n; i++) {
      wevent_t *e = &b->ev[idx[i]];
      p2q_buf_puts(body, i ? ",{\"must\":[{\"key\":\"_pk\",\"match\":{\"value\":" : "{\"must\":[{\"key\":\"_pk\",\"match\":{\"value\":");
      p2q_buf_json_string(body, e->row_key, strlen(e->row_key));
      p2q_buf_printf(body, "}},{\"key\":\"_chunk\",\"range\":{\"gte\":%d}}]}", e->n_chunks);
    }
    p2q_buf_puts(body, "]}}");
  }
}

/* May this batch still write? Not once its connection is gone (recovery will free its claims)
   nor once its lease could expire before the request finishes: another worker may then hold the
   row and write a newer snapshot, which ours must not overwrite. */
static int may_write(const wbatch_t *b) {
  const p2q_config_t *cfg = b->w->d->cfg;
  uint64_t age = uv_now(b->w->d->loop) - b->claimed_at;
  int64_t budget = cfg->lease_ms - cfg->qdrant_timeout_ms - 1000;
  return !b->orphaned && (int64_t)age < budget;
}

void p2q_wk_send(wbatch_t *b, int rule, int op, const int *idx, int n) {
  p2q_worker_t *w = b->w;
  const p2q_rule_config_t *rc = &w->d->cfg->rules[rule];
  if (!may_write(b)) { /* give the events back, nothing is written */
    for (int i = 0; i < n; i++) p2q_wk_set_outcome(&b->ev[idx[i]], "requeue", 0, "claim expired before the write");
    P2Q_WARN("write_skipped", "worker=%s events=%d reason=%s", w->cfg->name, n,
             b->orphaned ? "connection_lost" : "lease_nearly_expired");
    return;
  }
  wreq_t *r = malloc(sizeof *r + sizeof(int) * (size_t)n);
  p2q_buf_t body = P2Q_BUF_INIT;
  if (!r) goto fail;
  r->b = b; r->rule = rule; r->op = op; r->n = n;
  memcpy(r->idx, idx, sizeof(int) * (size_t)n);
  request_body(&body, b, rc, op, idx, n);
  if (p2q_buf_error(&body)) goto fail;
  size_t len = body.len;
  char *data = p2q_buf_steal(&body);
  int err = op == OP_UPSERT ? p2q_qdrant_points_upsert_take(w->d->qdrant, rc->collection, data, len, request_cb, r)
                            : p2q_qdrant_points_delete_take(w->d->qdrant, rc->collection, data, len, request_cb, r);
  if (err) { free(data); goto fail; }
  b->pending++;
  w->stats.qdrant_requests++;
  return;
fail:
  if (r) {
    fail_events(r, 1, -1, "cannot send the request (out of memory or client closing)");
    free(r);
  } else {
    for (int i = 0; i < n; i++) p2q_wk_set_outcome(&b->ev[idx[i]], "requeue", 1000, "out of memory");
  }
  p2q_buf_free(&body);
}


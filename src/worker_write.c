/*
 * worker_write.c — the write stage of a worker's batch (loop thread): one Qdrant request per
 * rule and kind (upsert, delete, chunk prune), built from the events' prepared point JSON.
 * Every answer is classified once (classify.c) and every event gets its outcome here:
 *   DONE → done (chunked upserts: prune the old extra chunks first);
 *   SPLIT (400/422/413 on several points) → the request is split in halves, no attempt used;
 *   EVENT_FAULT (400/422/413 on one point) → retry after a backoff, or dead after max_attempts;
 *   anything else is the target's failure → reported to the health gate, which decides how long
 *   the events wait (capped at retry_max); they are requeued without using an attempt.
 */
#include "worker_batch.h"
#include "pg2qdrant/errors.h"
#include "pg2qdrant/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int64_t retry_delay(p2q_worker_t *w, const wevent_t *e) {
  uint64_t d = p2q_backoff_delay(&w->backoff, e->attempts > 0 ? (unsigned)e->attempts - 1 : 0);
  return d > INT64_MAX ? INT64_MAX : (int64_t)d;
}

void p2q_wk_fail(wbatch_t *b, const int *idx, int n, p2q_verdict_t v, uint64_t wait_ms, const char *msg) {
  p2q_worker_t *w = b->w;
  int64_t wait = wait_ms > INT64_MAX ? INT64_MAX : (int64_t)wait_ms; /* never narrowed to int */
  for (int i = 0; i < n; i++) {
    wevent_t *e = &b->ev[idx[i]];
    if (v != P2Q_V_EVENT_FAULT) p2q_wk_set_outcome(e, P2Q_OUTCOME_REQUEUE, wait, msg); /* not the event's fault */
    else if (e->attempts >= e->max_attempts) p2q_wk_set_outcome(e, P2Q_OUTCOME_DEAD, 0, msg);
    else p2q_wk_set_outcome(e, P2Q_OUTCOME_RETRY, retry_delay(w, e), msg);
  }
}

static const char *op_what(p2q_op_t op) {
  return op == P2Q_OP_UPSERT ? "upsert" : op == P2Q_OP_PRUNE ? "chunk prune" : op == P2Q_OP_PAYLOAD ? "payload update" : "delete";
}

static void request_cb(p2q_qdrant_t *q, const p2q_qdrant_resp_t *resp, void *arg) {
  wreq_t *r = arg;
  wbatch_t *b = r->b;
  p2q_worker_t *w = b->w;
  const p2q_rule_config_t *rule = &WCFG(w)->rules[r->rule];
  char msg[1024];
  int host_wide = 0;
  p2q_verdict_t v = p2q_classify_qdrant(resp->status, resp->err, resp->curl_code, resp->cls, r->n, &host_wide);
  if (w->ctx.on_qdrant) w->ctx.on_qdrant(w->ctx.arg, r->op == P2Q_OP_UPSERT || r->op == P2Q_OP_PAYLOAD ? "upsert" : "delete", resp);
  if (v == P2Q_V_SPLIT && (b->orphaned || w->ctx.stopping(w->ctx.arg) == 2)) v = P2Q_V_CANCELED;
  if (v == P2Q_V_DONE || v == P2Q_V_SPLIT || v == P2Q_V_EVENT_FAULT) /* the target answered */
    w->ctx.report(w->ctx.arg, r->rule, 0, v, host_wide, -1, NULL);
  switch (v) {
  case P2Q_V_DONE:
    if ((r->op == P2Q_OP_UPSERT || r->op == P2Q_OP_PAYLOAD) && rule->chunk_tokens > 0 && !b->orphaned)
      p2q_wk_send(b, r->rule, P2Q_OP_PRUNE, r->idx, r->n); /* the new chunks are in: drop the old extra ones */
    else
      for (int i = 0; i < r->n; i++) p2q_wk_set_outcome(&b->ev[r->idx[i]], P2Q_OUTCOME_DONE, 0, NULL);
    break;
  case P2Q_V_SPLIT: { /* isolate the bad points (or fit the body limit): each half on its own */
    int half = r->n / 2;
    w->st->splits++;
    p2q_wk_send(b, r->rule, r->op, r->idx, half);
    p2q_wk_send(b, r->rule, r->op, r->idx + half, r->n - half);
    break;
  }
  case P2Q_V_CANCELED:
    for (int i = 0; i < r->n; i++)
      p2q_wk_set_outcome(&b->ev[r->idx[i]], P2Q_OUTCOME_REQUEUE, 0, "request cancelled (shutdown)");
    break;
  default: {
    const char *why = resp->error && *resp->error ? resp->error : "no details";
    if (resp->status)
      snprintf(msg, sizeof msg, "qdrant %s %s: HTTP %ld: %s", op_what(r->op), rule->collection, resp->status, why);
    else
      snprintf(msg, sizeof msg, "qdrant %s %s: transport error: %s", op_what(r->op), rule->collection, why);
    w->st->qdrant_failures++;
    if (v == P2Q_V_RATE_LIMITED) w->st->rate_limited++;
    uint64_t wait = v == P2Q_V_EVENT_FAULT ? 0
                  : w->ctx.report(w->ctx.arg, r->rule, 0, v, host_wide, resp->retry_delay_ms, msg);
    p2q_wk_fail(b, r->idx, r->n, v, wait, msg);
    char qm[1100];
    P2Q_WARN("qdrant_write_failed", "worker=%s rule=%s points=%d status=%ld class=%s verdict=%s wait_ms=%llu err=%s",
             w->cfg->name, rule->name, r->n, resp->status, p2q_qdrant_class_name(resp->cls), p2q_verdict_name(v),
             (unsigned long long)wait, p2q_log_q(qm, sizeof qm, msg));
  }
  }
  free(r);
  p2q_wk_request_finished(b);
}

/* {"points":[…]} (points or ids), or for chunked rules a filter on the rows' `_pk` (and `_chunk`). */
static void request_body(p2q_buf_t *body, wbatch_t *b, const p2q_rule_config_t *rc, p2q_op_t op,
                         const int *idx, int n) {
  if ((op == P2Q_OP_UPSERT || op == P2Q_OP_DELETE) && p2q_wk_rule_shared(WCFG(b->w), (int)(rc - WCFG(b->w)->rules))) {
    p2q_wk_shared_body(body, b, rc, op, idx, n); /* own vectors and keys only */
  } else if (op == P2Q_OP_PAYLOAD) { /* overwrite_payload operations built by worker_reuse.c */
    p2q_buf_puts(body, "{\"operations\":[");
    for (int i = 0; i < n; i++) {
      if (i) p2q_buf_putc(body, ',');
      p2q_buf_append(body, b->ev[idx[i]].point, b->ev[idx[i]].point_len);
    }
    p2q_buf_puts(body, "]}");
  } else if (op == P2Q_OP_UPSERT || (op == P2Q_OP_DELETE && rc->chunk_tokens == 0)) {
    size_t need = 16;
    for (int i = 0; i < n; i++)
      need += 1 + (op == P2Q_OP_UPSERT ? b->ev[idx[i]].point_len : P2Q_POINT_ID_MAX);
    p2q_buf_reserve(body, need); /* ~1 MB for 256 points of 384 floats: one allocation, no regrowth */
    p2q_buf_puts(body, P2Q_WK_POINTS_OPEN);
    for (int i = 0; i < n; i++) {
      wevent_t *e = &b->ev[idx[i]];
      if (i) p2q_buf_putc(body, ',');
      if (op == P2Q_OP_UPSERT) p2q_buf_append(body, e->point, e->point_len);
      else p2q_buf_puts(body, e->point_id);
    }
    p2q_buf_puts(body, "]}");
  } else if (op == P2Q_OP_DELETE) { /* every chunk of these rows */
    p2q_buf_puts(body, "{\"filter\":{\"must\":[{\"key\":\"_pk\",\"match\":{\"any\":[");
    for (int i = 0; i < n; i++) {
      if (i) p2q_buf_putc(body, ',');
      p2q_buf_json_string(body, b->ev[idx[i]].row_key, strlen(b->ev[idx[i]].row_key));
    }
    p2q_buf_puts(body, "]}}]}}");
  } else { /* P2Q_OP_PRUNE: chunks numbered at or beyond each row's new count */
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

const p2q_buf_t *p2q_wk_lent_body(const wbatch_t *b, int rule, p2q_op_t op, const int *idx, int n) {
  if (op != P2Q_OP_UPSERT || !b->bodies || rule >= b->n_bodies || p2q_wk_rule_shared(WCFG(b->w), rule)) return NULL;
  const wbody_t *wb = &b->bodies[rule];
  if (wb->n != n || n == 0 || p2q_buf_error(&wb->buf)) return NULL;
  const char *at = wb->buf.data + sizeof P2Q_WK_POINTS_OPEN - 1;
  for (int i = 0; i < n; i++) { /* the body's points, in its order */
    const wevent_t *e = &b->ev[idx[i]];
    if (!e->point_lent || e->point != at) return NULL;
    at += e->point_len + 1;
  }
  return &wb->buf;
}

/* May this batch still write? Not once its connection is gone (recovery will free its claims),
   nor once its lease could expire before the request finishes (another worker may then hold the
   row and write a newer snapshot, which ours must not overwrite), nor once this process could
   not confirm its liveness since the claim (recover.h: its claims may have been freed). Returns
   NULL or why not. */
static const char *write_blocked(const wbatch_t *b) {
  const p2q_config_t *cfg = WCFG(b->w);
  uint64_t age = WNOW(b->w) - b->claimed_at;
  int64_t budget = cfg->lease_ms - cfg->qdrant_timeout_ms - 1000;
  if (b->orphaned) return "connection_lost";
  if ((int64_t)age >= budget) return "lease_nearly_expired";
  if (WLIVE(b->w) != b->epoch) return "liveness_unconfirmed";
  return NULL;
}

void p2q_wk_send(wbatch_t *b, int rule, p2q_op_t op, const int *idx, int n) {
  p2q_worker_t *w = b->w;
  const p2q_rule_config_t *rc = &WCFG(w)->rules[rule];
  const char *blocked = write_blocked(b);
  if (blocked) { /* give the events back, nothing is written */
    char msg[96];
    snprintf(msg, sizeof msg, "not written: %s", blocked);
    for (int i = 0; i < n; i++) p2q_wk_set_outcome(&b->ev[idx[i]], P2Q_OUTCOME_REQUEUE, 0, msg);
    P2Q_WARN("write_skipped", "worker=%s events=%d reason=%s", w->cfg->name, n, blocked);
    return;
  }
  wreq_t *r = malloc(sizeof *r + sizeof(int) * (size_t)n);
  p2q_buf_t body = P2Q_BUF_INIT;
  const p2q_buf_t *lent = p2q_wk_lent_body(b, rule, op, idx, n);
  if (!r) goto fail;
  r->b = b; r->rule = rule; r->op = op; r->n = n;
  memcpy(r->idx, idx, sizeof(int) * (size_t)n);
  if (!lent) request_body(&body, b, rc, op, idx, n);
  if (p2q_buf_error(&body)) goto fail;
  size_t len = lent ? lent->len : body.len;
  char *data = lent ? lent->data : p2q_buf_steal(&body);
  p2q_op_t endpoint = (op == P2Q_OP_UPSERT || op == P2Q_OP_DELETE) && p2q_wk_rule_shared(WCFG(w), rule)
                      ? P2Q_OP_PAYLOAD : op; /* shared rules: POST …/points/batch */
  int err = w->ctx.write(w->ctx.arg, rc->collection, endpoint, data, len, lent != NULL, request_cb, r);
  if (err) { if (!lent) free(data); goto fail; }
  b->pending++;
  w->st->qdrant_requests++;
  return;
fail:
  if (r) {
    for (int i = 0; i < n; i++)
      p2q_wk_set_outcome(&b->ev[idx[i]], P2Q_OUTCOME_REQUEUE, 1000, "cannot send the request (out of memory or client closing)");
    free(r);
  } else {
    for (int i = 0; i < n; i++) p2q_wk_set_outcome(&b->ev[idx[i]], P2Q_OUTCOME_REQUEUE, 1000, "out of memory");
  }
  p2q_buf_free(&body);
}


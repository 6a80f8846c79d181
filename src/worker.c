/*
 * worker.c — a pull worker: claim → write → ack, on the loop thread.
 *
 * Owns: one p2q_pg_t connection (its claims and acks, in order), a linger timer and a retry
 * timer, and the batches between claim and ack. A batch holds at most one event per source row
 * (the claim coalesces), so its Qdrant requests can run concurrently. Invariants:
 *  - every claimed event gets exactly one outcome in the ack (done/retry/dead/requeue/release);
 *  - a rejected request (400/422) is split in halves until the bad points are isolated;
 *  - transient failures feed the circuit breaker; once it is open, failures are requeued
 *    without burning an attempt;
 *  - a batch whose connection was lost sends nothing more ("orphaned"): its claims are freed by
 *    sync_outbox_recover() after a grace longer than any request still running.
 */
#include "pg2qdrant/worker.h"
#include "pg2qdrant/backoff.h"
#include "pg2qdrant/batch.h"
#include "pg2qdrant/buf.h"
#include "pg2qdrant/errors.h"
#include "pg2qdrant/log.h"
#include "pg2qdrant/embedder.h"
#include "pg2qdrant/points.h"
#include "pg2qdrant/template.h"
#include "pg2qdrant/status_http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* OP_PRUNE: after a chunked upsert, delete the row's chunks beyond the new count. */
enum { OP_UPSERT = 0, OP_DELETE = 1, OP_RELEASE = 2, OP_PRUNE = 3 };

typedef struct {
  long long id;
  int rule;               /* index in cfg->rules, -1 when not configured */
  int op;
  char *row_key;
  char *payload;
  char *point;            /* built point JSON (upserts) */
  char *text;             /* rendered text to embed (text rules) */
  size_t text_len;
  int n_chunks;           /* chunked rules: points written for this row */
  size_t point_len;
  char point_id[P2Q_POINT_ID_MAX];
  int attempts, max_attempts;
  double created_at;
  const char *outcome;    /* NULL until decided */
  int delay_ms;
  char *error;
} wevent_t;

typedef struct wbatch_s {
  p2q_worker_t *w;
  wevent_t *ev;
  int n;
  int pending;            /* Qdrant requests in flight */
  int orphaned;
  int ack_tries;
  struct embctx_s *embeds;   /* embedding calls in flight (see embed_group) */
  struct wbatch_s *next;
} wbatch_t;

/* One embedding call for the upserts of one text rule in a batch. */
typedef struct embctx_s {
  wbatch_t *b;               /* NULL once the batch is gone: the result is dropped */
  struct embctx_s *next;
  int rule, n;
  int idx[];
} embctx_t;

typedef struct {
  wbatch_t *b;
  int rule, op, n;
  int idx[];
} wreq_t;

struct p2q_worker_s {
  p2q_daemon_t *d;
  const p2q_worker_config_t *cfg;
  p2q_pg_t *pg;
  char owner[64];
  int ready;
  char *types_param;      /* text[] literal of the event types */
  char limit_param[16];
  char lease_param[16];
  p2q_batch_t pol;
  p2q_backoff_t backoff;
  uv_timer_t linger_timer, retry_timer;
  uint64_t retry_due;     /* loop time the retry timer fires at, 0 = not armed */
  wbatch_t *batches;
  p2q_stats_t stats;
  int closing, open_handles;
  void (*close_cb)(void *);
  void *close_arg;
};

static void step(p2q_worker_t *w);
static void retry_cb(uv_timer_t *t);

/* ---- helpers ---------------------------------------------------------------------------- */

static void pg_array_elem(p2q_buf_t *b, const char *s, int first) {
  if (!first) p2q_buf_putc(b, ',');
  if (!s) { p2q_buf_puts(b, "NULL"); return; }
  p2q_buf_putc(b, '"');
  for (; *s; s++) {
    if (*s == '"' || *s == '\\') p2q_buf_putc(b, '\\');
    p2q_buf_putc(b, *s);
  }
  p2q_buf_putc(b, '"');
}

static int rule_index(const p2q_config_t *cfg, const char *name) {
  for (int i = 0; i < cfg->n_rules; i++)
    if (!strcmp(cfg->rules[i].name, name)) return i;
  return -1;
}

static void set_outcome(wevent_t *e, const char *outcome, int delay_ms, const char *err) {
  e->outcome = outcome;
  e->delay_ms = delay_ms;
  free(e->error);
  e->error = err ? strdup(err) : NULL;
}

static void batch_free(wbatch_t *b) {
  for (embctx_t *c = b->embeds; c; c = c->next) c->b = NULL;
  for (int i = 0; i < b->n; i++) {
    free(b->ev[i].text);
    free(b->ev[i].row_key);
    free(b->ev[i].payload);
    free(b->ev[i].point);
    free(b->ev[i].error);
  }
  free(b->ev);
  free(b);
}

static void batch_unlink(wbatch_t *b) {
  for (wbatch_t **p = &b->w->batches; *p; p = &(*p)->next)
    if (*p == b) { *p = b->next; return; }
}

/* ---- ack -------------------------------------------------------------------------------- */

static void batch_done(wbatch_t *b, int acked) {
  p2q_worker_t *w = b->w;
  uint64_t min_delay = 0;
  for (int i = 0; acked && i < b->n; i++) {
    wevent_t *e = &b->ev[i];
    if (!strcmp(e->outcome, "done")) { w->stats.applied++; p2q_ops_event_done(w->d->ops, e->created_at); }
    else if (!strcmp(e->outcome, "dead")) w->stats.dead++;
    else if (!strcmp(e->outcome, "requeue")) w->stats.requeued++;
    else if (!strcmp(e->outcome, "retry")) w->stats.retried++;
    if ((!strcmp(e->outcome, "retry") || !strcmp(e->outcome, "requeue")) &&
        (min_delay == 0 || (uint64_t)e->delay_ms < min_delay))
      min_delay = (uint64_t)e->delay_ms + 1;
  }
  batch_unlink(b);
  batch_free(b);
  p2q_batch_on_acked(&w->pol);
  if (min_delay && !w->closing) {
    uint64_t due = uv_now(w->d->loop) + min_delay;
    if (!w->retry_due || due < w->retry_due) {
      w->retry_due = due;
      uv_timer_start(&w->retry_timer, retry_cb, min_delay, 0);
    }
  }
  step(w);
  p2q_daemon_worker_idle(w->d);
}

static void batch_ack(wbatch_t *b);

static void ack_cb(p2q_pg_t *pg, PGresult *res, int err, const char *errmsg, void *arg) {
  wbatch_t *b = arg;
  if (err) {
    char q[512];
    P2Q_WARN("ack_failed", "worker=%s events=%d try=%d err=%s", p2q_worker_name(b->w), b->n,
             b->ack_tries, p2q_log_q(q, sizeof q, errmsg));
    /* a rejected statement (a deadlock victim, say) is sent again: until acked, the batch's rows
       stay leased. A lost connection orphans the batch; recovery frees its claims. */
    if (err == P2Q_EPG_QUERY && ++b->ack_tries < 20 && !b->w->closing) {
      batch_ack(b);
      return;
    }
  } else {
    b->w->stats.acks++;
  }
  batch_done(b, !err);
}

static void batch_ack(wbatch_t *b) {
  p2q_worker_t *w = b->w;
  p2q_buf_t ids = P2Q_BUF_INIT, rules = P2Q_BUF_INIT, keys = P2Q_BUF_INIT, outs = P2Q_BUF_INIT,
            delays = P2Q_BUF_INIT, errs = P2Q_BUF_INIT;
  if (b->orphaned || !w->ready) { batch_done(b, 0); return; }
  p2q_buf_putc(&ids, '{'); p2q_buf_putc(&rules, '{'); p2q_buf_putc(&keys, '{');
  p2q_buf_putc(&outs, '{'); p2q_buf_putc(&delays, '{'); p2q_buf_putc(&errs, '{');
  for (int i = 0; i < b->n; i++) {
    wevent_t *e = &b->ev[i];
    char num[32];
    snprintf(num, sizeof num, "%lld", e->id);
    pg_array_elem(&ids, e->op == OP_RELEASE ? NULL : num, i == 0);
    pg_array_elem(&rules, e->rule >= 0 ? w->d->cfg->rules[e->rule].name : NULL, i == 0);
    pg_array_elem(&keys, e->row_key, i == 0);
    pg_array_elem(&outs, e->outcome, i == 0);
    snprintf(num, sizeof num, "%d", e->delay_ms);
    pg_array_elem(&delays, num, i == 0);
    pg_array_elem(&errs, e->error, i == 0);
  }
  p2q_buf_putc(&ids, '}'); p2q_buf_putc(&rules, '}'); p2q_buf_putc(&keys, '}');
  p2q_buf_putc(&outs, '}'); p2q_buf_putc(&delays, '}'); p2q_buf_putc(&errs, '}');
  const char *params[] = {w->owner, ids.data, rules.data, keys.data, outs.data, delays.data, errs.data};
  int rc = p2q_buf_error(&ids) | p2q_buf_error(&keys) | p2q_buf_error(&errs);
  if (!rc) rc = p2q_pg_query(w->pg, w->d->ack_sql, 7, params, ack_cb, b);
  p2q_buf_free(&ids); p2q_buf_free(&rules); p2q_buf_free(&keys);
  p2q_buf_free(&outs); p2q_buf_free(&delays); p2q_buf_free(&errs);
  if (rc) batch_done(b, 0);
}

static void request_finished(wbatch_t *b) {
  if (--b->pending == 0) batch_ack(b);
}

/* ---- Qdrant writes -------------------------------------------------------------------------- */

static void send_request(wbatch_t *b, int rule, int op, const int *idx, int n);

static int retry_delay(p2q_worker_t *w, const wevent_t *e, long server_delay_ms) {
  uint64_t d = p2q_backoff_delay(&w->backoff, e->attempts > 0 ? (unsigned)e->attempts - 1 : 0);
  if (server_delay_ms > 0 && (uint64_t)server_delay_ms > d) d = (uint64_t)server_delay_ms;
  return d > 0x7fffffff ? 0x7fffffff : (int)d;
}

static void fail_idx(wbatch_t *b, const int *idx, int n, int transient, long server_delay_ms,
                     const char *msg) {
  p2q_worker_t *w = b->w;
  for (int i = 0; i < n; i++) {
    wevent_t *e = &b->ev[idx[i]];
    if (transient && (!p2q_breaker_allows(&w->d->breaker) || w->d->stopping)) {
      set_outcome(e, "requeue", retry_delay(w, e, server_delay_ms), msg); /* not the event's fault */
    } else if (e->attempts >= e->max_attempts) {
      set_outcome(e, "dead", 0, msg);
    } else {
      set_outcome(e, "retry", retry_delay(w, e, server_delay_ms), msg);
    }
  }
}

static void fail_events(wreq_t *r, int transient, long server_delay_ms, const char *msg) {
  fail_idx(r->b, r->idx, r->n, transient, server_delay_ms, msg);
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
    send_request(b, r->rule, OP_PRUNE, r->idx, r->n); /* the new chunks are in: drop the old extra ones */
  } else if (resp->cls == P2Q_QDRANT_OK) {
    for (int i = 0; i < r->n; i++) set_outcome(&b->ev[r->idx[i]], "done", 0, NULL);
    p2q_daemon_qdrant_result(w->d, 0);
  } else if (resp->cls == P2Q_QDRANT_PERMANENT && (resp->status == 400 || resp->status == 422) &&
             r->n > 1 && !b->orphaned && !w->d->forced) {
    int half = r->n / 2; /* isolate the bad points: each half is retried on its own */
    w->stats.splits++;
    p2q_daemon_qdrant_result(w->d, 0);
    send_request(b, r->rule, r->op, r->idx, half);
    send_request(b, r->rule, r->op, r->idx + half, r->n - half);
  } else {
    int transient = resp->cls == P2Q_QDRANT_RETRY || resp->err == P2Q_ECANCELED;
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
  request_finished(b);
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

static void send_request(wbatch_t *b, int rule, int op, const int *idx, int n) {
  p2q_worker_t *w = b->w;
  const p2q_rule_config_t *rc = &w->d->cfg->rules[rule];
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
    for (int i = 0; i < n; i++) set_outcome(&b->ev[idx[i]], "requeue", 1000, "out of memory");
  }
  p2q_buf_free(&body);
}

/* Build each upsert's point once; NULL vectors (and blank texts) become deletes, bad snapshots
   dead letters. Text rules keep their snapshot and rendered text for the embedding stage. */
static void prepare_events(wbatch_t *b) {
  p2q_worker_t *w = b->w;
  p2q_buf_t pt = P2Q_BUF_INIT;
  char why[256];
  for (int i = 0; i < b->n; i++) {
    wevent_t *e = &b->ev[i];
    if (e->op == OP_RELEASE) { set_outcome(e, "release", 0, NULL); continue; }
    if (e->rule < 0) { set_outcome(e, "dead", 0, "the event's rule is not configured"); continue; }
    const p2q_rule_config_t *r = &w->d->cfg->rules[e->rule];
    int isuuid = p2q_point_id(r->name, e->row_key, strlen(e->row_key), e->point_id);
    if (isuuid < 0) { set_outcome(e, "dead", 0, "row key is not a JSON object"); continue; }
    if (e->op != OP_UPSERT) continue;
    if (!e->payload) { set_outcome(e, "dead", 0, "upsert event without a snapshot"); continue; }
    p2q_buf_reset(&pt);
    int rc;
    if (r->text) { /* embedded later; a blank text means no vector, so no point */
      rc = p2q_template_render(r->text, e->payload, strlen(e->payload), &pt);
      if (rc == 1) { e->text_len = pt.len; e->text = p2q_buf_steal(&pt); continue; }
      if (rc == 0) e->op = OP_DELETE;
      else set_outcome(e, "dead", 0, rc == P2Q_ENOMEM ? "out of memory" : "text template does not fit the snapshot");
    } else {
      rc = p2q_point_build(&pt, r, e->point_id, isuuid, e->row_key, e->payload, strlen(e->payload),
                           NULL, 0, why, sizeof why);
      if (rc == 1) e->op = OP_DELETE; /* the row has no vector: it has no point */
      else if (rc < 0) set_outcome(e, "dead", 0, rc == P2Q_ENOMEM ? "out of memory" : why);
      else { e->point_len = pt.len; e->point = p2q_buf_steal(&pt); }
    }
    free(e->payload);
    e->payload = NULL;
  }
  p2q_buf_free(&pt);
}

/* Vectors are back: build the points of this group and send them. */
static void embedded(const p2q_embed_result_t *r, void *arg) {
  embctx_t *c = arg;
  wbatch_t *b = c->b;
  if (!b) { free(c); return; } /* the batch is gone (forced shutdown) */
  for (embctx_t **p = &b->embeds; *p; p = &(*p)->next)
    if (*p == c) { *p = c->next; break; }
  p2q_worker_t *w = b->w;
  const p2q_rule_config_t *rule = &w->d->cfg->rules[c->rule];
  p2q_ops_embed(w->d->ops, rule->embedder, r->seconds, r->tokens);
  if (r->err) {
    char q[600];
    if (r->transient) p2q_daemon_qdrant_result(w->d, 1); /* the downstream breaker */
    fail_idx(b, c->idx, c->n, r->transient, r->retry_after_ms, r->msg);
    P2Q_WARN("embed_failed", "worker=%s rule=%s texts=%d transient=%d err=%s", w->cfg->name, rule->name,
             c->n, r->transient, p2q_log_q(q, sizeof q, r->msg));
  } else {
    p2q_buf_t vec = P2Q_BUF_INIT, pt = P2Q_BUF_INIT;
    char why[256];
    int k = 0;
    size_t off = 0; /* first vector of text i */
    for (int i = 0; i < c->n; off += (size_t)(r->chunks ? r->chunks[i] : 1), i++) {
      wevent_t *e = &b->ev[c->idx[i]];
      if (r->status[i]) {
        snprintf(why, sizeof why, "text cannot be embedded: %s", p2q_strerror(r->status[i]));
        set_outcome(e, "dead", 0, why);
        continue;
      }
      p2q_buf_reset(&pt);
      int rc = 0, nv = r->chunks ? r->chunks[i] : 1;
      for (int j = 0; !rc && j < nv; j++) {
        char cid[P2Q_POINT_ID_MAX];
        p2q_buf_reset(&vec);
        p2q_vector_format(&vec, r->vecs + (off + (size_t)j) * (size_t)r->dim, r->dim);
        if (j) p2q_buf_putc(&pt, ',');
        if (r->chunks)
          rc = p2q_chunk_point_id(rule->name, e->row_key, j, cid) ? P2Q_ENOMEM
               : p2q_point_build_chunk(&pt, rule, cid, e->row_key, e->payload, strlen(e->payload),
                                       vec.data, vec.len, j, why, sizeof why);
        else
          rc = p2q_point_build(&pt, rule, e->point_id, e->point_id[0] == '"', e->row_key, e->payload,
                               strlen(e->payload), vec.data, vec.len, why, sizeof why);
      }
      e->n_chunks = nv;
      if (rc) { set_outcome(e, "dead", 0, rc == P2Q_ENOMEM ? "out of memory" : why); continue; }
      e->point_len = pt.len;
      e->point = p2q_buf_steal(&pt);
      c->idx[k++] = c->idx[i];
    }
    if (k) send_request(b, c->rule, OP_UPSERT, c->idx, k);
    p2q_buf_free(&vec);
    p2q_buf_free(&pt);
  }
  for (int i = 0; i < c->n; i++) {
    wevent_t *e = &b->ev[c->idx[i]];
    free(e->payload); e->payload = NULL;
    free(e->text); e->text = NULL;
  }
  free(c);
  request_finished(b);
}

/* Embed the texts of one rule's upserts; the points are sent when the vectors are back. */
static void embed_group(wbatch_t *b, int rule, const int *idx, int n) {
  p2q_worker_t *w = b->w;
  p2q_embedder_t *e = p2q_daemon_embedder(w->d, w->d->cfg->rules[rule].embedder);
  embctx_t *c = malloc(sizeof *c + sizeof(int) * (size_t)n);
  const char **texts = malloc(sizeof *texts * (size_t)n);
  size_t *lens = malloc(sizeof *lens * (size_t)n);
  int rc = P2Q_ENOMEM;
  if (c && texts && lens && e) {
    c->b = b; c->rule = rule; c->n = n;
    memcpy(c->idx, idx, sizeof(int) * (size_t)n);
    for (int i = 0; i < n; i++) { texts[i] = b->ev[idx[i]].text; lens[i] = b->ev[idx[i]].text_len; }
    const p2q_rule_config_t *rc_ = &w->d->cfg->rules[rule];
    rc = rc_->chunk_tokens > 0 /* both copy the texts */
             ? p2q_embedder_embed_chunked(e, texts, lens, n, (int)rc_->chunk_tokens, (int)rc_->chunk_overlap, embedded, c)
             : p2q_embedder_embed(e, texts, lens, n, embedded, c);
  } else if (!e) {
    rc = P2Q_EINVAL;
  }
  free(texts);
  free(lens);
  if (rc) {
    free(c);
    fail_idx(b, idx, n, 1, -1, rc == P2Q_EINVAL ? "the rule's embedder is not running" : "cannot start embedding");
    return;
  }
  c->next = b->embeds;
  b->embeds = c;
  b->pending++;
}

static void batch_start(wbatch_t *b) {
  int *idx = malloc(sizeof(int) * (size_t)(b->n ? b->n : 1));
  prepare_events(b);
  b->pending = 1; /* guard: the batch cannot finish while requests are being sent */
  for (int rule = 0; idx && rule < b->w->d->cfg->n_rules; rule++) {
    int text = b->w->d->cfg->rules[rule].text != NULL;
    for (int op = OP_UPSERT; op <= OP_DELETE; op++) {
      int n = 0;
      for (int i = 0; i < b->n; i++)
        if (!b->ev[i].outcome && b->ev[i].rule == rule && b->ev[i].op == op) idx[n++] = i;
      if (n && text && op == OP_UPSERT) embed_group(b, rule, idx, n);
      else if (n) send_request(b, rule, op, idx, n);
    }
  }
  if (!idx)
    for (int i = 0; i < b->n; i++)
      if (!b->ev[i].outcome) set_outcome(&b->ev[i], "requeue", 1000, "out of memory");
  free(idx);
  request_finished(b);
}

/* ---- claim ------------------------------------------------------------------------------- */

static void claim_cb(p2q_pg_t *pg, PGresult *res, int err, const char *errmsg, void *arg) {
  p2q_worker_t *w = arg;
  if (err) {
    char q[512];
    p2q_batch_on_claim_failed(&w->pol);
    if (err != P2Q_ECANCELED)
      P2Q_WARN("claim_failed", "worker=%s err=%s", w->cfg->name, p2q_log_q(q, sizeof q, errmsg));
    if (err == P2Q_EPG_QUERY && !w->closing && !w->retry_due) { /* e.g. a deadlock victim: look again soon */
      w->retry_due = uv_now(w->d->loop) + 100;
      uv_timer_start(&w->retry_timer, retry_cb, 100, 0);
    }
    step(w);
    p2q_daemon_worker_idle(w->d);
    return;
  }
  int rows = PQntuples(res), n = 0;
  wbatch_t *b = calloc(1, sizeof *b);
  if (b) b->ev = calloc((size_t)(rows ? rows : 1), sizeof *b->ev);
  for (int i = 0; b && b->ev && i < rows; i++) {
    const char *op = PQgetvalue(res, i, 2);
    if (!strcmp(op, "coalesced")) { w->stats.coalesced++; continue; }
    wevent_t *e = &b->ev[n++];
    e->id = atoll(PQgetvalue(res, i, 0));
    e->rule = rule_index(w->d->cfg, PQgetvalue(res, i, 1));
    e->op = !strcmp(op, "upsert") ? OP_UPSERT : !strcmp(op, "delete") ? OP_DELETE : OP_RELEASE;
    e->row_key = strdup(PQgetvalue(res, i, 3));
    e->payload = PQgetisnull(res, i, 4) ? NULL : strdup(PQgetvalue(res, i, 4));
    e->attempts = atoi(PQgetvalue(res, i, 5));
    e->max_attempts = atoi(PQgetvalue(res, i, 6));
    e->created_at = atof(PQgetvalue(res, i, 7));
    if (e->op != OP_RELEASE) w->stats.claimed++;
  }
  w->stats.claims++;
  if (b && (!b->ev || n == 0)) { free(b->ev); free(b); b = NULL; }
  p2q_batch_on_claimed(&w->pol, rows, b != NULL);
  if (b) {
    b->w = w;
    b->n = n;
    b->next = w->batches;
    w->batches = b;
    w->stats.batches++;
    p2q_ops_batch(w->d->ops, n);
    P2Q_DEBUG("claimed", "worker=%s events=%d rows=%d", w->cfg->name, n, rows);
    batch_start(b);
  }
  step(w);
  p2q_daemon_worker_idle(w->d);
}

static void claim(p2q_worker_t *w) {
  const char *params[] = {w->owner, w->types_param, w->cfg->routing_key, w->limit_param, w->lease_param};
  if (p2q_pg_query(w->pg, w->d->claim_sql, 5, params, claim_cb, w) == 0) p2q_batch_on_claim_sent(&w->pol);
}

static void linger_cb(uv_timer_t *t) {
  p2q_worker_t *w = t->data;
  p2q_batch_on_linger_done(&w->pol);
  step(w);
}

static void retry_cb(uv_timer_t *t) {
  p2q_worker_t *w = t->data;
  w->retry_due = 0;
  p2q_worker_wake(w);
}

static void step(p2q_worker_t *w) {
  w->pol.paused = !w->ready || w->closing || w->d->stopping || !p2q_breaker_allows(&w->d->breaker);
  switch (p2q_batch_next(&w->pol)) {
  case P2Q_BATCH_CLAIM: claim(w); break;
  case P2Q_BATCH_LINGER:
    p2q_batch_on_linger_started(&w->pol);
    uv_timer_start(&w->linger_timer, linger_cb, (uint64_t)w->pol.linger_ms, 0);
    break;
  case P2Q_BATCH_WAIT: break;
  }
}

void p2q_worker_wake(p2q_worker_t *w) {
  p2q_batch_on_wake(&w->pol);
  step(w);
}

/* ---- connection ------------------------------------------------------------------------- */

static void owner_cb(p2q_pg_t *pg, PGresult *res, int err, const char *errmsg, void *arg) {
  p2q_worker_t *w = arg;
  if (err || PQntuples(res) != 1) {
    char q[512];
    P2Q_ERROR("worker_owner_failed", "worker=%s err=%s", w->cfg->name, p2q_log_q(q, sizeof q, errmsg));
    return; /* the connection is retried by its own reconnect logic on loss; else stays idle */
  }
  snprintf(w->owner, sizeof w->owner, "%s", PQgetvalue(res, 0, 0));
  w->ready = 1;
  P2Q_INFO("worker_connected", "worker=%s owner=%s", w->cfg->name, w->owner);
  p2q_worker_wake(w); /* catch up on whatever arrived while we were away */
}

static void on_connect(p2q_pg_t *pg, void *arg) {
  p2q_worker_t *w = arg;
  if (p2q_pg_connect_count(pg) > 1) w->d->pg_reconnects++;
  /* the owner id ties claims to this backend, so a crash is recognised by sync_outbox_recover */
  p2q_pg_query(pg, "SELECT a.pid::text || '.' || (extract(epoch FROM a.backend_start) * 1000000)::bigint::text"
                   " FROM pg_stat_activity a WHERE a.pid = pg_backend_pid()", 0, NULL, owner_cb, w);
}

static void on_disconnect(p2q_pg_t *pg, int err, const char *errmsg, void *arg) {
  p2q_worker_t *w = arg;
  char q[512];
  w->ready = 0;
  w->pol.claiming = 0;
  for (wbatch_t *b = w->batches; b; b = b->next) b->orphaned = 1;
  P2Q_WARN("worker_disconnected", "worker=%s err=%s", w->cfg->name, p2q_log_q(q, sizeof q, errmsg));
}

int p2q_worker_new(p2q_daemon_t *d, const p2q_worker_config_t *cfg, p2q_worker_t **out) {
  p2q_worker_t *w = calloc(1, sizeof *w);
  p2q_buf_t types = P2Q_BUF_INIT;
  char name[P2Q_NAME_MAX + 32];
  int rc = P2Q_ENOMEM;
  if (!w) return rc;
  w->d = d;
  w->cfg = cfg;
  p2q_batch_init(&w->pol, (int)cfg->batch_size, (int)cfg->max_inflight, cfg->linger_ms);
  p2q_backoff_init(&w->backoff, (uint64_t)d->cfg->retry_min_ms, (uint64_t)d->cfg->retry_max_ms, 0);
  snprintf(w->limit_param, sizeof w->limit_param, "%d", (int)cfg->batch_size);
  snprintf(w->lease_param, sizeof w->lease_param, "%lld", (long long)d->cfg->lease_ms);
  p2q_buf_putc(&types, '{');
  for (int i = 0; i < cfg->event_types.n; i++) pg_array_elem(&types, cfg->event_types.items[i], i == 0);
  p2q_buf_putc(&types, '}');
  if (p2q_buf_error(&types)) goto fail;
  w->types_param = p2q_buf_steal(&types);
  snprintf(name, sizeof name, "pg2qdrant/worker-%s", cfg->name);
  p2q_pg_options_t o = {.conninfo = d->cfg->pg_conninfo, .name = name,
                        .connect_timeout_ms = (uint64_t)d->cfg->pg_connect_timeout_ms,
                        .reconnect_max_ms = 10000, .on_connect = on_connect,
                        .on_disconnect = on_disconnect, .arg = w};
  if ((rc = p2q_pg_new(d->loop, &o, &w->pg))) goto fail;
  uv_timer_init(d->loop, &w->linger_timer);
  uv_timer_init(d->loop, &w->retry_timer);
  w->linger_timer.data = w->retry_timer.data = w;
  *out = w;
  return 0;
fail:
  p2q_buf_free(&types);
  free(w->types_param);
  free(w);
  return rc;
}

int p2q_worker_claims(const p2q_worker_t *w, const char *event_type) {
  if (!event_type || !*event_type) return 1;
  for (int i = 0; i < w->cfg->event_types.n; i++)
    if (!strcmp(w->cfg->event_types.items[i], event_type)) return 1;
  return 0;
}

int p2q_worker_idle(const p2q_worker_t *w) { return !w->batches && !w->pol.claiming; }

const p2q_stats_t *p2q_worker_stats(const p2q_worker_t *w) { return &w->stats; }

const char *p2q_worker_name(const p2q_worker_t *w) { return w->cfg->name; }

void p2q_worker_reconfigure(p2q_worker_t *w, const p2q_worker_config_t *cfg) {
  w->cfg = cfg;
  w->pol.batch_size = cfg->batch_size > 0 ? (int)cfg->batch_size : 1; /* as p2q_batch_init */
  w->pol.max_inflight = cfg->max_inflight > 0 ? (int)cfg->max_inflight : 1;
  w->pol.linger_ms = cfg->linger_ms > 0 ? cfg->linger_ms : 0;
  p2q_backoff_init(&w->backoff, (uint64_t)w->d->cfg->retry_min_ms, (uint64_t)w->d->cfg->retry_max_ms, 0);
  snprintf(w->limit_param, sizeof w->limit_param, "%d", (int)cfg->batch_size);
  snprintf(w->lease_param, sizeof w->lease_param, "%lld", (long long)w->d->cfg->lease_ms);
  if (!w->closing) step(w); /* a larger max_inflight may allow a claim now */
}

static void handle_closed(uv_handle_t *h) {
  p2q_worker_t *w = h->data;
  if (--w->open_handles > 0) return;
  void (*cb)(void *) = w->close_cb;
  void *arg = w->close_arg;
  while (w->batches) { wbatch_t *b = w->batches; w->batches = b->next; batch_free(b); }
  free(w->types_param);
  free(w);
  if (cb) cb(arg);
}

static void pg_closed(p2q_pg_t *pg, void *arg) { handle_closed((uv_handle_t *)&((p2q_worker_t *)arg)->linger_timer); }

void p2q_worker_close(p2q_worker_t *w, void (*cb)(void *arg), void *arg) {
  if (w->closing) return;
  w->closing = 1;
  w->close_cb = cb;
  w->close_arg = arg;
  w->open_handles = 3;
  uv_close((uv_handle_t *)&w->linger_timer, handle_closed);
  uv_close((uv_handle_t *)&w->retry_timer, handle_closed);
  if (p2q_pg_close(w->pg, pg_closed, w)) handle_closed((uv_handle_t *)&w->linger_timer);
}

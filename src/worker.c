/*
 * worker.c — a pull worker: claim → (embed, write: worker_embed.c, worker_write.c) → ack, on the
 * loop thread.
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
#include "worker_internal.h"
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

/* Replace every byte that is not part of a well-formed UTF-8 sequence with '?': an error text
   cut mid-character, or a proxy's non-UTF-8 body, must not make the whole ack fail. */
static void utf8_scrub(char *s) {
  unsigned char *p = (unsigned char *)s;
  while (*p) {
    int n = *p < 0x80 ? 1 : (*p & 0xE0) == 0xC0 ? 2 : (*p & 0xF0) == 0xE0 ? 3 : (*p & 0xF8) == 0xF0 ? 4 : 0;
    int ok = n > 0 && !(n == 2 && *p < 0xC2) && !(n == 4 && *p > 0xF4);
    for (int k = 1; ok && k < n; k++) ok = (p[k] & 0xC0) == 0x80;
    if (ok && n == 3) ok = !(p[0] == 0xE0 && p[1] < 0xA0) && !(p[0] == 0xED && p[1] >= 0xA0);
    if (ok && n == 4) ok = !(p[0] == 0xF0 && p[1] < 0x90) && !(p[0] == 0xF4 && p[1] >= 0x90);
    if (!ok) { *p++ = '?'; continue; }
    p += n;
  }
}

void p2q_wk_set_outcome(wevent_t *e, const char *outcome, int delay_ms, const char *err) {
  e->outcome = outcome;
  e->delay_ms = delay_ms;
  free(e->error);
  e->error = err ? strdup(err) : NULL;
  if (e->error) utf8_scrub(e->error);
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

void p2q_wk_request_finished(wbatch_t *b) {
  if (--b->pending == 0) batch_ack(b);
}

static void batch_start(wbatch_t *b) {
  int *idx = malloc(sizeof(int) * (size_t)(b->n ? b->n : 1));
  p2q_wk_prepare(b);
  b->pending = 1; /* guard: the batch cannot finish while requests are being sent */
  for (int rule = 0; idx && rule < b->w->d->cfg->n_rules; rule++) {
    int text = b->w->d->cfg->rules[rule].text != NULL;
    for (int op = OP_UPSERT; op <= OP_DELETE; op++) {
      int n = 0;
      for (int i = 0; i < b->n; i++)
        if (!b->ev[i].outcome && b->ev[i].rule == rule && b->ev[i].op == op) idx[n++] = i;
      if (n && text && op == OP_UPSERT) p2q_wk_embed(b, rule, idx, n);
      else if (n) p2q_wk_send(b, rule, op, idx, n);
    }
  }
  if (!idx)
    for (int i = 0; i < b->n; i++)
      if (!b->ev[i].outcome) p2q_wk_set_outcome(&b->ev[i], "requeue", 1000, "out of memory");
  free(idx);
  p2q_wk_request_finished(b);
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
    b->claimed_at = uv_now(w->d->loop);
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

/* Are the breakers of every embedder this worker's rules use closed? */
static int embedders_allow(const p2q_worker_t *w) {
  const p2q_config_t *cfg = w->d->cfg;
  for (int i = 0; i < cfg->n_rules; i++) {
    const p2q_rule_config_t *r = &cfg->rules[i];
    if (r->embedder && p2q_worker_claims(w, r->event_type ? r->event_type : r->name) &&
        !p2q_daemon_embedder_allows(w->d, r->embedder))
      return 0;
  }
  return 1;
}

static void step(p2q_worker_t *w) {
  w->pol.paused = !w->ready || w->closing || w->d->stopping || !p2q_breaker_allows(&w->d->breaker) ||
                  !embedders_allow(w);
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


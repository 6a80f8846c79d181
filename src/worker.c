/*
 * worker.c — a pull worker: claim → (embed, write: worker_embed.c, worker_write.c) → ack, on the
 * loop thread, reaching the daemon only through its p2q_worker_ctx_t.
 *
 * Owns: one outbox session (its claims and acks, in order), a linger timer and a retry timer,
 * and the batches between claim and ack. A batch holds at most one event per source row (the
 * claim coalesces), so its Qdrant requests can run concurrently. Invariants:
 *  - every claimed event gets exactly one outcome in the ack (done/retry/dead/requeue/release);
 *  - the claim asks only for the event types whose rules' targets (host, collection, embedder)
 *    the health gate allows: a sick target stops its rules, the others keep flowing;
 *  - an attempt is used only for the event's own fault (classify.h); a failure of a target
 *    requeues the events with the wait the health module gives;
 *  - a batch whose connection was lost sends nothing more ("orphaned"): its claims are freed by
 *    sync_outbox_recover() after a grace longer than any request still running;
 *  - a finished batch's ack may wait up to linger_ms (`deferred`, at most one) to ride on the
 *    next claim: one statement and one transaction instead of two (sync_outbox_ack_claim, whose
 *    ack runs first); its slot is given back to the policy at once (`released`). With
 *    idle_linger_ms the first claimer's may wait until the idle linger since its last claim is
 *    over (a NOTIFY in it makes the claim that ends it: p2q_batch_ack_wait_more), never past
 *    half the batch's lease. A failed
 *    ack+claim sends the ack again alone. Never while stopping, never for an ack sent again.
 *
 * Claimers: a worker claims through `claimers` outbox sessions (config: [worker.*] claimers), each
 * a p2q_worker_t of its own (its own session, policy, timers and batches), chained from the first
 * (`head`, the one the daemon holds; the others are its `next_claimer`s). Only the first answers
 * wake-ups and the claimers' retry timers; the others are standby policies (batch.h) that claim
 * while a backlog lasts: two full claims in a row of any of them turn the others on, unless a 429
 * paces one of the worker's targets (ctx.paced: a rate limit sees one session's batches). An ack
 * settles older events that another claimer's last claim was held back behind: it makes that one
 * claim again, as its own ack would. One PostgreSQL backend does one claim at a time, so a drain is as fast as
 * one backend's claims unless several sessions claim; at low rates the standby sessions stay idle.
 * Order per row across them is the claim's rule (an older event in flight holds its row's newer
 * ones: sql/functions.sql), as between replicas.
 */
#include "worker_batch.h"
#include "pg2qdrant/errors.h"
#include "pg2qdrant/log.h"
#include "pg2qdrant/vector_bin.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void step(p2q_worker_t *w);
static void others_step(p2q_worker_t *w, void (*event)(p2q_batch_t *));
static void retry_cb(uv_timer_t *t);
static void claim_cb(void *arg, int err, const char *errmsg, const p2q_claim_row_t *rows, int n_rows);

/* ---- helpers ---------------------------------------------------------------------------- */

static int rule_index(const p2q_config_t *cfg, const char *name) {
  for (int i = 0; i < cfg->n_rules; i++)
    if (!strcmp(cfg->rules[i].name, name)) return i;
  return -1;
}

static void batch_unlink(wbatch_t *b) {
  for (wbatch_t **p = &b->w->batches; *p; p = &(*p)->next)
    if (*p == b) { *p = b->next; return; }
}

static void worker_idle(p2q_worker_t *w) {
  if (w->ctx.idle) w->ctx.idle(w->ctx.arg);
}

/* ---- ack -------------------------------------------------------------------------------- */

static void arm_retry(p2q_worker_t *w, uint64_t delay) {
  uint64_t due = WNOW(w) + delay;
  if (w->closing) return;
  if (!w->retry_due || due < w->retry_due) {
    w->retry_due = due;
    uv_timer_start(&w->retry_timer, retry_cb, delay, 0);
  }
}

static void batch_done(wbatch_t *b, int acked) {
  p2q_worker_t *w = b->w;
  uint64_t min_delay = 0;
  for (int i = 0; acked && i < b->n; i++) {
    wevent_t *e = &b->ev[i];
    if (p2q_wk_is_twin(b, e)) continue; /* worker_dual.c: folded into its event */
    switch (e->outcome) {
    case P2Q_OUTCOME_DONE:
      w->st->applied++;
      if (w->ctx.on_done) w->ctx.on_done(w->ctx.arg, e->created_at);
      break;
    case P2Q_OUTCOME_DEAD: w->st->dead++; break;
    case P2Q_OUTCOME_REQUEUE: w->st->requeued++; break;
    case P2Q_OUTCOME_RETRY: w->st->retried++; break;
    default: break;
    }
    if ((e->outcome == P2Q_OUTCOME_RETRY || e->outcome == P2Q_OUTCOME_REQUEUE) &&
        (min_delay == 0 || (uint64_t)e->delay_ms < min_delay))
      min_delay = (uint64_t)e->delay_ms + 1;
  }
  batch_unlink(b);
  int released = b->released;
  p2q_wk_batch_free(b);
  if (!released) p2q_batch_on_acked(&w->pol);
  if (min_delay) arm_retry(w, min_delay);
  step(w);
  if (acked) others_step(w, p2q_batch_on_sibling_acked); /* its leases are free for them too */
  worker_idle(w);
}

static void ack_cb(void *arg, int err, const char *errmsg) {
  wbatch_t *b = arg;
  if (err) {
    char q[512];
    P2Q_WARN("ack_failed", "worker=%s events=%d try=%d err=%s", p2q_worker_name(b->w), b->n,
             b->ack_tries, p2q_log_q(q, sizeof q, errmsg));
    /* a rejected statement (a deadlock victim, say) is sent again: until acked, the batch's rows
       stay leased. A lost connection orphans the batch; recovery frees its claims. */
    if (err == P2Q_EPG_QUERY && ++b->ack_tries < 20 && !b->w->closing) {
      p2q_wk_ack(b);
      return;
    }
  } else {
    b->w->st->acks++;
  }
  batch_done(b, !err);
}

/* The batch's outcomes as ack items, twins of a dual write left out (pointers into b and the
   config; *n items); NULL: out of memory. */
static p2q_ack_item_t *ack_items(const wbatch_t *b, int *n) {
  const p2q_config_t *cfg = WCFG(b->w);
  p2q_ack_item_t *items = calloc((size_t)(b->n ? b->n : 1), sizeof *items);
  *n = 0;
  for (int i = 0; items && i < b->n; i++) {
    const wevent_t *e = &b->ev[i];
    if (p2q_wk_is_twin(b, e)) continue;
    items[(*n)++] = (p2q_ack_item_t){.id = e->id, .rule = e->rule >= 0 ? cfg->rules[e->rule].name : NULL,
                                     .row_key = e->row_key, .outcome = e->outcome, .delay_ms = e->delay_ms,
                                     .error = e->error};
  }
  return items;
}

static void send_ack(wbatch_t *b) {
  p2q_worker_t *w = b->w;
  if (b->orphaned || !w->ready) { batch_done(b, 0); return; }
  int n;
  p2q_ack_item_t *items = ack_items(b, &n);
  int rc = items ? w->ctx.ack(w->conn, items, n, ack_cb, b) : P2Q_ENOMEM;
  free(items);
  if (rc) batch_done(b, 0);
}

/* The deferred ack goes alone now (its wait is over, or another batch finished). */
static void flush_deferred(p2q_worker_t *w) {
  wbatch_t *b = w->deferred;
  if (!b) return;
  w->deferred = NULL;
  uv_timer_stop(&w->ack_timer);
  send_ack(b);
}

/* The deferred ack's wait is over, unless an idle linger's claim may still come to carry it
   (p2q_batch_ack_wait_more): then it waits for that claim, never past half its batch's lease. */
static void ack_timer_cb(uv_timer_t *t) {
  p2q_worker_t *w = t->data;
  const wbatch_t *b = w->deferred;
  uint64_t now = WNOW(w);
  int64_t more = 0;
  if (b && !b->orphaned && w->ready && !w->closing && !w->pol.paused && !w->ctx.stopping(w->ctx.arg))
    more = p2q_batch_ack_wait_more(&w->pol, now);
  uint64_t limit = b ? b->claimed_at + (uint64_t)WCFG(w)->lease_ms / 2 : 0;
  if (more > 0 && now + (uint64_t)more <= limit) uv_timer_start(&w->ack_timer, ack_timer_cb, (uint64_t)more, 0);
  else flush_deferred(w);
}

void p2q_wk_ack(wbatch_t *b) {
  p2q_worker_t *w = b->w;
  if (b->orphaned || !w->ready) { batch_done(b, 0); return; }
  p2q_wk_dual_merge(b);
  if (w->pol.standby && !w->pol.active) flush_deferred(w); /* an older one waits for nothing either */
  if (!w->ctx.ack_claim || w->pol.linger_ms <= 0 || b->ack_tries > 0 || w->closing || w->ctx.stopping(w->ctx.arg) ||
      (w->pol.standby && !w->pol.active)) { /* a standby claimer gone quiet claims nothing to ride on */
    send_ack(b);
    return;
  }
  flush_deferred(w); /* at most one waits */
  w->deferred = b;
  b->released = 1;
  p2q_batch_on_acked(&w->pol); /* a claim wanted now (a held row, a wake-up) takes the ack along */
  uv_timer_start(&w->ack_timer, ack_timer_cb, (uint64_t)w->pol.linger_ms, 0);
  step(w);
}

/* The answer to an ack riding on a claim: an error means neither happened. */
static void ack_claim_cb(void *arg, int err, const char *errmsg, const p2q_claim_row_t *rows, int n_rows) {
  p2q_worker_t *w = arg;
  wbatch_t *b = w->riding;
  w->riding = NULL;
  if (b && err) {
    char q[512];
    P2Q_WARN("ack_failed", "worker=%s events=%d try=%d err=%s", p2q_worker_name(w), b->n, b->ack_tries,
             p2q_log_q(q, sizeof q, errmsg));
    if (err == P2Q_EPG_QUERY && ++b->ack_tries < 20 && !w->closing) send_ack(b); /* alone */
    else batch_done(b, 0);
  } else if (b) {
    w->st->acks++;
    w->st->acks_riding++;
    batch_done(b, 1);
  }
  claim_cb(w, err, errmsg, rows, n_rows);
}

static void batch_start(wbatch_t *b) {
  const p2q_config_t *cfg = WCFG(b->w);
  int *idx = malloc(sizeof(int) * (size_t)(b->n ? b->n : 1));
  p2q_wk_prepare(b);
  b->pending = 1; /* guard: the batch cannot finish while requests are being sent */
  for (int rule = 0; idx && rule < cfg->n_rules; rule++) {
    int text = cfg->rules[rule].text != NULL && cfg->rules[rule].embedder != NULL; /* else keyword-only */
    for (p2q_op_t op = P2Q_OP_UPSERT; op <= P2Q_OP_DELETE; op++) {
      int n = 0;
      for (int i = 0; i < b->n; i++)
        if (!b->ev[i].outcome && b->ev[i].rule == rule && b->ev[i].op == op) idx[n++] = i;
      if (n && text && op == P2Q_OP_UPSERT) p2q_wk_reuse(b, rule, idx, n); /* unchanged texts skip the embedder */
      else if (n) p2q_wk_send(b, rule, op, idx, n);
    }
  }
  if (!idx)
    for (int i = 0; i < b->n; i++)
      if (!b->ev[i].outcome) p2q_wk_set_outcome(&b->ev[i], P2Q_OUTCOME_REQUEUE, 1000, "out of memory");
  free(idx);
  p2q_wk_request_finished(b);
}

/* ---- claim ------------------------------------------------------------------------------- */

/* Does the row's vector go straight into its point's request body (p2q_wk_vector_direct), not
   into its snapshot? */
static int row_direct(const p2q_config_t *cfg, const p2q_claim_row_t *r) {
  return r->vec && r->op == P2Q_OP_UPSERT && r->rule && p2q_wk_vector_direct(cfg, rule_index(cfg, r->rule));
}

/* Room for the claim's row keys and snapshots in b->snaps: one allocation for the batch instead
   of one per event (~8 KB each with a 384-float vector: malloc and free were ~8 % of the drain's CPU). The
   room a vector's text may take only where it is spliced in: reserved, it would make the batch's
   buffers large enough for glibc to give their pages back at each free (the heap's top beyond its
   trim threshold) and fault them in again (perf stat: 29,302 page faults per 100,000-event drain
   instead of 1,562). */
static void snaps_reserve(wbatch_t *b, const p2q_claim_row_t *rows, int n_rows, const p2q_config_t *cfg) {
  size_t need = 0;
  for (int i = 0; i < n_rows; i++) {
    need += strlen(rows[i].row_key) + 1;
    if (rows[i].payload)
      need += strlen(rows[i].payload) + 1 +
              (rows[i].vec && !row_direct(cfg, &rows[i])
                   ? p2q_vector_text_max((const unsigned char *)rows[i].vec, rows[i].vec_len)
                   : 0);
  }
  p2q_buf_reserve(&b->snaps, need);
}

/* str appended to snaps with its NUL: where (the buffer may still move), or SIZE_MAX (out of
   memory). */
static size_t snaps_put(p2q_buf_t *snaps, const char *str) {
  size_t from = snaps->len;
  p2q_buf_append(snaps, str, strlen(str) + 1);
  return p2q_buf_error(snaps) ? SIZE_MAX : from;
}

/* e's snapshot from its claim row, appended to b->snaps with its NUL; *at = where (the buffer
   may still move: the pointers are set once every snapshot is in), or SIZE_MAX: none. */
static void event_snapshot(wbatch_t *b, wevent_t *e, const p2q_claim_row_t *r, const p2q_config_t *cfg, size_t *at) {
  char why[256];
  *at = SIZE_MAX;
  size_t from = b->snaps.len;
  if (!r->payload) return;
  if (row_direct(cfg, r)) { /* into the request body */
    p2q_buf_puts(&b->snaps, r->payload);
    e->vbin = (const unsigned char *)r->vec, e->vbin_len = r->vec_len;
    e->vroom = p2q_vector_text_max(e->vbin, e->vbin_len);
  } else if (r->vec) { /* the vector back into its snapshot (vector_bin.h) */
    const char *col = e->rule >= 0 ? cfg->rules[e->rule].vector_column : NULL;
    int rc = p2q_vector_event_payload(&b->snaps, col, r->payload, (const unsigned char *)r->vec, r->vec_len, &e->vec,
                                      why, sizeof why);
    if (rc == P2Q_EBADJSON) e->error = strdup(why); /* payload NULL: p2q_wk_prepare dead-letters the event with it */
    if (rc) return;
  } else {
    p2q_buf_puts(&b->snaps, r->payload);
  }
  e->payload_len = b->snaps.len - from;
  p2q_buf_append(&b->snaps, "", 1);
  if (!p2q_buf_error(&b->snaps)) *at = from;
}

static void claim_cb(void *arg, int err, const char *errmsg, const p2q_claim_row_t *rows, int n_rows) {
  p2q_worker_t *w = arg;
  if (err) {
    char q[512];
    p2q_batch_on_claim_failed(&w->pol);
    if (err != P2Q_ECANCELED)
      P2Q_WARN("claim_failed", "worker=%s claimer=%d err=%s", w->cfg->name, w->claimer, p2q_log_q(q, sizeof q, errmsg));
    if (err == P2Q_EPG_QUERY && !w->retry_due) arm_retry(w, 100); /* a deadlock victim: look again soon */
    step(w);
    worker_idle(w);
    return;
  }
  const p2q_config_t *cfg = WCFG(w);
  int n = 0, held = 0, held_rows = 0;
  wbatch_t *b = calloc(1, sizeof *b);
  size_t *at = malloc(sizeof *at * 2 * (size_t)(n_rows ? n_rows : 1)), *kat = at ? at + n_rows : NULL;
  if (b && at) b->ev = calloc((size_t)(n_rows ? n_rows : 1), sizeof *b->ev);
  if (b && b->ev) snaps_reserve(b, rows, n_rows, cfg);
  for (int i = 0; b && b->ev && i < n_rows; i++) {
    const p2q_claim_row_t *r = &rows[i];
    if (r->op == P2Q_OP_COALESCED) { w->st->coalesced++; continue; }
    if (r->op == P2Q_OP_HELD) { held = (int)r->id; held_rows++; continue; }
    wevent_t *e = &b->ev[n++];
    e->id = r->id;
    e->rule = rule_index(cfg, r->rule);
    e->op = r->op;
    kat[n - 1] = snaps_put(&b->snaps, r->row_key); /* in b->snaps too: no malloc and free per event */
    if (kat[n - 1] == SIZE_MAX && (e->row_key = strdup(r->row_key)) != NULL) e->key_owned = 1;
    if (r->bad_op) { /* payload NULL: p2q_wk_prepare dead-letters the event with the error */
      char why[128], op[48];
      size_t k = 0;
      for (const char *c = r->bad_op; *c && k + 1 < sizeof op; c++) op[k++] = *c >= 0x20 && *c < 0x7f ? *c : '?';
      op[k] = 0;
      snprintf(why, sizeof why, "the event's op '%s%s' is neither upsert nor delete", op, r->bad_op[k] ? "..." : "");
      e->error = strdup(why);
      at[n - 1] = SIZE_MAX;
    } else {
      event_snapshot(b, e, r, cfg, &at[n - 1]);
    }
    e->attempts = r->attempts;
    e->max_attempts = r->max_attempts;
    e->created_at = r->created_at;
    if (e->op != P2Q_OP_RELEASE) w->st->claimed++;
  }
  w->st->claims++;
  for (int i = 0; b && b->ev && i < n; i++) {
    wevent_t *e = &b->ev[i];
    if (at[i] != SIZE_MAX) e->payload = b->snaps.data + at[i];
    if (kat[i] != SIZE_MAX) e->row_key = b->snaps.data + kat[i];
  }
  free(at);
  if (b && (!b->ev || n == 0)) { p2q_wk_batch_free(b); b = NULL; }
  n_rows -= held_rows; /* the 'held' row is no event: a claim of only that made no progress */
  p2q_batch_on_claimed(&w->pol, n_rows, b != NULL, held);
  int64_t again = p2q_batch_held_delay(&w->pol);
  if (again) arm_retry(w, (uint64_t)again); /* held back behind another claimer's lease */
  if (w->pol.standby && !w->pol.active) flush_deferred(w); /* quiet now: no claim to ride on */
  if (p2q_batch_siblings_wanted(&w->pol)) /* a backlog: the worker's other claimers join in (or go on) */
    others_step(w, p2q_batch_on_backlog);
  if (b) {
    b->w = w;
    b->ack = p2q_wk_ack;
    b->n = n;
    b->claimed_at = w->claim_sent; /* not now: the claim may have waited on locks or the loop */
    b->epoch = w->claim_epoch;
    b->next = w->batches;
    w->batches = b;
    w->st->batches++;
    if (w->ctx.on_batch) w->ctx.on_batch(w->ctx.arg, n);
    P2Q_DEBUG("claimed", "worker=%s events=%d rows=%d", w->cfg->name, n, n_rows);
    p2q_wk_dual_fanout(b); /* a rule being re-embedded: its events also to the old version */
    batch_start(b);
  }
  step(w);
  worker_idle(w);
}

/* May events of this type be claimed now: every rule they feed has healthy targets? */
static int type_allowed(const p2q_worker_t *w, const p2q_config_t *cfg, const char *type) {
  for (int i = 0; i < cfg->n_rules; i++) {
    const p2q_rule_config_t *r = &cfg->rules[i];
    if (!strcmp(r->event_type ? r->event_type : r->name, type) && !w->ctx.may_claim(w->ctx.arg, i)) return 0;
  }
  return 1;
}

/* The event types this worker may claim now (NULL-free list into cfg); returns how many. */
static int allowed_types(const p2q_worker_t *w, const char **out) {
  const p2q_config_t *cfg = WCFG(w);
  int n = 0;
  for (int i = 0; i < w->cfg->event_types.n; i++)
    if (type_allowed(w, cfg, w->cfg->event_types.items[i])) out[n++] = w->cfg->event_types.items[i];
  return n;
}

static void claim(p2q_worker_t *w) {
  const char **types = w->types;
  int n = allowed_types(w, types);
  const p2q_config_t *cfg = WCFG(w);
  wbatch_t *b = w->deferred;
  w->claim_epoch = WLIVE(w);
  w->claim_sent = WNOW(w);
  if (!n) return;
  if (b && !b->orphaned) { /* the deferred ack rides along */
    int n_items;
    p2q_ack_item_t *items = ack_items(b, &n_items);
    if (!items || w->ctx.ack_claim(w->conn, items, n_items, types, n, w->cfg->routing_key, (int)w->cfg->batch_size,
                                   cfg->lease_ms, ack_claim_cb, w) != 0) {
      free(items);
      return; /* the ack timer sends it alone; a later step claims */
    }
    free(items);
    w->deferred = NULL;
    uv_timer_stop(&w->ack_timer);
    w->riding = b;
    p2q_batch_on_claim_sent_at(&w->pol, w->claim_sent);
    return;
  }
  if (w->ctx.claim(w->conn, types, n, w->cfg->routing_key, (int)w->cfg->batch_size, cfg->lease_ms, claim_cb,
                   w) == 0)
    p2q_batch_on_claim_sent_at(&w->pol, w->claim_sent);
}

static void linger_cb(uv_timer_t *t) {
  p2q_worker_t *w = t->data;
  p2q_batch_on_linger_done(&w->pol);
  step(w);
}

/* Events this claimer gave back (retry, requeue) or saw held back are due: the worker's first
   claimer looks for them (a standby one may be out: quiet, or kept out by a 429's pacing). */
static void retry_cb(uv_timer_t *t) {
  p2q_worker_t *w = t->data;
  w->retry_due = 0;
  p2q_batch_on_due(&w->head->pol);
  step(w->head);
}

/* Is a target of one of this worker's rules held back by a 429 (health.h)? */
static int worker_paced(const p2q_worker_t *w) {
  const p2q_config_t *cfg = WCFG(w);
  for (int i = 0; w->ctx.paced && i < cfg->n_rules; i++)
    if (p2q_worker_claims(w, cfg->rules[i].event_type ? cfg->rules[i].event_type : cfg->rules[i].name) &&
        w->ctx.paced(w->ctx.arg, i))
      return 1;
  return 0;
}

static void step(p2q_worker_t *w) {
  w->pol.paused = !w->ready || w->closing || w->ctx.stopping(w->ctx.arg) || WLIVE(w) == 0 ||
                  allowed_types(w, w->types) == 0;
  if (w->pol.standby && w->pol.active && worker_paced(w))
    w->pol.active = 0; /* a rate limit paces the target: one session's batches are enough */
  uint64_t now = WNOW(w);
  switch (p2q_batch_next_at(&w->pol, now)) {
  case P2Q_BATCH_CLAIM: {
    int idle = w->pol.idle_lingering;
    claim(w);
    /* an idle linger overtaken: the claim served it (a batch-fill linger runs out as it always
       did: with batches in flight it claims again when it fires) */
    if (w->pol.claiming && idle) uv_timer_stop(&w->linger_timer);
    break;
  }
  case P2Q_BATCH_LINGER:
    p2q_batch_on_linger_started(&w->pol, now);
    uv_timer_start(&w->linger_timer, linger_cb, (uint64_t)p2q_batch_linger_ms(&w->pol, now), 0);
    break;
  case P2Q_BATCH_WAIT: break;
  }
}

static void wake(p2q_worker_t *w, void (*event)(p2q_batch_t *)) {
  event(&w->pol);
  step(w);
  /* the other claimers are not woken, only looked at again: one still in a backlog that was
     paused (a target's breaker, the rate budget, a reconnect) goes on now */
  if (w == w->head) others_step(w, NULL);
}

void p2q_worker_wake(p2q_worker_t *w) { wake(w, p2q_batch_on_wake); }

void p2q_worker_notify(p2q_worker_t *w) { wake(w, p2q_batch_on_notify); }

/* The worker's claimers other than w (not closing): event (may be NULL) on each one's policy,
   then its next step. */
static void others_step(p2q_worker_t *w, void (*event)(p2q_batch_t *)) {
  for (p2q_worker_t *l = w->head; l; l = l->next_claimer)
    if (l != w && !l->closing) {
      if (event) event(&l->pol);
      step(l);
    }
}

/* ---- session ------------------------------------------------------------------------------- */

static void on_ready(void *arg, const char *owner, int reconnect) {
  p2q_worker_t *w = arg;
  if (reconnect) w->st->pg_reconnects++;
  w->ready = 1;
  P2Q_INFO("worker_connected", "worker=%s claimer=%d owner=%s", w->cfg->name, w->claimer, owner);
  p2q_worker_wake(w); /* catch up on whatever arrived while we were away */
}

static void on_lost(void *arg, const char *errmsg) {
  p2q_worker_t *w = arg;
  char q[512];
  w->ready = 0;
  w->pol.claiming = 0;
  for (wbatch_t *b = w->batches; b; b = b->next) b->orphaned = 1;
  P2Q_WARN("worker_disconnected", "worker=%s claimer=%d err=%s", w->cfg->name, w->claimer, p2q_log_q(q, sizeof q, errmsg));
}

/* One claimer: lane 0 is the worker itself (head NULL), the others standby claimers of head. */
static int claimer_new(const p2q_worker_ctx_t *ctx, const p2q_worker_config_t *cfg, p2q_worker_t *head, int k,
                       p2q_worker_t **out) {
  p2q_worker_t *w = calloc(1, sizeof *w);
  char name[P2Q_NAME_MAX + 48];
  int rc = P2Q_ENOMEM;
  if (!w) return rc;
  w->ctx = *ctx;
  w->cfg = cfg;
  w->head = head ? head : w;
  w->st = &w->head->stats;
  w->claimer = k;
  w->types = calloc((size_t)(cfg->event_types.n ? cfg->event_types.n : 1), sizeof *w->types);
  if (!w->types) goto fail;
  const p2q_config_t *c = WCFG(w);
  p2q_batch_init(&w->pol, (int)cfg->batch_size, (int)cfg->max_inflight, cfg->linger_ms);
  w->pol.standby = k > 1;
  w->pol.idle_linger_ms = cfg->idle_linger_ms > 0 ? cfg->idle_linger_ms : 0;
  p2q_backoff_init(&w->backoff, (uint64_t)c->retry_min_ms, (uint64_t)c->retry_max_ms, 0);
  if (k > 1) snprintf(name, sizeof name, "pg2qdrant/worker-%s/%d", cfg->name, k);
  else snprintf(name, sizeof name, "pg2qdrant/worker-%s", cfg->name);
  p2q_outbox_conn_cbs_t cbs = {.ready = on_ready, .lost = on_lost, .arg = w};
  if ((rc = ctx->outbox_open(ctx->arg, name, &cbs, &w->conn))) goto fail;
  uv_timer_init(ctx->loop, &w->linger_timer);
  uv_timer_init(ctx->loop, &w->retry_timer);
  uv_timer_init(ctx->loop, &w->ack_timer);
  w->linger_timer.data = w->retry_timer.data = w->ack_timer.data = w;
  *out = w;
  return 0;
fail:
  free(w->types);
  free(w);
  return rc;
}

int p2q_worker_new(const p2q_worker_ctx_t *ctx, const p2q_worker_config_t *cfg, p2q_worker_t **out) {
  p2q_worker_t *w;
  int rc = claimer_new(ctx, cfg, NULL, 1, &w);
  if (rc) return rc;
  w->claimers_open = 1;
  for (int k = 2; k <= cfg->claimers; k++) {
    p2q_worker_t *l;
    if ((rc = claimer_new(ctx, cfg, w, k, &l))) {
      p2q_worker_close(w, NULL, NULL); /* what is open closes on the loop */
      return rc;
    }
    l->next_claimer = w->next_claimer;
    w->next_claimer = l;
    w->claimers_open++;
  }
  *out = w;
  return 0;
}

int p2q_worker_claims(const p2q_worker_t *w, const char *event_type) {
  if (!event_type || !*event_type) return 1;
  for (int i = 0; i < w->cfg->event_types.n; i++)
    if (!strcmp(w->cfg->event_types.items[i], event_type)) return 1;
  return 0;
}

int p2q_worker_idle(const p2q_worker_t *w) {
  for (const p2q_worker_t *l = w; l; l = l->next_claimer)
    if (l->batches || l->pol.claiming) return 0;
  return 1;
}

const p2q_stats_t *p2q_worker_stats(const p2q_worker_t *w) { return &w->stats; }

const char *p2q_worker_name(const p2q_worker_t *w) { return w->cfg->name; }

static void claimer_reconfigure(p2q_worker_t *w, const p2q_worker_config_t *cfg) {
  const p2q_config_t *c = WCFG(w);
  w->cfg = cfg;
  w->pol.batch_size = cfg->batch_size > 0 ? (int)cfg->batch_size : 1; /* as p2q_batch_init */
  w->pol.max_inflight = cfg->max_inflight > 0 ? (int)cfg->max_inflight : 1;
  w->pol.linger_ms = cfg->linger_ms > 0 ? cfg->linger_ms : 0;
  w->pol.idle_linger_ms = cfg->idle_linger_ms > 0 ? cfg->idle_linger_ms : 0;
  p2q_backoff_init(&w->backoff, (uint64_t)c->retry_min_ms, (uint64_t)c->retry_max_ms, 0);
  if (!w->closing) step(w); /* a larger max_inflight may allow a claim now */
}

void p2q_worker_reconfigure(p2q_worker_t *w, const p2q_worker_config_t *cfg) {
  for (p2q_worker_t *l = w->next_claimer; l; l = l->next_claimer) claimer_reconfigure(l, cfg);
  claimer_reconfigure(w, cfg);
}

/* A claimer's last handle closed: it is freed; the worker (its head) with its last claimer. */
static void handle_closed(uv_handle_t *h) {
  p2q_worker_t *w = h->data, *head = w->head;
  if (--w->open_handles > 0) return;
  while (w->batches) { wbatch_t *b = w->batches; w->batches = b->next; p2q_wk_batch_free(b); }
  free(w->types);
  w->types = NULL;
  if (w != head) free(w);
  if (--head->claimers_open > 0) return;
  void (*cb)(void *) = head->close_cb;
  void *arg = head->close_arg;
  free(head);
  if (cb) cb(arg);
}

static void conn_closed(void *arg) { handle_closed((uv_handle_t *)&((p2q_worker_t *)arg)->linger_timer); }

static void claimer_close(p2q_worker_t *w) {
  w->closing = 1;
  w->open_handles = 4;
  w->deferred = w->riding = NULL; /* freed with the batches */
  uv_close((uv_handle_t *)&w->linger_timer, handle_closed);
  uv_close((uv_handle_t *)&w->retry_timer, handle_closed);
  uv_close((uv_handle_t *)&w->ack_timer, handle_closed);
  w->ctx.outbox_close(w->conn, conn_closed, w);
}

void p2q_worker_close(p2q_worker_t *w, void (*cb)(void *arg), void *arg) {
  if (w->closing) return;
  w->close_cb = cb;
  w->close_arg = arg;
  for (p2q_worker_t *l = w->next_claimer, *next; l; l = next) {
    next = l->next_claimer;
    claimer_close(l);
  }
  claimer_close(w);
}

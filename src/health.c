/*
 * health.c — per-target health: breakers, probes and rate-limit holds of the Qdrant host, each
 * rule's collection and each embedder (see health.h). Loop thread only.
 *
 * Owns: the target table (built once from the rules; the set of targets never changes, a reload
 * that would change it is refused by reload.c), one timer that fires at the earliest due probe
 * or hold end, and the probe calls in flight (at most one per target). Invariants: a target is
 * probed only while open and not already probing; a hold never exceeds retry_max; a probe
 * callback after p2q_health_stop() only records its result.
 *
 * Qdrant nodes (several URLs): one target per node, `node:URL`, for readiness, /status and
 * metrics only. The Qdrant client decides and probes (qdrant.c, nodes.c) and tells us
 * (p2q_health_node); no rule waits on a node: a node's failure is nobody's collection failure,
 * all nodes down shows as the host's. When a node comes back, open collections and the host
 * are probed at once (a write that failed on a shard of that node can go through now).
 */
#include "pg2qdrant/health.h"
#include "pg2qdrant/backoff.h"
#include "pg2qdrant/errors.h"
#include "pg2qdrant/log.h"
#include "pg2qdrant/nodes.h"
#include "pg2qdrant/ratelimit.h"
#include "pg2qdrant/redact.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  char name[P2Q_NAME_MAX + 320];
  const char *object;        /* the collection or embedder name (into name); NULL for the host */
  p2q_target_kind_t kind;
  p2q_breaker_t br;
  p2q_verdict_t reason;
  char last_error[256];
  unsigned streak;           /* consecutive failures (any class but rate limits) */
  p2q_ratelimit_t rl;        /* 429s: the pause every worker honours (ratelimit.c) */
  int held;                  /* a pause was in force at the last look */
  uint64_t due;              /* next probe, loop ms (while open) */
  int probing;
  int shards;                /* the last failure was a cluster's shard-level one (classify.h) */
  uint64_t failures;
} target_t;

typedef struct {
  int host, coll, emb;       /* target indices; emb -1 when the rule embeds nothing */
} rule_targets_t;

struct p2q_health_s {
  uv_loop_t *loop;
  const p2q_config_t *cfg;
  p2q_health_io_t io;
  target_t *t;
  int n;
  rule_targets_t *rules;
  int n_rules;
  uv_timer_t timer;
  int timer_open, stopped;
  int node0, n_nodes;        /* node targets: [node0, node0 + n_nodes); n_nodes 0 for one URL */
};

typedef struct {
  p2q_health_t *h;
  int i;
} probe_t;

static int find_or_add(p2q_health_t *h, p2q_target_kind_t kind, const char *object) {
  char name[sizeof h->t[0].name];
  snprintf(name, sizeof name, "%s%s", kind == P2Q_TARGET_HOST ? "qdrant" : kind == P2Q_TARGET_COLLECTION ?
           "collection:" : kind == P2Q_TARGET_NODE ? "node:" : "embedder:", object ? object : "");
  for (int i = 0; i < h->n; i++)
    if (!strcmp(h->t[i].name, name)) return i;
  target_t *t = &h->t[h->n];
  memset(t, 0, sizeof *t);
  snprintf(t->name, sizeof t->name, "%s", name);
  t->kind = kind;
  t->object = object ? strchr(t->name, ':') + 1 : NULL;
  t->reason = P2Q_V_DONE;
  p2q_breaker_init(&t->br, (int)h->cfg->breaker_threshold, 200, (uint64_t)h->cfg->breaker_max_ms);
  p2q_ratelimit_init(&t->rl, 0); /* unlimited until a 429 says otherwise */
  p2q_ratelimit_set_max_wait(&t->rl, (uint64_t)h->cfg->retry_max_ms);
  return h->n++;
}

int p2q_health_new(uv_loop_t *loop, const p2q_config_t *cfg, const p2q_health_io_t *io, p2q_health_t **out) {
  p2q_health_t *h = calloc(1, sizeof *h);
  if (!h) return P2Q_ENOMEM;
  h->loop = loop;
  h->cfg = cfg;
  h->io = *io;
  h->t = calloc((size_t)(1 + 2 * cfg->n_rules + P2Q_NODES_MAX), sizeof *h->t);
  h->rules = calloc((size_t)(cfg->n_rules ? cfg->n_rules : 1), sizeof *h->rules);
  if (!h->t || !h->rules) { p2q_health_free(h); return P2Q_ENOMEM; }
  int host = find_or_add(h, P2Q_TARGET_HOST, NULL);
  for (int r = 0; r < cfg->n_rules; r++) {
    h->rules[r].host = host;
    h->rules[r].coll = find_or_add(h, P2Q_TARGET_COLLECTION, cfg->rules[r].collection);
    h->rules[r].emb = cfg->rules[r].embedder ? find_or_add(h, P2Q_TARGET_EMBEDDER, cfg->rules[r].embedder) : -1;
  }
  char *urls[P2Q_NODES_MAX], why[200];
  int nn = p2q_nodes_split(cfg->qdrant_url, urls, P2Q_NODES_MAX, why, sizeof why);
  h->node0 = h->n;
  for (int i = 0; i < nn; i++) {
    char *masked = p2q_redact_url(urls[i]);
    if (nn > 1) find_or_add(h, P2Q_TARGET_NODE, masked ? masked : "?");
    free(masked);
    free(urls[i]);
  }
  h->n_nodes = nn > 1 ? h->n - h->node0 : 0;
  h->n_rules = cfg->n_rules;
  uv_timer_init(loop, &h->timer);
  h->timer.data = h;
  h->timer_open = 1;
  *out = h;
  return 0;
}

void p2q_health_retune(p2q_health_t *h, const p2q_config_t *cfg) {
  int max_changed = cfg->breaker_max_ms != h->cfg->breaker_max_ms;
  h->cfg = cfg;
  for (int i = 0; i < h->n; i++) {
    h->t[i].br.threshold = cfg->breaker_threshold > 0 ? (int)cfg->breaker_threshold : 1;
    if (max_changed) p2q_backoff_init(&h->t[i].br.backoff, 200, (uint64_t)cfg->breaker_max_ms, 0);
    p2q_ratelimit_set_max_wait(&h->t[i].rl, (uint64_t)cfg->retry_max_ms);
  }
}

static void closed_noop(uv_handle_t *hd) { (void)hd; }

void p2q_health_stop(p2q_health_t *h) {
  h->stopped = 1;
  uv_timer_stop(&h->timer);
}

void p2q_health_close(p2q_health_t *h) {
  if (!h) return;
  p2q_health_stop(h);
  if (h->timer_open && !uv_is_closing((uv_handle_t *)&h->timer)) uv_close((uv_handle_t *)&h->timer, closed_noop);
}

void p2q_health_free(p2q_health_t *h) {
  if (!h) return;
  free(h->t);
  free(h->rules);
  free(h);
}

/* ---- timer: probes due, holds ended ------------------------------------------------------- */

/* How long the target's budget says to wait (a 429's pause, or the debt of requests paced
   after one); 0 = go. Cost 0: nothing is deducted. */
static uint64_t budget_wait(target_t *t, uint64_t now) { return p2q_ratelimit_take(&t->rl, now, 0); }

static void timer_cb(uv_timer_t *tm);

static void schedule(p2q_health_t *h) {
  if (h->stopped) return;
  uint64_t now = uv_now(h->loop), next = 0;
  for (int i = 0; i < h->n; i++) {
    target_t *t = &h->t[i];
    if (t->kind != P2Q_TARGET_NODE && t->br.state == P2Q_BREAKER_OPEN && !t->probing && (!next || t->due < next))
      next = t->due;
    uint64_t held = t->held ? budget_wait(t, now) : 0;
    if (held && (!next || now + held < next)) next = now + held;
  }
  if (next) uv_timer_start(&h->timer, timer_cb, next > now ? next - now : 0, 0);
  else uv_timer_stop(&h->timer);
}

static void target_closed(p2q_health_t *h, target_t *t) {
  t->streak = 0;
  t->shards = 0;
  P2Q_INFO("breaker_closed", "target=%s", t->name);
  if (h->io.changed) h->io.changed(h->io.arg);
}

static void record_error(target_t *t, p2q_verdict_t v, const char *msg) {
  t->reason = v;
  snprintf(t->last_error, sizeof t->last_error, "%s", msg && *msg ? msg : p2q_verdict_name(v));
}

/* The target answered 429: every worker of the process pauses its rules for Retry-After (or a
   backoff doubling from 250 ms without one), never longer than retry_max. Returns the pause. */
static uint64_t hold(p2q_health_t *h, target_t *t, int64_t retry_after_ms) {
  uint64_t now = uv_now(h->loop);
  int was = p2q_ratelimit_paused_ms(&t->rl, now) > 0;
  p2q_ratelimit_on_429(&t->rl, now, retry_after_ms > 0 ? (int64_t)retry_after_ms : -1);
  uint64_t d = p2q_ratelimit_paused_ms(&t->rl, now);
  t->held = 1;
  if (!was)
    P2Q_WARN("rate_limited", "target=%s hold_ms=%llu retry_after_ms=%lld", t->name, (unsigned long long)d,
             (long long)retry_after_ms);
  schedule(h);
  return d;
}

static void probed(void *arg, p2q_verdict_t v, int64_t retry_after_ms, const char *msg) {
  probe_t *p = arg;
  p2q_health_t *h = p->h;
  target_t *t = &h->t[p->i];
  free(p);
  t->probing = 0;
  if (v == P2Q_V_CANCELED) return;
  if (v == P2Q_V_DONE || v == P2Q_V_SPLIT || v == P2Q_V_EVENT_FAULT || v == P2Q_V_RATE_LIMITED) {
    /* it answered: the operation goes through (a 429 is backpressure, not an outage) */
    if (v == P2Q_V_RATE_LIMITED) hold(h, t, retry_after_ms);
    if (p2q_breaker_success(&t->br)) target_closed(h, t);
  } else {
    record_error(t, v, msg);
    uint64_t delay = p2q_breaker_probe_failed(&t->br);
    t->due = uv_now(h->loop) + delay;
    char q[300];
    P2Q_WARN("breaker_probe_failed", "target=%s reason=%s next_probe_ms=%llu err=%s", t->name,
             p2q_verdict_name(v), (unsigned long long)delay, p2q_log_q(q, sizeof q, t->last_error));
  }
  schedule(h);
}

static void start_probe(p2q_health_t *h, int i) {
  target_t *t = &h->t[i];
  probe_t *p = malloc(sizeof *p);
  int rc = P2Q_ENOMEM;
  p2q_breaker_probe_started(&t->br);
  if (p) {
    p->h = h;
    p->i = i;
    t->probing = 1;
    rc = t->kind == P2Q_TARGET_EMBEDDER
             ? (h->io.probe_embedder ? h->io.probe_embedder(h->io.arg, t->object, probed, p) : P2Q_EINVAL)
             : (h->io.probe_qdrant ? h->io.probe_qdrant(h->io.arg, t->object, probed, p) : P2Q_EINVAL);
  }
  if (rc) {
    free(p);
    t->probing = 0;
    t->due = uv_now(h->loop) + p2q_breaker_probe_failed(&t->br);
  }
}

static void timer_cb(uv_timer_t *tm) {
  p2q_health_t *h = tm->data;
  uint64_t now = uv_now(h->loop);
  int released = 0;
  if (h->stopped) return;
  for (int i = 0; i < h->n; i++) {
    target_t *t = &h->t[i];
    if (t->held && !budget_wait(t, now)) { t->held = 0; released = 1; }
    if (t->kind != P2Q_TARGET_NODE && t->br.state == P2Q_BREAKER_OPEN && !t->probing && t->due <= now)
      start_probe(h, i);
  }
  schedule(h);
  if (released && h->io.changed) h->io.changed(h->io.arg);
}

/* ---- workers' side ------------------------------------------------------------------------- */

static int target_allows(p2q_health_t *h, int i, uint64_t now) {
  if (i < 0) return 1;
  target_t *t = &h->t[i];
  if (!p2q_breaker_allows(&t->br)) return 0;
  if (!budget_wait(t, now)) return 1;
  if (!t->held) { t->held = 1; schedule(h); } /* wake the workers when it may go again */
  return 0;
}

int p2q_health_rule_allows(p2q_health_t *h, int rule) {
  if (rule < 0 || rule >= h->n_rules) return 1;
  uint64_t now = uv_now(h->loop);
  const rule_targets_t *r = &h->rules[rule];
  return target_allows(h, r->host, now) && target_allows(h, r->coll, now) && target_allows(h, r->emb, now);
}

static int target_paced(const p2q_health_t *h, int i, uint64_t now) {
  return i >= 0 && (p2q_ratelimit_rate(&h->t[i].rl) > 0 || p2q_ratelimit_paused_ms(&h->t[i].rl, now) > 0);
}

int p2q_health_rule_paced(const p2q_health_t *h, int rule) {
  if (rule < 0 || rule >= h->n_rules) return 0;
  uint64_t now = uv_now(h->loop);
  const rule_targets_t *r = &h->rules[rule];
  return target_paced(h, r->host, now) || target_paced(h, r->coll, now) || target_paced(h, r->emb, now);
}

void p2q_health_spend(p2q_health_t *h, const char *collection) {
  for (int i = 0; collection && i < h->n; i++)
    if (h->t[i].kind == P2Q_TARGET_COLLECTION && !strcmp(h->t[i].object, collection)) {
      p2q_ratelimit_spend(&h->t[i].rl, uv_now(h->loop), 1);
      return;
    }
}

static void succeeded(p2q_health_t *h, target_t *t) {
  t->streak = 0;
  p2q_ratelimit_on_success(&t->rl, uv_now(h->loop));
  /* opened by shard-level failures: a write that happened to touch only healthy shards proves
     nothing (closing on it made the breaker flap); only the probe, which reaches every shard */
  if (t->shards && t->br.state != P2Q_BREAKER_CLOSED) return;
  if (p2q_breaker_success(&t->br)) target_closed(h, t);
}

uint64_t p2q_health_report(p2q_health_t *h, int rule, int embedder, p2q_verdict_t v, int host_wide,
                           int64_t retry_after_ms, const char *msg) {
  if (rule < 0 || rule >= h->n_rules || v == P2Q_V_CANCELED) return 0;
  const rule_targets_t *r = &h->rules[rule];
  uint64_t max = (uint64_t)h->cfg->retry_max_ms;
  if (host_wide < 0 && !embedder) /* one node of a cluster failed, the client moved on: nobody's fault */
    return (uint64_t)h->cfg->retry_min_ms < max ? (uint64_t)h->cfg->retry_min_ms : max;
  int i = embedder ? r->emb : host_wide ? r->host : r->coll;
  if (i < 0) return 0;
  target_t *t = &h->t[i];
  switch (v) {
  case P2Q_V_DONE: case P2Q_V_SPLIT: case P2Q_V_EVENT_FAULT:
    succeeded(h, t);
    if (!embedder && i != r->host) succeeded(h, &h->t[r->host]); /* it answered: the host is up */
    return 0;
  case P2Q_V_RATE_LIMITED:
    return hold(h, t, retry_after_ms);
  default: break;
  }
  t->failures++;
  t->streak++;
  record_error(t, v, msg);
  t->shards = v == P2Q_V_TRANSIENT && p2q_classify_shard_failure(msg);
  int opened = v == P2Q_V_TRANSIENT ? p2q_breaker_failure(&t->br) : p2q_breaker_trip(&t->br);
  char q[300];
  if (opened) {
    t->due = uv_now(h->loop) + p2q_breaker_first_delay(&t->br);
    if (v == P2Q_V_TRANSIENT)
      P2Q_WARN("breaker_open", "target=%s reason=%s consecutive_failures=%u first_probe_ms=%llu err=%s", t->name,
               p2q_verdict_name(v), t->streak, (unsigned long long)(t->due - uv_now(h->loop)),
               p2q_log_q(q, sizeof q, t->last_error));
    else /* an alarm: it will not fix itself */
      P2Q_ERROR("breaker_open", "target=%s reason=%s alarm=1 err=%s", t->name, p2q_verdict_name(v),
                p2q_log_q(q, sizeof q, t->last_error));
    schedule(h);
  }
  /* the events wait a backoff growing with the target's failures in a row, capped at the
     probe cadence (breaker_max, and never above retry_max): the open breaker already keeps the
     rules from claiming, and once a probe closes it the backlog must not still be parked */
  uint64_t cap = (uint64_t)h->cfg->breaker_max_ms < max ? (uint64_t)h->cfg->breaker_max_ms : max;
  /* a node of the cluster is gone: the breaker (closed only by a write reaching every shard,
     probed at once when a node comes back) holds the rules; the events need not wait longer */
  if (t->shards) cap = (uint64_t)h->cfg->retry_min_ms < cap ? (uint64_t)h->cfg->retry_min_ms : cap;
  uint64_t d = p2q_backoff_cap((uint64_t)h->cfg->retry_min_ms < cap ? (uint64_t)h->cfg->retry_min_ms : cap, cap,
                               t->streak - 1);
  if (retry_after_ms > 0 && (uint64_t)retry_after_ms > d) d = (uint64_t)retry_after_ms;
  return d > cap ? cap : d;
}

/* ---- operators' side ----------------------------------------------------------------------- */

int p2q_health_count(const p2q_health_t *h) { return h ? h->n : 0; }

void p2q_health_target(const p2q_health_t *h, int i, p2q_target_info_t *out) {
  const target_t *t = &h->t[i];
  uint64_t now = uv_now(h->loop);
  out->name = t->name;
  out->kind = t->kind;
  out->state = t->br.state;
  out->transitions = t->br.transitions;
  out->reason = t->reason;
  out->last_error = t->last_error;
  out->failures = t->failures;
  out->rate_limited = t->rl.throttled;
  out->held_ms = p2q_ratelimit_paused_ms(&t->rl, now);
}

void p2q_health_node(p2q_health_t *h, int node, int up, const char *msg) {
  if (!h || node < 0 || node >= h->n_nodes) return;
  target_t *t = &h->t[h->node0 + node];
  uint64_t now = uv_now(h->loop);
  if (!up) {
    t->failures++;
    record_error(t, P2Q_V_TRANSIENT, msg);
    if (t->br.state == P2Q_BREAKER_CLOSED) p2q_breaker_trip(&t->br);
    return;
  }
  if (t->br.state != P2Q_BREAKER_CLOSED) {
    t->br.state = P2Q_BREAKER_CLOSED;
    t->br.transitions++;
  }
  /* a node is back: whatever failed on its shards may pass now — probe without waiting */
  for (int i = 0; i < h->n; i++)
    if (h->t[i].kind != P2Q_TARGET_NODE && h->t[i].kind != P2Q_TARGET_EMBEDDER &&
        h->t[i].br.state == P2Q_BREAKER_OPEN && !h->t[i].probing && h->t[i].due > now)
      h->t[i].due = now;
  schedule(h);
}

/* Node targets count against readiness only when every node is down. */
static int nodes_all_down(const p2q_health_t *h) {
  for (int i = 0; i < h->n_nodes; i++)
    if (h->t[h->node0 + i].br.state == P2Q_BREAKER_CLOSED) return 0;
  return h->n_nodes > 0;
}

void p2q_health_degraded(const p2q_health_t *h, p2q_buf_t *out) {
  if (!h || nodes_all_down(h)) return;
  for (int i = 0; i < h->n_nodes; i++) {
    const target_t *t = &h->t[h->node0 + i];
    if (t->br.state != P2Q_BREAKER_CLOSED)
      p2q_buf_printf(out, "degraded: %s down, skipped (%s)\n", t->name, t->last_error);
  }
}

int p2q_health_ready(const p2q_health_t *h, p2q_buf_t *why) {
  int ok = 1;
  int all_down = h && nodes_all_down(h);
  for (int i = 0; h && i < h->n; i++) {
    const target_t *t = &h->t[i];
    if (t->br.state == P2Q_BREAKER_CLOSED || (t->kind == P2Q_TARGET_NODE && !all_down)) continue;
    ok = 0;
    p2q_buf_printf(why, "breaker %s: %s (%s: %s)\n", t->name, p2q_breaker_state_name(t->br.state),
                   p2q_verdict_name(t->reason), t->last_error);
  }
  return ok;
}

/*
 * daemon.c — `pg2qdrant run`: the sync daemon's event loop (loop thread only).
 *
 * Owns: the libuv loop, the LISTEN connection (sync_outbox_insert; nothing else runs on it: a
 * backend delivers notifications only between statements), the maintenance connection (the
 * sweep's recovery and drift check, the status query), the sweep timer, the Qdrant
 * client, the embedders, the health module (health.c: a breaker per target), the signal
 * handlers, the stats timer and the WorkerPool. Flow: NOTIFY (payload = event type) or sweep →
 * wake the workers that claim it → each worker claims, embeds, writes and acks on its own
 * (worker.c) through the context this file gives it. A killed daemon's claims are freed within
 * seconds by recover.c (the registry and the liveness check, on a timer and a connection of its
 * own; its self-fence is the workers' `liveness` hook); the sweep also runs the slow recovery
 * (outbox.c) for a live daemon's lost connections. Shutdown: stop claiming, let in-flight
 * batches finish and ack; after shutdown_timeout cancel the requests still running (their
 * events are requeued without losing an attempt), then close everything. Operators: metrics,
 * /status and the HTTP server live in status_http.c; SIGHUP reloads the config (reload.c).
 */
#include "pg2qdrant/daemon.h"
#include "pg2qdrant/collection.h"
#include "pg2qdrant/redact.h"
#include "pg2qdrant/capture.h"
#include "pg2qdrant/classify.h"
#include "pg2qdrant/commands.h"
#include "pg2qdrant/counters.h"
#include "pg2qdrant/drift.h"
#include "pg2qdrant/embedder.h"
#include "pg2qdrant/errors.h"
#include "pg2qdrant/health.h"
#include "pg2qdrant/log.h"
#include "pg2qdrant/outbox.h"
#include "pg2qdrant/recover.h"
#include "pg2qdrant/reindex_exec.h"
#include "pg2qdrant/reload.h"
#include "pg2qdrant/status_http.h"
#include "pg2qdrant/version.h"
#include "pg2qdrant/worker.h"
#include "pg2qdrant/wordpiece.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct p2q_daemon_s {
  uv_loop_t *loop;
  const p2q_config_t *cfg;  /* running: the file's (base), or reindex_def.c's effective config */
  const p2q_config_t *base; /* the file's, as loaded (start-up or SIGHUP) */
  p2q_pg_t *listen_pg;  /* LISTEN only: a backend delivers notifications between statements */
  p2q_pg_t *maint_pg;   /* the sweep's recovery and drift check, the status query: statements
                           that take seconds while the xmin horizon is held
                           (a report, pg_dump); on listen_pg they held every wake-up back */
  p2q_qdrant_t *qdrant;
  p2q_outbox_t *outbox;
  p2q_health_t *health;
  p2q_recover_t *recover; /* registry, liveness check, self-fence (recover.c) */
  p2q_drift_t *drift;     /* rules whose table no longer fits them (drift.c), checked on the sweep */
  uv_timer_t sweep_timer, shutdown_timer, stats_timer, mark_timer;
  char *mark_sql;      /* the claim's safety net, run on maint_pg (mark_check_cb) */
  int mark_pending;
  uv_signal_t sig_term, sig_int, sig_hup;
  p2q_worker_t **workers;
  int n_workers;
  p2q_embedder_t **embedders; /* parallel to cfg->embedders; NULL where no rule uses it */
  int stopping;        /* SIGTERM/SIGINT received: claim nothing more */
  int forced;          /* shutdown_timeout passed: in-flight requests cancelled */
  int closing;         /* handles are being closed */
  int exit_code;
  int recover_grace_ms;
  uint64_t pg_reconnects; /* of the LISTEN connection */
  int listening;       /* LISTEN is active on listen_pg */
  p2q_ops_t *ops;      /* metrics, /status, the HTTP server (status_http.c); hooks accept NULL */
  p2q_config_t **cfgs; /* configs loaded by reloads (cfg may be the last); freed after the loop */
  int n_cfgs;
  /* re-embedding (reindex_exec.c): the write modes it asks for are applied between batches */
  p2q_reindex_exec_t *rx;
  int quiesce;             /* claim nothing: modes pending (also until the jobs were first read) */
  p2q_reindex_eff_t *modes;/* the modes asked for (pointers into rx's jobs, valid until applied) */
  int n_modes, modes_pending;
  int n_base_emb;          /* d->embedders is parallel to the start config's embedders */
  p2q_embedder_t **shadow_emb; /* the old definitions' embedders (cfg->embedders[n_base_emb + i]) */
  int n_shadow_emb;
};

#define CHANNEL P2Q_NOTIFY_CHANNEL /* capture.h */

static void finish(p2q_daemon_t *d);

/* wake (p2q_worker_wake, or p2q_worker_notify for a NOTIFY) each worker claiming event_type */
static void wake_each(p2q_daemon_t *d, const char *event_type, void (*wake)(p2q_worker_t *)) {
  for (int i = 0; i < d->n_workers; i++)
    if (p2q_worker_claims(d->workers[i], event_type)) wake(d->workers[i]);
}

static void wake_all(p2q_daemon_t *d, const char *event_type) { wake_each(d, event_type, p2q_worker_wake); }

static p2q_embedder_t *embedder_named(p2q_daemon_t *d, const char *name) {
  for (int i = 0; name && d->embedders && i < d->n_base_emb; i++)
    if (!strcmp(d->cfg->embedders[i].name, name)) return d->embedders[i];
  for (int i = 0; name && i < d->n_shadow_emb && d->n_base_emb + i < d->cfg->n_embedders; i++)
    if (!strcmp(d->cfg->embedders[d->n_base_emb + i].name, name)) return d->shadow_emb[i];
  return NULL;
}

/* ---- health probes (health.c decides when; these run them) ------------------------------ */

typedef struct {
  p2q_daemon_t *d;
  p2q_health_probe_cb cb;
  void *arg;
  int collection;       /* a collection's no-op write, not the host's GET /readyz */
} probe_t;

static void qdrant_probed(p2q_qdrant_t *q, const p2q_qdrant_resp_t *r, void *arg) {
  probe_t *p = arg;
  int host_wide;
  p2q_ops_qdrant_request(p->d->ops, p->collection ? "probe_collection" : "probe", r);
  p->cb(p->arg, p2q_classify_qdrant(r->status, r->err, r->curl_code, r->cls, 1, &host_wide), r->retry_delay_ms,
        r->error);
  free(p);
}

/* The host: GET /readyz. A collection: a write that changes nothing — the delete of a point id
   pg2qdrant never writes — so the probe takes the path that failed (proxies, write limits).
   By filter (has_id), not by id list: a cluster sends a filtered delete to every shard, so the
   probe passes only once every shard takes writes again (an id list reaches one shard). */
static int probe_qdrant(void *arg, const char *collection, p2q_health_probe_cb cb, void *cb_arg) {
  p2q_daemon_t *d = arg;
  probe_t *p = malloc(sizeof *p);
  char *body = strdup("{\"filter\":{\"must\":[{\"has_id\":[\"" P2Q_HEALTH_PROBE_POINT "\"]}]}}");
  int rc = P2Q_ENOMEM;
  if (p && body && d->qdrant && !d->closing) {
    p->d = d; p->cb = cb; p->arg = cb_arg; p->collection = collection != NULL;
    rc = collection ? p2q_qdrant_points_delete_take(d->qdrant, collection, body, strlen(body), qdrant_probed, p)
                    : p2q_qdrant_probe(d->qdrant, qdrant_probed, p);
    if (rc == 0 && collection) body = NULL; /* taken */
  }
  free(body);
  if (rc) free(p);
  return rc;
}

static void embedder_probed(const p2q_embed_result_t *r, void *arg) {
  probe_t *p = arg;
  p2q_verdict_t v = p2q_classify_embed(r->err, r->transient, 0, 1);
  p->cb(p->arg, v == P2Q_V_EVENT_FAULT ? P2Q_V_DONE : v, r->retry_after_ms, r->msg); /* it answered */
  free(p);
}

static int probe_embedder(void *arg, const char *name, p2q_health_probe_cb cb, void *cb_arg) {
  static const char *const ping[] = {"ping"};
  p2q_daemon_t *d = arg;
  p2q_embedder_t *e = embedder_named(d, name);
  probe_t *p = malloc(sizeof *p);
  int rc = P2Q_ENOMEM;
  if (p && e && !d->closing) {
    p->d = d; p->cb = cb; p->arg = cb_arg; p->collection = 0;
    rc = p2q_embedder_embed(e, ping, NULL, 1, embedder_probed, p);
  } else if (!e) {
    rc = P2Q_EINVAL;
  }
  if (rc) free(p);
  return rc;
}

static void health_changed(void *arg) {
  p2q_daemon_t *d = arg;
  if (!d->stopping) wake_all(d, NULL);
}

/* ---- the workers' context ----------------------------------------------------------------- */

static const p2q_config_t *ctx_config(void *arg) { return ((p2q_daemon_t *)arg)->cfg; }
static uint64_t ctx_now(void *arg) { return uv_now(((p2q_daemon_t *)arg)->loop); }

static int ctx_outbox_open(void *arg, const char *name, const p2q_outbox_conn_cbs_t *cbs, p2q_outbox_conn_t **out) {
  p2q_daemon_t *d = arg;
  return p2q_outbox_conn_new(d->outbox, d->loop, d->cfg, name, cbs, out);
}

static int ctx_write(void *arg, const char *collection, p2q_op_t op, char *body, size_t len, int lent,
                     p2q_qdrant_cb cb, void *cb_arg) {
  p2q_daemon_t *d = arg;
  if (!d->qdrant) return P2Q_ECANCELED;
  if (lent && op != P2Q_OP_UPSERT) return P2Q_EINVAL;
  p2q_health_spend(d->health, collection); /* paces the claims after a 429 */
  if (lent) return p2q_qdrant_points_upsert_lent(d->qdrant, collection, body, len, cb, cb_arg);
  if (op == P2Q_OP_PAYLOAD) return p2q_qdrant_points_batch_take(d->qdrant, collection, body, len, cb, cb_arg);
  if (op == P2Q_OP_RETRIEVE) return p2q_qdrant_points_retrieve_take(d->qdrant, collection, body, len, cb, cb_arg);
  return op == P2Q_OP_UPSERT ? p2q_qdrant_points_upsert_take(d->qdrant, collection, body, len, cb, cb_arg)
                             : p2q_qdrant_points_delete_take(d->qdrant, collection, body, len, cb, cb_arg);
}

static int ctx_embed(void *arg, const char *embedder, const char *const *texts, const size_t *lens, int n,
                     p2q_embedder_cb cb, void *cb_arg) {
  p2q_embedder_t *e = embedder_named(arg, embedder);
  return e ? p2q_embedder_embed(e, texts, lens, n, cb, cb_arg) : P2Q_EINVAL;
}

static const p2q_wordpiece_t *ctx_tokenizer(void *arg, const char *embedder) {
  p2q_embedder_t *e = embedder_named(arg, embedder);
  return e ? p2q_embedder_tokenizer(e) : NULL;
}

static int ctx_may_claim(void *arg, int rule) { return p2q_health_rule_allows(((p2q_daemon_t *)arg)->health, rule); }
static int ctx_paced(void *arg, int rule) { return p2q_health_rule_paced(((p2q_daemon_t *)arg)->health, rule); }

static uint64_t ctx_report(void *arg, int rule, int embedder, p2q_verdict_t v, int host_wide, int64_t retry_after_ms,
                           const char *msg) {
  return p2q_health_report(((p2q_daemon_t *)arg)->health, rule, embedder, v, host_wide, retry_after_ms, msg);
}

static void ctx_on_batch(void *arg, int n) { p2q_ops_batch(((p2q_daemon_t *)arg)->ops, n); }
static void ctx_on_done(void *arg, double created_at) { p2q_ops_event_done(((p2q_daemon_t *)arg)->ops, created_at); }
static void ctx_on_qdrant(void *arg, const char *endpoint, const p2q_qdrant_resp_t *r) {
  p2q_ops_qdrant_request(((p2q_daemon_t *)arg)->ops, endpoint, r);
}
static void ctx_on_embed(void *arg, const char *embedder, double seconds, long tokens) {
  p2q_ops_embed(((p2q_daemon_t *)arg)->ops, embedder, seconds, tokens);
}
static int ctx_stopping(void *arg) {
  p2q_daemon_t *d = arg;
  return d->forced ? 2 : d->stopping || d->quiesce ? 1 : 0;
}

static uint32_t ctx_liveness(void *arg) { return p2q_recover_liveness(((p2q_daemon_t *)arg)->recover); }

static void worker_idle(void *arg);

static void worker_ctx(p2q_daemon_t *d, p2q_worker_ctx_t *c) {
  *c = (p2q_worker_ctx_t){.arg = d, .loop = d->loop, .config = ctx_config, .now = ctx_now,
                          .outbox_open = ctx_outbox_open, .claim = p2q_outbox_claim, .ack = p2q_outbox_ack,
                          .ack_claim = p2q_outbox_ack_claim,
                          .outbox_close = p2q_outbox_conn_close, .write = ctx_write, .embed = ctx_embed,
                          .tokenizer = ctx_tokenizer,
                          .may_claim = ctx_may_claim, .paced = ctx_paced, .report = ctx_report, .on_batch = ctx_on_batch,
                          .on_done = ctx_on_done, .on_qdrant = ctx_on_qdrant, .on_embed = ctx_on_embed,
                          .liveness = ctx_liveness, .stopping = ctx_stopping, .idle = worker_idle};
}

/* ---- LISTEN connection and sweep ---------------------------------------------------------- */

static void recovered(void *arg, int err, const char *errmsg, int n) {
  p2q_daemon_t *d = arg;
  char q[512];
  if (err) {
    if (err != P2Q_ECANCELED) P2Q_WARN("recover_failed", "err=%s", p2q_log_q(q, sizeof q, errmsg));
    return;
  }
  if (n > 0) P2Q_INFO("recovered", "events=%d reason=owner_gone", n);
  if (!d->stopping) wake_all(d, NULL);
}

/* recover.c freed a dead daemon's claims, or lifted this process's fence */
static void recover_wake(void *arg, int events) {
  p2q_daemon_t *d = arg;
  if (!d->stopping) wake_all(d, NULL);
}

static void sweep(p2q_daemon_t *d) {
  if (p2q_pg_is_connected(d->maint_pg)) p2q_outbox_recover(d->outbox, d->maint_pg, d->recover_grace_ms, recovered, d);
  p2q_drift_check(d->drift, d->maint_pg, d->base); /* at (re)connect and every sweep: two tiny statements */
  wake_all(d, NULL); /* the sweep also catches what a missed notification left */
}

/* The claim's low-water mark's safety net (sync_outbox_mark_check): every mark looked below
   every 20-25 s from the maintenance connection, so a claim's refresh (which looks when 30 s
   passed) never walks the drained front in front of the claims and acks behind it (with the xmin
   horizon held 90 s at 2,000 events/s that walk took 0.3 -> 2.2 s on the worker's connection).
   The 5 s left are for statements queued before the check on that connection. */
#define MARK_CHECK_MS 5000

static void mark_checked(p2q_pg_t *pg, PGresult *res, int err, const char *errmsg, void *arg) {
  p2q_daemon_t *d = arg;
  char q[512];
  d->mark_pending = 0;
  if (err && err != P2Q_ECANCELED && err != P2Q_EPG_LOST)
    P2Q_WARN("mark_check_failed", "err=%s", p2q_log_q(q, sizeof q, errmsg));
}

static void mark_check_cb(uv_timer_t *t) {
  p2q_daemon_t *d = t->data;
  if (d->mark_pending || d->stopping || !p2q_pg_is_connected(d->maint_pg)) return;
  if (p2q_pg_query(d->maint_pg, d->mark_sql, 0, NULL, mark_checked, d) == 0) d->mark_pending = 1;
}

/* the maintenance connection (re)connected: recover and check at once, as at LISTEN */
static void maint_connected(p2q_pg_t *pg, void *arg) {
  p2q_daemon_t *d = arg;
  if (!d->stopping) sweep(d);
}

static void sweep_cb(uv_timer_t *t) { sweep(t->data); }

static void listen_done(p2q_pg_t *pg, PGresult *res, int err, const char *errmsg, void *arg) {
  p2q_daemon_t *d = arg;
  char q[512];
  if (err) {
    if (err != P2Q_ECANCELED) P2Q_ERROR("listen_failed", "err=%s", p2q_log_q(q, sizeof q, errmsg));
    return;
  }
  d->listening = 1;
  P2Q_INFO("listening", "channel=" CHANNEL);
  wake_all(d, NULL); /* catch-up: notifications sent while we were not listening are lost */
}

static void listen_connected(p2q_pg_t *pg, void *arg) {
  p2q_daemon_t *d = arg;
  if (p2q_pg_connect_count(pg) > 1) d->pg_reconnects++;
  p2q_pg_listen(pg, CHANNEL, listen_done, d);
}

static void listen_lost(p2q_pg_t *pg, int err, const char *errmsg, void *arg) {
  char q[512];
  ((p2q_daemon_t *)arg)->listening = 0;
  P2Q_WARN("listen_disconnected", "err=%s", p2q_log_q(q, sizeof q, errmsg));
}

static void notified(p2q_pg_t *pg, const char *channel, const char *payload, int pid, void *arg) {
  p2q_daemon_t *d = arg;
  if (!d->stopping) wake_each(d, payload, p2q_worker_notify); /* may wait idle_linger_ms */
}

/* ---- stats ---------------------------------------------------------------------------------- */

static void log_stats(p2q_daemon_t *d, const char *event) {
  p2q_stats_t t;
  p2q_buf_t line = P2Q_BUF_INIT;
  memset(&t, 0, sizeof t);
  for (int i = 0; i < d->n_workers; i++) p2q_stats_add(&t, p2q_worker_stats(d->workers[i]));
#define COUNTER_LOG(field, metric, help) p2q_buf_printf(&line, #field "=%llu ", (unsigned long long)t.field);
  P2Q_WORKER_COUNTERS(COUNTER_LOG)
#undef COUNTER_LOG
  p2q_buf_printf(&line, "listen_reconnects=%llu", (unsigned long long)d->pg_reconnects);
  for (int i = 0; i < p2q_health_count(d->health); i++) {
    p2q_target_info_t ti;
    p2q_health_target(d->health, i, &ti);
    if (ti.state != P2Q_BREAKER_CLOSED) p2q_buf_printf(&line, " breaker.%s=%s", ti.name, p2q_breaker_state_name(ti.state));
  }
  P2Q_INFO(event, "%s", p2q_buf_str(&line));
  p2q_buf_free(&line);
}

static void stats_cb(uv_timer_t *t) { log_stats(t->data, "stats"); }

/* ---- SIGHUP ---------------------------------------------------------------------------------- */

static void reload(p2q_daemon_t *d) {
  p2q_config_t *nc = NULL;
  const p2q_config_t *old = d->base;
  if (d->stopping || d->closing) return;
  const char *result = p2q_reload_load(old, &nc);
  if (nc) {
    p2q_config_t **cs = realloc(d->cfgs, sizeof *cs * (size_t)(d->n_cfgs + 1));
    if (!cs) {
      P2Q_ERROR("reload_failed", "path=%s err=\"out of memory\" config=unchanged", old->path);
      p2q_config_free(nc);
      p2q_ops_reload(d->ops, "error");
      return;
    }
    d->cfgs = cs;
    d->cfgs[d->n_cfgs++] = nc;
    d->base = nc;
    if (d->n_modes) p2q_reindex_exec_reapply(d->rx); /* the effective config is rebuilt from nc */
    else d->cfg = nc;
    p2q_health_retune(d->health, nc);
    if (nc->sweep_interval_ms != old->sweep_interval_ms) {
      uv_timer_set_repeat(&d->sweep_timer, (uint64_t)nc->sweep_interval_ms);
      uv_timer_again(&d->sweep_timer);
    }
    if (nc->stats_interval_ms != old->stats_interval_ms) {
      uv_timer_set_repeat(&d->stats_timer, (uint64_t)nc->stats_interval_ms);
      if (nc->stats_interval_ms > 0) uv_timer_again(&d->stats_timer);
      else uv_timer_stop(&d->stats_timer);
    }
    for (int i = 0; i < d->n_workers; i++) p2q_worker_reconfigure(d->workers[i], &nc->workers[i]);
  }
  p2q_ops_reload(d->ops, result);
}

/* ---- re-embedding: write modes (reindex_exec.c asks, applied between batches) --------------- */

/* The old definitions' embedders of the new running config: started now, the previous ones closed. */
static int swap_shadow_embedders(p2q_daemon_t *d, const p2q_config_t *nc) {
  int n = nc->n_embedders - d->n_base_emb;
  p2q_embedder_t **es = n > 0 ? calloc((size_t)n, sizeof *es) : NULL;
  if (n > 0 && !es) return P2Q_ENOMEM;
  for (int i = 0; i < n; i++) {
    char err[512], q[600];
    int rc = p2q_embedder_new(d->loop, &nc->embedders[d->n_base_emb + i], &es[i], err, sizeof err);
    if (rc) {
      P2Q_ERROR("embedder_failed", "embedder=%s (old definition) err=%s", nc->embedders[d->n_base_emb + i].name,
                p2q_log_q(q, sizeof q, err));
      while (i-- > 0) p2q_embedder_close(es[i], NULL, NULL);
      free(es);
      return rc;
    }
  }
  for (int i = 0; i < d->n_shadow_emb; i++)
    if (d->shadow_emb[i]) p2q_embedder_close(d->shadow_emb[i], NULL, NULL);
  free(d->shadow_emb);
  d->shadow_emb = es;
  d->n_shadow_emb = n > 0 ? n : 0;
  return 0;
}

static void apply_modes(p2q_daemon_t *d) {
  p2q_config_t *eff = NULL;
  char err[1024], q[1100];
  int ok = 0, single = 0; /* ok: the modes asked for are applied; single: the file's config instead */
  d->modes_pending = 0;
  if (d->n_modes == 0) {
    ok = swap_shadow_embedders(d, d->base) == 0;
    if (ok) d->cfg = d->base;
  } else if (p2q_reindex_effective(d->base, d->modes, d->n_modes, &eff, err, sizeof err)) {
    /* this process writes through the alias as before and records nothing: no job moves past
       a step that needs it (every live process writing dual) until it is restarted or reloaded */
    int swapped = 0; /* a rule whose alias already serves its new definition: never write the old one */
    for (int i = 0; i < d->n_modes; i++) swapped |= d->modes[i].collection == NULL;
    P2Q_ERROR("reindex_modes_failed", "err=%s writes=%s", p2q_log_q(q, sizeof q, err), swapped ? "paused" : "single");
    single = !swapped && swap_shadow_embedders(d, d->base) == 0;
    if (single) d->cfg = d->base;
  } else {
    p2q_config_t **cs = realloc(d->cfgs, sizeof *cs * (size_t)(d->n_cfgs + 1));
    if (cs) { d->cfgs = cs; d->cfgs[d->n_cfgs++] = eff; }
    if (cs && swap_shadow_embedders(d, eff) == 0) {
      d->cfg = eff;
      ok = 1;
    } else if (!cs) {
      p2q_config_free(eff);
    }
  }
  if (ok || single) { /* otherwise claims stay paused: writing a rule the wrong way could lose a change */
    for (int i = 0; i < d->n_workers; i++) p2q_worker_reconfigure(d->workers[i], &d->cfg->workers[i]);
    d->quiesce = 0;
  }
  if (ok) P2Q_INFO("reindex_modes_applied", "rules=%d shadows=%d", d->cfg->n_rules, d->cfg->n_rules - d->base->n_rules);
  p2q_reindex_exec_modes_applied(d->rx, ok);
  if (!d->quiesce && !d->stopping) wake_all(d, NULL);
}

static void want_modes(void *arg, const p2q_reindex_eff_t *jobs, int n) {
  p2q_daemon_t *d = arg;
  p2q_reindex_eff_t *m = n > 0 ? malloc(sizeof *m * (size_t)n) : NULL;
  if (n > 0 && !m) { p2q_reindex_exec_modes_applied(d->rx, 0); return; }
  if (n > 0) memcpy(m, jobs, sizeof *m * (size_t)n);
  free(d->modes);
  d->modes = m;
  d->n_modes = n > 0 ? n : 0;
  if (d->stopping || d->closing) { p2q_reindex_exec_modes_applied(d->rx, 0); return; }
  d->quiesce = 1;
  d->modes_pending = 1;
  worker_idle(d); /* applies now when no batch is in flight, else when the last one finishes */
}

static const p2q_config_t *rx_config(void *arg) { return ((p2q_daemon_t *)arg)->base; }
static p2q_qdrant_t *rx_qdrant(void *arg) { return ((p2q_daemon_t *)arg)->qdrant; }

/* ---- shutdown ------------------------------------------------------------------------------ */

static void apply_modes(p2q_daemon_t *d);

static void worker_idle(void *arg) {
  p2q_daemon_t *d = arg;
  if (d->modes_pending && !d->stopping && !d->closing) {
    for (int i = 0; i < d->n_workers; i++)
      if (!p2q_worker_idle(d->workers[i])) return;
    apply_modes(d);
    return;
  }
  if (!d->stopping || d->closing) return;
  for (int i = 0; i < d->n_workers; i++)
    if (!p2q_worker_idle(d->workers[i])) return;
  finish(d);
}

static void qdrant_closed(p2q_qdrant_t *q, void *arg) {
  p2q_daemon_t *d = arg;
  d->qdrant = NULL;
}

static void shutdown_timer_cb(uv_timer_t *t) {
  p2q_daemon_t *d = t->data;
  if (!d->forced) {
    /* cancel what is still running: callbacks fire with ECANCELED and those events are requeued */
    d->forced = 1;
    P2Q_WARN("shutdown_forced", "reason=shutdown_timeout in_flight_cancelled=1");
    if (d->qdrant) p2q_qdrant_close(d->qdrant, qdrant_closed, d);
    uv_timer_start(&d->shutdown_timer, shutdown_timer_cb, 2000, 0); /* acks get 2 s more */
    worker_idle(d);
  } else {
    finish(d); /* PostgreSQL unreachable: unacked claims are freed by recovery later */
  }
}

static void begin_stop(p2q_daemon_t *d, const char *why) {
  if (d->stopping) return;
  d->stopping = 1;
  P2Q_INFO("shutdown", "signal=%s", why);
  uv_timer_stop(&d->sweep_timer);
  uv_timer_stop(&d->mark_timer);
  if (d->health) p2q_health_stop(d->health);
  uv_timer_start(&d->shutdown_timer, shutdown_timer_cb, (uint64_t)d->cfg->shutdown_timeout_ms, 0);
  worker_idle(d);
}

static void signal_cb(uv_signal_t *s, int signum) {
  begin_stop(s->data, signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

static void hup_cb(uv_signal_t *s, int signum) { reload(s->data); }

/* Start-up (the schema check, the collections, a model's load) takes seconds before start()
   gives the signals to the loop; a SIGTERM, SIGINT or SIGHUP in that time would kill the process
   (their default action). It is kept here instead and acted on once the loop handles signals. */
static volatile sig_atomic_t early_stop, early_hup;

static void early_signal(int signum) {
  if (signum == SIGHUP) early_hup = 1;
  else early_stop = signum;
}

static void early_signals_catch(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = early_signal;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGHUP, &sa, NULL);
}

/* After start(): libuv's handlers replaced early_signal; what came before is acted on now. */
static void early_signals_replay(p2q_daemon_t *d) {
  if (early_hup) reload(d);
  if (early_stop) begin_stop(d, early_stop == SIGTERM ? "SIGTERM" : "SIGINT");
}

static void closed_noop(uv_handle_t *h) {}

static void finish(p2q_daemon_t *d) {
  if (d->closing) return;
  d->closing = 1;
  log_stats(d, "stopped");
  for (int i = 0; i < d->n_workers; i++) p2q_worker_close(d->workers[i], NULL, NULL);
  if (d->listen_pg) p2q_pg_close(d->listen_pg, NULL, NULL);
  if (d->maint_pg) p2q_pg_close(d->maint_pg, NULL, NULL);
  p2q_recover_close(d->recover);
  for (int i = 0; d->embedders && i < d->n_base_emb; i++)
    if (d->embedders[i]) p2q_embedder_close(d->embedders[i], NULL, NULL);
  for (int i = 0; i < d->n_shadow_emb; i++)
    if (d->shadow_emb[i]) p2q_embedder_close(d->shadow_emb[i], NULL, NULL);
  p2q_reindex_exec_close(d->rx);
  p2q_ops_close(d->ops);
  p2q_health_close(d->health);
  if (d->qdrant && !d->forced) p2q_qdrant_close(d->qdrant, qdrant_closed, d);
  uv_handle_t *hs[] = {(uv_handle_t *)&d->sweep_timer, (uv_handle_t *)&d->shutdown_timer,
                       (uv_handle_t *)&d->stats_timer, (uv_handle_t *)&d->mark_timer, (uv_handle_t *)&d->sig_term,
                       (uv_handle_t *)&d->sig_int, (uv_handle_t *)&d->sig_hup};
  for (size_t i = 0; i < sizeof hs / sizeof hs[0]; i++)
    if (!uv_is_closing(hs[i])) uv_close(hs[i], closed_noop);
}

/* ---- start-up ------------------------------------------------------------------------------ */

/* Check every rule's collection before starting (creating it when absent). A mismatch is fatal;
   an unreachable Qdrant is not: the health module takes over once the loop runs. */
static int check_collections(const p2q_config_t *cfg) {
  p2q_qdrant_options_t o;
  char err[1024], eq[1100];
  int *busy = calloc((size_t)(cfg->n_rules ? cfg->n_rules : 1), sizeof *busy);
  PGconn *conn = busy ? p2q_admin_connect(cfg, "pg2qdrant/run", err, sizeof err) : NULL;
  /* fresh collections become NAME__v1 behind the alias NAME; what each version means is recorded */
  if (!conn || p2q_reindex_sync(cfg, conn, 0, NULL, busy, err, sizeof err))
    P2Q_WARN("reindex_check_failed", "err=%s", p2q_log_q(eq, sizeof eq, busy ? err : "out of memory"));
  PQfinish(conn);
  p2q_qdrant_options_from_config(cfg, &o);
  for (int i = 0; i < cfg->n_rules; i++) {
    const p2q_rule_config_t *r = &cfg->rules[i];
    /* a job runs: NAME serves the old definition */
    if (!p2q_collection_first_rule(cfg, i) || (busy && busy[i])) continue;
    char msg[1024], q[1100];
    int rc = p2q_collection_ensure(&o, cfg, r->collection, P2Q_COLL_CREATE, NULL, msg, sizeof msg);
    if (rc == P2Q_EMISMATCH) {
      fprintf(stderr, "pg2qdrant: run: rule %s: collection %s: %s\n", r->name, r->collection, msg);
      free(busy);
      return -1;
    }
    if (rc) P2Q_WARN("collection_check_failed", "rule=%s collection=%s err=%s", r->name, r->collection,
                     p2q_log_q(q, sizeof q, msg));
  }
  free(busy);
  return 0;
}

/* Start the embedders the rules use (the model is loaded here, before any claim). */
static int start_embedders(p2q_daemon_t *d) {
  const p2q_config_t *cfg = d->cfg;
  d->embedders = calloc((size_t)(cfg->n_embedders ? cfg->n_embedders : 1), sizeof *d->embedders);
  if (!d->embedders) return P2Q_ENOMEM;
  d->n_base_emb = cfg->n_embedders;
  for (int i = 0; i < cfg->n_embedders; i++) {
    int used = 0;
    for (int r = 0; r < cfg->n_rules; r++)
      used |= cfg->rules[r].embedder && !strcmp(cfg->rules[r].embedder, cfg->embedders[i].name);
    if (!used) continue;
    char err[512], q[600];
    int rc = p2q_embedder_new(d->loop, &cfg->embedders[i], &d->embedders[i], err, sizeof err);
    if (rc) {
      P2Q_ERROR("embedder_failed", "embedder=%s err=%s", cfg->embedders[i].name, p2q_log_q(q, sizeof q, err));
      return rc;
    }
    P2Q_INFO("embedder_started", "embedder=%s type=%s dim=%d", cfg->embedders[i].name,
             cfg->embedders[i].type == P2Q_EMB_MINILM ? "minilm" : "openai", p2q_embedder_dim(d->embedders[i]));
  }
  return 0;
}

static void ops_view(void *arg, p2q_daemon_view_t *v) {
  p2q_daemon_t *d = arg;
  v->stopping = d->stopping;
  v->closing = d->closing;
  v->listening = d->listening;
  v->pg_reconnects = d->pg_reconnects;
  v->qdrant = d->qdrant;
  v->live = d->recover && p2q_recover_liveness(d->recover) != 0;
  v->instance = d->recover ? p2q_recover_instance(d->recover) : NULL;
  v->drift = d->drift;
  v->reindex = d->rx;
}

/* A node of [qdrant] url went down or came back (qdrant.c decides, health.c reports). */
static void qdrant_node_changed(void *arg, int node, const char *url, int up, const char *msg) {
  p2q_daemon_t *d = arg;
  (void)url;
  if (d->health) p2q_health_node(d->health, node, up, msg);
}

static int start(p2q_daemon_t *d) {
  int rc;
  p2q_qdrant_options_t qo;
  p2q_qdrant_options_from_config(d->cfg, &qo);
  qo.on_node = qdrant_node_changed;
  qo.on_node_arg = d;
  qo.max_concurrent = 0;
  for (int i = 0; i < d->cfg->n_workers; i++) qo.max_concurrent += (int)d->cfg->workers[i].max_inflight * 4;
  /* handles first: finish() closes them whatever fails below */
  uv_timer_t *timers[] = {&d->sweep_timer, &d->shutdown_timer, &d->stats_timer, &d->mark_timer};
  for (size_t i = 0; i < 4; i++) { uv_timer_init(d->loop, timers[i]); timers[i]->data = d; }
  uv_signal_init(d->loop, &d->sig_term);
  uv_signal_init(d->loop, &d->sig_int);
  uv_signal_init(d->loop, &d->sig_hup);
  d->sig_term.data = d->sig_int.data = d->sig_hup.data = d;
  uv_signal_start(&d->sig_term, signal_cb, SIGTERM);
  uv_signal_start(&d->sig_int, signal_cb, SIGINT);
  uv_signal_start(&d->sig_hup, hup_cb, SIGHUP);
  if ((rc = p2q_outbox_new(d->cfg->pg_schema, &d->outbox))) return rc;
  if ((rc = p2q_drift_new(&d->drift))) return rc;
  if ((rc = p2q_qdrant_new(d->loop, &qo, &d->qdrant))) return rc;
  p2q_health_io_t hio = {.arg = d, .probe_qdrant = probe_qdrant, .probe_embedder = probe_embedder,
                         .changed = health_changed};
  if ((rc = p2q_health_new(d->loop, d->cfg, &hio, &d->health))) return rc;
  d->recover_grace_ms = (int)(d->cfg->qdrant_timeout_ms + 1000);
  p2q_pg_options_t lo = {.conninfo = d->cfg->pg_conninfo, .name = "pg2qdrant/listen",
                         .connect_timeout_ms = (uint64_t)d->cfg->pg_connect_timeout_ms,
                         .reconnect_max_ms = 10000, .on_connect = listen_connected,
                         .on_disconnect = listen_lost, .on_notify = notified, .arg = d};
  if ((rc = start_embedders(d))) return rc;
  if ((rc = p2q_pg_new(d->loop, &lo, &d->listen_pg))) return rc;
  p2q_pg_options_t mo = {.conninfo = d->cfg->pg_conninfo, .name = "pg2qdrant/maint",
                         .connect_timeout_ms = (uint64_t)d->cfg->pg_connect_timeout_ms,
                         .synchronous_commit = p2q_outbox_sync_commit(d->cfg), /* recover, status */
                         .reconnect_max_ms = 10000, .on_connect = maint_connected, .arg = d};
  if ((rc = p2q_pg_new(d->loop, &mo, &d->maint_pg))) return rc;
  /* before the workers: their sessions register under its instance id */
  if ((rc = p2q_recover_new(d->loop, d->outbox, d->cfg, recover_wake, d, &d->recover))) return rc;
  p2q_reindex_hooks_t rh = {.arg = d, .want_modes = want_modes, .config = rx_config, .qdrant = rx_qdrant};
  if ((rc = p2q_reindex_exec_new(d->loop, d->cfg, p2q_recover_instance(d->recover), &rh, &d->rx))) return rc;
  d->workers = calloc((size_t)d->cfg->n_workers, sizeof *d->workers);
  if (!d->workers) return P2Q_ENOMEM;
  p2q_worker_ctx_t wc;
  worker_ctx(d, &wc);
  for (int i = 0; i < d->cfg->n_workers; i++) {
    if ((rc = p2q_worker_new(&wc, &d->cfg->workers[i], &d->workers[i]))) return rc;
    d->n_workers++;
  }
  p2q_ops_deps_t od = {.loop = d->loop, .cfg = d->cfg, .health = d->health, .listen_pg = d->listen_pg,
                       .maint_pg = d->maint_pg,
                       .workers = d->workers, .n_workers = d->n_workers, .view = ops_view, .arg = d};
  if ((rc = p2q_ops_start(&od, &d->ops))) return rc;
  if (!(d->mark_sql = p2q_outbox_sql("SELECT @SCHEMA@.sync_outbox_mark_check('20 seconds')", d->cfg->pg_schema)))
    return P2Q_ENOMEM;
  uv_timer_start(&d->mark_timer, mark_check_cb, MARK_CHECK_MS, MARK_CHECK_MS);
  uv_timer_start(&d->sweep_timer, sweep_cb, (uint64_t)d->cfg->sweep_interval_ms, (uint64_t)d->cfg->sweep_interval_ms);
  if (d->cfg->stats_interval_ms > 0)
    uv_timer_start(&d->stats_timer, stats_cb, (uint64_t)d->cfg->stats_interval_ms, (uint64_t)d->cfg->stats_interval_ms);
  return 0;
}

int p2q_cmd_run(const p2q_config_t *cfg, int argc, char **argv) {
  if (argc > 0) { fprintf(stderr, "usage: pg2qdrant run\n"); return 2; }
  for (int i = 0; i < cfg->n_rules; i++) {
    const p2q_rule_config_t *r = &cfg->rules[i];
    const p2q_embedder_config_t *e = r->embedder ? p2q_config_embedder(cfg, r->embedder) : NULL;
    if (r->chunk_tokens > 0 && (!e || (e->type == P2Q_EMB_MINILM ? r->chunk_tokens > e->model_max_tokens - 2
                                                                 : !e->chunk_vocab || !*e->chunk_vocab))) {
      fprintf(stderr, "pg2qdrant: run: rule %s: chunk_tokens needs a minilm embedder (at most its model's max "
                      "length - 2 tokens per chunk) or an openai one with chunk_vocab\n", r->name);
      return 2;
    }
  }
  early_signals_catch();
  /* the schema first: a daemon refused for a stale schema touches nothing (no collection made) */
  if (p2q_admin_check_run(cfg) || check_collections(cfg)) return 1;
  uv_loop_t loop;
  p2q_daemon_t d;
  memset(&d, 0, sizeof d);
  uv_loop_init(&loop);
  d.loop = &loop;
  d.cfg = d.base = cfg;
  d.quiesce = 1; /* until the re-embedding jobs were read (reindex_exec.c) */
  char *qurl = p2q_redact_url(cfg->qdrant_url);
  P2Q_INFO("starting", "version=%s workers=%d rules=%d qdrant=%s", P2Q_VERSION, cfg->n_workers,
           cfg->n_rules, qurl ? qurl : "?");
  free(qurl);
  int rc = start(&d);
  if (rc) {
    P2Q_ERROR("start_failed", "err=%s", p2q_strerror(rc));
    d.exit_code = 1;
    begin_stop(&d, "start_failed");
    finish(&d);
  } else {
    early_signals_replay(&d);
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  int close_rc = uv_loop_close(&loop);
  if (close_rc) P2Q_WARN("loop_close", "err=%s", uv_strerror(close_rc));
  p2q_ops_free(d.ops);
  p2q_recover_free(d.recover);
  p2q_drift_free(d.drift);
  p2q_reindex_exec_free(d.rx);
  free(d.shadow_emb);
  free(d.modes);
  free(d.mark_sql);
  p2q_health_free(d.health);
  p2q_outbox_free(d.outbox);
  free(d.workers);
  free(d.embedders);
  P2Q_INFO("exit", "code=%d", d.exit_code);
  for (int i = 0; i < d.n_cfgs; i++) p2q_config_free(d.cfgs[i]);
  free(d.cfgs);
  return d.exit_code;
}

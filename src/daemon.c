/*
 * daemon.c — `pg2qdrant run`: the sync daemon's event loop (loop thread only).
 *
 * Owns: the libuv loop, the LISTEN connection (sync_outbox_insert), the sweep timer, the Qdrant
 * client and its circuit breaker with the probe timer, the signal handlers, the stats timer and
 * the WorkerPool. Flow: NOTIFY (payload = event type) or sweep → wake the workers that claim it
 * → each worker claims, writes and acks on its own (worker.c). The sweep also runs
 * sync_outbox_recover(), which frees the claims of crashed daemons. Shutdown: stop claiming,
 * let in-flight batches finish and ack; after shutdown_timeout cancel the requests still
 * running (their events are requeued without losing an attempt), then close everything.
 * Operators: metrics, /status and the HTTP server live in status_http.c (d->ops); SIGHUP
 * reloads the config through reload.c.
 */
#include "pg2qdrant/daemon.h"
#include "pg2qdrant/redact.h"
#include "pg2qdrant/capture.h"
#include "pg2qdrant/commands.h"
#include "pg2qdrant/embedder.h"
#include "pg2qdrant/errors.h"
#include "pg2qdrant/log.h"
#include "pg2qdrant/status_http.h"
#include "pg2qdrant/version.h"
#include "pg2qdrant/worker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHANNEL "sync_outbox_insert"

static void finish(p2q_daemon_t *d);

static void wake_all(p2q_daemon_t *d, const char *event_type) {
  for (int i = 0; i < d->n_workers; i++)
    if (p2q_worker_claims(d->workers[i], event_type)) p2q_worker_wake(d->workers[i]);
}

/* ---- circuit breaker ------------------------------------------------------------------- */

static void probe_timer_cb(uv_timer_t *t);

static void probe_cb(p2q_qdrant_t *q, const p2q_qdrant_resp_t *r, void *arg) {
  p2q_daemon_t *d = arg;
  d->probing = 0;
  if (d->closing || r->err == P2Q_ECANCELED) return;
  p2q_ops_qdrant_request(d->ops, "probe", r);
  if (r->cls == P2Q_QDRANT_OK) {
    p2q_breaker_success(&d->breaker);
    P2Q_INFO("breaker_closed", "target=qdrant");
    wake_all(d, NULL);
    return;
  }
  uint64_t delay = p2q_breaker_probe_failed(&d->breaker);
  char m[512];
  P2Q_WARN("breaker_probe_failed", "target=qdrant status=%ld next_probe_ms=%llu err=%s", r->status,
           (unsigned long long)delay, p2q_log_q(m, sizeof m, r->error));
  if (!d->stopping) uv_timer_start(&d->probe_timer, probe_timer_cb, delay, 0);
}

static void probe_timer_cb(uv_timer_t *t) {
  p2q_daemon_t *d = t->data;
  if (d->probing || d->closing) return;
  p2q_breaker_probe_started(&d->breaker);
  if (p2q_qdrant_probe(d->qdrant, probe_cb, d) == 0) d->probing = 1;
  else uv_timer_start(&d->probe_timer, probe_timer_cb, p2q_breaker_probe_failed(&d->breaker), 0);
}

void p2q_daemon_qdrant_result(p2q_daemon_t *d, int transient_failure) {
  if (!transient_failure) {
    if (p2q_breaker_success(&d->breaker)) {
      uv_timer_stop(&d->probe_timer);
      P2Q_INFO("breaker_closed", "target=qdrant");
      wake_all(d, NULL);
    }
    return;
  }
  if (p2q_breaker_failure(&d->breaker)) {
    uint64_t delay = p2q_breaker_first_delay(&d->breaker);
    P2Q_WARN("breaker_open", "target=qdrant consecutive_failures=%d first_probe_ms=%llu",
             d->breaker.failures, (unsigned long long)delay);
    uv_timer_start(&d->probe_timer, probe_timer_cb, delay, 0);
  }
}

/* ---- LISTEN connection and sweep ---------------------------------------------------------- */

static void recover_cb(p2q_pg_t *pg, PGresult *res, int err, const char *errmsg, void *arg) {
  p2q_daemon_t *d = arg;
  char q[512];
  if (err) {
    if (err != P2Q_ECANCELED) P2Q_WARN("recover_failed", "err=%s", p2q_log_q(q, sizeof q, errmsg));
    return;
  }
  int n = atoi(PQgetvalue(res, 0, 0));
  if (n > 0) P2Q_INFO("recovered", "events=%d reason=owner_gone", n);
  if (!d->stopping) wake_all(d, NULL);
}

static void sweep(p2q_daemon_t *d) {
  char grace[32];
  snprintf(grace, sizeof grace, "%d", d->recover_grace_ms);
  const char *params[] = {grace};
  if (p2q_pg_is_connected(d->listen_pg))
    p2q_pg_query(d->listen_pg, d->recover_sql, 1, params, recover_cb, d);
  wake_all(d, NULL); /* the sweep also catches what a missed notification left */
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
  sweep(d); /* catch-up: notifications sent while we were not listening are lost */
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
  if (!d->stopping) wake_all(d, payload);
}

/* ---- stats ---------------------------------------------------------------------------------- */

static void totals(p2q_daemon_t *d, p2q_stats_t *t) {
  memset(t, 0, sizeof *t);
  for (int i = 0; i < d->n_workers; i++) {
    const p2q_stats_t *s = p2q_worker_stats(d->workers[i]);
    t->claimed += s->claimed; t->applied += s->applied; t->retried += s->retried;
    t->requeued += s->requeued; t->dead += s->dead; t->coalesced += s->coalesced;
    t->batches += s->batches; t->claims += s->claims; t->qdrant_requests += s->qdrant_requests;
    t->qdrant_failures += s->qdrant_failures; t->splits += s->splits;
  }
}

static void log_stats(p2q_daemon_t *d, const char *event) {
  p2q_stats_t t;
  totals(d, &t);
  P2Q_INFO(event, "claimed=%llu applied=%llu retried=%llu requeued=%llu dead=%llu coalesced=%llu "
           "batches=%llu qdrant_requests=%llu qdrant_failures=%llu splits=%llu pg_reconnects=%llu breaker=%s",
           (unsigned long long)t.claimed, (unsigned long long)t.applied, (unsigned long long)t.retried,
           (unsigned long long)t.requeued, (unsigned long long)t.dead, (unsigned long long)t.coalesced,
           (unsigned long long)t.batches, (unsigned long long)t.qdrant_requests,
           (unsigned long long)t.qdrant_failures, (unsigned long long)t.splits,
           (unsigned long long)d->pg_reconnects, p2q_breaker_state_name(d->breaker.state));
}

static void stats_cb(uv_timer_t *t) { log_stats(t->data, "stats"); }

/* ---- shutdown ------------------------------------------------------------------------------ */

void p2q_daemon_worker_idle(p2q_daemon_t *d) {
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
    p2q_daemon_worker_idle(d);
  } else {
    finish(d); /* PostgreSQL unreachable: unacked claims are freed by recovery later */
  }
}

static void begin_stop(p2q_daemon_t *d, const char *why) {
  if (d->stopping) return;
  d->stopping = 1;
  P2Q_INFO("shutdown", "signal=%s", why);
  uv_timer_stop(&d->sweep_timer);
  uv_timer_stop(&d->probe_timer);
  uv_timer_stop(&d->emb_timer);
  uv_timer_start(&d->shutdown_timer, shutdown_timer_cb, (uint64_t)d->cfg->shutdown_timeout_ms, 0);
  p2q_daemon_worker_idle(d);
}

static void signal_cb(uv_signal_t *s, int signum) {
  begin_stop(s->data, signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

static void hup_cb(uv_signal_t *s, int signum) { p2q_daemon_reload(s->data); }

static void closed_noop(uv_handle_t *h) {}

static void finish(p2q_daemon_t *d) {
  if (d->closing) return;
  d->closing = 1;
  log_stats(d, "stopped");
  for (int i = 0; i < d->n_workers; i++) p2q_worker_close(d->workers[i], NULL, NULL);
  if (d->listen_pg) p2q_pg_close(d->listen_pg, NULL, NULL);
  for (int i = 0; d->embedders && i < d->cfg->n_embedders; i++)
    if (d->embedders[i]) p2q_embedder_close(d->embedders[i], NULL, NULL);
  p2q_ops_close(d->ops);
  if (d->qdrant && !d->forced) p2q_qdrant_close(d->qdrant, qdrant_closed, d);
  uv_handle_t *hs[] = {(uv_handle_t *)&d->sweep_timer, (uv_handle_t *)&d->probe_timer,
                       (uv_handle_t *)&d->shutdown_timer, (uv_handle_t *)&d->stats_timer,
                       (uv_handle_t *)&d->emb_timer,
                       (uv_handle_t *)&d->sig_term, (uv_handle_t *)&d->sig_int,
                       (uv_handle_t *)&d->sig_hup};
  for (size_t i = 0; i < sizeof hs / sizeof hs[0]; i++)
    if (!uv_is_closing(hs[i])) uv_close(hs[i], closed_noop);
}

/* ---- start-up ------------------------------------------------------------------------------ */

/* Check every rule's collection before starting (creating it when absent). A mismatch is fatal;
   an unreachable Qdrant is not: the breaker takes over once the loop runs. */
static int check_collections(const p2q_config_t *cfg) {
  p2q_qdrant_options_t o;
  p2q_qdrant_options_from_config(cfg, &o);
  for (int i = 0; i < cfg->n_rules; i++) {
    const p2q_rule_config_t *r = &cfg->rules[i];
    p2q_qdrant_vectors_t v;
    char msg[1024], q[1100];
    p2q_rule_vectors(r, &v);
    int rc = p2q_qdrant_sync_ensure_collection(&o, r->collection, &v, 1, r->chunk_tokens > 0 ? "_pk" : NULL,
                                               msg, sizeof msg);
    if (rc == P2Q_EMISMATCH) {
      fprintf(stderr, "pg2qdrant: run: rule %s: collection %s: %s\n", r->name, r->collection, msg);
      return -1;
    }
    if (rc) P2Q_WARN("collection_check_failed", "rule=%s collection=%s err=%s", r->name, r->collection,
                     p2q_log_q(q, sizeof q, msg));
  }
  return 0;
}

p2q_embedder_t *p2q_daemon_embedder(p2q_daemon_t *d, const char *name) {
  for (int i = 0; name && d->embedders && i < d->cfg->n_embedders; i++)
    if (!strcmp(d->cfg->embedders[i].name, name)) return d->embedders[i];
  return NULL;
}

/* Start the embedders the rules use (the model is loaded here, before any claim). */
static int start_embedders(p2q_daemon_t *d) {
  const p2q_config_t *cfg = d->cfg;
  d->embedders = calloc((size_t)(cfg->n_embedders ? cfg->n_embedders : 1), sizeof *d->embedders);
  if (!d->embedders) return P2Q_ENOMEM;
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

static int build_sql(p2q_daemon_t *d) {
  static const char claim[] =
      "SELECT id, rule, op, row_key::text, payload::text, attempts, max_attempts,"
      " extract(epoch FROM created_at)::float8 FROM @SCHEMA@.sync_outbox_claim($1, $2::text[], $3, $4, $5)";
  static const char ack[] =
      "SELECT @SCHEMA@.sync_outbox_ack($1, $2::bigint[], $3::text[], $4::jsonb[], $5::text[], $6::int[], $7::text[])";
  static const char recover[] = "SELECT @SCHEMA@.sync_outbox_recover($1)";
  d->claim_sql = p2q_outbox_sql(claim, d->cfg->pg_schema);
  d->ack_sql = p2q_outbox_sql(ack, d->cfg->pg_schema);
  d->recover_sql = p2q_outbox_sql(recover, d->cfg->pg_schema);
  return d->claim_sql && d->ack_sql && d->recover_sql ? 0 : P2Q_ENOMEM;
}

static int start(p2q_daemon_t *d) {
  int rc;
  p2q_qdrant_options_t qo;
  p2q_qdrant_options_from_config(d->cfg, &qo);
  qo.max_concurrent = 0;
  for (int i = 0; i < d->cfg->n_workers; i++) qo.max_concurrent += (int)d->cfg->workers[i].max_inflight * 4;
  /* handles first: finish() closes them whatever fails below */
  uv_timer_t *timers[] = {&d->sweep_timer, &d->probe_timer, &d->shutdown_timer, &d->stats_timer, &d->emb_timer};
  for (size_t i = 0; i < 5; i++) { uv_timer_init(d->loop, timers[i]); timers[i]->data = d; }
  uv_signal_init(d->loop, &d->sig_term);
  uv_signal_init(d->loop, &d->sig_int);
  uv_signal_init(d->loop, &d->sig_hup);
  d->sig_term.data = d->sig_int.data = d->sig_hup.data = d;
  uv_signal_start(&d->sig_term, signal_cb, SIGTERM);
  uv_signal_start(&d->sig_int, signal_cb, SIGINT);
  uv_signal_start(&d->sig_hup, hup_cb, SIGHUP);
  if ((rc = build_sql(d))) return rc;
  if ((rc = p2q_qdrant_new(d->loop, &qo, &d->qdrant))) return rc;
  if ((rc = p2q_breaker_init(&d->breaker, (int)d->cfg->breaker_threshold, 200, (uint64_t)d->cfg->breaker_max_ms)))
    return rc;
  d->recover_grace_ms = (int)(d->cfg->qdrant_timeout_ms + 1000);
  p2q_pg_options_t lo = {.conninfo = d->cfg->pg_conninfo, .name = "pg2qdrant/listen",
                         .connect_timeout_ms = (uint64_t)d->cfg->pg_connect_timeout_ms,
                         .reconnect_max_ms = 10000, .on_connect = listen_connected,
                         .on_disconnect = listen_lost, .on_notify = notified, .arg = d};
  if ((rc = start_embedders(d)) || (rc = p2q_embed_breakers_init(d))) return rc;
  if ((rc = p2q_pg_new(d->loop, &lo, &d->listen_pg))) return rc;
  d->workers = calloc((size_t)d->cfg->n_workers, sizeof *d->workers);
  if (!d->workers) return P2Q_ENOMEM;
  for (int i = 0; i < d->cfg->n_workers; i++) {
    if ((rc = p2q_worker_new(d, &d->cfg->workers[i], &d->workers[i]))) return rc;
    d->n_workers++;
  }
  if ((rc = p2q_ops_start(d, &d->ops))) return rc;
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
    if (r->chunk_tokens > 0 && (!e || e->type != P2Q_EMB_MINILM || r->chunk_tokens > 254)) {
      fprintf(stderr, "pg2qdrant: run: rule %s: chunk_tokens needs a minilm embedder (which knows its "
                      "tokens) and at most 254 tokens per chunk\n", r->name);
      return 2;
    }
  }
  if (check_collections(cfg) || p2q_admin_check_run(cfg)) return 1;
  uv_loop_t loop;
  p2q_daemon_t d;
  memset(&d, 0, sizeof d);
  uv_loop_init(&loop);
  d.loop = &loop;
  d.cfg = cfg;
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
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  int close_rc = uv_loop_close(&loop);
  if (close_rc) P2Q_WARN("loop_close", "err=%s", uv_strerror(close_rc));
  p2q_ops_free(d.ops);
  free(d.workers);
  free(d.embedders);
  p2q_embed_breakers_free(&d);
  free(d.claim_sql);
  free(d.ack_sql);
  free(d.recover_sql);
  P2Q_INFO("exit", "code=%d", d.exit_code);
  for (int i = 0; i < d.n_cfgs; i++) p2q_config_free(d.cfgs[i]);
  free(d.cfgs);
  return d.exit_code;
}

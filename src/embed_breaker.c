/*
 * embed_breaker.c — a circuit breaker per embedder (loop thread), beside the Qdrant one in
 * daemon.c. Transient embedding failures (transport, 429, 5xx) count against the embedder that
 * failed; once its breaker opens, workers whose rules use that embedder stop claiming, and one
 * timer probes each open embedder with a one-text embedding ("ping") on a capped exponential
 * backoff (≤ breaker_max). A successful probe or embedding closes it and wakes the workers.
 * Events in flight when it opens are requeued without losing an attempt (worker_embed.c).
 */
#include "pg2qdrant/backoff.h"
#include "pg2qdrant/daemon.h"
#include "pg2qdrant/embedder.h"
#include "pg2qdrant/errors.h"
#include "pg2qdrant/log.h"
#include "pg2qdrant/worker.h"

#include <stdlib.h>
#include <string.h>

static int index_of(const p2q_daemon_t *d, const char *name) {
  for (int i = 0; name && i < d->cfg->n_embedders; i++)
    if (!strcmp(d->cfg->embedders[i].name, name)) return i;
  return -1;
}

static void wake_all(p2q_daemon_t *d) {
  for (int i = 0; i < d->n_workers; i++) p2q_worker_wake(d->workers[i]);
}

static void probe_due(uv_timer_t *t);

/* Arm the timer for the earliest probe due. */
static void schedule(p2q_daemon_t *d) {
  uint64_t now = uv_now(d->loop), next = 0;
  for (int i = 0; i < d->cfg->n_embedders; i++)
    if (d->emb_breakers[i].state == P2Q_BREAKER_OPEN && !d->emb_probing[i] && (!next || d->emb_due[i] < next))
      next = d->emb_due[i];
  if (next && !d->stopping && !d->closing)
    uv_timer_start(&d->emb_timer, probe_due, next > now ? next - now : 0, 0);
}

typedef struct {
  p2q_daemon_t *d;
  int i;
} probe_t;

static void probed(const p2q_embed_result_t *r, void *arg) {
  probe_t *p = arg;
  p2q_daemon_t *d = p->d;
  int i = p->i;
  free(p);
  d->emb_probing[i] = 0;
  if (d->closing) return;
  if (!r->err) {
    p2q_breaker_success(&d->emb_breakers[i]);
    P2Q_INFO("breaker_closed", "target=embedder:%s", d->cfg->embedders[i].name);
    wake_all(d);
  } else {
    uint64_t delay = p2q_breaker_probe_failed(&d->emb_breakers[i]);
    d->emb_due[i] = uv_now(d->loop) + delay;
    P2Q_WARN("breaker_probe_failed", "target=embedder:%s next_probe_ms=%llu", d->cfg->embedders[i].name,
             (unsigned long long)delay);
  }
  schedule(d);
}

static void probe_due(uv_timer_t *t) {
  p2q_daemon_t *d = t->data;
  uint64_t now = uv_now(d->loop);
  static const char *const ping[] = {"ping"};
  for (int i = 0; i < d->cfg->n_embedders; i++) {
    if (d->emb_breakers[i].state != P2Q_BREAKER_OPEN || d->emb_probing[i] || d->emb_due[i] > now) continue;
    probe_t *p = malloc(sizeof *p);
    if (p) { p->d = d; p->i = i; }
    p2q_breaker_probe_started(&d->emb_breakers[i]);
    if (p && d->embedders[i] && p2q_embedder_embed(d->embedders[i], ping, NULL, 1, probed, p) == 0) {
      d->emb_probing[i] = 1;
    } else {
      free(p);
      d->emb_due[i] = now + p2q_breaker_probe_failed(&d->emb_breakers[i]);
    }
  }
  schedule(d);
}

int p2q_embed_breakers_init(p2q_daemon_t *d) {
  int n = d->cfg->n_embedders ? d->cfg->n_embedders : 1;
  d->emb_breakers = calloc((size_t)n, sizeof *d->emb_breakers);
  d->emb_due = calloc((size_t)n, sizeof *d->emb_due);
  d->emb_probing = calloc((size_t)n, sizeof *d->emb_probing);
  if (!d->emb_breakers || !d->emb_due || !d->emb_probing) return P2Q_ENOMEM;
  for (int i = 0; i < d->cfg->n_embedders; i++)
    p2q_breaker_init(&d->emb_breakers[i], (int)d->cfg->breaker_threshold, 200, (uint64_t)d->cfg->breaker_max_ms);
  return 0;
}

void p2q_embed_breakers_free(p2q_daemon_t *d) {
  free(d->emb_breakers);
  free(d->emb_due);
  free(d->emb_probing);
}

uint64_t p2q_daemon_embed_result(p2q_daemon_t *d, const char *embedder, int transient_failure) {
  int i = index_of(d, embedder);
  if (i < 0 || !d->emb_breakers) return transient_failure ? (uint64_t)d->cfg->retry_min_ms : 0;
  p2q_breaker_t *b = &d->emb_breakers[i];
  if (!transient_failure) {
    if (p2q_breaker_success(b)) {
      P2Q_INFO("breaker_closed", "target=embedder:%s", embedder);
      wake_all(d);
    }
    return 0;
  }
  if (p2q_breaker_failure(b)) {
    uint64_t delay = p2q_breaker_first_delay(b);
    d->emb_due[i] = uv_now(d->loop) + delay;
    P2Q_WARN("breaker_open", "target=embedder:%s consecutive_failures=%d first_probe_ms=%llu", embedder,
             b->failures, (unsigned long long)delay);
    schedule(d);
  }
  return p2q_backoff_cap((uint64_t)d->cfg->retry_min_ms, (uint64_t)d->cfg->breaker_max_ms,
                         (unsigned)(b->failures > 0 ? b->failures - 1 : 0));
}

int p2q_daemon_embedder_allows(const p2q_daemon_t *d, const char *embedder) {
  int i = index_of(d, embedder);
  return i < 0 || !d->emb_breakers || p2q_breaker_allows(&d->emb_breakers[i]);
}

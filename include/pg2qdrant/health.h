/*
 * health.h — the health of every outside target the daemon writes to or reads from, in one
 * place (loop thread only): the Qdrant host, each rule's Qdrant collection, each embedder.
 *
 * Each target has its own circuit breaker (breaker.h) and its own rate-limit hold:
 *  - TRANSIENT failures count towards its breaker (breaker_threshold in a row opens it);
 *    CONFIG (401/403/3xx) and MISSING (404 collection) open it at once and raise an alarm
 *    (error log, /readyz, /status, metrics);
 *  - an open target is probed with the operation that failed, on a capped exponential backoff
 *    (≤ breaker_max): a collection with a real write that changes nothing (delete by a has_id
 *    filter of the reserved point id 00000000-0000-0000-0000-000000000000, which pg2qdrant
 *    never writes; a filter reaches every shard of a cluster, an id list only one), the
 *    host with GET /readyz (only connection failures are booked on the host), an embedder with
 *    a one-text embedding; a probe that gets through closes it;
 *  - RATE_LIMITED (429) pauses the target through its shared budget (ratelimit.c) for
 *    Retry-After (or a backoff doubling from 250 ms without one), capped at retry_max: every
 *    worker of the process stops claiming for the rules that use it until the pause ends — the
 *    limit is honoured globally, never by burning attempts.
 * A rule may claim while its host, collection and embedder are all closed and not held; the
 * other rules of the same worker keep flowing. Readiness, /status, metrics and SIGHUP re-tuning
 * iterate over the same list (p2q_health_count / p2q_health_target).
 */
#ifndef P2Q_HEALTH_H
#define P2Q_HEALTH_H

#include <stdint.h>
#include <uv.h>

#include "pg2qdrant/breaker.h"
#include "pg2qdrant/buf.h"
#include "pg2qdrant/classify.h"
#include "pg2qdrant/config.h"

#define P2Q_HEALTH_PROBE_POINT "00000000-0000-0000-0000-000000000000"

typedef enum { P2Q_TARGET_HOST = 0, P2Q_TARGET_COLLECTION, P2Q_TARGET_EMBEDDER, P2Q_TARGET_NODE } p2q_target_kind_t;

typedef struct p2q_health_s p2q_health_t;

/* The result of a probe: its verdict (classify.h) and Retry-After (ms, or -1). */
typedef void (*p2q_health_probe_cb)(void *probe_arg, p2q_verdict_t v, int64_t retry_after_ms, const char *msg);

typedef struct {
  void *arg;
  /* collection NULL: the host (GET /readyz); otherwise the no-op write on that collection.
     0 when started (cb fires once), else the probe counts as failed. */
  int (*probe_qdrant)(void *arg, const char *collection, p2q_health_probe_cb cb, void *probe_arg);
  int (*probe_embedder)(void *arg, const char *embedder, p2q_health_probe_cb cb, void *probe_arg);
  /* a target closed or its hold ended: rules may claim again */
  void (*changed)(void *arg);
} p2q_health_io_t;

typedef struct {
  const char *name;             /* "qdrant", "collection:NAME", "embedder:NAME", "node:URL" (several
                                   [qdrant] url nodes; password masked) */
  p2q_target_kind_t kind;
  p2q_breaker_state_t state;
  uint64_t transitions;
  p2q_verdict_t reason;         /* class of the last failure (P2Q_V_DONE: none yet) */
  const char *last_error;       /* "" when none */
  uint64_t failures, rate_limited;  /* totals */
  uint64_t held_ms;             /* rate-limit hold left (0 = none) */
} p2q_target_info_t;

int  p2q_health_new(uv_loop_t *loop, const p2q_config_t *cfg, const p2q_health_io_t *io, p2q_health_t **out);
/* SIGHUP: breaker_threshold, breaker_max, retry_min/max of a reloaded (same rules) config. */
void p2q_health_retune(p2q_health_t *h, const p2q_config_t *cfg);
/* Shutdown: no more probes. close: the timer handle; free after the loop ended. */
void p2q_health_stop(p2q_health_t *h);
void p2q_health_close(p2q_health_t *h);
void p2q_health_free(p2q_health_t *h);

/* May the rule (index in cfg->rules) claim now? Its targets' breakers are closed and their
 * budgets say go (no 429 pause; after a 429 the collection's requests are paced AIMD-style by
 * ratelimit.c: the claims wait while the requests already sent are in debt). */
int  p2q_health_rule_allows(p2q_health_t *h, int rule);
/* Is one of the rule's targets held back by a 429 (paused, or paced below its measured rate until
 * the additive increase brings it back to unlimited)? A worker then claims through one session. */
int  p2q_health_rule_paced(const p2q_health_t *h, int rule);
/* A request to this collection is being sent (every worker's count against one budget). */
void p2q_health_spend(p2q_health_t *h, const char *collection);
/* The outcome of a call for rule: embedder != 0 for its embedder, else its Qdrant collection
 * (or the host when host_wide). Returns how long the affected events should wait before they
 * are claimed again (0 for DONE/SPLIT/EVENT_FAULT/CANCELED): a rate-limit hold (≤ retry_max),
 * or a backoff growing with the target's failures in a row, capped at breaker_max and retry_max
 * (Retry-After raises it up to that cap). */
uint64_t p2q_health_report(p2q_health_t *h, int rule, int embedder, p2q_verdict_t v, int host_wide,
                           int64_t retry_after_ms, const char *msg);

/* The Qdrant client says node (index in [qdrant] url) went down or came back. Node targets are
 * reported (readiness, /status, metrics), never waited on; a node coming back makes open
 * collections and the host probe at once. */
void p2q_health_node(p2q_health_t *h, int node, int up, const char *msg);
/* Lines about nodes down while another answers (ready, but degraded). */
void p2q_health_degraded(const p2q_health_t *h, p2q_buf_t *out);

int  p2q_health_count(const p2q_health_t *h);
void p2q_health_target(const p2q_health_t *h, int i, p2q_target_info_t *out);
/* 1 when every target's breaker is closed (node targets only count when all nodes are down);
 * else appends one line per open target to why. */
int  p2q_health_ready(const p2q_health_t *h, p2q_buf_t *why);

#endif

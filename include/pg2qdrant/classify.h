/*
 * classify.h — every outcome of an outside call, classified once, in one place (pure).
 *
 * An event's attempt is burned only when the failure is the event's own (EVENT_FAULT: Qdrant
 * rejected its point — 400/422, PERMANENT — or a single point is over the body limit — 413,
 * TOO_LARGE — after bisection; an embedder rejected its text). Everything else costs time,
 * never attempts. From the Qdrant client's class (qdrant.h, which reads the body too):
 *
 *   OK         → DONE          a parsed success envelope, nothing less
 *   PERMANENT, TOO_LARGE → SPLIT on several points (bisect, no attempt), EVENT_FAULT on one
 *   RETRY      → TRANSIENT     transport errors, 5xx, 408, 3xx, 1xx, a 2xx without a success
 *                              envelope: the target's breaker counts it, the events wait
 *   RATE       → RATE_LIMITED  429: backpressure on the whole target (every worker)
 *   CONFIG     → CONFIG        401/403/407, unexpected 4xx, a routeless 404: the target stops
 *                              at once, alarm; events wait
 *   MISSING    → MISSING       404/410 of a collection: alarm; events wait
 *   ECANCELED  → CANCELED      the request was cancelled (forced shutdown): events given back
 *
 * host_wide is set for failures of the whole Qdrant host (cannot connect / resolve), which the
 * health module books on the host target instead of the rule's collection; -1 for the failure
 * of one node of a cluster while another answers (P2Q_ENODE: the client already moved to the
 * next node), booked on no target: the events wait retry_min, nothing counts towards a breaker.
 *
 * Qdrant clusters: a write some shards could not apply answers with the status of the first
 * shard error, e.g. HTTP 500 `Service internal error: 1 out of 3 shards failed to apply
 * operation. First error captured: Service internal error: Tonic status error: …` (a replica's
 * node down), 503 from a node in recovery: RETRY → TRANSIENT on the collection (the healthy
 * shards applied their points; the whole batch is sent again later, upserts and deletes by id
 * are idempotent). A 404 carrying that text is TRANSIENT too (the collection exists: some shards
 * applied it); a 400/422 one is a point's fault (bisected) as on a single node.
 */
#ifndef P2Q_CLASSIFY_H
#define P2Q_CLASSIFY_H

#include "pg2qdrant/qdrant.h"

#define P2Q_VERDICTS(X) X(DONE, "done") X(SPLIT, "split") X(EVENT_FAULT, "event_fault") \
  X(TRANSIENT, "transient") X(RATE_LIMITED, "rate_limited") X(CONFIG, "config") \
  X(MISSING, "missing") X(CANCELED, "canceled")
typedef enum {
#define P2Q_VERDICT_ENUM(e, name) P2Q_V_##e,
  P2Q_VERDICTS(P2Q_VERDICT_ENUM)
#undef P2Q_VERDICT_ENUM
  P2Q_V_COUNT
} p2q_verdict_t;

const char *p2q_verdict_name(p2q_verdict_t v);

/* A Qdrant write (or probe) answer: status (0 = none), err (P2Q_E*), curl_code, the client's
 * class (success needs P2Q_QDRANT_OK: a parsed success envelope), points in the request. */
p2q_verdict_t p2q_classify_qdrant(long status, int err, int curl_code, p2q_qdrant_class_t cls, int n_points,
                                  int *host_wide);
/* An embedding call (err != 0: failed as a whole): transient or not, HTTP status if known
 * (0 otherwise), texts in the call. A non-transient failure is the texts' fault (the embedder
 * bisects a rejected HTTP batch itself, so what fails here is what it could not isolate). */
p2q_verdict_t p2q_classify_embed(int err, int transient, long status, int n_texts);
/* 1 when a TRANSIENT Qdrant message is a cluster's shard-level failure (a node holding shards is
 * gone): "… shards failed to apply operation …", or the transport error between nodes alone
 * ("Tonic status error" / "Tonic transport error", when every shard of the request failed).
 * health.c then keeps the collection's breaker open until its probe (a write reaching every
 * shard) passes, and the events wait only retry_min. */
int p2q_classify_shard_failure(const char *msg);

#endif

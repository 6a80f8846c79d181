/*
 * outbox.h — every statement the daemon runs against the outbox (claim, ack, recover, the owner
 * id) and the names of its ops and outcomes (C enums, one name table each). Loop thread only.
 *
 * A worker talks to the outbox through a p2q_outbox_conn_t: its own PostgreSQL connection, the
 * owner id of that connection (which ties its claims to the backend, so recovery recognises a
 * crashed daemon), claims and acks in order. Claimed rows reach the callback parsed
 * (p2q_claim_row_t, valid during the callback only), so a worker never sees a PGresult.
 */
#ifndef P2Q_OUTBOX_H
#define P2Q_OUTBOX_H

#include <stdint.h>
#include <uv.h>

#include "pg2qdrant/config.h"
#include "pg2qdrant/pg.h"

/* Ops of outbox rows as the claim returns them. PRUNE is the worker's own (delete chunks past
   a row's new count); COALESCED marks a claimed row superseded by a newer one of the same row;
   HELD is no event: candidates were held back by an older event of their row in flight (id = how
   many rows). RELEASE is no longer returned (a per-row lease before migration 015). */
#define P2Q_OUTBOX_OPS(X) X(UPSERT, "upsert") X(DELETE, "delete") X(RELEASE, "release") \
  X(PRUNE, "prune") X(COALESCED, "coalesced") X(HELD, "held") \
  X(PAYLOAD, "payload") X(RETRIEVE, "retrieve") /* worker-internal Qdrant requests (worker_reuse.c) */
typedef enum {
#define P2Q_OP_ENUM(e, name) P2Q_OP_##e,
  P2Q_OUTBOX_OPS(P2Q_OP_ENUM)
#undef P2Q_OP_ENUM
  P2Q_OP_COUNT
} p2q_op_t;

/* Outcomes the ack records (see sync_outbox_ack): NONE = not decided yet. */
#define P2Q_OUTBOX_OUTCOMES(X) X(NONE, "") X(DONE, "done") X(RETRY, "retry") X(DEAD, "dead") \
  X(REQUEUE, "requeue") X(RELEASE, "release")
typedef enum {
#define P2Q_OUTCOME_ENUM(e, name) P2Q_OUTCOME_##e,
  P2Q_OUTBOX_OUTCOMES(P2Q_OUTCOME_ENUM)
#undef P2Q_OUTCOME_ENUM
  P2Q_OUTCOME_COUNT
} p2q_outcome_t;

const char *p2q_op_name(p2q_op_t op);
/* -1 for an unknown name */
int p2q_op_parse(const char *name);
const char *p2q_outcome_name(p2q_outcome_t o);

typedef struct {
  long long id;
  const char *rule;
  p2q_op_t op;
  const char *row_key;    /* JSON text */
  const char *bad_op;     /* the op's text when it is none of the names above (op is then UPSERT,
                             and the worker dead-letters the event saying so), else NULL */
  const char *payload;    /* JSON text, NULL for deletes */
  const char *vec;        /* NULL, or the vector the trigger sent unprinted: array_send() bytes of
                             a real[] (vec_len bytes), its place in payload a null (vector_bin.h) */
  size_t vec_len;
  int attempts, max_attempts;
  double created_at;      /* epoch seconds */
} p2q_claim_row_t;

typedef struct {
  long long id;           /* ignored for RELEASE (the claim of a coalesced row is let go) */
  const char *rule;       /* NULL when the event's rule is not configured */
  const char *row_key;
  p2q_outcome_t outcome;
  int64_t delay_ms;       /* capped by retry_max upstream; sent as the SQL integer it fits */
  const char *error;      /* NULL or a message (must be valid UTF-8) */
} p2q_ack_item_t;

typedef struct p2q_outbox_s p2q_outbox_t;            /* the statements, for one schema */
typedef struct p2q_outbox_conn_s p2q_outbox_conn_t;  /* a worker's session */

typedef void (*p2q_claim_cb)(void *arg, int err, const char *errmsg, const p2q_claim_row_t *rows, int n);
typedef void (*p2q_ack_cb)(void *arg, int err, const char *errmsg);
typedef void (*p2q_recover_cb)(void *arg, int err, const char *errmsg, int freed);

typedef struct {
  /* connected and the owner id known (after every reconnect; reconnect != 0 after the first) */
  void (*ready)(void *arg, const char *owner, int reconnect);
  void (*lost)(void *arg, const char *errmsg);     /* the connection is gone: claims orphaned */
  void *arg;
} p2q_outbox_conn_cbs_t;

int  p2q_outbox_new(const char *schema, p2q_outbox_t **out);
void p2q_outbox_free(p2q_outbox_t *ob);

/* The synchronous_commit the daemon pins on its own sessions (worker, liveness and listen
 * connections; [postgres] daemon_synchronous_commit), NULL for "default" (the server's). */
const char *p2q_outbox_sync_commit(const p2q_config_t *cfg);

/* Open a session (connects asynchronously; cbs->ready once the owner id is known); its
 * transactions commit with p2q_outbox_sync_commit(cfg). */
int  p2q_outbox_conn_new(p2q_outbox_t *ob, uv_loop_t *loop, const p2q_config_t *cfg, const char *name,
                         const p2q_outbox_conn_cbs_t *cbs, p2q_outbox_conn_t **out);
/* Claim up to limit events of the given types (and routing key) for lease_ms. 0 when sent. */
int  p2q_outbox_claim(p2q_outbox_conn_t *c, const char *const *types, int n_types, const char *routing_key,
                      int limit, int64_t lease_ms, p2q_claim_cb cb, void *arg);
/* Record one outcome per claimed event in one statement. 0 when sent. */
int  p2q_outbox_ack(p2q_outbox_conn_t *c, const p2q_ack_item_t *items, int n, p2q_ack_cb cb, void *arg);
/* The ack of items, then a claim, in one statement (one transaction): cb gets the claim's rows;
   an error means neither happened. 0 when sent. */
int  p2q_outbox_ack_claim(p2q_outbox_conn_t *c, const p2q_ack_item_t *items, int n, const char *const *types,
                          int n_types, const char *routing_key, int limit, int64_t lease_ms, p2q_claim_cb cb,
                          void *arg);
/* Close the connection (pending callbacks fire with P2Q_ECANCELED), then cb. */
void p2q_outbox_conn_close(p2q_outbox_conn_t *c, void (*cb)(void *arg), void *arg);
/* This process's instance id (recover.c): every session opened afterwards registers its
   connection under it in sync_outbox_instance (its owner id is what the registration returns). */
int  p2q_outbox_set_instance(p2q_outbox_t *ob, const char *instance);

/* The liveness check (sync_outbox_reap): one row per dead daemon process whose claims it freed. */
typedef struct {
  const char *instance;
  int events, leases;
} p2q_reaped_t;
typedef void (*p2q_reap_cb)(void *arg, int err, const char *errmsg, const p2q_reaped_t *rows, int n);
/* Reap the processes all of whose registered backends have been gone for dead_ms. 0 when sent. */
int  p2q_outbox_reap(p2q_outbox_conn_t *c, int dead_ms, p2q_reap_cb cb, void *arg);

/* Free the claims of owners that are gone (grace_ms after their last claim) on any connection, and
   dead-letter exhausted events: one window of P2Q_OUTBOX_RECOVER_WINDOW outbox events per call
   (and the types' fronts when a gone owner can have claims there: sync_outbox_recover_step);
   successive calls walk the outbox, wrapping around. */
#define P2Q_OUTBOX_RECOVER_WINDOW 20000
int  p2q_outbox_recover(p2q_outbox_t *ob, p2q_pg_t *pg, int grace_ms, p2q_recover_cb cb, void *arg);

#endif

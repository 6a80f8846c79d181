/*
 * worker_batch.h — what the worker's stages share (not a public header): the batch and
 * event types and the stage entry points. The worker moves each claimed batch through
 *   worker.c (claim) → worker_embed.c (text → vectors, text rules only) → worker_write.c
 *   (Qdrant requests, bisection, per-event outcomes) → worker.c (ack), with the batch and its
 *   outcomes in worker_batch.c,
 * all on the loop thread, reaching the daemon only through its p2q_worker_ctx_t.
 */
#ifndef P2Q_WORKER_BATCH_H
#define P2Q_WORKER_BATCH_H

#include "pg2qdrant/backoff.h"
#include "pg2qdrant/batch.h"
#include "pg2qdrant/buf.h"
#include "pg2qdrant/points.h"
#include "pg2qdrant/vector_bin.h"
#include "pg2qdrant/worker.h"

typedef struct {
  long long id;
  int rule;               /* index in cfg->rules, -1 when not configured */
  p2q_op_t op;
  char *row_key;           /* in the batch's snaps (claim_cb; a twin shares its event's), or
                              malloc'd when key_owned (snaps out of memory) */
  int key_owned;
  char *payload;           /* in the batch's snaps (claim_cb), or malloc'd when payload_owned */
  int payload_owned;       /* payload is malloc'd (twins): p2q_wk_drop_payload frees it */
  size_t payload_len;     /* strlen(payload) */
  p2q_vector_span_t vec;  /* the vector claim_cb spliced into payload (vector_bin.h), or zeros */
  const unsigned char *vbin; /* or, for an upsert of a vector_column rule (p2q_wk_vector_direct), the
                              vector's array_send() bytes, in the claim's result: valid until claim_cb
                              returns (p2q_wk_prepare runs inside it and clears this); payload is then
                              the snapshot with the placeholder null, the vector printed straight
                              into the request body (worker_embed.c) */
  size_t vbin_len, vroom;  /* vroom: p2q_vector_text_max of those bytes */
  size_t vplace;          /* with vbin: the placeholder's offset in payload, once the point is built */
  size_t vtext[2];        /* with vbin: the vector text's offset and length in its rule's body */
  char *point;            /* built point JSON (upserts); not NUL-terminated when point_lent */
  int point_lent;         /* point is in its rule's request body (wbatch_t.bodies), not malloc'd */
  size_t point_at;        /* its offset there (until the body stops growing) */
  char *text;             /* rendered text to embed (text rules) */
  size_t text_len;
  char *sparse;           /* BM25 sparse vector JSON (sparse = bm25 rules) */
  size_t sparse_len;
  int n_chunks;           /* chunked rules: points written for this row */
  struct wchunk_s *chunks; /* chunked rules: the row's n_chunks chunks (worker_chunk.c) */
  size_t point_len;
  char point_id[P2Q_POINT_ID_MAX];
  int attempts, max_attempts;
  double created_at;
  p2q_outcome_t outcome;  /* P2Q_OUTCOME_NONE until decided */
  int64_t delay_ms;       /* requeue/retry delay (64-bit on the whole delay path) */
  char *error;
} wevent_t;

typedef struct wbatch_s {
  p2q_worker_t *w;
  wevent_t *ev;
  int n;
  int pending;            /* stages in flight (requests, embedding calls, the start guard) */
  int orphaned;
  int ack_tries;
  int released;              /* its slot went back to the policy before its ack (a deferred ack) */
  uint64_t claimed_at;       /* ctx clock when the claim was sent (the lease runs from after it) */
  uint32_t epoch;            /* liveness epoch when the claim was sent (WLIVE): no write in another */
  void (*ack)(struct wbatch_s *b); /* every stage finished: record the outcomes (worker.c) */
  struct embctx_s *embeds;   /* embedding calls in flight (see p2q_wk_embed) */
  p2q_buf_t snaps;           /* the claimed events' row keys and snapshots, NUL-separated: one
                                allocation, not one each */
  struct wbody_s *bodies;    /* per rule (vector_column rules): its upserts' request body, or NULL */
  int n_bodies;
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
  int rule, n;
  p2q_op_t op;
  int idx[];
} wreq_t;

/* A rule's upserts as one request body {"points":[p1,p2,…]}, built by p2q_wk_prepare with the
   points in event order: sent as it is (lent to the writer) when the request holds all n of them,
   so a point is neither in a buffer of its own nor copied into the request (a split copies). */
typedef struct wbody_s {
  p2q_buf_t buf;
  int n;
} wbody_t;

struct p2q_worker_s {
  p2q_worker_ctx_t ctx;
  const p2q_worker_config_t *cfg;
  p2q_outbox_conn_t *conn;
  const char **types;     /* scratch: the event types allowed at this claim */
  int ready;
  p2q_batch_t pol;
  p2q_backoff_t backoff;
  uv_timer_t linger_timer, retry_timer, ack_timer;
  wbatch_t *deferred;     /* finished; its ack waits (ack_timer) to ride on the next claim */
  wbatch_t *riding;       /* whose ack rides on the claim in flight */
  uint64_t retry_due;     /* ctx clock when the retry timer fires, 0 = not armed */
  uint32_t claim_epoch;   /* WLIVE when the claim in flight was sent */
  uint64_t claim_sent;    /* ctx clock then: PostgreSQL starts the lease later, never earlier */
  wbatch_t *batches;
  double vtext_share;     /* the last batch's direct vector texts / the room they might have taken
                             (p2q_vector_text_max); 0: none yet (worker_embed.c's bodies_open) */
  p2q_stats_t stats;       /* the worker's, all its claimers' (used in the first claimer only) */
  p2q_stats_t *st;         /* where this claimer counts: its head's stats */
  struct p2q_worker_s *head;         /* the worker's first claimer (itself when it is the first) */
  struct p2q_worker_s *next_claimer; /* the chain of the worker's claimers from the head: the
                                        others (standby policies, batch.h), last one first */
  int claimer;             /* 1 for the head, 2.. for the others (logs) */
  int claimers_open;       /* head: claimers not yet closed, itself included */
  int closing, open_handles;
  void (*close_cb)(void *);
  void *close_arg;
};

#define WCFG(w) ((w)->ctx.config((w)->ctx.arg))
#define WNOW(w) ((w)->ctx.now((w)->ctx.arg))
#define WLIVE(w) ((w)->ctx.liveness ? (w)->ctx.liveness((w)->ctx.arg) : 1u)

/* How an upsert's request body starts (worker_embed.c builds points into it, worker_write.c lends
   it or builds it again). */
#define P2Q_WK_POINTS_OPEN "{\"points\":["

/* worker_batch.c */
void p2q_wk_set_outcome(wevent_t *e, p2q_outcome_t outcome, int64_t delay_ms, const char *err);
/* One stage of the batch finished (a request, an embedding call); the last one calls b->ack. */
void p2q_wk_request_finished(wbatch_t *b);
void p2q_wk_batch_free(wbatch_t *b);
/* Free e's snapshot when it owns it (payload_owned; else it is in b->snaps) and forget it. */
void p2q_wk_drop_payload(wevent_t *e);

/* worker.c: record every event's outcome in one ack statement */
void p2q_wk_ack(wbatch_t *b);

/* worker_write.c: the rule's prebuilt body when the upsert of idx[0..n) is exactly it, else NULL. */
const p2q_buf_t *p2q_wk_lent_body(const wbatch_t *b, int rule, p2q_op_t op, const int *idx, int n);
/* worker_write.c: send the events idx[0..n) of one rule as one Qdrant request of kind op. */
void p2q_wk_send(wbatch_t *b, int rule, p2q_op_t op, const int *idx, int n);
/* Give those events the outcome of a failure classified as v: requeue with wait_ms for a
   failure of the target (no attempt), retry after a backoff or dead letter for the event's
   own fault (EVENT_FAULT: attempt used). */
void p2q_wk_fail(wbatch_t *b, const int *idx, int n, p2q_verdict_t v, uint64_t wait_ms, const char *msg);

/* worker_embed.c: build points / render texts for a fresh batch, and embed one rule's texts. */
void p2q_wk_prepare(wbatch_t *b);
/* May an upsert of this rule have its binary vector printed straight into the request body (the
   snapshot's text then in two places: its vector in the point, the rest in payload)? Rules that
   read the snapshot later (text rules) or that another rule's twin copies it for (a rule being
   re-embedded: worker_dual.c) may not. */
int p2q_wk_vector_direct(const p2q_config_t *cfg, int rule);
void p2q_wk_embed(wbatch_t *b, int rule, const int *idx, int n);

/* worker_shared.c: is another rule writing this rule's collection? Then its upserts and deletes
   touch only its own vectors and payload keys (the body of one POST …/points/batch). */
int p2q_wk_rule_shared(const p2q_config_t *cfg, int rule);
void p2q_wk_shared_body(p2q_buf_t *body, wbatch_t *b, const p2q_rule_config_t *r, p2q_op_t op, const int *idx,
                        int n);

/* worker_chunk.c: chunked rules (chunk_tokens > 0). A chunk is a window of the rendered text's
   word pieces (chunk.h) whose text, an exact substring, is what is embedded and stored. */
typedef struct wchunk_s {
  uint32_t start, end;    /* bytes of e->text */
  char hash[17];          /* `_text_hash`: p2q_hash64_hex of the chunk's text */
  int keep;               /* its point has this text and model: payload-only update */
} wchunk_t;
/* Cut e->text into e->chunks / e->n_chunks; 0, or sets the event's outcome and returns < 0. */
int p2q_wk_chunk_plan(wbatch_t *b, wevent_t *e, const p2q_rule_config_t *r);
/* The texts of the chunks to embed (not kept) of events idx[0..n), in order: their count, or
   P2Q_ENOMEM. *texts and *lens are malloc'd. */
int p2q_wk_chunk_texts(wbatch_t *b, const int *idx, int n, const char ***texts, size_t **lens);
/* Vectors are back (one per chunk to embed, in p2q_wk_chunk_texts' order): build and send the
   points of events idx[0..n) (whole rows as upserts; rows with kept chunks as one batch of an
   upsert of the new chunks and payload-only updates of the kept ones). */
void p2q_wk_chunk_embedded(wbatch_t *b, int rule, const p2q_embed_result_t *r, const int *idx, int n);
/* A chunk's point payload-only operation, or whole point (vector != NULL), appended to out. */
int p2q_wk_chunk_point(p2q_buf_t *out, const p2q_rule_config_t *r, const wevent_t *e, int j, const char *vector,
                       size_t vlen, char *why, size_t whylen);

/* worker_reuse.c: look up the points' `_text_hash`/`_model`; unchanged texts become payload-only
   updates (P2Q_OP_PAYLOAD), the others go to p2q_wk_embed. */
void p2q_wk_reuse(wbatch_t *b, int rule, const int *idx, int n);

/* worker_dual.c: twins of a re-embedded rule's events for its shadow (the old version), and
   their outcomes folded into their events' before the ack. */
void p2q_wk_dual_fanout(wbatch_t *b);
void p2q_wk_dual_merge(wbatch_t *b);
int p2q_wk_is_twin(const wbatch_t *b, const wevent_t *e);

#endif

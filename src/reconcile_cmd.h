/*
 * reconcile_cmd.h — what the files of `pg2qdrant reconcile` share (not a public header):
 * cmd_reconcile.c (the passes, the command), reconcile_io.c (generated SQL, the Qdrant calls),
 * reconcile_fix.c (--fix). Main thread only. The pure comparison is pg2qdrant/reconcile.h.
 */
#ifndef P2Q_RECONCILE_CMD_H
#define P2Q_RECONCILE_CMD_H

#include <libpq-fe.h>

#include "pg2qdrant/buf.h"
#include "pg2qdrant/capture.h"
#include "pg2qdrant/commands.h"
#include "pg2qdrant/errors.h"
#include "pg2qdrant/qdrant_sync.h"
#include "pg2qdrant/reconcile.h"

#define PAGE 256

enum { K_MISSING, K_ORPHAN, K_STALE, K_VSTALE, K_N };

typedef struct {
  const p2q_config_t *cfg;
  const p2q_rule_config_t *r;
  PGconn *rd;                    /* the rows cursor (one read-only transaction per scan) */
  PGconn *conn;                  /* lookups and fixes (autocommit, short transactions) */
  p2q_qdrant_blocking_t *qc;
  int fix, max_sample, vectors, page2;
  p2q_buf_t lookup, rows, upsert, orphan, keys, events; /* generated SQL */
  p2q_rec_idset_t unresolved;
  long long n[K_N], pending, points, rows_seen, settles;
  long long other_model;         /* stale points whose `_model` is not the rule's embedder */
  long long fixed_upserts, fixed_deletes, fixed_direct;
  char (*sample[K_N])[P2Q_POINT_ID_MAX];
  int nsample[K_N];
  int tty;                       /* stdout is a terminal: show progress */
  double t0;
  char err[2048];
} rec_t;

/* One Qdrant reply: the parsed tree, its raw text and the exact ids of its points. */
typedef struct {
  cJSON *root;
  const cJSON *result;
  char *raw;
  size_t rawlen;
  int n;
  char (*id)[P2Q_POINT_ID_MAX];
} reply_t;

/* Append `s` to a JSON array being built in b (n: elements so far). */
static inline void arr_add(p2q_buf_t *b, int *n, const char *s) {
  p2q_buf_puts(b, (*n)++ ? "," : "[");
  p2q_buf_puts(b, s);
}

static inline void arr_end(p2q_buf_t *b, int n) { p2q_buf_puts(b, n ? "]" : "[]"); }

/* ---- reconcile_io.c ---- */
/* Generate the rule's SQL into c's buffers (lookup, rows, keys, events, upsert, orphan). */
int p2q_reconcile_build_sql(rec_t *c);
/* Frees what p2q_reconcile_build_sql built (safe on a partly built or zeroed rec_t). */
void p2q_reconcile_sql_free(rec_t *c);
/* Run `sql` on c->conn with $1 = keys (a JSON array) [and $2 = the rule]; NULL with c->err set. */
PGresult *p2q_reconcile_exec_keys(rec_t *c, const char *sql, const char *keys, int with_rule);
void p2q_reconcile_reply_free(reply_t *p);
/* POST `suffix` with `body`; the points array is `points` (or the result itself when NULL). Each
   point's exact id text goes to p->id[i] ("?" when it is not a valid id). -1 with c->err set. */
int p2q_reconcile_qcall(rec_t *c, const char *suffix, const char *body, const char *points,
                        reply_t *p, const cJSON **arr);
/* Retrieve these ids (a JSON array), with payload, and with the vector when `vectors`. */
int p2q_reconcile_retrieve(rec_t *c, const char *ids, int vectors, reply_t *p, const cJSON **arr);

/* ---- reconcile_fix.c (each: 0, or -1 with c->err set) ---- */
/* retry --dead: re-capture the keys' existing rows (upserts, rows FOR SHARE) and run `after` ($1 keys,
   $2 rule; *n_after = its first column) in one transaction; with `lock`, under the table's SHARE
   lock, or P2Q_EPG_DENIED (nothing done) when the role may not take it. */
int p2q_reconcile_fix_recapture(rec_t *c, const char *keys, const char *after, int lock, long long *n_after);
/* Enqueue upserts for the keys (a JSON array), one short transaction. */
int p2q_reconcile_fix_upserts(rec_t *c, const char *keys);
/* Delete events for `keys` (a JSON array of keys with no selected row), under the SHARE lock. */
int p2q_reconcile_fix_orphan_events(rec_t *c, const char *keys);
/* Delete orphans (`cand`: sorted, at most PAGE ids, marks cleared) directly in Qdrant, inside a
   transaction holding the SHARE lock, after re-checking each one there. */
int p2q_reconcile_fix_direct(rec_t *c, p2q_rec_idset_t *cand);

#endif

/*
 * reconcile_fix.c — `reconcile --fix`: the repairs, page by page, in short transactions on the
 * command's second connection (c->conn). Main thread only.
 *
 * A fix never changes what a later page sees, so `reconcile` and `reconcile --fix` report the same
 * counts on one state:
 *   - missing, stale and vector_stale rows: upsert events through the outbox, INSERT … SELECT
 *     over those keys with FOR SHARE on the rows (the ordering argument of cmd_backfill.c);
 *   - orphans whose key is derivable from their id and has no row: a delete event, enqueued only
 *     if no selected row has the key, under a brief LOCK TABLE … IN SHARE MODE (lock_timeout 5 s),
 *     which waits for in-flight writers and holds new ones for the statement: a concurrent INSERT
 *     of that key either committed before (row seen, nothing enqueued) or gets a later event;
 *   - other orphans (no derivable key, an id its key does not map to, or a routing_key rule, whose
 *     events routed workers might not claim): deleted directly in Qdrant inside that same kind of
 *     locked transaction, after re-checking each one there: no outbox event of the rule maps to
 *     its id (an insert since pass 2, possibly being applied right now), and the point as it is
 *     now does not name an existing row at its id. So a point at an existing row's id is never
 *     deleted; it is re-enqueued instead.
 */
#include "reconcile_cmd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Enqueue upserts for the keys (a JSON array), one short transaction. */
int p2q_reconcile_fix_upserts(rec_t *c, const char *keys) {
  PGresult *res = p2q_reconcile_exec_keys(c, c->upsert.data, keys, 0);
  if (!res) return -1;
  c->fixed_upserts += atoll(PQcmdTuples(res));
  PQclear(res);
  return 0;
}

/* BEGIN and the table's SHARE lock; -1 (c->err) on failure, P2Q_EPG_DENIED when the role may not
   take the lock (SQLSTATE 42501, whatever lc_messages says). */
static int lock_begin(rec_t *c) {
  p2q_buf_t lock = P2Q_BUF_INIT;
  p2q_buf_puts(&lock, "SET LOCAL lock_timeout = '5s'; LOCK TABLE ");
  p2q_sql_qualified(&lock, c->r->table);
  p2q_buf_puts(&lock, " IN SHARE MODE");
  int rc = p2q_admin_exec(c->conn, "BEGIN", c->err, sizeof c->err);
  if (!rc) {
    PGresult *res = PQexec(c->conn, lock.data);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
      const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
      snprintf(c->err, sizeof c->err, "%s", PQresultErrorMessage(res));
      rc = state && !strcmp(state, "42501") ? P2Q_EPG_DENIED : -1;
      PQclear(PQexec(c->conn, "ROLLBACK"));
    }
    PQclear(res);
  }
  p2q_buf_free(&lock);
  return rc;
}

/* Delete events for `keys` (a JSON array of keys with no selected row), under the SHARE lock. */
int p2q_reconcile_fix_orphan_events(rec_t *c, const char *keys) {
  if (lock_begin(c)) return -1;
  PGresult *res = p2q_reconcile_exec_keys(c, c->orphan.data, keys, 0);
  if (!res) goto rollback;
  c->fixed_deletes += atoll(PQcmdTuples(res));
  PQclear(res);
  if (p2q_admin_exec(c->conn, "COMMIT", c->err, sizeof c->err)) return -1;
  return 0;
rollback:
  PQclear(PQexec(c->conn, "ROLLBACK"));
  return -1;
}

/* `retry --dead` (cmd_admin.c): in one transaction, the rows of `keys` (a JSON array) that exist
   enqueued again as they are NOW (the upsert statement above: rows read FOR SHARE, so a writer of
   one of them either committed before, and its state is the one read, or waits, and its event is
   newer), then `after` ($1 the keys, $2 the rule: the rest of the way back, see cmd_admin.c), whose
   one row's first column goes to *n_after. With `lock`, under the table's SHARE lock (rv13b: it
   holds writers until this commits, so a row inserted after the lookup commits after a delete
   enqueued here at a dead letter's old id, and the claim supersedes that delete); a role that may
   not take it (it needs table-level UPDATE, DELETE or TRUNCATE, which the owner role of
   conf/roles.sql lacks) gets P2Q_EPG_DENIED and nothing is done. Without `lock`, no lock is taken:
   `after` must then enqueue no delete. */
int p2q_reconcile_fix_recapture(rec_t *c, const char *keys, const char *after, int lock, long long *n_after) {
  int rc = lock ? lock_begin(c) : p2q_admin_exec(c->conn, "BEGIN", c->err, sizeof c->err);
  if (rc) return rc == P2Q_EPG_DENIED ? rc : -1;
  PGresult *res = p2q_reconcile_exec_keys(c, c->upsert.data, keys, 0);
  if (!res) goto rollback;
  c->fixed_upserts += atoll(PQcmdTuples(res));
  PQclear(res);
  if (!(res = p2q_reconcile_exec_keys(c, after, keys, 1))) goto rollback;
  *n_after = PQntuples(res) == 1 ? atoll(PQgetvalue(res, 0, 0)) : 0;
  PQclear(res);
  return p2q_admin_exec(c->conn, "COMMIT", c->err, sizeof c->err) ? -1 : 0;
rollback:
  PQclear(PQexec(c->conn, "ROLLBACK"));
  return -1;
}

/* Inside the locked transaction: mark in `cand` (sorted) the ids an outbox event of the rule maps
   to (a row written since the rows were read, whose event may be being applied right now). */
static int mark_pending_ids(rec_t *c, p2q_rec_idset_t *cand) {
  if (p2q_admin_exec(c->conn, c->events.data, c->err, sizeof c->err)) return -1;
  for (;;) {
    PGresult *res = PQexec(c->conn, "FETCH 1000 FROM p2q_reconcile_events");
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
      snprintf(c->err, sizeof c->err, "%s", PQresultErrorMessage(res));
      PQclear(res);
      return -1;
    }
    int rows = PQntuples(res);
    for (int i = 0; i < rows; i++) {
      char id[P2Q_POINT_ID_MAX];
      const char *k = PQgetvalue(res, i, 0);
      if (p2q_point_id(c->r->name, k, strlen(k), id) >= 0) p2q_rec_idset_mark(cand, id);
    }
    PQclear(res);
    if (rows < 1000) break;
  }
  return p2q_admin_exec(c->conn, "CLOSE p2q_reconcile_events", c->err, sizeof c->err);
}

/* Inside the locked transaction: mark in `cand` the points (as retrieved now) that sit at the id
   of an existing selected row, or of a key whose event is pending. */
static int mark_owned_now(rec_t *c, p2q_rec_idset_t *cand, const reply_t *p, const cJSON *arr) {
  p2q_buf_t keys = P2Q_BUF_INIT;
  unsigned char *derived = calloc((size_t)p->n + 1, 1);
  const cJSON *pt;
  int i = 0, rc = -1;
  if (!derived) return -1;
  p2q_buf_putc(&keys, '[');
  cJSON_ArrayForEach(pt, arr) {
    if (i) p2q_buf_putc(&keys, ',');
    derived[i] = p2q_rec_point_key(c->r, p->id[i], cJSON_GetObjectItemCaseSensitive(pt, "payload"), &keys) !=
                 P2Q_REC_KEY_NONE;
    if (!derived[i]) p2q_buf_puts(&keys, "{}");
    i++;
  }
  p2q_buf_putc(&keys, ']');
  PGresult *res = p2q_reconcile_exec_keys(c, c->lookup.data, keys.data, 1);
  if (res && PQntuples(res) == p->n) {
    for (i = 0; i < p->n; i++) {
      char kid[P2Q_POINT_ID_MAX], cid[P2Q_POINT_ID_MAX];
      const char *canon = PQgetvalue(res, i, 0), *key_text = PQgetisnull(res, i, 1) ? NULL : PQgetvalue(res, i, 1);
      if (!derived[i]) continue;
      int row = key_text && p2q_point_id(c->r->name, key_text, strlen(key_text), kid) >= 0 && !strcmp(kid, p->id[i]);
      int pend = PQgetvalue(res, i, 2)[0] == 't' &&
                 p2q_point_id(c->r->name, canon, strlen(canon), cid) >= 0 && !strcmp(cid, p->id[i]);
      if (row || pend) p2q_rec_idset_mark(cand, p->id[i]);
    }
    rc = 0;
  } else if (res) {
    snprintf(c->err, sizeof c->err, "key lookup returned %d rows for %d points", PQntuples(res), p->n);
  }
  PQclear(res);
  free(derived);
  p2q_buf_free(&keys);
  return rc;
}

/* Delete orphans (`cand`: sorted, at most PAGE ids, marks cleared) directly in Qdrant, inside a
   transaction holding the SHARE lock, after re-checking each one there (see the file comment). */
int p2q_reconcile_fix_direct(rec_t *c, p2q_rec_idset_t *cand) {
  p2q_buf_t ids = P2Q_BUF_INIT;
  reply_t p;
  const cJSON *arr;
  int n = 0, rc = -1;
  memset(&p, 0, sizeof p);
  if (lock_begin(c)) return -1;
  if (mark_pending_ids(c, cand)) goto rollback;
  for (int i = 0; i < cand->n; i++)
    if (!cand->owned[i]) arr_add(&ids, &n, cand->id[i]);
  arr_end(&ids, n);
  if (n) {
    if (p2q_reconcile_retrieve(c, ids.data, 0, &p, &arr)) goto rollback;
    if (p.n && mark_owned_now(c, cand, &p, arr)) goto rollback;
    p2q_buf_reset(&ids);
    n = 0;
    for (int i = 0; i < p.n; i++) {
      int j = p2q_rec_idset_find(cand, p.id[i]);
      if (j >= 0 && !cand->owned[j]) arr_add(&ids, &n, p.id[i]);
    }
  }
  if (n) {
    cJSON *root = NULL;
    const cJSON *result;
    p2q_buf_t body = P2Q_BUF_INIT;
    arr_end(&ids, n);
    p2q_buf_printf(&body, "{\"points\":%s}", ids.data);
    int qrc = p2q_qdrant_blocking_call(c->qc, "POST", c->r->collection, "/points/delete?wait=true",
                                       body.data, &root, &result, c->err, sizeof c->err);
    p2q_buf_free(&body);
    cJSON_Delete(root);
    if (qrc) goto rollback;
    c->fixed_direct += n;
  }
  if (p2q_admin_exec(c->conn, "COMMIT", c->err, sizeof c->err)) goto fail;
  rc = 0;
  goto fail;
rollback:
  PQclear(PQexec(c->conn, "ROLLBACK"));
fail:
  p2q_reconcile_reply_free(&p);
  p2q_buf_free(&ids);
  return rc;
}

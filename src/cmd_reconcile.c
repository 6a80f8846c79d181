/*
 * cmd_reconcile.c — `pg2qdrant -c FILE reconcile [RULE] [--fix] [--sample N]`: compare the rows
 * each rule selects (its filter, a non-NULL vector column) with the points of its collection.
 *
 *   missing   a selected row has no point at its id
 *   orphaned  a point stands for no selected row (no row with its key, or not this row's id)
 *   stale     the point's payload differs from what the daemon builds from the row now; the
 *             payload's `_hash` (FNV-1a 64 of the snapshot text, points.c) covers the whole
 *             snapshot, the vector column included, and the rest of the payload is compared too
 *             (so a hand edit that kept `_hash` is found)
 * Rows and points with an event still in sync_outbox are "pending", not drift.
 *
 * Memory: bounded by one page (PAGE points or rows), whatever the table size. Two passes, each
 * streaming one side and probing the other a page at a time (not a merge join: UUIDv5 point ids
 * are SHA-1 of the key, an order PostgreSQL cannot produce, and a merge would also depend on
 * Qdrant's internal id order):
 *   1. Qdrant → PostgreSQL: scroll the collection (limit PAGE, next_page_offset, payload without
 *      vectors); for each page, one query looks up the rows named by the points' keys (`_pk`, or
 *      the integer id of a one-column key) by index. Finds orphaned and stale points.
 *   2. PostgreSQL → Qdrant: a server-side cursor over the selected rows' keys (FETCH PAGE);
 *      for each page, one retrieve (POST /points {"ids"}) of their point ids. Finds missing ones.
 * Pass 2 runs after pass 1's fixes, so a point deleted as an orphan whose row does exist (a
 * point stripped of `_pk`) is found missing and re-enqueued.
 *
 * --fix, page by page, in short transactions on a second connection:
 *   - missing and stale rows: upsert events through the outbox, INSERT … SELECT over those keys
 *     with FOR SHARE on the rows (the ordering argument of cmd_backfill.c applies unchanged);
 *   - orphans with a derivable key whose point id matches it: a delete event for that key,
 *     enqueued only if no selected row has the key, under a brief LOCK TABLE … IN SHARE MODE
 *     (lock_timeout 5 s): the lock waits for in-flight writers and holds new ones for the few
 *     milliseconds of the statement, so a concurrent INSERT of that key either committed before
 *     (then the row is seen and no delete is enqueued) or gets an event id after ours (and wins).
 *     A direct Qdrant delete would race with such an insert; an outbox event keeps per-row order.
 *   - other orphans (no `_pk`, an id that is not the key's, or a rule with a routing_key, whose
 *     events routed workers might not claim): deleted directly in Qdrant, inside that same locked
 *     transaction; no row of the rule maps to such an id (or none did while the lock was held).
 *
 * Limits: rules with chunk_tokens (several points per row) are skipped; integer point ids of
 * 2^53 or more are not checked on the Qdrant side (cJSON reads numbers as doubles) and counted
 * as such; a user column named `_pk` or `_hash` collides with the daemon's payload fields.
 *
 * Output: on a terminal, one updating progress line (points and rows checked, rate) per rule;
 * then, and otherwise only, the per-rule summary with samples.
 *
 * Exit status: 0 in sync (pending events allowed), 3 drift found (also with --fix: the repairs
 * were enqueued; run again once the daemon drained them to see 0), 1 error, 2 usage.
 */
#include "pg2qdrant/capture.h"
#include "pg2qdrant/commands.h"
#include "pg2qdrant/errors.h"
#include "pg2qdrant/qdrant_sync.h"
#include "pg2qdrant/reconcile.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <time.h>

#define PAGE 256
#define USAGE "usage: pg2qdrant reconcile [RULE] [--fix] [--sample N]\n"

/* ---------------- pure parts (reconcile.h) ---------------- */

int p2q_rec_id_text(const cJSON *id, char out[P2Q_POINT_ID_MAX]) {
  if (cJSON_IsNumber(id) && id->valuedouble >= 9007199254740992.0) return P2Q_ERANGE;
  if (cJSON_IsNumber(id) && id->valuedouble >= 0) {
    snprintf(out, P2Q_POINT_ID_MAX, "%.0f", id->valuedouble);
    return 0;
  }
  if (cJSON_IsString(id) && id->valuestring && strlen(id->valuestring) == 36) {
    snprintf(out, P2Q_POINT_ID_MAX, "\"%s\"", id->valuestring);
    for (char *p = out; *p; p++)
      if (*p >= 'A' && *p <= 'F') *p = (char)(*p - 'A' + 'a');
    return 0;
  }
  return P2Q_EINVAL;
}

int p2q_rec_point_key(const p2q_rule_config_t *r, const cJSON *point, p2q_buf_t *key) {
  const cJSON *payload = cJSON_GetObjectItemCaseSensitive(point, "payload");
  const cJSON *pk = cJSON_IsObject(payload) ? cJSON_GetObjectItemCaseSensitive(payload, "_pk") : NULL;
  const cJSON *id = cJSON_GetObjectItemCaseSensitive(point, "id");
  if (cJSON_IsObject(pk) && cJSON_GetArraySize(pk) == r->key.n) {
    char *s = cJSON_PrintUnformatted(pk);
    if (!s) return 0;
    p2q_buf_puts(key, s);
    free(s);
    return 1;
  }
  if (pk || !cJSON_IsNumber(id) || r->key.n != 1) return 0;
  char text[P2Q_POINT_ID_MAX];
  if (p2q_rec_id_text(id, text)) return 0;
  p2q_buf_putc(key, '{');
  p2q_buf_json_string(key, r->key.items[0], strlen(r->key.items[0]));
  p2q_buf_printf(key, ":%s}", text);
  return 1;
}

p2q_rec_kind_t p2q_rec_classify(const p2q_rule_config_t *r, const char *point_id,
                                const cJSON *payload, const char *row_key, const char *snapshot) {
  char rid[P2Q_POINT_ID_MAX], why[128];
  if (!row_key || !snapshot) return P2Q_REC_ORPHAN;
  int uuid = p2q_point_id(r->name, row_key, strlen(row_key), rid);
  if (uuid < 0 || strcmp(rid, point_id)) return P2Q_REC_ORPHAN;
  p2q_buf_t b = P2Q_BUF_INIT;
  /* a rule embedding `text` has no vector in the snapshot: any vector will do, only the payload
     is compared */
  const char *vec = r->vector_column ? NULL : "[0]";
  p2q_rec_kind_t kind = P2Q_REC_STALE;
  if (p2q_point_build(&b, r, rid, uuid, row_key, snapshot, strlen(snapshot), vec, vec ? 3 : 0, why,
                      sizeof why) == 0) {
    cJSON *want = cJSON_ParseWithLength(b.data, b.len);
    const cJSON *wp = cJSON_GetObjectItemCaseSensitive(want, "payload");
    if (wp && payload && cJSON_Compare(wp, payload, 1)) kind = P2Q_REC_OK;
    cJSON_Delete(want);
  }
  p2q_buf_free(&b);
  return kind;
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

int p2q_rec_mark_missing(char *const *want, int nwant, char **have, int nhave,
                         unsigned char *missing) {
  qsort(have, (size_t)nhave, sizeof *have, cmp_str);
  for (int i = 0; i < nwant; i++)
    missing[i] = !bsearch(&want[i], have, (size_t)nhave, sizeof *have, cmp_str);
  return 0;
}

/* ---------------- the command ---------------- */

enum { K_MISSING, K_ORPHAN, K_STALE, K_N };
static const char *const kind_name[K_N] = {"missing", "orphaned", "stale"};

typedef struct {
  const p2q_config_t *cfg;
  const p2q_rule_config_t *r;
  PGconn *conn;                  /* lookups and fixes (autocommit, short transactions) */
  p2q_qdrant_blocking_t *qc;
  int fix, max_sample;
  p2q_buf_t lookup, upsert, orphan; /* generated SQL */
  long long n[K_N], pending, points, rows, skipped;
  long long fixed_upserts, fixed_deletes, fixed_direct;
  char (*sample[K_N])[P2Q_POINT_ID_MAX];
  int nsample[K_N];
  int tty;                       /* stdout is a terminal: show progress */
  double t0;
  char err[2048];
} rec_t;

static double mono_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One updating line on a terminal (nothing otherwise: the report is the summary). */
static void progress(const rec_t *c) {
  if (!c->tty) return;
  double el = mono_s() - c->t0;
  printf("\rreconcile %s: %lld point(s), %lld row(s) checked, %.0f/s   ", c->r->name, c->points, c->rows,
         el > 0 ? (double)(c->points + c->rows) / el : 0.0);
  fflush(stdout);
}

static void note(rec_t *c, int kind, const char *id) {
  c->n[kind]++;
  if (c->nsample[kind] < c->max_sample) snprintf(c->sample[kind][c->nsample[kind]++], P2Q_POINT_ID_MAX, "%s", id);
}

/* "r"."k1" = p."k1" AND … */
static void key_join(p2q_buf_t *b, const p2q_rule_config_t *r) {
  for (int i = 0; i < r->key.n; i++) {
    p2q_buf_puts(b, i ? " AND r." : "r.");
    p2q_sql_ident(b, r->key.items[i]);
    p2q_buf_puts(b, " = p.");
    p2q_sql_ident(b, r->key.items[i]);
  }
}

/* " WHERE (filter) AND r.vec IS NOT NULL AND <key join>" over r (inner scope: names resolve to r). */
static void selected_where(p2q_buf_t *b, const p2q_rule_config_t *r, int join) {
  p2q_buf_printf(b, " WHERE (%s)", r->filter ? r->filter : "true");
  if (r->vector_column) {
    p2q_buf_puts(b, " AND r.");
    p2q_sql_ident(b, r->vector_column);
    p2q_buf_puts(b, " IS NOT NULL");
  }
  if (join) {
    p2q_buf_puts(b, " AND ");
    key_join(b, r);
  }
}

/* "jsonb_array_elements($1::jsonb) WITH ORDINALITY AS k(v, i) CROSS JOIN LATERAL
   jsonb_populate_record(NULL::<table>, k.v) AS p" */
static int keys_from(p2q_buf_t *b, const p2q_rule_config_t *r) {
  p2q_buf_puts(b, "jsonb_array_elements($1::jsonb) WITH ORDINALITY AS k(v, i)"
                  " CROSS JOIN LATERAL jsonb_populate_record(NULL::");
  if (p2q_sql_qualified(b, r->table)) return P2Q_EINVAL;
  p2q_buf_puts(b, ", k.v) AS p");
  return 0;
}

static int build_sql(rec_t *c) {
  const p2q_rule_config_t *r = c->r;
  p2q_buf_t q = P2Q_BUF_INIT, src = P2Q_BUF_INIT;
  int rc = P2Q_EINVAL;
  p2q_sql_ident(&q, c->cfg->pg_schema);
  /* lookup: per input key (in order) its canonical text, the selected row's key and snapshot
     (NULL when none), and whether an event of that key is still in the outbox */
  p2q_buf_puts(&c->lookup, "SELECT k.v::text, x.key_text, x.snap_text, EXISTS (SELECT 1 FROM ");
  p2q_buf_printf(&c->lookup, "%s.sync_outbox o WHERE o.rule = $2 AND o.row_key = k.v) FROM ", q.data);
  if (keys_from(&c->lookup, r)) goto fail;
  p2q_buf_puts(&c->lookup, " LEFT JOIN LATERAL (SELECT ");
  if ((rc = p2q_capture_key_expr(r, "r", &c->lookup))) goto fail;
  p2q_buf_puts(&c->lookup, "::text AS key_text, ");
  if ((rc = p2q_capture_snapshot_expr(r, "r", &c->lookup))) goto fail;
  p2q_buf_puts(&c->lookup, "::text AS snap_text FROM ");
  if ((rc = p2q_sql_qualified(&c->lookup, r->table))) goto fail;
  p2q_buf_puts(&c->lookup, " AS r");
  selected_where(&c->lookup, r, 1);
  p2q_buf_puts(&c->lookup, ") AS x ON true ORDER BY k.i");
  /* upsert events for the rows of these keys, rows locked FOR SHARE */
  p2q_buf_puts(&src, "(SELECT x.* FROM ");
  if (keys_from(&src, r)) goto fail;
  p2q_buf_puts(&src, " CROSS JOIN LATERAL (SELECT r.* FROM ");
  if ((rc = p2q_sql_qualified(&src, r->table))) goto fail;
  p2q_buf_printf(&src, " AS r WHERE (%s) AND ", r->filter ? r->filter : "true");
  key_join(&src, r);
  p2q_buf_puts(&src, " FOR SHARE OF r) AS x)");
  if ((rc = p2q_capture_enqueue_sql(r, c->cfg->pg_schema, (int)c->cfg->max_attempts, "upsert", src.data, &c->upsert)))
    goto fail;
  /* delete events for keys no selected row has (run under the SHARE lock) */
  p2q_buf_reset(&src);
  p2q_buf_puts(&src, "(SELECT p.* FROM ");
  if (keys_from(&src, r)) goto fail;
  p2q_buf_puts(&src, " WHERE NOT EXISTS (SELECT 1 FROM ");
  if ((rc = p2q_sql_qualified(&src, r->table))) goto fail;
  p2q_buf_puts(&src, " AS r");
  selected_where(&src, r, 1);
  p2q_buf_puts(&src, "))");
  if ((rc = p2q_capture_enqueue_sql(r, c->cfg->pg_schema, (int)c->cfg->max_attempts, "delete", src.data, &c->orphan)))
    goto fail;
  rc = p2q_buf_error(&c->lookup) || p2q_buf_error(&c->upsert) ? P2Q_ENOMEM : 0;
fail:
  p2q_buf_free(&q);
  p2q_buf_free(&src);
  return rc;
}

static PGresult *exec_keys(rec_t *c, const char *sql, const char *keys, int with_rule) {
  const char *params[] = {keys, c->r->name};
  PGresult *res = PQexecParams(c->conn, sql, with_rule ? 2 : 1, NULL, params, NULL, NULL, 0);
  ExecStatusType st = PQresultStatus(res);
  if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) return res;
  snprintf(c->err, sizeof c->err, "%s", PQresultErrorMessage(res));
  PQclear(res);
  return NULL;
}

/* Enqueue upserts for the keys (a JSON array), one short transaction. */
static int fix_upserts(rec_t *c, const char *keys) {
  PGresult *res = exec_keys(c, c->upsert.data, keys, 0);
  if (!res) return -1;
  c->fixed_upserts += atoll(PQcmdTuples(res));
  PQclear(res);
  return 0;
}

/* Delete events for `keys`, direct deletes of `ids` (JSON arrays), under a SHARE lock. */
static int fix_orphans(rec_t *c, const char *keys, int nkeys, const char *ids, int nids) {
  p2q_buf_t lock = P2Q_BUF_INIT;
  p2q_buf_puts(&lock, "SET LOCAL lock_timeout = '5s'; LOCK TABLE ");
  p2q_sql_qualified(&lock, c->r->table);
  p2q_buf_puts(&lock, " IN SHARE MODE");
  int rc = -1;
  if (p2q_admin_exec(c->conn, "BEGIN", c->err, sizeof c->err)) goto fail;
  if (p2q_admin_exec(c->conn, lock.data, c->err, sizeof c->err)) goto rollback;
  if (nkeys) {
    PGresult *res = exec_keys(c, c->orphan.data, keys, 0);
    if (!res) goto rollback;
    c->fixed_deletes += atoll(PQcmdTuples(res));
    PQclear(res);
  }
  if (nids) {
    p2q_buf_t body = P2Q_BUF_INIT;
    cJSON *root = NULL;
    const cJSON *result;
    p2q_buf_printf(&body, "{\"points\":%s}", ids);
    int qrc = p2q_qdrant_blocking_call(c->qc, "POST", c->r->collection, "/points/delete?wait=true",
                                       body.data, &root, &result, c->err, sizeof c->err);
    p2q_buf_free(&body);
    cJSON_Delete(root);
    if (qrc) goto rollback;
    c->fixed_direct += nids;
  }
  if (p2q_admin_exec(c->conn, "COMMIT", c->err, sizeof c->err)) goto fail;
  rc = 0;
  goto fail;
rollback:
  PQclear(PQexec(c->conn, "ROLLBACK"));
fail:
  p2q_buf_free(&lock);
  return rc;
}

/* Classify one scrolled page against its lookup result; fix when asked. */
static int check_page(rec_t *c, const cJSON *points, PGresult *res, const unsigned char *derived) {
  p2q_buf_t stale = P2Q_BUF_INIT, okeys = P2Q_BUF_INIT, oids = P2Q_BUF_INIT;
  int nstale = 0, nokeys = 0, noids = 0, i = 0, rc = 0;
  const cJSON *pt;
  cJSON_ArrayForEach(pt, points) {
    char id[P2Q_POINT_ID_MAX], kid[P2Q_POINT_ID_MAX];
    const char *canon = PQgetvalue(res, i, 0);
    const char *row_key = PQgetisnull(res, i, 1) ? NULL : PQgetvalue(res, i, 1);
    const char *snap = PQgetisnull(res, i, 2) ? NULL : PQgetvalue(res, i, 2);
    int pending = derived[i] && PQgetvalue(res, i, 3)[0] == 't';
    const cJSON *payload = cJSON_GetObjectItemCaseSensitive(pt, "payload");
    int idrc = p2q_rec_id_text(cJSON_GetObjectItemCaseSensitive(pt, "id"), id);
    if (idrc == P2Q_ERANGE) { c->skipped++; i++; continue; } /* not exact in a double */
    if (idrc) snprintf(id, sizeof id, "?");
    p2q_rec_kind_t k = pending ? P2Q_REC_OK : p2q_rec_classify(c->r, id, payload, row_key, snap);
    if (pending) c->pending++;
    if (k == P2Q_REC_STALE) {
      note(c, K_STALE, id);
      p2q_buf_puts(&stale, nstale++ ? "," : "[");
      p2q_buf_puts(&stale, row_key);
    } else if (k == P2Q_REC_ORPHAN) {
      note(c, K_ORPHAN, id);
      /* an event can delete it only if the key's point id is this point's id */
      int by_event = derived[i] && !c->r->routing_key && !row_key &&
                     p2q_point_id(c->r->name, canon, strlen(canon), kid) >= 0 && !strcmp(kid, id);
      if (by_event) {
        p2q_buf_puts(&okeys, nokeys++ ? "," : "[");
        p2q_buf_puts(&okeys, canon);
      } else if (strcmp(id, "?")) {
        p2q_buf_puts(&oids, noids++ ? "," : "[");
        p2q_buf_puts(&oids, id);
      }
    }
    i++;
  }
  p2q_buf_puts(&stale, "]");
  p2q_buf_puts(&okeys, "]");
  p2q_buf_puts(&oids, "]");
  if (c->fix && nstale) rc = fix_upserts(c, stale.data);
  if (!rc && c->fix && (nokeys || noids)) rc = fix_orphans(c, okeys.data, nokeys, oids.data, noids);
  p2q_buf_free(&stale);
  p2q_buf_free(&okeys);
  p2q_buf_free(&oids);
  return rc;
}

/* Pass 1: scroll the collection page by page. */
static int qdrant_pass(rec_t *c) {
  char *offset = NULL;
  int rc = -1;
  for (;;) {
    cJSON *root = NULL;
    const cJSON *points, *next;
    if (p2q_qdrant_blocking_scroll(c->qc, c->r->collection, offset, PAGE, &root, &points, &next,
                                   c->err, sizeof c->err))
      goto fail;
    int n = cJSON_GetArraySize(points), pr = 0;
    unsigned char derived[PAGE * 2];
    p2q_buf_t keys = P2Q_BUF_INIT;
    const cJSON *pt;
    p2q_buf_putc(&keys, '[');
    int i = 0;
    cJSON_ArrayForEach(pt, points) {
      if (i) p2q_buf_putc(&keys, ',');
      if (i < PAGE * 2) derived[i] = (unsigned char)p2q_rec_point_key(c->r, pt, &keys);
      if (i >= PAGE * 2 || !derived[i]) p2q_buf_puts(&keys, "{}");
      i++;
    }
    p2q_buf_putc(&keys, ']');
    PGresult *res = n && n <= PAGE * 2 ? exec_keys(c, c->lookup.data, keys.data, 1) : NULL;
    p2q_buf_free(&keys);
    if (n > PAGE * 2) snprintf(c->err, sizeof c->err, "scroll returned %d points for a limit of %d", n, PAGE);
    if (n && (!res || PQntuples(res) != n)) {
      if (res) snprintf(c->err, sizeof c->err, "key lookup returned %d rows for %d points", PQntuples(res), n);
      PQclear(res);
      cJSON_Delete(root);
      goto fail;
    }
    c->points += n;
    if (n) pr = check_page(c, points, res, derived);
    progress(c);
    PQclear(res);
    free(offset);
    offset = cJSON_IsNull(next) || !next ? NULL : cJSON_PrintUnformatted(next);
    cJSON_Delete(root);
    if (pr) goto fail;
    if (!offset) break;
  }
  rc = 0;
fail:
  free(offset);
  return rc;
}

/* Which of these point ids does the collection hold? Fills have[] (malloc'd strings). */
static int retrieve(rec_t *c, char *const *ids, int n, char **have, int *nhave) {
  p2q_buf_t body = P2Q_BUF_INIT;
  cJSON *root = NULL;
  const cJSON *result, *pt;
  p2q_buf_puts(&body, "{\"with_payload\":false,\"with_vector\":false,\"ids\":[");
  for (int i = 0; i < n; i++) p2q_buf_printf(&body, "%s%s", i ? "," : "", ids[i]);
  p2q_buf_puts(&body, "]}");
  int rc = p2q_qdrant_blocking_call(c->qc, "POST", c->r->collection, "/points", body.data, &root,
                                    &result, c->err, sizeof c->err);
  p2q_buf_free(&body);
  *nhave = 0;
  if (rc) return -1;
  cJSON_ArrayForEach(pt, result) {
    char id[P2Q_POINT_ID_MAX];
    if (*nhave < n && !p2q_rec_id_text(cJSON_GetObjectItemCaseSensitive(pt, "id"), id))
      have[(*nhave)++] = strdup(id);
  }
  cJSON_Delete(root);
  return 0;
}

/* One page of selected rows (key text, pending flag): report and fix the missing points. */
static int check_rows(rec_t *c, PGresult *res) {
  int n = PQntuples(res), nhave = 0, nmiss = 0, rc = -1;
  char *ids[PAGE], *have[PAGE];
  unsigned char missing[PAGE];
  p2q_buf_t keys = P2Q_BUF_INIT;
  for (int i = 0; i < n; i++) {
    char id[P2Q_POINT_ID_MAX];
    const char *key = PQgetvalue(res, i, 0);
    if (p2q_point_id(c->r->name, key, strlen(key), id) < 0) snprintf(id, sizeof id, "null");
    ids[i] = strdup(id);
  }
  if (retrieve(c, ids, n, have, &nhave)) goto fail;
  p2q_rec_mark_missing(ids, n, have, nhave, missing);
  for (int i = 0; i < n; i++) {
    if (!missing[i]) continue;
    if (PQgetvalue(res, i, 1)[0] == 't') { c->pending++; continue; }
    note(c, K_MISSING, ids[i]);
    p2q_buf_puts(&keys, nmiss++ ? "," : "[");
    p2q_buf_puts(&keys, PQgetvalue(res, i, 0));
  }
  p2q_buf_puts(&keys, "]");
  rc = c->fix && nmiss ? fix_upserts(c, keys.data) : 0;
fail:
  for (int i = 0; i < n; i++) free(ids[i]);
  for (int i = 0; i < nhave; i++) free(have[i]);
  p2q_buf_free(&keys);
  return rc;
}

/* Pass 2: a cursor over the selected rows' keys, in its own read-only transaction on `rd`. */
static int rows_pass(rec_t *c, PGconn *rd) {
  p2q_buf_t sql = P2Q_BUF_INIT, q = P2Q_BUF_INIT;
  char fetch[64];
  int rc = -1;
  p2q_sql_ident(&q, c->cfg->pg_schema);
  p2q_buf_puts(&sql, "DECLARE p2q_reconcile NO SCROLL CURSOR FOR SELECT ");
  p2q_capture_key_expr(c->r, "r", &sql);
  p2q_buf_printf(&sql, "::text, EXISTS (SELECT 1 FROM %s.sync_outbox o WHERE o.rule = ", q.data);
  p2q_sql_literal(&sql, c->r->name);
  p2q_buf_puts(&sql, " AND o.row_key = ");
  p2q_capture_key_expr(c->r, "r", &sql);
  p2q_buf_puts(&sql, ") FROM ");
  if (p2q_sql_qualified(&sql, c->r->table)) goto fail;
  p2q_buf_puts(&sql, " AS r");
  selected_where(&sql, c->r, 0);
  if (p2q_admin_exec(rd, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", c->err, sizeof c->err) ||
      p2q_admin_exec(rd, sql.data, c->err, sizeof c->err))
    goto fail;
  snprintf(fetch, sizeof fetch, "FETCH %d FROM p2q_reconcile", PAGE);
  for (;;) {
    PGresult *res = PQexec(rd, fetch);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
      snprintf(c->err, sizeof c->err, "%s", PQresultErrorMessage(res));
      PQclear(res);
      goto fail;
    }
    int n = PQntuples(res), cr = n ? check_rows(c, res) : 0;
    c->rows += n;
    PQclear(res);
    progress(c);
    if (cr) goto fail;
    if (n < PAGE) break;
  }
  rc = 0;
fail:
  PQclear(PQexec(rd, "ROLLBACK"));
  p2q_buf_free(&sql);
  p2q_buf_free(&q);
  return rc;
}

static void report(const rec_t *c) {
  printf("rule %s (collection %s): %lld point(s), %lld row(s): %lld missing, %lld orphaned, %lld stale,"
         " %lld pending\n", c->r->name, c->r->collection, c->points, c->rows, c->n[K_MISSING],
         c->n[K_ORPHAN], c->n[K_STALE], c->pending);
  if (c->skipped)
    printf("  %lld point(s) with integer ids of 2^53 or more were not checked\n", c->skipped);
  for (int k = 0; k < K_N; k++) {
    if (!c->nsample[k]) continue;
    printf("  %s:", kind_name[k]);
    for (int i = 0; i < c->nsample[k]; i++) printf(" %s", c->sample[k][i]);
    printf("%s\n", c->n[k] > c->nsample[k] ? " …" : "");
  }
  if (c->fix && (c->n[K_MISSING] || c->n[K_ORPHAN] || c->n[K_STALE]))
    printf("  fix: %lld upsert event(s) and %lld delete event(s) enqueued, %lld point(s) deleted directly\n",
           c->fixed_upserts, c->fixed_deletes, c->fixed_direct);
}

/* Reconcile one rule: 0 in sync, 3 drift, 1 error. */
static int reconcile_rule(const p2q_config_t *cfg, const p2q_rule_config_t *r, PGconn *rd,
                          PGconn *wr, p2q_qdrant_blocking_t *qc, int fix, int max_sample) {
  rec_t c;
  int rc = 1;
  memset(&c, 0, sizeof c);
  c.cfg = cfg; c.r = r; c.conn = wr; c.qc = qc; c.fix = fix; c.max_sample = max_sample;
  c.tty = isatty(STDOUT_FILENO);
  c.t0 = mono_s();
  for (int k = 0; k < K_N; k++)
    if (max_sample && !(c.sample[k] = calloc((size_t)max_sample, P2Q_POINT_ID_MAX))) goto fail;
  if (r->chunk_tokens > 0) { /* several points per row: ids are not the row's */
    printf("rule %s: skipped (reconcile does not handle chunked rules yet)\n", r->name);
    rc = 0;
    goto fail;
  }
  if (build_sql(&c)) { snprintf(c.err, sizeof c.err, "cannot generate SQL (bad table name?)"); goto fail; }
  if (qdrant_pass(&c) || rows_pass(&c, rd)) goto fail;
  if (c.tty) printf("\r\033[K"); /* clear the progress line */
  report(&c);
  rc = c.n[K_MISSING] || c.n[K_ORPHAN] || c.n[K_STALE] ? 3 : 0;
fail:
  if (rc == 1) {
    size_t l = strlen(c.err);
    while (l && (c.err[l - 1] == '\n' || c.err[l - 1] == ' ')) c.err[--l] = 0;
    fprintf(stderr, "pg2qdrant: reconcile: rule %s: %s\n", r->name, c.err);
  }
  for (int k = 0; k < K_N; k++) free(c.sample[k]);
  p2q_buf_free(&c.lookup);
  p2q_buf_free(&c.upsert);
  p2q_buf_free(&c.orphan);
  return rc;
}

int p2q_cmd_reconcile(const p2q_config_t *cfg, int argc, char **argv) {
  const char *only = NULL;
  int fix = 0, sample = 10, rc = 0;
  for (int i = 0; i < argc; i++) {
    if (!strcmp(argv[i], "--fix")) fix = 1;
    else if (!strcmp(argv[i], "--sample") && i + 1 < argc) {
      char *end;
      long v = strtol(argv[++i], &end, 10);
      if (*end || v < 0 || v > 10000) { fprintf(stderr, "pg2qdrant: reconcile: --sample must be 0..10000\n"); return 2; }
      sample = (int)v;
    } else if (argv[i][0] != '-' && !only) only = argv[i];
    else { fputs(USAGE, stderr); return 2; }
  }
  if (only && !p2q_config_rule(cfg, only)) { fprintf(stderr, "pg2qdrant: reconcile: no rule %s in %s\n", only, cfg->path); return 2; }
  if (cfg->n_rules == 0) { fprintf(stderr, "pg2qdrant: reconcile: no [rule.NAME] section in %s\n", cfg->path); return 2; }
  char err[1024];
  p2q_qdrant_options_t o;
  p2q_qdrant_blocking_t *qc = NULL;
  PGconn *rd = p2q_admin_connect(cfg, "pg2qdrant/reconcile", err, sizeof err), *wr = NULL;
  if (rd) wr = p2q_admin_connect(cfg, "pg2qdrant/reconcile", err, sizeof err);
  if (!rd || !wr) { fprintf(stderr, "pg2qdrant: %s\n", err); rc = 1; goto fail; }
  p2q_qdrant_options_from_config(cfg, &o);
  if (p2q_qdrant_blocking_open(&o, &qc)) { fprintf(stderr, "pg2qdrant: reconcile: invalid Qdrant options\n"); rc = 1; goto fail; }
  for (int i = 0; i < cfg->n_rules; i++) {
    const p2q_rule_config_t *r = &cfg->rules[i];
    if (only && strcmp(r->name, only)) continue;
    int one = reconcile_rule(cfg, r, rd, wr, qc, fix, sample);
    if (one == 1) { rc = 1; break; }
    if (one == 3) rc = 3;
  }
fail:
  p2q_qdrant_blocking_close(qc);
  PQfinish(rd);
  PQfinish(wr);
  return rc;
}

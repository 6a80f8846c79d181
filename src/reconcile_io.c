/*
 * reconcile_io.c — `reconcile`'s I/O helpers: the SQL it generates for a rule (the per-page row
 * lookups, the keys cursors, the enqueue statements of --fix) and runs, and its Qdrant calls
 * (scroll, retrieve) with exact point ids read from the raw reply. Main thread only; the passes
 * that use them are cmd_reconcile.c (its comment describes them).
 */
#include "reconcile_cmd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------- SQL ---------------- */

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

/*
 * Per input key of $1 (a JSON array; $2 the rule), in order: its canonical jsonb text, the key
 * text of the selected row with that key (NULL when none), whether an event of that key is still
 * in the outbox, and with `snap` the row's snapshot text.
 */
static int lookup_sql(rec_t *c, p2q_buf_t *b, const char *q, int snap) {
  const p2q_rule_config_t *r = c->r;
  p2q_buf_puts(b, "SELECT k.v::text, x.key_text, EXISTS (SELECT 1 FROM ");
  /* the hash: sync_outbox_row_idx's expression (migration 012) */
  p2q_buf_printf(b, "%s.sync_outbox o WHERE pg_catalog.jsonb_hash_extended(o.row_key, 0) = pg_catalog.jsonb_hash_extended(k.v, 0)"
                    " AND o.rule = $2 AND o.row_key = k.v)%s FROM ", q, snap ? ", x.snap_text" : "");
  if (keys_from(b, r)) return P2Q_EINVAL;
  p2q_buf_puts(b, " LEFT JOIN LATERAL (SELECT ");
  if (p2q_capture_key_expr(r, "r", b)) return P2Q_EINVAL;
  p2q_buf_puts(b, "::text AS key_text");
  if (snap) {
    p2q_buf_puts(b, ", ");
    if (p2q_capture_snapshot_expr(r, "r", b)) return P2Q_EINVAL;
    p2q_buf_puts(b, "::text AS snap_text");
  }
  p2q_buf_puts(b, " FROM ");
  if (p2q_sql_qualified(b, r->table)) return P2Q_EINVAL;
  p2q_buf_puts(b, " AS r");
  selected_where(b, r, 1);
  p2q_buf_puts(b, ") AS x ON true ORDER BY k.i");
  return 0;
}

/* The rows cursor (selected rows' keys), the rows lookup, the outbox keys cursor. */
static int rows_sql(rec_t *c, const char *q) {
  const p2q_rule_config_t *r = c->r;
  if (lookup_sql(c, &c->lookup, q, 0) || lookup_sql(c, &c->rows, q, 1)) return P2Q_EINVAL;
  /* the settling scans need the keys only */
  p2q_buf_puts(&c->keys, "DECLARE p2q_reconcile NO SCROLL CURSOR FOR SELECT ");
  p2q_capture_key_expr(r, "r", &c->keys);
  p2q_buf_puts(&c->keys, "::text FROM ");
  if (p2q_sql_qualified(&c->keys, r->table)) return P2Q_EINVAL;
  p2q_buf_puts(&c->keys, " AS r");
  selected_where(&c->keys, r, 0);
  /* the keys of the rule's outbox events (fix_direct's re-check) */
  p2q_buf_printf(&c->events, "DECLARE p2q_reconcile_events NO SCROLL CURSOR FOR SELECT row_key::text"
                             " FROM %s.sync_outbox WHERE rule = ", q);
  p2q_sql_literal(&c->events, r->name);
  return 0;
}

void p2q_reconcile_sql_free(rec_t *c) {
  p2q_buf_free(&c->lookup);
  p2q_buf_free(&c->upsert);
  p2q_buf_free(&c->orphan);
  p2q_buf_free(&c->rows);
  p2q_buf_free(&c->keys);
  p2q_buf_free(&c->events);
}

int p2q_reconcile_build_sql(rec_t *c) {
  const p2q_rule_config_t *r = c->r;
  p2q_buf_t q = P2Q_BUF_INIT, src = P2Q_BUF_INIT;
  int rc = P2Q_EINVAL;
  p2q_sql_ident(&q, c->cfg->pg_schema);
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
  if ((rc = rows_sql(c, q.data))) goto fail;
  rc = p2q_buf_error(&c->lookup) || p2q_buf_error(&c->upsert) || p2q_buf_error(&c->orphan) ||
               p2q_buf_error(&c->rows) || p2q_buf_error(&c->keys) || p2q_buf_error(&c->events) ? P2Q_ENOMEM : 0;
fail:
  p2q_buf_free(&q);
  p2q_buf_free(&src);
  return rc;
}

PGresult *p2q_reconcile_exec_keys(rec_t *c, const char *sql, const char *keys, int with_rule) {
  const char *params[] = {keys, c->r->name};
  PGresult *res = PQexecParams(c->conn, sql, with_rule ? 2 : 1, NULL, params, NULL, NULL, 0);
  ExecStatusType st = PQresultStatus(res);
  if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) return res;
  snprintf(c->err, sizeof c->err, "%s", PQresultErrorMessage(res));
  PQclear(res);
  return NULL;
}

/* ---------------- Qdrant ---------------- */

void p2q_reconcile_reply_free(reply_t *p) {
  cJSON_Delete(p->root);
  free(p->raw);
  free(p->id);
  memset(p, 0, sizeof *p);
}

/* POST `suffix` with `body`; the points array is `points` (or the result itself when NULL). Each
   point's exact id text goes to p->id[i] ("?" when it is not a valid id). */
int p2q_reconcile_qcall(rec_t *c, const char *suffix, const char *body, const char *points,
                        reply_t *p, const cJSON **arr) {
  memset(p, 0, sizeof *p);
  if (p2q_qdrant_blocking_call_raw(c->qc, "POST", c->r->collection, suffix, body, &p->root, &p->result,
                                   &p->raw, &p->rawlen, c->err, sizeof c->err))
    return -1;
  *arr = points ? cJSON_GetObjectItemCaseSensitive(p->result, points) : p->result;
  int n = cJSON_GetArraySize(*arr);
  p2q_span_t *sp = calloc((size_t)n + 1, sizeof *sp);
  p->id = calloc((size_t)n + 1, sizeof *p->id);
  int got = sp && p->id ? p2q_rec_raw_ids(p->raw, p->rawlen, sp, n) : P2Q_ENOMEM;
  if (cJSON_IsArray(*arr) && got == n) {
    for (int i = 0; i < n; i++)
      if (p2q_rec_id_span(sp[i], p->id[i])) snprintf(p->id[i], P2Q_POINT_ID_MAX, "?");
    p->n = n;
    free(sp);
    return 0;
  }
  free(sp);
  snprintf(c->err, sizeof c->err, "POST %s: unexpected reply (no list of points with ids)", suffix);
  p2q_reconcile_reply_free(p);
  return -1;
}

/* Retrieve these ids (a JSON array), with payload, and with the vector when `vectors`. */
int p2q_reconcile_retrieve(rec_t *c, const char *ids, int vectors, reply_t *p, const cJSON **arr) {
  p2q_buf_t body = P2Q_BUF_INIT;
  p2q_buf_puts(&body, "{\"with_payload\":true,\"with_vector\":");
  if (vectors && c->r->vector_name && *c->r->vector_name) {
    p2q_buf_putc(&body, '[');
    p2q_buf_json_string(&body, c->r->vector_name, strlen(c->r->vector_name));
    p2q_buf_putc(&body, ']');
  } else {
    p2q_buf_puts(&body, vectors ? "true" : "false");
  }
  p2q_buf_printf(&body, ",\"ids\":%s}", ids);
  int rc = p2q_reconcile_qcall(c, "/points", body.data, NULL, p, arr);
  p2q_buf_free(&body);
  return rc;
}

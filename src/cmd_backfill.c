/*
 * cmd_backfill.c — `pg2qdrant -c FILE backfill RULE [--where SQL] [--chunk 10000]`: enqueue the
 * rule's existing rows (all matching `filter`, and `--where` when given) as upsert events, e.g.
 * after a model change, without the long table lock `apply` takes.
 *
 * Chunks by key range (keyset pagination on the rule's key, in key order): each chunk is one
 * short transaction running one statement,
 *   WITH b AS (SELECT key FROM t r WHERE filter AND where AND (key) > (last) ORDER BY key LIMIT chunk),
 *        e AS (the greatest key of b: the chunk's end, read without locks),
 *        c AS (SELECT r.* FROM t r WHERE … AND (key) > (last) AND (key) <= (e) FOR SHARE OF r),
 *        ins AS (INSERT INTO sync_outbox … SELECT <snapshot> FROM c …)
 *   SELECT count, e
 * so memory is bounded by one chunk (on the server; the client holds one key), and no lock on the
 * table outlives a chunk (the row locks of a chunk are held for that one statement's transaction).
 *
 * Ordering. The hazard: a backfill event carrying a snapshot read *before* a concurrent update U
 * of the same row, but with an event id *after* U's trigger event, would make the daemon apply
 * the older snapshot last (the claim keeps the highest id per row). FOR SHARE closes it, case by
 * case, for a row R of the chunk:
 *   - U committed before the chunk's statement snapshot: we read U's version (same content as
 *     U's event, or newer); our id is larger, harmless.
 *   - U modified R and is still open when we reach R: FOR SHARE waits for U. If U commits,
 *     READ COMMITTED re-reads the newest version of R (EvalPlanQual), re-checks the WHERE clause
 *     and builds the snapshot from that version, after U's event id was allocated: newer id,
 *     newer content. If U aborts, we lock and read the old version, which is current.
 *   - U reaches R after we locked it: U waits until our chunk commits; its trigger event gets
 *     an id larger than ours and carries U's content, so U wins, as it should.
 * An id is allocated when the INSERT forms the event row, which is after the SELECT below it
 * has locked (and, in the second case, re-read) R, so "snapshot read" and "id allocated" happen
 * in that order while R is locked. Rows inserted concurrently are invisible to the chunk and
 * are enqueued by their own trigger; rows deleted concurrently are skipped by the re-check.
 * A chunk may return fewer rows than its LIMIT (re-checked rows that left the filter), so the
 * loop ends only on an empty chunk. Deadlocks with writers that lock rows in another order are
 * possible and PostgreSQL detects them; the chunk is retried (up to 5 times).
 *
 * Progress: when stdout is a terminal, one updating line with rate and ETA (the total comes
 * from one count(*) up front, which takes no lock); otherwise one summary line at the end.
 *
 * One statement only: every statement holding operator text (filter, --where) goes through the
 * extended protocol (PQexecParams), which refuses a second command ("…; DROP TABLE x"). The
 * session runs with the trigger's search_path (pg_catalog, pg_temp), so `filter` means here
 * what it means in the trigger; `--where` is held to the same rule (schema-qualify functions).
 * `apply` loads a rule's existing rows with this same machinery (p2q_backfill_chunks).
 * Exit: 0 done, 1 error, 2 usage.
 */
#include "pg2qdrant/capture.h"
#include "pg2qdrant/commands.h"
#include "pg2qdrant/errors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define USAGE "usage: pg2qdrant backfill RULE [--where SQL] [--chunk 10000]\n"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* "r.k1, r.k2" (suffix " DESC" per column when desc). */
static void key_list(p2q_buf_t *b, const p2q_rule_config_t *r, const char *ref, int desc) {
  for (int i = 0; i < r->key.n; i++) {
    p2q_buf_printf(b, "%s%s.", i ? ", " : "", ref);
    p2q_sql_ident(b, r->key.items[i]);
    if (desc) p2q_buf_puts(b, " DESC");
  }
}

/* The WHERE clause of one chunk over alias r: filter, --where and (when after) key > $1. */
static int chunk_where(p2q_buf_t *b, const p2q_rule_config_t *r, const char *where, int after) {
  p2q_buf_printf(b, " WHERE (%s)", r->filter ? r->filter : "true");
  if (where) p2q_buf_printf(b, " AND (%s)", where);
  if (!after) return 0;
  /* typed key values from the last key's jsonb: uncorrelated scalar subqueries become
     parameters, so the row comparison can use the key's index */
  p2q_buf_puts(b, " AND (");
  key_list(b, r, "r", 0);
  p2q_buf_puts(b, ") > (");
  for (int i = 0; i < r->key.n; i++) {
    p2q_buf_puts(b, i ? ", (SELECT p." : "(SELECT p.");
    p2q_sql_ident(b, r->key.items[i]);
    p2q_buf_puts(b, " FROM jsonb_populate_record(NULL::");
    if (p2q_sql_qualified(b, r->table)) return P2Q_EINVAL;
    p2q_buf_puts(b, ", $1::jsonb) AS p)");
  }
  p2q_buf_puts(b, ")");
  return 0;
}

/* The statement of one chunk: returns (events enqueued, last key as jsonb text or NULL).
   The chunk's end key comes from an unlocked ordered read (b/e); the rows are then locked by key
   range. Taking it from the locked rows instead would skip rows: a row whose key a concurrent
   UPDATE raised is re-read with its new key, and the next chunk would start after it. */
int p2q_backfill_chunk_sql(const p2q_config_t *cfg, const p2q_rule_config_t *r, const char *where,
                           long chunk, int after, int fast, p2q_buf_t *out) {
  p2q_buf_t ins = P2Q_BUF_INIT;
  int rc = P2Q_EINVAL;
  p2q_buf_puts(out, "WITH b AS MATERIALIZED (SELECT ");
  key_list(out, r, "r", 0);
  p2q_buf_puts(out, " FROM ");
  if (p2q_sql_qualified(out, r->table)) goto fail;
  p2q_buf_puts(out, " AS r");
  if (chunk_where(out, r, where, after)) goto fail;
  p2q_buf_puts(out, " ORDER BY ");
  key_list(out, r, "r", 0);
  p2q_buf_printf(out, " LIMIT %ld), e AS (SELECT * FROM b AS r ORDER BY ", chunk);
  key_list(out, r, "r", 1);
  p2q_buf_puts(out, " LIMIT 1), c AS MATERIALIZED (SELECT r.* FROM ");
  if (p2q_sql_qualified(out, r->table)) goto fail;
  p2q_buf_puts(out, " AS r");
  if (chunk_where(out, r, where, after)) goto fail;
  p2q_buf_puts(out, " AND (");
  key_list(out, r, "r", 0);
  p2q_buf_puts(out, ") <= (SELECT ");
  key_list(out, r, "e", 0);
  p2q_buf_puts(out, " FROM e) ORDER BY ");
  key_list(out, r, "r", 0);
  p2q_buf_puts(out, " FOR SHARE OF r), ins AS (");
  rc = fast == 2 ? p2q_capture_enqueue_vec_sql(r, cfg->pg_schema, (int)cfg->max_attempts, "upsert", "c", &ins)
       : fast   ? p2q_capture_enqueue_fast_sql(r, cfg->pg_schema, (int)cfg->max_attempts, "upsert", "c", &ins)
                : p2q_capture_enqueue_sql(r, cfg->pg_schema, (int)cfg->max_attempts, "upsert", "c", &ins);
  if (rc) goto fail;
  p2q_buf_append(out, ins.data, ins.len);
  p2q_buf_puts(out, " ORDER BY ");
  key_list(out, r, "r", 0);
  p2q_buf_puts(out, " RETURNING 1) SELECT (SELECT count(*) FROM ins), (SELECT ");
  if ((rc = p2q_capture_key_expr(r, "r", out))) goto fail;
  p2q_buf_puts(out, "::text FROM e AS r)");
  rc = p2q_buf_error(out);
fail:
  p2q_buf_free(&ins);
  return rc;
}

static int count_sql(const p2q_rule_config_t *r, const char *where, p2q_buf_t *out) {
  p2q_buf_puts(out, "SELECT count(*) FROM ");
  if (p2q_sql_qualified(out, r->table)) return P2Q_EINVAL;
  p2q_buf_puts(out, " AS r");
  chunk_where(out, r, where, 0);
  return p2q_buf_error(out);
}

/* Run one chunk in its own transaction, retrying deadlocks. 0, 1 (no more rows), -1, or -2 when
   a column the statement names is gone (undefined_column: run it by name instead). */
static int run_chunk(PGconn *conn, const char *sql, char **last, long long *n, char *err, size_t errlen) {
  for (int attempt = 0;; attempt++) {
    if (p2q_admin_exec(conn, "BEGIN", err, errlen)) return -1;
    const char *params[] = {*last};
    PGresult *res = PQexecParams(conn, sql, *last ? 1 : 0, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
      *n = atoll(PQgetvalue(res, 0, 0));
      char *next = PQgetisnull(res, 0, 1) ? NULL : strdup(PQgetvalue(res, 0, 1));
      PQclear(res);
      if (p2q_admin_exec(conn, "COMMIT", err, errlen)) { free(next); return -1; }
      if (!next) return 1;
      free(*last);
      *last = next;
      return 0;
    }
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    int again = state && (!strcmp(state, "40P01") || !strcmp(state, "40001")) && attempt < 5;
    /* 42703: a named column is gone; 42804: the vector column is no longer a real[] */
    int gone = state && (!strcmp(state, "42703") || !strcmp(state, "42804"));
    snprintf(err, errlen, "%s", PQresultErrorMessage(res));
    PQclear(res);
    PQclear(PQexec(conn, "ROLLBACK"));
    if (gone) return -2;
    if (!again) return -1;
  }
}

static void progress(const char *label, long long done, long long total, double t0) {
  double el = now_s() - t0, rate = el > 0 ? (double)done / el : 0;
  if (total > 0) {
    double eta = rate > 0 && total > done ? (double)(total - done) / rate : 0;
    printf("\r%s: %lld/%lld rows (%.0f%%), %.0f rows/s, ETA %.0fs   ", label, done, total,
           100.0 * (double)done / (double)total, rate, eta);
  } else {
    printf("\r%s: %lld rows, %.0f rows/s   ", label, done, rate);
  }
  fflush(stdout);
}

int p2q_backfill_pin_session(PGconn *conn, char *err, size_t errlen) {
  return p2q_admin_exec(conn, "SET search_path = pg_catalog, pg_temp", err, errlen);
}

/* Is the rule's vector column a real[] now? (No: not found, another type, or the query failed.) */
static int vector_is_real_array(PGconn *conn, const p2q_rule_config_t *r) {
  p2q_buf_t t = P2Q_BUF_INIT;
  int yes = 0;
  if (r->vector_column && !p2q_sql_qualified(&t, r->table)) {
    const char *p[] = {t.data, r->vector_column};
    PGresult *res = PQexecParams(conn, "SELECT a.atttypid = 'pg_catalog.float4[]'::pg_catalog.regtype FROM pg_catalog.pg_attribute a"
                                       " WHERE a.attrelid = pg_catalog.to_regclass($1) AND a.attname = $2 AND NOT a.attisdropped",
                                 2, NULL, p, NULL, NULL, 0);
    yes = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 && !strcmp(PQgetvalue(res, 0, 0), "t");
    PQclear(res);
  }
  p2q_buf_free(&t);
  return yes;
}

int p2q_backfill_chunks(PGconn *conn, const p2q_config_t *cfg, const p2q_rule_config_t *r,
                        const char *where, long chunk, const char *label, int tty,
                        long long *done, long long *chunks, char *err, size_t errlen) {
  /* [by name][after a first chunk]: columns by reference first (faster); once a column the
     rule names is gone (DDL before or during the load), by name */
  p2q_buf_t sql[2][2] = {{P2Q_BUF_INIT, P2Q_BUF_INIT}, {P2Q_BUF_INIT, P2Q_BUF_INIT}}, count = P2Q_BUF_INIT;
  char *last = NULL;
  int rc = -1, by_name = 0;
  long long total = -1;
  *done = *chunks = 0;
  int fast = vector_is_real_array(conn, r) ? 2 : 1; /* 2: the vector sent unprinted, as the trigger does */
  if (p2q_backfill_chunk_sql(cfg, r, where, chunk, 0, fast, &sql[0][0]) ||
      p2q_backfill_chunk_sql(cfg, r, where, chunk, 1, fast, &sql[0][1]) ||
      p2q_backfill_chunk_sql(cfg, r, where, chunk, 0, 0, &sql[1][0]) || p2q_backfill_chunk_sql(cfg, r, where, chunk, 1, 0, &sql[1][1]) ||
      count_sql(r, where, &count)) {
    snprintf(err, errlen, "cannot generate SQL (bad table name?)");
    goto fail;
  }
  if (tty) { /* the total for the progress line: one statement, extended protocol like the chunks */
    PGresult *res = PQexecParams(conn, count.data, 0, NULL, NULL, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
      snprintf(err, errlen, "%s", PQresultErrorMessage(res));
      PQclear(res);
      goto fail;
    }
    total = atoll(PQgetvalue(res, 0, 0));
    PQclear(res);
  }
  double t0 = now_s();
  for (;;) {
    long long n = 0;
    int st = run_chunk(conn, sql[by_name][last != NULL].data, &last, &n, err, errlen);
    if (st == -2 && !by_name) { by_name = 1; continue; }
    if (st < 0) goto fail;
    if (st == 1) break;
    *done += n;
    (*chunks)++;
    if (tty) progress(label, *done, total, t0);
  }
  rc = 0;
fail:
  if (rc) {
    size_t l = strlen(err);
    while (l && (err[l - 1] == '\n' || err[l - 1] == ' ')) err[--l] = 0;
  }
  if (tty && *chunks) printf("\r\033[K");
  fflush(stdout);
  free(last);
  for (int i = 0; i < 4; i++) p2q_buf_free(&sql[i / 2][i % 2]);
  p2q_buf_free(&count);
  return rc;
}

int p2q_cmd_backfill(const p2q_config_t *cfg, int argc, char **argv) {
  const char *rule_name = NULL, *where = NULL;
  long chunk = 10000;
  for (int i = 0; i < argc; i++) {
    if (!strcmp(argv[i], "--where") && i + 1 < argc) where = argv[++i];
    else if (!strcmp(argv[i], "--chunk") && i + 1 < argc) {
      char *end;
      chunk = strtol(argv[++i], &end, 10);
      if (*end || chunk < 1 || chunk > 1000000) { fprintf(stderr, "pg2qdrant: backfill: --chunk must be 1..1000000\n"); return 2; }
    } else if (argv[i][0] != '-' && !rule_name) rule_name = argv[i];
    else { fputs(USAGE, stderr); return 2; }
  }
  if (!rule_name) { fputs(USAGE, stderr); return 2; }
  const p2q_rule_config_t *r = p2q_config_rule(cfg, rule_name);
  if (!r) { fprintf(stderr, "pg2qdrant: backfill: no rule %s in %s\n", rule_name, cfg->path); return 2; }

  char err[2048], label[128];
  int tty = isatty(STDOUT_FILENO);
  long long done = 0, chunks = 0;
  PGconn *conn = p2q_admin_connect(cfg, "pg2qdrant/backfill", err, sizeof err);
  if (!conn) { fprintf(stderr, "pg2qdrant: %s\n", err); return 1; }
  snprintf(label, sizeof label, "backfill %s", r->name);
  double t0 = now_s();
  if (p2q_backfill_pin_session(conn, err, sizeof err) ||
      p2q_backfill_chunks(conn, cfg, r, where, chunk, label, tty, &done, &chunks, err, sizeof err)) {
    fprintf(stderr, "pg2qdrant: backfill: rule %s: %s (%lld row(s) enqueued before)\n", r->name, err, done);
    PQfinish(conn);
    return 1;
  }
  double el = now_s() - t0;
  printf("backfill %s: %lld row(s) enqueued in %lld chunk(s) of at most %ld, %.1f s (%.0f rows/s)\n",
         r->name, done, chunks, chunk, el, el > 0 ? (double)done / el : 0);
  PQfinish(conn);
  return 0;
}

/*
 * cmd_apply.c — `pg2qdrant apply [--dry-run]`: makes PostgreSQL and Qdrant match the rules.
 *
 * For each rule: check (or create) its Qdrant collection — a collection with another dimension
 * or distance is an error — then, in one transaction per rule, validate the rule's expressions,
 * install its trigger function and triggers and enqueue every existing matching row. Installing
 * the trigger takes a SHARE ROW EXCLUSIVE lock on the table, so no write can slip between the
 * trigger and the backfill snapshot (no gap, and no older snapshot enqueued after a newer one);
 * writers wait for the backfill to finish. A rule whose generated SQL is unchanged is left alone
 * (applying twice changes nothing); rules removed from the config get their triggers dropped.
 * Blocking libpq and a private curl loop; main thread only.
 */
#include "pg2qdrant/capture.h"
#include "pg2qdrant/commands.h"
#include "pg2qdrant/errors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int ensure_collections(const p2q_config_t *cfg) {
  p2q_qdrant_options_t o;
  p2q_qdrant_options_from_config(cfg, &o);
  for (int i = 0; i < cfg->n_rules; i++) {
    const p2q_rule_config_t *r = &cfg->rules[i];
    p2q_qdrant_vectors_t v;
    char msg[1024];
    p2q_rule_vectors(r, &v);
    int rc = p2q_qdrant_sync_ensure_collection(&o, r->collection, &v, 1,
                                               r->chunk_tokens > 0 ? "_pk" : NULL, msg, sizeof msg);
    if (rc) {
      fprintf(stderr, "pg2qdrant: apply: rule %s: collection %s: %s\n", r->name, r->collection, msg);
      return 1;
    }
  }
  return 0;
}

static int rollback(PGconn *conn) {
  PGresult *r = PQexec(conn, "ROLLBACK");
  PQclear(r);
  return 1;
}

/* Install one rule; prints what it did. Returns 0 or 1. */
static int apply_rule(PGconn *conn, const p2q_config_t *cfg, const p2q_rule_config_t *r, int dry) {
  p2q_buf_t install = P2Q_BUF_INIT, backfill = P2Q_BUF_INIT, check = P2Q_BUF_INIT, q = P2Q_BUF_INIT;
  char err[2048];
  int rc = 1;
  p2q_sql_ident(&q, cfg->pg_schema);
  if (p2q_capture_install_sql(r, cfg->pg_schema, (int)cfg->max_attempts, &install) ||
      p2q_capture_backfill_sql(r, cfg->pg_schema, (int)cfg->max_attempts, "upsert", NULL, &backfill) ||
      p2q_capture_check_sql(r, &check)) {
    fprintf(stderr, "pg2qdrant: apply: rule %s: cannot generate SQL (bad table name, or an expression "
                    "containing the reserved tag $p2q$)\n", r->name);
    goto out;
  }
  if (dry) {
    printf("-- rule %s\n%s%s;\n\n", r->name, install.data, backfill.data);
    rc = 0;
    goto out;
  }
  /* unchanged? */
  /* unchanged = same generated SQL and the trigger still on the table (a dropped and recreated
     table lost it) */
  p2q_buf_t trig = P2Q_BUF_INIT, qt = P2Q_BUF_INIT;
  p2q_buf_printf(&trig, "p2q_%s", r->name);
  p2q_sql_qualified(&qt, r->table);
  const char *params[] = {r->name, install.data, trig.data, qt.data};
  p2q_buf_t sql = P2Q_BUF_INIT;
  p2q_buf_printf(&sql, "SELECT 1 FROM %s.sync_outbox_rule WHERE name = $1 AND definition = $2"
                       " AND EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = $3 AND tgrelid = to_regclass($4))",
                 q.data);
  PGresult *res = PQexecParams(conn, sql.data, 4, NULL, params, NULL, NULL, 0);
  p2q_buf_free(&trig);
  p2q_buf_free(&qt);
  p2q_buf_free(&sql);
  int same = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1;
  PQclear(res);
  if (same) { printf("rule %s: unchanged\n", r->name); rc = 0; goto out; }

  if (p2q_admin_exec(conn, "BEGIN", err, sizeof err)) goto report;
  /* a prepared statement refuses several commands: filter/routing_key must be one expression */
  res = PQprepare(conn, "", check.data, 0, NULL);
  if (PQresultStatus(res) != PGRES_COMMAND_OK) {
    snprintf(err, sizeof err, "filter, routing_key, key or columns do not fit table %s: %s", r->table,
             PQresultErrorMessage(res));
    PQclear(res);
    rollback(conn);
    goto report;
  }
  PQclear(res);
  if (p2q_admin_exec(conn, install.data, err, sizeof err)) { rollback(conn); goto report; }
  res = PQexec(conn, backfill.data);
  if (PQresultStatus(res) != PGRES_COMMAND_OK) {
    snprintf(err, sizeof err, "%s", PQresultErrorMessage(res));
    PQclear(res);
    rollback(conn);
    goto report;
  }
  char enqueued[32];
  snprintf(enqueued, sizeof enqueued, "%s", PQcmdTuples(res));
  PQclear(res);
  p2q_buf_printf(&sql, "INSERT INTO %s.sync_outbox_rule (name, source_table, definition) VALUES ($1, $3, $2)"
                       " ON CONFLICT (name) DO UPDATE SET source_table = EXCLUDED.source_table,"
                       " definition = EXCLUDED.definition, applied_at = now()", q.data);
  const char *p3[] = {r->name, install.data, r->table};
  res = PQexecParams(conn, sql.data, 3, NULL, p3, NULL, NULL, 0);
  p2q_buf_free(&sql);
  if (PQresultStatus(res) != PGRES_COMMAND_OK) {
    snprintf(err, sizeof err, "%s", PQresultErrorMessage(res));
    PQclear(res);
    rollback(conn);
    goto report;
  }
  PQclear(res);
  if (p2q_admin_exec(conn, "COMMIT", err, sizeof err)) goto report;
  printf("rule %s: trigger installed on %s, %s existing row(s) enqueued\n", r->name, r->table, enqueued);
  if (atol(enqueued) >= 10000) { /* a large backlog appeared at once: give the planner real numbers */
    p2q_buf_printf(&sql, "ANALYZE %s.sync_outbox", q.data);
    if (p2q_admin_exec(conn, sql.data, err, sizeof err)) fprintf(stderr, "pg2qdrant: apply: analyze: %s\n", err);
    p2q_buf_free(&sql);
  }
  rc = 0;
  goto out;
report:
  {
    size_t n = strlen(err);
    while (n && (err[n - 1] == '\n' || err[n - 1] == ' ')) err[--n] = 0;
    fprintf(stderr, "pg2qdrant: apply: rule %s: %s\n", r->name, err);
  }
out:
  p2q_buf_free(&install);
  p2q_buf_free(&backfill);
  p2q_buf_free(&check);
  p2q_buf_free(&q);
  return rc;
}

/* Drop the triggers of rules that were applied before but are no longer configured. */
static int drop_removed(PGconn *conn, const p2q_config_t *cfg) {
  p2q_buf_t sql = P2Q_BUF_INIT, q = P2Q_BUF_INIT;
  char err[1024];
  int rc = 0;
  p2q_sql_ident(&q, cfg->pg_schema);
  p2q_buf_printf(&sql, "SELECT name, source_table FROM %s.sync_outbox_rule ORDER BY name", q.data);
  PGresult *res = PQexec(conn, sql.data);
  for (int i = 0; PQresultStatus(res) == PGRES_TUPLES_OK && i < PQntuples(res); i++) {
    const char *name = PQgetvalue(res, i, 0);
    if (p2q_config_rule(cfg, name)) continue;
    p2q_buf_t drop = P2Q_BUF_INIT;
    p2q_capture_drop_sql(name, PQgetvalue(res, i, 1), cfg->pg_schema, &drop);
    p2q_buf_printf(&drop, "DELETE FROM %s.sync_outbox_rule WHERE name = ", q.data);
    p2q_sql_literal(&drop, name);
    if (p2q_admin_exec(conn, "BEGIN", err, sizeof err) || p2q_admin_exec(conn, drop.data, err, sizeof err) ||
        p2q_admin_exec(conn, "COMMIT", err, sizeof err)) {
      rollback(conn);
      fprintf(stderr, "pg2qdrant: apply: dropping removed rule %s: %s\n", name, err);
      rc = 1;
    } else {
      printf("rule %s: no longer configured, triggers dropped (its points stay in Qdrant)\n", name);
    }
    p2q_buf_free(&drop);
  }
  PQclear(res);
  p2q_buf_free(&sql);
  p2q_buf_free(&q);
  return rc;
}

int p2q_cmd_apply(const p2q_config_t *cfg, int argc, char **argv) {
  int dry = argc == 1 && !strcmp(argv[0], "--dry-run");
  if (argc > 1 || (argc == 1 && !dry)) { fprintf(stderr, "usage: pg2qdrant apply [--dry-run]\n"); return 2; }
  if (cfg->n_rules == 0) { fprintf(stderr, "pg2qdrant: apply: no [rule.NAME] section in %s\n", cfg->path); return 2; }
  if (dry) {
    int rc = 0;
    for (int i = 0; i < cfg->n_rules; i++) rc |= apply_rule(NULL, cfg, &cfg->rules[i], 1);
    return rc;
  }
  char err[1024];
  PGconn *conn = p2q_admin_connect(cfg, "pg2qdrant/apply", err, sizeof err);
  if (!conn) { fprintf(stderr, "pg2qdrant: %s\n", err); return 1; }
  if (p2q_outbox_install(conn, cfg->pg_schema, err, sizeof err) < 0) {
    fprintf(stderr, "pg2qdrant: apply: outbox schema: %s\n", err);
    PQfinish(conn);
    return 1;
  }
  int rc = ensure_collections(cfg);
  for (int i = 0; !rc && i < cfg->n_rules; i++) rc |= apply_rule(conn, cfg, &cfg->rules[i], 0);
  if (!rc) rc |= drop_removed(conn, cfg);
  PQfinish(conn);
  return rc;
}

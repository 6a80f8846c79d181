/*
 * cmd_check.c — `pg2qdrant check [--json]`: the preflight an operator runs before `run`.
 *
 * One line per check, `ok`, `warn` or `FAIL` with the fix; `--json` prints the same as one
 * document. Exit 0 when nothing failed, 1 otherwise (the config itself was validated by main.c:
 * an invalid one exits 2 before we get here). Order: config, PostgreSQL (reachable, server,
 * pooling, outbox schema, each rule's table/columns/trigger, the role's privileges per command),
 * then the remote side (check_remote.c: Qdrant, collections, embedders, the listen address).
 * Checks that depend on an earlier one (PostgreSQL reachable, Qdrant reachable) are skipped when
 * it failed: its FAIL line already says what to fix. Blocking, main thread only; reads only
 * (it never creates a collection, installs a function or enqueues anything).
 */
#include "check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg2qdrant/buf.h"
#include "pg2qdrant/capture.h"
#include "pg2qdrant/commands.h"
#include "pg2qdrant/errors.h"
#include "pg2qdrant/version.h"

/* ---- PostgreSQL ---- */

static PGresult *q(PGconn *conn, const char *sql, int n, const char *const *params) {
  PGresult *r = PQexecParams(conn, sql, n, NULL, params, NULL, NULL, 0);
  if (PQresultStatus(r) == PGRES_TUPLES_OK) return r;
  PQclear(r);
  return NULL;
}

static void check_server(p2q_check_t *c, PGconn *conn) {
  PGresult *r = q(conn,
                  "SELECT current_setting('server_version_num')::int, current_setting('server_version'),"
                  " pg_catalog.pg_is_in_recovery(), current_setting('default_transaction_read_only'),"
                  " current_setting('statement_timeout'), current_setting('max_connections')::int,"
                  " (SELECT count(*) FROM pg_catalog.pg_stat_activity)::int, current_user, current_database(),"
                  " current_setting('idle_in_transaction_session_timeout')",
                  0, NULL);
  if (!r) {
    p2q_check_report(c, P2Q_CHECK_FAIL, "postgres.server", NULL, "cannot read the server's settings: %s",
                     PQerrorMessage(conn));
    return;
  }
  int num = atoi(PQgetvalue(r, 0, 0));
  if (num < 120000)
    p2q_check_report(c, P2Q_CHECK_FAIL, "postgres.server", "use PostgreSQL 12 or newer",
                     "PostgreSQL %s is too old", PQgetvalue(r, 0, 1));
  else
    p2q_check_report(c, P2Q_CHECK_OK, "postgres.server", NULL, "PostgreSQL %s, database %s, role %s",
                     PQgetvalue(r, 0, 1), PQgetvalue(r, 0, 8), PQgetvalue(r, 0, 7));
  if (PQgetvalue(r, 0, 2)[0] == 't')
    p2q_check_report(c, P2Q_CHECK_FAIL, "postgres.writable", "point [postgres] conninfo at the primary",
                     "connected to a standby (pg_is_in_recovery): the outbox cannot be claimed there");
  else if (!strcmp(PQgetvalue(r, 0, 3), "on"))
    p2q_check_report(c, P2Q_CHECK_FAIL, "postgres.writable",
                     "ALTER ROLE ... SET default_transaction_read_only = off for the daemon's role",
                     "default_transaction_read_only is on: claims and acks are writes");
  else
    p2q_check_report(c, P2Q_CHECK_OK, "postgres.writable", NULL, "primary, read-write");
  int sessions = 0; /* the workers' claimers (the implicit worker "default" is in cfg->workers too) */
  for (int i = 0; i < c->cfg->n_workers; i++) sessions += (int)c->cfg->workers[i].claimers;
  if (sessions < 1) sessions = 1;
  int need = sessions + 4, max = atoi(PQgetvalue(r, 0, 5)), used = atoi(PQgetvalue(r, 0, 6));
  if (strcmp(PQgetvalue(r, 0, 4), "0"))
    p2q_check_report(c, P2Q_CHECK_WARN, "postgres.settings",
                     "ALTER ROLE ... SET statement_timeout = 0 for the daemon's role",
                     "statement_timeout = %s: a claim over a large backlog may be cancelled (it is retried)",
                     PQgetvalue(r, 0, 4));
  else if (max - used < need)
    p2q_check_report(c, P2Q_CHECK_WARN, "postgres.settings", "raise max_connections",
                     "%d of max_connections = %d in use; one daemon needs %d (each worker's claimers, "
                     "LISTEN, maintenance, the liveness check, re-embedding jobs)", used, max, need);
  else
    p2q_check_report(c, P2Q_CHECK_OK, "postgres.settings", NULL,
                     "statement_timeout 0, %d/%d connections in use (a daemon needs %d)", used, max, need);
  PQclear(r);
}

static void check_pooling(p2q_check_t *c, PGconn *conn) {
  char why[1024];
  int rc = p2q_pooling_detect(conn, p2q_admin_connect_probe, (void *)c->cfg, why, sizeof why);
  if (rc < 0)
    p2q_check_report(c, P2Q_CHECK_WARN, "postgres.session", NULL, "could not probe for a pooler: %s", why);
  else if (rc == 1)
    p2q_check_report(c, P2Q_CHECK_FAIL, "postgres.session",
                     "connect directly, or through PgBouncer with pool_mode = session; `run` refuses "
                     "this connection",
                     "%s: LISTEN, the pinned session settings and the claims' owner identity need a session", why);
  else
    p2q_check_report(c, P2Q_CHECK_OK, "postgres.session", NULL,
                     "a real session (direct, or session pooling): LISTEN and the pinned settings hold");
}

static void check_schema(p2q_check_t *c, PGconn *conn) {
  char err[1024];
  int rc = p2q_admin_check_schema(conn, c->cfg->pg_schema, err, sizeof err);
  if (rc == P2Q_EMISMATCH)
    p2q_check_report(c, P2Q_CHECK_FAIL, "outbox.schema", "run `pg2qdrant init` as the role that owns the schema",
                     "%s", err);
  else if (rc)
    p2q_check_report(c, P2Q_CHECK_FAIL, "outbox.schema", "grant the role USAGE on the schema and SELECT on sync_outbox_meta",
                     "cannot read the outbox schema: %s", err);
  else {
    char hash[41];
    p2q_outbox_functions_hash(hash);
    p2q_check_report(c, P2Q_CHECK_OK, "outbox.schema", NULL, "schema \"%s\" at version %d, functions %.12s (this build's)",
                     c->cfg->pg_schema, p2q_outbox_schema_version(), hash);
    c->schema_ok = 1;
  }
}

/* The DDL guard (capture.c: an event trigger calling <schema>.p2q_ddl_guard()), which only a
   superuser's `apply` can install. */
static void check_guard(p2q_check_t *c, PGconn *conn) {
  const char *p[] = {c->cfg->pg_schema};
  PGresult *r = q(conn,
                  "SELECT count(*) FROM pg_catalog.pg_event_trigger e"
                  " JOIN pg_catalog.pg_proc f ON f.oid = e.evtfoid JOIN pg_catalog.pg_namespace n ON n.oid = f.pronamespace"
                  " WHERE f.proname = 'p2q_ddl_guard' AND n.nspname = $1 AND e.evtenabled <> 'D'",
                  1, p);
  if (!r) return;
  if (atoi(PQgetvalue(r, 0, 0)) > 0)
    p2q_check_report(c, P2Q_CHECK_OK, "outbox.ddl_guard", NULL, "installed: an ALTER TABLE that would break a rule is refused");
  else if (c->cfg->n_rules > 0)
    p2q_check_report(c, P2Q_CHECK_WARN, "outbox.ddl_guard", "run `pg2qdrant apply` once as a superuser to install it",
                     "not installed: an ALTER TABLE that breaks a rule goes through, and that rule's events are "
                     "dead-lettered with the reason");
  PQclear(r);
}

/* The column types a vector column may have (what the worker parses). */
static int vector_type_ok(const char *t) {
  static const char *const ok[] = {"real[]", "double precision[]", "numeric[]", "integer[]", "smallint[]",
                                   "bigint[]", "json", "jsonb", "text", "character varying", "vector",
                                   "halfvec", NULL};
  for (int i = 0; ok[i]; i++)
    if (!strcmp(t, ok[i]) || (!strncmp(t, ok[i], strlen(ok[i])) && t[strlen(ok[i])] == '(')) return 1;
  return 0;
}

static const char *col_type(PGresult *cols, const char *name) {
  for (int i = 0; i < PQntuples(cols); i++)
    if (!strcmp(PQgetvalue(cols, i, 0), name)) return PQgetvalue(cols, i, 1);
  return NULL;
}

/* Missing names of `l` among the table's columns, appended to b as "what "col"". */
static void missing_cols(p2q_buf_t *b, PGresult *cols, const p2q_strlist_t *l, const char *what) {
  for (int i = 0; i < l->n; i++)
    if (!col_type(cols, l->items[i])) p2q_buf_printf(b, "%s%s \"%s\"", b->len ? ", " : "", what, l->items[i]);
}

static void check_rule_table(p2q_check_t *c, PGconn *conn, const p2q_rule_config_t *r) {
  char name[128];
  p2q_buf_t qt = P2Q_BUF_INIT, miss = P2Q_BUF_INIT;
  p2q_strlist_t text = {NULL, 0};
  PGresult *cols = NULL;
  snprintf(name, sizeof name, "rule.%s.table", r->name);
  if (p2q_sql_qualified(&qt, r->table) < 0) goto out;
  const char *p[] = {qt.data};
  cols = q(conn,
           "SELECT a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod) FROM pg_catalog.pg_attribute a"
           " WHERE a.attrelid = pg_catalog.to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped",
           1, p);
  if (!cols || PQntuples(cols) == 0) {
    p2q_check_report(c, P2Q_CHECK_FAIL, name, "create the table, or fix [rule] table",
                     "table %s does not exist (or this role cannot see it)", r->table);
    goto out;
  }
  missing_cols(&miss, cols, &r->key, "key");
  missing_cols(&miss, cols, &r->columns, "columns");
  missing_cols(&miss, cols, &r->watch, "watch");
  if (r->text && p2q_template_columns(r->text, &text) == 0) missing_cols(&miss, cols, &text, "text");
  const char *vt = r->vector_column ? col_type(cols, r->vector_column) : NULL;
  if (r->vector_column && !vt) p2q_buf_printf(&miss, "%svector_column \"%s\"", miss.len ? ", " : "", r->vector_column);
  if (miss.len) {
    p2q_check_report(c, P2Q_CHECK_FAIL, name, "fix the rule or the table, then run apply",
                     "%s has no column %s", r->table, miss.data);
  } else if (vt && !vector_type_ok(vt)) {
    p2q_check_report(c, P2Q_CHECK_FAIL, name,
                     "use real[], float8[], a JSON array or pgvector's vector for the vector column",
                     "vector_column \"%s\" is %s, not an array, JSON or vector type", r->vector_column, vt);
  } else {
    p2q_check_report(c, P2Q_CHECK_OK, name, NULL, "%s: key, columns%s present%s%s", r->table,
                     r->text ? ", text columns" : "", vt ? ", vector column " : "", vt ? vt : "");
  }
out:
  PQclear(cols);
  p2q_strlist_free(&text);
  p2q_buf_free(&qt);
  p2q_buf_free(&miss);
}

/* Trigger installed, generated by this build from this config, and the table still fits it. */
static void check_rule_trigger(p2q_check_t *c, PGconn *conn, const p2q_rule_config_t *r) {
  char name[128], trig[128];
  p2q_buf_t install = P2Q_BUF_INIT, sql = P2Q_BUF_INIT, qs = P2Q_BUF_INIT, qt = P2Q_BUF_INIT;
  PGresult *res = NULL;
  snprintf(name, sizeof name, "rule.%s.trigger", r->name);
  snprintf(trig, sizeof trig, "p2q_%s", r->name);
  p2q_sql_ident(&qs, c->cfg->pg_schema);
  if (p2q_capture_install_sql(r, c->cfg->pg_schema, (int)c->cfg->max_attempts, &install) ||
      p2q_sql_qualified(&qt, r->table) < 0)
    goto out;
  /* the third column: whether the trigger's function holds the table's oid as it is now
     (capture_relid.c; not so after a restore into another database, until apply installs again) */
  p2q_buf_printf(&sql, "SELECT definition, (SELECT count(*) FROM pg_catalog.pg_trigger WHERE tgname = $2"
                       " AND tgrelid = pg_catalog.to_regclass($3)), (SELECT pg_catalog.bool_and(pg_catalog.strpos(f.prosrc,"
                       " '''' || t.tgrelid::pg_catalog.oid::pg_catalog.text || '''::pg_catalog.oid') > 0)"
                       " FROM pg_catalog.pg_trigger t JOIN pg_catalog.pg_proc f ON f.oid = t.tgfoid WHERE t.tgname = $2"
                       " AND t.tgrelid = pg_catalog.to_regclass($3)), (SELECT ");
  /* the fourth: whether the functions' partition lists are the table's partitions as they are now */
  p2q_capture_parts_current_sql(&sql, r, c->cfg->pg_schema, "pg_catalog.to_regclass($3)");
  p2q_buf_printf(&sql, ") FROM %s.sync_outbox_rule WHERE name = $1", qs.data);
  const char *p[] = {r->name, trig, qt.data};
  if (!(res = q(conn, sql.data, 3, p))) {
    p2q_check_report(c, P2Q_CHECK_FAIL, name, "grant SELECT on sync_outbox_rule", "cannot read %s.sync_outbox_rule: %s",
                     qs.data, PQerrorMessage(conn));
    goto out;
  }
  if (PQntuples(res) == 0) {
    p2q_check_report(c, P2Q_CHECK_FAIL, name, "run `pg2qdrant apply`", "rule not applied: no trigger on %s", r->table);
    goto out;
  }
  if (strncmp(PQgetvalue(res, 0, 0), install.data, install.len)) {
    p2q_check_report(c, P2Q_CHECK_FAIL, name, "run `pg2qdrant apply`",
                     "the installed trigger was generated from another config or pg2qdrant version");
    goto out;
  }
  if (atoi(PQgetvalue(res, 0, 1)) == 0) {
    p2q_check_report(c, P2Q_CHECK_FAIL, name, "run `pg2qdrant apply`", "trigger %s is missing on %s (table recreated?)",
                     trig, r->table);
    goto out;
  }
  if (strcmp(PQgetvalue(res, 0, 2), "t")) {
    p2q_check_report(c, P2Q_CHECK_WARN, name, "run `pg2qdrant apply`",
                     "the trigger functions hold another oid than %s's (restored from a dump?): every change takes "
                     "their slower catalog test until apply installs them again", r->table);
    goto out;
  }
  if (strcmp(PQgetvalue(res, 0, 3), "t")) {
    p2q_check_report(c, P2Q_CHECK_WARN, name, "run `pg2qdrant apply`",
                     "a partition of %s was attached, detached, renamed, moved or dropped since apply: the trigger "
                     "functions' partition list is stale (a detached one still passes their fast test) until apply "
                     "writes them again", r->table);
    goto out;
  }
  PQclear(res);
  /* the drift function apply installed: columns gone, filter broken */
  p2q_buf_reset(&sql);
  p2q_buf_printf(&sql, "SELECT string_agg(item || ' (' || used_as || ')', ', '), bool_or(breaks) FROM %s.", qs.data);
  char fn[128];
  snprintf(fn, sizeof fn, "p2q_drift_%s", r->name);
  p2q_sql_ident(&sql, fn);
  p2q_buf_puts(&sql, "()");
  res = q(conn, sql.data, 0, NULL);
  if (!res)
    p2q_check_report(c, P2Q_CHECK_WARN, name, NULL, "installed and current on %s; the drift function could not "
                     "run as this role: %s", r->table, PQerrorMessage(conn));
  else if (!PQgetisnull(res, 0, 0))
    p2q_check_report(c, PQgetvalue(res, 0, 1)[0] == 't' ? P2Q_CHECK_FAIL : P2Q_CHECK_WARN, name,
                     "restore the column, or change the rule and run apply",
                     "the table no longer fits the rule: %s", PQgetvalue(res, 0, 0));
  else
    p2q_check_report(c, P2Q_CHECK_OK, name, NULL, "installed on %s and current", r->table);
out:
  PQclear(res);
  p2q_buf_free(&install);
  p2q_buf_free(&sql);
  p2q_buf_free(&qs);
  p2q_buf_free(&qt);
}

int p2q_cmd_check(const p2q_config_t *cfg, int argc, char **argv) {
  p2q_check_t c;
  memset(&c, 0, sizeof c);
  c.cfg = cfg;
  for (int i = 0; i < argc; i++) {
    if (!strcmp(argv[i], "--json")) c.json = 1;
    else { fprintf(stderr, "usage: pg2qdrant check [--json]\n"); return 2; }
  }
  p2q_check_report(&c, P2Q_CHECK_OK, "config", NULL, "%s: valid (%d rule(s), %d worker(s), %d embedder(s)), pg2qdrant %s",
                   cfg->path ? cfg->path : "?", cfg->n_rules, cfg->n_workers, cfg->n_embedders, P2Q_VERSION);
  if (cfg->n_rules == 0)
    p2q_check_report(&c, P2Q_CHECK_WARN, "config.rules", "add a [rule.NAME] section", "no rules: nothing to sync");

  char err[1024];
  PGconn *conn = p2q_admin_connect(cfg, "pg2qdrant/check", err, sizeof err);
  if (!conn) {
    p2q_check_report(&c, P2Q_CHECK_FAIL, "postgres.connect",
                     "check [postgres] conninfo (or PGHOST/PGPORT/PGUSER/PGDATABASE), the server, pg_hba.conf "
                     "and the password (PGPASSWORD or ~/.pgpass)", "%s", err);
  } else {
    p2q_check_report(&c, P2Q_CHECK_OK, "postgres.connect", NULL, "connected to %s:%s", PQhost(conn), PQport(conn));
    check_server(&c, conn);
    check_pooling(&c, conn);
    check_schema(&c, conn);
    if (c.schema_ok) check_guard(&c, conn);
    for (int i = 0; i < cfg->n_rules; i++) {
      check_rule_table(&c, conn, &cfg->rules[i]);
      if (c.schema_ok) check_rule_trigger(&c, conn, &cfg->rules[i]);
    }
    p2q_check_privileges(&c, conn);
    PQfinish(conn);
  }
  p2q_check_remote(&c);

  int rc = c.n_fail ? 1 : 0;
  if (c.json) {
    printf("{\"ok\":%s,\"failed\":%d,\"warnings\":%d,\"checks\":[%s]}\n", rc ? "false" : "true", c.n_fail,
           c.n_warn, c.out.data ? c.out.data : "");
  } else {
    printf("%s: %d check(s) failed, %d warning(s)\n", rc ? "FAIL" : "ok", c.n_fail, c.n_warn);
  }
  p2q_buf_free(&c.out);
  return rc;
}

/*
 * admin.c — blocking PostgreSQL helpers for the CLI commands (never used on the daemon loop):
 * connecting with the config's conninfo or libpq's environment, running scripts, and installing
 * or upgrading the outbox schema (`init`) under an advisory lock with a schema version.
 */
#include "pg2qdrant/capture.h"
#include "pg2qdrant/commands.h"
#include "pg2qdrant/errors.h"
#include "pg2qdrant/redact.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern const char p2q_sql_outbox_v1[];

/* Migrations, in order; the schema version is the number of migrations applied. */
static const char *const migrations[] = {p2q_sql_outbox_v1};
#define N_MIGRATIONS ((int)(sizeof migrations / sizeof migrations[0]))

/* libpq's texts about a malformed conninfo quote the input (the password included): those are
   reduced to their shape; any registered secret is masked in every other text. */
static void redact_connect_error(const p2q_config_t *cfg, char *err, size_t errlen) {
  char *perr = NULL;
  PQconninfoOption *o = cfg->pg_conninfo && *cfg->pg_conninfo ? PQconninfoParse(cfg->pg_conninfo, &perr) : NULL;
  if (perr) p2q_redact_libpq_error(err);
  PQconninfoFree(o);
  PQfreemem(perr);
  p2q_redact_text(err, errlen);
}

PGconn *p2q_admin_connect(const p2q_config_t *cfg, const char *app, char *err, size_t errlen) {
  const char *keys[] = {"dbname", "application_name", "connect_timeout", NULL};
  char timeout[32];
  snprintf(timeout, sizeof timeout, "%lld", (long long)((cfg->pg_connect_timeout_ms + 999) / 1000));
  const char *vals[] = {cfg->pg_conninfo && *cfg->pg_conninfo ? cfg->pg_conninfo : NULL, app, timeout, NULL};
  /* expand_dbname=1: a conninfo string or URI in dbname is expanded; NULL → environment */
  PGconn *conn = vals[0] ? PQconnectdbParams(keys, vals, 1) : PQconnectdbParams(keys + 1, vals + 1, 0);
  if (!conn || PQstatus(conn) != CONNECTION_OK) {
    snprintf(err, errlen, "cannot connect to PostgreSQL: %s",
             conn ? PQerrorMessage(conn) : "out of memory");
    size_t n = strlen(err);
    while (n && (err[n - 1] == '\n' || err[n - 1] == ' ')) err[--n] = 0;
    redact_connect_error(cfg, err, errlen);
    PQfinish(conn);
    return NULL;
  }
  PGresult *r = PQexec(conn, "SET client_min_messages = warning");
  PQclear(r);
  return conn;
}

int p2q_admin_exec(PGconn *conn, const char *sql, char *err, size_t errlen) {
  PGresult *r = PQexec(conn, sql);
  int ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
  if (!ok) {
    snprintf(err, errlen, "%s", PQresultErrorMessage(r));
    size_t n = strlen(err);
    while (n && (err[n - 1] == '\n' || err[n - 1] == ' ')) err[--n] = 0;
  }
  PQclear(r);
  return ok ? 0 : -1;
}

char *p2q_outbox_sql(const char *tmpl, const char *schema) {
  p2q_buf_t q = P2Q_BUF_INIT, out = P2Q_BUF_INIT;
  p2q_sql_ident(&q, schema);
  for (const char *p = tmpl;;) {
    const char *m = strstr(p, "@SCHEMA@");
    if (!m) { p2q_buf_puts(&out, p); break; }
    p2q_buf_append(&out, p, (size_t)(m - p));
    p2q_buf_append(&out, q.data, q.len);
    p = m + 8;
  }
  p2q_buf_free(&q);
  if (p2q_buf_error(&out)) { p2q_buf_free(&out); return NULL; }
  return p2q_buf_steal(&out);
}

static int schema_version(PGconn *conn, const char *qschema, int *version, char *err, size_t errlen) {
  char sql[512];
  snprintf(sql, sizeof sql, "SELECT value FROM %s.sync_outbox_meta WHERE key = 'schema_version'", qschema);
  PGresult *r = PQexec(conn, sql);
  if (PQresultStatus(r) != PGRES_TUPLES_OK) {
    snprintf(err, errlen, "%s", PQresultErrorMessage(r));
    PQclear(r);
    return -1;
  }
  *version = PQntuples(r) ? atoi(PQgetvalue(r, 0, 0)) : 0;
  PQclear(r);
  return 0;
}

int p2q_outbox_install(PGconn *conn, const char *schema, char *err, size_t errlen) {
  p2q_buf_t q = P2Q_BUF_INIT, sql = P2Q_BUF_INIT;
  int version = 0, rc = -1;
  p2q_sql_ident(&q, schema);
  if (p2q_buf_error(&q)) goto fail;
  if (p2q_admin_exec(conn, "BEGIN", err, errlen)) goto fail;
  /* one installer at a time, whatever the replica count */
  if (p2q_admin_exec(conn, "SELECT pg_advisory_xact_lock(hashtext('pg2qdrant.init'))", err, errlen)) goto rollback;
  p2q_buf_printf(&sql, "CREATE SCHEMA IF NOT EXISTS %s;"
                       "CREATE TABLE IF NOT EXISTS %s.sync_outbox_meta (key text PRIMARY KEY, value text NOT NULL)",
                 q.data, q.data);
  if (p2q_admin_exec(conn, p2q_buf_str(&sql), err, errlen)) goto rollback;
  if (schema_version(conn, q.data, &version, err, errlen)) goto rollback;
  if (version > N_MIGRATIONS) {
    snprintf(err, errlen, "the outbox schema is at version %d, newer than this pg2qdrant (%d): upgrade pg2qdrant",
             version, N_MIGRATIONS);
    goto rollback;
  }
  for (int v = version; v < N_MIGRATIONS; v++) {
    char *m = p2q_outbox_sql(migrations[v], schema);
    if (!m) { snprintf(err, errlen, "out of memory"); goto rollback; }
    int erc = p2q_admin_exec(conn, m, err, errlen);
    free(m);
    if (erc) goto rollback;
  }
  p2q_buf_reset(&sql);
  p2q_buf_printf(&sql, "INSERT INTO %s.sync_outbox_meta VALUES ('schema_version', '%d') "
                       "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value", q.data, N_MIGRATIONS);
  if (p2q_admin_exec(conn, p2q_buf_str(&sql), err, errlen)) goto rollback;
  if (p2q_admin_exec(conn, "COMMIT", err, errlen)) goto fail;
  rc = version < N_MIGRATIONS ? N_MIGRATIONS - version : 0;
  goto fail;
rollback:
  {
    PGresult *r = PQexec(conn, "ROLLBACK");
    PQclear(r);
  }
fail:
  p2q_buf_free(&q);
  p2q_buf_free(&sql);
  return rc;
}

char *p2q_outbox_status_sql(const char *schema) {
  static const char tmpl[] =
      "WITH o AS (SELECT event_type,"
      "  count(*) FILTER (WHERE available_at <= now()) AS pending,"
      "  count(*) FILTER (WHERE claimed_by IS NOT NULL AND available_at > now()) AS in_flight,"
      "  count(*) FILTER (WHERE claimed_by IS NULL AND available_at > now()) AS retrying,"
      "  COALESCE(extract(epoch FROM now() - min(created_at) FILTER (WHERE available_at <= now())), 0) AS oldest"
      "  FROM @SCHEMA@.sync_outbox GROUP BY 1),"
      " d AS (SELECT event_type, count(*) AS dead FROM @SCHEMA@.sync_outbox_dead GROUP BY 1)"
      " SELECT COALESCE(o.event_type, d.event_type), COALESCE(o.pending, 0), COALESCE(o.in_flight, 0),"
      "  COALESCE(o.retrying, 0), COALESCE(d.dead, 0), round(COALESCE(o.oldest, 0)::numeric, 3)"
      " FROM o FULL JOIN d ON o.event_type = d.event_type ORDER BY 1";
  return p2q_outbox_sql(tmpl, schema);
}

/*
 * check_privs.c — `check`: does the connected role hold what `run`, `apply` and `reconcile` need?
 *
 * One table, `needs`, is the list (README "Least privilege" shows the same as GRANTs, and
 * tests/integration/test_privileges.py runs each command as a role holding exactly those):
 *   run        USAGE on the outbox schema; SELECT, UPDATE, DELETE on sync_outbox (claim, ack);
 *              SELECT, INSERT, UPDATE on sync_outbox_dead (a dead letter written again is
 *              updated); SELECT, INSERT, UPDATE, DELETE on sync_outbox_instance (the daemon
 *              registry); SELECT on sync_outbox_meta (start-up check); EXECUTE on the claim/ack/
 *              recover_step/front/types/free_claimed/bury/register/reap/status functions (PUBLIC
 *              has it unless revoked). (No lease table since migration 015.)
 *   apply      CREATE, USAGE on the outbox schema (trigger and drift functions); INSERT on
 *              sync_outbox (the SECURITY DEFINER trigger writes as apply's role); SELECT, INSERT,
 *              UPDATE on sync_outbox_rule; on each source table SELECT, TRIGGER, and UPDATE on
 *              some column (backfill reads rows FOR SHARE).
 *   reconcile  USAGE on the schema; SELECT on sync_outbox and each source table.
 * `run` lacking one is a FAIL (this is the daemon's role); apply/reconcile lacking one is a warn
 * (a daemon role should not hold them). Objects that do not exist are skipped (the schema and
 * table checks report them). Each missing privilege is named, with the GRANT that fixes it.
 *
 * Also, whoever runs `check`: the login roles that may CREATE in the outbox schema besides its
 * owner and the outbox's (apply's role), and their members (privileges.schema_create, a warn;
 * rv14b M1). The trigger functions call "<schema>".p2q_pinned_<rule>(…) schema-qualified, but
 * every function of that name in the schema is a candidate: a writer that can create one with a
 * better-matching signature runs its own code as the functions' owner. PostgreSQL 12-14 grant
 * CREATE on `public` to PUBLIC by default (and pg_upgrade keeps it).
 */
#include "check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg2qdrant/capture.h"

typedef enum { K_SCHEMA, K_TABLE, K_FUNCTION, K_SOURCE } kind_t;

typedef struct {
  const char *cmd;
  kind_t kind;
  const char *obj;  /* outbox table or function name; NULL for the schema / each source table */
  const char *priv;
} need_t;

static const need_t needs[] = {
    {"run", K_SCHEMA, NULL, "USAGE"},
    {"run", K_TABLE, "sync_outbox", "SELECT"},
    {"run", K_TABLE, "sync_outbox", "UPDATE"},
    {"run", K_TABLE, "sync_outbox", "DELETE"},
    {"run", K_TABLE, "sync_outbox_dead", "SELECT"},
    {"run", K_TABLE, "sync_outbox_dead", "INSERT"},
    {"run", K_TABLE, "sync_outbox_dead", "UPDATE"},
    {"run", K_TABLE, "sync_outbox_instance", "SELECT"},
    {"run", K_TABLE, "sync_outbox_instance", "INSERT"},
    {"run", K_TABLE, "sync_outbox_instance", "UPDATE"},
    {"run", K_TABLE, "sync_outbox_instance", "DELETE"},
    {"run", K_TABLE, "sync_outbox_meta", "SELECT"},
    {"run", K_FUNCTION, "sync_outbox_claim", "EXECUTE"},
    {"run", K_FUNCTION, "sync_outbox_ack", "EXECUTE"},
    {"run", K_FUNCTION, "sync_outbox_ack_claim", "EXECUTE"},
    {"run", K_FUNCTION, "sync_outbox_recover_step", "EXECUTE"},
    {"run", K_FUNCTION, "sync_outbox_front", "EXECUTE"},
    {"run", K_FUNCTION, "sync_outbox_types", "EXECUTE"},
    {"run", K_FUNCTION, "sync_outbox_free_claimed", "EXECUTE"},
    {"run", K_FUNCTION, "sync_outbox_bury", "EXECUTE"},
    {"run", K_FUNCTION, "sync_outbox_status", "EXECUTE"},
    {"run", K_FUNCTION, "sync_outbox_register", "EXECUTE"},
    {"run", K_FUNCTION, "sync_outbox_reap", "EXECUTE"},
    {"run", K_FUNCTION, "sync_outbox_mark_check", "EXECUTE"},
    {"apply", K_SCHEMA, NULL, "USAGE"},
    {"apply", K_SCHEMA, NULL, "CREATE"},
    {"apply", K_TABLE, "sync_outbox", "INSERT"},
    {"apply", K_TABLE, "sync_outbox_rule", "SELECT"},
    {"apply", K_TABLE, "sync_outbox_rule", "INSERT"},
    {"apply", K_TABLE, "sync_outbox_rule", "UPDATE"},
    {"apply", K_SOURCE, NULL, "SELECT"},
    {"apply", K_SOURCE, NULL, "TRIGGER"},
    {"apply", K_SOURCE, NULL, "UPDATE"},
    {"reconcile", K_SCHEMA, NULL, "USAGE"},
    {"reconcile", K_TABLE, "sync_outbox", "SELECT"},
    {"reconcile", K_SOURCE, NULL, "SELECT"},
};
#define N_NEEDS ((int)(sizeof needs / sizeof needs[0]))

/* 1 held, 0 missing, -1 the object does not exist (or the query failed). */
static int holds(PGconn *conn, const char *schema, const need_t *n, const char *source) {
  static const char *const sql[] = {
      [K_SCHEMA] = "SELECT CASE WHEN n.oid IS NULL THEN NULL ELSE has_schema_privilege(n.oid, $3) END"
                   " FROM (SELECT $1::text AS s, $2::text AS o) x"
                   " LEFT JOIN pg_catalog.pg_namespace n ON n.nspname = x.s",
      [K_TABLE] = "SELECT has_table_privilege(c, $3) FROM pg_catalog.to_regclass(quote_ident($1) || '.' || "
                  "quote_ident($2)) c WHERE c IS NOT NULL",
      [K_FUNCTION] = "SELECT bool_and(has_function_privilege(p.oid, $3)) FROM pg_catalog.pg_proc p"
                     " JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace"
                     " WHERE n.nspname = $1 AND p.proname = $2",
      [K_SOURCE] = "SELECT CASE WHEN $3 = 'UPDATE' THEN has_any_column_privilege(c, $3)"
                   " ELSE has_table_privilege(c, $3) END FROM pg_catalog.to_regclass($2) c"
                   " WHERE c IS NOT NULL AND $1::text IS NOT NULL", /* $1 unused: typed for the prepare */
  };
  const char *p[] = {schema, n->kind == K_SOURCE ? source : (n->obj ? n->obj : ""), n->priv};
  PGresult *r = PQexecParams(conn, sql[n->kind], 3, NULL, p, NULL, NULL, 0);
  int rc = -1;
  if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 && !PQgetisnull(r, 0, 0))
    rc = PQgetvalue(r, 0, 0)[0] == 't';
  PQclear(r);
  return rc;
}

/* Append "what" to the missing list and the GRANT that fixes it. */
static void missing(p2q_buf_t *what, p2q_buf_t *fix, const need_t *n, const char *qschema,
                    const p2q_rule_config_t *r, const char *qsource, const char *role) {
  if (what->len) p2q_buf_puts(what, ", ");
  if (fix->len) p2q_buf_puts(fix, " ");
  switch (n->kind) {
  case K_SCHEMA:
    p2q_buf_printf(what, "%s on schema %s", n->priv, qschema);
    p2q_buf_printf(fix, "GRANT %s ON SCHEMA %s TO %s;", n->priv, qschema, role);
    break;
  case K_TABLE:
    p2q_buf_printf(what, "%s on %s.%s", n->priv, qschema, n->obj);
    p2q_buf_printf(fix, "GRANT %s ON %s.%s TO %s;", n->priv, qschema, n->obj, role);
    break;
  case K_FUNCTION:
    p2q_buf_printf(what, "%s on function %s.%s", n->priv, qschema, n->obj);
    p2q_buf_printf(fix, "GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA %s TO %s;", qschema, role);
    break;
  case K_SOURCE:
    if (!strcmp(n->priv, "UPDATE")) {
      p2q_buf_printf(what, "UPDATE on a column of %s (backfill reads rows FOR SHARE)", qsource);
      p2q_buf_printf(fix, "GRANT UPDATE (");
      p2q_sql_ident(fix, r->key.n ? r->key.items[0] : "id");
      p2q_buf_printf(fix, ") ON %s TO %s;", qsource, role);
    } else {
      p2q_buf_printf(what, "%s on %s", n->priv, qsource);
      p2q_buf_printf(fix, "GRANT %s ON %s TO %s;", n->priv, qsource, role);
    }
    break;
  }
}

static void check_command(p2q_check_t *c, PGconn *conn, const char *cmd, const char *role, const char *qrole) {
  const p2q_config_t *cfg = c->cfg;
  p2q_buf_t what = P2Q_BUF_INIT, fix = P2Q_BUF_INIT, qschema = P2Q_BUF_INIT, qsrc = P2Q_BUF_INIT;
  int held = 0;
  p2q_sql_ident(&qschema, cfg->pg_schema);
  for (int i = 0; i < N_NEEDS; i++) {
    const need_t *n = &needs[i];
    if (strcmp(n->cmd, cmd)) continue;
    for (int k = 0; k < (n->kind == K_SOURCE ? cfg->n_rules : 1); k++) {
      const p2q_rule_config_t *r = n->kind == K_SOURCE ? &cfg->rules[k] : NULL;
      p2q_buf_reset(&qsrc);
      if (r && p2q_sql_qualified(&qsrc, r->table) < 0) continue;
      int h = holds(conn, cfg->pg_schema, n, r ? qsrc.data : NULL);
      if (h == 1) held++;
      if (h == 0) missing(&what, &fix, n, qschema.data, r, qsrc.data, qrole);
    }
  }
  char name[64];
  snprintf(name, sizeof name, "privileges.%s", cmd);
  if (what.len) {
    int is_run = !strcmp(cmd, "run");
    p2q_check_report(c, is_run ? P2Q_CHECK_FAIL : P2Q_CHECK_WARN, name, fix.data,
                     "role %s cannot `%s`%s: missing %s", role, cmd,
                     is_run ? "" : " (fine for a daemon-only role: use the owner role for it)", what.data);
  } else {
    p2q_check_report(c, P2Q_CHECK_OK, name, NULL, "role %s holds the %d privilege(s) `%s` needs", role, held, cmd);
  }
  p2q_buf_free(&what);
  p2q_buf_free(&fix);
  p2q_buf_free(&qschema);
  p2q_buf_free(&qsrc);
}

/* privileges.schema_create: PUBLIC, or the login roles listed, may CREATE in the outbox schema. */
static void schema_creators(p2q_check_t *c, PGconn *conn, const char *schema) {
  static const char sql[] =
      "SELECT CASE WHEN EXISTS (SELECT FROM pg_catalog.aclexplode(n.nspacl) a WHERE a.grantee = 0"
      " AND a.privilege_type = 'CREATE') THEN 'PUBLIC' ELSE (SELECT pg_catalog.string_agg(pg_catalog.quote_ident("
      "r.rolname), ', ' ORDER BY r.rolname) FROM pg_catalog.pg_roles r WHERE r.rolcanlogin AND NOT r.rolsuper"
      " AND NOT pg_catalog.pg_has_role(r.oid, n.nspowner, 'MEMBER')"
      " AND NOT pg_catalog.pg_has_role(r.oid, COALESCE(o.relowner, n.nspowner), 'MEMBER')"
      " AND pg_catalog.has_schema_privilege(r.oid, n.oid, 'CREATE')) END, pg_catalog.quote_ident(n.nspname)"
      " FROM pg_catalog.pg_namespace n LEFT JOIN pg_catalog.pg_class o"
      " ON o.oid = pg_catalog.to_regclass(pg_catalog.quote_ident($1) || '.sync_outbox') WHERE n.nspname = $1";
  const char *p[] = {schema};
  PGresult *r = PQexecParams(conn, sql, 1, NULL, p, NULL, NULL, 0);
  if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) { /* no schema: outbox.schema says so */
    const char *who = PQgetvalue(r, 0, 0), *qs = PQgetvalue(r, 0, 1);
    if (PQgetisnull(r, 0, 0)) {
      p2q_check_report(c, P2Q_CHECK_OK, "privileges.schema_create", NULL,
                       "only the owners may create objects in schema %s", qs);
    } else {
      p2q_buf_t fix = P2Q_BUF_INIT;
      p2q_buf_printf(&fix, "REVOKE CREATE ON SCHEMA %s FROM %s; (or keep the outbox in a schema of its own: "
                           "README \"Least privilege\")", qs, who);
      p2q_check_report(c, P2Q_CHECK_WARN, "privileges.schema_create", fix.data,
                       "%s may create objects in the outbox schema %s: a function there named like "
                       "p2q_pinned_<rule> with a better-matching signature would run as the trigger functions' owner",
                       who, qs);
      p2q_buf_free(&fix);
    }
  }
  PQclear(r);
}

void p2q_check_privileges(p2q_check_t *c, PGconn *conn) {
  PGresult *r = PQexec(conn, "SELECT current_user, quote_ident(current_user), rolsuper FROM pg_catalog.pg_roles"
                             " WHERE rolname = current_user");
  if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
    p2q_check_report(c, P2Q_CHECK_WARN, "privileges", NULL, "cannot read the role: %s", PQerrorMessage(conn));
    PQclear(r);
    return;
  }
  char role[256], qrole[300];
  snprintf(role, sizeof role, "%s", PQgetvalue(r, 0, 0));
  snprintf(qrole, sizeof qrole, "%s", PQgetvalue(r, 0, 1));
  int super = PQgetvalue(r, 0, 2)[0] == 't';
  PQclear(r);
  schema_creators(c, conn, c->cfg->pg_schema);
  if (super)
    p2q_check_report(c, P2Q_CHECK_WARN, "privileges", "run the daemon as a role with only the GRANTs of README "
                     "\"Least privilege\"", "role %s is a superuser: everything is allowed, nothing is checked", role);
  static const char *const cmds[] = {"run", "apply", "reconcile"};
  for (int i = 0; i < 3 && !super; i++) check_command(c, conn, cmds[i], role, qrole);
}

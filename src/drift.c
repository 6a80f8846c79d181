/*
 * drift.c — the daemon's run-time drift check (see drift.h). Loop thread only.
 *
 * Owns: the last answer (an array of rows) and at most one outstanding check. A check is two
 * statements on the given connection: which rules have a drift function (to_regprocedure, so a
 * rule never applied or just removed never fails the query), then one UNION ALL calling them.
 * Invariants: a failed check keeps the previous answer (logged once per failure streak);
 * a change is logged once, when the row appears or goes.
 */
#include "pg2qdrant/drift.h"
#include "pg2qdrant/capture.h"
#include "pg2qdrant/errors.h"
#include "pg2qdrant/log.h"

#include <stdlib.h>
#include <string.h>

struct p2q_drift_s {
  p2q_drift_item_t *items;
  int n;
  int pending;              /* a check is outstanding */
  int failing;              /* the last check failed (logged) */
  p2q_pg_t *pg;
  const p2q_config_t *cfg;  /* of the outstanding check */
};

int p2q_drift_new(p2q_drift_t **out) {
  *out = calloc(1, sizeof **out);
  return *out ? 0 : P2Q_ENOMEM;
}

static void items_free(p2q_drift_item_t *it, int n) {
  for (int i = 0; i < n; i++) {
    free(it[i].rule);
    free(it[i].table);
    free(it[i].item);
    free(it[i].used_as);
  }
  free(it);
}

void p2q_drift_free(p2q_drift_t *d) {
  if (!d) return;
  items_free(d->items, d->n);
  free(d);
}

int p2q_drift_count(const p2q_drift_t *d) { return d ? d->n : 0; }

const p2q_drift_item_t *p2q_drift_item(const p2q_drift_t *d, int i) {
  return d && i >= 0 && i < d->n ? &d->items[i] : NULL;
}

void p2q_drift_line(p2q_buf_t *out, const char *rule, const char *table, const char *item,
                    const char *used_as, int breaks) {
  if (!strcmp(used_as, "filter or routing_key"))
    p2q_buf_printf(out, "rule %s: filter or routing_key fails: %s (its events are dead-lettered)", rule, item);
  else if (!strcmp(used_as, "after write trigger"))
    p2q_buf_printf(out, "rule %s: trigger %s fires after INSERTs or DELETEs on %s, before pg2qdrant's statement-level"
                   " capture, and may change the rows it reads (run pg2qdrant apply: they go back to the row trigger)",
                   rule, item, table);
  else if (!strcmp(used_as, "partition"))
    p2q_buf_printf(out, "rule %s: %s is now a partition: INSERTs routed through its parent are not captured"
                   " (run pg2qdrant apply: INSERTs and DELETEs go back to the row trigger)", rule, table);
  else if (!strcmp(used_as, "subscription"))
    p2q_buf_printf(out, "rule %s: subscription %s replicates into %s: its apply fires no statement trigger, so"
                   " replicated INSERTs and DELETEs are not captured (run pg2qdrant apply: they go back to the row trigger)",
                   rule, item, table);
  else if (!strcmp(used_as, "setting"))
    p2q_buf_printf(out, "rule %s: %s is set: a big INSERT into %s could exceed it in pg2qdrant's statement-level"
                   " capture (run pg2qdrant apply: INSERTs and DELETEs go back to the row trigger)", rule, item, table);
  else if (!strcmp(used_as, "function"))
    p2q_buf_printf(out, "rule %s: function %s is gone: the writes of %s that its gate hands on fail"
                   " (run pg2qdrant apply)", rule, item, table);
  else if (!strcmp(used_as, "table") || !strcmp(used_as, "trigger"))
    p2q_buf_printf(out, "rule %s: %s %s is gone: changes are not captured (run pg2qdrant apply)", rule,
                   used_as, item);
  else
    p2q_buf_printf(out, "rule %s: column \"%s\" (%s) is not in %s: %s", rule, item, used_as, table,
                   breaks ? "its events are dead-lettered" : "snapshots lack it");
}

int p2q_drift_describe(const p2q_drift_t *d, int breaking, p2q_buf_t *out) {
  int n = 0;
  for (int i = 0; d && i < d->n; i++) {
    const p2q_drift_item_t *it = &d->items[i];
    if (!it->breaks != !breaking) continue;
    p2q_buf_puts(out, "drift: ");
    p2q_drift_line(out, it->rule, it->table, it->item, it->used_as, it->breaks);
    p2q_buf_putc(out, '\n');
    n++;
  }
  return n;
}

/* "schema"."p2q_drift_NAME"() */
void p2q_drift_function_ref(p2q_buf_t *b, const char *schema, const char *rule) {
  p2q_buf_t n = P2Q_BUF_INIT;
  p2q_buf_printf(&n, "p2q_drift_%s", rule);
  p2q_sql_ident(b, schema);
  p2q_buf_putc(b, '.');
  p2q_sql_ident(b, p2q_buf_str(&n));
  p2q_buf_puts(b, "()");
  p2q_buf_free(&n);
}

static const p2q_rule_config_t *rule_named(const p2q_config_t *cfg, const char *name) {
  for (int i = 0; i < cfg->n_rules; i++)
    if (!strcmp(cfg->rules[i].name, name)) return &cfg->rules[i];
  return NULL;
}

static int same(const p2q_drift_item_t *a, const p2q_drift_item_t *b) {
  return !strcmp(a->rule, b->rule) && !strcmp(a->item, b->item) && !strcmp(a->used_as, b->used_as);
}

static void log_row(const char *event, const p2q_drift_item_t *it) {
  char qi[300], qt[300];
  p2q_buf_t line = P2Q_BUF_INIT;
  p2q_drift_line(&line, it->rule, it->table, it->item, it->used_as, it->breaks);
  p2q_log_q(qi, sizeof qi, it->item);
  p2q_log_q(qt, sizeof qt, p2q_buf_str(&line));
  if (!strcmp(event, "rule_drift"))
    P2Q_WARN("rule_drift", "rule=%s column=%s used_as=\"%s\" breaks=%d msg=%s", it->rule, qi, it->used_as,
             it->breaks, qt);
  else
    P2Q_INFO("rule_drift_resolved", "rule=%s column=%s used_as=\"%s\"", it->rule, qi, it->used_as);
  p2q_buf_free(&line);
}

static void check_failed(p2q_drift_t *d, int err, const char *errmsg) {
  char q[512];
  if (err != P2Q_ECANCELED && !d->failing) P2Q_WARN("drift_check_failed", "err=%s", p2q_log_q(q, sizeof q, errmsg));
  d->failing = err != P2Q_ECANCELED;
}

/* The answer of the UNION ALL (or of no rule at all: res NULL): replace the rows, log changes. */
static void answered(p2q_drift_t *d, PGresult *res) {
  int n = res ? PQntuples(res) : 0;
  p2q_drift_item_t *it = calloc((size_t)(n ? n : 1), sizeof *it);
  if (!it) return;
  int k = 0;
  for (int i = 0; i < n; i++) {
    const p2q_rule_config_t *r = rule_named(d->cfg, PQgetvalue(res, i, 0));
    if (!r) continue; /* (cannot happen: the names come from cfg) */
    it[k].rule = strdup(r->name);
    it[k].table = strdup(r->table);
    it[k].item = strdup(PQgetvalue(res, i, 1));
    it[k].used_as = strdup(PQgetvalue(res, i, 2));
    it[k].breaks = !strcmp(PQgetvalue(res, i, 3), "t");
    k++;
    if (!it[k - 1].rule || !it[k - 1].table || !it[k - 1].item || !it[k - 1].used_as) {
      items_free(it, k);
      return;
    }
  }
  for (int i = 0; i < k; i++) {
    int seen = 0;
    for (int j = 0; j < d->n && !seen; j++) seen = same(&it[i], &d->items[j]);
    if (!seen) log_row("rule_drift", &it[i]);
  }
  for (int j = 0; j < d->n; j++) {
    int still = 0;
    for (int i = 0; i < k && !still; i++) still = same(&it[i], &d->items[j]);
    if (!still) log_row("rule_drift_resolved", &d->items[j]);
  }
  items_free(d->items, d->n);
  d->items = it;
  d->n = k;
  d->failing = 0;
}

static void rows_cb(p2q_pg_t *pg, PGresult *res, int err, const char *errmsg, void *arg) {
  p2q_drift_t *d = arg;
  d->pending = 0;
  if (err) check_failed(d, err, errmsg);
  else answered(d, res);
}

/* Which rules have a drift function: call those. */
static void names_cb(p2q_pg_t *pg, PGresult *res, int err, const char *errmsg, void *arg) {
  p2q_drift_t *d = arg;
  if (err) {
    d->pending = 0;
    check_failed(d, err, errmsg);
    return;
  }
  int n = PQntuples(res);
  if (n == 0) { d->pending = 0; answered(d, NULL); return; }
  p2q_buf_t sql = P2Q_BUF_INIT;
  for (int i = 0; i < n; i++) {
    const char *name = PQgetvalue(res, i, 0);
    p2q_buf_puts(&sql, i ? " UNION ALL SELECT " : "SELECT ");
    p2q_sql_literal(&sql, name);
    p2q_buf_puts(&sql, "::text, item, used_as, breaks FROM ");
    p2q_drift_function_ref(&sql, d->cfg->pg_schema, name);
  }
  int rc = p2q_buf_error(&sql) ? P2Q_ENOMEM : p2q_pg_query(d->pg, sql.data, 0, NULL, rows_cb, d);
  if (rc) {
    d->pending = 0;
    check_failed(d, rc, p2q_strerror(rc));
  }
  p2q_buf_free(&sql);
}

void p2q_drift_check(p2q_drift_t *d, p2q_pg_t *pg, const p2q_config_t *cfg) {
  if (!d || d->pending || !pg || !p2q_pg_is_connected(pg)) return;
  if (cfg->n_rules == 0) { d->cfg = cfg; answered(d, NULL); return; }
  p2q_buf_t sql = P2Q_BUF_INIT;
  p2q_buf_puts(&sql, "SELECT n FROM pg_catalog.unnest(ARRAY[");
  for (int i = 0; i < cfg->n_rules; i++) {
    if (i) p2q_buf_putc(&sql, ',');
    p2q_sql_literal(&sql, cfg->rules[i].name);
  }
  p2q_buf_puts(&sql, "]::text[]) AS n WHERE pg_catalog.to_regprocedure(pg_catalog.format('%I.%I()', ");
  p2q_sql_literal(&sql, cfg->pg_schema);
  p2q_buf_puts(&sql, "::text, 'p2q_drift_' OPERATOR(pg_catalog.||) n)) IS NOT NULL");
  d->pg = pg;
  d->cfg = cfg;
  if (!p2q_buf_error(&sql) && p2q_pg_query(pg, sql.data, 0, NULL, names_cb, d) == 0) d->pending = 1;
  p2q_buf_free(&sql);
}

/* ---- the CLI's report (`status`, synchronous libpq) ---- */

int p2q_drift_report(PGconn *conn, const p2q_config_t *cfg, int json, p2q_buf_t *out) {
  int found = 0;
  if (json) p2q_buf_puts(out, "[");
  for (int i = 0; i < cfg->n_rules; i++) {
    const p2q_rule_config_t *r = &cfg->rules[i];
    p2q_buf_t fn = P2Q_BUF_INIT, sql = P2Q_BUF_INIT;
    p2q_drift_function_ref(&fn, cfg->pg_schema, r->name);
    const char *params[] = {fn.data};
    PGresult *res = PQexecParams(conn, "SELECT pg_catalog.to_regprocedure($1) IS NOT NULL", 1, NULL, params,
                                 NULL, NULL, 0);
    int applied = PQresultStatus(res) == PGRES_TUPLES_OK && !strcmp(PQgetvalue(res, 0, 0), "t");
    PQclear(res);
    res = NULL;
    if (applied) {
      p2q_buf_printf(&sql, "SELECT item, used_as, breaks FROM %s ORDER BY 3 DESC, 2, 1", fn.data);
      res = PQexecParams(conn, sql.data, 0, NULL, NULL, NULL, NULL, 0);
    }
    int n = res && PQresultStatus(res) == PGRES_TUPLES_OK ? PQntuples(res) : 0;
    for (int k = 0; k < n; k++) { /* (a rule never applied has no drift function: nothing to say) */
      const char *item = PQgetvalue(res, k, 0), *as = PQgetvalue(res, k, 1);
      int breaks = !strcmp(PQgetvalue(res, k, 2), "t");
      if (json) {
        p2q_buf_puts(out, found ? ",{\"rule\":" : "{\"rule\":");
        p2q_buf_json_string(out, r->name, strlen(r->name));
        p2q_buf_puts(out, ",\"item\":");
        p2q_buf_json_string(out, item, strlen(item));
        p2q_buf_printf(out, ",\"used_as\":\"%s\",\"breaks\":%s}", as, breaks ? "true" : "false");
      } else { /* the daemon's /readyz says the same (drift.c) */
        p2q_buf_puts(out, "drift: ");
        p2q_drift_line(out, r->name, r->table, item, as, breaks);
        p2q_buf_putc(out, '\n');
      }
      found++;
    }
    PQclear(res);
    p2q_buf_free(&fn);
    p2q_buf_free(&sql);
  }
  if (json) p2q_buf_puts(out, "]");
  return found;
}

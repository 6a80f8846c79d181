/*
 * capture.c — generates the trigger functions, triggers and backfill statements that turn
 * changes of a rule's source table into sync_outbox events (see capture.h for the semantics):
 * the install/drop scripts, backfill and enqueue statements, the check and drift SQL, the DDL
 * guard. The trigger body and the statement-level INSERT … SELECT are built in capture_body.c,
 * the quoting helpers live in sql_text.c.
 *
 * Pure string building: no I/O, no globals; any thread. Invariants: every identifier coming from
 * the config goes through p2q_sql_ident(), every value through p2q_sql_literal(); generated
 * function bodies are dollar-quoted by p2q_sql_dollar_quote() with a tag that occurs nowhere in
 * them ($p2q$, or $p2q_1$, … where a name or filter holds $p2q$).
 */
#include "capture_body.h"
#include "pg2qdrant/errors.h"
#include "pg2qdrant/session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void function_name(p2q_buf_t *b, const char *schema, const char *prefix, const char *rule) {
  p2q_sql_ident(b, schema);
  p2q_buf_putc(b, '.');
  p2q_buf_t n = P2Q_BUF_INIT;
  p2q_buf_printf(&n, "%s%s", prefix, rule);
  p2q_sql_ident(b, p2q_buf_str(&n));
  p2q_buf_free(&n);
}

/* The name of rule's trigger p2q_<rule><suffix>, appended by quote (p2q_sql_ident: "…", to name
   it; p2q_sql_literal: '…', to compare it with pg_trigger.tgname). */
static void trigger_quoted(p2q_buf_t *b, const char *rule, const char *suffix, void (*quote)(p2q_buf_t *, const char *)) {
  p2q_buf_t n = P2Q_BUF_INIT;
  p2q_buf_printf(&n, "p2q_%s%s", rule, suffix);
  quote(b, p2q_buf_str(&n));
  p2q_buf_free(&n);
}

static void trigger_name(p2q_buf_t *b, const char *rule, const char *suffix) {
  trigger_quoted(b, rule, suffix, p2q_sql_ident);
}

static void trigger_literal(p2q_buf_t *b, const char *rule, const char *suffix) {
  trigger_quoted(b, rule, suffix, p2q_sql_literal);
}

/* Append body dollar-quoted (with a tag it does not hold) and ";\n": the end of every statement
   whose body is generated (functions, DO blocks). 0 or an error (body's, the quote's, out's). */
static int append_quoted(p2q_buf_t *out, const p2q_buf_t *body) {
  if (p2q_buf_error(body)) return p2q_buf_error(body);
  int rc = p2q_sql_dollar_quote(out, body->data);
  p2q_buf_puts(out, ";\n");
  return rc ? rc : p2q_buf_error(out);
}

/* The pinned function behind a rule's gate (p2q_capture_gate_body): its parameters are named as
   a trigger's variables, so the row body serves both shapes. */
#define PINNED_PARAMS "(tg_op text, new record, old record)"
#define PINNED_TYPES "(text, record, record)"

/* The pinned function's signature as a literal ('"s"."p2q_pinned_r"(text, record, record)'), for
   to_regprocedure: its presence is part of an installed rule without a filter. */
static void pinned_literal(p2q_buf_t *b, const char *schema, const char *rule) {
  p2q_buf_t f = P2Q_BUF_INIT;
  function_name(&f, schema, P2Q_CAPTURE_PINNED_PREFIX, rule);
  p2q_buf_puts(&f, PINNED_TYPES);
  p2q_sql_literal(b, p2q_buf_str(&f));
  p2q_buf_free(&f);
}

/* The CREATE FUNCTION of rule r's function prefix<rule> with the given body (dollar-quoted with a
   tag it does not hold), the table's oid still a mark (capture_relid.c): how = "() RETURNS
   trigger\nLANGUAGE plpgsql SECURITY DEFINER" + the pins, or as given (the gate and the pinned
   function behind it). */
static int function_text(p2q_buf_t *out, const char *schema, const char *prefix, const p2q_rule_config_t *r,
                         const char *how, const p2q_buf_t *body) {
  if (p2q_buf_error(body)) return p2q_buf_error(body);
  p2q_buf_puts(out, "CREATE OR REPLACE FUNCTION ");
  function_name(out, schema, prefix, r->name);
  p2q_buf_puts(out, how);
  return append_quoted(out, body);
}

/* function_text, installed with the table's oid in it (p2q_capture_relid_install). */
static int append_function_as(p2q_buf_t *out, const char *schema, const char *prefix, const p2q_rule_config_t *r,
                              const char *how, const p2q_buf_t *body) {
  p2q_buf_t create = P2Q_BUF_INIT;
  int rc = function_text(&create, schema, prefix, r, how, body);
  if (!rc) rc = p2q_capture_relid_install(out, &create, r);
  p2q_buf_free(&create);
  return rc;
}

/* the pinned settings (session.h) make the snapshot text, the row key and the change test
   independent of the writer's session; PostgreSQL restores the writer's values on exit */
#define PINS "SET search_path = " P2Q_PINNED_SEARCH_PATH P2Q_PINNED_FUNCTION_SET " AS "

static int append_function(p2q_buf_t *out, const char *schema, const char *prefix,
                           const p2q_rule_config_t *r, const p2q_buf_t *body) {
  return append_function_as(out, schema, prefix, r, "() RETURNS trigger\nLANGUAGE plpgsql SECURITY DEFINER " PINS,
                            body);
}

/* The row trigger's function(s): for a rule with a filter one pinned trigger function, as before;
   without, the gate (p2q_capture_gate_body, unpinned) and the pinned function behind it, which
   runs as its caller (the gate's owner). A filtered rule drops the pinned function a previous
   filterless definition left. */
static int row_functions(p2q_buf_t *out, const p2q_rule_config_t *r, const char *schema, int max_attempts,
                         const p2q_strlist_t *snap, const p2q_strlist_t *watch, const p2q_strlist_t *need) {
  p2q_buf_t body = P2Q_BUF_INIT, pinned = P2Q_BUF_INIT;
  int gated = r->filter == NULL;
  int rc = p2q_capture_body(&body, r, schema, max_attempts, snap, watch, need, gated);
  function_name(&pinned, schema, P2Q_CAPTURE_PINNED_PREFIX, r->name);
  if (rc) goto fail;
  if (!gated) {
    if ((rc = append_function(out, schema, "p2q_capture_", r, &body))) goto fail;
    p2q_buf_printf(out, "DROP FUNCTION IF EXISTS %s" PINNED_TYPES ";\n", p2q_buf_str(&pinned));
    rc = p2q_buf_error(out);
    goto fail;
  }
  if ((rc = append_function_as(out, schema, P2Q_CAPTURE_PINNED_PREFIX, r,
                               PINNED_PARAMS " RETURNS boolean\nLANGUAGE plpgsql " PINS, &body)))
    goto fail;
  p2q_buf_reset(&body);
  if ((rc = p2q_buf_error(&pinned)) || (rc = p2q_capture_gate_body(&body, r, schema, max_attempts, watch, p2q_buf_str(&pinned)))) goto fail;
  rc = append_function_as(out, schema, "p2q_capture_", r, "() RETURNS trigger\nLANGUAGE plpgsql SECURITY DEFINER AS ",
                          &body);
fail:
  p2q_buf_free(&body);
  p2q_buf_free(&pinned);
  return rc;
}

/* The statement function of op (prefix p2q_insert_ or p2q_delete_) without output pins, when the
   rule can have one (p2q_capture_unpinned_guard): after its pinned definition, a DO block replaces
   it when every column its events read has a setting-free type at install time (found in
   pg_attribute), so a statement pays none of the seven SET clauses (every name in the function is
   in pg_catalog: capture_body.c PGC); a table whose types are not setting-free keeps the pinned
   function as it was. The function's
   guard names the types found, by oid (`pg_typeof(NEW."c")::oid = 20 AND …`: two comparisons a
   statement, no list to search), spliced into its text by the DO block where the body holds
   GUARD_MARK; a type changed since (the table's signature changed: the next `apply` installs
   again) sends the statement's rows to the pinned row function, which pins every setting. */
#define GUARD_MARK "\x01"

static int unpinned_stmt_function(p2q_buf_t *out, const p2q_rule_config_t *r, const char *schema, int max_attempts,
                                  const p2q_strlist_t *snap, const p2q_strlist_t *watch, const p2q_strlist_t *need,
                                  const char *op, const char *prefix, const char *qtable) {
  p2q_buf_t cond = P2Q_BUF_INIT, body = P2Q_BUF_INIT, create = P2Q_BUF_INIT, pinned = P2Q_BUF_INIT;
  int upsert = !strcmp(op, "upsert");
  int n = 0, rc = p2q_capture_unpinned_guard(r, snap, upsert, &cond, &n);
  if (rc || !n) goto fail;
  function_name(&pinned, schema, P2Q_CAPTURE_PINNED_PREFIX, r->name);
  if ((rc = p2q_buf_error(&pinned))) goto fail;
  if ((rc = p2q_capture_stmt_body(&body, r, schema, max_attempts, snap, watch, need, op, p2q_buf_str(&pinned),
                                  GUARD_MARK)))
    goto fail;
  if ((rc = function_text(&create, schema, prefix, r, "() RETURNS trigger\nLANGUAGE plpgsql SECURITY DEFINER AS ",
                               &body)))
    goto fail;
  const char *m1 = strstr(create.data, GUARD_MARK), *m2 = m1 ? strstr(m1 + 1, GUARD_MARK) : NULL;
  if (!m2 || strstr(m2 + 1, GUARD_MARK)) goto fail; /* the mark also in a name of the config: keep the pins */
  p2q_buf_reset(&body);
  p2q_buf_printf(&body, "\nDECLARE\n  g text;\nBEGIN\n  SELECT pg_catalog.string_agg(pg_catalog.format('pg_catalog.pg_typeof(%s.%%I)"
                        "::pg_catalog.oid OPERATOR(pg_catalog.=) %%s::pg_catalog.oid', a.attname, a.atttypid), ' AND ' ORDER BY a.attnum) INTO g\n"
                        "    FROM pg_catalog.pg_attribute a WHERE a.attrelid = ", upsert ? "NEW" : "OLD");
  p2q_sql_literal(&body, qtable);
  p2q_buf_printf(&body, "::pg_catalog.regclass AND a.attnum > 0 AND NOT a.attisdropped AND (%s)\n"
                        "    HAVING pg_catalog.count(*) = %d;\n  IF g IS NOT NULL THEN\n    EXECUTE pg_catalog.replace(pg_catalog.replace(",
                 p2q_buf_str(&cond), n);
  const char *part[3] = {create.data, m1 + 1, m2 + 1};
  size_t len[3] = {(size_t)(m1 - create.data), (size_t)(m2 - m1 - 1), strlen(m2 + 1)};
  for (int i = 0; i < 3 && !rc; i++) {
    p2q_buf_t t = P2Q_BUF_INIT;
    p2q_buf_append(&t, part[i], len[i]);
    if (i) p2q_buf_puts(&body, " || g || ");
    rc = p2q_buf_error(&t) ? p2q_buf_error(&t) : p2q_sql_dollar_quote(&body, p2q_buf_str(&t));
    p2q_buf_free(&t);
  }
  if (rc) goto fail;
  p2q_capture_relid_splice(&body, qtable); /* the table's oid and partitions in the guard (capture_relid.c) */
  p2q_buf_puts(&body, ";\n  END IF;\nEND\n");
  p2q_buf_puts(out, "DO ");
  rc = append_quoted(out, &body);
fail:
  p2q_buf_free(&cond);
  p2q_buf_free(&body);
  p2q_buf_free(&create);
  p2q_buf_free(&pinned);
  return rc;
}

/* The backfill statement (filtered, in key order) over `source`. */
static int backfill_from(const p2q_rule_config_t *r, const char *schema, int max_attempts, const char *op,
                         const char *extra_where, const char *source, p2q_buf_t *out) {
  int rc = p2q_capture_enqueue_sql(r, schema, max_attempts, op, source, out);
  if (rc) return rc;
  p2q_buf_printf(out, " WHERE (%s)", r->filter ? r->filter : "true");
  if (extra_where) p2q_buf_printf(out, " AND (%s)", extra_where);
  p2q_buf_puts(out, " ORDER BY ");
  for (int i = 0; i < r->key.n; i++) {
    if (i) p2q_buf_puts(out, ", ");
    p2q_buf_puts(out, "r.");
    p2q_sql_ident(out, r->key.items[i]);
  }
  return p2q_buf_error(out);
}

static int enqueue_sql(const p2q_rule_config_t *r, const char *schema, int max_attempts, const char *op,
                       const char *source, int by_name, int vec, int no_routing, p2q_buf_t *out);

/* EXECUTE 'INSERT … FROM ' || TG_RELID::regclass::text || ' AS r …': the delete events of the
   relation a TRUNCATE trigger fires on: filtered (backfill's statement, mode 1), every row by
   name (0), or every row by name without its routing key (2: the key raised for some row). The
   statement is generated over a placeholder source that occurs exactly once in it. */
static int execute_on_relid(p2q_buf_t *b, const p2q_rule_config_t *r, const char *schema, int max_attempts,
                            int mode) {
  p2q_buf_t s = P2Q_BUF_INIT;
  int rc = P2Q_EINVAL;
  for (int k = 0; k < 1000; k++) {
    char ph[32];
    snprintf(ph, sizeof ph, "p2q_relid_%d", k);
    p2q_buf_reset(&s);
    rc = mode == 1 ? backfill_from(r, schema, max_attempts, "delete", NULL, ph, &s)
                   : enqueue_sql(r, schema, max_attempts, "delete", ph, 1, 0, mode == 2, &s);
    if (rc) break;
    if (p2q_sql_count(s.data, ph) != 1) { rc = P2Q_EINVAL; continue; }
    char *at = strstr(s.data, ph);
    *at = '\0';
    p2q_buf_puts(b, "EXECUTE ");
    p2q_sql_literal(b, s.data);
    p2q_buf_puts(b, " || TG_RELID::regclass::text || ");
    p2q_sql_literal(b, at + strlen(ph));
    break;
  }
  p2q_buf_free(&s);
  return rc ? rc : p2q_buf_error(b);
}

/* The relations a rule's TRUNCATE trigger goes on: the table itself or, when it is partitioned,
   each of its leaf partitions (PostgreSQL fires no trigger of a partitioned table for a TRUNCATE
   of one partition, and every partition's for a TRUNCATE of the table); only partitions when
   partitions_only. Rows of relid. */
static void truncate_targets(p2q_buf_t *b, const char *table_literal, int partitions_only) {
  if (!partitions_only)
    p2q_buf_printf(b, "SELECT p2q_c.oid AS relid FROM pg_catalog.pg_class AS p2q_c WHERE p2q_c.oid = "
                      "pg_catalog.to_regclass(%s) AND p2q_c.relkind = 'r' UNION ALL ", table_literal);
  p2q_buf_printf(b, "SELECT p2q_p.relid FROM pg_catalog.pg_partition_tree(pg_catalog.to_regclass(%s)) AS p2q_p"
                    " JOIN pg_catalog.pg_class AS p2q_c ON p2q_c.oid = p2q_p.relid WHERE p2q_p.isleaf"
                    " AND p2q_c.relkind = 'r' AND p2q_p.level > 0", table_literal);
}

int p2q_capture_truncate_triggers_sql(const p2q_rule_config_t *r, const char *schema, p2q_buf_t *out) {
  p2q_buf_t body = P2Q_BUF_INIT, tl = P2Q_BUF_INIT, lit = P2Q_BUF_INIT, trig = P2Q_BUF_INIT, fn = P2Q_BUF_INIT;
  int rc = p2q_sql_qualified(&tl, r->table);
  if (rc) goto fail;
  p2q_sql_literal(&lit, tl.data);
  p2q_buf_printf(&trig, "p2q_%s_truncate", r->name);
  function_name(&fn, schema, "p2q_truncate_", r->name);
  p2q_buf_puts(&body, "\nDECLARE\n  rel regclass;\nBEGIN\n  FOR rel IN ");
  truncate_targets(&body, lit.data, 0);
  p2q_buf_puts(&body, " LOOP\n    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger g WHERE g.tgrelid = rel AND g.tgname = ");
  p2q_sql_literal(&body, trig.data);
  p2q_buf_puts(&body, ") THEN\n      EXECUTE pg_catalog.format('CREATE TRIGGER %I BEFORE TRUNCATE ON %s "
                      "FOR EACH STATEMENT EXECUTE FUNCTION %s()', ");
  p2q_sql_literal(&body, trig.data);
  p2q_buf_puts(&body, ", rel, ");
  p2q_sql_literal(&body, fn.data);
  p2q_buf_puts(&body, ");\n    END IF;\n  END LOOP;\nEND\n");
  if ((rc = p2q_buf_error(&body))) goto fail;
  p2q_buf_puts(out, "DO ");
  rc = append_quoted(out, &body);
fail:
  p2q_buf_free(&body);
  p2q_buf_free(&tl);
  p2q_buf_free(&lit);
  p2q_buf_free(&trig);
  p2q_buf_free(&fn);
  return rc;
}

int p2q_capture_truncate_missing_sql(const p2q_rule_config_t *r, p2q_buf_t *out) {
  p2q_buf_t tl = P2Q_BUF_INIT, lit = P2Q_BUF_INIT, trig = P2Q_BUF_INIT;
  int rc = p2q_sql_qualified(&tl, r->table);
  if (!rc) {
    p2q_sql_literal(&lit, tl.data);
    p2q_buf_printf(&trig, "p2q_%s_truncate", r->name);
    p2q_buf_puts(out, "SELECT count(*) FROM (");
    truncate_targets(out, lit.data, 0);
    p2q_buf_puts(out, ") AS p2q_t WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger g WHERE g.tgrelid = p2q_t.relid"
                      " AND g.tgname = ");
    p2q_sql_literal(out, trig.data);
    p2q_buf_puts(out, ")");
    rc = p2q_buf_error(out);
  }
  p2q_buf_free(&tl);
  p2q_buf_free(&lit);
  p2q_buf_free(&trig);
  return rc;
}

/* Trigger g (pg_trigger) is on table t (an expression), not pg2qdrant's, and fires AFTER an
   INSERT or a DELETE: none may exist for the statement-level capture. Such a trigger fires before
   it (row triggers fire before statement triggers; statement triggers by name) and may change
   the rows just inserted or write a deleted row's key again, whose transition-table image would
   then reach Qdrant after the newer one. BEFORE triggers only shape the rows the transition table
   holds. tgtype: 4 INSERT, 8 DELETE, 2 BEFORE, 64 INSTEAD OF. pg2qdrant's own (other rules'
   capture) write only the outbox. */
static void after_write_trigger(p2q_buf_t *b, const char *schema, const char *t) {
  p2q_buf_printf(b, "g.tgrelid = %s AND NOT g.tgisinternal AND (g.tgtype & 12) <> 0 AND (g.tgtype & 66) = 0"
                    " AND g.tgfoid NOT IN (SELECT p.oid FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n"
                    " ON n.oid = p.pronamespace WHERE n.nspname = ", t);
  p2q_sql_literal(b, schema);
  p2q_buf_puts(b, " AND (p.proname LIKE 'p2q\\_capture\\_%' OR p.proname LIKE 'p2q\\_insert\\_%'"
                  " OR p.proname LIKE 'p2q\\_delete\\_%'))");
}

/* No temp_file_limit that a writer's session can have: a transition table larger than work_mem
   spills to temporary files, so under a limit a big INSERT would fail because of its capture
   (the row trigger's queue of events stays in memory). The server's value as this session sees
   it and every per-database or per-role setting of this database. */
static void no_temp_file_limit(p2q_buf_t *b) {
  p2q_buf_puts(b, "pg_catalog.current_setting('temp_file_limit') = '-1' AND NOT EXISTS (SELECT 1"
                  " FROM pg_catalog.pg_db_role_setting s, pg_catalog.unnest(s.setconfig) AS c(v)"
                  " WHERE s.setdatabase IN (0, (SELECT d.oid FROM pg_catalog.pg_database d"
                  " WHERE d.datname = pg_catalog.current_database())) AND c.v LIKE 'temp\\_file\\_limit=%')");
}

/* The statement-level INSERT capture fits table t (a regclass expression): a plain table (not
   partitioned, not a partition: a partition's statement triggers do not fire for rows routed
   through its parent, a parent's not for rows inserted into a partition), not replicated into
   by a subscription (logical replication's apply fires row triggers enabled ALWAYS or REPLICA,
   never statement triggers), no other AFTER INSERT or DELETE trigger (after_write_trigger), no
   temp_file_limit (no_temp_file_limit). */
static void stmt_capture_fits(p2q_buf_t *b, const char *schema, const char *t) {
  p2q_buf_printf(b, "(SELECT c.relkind = 'r' AND NOT c.relispartition FROM pg_catalog.pg_class c WHERE c.oid = %s)"
                    "\n     AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_subscription_rel sr WHERE sr.srrelid = %s)"
                    "\n     AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger g WHERE ", t, t);
  after_write_trigger(b, schema, t);
  p2q_buf_puts(b, ")\n     AND ");
  no_temp_file_limit(b);
}

/* The capture triggers of rule r on qtable, chosen when the script runs: a table that fits
   (stmt_capture_fits) gets the statement-level INSERT and DELETE capture (capture_stmt.c) and the
   row trigger for UPDATE; any other the row trigger for all three. The old triggers are dropped
   first, in the same transaction. */
static int capture_triggers(p2q_buf_t *out, const p2q_rule_config_t *r, const char *schema, const char *qtable) {
  p2q_buf_t body = P2Q_BUF_INIT, lit = P2Q_BUF_INIT;
  p2q_sql_literal(&lit, qtable);
  static const char *const suffix[] = {"", "_insert", "_delete"};
  for (int i = 0; i < 3; i++) {
    p2q_buf_puts(out, "DROP TRIGGER IF EXISTS ");
    trigger_name(out, r->name, suffix[i]);
    p2q_buf_printf(out, " ON %s;\n", qtable);
  }
  p2q_buf_puts(&body, "\nBEGIN\n  IF ");
  p2q_buf_puts(&lit, "::regclass");
  stmt_capture_fits(&body, schema, lit.data);
  p2q_buf_puts(&body, " THEN\n    CREATE TRIGGER ");
  trigger_name(&body, r->name, "");
  p2q_buf_printf(&body, " AFTER UPDATE ON %s FOR EACH ROW EXECUTE FUNCTION ", qtable);
  function_name(&body, schema, "p2q_capture_", r->name);
  p2q_buf_puts(&body, "();\n    CREATE TRIGGER ");
  trigger_name(&body, r->name, "_insert");
  p2q_buf_printf(&body, " AFTER INSERT ON %s REFERENCING NEW TABLE AS p2q_new FOR EACH STATEMENT EXECUTE FUNCTION ",
                 qtable);
  function_name(&body, schema, "p2q_insert_", r->name);
  p2q_buf_puts(&body, "();\n    CREATE TRIGGER ");
  trigger_name(&body, r->name, "_delete");
  p2q_buf_printf(&body, " AFTER DELETE ON %s REFERENCING OLD TABLE AS p2q_old FOR EACH STATEMENT EXECUTE FUNCTION ",
                 qtable);
  function_name(&body, schema, "p2q_delete_", r->name);
  p2q_buf_puts(&body, "();\n  ELSE\n    CREATE TRIGGER ");
  trigger_name(&body, r->name, "");
  p2q_buf_printf(&body, " AFTER INSERT OR UPDATE OR DELETE ON %s FOR EACH ROW EXECUTE FUNCTION ", qtable);
  function_name(&body, schema, "p2q_capture_", r->name);
  p2q_buf_puts(&body, "();\n  END IF;\nEND\n");
  p2q_buf_puts(out, "DO ");
  int rc = append_quoted(out, &body);
  p2q_buf_free(&body);
  p2q_buf_free(&lit);
  return rc;
}

/* the install script; only its functions when functions_only (p2q_capture_functions_sql) */
static int install_sql(const p2q_rule_config_t *r, const char *schema, int max_attempts, p2q_buf_t *out,
                       int functions_only) {
  /* generated names must not be truncated by PostgreSQL (63 bytes): "p2q_NAME" and
     "p2q_NAME_truncate" would collide and the second DROP would remove the row trigger */
  if (strlen(r->name) > P2Q_RULE_NAME_MAX) return P2Q_EINVAL;
  p2q_strlist_t snap;
  p2q_buf_t body = P2Q_BUF_INIT, qtable = P2Q_BUF_INIT;
  int rc = p2q_capture_snapshot_columns(r, &snap);
  if (rc) return rc;
  if ((rc = p2q_sql_qualified(&qtable, r->table))) goto fail;

  /* what an UPDATE must change to enqueue: `watch` (default: the snapshot), and always the
     vector and text columns, whose change changes the point */
  p2q_strlist_t watch = {NULL, 0};
  if (r->watch.n) {
    p2q_strlist_t t = {NULL, 0};
    for (int i = 0; !rc && i < r->watch.n; i++) rc = p2q_strlist_add(&watch, r->watch.items[i], strlen(r->watch.items[i]));
    if (!rc && r->vector_column) rc = p2q_strlist_add(&watch, r->vector_column, strlen(r->vector_column));
    if (!rc) rc = p2q_template_columns(r->text, &t);
    for (int i = 0; !rc && i < t.n; i++) rc = p2q_strlist_add(&watch, t.items[i], strlen(t.items[i]));
    p2q_strlist_free(&t);
    if (rc) { p2q_strlist_free(&watch); goto fail; }
  }
  p2q_strlist_t need;
  if ((rc = p2q_capture_needed_columns(r, &need))) { p2q_strlist_free(&watch); goto fail; }
  rc = row_functions(out, r, schema, max_attempts, &snap, r->watch.n ? &watch : &snap, &need);
  for (int d = 0; d < 2 && !rc; d++) { /* the INSERT statement function, then the DELETE one */
    const char *op = d ? "delete" : "upsert", *prefix = d ? "p2q_delete_" : "p2q_insert_";
    p2q_buf_reset(&body);
    rc = p2q_capture_stmt_body(&body, r, schema, max_attempts, &snap, r->watch.n ? &watch : &snap, &need, op, NULL,
                               NULL);
    if (!rc) rc = append_function(out, schema, prefix, r, &body);
    if (!rc) rc = unpinned_stmt_function(out, r, schema, max_attempts, &snap, r->watch.n ? &watch : &snap, &need, op,
                                         prefix, qtable.data);
  }
  p2q_strlist_free(&watch);
  p2q_strlist_free(&need);
  if (rc) goto fail;
  if (functions_only && r->on_truncate != P2Q_TRUNCATE_DELETE) goto done;
  if (!functions_only && (rc = capture_triggers(out, r, schema, qtable.data))) goto fail;
  if (!functions_only) p2q_buf_puts(out, "DROP TRIGGER IF EXISTS ");
  if (!functions_only) {
    trigger_name(out, r->name, "_truncate");
    p2q_buf_printf(out, " ON %s;\n", qtable.data);
  }
  if (r->on_truncate == P2Q_TRUNCATE_DELETE) {
    /* TRUNCATE must not fail either: when the filter or the key cannot be evaluated any more,
       every row gets a delete event (deleting a point that never existed is harmless), by name;
       when the routing key raises for some row, without it (the claim's rule orders the row's events
       across workers). The function reads the relation it fires on (the table, or one of its
       partitions). */
    p2q_buf_reset(&body);
    p2q_buf_puts(&body, "\nBEGIN\n");
    p2q_capture_relid_guard(&body, r, schema, "truncate", max_attempts);
    p2q_buf_puts(&body, "  BEGIN\n    ");
    if ((rc = execute_on_relid(&body, r, schema, max_attempts, 1))) goto fail;
    p2q_buf_puts(&body, ";\n  EXCEPTION WHEN OTHERS THEN\n    BEGIN\n      ");
    if ((rc = execute_on_relid(&body, r, schema, max_attempts, 0))) goto fail;
    p2q_buf_puts(&body, ";\n    EXCEPTION WHEN OTHERS THEN\n      ");
    if ((rc = execute_on_relid(&body, r, schema, max_attempts, 2))) goto fail;
    p2q_buf_puts(&body, ";\n    END;\n  END;\n  RETURN NULL;\nEND\n");
    if ((rc = append_function(out, schema, "p2q_truncate_", r, &body))) goto fail;
    if (functions_only) goto done;
    if ((rc = p2q_capture_truncate_triggers_sql(r, schema, out))) goto fail;
  } else { /* with the triggers of every partition */
    p2q_buf_puts(out, "DROP FUNCTION IF EXISTS ");
    function_name(out, schema, "p2q_truncate_", r->name);
    p2q_buf_puts(out, "() CASCADE;\n");
  }
  if ((rc = p2q_capture_drift_sql(r, schema, out))) goto fail;
done:
  rc = p2q_buf_error(out);
fail:
  p2q_strlist_free(&snap);
  p2q_buf_free(&body);
  p2q_buf_free(&qtable);
  return rc;
}

int p2q_capture_install_sql(const p2q_rule_config_t *r, const char *schema, int max_attempts, p2q_buf_t *out) {
  return install_sql(r, schema, max_attempts, out, 0);
}

int p2q_capture_functions_sql(const p2q_rule_config_t *r, const char *schema, int max_attempts, p2q_buf_t *out) {
  return install_sql(r, schema, max_attempts, out, 1);
}

int p2q_capture_drop_sql(const char *rule_name, const char *table, const char *schema, p2q_buf_t *out) {
  p2q_buf_t qtable = P2Q_BUF_INIT;
  int rc = p2q_sql_qualified(&qtable, table);
  if (rc) goto fail;
  p2q_buf_puts(out, "DROP TRIGGER IF EXISTS ");
  trigger_name(out, rule_name, "");
  p2q_buf_printf(out, " ON %s;\nDROP TRIGGER IF EXISTS ", qtable.data);
  trigger_name(out, rule_name, "_truncate");
  p2q_buf_printf(out, " ON %s;\nDROP TRIGGER IF EXISTS ", qtable.data);
  trigger_name(out, rule_name, "_insert");
  p2q_buf_printf(out, " ON %s;\nDROP TRIGGER IF EXISTS ", qtable.data);
  trigger_name(out, rule_name, "_delete");
  p2q_buf_printf(out, " ON %s;\nDROP FUNCTION IF EXISTS ", qtable.data);
  function_name(out, schema, "p2q_capture_", rule_name);
  p2q_buf_puts(out, "();\nDROP FUNCTION IF EXISTS ");
  function_name(out, schema, P2Q_CAPTURE_PINNED_PREFIX, rule_name);
  p2q_buf_puts(out, PINNED_TYPES ";\nDROP FUNCTION IF EXISTS ");
  function_name(out, schema, "p2q_insert_", rule_name);
  p2q_buf_puts(out, "();\nDROP FUNCTION IF EXISTS ");
  function_name(out, schema, "p2q_delete_", rule_name);
  p2q_buf_puts(out, "();\nDROP FUNCTION IF EXISTS ");
  function_name(out, schema, "p2q_truncate_", rule_name);
  p2q_buf_puts(out, "() CASCADE;\nDROP FUNCTION IF EXISTS "); /* its triggers on partitions too */
  function_name(out, schema, "p2q_drift_", rule_name);
  p2q_buf_puts(out, "();\n");
  rc = p2q_buf_error(out);
fail:
  p2q_buf_free(&qtable);
  return rc;
}

int p2q_capture_backfill_sql(const p2q_rule_config_t *r, const char *schema, int max_attempts,
                             const char *op, const char *extra_where, p2q_buf_t *out) {
  p2q_buf_t qtable = P2Q_BUF_INIT;
  int rc = p2q_sql_qualified(&qtable, r->table);
  if (!rc) rc = backfill_from(r, schema, max_attempts, op, extra_where, qtable.data, out);
  p2q_buf_free(&qtable);
  return rc;
}

int p2q_capture_snapshot_expr(const p2q_rule_config_t *r, const char *ref, p2q_buf_t *out) {
  p2q_strlist_t snap;
  int rc = p2q_capture_snapshot_columns(r, &snap);
  if (rc) return rc;
  if (snap.n == 0) {
    p2q_buf_printf(out, "to_json(%s)", ref);
  } else {
    p2q_buf_puts(out, "(SELECT ");
    p2q_capture_named_snapshot(out, &snap);
    p2q_buf_printf(out, " FROM json_each(row_to_json(%s)) AS e)", ref);
  }
  p2q_strlist_free(&snap);
  return p2q_buf_error(out);
}

int p2q_capture_key_expr(const p2q_rule_config_t *r, const char *ref, p2q_buf_t *out) {
  p2q_capture_json_object(out, ref, &r->key);
  return p2q_buf_error(out);
}

static int enqueue_sql(const p2q_rule_config_t *r, const char *schema, int max_attempts, const char *op,
                       const char *source, int by_name, int vec, int no_routing, p2q_buf_t *out) {
  p2q_strlist_t snap, need = {NULL, 0};
  int rc = p2q_capture_snapshot_columns(r, &snap);
  if (!rc) rc = p2q_capture_needed_columns(r, &need);
  p2q_capture_events_t ev = {.schema = schema, .max_attempts = max_attempts, .op = op, .snap = &snap,
                             .need = &need, .source = source, .by_name = by_name, .vec = vec,
                             .no_routing = no_routing};
  if (!rc) p2q_capture_insert_events(out, r, &ev);
  p2q_strlist_free(&snap);
  p2q_strlist_free(&need);
  return rc ? rc : p2q_buf_error(out);
}

int p2q_capture_enqueue_sql(const p2q_rule_config_t *r, const char *schema, int max_attempts,
                            const char *op, const char *source, p2q_buf_t *out) {
  return enqueue_sql(r, schema, max_attempts, op, source, 1, 0, 0, out);
}

int p2q_capture_enqueue_fast_sql(const p2q_rule_config_t *r, const char *schema, int max_attempts,
                                 const char *op, const char *source, p2q_buf_t *out) {
  return enqueue_sql(r, schema, max_attempts, op, source, 0, 0, 0, out);
}

int p2q_capture_enqueue_vec_sql(const p2q_rule_config_t *r, const char *schema, int max_attempts,
                                const char *op, const char *source, p2q_buf_t *out) {
  return enqueue_sql(r, schema, max_attempts, op, source, 0, 1, 0, out);
}

int p2q_capture_check_sql(const p2q_rule_config_t *r, p2q_buf_t *out) {
  p2q_buf_puts(out, "SELECT ");
  p2q_capture_json_object(out, "r", &r->key);
  p2q_buf_printf(out, ", (%s)::boolean", r->filter ? r->filter : "true");
  if (r->routing_key) p2q_buf_printf(out, ", (%s)::text", r->routing_key);
  p2q_buf_puts(out, " FROM ");
  int rc = p2q_sql_qualified(out, r->table);
  if (rc) return rc;
  p2q_buf_puts(out, " AS r LIMIT 0");
  return p2q_buf_error(out);
}

/* Append (col, used_as, breaks) VALUES rows for a list, each column once (its first role). */
static int drift_values(p2q_buf_t *b, const p2q_strlist_t *cols, const char *used_as, int breaks,
                        p2q_strlist_t *seen) {
  for (int i = 0; i < cols->n; i++) {
    int dup = 0, rc;
    for (int j = 0; j < seen->n && !dup; j++) dup = !strcmp(seen->items[j], cols->items[i]);
    if (dup) continue;
    p2q_buf_puts(b, seen->n ? ", (" : "(");
    if ((rc = p2q_strlist_add(seen, cols->items[i], strlen(cols->items[i])))) return rc;
    p2q_sql_literal(b, cols->items[i]);
    p2q_buf_printf(b, ", '%s', %s)", used_as, breaks ? "true" : "false");
  }
  return 0;
}

int p2q_capture_columns_sql(const p2q_rule_config_t *r, p2q_buf_t *out) {
  p2q_strlist_t text = {NULL, 0}, seen = {NULL, 0};
  int rc = p2q_template_columns(r->text, &text);
  if (rc) return rc;
  p2q_strlist_t vec = {r->vector_column ? (char **)&r->vector_column : NULL, r->vector_column ? 1 : 0};
  p2q_buf_puts(out, "(VALUES ");
  if (!rc) rc = drift_values(out, &r->key, "key", 1, &seen);
  if (!rc) rc = drift_values(out, &vec, "vector_column", 1, &seen);
  if (!rc) rc = drift_values(out, &text, "text", 1, &seen);
  if (!rc) rc = drift_values(out, &r->columns, "columns", 0, &seen);
  if (!rc) rc = drift_values(out, &r->watch, "watch", 0, &seen);
  p2q_buf_puts(out, ") AS c(col, used_as, breaks)");
  p2q_strlist_free(&text);
  p2q_strlist_free(&seen);
  return rc ? rc : p2q_buf_error(out);
}

/* Drift of the statement-level capture (capture_triggers), in the drift function's body (t: the
   table): one of its triggers gone while the row trigger no longer fires on INSERT and DELETE
   (breaks); and while its INSERT trigger is there, what no longer fits it (stmt_capture_fits):
   another AFTER INSERT or DELETE trigger, a temp_file_limit, a subscription (the next `apply` moves
   INSERTs and DELETEs back to the row trigger), the table attached as a partition (breaks: rows
   routed through the parent fire no statement trigger of the partition). */
static int drift_stmt_capture(p2q_buf_t *b, const p2q_rule_config_t *r, const char *schema) {
  p2q_buf_puts(b, "  RETURN QUERY SELECT m.n, 'trigger'::text, true FROM (VALUES (");
  trigger_literal(b, r->name, "_insert");
  p2q_buf_puts(b, "), (");
  trigger_literal(b, r->name, "_delete");
  p2q_buf_puts(b, ")) AS m(n) WHERE EXISTS (SELECT 1 FROM pg_trigger g WHERE g.tgrelid = t AND g.tgname = ");
  trigger_literal(b, r->name, "");
  p2q_buf_puts(b, " AND (g.tgtype & 4) = 0)\n    AND NOT EXISTS (SELECT 1 FROM pg_trigger g WHERE g.tgrelid = t AND g.tgname = m.n);\n"
                  "  IF EXISTS (SELECT 1 FROM pg_trigger i WHERE i.tgrelid = t AND i.tgname = ");
  trigger_literal(b, r->name, "_insert");
  p2q_buf_puts(b, ") THEN\n    RETURN QUERY SELECT g.tgname::text, 'after write trigger'::text, false FROM pg_trigger g WHERE ");
  after_write_trigger(b, schema, "t");
  p2q_buf_puts(b, ";\n    RETURN QUERY SELECT 'temp_file_limit'::text, 'setting'::text, false WHERE NOT (");
  no_temp_file_limit(b);
  p2q_buf_puts(b, ");\n    RETURN QUERY SELECT s.subname::text, 'subscription'::text, false FROM pg_subscription_rel sr"
                  " JOIN pg_subscription s ON s.oid = sr.srsubid WHERE sr.srrelid = t;\n"
                  "    RETURN QUERY SELECT c.relname::text, 'partition'::text, true FROM pg_class c"
                  " WHERE c.oid = t AND (c.relkind <> 'r' OR c.relispartition);\n  END IF;\n");
  return p2q_buf_error(b);
}

int p2q_capture_installed_sql(const p2q_rule_config_t *r, const char *schema, p2q_buf_t *out) {
  p2q_buf_t qt = P2Q_BUF_INIT;
  int rc = p2q_sql_qualified(&qt, r->table);
  if (rc) goto fail;
  p2q_buf_puts(out, "SELECT ");
  if (r->filter) {
    p2q_buf_puts(out, "true");
  } else {
    p2q_buf_puts(out, "pg_catalog.to_regprocedure(");
    pinned_literal(out, schema, r->name);
    p2q_buf_puts(out, ") IS NOT NULL");
  }
  /* the row trigger's function holds this table's oid (capture_relid.c): not so in a restored
     pg_dump (new oids), where the functions' slow test finds the table by name until this apply
     installs them again (the events unchanged: nothing enqueued) */
  p2q_buf_puts(out, " AND (SELECT pg_catalog.strpos(f.prosrc, '''' || p.tgrelid::pg_catalog.oid::pg_catalog.text ||"
                    " '''::pg_catalog.oid') > 0 FROM pg_catalog.pg_proc f WHERE f.oid = p.tgfoid)");
  /* <partitions>: the functions' fast test lists the table's partitions exactly as an install would
     now (capture_relid.c: those named in [a-z0-9_] only; none detached, renamed or dropped since:
     rv16a M-1); false: `apply` writes the functions again, no trigger DDL */
  p2q_buf_puts(out, ", (SELECT ");
  p2q_capture_relid_parts_current(out, "f.prosrc", "p.tgrelid::pg_catalog.regclass");
  p2q_buf_puts(out, " FROM pg_catalog.pg_proc f WHERE f.oid = p.tgfoid)");
  /* and so does every other guarded function of the rule, attached or not: each writes its list
     in its own statement, so an ATTACH committing between them leaves them unequal (rv16b L-1) */
  p2q_buf_puts(out, " AND ");
  p2q_capture_parts_current_sql(out, r, schema, "p.tgrelid::pg_catalog.regclass");
  p2q_buf_puts(out, " FROM pg_catalog.pg_trigger p WHERE p.tgrelid = pg_catalog.to_regclass(");
  p2q_sql_literal(out, qt.data);
  p2q_buf_puts(out, ") AND p.tgname = ");
  trigger_literal(out, r->name, "");
  p2q_buf_puts(out, " AND ((p.tgtype & 4) <> 0 OR EXISTS (SELECT 1 FROM pg_catalog.pg_trigger i"
                    " WHERE i.tgrelid = p.tgrelid AND i.tgname = ");
  trigger_literal(out, r->name, "_insert");
  p2q_buf_puts(out, ") AND EXISTS (SELECT 1 FROM pg_catalog.pg_trigger d WHERE d.tgrelid = p.tgrelid AND d.tgname = ");
  trigger_literal(out, r->name, "_delete");
  p2q_buf_puts(out, " AND ");
  stmt_capture_fits(out, schema, "p.tgrelid");
  p2q_buf_puts(out, "))");
  rc = p2q_buf_error(out);
fail:
  p2q_buf_free(&qt);
  return rc;
}

int p2q_capture_drift_sql(const p2q_rule_config_t *r, const char *schema, p2q_buf_t *out) {
  p2q_buf_t body = P2Q_BUF_INIT, qtable = P2Q_BUF_INIT, trig = P2Q_BUF_INIT, m = P2Q_BUF_INIT;
  int rc = p2q_sql_qualified(&qtable, r->table);
  if (rc) goto fail;
  p2q_buf_puts(&body, "\nDECLARE\n  t regclass := to_regclass(");
  p2q_sql_literal(&body, qtable.data);
  p2q_buf_puts(&body, ");\nBEGIN\n  IF t IS NULL THEN\n    RETURN QUERY SELECT ");
  p2q_sql_literal(&body, r->table);
  p2q_buf_puts(&body, "::text, 'table'::text, true;\n    RETURN;\n  END IF;\n"
                      "  RETURN QUERY SELECT c.col, c.used_as, c.breaks FROM ");
  if ((rc = p2q_capture_columns_sql(r, &body))) goto fail;
  p2q_buf_puts(&body, "\n    WHERE NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = t AND a.attname = c.col"
                      " AND a.attnum > 0 AND NOT a.attisdropped);\n");
  p2q_buf_printf(&trig, "p2q_%s", r->name);
  p2q_buf_puts(&body, "  IF NOT EXISTS (SELECT 1 FROM pg_trigger g WHERE g.tgrelid = t AND g.tgname = ");
  p2q_sql_literal(&body, trig.data);
  p2q_buf_puts(&body, ") THEN\n    RETURN QUERY SELECT ");
  p2q_sql_literal(&body, trig.data);
  p2q_buf_puts(&body, "::text, 'trigger'::text, true;\n  END IF;\n");
  if (!r->filter) { /* the gate's pinned function, dropped by hand: the changes it writes fail */
    p2q_buf_puts(&body, "  RETURN QUERY SELECT ");
    pinned_literal(&body, schema, r->name);
    p2q_buf_puts(&body, "::text, 'function'::text, true WHERE pg_catalog.to_regprocedure(");
    pinned_literal(&body, schema, r->name);
    p2q_buf_puts(&body, ") IS NULL;\n");
  }
  if ((rc = drift_stmt_capture(&body, r, schema))) goto fail;
  if (r->on_truncate == P2Q_TRUNCATE_DELETE) { /* a partition created or attached since `apply` */
    p2q_buf_t lit = P2Q_BUF_INIT, tt = P2Q_BUF_INIT;
    p2q_sql_literal(&lit, qtable.data);
    p2q_buf_printf(&tt, "p2q_%s_truncate", r->name);
    p2q_buf_puts(&body, "  RETURN QUERY SELECT pg_catalog.format('%I on %s', ");
    p2q_sql_literal(&body, tt.data);
    p2q_buf_puts(&body, ", p2q_t.relid::regclass), 'trigger'::text, false FROM (");
    truncate_targets(&body, lit.data, 1);
    p2q_buf_puts(&body, ") AS p2q_t\n    WHERE NOT EXISTS (SELECT 1 FROM pg_trigger g WHERE g.tgrelid = p2q_t.relid AND g.tgname = ");
    p2q_sql_literal(&body, tt.data);
    p2q_buf_puts(&body, ");\n");
    p2q_buf_free(&lit);
    p2q_buf_free(&tt);
  }
  if (r->filter || r->routing_key) {
    p2q_buf_printf(&m, "SELECT (%s)::boolean", r->filter ? r->filter : "true");
    if (r->routing_key) p2q_buf_printf(&m, ", (%s)::text", r->routing_key);
    p2q_buf_printf(&m, " FROM %s AS r LIMIT 0", qtable.data);
    p2q_buf_puts(&body, "  BEGIN\n    EXECUTE ");
    p2q_sql_literal(&body, p2q_buf_str(&m));
    p2q_buf_puts(&body, ";\n  EXCEPTION WHEN OTHERS THEN\n    RETURN QUERY SELECT SQLERRM, "
                        "'filter or routing_key'::text, true;\n  END;\n");
  }
  p2q_buf_puts(&body, "END\n");
  if ((rc = p2q_buf_error(&body))) goto fail;
  p2q_buf_puts(out, "CREATE OR REPLACE FUNCTION ");
  function_name(out, schema, "p2q_drift_", r->name);
  p2q_buf_puts(out, "() RETURNS TABLE (item text, used_as text, breaks boolean)\n"
                    "LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS ");
  rc = append_quoted(out, &body);
fail:
  p2q_buf_free(&body);
  p2q_buf_free(&qtable);
  p2q_buf_free(&trig);
  p2q_buf_free(&m);
  return rc;
}

int p2q_capture_guard_sql(const char *schema, p2q_buf_t *out) {
  p2q_buf_t qs = P2Q_BUF_INIT, name = P2Q_BUF_INIT, rules = P2Q_BUF_INIT, body = P2Q_BUF_INIT;
  p2q_sql_ident(&qs, schema);
  p2q_buf_printf(&name, "p2q_ddl_guard_%s", schema);
  p2q_buf_printf(&rules, "%s.sync_outbox_rule", qs.data);
  p2q_buf_puts(&body, "\n"
                      "DECLARE\n  r record;\n  d record;\nBEGIN\n"
                      "  IF current_setting('pg2qdrant.allow_ddl', true) = 'on' THEN RETURN; END IF;\n"
                      "  -- never in the way of unrelated DDL: no outbox, or a rule without its drift function\n"
                      "  IF to_regclass(");
  p2q_sql_literal(&body, rules.data);
  p2q_buf_printf(&body, ") IS NULL THEN RETURN; END IF;\n"
                      "  FOR r IN SELECT o.name FROM %s o\n"
                      "            WHERE to_regclass(o.source_table) IN (SELECT c.objid FROM pg_event_trigger_ddl_commands() c)\n"
                      "              AND to_regprocedure(format('%%s.%%I()', ", rules.data);
  p2q_sql_literal(&body, qs.data);
  p2q_buf_puts(&body, ", 'p2q_drift_' || o.name)) IS NOT NULL\n  LOOP\n    FOR d IN EXECUTE format('SELECT * FROM %s.%I()', ");
  p2q_sql_literal(&body, qs.data);
  p2q_buf_puts(&body, ", 'p2q_drift_' || r.name) LOOP\n"
                    "      IF d.used_as = 'trigger' AND NOT d.breaks THEN\n"
                    "        RAISE WARNING 'pg2qdrant: rule %: % is missing: a TRUNCATE of that partition is not "
                    "captured until pg2qdrant apply adds it', r.name, d.item;\n"
                    "      ELSIF d.breaks THEN\n"
                    "        RAISE EXCEPTION 'pg2qdrant: rule % needs % \"%\" of this table: refused (change or remove "
                    "the rule and run pg2qdrant apply first, or SET pg2qdrant.allow_ddl = on to let the rule''s "
                    "events be dead-lettered)', r.name, d.used_as, d.item;\n"
                    "      ELSE\n"
                    "        RAISE WARNING 'pg2qdrant: rule %: column \"%\" (in %) is no longer in this table: its "
                    "snapshots lack it (remove it from the rule)', r.name, d.item, d.used_as;\n"
                    "      END IF;\n    END LOOP;\n  END LOOP;\nEND\n");
  int rc = p2q_buf_error(&body);
  p2q_buf_printf(out, "CREATE OR REPLACE FUNCTION %s.p2q_ddl_guard() RETURNS event_trigger\n"
                      "LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS ", qs.data);
  if (!rc) rc = p2q_sql_dollar_quote(out, body.data);
  p2q_buf_puts(out, ";\nDROP EVENT TRIGGER IF EXISTS ");
  p2q_sql_ident(out, p2q_buf_str(&name));
  p2q_buf_puts(out, ";\nCREATE EVENT TRIGGER ");
  p2q_sql_ident(out, p2q_buf_str(&name));
  p2q_buf_printf(out, " ON ddl_command_end WHEN TAG IN ('ALTER TABLE')\n  EXECUTE FUNCTION %s.p2q_ddl_guard();\n",
                 qs.data);
  p2q_buf_free(&qs);
  p2q_buf_free(&name);
  p2q_buf_free(&rules);
  p2q_buf_free(&body);
  return rc ? rc : p2q_buf_error(out);
}

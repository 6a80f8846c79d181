/*
 * capture.c — generates the trigger functions, triggers and backfill statements that turn
 * changes of a rule's source table into sync_outbox events (see capture.h for the semantics).
 *
 * Pure string building: no I/O, no globals; any thread. Invariants: every identifier coming from
 * the config goes through p2q_sql_ident(), every value through p2q_sql_literal(); generated
 * function bodies are dollar-quoted with $p2q$ and refused if the tag occurs inside them.
 */
#include "pg2qdrant/capture.h"
#include "pg2qdrant/errors.h"
#include "pg2qdrant/session.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#define DQ "$p2q$"
#define PAIRS_PER_CALL 40 /* jsonb_build_object takes at most 100 arguments */

void p2q_sql_ident(p2q_buf_t *b, const char *ident) {
  p2q_buf_putc(b, '"');
  for (const char *p = ident; *p; p++) {
    if (*p == '"') p2q_buf_putc(b, '"');
    p2q_buf_putc(b, *p);
  }
  p2q_buf_putc(b, '"');
}

void p2q_sql_literal(p2q_buf_t *b, const char *s) {
  if (strchr(s, '\\')) p2q_buf_putc(b, 'E');
  p2q_buf_putc(b, '\'');
  for (const char *p = s; *p; p++) {
    if (*p == '\'' || *p == '\\') p2q_buf_putc(b, *p);
    p2q_buf_putc(b, *p);
  }
  p2q_buf_putc(b, '\'');
}

/* Parse one identifier at *pp (quoted or bare) into a malloc'd string; advances *pp. */
static int parse_ident(const char **pp, char **out) {
  const char *p = *pp;
  p2q_buf_t b = P2Q_BUF_INIT;
  if (*p == '"') {
    for (p++;; p++) {
      if (!*p) goto fail;
      if (*p == '"') {
        if (p[1] != '"') { p++; break; }
        p++;
      }
      p2q_buf_putc(&b, *p);
    }
  } else {
    if (!(isalpha((unsigned char)*p) || *p == '_')) goto fail;
    while (isalnum((unsigned char)*p) || *p == '_' || *p == '$')
      p2q_buf_putc(&b, (char)tolower((unsigned char)*p++));
  }
  if (b.len == 0 || p2q_buf_error(&b)) goto fail;
  *pp = p;
  *out = p2q_buf_steal(&b);
  return 0;
fail:
  p2q_buf_free(&b);
  return P2Q_EINVAL;
}

int p2q_sql_parse_qualified(const char *text, char **schema, char **name) {
  const char *p = text;
  char *a = NULL, *c = NULL;
  *schema = *name = NULL;
  while (isspace((unsigned char)*p)) p++;
  if (parse_ident(&p, &a)) goto fail;
  if (*p == '.') {
    p++;
    if (parse_ident(&p, &c)) goto fail;
  }
  while (isspace((unsigned char)*p)) p++;
  if (*p) goto fail;
  if (c) { *schema = a; *name = c; }
  else { *schema = strdup("public"); *name = a; if (!*schema) goto fail; }
  return 0;
fail:
  free(a);
  free(c);
  free(*schema);
  *schema = NULL;
  return P2Q_EINVAL;
}

int p2q_sql_qualified(p2q_buf_t *b, const char *text) {
  char *s, *n;
  int rc = p2q_sql_parse_qualified(text, &s, &n);
  if (rc) return rc;
  p2q_sql_ident(b, s);
  p2q_buf_putc(b, '.');
  p2q_sql_ident(b, n);
  free(s);
  free(n);
  return 0;
}

void p2q_strlist_free(p2q_strlist_t *l) {
  for (int i = 0; i < l->n; i++) free(l->items[i]);
  free(l->items);
  l->items = NULL;
  l->n = 0;
}

static int strlist_add(p2q_strlist_t *l, const char *s, size_t n) {
  for (int i = 0; i < l->n; i++)
    if (strlen(l->items[i]) == n && memcmp(l->items[i], s, n) == 0) return 0;
  char **items = realloc(l->items, sizeof *items * (size_t)(l->n + 1));
  if (!items) return P2Q_ENOMEM;
  l->items = items;
  if (!(items[l->n] = strndup(s, n))) return P2Q_ENOMEM;
  l->n++;
  return 0;
}

int p2q_template_columns(const char *text, p2q_strlist_t *out) {
  out->items = NULL;
  out->n = 0;
  if (!text) return 0;
  int rc = 0;
  if (strchr(text, '{')) {
    for (const char *p = text; *p && !rc; p++) {
      if (*p != '{') continue;
      if (p[1] == '{') { p++; continue; } /* "{{" is a literal brace */
      const char *e = strchr(p, '}');
      if (!e || e == p + 1) { rc = P2Q_EINVAL; break; }
      rc = strlist_add(out, p + 1, (size_t)(e - p - 1));
      p = e;
    }
  } else {
    const char *p = text;
    while (*p && !rc) {
      while (*p == ' ' || *p == ',' || *p == '\t') p++;
      const char *s = p;
      while (*p && *p != ',') p++;
      const char *e = p;
      while (e > s && isspace((unsigned char)e[-1])) e--;
      if (e > s) rc = strlist_add(out, s, (size_t)(e - s));
    }
  }
  if (rc) p2q_strlist_free(out);
  return rc;
}

/* Columns of the snapshot: `columns` plus the vector and text columns (empty: the whole row). */
static int snapshot_columns(const p2q_rule_config_t *r, p2q_strlist_t *out) {
  out->items = NULL;
  out->n = 0;
  if (r->columns.n == 0) return 0;
  int rc = 0;
  for (int i = 0; i < r->columns.n && !rc; i++)
    rc = strlist_add(out, r->columns.items[i], strlen(r->columns.items[i]));
  if (!rc && r->vector_column) rc = strlist_add(out, r->vector_column, strlen(r->vector_column));
  if (!rc && r->text) {
    p2q_strlist_t t;
    rc = p2q_template_columns(r->text, &t);
    for (int i = 0; !rc && i < t.n; i++) rc = strlist_add(out, t.items[i], strlen(t.items[i]));
    p2q_strlist_free(&t);
  }
  if (rc) p2q_strlist_free(out);
  return rc;
}

/* jsonb_build_object('a', ref."a", …) over cols (row keys: compared and indexed, so jsonb),
   or json_build_object for snapshots: json is text, so a 384-float vector costs a float4out per
   element instead of a float→numeric conversion in every writer's trigger (measured 16× cheaper
   to build, 2× cheaper to read back in the claim). More than PAIRS_PER_CALL columns are built in
   parts and merged through jsonb. */
static void object_expr(p2q_buf_t *b, const char *ref, const p2q_strlist_t *cols, int binary) {
  const char *fn = binary ? "jsonb_build_object(" : "json_build_object(";
  int parts = cols->n > PAIRS_PER_CALL;
  if (cols->n == 0) { p2q_buf_puts(b, binary ? "'{}'::jsonb" : "'{}'::json"); return; }
  if (parts && !binary) p2q_buf_putc(b, '(');
  for (int i = 0; i < cols->n; i++) {
    if (i % PAIRS_PER_CALL == 0) {
      if (i) p2q_buf_puts(b, parts && !binary ? ")::jsonb || " : ") || ");
      p2q_buf_puts(b, fn);
    } else {
      p2q_buf_puts(b, ", ");
    }
    p2q_sql_literal(b, cols->items[i]);
    p2q_buf_printf(b, ", %s.", ref);
    p2q_sql_ident(b, cols->items[i]);
  }
  p2q_buf_puts(b, parts && !binary ? ")::jsonb)::json" : ")");
}

static void json_object_expr(p2q_buf_t *b, const char *ref, const p2q_strlist_t *cols) {
  object_expr(b, ref, cols, 1);
}

static void snapshot_expr(p2q_buf_t *b, const char *ref, const p2q_strlist_t *snap) {
  if (snap->n == 0) p2q_buf_printf(b, "to_json(%s)", ref);
  else object_expr(b, ref, snap, 0);
}

/* (cols of NEW) differ from (cols of OLD), type-agnostic (json has no equality operator). */
static void changed_expr(p2q_buf_t *b, const p2q_strlist_t *cols) {
  if (cols->n == 0) { p2q_buf_puts(b, "to_jsonb(NEW) IS DISTINCT FROM to_jsonb(OLD)"); return; }
  for (int i = 0; i < cols->n; i++) {
    if (i) p2q_buf_puts(b, " OR ");
    p2q_buf_puts(b, "to_jsonb(NEW.");
    p2q_sql_ident(b, cols->items[i]);
    p2q_buf_puts(b, ") IS DISTINCT FROM to_jsonb(OLD.");
    p2q_sql_ident(b, cols->items[i]);
    p2q_buf_putc(b, ')');
  }
}

/* An operator-written expression evaluated over the trigger row `ref` (NEW or OLD). */
static void row_expr(p2q_buf_t *b, const char *ref, const char *expr, const char *cast) {
  p2q_buf_printf(b, "(SELECT (%s)%s FROM (SELECT %s.*) AS r)", expr, cast, ref);
}

static void insert_event(p2q_buf_t *b, const p2q_rule_config_t *r, const char *schema,
                         int max_attempts, const char *ref, const char *op,
                         const p2q_strlist_t *snap, int in_trigger) {
  p2q_sql_ident(b, schema);
  p2q_buf_puts(b, ".sync_outbox (event_type, routing_key, rule, source_table, row_key, op, payload, "
                  "max_attempts) ");
  p2q_buf_puts(b, in_trigger ? "VALUES (" : "SELECT ");
  p2q_sql_literal(b, r->event_type ? r->event_type : r->name);
  p2q_buf_puts(b, ", ");
  if (!r->routing_key) p2q_buf_puts(b, "NULL");
  else if (in_trigger) row_expr(b, ref, r->routing_key, "::text");
  else p2q_buf_printf(b, "(%s)::text", r->routing_key);
  p2q_buf_puts(b, ", ");
  p2q_sql_literal(b, r->name);
  p2q_buf_puts(b, ", ");
  p2q_sql_literal(b, r->table);
  p2q_buf_puts(b, ", ");
  json_object_expr(b, ref, &r->key);
  p2q_buf_printf(b, ", '%s', ", op);
  if (strcmp(op, "delete") == 0) p2q_buf_puts(b, "NULL");
  else snapshot_expr(b, ref, snap);
  p2q_buf_printf(b, ", %d", max_attempts);
  if (in_trigger) p2q_buf_putc(b, ')');
}

static void filter_of(p2q_buf_t *b, const p2q_rule_config_t *r, const char *ref) {
  if (!r->filter) { p2q_buf_puts(b, "true"); return; }
  p2q_buf_puts(b, "COALESCE(");
  row_expr(b, ref, r->filter, "::boolean");
  p2q_buf_puts(b, ", false)");
}

/* The body of the row trigger function (between the dollar quotes). */
static void capture_body(p2q_buf_t *b, const p2q_rule_config_t *r, const char *schema,
                         int max_attempts, const p2q_strlist_t *snap, const p2q_strlist_t *watch) {
  p2q_buf_puts(b, "\nDECLARE\n  new_ok boolean := false;\n  old_ok boolean := false;\nBEGIN\n");
  p2q_buf_puts(b, "  IF TG_OP <> 'DELETE' THEN new_ok := ");
  filter_of(b, r, "NEW");
  p2q_buf_puts(b, "; END IF;\n  IF TG_OP <> 'INSERT' THEN old_ok := ");
  filter_of(b, r, "OLD");
  p2q_buf_puts(b, "; END IF;\n");
  /* key changed: the old point goes away */
  p2q_buf_puts(b, "  IF TG_OP = 'UPDATE' AND old_ok AND (");
  changed_expr(b, &r->key);
  p2q_buf_puts(b, ") THEN\n    INSERT INTO ");
  insert_event(b, r, schema, max_attempts, "OLD", "delete", snap, 1);
  p2q_buf_puts(b, ";\n    old_ok := false;\n  END IF;\n");
  p2q_buf_puts(b, "  IF new_ok THEN\n    IF TG_OP = 'UPDATE' AND old_ok AND NOT (");
  changed_expr(b, watch);
  p2q_buf_puts(b, ") THEN RETURN NULL; END IF;\n    INSERT INTO ");
  insert_event(b, r, schema, max_attempts, "NEW", "upsert", snap, 1);
  p2q_buf_puts(b, ";\n  ELSIF old_ok THEN\n    INSERT INTO ");
  insert_event(b, r, schema, max_attempts, "OLD", "delete", snap, 1);
  p2q_buf_puts(b, ";\n  END IF;\n  RETURN NULL;\nEND\n");
}

static void function_name(p2q_buf_t *b, const char *schema, const char *prefix, const char *rule) {
  p2q_sql_ident(b, schema);
  p2q_buf_putc(b, '.');
  p2q_buf_t n = P2Q_BUF_INIT;
  p2q_buf_printf(&n, "%s%s", prefix, rule);
  p2q_sql_ident(b, p2q_buf_str(&n));
  p2q_buf_free(&n);
}

static void trigger_name(p2q_buf_t *b, const char *rule, const char *suffix) {
  p2q_buf_t n = P2Q_BUF_INIT;
  p2q_buf_printf(&n, "p2q_%s%s", rule, suffix);
  p2q_sql_ident(b, p2q_buf_str(&n));
  p2q_buf_free(&n);
}

/* Append a CREATE FUNCTION with the given body, refusing bodies that contain the quote tag. */
static int append_function(p2q_buf_t *out, const char *schema, const char *prefix,
                           const char *rule, const p2q_buf_t *body) {
  if (p2q_buf_error(body)) return p2q_buf_error(body);
  if (strstr(p2q_buf_str(body), DQ)) return P2Q_EINVAL;
  p2q_buf_puts(out, "CREATE OR REPLACE FUNCTION ");
  function_name(out, schema, prefix, rule);
  /* the pinned settings (session.h) make the snapshot text, the row key and the change test
     independent of the writer's session; PostgreSQL restores the writer's values on exit */
  p2q_buf_puts(out, "() RETURNS trigger\nLANGUAGE plpgsql SECURITY DEFINER "
                    "SET search_path = pg_catalog, pg_temp" P2Q_PINNED_FUNCTION_SET " AS " DQ);
  p2q_buf_append(out, body->data, body->len);
  p2q_buf_puts(out, DQ ";\n");
  return 0;
}

int p2q_capture_install_sql(const p2q_rule_config_t *r, const char *schema, int max_attempts,
                            p2q_buf_t *out) {
  /* generated names must not be truncated by PostgreSQL (63 bytes): "p2q_NAME" and
     "p2q_NAME_truncate" would collide and the second DROP would remove the row trigger */
  if (strlen(r->name) > P2Q_RULE_NAME_MAX) return P2Q_EINVAL;
  p2q_strlist_t snap;
  p2q_buf_t body = P2Q_BUF_INIT, qtable = P2Q_BUF_INIT;
  int rc = snapshot_columns(r, &snap);
  if (rc) return rc;
  if ((rc = p2q_sql_qualified(&qtable, r->table))) goto fail;

  /* what an UPDATE must change to enqueue: `watch` (default: the snapshot), and always the
     vector and text columns, whose change changes the point */
  p2q_strlist_t watch = {NULL, 0};
  if (r->watch.n) {
    p2q_strlist_t t = {NULL, 0};
    for (int i = 0; !rc && i < r->watch.n; i++) rc = strlist_add(&watch, r->watch.items[i], strlen(r->watch.items[i]));
    if (!rc && r->vector_column) rc = strlist_add(&watch, r->vector_column, strlen(r->vector_column));
    if (!rc) rc = p2q_template_columns(r->text, &t);
    for (int i = 0; !rc && i < t.n; i++) rc = strlist_add(&watch, t.items[i], strlen(t.items[i]));
    p2q_strlist_free(&t);
    if (rc) { p2q_strlist_free(&watch); goto fail; }
  }
  capture_body(&body, r, schema, max_attempts, &snap, r->watch.n ? &watch : &snap);
  p2q_strlist_free(&watch);
  if ((rc = append_function(out, schema, "p2q_capture_", r->name, &body))) goto fail;
  p2q_buf_puts(out, "DROP TRIGGER IF EXISTS ");
  trigger_name(out, r->name, "");
  p2q_buf_printf(out, " ON %s;\nCREATE TRIGGER ", qtable.data);
  trigger_name(out, r->name, "");
  p2q_buf_printf(out, " AFTER INSERT OR UPDATE OR DELETE ON %s\n  FOR EACH ROW EXECUTE FUNCTION ",
                 qtable.data);
  function_name(out, schema, "p2q_capture_", r->name);
  p2q_buf_puts(out, "();\nDROP TRIGGER IF EXISTS ");
  trigger_name(out, r->name, "_truncate");
  p2q_buf_printf(out, " ON %s;\n", qtable.data);
  if (r->on_truncate == P2Q_TRUNCATE_DELETE) {
    p2q_buf_reset(&body);
    p2q_buf_puts(&body, "\nBEGIN\n  ");
    if ((rc = p2q_capture_backfill_sql(r, schema, max_attempts, "delete", NULL, &body))) goto fail;
    p2q_buf_puts(&body, ";\n  RETURN NULL;\nEND\n");
    if ((rc = append_function(out, schema, "p2q_truncate_", r->name, &body))) goto fail;
    p2q_buf_puts(out, "CREATE TRIGGER ");
    trigger_name(out, r->name, "_truncate");
    p2q_buf_printf(out, " BEFORE TRUNCATE ON %s\n  FOR EACH STATEMENT EXECUTE FUNCTION ", qtable.data);
    function_name(out, schema, "p2q_truncate_", r->name);
    p2q_buf_puts(out, "();\n");
  }
  rc = p2q_buf_error(out);
fail:
  p2q_strlist_free(&snap);
  p2q_buf_free(&body);
  p2q_buf_free(&qtable);
  return rc;
}

int p2q_capture_drop_sql(const char *rule_name, const char *table, const char *schema, p2q_buf_t *out) {
  p2q_buf_t qtable = P2Q_BUF_INIT;
  int rc = p2q_sql_qualified(&qtable, table);
  if (rc) goto fail;
  p2q_buf_puts(out, "DROP TRIGGER IF EXISTS ");
  trigger_name(out, rule_name, "");
  p2q_buf_printf(out, " ON %s;\nDROP TRIGGER IF EXISTS ", qtable.data);
  trigger_name(out, rule_name, "_truncate");
  p2q_buf_printf(out, " ON %s;\nDROP FUNCTION IF EXISTS ", qtable.data);
  function_name(out, schema, "p2q_capture_", rule_name);
  p2q_buf_puts(out, "();\nDROP FUNCTION IF EXISTS ");
  function_name(out, schema, "p2q_truncate_", rule_name);
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
  if (!rc) rc = p2q_capture_enqueue_sql(r, schema, max_attempts, op, qtable.data, out);
  p2q_buf_free(&qtable);
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

int p2q_capture_snapshot_expr(const p2q_rule_config_t *r, const char *ref, p2q_buf_t *out) {
  p2q_strlist_t snap;
  int rc = snapshot_columns(r, &snap);
  if (rc) return rc;
  snapshot_expr(out, ref, &snap);
  p2q_strlist_free(&snap);
  return p2q_buf_error(out);
}

int p2q_capture_key_expr(const p2q_rule_config_t *r, const char *ref, p2q_buf_t *out) {
  json_object_expr(out, ref, &r->key);
  return p2q_buf_error(out);
}

int p2q_capture_enqueue_sql(const p2q_rule_config_t *r, const char *schema, int max_attempts,
                            const char *op, const char *source, p2q_buf_t *out) {
  p2q_strlist_t snap;
  int rc = snapshot_columns(r, &snap);
  if (rc) return rc;
  p2q_buf_puts(out, "INSERT INTO ");
  insert_event(out, r, schema, max_attempts, "r", op, &snap, 0);
  p2q_buf_printf(out, " FROM %s AS r", source);
  p2q_strlist_free(&snap);
  return p2q_buf_error(out);
}

int p2q_capture_check_sql(const p2q_rule_config_t *r, p2q_buf_t *out) {
  p2q_strlist_t snap;
  int rc = snapshot_columns(r, &snap);
  if (rc) return rc;
  p2q_buf_puts(out, "SELECT ");
  json_object_expr(out, "r", &r->key);
  p2q_buf_puts(out, ", ");
  snapshot_expr(out, "r", &snap);
  p2q_buf_printf(out, ", (%s)::boolean", r->filter ? r->filter : "true");
  if (r->routing_key) p2q_buf_printf(out, ", (%s)::text", r->routing_key);
  p2q_buf_puts(out, " FROM ");
  if ((rc = p2q_sql_qualified(out, r->table))) goto fail;
  p2q_buf_puts(out, " AS r LIMIT 0");
  rc = p2q_buf_error(out);
fail:
  p2q_strlist_free(&snap);
  return rc;
}

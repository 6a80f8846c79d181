/*
 * capture_body.c — the SQL text of change capture: the body of a rule's row trigger function
 * (fast path by reference, slow path by name, born-dead events) and the statement-level
 * INSERT … SELECT of backfill, reconcile --fix and TRUNCATE. capture.c wraps them into the
 * install/drop scripts; capture.h states the semantics.
 *
 * Pure string building: no I/O, no globals; any thread. Invariants: every identifier coming from
 * the config goes through p2q_sql_ident(), every value through p2q_sql_literal(); the snapshot text
 * is byte-identical on every path (json_build_object's format, config order; jsonb's above
 * PAIRS_PER_CALL columns), so `_hash` never depends on the path that built it.
 */
#include "capture_body.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PAIRS_PER_CALL P2Q_CAPTURE_PAIRS_PER_CALL

/* name, or pg_catalog.name for a function without a pinned search_path (q: the unpinned statement
   functions, capture_stmt.c; every function, operator and type they name is in pg_catalog, so no
   writer's search_path, nor pg_temp, resolves one of them to anything else) */
#define PGC(q, name) ((q) ? "pg_catalog." name : name)

/* Columns of the snapshot: `columns` plus the vector and text columns (empty: the whole row). */
int p2q_capture_snapshot_columns(const p2q_rule_config_t *r, p2q_strlist_t *out) {
  out->items = NULL;
  out->n = 0;
  if (r->columns.n == 0) return 0;
  int rc = 0;
  for (int i = 0; i < r->columns.n && !rc; i++)
    rc = p2q_strlist_add(out, r->columns.items[i], strlen(r->columns.items[i]));
  if (!rc && r->vector_column) rc = p2q_strlist_add(out, r->vector_column, strlen(r->vector_column));
  if (!rc && r->text) {
    p2q_strlist_t t;
    rc = p2q_template_columns(r->text, &t);
    for (int i = 0; !rc && i < t.n; i++) rc = p2q_strlist_add(out, t.items[i], strlen(t.items[i]));
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
static void object_expr_sub(p2q_buf_t *b, const char *ref, const p2q_strlist_t *cols, int binary,
                            const char *sub_col, const char *sub_expr, int q) {
  const char *fn = binary ? PGC(q, "jsonb_build_object(") : PGC(q, "json_build_object(");
  int parts = cols->n > PAIRS_PER_CALL;
  if (cols->n == 0) { p2q_buf_puts(b, binary ? (q ? "'{}'::pg_catalog.jsonb" : "'{}'::jsonb") : (q ? "'{}'::pg_catalog.json" : "'{}'::json")); return; }
  if (q && parts) { p2q_buf_puts(b, "pg_catalog.NULLIF(1, 1)"); return; } /* never: p2q_capture_unpinned_guard */
  if (parts && !binary) p2q_buf_putc(b, '(');
  for (int i = 0; i < cols->n; i++) {
    if (i % PAIRS_PER_CALL == 0) {
      if (i) p2q_buf_puts(b, parts && !binary ? ")::jsonb || " : ") || ");
      p2q_buf_puts(b, fn);
    } else {
      p2q_buf_puts(b, ", ");
    }
    p2q_sql_literal(b, cols->items[i]);
    if (sub_col && !strcmp(cols->items[i], sub_col)) {
      p2q_buf_printf(b, ", %s", sub_expr);
      continue;
    }
    p2q_buf_printf(b, ", %s.", ref);
    p2q_sql_ident(b, cols->items[i]);
  }
  p2q_buf_puts(b, parts && !binary ? ")::jsonb)::json" : ")");
}

static void object_expr(p2q_buf_t *b, const char *ref, const p2q_strlist_t *cols, int binary, int q) {
  object_expr_sub(b, ref, cols, binary, NULL, NULL, q);
}

void p2q_capture_json_object(p2q_buf_t *b, const char *ref, const p2q_strlist_t *cols) {
  object_expr(b, ref, cols, 1, 0);
}

/* The fast snapshot: the columns by reference (fails with undefined_column once one is gone). */
static void snapshot_expr(p2q_buf_t *b, const char *ref, const p2q_strlist_t *snap, int q) {
  if (snap->n == 0) p2q_buf_printf(b, "%s(%s)", PGC(q, "to_json"), ref);
  else object_expr(b, ref, snap, 0, q);
}

/* ARRAY['a', 'b']::text[] */
static void text_array(p2q_buf_t *b, const p2q_strlist_t *cols) {
  p2q_buf_puts(b, "ARRAY[");
  for (int i = 0; i < cols->n; i++) {
    if (i) p2q_buf_puts(b, ", ");
    p2q_sql_literal(b, cols->items[i]);
  }
  p2q_buf_puts(b, "]::text[]");
}

/*
 * Aggregates over `json_each(<the row as json>) AS e` that read the rule's columns by name, so a
 * dropped or renamed column is simply absent instead of an error. The snapshot text is
 * byte-identical to snapshot_expr() when every column is there (json_build_object's format,
 * config order; jsonb's above PAIRS_PER_CALL columns), so `_hash` does not depend on the path.
 */
static void named_key_agg(p2q_buf_t *b, const p2q_rule_config_t *r) {
  p2q_buf_puts(b, "jsonb_object_agg(e.key, e.value) FILTER (WHERE e.key = ANY (");
  text_array(b, &r->key);
  p2q_buf_puts(b, "))");
}

void p2q_capture_named_snapshot(p2q_buf_t *b, const p2q_strlist_t *snap) {
  if (snap->n > PAIRS_PER_CALL) {
    p2q_buf_puts(b, "COALESCE(jsonb_object_agg(e.key, e.value) FILTER (WHERE e.key = ANY (");
    text_array(b, snap);
    p2q_buf_puts(b, "))::json, '{}'::json)");
    return;
  }
  p2q_buf_puts(b, "COALESCE(('{' || string_agg(to_json(e.key)::text || ' : ' || e.value::text, ', '"
                  " ORDER BY array_position(");
  text_array(b, snap);
  p2q_buf_puts(b, ", e.key)) FILTER (WHERE e.key = ANY (");
  text_array(b, snap);
  p2q_buf_puts(b, ")) || '}')::json, '{}'::json)");
}

/* text of the watched values (attribute order, the same on both sides of an UPDATE) */
static void named_watch_agg(p2q_buf_t *b, const p2q_strlist_t *watch) {
  if (watch->n == 0) { p2q_buf_puts(b, "NULL::text"); return; }
  p2q_buf_puts(b, "string_agg(to_json(e.key)::text || ':' || e.value::text, ',') FILTER (WHERE e.key = ANY (");
  text_array(b, watch);
  p2q_buf_puts(b, "))");
}

/* NULL, or why events of this row cannot be applied: a key column NULL or gone (never guess a
   point id), or for an upsert its vector/text column gone (never treat the row as vectorless). */
static void named_bad_agg(p2q_buf_t *b, const p2q_rule_config_t *r, const p2q_strlist_t *need) {
  p2q_buf_printf(b, "CASE WHEN count(*) FILTER (WHERE e.key = ANY (");
  text_array(b, &r->key);
  p2q_buf_printf(b, ") AND json_typeof(e.value) <> 'null') < %d THEN ", r->key.n);
  p2q_buf_t m = P2Q_BUF_INIT;
  p2q_buf_printf(&m, "rule %s: a key column (", r->name);
  for (int i = 0; i < r->key.n; i++) p2q_buf_printf(&m, "%s%s", i ? ", " : "", r->key.items[i]);
  p2q_buf_printf(&m, ") is NULL or no longer in %s", r->table);
  p2q_sql_literal(b, p2q_buf_str(&m));
  if (need && need->n) {
    p2q_buf_puts(b, " WHEN count(*) FILTER (WHERE e.key = ANY (");
    text_array(b, need);
    p2q_buf_printf(b, ")) < %d THEN ", need->n);
    p2q_buf_reset(&m);
    p2q_buf_printf(&m, "rule %s: its %s column (", r->name, r->vector_column ? "vector" : "text");
    for (int i = 0; i < need->n; i++) p2q_buf_printf(&m, "%s%s", i ? ", " : "", need->items[i]);
    p2q_buf_printf(&m, ") is no longer in %s (dropped or renamed)", r->table);
    p2q_sql_literal(b, p2q_buf_str(&m));
  }
  p2q_buf_free(&m);
  p2q_buf_puts(b, " END");
}

/* The columns an upsert cannot do without besides the key: the vector column or the text's. */
int p2q_capture_needed_columns(const p2q_rule_config_t *r, p2q_strlist_t *out) {
  out->items = NULL;
  out->n = 0;
  if (r->vector_column) return p2q_strlist_add(out, r->vector_column, strlen(r->vector_column));
  return p2q_template_columns(r->text, out);
}

/* The change test of the fast path: any watched column's text differs (type-agnostic: json has
   no equality operator; text is also exactly what the snapshot carries). Empty: the whole row.
   The binary image is compared first (record *=, any type): an identical image prints the same
   text, so an UPDATE that leaves the watched columns alone costs a memcmp instead of printing
   them twice (a 384-float vector: ~50 us per row, bench/writer_overhead_bench.py). */
static void changed_expr(p2q_buf_t *b, const p2q_strlist_t *cols, const char *skip) {
  if (cols->n == 0) {
    p2q_buf_puts(b, "(NOT (NEW *= OLD) AND NEW::text IS DISTINCT FROM OLD::text)");
    return;
  }
  for (int i = 0, n = 0; i < cols->n; i++) {
    if (skip && !strcmp(cols->items[i], skip)) continue;
    if (n++) p2q_buf_puts(b, " OR ");
    p2q_buf_puts(b, "(NOT (ROW(NEW.");
    p2q_sql_ident(b, cols->items[i]);
    p2q_buf_puts(b, ")::record *= ROW(OLD.");
    p2q_sql_ident(b, cols->items[i]);
    p2q_buf_puts(b, ")::record) AND NEW.");
    p2q_sql_ident(b, cols->items[i]);
    p2q_buf_puts(b, "::text IS DISTINCT FROM OLD.");
    p2q_sql_ident(b, cols->items[i]);
    p2q_buf_puts(b, "::text)");
  }
}

/* ref."k1" IS NULL OR ref."k2" IS NULL */
static void key_null_expr(p2q_buf_t *b, const p2q_rule_config_t *r, const char *ref) {
  for (int i = 0; i < r->key.n; i++) {
    p2q_buf_printf(b, "%s%s.", i ? " OR " : "", ref);
    p2q_sql_ident(b, r->key.items[i]);
    p2q_buf_puts(b, " IS NULL");
  }
}

/* An operator-written expression evaluated over the trigger row `ref`: NEW or OLD, or a FROM item
   that yields NEW as one row of the table's type (the statement capture's NEW, read from a
   transition table, has no registered row type to expand: p2q_capture_insert_row). */
static void row_expr(p2q_buf_t *b, const char *ref, const char *expr, const char *cast) {
  if (!strcmp(ref, "NEW") || !strcmp(ref, "OLD"))
    p2q_buf_printf(b, "(SELECT (%s)%s FROM (SELECT %s.*) AS r)", expr, cast, ref);
  else
    p2q_buf_printf(b, "(SELECT (%s)%s FROM %s AS r)", expr, cast, ref);
}

static void filter_of(p2q_buf_t *b, const p2q_rule_config_t *r, const char *ref) {
  if (!r->filter) { p2q_buf_puts(b, "true"); return; }
  p2q_buf_puts(b, "COALESCE(");
  row_expr(b, ref, r->filter, "::boolean");
  p2q_buf_puts(b, ", false)");
}

/* The outbox's columns an event sets; vec (migration 008) only from the row trigger. */
static void outbox_columns(p2q_buf_t *b, const char *schema, int vec) {
  p2q_sql_ident(b, schema);
  p2q_buf_printf(b, ".sync_outbox (event_type, routing_key, rule, source_table, row_key, op, payload, %s"
                    "max_attempts, last_error) ", vec ? "vec, " : "");
}

/* Does the fast path send the vector unprinted (migration 008, vector_bin.h)? When the rule has a
   vector column, its snapshot is one json_build_object naming it (1..PAIRS_PER_CALL columns) and
   the column is a real[] (checked per row, or per statement by capture_stmt.c's type_guard): the
   trigger copies the value into vb and the snapshot gets null in its place, which the daemon
   fills with the text to_json() would have printed.
   Saves the writer the printing (~22 us for 384 floats) and the TOAST insert of a ~3.8 KB event. */
int p2q_capture_binary_vector(const p2q_rule_config_t *r, const p2q_strlist_t *snap) {
  if (!r->vector_column || snap->n == 0 || snap->n > PAIRS_PER_CALL) return 0;
  for (int i = 0; i < snap->n; i++)
    if (!strcmp(snap->items[i], r->vector_column)) return 1;
  return 0;
}

/* `sn := <snapshot>;` at indent in; with a binary vector, the real[] case first:
   IF pg_typeof(NEW."v") = 'real[]'::regtype THEN vb := NEW."v"; sn := <… 'v', NULL::json …>;
   ELSE sn := <snapshot>; END IF; (plpgsql plans a statement when it first runs it, so the
   branch of the other type costs nothing). vec_expr: the vector's json in <snapshot>, or NULL. */
static void snapshot_assign(p2q_buf_t *b, const p2q_rule_config_t *r, const p2q_strlist_t *snap,
                            const char *in, const char *vec_expr, int q) {
  int bin = p2q_capture_binary_vector(r, snap);
  if (bin && q) { /* the unpinned functions' guard found the column a real[] (capture_stmt.c) */
    p2q_buf_printf(b, "%svb := NEW.", in);
    p2q_sql_ident(b, r->vector_column);
    p2q_buf_printf(b, ";\n%ssn := ", in);
    object_expr_sub(b, "NEW", snap, 0, r->vector_column, "NULL::pg_catalog.json", q);
    p2q_buf_puts(b, ";\n");
    return;
  }
  if (bin) {
    p2q_buf_printf(b, "%sIF %s(NEW.", in, PGC(q, "pg_typeof"));
    p2q_sql_ident(b, r->vector_column);
    p2q_buf_printf(b, ") %s THEN\n%s  vb := NEW.",
                   q ? "OPERATOR(pg_catalog.=) 'pg_catalog.float4[]'::pg_catalog.regtype" : "= 'real[]'::regtype", in);
    p2q_sql_ident(b, r->vector_column);
    p2q_buf_printf(b, ";\n%s  sn := ", in);
    object_expr_sub(b, "NEW", snap, 0, r->vector_column, (q ? "NULL::pg_catalog.json" : "NULL::json"), q);
    p2q_buf_printf(b, ";\n%sELSE\n%s  ", in, in);
  } else {
    p2q_buf_puts(b, in);
  }
  p2q_buf_puts(b, "sn := ");
  if (vec_expr) object_expr_sub(b, "NEW", snap, 0, r->vector_column, vec_expr, q);
  else snapshot_expr(b, "NEW", snap, q);
  p2q_buf_puts(b, ";\n");
  if (bin) p2q_buf_printf(b, "%sEND IF;\n", in);
}

/* The rule's event type (config_check.c fills it from the name when unset). */
static const char *event_type_of(const p2q_rule_config_t *r) { return r->event_type ? r->event_type : r->name; }

/* pg_catalog.pg_notify(P2Q_NOTIFY_CHANNEL, '<event type>') (capture.h): returns void, never NULL. */
void p2q_capture_notify_call(p2q_buf_t *b, const p2q_rule_config_t *r) {
  p2q_buf_puts(b, "pg_catalog.pg_notify('" P2Q_NOTIFY_CHANNEL "', ");
  p2q_sql_literal(b, event_type_of(r));
  p2q_buf_puts(b, ")");
}

/* The event type of a statement's events, notifying as it is read (CASE WHEN <notify_call> IS
   NULL THEN NULL ELSE '<type>' END): evaluated for each event row the INSERT forms, in its own
   (sub)transaction, so the wake-up comes and goes with the events (a statement that writes none
   wakes no one); one more function call per row of a plan the statement has anyway. */
static void event_type_expr(p2q_buf_t *b, const p2q_rule_config_t *r) {
  p2q_buf_puts(b, "CASE WHEN ");
  p2q_capture_notify_call(b, r);
  p2q_buf_puts(b, " IS NULL THEN NULL ELSE ");
  p2q_sql_literal(b, event_type_of(r));
  p2q_buf_puts(b, " END");
}

/* One event from trigger variables, its wake-up first: `probe := <notify_call> IS NULL;` right
   before the INSERT, outside the fast path's exception block (inside, each subtransaction would
   start a pending list of its own, merged at its end), in the (sub)transaction of the INSERT, so
   the two stand or fall together. A plpgsql simple expression: its ExprState is built once per
   transaction, while event_type_expr() in the INSERT is initialised at every executor start, i.e.
   for every event (2,944 instructions per row; the outbox's WHEN trigger it replaces: 21,790;
   this: not measurable, bench/writer_components_bench.py --instructions).
   `bad` not NULL: the event is born dead (max_attempts 0: never claimed; the sweep's
   sync_outbox_recover moves it to sync_outbox_dead with `bad` as the error). */
static void trigger_event(p2q_buf_t *b, const p2q_rule_config_t *r, const char *schema,
                          int max_attempts, const char *key, const char *routing, const char *op,
                          const char *snap, const char *bad, int vec, int q) {
  p2q_buf_puts(b, "probe := ");
  p2q_capture_notify_call(b, r);
  p2q_buf_puts(b, " IS NULL; INSERT INTO ");
  outbox_columns(b, schema, vec);
  p2q_buf_puts(b, "VALUES (");
  p2q_sql_literal(b, event_type_of(r));
  p2q_buf_printf(b, ", %s, ", r->routing_key ? routing : "NULL");
  p2q_sql_literal(b, r->name);
  p2q_buf_puts(b, ", ");
  p2q_sql_literal(b, r->table);
  p2q_buf_printf(b, ", COALESCE(%s, %s), '%s', %s, %sCASE WHEN %s IS NULL THEN %d ELSE 0 END, %s)",
                 key, q ? "'{}'::pg_catalog.jsonb" : "'{}'::jsonb", op, snap, vec ? "vb, " : "", bad, max_attempts, bad);
}

/* IF TG_OP <> '<not_op>' THEN <ok> := filter(ref); <rk> := routing_key(ref); END IF; */
static void filter_routing_of(p2q_buf_t *b, const p2q_rule_config_t *r, const char *indent, const char *not_op,
                              const char *ref, const char *ok, const char *rk, int q) {
  p2q_buf_printf(b, "%sIF TG_OP %s '%s' THEN\n%s  %s := ", indent, q ? "OPERATOR(pg_catalog.<>)" : "<>", not_op,
                 indent, ok);
  filter_of(b, r, ref);
  p2q_buf_puts(b, ";\n");
  if (r->routing_key) {
    p2q_buf_printf(b, "%s  %s := ", indent, rk);
    row_expr(b, ref, r->routing_key, "::text");
    p2q_buf_puts(b, ";\n");
  }
  p2q_buf_printf(b, "%sEND IF;\n", indent);
}

/* The filter and routing key of NEW (into new_ok, rn) and OLD (old_ok, ro), read from nsrc and
   osrc (see row_expr). */
static void filter_routing(p2q_buf_t *b, const p2q_rule_config_t *r, const char *indent, const char *nsrc,
                           const char *osrc) {
  filter_routing_of(b, r, indent, "DELETE", nsrc, "new_ok", "rn", 0);
  filter_routing_of(b, r, indent, "INSERT", osrc, "old_ok", "ro", 0);
}

/* The slow path's reads by name, in a block of their own: a row whose json cannot be built at all
   (a value whose JSON text passes 1 GB, a user type whose cast to json raises) must not fail the
   writer either; its events are born dead with the reason (the key read by reference if it can be). */
static void slow_reads(p2q_buf_t *b, const p2q_rule_config_t *r, const p2q_strlist_t *snap,
                       const p2q_strlist_t *watch, const p2q_strlist_t *need) {
  p2q_buf_t m = P2Q_BUF_INIT;
  p2q_buf_puts(b, "    BEGIN\n    IF TG_OP <> 'DELETE' THEN\n      SELECT ");
  named_key_agg(b, r);
  p2q_buf_puts(b, ", ");
  if (snap->n) p2q_capture_named_snapshot(b, snap);
  else p2q_buf_puts(b, "NULL::json");
  p2q_buf_puts(b, ", ");
  named_watch_agg(b, watch);
  p2q_buf_puts(b, ", ");
  named_bad_agg(b, r, need);
  p2q_buf_puts(b, "\n        INTO kn, sn, wn, bad_new FROM json_each(row_to_json(NEW)) AS e;\n");
  if (snap->n == 0) p2q_buf_puts(b, "      sn := to_json(NEW);\n");
  p2q_buf_puts(b, "    END IF;\n    IF TG_OP <> 'INSERT' THEN\n      SELECT ");
  named_key_agg(b, r);
  p2q_buf_puts(b, ", ");
  named_watch_agg(b, watch);
  p2q_buf_puts(b, ", ");
  named_bad_agg(b, r, NULL);
  p2q_buf_puts(b, "\n        INTO ko, wo, bad_old FROM json_each(row_to_json(OLD)) AS e;\n    END IF;\n");
  p2q_buf_puts(b, "    IF TG_OP = 'UPDATE' THEN changed := ");
  if (watch->n) p2q_buf_puts(b, "wn IS DISTINCT FROM wo");
  else p2q_buf_puts(b, "NEW::text IS DISTINCT FROM OLD::text");
  p2q_buf_printf(&m, "rule %s: the row cannot be captured: ", r->name);
  p2q_buf_puts(b, "; END IF;\n    EXCEPTION WHEN OTHERS THEN\n      bad_f := COALESCE(bad_f, ");
  p2q_sql_literal(b, p2q_buf_str(&m));
  p2q_buf_free(&m);
  p2q_buf_puts(b, " || SQLERRM);\n      sn := NULL;\n      changed := true;\n"
                  "      BEGIN\n        IF TG_OP <> 'DELETE' AND kn IS NULL THEN kn := ");
  p2q_capture_json_object(b, "NEW", &r->key);
  p2q_buf_puts(b, "; END IF;\n        IF TG_OP <> 'INSERT' AND ko IS NULL THEN ko := ");
  p2q_capture_json_object(b, "OLD", &r->key);
  p2q_buf_puts(b, "; END IF;\n      EXCEPTION WHEN OTHERS THEN\n        NULL;\n      END;\n    END;\n"
                  /* a failing filter or capture makes every event of the row dead */
                  "    bad_new := COALESCE(bad_f, bad_new);\n    bad_old := COALESCE(bad_f, bad_old);\n");
}

/* 'rule R: a key column (k1, k2) is NULL or no longer in T' as a literal */
static void key_message(p2q_buf_t *b, const p2q_rule_config_t *r) {
  p2q_buf_t m = P2Q_BUF_INIT;
  p2q_buf_printf(&m, "rule %s: a key column (", r->name);
  for (int i = 0; i < r->key.n; i++) p2q_buf_printf(&m, "%s%s", i ? ", " : "", r->key.items[i]);
  p2q_buf_printf(&m, ") is NULL or no longer in %s", r->table);
  p2q_sql_literal(b, p2q_buf_str(&m));
  p2q_buf_free(&m);
}

/* `var := <key jsonb of ref>;` and `IF <a key column of ref> IS NULL THEN bad := <message>; END IF;`
   (two lines at indent in) */
static void key_capture(p2q_buf_t *b, const p2q_rule_config_t *r, const char *in, const char *var,
                        const char *ref, const char *bad, int q) {
  p2q_buf_printf(b, "%s%s := ", in, var);
  object_expr(b, ref, &r->key, 1, q);
  p2q_buf_printf(b, ";\n%sIF ", in);
  key_null_expr(b, r, ref);
  p2q_buf_printf(b, " THEN %s := ", bad);
  key_message(b, r);
  p2q_buf_puts(b, "; END IF;\n");
}

/* ROW(NEW."a", NEW."k")::record *= ROW(OLD."a", OLD."k")::record over the watched and key columns
   (whole row: NEW *= OLD): true when an UPDATE left each of them binary-identical, hence with the
   same text, key and change test: no event, whatever the slow path would say. qualified: the
   type and the operator named in pg_catalog (the unpinned gate, p2q_capture_gate_body). */
static int same_image_expr(p2q_buf_t *b, const p2q_rule_config_t *r, const p2q_strlist_t *watch, int qualified) {
  const char *rec = qualified ? ")::pg_catalog.record" : ")::record";
  const char *op = qualified ? " OPERATOR(pg_catalog.*=) " : " *= ";
  if (watch->n == 0) { p2q_buf_printf(b, "NEW%sOLD", op); return 0; }
  p2q_strlist_t cols = {NULL, 0};
  int rc = 0;
  for (int i = 0; !rc && i < watch->n; i++) rc = p2q_strlist_add(&cols, watch->items[i], strlen(watch->items[i]));
  for (int i = 0; !rc && i < r->key.n; i++) rc = p2q_strlist_add(&cols, r->key.items[i], strlen(r->key.items[i]));
  for (int side = 0; !rc && side < 2; side++) {
    p2q_buf_printf(b, "%sROW(", side ? op : "");
    for (int i = 0; i < cols.n; i++) {
      p2q_buf_puts(b, i ? (side ? ", OLD." : ", NEW.") : (side ? "OLD." : "NEW."));
      p2q_sql_ident(b, cols.items[i]);
    }
    p2q_buf_puts(b, rec);
  }
  p2q_strlist_free(&cols);
  return rc;
}

/* The fast path of an INSERT: only NEW, the fewest plpgsql expressions (each one is initialised
   again in every transaction: a one-row INSERT statement pays for all of them). */
static void insert_fast(p2q_buf_t *b, const p2q_rule_config_t *r, const p2q_strlist_t *snap,
                        const p2q_strlist_t *need, const char *nsrc, int q) {
  const char *in = r->filter ? "        " : "      ";
  if (r->filter) {
    p2q_buf_puts(b, "      new_ok := ");
    filter_of(b, r, nsrc);
    p2q_buf_puts(b, ";\n");
  }
  if (r->routing_key) { /* whatever the filter says, as on the other paths: a failing routing
                           key sends the row to the slow path */
    p2q_buf_puts(b, "      rn := ");
    row_expr(b, nsrc, r->routing_key, "::text");
    p2q_buf_puts(b, ";\n");
  }
  if (r->filter) p2q_buf_puts(b, "      IF new_ok THEN\n");
  key_capture(b, r, in, "kn", "NEW", "bad_new", q);
  if (snap->n == 0 && need->n) { /* the whole-row snapshot names no column: probe them */
    p2q_buf_printf(b, "%sprobe := ", in);
    key_null_expr(b, &(p2q_rule_config_t){.key = *need}, "NEW");
    p2q_buf_puts(b, ";\n");
  }
  snapshot_assign(b, r, snap, in, NULL, q);
  if (r->filter) p2q_buf_puts(b, "      END IF;\n");
}

/* The vector column's change test prints it as json and the snapshot reuses NEW's text: one
   printing of a 384-float vector less per UPDATE that changes it (json_build_object appends a
   json value as it is, and to_json prints a value as json_build_object does, so the snapshot
   text is the same; the test compares what the snapshot carries, as the slow path does). Only
   when the vector is watched and the snapshot is built by one json_build_object. */
static int vector_reused(const p2q_rule_config_t *r, const p2q_strlist_t *snap, const p2q_strlist_t *watch) {
  if (!r->vector_column || snap->n == 0 || snap->n > PAIRS_PER_CALL) return 0;
  int in_watch = 0, in_snap = 0;
  for (int i = 0; i < watch->n; i++) in_watch |= !strcmp(watch->items[i], r->vector_column);
  for (int i = 0; i < snap->n; i++) in_snap |= !strcmp(snap->items[i], r->vector_column);
  return in_watch && in_snap;
}

/* The fast path of an UPDATE or DELETE (columns by reference, both sides); gated: the gate has
   already let through only UPDATEs whose images differ (or whose test raised: then so would the
   same test here, and the next column read raises as well). */
static int update_delete_fast(p2q_buf_t *b, const p2q_rule_config_t *r, const p2q_strlist_t *snap,
                              const p2q_strlist_t *watch, const p2q_strlist_t *need, int gated) {
  /* an UPDATE of unwatched columns leaves at once (a trigger WHEN clause would be cheaper still,
     but it makes every column it names undroppable: DDL-proof means no column dependency) */
  int rc = 0;
  if (!gated) {
    p2q_buf_puts(b, "      IF TG_OP = 'UPDATE' AND ");
    rc = same_image_expr(b, r, watch, 0);
    if (r->filter) { /* the filter may read unwatched columns: leave only when it says the same */
      p2q_buf_puts(b, " AND ");
      filter_of(b, r, "NEW");
      p2q_buf_puts(b, " = ");
      filter_of(b, r, "OLD");
    }
    p2q_buf_puts(b, " THEN\n        RETURN NULL;\n      END IF;\n");
  }
  filter_routing(b, r, "      ", "NEW", "OLD");
  p2q_buf_puts(b, "      IF TG_OP <> 'DELETE' THEN\n");
  key_capture(b, r, "        ", "kn", "NEW", "bad_new", 0);
  if (snap->n == 0 && need->n) {
    p2q_buf_puts(b, "        probe := ");
    key_null_expr(b, &(p2q_rule_config_t){.key = *need}, "NEW");
    p2q_buf_puts(b, ";\n");
  }
  p2q_buf_puts(b, "      END IF;\n      IF TG_OP <> 'INSERT' THEN\n");
  key_capture(b, r, "        ", "ko", "OLD", "bad_old", 0);
  p2q_buf_puts(b, "      END IF;\n");
  const char *v = vector_reused(r, snap, watch) ? r->vector_column : NULL;
  if (!v || watch->n > 1) {
    p2q_buf_puts(b, "      IF TG_OP = 'UPDATE' THEN changed := ");
    changed_expr(b, watch, v);
    p2q_buf_puts(b, "; END IF;\n");
  }
  if (v) { /* the vector last, as json: its text (NEW's) is the snapshot's, printed once */
    p2q_buf_puts(b, "      IF TG_OP = 'UPDATE' AND NOT changed AND NOT (ROW(NEW.");
    p2q_sql_ident(b, v);
    p2q_buf_puts(b, ")::record *= ROW(OLD.");
    p2q_sql_ident(b, v);
    /* a real[] (sent unprinted, see p2q_capture_binary_vector) is changed when its image is: two images
       print the same text only when just lower bounds or NaN payloads differ, and then the
       event is one more of the same snapshot; this spares printing both sides (~40 us) */
    p2q_buf_puts(b, ")::record) THEN\n        IF pg_typeof(NEW.");
    p2q_sql_ident(b, v);
    p2q_buf_puts(b, ") = 'real[]'::regtype THEN\n          changed := true;\n        ELSE\n          jv := to_json(NEW.");
    p2q_sql_ident(b, v);
    p2q_buf_puts(b, ");\n          changed := jv::text IS DISTINCT FROM to_json(OLD.");
    p2q_sql_ident(b, v);
    p2q_buf_puts(b, ")::text;\n        END IF;\n      END IF;\n");
  }
  p2q_buf_puts(b, "      IF new_ok AND (NOT old_ok OR changed OR kn IS DISTINCT FROM ko) THEN\n");
  p2q_buf_t e = P2Q_BUF_INIT;
  if (v) {
    p2q_buf_puts(&e, "COALESCE(jv, to_json(NEW.");
    p2q_sql_ident(&e, v);
    p2q_buf_puts(&e, "))");
  }
  snapshot_assign(b, r, snap, "        ", v ? p2q_buf_str(&e) : NULL, 0);
  p2q_buf_free(&e);
  p2q_buf_puts(b, "      END IF;\n");
  return rc;
}

/*
 * The body of the row trigger function (between the dollar quotes). Nothing in it may fail the
 * writer's statement:
 *   fast path  the rule's columns by reference, in one exception block (a read-only
 *              subtransaction: no xid, a few µs); an INSERT takes a path of its own (NEW only),
 *              an UPDATE that left the watched and key columns alone leaves at once;
 *   slow path  taken only when the fast one raised (a column dropped or renamed since `apply`,
 *              a filter/routing_key that fails): the columns are read by name from the row's
 *              json, so a missing payload column is simply absent; the filter is retried in its
 *              own block. Events that cannot be applied (key NULL or gone, vector/text column
 *              gone on an upsert, filter failing) are written born dead with the reason.
 */
/* The row function's variables (a plpgsql DECLARE section); bin: with vb, the unprinted vector. */
void p2q_capture_declare(p2q_buf_t *b, int bin, int q) {
  if (q) {
    p2q_buf_puts(b, "DECLARE\n  old_ok pg_catalog.bool := false;\n  slow pg_catalog.bool := false;\n"
                    "  kn pg_catalog.jsonb;\n  ko pg_catalog.jsonb;\n  sn pg_catalog.json;\n  bad_new pg_catalog.text;\n"
                    "  bad_old pg_catalog.text;\n  probe pg_catalog.bool;\n");
    if (bin) p2q_buf_puts(b, "  vb pg_catalog.float4[];\n");
    return;
  }
  p2q_buf_puts(b, "DECLARE\n  new_ok boolean := false;\n  old_ok boolean := false;\n"
                  "  changed boolean := false;\n  slow boolean := false;\n  kn jsonb;\n  ko jsonb;\n"
                  "  sn json;\n  rn text;\n  ro text;\n  bad_new text;\n  bad_old text;\n"
                  "  bad_f text;\n  wn text;\n  wo text;\n  probe boolean;\n  jv json;\n");
  if (bin) p2q_buf_puts(b, "  vb real[];\n");
}

/* The slow path, taken when the fast path raised (`slow`): everything read again by name. */
static void slow_path(p2q_buf_t *b, const p2q_rule_config_t *r, const p2q_strlist_t *snap,
                      const p2q_strlist_t *watch, const p2q_strlist_t *need, int bin, const char *nsrc,
                      const char *osrc) {
  p2q_buf_puts(b, "  IF slow THEN\n    new_ok := TG_OP <> 'DELETE';\n    old_ok := TG_OP <> 'INSERT';\n"
                  "    rn := NULL;\n    ro := NULL;\n    bad_new := NULL;\n    bad_old := NULL;\n");
  if (bin) p2q_buf_puts(b, "    vb := NULL;\n"); /* a fast path that raised after setting it */
  if (r->filter || r->routing_key) {
    p2q_buf_puts(b, "    BEGIN\n");
    filter_routing(b, r, "      ", nsrc, osrc);
    p2q_buf_t m = P2Q_BUF_INIT;
    p2q_buf_printf(&m, "rule %s: filter or routing_key failed: ", r->name);
    p2q_buf_puts(b, "    EXCEPTION WHEN OTHERS THEN\n      bad_f := ");
    p2q_sql_literal(b, p2q_buf_str(&m));
    p2q_buf_free(&m);
    p2q_buf_puts(b, " || SQLERRM;\n      new_ok := TG_OP <> 'DELETE';\n"
                    "      old_ok := TG_OP <> 'INSERT';\n    END;\n");
  }
  slow_reads(b, r, snap, watch, need);
  p2q_buf_puts(b, "  END IF;\n");
}

/* An INSERT's event (without a filter new_ok is true on both paths), at indent "  " + two. */
static void insert_event(p2q_buf_t *b, const p2q_rule_config_t *r, const char *schema, int max_attempts,
                         int bin, int q) {
  p2q_buf_puts(b, "    ");
  if (r->filter) p2q_buf_puts(b, "IF new_ok THEN\n      ");
  trigger_event(b, r, schema, max_attempts, "kn", "rn", "upsert", "sn", "bad_new", bin, q);
  p2q_buf_puts(b, r->filter ? ";\n    END IF;\n" : ";\n");
}

/*
 * The body of the row trigger function (between the dollar quotes). Nothing in it may fail the
 * writer's statement:
 *   fast path  the rule's columns by reference, in one exception block (a read-only
 *              subtransaction: no xid, a few µs); an INSERT takes a path of its own (NEW only),
 *              an UPDATE that left the watched and key columns alone leaves at once;
 *   slow path  taken only when the fast one raised (a column dropped or renamed since `apply`,
 *              a filter/routing_key that fails): the columns are read by name from the row's
 *              json, so a missing payload column is simply absent; the filter is retried in its
 *              own block. Events that cannot be applied (key NULL or gone, vector/text column
 *              gone on an upsert, filter failing) are written born dead with the reason.
 */
int p2q_capture_body(p2q_buf_t *b, const p2q_rule_config_t *r, const char *schema,
                        int max_attempts, const p2q_strlist_t *snap, const p2q_strlist_t *watch,
                        const p2q_strlist_t *need, int gated) {
  int bin = p2q_capture_binary_vector(r, snap);
  p2q_buf_putc(b, '\n');
  p2q_capture_declare(b, bin, 0);
  p2q_buf_puts(b, "BEGIN\n");
  if (!gated) p2q_capture_relid_guard(b, r, schema, "row", max_attempts); /* the pinned function behind a gate is no trigger's */
  p2q_buf_puts(b, "  BEGIN\n    IF TG_OP = 'INSERT' THEN\n");
  insert_fast(b, r, snap, need, "NEW", 0);
  p2q_buf_puts(b, "    ELSE\n");
  int rc = update_delete_fast(b, r, snap, watch, need, gated);
  p2q_buf_puts(b, "    END IF;\n  EXCEPTION WHEN OTHERS THEN\n    slow := true;\n  END;\n");
  slow_path(b, r, snap, watch, need, bin, "NEW", "OLD");

  /* events: an INSERT's first */
  p2q_buf_puts(b, "  IF TG_OP = 'INSERT' THEN\n");
  insert_event(b, r, schema, max_attempts, bin, 0);
  p2q_buf_puts(b, "    RETURN NULL;\n  END IF;\n");
  p2q_buf_puts(b, "  IF TG_OP = 'UPDATE' AND old_ok AND kn IS DISTINCT FROM ko THEN\n    ");
  trigger_event(b, r, schema, max_attempts, "ko", "ro", "delete", "NULL", "bad_old", 0, 0);
  p2q_buf_puts(b, ";\n    old_ok := false;\n  END IF;\n  IF new_ok THEN\n"
                  "    IF TG_OP = 'UPDATE' AND old_ok AND NOT changed THEN RETURN NULL; END IF;\n    ");
  trigger_event(b, r, schema, max_attempts, "kn", "rn", "upsert", "sn", "bad_new", bin, 0);
  p2q_buf_puts(b, ";\n  ELSIF old_ok THEN\n    ");
  trigger_event(b, r, schema, max_attempts, "ko", "ro", "delete", "NULL", "bad_old", 0, 0);
  p2q_buf_puts(b, ";\n  END IF;\n  RETURN NULL;\nEND\n");
  return rc;
}

/* The fast block of a one-row path: "BEGIN <fast> EXCEPTION … slow := true; END;". With a guard
   (capture_stmt.c's statement function without output pins: the row's columns are of types whose
   json no setting changes) the fast statements run only when it holds, and when it does not, or
   the block raised, the row is handed to delegate (the pinned row function, then RETURN) instead
   of the slow path, which would read the row by name under the writer's settings. */
static void guarded_open(p2q_buf_t *b, const char *guard) {
  p2q_buf_puts(b, "  BEGIN\n");
  if (guard) p2q_buf_printf(b, "    IF %s THEN\n", guard);
}

static void guarded_close(p2q_buf_t *b, const char *guard, const char *delegate) {
  if (guard) p2q_buf_puts(b, "    ELSE\n      slow := true;\n    END IF;\n");
  p2q_buf_puts(b, "  EXCEPTION WHEN OTHERS THEN\n    slow := true;\n  END;\n");
  if (guard) p2q_buf_printf(b, "  IF slow THEN\n    %s\n  END IF;\n", delegate);
}

/* The INSERT path of the row body for the row in NEW, as statements of a block declared by
   p2q_capture_declare (the statement-level capture's per-row fallback, capture_stmt.c): the same
   fast path, slow path and event as the row trigger's, without its RETURN; the filter and
   routing_key read the row from nsrc (row_expr). */
void p2q_capture_insert_row(p2q_buf_t *b, const p2q_rule_config_t *r, const char *schema, int max_attempts,
                            const p2q_strlist_t *snap, const p2q_strlist_t *watch, const p2q_strlist_t *need,
                            const char *nsrc, const char *guard, const char *delegate) {
  int bin = p2q_capture_binary_vector(r, snap);
  guarded_open(b, guard);
  insert_fast(b, r, snap, need, nsrc, guard != NULL);
  guarded_close(b, guard, delegate);
  if (!guard) slow_path(b, r, snap, watch, need, bin, nsrc, "OLD");
  insert_event(b, r, schema, max_attempts, bin, guard != NULL);
}

/* The DELETE path of the row body for the row in OLD, likewise (capture_stmt.c): the filter and
   routing key over osrc and the key of OLD in the fast block, the slow path, the delete event. */
void p2q_capture_delete_row(p2q_buf_t *b, const p2q_rule_config_t *r, const char *schema, int max_attempts,
                            const p2q_strlist_t *snap, const p2q_strlist_t *watch, const p2q_strlist_t *need,
                            const char *osrc, const char *guard, const char *delegate) {
  guarded_open(b, guard);
  filter_routing_of(b, r, "    ", "INSERT", osrc, "old_ok", "ro", guard != NULL);
  key_capture(b, r, "    ", "ko", "OLD", "bad_old", guard != NULL);
  guarded_close(b, guard, delegate);
  if (!guard) slow_path(b, r, snap, watch, need, p2q_capture_binary_vector(r, snap), "NEW", osrc);
  p2q_buf_puts(b, "  IF old_ok THEN\n    ");
  trigger_event(b, r, schema, max_attempts, "ko", "ro", "delete", "NULL", "bad_old", 0, guard != NULL);
  p2q_buf_puts(b, ";\n  END IF;\n");
}

/*
 * The trigger function of a rule without a filter, in front of the pinned one (capture.c): an
 * UPDATE that left every watched and key column binary-identical returns at once, without the
 * pinned function's SET clauses (~31k instructions per call) and its fast path; anything else
 * (INSERT, DELETE, any other UPDATE, a test that raised) is handed on as it is:
 * `probe := <pinned>(TG_OP, NEW, OLD)`, whose body is p2q_capture_body's with the early return left
 * out (the gate made it). Why its answer is the pinned function's own, whatever the writer's
 * session:
 *   - the test is same_image_expr's (binary images, record_image_eq), which no setting changes,
 *     with every type and operator named in pg_catalog, the pinned function by its schema: no
 *     search_path (nor pg_temp, searched first for types only) can resolve a name to anything
 *     else; no plpgsql variable may meet a column (no query has a FROM), nor be shadowed (the
 *     one variable, probe, shadows nothing): plpgsql.variable_conflict and extra_errors change
 *     nothing;
 *   - the test sits in a read-only exception block (a watched column dropped or renamed since
 *     `apply`: "record new has no field"): an error hands the row on, where the slow path
 *     handles it as before; nothing else in the gate can raise;
 *   - SECURITY DEFINER (without SET clauses: no GUC nest level) so that the call runs as the
 *     functions' owner, who may use the outbox schema; writers need no privilege on it. The
 *     pinned function is SECURITY INVOKER: called directly by another role it runs as that role.
 * A rule with a filter keeps the single pinned function: its early return also compares the
 * filter's value on both rows, an expression that may read any column and print values under the
 * writer's settings, so no test free of settings can stand in for it.
 */
int p2q_capture_gate_body(p2q_buf_t *b, const p2q_rule_config_t *r, const char *schema, int max_attempts,
                          const p2q_strlist_t *watch, const char *pinned) {
  p2q_buf_puts(b, "\n-- the events and their wake-up (NOTIFY " P2Q_NOTIFY_CHANNEL ") are written by the pinned function\n"
                  "DECLARE\n  probe pg_catalog.bool;\nBEGIN\n");
  p2q_capture_relid_guard(b, r, schema, "row", max_attempts);
  p2q_buf_puts(b, "  IF TG_OP OPERATOR(pg_catalog.=) 'UPDATE' THEN\n    BEGIN\n      IF ");
  int rc = same_image_expr(b, r, watch, 1);
  p2q_buf_printf(b, " THEN\n        RETURN NULL;\n      END IF;\n    EXCEPTION WHEN OTHERS THEN\n      NULL;\n"
                    "    END;\n  END IF;\n  probe := %s(TG_OP, NEW, OLD);\n  RETURN NULL;\nEND\n", pinned);
  return rc ? rc : p2q_buf_error(b);
}

/* Statement-level events (backfill, reconcile --fix, TRUNCATE, the statement-level INSERT
   capture): "INSERT INTO … SELECT … FROM <source> AS r", reading the columns either by name (CROSS JOIN LATERAL over row_to_json(r):
   works whatever DDL happened) or, when by_name is 0, by reference (about 1.6× faster per row
   with a 384-float vector; fails with undefined_column once a named column is gone). */
void p2q_capture_insert_events(p2q_buf_t *b, const p2q_rule_config_t *r, const p2q_capture_events_t *ev) {
  const char *op = ev->op, *source = ev->source;
  const p2q_strlist_t *snap = ev->snap, *need = ev->need;
  int max_attempts = ev->max_attempts, by_name = ev->by_name, q = ev->qualified;
  int upsert = strcmp(op, "delete") != 0;
  int vec = ev->vec && upsert && !by_name && p2q_capture_binary_vector(r, snap);
  if (!ev->select_only) {
    p2q_buf_puts(b, "INSERT INTO ");
    outbox_columns(b, ev->schema, vec);
  }
  p2q_buf_puts(b, "SELECT ");
  if (ev->quiet) p2q_sql_literal(b, event_type_of(r));
  else event_type_expr(b, r);
  p2q_buf_puts(b, ", ");
  if (!r->routing_key || ev->no_routing) p2q_buf_puts(b, "NULL");
  else p2q_buf_printf(b, "(%s)::text", r->routing_key);
  p2q_buf_puts(b, ", ");
  p2q_sql_literal(b, r->name);
  p2q_buf_puts(b, ", ");
  p2q_sql_literal(b, r->table);
  if (!by_name) {
    p2q_buf_puts(b, ", ");
    object_expr(b, "r", &r->key, 1, q);
    p2q_buf_printf(b, ", '%s', ", op);
    if (vec && ev->vec_checked) { /* this statement's column is a real[] (capture_stmt.c type_guard) */
      object_expr_sub(b, "r", snap, 0, r->vector_column, (q ? "NULL::pg_catalog.json" : "NULL::json"), q);
      p2q_buf_puts(b, ", r.");
      p2q_sql_ident(b, r->vector_column);
    } else if (vec) { /* the caller found a real[]; checked per row again (a type changed since) */
      p2q_buf_t t = P2Q_BUF_INIT;
      p2q_buf_printf(&t, "%s(r.", PGC(q, "pg_typeof"));
      p2q_sql_ident(&t, r->vector_column);
      p2q_buf_puts(&t, q ? ") OPERATOR(pg_catalog.=) 'pg_catalog.float4[]'::pg_catalog.regtype" : ") = 'real[]'::regtype");
      p2q_buf_printf(b, "CASE WHEN %s THEN ", p2q_buf_str(&t));
      object_expr_sub(b, "r", snap, 0, r->vector_column, (q ? "NULL::pg_catalog.json" : "NULL::json"), q);
      p2q_buf_puts(b, " ELSE ");
      snapshot_expr(b, "r", snap, q);
      p2q_buf_printf(b, " END, CASE WHEN %s THEN r.", p2q_buf_str(&t));
      p2q_sql_ident(b, r->vector_column);
      p2q_buf_puts(b, " END");
      p2q_buf_free(&t);
    } else if (upsert) {
      snapshot_expr(b, "r", snap, q);
    } else {
      p2q_buf_puts(b, "NULL");
    }
    p2q_buf_puts(b, ", CASE WHEN ");
    key_null_expr(b, r, "r");
    p2q_buf_puts(b, " THEN 0");
    if (upsert && need->n) { /* never true, but names the vector/text columns: gone = an error */
      p2q_buf_puts(b, " WHEN (");
      key_null_expr(b, &(p2q_rule_config_t){.key = *need}, "r");
      p2q_buf_puts(b, ") IS NULL THEN 0");
    }
    p2q_buf_printf(b, " ELSE %d END, CASE WHEN ", max_attempts);
    key_null_expr(b, r, "r");
    p2q_buf_puts(b, " THEN ");
    key_message(b, r);
    p2q_buf_printf(b, " END FROM %s AS r", source);
    return;
  }
  p2q_buf_printf(b, ", COALESCE(p2q_x.p2q_k, '{}'::jsonb), '%s', %s, CASE WHEN p2q_x.p2q_bad IS NULL "
                    "THEN %d ELSE 0 END, p2q_x.p2q_bad FROM %s AS r CROSS JOIN LATERAL (SELECT ",
                 op, upsert ? (snap->n ? "p2q_x.p2q_s" : "to_json(r)") : "NULL", max_attempts, source);
  named_key_agg(b, r);
  p2q_buf_puts(b, " AS p2q_k, ");
  if (upsert && snap->n) p2q_capture_named_snapshot(b, snap);
  else p2q_buf_puts(b, "NULL::json");
  p2q_buf_puts(b, " AS p2q_s, ");
  named_bad_agg(b, r, upsert ? need : NULL);
  p2q_buf_puts(b, " AS p2q_bad FROM json_each(row_to_json(r)) AS e) AS p2q_x");
}

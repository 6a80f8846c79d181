/*
 * capture_relid.c — every generated trigger function acts only for its rule's table, and what it
 * refuses is kept as dead letters, never lost (bench/issue11/session15-sec15.md).
 *
 * The capture functions are SECURITY DEFINER (they write sync_outbox as the apply role) and, like
 * every function, executable by PUBLIC. CREATE TRIGGER needs only EXECUTE on the function and
 * ownership of the table, so any role could attach them to a table of its own (a TEMP table needs
 * no privilege at all) and have them write forged upserts and deletes for the rule. Revoking
 * EXECUTE from PUBLIC is not an option: PostgreSQL checks it when it clones a partitioned table's
 * row trigger onto a new partition, so the application's own CREATE TABLE … PARTITION OF and
 * ATTACH PARTITION would fail.
 *
 * So each trigger function's first statement is p2q_capture_relid_guard():
 * - fast: TG_RELID, TG_TABLE_NAME and TG_TABLE_SCHEMA equal the table's oid and names, or those of
 *   one of its partitions as `apply` found them (P2Q_CAPTURE_PARTS_MARK; a plpgsql simple
 *   expression, no query). The oid is written into the function when `apply` installs it
 *   (a '<table>'::regclass constant would be parsed again after a plan invalidation and raise
 *   after a rename): the body holds P2Q_CAPTURE_RELID_MARK, p2q_capture_relid_install() wraps the
 *   CREATE FUNCTION in a DO block that replaces it. The names as well: after a restore into another
 *   cluster the written oid is stale and a stranger's table could be given exactly that oid.
 * - slow, only when that fails (a partition, a renamed or restored table, a stranger's table):
 *   sync_outbox_capture_accepts() (sql/functions.sql), catalog reads by oid and by name strings
 *   that cannot raise, which follows the fired trigger to its root trigger and that table's
 *   ancestors.
 * - refused: the rows the function would have captured go to sync_outbox_dead (the rule, the row
 *   key, the op; error text naming the trigger and the table), with a WARNING, and RETURN NULL: the
 *   statement goes on (what a trigger returns is ignored for AFTER and statement-level BEFORE
 *   TRUNCATE triggers). A wrongly refused event is visible (status, metrics) and `retry --dead`
 *   enqueues its row again as the rule's table holds it now; a forger's dead letters are harmless
 *   the same way. Nothing of a stranger's table runs as the apply role: the key is built by
 *   to_jsonb only for built-in types (a stranger's type may carry a cast to json, a function of
 *   its own that would run as the apply role), format('%s') (output functions only) otherwise; a
 *   transition table is read only when the fired trigger declared it (else p2q_new/p2q_old would
 *   resolve to the stranger's pg_temp relation, maybe a view); a refused TRUNCATE reads no table
 *   (row security policies are a stranger's functions too) and writes no dead letter, only the
 *   WARNING.
 * Every name is qualified (pg_catalog), as in the unpinned functions, which pin no search_path.
 *
 * Pure string building, any thread.
 */
#include "capture_body.h"

#include "pg2qdrant/errors.h"

#include <stdlib.h>
#include <string.h>

#define OID_IS "'" P2Q_CAPTURE_RELID_MARK "'::pg_catalog.oid"
#define MARKS 2 /* OID_IS in a guard */
#define FIRST_NORMAL_OID "16384" /* FirstNormalObjectId: types below are built in */
/* what encloses the partitions' test in the guard (p2q_capture_relid_parts_current finds it) */
#define PARTS_BEFORE "::pg_catalog.name"
#define PARTS_AFTER ") THEN -- not the table itself: capture_relid.c"

/* jsonb_build_object('k', <value of ref."k">, …) over the rule's key, safe for a stranger's row. */
static void dead_key(p2q_buf_t *b, const p2q_rule_config_t *r, const char *ref) {
  p2q_buf_puts(b, "pg_catalog.jsonb_build_object(");
  for (int i = 0; i < r->key.n; i++) {
    p2q_buf_t c = P2Q_BUF_INIT;
    p2q_buf_printf(&c, "%s.", ref);
    p2q_sql_ident(&c, r->key.items[i]);
    if (i) p2q_buf_puts(b, ", ");
    p2q_sql_literal(b, r->key.items[i]);
    p2q_buf_printf(b, ", CASE WHEN pg_catalog.pg_typeof(%s)::pg_catalog.oid OPERATOR(pg_catalog.<) " FIRST_NORMAL_OID
                      " THEN pg_catalog.to_jsonb(%s) ELSE pg_catalog.to_jsonb(pg_catalog.format('%%s', %s)) END",
                   c.data, c.data, c.data);
    p2q_buf_free(&c);
  }
  p2q_buf_putc(b, ')');
}

/* INSERT INTO sync_outbox_dead … of the rows `from` (a FROM clause, or NULL: one row of ref) */
static void dead_insert(p2q_buf_t *b, const p2q_rule_config_t *r, const char *schema, int max_attempts,
                        const char *ref, const char *from, const char *op) {
  p2q_buf_puts(b, "INSERT INTO ");
  p2q_sql_ident(b, schema);
  p2q_buf_puts(b, ".sync_outbox_dead (id, event_type, routing_key, rule, source_table, row_key, op, payload,"
                  " attempts, max_attempts, last_error, created_at) SELECT pg_catalog.nextval("
                  "pg_catalog.pg_get_serial_sequence(");
  p2q_buf_t outbox = P2Q_BUF_INIT; /* the events' own sequence: a dead letter's id is an event's */
  p2q_sql_ident(&outbox, schema);
  p2q_buf_puts(&outbox, ".sync_outbox");
  p2q_sql_literal(b, outbox.data);
  p2q_buf_free(&outbox);
  p2q_buf_puts(b, ", 'id')::pg_catalog.regclass), ");
  p2q_sql_literal(b, r->event_type ? r->event_type : r->name);
  p2q_buf_puts(b, ", NULL, ");
  p2q_sql_literal(b, r->name);
  p2q_buf_puts(b, ", ");
  p2q_sql_literal(b, r->table);
  p2q_buf_puts(b, ", ");
  dead_key(b, r, ref);
  p2q_buf_printf(b, ", '%s', NULL, 0, %d, p2q_why, pg_catalog.now()%s%s;\n", op, max_attempts, from ? " FROM " : "",
                 from ? from : "");
}

/* The slow test's 2 and 3 (the fired trigger is newer than the writer's transaction snapshot, so
   it could not read its kind: rv15c H-R1) turned into 1, 0 or -1 from what the trigger says of
   itself. 2: TG_RELID is the rule's table or one of its partitions in the current catalog; 3:
   nothing established. Row kind: an AFTER ROW trigger's NEW/OLD are the row's, so 2 is accepted
   and 3 dead-lettered, never dropped. Statement kinds (only on a plain table, the rule's own):
   the transition table's name cannot be checked, so 2 is dead-lettered (the insert is guarded)
   and 3 refused. TRUNCATE reads no rows: 2 accepted. -1 only when nothing can be read. */
static void seen_kind(p2q_buf_t *b, const char *kind) {
  p2q_buf_puts(b, "      IF p2q_ok OPERATOR(pg_catalog.>) 1 THEN -- the fired trigger not in this snapshot\n"
                  "        p2q_ok := CASE WHEN ");
  if (!strcmp(kind, "row"))
    p2q_buf_puts(b, "TG_LEVEL OPERATOR(pg_catalog.<>) 'ROW' OR TG_WHEN OPERATOR(pg_catalog.<>) 'AFTER' THEN -1"
                    " WHEN p2q_ok OPERATOR(pg_catalog.=) 2 THEN 1 ELSE 0 END;\n");
  else if (!strcmp(kind, "truncate"))
    p2q_buf_puts(b, "p2q_ok OPERATOR(pg_catalog.=) 2 AND TG_OP OPERATOR(pg_catalog.=) 'TRUNCATE' THEN 1 ELSE -1 END;\n");
  else
    p2q_buf_printf(b, "p2q_ok OPERATOR(pg_catalog.=) 2 AND TG_LEVEL OPERATOR(pg_catalog.=) 'STATEMENT' AND TG_WHEN"
                      " OPERATOR(pg_catalog.=) 'AFTER' AND TG_OP OPERATOR(pg_catalog.=) '%s' THEN 0 ELSE -1 END;\n",
                   strcmp(kind, "insert") ? "DELETE" : "INSERT");
  p2q_buf_puts(b, "      END IF;\n");
}

void p2q_capture_relid_guard(p2q_buf_t *b, const p2q_rule_config_t *r, const char *schema, const char *kind,
                             int max_attempts) {
  char *s = NULL, *n = NULL;
  if (p2q_sql_parse_qualified(r->table, &s, &n)) { /* install_sql refuses the rule first */
    p2q_buf_puts(b, "  RETURN NULL;\n");
    return;
  }
  p2q_buf_puts(b, "  IF NOT (TG_RELID OPERATOR(pg_catalog.=) " OID_IS " AND TG_TABLE_NAME OPERATOR(pg_catalog.=) ");
  p2q_sql_literal(b, n);
  p2q_buf_puts(b, "::pg_catalog.name AND TG_TABLE_SCHEMA OPERATOR(pg_catalog.=) ");
  p2q_sql_literal(b, s);
  p2q_buf_puts(b, PARTS_BEFORE P2Q_CAPTURE_PARTS_MARK PARTS_AFTER "\n    DECLARE\n"
                  "      p2q_ok pg_catalog.int4 := ");
  p2q_sql_ident(b, schema);
  p2q_buf_puts(b, ".sync_outbox_capture_accepts(TG_RELID, TG_NAME, " OID_IS ", "); /* typed: no overload wins (rv15b L1) */
  p2q_sql_literal(b, s);
  p2q_buf_puts(b, "::pg_catalog.name, ");
  p2q_sql_literal(b, n);
  p2q_buf_printf(b, "::pg_catalog.name, '%s'::pg_catalog.text);\n      p2q_why pg_catalog.text;\n      p2q_dead pg_catalog.int8 := 0;\n    BEGIN\n", kind);
  seen_kind(b, kind);
  p2q_buf_puts(b, "      IF p2q_ok OPERATOR(pg_catalog.<>) 1 THEN\n        p2q_why := pg_catalog.format(");
  p2q_sql_literal(b, "pg2qdrant: trigger %s on %s.%s is not on rule %s's table: not applied");
  p2q_buf_puts(b, ", TG_NAME, TG_TABLE_SCHEMA, TG_TABLE_NAME, ");
  p2q_sql_literal(b, r->name);
  p2q_buf_puts(b, "); -- only when refused: an accepted call pays no format()\n");
  if (strcmp(kind, "truncate")) {
    p2q_buf_puts(b, "        IF p2q_ok OPERATOR(pg_catalog.=) 0 THEN\n          BEGIN\n            ");
    if (!strcmp(kind, "row")) {
      p2q_buf_puts(b, "IF TG_OP OPERATOR(pg_catalog.<>) 'DELETE' THEN\n              ");
      dead_insert(b, r, schema, max_attempts, "NEW", NULL, "upsert");
      p2q_buf_puts(b, "              p2q_dead := 1;\n            END IF;\n            IF TG_OP OPERATOR(pg_catalog.<>) 'INSERT' THEN\n"
                      "              ");
      dead_insert(b, r, schema, max_attempts, "OLD", NULL, "delete");
      p2q_buf_puts(b, "              p2q_dead := p2q_dead OPERATOR(pg_catalog.+) 1;\n            END IF;\n");
    } else {
      int ins = !strcmp(kind, "insert");
      dead_insert(b, r, schema, max_attempts, "p2q_r", ins ? "p2q_new AS p2q_r" : "p2q_old AS p2q_r", ins ? "upsert" : "delete");
      p2q_buf_puts(b, "            GET DIAGNOSTICS p2q_dead = ROW_COUNT;\n");
    }
    p2q_buf_puts(b, "          EXCEPTION WHEN OTHERS THEN\n            p2q_why := p2q_why OPERATOR(pg_catalog.||) ', no dead letter: '"
                    " OPERATOR(pg_catalog.||) SQLERRM;\n          END;\n        END IF;\n");
  }
  p2q_buf_puts(b, "        RAISE WARNING '% (% dead letter(s))', p2q_why, p2q_dead;\n        RETURN NULL;\n"
                  "      END IF;\n    END;\n  END IF;\n");
  free(s);
  free(n);
}

/* The partitions' fast test, a text the install's DO block computes from pg_partition_tree and
   splices into the dollar-quoted function text (rv15b H1): so only partitions whose names are
   made of [a-z0-9_] are listed (a name holding the tag, `$p2q$`, would end the body and run the
   rest as the apply role; the others take the slow test), and a text holding a `$` anyway is NULL:
   EXECUTE NULL fails `apply`, never a write. ""
   for a table without partitions, else " OR COALESCE(names[array_position(oids, TG_RELID)] =
   TG_TABLE_NAME AND schemas[…] = TG_TABLE_SCHEMA, false)" over the partitions at every depth as
   they are now (each oid paired with its own names, so a stale oid alone, after a restore, passes
   no more than for the table itself; one not found, or NULL, is false: the slow test decides). */
static void rel_ref(p2q_buf_t *b, const char *qtable, const char *rel) { /* the table: '<qtable>'::regclass or rel */
  if (!qtable) {
    p2q_buf_puts(b, rel);
    return;
  }
  p2q_sql_literal(b, qtable);
  p2q_buf_puts(b, "::pg_catalog.regclass");
}

static void parts_text(p2q_buf_t *b, const char *qtable, const char *rel) {
  p2q_buf_puts(b, "(SELECT CASE WHEN pg_catalog.strpos(p2q_p.t, pg_catalog.chr(36)) OPERATOR(pg_catalog.=) 0 THEN p2q_p.t END"
                  " FROM (SELECT CASE WHEN pg_catalog.count(*) OPERATOR(pg_catalog.=) 0 THEN '' ELSE pg_catalog.format("
                  "' OR COALESCE((%1$s::pg_catalog.name[])[pg_catalog.array_position(%2$s::pg_catalog.oid[], TG_RELID)]"
                  " OPERATOR(pg_catalog.=) TG_TABLE_NAME AND (%3$s::pg_catalog.name[])[pg_catalog.array_position("
                  "%2$s::pg_catalog.oid[], TG_RELID)] OPERATOR(pg_catalog.=) TG_TABLE_SCHEMA, false)',"
                  " pg_catalog.quote_literal(pg_catalog.array_agg(c.relname ORDER BY c.oid)::pg_catalog.text),"
                  " pg_catalog.quote_literal(pg_catalog.array_agg(c.oid ORDER BY c.oid)::pg_catalog.text),"
                  " pg_catalog.quote_literal(pg_catalog.array_agg(n.nspname ORDER BY c.oid)::pg_catalog.text)) END AS t"
                  " FROM pg_catalog.pg_partition_tree(");
  rel_ref(b, qtable, rel);
  p2q_buf_puts(b, ") p2q_pt JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) p2q_pt.relid"
                  " JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace"
                  " WHERE p2q_pt.relid OPERATOR(pg_catalog.<>) ");
  rel_ref(b, qtable, rel);
  p2q_buf_puts(b, " AND c.relname OPERATOR(pg_catalog.!~) '[^a-z0-9_]' AND n.nspname"
                  " OPERATOR(pg_catalog.!~) '[^a-z0-9_]') p2q_p)");
}

void p2q_capture_relid_splice(p2q_buf_t *b, const char *qtable) {
  p2q_buf_puts(b, ", pg_catalog.chr(2), ");
  rel_ref(b, qtable, NULL);
  p2q_buf_puts(b, "::pg_catalog.oid::pg_catalog.text), pg_catalog.chr(3), ");
  parts_text(b, qtable, NULL);
  p2q_buf_puts(b, ")");
}

/* rv16a M-1: the list a function holds must EQUAL what an install would write now (the same
   parts_text, delimited by what encloses it in the guard), not merely contain every current
   partition: a partition detached (maybe handed to another role), renamed, moved or dropped since
   leaves an entry that would pass the fast test (a detached one: forged events) or miss it (a
   renamed one: the slow test on every row) until the functions are written again. */
/* prosrc (a function's text) holds a guard with a partitions' test */
static void guarded(p2q_buf_t *b, const char *prosrc) {
  p2q_buf_printf(b, "pg_catalog.strpos(%s, '" PARTS_AFTER "') OPERATOR(pg_catalog.>) 0", prosrc);
}

void p2q_capture_relid_parts_current(p2q_buf_t *b, const char *prosrc, const char *rel) {
  p2q_buf_printf(b, "pg_catalog.strpos(%s, '" PARTS_BEFORE "' OPERATOR(pg_catalog.||) ", prosrc);
  parts_text(b, NULL, rel);
  p2q_buf_puts(b, " OPERATOR(pg_catalog.||) '" PARTS_AFTER "') OPERATOR(pg_catalog.>) 0");
}

int p2q_capture_relid_install(p2q_buf_t *out, const p2q_buf_t *create, const p2q_rule_config_t *r) {
  if (p2q_buf_error(create)) return p2q_buf_error(create);
  int n = p2q_sql_count(create->data, P2Q_CAPTURE_RELID_MARK);
  if (n == 0) {
    p2q_buf_puts(out, create->data);
    return p2q_buf_error(out);
  }
  if (n != MARKS || p2q_sql_count(create->data, P2Q_CAPTURE_PARTS_MARK) != 1)
    return P2Q_EINVAL; /* a mark's byte also in a name or filter of the config */
  p2q_buf_t qt = P2Q_BUF_INIT, body = P2Q_BUF_INIT;
  int rc = p2q_sql_qualified(&qt, r->table);
  if (rc) goto fail;
  p2q_buf_puts(&body, "\nBEGIN\n  EXECUTE pg_catalog.replace(pg_catalog.replace(");
  if ((rc = p2q_sql_dollar_quote(&body, create->data))) goto fail;
  p2q_capture_relid_splice(&body, qt.data);
  p2q_buf_puts(&body, ";\nEND\n");
  if ((rc = p2q_buf_error(&body))) goto fail;
  p2q_buf_puts(out, "DO ");
  if ((rc = p2q_sql_dollar_quote(out, body.data))) goto fail;
  p2q_buf_puts(out, ";\n");
  rc = p2q_buf_error(out);
fail:
  p2q_buf_free(&qt);
  p2q_buf_free(&body);
  return rc;
}

/* Every guarded function of rule r (attached or not) lists rel's partitions as an install would
   now: apply's "installed and unchanged?" and check's stale-list warning (rv16b L-1, L-2). */
void p2q_capture_parts_current_sql(p2q_buf_t *out, const p2q_rule_config_t *r, const char *schema, const char *rel) {
  static const char *const prefixes[] = {"p2q_capture_", P2Q_CAPTURE_PINNED_PREFIX, "p2q_insert_", "p2q_delete_", "p2q_truncate_"};
  p2q_buf_puts(out, "NOT EXISTS (SELECT FROM pg_catalog.pg_proc g JOIN pg_catalog.pg_namespace gn"
                    " ON gn.oid = g.pronamespace WHERE gn.nspname = ");
  p2q_sql_literal(out, schema);
  p2q_buf_puts(out, " AND g.proname IN (");
  for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++) {
    p2q_buf_t n = P2Q_BUF_INIT;
    p2q_buf_printf(&n, "%s%s", prefixes[i], r->name);
    if (i) p2q_buf_puts(out, ", ");
    p2q_sql_literal(out, p2q_buf_str(&n));
    p2q_buf_free(&n);
  }
  p2q_buf_puts(out, ") AND ");
  guarded(out, "g.prosrc");
  p2q_buf_puts(out, " AND NOT ");
  p2q_capture_relid_parts_current(out, "g.prosrc", rel);
  p2q_buf_puts(out, ")");
}

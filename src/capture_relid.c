/*
 * capture_relid.c — every generated trigger function acts only for its rule's table.
 *
 * The capture functions are SECURITY DEFINER (they write sync_outbox as the apply role) and, like
 * every function, executable by PUBLIC. CREATE TRIGGER needs only EXECUTE on the function and
 * ownership of the table, so any role could attach them to a table of its own (a TEMP table needs
 * no privilege at all) and have them write forged upserts and deletes for the rule (rv14b H1).
 * Revoking EXECUTE from PUBLIC is not an option: PostgreSQL checks it when it clones a partitioned
 * table's row trigger onto a new partition, so the application's own CREATE TABLE … PARTITION OF
 * and ATTACH PARTITION would fail, and nothing pg2qdrant installs may make an application's
 * statement fail.
 *
 * So each trigger function's first statement is p2q_capture_relid_guard(): TG_RELID compared with
 * the table's oid, a plpgsql "simple expression" (no query: a few hundred instructions a call).
 * Only when it differs (a partition, at any depth, of the table: its cloned row trigger or its
 * own TRUNCATE trigger; or a stranger's table) does a slower test run: pg_partition_root (a
 * simple expression again) and, for a table that is itself a partition of something else, its
 * ancestors (a query). A table that is none of these gets a WARNING and RETURN NULL: no event,
 * the attacker's statement itself goes on (what a trigger returns is ignored for AFTER triggers
 * and for statement-level BEFORE TRUNCATE ones). Being first, the test runs before any query of
 * the body, so an unqualified transition-table name (p2q_new/p2q_old) can no longer be made to
 * resolve to the attacker's pg_temp relation either: a trigger without REFERENCING never gets
 * past it.
 *
 * The oid is written into the function when `apply` installs it, not looked up by name: a
 * '<table>'::regclass constant would be parsed again whenever the cached plan is invalidated, and
 * after an ALTER TABLE … RENAME it would raise in the writer's statement. The body holds
 * P2Q_CAPTURE_RELID_MARK where the oid goes; p2q_capture_relid_install() wraps the CREATE
 * FUNCTION in a DO block that substitutes it (the table's current oid: a table dropped and
 * created again needs `apply`, which it needs anyway for its triggers). Every name is qualified
 * (pg_catalog), as in the unpinned functions, which pin no search_path.
 *
 * Pure string building, any thread.
 */
#include "capture_body.h"

#include "pg2qdrant/errors.h"

#include <string.h>

#define OID_IS "'" P2Q_CAPTURE_RELID_MARK "'::pg_catalog.oid"
#define MARKS 3 /* OID_IS in a guard */

void p2q_capture_relid_guard(p2q_buf_t *b, const p2q_rule_config_t *r) {
  p2q_buf_puts(b, "  IF TG_RELID OPERATOR(pg_catalog.<>) " OID_IS " THEN -- not the table itself: capture_relid.c\n"
                  "    IF COALESCE(pg_catalog.pg_partition_root(TG_RELID)::pg_catalog.oid"
                  " OPERATOR(pg_catalog.<>) " OID_IS ", true) THEN\n"
                  "      IF NOT EXISTS (SELECT FROM pg_catalog.pg_partition_ancestors(TG_RELID) AS p2q_a(relid)"
                  " WHERE p2q_a.relid::pg_catalog.oid OPERATOR(pg_catalog.=) " OID_IS ") THEN\n"
                  "        RAISE WARNING 'pg2qdrant: rule %: trigger % on %, not on the rule''s table: no event written', ");
  p2q_sql_literal(b, r->name);
  p2q_buf_puts(b, ", TG_NAME, TG_RELID::pg_catalog.regclass;\n        RETURN NULL;\n      END IF;\n    END IF;\n  END IF;\n");
}

void p2q_capture_relid_oid(p2q_buf_t *b, const char *qtable) {
  p2q_sql_literal(b, qtable);
  p2q_buf_puts(b, "::pg_catalog.regclass::pg_catalog.oid::pg_catalog.text");
}

int p2q_capture_relid_install(p2q_buf_t *out, const p2q_buf_t *create, const p2q_rule_config_t *r) {
  if (p2q_buf_error(create)) return p2q_buf_error(create);
  int n = p2q_sql_count(create->data, P2Q_CAPTURE_RELID_MARK);
  if (n == 0) {
    p2q_buf_puts(out, create->data);
    return p2q_buf_error(out);
  }
  if (n != MARKS) return P2Q_EINVAL; /* the mark's byte also in a name or filter of the config */
  p2q_buf_t qt = P2Q_BUF_INIT, body = P2Q_BUF_INIT;
  int rc = p2q_sql_qualified(&qt, r->table);
  if (rc) goto fail;
  p2q_buf_puts(&body, "\nBEGIN\n  EXECUTE pg_catalog.replace(");
  if ((rc = p2q_sql_dollar_quote(&body, create->data))) goto fail;
  p2q_buf_puts(&body, ", pg_catalog.chr(2), ");
  p2q_capture_relid_oid(&body, qt.data);
  p2q_buf_puts(&body, ");\nEND\n");
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

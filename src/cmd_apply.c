/*
 * cmd_apply.c — `pg2qdrant apply [--dry-run] [--no-backfill] [--chunk N]`: makes PostgreSQL and
 * Qdrant match the rules.
 *
 * For each rule: check (or create) its Qdrant collection — a collection with another dimension
 * or distance is an error — then:
 *   1. compare the table with the rule (catalog only): a key, vector or text column that is not
 *      there makes the rule impossible (error, nothing changed); a missing `columns`/`watch`
 *      column is an error for a new rule (a typo) and reported as drift for an applied one
 *      (dropped or renamed since: its snapshots lack it, writes go on);
 *   2. validate key, filter and routing_key exactly as the trigger will run them: prepared (one
 *      statement only) on a session pinned to the trigger's search_path (pg_catalog, pg_temp),
 *      as the role that will own the SECURITY DEFINER trigger function (apply's own);
 *   3. install the trigger function, triggers and drift function in one short transaction
 *      (CREATE TRIGGER's lock waits only for in-flight writers of the table, then releases);
 *   4. enqueue the existing rows with `backfill`'s machinery: key-range chunks, each its own
 *      transaction with FOR SHARE on its rows, so writers wait at most for one chunk (and only
 *      writers of that chunk's rows), and no older snapshot overtakes a newer trigger event
 *      (the argument is in cmd_backfill.c). No gap: every change committed after step 3 has a
 *      trigger event, every change before it is visible to the chunks. --no-backfill skips it;
 *   5. record the rule (definition = generated SQL + a signature of the table's relevant columns)
 *      only after the load completed, so an interrupted apply loads again next time.
 * A rule whose definition and table signature are unchanged (and whose trigger is still there)
 * is left alone; a changed table (a column added where `columns` is empty, a type changed, a
 * named column dropped) gets its trigger regenerated and its rows enqueued again, so Qdrant
 * follows. Rules removed from the config get their triggers dropped.
 * Blocking libpq and a private curl loop; main thread only.
 */
#include "pg2qdrant/capture.h"
#include "pg2qdrant/collection.h"
#include "pg2qdrant/commands.h"
#include "pg2qdrant/errors.h"
#include "pg2qdrant/reindex.h"
#include "pg2qdrant/uuid.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
  int dry, no_backfill, tty;
  int reindexing;  /* a re-embedding job runs for the rule: its own backfill loads the rows */
  long chunk;
} apply_opts_t;

/* Each collection once: created as configured, or its differences reported and fixed where Qdrant
   allows it in place (collection.c). */
static int ensure_collections(const p2q_config_t *cfg, int dry, const int *busy) {
  p2q_qdrant_options_t o;
  p2q_qdrant_options_from_config(cfg, &o);
  for (int i = 0; i < cfg->n_rules; i++) {
    const p2q_rule_config_t *r = &cfg->rules[i];
    /* re-embedding: NAME serves the old definition until the swap */
    if (!p2q_collection_first_rule(cfg, i) || (busy && busy[i])) continue;
    char msg[1024];
    int rc = p2q_collection_ensure(&o, cfg, r->collection, dry ? P2Q_COLL_DRY : P2Q_COLL_APPLY, stdout, msg, sizeof msg);
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

static void trim(char *err) {
  size_t n = strlen(err);
  while (n && (err[n - 1] == '\n' || err[n - 1] == ' ')) err[--n] = 0;
}

/* A one-statement query with text parameters; NULL + message in err unless TUPLES_OK. */
static PGresult *query(PGconn *conn, const char *sql, int n, const char *const *params, char *err,
                       size_t errlen) {
  PGresult *res = PQexecParams(conn, sql, n, NULL, params, NULL, NULL, 0);
  if (PQresultStatus(res) == PGRES_TUPLES_OK) return res;
  snprintf(err, errlen, "%s", PQresultErrorMessage(res));
  trim(err);
  PQclear(res);
  return NULL;
}

/*
 * Step 1: the rule's named columns against the table. Returns 0 (fine or drift only, warnings
 * printed), 1 (impossible: message printed). *sig receives the table signature (malloc'd).
 */
static int check_columns(PGconn *conn, const p2q_rule_config_t *r, const char *qtable, int is_new,
                         char **sig) {
  p2q_buf_t sql = P2Q_BUF_INIT, cols = P2Q_BUF_INIT;
  char err[1024];
  int rc = 1;
  const char *params[] = {qtable};
  PGresult *res = NULL;
  *sig = NULL;
  if (p2q_capture_columns_sql(r, &cols)) { fprintf(stderr, "pg2qdrant: apply: rule %s: out of memory\n", r->name); goto out; }
  if (!(res = query(conn, "SELECT pg_catalog.to_regclass($1) IS NOT NULL", 1, params, err, sizeof err))) goto fail;
  if (strcmp(PQgetvalue(res, 0, 0), "t") != 0) {
    fprintf(stderr, "pg2qdrant: apply: rule %s: table %s does not exist\n", r->name, r->table);
    goto out;
  }
  PQclear(res);
  p2q_buf_printf(&sql, "SELECT c.col, c.used_as, c.breaks FROM %s WHERE NOT EXISTS (SELECT 1 FROM"
                       " pg_catalog.pg_attribute a WHERE a.attrelid = pg_catalog.to_regclass($1)"
                       " AND a.attname = c.col AND a.attnum > 0 AND NOT a.attisdropped)", cols.data);
  if (!(res = query(conn, sql.data, 1, params, err, sizeof err))) goto fail;
  int impossible = 0;
  for (int i = 0; i < PQntuples(res); i++) {
    const char *col = PQgetvalue(res, i, 0), *as = PQgetvalue(res, i, 1);
    if (!strcmp(PQgetvalue(res, i, 2), "t") || is_new) {
      fprintf(stderr, "pg2qdrant: apply: rule %s: column \"%s\" (its %s) is not in %s%s\n", r->name, col,
              as, r->table, is_new ? "" : " (dropped or renamed): the rule cannot work until it is changed");
      impossible = 1;
    } else {
      fprintf(stderr, "pg2qdrant: apply: rule %s: drift: column \"%s\" (in %s) is no longer in %s "
                      "(dropped or renamed): snapshots lack it; remove it from the rule\n", r->name, col, as, r->table);
    }
  }
  PQclear(res);
  res = NULL;
  if (impossible) goto out;
  /* the signature: names and types of the columns the snapshot reads (all when `columns` is empty) */
  p2q_buf_reset(&sql);
  p2q_buf_printf(&sql, "SELECT pg_catalog.md5(COALESCE(pg_catalog.string_agg(pg_catalog.quote_ident(a.attname)"
                       " OPERATOR(pg_catalog.||) ' ' OPERATOR(pg_catalog.||) pg_catalog.format_type(a.atttypid, a.atttypmod),"
                       " ', ' ORDER BY a.attnum), '')) FROM pg_catalog.pg_attribute a"
                       " WHERE a.attrelid = pg_catalog.to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped");
  if (r->columns.n) p2q_buf_printf(&sql, " AND a.attname IN (SELECT c.col FROM %s)", cols.data);
  if (!(res = query(conn, sql.data, 1, params, err, sizeof err))) goto fail;
  *sig = strdup(PQgetvalue(res, 0, 0));
  rc = *sig ? 0 : 1;
  goto out;
fail:
  fprintf(stderr, "pg2qdrant: apply: rule %s: %s\n", r->name, err);
out:
  PQclear(res);
  p2q_buf_free(&sql);
  p2q_buf_free(&cols);
  return rc;
}

/*
 * Step 2 and 3 in one short transaction: validate (a prepared statement refuses several
 * commands: filter/routing_key must be one expression; the session has the trigger's
 * search_path, and apply's role will own the trigger function), then install. DROP/CREATE
 * TRIGGER need a table lock; waiting for it behind a long transaction would queue every later
 * reader and writer of the table behind apply, so it is tried with lock_timeout 2 s, up to 10
 * times, 1 s apart. 0, or -1 with the message in err.
 */
static int install_rule(PGconn *conn, const char *check, const char *install, char *err, size_t errlen) {
  for (int attempt = 1;; attempt++) {
    if (p2q_admin_exec(conn, "BEGIN", err, errlen)) return -1;
    PGresult *res = PQprepare(conn, "", check, 0, NULL);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
      snprintf(err, errlen, "key, filter or routing_key would fail in the trigger (which runs with "
                            "search_path = pg_catalog, pg_temp: schema-qualify your functions, types and "
                            "tables): %s", PQresultErrorMessage(res));
      PQclear(res);
      rollback(conn);
      return -1;
    }
    PQclear(res);
    if (p2q_admin_exec(conn, "SET LOCAL lock_timeout = '2s'", err, errlen)) { rollback(conn); return -1; }
    res = PQexec(conn, install);
    if (PQresultStatus(res) == PGRES_COMMAND_OK) {
      PQclear(res);
      return p2q_admin_exec(conn, "COMMIT", err, errlen);
    }
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    int busy = state && !strcmp(state, "55P03");
    snprintf(err, errlen, "%s%s", PQresultErrorMessage(res),
             busy ? " (a long transaction holds the table; apply tried 10 times, 2 s each)" : "");
    PQclear(res);
    rollback(conn);
    if (!busy || attempt == 10) return -1;
    sleep(1);
  }
}

/* Partitions created or attached since the rule was installed get its TRUNCATE trigger (the
   row trigger is cloned to them by PostgreSQL, a statement trigger is not). Returns how many, or
   -1 (err set). */
static int truncate_triggers(PGconn *conn, const p2q_config_t *cfg, const p2q_rule_config_t *r,
                             const char *check, char *err, size_t errlen) {
  if (r->on_truncate != P2Q_TRUNCATE_DELETE) return 0;
  p2q_buf_t sql = P2Q_BUF_INIT;
  *err = '\0';
  int n = -1;
  if (p2q_capture_truncate_missing_sql(r, &sql)) goto out;
  PGresult *res = query(conn, sql.data, 0, NULL, err, errlen);
  if (!res) goto out;
  n = atoi(PQgetvalue(res, 0, 0));
  PQclear(res);
  p2q_buf_reset(&sql);
  if (n > 0 && (p2q_capture_truncate_triggers_sql(r, cfg->pg_schema, &sql) ||
                install_rule(conn, check, sql.data, err, errlen)))
    n = -1;
out:
  if (n < 0 && !*err) snprintf(err, errlen, "cannot generate SQL");
  p2q_buf_free(&sql);
  return n;
}

/* What decides the events a rule's trigger writes: the capture format, the schema, the rule's
   definition (every key of its section and of its embedder's, effective values) and the table's
   signature. SHA-1 as 40 hex digits. A definition recorded with the same fingerprint but other
   SQL only had its trigger's code changed (a pg2qdrant upgrade): re-installed, nothing enqueued. */
static int events_fingerprint(const p2q_config_t *cfg, const p2q_rule_config_t *r, const char *sig, char out[41]) {
  p2q_buf_t b = P2Q_BUF_INIT;
  p2q_buf_printf(&b, "capture-format %d\nschema %s\n", P2Q_CAPTURE_FORMAT, cfg->pg_schema);
  int rc = p2q_reindex_definition(cfg, r, &b);
  p2q_buf_printf(&b, "table signature %s\n", sig);
  uint8_t h[20];
  p2q_sha1(b.data, b.len, h);
  for (int i = 0; i < 20; i++) snprintf(out + 2 * i, 3, "%02x", h[i]);
  p2q_buf_free(&b);
  return rc;
}

/* The fingerprint recorded in a definition, or NULL (recorded by a version that had none). */
static const char *recorded_fingerprint(const char *def) {
  static const char tag[] = "\n-- events fingerprint "; /* the line after the table signature */
  const char *p = strstr(def, tag);
  return p && strlen(p + sizeof tag - 1) >= 40 ? p + sizeof tag - 1 : NULL;
}

/* Record the rule's definition (after its load completed). 0 or -1 with err. */
static int record_rule(PGconn *conn, const char *schema, const char *name, const char *def, const char *table,
                       char *err, size_t errlen) {
  p2q_buf_t sql = P2Q_BUF_INIT;
  p2q_buf_printf(&sql, "INSERT INTO %s.sync_outbox_rule (name, source_table, definition) VALUES ($1, $3, $2)"
                       " ON CONFLICT (name) DO UPDATE SET source_table = EXCLUDED.source_table,"
                       " definition = EXCLUDED.definition, applied_at = pg_catalog.now()", schema);
  const char *p[] = {name, def, table};
  PGresult *res = PQexecParams(conn, sql.data, 3, NULL, p, NULL, NULL, 0);
  int rc = PQresultStatus(res) == PGRES_COMMAND_OK ? 0 : -1;
  if (rc) snprintf(err, errlen, "%s", PQresultErrorMessage(res));
  PQclear(res);
  p2q_buf_free(&sql);
  return rc;
}

/* Install one rule; prints what it did. Returns 0 or 1. */
static int apply_rule(PGconn *conn, const p2q_config_t *cfg, const p2q_rule_config_t *r,
                      const apply_opts_t *o) {
  p2q_buf_t install = P2Q_BUF_INIT, check = P2Q_BUF_INIT, q = P2Q_BUF_INIT, qt = P2Q_BUF_INIT,
            sql = P2Q_BUF_INIT, def = P2Q_BUF_INIT, trig = P2Q_BUF_INIT;
  char err[2048], *sig = NULL;
  int rc = 1;
  PGresult *res = NULL;
  p2q_sql_ident(&q, cfg->pg_schema);
  if (p2q_capture_install_sql(r, cfg->pg_schema, (int)cfg->max_attempts, &install) ||
      p2q_capture_check_sql(r, &check) || p2q_sql_qualified(&qt, r->table)) {
    fprintf(stderr, "pg2qdrant: apply: rule %s: cannot generate SQL (bad table name or rule name)\n", r->name);
    goto out;
  }
  if (o->dry) {
    printf("-- rule %s\n%s", r->name, install.data);
    if (o->no_backfill) printf("-- (--no-backfill: existing rows are not enqueued)\n\n");
    else printf("-- then the existing rows are enqueued in key-range chunks of %ld, as `backfill %s` does\n\n",
                o->chunk, r->name);
    rc = 0;
    goto out;
  }
  /* the applied definition, if any */
  p2q_buf_printf(&sql, "SELECT definition FROM %s.sync_outbox_rule WHERE name = $1", q.data);
  const char *p1[] = {r->name};
  if (!(res = query(conn, sql.data, 1, p1, err, sizeof err))) goto report;
  int is_new = PQntuples(res) == 0;
  char *prev = is_new ? NULL : strdup(PQgetvalue(res, 0, 0));
  PQclear(res);
  res = NULL;
  if (check_columns(conn, r, qt.data, is_new, &sig)) { free(prev); goto out; }
  char fp[41];
  if (events_fingerprint(cfg, r, sig, fp)) { snprintf(err, sizeof err, "cannot write the rule's definition"); free(prev); goto report; }
  /* def = what decides "unchanged" (as always: the SQL and the table signature); the fingerprint
     line is recorded after it and read only to tell a code-only change */
  p2q_buf_printf(&def, "%s-- table signature %s\n", install.data, sig);
  size_t core = def.len;
  p2q_buf_printf(&def, "-- events fingerprint %s\n", fp);
  /* unchanged = same definition and table signature, and the triggers still on the table as this
     apply would install them (a dropped and recreated table lost them; another AFTER INSERT or
     DELETE trigger created since moves them back to the row trigger: p2q_capture_installed_sql) */
  int same = 0, has_trigger = 0, complete = 0, refresh = 0, parts = 0;
  if (prev) {
    p2q_buf_reset(&trig);
    if (p2q_capture_installed_sql(r, cfg->pg_schema, &trig)) { snprintf(err, sizeof err, "out of memory"); free(prev); goto report; }
    res = query(conn, trig.data, 0, NULL, err, sizeof err);
    has_trigger = res && PQntuples(res) == 1;
    complete = has_trigger && !strcmp(PQgetvalue(res, 0, 0), "t"); /* the gate's pinned function too */
    parts = has_trigger && !strcmp(PQgetvalue(res, 0, 1), "t");
    PQclear(res);
    res = NULL;
    const char *pfp0 = recorded_fingerprint(prev);
    size_t plen = pfp0 ? (size_t)(pfp0 - prev) - (sizeof "-- events fingerprint " - 1) : strlen(prev);
    same = complete && plen == core && !memcmp(prev, def.data, core);
    /* unchanged, but its fingerprint not recorded yet (an older build) or another one */
    refresh = same && (!pfp0 || strncmp(pfp0, fp, 40) != 0);
  }
  int changed_table = prev && !same && !strncmp(prev, install.data, install.len) &&
                      !strncmp(prev + install.len, "-- table signature ", 19);
  /* same events, new trigger code, on a table whose trigger has captured every change since */
  const char *pfp = prev && !same && has_trigger ? recorded_fingerprint(prev) : NULL;
  int code_only = pfp && !strncmp(pfp, fp, 40);
  free(prev);
  if (same) {
    if (refresh && record_rule(conn, q.data, r->name, def.data, qt.data, err, sizeof err)) goto report;
    int added = truncate_triggers(conn, cfg, r, check.data, err, sizeof err);
    if (added < 0) goto report;
    /* partitions created since: into the functions' fast test (capture_relid.c), nothing enqueued */
    if (!parts) { /* only the functions: no trigger DDL, no table lock (rv15b M1) */
      p2q_buf_reset(&trig);
      if (p2q_capture_functions_sql(r, cfg->pg_schema, (int)cfg->max_attempts, &trig)) {
        snprintf(err, sizeof err, "cannot generate SQL");
        goto report;
      }
      if (install_rule(conn, check.data, trig.data, err, sizeof err)) goto report;
    }
    const char *fn = parts ? "" : "; its functions re-installed with the table's partitions";
    if (added) printf("rule %s: unchanged; TRUNCATE trigger added to %d new partition(s)%s\n", r->name, added, fn);
    else printf("rule %s: unchanged%s\n", r->name, fn);
    rc = 0;
    goto out;
  }

  if (install_rule(conn, check.data, install.data, err, sizeof err)) goto report;

  long long done = 0, chunks = 0;
  if (!o->no_backfill && !code_only) {
    char label[128];
    snprintf(label, sizeof label, "apply %s", r->name);
    if (p2q_backfill_chunks(conn, cfg, r, NULL, o->chunk, label, o->tty, &done, &chunks, err, sizeof err)) {
      fprintf(stderr, "pg2qdrant: apply: rule %s: trigger installed, loading the existing rows failed after "
                      "%lld row(s): %s (run apply again)\n", r->name, done, err);
      goto out;
    }
  }
  if (record_rule(conn, q.data, r->name, def.data, qt.data, err, sizeof err)) goto report;
  if (code_only)
    printf("rule %s: trigger re-installed on %s (pg2qdrant's trigger code changed, the events it writes did not:"
           " nothing enqueued)\n", r->name, r->table);
  else if (o->reindexing)
    printf("rule %s: trigger installed on %s; existing rows are loaded by the re-embedding\n", r->name, r->table);
  else if (o->no_backfill)
    printf("rule %s: trigger installed on %s%s; existing rows not enqueued (--no-backfill: run `backfill %s`)\n",
           r->name, r->table, changed_table ? " (table changed since the last apply)" : "", r->name);
  else
    printf("rule %s: trigger installed on %s%s, %lld existing row(s) enqueued in %lld chunk(s)\n", r->name,
           r->table, changed_table ? " (table changed since the last apply)" : "", done, chunks);
  if (done >= 10000) { /* a large backlog appeared at once: give the planner real numbers */
    p2q_buf_reset(&sql);
    p2q_buf_printf(&sql, "ANALYZE %s.sync_outbox", q.data);
    if (p2q_admin_exec(conn, sql.data, err, sizeof err)) fprintf(stderr, "pg2qdrant: apply: analyze: %s\n", err);
  }
  rc = 0;
  goto out;
report:
  trim(err);
  fprintf(stderr, "pg2qdrant: apply: rule %s: %s\n", r->name, err);
out:
  PQclear(res);
  free(sig);
  p2q_buf_free(&install);
  p2q_buf_free(&check);
  p2q_buf_free(&q);
  p2q_buf_free(&qt);
  p2q_buf_free(&sql);
  p2q_buf_free(&def);
  p2q_buf_free(&trig);
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

/* Once every rule's trigger is this build's (its INSERTs notify, capture.h), the outbox's own
   NOTIFY trigger goes (sql/functions.sql, sync_outbox_notify_settle; kept while any older trigger
   function writes the outbox). A failure (a role that does not own the outbox, a writer holding
   it for 2 s) leaves it in place: redundant wake-ups, no lost one; init or apply settles it later. */
static void settle_sql(p2q_buf_t *sql, const p2q_config_t *cfg) {
  p2q_buf_puts(sql, "SELECT ");
  p2q_sql_ident(sql, cfg->pg_schema);
  p2q_buf_puts(sql, ".sync_outbox_notify_settle()");
}

static void settle_notify(PGconn *conn, const p2q_config_t *cfg) {
  p2q_buf_t sql = P2Q_BUF_INIT;
  char err[1024];
  settle_sql(&sql, cfg);
  if (p2q_buf_error(&sql) || p2q_admin_exec(conn, sql.data, err, sizeof err))
    fprintf(stderr, "pg2qdrant: apply: the outbox's NOTIFY trigger stays (redundant wake-ups): %s\n",
            p2q_buf_error(&sql) ? "out of memory" : err);
  p2q_buf_free(&sql);
}

/* The DDL guard (capture.h) where apply runs as a superuser; otherwise one line saying what
   happens instead. */
static int install_guard(PGconn *conn, const p2q_config_t *cfg) {
  char err[1024] = "out of memory";
  PGresult *res = PQexec(conn, "SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) current_user");
  int super = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 && !strcmp(PQgetvalue(res, 0, 0), "t");
  PQclear(res);
  if (!super) {
    printf("ddl guard: not installed (event triggers need a superuser): an ALTER TABLE that removes a rule's "
           "key, vector or text column is not refused; the rule's events are dead-lettered with the reason\n");
    return 0;
  }
  p2q_buf_t sql = P2Q_BUF_INIT;
  int rc = 0;
  if (p2q_capture_guard_sql(cfg->pg_schema, &sql) || p2q_admin_exec(conn, "BEGIN", err, sizeof err) ||
      p2q_admin_exec(conn, sql.data, err, sizeof err) || p2q_admin_exec(conn, "COMMIT", err, sizeof err)) {
    rollback(conn);
    fprintf(stderr, "pg2qdrant: apply: ddl guard: %s\n", err);
    rc = 1;
  }
  p2q_buf_free(&sql);
  return rc;
}

int p2q_cmd_apply(const p2q_config_t *cfg, int argc, char **argv) {
  apply_opts_t o = {.chunk = 1000, .tty = isatty(STDOUT_FILENO)};
  for (int i = 0; i < argc; i++) {
    if (!strcmp(argv[i], "--dry-run")) o.dry = 1;
    else if (!strcmp(argv[i], "--no-backfill")) o.no_backfill = 1;
    else if (!strcmp(argv[i], "--chunk") && i + 1 < argc) {
      char *end;
      o.chunk = strtol(argv[++i], &end, 10);
      if (*end || o.chunk < 1 || o.chunk > 1000000) { fprintf(stderr, "pg2qdrant: apply: --chunk must be 1..1000000\n"); return 2; }
    } else {
      fprintf(stderr, "usage: pg2qdrant apply [--dry-run] [--no-backfill] [--chunk 1000]\n");
      return 2;
    }
  }
  if (cfg->n_rules == 0) { fprintf(stderr, "pg2qdrant: apply: no [rule.NAME] section in %s\n", cfg->path); return 2; }
  if (o.dry) {
    int rc = 0;
    if (ensure_collections(cfg, 1, NULL)) /* what would be created or differs; Qdrant may be unreachable */
      fprintf(stderr, "pg2qdrant: apply: --dry-run: collections not compared (see above)\n");
    for (int i = 0; i < cfg->n_rules; i++) rc |= apply_rule(NULL, cfg, &cfg->rules[i], &o);
    p2q_buf_t q = P2Q_BUF_INIT;
    settle_sql(&q, cfg);
    printf("-- then the outbox's own NOTIFY trigger goes if no older trigger function needs it\n%s;\n",
           p2q_buf_str(&q));
    p2q_buf_free(&q);
    return rc;
  }
  char err[1024];
  PGconn *conn = p2q_admin_connect(cfg, "pg2qdrant/apply", err, sizeof err);
  if (!conn) { fprintf(stderr, "pg2qdrant: %s\n", err); return 1; }
  if (p2q_outbox_install(conn, cfg->pg_schema, err, sizeof err) < 0 ||
      p2q_backfill_pin_session(conn, err, sizeof err)) {
    fprintf(stderr, "pg2qdrant: apply: outbox schema: %s\n", err);
    PQfinish(conn);
    return 1;
  }
  int *busy = calloc((size_t)cfg->n_rules, sizeof *busy), rc = busy ? 0 : 1;
  if (busy && p2q_reindex_sync(cfg, conn, 1, stdout, busy, err, sizeof err)) {
    fprintf(stderr, "pg2qdrant: apply: %s\n", err);
    rc = 1;
  }
  if (!rc) rc = ensure_collections(cfg, 0, busy);
  for (int i = 0; !rc && i < cfg->n_rules; i++) {
    apply_opts_t ro = o; /* a rule being re-embedded is loaded by its job (into both versions) */
    if (busy[i]) ro.no_backfill = ro.reindexing = 1;
    rc |= apply_rule(conn, cfg, &cfg->rules[i], &ro);
  }
  free(busy);
  if (!rc) rc |= drop_removed(conn, cfg);
  settle_notify(conn, cfg);
  if (!rc) rc |= install_guard(conn, cfg);
  PQfinish(conn);
  return rc;
}

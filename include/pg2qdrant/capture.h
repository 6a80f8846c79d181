/*
 * capture.h — SQL generation for change capture (pure: no I/O, unit-tested).
 *
 * For every [rule.NAME] pg2qdrant installs, in the outbox schema, a trigger function
 * `p2q_capture_NAME()` and, on the source table, an AFTER INSERT OR UPDATE OR DELETE row trigger
 * `p2q_NAME` (plus a BEFORE TRUNCATE statement trigger `p2q_NAME_truncate` unless
 * on_truncate = ignore). Where it fits (a plain table without another AFTER INSERT or DELETE trigger, no
 * temp_file_limit: decided when the install script runs),
 * INSERTs and DELETEs are captured by statement triggers `p2q_NAME_insert` / `p2q_NAME_delete`
 * instead, whose functions `p2q_insert_NAME()` / `p2q_delete_NAME()` write the same events from
 * the transition table (capture_stmt.c), and `p2q_NAME` fires on UPDATE only. For a rule without
 * a filter `p2q_capture_NAME()` is an unpinned gate that returns from an UPDATE of unwatched
 * columns and hands every other row to the pinned `p2q_pinned_NAME(tg_op, new, old)`
 * (capture_body.c p2q_capture_gate_body). The functions write one event per change into
 * sync_outbox:
 *   INSERT matching the filter → upsert;  DELETE of a matching row → delete;
 *   UPDATE → upsert when a watched column changed (or the row starts matching the filter),
 *            delete when the row stops matching, a delete of the old key when the key changed;
 *   TRUNCATE → one delete per matching row (the rows are still readable in BEFORE TRUNCATE).
 * Every identifier from the config is quoted; `filter` and `routing_key` are SQL expressions
 * written by the operator and are validated by `apply` with a prepared statement (which refuses
 * more than one command) under the trigger's search_path. Backfill SQL enqueues the existing rows
 * with the same snapshot text.
 *
 * Nothing a trigger does may fail the writer's statement, whatever DDL happened since `apply`:
 * the row trigger reads the columns by reference in an exception block (fast path) and, if that
 * raised (a column dropped or renamed, a filter failing), reads them by name from row_to_json
 * (slow path): a missing payload column is simply absent. An event that cannot be applied (key
 * NULL or gone; vector/text column gone on an upsert; filter failing) is written born dead
 * (max_attempts 0, last_error = the reason); sync_outbox_recover moves it to the dead letters.
 * Statement-level SQL (backfill, reconcile --fix, TRUNCATE) always reads by name. The snapshot
 * text is the same on every path. Per rule, `p2q_drift_NAME()` says how the table no longer fits.
 * A real[] vector of a snapshot built by one json_build_object is sent unprinted (sync_outbox.vec,
 * its place in the snapshot null) by the trigger's fast path and by backfill; the daemon prints it
 * back exactly (vector_bin.h), so the snapshot text an event stands for is the same either way.
 */
#ifndef P2Q_CAPTURE_H
#define P2Q_CAPTURE_H

#include "pg2qdrant/buf.h"
#include "pg2qdrant/config.h"

/* The format of the events a rule trigger writes. Bump it when, for the same rule and table, the
 * events change (snapshot text, ops, keys, which changes make an event): `apply` then enqueues
 * every rule's rows once more. A change of the trigger's code that keeps the events the same
 * (speed, robustness) needs no bump: `apply` re-installs the trigger without enqueueing. */
#define P2Q_CAPTURE_FORMAT 1

/*
 * Wake-ups. Every statement that writes an event NOTIFYs this channel itself, the event type as
 * payload (a hint to wake that type's workers, never the data; one notification per transaction
 * and payload: PostgreSQL folds the rest), in the (sub)transaction that writes the event, so no
 * event is written without its wake-up: the row trigger right before each event's INSERT (a
 * plpgsql assignment, outside its exception block), the INSERT and DELETE statement triggers once
 * after their events' INSERT … SELECT wrote any, the generated INSERT ... SELECTs (TRUNCATE
 * trigger, backfill and apply's load, reconcile --fix) in their event_type column, `retry --dead`
 * and `bench`'s reload after writing. sync_outbox_notify, the outbox's own row trigger, did it for
 * every writer before (issue 11: PostgreSQL prepares its WHEN clause again for each event, a
 * statement of its own); sync_outbox_notify_settle keeps it only while a trigger function of an
 * older pg2qdrant writes the outbox, or before any rule is applied. Anything else that writes
 * sync_outbox must notify too, or wait for the sweep.
 */
#define P2Q_NOTIFY_CHANNEL "sync_outbox_insert"

/* Append ident as a quoted SQL identifier ("a""b"). */
void p2q_sql_ident(p2q_buf_t *b, const char *ident);
/* Append s as a SQL string literal ('it''s'; E'...' when it holds a backslash). */
void p2q_sql_literal(p2q_buf_t *b, const char *s);

#define P2Q_SQL_TAG_MAX 32
/* Occurrences of needle in s, overlapping ones included (a dollar quote ends at the first). */
size_t p2q_sql_count(const char *s, const char *needle);
/*
 * The one dollar-quote tag sequence of every SQL generator (capture.c's functions, admin.c's
 * outbox scripts): the first of $p2q$, $p2q_1$, $p2q_2$, … that fits(tag, arg) accepts, within
 * `tries` candidates (a candidate is rejected only where it occurs in the text, so the text's
 * length bounds the tries). 0, or P2Q_EINVAL when none fits.
 */
int p2q_sql_dollar_tag(char tag[P2Q_SQL_TAG_MAX], size_t tries, int (*fits)(const char *tag, void *arg),
                       void *arg);
/* Append body dollar-quoted with the first tag of that sequence that occurs exactly twice in
   tag + body + tag: whatever the body holds (a schema, rule or column name, a filter), it can
   never end the quote early. 0 or an error. */
int p2q_sql_dollar_quote(p2q_buf_t *out, const char *body);

/*
 * Parse "schema.table", "table" (schema public) or quoted forms ("My Schema"."T") into unquoted
 * parts (malloc'd). Returns 0 or P2Q_EINVAL.
 */
int p2q_sql_parse_qualified(const char *text, char **schema, char **name);
/* Append the quoted form of a qualified name given as config text. */
int p2q_sql_qualified(p2q_buf_t *b, const char *text);

/* Columns referenced by a rule's `text`: "{a} {b}" placeholders, or a comma-separated list. */
int p2q_template_columns(const char *text, p2q_strlist_t *out);
void p2q_strlist_free(p2q_strlist_t *l);
/* Append a copy of s[0..n) unless the list already holds it. 0 or P2Q_ENOMEM. */
int p2q_strlist_add(p2q_strlist_t *l, const char *s, size_t n);

/* The full install script for one rule: function, row trigger, truncate trigger. */
int p2q_capture_install_sql(const p2q_rule_config_t *rule, const char *schema, int max_attempts,
                            p2q_buf_t *out);
/* Only its trigger functions (CREATE OR REPLACE, and the DO blocks that write the table's oid and
   partitions into them): no trigger DDL, so no table lock. For an unchanged rule whose functions'
   fast test lacks partitions created since (rv15b M1). */
int p2q_capture_functions_sql(const p2q_rule_config_t *rule, const char *schema, int max_attempts,
                              p2q_buf_t *out);
/* A DO statement giving every relation a TRUNCATE of which must be captured its BEFORE TRUNCATE
   trigger `p2q_NAME_truncate` where it lacks it: the table, or each leaf partition of a
   partitioned table (partitions created or attached since the last `apply`). */
int p2q_capture_truncate_triggers_sql(const p2q_rule_config_t *rule, const char *schema, p2q_buf_t *out);
/* SELECT count(*) of those relations lacking the trigger. */
int p2q_capture_truncate_missing_sql(const p2q_rule_config_t *rule, p2q_buf_t *out);
/* Drop the triggers and function of a rule installed earlier on `table`. */
int p2q_capture_drop_sql(const char *rule_name, const char *table, const char *schema, p2q_buf_t *out);
/*
 * INSERT … SELECT enqueuing every row of the rule's table that matches its filter (and
 * `extra_where`, an SQL condition over the row, when not NULL) as `op` ("upsert" or "delete").
 */
int p2q_capture_backfill_sql(const p2q_rule_config_t *rule, const char *schema, int max_attempts,
                             const char *op, const char *extra_where, p2q_buf_t *out);
/* The rule's snapshot expression (jsonb, exactly what the trigger captures) over alias `ref`. */
int p2q_capture_snapshot_expr(const p2q_rule_config_t *rule, const char *ref, p2q_buf_t *out);
/* The rule's row-key expression (jsonb object of the key columns) over alias `ref`. */
int p2q_capture_key_expr(const p2q_rule_config_t *rule, const char *ref, p2q_buf_t *out);
/*
 * "INSERT INTO outbox … SELECT … FROM <source> AS r": one `op` event per row of `source`, an SQL
 * relation with the table's columns (a CTE name or a parenthesised subquery). The caller appends
 * WHERE / ORDER BY (over alias r). Used by backfill and reconcile --fix.
 */
int p2q_capture_enqueue_sql(const p2q_rule_config_t *rule, const char *schema, int max_attempts,
                            const char *op, const char *source, p2q_buf_t *out);
/* The same events with the columns read by reference: the same text, about 1.6× faster per
   row with a 384-float vector, but it fails with undefined_column (42703) once a column the rule
   names is gone; callers then fall back to p2q_capture_enqueue_sql. */
int p2q_capture_enqueue_fast_sql(const p2q_rule_config_t *rule, const char *schema, int max_attempts,
                                 const char *op, const char *source, p2q_buf_t *out);
/* The same by reference, the vector sent unprinted as the row trigger sends it (sync_outbox.vec)
   where the rule's snapshot allows it: for a vector column the caller found to be a real[]
   (checked again per row; a type that has no assignment cast to real[] fails the statement with
   42804, and callers then fall back to p2q_capture_enqueue_sql). */
int p2q_capture_enqueue_vec_sql(const p2q_rule_config_t *rule, const char *schema, int max_attempts,
                                const char *op, const char *source, p2q_buf_t *out);
/* SELECT that checks the rule's key, filter and routing_key expressions against the table
   (LIMIT 0); `apply` prepares it under the trigger's search_path and role. */
int p2q_capture_check_sql(const p2q_rule_config_t *rule, p2q_buf_t *out);
/* "(VALUES ('id', 'key', true), …) AS c(col, used_as, breaks)": every column the rule names,
   what it is used as (key, vector_column, text, columns, watch) and whether its absence makes
   the rule's events unappliable (breaks). */
int p2q_capture_columns_sql(const p2q_rule_config_t *rule, p2q_buf_t *out);
/*
 * CREATE FUNCTION <schema>."p2q_drift_NAME"() RETURNS TABLE (item text, used_as text,
 * breaks boolean): one row per way the table no longer fits the rule — a named column gone
 * (dropped or renamed), the filter/routing_key no longer valid (item = the error), the table or
 * the trigger gone. Empty: no drift. breaks = the rule's events are dead-lettered (key, vector,
 * text, filter, table, trigger); otherwise snapshots just lack the column. Installed by `apply`
 * with the trigger; cheap (catalog lookups and one LIMIT 0 plan), meant for status, /readyz and
 * a metric.
 */
/* "SELECT <complete> …": one row when the rule's capture triggers are on its table as `apply` would
   install them now (the row trigger, and the statement-level INSERT and DELETE triggers only while
   the table still fits them, see capture.c); none tells `apply` to install them again. <complete>
   (boolean) is false when the pinned function behind a rule's gate is gone (dropped by hand: the
   changes it would have written failed their statements, none was missed), or when the row
   trigger's function does not hold the table's oid (a restored dump): the code is installed
   again, nothing enqueued. A second column <partitions> (boolean) is false when a partition of
   the table is missing from the functions' fast test (capture_relid.c): installed again too. */
int p2q_capture_installed_sql(const p2q_rule_config_t *rule, const char *schema, p2q_buf_t *out);
/* A boolean SQL expression: every guarded function of rule in schema lists the partitions of rel
   (a regclass SQL expression) exactly as an install would write them now (capture_relid.c); false
   once a partition was attached, detached, renamed, moved or dropped since apply. */
void p2q_capture_parts_current_sql(p2q_buf_t *out, const p2q_rule_config_t *rule, const char *schema, const char *rel);
int p2q_capture_drift_sql(const p2q_rule_config_t *rule, const char *schema, p2q_buf_t *out);
/*
 * The DDL guard of an outbox schema (needs a superuser: event triggers are superuser-only):
 * an event trigger on ALTER TABLE that calls the drift function of every rule on the altered
 * table and refuses the command when it would make a rule impossible (key, vector or text
 * column, filter or routing_key), naming the rule; a dropped payload column only warns.
 * `SET pg2qdrant.allow_ddl = on` lets such a command through (the rule's events are then
 * dead-lettered with the reason).
 */
int p2q_capture_guard_sql(const char *schema, p2q_buf_t *out);

#endif

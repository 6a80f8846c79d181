/*
 * capture_body.h — internal to capture.c / capture_body.c: the pieces of a rule's capture SQL.
 */
#ifndef P2Q_CAPTURE_BODY_H
#define P2Q_CAPTURE_BODY_H

#include "pg2qdrant/capture.h"

/* json_build_object / jsonb_build_object take at most 100 arguments: more columns are built in
   parts of this many and merged through jsonb (never in an unpinned statement function). */
#define P2Q_CAPTURE_PAIRS_PER_CALL 40
/* Columns of the snapshot: `columns` plus the vector and text columns (empty: the whole row). */
int p2q_capture_snapshot_columns(const p2q_rule_config_t *r, p2q_strlist_t *out);
/* The columns an upsert cannot do without besides the key: the vector column or the text's. */
int p2q_capture_needed_columns(const p2q_rule_config_t *r, p2q_strlist_t *out);
/* jsonb_build_object('a', ref."a", …) over cols (a row key). */
void p2q_capture_json_object(p2q_buf_t *b, const char *ref, const p2q_strlist_t *cols);
/* Aggregate over `json_each(<row as json>) AS e`: the snapshot of snap's columns read by name. */
void p2q_capture_named_snapshot(p2q_buf_t *b, const p2q_strlist_t *snap);
/* The row trigger function's body (between the dollar quotes); watch: the change-test columns
   (empty: the whole row), need: what an upsert cannot do without; gated: the body of the pinned
   function behind p2q_capture_gate_body (NEW, OLD and TG_OP its parameters; no early return of
   an unchanged UPDATE, the gate's). 0 or an error. */
int p2q_capture_body(p2q_buf_t *b, const p2q_rule_config_t *r, const char *schema, int max_attempts,
                     const p2q_strlist_t *snap, const p2q_strlist_t *watch, const p2q_strlist_t *need, int gated);
/* The unpinned trigger function of a rule without a filter: returns at once from an UPDATE that
   left the watched and key columns binary-identical, hands everything else to pinned (a
   schema-qualified function name) as pinned(TG_OP, NEW, OLD). 0 or an error. */
int p2q_capture_gate_body(p2q_buf_t *b, const p2q_rule_config_t *r, const char *schema, int max_attempts,
                          const p2q_strlist_t *watch, const char *pinned);
/* capture_relid.c: the first statement of every trigger function of kind ("row", "insert",
   "delete", "truncate"), which writes the rows to sync_outbox_dead and returns (a WARNING, no
   event) when the trigger fires on a table that is neither the rule's nor a partition of it;
   P2Q_CAPTURE_RELID_MARK stands for the table's oid until p2q_capture_relid_install(). */
#define P2Q_CAPTURE_RELID_MARK "\x02"
#define P2Q_CAPTURE_PINNED_PREFIX "p2q_pinned_" /* the pinned function behind a rule's gate: p2q_pinned_<rule> */
#define P2Q_CAPTURE_PARTS_MARK "\x03" /* the partitions' test (capture_relid.c), once a guard */
void p2q_capture_relid_guard(p2q_buf_t *b, const p2q_rule_config_t *r, const char *schema, const char *kind,
                             int max_attempts);
/* Closes "pg_catalog.replace(pg_catalog.replace(<function text>": the table's oid in place of
   P2Q_CAPTURE_RELID_MARK, its partitions' test in place of P2Q_CAPTURE_PARTS_MARK, both found when
   the script runs (qtable: p2q_sql_qualified). */
void p2q_capture_relid_splice(p2q_buf_t *b, const char *qtable);
/* A boolean SQL expression: the partitions' test in prosrc (a function's text) is the one an install
   would write now for rel (a regclass expression). */
void p2q_capture_relid_parts_current(p2q_buf_t *b, const char *prosrc, const char *rel);
/* Append create (a CREATE FUNCTION and its ";\n"), through a DO block that puts r's table oid in
   place of every mark when it holds one. 0 or an error. */
int p2q_capture_relid_install(p2q_buf_t *out, const p2q_buf_t *create, const p2q_rule_config_t *r);
/* What p2q_capture_insert_events() builds. */
typedef struct {
  const char *schema;
  int max_attempts;
  const char *op;                          /* "upsert" or "delete" */
  const p2q_strlist_t *snap, *need;        /* p2q_capture_snapshot_columns, _needed_columns */
  const char *source;                      /* the FROM item, aliased r */
  int by_name;                             /* columns read by name (DDL-proof) or by reference */
  int vec;                                 /* by reference: a real[] vector sent unprinted */
  int vec_checked;                         /* vec: the caller found the column a real[] (no per-row test) */
  int quiet;                               /* no pg_notify per event (the caller notifies) */
  int select_only;                         /* "SELECT … FROM <source> AS r" without "INSERT INTO …" */
  int no_routing;                          /* routing_key NULL (TRUNCATE's last resort: it raised) */
  int qualified;                           /* by reference: every function and type named in pg_catalog */
} p2q_capture_events_t;
/* "INSERT INTO <schema>.sync_outbox … SELECT … FROM <source> AS r" (no WHERE). */
void p2q_capture_insert_events(p2q_buf_t *b, const p2q_rule_config_t *r, const p2q_capture_events_t *ev);
/* pg_catalog.pg_notify(P2Q_NOTIFY_CHANNEL, '<the rule's event type>') */
void p2q_capture_notify_call(p2q_buf_t *b, const p2q_rule_config_t *r);
/* The row function's DECLARE section; bin: p2q_capture_binary_vector(); q: only the variables of
   the unpinned statement functions, their types named in pg_catalog. */
void p2q_capture_declare(p2q_buf_t *b, int bin, int q);
/* Is the vector sent unprinted (migration 008) by the fast paths? */
int p2q_capture_binary_vector(const p2q_rule_config_t *r, const p2q_strlist_t *snap);
/* The row trigger's INSERT path over NEW (fast, slow, event) as statements, without RETURN; the
   filter and routing_key read NEW from nsrc: "NEW", or a FROM item yielding it as one typed row.
   guard not NULL: the fast path only when it holds, else (or when it raised) the statement
   delegate instead of the slow path (an unpinned statement function, capture_stmt.c: then every
   function, operator and type is named in pg_catalog; no filter, no routing_key). */
void p2q_capture_insert_row(p2q_buf_t *b, const p2q_rule_config_t *r, const char *schema, int max_attempts,
                            const p2q_strlist_t *snap, const p2q_strlist_t *watch, const p2q_strlist_t *need,
                            const char *nsrc, const char *guard, const char *delegate);
/* The row trigger's DELETE path over OLD (fast, slow, event) as statements, without RETURN; the
   filter and routing_key read OLD from osrc: "OLD", or a FROM item yielding it as one typed row.
   guard, delegate: as for p2q_capture_insert_row. */
void p2q_capture_delete_row(p2q_buf_t *b, const p2q_rule_config_t *r, const char *schema, int max_attempts,
                            const p2q_strlist_t *snap, const p2q_strlist_t *watch, const p2q_strlist_t *need,
                            const char *osrc, const char *guard, const char *delegate);
/* The statement-level capture (capture_stmt.c): the body of the INSERT (op "upsert") or DELETE
   (op "delete") statement trigger's function. pinned NULL: the function has every pinned setting;
   else it has only the search_path: the statement's rows are captured there when guard (an SQL
   condition over NEW or OLD: the column types `apply` found, p2q_capture_unpinned_guard) holds, and
   go to pinned(tg_op, new, old) (the rule's pinned row function, schema-qualified) when not. */
int p2q_capture_stmt_body(p2q_buf_t *b, const p2q_rule_config_t *r, const char *schema, int max_attempts,
                          const p2q_strlist_t *snap, const p2q_strlist_t *watch, const p2q_strlist_t *need,
                          const char *op, const char *pinned, const char *guard);
/* Can the statement functions of rule r run without the output pins (a rule without filter and
   routing_key, with a `columns` list)? Then *cond gets an SQL condition over pg_attribute a of
   the table that holds for each of the n columns its events read when that column has a
   setting-free type (capture_stmt.c), and *n that number; returns 0 or an error, *n = 0 when it
   cannot. */
int p2q_capture_unpinned_guard(const p2q_rule_config_t *r, const p2q_strlist_t *snap, int upsert, p2q_buf_t *cond,
                              int *n);

#endif

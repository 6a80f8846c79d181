/*
 * capture_body.h — internal to capture.c / capture_body.c: the pieces of a rule's capture SQL.
 */
#ifndef P2Q_CAPTURE_BODY_H
#define P2Q_CAPTURE_BODY_H

#include "pg2qdrant/capture.h"

/* Columns of the snapshot: `columns` plus the vector and text columns (empty: the whole row). */
int p2q_capture_snapshot_columns(const p2q_rule_config_t *r, p2q_strlist_t *out);
/* The columns an upsert cannot do without besides the key: the vector column or the text's. */
int p2q_capture_needed_columns(const p2q_rule_config_t *r, p2q_strlist_t *out);
/* jsonb_build_object('a', ref."a", …) over cols (a row key). */
void p2q_capture_json_object(p2q_buf_t *b, const char *ref, const p2q_strlist_t *cols);
/* Aggregate over `json_each(<row as json>) AS e`: the snapshot of snap's columns read by name. */
void p2q_capture_named_snapshot(p2q_buf_t *b, const p2q_strlist_t *snap);
/* The row trigger function's body (between the dollar quotes); watch: the change-test columns
   (empty: the whole row), need: what an upsert cannot do without. 0 or an error. */
int p2q_capture_body(p2q_buf_t *b, const p2q_rule_config_t *r, const char *schema, int max_attempts,
                     const p2q_strlist_t *snap, const p2q_strlist_t *watch, const p2q_strlist_t *need);
/* "INSERT INTO <schema>.sync_outbox … SELECT … FROM <source> AS r" (no WHERE), by name or by
   reference. */
void p2q_capture_insert_events(p2q_buf_t *b, const p2q_rule_config_t *r, const char *schema,
                               int max_attempts, const char *op, const p2q_strlist_t *snap,
                               const p2q_strlist_t *need, const char *source, int by_name, int vec);

#endif

/*
 * drift.h — rules whose source table no longer fits them, as the daemon sees it at run time.
 *
 * `apply` installs `<schema>."p2q_drift_<rule>"()` per rule (capture.h): one row per way the
 * table no longer fits (a named column gone, the filter/routing_key failing, the table or the
 * trigger gone), `breaks` when the rule's events are dead-lettered. The daemon asks on its sweep
 * (p2q_drift_check, two small statements on the LISTEN connection, at most one check
 * outstanding), keeps the last answer, logs each change once (`rule_drift` WARN when a row
 * appears, `rule_drift_resolved` INFO when it goes), and the operator surface reads it:
 * a breaking row is a /readyz 503 reason; a dropped payload column is listed in /readyz's 200
 * body and /status; every row is a pg2qdrant_rule_drift{rule,column,kind} series.
 *
 * Loop thread only. Rules never applied have no drift function: nothing is said about them
 * (as `status`).
 */
#ifndef P2Q_DRIFT_H
#define P2Q_DRIFT_H

#include "pg2qdrant/buf.h"
#include "pg2qdrant/config.h"
#include "pg2qdrant/pg.h"

typedef struct {
  char *rule, *table; /* the rule's name and its table (config text) */
  char *item;         /* the column, the table, the trigger, or the filter's error */
  char *used_as;      /* key, vector_column, text, columns, watch, filter or routing_key, table, trigger */
  int breaks;         /* the rule's events are dead-lettered */
} p2q_drift_item_t;

typedef struct p2q_drift_s p2q_drift_t;

int  p2q_drift_new(p2q_drift_t **out);
void p2q_drift_free(p2q_drift_t *d);
/* Start a check of cfg's rules on pg (schema cfg->pg_schema); no-op while one is outstanding or
   pg is not connected. cfg must outlive the check (the daemon keeps every loaded config). */
void p2q_drift_check(p2q_drift_t *d, p2q_pg_t *pg, const p2q_config_t *cfg);
/* The last answer (NULL d: none). */
int  p2q_drift_count(const p2q_drift_t *d);
const p2q_drift_item_t *p2q_drift_item(const p2q_drift_t *d, int i);
/* Append one line per row with breaks == breaking ("drift: rule R: …\n"); returns how many. */
int  p2q_drift_describe(const p2q_drift_t *d, int breaking, p2q_buf_t *out);
/* The one wording of a drift row (status, /readyz): "rule R: column \"c\" (columns) is not in T:
   snapshots lack it" and the like, without a newline. */
void p2q_drift_line(p2q_buf_t *out, const char *rule, const char *table, const char *item,
                    const char *used_as, int breaks);

/* Append "schema"."p2q_drift_RULE"() (quoted). */
void p2q_drift_function_ref(p2q_buf_t *out, const char *schema, const char *rule);
/* The CLI's report (`status`, on a synchronous connection): each applied rule's drift as text
   lines "drift: rule R: …" or a JSON array of {rule, item, used_as, breaks} appended to out.
   Returns how many were found. */
int p2q_drift_report(PGconn *conn, const p2q_config_t *cfg, int json, p2q_buf_t *out);

#endif

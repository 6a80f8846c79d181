/*
 * reconcile.h — the pure parts of `pg2qdrant reconcile` (cmd_reconcile.c): point-id text,
 * row keys derived from points, the per-point verdict and the per-page missing check.
 * No I/O; unit-tested in tests/unit/test_reconcile.c.
 */
#ifndef P2Q_RECONCILE_H
#define P2Q_RECONCILE_H

#include <cjson/cJSON.h>

#include "pg2qdrant/buf.h"
#include "pg2qdrant/config.h"
#include "pg2qdrant/points.h"

typedef enum { P2Q_REC_OK = 0, P2Q_REC_MISSING, P2Q_REC_ORPHAN, P2Q_REC_STALE } p2q_rec_kind_t;

/* A Qdrant point id (number or UUID string) in p2q_point_id()'s form: digits, or a quoted
 * lowercase UUID. 0, P2Q_EINVAL, or P2Q_ERANGE for an integer ≥ 2^53 (cJSON reads doubles, so
 * its digits are not exact). */
int p2q_rec_id_text(const cJSON *id, char out[P2Q_POINT_ID_MAX]);

/* The row key a point stands for: its payload's `_pk`, or {"<key>": id} for an integer id of a
 * one-column key. Appends JSON to key and returns 1, or returns 0 (not derivable). */
int p2q_rec_point_key(const p2q_rule_config_t *rule, const cJSON *point, p2q_buf_t *key);

/*
 * Verdict for one point (id text, its payload) against the row its key names: row_key and
 * snapshot are PostgreSQL's jsonb text of the row's key and capture snapshot, or NULL when no
 * selected row has that key. ORPHAN: no row, or the row's point id is another one. STALE: the
 * payload differs from the one the daemon would build from the row now (`_hash` included, so a
 * changed vector column counts). OK otherwise.
 */
p2q_rec_kind_t p2q_rec_classify(const p2q_rule_config_t *rule, const char *point_id,
                                const cJSON *payload, const char *row_key, const char *snapshot);

/* missing[i] = 1 when want[i] is not among have[0..nhave) (ids in p2q_rec_id_text form).
 * Sorts `have` in place. 0 or P2Q_ENOMEM. */
int p2q_rec_mark_missing(char *const *want, int nwant, char **have, int nhave,
                         unsigned char *missing);

#endif

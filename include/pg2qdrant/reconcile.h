/*
 * reconcile.h — the pure parts of `pg2qdrant reconcile` (reconcile.c; the command is
 * cmd_reconcile.c): point-id text (exact, also for integer ids ≥ 2^53, read from the raw reply),
 * the row key a point claims, the verdict for a point at a row's own id (payload, then vector),
 * the vector comparison, the per-page missing check and the set of unresolved point ids.
 * No I/O; unit-tested in tests/unit/test_reconcile.c.
 */
#ifndef P2Q_RECONCILE_H
#define P2Q_RECONCILE_H

#include <cjson/cJSON.h>

#include "pg2qdrant/buf.h"
#include "pg2qdrant/config.h"
#include "pg2qdrant/json_scan.h"
#include "pg2qdrant/points.h"

typedef enum {
  P2Q_REC_OK = 0,
  P2Q_REC_MISSING,
  P2Q_REC_ORPHAN,
  P2Q_REC_STALE,        /* payload (or its `_hash`) differs from the row's */
  P2Q_REC_VECTOR_STALE  /* payload current, vector differs */
} p2q_rec_kind_t;

/* A Qdrant point id (number or UUID string) in p2q_point_id()'s form: digits, or a quoted
 * lowercase UUID. 0, P2Q_EINVAL, or P2Q_ERANGE for an integer ≥ 2^53 (cJSON reads doubles, so
 * its digits are not exact: use p2q_rec_id_span on the raw reply instead). */
int p2q_rec_id_text(const cJSON *id, char out[P2Q_POINT_ID_MAX]);

/* The same from the id's raw JSON text (exact for every u64). 0 or P2Q_EINVAL. */
int p2q_rec_id_span(p2q_span_t v, char out[P2Q_POINT_ID_MAX]);

/* The raw text spans of the point ids of a Qdrant reply, in order: `result.points[*].id` (scroll)
 * or `result[*].id` (retrieve). A point without an id gets an empty span. Returns the number of
 * points (at most max spans are written), or P2Q_EBADJSON. */
int p2q_rec_raw_ids(const char *body, size_t len, p2q_span_t *ids, int max);

/* How p2q_rec_point_key found the key. */
enum { P2Q_REC_KEY_NONE = 0, P2Q_REC_KEY_ID = 1, P2Q_REC_KEY_PK = 2 };

/* The row key a point (id in p2q_rec_id_span form, its payload) claims: for an integer id of a
 * one-column key, {"<key>": id} whatever the payload says (only that key maps to that id);
 * else the payload's `_pk` (to be checked by the caller: its point id must be this id). Appends
 * JSON to key and returns P2Q_REC_KEY_ID / P2Q_REC_KEY_PK, or P2Q_REC_KEY_NONE. */
int p2q_rec_point_key(const p2q_rule_config_t *rule, const char *point_id, const cJSON *payload,
                      p2q_buf_t *key);

/*
 * Verdict for a point at the id of a selected row (row_key and snapshot: PostgreSQL's jsonb text
 * of the row's key and capture snapshot). STALE: the payload differs from the one the daemon
 * would build from the row now (`_hash` included, so any change of the row counts; a lost `_pk`
 * or another row's payload too). VECTOR_STALE: the payload is current but `vector` (Qdrant's
 * "vector" member: an array, or an object of named vectors) differs from the row's vector
 * column, compared as p2q_rec_vector_equal does. `vector` NULL: not compared (text rules).
 */
p2q_rec_kind_t p2q_rec_check(const p2q_rule_config_t *rule, const cJSON *payload,
                             const cJSON *vector, const char *row_key, const char *snapshot);

/* Are two vectors (JSON arrays of numbers) the same as Qdrant stores them? Both are rounded to
 * float32; for Cosine (cosine != 0) `want` is normalised first (Qdrant normalises on write).
 * Equal when the dimensions match and every component differs by at most 1e-5 of the largest
 * component's magnitude (float32 rounding and normalisation order stay far below that). */
int p2q_rec_vector_equal(const cJSON *want, const cJSON *have, int cosine);

/* missing[i] = 1 when want[i] is not among have[0..nhave) (ids in p2q_rec_id_text form).
 * Sorts `have` in place. 0 or P2Q_ENOMEM. */
int p2q_rec_mark_missing(char *const *want, int nwant, char **have, int nhave,
                         unsigned char *missing);

/* A bounded set of point ids that claim no row (UUID ids whose payload lost `_pk`, or whose
 * `_pk` maps to another id), resolved by scanning the rows' ids: add while scrolling, sort, then
 * mark every row's id; the unmarked ones are orphans. */
typedef struct {
  char (*id)[P2Q_POINT_ID_MAX];
  unsigned char *owned;
  int n, cap;
} p2q_rec_idset_t;

int p2q_rec_idset_init(p2q_rec_idset_t *s, int cap);  /* 0 or P2Q_ENOMEM */
void p2q_rec_idset_free(p2q_rec_idset_t *s);
int p2q_rec_idset_add(p2q_rec_idset_t *s, const char *id); /* 0, or P2Q_EOVERFLOW when full */
void p2q_rec_idset_sort(p2q_rec_idset_t *s);                /* sorts, drops duplicates, clears marks */
int p2q_rec_idset_mark(p2q_rec_idset_t *s, const char *id); /* 1 if present (now marked owned) */
int p2q_rec_idset_find(const p2q_rec_idset_t *s, const char *id); /* its index, or -1 */
void p2q_rec_idset_clear(p2q_rec_idset_t *s);

#endif

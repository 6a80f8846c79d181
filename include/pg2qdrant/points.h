/*
 * points.h — turning outbox events into Qdrant point JSON (pure; any thread; unit-tested).
 *
 * Point ids: a rule whose key is one column holding a non-negative integer (< 2^64) uses that
 * integer; any other key (text, uuid, composite, negative) maps to UUIDv5(pg2qdrant namespace,
 * "<rule>:<row_key jsonb text>") and the original key is kept in the payload as `_pk`.
 * Payload: the event snapshot minus the vector column (and minus columns captured only for the
 * vector or text, when `columns` is set; names compared unescaped), numbers Qdrant cannot keep
 * exactly as strings (p2q_payload_value), plus `_hash`: p2q_hash64_hex() of the snapshot text
 * (see reconcile). Vectors come from `vector_column` as a JSON array, a
 * pgvector text value ("[1,2,3]") or a PostgreSQL array text ("{1,2,3}"), or from an embedder.
 */
#ifndef P2Q_POINTS_H
#define P2Q_POINTS_H

#include "pg2qdrant/buf.h"
#include "pg2qdrant/config.h"
#include "pg2qdrant/json_scan.h"

#include <stdint.h>

#define P2Q_POINT_ID_MAX 48

/* `_hash` and `_text_hash`: FNV-1a 64 (hash.h). */

/* Write the point id as JSON (a number, or a quoted UUID) into out. 1 = UUID, 0 = integer, <0 error. */
int p2q_point_id(const char *rule, const char *row_key, size_t len, char out[P2Q_POINT_ID_MAX]);

/*
 * Chunked text rules: one point per chunk, id UUIDv5("<rule>:<row key>#<chunk>"), and the payload
 * also carries `_pk` (the row key's jsonb text, a keyword: the collection gets a payload index on
 * it) and `_chunk` (0, 1, …), so every chunk of a row can be found and pruned by filter.
 */
int p2q_chunk_point_id(const char *rule, const char *row_key, int chunk, char out[P2Q_POINT_ID_MAX]);

/* Append floats as a JSON array (%.9g: every float32 round-trips). */
void p2q_vector_format(p2q_buf_t *b, const float *v, int dim);

/* Append a snapshot value (any JSON) as a payload value: every number Qdrant would not keep
 * exactly (p2q_json_number_exact: an integer beyond int64, a numeric with more digits than a
 * double holds, a value beyond the double range) becomes a string of the same digits, so no
 * digit is lost silently; everything else is copied byte for byte. */
void p2q_payload_value(p2q_buf_t *b, p2q_span_t v);

/* Normalise a vector value span (array, pgvector text or PG array text) into b as a JSON array.
 * Returns the dimension, 0 if the value is null, or P2Q_EBADJSON with a reason in why. */
int p2q_vector_json(p2q_buf_t *b, p2q_span_t v, char *why, size_t whylen);

/*
 * Append one point object {"id":…,"vector":…,"payload":{…}} for an upsert of `payload` (the
 * event's jsonb snapshot). `vector` is a JSON array from an embedder, or NULL to read the rule's
 * vector_column. Returns 0 when appended, 1 when the row has no vector (NULL column: the caller
 * deletes the point instead), or a negative code with a reason in why (bad event).
 */
int p2q_point_build(p2q_buf_t *b, const p2q_rule_config_t *rule, const char *id_json,
                    int id_is_uuid, const char *row_key, const char *payload, size_t plen,
                    const char *vector, size_t vlen, char *why, size_t whylen);

/* What a point carries beyond the snapshot (p2q_point_build_ex). */
typedef struct {
  const char *vector;      /* dense JSON array from an embedder; NULL: the rule's vector_column
                              (rules without a dense vector — keyword-only — have none) */
  size_t vlen;
  const char *sparse;      /* {"indices":[…],"values":[…]} under rule->sparse_name, or NULL */
  size_t slen;
  const char *text;        /* payload `_text` (store_text), or NULL */
  size_t tlen;
  const char *text_hash;   /* payload `_text_hash` (16 hex digits), or NULL */
  const uint64_t *snapshot_hash; /* p2q_hash64 of the snapshot (payload, plen) if known, or NULL */
  int vec_dim;             /* > 0: payload[vec_at, vec_at + vec_len) is known to be a flat array of
                              vec_dim JSON numbers (vector_bin.c printed it): when it is the vector
                              member's value, it is not scanned again */
  size_t vec_at, vec_len;
  const unsigned char *vec_bin; /* the vector as array_send() bytes of a real[] (vector_bin.h), for a
                              snapshot whose vector member holds the placeholder null: printed
                              straight into the point (p2q_vector_bin_numbers; P2Q_EINVAL and
                              nothing appended when those bytes are not a flat array of numbers),
                              and `_hash` written as 16 zeros: the caller hashes the snapshot
                              (whose text is in two places now) and writes it (p2q_point_set_hash) */
  size_t vec_bin_len;
  size_t *vec_text;        /* with vec_bin: [0] = the vector text's offset in b, [1] its length */
  size_t *vec_place;       /* with vec_bin (out, or NULL): the placeholder's offset in payload. The
                              snapshot's first top-level member named vector_column must hold null
                              (P2Q_EINVAL and nothing appended otherwise): the walk that builds the
                              payload finds it (no walk of its own before) */
} p2q_point_parts_t;

/* p2q_point_build with a sparse vector, the text and its hash. With a sparse vector (or a
   vector_name) `vector` is a map: {"<vector_name or \"\">": […], "<sparse_name>": {…}}. */
int p2q_point_build_ex(p2q_buf_t *b, const p2q_rule_config_t *rule, const char *id_json,
                       int id_is_uuid, const char *row_key, const char *payload, size_t plen,
                       const p2q_point_parts_t *parts, char *why, size_t whylen);

/* Write h as the `_hash` of the point point[0..len) built by p2q_point_build_ex (its last bytes). */
void p2q_point_set_hash(char *point, size_t len, uint64_t h);

/* A chunk's point (id_json from p2q_chunk_point_id): p2q_point_build_ex's point, its payload
   ending with `_pk` (the row key as a JSON string) and `_chunk`. */
int p2q_point_build_chunk(p2q_buf_t *b, const p2q_rule_config_t *rule, const char *id_json,
                          const char *row_key, const char *payload, size_t plen, const p2q_point_parts_t *parts,
                          int chunk, char *why, size_t whylen);

/* The payload-only operation of a point built by the functions above (NUL-terminated, its vector
   numbers only): {"overwrite_payload":{"payload":{…},"points":[id_json]}} appended to b.
   0, or P2Q_ENOMEM (also for a point without payload). */
int p2q_point_payload_op(p2q_buf_t *b, const char *point, const char *id_json);

#endif

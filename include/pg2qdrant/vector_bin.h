/*
 * vector_bin.h — a capture trigger's binary vector back into the snapshot text it stands for.
 *
 * When a rule's vector column is a real[] and its snapshot is one json_build_object (1..40
 * columns), the trigger writes the snapshot with the vector member's value replaced by `null`
 * and the vector itself, unprinted, into sync_outbox.vec (a real[]); the claim returns it in
 * binary (array_send() bytes). The daemon rebuilds the exact text PostgreSQL's
 * to_json(real[]) would have printed (float_text.c) where the placeholder is, so everything
 * downstream (points, `_hash`, dead letters) sees the same snapshot as from a trigger that
 * printed the vector (older events, backfill, other vector types). Pure; any thread.
 */
#ifndef P2Q_VECTOR_BIN_H
#define P2Q_VECTOR_BIN_H

#include <stddef.h>

#include "pg2qdrant/buf.h"

/* Append the JSON text to_json() prints for the real[] whose array_send() bytes are bin[0..n):
   "[1.5,-0,\"NaN\",null]", nested brackets for more dimensions, "[]" when empty. 0, or
   P2Q_EBADJSON (not array_send bytes of a real[]), P2Q_ENOMEM. */
int p2q_vector_bin_json(p2q_buf_t *b, const unsigned char *bin, size_t n);

/* Where the rebuilt vector is in the snapshot text (offset and length of the member's value), and
   dim > 0 when it is a flat, non-empty array of dim JSON numbers (no null, NaN or infinity): the
   point builder then need not scan it again (p2q_point_parts_t.vec_dim). All 0 when the vector
   was not spliced in. */
typedef struct {
  size_t at, len;
  int dim;
} p2q_vector_span_t;

/* Append payload with the value of its top-level member `column` (the placeholder null) replaced
   by that text; payload as it is when that member holds something else (its vector, put there by
   hand in a dead letter: the text wins). span (or NULL): where the text went, relative to the
   appended payload. 0, P2Q_EBADJSON with the reason in why (no such member, bad bytes), or
   P2Q_ENOMEM. */
int p2q_vector_splice(p2q_buf_t *out, const char *column, const char *payload, size_t plen,
                      const unsigned char *bin, size_t n, p2q_vector_span_t *span, char *why, size_t whylen);

/* An event's snapshot text from the claim (payload, and vec: array_send() bytes, vlen of them),
   appended to out: payload with the vector spliced in at member `column` (p2q_vector_splice),
   *span (or NULL) where. 0; P2Q_EBADJSON with why (no column configured any more, bad bytes, no
   place; nothing appended); P2Q_ENOMEM. */
int p2q_vector_event_payload(p2q_buf_t *out, const char *column, const char *payload, const unsigned char *vec,
                             size_t vlen, p2q_vector_span_t *span, char *why, size_t whylen);

/* Append the text of a flat, non-empty real[] of JSON numbers (no null, NaN or infinity) whose
   array_send() bytes are bin[0..n), as p2q_vector_bin_json: its element count; 0 and nothing
   appended for any other bytes (p2q_vector_splice tells why); P2Q_ENOMEM. */
int p2q_vector_bin_numbers(p2q_buf_t *b, const unsigned char *bin, size_t n);

/* At most how many bytes the text of the real[] whose array_send() bytes are bin[0..n) takes
   (what p2q_vector_splice reserves for it); 0 when they are not such bytes. */
size_t p2q_vector_text_max(const unsigned char *bin, size_t n);

#endif

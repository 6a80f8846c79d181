/*
 * vector_bin.c — rebuild a snapshot's vector text from the real[] a capture trigger sent in
 * binary (see vector_bin.h). array_send() layout, big-endian: ndim, has-nulls flag, element type
 * oid (700 = float4), ndim × (length, lower bound), then per element its length (-1: NULL, else
 * 4) and the float's bits. to_json's layout: "[" elements "," "]" per dimension, no spaces, NULL
 * → null, a float as float4out prints it when that is a JSON number, else as a JSON string
 * ("NaN", "Infinity", "-Infinity"), so a vector the trigger could not have sent as numbers
 * fails in the daemon exactly as before (the point builder refuses a non-number element).
 * Pure; any thread.
 */
#include "pg2qdrant/vector_bin.h"
#include "pg2qdrant/errors.h"
#include "pg2qdrant/float_text.h"
#include "pg2qdrant/json_scan.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define FLOAT4OID 700
#define MAXDIM 6 /* PostgreSQL's MAXDIM */

static uint32_t be32(const unsigned char *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

typedef struct {
  const unsigned char *p, *end;
  char *o;     /* output cursor (room reserved) */
  int numbers; /* every element so far a JSON number */
} cursor_t;

/* Dimension d of dims[0..ndim): "[" elements "]"; 0 or -1 (bytes end early, bad length). */
static int dim_json(cursor_t *c, const int32_t *dims, int ndim, int d) {
  *c->o++ = '[';
  if (d + 1 == ndim) { /* the floats (float_text.c) */
    if (!(c->o = p2q_float4_json_elems(c->o, &c->p, c->end, dims[d], &c->numbers))) return -1;
  } else {
    for (int32_t i = 0; i < dims[d]; i++) {
      if (i) *c->o++ = ',';
      if (dim_json(c, dims, ndim, d + 1)) return -1;
    }
  }
  *c->o++ = ']';
  return 0;
}

typedef struct {
  int32_t ndim, dims[MAXDIM];
  uint64_t items;
  size_t room; /* the text's size at most: every element in 4 + its text + 2 quotes + a comma,
                  every sub-array in 3 bytes */
  const unsigned char *elems;
} header_t;

/* array_send()'s header of a real[]; 0 or P2Q_EBADJSON. */
static int header(const unsigned char *bin, size_t n, header_t *h) {
  if (n < 12) return P2Q_EBADJSON;
  h->ndim = (int32_t)be32(bin);
  uint32_t flags = be32(bin + 4), elem = be32(bin + 8);
  if (h->ndim < 0 || h->ndim > MAXDIM || flags > 1 || elem != FLOAT4OID || n < 12 + 8 * (size_t)h->ndim)
    return P2Q_EBADJSON;
  uint64_t brackets = 1;
  h->items = h->ndim ? 1 : 0;
  for (int d = 0; d < h->ndim; d++) {
    h->dims[d] = (int32_t)be32(bin + 12 + 8 * d);
    if (h->dims[d] < 0) return P2Q_EBADJSON;
    h->items *= (uint64_t)h->dims[d];
    if (h->items > (1u << 27)) return P2Q_EBADJSON; /* PostgreSQL's MaxArraySize */
    brackets += h->items ? h->items / (uint64_t)h->dims[d] : 0;
  }
  h->elems = bin + 12 + 8 * (size_t)h->ndim;
  if (h->items && (size_t)(bin + n - h->elems) < 4 * h->items) return P2Q_EBADJSON; /* a length each */
  h->room = h->items ? (size_t)h->items * (P2Q_FLOAT4_TEXT_MAX + 3) + 3 * (size_t)brackets + 1 : 3;
  return 0;
}

/* p2q_vector_bin_json; *dim = the element count when the text is a flat, non-empty array of JSON
   numbers, else 0. */
static int bin_json(p2q_buf_t *b, const unsigned char *bin, size_t n, int *dim) {
  header_t h;
  *dim = 0;
  if (header(bin, n, &h)) return P2Q_EBADJSON;
  if (h.items == 0) { p2q_buf_puts(b, "[]"); return p2q_buf_error(b); }
  if (p2q_buf_reserve(b, h.room)) return P2Q_ENOMEM;
  cursor_t c = {h.elems, bin + n, b->data + b->len, 1};
  if (dim_json(&c, h.dims, h.ndim, 0) || c.p != bin + n) {
    b->data[b->len] = 0;
    return P2Q_EBADJSON;
  }
  b->len = (size_t)(c.o - b->data);
  b->data[b->len] = 0;
  if (h.ndim == 1 && c.numbers) *dim = (int)h.items;
  return 0;
}

int p2q_vector_bin_json(p2q_buf_t *b, const unsigned char *bin, size_t n) {
  int dim;
  return bin_json(b, bin, n, &dim);
}

static int reason(char *why, size_t whylen, const char *msg, const char *column) {
  snprintf(why, whylen, msg, column);
  return P2Q_EBADJSON;
}

int p2q_vector_bin_numbers(p2q_buf_t *b, const unsigned char *bin, size_t n) {
  size_t mark = b->len;
  int dim, rc = bin_json(b, bin, n, &dim);
  if (rc == P2Q_ENOMEM) return rc;
  if (!rc && dim > 0) return dim;
  b->len = mark;
  if (b->data) b->data[mark] = 0;
  return 0;
}

/* The value of payload's first top-level member `column` in *v: 1 when it is the placeholder
   null (at = its offset: payload[0..at) ‖ the vector's text ‖ payload[at + 4..plen) is the snapshot
   p2q_vector_splice appends; point_build_ex finds the same member for a vector printed straight
   into its point), 0 when it holds something else (kept), -1 when there is no such member. */
static int place(const char *column, const char *payload, size_t plen, p2q_span_t *v) {
  size_t pos = 0;
  p2q_span_t k;
  while (p2q_json_next_member(payload, plen, &pos, &k, v) == 1)
    if (p2q_json_key_eq(k, column)) return p2q_span_eq(*v, "null");
  return -1;
}

int p2q_vector_splice(p2q_buf_t *out, const char *column, const char *payload, size_t plen,
                      const unsigned char *bin, size_t n, p2q_vector_span_t *span, char *why, size_t whylen) {
  p2q_span_t v = {NULL, 0};
  if (span) *span = (p2q_vector_span_t){0, 0, 0};
  int found = place(column, payload, plen, &v);
  if (found < 0)
    return reason(why, whylen, "the event's binary vector has no place in its snapshot (no member \"%s\": "
                               "the rule's vector_column changed since the event was written?)", column);
  if (!found) { /* the snapshot has its vector already (a dead letter repaired by hand) */
    p2q_buf_append(out, payload, plen);
    return p2q_buf_error(out);
  }
  size_t mark = out->len, at = (size_t)(v.p - payload);
  header_t h;
  int dim;
  p2q_buf_reserve(out, plen + (header(bin, n, &h) ? 0 : h.room)); /* one allocation */
  p2q_buf_append(out, payload, at);
  int rc = bin_json(out, bin, n, &dim);
  if (rc == P2Q_EBADJSON) {
    out->len = mark;
    if (out->data) out->data[mark] = 0;
    return reason(why, whylen, "the event's binary vector (column \"%s\") is not the bytes of a real[]", column);
  }
  if (span && !rc && !p2q_buf_error(out)) *span = (p2q_vector_span_t){at, out->len - mark - at, dim};
  p2q_buf_append(out, v.p + v.n, plen - at - v.n);
  return rc ? rc : p2q_buf_error(out);
}

int p2q_vector_event_payload(p2q_buf_t *out, const char *column, const char *payload, const unsigned char *vec,
                             size_t vlen, p2q_vector_span_t *span, char *why, size_t whylen) {
  if (span) *span = (p2q_vector_span_t){0, 0, 0};
  if (!column) {
    snprintf(why, whylen, "the event carries a binary vector but its rule has no vector_column any more");
    return P2Q_EBADJSON;
  }
  return p2q_vector_splice(out, column, payload, strlen(payload), vec, vlen, span, why, whylen);
}

size_t p2q_vector_text_max(const unsigned char *bin, size_t n) {
  header_t h;
  return header(bin, n, &h) ? 0 : h.room;
}

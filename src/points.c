/*
 * points.c — outbox event → Qdrant point JSON by copying spans of the jsonb snapshot (see
 * points.h). No float is parsed or re-printed on the fast path (JSON arrays are validated and
 * copied). Pure; any thread.
 *
 * Payload values are copied as they are, except numbers Qdrant would not keep exactly (beyond
 * int64, or more digits than a double holds: numeric columns), which become JSON strings with the
 * same digits (p2q_payload_value).
 *
 * Every point's payload carries `_hash`: FNV-1a 64 of the snapshot text the point was built from
 * (PostgreSQL's jsonb text of the capture snapshot, vector included), as 16 lowercase hex digits.
 * `reconcile` computes the same hash from the same snapshot expression over the live row, so a
 * point built from an older snapshot (or edited behind the daemon's back) is found stale.
 */
#include "pg2qdrant/hash.h"
#include "pg2qdrant/points.h"
#include "pg2qdrant/errors.h"
#include "pg2qdrant/uuid.h"
#include "pg2qdrant/vector_bin.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Is the span an integer in [0, 2^64)? */
static int u64_literal(p2q_span_t v) {
  if (v.n == 0 || v.n > 20) return 0;
  for (size_t i = 0; i < v.n; i++)
    if (!isdigit((unsigned char)v.p[i])) return 0;
  if (v.n > 1 && v.p[0] == '0') return 0;
  if (v.n == 20 && memcmp(v.p, "18446744073709551615", 20) > 0) return 0;
  return 1;
}

int p2q_point_id(const char *rule, const char *row_key, size_t len, char out[P2Q_POINT_ID_MAX]) {
  size_t pos = 0;
  p2q_span_t k, v, first = {0};
  int n = 0, rc;
  while ((rc = p2q_json_next_member(row_key, len, &pos, &k, &v)) == 1) {
    if (n++ == 0) first = v;
  }
  if (rc < 0 || n == 0) return P2Q_EBADJSON;
  if (n == 1 && u64_literal(first)) {
    memcpy(out, first.p, first.n);
    out[first.n] = 0;
    return 0;
  }
  p2q_buf_t name = P2Q_BUF_INIT;
  p2q_buf_puts(&name, rule);
  p2q_buf_putc(&name, ':');
  p2q_buf_append(&name, row_key, len);
  char uuid[37];
  rc = p2q_buf_error(&name) ? p2q_buf_error(&name) : p2q_uuid5(p2q_uuid_namespace, name.data, name.len, uuid);
  p2q_buf_free(&name);
  if (rc) return rc;
  snprintf(out, P2Q_POINT_ID_MAX, "\"%s\"", uuid);
  return 1;
}

static int reason(char *why, size_t whylen, const char *msg) {
  snprintf(why, whylen, "%s", msg);
  return P2Q_EBADJSON;
}

int p2q_vector_json(p2q_buf_t *b, p2q_span_t v, char *why, size_t whylen) {
  if (v.n == 0 || p2q_span_eq(v, "null")) return 0;
  if (v.p[0] == '[') {
    int dim = p2q_json_number_array(v.p, v.n);
    if (dim <= 0) return reason(why, whylen, "vector column is not an array of numbers");
    p2q_buf_append(b, v.p, v.n);
    return dim;
  }
  if (v.p[0] != '"') return reason(why, whylen, "vector column is neither an array nor a vector text");
  char *text = malloc(v.n + 1);
  if (!text) return P2Q_ENOMEM;
  int n = p2q_json_unescape(v, text, v.n + 1), dim = P2Q_EBADJSON;
  if (n > 1) {
    char *s = text, *e = text + n;
    while (s < e && isspace((unsigned char)*s)) s++;
    while (e > s && isspace((unsigned char)e[-1])) e--;
    if (e - s >= 2 && ((*s == '[' && e[-1] == ']') || (*s == '{' && e[-1] == '}'))) {
      *s = '[';
      e[-1] = ']';
      dim = p2q_json_number_array(s, (size_t)(e - s));
      if (dim > 0) p2q_buf_append(b, s, (size_t)(e - s));
    }
  }
  free(text);
  if (dim <= 0) return reason(why, whylen, "vector text is not a list of numbers like [1,2,3] or {1,2,3}");
  return dim;
}

/* Should snapshot member `key` (escaped span; not the vector member: scan_members takes that
   one before asking) go into the Qdrant payload? */
static int keep_member(const p2q_rule_config_t *r, p2q_span_t key) {
  if (r->columns.n == 0) return 1;
  for (int i = 0; i < r->columns.n; i++)
    if (p2q_json_key_eq(key, r->columns.items[i])) return 1;
  return 0;
}

void p2q_payload_value(p2q_buf_t *b, p2q_span_t v) {
  size_t i = 0, from = 0;
  while (i < v.n) {
    char c = v.p[i];
    if (c == '"') { /* a valid JSON string: skip it, escapes included */
      for (i++; i < v.n && (i += p2q_json_plain_run(v.p + i, v.n - i)) < v.n && v.p[i] != '"'; i++)
        if (v.p[i] == '\\') i++;
      i++;
    } else if (c == '-' || isdigit((unsigned char)c)) {
      size_t st = i;
      while (i < v.n && (isdigit((unsigned char)v.p[i]) || strchr("+-.eE", v.p[i]))) i++;
      if (p2q_json_number_exact(v.p + st, i - st)) continue;
      p2q_buf_append(b, v.p + from, st - from);
      p2q_buf_putc(b, '"');
      p2q_buf_append(b, v.p + st, i - st);
      p2q_buf_putc(b, '"');
      from = i;
    } else {
      i++;
    }
  }
  p2q_buf_append(b, v.p + from, v.n - from);
}

int p2q_point_build(p2q_buf_t *b, const p2q_rule_config_t *r, const char *id_json, int id_is_uuid,
                    const char *row_key, const char *payload, size_t plen, const char *vector,
                    size_t vlen, char *why, size_t whylen) {
  p2q_point_parts_t parts = {.vector = vector, .vlen = vlen};
  return p2q_point_build_ex(b, r, id_json, id_is_uuid, row_key, payload, plen, &parts, why, whylen);
}

/* The snapshot's members, read once: the vector column's value (its first occurrence, as
   p2q_json_find) and the members kept in the payload. A 384-float vector is most of the
   snapshot's bytes, so it is scanned exactly once: validated as an array of numbers where it is
   one (p2q_json_number_array_at), skipped otherwise. */
typedef struct {
  p2q_span_t vec;          /* vec.p NULL: no vector member */
  int vec_dim;             /* > 0: vec is a valid array of numbers of that dimension; 0: not checked */
  int rc;                  /* 0, or P2Q_EBADJSON: the snapshot is not a JSON object */
  int n, cap;
  p2q_span_t *kv;          /* kept members: key, value, key, value, … */
  p2q_span_t small[32];
} members_t;

static int keep(members_t *m, p2q_span_t k, p2q_span_t v) {
  if (m->n + 2 > m->cap) {
    int cap = m->cap * 2;
    p2q_span_t *kv = malloc((size_t)cap * sizeof *kv);
    if (!kv) return P2Q_ENOMEM;
    memcpy(kv, m->kv, (size_t)m->n * sizeof *kv);
    if (m->kv != m->small) free(m->kv);
    m->kv = kv, m->cap = cap;
  }
  m->kv[m->n++] = k;
  m->kv[m->n++] = v;
  return 0;
}

static void scan_members(const p2q_rule_config_t *r, const char *payload, size_t plen, int want_vec,
                         const p2q_point_parts_t *x, members_t *m) {
  size_t pos = 0;
  p2q_span_t k;
  int rc;
  m->vec = (p2q_span_t){NULL, 0};
  m->vec_dim = 0, m->n = 0, m->cap = 32, m->kv = m->small;
  while ((rc = p2q_json_next_key(payload, plen, &pos, &k)) == 1) {
    size_t at = pos;
    int is_vec = r->vector_column && p2q_json_key_eq(k, r->vector_column);
    if (is_vec && want_vec && !m->vec.p && x->vec_dim > 0 && pos == x->vec_at && x->vec_len <= plen - pos) {
      pos += x->vec_len; /* printed by vector_bin.c: numbers only */
      m->vec_dim = x->vec_dim;
    } else if (is_vec && want_vec && !m->vec.p && payload[pos] == '[') {
      int dim = p2q_json_number_array_at(payload, plen, &pos);
      if (dim > 0) m->vec_dim = dim; /* 0 ("[]"): consumed, refused by p2q_vector_json below */
      else if (dim < 0 && p2q_json_skip(payload, plen, &pos)) { rc = P2Q_EBADJSON; break; }
    } else if (p2q_json_skip(payload, plen, &pos)) {
      rc = P2Q_EBADJSON;
      break;
    }
    p2q_span_t v = {payload + at, pos - at};
    if (is_vec) { if (!m->vec.p) m->vec = v; continue; }
    if (keep_member(r, k) && keep(m, k, v) < 0) { rc = P2Q_ENOMEM; break; }
  }
  m->rc = rc < 0 ? rc : 0;
}

int p2q_point_build_ex(p2q_buf_t *b, const p2q_rule_config_t *r, const char *id_json, int id_is_uuid,
                       const char *row_key, const char *payload, size_t plen, const p2q_point_parts_t *x,
                       char *why, size_t whylen) {
  size_t mark = b->len;
  int dense = x->vector || r->vector_column || r->dimension > 0;
  int map = (r->vector_name && *r->vector_name) || (x->sparse && r->sparse_name);
  members_t m;
  scan_members(r, payload, plen, dense && !x->vector && !x->vec_bin, x, &m);
  int rc = 0;
  if (m.rc == P2Q_ENOMEM) { rc = P2Q_ENOMEM; goto fail; }
  /* the checks in the order of the two passes this replaces: the vector first (a NULL or bad
     vector wins over a snapshot broken after it), then the rest of the snapshot */
  if (m.rc < 0 && (!dense || x->vector || x->vec_bin || !r->vector_column || !m.vec.p)) goto bad_snapshot;
  if (x->vec_bin) { /* the vector's placeholder, as vector_bin.c's place() finds it */
    if (!r->vector_column || !m.vec.p || !p2q_span_eq(m.vec, "null")) { rc = P2Q_EINVAL; goto fail; }
    if (x->vec_place) *x->vec_place = (size_t)(m.vec.p - payload);
  }
  p2q_buf_reserve(b, plen + 128);
  p2q_buf_puts(b, "{\"id\":");
  p2q_buf_puts(b, id_json);
  p2q_buf_puts(b, ",\"vector\":");
  if (map) p2q_buf_putc(b, '{');
  if (dense && map) {
    const char *vn = r->vector_name ? r->vector_name : "";
    p2q_buf_json_string(b, vn, strlen(vn));
    p2q_buf_putc(b, ':');
  }
  if (dense && x->vector) {
    p2q_buf_append(b, x->vector, x->vlen);
  } else if (dense && x->vec_bin) {
    size_t at = b->len;
    rc = p2q_vector_bin_numbers(b, x->vec_bin, x->vec_bin_len);
    if (rc <= 0) { rc = rc < 0 ? rc : P2Q_EINVAL; goto fail; }
    x->vec_text[0] = at, x->vec_text[1] = b->len - at, rc = 0;
  } else if (dense) {
    if (m.vec_dim > 0) p2q_buf_append(b, m.vec.p, m.vec.n); /* validated while scanning */
    else rc = p2q_vector_json(b, m.vec, why, whylen);
    if (m.vec_dim <= 0 && rc <= 0) { /* 0: NULL vector, the row has no point */
      b->len = mark;
      b->data[mark] = 0;
      if (m.kv != m.small) free(m.kv);
      return rc == 0 ? 1 : rc;
    }
    rc = 0;
  }
  if (m.rc < 0) goto bad_snapshot;
  if (x->sparse && r->sparse_name) {
    if (dense) p2q_buf_putc(b, ',');
    p2q_buf_json_string(b, r->sparse_name, strlen(r->sparse_name));
    p2q_buf_putc(b, ':');
    p2q_buf_append(b, x->sparse, x->slen);
  }
  if (map) p2q_buf_putc(b, '}');
  p2q_buf_puts(b, ",\"payload\":{");
  int first = 1;
  for (int i = 0; i < m.n; i += 2) {
    if (!first) p2q_buf_putc(b, ',');
    first = 0;
    p2q_buf_putc(b, '"');
    p2q_buf_append(b, m.kv[i].p, m.kv[i].n);
    p2q_buf_puts(b, "\":");
    p2q_payload_value(b, m.kv[i + 1]);
  }
  if (m.kv != m.small) free(m.kv);
  if (id_is_uuid) {
    p2q_buf_puts(b, first ? "\"_pk\":" : ",\"_pk\":");
    p2q_buf_puts(b, row_key);
    first = 0;
  }
  if (x->text) {
    p2q_buf_puts(b, first ? "\"_text\":" : ",\"_text\":");
    p2q_buf_json_string(b, x->text, x->tlen);
    first = 0;
  }
  if (x->text_hash) {
    p2q_buf_printf(b, "%s\"_text_hash\":\"%s\"", first ? "" : ",", x->text_hash);
    first = 0;
  }
  if (r->embedder && r->model[0]) { /* which model built the dense vector (re-embedding) */
    p2q_buf_puts(b, first ? "\"_model\":" : ",\"_model\":");
    p2q_buf_json_string(b, r->model, strlen(r->model));
    first = 0;
  }
  char hash[32] = ",\"_hash\":\"", *hx = hash + 10; /* ,"_hash":"<16 hex digits>"}} */
  memcpy(hx + 16, "\"}}", 3);
  p2q_point_set_hash(hash, 29, x->snapshot_hash ? *x->snapshot_hash : x->vec_bin ? 0 : p2q_hash64(payload, plen));
  p2q_buf_append(b, hash + first, 29 - (size_t)first);
  return p2q_buf_error(b);
bad_snapshot:
  rc = reason(why, whylen, "snapshot is not a JSON object");
fail:
  if (m.kv != m.small) free(m.kv);
  if (b->data) { b->len = mark; b->data[mark] = 0; }
  return rc;
}

void p2q_point_set_hash(char *point, size_t len, uint64_t h) {
  for (char *hx = point + len - 4; hx > point + len - 20; hx--, h >>= 4) *hx = "0123456789abcdef"[h & 15];
}

void p2q_vector_format(p2q_buf_t *b, const float *v, int dim) {
  char num[32];
  if (p2q_buf_reserve(b, (size_t)dim * 16 + 2)) return;
  p2q_buf_putc(b, '[');
  for (int i = 0; i < dim; i++) {
    int n = snprintf(num, sizeof num, "%.9g", (double)v[i]);
    if (i) p2q_buf_putc(b, ',');
    p2q_buf_append(b, num, (size_t)n);
  }
  p2q_buf_putc(b, ']');
}

int p2q_chunk_point_id(const char *rule, const char *row_key, int chunk, char out[P2Q_POINT_ID_MAX]) {
  p2q_buf_t name = P2Q_BUF_INIT;
  char uuid[37];
  p2q_buf_printf(&name, "%s:%s#%d", rule, row_key, chunk);
  int rc = p2q_buf_error(&name) ? p2q_buf_error(&name) : p2q_uuid5(p2q_uuid_namespace, name.data, name.len, uuid);
  p2q_buf_free(&name);
  if (!rc) snprintf(out, P2Q_POINT_ID_MAX, "\"%s\"", uuid);
  return rc;
}

int p2q_point_build_chunk(p2q_buf_t *b, const p2q_rule_config_t *r, const char *id_json,
                          const char *row_key, const char *payload, size_t plen, const p2q_point_parts_t *x,
                          int chunk, char *why, size_t whylen) {
  int rc = p2q_point_build_ex(b, r, id_json, 0, row_key, payload, plen, x, why, whylen);
  if (rc) return rc;
  b->len -= 2; /* reopen the payload object: it ends with "}}" */
  p2q_buf_puts(b, ",\"_pk\":");
  p2q_buf_json_string(b, row_key, strlen(row_key));
  p2q_buf_printf(b, ",\"_chunk\":%d}}", chunk);
  return p2q_buf_error(b);
}

int p2q_point_payload_op(p2q_buf_t *b, const char *point, const char *id_json) {
  const char *p = strstr(point, ",\"payload\":"); /* the first: vectors hold numbers only */
  if (!p) return P2Q_ENOMEM;
  p += 11;
  p2q_buf_puts(b, "{\"overwrite_payload\":{\"payload\":");
  p2q_buf_append(b, p, strlen(p) - 1); /* the point's closing '}' off */
  p2q_buf_printf(b, ",\"points\":[%s]}}", id_json);
  return p2q_buf_error(b);
}

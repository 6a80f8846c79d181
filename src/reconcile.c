/*
 * reconcile.c — the pure comparison logic of `pg2qdrant reconcile` (see reconcile.h; the command,
 * its passes and its fixes are in cmd_reconcile.c). No I/O; any thread.
 *
 * Invariants:
 *   - point ids are compared as text in p2q_point_id()'s form (digits, or a quoted lowercase
 *     UUID); ids are read from the reply's raw text, so integers ≥ 2^53 stay exact;
 *   - a point is only judged against the row whose point id is its own id: its payload never
 *     decides which row it belongs to (a lost or copied `_pk` makes it stale, not an orphan);
 *   - vectors are compared as Qdrant stores them (float32, normalised for Cosine).
 */
#include "pg2qdrant/reconcile.h"
#include "pg2qdrant/template.h"
#include "pg2qdrant/errors.h"
#include "pg2qdrant/hash.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int p2q_rec_id_text(const cJSON *id, char out[P2Q_POINT_ID_MAX]) {
  if (cJSON_IsNumber(id) && id->valuedouble >= 9007199254740992.0) return P2Q_ERANGE;
  if (cJSON_IsNumber(id) && id->valuedouble >= 0) {
    snprintf(out, P2Q_POINT_ID_MAX, "%.0f", id->valuedouble);
    return 0;
  }
  if (cJSON_IsString(id) && id->valuestring && strlen(id->valuestring) == 36) {
    snprintf(out, P2Q_POINT_ID_MAX, "\"%s\"", id->valuestring);
    for (char *p = out; *p; p++)
      if (*p >= 'A' && *p <= 'F') *p = (char)(*p - 'A' + 'a');
    return 0;
  }
  return P2Q_EINVAL;
}

int p2q_rec_id_span(p2q_span_t v, char out[P2Q_POINT_ID_MAX]) {
  if (v.n >= 1 && v.n <= 20 && isdigit((unsigned char)v.p[0])) {
    for (size_t i = 0; i < v.n; i++)
      if (!isdigit((unsigned char)v.p[i])) return P2Q_EINVAL;
    if ((v.n > 1 && v.p[0] == '0') || (v.n == 20 && memcmp(v.p, "18446744073709551615", 20) > 0))
      return P2Q_EINVAL;
    memcpy(out, v.p, v.n);
    out[v.n] = 0;
    return 0;
  }
  if (v.n == 38 && v.p[0] == '"' && v.p[37] == '"') {
    for (size_t i = 0; i < 38; i++) {
      char ch = v.p[i];
      if (i > 0 && i < 37 && !isxdigit((unsigned char)ch) && ch != '-') return P2Q_EINVAL;
      out[i] = (char)tolower((unsigned char)ch);
    }
    out[38] = 0;
    return 0;
  }
  return P2Q_EINVAL;
}

/* Spans of the "id" members of the objects in the array span arr. */
static int array_ids(const char *arr, size_t n, p2q_span_t *ids, int max) {
  size_t i = 0;
  int count = 0;
  while (i < n && arr[i] != '[') i++;
  if (i >= n) return P2Q_EBADJSON;
  i++;
  for (;;) {
    while (i < n && (arr[i] == ' ' || arr[i] == '\n' || arr[i] == '\r' || arr[i] == '\t')) i++;
    if (i < n && arr[i] == ']') return count;
    size_t start = i;
    if (p2q_json_skip(arr, n, &i)) return P2Q_EBADJSON;
    p2q_span_t id = {NULL, 0};
    if (p2q_json_find(arr + start, i - start, "id", &id) < 0) return P2Q_EBADJSON;
    if (count < max) ids[count] = id;
    count++;
    while (i < n && (arr[i] == ' ' || arr[i] == '\n' || arr[i] == '\r' || arr[i] == '\t')) i++;
    if (i < n && arr[i] == ',') { i++; continue; }
    if (i < n && arr[i] == ']') return count;
    return P2Q_EBADJSON;
  }
}

int p2q_rec_raw_ids(const char *body, size_t len, p2q_span_t *ids, int max) {
  p2q_span_t result, points;
  if (p2q_json_find(body, len, "result", &result) != 1 || result.n == 0) return P2Q_EBADJSON;
  if (result.p[0] == '[') return array_ids(result.p, result.n, ids, max);
  if (p2q_json_find(result.p, result.n, "points", &points) != 1 || points.n == 0 || points.p[0] != '[')
    return P2Q_EBADJSON;
  return array_ids(points.p, points.n, ids, max);
}

int p2q_rec_point_key(const p2q_rule_config_t *r, const char *point_id, const cJSON *payload,
                      p2q_buf_t *key) {
  if (isdigit((unsigned char)point_id[0])) {
    if (r->key.n != 1) return P2Q_REC_KEY_NONE; /* composite keys have UUID ids only */
    p2q_buf_putc(key, '{');
    p2q_buf_json_string(key, r->key.items[0], strlen(r->key.items[0]));
    p2q_buf_printf(key, ":%s}", point_id);
    return P2Q_REC_KEY_ID;
  }
  const cJSON *pk = cJSON_IsObject(payload) ? cJSON_GetObjectItemCaseSensitive(payload, "_pk") : NULL;
  if (!cJSON_IsObject(pk) || cJSON_GetArraySize(pk) != r->key.n) return P2Q_REC_KEY_NONE;
  char *s = cJSON_PrintUnformatted(pk);
  if (!s) return P2Q_REC_KEY_NONE;
  p2q_buf_puts(key, s);
  free(s);
  return P2Q_REC_KEY_PK;
}

/* The array of vector `name` (NULL: unnamed) in a point's "vector" member. */
static const cJSON *vector_array(const cJSON *v, const char *name) {
  if (name && *name) v = cJSON_IsObject(v) ? cJSON_GetObjectItemCaseSensitive(v, name) : NULL;
  return cJSON_IsArray(v) ? v : NULL;
}

p2q_rec_kind_t p2q_rec_check(const p2q_rule_config_t *r, const cJSON *payload,
                             const cJSON *vector, const char *row_key, const char *snapshot) {
  char rid[P2Q_POINT_ID_MAX], why[128];
  int uuid = p2q_point_id(r->name, row_key, strlen(row_key), rid);
  if (uuid < 0) return P2Q_REC_STALE;
  p2q_buf_t b = P2Q_BUF_INIT;
  /* a rule embedding `text` has no vector in the snapshot: a placeholder, payload only */
  const char *vec = r->vector_column ? NULL : "[0]";
  p2q_rec_kind_t kind = P2Q_REC_STALE;
  /* text rules' points carry `_text_hash` (and `_text` with store_text) of the rendered text */
  p2q_buf_t text = P2Q_BUF_INIT;
  char th[17];
  p2q_point_parts_t parts = {.vector = vec, .vlen = vec ? 3 : 0};
  if (r->text && p2q_template_render(r->text, snapshot, strlen(snapshot), &text) >= 0) {
    p2q_hash64_hex(p2q_buf_str(&text), text.len, th);
    parts.text_hash = th;
    if (r->store_text) { parts.text = p2q_buf_str(&text); parts.tlen = text.len; }
  }
  if (p2q_point_build_ex(&b, r, rid, uuid, row_key, snapshot, strlen(snapshot), &parts, why, sizeof why) == 0) {
    cJSON *want = cJSON_ParseWithLength(b.data, b.len);
    const cJSON *wp = cJSON_GetObjectItemCaseSensitive(want, "payload");
    if (wp && payload && cJSON_Compare(wp, payload, 1)) {
      kind = P2Q_REC_OK;
      if (vector && r->vector_column) {
        const cJSON *wv = vector_array(cJSON_GetObjectItemCaseSensitive(want, "vector"), r->vector_name);
        const cJSON *hv = vector_array(vector, r->vector_name);
        if (!p2q_rec_vector_equal(wv, hv, r->distance == P2Q_DIST_COSINE)) kind = P2Q_REC_VECTOR_STALE;
      }
    }
    cJSON_Delete(want);
  }
  p2q_buf_free(&b);
  p2q_buf_free(&text);
  return kind;
}

int p2q_rec_vector_equal(const cJSON *want, const cJSON *have, int cosine) {
  int n = cJSON_GetArraySize(want);
  if (!cJSON_IsArray(want) || !cJSON_IsArray(have) || n == 0 || n != cJSON_GetArraySize(have)) return 0;
  double norm = 0, scale = 0;
  const cJSON *w, *h;
  cJSON_ArrayForEach(w, want) {
    if (!cJSON_IsNumber(w)) return 0;
    double x = (double)(float)w->valuedouble; /* Qdrant stores float32 */
    norm += x * x;
  }
  norm = cosine && norm > 0 ? sqrt(norm) : 1.0;
  cJSON_ArrayForEach(w, want) {
    double x = fabs((double)(float)w->valuedouble / norm);
    if (x > scale) scale = x;
  }
  double tol = scale > 0 ? scale * 1e-5 : 1e-30;
  h = have->child;
  cJSON_ArrayForEach(w, want) {
    if (!cJSON_IsNumber(h)) return 0;
    double x = (double)(float)((double)(float)w->valuedouble / norm), y = (double)(float)h->valuedouble;
    if (!(fabs(x - y) <= tol)) return 0; /* also false for NaN */
    h = h->next;
  }
  return 1;
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

int p2q_rec_mark_missing(char *const *want, int nwant, char **have, int nhave,
                         unsigned char *missing) {
  qsort(have, (size_t)nhave, sizeof *have, cmp_str);
  for (int i = 0; i < nwant; i++)
    missing[i] = !bsearch(&want[i], have, (size_t)nhave, sizeof *have, cmp_str);
  return 0;
}

/* ---------------- the unresolved-id set ---------------- */

int p2q_rec_idset_init(p2q_rec_idset_t *s, int cap) {
  memset(s, 0, sizeof *s);
  s->id = calloc((size_t)cap, sizeof *s->id);
  s->owned = calloc((size_t)cap, 1);
  if (!s->id || !s->owned) {
    p2q_rec_idset_free(s);
    return P2Q_ENOMEM;
  }
  s->cap = cap;
  return 0;
}

void p2q_rec_idset_free(p2q_rec_idset_t *s) {
  free(s->id);
  free(s->owned);
  memset(s, 0, sizeof *s);
}

int p2q_rec_idset_add(p2q_rec_idset_t *s, const char *id) {
  if (s->n >= s->cap) return P2Q_EOVERFLOW;
  snprintf(s->id[s->n], P2Q_POINT_ID_MAX, "%s", id);
  s->owned[s->n++] = 0;
  return 0;
}

static int cmp_id(const void *a, const void *b) { return strcmp(a, b); }

void p2q_rec_idset_sort(p2q_rec_idset_t *s) {
  qsort(s->id, (size_t)s->n, sizeof *s->id, cmp_id);
  int m = 0;
  for (int i = 0; i < s->n; i++)
    if (m == 0 || strcmp(s->id[m - 1], s->id[i])) memmove(s->id[m++], s->id[i], P2Q_POINT_ID_MAX);
  s->n = m;
  memset(s->owned, 0, (size_t)s->cap);
}

int p2q_rec_idset_find(const p2q_rec_idset_t *s, const char *id) {
  if (s->n == 0) return -1;
  char(*hit)[P2Q_POINT_ID_MAX] = bsearch(id, s->id, (size_t)s->n, sizeof *s->id, cmp_id);
  return hit ? (int)(hit - s->id) : -1;
}

int p2q_rec_idset_mark(p2q_rec_idset_t *s, const char *id) {
  int i = p2q_rec_idset_find(s, id);
  if (i < 0) return 0;
  s->owned[i] = 1;
  return 1;
}

void p2q_rec_idset_clear(p2q_rec_idset_t *s) { s->n = 0; }

/*
 * bench_sink_parse.c — the pure parts of the bench's null sink (see bench_sink.h): the id set,
 * request routing, and applying a points write body to the id set. Pure; any thread.
 *
 * Cost is the point: a 256-point upsert of 384-float vectors is ~1 MB, and the sink must spend
 * next to nothing on it. Dense vectors (a JSON array right after "vector":) are skipped with
 * memchr for their closing bracket, never parsed; everything else goes through json_scan.c's
 * strict skipper. Invariants: never reads past len; a body refused with P2Q_EBADJSON leaves the
 * id set unchanged (ids are collected first, applied after).
 */
#include "pg2qdrant/bench_sink.h"
#include "pg2qdrant/errors.h"

#include <stdlib.h>
#include <string.h>

/* ---- the id set ------------------------------------------------------------------------- */

/* splitmix64's finaliser: a bijection, so distinct ids never share a stored key */
static uint64_t mix(uint64_t x) {
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

static int grow(p2q_sink_ids_t *m) {
  size_t cap = m->cap ? m->cap * 2 : 1024;
  uint64_t *k = calloc(cap, sizeof *k);
  int64_t *s = malloc(cap * sizeof *s);
  if (!k || !s) { free(k); free(s); return P2Q_ENOMEM; }
  for (size_t i = 0; i < m->cap; i++) {
    if (!m->keys[i]) continue;
    size_t j = m->keys[i] & (cap - 1);
    while (k[j]) j = (j + 1) & (cap - 1);
    k[j] = m->keys[i];
    s[j] = m->seqs[i];
  }
  free(m->keys);
  free(m->seqs);
  m->keys = k, m->seqs = s, m->cap = cap;
  return 0;
}

/* slot of key (present) or of the empty slot ending its probe sequence; cap > 0 */
static size_t slot(const p2q_sink_ids_t *m, uint64_t key) {
  size_t j = key & (m->cap - 1);
  while (m->keys[j] && m->keys[j] != key) j = (j + 1) & (m->cap - 1);
  return j;
}

int p2q_sink_ids_put(p2q_sink_ids_t *m, uint64_t raw, int64_t seq) {
  uint64_t key = mix(raw);
  if (!key) {
    int added = !m->has_zero;
    m->has_zero = 1, m->zero_seq = seq;
    return added;
  }
  if ((m->n + 1) * 2 > m->cap && grow(m) < 0) return P2Q_ENOMEM; /* load ≤ 1/2 */
  size_t j = slot(m, key);
  m->seqs[j] = seq;
  if (m->keys[j]) return 0;
  m->keys[j] = key;
  m->n++;
  return 1;
}

int p2q_sink_ids_get(const p2q_sink_ids_t *m, uint64_t raw, int64_t *seq) {
  uint64_t key = mix(raw);
  if (!key) {
    if (m->has_zero && seq) *seq = m->zero_seq;
    return m->has_zero;
  }
  if (!m->cap) return 0;
  size_t j = slot(m, key);
  if (!m->keys[j]) return 0;
  if (seq) *seq = m->seqs[j];
  return 1;
}

int p2q_sink_ids_del(p2q_sink_ids_t *m, uint64_t raw) {
  uint64_t key = mix(raw);
  if (!key) {
    int had = m->has_zero;
    m->has_zero = 0;
    return had;
  }
  if (!m->cap) return 0;
  size_t mask = m->cap - 1, j = slot(m, key);
  if (!m->keys[j]) return 0;
  /* backward-shift: pull later members of the probe run into the hole when their home allows */
  for (size_t i = (j + 1) & mask;; i = (i + 1) & mask) {
    if (!m->keys[i]) break;
    size_t home = m->keys[i] & mask;
    /* may the entry at i move to j? only if its home is not within (j, i] (cyclically) */
    int stays = j <= i ? (home > j && home <= i) : (home > j || home <= i);
    if (stays) continue;
    m->keys[j] = m->keys[i];
    m->seqs[j] = m->seqs[i];
    j = i;
  }
  m->keys[j] = 0;
  m->n--;
  return 1;
}

size_t p2q_sink_ids_count(const p2q_sink_ids_t *m) { return m->n + (m->has_zero ? 1 : 0); }

void p2q_sink_ids_free(p2q_sink_ids_t *m) {
  free(m->keys);
  free(m->seqs);
  memset(m, 0, sizeof *m);
}

/* ---- point ids -------------------------------------------------------------------------- */

int p2q_sink_point_key(p2q_span_t id, uint64_t *raw) {
  const char *s = id.p;
  size_t n = id.n;
  if (n && s[0] >= '0' && s[0] <= '9') { /* an unsigned integer */
    uint64_t v = 0;
    if (n > 1 && s[0] == '0') return P2Q_EINVAL;
    for (size_t i = 0; i < n; i++) {
      if (s[i] < '0' || s[i] > '9') return P2Q_EINVAL;
      unsigned d = (unsigned)(s[i] - '0');
      if (v > (UINT64_MAX - d) / 10) return P2Q_EINVAL;
      v = v * 10 + d;
    }
    *raw = v;
    return 0;
  }
  /* a UUID string: 32 hex digits, hyphenated 8-4-4-4-12 or not */
  if (n < 2 || s[0] != '"' || s[n - 1] != '"') return P2Q_EINVAL;
  s++, n -= 2;
  if (n != 32 && n != 36) return P2Q_EINVAL;
  uint64_t half[2] = {0, 0};
  int digits = 0;
  for (size_t i = 0; i < n; i++) {
    if (n == 36 && (i == 8 || i == 13 || i == 18 || i == 23)) {
      if (s[i] != '-') return P2Q_EINVAL;
      continue;
    }
    int h = p2q_json_hexval(s[i]);
    if (h < 0) return P2Q_EINVAL;
    half[digits / 16] = half[digits / 16] << 4 | (uint64_t)h;
    digits++;
  }
  *raw = half[0] ^ (half[1] * 0x9e3779b97f4a7c15ULL); /* not symmetric: a-b and b-a differ */
  return 0;
}

/* ---- routing ----------------------------------------------------------------------------- */

/* the path segment at *p (up to '/' or the end), percent-decoded into out */
static int segment(const char **p, char *out, size_t outsz) {
  size_t n = 0;
  const char *s = *p;
  while (*s && *s != '/') {
    int c = (unsigned char)*s;
    if (c == '%') {
      int h = p2q_json_hexval(s[1]), l = h >= 0 ? p2q_json_hexval(s[2]) : -1;
      if (l < 0) return -1;
      c = h * 16 + l;
      s += 2;
    }
    if (n + 1 >= outsz || c == 0) return -1;
    out[n++] = (char)c;
    s++;
  }
  out[n] = 0;
  *p = s;
  return n ? 0 : -1;
}

p2q_sink_route_t p2q_sink_route(const char *method, const char *path, char *coll, size_t collsz) {
  int get = !strcmp(method, "GET"), put = !strcmp(method, "PUT"), post = !strcmp(method, "POST");
  int del = !strcmp(method, "DELETE"), patch = !strcmp(method, "PATCH");
  coll[0] = 0;
  if (get && !strcmp(path, "/")) return P2Q_SINK_R_ROOT;
  if (get && (!strcmp(path, "/healthz") || !strcmp(path, "/livez"))) return P2Q_SINK_R_HEALTHZ;
  if (get && !strcmp(path, "/readyz")) return P2Q_SINK_R_READYZ;
  if (get && !strcmp(path, "/cluster")) return P2Q_SINK_R_CLUSTER;
  if (strncmp(path, "/collections", 12)) return P2Q_SINK_R_UNKNOWN;
  const char *p = path + 12;
  if (!*p || !strcmp(p, "/")) return get ? P2Q_SINK_R_LIST : P2Q_SINK_R_UNKNOWN;
  p++;
  if (segment(&p, coll, collsz) < 0) { coll[0] = 0; return P2Q_SINK_R_UNKNOWN; }
  if (!*p || !strcmp(p, "/")) {
    if (get) return P2Q_SINK_R_INFO;
    if (put) return P2Q_SINK_R_CREATE;
    if (patch) return P2Q_SINK_R_UPDATE;
    if (del) return P2Q_SINK_R_DROP;
    return P2Q_SINK_R_UNKNOWN;
  }
  static const struct { const char *m, *suffix; p2q_sink_route_t r; } t[] = {
      {"GET", "/exists", P2Q_SINK_R_EXISTS},       {"GET", "/exists/", P2Q_SINK_R_EXISTS},
      {"PUT", "/index", P2Q_SINK_R_INDEX},         {"PUT", "/points", P2Q_SINK_R_UPSERT},
      {"POST", "/points", P2Q_SINK_R_RETRIEVE},    {"POST", "/points/delete", P2Q_SINK_R_DELETE},
      {"POST", "/points/batch", P2Q_SINK_R_BATCH}, {"POST", "/points/count", P2Q_SINK_R_COUNT},
      {"POST", "/points/scroll", P2Q_SINK_R_SCROLL},
      {"POST", "/points/payload", P2Q_SINK_R_PAYLOAD}, {"PUT", "/points/payload", P2Q_SINK_R_PAYLOAD},
      {"POST", "/points/payload/delete", P2Q_SINK_R_PAYLOAD},
      {"POST", "/points/payload/clear", P2Q_SINK_R_PAYLOAD},
      {"PUT", "/points/vectors", P2Q_SINK_R_PAYLOAD}, {"POST", "/points/vectors/delete", P2Q_SINK_R_PAYLOAD},
  };
  for (size_t i = 0; i < sizeof t / sizeof *t; i++)
    if (!strcmp(method, t[i].m) && !strcmp(p, t[i].suffix)) return t[i].r;
  if (del && !strncmp(p, "/index/", 7) && p[7] && !strchr(p + 7, '/')) return P2Q_SINK_R_INDEX_DROP;
  (void)post;
  return P2Q_SINK_R_UNKNOWN;
}

/* ---- points writes ------------------------------------------------------------------------- */

typedef struct {
  uint64_t raw;
  int64_t seq;
  int del;
} change_t;

typedef struct {
  change_t *v;
  size_t n, cap;
} changes_t;

static int add(changes_t *c, uint64_t raw, int64_t seq, int del) {
  if (c->n == c->cap) {
    size_t cap = c->cap ? c->cap * 2 : 256;
    change_t *v = realloc(c->v, cap * sizeof *v);
    if (!v) return P2Q_ENOMEM;
    c->v = v, c->cap = cap;
  }
  c->v[c->n++] = (change_t){raw, seq, del};
  return 0;
}

static void ws(const char *s, size_t len, size_t *i) {
  while (*i < len && (s[*i] == ' ' || s[*i] == '\n' || s[*i] == '\r' || s[*i] == '\t')) (*i)++;
}

/* Iterate an array's elements: *i at '[' the first time (first = 1). Returns 1 with the element's
   start in *at (not yet skipped: the caller consumes it), 0 after ']', P2Q_EBADJSON. */
static int arr_next(const char *s, size_t len, size_t *i, int *first, size_t *at) {
  ws(s, len, i);
  if (*first) {
    if (*i >= len || s[*i] != '[') return P2Q_EBADJSON;
    (*i)++;
    ws(s, len, i);
    *first = 0;
    if (*i < len && s[*i] == ']') { (*i)++; return 0; }
  } else {
    if (*i >= len) return P2Q_EBADJSON;
    if (s[*i] == ']') { (*i)++; return 0; }
    if (s[*i] != ',') return P2Q_EBADJSON;
    (*i)++;
    ws(s, len, i);
  }
  *at = *i;
  return 1;
}

/* Iterate an object's members likewise: key span (escaped, without quotes), *i left at the value. */
static int obj_next(const char *s, size_t len, size_t *i, int *first, p2q_span_t *key) {
  ws(s, len, i);
  if (*first) {
    if (*i >= len || s[*i] != '{') return P2Q_EBADJSON;
    (*i)++;
    ws(s, len, i);
    *first = 0;
    if (*i < len && s[*i] == '}') { (*i)++; return 0; }
  } else {
    if (*i >= len) return P2Q_EBADJSON;
    if (s[*i] == '}') { (*i)++; return 0; }
    if (s[*i] != ',') return P2Q_EBADJSON;
    (*i)++;
    ws(s, len, i);
  }
  size_t ks = *i;
  if (*i >= len || s[*i] != '"') return P2Q_EBADJSON;
  for ((*i)++; *i < len && s[*i] != '"'; (*i)++)
    if (s[*i] == '\\') (*i)++;
  if (*i >= len) return P2Q_EBADJSON;
  (*i)++;
  key->p = s + ks + 1;
  key->n = *i - ks - 2;
  ws(s, len, i);
  if (*i >= len || s[*i] != ':') return P2Q_EBADJSON;
  (*i)++;
  ws(s, len, i);
  return 1;
}

/* skip one value, span in *v */
static int value(const char *s, size_t len, size_t *i, p2q_span_t *v) {
  size_t st = *i;
  if (p2q_json_skip(s, len, i)) return P2Q_EBADJSON;
  v->p = s + st, v->n = *i - st;
  return 0;
}

/* a dense vector: memchr to its ']' (no nesting, no strings in an array of numbers) */
static int skip_vector(const char *s, size_t len, size_t *i) {
  if (*i < len && s[*i] == '[') {
    const char *e = memchr(s + *i + 1, ']', len - *i - 1);
    if (e && !memchr(s + *i + 1, '[', (size_t)(e - s) - *i - 1) && !memchr(s + *i + 1, '"', (size_t)(e - s) - *i - 1)) {
      *i = (size_t)(e - s) + 1;
      return 0;
    }
  }
  p2q_span_t v;
  return value(s, len, i, &v); /* named vectors, sparse vectors, …: the strict skipper */
}

static int64_t seq_of(p2q_span_t payload) {
  p2q_span_t v;
  if (payload.n == 0 || payload.p[0] != '{' || p2q_json_find(payload.p, payload.n, "seq", &v) != 1) return P2Q_SINK_NO_SEQ;
  int neg = v.n && v.p[0] == '-';
  int64_t x = 0;
  for (size_t k = (size_t)neg; k < v.n; k++) {
    if (v.p[k] < '0' || v.p[k] > '9' || x > (INT64_MAX - 9) / 10) return P2Q_SINK_NO_SEQ;
    x = x * 10 + (v.p[k] - '0');
  }
  return v.n > (size_t)neg ? (neg ? -x : x) : P2Q_SINK_NO_SEQ;
}

/* {"id":…,"vector":…,"payload":{…}} */
static int one_point(const char *s, size_t len, size_t *i, changes_t *c) {
  int first = 1, rc, have_id = 0;
  p2q_span_t key, v, payload = {NULL, 0};
  uint64_t raw = 0;
  while ((rc = obj_next(s, len, i, &first, &key)) == 1) {
    if (p2q_json_key_eq(key, "vector") || p2q_json_key_eq(key, "vectors")) {
      if (skip_vector(s, len, i)) return P2Q_EBADJSON;
      continue;
    }
    if (value(s, len, i, &v)) return P2Q_EBADJSON;
    if (p2q_json_key_eq(key, "id")) {
      if (p2q_sink_point_key(v, &raw)) return P2Q_EBADJSON;
      have_id = 1;
    } else if (p2q_json_key_eq(key, "payload")) {
      payload = v;
    }
  }
  if (rc < 0 || !have_id) return P2Q_EBADJSON;
  return add(c, raw, seq_of(payload), 0);
}

/* [ids] into c (delete) */
static int id_list(const char *s, size_t len, size_t *i, int del, changes_t *c) {
  int first = 1, rc;
  size_t at;
  while ((rc = arr_next(s, len, i, &first, &at)) == 1) {
    p2q_span_t v;
    uint64_t raw;
    if (value(s, len, i, &v) || p2q_sink_point_key(v, &raw)) return P2Q_EBADJSON;
    if ((rc = add(c, raw, P2Q_SINK_NO_SEQ, del)) < 0) return rc;
  }
  return rc;
}

/* the upsert's column form {"ids":[…],"vectors":[…],"payloads":[…]} */
static int column_batch(const char *s, size_t len, size_t *i, changes_t *c) {
  int first = 1, rc;
  p2q_span_t key, ids = {NULL, 0}, payloads = {NULL, 0}, v;
  while ((rc = obj_next(s, len, i, &first, &key)) == 1) {
    if (value(s, len, i, &v)) return P2Q_EBADJSON;
    if (p2q_json_key_eq(key, "ids")) ids = v;
    else if (p2q_json_key_eq(key, "payloads")) payloads = v;
  }
  if (rc < 0 || !ids.p) return P2Q_EBADJSON;
  size_t base = c->n, k = 0;
  if ((rc = id_list(ids.p, ids.n, &k, 0, c)) < 0) return rc;
  if (payloads.p && payloads.p[0] == '[') {
    int f = 1;
    size_t at, j = 0;
    for (size_t n = base; (rc = arr_next(payloads.p, payloads.n, &j, &f, &at)) == 1; n++) {
      if (value(payloads.p, payloads.n, &j, &v)) return P2Q_EBADJSON;
      if (n < c->n) c->v[n].seq = seq_of(v);
    }
    if (rc < 0) return rc;
  }
  return 0;
}

/* the body of an upsert ({"points":[…]} or {"batch":{…}}) or of a delete ({"points":[ids]} or a
   filter: nothing), *i at its '{' */
static int points_op(const char *s, size_t len, size_t *i, int del, changes_t *c) {
  int first = 1, rc, seen = 0;
  p2q_span_t key, v;
  while ((rc = obj_next(s, len, i, &first, &key)) == 1) {
    if (p2q_json_key_eq(key, "points")) {
      seen = 1;
      if (del) { if ((rc = id_list(s, len, i, 1, c)) < 0) return rc; continue; }
      int f = 1;
      size_t at;
      while ((rc = arr_next(s, len, i, &f, &at)) == 1)
        if ((rc = one_point(s, len, i, c)) < 0) return rc;
      if (rc < 0) return rc;
    } else if (!del && p2q_json_key_eq(key, "batch")) {
      seen = 1;
      if ((rc = column_batch(s, len, i, c)) < 0) return rc;
    } else {
      if (p2q_json_key_eq(key, "filter")) seen = 1;
      if (value(s, len, i, &v)) return P2Q_EBADJSON;
    }
  }
  return rc < 0 ? rc : seen ? 0 : P2Q_EBADJSON;
}

/* {"operations":[{"upsert":{…}}, {"delete":{…}}, {"overwrite_payload":{…}}, …]} */
static int batch_ops(const char *s, size_t len, size_t *i, changes_t *c) {
  int first = 1, rc, seen = 0;
  p2q_span_t key, v;
  while ((rc = obj_next(s, len, i, &first, &key)) == 1) {
    if (!p2q_json_key_eq(key, "operations")) { if (value(s, len, i, &v)) return P2Q_EBADJSON; continue; }
    seen = 1;
    int f = 1;
    size_t at;
    while ((rc = arr_next(s, len, i, &f, &at)) == 1) {
      int fo = 1, ro, one = 0;
      p2q_span_t op;
      while ((ro = obj_next(s, len, i, &fo, &op)) == 1) {
        one++;
        if (p2q_json_key_eq(op, "upsert")) ro = points_op(s, len, i, 0, c);
        else if (p2q_json_key_eq(op, "delete")) ro = points_op(s, len, i, 1, c);
        else ro = value(s, len, i, &v);
        if (ro < 0) return ro;
      }
      if (ro < 0 || one != 1) return P2Q_EBADJSON;
    }
    if (rc < 0) return rc;
  }
  return rc < 0 ? rc : seen ? 0 : P2Q_EBADJSON;
}

long p2q_sink_apply(p2q_sink_ids_t *m, p2q_sink_route_t r, const char *body, size_t len) {
  changes_t c = {NULL, 0, 0};
  size_t i = 0;
  int rc;
  if (r == P2Q_SINK_R_UPSERT) rc = points_op(body, len, &i, 0, &c);
  else if (r == P2Q_SINK_R_DELETE) rc = points_op(body, len, &i, 1, &c);
  else if (r == P2Q_SINK_R_BATCH) rc = batch_ops(body, len, &i, &c);
  else rc = P2Q_EINVAL;
  if (!rc) {
    ws(body, len, &i);
    if (i != len) rc = P2Q_EBADJSON; /* trailing bytes */
  }
  for (size_t k = 0; !rc && k < c.n; k++)
    rc = c.v[k].del ? (p2q_sink_ids_del(m, c.v[k].raw), 0) : p2q_sink_ids_put(m, c.v[k].raw, c.v[k].seq) < 0 ? P2Q_ENOMEM : 0;
  free(c.v);
  return rc < 0 ? rc : (long)c.n;
}

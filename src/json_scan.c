/*
 * json_scan.c — zero-copy JSON span scanner (see json_scan.h). Pure; any thread. Strict enough
 * to reject malformed input (unterminated strings, bad numbers, trailing garbage in arrays);
 * never reads past `len`.
 */
#include "pg2qdrant/json_scan.h"
#include "pg2qdrant/errors.h"

#include <ctype.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 128

static void ws(const char *s, size_t len, size_t *i) {
  while (*i < len && (s[*i] == ' ' || s[*i] == '\n' || s[*i] == '\r' || s[*i] == '\t')) (*i)++;
}

size_t p2q_json_plain_run(const char *s, size_t len) {
  /* eight bytes at a time: a word with none of '"', '\\' or a byte < 0x20 (the classic "has a
     zero byte" and "has a byte less than n" tests; a borrow can flag a byte above a real one,
     never miss one, and a flagged word is looked at byte by byte) */
  const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
  size_t i = 0;
  for (; i + 8 <= len; i += 8) {
    uint64_t x;
    memcpy(&x, s + i, 8);
    uint64_t q = x ^ (ones * '"'), b = x ^ (ones * '\\');
    if (((q - ones) & ~q) & high || ((b - ones) & ~b) & high || ((x - ones * 0x20) & ~x) & high) break;
  }
  while (i < len && s[i] != '"' && s[i] != '\\' && (unsigned char)s[i] >= 0x20) i++;
  return i;
}

static int skip_string(const char *s, size_t len, size_t *i) {
  if (*i >= len || s[*i] != '"') return P2Q_EBADJSON;
  for ((*i)++; *i < len; (*i)++) {
    *i += p2q_json_plain_run(s + *i, len - *i);
    if (*i >= len) break;
    unsigned char c = (unsigned char)s[*i];
    if (c == '"') { (*i)++; return 0; }
    if (c == '\\') { if (++(*i) >= len) return P2Q_EBADJSON; }
    else if (c < 0x20) return P2Q_EBADJSON;
  }
  return P2Q_EBADJSON;
}

/* an ASCII digit (not isdigit(): no locale table lookup per character; this runs over every
   byte of every 384-float vector) */
#define DIGIT(c) ((unsigned)((unsigned char)(c) - '0') < 10u)

static int skip_number(const char *s, size_t len, size_t *i) {
  size_t j = *i;
  if (j < len && s[j] == '-') j++;
  if (j >= len || !DIGIT(s[j])) return P2Q_EBADJSON;
  if (s[j] == '0') j++;
  else while (j < len && DIGIT(s[j])) j++;
  if (j < len && s[j] == '.') {
    j++;
    if (j >= len || !DIGIT(s[j])) return P2Q_EBADJSON;
    while (j < len && DIGIT(s[j])) j++;
  }
  if (j < len && (s[j] == 'e' || s[j] == 'E')) {
    j++;
    if (j < len && (s[j] == '+' || s[j] == '-')) j++;
    if (j >= len || !DIGIT(s[j])) return P2Q_EBADJSON;
    while (j < len && DIGIT(s[j])) j++;
  }
  *i = j;
  return 0;
}

static int skip_value(const char *s, size_t len, size_t *i, int depth) {
  ws(s, len, i);
  if (*i >= len || depth > MAX_DEPTH) return P2Q_EBADJSON;
  char c = s[*i];
  if (c == '"') return skip_string(s, len, i);
  if (c == '{' || c == '[') {
    char close = c == '{' ? '}' : ']';
    (*i)++;
    ws(s, len, i);
    if (*i < len && s[*i] == close) { (*i)++; return 0; }
    for (;;) {
      if (c == '{') {
        ws(s, len, i);
        if (skip_string(s, len, i)) return P2Q_EBADJSON;
        ws(s, len, i);
        if (*i >= len || s[*i] != ':') return P2Q_EBADJSON;
        (*i)++;
      }
      if (skip_value(s, len, i, depth + 1)) return P2Q_EBADJSON;
      ws(s, len, i);
      if (*i >= len) return P2Q_EBADJSON;
      if (s[*i] == ',') { (*i)++; continue; }
      if (s[*i] == close) { (*i)++; return 0; }
      return P2Q_EBADJSON;
    }
  }
  /* a literal only where its first letter is: numbers (most values) go straight to skip_number */
  const char *lit = c == 't' ? "true" : c == 'f' ? "false" : c == 'n' ? "null" : NULL;
  if (!lit) return skip_number(s, len, i);
  size_t n = c == 'f' ? 5 : 4;
  if (len - *i >= n && memcmp(s + *i, lit, n) == 0) { *i += n; return 0; }
  return P2Q_EBADJSON;
}

int p2q_json_skip(const char *s, size_t len, size_t *pos) { return skip_value(s, len, pos, 0); }

int p2q_json_next_member(const char *s, size_t len, size_t *pos, p2q_span_t *key, p2q_span_t *val) {
  int rc = p2q_json_next_key(s, len, pos, key);
  if (rc != 1) return rc;
  size_t i = *pos;
  if (skip_value(s, len, &i, 1)) return P2Q_EBADJSON;
  val->p = s + *pos;
  val->n = i - *pos;
  *pos = i;
  return 1;
}

int p2q_json_next_key(const char *s, size_t len, size_t *pos, p2q_span_t *key) {
  size_t i = *pos;
  ws(s, len, &i);
  if (*pos == 0) { /* first call: expect an object */
    ws(s, len, &i);
    if (i >= len || s[i] != '{') return P2Q_EBADJSON;
    i++;
    ws(s, len, &i);
    if (i < len && s[i] == '}') { *pos = len; return 0; }
  } else {
    if (i >= len) return 0;
    if (s[i] == '}') { *pos = len; return 0; }
    if (s[i] != ',') return P2Q_EBADJSON;
    i++;
    ws(s, len, &i);
  }
  size_t ks = i;
  if (skip_string(s, len, &i)) return P2Q_EBADJSON;
  key->p = s + ks + 1;
  key->n = i - ks - 2;
  ws(s, len, &i);
  if (i >= len || s[i] != ':') return P2Q_EBADJSON;
  i++;
  ws(s, len, &i);
  if (i >= len) return P2Q_EBADJSON;
  *pos = i;
  return 1;
}

int p2q_json_key_eq(p2q_span_t key, const char *name) {
  size_t nl = strlen(name);
  /* an escape never makes the text longer: a key no longer than the name is the name only byte
     for byte and without one (the common case: no memchr over a key of another length) */
  if (key.n <= nl) return key.n == nl && memcmp(key.p, name, nl) == 0 && !memchr(key.p, '\\', nl);
  if (!memchr(key.p, '\\', key.n)) return 0;
  /* escaped: decode (an escape never makes the text longer) and compare */
  char small[256], *buf = key.n < sizeof small ? small : malloc(key.n + 1);
  if (!buf) return 0;
  p2q_span_t quoted = {key.p - 1, key.n + 2}; /* the key's own quotes */
  int n = p2q_json_unescape(quoted, buf, key.n + 1);
  int eq = n >= 0 && (size_t)n == nl && memcmp(buf, name, nl) == 0;
  if (buf != small) free(buf);
  return eq;
}

int p2q_json_find(const char *s, size_t len, const char *name, p2q_span_t *val) {
  size_t pos = 0;
  p2q_span_t k, v;
  int rc;
  while ((rc = p2q_json_next_member(s, len, &pos, &k, &v)) == 1) {
    if (p2q_json_key_eq(k, name)) { *val = v; return 1; }
  }
  return rc;
}

/* Significant digits of a JSON number (leading/trailing zeros dropped) into dig (NUL-terminated,
   at most cap-1 kept; the true count is returned) and the decimal exponent of the first one. */
static size_t sig_digits(const char *s, size_t n, char *dig, size_t cap, long *exp10) {
  size_t i = 0, k = 0, total = 0, zrun = 0;
  long point = 0, e = 0;
  int seen = 0, in_frac = 0;
  if (i < n && s[i] == '-') i++;
  for (; i < n && s[i] != 'e' && s[i] != 'E'; i++) {
    if (s[i] == '.') { in_frac = 1; continue; }
    if (!seen && s[i] == '0') { if (in_frac) point--; continue; }
    seen = 1;
    if (!in_frac) point++;
    if (k + 1 < cap) dig[k++] = s[i];
    total++;
    zrun = s[i] == '0' ? zrun + 1 : 0;
  }
  if (i < n) { /* exponent, saturated far beyond any double */
    int neg = 0;
    if (++i < n && (s[i] == '+' || s[i] == '-')) neg = s[i++] == '-';
    for (; i < n; i++) /* digits only: no overflow whatever the bytes (the callers pass JSON numbers) */
      if (e < 100000 && s[i] >= '0' && s[i] <= '9') e = e * 10 + (s[i] - '0');
    if (neg) e = -e;
  }
  total -= zrun; /* trailing zeros are not significant */
  if (k > total) k = total;
  dig[k] = 0;
  *exp10 = point - 1 + e;
  return total;
}

int p2q_json_number_exact(const char *s, size_t n) {
  size_t i = s[0] == '-';
  if (!memchr(s, '.', n) && !memchr(s, 'e', n) && !memchr(s, 'E', n)) { /* integer: int64 */
    size_t d = n - i;
    if (d != 19) return d < 19;
    return memcmp(s + i, i ? "9223372036854775808" : "9223372036854775807", 19) <= 0;
  }
  char dig[24], want[24], tmp[400], out[40];
  long e10, e2;
  size_t k = sig_digits(s, n, dig, sizeof dig, &e10);
  if (k == 0) return 1;                                   /* zero */
  if (k <= 15 && e10 >= -307 && e10 <= 307) return 1;    /* DBL_DIG digits, normal range */
  if (k > 17 || n >= sizeof tmp) return 0;                /* more than a double tells apart */
  memcpy(tmp, s, n);
  tmp[n] = 0;
  double d = strtod(tmp, NULL);
  if (!isfinite(d) || d == 0) return 0;                  /* overflow / underflow */
  /* the nearest double, rounded back to k digits, must be the number itself */
  snprintf(out, sizeof out, "%.*e", (int)k - 1, fabs(d));
  size_t m = sig_digits(out, strlen(out), want, sizeof want, &e2);
  return m == k && e2 == e10 && strcmp(want, dig) == 0;
}

int p2q_span_eq(p2q_span_t v, const char *lit) {
  size_t n = strlen(lit);
  return v.n == n && memcmp(v.p, lit, n) == 0;
}

/* The numbers of an array whose ']' is at s[e] (the first ']' after its '['; a valid array of
   numbers has none before its end). s[e] is a sentinel no number byte matches, so the loops
   need no bounds checks: this runs over every byte of every vector. Returns the count, *i after
   the ']', or P2Q_EBADJSON. */
static int numbers_until(const char *s, size_t *i, size_t e) {
  size_t j = *i;
  int count = 0;
  for (;;) {
    while (s[j] == ' ' || s[j] == '\n' || s[j] == '\r' || s[j] == '\t') j++;
    if (s[j] == '-') j++;
    if (!DIGIT(s[j])) return P2Q_EBADJSON;
    if (s[j] == '0') j++;
    else while (DIGIT(s[j])) j++;
    if (s[j] == '.') {
      j++;
      if (!DIGIT(s[j])) return P2Q_EBADJSON;
      while (DIGIT(s[j])) j++;
    }
    if (s[j] == 'e' || s[j] == 'E') {
      j++;
      if (s[j] == '+' || s[j] == '-') j++;
      if (!DIGIT(s[j])) return P2Q_EBADJSON;
      while (DIGIT(s[j])) j++;
    }
    if (count == INT32_MAX) return P2Q_EBADJSON;
    count++;
    while (s[j] == ' ' || s[j] == '\n' || s[j] == '\r' || s[j] == '\t') j++;
    if (s[j] == ',' && j < e) { j++; continue; }
    if (j == e) break;
    return P2Q_EBADJSON;
  }
  *i = e + 1;
  return count;
}

int p2q_json_number_array_at(const char *s, size_t len, size_t *pos) {
  size_t i = *pos;
  ws(s, len, &i);
  if (i >= len || s[i] != '[') return P2Q_EBADJSON;
  const char *close = memchr(s + i + 1, ']', len - i - 1);
  if (!close) return P2Q_EBADJSON;
  size_t e = (size_t)(close - s);
  i++;
  ws(s, e, &i);
  if (i == e) { *pos = e + 1; return 0; }
  int count = numbers_until(s, &i, e);
  if (count < 0) return count;
  *pos = i;
  return count;
}

int p2q_json_number_array(const char *s, size_t len) {
  size_t i = 0;
  int count = p2q_json_number_array_at(s, len, &i);
  if (count < 0) return count;
  ws(s, len, &i);
  return i == len ? count : P2Q_EBADJSON;
}

int p2q_json_unescape(p2q_span_t v, char *buf, size_t buflen) {
  size_t o = 0;
  if (v.n < 2 || v.p[0] != '"' || v.p[v.n - 1] != '"' || buflen == 0) return P2Q_EBADJSON;
  for (size_t i = 1; i + 1 < v.n; i++) {
    char c = v.p[i];
    unsigned cp = (unsigned char)c;
    if (c != '\\') { /* raw bytes (UTF-8 included) are copied as they are */
      if (o + 2 > buflen) return P2Q_EOVERFLOW;
      buf[o++] = c;
      continue;
    }
    if (c == '\\') {
      c = v.p[++i];
      switch (c) {
      case 'n': cp = '\n'; break;
      case 't': cp = '\t'; break;
      case 'r': cp = '\r'; break;
      case 'b': cp = '\b'; break;
      case 'f': cp = '\f'; break;
      case 'u': {
        if (i + 4 >= v.n) return P2Q_EBADJSON;
        cp = 0;
        for (int k = 1; k <= 4; k++) {
          int h = p2q_json_hexval(v.p[i + k]);
          if (h < 0) return P2Q_EBADJSON;
          cp = cp * 16 + (unsigned)h;
        }
        i += 4;
        if (cp >= 0xD800 && cp <= 0xDBFF && i + 6 < v.n && v.p[i + 1] == '\\' && v.p[i + 2] == 'u') {
          unsigned lo = 0;
          for (int k = 3; k <= 6; k++) {
            int h = p2q_json_hexval(v.p[i + k]);
            if (h < 0) return P2Q_EBADJSON;
            lo = lo * 16 + (unsigned)h;
          }
          if (lo >= 0xDC00 && lo <= 0xDFFF) { cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00); i += 6; }
        }
        break;
      }
      default: cp = (unsigned char)c;
      }
    }
    char enc[4];
    int n;
    if (cp < 0x80) { enc[0] = (char)cp; n = 1; }
    else if (cp < 0x800) { enc[0] = (char)(0xC0 | cp >> 6); enc[1] = (char)(0x80 | (cp & 63)); n = 2; }
    else if (cp < 0x10000) {
      enc[0] = (char)(0xE0 | cp >> 12); enc[1] = (char)(0x80 | ((cp >> 6) & 63)); enc[2] = (char)(0x80 | (cp & 63)); n = 3;
    } else {
      enc[0] = (char)(0xF0 | cp >> 18); enc[1] = (char)(0x80 | ((cp >> 12) & 63));
      enc[2] = (char)(0x80 | ((cp >> 6) & 63)); enc[3] = (char)(0x80 | (cp & 63)); n = 4;
    }
    if (o + (size_t)n + 1 > buflen) return P2Q_EOVERFLOW;
    memcpy(buf + o, enc, (size_t)n);
    o += (size_t)n;
  }
  buf[o] = 0;
  return (int)o;
}

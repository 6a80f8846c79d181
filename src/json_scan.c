/*
 * json_scan.c — zero-copy JSON span scanner (see json_scan.h). Pure; any thread. Strict enough
 * to reject malformed input (unterminated strings, bad numbers, trailing garbage in arrays);
 * never reads past `len`.
 */
#include "pg2qdrant/json_scan.h"
#include "pg2qdrant/errors.h"

#include <ctype.h>
#include <stdint.h>
#include <string.h>

#define MAX_DEPTH 128

static void ws(const char *s, size_t len, size_t *i) {
  while (*i < len && (s[*i] == ' ' || s[*i] == '\n' || s[*i] == '\r' || s[*i] == '\t')) (*i)++;
}

static int skip_string(const char *s, size_t len, size_t *i) {
  if (*i >= len || s[*i] != '"') return P2Q_EBADJSON;
  for ((*i)++; *i < len; (*i)++) {
    unsigned char c = (unsigned char)s[*i];
    if (c == '"') { (*i)++; return 0; }
    if (c == '\\') { if (++(*i) >= len) return P2Q_EBADJSON; }
    else if (c < 0x20) return P2Q_EBADJSON;
  }
  return P2Q_EBADJSON;
}

static int skip_number(const char *s, size_t len, size_t *i) {
  size_t st = *i;
  if (*i < len && s[*i] == '-') (*i)++;
  if (*i >= len || !isdigit((unsigned char)s[*i])) return P2Q_EBADJSON;
  if (s[*i] == '0') (*i)++;
  else while (*i < len && isdigit((unsigned char)s[*i])) (*i)++;
  if (*i < len && s[*i] == '.') {
    (*i)++;
    if (*i >= len || !isdigit((unsigned char)s[*i])) return P2Q_EBADJSON;
    while (*i < len && isdigit((unsigned char)s[*i])) (*i)++;
  }
  if (*i < len && (s[*i] == 'e' || s[*i] == 'E')) {
    (*i)++;
    if (*i < len && (s[*i] == '+' || s[*i] == '-')) (*i)++;
    if (*i >= len || !isdigit((unsigned char)s[*i])) return P2Q_EBADJSON;
    while (*i < len && isdigit((unsigned char)s[*i])) (*i)++;
  }
  return *i > st ? 0 : P2Q_EBADJSON;
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
  static const char *const lits[] = {"true", "false", "null"};
  for (int k = 0; k < 3; k++) {
    size_t n = strlen(lits[k]);
    if (len - *i >= n && memcmp(s + *i, lits[k], n) == 0) { *i += n; return 0; }
  }
  return skip_number(s, len, i);
}

int p2q_json_skip(const char *s, size_t len, size_t *pos) { return skip_value(s, len, pos, 0); }

int p2q_json_next_member(const char *s, size_t len, size_t *pos, p2q_span_t *key, p2q_span_t *val) {
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
  size_t vs = i;
  if (skip_value(s, len, &i, 1)) return P2Q_EBADJSON;
  val->p = s + vs;
  val->n = i - vs;
  *pos = i;
  return 1;
}

int p2q_json_find(const char *s, size_t len, const char *name, p2q_span_t *val) {
  size_t pos = 0, nl = strlen(name);
  p2q_span_t k, v;
  int rc;
  while ((rc = p2q_json_next_member(s, len, &pos, &k, &v)) == 1) {
    if (k.n == nl && memcmp(k.p, name, nl) == 0) { *val = v; return 1; }
  }
  return rc;
}

int p2q_span_eq(p2q_span_t v, const char *lit) {
  size_t n = strlen(lit);
  return v.n == n && memcmp(v.p, lit, n) == 0;
}

int p2q_json_number_array(const char *s, size_t len) {
  size_t i = 0;
  int count = 0;
  ws(s, len, &i);
  if (i >= len || s[i] != '[') return P2Q_EBADJSON;
  i++;
  ws(s, len, &i);
  if (i < len && s[i] == ']') { i++; goto end; }
  for (;;) {
    ws(s, len, &i);
    if (skip_number(s, len, &i)) return P2Q_EBADJSON;
    if (count == INT32_MAX) return P2Q_EBADJSON;
    count++;
    ws(s, len, &i);
    if (i >= len) return P2Q_EBADJSON;
    if (s[i] == ',') { i++; continue; }
    if (s[i] == ']') { i++; break; }
    return P2Q_EBADJSON;
  }
end:
  ws(s, len, &i);
  return i == len ? count : P2Q_EBADJSON;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
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
          int h = hexval(v.p[i + k]);
          if (h < 0) return P2Q_EBADJSON;
          cp = cp * 16 + (unsigned)h;
        }
        i += 4;
        if (cp >= 0xD800 && cp <= 0xDBFF && i + 6 < v.n && v.p[i + 1] == '\\' && v.p[i + 2] == 'u') {
          unsigned lo = 0;
          for (int k = 3; k <= 6; k++) {
            int h = hexval(v.p[i + k]);
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

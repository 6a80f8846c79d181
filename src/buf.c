/*
 * buf.c — growable byte buffer (see buf.h). Pure; any thread, one owner at a time.
 */
#include "pg2qdrant/buf.h"
#include "pg2qdrant/errors.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int p2q_buf_reserve(p2q_buf_t *b, size_t extra) {
  if (b->err) return b->err;
  if (b->len + extra + 1 <= b->cap) return 0;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < b->len + extra + 1) {
    if (cap > ((size_t)-1) / 2) { b->err = P2Q_EOVERFLOW; return b->err; }
    cap *= 2;
  }
  char *p = realloc(b->data, cap);
  if (!p) { b->err = P2Q_ENOMEM; return b->err; }
  b->data = p;
  b->cap = cap;
  return 0;
}

void p2q_buf_append(p2q_buf_t *b, const char *s, size_t n) {
  if (p2q_buf_reserve(b, n)) return;
  if (n) memcpy(b->data + b->len, s, n);
  b->len += n;
  b->data[b->len] = 0;
}

void p2q_buf_puts(p2q_buf_t *b, const char *s) { p2q_buf_append(b, s, strlen(s)); }

void p2q_buf_put_i64(p2q_buf_t *b, int64_t v) {
  char t[20];
  int k = 0;
  uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v; /* INT64_MIN too */
  do { t[k++] = (char)('0' + u % 10); u /= 10; } while (u);
  if (p2q_buf_reserve(b, (size_t)k + 1)) return;
  if (v < 0) b->data[b->len++] = '-';
  while (k) b->data[b->len++] = t[--k];
  b->data[b->len] = 0;
}

void p2q_buf_putc(p2q_buf_t *b, char c) {
  if (p2q_buf_reserve(b, 1)) return;
  b->data[b->len++] = c;
  b->data[b->len] = 0;
}

void p2q_buf_printf(p2q_buf_t *b, const char *fmt, ...) {
  va_list ap;
  if (b->err) return;
  va_start(ap, fmt);
  size_t avail = b->cap > b->len ? b->cap - b->len : 0;
  int n = vsnprintf(avail ? b->data + b->len : NULL, avail, fmt, ap);
  va_end(ap);
  if (n < 0) { b->err = P2Q_EINVAL; return; }
  if ((size_t)n >= avail) {
    if (p2q_buf_reserve(b, (size_t)n)) return;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
  }
  b->len += (size_t)n;
}

void p2q_buf_reset(p2q_buf_t *b) {
  b->len = 0;
  b->err = 0;
  if (b->data) b->data[0] = 0;
}

void p2q_buf_free(p2q_buf_t *b) {
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
  b->err = 0;
}

char *p2q_buf_steal(p2q_buf_t *b) {
  char *p = b->data;
  if (!p) p = calloc(1, 1);
  b->data = NULL;
  b->len = b->cap = 0;
  return p;
}

void p2q_buf_json_string(p2q_buf_t *b, const char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  if (p2q_buf_reserve(b, n + 2)) return;
  p2q_buf_putc(b, '"');
  size_t start = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    p2q_buf_append(b, s + start, i - start);
    start = i + 1;
    switch (c) {
    case '"': p2q_buf_append(b, "\\\"", 2); break;
    case '\\': p2q_buf_append(b, "\\\\", 2); break;
    case '\n': p2q_buf_append(b, "\\n", 2); break;
    case '\r': p2q_buf_append(b, "\\r", 2); break;
    case '\t': p2q_buf_append(b, "\\t", 2); break;
    default: {
      char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
      p2q_buf_append(b, u, 6);
    }
    }
  }
  p2q_buf_append(b, s + start, n - start);
  p2q_buf_putc(b, '"');
}

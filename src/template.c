/*
 * template.c — rule text rendering from a jsonb snapshot (see template.h). Pure; any thread.
 */
#include "pg2qdrant/template.h"
#include "pg2qdrant/errors.h"
#include "pg2qdrant/json_scan.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

/* Append the value of member `name` (len n) of the snapshot. */
static int put_value(const char *snap, size_t slen, const char *name, size_t n, p2q_buf_t *out) {
  char key[256];
  p2q_span_t v;
  if (n == 0 || n >= sizeof key) return P2Q_EINVAL;
  memcpy(key, name, n);
  key[n] = 0;
  int rc = p2q_json_find(snap, slen, key, &v);
  if (rc < 0) return rc;
  if (rc == 0 || p2q_span_eq(v, "null")) return 0;
  if (v.p[0] != '"') { p2q_buf_append(out, v.p, v.n); return 0; }
  char *tmp = malloc(v.n + 1);
  if (!tmp) return P2Q_ENOMEM;
  int len = p2q_json_unescape(v, tmp, v.n + 1);
  if (len >= 0) p2q_buf_append(out, tmp, (size_t)len);
  free(tmp);
  return len < 0 ? len : 0;
}

static int render_template(const char *t, const char *snap, size_t slen, p2q_buf_t *out) {
  for (const char *p = t; *p; p++) {
    if (*p == '\\' && (p[1] == 'n' || p[1] == 't' || p[1] == '\\')) {
      p++;
      p2q_buf_putc(out, *p == 'n' ? '\n' : *p == 't' ? '\t' : '\\');
    } else if ((*p == '{' && p[1] == '{') || (*p == '}' && p[1] == '}')) {
      p2q_buf_putc(out, *p++);
    } else if (*p == '{') {
      const char *e = strchr(p, '}');
      if (!e) return P2Q_EINVAL;
      int rc = put_value(snap, slen, p + 1, (size_t)(e - p - 1), out);
      if (rc < 0) return rc;
      p = e;
    } else {
      p2q_buf_putc(out, *p);
    }
  }
  return 0;
}

static int render_list(const char *t, const char *snap, size_t slen, p2q_buf_t *out) {
  const char *p = t;
  while (*p) {
    while (*p == ' ' || *p == ',' || *p == '\t') p++;
    const char *s = p;
    while (*p && *p != ',') p++;
    const char *e = p;
    while (e > s && isspace((unsigned char)e[-1])) e--;
    if (e == s) continue;
    size_t before = out->len;
    if (before) p2q_buf_putc(out, '\n');
    int rc = put_value(snap, slen, s, (size_t)(e - s), out);
    if (rc < 0) return rc;
    if (out->len == before + (before ? 1 : 0)) { /* empty value: drop the separator */
      out->len = before;
      if (out->data) out->data[before] = 0;
    }
  }
  return 0;
}

int p2q_template_render(const char *text, const char *snap, size_t slen, p2q_buf_t *out) {
  size_t start = out->len;
  p2q_span_t probe;
  if (p2q_json_find(snap, slen, "", &probe) < 0) return P2Q_EBADJSON;
  int rc = strchr(text, '{') ? render_template(text, snap, slen, out) : render_list(text, snap, slen, out);
  if (rc < 0) return rc;
  if (p2q_buf_error(out)) return p2q_buf_error(out);
  for (size_t i = start; i < out->len; i++)
    if (!isspace((unsigned char)out->data[i])) return 1;
  return 0;
}

/*
 * sql_text.c — SQL text helpers shared by every SQL generator: quoting identifiers and literals,
 * dollar quotes that nothing inside can end, qualified-name parsing, the column lists of a rule's
 * `text` template, string lists.
 *
 * Pure string building: no I/O, no globals; any thread. Declared in capture.h.
 */
#include "pg2qdrant/capture.h"
#include "pg2qdrant/errors.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void p2q_sql_ident(p2q_buf_t *b, const char *ident) {
  p2q_buf_putc(b, '"');
  for (const char *p = ident; *p; p++) {
    if (*p == '"') p2q_buf_putc(b, '"');
    p2q_buf_putc(b, *p);
  }
  p2q_buf_putc(b, '"');
}

void p2q_sql_literal(p2q_buf_t *b, const char *s) {
  if (strchr(s, '\\')) p2q_buf_putc(b, 'E');
  p2q_buf_putc(b, '\'');
  for (const char *p = s; *p; p++) {
    if (*p == '\'' || *p == '\\') p2q_buf_putc(b, *p);
    p2q_buf_putc(b, *p);
  }
  p2q_buf_putc(b, '\'');
}

size_t p2q_sql_count(const char *s, const char *needle) {
  size_t n = 0;
  for (const char *p = s; (p = strstr(p, needle)) != NULL; p++) n++;
  return n;
}

int p2q_sql_dollar_tag(char tag[P2Q_SQL_TAG_MAX], size_t tries, int (*fits)(const char *tag, void *arg),
                       void *arg) {
  for (size_t k = 0; k < tries; k++) {
    if (k) snprintf(tag, P2Q_SQL_TAG_MAX, "$p2q_%zu$", k);
    else snprintf(tag, P2Q_SQL_TAG_MAX, "$p2q$");
    int ok = fits(tag, arg);
    if (ok < 0) return ok;
    if (ok) return 0;
  }
  return P2Q_EINVAL;
}

/* fits: tag + body + tag holds the tag exactly twice (the body has no tag, nor half of one at
   either end) */
static int quote_fits(const char *tag, void *arg) {
  p2q_buf_t t = P2Q_BUF_INIT;
  p2q_buf_printf(&t, "%s%s%s", tag, (const char *)arg, tag);
  int rc = p2q_buf_error(&t);
  int ok = rc ? rc : p2q_sql_count(t.data, tag) == 2;
  p2q_buf_free(&t);
  return ok;
}

int p2q_sql_dollar_quote(p2q_buf_t *out, const char *body) {
  char tag[P2Q_SQL_TAG_MAX];
  int rc = p2q_sql_dollar_tag(tag, strlen(body) + 2, quote_fits, (void *)body);
  if (rc) return rc;
  p2q_buf_printf(out, "%s%s%s", tag, body, tag);
  return p2q_buf_error(out);
}

/* Parse one identifier at *pp (quoted or bare) into a malloc'd string; advances *pp. */
static int parse_ident(const char **pp, char **out) {
  const char *p = *pp;
  p2q_buf_t b = P2Q_BUF_INIT;
  if (*p == '"') {
    for (p++;; p++) {
      if (!*p) goto fail;
      if (*p == '"') {
        if (p[1] != '"') { p++; break; }
        p++;
      }
      p2q_buf_putc(&b, *p);
    }
  } else {
    if (!(isalpha((unsigned char)*p) || *p == '_')) goto fail;
    while (isalnum((unsigned char)*p) || *p == '_' || *p == '$')
      p2q_buf_putc(&b, (char)tolower((unsigned char)*p++));
  }
  if (b.len == 0 || p2q_buf_error(&b)) goto fail;
  *pp = p;
  *out = p2q_buf_steal(&b);
  return 0;
fail:
  p2q_buf_free(&b);
  return P2Q_EINVAL;
}

int p2q_sql_parse_qualified(const char *text, char **schema, char **name) {
  const char *p = text;
  char *a = NULL, *c = NULL;
  *schema = *name = NULL;
  while (isspace((unsigned char)*p)) p++;
  if (parse_ident(&p, &a)) goto fail;
  if (*p == '.') {
    p++;
    if (parse_ident(&p, &c)) goto fail;
  }
  while (isspace((unsigned char)*p)) p++;
  if (*p) goto fail;
  if (c) { *schema = a; *name = c; }
  else { *schema = strdup("public"); *name = a; if (!*schema) goto fail; }
  return 0;
fail:
  free(a);
  free(c);
  free(*schema);
  *schema = NULL;
  return P2Q_EINVAL;
}

int p2q_sql_qualified(p2q_buf_t *b, const char *text) {
  char *s, *n;
  int rc = p2q_sql_parse_qualified(text, &s, &n);
  if (rc) return rc;
  p2q_sql_ident(b, s);
  p2q_buf_putc(b, '.');
  p2q_sql_ident(b, n);
  free(s);
  free(n);
  return 0;
}

void p2q_strlist_free(p2q_strlist_t *l) { p2q_conf_strlist_free(l); } /* one list type, one free */

int p2q_strlist_add(p2q_strlist_t *l, const char *s, size_t n) {
  for (int i = 0; i < l->n; i++)
    if (strlen(l->items[i]) == n && memcmp(l->items[i], s, n) == 0) return 0;
  char **items = realloc(l->items, sizeof *items * (size_t)(l->n + 1));
  if (!items) return P2Q_ENOMEM;
  l->items = items;
  if (!(items[l->n] = strndup(s, n))) return P2Q_ENOMEM;
  l->n++;
  return 0;
}

int p2q_template_columns(const char *text, p2q_strlist_t *out) {
  out->items = NULL;
  out->n = 0;
  if (!text) return 0;
  int rc = 0;
  if (strchr(text, '{')) {
    for (const char *p = text; *p && !rc; p++) {
      if (*p != '{') continue;
      if (p[1] == '{') { p++; continue; } /* "{{" is a literal brace */
      const char *e = strchr(p, '}');
      if (!e || e == p + 1) { rc = P2Q_EINVAL; break; }
      rc = p2q_strlist_add(out, p + 1, (size_t)(e - p - 1));
      p = e;
    }
  } else {
    const char *p = text;
    while (*p && !rc) {
      while (*p == ' ' || *p == ',' || *p == '\t') p++;
      const char *s = p;
      while (*p && *p != ',') p++;
      const char *e = p;
      while (e > s && isspace((unsigned char)e[-1])) e--;
      if (e > s) rc = p2q_strlist_add(out, s, (size_t)(e - s));
    }
  }
  if (rc) p2q_strlist_free(out);
  return rc;
}

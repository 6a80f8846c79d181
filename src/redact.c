/*
 * redact.c — masks secrets in URLs, conninfos, libpq error texts and any text that carries a
 * registered secret value (see redact.h).
 *
 * Pure string work on caller-owned memory. The registry of secret values is written only by the
 * main thread before other threads start and read afterwards (the logger calls
 * p2q_redact_text from any thread).
 */
#include "pg2qdrant/redact.h"
#include "pg2qdrant/buf.h"
#include "pg2qdrant/json_scan.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_SECRETS 32

static char *g_secrets[MAX_SECRETS];
static int g_n_secrets;

/* ---- structural masking ------------------------------------------------------------------- */

static int is_uri_conninfo(const char *s) {
  return strncmp(s, "postgresql://", 13) == 0 || strncmp(s, "postgres://", 11) == 0;
}

/* Query parameter names whose value is a secret (compared case-insensitively; '-' == '_'). */
static int secret_param(const char *name, size_t n) {
  static const char *const names[] = {"password", "passwd", "pass", "pwd", "sslpassword",
                                      "api_key", "apikey", "key", "token", "access_token",
                                      "auth", "auth_token", "secret", "client_secret",
                                      "signature", "sig", NULL};
  char norm[32];
  if (n == 0 || n >= sizeof norm) return 0;
  for (size_t i = 0; i < n; i++) norm[i] = name[i] == '-' ? '_' : name[i];
  norm[n] = 0;
  for (int i = 0; names[i]; i++)
    if (strcasecmp(norm, names[i]) == 0) return 1;
  size_t sl = strlen("password");
  return n > sl && strncasecmp(norm + n - sl, "password", sl) == 0; /* e.g. sslpassword */
}

/* Walk a URL: plain(s, n) for text kept as is, secret(s, n) for the userinfo password and the
   values of secret query parameters. */
typedef void (*piece_fn)(void *arg, const char *s, size_t n);

static void walk_url(const char *s, piece_fn plain, piece_fn secret, void *arg) {
  const char *scheme = strstr(s, "://");
  const char *auth = scheme ? scheme + 3 : s;
  const char *query = strchr(auth, '?');
  const char *stop = query ? query : auth + strlen(auth);
  const char *at = NULL; /* the last '@' before the query: a raw '@' or '/' in a password is masked too */
  for (const char *p = auth; p < stop; p++)
    if (*p == '@') at = p;
  const char *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
  const char *p = s;
  if (colon) {
    plain(arg, s, (size_t)(colon + 1 - s));
    secret(arg, colon + 1, (size_t)(at - colon - 1));
    p = at;
  }
  if (!query) { plain(arg, p, strlen(p)); return; }
  plain(arg, p, (size_t)(query + 1 - p));
  for (p = query + 1; *p;) {
    size_t n = strcspn(p, "&#");
    const char *eq = memchr(p, '=', n);
    if (eq && secret_param(p, (size_t)(eq - p))) {
      plain(arg, p, (size_t)(eq + 1 - p));
      secret(arg, eq + 1, (size_t)(p + n - eq - 1));
    } else {
      plain(arg, p, n);
    }
    p += n;
    if (*p == '#') { plain(arg, p, strlen(p)); break; }
    if (*p == '&') plain(arg, p++, 1);
  }
}

static void put_plain(void *arg, const char *s, size_t n) { p2q_buf_append(arg, s, n); }
static void put_mask(void *arg, const char *s, size_t n) {
  (void)s; (void)n;
  p2q_buf_puts(arg, P2Q_REDACT_MASK);
}
static void skip(void *arg, const char *s, size_t n) { (void)arg; (void)s; (void)n; }

/* A list of URLs ([qdrant] url = http://a, http://b): each element on its own. An element ends
   at a comma followed (after spaces) by another URL's scheme; other commas stay in their URL. */
static const char *list_next(const char *s) {
  for (const char *p = s; (p = strchr(p, ',')) != NULL; p++) {
    const char *q = p + 1;
    while (*q == ' ' || *q == '\t') q++;
    if (!strncasecmp(q, "http://", 7) || !strncasecmp(q, "https://", 8)) return p;
  }
  return NULL;
}

static void walk_url_list(const char *s, piece_fn plain, piece_fn secret, void *arg) {
  const char *sep;
  while ((sep = list_next(s)) != NULL) {
    char *one = strndup(s, (size_t)(sep - s));
    if (one) walk_url(one, plain, secret, arg);
    else secret(arg, s, (size_t)(sep - s)); /* out of memory: mask the element whole */
    free(one);
    plain(arg, sep, 1);
    s = sep + 1;
  }
  walk_url(s, plain, secret, arg);
}

static void mask_url(p2q_buf_t *b, const char *s) { walk_url_list(s, put_plain, put_mask, b); }

/* Mask password (and sslpassword) values of a keyword/value conninfo ('…' quoting allowed). */
static void mask_kv(p2q_buf_t *b, const char *s) {
  const char *p = s;
  while (*p) {
    const char *kw = p + strspn(p, " \t\n\r");
    const char *kwend = kw + strcspn(kw, " \t\n\r=");
    const char *eq = kwend + strspn(kwend, " \t\n\r");
    if (*eq != '=') { p2q_buf_puts(b, p); return; }
    const char *v = eq + 1 + strspn(eq + 1, " \t\n\r"), *vend = v;
    if (*v == '\'') {
      for (vend = v + 1; *vend && *vend != '\''; vend++)
        if (*vend == '\\' && vend[1]) vend++;
      if (*vend) vend++;
    } else {
      vend = v + strcspn(v, " \t\n\r");
    }
    int secret = secret_param(kw, (size_t)(kwend - kw));
    p2q_buf_append(b, p, (size_t)((secret ? v : vend) - p));
    if (secret) p2q_buf_puts(b, P2Q_REDACT_MASK);
    p = vend;
  }
}

static char *finish(p2q_buf_t *b) {
  if (p2q_buf_error(b)) { p2q_buf_free(b); return NULL; }
  if (!b->data) p2q_buf_puts(b, "");
  return p2q_buf_steal(b);
}

char *p2q_redact_conninfo(const char *s) {
  p2q_buf_t b = P2Q_BUF_INIT;
  if (!s) s = "";
  if (is_uri_conninfo(s)) mask_url(&b, s);
  else mask_kv(&b, s);
  return finish(&b);
}

char *p2q_redact_url(const char *url) {
  p2q_buf_t b = P2Q_BUF_INIT;
  mask_url(&b, url ? url : "");
  return finish(&b);
}

void p2q_redact_libpq_error(char *msg) {
  /* libpq quotes the part of the conninfo it stumbled on: "…" replaces every quoted fragment
     longer than one character (one-character ones are the syntax it expected, like "=") */
  char *w = msg;
  for (const char *r = msg; *r;) {
    const char *close = *r == '"' ? strchr(r + 1, '"') : NULL;
    if (close && close - r - 1 > 1) {
      memcpy(w, "\"...\"", 5);
      w += 5;
      r = close + 1;
    } else if (close) { /* kept whole, so its closing quote does not open the next fragment */
      size_t n = (size_t)(close + 1 - r);
      memmove(w, r, n);
      w += n;
      r = close + 1;
    } else {
      *w++ = *r++;
    }
  }
  *w = 0;
}

/* ---- registered secret values ------------------------------------------------------------- */

static int register_one(const char *secret) {
  if (!secret || strlen(secret) < P2Q_REDACT_MIN_SECRET) return 0;
  for (int i = 0; i < g_n_secrets; i++)
    if (strcmp(g_secrets[i], secret) == 0) return 0;
  if (g_n_secrets == MAX_SECRETS) return -1;
  if (!(g_secrets[g_n_secrets] = strdup(secret))) return -1;
  g_n_secrets++;
  return 0;
}

/* The value and, when it differs, its form inside a log value quoted by p2q_log_q (log.c: `"`
   and `\` escaped, \n \r \t spelled out, other control characters '?'): the logger masks the
   formatted line, where an error text holding the secret is already quoted. */
int p2q_redact_register(const char *secret) {
  if (!secret) return 0;
  size_t n = strlen(secret);
  char *q = malloc(2 * n + 1), *o = q;
  int rc = register_one(secret);
  if (!q) return -1;
  for (const unsigned char *p = (const unsigned char *)secret; *p; p++) {
    if (*p == '"' || *p == '\\') { *o++ = '\\'; *o++ = (char)*p; }
    else if (*p == '\n' || *p == '\r' || *p == '\t') { *o++ = '\\'; *o++ = *p == '\n' ? 'n' : *p == '\r' ? 'r' : 't'; }
    else *o++ = *p < 0x20 ? '?' : (char)*p;
  }
  *o = 0;
  if (strcmp(q, secret) != 0 && register_one(q)) rc = -1;
  free(q);
  return rc;
}

/* Register a URL component as written and percent-decoded (both are the secret). */
static void register_component(const char *s, size_t n) {
  char *raw = strndup(s, n), *dec = malloc(n + 1);
  if (raw && dec) {
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
      int hi = s[i] == '%' && i + 2 < n ? p2q_json_hexval(s[i + 1]) : -1;
      int lo = hi >= 0 ? p2q_json_hexval(s[i + 2]) : -1;
      if (hi >= 0 && lo >= 0) { dec[o++] = (char)(hi << 4 | lo); i += 2; }
      else dec[o++] = s[i];
    }
    dec[o] = 0;
    p2q_redact_register(raw);
    p2q_redact_register(dec);
  }
  free(raw);
  free(dec);
}

static void register_piece(void *arg, const char *s, size_t n) {
  (void)arg;
  register_component(s, n);
}

void p2q_redact_register_url(const char *url) {
  if (url) walk_url_list(url, skip, register_piece, NULL);
}

void p2q_redact_register_conninfo(const char *conninfo) {
  if (!conninfo) return;
  if (is_uri_conninfo(conninfo)) { p2q_redact_register_url(conninfo); return; }
  for (const char *p = conninfo; *p;) {
    const char *kw = p + strspn(p, " \t\n\r");
    const char *kwend = kw + strcspn(kw, " \t\n\r=");
    const char *eq = kwend + strspn(kwend, " \t\n\r");
    if (*eq != '=') return;
    const char *v = eq + 1 + strspn(eq + 1, " \t\n\r"), *vend;
    p2q_buf_t val = P2Q_BUF_INIT;
    if (*v == '\'') {
      for (vend = v + 1; *vend && *vend != '\''; vend++) {
        if (*vend == '\\' && vend[1]) vend++;
        p2q_buf_putc(&val, *vend);
      }
      if (*vend) vend++;
    } else {
      vend = v + strcspn(v, " \t\n\r");
      p2q_buf_append(&val, v, (size_t)(vend - v));
    }
    if (secret_param(kw, (size_t)(kwend - kw)) && val.data) p2q_redact_register(val.data);
    p2q_buf_free(&val);
    p = vend;
  }
}

void p2q_redact_reset(void) {
  for (int i = 0; i < g_n_secrets; i++) free(g_secrets[i]);
  g_n_secrets = 0;
}

size_t p2q_redact_text(char *buf, size_t cap) {
  size_t len = strlen(buf), ml = strlen(P2Q_REDACT_MASK);
  for (int i = 0; i < g_n_secrets; i++) {
    size_t sl = strlen(g_secrets[i]);
    for (char *hit = strstr(buf, g_secrets[i]); hit; hit = strstr(hit, g_secrets[i])) {
      size_t off = (size_t)(hit - buf), tail = len - off - sl;
      size_t keep = off + ml + tail < cap ? tail : (off + ml < cap ? cap - 1 - off - ml : 0);
      if (off + ml >= cap) { buf[off] = 0; len = off; break; } /* no room even for the mask */
      memmove(hit + ml, hit + sl, keep);
      memcpy(hit, P2Q_REDACT_MASK, ml);
      len = off + ml + keep;
      buf[len] = 0;
      hit += ml;
    }
  }
  return len;
}

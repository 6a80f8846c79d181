/*
 * config_load.c — the INI loader: p2q_config_load / p2q_config_load_string read and parse a file
 * into a new p2q_config_t, driven by the tables in config_table.c, then hand it to the
 * cross-checks (config_check.c).
 *
 * Parsing: inih's ini_parse_stream() is fed by our own reader (ld_read), because Debian's inih is
 * built without line numbers in the handler. The reader hands inih one physical line at a time,
 * counts lines, and itself handles section headers: it validates "[kind.NAME]", detects duplicate
 * sections and creates the section's element (with its defaults) even when the section has no
 * keys. The handler (ld_handler) only sees key = value pairs and uses the reader's current line
 * and section (inih's own section buffer truncates long names, so it is ignored).
 * inih is configured around each parse (Debian exposes its options as globals; they are saved
 * and restored): heap line buffer of P2Q_CONF_MAX_LINE bytes (longer lines are an error),
 * multi-line continuation OFF (an indented line is an ordinary line, so a value never silently
 * absorbs the next line), stop at the first error. Comments: whole lines starting with ';' or
 * '#', and inline comments starting with " ;" (so values cannot contain " ;"). Values are taken
 * verbatim (no quotes or escapes are interpreted).
 *
 * Runs on one thread at a time (inih's options are process globals, set around each parse).
 * Everything allocated hangs off the p2q_config_t being built, so every failure path is one
 * p2q_config_free().
 */
#include "config_int.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "pg2qdrant/errors.h"

#define FILE_MAX (16 << 20)

/* ---- sections ------------------------------------------------------------------------------ */

static int valid_name(const char *s, size_t max) {
  size_t n = strlen(s);
  if (n == 0 || n > max) return 0;
  for (; *s; s++)
    if (!(isalnum((unsigned char)*s) || *s == '_' || *s == '-')) return 0;
  return 1;
}

static int unknown_section(ld_t *ld, const char *hdr, const char *dot) {
  const char *best = NULL;
  int bestd = INT_MAX;
  char kind[64];
  snprintf(kind, sizeof kind, "%.*s", dot ? (int)(dot - hdr) : (int)strlen(hdr), hdr);
  for (int i = 0; i < p2q_conf_n_sections; i++)
    if (!dot || p2q_conf_sections[i].repeated)
      p2q_config_suggest(kind, p2q_conf_sections[i].name, &best, &bestd);
  if (!best)
    return p2q_config_fail(ld, P2Q_ENOKEY, ld->line, hdr, NULL, "unknown section");
  return p2q_config_fail(ld, P2Q_ENOKEY, ld->line, hdr, NULL, "unknown section (did you mean '[%s%s]'?)",
                         best, dot ? dot : "");
}

/* Handle a "[...]" line: find or create the section and make it current. */
static int open_section(ld_t *ld, const char *s) {
  char hdr[P2Q_CONF_MAX_LINE];
  const char *rb = strchr(s, ']');
  if (!rb) return p2q_config_fail(ld, P2Q_ECONFIG, ld->line, NULL, NULL, "syntax error: missing ']'");
  const char *t = rb + 1;
  while (isspace((unsigned char)*t)) t++;
  if (*t && *t != ';' && *t != '#')
    return p2q_config_fail(ld, P2Q_ECONFIG, ld->line, NULL, NULL, "syntax error: text after ']'");
  const char *a = s + 1, *b = rb;
  while (a < b && isspace((unsigned char)*a)) a++;
  while (b > a && isspace((unsigned char)b[-1])) b--;
  snprintf(hdr, sizeof hdr, "%.*s", (int)(b - a), a);
  const char *dot = strchr(hdr, '.');
  char kind[64];
  snprintf(kind, sizeof kind, "%.*s", dot ? (int)(dot - hdr) : (int)strlen(hdr), hdr);
  const p2q_conf_section_t *k = p2q_conf_section_find(kind);
  if (!k || (int)strlen(kind) != (dot ? (int)(dot - hdr) : (int)strlen(hdr)))
    return unknown_section(ld, hdr, dot);
  if (k->repeated && !dot)
    return p2q_config_fail(ld, P2Q_ECONFIG, ld->line, hdr, NULL, "needs a name: [%s.NAME]", kind);
  if (!k->repeated && dot)
    return p2q_config_fail(ld, P2Q_ECONFIG, ld->line, hdr, NULL, "[%s] does not take a name", kind);
  size_t max = strcmp(kind, "rule") == 0 ? P2Q_RULE_NAME_MAX : P2Q_NAME_MAX - 1;
  if (k->repeated && !valid_name(dot + 1, max))
    return p2q_config_fail(ld, P2Q_ECONFIG, ld->line, hdr, NULL,
                           "invalid name '%s' (use A-Z a-z 0-9 _ -, 1 to %d characters)", dot + 1, (int)max);
  for (int i = 0; i < ld->n_sects; i++) {
    sect_t *o = &ld->sects[i];
    if (o->kind != k || strcmp(o->label, hdr) != 0) continue;
    if (o->line)
      return p2q_config_fail(ld, P2Q_ECONFIG, ld->line, hdr, NULL, "duplicate section (first on line %d)",
                             o->line);
    o->line = ld->line; /* a singleton seen for the first time */
    ld->cur = i;
    return 0;
  }
  sect_t *ns = realloc(ld->sects, (size_t)(ld->n_sects + 1) * sizeof *ns);
  if (!ns) return p2q_config_fail(ld, P2Q_ENOMEM, ld->line, NULL, NULL, "out of memory");
  ld->sects = ns;
  int idx = p2q_config_add_element(ld->cfg, k, dot + 1, ld->line);
  if (idx < 0) return p2q_config_fail(ld, idx, ld->line, hdr, NULL, "%s", p2q_strerror(idx));
  sect_t *sec = &ld->sects[ld->n_sects];
  memset(sec, 0, sizeof *sec);
  sec->kind = k;
  sec->index = idx;
  sec->line = ld->line;
  snprintf(sec->label, sizeof sec->label, "%.79s", hdr); /* names are validated shorter */
  ld->cur = ld->n_sects++;
  return 0;
}

/* Look at one physical line before inih does: sections are handled here. */
static int scan_line(ld_t *ld, const char *s) {
  if (ld->line == 1 && memcmp(s, "\xEF\xBB\xBF", 3) == 0) s += 3;
  while (isspace((unsigned char)*s)) s++;
  if (*s == 0 || *s == ';' || *s == '#') return 0;
  if (*s == '[') return open_section(ld, s);
  const char *label = ld->cur >= 0 ? ld->sects[ld->cur].label : NULL;
  if (*s == '=' || *s == ':')
    return p2q_config_fail(ld, P2Q_ECONFIG, ld->line, label, NULL, "syntax error: missing key before '='");
  if (!s[strcspn(s, "=:")])
    return p2q_config_fail(ld, P2Q_ECONFIG, ld->line, label, NULL,
                           "syntax error: expected 'key = value', '[section]' or a comment");
  return 0;
}

/* inih reader: one physical line per call, counted. */
static char *ld_read(char *str, int num, void *stream) {
  ld_t *ld = stream;
  if (ld->rc || ld->pos >= ld->len) return NULL;
  const char *p = ld->text + ld->pos;
  const char *nl = memchr(p, '\n', ld->len - ld->pos);
  size_t n = nl ? (size_t)(nl - p) + 1 : ld->len - ld->pos;
  ld->line++;
  if (n + 1 > (size_t)num) {
    p2q_config_fail(ld, P2Q_ECONFIG, ld->line, NULL, NULL, "line too long (more than %d characters)",
                    num - 3);
    return NULL;
  }
  memcpy(str, p, n);
  str[n] = 0;
  ld->pos += n;
  return scan_line(ld, str) < 0 ? NULL : str;
}

static int is_secret_key(const char *k) {
  static const char *const names[] = {"password", "passwd", "pass", "api_key", "apikey", "token",
                                      "secret", "access_token", "api_token", "auth_token",
                                      "bearer", "credentials"};
  static const char *const suffixes[] = {"_password", "_secret", "_token", "_api_key", "_apikey"};
  size_t n = strlen(k);
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (strcasecmp(k, names[i]) == 0) return 1;
  for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
    size_t m = strlen(suffixes[i]);
    if (n > m && strcasecmp(k + n - m, suffixes[i]) == 0) return 1;
  }
  return 0;
}

static int unknown_key(ld_t *ld, const sect_t *s, const char *name) {
  const char *best = NULL;
  int bestd = INT_MAX;
  for (int i = 0; i < s->kind->n_entries; i++)
    p2q_config_suggest(name, s->kind->entries[i].key, &best, &bestd);
  if (best)
    return p2q_config_fail(ld, P2Q_ENOKEY, ld->line, s->label, name,
                           "unknown key '%s' (did you mean '%s'?)", name, best);
  return p2q_config_fail(ld, P2Q_ENOKEY, ld->line, s->label, name, "unknown key '%s'", name);
}

/* inih handler: one key = value of the current section. */
static int ld_handler(void *user, const char *section, const char *name, const char *value) {
  ld_t *ld = user;
  char why[512];
  (void)section;
  if (ld->rc) return 0;
  if (ld->cur < 0)
    return p2q_config_fail(ld, P2Q_ECONFIG, ld->line, NULL, name, "key outside of any [section]"), 0;
  sect_t *s = &ld->sects[ld->cur];
  if (is_secret_key(name)) {
    if (strcmp(s->kind->name, "postgres") == 0)
      return p2q_config_fail(ld, P2Q_ESECRET, ld->line, s->label, name,
                             "secrets are not allowed in the config file: use PGPASSWORD or ~/.pgpass "
                             "(libpq's environment)"), 0;
    return p2q_config_fail(ld, P2Q_ESECRET, ld->line, s->label, name,
                           "secrets are not allowed in the config file: put the secret in an environment "
                           "variable and set api_key_env = VAR"), 0;
  }
  const p2q_conf_entry_t *e = p2q_conf_entry_find(s->kind, name);
  if (!e) return unknown_key(ld, s, name), 0;
  int idx = (int)(e - s->kind->entries);
  if (s->keyline[idx])
    return p2q_config_fail(ld, P2Q_ECONFIG, ld->line, s->label, name, "set twice (lines %d and %d)",
                           s->keyline[idx], ld->line), 0;
  s->keyline[idx] = ld->line;
  if (!*value && (e->flags & P2Q_CF_REQUIRED))
    return p2q_config_fail(ld, P2Q_ECONFIG, ld->line, s->label, name, "empty value (required)"), 0;
  if (!*value && e->type != P2Q_CT_STRING && e->type != P2Q_CT_ENV && e->type != P2Q_CT_LIST)
    return p2q_config_fail(ld, P2Q_ECONFIG, ld->line, s->label, name, "empty value"), 0;
  why[0] = 0;
  char *field = p2q_conf_elem(ld->cfg, s->kind, s->index) + e->offset;
  int rc = p2q_conf_parse_value(e, value, field, why, sizeof why);
  if (rc < 0)
    return p2q_config_fail(ld, rc, ld->line, s->label, name, "%s", why[0] ? why : p2q_strerror(rc)), 0;
  return 1;
}


/* ---- entry points ------------------------------------------------------------------------- */

static int run_inih(ld_t *ld) {
  bool stack = ini_use_stack, realloc_ok = ini_allow_realloc, multi = ini_allow_multiline,
       stop = ini_stop_on_first_error;
  int maxl = ini_max_line, init = ini_initial_alloc;
  ini_use_stack = false;
  ini_allow_realloc = false;
  ini_initial_alloc = ini_max_line = P2Q_CONF_MAX_LINE;
  ini_allow_multiline = false;
  ini_stop_on_first_error = true;
  int r = ini_parse_stream(ld_read, ld, ld_handler, ld);
  ini_use_stack = stack;
  ini_allow_realloc = realloc_ok;
  ini_allow_multiline = multi;
  ini_stop_on_first_error = stop;
  ini_max_line = maxl;
  ini_initial_alloc = init;
  if (ld->rc) return ld->rc;
  if (r == -2) return p2q_config_fail(ld, P2Q_ENOMEM, 0, NULL, NULL, "out of memory");
  if (r != 0)
    return p2q_config_fail(ld, P2Q_ECONFIG, r, NULL, NULL,
                           "syntax error: expected 'key = value', '[section]' or a comment");
  return 0;
}

static int load_text(const char *text, size_t len, const char *name, char *basedir,
                     p2q_config_t **out, char *errbuf, size_t errlen) {
  ld_t ld = {.file = name, .basedir = basedir, .text = text, .len = len, .cur = -1,
             .err = errbuf, .errlen = errlen};
  int rc;
  *out = NULL;
  if (errbuf && errlen) errbuf[0] = 0;
  if (!(ld.cfg = calloc(1, sizeof *ld.cfg)) || !(ld.cfg->path = strdup(name)) ||
      !(ld.sects = calloc((size_t)p2q_conf_n_sections, sizeof *ld.sects))) {
    rc = p2q_config_fail(&ld, P2Q_ENOMEM, 0, NULL, NULL, "out of memory");
    goto fail;
  }
  for (int i = 0; i < p2q_conf_n_sections; i++) {
    const p2q_conf_section_t *k = &p2q_conf_sections[i];
    if (k->repeated) continue;
    if ((rc = p2q_conf_apply_defaults(k, (char *)ld.cfg)) < 0) {
      p2q_config_fail(&ld, rc, 0, k->name, NULL, "bad built-in default: %s", p2q_strerror(rc));
      goto fail;
    }
    ld.sects[ld.n_sects].kind = k;
    ld.sects[ld.n_sects].index = -1;
    snprintf(ld.sects[ld.n_sects].label, sizeof ld.sects[0].label, "%s", k->name);
    ld.n_sects++;
  }
  if (memchr(text, 0, len)) {
    rc = p2q_config_fail(&ld, P2Q_ECONFIG, 0, NULL, NULL, "contains a NUL byte (not a text file?)");
    goto fail;
  }
  if ((rc = run_inih(&ld)) < 0 || (rc = p2q_config_check_all(&ld)) < 0) goto fail;
  free(ld.sects);
  *out = ld.cfg;
  return 0;
fail:
  free(ld.sects);
  p2q_config_free(ld.cfg);
  return rc;
}

int p2q_config_load_string(const char *text, const char *name, p2q_config_t **out, char *errbuf,
                           size_t errlen) {
  const char *slash = strrchr(name, '/');
  char *dir = NULL;
  if (slash && !(dir = strndup(name, slash == name ? 1 : (size_t)(slash - name)))) {
    if (errbuf && errlen) snprintf(errbuf, errlen, "%s: out of memory", name);
    return P2Q_ENOMEM;
  }
  int rc = load_text(text, strlen(text), name, dir, out, errbuf, errlen);
  free(dir);
  return rc;
}

/* Absolute directory of the file as named (a symlinked file keeps its link's directory). */
static char *config_dir(const char *path) {
  const char *slash = strrchr(path, '/');
  char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
  char *real = dir ? realpath(dir, NULL) : NULL;
  if (!real) return dir; /* best effort: relative to the directory as written */
  free(dir);
  return real;
}

int p2q_config_load(const char *path, p2q_config_t **out, char *errbuf, size_t errlen) {
  char *buf = NULL, *real = NULL;
  size_t len = 0, cap = 0;
  int rc = 0, e = 0;
  FILE *f = fopen(path, "rb");
  *out = NULL;
  if (!f) {
    e = errno;
    rc = e == ENOENT ? P2Q_ENOENT : P2Q_EIO;
    goto fail;
  }
  for (;;) {
    if (len + 4096 + 1 > cap) {
      char *nb = realloc(buf, cap = cap ? cap * 2 : 8192);
      if (!nb) { rc = P2Q_ENOMEM; e = ENOMEM; goto fail; }
      buf = nb;
    }
    size_t n = fread(buf + len, 1, cap - len - 1, f);
    len += n;
    if (n == 0) break;
    if (len > FILE_MAX) { rc = P2Q_ECONFIG; e = EFBIG; goto fail; }
  }
  if (ferror(f)) {
    e = errno ? errno : EIO;
    rc = P2Q_EIO;
    goto fail;
  }
  fclose(f);
  f = NULL;
  buf[len] = 0;
  real = config_dir(path);
  rc = load_text(buf, len, path, real, out, errbuf, errlen);
  free(real);
  free(buf);
  return rc;
fail:
  if (errbuf && errlen) snprintf(errbuf, errlen, "%s: cannot read: %s", path, strerror(e));
  if (f) fclose(f);
  free(buf);
  return rc;
}

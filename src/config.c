/*
 * config.c — INI loader, validation, dump and describe, driven by the tables in config_table.c.
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
 * After parsing, cross-checks run over the sections (required keys, text/vector_column,
 * embedder references and dimensions, chunking, worker event types, retry bounds); the first
 * error wins and is formatted "FILE:LINE: [section] key: reason". Everything allocated hangs off
 * the p2q_config_t being built, so every failure path is one p2q_config_free().
 */
#include "pg2qdrant/config.h"
#include "pg2qdrant/qdrant_name.h"
#include "pg2qdrant/collection.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "pg2qdrant/errors.h"
#include "pg2qdrant/log.h"
#include "pg2qdrant/model_config.h"

#define FILE_MAX (16 << 20)
#define MINILM_DIM 384

typedef struct {
  const p2q_conf_section_t *kind;
  int index;                     /* element index (repeated kinds) or -1 */
  char label[P2Q_NAME_MAX + 16]; /* "postgres" or "rule.docs" */
  int line;                      /* header line, 0 when the section is absent */
  int keyline[P2Q_CONF_MAX_KEYS];
} sect_t;

typedef struct {
  p2q_config_t *cfg;
  const char *file; /* name used in messages */
  char *basedir;    /* for relative paths (NULL: leave them relative) */
  const char *text;
  size_t len, pos;
  int line;
  sect_t *sects;
  int n_sects;
  int cur; /* index into sects, -1 before the first header */
  int rc;  /* first error, 0 if none */
  char *err;
  size_t errlen;
} ld_t;

/* ---- small helpers ------------------------------------------------------------------------ */

static int ld_fail(ld_t *ld, int rc, int line, const char *sect, const char *key, const char *fmt,
                   ...) __attribute__((format(printf, 6, 7)));

static int ld_fail(ld_t *ld, int rc, int line, const char *sect, const char *key, const char *fmt,
                   ...) {
  char why[600], where[32] = "";
  va_list ap;
  if (ld->rc) return ld->rc;
  ld->rc = rc;
  if (!ld->err || !ld->errlen) return rc;
  va_start(ap, fmt);
  vsnprintf(why, sizeof why, fmt, ap);
  va_end(ap);
  if (line > 0) snprintf(where, sizeof where, ":%d", line);
  if (sect && key)
    snprintf(ld->err, ld->errlen, "%s%s: [%s] %s: %s", ld->file, where, sect, key, why);
  else if (sect) snprintf(ld->err, ld->errlen, "%s%s: [%s]: %s", ld->file, where, sect, why);
  else if (key) snprintf(ld->err, ld->errlen, "%s%s: %s: %s", ld->file, where, key, why);
  else snprintf(ld->err, ld->errlen, "%s%s: %s", ld->file, where, why);
  return rc;
}

int p2q_levenshtein(const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  int *row = malloc((lb + 1) * sizeof *row);
  if (!row) return INT_MAX;
  for (size_t j = 0; j <= lb; j++) row[j] = (int)j;
  for (size_t i = 1; i <= la; i++) {
    int diag = row[0];
    row[0] = (int)i;
    for (size_t j = 1; j <= lb; j++) {
      int up = row[j];
      int cost = tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]);
      int best = diag + cost;
      if (up + 1 < best) best = up + 1;
      if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
      row[j] = best;
      diag = up;
    }
  }
  int d = row[lb];
  free(row);
  return d;
}

/* Keep `cand` as the suggestion when it is closer to `word` than the current best. */
static void suggest(const char *word, const char *cand, const char **best, int *bestd) {
  int d = p2q_levenshtein(word, cand);
  int limit = (int)strlen(word) / 3 > 2 ? (int)strlen(word) / 3 : 2;
  if (d <= limit && d < (int)strlen(cand) && d < *bestd) {
    *best = cand;
    *bestd = d;
  }
}

/* ---- elements and sections ---------------------------------------------------------------- */

static int add_element(p2q_config_t *cfg, const p2q_conf_section_t *k, const char *name, int line) {
  int *count = p2q_conf_count(cfg, k);
  char **arr = (char **)((char *)cfg + k->arr_offset);
  char *na = realloc(*arr, (size_t)(*count + 1) * k->elem_size);
  if (!na) return P2Q_ENOMEM;
  *arr = na;
  char *base = na + (size_t)*count * k->elem_size;
  memset(base, 0, k->elem_size);
  (*count)++;
  snprintf(base + k->name_offset, P2Q_NAME_MAX, "%s", name);
  *(int *)(base + k->line_offset) = line;
  int rc = p2q_conf_apply_defaults(k, base);
  return rc < 0 ? rc : *count - 1;
}

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
      suggest(kind, p2q_conf_sections[i].name, &best, &bestd);
  if (!best)
    return ld_fail(ld, P2Q_ENOKEY, ld->line, hdr, NULL, "unknown section");
  return ld_fail(ld, P2Q_ENOKEY, ld->line, hdr, NULL, "unknown section (did you mean '[%s%s]'?)",
                 best, dot ? dot : "");
}

/* Handle a "[...]" line: find or create the section and make it current. */
static int open_section(ld_t *ld, const char *s) {
  char hdr[P2Q_CONF_MAX_LINE];
  const char *rb = strchr(s, ']');
  if (!rb) return ld_fail(ld, P2Q_ECONFIG, ld->line, NULL, NULL, "syntax error: missing ']'");
  const char *t = rb + 1;
  while (isspace((unsigned char)*t)) t++;
  if (*t && *t != ';' && *t != '#')
    return ld_fail(ld, P2Q_ECONFIG, ld->line, NULL, NULL, "syntax error: text after ']'");
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
    return ld_fail(ld, P2Q_ECONFIG, ld->line, hdr, NULL, "needs a name: [%s.NAME]", kind);
  if (!k->repeated && dot)
    return ld_fail(ld, P2Q_ECONFIG, ld->line, hdr, NULL, "[%s] does not take a name", kind);
  size_t max = strcmp(kind, "rule") == 0 ? P2Q_RULE_NAME_MAX : P2Q_NAME_MAX - 1;
  if (k->repeated && !valid_name(dot + 1, max))
    return ld_fail(ld, P2Q_ECONFIG, ld->line, hdr, NULL,
                   "invalid name '%s' (use A-Z a-z 0-9 _ -, 1 to %d characters)", dot + 1, (int)max);
  for (int i = 0; i < ld->n_sects; i++) {
    sect_t *o = &ld->sects[i];
    if (o->kind != k || strcmp(o->label, hdr) != 0) continue;
    if (o->line)
      return ld_fail(ld, P2Q_ECONFIG, ld->line, hdr, NULL, "duplicate section (first on line %d)",
                     o->line);
    o->line = ld->line; /* a singleton seen for the first time */
    ld->cur = i;
    return 0;
  }
  sect_t *ns = realloc(ld->sects, (size_t)(ld->n_sects + 1) * sizeof *ns);
  if (!ns) return ld_fail(ld, P2Q_ENOMEM, ld->line, NULL, NULL, "out of memory");
  ld->sects = ns;
  int idx = add_element(ld->cfg, k, dot + 1, ld->line);
  if (idx < 0) return ld_fail(ld, idx, ld->line, hdr, NULL, "%s", p2q_strerror(idx));
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
    return ld_fail(ld, P2Q_ECONFIG, ld->line, label, NULL, "syntax error: missing key before '='");
  if (!s[strcspn(s, "=:")])
    return ld_fail(ld, P2Q_ECONFIG, ld->line, label, NULL,
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
    ld_fail(ld, P2Q_ECONFIG, ld->line, NULL, NULL, "line too long (more than %d characters)",
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
    suggest(name, s->kind->entries[i].key, &best, &bestd);
  if (best)
    return ld_fail(ld, P2Q_ENOKEY, ld->line, s->label, name,
                   "unknown key '%s' (did you mean '%s'?)", name, best);
  return ld_fail(ld, P2Q_ENOKEY, ld->line, s->label, name, "unknown key '%s'", name);
}

/* inih handler: one key = value of the current section. */
static int ld_handler(void *user, const char *section, const char *name, const char *value) {
  ld_t *ld = user;
  char why[512];
  (void)section;
  if (ld->rc) return 0;
  if (ld->cur < 0)
    return ld_fail(ld, P2Q_ECONFIG, ld->line, NULL, name, "key outside of any [section]"), 0;
  sect_t *s = &ld->sects[ld->cur];
  if (is_secret_key(name)) {
    if (strcmp(s->kind->name, "postgres") == 0)
      return ld_fail(ld, P2Q_ESECRET, ld->line, s->label, name,
                     "secrets are not allowed in the config file: use PGPASSWORD or ~/.pgpass "
                     "(libpq's environment)"), 0;
    return ld_fail(ld, P2Q_ESECRET, ld->line, s->label, name,
                   "secrets are not allowed in the config file: put the secret in an environment "
                   "variable and set api_key_env = VAR"), 0;
  }
  const p2q_conf_entry_t *e = p2q_conf_entry_find(s->kind, name);
  if (!e) return unknown_key(ld, s, name), 0;
  int idx = (int)(e - s->kind->entries);
  if (s->keyline[idx])
    return ld_fail(ld, P2Q_ECONFIG, ld->line, s->label, name, "set twice (lines %d and %d)",
                   s->keyline[idx], ld->line), 0;
  s->keyline[idx] = ld->line;
  if (!*value && (e->flags & P2Q_CF_REQUIRED))
    return ld_fail(ld, P2Q_ECONFIG, ld->line, s->label, name, "empty value (required)"), 0;
  if (!*value && e->type != P2Q_CT_STRING && e->type != P2Q_CT_ENV && e->type != P2Q_CT_LIST)
    return ld_fail(ld, P2Q_ECONFIG, ld->line, s->label, name, "empty value"), 0;
  why[0] = 0;
  char *field = p2q_conf_elem(ld->cfg, s->kind, s->index) + e->offset;
  int rc = p2q_conf_parse_value(e, value, field, why, sizeof why);
  if (rc < 0)
    return ld_fail(ld, rc, ld->line, s->label, name, "%s", why[0] ? why : p2q_strerror(rc)), 0;
  return 1;
}

/* ---- cross-checks ------------------------------------------------------------------------- */

/* Line of `key` in section `s` (the section line when the key is not set). */
static int keyline(const sect_t *s, const char *key) {
  const p2q_conf_entry_t *e = p2q_conf_entry_find(s->kind, key);
  int l = e ? s->keyline[e - s->kind->entries] : 0;
  return l ? l : s->line;
}

static int keyset(const sect_t *s, const char *key) {
  const p2q_conf_entry_t *e = p2q_conf_entry_find(s->kind, key);
  return e && s->keyline[e - s->kind->entries];
}

static int check_required(ld_t *ld, const sect_t *s) {
  for (int i = 0; i < s->kind->n_entries; i++)
    if ((s->kind->entries[i].flags & P2Q_CF_REQUIRED) && !s->keyline[i] && !s->kind->entries[i].def)
      return ld_fail(ld, P2Q_ECONFIG, s->line, s->label, NULL, "missing required key '%s'",
                     s->kind->entries[i].key);
  return 0;
}

/* Resolve a relative path against the config file's directory. */
static int resolve_path(ld_t *ld, char **p) {
  if (!*p || !**p || **p == '/' || !ld->basedir) return 0;
  size_t n = strlen(ld->basedir) + strlen(*p) + 2;
  char *abs = malloc(n);
  if (!abs) return P2Q_ENOMEM;
  snprintf(abs, n, "%s/%s", ld->basedir, *p);
  free(*p);
  *p = abs;
  return 0;
}

static int check_embedder(ld_t *ld, const sect_t *s, p2q_embedder_config_t *em) {
  unsigned mine = em->type == P2Q_EMB_MINILM ? P2Q_CF_MINILM : P2Q_CF_OPENAI;
  for (int i = 0; i < s->kind->n_entries; i++) {
    const p2q_conf_entry_t *e = &s->kind->entries[i];
    if (s->keyline[i] && (e->flags & (P2Q_CF_MINILM | P2Q_CF_OPENAI)) && !(e->flags & mine))
      return ld_fail(ld, P2Q_ECONFIG, s->keyline[i], s->label, e->key,
                     "only valid for type = %s", (e->flags & P2Q_CF_MINILM) ? "minilm" : "openai");
  }
  if (em->type == P2Q_EMB_MINILM) em->dim = MINILM_DIM; /* until model_dir's config.json is read */
  else if (em->dimensions) em->dim = em->dimensions; /* else resolved from its rules */
  if (em->type == P2Q_EMB_OPENAI) {
    free(em->model_dir);
    em->model_dir = NULL;
    if (!em->url)
      return ld_fail(ld, P2Q_ECONFIG, s->line, s->label, NULL, "type = openai requires 'url'");
    if (!em->model)
      return ld_fail(ld, P2Q_ECONFIG, s->line, s->label, NULL, "type = openai requires 'model'");
    return em->chunk_vocab && *em->chunk_vocab ? resolve_path(ld, &em->chunk_vocab) : 0;
  }
  if (!em->model_dir || !*em->model_dir)
    return ld_fail(ld, P2Q_ECONFIG, keyline(s, "model_dir"), s->label, "model_dir",
                   "empty value (required for type = minilm)");
  int rc = resolve_path(ld, &em->model_dir);
  if (rc) return rc;
  p2q_model_cfg_t mc; /* the model's dimension and token limit, from its JSON files */
  char why[512];
  if (p2q_model_cfg_load(em->model_dir, &mc, why, sizeof why) != 0)
    return ld_fail(ld, P2Q_ECONFIG, keyline(s, "model_dir"), s->label, "model_dir", "%s", why);
  em->dim = mc.hidden;
  em->model_max_tokens = mc.max_tokens;
  return 0;
}

static int check_rule_embedder(ld_t *ld, const sect_t *s, p2q_rule_config_t *r) {
  if (!r->embedder)
    return ld_fail(ld, P2Q_ECONFIG, keyline(s, "text"), s->label, "text",
                   "'text' requires 'embedder = NAME' naming an [embedder.NAME] section");
  const p2q_embedder_config_t *em = p2q_config_embedder(ld->cfg, r->embedder);
  if (!em) {
    const char *best = NULL;
    int bestd = INT_MAX;
    for (int i = 0; i < ld->cfg->n_embedders; i++)
      suggest(r->embedder, ld->cfg->embedders[i].name, &best, &bestd);
    if (best)
      return ld_fail(ld, P2Q_ECONFIG, keyline(s, "embedder"), s->label, "embedder",
                     "no [embedder.%s] section (did you mean '%s'?)", r->embedder, best);
    return ld_fail(ld, P2Q_ECONFIG, keyline(s, "embedder"), s->label, "embedder",
                   "no [embedder.%s] section", r->embedder);
  }
  int64_t edim = em->type == P2Q_EMB_MINILM ? em->dim : em->dimensions;
  if (em->type == P2Q_EMB_MINILM) {
    const char *base = em->model_dir ? strrchr(em->model_dir, '/') : NULL;
    snprintf(r->model, sizeof r->model, "minilm/%s", base ? base + 1 : em->model_dir ? em->model_dir : "");
  } else {
    snprintf(r->model, sizeof r->model, "openai/%s@%lld", em->model ? em->model : "", (long long)edim);
  }
  if (r->dimension == 0 && edim == 0)
    return ld_fail(ld, P2Q_ECONFIG, keyline(s, "embedder"), s->label, "dimension",
                   "unknown: set dimension here or dimensions in [embedder.%s]", em->name);
  if (r->dimension && edim && r->dimension != edim)
    return ld_fail(ld, P2Q_ECONFIG, keyline(s, "dimension"), s->label, "dimension",
                   "%lld does not match [embedder.%s] (%lld)", (long long)r->dimension, em->name,
                   (long long)edim);
  if (r->dimension == 0) r->dimension = edim;
  if (em->type == P2Q_EMB_OPENAI && r->chunk_tokens > 0 && (!em->chunk_vocab || !*em->chunk_vocab))
    return ld_fail(ld, P2Q_ECONFIG, keyline(s, "chunk_tokens"), s->label, "chunk_tokens",
                   "[embedder.%s] (openai) needs 'chunk_vocab' to count word pieces", em->name);
  if (em->type == P2Q_EMB_MINILM && r->chunk_tokens > em->model_max_tokens - 2)
    return ld_fail(ld, P2Q_ECONFIG, keyline(s, "chunk_tokens"), s->label, "chunk_tokens",
                   "%lld is more than [embedder.%s]'s model takes per chunk (%lld tokens, %lld with "
                   "[CLS]/[SEP])", (long long)r->chunk_tokens, em->name, (long long)em->model_max_tokens - 2,
                   (long long)em->model_max_tokens);
  if (edim == 0) { /* the embedder's answers are checked against its rules' dimension */
    p2q_embedder_config_t *mem = (p2q_embedder_config_t *)em; /* ld->cfg is ours */
    if (mem->dim && mem->dim != r->dimension)
      return ld_fail(ld, P2Q_ECONFIG, keyline(s, "dimension"), s->label, "dimension",
                     "%lld differs from another rule using [embedder.%s] (%lld), which has no "
                     "dimensions: one model answers in one size", (long long)r->dimension,
                     em->name, (long long)mem->dim);
    mem->dim = r->dimension;
  }
  return 0;
}

/* The same template syntax as capture.c: {column}, "{{" for a literal brace. */
static const char *template_error(const char *t) {
  if (!strchr(t, '{')) return NULL; /* a column list */
  for (const char *p = t; *p; p++) {
    if (*p != '{') continue;
    if (p[1] == '{') { p++; continue; }
    const char *e = strchr(p, '}');
    if (!e) return "unclosed '{' in template (write '{{' for a literal brace)";
    if (e == p + 1) return "empty '{}' in template";
    p = e;
  }
  return NULL;
}

/* sparse = bm25 needs text; its numbers; payload index syntax. */
static int check_sparse(ld_t *ld, const sect_t *s, p2q_rule_config_t *r) {
  char why[300], buf[512];
  const char *f, *t, *fl;
  for (int i = 0; i < r->index.n; i++)
    if (p2q_collection_parse_index(r->index.items[i], buf, sizeof buf, &f, &t, &fl, why, sizeof why))
      return ld_fail(ld, P2Q_ECONFIG, keyline(s, "index"), s->label, "index", "%s", why);
  if (r->hnsw_ef_construct && r->hnsw_ef_construct < 4)
    return ld_fail(ld, P2Q_ECONFIG, keyline(s, "hnsw_ef_construct"), s->label, "hnsw_ef_construct",
                   "must be 0 (Qdrant's default) or at least 4");
  if (!r->sparse) return 0;
  if (!r->text)
    return ld_fail(ld, P2Q_ECONFIG, keyline(s, "sparse"), s->label, "sparse",
                   "'sparse = bm25' needs 'text' (the text the keyword vector is built from)");
  if (r->chunk_tokens > 0)
    return ld_fail(ld, P2Q_ECONFIG, keyline(s, "sparse"), s->label, "sparse",
                   "'sparse' is not supported with chunk_tokens yet");
  if (p2q_qdrant_name_check(r->sparse_name, why, sizeof why) || !*r->sparse_name)
    return ld_fail(ld, P2Q_ECONFIG, keyline(s, "sparse_name"), s->label, "sparse_name", "%s",
                   *r->sparse_name ? why : "must not be empty");
  const char *keys[] = {"bm25_k1", "bm25_b"};
  const char *vals[] = {r->bm25_k1, r->bm25_b};
  const double hi[] = {10, 1};
  for (int i = 0; i < 2; i++) {
    char *end;
    double v = strtod(vals[i], &end);
    if (end == vals[i] || *end || !(v >= 0 && v <= hi[i]))
      return ld_fail(ld, P2Q_ECONFIG, keyline(s, keys[i]), s->label, keys[i], "'%s' is not a number in 0..%g",
                     vals[i], hi[i]);
  }
  return 0;
}

/* Rules writing the same collection and vector must agree on its size and distance. */
static int check_collection(ld_t *ld, const sect_t *s, const p2q_rule_config_t *r) {
  char why[400];
  if (p2q_qdrant_name_check(r->collection, why, sizeof why))
    return ld_fail(ld, P2Q_ECONFIG, keyline(s, "collection"), s->label, "collection", "%s", why);
  for (int i = 0; i < s->index; i++) {
    const p2q_rule_config_t *o = &ld->cfg->rules[i];
    const char *va = o->vector_name ? o->vector_name : "";
    const char *vb = r->vector_name ? r->vector_name : "";
    if (strcmp(o->collection, r->collection) != 0) continue;
    if (p2q_collection_rules_conflict(r, o, why, sizeof why))
      return ld_fail(ld, P2Q_ECONFIG, s->line, s->label, NULL, "%s", why);
    if (r->chunk_tokens > 0 || o->chunk_tokens > 0)
      return ld_fail(ld, P2Q_ECONFIG, s->line, s->label, NULL,
                     "a chunked rule cannot share collection '%s' with [rule.%s] (its points are per chunk)",
                     r->collection, r->chunk_tokens > 0 ? o->name : o->name);
    if (strcmp(va, vb) != 0 || !o->dimension || !r->dimension) continue;
    if (o->dimension != r->dimension)
      return ld_fail(ld, P2Q_ECONFIG, keyline(s, "dimension"), s->label, "dimension",
                     "%lld conflicts with [rule.%s] (%lld) for the same collection '%s'",
                     (long long)r->dimension, o->name, (long long)o->dimension, r->collection);
    if (o->distance != r->distance)
      return ld_fail(ld, P2Q_ECONFIG, keyline(s, "distance"), s->label, "distance",
                     "%s conflicts with [rule.%s] (%s) for the same collection '%s'",
                     p2q_distance_name(r->distance), o->name, p2q_distance_name(o->distance),
                     r->collection);
  }
  return 0;
}

static int check_rule(ld_t *ld, const sect_t *s, p2q_rule_config_t *r) {
  int rc;
  int keyword_only = r->sparse && !r->embedder; /* text feeds the BM25 vector only */
  if (r->text && r->vector_column && !keyword_only) {
    int lt = keyline(s, "text"), lv = keyline(s, "vector_column");
    return ld_fail(ld, P2Q_ECONFIG, lt > lv ? lt : lv, s->label, lt > lv ? "text" : "vector_column",
                   "'text' and 'vector_column' are mutually exclusive (lines %d and %d)",
                   lt < lv ? lt : lv, lt > lv ? lt : lv);
  }
  if (!r->text && !r->vector_column)
    return ld_fail(ld, P2Q_ECONFIG, s->line, s->label, NULL,
                   "set exactly one of 'text' (embedded) or 'vector_column' (precomputed)");
  const char *terr = r->text ? template_error(r->text) : NULL;
  if (terr) return ld_fail(ld, P2Q_ECONFIG, keyline(s, "text"), s->label, "text", "%s", terr);
  if (r->text && !keyword_only && (rc = check_rule_embedder(ld, s, r)) < 0) return rc;
  if ((rc = check_sparse(ld, s, r)) < 0) return rc;
  if (r->vector_column && r->dimension == 0)
    return ld_fail(ld, P2Q_ECONFIG, keyline(s, "vector_column"), s->label, "vector_column",
                   "'vector_column' requires 'dimension' (1..65536)");
  if (r->vector_column && r->chunk_tokens > 0)
    return ld_fail(ld, P2Q_ECONFIG, keyline(s, "chunk_tokens"), s->label, "chunk_tokens",
                   "chunking applies to 'text' only");
  if (r->chunk_tokens == 0 && r->chunk_overlap > 0)
    return ld_fail(ld, P2Q_ECONFIG, keyline(s, "chunk_overlap"), s->label, "chunk_overlap",
                   "requires chunk_tokens > 0");
  if (r->chunk_tokens > 0 && r->chunk_overlap >= r->chunk_tokens)
    return ld_fail(ld, P2Q_ECONFIG, keyline(s, "chunk_overlap"), s->label, "chunk_overlap",
                   "must be less than chunk_tokens (%lld)", (long long)r->chunk_tokens);
  return check_collection(ld, s, r);
}

/* Fill rule defaults that depend on other keys (event_type, watch). */
static int fill_rule(p2q_rule_config_t *r) {
  if (!r->event_type && !(r->event_type = strdup(r->name))) return P2Q_ENOMEM;
  if (r->watch.n > 0) return 0;
  for (int i = 0; i < r->columns.n; i++)
    if (p2q_conf_strlist_push(&r->watch, r->columns.items[i], strlen(r->columns.items[i])) < 0)
      return P2Q_ENOMEM;
  return 0;
}

static int produced(const p2q_config_t *cfg, const char *et) {
  for (int i = 0; i < cfg->n_rules; i++)
    if (strcmp(cfg->rules[i].event_type, et) == 0) return 1;
  return 0;
}

static int check_worker(ld_t *ld, const sect_t *s, const p2q_worker_config_t *w) {
  for (int j = 0; j < w->event_types.n; j++) {
    const char *et = w->event_types.items[j], *best = NULL;
    int bestd = INT_MAX;
    if (produced(ld->cfg, et)) continue;
    for (int i = 0; i < ld->cfg->n_rules; i++)
      suggest(et, ld->cfg->rules[i].event_type, &best, &bestd);
    if (best)
      return ld_fail(ld, P2Q_ECONFIG, keyline(s, "event_types"), s->label, "event_types",
                     "no rule produces event type '%s' (did you mean '%s'?)", et, best);
    return ld_fail(ld, P2Q_ECONFIG, keyline(s, "event_types"), s->label, "event_types",
                   "no rule produces event type '%s' (a rule's event_type defaults to its name)",
                   et);
  }
  return 0;
}

/* No [worker.*]: one worker "default" claiming every rule's event type. Else warn on orphans. */
static int finish_workers(ld_t *ld) {
  p2q_config_t *cfg = ld->cfg;
  const p2q_conf_section_t *k = p2q_conf_section_find("worker");
  if (cfg->n_rules == 0) {
    P2Q_WARN("config_no_rules", "file=%s", ld->file);
    return 0;
  }
  if (cfg->n_workers == 0) {
    int idx = add_element(cfg, k, "default", 0);
    if (idx < 0) return idx;
    for (int i = 0; i < cfg->n_rules; i++) {
      p2q_strlist_t *l = &cfg->workers[idx].event_types;
      const char *et = cfg->rules[i].event_type;
      if (!p2q_conf_strlist_has(l, et) && p2q_conf_strlist_push(l, et, strlen(et)) < 0)
        return P2Q_ENOMEM;
    }
    return 0;
  }
  for (int i = 0; i < cfg->n_rules; i++) {
    int claimed = 0;
    for (int w = 0; w < cfg->n_workers && !claimed; w++)
      claimed = p2q_conf_strlist_has(&cfg->workers[w].event_types, cfg->rules[i].event_type);
    if (!claimed)
      P2Q_WARN("config_unclaimed_event_type", "file=%s rule=%s event_type=%s", ld->file,
               cfg->rules[i].name, cfg->rules[i].event_type);
  }
  return 0;
}

static int check_daemon(ld_t *ld, const sect_t *s) {
  char lo[32];
  if (ld->cfg->retry_max_ms >= ld->cfg->retry_min_ms) return 0;
  p2q_config_format_duration(ld->cfg->retry_min_ms, lo, sizeof lo);
  const char *key = keyset(s, "retry_max") ? "retry_max" : "retry_min";
  return ld_fail(ld, P2Q_ECONFIG, keyline(s, key), s->label, key,
                 "retry_max must be >= retry_min (%s)", lo);
}

static int finalize(ld_t *ld) {
  p2q_config_t *cfg = ld->cfg;
  int rc = 0;
  for (int i = 0; i < cfg->n_rules; i++)
    if ((rc = fill_rule(&cfg->rules[i])) < 0)
      return ld_fail(ld, rc, 0, NULL, NULL, "out of memory");
  for (int i = 0; i < 2 * ld->n_sects && rc == 0; i++) { /* embedders first: rules need their model's shape */
    const sect_t *s = &ld->sects[i % ld->n_sects];
    if ((i < ld->n_sects) != (strcmp(s->kind->name, "embedder") == 0)) continue;
    char *base = p2q_conf_elem(cfg, s->kind, s->index);
    if ((rc = check_required(ld, s)) < 0) break;
    if (strcmp(s->kind->name, "daemon") == 0) rc = check_daemon(ld, s);
    else if (strcmp(s->kind->name, "qdrant") == 0) rc = resolve_path(ld, &cfg->qdrant_ca_file);
    else if (strcmp(s->kind->name, "embedder") == 0) rc = check_embedder(ld, s, (void *)base);
    else if (strcmp(s->kind->name, "rule") == 0) rc = check_rule(ld, s, (void *)base);
    else if (strcmp(s->kind->name, "worker") == 0) rc = check_worker(ld, s, (void *)base);
  }
  if (rc == 0) rc = finish_workers(ld);
  for (int i = 0; i < cfg->n_embedders; i++) cfg->embedders[i].retry_max_ms = cfg->retry_max_ms;
  if (rc < 0 && !ld->rc) ld_fail(ld, rc, 0, NULL, NULL, "%s", p2q_strerror(rc));
  return ld->rc;
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
  if (r == -2) return ld_fail(ld, P2Q_ENOMEM, 0, NULL, NULL, "out of memory");
  if (r != 0)
    return ld_fail(ld, P2Q_ECONFIG, r, NULL, NULL,
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
    rc = ld_fail(&ld, P2Q_ENOMEM, 0, NULL, NULL, "out of memory");
    goto fail;
  }
  for (int i = 0; i < p2q_conf_n_sections; i++) {
    const p2q_conf_section_t *k = &p2q_conf_sections[i];
    if (k->repeated) continue;
    if ((rc = p2q_conf_apply_defaults(k, (char *)ld.cfg)) < 0) {
      ld_fail(&ld, rc, 0, k->name, NULL, "bad built-in default: %s", p2q_strerror(rc));
      goto fail;
    }
    ld.sects[ld.n_sects].kind = k;
    ld.sects[ld.n_sects].index = -1;
    snprintf(ld.sects[ld.n_sects].label, sizeof ld.sects[0].label, "%s", k->name);
    ld.n_sects++;
  }
  if (memchr(text, 0, len)) {
    rc = ld_fail(&ld, P2Q_ECONFIG, 0, NULL, NULL, "contains a NUL byte (not a text file?)");
    goto fail;
  }
  if ((rc = run_inih(&ld)) < 0 || (rc = finalize(&ld)) < 0) goto fail;
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

void p2q_config_free(p2q_config_t *cfg) {
  if (!cfg) return;
  for (int i = 0; i < p2q_conf_n_sections; i++) {
    const p2q_conf_section_t *k = &p2q_conf_sections[i];
    if (!k->repeated) {
      p2q_conf_free_fields(k, (char *)cfg);
      continue;
    }
    for (int j = 0; j < *p2q_conf_count(cfg, k); j++)
      p2q_conf_free_fields(k, p2q_conf_elem(cfg, k, j));
    free(*(char **)((char *)cfg + k->arr_offset));
  }
  free(cfg->path);
  free(cfg);
}

const p2q_rule_config_t *p2q_config_rule(const p2q_config_t *cfg, const char *name) {
  for (int i = 0; i < cfg->n_rules; i++)
    if (strcmp(cfg->rules[i].name, name) == 0) return &cfg->rules[i];
  return NULL;
}

const p2q_embedder_config_t *p2q_config_embedder(const p2q_config_t *cfg, const char *name) {
  for (int i = 0; i < cfg->n_embedders; i++)
    if (strcmp(cfg->embedders[i].name, name) == 0) return &cfg->embedders[i];
  return NULL;
}

/* ---- dump ------------------------------------------------------------------------------- */

static void dump_value(const p2q_conf_entry_t *e, const char *base, FILE *f) {
  const void *p = base + e->offset;
  char buf[32];
  switch (e->type) {
  case P2Q_CT_STRING:
  case P2Q_CT_ENV: {
    const char *s = *(char *const *)p;
    char *m = (e->flags & P2Q_CF_MASK) && s ? p2q_config_mask_conninfo(s) : NULL;
    if (e->type == P2Q_CT_ENV && s && *s)
      fprintf(f, "; %s is %s in the environment\n", s, getenv(s) ? "set" : "not set");
    const char *v = m ? m : (s && !(e->flags & P2Q_CF_MASK)) ? s : "";
    /* No blank before a leading ';' (inih reads " ;" as the start of a comment). */
    fprintf(f, "%s =%s%s\n", e->key, *v && *v != ';' ? " " : "", v);
    free(m);
    return;
  }
  case P2Q_CT_INT: fprintf(f, "%s = %lld\n", e->key, (long long)*(const int64_t *)p); return;
  case P2Q_CT_DURATION:
    if (strlen(e->key) > 3 && strcmp(e->key + strlen(e->key) - 3, "_ms") == 0)
      snprintf(buf, sizeof buf, "%lld", (long long)*(const int64_t *)p); /* unit in the name */
    else
      p2q_config_format_duration(*(const int64_t *)p, buf, sizeof buf);
    fprintf(f, "%s = %s\n", e->key, buf);
    return;
  case P2Q_CT_BOOL: fprintf(f, "%s = %s\n", e->key, *(const int *)p ? "true" : "false"); return;
  case P2Q_CT_ENUM:
    fprintf(f, "%s = %s\n", e->key,
            (e->flags & P2Q_CF_ENUM_STR) ? *(char *const *)p : e->choices[*(const int *)p]);
    return;
  case P2Q_CT_LIST: {
    const p2q_strlist_t *l = p;
    fprintf(f, "%s =", e->key);
    for (int i = 0; i < l->n; i++)
      fprintf(f, "%s%s%s", i ? "," : "", l->items[i][0] == ';' ? "" : " ", l->items[i]);
    fputc('\n', f);
    return;
  }
  }
}

/* Is entry e meaningful for this element? (embedder keys depend on the type) */
static int applies(const p2q_conf_section_t *k, const p2q_conf_entry_t *e, const char *base) {
  if (strcmp(k->name, "embedder") != 0 || !(e->flags & (P2Q_CF_MINILM | P2Q_CF_OPENAI))) return 1;
  int t = ((const p2q_embedder_config_t *)(const void *)base)->type;
  return (e->flags & (t == P2Q_EMB_MINILM ? P2Q_CF_MINILM : P2Q_CF_OPENAI)) != 0;
}

void p2q_config_dump(const p2q_config_t *cfg, FILE *f) {
  fprintf(f, "; pg2qdrant effective configuration of %s\n", cfg->path ? cfg->path : "(string)");
  fprintf(f, "; defaults filled in; secrets masked (*_env keys show variable names only)\n");
  for (int i = 0; i < p2q_conf_n_sections; i++) {
    const p2q_conf_section_t *k = &p2q_conf_sections[i];
    int n = k->repeated ? *p2q_conf_count(cfg, k) : 1;
    for (int j = 0; j < n; j++) {
      const char *base = p2q_conf_elem(cfg, k, j);
      if (k->repeated) fprintf(f, "\n[%s.%s]\n", k->name, base + k->name_offset);
      else fprintf(f, "\n[%s]\n", k->name);
      for (int x = 0; x < k->n_entries; x++)
        if (applies(k, &k->entries[x], base)) dump_value(&k->entries[x], base, f);
    }
  }
}

/*
 * config.c — the loaded configuration: its lifetime (free), lookups, the elements of repeated
 * sections, "did you mean" hints, the loader's error messages and the dump, all generic over the
 * tables in config_table.c.
 *
 * Loading is config_load.c (reading and parsing the INI text) and config_check.c (the
 * cross-checks), which share the load state of config_int.h and call down into this file. A
 * loaded config is immutable (reload builds a new one), so the lookups and the dump may run on
 * any thread that holds it.
 */
#include "pg2qdrant/config.h"

#include <ctype.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_int.h"
#include "pg2qdrant/errors.h"

/* ---- the load's errors and hints ---------------------------------------------------------- */

int p2q_config_fail(ld_t *ld, int rc, int line, const char *sect, const char *key, const char *fmt,
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
void p2q_config_suggest(const char *word, const char *cand, const char **best, int *bestd) {
  int d = p2q_levenshtein(word, cand);
  int limit = (int)strlen(word) / 3 > 2 ? (int)strlen(word) / 3 : 2;
  if (d <= limit && d < (int)strlen(cand) && d < *bestd) {
    *best = cand;
    *bestd = d;
  }
}

/* ---- elements ------------------------------------------------------------------------------ */

int p2q_config_add_element(p2q_config_t *cfg, const p2q_conf_section_t *k, const char *name, int line) {
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

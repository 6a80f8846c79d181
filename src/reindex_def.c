/*
 * reindex_def.c — a rule's definition as INI text, and the daemon's effective configuration
 * while a re-embedding runs (reindex.h). Main or loop thread (the config loader is not
 * reentrant: one thread loads configs at a time, and in the daemon that is the loop thread).
 *
 * The definition of a rule is the text of its [rule.R] section and of its embedder's section,
 * every key written out with its effective value (not masked: it is stored in PostgreSQL, next to
 * the outbox, never logged). Parsing it back goes through the one config grammar, so the old
 * definition means exactly what it meant when its version was built.
 *
 * The effective configuration is the file's configuration plus, per running re-embedding:
 *  - DUAL: the rule writes the new version by its physical name (NAME__v{to}), and a shadow rule
 *    (its OLD definition, its old embedder under a private name, event type = the rule's) writes
 *    the old version by its physical name (NAME__v{from}, or NAME when legacy);
 *  - NEW_ONLY (legacy swap under way): the rule writes NAME__v{to}, no shadow;
 *  - SINGLE: unchanged (NAME: through the alias); after a swap only when the rule is the new
 *    definition (collection NULL: the signature is checked, nothing else changes).
 * Shadows come after the file's rules and embedders (indexes of those are unchanged), are named
 * like their rule once loaded (point ids derive from the rule name), and carry shadow_of.
 */
#include "pg2qdrant/reindex.h"
#include "pg2qdrant/errors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int p2q_reindex_rule_signature(const p2q_rule_config_t *r, char *out, size_t n) {
  return p2q_reindex_signature(r, r->text && r->embedder ? r->dimension : r->vector_column ? r->dimension : 0, out, n);
}

static int applies(const char *kind, const p2q_conf_entry_t *e, const char *base) {
  if (strcmp(kind, "embedder") != 0 || !(e->flags & (P2Q_CF_MINILM | P2Q_CF_OPENAI))) return 1;
  int t = ((const p2q_embedder_config_t *)(const void *)base)->type;
  return (e->flags & (t == P2Q_EMB_MINILM ? P2Q_CF_MINILM : P2Q_CF_OPENAI)) != 0;
}

static void put_value(p2q_buf_t *b, const p2q_conf_entry_t *e, const char *base) {
  const void *p = base + e->offset;
  switch (e->type) {
  case P2Q_CT_STRING:
  case P2Q_CT_ENV: {
    const char *s = *(char *const *)p;
    if (s) p2q_buf_printf(b, "%s = %s\n", e->key, s);
    return;
  }
  case P2Q_CT_INT: p2q_buf_printf(b, "%s = %lld\n", e->key, (long long)*(const int64_t *)p); return;
  case P2Q_CT_DURATION: p2q_buf_printf(b, "%s = %lldms\n", e->key, (long long)*(const int64_t *)p); return;
  case P2Q_CT_BOOL: p2q_buf_printf(b, "%s = %s\n", e->key, *(const int *)p ? "true" : "false"); return;
  case P2Q_CT_ENUM: {
    const char *v = (e->flags & P2Q_CF_ENUM_STR) ? *(char *const *)p : e->choices[*(const int *)p];
    if (v) p2q_buf_printf(b, "%s = %s\n", e->key, v);
    return;
  }
  case P2Q_CT_LIST: {
    const p2q_strlist_t *l = p;
    if (!l->n) return;
    p2q_buf_printf(b, "%s = ", e->key);
    for (int i = 0; i < l->n; i++) p2q_buf_printf(b, "%s%s", i ? ", " : "", l->items[i]);
    p2q_buf_putc(b, '\n');
    return;
  }
  }
}

static void put_section(p2q_buf_t *b, const char *kind, const char *name, const char *base) {
  const p2q_conf_section_t *k = p2q_conf_section_find(kind);
  p2q_buf_printf(b, "[%s.%s]\n", kind, name);
  for (int x = 0; k && x < k->n_entries; x++)
    if (applies(kind, &k->entries[x], base)) put_value(b, &k->entries[x], base);
}

int p2q_reindex_definition(const p2q_config_t *cfg, const p2q_rule_config_t *r, p2q_buf_t *out) {
  put_section(out, "rule", r->name, (const char *)r);
  const p2q_embedder_config_t *e = r->embedder ? p2q_config_embedder(cfg, r->embedder) : NULL;
  if (e) put_section(out, "embedder", e->name, (const char *)e);
  return p2q_buf_error(out);
}

/* The old definition `def` as the shadow sections [rule.p2qoldK] / [embedder.p2qoldK], event type
   `event_type`. Line-based: the definition is our own output. */
static int shadow_text(p2q_buf_t *b, const char *def, int k, const char *event_type) {
  int in_rule = 0;
  for (const char *l = def; *l;) {
    const char *end = strchr(l, '\n');
    size_t n = end ? (size_t)(end - l) : strlen(l);
    if (!strncmp(l, "[rule.", 6)) {
      in_rule = 1;
      /* the real target is set once loaded: a legacy old version is named like the rule's */
      p2q_buf_printf(b, "\n[rule.p2qold%d]\ncollection = p2qold%d\nevent_type = %s\n", k, k, event_type);
    } else if (!strncmp(l, "[embedder.", 10)) {
      in_rule = 0;
      p2q_buf_printf(b, "\n[embedder.p2qold%d]\n", k);
    } else if (in_rule && !strncmp(l, "embedder = ", 11)) {
      p2q_buf_printf(b, "embedder = p2qold%d\n", k);
    } else if (!(in_rule && (!strncmp(l, "collection = ", 13) || !strncmp(l, "event_type = ", 13)))) {
      p2q_buf_append(b, l, n);
      p2q_buf_putc(b, '\n');
    }
    l += n + (end != NULL);
  }
  return p2q_buf_error(b);
}

static char *read_file(const char *path) {
  FILE *f = fopen(path, "rb");
  p2q_buf_t b = P2Q_BUF_INIT;
  char chunk[8192];
  size_t n;
  if (!f) return NULL;
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) p2q_buf_append(&b, chunk, n);
  int bad = ferror(f) || p2q_buf_error(&b);
  fclose(f);
  if (bad) { p2q_buf_free(&b); return NULL; }
  p2q_buf_putc(&b, '\n');
  return p2q_buf_steal(&b);
}

int p2q_reindex_effective(const p2q_config_t *base, const p2q_reindex_eff_t *jobs, int n, p2q_config_t **out,
                          char *err, size_t errlen) {
  p2q_config_t *file = NULL, *eff = NULL;
  p2q_buf_t text = P2Q_BUF_INIT;
  char *src = NULL;
  int rc;
  *out = NULL;
  if ((rc = p2q_config_load(base->path, &file, err, errlen))) goto fail;
  rc = P2Q_ECONFIG;
  if (!p2q_config_equal(file, base)) {
    snprintf(err, errlen, "%s changed since it was loaded: send SIGHUP (or restart) first", base->path);
    goto fail;
  }
  if (!(src = read_file(base->path))) { snprintf(err, errlen, "%s: cannot read", base->path); goto fail; }
  p2q_buf_puts(&text, src);
  for (int i = 0; i < n; i++) {
    const p2q_rule_config_t *r = p2q_config_rule(base, jobs[i].rule);
    if (!r) { snprintf(err, errlen, "rule %s is not in the configuration", jobs[i].rule); goto fail; }
    char sig[1024];
    if (jobs[i].signature && (p2q_reindex_rule_signature(r, sig, sizeof sig) < 0 || strcmp(sig, jobs[i].signature))) {
      snprintf(err, errlen, "rule %s in the running configuration is not the definition being built "
               "(restart the daemon with the configuration `apply` or `reindex` started it from)", jobs[i].rule);
      goto fail;
    }
    if (jobs[i].shadow_def && shadow_text(&text, jobs[i].shadow_def, i, r->event_type)) {
      rc = P2Q_ENOMEM;
      goto fail;
    }
  }
  if ((rc = p2q_config_load_string(p2q_buf_str(&text), base->path, &eff, err, errlen))) goto fail;
  for (int i = 0; i < n; i++) {
    int primary = -1;
    char shadow[32];
    snprintf(shadow, sizeof shadow, "p2qold%d", i);
    for (int j = 0; j < eff->n_rules; j++) {
      p2q_rule_config_t *r = &eff->rules[j];
      if (!strcmp(r->name, jobs[i].rule) && !r->shadow_of && primary < 0) {
        primary = j;
        if (jobs[i].collection && !(r->collection = (free(r->collection), strdup(jobs[i].collection)))) {
          rc = P2Q_ENOMEM;
          goto fail;
        }
      } else if (!strcmp(r->name, shadow) && primary >= 0) {
        if (!(r->collection = (free(r->collection), strdup(jobs[i].shadow_collection)))) {
          rc = P2Q_ENOMEM;
          goto fail;
        }
        r->shadow_of = primary + 1;
        snprintf(r->name, sizeof r->name, "%s", jobs[i].rule);
      }
    }
  }
  *out = eff;
  eff = NULL;
  rc = 0;
fail:
  p2q_config_free(file);
  p2q_config_free(eff);
  p2q_buf_free(&text);
  free(src);
  return rc;
}

/*
 * config_check.c — the loader's cross-checks, run over everything parsed (config_load.c) before
 * a config is handed out: rules that involve more than one key or section.
 *
 * The checks: required keys, text/vector_column, embedder references and dimensions (embedder
 * sections first: rules need their model's shape, read from the model directory's JSON files by
 * model_config.c), chunking, sparse vectors and payload indexes, collections shared by rules,
 * worker event types, retry bounds; and the defaults that depend on other keys (a rule's
 * event_type and watch, the implicit worker "default").
 *
 * Runs on the loading thread, once per load. Invariant: the first error wins (it is formatted
 * "FILE:LINE: [section] key: reason" by p2q_config_fail) and stops the load.
 */
#include "config_int.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg2qdrant/collection.h"
#include "pg2qdrant/errors.h"
#include "pg2qdrant/log.h"
#include "pg2qdrant/model_config.h"
#include "pg2qdrant/qdrant_name.h"

#define MINILM_DIM 384

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
      return p2q_config_fail(ld, P2Q_ECONFIG, s->line, s->label, NULL, "missing required key '%s'",
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
      return p2q_config_fail(ld, P2Q_ECONFIG, s->keyline[i], s->label, e->key,
                             "only valid for type = %s", (e->flags & P2Q_CF_MINILM) ? "minilm" : "openai");
  }
  if (em->type == P2Q_EMB_MINILM) em->dim = MINILM_DIM; /* until model_dir's config.json is read */
  else if (em->dimensions) em->dim = em->dimensions; /* else resolved from its rules */
  if (em->type == P2Q_EMB_OPENAI) {
    free(em->model_dir);
    em->model_dir = NULL;
    if (!em->url)
      return p2q_config_fail(ld, P2Q_ECONFIG, s->line, s->label, NULL, "type = openai requires 'url'");
    if (!em->model)
      return p2q_config_fail(ld, P2Q_ECONFIG, s->line, s->label, NULL, "type = openai requires 'model'");
    return em->chunk_vocab && *em->chunk_vocab ? resolve_path(ld, &em->chunk_vocab) : 0;
  }
  if (!em->model_dir || !*em->model_dir)
    return p2q_config_fail(ld, P2Q_ECONFIG, keyline(s, "model_dir"), s->label, "model_dir",
                           "empty value (required for type = minilm)");
  int rc = resolve_path(ld, &em->model_dir);
  if (rc) return rc;
  p2q_model_cfg_t mc; /* the model's dimension and token limit, from its JSON files */
  char why[512];
  if (p2q_model_cfg_load(em->model_dir, &mc, why, sizeof why) != 0)
    return p2q_config_fail(ld, P2Q_ECONFIG, keyline(s, "model_dir"), s->label, "model_dir", "%s", why);
  em->dim = mc.hidden;
  em->model_max_tokens = mc.max_tokens;
  return 0;
}

static int check_rule_embedder(ld_t *ld, const sect_t *s, p2q_rule_config_t *r) {
  if (!r->embedder)
    return p2q_config_fail(ld, P2Q_ECONFIG, keyline(s, "text"), s->label, "text",
                           "'text' requires 'embedder = NAME' naming an [embedder.NAME] section");
  const p2q_embedder_config_t *em = p2q_config_embedder(ld->cfg, r->embedder);
  if (!em) {
    const char *best = NULL;
    int bestd = INT_MAX;
    for (int i = 0; i < ld->cfg->n_embedders; i++)
      p2q_config_suggest(r->embedder, ld->cfg->embedders[i].name, &best, &bestd);
    if (best)
      return p2q_config_fail(ld, P2Q_ECONFIG, keyline(s, "embedder"), s->label, "embedder",
                             "no [embedder.%s] section (did you mean '%s'?)", r->embedder, best);
    return p2q_config_fail(ld, P2Q_ECONFIG, keyline(s, "embedder"), s->label, "embedder",
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
    return p2q_config_fail(ld, P2Q_ECONFIG, keyline(s, "embedder"), s->label, "dimension",
                           "unknown: set dimension here or dimensions in [embedder.%s]", em->name);
  if (r->dimension && edim && r->dimension != edim)
    return p2q_config_fail(ld, P2Q_ECONFIG, keyline(s, "dimension"), s->label, "dimension",
                           "%lld does not match [embedder.%s] (%lld)", (long long)r->dimension, em->name,
                           (long long)edim);
  if (r->dimension == 0) r->dimension = edim;
  if (em->type == P2Q_EMB_OPENAI && r->chunk_tokens > 0 && (!em->chunk_vocab || !*em->chunk_vocab))
    return p2q_config_fail(ld, P2Q_ECONFIG, keyline(s, "chunk_tokens"), s->label, "chunk_tokens",
                           "[embedder.%s] (openai) needs 'chunk_vocab' to count word pieces", em->name);
  if (em->type == P2Q_EMB_MINILM && r->chunk_tokens > em->model_max_tokens - 2)
    return p2q_config_fail(ld, P2Q_ECONFIG, keyline(s, "chunk_tokens"), s->label, "chunk_tokens",
                           "%lld is more than [embedder.%s]'s model takes per chunk (%lld tokens, "
                           "%lld with [CLS]/[SEP])", (long long)r->chunk_tokens, em->name,
                           (long long)em->model_max_tokens - 2, (long long)em->model_max_tokens);
  if (edim == 0) { /* the embedder's answers are checked against its rules' dimension */
    p2q_embedder_config_t *mem = (p2q_embedder_config_t *)em; /* ld->cfg is ours */
    if (mem->dim && mem->dim != r->dimension)
      return p2q_config_fail(ld, P2Q_ECONFIG, keyline(s, "dimension"), s->label, "dimension",
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
      return p2q_config_fail(ld, P2Q_ECONFIG, keyline(s, "index"), s->label, "index", "%s", why);
  if (r->hnsw_ef_construct && r->hnsw_ef_construct < 4)
    return p2q_config_fail(ld, P2Q_ECONFIG, keyline(s, "hnsw_ef_construct"), s->label, "hnsw_ef_construct",
                           "must be 0 (Qdrant's default) or at least 4");
  if (!r->sparse) return 0;
  if (!r->text)
    return p2q_config_fail(ld, P2Q_ECONFIG, keyline(s, "sparse"), s->label, "sparse",
                           "'sparse = bm25' needs 'text' (the text the keyword vector is built from)");
  if (r->chunk_tokens > 0)
    return p2q_config_fail(ld, P2Q_ECONFIG, keyline(s, "sparse"), s->label, "sparse",
                           "'sparse' is not supported with chunk_tokens yet");
  if (p2q_qdrant_name_check(r->sparse_name, why, sizeof why) || !*r->sparse_name)
    return p2q_config_fail(ld, P2Q_ECONFIG, keyline(s, "sparse_name"), s->label, "sparse_name", "%s",
                           *r->sparse_name ? why : "must not be empty");
  const char *keys[] = {"bm25_k1", "bm25_b"};
  const char *vals[] = {r->bm25_k1, r->bm25_b};
  const double hi[] = {10, 1};
  for (int i = 0; i < 2; i++) {
    char *end;
    double v = strtod(vals[i], &end);
    if (end == vals[i] || *end || !(v >= 0 && v <= hi[i]))
      return p2q_config_fail(ld, P2Q_ECONFIG, keyline(s, keys[i]), s->label, keys[i],
                             "'%s' is not a number in 0..%g", vals[i], hi[i]);
  }
  return 0;
}

/* Rules writing the same collection and vector must agree on its size and distance. */
static int check_collection(ld_t *ld, const sect_t *s, const p2q_rule_config_t *r) {
  char why[400];
  if (p2q_qdrant_name_check(r->collection, why, sizeof why))
    return p2q_config_fail(ld, P2Q_ECONFIG, keyline(s, "collection"), s->label, "collection", "%s", why);
  for (int i = 0; i < s->index; i++) {
    const p2q_rule_config_t *o = &ld->cfg->rules[i];
    const char *va = o->vector_name ? o->vector_name : "";
    const char *vb = r->vector_name ? r->vector_name : "";
    if (strcmp(o->collection, r->collection) != 0) continue;
    if (p2q_collection_rules_conflict(r, o, why, sizeof why))
      return p2q_config_fail(ld, P2Q_ECONFIG, s->line, s->label, NULL, "%s", why);
    if (r->chunk_tokens > 0 || o->chunk_tokens > 0)
      return p2q_config_fail(ld, P2Q_ECONFIG, s->line, s->label, NULL,
                             "a chunked rule cannot share collection '%s' with [rule.%s] (its points "
                             "are per chunk)", r->collection, r->chunk_tokens > 0 ? o->name : o->name);
    if (strcmp(va, vb) != 0 || !o->dimension || !r->dimension) continue;
    if (o->dimension != r->dimension)
      return p2q_config_fail(ld, P2Q_ECONFIG, keyline(s, "dimension"), s->label, "dimension",
                             "%lld conflicts with [rule.%s] (%lld) for the same collection '%s'",
                             (long long)r->dimension, o->name, (long long)o->dimension, r->collection);
    if (o->distance != r->distance)
      return p2q_config_fail(ld, P2Q_ECONFIG, keyline(s, "distance"), s->label, "distance",
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
    return p2q_config_fail(ld, P2Q_ECONFIG, lt > lv ? lt : lv, s->label, lt > lv ? "text" : "vector_column",
                           "'text' and 'vector_column' are mutually exclusive (lines %d and %d)",
                           lt < lv ? lt : lv, lt > lv ? lt : lv);
  }
  if (!r->text && !r->vector_column)
    return p2q_config_fail(ld, P2Q_ECONFIG, s->line, s->label, NULL,
                           "set exactly one of 'text' (embedded) or 'vector_column' (precomputed)");
  const char *terr = r->text ? template_error(r->text) : NULL;
  if (terr) return p2q_config_fail(ld, P2Q_ECONFIG, keyline(s, "text"), s->label, "text", "%s", terr);
  if (r->text && !keyword_only && (rc = check_rule_embedder(ld, s, r)) < 0) return rc;
  if ((rc = check_sparse(ld, s, r)) < 0) return rc;
  if (r->vector_column && r->dimension == 0)
    return p2q_config_fail(ld, P2Q_ECONFIG, keyline(s, "vector_column"), s->label, "vector_column",
                           "'vector_column' requires 'dimension' (1..65536)");
  if (r->vector_column && r->chunk_tokens > 0)
    return p2q_config_fail(ld, P2Q_ECONFIG, keyline(s, "chunk_tokens"), s->label, "chunk_tokens",
                           "chunking applies to 'text' only");
  if (r->chunk_tokens == 0 && r->chunk_overlap > 0)
    return p2q_config_fail(ld, P2Q_ECONFIG, keyline(s, "chunk_overlap"), s->label, "chunk_overlap",
                           "requires chunk_tokens > 0");
  if (r->chunk_tokens > 0 && r->chunk_overlap >= r->chunk_tokens)
    return p2q_config_fail(ld, P2Q_ECONFIG, keyline(s, "chunk_overlap"), s->label, "chunk_overlap",
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
      p2q_config_suggest(et, ld->cfg->rules[i].event_type, &best, &bestd);
    if (best)
      return p2q_config_fail(ld, P2Q_ECONFIG, keyline(s, "event_types"), s->label, "event_types",
                             "no rule produces event type '%s' (did you mean '%s'?)", et, best);
    return p2q_config_fail(ld, P2Q_ECONFIG, keyline(s, "event_types"), s->label, "event_types",
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
    int idx = p2q_config_add_element(cfg, k, "default", 0);
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
  return p2q_config_fail(ld, P2Q_ECONFIG, keyline(s, key), s->label, key,
                         "retry_max must be >= retry_min (%s)", lo);
}

int p2q_config_check_all(ld_t *ld) {
  p2q_config_t *cfg = ld->cfg;
  int rc = 0;
  for (int i = 0; i < cfg->n_rules; i++)
    if ((rc = fill_rule(&cfg->rules[i])) < 0)
      return p2q_config_fail(ld, rc, 0, NULL, NULL, "out of memory");
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
  if (rc < 0 && !ld->rc) p2q_config_fail(ld, rc, 0, NULL, NULL, "%s", p2q_strerror(rc));
  return ld->rc;
}

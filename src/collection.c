/*
 * collection.c — collections and payload indexes from the configuration (see collection.h).
 *
 * Owns nothing long-lived. The spec of a collection is the union of every rule writing it: one
 * dense vector per distinct vector name (keyword-only rules have none), one sparse vector
 * (modifier idf) per sparse_name, and the collection settings (hnsw_m, hnsw_ef_construct,
 * on_disk, on_disk_payload, quantization, shard_number, replication_factor,
 * write_consistency_factor, index) — the loader refuses two rules that set one differently.
 *
 * What Qdrant changes in place (PATCH /collections/{c}): per-vector on_disk, hnsw_config,
 * quantization_config; params replication_factor, write_consistency_factor, on_disk_payload;
 * missing payload indexes (PUT …/index). What it cannot: a vector's size or distance (fatal:
 * writes would fail), a vector or sparse vector added, shard_number, an index's type — those
 * are reported, and need a new collection. Settings left at their default (-1/0/"default"/
 * "none") are not managed: whatever the collection has is kept.
 * Pure except p2q_collection_ensure (blocking, main thread).
 */
#include "pg2qdrant/collection.h"
#include "pg2qdrant/errors.h"
#include "pg2qdrant/log.h"
#include "pg2qdrant/qdrant_sync.h"

#include <stdlib.h>
#include <string.h>

static const char *const index_types[] = {"keyword", "integer", "float", "bool", "geo",
                                          "datetime", "text", "uuid", NULL};

/* Qdrant's distance names (the config's distance enum, as Qdrant spells it). Here, with the
   collection grammar, so that config_check.c calls down into this file and never the other way. */
const char *p2q_distance_name(p2q_distance_t d) {
  static const char *const n[] = {"Cosine", "Dot", "Euclid", "Manhattan"};
  return (unsigned)d < 4 ? n[d] : "?";
}

int64_t p2q_collection_default_replication(const p2q_config_t *cfg) {
  (void)cfg; /* the cluster default needs the peer count: p2q_collection_cluster_replication */
  return 0;
}

int p2q_collection_cluster_peers(const cJSON *result) {
  const cJSON *st = cJSON_GetObjectItemCaseSensitive(result, "status");
  const cJSON *peers = cJSON_GetObjectItemCaseSensitive(result, "peers");
  if (!cJSON_IsString(st) || strcmp(st->valuestring, "enabled") || !cJSON_IsObject(peers)) return 1;
  int n = cJSON_GetArraySize(peers);
  return n > 0 ? n : 1;
}

int64_t p2q_collection_cluster_replication(int64_t configured, int peers) {
  return configured ? configured : peers >= 2 ? 2 : 0;
}

int p2q_collection_single_replica_warning(const cJSON *info, int peers, const char *collection, char *out,
                                          size_t n) {
  const cJSON *params = cJSON_GetObjectItemCaseSensitive(
      cJSON_GetObjectItemCaseSensitive(info, "config"), "params");
  const cJSON *rf = cJSON_GetObjectItemCaseSensitive(params, "replication_factor");
  long r = cJSON_IsNumber(rf) ? (long)rf->valuedouble : 1;
  if (peers < 2 || r >= 2) return 0;
  snprintf(out, n, "collection %s has one replica per shard on a %d-node Qdrant cluster: while a node is down, "
           "writes to its shards fail (nothing is lost: they wait) -- fix: replication_factor = 2 and add a "
           "replica of each shard (README \"Qdrant clusters\")", collection, peers);
  return 1;
}

/* Nodes of the Qdrant cluster (GET /cluster): 1 for a single node, 0 when it cannot tell. */
static int cluster_peers(p2q_qdrant_blocking_t *b) {
  cJSON *root = NULL;
  const cJSON *res = NULL;
  char msg[256];
  int rc = p2q_qdrant_blocking_path(b, "GET", "/cluster", NULL, &root, &res, NULL, NULL, msg, sizeof msg);
  int peers = rc ? 0 : p2q_collection_cluster_peers(res);
  cJSON_Delete(root);
  return peers;
}

int p2q_collection_parse_index(const char *item, char *buf, size_t buflen, const char **field,
                               const char **type, const char **flag, char *why, size_t n) {
  if (strlen(item) >= buflen) { snprintf(why, n, "index \"%s\" is too long", item); return P2Q_ECONFIG; }
  strcpy(buf, item);
  char *c1 = strchr(buf, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
  if (!c1 || c1 == buf) {
    snprintf(why, n, "index \"%s\": write field:type (e.g. category:keyword)", item);
    return P2Q_ECONFIG;
  }
  *c1 = 0;
  if (c2) *c2 = 0;
  *field = buf;
  *type = c1 + 1;
  *flag = c2 ? c2 + 1 : NULL;
  int ok = 0;
  for (int i = 0; index_types[i]; i++) ok |= !strcmp(*type, index_types[i]);
  if (!ok) {
    snprintf(why, n, "index \"%s\": type \"%s\" is not one of keyword, integer, float, bool, geo, "
             "datetime, text, uuid", item, *type);
    return P2Q_ECONFIG;
  }
  if (*flag && strcmp(*flag, "tenant") && strcmp(*flag, "principal")) {
    snprintf(why, n, "index \"%s\": the third part is tenant or principal, not \"%s\"", item, *flag);
    return P2Q_ECONFIG;
  }
  if (*flag && !strcmp(*flag, "tenant") && strcmp(*type, "keyword") && strcmp(*type, "uuid")) {
    snprintf(why, n, "index \"%s\": tenant applies to keyword and uuid indexes", item);
    return P2Q_ECONFIG;
  }
  if (*flag && !strcmp(*flag, "principal") && strcmp(*type, "integer") && strcmp(*type, "float") &&
      strcmp(*type, "datetime")) {
    snprintf(why, n, "index \"%s\": principal applies to integer, float and datetime indexes", item);
    return P2Q_ECONFIG;
  }
  return 0;
}

/* ---- spec ----------------------------------------------------------------------------------- */

static int has_dense(const p2q_rule_config_t *r) { return r->dimension > 0; }

#define CONFLICT(cond, key, fmt, va, vb)                                                       \
  if (cond) {                                                                                  \
    snprintf(why, n, key " " fmt " conflicts with [rule.%s] (" fmt ") for collection '%s'", va, \
             b->name, vb, a->collection);                                                      \
    return P2Q_ECONFIG;                                                                        \
  }

int p2q_collection_rules_conflict(const p2q_rule_config_t *a, const p2q_rule_config_t *b, char *why,
                                  size_t n) {
  CONFLICT(a->hnsw_m >= 0 && b->hnsw_m >= 0 && a->hnsw_m != b->hnsw_m, "hnsw_m", "%lld",
           (long long)a->hnsw_m, (long long)b->hnsw_m);
  CONFLICT(a->hnsw_ef_construct && b->hnsw_ef_construct && a->hnsw_ef_construct != b->hnsw_ef_construct,
           "hnsw_ef_construct", "%lld", (long long)a->hnsw_ef_construct, (long long)b->hnsw_ef_construct);
  CONFLICT(a->on_disk_payload && b->on_disk_payload && a->on_disk_payload != b->on_disk_payload,
           "on_disk_payload", "%s", a->on_disk_payload == P2Q_TRI_TRUE ? "true" : "false",
           b->on_disk_payload == P2Q_TRI_TRUE ? "true" : "false");
  CONFLICT(a->quantization && b->quantization && a->quantization != b->quantization, "quantization",
           "%s", a->quantization == P2Q_QUANT_SCALAR ? "scalar" : "binary",
           b->quantization == P2Q_QUANT_SCALAR ? "scalar" : "binary");
  CONFLICT(a->shard_number && b->shard_number && a->shard_number != b->shard_number, "shard_number",
           "%lld", (long long)a->shard_number, (long long)b->shard_number);
  CONFLICT(a->replication_factor && b->replication_factor && a->replication_factor != b->replication_factor,
           "replication_factor", "%lld", (long long)a->replication_factor, (long long)b->replication_factor);
  CONFLICT(a->write_consistency_factor && b->write_consistency_factor &&
               a->write_consistency_factor != b->write_consistency_factor,
           "write_consistency_factor", "%lld", (long long)a->write_consistency_factor,
           (long long)b->write_consistency_factor);
  const char *va = a->vector_name ? a->vector_name : "", *vb = b->vector_name ? b->vector_name : "";
  CONFLICT(has_dense(a) && has_dense(b) && (!*va) != (!*vb), "vector_name", "%s", *va ? va : "(unnamed)",
           *vb ? vb : "(unnamed)");
  CONFLICT(has_dense(a) && has_dense(b) && !strcmp(va, vb) && a->on_disk != b->on_disk, "on_disk", "%s",
           a->on_disk ? "true" : "false", b->on_disk ? "true" : "false");
  CONFLICT(a->sparse && has_dense(b) && !strcmp(a->sparse_name, vb), "sparse_name", "%s", a->sparse_name,
           "a dense vector's name");
  CONFLICT(b->sparse && has_dense(a) && !strcmp(b->sparse_name, va), "vector_name", "%s", va,
           "a sparse vector's name");
  return 0;
}

int p2q_collection_spec(const p2q_config_t *cfg, const char *collection, p2q_coll_spec_t *s) {
  memset(s, 0, sizeof *s);
  s->collection = collection;
  s->hnsw_m = -1;
  for (int i = 0; i < cfg->n_rules; i++) {
    const p2q_rule_config_t *r = &cfg->rules[i];
    if (strcmp(r->collection, collection) != 0) continue;
    if (has_dense(r)) {
      const char *vn = r->vector_name && *r->vector_name ? r->vector_name : NULL;
      int k = 0;
      while (k < s->n_dense && !((!vn && !s->dense[k].name) || (vn && s->dense[k].name && !strcmp(vn, s->dense[k].name)))) k++;
      if (k == s->n_dense) {
        if (k == P2Q_COLL_MAX_VECTORS) return P2Q_EOVERFLOW;
        s->dense[k] = (p2q_coll_dense_t){vn, (int)r->dimension, p2q_distance_name(r->distance), r->on_disk};
        s->n_dense++;
      }
    }
    if (r->sparse) {
      int k = 0;
      while (k < s->n_sparse && strcmp(s->sparse[k], r->sparse_name)) k++;
      if (k == s->n_sparse) {
        if (k == P2Q_COLL_MAX_VECTORS) return P2Q_EOVERFLOW;
        s->sparse[s->n_sparse++] = r->sparse_name;
      }
    }
    if (s->hnsw_m < 0) s->hnsw_m = r->hnsw_m;
    if (!s->hnsw_ef_construct) s->hnsw_ef_construct = r->hnsw_ef_construct;
    if (!s->on_disk_payload) s->on_disk_payload = r->on_disk_payload;
    if (!s->quantization) { s->quantization = r->quantization; s->quantization_always_ram = r->quantization_always_ram; }
    if (!s->shard_number) s->shard_number = r->shard_number;
    if (!s->replication_factor) s->replication_factor = r->replication_factor;
    if (!s->write_consistency_factor) s->write_consistency_factor = r->write_consistency_factor;
    for (int j = 0; j < r->index.n + (r->chunk_tokens > 0); j++) {
      const char *it = j < r->index.n ? r->index.items[j] : "_pk:keyword";
      int dup = 0;
      for (int k = 0; k < s->n_index; k++) dup |= !strcmp(s->index[k], it);
      if (dup) continue;
      if (s->n_index == (int)(sizeof s->index / sizeof s->index[0])) return P2Q_EOVERFLOW;
      s->index[s->n_index++] = it;
    }
  }
  if (!s->replication_factor) s->replication_factor = p2q_collection_default_replication(cfg);
  return 0;
}

/* ---- bodies --------------------------------------------------------------------------------- */

static cJSON *quant_json(const p2q_coll_spec_t *s) {
  cJSON *q = cJSON_CreateObject(), *in;
  if (!q) return NULL;
  if (s->quantization == P2Q_QUANT_SCALAR) {
    in = cJSON_AddObjectToObject(q, "scalar");
    if (in) cJSON_AddStringToObject(in, "type", "int8");
  } else {
    in = cJSON_AddObjectToObject(q, "binary");
  }
  if (in) cJSON_AddBoolToObject(in, "always_ram", s->quantization_always_ram);
  return q;
}

static cJSON *hnsw_json(const p2q_coll_spec_t *s) {
  if (s->hnsw_m < 0 && !s->hnsw_ef_construct) return NULL;
  cJSON *h = cJSON_CreateObject();
  if (h && s->hnsw_m >= 0) cJSON_AddNumberToObject(h, "m", (double)s->hnsw_m);
  if (h && s->hnsw_ef_construct) cJSON_AddNumberToObject(h, "ef_construct", (double)s->hnsw_ef_construct);
  return h;
}

static cJSON *dense_json(const p2q_coll_dense_t *d) {
  cJSON *v = cJSON_CreateObject();
  if (!v) return NULL;
  cJSON_AddNumberToObject(v, "size", d->dim);
  cJSON_AddStringToObject(v, "distance", d->distance);
  if (d->on_disk) cJSON_AddBoolToObject(v, "on_disk", 1);
  return v;
}

char *p2q_collection_create_body(const p2q_coll_spec_t *s) {
  cJSON *root = cJSON_CreateObject(), *x;
  char *out = NULL;
  if (!root) return NULL;
  if (s->n_dense == 1 && !s->dense[0].name) {
    cJSON_AddItemToObject(root, "vectors", dense_json(&s->dense[0]));
  } else {
    cJSON *vs = cJSON_AddObjectToObject(root, "vectors");
    for (int i = 0; vs && i < s->n_dense; i++) cJSON_AddItemToObject(vs, s->dense[i].name ? s->dense[i].name : "", dense_json(&s->dense[i]));
  }
  if (s->n_sparse) {
    cJSON *sv = cJSON_AddObjectToObject(root, "sparse_vectors");
    for (int i = 0; sv && i < s->n_sparse; i++) {
      cJSON *p = cJSON_AddObjectToObject(sv, s->sparse[i]);
      if (p) cJSON_AddStringToObject(p, "modifier", "idf");
    }
  }
  if (s->shard_number) cJSON_AddNumberToObject(root, "shard_number", (double)s->shard_number);
  if (s->replication_factor) cJSON_AddNumberToObject(root, "replication_factor", (double)s->replication_factor);
  if (s->write_consistency_factor)
    cJSON_AddNumberToObject(root, "write_consistency_factor", (double)s->write_consistency_factor);
  if (s->on_disk_payload) cJSON_AddBoolToObject(root, "on_disk_payload", s->on_disk_payload == P2Q_TRI_TRUE);
  if ((x = hnsw_json(s))) cJSON_AddItemToObject(root, "hnsw_config", x);
  if (s->quantization && (x = quant_json(s))) cJSON_AddItemToObject(root, "quantization_config", x);
  out = cJSON_PrintUnformatted(root);
  cJSON_Delete(root);
  return out;
}

char *p2q_collection_index_body(const char *item) {
  char buf[512], why[256];
  const char *field, *type, *flag;
  if (p2q_collection_parse_index(item, buf, sizeof buf, &field, &type, &flag, why, sizeof why)) return NULL;
  cJSON *o = cJSON_CreateObject();
  char *out = NULL;
  if (!o) return NULL;
  cJSON_AddStringToObject(o, "field_name", field);
  if (!flag) {
    cJSON_AddStringToObject(o, "field_schema", type);
  } else {
    cJSON *fs = cJSON_AddObjectToObject(o, "field_schema");
    if (fs) {
      cJSON_AddStringToObject(fs, "type", type);
      cJSON_AddBoolToObject(fs, !strcmp(flag, "tenant") ? "is_tenant" : "is_principal", 1);
    }
  }
  out = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  return out;
}

/* ---- diff ----------------------------------------------------------------------------------- */

static const cJSON *obj(const cJSON *o, const char *k) { return cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, k) : NULL; }
static double num(const cJSON *o, const char *k, double def) {
  const cJSON *v = obj(o, k);
  return cJSON_IsNumber(v) ? v->valuedouble : def;
}
static int flag_of(const cJSON *o, const char *k, int def) {
  const cJSON *v = obj(o, k);
  return cJSON_IsBool(v) ? cJSON_IsTrue(v) : def;
}

/* "scalar"/"binary"/"product"/"none" and always_ram of a quantization_config. */
static const char *quant_kind(const cJSON *q, int *always_ram) {
  static const char *const kinds[] = {"scalar", "binary", "product"};
  *always_ram = 0;
  for (int i = 0; i < 3; i++) {
    const cJSON *k = obj(q, kinds[i]);
    if (k) { *always_ram = flag_of(k, "always_ram", 0); return kinds[i]; }
  }
  return "none";
}

static cJSON *patch_obj(cJSON **patch, const char *key) {
  if (!*patch) *patch = cJSON_CreateObject();
  if (!*patch) return NULL;
  cJSON *o = cJSON_GetObjectItemCaseSensitive(*patch, key);
  return o ? o : cJSON_AddObjectToObject(*patch, key);
}

#define SAY(...) (p2q_buf_printf(report, "collection %s: ", s->collection), p2q_buf_printf(report, __VA_ARGS__))

static int diff_dense(const p2q_coll_spec_t *s, const cJSON *vectors, int unnamed, p2q_buf_t *report,
                      cJSON **patch, int *fatal) {
  int hard = 0;
  for (int i = 0; i < s->n_dense; i++) {
    const p2q_coll_dense_t *d = &s->dense[i];
    const char *label = d->name ? d->name : "(unnamed)";
    const cJSON *vp = !d->name ? (unnamed ? vectors : obj(vectors, "")) : (unnamed ? NULL : obj(vectors, d->name));
    if (!cJSON_IsObject(vp)) {
      SAY("vector %s is missing: Qdrant cannot add a vector to a collection (reindex into a new one)\n", label);
      hard++;
      *fatal = 1;
      continue;
    }
    long size = (long)num(vp, "size", -1);
    const cJSON *dist = obj(vp, "distance");
    if (size != d->dim || !cJSON_IsString(dist) || strcmp(dist->valuestring, d->distance)) {
      SAY("vector %s is %ld/%s, configured %d/%s: writes would fail (reindex into a new collection)\n", label,
          size, cJSON_IsString(dist) ? dist->valuestring : "?", d->dim, d->distance);
      hard++;
      *fatal = 1;
      continue;
    }
    int on_disk = flag_of(vp, "on_disk", 0);
    if (on_disk != d->on_disk) {
      SAY("vector %s on_disk is %s, configured %s (fixed in place)\n", label, on_disk ? "true" : "false",
          d->on_disk ? "true" : "false");
      cJSON *vs = patch_obj(patch, "vectors");
      cJSON *one = vs ? cJSON_AddObjectToObject(vs, d->name ? d->name : "") : NULL;
      if (one) cJSON_AddBoolToObject(one, "on_disk", d->on_disk);
    }
  }
  return hard;
}

int p2q_collection_diff(const p2q_coll_spec_t *s, const cJSON *info, p2q_buf_t *report, char **patch_out,
                        const char **missing, int *n_missing, int *fatal) {
  cJSON *patch = NULL;
  int hard = 0;
  *patch_out = NULL;
  *n_missing = 0;
  *fatal = 0;
  const cJSON *cfg = obj(info, "config"), *params = obj(cfg, "params");
  if (!cJSON_IsObject(params)) return P2Q_EBADJSON;
  const cJSON *vectors = obj(params, "vectors");
  int unnamed = cJSON_IsNumber(obj(vectors, "size"));
  hard += diff_dense(s, vectors, unnamed, report, &patch, fatal);
  const cJSON *sv = obj(params, "sparse_vectors");
  for (int i = 0; i < s->n_sparse; i++) {
    const cJSON *sp = obj(sv, s->sparse[i]);
    if (!cJSON_IsObject(sp)) {
      SAY("sparse vector %s is missing: Qdrant cannot add one to a collection (reindex into a new one)\n", s->sparse[i]);
      hard++;
      *fatal = 1;
      continue;
    }
    const cJSON *m = obj(sp, "modifier");
    if (!cJSON_IsString(m) || strcmp(m->valuestring, "idf")) {
      SAY("sparse vector %s has modifier %s, configured idf (fixed in place)\n", s->sparse[i],
          cJSON_IsString(m) ? m->valuestring : "none");
      cJSON *svp = patch_obj(&patch, "sparse_vectors");
      cJSON *one = svp ? cJSON_AddObjectToObject(svp, s->sparse[i]) : NULL;
      if (one) cJSON_AddStringToObject(one, "modifier", "idf");
    }
  }
  if (s->shard_number && (long)num(params, "shard_number", 1) != s->shard_number) {
    SAY("shard_number is %ld, configured %lld: fixed at creation (reindex into a new collection)\n",
        (long)num(params, "shard_number", 1), (long long)s->shard_number);
    hard++;
  }
  static const char *const pkeys[] = {"replication_factor", "write_consistency_factor"};
  const int64_t pvals[] = {s->replication_factor, s->write_consistency_factor};
  for (int i = 0; i < 2; i++) {
    if (!pvals[i] || (long)num(params, pkeys[i], 1) == pvals[i]) continue;
    SAY("%s is %ld, configured %lld (fixed in place)\n", pkeys[i], (long)num(params, pkeys[i], 1), (long long)pvals[i]);
    cJSON *pp = patch_obj(&patch, "params");
    if (pp) cJSON_AddNumberToObject(pp, pkeys[i], (double)pvals[i]);
  }
  if (s->on_disk_payload && flag_of(params, "on_disk_payload", 1) != (s->on_disk_payload == P2Q_TRI_TRUE)) {
    SAY("on_disk_payload is %s, configured %s (fixed in place)\n", flag_of(params, "on_disk_payload", 1) ? "true" : "false",
        s->on_disk_payload == P2Q_TRI_TRUE ? "true" : "false");
    cJSON *pp = patch_obj(&patch, "params");
    if (pp) cJSON_AddBoolToObject(pp, "on_disk_payload", s->on_disk_payload == P2Q_TRI_TRUE);
  }
  const cJSON *hnsw = obj(cfg, "hnsw_config");
  if (s->hnsw_m >= 0 && (long)num(hnsw, "m", 16) != s->hnsw_m) {
    SAY("hnsw m is %ld, configured %lld (fixed in place; the index is rebuilt by Qdrant)\n", (long)num(hnsw, "m", 16),
        (long long)s->hnsw_m);
    cJSON *hp = patch_obj(&patch, "hnsw_config");
    if (hp) cJSON_AddNumberToObject(hp, "m", (double)s->hnsw_m);
  }
  if (s->hnsw_ef_construct && (long)num(hnsw, "ef_construct", 100) != s->hnsw_ef_construct) {
    SAY("hnsw ef_construct is %ld, configured %lld (fixed in place)\n", (long)num(hnsw, "ef_construct", 100),
        (long long)s->hnsw_ef_construct);
    cJSON *hp = patch_obj(&patch, "hnsw_config");
    if (hp) cJSON_AddNumberToObject(hp, "ef_construct", (double)s->hnsw_ef_construct);
  }
  if (s->quantization) {
    int ram;
    const char *have = quant_kind(obj(cfg, "quantization_config"), &ram);
    const char *want = s->quantization == P2Q_QUANT_SCALAR ? "scalar" : "binary";
    if (strcmp(have, want) || ram != s->quantization_always_ram) {
      SAY("quantization is %s%s, configured %s%s (fixed in place)\n", have, ram ? " (always_ram)" : "", want,
          s->quantization_always_ram ? " (always_ram)" : "");
      if (!patch) patch = cJSON_CreateObject();
      if (patch) cJSON_AddItemToObject(patch, "quantization_config", quant_json(s));
    }
  }
  const cJSON *schema = obj(info, "payload_schema");
  for (int i = 0; i < s->n_index; i++) {
    char buf[512], why[256];
    const char *field, *type, *flag;
    if (p2q_collection_parse_index(s->index[i], buf, sizeof buf, &field, &type, &flag, why, sizeof why)) continue;
    const cJSON *f = obj(schema, field), *dt = obj(f, "data_type");
    if (!f) { missing[(*n_missing)++] = s->index[i]; SAY("payload index %s is missing (created)\n", s->index[i]); continue; }
    if (!cJSON_IsString(dt) || strcmp(dt->valuestring, type)) {
      SAY("payload index on %s is %s, configured %s: drop it (DELETE …/index/%s) and run apply again\n", field,
          cJSON_IsString(dt) ? dt->valuestring : "?", type, field);
      hard++;
    }
  }
  if (patch) *patch_out = cJSON_PrintUnformatted(patch);
  cJSON_Delete(patch);
  return p2q_buf_error(report) ? p2q_buf_error(report) : hard;
}

/* ---- blocking ------------------------------------------------------------------------------- */

static int create_indexes(p2q_qdrant_blocking_t *b, const char *c, const char *const *items, int n, char *msg,
                          size_t msglen) {
  for (int i = 0; i < n; i++) {
    cJSON *root = NULL;
    const cJSON *res;
    char *body = p2q_collection_index_body(items[i]);
    if (!body) { snprintf(msg, msglen, "bad index %s", items[i]); return P2Q_EINVAL; }
    int rc = p2q_qdrant_blocking_call(b, "PUT", c, "/index?wait=true", body, &root, &res, msg, msglen);
    free(body);
    cJSON_Delete(root);
    if (rc) return rc;
  }
  return 0;
}

int p2q_collection_first_rule(const p2q_config_t *cfg, int i) {
  for (int j = 0; j < i; j++)
    if (!strcmp(cfg->rules[j].collection, cfg->rules[i].collection)) return 0;
  return 1;
}

int p2q_collection_ensure(const p2q_qdrant_options_t *opts, const p2q_config_t *cfg, const char *collection,
                          int mode, FILE *out, char *msg, size_t msglen) {
  return p2q_collection_ensure_as(opts, cfg, collection, collection, mode, out, msg, msglen);
}

int p2q_collection_ensure_as(const p2q_qdrant_options_t *opts, const p2q_config_t *cfg, const char *spec_of,
                             const char *collection, int mode, FILE *out, char *msg, size_t msglen) {
  p2q_coll_spec_t s;
  p2q_qdrant_blocking_t *b = NULL;
  cJSON *root = NULL;
  const cJSON *res = NULL;
  char *body = NULL, *patch = NULL;
  p2q_buf_t report = P2Q_BUF_INIT;
  int rc = p2q_collection_spec(cfg, spec_of, &s);
  s.collection = collection;
  msg[0] = 0;
  if (rc) { snprintf(msg, msglen, "too many vectors or indexes"); return rc; }
  if ((rc = p2q_qdrant_blocking_open(opts, &b))) { snprintf(msg, msglen, "invalid Qdrant options"); return rc; }
  rc = p2q_qdrant_blocking_call(b, "GET", collection, "", NULL, &root, &res, msg, msglen);
  if (rc && p2q_qdrant_blocking_status(b) == 404 && strstr(msg, "ollection")) { /* Qdrant's "Collection `c` doesn't exist!" */
    msg[0] = 0;
    rc = 0;
    int peers = s.replication_factor ? 0 : cluster_peers(b);
    if (!s.replication_factor && (s.replication_factor = p2q_collection_cluster_replication(0, peers)))
      P2Q_INFO("qdrant_cluster_default", "collection=%s nodes=%d replication_factor=%lld "
               "why=\"a Qdrant cluster: one node down must not fail writes (set replication_factor to choose)\"",
               collection, peers, (long long)s.replication_factor);
    body = p2q_collection_create_body(&s);
    if (!body) { rc = P2Q_ENOMEM; goto out; }
    if (mode == P2Q_COLL_DRY) { if (out) fprintf(out, "collection %s: would be created: %s\n", collection, body); goto out; }
    P2Q_INFO("qdrant_collection_create", "collection=%s", collection);
    rc = p2q_qdrant_blocking_call(b, "PUT", collection, "", body, &root, &res, msg, msglen);
    if (rc && strstr(msg, "already exists")) rc = 0; /* a concurrent apply or daemon won the race */
    if (!rc) rc = create_indexes(b, collection, s.index, s.n_index, msg, msglen);
    if (!rc && out) fprintf(out, "collection %s: created\n", collection);
    goto out;
  }
  if (rc) goto out;
  const char *missing[64];
  int n_missing = 0, fatal = 0;
  int hard = p2q_collection_diff(&s, res, &report, &patch, missing, &n_missing, &fatal);
  if (hard < 0) { rc = hard; snprintf(msg, msglen, "collection info has no config.params"); goto out; }
  if (!s.replication_factor && mode == P2Q_COLL_APPLY) { /* default left: one replica on a cluster? (check: its own) */
    char w[512];
    if (p2q_collection_single_replica_warning(res, cluster_peers(b), collection, w, sizeof w)) {
      if (out) fprintf(out, "warning: %s\n", w);
      else P2Q_WARN("collection_single_replica", "collection=%s msg=\"%s\"", collection, w);
    }
  }
  if (out && report.len && !fatal) fputs(report.data, out);
  if (!out && report.len && !fatal) {
    char q[1100];
    P2Q_WARN("collection_settings_differ", "collection=%s differences=%s (run apply)", collection,
             p2q_log_q(q, sizeof q, report.data));
  }
  if (fatal) {
    rc = P2Q_EMISMATCH; /* the differences themselves, on one line */
    size_t l = report.len;
    while (l && report.data[l - 1] == '\n') report.data[--l] = 0;
    for (char *c = report.data; *c; c++) if (*c == '\n') *c = ';';
    snprintf(msg, msglen, "%s", report.data);
    goto out;
  }
  if (mode != P2Q_COLL_APPLY) goto out;
  cJSON_Delete(root);
  root = NULL;
  if (patch && (rc = p2q_qdrant_blocking_call(b, "PATCH", collection, "", patch, &root, &res, msg, msglen))) goto out;
  rc = create_indexes(b, collection, missing, n_missing, msg, msglen);
out:
  cJSON_Delete(root);
  free(body);
  free(patch);
  p2q_buf_free(&report);
  p2q_qdrant_blocking_close(b);
  return rc;
}

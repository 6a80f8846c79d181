/*
 * reindex.c — pure building blocks of zero-downtime re-embedding (see reindex.h).
 *
 * Owns nothing; no I/O; any thread. Invariants of the steps run by cmd_reindex.c and reindex_exec.c (what makes a kill -9 at any step
 * resumable): the job row is recorded BEFORE NAME__v{to} is created, so a version above the
 * serving one without a job is never reused (a new job takes max_version + 1); the alias only
 * ever moves to a version whose backfill is recorded and drained; NAME__v{from} is deleted only
 * after the swap is recorded and the grace has passed; every action is idempotent when re-run
 * after reading Qdrant and PostgreSQL again.
 */
#include "pg2qdrant/reindex.h"
#include "pg2qdrant/errors.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

int p2q_reindex_version_name(const char *base, int k, char *out, size_t n) {
  if (!base || k < 1) return P2Q_EINVAL;
  int len = snprintf(out, n, "%s__v%d", base, k);
  if (len < 0 || (size_t)len >= n) return P2Q_EOVERFLOW;
  return len;
}

int p2q_reindex_version_of(const char *base, const char *name) {
  size_t bl = strlen(base);
  if (strncmp(name, base, bl) != 0 || strncmp(name + bl, "__v", 3) != 0) return 0;
  const char *d = name + bl + 3;
  if (*d < '1' || *d > '9') return 0;
  long k = 0;
  for (; *d; d++) {
    if (*d < '0' || *d > '9') return 0;
    k = k * 10 + (*d - '0');
    if (k > 1000000000L) return 0;
  }
  return (int)k;
}

/* result.<key>: an array, or NULL */
static const cJSON *result_array(const cJSON *root, const char *key) {
  const cJSON *res = cJSON_GetObjectItemCaseSensitive(root, "result");
  const cJSON *a = cJSON_GetObjectItemCaseSensitive(res, key);
  return cJSON_IsArray(a) ? a : NULL;
}

static const char *str_of(const cJSON *o, const char *key) {
  const cJSON *s = cJSON_GetObjectItemCaseSensitive(o, key);
  return cJSON_IsString(s) ? s->valuestring : NULL;
}

int p2q_reindex_observe(const char *base, const char *collections_body, const char *aliases_body,
                        int *alias_version, int *max_version) {
  int rc = P2Q_EBADJSON, legacy = 0;
  cJSON *cj = cJSON_Parse(collections_body), *aj = cJSON_Parse(aliases_body);
  const cJSON *colls = result_array(cj, "collections"), *aliases = result_array(aj, "aliases"), *e;
  *alias_version = *max_version = 0;
  if (!colls || !aliases) goto fail;
  cJSON_ArrayForEach(e, colls) {
    const char *name = str_of(e, "name");
    if (!name) goto fail;
    int k = p2q_reindex_version_of(base, name);
    if (k > *max_version) *max_version = k;
    if (!strcmp(name, base)) legacy = 1;
  }
  rc = 0;
  cJSON_ArrayForEach(e, aliases) {
    const char *an = str_of(e, "alias_name"), *cn = str_of(e, "collection_name");
    if (!an || !cn) {
      rc = P2Q_EBADJSON;
      goto fail;
    }
    if (strcmp(an, base)) continue;
    *alias_version = p2q_reindex_version_of(base, cn);
    if (!*alias_version) rc = P2Q_EMISMATCH;
  }
  if (legacy) *alias_version = P2Q_REINDEX_LEGACY; /* Qdrant forbids both at once */
fail:
  cJSON_Delete(cj);
  cJSON_Delete(aj);
  return rc;
}

int p2q_reindex_signature(const p2q_rule_config_t *r, int64_t dim, char *out, size_t n) {
  const int bm25 = r->sparse == P2Q_SPARSE_BM25;
  int len = snprintf(out, n,
                     "model=%s;dim=%lld;distance=%s;vector=%s;column=%s;chunk=%lld/%lld;"
                     "sparse=%s;sparse_name=%s;k1=%s;b=%s;avg_len=%lld;stop=%d;stem=%d",
                     r->model, (long long)dim, p2q_distance_name(r->distance),
                     r->vector_name ? r->vector_name : "", r->vector_column ? r->vector_column : "",
                     (long long)r->chunk_tokens, (long long)(r->chunk_tokens ? r->chunk_overlap : 0),
                     bm25 ? "bm25" : "none", bm25 && r->sparse_name ? r->sparse_name : "",
                     bm25 && r->bm25_k1 ? r->bm25_k1 : "", bm25 && r->bm25_b ? r->bm25_b : "",
                     (long long)(bm25 ? r->bm25_avg_len : 0), bm25 ? r->bm25_stopwords : 0,
                     bm25 ? r->bm25_stemmer : 0);
  if (len < 0 || (size_t)len >= n) return P2Q_EOVERFLOW;
  return len;
}

void p2q_reindex_signature_id(const char *signature, char out[17]) {
  uint64_t h = 14695981039346656037ULL;
  for (const unsigned char *p = (const unsigned char *)signature; *p; p++) {
    h ^= *p;
    h *= 1099511628211ULL;
  }
  snprintf(out, 17, "%016llx", (unsigned long long)h);
}

void p2q_reindex_swap_body(p2q_buf_t *b, const char *alias, const char *collection, int had_alias) {
  p2q_buf_puts(b, "{\"actions\":[");
  if (had_alias) {
    p2q_buf_puts(b, "{\"delete_alias\":{\"alias_name\":");
    p2q_buf_json_string(b, alias, strlen(alias));
    p2q_buf_puts(b, "}},");
  }
  p2q_buf_puts(b, "{\"create_alias\":{\"collection_name\":");
  p2q_buf_json_string(b, collection, strlen(collection));
  p2q_buf_puts(b, ",\"alias_name\":");
  p2q_buf_json_string(b, alias, strlen(alias));
  p2q_buf_puts(b, "}}]}");
}

p2q_reindex_mode_t p2q_reindex_mode_of(const char *phase) {
  if (!phase || !strcmp(phase, "create") || !strcmp(phase, "swapped")) return P2Q_RX_SINGLE;
  return !strcmp(phase, "preswap") ? P2Q_RX_NEW_ONLY : P2Q_RX_DUAL;
}

const char *p2q_reindex_mode_name(p2q_reindex_mode_t m) {
  return m == P2Q_RX_DUAL ? "dual" : m == P2Q_RX_NEW_ONLY ? "new_only" : "single";
}

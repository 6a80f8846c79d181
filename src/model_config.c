/*
 * model_config.c — read a sentence-transformers BERT model directory's JSON files
 * (see model_config.h). Pure file reading with cJSON; any thread; nothing kept.
 */
#include "pg2qdrant/model_config.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg2qdrant/errors.h"

void p2q_model_cfg_default(p2q_model_cfg_t *c) {
  *c = (p2q_model_cfg_t){.hidden = 384, .heads = 12, .layers = 6, .ffn = 1536, .max_pos = 512,
                         .type_vocab = 2, .eps = 1e-12f, .max_tokens = 256, .pool_cls = 0,
                         .normalize = 1, .lowercase = 1, .chinese_chars = 1};
}

/* Parse dir/name; NULL when absent (*missing = 1) or unparsable (*missing = 0). */
static cJSON *read_json(const char *dir, const char *name, int *missing) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  *missing = 0;
  FILE *f = fopen(path, "rb");
  if (!f) { *missing = errno == ENOENT; return NULL; }
  char *buf = NULL;
  size_t n = 0, cap = 0;
  for (;;) {
    if (n == cap) {
      char *nb = cap >= (64u << 20) ? NULL : realloc(buf, cap = cap ? cap * 2 : 1 << 16);
      if (!nb) { free(buf); fclose(f); return NULL; }
      buf = nb;
    }
    size_t r = fread(buf + n, 1, cap - n, f);
    n += r;
    if (r == 0) break;
  }
  fclose(f);
  cJSON *j = cJSON_ParseWithLength(buf, n);
  free(buf);
  return j;
}

static int get_int(const cJSON *o, const char *k, int *v) {
  const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, k);
  if (!cJSON_IsNumber(x)) return 0;
  if (x->valuedouble < -2e9 || x->valuedouble > 2e9 || x->valuedouble != floor(x->valuedouble)) return -1;
  *v = (int)x->valuedouble;
  return 1;
}

static const char *get_str(const cJSON *o, const char *k) {
  const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, k);
  return cJSON_IsString(x) ? x->valuestring : NULL;
}

static int flag(const cJSON *o, const char *k, int dflt) {
  const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, k);
  return cJSON_IsBool(x) ? cJSON_IsTrue(x) : dflt;
}

#define FAIL(...) do { snprintf(err, errlen, __VA_ARGS__); rc = P2Q_EMODEL; goto out; } while (0)

static int read_bert(const char *dir, p2q_model_cfg_t *c, char *err, size_t errlen, int *have) {
  int missing, rc = 0;
  cJSON *j = read_json(dir, "config.json", &missing);
  *have = j != NULL;
  if (!j) {
    if (!missing) FAIL("config.json: unreadable or not JSON");
    return 0;
  }
  const char *s;
  if ((s = get_str(j, "model_type")) && strcmp(s, "bert") != 0)
    FAIL("config.json: model_type \"%.40s\" is not supported (BERT only)", s);
  if ((s = get_str(j, "hidden_act")) && strcmp(s, "gelu") != 0)
    FAIL("config.json: hidden_act \"%.40s\" is not supported (exact-erf \"gelu\" only)", s);
  if ((s = get_str(j, "position_embedding_type")) && strcmp(s, "absolute") != 0)
    FAIL("config.json: position_embedding_type \"%.40s\" is not supported", s);
  static const char *const keys[] = {"hidden_size", "num_attention_heads", "num_hidden_layers",
                                     "intermediate_size", "max_position_embeddings", "type_vocab_size"};
  int *dst[] = {&c->hidden, &c->heads, &c->layers, &c->ffn, &c->max_pos, &c->type_vocab};
  for (int i = 0; i < 6; i++)
    if (get_int(j, keys[i], dst[i]) < 0) FAIL("config.json: %s is not an integer", keys[i]);
  const cJSON *eps = cJSON_GetObjectItemCaseSensitive(j, "layer_norm_eps");
  if (cJSON_IsNumber(eps)) c->eps = (float)eps->valuedouble;
  if (c->hidden < 16 || c->hidden > P2Q_MODEL_MAX_HIDDEN || c->heads < 1 || c->hidden % c->heads ||
      c->layers < 1 || c->layers > 64 || c->ffn < 1 || c->ffn > 65536 || c->max_pos < 2 ||
      c->max_pos > 8192 || c->type_vocab < 1 || !(c->eps > 0 && c->eps < 1))
    FAIL("config.json: unsupported sizes (hidden %d, heads %d, layers %d, intermediate %d, positions %d)",
         c->hidden, c->heads, c->layers, c->ffn, c->max_pos);
out:
  cJSON_Delete(j);
  return rc;
}

static int read_pooling(const char *dir, p2q_model_cfg_t *c, char *err, size_t errlen) {
  int missing, rc = 0;
  cJSON *pool = NULL, *mods = read_json(dir, "modules.json", &missing);
  if (!mods) {
    if (!missing) FAIL("modules.json: unreadable or not JSON");
    return 0; /* a bare model: mean pooling, normalised (the default) */
  }
  const char *pool_path = NULL;
  c->normalize = 0;
  const cJSON *m;
  cJSON_ArrayForEach(m, mods) {
    const char *t = get_str(m, "type");
    if (!t) continue;
    const char *cls = strrchr(t, '.'); /* sentence_transformers.models.Pooling, ….pooling.Pooling (v5+) */
    cls = cls ? cls + 1 : t;
    if (strncmp(t, "sentence_transformers.", 22) != 0)
      FAIL("modules.json: module %.80s is not supported (Transformer, Pooling, Normalize only)", t);
    if (!strcmp(cls, "Pooling")) pool_path = get_str(m, "path");
    else if (!strcmp(cls, "Normalize")) c->normalize = 1;
    else if (strcmp(cls, "Transformer") != 0)
      FAIL("modules.json: module %.80s is not supported (Transformer, Pooling, Normalize only)", t);
  }
  if (!pool_path) FAIL("modules.json: no sentence_transformers.models.Pooling module");
  char sub[1024];
  snprintf(sub, sizeof sub, "%s/config.json", pool_path);
  if (!(pool = read_json(dir, sub, &missing))) FAIL("%.200s: missing or not JSON", sub);
  int cls = flag(pool, "pooling_mode_cls_token", 0), mean = flag(pool, "pooling_mode_mean_tokens", 0);
  const char *mode = get_str(pool, "pooling_mode");
  if (mode) { cls = !strcmp(mode, "cls"); mean = !strcmp(mode, "mean"); }
  int other = flag(pool, "pooling_mode_max_tokens", 0) + flag(pool, "pooling_mode_mean_sqrt_len_tokens", 0) +
              flag(pool, "pooling_mode_weightedmean_tokens", 0) + flag(pool, "pooling_mode_lasttoken", 0);
  if (cls + mean != 1 || other) FAIL("%.200s: only one of CLS or mean pooling is supported", sub);
  c->pool_cls = cls;
out:
  cJSON_Delete(pool);
  cJSON_Delete(mods);
  return rc;
}

static int read_tokenizer(const char *dir, p2q_model_cfg_t *c, char *err, size_t errlen) {
  int missing, rc = 0;
  cJSON *tc = NULL, *tj = read_json(dir, "tokenizer.json", &missing);
  const cJSON *norm = tj ? cJSON_GetObjectItemCaseSensitive(tj, "normalizer") : NULL;
  if (cJSON_IsObject(norm)) {
    const char *t = get_str(norm, "type");
    if (!t || strcmp(t, "BertNormalizer") != 0) FAIL("tokenizer.json: normalizer %.40s is not supported", t ? t : "?");
    c->lowercase = flag(norm, "lowercase", 1);
    const cJSON *sa = cJSON_GetObjectItemCaseSensitive(norm, "strip_accents");
    int strip = cJSON_IsBool(sa) ? cJSON_IsTrue(sa) : c->lowercase;
    if (strip != c->lowercase)
      FAIL("tokenizer.json: strip_accents = %s with lowercase = %s is not supported", strip ? "true" : "false",
           c->lowercase ? "true" : "false");
    c->chinese_chars = flag(norm, "handle_chinese_chars", 1);
    if (!flag(norm, "clean_text", 1)) FAIL("tokenizer.json: clean_text = false is not supported");
  } else if ((tc = read_json(dir, "tokenizer_config.json", &missing))) {
    c->lowercase = flag(tc, "do_lower_case", 1);
    c->chinese_chars = flag(tc, "tokenize_chinese_chars", 1);
  }
  int mml;
  if (tc || (tc = read_json(dir, "tokenizer_config.json", &missing)))
    if (get_int(tc, "model_max_length", &mml) > 0 && mml >= 2 && mml < c->max_tokens) c->max_tokens = mml;
out:
  cJSON_Delete(tc);
  cJSON_Delete(tj);
  return rc;
}

int p2q_model_cfg_load(const char *dir, p2q_model_cfg_t *c, char *err, size_t errlen) {
  int have = 0, rc, missing;
  if (errlen) err[0] = 0;
  p2q_model_cfg_default(c);
  if ((rc = read_bert(dir, c, err, errlen, &have))) return rc;
  if (!have) return 0; /* all-MiniLM-L6-v2 */
  c->max_tokens = c->max_pos;
  if ((rc = read_pooling(dir, c, err, errlen)) || (rc = read_tokenizer(dir, c, err, errlen))) return rc;
  cJSON *sb = read_json(dir, "sentence_bert_config.json", &missing);
  int msl;
  if (sb && get_int(sb, "max_seq_length", &msl) > 0 && msl >= 2) c->max_tokens = msl;
  cJSON_Delete(sb);
  if (c->max_tokens > c->max_pos) c->max_tokens = c->max_pos;
  return 0;
}

char *p2q_model_vocab_lines(const char *dir, size_t *len) {
  int missing;
  char *out = NULL;
  cJSON *tj = read_json(dir, "tokenizer.json", &missing);
  const cJSON *model = tj ? cJSON_GetObjectItemCaseSensitive(tj, "model") : NULL;
  const cJSON *vocab = model ? cJSON_GetObjectItemCaseSensitive(model, "vocab") : NULL;
  const char *type = model ? get_str(model, "type") : NULL;
  int n = cJSON_GetArraySize(vocab);
  const char **tok = NULL;
  if (!cJSON_IsObject(vocab) || !type || strcmp(type, "WordPiece") != 0 || n < 1 || n > (1 << 24)) goto out;
  if (!(tok = calloc((size_t)n, sizeof *tok))) goto out;
  size_t total = 0;
  const cJSON *e;
  cJSON_ArrayForEach(e, vocab) {
    if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble >= n || tok[(int)e->valuedouble] ||
        strchr(e->string, '\n'))
      goto out; /* ids must be 0..n-1, each once */
    tok[(int)e->valuedouble] = e->string;
    total += strlen(e->string) + 1;
  }
  if (!(out = malloc(total + 1))) goto out;
  size_t o = 0;
  for (int i = 0; i < n; i++) {
    size_t l = strlen(tok[i]);
    memcpy(out + o, tok[i], l);
    out[o + l] = '\n';
    o += l + 1;
  }
  *len = o;
out:
  free(tok);
  cJSON_Delete(tj);
  return out;
}

/*
 * golden_util.h — shared by the embedder unit tests (header-only, static functions).
 * Finds the model directory (env P2Q_MODEL_DIR, else $P2Q_SOURCE_DIR/models/all-MiniLM-L6-v2)
 * and reads tests/golden/minilm_texts.jsonl (one JSON object per line: name, utf8_hex, ids, vec).
 * When the model is missing the calling test skips, or fails when P2Q_REQUIRE_MODEL=1
 * (gu_need_model; include <cmocka.h> first).
 */
#ifndef P2Q_TEST_GOLDEN_UTIL_H
#define P2Q_TEST_GOLDEN_UTIL_H

#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct {
  char name[32];
  char *text;    /* exact bytes, may contain NUL */
  size_t len;
  int32_t *ids;
  int n_ids;
  float vec[384];
} golden_t;

__attribute__((unused)) static const char *gu_source_dir(void) {
  const char *s = getenv("P2Q_SOURCE_DIR");
#ifdef P2Q_SOURCE_DIR
  if (!s || !*s) s = P2Q_SOURCE_DIR;
#endif
  return s && *s ? s : ".";
}

/* Model dir into buf; returns 1 if vocab.txt and model.safetensors exist there. */
__attribute__((unused)) static int gu_model_dir(char *buf, size_t n) {
  const char *e = getenv("P2Q_MODEL_DIR");
  if (e && *e) snprintf(buf, n, "%s", e);
  else snprintf(buf, n, "%s/models/all-MiniLM-L6-v2", gu_source_dir());
  char p[4200];
  struct stat sb;
  snprintf(p, sizeof p, "%s/model.safetensors", buf);
  if (stat(p, &sb) != 0) return 0;
  snprintf(p, sizeof p, "%s/vocab.txt", buf);
  return stat(p, &sb) == 0;
}

__attribute__((unused)) static int gu_require_model(void) {
  const char *r = getenv("P2Q_REQUIRE_MODEL");
  return r && strcmp(r, "1") == 0;
}

/* The model dir into buf, or the calling cmocka test skips (fails when P2Q_REQUIRE_MODEL=1). */
__attribute__((unused)) static void gu_need_model(char *buf, size_t n) {
  if (gu_model_dir(buf, n)) return;
  if (gu_require_model()) fail_msg("model missing and P2Q_REQUIRE_MODEL=1 (run scripts/fetch-model)");
  fprintf(stderr, "SKIP: model not found (set P2Q_MODEL_DIR or run scripts/fetch-model)\n");
  skip();
}

__attribute__((unused)) static int gu_hex(int c) {
  return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

__attribute__((unused)) static void gu_free(golden_t *g, int n) {
  for (int i = 0; i < n; i++) {
    free(g[i].text);
    free(g[i].ids);
  }
  free(g);
}

/* Load all goldens; returns count (>0) or -1. */
__attribute__((unused)) static int gu_load(golden_t **out) {
  char path[4200];
  snprintf(path, sizeof path, "%s/tests/golden/minilm_texts.jsonl", gu_source_dir());
  FILE *f = fopen(path, "rb");
  if (!f) { fprintf(stderr, "cannot open %s\n", path); return -1; }
  golden_t *g = NULL;
  int n = 0, cap = 0;
  char *line = NULL;
  size_t lcap = 0;
  ssize_t ll;
  while ((ll = getline(&line, &lcap, f)) > 0) {
    cJSON *j = cJSON_Parse(line);
    if (!j) { n = -1; break; }
    if (n == cap) { cap = cap ? cap * 2 : 256; g = realloc(g, sizeof *g * (size_t)cap); }
    golden_t *r = &g[n++];
    memset(r, 0, sizeof *r);
    snprintf(r->name, sizeof r->name, "%s", cJSON_GetObjectItem(j, "name")->valuestring);
    const char *hx = cJSON_GetObjectItem(j, "utf8_hex")->valuestring;
    r->len = strlen(hx) / 2;
    r->text = malloc(r->len + 1);
    for (size_t i = 0; i < r->len; i++) r->text[i] = (char)(gu_hex(hx[2 * i]) * 16 + gu_hex(hx[2 * i + 1]));
    r->text[r->len] = 0;
    cJSON *ids = cJSON_GetObjectItem(j, "ids"), *vec = cJSON_GetObjectItem(j, "vec");
    r->n_ids = cJSON_GetArraySize(ids);
    r->ids = malloc(sizeof(int32_t) * (size_t)r->n_ids);
    int k = 0;
    for (cJSON *x = ids->child; x; x = x->next) r->ids[k++] = (int32_t)x->valueint;
    k = 0;
    for (cJSON *x = vec->child; x && k < 384; x = x->next) r->vec[k++] = (float)x->valuedouble;
    cJSON_Delete(j);
  }
  free(line);
  fclose(f);
  if (n <= 0) { gu_free(g, n < 0 ? 0 : n); return -1; }
  *out = g;
  return n;
}

#endif

/*
 * cmd_embed.c — `pg2qdrant -c FILE embed [--embedder NAME] [--jsonl]`: texts on stdin (one per
 * line, or JSON lines: a string or {"text": …}), one JSON array of floats per line on stdout —
 * exactly the vectors the daemon would store. Runs the same asynchronous embedder as the daemon
 * on a private loop, 64 texts per call. A text that cannot be embedded prints
 * {"error": "…"} on its line, and the exit status is then 1.
 * `embed --sparse RULE [--document]`: the BM25 sparse vector of each line with that rule's
 * analyzer instead (query weights, 1 per distinct term; --document: the stored BM25 weights),
 * the query side of hybrid search. No embedder is started.
 */
#include "pg2qdrant/bm25.h"
#include "pg2qdrant/buf.h"
#include "pg2qdrant/commands.h"
#include "pg2qdrant/embedder.h"
#include "pg2qdrant/errors.h"
#include "pg2qdrant/points.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK 64

typedef struct {
  int done, failed;
} embed_state_t;

static void print_vector(const float *v, int dim) {
  p2q_buf_t b = P2Q_BUF_INIT;
  p2q_vector_format(&b, v, dim);
  p2q_buf_putc(&b, '\n');
  fwrite(b.data, 1, b.len, stdout);
  p2q_buf_free(&b);
}

static void print_error(const char *msg) {
  p2q_buf_t b = P2Q_BUF_INIT;
  p2q_buf_puts(&b, "{\"error\":");
  p2q_buf_json_string(&b, msg, strlen(msg));
  p2q_buf_puts(&b, "}\n");
  fwrite(b.data, 1, b.len, stdout);
  p2q_buf_free(&b);
}

static void embedded(const p2q_embed_result_t *r, void *arg) {
  embed_state_t *st = arg;
  st->done = 1;
  for (int i = 0; i < r->n; i++) {
    if (r->err) { print_error(r->msg); st->failed = 1; }
    else if (r->status[i]) {
      print_error(r->reasons && r->reasons[i] ? r->reasons[i] : p2q_strerror(r->status[i]));
      st->failed = 1;
    }
    else print_vector(r->vecs + (size_t)i * (size_t)r->dim, r->dim);
  }
}

/* Parse one input line into a malloc'd text. NULL + msg on a bad JSON line. */
static char *line_text(char *line, size_t len, int jsonl, size_t *out_len, const char **msg) {
  while (len && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
  if (!jsonl) { *out_len = len; return strndup(line, len); }
  cJSON *j = cJSON_ParseWithLength(line, len);
  const cJSON *t = cJSON_IsString(j) ? j : cJSON_GetObjectItemCaseSensitive(j, "text");
  char *s = cJSON_IsString(t) ? strdup(t->valuestring) : NULL;
  if (!s) *msg = "not a JSON string or an object with a \"text\" string";
  else *out_len = strlen(s);
  cJSON_Delete(j);
  return s;
}

static int embed_chunk(uv_loop_t *loop, p2q_embedder_t *e, char **texts, size_t *lens, int n,
                       embed_state_t *st) {
  st->done = 0;
  int rc = p2q_embedder_embed(e, (const char *const *)texts, lens, n, embedded, st);
  if (rc) {
    for (int i = 0; i < n; i++) print_error(p2q_strerror(rc));
    return 1;
  }
  while (!st->done) uv_run(loop, UV_RUN_ONCE);
  return 0;
}

static void closed(void *arg) { *(int *)arg = 1; }

static int embed_sparse(const p2q_config_t *cfg, const char *rule, int jsonl, int document) {
  const p2q_rule_config_t *r = p2q_config_rule(cfg, rule);
  if (!r || !r->sparse) {
    fprintf(stderr, "pg2qdrant: embed: %s\n", r ? "the rule has no `sparse = bm25`" : "no such [rule.NAME] section");
    return 2;
  }
  p2q_bm25_opts_t o;
  p2q_bm25_t *a = NULL;
  p2q_bm25_defaults(&o);
  o.k1 = strtod(r->bm25_k1, NULL);
  o.b = strtod(r->bm25_b, NULL);
  o.avg_len = (double)r->bm25_avg_len;
  o.stopwords = r->bm25_stopwords;
  o.stem = r->bm25_stemmer;
  if (p2q_bm25_new(&o, &a)) { fprintf(stderr, "pg2qdrant: embed: bad bm25 settings\n"); return 1; }
  char *line = NULL;
  size_t cap = 0, len;
  ssize_t got;
  int failed = 0;
  p2q_buf_t b = P2Q_BUF_INIT;
  while ((got = getline(&line, &cap, stdin)) >= 0) {
    const char *msg = NULL;
    char *t = line_text(line, (size_t)got, jsonl, &len, &msg);
    if (!t) { print_error(msg ? msg : "out of memory"); failed = 1; continue; }
    p2q_buf_reset(&b);
    int rc = document ? p2q_bm25_document(a, t, len, &b) : p2q_bm25_query(a, t, len, &b);
    free(t);
    if (rc < 0) { print_error(p2q_strerror(rc)); failed = 1; continue; }
    p2q_buf_putc(&b, '\n');
    fwrite(b.data, 1, b.len, stdout);
  }
  p2q_buf_free(&b);
  free(line);
  p2q_bm25_free(a);
  fflush(stdout);
  return failed;
}

int p2q_cmd_embed(const p2q_config_t *cfg, int argc, char **argv) {
  const char *name = NULL, *sparse = NULL;
  int jsonl = 0, document = 0;
  for (int i = 0; i < argc; i++) {
    if (!strcmp(argv[i], "--jsonl")) jsonl = 1;
    else if (!strcmp(argv[i], "--embedder") && i + 1 < argc) name = argv[++i];
    else if (!strcmp(argv[i], "--sparse") && i + 1 < argc) sparse = argv[++i];
    else if (!strcmp(argv[i], "--document")) document = 1;
    else { fprintf(stderr, "usage: pg2qdrant embed [--embedder NAME | --sparse RULE [--document]] [--jsonl]\n"); return 2; }
  }
  if (sparse) return embed_sparse(cfg, sparse, jsonl, document);
  const p2q_embedder_config_t *ec = name ? p2q_config_embedder(cfg, name) : (cfg->n_embedders ? &cfg->embedders[0] : NULL);
  if (!ec) {
    fprintf(stderr, "pg2qdrant: embed: %s\n", name ? "no such [embedder.NAME] section" : "no [embedder.NAME] section in the config");
    return 2;
  }
  uv_loop_t loop;
  uv_loop_init(&loop);
  p2q_embedder_t *e = NULL;
  char err[512];
  if (p2q_embedder_new(&loop, ec, &e, err, sizeof err)) {
    fprintf(stderr, "pg2qdrant: embed: %s\n", err);
    uv_loop_close(&loop);
    return 1;
  }
  embed_state_t st = {0, 0};
  char *texts[CHUNK], *line = NULL;
  size_t lens[CHUNK], cap = 0;
  ssize_t got;
  int n = 0;
  while ((got = getline(&line, &cap, stdin)) >= 0) {
    const char *msg = NULL;
    char *t = line_text(line, (size_t)got, jsonl, &lens[n], &msg);
    if (!t) { /* keep output lines aligned with input lines */
      if (n) { embed_chunk(&loop, e, texts, lens, n, &st); while (n) free(texts[--n]); }
      print_error(msg ? msg : "out of memory");
      st.failed = 1;
      continue;
    }
    texts[n++] = t;
    if (n == CHUNK) { st.failed |= embed_chunk(&loop, e, texts, lens, n, &st); while (n) free(texts[--n]); }
  }
  if (n) { st.failed |= embed_chunk(&loop, e, texts, lens, n, &st); while (n) free(texts[--n]); }
  free(line);
  int is_closed = 0;
  p2q_embedder_close(e, closed, &is_closed);
  while (!is_closed) uv_run(&loop, UV_RUN_ONCE);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  fflush(stdout);
  return st.failed ? 1 : 0;
}

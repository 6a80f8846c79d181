/* Unit tests for reindex.c: version names, the vector-meaning signature, the alias switch body
   (checked against Qdrant's ChangeAliasesOperation shape), reading Qdrant's lists, and (reindex_def.c)
   the definition round trip, the daemon's effective config and the phase → write-mode mapping.
   The steps themselves, with a kill -9 in each, are tests/integration/test_reindex.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "pg2qdrant/errors.h"
#include "pg2qdrant/reindex.h"

static void test_version_names(void **state) {
  (void)state;
  char b[32];
  assert_int_equal(p2q_reindex_version_name("docs", 2, b, sizeof b), 8);
  assert_string_equal(b, "docs__v2");
  assert_int_equal(p2q_reindex_version_name("docs", 0, b, sizeof b), P2Q_EINVAL);
  assert_int_equal(p2q_reindex_version_name("docs", 12, b, 8), P2Q_EOVERFLOW);
  assert_int_equal(p2q_reindex_version_of("docs", "docs__v1"), 1);
  assert_int_equal(p2q_reindex_version_of("docs", "docs__v17"), 17);
  assert_int_equal(p2q_reindex_version_of("docs", "docs"), 0);
  assert_int_equal(p2q_reindex_version_of("docs", "docs__v0"), 0);
  assert_int_equal(p2q_reindex_version_of("docs", "docs__v01"), 0);
  assert_int_equal(p2q_reindex_version_of("docs", "docs__v2x"), 0);
  assert_int_equal(p2q_reindex_version_of("docs", "docs__v"), 0);
  assert_int_equal(p2q_reindex_version_of("docs", "docs2__v1"), 0);
  assert_int_equal(p2q_reindex_version_of("docs", "doc__v1"), 0);
  assert_int_equal(p2q_reindex_version_of("docs", "docs__v99999999999"), 0);
}

static p2q_rule_config_t rule(void) {
  p2q_rule_config_t r;
  memset(&r, 0, sizeof r);
  snprintf(r.model, sizeof r.model, "openai/text-embedding-3-small@1536");
  r.distance = P2Q_DIST_COSINE;
  r.collection = "docs";
  r.table = "public.docs";
  return r;
}

static void test_signature(void **state) {
  (void)state;
  char a[512], b[512], ia[17], ib[17];
  p2q_rule_config_t r = rule(), s = rule();
  assert_true(p2q_reindex_signature(&r, 1536, a, sizeof a) > 0);
  assert_string_equal(a, "model=openai/text-embedding-3-small@1536;dim=1536;distance=Cosine;"
                         "vector=;column=;chunk=0/0;sparse=none;sparse_name=;k1=;b=;avg_len=0;"
                         "stop=0;stem=0");
  /* what does not change the vectors' meaning leaves the signature alone */
  s.table = "public.other";
  s.hnsw_m = 32;
  s.chunk_overlap = 40; /* without chunking the overlap means nothing */
  s.bm25_k1 = "2.0";    /* without bm25 neither */
  assert_true(p2q_reindex_signature(&s, 1536, b, sizeof b) > 0);
  assert_string_equal(a, b);
  p2q_reindex_signature_id(a, ia);
  p2q_reindex_signature_id(b, ib);
  assert_string_equal(ia, ib);
  assert_int_equal(strlen(ia), 16);
  /* each of these does */
  const char *what[] = {"model", "dim", "distance", "vector", "chunk", "overlap", "sparse", "k1", "stem"};
  for (size_t i = 0; i < sizeof what / sizeof what[0]; i++) {
    p2q_rule_config_t t = rule();
    int64_t dim = 1536;
    t.sparse = P2Q_SPARSE_BM25;
    t.sparse_name = "bm25";
    t.bm25_k1 = "1.2";
    t.bm25_avg_len = 256;
    t.chunk_tokens = 200;
    char base[512], got[512];
    assert_true(p2q_reindex_signature(&t, dim, base, sizeof base) > 0);
    if (!strcmp(what[i], "model")) snprintf(t.model, sizeof t.model, "minilm/all-MiniLM-L6-v2");
    if (!strcmp(what[i], "dim")) dim = 512;
    if (!strcmp(what[i], "distance")) t.distance = P2Q_DIST_DOT;
    if (!strcmp(what[i], "vector")) t.vector_name = "text";
    if (!strcmp(what[i], "chunk")) t.chunk_tokens = 100;
    if (!strcmp(what[i], "overlap")) t.chunk_overlap = 20;
    if (!strcmp(what[i], "sparse")) t.sparse = P2Q_SPARSE_NONE;
    if (!strcmp(what[i], "k1")) t.bm25_k1 = "1.5";
    if (!strcmp(what[i], "stem")) t.bm25_stemmer = 1;
    assert_true(p2q_reindex_signature(&t, dim, got, sizeof got) > 0);
    if (!strcmp(base, got)) fail_msg("changing %s left the signature equal", what[i]);
  }
  assert_int_equal(p2q_reindex_signature(&r, 1536, a, 20), P2Q_EOVERFLOW);
}

static void test_swap_body(void **state) {
  (void)state;
  p2q_buf_t b = P2Q_BUF_INIT;
  p2q_reindex_swap_body(&b, "docs", "docs__v2", 1);
  assert_string_equal(p2q_buf_str(&b),
                      "{\"actions\":[{\"delete_alias\":{\"alias_name\":\"docs\"}},"
                      "{\"create_alias\":{\"collection_name\":\"docs__v2\",\"alias_name\":\"docs\"}}]}");
  p2q_buf_reset(&b);
  p2q_reindex_swap_body(&b, "a\"b", "a\"b__v2", 0); /* quoted, no delete without an alias */
  cJSON *j = cJSON_Parse(p2q_buf_str(&b));
  assert_non_null(j);
  cJSON *acts = cJSON_GetObjectItem(j, "actions");
  assert_int_equal(cJSON_GetArraySize(acts), 1);
  cJSON *ca = cJSON_GetObjectItem(cJSON_GetArrayItem(acts, 0), "create_alias");
  assert_string_equal(cJSON_GetObjectItem(ca, "alias_name")->valuestring, "a\"b");
  assert_string_equal(cJSON_GetObjectItem(ca, "collection_name")->valuestring, "a\"b__v2");
  cJSON_Delete(j);
  p2q_buf_free(&b);
}

static void test_observe(void **state) {
  (void)state;
  int av, mv;
  /* bodies as Qdrant 1.18 answers them (recordings/v1.18.jsonl: list-collections, GET /aliases) */
  const char *colls = "{\"result\":{\"collections\":[{\"name\":\"docs__v1\"},{\"name\":\"docs__v2\"},"
                      "{\"name\":\"docsx__v9\"},{\"name\":\"other\"}]},\"status\":\"ok\",\"time\":1e-05}";
  const char *al = "{\"result\":{\"aliases\":[{\"alias_name\":\"x\",\"collection_name\":\"docs__v2\"},"
                   "{\"alias_name\":\"docs\",\"collection_name\":\"docs__v1\"}]},\"status\":\"ok\"}";
  assert_int_equal(p2q_reindex_observe("docs", colls, al, &av, &mv), 0);
  assert_int_equal(av, 1);
  assert_int_equal(mv, 2);
  const char *none = "{\"result\":{\"aliases\":[]},\"status\":\"ok\"}";
  assert_int_equal(p2q_reindex_observe("docs", colls, none, &av, &mv), 0);
  assert_int_equal(av, 0);
  const char *legacy = "{\"result\":{\"collections\":[{\"name\":\"docs\"}]}}";
  assert_int_equal(p2q_reindex_observe("docs", legacy, none, &av, &mv), 0);
  assert_int_equal(av, P2Q_REINDEX_LEGACY);
  assert_int_equal(mv, 0);
  const char *hand = "{\"result\":{\"aliases\":[{\"alias_name\":\"docs\",\"collection_name\":\"other\"}]}}";
  assert_int_equal(p2q_reindex_observe("docs", colls, hand, &av, &mv), P2Q_EMISMATCH);
  assert_int_equal(p2q_reindex_observe("docs", "{\"status\":{\"error\":\"x\"}}", none, &av, &mv),
                   P2Q_EBADJSON);
  assert_int_equal(p2q_reindex_observe("docs", colls, "not json", &av, &mv), P2Q_EBADJSON);
  assert_int_equal(p2q_reindex_observe("docs", "{\"result\":{\"collections\":[{}]}}", none, &av, &mv),
                   P2Q_EBADJSON);
}

/* ---- reindex_def.c: definitions and the daemon's effective config ------------------------ */

#define CONF_HEAD "[qdrant]\nurl = http://127.0.0.1:6333\n"
#define RULE(model, dim) \
  "[embedder.oa]\ntype = openai\nurl = http://127.0.0.1:9/v1\nmodel = " model "\napi_key_env = K\n" \
  "dimensions = " dim "\n[rule.notes]\ntable = public.notes\nkey = id\ncolumns = id, title\n" \
  "text = {title}\\n{body}\nembedder = oa\ncollection = notes\nfilter = id > 0 AND title <> ''\n" \
  "sparse = bm25\nbm25_k1 = 1.5\n"

static p2q_config_t *load(const char *text) {
  char err[512];
  p2q_config_t *c = NULL;
  if (p2q_config_load_string(text, "t.ini", &c, err, sizeof err)) fail_msg("%s", err);
  return c;
}

/* The definition text parses back, through the one config grammar, to a rule that means the same. */
static void test_definition_round_trip(void **state) {
  (void)state;
  p2q_config_t *c = load(CONF_HEAD RULE("m1", "8"));
  p2q_buf_t def = P2Q_BUF_INIT, text = P2Q_BUF_INIT;
  char a[1024], b[1024];
  assert_int_equal(p2q_reindex_definition(c, &c->rules[0], &def), 0);
  assert_non_null(strstr(p2q_buf_str(&def), "[embedder.oa]\n"));
  assert_non_null(strstr(p2q_buf_str(&def), "text = {title}\\n{body}\n")); /* verbatim */
  p2q_buf_puts(&text, CONF_HEAD);
  p2q_buf_puts(&text, p2q_buf_str(&def));
  p2q_config_t *back = load(p2q_buf_str(&text));
  assert_true(p2q_reindex_rule_signature(&c->rules[0], a, sizeof a) > 0);
  assert_true(p2q_reindex_rule_signature(&back->rules[0], b, sizeof b) > 0);
  assert_string_equal(a, b);
  assert_string_equal(back->rules[0].filter, c->rules[0].filter);
  assert_string_equal(back->rules[0].model, "openai/m1@8");
  p2q_config_free(back);
  p2q_config_free(c);
  p2q_buf_free(&def);
  p2q_buf_free(&text);
}

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

/* DUAL: the rule writes the new version, a shadow (the old definition, its old embedder under a
   private name) the old one, named like the rule; a rule that is not the job's definition (a
   daemon started with the old file) and a file changed since loading are refused. */
static void test_effective_config(void **state) {
  (void)state;
  char path[] = "/tmp/p2q_reindex_XXXXXX", err[512], sig[1024];
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  close(fd);
  write_file(path, CONF_HEAD RULE("m2", "12"));
  p2q_config_t *base = NULL, *old = load(CONF_HEAD RULE("m1", "8")), *eff = NULL;
  assert_int_equal(p2q_config_load(path, &base, err, sizeof err), 0);
  p2q_buf_t def = P2Q_BUF_INIT;
  assert_int_equal(p2q_reindex_definition(old, &old->rules[0], &def), 0);
  assert_true(p2q_reindex_rule_signature(&base->rules[0], sig, sizeof sig) > 0);
  p2q_reindex_eff_t job = {.rule = "notes", .collection = "notes__v2", .signature = sig,
                           .shadow_def = p2q_buf_str(&def), .shadow_collection = "notes"}; /* legacy */
  assert_int_equal(p2q_reindex_effective(base, &job, 1, &eff, err, sizeof err), 0);
  assert_int_equal(eff->n_rules, 2);
  assert_string_equal(eff->rules[0].collection, "notes__v2");
  assert_int_equal(eff->rules[0].shadow_of, 0);
  assert_string_equal(eff->rules[0].model, "openai/m2@12");
  assert_string_equal(eff->rules[1].name, "notes"); /* point ids derive from the rule name */
  assert_int_equal(eff->rules[1].shadow_of, 1);
  assert_string_equal(eff->rules[1].collection, "notes");
  assert_string_equal(eff->rules[1].model, "openai/m1@8");
  assert_string_equal(eff->rules[1].event_type, "notes");
  assert_int_equal(eff->n_embedders, 2); /* the file's first: the daemon's embedders stay parallel */
  assert_string_equal(eff->embedders[0].name, "oa");
  assert_string_equal(eff->embedders[1].name, eff->rules[1].embedder);
  assert_int_equal(eff->embedders[1].dimensions, 8);
  p2q_config_free(eff);
  eff = NULL;
  /* NEW_ONLY: no shadow */
  job.shadow_def = NULL;
  assert_int_equal(p2q_reindex_effective(base, &job, 1, &eff, err, sizeof err), 0);
  assert_int_equal(eff->n_rules, 1);
  assert_string_equal(eff->rules[0].collection, "notes__v2");
  p2q_config_free(eff);
  eff = NULL;
  /* the running rule is not the definition being built */
  job.signature = "model=openai/m1@8;…";
  assert_int_equal(p2q_reindex_effective(base, &job, 1, &eff, err, sizeof err), P2Q_ECONFIG);
  assert_non_null(strstr(err, "not the definition being built"));
  assert_null(eff);
  /* the file changed since it was loaded (no SIGHUP yet) */
  job.signature = sig;
  write_file(path, CONF_HEAD RULE("m3", "12"));
  assert_int_equal(p2q_reindex_effective(base, &job, 1, &eff, err, sizeof err), P2Q_ECONFIG);
  assert_non_null(strstr(err, "send SIGHUP"));
  unlink(path);
  p2q_buf_free(&def);
  p2q_config_free(old);
  p2q_config_free(base);
}

static void test_modes(void **state) {
  (void)state;
  const char *single[] = {"create", "swapped", NULL}, *dual[] = {"dual", "backfill", "catch_up"};
  for (int i = 0; i < 3; i++) assert_int_equal(p2q_reindex_mode_of(single[i]), P2Q_RX_SINGLE);
  for (int i = 0; i < 3; i++) assert_int_equal(p2q_reindex_mode_of(dual[i]), P2Q_RX_DUAL);
  assert_int_equal(p2q_reindex_mode_of("preswap"), P2Q_RX_NEW_ONLY);
  assert_string_equal(p2q_reindex_mode_name(P2Q_RX_NEW_ONLY), "new_only");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_version_names),
      cmocka_unit_test(test_signature),
      cmocka_unit_test(test_swap_body),
      cmocka_unit_test(test_observe),
      cmocka_unit_test(test_definition_round_trip),
      cmocka_unit_test(test_effective_config),
      cmocka_unit_test(test_modes),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Unit tests for config.c / config_table.c: valid files, every error path, dump, describe. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pg2qdrant/config.h"
#include "pg2qdrant/errors.h"
#include "pg2qdrant/log.h"

#define RULE \
  "[rule.docs]\ntable = public.docs\nkey = id\nvector_column = emb\ndimension = 3\ncollection = docs\n"

static char errbuf[2048];

static p2q_config_t *load_ok(const char *text) {
  p2q_config_t *c = NULL;
  int rc = p2q_config_load_string(text, "t.ini", &c, errbuf, sizeof errbuf);
  if (rc != 0) fail_msg("unexpected error %d: %s", rc, errbuf);
  assert_non_null(c);
  return c;
}

static void expect_err_(const char *text, int code, const char *msg, int line) {
  p2q_config_t *c = (p2q_config_t *)1;
  int rc = p2q_config_load_string(text, "t.ini", &c, errbuf, sizeof errbuf);
  if (rc != code || strcmp(errbuf, msg) != 0)
    fail_msg("test line %d: got %d '%s'\n  want %d '%s'", line, rc, errbuf, code, msg);
  assert_null(c);
}
#define expect_err(text, code, msg) expect_err_(text, code, msg, __LINE__)

static char *dump_str(const p2q_config_t *c) {
  char *buf = NULL;
  size_t n = 0;
  FILE *f = open_memstream(&buf, &n);
  assert_non_null(f);
  p2q_config_dump(c, f);
  fclose(f);
  return buf;
}

/* ---- valid files ---- */

static void test_defaults(void **state) {
  p2q_config_t *c = load_ok("");
  assert_string_equal(c->pg_conninfo, "");
  assert_string_equal(c->pg_schema, "public");
  assert_int_equal(c->pg_connect_timeout_ms, 10000);
  assert_string_equal(c->pg_daemon_synchronous_commit, "off");
  assert_string_equal(c->qdrant_url, "http://127.0.0.1:6333");
  assert_string_equal(c->qdrant_api_key_env, "");
  assert_string_equal(c->qdrant_ca_file, "");
  assert_int_equal(c->qdrant_timeout_ms, 30000);
  assert_int_equal(c->qdrant_connect_timeout_ms, 5000);
  assert_int_equal(c->sweep_interval_ms, 30000);
  assert_int_equal(c->shutdown_timeout_ms, 10000);
  assert_int_equal(c->lease_ms, 300000);
  assert_int_equal(c->max_attempts, 10);
  assert_int_equal(c->retry_min_ms, 1000);
  assert_int_equal(c->retry_max_ms, 300000);
  assert_int_equal(c->breaker_threshold, 5);
  assert_int_equal(c->breaker_max_ms, 30000);
  assert_string_equal(c->log_level, "info");
  assert_string_equal(c->log_format, "logfmt");
  assert_int_equal(c->stats_interval_ms, 60000);
  assert_string_equal(c->http_listen, "127.0.0.1:9187");
  assert_int_equal(c->n_rules, 0);
  assert_int_equal(c->n_workers, 0);
  assert_int_equal(c->n_embedders, 0);
  assert_string_equal(c->path, "t.ini");
  p2q_config_free(c);
}

static void test_rule_defaults_and_default_worker(void **state) {
  p2q_config_t *c = load_ok("; comment\n# comment\n" RULE "columns = id, title ,body\n");
  assert_int_equal(c->n_rules, 1);
  const p2q_rule_config_t *r = p2q_config_rule(c, "docs");
  assert_non_null(r);
  assert_null(p2q_config_rule(c, "nope"));
  assert_string_equal(r->table, "public.docs");
  assert_int_equal(r->key.n, 1);
  assert_string_equal(r->key.items[0], "id");
  assert_int_equal(r->columns.n, 3);
  assert_string_equal(r->columns.items[1], "title");
  assert_string_equal(r->columns.items[2], "body");
  assert_int_equal(r->watch.n, 3); /* default: columns */
  assert_string_equal(r->watch.items[2], "body");
  assert_null(r->text);
  assert_string_equal(r->vector_column, "emb");
  assert_null(r->filter);
  assert_null(r->vector_name);
  assert_null(r->routing_key);
  assert_null(r->embedder);
  assert_string_equal(r->event_type, "docs");
  assert_int_equal(r->dimension, 3);
  assert_int_equal(r->distance, P2Q_DIST_COSINE);
  assert_int_equal(r->on_truncate, P2Q_TRUNCATE_DELETE);
  assert_int_equal(r->chunk_tokens, 0);
  assert_int_equal(r->line, 3);
  assert_int_equal(c->n_workers, 1);
  assert_string_equal(c->workers[0].name, "default");
  assert_int_equal(c->workers[0].event_types.n, 1);
  assert_string_equal(c->workers[0].event_types.items[0], "docs");
  assert_null(c->workers[0].routing_key);
  assert_int_equal(c->workers[0].batch_size, 256);
  assert_int_equal(c->workers[0].linger_ms, 5);
  assert_int_equal(c->workers[0].max_inflight, 4);
  p2q_config_free(c);
}

static void test_values(void **state) {
  p2q_config_t *c = load_ok(
      "[postgres]\nconninfo = host=db dbname=app ; inline comment\nconnect_timeout = 500ms\n"
      "[daemon]\nlease = 1h\nretry_min = 250\nretry_max = 2m\nsweep_interval = 30s\n"
      "[log]\nlevel = DEBUG\nformat = Json\nstats_interval = 0\n"
      "[http]\nlisten =\n"
      "[qdrant]\nurl = https://q.example:6333\napi_key_env = QDRANT_API_KEY\n"
      "[rule.docs]\ntable = public.docs\nkey = a,b\nvector_column = emb\ndimension = 65536\n"
      "collection = c\ndistance = euclid\non_truncate = IGNORE\nevent_type = ev\nfilter = x > 1\n"
      "[worker.w-1]\nevent_types = ev\nlinger_ms = 1s\nrouting_key = 7\n");
  assert_string_equal(c->pg_conninfo, "host=db dbname=app");
  assert_int_equal(c->pg_connect_timeout_ms, 500);
  assert_int_equal(c->lease_ms, 3600000);
  assert_int_equal(c->retry_min_ms, 250);
  assert_int_equal(c->retry_max_ms, 120000);
  assert_string_equal(c->log_level, "debug");
  assert_string_equal(c->log_format, "json");
  assert_int_equal(c->stats_interval_ms, 0);
  assert_string_equal(c->http_listen, "");
  assert_string_equal(c->qdrant_api_key_env, "QDRANT_API_KEY");
  const p2q_rule_config_t *r = &c->rules[0];
  assert_int_equal(r->key.n, 2);
  assert_int_equal(r->dimension, 65536);
  assert_int_equal(r->distance, P2Q_DIST_EUCLID);
  assert_string_equal(p2q_distance_name(r->distance), "Euclid");
  assert_int_equal(r->on_truncate, P2Q_TRUNCATE_IGNORE);
  assert_string_equal(r->event_type, "ev");
  assert_string_equal(r->filter, "x > 1");
  assert_int_equal(r->watch.n, 0);
  assert_int_equal(c->n_workers, 1);
  assert_string_equal(c->workers[0].name, "w-1");
  assert_int_equal(c->workers[0].linger_ms, 1000);
  assert_string_equal(c->workers[0].routing_key, "7");
  p2q_config_free(c);
}

static void test_repeated_and_embedders(void **state) {
  p2q_config_t *c = load_ok(
      "[embedder.mini]\ntype = minilm\n"
      "[embedder.oa]\ntype = openai\nurl = https://api.openai.com/v1\nmodel = m\n"
      "dimensions = 256\napi_key_env = OPENAI_API_KEY\n"
      "[rule.a]\ntable = s.a\nkey = id\ntext = title, body\nembedder = mini\ncollection = a\n"
      "chunk_tokens = 128\nchunk_overlap = 16\n"
      "[rule.b]\ntable = s.b\nkey = id\ntext = {title}\\n{body}\nembedder = oa\ncollection = b\n"
      "[rule.c]\ntable = \"My.Sch\"\"ema\".\"T\"\nkey = id\nvector_column = v\ndimension = 8\n"
      "collection = c\nevent_type = a\n"
      "[worker.w1]\nevent_types = a\n[worker.w2]\nevent_types = b, a\nbatch_size = 10000\n");
  assert_int_equal(c->n_embedders, 2);
  assert_int_equal(c->n_rules, 3);
  assert_int_equal(c->n_workers, 2);
  const p2q_embedder_config_t *m = p2q_config_embedder(c, "mini");
  assert_int_equal(m->type, P2Q_EMB_MINILM);
  assert_string_equal(m->model_dir, "models/all-MiniLM-L6-v2"); /* "t.ini": no directory */
  assert_int_equal(m->threads, 2);
  assert_int_equal(m->max_batch_tokens, 8192);
  const p2q_embedder_config_t *o = p2q_config_embedder(c, "oa");
  assert_int_equal(o->type, P2Q_EMB_OPENAI);
  assert_null(o->model_dir);
  assert_string_equal(o->url, "https://api.openai.com/v1");
  assert_string_equal(o->api_key_env, "OPENAI_API_KEY");
  assert_int_equal(o->batch_size, 64);
  assert_int_equal(o->max_inflight, 4);
  assert_int_equal(c->rules[0].dimension, 384);
  assert_int_equal(c->rules[0].chunk_tokens, 128);
  assert_int_equal(c->rules[0].chunk_overlap, 16);
  assert_int_equal(c->rules[1].dimension, 256);
  assert_string_equal(c->rules[1].text, "{title}\\n{body}");
  assert_string_equal(c->rules[2].table, "\"My.Sch\"\"ema\".\"T\"");
  assert_int_equal(c->workers[1].event_types.n, 2);
  assert_int_equal(c->workers[1].batch_size, 10000);
  assert_null(p2q_config_embedder(c, "x"));
  assert_int_equal(m->dim, 384);
  assert_int_equal(o->dim, 256);
  assert_int_equal(o->max_input_tokens, 0);
  assert_int_equal(o->requests_per_minute, 0);
  assert_int_equal(o->tokens_per_minute, 0);
  assert_int_equal(o->retry_max_ms, c->retry_max_ms);
  p2q_config_free(c);
  /* dimensions = 0: the embedder's vectors are checked against its rules' dimension, which the
     rules sharing it must agree on (the rule may come before the embedder) */
  c = load_ok("[daemon]\nretry_max = 7s\n"
              "[rule.a]\ntable = s.a\nkey = id\ntext = t\nembedder = oa\ncollection = a\ndimension = 8\n"
              "[embedder.oa]\ntype = openai\nurl = http://x\nmodel = m\nmax_input_tokens = 8191\n"
              "requests_per_minute = 3000\ntokens_per_minute = 1000000\n"
              "[rule.b]\ntable = s.b\nkey = id\ntext = t\nembedder = oa\ncollection = b\ndimension = 8\n");
  o = p2q_config_embedder(c, "oa");
  assert_int_equal(o->dimensions, 0);
  assert_int_equal(o->dim, 8);
  assert_int_equal(o->max_input_tokens, 8191);
  assert_int_equal(o->requests_per_minute, 3000);
  assert_int_equal(o->tokens_per_minute, 1000000);
  assert_int_equal(o->retry_max_ms, 7000);
  p2q_config_free(c);
}

static void test_model_dir_relative(void **state) {
  p2q_config_t *c = load_ok("");
  p2q_config_free(c);
  c = NULL;
  assert_int_equal(p2q_config_load_string("[embedder.e]\ntype = minilm\n[embedder.f]\ntype=minilm\n"
                                          "model_dir = /abs/m\n[qdrant]\nca_file = ca.pem\n",
                                          "/etc/p2q/x.ini", &c, errbuf, sizeof errbuf),
                   0);
  assert_string_equal(c->embedders[0].model_dir, "/etc/p2q/models/all-MiniLM-L6-v2");
  assert_string_equal(c->embedders[1].model_dir, "/abs/m");
  assert_string_equal(c->qdrant_ca_file, "/etc/p2q/ca.pem");
  p2q_config_free(c);

  /* From a real file: relative to the file's (real) directory. */
  char dir[] = "/tmp/p2q_cfg_XXXXXX", path[PATH_MAX], want[PATH_MAX + 64];
  assert_non_null(mkdtemp(dir));
  snprintf(path, sizeof path, "%s/p.ini", dir);
  FILE *f = fopen(path, "w");
  fputs("[embedder.e]\ntype = minilm\nmodel_dir = m/x\n", f);
  fclose(f);
  assert_int_equal(p2q_config_load(path, &c, errbuf, sizeof errbuf), 0);
  char *real = realpath(dir, NULL);
  snprintf(want, sizeof want, "%s/m/x", real);
  assert_string_equal(c->embedders[0].model_dir, want);
  assert_string_equal(c->path, path);
  p2q_config_free(c);
  /* Loaded by a relative name: still resolved to an absolute directory. */
  char cwd[PATH_MAX];
  assert_non_null(getcwd(cwd, sizeof cwd));
  assert_int_equal(chdir(dir), 0);
  int rc = p2q_config_load("./p.ini", &c, errbuf, sizeof errbuf);
  assert_int_equal(chdir(cwd), 0);
  assert_int_equal(rc, 0);
  assert_string_equal(c->embedders[0].model_dir, want);
  free(real);
  p2q_config_free(c);
  unlink(path);
  rmdir(dir);
}

static void test_parsers(void **state) {
  int64_t v;
  int b;
  assert_int_equal(p2q_config_parse_duration("500ms", &v), 0); assert_int_equal(v, 500);
  assert_int_equal(p2q_config_parse_duration("30s", &v), 0); assert_int_equal(v, 30000);
  assert_int_equal(p2q_config_parse_duration("5m", &v), 0); assert_int_equal(v, 300000);
  assert_int_equal(p2q_config_parse_duration("1h", &v), 0); assert_int_equal(v, 3600000);
  assert_int_equal(p2q_config_parse_duration("42", &v), 0); assert_int_equal(v, 42);
  assert_int_equal(p2q_config_parse_duration("", &v), P2Q_ECONFIG);
  assert_int_equal(p2q_config_parse_duration("-1s", &v), P2Q_ECONFIG);
  assert_int_equal(p2q_config_parse_duration("1.5s", &v), P2Q_ECONFIG);
  assert_int_equal(p2q_config_parse_duration("5 s", &v), P2Q_ECONFIG);
  assert_int_equal(p2q_config_parse_duration("3d", &v), P2Q_ECONFIG);
  assert_int_equal(p2q_config_parse_duration("99999999999999999999", &v), P2Q_ECONFIG);
  assert_int_equal(p2q_config_parse_duration("9999999999999999h", &v), P2Q_ECONFIG);
  assert_int_equal(p2q_config_parse_bool("Yes", &b), 0); assert_int_equal(b, 1);
  assert_int_equal(p2q_config_parse_bool("off", &b), 0); assert_int_equal(b, 0);
  assert_int_equal(p2q_config_parse_bool("maybe", &b), P2Q_ECONFIG);
  char buf[32];
  p2q_config_format_duration(0, buf, sizeof buf); assert_string_equal(buf, "0");
  p2q_config_format_duration(1500, buf, sizeof buf); assert_string_equal(buf, "1500ms");
  p2q_config_format_duration(90000, buf, sizeof buf); assert_string_equal(buf, "90s");
  p2q_config_format_duration(7200000, buf, sizeof buf); assert_string_equal(buf, "2h");
  assert_int_equal(p2q_levenshtein("batchsize", "batch_size"), 1);
  assert_int_equal(p2q_levenshtein("", "abc"), 3);
  assert_int_equal(p2q_levenshtein("kitten", "sitting"), 3);
  assert_int_equal(p2q_levenshtein("same", "same"), 0);
}

static void test_builtin_defaults_valid(void **state) {
  /* Every default parses and lies in its range; every repeated kind can be instantiated. */
  char why[256];
  for (int i = 0; i < p2q_conf_n_sections; i++) {
    const p2q_conf_section_t *k = &p2q_conf_sections[i];
    assert_true(k->n_entries <= P2Q_CONF_MAX_KEYS);
    for (int j = 0; j < k->n_entries; j++) {
      const p2q_conf_entry_t *e = &k->entries[j];
      assert_string_equal(e->section, k->name);
      assert_non_null(e->help);
      if (!e->def) continue;
      union { int64_t i; char *s; p2q_strlist_t l; int b; } field;
      memset(&field, 0, sizeof field);
      if (p2q_conf_parse_value(e, e->def, &field, why, sizeof why) != 0)
        fail_msg("[%s] %s: bad default '%s': %s", k->name, e->key, e->def, why);
      if (e->type == P2Q_CT_STRING || e->type == P2Q_CT_ENV ||
          (e->type == P2Q_CT_ENUM && (e->flags & P2Q_CF_ENUM_STR)))
        free(field.s);
      if (e->type == P2Q_CT_LIST) p2q_conf_strlist_free(&field.l);
    }
  }
}

/* ---- errors ---- */

static void test_err_unknown(void **state) {
  expect_err("[postgress]\n", P2Q_ENOKEY, "t.ini:1: [postgress]: unknown section (did you mean '[postgres]'?)");
  expect_err("\n[rules.docs]\n", P2Q_ENOKEY, "t.ini:2: [rules.docs]: unknown section (did you mean '[rule.docs]'?)");
  expect_err("[zzzzzz]\n", P2Q_ENOKEY, "t.ini:1: [zzzzzz]: unknown section");
  expect_err("[worker.w]\nbatchsize = 3\n", P2Q_ENOKEY,
             "t.ini:2: [worker.w] batchsize: unknown key 'batchsize' (did you mean 'batch_size'?)");
  expect_err("[daemon]\nfrobnicate = 1\n", P2Q_ENOKEY, "t.ini:2: [daemon] frobnicate: unknown key 'frobnicate'");
  expect_err("[qdrant]\nURL = http://x\n", P2Q_ENOKEY, "t.ini:2: [qdrant] URL: unknown key 'URL' (did you mean 'url'?)");
}

static void test_err_syntax(void **state) {
  expect_err("[daemon]\nlease 5m\n", P2Q_ECONFIG,
             "t.ini:2: [daemon]: syntax error: expected 'key = value', '[section]' or a comment");
  expect_err("lease = 5m\n", P2Q_ECONFIG, "t.ini:1: lease: key outside of any [section]");
  expect_err("[daemon\n", P2Q_ECONFIG, "t.ini:1: syntax error: missing ']'");
  expect_err("[daemon] x\n", P2Q_ECONFIG, "t.ini:1: syntax error: text after ']'");
  expect_err("[daemon]\n= 5\n", P2Q_ECONFIG, "t.ini:2: [daemon]: syntax error: missing key before '='");
  /* No continuation lines: an indented line without '=' is a syntax error. */
  expect_err("[postgres]\nconninfo = host=a\n  dbname=b\n", P2Q_ENOKEY,
             "t.ini:3: [postgres] dbname: unknown key 'dbname'");
  expect_err("[postgres]\nconninfo = host=a\n  more\n", P2Q_ECONFIG,
             "t.ini:3: [postgres]: syntax error: expected 'key = value', '[section]' or a comment");
  char *big = malloc(P2Q_CONF_MAX_LINE + 64);
  strcpy(big, "[postgres]\nconninfo = ");
  size_t o = strlen(big);
  memset(big + o, 'x', P2Q_CONF_MAX_LINE);
  strcpy(big + o + P2Q_CONF_MAX_LINE, "\n");
  p2q_config_t *c = NULL;
  assert_int_equal(p2q_config_load_string(big, "t.ini", &c, errbuf, sizeof errbuf), P2Q_ECONFIG);
  assert_string_equal(errbuf, "t.ini:2: line too long (more than 8189 characters)");
  /* A long line within the limit is fine. */
  big[o + 4000] = '\n';
  big[o + 4001] = 0;
  c = load_ok(big);
  assert_int_equal(strlen(c->pg_conninfo), 4000);
  p2q_config_free(c);
  free(big);
}

static void test_err_sections(void **state) {
  expect_err("[rule]\n", P2Q_ECONFIG, "t.ini:1: [rule]: needs a name: [rule.NAME]");
  expect_err("[rule.]\n", P2Q_ECONFIG, "t.ini:1: [rule.]: invalid name '' (use A-Z a-z 0-9 _ -, 1 to 40 characters)");
  expect_err("[rule.my docs]\n", P2Q_ECONFIG, "t.ini:1: [rule.my docs]: invalid name 'my docs' (use A-Z a-z 0-9 _ -, 1 to 40 characters)");
  /* a rule name is part of generated identifiers: 41 characters is one too many */
  expect_err("[rule.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa]\n", P2Q_ECONFIG,
             "t.ini:1: [rule.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa]: invalid name "
             "'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa' (use A-Z a-z 0-9 _ -, 1 to 40 characters)");
  expect_err("[worker.a.b]\n", P2Q_ECONFIG, "t.ini:1: [worker.a.b]: invalid name 'a.b' (use A-Z a-z 0-9 _ -, 1 to 63 characters)");
  expect_err("[embedder.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa]\n", P2Q_ECONFIG,
             "t.ini:1: [embedder.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa]: invalid name "
             "'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa' (use A-Z a-z 0-9 _ -, 1 to 63 characters)");
  expect_err("[postgres.x]\n", P2Q_ECONFIG, "t.ini:1: [postgres.x]: [postgres] does not take a name");
  expect_err(RULE "\n[rule.docs]\n", P2Q_ECONFIG, "t.ini:8: [rule.docs]: duplicate section (first on line 1)");
  expect_err("[log]\n[daemon]\n[log]\n", P2Q_ECONFIG, "t.ini:3: [log]: duplicate section (first on line 1)");
  /* A 63-character name is fine. */
  p2q_config_t *c = load_ok("[embedder.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa]\ntype = minilm\n");
  assert_int_equal(strlen(c->embedders[0].name), 63);
  p2q_config_free(c);
}

static void test_err_values(void **state) {
  expect_err("[daemon]\nlease = 5m\nlease = 6m\n", P2Q_ECONFIG, "t.ini:3: [daemon] lease: set twice (lines 2 and 3)");
  expect_err("[daemon]\nmax_attempts = ten\n", P2Q_ECONFIG, "t.ini:2: [daemon] max_attempts: 'ten' is not an integer");
  expect_err("[daemon]\nmax_attempts = 5x\n", P2Q_ECONFIG, "t.ini:2: [daemon] max_attempts: '5x' is not an integer");
  expect_err("[daemon]\nmax_attempts = 1001\n", P2Q_ECONFIG, "t.ini:2: [daemon] max_attempts: 1001 is out of range (1..1000)");
  expect_err("[daemon]\nmax_attempts = 0\n", P2Q_ECONFIG, "t.ini:2: [daemon] max_attempts: 0 is out of range (1..1000)");
  expect_err("[daemon]\nlease = 500ms\n", P2Q_ECONFIG, "t.ini:2: [daemon] lease: 500ms is out of range (1s..24h)");
  expect_err("[daemon]\nlease = 5 minutes\n", P2Q_ECONFIG,
             "t.ini:2: [daemon] lease: '5 minutes' is not a duration (use e.g. 500ms, 30s, 5m, 1h; a bare number is ms)");
  expect_err("[daemon]\nlease =\n", P2Q_ECONFIG, "t.ini:2: [daemon] lease: empty value");
  expect_err("[worker.w]\nlinger_ms = 2m\n", P2Q_ECONFIG, "t.ini:2: [worker.w] linger_ms: 2m is out of range (0..1m)");
  expect_err("[worker.w]\nbatch_size = 0\n", P2Q_ECONFIG, "t.ini:2: [worker.w] batch_size: 0 is out of range (1..10000)");
  expect_err("[worker.w]\nmax_inflight = 257\n", P2Q_ECONFIG, "t.ini:2: [worker.w] max_inflight: 257 is out of range (1..256)");
  expect_err("[log]\nlevel = verbose\n", P2Q_ECONFIG,
             "t.ini:2: [log] level: unknown value 'verbose' (expected one of: debug, info, warn, error)");
  expect_err("[postgres]\ndaemon_synchronous_commit = yes\n", P2Q_ECONFIG,
             "t.ini:2: [postgres] daemon_synchronous_commit: unknown value 'yes' (expected one of: off, local, "
             "remote_write, on, remote_apply, default)");
  expect_err("[log]\nformat = xml\n", P2Q_ECONFIG, "t.ini:2: [log] format: unknown value 'xml' (expected one of: logfmt, json)");
  expect_err(RULE "distance = L2\n", P2Q_ECONFIG,
             "t.ini:7: [rule.docs] distance: unknown value 'L2' (expected one of: Cosine, Dot, Euclid, Manhattan)");
  expect_err(RULE "on_truncate = keep\n", P2Q_ECONFIG,
             "t.ini:7: [rule.docs] on_truncate: unknown value 'keep' (expected one of: delete, ignore)");
  expect_err(RULE "dimension = 65537\n", P2Q_ECONFIG, "t.ini:7: [rule.docs] dimension: set twice (lines 5 and 7)");
  expect_err("[rule.d]\ndimension = 65537\n", P2Q_ECONFIG, "t.ini:2: [rule.d] dimension: 65537 is out of range (0..65536)");
  expect_err("[embedder.e]\ntype = bert\n", P2Q_ECONFIG,
             "t.ini:2: [embedder.e] type: unknown value 'bert' (expected one of: minilm, openai)");
  expect_err("[postgres]\nschema =\n", P2Q_ECONFIG, "t.ini:2: [postgres] schema: empty value (required)");
  expect_err("[rule.d]\ntable =\n", P2Q_ECONFIG, "t.ini:2: [rule.d] table: empty value (required)");
  expect_err("[rule.d]\ntable = docs\n", P2Q_ECONFIG,
             "t.ini:2: [rule.d] table: 'docs' is not a schema-qualified table name (expected schema.table, e.g. public.docs)");
  expect_err("[rule.d]\ntable = a.b.c\n", P2Q_ECONFIG,
             "t.ini:2: [rule.d] table: 'a.b.c' is not a schema-qualified table name (expected schema.table, e.g. public.docs)");
  expect_err("[rule.d]\ntable = \"a.b\n", P2Q_ECONFIG,
             "t.ini:2: [rule.d] table: '\"a.b' is not a schema-qualified table name (expected schema.table, e.g. public.docs)");
  expect_err("[rule.d]\ntable = \"\".t\n", P2Q_ECONFIG,
             "t.ini:2: [rule.d] table: '\"\".t' is not a schema-qualified table name (expected schema.table, e.g. public.docs)");
  expect_err("[rule.d]\nkey = a,,b\n", P2Q_ECONFIG, "t.ini:2: [rule.d] key: empty item in list 'a,,b'");
  expect_err("[http]\nlisten = 9187\n", P2Q_ECONFIG,
             "t.ini:2: [http] listen: '9187' is not an IP address and port (e.g. 127.0.0.1:9187, 0.0.0.0:9187, [::1]:9187 or localhost:9187; host names are not resolved)");
  expect_err("[http]\nlisten = localhost:99999\n", P2Q_ECONFIG,
             "t.ini:2: [http] listen: 'localhost:99999' is not an IP address and port (e.g. 127.0.0.1:9187, 0.0.0.0:9187, [::1]:9187 or localhost:9187; host names are not resolved)");
  expect_err("[http]\nlisten = ::1:80\n", P2Q_ECONFIG,
             "t.ini:2: [http] listen: '::1:80' is not an IP address and port (e.g. 127.0.0.1:9187, 0.0.0.0:9187, [::1]:9187 or localhost:9187; host names are not resolved)");
  expect_err("[qdrant]\nurl = localhost:6333\n", P2Q_ECONFIG,
             "t.ini:2: [qdrant] url: 'localhost:6333' is not an http:// or https:// URL");
  /* validation agrees with what the clients do with a URL: they append paths to it */
  expect_err("[qdrant]\nurl = http://\n", P2Q_ECONFIG,
             "t.ini:2: [qdrant] url: the URL has no host (e.g. http://127.0.0.1:6333)");
  expect_err("[qdrant]\nurl = http://:6333\n", P2Q_ECONFIG,
             "t.ini:2: [qdrant] url: the URL has no host (e.g. http://127.0.0.1:6333)");
  expect_err("[qdrant]\nurl = https://q:6333/?x=1\n", P2Q_ECONFIG,
             "t.ini:2: [qdrant] url: a query string or fragment ('?', '#') is not allowed: paths are appended "
             "to this URL (write the base URL, e.g. https://api.openai.com/v1)");
  /* an embedder URL may carry a query (Azure OpenAI's ?api-version=…), never a fragment */
  expect_err("[embedder.e]\ntype = openai\nurl = https://h/v1/embeddings#x\n", P2Q_ECONFIG,
             "t.ini:3: [embedder.e] url: a fragment ('#') is not allowed: paths are "
             "appended to this URL (write the base URL, e.g. https://api.openai.com/v1)");
  /* a cluster's node list: each element checked like one URL, messages by position */
  expect_err("[qdrant]\nurl = http://a:6333, localhost:6334\n", P2Q_ECONFIG,
             "t.ini:2: [qdrant] url: URL 2 of the list: not an http:// or https:// URL with a host");
  expect_err("[qdrant]\nurl = http://a:6333,,http://b:6333\n", P2Q_ECONFIG,
             "t.ini:2: [qdrant] url: URL 2 of the list is empty (two commas, or a comma at an end)");
  expect_err("[qdrant]\nurl = http://a:6333, http://a:6333/\n", P2Q_ECONFIG,
             "t.ini:2: [qdrant] url: URL 2 of the list is URL 1 again");
  expect_err("[qdrant]\nurl = http://a:6333, https://b:6333/?x=1\n", P2Q_ECONFIG,
             "t.ini:2: [qdrant] url: URL 2 of the list: a query string or fragment ('?', '#') is not allowed: "
             "paths are appended to this URL (write the base URL, e.g. https://api.openai.com/v1)");
  p2q_config_t *c = load_ok("[http]\nlisten = [::1]:9187\n");
  assert_string_equal(c->http_listen, "[::1]:9187");
  p2q_config_free(c);
  c = load_ok("[http]\nlisten = localhost:80\n");
  p2q_config_free(c);
  /* the daemon binds IP literals only: a host name the validator let through was refused at start */
  expect_err("[http]\nlisten = metrics-host.local:80\n", P2Q_ECONFIG,
             "t.ini:2: [http] listen: 'metrics-host.local:80' is not an IP address and port (e.g. "
             "127.0.0.1:9187, 0.0.0.0:9187, [::1]:9187 or localhost:9187; host names are not resolved)");
  expect_err("[http]\nlisten = 127.0.0.1:0\n", P2Q_ECONFIG,
             "t.ini:2: [http] listen: '127.0.0.1:0' is not an IP address and port (e.g. "
             "127.0.0.1:9187, 0.0.0.0:9187, [::1]:9187 or localhost:9187; host names are not resolved)");
}

static void test_err_secrets(void **state) {
  expect_err("[qdrant]\napi_key = abc123\n", P2Q_ESECRET,
             "t.ini:2: [qdrant] api_key: secrets are not allowed in the config file: put the secret in an "
             "environment variable and set api_key_env = VAR");
  expect_err("[embedder.e]\ntype = openai\nopenai_api_key = sk-1\n", P2Q_ESECRET,
             "t.ini:3: [embedder.e] openai_api_key: secrets are not allowed in the config file: put the secret "
             "in an environment variable and set api_key_env = VAR");
  expect_err("[postgres]\npassword = hunter2\n", P2Q_ESECRET,
             "t.ini:2: [postgres] password: secrets are not allowed in the config file: use PGPASSWORD or "
             "~/.pgpass (libpq's environment)");
  /* A secret pasted into an *_env key is refused and not echoed. */
  expect_err("[qdrant]\napi_key_env = sk-abc.123\n", P2Q_ESECRET,
             "t.ini:2: [qdrant] api_key_env: not an environment variable name: set it to the NAME of the "
             "variable that holds the secret (e.g. QDRANT_API_KEY), never to the secret itself");
}

static void test_err_required(void **state) {
  expect_err("[rule.d]\nkey = id\nvector_column = v\ndimension = 3\ncollection = c\n", P2Q_ECONFIG,
             "t.ini:1: [rule.d]: missing required key 'table'");
  expect_err("[rule.d]\ntable = s.t\nvector_column = v\ndimension = 3\ncollection = c\n", P2Q_ECONFIG,
             "t.ini:1: [rule.d]: missing required key 'key'");
  expect_err("[rule.d]\ntable = s.t\nkey = id\nvector_column = v\ndimension = 3\n", P2Q_ECONFIG,
             "t.ini:1: [rule.d]: missing required key 'collection'");
  expect_err(RULE "[worker.w]\nbatch_size = 3\n", P2Q_ECONFIG, "t.ini:7: [worker.w]: missing required key 'event_types'");
  expect_err("[embedder.e]\nthreads = 3\n", P2Q_ECONFIG, "t.ini:1: [embedder.e]: missing required key 'type'");
  expect_err("[embedder.e]\ntype = openai\nmodel = m\n", P2Q_ECONFIG, "t.ini:1: [embedder.e]: type = openai requires 'url'");
  expect_err("[embedder.e]\ntype = openai\nurl = http://x\n", P2Q_ECONFIG,
             "t.ini:1: [embedder.e]: type = openai requires 'model'");
  expect_err("[embedder.e]\ntype = minilm\nmodel_dir =\n", P2Q_ECONFIG,
             "t.ini:3: [embedder.e] model_dir: empty value (required for type = minilm)");
  expect_err("[embedder.e]\ntype = minilm\nurl = http://x\n", P2Q_ECONFIG,
             "t.ini:3: [embedder.e] url: only valid for type = openai");
  expect_err("[embedder.e]\nthreads = 4\ntype = openai\nurl = http://x\nmodel = m\n", P2Q_ECONFIG,
             "t.ini:2: [embedder.e] threads: only valid for type = minilm");
}

#define EMB "[embedder.mini]\ntype = minilm\n"          /* lines 1-2 */
#define RHEAD "[rule.r]\ntable = s.t\nkey = id\ncollection = c\n" /* lines 3-6 */

static void test_err_cross(void **state) {
  expect_err(EMB RHEAD, P2Q_ECONFIG,
             "t.ini:3: [rule.r]: set exactly one of 'text' (embedded) or 'vector_column' (precomputed)");
  expect_err(EMB RHEAD "text = body\nembedder = mini\nvector_column = v\n", P2Q_ECONFIG,
             "t.ini:9: [rule.r] vector_column: 'text' and 'vector_column' are mutually exclusive (lines 7 and 9)");
  expect_err(EMB RHEAD "text = body\n", P2Q_ECONFIG,
             "t.ini:7: [rule.r] text: 'text' requires 'embedder = NAME' naming an [embedder.NAME] section");
  expect_err(EMB RHEAD "text = body\nembedder = minl\n", P2Q_ECONFIG,
             "t.ini:8: [rule.r] embedder: no [embedder.minl] section (did you mean 'mini'?)");
  expect_err(RHEAD "text = body\nembedder = x\n", P2Q_ECONFIG, "t.ini:6: [rule.r] embedder: no [embedder.x] section");
  expect_err(EMB RHEAD "text = body\nembedder = mini\ndimension = 768\n", P2Q_ECONFIG,
             "t.ini:9: [rule.r] dimension: 768 does not match [embedder.mini] (384)");
  expect_err("[embedder.oa]\ntype = openai\nurl = http://x\nmodel = m\n"
             "[rule.r]\ntable = s.t\nkey = id\ncollection = c\ntext = body\nembedder = oa\n", P2Q_ECONFIG,
             "t.ini:10: [rule.r] dimension: unknown: set dimension here or dimensions in [embedder.oa]");
  expect_err(EMB RHEAD "vector_column = v\n", P2Q_ECONFIG,
             "t.ini:7: [rule.r] vector_column: 'vector_column' requires 'dimension' (1..65536)");
  expect_err("[embedder.oa]\ntype = openai\nurl = http://x\nmodel = m\n"
             "[rule.a]\ntable = s.a\nkey = id\ncollection = a\ntext = t\nembedder = oa\ndimension = 8\n"
             "[rule.b]\ntable = s.b\nkey = id\ncollection = b\ntext = t\nembedder = oa\ndimension = 16\n",
             P2Q_ECONFIG, "t.ini:18: [rule.b] dimension: 16 differs from another rule using [embedder.oa] (8), "
             "which has no dimensions: one model answers in one size");
  expect_err("[embedder.m]\ntype = minilm\nmax_input_tokens = 10\n", P2Q_ECONFIG,
             "t.ini:3: [embedder.m] max_input_tokens: only valid for type = openai");
  expect_err(EMB RHEAD "text = body\nembedder = mini\nchunk_tokens = 100\nchunk_overlap = 100\n", P2Q_ECONFIG,
             "t.ini:10: [rule.r] chunk_overlap: must be less than chunk_tokens (100)");
  expect_err(EMB RHEAD "text = body\nembedder = mini\nchunk_overlap = 10\n", P2Q_ECONFIG,
             "t.ini:9: [rule.r] chunk_overlap: requires chunk_tokens > 0");
  expect_err(EMB RHEAD "vector_column = v\ndimension = 4\nchunk_tokens = 10\n", P2Q_ECONFIG,
             "t.ini:9: [rule.r] chunk_tokens: chunking applies to 'text' only");
  expect_err(EMB RHEAD "text = {title}\\n{body\nembedder = mini\n", P2Q_ECONFIG,
             "t.ini:7: [rule.r] text: unclosed '{' in template (write '{{' for a literal brace)");
  expect_err(EMB RHEAD "text = a {} b\nembedder = mini\n", P2Q_ECONFIG,
             "t.ini:7: [rule.r] text: empty '{}' in template");
  expect_err(RULE "[rule.b]\ntable = s.b\nkey = id\nvector_column = v\ndimension = 4\ncollection = docs\n",
             P2Q_ECONFIG, "t.ini:11: [rule.b] dimension: 4 conflicts with [rule.docs] (3) for the same collection 'docs'");
  expect_err(RULE "[rule.b]\ntable = s.b\nkey = id\nvector_column = v\ndimension = 3\ncollection = docs\n"
             "distance = Dot\n", P2Q_ECONFIG,
             "t.ini:13: [rule.b] distance: Dot conflicts with [rule.docs] (Cosine) for the same collection 'docs'");
  expect_err(RULE "[worker.w]\nevent_types = doc\n", P2Q_ECONFIG,
             "t.ini:8: [worker.w] event_types: no rule produces event type 'doc' (did you mean 'docs'?)");
  expect_err(RULE "[worker.w]\nevent_types = docs, zzzzzz\n", P2Q_ECONFIG,
             "t.ini:8: [worker.w] event_types: no rule produces event type 'zzzzzz' (a rule's event_type "
             "defaults to its name)");
  expect_err("[daemon]\nretry_min = 10m\n", P2Q_ECONFIG, "t.ini:2: [daemon] retry_min: retry_max must be >= retry_min (10m)");
  expect_err("[daemon]\nretry_max = 10ms\n", P2Q_ECONFIG, "t.ini:2: [daemon] retry_max: retry_max must be >= retry_min (1s)");
}

static void test_warnings(void **state) {
  int fds[2];
  char buf[4096];
  assert_int_equal(pipe(fds), 0);
  p2q_log_configure(P2Q_LOG_WARN, P2Q_LOG_LOGFMT, fds[1]);
  /* A rule's event type claimed by no worker only warns. */
  p2q_config_t *c = load_ok(RULE "[rule.b]\ntable = s.b\nkey = id\nvector_column = v\ndimension = 2\n"
                            "collection = b\n[worker.w]\nevent_types = docs\n");
  assert_int_equal(c->n_workers, 1);
  p2q_config_free(c);
  /* No rules: no default worker, a warning. */
  c = load_ok("[daemon]\n");
  assert_int_equal(c->n_workers, 0);
  p2q_config_free(c);
  p2q_log_configure(P2Q_LOG_ERROR, P2Q_LOG_LOGFMT, 2);
  close(fds[1]);
  ssize_t n = read(fds[0], buf, sizeof buf - 1);
  close(fds[0]);
  assert_true(n > 0);
  buf[n] = 0;
  assert_non_null(strstr(buf, "config_unclaimed_event_type"));
  assert_non_null(strstr(buf, "rule=b event_type=b"));
  assert_null(strstr(buf, "rule=docs"));
  assert_non_null(strstr(buf, "config_no_rules"));
}

static void test_err_file(void **state) {
  p2q_config_t *c = (p2q_config_t *)1;
  assert_int_equal(p2q_config_load("/nonexistent/p2q.ini", &c, errbuf, sizeof errbuf), P2Q_ENOENT);
  assert_string_equal(errbuf, "/nonexistent/p2q.ini: cannot read: No such file or directory");
  assert_null(c);
  assert_int_equal(p2q_config_load("/tmp", &c, errbuf, sizeof errbuf), P2Q_EIO);
  assert_string_equal(errbuf, "/tmp: cannot read: Is a directory");
  assert_null(c);
  /* Errors in a real file carry its name. */
  char path[] = "/tmp/p2q_cfg_XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, "[daemon]\nleese = 1s\n", 20), 20);
  close(fd);
  assert_int_equal(p2q_config_load(path, &c, errbuf, sizeof errbuf), P2Q_ENOKEY);
  char want[256];
  snprintf(want, sizeof want, "%s:2: [daemon] leese: unknown key 'leese' (did you mean 'lease'?)", path);
  assert_string_equal(errbuf, want);
  if (geteuid() != 0) {
    chmod(path, 0);
    assert_int_equal(p2q_config_load(path, &c, errbuf, sizeof errbuf), P2Q_EIO);
  }
  unlink(path);
  /* A NUL byte: not a text file. */
  fd = mkstemp(strcpy(path, "/tmp/p2q_cfg_XXXXXX"));
  assert_int_equal(write(fd, "[daemon]\0\n", 10), 10);
  close(fd);
  assert_int_equal(p2q_config_load(path, &c, errbuf, sizeof errbuf), P2Q_ECONFIG);
  snprintf(want, sizeof want, "%s: contains a NUL byte (not a text file?)", path);
  assert_string_equal(errbuf, want);
  unlink(path);
  /* A NULL/zero-size errbuf is fine. */
  assert_int_equal(p2q_config_load_string("[x]\n", "t.ini", &c, NULL, 0), P2Q_ENOKEY);
}

/* ---- dump / describe ---- */

static void test_dump_masks(void **state) {
  setenv("P2Q_TEST_SECRET_KEY", "topsecret-value", 1);
  unsetenv("P2Q_TEST_UNSET_KEY");
  p2q_config_t *c = load_ok("[postgres]\nconninfo = host=db password=hunter2 user=u password = 'a b\\' c' port=5\n"
                            "[qdrant]\nurl = https://user:qpass@q:6333\napi_key_env = P2Q_TEST_SECRET_KEY\n"
                            "[embedder.oa]\ntype = openai\nurl = https://x/v1\nmodel = m\n"
                            "api_key_env = P2Q_TEST_UNSET_KEY\n");
  char *d = dump_str(c);
  assert_null(strstr(d, "hunter2"));
  assert_null(strstr(d, "a b"));
  assert_null(strstr(d, "qpass"));
  assert_null(strstr(d, "topsecret"));
  assert_non_null(strstr(d, "conninfo = host=db password=***** user=u password = ***** port=5\n"));
  assert_non_null(strstr(d, "url = https://user:*****@q:6333\n"));
  assert_non_null(strstr(d, "; P2Q_TEST_SECRET_KEY is set in the environment\napi_key_env = P2Q_TEST_SECRET_KEY\n"));
  assert_non_null(strstr(d, "; P2Q_TEST_UNSET_KEY is not set in the environment\n"));
  free(d);
  p2q_config_free(c);

  /* a cluster's node list: every element masked */
  c = load_ok("[qdrant]\nurl = https://u:qpw1@q1:6333, https://u:qpw2@q2:6333,https://q3:6333\n");
  d = dump_str(c);
  assert_null(strstr(d, "qpw1"));
  assert_null(strstr(d, "qpw2"));
  assert_non_null(strstr(d, "url = https://u:*****@q1:6333, https://u:*****@q2:6333,https://q3:6333\n"));
  free(d);
  p2q_config_free(c);

  char *m = p2q_config_mask_conninfo("postgresql://me:pw@db:5432/app?sslmode=require&password=x2");
  assert_string_equal(m, "postgresql://me:*****@db:5432/app?sslmode=require&password=*****");
  free(m);
  m = p2q_config_mask_conninfo("postgres://db/app");
  assert_string_equal(m, "postgres://db/app");
  free(m);
  m = p2q_config_mask_conninfo("");
  assert_string_equal(m, "");
  free(m);
  unsetenv("P2Q_TEST_SECRET_KEY");
}

static void test_dump_roundtrip(void **state) {
  const char *text =
      "[postgres]\nconninfo = host=db dbname=app\nschema = sync\n"
      "[qdrant]\nurl = https://q:6333\napi_key_env = QK\ntimeout = 1500ms\n"
      "[daemon]\nlease = 90s\nmax_attempts = 3\n[log]\nlevel = warn\nformat = json\n[http]\nlisten =\n"
      "[embedder.mini]\ntype = minilm\nmodel_dir = /m\nthreads = 8\n"
      "[embedder.oa]\ntype = openai\nurl = https://x/v1\nmodel = m\ndimensions = 64\n"
      "[rule.a]\ntable = s.a\nkey = id, k2\ncolumns = id, t\ntext = {t}\nembedder = mini\ncollection = a\n"
      "filter = deleted_at IS NULL\nchunk_tokens = 10\nchunk_overlap = 2\ndistance = dot\n"
      "[rule.b]\ntable = s.b\nkey = id\nvector_column = v\ndimension = 7\ncollection = b\nvector_name = n\n"
      "routing_key = tenant_id\non_truncate = ignore\nevent_type = bee\nwatch = v\n"
      "filter =;leading semicolon\ncolumns = v,;c\n" /* not comments: no blank before ';' */
      "[rule.c]\ntable = s.c\nkey = id\ntext = t\nembedder = oa\ncollection = c\n"
      "[worker.w1]\nevent_types = a, bee\nlinger_ms = 20\n[worker.w2]\nevent_types = c\nrouting_key = 3\n";
  p2q_config_t *a = load_ok(text), *b = NULL, *c = NULL;
  char *d1 = dump_str(a);
  if (p2q_config_load_string(d1, "dump.ini", &b, errbuf, sizeof errbuf) != 0) fail_msg("%s\n%s", errbuf, d1);
  assert_true(p2q_config_equal(a, b));
  assert_string_equal(b->rules[1].filter, ";leading semicolon");
  assert_string_equal(b->rules[1].columns.items[1], ";c");
  char *d2 = dump_str(b);
  assert_string_equal(strstr(d1, "\n["), strstr(d2, "\n[")); /* skip the header naming the path */
  /* Defaults only, with the default worker. */
  c = load_ok(RULE);
  char *d3 = dump_str(c);
  p2q_config_t *c2 = NULL;
  assert_int_equal(p2q_config_load_string(d3, "dump.ini", &c2, errbuf, sizeof errbuf), 0);
  assert_true(p2q_config_equal(c, c2));
  assert_false(p2q_config_equal(a, c));
  assert_non_null(strstr(d3, "\n[worker.default]\nevent_types = docs\n"));
  assert_non_null(strstr(d3, "\nlease = 5m\n"));
  free(d1);
  free(d2);
  free(d3);
  p2q_config_free(a);
  p2q_config_free(b);
  p2q_config_free(c);
  p2q_config_free(c2);
}

/* Mutate a valid config at random (deterministic): loading never crashes or leaks, a failure
 * always comes with a message and no config, and whatever loads dumps and reloads equal. */
static void test_fuzz_roundtrip(void **state) {
  static const char seed[] =
      "[embedder.mini]\ntype = minilm\n[embedder.oa]\ntype = openai\nurl = https://x/v1\n"
      "model = m\ndimensions = 8\n[rule.a]\ntable = s.a\nkey = id, k\ncolumns = a, b\n"
      "text = {a}\nembedder = mini\ncollection = c\nchunk_tokens = 10\n[rule.b]\n"
      "table = \"x\".y\nkey = id\nvector_column = v\ndimension = 3\ncollection = d\n"
      "[worker.w]\nevent_types = a, b\n[daemon]\nlease = 5m\n[http]\nlisten = [::1]:80\n";
  static const char alpha[] = "[]=;.,{}\n \"'#:abAB01_-sm";
  char buf[sizeof seed + 64];
  uint32_t rng = 12345;
  int loaded = 0;
  for (int it = 0; it < 5000; it++) {
    memcpy(buf, seed, sizeof seed);
    for (int k = 0, n = 1 + it % 3; k < n; k++) {
      rng ^= rng << 13, rng ^= rng >> 17, rng ^= rng << 5; /* xorshift32 */
      size_t len = strlen(buf), pos = (rng >> 8) % (len + 1);
      char ch = alpha[(rng >> 20) % (sizeof alpha - 1)];
      if (rng % 3 == 0 && pos < len) memmove(buf + pos, buf + pos + 1, len - pos);
      else if (rng % 3 == 1) { memmove(buf + pos + 1, buf + pos, len - pos + 1); buf[pos] = ch; }
      else if (pos < len) buf[pos] = ch;
    }
    p2q_config_t *c = (p2q_config_t *)1, *c2 = NULL;
    if (p2q_config_load_string(buf, "/etc/f.ini", &c, errbuf, sizeof errbuf) != 0) {
      assert_null(c);
      assert_true(errbuf[0] != 0);
      continue;
    }
    loaded++;
    char *d = dump_str(c);
    if (p2q_config_load_string(d, "/etc/f.ini", &c2, errbuf, sizeof errbuf) != 0)
      fail_msg("reload failed: %s\n%s", errbuf, buf);
    if (!p2q_config_equal(c, c2)) fail_msg("dump changed the config:\n%s", buf);
    free(d);
    p2q_config_free(c);
    p2q_config_free(c2);
  }
  print_message("%d of 5000 mutants loaded\n", loaded);
  if (loaded < 200) fail_msg("only %d of 5000 mutants loaded", loaded);
}

static void test_describe(void **state) {
  char *buf = NULL;
  size_t n = 0;
  FILE *f = open_memstream(&buf, &n);
  p2q_config_describe(f);
  fclose(f);
  for (int i = 0; i < p2q_conf_n_sections; i++) {
    const p2q_conf_section_t *k = &p2q_conf_sections[i];
    char want[128];
    snprintf(want, sizeof want, "\n[%s%s]", k->name, k->repeated ? ".NAME" : "");
    assert_non_null(strstr(buf, want));
    for (int j = 0; j < k->n_entries; j++) {
      snprintf(want, sizeof want, "\n  %s (", k->entries[j].key);
      if (!strstr(buf, want)) fail_msg("describe lacks %s", k->entries[j].key);
    }
  }
  assert_non_null(strstr(buf, "  lease (duration, default 5m, 1s..24h)"));
  assert_non_null(strstr(buf, "  max_attempts (integer, default 10, 1..1000)"));
  assert_non_null(strstr(buf, "  distance (enum, default Cosine, one of Cosine|Dot|Euclid|Manhattan)"));
  free(buf);
}

static void test_shipped_confs(void **state) {
  const char *files[] = {"conf/pg2qdrant.ini", "conf/minimal.ini"};
  for (size_t i = 0; i < 2; i++) {
    char path[PATH_MAX];
    p2q_config_t *c = NULL;
    snprintf(path, sizeof path, "%s/%s", P2Q_SOURCE_DIR, files[i]);
    if (p2q_config_load(path, &c, errbuf, sizeof errbuf) != 0) fail_msg("%s", errbuf);
    const p2q_rule_config_t *r = p2q_config_rule(c, "docs");
    assert_non_null(r);
    assert_string_equal(r->table, "public.docs");
    assert_string_equal(r->vector_column, "embedding");
    assert_int_equal(c->n_workers, 1);
    p2q_config_free(c);
  }
  /* pg2qdrant.ini documents every key of every section. */
  char path[PATH_MAX], line[512];
  snprintf(path, sizeof path, "%s/conf/pg2qdrant.ini", P2Q_SOURCE_DIR);
  FILE *f = fopen(path, "r");
  assert_non_null(f);
  char *all = calloc(1, 1 << 16);
  while (fgets(line, sizeof line, f)) strncat(all, line, (1 << 16) - strlen(all) - 1);
  fclose(f);
  for (int i = 0; i < p2q_conf_n_sections; i++)
    for (int j = 0; j < p2q_conf_sections[i].n_entries; j++) {
      /* ... with its default ("key = default"). */
      const p2q_conf_entry_t *e = &p2q_conf_sections[i].entries[j];
      char want[160];
      snprintf(want, sizeof want, "%s =%s%s", e->key, e->def && *e->def ? " " : "",
               e->def ? e->def : "");
      if (!strstr(all, want)) fail_msg("conf/pg2qdrant.ini lacks '%s'", want);
    }
  free(all);
}

int main(void) {
  p2q_log_configure(P2Q_LOG_ERROR, P2Q_LOG_LOGFMT, 2); /* keep the expected warnings quiet */
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_defaults),
      cmocka_unit_test(test_rule_defaults_and_default_worker),
      cmocka_unit_test(test_values),
      cmocka_unit_test(test_repeated_and_embedders),
      cmocka_unit_test(test_model_dir_relative),
      cmocka_unit_test(test_parsers),
      cmocka_unit_test(test_builtin_defaults_valid),
      cmocka_unit_test(test_err_unknown),
      cmocka_unit_test(test_err_syntax),
      cmocka_unit_test(test_err_sections),
      cmocka_unit_test(test_err_values),
      cmocka_unit_test(test_err_secrets),
      cmocka_unit_test(test_err_required),
      cmocka_unit_test(test_err_cross),
      cmocka_unit_test(test_err_file),
      cmocka_unit_test(test_warnings),
      cmocka_unit_test(test_dump_masks),
      cmocka_unit_test(test_dump_roundtrip),
      cmocka_unit_test(test_fuzz_roundtrip),
      cmocka_unit_test(test_describe),
      cmocka_unit_test(test_shipped_confs),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

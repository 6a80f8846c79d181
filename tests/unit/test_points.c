/* Unit tests for json_scan.c, uuid.c and points.c: spans, UUIDv5, point ids, point JSON. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "pg2qdrant/errors.h"
#include "pg2qdrant/json_scan.h"
#include "pg2qdrant/hash.h"
#include "pg2qdrant/points.h"
#include "pg2qdrant/uuid.h"

static void test_scan(void **state) {
  const char *s = "{\"a\": 1, \"b\\\"q\": [1, {\"x\": \"}\"}], \"c\": null}";
  size_t pos = 0;
  p2q_span_t k, v;
  assert_int_equal(p2q_json_next_member(s, strlen(s), &pos, &k, &v), 1);
  assert_true(k.n == 1 && k.p[0] == 'a' && p2q_span_eq(v, "1"));
  assert_int_equal(p2q_json_next_member(s, strlen(s), &pos, &k, &v), 1);
  assert_true(p2q_span_eq(v, "[1, {\"x\": \"}\"}]"));
  assert_int_equal(p2q_json_next_member(s, strlen(s), &pos, &k, &v), 1);
  assert_true(p2q_span_eq(v, "null"));
  assert_int_equal(p2q_json_next_member(s, strlen(s), &pos, &k, &v), 0);
  assert_int_equal(p2q_json_find(s, strlen(s), "c", &v), 1);
  assert_int_equal(p2q_json_find(s, strlen(s), "zz", &v), 0);
  const char *bad[] = {"{\"a\": }", "{\"a\" 1}", "{\"a\": [1,}", "[1]", "{\"a\": \"x}", "{\"a\": 01}"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    assert_int_equal(p2q_json_find(bad[i], strlen(bad[i]), "zz", &v), P2Q_EBADJSON);
  assert_int_equal(p2q_json_number_array("[1, -2.5e3, 0.25]", 17), 3);
  assert_int_equal(p2q_json_number_array("[]", 2), 0);
  assert_int_equal(p2q_json_number_array("[1, \"2\"]", 8), P2Q_EBADJSON);
  assert_int_equal(p2q_json_number_array("[1, 2] x", 8), P2Q_EBADJSON);
  /* the sentinel-bounded scan (the first ']' ends the array) */
  static const struct { const char *s; int n; } na[] = {
      {"[ ]", 0}, {"[1,]", P2Q_EBADJSON}, {"[1 , 2 ]", 2}, {"[-0.5e+3,1E2,-0]", 3}, {"[01]", P2Q_EBADJSON},
      {"[1.]", P2Q_EBADJSON}, {"[1e]", P2Q_EBADJSON}, {"[-]", P2Q_EBADJSON}, {"[[1]]", P2Q_EBADJSON},
      {"[1,[2]]", P2Q_EBADJSON}, {"[1", P2Q_EBADJSON}, {"[,1]", P2Q_EBADJSON}, {"[\n1\t]", 1}, {"[1 2]", P2Q_EBADJSON}};
  for (size_t i = 0; i < sizeof na / sizeof *na; i++)
    if (p2q_json_number_array(na[i].s, strlen(na[i].s)) != na[i].n) fail_msg("%s: want %d", na[i].s, na[i].n);
  char buf[32];
  const char *raw = "\"a\\n\\u00e9\\ud83d\\ude00\"";
  p2q_span_t str = {raw, strlen(raw)};
  assert_int_equal(p2q_json_unescape(str, buf, sizeof buf), 8);
  assert_memory_equal(buf, "a\n\xc3\xa9\xf0\x9f\x98\x80", 8);
  /* raw UTF-8 is copied byte for byte, not re-encoded */
  const char *utf = "\"\xc2\xab\xe2\x80\x9e \\\"x\"";
  p2q_span_t us = {utf, strlen(utf)};
  assert_int_equal(p2q_json_unescape(us, buf, strlen(utf) + 1), 8);
  assert_memory_equal(buf, "\xc2\xab\xe2\x80\x9e \"x", 8);
}

static void test_uuid(void **state) {
  uint8_t d[20];
  p2q_sha1("abc", 3, d);
  assert_int_equal(d[0], 0xa9); assert_int_equal(d[19], 0x9d);
  /* RFC 9562 appendix example: UUIDv5(DNS namespace, "www.example.com") */
  const uint8_t dns[16] = {0x6b, 0xa7, 0xb8, 0x10, 0x9d, 0xad, 0x11, 0xd1,
                           0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8};
  char u[37];
  assert_int_equal(p2q_uuid5(dns, "www.example.com", 15, u), 0);
  assert_string_equal(u, "2ed6657d-e927-568b-95e1-2665a8aea6a2");
}

static void test_point_id(void **state) {
  char id[P2Q_POINT_ID_MAX], id2[P2Q_POINT_ID_MAX];
  assert_int_equal(p2q_point_id("docs", "{\"id\": 42}", 10, id), 0);
  assert_string_equal(id, "42");
  assert_int_equal(p2q_point_id("docs", "{\"id\": 18446744073709551615}", 28, id), 0);
  assert_int_equal(p2q_point_id("docs", "{\"id\": 18446744073709551616}", 28, id), 1);
  assert_int_equal(p2q_point_id("docs", "{\"id\": -1}", 10, id), 1);
  assert_int_equal(p2q_point_id("docs", "{\"id\": \"abc\"}", 13, id), 1);
  assert_int_equal(strlen(id), 38);
  assert_int_equal(p2q_point_id("docs", "{\"id\": \"abc\"}", 13, id2), 1);
  assert_string_equal(id, id2); /* deterministic */
  assert_int_equal(p2q_point_id("other", "{\"id\": \"abc\"}", 13, id2), 1);
  assert_string_not_equal(id, id2); /* the rule is part of the name */
  assert_int_equal(p2q_point_id("docs", "{\"a\": 1, \"b\": 2}", 16, id), 1);
  assert_int_equal(p2q_point_id("docs", "{}", 2, id), P2Q_EBADJSON);
}

static void test_hash64(void **state) {
  /* FNV-1a 64 reference values */
  assert_true(p2q_hash64("", 0) == 0xcbf29ce484222325ULL);
  assert_true(p2q_hash64("a", 1) == 0xaf63dc4c8601ec8cULL);
  assert_true(p2q_hash64("foobar", 6) == 0x85944171f73967e8ULL);
  char h[17];
  p2q_hash64_hex("a", 1, h);
  assert_string_equal(h, "af63dc4c8601ec8c");
  p2q_hash64_hex("", 0, h);
  assert_string_equal(h, "cbf29ce484222325");
}

/* p2q_hash64_many = p2q_hash64 of each string (and p2q_hash64_many_cont that of a prefix and the
   string), on both paths (scalar: four lanes; AVX2: sixteen,
   the last four or fewer finished by the scalar lanes): 0..40 strings (fewer than the lanes, lanes
   refilled, lanes idle at the end), empty ones, shorter than 8 bytes, equal and very different
   lengths, in every order; each string its own block of exactly its length (ASan: no byte read
   past a string's end). */
static void test_hash64_many(void **state) {
  (void)state;
  static char text[4096];
  for (size_t i = 0; i < sizeof text; i++) text[i] = (char)(' ' + (i * 7919 + i / 13) % 95);
  uint64_t rnd = 0x9e3779b97f4a7c15ULL;
  for (int simd = 0; simd <= 1; simd++) {
    p2q_hash64_set_simd(simd);
    for (int round = 0; round < 600; round++) {
      int n = round % 41;
      char *data[40];
      size_t len[40];
      uint64_t got[40];
      for (int i = 0; i < n; i++) {
        rnd ^= rnd << 13, rnd ^= rnd >> 7, rnd ^= rnd << 17;
        size_t at = (size_t)(rnd % 1024), kind = (size_t)(rnd >> 40) % 5;
        len[i] = kind == 0   ? 0
                 : kind == 1 ? (size_t)(rnd >> 20) % 8
                 : kind == 2 ? 2800 + (size_t)(rnd >> 20) % 200
                 : kind == 3 ? 2048 + (size_t)(rnd >> 20) % 3
                             : (size_t)(rnd >> 20) % 3000;
        data[i] = malloc(len[i] ? len[i] : 1);
        assert_non_null(data[i]);
        memcpy(data[i], text + at, len[i]);
        got[i] = 0;
      }
      p2q_hash64_many((const char *const *)data, len, n, got);
      for (int i = 0; i < n; i++)
        if (got[i] != p2q_hash64(data[i], len[i]))
          fail_msg("simd %d round %d string %d of %d (length %zu)", simd, round, i, n, len[i]);
      /* continued from a seed (the hash of a prefix; out = seed): the hash of prefix ‖ string */
      size_t pre = (size_t)(rnd >> 7) % 200;
      for (int i = 0; i < n; i++) got[i] = p2q_hash64(text + 3000 + i, pre);
      p2q_hash64_many_cont((const char *const *)data, len, got, n, got);
      for (int i = 0; i < n; i++) {
        char *whole = malloc(pre + len[i] + 1);
        assert_non_null(whole);
        memcpy(whole, text + 3000 + i, pre);
        memcpy(whole + pre, data[i], len[i]);
        if (got[i] != p2q_hash64(whole, pre + len[i]) ||
            got[i] != p2q_hash64_cont(p2q_hash64(whole, pre), data[i], len[i]))
          fail_msg("simd %d round %d string %d of %d (length %zu) after %zu bytes", simd, round, i, n, len[i], pre);
        free(whole);
        free(data[i]);
      }
    }
    const char *one[] = {"foobar"};
    size_t one_len[] = {6};
    uint64_t h;
    p2q_hash64_many(one, one_len, 1, &h);
    assert_true(h == 0x85944171f73967e8ULL);
  }
  p2q_hash64_set_simd(1);
}

/* p2q_json_plain_run = the bytewise definition, for every position of the stop byte ('"', '\\',
   a control byte) in a word, after runs of every length, amid UTF-8 and near-miss bytes ('!',
   '#', '[', ']', 0x20, 0xa2, 0xdc: the word tests' borrows); strings of exact length (ASan), and
   p2q_json_skip over the same strings quoted. */
static void test_plain_run(void **state) {
  (void)state;
  static const unsigned char fill[] = {'a', ' ', '!', '#', '[', ']', 0xa2, 0xdc, 0xff, 0x7f, '0', 0x21, 0x80};
  static const unsigned char stop[] = {'"', '\\', 0x00, 0x1f, 0x0a, 0x01};
  uint64_t rnd = 12345;
  for (int round = 0; round < 20000; round++) {
    rnd ^= rnd << 13, rnd ^= rnd >> 7, rnd ^= rnd << 17;
    size_t n = (size_t)(rnd % 40), at = (size_t)(rnd >> 8) % 48; /* at >= n: no stop byte */
    char *s = malloc(n + 1);
    assert_non_null(s);
    for (size_t i = 0; i < n; i++) s[i] = (char)fill[((rnd >> (16 + i % 40)) ^ (i * 7)) % sizeof fill];
    if (at < n) s[at] = (char)stop[(rnd >> 40) % sizeof stop];
    size_t want = 0;
    while (want < n && s[want] != '"' && s[want] != '\\' && (unsigned char)s[want] >= 0x20) want++;
    if (p2q_json_plain_run(s, n) != want) fail_msg("round %d: n %zu, stop at %zu", round, n, at);
    free(s);
  }
  const char *ok = "\"0123456789abcdef\\\"0123\\\\4567\u00e9\xc3\xa9 \"", *bad = "\"0123456789abcdef\x01\"";
  size_t pos = 0;
  assert_int_equal(p2q_json_skip(ok, strlen(ok), &pos), 0);
  assert_int_equal(pos, strlen(ok));
  pos = 0;
  assert_int_equal(p2q_json_skip(bad, strlen(bad), &pos), P2Q_EBADJSON);
  pos = 0;
  assert_int_equal(p2q_json_skip(ok, strlen(ok) - 1, &pos), P2Q_EBADJSON); /* unterminated */
}

static char *cols[] = {"title"};

/* Rule "docs", every other setting zero, its vector read from vector_column (NULL: none). */
static p2q_rule_config_t docs_rule(char *vector_column) {
  p2q_rule_config_t r;
  memset(&r, 0, sizeof r);
  strcpy(r.name, "docs");
  r.vector_column = vector_column;
  return r;
}

static void test_point_build(void **state) {
  p2q_rule_config_t r = docs_rule("emb");
  p2q_buf_t b = P2Q_BUF_INIT;
  char why[128];
  const char *snap = "{\"id\": 1, \"emb\": [0.5, 1], \"title\": \"t\\\"x\"}";
  assert_int_equal(p2q_point_build(&b, &r, "1", 0, "{\"id\": 1}", snap, strlen(snap), NULL, 0, why, sizeof why), 0);
  char h[17], want[256];
  p2q_hash64_hex(snap, strlen(snap), h);
  snprintf(want, sizeof want, "{\"id\":1,\"vector\":[0.5, 1],\"payload\":{\"id\":1,\"title\":\"t\\\"x\",\"_hash\":\"%s\"}}", h);
  assert_string_equal(p2q_buf_str(&b), want);
  p2q_buf_reset(&b);
  /* the snapshot's hash computed beforehand (p2q_hash64_many) is the one written */
  uint64_t known = p2q_hash64(snap, strlen(snap));
  p2q_point_parts_t parts = {.snapshot_hash = &known};
  assert_int_equal(p2q_point_build_ex(&b, &r, "1", 0, "{\"id\": 1}", snap, strlen(snap), &parts, why, sizeof why), 0);
  assert_string_equal(p2q_buf_str(&b), want);
  p2q_buf_reset(&b);
  known = 0x0123456789abcdefULL;
  assert_int_equal(p2q_point_build_ex(&b, &r, "1", 0, "{\"id\": 1}", snap, strlen(snap), &parts, why, sizeof why), 0);
  assert_non_null(strstr(p2q_buf_str(&b), ",\"_hash\":\"0123456789abcdef\"}}"));
  p2q_buf_reset(&b);
  /* named vector, column subset, uuid id keeps the key */
  r.vector_name = "dense";
  r.columns.items = cols; r.columns.n = 1;
  assert_int_equal(p2q_point_build(&b, &r, "\"u\"", 1, "{\"id\": 1}", snap, strlen(snap), NULL, 0, why, sizeof why), 0);
  snprintf(want, sizeof want, "{\"id\":\"u\",\"vector\":{\"dense\":[0.5, 1]},\"payload\":{\"title\":\"t\\\"x\",\"_pk\":{\"id\": 1},\"_hash\":\"%s\"}}", h);
  assert_string_equal(p2q_buf_str(&b), want);
  p2q_buf_reset(&b);
  /* pgvector text and PG array text */
  r.vector_name = NULL; r.columns.n = 0;
  const char *pgv = "{\"emb\": \"[1,2.5,3]\"}", *arr = "{\"emb\": \"{1,2}\"}";
  assert_int_equal(p2q_point_build(&b, &r, "1", 0, "{}", pgv, strlen(pgv), NULL, 0, why, sizeof why), 0);
  assert_non_null(strstr(p2q_buf_str(&b), "\"vector\":[1,2.5,3]"));
  p2q_buf_reset(&b);
  assert_int_equal(p2q_point_build(&b, &r, "1", 0, "{}", arr, strlen(arr), NULL, 0, why, sizeof why), 0);
  assert_non_null(strstr(p2q_buf_str(&b), "\"vector\":[1,2]"));
  p2q_buf_reset(&b);
  /* NULL vector → 1 (no point), nothing appended */
  const char *nul = "{\"emb\": null}";
  assert_int_equal(p2q_point_build(&b, &r, "1", 0, "{}", nul, strlen(nul), NULL, 0, why, sizeof why), 1);
  assert_int_equal(b.len, 0);
  /* garbage vector → error with a reason */
  const char *bad = "{\"emb\": \"hello\"}";
  assert_int_equal(p2q_point_build(&b, &r, "1", 0, "{}", bad, strlen(bad), NULL, 0, why, sizeof why), P2Q_EBADJSON);
  assert_non_null(strstr(why, "vector"));
  assert_int_equal(b.len, 0);
  /* a payload with no member still gets its hash */
  r.columns.items = cols; r.columns.n = 1;
  const char *only = "{\"emb\": [1]}";
  p2q_hash64_hex(only, strlen(only), h);
  snprintf(want, sizeof want, "{\"id\":1,\"vector\":[1],\"payload\":{\"_hash\":\"%s\"}}", h);
  assert_int_equal(p2q_point_build(&b, &r, "1", 0, "{}", only, strlen(only), NULL, 0, why, sizeof why), 0);
  assert_string_equal(p2q_buf_str(&b), want);
  p2q_buf_reset(&b);
  r.columns.n = 0;
  /* embedder vector */
  assert_int_equal(p2q_point_build(&b, &r, "1", 0, "{}", nul, strlen(nul), "[9]", 3, why, sizeof why), 0);
  assert_non_null(strstr(p2q_buf_str(&b), "\"vector\":[9]"));
  p2q_buf_free(&b);
}

/* One pass over the snapshot (the vector validated while it is skipped) must answer exactly what
   the former two passes (find the vector, then copy the payload) answered, in the same order:
   a NULL or bad vector wins over a snapshot broken after it; a snapshot broken before the
   vector, or inside it, is "not a JSON object". */
static void test_point_build_one_pass(void **state) {
  (void)state;
  p2q_rule_config_t r = docs_rule("emb");
  p2q_buf_t b = P2Q_BUF_INIT;
  char why[128];
  struct { const char *snap; int rc; const char *why, *vec; } c[] = {
      {"{\"emb\": [ 1 , -2.5e3 ,0 ] , \"a\": 1}", 0, NULL, "\"vector\":[ 1 , -2.5e3 ,0 ]"},
      {"{\"emb\": [1, NaN], \"a\": 1}", P2Q_EBADJSON, "snapshot is not a JSON object", NULL}, /* NaN: not JSON */
      {"{\"emb\": [1, \"2\"], \"a\": 1}", P2Q_EBADJSON, "vector column is not an array of numbers", NULL},
      {"{\"emb\": [1, [2]], \"a\": 1}", P2Q_EBADJSON, "vector column is not an array of numbers", NULL},
      {"{\"emb\": [1,2", P2Q_EBADJSON, "snapshot is not a JSON object", NULL},
      {"{\"emb\": null, \"a\": }", 1, NULL, NULL},
      {"{\"emb\": \"x\", \"a\": }", P2Q_EBADJSON, "vector text is not a list", NULL},
      {"{\"emb\": [3], \"a\": }", P2Q_EBADJSON, "snapshot is not a JSON object", NULL},
      {"{\"a\": tru, \"emb\": [3]}", P2Q_EBADJSON, "snapshot is not a JSON object", NULL},
      {"{\"a\": 1}", 1, NULL, NULL},                                           /* no vector: no point */
      {"{\"emb\": [4], \"emb\": [5]}", 0, NULL, "\"vector\":[4],\"payload\":{\"_hash\""}, /* the first */
      {"{\"emb\": [], \"a\": 1}", P2Q_EBADJSON, "vector column is not an array of numbers", NULL},
      {"[1]", P2Q_EBADJSON, "snapshot is not a JSON object", NULL},
  };
  for (size_t i = 0; i < sizeof c / sizeof *c; i++) {
    why[0] = 0;
    int rc = p2q_point_build(&b, &r, "1", 0, "{}", c[i].snap, strlen(c[i].snap), NULL, 0, why, sizeof why);
    if (rc != c[i].rc) fail_msg("case %zu (%s): rc %d, want %d (%s)", i, c[i].snap, rc, c[i].rc, why);
    if (c[i].why && !strstr(why, c[i].why)) fail_msg("case %zu: why '%s', want '%s'", i, why, c[i].why);
    if (c[i].vec) assert_non_null(strstr(p2q_buf_str(&b), c[i].vec));
    else assert_int_equal(b.len, 0);
    p2q_buf_reset(&b);
  }
  /* keyword-only rule (no dense vector): a broken snapshot is refused, a good one copied */
  r.vector_column = NULL;
  const char *k = "{\"a\": [1, 2], \"b\": \"x\"}";
  assert_int_equal(p2q_point_build(&b, &r, "1", 0, "{}", k, strlen(k), NULL, 0, why, sizeof why), 0);
  assert_non_null(strstr(p2q_buf_str(&b), "\"payload\":{\"a\":[1, 2],\"b\":\"x\","));
  p2q_buf_reset(&b);
  assert_int_equal(p2q_point_build(&b, &r, "1", 0, "{}", "{\"a\":", 6, NULL, 0, why, sizeof why), P2Q_EBADJSON);
  /* more kept members than the scanner's inline room */
  r.vector_column = "emb";
  p2q_buf_t big = P2Q_BUF_INIT;
  p2q_buf_puts(&big, "{\"emb\": [1]");
  for (int i = 0; i < 100; i++) p2q_buf_printf(&big, ", \"c%d\": %d", i, i);
  p2q_buf_putc(&big, '}');
  assert_int_equal(p2q_point_build(&b, &r, "1", 0, "{}", big.data, big.len, NULL, 0, why, sizeof why), 0);
  assert_non_null(strstr(p2q_buf_str(&b), "\"c0\":0,"));
  assert_non_null(strstr(p2q_buf_str(&b), "\"c99\":99,\"_hash\""));
  p2q_buf_free(&big);
  p2q_buf_free(&b);
  /* the scanner pieces */
  size_t pos = 0;
  p2q_span_t key;
  const char *o = "{ \"a\" : [1,2] , \"b\":3}";
  assert_int_equal(p2q_json_next_key(o, strlen(o), &pos, &key), 1);
  assert_true(key.n == 1 && key.p[0] == 'a' && o[pos] == '[');
  assert_int_equal(p2q_json_number_array_at(o, strlen(o), &pos), 2);
  assert_int_equal(o[pos], ' ');
  assert_int_equal(p2q_json_next_key(o, strlen(o), &pos, &key), 1);
  assert_true(key.n == 1 && key.p[0] == 'b' && o[pos] == '3');
  size_t at = pos;
  assert_int_equal(p2q_json_number_array_at(o, strlen(o), &pos), P2Q_EBADJSON);
  assert_int_equal(pos, at); /* unchanged on failure */
  assert_int_equal(p2q_json_skip(o, strlen(o), &pos), 0);
  assert_int_equal(p2q_json_next_key(o, strlen(o), &pos, &key), 0);
}

/* A chunk's point (the row key in `_pk`, its number in `_chunk`) and the payload-only operation
   of a point (kept chunks, unchanged texts). */
static void test_chunk_point_and_payload_op(void **state) {
  (void)state;
  p2q_rule_config_t r = docs_rule(NULL);
  p2q_buf_t b = P2Q_BUF_INIT, op = P2Q_BUF_INIT;
  char why[128];
  const char *snap = "{\"a\": 1}";
  p2q_point_parts_t parts = {.vector = "[0.5]", .vlen = 5};
  assert_int_equal(p2q_point_build_chunk(&b, &r, "\"u\"", "{\"id\": 7}", snap, strlen(snap), &parts, 2, why,
                                         sizeof why), 0);
  const char *pt = p2q_buf_str(&b);
  const char *head = "{\"id\":\"u\",\"vector\":[0.5],\"payload\":{\"a\":1,\"_hash\":";
  assert_memory_equal(pt, head, strlen(head));
  const char *tail = ",\"_pk\":\"{\\\"id\\\": 7}\",\"_chunk\":2}}";
  assert_string_equal(pt + strlen(pt) - strlen(tail), tail);
  assert_int_equal(p2q_point_payload_op(&op, pt, "\"u\""), 0);
  char want[512];
  const char *payload = strstr(pt, "\"payload\":") + 10; /* the point's payload object */
  snprintf(want, sizeof want, "{\"overwrite_payload\":{\"payload\":%.*s,\"points\":[\"u\"]}}",
           (int)strlen(payload) - 1, payload);
  assert_string_equal(p2q_buf_str(&op), want);
  p2q_buf_reset(&op);
  assert_int_equal(p2q_point_payload_op(&op, "{\"id\":1}", "1"), P2Q_ENOMEM);
  p2q_buf_free(&op);
  p2q_buf_free(&b);
}

/* Column names with quotes, backslashes, control characters and unicode: PostgreSQL escapes them
   in json keys; the lookup compares decoded keys (issue 8: such a vector column was "missing",
   every point deleted). */
static char *odd_cols[] = {"ti\"t\\le", "\xc3\xa9t\xc3\xa9 x"};

static void test_escaped_names(void **state) {
  const char *snap = "{\"id\" : 1, \"em\\\"b\\\\\\u0001\" : [0.5, 1], \"ti\\\"t\\\\le\" : \"a\", "
                     "\"\xc3\xa9t\xc3\xa9 x\" : 2, \"other\" : 3}";
  p2q_span_t v;
  assert_int_equal(p2q_json_find(snap, strlen(snap), "em\"b\\\x01", &v), 1);
  assert_true(p2q_span_eq(v, "[0.5, 1]"));
  assert_int_equal(p2q_json_find(snap, strlen(snap), "ti\"t\\le", &v), 1);
  assert_true(p2q_span_eq(v, "\"a\""));
  assert_int_equal(p2q_json_find(snap, strlen(snap), "\xc3\xa9t\xc3\xa9 x", &v), 1);
  assert_true(p2q_span_eq(v, "2"));
  assert_int_equal(p2q_json_find(snap, strlen(snap), "em\"b", &v), 0);   /* prefix: no match */
  assert_int_equal(p2q_json_find(snap, strlen(snap), "em\\\"b", &v), 0); /* the escaped form: no */
  /* a long escaped key (heap path) */
  char big[700], name[400];
  memset(name, 'k', 299); name[299] = '"'; name[300] = 0;
  snprintf(big, sizeof big, "{\"%.*s\\\"\": 7}", 299, name);
  assert_int_equal(p2q_json_find(big, strlen(big), name, &v), 1);
  assert_true(p2q_span_eq(v, "7"));

  p2q_rule_config_t r = docs_rule("em\"b\\\x01");
  p2q_buf_t b = P2Q_BUF_INIT;
  char why[128];
  assert_int_equal(p2q_point_build(&b, &r, "1", 0, "{\"id\": 1}", snap, strlen(snap), NULL, 0, why, sizeof why), 0);
  const char *pt = p2q_buf_str(&b);
  assert_non_null(strstr(pt, "\"vector\":[0.5, 1]"));
  assert_null(strstr(pt, "em\\\"b")); /* the vector column is not payload */
  assert_non_null(strstr(pt, "\"ti\\\"t\\\\le\":\"a\""));
  p2q_buf_reset(&b);
  r.columns.items = odd_cols; r.columns.n = 2; /* `columns` names are compared decoded too */
  assert_int_equal(p2q_point_build(&b, &r, "1", 0, "{\"id\": 1}", snap, strlen(snap), NULL, 0, why, sizeof why), 0);
  pt = p2q_buf_str(&b);
  assert_non_null(strstr(pt, "\"payload\":{\"ti\\\"t\\\\le\":\"a\",\"\xc3\xa9t\xc3\xa9 x\":2,\"_hash\""));
  p2q_buf_free(&b);
}

static void exact(const char *n, int want) {
  if (p2q_json_number_exact(n, strlen(n)) != want) fail_msg("p2q_json_number_exact(%s) != %d", n, want);
}

static void test_number_exact(void **state) {
  /* integers: int64 */
  exact("0", 1); exact("-0", 1); exact("9007199254740993", 1); exact("9223372036854775807", 1);
  exact("-9223372036854775808", 1); exact("9223372036854775808", 0); exact("-9223372036854775809", 0);
  exact("123456789012345678901234567890", 0);
  /* up to 15 significant digits: always */
  exact("0.1", 1); exact("1.50", 1); exact("-123.456e-10", 1); exact("0.000000000000000000001", 1);
  exact("1.00000000000000000000000000000000", 1); exact("100000000000000000000000.0", 1);
  /* 16–17 digits: when the nearest double says the same digits */
  exact("0.30000000000000004", 1); exact("1.2345678901234567", 1); exact("3.141592653589793", 1);
  exact("0.30000000000000001", 0); exact("9007199254740993.0", 0); exact("9007199254740992.0", 1);
  exact("12345678901234567890.123456789", 0); exact("1.0000000000000000000001", 0);
  /* beyond the double range */
  exact("1e400", 0); exact("1e-400", 0); exact("1.7976931348623157e308", 1); exact("2e308", 0);
  exact("1e308", 1); exact("0e999", 1);
  /* not a JSON number (the scanner passes none): the exponent's other bytes are skipped, its value
     cannot overflow (a signed overflow under UBSan before) */
  exact("1e5\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", 1);

  p2q_buf_t b = P2Q_BUF_INIT;
  const char *v = "{\"a\": [1, 12345678901234567890.5, \"9999999999999999999999\"], \"b\": -1e400, "
                  "\"c\\\"3\": 0.25}";
  p2q_span_t s = {v, strlen(v)};
  p2q_payload_value(&b, s);
  assert_string_equal(p2q_buf_str(&b), "{\"a\": [1, \"12345678901234567890.5\", \"9999999999999999999999\"], "
                                       "\"b\": \"-1e400\", \"c\\\"3\": 0.25}");
  p2q_buf_reset(&b);
  p2q_span_t big = {"123456789012345678901234567890", 30};
  p2q_payload_value(&b, big);
  assert_string_equal(p2q_buf_str(&b), "\"123456789012345678901234567890\"");
  p2q_buf_reset(&b);
  const char *pl = "[0.5, \"x\\\\\", true, null, -7]";
  p2q_span_t plain = {pl, strlen(pl)};
  p2q_payload_value(&b, plain);
  assert_string_equal(p2q_buf_str(&b), "[0.5, \"x\\\\\", true, null, -7]");
  p2q_buf_free(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_scan), cmocka_unit_test(test_uuid), cmocka_unit_test(test_point_id), cmocka_unit_test(test_hash64), cmocka_unit_test(test_hash64_many), cmocka_unit_test(test_plain_run),
      cmocka_unit_test(test_point_build), cmocka_unit_test(test_escaped_names),
      cmocka_unit_test(test_number_exact), cmocka_unit_test(test_point_build_one_pass),
      cmocka_unit_test(test_chunk_point_and_payload_op),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

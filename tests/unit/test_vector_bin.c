/* Unit tests for float_text.c and vector_bin.c: float4out's text of a float, to_json's text of a
   real[] from its array_send() bytes, and the snapshot splice. Expected texts are PostgreSQL
   15's (SET extra_float_digits = 3; SELECT to_json(ARRAY[…]::real[])). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg2qdrant/errors.h"
#include "pg2qdrant/float_text.h"
#include "pg2qdrant/points.h"
#include "pg2qdrant/vector_bin.h"

static const char *text_of(float f) {
  static char s[P2Q_FLOAT4_TEXT_MAX + 1];
  uint32_t bits;
  memcpy(&bits, &f, 4);
  int n = p2q_float4_text(bits, s);
  assert_true(n > 0 && n <= P2Q_FLOAT4_TEXT_MAX);
  s[n] = 0;
  return s;
}

static const char *text_of_bits(uint32_t bits) {
  float f;
  memcpy(&f, &bits, 4);
  return text_of(f);
}

static void test_float4_text(void **state) {
  (void)state;
  /* inputs parsed by strtof (correctly rounded, as float4in): the same floats as PostgreSQL's */
  static const char *cases[][2] = {
      {"0.1", "0.1"}, {"0", "0"}, {"1e-45", "1e-45"}, {"3.4028235e38", "3.4028235e+38"},
      {"1.17549435e-38", "1.1754944e-38"}, {"1.17549421e-38", "1.1754942e-38"}, {"1e6", "1e+06"},
      {"100000", "100000"}, {"123456", "123456"}, {"1234567", "1.234567e+06"}, {"0.0001", "0.0001"},
      {"0.00001", "1e-05"}, {"0.1234567", "0.1234567"}, {"16777216", "1.6777216e+07"},
      {"16777217", "1.6777216e+07"}, {"-2.5", "-2.5"}, {"0.3", "0.3"}, {"2.7182817", "2.7182817"},
      {"-0.009765625", "-0.009765625"}, {"65536", "65536"}, {"999999.94", "999999.94"},
      /* PostgreSQL never prints a midpoint to a neighbour (no STRICTLY_SHORTEST): 9 digits here
         where 1.177607e+08 would read back as the same float under ties-to-even */
      {"117760704", "1.17760704e+08"}, {"-36646552", "-3.6646552e+07"}, {"-617724032", "-6.1772403e+08"},
      {"-3.928378109e-11", "-3.928378e-11"}, {"170.5464630", "170.54646"}, {"2.922727842e-15", "2.9227278e-15"},
      {"2.802596929e-45", "3e-45"}, {"5.605193857e-45", "6e-45"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    const char *got = text_of(strtof(cases[i][0], NULL));
    if (strcmp(got, cases[i][1])) fail_msg("%s: got %s, want %s", cases[i][0], got, cases[i][1]);
  }
  assert_string_equal(text_of_bits(0x80000000u), "-0");
  assert_string_equal(text_of_bits(0x7f800000u), "Infinity");
  assert_string_equal(text_of_bits(0xff800000u), "-Infinity");
  assert_string_equal(text_of_bits(0x7fc00000u), "NaN");
  assert_string_equal(text_of_bits(0xffc00001u), "NaN"); /* any sign or payload */
  assert_string_equal(text_of_bits(0x00000001u), "1e-45");
  assert_string_equal(text_of_bits(0x807fffffu), "-1.1754942e-38");
}

/* Every float of a sample reads back as itself (strtof), and one significant digit fewer does
   not, unless that text is exactly a midpoint to a neighbour (which PostgreSQL never prints). */
static void test_float4_text_round_trip(void **state) {
  (void)state;
  uint64_t s = 0x9e3779b97f4a7c15ULL;
  for (int i = 0; i < 200000; i++) {
    s ^= s << 13, s ^= s >> 7, s ^= s << 17;
    uint32_t bits = (uint32_t)s;
    if ((bits & 0x7f800000u) == 0x7f800000u) continue;
    const char *t = text_of_bits(bits);
    float f, back = strtof(t, NULL);
    uint32_t bb;
    memcpy(&bb, &back, 4);
    memcpy(&f, &bits, 4);
    if (bb != bits) fail_msg("%08x printed %s reads back as %08x", bits, t, bb);
    int digits = 0, lead = 1;
    for (const char *p = t; *p && *p != 'e'; p++) {
      if (*p >= '1' && *p <= '9') lead = 0;
      digits += !lead && *p >= '0' && *p <= '9';
    }
    if (!strpbrk(t, ".e")) /* "862970": its trailing zeros are not digits of the decimal */
      for (const char *p = t + strlen(t) - 1; p > t && *p == '0'; p--) digits--;
    if (digits < 2) continue;
    char shorter[32];
    snprintf(shorter, sizeof shorter, "%.*e", digits - 2, (double)f);
    double d = strtod(shorter, NULL);
    double up = ((double)f + (double)nextafterf(f, INFINITY)) / 2, down = ((double)f + (double)nextafterf(f, -INFINITY)) / 2;
    if (strtof(shorter, NULL) == f && d != up && d != down) fail_msg("%08x printed %s, %s is shorter", bits, t, shorter);
  }
}

/* The n elements of bits (all 4 bytes long) through p2q_float4_json_elems's AVX2 (simd 1) or
   scalar path into out; the text's length. */
static size_t elems_text(const uint32_t *bits, int n, int simd, char *out) {
  unsigned char *bin = malloc(8 * (size_t)n);
  for (int i = 0; i < n; i++) {
    unsigned char e[8] = {0, 0, 0, 4, (unsigned char)(bits[i] >> 24), (unsigned char)(bits[i] >> 16),
                          (unsigned char)(bits[i] >> 8), (unsigned char)bits[i]};
    memcpy(bin + 8 * i, e, 8);
  }
  const unsigned char *p = bin;
  int numbers = 1;
  p2q_float_text_set_simd(simd);
  char *end = p2q_float4_json_elems(out, &p, bin + 8 * (size_t)n, n, &numbers);
  p2q_float_text_set_simd(1);
  assert_non_null(end);
  assert_ptr_equal(p, bin + 8 * (size_t)n);
  free(bin);
  return (size_t)(end - out);
}

static uint32_t fbits(float f) {
  uint32_t b;
  memcpy(&b, &f, 4);
  return b;
}

/* The AVX2 path (four floats at a time) prints what the scalar path prints: edge cases (each
   with its two neighbours, in groups of four plain floats so the AVX2 path takes them) and
   random bit patterns and MiniLM-like values. bench_float_text --all-elems checks all 2^32. */
static void test_float4_elems_paths(void **state) {
  (void)state;
  enum { N = 400000 };
  if (!p2q_float_text_set_simd(1)) skip(); /* no AVX2 here: one path only */
  uint32_t *v = malloc(N * sizeof *v);
  int n = 0;
  float edge[200];
  int ne = 0;
  for (int j = -45; j <= 38; j++) { /* powers of ten */
    char t[16];
    snprintf(t, sizeof t, "1e%d", j);
    edge[ne++] = strtof(t, NULL);
  }
  static const float more[] = {16777215.0f, 16777216.0f, 16777218.0f, 8388607.0f, 8388608.0f, 8388609.0f,
                               0.0001f, 0.00009999999f, 99999.99f, 100000.0f, 999999.9f, 1000000.0f, 123456.0f,
                               1234567.0f, FLT_MAX, FLT_MIN, 1.17549421e-38f, 1e-45f, 0.3f, 2.5f, 999999.94f};
  for (size_t j = 0; j < sizeof more / sizeof *more; j++) edge[ne++] = more[j];
  for (int j = 0; j < ne; j++) {
    float e = edge[j], around[3] = {nextafterf(e, 0), e, nextafterf(e, INFINITY)};
    for (int s = 0; s < 2; s++)
      for (int a = 0; a < 3; a++) {
        uint32_t b = fbits(around[a]) | (uint32_t)s << 31;
        v[n++] = b, v[n++] = fbits(0.3f), v[n++] = fbits(-7.1f), v[n++] = b; /* lanes 0 and 3 */
      }
  }
  /* denormals, the 2^24 integers, what goes to the scalar path amid them: ±0, NaN, ±Infinity, 2^k */
  for (uint32_t b = 1; b < 64; b++) v[n++] = b, v[n++] = 0x007fffffu - b, v[n++] = 0x00400000u + b * 977;
  for (uint32_t b = 0x4b7ffff0u; b < 0x4b800010u; b++) v[n++] = b;
  static const uint32_t odd[] = {0x80000000u, 0, 0x7fc00000u, 0x7f800000u, 0xff800000u, 0x3f800000u, 0x40000000u};
  for (size_t j = 0; j < sizeof odd / sizeof *odd; j++) v[n++] = odd[j], v[n++] = fbits(0.3f);
  /* steps of eight fixed-notation floats below 1 (the AVX2 path skips the exponent's digits and
     the integer case for them) with one float that needs either, at each lane of either half */
  static const float one[] = {1e-5f, -3.5e-7f, 3.0f, -16777215.0f, 1e7f, 2.5e12f, 123456.7f, 1.5f};
  for (size_t j = 0; j < sizeof one / sizeof *one; j++)
    for (int lane = 0; lane < 8; lane++) {
      while (n % 8) v[n++] = fbits(0.3f);
      for (int l = 0; l < 8; l++) v[n + l] = fbits(l == lane ? one[j] : (float)(l + 1) * -0.0123f);
      n += 8;
    }
  uint64_t s = 0x2545f4914f6cdd1dULL;
  while (n < N) {
    s ^= s << 13, s ^= s >> 7, s ^= s << 17;
    if (n & 1) v[n++] = (uint32_t)s;
    else v[n++] = fbits((float)((double)(int32_t)(s >> 32) / 2147483648.0 * 0.2)); /* |x| < 0.2 */
  }
  char *a = malloc((size_t)N * (P2Q_FLOAT4_TEXT_MAX + 3)), *b = malloc((size_t)N * (P2Q_FLOAT4_TEXT_MAX + 3));
  for (int at = 0; at < N; at += 1000) { /* 1,000 per call; a difference names its group of 4 */
    size_t la = elems_text(v + at, 1000, 1, a), lb = elems_text(v + at, 1000, 0, b);
    if (la == lb && !memcmp(a, b, la)) continue;
    for (int i = at; i < at + 1000; i += 4) {
      la = elems_text(v + i, 4, 1, a), lb = elems_text(v + i, 4, 0, b);
      if (la != lb || memcmp(a, b, la))
        fail_msg("%08x %08x %08x %08x: AVX2 %.*s, scalar %.*s", v[i], v[i + 1], v[i + 2], v[i + 3], (int)la, a, (int)lb, b);
    }
    fail_msg("floats %d..%d: the texts differ", at, at + 999);
  }
  free(a), free(b), free(v);
}

static size_t unhex(const char *h, unsigned char *out) {
  size_t n = strlen(h) / 2;
  for (size_t i = 0; i < n; i++) {
    unsigned v;
    sscanf(h + 2 * i, "%2x", &v);
    out[i] = (unsigned char)v;
  }
  return n;
}

static void expect_json(const char *hex, int rc_want, const char *want) {
  unsigned char bin[256];
  size_t n = unhex(hex, bin);
  p2q_buf_t b = P2Q_BUF_INIT;
  p2q_buf_puts(&b, "x");
  int rc = p2q_vector_bin_json(&b, bin, n);
  assert_int_equal(rc, rc_want);
  if (!rc) assert_string_equal(b.data + 1, want);
  else assert_string_equal(b.data, "x"); /* nothing appended */
  p2q_buf_free(&b);
}

static void test_vector_bin_json(void **state) {
  (void)state;
  /* array_send('{{1,NULL},{-0,3.5}}'::real[]) */
  expect_json("0000000200000001000002bc00000002000000010000000200000001000000043f800000ffffffff0000000480000000"
              "0000000440600000", 0, "[[1,null],[-0,3.5]]");
  expect_json("0000000000000000000002bc", 0, "[]");                                     /* '{}' */
  /* '[0:1]={1,2}': lower bounds are not printed */
  expect_json("0000000100000000000002bc0000000200000000000000043f8000000000000440000000", 0, "[1,2]");
  /* NaN, Infinity, -Infinity as to_json prints them: strings */
  expect_json("0000000100000000000002bc000000030000000100000004" "7fc00000" "00000004" "7f800000" "00000004" "ff800000",
              0, "[\"NaN\",\"Infinity\",\"-Infinity\"]");
  /* refused: float8[] (oid 701), truncated, trailing bytes, bad element length, negative dim */
  expect_json("0000000100000000000002bd00000001000000010000000800000000", P2Q_EBADJSON, NULL);
  expect_json("0000000100000000000002bc0000000200000001000000043f800000", P2Q_EBADJSON, NULL);
  expect_json("0000000100000000000002bc00000001000000010000000440000000ff", P2Q_EBADJSON, NULL);
  expect_json("0000000100000000000002bc000000010000000100000003400000", P2Q_EBADJSON, NULL);
  expect_json("0000000100000000000002bcffffffff00000001", P2Q_EBADJSON, NULL);
  expect_json("00000007", P2Q_EBADJSON, NULL);
}

static void test_vector_splice(void **state) {
  (void)state;
  unsigned char bin[64];
  size_t n = unhex("0000000100000000000002bc00000002000000010000000440600000ffffffff", bin); /* {3.5,NULL} */
  char why[256] = "";
  p2q_buf_t b = P2Q_BUF_INIT;
  const char *snap = "{\"id\" : 1, \"emb\" : null, \"title\" : \"emb\"}";
  assert_int_equal(p2q_vector_splice(&b, "emb", snap, strlen(snap), bin, n, NULL, why, sizeof why), 0);
  assert_string_equal(b.data, "{\"id\" : 1, \"emb\" : [3.5,null], \"title\" : \"emb\"}");
  /* an escaped key; the vector last */
  p2q_buf_reset(&b);
  snap = "{\"id\" : 1, \"e\\\"b\" : null}";
  assert_int_equal(p2q_vector_splice(&b, "e\"b", snap, strlen(snap), bin, n, NULL, why, sizeof why), 0);
  assert_string_equal(b.data, "{\"id\" : 1, \"e\\\"b\" : [3.5,null]}");
  /* the member holds a vector (a dead letter repaired by hand): the snapshot as it is */
  p2q_buf_reset(&b);
  snap = "{\"id\" : 1, \"emb\" : [1,2]}";
  assert_int_equal(p2q_vector_splice(&b, "emb", snap, strlen(snap), bin, n, NULL, why, sizeof why), 0);
  assert_string_equal(b.data, snap);
  /* no member under that name: refused, nothing appended */
  p2q_buf_reset(&b);
  assert_int_equal(p2q_vector_splice(&b, "vec", "{\"emb\" : null}", 14, bin, n, NULL, why, sizeof why), P2Q_EBADJSON);
  assert_non_null(strstr(why, "no place"));
  assert_int_equal(b.len, 0);
  /* bad bytes */
  assert_int_equal(p2q_vector_splice(&b, "emb", "{\"emb\" : null}", 14, bin, 7, NULL, why, sizeof why), P2Q_EBADJSON);
  assert_non_null(strstr(why, "not the bytes of a real[]"));
  assert_int_equal(b.len, 0);
  p2q_buf_free(&b);
}

/* The batch's snapshots go into one buffer (claim_cb): p2q_vector_text_max bounds the vector's
   text (so the reservation holds: the buffer does not move while the snapshots are appended), and
   p2q_vector_event_payload appends, or appends nothing on a refusal. */
static void test_vector_event_payload_appends(void **state) {
  (void)state;
  static const char *const hexes[] = {
      "0000000100000000000002bc00000002000000010000000440600000ffffffff",                     /* {3.5,NULL} */
      "0000000100000000000002bc000000020000000100000004" "00800000" "00000004" "ff7fffff",   /* min normal, -max */
      "0000000200000001000002bc00000002000000010000000100000001000000043f8000000000000440000000", /* {{1},{2}} */
      "0000000000000000000002bc",                                                             /* {} */
  };
  const char *snap = "{\"id\" : 1, \"emb\" : null}";
  p2q_buf_t b = P2Q_BUF_INIT;
  char why[256];
  for (size_t i = 0; i < sizeof hexes / sizeof *hexes; i++) {
    unsigned char bin[128];
    size_t n = unhex(hexes[i], bin), from = b.len;
    p2q_buf_t alone = P2Q_BUF_INIT;
    assert_int_equal(p2q_vector_bin_json(&alone, bin, n), 0);
    assert_true(p2q_vector_text_max(bin, n) >= alone.len);
    assert_int_equal(p2q_vector_event_payload(&b, "emb", snap, bin, n, NULL, why, sizeof why), 0);
    assert_int_equal(b.len - from, strlen(snap) - 4 + alone.len);
    p2q_buf_free(&alone);
  }
  size_t len = b.len;
  unsigned char bin[8] = {0, 0, 0, 7};
  assert_int_equal(p2q_vector_text_max(bin, sizeof bin), 0);
  assert_int_equal(p2q_vector_event_payload(&b, "emb", snap, bin, sizeof bin, NULL, why, sizeof why), P2Q_EBADJSON);
  assert_int_equal(p2q_vector_event_payload(&b, NULL, snap, bin, sizeof bin, NULL, why, sizeof why), P2Q_EBADJSON);
  assert_non_null(strstr(why, "no vector_column"));
  assert_int_equal(b.len, len);
  p2q_buf_free(&b);
}

/* The span the splice reports: where the vector text went, and dim > 0 only for a flat array of
   numbers; a point built with that span as its hint is the point built by scanning the text
   (the hint is used: a wrong one would show), and an event whose vector is not all numbers is
   still refused with the builder's reason. */
static void test_vector_span_hint(void **state) {
  (void)state;
  static const struct {
    const char *hex, *text;
    int dim;
  } cases[] = {
      {"0000000100000000000002bc0000000300000001000000043f80000000000004bdcccccd00000004c2f70000", "[1,-0.1,-123.5]", 3},
      {"0000000100000000000002bc00000002000000010000000440600000ffffffff", "[3.5,null]", 0},
      {"0000000100000000000002bc000000020000000100000004" "7fc00000" "00000004" "3f800000", "[\"NaN\",1]", 0},
      {"0000000200000001000002bc00000002000000010000000100000001000000043f8000000000000440000000", "[[1],[2]]", 0},
      {"0000000000000000000002bc", "[]", 0},
  };
  p2q_rule_config_t r;
  memset(&r, 0, sizeof r);
  strcpy(r.name, "docs");
  r.vector_column = "emb";
  const char *snap = "{\"id\" : 1, \"emb\" : null, \"title\" : \"t\"}";
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    unsigned char bin[256];
    size_t n = unhex(cases[i].hex, bin);
    char why[256] = "", why2[256] = "";
    p2q_vector_span_t sp;
    p2q_buf_t b = P2Q_BUF_INIT, p1 = P2Q_BUF_INIT, p2 = P2Q_BUF_INIT;
    p2q_buf_puts(&b, "junk before");
    assert_int_equal(p2q_vector_splice(&b, "emb", snap, strlen(snap), bin, n, &sp, why, sizeof why), 0);
    const char *payload = b.data + 11;
    size_t plen = b.len - 11;
    assert_int_equal(sp.dim, cases[i].dim);
    assert_int_equal(sp.len, strlen(cases[i].text));
    assert_memory_equal(payload + sp.at, cases[i].text, sp.len);
    p2q_point_parts_t hint = {.vec_dim = sp.dim, .vec_at = sp.at, .vec_len = sp.len}, none = {0};
    int rc1 = p2q_point_build_ex(&p1, &r, "1", 0, "{}", payload, plen, &hint, why, sizeof why);
    int rc2 = p2q_point_build_ex(&p2, &r, "1", 0, "{}", payload, plen, &none, why2, sizeof why2);
    assert_int_equal(rc1, rc2);
    if (rc1 == 0) assert_string_equal(p2q_buf_str(&p1), p2q_buf_str(&p2));
    else assert_string_equal(why, why2);
    assert_int_equal(rc1 == 0, cases[i].dim > 0);
    p2q_buf_free(&b), p2q_buf_free(&p1), p2q_buf_free(&p2);
  }
  /* the hint is what the builder trusts (so it must only ever come from the splice) */
  const char *bad = "{\"emb\" : [1,x]}";
  p2q_point_parts_t hint = {.vec_dim = 2, .vec_at = 9, .vec_len = 5};
  p2q_buf_t b = P2Q_BUF_INIT;
  char why[256];
  assert_int_equal(p2q_point_build_ex(&b, &r, "1", 0, "{}", bad, strlen(bad), &hint, why, sizeof why), 0);
  assert_non_null(strstr(p2q_buf_str(&b), "\"vector\":[1,x]"));
  p2q_buf_reset(&b);
  hint.vec_at = 10; /* not where the member's value starts: scanned, refused */
  assert_true(p2q_point_build_ex(&b, &r, "1", 0, "{}", bad, strlen(bad), &hint, why, sizeof why) < 0);
  p2q_buf_free(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_vector_span_hint),
      cmocka_unit_test(test_float4_text),
      cmocka_unit_test(test_float4_text_round_trip),
      cmocka_unit_test(test_float4_elems_paths),
      cmocka_unit_test(test_vector_bin_json),
      cmocka_unit_test(test_vector_splice),
      cmocka_unit_test(test_vector_event_payload_appends),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

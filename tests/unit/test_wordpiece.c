/*
 * test_wordpiece.c — the C tokenizer against HF tokenizers' ids for every golden text, plus
 * synthetic-vocabulary cases (greedy longest match, whole-word [UNK], 100-char limit, CRLF
 * vocab, missing [UNK]) and bad input (invalid UTF-8, overlongs, surrogates, NUL bytes,
 * truncation, huge texts). Golden cases skip without the model unless P2Q_REQUIRE_MODEL=1.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "golden_util.h"
#include "pg2qdrant/errors.h"
#include "pg2qdrant/wordpiece.h"

/* ids: [PAD]=0 [UNK]=1 [CLS]=2 [SEP]=3 [MASK]=4 un=5 ##aff=6 ##able=7 a=8 ##b=9 ab=10 .=11 é=12
 *      hello=13 ##lo=14 e=15 中=16 */
static const char k_vocab[] =
    "[PAD]\n[UNK]\r\n[CLS]\n[SEP]\n[MASK]\nun\n##aff\n##able \na\n##b\nab\n.\n\xc3\xa9\nhello\n##lo\ne\n\xe4\xb8\xad";

static p2q_wordpiece_t *mini(void) {
  p2q_wordpiece_t *wp = NULL;
  assert_int_equal(p2q_wordpiece_from_buffer(k_vocab, sizeof k_vocab - 1, &wp), 0);
  return wp;
}

static void expect(const p2q_wordpiece_t *wp, const char *text, size_t len, int max, const int32_t *want, int nwant) {
  int32_t ids[512];
  int n = -1;
  assert_int_equal(p2q_wordpiece_encode(wp, text, len, ids, max, &n), 0);
  if (n != nwant) fail_msg("'%s': got %d ids, want %d", text, n, nwant);
  assert_memory_equal(ids, want, sizeof(int32_t) * (size_t)n);
}
#define EXPECT(wp, s, max, ...) do { const int32_t w_[] = {__VA_ARGS__}; \
  expect(wp, s, sizeof s - 1, max, w_, (int)(sizeof w_ / sizeof w_[0])); } while (0)

static void test_vocab_parsing(void **state) {
  p2q_wordpiece_t *wp = mini();
  assert_int_equal(p2q_wordpiece_vocab_size(wp), 17);
  assert_int_equal(p2q_wordpiece_token_id(wp, "[UNK]", 5), 1);   /* CRLF line */
  assert_int_equal(p2q_wordpiece_token_id(wp, "##able", 6), 7);  /* trailing space trimmed */
  assert_int_equal(p2q_wordpiece_token_id(wp, "\xe4\xb8\xad", 3), 16); /* last line, no newline */
  assert_int_equal(p2q_wordpiece_token_id(wp, "nope", 4), -1);
  p2q_wordpiece_free(wp);
}

static void test_greedy_and_unk(void **state) {
  p2q_wordpiece_t *wp = mini();
  EXPECT(wp, "unaffable", 256, 2, 5, 6, 7, 3);
  EXPECT(wp, "UnAffABLE", 256, 2, 5, 6, 7, 3);        /* lowercased */
  EXPECT(wp, "ab", 256, 2, 10, 3);                   /* longest match wins over a + ##b */
  EXPECT(wp, "abb", 256, 2, 10, 9, 3);
  EXPECT(wp, "unaffablex", 256, 2, 1, 3);            /* one failing position → whole word [UNK] */
  EXPECT(wp, "a.b", 256, 2, 8, 11, 1, 3);            /* punctuation splits; "b" alone is unknown */
  EXPECT(wp, "\xc3\x89", 256, 2, 15, 3);             /* É → NFD E + U+0301 → strip → e */
  EXPECT(wp, "a\xe4\xb8\xad" "a", 256, 2, 8, 16, 8, 3); /* CJK is spaced out */
  EXPECT(wp, "hello[SEP]a", 256, 2, 13, 3, 8, 3);    /* special tokens matched in raw text */
  EXPECT(wp, "[sep]", 256, 2, 1, 1, 1, 3);           /* lowercase is not special: [ sep ] */
  EXPECT(wp, "", 256, 2, 3);
  EXPECT(wp, " \t\r\n\xe3\x80\x80 ", 256, 2, 3);     /* whitespace only */
  EXPECT(wp, "a\0b", 256, 2, 10, 3);                /* NUL dropped (as HF drops U+0000): "ab" */
  p2q_wordpiece_free(wp);
}

static void test_word_length_limit(void **state) {
  p2q_wordpiece_t *wp = mini();
  char w[101];
  w[0] = 'a';
  memset(w + 1, 'b', 100);
  int32_t ids[256];
  int n;
  assert_int_equal(p2q_wordpiece_encode(wp, w, 100, ids, 256, &n), 0); /* 100 chars: ab + 98 × ##b */
  assert_int_equal(n, 101);
  assert_int_equal(ids[1], 10);
  assert_int_equal(ids[99], 9);
  assert_int_equal(p2q_wordpiece_encode(wp, w, 101, ids, 256, &n), 0); /* 101 chars → [UNK] */
  assert_int_equal(n, 3);
  assert_int_equal(ids[1], 1);
  p2q_wordpiece_free(wp);
}

static void test_truncation(void **state) {
  p2q_wordpiece_t *wp = mini();
  int32_t ids[8];
  int n;
  assert_int_equal(p2q_wordpiece_encode(wp, "a a a a a a a a a a", 19, ids, 5, &n), 0);
  assert_int_equal(n, 5);
  assert_int_equal(ids[0], 2);
  assert_int_equal(ids[3], 8);
  assert_int_equal(ids[4], 3);
  assert_int_equal(p2q_wordpiece_encode(wp, "a", 1, ids, 2, &n), 0); /* room for CLS/SEP only */
  assert_int_equal(n, 2);
  assert_int_equal(p2q_wordpiece_encode(wp, "a", 1, ids, 1, &n), P2Q_EINVAL);
  p2q_wordpiece_free(wp);
}

static void test_bad_utf8(void **state) {
  p2q_wordpiece_t *wp = mini();
  static const char *const bad[] = {
    "\xff", "a\x80", "\xc0\xaf", "\xe0\x80\xaf", "\xed\xa0\x80" /* surrogate */, "\xf4\x90\x80\x80",
    "\xc3", "\xe4\xb8", "ok\xf0\x9f\x98",
  };
  int32_t ids[256];
  int n;
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    assert_int_equal(p2q_wordpiece_encode(wp, bad[i], strlen(bad[i]), ids, 256, &n), P2Q_EUTF8);
  /* the error does not depend on where the bad byte is, even past the truncation point */
  size_t len = 100000;
  char *t = malloc(len);
  memset(t, 'a', len);
  for (size_t i = 1; i < len; i += 2) t[i] = ' ';
  t[len - 1] = '\xff';
  assert_int_equal(p2q_wordpiece_encode(wp, t, len, ids, 256, &n), P2Q_EUTF8);
  free(t);
  assert_int_equal(p2q_wordpiece_encode(wp, NULL, 3, ids, 256, &n), P2Q_EINVAL);
  assert_int_equal(p2q_wordpiece_encode(wp, NULL, 0, ids, 256, &n), 0);
  assert_int_equal(n, 2);
  assert_int_equal(p2q_wordpiece_encode(wp, "x", P2Q_WORDPIECE_MAX_TEXT + 1ull, ids, 256, &n), P2Q_ETOOLONG);
  p2q_wordpiece_free(wp);
}

static void test_bad_vocab(void **state) {
  p2q_wordpiece_t *wp = (p2q_wordpiece_t *)1;
  const char v1[] = "[PAD]\n[CLS]\n[SEP]\nhello\n";
  assert_int_equal(p2q_wordpiece_from_buffer(v1, sizeof v1 - 1, &wp), P2Q_EVOCAB);
  assert_null(wp);
  assert_int_equal(p2q_wordpiece_from_buffer("", 0, &wp), P2Q_EVOCAB);
  assert_int_equal(p2q_wordpiece_load("/nonexistent/vocab.txt", &wp), P2Q_ENOENT);
}

static void test_golden_ids(void **state) {
  char dir[4096], path[4200];
  gu_need_model(dir, sizeof dir);
  snprintf(path, sizeof path, "%s/vocab.txt", dir);
  p2q_wordpiece_t *wp;
  assert_int_equal(p2q_wordpiece_load(path, &wp), 0);
  assert_int_equal(p2q_wordpiece_vocab_size(wp), 30522);
  golden_t *g = NULL;
  int n = gu_load(&g), bad = 0;
  assert_true(n >= 200);
  for (int i = 0; i < n; i++) {
    int32_t ids[256];
    int k = 0;
    assert_int_equal(p2q_wordpiece_encode(wp, g[i].text, g[i].len, ids, 256, &k), 0);
    if (k != g[i].n_ids || memcmp(ids, g[i].ids, sizeof(int32_t) * (size_t)k) != 0) {
      fprintf(stderr, "MISMATCH %s (%d vs %d ids)\n", g[i].name, k, g[i].n_ids);
      bad++;
    }
  }
  fprintf(stderr, "%d golden texts, %d mismatches\n", n, bad);
  assert_int_equal(bad, 0);
  /* "hello world" → 101 7592 2088 102 */
  int32_t ids[8];
  int k;
  assert_int_equal(p2q_wordpiece_encode(wp, "hello world", 11, ids, 8, &k), 0);
  assert_int_equal(k, 4);
  assert_int_equal(ids[0], 101);
  assert_int_equal(ids[1], 7592);
  assert_int_equal(ids[2], 2088);
  assert_int_equal(ids[3], 102);
  /* CRLF copy of the real vocabulary gives the same ids */
  FILE *f = fopen(path, "rb");
  char *buf = malloc(1 << 20), *crlf = malloc(2 << 20);
  size_t len = fread(buf, 1, 1 << 20, f), cl = 0;
  fclose(f);
  for (size_t i = 0; i < len; i++) {
    if (buf[i] == '\n') crlf[cl++] = '\r';
    crlf[cl++] = buf[i];
  }
  p2q_wordpiece_t *wp2;
  assert_int_equal(p2q_wordpiece_from_buffer(crlf, cl, &wp2), 0);
  for (int i = 0; i < n; i++) {
    int32_t a[256];
    assert_int_equal(p2q_wordpiece_encode(wp2, g[i].text, g[i].len, a, 256, &k), 0);
    assert_int_equal(k, g[i].n_ids);
    assert_memory_equal(a, g[i].ids, sizeof(int32_t) * (size_t)k);
  }
  p2q_wordpiece_free(wp2);
  free(buf);
  free(crlf);
  gu_free(g, n);
  p2q_wordpiece_free(wp);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_vocab_parsing),
    cmocka_unit_test(test_greedy_and_unk),
    cmocka_unit_test(test_word_length_limit),
    cmocka_unit_test(test_truncation),
    cmocka_unit_test(test_bad_utf8),
    cmocka_unit_test(test_bad_vocab),
    cmocka_unit_test(test_golden_ids),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Unit tests for bm25.c: murmur3 and token ids, word splitting over Unicode, case, stop words,
   stemming, and BM25 values checked against a hand-computed example. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg2qdrant/bm25.h"
#include "pg2qdrant/errors.h"

static p2q_bm25_t *make(int stop, int stem, double avg) {
  p2q_bm25_opts_t o;
  p2q_bm25_t *a = NULL;
  p2q_bm25_defaults(&o);
  o.stopwords = stop;
  o.stem = stem;
  if (avg > 0) o.avg_len = avg;
  assert_int_equal(p2q_bm25_new(&o, &a), 0);
  return a;
}

static void expect_tokens(p2q_bm25_t *a, const char *text, const char *want) {
  p2q_buf_t b = P2Q_BUF_INIT;
  assert_true(p2q_bm25_tokens(a, text, strlen(text), &b) >= 0);
  assert_string_equal(p2q_buf_str(&b), want);
  p2q_buf_free(&b);
}

static void test_murmur3(void **state) {
  /* reference values of MurmurHash3_x86_32 (as Python's mmh3.hash, unsigned) */
  assert_int_equal(p2q_murmur3_32("", 0, 0), 0);
  assert_int_equal(p2q_murmur3_32("", 0, 1), 0x514e28b7u);
  assert_int_equal(p2q_murmur3_32("hello", 5, 0), 613153351u);
  const char *fox = "The quick brown fox jumps over the lazy dog";
  assert_int_equal(p2q_murmur3_32(fox, strlen(fox), 0), 0x2e4ff723u);
  /* mmh3.hash("foo") = -156908512: the token id is its absolute value */
  assert_int_equal((int32_t)p2q_murmur3_32("foo", 3, 0), -156908512);
  assert_int_equal(p2q_bm25_token_id("foo", 3), 156908512u);
  assert_int_equal(p2q_bm25_token_id("hello", 5), 613153351u);
}

static void test_words_unicode_case(void **state) {
  p2q_bm25_t *a = make(0, 0, 0);
  expect_tokens(a, "Hello, WORLD!  x-42_y", "hello\nworld\nx\n42\ny\n");
  /* Latin-1/Ext-A/Greek/Cyrillic lowercasing; em dash, guillemets, NBSP split; ½ is a number */
  expect_tokens(a, "Crème BRÛLÉE\xe2\x80\x94\xce\x91\xce\x98\xce\x97\xce\x9d\xce\x91 \xc2\xab\xd0\x9c\xd0\xbe\xd1\x81\xd0\xba\xd0\xb2\xd0\xb0\xc2\xbb\xc2\xa0\xc5\x81\xc3\xb3" "d\xc5\xba x\xc2\xbd",
                "crème\nbrûlée\nαθηνα\nмосква\nłódź\nx½\n");
  /* CJK is a word character; its punctuation splits; emoji split */
  expect_tokens(a, "\xe6\x9d\xb1\xe4\xba\xac\xe3\x80\x82\xe5\xa4\xa7\xe9\x98\xaa\xf0\x9f\x98\x80" "ok", "東京\n大阪\nok\n");
  /* invalid UTF-8 bytes split, never crash; a truncated sequence at the end too */
  expect_tokens(a, "ab\xff" "cd\xc3", "ab\ncd\n");
  expect_tokens(a, "", "");
  expect_tokens(a, " ,.;", "");
  /* a combining accent (decomposed form) splits like Qdrant's is_alphanumeric */
  expect_tokens(a, "cafe\xcc\x81" "s", "cafe\ns\n");
  p2q_bm25_free(a);
}

static void test_stopwords_and_stemming(void **state) {
  p2q_bm25_t *a = make(1, 0, 0);
  expect_tokens(a, "This is THE end of it", "end\n");
  p2q_bm25_free(a);
  a = make(0, 1, 0);
  expect_tokens(a, "running runs connections generously lazy", "run\nrun\nconnect\ngenerous\nlazi\n"); /* Porter2 (original Porter: gener) */
  p2q_bm25_free(a);
  a = make(1, 1, 0);
  /* product codes and numbers pass through the stemmer unchanged */
  expect_tokens(a, "The XJ-9000 is running", "xj\n9000\nrun\n");
  p2q_bm25_free(a);
}

/* "The quick brown fox jumps over the lazy dog, the fox!" with stop words and stemmer:
   quick brown fox jump lazi dog fox → doc_len 7, fox tf 2, the others tf 1.
   avg_len 4, k1 1.2, b 0.75: norm = 1.2 · (1 − 0.75 + 0.75 · 7/4) = 1.2 · 1.5625 = 1.875;
   tf 2: 2 · 2.2 / (2 + 1.875) = 4.4 / 3.875 = 1.1354838…; tf 1: 2.2 / 2.875 = 0.7652173… */
static void test_bm25_values(void **state) {
  p2q_bm25_t *a = make(1, 1, 4);
  const char *text = "The quick brown fox jumps over the lazy dog, the fox!";
  p2q_buf_t b = P2Q_BUF_INIT;
  assert_int_equal(p2q_bm25_document(a, text, strlen(text), &b), 6);
  const char *words[] = {"quick", "brown", "fox", "jump", "lazi", "dog"};
  uint32_t ids[6];
  for (int i = 0; i < 6; i++) ids[i] = p2q_bm25_token_id(words[i], strlen(words[i]));
  /* expected JSON: ids ascending, fox's value 1.13548386, the others 0.765217364 */
  uint32_t sorted[6];
  memcpy(sorted, ids, sizeof ids);
  for (int i = 0; i < 6; i++)
    for (int j = i + 1; j < 6; j++)
      if (sorted[j] < sorted[i]) { uint32_t t = sorted[i]; sorted[i] = sorted[j]; sorted[j] = t; }
  char want[512];
  size_t o = (size_t)snprintf(want, sizeof want, "{\"indices\":[");
  for (int i = 0; i < 6; i++) o += (size_t)snprintf(want + o, sizeof want - o, "%s%u", i ? "," : "", sorted[i]);
  o += (size_t)snprintf(want + o, sizeof want - o, "],\"values\":[");
  for (int i = 0; i < 6; i++)
    o += (size_t)snprintf(want + o, sizeof want - o, "%s%s", i ? "," : "",
                          sorted[i] == ids[2] ? "1.13548386" : "0.765217364");
  snprintf(want + o, sizeof want - o, "]}");
  assert_string_equal(p2q_buf_str(&b), want);
  /* the default avg_len 256: norm = 1.2 · (0.25 + 0.75 · 7/256) = 0.324609375; tf 1 → 2.2/1.324609375 */
  p2q_bm25_free(a);
  a = make(1, 1, 0);
  p2q_buf_reset(&b);
  assert_int_equal(p2q_bm25_document(a, "dog", 3, &b), 1);
  char one[96];
  /* doc_len 1: norm = 1.2 · (0.25 + 0.75/256) = 0.303515625; 2.2 / 1.303515625 = 1.68774… */
  snprintf(one, sizeof one, "{\"indices\":[%u],\"values\":[1.68774343]}", p2q_bm25_token_id("dog", 3));
  assert_string_equal(p2q_buf_str(&b), one);
  /* query side: unit weights */
  p2q_buf_reset(&b);
  assert_int_equal(p2q_bm25_query(a, "dog dogs", 8, &b), 1);
  snprintf(one, sizeof one, "{\"indices\":[%u],\"values\":[1]}", p2q_bm25_token_id("dog", 3));
  assert_string_equal(p2q_buf_str(&b), one);
  /* only stop words: an empty vector */
  p2q_buf_reset(&b);
  assert_int_equal(p2q_bm25_document(a, "the of and", 10, &b), 0);
  assert_string_equal(p2q_buf_str(&b), "{\"indices\":[],\"values\":[]}");
  p2q_buf_free(&b);
  p2q_bm25_free(a);
}

static void test_bad_options(void **state) {
  p2q_bm25_opts_t o;
  p2q_bm25_t *a = NULL;
  p2q_bm25_defaults(&o);
  o.b = 1.5;
  assert_int_equal(p2q_bm25_new(&o, &a), P2Q_EINVAL);
  p2q_bm25_defaults(&o);
  o.avg_len = 0;
  assert_int_equal(p2q_bm25_new(&o, &a), P2Q_EINVAL);
  assert_null(a);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_murmur3), cmocka_unit_test(test_words_unicode_case),
      cmocka_unit_test(test_stopwords_and_stemming), cmocka_unit_test(test_bm25_values),
      cmocka_unit_test(test_bad_options),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

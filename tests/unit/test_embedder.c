/* Unit tests for the pure parts of embedder.c / embedder_openai.c: the OpenAI
 * response parser, the token estimate and truncation, the request body, the answer classes,
 * error messages and bisection bookkeeping. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "pg2qdrant/embedder.h"
#include "pg2qdrant/errors.h"

static void test_openai_parse(void **state) {
  float v[4];
  char msg[128];
  const char *ok = "{\"object\":\"list\",\"data\":[{\"index\":1,\"embedding\":[3,4]},{\"index\":0,\"embedding\":[1,2]}]}";
  assert_int_equal(p2q_openai_parse(ok, strlen(ok), 2, 2, v, NULL, msg, sizeof msg), 0);
  assert_true(v[0] == 1 && v[1] == 2 && v[2] == 3 && v[3] == 4); /* placed by index */
  const char *dim = "{\"data\":[{\"index\":0,\"embedding\":[1,2,3]}]}";
  assert_int_equal(p2q_openai_parse(dim, strlen(dim), 1, 2, v, NULL, msg, sizeof msg), P2Q_EEMBED);
  assert_non_null(strstr(msg, "dimension 3, expected 2"));
  const char *few = "{\"data\":[{\"index\":0,\"embedding\":[1,2]}]}";
  assert_int_equal(p2q_openai_parse(few, strlen(few), 2, 2, v, NULL, msg, sizeof msg), P2Q_EEMBED);
  assert_non_null(strstr(msg, "1 vectors for 2 texts"));
  const char *dup = "{\"data\":[{\"index\":0,\"embedding\":[1,2]},{\"index\":0,\"embedding\":[1,2]}]}";
  assert_int_equal(p2q_openai_parse(dup, strlen(dup), 2, 2, v, NULL, msg, sizeof msg), P2Q_EEMBED);
  const char *str = "{\"data\":[{\"index\":0,\"embedding\":[1,\"x\"]}]}";
  assert_int_equal(p2q_openai_parse(str, strlen(str), 1, 2, v, NULL, msg, sizeof msg), P2Q_EEMBED);
  assert_int_equal(p2q_openai_parse("nope", 4, 1, 2, v, NULL, msg, sizeof msg), P2Q_EBADJSON);
  assert_int_equal(p2q_openai_parse("{}", 2, 1, 2, v, NULL, msg, sizeof msg), P2Q_EBADJSON);
}

static void test_usage_tokens(void **state) {
  float v[2];
  char msg[128];
  long used = -1;
  const char *ok = "{\"data\":[{\"index\":0,\"embedding\":[1,2]}],\"usage\":{\"prompt_tokens\":7,\"total_tokens\":7}}";
  assert_int_equal(p2q_openai_parse(ok, strlen(ok), 1, 2, v, &used, msg, sizeof msg), 0);
  assert_int_equal(used, 7);
  /* a 200 with an error envelope is not an embeddings answer (costs time, not attempts) */
  const char *env = "{\"error\":{\"message\":\"upstream timeout\"}}";
  assert_int_equal(p2q_openai_parse(env, strlen(env), 1, 2, v, &used, msg, sizeof msg), P2Q_EBADJSON);
  assert_non_null(strstr(msg, "upstream timeout"));
}

static void test_estimate_and_truncate(void **state) {
  assert_int_equal(p2q_embed_estimate_tokens("", 0), 0);
  assert_int_equal(p2q_embed_estimate_tokens("abc", 3), 1);
  assert_int_equal(p2q_embed_estimate_tokens("abcd", 4), 2);
  assert_int_equal(p2q_embed_estimate_tokens("\xc3\xa9", 2), 2);       /* é: one per non-ASCII byte */
  const char *txt = "hello world, this is long";                          /* 25 ASCII bytes: 9 */
  assert_int_equal(p2q_embed_estimate_tokens(txt, strlen(txt)), 9);
  assert_int_equal(p2q_embed_truncate(txt, strlen(txt), 0), strlen(txt)); /* 0: never cut */
  assert_int_equal(p2q_embed_truncate(txt, strlen(txt), 9), strlen(txt)); /* fits */
  assert_int_equal(p2q_embed_truncate(txt, strlen(txt), 2), 6);           /* 6 bytes = 2 */
  /* never inside a multi-byte character: "aé€😀" = 1 + 2 + 3 + 4 bytes */
  const char *u = "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80";
  size_t n = strlen(u);
  for (int64_t max = 1; max <= 12; max++) {
    size_t cut = p2q_embed_truncate(u, n, max);
    assert_true(cut == 0 || cut == 1 || cut == 3 || cut == 6 || cut == 10);
    assert_true(p2q_embed_estimate_tokens(u, cut) <= max);
    if (cut < n) /* the longest such prefix: the next character would not fit */
      assert_true(p2q_embed_estimate_tokens(u, cut == 0 ? 1 : cut == 1 ? 3 : cut == 3 ? 6 : 10) > max);
  }
  assert_int_equal(p2q_utf8_floor(u, n, 2), 1);  /* inside é */
  assert_int_equal(p2q_utf8_floor(u, n, 5), 3);  /* inside € */
  assert_int_equal(p2q_utf8_floor(u, n, 9), 6);  /* inside 😀 */
  assert_int_equal(p2q_utf8_floor(u, n, 6), 6);
  assert_int_equal(p2q_utf8_floor(u, n, 99), n);
  /* a long random-ish text: the cut estimate is within max and every cut is a boundary */
  char big[4096];
  for (size_t i = 0; i < sizeof big; i++) big[i] = i % 7 == 3 ? (char)0xc3 : i % 7 == 4 ? (char)0xa9 : 'x';
  for (int64_t max = 1; max < 1500; max += 37) {
    size_t cut = p2q_embed_truncate(big, sizeof big, max);
    assert_true(p2q_embed_estimate_tokens(big, cut) <= max);
    assert_true(((unsigned char)big[cut] & 0xC0) != 0x80);
  }
}

static void test_request_body(void **state) {
  const char *texts[] = {"a \"q\"", "b\n"};
  size_t lens[] = {5, 2};
  p2q_buf_t b = P2Q_BUF_INIT;
  p2q_openai_body(&b, "text-embedding-3-small", 0, texts, lens, 2);
  p2q_buf_putc(&b, 0);
  assert_string_equal(b.data, "{\"model\":\"text-embedding-3-small\",\"input\":[\"a \\\"q\\\"\",\"b\\n\"]}");
  p2q_buf_reset(&b);
  p2q_openai_body(&b, "m", 256, texts, lens, 1); /* dimensions sent when set; lens bound each text */
  p2q_buf_putc(&b, 0);
  assert_string_equal(b.data, "{\"model\":\"m\",\"input\":[\"a \\\"q\\\"\"],\"dimensions\":256}");
  p2q_buf_reset(&b);
  size_t cut[] = {1};
  p2q_openai_body(&b, "m", 0, texts, cut, 1);
  p2q_buf_putc(&b, 0);
  assert_string_equal(b.data, "{\"model\":\"m\",\"input\":[\"a\"]}");
  p2q_buf_free(&b);
}

static void test_classify_and_message(void **state) {
  assert_int_equal(p2q_openai_classify(200), P2Q_OAI_OK);
  assert_int_equal(p2q_openai_classify(400), P2Q_OAI_REJECT);
  assert_int_equal(p2q_openai_classify(413), P2Q_OAI_REJECT);
  assert_int_equal(p2q_openai_classify(422), P2Q_OAI_REJECT);
  assert_int_equal(p2q_openai_classify(429), P2Q_OAI_THROTTLE);
  assert_int_equal(p2q_openai_classify(0), P2Q_OAI_RETRY);
  assert_int_equal(p2q_openai_classify(408), P2Q_OAI_RETRY);
  assert_int_equal(p2q_openai_classify(503), P2Q_OAI_RETRY);
  assert_int_equal(p2q_openai_classify(401), P2Q_OAI_CONFIG);
  assert_int_equal(p2q_openai_classify(403), P2Q_OAI_CONFIG);
  assert_int_equal(p2q_openai_classify(404), P2Q_OAI_CONFIG);
  assert_int_equal(p2q_openai_classify(302), P2Q_OAI_CONFIG);
  char m[64];
  const char *oai = "{\"error\":{\"message\":\"This model's maximum context length is 8192 tokens\","
                    "\"type\":\"invalid_request_error\",\"param\":null,\"code\":null}}";
  p2q_openai_error_message(oai, strlen(oai), m, sizeof m);
  assert_string_equal(m, "This model's maximum context length is 8192 tokens");
  const char *tei = "{\"error\":\"Input validation error\",\"error_type\":\"Validation\"}";
  p2q_openai_error_message(tei, strlen(tei), m, sizeof m);
  assert_string_equal(m, "Input validation error");
  p2q_openai_error_message("{\"detail\":\"too long\"}", 21, m, sizeof m);
  assert_string_equal(m, "too long");
  p2q_openai_error_message("<html>\n413 Request Entity Too Large\n</html>\n", 44, m, sizeof m);
  assert_string_equal(m, "<html> 413 Request Entity Too Large </html>");
  p2q_openai_error_message("", 0, m, sizeof m);
  assert_string_equal(m, "(empty body)");
  char *u = p2q_openai_endpoint("https://api.openai.com/v1");
  assert_string_equal(u, "https://api.openai.com/v1/embeddings");
  free(u);
  u = p2q_openai_endpoint("https://api.openai.com/v1/");
  assert_string_equal(u, "https://api.openai.com/v1/embeddings");
  free(u);
  u = p2q_openai_endpoint("http://127.0.0.1:8080/v1/embeddings");
  assert_string_equal(u, "http://127.0.0.1:8080/v1/embeddings");
  free(u);
  /* Azure OpenAI: the deployment URL carries ?api-version=…; the path goes before the query */
  u = p2q_openai_endpoint("https://x.openai.azure.com/openai/deployments/emb?api-version=2024-02-01");
  assert_string_equal(u, "https://x.openai.azure.com/openai/deployments/emb/embeddings?api-version=2024-02-01");
  free(u);
  u = p2q_openai_endpoint("https://x.openai.azure.com/openai/deployments/emb/embeddings/?api-version=1");
  assert_string_equal(u, "https://x.openai.azure.com/openai/deployments/emb/embeddings?api-version=1");
  free(u);
}

/* Bisection bookkeeping: drive the split as the embedder does against a fake API that rejects a
   request holding any bad text; exactly the bad texts end up rejected, every good one embedded
   once, in few requests. */
static void test_bisection(void **state) {
  int f[2], k[2];
  assert_int_equal(p2q_embed_bisect(5, 1, f, k), 0);
  assert_int_equal(p2q_embed_bisect(4, 5, f, k), 2);
  assert_true(f[0] == 4 && k[0] == 2 && f[1] == 6 && k[1] == 3);
  for (int n = 1; n <= 64; n++) {
    for (int pattern = 0; pattern < 4; pattern++) {
      int bad[64], embedded[64] = {0}, rejected[64] = {0}, nbad = 0;
      for (int i = 0; i < n; i++) {
        bad[i] = pattern == 0 ? 0 : pattern == 1 ? i == n / 2 : pattern == 2 ? i % 5 == 1 : 1;
        nbad += bad[i];
      }
      int qf[256], qn[256], head = 0, tail = 0, requests = 0;
      qf[tail] = 0; qn[tail++] = n;
      while (head < tail) {
        int first = qf[head], m = qn[head++], any = 0;
        requests++;
        for (int i = first; i < first + m; i++) any |= bad[i];
        if (!any) { for (int i = first; i < first + m; i++) embedded[i]++; continue; }
        if (p2q_embed_bisect(first, m, f, k) == 0) { rejected[first]++; continue; }
        assert_true(k[0] >= 1 && k[1] >= 1 && f[0] == first && f[1] == first + k[0] && k[0] + k[1] == m);
        assert_true(tail + 2 <= 256);
        qf[tail] = f[0]; qn[tail++] = k[0];
        qf[tail] = f[1]; qn[tail++] = k[1];
      }
      for (int i = 0; i < n; i++) {
        assert_int_equal(embedded[i], !bad[i]);
        assert_int_equal(rejected[i], bad[i]);
      }
      if (nbad == 1) { /* one bad text: 1 + 2 per halving */
        int depth = 0;
        while ((1 << depth) < n) depth++;
        assert_true(requests <= 1 + 2 * depth);
      }
      assert_true(requests <= 2 * n - 1);
    }
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_openai_parse),
                                     cmocka_unit_test(test_usage_tokens),
                                     cmocka_unit_test(test_estimate_and_truncate),
                                     cmocka_unit_test(test_request_body),
                                     cmocka_unit_test(test_classify_and_message),
                                     cmocka_unit_test(test_bisection)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}

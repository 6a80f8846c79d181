/*
 * test_chunk.c — word-piece spans (wordpiece.h) and chunk windows (chunk.h): each piece's
 * source bytes equal HF tokenizers' offsets (tokenizers 0.23.3 on all-MiniLM-L6-v2, converted
 * to bytes) for ASCII, accents (composed and decomposed), CJK, Hangul, emoji and ligatures;
 * chunks never cut a word, overlap as asked, are exact substrings, and re-tokenizing a chunk's
 * text gives exactly its window's ids; text shorter than one chunk and empty text. Cases with
 * the real vocabulary skip without the model unless P2Q_REQUIRE_MODEL=1.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "golden_util.h"
#include "pg2qdrant/chunk.h"
#include "pg2qdrant/errors.h"
#include "pg2qdrant/wordpiece.h"

static p2q_wordpiece_t *vocab(void) {
  char dir[4096], path[4200];
  gu_need_model(dir, sizeof dir);
  snprintf(path, sizeof path, "%s/vocab.txt", dir);
  p2q_wordpiece_t *wp = NULL;
  assert_int_equal(p2q_wordpiece_load(path, &wp), 0);
  return wp;
}

typedef struct { const char *text; int n; uint32_t span[12][2]; uint8_t ws[12]; } span_case_t;

/* Content pieces only ([CLS]/[SEP] excluded), offsets from HF tokenizers' encode(..).offsets. */
static const span_case_t k_spans[] = {
    {"Hello, world! unaffable", 7, {{0, 5}, {5, 6}, {7, 12}, {12, 13}, {14, 17}, {17, 20}, {20, 23}}, {1, 1, 1, 1, 1, 0, 0}},
    {"Caf\xc3\xa9 d\xc3\xa9j\xc3\xa0 vu", 4, {{0, 5}, {6, 9}, {9, 12}, {13, 15}}, {1, 1, 0, 1}},
    {"\xe6\x9d\xb1\xe4\xba\xac\xe3\x81\xaf\xe6\x99\xb4\xe3\x82\x8c", 5, {{0, 3}, {3, 6}, {6, 9}, {9, 12}, {12, 15}}, {1, 1, 1, 1, 1}},
    {"I \xf0\x9f\x98\x80 emoji", 5, {{0, 1}, {2, 6}, {7, 9}, {9, 11}, {11, 12}}, {1, 1, 1, 0, 0}},
    {"e\xcc\x81t\xc3\xa9 x", 3, {{0, 4}, {4, 6}, {7, 8}}, {1, 0, 1}},                    /* decomposed é */
    {"\xec\x95\x88\xeb\x85\x95 hi", 7, {{0, 3}, {0, 3}, {0, 3}, {3, 6}, {3, 6}, {3, 6}, {7, 9}}, {1, 0, 0, 0, 0, 0, 1}},
    {"\xef\xac\x81sh", 2, {{0, 3}, {3, 5}}, {1, 0}},                                     /* ligature fi */
    {"  a [SEP] b\x01 ", 3, {{2, 3}, {4, 9}, {10, 12}}, {1, 1, 1}},  /* special literal; control kept in b */
};

static void test_spans_match_hf_offsets(void **state) {
  (void)state;
  p2q_wordpiece_t *wp = vocab();
  for (size_t c = 0; c < sizeof k_spans / sizeof k_spans[0]; c++) {
    const span_case_t *k = &k_spans[c];
    int32_t ids[64], ids2[64];
    p2q_wordpiece_span_t sp[64];
    int n = 0, n2 = 0;
    size_t len = strlen(k->text);
    assert_int_equal(p2q_wordpiece_encode_spans(wp, k->text, len, ids, sp, 64, &n), 0);
    assert_int_equal(p2q_wordpiece_encode(wp, k->text, len, ids2, 64, &n2), 0);
    assert_int_equal(n, n2);
    assert_memory_equal(ids, ids2, sizeof *ids * (size_t)n); /* spans change no id */
    if (n - 2 != k->n) fail_msg("case %zu: %d pieces, want %d", c, n - 2, k->n);
    assert_true(sp[0].start == 0 && sp[0].end == 0 && sp[n - 1].start == len && sp[n - 1].end == len);
    for (int i = 0; i < k->n; i++)
      if (sp[1 + i].start != k->span[i][0] || sp[1 + i].end != k->span[i][1] || sp[1 + i].word_start != k->ws[i])
        fail_msg("case %zu piece %d: (%u,%u,%d), want (%u,%u,%d)", c, i, sp[1 + i].start, sp[1 + i].end,
                 sp[1 + i].word_start, k->span[i][0], k->span[i][1], k->ws[i]);
  }
  p2q_wordpiece_free(wp);
}

/* Cut text, then check every chunk: substring bounds, at most ct pieces, the overlap, and that
   its text tokenizes to exactly its window. Returns the chunk count; texts in out (malloc'd). */
static int cut_ex(const p2q_wordpiece_t *wp, const char *text, int ct, int ov, p2q_chunk_t *ch, int cap, int exact) {
  size_t len = strlen(text);
  int max = (int)len + 2, n = 0;
  int32_t *ids = malloc(sizeof *ids * (size_t)max), *ids2 = malloc(sizeof *ids2 * (size_t)(ct + 2));
  p2q_wordpiece_span_t *sp = malloc(sizeof *sp * (size_t)max);
  assert_int_equal(p2q_wordpiece_encode_spans(wp, text, len, ids, sp, max, &n), 0);
  int nc = p2q_chunk_cut(text, sp + 1, n - 2, ct, ov, ch, cap);
  assert_true(nc >= 1);
  for (int j = 0; j < nc; j++) {
    int k = 0;
    assert_true(ch[j].count <= ct && ch[j].start <= ch[j].end && ch[j].end <= len);
    assert_int_equal(p2q_wordpiece_encode(wp, text + ch[j].start, ch[j].end - ch[j].start, ids2, ct + 2, &k), 0);
    if (!exact) continue; /* a word longer than a chunk was cut: its parts tokenize differently */
    assert_int_equal(k - 2, ch[j].count);
    assert_memory_equal(ids2 + 1, ids + 1 + ch[j].first, sizeof *ids * (size_t)ch[j].count);
    if (j) {
      assert_true(ch[j].first > ch[j - 1].first);                        /* progress */
      assert_true(ch[j].first <= ch[j - 1].first + ch[j - 1].count);     /* no gap */
      assert_true(ch[j - 1].first + ch[j - 1].count - ch[j].first <= ov); /* never more overlap */
    }
  }
  assert_int_equal(ch[nc - 1].first + ch[nc - 1].count, n - 2); /* the last piece is covered */
  free(ids);
  free(ids2);
  free(sp);
  return nc;
}
#define cut(wp, text, ct, ov, ch, cap) cut_ex(wp, text, ct, ov, ch, cap, 1)

/* Chunk c of text is exactly the bytes of want. */
static void chunk_text_is(const char *text, const p2q_chunk_t *c, const char *want) {
  assert_int_equal(c->end - c->start, strlen(want));
  assert_memory_equal(text + c->start, want, strlen(want));
}

static void test_chunks_ascii_overlap(void **state) {
  (void)state;
  p2q_wordpiece_t *wp = vocab();
  p2q_chunk_t ch[64];
  /* 12 one-piece words: windows of 5 overlapping by 2 → [0,5) [3,8) [6,11) [9,12) */
  const char *t = "one two three four five six seven eight nine ten eleven twelve";
  assert_int_equal(cut(wp, t, 5, 2, ch, 64), 4);
  assert_int_equal(ch[1].first, 3);
  assert_int_equal(ch[3].first, 9);
  assert_int_equal(ch[3].count, 3);
  chunk_text_is(t, &ch[1], "four five six seven eight");
  /* a window never ends inside a word: "unaffable" is una ##ffa ##ble */
  const char *u = "a b c unaffable d e f";
  assert_int_equal(cut(wp, u, 5, 0, ch, 64), 3);
  assert_int_equal(ch[0].count, 3); /* "a b c" — the word would not fit */
  chunk_text_is(u, &ch[1], "unaffable d e");
  /* nor start inside one: overlap 1 would start at ##ble, it starts at "d" instead */
  const char *v = "a unaffable d e f g";
  assert_int_equal(cut(wp, v, 4, 1, ch, 64), 2);
  assert_int_equal(ch[1].first, 4);
  p2q_wordpiece_free(wp);
}

static void test_chunks_unicode(void **state) {
  (void)state;
  p2q_wordpiece_t *wp = vocab();
  p2q_chunk_t ch[64];
  /* decomposed accents stay with their word's chunk; CJK ideographs are one word each */
  const char *t = "cre\xcc\x80me bru\xcc\x82le\xcc\x81" "e \xe6\x9d\xb1\xe4\xba\xac\xe9\x83\xbd \xf0\x9f\x98\x80 fin";
  int n = cut(wp, t, 3, 1, ch, 64);
  assert_true(n >= 3);
  for (int j = 0; j < n; j++) { /* whole code points: never starts on a continuation byte */
    assert_true(((unsigned char)t[ch[j].start] & 0xC0) != 0x80);
    assert_true(ch[j].end == strlen(t) || ((unsigned char)t[ch[j].end] & 0xC0) != 0x80);
  }
  for (int j = 0; j < n; j++) /* a chunk never ends before a word's combining accent (U+03xx: 0xCC/0xCD) */
    assert_true((unsigned char)t[ch[j].end] != 0xCC && (unsigned char)t[ch[j].end] != 0xCD);
  /* a word longer than a chunk is the only thing cut */
  const char *l = "supercalifragilisticexpialidocious";
  assert_int_equal(cut_ex(wp, l, 4, 1, ch, 64, 0), 3); /* 11 pieces: [0,4) [4,8) [8,11), no overlap inside it */
  assert_int_equal(ch[1].first, 4);
  p2q_wordpiece_free(wp);
}

/* Windows end at a content-chosen sentence end (winnowing), and so re-synchronise after an edit
   that adds pieces: the chunks after the edited one are the same texts as before. */
static const char *const k_w[] = {"river", "stone", "cloud", "tiger", "paper", "garden", "silver", "window",
                                  "candle", "forest", "music", "bridge", "winter", "orange", "letter", "island"};

static void sentences(char *out, int edit) {
  out[0] = 0;
  for (int i = 0; i < 60; i++) { /* 5..8 one-piece words + "." */
    if (i) strcat(out, " "); /* no line breaks: sentence ends only */
    for (int k = 0, nw = 5 + (i * 7) % 4; k < nw; k++) {
      strcat(out, k_w[(i * 5 + k * 3) % 16]);
      if (k + 1 < nw) strcat(out, " ");
    }
    if (i == 10 && edit) strcat(out, " apple apple apple"); /* +3 pieces */
    strcat(out, ".");
  }
}

static void test_sentence_ends_resynchronise(void **state) {
  (void)state;
  p2q_wordpiece_t *wp = vocab();
  static p2q_chunk_t a[512], b[512];
  static char before[8192], after[8192];
  sentences(before, 0);
  sentences(after, 1);
  int na = cut(wp, before, 64, 8, a, 512), nb = cut(wp, after, 64, 8, b, 512);
  for (int j = 0; j + 1 < na; j++) { /* every window but the last ends after a "." and keeps half its step */
    assert_true(a[j].count <= 64 && a[j].count >= 8 + 28);
    assert_int_equal(before[a[j].end - 1], '.');
  }
  int same = 0;
  for (int j = 0; j < nb; j++)
    for (int i = 0; i < na; i++)
      if (a[i].end - a[i].start == b[j].end - b[j].start &&
          !memcmp(before + a[i].start, after + b[j].start, a[i].end - a[i].start)) { same++; break; }
  if (same < nb - 2) fail_msg("%d of %d chunks kept their text (want >= %d)", same, nb, nb - 2);
  /* a large overlap: a sentence end is taken only if it keeps half the step (5 → >= 2) */
  int nc = cut(wp, before, 20, 15, a, 512);
  for (int j = 1; j + 1 < nc; j++) assert_true(a[j].first - a[j - 1].first >= 2);
  p2q_wordpiece_free(wp);
}

static void test_short_and_empty(void **state) {
  (void)state;
  p2q_wordpiece_t *wp = vocab();
  p2q_chunk_t ch[4];
  const char *t = "  short text \n";
  assert_int_equal(cut(wp, t, 32, 8, ch, 4), 1);
  assert_int_equal(ch[0].start, 2);
  assert_int_equal(ch[0].end, 12); /* no whitespace around */
  assert_int_equal(cut(wp, "", 32, 8, ch, 4), 1);
  assert_true(ch[0].start == 0 && ch[0].end == 0 && ch[0].count == 0);
  assert_int_equal(cut(wp, " \t\n", 32, 8, ch, 4), 1);
  assert_int_equal(ch[0].count, 0);
  p2q_wordpiece_free(wp);
}

static void test_bad_sizes(void **state) {
  (void)state;
  p2q_wordpiece_span_t sp[3] = {{0, 1, 1}, {2, 3, 1}, {4, 5, 1}};
  p2q_chunk_t ch[3];
  assert_int_equal(p2q_chunk_cut(NULL, sp, 3, 0, 0, ch, 3), P2Q_EINVAL);
  assert_int_equal(p2q_chunk_cut(NULL, sp, 3, 2, 2, ch, 3), P2Q_EINVAL);
  assert_int_equal(p2q_chunk_cut(NULL, sp, 3, 1, 0, ch, 2), P2Q_ERANGE);
  assert_int_equal(p2q_chunk_cut(NULL, sp, 3, 1, 0, ch, 3), 3);
  assert_int_equal(p2q_chunk_cut(NULL, sp, 3, 2, 1, ch, 3), 2); /* [0,2) [1,3) */
  assert_int_equal(ch[1].first, 1);
  assert_int_equal(ch[1].start, 2);
  assert_int_equal(ch[1].end, 5);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_spans_match_hf_offsets),
      cmocka_unit_test(test_chunks_ascii_overlap),
      cmocka_unit_test(test_chunks_unicode),
      cmocka_unit_test(test_sentence_ends_resynchronise),
      cmocka_unit_test(test_short_and_empty),
      cmocka_unit_test(test_bad_sizes),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

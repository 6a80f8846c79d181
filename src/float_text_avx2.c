/*
 * float_text_avx2.c — float_text.c's printer for four (twice four) floats at a time in AVX2 registers, one
 * 64-bit lane per float, without a branch per float; float_text.c calls it where the CPU has
 * AVX2 (__builtin_cpu_supports, asked once), so the .deb still runs on any x86-64; on other
 * architectures (or with -DP2Q_FT_NO_AVX2) this file is empty.
 *
 * Per group of four array_send() elements (32 bytes: a big-endian length 4, then the float's
 * bits), all in registers: the lengths checked and the bits byte-swapped by one shuffle; the
 * exponent field's 10^-k, k and h gathered from tables built once from float_text.c's; the three
 * products rounded to odd (each 64×32-bit product as two _mm256_mul_epu32 of 32×32 bits); the
 * scalar code's compares and its choice between the multiple of 10, the two integers around the
 * float and the closer of them as masks and blends (shortest4; float_text.c's integer case is not
 * needed here: an integer below 2^24 is its own shortest decimal, and the layout prints it alike,
 * which `--all-elems` checks). Then the layout (text4): the 8 low digits as bytes, split 4+4, 2+2,
 * 1+1 by multiplies (the SWAR way); the digit counts from the bytes; per float a 16-byte source
 * (the significant digits, '.', ',', 'e', the exponent, '-') and the byte offset of its layout
 * (for its sign and digits; the table holds each with and without the comma before it), whose
 * entry is a byte shuffle and a length. Float by float only that shuffle and one store (put4).
 * The exponent's digits are computed only when a float of the step needs them (a vector of
 * embeddings has none: every float in fixed notation).
 * Two groups (eight floats) per step: every operation is written once on a pair of registers
 * (w_t), so the two groups' long dependency chains (gather, products, compares, digits, counts)
 * sit side by side in the instruction stream and overlap in the core; the CPU does not overlap
 * two groups computed one after the other on its own. The next step's decimals are found before
 * this step's texts are stored (the texts' loads then never wait on the stores that just wrote
 * their sources). The last four of a vector (or four before a group the path leaves) go through
 * the same code twice over.
 * A group holding a NULL, another length, 0, NaN, an infinity or a power of two whose lower
 * neighbour is closer is left to the scalar path (float_text.c), which prints it one by one.
 * Byte-identical to the scalar path on every bit pattern (`bench_float_text --all-elems`, which
 * runs both over all 2^32 floats; tests/unit/test_vector_bin.c compares them on a sample).
 * Pure; any thread; no allocation (the tables are built once, under pthread_once).
 */
#include "float_text_int.h"

#ifdef P2Q_FT_AVX2
#include <immintrin.h>
#include <pthread.h>
#include <string.h>

#define AVX2 __attribute__((target("avx2")))

/* per exponent field: 10^-k as p2q_ft_g10 holds it, and (k + 100) << 32 | h */
static uint64_t g_of[256];
static uint64_t kh_of[256];
/* per comma (none: the vector's first element), sign, layout and number of significant digits n
   (1..9), at first * 220 + neg * 110 + form * 10 + n (form: e + 4 for fixed notation, e = -4..5; 10
   for d.ddde±XX): the shuffle of the source bytes (text4) into the text, and the text's length
   (at most 16: ",-0.000" and nine digits) */
enum { SRC_DOT = 9, SRC_COMMA = 10, SRC_E = 11, SRC_MINUS = 15 }; /* after 'e': the exponent's sign and two digits */
enum { SRC_ZERO = 13 }; /* the exponent's tens digit: '0' where a layout takes a '0' (|e| <= 5) */
typedef struct {
  uint8_t shuf[16], len, pad[15];
} lay_t;
static lay_t lay[440] __attribute__((aligned(32))); /* at (first * 220 + neg * 110 + form * 10 + n) * 32 bytes */
static pthread_once_t tables_once = PTHREAD_ONCE_INIT;

static void layout_entry(int form, int n, int neg, int comma) {
  uint8_t *s = lay[!comma * 220 + neg * 110 + form * 10 + n].shuf, len = 0;
  memset(s, 0x80, 16);
  if (comma) s[len++] = SRC_COMMA;
  if (neg) s[len++] = SRC_MINUS;
  if (form == 10) { /* d.ddde±XX */
    s[len++] = 0;
    if (n > 1) s[len++] = SRC_DOT;
    for (int j = 1; j < n; j++) s[len++] = (uint8_t)j;
    for (int j = 0; j < 4; j++) s[len++] = (uint8_t)(SRC_E + j);
  } else if (form < 4) { /* 0.000ddd */
    s[len++] = SRC_ZERO, s[len++] = SRC_DOT;
    for (int j = 0; j < 3 - form; j++) s[len++] = SRC_ZERO;
    for (int j = 0; j < n; j++) s[len++] = (uint8_t)j;
  } else { /* ddd000 (the source's digits after the n are '0's) or ddd.ddd */
    int e = form - 4;
    for (int j = 0; j <= e; j++) s[len++] = (uint8_t)j;
    if (n > e + 1) s[len++] = SRC_DOT;
    for (int j = e + 1; j < n; j++) s[len++] = (uint8_t)j;
  }
  lay[!comma * 220 + neg * 110 + form * 10 + n].len = len;
}

static void tables(void) {
  for (int e = 0; e < 256; e++) {
    int k = p2q_ft_exp_k[e];
    g_of[e] = p2q_ft_g10[31 - k];
    kh_of[e] = (uint64_t)(k + 100) << 32 | (uint64_t)p2q_ft_exp_h[e];
  }
  for (int form = 0; form <= 10; form++)
    for (int n = 1; n <= 9; n++)
      for (int x = 0; x < 4; x++) layout_entry(form, n, x & 1, x >> 1);
}

/* Two groups of four side by side (eight floats per step): every operation below is written once
   and runs on both halves, so the two groups' long dependency chains (gather, products, compares,
   digits, counts) sit next to each other in the instruction stream and overlap in the core. */
typedef struct {
  __m256i a, b;
} w_t;

#define WI AVX2 static inline __attribute__((always_inline))
#define W1(n) WI w_t w_##n(w_t x) { return (w_t){_mm256_##n(x.a), _mm256_##n(x.b)}; }
#define W2(n) WI w_t w_##n(w_t x, w_t y) { return (w_t){_mm256_##n(x.a, y.a), _mm256_##n(x.b, y.b)}; }
#define WS(n) WI w_t w_##n(w_t x, int i) { return (w_t){_mm256_##n(x.a, i), _mm256_##n(x.b, i)}; }

W1(abs_epi32) W2(add_epi64) W2(and_si256) W2(andnot_si256) W2(cmpeq_epi64) W2(cmpeq_epi8)
W2(cmpgt_epi64) W2(min_epu32) W2(mul_epu32) W2(mullo_epi16) W2(mullo_epi32) W2(or_si256) W2(sad_epu8)
W2(shuffle_epi8) W2(sllv_epi64) W2(srlv_epi64) W2(sub_epi16) W2(sub_epi32) W2(sub_epi64)
W2(unpackhi_epi64) W2(unpacklo_epi64) W2(xor_si256) WS(slli_epi16) WS(slli_epi32) WS(slli_epi64)
WS(srli_epi16) WS(srli_epi32) WS(srli_epi64)
WI w_t w_blendv_epi8(w_t x, w_t y, w_t m) {
  return (w_t){_mm256_blendv_epi8(x.a, y.a, m.a), _mm256_blendv_epi8(x.b, y.b, m.b)};
}
WI w_t w_i64gather_epi64(const long long *t, w_t i, int s) {
  (void)s; /* 8 */
  return (w_t){_mm256_i64gather_epi64(t, i.a, 8), _mm256_i64gather_epi64(t, i.b, 8)};
}
WI w_t w_same(__m256i x) { return (w_t){x, x}; }
#define w_set1_epi8(v) w_same(_mm256_set1_epi8(v))
#define w_set1_epi16(v) w_same(_mm256_set1_epi16(v))
#define w_set1_epi32(v) w_same(_mm256_set1_epi32(v))
#define w_setzero_si256() w_same(_mm256_setzero_si256())
#define K(v) w_same(_mm256_set1_epi64x((long long)(v)))

/* g * cp rounded to odd, per lane (g 64 bits, cp < 2^31): the integer part of the product over
   2^64, its low bit set when the next 32 bits are not 0 or 1 (as float_text.c's round_to_odd). */
AVX2 static inline w_t round_to_odd4(w_t g, w_t cp) {
  w_t lo = w_mul_epu32(g, cp), hi = w_mul_epu32(w_srli_epi64(g, 32), cp);
  w_t s = w_add_epi64(hi, w_srli_epi64(lo, 32)); /* the product >> 32, exactly */
  w_t y1 = w_srli_epi64(s, 32), y0 = w_and_si256(s, K(0xffffffffu));
  return w_or_si256(y1, w_and_si256(w_cmpgt_epi64(y0, K(1)), K(1)));
}

/* The decimal of each lane's float (c its significand, ie its exponent field): D, with
   *e10 = its exponent + 100 (float_text.c's shortest(), but for the lower neighbour never closer). */
AVX2 static inline w_t shortest4(w_t c, w_t ie, w_t *e10) {
  w_t g = w_i64gather_epi64((const long long *)g_of, ie, 8);
  w_t kh = w_i64gather_epi64((const long long *)kh_of, ie, 8);
  w_t h = w_and_si256(kh, K(0xff)), c4 = w_slli_epi64(c, 2);
  w_t vbl = round_to_odd4(g, w_sllv_epi64(w_sub_epi64(c4, K(2)), h));
  w_t vb = round_to_odd4(g, w_sllv_epi64(c4, h));
  w_t vbr = round_to_odd4(g, w_sllv_epi64(w_add_epi64(c4, K(2)), h));
  w_t lower = w_add_epi64(vbl, K(1)), upper = w_sub_epi64(vbr, K(1)); /* ends excluded */
  w_t s = w_srli_epi64(vb, 2);
  /* the one multiple of 10 the interval can hold (when s >= 10), ×40 = 4 × the scaled value */
  w_t sp = w_srli_epi64(w_mul_epu32(s, K(0xcccccccdu)), 35);
  w_t t = w_add_epi64(w_slli_epi64(sp, 5), w_slli_epi64(sp, 3));
  w_t up_out = w_cmpgt_epi64(lower, t), wp_out = w_cmpgt_epi64(w_add_epi64(t, K(40)), upper);
  w_t take1 = w_and_si256(w_cmpgt_epi64(s, K(9)), w_xor_si256(up_out, wp_out));
  w_t d1 = w_add_epi64(sp, w_andnot_si256(wp_out, K(1)));
  /* else the one of s and s + 1 inside, else the closer (ties to even) */
  w_t s4 = w_slli_epi64(s, 2);
  w_t u_out = w_cmpgt_epi64(lower, s4), w_out = w_cmpgt_epi64(w_add_epi64(s4, K(4)), upper);
  w_t d2 = w_add_epi64(s, w_andnot_si256(w_out, K(1)));
  w_t mid = w_add_epi64(s4, K(2));
  w_t odd = w_cmpeq_epi64(w_and_si256(s, K(1)), K(1));
  w_t up = w_or_si256(w_cmpgt_epi64(vb, mid), w_and_si256(w_cmpeq_epi64(vb, mid), odd));
  w_t d = w_sub_epi64(s, up);
  d = w_blendv_epi8(d, d2, w_xor_si256(u_out, w_out));
  d = w_blendv_epi8(d, d1, take1);
  *e10 = w_add_epi64(w_srli_epi64(kh, 32), w_and_si256(take1, K(1)));
  return d;
}

/* The 8 decimal digits of each lane's x < 10^8 as bytes 0..9, the first digit in the low byte:
   split into halves of 4 digits, of 2, of 1, each by a multiply and a shift. */
AVX2 static inline w_t digits8x4(w_t x) {
  w_t a = w_srli_epi64(w_mul_epu32(x, K(0xd1b71759u)), 45); /* x / 10000 */
  w_t v = w_or_si256(a, w_slli_epi64(w_sub_epi64(x, w_mul_epu32(a, K(10000))), 32));
  a = w_srli_epi32(w_mullo_epi32(v, w_set1_epi32(10486)), 20); /* / 100, each < 10^4 */
  v = w_or_si256(a, w_slli_epi32(w_sub_epi32(v, w_mullo_epi32(a, w_set1_epi32(100))), 16));
  a = w_srli_epi16(w_mullo_epi16(v, w_set1_epi16(103)), 10); /* / 10, each < 100 */
  return w_or_si256(a, w_slli_epi16(w_sub_epi16(v, w_mullo_epi16(a, w_set1_epi16(10))), 8));
}

/* What float_text.c's layout() computes float by float, four at a time, for D (< 2 *
   10^8; nine: D >= 10^8), e10 = its exponent + 100 and neg (the float's sign mask): per lane a
   16-byte source, the significant digits left-aligned ('0's after them), '.', ',', 'e', the
   exponent's sign and two digits, '-', stored at src[h] + 0, 32, 16, 48 for lanes 0..3 of half h;
   in meta[h] the byte offset of the layout's entry in lay (with the comma). The digit counts come
   from the digit bytes: the bytes up to the last nonzero one and from the first nonzero one,
   counted by one _mm256_sad_epu8. */
AVX2 static inline void text4(w_t d, w_t e10, w_t nine, w_t neg, uint8_t src[2][64], uint64_t meta[2][4]) {
  w_t zero = w_setzero_si256(), z8 = K(P2Q_FT_ZEROS);
  w_t dg = digits8x4(w_sub_epi64(d, w_and_si256(nine, K(100000000))));
  w_t nz = w_xor_si256(w_cmpeq_epi8(dg, zero), w_set1_epi8(-1));
  w_t t = w_or_si256(nz, w_srli_epi64(nz, 8)), u = w_or_si256(nz, w_slli_epi64(nz, 8));
  t = w_or_si256(t, w_srli_epi64(t, 16)), u = w_or_si256(u, w_slli_epi64(u, 16));
  t = w_or_si256(t, w_srli_epi64(t, 32)), u = w_or_si256(u, w_slli_epi64(u, 32));
  w_t ab = w_sad_epu8(w_or_si256(w_and_si256(t, w_set1_epi8(1)), w_and_si256(u, w_set1_epi8(16))), zero);
  w_t a = w_and_si256(ab, K(15)), b = w_srli_epi64(ab, 4); /* to the last nonzero; from the first */
  w_t nd = w_blendv_epi8(b, K(9), nine); /* digits; significant ones: */
  w_t n = w_blendv_epi8(w_sub_epi64(w_add_epi64(a, b), K(8)), w_add_epi64(a, K(1)), nine);
  w_t e = w_sub_epi64(w_add_epi64(e10, nd), K(101)); /* the first digit's exponent */
  w_t lo = w_blendv_epi8(w_srlv_epi64(dg, w_slli_epi64(w_sub_epi64(K(8), b), 3)),
                         w_add_epi64(w_slli_epi64(dg, 8), K(1)), nine);
  w_t hi = w_add_epi64(w_and_si256(nine, w_srli_epi64(dg, 56)), K(0x2d30302b652c2e30ull)); /* ".,e+00-" */
  w_t fixed = w_and_si256(w_cmpgt_epi64(e, K(-5)), w_cmpgt_epi64(K(6), e));
  if (!_mm256_testc_si256(_mm256_and_si256(fixed.a, fixed.b), _mm256_set1_epi8(-1))) { /* an exponent to write */
    w_t ae = w_abs_epi32(e); /* |e| <= 45 in the low half (the high half shifted out below) */
    w_t tens = w_srli_epi64(w_mul_epu32(ae, K(205)), 11);
    w_t ones = w_sub_epi64(ae, w_add_epi64(w_slli_epi64(tens, 3), w_slli_epi64(tens, 1)));
    hi = w_add_epi64(hi, w_and_si256(w_cmpgt_epi64(zero, e), K(2ull << 32))); /* '-' */
    hi = w_add_epi64(hi, w_or_si256(w_slli_epi64(tens, 40), w_slli_epi64(ones, 48)));
  }
  w_t form = w_blendv_epi8(K(10), w_add_epi64(e, K(4)), fixed);
  w_t idx = w_add_epi64(w_add_epi64(w_slli_epi64(form, 3), w_slli_epi64(form, 1)), n);
  idx = w_slli_epi64(w_add_epi64(idx, w_and_si256(neg, K(110))), 5); /* the signed layouts; bytes into lay */
  lo = w_add_epi64(lo, z8);
  w_t s0 = w_unpacklo_epi64(lo, hi), s1 = w_unpackhi_epi64(lo, hi);
  _mm256_storeu_si256((__m256i *)(void *)src[0], s0.a);
  _mm256_storeu_si256((__m256i *)(void *)(src[0] + 32), s1.a);
  _mm256_storeu_si256((__m256i *)(void *)src[1], s0.b);
  _mm256_storeu_si256((__m256i *)(void *)(src[1] + 32), s1.b);
  _mm256_storeu_si256((__m256i *)(void *)meta[0], idx.a);
  _mm256_storeu_si256((__m256i *)(void *)meta[1], idx.b);
}

/* The eight elements at p (four) and q (four more; q = p: the same four twice): 0 when one is not
   for this path, else text4's src and meta of both. */
AVX2 static int group8(const unsigned char *p, const unsigned char *q, uint8_t src[2][64], uint64_t meta[2][4]) {
  w_t raw = {_mm256_loadu_si256((const __m256i *)(const void *)p),
             _mm256_loadu_si256((const __m256i *)(const void *)q)};
  w_t zero = w_setzero_si256();
  w_t len_ok = w_cmpeq_epi64(w_and_si256(raw, K(0xffffffffu)), K(0x04000000)); /* 00 00 00 04 */
  w_t bits = w_shuffle_epi8(raw, w_same(_mm256_setr_epi8(7, 6, 5, 4, -1, -1, -1, -1, 15, 14, 13, 12, -1, -1, -1, -1,
                                                          7, 6, 5, 4, -1, -1, -1, -1, 15, 14, 13, 12, -1, -1, -1, -1)));
  w_t ie = w_and_si256(w_srli_epi64(bits, 23), K(0xff)), im = w_and_si256(bits, K(0x7fffff));
  /* a power of two whose lower neighbour is closer (ie > 1) or ±0 (ie = 0): im = 0, ie != 1 */
  w_t bad = w_andnot_si256(w_cmpeq_epi64(ie, K(1)), w_cmpeq_epi64(im, zero));
  bad = w_or_si256(bad, w_cmpeq_epi64(ie, K(0xff))); /* NaN, ±Infinity */
  w_t ok = w_andnot_si256(bad, len_ok);
  if (!_mm256_testc_si256(_mm256_and_si256(ok.a, ok.b), _mm256_set1_epi8(-1))) return 0;
  w_t c = w_or_si256(im, w_slli_epi64(w_min_epu32(ie, K(1)), 23)); /* the hidden bit */
  w_t e10, d = shortest4(c, ie, &e10);
  text4(d, e10, w_cmpgt_epi64(d, K(99999999)), w_cmpgt_epi64(zero, w_slli_epi64(bits, 32)), src, meta);
  return 1;
}

/* Lay out the four texts of a group (one half of group8's src and meta) at o, the first after a comma
   unless it is the vector's first element; returns the end. */
AVX2 static inline char *put4(char *o, const uint8_t src[64], const uint64_t meta[4], int first) {
  for (int l = 0; l < 4; l++) { /* the text (its comma and sign too): a shuffle of the source, one store */
    static const int at[4] = {0, 32, 16, 48};
    const lay_t *x = (const lay_t *)(const void *)((const char *)lay + meta[l] + (l || !first ? 0 : 220 * sizeof *lay));
    __m128i text = _mm_shuffle_epi8(_mm_load_si128((const __m128i *)(const void *)(src + at[l])),
                                    _mm_load_si128((const __m128i *)(const void *)x->shuf));
    _mm_storeu_si128((__m128i *)(void *)o, text);
    o += x->len;
  }
  return o;
}

/* The next elements' decimals into src and meta: eight (group8) while eight are left and all are
   for this path, else the first four alone; returns how many (8, 4, or 0: none for this path). */
AVX2 static inline int step8(const unsigned char *p, const unsigned char *end, int32_t left, uint8_t src[2][64],
                             uint64_t meta[2][4]) {
  if (left < 4 || end - p < 32) return 0;
  int two = left >= 8 && end - p >= 64;
  if (group8(p, two ? p + 32 : p, src, meta)) return two ? 8 : 4;
  return two && group8(p, p, src, meta) ? 4 : 0;
}

AVX2 char *p2q_ft_elems_avx2(char *o, const unsigned char **pp, const unsigned char *end, int32_t *i,
                              int32_t count) {
  pthread_once(&tables_once, tables);
  const unsigned char *p = *pp;
  int32_t j = *i;
  uint8_t src[2][2][64] __attribute__((aligned(32)));
  uint64_t meta[2][2][4] __attribute__((aligned(32)));
  /* one step ahead: the next decimals are found while this step's texts are stored (and the
     texts' loads never wait on the stores that just wrote their sources) */
  int n = step8(p, end, count - j, src[0], meta[0]), cur = 0;
  while (n) {
    int next = step8(p + 8 * n, end, count - j - n, src[cur ^ 1], meta[cur ^ 1]);
    o = put4(o, src[cur][0], meta[cur][0], j == 0);
    if (n == 8) o = put4(o, src[cur][1], meta[cur][1], 0);
    p += 8 * n, j += n, n = next, cur ^= 1;
  }
  *pp = p, *i = j;
  return o;
}
#endif

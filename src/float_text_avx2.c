/*
 * float_text_avx2.c — float_text.c's printer for four floats at a time in AVX2 registers, one
 * 64-bit lane per float, without a branch per float; float_text.c calls it where the CPU has
 * AVX2 (__builtin_cpu_supports, asked once), so the .deb still runs on any x86-64; on other
 * architectures (or with -DP2Q_FT_NO_AVX2) this file is empty.
 *
 * Per group of four array_send() elements (32 bytes: a big-endian length 4, then the float's
 * bits), all in registers: the lengths checked and the bits byte-swapped by one shuffle; the
 * exponent field's 10^-k, k and h gathered from tables built once from float_text.c's; the three
 * products rounded to odd (each 64×32-bit product as two _mm256_mul_epu32 of 32×32 bits); the
 * scalar code's compares and its choice between the multiple of 10, the two integers around the
 * float and the closer of them as masks and blends; integers below 2^24 as float4out prints them
 * (shortest4). Then the layout (text4): the 8 low digits as bytes, split 4+4, 2+2, 1+1 by
 * multiplies (the SWAR way); the digit counts from the bytes; per float a 16-byte source (the
 * significant digits, '.', '0', 'e', the exponent) and the index of its layout, whose table entry
 * is a byte shuffle. Float by float only the comma, the sign, that shuffle and one store (put4).
 * The next group's registers are computed before the current group's texts are stored: the two
 * are independent, and the one chain of a group (gather, products, compares, digits) is too long
 * for the CPU to overlap two groups on its own (~15 % per vector).
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
/* per layout and number of significant digits n (1..9), at form * 10 + n (form: e + 4 for fixed
   notation, e = -4..5; 10 for d.ddde±XX): the shuffle of the source bytes (text4) into the
   text, and the text's length */
enum { SRC_DOT = 9, SRC_ZERO = 10, SRC_E = 11 }; /* then the exponent's sign and two digits */
static uint8_t lay_shuf[110][16] __attribute__((aligned(16)));
static uint8_t lay_len[110];
static pthread_once_t tables_once = PTHREAD_ONCE_INIT;

static void layout_entry(int form, int n) {
  uint8_t *s = lay_shuf[form * 10 + n], len = 0;
  memset(s, 0x80, 16);
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
  lay_len[form * 10 + n] = len;
}

static void tables(void) {
  for (int e = 0; e < 256; e++) {
    int k = p2q_ft_exp_k[e];
    g_of[e] = p2q_ft_g10[31 - k];
    kh_of[e] = (uint64_t)(k + 100) << 32 | (uint64_t)p2q_ft_exp_h[e];
  }
  for (int form = 0; form <= 10; form++)
    for (int n = 1; n <= 9; n++) layout_entry(form, n);
}

#define K(v) _mm256_set1_epi64x((long long)(v))

/* g * cp rounded to odd, per lane (g 64 bits, cp < 2^31): the integer part of the product over
   2^64, its low bit set when the next 32 bits are not 0 or 1 (as float_text.c's round_to_odd). */
AVX2 static inline __m256i round_to_odd4(__m256i g, __m256i cp) {
  __m256i lo = _mm256_mul_epu32(g, cp), hi = _mm256_mul_epu32(_mm256_srli_epi64(g, 32), cp);
  __m256i s = _mm256_add_epi64(hi, _mm256_srli_epi64(lo, 32)); /* the product >> 32, exactly */
  __m256i y1 = _mm256_srli_epi64(s, 32), y0 = _mm256_and_si256(s, K(0xffffffffu));
  return _mm256_or_si256(y1, _mm256_and_si256(_mm256_cmpgt_epi64(y0, K(1)), K(1)));
}

/* The decimal of each lane's float (c its significand, ie its exponent field): D, with
   *e10 = its exponent + 100 (float_text.c's shortest(), but for the lower neighbour never closer). */
AVX2 static inline __m256i shortest4(__m256i c, __m256i ie, __m256i *e10) {
  __m256i sh = _mm256_sub_epi64(K(150), ie); /* an integer below 2^24: its low sh bits are 0 */
  __m256i in_rng = _mm256_andnot_si256(_mm256_cmpgt_epi64(ie, K(150)), _mm256_cmpgt_epi64(ie, K(126)));
  __m256i low = _mm256_sub_epi64(_mm256_sllv_epi64(K(1), sh), K(1));
  __m256i isint = _mm256_and_si256(in_rng, _mm256_cmpeq_epi64(_mm256_and_si256(c, low), _mm256_setzero_si256()));
  __m256i g = _mm256_i64gather_epi64((const long long *)g_of, ie, 8);
  __m256i kh = _mm256_i64gather_epi64((const long long *)kh_of, ie, 8);
  __m256i h = _mm256_and_si256(kh, K(0xff)), c4 = _mm256_slli_epi64(c, 2);
  __m256i vbl = round_to_odd4(g, _mm256_sllv_epi64(_mm256_sub_epi64(c4, K(2)), h));
  __m256i vb = round_to_odd4(g, _mm256_sllv_epi64(c4, h));
  __m256i vbr = round_to_odd4(g, _mm256_sllv_epi64(_mm256_add_epi64(c4, K(2)), h));
  __m256i lower = _mm256_add_epi64(vbl, K(1)), upper = _mm256_sub_epi64(vbr, K(1)); /* ends excluded */
  __m256i s = _mm256_srli_epi64(vb, 2);
  /* the one multiple of 10 the interval can hold (when s >= 10), ×40 = 4 × the scaled value */
  __m256i sp = _mm256_srli_epi64(_mm256_mul_epu32(s, K(0xcccccccdu)), 35);
  __m256i t = _mm256_add_epi64(_mm256_slli_epi64(sp, 5), _mm256_slli_epi64(sp, 3));
  __m256i up_out = _mm256_cmpgt_epi64(lower, t), wp_out = _mm256_cmpgt_epi64(_mm256_add_epi64(t, K(40)), upper);
  __m256i take1 = _mm256_and_si256(_mm256_cmpgt_epi64(s, K(9)), _mm256_xor_si256(up_out, wp_out));
  __m256i d1 = _mm256_add_epi64(sp, _mm256_andnot_si256(wp_out, K(1)));
  /* else the one of s and s + 1 inside, else the closer (ties to even) */
  __m256i s4 = _mm256_slli_epi64(s, 2);
  __m256i u_out = _mm256_cmpgt_epi64(lower, s4), w_out = _mm256_cmpgt_epi64(_mm256_add_epi64(s4, K(4)), upper);
  __m256i d2 = _mm256_add_epi64(s, _mm256_andnot_si256(w_out, K(1)));
  __m256i mid = _mm256_add_epi64(s4, K(2));
  __m256i odd = _mm256_cmpeq_epi64(_mm256_and_si256(s, K(1)), K(1));
  __m256i up = _mm256_or_si256(_mm256_cmpgt_epi64(vb, mid), _mm256_and_si256(_mm256_cmpeq_epi64(vb, mid), odd));
  __m256i d = _mm256_sub_epi64(s, up);
  d = _mm256_blendv_epi8(d, d2, _mm256_xor_si256(u_out, w_out));
  d = _mm256_blendv_epi8(d, d1, take1);
  d = _mm256_blendv_epi8(d, _mm256_srlv_epi64(c, sh), isint);
  __m256i e = _mm256_add_epi64(_mm256_srli_epi64(kh, 32), _mm256_and_si256(take1, K(1)));
  *e10 = _mm256_blendv_epi8(e, K(100), isint);
  return d;
}

/* The 8 decimal digits of each lane's x < 10^8 as bytes 0..9, the first digit in the low byte:
   split into halves of 4 digits, of 2, of 1, each by a multiply and a shift. */
AVX2 static inline __m256i digits8x4(__m256i x) {
  __m256i a = _mm256_srli_epi64(_mm256_mul_epu32(x, K(0xd1b71759u)), 45); /* x / 10000 */
  __m256i v = _mm256_or_si256(a, _mm256_slli_epi64(_mm256_sub_epi64(x, _mm256_mul_epu32(a, K(10000))), 32));
  a = _mm256_srli_epi32(_mm256_mullo_epi32(v, _mm256_set1_epi32(10486)), 20); /* / 100, each < 10^4 */
  v = _mm256_or_si256(a, _mm256_slli_epi32(_mm256_sub_epi32(v, _mm256_mullo_epi32(a, _mm256_set1_epi32(100))), 16));
  a = _mm256_srli_epi16(_mm256_mullo_epi16(v, _mm256_set1_epi16(103)), 10); /* / 10, each < 100 */
  return _mm256_or_si256(a, _mm256_slli_epi16(_mm256_sub_epi16(v, _mm256_mullo_epi16(a, _mm256_set1_epi16(10))), 8));
}

/* What float_text.c's layout() computes float by float, four at a time, for D (< 2 *
   10^8; nine: D >= 10^8) and e10 = its exponent + 100: per lane a 16-byte source, the
   significant digits left-aligned ('0's after them), '.', '0', 'e', the exponent's sign and two
   digits, stored at src + 0, 32, 16, 48 for lanes 0..3; in meta the layout's table entry
   (form * 10 + n). The digit counts come from the digit bytes: the bytes up to the last nonzero
   one and from the first nonzero one, counted by one _mm256_sad_epu8. */
AVX2 static inline void text4(__m256i d, __m256i e10, __m256i nine, uint8_t src[64], uint64_t meta[4]) {
  __m256i zero = _mm256_setzero_si256(), z8 = K(P2Q_FT_ZEROS);
  __m256i dg = digits8x4(_mm256_sub_epi64(d, _mm256_and_si256(nine, K(100000000))));
  __m256i nz = _mm256_xor_si256(_mm256_cmpeq_epi8(dg, zero), _mm256_set1_epi8(-1));
  __m256i t = _mm256_or_si256(nz, _mm256_srli_epi64(nz, 8)), u = _mm256_or_si256(nz, _mm256_slli_epi64(nz, 8));
  t = _mm256_or_si256(t, _mm256_srli_epi64(t, 16)), u = _mm256_or_si256(u, _mm256_slli_epi64(u, 16));
  t = _mm256_or_si256(t, _mm256_srli_epi64(t, 32)), u = _mm256_or_si256(u, _mm256_slli_epi64(u, 32));
  __m256i ab = _mm256_sad_epu8(_mm256_or_si256(_mm256_and_si256(t, _mm256_set1_epi8(1)), _mm256_and_si256(u, _mm256_set1_epi8(16))), zero);
  __m256i a = _mm256_and_si256(ab, K(15)), b = _mm256_srli_epi64(ab, 4); /* to the last nonzero; from the first */
  __m256i nd = _mm256_blendv_epi8(b, K(9), nine); /* digits; significant ones: */
  __m256i n = _mm256_blendv_epi8(_mm256_sub_epi64(_mm256_add_epi64(a, b), K(8)), _mm256_add_epi64(a, K(1)), nine);
  __m256i e = _mm256_sub_epi64(_mm256_add_epi64(e10, nd), K(101)); /* the first digit's exponent */
  __m256i lo = _mm256_blendv_epi8(_mm256_srlv_epi64(dg, _mm256_slli_epi64(_mm256_sub_epi64(K(8), b), 3)),
                                  _mm256_add_epi64(_mm256_slli_epi64(dg, 8), K(1)), nine);
  __m256i ae = _mm256_and_si256(_mm256_abs_epi32(e), K(0xffffffffu)); /* |e| <= 45 */
  __m256i tens = _mm256_srli_epi64(_mm256_mul_epu32(ae, K(205)), 11);
  __m256i ones = _mm256_sub_epi64(ae, _mm256_add_epi64(_mm256_slli_epi64(tens, 3), _mm256_slli_epi64(tens, 1)));
  __m256i neg = _mm256_cmpgt_epi64(zero, e);
  __m256i hi = _mm256_add_epi64(_mm256_and_si256(nine, _mm256_srli_epi64(dg, 56)), K(0x0000002b65302e30ull)); /* "0.0e+" */
  hi = _mm256_add_epi64(hi, _mm256_and_si256(neg, K(2ull << 32)));                                             /* '-' */
  hi = _mm256_add_epi64(hi, _mm256_or_si256(_mm256_slli_epi64(tens, 40), _mm256_slli_epi64(ones, 48)));
  hi = _mm256_add_epi64(hi, K(0x3030ull << 40));
  __m256i fixed = _mm256_and_si256(_mm256_cmpgt_epi64(e, K(-5)), _mm256_cmpgt_epi64(K(6), e));
  __m256i form = _mm256_blendv_epi8(K(10), _mm256_add_epi64(e, K(4)), fixed);
  __m256i idx = _mm256_add_epi64(_mm256_add_epi64(_mm256_slli_epi64(form, 3), _mm256_slli_epi64(form, 1)), n);
  lo = _mm256_add_epi64(lo, z8);
  _mm256_storeu_si256((__m256i *)(void *)src, _mm256_unpacklo_epi64(lo, hi));
  _mm256_storeu_si256((__m256i *)(void *)(src + 32), _mm256_unpackhi_epi64(lo, hi));
  _mm256_storeu_si256((__m256i *)(void *)meta, idx);
}

/* The four elements at p: 0 when one is not for this path, else text4's src and meta, with the
   float's sign at bit 8 of meta. */
AVX2 static int group4(const unsigned char *p, uint8_t src[64], uint64_t meta[4]) {
  __m256i raw = _mm256_loadu_si256((const __m256i *)(const void *)p), zero = _mm256_setzero_si256();
  __m256i len_ok = _mm256_cmpeq_epi64(_mm256_and_si256(raw, K(0xffffffffu)), K(0x04000000)); /* 00 00 00 04 */
  __m256i bits = _mm256_shuffle_epi8(raw, _mm256_setr_epi8(7, 6, 5, 4, -1, -1, -1, -1, 15, 14, 13, 12, -1, -1, -1, -1,
                                                           7, 6, 5, 4, -1, -1, -1, -1, 15, 14, 13, 12, -1, -1, -1, -1));
  __m256i ie = _mm256_and_si256(_mm256_srli_epi64(bits, 23), K(0xff)), im = _mm256_and_si256(bits, K(0x7fffff));
  __m256i closer = _mm256_and_si256(_mm256_cmpeq_epi64(im, zero), _mm256_cmpgt_epi64(ie, K(1)));
  __m256i bad = _mm256_or_si256(closer, _mm256_cmpeq_epi64(ie, K(0xff))); /* NaN, ±Infinity */
  bad = _mm256_or_si256(bad, _mm256_cmpeq_epi64(_mm256_and_si256(bits, K(0x7fffffffu)), zero)); /* ±0 */
  if (_mm256_movemask_epi8(bad) | ~_mm256_movemask_epi8(len_ok)) return 0;
  __m256i c = _mm256_or_si256(im, _mm256_slli_epi64(_mm256_and_si256(_mm256_cmpgt_epi64(ie, zero), K(1)), 23));
  __m256i e10, d = shortest4(c, ie, &e10);
  text4(d, e10, _mm256_cmpgt_epi64(d, K(99999999)), src, meta);
  __m256i m = _mm256_loadu_si256((const __m256i *)(const void *)meta);
  _mm256_storeu_si256((__m256i *)(void *)meta, _mm256_or_si256(m, _mm256_slli_epi64(_mm256_srli_epi64(bits, 31), 8)));
  return 1;
}

/* Lay out the four texts of a group (group4's src and meta) at o, the first after a comma
   unless it is the vector's first element; returns the end. */
AVX2 static inline char *put4(char *o, const uint8_t src[64], const uint64_t meta[4], int first) {
  for (int l = 0; l < 4; l++) { /* ",", "-", the text: a shuffle of the source, one store */
    static const int at[4] = {0, 32, 16, 48};
    *o = ',';
    o += !first || l;
    *o = '-';
    o += meta[l] >> 8;
    unsigned x = (unsigned)meta[l] & 0xff;
    __m128i text = _mm_shuffle_epi8(_mm_load_si128((const __m128i *)(const void *)(src + at[l])),
                                    _mm_load_si128((const __m128i *)(const void *)lay_shuf[x]));
    _mm_storeu_si128((__m128i *)(void *)o, text);
    o += lay_len[x];
  }
  return o;
}

AVX2 char *p2q_ft_elems_avx2(char *o, const unsigned char **pp, const unsigned char *end, int32_t *i,
                              int32_t count) {
  pthread_once(&tables_once, tables);
  const unsigned char *p = *pp;
  int32_t j = *i;
  uint8_t src[2][64] __attribute__((aligned(32)));
  uint64_t meta[2][4] __attribute__((aligned(32)));
  /* one group ahead: its decimals are found while the previous group's texts are stored */
  int ok = count - j >= 4 && end - p >= 32 && group4(p, src[0], meta[0]), cur = 0;
  while (ok) {
    int next = count - j >= 8 && end - p >= 64 && group4(p + 32, src[cur ^ 1], meta[cur ^ 1]);
    o = put4(o, src[cur], meta[cur], j == 0);
    p += 32, j += 4, ok = next, cur ^= 1;
  }
  *pp = p, *i = j;
  return o;
}
#endif

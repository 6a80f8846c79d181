/*
 * float_text.c — a float4 as the text PostgreSQL's float4out prints when extra_float_digits > 0
 * (see float_text.h). Used by vector_bin.c to rebuild, byte for byte, the JSON text of a vector a
 * capture trigger sent in binary: the snapshot's `_hash` and the Qdrant request are then the
 * same as when the trigger printed the vector itself.
 *
 * What is printed (PostgreSQL's f2s.c, Ryū built without STRICTLY_SHORTEST): the decimal with
 * the fewest significant digits strictly inside the float's rounding interval (the midpoints to
 * its neighbours are never accepted, even for an even mantissa), the closest to the float when
 * several have that length (ties to an even last digit); floats that are integers below 2^24
 * print as such. Layout as float4out's: fixed notation for decimal exponents -4..5, else
 * d.ddde±XX.
 *
 * Method: Schubfach (Raffaello Giulietti, "The Schubfach way to render doubles", 2020) for
 * binary32: the float and its interval's two ends, times 4, are scaled by 10^-k (k = floor of
 * the float's decimal exponent) with one 64×64→128-bit product each against a 64-bit
 * overestimate of 10^-k and rounded to odd (the low bit says "not exact"), which decides with
 * integer compares whether the one multiple of 10 the interval can hold is in it, else which of
 * the two integers around the float is; k and the shift come from a table per exponent field.
 * The digits (at most 9) are assembled 8 at a time in one 64-bit register from a two-digit table
 * and their trailing zeros counted there. Checked against this file's previous exact-integer
 * Ryū search on all 2^32 bit patterns (bench/bench_float_text.c --all), which was checked against
 * PostgreSQL 15's float4out on 7.7 million floats.
 * Pure; any thread; no allocation.
 */
#include "pg2qdrant/cpu.h"
#include "pg2qdrant/float_text.h"

#include <string.h>

#include "float_text_int.h"

typedef unsigned __int128 u128;

const uint64_t p2q_ft_g10[77] = {
    0x81ceb32c4b43fcf5u, /* -31 */
    0xa2425ff75e14fc32u, /* -30 */
    0xcad2f7f5359a3b3fu, /* -29 */
    0xfd87b5f28300ca0eu, /* -28 */
    0x9e74d1b791e07e49u, /* -27 */
    0xc612062576589ddbu, /* -26 */
    0xf79687aed3eec552u, /* -25 */
    0x9abe14cd44753b53u, /* -24 */
    0xc16d9a0095928a28u, /* -23 */
    0xf1c90080baf72cb2u, /* -22 */
    0x971da05074da7befu, /* -21 */
    0xbce5086492111aebu, /* -20 */
    0xec1e4a7db69561a6u, /* -19 */
    0x9392ee8e921d5d08u, /* -18 */
    0xb877aa3236a4b44au, /* -17 */
    0xe69594bec44de15cu, /* -16 */
    0x901d7cf73ab0acdau, /* -15 */
    0xb424dc35095cd810u, /* -14 */
    0xe12e13424bb40e14u, /* -13 */
    0x8cbccc096f5088ccu, /* -12 */
    0xafebff0bcb24aaffu, /* -11 */
    0xdbe6fecebdedd5bfu, /* -10 */
    0x89705f4136b4a598u, /* -9 */
    0xabcc77118461cefdu, /* -8 */
    0xd6bf94d5e57a42bdu, /* -7 */
    0x8637bd05af6c69b6u, /* -6 */
    0xa7c5ac471b478424u, /* -5 */
    0xd1b71758e219652cu, /* -4 */
    0x83126e978d4fdf3cu, /* -3 */
    0xa3d70a3d70a3d70bu, /* -2 */
    0xcccccccccccccccdu, /* -1 */
    0x8000000000000000u, /* 0 */
    0xa000000000000000u, /* 1 */
    0xc800000000000000u, /* 2 */
    0xfa00000000000000u, /* 3 */
    0x9c40000000000000u, /* 4 */
    0xc350000000000000u, /* 5 */
    0xf424000000000000u, /* 6 */
    0x9896800000000000u, /* 7 */
    0xbebc200000000000u, /* 8 */
    0xee6b280000000000u, /* 9 */
    0x9502f90000000000u, /* 10 */
    0xba43b74000000000u, /* 11 */
    0xe8d4a51000000000u, /* 12 */
    0x9184e72a00000000u, /* 13 */
    0xb5e620f480000000u, /* 14 */
    0xe35fa931a0000000u, /* 15 */
    0x8e1bc9bf04000000u, /* 16 */
    0xb1a2bc2ec5000000u, /* 17 */
    0xde0b6b3a76400000u, /* 18 */
    0x8ac7230489e80000u, /* 19 */
    0xad78ebc5ac620000u, /* 20 */
    0xd8d726b7177a8000u, /* 21 */
    0x878678326eac9000u, /* 22 */
    0xa968163f0a57b400u, /* 23 */
    0xd3c21bcecceda100u, /* 24 */
    0x84595161401484a0u, /* 25 */
    0xa56fa5b99019a5c8u, /* 26 */
    0xcecb8f27f4200f3au, /* 27 */
    0x813f3978f8940985u, /* 28 */
    0xa18f07d736b90be6u, /* 29 */
    0xc9f2c9cd04674edfu, /* 30 */
    0xfc6f7c4045812297u, /* 31 */
    0x9dc5ada82b70b59eu, /* 32 */
    0xc5371912364ce306u, /* 33 */
    0xf684df56c3e01bc7u, /* 34 */
    0x9a130b963a6c115du, /* 35 */
    0xc097ce7bc90715b4u, /* 36 */
    0xf0bdc21abb48db21u, /* 37 */
    0x96769950b50d88f5u, /* 38 */
    0xbc143fa4e250eb32u, /* 39 */
    0xeb194f8e1ae525feu, /* 40 */
    0x92efd1b8d0cf37bfu, /* 41 */
    0xb7abc627050305aeu, /* 42 */
    0xe596b7b0c643c71au, /* 43 */
    0x8f7e32ce7bea5c70u, /* 44 */
    0xb35dbf821ae4f38cu, /* 45 */
};

const char p2q_ft_pairs[201] = "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
                                "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
                                "8081828384858687888990919293949596979899";

/* k = floor(q log10 2) and h = q + floor(-k log2 10) + 1 of each exponent field (q = field - 150,
   -149 for denormals), so the common path reads them instead of computing them (a chain of two
   multiplications before the table lookup of g: ~40 % of the time for a vector) */
const int8_t p2q_ft_exp_k[256] = {
    -45, -45, -45, -45, -44, -44, -44, -44, -43, -43, -43, -42, -42, -42, -41, -41,
    -41, -41, -40, -40, -40, -39, -39, -39, -38, -38, -38, -38, -37, -37, -37, -36,
    -36, -36, -35, -35, -35, -35, -34, -34, -34, -33, -33, -33, -32, -32, -32, -32,
    -31, -31, -31, -30, -30, -30, -29, -29, -29, -28, -28, -28, -28, -27, -27, -27,
    -26, -26, -26, -25, -25, -25, -25, -24, -24, -24, -23, -23, -23, -22, -22, -22,
    -22, -21, -21, -21, -20, -20, -20, -19, -19, -19, -19, -18, -18, -18, -17, -17,
    -17, -16, -16, -16, -16, -15, -15, -15, -14, -14, -14, -13, -13, -13, -13, -12,
    -12, -12, -11, -11, -11, -10, -10, -10, -10, -9, -9, -9, -8, -8, -8, -7,
    -7, -7, -7, -6, -6, -6, -5, -5, -5, -4, -4, -4, -4, -3, -3, -3,
    -2, -2, -2, -1, -1, -1, 0, 0, 0, 0, 1, 1, 1, 2, 2, 2,
    3, 3, 3, 3, 4, 4, 4, 5, 5, 5, 6, 6, 6, 6, 7, 7,
    7, 8, 8, 8, 9, 9, 9, 9, 10, 10, 10, 11, 11, 11, 12, 12,
    12, 12, 13, 13, 13, 14, 14, 14, 15, 15, 15, 15, 16, 16, 16, 17,
    17, 17, 18, 18, 18, 18, 19, 19, 19, 20, 20, 20, 21, 21, 21, 21,
    22, 22, 22, 23, 23, 23, 24, 24, 24, 24, 25, 25, 25, 26, 26, 26,
    27, 27, 27, 27, 28, 28, 28, 29, 29, 29, 30, 30, 30, 31, 31, 31,
};
const int8_t p2q_ft_exp_h[256] = {
    1, 1, 2, 3, 1, 2, 3, 4, 1, 2, 3, 1, 2, 3, 1, 2,
    3, 4, 1, 2, 3, 1, 2, 3, 1, 2, 3, 4, 1, 2, 3, 1,
    2, 3, 1, 2, 3, 4, 1, 2, 3, 1, 2, 3, 1, 2, 3, 4,
    1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2, 3, 4, 1, 2, 3,
    1, 2, 3, 1, 2, 3, 4, 1, 2, 3, 1, 2, 3, 1, 2, 3,
    4, 1, 2, 3, 1, 2, 3, 1, 2, 3, 4, 1, 2, 3, 1, 2,
    3, 1, 2, 3, 4, 1, 2, 3, 1, 2, 3, 1, 2, 3, 4, 1,
    2, 3, 1, 2, 3, 1, 2, 3, 4, 1, 2, 3, 1, 2, 3, 1,
    2, 3, 4, 1, 2, 3, 1, 2, 3, 1, 2, 3, 4, 1, 2, 3,
    1, 2, 3, 1, 2, 3, 1, 2, 3, 4, 1, 2, 3, 1, 2, 3,
    1, 2, 3, 4, 1, 2, 3, 1, 2, 3, 1, 2, 3, 4, 1, 2,
    3, 1, 2, 3, 1, 2, 3, 4, 1, 2, 3, 1, 2, 3, 1, 2,
    3, 4, 1, 2, 3, 1, 2, 3, 1, 2, 3, 4, 1, 2, 3, 1,
    2, 3, 1, 2, 3, 4, 1, 2, 3, 1, 2, 3, 1, 2, 3, 4,
    1, 2, 3, 1, 2, 3, 1, 2, 3, 4, 1, 2, 3, 1, 2, 3,
    1, 2, 3, 4, 1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2, 3,
};

/* floor(q log10 (3/4 2^q)), floor(j log2 10) for the exponents of binary32 (the tables above are
   q * 1262611 >> 22 and that) */
static int floor_log10_3q_pow2(int q) { return (q * 1262611 - 524031) >> 22; }
static int floor_log2_pow10(int j) { return (j * 1741647) >> 19; }

/* x * 10^-k rounded to odd, for the 64-bit overestimate g of 10^-k (scaled to [2^63, 2^64)) and
   cp = x << h: the integer part, its low bit set when the fraction is not 0. */
static inline __attribute__((always_inline)) uint32_t round_to_odd(uint64_t g, uint32_t cp) {
  u128 p = (u128)g * cp;
  uint32_t y1 = (uint32_t)(p >> 64), y0 = (uint32_t)(p >> 32);
  return y1 | (y0 > 1);
}

typedef struct {
  uint32_t digits; /* < 10^9; may end with zeros */
  int exp10;       /* value = digits * 10^exp10 */
} decimal_t;

/* The decimal of a finite non-zero float (its mantissa and exponent fields). */
static inline __attribute__((always_inline)) decimal_t shortest(uint32_t ieee_m, uint32_t ieee_e) {
  uint32_t c;
  int q;
  if (ieee_e) {
    c = (1u << 23) | ieee_m, q = (int)ieee_e - 150;
    if (q <= 0 && q >= -23 && !(c & ((1u << -q) - 1))) return (decimal_t){c >> -q, 0}; /* an integer */
  } else {
    c = ieee_m, q = -149;
  }
  int closer = ieee_m == 0 && ieee_e > 1; /* the neighbour below a power of two is closer */
  int k = p2q_ft_exp_k[ieee_e], h = p2q_ft_exp_h[ieee_e]; /* h 1..4: cbr << h < 2^31 */
  if (__builtin_expect(closer, 0)) k = floor_log10_3q_pow2(q), h = q + floor_log2_pow10(-k) + 1;
  uint64_t g = p2q_ft_g10[-k + 31];
  uint32_t vbl = round_to_odd(g, (4 * c - 2 + (uint32_t)closer) << h);
  uint32_t vb = round_to_odd(g, (4 * c) << h);
  uint32_t vbr = round_to_odd(g, (4 * c + 2) << h);
  uint32_t lower = vbl + 1, upper = vbr - 1; /* both ends excluded (4 * scaled value) */
  uint32_t s = vb >> 2;
  if (s >= 10) { /* the interval is narrower than 10: at most one multiple of 10 inside */
    uint32_t sp = s / 10;
    int up_in = lower <= 40 * sp, wp_in = 40 * sp + 40 <= upper;
    if (up_in != wp_in) return (decimal_t){sp + (uint32_t)wp_in, k + 1};
  }
  int u_in = lower <= 4 * s, w_in = 4 * s + 4 <= upper;
  if (u_in != w_in) return (decimal_t){s + (uint32_t)w_in, k};
  uint32_t mid = 4 * s + 2; /* both inside: the closer, ties to even */
  return (decimal_t){s + (vb > mid || (vb == mid && (s & 1))), k};
}

/* The 8 decimal digits of x < 10^8 as bytes 0..9, the first digit in the low byte: four
   two-digit pairs read from the table side by side (shorter than a SWAR chain of multiplies). */
static inline __attribute__((always_inline)) uint64_t digits8(uint32_t x) {
  uint32_t a = x / 10000, b = x % 10000;
  uint16_t p0, p1, p2, p3;
  memcpy(&p0, p2q_ft_pairs + 2 * (a / 100), 2), memcpy(&p1, p2q_ft_pairs + 2 * (a % 100), 2);
  memcpy(&p2, p2q_ft_pairs + 2 * (b / 100), 2), memcpy(&p3, p2q_ft_pairs + 2 * (b % 100), 2);
  return ((uint64_t)p0 | (uint64_t)p1 << 16 | (uint64_t)p2 << 32 | (uint64_t)p3 << 48) - 0x3030303030303030ull;
}

static void store8(char *p, uint64_t v) { memcpy(p, &v, 8); }

/*
 * Write the text of (-1)^neg * D * 10^exp10 at out and return its length, where D = nine * 10^8
 * + the 8 digits in d (digit values 0..9, the first one in d's low byte; D > 0, D < 2 * 10^8 when
 * nine). The digits are kept in registers as a first one, f, and the next 8 in r (then '0's):
 * each layout below is a few overlapping stores; it may write up to 16 bytes from out + neg.
 */
static inline __attribute__((always_inline)) int layout(char *out, int neg, uint64_t d, int nine, int exp10) {
  int tz = d ? __builtin_clzll(d) >> 3 : 8, nd; /* trailing zeros; digits in all */
  uint64_t r;
  char f;
  if (nine) {
    f = '1', r = d + P2Q_FT_ZEROS, nd = 9;
  } else {
    int lz = __builtin_ctzll(d) >> 3; /* d != 0 */
    d >>= 8 * lz;
    f = (char)('0' + (d & 0xff)), r = (d >> 8) + P2Q_FT_ZEROS, nd = 8 - lz;
  }
  int n = nd - tz, e = exp10 + nd - 1; /* significant digits; the first one's exponent */
  char *p = out;
  *p = '-';
  p += neg;
  if (e >= -4 && e < 6) { /* float4out: fixed notation where printf's %g would use it */
    if (e < 0) {          /* 0.000ddd */
      store8(p, 0x3030303030302e30ull), p += 1 - e; /* "0.000000" */
      p[0] = f, store8(p + 1, r), p += n;
    } else if (n <= e + 1) { /* ddd000: r has '0's after the digits */
      p[0] = f, store8(p + 1, r), p += e + 1;
    } else { /* ddd.ddd */
      p[0] = f, store8(p + 1, r);
      p[e + 1] = '.';
      store8(p + e + 2, r >> (8 * e)), p += n + 1;
    }
  } else { /* d.ddde±XX */
    p[0] = f, p[1] = '.', store8(p + 2, r), p += n + (n > 1);
    int ae = e < 0 ? -e : e; /* 1..45 */
    p[0] = 'e', p[1] = e < 0 ? '-' : '+';
    memcpy(p + 2, p2q_ft_pairs + 2 * ae, 2), p += 4;
  }
  return (int)(p - out);
}

/* The printer; inlined into p2q_float4_json_elems's loop (a call per float costs ~30 %). */
static inline __attribute__((always_inline)) int float4_text(uint32_t bits, char *out) {
  int neg = (int)(bits >> 31);
  uint32_t ie = (bits >> 23) & 0xff, im = bits & 0x7fffff;
  if (ie == 0xff || (ie == 0 && im == 0)) {
    const char *s = ie ? im ? "NaN" : neg ? "-Infinity" : "Infinity" : neg ? "-0" : "0";
    size_t n = strlen(s);
    memcpy(out, s, n);
    return (int)n;
  }
  decimal_t v = shortest(im, ie);
  uint32_t nine = v.digits >= 100000000; /* digits < 2 * 10^8 */
  return layout(out, neg, digits8(v.digits - nine * 100000000), (int)nine, v.exp10);
}

int p2q_float4_text(uint32_t bits, char out[P2Q_FLOAT4_TEXT_MAX]) { return float4_text(bits, out); }

static uint32_t be32(const unsigned char *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The elements [from, to) of p2q_float4_json_elems, one at a time. */
static char *elems_scalar(char *o, const unsigned char **pp, const unsigned char *end, int32_t from, int32_t to,
                          int *numbers) {
  const unsigned char *p = *pp;
  for (int32_t i = from; i < to; i++) {
    *o = ',';
    o += i != 0;
    if (end - p < 8) { /* a NULL (length -1) has no bits; anything else is 4 bytes long */
      if (end - p < 4 || be32(p) != 0xffffffffu) return NULL;
      memcpy(o, "null", 4), o += 4, p += 4, *numbers = 0;
      continue;
    }
    uint32_t len = be32(p), bits = be32(p + 4);
    if (len != 4) {
      if (len != 0xffffffffu) return NULL;
      memcpy(o, "null", 4), o += 4, p += 4, *numbers = 0;
      continue;
    }
    p += 8;
    if ((bits & 0x7f800000u) == 0x7f800000u) { /* NaN, ±Infinity: not JSON numbers */
      *numbers = 0;
      *o++ = '"';
      o += float4_text(bits, o);
      *o++ = '"';
    } else {
      o += float4_text(bits, o);
    }
  }
  *pp = p;
  return o;
}

#ifdef P2Q_FT_AVX2
#define COMPILED 1
#else
#define COMPILED 0
#endif
static int simd = -1; /* p2q_float4_json_elems takes the AVX2 path (float_text_avx2.c): cpu.h */

int p2q_float_text_set_simd(int on) { return p2q_cpu_avx2_choose(&simd, COMPILED, on); }

char *p2q_float4_json_elems(char *o, const unsigned char **pp, const unsigned char *end, int32_t count,
                            int *numbers) {
  if (!p2q_cpu_avx2_chosen(&simd, COMPILED)) return elems_scalar(o, pp, end, 0, count, numbers);
  int32_t i = 0;
  while (i < count) { /* four at a time; a group the AVX2 path leaves (a NULL, 0, NaN…) one by one */
#ifdef P2Q_FT_AVX2
    o = p2q_ft_elems_avx2(o, pp, end, &i, count);
#endif
    int32_t to = count - i < 4 ? count : i + 4;
    if (i < count && !(o = elems_scalar(o, pp, end, i, to, numbers))) return NULL;
    i = to;
  }
  return o;
}

/*
 * bench_float_text.c — the float4 printer (float_text.c) against the exact-integer Ryū search it
 * replaced (below, as it was in commit 1460e23, itself checked against PostgreSQL 15's float4out
 * on 7.7 million floats): speed, and byte-for-byte equality on every bit pattern.
 *   bench_float_text [--reps N]          ns per float, both printers: the bench's vectors
 *                                        (k/10000), MiniLM-like values (N(0, 0.05)), random bits;
 *                                        and µs per 384-float vector from array_send() bytes
 *                                        (p2q_float4_json_elems, its AVX2 path where the CPU has
 *                                        it and its scalar path, against a loop calling the old one)
 *   bench_float_text --all [LO HI]       compare both on every bit pattern in [LO, HI] (hex;
 *                                        default all 2^32); prints the count and the first few
 *   bench_float_text --all-elems [LO HI] p2q_float4_json_elems's two paths (AVX2 four at a time,
 *                                        scalar) on every bit pattern in [LO, HI], 4,096 per call
 *   bench_float_text --sample N SEED     N random finite floats as "%.9e<TAB>text" lines, for a
 *                                        check against PostgreSQL (SELECT a::real::text)
 * Output: "RESULT key=value …" lines.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pg2qdrant/float_text.h"

#include "bench_util.h"

/* ---- the previous printer (reference) ------------------------------------------------------ */
typedef unsigned __int128 u128;

#define P5(hi, lo) (((u128)(hi) << 64) | (u128)(lo))
static const u128 pow5[48] = {
    P5(0x0u, 0x0000000000000001u), /* 5^0 */
    P5(0x0u, 0x0000000000000005u), /* 5^1 */
    P5(0x0u, 0x0000000000000019u), /* 5^2 */
    P5(0x0u, 0x000000000000007du), /* 5^3 */
    P5(0x0u, 0x0000000000000271u), /* 5^4 */
    P5(0x0u, 0x0000000000000c35u), /* 5^5 */
    P5(0x0u, 0x0000000000003d09u), /* 5^6 */
    P5(0x0u, 0x000000000001312du), /* 5^7 */
    P5(0x0u, 0x000000000005f5e1u), /* 5^8 */
    P5(0x0u, 0x00000000001dcd65u), /* 5^9 */
    P5(0x0u, 0x00000000009502f9u), /* 5^10 */
    P5(0x0u, 0x0000000002e90eddu), /* 5^11 */
    P5(0x0u, 0x000000000e8d4a51u), /* 5^12 */
    P5(0x0u, 0x0000000048c27395u), /* 5^13 */
    P5(0x0u, 0x000000016bcc41e9u), /* 5^14 */
    P5(0x0u, 0x000000071afd498du), /* 5^15 */
    P5(0x0u, 0x0000002386f26fc1u), /* 5^16 */
    P5(0x0u, 0x000000b1a2bc2ec5u), /* 5^17 */
    P5(0x0u, 0x000003782dace9d9u), /* 5^18 */
    P5(0x0u, 0x00001158e460913du), /* 5^19 */
    P5(0x0u, 0x000056bc75e2d631u), /* 5^20 */
    P5(0x0u, 0x0001b1ae4d6e2ef5u), /* 5^21 */
    P5(0x0u, 0x000878678326eac9u), /* 5^22 */
    P5(0x0u, 0x002a5a058fc295edu), /* 5^23 */
    P5(0x0u, 0x00d3c21bcecceda1u), /* 5^24 */
    P5(0x0u, 0x0422ca8b0a00a425u), /* 5^25 */
    P5(0x0u, 0x14adf4b7320334b9u), /* 5^26 */
    P5(0x0u, 0x6765c793fa10079du), /* 5^27 */
    P5(0x2u, 0x04fce5e3e2502611u), /* 5^28 */
    P5(0xau, 0x18f07d736b90be55u), /* 5^29 */
    P5(0x32u, 0x7cb2734119d3b7a9u), /* 5^30 */
    P5(0xfcu, 0x6f7c40458122964du), /* 5^31 */
    P5(0x4eeu, 0x2d6d415b85acef81u), /* 5^32 */
    P5(0x18a6u, 0xe32246c99c60ad85u), /* 5^33 */
    P5(0x7b42u, 0x6fab61f00de36399u), /* 5^34 */
    P5(0x2684cu, 0x2e58e9b04570f1fdu), /* 5^35 */
    P5(0xc097cu, 0xe7bc90715b34b9f1u), /* 5^36 */
    P5(0x3c2f70u, 0x86aed236c807a1b5u), /* 5^37 */
    P5(0x12ced32u, 0xa16a1b11e8262889u), /* 5^38 */
    P5(0x5e0a1fdu, 0x2712875988becaadu), /* 5^39 */
    P5(0x1d6329f1u, 0xc35ca4bfabb9f561u), /* 5^40 */
    P5(0x92efd1b8u, 0xd0cf37be5aa1cae5u), /* 5^41 */
    P5(0x2deaf189cu, 0x140c16b7c528f679u), /* 5^42 */
    P5(0xe596b7b0cu, 0x643c7196d9ccd05du), /* 5^43 */
    P5(0x47bf19673du, 0xf52e37f2410011d1u), /* 5^44 */
    P5(0x166bb7f0435u, 0xc9e717bb45005915u), /* 5^45 */
    P5(0x701a97b150cu, 0xf18376a85901bd69u), /* 5^46 */
    P5(0x23084f676940u, 0xb7915149bd08b30du), /* 5^47 */
};

static const char pairs[201] = "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
                                "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
                                "8081828384858687888990919293949596979899";

static int ctz64(uint64_t v) { return v ? __builtin_ctzll(v) : 64; }

/* floor(m * 5^i / 2^q) for m < 2^27, i <= 47, q <= 127 (the result fits in 64 bits). */
static uint64_t mul_pow5_shr(uint64_t m, int i, int q) {
  u128 p = pow5[i];
  uint64_t lo = (uint64_t)p, hi = (uint64_t)(p >> 64);
  u128 a = (u128)m * lo;
  if (!hi) return (uint64_t)(a >> q);
  u128 b = (u128)m * hi;                       /* the product is a + b * 2^64 (up to 2^137) */
  u128 mid = (a >> 64) + (uint64_t)b;
  uint64_t p0 = (uint64_t)a, p1 = (uint64_t)mid, p2 = (uint64_t)((mid >> 64) + (b >> 64));
  if (q >= 64) return (uint64_t)((((u128)p2 << 64) | p1) >> (q - 64));
  return (uint64_t)((((u128)p1 << 64) | p0) >> q);
}

typedef struct {
  uint64_t digits;
  int exp10;
} decimal_t;

/* The shortest decimal of a finite non-zero float (mantissa and exponent fields), as
   PostgreSQL's f2s.c finds it: the midpoints to the neighbours are never accepted (it is built
   without STRICTLY_SHORTEST: the text must read back right even where a reader does not break
   ties to even), so vm is never exact, and the "no digit lost" flags are Ryū's own (exact
   values, computed where Ryū computes them, false elsewhere). */
static decimal_t ref_shortest(uint32_t ieee_m, uint32_t ieee_e) {
  int e2;
  uint32_t m2;
  if (ieee_e == 0) { e2 = 1 - 127 - 23 - 2; m2 = ieee_m; }
  else { e2 = (int)ieee_e - 127 - 23 - 2; m2 = (1u << 23) | ieee_m; }
  uint64_t mv = 4 * (uint64_t)m2, mp = mv + 2;
  uint64_t mm = mv - 1 - (ieee_m != 0 || ieee_e <= 1); /* closer below a power of two */
  uint64_t vr64, vp64, vm64;
  int e10, last = 0, vr_tz = 0;
  if (e2 >= 0) { /* x * 2^e2 / 10^q = x * 2^(e2-q) / 5^q */
    int q = (int)(((uint64_t)e2 * 78913) >> 18), s = e2 - q; /* q = floor(e2 log10 2) */
    u128 d = pow5[q];
    e10 = q;
    vr64 = (uint64_t)(((u128)mv << s) / d);
    vp64 = (uint64_t)(((u128)mp << s) / d);
    vm64 = (uint64_t)(((u128)mm << s) / d);
    if (q != 0 && (vp64 - 1) / 10 <= vm64 / 10) /* no digit to remove: the first one lost rounds */
      last = (int)((((u128)mv << (s + 1)) / pow5[q - 1]) % 10);
    if (q <= 9) {
      if (mv % 5 == 0) vr_tz = (u128)mv % d == 0;
      else vp64 -= (u128)mp % d == 0; /* the upper midpoint itself is excluded */
    }
  } else { /* x * 2^e2 / 10^(q+e2) = x * 5^i / 2^q */
    int q = (int)(((uint64_t)-e2 * 732923) >> 20), i = -e2 - q; /* q = floor(-e2 log10 5) */
    e10 = q + e2;
    vr64 = mul_pow5_shr(mv, i, q);
    vp64 = mul_pow5_shr(mp, i, q);
    vm64 = mul_pow5_shr(mm, i, q);
    if (q != 0 && (vp64 - 1) / 10 <= vm64 / 10) last = (int)(mul_pow5_shr(mv, i + 1, q - 1) % 10);
    if (q <= 1) {
      vr_tz = 1;
      vp64--; /* mp has a trailing 0 bit: the upper midpoint is reached, and excluded */
    } else if (q < 31) {
      vr_tz = ctz64(mv) >= q - 1;
    }
  }
  int removed = 0;
  uint32_t out; /* vr, vp, vm < 2^32 here (as in Ryū's f2s): 32-bit division by 10 is cheaper */
  uint32_t vr = (uint32_t)vr64, vp = (uint32_t)vp64, vm = (uint32_t)vm64;
  if (vr_tz) {
    while (vp / 10 > vm / 10) {
      vr_tz &= last == 0;
      last = (int)(vr % 10);
      vr /= 10, vp /= 10, vm /= 10, removed++;
    }
    if (vr_tz && last == 5 && vr % 2 == 0) last = 4; /* exactly half way: to even */
  } else {
    while (vp / 10 > vm / 10) {
      last = (int)(vr % 10);
      vr /= 10, vp /= 10, vm /= 10, removed++;
    }
  }
  out = vr + (vr == vm || last >= 5); /* vm is outside the interval: never the result */
  return (decimal_t){out, e10 + removed};
}

static int copy(char *out, const char *s) {
  size_t n = strlen(s);
  memcpy(out, s, n);
  return (int)n;
}

static int ref_float4_text(uint32_t bits, char out[P2Q_FLOAT4_TEXT_MAX]) {
  int neg = (int)(bits >> 31);
  uint32_t ie = (bits >> 23) & 0xff, im = bits & 0x7fffff;
  if (ie == 0xff) return copy(out, im ? "NaN" : neg ? "-Infinity" : "Infinity");
  if (ie == 0 && im == 0) return copy(out, neg ? "-0" : "0");
  decimal_t v = ref_shortest(im, ie);
  char dig[12];
  int n = 0;
  uint32_t d = (uint32_t)v.digits;
  for (; d >= 100; d /= 100, n += 2) memcpy(dig + 10 - n, pairs + 2 * (d % 100), 2);
  if (d >= 10) memcpy(dig + 10 - n, pairs + 2 * d, 2), n += 2;
  else dig[11 - n++] = (char)('0' + d);
  const char *dg = dig + 12 - n;
  int exp = v.exp10 + n - 1;
  char *p = out;
  if (neg) *p++ = '-';
  if (exp >= -4 && exp < 6) { /* float4out: fixed notation where printf's %g would use it */
    if (exp < 0) {
      *p++ = '0', *p++ = '.';
      for (int k = 0; k < -exp - 1; k++) *p++ = '0';
      memcpy(p, dg, (size_t)n), p += n;
    } else if (n <= exp + 1) {
      memcpy(p, dg, (size_t)n), p += n;
      for (int k = n; k < exp + 1; k++) *p++ = '0';
    } else {
      memcpy(p, dg, (size_t)exp + 1), p += exp + 1;
      *p++ = '.';
      memcpy(p, dg + exp + 1, (size_t)(n - exp - 1)), p += n - exp - 1;
    }
  } else {
    *p++ = dg[0];
    if (n > 1) {
      *p++ = '.';
      memcpy(p, dg + 1, (size_t)n - 1), p += n - 1;
    }
    int a = exp < 0 ? -exp : exp;
    *p++ = 'e', *p++ = exp < 0 ? '-' : '+';
    *p++ = (char)('0' + a / 10), *p++ = (char)('0' + a % 10); /* |exp| <= 45 */
  }
  return (int)(p - out);
}

/* ---- driver --------------------------------------------------------------------------------- */

static uint32_t bits_of(float f) {
  uint32_t b;
  memcpy(&b, &f, 4);
  return b;
}

static int all(uint64_t lo, uint64_t hi) {
  uint64_t diffs = 0;
  char a[P2Q_FLOAT4_TEXT_MAX + 1], b[P2Q_FLOAT4_TEXT_MAX + 1];
  double t0 = cpu_s();
  for (uint64_t x = lo; x <= hi; x++) {
    uint32_t bits = (uint32_t)x;
    int na = p2q_float4_text(bits, a), nb = ref_float4_text(bits, b);
    if (na != nb || memcmp(a, b, (size_t)na)) {
      if (diffs++ < 20) printf("DIFF %08" PRIx32 " new=%.*s ref=%.*s\n", bits, na, a, nb, b);
    }
  }
  printf("RESULT check=all lo=%08" PRIx64 " hi=%08" PRIx64 " floats=%" PRIu64 " diffs=%" PRIu64 " cpu_s=%.1f\n", lo, hi,
         hi - lo + 1, diffs, cpu_s() - t0);
  return diffs != 0;
}

/* The elements in bin printed by p2q_float4_json_elems's AVX2 (simd 1) or scalar path. */
static char *elems_path(char *o, const unsigned char *bin, int32_t count, int simd) {
  const unsigned char *p = bin;
  int numbers = 1;
  p2q_float_text_set_simd(simd);
  return p2q_float4_json_elems(o, &p, bin + 8 * (size_t)count, count, &numbers);
}

static int all_elems(uint64_t lo, uint64_t hi) {
  enum { N = 4096 };
  static unsigned char bin[8 * N];
  static char a[N * (P2Q_FLOAT4_TEXT_MAX + 3)], b[N * (P2Q_FLOAT4_TEXT_MAX + 3)];
  uint64_t diffs = 0;
  double t0 = cpu_s();
  if (!p2q_float_text_set_simd(1)) printf("NOTE no AVX2 path on this CPU: scalar against itself\n");
  for (uint64_t x = lo; x <= hi; x += N) {
    int32_t n = hi - x + 1 < N ? (int32_t)(hi - x + 1) : N;
    for (int32_t i = 0; i < n; i++) {
      uint32_t v = (uint32_t)(x + (uint64_t)i);
      unsigned char e[8] = {0, 0, 0, 4, (unsigned char)(v >> 24), (unsigned char)(v >> 16), (unsigned char)(v >> 8), (unsigned char)v};
      memcpy(bin + 8 * i, e, 8);
    }
    char *ea = elems_path(a, bin, n, 1), *eb = elems_path(b, bin, n, 0);
    if (ea - a == eb - b && !memcmp(a, b, (size_t)(ea - a))) continue;
    for (int32_t i = 0; i < n; i++) { /* one by one, to name the floats */
      char *fa = elems_path(a, bin + 8 * i, 1, 1), *fb = elems_path(b, bin + 8 * i, 1, 0);
      if (fa - a == fb - b && !memcmp(a, b, (size_t)(fa - a))) continue;
      if (diffs++ < 20) printf("DIFF %08" PRIx64 " simd=%.*s scalar=%.*s\n", x + (uint64_t)i, (int)(fa - a), a, (int)(fb - b), b);
    }
    if (!diffs) diffs = 1, printf("DIFF in the block at %08" PRIx64 " (not float by float)\n", x);
  }
  p2q_float_text_set_simd(1);
  printf("RESULT check=all-elems lo=%08" PRIx64 " hi=%08" PRIx64 " floats=%" PRIu64 " diffs=%" PRIu64 " cpu_s=%.1f\n", lo, hi,
         hi - lo + 1, diffs, cpu_s() - t0);
  return diffs != 0;
}

static int sample(long n, uint64_t seed) {
  char a[P2Q_FLOAT4_TEXT_MAX + 1];
  rng = seed ? seed : rng;
  for (long i = 0; i < n;) {
    uint32_t bits = (uint32_t)next_u64();
    if ((bits & 0x7f800000u) == 0x7f800000u) continue;
    float f;
    memcpy(&f, &bits, 4);
    int na = p2q_float4_text(bits, a);
    printf("%.9e\t%.*s\n", (double)f, na, a);
    i++;
  }
  return 0;
}

typedef int (*printer_t)(uint32_t, char *);

static double ns_per_float(printer_t pr, const uint32_t *v, int n, int reps) {
  char buf[P2Q_FLOAT4_TEXT_MAX * 2];
  volatile int sink = 0;
  double best = 1e9;
  for (int r = 0; r < reps; r++) {
    double t0 = cpu_s();
    int acc = 0;
    for (int i = 0; i < n; i++) acc += pr(v[i], buf) + buf[0];
    double t = (cpu_s() - t0) / n * 1e9;
    sink += acc;
    if (t < best) best = t;
  }
  (void)sink;
  return best;
}

/* The old vector_bin.c loop: one call of the old printer per element. */
static char *ref_elems(char *o, const unsigned char *p, int32_t count) {
  for (int32_t i = 0; i < count; i++, p += 8) {
    if (i) *o++ = ',';
    uint32_t bits = (uint32_t)p[4] << 24 | (uint32_t)p[5] << 16 | (uint32_t)p[6] << 8 | p[7];
    if ((bits & 0x7f800000u) == 0x7f800000u) *o++ = '"';
    o += ref_float4_text(bits, o);
    if ((bits & 0x7f800000u) == 0x7f800000u) *o++ = '"';
  }
  return o;
}

/* µs per 384-float vector of array_send() element bytes: p2q_float4_json_elems's AVX2 path
   (which = 0) or scalar path (2), or the old printer (1). */
static double us_per_vector(const uint32_t *v, int n, int reps, int which) {
  enum { DIM = 384 };
  static unsigned char bin[DIM * 8];
  static char text[DIM * (P2Q_FLOAT4_TEXT_MAX + 3)];
  volatile size_t sink = 0;
  double best = 1e9;
  p2q_float_text_set_simd(which == 0);
  for (int r = 0; r < reps; r++) {
    double t0 = cpu_s();
    for (int j = 0; j + DIM <= n; j += DIM) {
      for (int i = 0; i < DIM; i++) { /* the bytes as the claim delivers them */
        uint32_t b = v[j + i];
        unsigned char e[8] = {0, 0, 0, 4, (unsigned char)(b >> 24), (unsigned char)(b >> 16), (unsigned char)(b >> 8), (unsigned char)b};
        memcpy(bin + 8 * i, e, 8);
      }
      const unsigned char *p = bin;
      int numbers = 1;
      char *end = which == 1 ? ref_elems(text, bin, DIM) : p2q_float4_json_elems(text, &p, bin + sizeof bin, DIM, &numbers);
      sink += end ? (size_t)(end - text) : 0;
    }
    double t = (cpu_s() - t0) / (n / DIM) * 1e6;
    if (t < best) best = t;
  }
  (void)sink;
  p2q_float_text_set_simd(1);
  return best;
}

int main(int argc, char **argv) {
  int reps = 7;
  if (argc >= 2 && !strcmp(argv[1], "--all")) {
    uint64_t lo = 0, hi = 0xffffffffu;
    if (argc >= 4) lo = strtoull(argv[2], NULL, 16), hi = strtoull(argv[3], NULL, 16);
    return all(lo, hi);
  }
  if (argc >= 2 && !strcmp(argv[1], "--all-elems")) {
    uint64_t lo = 0, hi = 0xffffffffu;
    if (argc >= 4) lo = strtoull(argv[2], NULL, 16), hi = strtoull(argv[3], NULL, 16);
    return all_elems(lo, hi);
  }
  if (argc >= 4 && !strcmp(argv[1], "--sample")) return sample(atol(argv[2]), strtoull(argv[3], NULL, 10));
  if (argc >= 3 && !strcmp(argv[1], "--reps")) reps = atoi(argv[2]);
  enum { N = 1 << 20 };
  uint32_t *v = malloc(N * sizeof *v);
  if (!v) return 1;
  static const char *names[] = {"bench_k_over_10000", "normal_0.05", "random_bits"};
  for (int kind = 0; kind < 3; kind++) {
    for (int i = 0; i < N; i++) {
      if (kind == 0) v[i] = bits_of((float)((int)(next_u64() % 20000) - 10000) / 10000.0f);
      else if (kind == 1) {
        double u1 = ((double)(next_u64() >> 11) + 1) / 9007199254740993.0, u2 = (double)(next_u64() >> 11) / 9007199254740992.0;
        v[i] = bits_of((float)(0.05 * sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2)));
      } else {
        do v[i] = (uint32_t)next_u64(); while ((v[i] & 0x7f800000u) == 0x7f800000u);
      }
    }
    double tn = ns_per_float(p2q_float4_text, v, N, reps), tr = ns_per_float(ref_float4_text, v, N, reps);
    double vn = us_per_vector(v, N, reps, 0), vr = us_per_vector(v, N, reps, 1), vs = us_per_vector(v, N, reps, 2);
    printf("RESULT values=%s new_ns=%.2f ref_ns=%.2f vector384_new_us=%.2f vector384_scalar_us=%.2f vector384_ref_us=%.2f\n",
           names[kind], tn, tr, vn, vs, vr);
  }
  free(v);
  return 0;
}

/*
 * hash_avx2.c — p2q_hash64_many's path for a CPU with AVX2 (hash.c asks the CPU once): the
 * FNV-1a 64 of sixteen strings side by side, one 64-bit lane per string in four ymm registers.
 * FNV-1a is one multiply per byte, each waiting for the last: the scalar path keeps four chains
 * in flight and is bound by the one 64-bit multiplier (~1 byte a cycle); AVX2 has no 64-bit
 * multiply, but the prime is 2^40 + 0x1b3, so h × prime = lo32(h) × 0x1b3 (vpmuludq, 64-bit
 * result) + (lo32(hi32(h) × 0x1b3) << 32) (vpmulld by 0x1b3 in the odd dwords, 0 in the even
 * ones) + (h << 40), all mod 2^64: three multiplies and adds per four bytes on the vector pipes.
 * Bytes: every 8 bytes a string's next 8 (one load per lane) go into its lane, and each step
 * moves byte j of each lane to its low byte (one vpshufb). The lanes advance together by the
 * shortest remaining string (a round); a lane whose string ended takes the next one, a lane with
 * none left hashes a live lane's bytes, its result unused; once four strings or fewer are left
 * they are handed back (where each stands and its hash so far) for hash.c's scalar path. Bytes are never
 * read past a string's end (a round's last < 8 bytes are copied into a zeroed word).
 * Same output as the scalar path, byte for byte (tests/unit/test_points.c compares them).
 * Pure; any thread; no allocation.
 */
#include "hash_int.h"
#include "pg2qdrant/hash.h"

#ifdef P2Q_HASH_AVX2
#include <immintrin.h>
#include <string.h>

#define AVX2 __attribute__((target("avx2")))

enum { V = 4, L = 4 * V }; /* ymm registers, lanes */

AVX2 static inline __m256i step(__m256i h, __m256i q, __m256i sel) {
  h = _mm256_xor_si256(h, _mm256_shuffle_epi8(q, sel));
  __m256i lo = _mm256_mul_epu32(h, _mm256_set1_epi64x(0x1b3));
  __m256i hi = _mm256_mullo_epi32(h, _mm256_set1_epi64x((long long)(0x1b3ull << 32))); /* the odd dword; the even 0 */
  return _mm256_add_epi64(_mm256_add_epi64(lo, hi), _mm256_slli_epi64(h, 40));
}

static inline uint64_t load8(const unsigned char *p) {
  uint64_t x;
  memcpy(&x, p, 8);
  return x;
}

/* The lanes' next 8 bytes at p[l] + i, or their first t < 8 (t > 0: the rest 0). */
AVX2 static inline void loadq(__m256i q[V], const unsigned char *const p[L], size_t i, size_t t) {
  if (!t) {
    for (int v = 0; v < V; v++)
      q[v] = _mm256_set_epi64x((long long)load8(p[4 * v + 3] + i), (long long)load8(p[4 * v + 2] + i),
                               (long long)load8(p[4 * v + 1] + i), (long long)load8(p[4 * v] + i));
    return;
  }
  uint64_t w[L];
  for (int l = 0; l < L; l++) w[l] = 0, memcpy(&w[l], p[l] + i, t);
  for (int v = 0; v < V; v++) q[v] = _mm256_loadu_si256((const __m256i *)(const void *)(w + 4 * v));
}

/* m bytes of every lane from p[l] (each lane's string has at least m left). */
AVX2 static void round_bytes(uint64_t hs[L], const unsigned char *const p[L], size_t m) {
  static const int8_t sel_of[8][32] __attribute__((aligned(32))) = {
#define S(j) {j, -1, -1, -1, -1, -1, -1, -1, j + 8, -1, -1, -1, -1, -1, -1, -1, j, -1, -1, -1, -1, -1, -1, -1, j + 8, -1, -1, -1, -1, -1, -1, -1}
      S(0), S(1), S(2), S(3), S(4), S(5), S(6), S(7)
#undef S
  };
  __m256i h[V], q[V], sel[8];
  for (int j = 0; j < 8; j++) sel[j] = _mm256_load_si256((const __m256i *)(const void *)sel_of[j]);
  for (int v = 0; v < V; v++) h[v] = _mm256_loadu_si256((const __m256i *)(const void *)(hs + 4 * v));
  size_t i = 0;
  for (; i + 8 <= m; i += 8) {
    loadq(q, p, i, 0);
    for (int j = 0; j < 8; j++)
      for (int v = 0; v < V; v++) h[v] = step(h[v], q[v], sel[j]);
  }
  if (i < m) {
    loadq(q, p, i, m - i);
    for (size_t j = 0; j < m - i; j++)
      for (int v = 0; v < V; v++) h[v] = step(h[v], q[v], sel[j]);
  }
  for (int v = 0; v < V; v++) _mm256_storeu_si256((__m256i *)(void *)(hs + 4 * v), h[v]);
}

AVX2 int p2q_hash64_many_avx2(const char *const *data, const size_t *len, const uint64_t *seed, int n, uint64_t *out,
                              p2q_hash_rest_t *rest) {
  const unsigned char *p[L];
  size_t rem[L];
  uint64_t hs[L];
  int who[L], next = 0, live = 0;
  for (int l = 0; l < L; l++) {
    who[l] = next < n ? next++ : -1;
    if (who[l] >= 0) p[l] = (const unsigned char *)data[who[l]], rem[l] = len[who[l]], live++;
    hs[l] = who[l] >= 0 && seed ? seed[who[l]] : P2Q_HASH64_BASIS;
  }
  while (live > 4) {
    size_t m = SIZE_MAX;
    int any = 0;
    for (int l = 0; l < L; l++)
      if (who[l] >= 0 && rem[l] < m) m = rem[l], any = l;
    for (int l = 0; l < L; l++)
      if (who[l] < 0) p[l] = p[any], rem[l] = rem[any];
    if (m) round_bytes(hs, p, m);
    for (int l = 0; l < L; l++) {
      p[l] += m, rem[l] -= m;
      if (who[l] < 0 || rem[l]) continue;
      out[who[l]] = hs[l];
      live--;
      who[l] = next < n ? next++ : -1;
      hs[l] = who[l] >= 0 && seed ? seed[who[l]] : P2Q_HASH64_BASIS;
      if (who[l] >= 0) p[l] = (const unsigned char *)data[who[l]], rem[l] = len[who[l]], live++;
    }
  }
  int k = 0;
  for (int l = 0; l < L; l++)
    if (who[l] >= 0)
      rest->data[k] = (const char *)p[l], rest->len[k] = rem[l], rest->seed[k] = hs[l], rest->at[k++] = who[l];
  return k;
}
#endif

/*
 * hash.c — FNV-1a 64, the hash of every point's `_hash` and `_text_hash` (reconcile computes the
 * same from the live row, so the function is fixed): one string, or a batch's strings side by
 * side (four scalar chains here; sixteen AVX2 lanes in hash_avx2.c, chosen once per process by
 * asking the CPU, as float_text.c does). Pure; any thread; no allocation.
 * Invariant: every path gives p2q_hash64's value, byte for byte (tests/unit/test_points.c).
 */
#include "pg2qdrant/cpu.h"
#include "pg2qdrant/hash.h"
#include "hash_int.h"

#include <inttypes.h>
#include <stdio.h>

uint64_t p2q_hash64(const void *data, size_t len) { return p2q_hash64_cont(P2Q_HASH64_BASIS, data, len); }

uint64_t p2q_hash64_cont(uint64_t h, const void *data, size_t len) {
  const unsigned char *p = data;
  for (size_t i = 0; i < len; i++) {
    h ^= p[i];
    h *= 0x100000001b3ULL; /* FNV prime */
  }
  return h;
}

/* FNV-1a is one multiply per byte, each waiting for the last (~4 cycles a byte): four strings
   hashed side by side keep four chains in flight. A lane whose string ended takes the next one;
   a lane with none left re-hashes a live lane's bytes, its result unused. */
static void hash64_cont(const char *const *data, const size_t *len, const uint64_t *seed, int n, uint64_t *out) {
  const unsigned char *p[4];
  size_t rem[4];
  uint64_t h[4];
  int who[4], next = 0, live = 0;
  for (int l = 0; l < 4; l++) {
    who[l] = next < n ? next++ : -1;
    if (who[l] >= 0) p[l] = (const unsigned char *)data[who[l]], rem[l] = len[who[l]], live++;
    h[l] = who[l] >= 0 && seed ? seed[who[l]] : P2Q_HASH64_BASIS;
  }
  while (live) {
    size_t m = SIZE_MAX;
    int any = 0;
    for (int l = 0; l < 4; l++)
      if (who[l] >= 0 && rem[l] < m) m = rem[l], any = l;
    for (int l = 0; l < 4; l++)
      if (who[l] < 0) p[l] = p[any], rem[l] = rem[any];
    uint64_t h0 = h[0], h1 = h[1], h2 = h[2], h3 = h[3];
    for (size_t i = 0; i < m; i++) {
      h0 = (h0 ^ p[0][i]) * 0x100000001b3ULL;
      h1 = (h1 ^ p[1][i]) * 0x100000001b3ULL;
      h2 = (h2 ^ p[2][i]) * 0x100000001b3ULL;
      h3 = (h3 ^ p[3][i]) * 0x100000001b3ULL;
    }
    h[0] = h0, h[1] = h1, h[2] = h2, h[3] = h3;
    for (int l = 0; l < 4; l++) {
      p[l] += m, rem[l] -= m;
      if (who[l] < 0 || rem[l]) continue;
      out[who[l]] = h[l];
      live--;
      who[l] = next < n ? next++ : -1;
      if (who[l] >= 0) p[l] = (const unsigned char *)data[who[l]], rem[l] = len[who[l]], live++;
      h[l] = who[l] >= 0 && seed ? seed[who[l]] : P2Q_HASH64_BASIS;
    }
  }
}

#ifdef P2Q_HASH_AVX2
#define COMPILED 1
#else
#define COMPILED 0
#endif
static int simd = -1; /* p2q_hash64_many takes the AVX2 path (hash_avx2.c): cpu.h */

int p2q_hash64_set_simd(int on) { return p2q_cpu_avx2_choose(&simd, COMPILED, on); }

void p2q_hash64_many(const char *const *data, const size_t *len, int n, uint64_t *out) {
  p2q_hash64_many_cont(data, len, NULL, n, out);
}

void p2q_hash64_many_cont(const char *const *data, const size_t *len, const uint64_t *seed, int n, uint64_t *out) {
#ifdef P2Q_HASH_AVX2
  if (n > 8 && p2q_cpu_avx2_chosen(&simd, COMPILED)) {
    p2q_hash_rest_t r;
    uint64_t o4[4];
    int k = p2q_hash64_many_avx2(data, len, seed, n, out, &r);
    hash64_cont(r.data, r.len, r.seed, k, o4);
    for (int i = 0; i < k; i++) out[r.at[i]] = o4[i];
    return;
  }
#endif
  hash64_cont(data, len, seed, n, out);
}

void p2q_hash64_hex(const void *data, size_t len, char out[17]) {
  snprintf(out, 17, "%016" PRIx64, p2q_hash64(data, len));
}

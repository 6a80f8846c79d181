/*
 * hash_int.h — what p2q_hash64_many's two files share (not a public header): hash.c (FNV-1a 64,
 * four strings side by side in scalar registers, the run-time choice of path) calls hash_avx2.c
 * (sixteen strings side by side in AVX2 registers), which calls nothing back: it hands its last
 * strings to hash.c.
 */
#ifndef P2Q_HASH_INT_H
#define P2Q_HASH_INT_H

#include <stddef.h>
#include <stdint.h>

/* The strings the AVX2 path left to the scalar one: data[i][0..len[i]) still to hash, continued
   from seed[i], the result going to out[at[i]]. */
typedef struct {
  const char *data[4];
  size_t len[4];
  uint64_t seed[4];
  int at[4];
} p2q_hash_rest_t;

#if defined(__x86_64__) && defined(__GNUC__) && !defined(P2Q_HASH_NO_AVX2) /* -DP2Q_HASH_NO_AVX2: scalar only */
#define P2Q_HASH_AVX2 1
/* p2q_hash64_many_cont on a CPU with AVX2 (16 lanes) for n > 4 strings; returns how many (<= 4)
   it left in *rest, their out[] entries unwritten (out may be seed: a lane's seed is read when it
   takes its string, its out written when the string ends). */
int p2q_hash64_many_avx2(const char *const *data, const size_t *len, const uint64_t *seed, int n, uint64_t *out,
                         p2q_hash_rest_t *rest);
#endif

#endif

/*
 * hash_int.h — what p2q_hash64_many's two files share (not a public header): points.c (FNV-1a
 * 64, four strings side by side in scalar registers, the run-time choice of path) and
 * hash_avx2.c (sixteen strings side by side in AVX2 registers).
 */
#ifndef P2Q_HASH_INT_H
#define P2Q_HASH_INT_H

#include <stddef.h>
#include <stdint.h>

/* out[i] = FNV-1a 64 of data[i][0..len[i]) continued from seed[i] (the offset basis where seed
   is NULL), four strings side by side. */
void p2q_hash64_cont(const char *const *data, const size_t *len, const uint64_t *seed, int n, uint64_t *out);

#if defined(__x86_64__) && defined(__GNUC__) && !defined(P2Q_HASH_NO_AVX2) /* -DP2Q_HASH_NO_AVX2: scalar only */
#define P2Q_HASH_AVX2 1
/* p2q_hash64_many on a CPU with AVX2 (16 lanes; the last few strings finish in p2q_hash64_cont). */
void p2q_hash64_many_avx2(const char *const *data, const size_t *len, int n, uint64_t *out);
#endif

#endif

/*
 * hash.h — FNV-1a 64 (src/hash.c): every point's `_hash` (of its snapshot text) and
 * `_text_hash` (of the embedded text), computed the same way by reconcile. Pure; any thread.
 */
#ifndef P2Q_HASH_H
#define P2Q_HASH_H

#include <stddef.h>
#include <stdint.h>

/* FNV-1a 64 of a byte string, and the same as 16 lowercase hex digits (the payload's `_hash`). */
uint64_t p2q_hash64(const void *data, size_t len);
void p2q_hash64_hex(const void *data, size_t len, char out[17]);
/* out[i] = p2q_hash64(data[i], len[i]) for i < n, several side by side (a batch's snapshots). */
void p2q_hash64_many(const char *const *data, const size_t *len, int n, uint64_t *out);
/* p2q_hash64_many's path: 1 = AVX2 where the CPU has it (the default), 0 = scalar (tests,
   benchmarks); returns the path taken. */
int p2q_hash64_set_simd(int on);

#endif

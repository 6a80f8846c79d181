/*
 * hash.h — FNV-1a 64 (src/hash.c): every point's `_hash` (of its snapshot text) and
 * `_text_hash` (of the embedded text), computed the same way by reconcile. Pure; any thread.
 */
#ifndef P2Q_HASH_H
#define P2Q_HASH_H

#include <stddef.h>
#include <stdint.h>

#define P2Q_HASH64_BASIS 0xcbf29ce484222325ULL /* FNV-1a 64 offset basis: the hash of "" */

/* FNV-1a 64 of a byte string, and the same as 16 lowercase hex digits (the payload's `_hash`). */
uint64_t p2q_hash64(const void *data, size_t len);
/* The hash of a string whose first bytes hashed to h, continued over data[0..len): a text in
   pieces hashes as p2q_hash64_cont(p2q_hash64(a, na), b, nb) == p2q_hash64(a ‖ b). */
uint64_t p2q_hash64_cont(uint64_t h, const void *data, size_t len);
void p2q_hash64_hex(const void *data, size_t len, char out[17]);
/* out[i] = p2q_hash64(data[i], len[i]) for i < n, several side by side (a batch's snapshots). */
void p2q_hash64_many(const char *const *data, const size_t *len, int n, uint64_t *out);
/* p2q_hash64_many continued: out[i] = p2q_hash64_cont(seed[i], data[i], len[i]) (seed NULL: from
   the basis); out may be seed. */
void p2q_hash64_many_cont(const char *const *data, const size_t *len, const uint64_t *seed, int n, uint64_t *out);
/* p2q_hash64_many's path: 1 = AVX2 where the CPU has it (the default), 0 = scalar (tests,
   benchmarks); returns the path taken. */
int p2q_hash64_set_simd(int on);

#endif

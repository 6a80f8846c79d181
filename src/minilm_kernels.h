/*
 * minilm_kernels.h — element-wise kernels of the MiniLM forward pass (internal).
 * Implemented in minilm_kernels.c, the one file compiled with -O3 -ffast-math (src/flags.cmake)
 * so GCC vectorises erff/expf through glibc's libmvec; dispatched at run time by CPU feature
 * (AVX-512 / AVX2+FMA / baseline). Pure functions, any thread.
 */
#ifndef P2Q_MINILM_KERNELS_H
#define P2Q_MINILM_KERNELS_H

#include <stddef.h>

/* x[i] = gelu(x[i]) for i < n, exact-erf GELU 0.5·x·(1 + erf(x/√2)). */
void p2q_mk_gelu(float *x, size_t n);
/* Row-wise softmax of a rows×n matrix (leading dimension ld), in place. */
void p2q_mk_softmax_rows(float *s, size_t rows, size_t n, size_t ld);
/* x[r] = LayerNorm(x[r] + res[r]) · w + b over rows of n (biased variance); res may be NULL. */
void p2q_mk_add_layernorm(float *x, const float *res, const float *w, const float *b, size_t rows,
                          size_t n, float eps);

/* Pack a row-major [N, K] weight (N a multiple of 16) into 16-column panels for
 * p2q_mk_gemm_packed: wp[(p*K + k)*16 + j] = w[(16p + j)*K + k]. */
void p2q_mk_pack_weights(const float *w, size_t N, size_t K, float *wp);
/* y[M, N] += x[M, K] · Wᵀ from packed W (small-M path; no per-call packing). */
void p2q_mk_gemm_packed(const float *x, size_t M, size_t K, const float *wp, size_t N, float *y);

#endif

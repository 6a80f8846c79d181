/*
 * minilm_kernels.h — element-wise kernels of the MiniLM forward pass (internal).
 * Implemented in minilm_kernels.c, the one file compiled with -O3 -ffast-math (src/flags.cmake)
 * so GCC vectorises erff/expf through glibc's libmvec. Pure functions, any thread.
 */
#ifndef P2Q_MINILM_KERNELS_H
#define P2Q_MINILM_KERNELS_H

#include <stddef.h>

/* x[r*n + j] = gelu(x[r*n + j] + b[j]) for r < rows, exact-erf GELU. */
void p2q_mk_bias_gelu(float *x, const float *b, size_t rows, size_t n);
/* Row-wise softmax of a rows×n matrix (leading dimension ld), in place. */
void p2q_mk_softmax_rows(float *s, size_t rows, size_t n, size_t ld);

#endif

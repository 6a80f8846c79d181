/*
 * float_text_int.h — what the float4 printer's two files share (not a public header):
 * float_text.c (the scalar Schubfach printer, its tables, the run-time choice of path) and
 * float_text_avx2.c (the same decisions and layouts four floats at a time in AVX2 registers).
 */
#ifndef P2Q_FLOAT_TEXT_INT_H
#define P2Q_FLOAT_TEXT_INT_H

#include <stdint.h>

extern const uint64_t p2q_ft_g10[77]; /* ceil(10^j * 2^(63 - floor(log2 10^j))), j = -31..45 */
extern const int8_t p2q_ft_exp_k[256]; /* k = floor(q log10 2) per exponent field */
extern const int8_t p2q_ft_exp_h[256]; /* h = q + floor(-k log2 10) + 1 per exponent field */
extern const char p2q_ft_pairs[201];   /* "00" "01" … "99" */

#define P2Q_FT_ZEROS 0x3030303030303030ull /* "00000000" */

#if defined(__x86_64__) && defined(__GNUC__) && !defined(P2Q_FT_NO_AVX2) /* -DP2Q_FT_NO_AVX2: scalar only */
#define P2Q_FT_AVX2 1
/*
 * Print the elements [*i, count) of a real[]'s array_send() bytes at *pp (never beyond end) four
 * at a time, as p2q_float4_json_elems does, while four are left and all four are 4 bytes long and
 * finite, non-zero floats not at a power of two (the lower neighbour closer): advances *pp and *i
 * past what it printed (a multiple of 4) and returns the end of the text. Only on a CPU with AVX2.
 */
char *p2q_ft_elems_avx2(char *o, const unsigned char **pp, const unsigned char *end, int32_t *i, int32_t count);
#endif

#endif

/*
 * float_text.h — a real (float4) as the exact text PostgreSQL prints for it when
 * extra_float_digits > 0, as the capture triggers pin it (session.h). Pure; any thread.
 */
#ifndef P2Q_FLOAT_TEXT_H
#define P2Q_FLOAT_TEXT_H

#include <stdint.h>

#define P2Q_FLOAT4_TEXT_MAX 16 /* "-1.17549435e-38" is 15 bytes; no NUL is written */

/*
 * Write the float whose IEEE 754 binary32 bits are `bits` as float4out prints it and return the
 * length: the shortest decimal that reads back as the same float (the closest to it when several
 * have that length, ties to an even last digit), in fixed notation for decimal exponents -4..5
 * ("0.001", "123.45", "100000"), else "d.ddde±XX" ("1e+06", "1.5e-05"); "0", "-0", "NaN"
 * (whatever its sign and payload), "Infinity", "-Infinity". May write all P2Q_FLOAT4_TEXT_MAX
 * bytes of out, beyond the text.
 */
int p2q_float4_text(uint32_t bits, char out[P2Q_FLOAT4_TEXT_MAX]);

/*
 * The `count` elements of one innermost dimension of a real[]'s array_send() bytes, from *p
 * (never beyond end): per element a big-endian length (-1: NULL; else 4), then the float's 4
 * bytes, big-endian. Written at o as to_json prints them: comma-separated; null; numbers as
 * p2q_float4_text; NaN and infinities as the JSON strings "NaN", "Infinity", "-Infinity". Needs
 * room for count * (P2Q_FLOAT4_TEXT_MAX + 3) bytes at o. Returns the end of the text and
 * advances *p, or NULL when the bytes end early or hold another length. *numbers is set to 0
 * when an element is not a JSON number (null, NaN, an infinity), left as it is otherwise.
 */
char *p2q_float4_json_elems(char *o, const unsigned char **p, const unsigned char *end, int32_t count,
                            int *numbers);

/*
 * Which path p2q_float4_json_elems takes (the text is the same): on = 1, AVX2 four floats at a
 * time where the CPU has it (x86-64; the default), else one float at a time. Returns 1 when the
 * AVX2 path is now taken. For tests and benchmarks; the last call wins for every thread.
 */
int p2q_float_text_set_simd(int on);

#endif

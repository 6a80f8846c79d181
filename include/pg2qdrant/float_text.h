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
 * (whatever its sign and payload), "Infinity", "-Infinity".
 */
int p2q_float4_text(uint32_t bits, char out[P2Q_FLOAT4_TEXT_MAX]);

#endif

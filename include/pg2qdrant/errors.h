/*
 * errors.h — pg2qdrant's error codes.
 *
 * Every fallible function returns 0 (or a non-negative value) on success and a negative
 * P2Q_E* code on failure, libuv style. The list below is the single source of truth:
 * p2q_strerror() and p2q_err_name() are generated from it. Add new codes at the end of the
 * block for your module; never reuse a number.
 */
#ifndef P2Q_ERRORS_H
#define P2Q_ERRORS_H

#define P2Q_ERRNO_MAP(XX)                                                     \
  /* generic */                                                               \
  XX(NOMEM,      -1,  "out of memory")                                        \
  XX(INVAL,      -2,  "invalid argument")                                     \
  XX(IO,         -3,  "input/output error")                                   \
  XX(NOENT,      -4,  "no such file or directory")                            \
  XX(RANGE,      -5,  "value out of range")                                   \
  XX(EXISTS,     -6,  "already exists")                                       \
  XX(CANCELED,   -7,  "operation canceled")                                   \
  XX(TIMEOUT,    -8,  "operation timed out")                                  \
  XX(BUSY,       -9,  "resource busy")                                        \
  XX(INTERNAL,   -10, "internal error")                                       \
  XX(OVERFLOW,   -11, "buffer or size overflow")                              \
  /* config */                                                                \
  XX(CONFIG,     -20, "invalid configuration")                                \
  XX(NOKEY,      -21, "unknown configuration key")                            \
  XX(SECRET,     -22, "secret must come from the environment")                \
  /* postgres */                                                              \
  XX(PG_CONNECT, -30, "cannot connect to PostgreSQL")                         \
  XX(PG_QUERY,   -31, "PostgreSQL query failed")                              \
  XX(PG_LOST,    -32, "PostgreSQL connection lost")                           \
  XX(PG_DENIED,  -33, "PostgreSQL permission denied")                         \
  /* qdrant / http */                                                         \
  XX(HTTP,       -40, "HTTP transport error")                                 \
  XX(HTTP_STATUS,-41, "unexpected HTTP status")                               \
  XX(QDRANT,     -42, "Qdrant rejected the request")                          \
  XX(BADJSON,    -43, "malformed JSON")                                       \
  XX(MISMATCH,   -44, "collection configuration mismatch")                    \
  XX(NODE,       -45, "a Qdrant node failed; another node takes the requests") \
  /* model / embedder */                                                      \
  XX(MODEL,      -60, "invalid or corrupt model file")                        \
  XX(VOCAB,      -61, "invalid vocabulary")                                   \
  XX(UTF8,       -62, "invalid UTF-8 input")                                  \
  XX(EMBED,      -63, "embedding failed")                                     \
  XX(TOOLONG,    -64, "input too long")

typedef enum {
#define XX(name, code, msg) P2Q_E##name = code,
  P2Q_ERRNO_MAP(XX)
#undef XX
  P2Q_OK = 0
} p2q_errno_t;

/* Human-readable message for a P2Q_E* code ("unknown error" for anything else). */
const char *p2q_strerror(int err);
/* Symbolic name, e.g. "P2Q_EINVAL". */
const char *p2q_err_name(int err);

#endif

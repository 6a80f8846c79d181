/*
 * buf.h — a growable byte buffer for building SQL and JSON.
 *
 * Appends never fail loudly: on allocation failure the buffer remembers P2Q_ENOMEM in `err` and
 * ignores further appends, so builders check once at the end (p2q_buf_error()). The content is
 * always NUL-terminated. Not thread-safe; a buffer belongs to one thread at a time.
 */
#ifndef P2Q_BUF_H
#define P2Q_BUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
  char *data;
  size_t len;
  size_t cap;
  int err;
} p2q_buf_t;

#define P2Q_BUF_INIT {NULL, 0, 0, 0}

int  p2q_buf_reserve(p2q_buf_t *b, size_t extra);
void p2q_buf_append(p2q_buf_t *b, const char *s, size_t n);
void p2q_buf_puts(p2q_buf_t *b, const char *s);
void p2q_buf_putc(p2q_buf_t *b, char c);
void p2q_buf_printf(p2q_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void p2q_buf_put_i64(p2q_buf_t *b, int64_t v); /* decimal, as "%" PRId64 prints it, without printf */
void p2q_buf_reset(p2q_buf_t *b);           /* len = 0, keeps memory, clears err */
void p2q_buf_free(p2q_buf_t *b);
char *p2q_buf_steal(p2q_buf_t *b);          /* returns data (caller frees); buffer emptied */
static inline int p2q_buf_error(const p2q_buf_t *b) { return b->err; }
static inline const char *p2q_buf_str(const p2q_buf_t *b) { return b->data ? b->data : ""; }

/* JSON string literal (with quotes), escaping per RFC 8259. */
void p2q_buf_json_string(p2q_buf_t *b, const char *s, size_t n);

#endif

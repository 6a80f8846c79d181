/*
 * http_parse.h — a strict, incremental HTTP/1.x request parser for the status endpoint (pure;
 * no I/O, no allocation; unit-tested in tests/unit/test_http_parse.c).
 *
 * The caller keeps the bytes received so far in one buffer and calls p2q_http_parse() after
 * every read. The parser re-scans from the start each time (requests are small, the header
 * section is capped), so partial input fed byte by byte is handled without parser state.
 * A complete request is consumed as a whole (request line, headers and a Content-Length body,
 * which the server ignores); the rest of the buffer is the next pipelined request.
 *
 * Accepted: `METHOD SP /origin-form SP HTTP/1.0|1.1`, CRLF or bare LF line ends, headers
 * `name: value`. Refused (P2Q_EINVAL with req->status set): malformed request line or header,
 * obsolete line folding, an absolute or non-'/' target → 400; header section longer than
 * max_header or a Content-Length above max_body → 413; a target longer than P2Q_HTTP_PATH_MAX
 * → 414; Transfer-Encoding (no chunked bodies here) → 501; another HTTP version → 505.
 */
#ifndef P2Q_HTTP_PARSE_H
#define P2Q_HTTP_PARSE_H

#include <stddef.h>

#define P2Q_HTTP_METHOD_MAX 16
#define P2Q_HTTP_PATH_MAX 256

typedef struct {
  char method[P2Q_HTTP_METHOD_MAX]; /* as sent (case-sensitive per RFC 9110) */
  char path[P2Q_HTTP_PATH_MAX];     /* target without the query string, NUL-terminated */
  int minor;                        /* HTTP/1.<minor> */
  int keep_alive;                   /* 1.1 unless "Connection: close"; 1.0 only with keep-alive */
  size_t content_length;
  int status;                       /* on P2Q_EINVAL: the HTTP status to answer with */
} p2q_http_req_t;

/* Parse one request from buf[0..len). Returns the number of bytes it occupies (> 0) when
 * complete, 0 when more input is needed, or P2Q_EINVAL (req->status says which answer). */
long p2q_http_parse(const char *buf, size_t len, size_t max_header, size_t max_body,
                    p2q_http_req_t *req);

/* Reason phrase for a status code ("OK", "Not Found", ...; "Unknown" otherwise). */
const char *p2q_http_reason(int status);

#endif

/*
 * http_parse.c — the status endpoint's HTTP/1.x request parser (see http_parse.h). Pure: no I/O,
 * no allocation, no state between calls; any thread. Invariants: never reads past buf[len);
 * never looks beyond max_header bytes for the end of the header section; a result > 0 is never
 * larger than len.
 */
#include "pg2qdrant/http_parse.h"
#include "pg2qdrant/errors.h"

#include <string.h>
#include <strings.h>

static int is_tchar(unsigned char c) {
  if (c >= '0' && c <= '9') return 1;
  if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return 1;
  return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static long fail(p2q_http_req_t *req, int status) {
  req->status = status;
  return P2Q_EINVAL;
}

/* Line [s, e) without its line end; *next is the start of the following line. Returns 0, or -1
 * when no '\n' occurs before end, or 400 for a stray CR. */
static int next_line(const char *s, const char *end, const char **e, const char **next) {
  const char *nl = memchr(s, '\n', (size_t)(end - s));
  if (!nl) return -1;
  *next = nl + 1;
  *e = nl > s && nl[-1] == '\r' ? nl - 1 : nl;
  return memchr(s, '\r', (size_t)(*e - s)) ? 400 : 0;
}

/* Request line "METHOD SP target SP HTTP/1.x". 0 or an HTTP status. */
static int parse_request_line(const char *s, const char *e, p2q_http_req_t *req) {
  const char *p = s;
  while (p < e && is_tchar((unsigned char)*p)) p++;
  if (p == s || p >= e || *p != ' ' || (size_t)(p - s) >= sizeof req->method) return 400;
  memcpy(req->method, s, (size_t)(p - s));
  req->method[p - s] = 0;
  const char *t = ++p;
  while (p < e && *p != ' ') {
    if ((unsigned char)*p <= 0x20 || *p == 0x7f) return 400;
    p++;
  }
  if (p == t || p >= e || *t != '/') return 400;
  const char *q = memchr(t, '?', (size_t)(p - t));
  size_t plen = (size_t)((q ? q : p) - t);
  if (plen >= sizeof req->path) return 414;
  memcpy(req->path, t, plen);
  req->path[plen] = 0;
  p++;
  if (e - p != 8 || memcmp(p, "HTTP/", 5) || p[6] != '.' || p[5] < '0' || p[5] > '9' ||
      p[7] < '0' || p[7] > '9')
    return 400;
  if (p[5] != '1') return 505;
  req->minor = p[7] - '0';
  req->keep_alive = req->minor >= 1;
  return 0;
}

static int has_token(const char *v, const char *ve, const char *tok) {
  size_t n = strlen(tok);
  while (v < ve) {
    while (v < ve && (*v == ' ' || *v == '\t' || *v == ',')) v++;
    const char *s = v;
    while (v < ve && *v != ',' && *v != ' ' && *v != '\t') v++;
    if ((size_t)(v - s) == n && !strncasecmp(s, tok, n)) return 1;
  }
  return 0;
}

/* One header line [s, e). 0 or an HTTP status. */
static int parse_header(const char *s, const char *e, p2q_http_req_t *req, int *have_cl, int *host) {
  const char *p = s;
  if (*s == ' ' || *s == '\t') return 400; /* obsolete line folding */
  while (p < e && is_tchar((unsigned char)*p)) p++;
  if (p == s || p >= e || *p != ':') return 400;
  size_t nlen = (size_t)(p - s);
  const char *v = p + 1, *ve = e;
  for (const char *c = v; c < ve; c++)
    if (((unsigned char)*c < 0x20 && *c != '\t') || *c == 0x7f) return 400;
  while (v < ve && (*v == ' ' || *v == '\t')) v++;
  while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t')) ve--;
  if (nlen == 4 && !strncasecmp(s, "host", 4)) (*host)++;
  else if (nlen == 17 && !strncasecmp(s, "transfer-encoding", 17)) return 501;
  else if (nlen == 10 && !strncasecmp(s, "connection", 10)) {
    if (has_token(v, ve, "close")) req->keep_alive = 0;
    else if (has_token(v, ve, "keep-alive")) req->keep_alive = 1;
  } else if (nlen == 14 && !strncasecmp(s, "content-length", 14)) {
    size_t n = 0;
    if (v == ve) return 400;
    for (const char *c = v; c < ve; c++) {
      if (*c < '0' || *c > '9' || n > ((size_t)-1 - 9) / 10) return 400;
      n = n * 10 + (size_t)(*c - '0');
    }
    if (*have_cl && n != req->content_length) return 400;
    *have_cl = 1;
    req->content_length = n;
  }
  return 0;
}

long p2q_http_parse(const char *buf, size_t len, size_t max_header, size_t max_body,
                    p2q_http_req_t *req) {
  memset(req, 0, sizeof *req);
  const char *p = buf, *end = buf + (len < max_header ? len : max_header), *e, *next;
  while (p < end && (*p == '\r' || *p == '\n')) p++; /* empty lines before a request are ignored */
  /* garbage is refused as soon as it shows, not after max_header bytes or the idle timeout */
  for (const char *c = p; c < end && *c != ' '; c++)
    if (!is_tchar((unsigned char)*c)) return fail(req, 400);
  int st = next_line(p, end, &e, &next);
  if (st < 0) return len >= max_header ? fail(req, 413) : 0;
  if (st || (st = parse_request_line(p, e, req))) return fail(req, st);
  int have_cl = 0, host = 0;
  for (p = next;; p = next) {
    st = next_line(p, end, &e, &next);
    if (st < 0) return len >= max_header ? fail(req, 413) : 0;
    if (st) return fail(req, st);
    if (e == p) break; /* the empty line ending the header section */
    if ((st = parse_header(p, e, req, &have_cl, &host))) return fail(req, st);
  }
  if (req->minor >= 1 && host != 1) return fail(req, 400); /* RFC 9112 §3.2 */
  if (req->content_length > max_body) return fail(req, 413);
  size_t total = (size_t)(next - buf) + req->content_length;
  return total <= len ? (long)total : 0;
}

const char *p2q_http_reason(int status) {
  switch (status) {
  case 200: return "OK";
  case 400: return "Bad Request";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 408: return "Request Timeout";
  case 413: return "Content Too Large";
  case 414: return "URI Too Long";
  case 500: return "Internal Server Error";
  case 501: return "Not Implemented";
  case 503: return "Service Unavailable";
  case 505: return "HTTP Version Not Supported";
  default: return "Unknown";
  }
}

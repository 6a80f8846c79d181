/*
 * http.h — asynchronous HTTP/1.1 client: one libcurl multi handle driven by a libuv loop.
 *
 * Loop thread only (requests, callbacks, close). Connections are kept alive and easy handles
 * are reused from a small free list. At most max_concurrent requests run at once; further
 * requests wait in a FIFO. A transport failure on a *reused* keep-alive connection (reset,
 * empty reply, send/recv error — the server closes idle connections after 5 s) is retried
 * once, transparently, on a fresh connection; a failure on a fresh connection is reported.
 *
 * Every request carries `Content-Type: application/json`, `Expect:` disabled and, when an API
 * key is configured, an `api-key` header. The key is never logged or exposed in errors.
 *
 * Body ownership: by default the body is copied; with P2Q_HTTP_TAKE_BODY the library takes a
 * malloc()ed body and free()s it after the callback. If p2q_http_request() fails, the body
 * still belongs to the caller and the callback never fires.
 */
#ifndef P2Q_HTTP_H
#define P2Q_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct p2q_http_s p2q_http_t;

typedef struct {
  long status;          /* HTTP status, 0 if no response was received */
  int curl_code;        /* CURLcode (0 = CURLE_OK) */
  const char *error;    /* curl error text, "" if none */
  const char *body;     /* response body, NUL-terminated (never NULL); valid during callback */
  size_t body_len;
  int64_t retry_after_ms; /* Retry-After (delta-seconds or HTTP-date) in ms, capped at the
                             client's retry_after_max_ms; -1 if absent or unparseable */
  const char *location; /* Location header ("" if none; never followed); may hold credentials */
  double total_time;    /* seconds, including a transparent retry */
  int retried;          /* 1 if a keep-alive reset was retried */
  int connected;        /* 1 when a connection to the server was up (the request may have
                           reached it); 0: refused, unresolvable or the connect timed out */
} p2q_http_response_t;

/* err: 0 (a response arrived, whatever its status), P2Q_EHTTP (transport failure, see
 * curl_code), P2Q_ETIMEOUT (curl timeout), P2Q_EOVERFLOW (the body exceeded the request's cap:
 * transfer aborted, status is the answer's, body empty, error says so), P2Q_ECANCELED
 * (p2q_http_close), or rarely P2Q_ENOMEM/P2Q_EINVAL when a queued request could not be set up.
 * resp is never NULL. */
typedef void (*p2q_http_cb)(p2q_http_t *h, int err, const p2q_http_response_t *resp, void *arg);
typedef void (*p2q_http_close_cb)(p2q_http_t *h, void *arg);

typedef struct {
  long connect_timeout_ms;   /* 0 = 5000 */
  long timeout_ms;           /* total per request from p2q_http_request on (a wait for a slot and a
                                keep-alive retry included: never sent once used up); 0 = 60000 */
  int max_concurrent;        /* 0 = 8 */
  int max_idle_handles;      /* easy handles kept for reuse; 0 = max_concurrent */
  const char *ca_file;       /* optional CA bundle (copied); TLS peer + host verification is on */
  const char *api_key;       /* optional (copied); sent as `api-key:`; never logged */
  const char *bearer;        /* optional (copied); sent as `Authorization: Bearer …`; never logged */
  const char *user_agent;    /* NULL = "pg2qdrant" */
  size_t max_body;           /* response body cap of requests without their own; 0 = 64 MiB */
  uint64_t retry_after_max_ms; /* cap on a Retry-After (pass retry_max); 0 = 60 s */
} p2q_http_options_t;

/* TAKE_BODY: the library takes the malloc()ed body (frees it; not on failure). LEND_BODY: the
   caller keeps it, alive and unchanged until the request's callback has returned: neither copied
   nor freed (a batch's request body that its events' points also point into). */
enum { P2Q_HTTP_TAKE_BODY = 1, P2Q_HTTP_LEND_BODY = 2 };

int p2q_http_new(uv_loop_t *loop, const p2q_http_options_t *opts, p2q_http_t **out);

/* Start a request. method: "GET", "POST", "PUT", "DELETE", ... body may be NULL (len 0).
 * Returns 0 (cb fires exactly once), P2Q_EINVAL, P2Q_ENOMEM or P2Q_ECANCELED (closing). */
int p2q_http_request(p2q_http_t *h, const char *method, const char *url, const char *body,
                     size_t len, int flags, p2q_http_cb cb, void *arg);
/* The same with a response body cap for this request (0 = the client's max_body): what a real
 * answer can be. A bigger body aborts the transfer (P2Q_EOVERFLOW) and is never buffered:
 * a Content-Length over the cap fails before reading, a chunked body at the cap. */
int p2q_http_request_capped(p2q_http_t *h, const char *method, const char *url, const char *body,
                            size_t len, int flags, size_t max_body, p2q_http_cb cb, void *arg);

/* Cancel every queued and running request (callbacks fire with P2Q_ECANCELED), clean up curl,
 * close the handles, then cb (may be NULL). Safe from inside a request callback. */
int p2q_http_close(p2q_http_t *h, p2q_http_close_cb cb, void *arg);

/* Requests queued or running. */
unsigned p2q_http_pending(const p2q_http_t *h);

/* Retry-After values are parsed by p2q_retry_after_ms (backoff.h). */

#endif

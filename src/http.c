/*
 * http.c — libcurl multi driven by a libuv loop (curl's multi-uv pattern).
 *
 * Owns: one CURLM, one uv_timer_t for curl's timeouts, one 0 ms "kick" uv_timer_t that starts
 * queued requests from the loop (so no callback ever runs inside p2q_http_request), one
 * {uv_poll_t, fd} context per socket
 * curl asks us to watch (created lazily, attached with curl_multi_assign, closed on
 * CURL_POLL_REMOVE and freed in its close callback), the shared header list, a FIFO of requests
 * waiting for a concurrency slot and a small free list of easy handles for reuse.
 * Runs on the loop thread only.
 *
 * Invariants: every accepted request's callback fires exactly once, never inside
 * p2q_http_request; a request's status/result are read before curl_multi_remove_handle; a
 * transport failure on a reused connection is retried once with CURLOPT_FRESH_CONNECT; a response
 * body never exceeds the request's max_body in memory (the transfer is aborted instead);
 * curl_multi_cleanup runs while the loop, the timer and the socket contexts still exist; the
 * struct is freed only from the last uv close callback. The api-key header value is never logged.
 */
#include "pg2qdrant/http.h"

#include <curl/curl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "pg2qdrant/backoff.h"
#include "pg2qdrant/errors.h"
#include "pg2qdrant/log.h"

#define P2Q_HTTP_DEFAULT_MAX_BODY ((size_t)64 << 20) /* a client's default response cap */
#define P2Q_HTTP_DEFAULT_RETRY_AFTER_MAX 60000u      /* ms; callers pass their retry_max */

typedef struct http_req_s {
  struct http_req_s *next, *prev; /* queue (next only) or active list */
  p2q_http_t *h;
  CURL *easy;
  char *method;
  char *url;
  char *body;
  size_t body_len;
  int body_lent;      /* P2Q_HTTP_LEND_BODY: the caller's, not freed */
  p2q_http_cb cb;
  void *arg;
  char *resp;
  size_t resp_len, resp_cap;
  size_t max_body;    /* response body cap (bytes); exceeding it aborts the transfer */
  int too_large;      /* the cap was hit */
  int64_t retry_after_ms;
  char location[512]; /* Location header of the answer ("" if none; cut to fit) */
  int retried;
  double time_before; /* total_time of a failed first attempt */
  int connected;      /* a connection to the server was up (new or reused) */
  uint64_t queued_ns; /* uv_hrtime() when handed to the client: timeout_ms counts from here */
  char errbuf[CURL_ERROR_SIZE];
} http_req_t;

typedef struct sock_ctx_s {
  uv_poll_t poll;
  curl_socket_t fd;
  p2q_http_t *h;
  struct sock_ctx_s *next, *prev;
} sock_ctx_t;

struct p2q_http_s {
  uv_loop_t *loop;
  CURLM *multi;
  uv_timer_t timer;
  uv_timer_t kick;             /* 0 ms: start queued requests from the loop */
  struct curl_slist *headers;
  p2q_http_options_t opts;
  char *ca_file;
  char *user_agent;
  http_req_t *q_head, *q_tail; /* waiting for a slot */
  unsigned nqueued;
  http_req_t *active;          /* doubly linked */
  int nactive;
  http_req_t *canceled;        /* requests to fail with ECANCELED at close */
  sock_ctx_t *socks;
  CURL **idle;
  int nidle;
  int closing;
  int handles_open;
  p2q_http_close_cb close_cb;
  void *close_arg;
};

static void check_multi_info(p2q_http_t *h);
static void start_queued(p2q_http_t *h);
static void finish_close(p2q_http_t *h);
static void on_kick(uv_timer_t *t);

/* ---- pure helpers ---- */

static void req_free(http_req_t *r) {
  if (!r) return;
  free(r->method);
  free(r->url);
  if (!r->body_lent) free(r->body);
  free(r->resp);
  free(r);
}

/* ---- curl callbacks ---- */

/* Body bytes: kept up to max_body; one byte more aborts the transfer (CURLE_WRITE_ERROR) before
 * anything is allocated for it, so a huge answer never grows the process. */
static size_t on_write(char *ptr, size_t size, size_t nmemb, void *ud) {
  http_req_t *r = ud;
  size_t n = size * nmemb;
  if (n > r->max_body - r->resp_len) { /* resp_len <= max_body always */
    r->too_large = 1;
    return 0;
  }
  if (r->resp_len + n + 1 > r->resp_cap) {
    size_t cap = r->resp_cap ? r->resp_cap : 4096;
    while (cap < r->resp_len + n + 1) cap = cap > SIZE_MAX / 2 ? SIZE_MAX : cap * 2;
    if (cap > r->max_body + 1) cap = r->max_body + 1;
    char *p = realloc(r->resp, cap);
    if (!p) return 0;
    r->resp = p;
    r->resp_cap = cap;
  }
  memcpy(r->resp + r->resp_len, ptr, n);
  r->resp_len += n;
  r->resp[r->resp_len] = 0;
  return n;
}

static size_t on_header(char *buf, size_t size, size_t nitems, void *ud) {
  http_req_t *r = ud;
  size_t n = size * nitems;
  static const char name[] = "retry-after:", loc[] = "location:";
  if (n > 5 && !strncmp(buf, "HTTP/", 5)) { /* a new response (after 100-continue...) */
    r->retry_after_ms = -1;
    r->location[0] = 0;
  }
  if (n > sizeof loc - 1 && !strncasecmp(buf, loc, sizeof loc - 1)) {
    const char *v = buf + sizeof loc - 1;
    size_t l = n - (sizeof loc - 1);
    while (l && (*v == ' ' || *v == '\t')) v++, l--;
    while (l && (v[l - 1] == '\r' || v[l - 1] == '\n' || v[l - 1] == ' ')) l--;
    if (l >= sizeof r->location) l = sizeof r->location - 1;
    memcpy(r->location, v, l);
    r->location[l] = 0;
  }
  if (n > sizeof name - 1 && n < 128 && !strncasecmp(buf, name, sizeof name - 1)) {
    char v[128];
    memcpy(v, buf + sizeof name - 1, n - (sizeof name - 1));
    v[n - (sizeof name - 1)] = 0;
    r->retry_after_ms = p2q_retry_after_ms(v, (int64_t)time(NULL), r->h->opts.retry_after_max_ms);
  }
  return n;
}

static void on_sock_closed(uv_handle_t *hd) {
  sock_ctx_t *c = hd->data;
  p2q_http_t *h = c->h;
  free(c);
  h->handles_open--;
  if (h->closing && h->handles_open == 0) finish_close(h);
}

static void sock_release(p2q_http_t *h, sock_ctx_t *c) {
  if (c->prev) c->prev->next = c->next;
  else h->socks = c->next;
  if (c->next) c->next->prev = c->prev;
  uv_poll_stop(&c->poll);
  uv_close((uv_handle_t *)&c->poll, on_sock_closed);
}

static void on_poll(uv_poll_t *p, int status, int events) {
  sock_ctx_t *c = p->data;
  p2q_http_t *h = c->h;
  int flags = 0, running = 0;
  if (h->closing || !h->multi) return;
  if (status < 0) flags = CURL_CSELECT_ERR;
  if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
  if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
  curl_multi_socket_action(h->multi, c->fd, flags, &running);
  check_multi_info(h);
}

static int on_socket(CURL *e, curl_socket_t s, int what, void *userp, void *socketp) {
  p2q_http_t *h = userp;
  sock_ctx_t *c = socketp;
  if (what == CURL_POLL_REMOVE) {
    if (c) {
      if (h->multi && !h->closing) curl_multi_assign(h->multi, s, NULL);
      sock_release(h, c);
    }
    return 0;
  }
  if (!c) {
    c = calloc(1, sizeof *c);
    if (!c) return -1;
    if (uv_poll_init_socket(h->loop, &c->poll, s) != 0) { free(c); return -1; }
    c->fd = s;
    c->h = h;
    c->poll.data = c;
    c->next = h->socks;
    if (h->socks) h->socks->prev = c;
    h->socks = c;
    h->handles_open++;
    curl_multi_assign(h->multi, s, c);
  }
  int ev = 0;
  if (what == CURL_POLL_IN || what == CURL_POLL_INOUT) ev |= UV_READABLE;
  if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT) ev |= UV_WRITABLE;
  return uv_poll_start(&c->poll, ev, on_poll) == 0 ? 0 : -1;
}

static void on_timer(uv_timer_t *t) {
  p2q_http_t *h = t->data;
  int running = 0;
  if (h->closing || !h->multi) return;
  curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
  check_multi_info(h);
}

static int on_curl_timer(CURLM *m, long timeout_ms, void *userp) {
  p2q_http_t *h = userp;
  if (timeout_ms < 0) uv_timer_stop(&h->timer);
  else uv_timer_start(&h->timer, on_timer, timeout_ms == 0 ? 1 : (uint64_t)timeout_ms, 0);
  return 0;
}

/* ---- requests ---- */

static void active_link(p2q_http_t *h, http_req_t *r) {
  r->prev = NULL;
  r->next = h->active;
  if (h->active) h->active->prev = r;
  h->active = r;
  h->nactive++;
}

static void active_unlink(p2q_http_t *h, http_req_t *r) {
  if (r->prev) r->prev->next = r->next;
  else h->active = r->next;
  if (r->next) r->next->prev = r->prev;
  r->next = r->prev = NULL;
  h->nactive--;
}

static void easy_release(p2q_http_t *h, CURL *e) {
  if (!e) return;
  if (!h->closing && h->nidle < h->opts.max_idle_handles) {
    curl_easy_reset(e); /* drop pointers into the finished request (error buffer, data) */
    h->idle[h->nidle++] = e;
  } else {
    curl_easy_cleanup(e);
  }
}

static int easy_setup(p2q_http_t *h, http_req_t *r) {
  /* timeout_ms bounds a request from the moment it was handed over, whatever it waited for (a
     concurrency slot, a first attempt on a dropped keep-alive connection): callers rely on it
     (a worker's write budget: lease - qdrant.timeout - 1 s). Out of time: never sent. */
  int64_t left = (int64_t)h->opts.timeout_ms - (int64_t)((uv_hrtime() - r->queued_ns) / 1000000u);
  if (left <= 0) {
    snprintf(r->errbuf, sizeof r->errbuf, "timeout (%ld ms) used up before the request could be sent (waiting for one of %d "
             "connections, or a first attempt on a dropped keep-alive connection)", (long)h->opts.timeout_ms,
             h->opts.max_concurrent);
    return P2Q_ETIMEOUT;
  }
  CURL *e = h->nidle > 0 ? h->idle[--h->nidle] : curl_easy_init();
  if (!e) return P2Q_ENOMEM;
  r->easy = e; /* pooled handles were curl_easy_reset (the connection cache lives in the multi) */
  r->errbuf[0] = 0;
  r->retry_after_ms = -1;
  r->location[0] = 0;
  r->too_large = 0;
  int bad = 0;
  bad |= curl_easy_setopt(e, CURLOPT_URL, r->url) != CURLE_OK;
  bad |= curl_easy_setopt(e, CURLOPT_PRIVATE, r) != CURLE_OK;
  bad |= curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) != CURLE_OK;
  bad |= curl_easy_setopt(e, CURLOPT_HTTPHEADER, h->headers) != CURLE_OK;
  bad |= curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write) != CURLE_OK;
  bad |= curl_easy_setopt(e, CURLOPT_WRITEDATA, r) != CURLE_OK;
  bad |= curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header) != CURLE_OK;
  bad |= curl_easy_setopt(e, CURLOPT_HEADERDATA, r) != CURLE_OK;
  bad |= curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf) != CURLE_OK;
  bad |= curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, h->opts.connect_timeout_ms) != CURLE_OK;
  bad |= curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)left) != CURLE_OK;
  bad |= curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1) != CURLE_OK;
  bad |= curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L) != CURLE_OK;
  bad |= curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L) != CURLE_OK;
  bad |= curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L) != CURLE_OK;
  bad |= curl_easy_setopt(e, CURLOPT_USERAGENT, h->user_agent) != CURLE_OK;
  bad |= curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, r->retried ? 1L : 0L) != CURLE_OK;
  /* a Content-Length over the cap fails before the body is read */
  if (r->max_body < (size_t)INT64_MAX)
    bad |= curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)r->max_body) != CURLE_OK;
#if LIBCURL_VERSION_NUM >= 0x075500
  bad |= curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK;
#endif
  if (h->ca_file) bad |= curl_easy_setopt(e, CURLOPT_CAINFO, h->ca_file) != CURLE_OK;
  if (!strcmp(r->method, "GET")) {
    bad |= curl_easy_setopt(e, CURLOPT_HTTPGET, 1L) != CURLE_OK;
  } else if (!strcmp(r->method, "HEAD")) {
    bad |= curl_easy_setopt(e, CURLOPT_NOBODY, 1L) != CURLE_OK;
  } else {
    bad |= curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, r->method) != CURLE_OK;
    if (r->body || strcmp(r->method, "DELETE") != 0) {
      bad |= curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len) != CURLE_OK;
      bad |= curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body ? r->body : "") != CURLE_OK;
    }
  }
  if (bad) { curl_easy_cleanup(e); r->easy = NULL; return P2Q_EINVAL; }
  if (curl_multi_add_handle(h->multi, e) != CURLM_OK) {
    curl_easy_cleanup(e);
    r->easy = NULL;
    return P2Q_EHTTP;
  }
  active_link(h, r);
  return 0;
}

static void req_complete(p2q_http_t *h, http_req_t *r, int err, long status, int code,
                         double ttime) {
  p2q_http_response_t resp;
  memset(&resp, 0, sizeof resp);
  resp.status = status;
  resp.curl_code = code;
  resp.error = r->errbuf[0] ? r->errbuf : (code ? curl_easy_strerror((CURLcode)code) : "");
  if (err == P2Q_ECANCELED) resp.error = "canceled";
  resp.body = r->resp ? r->resp : "";
  resp.body_len = r->resp_len;
  resp.retry_after_ms = err == P2Q_ECANCELED ? -1 : r->retry_after_ms;
  resp.location = r->location;
  resp.total_time = r->time_before + ttime;
  resp.retried = r->retried;
  resp.connected = r->connected;
  if (err && err != P2Q_ECANCELED) {
    char q[300];
    P2Q_DEBUG("http_failed", "method=%s status=%ld curl=%d err=%s", r->method, status, code,
              p2q_log_q(q, sizeof q, resp.error));
  }
  r->cb(h, err, &resp, r->arg);
  req_free(r);
}

/* A transport failure on a reused keep-alive connection: the server dropped an idle connection. */
static int is_keepalive_reset(CURLcode rc, long nconnects, const http_req_t *r) {
  if (r->retried || nconnects != 0) return 0;
  return rc == CURLE_GOT_NOTHING || rc == CURLE_SEND_ERROR || rc == CURLE_RECV_ERROR;
}

static void check_multi_info(p2q_http_t *h) {
  CURLMsg *msg;
  int left;
  while (!h->closing && (msg = curl_multi_info_read(h->multi, &left))) {
    if (msg->msg != CURLMSG_DONE) continue;
    CURL *e = msg->easy_handle;
    CURLcode rc = msg->data.result;
    http_req_t *r = NULL;
    long status = 0, nconn = 1;
    double tt = 0;
    curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&r);
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(e, CURLINFO_TOTAL_TIME, &tt);
    curl_easy_getinfo(e, CURLINFO_NUM_CONNECTS, &nconn);
    /* did the request reach the server? Not after a refused/unresolvable connect; a request
       about to be sent has a pretransfer time (a connect timeout has none) */
    double pt = 0;
    curl_easy_getinfo(e, CURLINFO_PRETRANSFER_TIME, &pt);
    r->connected = status > 0 || (rc != CURLE_COULDNT_CONNECT && rc != CURLE_COULDNT_RESOLVE_HOST &&
                                  rc != CURLE_COULDNT_RESOLVE_PROXY && pt > 0);
    curl_multi_remove_handle(h->multi, e);
    active_unlink(h, r);
    r->easy = NULL;
    if (rc != CURLE_OK && is_keepalive_reset(rc, nconn, r)) {
      P2Q_DEBUG("http_keepalive_retry", "method=%s curl=%d", r->method, (int)rc);
      r->retried = 1;
      r->time_before = tt;
      r->resp_len = 0;
      if (r->resp) r->resp[0] = 0;
      easy_release(h, e);
      if (easy_setup(h, r) == 0) continue;
      req_complete(h, r, P2Q_EHTTP, 0, (int)rc, 0);
      continue;
    }
    easy_release(h, e);
    int err = rc == CURLE_OK ? 0 : rc == CURLE_OPERATION_TIMEDOUT ? P2Q_ETIMEOUT : P2Q_EHTTP;
    if (rc == CURLE_FILESIZE_EXCEEDED || (rc == CURLE_WRITE_ERROR && r->too_large)) {
      err = P2Q_EOVERFLOW; /* the body is dropped: a partial answer must not be parsed */
      snprintf(r->errbuf, sizeof r->errbuf, "response body larger than %zu bytes: transfer aborted",
               r->max_body);
      r->resp_len = 0;
      if (r->resp) r->resp[0] = 0;
    }
    req_complete(h, r, err, status, (int)rc, tt);
  }
  start_queued(h);
}

/* Move waiting requests into free concurrency slots. Runs only from loop callbacks. */
static void start_queued(p2q_http_t *h) {
  while (!h->closing && h->q_head && h->nactive < h->opts.max_concurrent) {
    http_req_t *r = h->q_head;
    h->q_head = r->next;
    if (!h->q_head) h->q_tail = NULL;
    h->nqueued--;
    r->next = NULL;
    int rc = easy_setup(h, r);
    if (rc != 0) req_complete(h, r, rc, 0, rc == P2Q_ETIMEOUT ? CURLE_OPERATION_TIMEDOUT : 0, 0);
  }
}

static void on_kick(uv_timer_t *t) { start_queued(t->data); }

/* ---- lifecycle ---- */

/* What p2q_http_new allocated besides the multi handle (closed by its caller), then h itself. */
static void http_free(p2q_http_t *h) {
  curl_slist_free_all(h->headers);
  free(h->idle);
  free(h->ca_file);
  free(h->user_agent);
  free(h);
  curl_global_cleanup();
}

static void finish_close(p2q_http_t *h) {
  http_req_t *r;
  while ((r = h->canceled)) {
    h->canceled = r->next;
    req_complete(h, r, P2Q_ECANCELED, 0, 0, 0);
  }
  while ((r = h->q_head)) {
    h->q_head = r->next;
    req_complete(h, r, P2Q_ECANCELED, 0, 0, 0);
  }
  if (h->close_cb) h->close_cb(h, h->close_arg);
  http_free(h);
}

static void on_timer_closed(uv_handle_t *hd) {
  p2q_http_t *h = hd->data;
  if (--h->handles_open == 0) finish_close(h);
}

/* Append "<prefix><secret>" to the header list; the temporary copy is wiped. 0 or -1. */
static int add_secret_header(p2q_http_t *h, const char *prefix, const char *secret) {
  if (!secret || !*secret) return 0;
  size_t n = strlen(prefix) + strlen(secret) + 1;
  char *hdr = malloc(n);
  if (!hdr) return -1;
  snprintf(hdr, n, "%s%s", prefix, secret);
  struct curl_slist *l = curl_slist_append(h->headers, hdr);
  memset(hdr, 0, n);
  free(hdr);
  if (!l) return -1;
  h->headers = l;
  return 0;
}

int p2q_http_new(uv_loop_t *loop, const p2q_http_options_t *opts, p2q_http_t **out) {
  p2q_http_options_t def = {0};
  p2q_http_t *h = NULL;
  int rc = P2Q_ENOMEM;
  if (!loop || !out) return P2Q_EINVAL;
  if (!opts) opts = &def;
  h = calloc(1, sizeof *h);
  if (!h) goto fail;
  /* Refcounted (and thread-safe since 7.84); balanced in finish_close / the fail path. */
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) { free(h); return P2Q_EHTTP; }
  h->loop = loop;
  h->opts = *opts;
  if (h->opts.connect_timeout_ms <= 0) h->opts.connect_timeout_ms = 5000;
  if (h->opts.timeout_ms <= 0) h->opts.timeout_ms = 60000;
  if (h->opts.max_concurrent <= 0) h->opts.max_concurrent = 8;
  if (h->opts.max_idle_handles <= 0) h->opts.max_idle_handles = h->opts.max_concurrent;
  if (h->opts.max_body == 0) h->opts.max_body = P2Q_HTTP_DEFAULT_MAX_BODY;
  if (h->opts.retry_after_max_ms == 0) h->opts.retry_after_max_ms = P2Q_HTTP_DEFAULT_RETRY_AFTER_MAX;
  h->opts.api_key = NULL; /* only kept inside the header list */
  h->idle = calloc((size_t)h->opts.max_idle_handles, sizeof *h->idle);
  h->user_agent = strdup(opts->user_agent ? opts->user_agent : "pg2qdrant");
  if (!h->idle || !h->user_agent) goto fail;
  if (opts->ca_file && !(h->ca_file = strdup(opts->ca_file))) goto fail;
  struct curl_slist *l = curl_slist_append(NULL, "Content-Type: application/json");
  if (l) h->headers = l, l = curl_slist_append(h->headers, "Accept: application/json");
  if (l) h->headers = l, l = curl_slist_append(h->headers, "Expect:");
  if (!l) goto fail;
  h->headers = l;
  if (add_secret_header(h, "api-key: ", opts->api_key) || add_secret_header(h, "Authorization: Bearer ", opts->bearer))
    goto fail;
  h->opts.bearer = NULL; /* only kept inside the header list */
  h->multi = curl_multi_init();
  if (!h->multi) goto fail;
  curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
  curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
  curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
  curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
  curl_multi_setopt(h->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)h->opts.max_concurrent);
  curl_multi_setopt(h->multi, CURLMOPT_MAXCONNECTS, (long)h->opts.max_concurrent);
  if (uv_timer_init(loop, &h->timer) != 0 || uv_timer_init(loop, &h->kick) != 0) {
    rc = P2Q_EIO; /* uv_timer_init cannot fail on Linux; nothing to close */
    goto fail;
  }
  h->timer.data = h; /* set at init: the forgotten-data bug of a known example */
  h->kick.data = h;
  h->handles_open = 2;
  *out = h;
  return 0;
fail:
  if (h) {
    if (h->multi) curl_multi_cleanup(h->multi);
    http_free(h);
  }
  return rc;
}

int p2q_http_request(p2q_http_t *h, const char *method, const char *url, const char *body,
                     size_t len, int flags, p2q_http_cb cb, void *arg) {
  return p2q_http_request_capped(h, method, url, body, len, flags, 0, cb, arg);
}

int p2q_http_request_capped(p2q_http_t *h, const char *method, const char *url, const char *body,
                            size_t len, int flags, size_t max_body, p2q_http_cb cb, void *arg) {
  http_req_t *r = NULL;
  if (!h || !method || !*method || !url || !cb || (len && !body)) return P2Q_EINVAL;
  if (h->closing) return P2Q_ECANCELED;
  r = calloc(1, sizeof *r);
  if (!r) goto fail;
  r->h = h;
  r->cb = cb;
  r->arg = arg;
  r->retry_after_ms = -1;
  r->queued_ns = uv_hrtime();
  r->max_body = max_body ? max_body : h->opts.max_body;
  if (r->max_body >= SIZE_MAX) r->max_body = SIZE_MAX - 1; /* room for the NUL */
  r->method = strdup(method);
  r->url = strdup(url);
  if (!r->method || !r->url) goto fail;
  if (body) {
    if (flags & (P2Q_HTTP_TAKE_BODY | P2Q_HTTP_LEND_BODY)) {
      r->body = (char *)body;
      r->body_lent = !(flags & P2Q_HTTP_TAKE_BODY);
    } else {
      r->body = malloc(len + 1);
      if (!r->body) goto fail;
      memcpy(r->body, body, len);
      r->body[len] = 0;
    }
    r->body_len = len;
  }
  /* Always queue; the 1 ms curl timer (or the next completion) starts it, so the callback can
   * never run inside this call. */
  if (h->q_tail) h->q_tail->next = r;
  else h->q_head = r;
  h->q_tail = r;
  h->nqueued++;
  if (h->nactive < h->opts.max_concurrent) uv_timer_start(&h->kick, on_kick, 0, 0);
  return 0;
fail:
  if (r && (flags & (P2Q_HTTP_TAKE_BODY | P2Q_HTTP_LEND_BODY))) r->body = NULL; /* caller keeps it on failure */
  req_free(r);
  return P2Q_ENOMEM;
}

int p2q_http_close(p2q_http_t *h, p2q_http_close_cb cb, void *arg) {
  if (!h) return P2Q_EINVAL;
  if (h->closing) return P2Q_EBUSY;
  h->closing = 1;
  h->close_cb = cb;
  h->close_arg = arg;
  uv_timer_stop(&h->timer);
  uv_timer_stop(&h->kick);
  /* Detach running transfers (may fire socket callbacks: contexts still exist). */
  http_req_t *r;
  while ((r = h->active)) {
    active_unlink(h, r);
    curl_multi_remove_handle(h->multi, r->easy);
    curl_easy_cleanup(r->easy);
    r->easy = NULL;
    r->next = h->canceled;
    h->canceled = r;
  }
  while (h->nidle > 0) curl_easy_cleanup(h->idle[--h->nidle]);
  curl_multi_cleanup(h->multi); /* may call on_socket(REMOVE) for cached connections */
  h->multi = NULL;
  while (h->socks) sock_release(h, h->socks);
  uv_close((uv_handle_t *)&h->timer, on_timer_closed);
  uv_close((uv_handle_t *)&h->kick, on_timer_closed);
  return 0;
}

unsigned p2q_http_pending(const p2q_http_t *h) {
  return h ? h->nqueued + (unsigned)h->nactive : 0;
}

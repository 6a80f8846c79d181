/*
 * qdrant.c — Qdrant REST client on top of p2q_http.
 *
 * Owns: one p2q_http_t, the base URL and one small request record per call in flight.
 * Runs on the loop thread (async API); the p2q_qdrant_sync_* helpers create and run their own
 * private loop on the calling thread and must never be called from the daemon's loop.
 *
 * Pure parts (classification, envelope parsing, collection checks, body building, path
 * escaping) have no I/O and are unit-tested on canned JSON. Invariants: every accepted call's
 * callback fires exactly once with a fully classified p2q_qdrant_resp_t; the API key lives only
 * inside p2q_http's header list and is never logged.
 */
#include "pg2qdrant/qdrant.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg2qdrant/errors.h"
#include "pg2qdrant/log.h"
#include "pg2qdrant/redact.h"

typedef enum { K_RAW = 0, K_CHECK, K_CREATE, K_PROBE } q_kind_t;

typedef struct {
  p2q_qdrant_t *q;
  q_kind_t kind;
  int small;                  /* the answer is small: cap it at P2Q_QDRANT_SMALL_BODY */
  p2q_qdrant_cb cb;
  void *arg;
  char *collection;           /* K_CHECK: for messages */
  p2q_qdrant_vectors_t want;  /* K_CHECK: strings owned below */
  char *want_name, *want_dist, *want_sparse;
} q_req_t;

struct p2q_qdrant_s {
  uv_loop_t *loop;
  p2q_http_t *http;
  char *base;
  unsigned pending;
  int closing;
  p2q_qdrant_close_cb close_cb;
  void *close_arg;
};

/* ---------------- pure helpers ---------------- */

p2q_qdrant_class_t p2q_qdrant_classify(long status, int curl_code, int64_t retry_after_ms,
                                       long *delay_ms) {
  p2q_qdrant_class_t c;
  (void)curl_code;
  if (status >= 200 && status < 300) c = P2Q_QDRANT_OK;
  else if (status < 400) c = P2Q_QDRANT_RETRY; /* no answer (0), 1xx, 3xx: the target's problem */
  else if (status == 400 || status == 409 || status == 422) c = P2Q_QDRANT_PERMANENT;
  else if (status == 404 || status == 410) c = P2Q_QDRANT_MISSING;
  else if (status == 408) c = P2Q_QDRANT_RETRY;
  else if (status == 413) c = P2Q_QDRANT_TOO_LARGE;
  else if (status == 429) c = P2Q_QDRANT_RATE;
  else if (status < 500) c = P2Q_QDRANT_CONFIG; /* 401, 403, 405, 407, 421, 426, ... */
  else c = P2Q_QDRANT_RETRY;                    /* every 5xx (and beyond) */
  if (delay_ms)
    *delay_ms = (c == P2Q_QDRANT_RETRY || c == P2Q_QDRANT_RATE) && retry_after_ms >= 0
                    ? (long)retry_after_ms : -1;
  return c;
}

const char *p2q_qdrant_class_name(p2q_qdrant_class_t c) {
  switch (c) {
#define XX(name, label, transient) case P2Q_QDRANT_##name: return label;
    P2Q_QDRANT_CLASS_MAP(XX)
#undef XX
    default: return "unknown";
  }
}

int p2q_qdrant_class_transient(p2q_qdrant_class_t c) {
  switch (c) {
#define XX(name, label, transient) case P2Q_QDRANT_##name: return transient;
    P2Q_QDRANT_CLASS_MAP(XX)
#undef XX
    default: return 1;
  }
}

/* Copy a plain-text body as a one-line message (at most max bytes of it). */
static void text_msg(char *msg, size_t n, const char *body, size_t len, long status) {
  size_t o = 0;
  for (size_t i = 0; i < len && o + 1 < n; i++) {
    char ch = body[i];
    msg[o++] = (ch == '\n' || ch == '\r' || ch == '\t') ? ' ' : ch;
  }
  while (o > 0 && msg[o - 1] == ' ') o--;
  if (n) msg[o < n ? o : n - 1] = 0;
  if (o == 0) snprintf(msg, n, "HTTP %ld", status);
}

/* The start of a body, one line, for messages about answers that are not Qdrant's. */
static void body_snippet(char *out, size_t n, const char *body, size_t len) {
  char tmp[121];
  if (!body || !len) { snprintf(out, n, "an empty body"); return; }
  text_msg(tmp, sizeof tmp, body, len < 120 ? len : 120, 0);
  snprintf(out, n, "\"%s%s\"", tmp, len > 120 ? "..." : "");
}

/* parse_envelope, also saying whether the body was Qdrant's JSON error envelope. */
static int parse_envelope_ex(long status, const char *body, size_t len, cJSON **root,
                             const cJSON **result, char *msg, size_t msglen, int *enveloped) {
  char snip[160];
  *root = NULL;
  *result = NULL;
  *enveloped = 0;
  if (msglen) msg[0] = 0;
  cJSON *doc = (body && len) ? cJSON_ParseWithLength(body, len) : NULL;
  const cJSON *st = cJSON_IsObject(doc) ? cJSON_GetObjectItemCaseSensitive(doc, "status") : NULL;
  const cJSON *e = cJSON_IsObject(st) ? cJSON_GetObjectItemCaseSensitive(st, "error") : NULL;
  if (cJSON_IsString(e) && e->valuestring) { /* an error envelope, whatever the status */
    *enveloped = 1;
    if (status >= 200 && status < 300)
      snprintf(msg, msglen, "HTTP %ld carrying an error, not Qdrant's success envelope: %s", status,
               e->valuestring);
    else
      snprintf(msg, msglen, "%s", e->valuestring);
    cJSON_Delete(doc);
    return P2Q_EQDRANT;
  }
  if (status >= 200 && status < 300) {
    const cJSON *res = cJSON_IsObject(doc) ? cJSON_GetObjectItemCaseSensitive(doc, "result") : NULL;
    if (res && cJSON_IsString(st) && st->valuestring && !strcmp(st->valuestring, "ok")) {
      *enveloped = 1;
      *root = doc;
      *result = res;
      return 0;
    }
    body_snippet(snip, sizeof snip, body, len);
    snprintf(msg, msglen, "HTTP %ld answer is not Qdrant's success envelope (%s): %s", status,
             !doc ? "not JSON" : !res ? "no `result`" : "no \"status\":\"ok\"", snip);
    cJSON_Delete(doc);
    return P2Q_EBADJSON;
  }
  text_msg(msg, msglen, body ? body : "", body ? len : 0, status);
  cJSON_Delete(doc);
  return P2Q_EQDRANT;
}

int p2q_qdrant_parse_envelope(long status, const char *body, size_t len, cJSON **root,
                              const cJSON **result, char *msg, size_t msglen) {
  int enveloped;
  return parse_envelope_ex(status, body, len, root, result, msg, msglen, &enveloped);
}

static void key_list(const cJSON *obj, char *out, size_t n) {
  size_t o = 0;
  out[0] = 0;
  const cJSON *it;
  cJSON_ArrayForEach(it, obj) {
    int w = snprintf(out + o, n - o, "%s%s", o ? ", " : "", it->string ? it->string : "?");
    if (w < 0 || (size_t)w >= n - o) break;
    o += (size_t)w;
  }
}

static int check_params(const cJSON *vp, const char *label, const p2q_qdrant_vectors_t *want,
                        char *msg, size_t n) {
  const cJSON *size = cJSON_GetObjectItemCaseSensitive(vp, "size");
  const cJSON *dist = cJSON_GetObjectItemCaseSensitive(vp, "distance");
  if (!cJSON_IsNumber(size) || !cJSON_IsString(dist)) {
    snprintf(msg, n, "vector %s has no size/distance in the collection info", label);
    return P2Q_EBADJSON;
  }
  if ((long)size->valuedouble != want->dim) {
    snprintf(msg, n, "vector %s has dimension %ld, configured %d", label, (long)size->valuedouble,
             want->dim);
    return P2Q_EMISMATCH;
  }
  if (want->distance && strcmp(dist->valuestring, want->distance) != 0) {
    snprintf(msg, n, "vector %s uses distance %s, configured %s", label, dist->valuestring,
             want->distance);
    return P2Q_EMISMATCH;
  }
  return 0;
}

int p2q_qdrant_check_collection(const cJSON *info, const p2q_qdrant_vectors_t *want, char *msg,
                                size_t n) {
  char keys[256], label[300];
  if (msg && n) msg[0] = 0;
  if (!want) return P2Q_EINVAL;
  const cJSON *cfg = cJSON_GetObjectItemCaseSensitive(info, "config");
  const cJSON *params = cJSON_GetObjectItemCaseSensitive(cfg, "params");
  const cJSON *vectors = cJSON_GetObjectItemCaseSensitive(params, "vectors");
  if (!cJSON_IsObject(params)) {
    snprintf(msg, n, "collection info has no config.params");
    return P2Q_EBADJSON;
  }
  int named = want->vector_name && *want->vector_name;
  int has_unnamed = cJSON_IsObject(vectors) && cJSON_GetObjectItemCaseSensitive(vectors, "size");
  if (!named) {
    if (!has_unnamed) {
      if (cJSON_IsObject(vectors) && vectors->child) {
        key_list(vectors, keys, sizeof keys);
        snprintf(msg, n, "collection has named vectors (%s) but an unnamed vector is configured", keys);
      } else {
        snprintf(msg, n, "collection has no dense vector but one of dimension %d is configured",
                 want->dim);
      }
      return P2Q_EMISMATCH;
    }
    int rc = check_params(vectors, "(unnamed)", want, msg, n);
    if (rc) return rc;
  } else {
    if (has_unnamed) {
      snprintf(msg, n, "collection has a single unnamed vector but vector \"%s\" is configured",
               want->vector_name);
      return P2Q_EMISMATCH;
    }
    const cJSON *vp = cJSON_IsObject(vectors)
                          ? cJSON_GetObjectItemCaseSensitive(vectors, want->vector_name) : NULL;
    if (!cJSON_IsObject(vp)) {
      key_list(vectors, keys, sizeof keys);
      snprintf(msg, n, "collection has no vector named \"%s\" (it has: %s)", want->vector_name,
               keys[0] ? keys : "none");
      return P2Q_EMISMATCH;
    }
    snprintf(label, sizeof label, "\"%s\"", want->vector_name);
    int rc = check_params(vp, label, want, msg, n);
    if (rc) return rc;
  }
  if (want->sparse_name && *want->sparse_name) {
    const cJSON *sv = cJSON_GetObjectItemCaseSensitive(params, "sparse_vectors");
    if (!cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(sv, want->sparse_name))) {
      snprintf(msg, n, "collection has no sparse vector named \"%s\"", want->sparse_name);
      return P2Q_EMISMATCH;
    }
  }
  return 0;
}

char *p2q_qdrant_create_body(const p2q_qdrant_vectors_t *v) {
  char *out = NULL;
  if (!v || v->dim < 1 || v->dim > 65536 || !v->distance) return NULL;
  cJSON *root = cJSON_CreateObject(), *vectors = NULL, *params = NULL;
  if (!root) return NULL;
  if (v->vector_name && *v->vector_name) {
    vectors = cJSON_AddObjectToObject(root, "vectors");
    params = vectors ? cJSON_AddObjectToObject(vectors, v->vector_name) : NULL;
  } else {
    params = vectors = cJSON_AddObjectToObject(root, "vectors");
  }
  if (!params || !cJSON_AddNumberToObject(params, "size", v->dim) ||
      !cJSON_AddStringToObject(params, "distance", v->distance))
    goto fail;
  if (v->sparse_name && *v->sparse_name) {
    cJSON *sv = cJSON_AddObjectToObject(root, "sparse_vectors");
    cJSON *sp = sv ? cJSON_AddObjectToObject(sv, v->sparse_name) : NULL;
    if (!sp || !cJSON_AddStringToObject(sp, "modifier", "idf")) goto fail;
  }
  out = cJSON_PrintUnformatted(root);
fail:
  cJSON_Delete(root);
  return out;
}

int p2q_qdrant_path_escape(const char *in, char *out, size_t outlen) {
  static const char hex[] = "0123456789ABCDEF";
  size_t o = 0;
  if (!in || !out) return P2Q_EINVAL;
  for (const unsigned char *p = (const unsigned char *)in; *p; p++) {
    int keep = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
               *p == '-' || *p == '_' || *p == '.' || *p == '~';
    if (o + (keep ? 1 : 3) >= outlen) return P2Q_EOVERFLOW;
    if (keep) out[o++] = (char)*p;
    else { out[o++] = '%'; out[o++] = hex[*p >> 4]; out[o++] = hex[*p & 15]; }
  }
  if (o >= outlen) return P2Q_EOVERFLOW;
  out[o] = 0;
  return (int)o;
}

/* ---------------- async client ---------------- */

static void req_free(q_req_t *r) {
  if (!r) return;
  free(r->collection);
  free(r->want_name);
  free(r->want_dist);
  free(r->want_sparse);
  free(r);
}

/* result.status == "wait_timeout": accepted but not applied within the timeout. */
static int is_wait_timeout(const cJSON *result) {
  const cJSON *s = cJSON_IsObject(result) ? cJSON_GetObjectItemCaseSensitive(result, "status") : NULL;
  return cJSON_IsString(s) && s->valuestring && !strcmp(s->valuestring, "wait_timeout");
}

/* A 3xx: never followed (the redirect may change host or scheme, or point at a login page). */
static void redirect_msg(char *msg, size_t n, long status, const char *location) {
  char *masked = location && *location ? p2q_redact_url(location) : NULL;
  if (masked)
    snprintf(msg, n, "HTTP %ld redirect to %s, not followed: set qdrant.url to the address that "
             "answers", status, masked);
  else
    snprintf(msg, n, "HTTP %ld redirect%s, not followed: set qdrant.url to the address that answers",
             status, location && *location ? "" : " without a Location");
  free(masked);
}

/* Fill in the envelope-dependent fields of resp (class refined by the body); *root receives the
 * parsed document. */
static void interpret(q_req_t *r, const p2q_http_response_t *hr, p2q_qdrant_resp_t *resp,
                      cJSON **root, char *msg, size_t n) {
  long status = hr->status;
  int enveloped = 0;
  if (status >= 300 && status < 400) {
    resp->err = P2Q_EQDRANT;
    redirect_msg(msg, n, status, hr->location);
    return;
  }
  if (r->kind == K_PROBE) { /* /readyz answers plain text */
    resp->err = status == 200 ? 0 : P2Q_EQDRANT;
    if (resp->err) text_msg(msg, n, hr->body, hr->body_len, status);
    if (resp->cls == P2Q_QDRANT_MISSING) resp->cls = P2Q_QDRANT_CONFIG; /* no /readyz: wrong URL */
    return;
  }
  int rc = parse_envelope_ex(status, hr->body, hr->body_len, root, &resp->result, msg, n, &enveloped);
  resp->err = rc;
  if (rc && status >= 200 && status < 300) resp->cls = P2Q_QDRANT_RETRY; /* not a success answer */
  if (status == 404 || status == 410) {
    if (!enveloped) { /* no Qdrant behind this route */
      char snip[160];
      body_snippet(snip, sizeof snip, hr->body, hr->body_len);
      snprintf(msg, n, "HTTP %ld without Qdrant's error envelope (no such route: check qdrant.url): %s",
               status, snip);
      resp->cls = P2Q_QDRANT_CONFIG;
    } else if (!strstr(msg, "Collection") && !strstr(msg, "collection")) {
      resp->cls = P2Q_QDRANT_PERMANENT; /* e.g. "No point with id … found" */
    }
  }
  if (rc == 0 && is_wait_timeout(resp->result)) {
    resp->err = P2Q_ETIMEOUT;
    resp->cls = P2Q_QDRANT_RETRY;
    snprintf(msg, n, "operation accepted but not completed (wait_timeout)");
  }
  if (r->kind == K_CREATE && status == 409) { /* already exists: fine */
    resp->err = 0;
    resp->cls = P2Q_QDRANT_OK;
    msg[0] = 0;
  }
  if (r->kind == K_CHECK && rc == 0) {
    char m[768];
    int crc = p2q_qdrant_check_collection(resp->result, &r->want, m, sizeof m);
    if (crc) {
      resp->err = crc;
      resp->cls = P2Q_QDRANT_PERMANENT;
      snprintf(msg, n, "collection `%s`: %s", r->collection, m);
    }
  }
}

static void on_http(p2q_http_t *h, int err, const p2q_http_response_t *hr, void *arg) {
  q_req_t *r = arg;
  p2q_qdrant_t *q = r->q;
  p2q_qdrant_resp_t resp;
  cJSON *root = NULL;
  char msg[1024];
  msg[0] = 0;
  memset(&resp, 0, sizeof resp);
  resp.status = hr->status;
  resp.curl_code = hr->curl_code;
  resp.body = hr->body;
  resp.body_len = hr->body_len;
  resp.time = hr->total_time;
  resp.cls = p2q_qdrant_classify(err ? 0 : hr->status, hr->curl_code, hr->retry_after_ms,
                                 &resp.retry_delay_ms);
  if (err) {
    resp.err = err;
    if (err == P2Q_EOVERFLOW)
      snprintf(msg, sizeof msg, "HTTP %ld: %s (not a Qdrant answer)", hr->status, hr->error);
    else
      snprintf(msg, sizeof msg, "%s", hr->error);
  } else {
    interpret(r, hr, &resp, &root, msg, sizeof msg);
  }
  resp.error = msg;
  if (resp.err && resp.err != P2Q_ECANCELED) {
    char qm[600];
    P2Q_DEBUG("qdrant_request_failed", "status=%ld class=%s err=%s msg=%s", resp.status,
              p2q_qdrant_class_name(resp.cls), p2q_err_name(resp.err), p2q_log_q(qm, sizeof qm, msg));
  }
  q->pending--;
  r->cb(q, &resp, r->arg);
  cJSON_Delete(root);
  req_free(r);
}

/* Body caps: what a real answer can be. Writes, info, count, index, create and probe answers
 * are small; scroll/retrieve/generic reads use the client's max_read_body. */
static size_t kind_cap(int small) { return small ? P2Q_QDRANT_SMALL_BODY : 0; }

static int submit(p2q_qdrant_t *q, q_req_t *r, const char *method, const char *path,
                  const char *body, size_t len, int flags) {
  size_t n = strlen(q->base) + strlen(path) + 1;
  char *url = malloc(n);
  if (!url) return P2Q_ENOMEM;
  snprintf(url, n, "%s%s", q->base, path);
  int rc = p2q_http_request_capped(q->http, method, url, body, len, flags,
                                   kind_cap(r->small), on_http, r);
  free(url);
  if (rc == 0) q->pending++;
  return rc;
}

static int start(p2q_qdrant_t *q, q_kind_t kind, int small, const char *method, const char *path,
                 const char *body, size_t len, int flags, p2q_qdrant_cb cb, void *arg) {
  if (!q || !cb || !path) return P2Q_EINVAL;
  if (q->closing) return P2Q_ECANCELED;
  q_req_t *r = calloc(1, sizeof *r);
  if (!r) return P2Q_ENOMEM;
  r->q = q;
  r->kind = kind;
  r->small = small;
  r->cb = cb;
  r->arg = arg;
  int rc = submit(q, r, method, path, body, len, flags);
  if (rc) req_free(r);
  return rc;
}

/* "/collections/<escaped><suffix>" into buf. */
static int coll_path(char *buf, size_t n, const char *collection, const char *suffix) {
  char esc[800];
  if (!collection || !*collection) return P2Q_EINVAL;
  if (p2q_qdrant_path_escape(collection, esc, sizeof esc) < 0) return P2Q_EINVAL;
  int w = snprintf(buf, n, "/collections/%s%s", esc, suffix ? suffix : "");
  return (w < 0 || (size_t)w >= n) ? P2Q_EOVERFLOW : 0;
}

int p2q_qdrant_new(uv_loop_t *loop, const p2q_qdrant_options_t *opts, p2q_qdrant_t **out) {
  p2q_qdrant_t *q = NULL;
  int rc = P2Q_EINVAL;
  if (!loop || !opts || !opts->url || !*opts->url || !out) return P2Q_EINVAL;
  if (strncmp(opts->url, "http://", 7) != 0 && strncmp(opts->url, "https://", 8) != 0) goto fail;
  rc = P2Q_ENOMEM;
  q = calloc(1, sizeof *q);
  if (!q) goto fail;
  q->loop = loop;
  q->base = strdup(opts->url);
  if (!q->base) goto fail;
  size_t l = strlen(q->base);
  while (l > 0 && q->base[l - 1] == '/') q->base[--l] = 0;
  p2q_http_options_t ho = {0};
  ho.connect_timeout_ms = opts->connect_timeout_ms;
  ho.timeout_ms = opts->timeout_ms;
  ho.max_concurrent = opts->max_concurrent;
  ho.ca_file = opts->ca_file;
  ho.api_key = opts->api_key;
  ho.retry_after_max_ms = opts->retry_after_max_ms;
  ho.max_body = opts->max_read_body; /* reads; small answers carry their own cap */
  rc = p2q_http_new(loop, &ho, &q->http);
  if (rc) goto fail;
  *out = q;
  return 0;
fail:
  if (q) { free(q->base); free(q); }
  return rc;
}

static void on_http_closed(p2q_http_t *h, void *arg) {
  p2q_qdrant_t *q = arg;
  if (q->close_cb) q->close_cb(q, q->close_arg);
  free(q->base);
  free(q);
}

int p2q_qdrant_close(p2q_qdrant_t *q, p2q_qdrant_close_cb cb, void *arg) {
  if (!q) return P2Q_EINVAL;
  if (q->closing) return P2Q_EBUSY;
  q->closing = 1;
  q->close_cb = cb;
  q->close_arg = arg;
  return p2q_http_close(q->http, on_http_closed, q);
}

unsigned p2q_qdrant_pending(const p2q_qdrant_t *q) { return q ? q->pending : 0; }

int p2q_qdrant_request(p2q_qdrant_t *q, const char *method, const char *path, const char *body,
                       size_t len, int flags, p2q_qdrant_cb cb, void *arg) {
  if (!method || !path || path[0] != '/') return P2Q_EINVAL;
  return start(q, K_RAW, 0, method, path, body, len, flags, cb, arg);
}

int p2q_qdrant_collection_info(p2q_qdrant_t *q, const char *collection, p2q_qdrant_cb cb, void *arg) {
  char path[1024];
  int rc = coll_path(path, sizeof path, collection, NULL);
  return rc ? rc : start(q, K_RAW, 1, "GET", path, NULL, 0, 0, cb, arg);
}

int p2q_qdrant_collection_check(p2q_qdrant_t *q, const char *collection,
                                const p2q_qdrant_vectors_t *want, p2q_qdrant_cb cb, void *arg) {
  char path[1024];
  q_req_t *r = NULL;
  int rc = coll_path(path, sizeof path, collection, NULL);
  if (rc) return rc;
  if (!q || !cb || !want || want->dim < 1 || !want->distance) return P2Q_EINVAL;
  if (q->closing) return P2Q_ECANCELED;
  rc = P2Q_ENOMEM;
  r = calloc(1, sizeof *r);
  if (!r) goto fail;
  r->q = q;
  r->kind = K_CHECK;
  r->small = 1;
  r->cb = cb;
  r->arg = arg;
  r->collection = strdup(collection);
  r->want_dist = strdup(want->distance);
  if (!r->collection || !r->want_dist) goto fail;
  if (want->vector_name && !(r->want_name = strdup(want->vector_name))) goto fail;
  if (want->sparse_name && !(r->want_sparse = strdup(want->sparse_name))) goto fail;
  r->want.dim = want->dim;
  r->want.distance = r->want_dist;
  r->want.vector_name = r->want_name;
  r->want.sparse_name = r->want_sparse;
  rc = submit(q, r, "GET", path, NULL, 0, 0);
  if (rc) goto fail;
  return 0;
fail:
  req_free(r);
  return rc;
}

int p2q_qdrant_collection_create(p2q_qdrant_t *q, const char *collection,
                                 const p2q_qdrant_vectors_t *v, p2q_qdrant_cb cb, void *arg) {
  char path[1024];
  int rc = coll_path(path, sizeof path, collection, NULL);
  if (rc) return rc;
  char *body = p2q_qdrant_create_body(v);
  if (!body) return P2Q_EINVAL;
  rc = start(q, K_CREATE, 1, "PUT", path, body, strlen(body), P2Q_HTTP_TAKE_BODY, cb, arg);
  if (rc) free(body);
  return rc;
}

int p2q_qdrant_index_create(p2q_qdrant_t *q, const char *collection, const char *field,
                            const char *schema, p2q_qdrant_cb cb, void *arg) {
  char path[1024];
  int rc = coll_path(path, sizeof path, collection, "/index?wait=true");
  if (rc) return rc;
  if (!field || !schema) return P2Q_EINVAL;
  cJSON *o = cJSON_CreateObject();
  char *body = NULL;
  if (o && cJSON_AddStringToObject(o, "field_name", field) &&
      cJSON_AddStringToObject(o, "field_schema", schema))
    body = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  if (!body) return P2Q_ENOMEM;
  rc = start(q, K_RAW, 1, "PUT", path, body, strlen(body), P2Q_HTTP_TAKE_BODY, cb, arg);
  if (rc) free(body);
  return rc;
}

static int points_op(p2q_qdrant_t *q, const char *method, const char *collection,
                     const char *suffix, const char *body, size_t len, int flags, p2q_qdrant_cb cb,
                     void *arg) {
  int small = strcmp(suffix, "/points/scroll") != 0; /* writes and count answer a few bytes */
  char path[1024];
  int rc = coll_path(path, sizeof path, collection, suffix);
  if (rc) return rc;
  if (!body || !len) return P2Q_EINVAL;
  return start(q, K_RAW, small, method, path, body, len, flags, cb, arg);
}

int p2q_qdrant_points_upsert(p2q_qdrant_t *q, const char *collection, const char *body, size_t len,
                             p2q_qdrant_cb cb, void *arg) {
  return points_op(q, "PUT", collection, "/points?wait=true", body, len, 0, cb, arg);
}

int p2q_qdrant_points_delete(p2q_qdrant_t *q, const char *collection, const char *body, size_t len,
                             p2q_qdrant_cb cb, void *arg) {
  return points_op(q, "POST", collection, "/points/delete?wait=true", body, len, 0, cb, arg);
}

int p2q_qdrant_points_upsert_take(p2q_qdrant_t *q, const char *collection, char *body, size_t len,
                                  p2q_qdrant_cb cb, void *arg) {
  return points_op(q, "PUT", collection, "/points?wait=true", body, len, P2Q_HTTP_TAKE_BODY, cb,
                   arg);
}

int p2q_qdrant_points_delete_take(p2q_qdrant_t *q, const char *collection, char *body, size_t len,
                                  p2q_qdrant_cb cb, void *arg) {
  return points_op(q, "POST", collection, "/points/delete?wait=true", body, len,
                   P2Q_HTTP_TAKE_BODY, cb, arg);
}

int p2q_qdrant_points_batch_take(p2q_qdrant_t *q, const char *collection, char *body, size_t len,
                                 p2q_qdrant_cb cb, void *arg) {
  return points_op(q, "POST", collection, "/points/batch?wait=true", body, len, P2Q_HTTP_TAKE_BODY, cb, arg);
}

int p2q_qdrant_points_retrieve_take(p2q_qdrant_t *q, const char *collection, char *body, size_t len,
                                    p2q_qdrant_cb cb, void *arg) {
  return points_op(q, "POST", collection, "/points", body, len, P2Q_HTTP_TAKE_BODY, cb, arg);
}

int p2q_qdrant_points_scroll(p2q_qdrant_t *q, const char *collection, const char *body, size_t len,
                             p2q_qdrant_cb cb, void *arg) {
  return points_op(q, "POST", collection, "/points/scroll", body, len, 0, cb, arg);
}

int p2q_qdrant_points_count(p2q_qdrant_t *q, const char *collection, const char *filter_json,
                            p2q_qdrant_cb cb, void *arg) {
  size_t n = 32 + (filter_json ? strlen(filter_json) : 0);
  char *body = malloc(n);
  if (!body) return P2Q_ENOMEM;
  if (filter_json && *filter_json) snprintf(body, n, "{\"exact\":true,\"filter\":%s}", filter_json);
  else snprintf(body, n, "{\"exact\":true}");
  int rc = points_op(q, "POST", collection, "/points/count", body, strlen(body),
                     P2Q_HTTP_TAKE_BODY, cb, arg);
  if (rc) free(body);
  return rc;
}

int p2q_qdrant_probe(p2q_qdrant_t *q, p2q_qdrant_cb cb, void *arg) {
  return start(q, K_PROBE, 1, "GET", "/readyz", NULL, 0, 0, cb, arg);
}

/* ---------------- blocking convenience (private loop) ---------------- */

typedef struct {
  int done;
  int err;
  long status;
  char msg[1024];
} sync_t;

static void sync_cb(p2q_qdrant_t *q, const p2q_qdrant_resp_t *r, void *arg) {
  sync_t *s = arg;
  s->done = 1;
  s->err = r->err;
  s->status = r->status;
  snprintf(s->msg, sizeof s->msg, "%s", r->error);
}

/* Wait for the call that `rc` reports on; returns its err. */
static int sync_wait(uv_loop_t *loop, sync_t *s, int rc) {
  if (rc) {
    snprintf(s->msg, sizeof s->msg, "%s", p2q_strerror(rc));
    s->err = rc;
    return rc;
  }
  while (!s->done) uv_run(loop, UV_RUN_ONCE);
  return s->err;
}

static void sync_finish(uv_loop_t *loop, p2q_qdrant_t *q) {
  if (q) p2q_qdrant_close(q, NULL, NULL);
  uv_run(loop, UV_RUN_DEFAULT);
  uv_loop_close(loop);
}

int p2q_qdrant_sync_ensure_collection(const p2q_qdrant_options_t *opts, const char *collection,
                                      const p2q_qdrant_vectors_t *want, int create,
                                      const char *index_field, char *msg, size_t msglen) {
  uv_loop_t loop;
  p2q_qdrant_t *q = NULL;
  sync_t s = {0};
  if (uv_loop_init(&loop) != 0) return P2Q_EIO;
  int rc = p2q_qdrant_new(&loop, opts, &q);
  if (rc) { snprintf(s.msg, sizeof s.msg, "invalid Qdrant options"); goto out; }
  rc = sync_wait(&loop, &s, p2q_qdrant_collection_check(q, collection, want, sync_cb, &s));
  if (rc == P2Q_EQDRANT && s.status == 404 && create) {
    P2Q_INFO("qdrant_collection_create", "collection=%s dim=%d", collection, want->dim);
    memset(&s, 0, sizeof s);
    rc = sync_wait(&loop, &s, p2q_qdrant_collection_create(q, collection, want, sync_cb, &s));
    if (rc == 0 && index_field && *index_field) {
      memset(&s, 0, sizeof s);
      rc = sync_wait(&loop, &s,
                     p2q_qdrant_index_create(q, collection, index_field, "keyword", sync_cb, &s));
    }
    if (rc == 0) {
      memset(&s, 0, sizeof s);
      rc = sync_wait(&loop, &s, p2q_qdrant_collection_check(q, collection, want, sync_cb, &s));
    }
  }
out:
  if (msg && msglen) snprintf(msg, msglen, "%s", rc ? s.msg : "");
  sync_finish(&loop, q);
  return rc;
}

int p2q_qdrant_sync_probe(const p2q_qdrant_options_t *opts, char *msg, size_t msglen) {
  uv_loop_t loop;
  p2q_qdrant_t *q = NULL;
  sync_t s = {0};
  if (uv_loop_init(&loop) != 0) return P2Q_EIO;
  int rc = p2q_qdrant_new(&loop, opts, &q);
  if (rc) snprintf(s.msg, sizeof s.msg, "invalid Qdrant options");
  else rc = sync_wait(&loop, &s, p2q_qdrant_probe(q, sync_cb, &s));
  if (msg && msglen) snprintf(msg, msglen, "%s", rc ? s.msg : "");
  sync_finish(&loop, q);
  return rc;
}

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
 *
 * Several nodes (`[qdrant] url = http://a, http://b`; nodes.h chooses): one p2q_http client for
 * all of them (same key and TLS settings), each request goes to the chosen node. A transport
 * failure marks its node down (log `qdrant_node_down`); a request that never reached the node
 * (refused, unresolvable, connect timeout) is sent again at once to the next node, so callers
 * never see one node's refusal while another answers (a connect timeout is not re-sent: one
 * request stays within qdrant.timeout for the lease guard). A request that did reach it
 * (reset, empty reply), or timed out connecting, completes with P2Q_ENODE while another node is up (classify.c: the events wait,
 * no target is booked); a timeout completes as a timeout (a slow collection looks the same).
 * Down nodes, and up nodes nothing answered from for 2 s, are probed with GET /readyz from a
 * timer (`qdrant_node_up` when a down one answers; nodes.h).
 * Callers see nodes only through on_node and p2q_qdrant_node().
 */
#include "pg2qdrant/qdrant.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg2qdrant/errors.h"
#include "pg2qdrant/log.h"
#include "pg2qdrant/nodes.h"
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
  /* several nodes: what is needed to send the request again to another node */
  char method[8];
  char *path;
  char *body;                 /* owned copy (NULL: none) */
  size_t body_len;
  int node;                   /* the node it went to, -1 for a node probe's own target */
  unsigned tried;             /* nodes already tried (bit mask) */
} q_req_t;

struct p2q_qdrant_s {
  uv_loop_t *loop;
  p2q_http_t *http;
  char *base;                 /* the first node's URL */
  p2q_nodes_t nodes;          /* n > 1: a cluster (a single node is not tracked) */
  uv_timer_t probe_timer;     /* n > 1: probes of down nodes */
  void (*on_node)(void *arg, int node, const char *url, int up, const char *msg);
  void *on_node_arg;
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
  free(r->path);
  free(r->body);
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
    } else if (strstr(msg, P2Q_QDRANT_SHARDS_FAILED)) {
      resp->cls = P2Q_QDRANT_RETRY; /* some shards applied it: the collection exists (cluster) */
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

static int submit(p2q_qdrant_t *q, q_req_t *r, const char *method, const char *path,
                  const char *body, size_t len, int flags);
static void schedule_probes(p2q_qdrant_t *q);

/* Node i answered, or failed at the transport level (err != 0): bookkeeping and logs. */
static void node_result(p2q_qdrant_t *q, int i, int failed, const char *msg) {
  if (q->nodes.n < 2 || i < 0) return;
  p2q_node_t *nd = &q->nodes.node[i];
  char *u = p2q_redact_url(nd->url), qm[300];
  if (failed) {
    if (p2q_nodes_failed(&q->nodes, i, uv_now(q->loop), msg)) {
      P2Q_WARN("qdrant_node_down", "node=%s nodes_up=%d err=%s", u ? u : "?", p2q_nodes_up(&q->nodes),
               p2q_log_q(qm, sizeof qm, nd->last_error));
      if (q->on_node) q->on_node(q->on_node_arg, i, u ? u : nd->url, 0, nd->last_error);
    }
    schedule_probes(q);
  } else if (p2q_nodes_succeeded(&q->nodes, i, uv_now(q->loop))) {
    P2Q_INFO("qdrant_node_up", "node=%s nodes_up=%d", u ? u : "?", p2q_nodes_up(&q->nodes));
    if (q->on_node) q->on_node(q->on_node_arg, i, u ? u : nd->url, 1, "");
  }
  free(u);
}

/* Several nodes: a transport failure. Returns 1 when the request went to another node. */
static int node_failover(q_req_t *r, int err, const p2q_http_response_t *hr) {
  p2q_qdrant_t *q = r->q;
  if (q->nodes.n < 2 || r->node < 0) return 0;
  if (!err || err == P2Q_ECANCELED || err == P2Q_EOVERFLOW) { /* it answered */
    if (!err || err == P2Q_EOVERFLOW) node_result(q, r->node, 0, NULL);
    return 0;
  }
  node_result(q, r->node, 1, hr->error);
  if (hr->connected || q->closing) return 0; /* it may have reached the node: the caller decides */
  /* only instant failures (refused, unresolvable) are re-sent here: a connect timeout plus a
     whole request on the next node could outlast the lease guard's one-request budget
     (lease − qdrant.timeout − 1 s); that request's events wait retry_min instead */
  if (hr->total_time >= 1.0) return 0;
  if (p2q_nodes_pick(&q->nodes, r->tried) < 0) return 0;
  q->pending--;
  if (submit(q, r, r->method, r->path, r->body, r->body_len, 0) == 0) return 1;
  q->pending++;
  return 0;
}

static void on_http(p2q_http_t *h, int err, const p2q_http_response_t *hr, void *arg) {
  q_req_t *r = arg;
  p2q_qdrant_t *q = r->q;
  p2q_qdrant_resp_t resp;
  if (node_failover(r, err, hr)) return;
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
    /* it reached a node that then failed, and another node is up: the node's failure only */
    if (q->nodes.n > 1 && r->node >= 0 && (err == P2Q_EHTTP || (err == P2Q_ETIMEOUT && !hr->connected)) &&
        p2q_nodes_up(&q->nodes) > 0)
      resp.err = P2Q_ENODE;
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

/* Several nodes: keep what a resend to another node needs (the body is owned from here on
   when flags say TAKE_BODY, else copied). */
static int keep_for_resend(q_req_t *r, const char *method, const char *path, const char *body,
                           size_t len, int flags) {
  if (r->path) return 0; /* a resend: already kept */
  snprintf(r->method, sizeof r->method, "%s", method);
  if (!(r->path = strdup(path))) return P2Q_ENOMEM;
  r->body_len = len;
  if (body && (flags & P2Q_HTTP_TAKE_BODY)) r->body = (char *)body;
  else if (body && !(r->body = malloc(len ? len : 1))) return P2Q_ENOMEM;
  else if (body) memcpy(r->body, body, len);
  return 0;
}

static int submit(p2q_qdrant_t *q, q_req_t *r, const char *method, const char *path,
                  const char *body, size_t len, int flags) {
  const char *base = q->base;
  r->node = -1;
  if (q->nodes.n > 1) {
    int rc = keep_for_resend(r, method, path, body, len, flags);
    if (rc) return rc;
    r->node = p2q_nodes_pick(&q->nodes, r->tried);
    if (r->node < 0) return P2Q_EINTERNAL;
    r->tried |= 1u << r->node;
    base = q->nodes.node[r->node].url;
    body = r->body;
    flags &= ~P2Q_HTTP_TAKE_BODY; /* the client copies; r->body stays for a resend */
  }
  size_t n = strlen(base) + strlen(path) + 1;
  char *url = malloc(n);
  if (!url) return P2Q_ENOMEM;
  snprintf(url, n, "%s%s", base, path);
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
  if (rc && (flags & P2Q_HTTP_TAKE_BODY) && r->body == body) r->body = NULL; /* the caller's again */
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

/* ---- node probes (several nodes) ---- */

typedef struct {
  p2q_qdrant_t *q;
  int node;
} node_probe_t;

static void node_probed(p2q_http_t *h, int err, const p2q_http_response_t *hr, void *arg) {
  node_probe_t *p = arg;
  p2q_qdrant_t *q = p->q;
  (void)h;
  q->nodes.node[p->node].probing = 0;
  if (err != P2Q_ECANCELED && !q->closing) {
    char msg[300];
    if (!err && hr->status == 200) {
      node_result(q, p->node, 0, NULL);
    } else {
      if (err) snprintf(msg, sizeof msg, "%s", hr->error);
      else snprintf(msg, sizeof msg, "GET /readyz answered HTTP %ld", hr->status);
      node_result(q, p->node, 1, msg);
    }
  }
  free(p);
}

static void probe_timer_cb(uv_timer_t *t) {
  p2q_qdrant_t *q = t->data;
  int i;
  while (!q->closing && (i = p2q_nodes_due(&q->nodes, uv_now(q->loop))) >= 0) {
    node_probe_t *p = malloc(sizeof *p);
    size_t n = strlen(q->nodes.node[i].url) + sizeof "/readyz";
    char *url = malloc(n);
    int rc = P2Q_ENOMEM;
    if (p && url) {
      p->q = q;
      p->node = i;
      snprintf(url, n, "%s/readyz", q->nodes.node[i].url);
      rc = p2q_http_request_capped(q->http, "GET", url, NULL, 0, 0, P2Q_QDRANT_SMALL_BODY, node_probed, p);
    }
    free(url);
    if (rc) {
      free(p);
      p2q_nodes_failed(&q->nodes, i, uv_now(q->loop), p2q_strerror(rc)); /* try again later */
      break;
    }
    q->nodes.node[i].probing = 1;
  }
  schedule_probes(q);
}

static void schedule_probes(p2q_qdrant_t *q) {
  if (q->nodes.n < 2 || q->closing) return;
  uint64_t next = p2q_nodes_next_ms(&q->nodes, uv_now(q->loop));
  if (next == UINT64_MAX) uv_timer_stop(&q->probe_timer);
  else uv_timer_start(&q->probe_timer, probe_timer_cb, next, 0);
}

int p2q_qdrant_node_count(const p2q_qdrant_t *q) { return q ? (q->nodes.n > 1 ? q->nodes.n : 1) : 0; }

const struct p2q_node_s *p2q_qdrant_node(const p2q_qdrant_t *q, int i) {
  return q && q->nodes.n > 1 && i >= 0 && i < q->nodes.n ? &q->nodes.node[i] : NULL;
}

int p2q_qdrant_new(uv_loop_t *loop, const p2q_qdrant_options_t *opts, p2q_qdrant_t **out) {
  p2q_qdrant_t *q = NULL;
  char why[256];
  int rc = P2Q_EINVAL;
  if (!loop || !opts || !opts->url || !*opts->url || !out) return P2Q_EINVAL;
  rc = P2Q_ENOMEM;
  q = calloc(1, sizeof *q);
  if (!q) goto fail;
  q->loop = loop;
  rc = p2q_nodes_init(&q->nodes, opts->url, why, sizeof why);
  if (rc) { rc = rc == P2Q_ENOMEM ? rc : P2Q_EINVAL; goto fail; }
  rc = P2Q_ENOMEM;
  q->base = strdup(q->nodes.node[0].url);
  if (!q->base) goto fail;
  q->on_node = opts->on_node;
  q->on_node_arg = opts->on_node_arg;
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
  if (q->nodes.n > 1) {
    uv_timer_init(loop, &q->probe_timer);
    q->probe_timer.data = q;
    uv_unref((uv_handle_t *)&q->probe_timer);
    for (int i = 0; i < q->nodes.n; i++) q->nodes.node[i].answered_at = uv_now(loop);
    schedule_probes(q);
  }
  *out = q;
  return 0;
fail:
  if (q) { p2q_nodes_free(&q->nodes); free(q->base); free(q); }
  return rc;
}

static void on_http_closed(p2q_http_t *h, void *arg) {
  p2q_qdrant_t *q = arg;
  (void)h;
  if (q->close_cb) q->close_cb(q, q->close_arg);
  p2q_nodes_free(&q->nodes);
  free(q->base);
  free(q);
}

static void probe_timer_closed(uv_handle_t *hd) {
  p2q_qdrant_t *q = hd->data;
  int rc = p2q_http_close(q->http, on_http_closed, q);
  if (rc) on_http_closed(q->http, q);
}

int p2q_qdrant_close(p2q_qdrant_t *q, p2q_qdrant_close_cb cb, void *arg) {
  if (!q) return P2Q_EINVAL;
  if (q->closing) return P2Q_EBUSY;
  q->closing = 1;
  q->close_cb = cb;
  q->close_arg = arg;
  if (q->nodes.n > 1) { /* the timer first, then the client */
    uv_timer_stop(&q->probe_timer);
    uv_close((uv_handle_t *)&q->probe_timer, probe_timer_closed);
    return 0;
  }
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

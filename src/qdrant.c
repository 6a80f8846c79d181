/*
 * qdrant.c — Qdrant REST client on top of p2q_http.
 *
 * Owns: one p2q_http_t, the base URL and one small request record per call in flight; the
 * node probes; the calls of each endpoint. Runs on the loop thread only. The pure half
 * (classification, envelope parsing, path escaping, the reading of one answer) is qdrant_proto.c;
 * the blocking forms for the CLI are qdrant_sync.c.
 *
 * Invariants: every accepted call's callback fires exactly once with a fully classified
 * p2q_qdrant_resp_t; the API key lives only inside p2q_http's header list and is never logged.
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

typedef struct {
  p2q_qdrant_t *q;
  p2q_qdrant_kind_t kind;
  int small;                  /* the answer is small: cap it at P2Q_QDRANT_SMALL_BODY */
  p2q_qdrant_cb cb;
  void *arg;
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

/* ---------------- async client ---------------- */

static void req_free(q_req_t *r) {
  if (!r) return;
  free(r->path);
  free(r->body);
  free(r);
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
    p2q_qdrant_interpret(r->kind, hr, &resp, &root, msg, sizeof msg);
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

/* Body caps: what a real answer can be. Writes, count, retrieve (points_op: every suffix but
 * /points/scroll; the reuse lookup asks two payload fields, no vector) and probe answers are
 * small; scroll and generic reads use the client's max_read_body. */
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

static int start(p2q_qdrant_t *q, p2q_qdrant_kind_t kind, int small, const char *method, const char *path,
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
  return start(q, P2Q_QK_RAW, 0, method, path, body, len, flags, cb, arg);
}

static int points_op(p2q_qdrant_t *q, const char *method, const char *collection,
                     const char *suffix, const char *body, size_t len, int flags, p2q_qdrant_cb cb,
                     void *arg) {
  int small = strcmp(suffix, "/points/scroll") != 0; /* writes and count answer a few bytes */
  char path[1024];
  int rc = coll_path(path, sizeof path, collection, suffix);
  if (rc) return rc;
  if (!body || !len) return P2Q_EINVAL;
  return start(q, P2Q_QK_RAW, small, method, path, body, len, flags, cb, arg);
}

int p2q_qdrant_points_upsert(p2q_qdrant_t *q, const char *collection, const char *body, size_t len,
                             p2q_qdrant_cb cb, void *arg) {
  return points_op(q, "PUT", collection, "/points?wait=true", body, len, 0, cb, arg);
}

int p2q_qdrant_points_upsert_take(p2q_qdrant_t *q, const char *collection, char *body, size_t len,
                                  p2q_qdrant_cb cb, void *arg) {
  return points_op(q, "PUT", collection, "/points?wait=true", body, len, P2Q_HTTP_TAKE_BODY, cb,
                   arg);
}

int p2q_qdrant_points_upsert_lent(p2q_qdrant_t *q, const char *collection, const char *body, size_t len,
                                  p2q_qdrant_cb cb, void *arg) {
  return points_op(q, "PUT", collection, "/points?wait=true", body, len, P2Q_HTTP_LEND_BODY, cb, arg);
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
  return start(q, P2Q_QK_PROBE, 1, "GET", "/readyz", NULL, 0, 0, cb, arg);
}

/*
 * qdrant_sync.c — blocking Qdrant calls for the CLI commands (see qdrant_sync.h).
 *
 * Owns a private uv loop and one async p2q_qdrant_t; each call submits one request and runs the
 * loop until its callback fired, copying status, class and body out of the callback (the response
 * is valid only there) and parsing the envelope afterwards. Also the one-shot forms
 * p2q_qdrant_sync_ensure_collection / p2q_qdrant_sync_probe (qdrant.h: a fresh loop and client
 * for one check or probe, no retries). Never used on the daemon's loop.
 */
#include "pg2qdrant/qdrant_sync.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pg2qdrant/buf.h"
#include "pg2qdrant/errors.h"
#include "pg2qdrant/log.h"

#define RETRIES 3

struct p2q_qdrant_blocking_s {
  uv_loop_t loop;
  p2q_qdrant_t *q;
  long last_status;
};

typedef struct {
  int done, err;
  long status;
  p2q_qdrant_class_t cls;
  char *body;
  size_t len;
  char msg[1024];
} call_t;

int p2q_qdrant_blocking_open(const p2q_qdrant_options_t *opts, p2q_qdrant_blocking_t **out) {
  p2q_qdrant_blocking_t *b = calloc(1, sizeof *b);
  *out = NULL;
  if (!b) return P2Q_ENOMEM;
  if (uv_loop_init(&b->loop) != 0) { free(b); return P2Q_EIO; }
  int rc = p2q_qdrant_new(&b->loop, opts, &b->q);
  if (rc) {
    uv_loop_close(&b->loop);
    free(b);
    return rc;
  }
  *out = b;
  return 0;
}

void p2q_qdrant_blocking_close(p2q_qdrant_blocking_t *b) {
  if (!b) return;
  p2q_qdrant_close(b->q, NULL, NULL);
  uv_run(&b->loop, UV_RUN_DEFAULT);
  uv_loop_close(&b->loop);
  free(b);
}

static void on_done(p2q_qdrant_t *q, const p2q_qdrant_resp_t *r, void *arg) {
  call_t *c = arg;
  (void)q;
  c->done = 1;
  c->err = r->err;
  c->status = r->status;
  c->cls = r->cls;
  snprintf(c->msg, sizeof c->msg, "%s", r->error ? r->error : "");
  if (r->body && r->body_len && (c->body = malloc(r->body_len))) {
    memcpy(c->body, r->body, r->body_len);
    c->len = r->body_len;
  }
}

static int call_once(p2q_qdrant_blocking_t *b, const char *method, const char *path,
                     const char *body, call_t *c) {
  memset(c, 0, sizeof *c);
  int rc = p2q_qdrant_request(b->q, method, path, body, body ? strlen(body) : 0, 0, on_done, c);
  if (rc) {
    snprintf(c->msg, sizeof c->msg, "%s", p2q_strerror(rc));
    c->err = rc;
    c->cls = P2Q_QDRANT_PERMANENT;
    return rc;
  }
  while (!c->done) uv_run(&b->loop, UV_RUN_ONCE);
  return c->err;
}

int p2q_qdrant_blocking_call(p2q_qdrant_blocking_t *b, const char *method, const char *collection,
                             const char *suffix, const char *body, cJSON **root,
                             const cJSON **result, char *msg, size_t msglen) {
  return p2q_qdrant_blocking_call_raw(b, method, collection, suffix, body, root, result, NULL, NULL,
                                      msg, msglen);
}

int p2q_qdrant_blocking_call_raw(p2q_qdrant_blocking_t *b, const char *method, const char *collection,
                                 const char *suffix, const char *body, cJSON **root,
                                 const cJSON **result, char **raw, size_t *rawlen, char *msg,
                                 size_t msglen) {
  char esc[800], path[1024];
  *root = NULL;
  *result = NULL;
  if (p2q_qdrant_path_escape(collection, esc, sizeof esc) < 0) {
    snprintf(msg, msglen, "collection name too long");
    return P2Q_EINVAL;
  }
  snprintf(path, sizeof path, "/collections/%s%s", esc, suffix);
  return p2q_qdrant_blocking_path(b, method, path, body, root, result, raw, rawlen, msg, msglen);
}

int p2q_qdrant_blocking_path(p2q_qdrant_blocking_t *b, const char *method, const char *path,
                             const char *body, cJSON **root, const cJSON **result, char **raw,
                             size_t *rawlen, char *msg, size_t msglen) {
  call_t c;
  *root = NULL;
  *result = NULL;
  int rc = 0;
  for (int attempt = 0;; attempt++) {
    rc = call_once(b, method, path, body, &c);
    if (rc == 0 || (c.cls != P2Q_QDRANT_RETRY && c.cls != P2Q_QDRANT_RATE) || attempt >= RETRIES) break;
    free(c.body);
    usleep((useconds_t)(200000u << attempt)); /* 0.2, 0.4, 0.8 s */
  }
  b->last_status = c.status;
  if (rc == 0) {
    rc = p2q_qdrant_parse_envelope(c.status, c.body, c.len, root, result, c.msg, sizeof c.msg);
  }
  if (rc) snprintf(msg, msglen, "%s %s: %s", method, path, c.msg);
  if (!rc && raw) { /* the reply's text, for what cJSON's doubles cannot hold (ids ≥ 2^53) */
    *raw = c.body;
    *rawlen = c.len;
    c.body = NULL;
  }
  free(c.body);
  return rc;
}

long p2q_qdrant_blocking_status(const p2q_qdrant_blocking_t *b) { return b ? b->last_status : 0; }

int p2q_qdrant_blocking_scroll(p2q_qdrant_blocking_t *b, const char *collection, const char *offset,
                               int limit, cJSON **root, const cJSON **points, const cJSON **next,
                               char *msg, size_t msglen) {
  p2q_buf_t body = P2Q_BUF_INIT;
  const cJSON *result = NULL;
  p2q_buf_printf(&body, "{\"limit\":%d,\"with_payload\":true,\"with_vector\":false", limit);
  if (offset) p2q_buf_printf(&body, ",\"offset\":%s", offset);
  p2q_buf_putc(&body, '}');
  int rc = p2q_buf_error(&body);
  if (!rc) rc = p2q_qdrant_blocking_call(b, "POST", collection, "/points/scroll", body.data, root,
                                         &result, msg, msglen);
  p2q_buf_free(&body);
  if (rc) return rc;
  *points = cJSON_GetObjectItemCaseSensitive(result, "points");
  *next = cJSON_GetObjectItemCaseSensitive(result, "next_page_offset");
  if (!cJSON_IsArray(*points)) {
    snprintf(msg, msglen, "scroll of %s: result has no points list", collection);
    cJSON_Delete(*root);
    *root = NULL;
    return P2Q_EBADJSON;
  }
  return 0;
}

/* ---------------- one-shot forms: a fresh loop and client per call ---------------- */

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

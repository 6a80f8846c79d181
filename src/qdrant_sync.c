/*
 * qdrant_sync.c — blocking Qdrant calls for the CLI commands (see qdrant_sync.h).
 *
 * Owns a private uv loop and one async p2q_qdrant_t; each call submits one request and runs the
 * loop until its callback fired, copying status, class and body out of the callback (the response
 * is valid only there) and parsing the envelope afterwards. Never used on the daemon's loop.
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

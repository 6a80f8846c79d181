/*
 * qdrant.h — Qdrant REST client on top of p2q_http (loop thread only). The classification of
 * answers and the pure helpers (envelope parsing, path escaping) are qdrant_proto.h,
 * included here; the blocking forms for CLI commands are qdrant_sync.h.
 *
 * Ownership: request bodies are copied unless a *_take variant / P2Q_HTTP_TAKE_BODY is used.
 * Everything in a p2q_qdrant_resp_t is valid only during the callback.
 */
#ifndef P2Q_QDRANT_H
#define P2Q_QDRANT_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "pg2qdrant/http.h"
#include "pg2qdrant/qdrant_proto.h"

typedef struct p2q_qdrant_s p2q_qdrant_t;

typedef void (*p2q_qdrant_cb)(p2q_qdrant_t *q, const p2q_qdrant_resp_t *r, void *arg);
typedef void (*p2q_qdrant_close_cb)(p2q_qdrant_t *q, void *arg);

typedef struct {
  const char *url;          /* base URL, e.g. "http://127.0.0.1:6333" (trailing '/' ignored) */
  const char *api_key;      /* optional; never logged */
  const char *ca_file;      /* optional */
  long connect_timeout_ms;  /* 0 = http default */
  long timeout_ms;          /* 0 = http default */
  int max_concurrent;       /* 0 = http default */
  uint64_t retry_after_max_ms; /* cap on a Retry-After: pass daemon.retry_max; 0 = 60 s */
  size_t max_read_body;     /* cap of scroll/retrieve/generic answers; 0 = 64 MiB. Writes,
                               info, count, index and probe answers are capped at
                               P2Q_QDRANT_SMALL_BODY */
  /* url may list several nodes of a cluster (nodes.h); on_node (optional, loop thread) is told
     when one goes down or comes back (url masked). */
  void (*on_node)(void *arg, int node, const char *url, int up, const char *msg);
  void *on_node_arg;
} p2q_qdrant_options_t;

/* What a write, info, count, index or probe answer can be (real ones are < 10 KiB). */
#define P2Q_QDRANT_SMALL_BODY ((size_t)1 << 20)

/* ---- async client (loop thread) ---- */
int p2q_qdrant_new(uv_loop_t *loop, const p2q_qdrant_options_t *opts, p2q_qdrant_t **out);
/* Cancels in-flight requests (callbacks fire with P2Q_ECANCELED), then cb. */
int p2q_qdrant_close(p2q_qdrant_t *q, p2q_qdrant_close_cb cb, void *arg);
unsigned p2q_qdrant_pending(const p2q_qdrant_t *q);
/* Nodes of the cluster: 1 for a single URL (p2q_qdrant_node gives NULL then: not tracked). */
int p2q_qdrant_node_count(const p2q_qdrant_t *q);
const struct p2q_node_s *p2q_qdrant_node(const p2q_qdrant_t *q, int i);

/* Generic: path starts with '/', already escaped. flags: P2Q_HTTP_TAKE_BODY. */
int p2q_qdrant_request(p2q_qdrant_t *q, const char *method, const char *path, const char *body,
                       size_t len, int flags, p2q_qdrant_cb cb, void *arg);

/* PUT /collections/{name}/points?wait=true with a caller-built body (copied). */
int p2q_qdrant_points_upsert(p2q_qdrant_t *q, const char *collection, const char *body, size_t len,
                             p2q_qdrant_cb cb, void *arg);
/* Same, taking ownership of a malloc()ed body (freed by the library; not on failure). */
int p2q_qdrant_points_upsert_take(p2q_qdrant_t *q, const char *collection, char *body, size_t len,
                                  p2q_qdrant_cb cb, void *arg);
/* Same, with a body the caller keeps alive and unchanged until cb has returned (P2Q_HTTP_LEND_BODY). */
int p2q_qdrant_points_upsert_lent(p2q_qdrant_t *q, const char *collection, const char *body, size_t len,
                                  p2q_qdrant_cb cb, void *arg);
/* POST …/points/batch?wait=true (operations in order) / POST …/points (retrieve by ids). */
int p2q_qdrant_points_batch_take(p2q_qdrant_t *q, const char *collection, char *body, size_t len,
                                 p2q_qdrant_cb cb, void *arg);
int p2q_qdrant_points_retrieve_take(p2q_qdrant_t *q, const char *collection, char *body, size_t len,
                                    p2q_qdrant_cb cb, void *arg);
/* POST /collections/{name}/points/delete?wait=true, taking ownership of the body likewise. */
int p2q_qdrant_points_delete_take(p2q_qdrant_t *q, const char *collection, char *body, size_t len,
                                  p2q_qdrant_cb cb, void *arg);
/* POST /collections/{name}/points/count {"exact": true[, "filter": filter_json]}. */
int p2q_qdrant_points_count(p2q_qdrant_t *q, const char *collection, const char *filter_json,
                            p2q_qdrant_cb cb, void *arg);
/* GET /readyz (no envelope): err 0 when 200, otherwise classified like any request. */
int p2q_qdrant_probe(p2q_qdrant_t *q, p2q_qdrant_cb cb, void *arg);

#endif

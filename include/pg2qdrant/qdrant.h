/*
 * qdrant.h — Qdrant REST client on top of p2q_http (loop thread only), plus pure helpers
 * (status classification, envelope parsing, collection-config checks) and a small blocking
 * convenience for CLI commands that runs a private loop.
 *
 * Classification (p2q_qdrant_classify on the status, refined by the body in the client): every
 * answer gets exactly one class, and p2q_qdrant_class_transient() says whether it costs time
 * (the events wait, no attempt burned) or may be the request's fault.
 *   OK        2xx with Qdrant's success envelope: a JSON object with `"status":"ok"` and a
 *             `result` member. Nothing less: a 2xx with an error envelope (`{"status":{"error":
 *             "boom"},"result":null}`, as a proxy may send), an unparsable body or a body that is
 *             not Qdrant's envelope (a proxy's HTML) is RETRY with a message saying so.
 *   RETRY     transient target failure: transport errors (status 0: refused, reset, timeout,
 *             empty reply, a body over the request's cap), 408, every 5xx, 3xx (never followed:
 *             the message names the Location, its credentials masked), 1xx, bad 2xx bodies,
 *             `wait_timeout`.
 *   RATE      429: slow down (feed p2q_ratelimit), retry after retry_delay_ms when the server
 *             gave a Retry-After (capped by the client's retry_after_max_ms).
 *   TOO_LARGE 413 (a proxy's or Qdrant's body limit): split the batch; a single point over the
 *             limit is that event's fault.
 *   CONFIG    401, 403, 407 (credentials), 405/421/426 and other unexpected 4xx, a 404 without
 *             Qdrant's envelope (no such route: qdrant.url is wrong): stop the target, alarm.
 *   MISSING   404/410 of a collection (`Collection `c` doesn't exist!`): alarm, or re-create.
 *   PERMANENT 400, 409, 422, and a 404 with another Qdrant message (a missing point): the
 *             request's fault (bisect a batch to find the bad point).
 * retry_delay_ms is the server's Retry-After for RETRY and RATE (else -1 = use your backoff).
 *
 * Ownership: request bodies are copied unless a *_take variant / P2Q_HTTP_TAKE_BODY is used.
 * Everything in a p2q_qdrant_resp_t is valid only during the callback.
 */
#ifndef P2Q_QDRANT_H
#define P2Q_QDRANT_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "pg2qdrant/http.h"

typedef struct p2q_qdrant_s p2q_qdrant_t;

/* XX(name, label, transient): see the classification above. */
#define P2Q_QDRANT_CLASS_MAP(XX)         \
  XX(OK, "ok", 0)                        \
  XX(RETRY, "retry", 1)                  \
  XX(RATE, "rate_limited", 1)            \
  XX(TOO_LARGE, "too_large", 0)          \
  XX(CONFIG, "config", 1)                \
  XX(MISSING, "missing", 1)              \
  XX(PERMANENT, "permanent", 0)

typedef enum {
#define XX(name, label, transient) P2Q_QDRANT_##name,
  P2Q_QDRANT_CLASS_MAP(XX)
#undef XX
  P2Q_QDRANT_NCLASSES
} p2q_qdrant_class_t;

typedef struct {
  int err;                  /* 0, P2Q_EHTTP, P2Q_ETIMEOUT, P2Q_ECANCELED, P2Q_EOVERFLOW (body over
                               the cap), P2Q_EQDRANT (non-2xx, or a 2xx error envelope),
                               P2Q_EBADJSON (2xx but no valid envelope), P2Q_EMISMATCH (check) */
  long status;              /* HTTP status, 0 when no response */
  int curl_code;
  p2q_qdrant_class_t cls;   /* from p2q_qdrant_classify, refined by the body: RETRY for
                               ECANCELED, a 2xx without a success envelope and `wait_timeout`;
                               MISSING/CONFIG/PERMANENT for a 404 by its body; PERMANENT for a
                               check mismatch; OK for 409 on collection create */
  long retry_delay_ms;      /* Retry-After in ms (capped), or -1 (use backoff) */
  const char *error;        /* message: status.error, plain-text body, curl error or check
                               mismatch; "" on success */
  const cJSON *result;      /* the envelope's `result` (NULL on error or non-JSON bodies) */
  const char *body;         /* raw body */
  size_t body_len;
  double time;              /* total request time, seconds */
} p2q_qdrant_resp_t;

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

/* Qdrant's text for a write that only some shards applied (CollectionError::
 * InconsistentShardFailure): "{failed} out of {total} shards failed to apply operation. First
 * error captured: {first}"; the HTTP status is the first error's (500 for a transport error
 * between nodes). */
#define P2Q_QDRANT_SHARDS_FAILED "shards failed to apply operation"

/* What a write, info, count, index or probe answer can be (real ones are < 10 KiB). */
#define P2Q_QDRANT_SMALL_BODY ((size_t)1 << 20)

/* Expected vector layout of a collection. */
typedef struct {
  const char *vector_name;  /* NULL or "" = unnamed single vector */
  int dim;
  const char *distance;     /* "Cosine" | "Euclid" | "Dot" | "Manhattan" (case-sensitive) */
  const char *sparse_name;  /* optional sparse vector (modifier idf), NULL = none */
} p2q_qdrant_vectors_t;

/* ---- pure helpers ---- */
/* The class of an HTTP status (0 = no answer). retry_after_ms: the parsed, capped Retry-After
 * (-1 = none); *delay_ms receives it for RETRY and RATE, else -1. Also used for embedders. */
p2q_qdrant_class_t p2q_qdrant_classify(long status, int curl_code, int64_t retry_after_ms,
                                       long *delay_ms);
const char *p2q_qdrant_class_name(p2q_qdrant_class_t c);
/* 1 when the class costs time, never an attempt: the target's fault (RETRY, RATE, CONFIG,
 * MISSING); 0 for OK, TOO_LARGE (split) and PERMANENT (the request's fault). */
int p2q_qdrant_class_transient(p2q_qdrant_class_t c);
/* Parse an envelope. On success (2xx, a JSON object with "status":"ok" and a `result` member)
 * *root owns the document and *result points into it; returns 0. For an error envelope (any
 * status, 2xx included) returns P2Q_EQDRANT with status.error (or the plain text body, or
 * "HTTP <status>") copied into msg. A 2xx body that is not JSON or not Qdrant's envelope gives
 * P2Q_EBADJSON with a message quoting its start. *root is NULL unless set; the caller
 * cJSON_Delete()s it. */
int p2q_qdrant_parse_envelope(long status, const char *body, size_t len, cJSON **root,
                              const cJSON **result, char *msg, size_t msglen);
/* Check a collection-info `result` against expectations. 0, or P2Q_EMISMATCH / P2Q_EBADJSON
 * with a human-readable message. */
int p2q_qdrant_check_collection(const cJSON *info_result, const p2q_qdrant_vectors_t *want,
                                char *msg, size_t msglen);
/* Build the PUT /collections/{name} body. Returns a malloc()ed string or NULL. */
char *p2q_qdrant_create_body(const p2q_qdrant_vectors_t *v);
/* Percent-escape one path segment (RFC 3986 unreserved kept). Returns length or P2Q_EOVERFLOW. */
int p2q_qdrant_path_escape(const char *in, char *out, size_t outlen);

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

int p2q_qdrant_collection_info(p2q_qdrant_t *q, const char *collection, p2q_qdrant_cb cb, void *arg);
/* GET info and compare; a mismatch completes with err P2Q_EMISMATCH and a clear message. */
int p2q_qdrant_collection_check(p2q_qdrant_t *q, const char *collection,
                                const p2q_qdrant_vectors_t *want, p2q_qdrant_cb cb, void *arg);
/* PUT /collections/{name}; 409 (exists) completes with err 0 and status 409. */
int p2q_qdrant_collection_create(p2q_qdrant_t *q, const char *collection,
                                 const p2q_qdrant_vectors_t *v, p2q_qdrant_cb cb, void *arg);
/* PUT /collections/{name}/index {"field_name", "field_schema"} with wait=true. */
int p2q_qdrant_index_create(p2q_qdrant_t *q, const char *collection, const char *field,
                            const char *schema, p2q_qdrant_cb cb, void *arg);
/* PUT /collections/{name}/points?wait=true with a caller-built body (copied). */
int p2q_qdrant_points_upsert(p2q_qdrant_t *q, const char *collection, const char *body, size_t len,
                             p2q_qdrant_cb cb, void *arg);
/* POST /collections/{name}/points/delete?wait=true with a caller-built body (copied). */
int p2q_qdrant_points_delete(p2q_qdrant_t *q, const char *collection, const char *body, size_t len,
                             p2q_qdrant_cb cb, void *arg);
/* Same, taking ownership of a malloc()ed body (freed by the library; not on failure). */
int p2q_qdrant_points_upsert_take(p2q_qdrant_t *q, const char *collection, char *body, size_t len,
                                  p2q_qdrant_cb cb, void *arg);
/* POST …/points/batch?wait=true (operations in order) / POST …/points (retrieve by ids). */
int p2q_qdrant_points_batch_take(p2q_qdrant_t *q, const char *collection, char *body, size_t len,
                                 p2q_qdrant_cb cb, void *arg);
int p2q_qdrant_points_retrieve_take(p2q_qdrant_t *q, const char *collection, char *body, size_t len,
                                    p2q_qdrant_cb cb, void *arg);
int p2q_qdrant_points_delete_take(p2q_qdrant_t *q, const char *collection, char *body, size_t len,
                                  p2q_qdrant_cb cb, void *arg);
/* POST /collections/{name}/points/scroll with a caller-built body; result has
 * "points" and "next_page_offset". */
int p2q_qdrant_points_scroll(p2q_qdrant_t *q, const char *collection, const char *body, size_t len,
                             p2q_qdrant_cb cb, void *arg);
/* POST /collections/{name}/points/count {"exact": true[, "filter": filter_json]}. */
int p2q_qdrant_points_count(p2q_qdrant_t *q, const char *collection, const char *filter_json,
                            p2q_qdrant_cb cb, void *arg);
/* GET /readyz (no envelope): err 0 when 200, otherwise classified like any request. */
int p2q_qdrant_probe(p2q_qdrant_t *q, p2q_qdrant_cb cb, void *arg);

/* ---- blocking convenience (CLI; runs a private loop; never call on the daemon loop) ---- */
/* Check the collection; if absent (404) and create != 0, create it (+ optional keyword payload
 * index on index_field) and check again. 0, or a P2Q_E* code with a message in msg. */
int p2q_qdrant_sync_ensure_collection(const p2q_qdrant_options_t *opts, const char *collection,
                                      const p2q_qdrant_vectors_t *want, int create,
                                      const char *index_field, char *msg, size_t msglen);
/* GET /readyz synchronously. */
int p2q_qdrant_sync_probe(const p2q_qdrant_options_t *opts, char *msg, size_t msglen);

#endif

/*
 * qdrant_proto.h — Qdrant's REST protocol, pure (qdrant_proto.c): the classification of an
 * answer, envelope parsing, path escaping, and the reading of one whole answer for the client
 * (qdrant.h, which includes this header). No I/O.
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
 */
#ifndef P2Q_QDRANT_PROTO_H
#define P2Q_QDRANT_PROTO_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "pg2qdrant/http.h"

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

/* Qdrant's text for a write that only some shards applied (CollectionError::
 * InconsistentShardFailure): "{failed} out of {total} shards failed to apply operation. First
 * error captured: {first}"; the HTTP status is the first error's (500 for a transport error
 * between nodes). */
#define P2Q_QDRANT_SHARDS_FAILED "shards failed to apply operation"

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
/* Percent-escape one path segment (RFC 3986 unreserved kept). Returns length or P2Q_EOVERFLOW. */
int p2q_qdrant_path_escape(const char *in, char *out, size_t outlen);

/* What a request expects of its answer (the client's request kinds). */
typedef enum {
  P2Q_QK_RAW = 0, /* Qdrant's envelope */
  P2Q_QK_PROBE    /* GET /readyz: plain text, no envelope */
} p2q_qdrant_kind_t;

/* The client's reading of an answer that arrived (hr->status set): fills in the
 * envelope-dependent fields of resp, refining the class p2q_qdrant_classify put in resp->cls by
 * the body. *root receives the parsed document (caller cJSON_Delete()s), msg the message. */
void p2q_qdrant_interpret(p2q_qdrant_kind_t kind, const p2q_http_response_t *hr,
                          p2q_qdrant_resp_t *resp, cJSON **root, char *msg, size_t n);

#endif

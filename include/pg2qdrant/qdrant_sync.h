/*
 * qdrant_sync.h — a blocking Qdrant client for CLI commands (reconcile, backfill): one private
 * libuv loop and one p2q_qdrant_t kept across calls (connection reuse), main thread only, never
 * on the daemon's loop. Transient failures (the RETRY class) are retried 3 times with backoff.
 */
#ifndef P2Q_QDRANT_SYNC_H
#define P2Q_QDRANT_SYNC_H

#include "pg2qdrant/qdrant.h"

typedef struct p2q_qdrant_blocking_s p2q_qdrant_blocking_t;

int p2q_qdrant_blocking_open(const p2q_qdrant_options_t *opts, p2q_qdrant_blocking_t **out);
void p2q_qdrant_blocking_close(p2q_qdrant_blocking_t *b);

/*
 * One request on collection `collection` (escaped here) at `suffix` ("/points/scroll", …) with a
 * JSON body. 0 with *root (caller cJSON_Delete()s) and *result = the envelope's result; or a
 * P2Q_E* code with a message in msg (*root NULL).
 */
int p2q_qdrant_blocking_call(p2q_qdrant_blocking_t *b, const char *method, const char *collection,
                             const char *suffix, const char *body, cJSON **root,
                             const cJSON **result, char *msg, size_t msglen);

/* The same, also handing over the reply's raw text (*raw, *rawlen; caller frees; only on success). */
int p2q_qdrant_blocking_call_raw(p2q_qdrant_blocking_t *b, const char *method, const char *collection,
                                 const char *suffix, const char *body, cJSON **root,
                                 const cJSON **result, char **raw, size_t *rawlen, char *msg,
                                 size_t msglen);

/* The same for any path ("/cluster"), already escaped. raw may be NULL. */
int p2q_qdrant_blocking_path(p2q_qdrant_blocking_t *b, const char *method, const char *path,
                             const char *body, cJSON **root, const cJSON **result, char **raw,
                             size_t *rawlen, char *msg, size_t msglen);

/* The HTTP status of the last call's answer (0: none). */
long p2q_qdrant_blocking_status(const p2q_qdrant_blocking_t *b);
/* POST …/points/scroll {"limit", "offset"? (JSON text, or NULL for the first page),
 * "with_payload": true, "with_vector": false}. *points and *next (NULL or JSON null at the end)
 * point into *root. */
int p2q_qdrant_blocking_scroll(p2q_qdrant_blocking_t *b, const char *collection, const char *offset,
                               int limit, cJSON **root, const cJSON **points, const cJSON **next,
                               char *msg, size_t msglen);

/* ---- one-shot forms: a fresh private loop and client per call, no retries ---- */
/* Check the collection; if absent (404) and create != 0, create it (+ optional keyword payload
 * index on index_field) and check again. 0, or a P2Q_E* code with a message in msg. */
int p2q_qdrant_sync_ensure_collection(const p2q_qdrant_options_t *opts, const char *collection,
                                      const p2q_qdrant_vectors_t *want, int create,
                                      const char *index_field, char *msg, size_t msglen);
/* GET /readyz synchronously. */
int p2q_qdrant_sync_probe(const p2q_qdrant_options_t *opts, char *msg, size_t msglen);

#endif

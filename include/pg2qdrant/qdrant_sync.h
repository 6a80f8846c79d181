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

#endif

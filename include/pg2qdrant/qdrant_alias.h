/*
 * qdrant_alias.h — the Qdrant calls of zero-downtime re-embedding (reindex.h): list collections
 * and aliases, switch an alias in one POST /collections/aliases, delete a collection by its
 * physical name. Blocking forms for the CLI (`apply`, `reindex`, `run` start-up; a
 * p2q_qdrant_blocking_t), async forms for the daemon's executor (loop thread; the daemon's
 * p2q_qdrant_t). Bodies come from reindex.c (p2q_reindex_swap_body); the answers are read by
 * p2q_reindex_observe.
 */
#ifndef P2Q_QDRANT_ALIAS_H
#define P2Q_QDRANT_ALIAS_H

#include "pg2qdrant/qdrant.h"
#include "pg2qdrant/qdrant_sync.h"

/* GET /collections and GET /aliases, read by p2q_reindex_observe for `base`. 0, a Qdrant error
   (message in msg), or P2Q_EMISMATCH when the alias `base` points to a collection that is not one
   of its versions (made by hand: never moved by pg2qdrant). */
int p2q_alias_observe_sync(p2q_qdrant_blocking_t *b, const char *base, int *alias_version, int *max_version,
                           char *msg, size_t msglen);
/* POST /collections/aliases: delete_alias (when had_alias) + create_alias in one call. */
int p2q_alias_switch_sync(p2q_qdrant_blocking_t *b, const char *alias, const char *collection, int had_alias,
                          char *msg, size_t msglen);

/* Async (loop thread): list, switch and drop, completing through cb (resp->body holds the raw answer). */
int p2q_alias_list(p2q_qdrant_t *q, int aliases, p2q_qdrant_cb cb, void *arg); /* aliases: GET /aliases,
                                                                                 else GET /collections */
int p2q_alias_switch(p2q_qdrant_t *q, const char *alias, const char *collection, int had_alias, p2q_qdrant_cb cb,
                     void *arg);
int p2q_alias_drop(p2q_qdrant_t *q, const char *collection, p2q_qdrant_cb cb, void *arg);

#endif

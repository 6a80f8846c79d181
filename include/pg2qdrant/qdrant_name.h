/*
 * qdrant_name.h — Qdrant's rules for collection (and alias) names, checked before a name is put
 * into a URL path. Pure; any thread.
 */
#ifndef P2Q_QDRANT_NAME_H
#define P2Q_QDRANT_NAME_H

#include <stddef.h>

#define P2Q_QDRANT_NAME_MAX 255

/* NULL when `name` is a valid collection name, else the reason, in Qdrant's words where Qdrant
   has them ("collection name cannot contain \":\" char"), written into buf. */
const char *p2q_qdrant_name_check(const char *name, char *buf, size_t n);

#endif

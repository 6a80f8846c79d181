/*
 * qdrant_name.c — collection name rules (see qdrant_name.h).
 *
 * Qdrant 1.18 validates the collection_name path parameter with a length of 1..255 and a set of
 * forbidden characters (its message: `collection name cannot contain "C" char`, recorded in
 * ../shared/qdrant/recordings). On top, "." and ".." are refused here: as URL path segments they
 * are dot-segments that HTTP clients (libcurl) remove, so the request would reach /collections/
 * or / instead of the collection. Control characters are refused too (they have no business in a
 * name that goes into URLs, logs and metrics labels).
 */
#include "pg2qdrant/qdrant_name.h"

#include <stdio.h>
#include <string.h>

const char *p2q_qdrant_name_check(const char *name, char *buf, size_t n) {
  static const char forbidden[] = "<>:\"/\\|?*";
  if (!name || !*name) return snprintf(buf, n, "collection name must not be empty"), buf;
  size_t len = strlen(name);
  if (len > P2Q_QDRANT_NAME_MAX)
    return snprintf(buf, n, "collection name is %zu bytes long, at most %d allowed", len,
                    P2Q_QDRANT_NAME_MAX), buf;
  if (!strcmp(name, ".") || !strcmp(name, ".."))
    return snprintf(buf, n, "collection name \"%s\" is a URL dot-segment", name), buf;
  for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
    if (strchr(forbidden, *p))
      return snprintf(buf, n, "collection name cannot contain \"%c\" char", *p), buf;
    if (*p < 0x20 || *p == 0x7f)
      return snprintf(buf, n, "collection name cannot contain control character 0x%02x", *p), buf;
  }
  return NULL;
}

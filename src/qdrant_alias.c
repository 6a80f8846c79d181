/*
 * qdrant_alias.c — the alias and version calls of re-embedding (see qdrant_alias.h). Blocking
 * forms on the CLI's p2q_qdrant_blocking_t (main thread), async forms on the daemon's client
 * (loop thread). Facts from real Qdrant (recordings/v1.18.jsonl): delete_alias of a missing alias
 * answers 200; create_alias to a missing collection 404; an alias named like a collection 409;
 * several actions in one POST /collections/aliases are applied atomically.
 */
#include "pg2qdrant/qdrant_alias.h"
#include "pg2qdrant/errors.h"
#include "pg2qdrant/reindex.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int raw_get(p2q_qdrant_blocking_t *b, const char *path, char **raw, char *msg, size_t msglen) {
  cJSON *root = NULL;
  const cJSON *res = NULL;
  size_t len = 0;
  *raw = NULL;
  char *r = NULL;
  int rc = p2q_qdrant_blocking_path(b, "GET", path, NULL, &root, &res, &r, &len, msg, msglen);
  cJSON_Delete(root);
  if (!rc && r && !(*raw = strndup(r, len))) rc = P2Q_ENOMEM; /* the raw answer is not NUL-terminated */
  free(r);
  return rc;
}

int p2q_alias_observe_sync(p2q_qdrant_blocking_t *b, const char *base, int *alias_version, int *max_version,
                           char *msg, size_t msglen) {
  char *colls = NULL, *aliases = NULL;
  int rc = raw_get(b, "/collections", &colls, msg, msglen);
  if (!rc) rc = raw_get(b, "/aliases", &aliases, msg, msglen);
  if (!rc) {
    rc = p2q_reindex_observe(base, colls, aliases, alias_version, max_version);
    if (rc == P2Q_EMISMATCH)
      snprintf(msg, msglen, "alias %s points to a collection that is not one of its versions (%s__vN): made by "
               "hand? pg2qdrant never moves it", base, base);
    else if (rc) snprintf(msg, msglen, "cannot read Qdrant's collection or alias list");
  }
  free(colls);
  free(aliases);
  return rc;
}

int p2q_alias_switch_sync(p2q_qdrant_blocking_t *b, const char *alias, const char *collection, int had_alias,
                          char *msg, size_t msglen) {
  p2q_buf_t body = P2Q_BUF_INIT;
  cJSON *root = NULL;
  const cJSON *res = NULL;
  p2q_reindex_swap_body(&body, alias, collection, had_alias);
  int rc = p2q_buf_error(&body) ? P2Q_ENOMEM
         : p2q_qdrant_blocking_path(b, "POST", "/collections/aliases", p2q_buf_str(&body), &root, &res,
                                    NULL, NULL, msg, msglen);
  cJSON_Delete(root);
  p2q_buf_free(&body);
  return rc;
}

static int coll_path(char *out, size_t n, const char *collection) {
  char esc[768];
  if (p2q_qdrant_path_escape(collection, esc, sizeof esc) < 0) return P2Q_EOVERFLOW;
  int len = snprintf(out, n, "/collections/%s", esc);
  return len < 0 || (size_t)len >= n ? P2Q_EOVERFLOW : 0;
}

int p2q_alias_list(p2q_qdrant_t *q, int aliases, p2q_qdrant_cb cb, void *arg) {
  return p2q_qdrant_request(q, "GET", aliases ? "/aliases" : "/collections", NULL, 0, 0, cb, arg);
}

int p2q_alias_switch(p2q_qdrant_t *q, const char *alias, const char *collection, int had_alias, p2q_qdrant_cb cb,
                     void *arg) {
  p2q_buf_t body = P2Q_BUF_INIT;
  p2q_reindex_swap_body(&body, alias, collection, had_alias);
  if (p2q_buf_error(&body)) { p2q_buf_free(&body); return P2Q_ENOMEM; }
  size_t len = body.len;
  char *data = p2q_buf_steal(&body);
  int rc = p2q_qdrant_request(q, "POST", "/collections/aliases", data, len, P2Q_HTTP_TAKE_BODY, cb, arg);
  if (rc) free(data);
  return rc;
}

int p2q_alias_drop(p2q_qdrant_t *q, const char *collection, p2q_qdrant_cb cb, void *arg) {
  char path[1024];
  int rc = coll_path(path, sizeof path, collection);
  return rc ? rc : p2q_qdrant_request(q, "DELETE", path, NULL, 0, 0, cb, arg);
}

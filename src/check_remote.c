/*
 * check_remote.c — `check`: Qdrant (reachable, version, API key), each rule's collection (present,
 * the rule's vectors), each embedder a rule uses (answers one text with the right dimension), and
 * the status endpoint's address (bindable here and now). Blocking: each part runs a private libuv
 * loop on the main thread until its answer arrived. Reads only: a missing collection is reported,
 * never created (`apply` creates it).
 */
#include "check.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "pg2qdrant/collection.h"
#include "pg2qdrant/commands.h"
#include "pg2qdrant/embedder.h"
#include "pg2qdrant/errors.h"
#include "pg2qdrant/netaddr.h"
#include "pg2qdrant/collection.h"
#include "pg2qdrant/nodes.h"
#include "pg2qdrant/qdrant.h"
#include "pg2qdrant/qdrant_sync.h"

typedef struct {
  int done, err;
  long status;
  char msg[512];
  char *body;
} get_t;

static void got(p2q_qdrant_t *q, const p2q_qdrant_resp_t *r, void *arg) {
  get_t *g = arg;
  (void)q;
  g->done = 1;
  g->err = r->err;
  g->status = r->status;
  snprintf(g->msg, sizeof g->msg, "%s", r->error ? r->error : "");
  if (r->body && (g->body = malloc(r->body_len + 1))) {
    memcpy(g->body, r->body, r->body_len);
    g->body[r->body_len] = 0;
  }
}

static int get(uv_loop_t *loop, p2q_qdrant_t *q, const char *path, get_t *g) {
  memset(g, 0, sizeof *g);
  int rc = p2q_qdrant_request(q, "GET", path, NULL, 0, 0, got, g);
  if (rc) {
    snprintf(g->msg, sizeof g->msg, "%s", p2q_strerror(rc));
    return rc;
  }
  while (!g->done) uv_run(loop, UV_RUN_ONCE);
  return g->err;
}

/* 1 when Qdrant answered and accepted the key (so the collection checks can run). */
static int check_qdrant(p2q_check_t *c) {
  const p2q_config_t *cfg = c->cfg;
  p2q_qdrant_options_t o;
  uv_loop_t loop;
  p2q_qdrant_t *q = NULL;
  get_t g = {0};
  int usable = 0;
  char *url = p2q_config_mask_conninfo(cfg->qdrant_url);
  p2q_qdrant_options_from_config(cfg, &o);
  uv_loop_init(&loop);
  if (p2q_qdrant_new(&loop, &o, &q)) {
    p2q_check_report(c, P2Q_CHECK_FAIL, "qdrant.reachable", "check [qdrant] url and ca_file", "cannot set up the client");
    goto out;
  }
  if (get(&loop, q, "/", &g) && g.status == 0) {
    p2q_check_report(c, P2Q_CHECK_FAIL, "qdrant.reachable", "check [qdrant] url, that Qdrant runs, and the network",
                     "%s: %s", url ? url : "?", g.msg);
    goto out;
  }
  cJSON *root = g.body ? cJSON_Parse(g.body) : NULL;
  const cJSON *ver = cJSON_GetObjectItemCaseSensitive(root, "version");
  if (g.status == 200 && cJSON_IsString(ver))
    p2q_check_report(c, P2Q_CHECK_OK, "qdrant.reachable", NULL, "%s: Qdrant %s", url ? url : "?", ver->valuestring);
  else if (g.status == 401 || g.status == 403)
    p2q_check_report(c, P2Q_CHECK_OK, "qdrant.reachable", NULL, "%s answers (version hidden without the key)",
                     url ? url : "?");
  else
    p2q_check_report(c, P2Q_CHECK_WARN, "qdrant.reachable", "check [qdrant] url: it should be Qdrant's REST address",
                     "%s: HTTP %ld, not Qdrant's greeting", url ? url : "?", g.status);
  cJSON_Delete(root);
  free(g.body);
  g.body = NULL;
  const char *keyvar = cfg->qdrant_api_key_env && *cfg->qdrant_api_key_env ? cfg->qdrant_api_key_env : NULL;
  get(&loop, q, "/collections", &g);
  if (g.status == 401 || g.status == 403) {
    char fix[256];
    snprintf(fix, sizeof fix, keyvar ? "put Qdrant's API key in $%s" : "set [qdrant] api_key_env and put the key in that variable",
             keyvar);
    p2q_check_report(c, P2Q_CHECK_FAIL, "qdrant.auth", fix, "HTTP %ld: the API key is %s", g.status,
                     keyvar ? (getenv(keyvar) && *getenv(keyvar) ? "rejected" : "not set (empty variable)") : "missing");
  } else if (g.status == 200) {
    p2q_check_report(c, P2Q_CHECK_OK, "qdrant.auth", NULL, "%s", keyvar ? "API key accepted" : "no API key needed");
    usable = 1;
  } else {
    p2q_check_report(c, P2Q_CHECK_FAIL, "qdrant.auth", "check [qdrant] url", "GET /collections: HTTP %ld %s", g.status, g.msg);
  }
out:
  free(g.body);
  free(url);
  if (q) p2q_qdrant_close(q, NULL, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  return usable;
}

/* A Qdrant cluster (GET /cluster): the nodes [qdrant] url lists, and collections with one replica
   per shard (README "Qdrant clusters"). */
static void check_cluster(p2q_check_t *c, p2q_qdrant_blocking_t *b) {
  const p2q_config_t *cfg = c->cfg;
  cJSON *root = NULL;
  const cJSON *res = NULL;
  char msg[512], why[128];
  if (p2q_qdrant_blocking_path(b, "GET", "/cluster", NULL, &root, &res, NULL, NULL, msg, sizeof msg)) {
    p2q_check_report(c, P2Q_CHECK_WARN, "qdrant.cluster", NULL, "GET /cluster: %s", msg);
    return;
  }
  int peers = p2q_collection_cluster_peers(res), listed = p2q_nodes_split(cfg->qdrant_url, NULL, 0, why, sizeof why);
  cJSON_Delete(root);
  if (peers < 2)
    p2q_check_report(c, P2Q_CHECK_OK, "qdrant.cluster", NULL, "a single node (distributed mode off)");
  else if (listed < 2)
    p2q_check_report(c, P2Q_CHECK_WARN, "qdrant.cluster", "list every node in [qdrant] url, separated by commas",
                     "a %d-node cluster, [qdrant] url names one node: nothing syncs while it is down", peers);
  else
    p2q_check_report(c, P2Q_CHECK_OK, "qdrant.cluster", NULL, "a %d-node cluster, %d nodes in [qdrant] url", peers, listed);
  for (int i = 0; peers >= 2 && i < cfg->n_rules; i++) {
    const p2q_rule_config_t *r = &cfg->rules[i];
    char w[512], name[300];
    /* once per collection; a configured factor is a choice */
    if (!p2q_collection_first_rule(cfg, i) || r->replication_factor) continue;
    if (p2q_qdrant_blocking_call(b, "GET", r->collection, "", NULL, &root, &res, msg, sizeof msg) == 0 &&
        p2q_collection_single_replica_warning(res, peers, r->collection, w, sizeof w)) {
      snprintf(name, sizeof name, "collection.%s.replicas", r->collection);
      char *fix = strstr(w, " -- fix: ");
      if (fix) *fix = 0;
      p2q_check_report(c, P2Q_CHECK_WARN, name, fix ? fix + 9 : NULL, "%s", w);
    }
    cJSON_Delete(root);
    root = NULL;
  }
}

/* Each collection as the config wants it (collection.c: vectors of every rule writing it, sparse
   vectors, HNSW, quantization, sharding, payload indexes), compared without changing anything. */
static void check_collections(p2q_check_t *c) {
  const p2q_config_t *cfg = c->cfg;
  p2q_qdrant_options_t o;
  p2q_qdrant_blocking_t *b = NULL;
  p2q_qdrant_options_from_config(cfg, &o);
  if (p2q_qdrant_blocking_open(&o, &b) == 0) {
    check_cluster(c, b);
    p2q_qdrant_blocking_close(b);
  }
  for (int i = 0; i < cfg->n_rules; i++) {
    const char *coll = cfg->rules[i].collection;
    if (!p2q_collection_first_rule(cfg, i)) continue;
    char msg[1024], name[160];
    char *report = NULL;
    size_t len = 0;
    snprintf(name, sizeof name, "collection.%s", coll);
    FILE *m = open_memstream(&report, &len);
    int rc = m ? p2q_collection_ensure(&o, cfg, coll, P2Q_COLL_DRY, m, msg, sizeof msg) : P2Q_ENOMEM;
    if (m) fclose(m);
    while (len && report[len - 1] == '\n') report[--len] = 0;
    for (char *p = report; p && *p; p++)
      if (*p == '\n') *p = ';';
    if (rc == P2Q_EMISMATCH)
      p2q_check_report(c, P2Q_CHECK_FAIL, name, "recreate the collection, or change the rules' dimension/distance",
                       "%s", len ? report : msg);
    else if (rc)
      p2q_check_report(c, P2Q_CHECK_FAIL, name, "see the message", "%s", msg);
    else if (len && strstr(report, "would be created"))
      p2q_check_report(c, P2Q_CHECK_FAIL, name, "run `pg2qdrant apply` (it creates it)", "%s does not exist", coll);
    else if (len)
      p2q_check_report(c, P2Q_CHECK_WARN, name, "run `pg2qdrant apply`: it fixes in place what Qdrant allows",
                       "differs from the config: %s", report);
    else
      p2q_check_report(c, P2Q_CHECK_OK, name, NULL, "%s: as configured", coll);
    free(report);
  }
}

typedef struct {
  int done, err, dim, status;
  char msg[512];
} emb_t;

static void embedded(const p2q_embed_result_t *r, void *arg) {
  emb_t *e = arg;
  e->done = 1;
  e->err = r->err;
  e->dim = r->dim;
  e->status = r->n > 0 && r->status ? r->status[0] : 0;
  snprintf(e->msg, sizeof e->msg, "%s", r->msg ? r->msg : "");
  if (!r->err && e->status && r->reasons && r->reasons[0]) snprintf(e->msg, sizeof e->msg, "%s", r->reasons[0]);
}

static void closed(void *arg) { *(int *)arg = 1; }

static void check_embedder(p2q_check_t *c, const p2q_embedder_config_t *ec) {
  char name[128], err[512];
  uv_loop_t loop;
  p2q_embedder_t *e = NULL;
  emb_t st = {0};
  snprintf(name, sizeof name, "embedder.%s", ec->name);
  uv_loop_init(&loop);
  if (p2q_embedder_new(&loop, ec, &e, err, sizeof err)) {
    p2q_check_report(c, P2Q_CHECK_FAIL, name,
                     ec->type == P2Q_EMB_MINILM ? "install the weights: pg2qdrant-fetch-model DIR, and set model_dir = DIR"
                                                : "check url, model and api_key_env",
                     "%s", err);
    goto out;
  }
  const char *text = "pg2qdrant check";
  size_t len = strlen(text);
  int rc = p2q_embedder_embed(e, &text, &len, 1, embedded, &st);
  if (rc) snprintf(st.msg, sizeof st.msg, "%s", p2q_strerror(rc)), st.err = rc, st.done = 1;
  while (!st.done) uv_run(&loop, UV_RUN_ONCE);
  if (st.err || st.status)
    p2q_check_report(c, P2Q_CHECK_FAIL, name, ec->type == P2Q_EMB_OPENAI ? "check url, model, api_key_env and the service"
                                                                         : "check model_dir",
                     "embedding one text failed: %s", st.msg);
  else if (ec->dim && st.dim != ec->dim)
    p2q_check_report(c, P2Q_CHECK_FAIL, name, "set the rules' dimension (or dimensions) to what the model returns",
                     "answered %d dimensions, the rules need %lld", st.dim, (long long)ec->dim);
  else if (ec->type == P2Q_EMB_OPENAI) {
    char *ep = p2q_openai_endpoint(ec->url), *masked = ep ? p2q_config_mask_conninfo(ep) : NULL;
    p2q_check_report(c, P2Q_CHECK_OK, name, NULL, "openai at %s answers with %d dimensions", masked ? masked : "?",
                     st.dim);
    free(masked);
    free(ep);
  } else
    p2q_check_report(c, P2Q_CHECK_OK, name, NULL, "minilm (%s) answers with %d dimensions", ec->model_dir, st.dim);
out:
  if (e) {
    int done = 0;
    p2q_embedder_close(e, closed, &done);
    while (!done) uv_run(&loop, UV_RUN_ONCE);
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
}

static void check_listen(p2q_check_t *c) {
  const char *l = c->cfg->http_listen;
  if (!l || !*l) {
    p2q_check_report(c, P2Q_CHECK_WARN, "http.listen", "set [http] listen (e.g. 127.0.0.1:9187) for /metrics and /readyz",
                     "off: no /metrics, /healthz, /readyz for Prometheus or the orchestrator");
    return;
  }
  struct sockaddr_storage ss;
  if (p2q_listen_parse(l, &ss) < 0) { /* the validator refuses these; kept for safety */
    p2q_check_report(c, P2Q_CHECK_FAIL, "http.listen", "use an IP address and port", "'%s' is not bindable", l);
    return;
  }
  int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1, rc = -1, e = 0;
  if (fd >= 0) {
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one); /* as libuv binds */
    rc = bind(fd, (struct sockaddr *)&ss, ss.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                                    : sizeof(struct sockaddr_in));
    if (rc == 0) rc = listen(fd, 1);
    e = errno;
    close(fd);
  } else {
    e = errno;
  }
  if (rc == 0)
    p2q_check_report(c, P2Q_CHECK_OK, "http.listen", NULL, "%s is free to bind", l);
  else
    p2q_check_report(c, P2Q_CHECK_FAIL, "http.listen",
                     e == EADDRINUSE ? "stop what listens there (another pg2qdrant on this host?) or change [http] listen"
                                     : "use an address of this host in [http] listen",
                     "cannot bind %s: %s", l, strerror(e));
}

void p2q_check_remote(p2q_check_t *c) {
  const p2q_config_t *cfg = c->cfg;
  if (check_qdrant(c)) check_collections(c);
  for (int i = 0; i < cfg->n_embedders; i++) {
    int used = 0;
    for (int r = 0; r < cfg->n_rules; r++)
      used |= cfg->rules[r].embedder && !strcmp(cfg->rules[r].embedder, cfg->embedders[i].name);
    if (used) check_embedder(c, &cfg->embedders[i]);
    else
      p2q_check_report(c, P2Q_CHECK_WARN, "embedder", "remove it, or use it in a rule",
                       "[embedder.%s] is used by no rule (not started by run)", cfg->embedders[i].name);
  }
  check_listen(c);
}

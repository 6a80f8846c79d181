/*
 * bench_sink.c — the null sink server of `pg2qdrant bench --sink null` (see bench_sink.h).
 *
 * A child process of the bench (forked before the bench starts any thread, PR_SET_PDEATHSIG so
 * it never outlives it) runs one libuv loop on the listening socket the parent bound: HTTP/1.1
 * keep-alive, pipelined requests answered in order (every complete request in a read is answered
 * in one write), requests framed by http_parse.c. It answers the daemon's and the bench's
 * requests the way Qdrant 1.18 does (shapes from /work/shared/qdrant/recordings): collections
 * created with their config echoed back by GET (so the daemon's start-up checks pass), points
 * writes acknowledged ("completed" with wait=true, "acknowledged" otherwise) after their ids are
 * applied to the collection's id set (bench_sink_parse.c), count and retrieve (id + payload
 * `seq`) from that set. No vector or payload is kept: the sink's CPU per event is a small
 * fraction of the daemon's.
 *
 * Owns (child only): the loop, the server handle, one conn_t per client, the collection table.
 * Collection bodies and answers other than the points path go through cJSON (rare requests).
 */
#include "pg2qdrant/bench_sink.h"
#include "pg2qdrant/buf.h"
#include "pg2qdrant/errors.h"
#include "pg2qdrant/http_parse.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#define MAX_HEADER (64 * 1024)
#define MAX_BODY ((size_t)256 << 20)
#define READ_CHUNK (256 * 1024)

typedef struct coll {
  struct coll *next;
  char name[256];
  cJSON *create;           /* the creation body */
  cJSON *schema;           /* payload_schema: field → {"data_type":…[,"params":…]} */
  p2q_sink_ids_t ids;
} coll_t;

typedef struct {
  uv_tcp_t tcp;
  p2q_buf_t in;            /* bytes received, not yet answered */
  int closing;
} conn_t;

typedef struct {
  uv_write_t req;
  char *data;
} wreq_t;

static coll_t *g_colls;
static unsigned long long g_op_id;

static coll_t *coll_find(const char *name) {
  for (coll_t *c = g_colls; c; c = c->next)
    if (!strcmp(c->name, name)) return c;
  return NULL;
}

static void coll_free(coll_t *c) {
  cJSON_Delete(c->create);
  cJSON_Delete(c->schema);
  p2q_sink_ids_free(&c->ids);
  free(c);
}

/* ---- answers ----------------------------------------------------------------------------- */

static void respond(p2q_buf_t *out, int status, const char *ctype, const char *body, size_t n, int close) {
  p2q_buf_printf(out, "HTTP/1.1 %d %s\r\n", status, p2q_http_reason(status));
  if (ctype) p2q_buf_printf(out, "content-type: %s\r\n", ctype);
  p2q_buf_printf(out, "content-length: %zu\r\n%s\r\n", n, close ? "connection: close\r\n" : "");
  p2q_buf_append(out, body, n);
}

/* {"result":<result>,"status":"ok","time":0.0} */
static void ok(p2q_buf_t *out, const char *result, int close) {
  char small[512];
  int n = snprintf(small, sizeof small, "{\"result\":%s,\"status\":\"ok\",\"time\":0.0}", result);
  if (n > 0 && (size_t)n < sizeof small) { respond(out, 200, "application/json", small, (size_t)n, close); return; }
  p2q_buf_t b = P2Q_BUF_INIT;
  p2q_buf_printf(&b, "{\"result\":%s,\"status\":\"ok\",\"time\":0.0}", result);
  respond(out, 200, "application/json", p2q_buf_str(&b), b.len, close);
  p2q_buf_free(&b);
}

static void ok_json(p2q_buf_t *out, cJSON *result, int close) {
  char *s = result ? cJSON_PrintUnformatted(result) : NULL;
  ok(out, s ? s : "null", close);
  free(s);
  cJSON_Delete(result);
}

static void error(p2q_buf_t *out, int status, const char *msg, int close) {
  p2q_buf_t b = P2Q_BUF_INIT;
  p2q_buf_puts(&b, "{\"status\":{\"error\":");
  p2q_buf_json_string(&b, msg, strlen(msg));
  p2q_buf_puts(&b, "},\"time\":0.0}");
  respond(out, status, "application/json", p2q_buf_str(&b), b.len, close);
  p2q_buf_free(&b);
}

static void not_found(p2q_buf_t *out, const char *coll, int close) {
  char m[400];
  snprintf(m, sizeof m, "Not found: Collection `%s` doesn't exist!", coll);
  error(out, 404, m, close);
}

static void op_done(p2q_buf_t *out, int wait, int close) {
  char r[96];
  snprintf(r, sizeof r, "{\"operation_id\":%llu,\"status\":\"%s\"}", ++g_op_id, wait ? "completed" : "acknowledged");
  ok(out, r, close);
}

/* GET /collections/{c}: Qdrant's info with the creation body's settings (defaults elsewhere) */
static cJSON *info(const coll_t *c) {
  const cJSON *b = c->create;
  cJSON *r = cJSON_CreateObject(), *cfg, *params, *h, *x;
  cJSON_AddStringToObject(r, "status", "green");
  cJSON_AddStringToObject(r, "optimizer_status", "ok");
  cJSON_AddNumberToObject(r, "indexed_vectors_count", 0);
  cJSON_AddNumberToObject(r, "points_count", (double)p2q_sink_ids_count(&c->ids));
  cJSON_AddNumberToObject(r, "segments_count", 2);
  cfg = cJSON_AddObjectToObject(r, "config");
  params = cJSON_AddObjectToObject(cfg, "params");
  x = cJSON_GetObjectItemCaseSensitive(b, "vectors");
  cJSON_AddItemToObject(params, "vectors", x ? cJSON_Duplicate(x, 1) : cJSON_CreateObject());
  if ((x = cJSON_GetObjectItemCaseSensitive(b, "sparse_vectors"))) cJSON_AddItemToObject(params, "sparse_vectors", cJSON_Duplicate(x, 1));
  static const char *const nums[] = {"shard_number", "replication_factor", "write_consistency_factor"};
  for (int i = 0; i < 3; i++) {
    x = cJSON_GetObjectItemCaseSensitive(b, nums[i]);
    cJSON_AddNumberToObject(params, nums[i], cJSON_IsNumber(x) ? x->valuedouble : 1);
  }
  x = cJSON_GetObjectItemCaseSensitive(b, "on_disk_payload");
  cJSON_AddBoolToObject(params, "on_disk_payload", cJSON_IsBool(x) ? cJSON_IsTrue(x) : 1);
  h = cJSON_Parse("{\"m\":16,\"ef_construct\":100,\"full_scan_threshold\":10000,\"max_indexing_threads\":0,\"on_disk\":false}");
  const cJSON *given = cJSON_GetObjectItemCaseSensitive(b, "hnsw_config");
  const cJSON *e;
  cJSON_ArrayForEach(e, given) if (e->string) cJSON_ReplaceItemInObjectCaseSensitive(h, e->string, cJSON_Duplicate(e, 1));
  cJSON_AddItemToObject(cfg, "hnsw_config", h);
  cJSON_AddItemToObject(cfg, "optimizer_config", cJSON_Parse(
      "{\"deleted_threshold\":0.2,\"vacuum_min_vector_number\":1000,\"default_segment_number\":0,\"max_segment_size\":null,"
      "\"memmap_threshold\":null,\"indexing_threshold\":10000,\"flush_interval_sec\":5,\"max_optimization_threads\":null,"
      "\"prevent_unoptimized\":null}"));
  cJSON_AddItemToObject(cfg, "wal_config", cJSON_Parse("{\"wal_capacity_mb\":32,\"wal_segments_ahead\":0,\"wal_retain_closed\":1}"));
  x = cJSON_GetObjectItemCaseSensitive(b, "quantization_config");
  cJSON_AddItemToObject(cfg, "quantization_config", x ? cJSON_Duplicate(x, 1) : cJSON_CreateNull());
  cJSON_AddItemToObject(r, "payload_schema", cJSON_Duplicate(c->schema, 1));
  cJSON_AddItemToObject(cJSON_AddObjectToObject(r, "update_queue"), "length", cJSON_CreateNumber(0));
  return r;
}

static void create(p2q_buf_t *out, const char *name, const char *body, size_t n, int close) {
  if (coll_find(name)) {
    char m[400];
    snprintf(m, sizeof m, "Wrong input: Collection `%s` already exists!", name);
    error(out, 409, m, close);
    return;
  }
  cJSON *j = cJSON_ParseWithLength(body, n);
  coll_t *c = cJSON_IsObject(j) ? calloc(1, sizeof *c) : NULL;
  if (!c) {
    cJSON_Delete(j);
    error(out, 400, "Format error in JSON body: expected a collection config object", close);
    return;
  }
  snprintf(c->name, sizeof c->name, "%s", name);
  c->create = j;
  c->schema = cJSON_CreateObject();
  c->next = g_colls;
  g_colls = c;
  ok(out, "true", close);
}

static void drop(p2q_buf_t *out, const char *name, int close) {
  for (coll_t **pp = &g_colls; *pp; pp = &(*pp)->next)
    if (!strcmp((*pp)->name, name)) {
      coll_t *c = *pp;
      *pp = c->next;
      coll_free(c);
      ok(out, "true", close);
      return;
    }
  ok(out, "false", close);
}

static void index_put(p2q_buf_t *out, coll_t *c, const char *body, size_t n, int wait, int close) {
  cJSON *j = cJSON_ParseWithLength(body, n);
  const cJSON *f = cJSON_GetObjectItemCaseSensitive(j, "field_name"), *fs = cJSON_GetObjectItemCaseSensitive(j, "field_schema");
  const cJSON *type = cJSON_IsObject(fs) ? cJSON_GetObjectItemCaseSensitive(fs, "type") : fs;
  if (!cJSON_IsString(f) || !cJSON_IsString(type)) {
    cJSON_Delete(j);
    error(out, 400, "Format error in JSON body: field_name and field_schema expected", close);
    return;
  }
  cJSON *e = cJSON_CreateObject();
  cJSON_AddStringToObject(e, "data_type", type->valuestring);
  if (cJSON_IsObject(fs)) cJSON_AddItemToObject(e, "params", cJSON_Duplicate(fs, 1));
  cJSON_AddNumberToObject(e, "points", 0);
  cJSON_DeleteItemFromObjectCaseSensitive(c->schema, f->valuestring);
  cJSON_AddItemToObject(c->schema, f->valuestring, e);
  cJSON_Delete(j);
  op_done(out, wait, close);
}

/* POST …/points {"ids":[…],"with_payload":…}: [{"id":…,"payload":{"seq":…}}] for the ids held */
static void retrieve(p2q_buf_t *out, const coll_t *c, const char *body, size_t n, int close) {
  cJSON *j = cJSON_ParseWithLength(body, n);
  const cJSON *ids = cJSON_GetObjectItemCaseSensitive(j, "ids"), *id;
  const cJSON *wp = cJSON_GetObjectItemCaseSensitive(j, "with_payload");
  int payload = wp && !cJSON_IsFalse(wp);
  if (!cJSON_IsArray(ids)) {
    cJSON_Delete(j);
    error(out, 400, "Format error in JSON body: missing field `ids`", close);
    return;
  }
  p2q_buf_t r = P2Q_BUF_INIT;
  p2q_buf_putc(&r, '[');
  int k = 0;
  cJSON_ArrayForEach(id, ids) {
    char *txt = cJSON_PrintUnformatted(id);
    uint64_t raw;
    int64_t seq;
    if (txt && !p2q_sink_point_key((p2q_span_t){txt, strlen(txt)}, &raw) && p2q_sink_ids_get(&c->ids, raw, &seq)) {
      p2q_buf_printf(&r, "%s{\"id\":%s", k++ ? "," : "", txt);
      if (payload && seq != P2Q_SINK_NO_SEQ) p2q_buf_printf(&r, ",\"payload\":{\"seq\":%lld}}", (long long)seq);
      else p2q_buf_puts(&r, payload ? ",\"payload\":{}}" : "}");
    }
    free(txt);
  }
  p2q_buf_putc(&r, ']');
  ok(out, p2q_buf_str(&r), close);
  p2q_buf_free(&r);
  cJSON_Delete(j);
}

/* one complete request: its answer appended to out */
static void handle(p2q_buf_t *out, const p2q_http_req_t *req, const char *head, const char *body, int close) {
  char name[256], r[160];
  p2q_sink_route_t rt = p2q_sink_route(req->method, req->path, name, sizeof name);
  /* wait=true in the query (http_parse.c keeps the path only) */
  const char *eol = memchr(head, '\n', (size_t)(body - head)), *q = memchr(head, '?', (size_t)((eol ? eol : body) - head));
  int wait = q && memmem(q, (size_t)((eol ? eol : body) - q), "wait=true", 9) != NULL;
  size_t n = req->content_length;
  coll_t *c = name[0] ? coll_find(name) : NULL;
  switch (rt) {
  case P2Q_SINK_R_ROOT:
    ok(out, "{\"title\":\"pg2qdrant null sink (Qdrant-shaped)\",\"version\":\"1.18.3\",\"commit\":\"null\"}", close);
    return;
  case P2Q_SINK_R_HEALTHZ: respond(out, 200, "text/plain; charset=utf-8", "healthz check passed", 20, close); return;
  case P2Q_SINK_R_READYZ: respond(out, 200, "text/plain; charset=utf-8", "all shards are ready", 20, close); return;
  case P2Q_SINK_R_CLUSTER: ok(out, "{\"status\":\"disabled\"}", close); return;
  case P2Q_SINK_R_LIST: {
    cJSON *res = cJSON_CreateObject(), *a = cJSON_AddArrayToObject(res, "collections");
    for (coll_t *x = g_colls; x; x = x->next) {
      cJSON *o = cJSON_CreateObject();
      cJSON_AddStringToObject(o, "name", x->name);
      cJSON_AddItemToArray(a, o);
    }
    ok_json(out, res, close);
    return;
  }
  case P2Q_SINK_R_CREATE: create(out, name, body, n, close); return;
  case P2Q_SINK_R_DROP: drop(out, name, close); return;
  case P2Q_SINK_R_EXISTS: ok(out, c ? "{\"exists\":true}" : "{\"exists\":false}", close); return;
  case P2Q_SINK_R_UNKNOWN: respond(out, 404, NULL, "", 0, close); return;
  default: break;
  }
  if (!c) { not_found(out, name, close); return; }
  switch (rt) {
  case P2Q_SINK_R_INFO: ok_json(out, info(c), close); return;
  case P2Q_SINK_R_UPDATE: ok(out, "true", close); return;
  case P2Q_SINK_R_INDEX: index_put(out, c, body, n, wait, close); return;
  case P2Q_SINK_R_INDEX_DROP: op_done(out, wait, close); return;
  case P2Q_SINK_R_UPSERT:
  case P2Q_SINK_R_DELETE:
  case P2Q_SINK_R_BATCH: {
    long rc = p2q_sink_apply(&c->ids, rt, body, n);
    if (rc == P2Q_ENOMEM) error(out, 500, "Service internal error: out of memory", close);
    else if (rc < 0) error(out, 400, "Format error in JSON body: not a points request pg2qdrant's null sink understands", close);
    else op_done(out, wait, close);
    return;
  }
  case P2Q_SINK_R_PAYLOAD: op_done(out, wait, close); return;
  case P2Q_SINK_R_COUNT:
    snprintf(r, sizeof r, "{\"count\":%zu}", p2q_sink_ids_count(&c->ids));
    ok(out, r, close);
    return;
  case P2Q_SINK_R_RETRIEVE: retrieve(out, c, body, n, close); return;
  case P2Q_SINK_R_SCROLL: ok(out, "{\"points\":[],\"next_page_offset\":null}", close); return;
  default: respond(out, 404, NULL, "", 0, close); return;
  }
}

/* ---- connections --------------------------------------------------------------------------- */

static void conn_closed(uv_handle_t *h) {
  conn_t *c = h->data;
  p2q_buf_free(&c->in);
  free(c);
}

static void conn_close(conn_t *c) {
  if (c->closing) return;
  c->closing = 1;
  uv_close((uv_handle_t *)&c->tcp, conn_closed);
}

static void write_cb(uv_write_t *req, int status) {
  wreq_t *w = (wreq_t *)req;
  (void)status;
  free(w->data);
  free(w);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  conn_t *c = h->data;
  (void)suggested;
  if (c->in.cap - c->in.len < READ_CHUNK / 4 && p2q_buf_reserve(&c->in, READ_CHUNK) < 0) {
    *buf = uv_buf_init(NULL, 0);
    return;
  }
  *buf = uv_buf_init(c->in.data + c->in.len, (unsigned)(c->in.cap - c->in.len - 1));
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  conn_t *c = s->data;
  (void)buf;
  if (nread < 0) { conn_close(c); return; }
  c->in.len += (size_t)nread;
  p2q_buf_t out = P2Q_BUF_INIT;
  size_t used = 0;
  int close = 0;
  while (!close && used < c->in.len) {
    p2q_http_req_t req;
    long n = p2q_http_parse(c->in.data + used, c->in.len - used, MAX_HEADER, MAX_BODY, &req);
    if (n == 0) {
      /* a large body on its way: make room for all of it at once */
      if (req.content_length && p2q_buf_reserve(&c->in, req.content_length + MAX_HEADER) < 0) close = 1;
      break;
    }
    if (n < 0) {
      respond(&out, req.status, NULL, "", 0, 1);
      close = 1;
      break;
    }
    const char *head = c->in.data + used, *body = head + (size_t)n - req.content_length;
    close = !req.keep_alive;
    handle(&out, &req, head, body, close);
    used += (size_t)n;
  }
  if (used) {
    memmove(c->in.data, c->in.data + used, c->in.len - used);
    c->in.len -= used;
  }
  if (out.len) {
    wreq_t *w = malloc(sizeof *w);
    size_t len = out.len;
    char *data = p2q_buf_steal(&out);
    uv_buf_t ub = uv_buf_init(data, (unsigned)len);
    if (!w || !data || (w->data = data, uv_write(&w->req, s, &ub, 1, write_cb)) < 0) {
      free(w);
      free(data);
      close = 1;
    }
  }
  p2q_buf_free(&out);
  if (close) conn_close(c); /* uv_close runs after queued writes are flushed or cancelled */
}

static void on_connection(uv_stream_t *server, int status) {
  if (status < 0) return;
  conn_t *c = calloc(1, sizeof *c);
  if (!c) return;
  uv_tcp_init(server->loop, &c->tcp);
  c->tcp.data = c;
  if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0) { conn_close(c); return; }
  uv_tcp_nodelay(&c->tcp, 1);
  uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
}

/* the child: serve on fd until killed */
static void serve(int fd) {
  uv_loop_t loop;
  uv_tcp_t server;
  if (uv_loop_init(&loop) < 0 || uv_tcp_init(&loop, &server) < 0 || uv_tcp_open(&server, fd) < 0 ||
      uv_listen((uv_stream_t *)&server, 128, on_connection) < 0)
    _exit(2);
  uv_run(&loop, UV_RUN_DEFAULT);
  _exit(0);
}

pid_t p2q_bench_sink_spawn(int *port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  /* listening before the fork: the parent may connect as soon as this returns */
  if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 128) < 0 ||
      getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
    int e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  pid_t parent = getpid(), pid = fork();
  if (pid < 0) { int e = errno; close(fd); errno = e; return -1; }
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(1);
    signal(SIGINT, SIG_IGN); /* the bench stops us (SIGTERM) after its cleanup */
    signal(SIGTERM, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    signal(SIGPIPE, SIG_IGN);
    serve(fd);
  }
  close(fd);
  *port = ntohs(a.sin_port);
  return pid;
}

/*
 * bench_load.c — load for `pg2qdrant bench`: writer threads (one blocking libpq connection
 * each) committing at a fixed total rate, and the latency observer.
 *
 * Latency is measured by the tool itself, against any Qdrant: every change sets the row's `seq`
 * column from a sequence *inside the statement* (so a row's seq order is its commit order, also
 * when two writers race on it), and the writer records (id, seq, time COMMIT returned) in the
 * tracker. The observer thread polls Qdrant, retrieving the pending ids with their `seq` payload
 * (POST /collections/C/points); a change is acknowledged when the point carries that seq or a
 * newer one (a delete: when the point is gone). Latency = time the answer arrived − COMMIT
 * returned: an upper bound, off by at most one poll round trip (reported as observe_rtt_ms) plus
 * the pause before that poll. The pause is poll_ms after a poll that acknowledged something; each
 * poll that acknowledged nothing doubles it, up to OBS_BACKOFF × poll_ms (so the polls' cost in
 * Qdrant follows the acknowledgements, not the backlog's age × 1/poll_ms).
 * Answers are matched by bsearch in the request's ids, sorted (n log n, not n × n).
 *
 * The writers send their statements as --writer says (P2Q_BENCH_WRITER_MODES): unnamed, parsed
 * and planned at every call (unprepared-text, the bench before session 14); or prepared once per
 * connection (PQprepare) and executed by name, the vector as text (prepared-text) or as a binary
 * real[] (prepared-binary: array_recv instead of float4in per float). The same statements' text
 * and the same draws in every mode: only what PostgreSQL (and the bench) do per call differs.
 *
 * Threads: the writers and the observer share only the tracker and counters, under `mu`. No
 * libuv here; the orchestrator (bench.c) joins everything before it reads the results.
 */
#include "bench_load.h"

#include "pg2qdrant/errors.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <libpq-fe.h>
#include <arpa/inet.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

double p2q_bench_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_until(double t) {
  double d = t - p2q_bench_now();
  if (d <= 0) return;
  struct timespec ts = {(time_t)d, (long)((d - floor(d)) * 1e9)};
  nanosleep(&ts, NULL);
}

typedef struct {
  p2q_bench_load_t *L;
  int k;
  pthread_t th;
  int started;
} writer_t;

struct p2q_bench_load {
  p2q_bench_load_opts_t o;
  pthread_mutex_t mu;
  p2q_bench_track_t track;
  writer_t *w;
  pthread_t obs;
  int obs_started;
  volatile int writers_done;
  p2q_bench_load_result_t res;
  uint32_t *bin;             /* prepared-binary: the values' float4 bits, big-endian (else NULL) */
  size_t lat_cap;
  unsigned long long rng;
};

static unsigned long long rnd(unsigned long long *s) { /* xorshift64* */
  *s ^= *s >> 12;
  *s ^= *s << 25;
  *s ^= *s >> 27;
  return *s * 2685821657736338717ull;
}

static void fail(p2q_bench_load_t *L, const char *what, const char *msg) {
  pthread_mutex_lock(&L->mu);
  L->res.errors++;
  if (!L->res.error[0] && snprintf(L->res.error, sizeof L->res.error, "%s: %s", what, msg) < 0)
    L->res.error[0] = 0;
  pthread_mutex_unlock(&L->mu);
}

/* ---- writers ----------------------------------------------------------------------------- */

/* The values a writer draws: (k - 10000) / 10000 for k in [0, 20000), i.e. uniform in [-1, 1) in
   steps of 0.0001. The text modes print them as %.4f would (p2q_bench_fixed4); the binary mode
   sends, big-endian, the bits of the float4 that float4in makes of that text (strtof, correctly
   rounded, as float4in): both modes store the same arrays for the same draws. */
enum { NVALS = 20000, FLOAT4_OID = 700 };

static uint32_t *binary_values(void) {
  uint32_t *v = malloc(NVALS * sizeof *v);
  if (!v) return NULL;
  for (int k = 0; k < NVALS; k++) {
    char t[32];
    p2q_bench_fixed4(t, (long long)k - 10000);
    float f = strtof(t, NULL);
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    v[k] = htonl(u);
  }
  return v;
}

/* One row's vector into buf (room for vector_room(dim, bin) bytes), drawing dim values: the text
   "{v,v,…}" (NUL-terminated), or array_send's image of a one-dimensional real[]: ndim 1, no
   nulls, element type float4, the dimension's length and lower bound 1, then per element its
   length 4 and its bits. Returns the length. */
static size_t vector_room(int dim, const uint32_t *bin) { return bin ? 20 + (size_t)dim * 8 : (size_t)dim * 12 + 3; }

static size_t vector_make(char *buf, int dim, const uint32_t *bin, unsigned long long *r) {
  size_t n = 0;
  if (bin) {
    uint32_t h[5] = {htonl(1), 0, htonl(FLOAT4_OID), htonl((uint32_t)dim), htonl(1)}, len4 = htonl(4);
    memcpy(buf, h, sizeof h);
    n = sizeof h;
    for (int i = 0; i < dim; i++, n += 8) {
      memcpy(buf + n, &len4, 4);
      memcpy(buf + n + 4, &bin[rnd(r) % NVALS], 4);
    }
    return n;
  }
  buf[n++] = '{';
  for (int i = 0; i < dim; i++) {
    if (i) buf[n++] = ',';
    n += p2q_bench_fixed4(buf + n, (long long)(rnd(r) % NVALS) - 10000);
  }
  buf[n++] = '}';
  buf[n] = 0;
  return n;
}

/* A writer's statement: unprepared, sent with its text at every call (unnamed: parsed and
   planned each time); prepared, executed by name (PQprepare'd once per connection). */
typedef struct {
  const char *name;
  char sql[512];
} stmt_t;

enum { ST_INS, ST_UPD, ST_DEL, ST_N };

/* one writer's statements and buffers */
typedef struct {
  p2q_bench_load_t *L;
  PGconn *c;
  stmt_t st[ST_N];
  int prepared, vec_fmt;    /* vec_fmt 1: the vector is binary */
  const char *pad, *vec;
  int vec_len;
  long long *ids, *seqs;
  int *kinds, per;
  unsigned long long *rs;
} txn_t;

static int writer_statements(txn_t *t) {
  const p2q_bench_load_opts_t *o = &t->L->o;
  stmt_t *st = t->st;
  st[ST_INS].name = "p2q_bench_insert", st[ST_UPD].name = "p2q_bench_update", st[ST_DEL].name = "p2q_bench_delete";
  snprintf(st[ST_INS].sql, sizeof st[ST_INS].sql, "INSERT INTO %s (id, seq, pad, emb) VALUES (nextval('%s'), "
           "nextval('%s'), $1, $2::real[]) RETURNING id, seq", o->table_q, o->ids_seq_q, o->ver_seq_q);
  snprintf(st[ST_UPD].sql, sizeof st[ST_UPD].sql, "UPDATE %s SET seq = nextval('%s'), pad = $2 WHERE id = $1 "
           "RETURNING id, seq", o->table_q, o->ver_seq_q);
  snprintf(st[ST_DEL].sql, sizeof st[ST_DEL].sql, "DELETE FROM %s WHERE id = $1 RETURNING id, nextval('%s')",
           o->table_q, o->ver_seq_q);
  for (int i = 0; t->prepared && i < ST_N; i++) {
    PGresult *r = PQprepare(t->c, st[i].name, st[i].sql, 0, NULL);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok) fail(t->L, "writer prepare", PQresultErrorMessage(r));
    PQclear(r);
    if (!ok) return -1;
  }
  return 0;
}

/* one statement; rows returned as (id, seq) recorded into ids/seqs; -1 on error */
static int exec_op(txn_t *t, int which, int np, const char *const *params, const int *lens, const int *fmts,
                   int *n) {
  const stmt_t *s = &t->st[which];
  PGresult *r = t->prepared ? PQexecPrepared(t->c, s->name, np, params, lens, fmts, 0)
                            : PQexecParams(t->c, s->sql, np, NULL, params, lens, fmts, 0);
  if (PQresultStatus(r) != PGRES_TUPLES_OK && PQresultStatus(r) != PGRES_COMMAND_OK) {
    fail(t->L, "writer", PQresultErrorMessage(r));
    PQclear(r);
    return -1;
  }
  for (int i = 0; i < PQntuples(r) && *n < t->per; i++) {
    t->ids[*n] = atoll(PQgetvalue(r, i, 0));
    t->seqs[*n] = atoll(PQgetvalue(r, i, 1));
    (*n)++;
  }
  PQclear(r);
  return 0;
}

/* one transaction of t->per operations drawn from the mix; the rows changed land in
   ids/seqs/kinds. Their count, or -1 (rolled back; the error is recorded). */
static int one_txn(txn_t *t) {
  const p2q_bench_load_opts_t *o = &t->L->o;
  int n = 0, multi = t->per > 1, bad = 0;
  if (multi) PQclear(PQexec(t->c, "BEGIN"));
  for (int j = 0; j < t->per && !bad; j++) {
    unsigned pick = (unsigned)(rnd(t->rs) % 100);
    int kind = pick < (unsigned)o->mix_insert ? 0 : pick < (unsigned)(o->mix_insert + o->mix_update) ? 1 : 2;
    char idbuf[32];
    long long hi = o->preload_rows > 0 ? o->preload_rows : 1, target;
    if (kind == 1 && o->hot_rows > 0 && (double)(rnd(t->rs) % 10000) / 10000.0 < o->hot_fraction)
      target = 1 + (long long)(rnd(t->rs) % (unsigned long long)o->hot_rows);
    else
      target = 1 + (long long)(rnd(t->rs) % (unsigned long long)hi);
    snprintf(idbuf, sizeof idbuf, "%lld", target);
    int before = n;
    if (kind == 0) {
      const char *p[2] = {t->pad, t->vec};
      const int lens[2] = {0, t->vec_len}, fmts[2] = {0, t->vec_fmt};
      bad = exec_op(t, ST_INS, 2, p, t->vec_fmt ? lens : NULL, t->vec_fmt ? fmts : NULL, &n);
    } else if (kind == 1) {
      const char *p[2] = {idbuf, t->pad};
      bad = exec_op(t, ST_UPD, 2, p, NULL, NULL, &n);
    } else {
      const char *p[1] = {idbuf};
      bad = exec_op(t, ST_DEL, 1, p, NULL, NULL, &n);
    }
    for (int x = before; x < n; x++) t->kinds[x] = kind;
  }
  if (multi) {
    PGresult *r = PQexec(t->c, bad ? "ROLLBACK" : "COMMIT");
    if (PQresultStatus(r) != PGRES_COMMAND_OK) { fail(t->L, "commit", PQresultErrorMessage(r)); bad = 1; }
    PQclear(r);
  }
  return bad ? -1 : n;
}

static void *writer_main(void *arg) {
  writer_t *w = arg;
  p2q_bench_load_t *L = w->L;
  const p2q_bench_load_opts_t *o = &L->o;
  unsigned long long rs = 0x9E3779B97F4A7C15ull ^ ((unsigned long long)w->k * 7919 + 1);
  PGconn *c = PQconnectdb(o->conninfo);
  int per = o->rows_per_txn > 0 ? o->rows_per_txn : 1;
  txn_t t = {.L = L, .c = c, .prepared = p2q_bench_writer_prepared(o->writer_mode), .vec_fmt = L->bin != NULL,
             .per = per, .rs = &rs};
  char *vec = malloc(vector_room(o->dim, L->bin)), *pad = malloc((size_t)o->payload_bytes + 1);
  t.ids = malloc((size_t)per * sizeof *t.ids), t.seqs = malloc((size_t)per * sizeof *t.seqs);
  t.kinds = malloc((size_t)per * sizeof *t.kinds);
  if (!c || PQstatus(c) != CONNECTION_OK) {
    fail(L, "writer connect", c ? PQerrorMessage(c) : "out of memory");
    goto done;
  }
  if (!vec || !pad || !t.ids || !t.seqs || !t.kinds) { fail(L, "writer", "out of memory"); goto done; }
  pthread_mutex_lock(&L->mu);
  L->res.writer_pids[w->k] = PQbackendPID(c);
  pthread_mutex_unlock(&L->mu);
  memset(pad, 'x', (size_t)o->payload_bytes);
  pad[o->payload_bytes] = 0;
  t.pad = pad, t.vec = vec;
  if (writer_statements(&t) < 0) goto done;
  double t0 = o->t_start;
  for (long i = 0;; i++) {
    double due = o->rate > 0 ? t0 + ((double)i * o->writers + w->k) / o->rate : 0;
    if (o->rate > 0) {
      if (due - t0 >= o->seconds) break;
      sleep_until(due);
    } else if (p2q_bench_now() - t0 >= o->seconds) {
      break;
    }
    if (o->stop && *o->stop) break;
    t.vec_len = (int)vector_make(vec, o->dim, L->bin, &rs);
    int n = one_txn(&t);
    double tc = p2q_bench_now();
    if (n < 0) {
      if (PQstatus(c) != CONNECTION_OK) break;
      continue;
    }
    pthread_mutex_lock(&L->mu);
    L->res.commits++;
    for (int x = 0; x < n; x++) {
      L->res.events++;
      if (p2q_bench_track_add(&L->track, t.ids[x], t.seqs[x], t.kinds[x] == 2, tc) < 0) L->res.errors++;
    }
    if (L->res.t_first == 0 || tc < L->res.t_first) L->res.t_first = tc;
    L->res.t_last = tc;
    pthread_mutex_unlock(&L->mu);
  }
done:
  if (c && PQstatus(c) == CONNECTION_OK && o->cpu_of) {
    double cpu = o->cpu_of(PQbackendPID(c));
    pthread_mutex_lock(&L->mu);
    if (!isnan(cpu)) L->res.writer_cpu_s += cpu;
    else L->res.writer_cpu_s = NAN;
    pthread_mutex_unlock(&L->mu);
  }
  PQfinish(c);
  free(vec);
  free(pad);
  free(t.ids);
  free(t.seqs);
  free(t.kinds);
  return NULL;
}

/* ---- observer ---------------------------------------------------------------------------- */

typedef struct {
  char *data;
  size_t len;
} body_t;

static size_t on_body(char *p, size_t sz, size_t nm, void *u) {
  body_t *b = u;
  size_t n = sz * nm;
  if (b->len + n > 64u << 20) return 0;
  char *nd = realloc(b->data, b->len + n + 1);
  if (!nd) return 0;
  memcpy(nd + b->len, p, n);
  b->data = nd;
  b->len += n;
  b->data[b->len] = 0;
  return n;
}

static int lat_push(p2q_bench_load_t *L, double ms) {
  if ((size_t)L->res.lat_n == L->lat_cap) {
    size_t nc = L->lat_cap ? L->lat_cap * 2 : 4096;
    double *nv = realloc(L->res.lat, nc * sizeof *nv);
    if (!nv) return -1;
    L->res.lat = nv;
    L->lat_cap = nc;
  }
  L->res.lat[L->res.lat_n++] = ms;
  return 0;
}

enum { OBS_MAX = 512, OBS_BACKOFF = 4 };

static int cmp_ll(const void *a, const void *b) {
  long long x = *(const long long *)a, y = *(const long long *)b;
  return (x > y) - (x < y);
}

static void *observer_main(void *arg) {
  p2q_bench_load_t *L = arg;
  const p2q_bench_load_opts_t *o = &L->o;
  CURL *h = curl_easy_init();
  struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/json");
  char url[1024], key[512];
  long long ids[OBS_MAX];
  double rtt_sum = 0;
  long polls = 0;
  if (!h) { fail(L, "observer", "curl_easy_init failed"); goto out; }
  if (o->api_key && *o->api_key) {
    snprintf(key, sizeof key, "api-key: %s", o->api_key);
    hdr = curl_slist_append(hdr, key);
  }
  snprintf(url, sizeof url, "%s/collections/%s/points", o->qdrant_url, o->collection);
  curl_easy_setopt(h, CURLOPT_URL, url);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 10000L);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  if (o->ca_file && *o->ca_file) curl_easy_setopt(h, CURLOPT_CAINFO, o->ca_file);
  double deadline = 0, pause = o->poll_ms / 1000.0;
  for (;;) {
    pthread_mutex_lock(&L->mu);
    int n = 0;
    for (size_t i = 0; i < L->track.n && n < OBS_MAX; i++, n++) {
      ids[n] = L->track.v[i].id;
    }
    int done = L->writers_done;
    pthread_mutex_unlock(&L->mu);
    if (o->stop && *o->stop) break;
    if (done && deadline == 0) deadline = p2q_bench_now() + o->settle_s;
    if (done && (n == 0 || p2q_bench_now() > deadline)) break;
    if (n == 0) { sleep_until(p2q_bench_now() + o->poll_ms / 1000.0); continue; }
    qsort(ids, (size_t)n, sizeof ids[0], cmp_ll); /* ids are distinct: one entry per id */
    char *req = malloc((size_t)n * 24 + 96);
    if (!req) break;
    size_t q = (size_t)sprintf(req, "{\"ids\":[");
    for (int i = 0; i < n; i++) q += (size_t)sprintf(req + q, "%s%lld", i ? "," : "", ids[i]);
    sprintf(req + q, "],\"with_payload\":[\"seq\"],\"with_vector\":false}");
    body_t b = {0};
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, req);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    double ts = p2q_bench_now();
    CURLcode cc = curl_easy_perform(h);
    double tr = p2q_bench_now();
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    free(req);
    cJSON *j = cc == CURLE_OK && status == 200 && b.data ? cJSON_Parse(b.data) : NULL;
    cJSON *res = j ? cJSON_GetObjectItemCaseSensitive(j, "result") : NULL;
    if (!cJSON_IsArray(res)) {
      char m[200];
      snprintf(m, sizeof m, "retrieve %s: curl %d, HTTP %ld", o->collection, (int)cc, status);
      fail(L, "observer", m);
      cJSON_Delete(j);
      free(b.data);
      sleep_until(p2q_bench_now() + 0.05);
      continue;
    }
    rtt_sum += tr - ts;
    polls++;
    /* found[i]: the seq the point carries (-1: absent) */
    long long found[OBS_MAX];
    for (int i = 0; i < n; i++) found[i] = -1;
    const cJSON *pt;
    cJSON_ArrayForEach(pt, res) {
      const cJSON *id = cJSON_GetObjectItemCaseSensitive(pt, "id");
      const cJSON *pl = cJSON_GetObjectItemCaseSensitive(pt, "payload");
      const cJSON *sq = pl ? cJSON_GetObjectItemCaseSensitive(pl, "seq") : NULL;
      if (!cJSON_IsNumber(id)) continue;
      long long pid = (long long)id->valuedouble;
      const long long *at = bsearch(&pid, ids, (size_t)n, sizeof ids[0], cmp_ll);
      if (at) found[at - ids] = cJSON_IsNumber(sq) ? (long long)sq->valuedouble : 0;
    }
    int acked = 0;
    pthread_mutex_lock(&L->mu);
    for (int i = 0; i < n; i++) {
      long at = p2q_bench_track_find(&L->track, ids[i]);
      if (at < 0) continue;
      p2q_bench_pending_t *e = &L->track.v[at];
      int seen = e->is_delete ? found[i] < 0 : found[i] >= e->seq;
      if (!seen) continue;
      lat_push(L, (tr - e->t_commit) * 1000.0);
      p2q_bench_track_remove(&L->track, (size_t)at);
      acked++;
    }
    pthread_mutex_unlock(&L->mu);
    cJSON_Delete(j);
    free(b.data);
    /* nothing new: wait longer (up to OBS_BACKOFF × poll_ms); something: back to poll_ms */
    pause = acked ? o->poll_ms / 1000.0 : fmin(pause * 2, OBS_BACKOFF * o->poll_ms / 1000.0);
    sleep_until(tr + pause);
  }
out:
  pthread_mutex_lock(&L->mu);
  L->res.observe_ms = polls ? rtt_sum / (double)polls * 1000.0 : NAN;
  pthread_mutex_unlock(&L->mu);
  curl_slist_free_all(hdr);
  if (h) curl_easy_cleanup(h);
  return NULL;
}

/* ---- lifecycle --------------------------------------------------------------------------- */

int p2q_bench_load_start(const p2q_bench_load_opts_t *o, p2q_bench_load_t **out) {
  p2q_bench_load_t *L = calloc(1, sizeof *L);
  if (!L) return P2Q_ENOMEM;
  L->o = *o;
  pthread_mutex_init(&L->mu, NULL);
  p2q_bench_track_init(&L->track);
  L->w = calloc((size_t)o->writers, sizeof *L->w);
  L->res.writer_pids = calloc((size_t)o->writers, sizeof *L->res.writer_pids);
  if (!L->w || !L->res.writer_pids) { p2q_bench_load_free(L); return P2Q_ENOMEM; }
  L->res.nwriters = o->writers;
  if (p2q_bench_writer_binary(o->writer_mode) && !(L->bin = binary_values())) {
    p2q_bench_load_free(L);
    return P2Q_ENOMEM;
  }
  if (pthread_create(&L->obs, NULL, observer_main, L) == 0) L->obs_started = 1;
  for (int k = 0; k < o->writers; k++) {
    L->w[k].L = L;
    L->w[k].k = k;
    if (pthread_create(&L->w[k].th, NULL, writer_main, &L->w[k]) == 0) L->w[k].started = 1;
  }
  *out = L;
  return 0;
}

const p2q_bench_load_result_t *p2q_bench_load_wait(p2q_bench_load_t *L) {
  for (int k = 0; k < L->o.writers; k++)
    if (L->w[k].started) { pthread_join(L->w[k].th, NULL); L->w[k].started = 0; }
  pthread_mutex_lock(&L->mu);
  L->writers_done = 1;
  pthread_mutex_unlock(&L->mu);
  if (L->obs_started) { pthread_join(L->obs, NULL); L->obs_started = 0; }
  L->res.missing = (long)L->track.n;
  L->res.superseded = L->track.superseded;
  p2q_bench_sort(L->res.lat, (size_t)L->res.lat_n);
  return &L->res;
}

void p2q_bench_load_free(p2q_bench_load_t *L) {
  if (!L) return;
  if (L->w) p2q_bench_load_wait(L);
  p2q_bench_track_free(&L->track);
  pthread_mutex_destroy(&L->mu);
  free(L->res.lat);
  free(L->res.writer_pids);
  free(L->bin);
  free(L->w);
  free(L);
}

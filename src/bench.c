/*
 * bench.c — `pg2qdrant -c FILE bench [options]`: the throughput-tuning harness.
 *
 * Uses the config's [postgres] and [qdrant] (and [daemon], and an [embedder.*] for the text
 * workload), so it measures the user's own deployment. Everything it touches it creates first,
 * under one unique prefix `p2q_bench_<8 hex>`: a scratch schema (the source tables, sequences,
 * and the outbox itself: the generated configs set [postgres] schema to it) and scratch
 * collections `<prefix>_vec` / `<prefix>_text`. It refuses to start if any of those names exists,
 * records what it created, and drops exactly that at the end — also after SIGINT/SIGTERM/SIGHUP
 * (handlers set a flag every wait loop checks) and when a run fails. The daemons under test are
 * real `pg2qdrant run` processes of this very binary (/proc/self/exe) with generated configs,
 * one per replica, each with its own status port (scraped for Qdrant request durations); they
 * get PR_SET_PDEATHSIG so a SIGKILLed bench does not leave them running (its scratch objects do
 * remain then: their names start with p2q_bench_).
 *
 * `--sink null` replaces the config's Qdrant with the null sink (bench_sink.c): a Qdrant-shaped
 * responder in a child process forked before anything else starts, keeping only point ids, so
 * drains measure pg2qdrant and PostgreSQL, not the vector store; its CPU is the "qdrant" column.
 *
 * Flow: parse options → sweep points → setup scratch → for each point × repeat × workload:
 * bench_run.c → CSV row (flushed) and progress → aggregate, recommend, HTML → cleanup.
 */
#include "bench_load.h"

#include "pg2qdrant/bench_sink.h"
#include "pg2qdrant/commands.h"
#include "pg2qdrant/config.h"
#include "pg2qdrant/errors.h"
#include "pg2qdrant/version.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t g_stop;
/* the admin connection's cancel handle while a long statement (queueing a backlog) may run:
   PQcancel is async-signal-safe, so Ctrl-C does not wait for a 200,000-row INSERT */
static PGcancel *volatile g_cancel;
static void on_signal(int sig) {
  g_stop = sig;
  PGcancel *c = g_cancel;
  if (c) {
    char buf[64];
    PQcancel(c, buf, sizeof buf);
  }
}

typedef struct {
  p2q_bench_ctx_t x;
  const p2q_config_t *cfg;
  const p2q_embedder_config_t *emb;
  char *emb_dump;               /* the [embedder.NAME] section, from p2q_config_dump */
  int created_schema, created_vec, created_text;
  char exe[1024];
  /* the session: options, points, results */
  p2q_bench_sweep_t sw;
  char workloads[128], cmdline[2048];
  long repeat;
  double p99max;
  p2q_bench_setting_t *sets;
  int npoints, nworkloads, total, nruns;
  p2q_bench_run_t *runs;
  p2q_bench_point_t *pts;
  FILE *csv;
  int null_sink;                /* --sink null */
  pid_t sink_pid;
  char sink_url[64];
} bench_t;

static const char usage_text[] =
    "usage: pg2qdrant -c FILE bench [options]\n"
    "  --workload LIST      drain, steady, mixed, text (comma-separated; default drain,steady)\n"
    "  --rows N             drain: events queued (default 20000)\n"
    "  --text-rows N        text: rows embedded (default 500)\n"
    "  --dim N              vector dimension (default 384)\n"
    "  --payload-bytes N    payload text per row (default 64)\n"
    "  --rate N             steady/mixed: commits per second over all writers; 0 = as fast as possible (200)\n"
    "  --duration D         steady/mixed: how long to write (10s)\n"
    "  --writers N          writer connections (1)\n"
    "  --rows-per-txn N     rows (operations) per commit (1)\n"
    "  --writer MODE        steady/mixed: how the writers send their statements: %s\n"
    "                       (default prepared-text: prepared once per connection, vector as text)\n"
    "  --mix I,U,D          mixed: insert/update/delete percentages (50,40,10)\n"
    "  --hot F,N            mixed: a share F of updates hits the N hot rows (0.8,100)\n"
    "  --preload N          mixed: rows existing before the run (1000)\n"
    "  --sweep KNOB=V1,V2   one of: %s\n"
    "                       (repeatable; a single value just sets the knob)\n"
    "  --one-axis           vary one knob at a time (others at their base) instead of the full grid\n"
    "  --repeat N           runs per point (median and spread reported; default 1)\n"
    "  --p99-max D          latency bound of the recommendation, e.g. 25ms\n"
    "  --out DIR            where runs.csv, report.html and logs/ go (default p2q-bench-<time>)\n"
    "  --embedder NAME      text workload's embedder (default: the config's first)\n"
    "  --qdrant-pid PID     the local Qdrant's pid for its CPU (default: found by the url's port)\n"
    "  --poll-ms N          latency observer's pause between polls (1; up to 4x while none acks)\n"
    "  --timeout D          longest drain (600s)\n"
    "  --wait-vacuum D      drain: keep counting CPU after empty until an autovacuum of the outbox\n"
    "                       begun after the drain has ended (it starts at most once a minute), at most\n"
    "                       D (default 0: not waited)\n"
    "  --sink S             qdrant: the config's [qdrant] (default); null: a built-in Qdrant-shaped\n"
    "                       responder that keeps only point ids (not the bottleneck of a drain)\n";

static int parse_count(const char *opt, const char *v, long lo, long hi, long *out) {
  char *end;
  errno = 0;
  long n = strtol(v, &end, 10);
  if (end == v || *end || errno || n < lo || n > hi) {
    fprintf(stderr, "pg2qdrant bench: %s: '%s' is not an integer in [%ld, %ld]\n", opt, v, lo, hi);
    return -1;
  }
  *out = n;
  return 0;
}

/* conninfo for the bench's own connections: the user's, with our application_name */
static char *with_appname(const char *ci, const char *app) {
  size_t n = (ci ? strlen(ci) : 0) + strlen(app) + 64;
  char *s = malloc(n);
  if (!s) return NULL;
  if (!ci || !*ci) snprintf(s, n, "application_name=%s", app);
  else if (!strncmp(ci, "postgres://", 11) || !strncmp(ci, "postgresql://", 13))
    snprintf(s, n, "%s%sapplication_name=%s", ci, strchr(ci, '?') ? "&" : "?", app);
  else snprintf(s, n, "%s application_name=%s", ci, app);
  return s;
}

/* the [embedder.NAME] section of the effective config, to copy into generated configs */
static char *embedder_section(const p2q_config_t *cfg, const char *name) {
  char *buf = NULL, *out = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  if (!f) return NULL;
  p2q_config_dump(cfg, f);
  fclose(f);
  char hdr[P2Q_NAME_MAX + 16];
  snprintf(hdr, sizeof hdr, "\n[embedder.%s]\n", name);
  char *a = strstr(buf, hdr);
  if (a) {
    a++;
    char *e = strstr(a + 1, "\n[");
    size_t n = e ? (size_t)(e - a) + 1 : strlen(a);
    out = malloc(n + 1);
    if (out) { memcpy(out, a, n); out[n] = 0; }
  }
  free(buf);
  return out;
}

static int write_config(void *self, const p2q_bench_setting_t *s, int replica, int port, char *path,
                        size_t pathlen) {
  bench_t *b = self;
  const p2q_config_t *c = b->cfg;
  snprintf(path, pathlen, "%s/replica%d.ini", b->x.dir, replica + 1);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
  if (!f) { if (fd >= 0) close(fd); return -1; }
  fprintf(f, "; generated by pg2qdrant bench\n[postgres]\nconninfo = %s\nschema = %s\nconnect_timeout = %lldms\n"
          "daemon_synchronous_commit = %s\n", b->x.conninfo, b->x.prefix, (long long)c->pg_connect_timeout_ms,
          c->pg_daemon_synchronous_commit ? c->pg_daemon_synchronous_commit : "off");
  fprintf(f, "[qdrant]\nurl = %s\ntimeout = %lldms\nconnect_timeout = %lldms\n", b->x.qdrant_url,
          (long long)c->qdrant_timeout_ms, (long long)c->qdrant_connect_timeout_ms);
  if (!b->null_sink && c->qdrant_api_key_env && *c->qdrant_api_key_env) fprintf(f, "api_key_env = %s\n", c->qdrant_api_key_env);
  if (!b->null_sink && c->qdrant_ca_file && *c->qdrant_ca_file) fprintf(f, "ca_file = %s\n", c->qdrant_ca_file);
  fprintf(f, "[daemon]\nsweep_interval = %lldms\nshutdown_timeout = %lldms\nlease = %lldms\nmax_attempts = %lld\n"
          "retry_min = %lldms\nretry_max = %lldms\nbreaker_threshold = %lld\nbreaker_max = %lldms\n",
          (long long)c->sweep_interval_ms, (long long)c->shutdown_timeout_ms, (long long)c->lease_ms,
          (long long)c->max_attempts, (long long)c->retry_min_ms, (long long)c->retry_max_ms,
          (long long)c->breaker_threshold, (long long)c->breaker_max_ms);
  fprintf(f, "[log]\nlevel = warn\nstats_interval = 0\n[http]\n");
  if (port > 0) fprintf(f, "listen = 127.0.0.1:%d\n", port);
  else fprintf(f, "listen =\n");
  /* columns named: the snapshot is one json_build_object, as most rules' (a real[] vector then
     travels unprinted: vector_bin.h) */
  fprintf(f, "[rule.bench]\ntable = %s.items\nkey = id\ncolumns = id, seq, pad\nvector_column = emb\n"
          "dimension = %d\ndistance = Dot\ncollection = %s\non_truncate = ignore\n", b->x.prefix, b->x.dim,
          b->x.coll_vec);
  if (b->x.have_text)
    fprintf(f, "[rule.benchtext]\ntable = %s.docs\nkey = id\ncolumns = id, seq\ntext = body\nembedder = %s\n"
            "distance = Cosine\ncollection = %s\non_truncate = ignore\n", b->x.prefix, b->emb->name, b->x.coll_text);
  for (long w = 0; w < s->v[P2Q_KNOB_WORKERS]; w++)
    fprintf(f, "[worker.w%ld]\nevent_types = bench%s\nbatch_size = %ld\nlinger_ms = %ld\nmax_inflight = %ld\n"
            "claimers = %ld\nidle_linger_ms = %ld\n", w + 1, b->x.have_text ? ", benchtext" : "",
            s->v[P2Q_KNOB_BATCH_SIZE], s->v[P2Q_KNOB_LINGER_MS], s->v[P2Q_KNOB_MAX_INFLIGHT], s->v[P2Q_KNOB_CLAIMERS],
            s->v[P2Q_KNOB_IDLE_LINGER_MS]);
  if (b->x.have_text && b->emb_dump) {
    /* the user's embedder, with the swept thread count (minilm) */
    for (const char *l = b->emb_dump; *l;) {
      const char *e = strchr(l, '\n');
      size_t n = e ? (size_t)(e - l) : strlen(l);
      if (!strncmp(l, "threads =", 9)) fprintf(f, "threads = %ld\n", s->v[P2Q_KNOB_EMBEDDER_THREADS]);
      else fprintf(f, "%.*s\n", (int)n, l);
      l += n + (e ? 1 : 0);
    }
  }
  return fclose(f) == 0 ? 0 : -1;
}

static int sql_ok(PGconn *pg, const char *sql, char *err, size_t errlen) {
  PGresult *r = PQexec(pg, sql);
  int ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
  if (!ok) snprintf(err, errlen, "%s", PQresultErrorMessage(r));
  PQclear(r);
  return ok ? 0 : -1;
}

static long coll_status(bench_t *b, const char *coll) {
  char url[1024];
  snprintf(url, sizeof url, "%s/collections/%s", b->x.qdrant_url, coll);
  return p2q_bench_http("GET", url, b->x.api_key, b->x.ca_file, NULL, NULL);
}

/* scratch names, refusal if taken, creation (recorded as it goes) */
static int setup(bench_t *b, char *err, size_t errlen) {
  p2q_bench_ctx_t *x = &b->x;
  unsigned char rnd[4] = {0};
  FILE *u = fopen("/dev/urandom", "rb");
  if (!u || fread(rnd, 1, 4, u) != 4) { if (u) fclose(u); snprintf(err, errlen, "no /dev/urandom"); return -1; }
  fclose(u);
  snprintf(x->prefix, sizeof x->prefix, "p2q_bench_%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2], rnd[3]);
  snprintf(x->coll_vec, sizeof x->coll_vec, "%s_vec", x->prefix);
  snprintf(x->coll_text, sizeof x->coll_text, "%s_text", x->prefix);
  snprintf(x->appname, sizeof x->appname, "%s_d", x->prefix);
  /* the daemons' connections carry our application_name: their backends are ours to measure */
  free(x->conninfo);
  x->conninfo = with_appname(b->cfg->pg_conninfo, x->appname);
  free(x->writer_conninfo);
  x->writer_conninfo = with_appname(b->cfg->pg_conninfo, "p2q_bench_writer");
  if (!x->conninfo || !x->writer_conninfo) { snprintf(err, errlen, "out of memory"); return -1; }
  const char *p[1] = {x->prefix};
  PGresult *r = PQexecParams(x->pg, "SELECT (SELECT count(*) FROM pg_namespace WHERE nspname = $1) + "
                             "(SELECT count(*) FROM pg_event_trigger WHERE evtname = 'p2q_ddl_guard_' || $1)",
                             1, NULL, p, NULL, NULL, 0);
  int taken = PQresultStatus(r) != PGRES_TUPLES_OK || atoi(PQgetvalue(r, 0, 0)) != 0;
  PQclear(r);
  long sv = coll_status(b, x->coll_vec), st = coll_status(b, x->coll_text);
  if (sv < 0) { snprintf(err, errlen, "Qdrant at %s does not answer", x->qdrant_url); return -1; }
  if (taken || sv != 404 || (x->have_text && st != 404)) {
    snprintf(err, errlen, "refusing: a schema, event trigger or collection named %s* already exists", x->prefix);
    return -1;
  }
  char sql[2048];
  snprintf(sql, sizeof sql, "CREATE SCHEMA \"%s\"", x->prefix);
  if (sql_ok(x->pg, sql, err, errlen) < 0) return -1;
  b->created_schema = 1;
  snprintf(sql, sizeof sql,
           "CREATE TABLE \"%s\".items (id bigint PRIMARY KEY, seq bigint NOT NULL, pad text, emb real[]);"
           "CREATE TABLE \"%s\".docs (id bigint PRIMARY KEY, seq bigint NOT NULL, body text);"
           "CREATE SEQUENCE \"%s\".ids; CREATE SEQUENCE \"%s\".ver;",
           x->prefix, x->prefix, x->prefix, x->prefix);
  if (sql_ok(x->pg, sql, err, errlen) < 0) return -1;
  char url[1024], body[128];
  snprintf(url, sizeof url, "%s/collections/%s", x->qdrant_url, x->coll_vec);
  snprintf(body, sizeof body, "{\"vectors\":{\"size\":%d,\"distance\":\"Dot\"}}", x->dim);
  long s1 = p2q_bench_http("PUT", url, x->api_key, x->ca_file, body, NULL);
  if (s1 == 200) b->created_vec = 1;
  if (s1 != 200) { snprintf(err, errlen, "creating collection %s: HTTP %ld", x->coll_vec, s1); return -1; }
  if (x->have_text) {
    snprintf(url, sizeof url, "%s/collections/%s", x->qdrant_url, x->coll_text);
    snprintf(body, sizeof body, "{\"vectors\":{\"size\":%d,\"distance\":\"Cosine\"}}", x->text_dim);
    long s2 = p2q_bench_http("PUT", url, x->api_key, x->ca_file, body, NULL);
    if (s2 == 200) b->created_text = 1;
    if (s2 != 200) { snprintf(err, errlen, "creating collection %s: HTTP %ld", x->coll_text, s2); return -1; }
  }
  /* init + triggers through the binary under test, with the base setting */
  p2q_bench_setting_t base;
  memcpy(base.v, b->sw.base, sizeof base.v); /* the knobs' defaults (p2q_bench_sweep_init) */
  char path[600], log[700];
  snprintf(log, sizeof log, "%s/logs/apply.log", x->out);
  if (write_config(b, &base, 0, 0, path, sizeof path) < 0) { snprintf(err, errlen, "cannot write %s", path); return -1; }
  const char *args[] = {"apply", "--no-backfill", NULL};
  int rc = p2q_bench_run_cmd(b->exe, path, log, args);
  if (rc != 0) { snprintf(err, errlen, "`pg2qdrant apply` failed (exit %d): see %s", rc, log); return -1; }
  /* pg_stat_statements, schema-qualified (CLI sessions pin search_path to pg_catalog) */
  r = PQexec(x->pg, "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
                    "WHERE e.extname = 'pg_stat_statements'");
  if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
    char *q = PQescapeIdentifier(x->pg, PQgetvalue(r, 0, 0), strlen(PQgetvalue(r, 0, 0)));
    if (q && strlen(q) < sizeof x->pgss - 24) snprintf(x->pgss, sizeof x->pgss, "%s.pg_stat_statements", q);
    PQfreemem(q);
  }
  PQclear(r);
  if (x->pgss[0]) { /* the view may still be unusable (not in shared_preload_libraries) */
    snprintf(sql, sizeof sql, "SELECT 1 FROM %s LIMIT 1", x->pgss);
    r = PQexec(x->pg, sql);
    x->has_pgss = PQresultStatus(r) == PGRES_TUPLES_OK;
    PQclear(r);
  }
  return 0;
}

/* drop exactly what setup created; reconnects if the admin connection is gone */
static void cleanup(bench_t *b) {
  p2q_bench_ctx_t *x = &b->x;
  p2q_bench_stop_all(x);
  if (b->created_schema) {
    if (!x->pg || PQstatus(x->pg) != CONNECTION_OK) {
      char e[512];
      PQfinish(x->pg);
      x->pg = p2q_admin_connect(b->cfg, "p2q_bench", e, sizeof e);
    }
    char sql[256], err[512];
    snprintf(sql, sizeof sql, "DROP SCHEMA \"%s\" CASCADE", x->prefix);
    if (x->pg && sql_ok(x->pg, sql, err, sizeof err) == 0) b->created_schema = 0;
    else fprintf(stderr, "pg2qdrant bench: could not drop schema \"%s\": %s\n", x->prefix, err);
  }
  const char *colls[2] = {x->coll_vec, x->coll_text};
  int *made[2] = {&b->created_vec, &b->created_text};
  for (int i = 0; i < 2; i++) {
    if (!*made[i]) continue;
    char url[1024];
    snprintf(url, sizeof url, "%s/collections/%s", x->qdrant_url, colls[i]);
    long st = p2q_bench_http("DELETE", url, x->api_key, x->ca_file, NULL, NULL);
    if (st == 200 || st == 404) *made[i] = 0;
    else fprintf(stderr, "pg2qdrant bench: could not delete collection %s (HTTP %ld)\n", colls[i], st);
  }
  if (x->dir[0]) {
    char path[700];
    for (int i = 1; i <= P2Q_BENCH_MAX_PROCS; i++) {
      snprintf(path, sizeof path, "%s/replica%d.ini", x->dir, i);
      unlink(path);
    }
    rmdir(x->dir);
  }
}

static int is_local_host(const char *h) {
  return !h || !*h || h[0] == '/' || !strcmp(h, "localhost") || !strcmp(h, "127.0.0.1") || !strcmp(h, "::1");
}

static int qdrant_port(const char *url) {
  const char *h = strstr(url, "://");
  h = h ? h + 3 : url;
  int local = !strncmp(h, "127.0.0.1", 9) || !strncmp(h, "localhost", 9) || !strncmp(h, "[::1]", 5);
  if (!local) return -1;
  const char *c = strchr(h, ']');
  c = strchr(c ? c : h, ':');
  if (!c) return strncmp(url, "https", 5) ? 80 : 443;
  return atoi(c + 1);
}

/* the progress bar (a terminal only): runs done, elapsed, ETA, and the run in progress */
static struct {
  int tty, done, total;
  double t0, run_t0, last;
  char now[64];
} prog;

static void bar_line(void) {
  double t = p2q_bench_now(), el = t - prog.t0;
  char bar[31], eta[32];
  int fill = prog.total ? prog.done * 30 / prog.total : 0;
  for (int i = 0; i < 30; i++) bar[i] = i < fill ? '#' : '.';
  bar[30] = 0;
  if (prog.done) snprintf(eta, sizeof eta, "ETA %.0fs", el / prog.done * (prog.total - prog.done));
  else snprintf(eta, sizeof eta, "ETA ?");
  fprintf(stderr, "\r\033[K[%s] %d/%d runs, %.0fs elapsed, %s", bar, prog.done, prog.total, el, eta);
  if (prog.done < prog.total && prog.now[0]) fprintf(stderr, "; now %s %.0fs", prog.now, t - prog.run_t0);
  prog.last = t;
}

/* called by the wait loops of a run (bench_run.c): refresh the bar at most once a second */
static void on_tick(void *self) {
  (void)self;
  if (prog.tty && p2q_bench_now() - prog.last >= 1.0) bar_line();
}

static void progress_start(int done, const p2q_bench_run_t *next, const char *workload) {
  prog.done = done;
  prog.run_t0 = p2q_bench_now();
  snprintf(prog.now, sizeof prog.now, "point %d rep %d %s", next->point + 1, next->repeat, workload);
  if (prog.tty) bar_line();
}

static void progress(int done, const p2q_bench_run_t *r) {
  char line[400];
  int n = snprintf(line, sizeof line, "point %d rep %d %-6s %s", r->point + 1, r->repeat, r->workload,
                   r->ok ? "" : "FAILED ");
  for (int k = 0; k < P2Q_KNOB_N && n < 300; k++)
    n += snprintf(line + n, sizeof line - (size_t)n, "%s=%ld ", p2q_bench_knob_name(k), r->set.v[k]);
  if (!isnan(r->events_per_s)) n += snprintf(line + n, sizeof line - (size_t)n, "| %.0f events/s ", r->events_per_s);
  if (!isnan(r->commits_per_s)) n += snprintf(line + n, sizeof line - (size_t)n, "%.0f commits/s ", r->commits_per_s);
  if (r->lat_n) n += snprintf(line + n, sizeof line - (size_t)n, "p50 %.2f ms p99 %.2f ms ", r->p50_ms, r->p99_ms);
  if (r->error[0]) snprintf(line + n, sizeof line - (size_t)n, "(%s)", r->error);
  prog.done = done;
  prog.now[0] = 0; /* until the next run starts */
  if (!prog.tty) { fprintf(stderr, "[%d/%d] %s\n", done, prog.total, line); return; }
  fprintf(stderr, "\r\033[K%s\n", line);
  bar_line();
  if (done == prog.total) fputc('\n', stderr);
}

/* the report's notes: how to read the steady CPU, and the statements PostgreSQL spent the most
   time on for the scratch schema (pg_stat_statements, cumulative over the session) */
static void pg_stat_top_row(char *out, size_t len, size_t *n, PGresult *r, int i) {
  int k = snprintf(out + *n, len - *n, "%10s calls %10s ms total %8s ms mean  %.110s\n", PQgetvalue(r, i, 0),
                   PQgetvalue(r, i, 1), PQgetvalue(r, i, 2), PQgetvalue(r, i, 3));
  if (k > 0) *n = *n + (size_t)k < len ? *n + (size_t)k : len - 1;
}

static void pgss_top(p2q_bench_ctx_t *x, char *out, size_t len) {
  size_t n = 0;
  int k = snprintf(out, len, "CPU per event of steady/mixed runs includes idle time at the fixed rate and, for qdrant, "
                   "the latency observer's polls; compare CPU per event on drain runs.\n");
  if (k > 0) n = (size_t)k < len ? (size_t)k : len - 1;
  if (!x->has_pgss) {
    snprintf(out + n, len - n, "pg_stat_statements is not installed in this database (or not in "
             "shared_preload_libraries): its column is empty.\n");
    return;
  }
  char sql[1024];
  snprintf(sql, sizeof sql,
           "SELECT calls, round(total_exec_time::numeric, 1), round(mean_exec_time::numeric, 3), "
           "regexp_replace(query, '\\s+', ' ', 'g') FROM %s s JOIN pg_database d ON d.oid = s.dbid "
           "WHERE d.datname = current_database() AND s.query LIKE '%%%s%%' AND s.query NOT LIKE '%%pg_stat_statements%%' "
           "ORDER BY total_exec_time DESC LIMIT 8", x->pgss, x->prefix);
  PGresult *r = PQexec(x->pg, sql);
  if (PQresultStatus(r) == PGRES_TUPLES_OK) {
    k = snprintf(out + n, len - n, "pg_stat_statements, top statements on the scratch schema (whole session):\n");
    if (k > 0) n = n + (size_t)k < len ? n + (size_t)k : len - 1;
    for (int i = 0; i < PQntuples(r); i++) pg_stat_top_row(out, len, &n, r, i);
  }
  PQclear(r);
}

static int parse_args(bench_t *b, p2q_bench_sweep_t *sw, int argc, char **argv, char *workloads, size_t wl,
                      int *one_axis, long *repeat, double *p99, const char **emb_name, long *qpid) {
  p2q_bench_ctx_t *x = &b->x;
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    long n;
    char err[256];
#define NEEDV() do { if (!v) { fprintf(stderr, "pg2qdrant bench: %s needs a value\n", a); return -1; } i++; } while (0)
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) { printf(usage_text, P2Q_BENCH_WRITER_LIST, P2Q_BENCH_KNOB_LIST); return 1; }
    else if (!strcmp(a, "--one-axis")) *one_axis = 1;
    else if (!strcmp(a, "--workload")) { NEEDV(); snprintf(workloads, wl, "%s", v); }
    else if (!strcmp(a, "--rows")) { NEEDV(); if (parse_count(a, v, 1, 100000000, &x->rows)) return -1; }
    else if (!strcmp(a, "--text-rows")) { NEEDV(); if (parse_count(a, v, 1, 10000000, &x->text_rows)) return -1; }
    else if (!strcmp(a, "--preload")) { NEEDV(); if (parse_count(a, v, 1, 100000000, &x->preload)) return -1; }
    else if (!strcmp(a, "--dim")) { NEEDV(); if (parse_count(a, v, 1, 65536, &n)) return -1; x->dim = (int)n; }
    else if (!strcmp(a, "--payload-bytes")) { NEEDV(); if (parse_count(a, v, 0, 1 << 20, &n)) return -1; x->payload_bytes = (int)n; }
    else if (!strcmp(a, "--writers")) { NEEDV(); if (parse_count(a, v, 1, 256, &n)) return -1; x->writers = (int)n; }
    else if (!strcmp(a, "--rows-per-txn")) { NEEDV(); if (parse_count(a, v, 1, 100000, &n)) return -1; x->rows_per_txn = (int)n; }
    else if (!strcmp(a, "--repeat")) { NEEDV(); if (parse_count(a, v, 1, 1000, repeat)) return -1; }
    else if (!strcmp(a, "--qdrant-pid")) { NEEDV(); if (parse_count(a, v, 1, 1 << 30, qpid)) return -1; }
    else if (!strcmp(a, "--rate")) { NEEDV(); x->rate = atof(v); if (x->rate < 0) return fprintf(stderr, "pg2qdrant bench: --rate >= 0\n"), -1; }
    else if (!strcmp(a, "--poll-ms")) { NEEDV(); x->poll_ms = p2q_bench_parse_ms(v); if (x->poll_ms < 0) return fprintf(stderr, "pg2qdrant bench: bad --poll-ms\n"), -1; }
    else if (!strcmp(a, "--duration") || !strcmp(a, "--timeout") || !strcmp(a, "--p99-max") ||
             !strcmp(a, "--wait-vacuum")) {
      NEEDV();
      double ms = p2q_bench_parse_ms(v);
      if (ms <= 0) { fprintf(stderr, "pg2qdrant bench: %s: '%s' is not a duration (25ms, 10s)\n", a, v); return -1; }
      if (a[2] == 'd') x->duration_s = ms / 1000;
      else if (a[2] == 't') x->timeout_s = ms / 1000;
      else if (a[2] == 'w') x->wait_vacuum_s = ms / 1000;
      else *p99 = ms;
    }
    else if (!strcmp(a, "--mix")) {
      NEEDV();
      if (sscanf(v, "%d,%d,%d", &x->mix[0], &x->mix[1], &x->mix[2]) != 3 || x->mix[0] < 0 || x->mix[1] < 0 ||
          x->mix[2] < 0 || x->mix[0] + x->mix[1] + x->mix[2] != 100) {
        fprintf(stderr, "pg2qdrant bench: --mix I,U,D: three percentages summing to 100\n");
        return -1;
      }
    }
    else if (!strcmp(a, "--hot")) {
      NEEDV();
      if (sscanf(v, "%lf,%ld", &x->hot_fraction, &x->hot_rows) != 2 || x->hot_fraction < 0 || x->hot_fraction > 1 ||
          x->hot_rows < 1) {
        fprintf(stderr, "pg2qdrant bench: --hot F,N: a fraction in [0,1] and a row count >= 1\n");
        return -1;
      }
    }
    else if (!strcmp(a, "--writer")) {
      NEEDV();
      x->writer_mode = p2q_bench_writer_find(v);
      if (x->writer_mode < 0) { fprintf(stderr, "pg2qdrant bench: --writer: one of %s, not '%s'\n", P2Q_BENCH_WRITER_LIST, v); return -1; }
    }
    else if (!strcmp(a, "--sweep")) { NEEDV(); if (p2q_bench_sweep_add(sw, v, err, sizeof err) < 0) { fprintf(stderr, "pg2qdrant bench: %s\n", err); return -1; } }
    else if (!strcmp(a, "--out")) { NEEDV(); snprintf(x->out, sizeof x->out, "%s", v); }
    else if (!strcmp(a, "--embedder")) { NEEDV(); *emb_name = v; }
    else if (!strcmp(a, "--sink")) {
      NEEDV();
      if (strcmp(v, "null") && strcmp(v, "qdrant")) { fprintf(stderr, "pg2qdrant bench: --sink: null or qdrant, not '%s'\n", v); return -1; }
      b->null_sink = !strcmp(v, "null");
    }
    else {
      fprintf(stderr, "pg2qdrant bench: unknown option '%s'\n", a);
      fprintf(stderr, usage_text, P2Q_BENCH_WRITER_LIST, P2Q_BENCH_KNOB_LIST);
      return -1;
    }
#undef NEEDV
  }
  for (char *w = workloads; *w;) {
    size_t n = strcspn(w, ",");
    if (!((n == 5 && !strncmp(w, "drain", 5)) || (n == 6 && !strncmp(w, "steady", 6)) ||
          (n == 5 && !strncmp(w, "mixed", 5)) || (n == 4 && !strncmp(w, "text", 4)))) {
      fprintf(stderr, "pg2qdrant bench: --workload: '%.*s' is not drain, steady, mixed or text\n", (int)n, w);
      return -1;
    }
    if (n == 4 && !strncmp(w, "text", 4)) x->have_text = 1;
    w += n + (w[n] == ',');
  }
  return 0;
}

/* everything between the options and the first connection: the embedder, the points, the
   output and temp dirs, the binary under test */
static int prepare(bench_t *b, const char *emb_name, int one_axis) {
  p2q_bench_ctx_t *x = &b->x;
  const p2q_config_t *cfg = b->cfg;
  if (x->have_text) {
    b->emb = emb_name ? p2q_config_embedder(cfg, emb_name) : cfg->n_embedders ? &cfg->embedders[0] : NULL;
    if (!b->emb) {
      fprintf(stderr, "pg2qdrant bench: the text workload needs an [embedder.*] in the config%s%s\n",
              emb_name ? ": no embedder " : "", emb_name ? emb_name : "");
      return -1;
    }
    x->text_dim = (int)(b->emb->dim ? b->emb->dim : b->emb->type == P2Q_EMB_MINILM ? 384 : 0);
    if (x->text_dim <= 0) { fprintf(stderr, "pg2qdrant bench: embedder %s: set its dimensions\n", b->emb->name); return -1; }
    b->emb_dump = embedder_section(cfg, b->emb->name);
    if (b->emb->type == P2Q_EMB_MINILM && !b->sw.vals[P2Q_KNOB_EMBEDDER_THREADS])
      b->sw.base[P2Q_KNOB_EMBEDDER_THREADS] = b->emb->threads;
  }
  b->npoints = p2q_bench_sweep_expand(&b->sw, one_axis, &b->sets);
  if (b->npoints < 0) {
    fprintf(stderr, "pg2qdrant bench: %s\n", b->npoints == P2Q_EOVERFLOW ? "more than 10,000 points" : "out of memory");
    b->npoints = 0;
    return -1;
  }
  b->nworkloads = 1;
  for (const char *w = b->workloads; *w; w++) b->nworkloads += *w == ',';
  b->total = b->npoints * (int)b->repeat * b->nworkloads;
  b->runs = calloc((size_t)b->total, sizeof *b->runs);
  b->pts = calloc((size_t)b->npoints, sizeof *b->pts);
  if (!b->runs || !b->pts) return -1;
  if (!x->out[0]) {
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(x->out, sizeof x->out, "p2q-bench-%Y%m%dT%H%M%SZ", &tm);
  }
  char path[700];
  mkdir(x->out, 0755);
  snprintf(path, sizeof path, "%s/logs", x->out);
  if (mkdir(path, 0755) < 0 && errno != EEXIST) {
    fprintf(stderr, "pg2qdrant bench: cannot create %s: %s\n", path, strerror(errno));
    return -1;
  }
  snprintf(x->dir, sizeof x->dir, "/tmp/p2q-bench-XXXXXX");
  if (!mkdtemp(x->dir)) { x->dir[0] = 0; fprintf(stderr, "pg2qdrant bench: mkdtemp: %s\n", strerror(errno)); return -1; }
  ssize_t el = readlink("/proc/self/exe", b->exe, sizeof b->exe - 1);
  if (el <= 0) { fprintf(stderr, "pg2qdrant bench: cannot find my own binary\n"); return -1; }
  b->exe[el] = 0;
  x->exe = b->exe;
  x->write_config = write_config;
  x->qdrant_url = cfg->qdrant_url;
  x->api_key = cfg->qdrant_api_key_env && *cfg->qdrant_api_key_env ? getenv(cfg->qdrant_api_key_env) : NULL;
  x->ca_file = cfg->qdrant_ca_file;
  if (b->null_sink) { /* forked before any thread or connection of ours exists */
    int port = 0;
    b->sink_pid = p2q_bench_sink_spawn(&port);
    if (b->sink_pid < 0) { fprintf(stderr, "pg2qdrant bench: cannot start the null sink: %s\n", strerror(errno)); return -1; }
    snprintf(b->sink_url, sizeof b->sink_url, "http://127.0.0.1:%d", port);
    x->qdrant_url = b->sink_url;
    x->api_key = x->ca_file = NULL;
  }
  return 0;
}

/* every point x repeat x workload, a CSV row (flushed) and a progress line each */
static void run_all(bench_t *b) {
  p2q_bench_ctx_t *x = &b->x;
  prog.tty = isatty(2);
  prog.total = b->total;
  prog.t0 = p2q_bench_now();
  x->tick = on_tick;
  fprintf(stderr, "pg2qdrant bench: %d point(s) x %ld repeat(s) x %d workload(s) = %d runs; scratch %s; "
          "CPU of PostgreSQL backends: %s; of Qdrant: %s\n", b->npoints, b->repeat, b->nworkloads, b->total, x->prefix,
          x->pg_local ? "measured" : "not measured (server not local)",
          b->null_sink ? "measured (the null sink)" : x->qdrant_pid > 0 ? "measured" : "not measured (not local; --qdrant-pid)");
  for (int p = 0; p < b->npoints && !g_stop; p++)
    for (long rep = 1; rep <= b->repeat && !g_stop; rep++)
      for (const char *w = b->workloads; *w && !g_stop;) {
        size_t wn = strcspn(w, ",");
        char wname[16];
        snprintf(wname, sizeof wname, "%.*s", (int)wn, w);
        w += wn + (w[wn] == ',');
        p2q_bench_run_t *r = &b->runs[b->nruns];
        r->point = p;
        r->repeat = (int)rep;
        progress_start(b->nruns, r, wname);
        p2q_bench_run_one(x, wname, &b->sets[p], r);
        if (g_stop) { free(r->lat); memset(r, 0, sizeof *r); break; }
        b->nruns++;
        p2q_bench_csv_row(b->csv, r);
        fflush(b->csv);
        progress(b->nruns, r);
      }
  if (g_stop) fprintf(stderr, "\npg2qdrant bench: interrupted: dropping the scratch schema and collections\n");
}

/* aggregate, recommend, write the report (also for what an interrupted session completed) */
static void report(bench_t *b) {
  p2q_bench_ctx_t *x = &b->x;
  if (b->nruns == 0 || p2q_bench_points(b->runs, b->nruns, b->sets, b->npoints, b->pts) < 0) return;
  char why[512], machine[256], notes[4096] = "", path[700];
  int rec = p2q_bench_recommend(b->pts, b->npoints, b->p99max, why, sizeof why);
  double load[3] = {0};
  getloadavg(load, 3);
  time_t t = time(NULL);
  char when[64];
  strftime(when, sizeof when, "%Y-%m-%d %H:%M UTC", gmtime(&t));
  /* the writer's mode says something only when a workload runs writers (drain and text do not) */
  int writers = strstr(b->workloads, "steady") || strstr(b->workloads, "mixed");
  snprintf(machine, sizeof machine, "pg2qdrant %s, %ld cores, load %.1f %.1f %.1f, %s; dim %d, %s%s%s",
           P2Q_VERSION, sysconf(_SC_NPROCESSORS_ONLN), load[0], load[1], load[2], when, x->dim,
           writers ? "writer " : "", writers ? p2q_bench_writer_name(x->writer_mode) : "", writers ? ", " : "");
  snprintf(machine + strlen(machine), sizeof machine - strlen(machine), "%s", g_stop ? "INTERRUPTED" : "complete");
  pgss_top(x, notes, sizeof notes);
  int swept[P2Q_KNOB_N] = {0};
  for (int k = 0; k < P2Q_KNOB_N; k++) swept[k] = b->sw.n[k] > 0;
  const char *emb = b->emb ? b->emb->name : NULL;
  p2q_bench_report_meta_t m = {.title = b->cmdline, .machine = machine, .p99_max_ms = b->p99max, .recommended = rec,
                               .why = why, .notes = notes[0] ? notes : NULL, .swept = swept, .embedder = emb};
  m.naxes = p2q_bench_sweep_axes(&b->sw, m.axes);
  snprintf(path, sizeof path, "%s/report.html", x->out);
  FILE *h = fopen(path, "w");
  if (h) { p2q_bench_html(h, &m, b->pts, b->npoints, b->runs, b->nruns); fclose(h); }
  printf("results: %s/runs.csv, report: %s\n", x->out, path);
  if (rec >= 0) {
    printf("recommendation (point %d: %s):\n", rec + 1, why);
    p2q_bench_config_lines(&b->pts[rec], swept, emb, stdout);
  } else {
    printf("no recommendation: %s\n", why);
  }
}

static void install_signals(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGHUP, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
}

int p2q_cmd_bench(const p2q_config_t *cfg, int argc, char **argv) {
  bench_t B;
  memset(&B, 0, sizeof B);
  bench_t *b = &B;
  p2q_bench_ctx_t *x = &b->x;
  char err[1024] = "", path[700];
  int one_axis = 0, rc = 1;
  long qpid = -1;
  const char *emb_name = NULL;
  p2q_bench_sweep_init(&b->sw);
  snprintf(b->workloads, sizeof b->workloads, "drain,steady");
  b->repeat = 1;
  x->rows = 20000, x->text_rows = 500, x->preload = 1000, x->dim = 384, x->payload_bytes = 64;
  x->writers = 1, x->rows_per_txn = 1, x->rate = 200, x->duration_s = 10, x->timeout_s = 600;
  x->poll_ms = 1, x->settle_s = 30, x->mix[0] = 50, x->mix[1] = 40, x->mix[2] = 10;
  x->hot_rows = 100, x->hot_fraction = 0.8, x->stop = &g_stop, x->writer_mode = P2Q_BENCH_WRITER_DEFAULT;
  b->cfg = cfg; /* NULL for `bench --help` (main.c): parse_args returns before any use */
  int pr = parse_args(b, &b->sw, argc, argv, b->workloads, sizeof b->workloads, &one_axis, &b->repeat, &b->p99max,
                      &emb_name, &qpid);
  if (pr) { p2q_bench_sweep_free(&b->sw); return pr > 0 ? 0 : 2; }
  int n = snprintf(b->cmdline, sizeof b->cmdline, "pg2qdrant -c %s bench", cfg->path ? cfg->path : "?");
  for (int i = 0; i < argc && n < (int)sizeof b->cmdline - 2; i++)
    n += snprintf(b->cmdline + n, sizeof b->cmdline - (size_t)n, " %s", argv[i]);
  if (prepare(b, emb_name, one_axis) < 0) goto out2;

  install_signals();
  curl_global_init(CURL_GLOBAL_DEFAULT);
  x->pg = p2q_admin_connect(cfg, "p2q_bench", err, sizeof err);
  if (!x->pg) { fprintf(stderr, "pg2qdrant bench: %s\n", err); goto out; }
  PQclear(PQexec(x->pg, "SET max_parallel_workers_per_gather = 0")); /* our polls stay one process */
  x->pg_local = is_local_host(PQhost(x->pg));
  int qport = qdrant_port(x->qdrant_url);
  x->qdrant_pid = b->null_sink ? (int)b->sink_pid : qpid > 0 ? (int)qpid : qport > 0 ? p2q_bench_port_pid(qport) : -1;
  g_cancel = PQgetCancel(x->pg);
  if (setup(b, err, sizeof err) < 0) { fprintf(stderr, "pg2qdrant bench: %s\n", err); goto out; }
  snprintf(path, sizeof path, "%s/runs.csv", x->out);
  b->csv = fopen(path, "w");
  if (!b->csv) { fprintf(stderr, "pg2qdrant bench: cannot write %s\n", path); goto out; }
  p2q_bench_csv_header(b->csv);
  fflush(b->csv);
  run_all(b);
  report(b);
  rc = g_stop ? 130 : 0;
  for (int i = 0; i < b->nruns; i++) if (!b->runs[i].ok) rc = rc ? rc : 1;
out:
  if (g_cancel) {
    PGcancel *c = g_cancel;
    g_cancel = NULL; /* a second Ctrl-C must not cancel the cleanup */
    PQfreeCancel(c);
  }
  cleanup(b);
  if (b->created_schema || b->created_vec || b->created_text) rc = 1;
  if (b->csv) fclose(b->csv);
  PQfinish(x->pg);
  curl_global_cleanup();
out2:
  if (b->sink_pid > 0) p2q_bench_stop(b->sink_pid, 5000);
  if (x->dir[0]) rmdir(x->dir); /* empty unless cleanup ran (then already gone) */
  if (b->pts) p2q_bench_points_free(b->pts, b->npoints);
  for (int i = 0; i < b->nruns; i++) free(b->runs[i].lat);
  free(b->runs);
  free(b->pts);
  free(b->sets);
  free(x->conninfo);
  free(x->writer_conninfo);
  free(b->emb_dump);
  p2q_bench_sweep_free(&b->sw);
  return rc;
}

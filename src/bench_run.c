/*
 * bench_run.c — one run of `pg2qdrant bench`: one workload at one setting, against the scratch
 * schema and collections bench.c created.
 *
 *   drain, text: reset the outbox and the collection, queue the backlog (the first time through
 *     the real triggers, saved in the scratch schema; later runs copy it back, which is faster
 *     and identical), start the daemons, time until the outbox is empty (with --wait-vacuum the
 *     CPU figures go on until an autovacuum of the outbox has run: vacuum_tail).
 *   steady, mixed: reset, start the daemons, (mixed: preload rows and let them sync), then the
 *     writers commit at the rate for the duration while the observer measures COMMIT → visible
 *     in Qdrant for each change (bench_load.c).
 * Around each: CPU of every component from /proc (daemons, their backends found by
 * application_name in pg_stat_activity, autovacuum workers of the database split by whether they
 * work on the outbox tables, the writers' backends, the Qdrant process), the daemons'
 * peak RSS and Qdrant request durations from their /metrics, pg_stat_statements, the outbox's
 * dead tuples and size. Main thread; writers/observer threads only inside bench_load.c.
 */
#include "bench_load.h"
#include "pg2qdrant/capture.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void nap(double s) {
  struct timespec ts = {(time_t)s, (long)((s - floor(s)) * 1e9)};
  nanosleep(&ts, NULL);
}

static int q_exec(p2q_bench_ctx_t *x, const char *sql, p2q_bench_run_t *r) {
  PGresult *res = PQexec(x->pg, sql);
  int ok = PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK;
  if (!ok && r && !r->error[0]) {
    P2Q_BENCH_MSG(r->error, "%s", PQresultErrorMessage(res));
    char *nl = strchr(r->error, '\n');
    if (nl) *nl = 0;
  }
  PQclear(res);
  return ok ? 0 : -1;
}

static double q_num(p2q_bench_ctx_t *x, const char *sql) {
  PGresult *res = PQexec(x->pg, sql);
  double v = NAN;
  if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 && !PQgetisnull(res, 0, 0))
    v = atof(PQgetvalue(res, 0, 0));
  PQclear(res);
  return v;
}

static double outbox_count(p2q_bench_ctx_t *x) {
  char sql[256];
  snprintf(sql, sizeof sql, "SELECT count(*) FROM \"%s\".sync_outbox", x->prefix);
  return q_num(x, sql);
}

/* 1 while the outbox holds an event, 0 once empty (NaN on error). Polled every 100 ms during a
   drain, so it must cost next to nothing. The first pending id, from *lo on: a drain's (or a
   preload's) backlog is queued before the wait starts and an event keeps its id until it is
   deleted, so the first pending id only grows and the next poll starts at it. Without the bound
   every poll walked the index's whole drained front, whose entries stay until VACUUM (1,412
   buffer hits per poll at 1,000,000 events, 4.2 µs/event competing with the daemons); with it a
   poll reads the entries deleted since the last one. The caller starts *lo at 0. */
static double outbox_left(p2q_bench_ctx_t *x, long long *lo) {
  char sql[512], from[32];
  snprintf(sql, sizeof sql,
           "SELECT id FROM \"%s\".sync_outbox WHERE id >= $1::bigint AND event_type IN ('bench', 'benchtext') "
           "ORDER BY id LIMIT 1", x->prefix);
  snprintf(from, sizeof from, "%lld", *lo);
  const char *p[1] = {from};
  PGresult *res = PQexecParams(x->pg, sql, 1, NULL, p, NULL, NULL, 0);
  double v = NAN;
  if (PQresultStatus(res) == PGRES_TUPLES_OK) {
    v = PQntuples(res) > 0;
    if (v) *lo = atoll(PQgetvalue(res, 0, 0));
  }
  PQclear(res);
  return v;
}

static int reset_outbox(p2q_bench_ctx_t *x, p2q_bench_run_t *r) {
  char sql[512];
  snprintf(sql, sizeof sql, "TRUNCATE \"%s\".sync_outbox, \"%s\".sync_outbox_dead", x->prefix, x->prefix);
  return q_exec(x, sql, r);
}

static int coll_reset(p2q_bench_ctx_t *x, const char *coll, int dim, const char *dist, p2q_bench_run_t *r) {
  char url[1024], body[128];
  snprintf(url, sizeof url, "%s/collections/%s", x->qdrant_url, coll);
  long st = p2q_bench_http("DELETE", url, x->api_key, x->ca_file, NULL, NULL);
  snprintf(body, sizeof body, "{\"vectors\":{\"size\":%d,\"distance\":\"%s\"}}", dim, dist);
  if (st == 200) st = p2q_bench_http("PUT", url, x->api_key, x->ca_file, body, NULL);
  if (st != 200) {
    P2Q_BENCH_MSG(r->error, "recreating collection %s: HTTP %ld", coll, st);
    return -1;
  }
  return 0;
}

static double coll_count(p2q_bench_ctx_t *x, const char *coll) {
  char url[1024], *body = NULL;
  snprintf(url, sizeof url, "%s/collections/%s/points/count", x->qdrant_url, coll);
  double v = NAN;
  if (p2q_bench_http("POST", url, x->api_key, x->ca_file, "{\"exact\":true}", &body) == 200 && body) {
    const char *c = strstr(body, "\"count\"");
    if (c && (c = strchr(c, ':'))) v = atof(c + 1);
  }
  free(body);
  return v;
}

void p2q_bench_stop_all(p2q_bench_ctx_t *x) {
  for (int i = 0; i < x->nprocs; i++)
    if (x->procs[i] > 0) kill(x->procs[i], SIGTERM);
  for (int i = 0; i < x->nprocs; i++) {
    if (x->procs[i] > 0) p2q_bench_stop(x->procs[i], 15000);
    x->procs[i] = 0;
  }
  x->nprocs = 0;
}

static int start_daemons(p2q_bench_ctx_t *x, const p2q_bench_setting_t *s, p2q_bench_run_t *r) {
  long n = s->v[P2Q_KNOB_REPLICAS];
  char log[700];
  snprintf(log, sizeof log, "%s/logs/daemons.log", x->out);
  for (int i = 0; i < n && i < P2Q_BENCH_MAX_PROCS; i++) {
    char path[600];
    int port = p2q_bench_free_port();
    if (x->write_config(x, s, i, port, path, sizeof path) < 0) {
      P2Q_BENCH_MSG(r->error, "cannot write the daemon config");
      return -1;
    }
    x->ports[i] = port;
    x->procs[i] = p2q_bench_spawn(x->exe, path, log);
    if (x->procs[i] < 0) {
      P2Q_BENCH_MSG(r->error, "cannot spawn %s", x->exe);
      return -1;
    }
    x->nprocs = i + 1;
  }
  return 0;
}

/* 0 while every daemon lives; -1 (with the error) once one exited */
static int daemons_alive(p2q_bench_ctx_t *x, p2q_bench_run_t *r) {
  for (int i = 0; i < x->nprocs; i++) {
    int st;
    if (x->procs[i] > 0 && waitpid(x->procs[i], &st, WNOHANG) == x->procs[i]) {
      x->procs[i] = 0;
      P2Q_BENCH_MSG(r->error, "daemon %d exited (%s %d): see %s/logs/daemons.log", i + 1,
               WIFEXITED(st) ? "status" : "signal", WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st), x->out);
      return -1;
    }
  }
  return 0;
}

static int wait_ready(p2q_bench_ctx_t *x, p2q_bench_run_t *r) {
  for (int i = 0; i < x->nprocs; i++) {
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/readyz", x->ports[i]);
    double t0 = p2q_bench_now();
    while (p2q_bench_http("GET", url, NULL, NULL, NULL, NULL) != 200) {
      if (*x->stop || daemons_alive(x, r) < 0) return -1;
      if (p2q_bench_now() - t0 > 30) {
        P2Q_BENCH_MSG(r->error, "daemon %d not ready after 30 s (%s)", i + 1, url);
        return -1;
      }
      nap(0.05);
    }
  }
  return 0;
}

/* the outbox tables (every sync_outbox* table of the scratch schema) and their TOAST tables, as
   an autovacuum worker names them in pg_stat_activity; looked up once per session */
static void autovac_names(p2q_bench_ctx_t *x) {
  if (x->n_autovac_names > 0) return;
  const char *p[1] = {x->prefix};
  PGresult *res = PQexecParams(
      x->pg,
      "SELECT n.nspname || '.' || t.relname, tn.nspname || '.' || tt.relname FROM pg_class t "
      "JOIN pg_namespace n ON n.oid = t.relnamespace LEFT JOIN pg_class tt ON tt.oid = t.reltoastrelid "
      "LEFT JOIN pg_namespace tn ON tn.oid = tt.relnamespace "
      "WHERE n.nspname = $1 AND t.relkind IN ('r', 'p') AND t.relname LIKE 'sync\\_outbox%' ORDER BY 1",
      1, NULL, p, NULL, NULL, 0);
  int max = (int)(sizeof x->autovac_names / sizeof *x->autovac_names);
  for (int i = 0; PQresultStatus(res) == PGRES_TUPLES_OK && i < PQntuples(res); i++)
    for (int c = 0; c < 2 && x->n_autovac_names < max; c++)
      if (!PQgetisnull(res, i, c))
        snprintf(x->autovac_names[x->n_autovac_names++], sizeof *x->autovac_names, "%s", PQgetvalue(res, i, c));
  PQclear(res);
}

/* autovacuum workers of this database: their CPU, charged to the outbox or to other tables by
   what they work on (bench_autovac.c). Reading another role's activity needs superuser or
   pg_read_all_stats: without, it reads "<insufficient privilege>" and counts as other. */
static int sample_autovac(p2q_bench_ctx_t *x, int start) {
  autovac_names(x);
  const char *names[sizeof x->autovac_names / sizeof *x->autovac_names];
  for (int i = 0; i < x->n_autovac_names; i++) names[i] = x->autovac_names[i];
  PGresult *res = PQexec(x->pg, "SELECT pid, query FROM pg_catalog.pg_stat_activity "
                                "WHERE backend_type = 'autovacuum worker' AND datname = current_database()");
  for (int i = 0; PQresultStatus(res) == PGRES_TUPLES_OK && i < PQntuples(res); i++) {
    int pid = atoi(PQgetvalue(res, i, 0));
    int target = p2q_bench_autovac_target(PQgetvalue(res, i, 1), names, x->n_autovac_names);
    p2q_bench_autovac_sample(&x->autovac, pid, p2q_bench_proc_cpu(pid), target, start);
  }
  int n = PQresultStatus(res) == PGRES_TUPLES_OK ? PQntuples(res) : -1;
  PQclear(res);
  return n;
}

/* the daemons' backends: CPU when first seen (0 for ones born after `start`) and now; and the
   autovacuum workers'. Returns how many autovacuum workers the database has now (-1: unknown). */
static int sample_backends(p2q_bench_ctx_t *x, int start) {
  if (!x->pg_local) return -1;
  int workers = sample_autovac(x, start);
  const char *p[1] = {x->appname};
  PGresult *res = PQexecParams(x->pg, "SELECT pid FROM pg_stat_activity WHERE application_name = $1", 1, NULL, p,
                               NULL, NULL, 0);
  for (int i = 0; PQresultStatus(res) == PGRES_TUPLES_OK && i < PQntuples(res); i++) {
    int pid = atoi(PQgetvalue(res, i, 0));
    double cpu = p2q_bench_proc_cpu(pid);
    if (isnan(cpu)) continue;
    int j = 0;
    while (j < x->nbackends && x->backends[j].pid != pid) j++;
    if (j == x->nbackends) {
      if (x->nbackends == (int)(sizeof x->backends / sizeof *x->backends)) continue;
      x->backends[x->nbackends++] = (p2q_bench_backend_t){pid, start ? cpu : 0, cpu};
    } else {
      x->backends[j].last = cpu;
    }
  }
  PQclear(res);
  return workers;
}

/* a run starts: forget the previous run's backends and workers, take the baselines */
static void sample_start(p2q_bench_ctx_t *x) {
  x->nbackends = 0;
  p2q_bench_autovac_reset(&x->autovac);
  sample_backends(x, 1);
}

static double backends_cpu(const p2q_bench_ctx_t *x) {
  if (!x->pg_local) return NAN;
  double s = 0;
  for (int i = 0; i < x->nbackends; i++) s += x->backends[i].last - x->backends[i].first;
  return s;
}

typedef struct {
  double daemon[P2Q_BENCH_MAX_PROCS];
  double qdrant, self, pgss, req_n, req_s;
} snap_t;

static double pgss_ms(p2q_bench_ctx_t *x) {
  if (!x->has_pgss) return NAN;
  char sql[512];
  snprintf(sql, sizeof sql,
           "SELECT coalesce(sum(total_exec_time), 0) FROM %s s JOIN pg_database d ON d.oid = s.dbid "
           "WHERE d.datname = current_database() AND s.query LIKE '%%%s%%' AND s.query NOT LIKE '%%pg_stat_statements%%'",
           x->pgss, x->prefix);
  return q_num(x, sql);
}

static void snap(p2q_bench_ctx_t *x, snap_t *s) {
  for (int i = 0; i < x->nprocs; i++) s->daemon[i] = p2q_bench_proc_cpu(x->procs[i]);
  s->qdrant = x->qdrant_pid > 0 ? p2q_bench_proc_cpu(x->qdrant_pid) : NAN;
  s->self = p2q_bench_self_cpu();
  s->pgss = pgss_ms(x);
  s->req_n = s->req_s = 0;
  for (int i = 0; i < x->nprocs; i++) {
    double n, sec;
    if (p2q_bench_scrape(x->ports[i], &n, &sec) == 0) { s->req_n += n; s->req_s += sec; }
  }
}

/* figures from two snapshots (daemons still running) into r, per event */
static void account(p2q_bench_ctx_t *x, const snap_t *a, const snap_t *b, double writers_cpu, p2q_bench_run_t *r) {
  double ev = r->events > 0 ? (double)r->events : NAN, d = 0, rss = NAN;
  for (int i = 0; i < x->nprocs; i++) {
    d += b->daemon[i] - (isnan(a->daemon[i]) ? 0 : a->daemon[i]);
    double h = p2q_bench_proc_hwm_mib(x->procs[i]);
    if (!isnan(h) && (isnan(rss) || h > rss)) rss = h;
  }
  r->rss_mib = rss;
  r->cpu_us[P2Q_COMP_DAEMON] = d / ev * 1e6;
  r->cpu_us[P2Q_COMP_PG_DAEMON] = backends_cpu(x) / ev * 1e6;
  r->cpu_us[P2Q_COMP_PG_AUTOVAC] = x->pg_local ? x->autovac.outbox_s / ev * 1e6 : NAN;
  r->cpu_us[P2Q_COMP_PG_AUTOVAC_OTHER] = x->pg_local ? x->autovac.other_s / ev * 1e6 : NAN;
  r->cpu_us[P2Q_COMP_PG_WRITERS] = writers_cpu / ev * 1e6;
  r->cpu_us[P2Q_COMP_QDRANT] = (b->qdrant - a->qdrant) / ev * 1e6;
  r->cpu_us[P2Q_COMP_BENCH] = (b->self - a->self) / ev * 1e6;
  r->pgss_us_per_event = (b->pgss - a->pgss) * 1000 / ev;
  r->qdrant_requests = b->req_n - a->req_n;
  r->qdrant_req_ms = r->qdrant_requests > 0 ? (b->req_s - a->req_s) / r->qdrant_requests * 1000 : NAN;
  r->leases_reclaimed = 0; /* no lease table since migration 015 (the column stays in the CSV) */
}

static void outbox_state(p2q_bench_ctx_t *x, p2q_bench_run_t *r) {
  char sql[512];
  snprintf(sql, sizeof sql, "SELECT count(*) FROM \"%s\".sync_outbox_dead", x->prefix);
  double d = q_num(x, sql);
  r->dead_letters = isnan(d) ? 0 : (long)d;
  snprintf(sql, sizeof sql, "SELECT n_dead_tup FROM pg_stat_user_tables WHERE relid = '\"%s\".sync_outbox'::regclass",
           x->prefix);
  r->dead_tuples = q_num(x, sql);
  snprintf(sql, sizeof sql, "SELECT pg_total_relation_size('\"%s\".sync_outbox'::regclass)", x->prefix);
  r->outbox_bytes = q_num(x, sql);
}

/* queue the drain (or text) backlog: through the triggers the first time, saved and copied after */
static int queue_backlog(p2q_bench_ctx_t *x, int text, p2q_bench_run_t *r) {
  char sql[2048];
  const char *P = x->prefix;
  int *saved = text ? &x->text_saved : &x->drain_saved;
  const char *bl = text ? "p2q_bench_backlog_text" : "p2q_bench_backlog";
  if (!*saved) {
    if (text)
      snprintf(sql, sizeof sql,
               "TRUNCATE \"%s\".docs; INSERT INTO \"%s\".docs (id, seq, body) SELECT i, i, 'document ' || i || ' about "
               "' || (ARRAY['postgres','qdrant','vectors','outbox','latency','throughput','replicas','batches'])[1 + i %% 8]"
               " || ', ' || repeat('a sentence of filler words for the embedder ', 1 + (%d / 44)) FROM generate_series(1, %ld) i",
               P, P, x->payload_bytes, x->text_rows);
    else
      snprintf(sql, sizeof sql,
               "TRUNCATE \"%s\".items; INSERT INTO \"%s\".items (id, seq, pad, emb) SELECT i, i, repeat('x', %d), "
               "array_fill(((i %% 1000) / 1000.0)::real, ARRAY[%d]) FROM generate_series(1, %ld) i",
               P, P, x->payload_bytes, x->dim, x->rows);
    if (q_exec(x, sql, r) < 0) return -1;
    snprintf(sql, sizeof sql, "CREATE TABLE \"%s\".%s AS SELECT * FROM \"%s\".sync_outbox", P, bl, P);
    if (q_exec(x, sql, r) < 0) return -1;
    /* The bench's own freshly written tables: without this, autovacuum's insert-triggered passes
       over them (1,000,000 rows: ~5 s of CPU each, 100+ s long) ran during the timed drain and
       took CPU from it (cpu_us_pg_autovacuum_other 13.7 us/event at --rows 1000000, nothing at
       100,000: over before the vacuum started), so the drain rate fell with the backlog's size
       for a cost that is no part of pg2qdrant's. The outbox is left alone: its vacuum is. */
    const char *own[2] = {text ? "docs" : "items", bl};
    for (int i = 0; i < 2; i++) {
      snprintf(sql, sizeof sql, "VACUUM (FREEZE, ANALYZE) \"%s\".%s", P, own[i]);
      if (q_exec(x, sql, r) < 0) return -1;
    }
    *saved = 1;
  } else {
    /* its own wake-up, as every writer of the outbox (capture.h) */
    snprintf(sql, sizeof sql, "INSERT INTO \"%s\".sync_outbox OVERRIDING SYSTEM VALUE SELECT * FROM \"%s\".%s;"
             " SELECT pg_catalog.pg_notify('" P2Q_NOTIFY_CHANNEL "', '')", P, P, bl);
    if (q_exec(x, sql, r) < 0) return -1;
  }
  snprintf(sql, sizeof sql, "ANALYZE \"%s\".sync_outbox", P);
  return q_exec(x, sql, r);
}

/* Autovacuum passes over sync_outbox finished so far; with `running`, plus the one running now. */
static double outbox_vacuums(p2q_bench_ctx_t *x, int running) {
  char sql[384];
  snprintf(sql, sizeof sql,
           "SELECT t.autovacuum_count%s FROM pg_stat_user_tables t WHERE t.relid = '\"%s\".sync_outbox'::regclass",
           running ? " + (SELECT count(*) FROM pg_stat_progress_vacuum v WHERE v.relid = t.relid)" : "", x->prefix);
  return q_num(x, sql);
}

/* --wait-vacuum D: the vacuum a drain causes usually starts after it (autovacuum_naptime is
   1 min), so its CPU would be left out. With the option, the CPU window also stays open until an
   autovacuum of sync_outbox that started after the drain ended has finished and the database has
   no autovacuum worker left (a worker does the outbox's TOAST table after the plain tables), at
   most D. A pass already running when the drain ends does not count: it began before the last
   events were deleted (a 1,000,000-event drain has one or two passes beside it, and the first
   rule, "one pass since the drain began", left up to 117,000 dead tuples out). Returns the
   seconds waited. */
static double vacuum_tail(p2q_bench_ctx_t *x) {
  if (x->wait_vacuum_s <= 0 || !x->pg_local) return 0;
  double base = outbox_vacuums(x, 1), t = p2q_bench_now();
  if (isnan(base)) return 0;
  while (!*x->stop && p2q_bench_now() - t < x->wait_vacuum_s) {
    nap(0.25);
    if (x->tick) x->tick(x);
    if (sample_backends(x, 0) == 0 && outbox_vacuums(x, 0) > base) break;
  }
  return p2q_bench_now() - t;
}

static void run_drain(p2q_bench_ctx_t *x, const p2q_bench_setting_t *s, int text, p2q_bench_run_t *r) {
  const char *coll = text ? x->coll_text : x->coll_vec;
  r->throughput = 1;
  if (reset_outbox(x, r) < 0 || coll_reset(x, coll, text ? x->text_dim : x->dim, text ? "Cosine" : "Dot", r) < 0 ||
      queue_backlog(x, text, r) < 0)
    return;
  double n = outbox_count(x);
  r->events = isnan(n) ? 0 : (long)n;
  snap_t a = {0}, b = {0};
  sample_start(x);
  snap(x, &a); /* no daemon yet: their CPU counts from 0 */
  for (int i = 0; i < P2Q_BENCH_MAX_PROCS; i++) a.daemon[i] = 0;
  double t0 = p2q_bench_now();
  if (start_daemons(x, s, r) < 0) return;
  double left = n;
  long long lo = 0;
  while (!*x->stop) {
    nap(0.1);
    if (x->tick) x->tick(x);
    if (daemons_alive(x, r) < 0) return;
    sample_backends(x, 0);
    left = outbox_left(x, &lo);
    if (left == 0) break;
    if (p2q_bench_now() - t0 > x->timeout_s) {
      P2Q_BENCH_MSG(r->error, "timeout: %.0f events left after %.0f s", outbox_count(x), x->timeout_s);
      break;
    }
  }
  double t1 = p2q_bench_now();
  if (*x->stop) return;
  r->tail_s = left == 0 ? vacuum_tail(x) : 0;
  if (*x->stop) return;
  sample_backends(x, 0);
  snap(x, &b);
  account(x, &a, &b, NAN, r);
  /* a.req_* were 0: the daemons started after it */
  r->seconds = t1 - t0;
  r->events_per_s = left == 0 ? (double)r->events / r->seconds : NAN;
  p2q_bench_stop_all(x);
  outbox_state(x, r);
  double pts = coll_count(x, coll);
  r->missing = isnan(pts) ? r->events : r->events - (long)pts;
  if (r->missing < 0) r->missing = 0;
  if (!r->error[0] && r->missing) P2Q_BENCH_MSG(r->error, "%ld events not in Qdrant", r->missing);
  r->ok = !r->error[0] && r->dead_letters == 0 && r->missing == 0;
}

static int wait_empty(p2q_bench_ctx_t *x, p2q_bench_run_t *r) {
  double t0 = p2q_bench_now();
  long long lo = 0;
  while (!*x->stop) {
    if (daemons_alive(x, r) < 0) return -1;
    if (outbox_left(x, &lo) == 0) return 0;
    if (p2q_bench_now() - t0 > x->timeout_s) {
      P2Q_BENCH_MSG(r->error, "preload not synced after %.0f s", x->timeout_s);
      return -1;
    }
    if (x->tick) x->tick(x);
    nap(0.1);
  }
  return -1;
}

static void run_rate(p2q_bench_ctx_t *x, const p2q_bench_setting_t *s, int mixed, p2q_bench_run_t *r) {
  char sql[1024];
  const char *P = x->prefix;
  r->throughput = x->rate <= 0;
  if (reset_outbox(x, r) < 0) return;
  snprintf(sql, sizeof sql, "TRUNCATE \"%s\".items; ALTER SEQUENCE \"%s\".ids RESTART; ALTER SEQUENCE \"%s\".ver RESTART",
           P, P, P);
  if (q_exec(x, sql, r) < 0 || coll_reset(x, x->coll_vec, x->dim, "Dot", r) < 0) return;
  if (start_daemons(x, s, r) < 0 || wait_ready(x, r) < 0) return;
  long preload = mixed ? x->preload : 0;
  if (preload > 0) {
    snprintf(sql, sizeof sql, "INSERT INTO \"%s\".items (id, seq, pad, emb) SELECT nextval('\"%s\".ids'), "
             "nextval('\"%s\".ver'), repeat('x', %d), array_fill(0.5::real, ARRAY[%d]) FROM generate_series(1, %ld)",
             P, P, P, x->payload_bytes, x->dim, preload);
    if (q_exec(x, sql, r) < 0 || wait_empty(x, r) < 0) return;
  }
  snap_t a = {0}, b = {0};
  sample_start(x);
  snap(x, &a);
  char table[200], ids[200], ver[200];
  snprintf(table, sizeof table, "\"%s\".items", P);
  snprintf(ids, sizeof ids, "\"%s\".ids", P);
  snprintf(ver, sizeof ver, "\"%s\".ver", P);
  p2q_bench_load_opts_t o = {
      .conninfo = x->writer_conninfo, .table_q = table, .ids_seq_q = ids, .ver_seq_q = ver, .writers = x->writers,
      .rate = x->rate, .seconds = x->duration_s, .t_start = p2q_bench_now() + 0.2, .rows_per_txn = x->rows_per_txn,
      .dim = x->dim, .payload_bytes = x->payload_bytes, .mix_insert = mixed ? x->mix[0] : 100,
      .mix_update = mixed ? x->mix[1] : 0, .mix_delete = mixed ? x->mix[2] : 0, .preload_rows = preload,
      .hot_rows = x->hot_rows, .hot_fraction = x->hot_fraction, .qdrant_url = x->qdrant_url,
      .collection = x->coll_vec, .api_key = x->api_key, .ca_file = x->ca_file, .poll_ms = x->poll_ms,
      .settle_s = x->settle_s, .stop = x->stop, .cpu_of = x->pg_local ? p2q_bench_proc_cpu : NULL,
      .writer_mode = x->writer_mode};
  p2q_bench_load_t *L = NULL;
  if (p2q_bench_load_start(&o, &L) < 0) { P2Q_BENCH_MSG(r->error, "out of memory"); return; }
  /* while the writers write: progress, and the daemons' backends sampled (a reconnect would
     start a new one) */
  while (!*x->stop && p2q_bench_now() < o.t_start + x->duration_s) {
    nap(0.2);
    if (x->tick) x->tick(x);
    sample_backends(x, 0);
  }
  const p2q_bench_load_result_t *res = p2q_bench_load_wait(L);
  double tend = p2q_bench_now();
  sample_backends(x, 0);
  snap(x, &b);
  r->events = res->events;
  /* achieved, not scheduled: writers that fall behind the rate keep writing past the duration
     until they made their rate x duration commits */
  double wrote = res->t_last - o.t_start;
  r->commits_per_s = (double)res->commits / (wrote > x->duration_s ? wrote : x->duration_s);
  r->lat_n = res->lat_n;
  r->missing = res->missing;
  r->observe_ms = res->observe_ms;
  r->p50_ms = p2q_bench_percentile(res->lat, (size_t)res->lat_n, 0.50);
  r->p90_ms = p2q_bench_percentile(res->lat, (size_t)res->lat_n, 0.90);
  r->p99_ms = p2q_bench_percentile(res->lat, (size_t)res->lat_n, 0.99);
  r->max_ms = p2q_bench_percentile(res->lat, (size_t)res->lat_n, 1.0);
  if (res->lat_n) {
    r->lat = malloc((size_t)res->lat_n * sizeof *r->lat);
    if (r->lat) memcpy(r->lat, res->lat, (size_t)res->lat_n * sizeof *r->lat);
    else r->lat_n = 0;
  }
  r->seconds = tend - o.t_start;
  r->events_per_s = (double)(res->events - res->missing) / (res->t_last > o.t_start ? res->t_last - o.t_start : x->duration_s);
  if (res->error[0]) P2Q_BENCH_MSG(r->error, "%s", res->error);
  account(x, &a, &b, res->writer_cpu_s, r);
  p2q_bench_load_free(L);
  p2q_bench_stop_all(x);
  outbox_state(x, r);
  if (!r->error[0] && r->missing)
    P2Q_BENCH_MSG(r->error, "%ld changes not seen in Qdrant within %.0f s", r->missing, x->settle_s);
  r->ok = !r->error[0] && r->dead_letters == 0 && r->missing == 0 && r->events > 0;
}

void p2q_bench_run_one(p2q_bench_ctx_t *x, const char *workload, const p2q_bench_setting_t *s,
                       p2q_bench_run_t *r) {
  r->set = *s;
  snprintf(r->workload, sizeof r->workload, "%s", workload);
  r->writer = !strcmp(workload, "steady") || !strcmp(workload, "mixed") ? x->writer_mode : -1;
  r->seconds = r->events_per_s = r->commits_per_s = r->tail_s = r->leases_reclaimed = NAN;
  r->p50_ms = r->p90_ms = r->p99_ms = r->max_ms = r->observe_ms = NAN;
  r->qdrant_req_ms = r->qdrant_requests = r->rss_mib = r->dead_tuples = r->outbox_bytes = NAN;
  r->pgss_us_per_event = NAN;
  for (int c = 0; c < P2Q_COMP_N; c++) r->cpu_us[c] = NAN;
  if (!strcmp(workload, "drain")) run_drain(x, s, 0, r);
  else if (!strcmp(workload, "text")) run_drain(x, s, 1, r);
  else if (!strcmp(workload, "steady")) run_rate(x, s, 0, r);
  else if (!strcmp(workload, "mixed")) run_rate(x, s, 1, r);
  p2q_bench_stop_all(x);
  if (*x->stop && !r->error[0]) P2Q_BENCH_MSG(r->error, "interrupted");
}

/*
 * bench_load.h — writers and latency observer of `pg2qdrant bench` (bench_load.c), and the
 * process plumbing (bench_proc.c): spawned daemons, /proc accounting, /metrics scraping.
 * Private to the bench*.c files.
 */
#ifndef P2Q_BENCH_LOAD_H
#define P2Q_BENCH_LOAD_H

#include "pg2qdrant/bench.h"

#include <signal.h>
#include <sys/types.h>

double p2q_bench_now(void); /* CLOCK_MONOTONIC seconds */

/* snprintf into an array, truncating silently (messages only) */
#define P2Q_BENCH_MSG(buf, ...) ((void)(snprintf((buf), sizeof(buf), __VA_ARGS__) < 0 ? ((buf)[0] = 0) : 0))

typedef struct {
  const char *conninfo;      /* libpq conninfo ("" = environment) */
  const char *table_q;       /* quoted, schema-qualified source table (id, seq, pad, emb) */
  const char *ids_seq_q;     /* quoted sequence names, as text literals' contents */
  const char *ver_seq_q;
  int writers;               /* connections */
  double rate;               /* commits/s over all writers; 0: as fast as they go */
  double seconds;            /* how long to write */
  double t_start;            /* monotonic start (all writers share the schedule) */
  int rows_per_txn;
  int dim, payload_bytes;
  int mix_insert, mix_update, mix_delete; /* percent, summing to 100 */
  long long preload_rows;    /* ids 1..preload exist before the run (updates/deletes target them) */
  long long hot_rows;        /* updates hit ids 1..hot_rows with probability hot_fraction */
  double hot_fraction;
  const char *qdrant_url, *collection, *api_key, *ca_file;
  double poll_ms;            /* observer pause between polls */
  double settle_s;           /* after the writers stop, wait this long at most for the rest */
  volatile sig_atomic_t *stop;
  double (*cpu_of)(int pid); /* CPU seconds of a local backend (NaN when unknown), or NULL */
  int writer_mode;           /* p2q_bench_writer_mode_t: statements prepared? vector binary? */
} p2q_bench_load_opts_t;

typedef struct {
  long commits, events, errors, missing, superseded;
  double t_first, t_last;    /* first and last COMMIT (monotonic) */
  double *lat;               /* ms, ascending after wait */
  long lat_n;
  double observe_ms;
  double writer_cpu_s;       /* writers' backends (NaN when not local) */
  int *writer_pids;
  int nwriters;
  char error[200];
} p2q_bench_load_result_t;

typedef struct p2q_bench_load p2q_bench_load_t;

int p2q_bench_load_start(const p2q_bench_load_opts_t *o, p2q_bench_load_t **out);
/* Join writers, then the observer (until every commit was seen or settle_s passed). */
const p2q_bench_load_result_t *p2q_bench_load_wait(p2q_bench_load_t *L);
void p2q_bench_load_free(p2q_bench_load_t *L);

/* ---- processes (bench_proc.c) ------------------------------------------------------------ */

/* utime+stime of a process in seconds (NaN when it is gone or unreadable). */
double p2q_bench_proc_cpu(int pid);
/* VmHWM in MiB (NaN when unreadable). */
double p2q_bench_proc_hwm_mib(int pid);
/* CPU seconds of this process (all threads) so far. */
double p2q_bench_self_cpu(void);
/* pid of the local process listening on TCP port (IPv4/IPv6 loopback or any), -1 if none is
   visible (another user's process, or not local). */
int p2q_bench_port_pid(int port);
/* A TCP port free on 127.0.0.1 right now. -1 on error. */
int p2q_bench_free_port(void);

/* Spawn `exe -c config run` with stdout/stderr to log (appended), dying with us (PDEATHSIG). */
pid_t p2q_bench_spawn(const char *exe, const char *config, const char *log);
/* SIGTERM, wait up to ms, then SIGKILL. Returns the exit status (-1 on a signal kill). */
int p2q_bench_stop(pid_t pid, int ms);
/* Run `exe -c config ARGS...` to completion (output to log). Exit status, or -1. */
int p2q_bench_run_cmd(const char *exe, const char *config, const char *log, const char *const *args);

/* Sums from a daemon's /metrics on 127.0.0.1:port: Qdrant write requests (upsert+delete) and
   their total seconds. 0, or -1 when unreachable. */
int p2q_bench_scrape(int port, double *requests, double *seconds);
/* The value of an unlabelled metric (a counter such as pg2qdrant_leases_reclaimed_total) in a
   daemon's /metrics on 127.0.0.1:port; NaN when unreachable or absent. */
double p2q_bench_scrape_value(int port, const char *name);

/* Minimal HTTP to Qdrant for the scratch collections: returns the HTTP status (or -1), body
   (malloc'd, may be NULL) in *body when non-NULL. */
long p2q_bench_http(const char *method, const char *url, const char *api_key, const char *ca_file,
                    const char *json, char **body);

/* ---- one bench session (bench.c owns it; bench_run.c runs one workload at one point) ------ */

#include <libpq-fe.h>

#define P2Q_BENCH_MAX_PROCS 64

typedef struct {
  int pid;
  double first, last; /* CPU seconds when first and last seen */
} p2q_bench_backend_t;

typedef struct {
  const char *exe;          /* the binary under test (/proc/self/exe) */
  char prefix[40];          /* scratch names: schema = prefix, collections prefix_vec/_text */
  char coll_vec[64], coll_text[64];
  char dir[512];            /* private temp dir: generated configs */
  char out[512];            /* output dir: runs.csv, report.html, logs/ */
  char *conninfo;           /* user's conninfo + application_name of the bench's daemons */
  char *writer_conninfo;    /* user's conninfo + application_name p2q_bench_writer */
  char appname[64];         /* application_name of the spawned daemons' connections */
  const char *qdrant_url, *api_key, *ca_file;
  PGconn *pg;               /* admin connection (main thread) */
  int pg_local;             /* PostgreSQL on this host: backends' CPU is readable */
  int qdrant_pid;           /* -1: not local / unknown */
  int has_pgss;
  char pgss[160];           /* "schema".pg_stat_statements when the extension is installed */
  volatile sig_atomic_t *stop;
  /* workload parameters */
  long rows, text_rows, preload;
  int dim, text_dim, payload_bytes, writers, rows_per_txn;
  int writer_mode;          /* --writer (p2q_bench_writer_mode_t) */
  double rate, duration_s, timeout_s, poll_ms, settle_s;
  int mix[3];
  long hot_rows;
  double hot_fraction;
  int have_text;
  int drain_saved;          /* the drain backlog is saved in prefix.p2q_bench_backlog */
  int text_saved;
  /* what runs now */
  pid_t procs[P2Q_BENCH_MAX_PROCS];
  int ports[P2Q_BENCH_MAX_PROCS];
  int nprocs;
  p2q_bench_backend_t backends[256];
  int nbackends;
  p2q_bench_autovac_t autovac;  /* autovacuum workers of the database, sampled with the backends */
  char autovac_names[6][160];   /* the outbox tables as autovacuum names them (and their TOAST) */
  int n_autovac_names;          /* 0: not looked up yet (or the lookup failed) */
  double wait_vacuum_s;         /* --wait-vacuum: drains wait this long at most for autovacuum */
  /* called about every 100 ms from a run's wait loops (progress display), may be NULL */
  void (*tick)(void *self);
  /* writes the generated config of replica r at setting s into path (0 or -1) */
  int (*write_config)(void *self, const p2q_bench_setting_t *s, int replica, int port, char *path,
                      size_t pathlen);
} p2q_bench_ctx_t;

/* Run one workload at one setting (bench_run.c); fills r (never fails silently: r->ok, r->error). */
void p2q_bench_run_one(p2q_bench_ctx_t *x, const char *workload, const p2q_bench_setting_t *s,
                       p2q_bench_run_t *r);
/* Stop every spawned daemon of the session (SIGTERM, then SIGKILL). */
void p2q_bench_stop_all(p2q_bench_ctx_t *x);

#endif

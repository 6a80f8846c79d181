/*
 * bench.h — `pg2qdrant bench`, the throughput-tuning harness (bench*.c).
 *
 * Pure parts (unit-tested, no I/O beyond a FILE *): the sweep grid (bench_sweep.c), statistics
 * (bench_stats.c), the CSV/HTML writers and the recommendation rule (bench_report.c). The rest
 * drives real processes: load generation and the latency observer (bench_load.c), spawned
 * daemons and /proc accounting (bench_proc.c), orchestration and scratch objects (bench.c).
 */
#ifndef P2Q_BENCH_H
#define P2Q_BENCH_H

#include <stddef.h>
#include <stdio.h>

/* ---- sweep ------------------------------------------------------------------------------- */

/* The knobs a sweep can vary. claimers = each worker's `claimers`, workers = [worker.*] sections
   per process (all claiming the bench's event type), replicas = `pg2qdrant run` processes, embedder_threads = the text
   embedder's `threads`, idle_linger_ms = each worker's `idle_linger_ms`. */
#define P2Q_BENCH_KNOBS(XX)                                                   \
  /* id, name, lowest, highest, base (0: the [worker.*] key's default, config_table.c) */ \
  XX(BATCH_SIZE, "batch_size", 1, 100000, 0)                                 \
  XX(LINGER_MS, "linger_ms", 0, 60000, 0)                                    \
  XX(MAX_INFLIGHT, "max_inflight", 1, 1024, 0)                               \
  XX(CLAIMERS, "claimers", 1, 16, 0)                                         \
  XX(WORKERS, "workers", 1, 64, 1)                                           \
  XX(REPLICAS, "replicas", 1, 64, 1)                                         \
  XX(EMBEDDER_THREADS, "embedder_threads", 1, 256, 2)                        \
  XX(IDLE_LINGER_MS, "idle_linger_ms", 0, 60000, 0)

/* "batch_size, linger_ms, …" for messages and --help, from the list above */
#define P2Q_BENCH_KNOB_NAME_(id, name, lo, hi, base) ", " name
#define P2Q_BENCH_KNOB_LIST (P2Q_BENCH_KNOBS(P2Q_BENCH_KNOB_NAME_) + 2)

typedef enum {
#define XX(id, name, lo, hi, base) P2Q_KNOB_##id,
  P2Q_BENCH_KNOBS(XX)
#undef XX
  P2Q_KNOB_N
} p2q_knob_t;

const char *p2q_bench_knob_name(int knob);
int p2q_bench_knob_find(const char *name); /* -1: unknown */

typedef struct {
  long v[P2Q_KNOB_N];
} p2q_bench_setting_t;

typedef struct {
  long *vals[P2Q_KNOB_N]; /* swept values in the order given (NULL: not swept) */
  int n[P2Q_KNOB_N];
  long base[P2Q_KNOB_N];  /* value of a knob that is not being varied */
} p2q_bench_sweep_t;

/* Base values: the shipped defaults (batch 256, linger 5, inflight 4, 1 worker, 1 replica,
   2 threads). */
void p2q_bench_sweep_init(p2q_bench_sweep_t *s);
void p2q_bench_sweep_free(p2q_bench_sweep_t *s);
/* "batch_size=64,128,256": adds (or replaces) one axis. 0, or P2Q_EINVAL with the reason. */
int p2q_bench_sweep_add(p2q_bench_sweep_t *s, const char *spec, char *err, size_t errlen);
/* Points to run: the full grid (first axis given varies slowest), or one axis at a time with the
   others at their base (duplicates dropped). No axis: one point, the base. Returns the count
   (>= 1) and a malloc'd array, or P2Q_ENOMEM / P2Q_EOVERFLOW (more than 10,000 points). */
int p2q_bench_sweep_expand(const p2q_bench_sweep_t *s, int one_axis, p2q_bench_setting_t **out);
/* Number of knobs with more than one value (the axes a report plots). */
int p2q_bench_sweep_axes(const p2q_bench_sweep_t *s, int axes[P2Q_KNOB_N]);

/* ---- the steady/mixed writers' protocol (--writer) ------------------------------------- */

/* How the bench's writer threads send their INSERT/UPDATE/DELETE: an unnamed statement parsed and
   planned at every call with the vector as text (unprepared-text: every figure before session 14),
   a named statement prepared once per connection with the vector as text (prepared-text, the
   default: what a driver that prepares a repeated statement sends, e.g. JDBC, psycopg 3), or
   prepared with the vector as a binary real[] (prepared-binary: asyncpg, pgx, tokio-postgres). */
#define P2Q_BENCH_WRITER_MODES(XX)                                            \
  /* id, name, prepared, binary vector */                                   \
  XX(UNPREPARED_TEXT, "unprepared-text", 0, 0)                               \
  XX(PREPARED_TEXT, "prepared-text", 1, 0)                                   \
  XX(PREPARED_BINARY, "prepared-binary", 1, 1)

typedef enum {
#define XX(id, name, prep, bin) P2Q_WRITER_##id,
  P2Q_BENCH_WRITER_MODES(XX)
#undef XX
  P2Q_WRITER_N
} p2q_bench_writer_mode_t;

#define P2Q_BENCH_WRITER_DEFAULT P2Q_WRITER_PREPARED_TEXT
/* "unprepared-text, prepared-text, …" for messages and --help */
#define P2Q_BENCH_WRITER_NAME_(id, name, prep, bin) ", " name
#define P2Q_BENCH_WRITER_LIST (P2Q_BENCH_WRITER_MODES(P2Q_BENCH_WRITER_NAME_) + 2)

/* The mode's name ("" for -1: a workload without writers), and the mode of a name (-1: unknown). */
const char *p2q_bench_writer_name(int mode);
int p2q_bench_writer_find(const char *name);
int p2q_bench_writer_prepared(int mode);
int p2q_bench_writer_binary(int mode);

/* ---- statistics -------------------------------------------------------------------------- */

typedef struct {
  double median, min, max;
  double spread_pct; /* (max - min) / median * 100; 0 for one value */
  int n;             /* values that were not NaN */
} p2q_bench_summary_t;

/* Nearest-rank percentile (q in [0, 1]) of an ascending array; NaN when n == 0. */
double p2q_bench_percentile(const double *sorted, size_t n, double q);
/* Median, min, max and spread of the values that are not NaN (all NaN: fields NaN, n = 0). */
void p2q_bench_summarize(const double *v, size_t n, p2q_bench_summary_t *out);
void p2q_bench_sort(double *v, size_t n);
/* v / 10000 with four decimals, as printf("%.4f", v / 10000.0) prints it ("-0.0001", "0.5000"),
   without the floating-point printer (the bench's writers print 384 of them per commit: the
   printer was ~25 % of the bench tool's CPU at 1,000 commits/s). Writes at most 24 bytes and a
   NUL; returns the length. */
size_t p2q_bench_fixed4(char *out, long long v);
/* Parse "25ms", "2s", "0.5s", "800us", bare number = ms. Milliseconds, or -1 on error. */
double p2q_bench_parse_ms(const char *s);

/* ---- results ----------------------------------------------------------------------------- */

/* Where the CPU time goes, per event: the bench's own daemons, the PostgreSQL backends serving
   them, PostgreSQL's autovacuum workers while they work on the outbox tables (sync_outbox,
   _lease, _dead and their TOAST tables) and on other tables of the database (the bench's source
   tables: reported apart, not pg2qdrant's cost), the backends of the bench's writers (trigger
   cost), the Qdrant process, the bench itself (writers + observer). NaN when not measurable
   (server not local). */
#define P2Q_BENCH_COMPONENTS(XX)                                              \
  XX(DAEMON, "pg2qdrant")                                                     \
  XX(PG_DAEMON, "postgres (daemon)")                                          \
  XX(PG_AUTOVAC, "postgres (autovacuum, outbox)")                             \
  XX(PG_AUTOVAC_OTHER, "postgres (autovacuum, other)")                        \
  XX(PG_WRITERS, "postgres (writers)")                                        \
  XX(QDRANT, "qdrant")                                                        \
  XX(BENCH, "bench tool")

typedef enum {
#define XX(id, label) P2Q_COMP_##id,
  P2Q_BENCH_COMPONENTS(XX)
#undef XX
  P2Q_COMP_N
} p2q_bench_comp_t;

typedef struct {
  int point;                 /* index into the points */
  int repeat;                /* 1-based */
  char workload[16];         /* drain, steady, mixed, text */
  int writer;                /* steady/mixed: the writers' p2q_bench_writer_mode_t; -1: no writers */
  int throughput;            /* 1: as fast as it goes (drain, text, mixed at rate 0): events_per_s
                                is the point's throughput; 0: a fixed rate (latency) */
  p2q_bench_setting_t set;
  long events;               /* events the run produced */
  double seconds;            /* drain: start to empty; others: first commit to last ack */
  double tail_s;             /* drain: seconds after empty still inside the CPU figures (until the
                                lease reclaimer deleted the drain's leases; 0: not waited) */
  double leases_reclaimed;   /* leases the daemons' reclaimers deleted inside the CPU window */
  double events_per_s;
  double commits_per_s;      /* achieved (rate workloads; NaN for drain/text) */
  double p50_ms, p90_ms, p99_ms, max_ms; /* COMMIT → visible in Qdrant (NaN: not measured) */
  long lat_n;                /* latency samples */
  double observe_ms;         /* mean round trip of the observer's polls (its resolution) */
  double cpu_us[P2Q_COMP_N]; /* CPU µs per event */
  double qdrant_req_ms;      /* mean Qdrant write request duration (daemons' /metrics) */
  double qdrant_requests;    /* write requests (all daemons) */
  double rss_mib;            /* peak RSS of the largest daemon */
  double dead_tuples;        /* outbox n_dead_tup at the end */
  double outbox_bytes;       /* outbox total relation size at the end */
  double pgss_us_per_event;  /* pg_stat_statements: execution time of the statements on the scratch
                                schema (claims, acks; writers' in steady/mixed) per event */
  long dead_letters;         /* events that ended dead */
  long missing;              /* events never seen in Qdrant (latency workloads) */
  int ok;                    /* 1: finished, nothing dead or missing */
  char error[160];
  double *lat;               /* ascending latency samples in ms (malloc'd), lat_n of them */
} p2q_bench_run_t;

/* Per point, over its repeats: throughput (drain/text/unthrottled mixed, else achieved rate) and
   latency (median over repeats of p50/p99; every sample merged for the CDF). */
typedef struct {
  p2q_bench_setting_t set;
  p2q_bench_summary_t tput;  /* events/s */
  p2q_bench_summary_t p50, p99;
  double cpu_us[P2Q_COMP_N]; /* median per component */
  double rss_mib;
  int runs, failed;
  double *lat;               /* merged ascending samples (malloc'd) */
  size_t lat_n;
} p2q_bench_point_t;

/* Aggregate runs into npoints points (runs[i].point indexes them). 0 or P2Q_ENOMEM. */
int p2q_bench_points(const p2q_bench_run_t *runs, int nruns, const p2q_bench_setting_t *sets,
                     int npoints, p2q_bench_point_t *out);
void p2q_bench_points_free(p2q_bench_point_t *pts, int n);

/* The recommendation: among points whose runs all succeeded and whose median p99 is within
   p99_max_ms (<= 0: no bound; a point without latency figures passes and `why` says the bound
   was not checked), the highest median throughput; any point within 3% of it that uses fewer
   processes × workers is preferred (then lower p99). Index, or -1 (why says why). */
int p2q_bench_recommend(const p2q_bench_point_t *pts, int n, double p99_max_ms, char *why,
                        size_t whylen);
/* The config lines to paste for point p: a comment header (figures, replicas, workers), a
   [worker.*] block, and [embedder.NAME] threads when swept[P2Q_KNOB_EMBEDDER_THREADS]
   (swept may be NULL; embedder NULL prints NAME). */
void p2q_bench_config_lines(const p2q_bench_point_t *p, const int *swept, const char *embedder, FILE *f);

/* ---- writers ----------------------------------------------------------------------------- */

/* One CSV header line, then one line per run (RFC 4180 quoting; NaN → empty). */
void p2q_bench_csv_header(FILE *f);
void p2q_bench_csv_row(FILE *f, const p2q_bench_run_t *r);

typedef struct {
  const char *title;         /* e.g. the command line */
  const char *machine;       /* cores, load, date */
  double p99_max_ms;
  int axes[P2Q_KNOB_N];      /* swept knobs */
  int naxes;
  int recommended;           /* point index or -1 */
  const char *why;
  const char *notes;         /* extra text (pg_stat_statements top, caveats), may be NULL */
  const int *swept;          /* per knob: given with --sweep (for the config lines), may be NULL */
  const char *embedder;      /* text workload's embedder name, may be NULL */
} p2q_bench_report_meta_t;

/* The one-file HTML report: inline SVG charts (svg#tput-<knob> per axis, svg#latency-cdf,
   svg#latency-pct, svg#cpu-stack), a table per point and one per run; no script, no network. */
void p2q_bench_html(FILE *f, const p2q_bench_report_meta_t *m, const p2q_bench_point_t *pts,
                    int npoints, const p2q_bench_run_t *runs, int nruns);

/* ---- autovacuum attribution (bench_autovac.c) ------------------------------------------- */

/* What an autovacuum worker's pg_stat_activity.query names: 1 when it is one of `names`
   ("schema.table" exactly as autovacuum prints them, unquoted: the outbox tables and their
   pg_toast.pg_toast_<oid> tables), 0 for another table, -1 when it names none (idle, empty). */
int p2q_bench_autovac_target(const char *activity, const char *const *names, int nnames);

/* CPU of autovacuum workers seen by sampling: each interval between two samples of a worker is
   charged to what it was working on at the earlier sample (at the later one when the earlier
   named nothing). A worker first seen at a start sample is a baseline; one first seen later was
   born during the run: its whole CPU counts. A worker that exits between samples loses its last
   interval (at most one sampling period). */
typedef struct {
  struct { int pid; double cpu; int target; } w[64];
  int n;
  double outbox_s, other_s;
} p2q_bench_autovac_t;

void p2q_bench_autovac_reset(p2q_bench_autovac_t *a);
void p2q_bench_autovac_sample(p2q_bench_autovac_t *a, int pid, double cpu, int target, int start);

/* ---- latency tracking (bench_load.c) ------------------------------------------------------- */

/* Committed changes waiting to be seen in Qdrant, by point id. Only the newest change of a row
   is awaited: an older one still pending when a newer commits is dropped (superseded). */
typedef struct {
  long long id, seq;   /* seq: the row's version column; delete: awaited absent */
  double t_commit;     /* CLOCK_MONOTONIC seconds when COMMIT returned */
  int is_delete;
} p2q_bench_pending_t;

typedef struct {
  p2q_bench_pending_t *v;
  size_t n, cap;
  long long *slot;     /* open addressing: id → index+1 into v (0 empty, -1 tombstone) */
  size_t slots, used;
  long superseded;
} p2q_bench_track_t;

void p2q_bench_track_init(p2q_bench_track_t *t);
void p2q_bench_track_free(p2q_bench_track_t *t);
/* Record a commit. 0, or P2Q_ENOMEM. A change older than the pending one for the id is ignored. */
int p2q_bench_track_add(p2q_bench_track_t *t, long long id, long long seq, int is_delete,
                        double t_commit);
/* Index of the entry for id, or -1. */
long p2q_bench_track_find(const p2q_bench_track_t *t, long long id);
/* Remove entry i (the last one takes its place). */
void p2q_bench_track_remove(p2q_bench_track_t *t, size_t i);

#endif

/*
 * reindex_exec.c — the daemon's executor of zero-downtime re-embedding (loop thread only).
 *
 * Owns: one PostgreSQL session (search_path pinned like the triggers', so the backfill's
 * `filter` means what it means there), a 1 s timer, the jobs read at the last tick. Per tick:
 *  1. read sync_reindex (every process);
 *  2. if a rule's write mode changed (p2q_reindex_mode_of the phase), ask the daemon to apply it
 *     (want_modes: it drains its batches and swaps to reindex_def.c's effective config) and wait
 *     for modes_applied; then record this process's modes in sync_reindex_seen;
 *  3. the leader (pg_try_advisory_lock on this session) moves each job one step on:
 *       dual      every live process (sync_outbox_instance) writes dual → backfill
 *       backfill  enqueue the rule's rows in key chunks (cmd_backfill.c's statement; the key of
 *                 the last chunk is recorded, so a restart continues), then record the outbox's
 *                 highest id as backfill_upto → catch_up
 *       catch_up  no event of the rule ≤ backfill_upto is pending → swap (legacy: → preswap)
 *       preswap   (legacy) every live process stopped writing the old collection NAME → swap
 *       swap      read aliases; POST /collections/aliases (delete + create) — legacy: DELETE the
 *                 collection NAME first, then create the alias — then, in one statement, record
 *                 swapped_at and the new serving version → swapped
 *       swapped   after reindex_grace, once every live process writes through the alias again:
 *                 DELETE NAME__v{from}, delete the job.
 * Every step is idempotent and re-derived from PostgreSQL and Qdrant: a kill -9 anywhere resumes
 * at the next tick of any daemon. The alias moves only after the backfill's events are done; the
 * old version is deleted only after every process stopped writing it, whatever the grace.
 */
#include "pg2qdrant/reindex_exec.h"
#include "pg2qdrant/capture.h"
#include "pg2qdrant/commands.h"
#include "pg2qdrant/errors.h"
#include "pg2qdrant/log.h"
#include "pg2qdrant/pg.h"
#include "pg2qdrant/qdrant_alias.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_JOBS 32
#define CHUNK 2000
#define CHAIN_MS 1000 /* backfill chunks run back to back this long per tick */

typedef struct {
  char rule[P2Q_NAME_MAX], collection[256], phase[16], started[64], signature[1024];
  char coll_new[300], coll_old[300];
  int from, to, legacy;
  char *old_def, *key;
  long long done, upto, pending;
  int64_t since_swap_ms; /* -1: not swapped */
} rjob_t;

struct p2q_reindex_exec_s {
  uv_loop_t *loop;
  uv_timer_t timer;
  p2q_pg_t *pg;
  p2q_reindex_hooks_t h;
  char instance[160];
  char schema_q[200];      /* quoted schema */
  rjob_t jobs[MAX_JOBS];
  int n_jobs;
  char applied_key[2048];  /* modes in force ("rule:mode:started;…") */
  char wanted_key[2048];
  int ready, busy, leader, closing, waiting_modes;
  int stale;               /* the modes could not be applied: this process writes (and records) single;
                              a job whose backfill runs then starts it again once all write dual */
  int cur;                 /* job being stepped */
  int more;                /* a backfill stopped at its time budget: tick again at once */
  uint64_t chain_start;
  int alias_version, max_version; /* observed before a swap */
  char *colls_body;
  uint64_t last_warn;
};

static void step_next(p2q_reindex_exec_t *x);
static void job_step(p2q_reindex_exec_t *x);

static void tick_end(p2q_reindex_exec_t *x) { x->busy = 0; }

static const char *cfgschema(p2q_reindex_exec_t *x) { return x->schema_q; }

static void warn(p2q_reindex_exec_t *x, const char *what, const char *errmsg) {
  char q[600];
  uint64_t now = uv_now(x->loop);
  if (x->last_warn && now - x->last_warn < 30000) return; /* once per 30 s while it lasts */
  x->last_warn = now;
  P2Q_WARN("reindex_failed", "step=%s rule=%s err=%s", what, x->cur < x->n_jobs ? x->jobs[x->cur].rule : "-",
           p2q_log_q(q, sizeof q, errmsg ? errmsg : "?"));
}

static int query(p2q_reindex_exec_t *x, const char *sql, int n, const char *const *params, p2q_pg_result_cb cb) {
  int rc = p2q_pg_query(x->pg, sql, n, params, cb, x);
  if (rc) tick_end(x);
  return rc;
}

/* ---- jobs and modes ------------------------------------------------------------------------ */

static void free_jobs(p2q_reindex_exec_t *x) {
  for (int i = 0; i < x->n_jobs; i++) { free(x->jobs[i].old_def); free(x->jobs[i].key); }
  x->n_jobs = 0;
}

static void modes_key(p2q_reindex_exec_t *x, char *out, size_t n) {
  size_t o = 0;
  out[0] = 0;
  for (int i = 0; i < x->n_jobs; i++) {
    p2q_reindex_mode_t m = p2q_reindex_mode_of(x->jobs[i].phase);
    if ((m != P2Q_RX_SINGLE || !strcmp(x->jobs[i].phase, "swapped")) && o < n)
      o += (size_t)snprintf(out + o, n - o, "%s:%s:%s;", x->jobs[i].rule, p2q_reindex_mode_name(m), x->jobs[i].started);
  }
}

static void ask_modes(p2q_reindex_exec_t *x) {
  p2q_reindex_eff_t e[MAX_JOBS];
  int n = 0;
  for (int i = 0; i < x->n_jobs; i++) {
    rjob_t *j = &x->jobs[i];
    p2q_reindex_mode_t m = p2q_reindex_mode_of(j->phase);
    int swapped = !strcmp(j->phase, "swapped");
    if (m == P2Q_RX_SINGLE && !swapped) continue;
    /* swapped: written through the alias as configured, but only by a daemon whose rule is the
       new definition (collection NULL: nothing changes; the signature is checked) */
    e[n++] = (p2q_reindex_eff_t){.rule = j->rule, .collection = swapped ? NULL : j->coll_new, .signature = j->signature,
                                 .shadow_def = m == P2Q_RX_DUAL ? j->old_def : NULL, .shadow_collection = j->coll_old};
  }
  x->waiting_modes = 1;
  x->h.want_modes(x->h.arg, e, n);
}

static void acked(p2q_pg_t *pg, PGresult *res, int err, const char *errmsg, void *arg) {
  p2q_reindex_exec_t *x = arg;
  if (err) { if (err != P2Q_ECANCELED) warn(x, "record_mode", errmsg); tick_end(x); return; }
  if (++x->cur < x->n_jobs) {
    rjob_t *j = &x->jobs[x->cur];
    const char *mode = p2q_reindex_mode_name(x->stale ? P2Q_RX_SINGLE : p2q_reindex_mode_of(j->phase));
    char sql[600];
    snprintf(sql, sizeof sql,
             "INSERT INTO %s.sync_reindex_seen AS s (rule, instance, started_at, mode) VALUES ($1, $2, $3, $4) "
             "ON CONFLICT (rule, instance) DO UPDATE SET started_at = EXCLUDED.started_at, mode = EXCLUDED.mode, "
             "seen_at = now() WHERE s.started_at <> EXCLUDED.started_at OR s.mode <> EXCLUDED.mode", cfgschema(x));
    const char *p[] = {j->rule, x->instance, j->started, mode};
    query(x, sql, 4, p, acked);
    return;
  }
  x->cur = 0;
  if (x->leader && x->n_jobs) job_step(x);
  else tick_end(x);
}

static void record_modes(p2q_reindex_exec_t *x) {
  x->cur = -1;
  acked(x->pg, NULL, 0, NULL, x);
}

void p2q_reindex_exec_modes_applied(p2q_reindex_exec_t *x, int ok) {
  x->waiting_modes = 0;
  snprintf(x->applied_key, sizeof x->applied_key, "%s", x->wanted_key);
  if (!x->ready) P2Q_INFO("reindex_ready", "jobs=%d", x->n_jobs);
  x->ready = 1;
  x->stale = !ok;
  if (x->closing) { tick_end(x); return; }
  record_modes(x);
}

static char *dup_or_null(PGresult *res, int i, int c) {
  return PQgetisnull(res, i, c) ? NULL : strdup(PQgetvalue(res, i, c));
}

static void jobs_read(p2q_pg_t *pg, PGresult *res, int err, const char *errmsg, void *arg) {
  p2q_reindex_exec_t *x = arg;
  if (err) {
    if (err == P2Q_ECANCELED) return;
    const char *st = p2q_pg_sqlstate(pg);
    warn(x, "read_jobs", errmsg);
    /* no table or no privilege (an older schema, a role without the GRANT): no job can run for
       this process, and none can move on without its record, so writing single is safe */
    if (!x->ready && (!strcmp(st, "42P01") || !strcmp(st, "42501"))) {
      free_jobs(x);
      x->wanted_key[0] = 0;
      x->waiting_modes = 1;
      x->h.want_modes(x->h.arg, NULL, 0);
      return;
    }
    tick_end(x);
    return;
  }
  long long kept[MAX_JOBS]; /* a job's last pending count survives the re-read (metrics, /status) */
  char kept_rule[MAX_JOBS][P2Q_NAME_MAX];
  int n_kept = x->n_jobs;
  for (int i = 0; i < n_kept; i++) { kept[i] = x->jobs[i].pending; memcpy(kept_rule[i], x->jobs[i].rule, P2Q_NAME_MAX); }
  free_jobs(x);
  for (int i = 0; i < PQntuples(res) && x->n_jobs < MAX_JOBS; i++) {
    rjob_t *j = &x->jobs[x->n_jobs++];
    memset(j, 0, sizeof *j);
    snprintf(j->rule, sizeof j->rule, "%s", PQgetvalue(res, i, 0));
    snprintf(j->collection, sizeof j->collection, "%s", PQgetvalue(res, i, 1));
    j->from = atoi(PQgetvalue(res, i, 2));
    j->to = atoi(PQgetvalue(res, i, 3));
    j->legacy = PQgetvalue(res, i, 4)[0] == 't';
    snprintf(j->phase, sizeof j->phase, "%s", PQgetvalue(res, i, 5));
    snprintf(j->started, sizeof j->started, "%s", PQgetvalue(res, i, 6));
    snprintf(j->signature, sizeof j->signature, "%s", PQgetvalue(res, i, 12));
    j->old_def = dup_or_null(res, i, 7);
    j->key = dup_or_null(res, i, 8);
    j->done = atoll(PQgetvalue(res, i, 9));
    j->upto = PQgetisnull(res, i, 10) ? -1 : atoll(PQgetvalue(res, i, 10));
    j->since_swap_ms = atoll(PQgetvalue(res, i, 11));
    j->pending = -1;
    for (int k = 0; k < n_kept; k++)
      if (!strcmp(kept_rule[k], j->rule) && !strcmp(j->phase, "catch_up")) j->pending = kept[k];
    p2q_reindex_version_name(j->collection, j->to, j->coll_new, sizeof j->coll_new);
    if (j->legacy) memcpy(j->coll_old, j->collection, sizeof j->collection);
    else p2q_reindex_version_name(j->collection, j->from, j->coll_old, sizeof j->coll_old);
  }
  modes_key(x, x->wanted_key, sizeof x->wanted_key);
  if (!x->ready || strcmp(x->wanted_key, x->applied_key)) {
    P2Q_INFO("reindex_modes", "modes=\"%s\"", x->wanted_key);
    ask_modes(x);
    return;
  }
  record_modes(x);
}

static void lock_taken(p2q_pg_t *pg, PGresult *res, int err, const char *errmsg, void *arg) {
  p2q_reindex_exec_t *x = arg;
  if (!err && PQntuples(res) == 1 && PQgetvalue(res, 0, 0)[0] == 't' && !x->leader) {
    x->leader = 1;
    P2Q_INFO("reindex_leader", "instance=%s", x->instance);
  }
}

static void tick(uv_timer_t *t) {
  p2q_reindex_exec_t *x = t->data;
  char sql[1500];
  if (x->busy || x->closing || x->waiting_modes || !p2q_pg_is_connected(x->pg)) return;
  x->busy = 1;
  if (!x->leader) {
    snprintf(sql, sizeof sql, "SELECT pg_try_advisory_lock(hashtext('pg2qdrant reindex ' || $1))");
    const char *p[] = {cfgschema(x)};
    p2q_pg_query(x->pg, sql, 1, p, lock_taken, x);
  }
  snprintf(sql, sizeof sql,
           "SELECT rule, collection, from_version, to_version, legacy, phase, started_at::text, old_definition, "
           "backfill_key, backfill_done, backfill_upto, "
           "COALESCE((extract(epoch FROM clock_timestamp() - swapped_at) * 1000)::bigint, -1), signature "
           "FROM %s.sync_reindex ORDER BY rule", cfgschema(x));
  query(x, sql, 0, NULL, jobs_read);
}

/* ---- the leader's steps -------------------------------------------------------------------- */

static rjob_t *J(p2q_reindex_exec_t *x) { return &x->jobs[x->cur]; }

static void step_next(p2q_reindex_exec_t *x) {
  if (x->closing) return;
  if (++x->cur >= x->n_jobs) {
    tick_end(x);
    if (x->more) uv_timer_start(&x->timer, tick, 1, P2Q_REINDEX_TICK_MS); /* no idle second mid-backfill */
    x->more = 0;
    return;
  }
  job_step(x);
}

static void updated(p2q_pg_t *pg, PGresult *res, int err, const char *errmsg, void *arg) {
  p2q_reindex_exec_t *x = arg;
  if (err) { if (err != P2Q_ECANCELED) warn(x, "record", errmsg); tick_end(x); return; }
  step_next(x);
}

static void set_phase(p2q_reindex_exec_t *x, const char *phase) {
  char sql[1500];
  snprintf(sql, sizeof sql, "UPDATE %s.sync_reindex SET phase = $3 WHERE rule = $1 AND started_at = $2",
           cfgschema(x));
  const char *p[] = {J(x)->rule, J(x)->started, phase};
  P2Q_INFO("reindex_step", "rule=%s from=%d to=%d phase=%s", J(x)->rule, J(x)->from, J(x)->to, phase);
  query(x, sql, 3, p, updated);
}

/* every live daemon process writes the job's rule in `mode`? (all_seen_cb moves on) */
static void all_seen_cb(p2q_pg_t *pg, PGresult *res, int err, const char *errmsg, void *arg);
static void all_seen(p2q_reindex_exec_t *x, const char *mode) {
  char sql[1500];
  snprintf(sql, sizeof sql,
           "SELECT count(*) FROM (SELECT DISTINCT instance FROM %s.sync_outbox_instance WHERE gone_since IS NULL) i "
           "WHERE NOT EXISTS (SELECT 1 FROM %s.sync_reindex_seen s WHERE s.rule = $1 AND s.instance = i.instance "
           "AND s.started_at = $2 AND s.mode = $3)", cfgschema(x), cfgschema(x));
  const char *p[] = {J(x)->rule, J(x)->started, mode};
  query(x, sql, 3, p, all_seen_cb);
}

static void swap_start(p2q_reindex_exec_t *x);
static void retire_start(p2q_reindex_exec_t *x);

static void backfill_or_catch_up(p2q_reindex_exec_t *x);

/* backfill, catch_up: a live process that writes single for this job (its config could not be
   applied) has missed the new version: start the backfill again once all write dual */
static void stale_cb(p2q_pg_t *pg, PGresult *res, int err, const char *errmsg, void *arg) {
  p2q_reindex_exec_t *x = arg;
  char sql[1500];
  if (err) { if (err != P2Q_ECANCELED) warn(x, "check_processes", errmsg); tick_end(x); return; }
  if (atoll(PQgetvalue(res, 0, 0)) == 0) { backfill_or_catch_up(x); return; }
  P2Q_WARN("reindex_restart", "rule=%s why=\"a daemon process writes the rule single (its configuration is not the "
           "one being built): the backfill starts again once every process writes dual\"", J(x)->rule);
  snprintf(sql, sizeof sql, "UPDATE %s.sync_reindex SET phase = 'dual', backfill_key = NULL, backfill_done = 0, "
           "backfill_upto = NULL WHERE rule = $1 AND started_at = $2", cfgschema(x));
  const char *p[] = {J(x)->rule, J(x)->started};
  query(x, sql, 2, p, updated);
}

static void check_stale(p2q_reindex_exec_t *x) {
  char sql[1500];
  snprintf(sql, sizeof sql,
           "SELECT count(*) FROM %s.sync_reindex_seen s WHERE s.rule = $1 AND s.started_at = $2 AND s.mode = 'single' "
           "AND EXISTS (SELECT 1 FROM %s.sync_outbox_instance i WHERE i.instance = s.instance AND i.gone_since IS NULL)",
           cfgschema(x), cfgschema(x));
  const char *p[] = {J(x)->rule, J(x)->started};
  query(x, sql, 2, p, stale_cb);
}

static void all_seen_cb(p2q_pg_t *pg, PGresult *res, int err, const char *errmsg, void *arg) {
  p2q_reindex_exec_t *x = arg;
  if (err) { if (err != P2Q_ECANCELED) warn(x, "check_processes", errmsg); tick_end(x); return; }
  if (atoll(PQgetvalue(res, 0, 0)) > 0) { step_next(x); return; } /* not yet: next tick */
  const char *ph = J(x)->phase;
  if (!strcmp(ph, "dual")) set_phase(x, "backfill");
  else if (!strcmp(ph, "preswap")) swap_start(x);
  else retire_start(x);
}

/* backfill: one chunk, recorded; chained while the tick's budget lasts */
static void chunk_done(p2q_pg_t *pg, PGresult *res, int err, const char *errmsg, void *arg);

static void chunk_run(p2q_reindex_exec_t *x) {
  const p2q_config_t *cfg = x->h.config(x->h.arg);
  const p2q_rule_config_t *r = p2q_config_rule(cfg, J(x)->rule);
  p2q_buf_t sql = P2Q_BUF_INIT;
  if (!r || p2q_backfill_chunk_sql(cfg, r, NULL, CHUNK, J(x)->key != NULL, 0, &sql)) {
    warn(x, "backfill", r ? "cannot generate the backfill statement" : "the rule is not in the configuration");
    p2q_buf_free(&sql);
    step_next(x);
    return;
  }
  const char *p[] = {J(x)->key};
  query(x, p2q_buf_str(&sql), J(x)->key ? 1 : 0, p, chunk_done);
  p2q_buf_free(&sql);
}

static void chunk_recorded(p2q_pg_t *pg, PGresult *res, int err, const char *errmsg, void *arg) {
  p2q_reindex_exec_t *x = arg;
  if (err) { if (err != P2Q_ECANCELED) warn(x, "backfill_record", errmsg); tick_end(x); return; }
  if (J(x)->key && uv_now(x->loop) - x->chain_start < CHAIN_MS && !x->closing) chunk_run(x);
  else {
    x->more |= J(x)->key != NULL;
    step_next(x);
  }
}

static void chunk_done(p2q_pg_t *pg, PGresult *res, int err, const char *errmsg, void *arg) {
  p2q_reindex_exec_t *x = arg;
  if (err) { if (err != P2Q_ECANCELED) warn(x, "backfill", errmsg); tick_end(x); return; }
  rjob_t *j = J(x);
  long long n = atoll(PQgetvalue(res, 0, 0));
  char *next = dup_or_null(res, 0, 1), sql[1500], nb[32];
  free(j->key);
  j->key = next;
  j->done += n;
  snprintf(nb, sizeof nb, "%lld", n);
  snprintf(sql, sizeof sql,
           "UPDATE %s.sync_reindex SET backfill_key = $3::text, backfill_done = backfill_done + $4::bigint, "
           "phase = CASE WHEN $3::text IS NULL THEN 'catch_up' ELSE phase END, "
           "backfill_upto = CASE WHEN $3::text IS NULL THEN (SELECT COALESCE(max(id), 0) FROM %s.sync_outbox) END "
           "WHERE rule = $1 AND started_at = $2 AND phase = 'backfill'", cfgschema(x), cfgschema(x));
  const char *p[] = {j->rule, j->started, next, nb};
  if (!next) P2Q_INFO("reindex_step", "rule=%s from=%d to=%d phase=catch_up backfilled=%lld", j->rule, j->from, j->to, j->done);
  query(x, sql, 4, p, chunk_recorded);
}

/* catch_up: pending events of the rule up to the backfill's end */
static void pending_cb(p2q_pg_t *pg, PGresult *res, int err, const char *errmsg, void *arg) {
  p2q_reindex_exec_t *x = arg;
  if (err) { if (err != P2Q_ECANCELED) warn(x, "catch_up", errmsg); tick_end(x); return; }
  J(x)->pending = atoll(PQgetvalue(res, 0, 0));
  if (J(x)->pending > 0) step_next(x);
  else if (J(x)->legacy) set_phase(x, "preswap");
  else swap_start(x);
}

static void backfill_or_catch_up(p2q_reindex_exec_t *x) {
  rjob_t *j = J(x);
  char sql[512], upto[32];
  if (!strcmp(j->phase, "backfill")) { x->chain_start = uv_now(x->loop); chunk_run(x); return; }
  snprintf(sql, sizeof sql, "SELECT count(*) FROM %s.sync_outbox WHERE rule = $1 AND id <= $2::bigint", cfgschema(x));
  snprintf(upto, sizeof upto, "%lld", j->upto);
  const char *p[] = {j->rule, upto};
  query(x, sql, 2, p, pending_cb);
}

static void job_step(p2q_reindex_exec_t *x) {
  rjob_t *j = J(x);
  if (!strcmp(j->phase, "dual")) all_seen(x, "dual");
  else if (!strcmp(j->phase, "backfill") || !strcmp(j->phase, "catch_up")) check_stale(x);
  else if (!strcmp(j->phase, "preswap")) all_seen(x, "new_only");
  else if (!strcmp(j->phase, "swapped")) {
    const p2q_config_t *cfg = x->h.config(x->h.arg);
    if (j->since_swap_ms >= cfg->reindex_grace_ms) all_seen(x, "single");
    else step_next(x);
  } else step_next(x); /* create: the CLI's step */
}

/* ---- swap and retirement (Qdrant) ---------------------------------------------------------- */

static void swap_recorded(p2q_pg_t *pg, PGresult *res, int err, const char *errmsg, void *arg) {
  p2q_reindex_exec_t *x = arg;
  if (err) { if (err != P2Q_ECANCELED) warn(x, "record_swap", errmsg); tick_end(x); return; }
  P2Q_INFO("reindex_step", "rule=%s from=%d to=%d phase=swapped alias=%s collection=%s", J(x)->rule, J(x)->from,
           J(x)->to, J(x)->collection, J(x)->coll_new);
  step_next(x);
}

static void swap_record(p2q_reindex_exec_t *x) {
  char sql[1200];
  snprintf(sql, sizeof sql,
           "WITH j AS (UPDATE %s.sync_reindex SET phase = 'swapped', swapped_at = clock_timestamp() "
           "WHERE rule = $1 AND started_at = $2 AND phase <> 'swapped' RETURNING *) "
           "INSERT INTO %s.sync_reindex_rule AS r (rule, collection, version, legacy, signature, definition) "
           "SELECT rule, collection, to_version, false, signature, definition FROM j "
           "ON CONFLICT (rule) DO UPDATE SET collection = EXCLUDED.collection, version = EXCLUDED.version, "
           "legacy = false, signature = EXCLUDED.signature, definition = EXCLUDED.definition, updated_at = now()",
           cfgschema(x), cfgschema(x));
  const char *p[] = {J(x)->rule, J(x)->started};
  query(x, sql, 2, p, swap_recorded);
}

static int qdrant_failed(p2q_reindex_exec_t *x, const p2q_qdrant_resp_t *r, const char *what, int ok404) {
  if (r->err == 0 || (ok404 && r->status == 404)) return 0;
  if (r->err != P2Q_ECANCELED) {
    char m[600];
    snprintf(m, sizeof m, "HTTP %ld: %s", r->status, r->error ? r->error : "");
    warn(x, what, m);
  }
  tick_end(x);
  return 1;
}

static void switched(p2q_qdrant_t *q, const p2q_qdrant_resp_t *r, void *arg) {
  p2q_reindex_exec_t *x = arg;
  if (qdrant_failed(x, r, "swap_alias", 0)) return;
  swap_record(x);
}

static void do_switch(p2q_reindex_exec_t *x, int had_alias) {
  p2q_qdrant_t *q = x->h.qdrant(x->h.arg);
  if (!q || p2q_alias_switch(q, J(x)->collection, J(x)->coll_new, had_alias, switched, x)) tick_end(x);
}

static void legacy_dropped(p2q_qdrant_t *q, const p2q_qdrant_resp_t *r, void *arg) {
  p2q_reindex_exec_t *x = arg;
  if (qdrant_failed(x, r, "drop_legacy_collection", 1)) return;
  P2Q_INFO("reindex_legacy_dropped", "rule=%s collection=%s", J(x)->rule, J(x)->collection);
  do_switch(x, 0); /* from here to the alias's creation, NAME answers 404 (one round trip) */
}

static void aliases_read(p2q_qdrant_t *q, const p2q_qdrant_resp_t *r, void *arg) {
  p2q_reindex_exec_t *x = arg;
  char *colls = x->colls_body;
  x->colls_body = NULL;
  if (qdrant_failed(x, r, "read_aliases", 0)) { free(colls); return; }
  char *al = strndup(r->body ? r->body : "", r->body ? r->body_len : 0); /* raw answers are not NUL-terminated */
  int av = 0, mv = 0, rc = al ? p2q_reindex_observe(J(x)->collection, colls, al, &av, &mv) : P2Q_ENOMEM;
  free(colls);
  free(al);
  if (rc) { warn(x, "read_aliases", rc == P2Q_EMISMATCH ? "the alias points elsewhere (made by hand)" : "bad answer"); tick_end(x); return; }
  if (mv < J(x)->to) { warn(x, "swap", "the new version's collection is missing"); tick_end(x); return; }
  if (av == J(x)->to) swap_record(x); /* switched before a crash: only record it */
  else if (av == P2Q_REINDEX_LEGACY) {
    q = x->h.qdrant(x->h.arg);
    if (!q || p2q_alias_drop(q, J(x)->collection, legacy_dropped, x)) tick_end(x);
  } else do_switch(x, av > 0);
}

static void colls_read(p2q_qdrant_t *q, const p2q_qdrant_resp_t *r, void *arg) {
  p2q_reindex_exec_t *x = arg;
  if (qdrant_failed(x, r, "read_collections", 0)) return;
  x->colls_body = r->body ? strndup(r->body, r->body_len) : NULL;
  q = x->h.qdrant(x->h.arg);
  if (!x->colls_body || !q || p2q_alias_list(q, 1, aliases_read, x)) { free(x->colls_body); x->colls_body = NULL; tick_end(x); }
}

static void swap_start(p2q_reindex_exec_t *x) {
  p2q_qdrant_t *q = x->h.qdrant(x->h.arg);
  if (!q || p2q_alias_list(q, 0, colls_read, x)) tick_end(x);
}

static void retire_recorded(p2q_pg_t *pg, PGresult *res, int err, const char *errmsg, void *arg) {
  p2q_reindex_exec_t *x = arg;
  if (err) { if (err != P2Q_ECANCELED) warn(x, "retire", errmsg); tick_end(x); return; }
  P2Q_INFO("reindex_done", "rule=%s version=%d retired=%s", J(x)->rule, J(x)->to, J(x)->legacy ? "-" : J(x)->coll_old);
  step_next(x);
}

static void old_dropped(p2q_qdrant_t *q, const p2q_qdrant_resp_t *r, void *arg) {
  p2q_reindex_exec_t *x = arg;
  char sql[1500];
  if (qdrant_failed(x, r, "drop_old_version", 1)) return;
  snprintf(sql, sizeof sql,
           "WITH s AS (DELETE FROM %s.sync_reindex_seen WHERE rule = $1) "
           "DELETE FROM %s.sync_reindex WHERE rule = $1 AND started_at = $2", cfgschema(x), cfgschema(x));
  const char *p[] = {J(x)->rule, J(x)->started};
  query(x, sql, 2, p, retire_recorded);
}

static void retire_start(p2q_reindex_exec_t *x) {
  p2q_qdrant_t *q = x->h.qdrant(x->h.arg);
  if (J(x)->legacy) { /* the old collection went at the swap */
    p2q_qdrant_resp_t none = {0};
    old_dropped(q, &none, x);
    return;
  }
  if (!q || p2q_alias_drop(q, J(x)->coll_old, old_dropped, x)) tick_end(x);
}

/* ---- lifecycle ------------------------------------------------------------------------------- */

static void pinned(p2q_pg_t *pg, PGresult *res, int err, const char *errmsg, void *arg) {
  if (err && err != P2Q_ECANCELED) warn(arg, "pin_session", errmsg);
}

static void connected(p2q_pg_t *pg, void *arg) {
  p2q_reindex_exec_t *x = arg;
  x->leader = 0; /* a session lock does not survive its session */
  p2q_pg_query(pg, "SET search_path = pg_catalog, pg_temp", 0, NULL, pinned, x);
  if (!x->ready) tick(&x->timer);
}

int p2q_reindex_exec_new(uv_loop_t *loop, const p2q_config_t *cfg, const char *instance,
                         const p2q_reindex_hooks_t *hooks, p2q_reindex_exec_t **out) {
  p2q_reindex_exec_t *x = calloc(1, sizeof *x);
  p2q_buf_t s = P2Q_BUF_INIT;
  if (!x) return P2Q_ENOMEM;
  x->loop = loop;
  x->h = *hooks;
  snprintf(x->instance, sizeof x->instance, "%s", instance ? instance : "");
  p2q_sql_ident(&s, cfg->pg_schema);
  snprintf(x->schema_q, sizeof x->schema_q, "%s", p2q_buf_str(&s));
  p2q_buf_free(&s);
  uv_timer_init(loop, &x->timer);
  x->timer.data = x;
  p2q_pg_options_t o = {.conninfo = cfg->pg_conninfo, .name = "pg2qdrant/reindex",
                        .connect_timeout_ms = (uint64_t)cfg->pg_connect_timeout_ms, .reconnect_max_ms = 10000,
                        .on_connect = connected, .arg = x};
  int rc = p2q_pg_new(loop, &o, &x->pg);
  *out = x; /* closed and freed by the owner, also on failure */
  if (rc) { x->pg = NULL; return rc; }
  uv_timer_start(&x->timer, tick, P2Q_REINDEX_TICK_MS, P2Q_REINDEX_TICK_MS);
  *out = x;
  return 0;
}

void p2q_reindex_exec_reapply(p2q_reindex_exec_t *x) {
  if (x) snprintf(x->applied_key, sizeof x->applied_key, "%s", "(reload)");
}

void p2q_reindex_exec_status(const p2q_reindex_exec_t *x, p2q_buf_t *out) {
  p2q_buf_putc(out, '[');
  for (int i = 0; x && i < x->n_jobs; i++) {
    const rjob_t *j = &x->jobs[i];
    p2q_buf_printf(out, "%s{\"rule\":", i ? "," : "");
    p2q_buf_json_string(out, j->rule, strlen(j->rule));
    p2q_buf_printf(out, ",\"phase\":\"%s\",\"from\":%d,\"to\":%d,\"legacy\":%s,\"backfilled\":%lld,\"pending\":%lld}",
                   j->phase, j->from, j->to, j->legacy ? "true" : "false", j->done, j->pending);
  }
  p2q_buf_putc(out, ']');
}

int p2q_reindex_exec_jobs(const p2q_reindex_exec_t *x) { return x ? x->n_jobs : 0; }

void p2q_reindex_exec_job(const p2q_reindex_exec_t *x, int i, const char **rule, const char **phase,
                          long long *backfilled, long long *pending) {
  const rjob_t *j = &x->jobs[i];
  *rule = j->rule;
  *phase = j->phase;
  *backfilled = j->done;
  *pending = j->pending;
}

static void closed_noop(uv_handle_t *h) { (void)h; }

void p2q_reindex_exec_close(p2q_reindex_exec_t *x) {
  if (!x || x->closing) return;
  x->closing = 1;
  uv_timer_stop(&x->timer);
  uv_close((uv_handle_t *)&x->timer, closed_noop);
  if (x->pg) p2q_pg_close(x->pg, NULL, NULL);
}

void p2q_reindex_exec_free(p2q_reindex_exec_t *x) {
  if (!x) return;
  free_jobs(x);
  free(x->colls_body);
  free(x);
}

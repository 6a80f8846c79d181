/*
 * reindex_exec.h — the daemon's side of zero-downtime re-embedding (reindex_exec.c; loop thread
 * only). Every daemon process reads the jobs (sync_reindex) once a second, asks its owner to
 * write each rule the way the job's phase needs (want_modes: the owner lets its batches finish,
 * swaps to the effective config of reindex_def.c, then calls p2q_reindex_exec_modes_applied),
 * and records that in sync_reindex_seen. One process (a session advisory lock) also moves the
 * jobs on: backfill through the outbox, catch-up, the alias swap, the grace, the retirement.
 */
#ifndef P2Q_REINDEX_EXEC_H
#define P2Q_REINDEX_EXEC_H

#include <uv.h>

#include "pg2qdrant/buf.h"
#include "pg2qdrant/config.h"
#include "pg2qdrant/qdrant.h"
#include "pg2qdrant/reindex.h"

#define P2Q_REINDEX_TICK_MS 1000

typedef struct p2q_reindex_exec_s p2q_reindex_exec_t;

typedef struct {
  void *arg;
  /* Write the rules as `jobs` say (n may be 0: every rule single). The owner calls
     p2q_reindex_exec_modes_applied(x, ok) once done (possibly later: after its batches drained). */
  void (*want_modes)(void *arg, const p2q_reindex_eff_t *jobs, int n);
  const p2q_config_t *(*config)(void *arg); /* the file's config (reload may change it) */
  p2q_qdrant_t *(*qdrant)(void *arg);       /* NULL while closing */
} p2q_reindex_hooks_t;

int p2q_reindex_exec_new(uv_loop_t *loop, const p2q_config_t *cfg, const char *instance,
                         const p2q_reindex_hooks_t *hooks, p2q_reindex_exec_t **out);
/* ok = 0: the modes could not be applied (logged by the owner); nothing is recorded. */
void p2q_reindex_exec_modes_applied(p2q_reindex_exec_t *x, int ok);
/* The file's config was reloaded: ask for the modes again at the next tick. */
void p2q_reindex_exec_reapply(p2q_reindex_exec_t *x);
/* JSON array of the running jobs for /status: rule, phase, from, to, backfilled, pending. */
void p2q_reindex_exec_status(const p2q_reindex_exec_t *x, p2q_buf_t *out);
/* The jobs read at the last tick (pending: -1 when not counted, i.e. not in catch_up or not the
   process moving the jobs on). */
int p2q_reindex_exec_jobs(const p2q_reindex_exec_t *x);
void p2q_reindex_exec_job(const p2q_reindex_exec_t *x, int i, const char **rule, const char **phase,
                          long long *backfilled, long long *pending);
void p2q_reindex_exec_close(p2q_reindex_exec_t *x);
void p2q_reindex_exec_free(p2q_reindex_exec_t *x);

#endif

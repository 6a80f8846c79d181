/*
 * embed_pool.h — a dedicated pthread pool running embedding jobs off the libuv loop.
 *
 * Not uv_queue_work: libuv's pool is global (4 threads, shared with DNS/fs work) and long
 * matrix jobs would starve it. Results come back to the loop thread through a mutex-guarded
 * done-list plus uv_async_send (sent only when the list was empty; the async callback detaches
 * the whole list). Only the loop thread touches libuv handles; workers touch only the job's
 * buffers.
 *
 * Contract:
 *   - init/submit/close and every job callback run on the loop thread (submit is also safe from
 *     other threads, but the callback always runs on the loop thread).
 *   - Once p2q_embed_pool_submit() returns 0, the job's callback fires exactly once, on the loop
 *     thread, with 0, an embedding error (P2Q_EUTF8/P2Q_ETOOLONG when job->status is NULL,
 *     P2Q_ENOMEM, …) or P2Q_ECANCELED (pool closed before the job started). If submit fails the
 *     callback never fires. The job and all buffers it points to must stay valid until then.
 *   - p2q_embed_pool_close(): stops accepting jobs, cancels queued ones, waits for running jobs
 *     (at most one batch per thread), joins the threads, delivers every outstanding callback,
 *     then closes the async handle; close_cb runs after the handle is closed and the pool freed.
 *     Run the loop until close_cb fires.
 *
 * Parallelism: workers take whole jobs; the worker that takes a model job tokenizes its texts
 * once and, when the queue is empty and other workers are idle, splits the sequences into
 * contiguous parts of about equal tokens for them (so one big batch still uses every worker).
 * Jobs with a `work` function run whole on one worker. OpenBLAS threading: measured on 2 cores (bench/minilm.sh),
 * pool parallelism with single-threaded BLAS beats one job on all cores by 1.2–2x, so init
 * calls p2q_minilm_set_blas_threads(1): threads = N means N cores working (1 means one core).
 */
#ifndef P2Q_EMBED_POOL_H
#define P2Q_EMBED_POOL_H

#include <stddef.h>
#include <uv.h>

#include "pg2qdrant/minilm.h"

typedef struct p2q_embed_pool_s p2q_embed_pool_t;
typedef struct p2q_embed_job_s p2q_embed_job_t;

typedef void (*p2q_embed_cb)(p2q_embed_job_t *job, int status);
typedef void (*p2q_embed_pool_close_cb)(void *arg);

struct p2q_embed_job_s {
  /* set by the caller */
  const char *const *texts;  /* n texts */
  const size_t *lens;        /* NULL → NUL-terminated */
  int n;
  float *out;                /* n * P2Q_MINILM_DIM floats */
  int *status;               /* optional per-text status (see p2q_minilm_embed) */
  p2q_minilm_opts_t opts;    /* zero = defaults */
  /* optional: run this on the worker instead of the model (tests, other CPU work) */
  int (*work)(p2q_embed_job_t *job);
  p2q_embed_cb cb;
  void *data;                /* caller's */
  /* set by the pool before the callback (model jobs) */
  long tokens;               /* tokens of the texts (incl. [CLS]/[SEP]) */
  /* private to the pool */
  void *batch_;
  int result_;
  int parts_left_;
  void *parts_;
  p2q_embed_job_t *next_;
};

/* Start `threads` (1..64) workers embedding with `model` (may be NULL if every job has `work`).
 * Errors: P2Q_EINVAL, P2Q_ENOMEM, P2Q_EINTERNAL (thread/async creation failed). */
int p2q_embed_pool_init(uv_loop_t *loop, p2q_minilm_t *model, int threads, p2q_embed_pool_t **out);
/* Queue a job (FIFO). P2Q_EINVAL (no cb, n < 0, no texts/out), P2Q_ECANCELED (closing). */
int p2q_embed_pool_submit(p2q_embed_pool_t *pool, p2q_embed_job_t *job);
/* Jobs queued or running (not yet delivered). */
size_t p2q_embed_pool_pending(p2q_embed_pool_t *pool);
void p2q_embed_pool_close(p2q_embed_pool_t *pool, p2q_embed_pool_close_cb close_cb, void *arg);

#endif

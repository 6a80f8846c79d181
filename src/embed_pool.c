/*
 * embed_pool.c — dedicated embedding worker threads handing results to the libuv loop
 * (see embed_pool.h).
 *
 * Owns: the worker threads, the FIFO of queued jobs, the done-list and the uv_async_t.
 * Threads: workers pop from the queue and run the model; everything touching libuv (the async
 * handle's close, job callbacks) runs on the loop thread.
 * A model job is tokenized once by the worker that takes it (a p2q_minilm_batch_t), then its
 * sequences are cut by tokens into parts for the idle workers.
 * Invariants (under mu): a job is in exactly one of queue, running, done-list; a running job
 * may be split into parts (parts_left_ counts unfinished ones, the last one to finish moves the
 * job to the done-list); uv_async_send is called only on the done-list's empty → non-empty
 * transition; once `closing` is set no job enters the queue (queued parts still run).
 */
#include "pg2qdrant/embed_pool.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "pg2qdrant/errors.h"
#include "pg2qdrant/log.h"

typedef struct pool_part_s {
  p2q_embed_job_t *job;
  int from, count;
  struct pool_part_s *next;
} pool_part_t;

struct p2q_embed_pool_s {
  uv_loop_t *loop;
  uv_async_t async;
  p2q_minilm_t *model;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  p2q_embed_job_t *q_head, *q_tail;  /* queued */
  p2q_embed_job_t *done_head, *done_tail;
  pool_part_t *parts;                /* parts of running jobs, waiting for a worker (LIFO) */
  int idle;                          /* workers waiting for work */
  size_t pending;                    /* queued + running + done, not yet delivered */
  int closing;
  int nthreads;
  pthread_t *threads;
  p2q_embed_pool_close_cb close_cb;
  void *close_arg;
};

static void pool_push_done(p2q_embed_pool_t *p, p2q_embed_job_t *j, int *was_empty) {
  j->next_ = NULL;
  *was_empty = p->done_head == NULL;
  if (p->done_tail) p->done_tail->next_ = j;
  else p->done_head = j;
  p->done_tail = j;
}

/* Worker, no lock held: tokenize the job's texts once (the batch), zero the rows of texts that
 * failed. The batch is freed when the job's last part finishes. */
static int pool_prepare(p2q_embed_pool_t *p, p2q_embed_job_t *j) {
  p2q_minilm_batch_t *b = NULL;
  if (!p->model) return P2Q_EINVAL;
  int rc = p2q_minilm_batch_new(p->model, j->texts, j->lens, j->n, j->status, &j->opts, &b);
  if (rc) return rc;
  j->tokens = p2q_minilm_batch_tokens(b);
  for (int i = 0; j->status && i < j->n; i++)
    if (j->status[i])
      memset(j->out + (size_t)i * (size_t)p2q_minilm_dim(p->model), 0, sizeof(float) * (size_t)p2q_minilm_dim(p->model));
  j->batch_ = b;
  return 0;
}

/* Run sequences [from, from+count) of job j's batch (worker thread, no lock held). */
static int pool_run(p2q_embed_pool_t *p, p2q_embed_job_t *j, int from, int count) {
  if (!count) return 0;
  return p2q_minilm_batch_embed(p->model, j->batch_, from, count, j->out, &j->opts);
}

/* Under mu: one part of j finished with rc; the last part completes the job. */
static void pool_part_done(p2q_embed_pool_t *p, p2q_embed_job_t *j, int rc) {
  if (rc && !j->result_) j->result_ = rc;
  if (--j->parts_left_ > 0) return;
  free(j->parts_);
  j->parts_ = NULL;
  p2q_minilm_batch_free(j->batch_);
  j->batch_ = NULL;
  int was_empty;
  pool_push_done(p, j, &was_empty);
  if (was_empty) uv_async_send(&p->async); /* thread-safe; coalesced by libuv */
}

/* Under mu: split j's sequences across idle workers (by tokens); returns where the caller's own
 * part ends (it starts at 0). */
static int pool_split(p2q_embed_pool_t *p, p2q_embed_job_t *j) {
  int nseq = p2q_minilm_batch_count(j->batch_);
  int k = p->idle < nseq - 1 ? p->idle : nseq - 1; /* extra parts */
  if (k <= 0 || p->q_head) return nseq;
  pool_part_t *parts = calloc((size_t)k, sizeof *parts);
  int *cut = malloc(sizeof *cut * (size_t)(k + 2));
  if (!parts || !cut) { free(parts); free(cut); return nseq; }
  k = p2q_minilm_batch_split(j->batch_, k + 1, cut) - 1;
  for (int i = 0; i < k; i++) {
    parts[i] = (pool_part_t){j, cut[i + 1], cut[i + 2] - cut[i + 1], p->parts};
    p->parts = &parts[i];
  }
  int keep = cut[1];
  free(cut);
  j->parts_ = parts;
  j->parts_left_ += k;
  pthread_cond_broadcast(&p->cv);
  return keep;
}

static void *pool_worker(void *arg) {
  p2q_embed_pool_t *p = arg;
  pthread_mutex_lock(&p->mu);
  for (;;) {
    p->idle++;
    while (!p->parts && !p->q_head && !p->closing) pthread_cond_wait(&p->cv, &p->mu);
    p->idle--;
    if (p->parts) {
      pool_part_t *pt = p->parts;
      p->parts = pt->next;
      pthread_mutex_unlock(&p->mu);
      int rc = pool_run(p, pt->job, pt->from, pt->count);
      pthread_mutex_lock(&p->mu);
      pool_part_done(p, pt->job, rc);
      continue;
    }
    if (!p->q_head) break; /* closing and nothing queued */
    p2q_embed_job_t *j = p->q_head;
    p->q_head = j->next_;
    if (!p->q_head) p->q_tail = NULL;
    j->parts_left_ = 1;
    pthread_mutex_unlock(&p->mu);
    int rc = j->work ? j->work(j) : pool_prepare(p, j);
    pthread_mutex_lock(&p->mu);
    if (!j->work && rc == 0) {
      int keep = pool_split(p, j);
      pthread_mutex_unlock(&p->mu);
      rc = pool_run(p, j, 0, keep);
      pthread_mutex_lock(&p->mu);
    }
    pool_part_done(p, j, rc);
  }
  pthread_mutex_unlock(&p->mu);
  return NULL;
}

/* Loop thread: detach the whole done-list and run the callbacks outside the lock. */
static void pool_deliver(p2q_embed_pool_t *p) {
  pthread_mutex_lock(&p->mu);
  p2q_embed_job_t *j = p->done_head;
  p->done_head = p->done_tail = NULL;
  pthread_mutex_unlock(&p->mu);
  while (j) {
    p2q_embed_job_t *next = j->next_;
    pthread_mutex_lock(&p->mu);
    p->pending--;
    pthread_mutex_unlock(&p->mu);
    j->next_ = NULL;
    j->cb(j, j->result_);
    j = next;
  }
}

static void pool_async_cb(uv_async_t *h) { pool_deliver(h->data); }

static void pool_free(p2q_embed_pool_t *p) {
  pthread_cond_destroy(&p->cv);
  pthread_mutex_destroy(&p->mu);
  free(p->threads);
  free(p);
}

static void pool_closed_cb(uv_handle_t *h) {
  p2q_embed_pool_t *p = h->data;
  p2q_embed_pool_close_cb cb = p->close_cb;
  void *arg = p->close_arg;
  pool_free(p);
  if (cb) cb(arg);
}

int p2q_embed_pool_init(uv_loop_t *loop, p2q_minilm_t *model, int threads, p2q_embed_pool_t **out) {
  int rc = P2Q_EINVAL, started = 0, have_async = 0;
  *out = NULL;
  if (!loop || threads < 1 || threads > 64) return rc;
  p2q_embed_pool_t *p = calloc(1, sizeof *p);
  if (!p) return P2Q_ENOMEM;
  p->loop = loop;
  p->model = model;
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->cv, NULL);
  rc = P2Q_ENOMEM;
  if (!(p->threads = calloc((size_t)threads, sizeof *p->threads))) goto fail;
  rc = P2Q_EINTERNAL;
  if (uv_async_init(loop, &p->async, pool_async_cb) != 0) goto fail;
  have_async = 1;
  p->async.data = p;
  p2q_minilm_set_blas_threads(1); /* threads = N means N cores: parallelism is the pool's */
  for (; started < threads; started++)
    if (pthread_create(&p->threads[started], NULL, pool_worker, p) != 0) goto fail;
  p->nthreads = threads;
  P2Q_INFO("embed_pool_start", "threads=%d blas_threads=%d", threads, p2q_minilm_blas_threads());
  *out = p;
  return 0;
fail:
  pthread_mutex_lock(&p->mu);
  p->closing = 1;
  pthread_cond_broadcast(&p->cv);
  pthread_mutex_unlock(&p->mu);
  for (int i = 0; i < started; i++) pthread_join(p->threads[i], NULL);
  if (have_async) {
    p->close_cb = NULL;
    uv_close((uv_handle_t *)&p->async, pool_closed_cb); /* frees p */
  } else {
    pool_free(p);
  }
  return rc;
}

int p2q_embed_pool_submit(p2q_embed_pool_t *p, p2q_embed_job_t *j) {
  if (!p || !j || !j->cb || j->n < 0 ||
      (!j->work && j->n > 0 && (!j->texts || !j->out)))
    return P2Q_EINVAL;
  pthread_mutex_lock(&p->mu);
  if (p->closing) {
    pthread_mutex_unlock(&p->mu);
    return P2Q_ECANCELED;
  }
  j->next_ = NULL;
  j->result_ = 0;
  j->parts_left_ = 0;
  j->parts_ = NULL;
  j->batch_ = NULL;
  j->tokens = 0;
  if (p->q_tail) p->q_tail->next_ = j;
  else p->q_head = j;
  p->q_tail = j;
  p->pending++;
  pthread_cond_signal(&p->cv);
  pthread_mutex_unlock(&p->mu);
  return 0;
}

size_t p2q_embed_pool_pending(p2q_embed_pool_t *p) {
  pthread_mutex_lock(&p->mu);
  size_t n = p->pending;
  pthread_mutex_unlock(&p->mu);
  return n;
}

void p2q_embed_pool_close(p2q_embed_pool_t *p, p2q_embed_pool_close_cb close_cb, void *arg) {
  pthread_mutex_lock(&p->mu);
  p->closing = 1;
  /* Cancel queued jobs: move them to the done-list with P2Q_ECANCELED. */
  p2q_embed_job_t *j = p->q_head;
  p->q_head = p->q_tail = NULL;
  while (j) {
    p2q_embed_job_t *next = j->next_;
    int was_empty;
    j->result_ = P2Q_ECANCELED;
    pool_push_done(p, j, &was_empty);
    j = next;
  }
  pthread_cond_broadcast(&p->cv);
  pthread_mutex_unlock(&p->mu);
  for (int i = 0; i < p->nthreads; i++) pthread_join(p->threads[i], NULL); /* waits for running jobs */
  p->nthreads = 0;
  pool_deliver(p); /* every remaining callback, on the loop thread */
  p->close_cb = close_cb;
  p->close_arg = arg;
  uv_close((uv_handle_t *)&p->async, pool_closed_cb);
}

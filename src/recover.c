/*
 * recover.c — fast crash recovery (loop thread only): the daemon's instance id, the
 * registration of its connections in sync_outbox_instance, the liveness check on a timer of its
 * own (P2Q_RECOVER_CHECK_MS) over a connection of its own, and the self-fence.
 *
 * Owns: the instance id (handed to outbox.c, which registers every session under it), one
 * outbox session of its own ("pg2qdrant/recover", registered too) and one uv_timer_t. The SQL
 * is in outbox.c (p2q_outbox_reap) and sql/functions.sql (sync_outbox_register/_reap).
 *
 * Why a dead process can be reaped at once but a lost connection cannot: a live process whose
 * connection dropped may still have Qdrant requests in flight (its "orphaned" batches send
 * nothing new but cannot recall what is on the wire), so its claims wait qdrant.timeout + 1 s
 * (sync_outbox_recover_step on the sweep). A killed process's sockets are closed by the kernel, its
 * backends exit, and nothing of it is left to write: what it already handed to Qdrant is in
 * Qdrant's update queue ahead of anything a successor sends. So sync_outbox_reap() frees the claims
 * of a process all of whose registered backends have been gone for P2Q_RECOVER_DEAD_MS.
 *
 * "All backends gone" is also what a live process looks like when the server dropped every one
 * of its connections without the process noticing (a network partition ended by the server's
 * TCP keepalive). Hence the fence, whose invariant is FENCE_MS < DEAD_MS:
 *  - ok_sent is the send time of the last check that succeeded; the check ran on our backend,
 *    so that backend was alive after ok_sent, and a reaper marks it gone (gone_since) later still;
 *  - from ok_sent + FENCE_MS on, this process claims nothing and its batches claimed before
 *    send nothing (each fence bumps `epoch`; a batch remembers the epoch of its claim), so every
 *    request of ours started before ok_sent + FENCE_MS < gone_since + DEAD_MS, when a reaper may
 *    free our claims — DEAD_MS - FENCE_MS is the margin for a request already sent to arrive.
 * The check itself is cheap (one read of the registry joined with pg_stat_activity, no write
 * unless a backend disappeared); see README "Guarantees" for its measured cost.
 */
#include "pg2qdrant/recover.h"
#include "pg2qdrant/errors.h"
#include "pg2qdrant/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

_Static_assert(P2Q_RECOVER_FENCE_MS < P2Q_RECOVER_DEAD_MS, "a process must fence itself before it may be reaped");
_Static_assert(P2Q_RECOVER_CHECK_MS * 2 < P2Q_RECOVER_FENCE_MS, "one slow check must not fence a process");

struct p2q_recover_s {
  uv_timer_t timer;
  p2q_outbox_conn_t *conn;
  char instance[160];
  int registered, checking, failing;
  uint64_t check_sent;   /* ms (monotonic) the check in flight was sent */
  uint64_t ok_sent;      /* ms the last successful check was sent; 0 = never */
  uint32_t epoch;        /* >= 1 */
  int fenced;
  p2q_recover_wake_cb wake;
  void *arg;
  int closing;
};

static uint64_t now_ms(void) { return uv_hrtime() / 1000000u; }

int p2q_recover_is_fenced(uint64_t now, uint64_t ok) {
  return ok == 0 || now < ok || now - ok > P2Q_RECOVER_FENCE_MS;
}

/* Re-evaluate the fence: a new epoch when it closes, wake the workers when it opens. */
static int update_fence(p2q_recover_t *r) {
  int f = p2q_recover_is_fenced(now_ms(), r->ok_sent);
  if (f && !r->fenced) {
    if (++r->epoch == 0) r->epoch = 1;
    P2Q_WARN("liveness_unconfirmed", "instance=%s last_check_ms_ago=%llu action=stop_claiming_and_writing",
             r->instance, (unsigned long long)(now_ms() - r->ok_sent));
  }
  int opened = !f && r->fenced;
  r->fenced = f;
  if (opened) {
    if (r->ok_sent && r->epoch > 1) P2Q_INFO("liveness_confirmed", "instance=%s", r->instance);
    if (!r->closing) r->wake(r->arg, 0);
  }
  return f;
}

uint32_t p2q_recover_liveness(p2q_recover_t *r) { return update_fence(r) ? 0 : r->epoch; }

const char *p2q_recover_instance(const p2q_recover_t *r) { return r->instance; }

/* ---- the check -------------------------------------------------------------------------- */

static void check_cb(void *arg, int err, const char *errmsg, const p2q_reaped_t *rows, int n) {
  p2q_recover_t *r = arg;
  char q[512];
  r->checking = 0;
  if (err) {
    if (err != P2Q_ECANCELED && !r->failing++)
      P2Q_WARN("liveness_check_failed", "err=%s", p2q_log_q(q, sizeof q, errmsg));
    update_fence(r);
    return;
  }
  r->failing = 0;
  r->ok_sent = r->check_sent;
  long long events = 0;
  for (int i = 0; i < n; i++) {
    events += rows[i].events;
    P2Q_INFO("recovered", "events=%d leases=%d reason=process_dead instance=%s", rows[i].events, rows[i].leases,
             p2q_log_q(q, sizeof q, rows[i].instance));
  }
  update_fence(r);
  if (n > 0 && !r->closing) r->wake(r->arg, events > 0x7fffffff ? 0x7fffffff : (int)events);
}

static void timer_cb(uv_timer_t *t) {
  p2q_recover_t *r = t->data;
  update_fence(r);
  if (r->checking || !r->registered || r->closing) return;
  r->check_sent = now_ms();
  if (p2q_outbox_reap(r->conn, P2Q_RECOVER_DEAD_MS, check_cb, r) == 0) r->checking = 1;
}

static void on_ready(void *arg, const char *owner, int reconnect) {
  p2q_recover_t *r = arg;
  r->registered = 1;
  r->checking = 0;
  P2Q_INFO("registered", "instance=%s owner=%s", r->instance, owner);
  timer_cb(&r->timer); /* check at once: a restarted daemon recovers its predecessor's claims */
}

static void on_lost(void *arg, const char *errmsg) {
  p2q_recover_t *r = arg;
  r->registered = r->checking = 0;
}

/* ---- lifecycle ---------------------------------------------------------------------------- */

int p2q_recover_new(uv_loop_t *loop, p2q_outbox_t *ob, const p2q_config_t *cfg, p2q_recover_wake_cb wake,
                    void *arg, p2q_recover_t **out) {
  p2q_recover_t *r = calloc(1, sizeof *r);
  char host[64] = "";
  int rc = P2Q_ENOMEM;
  if (!r) return rc;
  r->wake = wake;
  r->arg = arg;
  r->epoch = 1;
  r->fenced = 1; /* until the first check: claim nothing */
  if (gethostname(host, sizeof host - 1)) snprintf(host, sizeof host, "?");
  host[sizeof host - 1] = 0;
  /* host, process and start time: unique across hosts and restarts, readable in the registry */
  snprintf(r->instance, sizeof r->instance, "%s:%d:%llx", host, (int)uv_os_getpid(),
           (unsigned long long)(uv_hrtime() ^ ((uint64_t)time(NULL) << 20)));
  if ((rc = p2q_outbox_set_instance(ob, r->instance))) goto fail;
  p2q_outbox_conn_cbs_t cbs = {.ready = on_ready, .lost = on_lost, .arg = r};
  if ((rc = p2q_outbox_conn_new(ob, loop, cfg, "pg2qdrant/recover", &cbs, &r->conn))) goto fail;
  uv_timer_init(loop, &r->timer);
  r->timer.data = r;
  uv_timer_start(&r->timer, timer_cb, P2Q_RECOVER_CHECK_MS, P2Q_RECOVER_CHECK_MS);
  *out = r;
  return 0;
fail:
  free(r);
  return rc;
}

static void closed_noop(uv_handle_t *h) {}

void p2q_recover_close(p2q_recover_t *r) {
  if (!r || r->closing) return;
  r->closing = 1;
  uv_close((uv_handle_t *)&r->timer, closed_noop);
  p2q_outbox_conn_close(r->conn, NULL, NULL);
}

void p2q_recover_free(p2q_recover_t *r) { free(r); }

/*
 * recover.h — fast crash recovery: the daemon registry and the liveness check (recover.c).
 *
 * Every daemon process has an instance id and registers each of its PostgreSQL connections (its
 * own check connection and every worker connection) in sync_outbox_instance. On a short timer of
 * its own, on that connection, every process runs sync_outbox_reap(): a process all of whose
 * backends are gone is dead, and its claims are freed at once (no qdrant.timeout
 * grace, no 30 s sweep). A lone lost connection of a live process keeps the old grace
 * (sync_outbox_recover on the sweep).
 *
 * Self-fencing: a process that cannot confirm its own liveness (no successful check for
 * P2Q_RECOVER_FENCE_MS) stops claiming and sends nothing more for the batches it claimed before
 * (p2q_recover_liveness), so another process that finds all its backends gone — which it acts
 * on only P2Q_RECOVER_DEAD_MS later — never races a write of it.
 *
 * Loop thread only.
 */
#ifndef P2Q_RECOVER_H
#define P2Q_RECOVER_H

#include <stdint.h>
#include <uv.h>

#include "pg2qdrant/config.h"
#include "pg2qdrant/outbox.h"

#define P2Q_RECOVER_CHECK_MS 500   /* liveness check period */
#define P2Q_RECOVER_FENCE_MS 1500  /* no successful check sent within this: stop claiming and writing */
#define P2Q_RECOVER_DEAD_MS 2000   /* all backends gone this long: the process is dead */

typedef struct p2q_recover_s p2q_recover_t;

/* A dead process's claims were freed (events > 0), or this process may claim
   again after a fence (events == 0): wake the workers. */
typedef void (*p2q_recover_wake_cb)(void *arg, int events);

/* Create the module: an instance id (given to `ob`, so every outbox session opened afterwards
   registers under it: create this before the workers), a session of its own ("pg2qdrant/recover")
   and the check timer. */
int p2q_recover_new(uv_loop_t *loop, p2q_outbox_t *ob, const p2q_config_t *cfg, p2q_recover_wake_cb wake,
                    void *arg, p2q_recover_t **out);
/* 0 while this process's liveness is unconfirmed (claim nothing, write nothing), else the
   liveness epoch (>= 1): it changes after every such period, and a batch may write only in the
   epoch of its claim (its claims may have been freed meanwhile). */
uint32_t p2q_recover_liveness(p2q_recover_t *r);
const char *p2q_recover_instance(const p2q_recover_t *r);
/* Stop the timer and close the session (the loop must run once more); free after the loop. */
void p2q_recover_close(p2q_recover_t *r);
void p2q_recover_free(p2q_recover_t *r);

/* Pure: is the process fenced at now_ms, its last successful check sent at ok_ms (0 = never)? */
int p2q_recover_is_fenced(uint64_t now_ms, uint64_t ok_ms);

#endif

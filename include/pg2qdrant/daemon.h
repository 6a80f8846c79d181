/*
 * daemon.h — the sync daemon (`pg2qdrant run`, declared in commands.h): one libuv loop holding
 * the LISTEN connection, the sweep timer, the Qdrant client, the health of every target
 * (health.h), the signal handlers and the WorkerPool (worker.h). Loop thread only.
 *
 * The daemon is opaque: workers see it through their p2q_worker_ctx_t, the operator surface
 * through p2q_ops_deps_t, the health module through p2q_health_io_t. Nothing outside daemon.c
 * reads or writes its fields.
 */
#ifndef P2Q_DAEMON_H
#define P2Q_DAEMON_H

typedef struct p2q_daemon_s p2q_daemon_t;

#endif

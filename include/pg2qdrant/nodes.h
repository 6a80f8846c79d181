/*
 * nodes.h — the Qdrant nodes of `[qdrant] url` (a comma-separated list) and which one a request
 * goes to. Pure logic (no I/O, no clock of its own: callers pass loop milliseconds); the Qdrant
 * client (qdrant.c) owns one set and does the requests and probes.
 *
 * Choice: the first node in the configured order that is up (sticky: consecutive writes go
 * through one node while it answers, so a row's writes do not race each other through two
 * entry points); a node that failed at the transport level (refused, reset, timed out) is down
 * and skipped until a background probe (GET /readyz) sees it answer, on a backoff from 500 ms
 * doubling to P2Q_NODES_PROBE_MAX_MS. Nodes that are up but have not answered anything for
 * P2Q_NODES_CHECK_MS are probed too: a node no request goes to (the sticky choice uses the
 * first) is still seen going down and coming back, which is when a write that failed on its
 * shards can pass again. When no node is up, requests still go to the down nodes
 * in order (one of them may be back before its probe says so): all nodes down is the host's
 * failure, not one node's.
 */
#ifndef P2Q_NODES_H
#define P2Q_NODES_H

#include <stddef.h>
#include <stdint.h>

#define P2Q_NODES_MAX 16
#define P2Q_NODES_PROBE_MIN_MS 500
#define P2Q_NODES_PROBE_MAX_MS 5000
#define P2Q_NODES_CHECK_MS 2000

typedef struct p2q_node_s {
  char *url;               /* base URL, trailing '/' trimmed (owned) */
  int up;                  /* 1 until a transport failure, again after a probe answered */
  int probing;             /* a probe is in flight */
  unsigned streak;         /* transport failures in a row */
  uint64_t due;            /* next probe (loop ms) while down */
  uint64_t answered_at;    /* last answer (loop ms): an up node is probed CHECK_MS after it */
  uint64_t failures;       /* total transport failures */
  uint64_t transitions;    /* up <-> down */
  char last_error[200];
} p2q_node_t;

typedef struct {
  p2q_node_t node[P2Q_NODES_MAX];
  int n;
} p2q_nodes_t;

/* Split "http://a:6333, https://b:6333" into its URLs. Each must be http:// or https:// with a
 * host, none empty, none twice, at most P2Q_NODES_MAX. Returns the count (>= 1) or P2Q_ECONFIG
 * with the reason in why. urls may be NULL (validation only); else each element is malloc()ed
 * (trailing '/' trimmed) and freed by the caller. */
int p2q_nodes_split(const char *list, char **urls, int max, char *why, size_t whylen);
/* Build the set from the list (every node up). 0, P2Q_ECONFIG or P2Q_ENOMEM. */
int p2q_nodes_init(p2q_nodes_t *ns, const char *list, char *why, size_t whylen);
void p2q_nodes_free(p2q_nodes_t *ns);

/* The node for a request that already tried the nodes in tried_mask (bit i = node i): the first
 * up node not tried, else the first down node not tried; -1 when every node was tried. */
int p2q_nodes_pick(const p2q_nodes_t *ns, unsigned tried_mask);
/* A transport failure of node i at now: it goes down (if up) and its next probe is scheduled.
 * Returns 1 when it went from up to down. */
int p2q_nodes_failed(p2q_nodes_t *ns, int i, uint64_t now, const char *msg);
/* Node i answered (a request or a probe) at now. Returns 1 when it went from down to up. */
int p2q_nodes_succeeded(p2q_nodes_t *ns, int i, uint64_t now);
/* A node whose probe is due and not in flight (down: its backoff; up: nothing answered for
   P2Q_NODES_CHECK_MS), or -1. */
int p2q_nodes_due(const p2q_nodes_t *ns, uint64_t now);
/* Milliseconds until the next probe is due (0 = now), or UINT64_MAX when none is pending. */
uint64_t p2q_nodes_next_ms(const p2q_nodes_t *ns, uint64_t now);
int p2q_nodes_up(const p2q_nodes_t *ns);

#endif

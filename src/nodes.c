/*
 * nodes.c — the Qdrant nodes of `[qdrant] url` and the choice of one per request (nodes.h).
 * Pure: no I/O, no clock; the caller (qdrant.c, loop thread) passes loop milliseconds.
 * Invariants: a node is probed only while down; pick never returns a tried node; with one node
 * there is nothing to choose (the client does not track it).
 */
#include "pg2qdrant/nodes.h"
#include "pg2qdrant/backoff.h"
#include "pg2qdrant/errors.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* One element [s, e) of the list (position pos, from 1), validated; *out gets a trimmed copy
   when out != NULL. Messages name the position, never the text (it may hold a password). */
static int one_url(const char *s, const char *e, int pos, char **out, char *why, size_t n) {
  while (s < e && isspace((unsigned char)*s)) s++;
  while (e > s && isspace((unsigned char)e[-1])) e--;
  while (e > s && e[-1] == '/') e--;
  size_t len = (size_t)(e - s);
  size_t skip = len >= 7 && !strncasecmp(s, "http://", 7) ? 7 : len >= 8 && !strncasecmp(s, "https://", 8) ? 8 : 0;
  if (!len) {
    snprintf(why, n, "URL %d of the list is empty (two commas, or a comma at an end)", pos);
    return P2Q_ECONFIG;
  }
  if (!skip || len == skip || strchr("/:?#@", s[skip])) {
    snprintf(why, n, "URL %d of the list: not an http:// or https:// URL with a host", pos);
    return P2Q_ECONFIG;
  }
  for (size_t i = 0; i < len; i++)
    if (isspace((unsigned char)s[i])) {
      snprintf(why, n, "URL %d of the list: the URL contains whitespace", pos);
      return P2Q_ECONFIG;
    }
  if (out && !(*out = strndup(s, len))) return P2Q_ENOMEM;
  return 0;
}

/* Every comma separates (a base URL has no query string: paths are appended to it). */
static const char *next_sep(const char *p) { return p + strcspn(p, ","); }

int p2q_nodes_split(const char *list, char **urls, int max, char *why, size_t whylen) {
  char *tmp[P2Q_NODES_MAX];
  int n = 0, rc = 0;
  if (!list) list = "";
  if (max > P2Q_NODES_MAX || max < 1) max = P2Q_NODES_MAX;
  for (const char *p = list;;) {
    const char *e = next_sep(p);
    if (n == max) {
      snprintf(why, whylen, "more than %d URLs", max);
      rc = P2Q_ECONFIG;
      break;
    }
    rc = one_url(p, e, n + 1, &tmp[n], why, whylen);
    if (rc) break;
    for (int i = 0; i < n; i++)
      if (!strcasecmp(tmp[i], tmp[n])) {
        snprintf(why, whylen, "URL %d of the list is URL %d again", n + 1, i + 1);
        rc = P2Q_ECONFIG;
      }
    n++;
    if (rc || !*e) break;
    p = e + 1;
  }
  for (int i = 0; i < n; i++) {
    if (!rc && urls) urls[i] = tmp[i];
    else free(tmp[i]);
  }
  return rc ? rc : n;
}

int p2q_nodes_init(p2q_nodes_t *ns, const char *list, char *why, size_t whylen) {
  char *urls[P2Q_NODES_MAX];
  memset(ns, 0, sizeof *ns);
  int n = p2q_nodes_split(list, urls, P2Q_NODES_MAX, why, whylen);
  if (n < 0) return n;
  for (int i = 0; i < n; i++) {
    ns->node[i].url = urls[i];
    ns->node[i].up = 1;
  }
  ns->n = n;
  return 0;
}

void p2q_nodes_free(p2q_nodes_t *ns) {
  for (int i = 0; ns && i < ns->n; i++) free(ns->node[i].url);
  if (ns) ns->n = 0;
}

int p2q_nodes_pick(const p2q_nodes_t *ns, unsigned tried_mask) {
  for (int pass = 0; pass < 2; pass++)
    for (int i = 0; i < ns->n; i++)
      if (!(tried_mask & (1u << i)) && ns->node[i].up == !pass) return i;
  return -1;
}

int p2q_nodes_failed(p2q_nodes_t *ns, int i, uint64_t now, const char *msg) {
  if (i < 0 || i >= ns->n) return 0;
  p2q_node_t *nd = &ns->node[i];
  int was = nd->up;
  nd->failures++;
  nd->streak++;
  snprintf(nd->last_error, sizeof nd->last_error, "%s", msg && *msg ? msg : "transport error");
  if (!nd->probing) /* a failure seen while a probe runs leaves the probe's schedule alone */
    nd->due = now + p2q_backoff_cap(P2Q_NODES_PROBE_MIN_MS, P2Q_NODES_PROBE_MAX_MS, nd->streak - 1);
  nd->up = 0;
  if (was) nd->transitions++;
  return was;
}

int p2q_nodes_succeeded(p2q_nodes_t *ns, int i, uint64_t now) {
  if (i < 0 || i >= ns->n) return 0;
  p2q_node_t *nd = &ns->node[i];
  int was_down = !nd->up;
  nd->answered_at = now;
  nd->up = 1;
  nd->streak = 0;
  if (was_down) nd->transitions++;
  return was_down;
}

/* When node nd's next probe is due (loop ms). */
static uint64_t due_at(const p2q_node_t *nd) {
  return nd->up ? nd->answered_at + P2Q_NODES_CHECK_MS : nd->due;
}

int p2q_nodes_due(const p2q_nodes_t *ns, uint64_t now) {
  for (int i = 0; i < ns->n; i++)
    if (!ns->node[i].probing && due_at(&ns->node[i]) <= now) return i;
  return -1;
}

uint64_t p2q_nodes_next_ms(const p2q_nodes_t *ns, uint64_t now) {
  uint64_t best = UINT64_MAX;
  for (int i = 0; i < ns->n; i++) {
    const p2q_node_t *nd = &ns->node[i];
    if (nd->probing) continue;
    uint64_t at = due_at(nd), d = at > now ? at - now : 0;
    if (d < best) best = d;
  }
  return best;
}

int p2q_nodes_up(const p2q_nodes_t *ns) {
  int k = 0;
  for (int i = 0; i < ns->n; i++) k += ns->node[i].up;
  return k;
}

/*
 * reload.c — SIGHUP: reload the configuration file on the loop thread (the config loader is not
 * reentrant; the loop thread is the only one that loads configs).
 *
 * Policy (all or nothing):
 *  1. load and validate cfg->path; an invalid file is logged (reload_failed) and the running
 *     config stays;
 *  2. only settings that can change live may differ from the running config:
 *       [log] level, format, stats_interval (between non-zero values, or to 0);
 *       [daemon] sweep_interval, shutdown_timeout, lease, retry_min, retry_max,
 *                breaker_threshold, breaker_max, max_attempts (used by `apply`, not here);
 *       [worker.NAME] batch_size, linger_ms, idle_linger_ms, max_inflight (same workers, same order);
 *     any other difference (rules, worker set, event_types, routing_key, [postgres], [qdrant],
 *     [http], embedders) refuses the whole reload with the first differing key logged
 *     (reload_refused reason=restart_required): those need a restart;
 *  3. otherwise the caller (daemon.c) makes the new config the running one and applies each
 *     setting (timers, workers, the health module's breakers).
 * Lifetimes: the daemon keeps every config loaded here until its loop has ended (a few KB per
 * reload), so nothing can point into a freed config, whatever holds a pointer into an older one.
 */
#include "pg2qdrant/reload.h"
#include "pg2qdrant/errors.h"
#include "pg2qdrant/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* First line where the dumps of a and b differ, as "[section] key" (or all of them, when
 * all != 0, comma-separated). Empty when the dumps are equal (a masked secret changed). */
static void dump_diff(const p2q_config_t *a, const p2q_config_t *b, int all, char *out, size_t n) {
  char *da = NULL, *db = NULL;
  size_t la = 0, lb = 0, o = 0;
  FILE *fa = open_memstream(&da, &la), *fb = open_memstream(&db, &lb);
  out[0] = 0;
  if (fa) { p2q_config_dump(a, fa); fclose(fa); }
  if (fb) { p2q_config_dump(b, fb); fclose(fb); }
  char sec[128] = "";
  char *sa = da, *sb = db;
  while (sa && sb && *sa && *sb) {
    char *ea = strchr(sa, '\n'), *eb = strchr(sb, '\n');
    size_t na = ea ? (size_t)(ea - sa) : strlen(sa), nb = eb ? (size_t)(eb - sb) : strlen(sb);
    if (na && sa[0] == '[') snprintf(sec, sizeof sec, "%.*s", (int)na, sa);
    if ((na != nb || memcmp(sa, sb, na)) && sa[0] != ';') {
      size_t k = strcspn(sa, " =\n");
      o += (size_t)snprintf(out + o, o < n ? n - o : 0, "%s%s %.*s", o ? ", " : "", sec,
                            (int)(sa[0] == '[' ? 0 : k), sa);
      if (!all || o >= n) break;
    }
    if (!ea || !eb) break;
    sa = ea + 1;
    sb = eb + 1;
  }
  free(da);
  free(db);
}

/* Would swapping to nc change anything that needs a restart? */
static int restart_needed(const p2q_config_t *old, const p2q_config_t *nc, char *where, size_t n) {
  p2q_config_t tmp = *nc; /* nc with the live settings of old: then it must equal old */
  p2q_worker_config_t *ws = NULL;
  tmp.log_level = old->log_level;
  tmp.log_format = old->log_format;
  if (!(old->stats_interval_ms == 0 && nc->stats_interval_ms > 0)) tmp.stats_interval_ms = old->stats_interval_ms;
  tmp.sweep_interval_ms = old->sweep_interval_ms;
  tmp.shutdown_timeout_ms = old->shutdown_timeout_ms;
  tmp.lease_ms = old->lease_ms;
  tmp.retry_min_ms = old->retry_min_ms;
  tmp.retry_max_ms = old->retry_max_ms;
  tmp.breaker_threshold = old->breaker_threshold;
  tmp.breaker_max_ms = old->breaker_max_ms;
  tmp.max_attempts = old->max_attempts;
  if (nc->n_workers == old->n_workers && nc->n_workers > 0) {
    ws = malloc(sizeof *ws * (size_t)nc->n_workers);
    if (!ws) { snprintf(where, n, "out of memory"); return 1; }
    memcpy(ws, nc->workers, sizeof *ws * (size_t)nc->n_workers);
    for (int i = 0; i < nc->n_workers; i++) {
      ws[i].batch_size = old->workers[i].batch_size;
      ws[i].linger_ms = old->workers[i].linger_ms;
      ws[i].idle_linger_ms = old->workers[i].idle_linger_ms;
      ws[i].max_inflight = old->workers[i].max_inflight;
    }
    tmp.workers = ws;
  }
  int differs = !p2q_config_equal(old, &tmp);
  if (differs) {
    dump_diff(old, &tmp, 0, where, n);
    if (!*where) snprintf(where, n, "a masked setting");
  }
  free(ws);
  return differs;
}

const char *p2q_reload_load(const p2q_config_t *old, p2q_config_t **out) {
  char err[1024], q[1100], where[512];
  p2q_config_t *nc = NULL;
  *out = NULL;
  if (p2q_config_load(old->path, &nc, err, sizeof err) < 0) {
    P2Q_ERROR("reload_failed", "path=%s err=%s config=unchanged", old->path, p2q_log_q(q, sizeof q, err));
    return "error";
  }
  if (restart_needed(old, nc, where, sizeof where)) {
    P2Q_ERROR("reload_refused", "path=%s reason=restart_required first_difference=%s config=unchanged",
              old->path, p2q_log_q(q, sizeof q, where));
    p2q_config_free(nc);
    return "refused";
  }
  if (p2q_config_equal(old, nc)) {
    P2Q_INFO("reloaded", "path=%s changed=none", old->path);
    p2q_config_free(nc);
    return "ok";
  }
  p2q_log_level_t level = P2Q_LOG_INFO;
  if (nc->log_level) p2q_log_level_parse(nc->log_level, &level);
  p2q_log_configure(level, nc->log_format && !strcmp(nc->log_format, "json") ? P2Q_LOG_JSON : P2Q_LOG_LOGFMT, 2);
  dump_diff(old, nc, 1, where, sizeof where);
  P2Q_INFO("reloaded", "path=%s changed=%s", nc->path, p2q_log_q(q, sizeof q, where));
  *out = nc;
  return "ok";
}

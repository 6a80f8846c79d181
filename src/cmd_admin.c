/*
 * cmd_admin.c — the operator commands that talk to PostgreSQL only: init, status, retry, prune,
 * config. Blocking libpq on the main thread; each command is one short transaction or a loop of
 * small ones (prune), so it never holds locks for long.
 */
#include "pg2qdrant/capture.h"
#include "pg2qdrant/commands.h"
#include "pg2qdrant/drift.h"
#include "pg2qdrant/errors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void p2q_qdrant_options_from_config(const p2q_config_t *cfg, p2q_qdrant_options_t *o) {
  memset(o, 0, sizeof *o);
  o->url = cfg->qdrant_url;
  o->api_key = cfg->qdrant_api_key_env && *cfg->qdrant_api_key_env ? getenv(cfg->qdrant_api_key_env) : NULL;
  o->ca_file = cfg->qdrant_ca_file && *cfg->qdrant_ca_file ? cfg->qdrant_ca_file : NULL;
  o->timeout_ms = (long)cfg->qdrant_timeout_ms;
  o->connect_timeout_ms = (long)cfg->qdrant_connect_timeout_ms;
  o->retry_after_max_ms = cfg->retry_max_ms > 0 ? (uint64_t)cfg->retry_max_ms : 0;
}

long long p2q_parse_age_ms(const char *s) {
  char *end;
  double v = strtod(s, &end);
  if (end == s || v < 0) return -1;
  double mult = 1000;
  if (!strcmp(end, "ms")) mult = 1;
  else if (!strcmp(end, "s") || !*end) mult = 1000;
  else if (!strcmp(end, "m")) mult = 60e3;
  else if (!strcmp(end, "h")) mult = 3600e3;
  else if (!strcmp(end, "d")) mult = 86400e3;
  else return -1;
  return (long long)(v * mult);
}

static int die(PGconn *conn, const char *what, const char *err) {
  fprintf(stderr, "pg2qdrant: %s: %s\n", what, err);
  PQfinish(conn);
  return 1;
}

int p2q_cmd_init(const p2q_config_t *cfg, int argc, char **argv) {
  char err[1024];
  if (argc > 0) { fprintf(stderr, "usage: pg2qdrant init\n"); return 2; }
  PGconn *conn = p2q_admin_connect(cfg, "pg2qdrant/init", err, sizeof err);
  if (!conn) { fprintf(stderr, "pg2qdrant: %s\n", err); return 1; }
  int n = p2q_outbox_install(conn, cfg->pg_schema, err, sizeof err);
  if (n < 0) return die(conn, "init", err);
  printf("outbox schema %s ready (%s)\n", cfg->pg_schema,
         n ? "installed or upgraded" : "already up to date");
  PQfinish(conn);
  return 0;
}

static int query_params(PGconn *conn, const char *sql, int n, const char *const *params,
                        PGresult **out, char *err, size_t errlen) {
  PGresult *r = PQexecParams(conn, sql, n, NULL, params, NULL, NULL, 0);
  if (PQresultStatus(r) != PGRES_TUPLES_OK && PQresultStatus(r) != PGRES_COMMAND_OK) {
    snprintf(err, errlen, "%s", PQresultErrorMessage(r));
    PQclear(r);
    return -1;
  }
  *out = r;
  return 0;
}

int p2q_cmd_status(const p2q_config_t *cfg, int argc, char **argv) {
  int json = argc == 1 && !strcmp(argv[0], "--json");
  if (argc > 1 || (argc == 1 && !json)) { fprintf(stderr, "usage: pg2qdrant status [--json]\n"); return 2; }
  char err[1024];
  PGconn *conn = p2q_admin_connect(cfg, "pg2qdrant/status", err, sizeof err);
  if (!conn) { fprintf(stderr, "pg2qdrant: %s\n", err); return 1; }
  char *sql = p2q_outbox_status_sql(cfg->pg_schema);
  PGresult *r = NULL;
  int rc = sql ? query_params(conn, sql, 0, NULL, &r, err, sizeof err) : (snprintf(err, sizeof err, "out of memory"), -1);
  free(sql);
  if (rc) return die(conn, "status", err);
  if (json) printf("{\"event_types\":[");
  else printf("%-24s %10s %10s %10s %10s %14s\n", "event_type", "pending", "in_flight", "retrying", "dead", "oldest_age_s");
  int estimated = 0; /* types whose counts are estimates (more than P2Q_OUTBOX_STATUS_EXACT events) */
  for (int i = 0; i < PQntuples(r); i++) {
    int est = PQgetvalue(r, i, 6)[0] == 't';
    estimated += est;
    if (json) {
      p2q_buf_t name = P2Q_BUF_INIT;
      p2q_buf_json_string(&name, PQgetvalue(r, i, 0), strlen(PQgetvalue(r, i, 0)));
      printf("%s{\"event_type\":%s,\"pending\":%s,\"in_flight\":%s,\"retrying\":%s,\"dead\":%s,"
             "\"oldest_pending_age_seconds\":%s}", i ? "," : "", p2q_buf_str(&name), PQgetvalue(r, i, 1),
             PQgetvalue(r, i, 2), PQgetvalue(r, i, 3), PQgetvalue(r, i, 4), PQgetvalue(r, i, 5));
      p2q_buf_free(&name);
    } else {
      /* which of the two is an estimate: the one above the cap */
      char pending[32], dead[32];
      long long queued = atoll(PQgetvalue(r, i, 1)) + atoll(PQgetvalue(r, i, 2)) + atoll(PQgetvalue(r, i, 3));
      snprintf(pending, sizeof pending, "%s%s", est && queued > P2Q_OUTBOX_STATUS_EXACT ? "~" : "", PQgetvalue(r, i, 1));
      snprintf(dead, sizeof dead, "%s%s", est && atoll(PQgetvalue(r, i, 4)) > P2Q_OUTBOX_STATUS_EXACT ? "~" : "",
               PQgetvalue(r, i, 4));
      printf("%-24s %10s %10s %10s %10s %14s\n", PQgetvalue(r, i, 0), pending,
             PQgetvalue(r, i, 2), PQgetvalue(r, i, 3), dead, PQgetvalue(r, i, 5));
    }
  }
  if (json) {
    printf("],\"exact_up_to\":%d,\"estimated\":[", P2Q_OUTBOX_STATUS_EXACT);
    for (int i = 0, k = 0; i < PQntuples(r); i++) {
      if (PQgetvalue(r, i, 6)[0] != 't') continue;
      p2q_buf_t name = P2Q_BUF_INIT;
      p2q_buf_json_string(&name, PQgetvalue(r, i, 0), strlen(PQgetvalue(r, i, 0)));
      printf("%s%s", k++ ? "," : "", p2q_buf_str(&name));
      p2q_buf_free(&name);
    }
  } else if (estimated) {
    printf("~ estimated: more than %d events (or dead letters) of that type; up to %d every count is exact;"
           " in_flight and retrying are counted among the oldest %d\n", P2Q_OUTBOX_STATUS_EXACT,
           P2Q_OUTBOX_STATUS_EXACT, P2Q_OUTBOX_STATUS_EXACT + 1);
  }
  /* the outbox schema against this build: what `run` would say at start */
  char hash[41];
  int srv = p2q_admin_check_schema(conn, cfg->pg_schema, err, sizeof err);
  p2q_outbox_functions_hash(hash);
  p2q_buf_t drift = P2Q_BUF_INIT; /* rules whose table no longer fits them (cmd_apply.c) */
  p2q_drift_report(conn, cfg, json, &drift);
  if (json) {
    printf("],\"drift\":%s", p2q_buf_str(&drift));
    p2q_buf_t msg = P2Q_BUF_INIT;
    p2q_buf_json_string(&msg, srv ? err : "up to date", strlen(srv ? err : "up to date"));
    printf(",\"schema\":{\"ok\":%s,\"expected_version\":%d,\"expected_functions_hash\":\"%s\",\"message\":%s}}\n",
           srv ? "false" : "true", p2q_outbox_schema_version(), hash, p2q_buf_str(&msg));
    p2q_buf_free(&msg);
  } else {
    if (srv) printf("\noutbox schema: %s\n", err);
    else printf("\noutbox schema: up to date (version %d, functions %.12s)\n", p2q_outbox_schema_version(), hash);
    if (drift.len) printf("%s", drift.data);
  }
  p2q_buf_free(&drift);
  PQclear(r);
  PQfinish(conn);
  return 0;
}

int p2q_cmd_retry(const p2q_config_t *cfg, int argc, char **argv) {
  const char *type = NULL;
  int dead = 0;
  for (int i = 0; i < argc; i++) {
    if (!strcmp(argv[i], "--dead")) dead = 1;
    else if (!strcmp(argv[i], "--event-type") && i + 1 < argc) type = argv[++i];
    else { fprintf(stderr, "usage: pg2qdrant retry [--event-type T] [--dead]\n"); return 2; }
  }
  char err[1024];
  PGconn *conn = p2q_admin_connect(cfg, "pg2qdrant/retry", err, sizeof err);
  if (!conn) { fprintf(stderr, "pg2qdrant: %s\n", err); return 1; }
  p2q_buf_t sql = P2Q_BUF_INIT, q = P2Q_BUF_INIT;
  p2q_sql_ident(&q, cfg->pg_schema);
  if (dead) /* the original id is kept: a newer event of the same row still wins; the claim's
               low-water mark is lowered to it in the same statement (sync_outbox_mark_lower) */
    p2q_buf_printf(&sql,
      "WITH back AS (DELETE FROM %s.sync_outbox_dead WHERE $1::text IS NULL OR event_type = $1 RETURNING *),"
      " ins AS (INSERT INTO %s.sync_outbox (id, event_type, routing_key, rule, source_table, row_key, op, payload,"
      "  vec, attempts, max_attempts, available_at, last_error, created_at) OVERRIDING SYSTEM VALUE"
      " SELECT id, event_type, routing_key, rule, source_table, row_key, op, payload, vec, 0, max_attempts, now(),"
      "  last_error, created_at FROM back RETURNING id, event_type),"
      " low AS (SELECT %s.sync_outbox_mark_lower(i.event_type, min(i.id)) FROM ins i GROUP BY i.event_type)"
      " SELECT (SELECT count(*) FROM ins), (SELECT count(*) FROM low)", q.data, q.data, q.data);
  else
    p2q_buf_printf(&sql,
      "UPDATE %s.sync_outbox SET available_at = now() WHERE claimed_by IS NULL AND available_at > now()"
      " AND ($1::text IS NULL OR event_type = $1)", q.data);
  const char *params[] = {type};
  PGresult *r = NULL;
  int rc = query_params(conn, p2q_buf_str(&sql), 1, params, &r, err, sizeof err);
  p2q_buf_free(&sql);
  p2q_buf_free(&q);
  if (rc) return die(conn, "retry", err);
  printf("%s %s event(s) to be tried now\n", dead ? PQgetvalue(r, 0, 0) : PQcmdTuples(r), dead ? "dead" : "waiting");
  PQclear(r);
  if (dead) { /* wake the daemons */
    PGresult *n = PQexec(conn, "SELECT pg_catalog.pg_notify('" P2Q_NOTIFY_CHANNEL "', '')");
    PQclear(n);
  }
  PQfinish(conn);
  return 0;
}

/* Delete in small batches until fewer than `batch` rows go; returns the total or -1. */
static long long prune_loop(PGconn *conn, const char *sql, const char *param, char *err, size_t errlen) {
  long long total = 0;
  for (;;) {
    PGresult *r = NULL;
    const char *params[] = {param};
    if (query_params(conn, sql, 1, params, &r, err, errlen)) return -1;
    long long n = atoll(PQcmdTuples(r));
    PQclear(r);
    total += n;
    if (n < 5000) return total;
  }
}

/* Idle leases: one walk over the lease table with the daemon's own rule (sync_outbox_reclaim_leases,
   the lease reclaimer's function: the same SQL decides what may go). Returns the total or -1;
   *blocked gets the last reason the function gave for reclaiming nothing ("" if none). */
static long long prune_leases(PGconn *conn, const char *schema, char *blocked, size_t bl, char *err, size_t errlen) {
  char *sql = p2q_outbox_sql("SELECT reclaimed, last_rule, last_key::text, blocked"
                             " FROM @SCHEMA@.sync_outbox_reclaim_leases($1, $2::jsonb, $3::int)", schema);
  char *rule = NULL, *key = NULL, limit[16];
  long long total = 0;
  if (!sql) { snprintf(err, errlen, "out of memory"); return -1; }
  snprintf(limit, sizeof limit, "%d", 5000);
  blocked[0] = 0;
  for (;;) {
    PGresult *r = NULL;
    const char *params[] = {rule, key, limit};
    if (query_params(conn, sql, 3, params, &r, err, errlen)) { total = -1; break; }
    total += atoll(PQgetvalue(r, 0, 0));
    if (!PQgetisnull(r, 0, 3)) snprintf(blocked, bl, "%s", PQgetvalue(r, 0, 3));
    free(rule);
    free(key);
    rule = PQgetisnull(r, 0, 1) ? NULL : strdup(PQgetvalue(r, 0, 1));
    key = PQgetisnull(r, 0, 2) ? NULL : strdup(PQgetvalue(r, 0, 2));
    PQclear(r);
    if (!rule || !key) break; /* the end of the table (or blocked, or out of memory: stop) */
  }
  free(rule);
  free(key);
  free(sql);
  return total;
}

int p2q_cmd_prune(const p2q_config_t *cfg, int argc, char **argv) {
  const char *age = "7d";
  for (int i = 0; i < argc; i++) {
    if (!strcmp(argv[i], "--older-than") && i + 1 < argc) age = argv[++i];
    else { fprintf(stderr, "usage: pg2qdrant prune [--older-than 7d]\n"); return 2; }
  }
  long long ms = p2q_parse_age_ms(age);
  if (ms < 0) { fprintf(stderr, "pg2qdrant: prune: bad age '%s' (e.g. 7d, 12h, 30m)\n", age); return 2; }
  char err[1024], msparam[32], blocked[64];
  snprintf(msparam, sizeof msparam, "%lld", ms);
  PGconn *conn = p2q_admin_connect(cfg, "pg2qdrant/prune", err, sizeof err);
  if (!conn) { fprintf(stderr, "pg2qdrant: %s\n", err); return 1; }
  p2q_buf_t dead = P2Q_BUF_INIT, q = P2Q_BUF_INIT;
  p2q_sql_ident(&q, cfg->pg_schema);
  /* finished events are deleted when acknowledged; what remains to prune is dead letters older
     than the age, then idle leases by the reclaimer's rule (age plays no part in it) */
  p2q_buf_printf(&dead, "DELETE FROM %s.sync_outbox_dead WHERE id IN (SELECT id FROM %s.sync_outbox_dead"
                        " WHERE died_at < now() - $1::bigint * interval '1 millisecond' LIMIT 5000)", q.data, q.data);
  long long nd = prune_loop(conn, p2q_buf_str(&dead), msparam, err, sizeof err);
  long long nl = nd < 0 ? -1 : prune_leases(conn, cfg->pg_schema, blocked, sizeof blocked, err, sizeof err);
  p2q_buf_free(&dead);
  p2q_buf_free(&q);
  if (nl < 0) return die(conn, "prune", err);
  printf("pruned %lld dead letter(s) older than %s and %lld idle lease(s)\n", nd, age, nl);
  if (*blocked)
    printf("some idle leases were kept: %s (see README \"Outbox space\")\n", blocked);
  PQfinish(conn);
  return 0;
}

int p2q_cmd_config(const p2q_config_t *cfg, int argc, char **argv) {
  if (argc != 1 || strcmp(argv[0], "--dump")) { fprintf(stderr, "usage: pg2qdrant config --dump\n"); return 2; }
  p2q_config_dump(cfg, stdout);
  return 0;
}

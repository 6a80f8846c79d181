/*
 * cmd_admin.c — the operator commands that talk to PostgreSQL only: init, status, retry, prune,
 * config. Blocking libpq on the main thread; each command is one short transaction or a loop of
 * small ones (prune), so it never holds locks for long.
 */
#include "pg2qdrant/capture.h"
#include "reconcile_cmd.h"
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

/* The statement that finishes a page of `retry --dead` after its upserts (p2q_reconcile_fix_recapture:
   $1 the page's keys, $2 the rule): the dead letters of the page go, and each key with no
   (selected) row gets a delete carrying its newest dead letter's OLD id (the mark lowered to it in
   the same statement), so that a row inserted concurrently (a writer that drew its id after that)
   is applied after it. That ordering needs the table's SHARE lock; `locked` 0 (a role that may not
   take it) keeps the dead letters of keys with no row instead and enqueues no delete. Returns the
   dead letters brought back and the marks lowered. */
static void retry_after_sql(p2q_buf_t *after, const char *lookup, const char *schema_q, int locked) {
  p2q_buf_reset(after);
  p2q_buf_printf(after,
    "WITH l AS (%s), back AS (DELETE FROM %s.sync_outbox_dead d WHERE d.rule = $2"
    "  AND d.row_key IN (SELECT l.v::jsonb FROM l%s) RETURNING d.*),"
    " ins AS (INSERT INTO %s.sync_outbox (id, event_type, routing_key, rule, source_table, row_key, op, payload,"
    "  attempts, max_attempts, available_at, last_error, created_at) OVERRIDING SYSTEM VALUE"
    "  SELECT DISTINCT ON (b.row_key) b.id, b.event_type, b.routing_key, b.rule, b.source_table, b.row_key, 'delete',"
    "  b.payload, 0, GREATEST(b.max_attempts, 1), now(), b.last_error, b.created_at FROM back b"
    "  WHERE b.row_key IN (SELECT l.v::jsonb FROM l WHERE l.key_text IS NULL) ORDER BY b.row_key, b.id DESC"
    "  RETURNING id, event_type, row_key),"
    " low AS (SELECT %s.sync_outbox_mark_lower(i.event_type, min(i.id)) FROM ins i GROUP BY i.event_type)"
    " SELECT (SELECT count(*) FROM back), (SELECT count(*) FROM low)",
    lookup, schema_q, locked ? "" : " WHERE l.key_text IS NOT NULL", schema_q, schema_q);
}

/* A page of `retry --dead` that failed, again key by key (p2q_reconcile_fix_recapture): a key
   the rule's table cannot take (a dead letter a stranger's table wrote through a capture function
   (capture_relid.c), say {"id": "abc"} for a bigint key: jsonb_populate_record raises) is kept and
   counted in *kept, the others come back as usual. -1 when no key of the page could (the failure
   is not the keys'), else 0 with *n the dead letters brought back. */
static int retry_keys_one_by_one(rec_t *c, const char *keys, const char *after, int locked, long long *n,
                                 long long *kept) {
  PGresult *res = NULL;
  const char *params[] = {keys};
  int rc = query_params(c->conn, "SELECT pg_catalog.jsonb_build_array(e)::text FROM pg_catalog.jsonb_array_elements($1::jsonb) e",
                        1, params, &res, c->err, sizeof c->err);
  long long ok = 0, bad = 0;
  for (int i = 0; !rc && i < PQntuples(res); i++) {
    long long one = 0;
    if (p2q_reconcile_fix_recapture(c, PQgetvalue(res, i, 0), after, locked, &one)) bad++;
    else { ok++; *n += one; }
  }
  PQclear(res);
  if (rc || (ok == 0 && bad > 0)) return -1;
  *kept += bad;
  return 0;
}

/* retry --dead: each dead letter's row enqueued again as it is NOW, rule by rule of the config,
   keys in pages of 1,000 in key order, one transaction each (p2q_reconcile_fix_recapture): a row
   that exists gets an upsert of its present state with a new id (read FOR SHARE: newer than
   anything a writer committed, older than anything one commits later); a key with no (selected)
   row gets a delete (retry_after_sql), under the table's SHARE lock (a row inserted meanwhile
   commits after the delete, and its own newer event supersedes it); the dead letters go. Never a
   dead letter's own snapshot, as before migration 015: nothing remembers any more whether a newer
   event of its row was applied since it died, and that older snapshot would overwrite it
   (bench/issue11/session13-nl13.md D4). A role that may not lock the table (it needs UPDATE,
   DELETE or TRUNCATE on it) brings back the dead letters whose row exists and keeps the others,
   with a message: a delete enqueued without the lock could be applied after a concurrent insert
   of its key (rv13b), so none is. Dead letters of a rule the config does not have stay. Returns
   the dead letters brought back, or -1 (err). */
static long long retry_dead(const p2q_config_t *cfg, PGconn *conn, const char *type, char *err, size_t errlen) {
  p2q_buf_t q = P2Q_BUF_INIT, page = P2Q_BUF_INIT, after = P2Q_BUF_INIT;
  long long back = 0;
  p2q_sql_ident(&q, cfg->pg_schema);
  p2q_buf_printf(&page, "SELECT jsonb_agg(k.row_key ORDER BY k.row_key)::text, (array_agg(k.row_key ORDER BY k.row_key DESC))[1]::text FROM"
                        " (SELECT DISTINCT d.row_key FROM %s.sync_outbox_dead d WHERE d.rule = $1"
                        " AND ($2::jsonb IS NULL OR d.row_key > $2::jsonb) ORDER BY d.row_key LIMIT 1000) k",
                 q.data);
  for (int i = 0; back >= 0 && i < cfg->n_rules; i++) {
    const p2q_rule_config_t *r = &cfg->rules[i];
    if (r->shadow_of > 0 || (type && strcmp(r->event_type ? r->event_type : r->name, type))) continue;
    rec_t c;
    memset(&c, 0, sizeof c);
    c.cfg = cfg; c.r = r; c.conn = conn;
    if (p2q_reconcile_build_sql(&c)) { snprintf(c.err, sizeof c.err, "cannot generate SQL"); back = -1; }
    int locked = 1;
    long long kept = 0;
    retry_after_sql(&after, p2q_buf_str(&c.lookup), q.data, locked);
    char *cursor = NULL;
    while (back >= 0) {
      PGresult *res = NULL;
      const char *params[] = {r->name, cursor};
      if (query_params(conn, p2q_buf_str(&page), 2, params, &res, c.err, sizeof c.err)) { back = -1; break; }
      char *keys = PQgetisnull(res, 0, 0) ? NULL : strdup(PQgetvalue(res, 0, 0));
      if (!PQgetisnull(res, 0, 1)) {
        free(cursor);
        cursor = strdup(PQgetvalue(res, 0, 1));
      }
      PQclear(res);
      if (!keys) break;
      long long n = 0;
      int rc = p2q_reconcile_fix_recapture(&c, keys, p2q_buf_str(&after), locked, &n);
      if (rc == P2Q_EPG_DENIED) {  /* this role may not lock the table: this page again, without deletes */
        locked = 0;
        retry_after_sql(&after, p2q_buf_str(&c.lookup), q.data, locked);
        rc = p2q_reconcile_fix_recapture(&c, keys, p2q_buf_str(&after), locked, &n);
      }
      if (rc && rc != P2Q_EPG_DENIED) { /* a key the table cannot take (capture_relid.c's dead letters) */
        n = 0;
        rc = retry_keys_one_by_one(&c, keys, p2q_buf_str(&after), locked, &n, &kept);
      }
      if (rc) back = -1;
      else back += n;
      free(keys);
    }
    if (back >= 0 && kept)
      fprintf(stderr, "pg2qdrant: retry: rule %s: %lld dead event key(s) kept: the table cannot take them as its key"
                      " (a stranger's table's rows refused by the capture functions?); `prune` removes them\n",
              r->name, kept);
    if (back >= 0 && !locked) {  /* the dead letters of the keys walked that are still there */
      PGresult *res = NULL;
      const char *params[] = {r->name, cursor};
      p2q_buf_t cnt = P2Q_BUF_INIT;
      p2q_buf_printf(&cnt, "SELECT count(*) FROM %s.sync_outbox_dead d WHERE d.rule = $1 AND d.row_key <= $2::jsonb",
                     q.data);
      if (!query_params(conn, p2q_buf_str(&cnt), 2, params, &res, c.err, sizeof c.err) &&
          strcmp(PQgetvalue(res, 0, 0), "0")) {
        fprintf(stderr, "pg2qdrant: retry: rule %s: %s dead event(s) kept: their rows are gone, and the delete"
                        " that retries them needs the SHARE lock on %s (UPDATE, DELETE or TRUNCATE on the table),"
                        " which this role may not take; run `retry --dead` as a role that may\n",
                r->name, PQgetvalue(res, 0, 0), r->table);
      }
      PQclear(res);
      p2q_buf_free(&cnt);
    }
    free(cursor);
    if (back < 0) snprintf(err, errlen, "rule %.100s: %.800s", r->name, c.err);
    p2q_reconcile_sql_free(&c);
  }
  p2q_buf_free(&q);
  p2q_buf_free(&page);
  p2q_buf_free(&after);
  return back;
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
  if (dead) {
    long long n = retry_dead(cfg, conn, type, err, sizeof err);
    if (n < 0) return die(conn, "retry", err);
    printf("%lld dead event(s) to be tried now (their rows enqueued again as they are now)\n", n);
    PGresult *r = PQexec(conn, "SELECT pg_catalog.pg_notify('" P2Q_NOTIFY_CHANNEL "', '')"); /* wake the daemons */
    PQclear(r);
    PQfinish(conn);
    return 0;
  }
  p2q_buf_t sql = P2Q_BUF_INIT, q = P2Q_BUF_INIT;
  p2q_sql_ident(&q, cfg->pg_schema);
  p2q_buf_printf(&sql,
    "UPDATE %s.sync_outbox SET available_at = now() WHERE claimed_by IS NULL AND available_at > now()"
    " AND ($1::text IS NULL OR event_type = $1)", q.data);
  const char *params[] = {type};
  PGresult *r = NULL;
  int rc = query_params(conn, p2q_buf_str(&sql), 1, params, &r, err, sizeof err);
  p2q_buf_free(&sql);
  p2q_buf_free(&q);
  if (rc) return die(conn, "retry", err);
  printf("%s waiting event(s) to be tried now\n", PQcmdTuples(r));
  PQclear(r);
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

int p2q_cmd_prune(const p2q_config_t *cfg, int argc, char **argv) {
  const char *age = "7d";
  for (int i = 0; i < argc; i++) {
    if (!strcmp(argv[i], "--older-than") && i + 1 < argc) age = argv[++i];
    else { fprintf(stderr, "usage: pg2qdrant prune [--older-than 7d]\n"); return 2; }
  }
  long long ms = p2q_parse_age_ms(age);
  if (ms < 0) { fprintf(stderr, "pg2qdrant: prune: bad age '%s' (e.g. 7d, 12h, 30m)\n", age); return 2; }
  char err[1024], msparam[32];
  snprintf(msparam, sizeof msparam, "%lld", ms);
  PGconn *conn = p2q_admin_connect(cfg, "pg2qdrant/prune", err, sizeof err);
  if (!conn) { fprintf(stderr, "pg2qdrant: %s\n", err); return 1; }
  p2q_buf_t dead = P2Q_BUF_INIT, q = P2Q_BUF_INIT;
  p2q_sql_ident(&q, cfg->pg_schema);
  /* finished events are deleted when acknowledged; what remains to prune is dead letters older
     than the age (there is no lease table since migration 015) */
  p2q_buf_printf(&dead, "DELETE FROM %s.sync_outbox_dead WHERE id IN (SELECT id FROM %s.sync_outbox_dead"
                        " WHERE died_at < now() - $1::bigint * interval '1 millisecond' LIMIT 5000)", q.data, q.data);
  long long nd = prune_loop(conn, p2q_buf_str(&dead), msparam, err, sizeof err);
  p2q_buf_free(&dead);
  p2q_buf_free(&q);
  if (nd < 0) return die(conn, "prune", err);
  printf("pruned %lld dead letter(s) older than %s\n", nd, age);
  PQfinish(conn);
  return 0;
}

int p2q_cmd_config(const p2q_config_t *cfg, int argc, char **argv) {
  if (argc != 1 || strcmp(argv[0], "--dump")) { fprintf(stderr, "usage: pg2qdrant config --dump\n"); return 2; }
  p2q_config_dump(cfg, stdout);
  return 0;
}

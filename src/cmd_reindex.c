/*
 * cmd_reindex.c — the CLI side of zero-downtime re-embedding (main thread; blocking libpq and a
 * private Qdrant loop): `pg2qdrant reindex RULE [--no-wait]`, and the steps `apply` and `run`
 * take for every rule (p2q_reindex_sync).
 *
 * Per rule (whose collection no other rule writes):
 *  - ADOPT: neither a collection nor an alias NAME exists: create NAME__v1 as the rule wants NAME,
 *    then the alias NAME → NAME__v1 (a crash between the two: the next run finds v1 and makes the
 *    alias). A real collection NAME (made before aliases) stays as it is: "legacy", served as v1.
 *  - the first time a rule is seen, record what its version means (sync_reindex_rule: signature
 *    and definition) — the definition is what later dual writes use for the old version;
 *  - START (apply when the signature changed, `reindex` always): record the job (phase create,
 *    the old definition from sync_reindex_rule), THEN create NAME__v{to} (to = one above every
 *    existing version: a version left by a crash is never reused), then phase dual. From there
 *    the daemons (reindex_exec.c) take over: dual writes, backfill, catch-up, swap, grace, retire.
 * A job killed in phase create is resumed by running `reindex RULE` (or `apply`) again.
 * `reindex` then waits, printing progress, until the alias serves the new version (--no-wait:
 * returns at once). Exit 0 done (or started with --no-wait), 1 error, 2 usage.
 */
#include "pg2qdrant/capture.h"
#include "pg2qdrant/collection.h"
#include "pg2qdrant/commands.h"
#include "pg2qdrant/errors.h"
#include "pg2qdrant/log.h"
#include "pg2qdrant/qdrant_alias.h"
#include "pg2qdrant/reindex.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define USAGE "usage: pg2qdrant reindex RULE [--no-wait]\n"

typedef struct {
  const p2q_config_t *cfg;
  PGconn *conn;
  p2q_qdrant_blocking_t *qb;
  p2q_qdrant_options_t qo;
  char schema[200];
  FILE *out;
} rctx_t;

static PGresult *q(rctx_t *c, const char *fmt, int n, const char *const *p, char *err, size_t errlen) {
  char sql[1500];
  snprintf(sql, sizeof sql, fmt, c->schema, c->schema);
  PGresult *res = PQexecParams(c->conn, sql, n, NULL, p, NULL, NULL, 0);
  ExecStatusType st = PQresultStatus(res);
  if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) return res;
  snprintf(err, errlen, "%s", PQresultErrorMessage(res));
  size_t l = strlen(err);
  while (l && err[l - 1] == '\n') err[--l] = 0;
  PQclear(res);
  return NULL;
}

static int shared_collection(const p2q_config_t *cfg, const p2q_rule_config_t *r) {
  for (int i = 0; i < cfg->n_rules; i++)
    if (&cfg->rules[i] != r && !strcmp(cfg->rules[i].collection, r->collection)) return 1;
  return 0;
}

static int create_version(rctx_t *c, const p2q_rule_config_t *r, int k, char *err, size_t errlen) {
  char name[300];
  if (p2q_reindex_version_name(r->collection, k, name, sizeof name) < 0) { snprintf(err, errlen, "name too long"); return -1; }
  return p2q_collection_ensure_as(&c->qo, c->cfg, r->collection, name, P2Q_COLL_CREATE, NULL, err, errlen) ? -1 : 0;
}

/* Fresh: NAME__v1 (or the highest version left by a crash) + alias. */
static int adopt(rctx_t *c, const p2q_rule_config_t *r, int *av, int mv, char *err, size_t errlen) {
  int k = mv > 0 ? mv : 1;
  char name[300];
  p2q_reindex_version_name(r->collection, k, name, sizeof name);
  if (create_version(c, r, k, err, errlen) || p2q_alias_switch_sync(c->qb, r->collection, name, 0, err, errlen)) return -1;
  P2Q_INFO("reindex_adopt", "rule=%s alias=%s collection=%s", r->name, r->collection, name);
  if (c->out) fprintf(c->out, "collection %s: created as %s behind the alias %s\n", r->collection, name, r->collection);
  *av = k;
  return 0;
}

/* START a job for r from the recorded serving version. */
static int start_job(rctx_t *c, const p2q_rule_config_t *r, const char *sig, const char *def, int av, int mv,
                     char *err, size_t errlen) {
  char sv[16], tv[16], lg[8];
  const char *p1[] = {r->name};
  PGresult *res = q(c, "SELECT version, legacy, definition FROM %s.sync_reindex_rule WHERE rule = $1", 1, p1, err, errlen);
  if (!res) return -1;
  if (PQntuples(res) != 1) { PQclear(res); snprintf(err, errlen, "no recorded version"); return -1; }
  int from = atoi(PQgetvalue(res, 0, 0)), legacy = av == P2Q_REINDEX_LEGACY;
  int to = (from > mv ? from : mv) + 1;
  snprintf(sv, sizeof sv, "%d", from);
  snprintf(tv, sizeof tv, "%d", to);
  snprintf(lg, sizeof lg, "%s", legacy ? "true" : "false");
  const char *p[] = {r->name, r->collection, sv, tv, lg, sig, def, PQgetvalue(res, 0, 2)};
  PGresult *ins = q(c, "INSERT INTO %s.sync_reindex (rule, collection, from_version, to_version, legacy, signature, "
                       "definition, old_definition) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (rule) DO NOTHING",
                    8, p, err, errlen);
  PQclear(res);
  if (!ins) return -1;
  PQclear(ins);
  if (c->out) fprintf(c->out, "reindex %s: started: %s__v%d%s -> %s__v%d\n", r->name, r->collection, from,
                      legacy ? " (legacy collection)" : "", r->collection, to);
  P2Q_INFO("reindex_start", "rule=%s from=%d to=%d legacy=%d", r->name, from, to, legacy);
  return 0;
}

/* A job in phase create: make NAME__v{to}, then dual. */
static int finish_create(rctx_t *c, const p2q_rule_config_t *r, char *err, size_t errlen) {
  const char *p[] = {r->name};
  PGresult *res = q(c, "SELECT to_version FROM %s.sync_reindex WHERE rule = $1 AND phase = 'create'", 1, p, err, errlen);
  if (!res) return -1;
  int to = PQntuples(res) == 1 ? atoi(PQgetvalue(res, 0, 0)) : 0;
  PQclear(res);
  if (!to) return 0;
  if (create_version(c, r, to, err, errlen)) return -1;
  if (!(res = q(c, "UPDATE %s.sync_reindex SET phase = 'dual' WHERE rule = $1 AND phase = 'create'", 1, p, err, errlen)))
    return -1;
  PQclear(res);
  return 0;
}

/* One rule: adopt / record / start. *busy = a job runs for it afterwards. start: 0 never
   (run), 1 when the signature changed (apply), 2 always (reindex). */
static int sync_rule(rctx_t *c, const p2q_rule_config_t *r, int start, int *busy, char *err, size_t errlen) {
  char sig[1024];
  p2q_buf_t def = P2Q_BUF_INIT;
  int av = 0, mv = 0, rc = -1;
  PGresult *res = NULL;
  *busy = 0;
  if (p2q_reindex_rule_signature(r, sig, sizeof sig) < 0 || p2q_reindex_definition(c->cfg, r, &def)) {
    snprintf(err, errlen, "rule definition too long");
    goto out;
  }
  if (start == 0) { /* run: a rule seen before needs no Qdrant call (start-up stays one GET per collection) */
    const char *p0[] = {r->name};
    if (!(res = q(c, "SELECT r.signature, j.phase, r.version FROM %s.sync_reindex_rule r "
                     "LEFT JOIN %s.sync_reindex j USING (rule) WHERE r.rule = $1", 1, p0, err, errlen)))
      goto out;
    if (PQntuples(res) == 1) {
      int job = !PQgetisnull(res, 0, 1);
      if (!job && strcmp(PQgetvalue(res, 0, 0), sig))
        P2Q_WARN("rule_meaning_changed", "rule=%s why=\"its vectors' definition differs from the one version %s was "
                 "built with: run `pg2qdrant apply` (or `pg2qdrant reindex %s`) to re-embed without downtime\"",
                 r->name, PQgetvalue(res, 0, 2), r->name);
      if (job && !strcmp(PQgetvalue(res, 0, 1), "create") && finish_create(c, r, err, errlen)) goto out;
      *busy = job;
      rc = 0;
      goto out;
    }
    PQclear(res);
    res = NULL;
  }
  if (p2q_alias_observe_sync(c->qb, r->collection, &av, &mv, err, errlen)) {
    if (p2q_qdrant_blocking_status(c->qb) != 404) goto out;
    /* no alias API (a stand-in such as bench's null sink): the collection is used by its name */
    P2Q_WARN("reindex_unsupported", "rule=%s why=\"Qdrant answered 404 to GET /aliases or /collections: not versioned\"",
             r->name);
    rc = 0;
    goto out;
  }
  if (av == 0 && adopt(c, r, &av, mv, err, errlen)) goto out;
  char ver[16];
  snprintf(ver, sizeof ver, "%d", av > 0 ? av : 1);
  const char *p[] = {r->name, r->collection, ver, av == P2Q_REINDEX_LEGACY ? "true" : "false", sig, p2q_buf_str(&def)};
  if (!(res = q(c, "INSERT INTO %s.sync_reindex_rule (rule, collection, version, legacy, signature, definition) "
                   "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (rule) DO NOTHING", 6, p, err, errlen)))
    goto out;
  PQclear(res);
  if (!(res = q(c, "SELECT r.signature, j.phase, j.signature, j.to_version FROM %s.sync_reindex_rule r "
                   "LEFT JOIN %s.sync_reindex j USING (rule) WHERE r.rule = $1", 1, p, err, errlen)))
    goto out;
  int same = !strcmp(PQgetvalue(res, 0, 0), sig), job = !PQgetisnull(res, 0, 1);
  if (job && strcmp(PQgetvalue(res, 0, 2), sig) && strcmp(PQgetvalue(res, 0, 1), "swapped")) {
    snprintf(err, errlen, "a re-embedding to %s__v%s for another definition of the rule is running (phase %s): "
             "let it finish (pg2qdrant reindex %s), then apply again", r->collection, PQgetvalue(res, 0, 3),
             PQgetvalue(res, 0, 1), r->name);
    goto out;
  }
  if (!job && (start == 2 || (start == 1 && !same))) {
    if (start_job(c, r, sig, p2q_buf_str(&def), av, mv, err, errlen)) goto out;
    job = 1;
  } else if (!job && !same) {
    P2Q_WARN("rule_meaning_changed", "rule=%s why=\"its vectors' definition differs from the one version %d was "
             "built with: run `pg2qdrant apply` (or `pg2qdrant reindex %s`) to re-embed without downtime\"",
             r->name, av > 0 ? av : 1, r->name);
  }
  if (job && finish_create(c, r, err, errlen)) goto out;
  *busy = job;
  rc = 0;
out:
  PQclear(res);
  p2q_buf_free(&def);
  return rc;
}

int p2q_reindex_sync(const p2q_config_t *cfg, PGconn *conn, int start, FILE *out, int *busy, char *err,
                     size_t errlen) {
  rctx_t c = {.cfg = cfg, .conn = conn, .out = out};
  p2q_buf_t s = P2Q_BUF_INIT;
  int rc = 0;
  p2q_sql_ident(&s, cfg->pg_schema);
  snprintf(c.schema, sizeof c.schema, "%s", p2q_buf_str(&s));
  p2q_buf_free(&s);
  p2q_qdrant_options_from_config(cfg, &c.qo);
  if (p2q_qdrant_blocking_open(&c.qo, &c.qb)) { snprintf(err, errlen, "invalid Qdrant options"); return -1; }
  for (int i = 0; i < cfg->n_rules && !rc; i++) {
    const p2q_rule_config_t *r = &cfg->rules[i];
    busy[i] = 0;
    if (shared_collection(cfg, r)) continue; /* several rules on one collection: not versioned */
    char e[1024];
    if (sync_rule(&c, r, start, &busy[i], e, sizeof e)) {
      snprintf(err, errlen, "rule %s: %s", r->name, e);
      rc = -1;
    }
  }
  p2q_qdrant_blocking_close(c.qb);
  return rc;
}

/* Progress until the alias serves the new version (the job's phase is swapped or gone). */
static int watch(rctx_t *c, const char *rule) {
  char err[1024], last[256] = "";
  const char *p[] = {rule};
  for (;;) {
    PGresult *res = q(c, "SELECT phase, from_version, to_version, backfill_done, "
                         "(SELECT count(*) FROM %s.sync_outbox o WHERE o.rule = j.rule AND o.id <= j.backfill_upto) "
                         "FROM %s.sync_reindex j WHERE rule = $1", 1, p, err, sizeof err);
    if (!res) { fprintf(stderr, "pg2qdrant: reindex: %s\n", err); return 1; }
    if (PQntuples(res) == 0 || !strcmp(PQgetvalue(res, 0, 0), "swapped")) {
      printf("reindex %s: searches now read the new version%s\n", rule,
             PQntuples(res) ? "; the old one is deleted after reindex_grace" : "");
      PQclear(res);
      return 0;
    }
    char line[256];
    snprintf(line, sizeof line, "reindex %s: v%s -> v%s: %s, %s row(s) backfilled, %s pending", rule,
             PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 2), PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 3),
             PQgetisnull(res, 0, 4) ? "-" : PQgetvalue(res, 0, 4));
    PQclear(res);
    if (strcmp(line, last)) { printf("%s\n", line); fflush(stdout); snprintf(last, sizeof last, "%s", line); }
    struct timespec ts = {0, 500 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
}

int p2q_cmd_reindex(const p2q_config_t *cfg, int argc, char **argv) {
  const char *name = NULL;
  int no_wait = 0;
  for (int i = 0; i < argc; i++) {
    if (!strcmp(argv[i], "--no-wait")) no_wait = 1;
    else if (argv[i][0] != '-' && !name) name = argv[i];
    else { fputs(USAGE, stderr); return 2; }
  }
  if (!name) { fputs(USAGE, stderr); return 2; }
  const p2q_rule_config_t *r = p2q_config_rule(cfg, name);
  if (!r) { fprintf(stderr, "pg2qdrant: reindex: no rule %s in %s\n", name, cfg->path); return 2; }
  if (shared_collection(cfg, r)) {
    fprintf(stderr, "pg2qdrant: reindex: rule %s: collection %s is written by several rules: not versioned\n", name,
            r->collection);
    return 2;
  }
  char err[1024];
  PGconn *conn = p2q_admin_connect(cfg, "pg2qdrant/reindex", err, sizeof err);
  if (!conn) { fprintf(stderr, "pg2qdrant: %s\n", err); return 1; }
  rctx_t c = {.cfg = cfg, .conn = conn, .out = stdout};
  p2q_buf_t s = P2Q_BUF_INIT;
  p2q_sql_ident(&s, cfg->pg_schema);
  snprintf(c.schema, sizeof c.schema, "%s", p2q_buf_str(&s));
  p2q_buf_free(&s);
  p2q_qdrant_options_from_config(cfg, &c.qo);
  int busy = 0, rc = 1;
  if (p2q_admin_check_run(cfg)) goto out;
  if (p2q_qdrant_blocking_open(&c.qo, &c.qb)) { fprintf(stderr, "pg2qdrant: reindex: invalid Qdrant options\n"); goto out; }
  /* a job already running (resumed) is not started again */
  if (sync_rule(&c, r, 2, &busy, err, sizeof err)) {
    fprintf(stderr, "pg2qdrant: reindex: rule %s: %s\n", name, err);
    goto out;
  }
  rc = no_wait ? 0 : watch(&c, name);
out:
  p2q_qdrant_blocking_close(c.qb);
  PQfinish(conn);
  return rc;
}

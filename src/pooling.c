/*
 * pooling.c — is this PostgreSQL connection behind a transaction-pooling proxy (PgBouncer
 * pool_mode = transaction or statement)? Blocking, main thread only (`check`, and `run` before
 * its loop starts).
 *
 * pg2qdrant needs a session: LISTEN, the settings pinned right after connecting (session.h) and
 * the claims' owner identity (backend pid + start, see sync_outbox_recover) all belong to one
 * server session. Behind transaction pooling, a session's server connection goes back to the
 * pool after each transaction, so another client's transaction runs on it.
 *
 * The probe, on connection A and a second connection B:
 *   A: SELECT pg_backend_pid()                        -> p1 (A's transaction ends)
 *   B: BEGIN; SELECT pg_backend_pid()                 -> pb (B holds its server connection)
 *   A: SELECT pg_backend_pid(), current_setting(...)  -> p2, TimeZone
 * A real session (direct, or session pooling) keeps its backend: pb != p1, p2 == p1, TimeZone
 * still the pinned UTC. Transaction pooling shows at least one of: pb == p1 (PgBouncer hands
 * the most recently released server connection to B), p2 != p1, or the pinned setting lost.
 * Statement pooling refuses B's BEGIN. There are no false positives on a real session.
 */
#include "pg2qdrant/commands.h"
#include "pg2qdrant/errors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int one_row(PGconn *c, const char *sql, char *v1, char *v2, size_t n, char *err, size_t errlen) {
  PGresult *r = PQexec(c, sql);
  int ok = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1;
  if (ok) {
    snprintf(v1, n, "%s", PQgetvalue(r, 0, 0));
    if (v2) snprintf(v2, n, "%s", PQnfields(r) > 1 ? PQgetvalue(r, 0, 1) : "");
  } else {
    snprintf(err, errlen, "%s", PQresultErrorMessage(r));
    size_t l = strlen(err);
    while (l && (err[l - 1] == '\n' || err[l - 1] == ' ')) err[--l] = 0;
  }
  PQclear(r);
  return ok ? 0 : -1;
}

int p2q_pooling_detect(PGconn *a, p2q_pg_opener_t open_b, void *arg, char *why, size_t n) {
  char p1[32], p2[32], pb[32], tz[64], err[512];
  int rc = -1;
  PGconn *b = NULL;
  if (one_row(a, "SELECT pg_catalog.pg_backend_pid()", p1, NULL, sizeof p1, why, n)) return -1;
  if (!(b = open_b(arg, why, n))) return -1; /* the caller's connect: this file never calls up */
  PGresult *r = PQexec(b, "BEGIN");
  int began = PQresultStatus(r) == PGRES_COMMAND_OK;
  if (!began) snprintf(err, sizeof err, "%s", PQresultErrorMessage(r));
  PQclear(r);
  if (!began) {
    snprintf(why, n, "a transaction block was refused (%.400s): statement pooling", err);
    rc = 1;
    goto out;
  }
  if (one_row(b, "SELECT pg_catalog.pg_backend_pid()", pb, NULL, sizeof pb, why, n)) goto out;
  if (one_row(a, "SELECT pg_catalog.pg_backend_pid(), pg_catalog.current_setting('TimeZone')", p2, tz,
              sizeof tz < sizeof p2 ? sizeof tz : sizeof p2, why, n))
    goto out;
  rc = 1;
  if (!strcmp(pb, p1))
    snprintf(why, n, "another connection's transaction ran on this session's server connection "
                     "(backend pid %s): transaction pooling", p1);
  else if (strcmp(p2, p1))
    snprintf(why, n, "the server backend changed between two transactions of one session (pid %s, "
                     "then %s): transaction pooling", p1, p2);
  else if (strcmp(tz, "UTC"))
    snprintf(why, n, "a setting pinned at connect (TimeZone = UTC) was lost between transactions "
                     "(now %s): transaction pooling", tz);
  else
    rc = 0;
out:
  r = PQexec(b, "ROLLBACK");
  PQclear(r);
  PQfinish(b);
  return rc;
}

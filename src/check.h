/*
 * check.h — internals of `pg2qdrant check` (check_report.c: reporting; cmd_check.c: the PostgreSQL checks;
 * check_privs.c: the role's privileges per command; check_remote.c: Qdrant, collections,
 * embedders, the listen address).
 */
#ifndef P2Q_CHECK_H
#define P2Q_CHECK_H

#include <libpq-fe.h>

#include "pg2qdrant/buf.h"
#include "pg2qdrant/config.h"

typedef enum { P2Q_CHECK_OK = 0, P2Q_CHECK_WARN, P2Q_CHECK_FAIL } p2q_check_level_t;

typedef struct {
  const p2q_config_t *cfg;
  int json;          /* --json: lines collected in out */
  int n, n_fail, n_warn;
  int schema_ok;     /* the outbox schema is this build's */
  p2q_buf_t out;
} p2q_check_t;

/* One line: "ok    name  message -- fix: FIX" (fix may be NULL), or one JSON object. */
void p2q_check_report(p2q_check_t *c, p2q_check_level_t lvl, const char *name, const char *fix,
                      const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* One line per command (run, apply, reconcile): ok, or the missing privileges named. */
void p2q_check_privileges(p2q_check_t *c, PGconn *conn);
/* Qdrant, each collection, each embedder, [http] listen. */
void p2q_check_remote(p2q_check_t *c);

#endif

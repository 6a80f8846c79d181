/*
 * pg.h — one asynchronous PostgreSQL connection driven by a libuv loop.
 *
 * Loop thread only: every function here, every callback, the PGconn and the uv handles.
 *
 * Lifecycle: p2q_pg_new() starts a non-blocking connect. After every successful (re)connect
 * on_connect fires; the owner then (re-)issues LISTEN and runs its catch-up work. When the
 * connection breaks, every in-flight and queued query fails once with P2Q_EPG_LOST, then
 * on_disconnect fires and a reconnect is scheduled with exponential backoff + full jitter
 * (capped). p2q_pg_close() cancels everything (callbacks fire once with P2Q_ECANCELED), closes
 * the handles, PQfinish()es and then calls its callback; the p2q_pg_t is freed after that.
 *
 * Queries: a FIFO; one statement per query (PQsendQueryParams, text parameters, text results),
 * sent only after every result of the previous one was drained. Queries are accepted only
 * while connected (between on_connect and on_disconnect); otherwise p2q_pg_query() returns
 * P2Q_EPG_LOST and its callback never fires.
 *
 * Connecting: conninfo is a libpq keyword/value string or URI (or NULL for the libpq
 * environment). TCP keepalives default to idle 30 s / interval 10 s / 3 probes unless the
 * conninfo sets them. Every session first runs P2Q_SESSION_PIN_SQL (session.h: TimeZone UTC,
 * extra_float_digits 3, …) before on_connect fires, whatever PGTZ/PGOPTIONS/`options` say, and
 * synchronous_commit when the options name one; the user's other options are left as they are. libpq resolves host names synchronously inside PQconnectPoll (its
 * documented exception to non-blocking connects): use an IP, a socket directory or `hostaddr`
 * when a slow resolver must never stall the loop.
 *
 * Result ownership: `res` passed to a p2q_pg_result_cb belongs to the library and is PQclear()ed
 * when the callback returns — copy what you need, never PQclear it. On error res is NULL, err
 * is P2Q_EPG_QUERY (server rejected the statement; connection still usable), P2Q_EPG_LOST or
 * P2Q_ECANCELED, errmsg is a NUL-terminated message, and p2q_pg_sqlstate() gives the SQLSTATE
 * (or "") while the callback runs.
 */
#ifndef P2Q_PG_H
#define P2Q_PG_H

#include <libpq-fe.h>
#include <stdint.h>
#include <uv.h>

typedef struct p2q_pg_s p2q_pg_t;

typedef void (*p2q_pg_result_cb)(p2q_pg_t *pg, PGresult *res, int err, const char *errmsg, void *arg);
typedef void (*p2q_pg_notify_cb)(p2q_pg_t *pg, const char *channel, const char *payload, int be_pid,
                                 void *arg);
typedef void (*p2q_pg_connect_cb)(p2q_pg_t *pg, void *arg);
/* err: P2Q_EPG_LOST (an established connection broke) or P2Q_EPG_CONNECT (an attempt failed). */
typedef void (*p2q_pg_disconnect_cb)(p2q_pg_t *pg, int err, const char *errmsg, void *arg);
typedef void (*p2q_pg_close_cb)(p2q_pg_t *pg, void *arg);

typedef struct {
  const char *conninfo;          /* keyword=value string or URI; NULL/"" = libpq environment */
  const char *name;              /* label for logs (copied); NULL = "pg" */
  uint64_t reconnect_min_ms;     /* 0 = 100 */
  uint64_t reconnect_max_ms;     /* 0 = 30000 */
  uint64_t connect_timeout_ms;   /* per attempt; 0 = 10000 (libpq ignores connect_timeout here) */
  const char *synchronous_commit; /* pinned with the session settings (copied); NULL: the server's */
  p2q_pg_connect_cb on_connect;       /* optional */
  p2q_pg_disconnect_cb on_disconnect; /* optional */
  p2q_pg_notify_cb on_notify;         /* optional; LISTEN notifications */
  void *arg;                          /* passed to the three callbacks above */
} p2q_pg_options_t;

/* Create the connection object and start connecting. *out is valid until the close callback. */
int p2q_pg_new(uv_loop_t *loop, const p2q_pg_options_t *opts, p2q_pg_t **out);

/* Queue one statement. params: nparams text values (NULL entries are SQL NULL).
 * Returns 0 (cb fires exactly once later), P2Q_EPG_LOST (not connected), P2Q_ECANCELED
 * (closing), P2Q_EINVAL or P2Q_ENOMEM; on failure cb never fires. sql and params are copied. */
int p2q_pg_query(p2q_pg_t *pg, const char *sql, int nparams, const char *const *params,
                 p2q_pg_result_cb cb, void *arg);

/* The same for a statement run often: prepared as `stmt` (one name per SQL text) at its first
 * use on each connection, then executed by name, so PostgreSQL parses and plans it once per
 * connection. Past P2Q_PG_PREPARED_MAX names, statements run unnamed. */
#define P2Q_PG_PREPARED_MAX 8
int p2q_pg_query_prepared(p2q_pg_t *pg, const char *stmt, const char *sql, int nparams,
                          const char *const *params, p2q_pg_result_cb cb, void *arg);

/* The same with results in binary format when `binary` (each value is its type's send bytes,
 * still NUL-terminated by libpq: text columns read as before). */
int p2q_pg_query_prepared_fmt(p2q_pg_t *pg, const char *stmt, const char *sql, int nparams,
                              const char *const *params, int binary, p2q_pg_result_cb cb, void *arg);

/* Queue `LISTEN "channel"` (identifier quoted by libpq). Same contract as p2q_pg_query. */
int p2q_pg_listen(p2q_pg_t *pg, const char *channel, p2q_pg_result_cb cb, void *arg);

/* Close: cancel queued queries (ECANCELED), close handles, PQfinish, then cb (may be NULL).
 * Safe from inside any callback of this connection. Returns P2Q_EBUSY if already closing. */
int p2q_pg_close(p2q_pg_t *pg, p2q_pg_close_cb cb, void *arg);

int p2q_pg_is_connected(const p2q_pg_t *pg);
/* Number of queries waiting or in flight. */
unsigned p2q_pg_pending(const p2q_pg_t *pg);
/* Count of successful connects so far (1 after the first on_connect). */
unsigned p2q_pg_connect_count(const p2q_pg_t *pg);
/* SQLSTATE of the failed query whose callback is running, "" otherwise. */
const char *p2q_pg_sqlstate(const p2q_pg_t *pg);
/* Backend PID of the current connection, 0 when not connected. */
int p2q_pg_backend_pid(const p2q_pg_t *pg);
/* The underlying PGconn for escaping helpers only (PQescapeLiteral…); NULL if not connected.
 * Never send queries or read results on it directly. */
PGconn *p2q_pg_conn(p2q_pg_t *pg);

/* SQLSTATE classification (pure). */
typedef enum {
  P2Q_PG_SQLSTATE_FAIL = 0,  /* fail this operation, keep the connection */
  P2Q_PG_SQLSTATE_RETRY,     /* 40001 serialization_failure, 40P01 deadlock: retry the tx */
  P2Q_PG_SQLSTATE_RECONNECT  /* class 08, 57P01..57P03: the connection is gone */
} p2q_pg_sqlstate_class_t;
p2q_pg_sqlstate_class_t p2q_pg_classify_sqlstate(const char *sqlstate);

#endif

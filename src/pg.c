/*
 * pg.c — one asynchronous PostgreSQL connection on a libuv loop.
 *
 * Owns: the PGconn, one uv_poll_t for its socket (re-created when libpq switches sockets
 * during connect; closed before PQfinish), one uv_timer_t (connect timeout while connecting,
 * a 0 ms "send now" kick while connected so p2q_pg_query never runs callbacks inline, the end
 * of a read pause while a big result streams in (read_more), reconnect delay while
 * disconnected) and a FIFO of queries. Runs on the loop thread only.
 *
 * States: WAIT (no connection; timer armed for the next attempt) → CONNECTING (PQconnectPoll
 * driven by the poll) → PINNING (the statement of session.h pins the settings that change text
 * output; still under the connect timeout; a failure counts as a failed attempt) → READY
 * (queries flow; permanent readable poll for notifications and loss detection) → back to WAIT
 * on loss; CLOSING is terminal. on_connect fires only once the settings are pinned.
 *
 * Named statements (p2q_pg_query_prepared) are prepared on first use on each connection: the
 * Parse runs as the query's first step (`preparing`), then the same query is executed; a failed
 * Parse fails that query. The names prepared are forgotten with the connection.
 *
 * Invariants: at most one query is in flight (`cur`), and all of its results are drained before
 * the next PQsendQueryParams; every accepted query's callback fires exactly once; user
 * callbacks may call p2q_pg_query/p2q_pg_close, so after every callback the code re-checks the
 * state before touching the PGconn. The struct is freed only from a uv close callback, so it
 * stays valid for the rest of any call stack that started a close.
 */
#include "pg2qdrant/pg.h"
#include "pg2qdrant/redact.h"

#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "pg2qdrant/backoff.h"
#include "pg2qdrant/errors.h"
#include "pg2qdrant/log.h"
#include "pg2qdrant/session.h"

typedef enum { ST_WAIT = 0, ST_CONNECTING, ST_PINNING, ST_READY, ST_CLOSING } pg_state_t;

typedef struct pg_query_s {
  struct pg_query_s *next;
  char *sql;
  char *stmt;            /* statement name (prepared on first use), NULL: unnamed */
  int preparing;         /* its Parse is in flight */
  int binary;            /* results in binary format (PQgetvalue: the type's send bytes) */
  int nparams;
  char **params;
  p2q_pg_result_cb cb;
  void *arg;
} pg_query_t;

struct p2q_pg_s {
  uv_loop_t *loop;
  char *conninfo;
  char *name;
  char *sync_commit;     /* synchronous_commit pinned with the settings, NULL: the server's */
  p2q_pg_options_t opts;
  PGconn *conn;
  uv_poll_t *poll;       /* current poll handle or NULL */
  int poll_fd;
  uv_timer_t timer;
  p2q_backoff_t backoff;
  unsigned attempt;      /* failed attempts since the last successful connect */
  pg_state_t state;
  pg_query_t *head, *tail;
  unsigned nqueued;
  pg_query_t *cur;       /* in flight */
  PGresult *cur_res;     /* result kept for cur (first error wins, else the last result) */
  int want_write;        /* PQflush returned 1 */
  int paused;            /* reading paused (timer) while cur's result streams in */
  unsigned cur_reads;    /* reads that left cur's result incomplete */
  unsigned sent;         /* queries sent: which one cur is (a pointer could be reused) */
  unsigned connects;
  char *prepared[P2Q_PG_PREPARED_MAX]; /* statement names prepared on this connection */
  int n_prepared;
  char sqlstate[6];
  int handles_open;
  p2q_pg_close_cb close_cb;
  void *close_arg;
};

static void on_poll(uv_poll_t *h, int status, int events);
static void read_more(p2q_pg_t *pg);
static void on_timer(uv_timer_t *t);
static void pg_lost(p2q_pg_t *pg, const char *msg);
static void pump(p2q_pg_t *pg);
static void forget_prepared(p2q_pg_t *pg);
static void read_resume(p2q_pg_t *pg);

p2q_pg_sqlstate_class_t p2q_pg_classify_sqlstate(const char *s) {
  if (!s || strlen(s) != 5) return P2Q_PG_SQLSTATE_FAIL;
  if (s[0] == '0' && s[1] == '8') return P2Q_PG_SQLSTATE_RECONNECT;
  if (!strcmp(s, "57P01") || !strcmp(s, "57P02") || !strcmp(s, "57P03"))
    return P2Q_PG_SQLSTATE_RECONNECT;
  if (!strcmp(s, "40001") || !strcmp(s, "40P01")) return P2Q_PG_SQLSTATE_RETRY;
  return P2Q_PG_SQLSTATE_FAIL;
}

/* Copy a libpq message without its trailing newline(s). */
static void msg_copy(char *dst, size_t n, const char *src) {
  snprintf(dst, n, "%s", src && *src ? src : "unknown error");
  size_t l = strlen(dst);
  while (l > 0 && (dst[l - 1] == '\n' || dst[l - 1] == ' ')) dst[--l] = 0;
}

static void query_free(pg_query_t *q) {
  if (!q) return;
  for (int i = 0; i < q->nparams; i++) free(q->params[i]);
  free(q->params);
  free(q->sql);
  free(q->stmt);
  free(q);
}

/* Fire a query's callback (exactly once) and free it. Takes ownership of res. */
static void query_complete(p2q_pg_t *pg, pg_query_t *q, PGresult *res, int err, const char *msg,
                           const char *sqlstate) {
  snprintf(pg->sqlstate, sizeof pg->sqlstate, "%s", sqlstate ? sqlstate : "");
  q->cb(pg, err ? NULL : res, err, err ? msg : NULL, q->arg);
  pg->sqlstate[0] = 0;
  if (res) PQclear(res);
  query_free(q);
}

/* Fail the in-flight query and the whole queue with err. Callbacks may enqueue nothing new
 * (the state is no longer READY, so p2q_pg_query refuses). */
static void fail_all(p2q_pg_t *pg, int err, const char *msg) {
  pg_query_t *q = pg->cur;
  pg->cur = NULL;
  if (pg->cur_res) { PQclear(pg->cur_res); pg->cur_res = NULL; }
  if (q) query_complete(pg, q, NULL, err, msg, NULL);
  while ((q = pg->head)) {
    pg->head = q->next;
    if (!pg->head) pg->tail = NULL;
    pg->nqueued--;
    query_complete(pg, q, NULL, err, msg, NULL);
  }
}

/* ---- handles ---- */

static void on_poll_closed(uv_handle_t *h);
static void on_timer_closed(uv_handle_t *h);

static void finish_close(p2q_pg_t *pg) {
  fail_all(pg, P2Q_ECANCELED, "connection closed");
  P2Q_DEBUG("pg_closed", "name=%s", pg->name);
  if (pg->close_cb) pg->close_cb(pg, pg->close_arg);
  forget_prepared(pg);
  free(pg->conninfo);
  free(pg->sync_commit);
  free(pg->name);
  free(pg);
}

static void on_poll_closed(uv_handle_t *h) {
  p2q_pg_t *pg = h->data;
  free(h);
  if (--pg->handles_open == 0 && pg->state == ST_CLOSING) finish_close(pg);
}

static void on_timer_closed(uv_handle_t *h) {
  p2q_pg_t *pg = h->data;
  if (--pg->handles_open == 0 && pg->state == ST_CLOSING) finish_close(pg);
}

static void poll_drop(p2q_pg_t *pg) {
  if (!pg->poll) return;
  uv_close((uv_handle_t *)pg->poll, on_poll_closed); /* stops it now; freed in the callback */
  pg->poll = NULL;
  pg->poll_fd = -1;
}

/* Watch fd for events, reusing the poll handle when the fd is unchanged. */
static int poll_set(p2q_pg_t *pg, int fd, int events) {
  if (fd < 0) return P2Q_EIO;
  if (pg->poll && pg->poll_fd != fd) poll_drop(pg);
  if (!pg->poll) {
    uv_poll_t *p = malloc(sizeof *p);
    if (!p) return P2Q_ENOMEM;
    if (uv_poll_init(pg->loop, p, fd) != 0) { free(p); return P2Q_EIO; }
    p->data = pg;
    pg->poll = p;
    pg->poll_fd = fd;
    pg->handles_open++;
  }
  return uv_poll_start(pg->poll, events, on_poll) == 0 ? 0 : P2Q_EIO;
}

static void forget_prepared(p2q_pg_t *pg) {
  for (int i = 0; i < pg->n_prepared; i++) free(pg->prepared[i]);
  pg->n_prepared = 0;
}

static int is_prepared(const p2q_pg_t *pg, const char *stmt) {
  for (int i = 0; i < pg->n_prepared; i++)
    if (!strcmp(pg->prepared[i], stmt)) return 1;
  return 0;
}

static void conn_drop(p2q_pg_t *pg) {
  forget_prepared(pg);
  poll_drop(pg); /* the poll handle goes before PQfinish closes the fd */
  if (pg->conn) { PQfinish(pg->conn); pg->conn = NULL; }
  pg->want_write = 0;
  pg->paused = 0;
}

static void schedule_reconnect(p2q_pg_t *pg) {
  if (pg->state == ST_CLOSING) return;
  uint64_t delay = p2q_backoff_delay(&pg->backoff, pg->attempt);
  if (pg->attempt < 64) pg->attempt++;
  pg->state = ST_WAIT;
  P2Q_INFO("pg_reconnect_scheduled", "name=%s delay_ms=%llu attempt=%u", pg->name,
           (unsigned long long)delay, pg->attempt);
  uv_timer_start(&pg->timer, on_timer, delay, 0);
}

/* ---- connecting ---- */

static void notice_processor(void *arg, const char *message) {
  p2q_pg_t *pg = arg;
  char q[512], m[512];
  msg_copy(m, sizeof m, message);
  P2Q_DEBUG("pg_notice", "name=%s msg=%s", pg->name, p2q_log_q(q, sizeof q, m));
}

static void connect_failed(p2q_pg_t *pg, const char *why) {
  char msg[512], q[600];
  msg_copy(msg, sizeof msg, why);
  uv_timer_stop(&pg->timer);
  conn_drop(pg);
  pg->state = ST_WAIT;
  P2Q_WARN("pg_connect_failed", "name=%s attempt=%u err=%s", pg->name, pg->attempt + 1,
           p2q_log_q(q, sizeof q, msg));
  if (pg->opts.on_disconnect) pg->opts.on_disconnect(pg, P2Q_EPG_CONNECT, msg, pg->opts.arg);
  schedule_reconnect(pg);
}

static void connected(p2q_pg_t *pg) {
  uv_timer_stop(&pg->timer);
  if (poll_set(pg, PQsocket(pg->conn), UV_READABLE) != 0) { connect_failed(pg, "poll failed"); return; }
  pg->state = ST_READY;
  pg->attempt = 0;
  pg->connects++;
  P2Q_INFO("pg_connected", "name=%s backend_pid=%d connects=%u", pg->name,
           PQbackendPID(pg->conn), pg->connects);
  if (pg->opts.on_connect) pg->opts.on_connect(pg, pg->opts.arg);
  if (pg->state == ST_READY) pump(pg);
}

/* PQflush during PINNING and watch the socket accordingly; -1 after connect_failed. */
static int pin_flush(p2q_pg_t *pg) {
  int r = PQflush(pg->conn);
  if (r < 0) { connect_failed(pg, PQerrorMessage(pg->conn)); return -1; }
  if (poll_set(pg, PQsocket(pg->conn), UV_READABLE | (r == 1 ? UV_WRITABLE : 0)) != 0) {
    connect_failed(pg, "poll failed");
    return -1;
  }
  return 0;
}

/* The protocol handshake is done: pin the session settings before anyone may query.
 * synchronous_commit (the daemon's sessions: `off`, README "Guarantees") is set in the same
 * statement, at session level, so every transaction of the session commits that way unless a
 * statement says otherwise: the claim (sql/functions.sql) commits a claim that hands out events
 * with the server's setting, SET LOCAL … TO DEFAULT, because such a claim must be durable before
 * its events reach Qdrant. The writer's sessions and the CLI's (admin.c) are never touched. */
static void pin_start(p2q_pg_t *pg) {
  static const char *const sync_sql = P2Q_SESSION_PIN_SQL ", pg_catalog.set_config('synchronous_commit', $1, false)";
  if (PQsetnonblocking(pg->conn, 1) != 0) { connect_failed(pg, PQerrorMessage(pg->conn)); return; }
  PQsetNoticeProcessor(pg->conn, notice_processor, pg);
  const char *params[1] = {pg->sync_commit};
  int sent = pg->sync_commit ? PQsendQueryParams(pg->conn, sync_sql, 1, NULL, params, NULL, NULL, 0)
                             : PQsendQuery(pg->conn, P2Q_SESSION_PIN_SQL);
  if (!sent) { connect_failed(pg, PQerrorMessage(pg->conn)); return; }
  pg->state = ST_PINNING;
  pin_flush(pg);
}

/* Socket event while PINNING: READY once every result of the pin statement is in. */
static void pin_step(p2q_pg_t *pg, int status, int events) {
  char msg[600];
  msg[0] = 0;
  if (status < 0) { connect_failed(pg, uv_strerror(status)); return; }
  if ((events & UV_WRITABLE) && pin_flush(pg) != 0) return;
  if (!PQconsumeInput(pg->conn)) { connect_failed(pg, PQerrorMessage(pg->conn)); return; }
  while (!PQisBusy(pg->conn)) {
    PGresult *r = PQgetResult(pg->conn);
    if (!r) {
      if (msg[0]) connect_failed(pg, msg);
      else connected(pg);
      return;
    }
    if (PQresultStatus(r) != PGRES_TUPLES_OK && !msg[0])
      snprintf(msg, sizeof msg, "cannot pin the session settings: %s", PQresultErrorMessage(r));
    PQclear(r);
  }
}

/* One PQconnectPoll step: stop the poll first (libpq may close/replace the socket inside). */
static void connect_step(p2q_pg_t *pg) {
  if (pg->poll) uv_poll_stop(pg->poll);
  PostgresPollingStatusType st = PQconnectPoll(pg->conn);
  int fd = PQsocket(pg->conn);
  switch (st) {
  case PGRES_POLLING_READING:
    if (poll_set(pg, fd, UV_READABLE) != 0) connect_failed(pg, "poll failed");
    break;
  case PGRES_POLLING_WRITING:
    if (poll_set(pg, fd, UV_WRITABLE) != 0) connect_failed(pg, "poll failed");
    break;
  case PGRES_POLLING_OK:
    pin_start(pg);
    break;
  default:
    connect_failed(pg, PQerrorMessage(pg->conn));
    break;
  }
}

static void start_connect(p2q_pg_t *pg) {
  /* TCP keepalive defaults so a silently dead peer (e.g. an idle LISTEN connection across a
   * partition) is noticed in about a minute instead of hours. They come before dbname, so a
   * conninfo string can override them (libpq keeps the last value of a repeated keyword). */
  static const char *const dkeys[] = {"keepalives_idle", "keepalives_interval", "keepalives_count"};
  static const char *const dvals[] = {"30", "10", "3"};
  const char *keys[6], *vals[6];
  int n = 0;
  for (int i = 0; i < 3; i++) { keys[n] = dkeys[i]; vals[n++] = dvals[i]; }
  if (pg->conninfo && *pg->conninfo) { keys[n] = "dbname"; vals[n++] = pg->conninfo; }
  keys[n] = "fallback_application_name";
  vals[n++] = "pg2qdrant";
  keys[n] = NULL;
  vals[n] = NULL;
  pg->state = ST_CONNECTING;
  pg->conn = PQconnectStartParams(keys, vals, 1);
  if (!pg->conn) { connect_failed(pg, "out of memory"); return; }
  if (PQstatus(pg->conn) == CONNECTION_BAD) { connect_failed(pg, PQerrorMessage(pg->conn)); return; }
  uv_timer_start(&pg->timer, on_timer, pg->opts.connect_timeout_ms, 0);
  /* Start by waiting for writability, as PQconnectPoll's contract says. */
  if (poll_set(pg, PQsocket(pg->conn), UV_WRITABLE) != 0) connect_failed(pg, "poll failed");
}

static void on_timer(uv_timer_t *t) {
  p2q_pg_t *pg = t->data;
  if (pg->state == ST_WAIT) start_connect(pg);
  else if (pg->state == ST_CONNECTING || pg->state == ST_PINNING) connect_failed(pg, "connect timeout");
  else if (pg->state == ST_READY && pg->paused) read_resume(pg);
  else if (pg->state == ST_READY) pump(pg);
}

/* ---- ready: sending, reading ---- */

static void pg_lost(p2q_pg_t *pg, const char *why) {
  char msg[512], q[600];
  msg_copy(msg, sizeof msg, why);
  conn_drop(pg);
  pg->state = ST_WAIT;
  P2Q_WARN("pg_connection_lost", "name=%s err=%s pending=%u", pg->name, p2q_log_q(q, sizeof q, msg),
           pg->nqueued + (pg->cur != NULL));
  fail_all(pg, P2Q_EPG_LOST, msg);
  if (pg->state != ST_WAIT) return; /* a callback closed us */
  if (pg->opts.on_disconnect) pg->opts.on_disconnect(pg, P2Q_EPG_LOST, msg, pg->opts.arg);
  if (pg->state != ST_WAIT) return;
  schedule_reconnect(pg);
}

/* PQflush and set the poll mask. Returns 0, or -1 after the connection was declared lost. */
static int flush_out(p2q_pg_t *pg) {
  int r = PQflush(pg->conn);
  if (r < 0) { pg_lost(pg, PQerrorMessage(pg->conn)); return -1; }
  pg->want_write = r == 1;
  if (poll_set(pg, pg->poll_fd >= 0 ? pg->poll_fd : PQsocket(pg->conn),
               UV_READABLE | (pg->want_write ? UV_WRITABLE : 0)) != 0) {
    pg_lost(pg, "poll failed");
    return -1;
  }
  return 0;
}

/* Send q: its Parse first when it is a named statement not yet prepared on this connection. */
static int send_query(p2q_pg_t *pg, pg_query_t *q) {
  const char *const *params = (const char *const *)q->params;
  q->preparing = q->stmt && !is_prepared(pg, q->stmt) && pg->n_prepared < P2Q_PG_PREPARED_MAX;
  if (q->preparing) return PQsendPrepare(pg->conn, q->stmt, q->sql, q->nparams, NULL);
  if (q->stmt && is_prepared(pg, q->stmt))
    return PQsendQueryPrepared(pg->conn, q->stmt, q->nparams, params, NULL, NULL, q->binary);
  return PQsendQueryParams(pg->conn, q->sql, q->nparams, NULL, params, NULL, NULL, q->binary);
}

static void pump(p2q_pg_t *pg) {
  while (pg->state == ST_READY && !pg->cur && pg->head) {
    pg_query_t *q = pg->head;
    pg->head = q->next;
    if (!pg->head) pg->tail = NULL;
    pg->nqueued--;
    q->next = NULL;
    if (!send_query(pg, q)) {
      if (PQstatus(pg->conn) == CONNECTION_BAD) {
        pg->cur = q; /* fails with the rest */
        pg_lost(pg, PQerrorMessage(pg->conn));
        return;
      }
      char msg[512];
      msg_copy(msg, sizeof msg, PQerrorMessage(pg->conn));
      query_complete(pg, q, NULL, P2Q_EPG_QUERY, msg, NULL);
      continue;
    }
    pg->cur = q;
    pg->cur_reads = 0;
    pg->sent++;
    if (flush_out(pg) != 0) return;
  }
}

/* The in-flight query's results are complete (PQgetResult returned NULL). */
static void finish_current(p2q_pg_t *pg) {
  pg_query_t *q = pg->cur;
  PGresult *res = pg->cur_res;
  pg->cur = NULL;
  pg->cur_res = NULL;
  ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
  const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
  /* prepared (42P05: it already was, our list was forgotten): now execute it */
  if (q->preparing && (st == PGRES_COMMAND_OK || (state && !strcmp(state, "42P05")))) {
    PQclear(res);
    pg->prepared[pg->n_prepared] = strdup(q->stmt);
    if (pg->prepared[pg->n_prepared]) pg->n_prepared++;
    q->next = pg->head; /* first in line again */
    pg->head = q;
    if (!pg->tail) pg->tail = q;
    pg->nqueued++;
    return;
  }
  if (st == PGRES_FATAL_ERROR || st == PGRES_BAD_RESPONSE || st == PGRES_NONFATAL_ERROR) {
    char msg[1024];
    const char *sqlstate = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    msg_copy(msg, sizeof msg, res ? PQresultErrorMessage(res) : PQerrorMessage(pg->conn));
    int gone = p2q_pg_classify_sqlstate(sqlstate) == P2Q_PG_SQLSTATE_RECONNECT;
    if (sqlstate && !strcmp(sqlstate, "26000")) forget_prepared(pg); /* deallocated behind our back */
    query_complete(pg, q, res, gone ? P2Q_EPG_LOST : P2Q_EPG_QUERY, msg, sqlstate);
    /* class 08 / 57P0x: the session is over even if the socket is not closed yet */
    if (gone && pg->state == ST_READY) pg_lost(pg, msg);
  } else {
    query_complete(pg, q, res, 0, NULL, NULL);
  }
}

static void drain_notifies(p2q_pg_t *pg) {
  PGnotify *n;
  while (pg->state == ST_READY && (n = PQnotifies(pg->conn)) != NULL) {
    if (pg->opts.on_notify) pg->opts.on_notify(pg, n->relname, n->extra, n->be_pid, pg->opts.arg);
    PQfreemem(n);
  }
}

static void read_results(p2q_pg_t *pg) {
  while (pg->state == ST_READY && pg->cur && !PQisBusy(pg->conn)) {
    PGresult *r = PQgetResult(pg->conn);
    if (!r) {
      finish_current(pg);
      if (pg->state != ST_READY) return;
      drain_notifies(pg);
      pump(pg);
      continue;
    }
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_COPY_IN || st == PGRES_COPY_OUT || st == PGRES_COPY_BOTH) {
      PQclear(r);
      pg_lost(pg, "COPY is not supported on this connection");
      return;
    }
    int keep_err = pg->cur_res && PQresultStatus(pg->cur_res) == PGRES_FATAL_ERROR;
    if (keep_err) PQclear(r);
    else { if (pg->cur_res) PQclear(pg->cur_res); pg->cur_res = r; }
  }
}

static void on_poll(uv_poll_t *h, int status, int events) {
  p2q_pg_t *pg = h->data;
  unsigned sent = pg->sent; /* cur is still the query it was (read_more) */
  if (pg->state == ST_CONNECTING) { connect_step(pg); return; }
  if (pg->state == ST_PINNING) { pin_step(pg, status, events); return; }
  if (pg->state != ST_READY) return;
  if (status < 0) { pg_lost(pg, uv_strerror(status)); return; }
  if ((events & UV_WRITABLE) && pg->want_write && flush_out(pg) != 0) return;
  if ((events & UV_READABLE) && !PQconsumeInput(pg->conn)) {
    pg_lost(pg, PQerrorMessage(pg->conn));
    return;
  }
  /* Parse even after a write-only wakeup: a PQflush that could not send everything reads the
   * socket itself (to avoid a send/receive deadlock), so the reply may already sit in libpq's
   * buffer and the socket will never turn readable for it. */
  drain_notifies(pg);
  read_results(pg);
  if (pg->state != ST_READY) return;
  if (PQstatus(pg->conn) == CONNECTION_BAD) { pg_lost(pg, PQerrorMessage(pg->conn)); return; }
  if ((events & UV_READABLE) && pg->want_write) flush_out(pg);
  if (pg->state == ST_READY && (events & UV_READABLE) && pg->cur && pg->sent == sent) read_more(pg);
}

/* A read left cur's result incomplete. A backend sends a big result 8 KB at a time, as fast as
   it can print the rows: reading each as it arrives is one wake-up (epoll_wait, a context
   switch, a recv) per 8 KB, ~70 for a claim of 256 events with 384-float vectors. From the
   READ_PAUSE_AFTER'th such read on, read everything already there, then stop watching the socket
   for READ_PAUSE_MS (the timer resumes: data that arrived meanwhile is read at once, so nothing
   waits longer than that): a few wake-ups per claim. Small results (a claim at low rates, an ack)
   come in one or a few reads and never wait. */
#define READ_PAUSE_AFTER 4
#define READ_PAUSE_MS 1
#define READ_BURST_MAX (1u << 20) /* libpq's input buffer stays below ~2 MB */
static void read_more(p2q_pg_t *pg) {
  int avail = 0;
  unsigned sent = pg->sent;
  if (++pg->cur_reads < READ_PAUSE_AFTER) return;
  while (pg->state == ST_READY && pg->sent == sent && pg->cur && PQisBusy(pg->conn) && !pg->want_write &&
         ioctl(pg->poll_fd, FIONREAD, &avail) == 0 && avail > 0) {
    /* all of it (up to READ_BURST_MAX) into libpq's buffer before parsing: libpq enlarges the
       buffer while it is nearly full (and never shrinks it), so later reads take what is there in
       one recv instead of 16 KB each (a 100k-event drain: 27.7k recvfrom + 25.7k ioctl -> 8.4k +
       4.2k). Each PQconsumeInput reads something while FIONREAD says there is something. */
    size_t burst = 0;
    do {
      if (!PQconsumeInput(pg->conn)) { pg_lost(pg, PQerrorMessage(pg->conn)); return; }
      burst += (size_t)avail;
    } while (burst < READ_BURST_MAX && ioctl(pg->poll_fd, FIONREAD, &avail) == 0 && avail > 0);
    read_results(pg);
  }
  if (pg->state != ST_READY || pg->sent != sent || !pg->cur || !PQisBusy(pg->conn) || pg->want_write) return;
  uv_poll_stop(pg->poll);
  pg->paused = 1;
  uv_timer_start(&pg->timer, on_timer, READ_PAUSE_MS, 0);
}

/* The pause is over: watch the socket again, and read what came meanwhile. */
static void read_resume(p2q_pg_t *pg) {
  pg->paused = 0;
  if (flush_out(pg) != 0) return;
  on_poll(pg->poll, 0, UV_READABLE);
}

/* ---- public API ---- */

int p2q_pg_new(uv_loop_t *loop, const p2q_pg_options_t *opts, p2q_pg_t **out) {
  p2q_pg_t *pg = NULL;
  int rc = P2Q_ENOMEM;
  if (!loop || !opts || !out) return P2Q_EINVAL;
  if (opts->conninfo && *opts->conninfo) { /* reject a malformed conninfo up front */
    char *perr = NULL;
    PQconninfoOption *o = PQconninfoParse(opts->conninfo, &perr);
    if (!o) {
      char q[600], m[512];
      msg_copy(m, sizeof m, perr);
      p2q_redact_libpq_error(m); /* libpq quotes the offending input, which may be the password */
      P2Q_ERROR("pg_conninfo_invalid", "err=%s", p2q_log_q(q, sizeof q, m));
      PQfreemem(perr);
      return P2Q_EINVAL;
    }
    PQconninfoFree(o);
  }
  pg = calloc(1, sizeof *pg);
  if (!pg) goto fail;
  pg->loop = loop;
  pg->opts = *opts;
  pg->poll_fd = -1;
  if (!pg->opts.reconnect_min_ms) pg->opts.reconnect_min_ms = 100;
  if (!pg->opts.reconnect_max_ms) pg->opts.reconnect_max_ms = 30000;
  if (pg->opts.reconnect_max_ms < pg->opts.reconnect_min_ms)
    pg->opts.reconnect_max_ms = pg->opts.reconnect_min_ms;
  if (!pg->opts.connect_timeout_ms) pg->opts.connect_timeout_ms = 10000;
  pg->name = strdup(opts->name ? opts->name : "pg");
  pg->conninfo = opts->conninfo ? strdup(opts->conninfo) : NULL;
  pg->sync_commit = opts->synchronous_commit ? strdup(opts->synchronous_commit) : NULL;
  if (!pg->name || (opts->conninfo && !pg->conninfo) || (opts->synchronous_commit && !pg->sync_commit))
    goto fail;
  pg->opts.conninfo = pg->conninfo;
  pg->opts.name = pg->name;
  pg->opts.synchronous_commit = pg->sync_commit;
  p2q_backoff_init(&pg->backoff, pg->opts.reconnect_min_ms, pg->opts.reconnect_max_ms, 0);
  if (uv_timer_init(loop, &pg->timer) != 0) { rc = P2Q_EIO; goto fail; }
  pg->timer.data = pg;
  pg->handles_open = 1;
  /* First attempt from the loop, so no callback can run inside p2q_pg_new. */
  pg->state = ST_WAIT;
  uv_timer_start(&pg->timer, on_timer, 0, 0);
  *out = pg;
  return 0;
fail:
  if (pg) { free(pg->name); free(pg->conninfo); free(pg->sync_commit); free(pg); }
  return rc;
}

int p2q_pg_query(p2q_pg_t *pg, const char *sql, int nparams, const char *const *params,
                 p2q_pg_result_cb cb, void *arg) {
  return p2q_pg_query_prepared(pg, NULL, sql, nparams, params, cb, arg);
}

int p2q_pg_query_prepared(p2q_pg_t *pg, const char *stmt, const char *sql, int nparams,
                          const char *const *params, p2q_pg_result_cb cb, void *arg) {
  return p2q_pg_query_prepared_fmt(pg, stmt, sql, nparams, params, 0, cb, arg);
}

int p2q_pg_query_prepared_fmt(p2q_pg_t *pg, const char *stmt, const char *sql, int nparams,
                              const char *const *params, int binary, p2q_pg_result_cb cb, void *arg) {
  pg_query_t *q = NULL;
  if (!pg || !sql || !cb || nparams < 0 || (nparams > 0 && !params)) return P2Q_EINVAL;
  if (pg->state == ST_CLOSING) return P2Q_ECANCELED;
  if (pg->state != ST_READY) return P2Q_EPG_LOST;
  q = calloc(1, sizeof *q);
  if (!q) goto fail;
  q->sql = strdup(sql);
  q->binary = binary != 0;
  if (!q->sql || (stmt && !(q->stmt = strdup(stmt)))) goto fail;
  if (nparams > 0) {
    q->params = calloc((size_t)nparams, sizeof *q->params);
    if (!q->params) goto fail;
    for (int i = 0; i < nparams; i++, q->nparams++) {
      if (params[i] && !(q->params[i] = strdup(params[i]))) goto fail;
    }
  }
  q->cb = cb;
  q->arg = arg;
  if (pg->tail) pg->tail->next = q;
  else pg->head = q;
  pg->tail = q;
  pg->nqueued++;
  /* Send from the loop (the timer is idle while READY), so no callback runs inside this call. */
  if (!pg->cur) uv_timer_start(&pg->timer, on_timer, 0, 0);
  return 0;
fail:
  query_free(q);
  return P2Q_ENOMEM;
}

int p2q_pg_listen(p2q_pg_t *pg, const char *channel, p2q_pg_result_cb cb, void *arg) {
  if (!pg || !channel || !cb) return P2Q_EINVAL;
  if (pg->state == ST_CLOSING) return P2Q_ECANCELED;
  if (pg->state != ST_READY) return P2Q_EPG_LOST;
  char *id = PQescapeIdentifier(pg->conn, channel, strlen(channel));
  if (!id) return P2Q_EINVAL;
  size_t n = strlen(id) + 8;
  char *sql = malloc(n);
  if (!sql) { PQfreemem(id); return P2Q_ENOMEM; }
  snprintf(sql, n, "LISTEN %s", id);
  PQfreemem(id);
  int rc = p2q_pg_query(pg, sql, 0, NULL, cb, arg);
  free(sql);
  return rc;
}

int p2q_pg_close(p2q_pg_t *pg, p2q_pg_close_cb cb, void *arg) {
  if (!pg) return P2Q_EINVAL;
  if (pg->state == ST_CLOSING) return P2Q_EBUSY;
  pg->state = ST_CLOSING;
  pg->close_cb = cb;
  pg->close_arg = arg;
  uv_timer_stop(&pg->timer);
  conn_drop(pg);
  uv_close((uv_handle_t *)&pg->timer, on_timer_closed);
  /* Queued queries are cancelled in finish_close, from the last handle's close callback. */
  return 0;
}

int p2q_pg_is_connected(const p2q_pg_t *pg) { return pg && pg->state == ST_READY; }
unsigned p2q_pg_pending(const p2q_pg_t *pg) { return pg ? pg->nqueued + (pg->cur != NULL) : 0; }
unsigned p2q_pg_connect_count(const p2q_pg_t *pg) { return pg ? pg->connects : 0; }
const char *p2q_pg_sqlstate(const p2q_pg_t *pg) { return pg ? pg->sqlstate : ""; }
int p2q_pg_backend_pid(const p2q_pg_t *pg) {
  return pg && pg->state == ST_READY ? PQbackendPID(pg->conn) : 0;
}
PGconn *p2q_pg_conn(p2q_pg_t *pg) { return pg && pg->state == ST_READY ? pg->conn : NULL; }

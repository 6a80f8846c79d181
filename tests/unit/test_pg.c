/*
 * test_pg.c — p2q_pg against a real PostgreSQL (libpq environment: PGHOST, PGPORT, …).
 * Tests needing a server skip when PGHOST is unset, unless P2Q_REQUIRE_PG=1 (then they fail).
 * Pure parts (SQLSTATE classification, argument checks, connect failure) always run.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>
#include <string.h>

#include "pg2qdrant/errors.h"
#include "pg2qdrant/log.h"
#include "pg2qdrant/pg.h"

#define MAXR 32

typedef struct {
  uv_loop_t loop;
  uv_timer_t watchdog;
  p2q_pg_t *pg, *pg2;
  int connects, disconnects, last_disc_err;
  int nres;
  int err[MAXR];
  char val[MAXR][128];
  char sqlstate[MAXR][6];
  int notified;
  char channel[64], payload[128];
  int notify_pid;
  int closed, closed2;
  int step;
  int timed_out;
} ctx_t;

static int need_pg(void) {
  if (getenv("PGHOST") && *getenv("PGHOST")) return 1;
  const char *req = getenv("P2Q_REQUIRE_PG");
  if (req && !strcmp(req, "1")) fail_msg("PGHOST unset but P2Q_REQUIRE_PG=1");
  return 0;
}

static void on_watchdog(uv_timer_t *t) {
  ctx_t *c = t->data;
  c->timed_out = 1;
  uv_stop(&c->loop);
}

static void ctx_init(ctx_t *c) {
  memset(c, 0, sizeof *c);
  assert_int_equal(uv_loop_init(&c->loop), 0);
  uv_timer_init(&c->loop, &c->watchdog);
  c->watchdog.data = c;
  uv_timer_start(&c->watchdog, on_watchdog, 20000, 0);
  uv_unref((uv_handle_t *)&c->watchdog);
}

/* Run until the pg objects are closed; watchdog fails the test if it takes too long. */
static void run(ctx_t *c) {
  uv_unref((uv_handle_t *)&c->watchdog);
  uv_run(&c->loop, UV_RUN_DEFAULT);
  assert_false(c->timed_out);
  uv_close((uv_handle_t *)&c->watchdog, NULL);
  uv_run(&c->loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&c->loop), 0);
}

static void on_closed(p2q_pg_t *pg, void *arg) {
  ctx_t *c = arg;
  if (pg == c->pg) c->closed++;
  else c->closed2++;
}

static void record(ctx_t *c, p2q_pg_t *pg, PGresult *res, int err, const char *msg) {
  assert_true(c->nres < MAXR);
  int i = c->nres++;
  c->err[i] = err;
  if (err) {
    assert_null(res);
    assert_non_null(msg);
    snprintf(c->val[i], sizeof c->val[i], "%s", msg);
    snprintf(c->sqlstate[i], sizeof c->sqlstate[i], "%s", p2q_pg_sqlstate(pg));
  } else {
    assert_non_null(res);
    assert_int_equal(PQresultStatus(res) == PGRES_TUPLES_OK || PQresultStatus(res) == PGRES_COMMAND_OK, 1);
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) > 0)
      snprintf(c->val[i], sizeof c->val[i], "%s", PQgetisnull(res, 0, 0) ? "<null>" : PQgetvalue(res, 0, 0));
    else
      snprintf(c->val[i], sizeof c->val[i], "%s", PQcmdStatus(res));
  }
}

/* ---------- pure ---------- */

static void test_classify_sqlstate(void **state) {
  (void)state;
  assert_int_equal(p2q_pg_classify_sqlstate("08006"), P2Q_PG_SQLSTATE_RECONNECT);
  assert_int_equal(p2q_pg_classify_sqlstate("08000"), P2Q_PG_SQLSTATE_RECONNECT);
  assert_int_equal(p2q_pg_classify_sqlstate("57P01"), P2Q_PG_SQLSTATE_RECONNECT);
  assert_int_equal(p2q_pg_classify_sqlstate("57P02"), P2Q_PG_SQLSTATE_RECONNECT);
  assert_int_equal(p2q_pg_classify_sqlstate("57P03"), P2Q_PG_SQLSTATE_RECONNECT);
  assert_int_equal(p2q_pg_classify_sqlstate("57P04"), P2Q_PG_SQLSTATE_FAIL);
  assert_int_equal(p2q_pg_classify_sqlstate("57014"), P2Q_PG_SQLSTATE_FAIL); /* query_canceled */
  assert_int_equal(p2q_pg_classify_sqlstate("40001"), P2Q_PG_SQLSTATE_RETRY);
  assert_int_equal(p2q_pg_classify_sqlstate("40P01"), P2Q_PG_SQLSTATE_RETRY);
  assert_int_equal(p2q_pg_classify_sqlstate("40002"), P2Q_PG_SQLSTATE_FAIL);
  assert_int_equal(p2q_pg_classify_sqlstate("42601"), P2Q_PG_SQLSTATE_FAIL);
  assert_int_equal(p2q_pg_classify_sqlstate("23505"), P2Q_PG_SQLSTATE_FAIL);
  assert_int_equal(p2q_pg_classify_sqlstate(""), P2Q_PG_SQLSTATE_FAIL);
  assert_int_equal(p2q_pg_classify_sqlstate(NULL), P2Q_PG_SQLSTATE_FAIL);
  assert_int_equal(p2q_pg_classify_sqlstate("08"), P2Q_PG_SQLSTATE_FAIL);
}

static void never_cb(p2q_pg_t *pg, PGresult *res, int err, const char *msg, void *arg) {
  (void)pg; (void)res; (void)err; (void)msg; (void)arg;
  fail_msg("callback of a refused query fired");
}

static void disc_close_cb(p2q_pg_t *pg, int err, const char *msg, void *arg) {
  ctx_t *c = arg;
  c->disconnects++;
  c->last_disc_err = err;
  snprintf(c->val[0], sizeof c->val[0], "%s", msg);
  assert_int_equal(p2q_pg_close(pg, on_closed, c), 0);
  assert_int_equal(p2q_pg_close(pg, on_closed, c), P2Q_EBUSY);
}

static void test_connect_failure_and_refusals(void **state) {
  (void)state;
  ctx_t c;
  ctx_init(&c);
  p2q_pg_options_t o = {0};
  o.conninfo = "host=127.0.0.1 port=1 dbname=x user=x connect_timeout=2";
  o.on_disconnect = disc_close_cb;
  o.arg = &c;
  p2q_pg_options_t bad = o;
  bad.conninfo = "this is not = a valid = conninfo '";
  p2q_pg_t *b = NULL;
  assert_int_equal(p2q_pg_new(&c.loop, &bad, &b), P2Q_EINVAL);
  assert_null(b);
  assert_int_equal(p2q_pg_new(&c.loop, &o, &c.pg), 0);
  /* not connected yet: refused synchronously, callback never fires */
  assert_int_equal(p2q_pg_query(c.pg, "SELECT 1", 0, NULL, never_cb, NULL), P2Q_EPG_LOST);
  assert_int_equal(p2q_pg_query(c.pg, NULL, 0, NULL, never_cb, NULL), P2Q_EINVAL);
  assert_int_equal(p2q_pg_is_connected(c.pg), 0);
  run(&c);
  assert_int_equal(c.disconnects, 1);
  assert_int_equal(c.last_disc_err, P2Q_EPG_CONNECT);
  assert_non_null(strstr(c.val[0], "127.0.0.1"));
  assert_int_equal(c.closed, 1);
}

/* A server that accepts TCP but never answers the startup packet: the connect timeout fires. */
static void test_connect_timeout(void **state) {
  (void)state;
  int lfd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t al = sizeof a;
  assert_int_equal(bind(lfd, (struct sockaddr *)&a, sizeof a), 0);
  assert_int_equal(listen(lfd, 8), 0);
  getsockname(lfd, (struct sockaddr *)&a, &al);
  char ci[128];
  snprintf(ci, sizeof ci, "host=127.0.0.1 port=%d dbname=x user=x sslmode=disable gssencmode=disable",
           ntohs(a.sin_port));
  ctx_t c;
  ctx_init(&c);
  p2q_pg_options_t o = {0};
  o.conninfo = ci;
  o.connect_timeout_ms = 150;
  o.on_disconnect = disc_close_cb;
  o.arg = &c;
  uint64_t t0 = uv_hrtime();
  assert_int_equal(p2q_pg_new(&c.loop, &o, &c.pg), 0);
  run(&c);
  uint64_t ms = (uv_hrtime() - t0) / 1000000;
  close(lfd);
  assert_int_equal(c.disconnects, 1);
  assert_int_equal(c.last_disc_err, P2Q_EPG_CONNECT);
  assert_string_equal(c.val[0], "connect timeout");
  assert_true(ms >= 140 && ms < 3000);
}

/* ---------- queries in order, parameters, errors ---------- */

static void q_cb(p2q_pg_t *pg, PGresult *res, int err, const char *msg, void *arg) {
  ctx_t *c = arg;
  record(c, pg, res, err, msg);
  if (c->nres == 9) assert_int_equal(p2q_pg_close(pg, on_closed, c), 0);
}

static const char *conn_opt(p2q_pg_t *pg, const char *key, char *buf, size_t n) {
  PQconninfoOption *opts = PQconninfo(p2q_pg_conn(pg));
  buf[0] = 0;
  for (PQconninfoOption *o = opts; o && o->keyword; o++)
    if (!strcmp(o->keyword, key) && o->val) snprintf(buf, n, "%s", o->val);
  PQconninfoFree(opts);
  return buf;
}

static void order_on_connect(p2q_pg_t *pg, void *arg) {
  ctx_t *c = arg;
  char v[32];
  c->connects++;
  /* keepalive defaults are applied, and the conninfo string overrides them */
  assert_string_equal(conn_opt(pg, "keepalives_idle", v, sizeof v), "30");
  assert_string_equal(conn_opt(pg, "keepalives_count", v, sizeof v), "7");
  assert_string_equal(conn_opt(pg, "fallback_application_name", v, sizeof v), "pg2qdrant");
  char buf[8];
  for (int i = 0; i < 5; i++) {
    snprintf(buf, sizeof buf, "%d", i * 10);
    const char *p[1] = {buf};
    assert_int_equal(p2q_pg_query(pg, "SELECT ($1::int + 1)::text", 1, p, q_cb, c), 0);
  }
  const char *p2[2] = {"it's \"quoted\"", NULL};
  assert_int_equal(p2q_pg_query(pg, "SELECT $1::text || coalesce($2, '!')", 2, p2, q_cb, c), 0);
  /* bad SQL: error with message + SQLSTATE, connection stays usable */
  assert_int_equal(p2q_pg_query(pg, "SELEC 1", 0, NULL, q_cb, c), 0);
  assert_int_equal(p2q_pg_query(pg, "SELECT 1/0", 0, NULL, q_cb, c), 0);
  assert_int_equal(p2q_pg_query(pg, "SELECT 'after errors'", 0, NULL, q_cb, c), 0);
  assert_int_equal(p2q_pg_pending(pg), 9);
}

/* A parameter far larger than the socket buffer: PQflush returns 1 and the poll waits for
 * writability until everything is sent. */
static void big_cb(p2q_pg_t *pg, PGresult *res, int err, const char *msg, void *arg) {
  ctx_t *c = arg;
  record(c, pg, res, err, msg);
  assert_int_equal(p2q_pg_close(pg, on_closed, c), 0);
}

static void big_on_connect(p2q_pg_t *pg, void *arg) {
  ctx_t *c = arg;
  size_t n = 8u << 20;
  char *big = malloc(n + 1);
  assert_non_null(big);
  memset(big, 'x', n);
  big[n] = 0;
  const char *p[1] = {big};
  assert_int_equal(p2q_pg_query(pg, "SELECT length($1)::text", 1, p, big_cb, c), 0);
  free(big); /* parameters are copied */
}

static void test_big_parameter(void **state) {
  (void)state;
  if (!need_pg()) skip();
  ctx_t c;
  ctx_init(&c);
  p2q_pg_options_t o = {0};
  o.on_connect = big_on_connect;
  o.arg = &c;
  assert_int_equal(p2q_pg_new(&c.loop, &o, &c.pg), 0);
  run(&c);
  assert_int_equal(c.nres, 1);
  assert_int_equal(c.err[0], 0);
  assert_string_equal(c.val[0], "8388608");
}

static void test_queries_in_order(void **state) {
  (void)state;
  if (!need_pg()) skip();
  ctx_t c;
  ctx_init(&c);
  p2q_pg_options_t o = {0};
  o.conninfo = "keepalives_count=7"; /* everything else from the libpq environment */
  o.on_connect = order_on_connect;
  o.arg = &c;
  assert_int_equal(p2q_pg_new(&c.loop, &o, &c.pg), 0);
  run(&c);
  assert_int_equal(c.connects, 1);
  assert_int_equal(c.nres, 9);
  for (int i = 0; i < 5; i++) {
    char want[8];
    snprintf(want, sizeof want, "%d", i * 10 + 1);
    assert_int_equal(c.err[i], 0);
    assert_string_equal(c.val[i], want);
  }
  assert_string_equal(c.val[5], "it's \"quoted\"!");
  assert_int_equal(c.err[6], P2Q_EPG_QUERY);
  assert_non_null(strstr(c.val[6], "syntax error"));
  assert_string_equal(c.sqlstate[6], "42601");
  assert_int_equal(c.err[7], P2Q_EPG_QUERY);
  assert_string_equal(c.sqlstate[7], "22012");
  assert_int_equal(c.err[8], 0);
  assert_string_equal(c.val[8], "after errors");
  assert_int_equal(c.closed, 1);
}

/* ---------- named statements: prepared once per connection, re-prepared when gone ---------- */

static void prep_cb(p2q_pg_t *pg, PGresult *res, int err, const char *msg, void *arg) {
  ctx_t *c = arg;
  record(c, pg, res, err, msg);
  if (c->nres == 8) assert_int_equal(p2q_pg_close(pg, on_closed, c), 0);
}

static void prep_on_connect(p2q_pg_t *pg, void *arg) {
  ctx_t *c = arg;
  const char *one[] = {"1"}, *two[] = {"41"};
  const char *name[] = {"p2q_t1"};
  c->connects++;
  assert_int_equal(p2q_pg_query_prepared(pg, "p2q_t1", "SELECT ($1::int + 1)::text", 1, one, prep_cb, c), 0);
  assert_int_equal(p2q_pg_query_prepared(pg, "p2q_t1", "SELECT ($1::int + 1)::text", 1, two, prep_cb, c), 0);
  /* prepared: the server holds it under its name */
  assert_int_equal(p2q_pg_query(pg, "SELECT count(*)::text FROM pg_prepared_statements WHERE name = $1", 1, name,
                                prep_cb, c), 0);
  assert_int_equal(p2q_pg_query_prepared(pg, "p2q_bad", "SELEC 1", 0, NULL, prep_cb, c), 0); /* Parse fails */
  assert_int_equal(p2q_pg_query(pg, "DEALLOCATE p2q_t1", 0, NULL, prep_cb, c), 0); /* behind our back */
  assert_int_equal(p2q_pg_query_prepared(pg, "p2q_t1", "SELECT ($1::int + 1)::text", 1, one, prep_cb, c), 0);
  assert_int_equal(p2q_pg_query_prepared(pg, "p2q_t1", "SELECT ($1::int + 1)::text", 1, two, prep_cb, c), 0);
  assert_int_equal(p2q_pg_query_prepared(pg, "p2q_bad", "SELECT 'fixed'", 0, NULL, prep_cb, c), 0);
}

static void test_prepared_statements(void **state) {
  (void)state;
  if (!need_pg()) skip();
  ctx_t c;
  ctx_init(&c);
  p2q_pg_options_t o = {0};
  o.on_connect = prep_on_connect;
  o.arg = &c;
  assert_int_equal(p2q_pg_new(&c.loop, &o, &c.pg), 0);
  run(&c);
  assert_int_equal(c.nres, 8);
  assert_int_equal(c.err[0], 0);
  assert_string_equal(c.val[0], "2");
  assert_int_equal(c.err[1], 0);
  assert_string_equal(c.val[1], "42");
  assert_string_equal(c.val[2], "1");
  assert_int_equal(c.err[3], P2Q_EPG_QUERY);
  assert_string_equal(c.sqlstate[3], "42601");
  assert_int_equal(c.err[4], 0);
  assert_int_equal(c.err[5], P2Q_EPG_QUERY); /* gone: reported once (26000) ... */
  assert_string_equal(c.sqlstate[5], "26000");
  assert_int_equal(c.err[6], 0);             /* ... then prepared again */
  assert_string_equal(c.val[6], "42");
  assert_int_equal(c.err[7], 0);             /* a failed Parse left no name behind */
  assert_string_equal(c.val[7], "fixed");
  assert_int_equal(c.closed, 1);
}

/* ---------- LISTEN / NOTIFY ---------- */

static void nop_cb(p2q_pg_t *pg, PGresult *res, int err, const char *msg, void *arg) {
  ctx_t *c = arg;
  record(c, pg, res, err, msg);
}

static void notify_sent(p2q_pg_t *pg, PGresult *res, int err, const char *msg, void *arg) {
  ctx_t *c = arg;
  record(c, pg, res, err, msg);
}

static void listener_ready(p2q_pg_t *pg, PGresult *res, int err, const char *msg, void *arg) {
  ctx_t *c = arg;
  record(c, pg, res, err, msg);
  assert_int_equal(err, 0);
  assert_string_equal(c->val[c->nres - 1], "LISTEN");
  c->step = 1;
  if (p2q_pg_is_connected(c->pg2)) {
    const char *p[2] = {"p2q test chan", "payload-42"};
    assert_int_equal(p2q_pg_query(c->pg2, "SELECT pg_notify($1, $2)", 2, p, notify_sent, c), 0);
  }
}

static void notify_on_connect(p2q_pg_t *pg, void *arg) {
  ctx_t *c = arg;
  c->connects++;
  if (pg == c->pg) {
    assert_int_equal(p2q_pg_listen(pg, "p2q test chan", listener_ready, c), 0);
  } else if (c->step == 1) {
    const char *p[2] = {"p2q test chan", "payload-42"};
    assert_int_equal(p2q_pg_query(pg, "SELECT pg_notify($1, $2)", 2, p, notify_sent, c), 0);
  }
}

static void on_notify(p2q_pg_t *pg, const char *channel, const char *payload, int pid, void *arg) {
  ctx_t *c = arg;
  assert_ptr_equal(pg, c->pg);
  c->notified++;
  snprintf(c->channel, sizeof c->channel, "%s", channel);
  snprintf(c->payload, sizeof c->payload, "%s", payload);
  c->notify_pid = pid;
  assert_int_equal(p2q_pg_close(c->pg, on_closed, c), 0);
  assert_int_equal(p2q_pg_close(c->pg2, on_closed, c), 0);
}

static void test_listen_notify(void **state) {
  (void)state;
  if (!need_pg()) skip();
  ctx_t c;
  ctx_init(&c);
  p2q_pg_options_t o = {0};
  o.on_connect = notify_on_connect;
  o.on_notify = on_notify;
  o.arg = &c;
  assert_int_equal(p2q_pg_new(&c.loop, &o, &c.pg), 0);
  assert_int_equal(p2q_pg_new(&c.loop, &o, &c.pg2), 0);
  (void)nop_cb;
  run(&c);
  assert_int_equal(c.notified, 1);
  assert_string_equal(c.channel, "p2q test chan");
  assert_string_equal(c.payload, "payload-42");
  assert_true(c.notify_pid > 0);
  assert_int_equal(c.closed, 1);
  assert_int_equal(c.closed2, 1);
}

/* ---------- connection killed: queued queries fail, reconnect, on_connect again ---------- */

static void kill_done(p2q_pg_t *pg, PGresult *res, int err, const char *msg, void *arg) {
  ctx_t *c = arg;
  assert_int_equal(err, 0);
  /* "f": the sleep had not started yet; the ticker tries again */
  c->step = strcmp(PQgetvalue(res, 0, 0), "t") == 0 ? 2 : 0;
}

static void sleeper_cb(p2q_pg_t *pg, PGresult *res, int err, const char *msg, void *arg) {
  ctx_t *c = arg;
  record(c, pg, res, err, msg);
  /* the connection is down: new queries are refused synchronously */
  assert_int_equal(p2q_pg_query(pg, "SELECT 1", 0, NULL, never_cb, NULL), P2Q_EPG_LOST);
}

static void after_reconnect_cb(p2q_pg_t *pg, PGresult *res, int err, const char *msg, void *arg) {
  ctx_t *c = arg;
  record(c, pg, res, err, msg);
  assert_int_equal(p2q_pg_close(c->pg, on_closed, c), 0);
  assert_int_equal(p2q_pg_close(c->pg2, on_closed, c), 0);
}

static void kill_on_connect(p2q_pg_t *pg, void *arg) {
  ctx_t *c = arg;
  if (pg == c->pg2) return;
  c->connects++;
  if (c->connects == 1) {
    assert_int_equal(p2q_pg_connect_count(pg), 1);
    assert_int_equal(p2q_pg_query(pg, "SELECT pg_sleep(30)", 0, NULL, sleeper_cb, c), 0);
    assert_int_equal(p2q_pg_query(pg, "SELECT 'queued'", 0, NULL, sleeper_cb, c), 0);
  } else {
    assert_int_equal(p2q_pg_connect_count(pg), 2);
    assert_int_equal(p2q_pg_query(pg, "SELECT 'back'", 0, NULL, after_reconnect_cb, c), 0);
  }
}

static void kill_disc(p2q_pg_t *pg, int err, const char *msg, void *arg) {
  ctx_t *c = arg;
  c->disconnects++;
  c->last_disc_err = err;
  assert_int_equal(p2q_pg_pending(pg), 0); /* queued queries already failed */
}

static void killer_tick(uv_timer_t *t) {
  ctx_t *c = t->data;
  if (c->step == 0 && p2q_pg_is_connected(c->pg) && p2q_pg_is_connected(c->pg2) &&
      p2q_pg_pending(c->pg) == 2) {
    char pid[16];
    snprintf(pid, sizeof pid, "%d", p2q_pg_backend_pid(c->pg));
    const char *p[1] = {pid};
    /* wait until the sleep is really running, then terminate that backend */
    assert_int_equal(p2q_pg_query(c->pg2,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid = $1::int "
        "AND query LIKE 'SELECT pg_sleep%' UNION ALL SELECT false LIMIT 1", 1, p, kill_done, c), 0);
    c->step = 1;
    return;
  }
  if (c->step == 2 || c->step == 1) {
    if (c->step == 2) uv_close((uv_handle_t *)t, NULL);
  }
}

static void test_terminate_reconnect(void **state) {
  (void)state;
  if (!need_pg()) skip();
  ctx_t c;
  ctx_init(&c);
  p2q_pg_options_t o = {0};
  o.on_connect = kill_on_connect;
  o.on_disconnect = kill_disc;
  o.reconnect_min_ms = 10;
  o.reconnect_max_ms = 50;
  o.arg = &c;
  assert_int_equal(p2q_pg_new(&c.loop, &o, &c.pg), 0);
  p2q_pg_options_t o2 = {0};
  o2.on_connect = kill_on_connect;
  o2.arg = &c;
  assert_int_equal(p2q_pg_new(&c.loop, &o2, &c.pg2), 0);
  uv_timer_t tick;
  uv_timer_init(&c.loop, &tick);
  tick.data = &c;
  uv_timer_start(&tick, killer_tick, 50, 50);
  run(&c);
  assert_int_equal(c.step, 2); /* the backend was really terminated */
  assert_int_equal(c.connects, 2);
  assert_int_equal(c.disconnects, 1);
  assert_int_equal(c.last_disc_err, P2Q_EPG_LOST);
  assert_int_equal(c.nres, 3);
  assert_int_equal(c.err[0], P2Q_EPG_LOST); /* in flight */
  assert_int_equal(c.err[1], P2Q_EPG_LOST); /* queued */
  assert_int_equal(c.err[2], 0);
  assert_string_equal(c.val[2], "back");
  assert_int_equal(c.closed, 1);
}

/* ---------- after a reconnect, re-LISTEN in on_connect and notifications flow again ---------- */

static void relisten_notify(p2q_pg_t *pg, const char *channel, const char *payload, int pid, void *arg) {
  ctx_t *c = arg;
  c->notified++;
  snprintf(c->payload, sizeof c->payload, "%s", payload);
  assert_int_equal(p2q_pg_connect_count(pg), 2); /* only the re-established LISTEN got it */
  assert_int_equal(p2q_pg_close(c->pg, on_closed, c), 0);
  assert_int_equal(p2q_pg_close(c->pg2, on_closed, c), 0);
}

static void relisten_ready(p2q_pg_t *pg, PGresult *res, int err, const char *msg, void *arg) {
  ctx_t *c = arg;
  assert_int_equal(err, 0);
  if (p2q_pg_connect_count(pg) == 1) {
    /* kill the listener's backend from the other connection */
    char pid[16];
    snprintf(pid, sizeof pid, "%d", p2q_pg_backend_pid(pg));
    const char *p[1] = {pid};
    assert_int_equal(p2q_pg_query(c->pg2, "SELECT pg_terminate_backend($1::int)", 1, p, nop_cb, c), 0);
  } else {
    const char *p[2] = {"p2q_relisten", "after-reconnect"};
    assert_int_equal(p2q_pg_query(c->pg2, "SELECT pg_notify($1, $2)", 2, p, nop_cb, c), 0);
  }
}

static void relisten_connect(p2q_pg_t *pg, void *arg) {
  ctx_t *c = arg;
  if (pg == c->pg2) {
    c->step = 1;
    if (p2q_pg_is_connected(c->pg))
      assert_int_equal(p2q_pg_listen(c->pg, "p2q_relisten", relisten_ready, c), 0);
    return;
  }
  c->connects++;
  if (c->step == 1 || c->connects > 1)
    assert_int_equal(p2q_pg_listen(pg, "p2q_relisten", relisten_ready, c), 0);
}

static void test_relisten_after_reconnect(void **state) {
  (void)state;
  if (!need_pg()) skip();
  ctx_t c;
  ctx_init(&c);
  p2q_pg_options_t o = {0};
  o.on_connect = relisten_connect;
  o.on_notify = relisten_notify;
  o.on_disconnect = kill_disc;
  o.reconnect_min_ms = 10;
  o.reconnect_max_ms = 20;
  o.arg = &c;
  assert_int_equal(p2q_pg_new(&c.loop, &o, &c.pg), 0);
  p2q_pg_options_t o2 = {0};
  o2.on_connect = relisten_connect;
  o2.arg = &c;
  assert_int_equal(p2q_pg_new(&c.loop, &o2, &c.pg2), 0);
  run(&c);
  assert_int_equal(c.connects, 2);
  assert_int_equal(c.disconnects, 1);
  assert_int_equal(c.notified, 1);
  assert_string_equal(c.payload, "after-reconnect");
  assert_int_equal(c.closed, 1);
  assert_int_equal(c.closed2, 1);
}

/* ---------- reconnect attempts back off while the server is unreachable ---------- */

static void count_disc(p2q_pg_t *pg, int err, const char *msg, void *arg) {
  ctx_t *c = arg;
  assert_int_equal(err, P2Q_EPG_CONNECT);
  assert_true(c->disconnects < MAXR);
  /* loop time, as the backoff timer uses: deterministic whatever the machine's load */
  c->err[c->disconnects++] = (int)uv_now(&c->loop);
  if (c->disconnects == 6) assert_int_equal(p2q_pg_close(pg, on_closed, c), 0);
}

static void test_reconnect_backoff(void **state) {
  (void)state;
  ctx_t c;
  ctx_init(&c);
  p2q_pg_options_t o = {0};
  o.conninfo = "host=127.0.0.1 port=1 dbname=x user=x";
  o.reconnect_min_ms = 20;
  o.reconnect_max_ms = 80;
  o.on_disconnect = count_disc;
  o.arg = &c;
  assert_int_equal(p2q_pg_new(&c.loop, &o, &c.pg), 0);
  run(&c);
  assert_int_equal(c.disconnects, 6);
  assert_int_equal(c.closed, 1);
  for (int i = 1; i < 6; i++) {
    int gap = c.err[i] - c.err[i - 1];
    assert_true(gap >= 20);   /* never faster than reconnect_min_ms */
    assert_true(gap <= 5000); /* capped (80 ms); the bound only catches a runaway, not speed */
  }
}

/* ---------- close with pending queries ---------- */

static void cancel_cb(p2q_pg_t *pg, PGresult *res, int err, const char *msg, void *arg) {
  ctx_t *c = arg;
  record(c, pg, res, err, msg);
  assert_int_equal(c->closed, 0); /* cancellations come before the close callback */
}

static void close_on_connect(p2q_pg_t *pg, void *arg) {
  ctx_t *c = arg;
  c->connects++;
  assert_int_equal(p2q_pg_query(pg, "SELECT pg_sleep(10)", 0, NULL, cancel_cb, c), 0);
  assert_int_equal(p2q_pg_query(pg, "SELECT 2", 0, NULL, cancel_cb, c), 0);
  assert_int_equal(p2q_pg_query(pg, "SELECT 3", 0, NULL, cancel_cb, c), 0);
  assert_int_equal(p2q_pg_close(pg, on_closed, c), 0);
  assert_int_equal(c->nres, 0); /* nothing fires inside close */
  assert_int_equal(p2q_pg_query(pg, "SELECT 4", 0, NULL, never_cb, NULL), P2Q_ECANCELED);
}

static void test_close_with_pending(void **state) {
  (void)state;
  if (!need_pg()) skip();
  ctx_t c;
  ctx_init(&c);
  p2q_pg_options_t o = {0};
  o.on_connect = close_on_connect;
  o.arg = &c;
  uint64_t t0 = uv_hrtime();
  assert_int_equal(p2q_pg_new(&c.loop, &o, &c.pg), 0);
  run(&c);
  assert_true(uv_hrtime() - t0 < 5000000000ULL); /* did not wait for pg_sleep(10) */
  assert_int_equal(c.nres, 3);
  for (int i = 0; i < 3; i++) assert_int_equal(c.err[i], P2Q_ECANCELED);
  assert_int_equal(c.closed, 1);
}

/* ---------- pinned session settings ---------- */

/* Every session runs with session.h's settings whatever PGTZ / `options` say, and the user's
   other options still apply. */
static void pinned_cb(p2q_pg_t *pg, PGresult *res, int err, const char *msg, void *arg) {
  ctx_t *c = arg;
  record(c, pg, res, err, msg);
  assert_int_equal(p2q_pg_close(pg, on_closed, c), 0);
}

static void pinned_on_connect(p2q_pg_t *pg, void *arg) {
  ctx_t *c = arg;
  c->connects++;
  assert_int_equal(p2q_pg_pending(pg), 0); /* the pin statement is no query of the owner's */
  assert_int_equal(p2q_pg_query(pg,
      "SELECT concat_ws('|', current_setting('TimeZone'), current_setting('DateStyle'),"
      " current_setting('IntervalStyle'), current_setting('extra_float_digits'),"
      " current_setting('bytea_output'), current_setting('lc_monetary'),"
      " current_setting('client_encoding'), current_setting('work_mem'),"
      " to_json('2025-01-01 12:00Z'::timestamptz)::text, to_json(0.1::float8 + 0.2)::text)",
      0, NULL, pinned_cb, c), 0);
}

static void test_pinned_settings(void **state) {
  (void)state;
  if (!need_pg()) skip();
  ctx_t c;
  ctx_init(&c);
  setenv("PGTZ", "Asia/Kolkata", 1);
  setenv("PGCLIENTENCODING", "LATIN1", 1);
  p2q_pg_options_t o = {0};
  o.conninfo = "options='-c TimeZone=America/Los_Angeles -c extra_float_digits=0 -c DateStyle=SQL,DMY"
               " -c IntervalStyle=postgres -c bytea_output=escape -c work_mem=7MB'";
  o.on_connect = pinned_on_connect;
  o.arg = &c;
  assert_int_equal(p2q_pg_new(&c.loop, &o, &c.pg), 0);
  run(&c);
  unsetenv("PGTZ");
  unsetenv("PGCLIENTENCODING");
  assert_int_equal(c.connects, 1);
  assert_int_equal(c.nres, 1);
  assert_int_equal(c.err[0], 0);
  assert_string_equal(c.val[0], "UTC|ISO, YMD|iso_8601|3|hex|C|UTF8|7MB|"
                                "\"2025-01-01T12:00:00+00:00\"|0.30000000000000004");
}

/* synchronous_commit from the options is pinned with the rest (the daemon's sessions: off); without
   it the session keeps the server's or the user's value (here `options`' local). */
static void sync_on_connect(p2q_pg_t *pg, void *arg) {
  ctx_t *c = arg;
  c->connects++;
  assert_int_equal(p2q_pg_query(pg, "SELECT current_setting('synchronous_commit') || '|' ||"
                                    " current_setting('TimeZone')", 0, NULL, pinned_cb, c), 0);
}

static void test_pinned_synchronous_commit(void **state) {
  (void)state;
  if (!need_pg()) skip();
  const char *want[] = {"off", NULL, "remote_apply"};
  const char *got[] = {"off|UTC", "local|UTC", "remote_apply|UTC"};
  for (int i = 0; i < 3; i++) {
    ctx_t c;
    ctx_init(&c);
    p2q_pg_options_t o = {0};
    o.conninfo = "options='-c synchronous_commit=local'";
    o.synchronous_commit = want[i];
    o.on_connect = sync_on_connect;
    o.arg = &c;
    assert_int_equal(p2q_pg_new(&c.loop, &o, &c.pg), 0);
    run(&c);
    assert_int_equal(c.nres, 1);
    assert_int_equal(c.err[0], 0);
    assert_string_equal(c.val[0], got[i]);
  }
}

int main(void) {
  p2q_log_configure(P2Q_LOG_WARN, P2Q_LOG_LOGFMT, 2);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_classify_sqlstate),
      cmocka_unit_test(test_connect_failure_and_refusals),
      cmocka_unit_test(test_connect_timeout),
      cmocka_unit_test(test_queries_in_order),
      cmocka_unit_test(test_big_parameter),
      cmocka_unit_test(test_prepared_statements),
      cmocka_unit_test(test_listen_notify),
      cmocka_unit_test(test_terminate_reconnect),
      cmocka_unit_test(test_relisten_after_reconnect),
      cmocka_unit_test(test_reconnect_backoff),
      cmocka_unit_test(test_close_with_pending),
      cmocka_unit_test(test_pinned_settings),
      cmocka_unit_test(test_pinned_synchronous_commit),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

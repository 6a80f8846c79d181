/*
 * outbox.c — every outbox statement the daemon runs (claim, ack, recover, the owner id and its
 * registration under the process's instance id, the liveness check's reap) and the op/outcome
 * name tables (see outbox.h). Loop thread only.
 *
 * Owns: the statement texts for one schema; per worker session one p2q_pg_t and its owner id.
 * Invariants: a session's claims and acks run in order on its own connection, as statements
 * prepared once per connection (parsed and planned once, not at every call); the owner id is
 * re-read after every reconnect (a new backend is a new owner: the old claims are recovered,
 * never reused); rows are handed to the caller parsed and valid during the callback only.
 */
#include "pg2qdrant/outbox.h"
#include "pg2qdrant/buf.h"
#include "pg2qdrant/commands.h"
#include "pg2qdrant/errors.h"
#include "pg2qdrant/log.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const op_names[] = {
#define P2Q_OP_NAME(e, name) name,
    P2Q_OUTBOX_OPS(P2Q_OP_NAME)
#undef P2Q_OP_NAME
};

static const char *const outcome_names[] = {
#define P2Q_OUTCOME_NAME(e, name) name,
    P2Q_OUTBOX_OUTCOMES(P2Q_OUTCOME_NAME)
#undef P2Q_OUTCOME_NAME
};

const char *p2q_op_name(p2q_op_t op) { return (unsigned)op < P2Q_OP_COUNT ? op_names[op] : "?"; }

int p2q_op_parse(const char *name) {
  for (int i = 0; name && i < P2Q_OP_COUNT; i++)
    if (!strcmp(op_names[i], name)) return i;
  return -1;
}

const char *p2q_outcome_name(p2q_outcome_t o) {
  return (unsigned)o < P2Q_OUTCOME_COUNT ? outcome_names[o] : "?";
}

/* ---- statements ---------------------------------------------------------------------------- */

struct p2q_outbox_s {
  char *claim_sql, *ack_sql, *ack_claim_sql, *recover_sql, *register_sql, *reap_sql;
  /* the sweep's cursors (sync_outbox_recover_step: the lease table's, before migration 015, and the outbox's):
     NULL/0 = from the start */
  char *recover_rule, *recover_key;
  char recover_id[24];
  char *instance;  /* NULL: sessions are not registered (the owner id is read directly) */
};

#define OWNER_SQL                                                                                  \
  "SELECT a.pid::text || '.' || (extract(epoch FROM a.backend_start) * 1000000)::bigint::text"    \
  " FROM pg_stat_activity a WHERE a.pid = pg_backend_pid()"

int p2q_outbox_new(const char *schema, p2q_outbox_t **out) {
  /* created_at as date_part's float8 (the same value as `extract(epoch …)::float8`, which went
     through numeric and its text: 3.5k of a one-event claim's ~925k instructions) */
  static const char claim[] =
      "SELECT id, rule, op, row_key::text, payload::text, attempts, max_attempts,"
      " date_part('epoch', created_at), vec"
      " FROM @SCHEMA@.sync_outbox_claim($1, $2::text[], $3, $4, $5, true, p_mark => $6::boolean)";
  static const char ack[] =
      "SELECT @SCHEMA@.sync_outbox_ack($1, $2::bigint[], $3::text[], $4::jsonb[], $5::text[], $6::int[], $7::text[])";
  /* as claim, not `WITH c AS (SELECT * FROM …) SELECT … FROM c`: that CTE is materialised (the
     function is volatile), every row and vector copied once more: 13k instructions per one-event
     claim (bench/claim_instructions.py) */
  static const char ack_claim[] =
      "SELECT id, rule, op, row_key::text, payload::text, attempts, max_attempts,"
      " date_part('epoch', created_at), vec"
      " FROM @SCHEMA@.sync_outbox_claim($1, $8::text[], $9, $10, $11, true, $2::bigint[], $3::text[],"
      " $4::jsonb[], $5::text[], $6::int[], $7::text[], $12::boolean)";
  static const char recover[] =
      "SELECT freed, buried, last_rule, last_key::text, last_id"
      " FROM @SCHEMA@.sync_outbox_recover_step($1, $2, $3::jsonb, $4::bigint, $5)";
  static const char reg[] = "SELECT @SCHEMA@.sync_outbox_register($1)";
  static const char reap[] = "SELECT instance, events, leases FROM @SCHEMA@.sync_outbox_reap($1::int)";
  p2q_outbox_t *ob = calloc(1, sizeof *ob);
  if (!ob) return P2Q_ENOMEM;
  ob->claim_sql = p2q_outbox_sql(claim, schema);
  ob->ack_sql = p2q_outbox_sql(ack, schema);
  ob->ack_claim_sql = p2q_outbox_sql(ack_claim, schema);
  ob->recover_sql = p2q_outbox_sql(recover, schema);
  ob->register_sql = p2q_outbox_sql(reg, schema);
  ob->reap_sql = p2q_outbox_sql(reap, schema);
  if (!ob->claim_sql || !ob->ack_sql || !ob->ack_claim_sql || !ob->recover_sql || !ob->register_sql || !ob->reap_sql) {
    p2q_outbox_free(ob);
    return P2Q_ENOMEM;
  }
  *out = ob;
  return 0;
}

void p2q_outbox_free(p2q_outbox_t *ob) {
  if (!ob) return;
  free(ob->claim_sql);
  free(ob->ack_sql);
  free(ob->ack_claim_sql);
  free(ob->recover_sql);
  free(ob->register_sql);
  free(ob->reap_sql);
  free(ob->recover_rule);
  free(ob->recover_key);
  free(ob->instance);
  free(ob);
}

int p2q_outbox_set_instance(p2q_outbox_t *ob, const char *instance) {
  char *s = strdup(instance);
  if (!s) return P2Q_ENOMEM;
  free(ob->instance);
  ob->instance = s;
  return 0;
}

/* One element of a PostgreSQL array literal ("…" with \ escapes, or NULL). */
static void array_elem(p2q_buf_t *b, const char *s, int first) {
  if (!s) { p2q_buf_puts(b, first ? "NULL" : ",NULL"); return; }
  /* written in place, one reservation for the worst case (every byte escaped): the ack builds
     four of these per event (a strcspn and a putc per quote were ~1 % of the drain's CPU) */
  size_t n = strlen(s);
  if (p2q_buf_reserve(b, 2 * n + 3)) return;
  char *o = b->data + b->len;
  if (!first) *o++ = ',';
  *o++ = '"';
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '"' || s[i] == '\\') *o++ = '\\';
    *o++ = s[i];
  }
  *o++ = '"';
  *o = 0;
  b->len = (size_t)(o - b->data);
}

/* An integer element of an array literal (never quoted, never NULL). */
static void array_int(p2q_buf_t *b, int64_t v, int first) {
  if (!first) p2q_buf_putc(b, ',');
  p2q_buf_put_i64(b, v);
}

/* ---- a worker's session ---------------------------------------------------------------------- */

struct p2q_outbox_conn_s {
  p2q_outbox_t *ob;
  p2q_pg_t *pg;
  p2q_outbox_conn_cbs_t cbs;
  char owner[64];
  int ready;
  uv_loop_t *loop;
  uint64_t marked_ms; /* when a claim of this session last asked for the mark's due look (0: never) */
  void (*close_cb)(void *);
  void *close_arg;
};

typedef struct {
  p2q_outbox_conn_t *c;
  void *cb;
  void *arg;
  p2q_outbox_t *ob; /* recover only */
} call_t;

static void owner_cb(p2q_pg_t *pg, PGresult *res, int err, const char *errmsg, void *arg) {
  p2q_outbox_conn_t *c = arg;
  if (err || PQntuples(res) != 1) {
    char q[512];
    if (err != P2Q_ECANCELED)
      P2Q_ERROR("worker_owner_failed", "conn=%s err=%s", "outbox", p2q_log_q(q, sizeof q, errmsg ? errmsg : "no row"));
    return; /* the connection stays idle until it is lost and reconnects */
  }
  snprintf(c->owner, sizeof c->owner, "%s", PQgetvalue(res, 0, 0));
  c->ready = 1;
  if (c->cbs.ready) c->cbs.ready(c->cbs.arg, c->owner, p2q_pg_connect_count(pg) > 1);
}

static void on_connect(p2q_pg_t *pg, void *arg) {
  p2q_outbox_conn_t *c = arg;
  const char *params[] = {c->ob->instance};
  /* the owner id ties claims to this backend, registered as one of this process's (recover.c),
     so a crash is recognised (sync_outbox_reap, sync_outbox_recover) */
  if (c->ob->instance) p2q_pg_query(pg, c->ob->register_sql, 1, params, owner_cb, arg);
  else p2q_pg_query(pg, OWNER_SQL, 0, NULL, owner_cb, arg);
}

static void on_disconnect(p2q_pg_t *pg, int err, const char *errmsg, void *arg) {
  p2q_outbox_conn_t *c = arg;
  c->ready = 0;
  if (c->cbs.lost) c->cbs.lost(c->cbs.arg, errmsg);
}

/* Durability of the daemon's own transactions (README "Guarantees"): PostgreSQL loses only a
 * suffix of its WAL in a crash (asynchronous commits are WAL-ordered, and any later synchronous
 * commit flushes every earlier record), so a crash leaves the outbox as a consistent prefix of the
 * daemon's transactions: a lost ack re-delivers its events (at-least-once; a point's upsert or
 * delete is idempotent), a lost retry/requeue/dead ack re-runs an attempt, a lost sweep is done
 * again, a lost mark raise leaves the mark lower (safe). The one statement whose loss would be
 * visible outside PostgreSQL is a claim whose events were then written to Qdrant: with it, the ack
 * of the row's older event before it (earlier in WAL) could be lost, and that older event would be
 * applied again over the newer one Qdrant already has. So the claim commits
 * with the server's setting whenever it hands out events (sql/functions.sql), and only empty
 * claims, acks and the sweeps run with this. */
const char *p2q_outbox_sync_commit(const p2q_config_t *cfg) {
  const char *v = cfg ? cfg->pg_daemon_synchronous_commit : NULL;
  return v && *v && strcmp(v, "default") != 0 ? v : NULL;
}

int p2q_outbox_conn_new(p2q_outbox_t *ob, uv_loop_t *loop, const p2q_config_t *cfg, const char *name,
                        const p2q_outbox_conn_cbs_t *cbs, p2q_outbox_conn_t **out) {
  p2q_outbox_conn_t *c = calloc(1, sizeof *c);
  if (!c) return P2Q_ENOMEM;
  c->ob = ob;
  c->cbs = *cbs;
  c->loop = loop;
  p2q_pg_options_t o = {.conninfo = cfg->pg_conninfo, .name = name,
                        .connect_timeout_ms = (uint64_t)cfg->pg_connect_timeout_ms,
                        .synchronous_commit = p2q_outbox_sync_commit(cfg),
                        .reconnect_max_ms = 10000, .on_connect = on_connect,
                        .on_disconnect = on_disconnect, .arg = c};
  int rc = p2q_pg_new(loop, &o, &c->pg);
  if (rc) { free(c); return rc; }
  *out = c;
  return 0;
}

static uint32_t be32(const char *s) {
  const unsigned char *p = (const unsigned char *)s;
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t be64(const char *s) { return (uint64_t)be32(s) << 32 | be32(s + 4); }

static void claim_done(p2q_pg_t *pg, PGresult *res, int err, const char *errmsg, void *arg) {
  call_t *k = arg;
  p2q_claim_cb cb = (p2q_claim_cb)k->cb;
  void *cb_arg = k->arg;
  free(k);
  if (err) { cb(cb_arg, err, errmsg, NULL, 0); return; }
  int n = PQntuples(res);
  p2q_claim_row_t *rows = calloc((size_t)(n ? n : 1), sizeof *rows);
  if (!rows) { cb(cb_arg, P2Q_ENOMEM, "out of memory", NULL, 0); return; }
  /* binary results (claim_sql): text columns are their bytes, integers and the float8 big-endian,
     vec the real[]'s array_send() bytes (no bytea hex to print and to decode) */
  if (PQnfields(res) < 9 || PQfformat(res, 0) != 1 || PQfsize(res, 0) != 8 || PQfsize(res, 5) != 4 ||
      PQfsize(res, 6) != 4 || PQfsize(res, 7) != 8) {
    free(rows);
    cb(cb_arg, P2Q_EPG_QUERY, "the claim's result has another shape than this build reads", NULL, 0);
    return;
  }
  for (int i = 0; i < n; i++) {
    p2q_claim_row_t *r = &rows[i];
    int op = p2q_op_parse(PQgetvalue(res, i, 2));
    r->id = PQgetisnull(res, i, 0) ? 0 : (long long)be64(PQgetvalue(res, i, 0));
    r->rule = PQgetvalue(res, i, 1);
    /* no CHECK on op since migration 010: a row written by hand with another op is an event
       whose fault is its own (the worker dead-letters it), not a lease to give back */
    r->bad_op = op < 0 ? PQgetvalue(res, i, 2) : NULL;
    r->op = op < 0 ? P2Q_OP_UPSERT : (p2q_op_t)op;
    r->row_key = PQgetvalue(res, i, 3);
    r->payload = PQgetisnull(res, i, 4) ? NULL : PQgetvalue(res, i, 4);
    r->attempts = PQgetisnull(res, i, 5) ? 0 : (int)(int32_t)be32(PQgetvalue(res, i, 5));
    r->max_attempts = PQgetisnull(res, i, 6) ? 0 : (int)(int32_t)be32(PQgetvalue(res, i, 6));
    uint64_t t = PQgetisnull(res, i, 7) ? 0 : be64(PQgetvalue(res, i, 7));
    memcpy(&r->created_at, &t, sizeof t); /* IEEE 754 binary64, as float8send sends it */
    r->vec = PQgetisnull(res, i, 8) ? NULL : PQgetvalue(res, i, 8);
    r->vec_len = r->vec ? (size_t)PQgetlength(res, i, 8) : 0;
  }
  cb(cb_arg, 0, NULL, rows, n);
  free(rows);
}

/* How often a session's claim looks whether a mark is due (sync_outbox_claim's p_mark): a mark
   is refreshed every 200 ms at most, and the look costs a statement per claim (~3.5 % of a
   one-event claim's instructions); a refresh then comes at most this much later. */
#define MARK_LOOK_MS 100

/* The claim's parameters: owner, types, routing key, limit, lease, p_mark (into p[0..5]; t, lim,
   lease hold the text). */
static int claim_params(p2q_outbox_conn_t *c, const char *const *types, int n_types, const char *routing_key,
                        int limit, int64_t lease_ms, p2q_buf_t *t, char lim[16], char lease[24], const char **p) {
  p2q_buf_putc(t, '{');
  for (int i = 0; i < n_types; i++) array_elem(t, types[i], i == 0);
  p2q_buf_putc(t, '}');
  snprintf(lim, 16, "%d", limit);
  snprintf(lease, 24, "%lld", (long long)lease_ms);
  uint64_t now = uv_now(c->loop);
  int mark = !c->marked_ms || now - c->marked_ms >= MARK_LOOK_MS;
  if (mark) c->marked_ms = now ? now : 1;
  p[0] = c->owner; p[1] = t->data; p[2] = routing_key; p[3] = lim; p[4] = lease; p[5] = mark ? "t" : "f";
  return p2q_buf_error(t);
}

int p2q_outbox_claim(p2q_outbox_conn_t *c, const char *const *types, int n_types, const char *routing_key,
                     int limit, int64_t lease_ms, p2q_claim_cb cb, void *arg) {
  if (!c->ready) return P2Q_EPG_LOST;
  p2q_buf_t t = P2Q_BUF_INIT;
  char lim[16], lease[24];
  const char *params[6];
  call_t *k = malloc(sizeof *k);
  int rc = P2Q_ENOMEM;
  if (k && !claim_params(c, types, n_types, routing_key, limit, lease_ms, &t, lim, lease, params)) {
    k->c = c; k->cb = (void *)cb; k->arg = arg;
    rc = p2q_pg_query_prepared_fmt(c->pg, "p2q_claim", c->ob->claim_sql, 6, params, 1, claim_done, k);
  }
  if (rc) free(k);
  p2q_buf_free(&t);
  return rc;
}

static void ack_done(p2q_pg_t *pg, PGresult *res, int err, const char *errmsg, void *arg) {
  call_t *k = arg;
  p2q_ack_cb cb = (p2q_ack_cb)k->cb;
  void *cb_arg = k->arg;
  free(k);
  cb(cb_arg, err, errmsg);
}

/* The ack's six arrays (ids, rules, keys, outcomes, delays, errors) as array literals. */
static int ack_arrays(const p2q_ack_item_t *items, int n, p2q_buf_t a[6]) {
  int rc = 0;
  for (int k = 0; k < 6; k++) p2q_buf_putc(&a[k], '{');
  for (int i = 0; i < n; i++) {
    const p2q_ack_item_t *e = &items[i];
    if (e->outcome == P2Q_OUTCOME_RELEASE) array_elem(&a[0], NULL, i == 0);
    else array_int(&a[0], e->id, i == 0);
    array_elem(&a[1], e->rule, i == 0);
    array_elem(&a[2], e->row_key, i == 0);
    array_elem(&a[3], p2q_outcome_name(e->outcome), i == 0);
    /* the ack's p_delay_ms is integer ms (24.8 days): every delay is capped by retry_max (at most
       a day) before it gets here; a larger one is clamped, never wrapped */
    array_int(&a[4], e->delay_ms < 0 ? 0 : e->delay_ms > INT32_MAX ? (int64_t)INT32_MAX : e->delay_ms, i == 0);
    array_elem(&a[5], e->error, i == 0);
  }
  for (int k = 0; k < 6; k++) { p2q_buf_putc(&a[k], '}'); rc |= p2q_buf_error(&a[k]); }
  return rc;
}

int p2q_outbox_ack(p2q_outbox_conn_t *c, const p2q_ack_item_t *items, int n, p2q_ack_cb cb, void *arg) {
  if (!c->ready) return P2Q_EPG_LOST;
  p2q_buf_t a[6] = {P2Q_BUF_INIT, P2Q_BUF_INIT, P2Q_BUF_INIT, P2Q_BUF_INIT, P2Q_BUF_INIT, P2Q_BUF_INIT};
  int rc = ack_arrays(items, n, a);
  call_t *k = rc ? NULL : malloc(sizeof *k);
  rc = P2Q_ENOMEM;
  if (k) {
    k->c = c; k->cb = (void *)cb; k->arg = arg;
    const char *params[] = {c->owner, a[0].data, a[1].data, a[2].data, a[3].data, a[4].data, a[5].data};
    rc = p2q_pg_query_prepared(c->pg, "p2q_ack", c->ob->ack_sql, 7, params, ack_done, k);
    if (rc) free(k);
  }
  for (int j = 0; j < 6; j++) p2q_buf_free(&a[j]);
  return rc;
}

int p2q_outbox_ack_claim(p2q_outbox_conn_t *c, const p2q_ack_item_t *items, int n, const char *const *types,
                         int n_types, const char *routing_key, int limit, int64_t lease_ms, p2q_claim_cb cb,
                         void *arg) {
  if (!c->ready) return P2Q_EPG_LOST;
  p2q_buf_t a[6] = {P2Q_BUF_INIT, P2Q_BUF_INIT, P2Q_BUF_INIT, P2Q_BUF_INIT, P2Q_BUF_INIT, P2Q_BUF_INIT};
  p2q_buf_t t = P2Q_BUF_INIT;
  char lim[16], lease[24];
  const char *cp[6];
  int rc = ack_arrays(items, n, a) | claim_params(c, types, n_types, routing_key, limit, lease_ms, &t, lim, lease, cp);
  call_t *k = rc ? NULL : malloc(sizeof *k);
  rc = P2Q_ENOMEM;
  if (k) {
    k->c = c; k->cb = (void *)cb; k->arg = arg;
    const char *params[] = {c->owner, a[0].data, a[1].data, a[2].data, a[3].data, a[4].data, a[5].data,
                            cp[1], cp[2], cp[3], cp[4], cp[5]};
    rc = p2q_pg_query_prepared_fmt(c->pg, "p2q_ack_claim", c->ob->ack_claim_sql, 12, params, 1, claim_done, k);
    if (rc) free(k);
  }
  for (int j = 0; j < 6; j++) p2q_buf_free(&a[j]);
  p2q_buf_free(&t);
  return rc;
}

static void conn_closed(p2q_pg_t *pg, void *arg) {
  p2q_outbox_conn_t *c = arg;
  void (*cb)(void *) = c->close_cb;
  void *cb_arg = c->close_arg;
  free(c);
  if (cb) cb(cb_arg);
}

void p2q_outbox_conn_close(p2q_outbox_conn_t *c, void (*cb)(void *arg), void *arg) {
  c->close_cb = cb;
  c->close_arg = arg;
  c->cbs.ready = NULL;
  c->cbs.lost = NULL;
  if (p2q_pg_close(c->pg, conn_closed, c)) conn_closed(c->pg, c);
}

/* ---- recovery ------------------------------------------------------------------------------- */

static void reap_done(p2q_pg_t *pg, PGresult *res, int err, const char *errmsg, void *arg) {
  call_t *k = arg;
  p2q_reap_cb cb = (p2q_reap_cb)k->cb;
  void *cb_arg = k->arg;
  free(k);
  int n = err ? 0 : PQntuples(res);
  p2q_reaped_t one, *rows = n > 1 ? calloc((size_t)n, sizeof *rows) : &one;
  if (!rows) { cb(cb_arg, P2Q_ENOMEM, "out of memory", NULL, 0); return; }
  for (int i = 0; i < n; i++) {
    rows[i].instance = PQgetvalue(res, i, 0);
    rows[i].events = atoi(PQgetvalue(res, i, 1));
    rows[i].leases = atoi(PQgetvalue(res, i, 2));
  }
  cb(cb_arg, err, errmsg, err ? NULL : rows, n);
  if (rows != &one) free(rows);
}

int p2q_outbox_reap(p2q_outbox_conn_t *c, int dead_ms, p2q_reap_cb cb, void *arg) {
  char dead[32];
  snprintf(dead, sizeof dead, "%d", dead_ms);
  const char *params[] = {dead};
  call_t *k = malloc(sizeof *k);
  if (!k) return P2Q_ENOMEM;
  k->c = c; k->cb = (void *)cb; k->arg = arg;
  int rc = c->ready ? p2q_pg_query(c->pg, c->ob->reap_sql, 1, params, reap_done, k) : P2Q_EPG_LOST;
  if (rc) free(k);
  return rc;
}

static char *dup_or_null(const PGresult *res, int col) {
  return PQgetisnull(res, 0, col) ? NULL : strdup(PQgetvalue(res, 0, col));
}

/* One window per sweep; the cursors move on (back to the start when a walk wrapped). The
   callback gets the events freed from gone owners' claims, as sync_outbox_recover counts them. */
static void recover_done(p2q_pg_t *pg, PGresult *res, int err, const char *errmsg, void *arg) {
  call_t *k = arg;
  p2q_recover_cb cb = (p2q_recover_cb)k->cb;
  void *cb_arg = k->arg;
  p2q_outbox_t *ob = k->ob;
  free(k);
  if (!err && PQntuples(res) == 1) {
    free(ob->recover_rule);
    free(ob->recover_key);
    ob->recover_rule = dup_or_null(res, 2);
    ob->recover_key = ob->recover_rule ? dup_or_null(res, 3) : NULL;
    if (!ob->recover_key) { free(ob->recover_rule); ob->recover_rule = NULL; }
    snprintf(ob->recover_id, sizeof ob->recover_id, "%s", PQgetisnull(res, 0, 4) ? "" : PQgetvalue(res, 0, 4));
    int buried = atoi(PQgetvalue(res, 0, 1));
    if (buried > 0) P2Q_INFO("dead_lettered", "events=%d reason=exhausted_without_outcome", buried);
  }
  cb(cb_arg, err, errmsg, err ? 0 : atoi(PQgetvalue(res, 0, 0)));
}

int p2q_outbox_recover(p2q_outbox_t *ob, p2q_pg_t *pg, int grace_ms, p2q_recover_cb cb, void *arg) {
  char grace[32], limit[32];
  snprintf(grace, sizeof grace, "%d", grace_ms);
  snprintf(limit, sizeof limit, "%d", P2Q_OUTBOX_RECOVER_WINDOW);
  const char *params[] = {grace, ob->recover_rule, ob->recover_key, ob->recover_id[0] ? ob->recover_id : NULL, limit};
  call_t *k = malloc(sizeof *k);
  if (!k) return P2Q_ENOMEM;
  k->c = NULL; k->cb = (void *)cb; k->arg = arg; k->ob = ob;
  int rc = p2q_pg_query(pg, ob->recover_sql, 5, params, recover_done, k);
  if (rc) free(k);
  return rc;
}

/*
 * cmd_reconcile.c — `pg2qdrant -c FILE reconcile [RULE] [--fix] [--sample N]`: compare the rows
 * each rule selects (its filter, a non-NULL vector column) with the points of its collection.
 * Main thread only (blocking libpq and p2q_qdrant_blocking).
 *
 *   missing       a selected row has no point at its id
 *   orphaned      a point is at no selected row's id
 *   stale         the point at a row's id has a payload other than what the daemon builds from
 *                 the row now: its `_hash` (FNV-1a 64 of the snapshot text, points.c) covers the
 *                 whole snapshot, vector column included, and the rest of the payload is compared
 *                 too (a hand edit that kept `_hash`, a lost `_pk`, another row's payload)
 *   vector_stale  the payload is current but the vector differs from the row's vector column
 *                 (float32; normalised first for Cosine, as Qdrant stores it). Text rules
 *                 (embedded vectors) are not compared: that would mean re-embedding every row.
 * Rows and points with an event still in sync_outbox are "pending", not drift.
 *
 * A point belongs to the row whose point id is its id, whatever its payload says: an integer id
 * names the key of a one-column integer key; a UUID id is the UUIDv5 of its row's key, which
 * cannot be inverted, so its `_pk` is believed only when it hashes back to the id.
 *
 * Memory: bounded, whatever the table size. Two passes, each streaming one side and probing the
 * other a page at a time (not a merge join: UUIDv5 ids are SHA-1 of the key, an order PostgreSQL
 * cannot produce):
 *   1. Qdrant → PostgreSQL (orphans): scroll the collection (PAGE points, payload, no vectors);
 *      one query per page looks up the rows the points' ids name (integer id, or a `_pk` that
 *      hashes back to the id). A point whose row is selected is left to pass 2. A UUID point
 *      that names no row by itself (lost or foreign `_pk`) goes into the `unresolved` set.
 *   2. PostgreSQL → Qdrant (missing, stale, vector_stale): a server-side cursor over the selected
 *      rows' keys, FETCH a page (smaller for large dimensions), read those rows again now (key,
 *      snapshot, pending: a row the daemon synced during a long scan does not look stale), one
 *      retrieve of their point ids with payload and vector, compared row by row. Each row's id marks
 *      the unresolved set; what stays unmarked afterwards is orphaned. The set holds at most
 *      UNRESOLVED_MAX ids (3 MiB; the environment variable P2Q_RECONCILE_UNRESOLVED_MAX lowers
 *      it, for tests): when full, one key-only scan of the rows settles it and it restarts.
 * Integer ids are read from the reply's raw text (exact up to 2^64, which doubles are not).
 *
 * --fix, page by page, in short transactions on a second connection (reconcile_fix.c says how);
 * a fix never changes what a later page sees, so `reconcile` and `reconcile --fix` report the same
 * counts on one state.
 *
 * Files: this one owns the two passes, the unresolved set and the report; reconcile_io.c the SQL
 * it generates and runs and its Qdrant calls; reconcile_fix.c the fixes; reconcile_cmd.h what they
 * share. The comparison itself is pure and lives in reconcile.c.
 *
 * Limits: rules with chunk_tokens (several points per row) are skipped; a user column named `_pk`
 * or `_hash` collides with the daemon's payload fields.
 *
 * Output: on a terminal, one updating progress line (points and rows checked, rate) per rule;
 * then, and otherwise only, the per-rule summary with samples.
 *
 * Exit status: 0 in sync (pending events allowed), 3 drift found (also with --fix: the repairs
 * were enqueued; run again once the daemon drained them to see 0), 1 error, 2 usage.
 */
#include "reconcile_cmd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <time.h>

#define UNRESOLVED_MAX 65536
#define USAGE "usage: pg2qdrant reconcile [RULE] [--fix] [--sample N]\n"

static const char *const kind_name[K_N] = {"missing", "orphaned", "stale", "vector_stale"};

static double mono_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One updating line on a terminal (nothing otherwise: the report is the summary). */
static void progress(const rec_t *c) {
  if (!c->tty) return;
  double el = mono_s() - c->t0;
  printf("\rreconcile %s: %lld point(s), %lld row(s) checked, %.0f/s   ", c->r->name, c->points,
         c->rows_seen, el > 0 ? (double)(c->points + c->rows_seen) / el : 0.0);
  fflush(stdout);
}

static void note(rec_t *c, int kind, const char *id) {
  c->n[kind]++;
  if (c->nsample[kind] < c->max_sample) snprintf(c->sample[kind][c->nsample[kind]++], P2Q_POINT_ID_MAX, "%s", id);
}

/* ---------------- pass 2: rows → Qdrant ---------------- */

typedef struct {
  const char *id;
  const cJSON *pt;
} by_id_t;

static int cmp_by_id(const void *a, const void *b) {
  return strcmp(((const by_id_t *)a)->id, ((const by_id_t *)b)->id);
}

/* One page of the rows cursor (selected rows' key texts): read those rows again now (key, snapshot,
   pending; a row gone since the cursor's snapshot is skipped), retrieve their points, report
   missing / stale / vector_stale, fix when asked. Reading the rows per page rather than through
   the cursor's snapshot keeps a row the daemon synced during a long scan from looking stale. */
static int check_rows(rec_t *c, PGresult *cur) {
  int n = PQntuples(cur), nids = 0, nfix = 0, rc = -1;
  char(*ids)[P2Q_POINT_ID_MAX] = calloc((size_t)n + 1, sizeof *ids);
  by_id_t *index = NULL;
  p2q_buf_t body = P2Q_BUF_INIT, keys = P2Q_BUF_INIT;
  PGresult *res = NULL;
  reply_t p;
  const cJSON *arr, *pt;
  memset(&p, 0, sizeof p);
  if (!ids) goto fail;
  for (int i = 0; i < n; i++) {
    const char *key = PQgetvalue(cur, i, 0);
    char id[P2Q_POINT_ID_MAX];
    if (p2q_point_id(c->r->name, key, strlen(key), id) >= 0) p2q_rec_idset_mark(&c->unresolved, id);
    arr_add(&keys, &nids, key);
  }
  arr_end(&keys, nids);
  if (!(res = p2q_reconcile_exec_keys(c, c->rows.data, keys.data, 1))) goto fail;
  if (PQntuples(res) != n) {
    snprintf(c->err, sizeof c->err, "row lookup returned %d rows for %d keys", PQntuples(res), n);
    goto fail;
  }
  nids = 0;
  for (int i = 0; i < n; i++) {
    const char *key = PQgetvalue(res, i, 1);
    if (PQgetisnull(res, i, 1) || p2q_point_id(c->r->name, key, strlen(key), ids[i]) < 0) continue;
    arr_add(&body, &nids, ids[i]);
  }
  arr_end(&body, nids);
  if (p2q_reconcile_retrieve(c, body.data, c->vectors, &p, &arr)) goto fail;
  if (!(index = calloc((size_t)p.n + 1, sizeof *index))) goto fail;
  int j = 0;
  cJSON_ArrayForEach(pt, arr) {
    index[j].id = p.id[j];
    index[j].pt = pt;
    j++;
  }
  qsort(index, (size_t)p.n, sizeof *index, cmp_by_id);
  p2q_buf_reset(&keys);
  for (int i = 0; i < n; i++) {
    if (!ids[i][0]) continue; /* no longer selected */
    if (PQgetvalue(res, i, 2)[0] == 't') { c->pending++; continue; }
    by_id_t want = {ids[i], NULL}, *hit = bsearch(&want, index, (size_t)p.n, sizeof *index, cmp_by_id);
    int kind = K_MISSING;
    if (hit) {
      const cJSON *vec = c->vectors ? cJSON_GetObjectItemCaseSensitive(hit->pt, "vector") : NULL;
      p2q_rec_kind_t k = p2q_rec_check(c->r, cJSON_GetObjectItemCaseSensitive(hit->pt, "payload"), vec,
                                       PQgetvalue(res, i, 1), PQgetvalue(res, i, 3));
      if (k == P2Q_REC_OK) continue;
      kind = k == P2Q_REC_VECTOR_STALE ? K_VSTALE : K_STALE;
      const cJSON *pl = cJSON_GetObjectItemCaseSensitive(hit->pt, "payload");
      const cJSON *m = cJSON_IsObject(pl) ? cJSON_GetObjectItemCaseSensitive(pl, "_model") : NULL;
      if (c->r->model[0] && cJSON_IsString(m) && strcmp(m->valuestring, c->r->model)) c->other_model++;
    }
    note(c, kind, ids[i]);
    arr_add(&keys, &nfix, PQgetvalue(res, i, 1));
  }
  arr_end(&keys, nfix);
  rc = c->fix && nfix ? p2q_reconcile_fix_upserts(c, keys.data) : 0;
fail:
  if (rc && !c->err[0]) snprintf(c->err, sizeof c->err, "out of memory");
  PQclear(res);
  free(ids);
  free(index);
  p2q_reconcile_reply_free(&p);
  p2q_buf_free(&body);
  p2q_buf_free(&keys);
  return rc;
}

/* A scan of the selected rows' keys in one read-only transaction on c->rd: `full` checks each
   page against Qdrant (pass 2); otherwise only the unresolved set is marked with the rows' ids. */
static int rows_pass(rec_t *c, int full) {
  char fetch[64];
  int rc = -1;
  if (p2q_admin_exec(c->rd, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", c->err, sizeof c->err) ||
      p2q_admin_exec(c->rd, c->keys.data, c->err, sizeof c->err))
    goto fail;
  snprintf(fetch, sizeof fetch, "FETCH %d FROM p2q_reconcile", full ? c->page2 : 4096);
  for (;;) {
    PGresult *res = PQexec(c->rd, fetch);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
      snprintf(c->err, sizeof c->err, "%s", PQresultErrorMessage(res));
      PQclear(res);
      goto fail;
    }
    int n = PQntuples(res), cr = 0;
    if (full && n) cr = check_rows(c, res);
    for (int i = 0; !full && i < n; i++) {
      char id[P2Q_POINT_ID_MAX];
      const char *key = PQgetvalue(res, i, 0);
      if (p2q_point_id(c->r->name, key, strlen(key), id) >= 0) p2q_rec_idset_mark(&c->unresolved, id);
    }
    if (full) c->rows_seen += n;
    PQclear(res);
    progress(c);
    if (cr) goto fail;
    if (n < (full ? c->page2 : 4096)) break;
  }
  rc = 0;
fail:
  PQclear(PQexec(c->rd, "ROLLBACK"));
  return rc;
}

/* The unresolved ids no row's id marked are orphans: note them, delete them (--fix), empty the
   set. `scan`: mark it first with a key-only scan of the rows (the set filled up in pass 1). */
static int settle_unresolved(rec_t *c, int scan) {
  p2q_rec_idset_t *u = &c->unresolved, cand;
  if (scan) {
    p2q_rec_idset_sort(u);
    if (rows_pass(c, 0)) return -1;
    c->settles++;
  }
  if (p2q_rec_idset_init(&cand, PAGE)) return -1;
  int rc = 0;
  for (int i = 0; i < u->n && !rc; i++) {
    if (u->owned[i]) continue;
    note(c, K_ORPHAN, u->id[i]);
    if (c->fix) p2q_rec_idset_add(&cand, u->id[i]);
    if (cand.n == PAGE) {
      rc = p2q_reconcile_fix_direct(c, &cand); /* added in sorted order: cand is sorted */
      p2q_rec_idset_clear(&cand);
      memset(cand.owned, 0, PAGE);
    }
  }
  if (!rc && cand.n) rc = p2q_reconcile_fix_direct(c, &cand);
  p2q_rec_idset_free(&cand);
  p2q_rec_idset_clear(u);
  return rc;
}

static int add_unresolved(rec_t *c, const char *id) {
  if (p2q_rec_idset_add(&c->unresolved, id) == 0) return 0;
  if (settle_unresolved(c, 1)) return -1;
  return p2q_rec_idset_add(&c->unresolved, id) ? -1 : 0;
}

/* ---------------- pass 1: Qdrant → rows ---------------- */

/* One scrolled page: look up the rows the points' ids name; note orphans (fix them), leave points
   at a selected row's id to pass 2, queue UUID points that name no row by themselves. */
static int check_points(rec_t *c, const reply_t *p, const cJSON *arr) {
  p2q_buf_t keys = P2Q_BUF_INIT, okeys = P2Q_BUF_INIT;
  p2q_rec_idset_t direct;
  unsigned char *how = calloc((size_t)p->n + 1, 1);
  const cJSON *pt;
  PGresult *res = NULL;
  int i = 0, nok = 0, rc = -1;
  memset(&direct, 0, sizeof direct);
  if (!how || p2q_rec_idset_init(&direct, p->n + 1)) goto fail;
  p2q_buf_putc(&keys, '[');
  cJSON_ArrayForEach(pt, arr) {
    if (i) p2q_buf_putc(&keys, ',');
    if (strcmp(p->id[i], "?"))
      how[i] = (unsigned char)p2q_rec_point_key(c->r, p->id[i], cJSON_GetObjectItemCaseSensitive(pt, "payload"), &keys);
    if (how[i] == P2Q_REC_KEY_NONE) p2q_buf_puts(&keys, "{}");
    i++;
  }
  p2q_buf_putc(&keys, ']');
  if (!(res = p2q_reconcile_exec_keys(c, c->lookup.data, keys.data, 1))) goto fail;
  if (PQntuples(res) != p->n) {
    snprintf(c->err, sizeof c->err, "key lookup returned %d rows for %d points", PQntuples(res), p->n);
    goto fail;
  }
  for (i = 0; i < p->n; i++) {
    const char *id = p->id[i], *canon = PQgetvalue(res, i, 0);
    const char *key_text = PQgetisnull(res, i, 1) ? NULL : PQgetvalue(res, i, 1);
    char kid[P2Q_POINT_ID_MAX];
    if (!strcmp(id, "?")) { note(c, K_ORPHAN, id); continue; } /* not a valid id: no row's */
    if (how[i] == P2Q_REC_KEY_NONE) {
      if (id[0] == '"') { if (add_unresolved(c, id)) goto fail; continue; }
      note(c, K_ORPHAN, id); /* an integer id of a composite-key rule */
      p2q_rec_idset_add(&direct, id);
      continue;
    }
    if (key_text && p2q_point_id(c->r->name, key_text, strlen(key_text), kid) >= 0 && !strcmp(kid, id))
      continue; /* at its row's id: pass 2 checks it */
    if (p2q_point_id(c->r->name, canon, strlen(canon), kid) < 0 || strcmp(kid, id)) {
      if (add_unresolved(c, id)) goto fail; /* its `_pk` is another key's (copied) */
      continue;
    }
    if (PQgetvalue(res, i, 2)[0] == 't') { c->pending++; continue; }
    note(c, K_ORPHAN, id);
    if (!c->r->routing_key && !key_text) arr_add(&okeys, &nok, canon);
    else p2q_rec_idset_add(&direct, id);
  }
  arr_end(&okeys, nok);
  rc = 0;
  if (c->fix && nok) rc = p2q_reconcile_fix_orphan_events(c, okeys.data);
  if (!rc && c->fix && direct.n) {
    p2q_rec_idset_sort(&direct);
    rc = p2q_reconcile_fix_direct(c, &direct);
  }
fail:
  if (rc && !c->err[0]) snprintf(c->err, sizeof c->err, "out of memory");
  PQclear(res);
  free(how);
  p2q_rec_idset_free(&direct);
  p2q_buf_free(&keys);
  p2q_buf_free(&okeys);
  return rc;
}

/* next_page_offset of a scroll reply as JSON text (exact, from the raw reply), or NULL at the end. */
static char *next_offset(const reply_t *p) {
  p2q_span_t result, next;
  if (p2q_json_find(p->raw, p->rawlen, "result", &result) != 1 ||
      p2q_json_find(result.p, result.n, "next_page_offset", &next) != 1 || p2q_span_eq(next, "null"))
    return NULL;
  char *s = malloc(next.n + 1);
  if (s) {
    memcpy(s, next.p, next.n);
    s[next.n] = 0;
  }
  return s;
}

/* Pass 1: scroll the collection page by page. */
static int qdrant_pass(rec_t *c) {
  char *offset = NULL;
  int rc = -1;
  for (;;) {
    p2q_buf_t body = P2Q_BUF_INIT;
    reply_t p;
    const cJSON *arr;
    p2q_buf_printf(&body, "{\"limit\":%d,\"with_payload\":true,\"with_vector\":false", PAGE);
    if (offset) p2q_buf_printf(&body, ",\"offset\":%s", offset);
    p2q_buf_putc(&body, '}');
    int qrc = p2q_reconcile_qcall(c, "/points/scroll", body.data, "points", &p, &arr);
    p2q_buf_free(&body);
    if (qrc) goto fail;
    free(offset);
    offset = next_offset(&p);
    int pr = 0;
    if (p.n > PAGE) {
      snprintf(c->err, sizeof c->err, "scroll returned %d points for a limit of %d", p.n, PAGE);
      pr = -1;
    } else if (p.n) {
      c->points += p.n;
      pr = check_points(c, &p, arr);
    }
    p2q_reconcile_reply_free(&p);
    progress(c);
    if (pr) goto fail;
    if (!offset) break;
  }
  rc = 0;
fail:
  free(offset);
  return rc;
}

/* ---------------- the command ---------------- */

static void report(const rec_t *c) {
  printf("rule %s (collection %s): %lld point(s), %lld row(s): %lld missing, %lld orphaned, %lld stale,"
         " %lld vector_stale, %lld pending\n", c->r->name, c->r->collection, c->points, c->rows_seen,
         c->n[K_MISSING], c->n[K_ORPHAN], c->n[K_STALE], c->n[K_VSTALE], c->pending);
  if (c->other_model)
    printf("  %lld stale point(s) built by another model (_model is not %s): re-embed them (--fix)\n",
           c->other_model, c->r->model);
  if (!c->vectors)
    printf("  vectors not compared (text rule: that would re-embed every row; stale covers the text)\n");
  if (c->settles)
    printf("  %lld extra key scan(s) of the rows settled points that name no row by themselves\n", c->settles);
  for (int k = 0; k < K_N; k++) {
    if (!c->nsample[k]) continue;
    printf("  %s:", kind_name[k]);
    for (int i = 0; i < c->nsample[k]; i++) printf(" %s", c->sample[k][i]);
    printf("%s\n", c->n[k] > c->nsample[k] ? " …" : "");
  }
  if (c->fix && (c->n[K_MISSING] || c->n[K_ORPHAN] || c->n[K_STALE] || c->n[K_VSTALE]))
    printf("  fix: %lld upsert event(s) and %lld delete event(s) enqueued, %lld point(s) deleted directly\n",
           c->fixed_upserts, c->fixed_deletes, c->fixed_direct);
}

/* Reconcile one rule: 0 in sync, 3 drift, 1 error. */
static int reconcile_rule(const p2q_config_t *cfg, const p2q_rule_config_t *r, PGconn *rd,
                          PGconn *wr, p2q_qdrant_blocking_t *qc, int fix, int max_sample) {
  rec_t c;
  int rc = 1;
  memset(&c, 0, sizeof c);
  c.cfg = cfg; c.r = r; c.rd = rd; c.conn = wr; c.qc = qc; c.fix = fix; c.max_sample = max_sample;
  c.tty = isatty(STDOUT_FILENO);
  c.t0 = mono_s();
  c.vectors = r->vector_column != NULL;
  c.page2 = PAGE;
  if (c.vectors && r->dimension > 0) { /* bound the retrieved vectors to ~64 Ki numbers a page */
    long long p = 65536 / r->dimension;
    c.page2 = (int)(p < 16 ? 16 : p > PAGE ? PAGE : p);
  }
  for (int k = 0; k < K_N; k++)
    if (max_sample && !(c.sample[k] = calloc((size_t)max_sample, P2Q_POINT_ID_MAX))) goto fail;
  if (r->chunk_tokens > 0) { /* several points per row: ids are not the row's */
    printf("rule %s: skipped (reconcile does not handle chunked rules yet)\n", r->name);
    rc = 0;
    goto fail;
  }
  /* the set's size: P2Q_RECONCILE_UNRESOLVED_MAX (tests only: makes the settling scans run) */
  const char *umax = getenv("P2Q_RECONCILE_UNRESOLVED_MAX");
  int ucap = umax && atoi(umax) > 0 && atoi(umax) < UNRESOLVED_MAX ? atoi(umax) : UNRESOLVED_MAX;
  if (p2q_rec_idset_init(&c.unresolved, ucap)) { snprintf(c.err, sizeof c.err, "out of memory"); goto fail; }
  if (p2q_reconcile_build_sql(&c)) { snprintf(c.err, sizeof c.err, "cannot generate SQL (bad table name?)"); goto fail; }
  if (qdrant_pass(&c)) goto fail;
  p2q_rec_idset_sort(&c.unresolved);
  if (rows_pass(&c, 1) || settle_unresolved(&c, 0)) goto fail;
  if (c.tty) printf("\r\033[K"); /* clear the progress line */
  report(&c);
  rc = c.n[K_MISSING] || c.n[K_ORPHAN] || c.n[K_STALE] || c.n[K_VSTALE] ? 3 : 0;
fail:
  if (rc == 1) {
    size_t l = strlen(c.err);
    while (l && (c.err[l - 1] == '\n' || c.err[l - 1] == ' ')) c.err[--l] = 0;
    if (c.tty) printf("\r\033[K");
    fprintf(stderr, "pg2qdrant: reconcile: rule %s: %s\n", r->name, c.err);
  }
  for (int k = 0; k < K_N; k++) free(c.sample[k]);
  p2q_rec_idset_free(&c.unresolved);
  p2q_reconcile_sql_free(&c);
  return rc;
}

int p2q_cmd_reconcile(const p2q_config_t *cfg, int argc, char **argv) {
  const char *only = NULL;
  int fix = 0, sample = 10, rc = 0;
  for (int i = 0; i < argc; i++) {
    if (!strcmp(argv[i], "--fix")) fix = 1;
    else if (!strcmp(argv[i], "--sample") && i + 1 < argc) {
      char *end;
      long v = strtol(argv[++i], &end, 10);
      if (*end || v < 0 || v > 10000) { fprintf(stderr, "pg2qdrant: reconcile: --sample must be 0..10000\n"); return 2; }
      sample = (int)v;
    } else if (argv[i][0] != '-' && !only) only = argv[i];
    else { fputs(USAGE, stderr); return 2; }
  }
  if (only && !p2q_config_rule(cfg, only)) { fprintf(stderr, "pg2qdrant: reconcile: no rule %s in %s\n", only, cfg->path); return 2; }
  if (cfg->n_rules == 0) { fprintf(stderr, "pg2qdrant: reconcile: no [rule.NAME] section in %s\n", cfg->path); return 2; }
  char err[1024];
  p2q_qdrant_options_t o;
  p2q_qdrant_blocking_t *qc = NULL;
  PGconn *rd = p2q_admin_connect(cfg, "pg2qdrant/reconcile", err, sizeof err), *wr = NULL;
  if (rd) wr = p2q_admin_connect(cfg, "pg2qdrant/reconcile", err, sizeof err);
  if (!rd || !wr) { fprintf(stderr, "pg2qdrant: %s\n", err); rc = 1; goto fail; }
  p2q_qdrant_options_from_config(cfg, &o);
  if (p2q_qdrant_blocking_open(&o, &qc)) { fprintf(stderr, "pg2qdrant: reconcile: invalid Qdrant options\n"); rc = 1; goto fail; }
  for (int i = 0; i < cfg->n_rules; i++) {
    const p2q_rule_config_t *r = &cfg->rules[i];
    if (only && strcmp(r->name, only)) continue;
    int one = reconcile_rule(cfg, r, rd, wr, qc, fix, sample);
    if (one == 1) { rc = 1; break; }
    if (one == 3) rc = 3;
  }
fail:
  p2q_qdrant_blocking_close(qc);
  PQfinish(rd);
  PQfinish(wr);
  return rc;
}

/*
 * worker_reuse.c — less work per change (loop thread): before a text rule's upserts go to the
 * embedder, the worker retrieves their points' `_text_hash` and `_model` (one POST …/points with
 * the ids, payload keys only, no vectors). A point whose rendered text hash and model are those
 * of the new snapshot keeps its vectors: only its payload is replaced (one POST …/points/batch of
 * overwrite_payload operations, written by worker_write.c like any request, split on rejection).
 * The others are embedded as before. Any failure of the lookup just embeds them all: the lookup
 * is an optimisation, never a reason to wait.
 *
 * Ordering: the lookup and the payload write happen while the batch holds the rows' claims, as
 * an upsert would; the point read is the one an earlier event of the same row wrote (events of a
 * row are applied in order), so "unchanged" compares with the last text written. The sparse
 * (BM25) vector depends only on the text, so it is unchanged too.
 *
 * Chunked rules (cut at preparation, worker_chunk.c): the lookup asks for the points of every
 * chunk of the rows (their ids follow from the row key and the chunk number) and marks the chunks
 * whose point holds the same chunk text hash and model (keep). Rows with every chunk kept are
 * written at once (payload-only operations, then the usual prune of the old extra chunks); the
 * others go to the embedder with their changed or new chunks only. The comparison is by
 * position: chunk j against the point of chunk j.
 */
#include "worker_batch.h"
#include "pg2qdrant/errors.h"
#include "pg2qdrant/hash.h"
#include "pg2qdrant/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  wbatch_t *b;
  int rule, n;
  int idx[];
} reusectx_t;

/* Does the retrieved point `pt` (cJSON) carry event e's id? */
static int same_id(const cJSON *id, const wevent_t *e) {
  char buf[P2Q_POINT_ID_MAX + 2];
  if (cJSON_IsNumber(id)) {
    if (id->valuedouble >= 9007199254740992.0 || id->valuedouble < 0) return 0; /* not exact in a double */
    snprintf(buf, sizeof buf, "%.0f", id->valuedouble);
  } else if (cJSON_IsString(id) && id->valuestring) {
    snprintf(buf, sizeof buf, "\"%s\"", id->valuestring);
  } else {
    return 0;
  }
  return !strcmp(buf, e->point_id);
}

static const char *payload_str(const cJSON *pt, const char *key) {
  const cJSON *p = cJSON_GetObjectItemCaseSensitive(pt, "payload");
  const cJSON *v = cJSON_IsObject(p) ? cJSON_GetObjectItemCaseSensitive(p, key) : NULL;
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* e's payload-only operation {"overwrite_payload":{"payload":{…},"points":[id]}} into e->point. */
static int payload_op(wevent_t *e, const p2q_rule_config_t *r, const char *th) {
  p2q_buf_t pt = P2Q_BUF_INIT, op = P2Q_BUF_INIT;
  char why[256];
  p2q_point_parts_t parts = {.vector = "[0]", .vlen = 3, .sparse = e->sparse, .slen = e->sparse_len,
                             .text = r->store_text ? e->text : NULL, .tlen = e->text_len, .text_hash = th};
  int rc = p2q_point_build_ex(&pt, r, e->point_id, e->point_id[0] == '"', e->row_key, e->payload, strlen(e->payload),
                              &parts, why, sizeof why);
  if (!rc) rc = p2q_point_payload_op(&op, p2q_buf_str(&pt), e->point_id);
  p2q_buf_free(&pt);
  if (rc) { p2q_buf_free(&op); return P2Q_ENOMEM; }
  e->point_len = op.len;
  e->point = p2q_buf_steal(&op);
  return 0;
}

/* Send the lookup whose body lists the ids ("{\"ids\":[…"): POST …/points for the keys reuse
   compares. 0 when sent (cb fires once), else nothing is in flight and the caller embeds. */
static int send_lookup(wbatch_t *b, const p2q_rule_config_t *r, p2q_buf_t *body, p2q_qdrant_cb cb, void *arg) {
  p2q_buf_puts(body, "],\"with_payload\":[\"_text_hash\",\"_model\"],\"with_vector\":false}");
  if (p2q_buf_error(body)) return P2Q_ENOMEM;
  size_t len = body->len;
  char *data = p2q_buf_steal(body);
  b->pending++;
  int rc = b->w->ctx.write(b->w->ctx.arg, r->collection, P2Q_OP_RETRIEVE, data, len, 0, cb, arg);
  if (rc) {
    b->pending--;
    free(data);
  }
  return rc;
}

static void retrieved(p2q_qdrant_t *q, const p2q_qdrant_resp_t *resp, void *arg) {
  reusectx_t *c = arg;
  wbatch_t *b = c->b;
  p2q_worker_t *w = b->w;
  const p2q_rule_config_t *r = &WCFG(w)->rules[c->rule];
  const cJSON *pts = resp->err == 0 && cJSON_IsArray(resp->result) ? resp->result : NULL;
  int *same = malloc(sizeof(int) * (size_t)c->n), n_same = 0, n_changed = 0;
  for (int i = 0; i < c->n; i++) {
    wevent_t *e = &b->ev[c->idx[i]];
    int keep = 0;
    const cJSON *pt;
    char th[17];
    p2q_hash64_hex(e->text, e->text_len, th);
    cJSON_ArrayForEach(pt, pts) {
      if (!same_id(cJSON_GetObjectItemCaseSensitive(pt, "id"), e)) continue;
      const char *h = payload_str(pt, "_text_hash"), *m = payload_str(pt, "_model");
      keep = same && h && m && !strcmp(h, th) && !strcmp(m, r->model) && payload_op(e, r, th) == 0;
      break;
    }
    if (keep) {
      same[n_same++] = c->idx[i];
      p2q_wk_drop_payload(e);
      free(e->text); e->text = NULL;
    } else {
      c->idx[n_changed++] = c->idx[i];
    }
  }
  if (n_same) {
    P2Q_DEBUG("embed_skipped", "worker=%s rule=%s unchanged=%d", w->cfg->name, r->name, n_same);
    p2q_wk_send(b, c->rule, P2Q_OP_PAYLOAD, same, n_same);
  }
  if (n_changed) p2q_wk_embed(b, c->rule, c->idx, n_changed);
  free(same);
  free(c);
  p2q_wk_request_finished(b);
}

/* ---- chunked rules ----------------------------------------------------------------------------- */

typedef struct { char id[40]; int ev, j; } chunkref_t; /* id: the UUID, unquoted */

static int ref_cmp(const void *a, const void *b) { return strcmp(((const chunkref_t *)a)->id, ((const chunkref_t *)b)->id); }

typedef struct {
  wbatch_t *b;
  int rule, n, nref;
  chunkref_t *refs; /* sorted by id */
  int idx[];
} chunkctx_t;

/* Rows with every chunk kept are written now; the others are embedded (their changed chunks). */
static void chunks_route(wbatch_t *b, int rule, int *idx, int n) {
  int n_all = 0, n_emb = 0;
  int *all = malloc(sizeof *all * (size_t)(n ? n : 1));
  for (int i = 0; all && i < n; i++) {
    wevent_t *e = &b->ev[idx[i]];
    int kept = 0;
    for (int j = 0; j < e->n_chunks; j++) kept += e->chunks[j].keep;
    if (kept == e->n_chunks) all[n_all++] = idx[i];
    else idx[n_emb++] = idx[i];
  }
  if (!all) { /* out of memory: embed them all */
    for (int i = 0; i < n; i++)
      for (int j = 0; j < b->ev[idx[i]].n_chunks; j++) b->ev[idx[i]].chunks[j].keep = 0;
    n_emb = n;
  }
  if (n_all) {
    p2q_embed_result_t none = {0};
    P2Q_DEBUG("embed_skipped", "worker=%s rule=%s unchanged_rows=%d", b->w->cfg->name, WCFG(b->w)->rules[rule].name,
              n_all);
    p2q_wk_chunk_embedded(b, rule, &none, all, n_all);
    for (int i = 0; i < n_all; i++) {
      wevent_t *e = &b->ev[all[i]];
      p2q_wk_drop_payload(e);
      free(e->text); e->text = NULL;
      free(e->chunks); e->chunks = NULL;
    }
  }
  if (n_emb) p2q_wk_embed(b, rule, idx, n_emb);
  free(all);
}

static void chunks_retrieved(p2q_qdrant_t *q, const p2q_qdrant_resp_t *resp, void *arg) {
  chunkctx_t *c = arg;
  wbatch_t *b = c->b;
  const p2q_rule_config_t *r = &WCFG(b->w)->rules[c->rule];
  const cJSON *pts = resp->err == 0 && cJSON_IsArray(resp->result) ? resp->result : NULL, *pt;
  (void)q;
  int kept = 0;
  cJSON_ArrayForEach(pt, pts) {
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(pt, "id");
    const char *h = payload_str(pt, "_text_hash"), *m = payload_str(pt, "_model");
    if (!cJSON_IsString(id) || !id->valuestring || !h || !m || strcmp(m, r->model) != 0) continue;
    chunkref_t key, *ref;
    snprintf(key.id, sizeof key.id, "%s", id->valuestring);
    if (!(ref = bsearch(&key, c->refs, (size_t)c->nref, sizeof *c->refs, ref_cmp))) continue;
    wchunk_t *ch = &b->ev[ref->ev].chunks[ref->j];
    ch->keep = strcmp(h, ch->hash) == 0;
    kept += ch->keep;
  }
  P2Q_DEBUG("chunks_reused", "worker=%s rule=%s chunks=%d unchanged=%d lookup=%s", b->w->cfg->name, r->name, c->nref,
            kept, pts ? "ok" : "failed");
  chunks_route(b, c->rule, c->idx, c->n);
  free(c->refs);
  free(c);
  p2q_wk_request_finished(b);
}

/* One POST …/points with the ids of every chunk of the rows; embed them all if it cannot be sent. */
static void chunks_lookup(wbatch_t *b, int rule, const int *idx, int n) {
  p2q_worker_t *w = b->w;
  const p2q_rule_config_t *r = &WCFG(w)->rules[rule];
  p2q_buf_t body = P2Q_BUF_INIT;
  int nref = 0;
  for (int i = 0; i < n; i++) nref += b->ev[idx[i]].n_chunks;
  chunkctx_t *c = malloc(sizeof *c + sizeof(int) * (size_t)n);
  chunkref_t *refs = malloc(sizeof *refs * (size_t)(nref ? nref : 1));
  if (!c || !refs || !r->model[0]) goto embed;
  c->b = b; c->rule = rule; c->n = n; c->nref = nref; c->refs = refs;
  memcpy(c->idx, idx, sizeof(int) * (size_t)n);
  p2q_buf_puts(&body, "{\"ids\":[");
  for (int i = 0, k = 0; i < n; i++) {
    const wevent_t *e = &b->ev[idx[i]];
    for (int j = 0; j < e->n_chunks; j++, k++) {
      char cid[P2Q_POINT_ID_MAX];
      if (p2q_chunk_point_id(r->name, e->row_key, j, cid)) goto embed;
      if (k) p2q_buf_putc(&body, ',');
      p2q_buf_puts(&body, cid);
      snprintf(refs[k].id, sizeof refs[k].id, "%.*s", (int)strlen(cid) - 2, cid + 1); /* unquoted */
      refs[k].ev = idx[i];
      refs[k].j = j;
    }
  }
  qsort(refs, (size_t)nref, sizeof *refs, ref_cmp);
  if (send_lookup(b, r, &body, chunks_retrieved, c) == 0) return;
embed: /* no lookup: every chunk is embedded */
  free(c);
  free(refs);
  p2q_buf_free(&body);
  p2q_wk_embed(b, rule, idx, n);
}

/* ---- entry ----------------------------------------------------------------------------------------- */

void p2q_wk_reuse(wbatch_t *b, int rule, const int *idx, int n) {
  p2q_worker_t *w = b->w;
  const p2q_rule_config_t *r = &WCFG(w)->rules[rule];
  reusectx_t *c = NULL;
  p2q_buf_t body = P2Q_BUF_INIT;
  if (r->chunk_tokens > 0) { chunks_lookup(b, rule, idx, n); return; }
  if (!r->model[0] || p2q_wk_rule_shared(WCFG(w), rule)) goto embed;
  c = malloc(sizeof *c + sizeof(int) * (size_t)n);
  if (!c) goto embed;
  c->b = b;
  c->rule = rule;
  c->n = n;
  memcpy(c->idx, idx, sizeof(int) * (size_t)n);
  p2q_buf_puts(&body, "{\"ids\":[");
  for (int i = 0; i < n; i++) {
    if (i) p2q_buf_putc(&body, ',');
    p2q_buf_puts(&body, b->ev[idx[i]].point_id);
  }
  if (send_lookup(b, r, &body, retrieved, c) == 0) return;
embed: /* no lookup: embed them all */
  free(c);
  p2q_buf_free(&body);
  p2q_wk_embed(b, rule, idx, n);
}

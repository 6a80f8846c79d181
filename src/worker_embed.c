/*
 * worker_embed.c — the preparation and embedding stage of a worker's batch (loop thread):
 * builds each upsert's point JSON from its snapshot (vector_column rules), or renders the text
 * of text rules and hands it to the rule's embedder (which computes off the loop); when the
 * vectors come back, builds the points and passes them to the write stage. Chunked rules are cut
 * into chunks at preparation and their points built by worker_chunk.c (one text, one vector and
 * one point per chunk). A batch freed while an embedding call is in flight detaches it (ctx->b = NULL).
 * `sparse = bm25` rules get their BM25 vector here, from the rendered text (bm25.c, one analyzer
 * per rule per batch); keyword-only rules (no embedder) are built here and never embedded.
 * A vector_column rule's vector that came in binary (p2q_wk_vector_direct) is printed once,
 * straight into its point in the request body, not into the snapshot: the point's `_hash` is then
 * computed over the snapshot's three pieces once every point is in (vector_hashes); anything
 * unusual about it goes back to the spliced snapshot and the usual path (direct_point).
 */
#include "worker_batch.h"
#include "pg2qdrant/bm25.h"
#include "pg2qdrant/embedder.h"
#include "pg2qdrant/errors.h"
#include "pg2qdrant/hash.h"
#include "pg2qdrant/log.h"
#include "pg2qdrant/template.h"
#include "pg2qdrant/vector_bin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static p2q_bm25_t *analyzer(p2q_bm25_t **an, int rule, const p2q_rule_config_t *r) {
  if (!an[rule]) {
    p2q_bm25_opts_t o;
    p2q_bm25_defaults(&o);
    o.k1 = strtod(r->bm25_k1, NULL); /* validated by the loader */
    o.b = strtod(r->bm25_b, NULL);
    o.avg_len = (double)r->bm25_avg_len;
    o.stopwords = r->bm25_stopwords;
    o.stem = r->bm25_stemmer;
    if (p2q_bm25_new(&o, &an[rule])) an[rule] = NULL;
  }
  return an[rule];
}

/* A text rule's upsert with its rendered text in pt: its sparse vector, then either kept for
   embedding (e->text) or, for a keyword-only rule, its point built now. */
static void prepare_text(wbatch_t *bt, wevent_t *e, const p2q_rule_config_t *r, p2q_bm25_t *an, p2q_buf_t *pt,
                         int isuuid) {
  char why[256], th[17];
  if (r->sparse) {
    p2q_buf_t sp = P2Q_BUF_INIT;
    if (!an || p2q_bm25_document(an, p2q_buf_str(pt), pt->len, &sp) < 0) {
      p2q_buf_free(&sp);
      p2q_wk_set_outcome(e, P2Q_OUTCOME_REQUEUE, 1000, "out of memory (bm25)");
      return;
    }
    e->sparse_len = sp.len;
    e->sparse = p2q_buf_steal(&sp);
  }
  if (r->embedder) {
    e->text_len = pt->len;
    e->text = p2q_buf_steal(pt);
    if (r->chunk_tokens > 0) p2q_wk_chunk_plan(bt, e, r); /* cut now: reuse compares chunk by chunk */
    return;
  }
  p2q_buf_t b = P2Q_BUF_INIT;
  p2q_hash64_hex(p2q_buf_str(pt), pt->len, th);
  p2q_point_parts_t parts = {.sparse = e->sparse, .slen = e->sparse_len, .text = r->store_text ? p2q_buf_str(pt) : NULL,
                             .tlen = pt->len, .text_hash = th};
  int rc = p2q_point_build_ex(&b, r, e->point_id, isuuid, e->row_key, e->payload, strlen(e->payload), &parts, why, sizeof why);
  if (rc == 1) e->op = P2Q_OP_DELETE; /* a vector_column rule whose vector is NULL */
  else if (rc < 0) p2q_wk_set_outcome(e, P2Q_OUTCOME_DEAD, 0, rc == P2Q_ENOMEM ? "out of memory" : why);
  else { e->point_len = b.len; e->point = p2q_buf_steal(&b); }
  p2q_buf_free(&b);
}

/* The snapshots of the points built from them below (vector_column rules): their lengths and
   `_hash`es, four hashed side by side (p2q_hash64_many: ~4x faster than one at a time). at[i]:
   event i's index in len/hash, or -1. NULL when out of memory (each point hashes its own). */
typedef struct {
  int *at;
  size_t *len;
  uint64_t *hash;
} snaps_t;

static void snaps_hash(wbatch_t *b, snaps_t *s) {
  const p2q_config_t *cfg = WCFG(b->w);
  size_t n = (size_t)b->n + 1;
  const char **data = malloc(n * sizeof *data);
  s->at = malloc(n * sizeof *s->at), s->len = malloc(n * sizeof *s->len), s->hash = malloc(n * sizeof *s->hash);
  if (!data || !s->at || !s->len || !s->hash) {
    free(s->at), free(s->len), free(s->hash);
    s->at = NULL, s->len = NULL, s->hash = NULL;
  }
  int k = 0;
  for (int i = 0; s->at && i < b->n; i++) {
    const wevent_t *e = &b->ev[i];
    s->at[i] = -1;
    if (e->op != P2Q_OP_UPSERT || e->rule < 0 || !e->payload || cfg->rules[e->rule].text || e->vbin) continue;
    data[k] = e->payload, s->len[k] = e->payload_len, s->at[i] = k++; /* no strlen: ~2 % of the drain's CPU */
  }
  if (s->at) p2q_hash64_many(data, s->len, k, s->hash);
  free(data);
}

/* The room to reserve for e's vector text in its body (direct_point prints it there): as much
   as the last batch's texts took of theirs, plus 1/16. The whole room (every float at its longest:
   2.5-3x the drain's texts) would make the body the process's largest block, which glibc maps
   and unmaps at each batch (perf stat: 10-30k page faults per 100,000-event drain, 1.5k without);
   a body that falls short grows (doubling), and the next batch's estimate follows. */
static size_t vtext_room(const wbatch_t *b, const wevent_t *e) {
  double share = b->w->vtext_share;
  return share > 0 && share < 1 ? (size_t)((double)e->vroom * share * 1.0625) : e->vroom;
}

/* The request bodies of the batch's vector_column rules, each sized for its upserts (one
   allocation; a body that still grows moves, hence offsets until bodies_close). */
static void bodies_open(wbatch_t *b) {
  const p2q_config_t *cfg = WCFG(b->w);
  size_t *need = calloc((size_t)cfg->n_rules + 1, sizeof *need), one = 0; /* + one vector at its longest */
  int any = 0;
  for (int i = 0; need && i < b->n; i++) {
    const wevent_t *e = &b->ev[i];
    if (e->op != P2Q_OP_UPSERT || e->rule < 0 || !e->payload || cfg->rules[e->rule].text) continue;
    need[e->rule] += e->payload_len + (e->vbin ? vtext_room(b, e) : 0) + strlen(e->row_key) + 2 * P2Q_POINT_ID_MAX + 64,
        any = 1;
    if (e->vbin && e->vroom > one) one = e->vroom;
  }
  if (any && (b->bodies = calloc((size_t)cfg->n_rules, sizeof *b->bodies))) b->n_bodies = cfg->n_rules;
  for (int r = 0; b->bodies && r < b->n_bodies; r++)
    if (need[r]) p2q_buf_reserve(&b->bodies[r].buf, need[r] + one + 16);
  free(need);
}

/* e's point appended to its rule's body (p2q_point_build_ex's result; 0: e->point_at is where). */
static int body_point(wbatch_t *b, wevent_t *e, const p2q_rule_config_t *r, int isuuid, const p2q_point_parts_t *parts,
                      size_t plen, char *why, size_t whylen) {
  if (!b->bodies) return P2Q_ENOMEM;
  wbody_t *wb = &b->bodies[e->rule];
  size_t mark = wb->buf.len;
  p2q_buf_puts(&wb->buf, wb->n ? "," : P2Q_WK_POINTS_OPEN);
  size_t at = wb->buf.len;
  int rc = p2q_point_build_ex(&wb->buf, r, e->point_id, isuuid, e->row_key, e->payload, plen, parts, why, whylen);
  if (rc) {
    if (wb->buf.data) wb->buf.len = mark, wb->buf.data[mark] = 0;
    return rc;
  }
  e->point_at = at, e->point_len = wb->buf.len - at, e->point_lent = 1;
  wb->n++;
  return 0;
}

int p2q_wk_vector_direct(const p2q_config_t *cfg, int rule) {
  if (rule < 0 || rule >= cfg->n_rules || !cfg->rules[rule].vector_column || cfg->rules[rule].text ||
      cfg->rules[rule].shadow_of > 0)
    return 0;
  for (int j = 0; j < cfg->n_rules; j++)
    if (cfg->rules[j].shadow_of == rule + 1) return 0;
  return 1;
}

/* e's point with its vector printed from e->vbin straight into the body: 0, its payload kept for
   vector_hashes. Else (the vector member holds something else or is missing, the bytes are not a
   flat real[] of numbers: not the common case) e's snapshot spliced as claim_cb splices the other
   rules' (owned, e->vbin cleared) for the usual path, or e dead letter as claim_cb would have
   made it (e->payload NULL): -1. */
static int direct_point(wbatch_t *b, wevent_t *e, const p2q_rule_config_t *r, int isuuid) {
  char why[256];
  p2q_point_parts_t parts = {.vec_bin = e->vbin, .vec_bin_len = e->vbin_len, .vec_text = e->vtext, .vec_place = &e->vplace};
  if (body_point(b, e, r, isuuid, &parts, e->payload_len, why, sizeof why) == 0) return 0;
  p2q_buf_t o = P2Q_BUF_INIT;
  int rc = p2q_vector_splice(&o, r->vector_column, e->payload, e->payload_len, e->vbin, e->vbin_len, &e->vec, why,
                             sizeof why);
  p2q_wk_drop_payload(e);
  e->vbin = NULL;
  if (rc) {
    p2q_buf_free(&o);
    p2q_wk_set_outcome(e, P2Q_OUTCOME_DEAD, 0, rc == P2Q_EBADJSON ? why : "upsert event without a snapshot");
    return -1;
  }
  e->payload_len = o.len, e->payload = p2q_buf_steal(&o), e->payload_owned = 1;
  return -1;
}

/* Piece k of a direct point's snapshot (direct_point): 0 the payload before the placeholder, 1
   the vector's text in the body, 2 the payload after it. */
static void piece(const wbatch_t *b, const wevent_t *e, int k, const char **data, size_t *len) {
  if (k == 0) *data = e->payload, *len = e->vplace;
  else if (k == 1) *data = b->bodies[e->rule].buf.data + e->vtext[0], *len = e->vtext[1];
  else *data = e->payload + e->vplace + 4, *len = e->payload_len - e->vplace - 4;
}

/* The bodies are closed: each direct point's `_hash`, FNV-1a over its snapshot's three pieces in
   order (piece), the batch's side by side (p2q_hash64_many_cont; one at a time when out of
   memory), written into the point; then its payload goes. */
static void vector_hashes(wbatch_t *b) {
  int n = 0, k = 0;
  for (int i = 0; i < b->n; i++) n += b->ev[i].vbin && b->ev[i].point_lent;
  if (!n) return;
  const char **data = malloc(sizeof *data * (size_t)n);
  size_t *len = malloc(sizeof *len * (size_t)n);
  uint64_t *h = malloc(sizeof *h * (size_t)n);
  int *who = malloc(sizeof *who * (size_t)n), ok = data && len && h && who;
  for (int i = 0; i < b->n; i++) {
    wevent_t *e = &b->ev[i];
    if (!e->vbin || !e->point_lent) continue;
    if (ok) { who[k++] = i; continue; }
    uint64_t one = P2Q_HASH64_BASIS; /* out of memory: one at a time */
    for (int p = 0; p < 3; p++) {
      const char *d;
      size_t l;
      piece(b, e, p, &d, &l);
      one = p2q_hash64_cont(one, d, l);
    }
    p2q_point_set_hash(e->point, e->point_len, one);
  }
  for (int p = 0; k && p < 3; p++) {
    for (int j = 0; j < k; j++) piece(b, &b->ev[who[j]], p, &data[j], &len[j]);
    p2q_hash64_many_cont(data, len, p ? h : NULL, k, h);
  }
  for (int j = 0; j < k; j++) p2q_point_set_hash(b->ev[who[j]].point, b->ev[who[j]].point_len, h[j]);
  size_t took = 0, room = 0;
  for (int i = 0; i < b->n; i++)
    if (b->ev[i].vbin && b->ev[i].point_lent) {
      took += b->ev[i].vtext[1], room += b->ev[i].vroom;
      p2q_wk_drop_payload(&b->ev[i]);
    }
  if (room) b->w->vtext_share = (double)took / (double)room; /* vtext_room's next estimate */
  free(data), free(len), free(h), free(who);
}

/* Every point is in: close the bodies, point the events into them. */
static void bodies_close(wbatch_t *b) {
  for (int r = 0; b->bodies && r < b->n_bodies; r++)
    if (b->bodies[r].n) p2q_buf_puts(&b->bodies[r].buf, "]}");
  for (int i = 0; i < b->n; i++)
    if (b->ev[i].point_lent) b->ev[i].point = b->bodies[b->ev[i].rule].buf.data + b->ev[i].point_at;
}

/* Build each upsert's point once; NULL vectors (and blank texts) become deletes, bad snapshots
   dead letters. Text rules keep their snapshot and rendered text for the embedding stage. */
void p2q_wk_prepare(wbatch_t *b) {
  p2q_worker_t *w = b->w;
  p2q_buf_t pt = P2Q_BUF_INIT;
  p2q_bm25_t **an = calloc((size_t)WCFG(w)->n_rules + 1, sizeof *an);
  char why[256];
  snaps_t sn;
  snaps_hash(b, &sn);
  bodies_open(b);
  for (int i = 0; i < b->n; i++) {
    wevent_t *e = &b->ev[i];
    if (e->op == P2Q_OP_RELEASE) { p2q_wk_set_outcome(e, P2Q_OUTCOME_RELEASE, 0, NULL); continue; }
    if (e->rule < 0) { p2q_wk_set_outcome(e, P2Q_OUTCOME_DEAD, 0, "the event's rule is not configured"); continue; }
    const p2q_rule_config_t *r = &WCFG(w)->rules[e->rule];
    int isuuid = p2q_point_id(r->name, e->row_key, strlen(e->row_key), e->point_id);
    if (isuuid < 0) { p2q_wk_set_outcome(e, P2Q_OUTCOME_DEAD, 0, "row key is not a JSON object"); continue; }
    if (e->op != P2Q_OP_UPSERT) continue;
    if (!e->payload && e->error) { e->outcome = P2Q_OUTCOME_DEAD, e->delay_ms = 0; continue; } /* claim_cb's */
    if (!e->payload) { p2q_wk_set_outcome(e, P2Q_OUTCOME_DEAD, 0, "upsert event without a snapshot"); continue; }
    p2q_buf_reset(&pt);
    int rc;
    if (r->text) { /* embedded later; a blank text means no vector, so no point */
      rc = p2q_template_render(r->text, e->payload, strlen(e->payload), &pt);
      if (rc == 0 && r->vector_column) rc = 1; /* the text only feeds the keyword vector */
      if (rc == 1) {
        prepare_text(b, e, r, an ? analyzer(an, e->rule, r) : NULL, &pt, isuuid);
        if (r->embedder) continue;
      } else if (rc == 0) {
        e->op = P2Q_OP_DELETE;
      } else {
        p2q_wk_set_outcome(e, P2Q_OUTCOME_DEAD, 0, rc == P2Q_ENOMEM ? "out of memory" : "text template does not fit the snapshot");
      }
    } else {
      if (e->vbin && direct_point(b, e, r, isuuid) == 0) continue; /* its payload: vector_hashes */
      if (!e->payload) continue;                                     /* dead letter (direct_point) */
      int at = sn.at ? sn.at[i] : -1;
      p2q_point_parts_t parts = {.snapshot_hash = at >= 0 ? &sn.hash[at] : NULL, .vec_dim = e->vec.dim,
                                 .vec_at = e->vec.at, .vec_len = e->vec.len};
      rc = body_point(b, e, r, isuuid, &parts, at >= 0 ? sn.len[at] : e->payload_len, why, sizeof why);
      if (rc == 1) e->op = P2Q_OP_DELETE; /* the row has no vector: it has no point */
      else if (rc < 0) p2q_wk_set_outcome(e, P2Q_OUTCOME_DEAD, 0, rc == P2Q_ENOMEM ? "out of memory" : why);
    }
    p2q_wk_drop_payload(e);
  }
  bodies_close(b);
  vector_hashes(b);
  for (int i = 0; i < b->n; i++) b->ev[i].vbin = NULL; /* its bytes go with the claim's result */
  for (int i = 0; an && i < WCFG(w)->n_rules; i++) p2q_bm25_free(an[i]);
  free(an);
  free(sn.at), free(sn.len), free(sn.hash);
  p2q_buf_free(&pt);
}

/* Vectors are back: build the points of this group and send them. */
static void embedded(const p2q_embed_result_t *r, void *arg) {
  embctx_t *c = arg;
  wbatch_t *b = c->b;
  if (!b) { free(c); return; } /* the batch is gone (forced shutdown) */
  for (embctx_t **p = &b->embeds; *p; p = &(*p)->next)
    if (*p == c) { *p = c->next; break; }
  p2q_worker_t *w = b->w;
  const p2q_rule_config_t *rule = &WCFG(w)->rules[c->rule];
  if (w->ctx.on_embed) w->ctx.on_embed(w->ctx.arg, rule->embedder, r->seconds, r->tokens);
  if (r->err) {
    /* transient: the embedder is down or busy, not the events: no attempt, they wait as long as
       the health gate says (a Retry-After makes it a rate limit for every worker). Otherwise
       the texts' own fault: an attempt (the embedder bisects rejected batches itself). */
    char q[600];
    p2q_verdict_t v = p2q_classify_embed(r->err, r->transient, 0, c->n);
    if (v == P2Q_V_TRANSIENT && r->retry_after_ms > 0) v = P2Q_V_RATE_LIMITED;
    if (v == P2Q_V_RATE_LIMITED) w->st->rate_limited++;
    uint64_t wait = v == P2Q_V_EVENT_FAULT || v == P2Q_V_CANCELED ? 0
                  : w->ctx.report(w->ctx.arg, c->rule, 1, v, 0, r->retry_after_ms, r->msg);
    p2q_wk_fail(b, c->idx, c->n, v, wait, r->msg);
    P2Q_WARN("embed_failed", "worker=%s rule=%s texts=%d verdict=%s wait_ms=%llu err=%s", w->cfg->name,
             rule->name, c->n, p2q_verdict_name(v), (unsigned long long)wait, p2q_log_q(q, sizeof q, r->msg));
  } else {
    w->ctx.report(w->ctx.arg, c->rule, 1, P2Q_V_DONE, 0, -1, NULL);
    if (rule->chunk_tokens > 0) { /* one vector per chunk to embed (worker_chunk.c) */
      p2q_wk_chunk_embedded(b, c->rule, r, c->idx, c->n);
      goto done;
    }
    p2q_buf_t vec = P2Q_BUF_INIT, pt = P2Q_BUF_INIT;
    char why[256];
    int k = 0;
    for (int i = 0; i < c->n; i++) { /* one vector per text */
      wevent_t *e = &b->ev[c->idx[i]];
      if (r->status[i]) {
        if (r->reasons && r->reasons[i]) snprintf(why, sizeof why, "%s", r->reasons[i]);
        else snprintf(why, sizeof why, "text cannot be embedded: %s", p2q_strerror(r->status[i]));
        p2q_wk_set_outcome(e, P2Q_OUTCOME_DEAD, 0, why);
        continue;
      }
      char th[17];
      p2q_buf_reset(&pt);
      p2q_buf_reset(&vec);
      p2q_vector_format(&vec, r->vecs + (size_t)i * (size_t)r->dim, r->dim);
      p2q_hash64_hex(e->text, e->text_len, th);
      p2q_point_parts_t parts = {.vector = vec.data, .vlen = vec.len, .sparse = e->sparse, .slen = e->sparse_len,
                                 .text = rule->store_text ? e->text : NULL, .tlen = e->text_len, .text_hash = th};
      int rc = p2q_point_build_ex(&pt, rule, e->point_id, e->point_id[0] == '"', e->row_key, e->payload,
                                  strlen(e->payload), &parts, why, sizeof why);
      if (rc) { p2q_wk_set_outcome(e, P2Q_OUTCOME_DEAD, 0, rc == P2Q_ENOMEM ? "out of memory" : why); continue; }
      e->point_len = pt.len;
      e->point = p2q_buf_steal(&pt);
      c->idx[k++] = c->idx[i];
    }
    if (k) p2q_wk_send(b, c->rule, P2Q_OP_UPSERT, c->idx, k);
    p2q_buf_free(&vec);
    p2q_buf_free(&pt);
  }
done:
  for (int i = 0; i < c->n; i++) {
    wevent_t *e = &b->ev[c->idx[i]];
    p2q_wk_drop_payload(e);
    free(e->text); e->text = NULL;
    free(e->chunks); e->chunks = NULL; /* n_chunks stays: the prune needs it */
  }
  free(c);
  p2q_wk_request_finished(b);
}

/* Embed the texts of one rule's upserts; the points are sent when the vectors are back. */
void p2q_wk_embed(wbatch_t *b, int rule, const int *idx, int n) {
  p2q_worker_t *w = b->w;
  const p2q_rule_config_t *rc_ = &WCFG(w)->rules[rule];
  embctx_t *c = malloc(sizeof *c + sizeof(int) * (size_t)n);
  const char **texts = NULL;
  size_t *lens = NULL;
  int rc = P2Q_ENOMEM, nt = n;
  if (rc_->chunk_tokens > 0) { /* the chunks' texts (not the kept ones) */
    nt = p2q_wk_chunk_texts(b, idx, n, &texts, &lens);
  } else if ((texts = malloc(sizeof *texts * (size_t)n)) && (lens = malloc(sizeof *lens * (size_t)n))) {
    for (int i = 0; i < n; i++) { texts[i] = b->ev[idx[i]].text; lens[i] = b->ev[idx[i]].text_len; }
  }
  if (c && texts && lens && nt > 0) {
    c->b = b; c->rule = rule; c->n = n;
    memcpy(c->idx, idx, sizeof(int) * (size_t)n);
    /* linked and counted before the call: the embedder may complete (and free c) inside it */
    c->next = b->embeds;
    b->embeds = c;
    b->pending++;
    rc = w->ctx.embed(w->ctx.arg, rc_->embedder, texts, lens, nt, embedded, c); /* copies the texts */
    if (rc) { /* the callback will not fire: undo */
      b->embeds = c->next;
      b->pending--;
    }
  }
  free(texts);
  free(lens);
  if (rc) {
    const char *msg = rc == P2Q_EINVAL ? "the rule's embedder is not running" : "cannot start embedding";
    free(c);
    p2q_wk_fail(b, idx, n, P2Q_V_TRANSIENT, w->ctx.report(w->ctx.arg, rule, 1, P2Q_V_TRANSIENT, 0, -1, msg), msg);
  }
}

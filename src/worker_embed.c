/*
 * worker_embed.c — the preparation and embedding stage of a worker's batch (loop thread):
 * builds each upsert's point JSON from its snapshot (vector_column rules), or renders the text
 * of text rules and hands it to the rule's embedder (which computes off the loop); when the
 * vectors come back, builds the points (one per chunk for chunked rules) and passes them to the
 * write stage. A batch freed while an embedding call is in flight detaches it (ctx->b = NULL).
 */
#include "worker_internal.h"
#include "pg2qdrant/embedder.h"
#include "pg2qdrant/errors.h"
#include "pg2qdrant/log.h"
#include "pg2qdrant/status_http.h"
#include "pg2qdrant/template.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Build each upsert's point once; NULL vectors (and blank texts) become deletes, bad snapshots
   dead letters. Text rules keep their snapshot and rendered text for the embedding stage. */
void p2q_wk_prepare(wbatch_t *b) {
  p2q_worker_t *w = b->w;
  p2q_buf_t pt = P2Q_BUF_INIT;
  char why[256];
  for (int i = 0; i < b->n; i++) {
    wevent_t *e = &b->ev[i];
    if (e->op == OP_RELEASE) { p2q_wk_set_outcome(e, "release", 0, NULL); continue; }
    if (e->rule < 0) { p2q_wk_set_outcome(e, "dead", 0, "the event's rule is not configured"); continue; }
    const p2q_rule_config_t *r = &w->d->cfg->rules[e->rule];
    int isuuid = p2q_point_id(r->name, e->row_key, strlen(e->row_key), e->point_id);
    if (isuuid < 0) { p2q_wk_set_outcome(e, "dead", 0, "row key is not a JSON object"); continue; }
    if (e->op != OP_UPSERT) continue;
    if (!e->payload) { p2q_wk_set_outcome(e, "dead", 0, "upsert event without a snapshot"); continue; }
    p2q_buf_reset(&pt);
    int rc;
    if (r->text) { /* embedded later; a blank text means no vector, so no point */
      rc = p2q_template_render(r->text, e->payload, strlen(e->payload), &pt);
      if (rc == 1) { e->text_len = pt.len; e->text = p2q_buf_steal(&pt); continue; }
      if (rc == 0) e->op = OP_DELETE;
      else p2q_wk_set_outcome(e, "dead", 0, rc == P2Q_ENOMEM ? "out of memory" : "text template does not fit the snapshot");
    } else {
      rc = p2q_point_build(&pt, r, e->point_id, isuuid, e->row_key, e->payload, strlen(e->payload),
                           NULL, 0, why, sizeof why);
      if (rc == 1) e->op = OP_DELETE; /* the row has no vector: it has no point */
      else if (rc < 0) p2q_wk_set_outcome(e, "dead", 0, rc == P2Q_ENOMEM ? "out of memory" : why);
      else { e->point_len = pt.len; e->point = p2q_buf_steal(&pt); }
    }
    free(e->payload);
    e->payload = NULL;
  }
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
  const p2q_rule_config_t *rule = &w->d->cfg->rules[c->rule];
  p2q_ops_embed(w->d->ops, rule->embedder, r->seconds, r->tokens);
  if (r->err && r->transient) {
    /* the embedder is down, not the events: give the attempt back and wait, with a backoff that
       grows with its consecutive failures (capped at breaker_max), before claiming them again */
    char q[600];
    uint64_t delay = p2q_daemon_embed_result(w->d, rule->embedder, 1); /* may open its breaker */
    if (r->retry_after_ms > 0 && (uint64_t)r->retry_after_ms > delay) delay = (uint64_t)r->retry_after_ms;
    for (int i = 0; i < c->n; i++) p2q_wk_set_outcome(&b->ev[c->idx[i]], "requeue", (int)delay, r->msg);
    P2Q_WARN("embed_failed", "worker=%s rule=%s texts=%d transient=1 retry_in_ms=%llu err=%s", w->cfg->name,
             rule->name, c->n, (unsigned long long)delay, p2q_log_q(q, sizeof q, r->msg));
  } else if (r->err) {
    char q[600];
    p2q_wk_fail(b, c->idx, c->n, 0, -1, r->msg);
    P2Q_WARN("embed_failed", "worker=%s rule=%s texts=%d transient=%d err=%s", w->cfg->name, rule->name,
             c->n, r->transient, p2q_log_q(q, sizeof q, r->msg));
  } else {
    p2q_daemon_embed_result(w->d, rule->embedder, 0);
    p2q_buf_t vec = P2Q_BUF_INIT, pt = P2Q_BUF_INIT;
    char why[256];
    int k = 0;
    size_t off = 0; /* first vector of text i */
    for (int i = 0; i < c->n; off += (size_t)(r->chunks ? r->chunks[i] : 1), i++) {
      wevent_t *e = &b->ev[c->idx[i]];
      if (r->status[i]) {
        if (r->reasons && r->reasons[i]) snprintf(why, sizeof why, "%s", r->reasons[i]);
        else snprintf(why, sizeof why, "text cannot be embedded: %s", p2q_strerror(r->status[i]));
        p2q_wk_set_outcome(e, "dead", 0, why);
        continue;
      }
      p2q_buf_reset(&pt);
      int rc = 0, nv = r->chunks ? r->chunks[i] : 1;
      for (int j = 0; !rc && j < nv; j++) {
        char cid[P2Q_POINT_ID_MAX];
        p2q_buf_reset(&vec);
        p2q_vector_format(&vec, r->vecs + (off + (size_t)j) * (size_t)r->dim, r->dim);
        if (j) p2q_buf_putc(&pt, ',');
        if (r->chunks)
          rc = p2q_chunk_point_id(rule->name, e->row_key, j, cid) ? P2Q_ENOMEM
               : p2q_point_build_chunk(&pt, rule, cid, e->row_key, e->payload, strlen(e->payload),
                                       vec.data, vec.len, j, why, sizeof why);
        else
          rc = p2q_point_build(&pt, rule, e->point_id, e->point_id[0] == '"', e->row_key, e->payload,
                               strlen(e->payload), vec.data, vec.len, why, sizeof why);
      }
      e->n_chunks = nv;
      if (rc) { p2q_wk_set_outcome(e, "dead", 0, rc == P2Q_ENOMEM ? "out of memory" : why); continue; }
      e->point_len = pt.len;
      e->point = p2q_buf_steal(&pt);
      c->idx[k++] = c->idx[i];
    }
    if (k) p2q_wk_send(b, c->rule, OP_UPSERT, c->idx, k);
    p2q_buf_free(&vec);
    p2q_buf_free(&pt);
  }
  for (int i = 0; i < c->n; i++) {
    wevent_t *e = &b->ev[c->idx[i]];
    free(e->payload); e->payload = NULL;
    free(e->text); e->text = NULL;
  }
  free(c);
  p2q_wk_request_finished(b);
}

/* Embed the texts of one rule's upserts; the points are sent when the vectors are back. */
void p2q_wk_embed(wbatch_t *b, int rule, const int *idx, int n) {
  p2q_worker_t *w = b->w;
  p2q_embedder_t *e = p2q_daemon_embedder(w->d, w->d->cfg->rules[rule].embedder);
  embctx_t *c = malloc(sizeof *c + sizeof(int) * (size_t)n);
  const char **texts = malloc(sizeof *texts * (size_t)n);
  size_t *lens = malloc(sizeof *lens * (size_t)n);
  int rc = P2Q_ENOMEM;
  if (c && texts && lens && e) {
    c->b = b; c->rule = rule; c->n = n;
    memcpy(c->idx, idx, sizeof(int) * (size_t)n);
    for (int i = 0; i < n; i++) { texts[i] = b->ev[idx[i]].text; lens[i] = b->ev[idx[i]].text_len; }
    /* linked and counted before the call: the embedder may complete (and free c) inside it */
    c->next = b->embeds;
    b->embeds = c;
    b->pending++;
    const p2q_rule_config_t *rc_ = &w->d->cfg->rules[rule];
    rc = rc_->chunk_tokens > 0 /* both copy the texts */
             ? p2q_embedder_embed_chunked(e, texts, lens, n, (int)rc_->chunk_tokens, (int)rc_->chunk_overlap, embedded, c)
             : p2q_embedder_embed(e, texts, lens, n, embedded, c);
    if (rc) { /* the callback will not fire: undo */
      b->embeds = c->next;
      b->pending--;
    }
  } else if (!e) {
    rc = P2Q_EINVAL;
  }
  free(texts);
  free(lens);
  if (rc) {
    free(c);
    p2q_wk_fail(b, idx, n, 1, -1, rc == P2Q_EINVAL ? "the rule's embedder is not running" : "cannot start embedding");
  }
}

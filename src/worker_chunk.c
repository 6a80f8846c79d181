/*
 * worker_chunk.c — chunked text rules (chunk_tokens > 0), loop thread: the rendered text of a
 * row is cut into chunks here, before anything is embedded, with the embedder's own word-piece
 * tokenizer (minilm's, or an openai embedder's chunk_vocab): p2q_wordpiece_encode_spans gives
 * each piece's bytes in the text and p2q_chunk_cut word-aligned windows (chunk.h), so a chunk's
 * text is an exact substring of the row's text. That substring is what the embedder gets (one
 * text per chunk, the same for both embedder kinds: its vector is the model's vector of that
 * text), what `_text_hash` hashes and what `_text` holds (store_text).
 *
 * Points: one per chunk, id UUIDv5("<rule>:<row key>#<j>") (points.h), payload = the row's
 * payload + `_pk`, `_chunk`, `_text_hash`, `_model` (+ `_text`). worker_reuse.c marks the chunks
 * whose point already holds the same text and model (keep); only the others are embedded. A row
 * without kept chunks is one upsert as before; a row with kept chunks becomes one batch of
 * operations (P2Q_OP_PAYLOAD: an upsert of its new chunks and an overwrite_payload per kept
 * chunk). Either way the old extra chunks (numbered >= n_chunks) are pruned once it succeeded
 * (worker_write.c), so per-row order and prune semantics are those of whole-row upserts.
 *
 * A text without any word piece (only Unicode spaces or controls) has no chunk: the row has no
 * point, like a blank text (its old chunks are deleted).
 *
 * Tokenizing runs on the loop (like the BM25 analysis of worker_embed.c): a linear pass over
 * the text, allocation of 16 bytes per input byte at most, freed before returning.
 */
#include "worker_batch.h"
#include "pg2qdrant/chunk.h"
#include "pg2qdrant/errors.h"
#include "pg2qdrant/hash.h"
#include "pg2qdrant/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int p2q_wk_chunk_plan(wbatch_t *b, wevent_t *e, const p2q_rule_config_t *r) {
  p2q_worker_t *w = b->w;
  const p2q_wordpiece_t *wp = w->ctx.tokenizer ? w->ctx.tokenizer(w->ctx.arg, r->embedder) : NULL;
  if (!wp) {
    p2q_wk_set_outcome(e, P2Q_OUTCOME_REQUEUE, 1000, "the rule's embedder is not running (no tokenizer)");
    return P2Q_EINVAL;
  }
  if (e->text_len > P2Q_WORDPIECE_MAX_TEXT) {
    p2q_wk_set_outcome(e, P2Q_OUTCOME_DEAD, 0, "text cannot be embedded: text too long");
    return P2Q_ETOOLONG;
  }
  int max = (int)e->text_len + 2, n = 0, rc = P2Q_ENOMEM;
  int32_t *ids = malloc(sizeof *ids * (size_t)max);
  p2q_wordpiece_span_t *sp = malloc(sizeof *sp * (size_t)max);
  p2q_chunk_t *ch = malloc(sizeof *ch * (size_t)(max - 1));
  if (!ids || !sp || !ch) goto fail;
  rc = p2q_wordpiece_encode_spans(wp, e->text, e->text_len, ids, sp, max, &n);
  if (rc == 0 && n == 2) { /* no word piece (only Unicode spaces, controls): no content, no point, like a blank text */
    e->op = P2Q_OP_DELETE;
    goto out;
  }
  if (rc == 0) rc = p2q_chunk_cut(e->text, sp + 1, n - 2, (int)r->chunk_tokens, (int)r->chunk_overlap, ch, max - 1);
  if (rc < 0) {
    char why[128];
    snprintf(why, sizeof why, "text cannot be embedded: %s", p2q_strerror(rc));
    p2q_wk_set_outcome(e, P2Q_OUTCOME_DEAD, 0, why);
    goto out;
  }
  free(e->chunks);
  if (!(e->chunks = calloc((size_t)rc, sizeof *e->chunks))) { rc = P2Q_ENOMEM; goto fail; }
  e->n_chunks = rc;
  for (int j = 0; j < rc; j++) {
    wchunk_t *c = &e->chunks[j];
    c->start = ch[j].start;
    c->end = ch[j].end;
    p2q_hash64_hex(e->text + c->start, c->end - c->start, c->hash);
  }
  rc = 0;
  goto out;
fail:
  p2q_wk_set_outcome(e, P2Q_OUTCOME_REQUEUE, 1000, "out of memory (chunks)");
out:
  free(ids);
  free(sp);
  free(ch);
  return rc;
}

int p2q_wk_chunk_texts(wbatch_t *b, const int *idx, int n, const char ***texts, size_t **lens) {
  int k = 0;
  for (int i = 0; i < n; i++)
    for (int j = 0; j < b->ev[idx[i]].n_chunks; j++) k += !b->ev[idx[i]].chunks[j].keep;
  *texts = malloc(sizeof **texts * (size_t)(k ? k : 1));
  *lens = malloc(sizeof **lens * (size_t)(k ? k : 1));
  if (!*texts || !*lens) {
    free(*texts); free(*lens);
    *texts = NULL; *lens = NULL;
    return P2Q_ENOMEM;
  }
  k = 0;
  for (int i = 0; i < n; i++) {
    const wevent_t *e = &b->ev[idx[i]];
    for (int j = 0; j < e->n_chunks; j++) {
      if (e->chunks[j].keep) continue;
      (*texts)[k] = e->text + e->chunks[j].start;
      (*lens)[k++] = e->chunks[j].end - e->chunks[j].start;
    }
  }
  return k;
}

int p2q_wk_chunk_point(p2q_buf_t *out, const p2q_rule_config_t *r, const wevent_t *e, int j, const char *vector,
                       size_t vlen, char *why, size_t whylen) {
  char cid[P2Q_POINT_ID_MAX];
  const wchunk_t *c = &e->chunks[j];
  p2q_buf_t pt = P2Q_BUF_INIT;
  if (p2q_chunk_point_id(r->name, e->row_key, j, cid)) return P2Q_ENOMEM;
  p2q_point_parts_t parts = {.vector = vector ? vector : "[0]", .vlen = vector ? vlen : 3,
                             .text = r->store_text ? e->text + c->start : NULL, .tlen = c->end - c->start,
                             .text_hash = c->hash};
  int rc = p2q_point_build_chunk(&pt, r, cid, e->row_key, e->payload, strlen(e->payload), &parts, j, why, whylen);
  if (!rc && vector) {
    p2q_buf_append(out, pt.data, pt.len);
    rc = p2q_buf_error(out);
  } else if (!rc) { /* a kept chunk: its payload only */
    rc = p2q_point_payload_op(out, p2q_buf_str(&pt), cid);
  }
  p2q_buf_free(&pt);
  return rc;
}

/* Event e's point JSON from its vectors (vecs: one per chunk to embed, in order): the points
   (no kept chunk) or the operations (some kept). *batch tells which. */
static int build_row(p2q_buf_t *pt, const p2q_rule_config_t *r, const wevent_t *e, const float *vecs, int dim,
                     int *batch, char *why, size_t whylen) {
  p2q_buf_t vec = P2Q_BUF_INIT;
  int rc = 0, k = 0, kept = 0, first = 1;
  for (int j = 0; j < e->n_chunks; j++) kept += e->chunks[j].keep;
  *batch = kept > 0;
  if (*batch && kept < e->n_chunks) p2q_buf_puts(pt, "{\"upsert\":{\"points\":[");
  for (int j = 0; !rc && j < e->n_chunks; j++) { /* the new chunks */
    if (e->chunks[j].keep) continue;
    p2q_buf_reset(&vec);
    p2q_vector_format(&vec, vecs + (size_t)k++ * (size_t)dim, dim);
    if (!first) p2q_buf_putc(pt, ',');
    first = 0;
    rc = p2q_wk_chunk_point(pt, r, e, j, vec.data, vec.len, why, whylen);
  }
  if (*batch && kept < e->n_chunks) p2q_buf_puts(pt, "]}}");
  for (int j = 0; !rc && *batch && j < e->n_chunks; j++) { /* the kept ones: payload only */
    if (!e->chunks[j].keep) continue;
    if (!first) p2q_buf_putc(pt, ',');
    first = 0;
    rc = p2q_wk_chunk_point(pt, r, e, j, NULL, 0, why, whylen);
  }
  p2q_buf_free(&vec);
  return rc ? rc : p2q_buf_error(pt);
}

void p2q_wk_chunk_embedded(wbatch_t *b, int rule, const p2q_embed_result_t *r, const int *idx, int n) {
  const p2q_rule_config_t *rc_ = &WCFG(b->w)->rules[rule];
  int *up = malloc(sizeof *up * (size_t)(n ? n : 1)), *ops = malloc(sizeof *ops * (size_t)(n ? n : 1));
  int n_up = 0, n_ops = 0;
  size_t off = 0; /* first vector of the event */
  p2q_buf_t pt = P2Q_BUF_INIT;
  char why[256];
  for (int i = 0; i < n; i++) {
    wevent_t *e = &b->ev[idx[i]];
    int mine = 0, bad = -1, batch = 0;
    for (int j = 0; j < e->n_chunks; j++)
      if (!e->chunks[j].keep && r->status[off + (size_t)mine++] && bad < 0) bad = (int)off + mine - 1;
    if (bad >= 0) {
      if (r->reasons && r->reasons[bad]) snprintf(why, sizeof why, "%s", r->reasons[bad]);
      else snprintf(why, sizeof why, "text cannot be embedded: %s", p2q_strerror(r->status[bad]));
      p2q_wk_set_outcome(e, P2Q_OUTCOME_DEAD, 0, why);
    } else if (!up || !ops) {
      p2q_wk_set_outcome(e, P2Q_OUTCOME_REQUEUE, 1000, "out of memory");
    } else {
      p2q_buf_reset(&pt);
      const float *v = r->vecs ? r->vecs + off * (size_t)r->dim : NULL; /* NULL: every chunk kept */
      int rc = build_row(&pt, rc_, e, v, r->dim, &batch, why, sizeof why);
      if (rc) {
        p2q_wk_set_outcome(e, P2Q_OUTCOME_DEAD, 0, rc == P2Q_ENOMEM ? "out of memory" : why);
      } else {
        free(e->point);
        e->point_len = pt.len;
        e->point = p2q_buf_steal(&pt);
        if (batch) ops[n_ops++] = idx[i];
        else up[n_up++] = idx[i];
      }
    }
    off += (size_t)mine;
  }
  if (n_up) p2q_wk_send(b, rule, P2Q_OP_UPSERT, up, n_up);
  if (n_ops) p2q_wk_send(b, rule, P2Q_OP_PAYLOAD, ops, n_ops);
  p2q_buf_free(&pt);
  free(up);
  free(ops);
}

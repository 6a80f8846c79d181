/*
 * worker_shared.c — several rules writing one collection (loop thread): each rule updates only
 * its own named vectors and payload keys of a point, never the other rules' (issue 12, "several
 * vectors per point"). A rule is *shared* when another configured rule names the same collection.
 *
 * A shared rule's upserts become one POST …/points/batch (operations run in order):
 *   1. upsert with update_mode insert_only: a point that does not exist yet is created with this
 *      rule's vectors and payload; an existing point is left alone;
 *   2. update_vectors: this rule's named vectors (dense vector_name and/or sparse_name) replace
 *      the point's ones; the other rules' vectors stay;
 *   3. one set_payload per point: this rule's keys are merged into the payload.
 * A shared rule's deletes (row deleted, left the filter, NULL vector) remove only its own
 * vectors (delete_vectors) and its own `columns` (delete_payload), by a has_id filter (so an id
 * that has no point yet is no error); the point itself stays for the other rules.
 *
 * Ordering: per row and rule, events are applied in order (the claim holds the row), exactly as
 * for an unshared rule; two rules are independent streams touching disjoint vectors and keys,
 * so every interleaving ends with each rule's latest vectors and keys. The bookkeeping keys
 * (`_hash`, `_pk`, `_text_hash`, `_model`, `_text`) are shared by the rules of a point: last
 * writer wins, so `reconcile` and the payload-only shortcut (worker_reuse.c) do not apply to
 * shared rules. Pure body building; the request goes through p2q_wk_send like any other.
 */
#include "worker_batch.h"
#include "pg2qdrant/errors.h"

#include <string.h>

int p2q_wk_rule_shared(const p2q_config_t *cfg, int rule) {
  for (int i = 0; i < cfg->n_rules; i++)
    if (i != rule && !strcmp(cfg->rules[i].collection, cfg->rules[rule].collection)) return 1;
  return 0;
}

static void vector_names(p2q_buf_t *body, const p2q_rule_config_t *r) {
  int n = 0;
  if (r->dimension > 0) {
    const char *vn = r->vector_name ? r->vector_name : "";
    p2q_buf_json_string(body, vn, strlen(vn));
    n++;
  }
  if (r->sparse) {
    if (n) p2q_buf_putc(body, ',');
    p2q_buf_json_string(body, r->sparse_name, strlen(r->sparse_name));
  }
}

static void has_id_filter(p2q_buf_t *body, wbatch_t *b, const int *idx, int n) {
  p2q_buf_puts(body, "\"filter\":{\"must\":[{\"has_id\":[");
  for (int i = 0; i < n; i++) {
    if (i) p2q_buf_putc(body, ',');
    p2q_buf_puts(body, b->ev[idx[i]].point_id);
  }
  p2q_buf_puts(body, "]}]}");
}

void p2q_wk_shared_body(p2q_buf_t *body, wbatch_t *b, const p2q_rule_config_t *r, p2q_op_t op, const int *idx,
                        int n) {
  p2q_buf_puts(body, "{\"operations\":[");
  if (op == P2Q_OP_DELETE) {
    p2q_buf_puts(body, "{\"delete_vectors\":{");
    has_id_filter(body, b, idx, n);
    p2q_buf_puts(body, ",\"vector\":[");
    vector_names(body, r);
    p2q_buf_puts(body, "]}}");
    if (r->columns.n) {
      p2q_buf_puts(body, ",{\"delete_payload\":{");
      has_id_filter(body, b, idx, n);
      p2q_buf_puts(body, ",\"keys\":[");
      for (int i = 0; i < r->columns.n; i++) {
        if (i) p2q_buf_putc(body, ',');
        p2q_buf_json_string(body, r->columns.items[i], strlen(r->columns.items[i]));
      }
      p2q_buf_puts(body, "]}}");
    }
    p2q_buf_puts(body, "]}");
    return;
  }
  p2q_buf_puts(body, "{\"upsert\":{\"points\":[");
  for (int i = 0; i < n; i++) {
    if (i) p2q_buf_putc(body, ',');
    p2q_buf_append(body, b->ev[idx[i]].point, b->ev[idx[i]].point_len);
  }
  p2q_buf_puts(body, "],\"update_mode\":\"insert_only\"}},{\"update_vectors\":{\"points\":[");
  for (int i = 0; i < n; i++) {
    const wevent_t *e = &b->ev[idx[i]];
    p2q_span_t v = {NULL, 0};
    p2q_json_find(e->point, e->point_len, "vector", &v); /* our own point JSON */
    p2q_buf_printf(body, "%s{\"id\":%s,\"vector\":", i ? "," : "", e->point_id);
    p2q_buf_append(body, v.p, v.n);
    p2q_buf_putc(body, '}');
  }
  p2q_buf_puts(body, "]}}");
  for (int i = 0; i < n; i++) {
    const wevent_t *e = &b->ev[idx[i]];
    p2q_span_t pl = {NULL, 0};
    p2q_json_find(e->point, e->point_len, "payload", &pl);
    p2q_buf_puts(body, ",{\"set_payload\":{\"payload\":");
    p2q_buf_append(body, pl.p, pl.n);
    p2q_buf_printf(body, ",\"points\":[%s]}}", e->point_id);
  }
  p2q_buf_puts(body, "]}");
}

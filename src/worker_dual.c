/*
 * worker_dual.c — dual writes while a rule is re-embedded (loop thread; reindex_def.c builds the
 * config). The running config then holds, after the file's rules, a shadow of the rule: its OLD
 * definition writing the old version by its physical name. Every claimed event of the rule gets a
 * twin event of the shadow rule (same id, row, snapshot), appended after the claimed events; both
 * go through the stages independently (the shadow's unchanged texts become payload-only updates
 * in worker_reuse.c, so a backfill costs the old version no embedding). Before the ack each twin's
 * outcome is folded into its event's: a twin that must be retried or requeued holds its event
 * back (both writes happen again: they are idempotent); a twin's dead letter does not (the old
 * version misses that change, logged: it is being replaced). Twins are never acked or counted.
 */
#include "worker_batch.h"
#include "pg2qdrant/log.h"

#include <stdlib.h>
#include <string.h>

int p2q_wk_is_twin(const wbatch_t *b, const wevent_t *e) {
  const p2q_config_t *cfg = WCFG(b->w);
  return e->rule >= 0 && e->rule < cfg->n_rules && cfg->rules[e->rule].shadow_of > 0;
}

void p2q_wk_dual_fanout(wbatch_t *b) {
  const p2q_config_t *cfg = WCFG(b->w);
  int n = b->n, extra = 0;
  for (int j = 0; j < cfg->n_rules; j++) extra |= cfg->rules[j].shadow_of > 0;
  if (!extra) return;
  wevent_t *ev = realloc(b->ev, sizeof *ev * (size_t)(2 * n));
  if (!ev) return; /* no twins: only possible when out of memory; the old version misses this batch */
  b->ev = ev;
  for (int i = 0; i < n; i++) {
    const wevent_t *e = &b->ev[i];
    if (e->rule < 0 || e->op == P2Q_OP_RELEASE) continue;
    for (int j = 0; j < cfg->n_rules; j++) {
      if (cfg->rules[j].shadow_of != e->rule + 1) continue;
      wevent_t *t = &b->ev[b->n];
      memset(t, 0, sizeof *t);
      t->id = e->id;
      t->rule = j;
      t->op = e->op;
      t->row_key = e->row_key; /* the batch's (key_owned 0: freed once, with its event) */
      t->payload = e->payload ? strdup(e->payload) : NULL;
      t->payload_len = e->payload_len;
      t->payload_owned = t->payload != NULL;
      t->attempts = e->attempts;
      t->max_attempts = e->max_attempts;
      t->created_at = e->created_at;
      if (e->payload && !t->payload) continue;
      b->n++;
      break;
    }
  }
}

void p2q_wk_dual_merge(wbatch_t *b) {
  for (int i = 0; i < b->n; i++) {
    wevent_t *t = &b->ev[i];
    if (!p2q_wk_is_twin(b, t) || t->outcome == P2Q_OUTCOME_DONE || t->outcome == P2Q_OUTCOME_RELEASE) continue;
    for (int k = 0; k < b->n; k++) {
      wevent_t *e = &b->ev[k];
      if (e->id != t->id || p2q_wk_is_twin(b, e)) continue;
      if (t->outcome == P2Q_OUTCOME_DEAD) {
        P2Q_WARN("reindex_old_version_missed", "worker=%s rule=%s event=%lld err=\"%s\"", b->w->cfg->name,
                 WCFG(b->w)->rules[t->rule].name, t->id, t->error ? t->error : "");
      } else if (e->outcome == P2Q_OUTCOME_DONE || e->outcome == P2Q_OUTCOME_NONE) {
        p2q_wk_set_outcome(e, t->outcome ? t->outcome : P2Q_OUTCOME_REQUEUE, t->delay_ms,
                           t->error ? t->error : "old version not written");
      }
      break;
    }
  }
}

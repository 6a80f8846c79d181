/*
 * worker_batch.c — a claimed batch and its events' outcomes (loop thread): the stages
 * (worker_embed.c, worker_write.c) give each event its outcome here and report each finished
 * stage; the last one hands the batch to its ack (worker.c, through b->ack), so the stages
 * never call back up into the worker.
 */
#include "worker_batch.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Replace every byte that is not part of a well-formed UTF-8 sequence with '?': an error text
   cut mid-character, or a proxy's non-UTF-8 body, must not make the whole ack fail. */
static void utf8_scrub(char *s) {
  unsigned char *p = (unsigned char *)s;
  while (*p) {
    int n = *p < 0x80 ? 1 : (*p & 0xE0) == 0xC0 ? 2 : (*p & 0xF0) == 0xE0 ? 3 : (*p & 0xF8) == 0xF0 ? 4 : 0;
    int ok = n > 0 && !(n == 2 && *p < 0xC2) && !(n == 4 && *p > 0xF4);
    for (int k = 1; ok && k < n; k++) ok = (p[k] & 0xC0) == 0x80;
    if (ok && n == 3) ok = !(p[0] == 0xE0 && p[1] < 0xA0) && !(p[0] == 0xED && p[1] >= 0xA0);
    if (ok && n == 4) ok = !(p[0] == 0xF0 && p[1] < 0x90) && !(p[0] == 0xF4 && p[1] >= 0x90);
    if (!ok) { *p++ = '?'; continue; }
    p += n;
  }
}

void p2q_wk_set_outcome(wevent_t *e, p2q_outcome_t outcome, int64_t delay_ms, const char *err) {
  e->outcome = outcome;
  e->delay_ms = delay_ms;
  free(e->error);
  e->error = err ? strdup(err) : NULL;
  if (e->error) utf8_scrub(e->error);
}

void p2q_wk_drop_payload(wevent_t *e) {
  if (e->payload_owned) free(e->payload);
  e->payload = NULL;
  e->payload_owned = 0;
}

void p2q_wk_batch_free(wbatch_t *b) {
  for (embctx_t *c = b->embeds; c; c = c->next) c->b = NULL;
  for (int i = 0; i < b->n; i++) {
    free(b->ev[i].text);
    free(b->ev[i].chunks);
    free(b->ev[i].sparse);
    if (b->ev[i].key_owned) free(b->ev[i].row_key);
    p2q_wk_drop_payload(&b->ev[i]);
    if (!b->ev[i].point_lent) free(b->ev[i].point);
    free(b->ev[i].error);
  }
  for (int r = 0; b->bodies && r < b->n_bodies; r++) p2q_buf_free(&b->bodies[r].buf);
  free(b->bodies);
  free(b->ev);
  p2q_buf_free(&b->snaps);
  free(b);
}

void p2q_wk_request_finished(wbatch_t *b) {
  if (--b->pending == 0) b->ack(b);
}

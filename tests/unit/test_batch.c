/*
 * test_batch.c — the batching policy's idle linger (batch.h): a worker woken by a NOTIFY with
 * nothing in flight claims only once idle_linger_ms have passed since its previous claim was sent;
 * every other reason to claim (a full claim, a retry or held-rows timer, an ack that may free held
 * rows, the sweep or any other wake-up, a linger that ran out) claims as it does without it, and
 * idle_linger_ms = 0 is today's policy. The rest of the policy is tested in test_worker.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "pg2qdrant/batch.h"

/* A policy that sent one claim at t = 1000 ms, got one event (a batch in flight) and acked it:
   idle, with nothing wanted. */
static void idle_after_claim(p2q_batch_t *b, int64_t idle_linger_ms) {
  p2q_batch_init(b, 10, 2, 5);
  b->idle_linger_ms = idle_linger_ms;
  p2q_batch_on_notify(b);
  assert_int_equal(p2q_batch_next_at(b, 1000), P2Q_BATCH_CLAIM); /* no claim before: at once */
  p2q_batch_on_claim_sent_at(b, 1000);
  p2q_batch_on_claimed(b, 1, 1, 0);
  p2q_batch_on_acked(b);
  assert_int_equal(p2q_batch_next_at(b, 1001), P2Q_BATCH_WAIT);
}

static void test_off_claims_at_once(void **st) {
  p2q_batch_t b;
  idle_after_claim(&b, 0);
  p2q_batch_on_notify(&b);
  assert_int_equal(p2q_batch_next_at(&b, 1001), P2Q_BATCH_CLAIM);
}

/* Notified 5 ms after the last claim with idle_linger 20: waits the 15 ms left, one claim for
   every NOTIFY of that interval; notified after the interval: at once. */
static void test_notify_waits_for_the_interval(void **st) {
  p2q_batch_t b;
  idle_after_claim(&b, 20);
  p2q_batch_on_notify(&b);
  assert_int_equal(p2q_batch_next_at(&b, 1005), P2Q_BATCH_LINGER);
  assert_int_equal(p2q_batch_linger_ms(&b, 1005), 15);
  p2q_batch_on_linger_started(&b, 1005);
  assert_int_equal(b.idle_lingering, 1); /* the idle linger's timer: a claim sent stops it */
  p2q_batch_on_notify(&b);
  assert_int_equal(p2q_batch_next_at(&b, 1010), P2Q_BATCH_WAIT); /* the timer is running */
  p2q_batch_on_linger_done(&b);
  assert_int_equal(p2q_batch_next_at(&b, 1020), P2Q_BATCH_CLAIM);
  p2q_batch_on_claim_sent_at(&b, 1020);
  p2q_batch_on_claimed(&b, 0, 0, 0);                           /* nothing: idle again */
  assert_int_equal(p2q_batch_next_at(&b, 1030), P2Q_BATCH_WAIT);
  p2q_batch_on_notify(&b);
  assert_int_equal(p2q_batch_next_at(&b, 1040), P2Q_BATCH_CLAIM); /* 20 ms since: at once */
  /* the timer's clock may lag the policy's: the linger ran out, it claims whatever the clock says */
  p2q_batch_on_claim_sent_at(&b, 1040);
  p2q_batch_on_claimed(&b, 0, 0, 0);
  p2q_batch_on_notify(&b);
  assert_int_equal(p2q_batch_next_at(&b, 1041), P2Q_BATCH_LINGER);
  p2q_batch_on_linger_started(&b, 1041);
  p2q_batch_on_linger_done(&b);
  assert_int_equal(p2q_batch_next_at(&b, 1059), P2Q_BATCH_CLAIM);
  /* without a clock (p2q_batch_next) the linger counts as run out */
  p2q_batch_on_claim_sent_at(&b, 1059);
  p2q_batch_on_claimed(&b, 0, 0, 0);
  p2q_batch_on_notify(&b);
  assert_int_equal(p2q_batch_next(&b), P2Q_BATCH_CLAIM);
}

/* A full claim (a backlog) claims again at once, however soon; so does a claim that only
   coalesced or released rows. */
static void test_backlog_never_waits(void **st) {
  p2q_batch_t b;
  idle_after_claim(&b, 50);
  p2q_batch_on_notify(&b);
  assert_int_equal(p2q_batch_next_at(&b, 1001), P2Q_BATCH_LINGER);
  p2q_batch_on_linger_started(&b, 1001);
  p2q_batch_on_linger_done(&b);
  assert_int_equal(b.idle_lingering, 0);
  p2q_batch_on_claim_sent_at(&b, 1050);
  p2q_batch_on_claimed(&b, 10, 1, 0); /* full */
  assert_int_equal(p2q_batch_next_at(&b, 1051), P2Q_BATCH_CLAIM);
  p2q_batch_on_claim_sent_at(&b, 1051);
  p2q_batch_on_claimed(&b, 10, 1, 0); /* full again: both slots in flight */
  assert_int_equal(p2q_batch_next_at(&b, 1052), P2Q_BATCH_WAIT);
  p2q_batch_on_acked(&b);
  p2q_batch_on_acked(&b);             /* a backlog with nothing in flight: still at once */
  assert_int_equal(p2q_batch_next_at(&b, 1053), P2Q_BATCH_CLAIM);
  p2q_batch_on_claim_sent_at(&b, 1053);
  p2q_batch_on_claimed(&b, 3, 0, 0);  /* only coalesced/released rows: progress, look again */
  assert_int_equal(p2q_batch_next_at(&b, 1054), P2Q_BATCH_CLAIM);
  p2q_batch_on_claim_sent_at(&b, 1054);
  p2q_batch_on_claimed(&b, 2, 1, 0);  /* the backlog is over: a NOTIFY waits again */
  p2q_batch_on_acked(&b);
  p2q_batch_on_notify(&b);
  assert_int_equal(p2q_batch_next_at(&b, 1055), P2Q_BATCH_LINGER);
  /* a sibling's full claims (p2q_batch_on_backlog) do not wait either */
  p2q_batch_on_linger_started(&b, 1055);
  p2q_batch_on_backlog(&b);
  assert_int_equal(p2q_batch_next_at(&b, 1056), P2Q_BATCH_CLAIM);
  p2q_batch_on_claim_sent_at(&b, 1056);
  assert_int_equal(b.idle_lingering, 0); /* the claim served it */
}

/* The sweep and every other wake-up, the retry/held timer, and an ack that may free held rows:
   at once, also while an idle linger runs. */
static void test_urgent_reasons_never_wait(void **st) {
  p2q_batch_t b;
  idle_after_claim(&b, 50);
  p2q_batch_on_wake(&b); /* the sweep, a reconnect, a target healthy again */
  assert_int_equal(p2q_batch_next_at(&b, 1001), P2Q_BATCH_CLAIM);
  p2q_batch_on_claim_sent_at(&b, 1001);
  p2q_batch_on_claimed(&b, 0, 0, 0);
  p2q_batch_on_notify(&b);
  assert_int_equal(p2q_batch_next_at(&b, 1002), P2Q_BATCH_LINGER); /* the claim used up the urgency */
  p2q_batch_on_linger_started(&b, 1002);
  p2q_batch_on_due(&b);  /* a retry timer during the linger */
  assert_int_equal(p2q_batch_next_at(&b, 1003), P2Q_BATCH_CLAIM);
  p2q_batch_on_claim_sent_at(&b, 1003);
  p2q_batch_on_claimed(&b, 1, 1, 4);  /* an event, and rows held back behind leases */
  assert_int_equal(p2q_batch_held_delay(&b), 0);
  p2q_batch_on_acked(&b);             /* the ack may have freed them: at once */
  assert_int_equal(p2q_batch_next_at(&b, 1004), P2Q_BATCH_CLAIM);
  p2q_batch_on_claim_sent_at(&b, 1004);
  p2q_batch_on_claimed(&b, 0, 0, 2);  /* only held back, nothing in flight: the held timer */
  assert_int_equal(p2q_batch_held_delay(&b), 50);
  p2q_batch_on_sibling_acked(&b);     /* a sibling's ack frees them: at once */
  assert_int_equal(p2q_batch_next_at(&b, 1005), P2Q_BATCH_CLAIM);
}

/* With a batch in flight the (batch) linger applies as before: linger_ms, not the idle one. */
static void test_inflight_uses_linger_ms(void **st) {
  p2q_batch_t b;
  idle_after_claim(&b, 50);
  p2q_batch_on_wake(&b);
  p2q_batch_on_claim_sent_at(&b, 1001);
  p2q_batch_on_claimed(&b, 1, 1, 0); /* in flight */
  p2q_batch_on_notify(&b);
  assert_int_equal(p2q_batch_next_at(&b, 1002), P2Q_BATCH_LINGER);
  assert_int_equal(p2q_batch_linger_ms(&b, 1002), 5);
  p2q_batch_on_linger_started(&b, 1002);
  assert_int_equal(b.idle_lingering, 0); /* a batch-fill linger: it runs out even if a claim is sent */
  p2q_batch_on_linger_done(&b);      /* served: claim now */
  assert_int_equal(p2q_batch_next_at(&b, 1007), P2Q_BATCH_CLAIM);
}

/* Paused (stopping, the breaker, no connection) or a quiet standby claimer: nothing, as before. */
static void test_paused_and_standby(void **st) {
  p2q_batch_t b;
  idle_after_claim(&b, 20);
  b.paused = 1;
  p2q_batch_on_notify(&b);
  assert_int_equal(p2q_batch_next_at(&b, 1005), P2Q_BATCH_WAIT);
  assert_int_equal(p2q_batch_next_at(&b, 1100), P2Q_BATCH_WAIT);
  b.paused = 0;
  assert_int_equal(p2q_batch_next_at(&b, 1100), P2Q_BATCH_CLAIM);
  p2q_batch_t s;
  p2q_batch_init(&s, 10, 2, 5);
  s.idle_linger_ms = 20;
  s.standby = 1;
  p2q_batch_on_notify(&s);
  assert_int_equal(p2q_batch_next_at(&s, 1000), P2Q_BATCH_WAIT);
  p2q_batch_on_backlog(&s);
  assert_int_equal(p2q_batch_next_at(&s, 1000), P2Q_BATCH_CLAIM);
}

/* A deferred ack (linger_ms 5) that has waited its 5 ms, claim sent at t = 1000 with idle_linger
   20: it waits on while the idle linger's claim may still come to carry it, until just past the
   window's end (1021: the linger's claim, due at 1020, goes first); then it goes alone. Without an
   idle linger, without linger_ms (no ack is deferred then), on a standby claimer (no NOTIFY wakes
   it) or with rows held back (they want the ack now) it goes at once, as before. */
static void test_deferred_ack_waits_for_the_idle_linger_claim(void **st) {
  p2q_batch_t b;
  idle_after_claim(&b, 20);
  assert_int_equal(p2q_batch_ack_wait_more(&b, 1007), 14); /* 1021 */
  assert_int_equal(p2q_batch_ack_wait_more(&b, 1020), 1);
  assert_int_equal(p2q_batch_ack_wait_more(&b, 1021), 0);
  assert_int_equal(p2q_batch_ack_wait_more(&b, 5000), 0);
  p2q_batch_on_notify(&b); /* a NOTIFY: the idle linger's claim is due at 1020, the ack still waits */
  assert_int_equal(p2q_batch_next_at(&b, 1008), P2Q_BATCH_LINGER);
  assert_int_equal(p2q_batch_ack_wait_more(&b, 1008), 13);
  p2q_batch_t off;
  idle_after_claim(&off, 0);
  assert_int_equal(p2q_batch_ack_wait_more(&off, 1007), 0);
  p2q_batch_t nolinger;
  idle_after_claim(&nolinger, 20);
  nolinger.linger_ms = 0;
  assert_int_equal(p2q_batch_ack_wait_more(&nolinger, 1007), 0);
  p2q_batch_t never; /* no claim sent yet: no window */
  p2q_batch_init(&never, 10, 2, 5);
  never.idle_linger_ms = 20;
  assert_int_equal(p2q_batch_ack_wait_more(&never, 1007), 0);
  p2q_batch_t standby;
  idle_after_claim(&standby, 20);
  standby.standby = standby.active = 1;
  assert_int_equal(p2q_batch_ack_wait_more(&standby, 1007), 0);
  p2q_batch_t held; /* the last claim came back with rows held behind this batch's events */
  idle_after_claim(&held, 20);
  p2q_batch_on_claim_sent_at(&held, 1002);
  p2q_batch_on_claimed(&held, 0, 0, 1);
  assert_int_equal(p2q_batch_ack_wait_more(&held, 1007), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_off_claims_at_once),
      cmocka_unit_test(test_notify_waits_for_the_interval),
      cmocka_unit_test(test_backlog_never_waits),
      cmocka_unit_test(test_urgent_reasons_never_wait),
      cmocka_unit_test(test_inflight_uses_linger_ms),
      cmocka_unit_test(test_paused_and_standby),
      cmocka_unit_test(test_deferred_ack_waits_for_the_idle_linger_claim),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

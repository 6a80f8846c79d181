/*
 * test_nodes.c — the Qdrant nodes of `[qdrant] url` (nodes.c): list parsing and validation,
 * the sticky choice of the first node up, failover order when nodes are down, probe schedule
 * (500 ms doubling to 5 s), recovery; the classification of a node's failure (P2Q_ENODE: no
 * target booked) and of a shard-level partial failure; URL lists masked element by element.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "pg2qdrant/classify.h"
#include "pg2qdrant/errors.h"
#include "pg2qdrant/nodes.h"
#include "pg2qdrant/redact.h"

static void test_split(void **st) {
  char *u[P2Q_NODES_MAX], why[256];
  (void)st;
  assert_int_equal(p2q_nodes_split("http://a:6333", u, 0, why, sizeof why), 1);
  assert_string_equal(u[0], "http://a:6333");
  free(u[0]);
  assert_int_equal(p2q_nodes_split(" http://a:6333/ ,https://b:6334,  http://c ", u, 0, why, sizeof why), 3);
  assert_string_equal(u[0], "http://a:6333");
  assert_string_equal(u[1], "https://b:6334");
  assert_string_equal(u[2], "http://c");
  for (int i = 0; i < 3; i++) free(u[i]);
  assert_int_equal(p2q_nodes_split("http://a,,http://b", NULL, 0, why, sizeof why), P2Q_ECONFIG);
  assert_non_null(strstr(why, "URL 2 of the list is empty"));
  assert_int_equal(p2q_nodes_split("http://a,", NULL, 0, why, sizeof why), P2Q_ECONFIG);
  assert_int_equal(p2q_nodes_split("http://a, ftp://b", NULL, 0, why, sizeof why), P2Q_ECONFIG);
  assert_string_equal(why, "URL 2 of the list: not an http:// or https:// URL with a host");
  assert_int_equal(p2q_nodes_split("http://a http://b", NULL, 0, why, sizeof why), P2Q_ECONFIG);
  assert_non_null(strstr(why, "space"));
  assert_int_equal(p2q_nodes_split("http://a,HTTP://A/", NULL, 0, why, sizeof why), P2Q_ECONFIG);
  assert_string_equal(why, "URL 2 of the list is URL 1 again");
  assert_int_equal(p2q_nodes_split("http://", NULL, 0, why, sizeof why), P2Q_ECONFIG);
  assert_int_equal(p2q_nodes_split("", NULL, 0, why, sizeof why), P2Q_ECONFIG);
  char big[17 * 20 + 1] = "";
  for (int i = 0; i < 17; i++) sprintf(big + strlen(big), "%shttp://n%d", i ? "," : "", i);
  assert_int_equal(p2q_nodes_split(big, NULL, 0, why, sizeof why), P2Q_ECONFIG);
  assert_non_null(strstr(why, "more than 16"));
}

static void test_pick_and_failover(void **st) {
  p2q_nodes_t ns;
  char why[128];
  (void)st;
  assert_int_equal(p2q_nodes_init(&ns, "http://a,http://b,http://c", why, sizeof why), 0);
  assert_int_equal(ns.n, 3);
  assert_int_equal(p2q_nodes_up(&ns), 3);
  assert_int_equal(p2q_nodes_pick(&ns, 0), 0);            /* sticky: the first */
  assert_int_equal(p2q_nodes_pick(&ns, 1u), 1);           /* a request that tried a goes to b */
  assert_int_equal(p2q_nodes_pick(&ns, 7u), -1);          /* every node tried */
  assert_int_equal(p2q_nodes_failed(&ns, 0, 1000, "refused"), 1);
  assert_int_equal(p2q_nodes_failed(&ns, 0, 1000, "refused"), 0); /* already down */
  assert_int_equal(ns.node[0].failures, 2);
  assert_int_equal(ns.node[0].transitions, 1);
  assert_int_equal(p2q_nodes_up(&ns), 2);
  assert_int_equal(p2q_nodes_pick(&ns, 0), 1);            /* skipped while down */
  assert_int_equal(p2q_nodes_pick(&ns, 2u), 2);
  assert_int_equal(p2q_nodes_pick(&ns, 6u), 0);           /* only the down node is left: try it */
  p2q_nodes_failed(&ns, 1, 1000, "reset");
  p2q_nodes_failed(&ns, 2, 1000, "reset");
  assert_int_equal(p2q_nodes_up(&ns), 0);
  assert_int_equal(p2q_nodes_pick(&ns, 0), 0);            /* all down: in order */
  assert_int_equal(p2q_nodes_pick(&ns, 1u), 1);
  assert_int_equal(p2q_nodes_succeeded(&ns, 2, 0), 1);
  assert_int_equal(p2q_nodes_succeeded(&ns, 2, 0), 0);
  assert_int_equal(p2q_nodes_pick(&ns, 0), 2);            /* the one up first */
  assert_string_equal(ns.node[1].last_error, "reset");
  p2q_nodes_free(&ns);
  assert_int_equal(p2q_nodes_init(&ns, "http://a,nope", why, sizeof why), P2Q_ECONFIG);
}

static void test_probe_schedule(void **st) {
  p2q_nodes_t ns;
  char why[128];
  (void)st;
  assert_int_equal(p2q_nodes_init(&ns, "http://a,http://b", why, sizeof why), 0);
  p2q_nodes_succeeded(&ns, 0, 10000);
  p2q_nodes_succeeded(&ns, 1, 9000);
  /* up nodes: checked when nothing answered for 2 s (a node no request goes to is still seen) */
  assert_int_equal(p2q_nodes_next_ms(&ns, 10000), 1000);
  assert_int_equal(p2q_nodes_due(&ns, 10999), -1);
  assert_int_equal(p2q_nodes_due(&ns, 11000), 1);
  p2q_nodes_succeeded(&ns, 1, 11000);
  assert_int_equal(p2q_nodes_next_ms(&ns, 11000), 1000);   /* node 0's turn at 12000 */
  /* a down node: 500 ms doubling to 5 s */
  p2q_nodes_failed(&ns, 1, 11500, "x");
  assert_int_equal(p2q_nodes_next_ms(&ns, 11500), 500);    /* before node 0's check */
  assert_int_equal(p2q_nodes_due(&ns, 11999), -1);
  assert_int_equal(p2q_nodes_due(&ns, 12000), 0);          /* both due: in order */
  ns.node[0].probing = 1;                                 /* its probe runs */
  assert_int_equal(p2q_nodes_due(&ns, 12000), 1);
  ns.node[1].probing = 1;
  assert_int_equal(p2q_nodes_due(&ns, 20000), -1);
  assert_true(p2q_nodes_next_ms(&ns, 20000) == UINT64_MAX); /* every probe in flight */
  ns.node[0].probing = 0;
  p2q_nodes_succeeded(&ns, 0, 1000000);
  ns.node[1].probing = 0;                                 /* it failed: 1 s, 2 s, 4 s, then 5 s */
  uint64_t want[] = {1000, 2000, 4000, 5000, 5000};
  for (int i = 0; i < 5; i++) {
    p2q_nodes_failed(&ns, 1, 20000, "x");
    assert_int_equal(p2q_nodes_next_ms(&ns, 20000), want[i]);
  }
  assert_int_equal(p2q_nodes_next_ms(&ns, 30000), 0);     /* overdue: now */
  assert_int_equal(p2q_nodes_succeeded(&ns, 1, 30000), 1);
  assert_int_equal(ns.node[1].streak, 0);
  p2q_nodes_failed(&ns, 1, 40000, "x");                   /* the streak starts again */
  assert_int_equal(p2q_nodes_next_ms(&ns, 40000), 500);
  p2q_nodes_free(&ns);
}

static void test_classify_cluster(void **st) {
  int hw = 9;
  (void)st;
  /* a node failed after the request reached it, another node is up: nobody's target */
  assert_int_equal(p2q_classify_qdrant(0, P2Q_ENODE, 56, P2Q_QDRANT_RETRY, 10, &hw), P2Q_V_TRANSIENT);
  assert_int_equal(hw, -1);
  /* every node refused: the host */
  assert_int_equal(p2q_classify_qdrant(0, P2Q_EHTTP, 7, P2Q_QDRANT_RETRY, 10, &hw), P2Q_V_TRANSIENT);
  assert_int_equal(hw, 1);
  /* "1 out of 3 shards failed to apply operation" (500): the collection's transient failure */
  assert_int_equal(p2q_classify_qdrant(500, P2Q_EQDRANT, 0, P2Q_QDRANT_RETRY, 10, &hw), P2Q_V_TRANSIENT);
  assert_int_equal(hw, 0);
  assert_true(p2q_classify_shard_failure("qdrant upsert docs: HTTP 500: Service internal error: 1 out of 3 shards "
                                         "failed to apply operation. First error captured: Service internal error: "
                                         "Tonic status error: status: Unavailable"));
  assert_true(p2q_classify_shard_failure("Service internal error: Tonic status error: status: Unavailable, message: "
                                         "\"error trying to connect: tcp connect error: Connection refused\""));
  assert_false(p2q_classify_shard_failure("Service unavailable: Too many requests"));
  assert_false(p2q_classify_shard_failure(NULL));
}

static void test_redact_list(void **st) {
  (void)st;
  char *m = p2q_redact_url("http://u:pw1@a:6333,https://v:secret2@b:6334/?api_key=k3, http://c");
  assert_string_equal(m, "http://u:*****@a:6333,https://v:*****@b:6334/?api_key=*****, http://c");
  free(m);
  m = p2q_redact_url("http://a/?x=1,2&token=abc"); /* a comma inside one URL stays in it */
  assert_string_equal(m, "http://a/?x=1,2&token=*****");
  free(m);
  p2q_redact_reset();
  p2q_redact_register_url("http://u:firstpw@a,http://v:secondpw@b");
  char line[128] = "x firstpw y secondpw z";
  p2q_redact_text(line, sizeof line);
  assert_string_equal(line, "x ***** y ***** z");
  p2q_redact_reset();
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_split),
      cmocka_unit_test(test_pick_and_failover),
      cmocka_unit_test(test_probe_schedule),
      cmocka_unit_test(test_classify_cluster),
      cmocka_unit_test(test_redact_list),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

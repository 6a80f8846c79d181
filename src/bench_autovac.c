/*
 * bench_autovac.c — which autovacuum work `pg2qdrant bench` charges to the outbox (pure).
 *
 * The bench samples pg_stat_activity's autovacuum workers of its database next to the daemons'
 * backends (bench_run.c) and hands each worker's pid, CPU seconds (/proc) and current activity
 * here. An autovacuum worker prints "autovacuum: VACUUM ANALYZE nsp.rel (to prevent wraparound)",
 * "autovacuum: ANALYZE nsp.rel", "autovacuum: BRIN summarize nsp.rel 12" — the relation
 * unquoted, the TOAST table of a relation as pg_toast.pg_toast_<its oid> (vacuumed on its own
 * schedule). Work on the outbox tables is pg2qdrant's cost; work on other tables (the bench's
 * source tables, loaded by the bench) is reported apart. No I/O; unit-tested in test_bench.c.
 */
#include "pg2qdrant/bench.h"

#include <math.h>
#include <string.h>

int p2q_bench_autovac_target(const char *activity, const char *const *names, int nnames) {
  static const char pre[] = "autovacuum: ";
  if (!activity || strncmp(activity, pre, sizeof pre - 1)) return -1;
  /* the relation is the first word holding a dot (VACUUM, ANALYZE, BRIN, summarize have none) */
  for (const char *p = activity + sizeof pre - 1; *p;) {
    while (*p == ' ') p++;
    size_t n = strcspn(p, " ");
    if (n && memchr(p, '.', n)) {
      for (int i = 0; i < nnames; i++)
        if (strlen(names[i]) == n && !memcmp(names[i], p, n)) return 1;
      return 0;
    }
    p += n;
  }
  return -1;
}

void p2q_bench_autovac_reset(p2q_bench_autovac_t *a) { memset(a, 0, sizeof *a); }

void p2q_bench_autovac_sample(p2q_bench_autovac_t *a, int pid, double cpu, int target, int start) {
  if (isnan(cpu)) return;
  int i = 0;
  while (i < a->n && a->w[i].pid != pid) i++;
  double d;
  int charged_to = target;
  if (i == a->n) {
    if (a->n == (int)(sizeof a->w / sizeof *a->w)) { /* full: forget the oldest worker */
      memmove(&a->w[0], &a->w[1], (size_t)(a->n - 1) * sizeof a->w[0]);
      i = --a->n;
    }
    a->n++;
    d = start ? 0 : cpu;
  } else {
    d = cpu - a->w[i].cpu;
    if (a->w[i].target >= 0) charged_to = a->w[i].target;
  }
  a->w[i].pid = pid;
  a->w[i].cpu = cpu;
  a->w[i].target = target;
  if (d <= 0) return;
  if (charged_to == 1) a->outbox_s += d;
  else a->other_s += d;
}

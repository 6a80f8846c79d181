/*
 * blas_kernel.c — OpenBLAS kernel check and selection at start (see blas_kernel.h).
 *
 * Owns: the process-wide record of which sgemm kernel runs and why (written once by
 * p2q_blas_autoselect() in main() before any thread exists, or lazily by the first getter;
 * read-only afterwards).
 * Invariant: OPENBLAS_CORETYPE is set by this file only when the environment had none, and the
 * program re-executes at most once (the marker P2Q_BLAS_DETECTED survives the exec).
 */
#include "pg2qdrant/blas_kernel.h"

#include <cblas.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "pg2qdrant/log.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#define MARKER "P2Q_BLAS_DETECTED"

/* ---- pure tables ------------------------------------------------------------------------ */

static const struct { const char *name; int level; } cores[] = {
  {"Katmai", 0}, {"Coppermine", 0}, {"Northwood", 0}, {"Prescott", 0}, {"Banias", 0}, {"Atom", 0},
  {"Core2", 0}, {"Penryn", 0}, {"Dunnington", 0}, {"Nehalem", 0}, {"Athlon", 0}, {"Opteron", 0},
  {"Opteron_SSE3", 0}, {"Barcelona", 0}, {"Nano", 0}, {"Bobcat", 0}, {"Unknown", 0},
  {"Sandybridge", 1}, {"Bulldozer", 1}, {"Piledriver", 1}, {"Steamroller", 1}, {"Excavator", 1},
  {"Haswell", 2}, {"Zen", 2},
  {"SkylakeX", 3}, {"Cooperlake", 3}, {"SapphireRapids", 3},
};

int p2q_blas_core_level(const char *core) {
  if (!core) return -1;
  for (size_t i = 0; i < sizeof cores / sizeof cores[0]; i++)
    if (!strcasecmp(core, cores[i].name)) return cores[i].level;
  return -1;
}

static const char *const best_for[] = {NULL, "Sandybridge", "Haswell", "SkylakeX"};

const char *p2q_blas_better_core(const char *core, p2q_cpu_level_t level) {
  int have = p2q_blas_core_level(core);
  if (have < 0 || level <= P2Q_CPU_SSE || level > P2Q_CPU_AVX512 || have >= (int)level) return NULL;
  return best_for[level];
}

const char *const *p2q_blas_runnable_cores(p2q_cpu_level_t level) {
  static const char *const l3[] = {"SkylakeX", "Haswell", "Sandybridge", "Prescott", NULL};
  static const char *const l2[] = {"Haswell", "Sandybridge", "Prescott", NULL};
  static const char *const l1[] = {"Sandybridge", "Prescott", NULL};
  static const char *const l0[] = {"Prescott", NULL};
  switch (level) {
  case P2Q_CPU_AVX512: return l3;
  case P2Q_CPU_AVX2: return l2;
  case P2Q_CPU_AVX: return l1;
  default: return l0;
  }
}

const char *p2q_cpu_level_name(p2q_cpu_level_t l) {
  static const char *const n[] = {"sse", "avx", "avx2", "avx512"};
  return l >= P2Q_CPU_SSE && l <= P2Q_CPU_AVX512 ? n[l] : "?";
}

/* ---- cpuid ------------------------------------------------------------------------------ */

p2q_cpu_level_t p2q_cpu_level(void) {
#if defined(__x86_64__) || defined(__i386__)
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return P2Q_CPU_SSE;
  int avx = (c >> 28) & 1, fma = (c >> 12) & 1, osxsave = (c >> 27) & 1;
  if (!avx || !osxsave) return P2Q_CPU_SSE;
  unsigned lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  if ((lo & 0x6) != 0x6) return P2Q_CPU_SSE; /* the OS does not save YMM state */
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return P2Q_CPU_AVX;
  int avx2 = (b >> 5) & 1;
  int f = (b >> 16) & 1, dq = (b >> 17) & 1, cd = (b >> 28) & 1, bw = (b >> 30) & 1, vl = (b >> 31) & 1;
  if (!avx2 || !fma) return P2Q_CPU_AVX;
  if (f && dq && cd && bw && vl && (lo & 0xe6) == 0xe6) return P2Q_CPU_AVX512;
  return P2Q_CPU_AVX2;
#else
  return P2Q_CPU_SSE;
#endif
}

/* ---- the record --------------------------------------------------------------------------- */

static p2q_blas_info_t g_info;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void info_fill(void) {
  p2q_blas_info_t *in = &g_info;
  p2q_cpu_level_t lvl = p2q_cpu_level();
  const char *core = openblas_get_corename();
  const char *user = getenv("OPENBLAS_CORETYPE"), *marker = getenv(MARKER);
  snprintf(in->core, sizeof in->core, "%.31s", core ? core : "?");
  snprintf(in->cpu, sizeof in->cpu, "%s", p2q_cpu_level_name(lvl));
  if (marker && user) {
    snprintf(in->detected, sizeof in->detected, "%.31s", marker);
    snprintf(in->how, sizeof in->how, "auto");
    snprintf(in->reason, sizeof in->reason,
             "OpenBLAS picked the generic %.31s kernel on a CPU with %.15s; OPENBLAS_CORETYPE=%.31s selected",
             marker, in->cpu, user);
  } else if (user) {
    snprintf(in->how, sizeof in->how, "user");
    snprintf(in->reason, sizeof in->reason, "OPENBLAS_CORETYPE=%.31s set in the environment: kept", user);
  } else {
    const char *pretend = getenv("P2Q_BLAS_PRETEND_CORE");
    snprintf(in->detected, sizeof in->detected, "%.31s", pretend && *pretend ? pretend : in->core);
    snprintf(in->how, sizeof in->how, "detected");
    const char *better = p2q_blas_better_core(in->detected, lvl);
    if (better)
      snprintf(in->reason, sizeof in->reason, "OpenBLAS picked %.31s on a CPU with %.15s (%.31s would run) and "
               "could not re-execute", in->detected, in->cpu, better);
    else
      snprintf(in->reason, sizeof in->reason, "OpenBLAS picked %.31s, the best kernel for a CPU with %.15s",
               in->detected, in->cpu);
  }
}

void p2q_blas_autoselect(char **argv) {
  if (!getenv("OPENBLAS_CORETYPE") && !getenv(MARKER) && argv && argv[0]) {
    const char *pretend = getenv("P2Q_BLAS_PRETEND_CORE");
    const char *detected = pretend && *pretend ? pretend : openblas_get_corename();
    const char *better = p2q_blas_better_core(detected, p2q_cpu_level());
    if (better && setenv("OPENBLAS_CORETYPE", better, 1) == 0 && setenv(MARKER, detected, 1) == 0) {
      execv("/proc/self/exe", argv);
      unsetenv("OPENBLAS_CORETYPE"); /* exec failed: run on, and say so */
      unsetenv(MARKER);
    }
  }
  pthread_once(&g_once, info_fill);
}

const p2q_blas_info_t *p2q_blas_info(void) {
  pthread_once(&g_once, info_fill);
  return &g_info;
}

void p2q_blas_log_once(void) {
  static int logged;
  if (__atomic_exchange_n(&logged, 1, __ATOMIC_RELAXED)) return;
  const p2q_blas_info_t *in = p2q_blas_info();
  char q[256];
  int weak = p2q_blas_core_level(in->core) >= 0 &&
             p2q_blas_core_level(in->core) < (int)p2q_cpu_level() && strcmp(in->how, "user") != 0;
  p2q_log(weak ? P2Q_LOG_WARN : P2Q_LOG_INFO, "blas_kernel", "core=%s detected=%s cpu=%s selected_by=%s reason=%s",
          in->core, in->detected[0] ? in->detected : "-", in->cpu, in->how, p2q_log_q(q, sizeof q, in->reason));
}

void p2q_blas_json(p2q_buf_t *b) {
  const p2q_blas_info_t *in = p2q_blas_info();
  p2q_buf_puts(b, "{\"core\":");
  p2q_buf_json_string(b, in->core, strlen(in->core));
  p2q_buf_puts(b, ",\"detected\":");
  p2q_buf_json_string(b, in->detected, strlen(in->detected));
  p2q_buf_printf(b, ",\"cpu\":\"%s\",\"selected_by\":\"%s\",\"reason\":", in->cpu, in->how);
  p2q_buf_json_string(b, in->reason, strlen(in->reason));
  p2q_buf_puts(b, "}");
}

int p2q_blas_metrics_register(p2q_metrics_t *m) {
  static const char *const labels[] = {"core", "detected", "cpu", "selected_by"};
  p2q_metric_t *f = p2q_metrics_register(m, "pg2qdrant_blas_info",
                                         "Always 1; the OpenBLAS sgemm kernel in use, what OpenBLAS detected "
                                         "on its own, the CPU's vector level and who selected the kernel.",
                                         P2Q_METRIC_GAUGE, 4, labels, 0, NULL);
  if (!f) return -1;
  const p2q_blas_info_t *in = p2q_blas_info();
  const char *v[] = {in->core, in->detected, in->cpu, in->how};
  p2q_series_set(p2q_metric_series(f, v), 1);
  return 0;
}

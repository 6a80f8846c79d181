/*
 * blas_kernel.h — make OpenBLAS run the best sgemm kernel this CPU can execute.
 *
 * OpenBLAS (DYNAMIC_ARCH builds such as Debian's) picks its kernel once, when the library is
 * loaded, from the CPU model number. Builds older than the CPU do not know the model and fall
 * back to a generic SSE kernel (0.3.21 on Intel family 6 model 207, AVX-512: "Prescott", ~4×
 * slower sgemm). The only lever is OPENBLAS_CORETYPE, read at load time, so
 * p2q_blas_autoselect() — the first thing main() does — compares the kernel OpenBLAS chose with
 * what cpuid (and the OS's saved register state, XGETBV) says the CPU can run, and when the
 * kernel is weaker it sets OPENBLAS_CORETYPE to the best compatible core and re-executes the
 * program (/proc/self/exe, same argv) once. A user's own OPENBLAS_CORETYPE is never overridden.
 * The outcome (kernel, what OpenBLAS detected, CPU level, why) is kept for the logs, /status,
 * metrics and the embed/bench output.
 *
 * Test hook: P2Q_BLAS_PRETEND_CORE=<name> makes the check believe OpenBLAS detected <name>
 * (so the fallback path can be exercised on a CPU that OpenBLAS recognises).
 * Thread: autoselect in main() before any other thread exists; the getters from any thread.
 */
#ifndef P2Q_BLAS_KERNEL_H
#define P2Q_BLAS_KERNEL_H

#include "pg2qdrant/buf.h"
#include "pg2qdrant/metrics.h"

/* CPU capability levels for sgemm kernels (what the CPU and the OS both support). */
typedef enum { P2Q_CPU_SSE = 0, P2Q_CPU_AVX = 1, P2Q_CPU_AVX2 = 2, P2Q_CPU_AVX512 = 3 } p2q_cpu_level_t;

typedef struct {
  char core[32];      /* the kernel OpenBLAS runs now (openblas_get_corename) */
  char detected[32];  /* the kernel OpenBLAS picked on its own ("" when the user chose one) */
  char cpu[16];       /* "avx512", "avx2", "avx" or "sse" */
  char how[16];       /* "detected" (kept), "auto" (we selected), "user" (OPENBLAS_CORETYPE) */
  char reason[192];   /* one sentence for humans */
} p2q_blas_info_t;

/* The CPU's level from cpuid + XGETBV (x86-64; P2Q_CPU_SSE elsewhere). */
p2q_cpu_level_t p2q_cpu_level(void);
const char *p2q_cpu_level_name(p2q_cpu_level_t l);

/* Pure: the level an OpenBLAS core name's sgemm kernel needs (-1 for an unknown name). */
int p2q_blas_core_level(const char *core);
/* Pure: the OPENBLAS_CORETYPE to select when OpenBLAS chose `core` on a CPU of `level`, or NULL
 * to keep it (it is already the best, or the name is unknown). */
const char *p2q_blas_better_core(const char *core, p2q_cpu_level_t level);
/* Pure: the core types a CPU of `level` can run, best first, NULL-terminated (for tests). */
const char *const *p2q_blas_runnable_cores(p2q_cpu_level_t level);

/* main(), first thing: may re-exec the program with OPENBLAS_CORETYPE set (does not return
 * then). Records the outcome either way. */
void p2q_blas_autoselect(char **argv);
/* The recorded outcome (filled lazily when autoselect was never called). */
const p2q_blas_info_t *p2q_blas_info(void);
/* Log it once per process (event blas_kernel; warn when the kernel is weaker than the CPU). */
void p2q_blas_log_once(void);
/* {"core":…,"detected":…,"cpu":…,"selected_by":…,"reason":…} */
void p2q_blas_json(p2q_buf_t *b);
/* Register pg2qdrant_blas_info{core,detected,cpu,selected_by} = 1. 0, or -1 on failure. */
int p2q_blas_metrics_register(p2q_metrics_t *m);

#endif

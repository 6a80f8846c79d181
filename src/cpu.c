/*
 * cpu.c — the CPU's features (see cpu.h). Pure; any thread (__builtin_cpu_init is idempotent).
 */
#include "pg2qdrant/cpu.h"

int p2q_cpu_avx2(void) {
#if defined(__x86_64__) && defined(__GNUC__)
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") ? 1 : 0;
#else
  return 0;
#endif
}

int p2q_cpu_avx2_choose(int *sw, int compiled, int on) {
  on = on && compiled && p2q_cpu_avx2();
  __atomic_store_n(sw, on, __ATOMIC_RELAXED);
  return on;
}

int p2q_cpu_avx2_chosen(int *sw, int compiled) {
  int on = __atomic_load_n(sw, __ATOMIC_RELAXED);
  return on >= 0 ? on : p2q_cpu_avx2_choose(sw, compiled, 1);
}

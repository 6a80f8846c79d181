/*
 * cpu.h — what the CPU the process runs on can do, asked once per caller (src/cpu.c). The SIMD
 * paths (float_text_avx2.c, hash_avx2.c) are compiled on every x86-64 build and chosen at run time,
 * so one .deb runs on any x86-64. Pure; any thread.
 */
#ifndef P2Q_CPU_H
#define P2Q_CPU_H

/* 1 when the CPU has AVX2 (x86-64 with GCC or Clang), else 0. */
int p2q_cpu_avx2(void);

/* A module's run-time choice of its AVX2 path, in *sw: -1 until first asked, then 0 or 1 (every
   thread computes the same value, so relaxed atomics suffice). compiled: whether the module built
   that path. p2q_cpu_avx2_choose stores on && compiled && the CPU has AVX2 (tests and benchmarks
   choose the scalar path with on = 0) and returns it; p2q_cpu_avx2_chosen returns the choice,
   making it (on = 1) the first time. */
int p2q_cpu_avx2_choose(int *sw, int compiled, int on);
int p2q_cpu_avx2_chosen(int *sw, int compiled);

#endif

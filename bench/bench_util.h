/*
 * bench_util.h — the two helpers the stand-alone C benchmarks share (bench_float_text.c,
 * bench_points.c): the process's CPU seconds, and a xorshift64 generator (one state per
 * benchmark program; `rng` may be reseeded by the program). Header-only; single-threaded use.
 */
#ifndef P2Q_BENCH_UTIL_H
#define P2Q_BENCH_UTIL_H

#include <stdint.h>
#include <time.h>

static inline double cpu_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static uint64_t rng = 0x9e3779b97f4a7c15ULL;
static inline uint64_t next_u64(void) {
  rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
  return rng;
}

#endif

/*
 * test_blas_kernel.c — the OpenBLAS kernel choice (blas_kernel.h): which core names are generic,
 * what replaces them on each CPU level, and that the recorded outcome matches the library.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <cblas.h>

#include "pg2qdrant/blas_kernel.h"

static void test_core_levels(void **state) {
  (void)state;
  assert_int_equal(p2q_blas_core_level("Prescott"), 0);
  assert_int_equal(p2q_blas_core_level("nehalem"), 0); /* case-insensitive, as OpenBLAS */
  assert_int_equal(p2q_blas_core_level("Sandybridge"), 1);
  assert_int_equal(p2q_blas_core_level("Haswell"), 2);
  assert_int_equal(p2q_blas_core_level("Zen"), 2);
  assert_int_equal(p2q_blas_core_level("SkylakeX"), 3);
  assert_int_equal(p2q_blas_core_level("Cooperlake"), 3);
  assert_int_equal(p2q_blas_core_level("NoSuchCore"), -1);
  assert_int_equal(p2q_blas_core_level(NULL), -1);
}

static void test_better_core(void **state) {
  (void)state;
  /* the case: 0.3.21 on an AVX-512 CPU it does not know falls back to Prescott */
  assert_string_equal(p2q_blas_better_core("Prescott", P2Q_CPU_AVX512), "SkylakeX");
  assert_string_equal(p2q_blas_better_core("Nehalem", P2Q_CPU_AVX2), "Haswell");
  assert_string_equal(p2q_blas_better_core("Sandybridge", P2Q_CPU_AVX2), "Haswell");
  assert_string_equal(p2q_blas_better_core("Haswell", P2Q_CPU_AVX512), "SkylakeX");
  assert_string_equal(p2q_blas_better_core("Core2", P2Q_CPU_AVX), "Sandybridge");
  assert_null(p2q_blas_better_core("SkylakeX", P2Q_CPU_AVX512)); /* already the best */
  assert_null(p2q_blas_better_core("Cooperlake", P2Q_CPU_AVX512));
  assert_null(p2q_blas_better_core("Haswell", P2Q_CPU_AVX2));
  assert_null(p2q_blas_better_core("Prescott", P2Q_CPU_SSE));    /* nothing better runs */
  assert_null(p2q_blas_better_core("SkylakeX", P2Q_CPU_AVX2));   /* never downgrade */
  assert_null(p2q_blas_better_core("Mystery", P2Q_CPU_AVX512));  /* unknown name: keep */
}

static void test_runnable_cores(void **state) {
  (void)state;
  const char *const *c = p2q_blas_runnable_cores(P2Q_CPU_AVX512);
  assert_string_equal(c[0], "SkylakeX");
  int n = 0;
  for (; c[n]; n++) assert_true(p2q_blas_core_level(c[n]) <= 3);
  assert_int_equal(n, 4);
  c = p2q_blas_runnable_cores(P2Q_CPU_SSE);
  assert_string_equal(c[0], "Prescott");
  assert_null(c[1]);
}

static void test_info_matches_library(void **state) {
  (void)state;
  const p2q_blas_info_t *in = p2q_blas_info();
  assert_string_equal(in->core, openblas_get_corename());
  assert_string_equal(in->cpu, p2q_cpu_level_name(p2q_cpu_level()));
  if (getenv("OPENBLAS_CORETYPE")) assert_string_equal(in->how, "user");
  else assert_string_equal(in->how, "detected");
  p2q_buf_t b = P2Q_BUF_INIT;
  p2q_blas_json(&b);
  assert_non_null(strstr(b.data, "\"core\":\""));
  assert_non_null(strstr(b.data, in->core));
  p2q_buf_free(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_core_levels),
    cmocka_unit_test(test_better_core),
    cmocka_unit_test(test_runnable_cores),
    cmocka_unit_test(test_info_matches_library),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

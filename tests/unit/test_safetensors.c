/*
 * test_safetensors.c — loader validation on synthetic files: a valid file, truncation at every
 * length, corrupt headers, offsets out of range / overlapping / mis-sized, wrong dtype and shape
 * for get_f32, misalignment, and (when present) the real model file.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "golden_util.h"
#include "pg2qdrant/errors.h"
#include "pg2qdrant/safetensors.h"

/* Build header + data in buf (header padded with spaces to a multiple of 8); returns length. */
static size_t build(unsigned char *buf, const char *hdr, size_t data_len) {
  size_t hl = strlen(hdr), pad = (8 - hl % 8) % 8;
  uint64_t n = hl + pad;
  for (int i = 0; i < 8; i++) buf[i] = (unsigned char)(n >> (8 * i));
  memcpy(buf + 8, hdr, hl);
  memset(buf + 8 + hl, ' ', pad);
  for (size_t i = 0; i < data_len; i++) buf[8 + n + i] = (unsigned char)i;
  return 8 + n + data_len;
}

static const char *k_valid =
    "{\"__metadata__\":{\"format\":\"pt\"},"
    "\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
    "\"b\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[24,40]},"
    "\"c\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[40,44]}}";

static void test_valid(void **state) {
  static unsigned char buf[4096];
  size_t len = build(buf, k_valid, 44);
  p2q_safetensors_t *st;
  assert_int_equal(p2q_safetensors_parse(buf, len, &st), 0);
  assert_int_equal(p2q_safetensors_count(st), 3);
  const p2q_st_tensor_t *a = p2q_safetensors_find(st, "a");
  assert_non_null(a);
  assert_int_equal(a->ndim, 2);
  assert_int_equal(a->shape[1], 3);
  assert_int_equal(a->nbytes, 24);
  const float *f;
  int64_t sh[2] = {2, 3}, wrong[2] = {3, 2};
  assert_int_equal(p2q_safetensors_get_f32(st, "a", 2, sh, &f), 0);
  assert_ptr_equal(f, a->data);
  assert_int_equal(p2q_safetensors_get_f32(st, "a", 2, wrong, &f), P2Q_EMODEL);   /* shape */
  assert_int_equal(p2q_safetensors_get_f32(st, "a", 1, sh, &f), P2Q_EMODEL);      /* rank */
  assert_int_equal(p2q_safetensors_get_f32(st, "b", 1, sh, &f), P2Q_EMODEL);      /* dtype */
  assert_int_equal(p2q_safetensors_get_f32(st, "zz", 1, sh, &f), P2Q_EMODEL);     /* missing */
  assert_int_equal(p2q_safetensors_find(st, "c")->ndim, 0);
  assert_null(p2q_safetensors_find(st, "__metadata__"));
  p2q_safetensors_close(st);
}

static void test_truncated(void **state) {
  static unsigned char buf[4096];
  size_t len = build(buf, k_valid, 44);
  for (size_t l = 0; l < len; l++) {
    p2q_safetensors_t *st = (p2q_safetensors_t *)1;
    unsigned char *copy = malloc(l ? l : 1); /* exact-size copy so ASan catches any over-read */
    memcpy(copy, buf, l);
    assert_int_equal(p2q_safetensors_parse(copy, l, &st), P2Q_EMODEL);
    assert_null(st);
    free(copy);
  }
}

static void expect_bad(const char *hdr, size_t data_len) {
  static unsigned char buf[8192];
  size_t len = build(buf, hdr, data_len);
  p2q_safetensors_t *st;
  if (p2q_safetensors_parse(buf, len, &st) != P2Q_EMODEL) fail_msg("accepted: %s", hdr);
}

static void test_corrupt(void **state) {
  expect_bad("not json at all", 0);
  expect_bad("[1,2,3]", 0);
  expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}", 8); /* unterminated */
  expect_bad("{\"a\":5}", 0);
  expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8);                         /* no offsets */
  expect_bad("{\"a\":{\"dtype\":\"F99\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8);     /* dtype */
  expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8);    /* negative */
  expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,8]}}", 8);   /* fractional */
  expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[\"2\"],\"data_offsets\":[0,8]}}", 8);
  expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,12]}}", 12);   /* size ≠ shape */
  expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8);     /* reversed */
  expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4);     /* past EOF */
  expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8,9]}}", 16);
  expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[1e300,1e300]}}", 8);
  expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,16],\"data_offsets\":[0,8]}}", 8);
  expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[2,10]}}", 12);    /* misaligned */
  expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
             "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12);     /* overlap */
  expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
             "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8);       /* duplicate */
  expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4);
  /* header length larger than the file */
  unsigned char b[16] = {0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, '{', '}'};
  p2q_safetensors_t *st;
  assert_int_equal(p2q_safetensors_parse(b, 10, &st), P2Q_EMODEL);
  unsigned char big[16] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  assert_int_equal(p2q_safetensors_parse(big, 16, &st), P2Q_EMODEL);
}

static void test_files(void **state) {
  p2q_safetensors_t *st = (p2q_safetensors_t *)1;
  assert_int_equal(p2q_safetensors_open("/nonexistent.safetensors", &st), P2Q_ENOENT);
  assert_null(st);
  assert_int_equal(p2q_safetensors_open("/", &st), P2Q_EMODEL);
  char path[] = "/tmp/p2q_st_XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  static unsigned char buf[4096];
  size_t len = build(buf, k_valid, 44);
  assert_int_equal(write(fd, buf, len), (ssize_t)len);
  assert_int_equal(p2q_safetensors_open(path, &st), 0);
  assert_int_equal(p2q_safetensors_count(st), 3);
  p2q_safetensors_close(st);
  assert_int_equal(ftruncate(fd, (off_t)len - 1), 0); /* truncated file on disk */
  assert_int_equal(p2q_safetensors_open(path, &st), P2Q_EMODEL);
  close(fd);
  unlink(path);
}

static void test_real_model(void **state) {
  char dir[4096], path[4200];
  gu_need_model(dir, sizeof dir);
  snprintf(path, sizeof path, "%s/model.safetensors", dir);
  p2q_safetensors_t *st;
  assert_int_equal(p2q_safetensors_open(path, &st), 0);
  assert_int_equal(p2q_safetensors_count(st), 104);
  const float *we;
  int64_t sh[2] = {30522, 384};
  assert_int_equal(p2q_safetensors_get_f32(st, "embeddings.word_embeddings.weight", 2, sh, &we), 0);
  assert_int_equal(p2q_safetensors_find(st, "embeddings.position_ids")->dtype, P2Q_ST_I64);
  p2q_safetensors_close(st);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_valid),
    cmocka_unit_test(test_truncated),
    cmocka_unit_test(test_corrupt),
    cmocka_unit_test(test_files),
    cmocka_unit_test(test_real_model),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

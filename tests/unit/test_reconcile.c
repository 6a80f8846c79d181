/* Unit tests for the pure parts of reconcile (reconcile.c): id text (also raw, beyond 2^53),
   the key a point claims, the verdict for a point at its row's id (payload, then vector: float32,
   Cosine normalised, named vectors), the missing-id check and the unresolved-id set. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg2qdrant/errors.h"
#include "pg2qdrant/reconcile.h"

static char *key_id[] = {"id"};
static char *key_ab[] = {"a", "b"};

static void rule_init(p2q_rule_config_t *r, char **key, int nkey) {
  memset(r, 0, sizeof *r);
  strcpy(r->name, "docs");
  r->vector_column = "emb";
  r->key.items = key;
  r->key.n = nkey;
}

static void test_id_text(void **state) {
  char out[P2Q_POINT_ID_MAX];
  cJSON *n = cJSON_CreateNumber(42), *u = cJSON_CreateString("6F2B8C3E-1D4A-5B9E-9C7F-0A3D5E7B9C21");
  cJSON *neg = cJSON_CreateNumber(-1), *s = cJSON_CreateString("short");
  assert_int_equal(p2q_rec_id_text(n, out), 0);
  assert_string_equal(out, "42");
  assert_int_equal(p2q_rec_id_text(u, out), 0);
  assert_string_equal(out, "\"6f2b8c3e-1d4a-5b9e-9c7f-0a3d5e7b9c21\"");
  assert_int_equal(p2q_rec_id_text(neg, out), P2Q_EINVAL);
  assert_int_equal(p2q_rec_id_text(s, out), P2Q_EINVAL);
  cJSON *big = cJSON_CreateNumber(9007199254740992.0);
  assert_int_equal(p2q_rec_id_text(big, out), P2Q_ERANGE);
  cJSON_Delete(n); cJSON_Delete(u); cJSON_Delete(neg); cJSON_Delete(s); cJSON_Delete(big);
}

static int key_of(const p2q_rule_config_t *r, const char *id, const char *payload, char *out, size_t n) {
  cJSON *p = cJSON_Parse(payload);
  p2q_buf_t b = P2Q_BUF_INIT;
  int rc = p2q_rec_point_key(r, id, p, &b);
  snprintf(out, n, "%s", p2q_buf_str(&b));
  p2q_buf_free(&b);
  cJSON_Delete(p);
  return rc;
}

static void test_point_key(void **state) {
  p2q_rule_config_t r;
  char k[128];
  const char *u = "\"6f2b8c3e-1d4a-5b9e-9c7f-0a3d5e7b9c21\"";
  rule_init(&r, key_id, 1);
  assert_int_equal(key_of(&r, "7", "{\"t\": 1}", k, sizeof k), P2Q_REC_KEY_ID);
  assert_string_equal(k, "{\"id\":7}");
  /* an integer id names its key whatever the payload says (a copied _pk is ignored), exactly */
  assert_int_equal(key_of(&r, "18446744073709551615", "{\"_pk\": {\"id\": 3}}", k, sizeof k), P2Q_REC_KEY_ID);
  assert_string_equal(k, "{\"id\":18446744073709551615}");
  assert_int_equal(key_of(&r, u, "{\"_pk\": {\"id\": \"x\"}}", k, sizeof k), P2Q_REC_KEY_PK);
  assert_string_equal(k, "{\"id\":\"x\"}");
  /* a uuid without _pk, or a _pk of the wrong shape: not derivable */
  assert_int_equal(key_of(&r, u, "{}", k, sizeof k), P2Q_REC_KEY_NONE);
  assert_int_equal(key_of(&r, u, "{\"_pk\": {\"a\": 1, \"b\": 2}}", k, sizeof k), P2Q_REC_KEY_NONE);
  assert_int_equal(key_of(&r, u, "{\"_pk\": 5}", k, sizeof k), P2Q_REC_KEY_NONE);
  rule_init(&r, key_ab, 2);
  assert_int_equal(key_of(&r, "3", "{\"_pk\": {\"a\": 1, \"b\": 2}}", k, sizeof k), P2Q_REC_KEY_NONE); /* composite: uuid ids only */
  assert_int_equal(key_of(&r, u, "{\"_pk\": {\"a\": 1, \"b\": \"z\"}}", k, sizeof k), P2Q_REC_KEY_PK);
  assert_string_equal(k, "{\"a\":1,\"b\":\"z\"}");
}

static p2q_span_t span(const char *s) { return (p2q_span_t){s, strlen(s)}; }

static void test_id_span_and_raw_ids(void **state) {
  char out[P2Q_POINT_ID_MAX];
  assert_int_equal(p2q_rec_id_span(span("9007199254740993"), out), 0);
  assert_string_equal(out, "9007199254740993"); /* exact, where a double says ...992 */
  assert_int_equal(p2q_rec_id_span(span("18446744073709551615"), out), 0);
  assert_int_equal(p2q_rec_id_span(span("18446744073709551616"), out), P2Q_EINVAL);
  assert_int_equal(p2q_rec_id_span(span("07"), out), P2Q_EINVAL);
  assert_int_equal(p2q_rec_id_span(span("-1"), out), P2Q_EINVAL);
  assert_int_equal(p2q_rec_id_span(span("1.5"), out), P2Q_EINVAL);
  assert_int_equal(p2q_rec_id_span(span("\"6F2B8C3E-1D4A-5B9E-9C7F-0A3D5E7B9C21\""), out), 0);
  assert_string_equal(out, "\"6f2b8c3e-1d4a-5b9e-9c7f-0a3d5e7b9c21\"");
  assert_int_equal(p2q_rec_id_span(span("\"short\""), out), P2Q_EINVAL);
  p2q_span_t ids[4];
  const char *scroll = "{\"result\": {\"points\": [{\"payload\": {\"id\": 1}, \"id\": 9007199254740993},"
                       " {\"id\": \"6f2b8c3e-1d4a-5b9e-9c7f-0a3d5e7b9c21\", \"vector\": [1]}],"
                       " \"next_page_offset\": null}, \"status\": \"ok\", \"time\": 0.1}";
  assert_int_equal(p2q_rec_raw_ids(scroll, strlen(scroll), ids, 4), 2);
  assert_true(ids[0].n == 16 && !memcmp(ids[0].p, "9007199254740993", 16)); /* not the payload's id */
  assert_true(ids[1].n == 38 && ids[1].p[0] == '"');
  const char *got = "{\"result\":[{\"id\":3},{\"id\":18446744073709551615}],\"status\":\"ok\"}";
  assert_int_equal(p2q_rec_raw_ids(got, strlen(got), ids, 1), 2); /* counts all, writes max */
  assert_true(ids[0].n == 1 && ids[0].p[0] == '3');
  const char *empty = "{\"result\":{\"points\":[],\"next_page_offset\":null}}";
  assert_int_equal(p2q_rec_raw_ids(empty, strlen(empty), ids, 4), 0);
  assert_true(p2q_rec_raw_ids("{\"status\":\"ok\"}", 15, ids, 4) < 0);
  assert_true(p2q_rec_raw_ids("{\"result\":{\"points\":[{\"id\":1}", 28, ids, 4) < 0); /* truncated */
}

/* The point the daemon would write for this row, parsed. */
static cJSON *point_for(const p2q_rule_config_t *r, const char *key, const char *snap) {
  p2q_buf_t b = P2Q_BUF_INIT;
  char why[128], id[P2Q_POINT_ID_MAX];
  int uuid = p2q_point_id(r->name, key, strlen(key), id);
  assert_true(uuid >= 0);
  assert_int_equal(p2q_point_build(&b, r, id, uuid, key, snap, strlen(snap), NULL, 0, why, sizeof why), 0);
  cJSON *pt = cJSON_Parse(b.data);
  p2q_buf_free(&b);
  return pt;
}

static p2q_rec_kind_t check(const p2q_rule_config_t *r, const cJSON *pt, const char *key, const char *snap) {
  return p2q_rec_check(r, cJSON_GetObjectItem(pt, "payload"), cJSON_GetObjectItem(pt, "vector"), key, snap);
}

static void test_check_payload(void **state) {
  p2q_rule_config_t r;
  rule_init(&r, key_id, 1);
  r.distance = P2Q_DIST_DOT;
  const char *key = "{\"id\": 5}", *snap = "{\"n\": 1.50, \"id\": 5, \"emb\": [1, 2], \"title\": \"t\"}";
  cJSON *pt = point_for(&r, key, snap);
  cJSON *pl = cJSON_GetObjectItem(pt, "payload");
  assert_int_equal(check(&r, pt, key, snap), P2Q_REC_OK);
  /* the row changed (only its vector, even): the hash differs, the payload is stale */
  const char *snap2 = "{\"n\": 1.50, \"id\": 5, \"emb\": [1, 3], \"title\": \"t\"}";
  assert_int_equal(check(&r, pt, key, snap2), P2Q_REC_STALE);
  /* the payload was edited but kept its hash */
  cJSON_ReplaceItemInObject(pl, "title", cJSON_CreateString("edited"));
  assert_int_equal(check(&r, pt, key, snap), P2Q_REC_STALE);
  cJSON_Delete(pt);
  /* numbers re-printed by Qdrant (1.50 → 1.5) still compare equal; a missing hash is stale */
  pt = point_for(&r, key, snap);
  pl = cJSON_GetObjectItem(pt, "payload");
  cJSON_ReplaceItemInObject(pl, "n", cJSON_CreateNumber(1.5));
  assert_int_equal(check(&r, pt, key, snap), P2Q_REC_OK);
  cJSON_DeleteItemFromObject(pl, "_hash");
  assert_int_equal(check(&r, pt, key, snap), P2Q_REC_STALE);
  assert_int_equal(p2q_rec_check(&r, NULL, NULL, key, snap), P2Q_REC_STALE); /* no payload at all */
  cJSON_Delete(pt);
  /* uuid ids keep the key in _pk: a lost _pk, or another row's payload, is stale */
  const char *tkey = "{\"id\": \"abc\"}", *tsnap = "{\"id\": \"abc\", \"emb\": [1]}";
  const char *okey = "{\"id\": \"abd\"}", *osnap = "{\"id\": \"abd\", \"emb\": [1]}";
  pt = point_for(&r, tkey, tsnap);
  assert_non_null(cJSON_GetObjectItem(cJSON_GetObjectItem(pt, "payload"), "_pk"));
  assert_int_equal(check(&r, pt, tkey, tsnap), P2Q_REC_OK);
  cJSON *other = point_for(&r, okey, osnap);
  assert_int_equal(check(&r, other, tkey, tsnap), P2Q_REC_STALE); /* copied foreign payload */
  cJSON_DeleteItemFromObject(cJSON_GetObjectItem(pt, "payload"), "_pk");
  assert_int_equal(check(&r, pt, tkey, tsnap), P2Q_REC_STALE);
  cJSON_Delete(pt);
  cJSON_Delete(other);
}

static void test_check_vector(void **state) {
  p2q_rule_config_t r;
  rule_init(&r, key_id, 1);
  r.distance = P2Q_DIST_DOT;
  const char *key = "{\"id\": 5}", *snap = "{\"id\": 5, \"emb\": [3, 4, 0.1]}";
  cJSON *pt = point_for(&r, key, snap);
  assert_int_equal(check(&r, pt, key, snap), P2Q_REC_OK);
  /* a corrupted component, a lost component, no vector: vector_stale (the payload is current) */
  cJSON_ReplaceItemInObject(pt, "vector", cJSON_Parse("[3, 4.001, 0.1]"));
  assert_int_equal(check(&r, pt, key, snap), P2Q_REC_VECTOR_STALE);
  cJSON_ReplaceItemInObject(pt, "vector", cJSON_Parse("[3, 4]"));
  assert_int_equal(check(&r, pt, key, snap), P2Q_REC_VECTOR_STALE);
  cJSON_ReplaceItemInObject(pt, "vector", cJSON_Parse("{}"));
  assert_int_equal(check(&r, pt, key, snap), P2Q_REC_VECTOR_STALE);
  /* float32 as Qdrant prints it back */
  cJSON_ReplaceItemInObject(pt, "vector", cJSON_Parse("[3.0, 4.0, 0.100000001]"));
  assert_int_equal(check(&r, pt, key, snap), P2Q_REC_OK);
  /* vector NULL: not compared (text rules) */
  cJSON_ReplaceItemInObject(pt, "vector", cJSON_Parse("[9, 9, 9]"));
  assert_int_equal(p2q_rec_check(&r, cJSON_GetObjectItem(pt, "payload"), NULL, key, snap), P2Q_REC_OK);
  /* a stale payload wins over a stale vector */
  cJSON_ReplaceItemInObject(cJSON_GetObjectItem(pt, "payload"), "_hash", cJSON_CreateString("0"));
  assert_int_equal(check(&r, pt, key, snap), P2Q_REC_STALE);
  cJSON_Delete(pt);
  /* Cosine: Qdrant stores the normalised vector */
  r.distance = P2Q_DIST_COSINE;
  pt = point_for(&r, key, snap);
  cJSON_ReplaceItemInObject(pt, "vector", cJSON_Parse("[0.59988004, 0.799840033, 0.0199960023]"));
  assert_int_equal(check(&r, pt, key, snap), P2Q_REC_OK);
  cJSON_ReplaceItemInObject(pt, "vector", cJSON_Parse("[3, 4, 0.1]")); /* not normalised: not what Qdrant holds */
  assert_int_equal(check(&r, pt, key, snap), P2Q_REC_VECTOR_STALE);
  cJSON_ReplaceItemInObject(pt, "vector", cJSON_Parse("[0.799840033, 0.59988004, 0.0199960023]"));
  assert_int_equal(check(&r, pt, key, snap), P2Q_REC_VECTOR_STALE);
  cJSON_Delete(pt);
  /* named vectors */
  r.vector_name = "v";
  r.distance = P2Q_DIST_EUCLID;
  pt = point_for(&r, key, snap);
  assert_non_null(cJSON_GetObjectItem(cJSON_GetObjectItem(pt, "vector"), "v"));
  assert_int_equal(check(&r, pt, key, snap), P2Q_REC_OK);
  cJSON_ReplaceItemInObject(pt, "vector", cJSON_Parse("{\"w\": [3, 4, 0.1]}"));
  assert_int_equal(check(&r, pt, key, snap), P2Q_REC_VECTOR_STALE);
  cJSON_Delete(pt);
}

static void test_vector_equal(void **state) {
  cJSON *a = cJSON_Parse("[1e-20, 2e-20]"), *b = cJSON_Parse("[1e-20, 2.0001e-20]"), *z = cJSON_Parse("[0, 0]");
  assert_true(p2q_rec_vector_equal(a, a, 0));
  assert_false(p2q_rec_vector_equal(a, b, 0)); /* scale-relative: tiny vectors still compared */
  assert_true(p2q_rec_vector_equal(z, z, 1));  /* a zero vector is not normalised */
  assert_false(p2q_rec_vector_equal(a, z, 0));
  assert_false(p2q_rec_vector_equal(a, NULL, 0));
  cJSON *s = cJSON_Parse("[\"1\", 2]");
  assert_false(p2q_rec_vector_equal(s, s, 0));
  cJSON_Delete(a); cJSON_Delete(b); cJSON_Delete(z); cJSON_Delete(s);
}

static void test_idset(void **state) {
  p2q_rec_idset_t s;
  assert_int_equal(p2q_rec_idset_init(&s, 3), 0);
  assert_int_equal(p2q_rec_idset_add(&s, "\"b\""), 0);
  assert_int_equal(p2q_rec_idset_add(&s, "\"a\""), 0);
  assert_int_equal(p2q_rec_idset_add(&s, "\"b\""), 0);
  assert_int_equal(p2q_rec_idset_add(&s, "\"c\""), P2Q_EOVERFLOW);
  p2q_rec_idset_sort(&s);
  assert_int_equal(s.n, 2); /* duplicates dropped */
  assert_int_equal(p2q_rec_idset_mark(&s, "\"b\""), 1);
  assert_int_equal(p2q_rec_idset_mark(&s, "\"z\""), 0);
  assert_int_equal(p2q_rec_idset_find(&s, "\"a\""), 0);
  assert_int_equal(s.owned[0], 0);
  assert_int_equal(s.owned[1], 1);
  p2q_rec_idset_clear(&s);
  assert_int_equal(p2q_rec_idset_find(&s, "\"a\""), -1);
  p2q_rec_idset_free(&s);
}

static void test_mark_missing(void **state) {
  char *want[] = {"1", "\"b\"", "3", "\"a\"", "5"};
  char *have[] = {"5", "\"a\"", "1"};
  unsigned char miss[5];
  assert_int_equal(p2q_rec_mark_missing(want, 5, have, 3, miss), 0);
  assert_int_equal(miss[0], 0);
  assert_int_equal(miss[1], 1);
  assert_int_equal(miss[2], 1);
  assert_int_equal(miss[3], 0);
  assert_int_equal(miss[4], 0);
  assert_int_equal(p2q_rec_mark_missing(want, 5, have, 0, miss), 0);
  for (int i = 0; i < 5; i++) assert_int_equal(miss[i], 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_id_text),      cmocka_unit_test(test_point_key),
      cmocka_unit_test(test_id_span_and_raw_ids), cmocka_unit_test(test_check_payload),
      cmocka_unit_test(test_check_vector), cmocka_unit_test(test_vector_equal),
      cmocka_unit_test(test_idset),        cmocka_unit_test(test_mark_missing),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

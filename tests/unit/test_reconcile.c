/* Unit tests for the pure parts of reconcile (cmd_reconcile.c): id text, keys derived from
   points, the per-point verdict (hash and payload) and the missing-id check. */
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

static int key_of(const p2q_rule_config_t *r, const char *point, char *out, size_t n) {
  cJSON *p = cJSON_Parse(point);
  p2q_buf_t b = P2Q_BUF_INIT;
  int rc = p2q_rec_point_key(r, p, &b);
  snprintf(out, n, "%s", p2q_buf_str(&b));
  p2q_buf_free(&b);
  cJSON_Delete(p);
  return rc;
}

static void test_point_key(void **state) {
  p2q_rule_config_t r;
  char k[128];
  rule_init(&r, key_id, 1);
  assert_int_equal(key_of(&r, "{\"id\": 7, \"payload\": {\"t\": 1}}", k, sizeof k), 1);
  assert_string_equal(k, "{\"id\":7}");
  assert_int_equal(key_of(&r, "{\"id\": \"6f2b8c3e-1d4a-5b9e-9c7f-0a3d5e7b9c21\", \"payload\": {\"_pk\": {\"id\": \"x\"}}}", k, sizeof k), 1);
  assert_string_equal(k, "{\"id\":\"x\"}");
  /* a uuid without _pk, or a _pk of the wrong shape: not derivable */
  assert_int_equal(key_of(&r, "{\"id\": \"6f2b8c3e-1d4a-5b9e-9c7f-0a3d5e7b9c21\", \"payload\": {}}", k, sizeof k), 0);
  assert_int_equal(key_of(&r, "{\"id\": 3, \"payload\": {\"_pk\": {\"a\": 1, \"b\": 2}}}", k, sizeof k), 0);
  rule_init(&r, key_ab, 2);
  assert_int_equal(key_of(&r, "{\"id\": 3, \"payload\": {}}", k, sizeof k), 0); /* composite: needs _pk */
  assert_int_equal(key_of(&r, "{\"id\": \"u\", \"payload\": {\"_pk\": {\"a\": 1, \"b\": \"z\"}}}", k, sizeof k), 1);
  assert_string_equal(k, "{\"a\":1,\"b\":\"z\"}");
}

/* The payload the daemon would write for this row, parsed. */
static cJSON *payload_for(const p2q_rule_config_t *r, const char *id, int uuid, const char *key, const char *snap) {
  p2q_buf_t b = P2Q_BUF_INIT;
  char why[128];
  assert_int_equal(p2q_point_build(&b, r, id, uuid, key, snap, strlen(snap), NULL, 0, why, sizeof why), 0);
  cJSON *pt = cJSON_Parse(b.data);
  p2q_buf_free(&b);
  cJSON *pl = cJSON_DetachItemFromObject(pt, "payload");
  cJSON_Delete(pt);
  return pl;
}

static void test_classify(void **state) {
  p2q_rule_config_t r;
  rule_init(&r, key_id, 1);
  const char *key = "{\"id\": 5}", *snap = "{\"n\": 1.50, \"id\": 5, \"emb\": [1, 2], \"title\": \"t\"}";
  cJSON *pl = payload_for(&r, "5", 0, key, snap);
  assert_int_equal(p2q_rec_classify(&r, "5", pl, key, snap), P2Q_REC_OK);
  /* no row, or the row's id is another point's */
  assert_int_equal(p2q_rec_classify(&r, "5", pl, NULL, NULL), P2Q_REC_ORPHAN);
  assert_int_equal(p2q_rec_classify(&r, "6", pl, key, snap), P2Q_REC_ORPHAN);
  /* the row changed (only its vector, even): the hash differs */
  const char *snap2 = "{\"n\": 1.50, \"id\": 5, \"emb\": [1, 3], \"title\": \"t\"}";
  assert_int_equal(p2q_rec_classify(&r, "5", pl, key, snap2), P2Q_REC_STALE);
  /* the payload was edited but kept its hash */
  cJSON_ReplaceItemInObject(pl, "title", cJSON_CreateString("edited"));
  assert_int_equal(p2q_rec_classify(&r, "5", pl, key, snap), P2Q_REC_STALE);
  cJSON_Delete(pl);
  /* numbers re-printed by Qdrant (1.50 → 1.5) still compare equal */
  cJSON *qp = cJSON_Parse("{\"title\": \"t\", \"id\": 5, \"n\": 1.5, \"_hash\": \"x\"}");
  cJSON *want = payload_for(&r, "5", 0, key, snap);
  cJSON_ReplaceItemInObject(qp, "_hash", cJSON_Duplicate(cJSON_GetObjectItem(want, "_hash"), 1));
  assert_int_equal(p2q_rec_classify(&r, "5", qp, key, snap), P2Q_REC_OK);
  /* a missing hash is stale */
  cJSON_DeleteItemFromObject(qp, "_hash");
  assert_int_equal(p2q_rec_classify(&r, "5", qp, key, snap), P2Q_REC_STALE);
  cJSON_Delete(qp);
  cJSON_Delete(want);
  /* uuid ids keep the key in _pk */
  char id[P2Q_POINT_ID_MAX];
  const char *tkey = "{\"id\": \"abc\"}", *tsnap = "{\"id\": \"abc\", \"emb\": [1]}";
  assert_int_equal(p2q_point_id("docs", tkey, strlen(tkey), id), 1);
  cJSON *up = payload_for(&r, id, 1, tkey, tsnap);
  assert_non_null(cJSON_GetObjectItem(up, "_pk"));
  assert_int_equal(p2q_rec_classify(&r, id, up, tkey, tsnap), P2Q_REC_OK);
  cJSON_Delete(up);
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
      cmocka_unit_test(test_id_text), cmocka_unit_test(test_point_key),
      cmocka_unit_test(test_classify), cmocka_unit_test(test_mark_missing),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

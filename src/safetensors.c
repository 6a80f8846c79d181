/*
 * safetensors.c — mmap loader and validator for safetensors files (see safetensors.h).
 *
 * Owns: the mapping (or borrows a caller buffer), a tensor table and the names' storage.
 * Thread: any; the handle is immutable once p2q_safetensors_open() returns.
 * Invariant: every tensor in the table satisfies
 *   data_start <= begin <= end <= file_size, end - begin == prod(shape) * dtype_size,
 *   begin aligned to the dtype size, and tensors do not overlap.
 */
#include "pg2qdrant/safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pg2qdrant/errors.h"
#include "pg2qdrant/log.h"

#define ST_MAX_HEADER (100u * 1024u * 1024u) /* the format's own limit */

struct p2q_safetensors_s {
  void *map;        /* NULL when borrowing */
  size_t map_len;
  p2q_st_tensor_t *tensors;
  size_t n;
  char *names;      /* all names, NUL-separated */
};

static const struct { const char *name; p2q_st_dtype_t dt; size_t size; } k_dtypes[] = {
  {"F64", P2Q_ST_F64, 8}, {"F32", P2Q_ST_F32, 4}, {"F16", P2Q_ST_F16, 2},
  {"BF16", P2Q_ST_BF16, 2}, {"I64", P2Q_ST_I64, 8}, {"I32", P2Q_ST_I32, 4},
  {"I16", P2Q_ST_I16, 2}, {"I8", P2Q_ST_I8, 1}, {"U8", P2Q_ST_U8, 1}, {"BOOL", P2Q_ST_BOOL, 1},
};

static int st_bad(const char *name, const char *why) {
  char qn[160], qw[160];
  P2Q_ERROR("safetensors_invalid", "tensor=%s reason=%s", p2q_log_q(qn, sizeof qn, name ? name : ""),
            p2q_log_q(qw, sizeof qw, why));
  return P2Q_EMODEL;
}

/* A JSON number that is an exact non-negative integer below 2^53. */
static int st_uint(const cJSON *j, uint64_t *out) {
  if (!cJSON_IsNumber(j)) return -1;
  double d = j->valuedouble;
  if (!(d >= 0) || d > 9007199254740992.0 || floor(d) != d) return -1;
  *out = (uint64_t)d;
  return 0;
}

static int st_parse_entry(const cJSON *e, size_t data_len, p2q_st_tensor_t *t, uint64_t *b_out) {
  const cJSON *jd = cJSON_GetObjectItemCaseSensitive(e, "dtype");
  const cJSON *js = cJSON_GetObjectItemCaseSensitive(e, "shape");
  const cJSON *jo = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
  size_t esize = 0;
  if (!cJSON_IsObject(e) || !cJSON_IsString(jd) || !cJSON_IsArray(js) || !cJSON_IsArray(jo))
    return st_bad(e->string, "entry needs dtype, shape and data_offsets");
  for (size_t i = 0; i < sizeof k_dtypes / sizeof k_dtypes[0]; i++)
    if (strcmp(jd->valuestring, k_dtypes[i].name) == 0) { t->dtype = k_dtypes[i].dt; esize = k_dtypes[i].size; }
  if (!esize) return st_bad(e->string, "unknown dtype");
  int nd = cJSON_GetArraySize(js);
  if (nd > P2Q_ST_MAX_DIMS) return st_bad(e->string, "too many dimensions");
  uint64_t count = 1;
  int d = 0;
  for (const cJSON *x = js->child; x; x = x->next, d++) {
    uint64_t v;
    if (st_uint(x, &v) != 0) return st_bad(e->string, "shape entry is not a non-negative integer");
    if (v != 0 && count > UINT64_MAX / v) return st_bad(e->string, "shape overflows");
    count *= v;
    t->shape[d] = (int64_t)v;
  }
  t->ndim = nd;
  uint64_t b, en;
  if (cJSON_GetArraySize(jo) != 2 || st_uint(jo->child, &b) != 0 || st_uint(jo->child->next, &en) != 0)
    return st_bad(e->string, "data_offsets must be two non-negative integers");
  if (b > en || en > data_len) return st_bad(e->string, "data_offsets outside the file");
  if (count > UINT64_MAX / esize || en - b != count * esize)
    return st_bad(e->string, "data size does not match dtype and shape");
  t->nbytes = (size_t)(en - b);
  *b_out = b;
  return 0;
}

static int st_cmp_begin(const void *a, const void *b) {
  const p2q_st_tensor_t *x = a, *y = b;
  uintptr_t p = (uintptr_t)x->data, q = (uintptr_t)y->data;
  return p < q ? -1 : p > q;
}

static int st_build(const unsigned char *buf, size_t len, p2q_safetensors_t *st) {
  cJSON *root = NULL;
  int rc = P2Q_EMODEL;
  if (len < 8) { st_bad(NULL, "file shorter than the 8-byte header length"); goto fail; }
  uint64_t hl = 0;
  for (int i = 7; i >= 0; i--) hl = (hl << 8) | buf[i];
  if (hl < 2 || hl > ST_MAX_HEADER || hl > len - 8) { st_bad(NULL, "header length exceeds the file"); goto fail; }
  const unsigned char *data = buf + 8 + hl;
  size_t data_len = len - 8 - (size_t)hl;
  root = cJSON_ParseWithLength((const char *)buf + 8, (size_t)hl);
  if (!root || !cJSON_IsObject(root)) { st_bad(NULL, "header is not a JSON object"); goto fail; }
  size_t n = 0, names_len = 0;
  for (const cJSON *e = root->child; e; e = e->next) {
    if (strcmp(e->string, "__metadata__") == 0) continue;
    n++;
    names_len += strlen(e->string) + 1;
  }
  rc = P2Q_ENOMEM;
  st->tensors = calloc(n ? n : 1, sizeof *st->tensors);
  st->names = malloc(names_len ? names_len : 1);
  if (!st->tensors || !st->names) goto fail;
  rc = P2Q_EMODEL;
  char *np = st->names;
  for (const cJSON *e = root->child; e; e = e->next) {
    if (strcmp(e->string, "__metadata__") == 0) continue;
    p2q_st_tensor_t *t = &st->tensors[st->n];
    uint64_t b = 0;
    if ((rc = st_parse_entry(e, data_len, t, &b)) != 0) goto fail;
    size_t al = t->dtype == P2Q_ST_F64 || t->dtype == P2Q_ST_I64 ? 8
              : t->dtype == P2Q_ST_F32 || t->dtype == P2Q_ST_I32 ? 4 : 1;
    if (al > 4) al = 4; /* we only read 4-byte floats; 8-byte types are never dereferenced */
    if (((uintptr_t)(data + b)) % al != 0) { rc = st_bad(e->string, "tensor data is misaligned"); goto fail; }
    size_t nl = strlen(e->string) + 1;
    memcpy(np, e->string, nl);
    t->name = np;
    np += nl;
    t->data = data + b;
    for (size_t i = 0; i < st->n; i++)
      if (strcmp(st->tensors[i].name, t->name) == 0) { rc = st_bad(t->name, "duplicate tensor name"); goto fail; }
    st->n++;
  }
  /* No two tensors may overlap (sort a copy by start address). */
  if (st->n > 1) {
    rc = P2Q_ENOMEM;
    p2q_st_tensor_t *s = malloc(st->n * sizeof *s);
    if (!s) goto fail;
    memcpy(s, st->tensors, st->n * sizeof *s);
    qsort(s, st->n, sizeof *s, st_cmp_begin);
    rc = 0;
    for (size_t i = 1; i < st->n && rc == 0; i++)
      if ((const unsigned char *)s[i - 1].data + s[i - 1].nbytes > (const unsigned char *)s[i].data &&
          s[i - 1].nbytes && s[i].nbytes)
        rc = st_bad(s[i].name, "tensor data overlaps another tensor");
    free(s);
    if (rc) goto fail;
  }
  cJSON_Delete(root);
  return 0;
fail:
  cJSON_Delete(root);
  return rc;
}

static void st_free(p2q_safetensors_t *st) {
  if (!st) return;
  if (st->map) munmap(st->map, st->map_len);
  free(st->tensors);
  free(st->names);
  free(st);
}

int p2q_safetensors_parse(const void *buf, size_t len, p2q_safetensors_t **out) {
  *out = NULL;
  p2q_safetensors_t *st = calloc(1, sizeof *st);
  if (!st) return P2Q_ENOMEM;
  int rc = st_build(buf, len, st);
  if (rc) { st_free(st); return rc; }
  *out = st;
  return 0;
}

int p2q_safetensors_open(const char *path, p2q_safetensors_t **out) {
  int fd = -1, rc;
  p2q_safetensors_t *st = NULL;
  struct stat sb;
  char qp[512];
  *out = NULL;
  fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    rc = errno == ENOENT ? P2Q_ENOENT : P2Q_EIO;
    P2Q_ERROR("safetensors_open", "path=%s errno=%d", p2q_log_q(qp, sizeof qp, path), errno);
    goto fail;
  }
  rc = P2Q_EIO;
  if (fstat(fd, &sb) != 0) goto fail;
  rc = P2Q_EMODEL;
  if (!S_ISREG(sb.st_mode) || sb.st_size < 8) {
    P2Q_ERROR("safetensors_invalid", "path=%s reason=\"not a regular file of at least 8 bytes\"",
              p2q_log_q(qp, sizeof qp, path));
    goto fail;
  }
  rc = P2Q_ENOMEM;
  if (!(st = calloc(1, sizeof *st))) goto fail;
  st->map_len = (size_t)sb.st_size;
  st->map = mmap(NULL, st->map_len, PROT_READ, MAP_PRIVATE, fd, 0);
  if (st->map == MAP_FAILED) { st->map = NULL; rc = P2Q_EIO; goto fail; }
  if ((rc = st_build(st->map, st->map_len, st)) != 0) {
    P2Q_ERROR("safetensors_load", "path=%s err=%s", p2q_log_q(qp, sizeof qp, path), p2q_err_name(rc));
    goto fail;
  }
  close(fd);
  *out = st;
  return 0;
fail:
  if (fd >= 0) close(fd);
  st_free(st);
  return rc;
}

void p2q_safetensors_close(p2q_safetensors_t *st) { st_free(st); }

size_t p2q_safetensors_count(const p2q_safetensors_t *st) { return st->n; }

const p2q_st_tensor_t *p2q_safetensors_find(const p2q_safetensors_t *st, const char *name) {
  for (size_t i = 0; i < st->n; i++)
    if (strcmp(st->tensors[i].name, name) == 0) return &st->tensors[i];
  return NULL;
}

int p2q_safetensors_get_f32(const p2q_safetensors_t *st, const char *name, int ndim,
                            const int64_t *shape, const float **out) {
  const p2q_st_tensor_t *t = p2q_safetensors_find(st, name);
  if (!t) return st_bad(name, "missing tensor");
  if (t->dtype != P2Q_ST_F32) return st_bad(name, "expected dtype F32");
  if (t->ndim != ndim) return st_bad(name, "unexpected number of dimensions");
  for (int i = 0; i < ndim; i++)
    if (t->shape[i] != shape[i]) return st_bad(name, "unexpected shape");
  *out = t->data;
  return 0;
}

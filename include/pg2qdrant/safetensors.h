/*
 * safetensors.h — read-only loader for the safetensors tensor format.
 *
 * Layout: u64 little-endian header length N, N bytes of JSON
 * {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}},
 * then the raw little-endian row-major data; offsets are relative to byte 8+N.
 *
 * p2q_safetensors_open() mmaps the file; p2q_safetensors_parse() reads a caller-owned buffer
 * (tests). Both validate the whole header before returning: every dtype is known, every shape
 * entry is a non-negative integer, every offset pair is ordered, inside the data area, sized
 * exactly prod(shape) * dtype size, suitably aligned, and no two tensors overlap. Any violation
 * is P2Q_EMODEL (with a logged reason) — a corrupt file never causes an out-of-bounds read.
 * The handle is immutable after load: lookups are safe from any thread.
 */
#ifndef P2Q_SAFETENSORS_H
#define P2Q_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#define P2Q_ST_MAX_DIMS 8

typedef enum {
  P2Q_ST_F64, P2Q_ST_F32, P2Q_ST_F16, P2Q_ST_BF16,
  P2Q_ST_I64, P2Q_ST_I32, P2Q_ST_I16, P2Q_ST_I8, P2Q_ST_U8, P2Q_ST_BOOL
} p2q_st_dtype_t;

typedef struct {
  const char *name;
  p2q_st_dtype_t dtype;
  int ndim;
  int64_t shape[P2Q_ST_MAX_DIMS];
  const void *data;   /* points into the mapping; valid until p2q_safetensors_close() */
  size_t nbytes;
} p2q_st_tensor_t;

typedef struct p2q_safetensors_s p2q_safetensors_t;

/* mmap and validate `path`. Errors: P2Q_ENOENT, P2Q_EIO, P2Q_EMODEL, P2Q_ENOMEM. */
int p2q_safetensors_open(const char *path, p2q_safetensors_t **out);
/* Validate an in-memory image; `buf` must outlive the handle (not copied, not freed). */
int p2q_safetensors_parse(const void *buf, size_t len, p2q_safetensors_t **out);
void p2q_safetensors_close(p2q_safetensors_t *st);

size_t p2q_safetensors_count(const p2q_safetensors_t *st);
/* NULL if absent. */
const p2q_st_tensor_t *p2q_safetensors_find(const p2q_safetensors_t *st, const char *name);
/* Look up an F32 tensor and check its exact shape. P2Q_EMODEL (logged) when it is missing, not
 * F32, or shaped differently. */
int p2q_safetensors_get_f32(const p2q_safetensors_t *st, const char *name, int ndim,
                            const int64_t *shape, const float **out);

#endif

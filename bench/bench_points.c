/*
 * bench_points.c — the daemon's per-event work on the loop thread for a vector_column rule whose
 * real[] vector arrives in binary (the drain of `pg2qdrant bench`), without PostgreSQL or Qdrant:
 * claim_cb's splice (p2q_vector_event_payload: the vector printed into the snapshot), prepare's
 * point id, the batch's snapshot hashes (p2q_hash64_many) and point build (the span hint: the
 * vector not scanned again) straight into the upsert request body, in batches of 256 events like
 * the bench's rows. CPU µs per event, best of --reps runs.
 *   bench_points [--batches N] [--reps N] [--values const|bench|normal] [--chunk N [--reuse 1]]
 * --chunk N: splice, hash and build N events at a time (the daemon: all 256 of a batch at each
 * stage); --reuse 1: each chunk's snapshots overwrite the last chunk's (a scratch that stays in L2).
 * const: every element of a row's vector the same value, as the drain's array_fill (the
 * printer's branches then repeat); bench: k/10000, k uniform in [-10000, 10000); normal: N(0, 0.05)
 * (MiniLM-like, 7-9 digits). Output: "RESULT key=value …".
 */
#include <malloc.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pg2qdrant/buf.h"
#include "pg2qdrant/hash.h"
#include "pg2qdrant/points.h"
#include "pg2qdrant/vector_bin.h"

#include "bench_util.h"

enum { B = 256, DIM = 384 };

static float value(const char *kind, int row) {
  if (!strcmp(kind, "const")) return (float)((row % 1000) / 1000.0);
  if (!strcmp(kind, "bench")) return (float)((int)(next_u64() % 20000) - 10000) / 10000.0f;
  double u1 = ((double)(next_u64() >> 11) + 1) / 9007199254740993.0, u2 = (double)(next_u64() >> 11) / 9007199254740992.0;
  return (float)(0.05 * sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2));
}

/* One batch, its events taken `chunk` at a time through splice, hash and build (chunk = B: all
   the batch's snapshots first, then all hashes, then all points); returns the request body's
   length, 0 on a failure. */
static int chunk = B, reuse = 0;
static size_t batch(const p2q_rule_config_t *r, char (*snaps)[256], char (*keys)[64], unsigned char (*bins)[20 + DIM * 8]) {
  static char *pl[B], *rk[B], ids[B][P2Q_POINT_ID_MAX];
  static size_t pn[B], at[B];
  static uint64_t hs[B];
  static p2q_vector_span_t sp[B];
  char why[256];
  p2q_buf_t sn = P2Q_BUF_INIT; /* claim_cb: the batch's snapshots in one buffer */
  size_t need = 0;
  for (int i = 0; i < B; i++) need += strlen(snaps[i]) + 1 + p2q_vector_text_max(bins[i], sizeof bins[i]);
  p2q_buf_reserve(&sn, need);
  p2q_buf_t body = P2Q_BUF_INIT; /* the points straight into the request body (worker_embed.c) */
  need = 16;
  for (int i = 0; i < B; i++) need += strlen(snaps[i]) + p2q_vector_text_max(bins[i], sizeof bins[i]) + strlen(keys[i]) + 2 * P2Q_POINT_ID_MAX + 64;
  p2q_buf_reserve(&body, need);
  for (int c0 = 0; c0 < B; c0 += chunk) {
    int c1 = c0 + chunk < B ? c0 + chunk : B;
    if (reuse) sn.len = 0;
    for (int i = c0; i < c1; i++) {
      rk[i] = strdup(keys[i]);
      at[i] = sn.len;
      if (p2q_vector_event_payload(&sn, "emb", snaps[i], bins[i], sizeof bins[i], &sp[i], why, sizeof why)) return 0;
      pn[i] = sn.len - at[i];
      p2q_buf_append(&sn, "", 1);
    }
    for (int i = c0; i < c1; i++) pl[i] = sn.data + at[i];
    p2q_hash64_many((const char *const *)pl + c0, pn + c0, c1 - c0, hs + c0); /* p2q_wk_prepare */
    for (int i = c0; i < c1; i++) {
      int uuid = p2q_point_id(r->name, rk[i], strlen(rk[i]), ids[i]);
      p2q_point_parts_t parts = {.snapshot_hash = &hs[i], .vec_dim = sp[i].dim, .vec_at = sp[i].at, .vec_len = sp[i].len};
      p2q_buf_puts(&body, i ? "," : "{\"points\":[");
      if (uuid < 0 || p2q_point_build_ex(&body, r, ids[i], uuid, rk[i], pl[i], pn[i], &parts, why, sizeof why)) return 0;
      free(rk[i]);
    }
  }
  p2q_buf_puts(&body, "]}");
  p2q_buf_free(&sn);
  size_t len = body.len;
  p2q_buf_free(&body);
  return len;
}

int main(int argc, char **argv) {
  int batches = 40, reps = 5;
  /* the daemon's batch buffers come back from its heap (~16 page faults per 1,000 events in a
     drain); glibc would mmap and unmap this loop's every time (a fault per 4 KB touched) */
  mallopt(M_MMAP_THRESHOLD, 64 << 20);
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
  const char *kind = "bench";
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--batches")) batches = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--values")) kind = argv[i + 1];
    else if (!strcmp(argv[i], "--reuse")) reuse = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--chunk")) chunk = atoi(argv[i + 1]) > 0 && atoi(argv[i + 1]) < B ? atoi(argv[i + 1]) : B;
  }
  static char snaps[B][256], keys[B][64];
  static unsigned char bins[B][20 + DIM * 8];
  for (int i = 0; i < B; i++) {
    snprintf(keys[i], sizeof keys[i], "{\"id\": %d}", 1000 + i);
    snprintf(snaps[i], sizeof snaps[i], "{\"id\" : %d, \"seq\" : %d, \"pad\" : \"%064d\", \"emb\" : null}", 1000 + i, i, 0);
    unsigned char h[20] = {0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 2, 0xbc, 0, 0, DIM >> 8, DIM & 0xff, 0, 0, 0, 1};
    memcpy(bins[i], h, 20); /* array_send: 1 dimension, no nulls, float4, DIM elements from 1 */
    for (int j = 0; j < DIM; j++) {
      float f = value(kind, 1000 + i);
      uint32_t u;
      memcpy(&u, &f, 4);
      unsigned char e[8] = {0, 0, 0, 4, (unsigned char)(u >> 24), (unsigned char)(u >> 16), (unsigned char)(u >> 8), (unsigned char)u};
      memcpy(bins[i] + 20 + 8 * j, e, 8);
    }
  }
  p2q_rule_config_t r;
  memset(&r, 0, sizeof r);
  strcpy(r.name, "bench");
  r.vector_column = "emb";
  double best = 1e9;
  size_t bytes = 0;
  for (int rep = 0; rep < reps; rep++) {
    double t0 = cpu_s();
    for (int k = 0; k < batches; k++)
      if (!(bytes = batch(&r, snaps, keys, bins))) { fprintf(stderr, "batch failed\n"); return 1; }
    double t = (cpu_s() - t0) / ((double)batches * B) * 1e6;
    if (t < best) best = t;
  }
  printf("RESULT values=%s chunk=%d events=%d us_per_event=%.2f body_bytes_per_event=%zu\n", kind, chunk, batches * B, best, bytes / B);
  return 0;
}

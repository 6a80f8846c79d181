/*
 * bench_points.c — the daemon's per-event work on the loop thread for a vector_column rule whose
 * real[] vector arrives in binary (the drain of `pg2qdrant bench`), without PostgreSQL or Qdrant,
 * in batches of 256 events like the bench's rows: claim_cb's copy of each snapshot, prepare's
 * point id, point build with the vector printed straight into the upsert request body
 * (p2q_point_parts_t.vec_bin) and the `_hash`es over the snapshots' pieces (p2q_hash64_many_cont)
 * — `--flow direct`, the default, as worker_embed.c does it; or `--flow splice`, as before
 * session 9: each vector spliced into its snapshot (p2q_vector_event_payload), the snapshots
 * hashed (p2q_hash64_many), the points built (the span hint: the vector not scanned again, but
 * copied). Both flows' bodies are compared byte for byte first (exit 1 when they differ).
 * CPU µs per event, best of --reps runs.
 *   bench_points [--batches N] [--reps N] [--values const|bench|normal] [--flow direct|splice]
 *                [--chunk N [--reuse 1]] [--columns 1]
 * --chunk N (splice): splice, hash and build N events at a time (the daemon did each stage for
 * all 256); --reuse 1: each chunk's snapshots overwrite the last chunk's (a scratch in L2).
 * const: every element of a row's vector the same value, as the drain's array_fill (the
 * printer's branches then repeat); bench: k/10000, k uniform in [-10000, 10000); normal: N(0, 0.05)
 * (MiniLM-like, 7-9 digits). --columns 1: the rule's payload columns as the drain's (id, seq, pad),
 * 2: id, pad (a member filtered out); default: none listed, every member kept. Output: "RESULT key=value …", body_hash = FNV-1a of
 * the first batch's body (to compare two builds' bytes).
 */
#include <malloc.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pg2qdrant/buf.h"
#include "pg2qdrant/capture.h"
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

/* One batch as the daemon did before session 9 (--flow splice): each vector spliced into its
   snapshot, the snapshots hashed, the points built (the vector copied into the body), the
   batch's events taken `chunk` at a time through the three (chunk = B: each stage for all 256);
   the request body into *body. 0, or -1 on a failure. */
static int chunk = B, reuse = 0;
static int batch_splice(p2q_buf_t *body, const p2q_rule_config_t *r, char (*snaps)[256], char (*keys)[64],
                        unsigned char (*bins)[20 + DIM * 8]) {
  static char *pl[B], *rk[B], ids[B][P2Q_POINT_ID_MAX];
  static size_t pn[B], at[B];
  static uint64_t hs[B];
  static p2q_vector_span_t sp[B];
  char why[256];
  p2q_buf_t sn = P2Q_BUF_INIT; /* claim_cb: the batch's snapshots in one buffer */
  size_t need = 0;
  for (int i = 0; i < B; i++) need += strlen(snaps[i]) + 1 + p2q_vector_text_max(bins[i], sizeof bins[i]);
  p2q_buf_reserve(&sn, need);
  need = 16;
  for (int i = 0; i < B; i++) need += strlen(snaps[i]) + p2q_vector_text_max(bins[i], sizeof bins[i]) + strlen(keys[i]) + 2 * P2Q_POINT_ID_MAX + 64;
  p2q_buf_reserve(body, need);
  for (int c0 = 0; c0 < B; c0 += chunk) {
    int c1 = c0 + chunk < B ? c0 + chunk : B;
    if (reuse) sn.len = 0;
    for (int i = c0; i < c1; i++) {
      rk[i] = strdup(keys[i]);
      at[i] = sn.len;
      if (p2q_vector_event_payload(&sn, "emb", snaps[i], bins[i], sizeof bins[i], &sp[i], why, sizeof why)) return -1;
      pn[i] = sn.len - at[i];
      p2q_buf_append(&sn, "", 1);
    }
    for (int i = c0; i < c1; i++) pl[i] = sn.data + at[i];
    p2q_hash64_many((const char *const *)pl + c0, pn + c0, c1 - c0, hs + c0); /* p2q_wk_prepare */
    for (int i = c0; i < c1; i++) {
      int uuid = p2q_point_id(r->name, rk[i], strlen(rk[i]), ids[i]);
      p2q_point_parts_t parts = {.snapshot_hash = &hs[i], .vec_dim = sp[i].dim, .vec_at = sp[i].at, .vec_len = sp[i].len};
      p2q_buf_puts(body, i ? "," : "{\"points\":[");
      if (uuid < 0 || p2q_point_build_ex(body, r, ids[i], uuid, rk[i], pl[i], pn[i], &parts, why, sizeof why)) return -1;
      free(rk[i]);
    }
  }
  p2q_buf_puts(body, "]}");
  p2q_buf_free(&sn);
  return 0;
}

/* One batch as the daemon does it now (--flow direct, worker_embed.c's direct_point and
   vector_hashes): the snapshots kept with their placeholder null, each vector printed straight
   into its point in the body, `_hash` over the snapshot's three pieces, the batch's side by side. */
static int batch_direct(p2q_buf_t *body, const p2q_rule_config_t *r, char (*snaps)[256], char (*keys)[64],
                        unsigned char (*bins)[20 + DIM * 8]) {
  static char *rk[B], ids[B][P2Q_POINT_ID_MAX];
  static const char *data[B];
  static size_t pn[B], at[B], place[B], vt[B][2], pt[B][2], len[B];
  static uint64_t hs[B];
  char why[256];
  p2q_buf_t sn = P2Q_BUF_INIT; /* claim_cb: the batch's snapshots, without their vectors */
  size_t need = 0;
  for (int i = 0; i < B; i++) need += strlen(snaps[i]) + 1 + p2q_vector_text_max(bins[i], sizeof bins[i]);
  p2q_buf_reserve(&sn, need);
  for (int i = 0; i < B; i++) {
    rk[i] = strdup(keys[i]);
    at[i] = sn.len;
    p2q_buf_puts(&sn, snaps[i]);
    pn[i] = sn.len - at[i];
    p2q_buf_append(&sn, "", 1);
  }
  need = 16;
  for (int i = 0; i < B; i++) need += pn[i] + p2q_vector_text_max(bins[i], sizeof bins[i]) + strlen(rk[i]) + 2 * P2Q_POINT_ID_MAX + 64;
  p2q_buf_reserve(body, need);
  for (int i = 0; i < B; i++) {
    int uuid = p2q_point_id(r->name, rk[i], strlen(rk[i]), ids[i]);
    p2q_point_parts_t parts = {.vec_bin = bins[i], .vec_bin_len = sizeof bins[i], .vec_text = vt[i], .vec_place = &place[i]};
    p2q_buf_puts(body, i ? "," : "{\"points\":[");
    pt[i][0] = body->len;
    if (uuid < 0 || p2q_point_build_ex(body, r, ids[i], uuid, rk[i], sn.data + at[i], pn[i], &parts, why, sizeof why))
      return -1;
    pt[i][1] = body->len - pt[i][0];
    free(rk[i]);
  }
  p2q_buf_puts(body, "]}");
  for (int k = 0; k < 3; k++) {
    for (int i = 0; i < B; i++) {
      const char *p = sn.data + at[i];
      if (k == 0) data[i] = p, len[i] = place[i];
      else if (k == 1) data[i] = body->data + vt[i][0], len[i] = vt[i][1];
      else data[i] = p + place[i] + 4, len[i] = pn[i] - place[i] - 4;
    }
    p2q_hash64_many_cont(data, len, k ? hs : NULL, B, hs);
  }
  for (int i = 0; i < B; i++) p2q_point_set_hash(body->data + pt[i][0], pt[i][1], hs[i]);
  p2q_buf_free(&sn);
  return 0;
}

int main(int argc, char **argv) {
  int batches = 40, reps = 5, direct = 1;
  /* the daemon's batch buffers come back from its heap (~16 page faults per 1,000 events in a
     drain); glibc would mmap and unmap this loop's every time (a fault per 4 KB touched) */
  mallopt(M_MMAP_THRESHOLD, 64 << 20);
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
  const char *kind = "bench";
  int columns = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--batches")) batches = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--values")) kind = argv[i + 1];
    else if (!strcmp(argv[i], "--flow")) direct = strcmp(argv[i + 1], "splice") != 0;
    else if (!strcmp(argv[i], "--reuse")) reuse = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--columns")) columns = atoi(argv[i + 1]);
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
  /* 1: the drain's rule, columns = id, seq, pad (the payload filter's key comparisons); 2: id, pad
     (seq filtered out) */
  const char *cols[] = {"id", "seq", "pad"};
  for (int i = 0; columns && i < 3; i++)
    if (columns == 1 || i != 1) p2q_strlist_add(&r.columns, cols[i], strlen(cols[i]));
  p2q_buf_t b1 = P2Q_BUF_INIT, b2 = P2Q_BUF_INIT; /* both flows send the same bytes */
  if (batch_splice(&b1, &r, snaps, keys, bins) || batch_direct(&b2, &r, snaps, keys, bins) || b1.len != b2.len ||
      memcmp(b1.data, b2.data, b1.len)) {
    fprintf(stderr, "the two flows' request bodies differ (or a batch failed)\n");
    return 1;
  }
  size_t bytes = b1.len;
  uint64_t body_hash = p2q_hash64(b1.data, b1.len); /* the same bytes as another build's? */
  p2q_buf_free(&b1), p2q_buf_free(&b2);
  double best = 1e9;
  for (int rep = 0; rep < reps; rep++) {
    double t0 = cpu_s();
    for (int k = 0; k < batches; k++) {
      p2q_buf_t body = P2Q_BUF_INIT;
      if ((direct ? batch_direct : batch_splice)(&body, &r, snaps, keys, bins)) { fprintf(stderr, "batch failed\n"); return 1; }
      p2q_buf_free(&body);
    }
    double t = (cpu_s() - t0) / ((double)batches * B) * 1e6;
    if (t < best) best = t;
  }
  printf("RESULT values=%s flow=%s chunk=%d events=%d us_per_event=%.2f body_bytes_per_event=%zu body_hash=%016llx\n", kind,
         direct ? "direct" : "splice", chunk, batches * B, best, bytes / B, (unsigned long long)body_hash);
  p2q_strlist_free(&r.columns);
  return 0;
}

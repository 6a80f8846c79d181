/*
 * bench_chunk.c — what cutting a chunked rule's text costs the loop thread (worker_chunk.c):
 * the word-piece tokenizer with and without per-piece source spans (p2q_wordpiece_encode vs
 * p2q_wordpiece_encode_spans) and the window cut (p2q_chunk_cut), on a ~1 MB mixed text
 * (English words, accented words, CJK, an emoji every few sentences), best of --reps runs.
 * Output: "RESULT key=value …" lines and a readable summary in MB/s of input text.
 * Usage: bench_chunk [--model DIR] [--reps N]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pg2qdrant/chunk.h"
#include "pg2qdrant/errors.h"
#include "pg2qdrant/wordpiece.h"

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static const char *const k_parts[] = {
    "the river runs past the old mill and into the sea", "caf\xc3\xa9 cr\xc3\xa8me br\xc3\xbbl\xc3\xa9" "e",
    "\xe6\x9d\xb1\xe4\xba\xac\xe9\x83\xbd\xe3\x81\xae\xe5\xa4\xa9\xe6\xb0\x97", "unaffable supercalifragilistic words",
    "\xf0\x9f\x98\x80", "numbers 12345 and QZX-7731 codes,", "d\xc3\xa9j\xc3\xa0 vu; na\xc3\xafve fa\xc3\xa7" "ade."};

int main(int argc, char **argv) {
  const char *dir = "models/all-MiniLM-L6-v2";
  int reps = 5;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--model")) dir = argv[i + 1];
    else if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
  }
  char path[4200];
  snprintf(path, sizeof path, "%s/vocab.txt", dir);
  p2q_wordpiece_t *wp;
  if (p2q_wordpiece_load(path, &wp)) { fprintf(stderr, "cannot load %s\n", path); return 1; }
  size_t cap = 1u << 20, len = 0;
  char *text = malloc(cap + 256);
  for (unsigned k = 0; len < cap; k = k * 1103515245u + 12345u) {
    const char *p = k_parts[(k >> 16) % (sizeof k_parts / sizeof k_parts[0])];
    size_t l = strlen(p);
    memcpy(text + len, p, l);
    len += l;
    text[len++] = ((k >> 8) & 7) == 0 ? '\n' : ' ';
  }
  int max = (int)len + 2, n = 0;
  int32_t *ids = malloc(sizeof *ids * (size_t)max);
  p2q_wordpiece_span_t *sp = malloc(sizeof *sp * (size_t)max);
  p2q_chunk_t *ch = malloc(sizeof *ch * (size_t)max);
  double best[3] = {1e9, 1e9, 1e9};
  int nc = 0;
  for (int r = 0; r < reps; r++) {
    double t0 = now_s();
    if (p2q_wordpiece_encode(wp, text, len, ids, max, &n)) return 1;
    double t1 = now_s();
    if (p2q_wordpiece_encode_spans(wp, text, len, ids, sp, max, &n)) return 1;
    double t2 = now_s();
    nc = p2q_chunk_cut(text, sp + 1, n - 2, 256 - 2, 32, ch, max);
    double t3 = now_s();
    if (nc < 1) return 1;
    if (t1 - t0 < best[0]) best[0] = t1 - t0;
    if (t2 - t1 < best[1]) best[1] = t2 - t1;
    if (t3 - t2 < best[2]) best[2] = t3 - t2;
  }
  double mb = (double)len / 1e6;
  printf("RESULT bytes=%zu pieces=%d chunks=%d encode_mbps=%.1f encode_spans_mbps=%.1f cut_mbps=%.1f\n", len, n - 2,
         nc, mb / best[0], mb / best[1], mb / best[2]);
  printf("%.2f MB, %d pieces, %d chunks of <= 254 pieces (overlap 32): encode %.1f MB/s, encode with spans "
         "%.1f MB/s, cut %.1f MB/s (best of %d)\n", mb, n - 2, nc, mb / best[0], mb / best[1], mb / best[2], reps);
  free(ids); free(sp); free(ch); free(text);
  p2q_wordpiece_free(wp);
  return 0;
}

/*
 * chunk.c — chunk windows (see chunk.h). Pure; any thread.
 */
#include "pg2qdrant/chunk.h"
#include "pg2qdrant/errors.h"

#include <string.h>

/* The rank of the boundary before piece k: 0 a line break lies between pieces k-1 and k, 1 piece
   k-1 is . ! ? (or 。！？), 2 neither (not a sentence end). */
static int boundary_rank(const char *text, const p2q_wordpiece_span_t *pieces, int k) {
  const char *p = text + pieces[k - 1].start;
  size_t n = pieces[k - 1].end - pieces[k - 1].start;
  if (pieces[k].start > pieces[k - 1].end &&
      memchr(text + pieces[k - 1].end, '\n', pieces[k].start - pieces[k - 1].end) != NULL)
    return 0;
  if (n == 1 && (*p == '.' || *p == '!' || *p == '?')) return 1;
  if (n == 3 && (!memcmp(p, "\xe3\x80\x82", 3) || !memcmp(p, "\xef\xbc\x81", 3) || !memcmp(p, "\xef\xbc\x9f", 3)))
    return 1;
  return 2;
}

/* FNV-1a 32 of the (up to) 24 bytes of text before piece k: the content that names a boundary. */
static uint32_t boundary_hash(const char *text, const p2q_wordpiece_span_t *pieces, int k) {
  uint32_t e = pieces[k - 1].end, b = e > 24 ? e - 24 : 0, h = 2166136261u;
  for (uint32_t i = b; i < e; i++) h = (h ^ (unsigned char)text[i]) * 16777619u;
  return h;
}

/* Where window [s, e) (e < m) ends: among the word starts w in (lo, e] that follow a line break
   or a sentence end, the strongest (line break first), then the one whose preceding text hashes
   lowest — a choice made by the content, not by the position, so windows that start at
   different places after an edit soon pick the same boundary again (winnowing); none: e. */
static int content_boundary(const char *text, const p2q_wordpiece_span_t *pieces, int lo, int e) {
  int best = e, best_rank = 2;
  uint32_t best_hash = 0;
  for (int w = e; w > lo; w--) {
    if (!pieces[w].word_start) continue;
    int r = boundary_rank(text, pieces, w);
    if (r == 2 || r > best_rank) continue;
    uint32_t h = boundary_hash(text, pieces, w);
    if (r < best_rank || h < best_hash) { best = w; best_rank = r; best_hash = h; }
  }
  return best_rank < 2 ? best : -1;
}

int p2q_chunk_cut(const char *text, const p2q_wordpiece_span_t *pieces, int m, int chunk_tokens, int overlap,
                  p2q_chunk_t *out, int cap) {
  if (chunk_tokens <= 0 || overlap < 0 || overlap >= chunk_tokens || m < 0 || (m && !pieces) || cap < 1)
    return P2Q_EINVAL;
  int n = 0, s = 0;
  if (m == 0) {
    out[0] = (p2q_chunk_t){0, 0, 0, 0};
    return 1;
  }
  for (;;) {
    int e = s + chunk_tokens < m ? s + chunk_tokens : m;
    if (e < m) { /* end at a content-chosen line break or sentence end that keeps at least half the
                    step (chunk_tokens - overlap), else before the word cut at e, unless that word
                    began at s (longer than a chunk) */
      int w = text ? content_boundary(text, pieces, s + overlap + (chunk_tokens - overlap) / 2, e) : -1;
      if (w < 0)
        for (w = e; w > s && !pieces[w].word_start;) w--;
      if (w > s) e = w;
    }
    if (n == cap) return P2Q_ERANGE;
    uint32_t end = pieces[s].end; /* pieces' ends never decrease, but a merged code point may be shared */
    for (int k = s; k < e; k++)
      if (pieces[k].end > end) end = pieces[k].end;
    out[n++] = (p2q_chunk_t){s, e - s, pieces[s].start, end};
    if (e >= m) break;
    int ns = e - overlap > s ? e - overlap : s + 1;
    while (ns < e && !pieces[ns].word_start) ns++; /* start on a word: less overlap, never more */
    s = ns;
  }
  return n;
}

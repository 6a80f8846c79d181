/*
 * chunk.c — chunk windows (see chunk.h). Pure; any thread.
 */
#include "pg2qdrant/chunk.h"
#include "pg2qdrant/errors.h"

#include <string.h>

int p2q_chunk_windows(int m, int chunk_tokens, int overlap) {
  if (chunk_tokens <= 0 || overlap < 0 || overlap >= chunk_tokens) return P2Q_EINVAL;
  int step = chunk_tokens - overlap;
  return m <= chunk_tokens ? 1 : 1 + (m - chunk_tokens + step - 1) / step;
}

void p2q_chunk_window(int m, int chunk_tokens, int overlap, int j, int *start, int *len) {
  int s = j * (chunk_tokens - overlap);
  int l = m - s < chunk_tokens ? m - s : chunk_tokens;
  *start = s;
  *len = l < 0 ? 0 : l;
}

/* Does a sentence end between pieces k-1 and k: piece k-1 is . ! ? (or 。！？), or a line break
   lies between them? */
static int sentence_end(const char *text, const p2q_wordpiece_span_t *pieces, int k) {
  const char *p = text + pieces[k - 1].start;
  size_t n = pieces[k - 1].end - pieces[k - 1].start;
  if (n == 1 && (*p == '.' || *p == '!' || *p == '?')) return 1;
  if (n == 3 && (!memcmp(p, "\xe3\x80\x82", 3) || !memcmp(p, "\xef\xbc\x81", 3) || !memcmp(p, "\xef\xbc\x9f", 3)))
    return 1;
  return pieces[k].start > pieces[k - 1].end &&
         memchr(text + pieces[k - 1].end, '\n', pieces[k].start - pieces[k - 1].end) != NULL;
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
    if (e < m) { /* end at the last sentence end of the window's second half, else before the word cut
                    at e, unless that word began at s (longer than a chunk) */
      int w = e, half = s + chunk_tokens / 2;
      while (text && w > half && !(pieces[w].word_start && sentence_end(text, pieces, w))) w--;
      if (!text || w <= half)
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

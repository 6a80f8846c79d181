/*
 * chunk.c — chunk windows (see chunk.h). Pure; any thread.
 */
#include "pg2qdrant/chunk.h"
#include "pg2qdrant/errors.h"

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

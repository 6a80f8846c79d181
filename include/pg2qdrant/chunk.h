/*
 * chunk.h — the windows a chunked text is cut into (pure, any thread): used by the minilm model
 * (minilm.c) and the embedder interface (embedder.c), below both.
 */
#ifndef P2Q_CHUNK_H
#define P2Q_CHUNK_H

/* How many windows of chunk_tokens, overlapping by overlap, cover m content tokens (an empty text
 * is one window; P2Q_EINVAL for bad sizes), and where window j starts and how long it is. */
int p2q_chunk_windows(int m, int chunk_tokens, int overlap);
void p2q_chunk_window(int m, int chunk_tokens, int overlap, int j, int *start, int *len);

#endif

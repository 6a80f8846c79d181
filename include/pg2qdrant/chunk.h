/*
 * chunk.h — the windows a chunked text is cut into (pure, any thread), by the worker
 * (worker_chunk.c).
 *
 * p2q_chunk_cut: a text's word pieces (wordpiece.h spans, [CLS]/[SEP] excluded) are cut into
 * windows of at most chunk_tokens pieces, each starting `overlap` pieces before the previous one
 * ended. A window that does not reach the end of the text ends at a boundary chosen by content
 * among those that keep at least half of its step (chunk_tokens - overlap: so at most about twice
 * the windows of fixed steps): a line break first, else a sentence end (after . ! ? 。！？); among
 * equals the one whose preceding 24 bytes hash lowest (winnowing); without one, before the word
 * cut at chunk_tokens. It never starts inside a word (it starts at the next word: a little less
 * overlap). Only a word longer than a whole chunk (more than chunk_tokens pieces; a word has at
 * most 100, see wordpiece.h) is cut. Choosing the end by content re-synchronises the windows
 * after an edit: windows that start at different places soon pick the same boundary again, and
 * from there on are the same as before the edit (worker_reuse.c then keeps their vectors). A chunk's text is the input's bytes [start, end): from the first byte
 * of its first piece to the last byte of its last piece — an exact substring of the text (whole
 * UTF-8 code points), without the whitespace around it; windows that overlap in pieces overlap
 * in text. Tokenizing a chunk's text again gives exactly its pieces (the windows hold whole
 * words), so embedding the chunk's text is embedding its window. An empty (or piece-less, e.g.
 * whitespace-only) text is one empty chunk (0, 0, 0, 0); the worker writes no point for it.
 */
#ifndef P2Q_CHUNK_H
#define P2Q_CHUNK_H

#include <stdint.h>

#include "pg2qdrant/wordpiece.h"

typedef struct {
  int first, count;    /* pieces [first, first + count) of the text (0 = the first after [CLS]) */
  uint32_t start, end; /* bytes of the text */
} p2q_chunk_t;

/* Cut m pieces (pieces[0..m)) of text into chunks out[0..cap): the number of chunks, P2Q_EINVAL
 * for bad sizes, P2Q_ERANGE when cap is too small (cap >= m, and >= 1, always suffices). text
 * NULL: no sentence ends (word boundaries only). */
int p2q_chunk_cut(const char *text, const p2q_wordpiece_span_t *pieces, int m, int chunk_tokens, int overlap,
                  p2q_chunk_t *out, int cap);

#endif

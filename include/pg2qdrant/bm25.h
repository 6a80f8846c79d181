/*
 * bm25.h — the keyword analyzer of `sparse = bm25` rules: text → BM25 term-frequency sparse
 * vector (pure; any thread, one analyzer per thread; unit-tested in tests/unit/test_bm25.c).
 *
 * Pipeline, in Qdrant's order for its server-side `qdrant/bm25` model:
 *   1. words: maximal runs of letters and digits in the UTF-8 text (everything else splits:
 *      spaces, punctuation, symbols, combining marks; invalid UTF-8 bytes split too);
 *   2. lowercase (ASCII, Latin-1, Latin Extended-A and Additional, Greek, Cyrillic, Armenian,
 *      full-width Latin);
 *   3. optional English stop words (NLTK's list, as fastembed and Qdrant use);
 *   4. optional English Snowball (Porter2) stemmer (libstemmer, the same algorithm as
 *      rust-stemmers in Qdrant and fastembed);
 *   5. token id = |(int32) murmur3_32(token, seed 0)| (as Qdrant and fastembed), value =
 *      tf·(k1+1) / (tf + k1·(1 − b + b·doc_len/avg_len)), doc_len = tokens after 3–4.
 * IDF is not computed here: the collection's sparse vector has `modifier: idf` and Qdrant
 * applies it at query time, so a document's vector never depends on the others.
 */
#ifndef P2Q_BM25_H
#define P2Q_BM25_H

#include <stddef.h>
#include <stdint.h>

#include "pg2qdrant/buf.h"

typedef struct {
  double k1;        /* term-frequency saturation (Qdrant's default 1.2) */
  double b;         /* length normalisation, 0..1 (0.75) */
  double avg_len;   /* expected average document length in tokens (256) */
  int stopwords;    /* drop English stop words */
  int stem;         /* English Snowball stemmer */
} p2q_bm25_opts_t;

typedef struct p2q_bm25_s p2q_bm25_t;

/* The defaults of Qdrant's qdrant/bm25: k1 1.2, b 0.75, avg_len 256, stop words and stemmer on. */
void p2q_bm25_defaults(p2q_bm25_opts_t *o);
int p2q_bm25_new(const p2q_bm25_opts_t *o, p2q_bm25_t **out);
void p2q_bm25_free(p2q_bm25_t *a);

/* MurmurHash3 x86 32-bit. */
uint32_t p2q_murmur3_32(const void *data, size_t len, uint32_t seed);
/* A token's sparse index: |(int32) murmur3_32(token, 0)| (0 .. 2^31). */
uint32_t p2q_bm25_token_id(const char *tok, size_t len);

/* The analyzed tokens of text, each followed by '\n' (tests, `pg2qdrant embed`). Returns the
   count or a negative error. */
int p2q_bm25_tokens(p2q_bm25_t *a, const char *text, size_t len, p2q_buf_t *out);

/* {"indices":[…],"values":[…]} (indices ascending) for a document. Returns the number of
   distinct terms (0: an empty vector, still written) or a negative error. */
int p2q_bm25_document(p2q_bm25_t *a, const char *text, size_t len, p2q_buf_t *out);

/* Query side (unit weights, as Qdrant's query embedding): unique token ids, ascending. */
int p2q_bm25_query(p2q_bm25_t *a, const char *text, size_t len, p2q_buf_t *out);

#endif

/*
 * wordpiece.h — BERT uncased tokenizer, bit-exact with HF `tokenizers`
 * (BertNormalizer + BertPreTokenizer + WordPiece + [CLS]/[SEP] template), as used by
 * sentence-transformers for all-MiniLM-L6-v2.
 *
 * Pipeline for one text:
 *   1. The special tokens [PAD] [UNK] [CLS] [SEP] [MASK] (when in the vocabulary) are matched
 *      verbatim in the raw text and emitted as their ids, like HF's added-token matching.
 *   2. Normalise each code point: drop controls/format chars/NUL/U+FFFD, map whitespace to ' ',
 *      surround CJK ideographs with spaces, NFD + drop non-spacing marks, lowercase.
 *   3. Split on whitespace; every punctuation char is its own word.
 *   4. WordPiece: greedy longest match with "##" continuations; a word that cannot be fully
 *      matched, or has more than 100 chars, becomes one [UNK].
 *   5. Keep the first max_ids-2 pieces and wrap them in [CLS] … [SEP].
 * The per-code-point tables are generated from `tokenizers` itself (scripts/gen-wordpiece-tables).
 * Leading/trailing whitespace (sentence-transformers' strip()) produces no pieces anyway.
 *
 * Inputs are (pointer, length) byte strings that must be valid UTF-8 (no overlongs, no
 * surrogates): invalid input is P2Q_EUTF8 wherever the bad byte is. Embedded NUL bytes are
 * valid UTF-8 and are dropped (as HF drops U+0000). Texts longer than P2Q_WORDPIECE_MAX_TEXT
 * bytes are P2Q_ETOOLONG; otherwise work is bounded: the scan stops once max_ids are filled.
 * An empty or whitespace-only text encodes as [CLS][SEP].
 *
 * Thread-safety: the vocabulary is immutable after load; p2q_wordpiece_encode() may run
 * concurrently from any number of threads.
 */
#ifndef P2Q_WORDPIECE_H
#define P2Q_WORDPIECE_H

#include <stddef.h>
#include <stdint.h>

#define P2Q_WORDPIECE_MAX_TEXT (64u * 1024u * 1024u)
#define P2Q_WORDPIECE_MAX_WORD_CHARS 100

typedef struct p2q_wordpiece_s p2q_wordpiece_t;

/* Load vocab.txt: one token per line, id = line number (0-based); LF or CRLF line ends,
 * trailing whitespace trimmed (as the Rust reader does); a duplicate token keeps its last id.
 * Requires [UNK], [CLS] and [SEP]: otherwise P2Q_EVOCAB (logged). */
int p2q_wordpiece_load(const char *vocab_path, p2q_wordpiece_t **out);
int p2q_wordpiece_from_buffer(const char *buf, size_t len, p2q_wordpiece_t **out);
void p2q_wordpiece_free(p2q_wordpiece_t *wp);

/* The normaliser (tokenizer.json's BertNormalizer): lowercase = 1 is the default (lowercase +
 * NFD + strip accents, as strip_accents = null follows lowercase); 0 is a cased vocabulary (clean
 * text only: nothing is decomposed, stripped or lowercased). chinese_chars = 0 stops spacing CJK
 * ideographs. Call once after loading, before encoding. */
void p2q_wordpiece_set_normalizer(p2q_wordpiece_t *wp, int lowercase, int chinese_chars);

size_t p2q_wordpiece_vocab_size(const p2q_wordpiece_t *wp);
/* Id of an exact token string, or -1. */
int32_t p2q_wordpiece_token_id(const p2q_wordpiece_t *wp, const char *tok, size_t len);

/* Encode text into ids = [CLS] pieces… [SEP] with at most max_ids ids (max_ids >= 2;
 * sentence-transformers uses 256). *n_out receives the count. Returns 0, P2Q_EINVAL,
 * P2Q_EUTF8 or P2Q_ETOOLONG. Never allocates. */
int p2q_wordpiece_encode(const p2q_wordpiece_t *wp, const char *text, size_t len,
                         int32_t *ids, int max_ids, int *n_out);

/* Where a piece came from in the input: the bytes [start, end) of the input code points its
 * normalised characters were made from (a code point normalised into several characters, e.g. a
 * Hangul syllable, belongs whole to every piece holding one of them; code points normalised away
 * inside a word, e.g. combining accents, belong to the piece of the character before them), and
 * whether it starts a word (not a "##" continuation; [UNK] and special tokens do). A whole-word
 * [UNK] spans the word; a special token its literal. [CLS] is (0, 0), [SEP] (len, len). */
typedef struct { uint32_t start, end; uint8_t word_start; } p2q_wordpiece_span_t;

/* p2q_wordpiece_encode() plus spans[k] for ids[k] (spans may be NULL: then exactly encode).
 * The ids are the same as p2q_wordpiece_encode()'s. */
int p2q_wordpiece_encode_spans(const p2q_wordpiece_t *wp, const char *text, size_t len, int32_t *ids,
                               p2q_wordpiece_span_t *spans, int max_ids, int *n_out);

#endif

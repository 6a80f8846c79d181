/*
 * minilm.h — all-MiniLM-L6-v2 sentence embeddings in C, matching sentence-transformers
 * (token ids identical, cosine >= 0.99999 per vector).
 *
 * Model: BERT (6 layers, hidden 384, 12 heads, FFN 1536, exact-erf GELU, post-LN eps 1e-12),
 * mean pooling over the tokens of each text (incl. [CLS]/[SEP]), then L2 normalisation.
 * Texts are tokenized by wordpiece.h and truncated to 256 tokens incl. [CLS]/[SEP].
 * An empty or whitespace-only text is embedded as [CLS][SEP] — exactly what
 * sentence-transformers returns for "" — so it yields a valid unit vector, not an error.
 *
 * Performance: all tokens of a call are packed into one matrix (no padding) so every dense
 * layer is one large cblas_sgemm; attention runs per text and head (sgemm + vectorised softmax).
 * Calls larger than max_batch_tokens tokens are processed in consecutive chunks (memory stays
 * bounded: ~15 KiB of scratch per token). Chunks of <= 128 tokens (e.g. one short text) use a
 * built-in kernel on pre-packed weights instead, because OpenBLAS re-packs the whole weight
 * matrix on every call (2x faster at batch 1). The model holds ~90 MB mapped + ~45 MB of
 * packed weight copies.
 *
 * Threading: the model is read-only after p2q_minilm_load(); any number of threads may call
 * p2q_minilm_embed() concurrently (each call allocates its own scratch). OpenBLAS's own
 * threading is process-global: see p2q_minilm_set_blas_threads().
 *
 * Typical use (e.g. the embed CLI):
 *   p2q_minilm_t *m;  if ((rc = p2q_minilm_load(dir, &m)) < 0) fail(p2q_strerror(rc));
 *   float v[2 * P2Q_MINILM_DIM];
 *   const char *t[2] = {"hello", "world"};
 *   rc = p2q_minilm_embed(m, t, NULL, 2, v, NULL);
 *   p2q_minilm_free(m);
 */
#ifndef P2Q_MINILM_H
#define P2Q_MINILM_H

#include <stddef.h>
#include <stdint.h>

#define P2Q_MINILM_DIM 384
#define P2Q_MINILM_MAX_TOKENS 256          /* sentence-transformers' max_seq_length */
#define P2Q_MINILM_DEFAULT_BATCH_TOKENS 1024 /* measured: 512–1024 beat 4096 by ~15% on short texts */

typedef struct p2q_minilm_s p2q_minilm_t;

typedef struct {
  int max_tokens;           /* 2..512, tokens per text incl. [CLS]/[SEP]; 0 → 256 */
  size_t max_batch_tokens;  /* tokens per forward chunk; 0 → P2Q_MINILM_DEFAULT_BATCH_TOKENS */
} p2q_minilm_opts_t;

/* Load `dir`/model.safetensors (mmap) and `dir`/vocab.txt. Tensor names may carry a "bert." or
 * "auto_model." prefix. Errors: P2Q_ENOENT, P2Q_EIO, P2Q_EMODEL (missing/mis-shaped tensor, logged),
 * P2Q_EVOCAB, P2Q_ENOMEM. */
int p2q_minilm_load(const char *dir, p2q_minilm_t **out);
void p2q_minilm_free(p2q_minilm_t *m);

/* Embed n texts into out[n * 384] (unit vectors). lens may be NULL (then texts are
 * NUL-terminated); otherwise lens[i] bytes are read and may include NULs (dropped, as HF does).
 * status: optional int[n]. When given, a text that cannot be tokenized (P2Q_EUTF8, P2Q_ETOOLONG)
 * gets its code in status[i] and a zero vector, the others are embedded, and the call returns 0;
 * when NULL, the first such text fails the whole call with its code.
 * Other errors: P2Q_EINVAL, P2Q_ENOMEM. */
int p2q_minilm_embed(p2q_minilm_t *m, const char *const *texts, const size_t *lens, int n,
                     float *out, int *status);
int p2q_minilm_embed_opts(p2q_minilm_t *m, const char *const *texts, const size_t *lens, int n,
                          float *out, int *status, const p2q_minilm_opts_t *opts);

/* Token ids exactly as fed to the model ([CLS] … [SEP], at most max_ids, 256 for the model). */
int p2q_minilm_tokenize(const p2q_minilm_t *m, const char *text, size_t len, int32_t *ids,
                        int max_ids, int *n_out);

/* Tokenized batches: tokenize n texts once (any thread), then embed ranges of the resulting
 * sequences from any number of threads into one output. Sequence k belongs to the k-th text
 * that tokenized (row = its text index). status as for
 * p2q_minilm_embed_opts (NULL: the first bad text fails the call). Rows of failed texts are
 * never written. */
typedef struct p2q_minilm_batch_s p2q_minilm_batch_t;
int p2q_minilm_batch_new(const p2q_minilm_t *m, const char *const *texts, const size_t *lens, int n,
                         int *status, const p2q_minilm_opts_t *opts, p2q_minilm_batch_t **out);
int p2q_minilm_batch_count(const p2q_minilm_batch_t *b);  /* sequences */
long p2q_minilm_batch_tokens(const p2q_minilm_batch_t *b); /* tokens of the texts, incl. [CLS]/[SEP] */
/* Cut the sequences into <= parts contiguous ranges of about equal tokens: cut[0] = 0 < … <
 * cut[k] = count; returns k (cut needs parts + 1 ints). */
int p2q_minilm_batch_split(const p2q_minilm_batch_t *b, int parts, int *cut);
/* Embed sequences [from, from + count) into their rows of out (rows × dim floats). */
int p2q_minilm_batch_embed(p2q_minilm_t *m, const p2q_minilm_batch_t *b, int from, int count, float *out,
                           const p2q_minilm_opts_t *opts);
void p2q_minilm_batch_free(p2q_minilm_batch_t *b);

/* The model's output dimension (hidden_size). */
int p2q_minilm_dim(const p2q_minilm_t *m);
/* The model's tokenizer (immutable: any thread). */
const struct p2q_wordpiece_s *p2q_minilm_wordpiece(const p2q_minilm_t *m);

/* Process-wide OpenBLAS thread count (openblas_set_num_threads). The embedding pool sets 1 and
 * parallelises across calls; a single-caller tool may give one call every core. */
void p2q_minilm_set_blas_threads(int n);
int p2q_minilm_blas_threads(void);

#endif

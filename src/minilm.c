/*
 * minilm.c — all-MiniLM-L6-v2 forward pass on OpenBLAS (see minilm.h).
 *
 * Owns: the safetensors mapping, the vocabulary, a fused QKV weight copy per layer and a
 * panel-packed copy of every dense weight (small-chunk path).
 * Thread: load/free on one thread; embed on any number of threads concurrently — the model is
 * never written after load and every call allocates its own scratch.
 * Layout: the tokens of all texts in a chunk are packed row-wise into one [T, 384] matrix;
 * dense layers are single sgemm calls over T rows; attention reads each text's own rows.
 * Linear weights are [out, in], so y = x·Wᵀ + b is sgemm(NoTrans, Trans).
 */
#include "pg2qdrant/minilm.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "minilm_kernels.h"
#include "pg2qdrant/blas_kernel.h"
#include "pg2qdrant/errors.h"
#include "pg2qdrant/log.h"
#include "pg2qdrant/model_config.h"
#include "pg2qdrant/safetensors.h"
#include "pg2qdrant/wordpiece.h"

/* The model's sizes (model_config.h); every function using them has the model `m` in scope. */
#define HID (m->c.hidden)
#define NHEAD (m->c.heads)
#define HDIM (m->c.hidden / m->c.heads)
#define FFN (m->c.ffn)
#define NLAYER (m->c.layers)
#define QKV (3 * m->c.hidden)
#define MAXPOS (m->c.max_pos)
#define LN_EPS (m->c.eps)

typedef struct {
  const float *w;  /* [out, in] row-major, for cblas_sgemm (large chunks) */
  float *wp;       /* the same, packed in 16-column panels for small chunks (owned) */
  const float *b;
  int out, in;
} ml_dense_t;

typedef struct {
  float *wqkv, *bqkv;                      /* fused [3H, H] and [3H], owned */
  ml_dense_t qkv, o, ffn1, ffn2;
  const float *ln1w, *ln1b, *ln2w, *ln2b;
} ml_layer_t;

/* Below this many tokens per chunk the packed small-M kernel beats OpenBLAS, which re-packs
 * the whole weight matrix on every call (measured: 2× at 16 tokens, 1.1× at 128, slower at 256). */
#ifndef ML_SMALL_M
#define ML_SMALL_M 128
#endif

struct p2q_minilm_s {
  p2q_safetensors_t *st;
  p2q_wordpiece_t *wp;
  const float *we, *pe, *te, *lnw, *lnb;
  int vocab;
  p2q_model_cfg_t c;
  ml_layer_t *layer;  /* c.layers */
};

typedef struct { float *x, *qkv, *ctx, *a, *h, *s; } ml_scratch_t;

/* ---- loading --------------------------------------------------------------------------- */

static int ml_get(const p2q_minilm_t *m, const char *name, int ndim, int64_t d0, int64_t d1,
                  const float **out) {
  static const char *const prefixes[] = {"", "bert.", "auto_model.", "0.auto_model.", "model."};
  int64_t shape[2] = {d0, d1};
  char full[160];
  for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++) {
    snprintf(full, sizeof full, "%s%s", prefixes[i], name);
    if (p2q_safetensors_find(m->st, full)) return p2q_safetensors_get_f32(m->st, full, ndim, shape, out);
  }
  return p2q_safetensors_get_f32(m->st, name, ndim, shape, out); /* logs "missing tensor" */
}

static int ml_load_layer(p2q_minilm_t *m, int l) {
  ml_layer_t *L = &m->layer[l];
  const float *w[3], *b[3];
  static const char *const qkv[3] = {"query", "key", "value"};
  char n[128];
  int rc;
#define GET(field, suffix, nd, a, b2)                                             \
  do {                                                                            \
    snprintf(n, sizeof n, "encoder.layer.%d.%s", l, suffix);                      \
    if ((rc = ml_get(m, n, nd, a, b2, &(field))) != 0) return rc;                 \
  } while (0)
  for (int i = 0; i < 3; i++) {
    char s1[64], s2[64];
    snprintf(s1, sizeof s1, "attention.self.%s.weight", qkv[i]);
    snprintf(s2, sizeof s2, "attention.self.%s.bias", qkv[i]);
    GET(w[i], s1, 2, HID, HID);
    GET(b[i], s2, 1, HID, 0);
  }
  GET(L->o.w, "attention.output.dense.weight", 2, HID, HID);
  GET(L->o.b, "attention.output.dense.bias", 1, HID, 0);
  GET(L->ln1w, "attention.output.LayerNorm.weight", 1, HID, 0);
  GET(L->ln1b, "attention.output.LayerNorm.bias", 1, HID, 0);
  GET(L->ffn1.w, "intermediate.dense.weight", 2, FFN, HID);
  GET(L->ffn1.b, "intermediate.dense.bias", 1, FFN, 0);
  GET(L->ffn2.w, "output.dense.weight", 2, HID, FFN);
  GET(L->ffn2.b, "output.dense.bias", 1, HID, 0);
  GET(L->ln2w, "output.LayerNorm.weight", 1, HID, 0);
  GET(L->ln2b, "output.LayerNorm.bias", 1, HID, 0);
#undef GET
  L->wqkv = malloc(sizeof(float) * QKV * HID);
  L->bqkv = malloc(sizeof(float) * QKV);
  if (!L->wqkv || !L->bqkv) return P2Q_ENOMEM;
  for (int i = 0; i < 3; i++) {
    memcpy(L->wqkv + (size_t)i * HID * HID, w[i], sizeof(float) * HID * HID);
    memcpy(L->bqkv + i * HID, b[i], sizeof(float) * HID);
  }
  L->qkv.w = L->wqkv;
  L->qkv.b = L->bqkv;
  L->qkv.out = QKV; L->qkv.in = HID;
  L->o.out = HID; L->o.in = HID;
  L->ffn1.out = FFN; L->ffn1.in = HID;
  L->ffn2.out = HID; L->ffn2.in = FFN;
  ml_dense_t *d[4] = {&L->qkv, &L->o, &L->ffn1, &L->ffn2};
  for (int i = 0; i < 4; i++) {
    size_t bytes = sizeof(float) * (size_t)d[i]->out * (size_t)d[i]->in;
    if (d[i]->out % 16) continue; /* the packed kernel needs 16-column panels: sgemm only */
    if (!(d[i]->wp = aligned_alloc(64, (bytes + 63) / 64 * 64))) return P2Q_ENOMEM;
    p2q_mk_pack_weights(d[i]->w, (size_t)d[i]->out, (size_t)d[i]->in, d[i]->wp);
  }
  return 0;
}

int p2q_minilm_load(const char *dir, p2q_minilm_t **out) {
  char path[4096];
  int rc = P2Q_ENOMEM;
  *out = NULL;
  char err[512];
  p2q_minilm_t *m = calloc(1, sizeof *m);
  if (!m) goto fail;
  if ((rc = p2q_model_cfg_load(dir, &m->c, err, sizeof err)) != 0) {
    char q[600];
    P2Q_ERROR("model_invalid", "dir=%s reason=%s", p2q_log_q(path, sizeof path, dir), p2q_log_q(q, sizeof q, err));
    goto fail;
  }
  rc = P2Q_ENOMEM;
  if (!(m->layer = calloc((size_t)m->c.layers, sizeof *m->layer))) goto fail;
  snprintf(path, sizeof path, "%s/model.safetensors", dir);
  if ((rc = p2q_safetensors_open(path, &m->st)) != 0) goto fail;
  snprintf(path, sizeof path, "%s/vocab.txt", dir);
  if (access(path, F_OK) != 0) { /* no vocab.txt: tokenizer.json's vocabulary */
    size_t vlen = 0;
    char *v = p2q_model_vocab_lines(dir, &vlen);
    rc = v ? p2q_wordpiece_from_buffer(v, vlen, &m->wp) : P2Q_ENOENT;
    free(v);
    if (rc) {
      P2Q_ERROR("model_invalid", "dir=%s reason=\"neither vocab.txt nor a WordPiece tokenizer.json\"",
                p2q_log_q(path, sizeof path, dir));
      goto fail;
    }
  } else if ((rc = p2q_wordpiece_load(path, &m->wp)) != 0) {
    goto fail;
  }
  p2q_wordpiece_set_normalizer(m->wp, m->c.lowercase, m->c.chinese_chars);
  const p2q_st_tensor_t *we = NULL;
  static const char *const wen[] = {"embeddings.word_embeddings.weight", "bert.embeddings.word_embeddings.weight",
                                    "auto_model.embeddings.word_embeddings.weight",
                                    "0.auto_model.embeddings.word_embeddings.weight",
                                    "model.embeddings.word_embeddings.weight"};
  for (size_t i = 0; i < sizeof wen / sizeof wen[0] && !we; i++) we = p2q_safetensors_find(m->st, wen[i]);
  rc = P2Q_EMODEL;
  if (!we || we->ndim != 2 || we->shape[1] != HID || we->shape[0] < 1 || we->shape[0] > (1 << 24)) {
    P2Q_ERROR("model_invalid", "reason=\"word_embeddings missing or not [V, hidden_size]\" hidden_size=%d", HID);
    goto fail;
  }
  m->vocab = (int)we->shape[0];
  if ((rc = ml_get(m, "embeddings.word_embeddings.weight", 2, m->vocab, HID, &m->we)) != 0 ||
      (rc = ml_get(m, "embeddings.position_embeddings.weight", 2, MAXPOS, HID, &m->pe)) != 0 ||
      (rc = ml_get(m, "embeddings.token_type_embeddings.weight", 2, m->c.type_vocab, HID, &m->te)) != 0 ||
      (rc = ml_get(m, "embeddings.LayerNorm.weight", 1, HID, 0, &m->lnw)) != 0 ||
      (rc = ml_get(m, "embeddings.LayerNorm.bias", 1, HID, 0, &m->lnb)) != 0)
    goto fail;
  if (p2q_wordpiece_vocab_size(m->wp) > (size_t)m->vocab) {
    P2Q_ERROR("model_invalid", "reason=\"vocab.txt has more tokens than word_embeddings rows\" vocab=%zu rows=%d",
              p2q_wordpiece_vocab_size(m->wp), m->vocab);
    rc = P2Q_EVOCAB;
    goto fail;
  }
  for (int l = 0; l < NLAYER; l++)
    if ((rc = ml_load_layer(m, l)) != 0) goto fail;
  p2q_blas_log_once(); /* which sgemm kernel this model will run on, and why */
  P2Q_INFO("model_loaded", "dir=%s layers=%d hidden=%d heads=%d intermediate=%d max_tokens=%d pooling=%s "
           "normalize=%d lowercase=%d vocab=%d", p2q_log_q(path, sizeof path, dir), NLAYER, HID, NHEAD, FFN,
           m->c.max_tokens, m->c.pool_cls ? "cls" : "mean", m->c.normalize, m->c.lowercase, m->vocab);
  *out = m;
  return 0;
fail:
  p2q_minilm_free(m);
  return rc;
}

void p2q_minilm_free(p2q_minilm_t *m) {
  if (!m) return;
  for (int l = 0; m->layer && l < NLAYER; l++) {
    ml_layer_t *L = &m->layer[l];
    free(L->wqkv);
    free(L->bqkv);
    free(L->qkv.wp);
    free(L->o.wp);
    free(L->ffn1.wp);
    free(L->ffn2.wp);
  }
  free(m->layer);
  p2q_wordpiece_free(m->wp);
  p2q_safetensors_close(m->st);
  free(m);
}

int p2q_minilm_dim(const p2q_minilm_t *m) { return m->c.hidden; }
const p2q_wordpiece_t *p2q_minilm_wordpiece(const p2q_minilm_t *m) { return m->wp; }

void p2q_minilm_set_blas_threads(int n) { openblas_set_num_threads(n < 1 ? 1 : n); }
int p2q_minilm_blas_threads(void) { return openblas_get_num_threads(); }

int p2q_minilm_tokenize(const p2q_minilm_t *m, const char *text, size_t len, int32_t *ids,
                        int max_ids, int *n_out) {
  return p2q_wordpiece_encode(m->wp, text, len, ids, max_ids, n_out);
}

/* ---- forward pass ---------------------------------------------------------------------- */

/* x[r] = LN(x[r] + res[r]) · w + b, biased variance, eps 1e-12 (res may be NULL). */
static void ml_add_ln(const p2q_minilm_t *m, float *x, const float *res, const float *w, const float *b,
                      size_t rows) {
  p2q_mk_add_layernorm(x, res, w, b, rows, HID, LN_EPS);
}

/* y[T, out] = x[T, in] · Wᵀ + b. The rows are pre-filled with the bias, then accumulated: by
 * cblas_sgemm with beta = 1 (no zeroing pass) or, for small T, by the packed-panel kernel. */
static void ml_linear(const ml_dense_t *d, const float *x, float *y, int T) {
  for (int t = 0; t < T; t++) memcpy(y + (size_t)t * d->out, d->b, sizeof(float) * (size_t)d->out);
  if (T <= ML_SMALL_M && d->wp)
    p2q_mk_gemm_packed(x, (size_t)T, (size_t)d->in, d->wp, (size_t)d->out, y);
  else
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, d->out, d->in, 1.0f, x, d->in, d->w,
                d->in, 1.0f, y, d->out);
}

static void ml_attention(const p2q_minilm_t *m, const float *qkv, float *ctx, float *s, const int *off,
                         const int *len, int ns) {
  const float scale = (float)(1.0 / sqrt((double)HDIM));
  for (int i = 0; i < ns; i++) {
    int L = len[i];
    const float *base = qkv + (size_t)off[i] * QKV;
    for (int h = 0; h < NHEAD; h++) {
      const float *q = base + h * HDIM, *k = base + HID + h * HDIM, *v = base + 2 * HID + h * HDIM;
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, L, L, HDIM, scale, q, QKV, k, QKV, 0.0f, s, L);
      p2q_mk_softmax_rows(s, (size_t)L, (size_t)L, (size_t)L);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, L, HDIM, L, 1.0f, s, L, v, QKV, 0.0f,
                  ctx + (size_t)off[i] * HID + h * HDIM, HID);
    }
  }
}

static void ml_layer_forward(const p2q_minilm_t *m, const ml_layer_t *Ly, ml_scratch_t *w, const int *off, const int *len,
                             int ns, int T) {
  ml_linear(&Ly->qkv, w->x, w->qkv, T);
  ml_attention(m, w->qkv, w->ctx, w->s, off, len, ns);
  ml_linear(&Ly->o, w->ctx, w->a, T);
  ml_add_ln(m, w->a, w->x, Ly->ln1w, Ly->ln1b, (size_t)T);      /* a = LN(ctx·Woᵀ + bo + x) */
  ml_linear(&Ly->ffn1, w->a, w->h, T);
  p2q_mk_gelu(w->h, (size_t)T * FFN);
  ml_linear(&Ly->ffn2, w->h, w->x, T);
  ml_add_ln(m, w->x, w->a, Ly->ln2w, Ly->ln2b, (size_t)T);      /* x = LN(h·W2ᵀ + b2 + a) */
}

/* Embed ns packed sequences (ids[off[i] .. off[i]+len[i]-1]) into out[ns * 384]. */
static void ml_forward(const p2q_minilm_t *m, const int32_t *ids, const int *off, const int *len,
                       int ns, int T, ml_scratch_t *w, float *out) {
  for (int i = 0; i < ns; i++)
    for (int p = 0; p < len[i]; p++) {
      size_t t = (size_t)off[i] + p;
      float *row = w->x + t * HID;
      const float *we = m->we + (size_t)ids[t] * HID, *pe = m->pe + (size_t)p * HID;
      for (int j = 0; j < HID; j++) row[j] = we[j] + pe[j] + m->te[j];
    }
  ml_add_ln(m, w->x, NULL, m->lnw, m->lnb, (size_t)T);
  for (int l = 0; l < NLAYER; l++) ml_layer_forward(m, &m->layer[l], w, off, len, ns, T);
  for (int i = 0; i < ns; i++) { /* pooling: [CLS]'s vector, or the mean over the text's tokens */
    double acc[P2Q_MODEL_MAX_HIDDEN];
    int np = m->c.pool_cls ? 1 : len[i];
    for (int j = 0; j < HID; j++) acc[j] = 0.0;
    for (int p = 0; p < np; p++) {
      const float *row = w->x + ((size_t)off[i] + p) * HID;
      for (int j = 0; j < HID; j++) acc[j] += row[j];
    }
    double nrm = 0.0;
    for (int j = 0; j < HID; j++) {
      acc[j] /= np;
      nrm += acc[j] * acc[j];
    }
    nrm = sqrt(nrm);
    if (nrm < 1e-12) nrm = 1e-12;
    if (!m->c.normalize) nrm = 1.0;
    for (int j = 0; j < HID; j++) out[(size_t)i * HID + j] = (float)(acc[j] / nrm);
  }
}

static int ml_scratch_alloc(const p2q_minilm_t *m, ml_scratch_t *w, size_t T, size_t maxlen) {
  size_t per = (size_t)HID * 3 + QKV + FFN;
  float *p = malloc(sizeof(float) * (T * per + maxlen * maxlen));
  if (!p) return P2Q_ENOMEM;
  w->x = p;
  w->qkv = w->x + T * HID;
  w->ctx = w->qkv + T * QKV;
  w->a = w->ctx + T * HID;
  w->h = w->a + T * HID;
  w->s = w->h + T * FFN;
  return 0;
}

/* Embed n sequences; sequence i's vector goes to out row rows[i] (rows NULL: row i). */
static int ml_embed_seqs(p2q_minilm_t *m, const int32_t *const *ids, const int *n_ids, int n,
                         float *out, const int *rows, const p2q_minilm_opts_t *opts) {
  size_t chunk = opts && opts->max_batch_tokens ? opts->max_batch_tokens : P2Q_MINILM_DEFAULT_BATCH_TOKENS;
  int rc = P2Q_EINVAL, maxlen = 0;
  int32_t *packed = NULL;
  int *off = NULL, *len = NULL;
  float *tmp = NULL;
  ml_scratch_t w = {0};
  if (!m || n < 0 || (n && (!ids || !n_ids || !out))) return P2Q_EINVAL;
  if (n == 0) return 0;
  size_t total = 0;
  for (int i = 0; i < n; i++) {
    if (n_ids[i] < 2 || n_ids[i] > MAXPOS || !ids[i]) return P2Q_EINVAL;
    for (int p = 0; p < n_ids[i]; p++)
      if (ids[i][p] < 0 || ids[i][p] >= m->vocab) return P2Q_EINVAL;
    total += (size_t)n_ids[i];
    if (n_ids[i] > maxlen) maxlen = n_ids[i];
  }
  if (chunk < (size_t)maxlen) chunk = (size_t)maxlen;
  if (chunk > total) chunk = total;
  if (chunk > (1u << 22)) return P2Q_ERANGE;
  rc = P2Q_ENOMEM;
  packed = malloc(sizeof *packed * chunk);
  off = malloc(sizeof *off * (size_t)n);
  len = malloc(sizeof *len * (size_t)n);
  if (rows && !(tmp = malloc(sizeof(float) * HID * (size_t)n))) goto fail;
  if (!packed || !off || !len || ml_scratch_alloc(m, &w, chunk, (size_t)maxlen) != 0) goto fail;
  for (int i = 0; i < n;) {
    int ns = 0, T = 0;
    while (i + ns < n && (size_t)T + (size_t)n_ids[i + ns] <= chunk) {
      off[ns] = T;
      len[ns] = n_ids[i + ns];
      memcpy(packed + T, ids[i + ns], sizeof *packed * (size_t)len[ns]);
      T += len[ns];
      ns++;
    }
    ml_forward(m, packed, off, len, ns, T, &w, rows ? tmp : out + (size_t)i * HID);
    for (int k = 0; rows && k < ns; k++)
      memcpy(out + (size_t)rows[i + k] * HID, tmp + (size_t)k * HID, sizeof(float) * HID);
    i += ns;
  }
  rc = 0;
fail:
  free(w.x);
  free(tmp);
  free(packed);
  free(off);
  free(len);
  return rc;
}

/* ---- tokenized batches (tokenize once, embed in ranges from any thread) ------------------- */

struct p2q_minilm_batch_s {
  int nseq, cap;
  const int32_t **seq; /* into ids */
  int *nids, *row;
  int32_t *ids;        /* all sequences, concatenated */
  size_t nid, idcap;
  long tokens;
};

static int batch_push(p2q_minilm_batch_t *b, const int32_t *ids, int n, int row) {
  if (b->nseq == b->cap) {
    int cap = b->cap ? b->cap * 2 : 16;
    int *nids = realloc(b->nids, sizeof *nids * (size_t)cap);
    if (nids) b->nids = nids;
    int *rw = nids ? realloc(b->row, sizeof *rw * (size_t)cap) : NULL;
    if (rw) b->row = rw;
    if (!rw) return P2Q_ENOMEM;
    b->cap = cap;
  }
  if (b->nid + (size_t)n > b->idcap) {
    size_t cap = (b->nid + (size_t)n) * 2;
    int32_t *p = realloc(b->ids, sizeof *p * cap);
    if (!p) return P2Q_ENOMEM;
    b->ids = p;
    b->idcap = cap;
  }
  memcpy(b->ids + b->nid, ids, sizeof *ids * (size_t)n);
  b->nids[b->nseq] = n;
  b->row[b->nseq++] = row;
  b->nid += (size_t)n;
  return 0;
}

int p2q_minilm_batch_new(const p2q_minilm_t *m, const char *const *texts, const size_t *lens, int n,
                         int *status, const p2q_minilm_opts_t *opts, p2q_minilm_batch_t **out) {
  int maxt = opts && opts->max_tokens ? opts->max_tokens : (m ? m->c.max_tokens : 0), rc = P2Q_EINVAL;
  int32_t *buf = NULL;
  *out = NULL;
  if (!m || n < 0 || (n && !texts) || maxt < 2 || maxt > MAXPOS) return P2Q_EINVAL;
  p2q_minilm_batch_t *b = calloc(1, sizeof *b);
  rc = P2Q_ENOMEM;
  if (!b || !(buf = malloc(sizeof *buf * (size_t)maxt))) goto fail;
  for (int i = 0; i < n; i++) {
    size_t l = lens ? lens[i] : (texts[i] ? strlen(texts[i]) : 0);
    int k = 0;
    int e = texts[i] || !l ? p2q_wordpiece_encode(m->wp, texts[i] ? texts[i] : "", l, buf, maxt, &k) : P2Q_EINVAL;
    if (status) status[i] = e;
    if (e && !status) { rc = e; goto fail; }
    if (e) continue;
    b->tokens += k;
    if ((rc = batch_push(b, buf, k, i)) != 0) goto fail;
  }
  if (b->nseq && !(b->seq = malloc(sizeof *b->seq * (size_t)b->nseq))) { rc = P2Q_ENOMEM; goto fail; }
  for (size_t i = 0, o = 0; i < (size_t)b->nseq; o += (size_t)b->nids[i], i++) b->seq[i] = b->ids + o;
  free(buf);
  *out = b;
  return 0;
fail:
  free(buf);
  p2q_minilm_batch_free(b);
  return rc;
}

int p2q_minilm_batch_count(const p2q_minilm_batch_t *b) { return b->nseq; }
long p2q_minilm_batch_tokens(const p2q_minilm_batch_t *b) { return b->tokens; }

int p2q_minilm_batch_split(const p2q_minilm_batch_t *b, int parts, int *cut) {
  size_t total = 0;
  for (int i = 0; i < b->nseq; i++) total += (size_t)b->nids[i];
  if (parts > b->nseq) parts = b->nseq;
  if (parts < 1) parts = 1;
  size_t acc = 0;
  int p = 1;
  cut[0] = 0;
  for (int i = 0; i < b->nseq && p < parts; i++) {
    acc += (size_t)b->nids[i];
    /* close part p once it holds its share of the tokens (and leave a sequence for each next part) */
    if (acc * (size_t)parts >= total * (size_t)p && b->nseq - (i + 1) >= parts - p) cut[p++] = i + 1;
  }
  for (; p < parts; p++) cut[p] = cut[p - 1] + 1 <= b->nseq ? cut[p - 1] + 1 : b->nseq;
  cut[parts] = b->nseq;
  return parts;
}

int p2q_minilm_batch_embed(p2q_minilm_t *m, const p2q_minilm_batch_t *b, int from, int count, float *out,
                           const p2q_minilm_opts_t *opts) {
  if (!b || from < 0 || count < 0 || from + count > b->nseq) return P2Q_EINVAL;
  return ml_embed_seqs(m, b->seq + from, b->nids + from, count, out, b->row + from, opts);
}

void p2q_minilm_batch_free(p2q_minilm_batch_t *b) {
  if (!b) return;
  free(b->seq);
  free(b->nids);
  free(b->row);
  free(b->ids);
  free(b);
}

int p2q_minilm_embed_opts(p2q_minilm_t *m, const char *const *texts, const size_t *lens, int n,
                          float *out, int *status, const p2q_minilm_opts_t *opts) {
  p2q_minilm_batch_t *b = NULL;
  p2q_minilm_opts_t o = opts ? *opts : (p2q_minilm_opts_t){0};
  if (!m || n < 0 || (n && (!texts || !out))) return P2Q_EINVAL;
  int rc = p2q_minilm_batch_new(m, texts, lens, n, status, &o, &b);
  if (rc) return rc;
  for (int i = 0; status && i < n; i++)
    if (status[i]) memset(out + (size_t)i * HID, 0, sizeof(float) * HID);
  rc = p2q_minilm_batch_embed(m, b, 0, b->nseq, out, &o);
  p2q_minilm_batch_free(b);
  return rc;
}

int p2q_minilm_embed(p2q_minilm_t *m, const char *const *texts, const size_t *lens, int n,
                     float *out, int *status) {
  return p2q_minilm_embed_opts(m, texts, lens, n, out, status, NULL);
}

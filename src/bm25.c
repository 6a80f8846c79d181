/*
 * bm25.c — the keyword analyzer (see bm25.h for the pipeline and what it matches).
 *
 * Owns: one libstemmer instance per analyzer (libstemmer instances are not thread-safe: one
 * analyzer per thread; the worker makes one per batch on the loop thread). Pure otherwise.
 * Invariants: output indices are ascending and unique (tokens hashing to the same index count
 * together), values are finite and positive; the same text always gives the same bytes.
 *
 * Word characters approximate Unicode's Alphabetic/Numeric properties (Rust's
 * char::is_alphanumeric, which Qdrant's word tokenizer uses) by block: ASCII letters and
 * digits, and every code point ≥ U+0080 except the punctuation, symbol, space and combining
 * mark blocks listed in is_word(). Lowercasing covers the scripts listed in bm25.h; other
 * scripts (CJK, Arabic, Hebrew, …) have no case. Differences from Qdrant are documented in the
 * README (Hybrid search).
 */
#include "pg2qdrant/bm25.h"
#include "pg2qdrant/errors.h"

#include <libstemmer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOKEN_MAX 256 /* bytes of one token kept (longer words are cut: they never match a query) */

/* NLTK's English stop words (fastembed's and Qdrant's list); sorted for bsearch. */
static const char *const stop_words[] = {
    "a", "about", "above", "after", "again", "against", "ain", "all", "am", "an", "and", "any",
    "are", "aren", "as", "at", "be", "because", "been", "before", "being", "below", "between",
    "both", "but", "by", "can", "couldn", "d", "did", "didn", "do", "does", "doesn", "doing", "don",
    "down", "during", "each", "few", "for", "from", "further", "had", "hadn", "has", "hasn", "have",
    "haven", "having", "he", "her", "here", "hers", "herself", "him", "himself", "his", "how", "i",
    "if", "in", "into", "is", "isn", "it", "its", "itself", "just", "ll", "m", "ma", "me", "mightn",
    "more", "most", "mustn", "my", "myself", "needn", "no", "nor", "not", "now", "o", "of", "off",
    "on", "once", "only", "or", "other", "our", "ours", "ourselves", "out", "over", "own", "re", "s",
    "same", "shan", "she", "should", "shouldn", "so", "some", "such", "t", "than", "that", "the",
    "their", "theirs", "them", "themselves", "then", "there", "these", "they", "this", "those",
    "through", "to", "too", "under", "until", "up", "ve", "very", "was", "wasn", "we", "were",
    "weren", "what", "when", "where", "which", "while", "who", "whom", "why", "will", "with", "won",
    "wouldn", "y", "you", "your", "yours", "yourself", "yourselves"};
#define N_STOP (sizeof stop_words / sizeof stop_words[0])

struct p2q_bm25_s {
  p2q_bm25_opts_t o;
  struct sb_stemmer *stemmer;
};

void p2q_bm25_defaults(p2q_bm25_opts_t *o) {
  o->k1 = 1.2;
  o->b = 0.75;
  o->avg_len = 256;
  o->stopwords = 1;
  o->stem = 1;
}

int p2q_bm25_new(const p2q_bm25_opts_t *o, p2q_bm25_t **out) {
  *out = NULL;
  if (!o || o->k1 < 0 || o->b < 0 || o->b > 1 || !(o->avg_len > 0)) return P2Q_EINVAL;
  p2q_bm25_t *a = calloc(1, sizeof *a);
  if (!a) return P2Q_ENOMEM;
  a->o = *o;
  if (o->stem && !(a->stemmer = sb_stemmer_new("english", "UTF_8"))) {
    free(a);
    return P2Q_ENOMEM;
  }
  *out = a;
  return 0;
}

void p2q_bm25_free(p2q_bm25_t *a) {
  if (!a) return;
  if (a->stemmer) sb_stemmer_delete(a->stemmer);
  free(a);
}

/* ---- hashing ---------------------------------------------------------------------------- */

static uint32_t rotl32(uint32_t x, int r) { return (x << r) | (x >> (32 - r)); }

uint32_t p2q_murmur3_32(const void *data, size_t len, uint32_t seed) {
  const unsigned char *p = data;
  const uint32_t c1 = 0xcc9e2d51, c2 = 0x1b873593;
  uint32_t h = seed, k;
  size_t nblocks = len / 4;
  for (size_t i = 0; i < nblocks; i++) {
    k = (uint32_t)p[4 * i] | (uint32_t)p[4 * i + 1] << 8 | (uint32_t)p[4 * i + 2] << 16 |
        (uint32_t)p[4 * i + 3] << 24;
    k *= c1;
    k = rotl32(k, 15);
    k *= c2;
    h ^= k;
    h = rotl32(h, 13);
    h = h * 5 + 0xe6546b64;
  }
  const unsigned char *t = p + nblocks * 4;
  k = 0;
  switch (len & 3) {
  case 3: k ^= (uint32_t)t[2] << 16; /* fallthrough */
  case 2: k ^= (uint32_t)t[1] << 8;  /* fallthrough */
  case 1:
    k ^= t[0];
    k *= c1;
    k = rotl32(k, 15);
    k *= c2;
    h ^= k;
  }
  h ^= (uint32_t)len;
  h ^= h >> 16;
  h *= 0x85ebca6b;
  h ^= h >> 13;
  h *= 0xc2b2ae35;
  h ^= h >> 16;
  return h;
}

uint32_t p2q_bm25_token_id(const char *tok, size_t len) {
  int32_t s = (int32_t)p2q_murmur3_32(tok, len, 0);
  return s < 0 ? (uint32_t)0 - (uint32_t)s : (uint32_t)s; /* unsigned_abs: INT32_MIN → 2^31 */
}

/* ---- characters ------------------------------------------------------------------------- */

/* Next code point of s at *i (advanced); -1 for an invalid byte (skipped alone). */
static long next_cp(const unsigned char *s, size_t n, size_t *i) {
  unsigned c = s[*i];
  int extra;
  long cp;
  if (c < 0x80) { (*i)++; return c; }
  if (c >= 0xc2 && c <= 0xdf) { extra = 1; cp = c & 0x1f; }
  else if (c >= 0xe0 && c <= 0xef) { extra = 2; cp = c & 0x0f; }
  else if (c >= 0xf0 && c <= 0xf4) { extra = 3; cp = c & 0x07; }
  else { (*i)++; return -1; }
  if (*i + (size_t)extra >= n) { (*i)++; return -1; }
  for (int k = 1; k <= extra; k++) {
    unsigned cc = s[*i + (size_t)k];
    if ((cc & 0xc0) != 0x80) { (*i)++; return -1; }
    cp = cp << 6 | (cc & 0x3f);
  }
  if ((extra == 2 && cp < 0x800) || (extra == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
      (cp >= 0xd800 && cp <= 0xdfff)) {
    (*i)++;
    return -1;
  }
  *i += (size_t)extra + 1;
  return cp;
}

static int is_word(long c) {
  if (c < 0) return 0;
  if (c < 0x80) return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
  if (c <= 0xbf) /* Latin-1 punctuation and symbols; ª ² ³ µ ¹ º ¼ ½ ¾ are letters/numbers */
    return c == 0xaa || c == 0xb2 || c == 0xb3 || c == 0xb5 || c == 0xb9 || c == 0xba ||
           (c >= 0xbc && c <= 0xbe);
  if (c == 0xd7 || c == 0xf7) return 0;                      /* × ÷ */
  if (c >= 0x2b0 && c <= 0x2ff) return c <= 0x2c1 || (c >= 0x2c6 && c <= 0x2d1) ||
                                       (c >= 0x2e0 && c <= 0x2e4) || c == 0x2ec || c == 0x2ee;
  if (c >= 0x300 && c <= 0x36f) return 0;                    /* combining diacritics */
  if (c == 0x37e || c == 0x387 || c == 0x589 || c == 0x5be || c == 0x5c0 || c == 0x5c3 ||
      c == 0x5f3 || c == 0x5f4 || c == 0x60c || c == 0x61b || c == 0x61f || c == 0x6d4 ||
      c == 0x964 || c == 0x965 || c == 0xe4f || c == 0xe5a || c == 0xe5b)
    return 0;                                                /* Greek, Hebrew, Arabic, Indic, Thai punctuation */
  if (c >= 0x55a && c <= 0x55f) return 0;                    /* Armenian punctuation */
  if (c >= 0x66a && c <= 0x66d) return 0;                    /* Arabic punctuation */
  if (c >= 0x1ab0 && c <= 0x1aff) return 0;                  /* combining marks */
  if (c >= 0x1dc0 && c <= 0x1dff) return 0;
  if (c >= 0x2000 && c <= 0x206f) return 0;                  /* general punctuation, spaces */
  if (c >= 0x2070 && c <= 0x209f) return c != 0x207a && c != 0x207b && c != 0x207c && c != 0x207d &&
                                          c != 0x207e && c != 0x208a && c != 0x208b && c != 0x208c &&
                                          c != 0x208d && c != 0x208e; /* super/subscripts: digits, letters */
  if (c >= 0x20a0 && c <= 0x20ff) return 0;                  /* currency, combining marks for symbols */
  if (c >= 0x2190 && c <= 0x245f) return 0;                  /* arrows, math, technical, control pictures */
  if (c >= 0x2500 && c <= 0x2bff) return 0;                  /* box drawing … misc symbols and arrows */
  if (c >= 0x2e00 && c <= 0x2e7f) return 0;                  /* supplemental punctuation */
  if (c >= 0x3000 && c <= 0x303f)                            /* CJK punctuation; 々 〆 〇 〡-〩 〱-〵 〸-〼 are words */
    return (c >= 0x3005 && c <= 0x3007) || (c >= 0x3021 && c <= 0x3029) || (c >= 0x3031 && c <= 0x3035) ||
           (c >= 0x3038 && c <= 0x303c);
  if (c >= 0xd800 && c <= 0xf8ff) return 0;                  /* surrogates, private use */
  if (c >= 0xfe00 && c <= 0xfe6f) return 0;                  /* variation selectors, punctuation forms */
  if (c >= 0xff00 && c <= 0xff65)                            /* full-width ASCII: letters and digits only */
    return (c >= 0xff10 && c <= 0xff19) || (c >= 0xff21 && c <= 0xff3a) || (c >= 0xff41 && c <= 0xff5a);
  if (c == 0xfeff || (c >= 0xfff0 && c <= 0xffff)) return 0;
  if (c >= 0x1f000 && c <= 0x1faff) return 0;                /* emoji, symbols */
  if (c >= 0xe0000) return 0;                                /* tags, variation selectors, private use */
  return 1;
}

static long lower(long c) {
  if (c < 0x80) return c >= 'A' && c <= 'Z' ? c + 32 : c;
  if (c >= 0xc0 && c <= 0xde && c != 0xd7) return c + 32;
  if (c >= 0x100 && c <= 0x17f) {
    if (c == 0x130) return 'i'; /* İ (Unicode lowercases it to i + combining dot above) */
    if (c == 0x178) return 0xff;
    if ((c >= 0x100 && c <= 0x137) || (c >= 0x14a && c <= 0x177)) return c | 1;
    if ((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17e)) return (c & 1) ? c + 1 : c;
    return c;
  }
  if (c >= 0x391 && c <= 0x3ab && c != 0x3a2) return c + 32;
  if (c == 0x386) return 0x3ac;
  if (c >= 0x388 && c <= 0x38a) return c + 37;
  if (c == 0x38c) return 0x3cc;
  if (c == 0x38e || c == 0x38f) return c + 63;
  if (c >= 0x400 && c <= 0x40f) return c + 80;
  if (c >= 0x410 && c <= 0x42f) return c + 32;
  if ((c >= 0x460 && c <= 0x481) || (c >= 0x48a && c <= 0x4bf) || (c >= 0x4d0 && c <= 0x52f)) return c | 1;
  if (c >= 0x531 && c <= 0x556) return c + 48;
  if ((c >= 0x1e00 && c <= 0x1e95) || (c >= 0x1ea0 && c <= 0x1eff)) return c | 1;
  if (c >= 0xff21 && c <= 0xff3a) return c + 32;
  return c;
}

static size_t put_utf8(char *o, long c) {
  if (c < 0x80) { o[0] = (char)c; return 1; }
  if (c < 0x800) { o[0] = (char)(0xc0 | (c >> 6)); o[1] = (char)(0x80 | (c & 0x3f)); return 2; }
  if (c < 0x10000) {
    o[0] = (char)(0xe0 | (c >> 12)); o[1] = (char)(0x80 | ((c >> 6) & 0x3f)); o[2] = (char)(0x80 | (c & 0x3f));
    return 3;
  }
  o[0] = (char)(0xf0 | (c >> 18)); o[1] = (char)(0x80 | ((c >> 12) & 0x3f));
  o[2] = (char)(0x80 | ((c >> 6) & 0x3f)); o[3] = (char)(0x80 | (c & 0x3f));
  return 4;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

static int is_stop(const char *tok) {
  const char *key = tok;
  return bsearch(&key, stop_words, N_STOP, sizeof stop_words[0], cmp_str) != NULL;
}

/* ---- the pipeline ----------------------------------------------------------------------- */

typedef void (*tok_fn)(void *arg, const char *tok, size_t len);

/* One finished lowercase word: stop words out, stem, hand on. */
static void finish(p2q_bm25_t *a, char *w, size_t n, tok_fn fn, void *arg) {
  w[n] = 0;
  if (a->o.stopwords && is_stop(w)) return;
  if (a->stemmer) {
    const sb_symbol *s = sb_stemmer_stem(a->stemmer, (const sb_symbol *)w, (int)n);
    if (s) { fn(arg, (const char *)s, (size_t)sb_stemmer_length(a->stemmer)); return; }
  }
  fn(arg, w, n);
}

static void analyze(p2q_bm25_t *a, const char *text, size_t len, tok_fn fn, void *arg) {
  char w[TOKEN_MAX + 8];
  size_t n = 0, i = 0;
  const unsigned char *s = (const unsigned char *)text;
  while (i < len) {
    long c = next_cp(s, len, &i);
    if (!is_word(c)) {
      if (n) finish(a, w, n, fn, arg);
      n = 0;
      continue;
    }
    if (n + 4 <= TOKEN_MAX) n += put_utf8(w + n, lower(c));
  }
  if (n) finish(a, w, n, fn, arg);
}

typedef struct {
  uint32_t *ids;
  size_t n, cap;
  int err;
  p2q_buf_t *out;
} ids_t;

static void add_id(void *arg, const char *tok, size_t len) {
  ids_t *t = arg;
  if (t->n == t->cap) {
    size_t cap = t->cap ? t->cap * 2 : 64;
    uint32_t *p = realloc(t->ids, cap * sizeof *p);
    if (!p) { t->err = P2Q_ENOMEM; return; }
    t->ids = p;
    t->cap = cap;
  }
  t->ids[t->n++] = p2q_bm25_token_id(tok, len);
}

static void add_text(void *arg, const char *tok, size_t len) {
  ids_t *t = arg;
  p2q_buf_append(t->out, tok, len);
  p2q_buf_putc(t->out, '\n');
  t->n++;
}

static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

int p2q_bm25_tokens(p2q_bm25_t *a, const char *text, size_t len, p2q_buf_t *out) {
  ids_t t = {.out = out};
  if (!a || (!text && len)) return P2Q_EINVAL;
  analyze(a, text, len, add_text, &t);
  return p2q_buf_error(out) ? p2q_buf_error(out) : (int)t.n;
}

static int vector(p2q_bm25_t *a, const char *text, size_t len, p2q_buf_t *out, int query) {
  ids_t t = {0};
  char num[32];
  int terms = 0;
  if (!a || (!text && len)) return P2Q_EINVAL;
  analyze(a, text, len, add_id, &t);
  if (t.err) { free(t.ids); return t.err; }
  if (t.n > 1) qsort(t.ids, t.n, sizeof *t.ids, cmp_u32);
  const double k1 = a->o.k1, norm = k1 * (1.0 - a->o.b + a->o.b * (double)t.n / a->o.avg_len);
  p2q_buf_t vals = P2Q_BUF_INIT;
  p2q_buf_puts(out, "{\"indices\":[");
  for (size_t i = 0; i < t.n;) {
    size_t j = i;
    while (j < t.n && t.ids[j] == t.ids[i]) j++;
    double tf = (double)(j - i), v = query ? 1.0 : tf * (k1 + 1.0) / (tf + norm);
    p2q_buf_printf(out, "%s%u", terms ? "," : "", (unsigned)t.ids[i]);
    int w = snprintf(num, sizeof num, "%.9g", (double)(float)v);
    if (terms) p2q_buf_putc(&vals, ',');
    p2q_buf_append(&vals, num, (size_t)w);
    terms++;
    i = j;
  }
  p2q_buf_puts(out, "],\"values\":[");
  if (vals.len) p2q_buf_append(out, vals.data, vals.len);
  p2q_buf_puts(out, "]}");
  p2q_buf_free(&vals);
  free(t.ids);
  return p2q_buf_error(out) ? p2q_buf_error(out) : terms;
}

int p2q_bm25_document(p2q_bm25_t *a, const char *text, size_t len, p2q_buf_t *out) {
  return vector(a, text, len, out, 0);
}

int p2q_bm25_query(p2q_bm25_t *a, const char *text, size_t len, p2q_buf_t *out) {
  return vector(a, text, len, out, 1);
}

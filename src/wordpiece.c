/*
 * wordpiece.c — BERT uncased tokenizer matching HF `tokenizers` (see wordpiece.h).
 *
 * Owns: the vocabulary (one byte arena + an open-addressing hash of (offset, len) → id) and a
 * 128-entry ASCII class table. Thread: load on any thread; encode is re-entrant and allocation-free
 * (state lives on the caller's stack).
 * Invariants: ids written never exceed max_ids; a word buffer holds at most
 * P2Q_WORDPIECE_MAX_WORD_CHARS+1 chars (longer words are counted, not stored, and become [UNK]).
 * Unicode behaviour comes from wordpiece_tables.h, generated from the reference implementation.
 */
#include "pg2qdrant/wordpiece.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg2qdrant/errors.h"
#include "pg2qdrant/log.h"
#include "wordpiece_tables.h"

enum { WP_CLS_KEEP = 0, WP_CLS_DROP, WP_CLS_SPACE, WP_CLS_PUNCT };

typedef struct { uint32_t off, len; int32_t id; } wp_slot_t; /* len == UINT32_MAX: empty */

struct p2q_wordpiece_s {
  char *arena;
  size_t n_tokens;
  wp_slot_t *slots;
  size_t mask;
  int32_t unk, cls, sep;
  int32_t special_id[5]; /* [PAD] [UNK] [CLS] [SEP] [MASK], -1 if absent */
  uint8_t ascii_class[128];
  char ascii_lower[128];
  int cased;   /* 1: no NFD / accent stripping / lowercasing (cased BERT vocabularies) */
  int no_cjk;  /* 1: handle_chinese_chars = false */
};

static const char *const k_special[5] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};

/* ---- Unicode tables -------------------------------------------------------------------- */

static int wp_in(const wp_range_t *r, size_t n, uint32_t c) {
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (c < r[mid].lo) hi = mid;
    else if (c > r[mid].hi) lo = mid + 1;
    else return 1;
  }
  return 0;
}
#define WP_IN(tab, c) wp_in(tab, sizeof tab / sizeof tab[0], c)

static int wp_is_cjk(uint32_t c) {
  return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
         (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
         (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
         (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

/* NFD + strip Mn + lowercase of one code point: returns the length written to out (<= 8). */
static int wp_map_cp(uint32_t c, uint32_t out[8]) {
  if (c >= 0xAC00 && c <= 0xD7A3) { /* Hangul syllable → L V (T) jamo */
    uint32_t s = c - 0xAC00, t = s % 28;
    out[0] = 0x1100 + s / 588;
    out[1] = 0x1161 + (s % 588) / 28;
    if (t) { out[2] = 0x11A7 + t; return 3; }
    return 2;
  }
  size_t lo = 0, hi = sizeof wp_map / sizeof wp_map[0];
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (c < wp_map[mid].cp) hi = mid;
    else if (c > wp_map[mid].cp) lo = mid + 1;
    else {
      int n = wp_map[mid].len < 8 ? wp_map[mid].len : 8;
      for (int i = 0; i < n; i++) out[i] = wp_map_pool[wp_map[mid].off + i];
      return n;
    }
  }
  out[0] = c;
  return 1;
}

/* Strict UTF-8 decode of one code point; returns bytes consumed or 0 if invalid. */
static size_t wp_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp) {
  unsigned char b = s[0];
  if (b < 0x80) { *cp = b; return 1; }
  size_t len;
  uint32_t c, min;
  if (b >= 0xC2 && b <= 0xDF) { len = 2; c = b & 0x1F; min = 0x80; }
  else if (b >= 0xE0 && b <= 0xEF) { len = 3; c = b & 0x0F; min = 0x800; }
  else if (b >= 0xF0 && b <= 0xF4) { len = 4; c = b & 0x07; min = 0x10000; }
  else return 0;
  if (n < len) return 0;
  for (size_t i = 1; i < len; i++) {
    if ((s[i] & 0xC0) != 0x80) return 0;
    c = (c << 6) | (s[i] & 0x3F);
  }
  if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return 0;
  *cp = c;
  return len;
}

static size_t wp_utf8_encode(uint32_t c, char *o) {
  if (c < 0x80) { o[0] = (char)c; return 1; }
  if (c < 0x800) { o[0] = (char)(0xC0 | (c >> 6)); o[1] = (char)(0x80 | (c & 0x3F)); return 2; }
  if (c < 0x10000) {
    o[0] = (char)(0xE0 | (c >> 12)); o[1] = (char)(0x80 | ((c >> 6) & 0x3F));
    o[2] = (char)(0x80 | (c & 0x3F)); return 3;
  }
  o[0] = (char)(0xF0 | (c >> 18)); o[1] = (char)(0x80 | ((c >> 12) & 0x3F));
  o[2] = (char)(0x80 | ((c >> 6) & 0x3F)); o[3] = (char)(0x80 | (c & 0x3F)); return 4;
}

/* ---- vocabulary ------------------------------------------------------------------------ */

static uint64_t wp_hash(const char *s, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; i++) { h ^= (unsigned char)s[i]; h *= 1099511628211ull; }
  return h;
}

int32_t p2q_wordpiece_token_id(const p2q_wordpiece_t *wp, const char *tok, size_t len) {
  for (size_t i = wp_hash(tok, len) & wp->mask;; i = (i + 1) & wp->mask) {
    const wp_slot_t *s = &wp->slots[i];
    if (s->len == UINT32_MAX) return -1;
    if (s->len == len && memcmp(wp->arena + s->off, tok, len) == 0) return s->id;
  }
}

static void wp_insert(p2q_wordpiece_t *wp, uint32_t off, uint32_t len, int32_t id) {
  for (size_t i = wp_hash(wp->arena + off, len) & wp->mask;; i = (i + 1) & wp->mask) {
    wp_slot_t *s = &wp->slots[i];
    if (s->len == UINT32_MAX || (s->len == len && memcmp(wp->arena + s->off, wp->arena + off, len) == 0)) {
      s->off = off; s->len = len; s->id = id; /* a duplicate keeps its last id */
      return;
    }
  }
}

static void wp_init_ascii(p2q_wordpiece_t *wp) {
  for (uint32_t c = 0; c < 128; c++) {
    uint32_t m[8];
    wp->ascii_class[c] = WP_IN(wp_drop, c) ? WP_CLS_DROP
                       : (WP_IN(wp_space, c) || WP_IN(wp_pt_ws, c)) ? WP_CLS_SPACE
                       : WP_IN(wp_pt_punct, c) ? WP_CLS_PUNCT : WP_CLS_KEEP;
    wp->ascii_lower[c] = !wp->cased && wp_map_cp(c, m) == 1 && m[0] < 128 ? (char)m[0] : (char)c;
  }
}

void p2q_wordpiece_set_normalizer(p2q_wordpiece_t *wp, int lowercase, int chinese_chars) {
  wp->cased = !lowercase;
  wp->no_cjk = !chinese_chars;
  wp_init_ascii(wp);
}

int p2q_wordpiece_from_buffer(const char *buf, size_t len, p2q_wordpiece_t **out) {
  int rc = P2Q_ENOMEM;
  *out = NULL;
  if (len > 0xFFFFFFF0u) return P2Q_EVOCAB;
  p2q_wordpiece_t *wp = calloc(1, sizeof *wp);
  if (!wp || !(wp->arena = malloc(len + 1))) goto fail;
  memcpy(wp->arena, buf, len);
  size_t lines = 0;
  for (size_t i = 0; i < len; i++) lines += buf[i] == '\n';
  lines += len && buf[len - 1] != '\n';
  size_t cap = 16;
  while (cap < lines * 2) cap <<= 1;
  if (!(wp->slots = malloc(cap * sizeof *wp->slots))) goto fail;
  memset(wp->slots, 0xFF, cap * sizeof *wp->slots);
  wp->mask = cap - 1;
  size_t pos = 0;
  int32_t id = 0;
  while (pos < len) {
    size_t e = pos;
    while (e < len && wp->arena[e] != '\n') e++;
    size_t next = e + 1, te = e;
    while (te > pos && (wp->arena[te - 1] == '\r' || wp->arena[te - 1] == ' ' || wp->arena[te - 1] == '\t'))
      te--;
    wp_insert(wp, (uint32_t)pos, (uint32_t)(te - pos), id++);
    pos = next;
  }
  wp->n_tokens = (size_t)id;
  for (int i = 0; i < 5; i++) wp->special_id[i] = p2q_wordpiece_token_id(wp, k_special[i], strlen(k_special[i]));
  wp->unk = wp->special_id[1];
  wp->cls = wp->special_id[2];
  wp->sep = wp->special_id[3];
  if (wp->unk < 0 || wp->cls < 0 || wp->sep < 0) {
    P2Q_ERROR("vocab_invalid", "reason=\"vocabulary lacks [UNK], [CLS] or [SEP]\" tokens=%zu", wp->n_tokens);
    rc = P2Q_EVOCAB;
    goto fail;
  }
  wp_init_ascii(wp);
  *out = wp;
  return 0;
fail:
  p2q_wordpiece_free(wp);
  return rc;
}

int p2q_wordpiece_load(const char *path, p2q_wordpiece_t **out) {
  char qp[512], *buf = NULL;
  int rc;
  size_t n = 0, cap = 0;
  *out = NULL;
  FILE *f = fopen(path, "rb");
  if (!f) {
    P2Q_ERROR("vocab_open", "path=%s errno=%d", p2q_log_q(qp, sizeof qp, path), errno);
    return errno == ENOENT ? P2Q_ENOENT : P2Q_EIO;
  }
  for (;;) {
    if (n == cap) {
      char *nb = cap > (64u << 20) ? NULL : realloc(buf, cap = cap ? cap * 2 : 1 << 18);
      if (!nb) { rc = cap > (64u << 20) ? P2Q_EVOCAB : P2Q_ENOMEM; goto fail; }
      buf = nb;
    }
    size_t r = fread(buf + n, 1, cap - n, f);
    n += r;
    if (r == 0) break;
  }
  rc = P2Q_EIO;
  if (ferror(f)) goto fail;
  rc = p2q_wordpiece_from_buffer(buf, n, out);
fail:
  fclose(f);
  free(buf);
  return rc;
}

void p2q_wordpiece_free(p2q_wordpiece_t *wp) {
  if (!wp) return;
  free(wp->arena);
  free(wp->slots);
  free(wp);
}

size_t p2q_wordpiece_vocab_size(const p2q_wordpiece_t *wp) { return wp->n_tokens; }

/* ---- encoding -------------------------------------------------------------------------- */

#define WP_WORD_BYTES (2 + 4 * (P2Q_WORDPIECE_MAX_WORD_CHARS + 1))

typedef struct {
  const p2q_wordpiece_t *wp;
  int32_t *ids;
  p2q_wordpiece_span_t *spans; /* optional: each piece's source bytes (p2q_wordpiece_encode_spans) */
  int n, cap;                 /* cap = max pieces (max_ids - 2), ids[0] is [CLS] */
  char word[WP_WORD_BYTES + 2];
  size_t wlen, wchars;
  unsigned char cend[P2Q_WORDPIECE_MAX_WORD_CHARS + 2]; /* byte length of each char */
  /* spans: the input code point being normalised, and where each stored char of the word and the
     whole word came from (a char's source is the input code point it was decomposed from) */
  uint32_t cur0, cur1, wsrc0, wsrc1;
  uint32_t csrc0[P2Q_WORDPIECE_MAX_WORD_CHARS + 2], csrc1[P2Q_WORDPIECE_MAX_WORD_CHARS + 2];
} wp_enc_t;

static int wp_full(const wp_enc_t *e) { return e->n >= e->cap; }
static void wp_push(wp_enc_t *e, int32_t id, uint32_t s0, uint32_t s1, int word_start) {
  if (wp_full(e)) return;
  if (e->spans) e->spans[1 + e->n] = (p2q_wordpiece_span_t){s0, s1, (uint8_t)word_start};
  e->ids[1 + e->n++] = id;
}

/* Greedy longest-match-first WordPiece of the current word. */
static void wp_flush_word(wp_enc_t *e) {
  if (e->wchars == 0) return;
  const p2q_wordpiece_t *wp = e->wp;
  size_t nw = e->wchars, wlen = e->wlen;
  e->wchars = e->wlen = 0;
  if (nw > P2Q_WORDPIECE_MAX_WORD_CHARS) { wp_push(e, wp->unk, e->wsrc0, e->wsrc1, 1); return; }
  int32_t pieces[P2Q_WORDPIECE_MAX_WORD_CHARS];
  unsigned char pc0[P2Q_WORDPIECE_MAX_WORD_CHARS], pc1[P2Q_WORDPIECE_MAX_WORD_CHARS]; /* chars [pc0, pc1) */
  int np = 0;
  char buf[WP_WORD_BYTES + 2];
  size_t start = 0, startc = 0;
  const char *w = e->word;
  while (start < wlen) {
    size_t end = wlen, endc = nw;
    int32_t found = -1;
    while (start < end) {
      size_t sl = end - start;
      if (start > 0) {
        buf[0] = '#'; buf[1] = '#';
        memcpy(buf + 2, w + start, sl);
        found = p2q_wordpiece_token_id(wp, buf, sl + 2);
      } else {
        found = p2q_wordpiece_token_id(wp, w, sl);
      }
      if (found >= 0) break;
      end -= e->cend[--endc]; /* drop the last char */
    }
    if (found < 0) { wp_push(e, wp->unk, e->wsrc0, e->wsrc1, 1); return; } /* whole word → [UNK] */
    pc0[np] = (unsigned char)startc;
    pc1[np] = (unsigned char)endc;
    pieces[np++] = found;
    start = end;
    startc = endc;
  }
  for (int i = 0; i < np; i++)
    wp_push(e, pieces[i], e->spans ? e->csrc0[pc0[i]] : 0, e->spans ? e->csrc1[pc1[i] - 1] : 0, i == 0);
}

/* Feed one normalised code point to the pre-tokenizer. */
static void wp_feed(wp_enc_t *e, uint32_t c, int cls) {
  if (cls == WP_CLS_SPACE) { wp_flush_word(e); return; }
  if (cls == WP_CLS_PUNCT) wp_flush_word(e);
  if (e->spans) { /* only when asked: plain encoding (the model's hot path) stores nothing more */
    if (e->wchars == 0) e->wsrc0 = e->cur0;
    e->wsrc1 = e->cur1;
    if (e->wchars <= P2Q_WORDPIECE_MAX_WORD_CHARS) {
      e->csrc0[e->wchars] = e->cur0;
      e->csrc1[e->wchars] = e->cur1;
    }
  }
  if (e->wchars <= P2Q_WORDPIECE_MAX_WORD_CHARS) {
    size_t k = wp_utf8_encode(c, e->word + e->wlen);
    e->cend[e->wchars] = (unsigned char)k;
    e->wlen += k;
  }
  e->wchars++;
  if (cls == WP_CLS_PUNCT) wp_flush_word(e);
}

static int wp_class(const p2q_wordpiece_t *wp, uint32_t c) {
  if (c < 128) return wp->ascii_class[c];
  if (WP_IN(wp_pt_ws, c)) return WP_CLS_SPACE;
  if (WP_IN(wp_pt_punct, c)) return WP_CLS_PUNCT;
  return WP_CLS_KEEP;
}

/* A code point that normalises to nothing (a control, format char, stripped mark) inside a word
   belongs to the span of the word's last char: a chunk's text keeps the accents of its last word. */
static void wp_dropped(wp_enc_t *e) {
  if (e->wchars == 0 || !e->spans) return;
  e->wsrc1 = e->cur1;
  if (e->wchars <= P2Q_WORDPIECE_MAX_WORD_CHARS + 1) e->csrc1[e->wchars - 1] = e->cur1;
}

/* Normalise one input code point (clean, CJK spacing, NFD/strip/lowercase) and feed it. */
static void wp_normalize_cp(wp_enc_t *e, uint32_t c) {
  const p2q_wordpiece_t *wp = e->wp;
  if (c < 128) {
    int cls = wp->ascii_class[c];
    if (cls == WP_CLS_DROP) { wp_dropped(e); return; }
    wp_feed(e, (uint32_t)(unsigned char)wp->ascii_lower[c], cls);
    return;
  }
  if (wp->cased ? WP_IN(wp_cased_drop, c) : WP_IN(wp_drop, c)) { wp_dropped(e); return; }
  if (WP_IN(wp_space, c)) { wp_feed(e, ' ', WP_CLS_SPACE); return; }
  int cjk = !wp->no_cjk && wp_is_cjk(c);
  if (cjk) wp_feed(e, ' ', WP_CLS_SPACE);
  uint32_t m[8];
  int k = 1;
  if (wp->cased) m[0] = c;
  else k = wp_map_cp(c, m);
  for (int i = 0; i < k; i++) wp_feed(e, m[i], wp_class(wp, m[i]));
  if (cjk) wp_feed(e, ' ', WP_CLS_SPACE);
}

/* Index of the special token starting at s[0], or -1. */
static int wp_special_at(const p2q_wordpiece_t *wp, const char *s, size_t n, size_t *len) {
  for (int i = 0; i < 5; i++) {
    size_t l = strlen(k_special[i]);
    if (wp->special_id[i] >= 0 && n >= l && memcmp(s, k_special[i], l) == 0) { *len = l; return i; }
  }
  return -1;
}

int p2q_wordpiece_encode(const p2q_wordpiece_t *wp, const char *text, size_t len,
                         int32_t *ids, int max_ids, int *n_out) {
  return p2q_wordpiece_encode_spans(wp, text, len, ids, NULL, max_ids, n_out);
}

int p2q_wordpiece_encode_spans(const p2q_wordpiece_t *wp, const char *text, size_t len, int32_t *ids,
                               p2q_wordpiece_span_t *spans, int max_ids, int *n_out) {
  *n_out = 0;
  if (!wp || (!text && len) || !ids || max_ids < 2) return P2Q_EINVAL;
  if (len > P2Q_WORDPIECE_MAX_TEXT) return P2Q_ETOOLONG;
  const unsigned char *s = (const unsigned char *)text;
  for (size_t i = 0; i < len;) { /* validate everything first: errors must not depend on truncation */
    uint32_t c;
    if (s[i] < 0x80) { i++; continue; }
    size_t k = wp_utf8_decode(s + i, len - i, &c);
    if (!k) return P2Q_EUTF8;
    i += k;
  }
  wp_enc_t e;
  e.wp = wp; e.ids = ids; e.spans = spans; e.n = 0; e.cap = max_ids - 2; e.wlen = e.wchars = 0;
  e.wsrc0 = e.wsrc1 = e.cur0 = e.cur1 = 0;
  ids[0] = wp->cls;
  if (spans) spans[0] = (p2q_wordpiece_span_t){0, 0, 1};
  for (size_t i = 0; i < len && !wp_full(&e);) {
    uint32_t c = s[i];
    size_t k = 1, sl;
    int sp;
    if (c == '[' && (sp = wp_special_at(wp, text + i, len - i, &sl)) >= 0) {
      wp_flush_word(&e);
      wp_push(&e, wp->special_id[sp], (uint32_t)i, (uint32_t)(i + sl), 1);
      i += sl;
      continue;
    }
    if (c >= 0x80) k = wp_utf8_decode(s + i, len - i, &c);
    e.cur0 = (uint32_t)i; /* (spans only; cheaper to store than to test) */
    e.cur1 = (uint32_t)(i + k);
    wp_normalize_cp(&e, c);
    i += k;
  }
  wp_flush_word(&e);
  if (spans) spans[1 + e.n] = (p2q_wordpiece_span_t){(uint32_t)len, (uint32_t)len, 1};
  ids[1 + e.n] = wp->sep;
  *n_out = e.n + 2;
  return 0;
}

/*
 * cmd_embed.c — `pg2qdrant -c FILE embed [--embedder NAME] [--jsonl]`: texts on stdin (one per
 * line, or JSON lines: a string or {"text": …}), one JSON array of floats per line on stdout —
 * exactly the vectors the daemon would store. Runs the same asynchronous embedder as the daemon
 * on a private loop. A line that cannot be embedded prints {"error": "…"} on its line, and the
 * exit status is then 1.
 *
 * Texts are (pointer, length) end to end: a NUL byte is data (plain lines), and so is \u0000
 * (JSON lines). Lines longer than EMBED_MAX_LINE bytes are skipped, not stored (an error line).
 * Read-ahead: up to `depth` calls of CHUNK lines are in flight (depth = 2 × the embedder's
 * threads, at least 2), so the pool always has the next call while one runs; a partial call is
 * sent as soon as stdin has nothing more to read at once (interactive use). Output keeps input
 * order and is flushed line by line as calls complete.
 * `embed --sparse RULE [--document]`: the BM25 sparse vector of each line with that rule's
 * analyzer instead (query weights, 1 per distinct term; --document: the stored BM25 weights),
 * the query side of hybrid search. No embedder is started; the same line reader.
 * Thread: main thread (the loop); the embedder's pool threads only run the model.
 */
#include "pg2qdrant/blas_kernel.h"
#include "pg2qdrant/bm25.h"
#include "pg2qdrant/buf.h"
#include "pg2qdrant/commands.h"
#include "pg2qdrant/embedder.h"
#include "pg2qdrant/errors.h"
#include "pg2qdrant/json_scan.h"
#include "pg2qdrant/points.h"
#include "pg2qdrant/wordpiece.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHUNK 64
#define EMBED_MAX_LINE ((size_t)P2Q_WORDPIECE_MAX_TEXT) /* the tokenizer's own limit */

/* ---- stdin, one bounded line at a time ---------------------------------------------------- */

typedef struct {
  char buf[1 << 16];
  size_t pos, end;
  int eof;
} reader_t;

static int reader_fill(reader_t *r) {
  if (r->pos < r->end) return 1;
  if (r->eof) return 0;
  ssize_t n;
  do n = read(STDIN_FILENO, r->buf, sizeof r->buf); while (n < 0 && errno == EINTR);
  if (n <= 0) { r->eof = 1; return 0; }
  r->pos = 0;
  r->end = (size_t)n;
  return 1;
}

/* Would the next read block? (buffered bytes or a readable/closed stdin: no) */
static int reader_would_block(const reader_t *r) {
  if (r->pos < r->end || r->eof) return 0;
  struct pollfd p = {.fd = STDIN_FILENO, .events = POLLIN};
  return poll(&p, 1, 0) == 0;
}

/* Next line into *line (without "\n"; a trailing "\r" is dropped too). Returns 1 for a line,
 * 0 at EOF. *too_long: the line exceeded max bytes, its content was discarded. */
static int reader_line(reader_t *r, p2q_buf_t *line, size_t max, int *too_long) {
  int any = 0;
  line->len = 0;
  *too_long = 0;
  while (reader_fill(r)) {
    any = 1;
    const char *s = r->buf + r->pos, *nl = memchr(s, '\n', r->end - r->pos);
    size_t n = nl ? (size_t)(nl - s) : r->end - r->pos;
    if (!*too_long && line->len + n > max) *too_long = 1;
    if (!*too_long) p2q_buf_append(line, s, n);
    r->pos += n + (nl != NULL);
    if (nl) break;
  }
  if (!any) return 0;
  if (!*too_long && line->len && line->data[line->len - 1] == '\r') line->len--;
  return 1;
}

/* ---- calls in flight ---------------------------------------------------------------------- */

typedef struct call_s {
  int n;                 /* lines in this call */
  char *text[CHUNK];     /* NULL: the line already failed (msg[]) */
  size_t len[CHUNK];
  const char *msg[CHUNK];
  int idx[CHUNK];        /* submitted text k → line idx[k] */
  int done, failed;
  p2q_buf_t out;         /* the call's output lines, once done */
  struct call_s *next;
} call_t;

typedef struct {
  uv_loop_t loop;
  p2q_embedder_t *e;
  call_t *head, *tail;   /* in input order */
  int inflight, failed;
} embed_t;

static void put_error(p2q_buf_t *b, const char *msg) {
  p2q_buf_puts(b, "{\"error\":");
  p2q_buf_json_string(b, msg, strlen(msg));
  p2q_buf_puts(b, "}\n");
}

/* Write the finished calls at the head, in order, one flushed line at a time. */
static void flush_done(embed_t *st) {
  while (st->head && st->head->done) {
    call_t *c = st->head;
    for (size_t o = 0; o < c->out.len;) {
      const char *nl = memchr(c->out.data + o, '\n', c->out.len - o);
      size_t n = (size_t)(nl - (c->out.data + o)) + 1;
      fwrite(c->out.data + o, 1, n, stdout);
      fflush(stdout);
      o += n;
    }
    st->failed |= c->failed;
    st->head = c->next;
    if (!st->head) st->tail = NULL;
    for (int i = 0; i < c->n; i++) free(c->text[i]);
    p2q_buf_free(&c->out);
    free(c);
  }
}

static void embedded(const p2q_embed_result_t *r, void *arg) {
  call_t *c = arg;
  int k = 0;
  for (int i = 0; i < c->n; i++) {
    if (!c->text[i]) { put_error(&c->out, c->msg[i]); c->failed = 1; continue; }
    if (r->err) { put_error(&c->out, r->msg); c->failed = 1; }
    else if (r->status[k]) {
      put_error(&c->out, r->reasons && r->reasons[k] ? r->reasons[k] : p2q_strerror(r->status[k]));
      c->failed = 1;
    } else {
      p2q_vector_format(&c->out, r->vecs + (size_t)k * (size_t)r->dim, r->dim);
      p2q_buf_putc(&c->out, '\n');
    }
    k++;
  }
  c->done = 1;
}

static void call_fail_all(call_t *c, const char *msg) {
  for (int i = 0; i < c->n; i++) put_error(&c->out, c->text[i] ? msg : c->msg[i]);
  c->failed = 1;
  c->done = 1;
}

static void submit(embed_t *st, call_t *c) {
  const char *texts[CHUNK];
  size_t lens[CHUNK];
  int k = 0;
  for (int i = 0; i < c->n; i++)
    if (c->text[i]) { texts[k] = c->text[i]; lens[k] = c->len[i]; c->idx[k++] = i; }
  if (st->tail) st->tail->next = c;
  else st->head = c;
  st->tail = c;
  if (!k) { c->done = 1; call_fail_all(c, ""); return; }
  int rc = p2q_embedder_embed(st->e, texts, lens, k, embedded, c);
  if (rc) { call_fail_all(c, p2q_strerror(rc)); return; }
  st->inflight++;
}

/* Run the loop until at most `max` calls are in flight, writing what finished. */
static void drain(embed_t *st, int max) {
  for (;;) {
    int running = 0;
    for (call_t *c = st->head; c; c = c->next) running += !c->done;
    st->inflight = running;
    flush_done(st);
    if (running <= max) return;
    uv_run(&st->loop, UV_RUN_ONCE);
  }
}

/* ---- one input line → (text, len) or an error ------------------------------------------- */

static const char *jsonl_text(const char *s, size_t len, char **text, size_t *tlen) {
  size_t pos = 0, end;
  p2q_span_t v = {s, len};
  if (p2q_json_skip(s, len, &pos) != 0) return "not valid JSON";
  for (end = pos; end < len && (s[end] == ' ' || s[end] == '\t' || s[end] == '\r'); end++) {}
  if (end != len) return "not valid JSON (trailing data)";
  size_t st = 0;
  while (st < len && (s[st] == ' ' || s[st] == '\t')) st++;
  v = (p2q_span_t){s + st, pos - st};
  if (v.n && v.p[0] == '{' && p2q_json_find(s, len, "text", &v) != 1)
    return "not a JSON string or an object with a \"text\" string";
  if (!v.n || v.p[0] != '"') return "not a JSON string or an object with a \"text\" string";
  char *buf = malloc(v.n + 1); /* unescaping never grows a string */
  if (!buf) return "out of memory";
  int n = p2q_json_unescape(v, buf, v.n + 1);
  if (n < 0) { free(buf); return "not a valid JSON string"; }
  *text = buf;
  *tlen = (size_t)n;
  return NULL;
}

/* One line → malloc'd (*text, *len), or NULL text and the reason. */
static const char *line_text(const p2q_buf_t *line, int too_long, int jsonl, char **text, size_t *len) {
  *text = NULL;
  if (too_long) return "line longer than 64 MiB: skipped";
  if (jsonl) return jsonl_text(line->len ? line->data : "", line->len, text, len);
  if (!(*text = malloc(line->len + 1))) return "out of memory";
  if (line->len) memcpy(*text, line->data, line->len);
  (*text)[line->len] = 0;
  *len = line->len;
  return NULL;
}

static void add_line(call_t *c, const p2q_buf_t *line, int too_long, int jsonl) {
  int i = c->n++;
  c->msg[i] = line_text(line, too_long, jsonl, &c->text[i], &c->len[i]);
}

static int embed_sparse(const p2q_config_t *cfg, const char *rule, int jsonl, int document) {
  const p2q_rule_config_t *r = p2q_config_rule(cfg, rule);
  if (!r || !r->sparse) {
    fprintf(stderr, "pg2qdrant: embed: %s\n", r ? "the rule has no `sparse = bm25`" : "no such [rule.NAME] section");
    return 2;
  }
  p2q_bm25_opts_t o;
  p2q_bm25_t *a = NULL;
  p2q_bm25_defaults(&o);
  o.k1 = strtod(r->bm25_k1, NULL);
  o.b = strtod(r->bm25_b, NULL);
  o.avg_len = (double)r->bm25_avg_len;
  o.stopwords = r->bm25_stopwords;
  o.stem = r->bm25_stemmer;
  if (p2q_bm25_new(&o, &a)) { fprintf(stderr, "pg2qdrant: embed: bad bm25 settings\n"); return 1; }
  static reader_t rd;
  memset(&rd, 0, sizeof rd);
  p2q_buf_t line = P2Q_BUF_INIT, b = P2Q_BUF_INIT;
  int failed = 0, too_long;
  while (reader_line(&rd, &line, EMBED_MAX_LINE, &too_long)) {
    char *t;
    size_t len = 0;
    const char *msg = line_text(&line, too_long, jsonl, &t, &len);
    p2q_buf_reset(&b);
    int rc = msg ? 0 : document ? p2q_bm25_document(a, t, len, &b) : p2q_bm25_query(a, t, len, &b);
    free(t);
    if (msg || rc < 0) {
      p2q_buf_reset(&b);
      put_error(&b, msg ? msg : p2q_strerror(rc));
      failed = 1;
    } else {
      p2q_buf_putc(&b, '\n');
    }
    fwrite(b.data, 1, b.len, stdout);
    fflush(stdout);
  }
  p2q_buf_free(&b);
  p2q_buf_free(&line);
  p2q_bm25_free(a);
  return failed;
}

static void closed(void *arg) { *(int *)arg = 1; }

int p2q_cmd_embed(const p2q_config_t *cfg, int argc, char **argv) {
  const char *name = NULL, *sparse = NULL;
  int jsonl = 0, document = 0;
  for (int i = 0; i < argc; i++) {
    if (!strcmp(argv[i], "--jsonl")) jsonl = 1;
    else if (!strcmp(argv[i], "--embedder") && i + 1 < argc) name = argv[++i];
    else if (!strcmp(argv[i], "--sparse") && i + 1 < argc) sparse = argv[++i];
    else if (!strcmp(argv[i], "--document")) document = 1;
    else { fprintf(stderr, "usage: pg2qdrant embed [--embedder NAME | --sparse RULE [--document]] [--jsonl]\n"); return 2; }
  }
  if (sparse) return embed_sparse(cfg, sparse, jsonl, document);
  const p2q_embedder_config_t *ec = name ? p2q_config_embedder(cfg, name) : (cfg->n_embedders ? &cfg->embedders[0] : NULL);
  if (!ec) {
    fprintf(stderr, "pg2qdrant: embed: %s\n", name ? "no such [embedder.NAME] section" : "no [embedder.NAME] section in the config");
    return 2;
  }
  static embed_t st; /* large reader buffer lives beside it; one embed per process */
  static reader_t rd;
  memset(&st, 0, sizeof st);
  memset(&rd, 0, sizeof rd);
  uv_loop_init(&st.loop);
  char err[512];
  if (p2q_embedder_new(&st.loop, ec, &st.e, err, sizeof err)) {
    fprintf(stderr, "pg2qdrant: embed: %s\n", err);
    uv_loop_close(&st.loop);
    return 1;
  }
  int depth = ec->threads > 0 ? 2 * (int)ec->threads : 2;
  if (ec->type == P2Q_EMB_MINILM) {
    const p2q_blas_info_t *bi = p2q_blas_info();
    fprintf(stderr, "pg2qdrant embed: embedder %s, threads %d, BLAS kernel %s (OpenBLAS detected %s, CPU %s, "
            "selected by %s)\n", ec->name, ec->threads > 0 ? (int)ec->threads : 1, bi->core,
            bi->detected[0] ? bi->detected : "-", bi->cpu, bi->how);
  }
  p2q_buf_t line = P2Q_BUF_INIT;
  call_t *cur = NULL;
  int too_long;
  for (;;) {
    if (cur && cur->n && reader_would_block(&rd)) { submit(&st, cur); cur = NULL; } /* don't sit on lines */
    if (!cur) drain(&st, depth - 1); /* room for the call about to be filled */
    if (!reader_line(&rd, &line, EMBED_MAX_LINE, &too_long)) break;
    if (!cur && !(cur = calloc(1, sizeof *cur))) { fprintf(stderr, "pg2qdrant: embed: out of memory\n"); st.failed = 1; break; }
    add_line(cur, &line, too_long, jsonl);
    if (cur->n == CHUNK) { submit(&st, cur); cur = NULL; }
    uv_run(&st.loop, UV_RUN_NOWAIT); /* deliver what finished meanwhile */
    flush_done(&st);
  }
  if (cur && cur->n) submit(&st, cur);
  else free(cur);
  drain(&st, 0);
  p2q_buf_free(&line);
  int is_closed = 0;
  p2q_embedder_close(st.e, closed, &is_closed);
  while (!is_closed) uv_run(&st.loop, UV_RUN_ONCE);
  uv_run(&st.loop, UV_RUN_DEFAULT);
  uv_loop_close(&st.loop);
  fflush(stdout);
  return st.failed ? 1 : 0;
}

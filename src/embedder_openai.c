/*
 * embedder_openai.c — the OpenAI-compatible HTTP embedder (POST url with {"model", "input",
 * "dimensions"}) and its pure helpers (see embedder.h for the outcome contract).
 *
 * Owns, per embedder: one FIFO of requests from every caller, the shared budget (two ratelimit.c
 * buckets: requests and estimated tokens per second, both paused by a 429) and the timer that
 * wakes the FIFO when the budget allows; per request, its range of one call's texts.
 * Flow: a call's texts are cut to max_input_tokens (estimate), then into requests of batch_size
 * texts, queued; dispatch() sends from the head while fewer than max_inflight are out and the
 * budget says go. An answer:
 *   2xx → the vectors go into the call's buffer (a body that is not an embeddings answer for
 *         these texts — no data, wrong dimension or count, non-numbers, bigger than n × dimension
 *         can be — fails the call transiently: the endpoint's fault, never the texts');
 *   400/413/422 → the request's two halves are queued at the head; a lone text is retried once
 *         cut to max_input_tokens bytes when it was longer, else rejected with the API's reason;
 *   429 → both budgets halve and pause every caller (Retry-After, capped by retry_max), and the
 *         call fails transiently; transport errors, 408, 5xx and configuration answers
 *         (401/403/404/3xx) fail the call transiently.
 * A failed call's unsent requests are dropped.
 * Invariants: a call finishes when its last request is answered or dropped (pending == 0);
 * nothing is queued once the embedder is closing; dispatch() never re-enters itself.
 * Works through the narrow context of embedder_openai.h (a call's buffers and its finish
 * callback): it never calls up into embedder.c. Loop thread only.
 */
#include "embedder_openai.h"
#include "pg2qdrant/openai.h"
#include "pg2qdrant/errors.h"
#include "pg2qdrant/log.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct oreq_s {
  p2q_emb_call_t *c;
  int first, n;   /* texts [first, first + n) of the call */
  int hard_cut;   /* a lone text already retried cut to max_input_tokens bytes */
  oreq_t *next;
};

/* ---- pure parts ---------------------------------------------------------------------------- */

int64_t p2q_embed_estimate_tokens(const char *s, size_t len) {
  int64_t ascii = 0, other = 0;
  for (size_t i = 0; i < len; i++) {
    if ((unsigned char)s[i] < 0x80) ascii++;
    else other++;
  }
  return (ascii + 2) / 3 + other;
}

size_t p2q_utf8_floor(const char *s, size_t len, size_t cut) {
  if (cut >= len) return len;
  /* s[cut] is the first byte left out: while it continues a sequence, the cut is inside it
     (a sequence has at most 3 continuation bytes) */
  for (int k = 0; k < 3 && cut > 0 && ((unsigned char)s[cut] & 0xC0) == 0x80; k++) cut--;
  return cut;
}

size_t p2q_embed_truncate(const char *s, size_t len, int64_t max_tokens) {
  if (max_tokens <= 0) return len;
  int64_t ascii = 0, other = 0;
  for (size_t i = 0; i < len; i++) {
    if ((unsigned char)s[i] < 0x80) ascii++;
    else other++;
    if ((ascii + 2) / 3 + other > max_tokens) return p2q_utf8_floor(s, len, i);
  }
  return len;
}

void p2q_openai_body(p2q_buf_t *b, const char *model, int64_t dimensions, const char *const *texts,
                     const size_t *lens, int n) {
  p2q_buf_puts(b, "{\"model\":");
  p2q_buf_json_string(b, model, strlen(model));
  p2q_buf_puts(b, ",\"input\":[");
  for (int i = 0; i < n; i++) {
    if (i) p2q_buf_putc(b, ',');
    p2q_buf_json_string(b, texts[i], lens[i]);
  }
  p2q_buf_putc(b, ']');
  if (dimensions > 0) p2q_buf_printf(b, ",\"dimensions\":%lld", (long long)dimensions);
  p2q_buf_putc(b, '}');
}

p2q_oai_class_t p2q_openai_classify(long status) {
  if (status >= 200 && status < 300) return P2Q_OAI_OK;
  if (status == 400 || status == 413 || status == 422) return P2Q_OAI_REJECT;
  if (status == 429) return P2Q_OAI_THROTTLE;
  if (status == 0 || status == 408 || status >= 500) return P2Q_OAI_RETRY;
  return P2Q_OAI_CONFIG;
}

/* Copy s[0, len) as one line (control characters become spaces), trailing spaces trimmed. */
static void one_line(char *out, size_t n, const char *s, size_t len) {
  size_t o = 0;
  if (!n) return;
  for (size_t i = 0; i < len && o + 1 < n; i++)
    out[o++] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? ' ' : s[i];
  while (o > 0 && out[o - 1] == ' ') o--;
  out[o] = 0;
  if (!o) snprintf(out, n, "(empty body)");
}

void p2q_openai_error_message(const char *body, size_t len, char *out, size_t n) {
  cJSON *root = body ? cJSON_ParseWithLength(body, len) : NULL;
  const cJSON *m = NULL;
  if (cJSON_IsObject(root)) {
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(root, "error");
    if (cJSON_IsObject(err)) m = cJSON_GetObjectItemCaseSensitive(err, "message");
    else if (cJSON_IsString(err)) m = err;
    if (!cJSON_IsString(m)) m = cJSON_GetObjectItemCaseSensitive(root, "message");
    if (!cJSON_IsString(m)) m = cJSON_GetObjectItemCaseSensitive(root, "detail");
  }
  if (cJSON_IsString(m)) one_line(out, n, m->valuestring, strlen(m->valuestring));
  else one_line(out, n, body ? body : "", body ? len : 0);
  cJSON_Delete(root);
}

char *p2q_openai_endpoint(const char *url) {
  /* base URL or the full endpoint; a query (Azure OpenAI's ?api-version=…) stays at the end */
  const char *q = strchr(url, '?');
  size_t n = q ? (size_t)(q - url) : strlen(url), qlen = q ? strlen(q) : 0;
  while (n > 0 && url[n - 1] == '/') n--;
  static const char suffix[] = "/embeddings";
  size_t k = sizeof suffix - 1;
  int full = n >= k && !strncmp(url + n - k, suffix, k);
  size_t total = n + (full ? 0 : k) + qlen;
  char *out = malloc(total + 1);
  if (!out) return NULL;
  memcpy(out, url, n);
  if (!full) memcpy(out + n, suffix, k);
  if (qlen) memcpy(out + n + (full ? 0 : k), q, qlen);
  out[total] = 0;
  return out;
}

int p2q_embed_bisect(int first, int n, int first2[2], int n2[2]) {
  if (n <= 1) return 0;
  n2[0] = n / 2;
  n2[1] = n - n2[0];
  first2[0] = first;
  first2[1] = first + n2[0];
  return 2;
}

int p2q_openai_parse(const char *body, size_t len, int n, int dim, float *out, long *usage_tokens,
                     char *msg, size_t msglen) {
  cJSON *root = cJSON_ParseWithLength(body, len);
  int rc = P2Q_EBADJSON, got = 0;
  unsigned char *seen = NULL;
  const cJSON *data = root ? cJSON_GetObjectItemCaseSensitive(root, "data") : NULL;
  if (usage_tokens) *usage_tokens = 0;
  if (!cJSON_IsArray(data)) {
    char m[200];
    p2q_openai_error_message(body, len, m, sizeof m);
    snprintf(msg, msglen, "embedder response has no \"data\" array: %s", m);
    goto out;
  }
  if (!(seen = calloc((size_t)(n ? n : 1), 1))) { rc = P2Q_ENOMEM; goto out; }
  const cJSON *item;
  rc = 0;
  cJSON_ArrayForEach(item, data) {
    const cJSON *emb = cJSON_GetObjectItemCaseSensitive(item, "embedding");
    const cJSON *idx = cJSON_GetObjectItemCaseSensitive(item, "index");
    int i = cJSON_IsNumber(idx) ? idx->valueint : got;
    if (!cJSON_IsArray(emb) || i < 0 || i >= n || seen[i]) {
      snprintf(msg, msglen, "embedder returned an entry without a valid embedding/index (%d)", i);
      rc = P2Q_EEMBED;
      break;
    }
    int d = cJSON_GetArraySize(emb);
    if (d != dim) {
      snprintf(msg, msglen, "embedder returned a vector of dimension %d, expected %d", d, dim);
      rc = P2Q_EEMBED;
      break;
    }
    int k = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, emb) {
      if (!cJSON_IsNumber(x)) { rc = P2Q_EEMBED; break; }
      out[(size_t)i * (size_t)dim + (size_t)k++] = (float)x->valuedouble;
    }
    if (rc) { snprintf(msg, msglen, "embedder returned a non-numeric vector element"); break; }
    seen[i] = 1;
    got++;
  }
  if (!rc && got != n) {
    snprintf(msg, msglen, "embedder returned %d vectors for %d texts", got, n);
    rc = P2Q_EEMBED;
  }
  const cJSON *usage = rc ? NULL : cJSON_GetObjectItemCaseSensitive(root, "usage");
  const cJSON *pt = cJSON_IsObject(usage) ? cJSON_GetObjectItemCaseSensitive(usage, "prompt_tokens") : NULL;
  if (usage_tokens && cJSON_IsNumber(pt) && pt->valuedouble > 0) *usage_tokens = (long)pt->valuedouble;
out:
  free(seen);
  cJSON_Delete(root);
  return rc;
}

/* ---- the request FIFO and the shared budget ------------------------------------------------- */

static void dispatch(p2q_emb_openai_t *e);

static void call_fail(p2q_emb_call_t *c, int err, int transient, int64_t retry_after_ms, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void call_fail(p2q_emb_call_t *c, int err, int transient, int64_t retry_after_ms, const char *fmt, ...) {
  if (c->err) return; /* the first failure decides */
  c->err = err;
  c->transient = transient;
  c->retry_after_ms = retry_after_ms;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(c->msg, sizeof c->msg, fmt, ap);
  va_end(ap);
}

/* q is answered or dropped: the call finishes with its last request. */
static void req_done(oreq_t *q) {
  p2q_emb_call_t *c = q->c;
  free(q);
  if (--c->pending == 0) c->finish(c); /* the owner delivers and frees it */
}

static void push_front(p2q_emb_openai_t *e, oreq_t *q) {
  q->next = e->q_head;
  e->q_head = q;
  if (!e->q_tail) e->q_tail = q;
}

static oreq_t *pop(p2q_emb_openai_t *e) {
  oreq_t *q = e->q_head;
  if (q && !(e->q_head = q->next)) e->q_tail = NULL;
  return q;
}

/* What an answer to n texts can weigh: n vectors of dim numbers as JSON text (a float32 printed
   in full is at most ~24 characters with its comma), their envelopes, and the usage. */
static size_t answer_cap(const p2q_emb_openai_t *e, int n) {
  return 65536 + (size_t)n * ((size_t)e->dim * 32 + 256);
}

/* Both budgets at once: 0 = go (both charged), else the milliseconds to wait. */
static uint64_t budget_take(p2q_emb_openai_t *e, uint64_t now, uint64_t tokens) {
  uint64_t w = p2q_ratelimit_take(&e->rl_req, now, 1);
  if (w) return w;
  if ((w = p2q_ratelimit_take(&e->rl_tok, now, tokens ? tokens : 1))) {
    if (e->rl_req.rate > 0) e->rl_req.tokens += 1; /* not sent after all */
    e->rl_req.win_cost -= 1;
  }
  return w;
}

static void timer_cb(uv_timer_t *t) { dispatch(t->data); }

static void openai_done(p2q_http_t *h, int err, const p2q_http_response_t *resp, void *arg);

static int send_req(p2q_emb_openai_t *e, oreq_t *q) {
  p2q_emb_call_t *c = q->c;
  p2q_buf_t body = P2Q_BUF_INIT;
  p2q_openai_body(&body, e->cfg->model, e->cfg->dimensions, (const char *const *)c->texts + q->first,
                  c->lens + q->first, q->n);
  size_t len = body.len;
  char *data = p2q_buf_error(&body) ? NULL : p2q_buf_steal(&body);
  p2q_buf_free(&body);
  if (!data) return P2Q_ENOMEM;
  int rc = p2q_http_request_capped(e->http, "POST", e->url, data, len, P2Q_HTTP_TAKE_BODY,
                                   answer_cap(e, q->n), openai_done, q);
  if (rc) free(data);
  return rc;
}

/* Send from the head of the FIFO while the concurrency cap and the budget allow. */
static void dispatch(p2q_emb_openai_t *e) {
  if (e->dispatching) { e->redispatch = 1; return; }
  e->dispatching = 1;
  do {
    e->redispatch = 0;
    while (e->q_head && !e->closing && e->inflight < (int)e->cfg->max_inflight) {
      oreq_t *q = e->q_head;
      p2q_emb_call_t *c = q->c;
      if (c->err) { pop(e); req_done(q); continue; } /* its call has failed: not worth sending */
      int64_t tokens = 0;
      for (int i = 0; i < q->n; i++) tokens += p2q_embed_estimate_tokens(c->texts[q->first + i], c->lens[q->first + i]);
      uint64_t wait = budget_take(e, uv_now(e->loop), (uint64_t)tokens);
      if (wait) { uv_timer_start(&e->timer, timer_cb, wait, 0); break; }
      pop(e);
      int rc = send_req(e, q);
      if (rc) {
        call_fail(c, rc, 1, -1, "embedder: cannot send the request: %s", p2q_strerror(rc));
        req_done(q);
        continue;
      }
      e->inflight++;
    }
  } while (e->redispatch);
  e->dispatching = 0;
}

/* 400/413/422 for q: 1 when q went back to the FIFO (halves, or a lone text cut harder), 0 when
   its lone text is rejected (status and reason set) or the split could not be set up. */
static int rejected(p2q_emb_openai_t *e, oreq_t *q, const p2q_http_response_t *resp) {
  p2q_emb_call_t *c = q->c;
  int f[2], k[2];
  if (p2q_embed_bisect(q->first, q->n, f, k) == 2) {
    oreq_t *b = malloc(sizeof *b);
    if (!b) { call_fail(c, P2Q_ENOMEM, 1, -1, "embedder: out of memory"); return 0; }
    *b = (oreq_t){c, f[1], k[1], 0, NULL};
    q->n = k[0];
    push_front(e, b);
    push_front(e, q);
    c->pending++;
    return 1;
  }
  int i = q->first;
  int64_t lim = e->cfg->max_input_tokens;
  if (lim > 0 && !q->hard_cut && c->lens[i] > (size_t)lim) {
    /* the estimate was too kind for this text: a byte-level BPE never makes more tokens than
       bytes, so max_input_tokens bytes do fit */
    c->lens[i] = p2q_utf8_floor(c->texts[i], c->lens[i], (size_t)lim);
    q->hard_cut = 1;
    push_front(e, q);
    return 1;
  }
  char m[300], why[400];
  p2q_openai_error_message(resp->body, resp->body_len, m, sizeof m);
  snprintf(why, sizeof why, "embedder rejected the text (HTTP %ld): %s", resp->status, m);
  c->status[i] = P2Q_EEMBED;
  free(c->reasons[i]);
  c->reasons[i] = strdup(why);
  char qm[600];
  P2Q_DEBUG("embed_text_rejected", "embedder=%s status=%ld reason=%s", e->cfg->name, resp->status,
            p2q_log_q(qm, sizeof qm, m));
  return 0;
}

static void answered_ok(p2q_emb_openai_t *e, oreq_t *q, const p2q_http_response_t *resp, uint64_t now) {
  p2q_emb_call_t *c = q->c;
  char msg[512];
  long used = 0;
  int rc = p2q_openai_parse(resp->body, resp->body_len, q->n, e->dim,
                            c->vecs + (size_t)q->first * (size_t)e->dim, &used, msg, sizeof msg);
  if (rc) {
    /* a 2xx that is not an answer for these texts (wrong dimension, wrong count, non-numbers) is
       the endpoint's fault (another model behind it, a proxy): it costs time, never attempts */
    call_fail(c, rc, 1, -1, "%s", msg);
    return;
  }
  c->tokens += used;
  p2q_ratelimit_on_success(&e->rl_req, now);
  p2q_ratelimit_on_success(&e->rl_tok, now);
}

static void openai_done(p2q_http_t *h, int err, const p2q_http_response_t *resp, void *arg) {
  oreq_t *q = arg;
  p2q_emb_call_t *c = q->c;
  p2q_emb_openai_t *e = c->o;
  uint64_t now = uv_now(e->loop);
  long status = err ? 0 : resp->status;
  char m[300];
  (void)h;
  e->inflight--;
  if (err == P2Q_ECANCELED || e->closing) {
    call_fail(c, P2Q_ECANCELED, 1, -1, "embedder: closing");
  } else if (c->err) {
    /* the call has failed already: this answer changes nothing */
  } else switch (p2q_openai_classify(status)) {
    case P2Q_OAI_OK:
      answered_ok(e, q, resp, now);
      break;
    case P2Q_OAI_REJECT:
      if (rejected(e, q, resp)) { dispatch(e); return; }
      break;
    case P2Q_OAI_THROTTLE: {
      int64_t ra = resp->retry_after_ms; /* capped by retry_max in http.c */
      p2q_ratelimit_on_429(&e->rl_req, now, ra);
      if (e->cfg->tokens_per_minute > 0) p2q_ratelimit_on_429(&e->rl_tok, now, ra);
      uint64_t pause = p2q_ratelimit_paused_ms(&e->rl_req, now);
      p2q_openai_error_message(resp->body, resp->body_len, m, sizeof m);
      call_fail(c, P2Q_EEMBED, 1, (int64_t)pause, "embedder HTTP 429 (rate limited, every caller paused %llu ms): %s",
                (unsigned long long)pause, m);
      break;
    }
    case P2Q_OAI_RETRY:
    case P2Q_OAI_CONFIG:
      if (status) {
        p2q_openai_error_message(resp->body, resp->body_len, m, sizeof m);
        call_fail(c, P2Q_EEMBED, 1, resp->retry_after_ms, "embedder HTTP %ld%s: %s", status,
                  p2q_openai_classify(status) == P2Q_OAI_CONFIG ? " (check url, model and key)" : "", m);
      } else {
        call_fail(c, err ? err : P2Q_EHTTP, 1, -1, "embedder %s: %s",
                  err == P2Q_EOVERFLOW ? "answer bigger than texts x dimension allow" : "transport error",
                  resp->error && *resp->error ? resp->error : p2q_strerror(err));
      }
      break;
  }
  req_done(q);
  dispatch(e);
}

/* ---- lifecycle ------------------------------------------------------------------------------ */

int p2q_emb_openai_new(p2q_emb_openai_t *e, char *err, size_t errlen) {
  const p2q_embedder_config_t *cfg = e->cfg;
  if (e->dim <= 0) {
    snprintf(err, errlen, "embedder %s: vector size unknown: set dimensions here, or use it from a "
             "rule that sets dimension", cfg->name);
    return P2Q_ECONFIG;
  }
  if (!(e->url = p2q_openai_endpoint(cfg->url))) return P2Q_ENOMEM;
  const char *key = cfg->api_key_env && *cfg->api_key_env ? getenv(cfg->api_key_env) : NULL;
  uint64_t wait = cfg->retry_max_ms > 0 ? (uint64_t)cfg->retry_max_ms : 300000;
  p2q_http_options_t o = {.timeout_ms = 60000, .max_concurrent = (int)cfg->max_inflight,
                          .bearer = key, .user_agent = "pg2qdrant", .retry_after_max_ms = wait};
  int rc = p2q_http_new(e->loop, &o, &e->http);
  if (rc) {
    snprintf(err, errlen, "embedder %s: %s", cfg->name, p2q_strerror(rc));
    free(e->url);
    e->url = NULL;
    return rc;
  }
  uv_timer_init(e->loop, &e->timer);
  e->timer.data = e;
  e->has_timer = 1;
  p2q_ratelimit_init(&e->rl_req, (double)cfg->requests_per_minute / 60.0);
  p2q_ratelimit_init(&e->rl_tok, (double)cfg->tokens_per_minute / 60.0);
  p2q_ratelimit_set_max_wait(&e->rl_req, wait);
  p2q_ratelimit_set_max_wait(&e->rl_tok, wait);
  return 0;
}

int p2q_emb_openai_embed(p2q_emb_call_t *c) {
  p2q_emb_openai_t *e = c->o;
  const p2q_embedder_config_t *cfg = e->cfg;
  int per = cfg->batch_size > 0 ? (int)cfg->batch_size : 64, k = 0;
  oreq_t *head = NULL, **tail = &head;
  c->reasons = calloc((size_t)c->n, sizeof *c->reasons);
  c->orig_lens = malloc(sizeof *c->orig_lens * (size_t)c->n);
  if (!c->reasons || !c->orig_lens) return P2Q_ENOMEM;
  for (int i = 0; i < c->n; i++) {
    c->orig_lens[i] = c->lens[i];
    c->lens[i] = p2q_embed_truncate(c->texts[i], c->lens[i], cfg->max_input_tokens);
  }
  for (int first = 0; first < c->n; first += per, k++) {
    oreq_t *q = malloc(sizeof *q);
    if (!q) {
      while (head) { oreq_t *nx = head->next; free(head); head = nx; }
      return P2Q_ENOMEM;
    }
    *q = (oreq_t){c, first, c->n - first < per ? c->n - first : per, 0, NULL};
    *tail = q;
    tail = &q->next;
  }
  c->pending = k;
  if (e->q_tail) e->q_tail->next = head;
  else e->q_head = head;
  for (oreq_t *q = head; q; q = q->next) e->q_tail = q;
  dispatch(e);
  return 0;
}

static void timer_closed(uv_handle_t *t) {
  p2q_emb_openai_t *e = t->data;
  e->closed(e->closed_arg);
}

static void http_closed(p2q_http_t *h, void *arg) {
  p2q_emb_openai_t *e = arg;
  (void)h;
  uv_close((uv_handle_t *)&e->timer, timer_closed);
}

void p2q_emb_openai_close(p2q_emb_openai_t *e, void (*done)(void *arg), void *arg) {
  e->closed = done;
  e->closed_arg = arg;
  uv_timer_stop(&e->timer);
  for (oreq_t *q; (q = pop(e));) { /* queued: never sent */
    call_fail(q->c, P2Q_ECANCELED, 1, -1, "embedder: closing");
    req_done(q);
  }
  p2q_http_close(e->http, http_closed, e); /* in flight: answered with P2Q_ECANCELED */
}


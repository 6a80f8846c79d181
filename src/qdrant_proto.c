/*
 * qdrant_proto.c — Qdrant's REST protocol, pure: status classification, envelope parsing,
 * path escaping, and the interpretation of one answer
 * (p2q_qdrant_interpret, for the client in qdrant.c); see pg2qdrant/qdrant_proto.h.
 *
 * No I/O, no state: callable from any thread, unit-tested on canned JSON (tests/unit/test_qdrant.c).
 * Invariants: every answer gets exactly one class (qdrant_proto.h lists them); messages quote at most
 * the start of a body, one line, and mask credentials in a redirect's Location.
 */
#include "pg2qdrant/qdrant_proto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg2qdrant/errors.h"
#include "pg2qdrant/redact.h"

p2q_qdrant_class_t p2q_qdrant_classify(long status, int curl_code, int64_t retry_after_ms,
                                       long *delay_ms) {
  p2q_qdrant_class_t c;
  (void)curl_code;
  if (status >= 200 && status < 300) c = P2Q_QDRANT_OK;
  else if (status < 400) c = P2Q_QDRANT_RETRY; /* no answer (0), 1xx, 3xx: the target's problem */
  else if (status == 400 || status == 409 || status == 422) c = P2Q_QDRANT_PERMANENT;
  else if (status == 404 || status == 410) c = P2Q_QDRANT_MISSING;
  else if (status == 408) c = P2Q_QDRANT_RETRY;
  else if (status == 413) c = P2Q_QDRANT_TOO_LARGE;
  else if (status == 429) c = P2Q_QDRANT_RATE;
  else if (status < 500) c = P2Q_QDRANT_CONFIG; /* 401, 403, 405, 407, 421, 426, ... */
  else c = P2Q_QDRANT_RETRY;                    /* every 5xx (and beyond) */
  if (delay_ms)
    *delay_ms = (c == P2Q_QDRANT_RETRY || c == P2Q_QDRANT_RATE) && retry_after_ms >= 0
                    ? (long)retry_after_ms : -1;
  return c;
}

const char *p2q_qdrant_class_name(p2q_qdrant_class_t c) {
  switch (c) {
#define XX(name, label, transient) case P2Q_QDRANT_##name: return label;
    P2Q_QDRANT_CLASS_MAP(XX)
#undef XX
    default: return "unknown";
  }
}

int p2q_qdrant_class_transient(p2q_qdrant_class_t c) {
  switch (c) {
#define XX(name, label, transient) case P2Q_QDRANT_##name: return transient;
    P2Q_QDRANT_CLASS_MAP(XX)
#undef XX
    default: return 1;
  }
}

/* Copy a plain-text body as a one-line message (at most max bytes of it). */
static void text_msg(char *msg, size_t n, const char *body, size_t len, long status) {
  size_t o = 0;
  for (size_t i = 0; i < len && o + 1 < n; i++) {
    char ch = body[i];
    msg[o++] = (ch == '\n' || ch == '\r' || ch == '\t') ? ' ' : ch;
  }
  while (o > 0 && msg[o - 1] == ' ') o--;
  if (n) msg[o < n ? o : n - 1] = 0;
  if (o == 0) snprintf(msg, n, "HTTP %ld", status);
}

/* The start of a body, one line, for messages about answers that are not Qdrant's. */
static void body_snippet(char *out, size_t n, const char *body, size_t len) {
  char tmp[121];
  if (!body || !len) { snprintf(out, n, "an empty body"); return; }
  text_msg(tmp, sizeof tmp, body, len < 120 ? len : 120, 0);
  snprintf(out, n, "\"%s%s\"", tmp, len > 120 ? "..." : "");
}

/* parse_envelope, also saying whether the body was Qdrant's JSON error envelope. */
static int parse_envelope_ex(long status, const char *body, size_t len, cJSON **root,
                             const cJSON **result, char *msg, size_t msglen, int *enveloped) {
  char snip[160];
  *root = NULL;
  *result = NULL;
  *enveloped = 0;
  if (msglen) msg[0] = 0;
  cJSON *doc = (body && len) ? cJSON_ParseWithLength(body, len) : NULL;
  const cJSON *st = cJSON_IsObject(doc) ? cJSON_GetObjectItemCaseSensitive(doc, "status") : NULL;
  const cJSON *e = cJSON_IsObject(st) ? cJSON_GetObjectItemCaseSensitive(st, "error") : NULL;
  if (cJSON_IsString(e) && e->valuestring) { /* an error envelope, whatever the status */
    *enveloped = 1;
    if (status >= 200 && status < 300)
      snprintf(msg, msglen, "HTTP %ld carrying an error, not Qdrant's success envelope: %s", status,
               e->valuestring);
    else
      snprintf(msg, msglen, "%s", e->valuestring);
    cJSON_Delete(doc);
    return P2Q_EQDRANT;
  }
  if (status >= 200 && status < 300) {
    const cJSON *res = cJSON_IsObject(doc) ? cJSON_GetObjectItemCaseSensitive(doc, "result") : NULL;
    if (res && cJSON_IsString(st) && st->valuestring && !strcmp(st->valuestring, "ok")) {
      *enveloped = 1;
      *root = doc;
      *result = res;
      return 0;
    }
    body_snippet(snip, sizeof snip, body, len);
    snprintf(msg, msglen, "HTTP %ld answer is not Qdrant's success envelope (%s): %s", status,
             !doc ? "not JSON" : !res ? "no `result`" : "no \"status\":\"ok\"", snip);
    cJSON_Delete(doc);
    return P2Q_EBADJSON;
  }
  text_msg(msg, msglen, body ? body : "", body ? len : 0, status);
  cJSON_Delete(doc);
  return P2Q_EQDRANT;
}

int p2q_qdrant_parse_envelope(long status, const char *body, size_t len, cJSON **root,
                              const cJSON **result, char *msg, size_t msglen) {
  int enveloped;
  return parse_envelope_ex(status, body, len, root, result, msg, msglen, &enveloped);
}

int p2q_qdrant_path_escape(const char *in, char *out, size_t outlen) {
  static const char hex[] = "0123456789ABCDEF";
  size_t o = 0;
  if (!in || !out) return P2Q_EINVAL;
  for (const unsigned char *p = (const unsigned char *)in; *p; p++) {
    int keep = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
               *p == '-' || *p == '_' || *p == '.' || *p == '~';
    if (o + (keep ? 1 : 3) >= outlen) return P2Q_EOVERFLOW;
    if (keep) out[o++] = (char)*p;
    else { out[o++] = '%'; out[o++] = hex[*p >> 4]; out[o++] = hex[*p & 15]; }
  }
  if (o >= outlen) return P2Q_EOVERFLOW;
  out[o] = 0;
  return (int)o;
}

/* ---------------- one answer ---------------- */

/* result.status == "wait_timeout": accepted but not applied within the timeout. */
static int is_wait_timeout(const cJSON *result) {
  const cJSON *s = cJSON_IsObject(result) ? cJSON_GetObjectItemCaseSensitive(result, "status") : NULL;
  return cJSON_IsString(s) && s->valuestring && !strcmp(s->valuestring, "wait_timeout");
}

/* A 3xx: never followed (the redirect may change host or scheme, or point at a login page). */
static void redirect_msg(char *msg, size_t n, long status, const char *location) {
  char *masked = location && *location ? p2q_redact_url(location) : NULL;
  if (masked)
    snprintf(msg, n, "HTTP %ld redirect to %s, not followed: set qdrant.url to the address that "
             "answers", status, masked);
  else
    snprintf(msg, n, "HTTP %ld redirect%s, not followed: set qdrant.url to the address that answers",
             status, location && *location ? "" : " without a Location");
  free(masked);
}

void p2q_qdrant_interpret(p2q_qdrant_kind_t kind, const p2q_http_response_t *hr,
                          p2q_qdrant_resp_t *resp, cJSON **root, char *msg, size_t n) {
  long status = hr->status;
  int enveloped = 0;
  if (status >= 300 && status < 400) {
    resp->err = P2Q_EQDRANT;
    redirect_msg(msg, n, status, hr->location);
    return;
  }
  if (kind == P2Q_QK_PROBE) { /* /readyz answers plain text */
    resp->err = status == 200 ? 0 : P2Q_EQDRANT;
    if (resp->err) text_msg(msg, n, hr->body, hr->body_len, status);
    if (resp->cls == P2Q_QDRANT_MISSING) resp->cls = P2Q_QDRANT_CONFIG; /* no /readyz: wrong URL */
    return;
  }
  int rc = parse_envelope_ex(status, hr->body, hr->body_len, root, &resp->result, msg, n, &enveloped);
  resp->err = rc;
  if (rc && status >= 200 && status < 300) resp->cls = P2Q_QDRANT_RETRY; /* not a success answer */
  if (status == 404 || status == 410) {
    if (!enveloped) { /* no Qdrant behind this route */
      char snip[160];
      body_snippet(snip, sizeof snip, hr->body, hr->body_len);
      snprintf(msg, n, "HTTP %ld without Qdrant's error envelope (no such route: check qdrant.url): %s",
               status, snip);
      resp->cls = P2Q_QDRANT_CONFIG;
    } else if (strstr(msg, P2Q_QDRANT_SHARDS_FAILED)) {
      resp->cls = P2Q_QDRANT_RETRY; /* some shards applied it: the collection exists (cluster) */
    } else if (!strstr(msg, "Collection") && !strstr(msg, "collection")) {
      resp->cls = P2Q_QDRANT_PERMANENT; /* e.g. "No point with id … found" */
    }
  }
  if (rc == 0 && is_wait_timeout(resp->result)) {
    resp->err = P2Q_ETIMEOUT;
    resp->cls = P2Q_QDRANT_RETRY;
    snprintf(msg, n, "operation accepted but not completed (wait_timeout)");
  }
}

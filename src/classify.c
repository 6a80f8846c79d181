/*
 * classify.c — outcome classification (see classify.h). Pure; any thread.
 */
#include "pg2qdrant/classify.h"
#include "pg2qdrant/errors.h"

#include <string.h>

static const char *const verdict_names[] = {
#define P2Q_VERDICT_NAME(e, name) name,
    P2Q_VERDICTS(P2Q_VERDICT_NAME)
#undef P2Q_VERDICT_NAME
};

const char *p2q_verdict_name(p2q_verdict_t v) { return (unsigned)v < P2Q_V_COUNT ? verdict_names[v] : "?"; }

/* curl: 5 couldn't resolve proxy, 6 couldn't resolve host, 7 couldn't connect */
static int host_wide_curl(int curl_code) { return curl_code == 5 || curl_code == 6 || curl_code == 7; }

p2q_verdict_t p2q_classify_qdrant(long status, int err, int curl_code, p2q_qdrant_class_t cls, int n_points,
                                  int *host_wide) {
  int hw = 0;
  p2q_verdict_t v;
  if (err == P2Q_ECANCELED) v = P2Q_V_CANCELED;
  else if (err == P2Q_ENODE) { v = P2Q_V_TRANSIENT; hw = -1; } /* one node of several: no target's fault */
  else switch (cls) { /* the client's class (qdrant.h) already looked at the body */
  case P2Q_QDRANT_OK: v = status >= 200 && status < 300 && !err ? P2Q_V_DONE : P2Q_V_TRANSIENT; break;
  case P2Q_QDRANT_TOO_LARGE:
  case P2Q_QDRANT_PERMANENT: v = n_points > 1 ? P2Q_V_SPLIT : P2Q_V_EVENT_FAULT; break;
  case P2Q_QDRANT_RATE: v = P2Q_V_RATE_LIMITED; break;
  case P2Q_QDRANT_CONFIG: v = P2Q_V_CONFIG; break;
  case P2Q_QDRANT_MISSING: v = P2Q_V_MISSING; break;
  default: /* RETRY: transport, 408, 5xx, 3xx, 1xx, a 2xx without a success envelope */
    v = P2Q_V_TRANSIENT;
    hw = status == 0 && host_wide_curl(curl_code);
    break;
  }
  if (host_wide) *host_wide = hw;
  return v;
}

p2q_verdict_t p2q_classify_embed(int err, int transient, long status, int n_texts) {
  if (!err) return P2Q_V_DONE;
  if (err == P2Q_ECANCELED) return P2Q_V_CANCELED;
  if (status == 429) return P2Q_V_RATE_LIMITED;
  if (status == 401 || status == 403 || status == 404 || status == 405 || (status >= 300 && status < 400))
    return P2Q_V_CONFIG;
  if (transient) return P2Q_V_TRANSIENT;
  (void)n_texts; /* the embedder bisects a rejected batch itself: what reaches here is the texts' */
  return P2Q_V_EVENT_FAULT;
}

int p2q_classify_shard_failure(const char *msg) {
  return msg && (strstr(msg, P2Q_QDRANT_SHARDS_FAILED) || strstr(msg, "Tonic status error") ||
                 strstr(msg, "Tonic transport error"));
}

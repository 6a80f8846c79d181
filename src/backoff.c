/*
 * backoff.c — exponential backoff with full jitter. Pure computation; a p2q_backoff_t belongs to
 * one thread (its built-in generator state is not shared). Invariant: min_ms <= delay <= max_ms.
 * Also the Retry-After parser (pure, 64-bit, capped), shared by the Qdrant and embedder paths.
 */
#include "pg2qdrant/backoff.h"

#include "pg2qdrant/errors.h"

#include <ctype.h>
#include <stddef.h>
#include <string.h>
#include <time.h>

static uint64_t xorshift64s(void *ctx) {
  uint64_t *s = ctx;
  uint64_t x = *s;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *s = x;
  return x * 0x2545F4914F6CDD1DULL;
}

int p2q_backoff_init(p2q_backoff_t *b, uint64_t min_ms, uint64_t max_ms, uint64_t seed) {
  if (!b || min_ms > max_ms) return P2Q_EINVAL;
  b->min_ms = min_ms;
  b->max_ms = max_ms;
  b->rand = NULL;
  b->rand_ctx = NULL;
  if (seed == 0) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    seed = ((uint64_t)ts.tv_sec * 1000000007ULL) ^ (uint64_t)ts.tv_nsec ^ (uint64_t)(uintptr_t)b;
  }
  b->state = seed ? seed : 0x9E3779B97F4A7C15ULL;
  return 0;
}

void p2q_backoff_set_rand(p2q_backoff_t *b, p2q_rand_fn fn, void *ctx) {
  b->rand = fn;
  b->rand_ctx = ctx;
}

uint64_t p2q_backoff_cap(uint64_t min_ms, uint64_t max_ms, unsigned attempt) {
  if (min_ms >= max_ms) return max_ms;
  uint64_t cap = min_ms ? min_ms : 1;
  for (unsigned i = 0; i < attempt; i++) {
    if (cap >= max_ms / 2) return max_ms; /* next doubling would reach or pass the cap */
    cap *= 2;
  }
  return cap < max_ms ? cap : max_ms;
}

uint64_t p2q_backoff_delay(p2q_backoff_t *b, unsigned attempt) {
  uint64_t cap = p2q_backoff_cap(b->min_ms, b->max_ms, attempt);
  if (cap < b->min_ms) cap = b->min_ms;
  uint64_t span = cap - b->min_ms;
  uint64_t r = b->rand ? b->rand(b->rand_ctx) : xorshift64s(&b->state);
  if (span == UINT64_MAX) return b->min_ms + r;
  return b->min_ms + r % (span + 1);
}

/* ---- Retry-After ---- */

int64_t p2q_days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t yoe = y - era * 400;
  const int64_t doy = (153 * (int64_t)(m > 2 ? m - 3 : m + 9) + 2) / 5 + (int64_t)d - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

static const char *const RA_MON[12] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
static const char *const RA_DAY[7] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
static const char *const RA_DAY_LONG[7] = {"Monday", "Tuesday", "Wednesday", "Thursday",
                                           "Friday", "Saturday", "Sunday"};

/* Exactly n digits at *p (advanced). -1 if not. */
static int64_t ra_digits(const char **p, int n) {
  int64_t v = 0;
  for (int i = 0; i < n; i++) {
    if (!isdigit((unsigned char)(*p)[i])) return -1;
    v = v * 10 + ((*p)[i] - '0');
  }
  *p += n;
  return v;
}

static int ra_lit(const char **p, const char *lit) {
  size_t n = strlen(lit);
  if (strncmp(*p, lit, n) != 0) return 0;
  *p += n;
  return 1;
}

static int ra_month(const char **p) {
  for (int i = 0; i < 12; i++)
    if (ra_lit(p, RA_MON[i])) return i + 1;
  return 0;
}

/* "HH:MM:SS" into seconds of the day, -1 if invalid. */
static int64_t ra_time(const char **p) {
  int64_t h = ra_digits(p, 2);
  if (h < 0 || !ra_lit(p, ":")) return -1;
  int64_t mi = ra_digits(p, 2);
  if (mi < 0 || !ra_lit(p, ":")) return -1;
  int64_t s = ra_digits(p, 2);
  if (s < 0 || h > 23 || mi > 59 || s > 60) return -1; /* 60: a leap second */
  return h * 3600 + mi * 60 + s;
}

static int ra_valid_date(int64_t y, int m, int64_t d) {
  static const int mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (m < 1 || m > 12 || d < 1 || d > mdays[m - 1]) return 0;
  if (m == 2 && d == 29 && !((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)) return 0;
  return 1;
}

/* An HTTP-date into Unix seconds; 0 on success, -1 if not an HTTP-date. */
static int ra_http_date(const char *p, int64_t now_s, int64_t *out) {
  int64_t y, d, tod;
  int m, wd = -1;
  for (int i = 0; i < 7 && wd < 0; i++) /* long day names first: "Sunday" starts with "Sun" */
    if (ra_lit(&p, RA_DAY_LONG[i])) wd = 7 + i;
  for (int i = 0; i < 7 && wd < 0; i++)
    if (ra_lit(&p, RA_DAY[i])) wd = i;
  if (wd < 0) return -1;
  if (wd < 7 && ra_lit(&p, ", ")) { /* IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT" */
    if ((d = ra_digits(&p, 2)) < 0 || !ra_lit(&p, " ") || !(m = ra_month(&p)) || !ra_lit(&p, " ") ||
        (y = ra_digits(&p, 4)) < 0 || !ra_lit(&p, " ") || (tod = ra_time(&p)) < 0 || !ra_lit(&p, " GMT"))
      return -1;
  } else if (wd >= 7 && ra_lit(&p, ", ")) { /* RFC 850: "Sunday, 06-Nov-94 08:49:37 GMT" */
    if ((d = ra_digits(&p, 2)) < 0 || !ra_lit(&p, "-") || !(m = ra_month(&p)) || !ra_lit(&p, "-") ||
        (y = ra_digits(&p, 2)) < 0 || !ra_lit(&p, " ") || (tod = ra_time(&p)) < 0 || !ra_lit(&p, " GMT"))
      return -1;
    /* RFC 9110 §5.6.7: a two-digit year more than 50 years in the future is in the past */
    int64_t now_y = 1970 + now_s / 31556952; /* close enough to pick the century */
    y += now_y / 100 * 100;
    if (y > now_y + 50) y -= 100;
    else if (y < now_y - 50) y += 100;
  } else if (wd < 7 && ra_lit(&p, " ")) { /* asctime: "Sun Nov  6 08:49:37 1994" */
    if (!(m = ra_month(&p)) || !ra_lit(&p, " ")) return -1;
    if (*p == ' ') { p++; d = ra_digits(&p, 1); } else d = ra_digits(&p, 2);
    if (d < 0 || !ra_lit(&p, " ") || (tod = ra_time(&p)) < 0 || !ra_lit(&p, " ") ||
        (y = ra_digits(&p, 4)) < 0)
      return -1;
  } else {
    return -1;
  }
  while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') p++;
  if (*p || !ra_valid_date(y, m, d)) return -1;
  *out = p2q_days_from_civil(y, (unsigned)m, (unsigned)d) * 86400 + tod;
  return 0;
}

int64_t p2q_retry_after_ms(const char *v, int64_t now_s, uint64_t cap_ms) {
  const uint64_t limit = cap_ms && cap_ms < (uint64_t)INT64_MAX ? cap_ms : (uint64_t)INT64_MAX;
  uint64_t ms;
  if (!v) return -1;
  while (*v == ' ' || *v == '\t') v++;
  if (!*v) return -1;
  if (isdigit((unsigned char)*v)) { /* delta-seconds: 1*DIGIT, saturating */
    uint64_t secs = 0;
    const char *p = v;
    for (; isdigit((unsigned char)*p); p++) {
      if (secs <= (UINT64_MAX - 9) / 10) secs = secs * 10 + (uint64_t)(*p - '0');
      else secs = UINT64_MAX;
    }
    while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') p++;
    if (*p) return -1;
    ms = secs > limit / 1000 ? limit : secs * 1000;
  } else {
    int64_t at;
    if (ra_http_date(v, now_s, &at) != 0) return -1;
    if (at <= now_s) return 0;
    uint64_t secs = (uint64_t)(at - now_s);
    ms = secs > limit / 1000 ? limit : secs * 1000;
  }
  return (int64_t)(ms < limit ? ms : limit);
}

/*
 * log.c — structured logging (logfmt or JSON), one write(2) per line so lines from several
 * threads never interleave. Global settings are written once at start-up (and on SIGHUP reload,
 * from the loop thread); readers tolerate a torn read of an int.
 */
#include "pg2qdrant/log.h"
#include "pg2qdrant/redact.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static p2q_log_level_t g_level = P2Q_LOG_INFO;
static p2q_log_format_t g_format = P2Q_LOG_LOGFMT;
static int g_fd = 2;

static const char *const level_names[] = {"debug", "info", "warn", "error", "off"};

void p2q_log_configure(p2q_log_level_t level, p2q_log_format_t format, int fd) {
  g_level = level;
  g_format = format;
  g_fd = fd;
}

int p2q_log_enabled(p2q_log_level_t level) { return level >= g_level && g_level != P2Q_LOG_OFF; }

int p2q_log_level_parse(const char *s, p2q_log_level_t *out) {
  for (int i = 0; i <= P2Q_LOG_OFF; i++)
    if (strcasecmp(s, level_names[i]) == 0) { *out = (p2q_log_level_t)i; return 0; }
  if (strcasecmp(s, "warning") == 0) { *out = P2Q_LOG_WARN; return 0; }
  return -1;
}

const char *p2q_log_q(char *buf, size_t n, const char *s) {
  size_t o = 0;
  if (n < 3) { if (n) buf[0] = 0; return buf; }
  buf[o++] = '"';
  for (; s && *s && o + 3 < n; s++) {
    unsigned char c = (unsigned char)*s;
    /* never cut a multi-byte UTF-8 character in half when the buffer runs out */
    size_t seq = c < 0xC0 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    if (seq > 1 && o + seq + 2 >= n) break;
    if (c == '"' || c == '\\') { buf[o++] = '\\'; buf[o++] = (char)c; }
    else if (c == '\n') { buf[o++] = '\\'; buf[o++] = 'n'; }
    else if (c == '\r') { buf[o++] = '\\'; buf[o++] = 'r'; }
    else if (c == '\t') { buf[o++] = '\\'; buf[o++] = 't'; }
    else if (c < 0x20) buf[o++] = '?';
    else buf[o++] = (char)c;
  }
  buf[o++] = '"';
  buf[o] = 0;
  return buf;
}

/* Append a JSON string (s[0..len)) to out, escaping as needed. */
static size_t json_put(char *out, size_t o, size_t n, const char *s, size_t len, int raw) {
  if (!raw && o + 1 < n) out[o++] = '"';
  for (size_t i = 0; i < len && o + 7 < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"' || c == '\\') { out[o++] = '\\'; out[o++] = (char)c; }
    else if (c < 0x20) o += (size_t)snprintf(out + o, n - o, "\\u%04x", c);
    else out[o++] = (char)c;
  }
  if (!raw && o + 1 < n) out[o++] = '"';
  out[o < n ? o : n - 1] = 0;
  return o;
}

size_t p2q_log_kv_to_json(const char *kv, char *out, size_t n) {
  size_t o = 0;
  int first = 1;
  const char *p = kv;
  if (n == 0) return 0;
  out[0] = 0;
  while (*p) {
    while (*p == ' ') p++;
    if (!*p) break;
    const char *k = p;
    while (*p && *p != '=' && *p != ' ') p++;
    size_t klen = (size_t)(p - k);
    char val[4096];
    size_t vlen = 0;
    if (*p == '=') {
      p++;
      if (*p == '"') { /* quoted: unescape */
        p++;
        while (*p && *p != '"' && vlen + 1 < sizeof val) {
          if (*p == '\\' && p[1]) {
            p++;
            val[vlen++] = *p == 'n' ? '\n' : *p == 't' ? '\t' : *p == 'r' ? '\r' : *p;
          } else val[vlen++] = *p;
          p++;
        }
        if (*p == '"') p++;
      } else {
        while (*p && *p != ' ' && vlen + 1 < sizeof val) val[vlen++] = *p++;
      }
    }
    if (o + 4 >= n) break;
    if (!first) out[o++] = ',';
    first = 0;
    o = json_put(out, o, n, k, klen, 0);
    if (o + 2 >= n) break;
    out[o++] = ':';
    o = json_put(out, o, n, val, vlen, 0);
  }
  out[o < n ? o : n - 1] = 0;
  return o;
}

void p2q_log(p2q_log_level_t level, const char *event, const char *kvfmt, ...) {
  if (!p2q_log_enabled(level)) return;
  char kv[8192], line[16384], ts[96];
  struct timeval tv;
  struct tm tm;
  va_list ap;

  va_start(ap, kvfmt);
  vsnprintf(kv, sizeof kv, kvfmt ? kvfmt : "", ap);
  va_end(ap);
  p2q_redact_text(kv, sizeof kv); /* a registered secret never reaches the log, whatever the caller */
  gettimeofday(&tv, NULL);
  gmtime_r(&tv.tv_sec, &tm);
  snprintf(ts, sizeof ts, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
           tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(tv.tv_usec / 1000));
  int len;
  if (g_format == P2Q_LOG_JSON) {
    char body[12288];
    p2q_log_kv_to_json(kv, body, sizeof body);
    len = snprintf(line, sizeof line, "{\"ts\":\"%s\",\"level\":\"%s\",\"event\":\"%s\"%s%s}\n", ts,
                   level_names[level], event, body[0] ? "," : "", body);
  } else {
    len = snprintf(line, sizeof line, "ts=%s level=%s event=%s%s%s\n", ts, level_names[level], event,
                   kv[0] ? " " : "", kv);
  }
  if (len < 0) return;
  if ((size_t)len >= sizeof line) { len = sizeof line - 1; line[len - 1] = '\n'; }
  ssize_t w = write(g_fd, line, (size_t)len);
  (void)w;
}

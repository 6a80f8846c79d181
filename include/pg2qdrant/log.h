/*
 * log.h — one line per event, logfmt (`ts=… level=info event=claim worker=w1 n=12`) or JSON.
 *
 * The caller writes the key=value part as a printf format. Free text (error messages, SQL, URLs)
 * must be passed through p2q_log_q() so it is quoted and escaped; the JSON writer re-reads the
 * formatted logfmt pairs, so the two formats always carry the same fields. Secrets are never
 * passed here: callers log env-var names, never their values. Thread-safe (one write(2) per line).
 */
#ifndef P2Q_LOG_H
#define P2Q_LOG_H

#include <stddef.h>

typedef enum { P2Q_LOG_DEBUG = 0, P2Q_LOG_INFO, P2Q_LOG_WARN, P2Q_LOG_ERROR, P2Q_LOG_OFF } p2q_log_level_t;
typedef enum { P2Q_LOG_LOGFMT = 0, P2Q_LOG_JSON } p2q_log_format_t;

void p2q_log_configure(p2q_log_level_t level, p2q_log_format_t format, int fd);
int  p2q_log_enabled(p2q_log_level_t level);
int  p2q_log_level_parse(const char *s, p2q_log_level_t *out);

void p2q_log(p2q_log_level_t level, const char *event, const char *kvfmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Quote s for a logfmt value into buf (always double-quoted, \" \\ \n escaped); returns buf. */
const char *p2q_log_q(char *buf, size_t n, const char *s);

/* Format the logfmt pairs in `kv` as a JSON object body into out (pure; exposed for tests). */
size_t p2q_log_kv_to_json(const char *kv, char *out, size_t n);

#define P2Q_DEBUG(ev, ...) do { if (p2q_log_enabled(P2Q_LOG_DEBUG)) p2q_log(P2Q_LOG_DEBUG, ev, __VA_ARGS__); } while (0)
#define P2Q_INFO(ev, ...)  p2q_log(P2Q_LOG_INFO, ev, __VA_ARGS__)
#define P2Q_WARN(ev, ...)  p2q_log(P2Q_LOG_WARN, ev, __VA_ARGS__)
#define P2Q_ERROR(ev, ...) p2q_log(P2Q_LOG_ERROR, ev, __VA_ARGS__)

#endif

/*
 * redact.h — the one place that keeps secrets out of text leaving the process: log lines, error
 * texts, `config --dump`, /status.
 *
 * Two mechanisms:
 *  - structural masking of what may carry a secret (a URL's userinfo password and secret-looking
 *    query parameters, `password=` in a keyword/value conninfo or a postgres:// URI, quoted
 *    fragments of libpq's conninfo error texts, which echo the input);
 *  - a registry of secret values known at start (PGPASSWORD, the password in the conninfo, URL
 *    passwords, api keys read from the environment) that p2q_redact_text() replaces wherever they
 *    appear; the logger applies it to every line as a last line of defence.
 *
 * Pure string work. The registry is filled on the main thread before other threads start
 * (p2q_redact_register) and only read afterwards.
 */
#ifndef P2Q_REDACT_H
#define P2Q_REDACT_H

#include <stddef.h>

#define P2Q_REDACT_MASK "*****"
/* Secrets shorter than this are not registered for value replacement (they would mask ordinary
   words); structural masking still hides them. */
#define P2Q_REDACT_MIN_SECRET 4

/* A copy of a conninfo (keyword/value, or a postgres:// / postgresql:// URI, spaces allowed) with
   its password masked. malloc'd; NULL on out of memory. NULL input gives "". */
char *p2q_redact_conninfo(const char *conninfo);
/* A copy of a URL with the userinfo password and secret-looking query parameters (password,
   api-key, api_key, apikey, key, token, access_token, secret, signature…) masked. malloc'd. */
char *p2q_redact_url(const char *url);
/* In place: every "quoted" fragment of a libpq error text about a conninfo becomes "…" (libpq
   quotes the offending part of the input, which may be the password). */
void p2q_redact_libpq_error(char *msg);

/* Remember a secret value (copied) so p2q_redact_text masks it. Ignores NULL, short and
   duplicate values. Returns 0, or -1 when the registry is full or out of memory. */
int  p2q_redact_register(const char *secret);
/* Register the password of a conninfo and the userinfo password of a URL. */
void p2q_redact_register_conninfo(const char *conninfo);
void p2q_redact_register_url(const char *url);
/* Forget every registered secret (tests). */
void p2q_redact_reset(void);
/* In place: every registered secret in buf (NUL-terminated, capacity cap) becomes the mask;
   the text is cut to fit cap. Returns the new length. */
size_t p2q_redact_text(char *buf, size_t cap);

#endif

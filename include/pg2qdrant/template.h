/*
 * template.h — renders a rule's `text` from an event snapshot (pure; any thread).
 *
 * `text` is either a template with {column} placeholders ("{title}\n{body}"; \n, \t and \\ are
 * escapes, {{ and }} literal braces) or a comma-separated column list ("title, body"), whose
 * values are joined with a newline, skipping NULL and empty ones. A string value is inserted
 * unescaped, NULL as nothing, any other JSON value (number, boolean, array, object) as its JSON
 * text. A text that is empty after trimming white space means the row has no vector: the
 * daemon deletes its point, as for a NULL vector column (documented in the README).
 */
#ifndef P2Q_TEMPLATE_H
#define P2Q_TEMPLATE_H

#include "pg2qdrant/buf.h"

/* Append the rendered text to out. Returns 1 when it has non-blank content, 0 when blank,
 * P2Q_EBADJSON for a snapshot that is not a JSON object or P2Q_EINVAL for a bad template. */
int p2q_template_render(const char *text, const char *snap, size_t slen, p2q_buf_t *out);

#endif

/*
 * json_scan.h — a small zero-copy JSON scanner: finds the raw text spans of values so that
 * snapshots from PostgreSQL (jsonb text) can be re-shaped into Qdrant points by copying bytes,
 * without building a tree or re-formatting floats. Pure; any thread.
 */
#ifndef P2Q_JSON_SCAN_H
#define P2Q_JSON_SCAN_H

#include <stddef.h>

typedef struct {
  const char *p;   /* start of the span */
  size_t n;        /* its length */
} p2q_span_t;

/* Skip whitespace then one JSON value starting at s[*pos]; *pos ends after it. 0 or P2Q_EBADJSON. */
int p2q_json_skip(const char *s, size_t len, size_t *pos);

/* How many bytes at s's start are neither '"', '\\' nor below 0x20 (the plain run of a string's
 * text; 8 bytes at a time). */
size_t p2q_json_plain_run(const char *s, size_t len);

/* Iterate the members of the top-level object in s. *pos starts at 0; each call yields the next
 * member's key span (without quotes, still escaped) and value span. Returns 1 for a member,
 * 0 at the end, P2Q_EBADJSON on malformed input. */
int p2q_json_next_member(const char *s, size_t len, size_t *pos, p2q_span_t *key, p2q_span_t *val);

/* Like p2q_json_next_member, but stops at the value: *pos is left at its first byte, for the
 * caller to consume (p2q_json_skip, p2q_json_number_array_at) before the next call. */
int p2q_json_next_key(const char *s, size_t len, size_t *pos, p2q_span_t *key);

/* Find member `name` (unescaped, any UTF-8) of the top-level object: keys are compared after
 * decoding their escapes, so a column named a"b or a\b is found. 1 found, 0 absent, <0 error. */
int p2q_json_find(const char *s, size_t len, const char *name, p2q_span_t *val);

/* Does a key span from p2q_json_next_member (escaped, without quotes) decode to `name`? */
int p2q_json_key_eq(p2q_span_t key, const char *name);

/* Does Qdrant keep the JSON number s[0..n) exactly? Integers: when they fit in int64 (Qdrant keeps
 * 64-bit integers); other numbers: when the nearest double, rounded back to as many significant
 * digits, is the number itself (so at most 17 significant digits, within the double range).
 * `s` must be a valid JSON number. */
int p2q_json_number_exact(const char *s, size_t n);

/* Does the span hold exactly `lit` (e.g. "null")? */
int p2q_span_eq(p2q_span_t v, const char *lit);

/* Validate a JSON array of numbers; returns the element count, or P2Q_EBADJSON. */
int p2q_json_number_array(const char *s, size_t len);

/* The same for the array at s[*pos] (after whitespace) inside a larger text: on success *pos
 * ends right after its ']'; on failure *pos is unchanged. */
int p2q_json_number_array_at(const char *s, size_t len, size_t *pos);

/* Decode a JSON string span (with quotes) into buf (NUL-terminated). Returns length or <0. */
int p2q_json_unescape(p2q_span_t v, char *buf, size_t buflen);

/* The value of one hexadecimal digit (either case), or -1 (\u escapes, percent-encoding). */
static inline int p2q_json_hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

#endif

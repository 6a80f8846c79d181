/*
 * config_int.h — what the loader's files share (not a public header): the load state (ld_t) and
 * its sections (sect_t). config_load.c parses into it, config_check.c runs the cross-checks over
 * it, config.c formats its errors and adds elements. One load runs on one thread.
 */
#ifndef P2Q_CONFIG_INT_H
#define P2Q_CONFIG_INT_H

#include <stddef.h>

#include "pg2qdrant/config.h"

typedef struct {
  const p2q_conf_section_t *kind;
  int index;                     /* element index (repeated kinds) or -1 */
  char label[P2Q_NAME_MAX + 16]; /* "postgres" or "rule.docs" */
  int line;                      /* header line, 0 when the section is absent */
  int keyline[P2Q_CONF_MAX_KEYS];
} sect_t;

typedef struct {
  p2q_config_t *cfg;
  const char *file; /* name used in messages */
  char *basedir;    /* for relative paths (NULL: leave them relative) */
  const char *text;
  size_t len, pos;
  int line;
  sect_t *sects;
  int n_sects;
  int cur; /* index into sects, -1 before the first header */
  int rc;  /* first error, 0 if none */
  char *err;
  size_t errlen;
} ld_t;

/* config.c: record the first error of the load, formatted "FILE:LINE: [section] key: reason"
 * (line 0: no line, sect/key NULL: not named); returns the first error's code. */
int p2q_config_fail(ld_t *ld, int rc, int line, const char *sect, const char *key, const char *fmt,
                    ...) __attribute__((format(printf, 6, 7)));
/* config.c: keep `cand` in *best when it is a closer "did you mean" hint for `word`. */
void p2q_config_suggest(const char *word, const char *cand, const char **best, int *bestd);
/* config.c: append an element named `name` (defaults applied) to a repeated kind; its index, or
 * a negative code. */
int p2q_config_add_element(p2q_config_t *cfg, const p2q_conf_section_t *k, const char *name, int line);
/* config_check.c: the cross-checks over everything parsed; the load's first error code, or 0. */
int p2q_config_check_all(ld_t *ld);

#endif

/*
 * reindex.h — pure building blocks of zero-downtime re-embedding (issue 12, priority 5).
 *
 * Searches go through a Qdrant alias named like the rule's collection (NAME); the physical
 * collections are versioned NAME__v1, NAME__v2, … A rule's "vector meaning" (embedder identity,
 * dimension, distance, vector names, chunking, sparse settings) is summarised by a signature;
 * when it changes, the next version is built beside the current one and the alias is swapped
 * atomically once the new version has caught up. The steps live in PostgreSQL (the job's phase,
 * sync_reindex) and are run by cmd_reindex.c (start) and reindex_exec.c (the daemon's executor);
 * every step is idempotent, so a kill -9 at any point resumes from the recorded phase. Here: the
 * pure pieces (names, the signature, the swap body, reading Qdrant's lists); reindex_def.c holds
 * the rule definitions and the daemon's effective config. No I/O; any thread.
 */
#ifndef P2Q_REINDEX_H
#define P2Q_REINDEX_H

#include <stddef.h>
#include <stdint.h>

#include "pg2qdrant/buf.h"
#include "pg2qdrant/config.h"

#define P2Q_REINDEX_LEGACY (-1) /* alias_version: a real collection (not an alias) named NAME */

/* "NAME__vK" into out (n bytes). Returns its length, or P2Q_EOVERFLOW / P2Q_EINVAL (k < 1). */
int p2q_reindex_version_name(const char *base, int k, char *out, size_t n);
/* K when `name` is "BASE__vK" (K ≥ 1, decimal, no leading zero), else 0. */
int p2q_reindex_version_of(const char *base, const char *name);

/* Reads Qdrant's answers to GET /collections and GET /aliases (whole response bodies) into
   *alias_version (K, 0, or P2Q_REINDEX_LEGACY) and *max_version. Returns 0, P2Q_EBADJSON, or
   P2Q_EMISMATCH when the alias NAME points to a collection that is not one of NAME's versions
   (an alias made by hand: pg2qdrant never moves it). */
int p2q_reindex_observe(const char *base, const char *collections_body, const char *aliases_body,
                        int *alias_version, int *max_version);

/* The canonical text of what a rule's vectors mean, given its resolved dense dimension
   (0 without a dense text vector). Two rules whose signatures are equal write interchangeable
   points; anything else needs a new version. Returns the length or P2Q_EOVERFLOW. */
int p2q_reindex_signature(const p2q_rule_config_t *r, int64_t dim, char *out, size_t n);
/* FNV-1a 64 of the signature as 16 lowercase hex digits + NUL (17 bytes), for storage. */
void p2q_reindex_signature_id(const char *signature, char out[17]);

/* Body of POST /collections/aliases switching `alias` to `collection` in one call: a
   delete_alias (only when had_alias) then a create_alias. */
void p2q_reindex_swap_body(p2q_buf_t *b, const char *alias, const char *collection, int had_alias);


/* ---- reindex_def.c ------------------------------------------------------------------------ */

/* p2q_reindex_signature of a loaded rule (its resolved dimension). */
int p2q_reindex_rule_signature(const p2q_rule_config_t *r, char *out, size_t n);
/* The rule's definition: its [rule.R] section and its embedder's, every key with its effective
   value, as INI text (parsed back by the config loader). */
int p2q_reindex_definition(const p2q_config_t *cfg, const p2q_rule_config_t *r, p2q_buf_t *out);

/* How a daemon writes a rule while a re-embedding runs (the job's phase decides). */
typedef enum { P2Q_RX_SINGLE = 0, P2Q_RX_DUAL, P2Q_RX_NEW_ONLY } p2q_reindex_mode_t;
/* phase: create|dual|backfill|catch_up|preswap|swapped (sync_reindex.phase) */
p2q_reindex_mode_t p2q_reindex_mode_of(const char *phase);
const char *p2q_reindex_mode_name(p2q_reindex_mode_t m);

typedef struct {
  const char *rule;
  const char *collection;        /* the rule writes this physical collection (NULL: its own) */
  const char *signature;         /* the job's: the rule in the config must mean this (or NULL) */
  const char *shadow_def;        /* the old definition (NULL: no shadow) */
  const char *shadow_collection; /* the old version's physical name */
} p2q_reindex_eff_t;
/* The daemon's config while jobs run: `base` (must still equal its file, else P2Q_ECONFIG "send
   SIGHUP") with each job's collection and shadow applied (see reindex_def.c). *out is new. */
int p2q_reindex_effective(const p2q_config_t *base, const p2q_reindex_eff_t *jobs, int n, p2q_config_t **out,
                          char *err, size_t errlen);

#endif

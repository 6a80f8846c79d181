/*
 * collection.h — a Qdrant collection as the configuration wants it (vectors of every rule
 * writing it, sparse vectors, HNSW, quantization, on-disk, sharding, payload indexes), the
 * body that creates it, and the differences from what a Qdrant has (collection.c).
 *
 * Pure parts (spec from config, create/patch/index bodies, diff against a collection info) are
 * unit-tested in tests/unit/test_collection.c; p2q_collection_ensure() is blocking (CLI and
 * daemon start-up, never on the loop).
 */
#ifndef P2Q_COLLECTION_H
#define P2Q_COLLECTION_H

#include <cjson/cJSON.h>
#include <stdio.h>

#include "pg2qdrant/buf.h"
#include "pg2qdrant/config.h"
#include "pg2qdrant/qdrant.h"

#define P2Q_COLL_MAX_VECTORS 16

typedef struct {
  const char *name;        /* NULL: the unnamed vector */
  int dim;
  const char *distance;
  int on_disk;
} p2q_coll_dense_t;

typedef struct {
  const char *collection;
  p2q_coll_dense_t dense[P2Q_COLL_MAX_VECTORS];
  int n_dense;
  const char *sparse[P2Q_COLL_MAX_VECTORS];
  int n_sparse;
  int64_t hnsw_m, hnsw_ef_construct;          /* -1 / 0: Qdrant's default */
  p2q_tri_t on_disk_payload;
  p2q_quant_t quantization;
  int quantization_always_ram;
  int64_t shard_number, replication_factor, write_consistency_factor; /* 0: default */
  const char *index[64];   /* "field:type[:flag]" of every rule (deduplicated) */
  int n_index;
} p2q_coll_spec_t;

/* The spec of `collection` from every rule writing it (settings: the first rule that sets each;
   the loader refused conflicting ones). P2Q_EOVERFLOW when too many vectors/indexes. */
int p2q_collection_spec(const p2q_config_t *cfg, const char *collection, p2q_coll_spec_t *s);

/* Two rules writing one collection: 0, or P2Q_ECONFIG with the conflicting setting in why. */
int p2q_collection_rules_conflict(const p2q_rule_config_t *a, const p2q_rule_config_t *b, char *why,
                                  size_t n);

/* "field:type[:tenant|:principal]": 0 with the parts (pointing into buf), or P2Q_ECONFIG + why. */
int p2q_collection_parse_index(const char *item, char *buf, size_t buflen, const char **field,
                               const char **type, const char **flag, char *why, size_t n);

/* Replication factor used when the rules leave it at 0 in the spec: 0, i.e. not managed (an
   existing collection keeps its own). Creation applies the cluster default below. */
int64_t p2q_collection_default_replication(const p2q_config_t *cfg);

/* Qdrant clusters (issue 17). Peers in a GET /cluster result (1: "disabled", a single node). */
int p2q_collection_cluster_peers(const cJSON *cluster_result);
/* The replication factor a new collection gets: the configured one, else 2 on a cluster of ≥ 2
   nodes (one node down then costs no write), else 0 (Qdrant's default, 1). */
int64_t p2q_collection_cluster_replication(int64_t configured, int peers);
/* 1 with a warning in out when the collection (info = GET /collections/{c} result) has one
   replica per shard on a cluster of peers ≥ 2 nodes (apply and check warn). */
int p2q_collection_single_replica_warning(const cJSON *info, int peers, const char *collection, char *out,
                                          size_t n);

/* PUT /collections/{c} body (malloc'd JSON) / PUT …/index body for one index item. */
char *p2q_collection_create_body(const p2q_coll_spec_t *s);
char *p2q_collection_index_body(const char *item);

/*
 * Compare a collection info (`result` of GET /collections/{c}) with the spec. Every difference
 * is one line appended to `report` ("collection docs: hnsw m is 16, configured 32 (fixed in
 * place)"). What Qdrant changes in place goes into *patch (a PATCH /collections/{c} body,
 * malloc'd, or NULL when nothing to patch); missing payload indexes into missing[]/n_missing
 * (items of s->index). Returns the number of differences that cannot be fixed in place (vector
 * size/distance, a vector or sparse vector missing, shard_number, an index of another type),
 * or a negative error. *fatal is set when a vector's size or distance differs (writes would
 * fail).
 */
int p2q_collection_diff(const p2q_coll_spec_t *s, const cJSON *info, p2q_buf_t *report, char **patch,
                        const char **missing, int *n_missing, int *fatal);

enum { P2Q_COLL_APPLY = 0, P2Q_COLL_DRY, P2Q_COLL_CREATE };
/*
 * Make collection `collection` match the config. P2Q_COLL_APPLY: create it (with its indexes)
 * when absent, otherwise print the differences to `out` and fix what Qdrant changes in place
 * (PATCH, missing indexes). P2Q_COLL_DRY: only print. P2Q_COLL_CREATE (daemon start-up): create
 * when absent, otherwise log the differences as a warning and change nothing. Returns 0, P2Q_EMISMATCH (a vector's size or distance differs: fatal),
 * or another negative error (message in msg).
 */
int p2q_collection_ensure(const p2q_qdrant_options_t *opts, const p2q_config_t *cfg,
                          const char *collection, int mode, FILE *out, char *msg, size_t msglen);
/* 1 when rule i is the first of cfg's rules naming its collection (callers that go through the
   rules visit each collection once), else 0. */
int p2q_collection_first_rule(const p2q_config_t *cfg, int i);
/* The same for the physical collection `collection` built as the config wants `spec_of` (the
   rule's collection name; re-embedding creates NAME__vK as NAME is configured). */
int p2q_collection_ensure_as(const p2q_qdrant_options_t *opts, const p2q_config_t *cfg, const char *spec_of,
                             const char *collection, int mode, FILE *out, char *msg, size_t msglen);

#endif

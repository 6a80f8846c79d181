/*
 * bench_sink.h — the null sink of `pg2qdrant bench --sink null`: a Qdrant-shaped HTTP/1.1
 * responder that keeps no vectors, only each collection's set of point ids (and the top-level
 * payload `seq` of each point, for the latency observer), so a drain can be checked complete
 * while the sink itself costs next to nothing.
 *
 * Pure parts (bench_sink_parse.c; any thread; unit-tested in tests/unit/test_bench_sink.c): the
 * id set, the routing of a request path, and applying a points write body to the id set.
 * The server (bench_sink.c) runs in a child process of the bench (its own CPU is measured from
 * /proc like a local Qdrant's).
 */
#ifndef P2Q_BENCH_SINK_H
#define P2Q_BENCH_SINK_H

#include "pg2qdrant/json_scan.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ---- the id set: point id → seq (open addressing, linear probing, backward-shift delete) --- */
typedef struct {
  uint64_t *keys;   /* 0 = empty slot; a stored key is p2q_sink_key_mix(raw id) */
  int64_t *seqs;
  size_t cap, n;    /* cap: a power of two (0 before the first put) */
  int has_zero;     /* the one raw id whose mix is 0 is kept aside */
  int64_t zero_seq;
} p2q_sink_ids_t;

#define P2Q_SINK_NO_SEQ INT64_MIN /* a point whose payload has no integer `seq` */

/* Point id (JSON span: an unsigned integer, or a UUID string) → 64-bit raw id (a UUID's halves
   xor-ed). 0, or P2Q_EINVAL for anything Qdrant refuses as a point id. */
int p2q_sink_point_key(p2q_span_t id, uint64_t *raw);

/* 1 added, 0 already there (seq updated), P2Q_ENOMEM. */
int p2q_sink_ids_put(p2q_sink_ids_t *m, uint64_t raw, int64_t seq);
/* 1 removed, 0 absent. */
int p2q_sink_ids_del(p2q_sink_ids_t *m, uint64_t raw);
/* 1 present (its seq in *seq when non-NULL), 0 absent. */
int p2q_sink_ids_get(const p2q_sink_ids_t *m, uint64_t raw, int64_t *seq);
size_t p2q_sink_ids_count(const p2q_sink_ids_t *m);
void p2q_sink_ids_free(p2q_sink_ids_t *m);

/* ---- routing --------------------------------------------------------------------------- */
typedef enum {
  P2Q_SINK_R_UNKNOWN = 0, /* 404, empty body (as Qdrant for an unknown route) */
  P2Q_SINK_R_ROOT,        /* GET / */
  P2Q_SINK_R_HEALTHZ,     /* GET /healthz, /livez */
  P2Q_SINK_R_READYZ,      /* GET /readyz */
  P2Q_SINK_R_CLUSTER,     /* GET /cluster */
  P2Q_SINK_R_LIST,        /* GET /collections */
  P2Q_SINK_R_INFO,        /* GET /collections/{c} */
  P2Q_SINK_R_CREATE,      /* PUT /collections/{c} */
  P2Q_SINK_R_UPDATE,      /* PATCH /collections/{c} */
  P2Q_SINK_R_DROP,        /* DELETE /collections/{c} */
  P2Q_SINK_R_EXISTS,      /* GET /collections/{c}/exists */
  P2Q_SINK_R_INDEX,       /* PUT /collections/{c}/index */
  P2Q_SINK_R_INDEX_DROP,  /* DELETE /collections/{c}/index/{field} */
  P2Q_SINK_R_UPSERT,      /* PUT /collections/{c}/points */
  P2Q_SINK_R_DELETE,      /* POST /collections/{c}/points/delete */
  P2Q_SINK_R_PAYLOAD,     /* POST|PUT /collections/{c}/points/payload, POST …/payload/delete|clear,
                             PUT …/points/vectors, POST …/vectors/delete: no count change */
  P2Q_SINK_R_BATCH,       /* POST /collections/{c}/points/batch */
  P2Q_SINK_R_COUNT,       /* POST /collections/{c}/points/count */
  P2Q_SINK_R_RETRIEVE,    /* POST /collections/{c}/points */
  P2Q_SINK_R_SCROLL,      /* POST /collections/{c}/points/scroll */
} p2q_sink_route_t;

/* Route METHOD and path (without the query); the collection name, percent-decoded, into coll.
   A name longer than collsz-1 routes to P2Q_SINK_R_UNKNOWN. */
p2q_sink_route_t p2q_sink_route(const char *method, const char *path, char *coll, size_t collsz);

/* ---- points writes --------------------------------------------------------------------- */
/* Apply the body of an UPSERT, DELETE or BATCH request to the id set: upserts
   ({"points":[{"id":…,"payload":{"seq":…}}…]} or {"batch":{"ids":[…],"payloads":[…]}}) add ids,
   deletes by id ({"points":[…]}) remove them; a delete by filter, and payload/vector operations
   of a batch, change nothing. Dense vectors are skipped without being parsed. Returns the number
   of points named, or P2Q_EBADJSON (Qdrant answers 400) / P2Q_ENOMEM. Every id of the body is
   checked before any is applied, so a refused body changes nothing. */
long p2q_sink_apply(p2q_sink_ids_t *m, p2q_sink_route_t r, const char *body, size_t len);

/* ---- the server (bench_sink.c) ------------------------------------------------------------ */
/* Start the null sink in a child process (dies with the caller: PR_SET_PDEATHSIG) listening on
   127.0.0.1:<free port>; *port gets the port. Returns the child's pid, or -1 with errno. Call it
   before the caller starts threads. Stop it with SIGTERM. */
pid_t p2q_bench_sink_spawn(int *port);

#endif

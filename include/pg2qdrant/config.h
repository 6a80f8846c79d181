/*
 * config.h — pg2qdrant's configuration, loaded from an INI file by config_load.c
 * (parsing) and config_check.c (cross-checks); config.c holds the loaded object.
 *
 * One table of settings per section kind (see config_table.c) drives parsing, validation,
 * defaults, `--help` and `config --dump`. Repeating sections are `[rule.NAME]`, `[worker.NAME]`
 * and `[embedder.NAME]`. Secrets never live in the file: keys ending in `_env` name an
 * environment variable that holds the secret, and the value is read at use time.
 * A loaded config is immutable; SIGHUP builds a new one and swaps it on the loop thread.
 */
#ifndef P2Q_CONFIG_H
#define P2Q_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define P2Q_NAME_MAX 64
/* A rule's name is part of generated PostgreSQL identifiers ("p2q_capture_NAME",
   "p2q_NAME_truncate"), which must fit in 63 bytes. */
#define P2Q_RULE_NAME_MAX 40

typedef enum { P2Q_DIST_COSINE = 0, P2Q_DIST_DOT, P2Q_DIST_EUCLID, P2Q_DIST_MANHATTAN } p2q_distance_t;
typedef enum { P2Q_EMB_MINILM = 0, P2Q_EMB_OPENAI } p2q_embedder_type_t;
typedef enum { P2Q_TRUNCATE_DELETE = 0, P2Q_TRUNCATE_IGNORE } p2q_truncate_t;
typedef enum { P2Q_SPARSE_NONE = 0, P2Q_SPARSE_BM25 } p2q_sparse_t;
typedef enum { P2Q_QUANT_NONE = 0, P2Q_QUANT_SCALAR, P2Q_QUANT_BINARY } p2q_quant_t;
typedef enum { P2Q_TRI_DEFAULT = 0, P2Q_TRI_FALSE, P2Q_TRI_TRUE } p2q_tri_t;

/* A list of strings parsed from a comma-separated value ("a, b,c"). */
typedef struct {
  char **items;
  int n;
} p2q_strlist_t;

typedef struct {
  char name[P2Q_NAME_MAX];       /* from [rule.NAME] */
  char *table;                   /* schema-qualified source table, e.g. public.docs */
  p2q_strlist_t key;             /* primary-key column(s) */
  p2q_strlist_t columns;         /* payload snapshot columns (empty: every column) */
  char *text;                    /* column list or template "{title}\n{body}" to embed (or NULL) */
  char *vector_column;           /* column holding a precomputed vector (or NULL) */
  p2q_strlist_t watch;           /* UPDATE enqueues only when one of these changed (default: captured) */
  char *filter;                  /* SQL boolean over the row (or NULL) */
  char *collection;              /* Qdrant collection */
  char *vector_name;             /* named vector (or NULL: unnamed) */
  char *event_type;              /* default: the rule name */
  char *routing_key;             /* SQL expression over the row (or NULL) */
  char *embedder;                /* [embedder.NAME] used for `text` (or NULL) */
  int64_t dimension;             /* vector size (0: taken from the embedder) */
  p2q_distance_t distance;
  p2q_truncate_t on_truncate;
  int64_t chunk_tokens;          /* 0: no chunking */
  int64_t chunk_overlap;
  /* keyword vector (bm25.h) */
  p2q_sparse_t sparse;           /* P2Q_SPARSE_BM25: a BM25 sparse vector of `text` */
  char *sparse_name;             /* its name in the collection (default "bm25") */
  char *bm25_k1, *bm25_b;        /* decimal text, validated by the loader */
  int64_t bm25_avg_len;
  int bm25_stopwords, bm25_stemmer;
  int store_text;                /* the rendered text goes into the payload as `_text` */
  /* collection settings (collection.h): 0 / -1 / DEFAULT leave Qdrant's default */
  int64_t hnsw_m, hnsw_ef_construct;
  int on_disk;                   /* dense vectors on disk */
  p2q_tri_t on_disk_payload;
  p2q_quant_t quantization;
  int quantization_always_ram;
  int64_t shard_number, replication_factor, write_consistency_factor;
  p2q_strlist_t index;           /* payload indexes "field:type[:tenant|:principal]" */
  /* derived by the loader, not a key: the embedder's identity written as payload `_model`
     ("minilm/all-MiniLM-L6-v2", "openai/text-embedding-3-small@1536"); "" without embedder */
  char model[160];
  /* derived by the daemon, not a key (reindex_def.c): 1 + index of the rule whose OLD definition
     this one is, written to the old version while a re-embedding runs; 0 for every loaded rule */
  int shadow_of;
  int line;                      /* line of the section header, for error messages */
} p2q_rule_config_t;

typedef struct {
  char name[P2Q_NAME_MAX];
  p2q_strlist_t event_types;     /* event types this worker claims */
  char *routing_key;             /* only events with this routing key (or NULL: any) */
  int64_t batch_size;
  int64_t linger_ms;
  int64_t idle_linger_ms;        /* an idle worker's NOTIFY claims this long after its last claim */
  int64_t max_inflight;
  int64_t claimers;              /* outbox sessions claiming; the second and later only in a backlog */
  int line;
} p2q_worker_config_t;

typedef struct {
  char name[P2Q_NAME_MAX];
  p2q_embedder_type_t type;
  char *model_dir;               /* minilm */
  int64_t threads;               /* minilm */
  int64_t max_batch_tokens;      /* minilm */
  char *url;                     /* openai */
  char *model;                   /* openai */
  char *api_key_env;             /* openai: name of the env var holding the key */
  int64_t dimensions;            /* openai */
  int64_t batch_size;            /* openai */
  int64_t max_inflight;          /* openai */
  int64_t max_input_tokens;      /* openai: texts are cut to about this many tokens (0: never) */
  int64_t requests_per_minute;   /* openai: request budget shared by every caller (0: unlimited) */
  int64_t tokens_per_minute;     /* openai: token budget, estimated client-side (0: unlimited) */
  char *chunk_vocab;             /* openai: vocab.txt whose word pieces chunk_tokens counts ("": none) */
  /* derived by the loader, not keys: */
  int64_t dim;                   /* vector size checked: 384 (minilm), dimensions, else the
                                    dimension of the rules using it (0: unknown) */
  int64_t retry_max_ms;          /* [daemon] retry_max: caps a Retry-After pause */
  int line;
  int64_t model_max_tokens;      /* minilm: the model's tokens per text incl. [CLS]/[SEP]
                                    (model_config.h; 256 when its files cannot be read yet) */
} p2q_embedder_config_t;

typedef struct {
  /* [postgres] */
  char *pg_conninfo;             /* libpq conninfo/URI; empty: libpq's environment (PGHOST, ...) */
  char *pg_schema;               /* schema holding sync_outbox and friends */
  int64_t pg_connect_timeout_ms;
  char *pg_daemon_synchronous_commit; /* the daemon's sessions' synchronous_commit; "default": untouched */
  /* [qdrant] */
  char *qdrant_url;
  char *qdrant_api_key_env;      /* name of the env var holding the api key (or empty) */
  char *qdrant_ca_file;          /* extra CA bundle for TLS (or empty: system store) */
  int64_t qdrant_timeout_ms;
  int64_t qdrant_connect_timeout_ms;
  /* [daemon] */
  int64_t sweep_interval_ms;
  int64_t shutdown_timeout_ms;
  int64_t lease_ms;              /* a claim expires after this; then others may reclaim */
  int64_t lease_reclaim_interval_ms; /* deprecated, ignored (no lease table since migration 015) */
  int64_t max_attempts;
  int64_t retry_min_ms;
  int64_t retry_max_ms;
  int64_t breaker_threshold;     /* consecutive transient failures that open the breaker */
  int64_t breaker_max_ms;        /* cap of the probe backoff */
  int64_t reindex_grace_ms;      /* old version kept this long after a re-embedding's swap */
  /* [log] */
  char *log_level;
  char *log_format;
  int64_t stats_interval_ms;
  /* [http] */
  char *http_listen;             /* "127.0.0.1:9187"; empty: off */

  p2q_rule_config_t *rules;
  int n_rules;
  p2q_worker_config_t *workers;
  int n_workers;
  p2q_embedder_config_t *embedders;
  int n_embedders;

  char *path;                    /* file it was loaded from */
} p2q_config_t;

/*
 * Load and validate `path`. Relative paths in it (model_dir, ca_file) are resolved against the
 * file's directory. Not reentrant: inih's options are process globals that the loader sets for
 * the duration of the parse, so load configs from one thread at a time (the loop thread).
 * Values are verbatim (no quotes/escapes; " ;" starts an inline comment; no continuation lines).
 * Warnings (a rule's event type claimed by no worker, no rules at all) go to the log.
 * On failure returns a negative code (P2Q_ECONFIG; P2Q_ENOKEY for an unknown key or section;
 * P2Q_ESECRET for a secret written in the file; P2Q_ENOENT/P2Q_EIO when the file cannot be
 * read; P2Q_ENOMEM) and writes "file:line: [section] key: reason" (with a "did you mean" hint
 * for typos) into errbuf; *out is NULL. The first error stops loading.
 */
int p2q_config_load(const char *path, p2q_config_t **out, char *errbuf, size_t errlen);
/* Same, from a string (for tests); `name` stands in for the file name in messages, and its
 * directory (if it has one) is the base for relative paths. */
int p2q_config_load_string(const char *text, const char *name, p2q_config_t **out, char *errbuf,
                           size_t errlen);
void p2q_config_free(p2q_config_t *cfg);

/* Write the effective config (defaults filled in, secrets masked) in INI form. */
void p2q_config_dump(const p2q_config_t *cfg, FILE *f);
/* Write every known key with type, default, range and help (for --help-config). */
void p2q_config_describe(FILE *f);
/* The same keys as the man page pg2qdrant.ini(5), in roff (for --man-config). */
void p2q_config_man(FILE *f, const char *version);

const p2q_rule_config_t *p2q_config_rule(const p2q_config_t *cfg, const char *name);
const p2q_embedder_config_t *p2q_config_embedder(const p2q_config_t *cfg, const char *name);
const char *p2q_distance_name(p2q_distance_t d); /* "Cosine", "Dot", ... (Qdrant's spelling; collection.c) */

/* Edit distance, used for "did you mean" hints (exposed for tests). */
int p2q_levenshtein(const char *a, const char *b);

/* True when both configs hold the same settings (every table key of every section; `path` and
 * section line numbers are ignored). Used by tests (dump round-trip) and on reload. */
int p2q_config_equal(const p2q_config_t *a, const p2q_config_t *b);

/* Value parsers shared by the loader and tests. Return 0 or P2Q_ECONFIG.
 * Durations: "500ms", "30s", "5m", "1h", or a bare number of milliseconds. */
int p2q_config_parse_duration(const char *s, int64_t *out_ms);
int p2q_config_parse_bool(const char *s, int *out); /* true/false, yes/no, on/off, 1/0 */
/* Copy of a libpq conninfo/URI (or any URL) with passwords replaced by "*****" (malloc'd). */
char *p2q_config_mask_conninfo(const char *conninfo);

/* ---- The settings tables (config_table.c), PgBouncer style ------------------------------- */

typedef enum {
  P2Q_CT_STRING = 0, /* char * */
  P2Q_CT_INT,        /* int64_t */
  P2Q_CT_BOOL,       /* int (0/1) */
  P2Q_CT_DURATION,   /* int64_t milliseconds; input "500ms", "30s", "5m", "1h" or bare ms */
  P2Q_CT_ENUM,       /* int index into `choices` (or char * with P2Q_CF_ENUM_STR) */
  P2Q_CT_LIST,       /* p2q_strlist_t from "a, b, c" */
  P2Q_CT_ENV         /* char *: NAME of an environment variable holding a secret */
} p2q_conf_type_t;

enum {
  P2Q_CF_REQUIRED = 1u << 0, /* must be present and non-empty */
  P2Q_CF_MASK = 1u << 1,     /* conninfo/URL: passwords masked by p2q_config_dump() */
  P2Q_CF_ENUM_STR = 1u << 2, /* enum stored as its canonical name (char *) */
  P2Q_CF_MINILM = 1u << 3,   /* [embedder.*] key valid only for type = minilm */
  P2Q_CF_OPENAI = 1u << 4,   /* [embedder.*] key valid only for type = openai */
  P2Q_CF_HOSTPORT = 1u << 5, /* "host:port" or "[v6]:port" (empty allowed unless REQUIRED) */
  P2Q_CF_URL = 1u << 6,      /* http:// or https:// URL */
  P2Q_CF_QUALIFIED = 1u << 7,/* schema-qualified name "schema.table" */
  P2Q_CF_PATH = 1u << 8,     /* relative paths resolve against the config file's directory */
  P2Q_CF_URLS = 1u << 9      /* comma-separated http(s):// URLs (nodes.h) */
};

#define P2Q_CONF_NOLIMIT INT64_MAX

typedef struct {
  const char *section;          /* section kind: "postgres", "rule", ... */
  const char *key;
  p2q_conf_type_t type;
  size_t offset;                /* into p2q_config_t (singletons) or the element struct */
  const char *def;              /* default, parsed like user input; NULL: unset (NULL/0) */
  int64_t min, max;             /* range for INT/DURATION (ms) */
  unsigned flags;               /* P2Q_CF_* */
  const char *help;
  const char *const *choices;   /* ENUM: allowed values, NULL-terminated, canonical spelling */
} p2q_conf_entry_t;

typedef struct {
  const char *name;             /* "postgres", or the kind of a repeated "[rule.NAME]" */
  int repeated;                 /* 1: [name.NAME] sections, stored in an array of elements */
  const p2q_conf_entry_t *entries;
  int n_entries;
  size_t arr_offset, count_offset, elem_size; /* repeated: array ptr / count in p2q_config_t */
  size_t name_offset, line_offset;            /* repeated: name[] and line in the element */
  const char *help;
} p2q_conf_section_t;

#define P2Q_CONF_MAX_KEYS 48     /* most keys in one section kind */
#define P2Q_CONF_MAX_LINE 8192   /* longest accepted line */

extern const p2q_conf_section_t p2q_conf_sections[];
extern const int p2q_conf_n_sections;
const p2q_conf_section_t *p2q_conf_section_find(const char *name);
const p2q_conf_entry_t *p2q_conf_entry_find(const p2q_conf_section_t *s, const char *key);

/* Table walkers shared by config*.c and config_table.c (internal; exposed for tests). */
int p2q_conf_parse_value(const p2q_conf_entry_t *e, const char *v, void *field, char *why,
                         size_t n);
int p2q_conf_apply_defaults(const p2q_conf_section_t *k, char *base);
void p2q_conf_free_fields(const p2q_conf_section_t *k, char *base);
/* Base of element i of a repeated kind; for singletons, cfg itself. */
char *p2q_conf_elem(const p2q_config_t *cfg, const p2q_conf_section_t *k, int i);
int *p2q_conf_count(const p2q_config_t *cfg, const p2q_conf_section_t *k);

/* "0", "500ms", "30s", "5m", "1h": the largest unit that divides ms exactly. */
void p2q_config_format_duration(int64_t ms, char *buf, size_t n);
void p2q_conf_strlist_free(p2q_strlist_t *l);
int p2q_conf_strlist_push(p2q_strlist_t *l, const char *s, size_t n);
int p2q_conf_strlist_has(const p2q_strlist_t *l, const char *s);

#endif

/*
 * config_table.c — the settings tables, PgBouncer style, and the code that walks them.
 *
 * One table per section kind; each entry is {section, key, type, offset, default, min, max,
 * flags, help, choices}. config*.c are generic over these tables: they parse values, apply
 * defaults (the default is a string parsed exactly like user input), check ranges, free,
 * compare, dump and describe by walking them. Rules that involve more than one key
 * (mutually exclusive keys, references between sections, per-type embedder keys, dimension
 * inference) live in config_check.c. Keep conf/pg2qdrant.ini in the same order.
 *
 * Below the tables: the value types (parse one value into its field, with range/format checks
 * and the error reason), and the generic walkers (defaults, free, compare, describe, masking of
 * passwords in conninfo/URLs for the dump).
 */
#include "pg2qdrant/config.h"
#include "pg2qdrant/nodes.h"
#include "pg2qdrant/netaddr.h"
#include "pg2qdrant/redact.h"

#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "pg2qdrant/errors.h"

#define NOLIM P2Q_CONF_NOLIMIT
#define DAY_MS (24LL * 3600 * 1000)

static const char *const log_levels[] = {"debug", "info", "warn", "error", NULL};
static const char *const log_formats[] = {"logfmt", "json", NULL};
static const char *const distances[] = {"Cosine", "Dot", "Euclid", "Manhattan", NULL};
static const char *const truncates[] = {"delete", "ignore", NULL};
static const char *const emb_types[] = {"minilm", "openai", NULL};
static const char *const sparses[] = {"none", "bm25", NULL};
static const char *const quants[] = {"none", "scalar", "binary", NULL};
static const char *const tris[] = {"default", "false", "true", NULL};
static const char *const sync_commits[] = {"off", "local", "remote_write", "on", "remote_apply", "default", NULL};

/* Singleton sections: fields of p2q_config_t. */
#define G(sec, key, type, field, def, min, max, flags, help, ch) \
  {sec, key, type, offsetof(p2q_config_t, field), def, min, max, flags, help, ch}

static const p2q_conf_entry_t postgres_tab[] = {
    G("postgres", "conninfo", P2Q_CT_STRING, pg_conninfo, "", 0, 0, P2Q_CF_MASK,
      "libpq conninfo (\"host=db dbname=app user=sync\") or URI (postgresql://...). Empty: "
      "libpq's environment (PGHOST, PGPORT, PGUSER, PGDATABASE, PGPASSWORD, ~/.pgpass).", NULL),
    G("postgres", "schema", P2Q_CT_STRING, pg_schema, "public", 0, 0, P2Q_CF_REQUIRED,
      "Schema holding sync_outbox and the other pg2qdrant objects.", NULL),
    G("postgres", "connect_timeout", P2Q_CT_DURATION, pg_connect_timeout_ms, "10s", 0, DAY_MS, 0,
      "Timeout for establishing a PostgreSQL connection (0: wait forever).", NULL),
    G("postgres", "daemon_synchronous_commit", P2Q_CT_ENUM, pg_daemon_synchronous_commit, "off", 0, 0,
      P2Q_CF_ENUM_STR,
      "synchronous_commit of the daemon's own transactions (acks, sweeps, status, mark); a claim "
      "that hands out events commits with the server's setting when this is off or local, and the "
      "CLI commands and the writer's events are never touched (README \"Guarantees\"). default: "
      "the server's/role's setting.", sync_commits),
};

static const p2q_conf_entry_t qdrant_tab[] = {
    G("qdrant", "url", P2Q_CT_STRING, qdrant_url, "http://127.0.0.1:6333", 0, 0,
      P2Q_CF_REQUIRED | P2Q_CF_URLS | P2Q_CF_MASK,
      "Qdrant REST endpoint (http:// or https://); for a Qdrant cluster, several nodes separated "
      "by commas (http://q1:6333, http://q2:6333): requests go to the first node that answers, a "
      "node that fails is skipped and probed in the background. One api_key_env and ca_file for all.",
      NULL),
    G("qdrant", "api_key_env", P2Q_CT_ENV, qdrant_api_key_env, "", 0, 0, 0,
      "Name of the environment variable holding the Qdrant API key (empty: no key).", NULL),
    G("qdrant", "ca_file", P2Q_CT_STRING, qdrant_ca_file, "", 0, 0, P2Q_CF_PATH,
      "Extra CA bundle (PEM) for TLS; empty: the system store. Relative to the config file.",
      NULL),
    G("qdrant", "timeout", P2Q_CT_DURATION, qdrant_timeout_ms, "30s", 1, DAY_MS, 0,
      "Timeout of one Qdrant request.", NULL),
    G("qdrant", "connect_timeout", P2Q_CT_DURATION, qdrant_connect_timeout_ms, "5s", 1, DAY_MS, 0,
      "Timeout for establishing a connection to Qdrant.", NULL),
};

static const p2q_conf_entry_t daemon_tab[] = {
    G("daemon", "sweep_interval", P2Q_CT_DURATION, sweep_interval_ms, "30s", 100, DAY_MS, 0,
      "Poll the outbox this often even without a NOTIFY (catches missed notifications).", NULL),
    G("daemon", "shutdown_timeout", P2Q_CT_DURATION, shutdown_timeout_ms, "10s", 0, DAY_MS, 0,
      "On SIGTERM, wait this long for in-flight batches before giving up.", NULL),
    G("daemon", "lease", P2Q_CT_DURATION, lease_ms, "5m", 1000, DAY_MS, 0,
      "A claimed event is leased this long; after that another worker may reclaim it.", NULL),
    G("daemon", "lease_reclaim_interval", P2Q_CT_DURATION, lease_reclaim_interval_ms, "10s", 0, DAY_MS, 0,
      "Deprecated, ignored: there is no lease table since outbox migration 015 (order per row is the "
      "claim's rule). Still accepted for one release so that existing config files load.", NULL),
    G("daemon", "max_attempts", P2Q_CT_INT, max_attempts, "10", 1, 1000, 0,
      "Attempts before an event is moved to the dead-letter state.", NULL),
    G("daemon", "retry_min", P2Q_CT_DURATION, retry_min_ms, "1s", 0, DAY_MS, 0,
      "First retry delay of a failed event (doubles per attempt, with jitter).", NULL),
    G("daemon", "retry_max", P2Q_CT_DURATION, retry_max_ms, "5m", 0, DAY_MS, 0,
      "Cap of the retry delay (must be >= retry_min).", NULL),
    G("daemon", "breaker_threshold", P2Q_CT_INT, breaker_threshold, "5", 1, 1000000, 0,
      "Transient failures in a row that open a target's circuit breaker.", NULL),
    G("daemon", "breaker_max", P2Q_CT_DURATION, breaker_max_ms, "30s", 1, DAY_MS, 0,
      "Cap of a target's probe backoff, and of its waiting events' delay.", NULL),
    G("daemon", "reindex_grace", P2Q_CT_DURATION, reindex_grace_ms, "10m", 0, DAY_MS, 0,
      "After a re-embedding swapped the alias to the new version, keep the old version this long "
      "before deleting it (a rollback target; searches through the alias never read it again).", NULL),
};

static const p2q_conf_entry_t log_tab[] = {
    G("log", "level", P2Q_CT_ENUM, log_level, "info", 0, 0, P2Q_CF_ENUM_STR,
      "Minimum level logged.", log_levels),
    G("log", "format", P2Q_CT_ENUM, log_format, "logfmt", 0, 0, P2Q_CF_ENUM_STR,
      "Log line format.", log_formats),
    G("log", "stats_interval", P2Q_CT_DURATION, stats_interval_ms, "60s", 0, DAY_MS, 0,
      "Log a stats line this often (0: off).", NULL),
};

static const p2q_conf_entry_t http_tab[] = {
    G("http", "listen", P2Q_CT_STRING, http_listen, "127.0.0.1:9187", 0, 0, P2Q_CF_HOSTPORT,
      "IP address and port of the /healthz /readyz /status /metrics endpoint: 127.0.0.1:9187, "
      "0.0.0.0:9187 (every IPv4 interface), [::1]:9187, [::]:9187, or localhost:9187 "
      "(= 127.0.0.1; no other host name is resolved). Empty: off.", NULL),
};

/* Repeated sections: fields of the element struct. */
#define R(key, type, field, def, min, max, flags, help, ch) \
  {"rule", key, type, offsetof(p2q_rule_config_t, field), def, min, max, flags, help, ch}
#define W(key, type, field, def, min, max, flags, help) \
  {"worker", key, type, offsetof(p2q_worker_config_t, field), def, min, max, flags, help, NULL}
#define E(key, type, field, def, min, max, flags, help, ch) \
  {"embedder", key, type, offsetof(p2q_embedder_config_t, field), def, min, max, flags, help, ch}

static const p2q_conf_entry_t rule_tab[] = {
    R("table", P2Q_CT_STRING, table, NULL, 0, 0, P2Q_CF_REQUIRED | P2Q_CF_QUALIFIED,
      "Source table, schema-qualified (schema.table).", NULL),
    R("key", P2Q_CT_LIST, key, NULL, 0, 0, P2Q_CF_REQUIRED,
      "Primary-key column(s), comma-separated; they make the Qdrant point id.", NULL),
    R("columns", P2Q_CT_LIST, columns, NULL, 0, 0, 0,
      "Columns copied into the point payload (empty: every column).", NULL),
    R("text", P2Q_CT_STRING, text, NULL, 0, 0, 0,
      "Text to embed: a column list (\"title, body\") or a template (\"{title}\\n{body}\"). "
      "Needs embedder. Exactly one of text / vector_column.", NULL),
    R("vector_column", P2Q_CT_STRING, vector_column, NULL, 0, 0, 0,
      "Column holding a precomputed vector. Needs dimension.", NULL),
    R("watch", P2Q_CT_LIST, watch, NULL, 0, 0, 0,
      "An UPDATE is synced only if one of these columns changed (default: columns).", NULL),
    R("filter", P2Q_CT_STRING, filter, NULL, 0, 0, 0,
      "SQL boolean over the row; only rows for which it is true are synced (empty: all).", NULL),
    R("collection", P2Q_CT_STRING, collection, NULL, 0, 0, P2Q_CF_REQUIRED,
      "Target Qdrant collection.", NULL),
    R("vector_name", P2Q_CT_STRING, vector_name, NULL, 0, 0, 0,
      "Named vector in the collection (empty: the unnamed default vector).", NULL),
    R("event_type", P2Q_CT_STRING, event_type, NULL, 0, 0, 0,
      "Outbox event type written by the trigger (default: the rule name).", NULL),
    R("routing_key", P2Q_CT_STRING, routing_key, NULL, 0, 0, 0,
      "SQL expression over the row stored as the event's routing key (empty: none).", NULL),
    R("embedder", P2Q_CT_STRING, embedder, NULL, 0, 0, 0,
      "Name of the [embedder.NAME] section used for text.", NULL),
    R("dimension", P2Q_CT_INT, dimension, "0", 0, 65536, 0,
      "Vector size, 1..65536 (0: taken from the embedder).", NULL),
    R("distance", P2Q_CT_ENUM, distance, "Cosine", 0, 0, 0,
      "Distance of the collection (case-insensitive).", distances),
    R("on_truncate", P2Q_CT_ENUM, on_truncate, "delete", 0, 0, 0,
      "TRUNCATE of the source table: delete the rule's points, or ignore it.", truncates),
    R("chunk_tokens", P2Q_CT_INT, chunk_tokens, "0", 0, 1000000, 0,
      "Split long text into chunks of at most this many word pieces, cut between words, one "
      "point each (0: no chunking).", NULL),
    R("chunk_overlap", P2Q_CT_INT, chunk_overlap, "0", 0, 1000000, 0,
      "Tokens shared by consecutive chunks (< chunk_tokens).", NULL),
    R("sparse", P2Q_CT_ENUM, sparse, "none", 0, 0, 0,
      "bm25: also write a BM25 keyword (sparse) vector of `text`, for hybrid search; the "
      "collection's sparse vector gets modifier idf. Without embedder the rule is keyword-only.",
      sparses),
    R("sparse_name", P2Q_CT_STRING, sparse_name, "bm25", 0, 0, 0,
      "Name of the sparse vector in the collection.", NULL),
    R("bm25_k1", P2Q_CT_STRING, bm25_k1, "1.2", 0, 0, 0,
      "BM25 term-frequency saturation k1 (0..10; Qdrant's qdrant/bm25 default).", NULL),
    R("bm25_b", P2Q_CT_STRING, bm25_b, "0.75", 0, 0, 0,
      "BM25 length normalisation b (0..1).", NULL),
    R("bm25_avg_len", P2Q_CT_INT, bm25_avg_len, "256", 1, 1000000, 0,
      "Expected average document length in tokens (fixed, as Qdrant's avg_len).", NULL),
    R("bm25_stopwords", P2Q_CT_BOOL, bm25_stopwords, "true", 0, 0, 0,
      "Drop English stop words before BM25.", NULL),
    R("bm25_stemmer", P2Q_CT_BOOL, bm25_stemmer, "true", 0, 0, 0,
      "English Snowball stemmer before BM25.", NULL),
    R("store_text", P2Q_CT_BOOL, store_text, "false", 0, 0, 0,
      "Put the rendered text (a chunk's own text for chunked rules) into the payload as _text.",
      NULL),
    R("hnsw_m", P2Q_CT_INT, hnsw_m, "-1", -1, 1000, 0,
      "Collection: HNSW edges per node (-1: Qdrant's default; 0 disables the global graph, "
      "for per-tenant indexes).", NULL),
    R("hnsw_ef_construct", P2Q_CT_INT, hnsw_ef_construct, "0", 0, 100000, 0,
      "Collection: HNSW ef_construct (0: Qdrant's default; else >= 4).", NULL),
    R("on_disk", P2Q_CT_BOOL, on_disk, "false", 0, 0, 0,
      "Collection: keep the dense vectors on disk (memmap).", NULL),
    R("on_disk_payload", P2Q_CT_ENUM, on_disk_payload, "default", 0, 0, 0,
      "Collection: keep the payload on disk (default: Qdrant's).", tris),
    R("quantization", P2Q_CT_ENUM, quantization, "none", 0, 0, 0,
      "Collection: vector quantization (scalar: int8; binary).", quants),
    R("quantization_always_ram", P2Q_CT_BOOL, quantization_always_ram, "false", 0, 0, 0,
      "Collection: keep quantized vectors in RAM.", NULL),
    R("shard_number", P2Q_CT_INT, shard_number, "0", 0, 65536, 0,
      "Collection: shards (0: Qdrant's default). Fixed once created.", NULL),
    R("replication_factor", P2Q_CT_INT, replication_factor, "0", 0, 1000, 0,
      "Collection: replicas of each shard (0: the default, see collection.c).", NULL),
    R("write_consistency_factor", P2Q_CT_INT, write_consistency_factor, "0", 0, 1000, 0,
      "Collection: replicas that must confirm a write (0: Qdrant's default).", NULL),
    R("index", P2Q_CT_LIST, index, NULL, 0, 0, 0,
      "Collection: payload indexes, field:type[:tenant|:principal] (type keyword, integer, "
      "float, bool, geo, datetime, text, uuid), e.g. category:keyword, price:float.", NULL),
};

static const p2q_conf_entry_t worker_tab[] = {
    W("event_types", P2Q_CT_LIST, event_types, NULL, 0, 0, P2Q_CF_REQUIRED,
      "Event types this worker claims, comma-separated; each must be produced by a rule."),
    W("routing_key", P2Q_CT_STRING, routing_key, NULL, 0, 0, 0,
      "Claim only events with this routing key (empty: any)."),
    W("batch_size", P2Q_CT_INT, batch_size, "256", 1, 10000, 0,
      "Most events claimed and sent per batch."),
    W("linger_ms", P2Q_CT_DURATION, linger_ms, "5", 0, 60000, 0,
      "Wait this long for a batch to fill after the first event (ms; units accepted)."),
    W("idle_linger_ms", P2Q_CT_DURATION, idle_linger_ms, "0", 0, 60000, 0,
      "A worker woken by a NOTIFY with nothing in flight claims once this long has passed since "
      "its previous claim (ms; units accepted): at low rates one claim collects the events of "
      "that interval (less PostgreSQL CPU per event, up to this much more latency; the previous "
      "batch's ack waits for that claim and rides on it). Only the "
      "first claim after a quiet spell waits: claims after a full one, retries, the sweep and "
      "held rows never do. 0: claim at once."),
    W("max_inflight", P2Q_CT_INT, max_inflight, "4", 1, 256, 0,
      "Batches of this worker in flight at once."),
    W("claimers", P2Q_CT_INT, claimers, "2", 1, 16, 0,
      "PostgreSQL sessions this worker claims with: the first always, the others only while a "
      "backlog lasts (a claim came back full), each with its own max_inflight batches."),
};

static const p2q_conf_entry_t embedder_tab[] = {
    E("type", P2Q_CT_ENUM, type, NULL, 0, 0, P2Q_CF_REQUIRED,
      "minilm (native BERT sentence-transformers model on the CPU, all-MiniLM-L6-v2 by default) or "
      "openai (OpenAI-compatible API).",
      emb_types),
    E("model_dir", P2Q_CT_STRING, model_dir, "models/all-MiniLM-L6-v2", 0, 0,
      P2Q_CF_MINILM | P2Q_CF_PATH,
      "minilm: a sentence-transformers BERT directory (model.safetensors, config.json, modules.json, "
      "tokenizer.json or vocab.txt); relative to the config file.",
      NULL),
    E("threads", P2Q_CT_INT, threads, "2", 1, 256, P2Q_CF_MINILM, "minilm: inference threads.",
      NULL),
    E("max_batch_tokens", P2Q_CT_INT, max_batch_tokens, "8192", 128, 1048576, P2Q_CF_MINILM,
      "minilm: most tokens per inference batch.", NULL),
    E("url", P2Q_CT_STRING, url, NULL, 0, 0, P2Q_CF_OPENAI | P2Q_CF_URL | P2Q_CF_MASK,
      "openai: base URL, e.g. https://api.openai.com/v1 (/embeddings is appended), or the full "
      ".../embeddings endpoint (required).", NULL),
    E("model", P2Q_CT_STRING, model, NULL, 0, 0, P2Q_CF_OPENAI,
      "openai: model name, e.g. text-embedding-3-small (required).", NULL),
    E("api_key_env", P2Q_CT_ENV, api_key_env, "", 0, 0, P2Q_CF_OPENAI,
      "openai: name of the environment variable holding the API key (empty: no key).", NULL),
    E("dimensions", P2Q_CT_INT, dimensions, "0", 0, 65536, P2Q_CF_OPENAI,
      "openai: output dimensions, sent in each request (0: not sent, the model's default; "
      "then the rules using it must set dimension, and that is what answers are checked "
      "against).", NULL),
    E("batch_size", P2Q_CT_INT, batch_size, "64", 1, 2048, P2Q_CF_OPENAI,
      "openai: texts per request.", NULL),
    E("max_inflight", P2Q_CT_INT, max_inflight, "4", 1, 256, P2Q_CF_OPENAI,
      "openai: concurrent requests.", NULL),
    E("max_input_tokens", P2Q_CT_INT, max_input_tokens, "0", 0, 10000000, P2Q_CF_OPENAI,
      "openai: the model's input limit in tokens; longer texts are cut (on a character "
      "boundary) to an estimate of it before sending: ASCII bytes / 3 + other bytes, which "
      "over-counts real tokenizers (0: never cut; the API rejects an over-long text and only "
      "that text is dead-lettered).", NULL),
    E("requests_per_minute", P2Q_CT_INT, requests_per_minute, "0", 0, 100000000, P2Q_CF_OPENAI,
      "openai: most requests per minute, shared by every worker of the process; a 429 slows "
      "them all (0: unlimited until a 429).", NULL),
    E("tokens_per_minute", P2Q_CT_INT, tokens_per_minute, "0", 0, 1000000000000, P2Q_CF_OPENAI,
      "openai: most input tokens per minute (same estimate as max_input_tokens), shared "
      "(0: unlimited).", NULL),
    E("chunk_vocab", P2Q_CT_STRING, chunk_vocab, "", 0, 0, P2Q_CF_OPENAI | P2Q_CF_PATH,
      "openai: a BERT vocab.txt (uncased) whose word pieces chunk_tokens counts, required by "
      "chunked rules using this embedder (the API's own tokenizer is not known here); relative "
      "to the config file.", NULL),
};

#define N(t) ((int)(sizeof(t) / sizeof((t)[0])))
#define SINGLE(nm, tab, help) {nm, 0, tab, N(tab), 0, 0, 0, 0, 0, help}
#define MULTI(nm, tab, T, arr, cnt, help)                                                \
  {nm, 1, tab, N(tab), offsetof(p2q_config_t, arr), offsetof(p2q_config_t, cnt), sizeof(T), \
   offsetof(T, name), offsetof(T, line), help}

const p2q_conf_section_t p2q_conf_sections[] = {
    SINGLE("postgres", postgres_tab, "PostgreSQL connection."),
    SINGLE("qdrant", qdrant_tab, "Qdrant connection."),
    SINGLE("daemon", daemon_tab, "Outbox processing."),
    SINGLE("log", log_tab, "Logging."),
    SINGLE("http", http_tab, "Metrics and health endpoint."),
    MULTI("embedder", embedder_tab, p2q_embedder_config_t, embedders, n_embedders,
          "An embedding model referenced by rules."),
    MULTI("rule", rule_tab, p2q_rule_config_t, rules, n_rules,
          "One source table synced to one collection."),
    MULTI("worker", worker_tab, p2q_worker_config_t, workers, n_workers,
          "A consumer of event types (default: one worker for every rule)."),
};
const int p2q_conf_n_sections = N(p2q_conf_sections);

const p2q_conf_section_t *p2q_conf_section_find(const char *name) {
  for (int i = 0; i < p2q_conf_n_sections; i++)
    if (strcmp(p2q_conf_sections[i].name, name) == 0) return &p2q_conf_sections[i];
  return NULL;
}

const p2q_conf_entry_t *p2q_conf_entry_find(const p2q_conf_section_t *s, const char *key) {
  for (int i = 0; i < s->n_entries; i++)
    if (strcmp(s->entries[i].key, key) == 0) return &s->entries[i];
  return NULL;
}

/* ---- value types ------------------------------------------------------------------------ */

void p2q_config_format_duration(int64_t ms, char *buf, size_t n) {
  if (ms == 0) snprintf(buf, n, "0");
  else if (ms % 3600000 == 0) snprintf(buf, n, "%lldh", (long long)(ms / 3600000));
  else if (ms % 60000 == 0) snprintf(buf, n, "%lldm", (long long)(ms / 60000));
  else if (ms % 1000 == 0) snprintf(buf, n, "%llds", (long long)(ms / 1000));
  else snprintf(buf, n, "%lldms", (long long)ms);
}

void p2q_conf_strlist_free(p2q_strlist_t *l) {
  for (int i = 0; i < l->n; i++) free(l->items[i]);
  free(l->items);
  l->items = NULL;
  l->n = 0;
}

int p2q_conf_strlist_push(p2q_strlist_t *l, const char *s, size_t n) {
  char **items = realloc(l->items, (size_t)(l->n + 1) * sizeof *items);
  if (!items) return P2Q_ENOMEM;
  l->items = items;
  if (!(items[l->n] = strndup(s, n))) return P2Q_ENOMEM;
  l->n++;
  return 0;
}

int p2q_conf_strlist_has(const p2q_strlist_t *l, const char *s) {
  for (int i = 0; i < l->n; i++)
    if (strcmp(l->items[i], s) == 0) return 1;
  return 0;
}


int p2q_config_parse_duration(const char *s, int64_t *out_ms) {
  static const struct { const char *unit; int64_t ms; } units[] = {
      {"", 1}, {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}};
  const char *p = s;
  int64_t v = 0;
  if (!isdigit((unsigned char)*p)) return P2Q_ECONFIG;
  for (; isdigit((unsigned char)*p); p++) {
    if (v > (INT64_MAX - 9) / 10) return P2Q_ECONFIG;
    v = v * 10 + (*p - '0');
  }
  for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
    if (strcmp(p, units[i].unit) != 0) continue;
    if (v > INT64_MAX / units[i].ms) return P2Q_ECONFIG;
    *out_ms = v * units[i].ms;
    return 0;
  }
  return P2Q_ECONFIG;
}

int p2q_config_parse_bool(const char *s, int *out) {
  static const char *const t[] = {"true", "yes", "on", "1"};
  static const char *const f[] = {"false", "no", "off", "0"};
  for (int i = 0; i < 4; i++) {
    if (strcasecmp(s, t[i]) == 0) { *out = 1; return 0; }
    if (strcasecmp(s, f[i]) == 0) { *out = 0; return 0; }
  }
  return P2Q_ECONFIG;
}

static int parse_int(const char *s, int64_t *out) {
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (errno || end == s || *end || isspace((unsigned char)*s)) return P2Q_ECONFIG;
  *out = v;
  return 0;
}

/* Skip one SQL identifier at *p: unquoted (letters, digits, _, $, non-ASCII) or "quoted" with
 * "" escapes. Returns 0 when there is none. */
static int skip_ident(const char **p) {
  const unsigned char *s = (const unsigned char *)*p;
  if (*s == '"') {
    int closed = 0;
    for (s++; *s && !closed; s++) {
      if (*s != '"') continue;
      if (s[1] == '"') s++;
      else closed = 1;
    }
    if (!closed || s == (const unsigned char *)*p + 2) return 0;
  } else {
    if (!(isalpha(*s) || *s == '_' || *s >= 0x80)) return 0;
    for (s++; isalnum(*s) || *s == '_' || *s == '$' || *s >= 0x80; s++) {}
  }
  *p = (const char *)s;
  return 1;
}

static int is_qualified(const char *v) {
  return skip_ident(&v) && *v++ == '.' && skip_ident(&v) && *v == 0;
}

static int valid_env_name(const char *s) {
  if (!(isalpha((unsigned char)*s) || *s == '_')) return 0;
  for (; *s; s++)
    if (!(isalnum((unsigned char)*s) || *s == '_')) return 0;
  return 1;
}

/* One http(s) URL as the clients use it: they append paths to it (never quoted in messages but
   the first: it may hold a password). pos > 0: the element's position in a list. */
static int check_url(const char *v, int pos, int allow_query, char *why, size_t n) {
  size_t o = 0;
  if (pos > 0) o = (size_t)snprintf(why, n, "URL %d of the list: ", pos);
  if (o >= n) o = 0;
  if (strncasecmp(v, "http://", 7) && strncasecmp(v, "https://", 8)) {
    if (pos > 0) snprintf(why + o, n - o, "not an http:// or https:// URL");
    else snprintf(why, n, "'%s' is not an http:// or https:// URL", v);
    return P2Q_ECONFIG;
  }
  const char *h = v + (strncasecmp(v, "https://", 8) ? 7 : 8);
  if (!*h || strchr("/:?#@", *h)) {
    snprintf(why + o, n - o, "the URL has no host (e.g. http://127.0.0.1:6333)");
    return P2Q_ECONFIG;
  }
  if (strchr(v, '#') || (!allow_query && strchr(v, '?'))) {
    snprintf(why + o, n - o, "%s is not allowed: paths are appended to this URL (write the base URL, "
             "e.g. https://api.openai.com/v1)", allow_query ? "a fragment ('#')" : "a query string or fragment ('?', '#')");
    return P2Q_ECONFIG;
  }
  if (strpbrk(v, " \t")) {
    snprintf(why + o, n - o, "the URL contains whitespace");
    return P2Q_ECONFIG;
  }
  return 0;
}

/* Flag-driven checks of a non-empty string value. */
static int check_string(const p2q_conf_entry_t *e, const char *v, char *why, size_t n) {
  int rc = 0;
  /* an embedder URL may carry a query (Azure OpenAI's ?api-version=…): /embeddings goes before it */
  if ((e->flags & P2Q_CF_URL) && (rc = check_url(v, 0, 1, why, n)) < 0) return rc;
  if (e->flags & P2Q_CF_URLS) { /* a list (Qdrant cluster nodes): each element as one URL */
    char *urls[P2Q_NODES_MAX];
    int k = strchr(v, ',') ? 0 : check_url(v, 0, 0, why, n);
    if (k < 0) return k;
    k = p2q_nodes_split(v, urls, P2Q_NODES_MAX, why, n);
    if (k < 0) return P2Q_ECONFIG;
    for (int i = 0; i < k; i++) {
      if (!rc && k > 1) rc = check_url(urls[i], i + 1, 0, why, n);
      free(urls[i]);
    }
    if (rc < 0) return rc;
  }
  if ((e->flags & P2Q_CF_HOSTPORT) && p2q_listen_parse(v, NULL) < 0) {
    snprintf(why, n, "'%s' is not an IP address and port (e.g. 127.0.0.1:9187, 0.0.0.0:9187, "
             "[::1]:9187 or localhost:9187; host names are not resolved)", v);
    return P2Q_ECONFIG;
  }
  if ((e->flags & P2Q_CF_QUALIFIED) && !is_qualified(v)) {
    snprintf(why, n, "'%s' is not a schema-qualified table name (expected schema.table, e.g. "
             "public.docs)", v);
    return P2Q_ECONFIG;
  }
  return 0;
}

static int parse_list(const char *v, p2q_strlist_t *out, char *why, size_t n) {
  p2q_strlist_t l = {NULL, 0};
  const char *p = v;
  int rc = 0;
  while (*v) {
    const char *end = strchr(p, ',');
    const char *stop = end ? end : p + strlen(p);
    const char *a = p, *b = stop;
    while (a < b && isspace((unsigned char)*a)) a++;
    while (b > a && isspace((unsigned char)b[-1])) b--;
    if (a == b) {
      snprintf(why, n, "empty item in list '%s'", v);
      rc = P2Q_ECONFIG;
      goto fail;
    }
    if ((rc = p2q_conf_strlist_push(&l, a, (size_t)(b - a))) < 0) goto fail;
    if (!end) break;
    p = end + 1;
  }
  p2q_conf_strlist_free(out);
  *out = l;
  return 0;
fail:
  p2q_conf_strlist_free(&l);
  return rc;
}

static int parse_enum(const p2q_conf_entry_t *e, const char *v, void *field, char *why, size_t n) {
  for (int i = 0; e->choices[i]; i++) {
    if (strcasecmp(v, e->choices[i]) != 0) continue;
    if (!(e->flags & P2Q_CF_ENUM_STR)) {
      *(int *)field = i;
      return 0;
    }
    char *s = strdup(e->choices[i]);
    if (!s) return P2Q_ENOMEM;
    free(*(char **)field);
    *(char **)field = s;
    return 0;
  }
  size_t o = (size_t)snprintf(why, n, "unknown value '%s' (expected one of:", v);
  for (int i = 0; e->choices[i] && o < n; i++)
    o += (size_t)snprintf(why + o, n - o, "%s %s", i ? "," : "", e->choices[i]);
  if (o < n) snprintf(why + o, n - o, ")");
  return P2Q_ECONFIG;
}

static int parse_number(const p2q_conf_entry_t *e, const char *v, int64_t *field, char *why,
                        size_t n) {
  int64_t x;
  if (e->type == P2Q_CT_INT && parse_int(v, &x) < 0) {
    snprintf(why, n, "'%s' is not an integer", v);
    return P2Q_ECONFIG;
  }
  if (e->type == P2Q_CT_DURATION && p2q_config_parse_duration(v, &x) < 0) {
    snprintf(why, n, "'%s' is not a duration (use e.g. 500ms, 30s, 5m, 1h; a bare number is ms)",
             v);
    return P2Q_ECONFIG;
  }
  if (x < e->min || x > e->max) {
    char lo[32], hi[32];
    if (e->type == P2Q_CT_DURATION) {
      p2q_config_format_duration(e->min, lo, sizeof lo);
      p2q_config_format_duration(e->max, hi, sizeof hi);
    } else {
      snprintf(lo, sizeof lo, "%lld", (long long)e->min);
      snprintf(hi, sizeof hi, "%lld", (long long)e->max);
    }
    snprintf(why, n, "%s is out of range (%s..%s)", v, lo, hi);
    return P2Q_ECONFIG;
  }
  *field = x;
  return 0;
}

/* Parse `v` (already trimmed by inih) into the field of entry `e`. */
int p2q_conf_parse_value(const p2q_conf_entry_t *e, const char *v, void *field, char *why,
                         size_t n) {
  int rc = 0;
  switch (e->type) {
  case P2Q_CT_STRING:
  case P2Q_CT_ENV: {
    if (*v && e->type == P2Q_CT_ENV && !valid_env_name(v)) {
      snprintf(why, n, "not an environment variable name: set it to the NAME of the variable "
               "that holds the secret (e.g. QDRANT_API_KEY), never to the secret itself");
      return P2Q_ESECRET;
    }
    if (*v && (rc = check_string(e, v, why, n)) < 0) return rc;
    char *s = NULL;
    if ((*v || e->def) && !(s = strdup(v))) return P2Q_ENOMEM;
    free(*(char **)field);
    *(char **)field = s;
    return 0;
  }
  case P2Q_CT_INT:
  case P2Q_CT_DURATION:
    return parse_number(e, v, field, why, n);
  case P2Q_CT_BOOL:
    if (p2q_config_parse_bool(v, field) < 0) {
      snprintf(why, n, "'%s' is not a boolean (true/false, yes/no, on/off, 1/0)", v);
      return P2Q_ECONFIG;
    }
    return 0;
  case P2Q_CT_ENUM:
    return parse_enum(e, v, field, why, n);
  case P2Q_CT_LIST:
    return parse_list(v, field, why, n);
  }
  return P2Q_EINTERNAL;
}

/* ---- table walkers ---------------------------------------------------------------------- */

char *p2q_conf_elem(const p2q_config_t *cfg, const p2q_conf_section_t *k, int i) {
  if (!k->repeated) return (char *)cfg;
  return *(char **)((char *)cfg + k->arr_offset) + (size_t)i * k->elem_size;
}

int *p2q_conf_count(const p2q_config_t *cfg, const p2q_conf_section_t *k) {
  return (int *)((char *)cfg + k->count_offset);
}

void p2q_conf_free_fields(const p2q_conf_section_t *k, char *base) {
  for (int i = 0; i < k->n_entries; i++) {
    const p2q_conf_entry_t *e = &k->entries[i];
    void *f = base + e->offset;
    if (e->type == P2Q_CT_STRING || e->type == P2Q_CT_ENV ||
        (e->type == P2Q_CT_ENUM && (e->flags & P2Q_CF_ENUM_STR))) {
      free(*(char **)f);
      *(char **)f = NULL;
    } else if (e->type == P2Q_CT_LIST) {
      p2q_conf_strlist_free(f);
    }
  }
}

int p2q_conf_apply_defaults(const p2q_conf_section_t *k, char *base) {
  char why[256];
  for (int i = 0; i < k->n_entries; i++) {
    const p2q_conf_entry_t *e = &k->entries[i];
    int rc;
    if (e->def && (rc = p2q_conf_parse_value(e, e->def, base + e->offset, why, sizeof why)) < 0)
      return rc == P2Q_ENOMEM ? rc : P2Q_EINTERNAL;
  }
  return 0;
}

/* Append a zeroed element named `name` with its defaults; returns its index or an error. */

/* ---- dump, describe, compare -------------------------------------------------------------- */

char *p2q_config_mask_conninfo(const char *s) {
  /* conninfos and URLs alike: one masking function for every text that leaves the process */
  return s && strstr(s, "://") && !(strncmp(s, "postgres", 8) == 0) ? p2q_redact_url(s) : p2q_redact_conninfo(s);
}

static const char *type_name(const p2q_conf_entry_t *e) {
  static const char *const n[] = {"string", "integer", "boolean", "duration", "enum", "list",
                                  "env-var name"};
  return (unsigned)e->type < sizeof n / sizeof n[0] ? n[e->type] : "?";
}

static void describe_entry(const p2q_conf_entry_t *e, FILE *f) {
  char lo[32], hi[32];
  fprintf(f, "  %s (%s", e->key, type_name(e));
  if (e->flags & P2Q_CF_REQUIRED) fprintf(f, ", required");
  if (e->def) fprintf(f, ", default %s%s%s", *e->def ? "" : "\"", e->def, *e->def ? "" : "\"");
  if (e->type == P2Q_CT_INT) fprintf(f, ", %lld..%lld", (long long)e->min, (long long)e->max);
  if (e->type == P2Q_CT_DURATION) {
    p2q_config_format_duration(e->min, lo, sizeof lo);
    p2q_config_format_duration(e->max, hi, sizeof hi);
    fprintf(f, ", %s..%s", lo, hi);
  }
  if (e->choices)
    for (int i = 0; e->choices[i]; i++) fprintf(f, "%s%s", i ? "|" : ", one of ", e->choices[i]);
  if (e->flags & P2Q_CF_MINILM) fprintf(f, ", type = minilm only");
  if (e->flags & P2Q_CF_OPENAI) fprintf(f, ", type = openai only");
  fprintf(f, ")\n      %s\n", e->help);
}

void p2q_config_describe(FILE *f) {
  fprintf(f, "pg2qdrant configuration keys (INI). Durations: 500ms, 30s, 5m, 1h; a bare number is "
             "milliseconds.\nLists are comma-separated. Secrets are never written in the file: "
             "*_env keys name an environment variable.\n");
  for (int i = 0; i < p2q_conf_n_sections; i++) {
    const p2q_conf_section_t *k = &p2q_conf_sections[i];
    fprintf(f, "\n[%s%s]  %s\n", k->name, k->repeated ? ".NAME" : "", k->help);
    for (int j = 0; j < k->n_entries; j++) describe_entry(&k->entries[j], f);
  }
}

/* roff text: backslashes escaped, a line never starts with a control character. */
static void man_text(FILE *f, const char *s) {
  if (*s == '.' || *s == '\'') fputs("\\&", f);
  for (; *s; s++) {
    if (*s == '\\') fputs("\\e", f);
    else if (*s == '-') fputs("\\-", f);
    else if (*s == '\n') {
      fputc('\n', f);
      if (s[1] == '.' || s[1] == '\'') fputs("\\&", f);
    } else fputc(*s, f);
  }
}

static void man_entry(const p2q_conf_entry_t *e, FILE *f) {
  char lo[32], hi[32];
  fprintf(f, ".TP\n.B %s\n", e->key);
  man_text(f, type_name(e));
  if (e->flags & P2Q_CF_REQUIRED) fputs(", required", f);
  if (e->def) {
    fputs(", default ", f);
    if (*e->def) { fputs("\\fB", f); man_text(f, e->def); fputs("\\fR", f); }
    else fputs("empty", f);
  }
  if (e->type == P2Q_CT_INT) fprintf(f, ", %lld..%lld", (long long)e->min, (long long)e->max);
  if (e->type == P2Q_CT_DURATION) {
    p2q_config_format_duration(e->min, lo, sizeof lo);
    p2q_config_format_duration(e->max, hi, sizeof hi);
    fprintf(f, ", %s..%s", lo, hi);
  }
  if (e->choices)
    for (int i = 0; e->choices[i]; i++) fprintf(f, "%s%s", i ? " | " : ", one of ", e->choices[i]);
  if (e->flags & P2Q_CF_MINILM) fputs(" (type = minilm only)", f);
  if (e->flags & P2Q_CF_OPENAI) fputs(" (type = openai only)", f);
  fputs(".\n.br\n", f);
  man_text(f, e->help);
  fputc('\n', f);
}

void p2q_config_man(FILE *f, const char *version) {
  fprintf(f, ".\\\" pg2qdrant.ini(5), generated by `pg2qdrant --man-config` from src/config_table.c:\n"
             ".\\\" edit the table, not this file.\n"
             ".TH PG2QDRANT.INI 5 \"\" \"pg2qdrant %s\" \"File Formats\"\n"
             ".SH NAME\npg2qdrant.ini \\- pg2qdrant configuration file\n"
             ".SH SYNOPSIS\n/etc/pg2qdrant/pg2qdrant.ini\n"
             ".SH DESCRIPTION\n"
             "The configuration of \\fBpg2qdrant\\fR(1), in INI form: \\fB[section]\\fR headers "
             "and \\fBkey = value\\fR lines. Comments are whole lines starting with \\fB;\\fR or "
             "\\fB#\\fR, or \\fB \" ;\"\\fR after a value. Values are taken verbatim: no quotes, "
             "no escapes, no continuation lines.\n.PP\n"
             "Durations: 500ms, 30s, 5m, 1h (a bare number is milliseconds). Lists are "
             "comma\\-separated. Relative paths resolve against the file's directory. An unknown "
             "key or section is an error (with a \"did you mean\" hint).\n.PP\n"
             "Secrets are never written in the file: keys ending in \\fB_env\\fR name the "
             "environment variable that holds the secret, and PostgreSQL's password comes from "
             "\\fBPGPASSWORD\\fR or \\fB~/.pgpass\\fR. A key such as \\fBapi_key\\fR or "
             "\\fBpassword\\fR is refused.\n.PP\n"
             "\\fBpg2qdrant \\-\\-help\\-config\\fR prints the same keys; \\fBpg2qdrant config "
             "\\-\\-dump\\fR prints the effective configuration with defaults filled in and "
             "secrets masked.\n",
          version);
  for (int i = 0; i < p2q_conf_n_sections; i++) {
    const p2q_conf_section_t *k = &p2q_conf_sections[i];
    fprintf(f, ".SH [%s%s]\n", k->name, k->repeated ? ".NAME" : "");
    man_text(f, k->help);
    fputc('\n', f);
    for (int j = 0; j < k->n_entries; j++) man_entry(&k->entries[j], f);
  }
  fputs(".SH EXAMPLE\n.nf\n[qdrant]\nurl = http://127.0.0.1:6333\napi_key_env = QDRANT_API_KEY\n\n"
        "[rule.docs]\ntable = public.docs\nkey = id\ncolumns = id, title\nvector_column = embedding\n"
        "dimension = 384\ncollection = docs\n.fi\n"
        ".SH FILES\n/etc/pg2qdrant/pg2qdrant.ini, /usr/share/doc/pg2qdrant/examples/\n"
        ".SH SEE ALSO\n\\fBpg2qdrant\\fR(1)\n", f);
}

static int str_eq(const char *a, const char *b) {
  return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static int entry_equal(const p2q_conf_entry_t *e, const char *a, const char *b) {
  const void *pa = a + e->offset, *pb = b + e->offset;
  switch (e->type) {
  case P2Q_CT_INT:
  case P2Q_CT_DURATION: return *(const int64_t *)pa == *(const int64_t *)pb;
  case P2Q_CT_BOOL: return *(const int *)pa == *(const int *)pb;
  case P2Q_CT_ENUM:
    if (!(e->flags & P2Q_CF_ENUM_STR)) return *(const int *)pa == *(const int *)pb;
    /* fallthrough */
  case P2Q_CT_STRING:
  case P2Q_CT_ENV: return str_eq(*(char *const *)pa, *(char *const *)pb);
  case P2Q_CT_LIST: {
    const p2q_strlist_t *la = pa, *lb = pb;
    if (la->n != lb->n) return 0;
    for (int i = 0; i < la->n; i++)
      if (strcmp(la->items[i], lb->items[i]) != 0) return 0;
    return 1;
  }
  }
  return 0;
}

int p2q_config_equal(const p2q_config_t *a, const p2q_config_t *b) {
  for (int i = 0; i < p2q_conf_n_sections; i++) {
    const p2q_conf_section_t *k = &p2q_conf_sections[i];
    int n = k->repeated ? *p2q_conf_count(a, k) : 1;
    if (k->repeated && n != *p2q_conf_count(b, k)) return 0;
    for (int j = 0; j < n; j++) {
      const char *ea = p2q_conf_elem(a, k, j), *eb = p2q_conf_elem(b, k, j);
      if (k->repeated && strcmp(ea + k->name_offset, eb + k->name_offset) != 0) return 0;
      for (int x = 0; x < k->n_entries; x++)
        if (!entry_equal(&k->entries[x], ea, eb)) return 0;
    }
  }
  return 1;
}

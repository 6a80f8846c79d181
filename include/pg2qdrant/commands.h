/*
 * commands.h — the subcommands of the pg2qdrant binary (`pg2qdrant -c FILE COMMAND [ARGS]`).
 *
 * Each returns a process exit status: 0 success, 1 runtime failure (connection, SQL, Qdrant),
 * 2 usage or configuration error; a command with a yes/no answer (reconcile) documents its own.
 * Admin commands run on the main thread with blocking libpq; `run` owns the event loop.
 */
#ifndef P2Q_COMMANDS_H
#define P2Q_COMMANDS_H

#include "pg2qdrant/buf.h"
#include "pg2qdrant/config.h"
#include <libpq-fe.h>

typedef int (*p2q_command_fn)(const p2q_config_t *cfg, int argc, char **argv);

typedef struct {
  const char *name;
  p2q_command_fn fn;
  const char *usage;
  const char *help;
} p2q_command_t;

/* The command table (NULL-terminated), for dispatch and --help. */
extern const p2q_command_t p2q_commands[];

int p2q_cmd_init(const p2q_config_t *cfg, int argc, char **argv);
int p2q_cmd_apply(const p2q_config_t *cfg, int argc, char **argv);
int p2q_cmd_run(const p2q_config_t *cfg, int argc, char **argv);
int p2q_cmd_status(const p2q_config_t *cfg, int argc, char **argv);
int p2q_cmd_retry(const p2q_config_t *cfg, int argc, char **argv);
int p2q_cmd_prune(const p2q_config_t *cfg, int argc, char **argv);
int p2q_cmd_config(const p2q_config_t *cfg, int argc, char **argv);
int p2q_cmd_embed(const p2q_config_t *cfg, int argc, char **argv);
/* reconcile exits 0 in sync, 3 drift found (see cmd_reconcile.c), 1 error, 2 usage. */
int p2q_cmd_reconcile(const p2q_config_t *cfg, int argc, char **argv);
int p2q_cmd_backfill(const p2q_config_t *cfg, int argc, char **argv);
/* reindex RULE [--no-wait] (cmd_reindex.c): zero-downtime re-embedding (README "Re-embedding
   without downtime"). */
int p2q_cmd_reindex(const p2q_config_t *cfg, int argc, char **argv);
/* apply (start 1: a rule whose vectors changed meaning gets a re-embedding job) and run (start 0):
   adopt fresh collections as NAME__v1 + alias NAME, record what each version means. busy[i] (one
   per rule) = a job runs for rule i: its collection NAME serves the OLD definition. 0 or -1 + err. */
int p2q_reindex_sync(const p2q_config_t *cfg, PGconn *conn, int start, FILE *out, int *busy, char *err,
                     size_t errlen);
/* bench: the tuning harness (bench.c); 0 all runs ok, 1 a run failed, 2 usage, 130 interrupted. */
int p2q_cmd_bench(const p2q_config_t *cfg, int argc, char **argv);
/* Pin a session to the triggers' search_path (pg_catalog, pg_temp). 0 or -1 + message. */
int p2q_backfill_pin_session(PGconn *conn, char *err, size_t errlen);
/* One backfill chunk's statement (cmd_backfill.c): $1 = the last key as jsonb text when after;
   returns (events enqueued, the chunk's last key or NULL at the end). fast: 1 columns by reference,
   2 also a real[] vector sent unprinted (p2q_capture_enqueue_vec_sql), 0 by name. */
int p2q_backfill_chunk_sql(const p2q_config_t *cfg, const p2q_rule_config_t *r, const char *where,
                           long chunk, int after, int fast, p2q_buf_t *out);
/* Enqueue rule r's matching rows (and `where`) in key-range chunks of `chunk`, each its own
   transaction with FOR SHARE on its rows (cmd_backfill.c); a progress line named `label` when
   tty. 0, or -1 with the message in err; done and chunks count what was enqueued. */
int p2q_backfill_chunks(PGconn *conn, const p2q_config_t *cfg, const p2q_rule_config_t *r,
                        const char *where, long chunk, const char *label, int tty,
                        long long *done, long long *chunks, char *err, size_t errlen);

/* Blocking admin connection (libpq environment or [postgres] conninfo). NULL + message on error. */
PGconn *p2q_admin_connect(const p2q_config_t *cfg, const char *app, char *err, size_t errlen);
/* Run one SQL script (may hold several statements). 0, or -1 with the server's message in err. */
int p2q_admin_exec(PGconn *conn, const char *sql, char *err, size_t errlen);
/* Install or upgrade the outbox schema: missing table migrations, then the functions script
   (always), in one transaction under an advisory lock. Returns the number of steps applied
   (migrations, +1 when the functions changed; 0: already up to date), or -1 with err. */
int p2q_outbox_install(PGconn *conn, const char *schema, char *err, size_t errlen);
/* 0 when the schema's version and functions hash are this build's; P2Q_EMISMATCH with a message
   saying what to run, or P2Q_EPG_QUERY. p2q_admin_check_run: the daemon's start-up check (-1:
   refuse to start, message printed; PostgreSQL unreachable: warned, 0). */
int p2q_admin_check_schema(PGconn *conn, const char *schema, char *err, size_t errlen);
int p2q_admin_check_run(const p2q_config_t *cfg);
/* 1 when `conn` goes through a transaction- or statement-pooling proxy (PgBouncer), with the
   evidence in why; 0 for a real session; -1 with the error in why (pooling.c). open_b(arg) opens
   the probe's second connection to the same server (NULL with the error in why). */
typedef PGconn *(*p2q_pg_opener_t)(void *arg, char *why, size_t n);
int p2q_pooling_detect(PGconn *conn, p2q_pg_opener_t open_b, void *arg, char *why, size_t n);
/* The opener p2q_pooling_detect needs, for arg = the config (admin.c). */
PGconn *p2q_admin_connect_probe(void *cfg, char *why, size_t n);
/* `pg2qdrant check`: the preflight (cmd_check.c). */
int p2q_cmd_check(const p2q_config_t *cfg, int argc, char **argv);
/* The schema version this build installs, and the SHA-1 (hex) of its functions script. */
int p2q_outbox_schema_version(void);
void p2q_outbox_functions_hash(char out[41]);
/* The outbox SQL with @SCHEMA@ replaced by the quoted schema, @SCHEMA_NAME@ by the name as a
   string literal, and the dollar-quote tag $p2q$ by one occurring nowhere else (malloc'd). */
char *p2q_outbox_sql(const char *tmpl, const char *schema);
/* Per event type: pending, in flight, retrying, dead, oldest pending age (s) — `status` and
   the daemon's /status run the same query (malloc'd). */
/* Up to this many events per event type (and as many dead letters) the status counts are exact;
   beyond, estimated (sync_outbox_status in sql/functions.sql): the refresh costs the same at any
   backlog. */
#define P2Q_OUTBOX_STATUS_EXACT 5000
char *p2q_outbox_status_sql(const char *schema);


#include "pg2qdrant/qdrant.h"
/* Qdrant client options from [qdrant] (the api key is read from the env var api_key_env names). */
void p2q_qdrant_options_from_config(const p2q_config_t *cfg, p2q_qdrant_options_t *opts);
/* Parse "7d", "12h", "30m", "45s", "500ms" (bare number: seconds). -1 on error. */
long long p2q_parse_age_ms(const char *s);

#endif

/*
 * commands.c — the table of subcommands (name, handler, usage, one-line help). main.c
 * dispatches on it and prints it in --help; add a command here and nowhere else.
 */
#include "pg2qdrant/commands.h"

#include <stddef.h>

const p2q_command_t p2q_commands[] = {
    {"init", p2q_cmd_init, "init", "create or upgrade the outbox schema (idempotent)"},
    {"apply", p2q_cmd_apply, "apply [--dry-run] [--no-backfill] [--chunk 1000]",
     "install rule triggers, create collections, enqueue existing rows"},
    {"run", p2q_cmd_run, "run", "run the sync daemon (LISTEN + sweep + WorkerPool) until SIGTERM"},
    {"check", p2q_cmd_check, "check [--json]",
     "preflight: config, PostgreSQL, schema, rules, triggers, privileges, Qdrant, embedders, listen"},
    {"status", p2q_cmd_status, "status [--json]",
     "pending / in flight / retrying / dead / oldest age per event type"},
    {"retry", p2q_cmd_retry, "retry [--event-type T] [--dead]",
     "try waiting (or dead-lettered) events now"},
    {"prune", p2q_cmd_prune, "prune [--older-than 7d]", "delete old dead letters"},
    {"reconcile", p2q_cmd_reconcile, "reconcile [RULE] [--fix] [--sample N]",
     "compare rows with points (missing/orphaned/stale); --fix repairs through the outbox; exit 3 on drift"},
    {"backfill", p2q_cmd_backfill, "backfill RULE [--where SQL] [--chunk 10000]",
     "enqueue existing rows in short key-range chunks (no table lock)"},
    {"reindex", p2q_cmd_reindex, "reindex RULE [--no-wait]",
     "re-embed a rule into a new collection version behind its alias, swap when caught up"},
    {"embed", p2q_cmd_embed, "embed [--embedder NAME] [--jsonl]",
     "texts on stdin, one JSON vector per line on stdout"},
    {"bench", p2q_cmd_bench, "bench [--workload drain,steady] [--sweep KNOB=V1,V2] [--p99-max 25ms]",
     "throughput/latency harness on scratch schema + collections (see bench --help)"},
    {"config", p2q_cmd_config, "config --dump", "print the effective configuration (secrets masked)"},
    {NULL, NULL, NULL, NULL},
};

/*
 * main.c — command-line entry point: parses global options, loads the config, dispatches to a
 * subcommand from the p2q_commands table (commands.c). Exit status 2 on usage/config errors.
 */
#include "pg2qdrant/blas_kernel.h"
#include "pg2qdrant/commands.h"
#include "pg2qdrant/config.h"
#include "pg2qdrant/log.h"
#include "pg2qdrant/redact.h"
#include "pg2qdrant/version.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
  fprintf(f,
          "pg2qdrant %s — keeps Qdrant in sync with PostgreSQL through a transactional outbox\n\n"
          "usage: pg2qdrant [-c FILE] COMMAND [ARGS]\n"
          "       pg2qdrant --help | --version | --help-config\n\n"
          "options:\n"
          "  -c, --config FILE  configuration file (default: $PG2QDRANT_CONFIG or pg2qdrant.ini)\n"
          "  -h, --help         this help\n"
          "  -V, --version      print the version\n"
          "      --help-config  every configuration key with its type, default and range\n"
          "      --man-config   the same as the man page pg2qdrant.ini(5) (roff)\n\n"
          "commands:\n",
          P2Q_VERSION);
  for (const p2q_command_t *c = p2q_commands; c->name; c++) {
    if (strlen(c->usage) <= 28) fprintf(f, "  %-28s %s\n", c->usage, c->help);
    else fprintf(f, "  %s\n  %-28s %s\n", c->usage, "", c->help);
  }
  fprintf(f, "\nSecrets come from the environment (api_key_env = VAR, PGPASSWORD), never the file.\n");
}

/* Every secret value this process can know, registered before anything logs: the logger masks
   them in every line (redact.h), whatever a caller or a library's error text puts there. */
static void register_secrets(const p2q_config_t *cfg) {
  p2q_redact_register(getenv("PGPASSWORD"));
  p2q_redact_register_conninfo(cfg->pg_conninfo);
  p2q_redact_register_url(cfg->qdrant_url);
  if (cfg->qdrant_api_key_env && *cfg->qdrant_api_key_env)
    p2q_redact_register(getenv(cfg->qdrant_api_key_env));
  for (int i = 0; i < cfg->n_embedders; i++) {
    p2q_redact_register_url(cfg->embedders[i].url);
    if (cfg->embedders[i].api_key_env && *cfg->embedders[i].api_key_env)
      p2q_redact_register(getenv(cfg->embedders[i].api_key_env));
  }
}

int main(int argc, char **argv) {
  p2q_blas_autoselect(argv); /* may re-exec with OPENBLAS_CORETYPE set (blas_kernel.h) */
  const char *path = getenv("PG2QDRANT_CONFIG");
  int i = 1;
  for (; i < argc && argv[i][0] == '-'; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return 0; }
    if (!strcmp(a, "-V") || !strcmp(a, "--version")) { printf("pg2qdrant %s\n", P2Q_VERSION); return 0; }
    if (!strcmp(a, "--help-config")) { p2q_config_describe(stdout); return 0; }
    if (!strcmp(a, "--man-config")) { p2q_config_man(stdout, P2Q_VERSION); return 0; }
    if (!strcmp(a, "-c") || !strcmp(a, "--config")) {
      if (++i >= argc) { fprintf(stderr, "pg2qdrant: %s needs a file\n", a); return 2; }
      path = argv[i];
      continue;
    }
    if (!strncmp(a, "--config=", 9)) { path = a + 9; continue; }
    fprintf(stderr, "pg2qdrant: unknown option '%s' (see --help)\n", a);
    return 2;
  }
  if (i >= argc) { usage(stderr); return 2; }
  const p2q_command_t *cmd = NULL;
  for (const p2q_command_t *c = p2q_commands; c->name; c++)
    if (!strcmp(c->name, argv[i])) cmd = c;
  if (!cmd) {
    fprintf(stderr, "pg2qdrant: unknown command '%s' (see --help)\n", argv[i]);
    return 2;
  }
  /* `bench --help` lists its many options without needing a config (bench.c reads none before) */
  if (!strcmp(cmd->name, "bench") && i + 1 < argc && (!strcmp(argv[i + 1], "--help") || !strcmp(argv[i + 1], "-h")))
    return cmd->fn(NULL, argc - i - 1, argv + i + 1);
  if (!path) path = "pg2qdrant.ini";

  char err[1024];
  p2q_config_t *cfg = NULL;
  if (p2q_config_load(path, &cfg, err, sizeof err) < 0) {
    fprintf(stderr, "pg2qdrant: %s\n", err);
    return 2;
  }
  register_secrets(cfg);
  p2q_log_level_t level = P2Q_LOG_INFO;
  if (cfg->log_level) p2q_log_level_parse(cfg->log_level, &level);
  p2q_log_configure(level, cfg->log_format && !strcmp(cfg->log_format, "json") ? P2Q_LOG_JSON : P2Q_LOG_LOGFMT, 2);
  int rc = cmd->fn(cfg, argc - i - 1, argv + i + 1);
  p2q_config_free(cfg);
  return rc;
}

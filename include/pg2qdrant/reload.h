/*
 * reload.h — SIGHUP's policy (reload.c): load and validate the config file again and decide
 * whether it may replace the running one live (loop thread; the config loader is not reentrant).
 */
#ifndef P2Q_RELOAD_H
#define P2Q_RELOAD_H

#include "pg2qdrant/config.h"

/* Load old->path. Returns the result for the reload metric ("ok", "error", "refused"), logged;
 * *out is the new config (caller owns it) when it differs and may be applied live, else NULL.
 * The log level and format are applied here. */
const char *p2q_reload_load(const p2q_config_t *old, p2q_config_t **out);

#endif

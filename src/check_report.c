/*
 * check_report.c — the one line (or JSON object) per check of `pg2qdrant check` (check.h), below
 * every file that checks something (cmd_check.c, check_privs.c, check_remote.c). Main thread.
 */
#include "check.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const level_names[] = {"ok", "warn", "FAIL"};

void p2q_check_report(p2q_check_t *c, p2q_check_level_t lvl, const char *name, const char *fix,
                      const char *fmt, ...) {
  char msg[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (lvl == P2Q_CHECK_FAIL) c->n_fail++;
  if (lvl == P2Q_CHECK_WARN) c->n_warn++;
  if (c->json) {
    p2q_buf_puts(&c->out, c->n++ ? ",{" : "{");
    p2q_buf_puts(&c->out, "\"check\":");
    p2q_buf_json_string(&c->out, name, strlen(name));
    p2q_buf_printf(&c->out, ",\"status\":\"%s\",\"message\":", lvl == P2Q_CHECK_FAIL ? "fail" : level_names[lvl]);
    p2q_buf_json_string(&c->out, msg, strlen(msg));
    if (fix) {
      p2q_buf_puts(&c->out, ",\"fix\":");
      p2q_buf_json_string(&c->out, fix, strlen(fix));
    }
    p2q_buf_putc(&c->out, '}');
    return;
  }
  printf("%-4s  %-28s %s%s%s\n", level_names[lvl], name, msg, fix ? " -- fix: " : "", fix ? fix : "");
  fflush(stdout);
}

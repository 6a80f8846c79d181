/*
 * bench_proc.c — process plumbing for `pg2qdrant bench`: spawning and stopping the daemons
 * under test (real `pg2qdrant run` processes), CPU and peak RSS from /proc, finding the local
 * process behind a TCP port (Qdrant's CPU), scraping a daemon's /metrics, and a small blocking
 * HTTP helper for the scratch collections.
 *
 * Main thread only, except p2q_bench_proc_cpu (reentrant, used by writer threads).
 */
#include "bench_load.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

double p2q_bench_proc_cpu(int pid) {
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  FILE *f = fopen(path, "r");
  if (!f) return NAN;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  char *p = strrchr(buf, ')');
  if (!p) return NAN;
  /* after ") ": state(3) ppid ... utime is field 14, stime 15 (1-based over the whole line) */
  unsigned long ut = 0, st = 0;
  if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2) return NAN;
  return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

double p2q_bench_proc_hwm_mib(int pid) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%d/status", pid);
  FILE *f = fopen(path, "r");
  if (!f) return NAN;
  double v = NAN;
  while (fgets(line, sizeof line, f))
    if (!strncmp(line, "VmHWM:", 6)) { v = atof(line + 6) / 1024.0; break; }
  fclose(f);
  return v;
}

double p2q_bench_self_cpu(void) {
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) != 0) return NAN;
  return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
         ru.ru_stime.tv_usec / 1e6;
}

static unsigned long listen_inode(const char *file, int port) {
  FILE *f = fopen(file, "r");
  if (!f) return 0;
  char line[512];
  unsigned long ino = 0;
  if (!fgets(line, sizeof line, f)) { fclose(f); return 0; }
  while (fgets(line, sizeof line, f)) {
    char local[128];
    unsigned st;
    unsigned long inode;
    if (sscanf(line, " %*d: %127s %*s %x %*s %*s %*s %*s %*s %lu", local, &st, &inode) != 3) continue;
    char *c = strrchr(local, ':');
    if (!c || st != 0x0A) continue;
    if ((int)strtol(c + 1, NULL, 16) == port) { ino = inode; break; }
  }
  fclose(f);
  return ino;
}

int p2q_bench_port_pid(int port) {
  unsigned long ino = listen_inode("/proc/net/tcp", port);
  if (!ino) ino = listen_inode("/proc/net/tcp6", port);
  if (!ino) return -1;
  char want[64];
  snprintf(want, sizeof want, "socket:[%lu]", ino);
  DIR *d = opendir("/proc");
  if (!d) return -1;
  struct dirent *e;
  int found = -1;
  while (found < 0 && (e = readdir(d))) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    char fdd[300];
    snprintf(fdd, sizeof fdd, "/proc/%s/fd", e->d_name);
    DIR *fd = opendir(fdd);
    if (!fd) continue;
    struct dirent *x;
    while ((x = readdir(fd))) {
      char p[600], l[128];
      snprintf(p, sizeof p, "%s/%s", fdd, x->d_name);
      ssize_t n = readlink(p, l, sizeof l - 1);
      if (n <= 0) continue;
      l[n] = 0;
      if (!strcmp(l, want)) { found = atoi(e->d_name); break; }
    }
    closedir(fd);
  }
  closedir(d);
  return found;
}

int p2q_bench_free_port(void) {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  if (s < 0) return -1;
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  int port = -1;
  if (bind(s, (struct sockaddr *)&a, sizeof a) == 0 && getsockname(s, (struct sockaddr *)&a, &len) == 0)
    port = ntohs(a.sin_port);
  close(s);
  return port;
}

static pid_t spawn(const char *exe, const char *config, const char *log, const char *const *args, int wrap) {
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid != 0) return pid;
  /* child: die with the bench, whatever kills it; default signal dispositions */
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  if (getppid() != parent) _exit(127);
  signal(SIGINT, SIG_IGN); /* a Ctrl-C reaches the whole group: the bench stops us in order */
  signal(SIGTERM, SIG_DFL);
  int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
  if (fd >= 0) {
    dup2(fd, 1);
    dup2(fd, 2);
    close(fd);
  }
  const char *argv[16];
  int n = 0;
  argv[n++] = exe;
  argv[n++] = "-c";
  argv[n++] = config;
  for (int i = 0; args[i] && n < 15; i++) argv[n++] = args[i];
  argv[n] = NULL;
  /* P2Q_BENCH_WRAP (e.g. "valgrind --tool=callgrind"): the daemons run under it, for profiles;
     the shell splits it, the binary is then named by its path */
  const char *w = wrap ? getenv("P2Q_BENCH_WRAP") : NULL;
  if (w && *w) {
    const char *sh[20] = {"sh", "-c", "exec $P2Q_BENCH_WRAP \"$@\"", "sh"};
    for (int i = 0; i <= n; i++) sh[4 + i] = argv[i];
    execv("/bin/sh", (char *const *)sh);
    _exit(127);
  }
  /* /proc/self/exe: exactly the binary the bench runs, even if the file was replaced since */
  execv("/proc/self/exe", (char *const *)argv);
  execv(exe, (char *const *)argv);
  _exit(127);
}

pid_t p2q_bench_spawn(const char *exe, const char *config, const char *log) {
  const char *args[] = {"run", NULL};
  return spawn(exe, config, log, args, 1);
}

int p2q_bench_run_cmd(const char *exe, const char *config, const char *log, const char *const *args) {
  pid_t pid = spawn(exe, config, log, args, 0);
  if (pid < 0) return -1;
  int st;
  while (waitpid(pid, &st, 0) < 0)
    if (errno != EINTR) return -1;
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int p2q_bench_stop(pid_t pid, int ms) {
  if (pid <= 0) return -1;
  kill(pid, SIGTERM);
  int st;
  for (int waited = 0;; waited += 20) {
    pid_t r = waitpid(pid, &st, WNOHANG);
    if (r == pid) return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    if (r < 0) return -1;
    if (waited >= ms) break;
    struct timespec ts = {0, 20 * 1000000L};
    nanosleep(&ts, NULL);
  }
  kill(pid, SIGKILL);
  waitpid(pid, &st, 0);
  return -1;
}

/* ---- HTTP -------------------------------------------------------------------------------- */

typedef struct {
  char *d;
  size_t n;
} mem_t;

static size_t on_data(char *p, size_t sz, size_t nm, void *u) {
  mem_t *m = u;
  size_t k = sz * nm;
  if (m->n + k > (64u << 20)) return 0;
  char *nd = realloc(m->d, m->n + k + 1);
  if (!nd) return 0;
  memcpy(nd + m->n, p, k);
  m->d = nd;
  m->n += k;
  m->d[m->n] = 0;
  return k;
}

long p2q_bench_http(const char *method, const char *url, const char *api_key, const char *ca_file,
                    const char *json, char **body) {
  CURL *h = curl_easy_init();
  if (!h) return -1;
  struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/json");
  char key[512];
  if (api_key && *api_key) {
    snprintf(key, sizeof key, "api-key: %s", api_key);
    hdr = curl_slist_append(hdr, key);
  }
  mem_t m = {0};
  curl_easy_setopt(h, CURLOPT_URL, url);
  curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &m);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 60000L);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  if (ca_file && *ca_file) curl_easy_setopt(h, CURLOPT_CAINFO, ca_file);
  if (json) curl_easy_setopt(h, CURLOPT_POSTFIELDS, json);
  long status = -1;
  if (curl_easy_perform(h) == CURLE_OK) curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  curl_slist_free_all(hdr);
  curl_easy_cleanup(h);
  if (body) *body = m.d;
  else free(m.d);
  return status;
}

int p2q_bench_scrape(int port, double *requests, double *seconds) {
  char url[64], *body = NULL;
  snprintf(url, sizeof url, "http://127.0.0.1:%d/metrics", port);
  *requests = *seconds = 0;
  if (p2q_bench_http("GET", url, NULL, NULL, NULL, &body) != 200 || !body) { free(body); return -1; }
  const char *name = "pg2qdrant_qdrant_request_duration_seconds_";
  for (char *line = strtok(body, "\n"); line; line = strtok(NULL, "\n")) {
    if (strncmp(line, name, strlen(name))) continue;
    const char *rest = line + strlen(name);
    int is_sum = !strncmp(rest, "sum{", 4), is_count = !strncmp(rest, "count{", 6);
    if (!is_sum && !is_count) continue;
    if (!strstr(line, "endpoint=\"upsert\"") && !strstr(line, "endpoint=\"delete\"")) continue;
    const char *sp = strrchr(line, ' ');
    if (!sp) continue;
    double v = atof(sp + 1);
    if (is_sum) *seconds += v;
    else *requests += v;
  }
  free(body);
  return 0;
}

double p2q_bench_scrape_value(int port, const char *name) {
  char url[64], *body = NULL;
  snprintf(url, sizeof url, "http://127.0.0.1:%d/metrics", port);
  if (p2q_bench_http("GET", url, NULL, NULL, NULL, &body) != 200 || !body) { free(body); return NAN; }
  double v = NAN;
  size_t n = strlen(name);
  for (const char *line = body; line && *line; line = strchr(line, '\n'), line = line ? line + 1 : NULL)
    if (!strncmp(line, name, n) && line[n] == ' ') { v = atof(line + n + 1); break; }
  free(body);
  return v;
}

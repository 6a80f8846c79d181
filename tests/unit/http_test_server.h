/*
 * http_test_server.h — a tiny scripted HTTP/1.1 server on 127.0.0.1 for the http and qdrant
 * unit tests (header-only; one poll()-driven thread; keep-alive; several connections).
 *
 * Routes (the path picks the behaviour):
 *   /echo             200, body = request body
 *   /status/NNN       status NNN with body {"status":{"error":"code NNN"},"time":0}
 *   /retry-after/N    429 with "Retry-After: N"
 *   /retry-date       503 with "Retry-After: <HTTP-date 120 s ahead>"
 *   /retry-raw/KIND   429 with Retry-After "99999999999" (huge), "Wed, 21 Oct 2037 07:28:00 GMT"
 *                     (2037), "Mon, 01 Jul 2030 00:00:00 GMT" (2030), "-5" (negative), "soon"
 *                     (garbage)
 *   /huge/N           200 with Content-Length N and N bytes of body (a success envelope padded
 *                     with 'x'), streamed; /hugechunked/N the same, chunked without a length
 *   /redirect/NNN     status NNN with "Location: http://user:s3cret@elsewhere:6333/x"
 *   /envelope200      200 {"status":{"error":"boom"},"result":null}
 *   /html200          200 with an HTML page (a proxy's)
 *   /slow/MS          200 after MS milliseconds
 *   /close            close the connection without answering (empty reply)
 *   /kareset          on a reused connection: close without answering; fresh: 200
 *   /karst            on a reused connection: send half a status line, then RST; fresh: 200
 *   /partial          headers announce 100 bytes, 10 are sent, then close
 *   /canned/NAME      200 (or the status set with srv_set_canned) with the canned body NAME
 *   anything else     the next scripted response (srv_script), else the canned body/status
 *                     (canned_body/canned_status), else 200 {"result":true,"status":"ok","time":0.0}
 * The server records the last request's method, path, content-type, api-key and body, counts
 * accepted connections and per-route hits, and the maximum number of concurrently delayed
 * (/slow) requests.
 */
#ifndef P2Q_HTTP_TEST_SERVER_H
#define P2Q_HTTP_TEST_SERVER_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define SRV_MAXC 32

typedef struct {
  int fd;
  char buf[1 << 16];
  size_t len;
  int served;          /* requests answered on this connection */
  long long due_ms;    /* >0: a delayed response is pending */
  long long last_ms;   /* last activity (idle-close) */
  char pending[1024];  /* delayed response */
} srv_conn_t;

typedef struct {
  int lfd, port, wake[2];
  pthread_t th;
  pthread_mutex_t mu;
  srv_conn_t conns[SRV_MAXC];
  /* recorded (under mu) */
  int accepted;
  int hits_kareset, hits_close, hits_total;
  int slow_now, slow_max;
  char last_method[16], last_path[256], last_ctype[128], last_apikey[128];
  char last_body[4096];
  /* canned body for /canned/ (set before use) */
  const char *canned_body;
  int canned_status;
  /* scripted responses, consumed in order (under mu) */
  int script_status[8];
  const char *script_body[8];
  int script_n, script_pos;
  int idle_close_ms;  /* >0: close connections idle this long (like Qdrant's 5 s keep-alive) */
  char paths[8][256]; /* paths of the scripted requests, in order */
} srv_t;

static inline void srv_script(srv_t *s, int status, const char *body) {
  pthread_mutex_lock(&s->mu);
  if (s->script_n < 8) {
    s->script_status[s->script_n] = status;
    s->script_body[s->script_n++] = body;
  }
  pthread_mutex_unlock(&s->mu);
}

static inline void srv_script_reset(srv_t *s) {
  pthread_mutex_lock(&s->mu);
  s->script_n = s->script_pos = 0;
  s->canned_body = NULL;
  s->canned_status = 0;
  pthread_mutex_unlock(&s->mu);
}

static long long srv_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void srv_write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    if (w <= 0) return;
    p += w;
    n -= (size_t)w;
  }
}

static void srv_respond(int fd, int status, const char *extra_hdr, const char *body) {
  char hdr[512];
  int n = snprintf(hdr, sizeof hdr, "HTTP/1.1 %d X\r\nContent-Type: application/json\r\n%sContent-Length: %zu\r\n\r\n",
                   status, extra_hdr ? extra_hdr : "", strlen(body));
  srv_write_all(fd, hdr, (size_t)n);
  srv_write_all(fd, body, strlen(body));
}

static void srv_drop(srv_t *s, srv_conn_t *c) {
  close(c->fd);
  c->fd = -1;
  c->len = 0;
  c->served = 0;
  if (c->due_ms) { pthread_mutex_lock(&s->mu); s->slow_now--; pthread_mutex_unlock(&s->mu); }
  c->due_ms = 0;
}

static void srv_hdr(const char *hdrs, const char *name, char *out, size_t n) {
  out[0] = 0;
  const char *p = hdrs;
  size_t nl = strlen(name);
  while ((p = strstr(p, "\r\n"))) {
    p += 2;
    if (!strncasecmp(p, name, nl) && p[nl] == ':') {
      p += nl + 1;
      while (*p == ' ') p++;
      size_t l = strcspn(p, "\r\n");
      if (l >= n) l = n - 1;
      memcpy(out, p, l);
      out[l] = 0;
      return;
    }
  }
}

/* Handle one complete request in c->buf; returns bytes consumed, or -1 to close. */
static long srv_handle(srv_t *s, srv_conn_t *c) {
  c->buf[c->len < sizeof c->buf ? c->len : sizeof c->buf - 1] = 0;
  char *end = strstr(c->buf, "\r\n\r\n");
  if (!end) return 0;
  size_t hlen = (size_t)(end - c->buf) + 4;
  char cl[32], method[16] = "", path[256] = "";
  srv_hdr(c->buf, "Content-Length", cl, sizeof cl);
  size_t blen = cl[0] ? (size_t)atol(cl) : 0;
  if (c->len < hlen + blen) return 0;
  sscanf(c->buf, "%15s %255s", method, path);
  pthread_mutex_lock(&s->mu);
  s->hits_total++;
  snprintf(s->last_method, sizeof s->last_method, "%s", method);
  snprintf(s->last_path, sizeof s->last_path, "%s", path);
  srv_hdr(c->buf, "Content-Type", s->last_ctype, sizeof s->last_ctype);
  srv_hdr(c->buf, "api-key", s->last_apikey, sizeof s->last_apikey);
  size_t bl = blen < sizeof s->last_body - 1 ? blen : sizeof s->last_body - 1;
  memcpy(s->last_body, c->buf + hlen, bl);
  s->last_body[bl] = 0;
  pthread_mutex_unlock(&s->mu);
  long consumed = (long)(hlen + blen);
  int reused = c->served > 0;
  c->served++;
  if (!strcmp(path, "/echo")) {
    char body[4096];
    snprintf(body, sizeof body, "%.*s", (int)bl, c->buf + hlen);
    srv_respond(c->fd, 200, NULL, body);
  } else if (!strncmp(path, "/status/", 8)) {
    char body[128];
    snprintf(body, sizeof body, "{\"status\":{\"error\":\"code %d\"},\"time\":0}", atoi(path + 8));
    srv_respond(c->fd, atoi(path + 8), NULL, body);
  } else if (!strncmp(path, "/retry-after/", 13)) {
    char h[64];
    snprintf(h, sizeof h, "Retry-After: %d\r\n", atoi(path + 13));
    srv_respond(c->fd, 429, h, "{\"status\":{\"error\":\"rate limited\"},\"time\":0}");
  } else if (!strcmp(path, "/retry-date")) {
    char h[128], d[64];
    time_t t = time(NULL) + 120;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(d, sizeof d, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    snprintf(h, sizeof h, "Retry-After: %s\r\n", d);
    srv_respond(c->fd, 503, h, "{\"status\":{\"error\":\"unavailable\"},\"time\":0}");
  } else if (!strncmp(path, "/retry-raw/", 11)) {
    const char *k = path + 11, *v = !strcmp(k, "huge") ? "99999999999"
                                  : !strcmp(k, "2037") ? "Wed, 21 Oct 2037 07:28:00 GMT"
                                  : !strcmp(k, "2030") ? "Mon, 01 Jul 2030 00:00:00 GMT"
                                  : !strcmp(k, "negative") ? "-5" : "soon";
    char h[128];
    snprintf(h, sizeof h, "Retry-After: %s\r\n", v);
    srv_respond(c->fd, 429, h, "{\"status\":{\"error\":\"Too many requests\"},\"time\":0}");
  } else if (!strncmp(path, "/huge/", 6) || !strncmp(path, "/hugechunked/", 13)) {
    int chunked = path[5] == 'c';
    size_t n = (size_t)atoll(strchr(path + 1, '/') + 1), sent = 0;
    char h[160], piece[1 << 16];
    if (chunked) snprintf(h, sizeof h, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n");
    else snprintf(h, sizeof h, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n", n);
    srv_write_all(c->fd, h, strlen(h));
    memset(piece, 'x', sizeof piece);
    const char *head = "{\"result\":{\"pad\":\"", *tail = "\"},\"status\":\"ok\",\"time\":0}";
    while (sent < n) { /* head + padding + tail = n bytes (n > 40) */
      size_t k = n - sent < sizeof piece ? n - sent : sizeof piece;
      char *p = piece;
      if (sent == 0) memcpy(piece, head, strlen(head));
      if (sent + k == n) memcpy(piece + k - strlen(tail), tail, strlen(tail));
      if (chunked) { char ch[32]; int l = snprintf(ch, sizeof ch, "%zx\r\n", k); if (send(c->fd, ch, (size_t)l, MSG_NOSIGNAL) <= 0) break; }
      ssize_t w = send(c->fd, p, k, MSG_NOSIGNAL);
      if (w <= 0) break; /* the client hung up (its body cap) */
      if ((size_t)w < k) { srv_write_all(c->fd, p + w, k - (size_t)w); }
      if (chunked && send(c->fd, "\r\n", 2, MSG_NOSIGNAL) <= 0) break;
      sent += k;
      memset(piece, 'x', sizeof piece);
    }
    if (chunked && sent == n) srv_write_all(c->fd, "0\r\n\r\n", 5);
    if (sent < n) return -1;
  } else if (!strncmp(path, "/redirect/", 10)) {
    srv_respond(c->fd, atoi(path + 10), "Location: http://user:s3cret@elsewhere:6333/x\r\n", "");
  } else if (!strcmp(path, "/envelope200")) {
    srv_respond(c->fd, 200, NULL, "{\"status\":{\"error\":\"boom\"},\"result\":null}");
  } else if (!strcmp(path, "/html200")) {
    srv_respond(c->fd, 200, NULL, "<html><body>Welcome to nginx!</body></html>");
  } else if (!strncmp(path, "/slow/", 6)) {
    c->due_ms = srv_now_ms() + atoi(path + 6);
    snprintf(c->pending, sizeof c->pending, "{\"result\":\"slow\",\"status\":\"ok\",\"time\":0}");
    pthread_mutex_lock(&s->mu);
    if (++s->slow_now > s->slow_max) s->slow_max = s->slow_now;
    pthread_mutex_unlock(&s->mu);
  } else if (!strcmp(path, "/close")) {
    pthread_mutex_lock(&s->mu); s->hits_close++; pthread_mutex_unlock(&s->mu);
    return -1;
  } else if (!strcmp(path, "/kareset")) {
    pthread_mutex_lock(&s->mu); s->hits_kareset++; pthread_mutex_unlock(&s->mu);
    if (reused) return -1;
    srv_respond(c->fd, 200, NULL, "{\"result\":\"fresh\",\"status\":\"ok\",\"time\":0}");
  } else if (!strcmp(path, "/karst")) {
    pthread_mutex_lock(&s->mu); s->hits_kareset++; pthread_mutex_unlock(&s->mu);
    if (reused) {
      struct linger lg = {1, 0};
      srv_write_all(c->fd, "HTTP/1.1 2", 10);
      usleep(20000);
      setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
      return -1;
    }
    srv_respond(c->fd, 200, NULL, "{\"result\":\"fresh\",\"status\":\"ok\",\"time\":0}");
  } else if (!strcmp(path, "/partial")) {
    const char *h = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789";
    srv_write_all(c->fd, h, strlen(h));
    return -1;
  } else if (!strncmp(path, "/canned/", 8)) {
    srv_respond(c->fd, s->canned_status ? s->canned_status : 200, NULL,
                s->canned_body ? s->canned_body : "");
  } else {
    int st = 200;
    const char *b = "{\"result\":true,\"status\":\"ok\",\"time\":0.0}";
    pthread_mutex_lock(&s->mu);
    if (s->script_pos < s->script_n) {
      snprintf(s->paths[s->script_pos], sizeof s->paths[0], "%.15s %.200s", method, path);
      st = s->script_status[s->script_pos];
      b = s->script_body[s->script_pos++];
    } else if (s->canned_body) {
      st = s->canned_status ? s->canned_status : 200;
      b = s->canned_body;
    }
    pthread_mutex_unlock(&s->mu);
    srv_respond(c->fd, st, NULL, b);
  }
  return consumed;
}

static inline int srv_get(srv_t *s, int *field) {
  pthread_mutex_lock(&s->mu);
  int v = *field;
  pthread_mutex_unlock(&s->mu);
  return v;
}

static void *srv_main(void *arg) {
  srv_t *s = arg;
  for (;;) {
    struct pollfd pf[SRV_MAXC + 2];
    int map[SRV_MAXC + 2], n = 0;
    pf[n].fd = s->wake[0]; pf[n].events = POLLIN; map[n++] = -2;
    pf[n].fd = s->lfd; pf[n].events = POLLIN; map[n++] = -1;
    for (int i = 0; i < SRV_MAXC; i++)
      if (s->conns[i].fd >= 0 && !s->conns[i].due_ms) {
        pf[n].fd = s->conns[i].fd; pf[n].events = POLLIN; map[n++] = i;
      }
    poll(pf, (nfds_t)n, 5);
    if (pf[0].revents) break;
    long long now = srv_now_ms();
    int idle_ms = srv_get(s, &s->idle_close_ms);
    for (int i = 0; i < SRV_MAXC; i++) {
      srv_conn_t *c = &s->conns[i];
      if (c->fd >= 0 && idle_ms > 0 && !c->due_ms && c->len == 0 && now - c->last_ms > idle_ms) {
        srv_drop(s, c);
        continue;
      }
      if (c->fd >= 0 && c->due_ms && now >= c->due_ms) {
        srv_respond(c->fd, 200, NULL, c->pending);
        c->due_ms = 0;
        c->last_ms = now;
        pthread_mutex_lock(&s->mu); s->slow_now--; pthread_mutex_unlock(&s->mu);
      }
    }
    if (pf[1].revents & POLLIN) {
      int fd = accept(s->lfd, NULL, NULL);
      if (fd >= 0) {
        int slot = -1;
        for (int i = 0; i < SRV_MAXC && slot < 0; i++) if (s->conns[i].fd < 0) slot = i;
        if (slot < 0) close(fd);
        else {
          s->conns[slot].fd = fd;
          s->conns[slot].len = 0;
          s->conns[slot].served = 0;
          s->conns[slot].last_ms = srv_now_ms();
          pthread_mutex_lock(&s->mu); s->accepted++; pthread_mutex_unlock(&s->mu);
        }
      }
    }
    for (int k = 2; k < n; k++) {
      if (!pf[k].revents) continue;
      srv_conn_t *c = &s->conns[map[k]];
      ssize_t r = recv(c->fd, c->buf + c->len, sizeof c->buf - 1 - c->len, 0);
      if (r <= 0) { srv_drop(s, c); continue; }
      c->len += (size_t)r;
      c->last_ms = srv_now_ms();
      for (;;) {
        long used = srv_handle(s, c);
        if (used < 0) { srv_drop(s, c); break; }
        if (used == 0) break;
        memmove(c->buf, c->buf + used, c->len - (size_t)used);
        c->len -= (size_t)used;
        if (c->due_ms) break; /* answer the delayed one first */
      }
    }
  }
  return NULL;
}

static void srv_start(srv_t *s) {
  memset(s, 0, sizeof *s);
  for (int i = 0; i < SRV_MAXC; i++) s->conns[i].fd = -1;
  pthread_mutex_init(&s->mu, NULL);
  s->lfd = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(s->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(s->lfd, (struct sockaddr *)&a, sizeof a) != 0 || listen(s->lfd, 64) != 0) abort();
  socklen_t al = sizeof a;
  getsockname(s->lfd, (struct sockaddr *)&a, &al);
  s->port = ntohs(a.sin_port);
  if (pipe(s->wake) != 0) abort();
  pthread_create(&s->th, NULL, srv_main, s);
}

static void srv_stop(srv_t *s) {
  if (write(s->wake[1], "x", 1) != 1) abort();
  pthread_join(s->th, NULL);
  for (int i = 0; i < SRV_MAXC; i++) if (s->conns[i].fd >= 0) close(s->conns[i].fd);
  close(s->lfd);
  close(s->wake[0]);
  close(s->wake[1]);
  pthread_mutex_destroy(&s->mu);
}

#endif

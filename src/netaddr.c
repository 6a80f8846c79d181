/*
 * netaddr.c — parse `[http] listen` (see netaddr.h). Pure: no sockets, no DNS. Any thread.
 */
#include "pg2qdrant/netaddr.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <string.h>

#include "pg2qdrant/errors.h"

int p2q_listen_parse(const char *s, struct sockaddr_storage *ss) {
  struct sockaddr_storage tmp;
  char host[64];
  const char *colon = strrchr(s, ':'), *h = s;
  if (!ss) ss = &tmp;
  if (!colon || colon == s) return P2Q_EINVAL;
  size_t hl = (size_t)(colon - s);
  if (s[0] == '[') {
    if (hl < 3 || colon[-1] != ']') return P2Q_EINVAL;
    h = s + 1;
    hl -= 2;
  }
  if (hl >= sizeof host) return P2Q_EINVAL;
  memcpy(host, h, hl);
  host[hl] = 0;
  const char *p = colon + 1;
  long port = 0;
  if (!*p || strlen(p) > 5) return P2Q_EINVAL;
  for (; *p; p++) {
    if (!isdigit((unsigned char)*p)) return P2Q_EINVAL;
    port = port * 10 + (*p - '0');
  }
  if (port < 1 || port > 65535) return P2Q_EINVAL;
  memset(ss, 0, sizeof *ss);
  if (s[0] != '[') {
    struct sockaddr_in *a = (struct sockaddr_in *)ss;
    if (!strcmp(host, "localhost")) strcpy(host, "127.0.0.1");
    if (inet_pton(AF_INET, host, &a->sin_addr) != 1) return P2Q_EINVAL;
    a->sin_family = AF_INET;
    a->sin_port = htons((unsigned short)port);
    return 0;
  }
  struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
  if (inet_pton(AF_INET6, host, &a6->sin6_addr) != 1) return P2Q_EINVAL;
  a6->sin6_family = AF_INET6;
  a6->sin6_port = htons((unsigned short)port);
  return 0;
}

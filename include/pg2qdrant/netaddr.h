/*
 * netaddr.h — the one parser of `[http] listen`, shared by the config validator (config_table.c),
 * the daemon's status endpoint (status_http.c) and `pg2qdrant check`, so that what the validator
 * accepts is exactly what the daemon binds.
 */
#ifndef P2Q_NETADDR_H
#define P2Q_NETADDR_H

#include <sys/socket.h>

/* "127.0.0.1:9187", "0.0.0.0:9187", "[::1]:9187", "[::]:9187" or "localhost:9187" (= 127.0.0.1):
   an IP literal (no DNS: a host name would resolve differently at start than at check time) and a
   port 1..65535. 0 and *ss filled, or P2Q_EINVAL. ss may be NULL (validation only). */
int p2q_listen_parse(const char *s, struct sockaddr_storage *ss);

#endif

/*
 * uuid.h — SHA-1 and name-based UUIDv5 (RFC 9562), for deterministic Qdrant point ids.
 * Pure; any thread.
 */
#ifndef P2Q_UUID_H
#define P2Q_UUID_H

#include <stddef.h>
#include <stdint.h>

/* pg2qdrant's UUIDv5 namespace: 6f2b8c3e-1d4a-5b9e-9c7f-0a3d5e7b9c21 */
extern const uint8_t p2q_uuid_namespace[16];

void p2q_sha1(const void *data, size_t len, uint8_t out[20]);
/* UUIDv5 of name in namespace ns, written as 36 lowercase chars + NUL into out. 0 or P2Q_ENOMEM. */
int p2q_uuid5(const uint8_t ns[16], const void *name, size_t len, char out[37]);

#endif

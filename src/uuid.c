/*
 * uuid.c — SHA-1 (FIPS 180-4) and UUIDv5. SHA-1 is used only for name-based ids, never for
 * security. Pure; any thread.
 */
#include "pg2qdrant/uuid.h"
#include "pg2qdrant/errors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const uint8_t p2q_uuid_namespace[16] = {0x6f, 0x2b, 0x8c, 0x3e, 0x1d, 0x4a, 0x5b, 0x9e,
                                        0x9c, 0x7f, 0x0a, 0x3d, 0x5e, 0x7b, 0x9c, 0x21};

#define ROL(x, n) (((x) << (n)) | ((x) >> (32 - (n))))

static void sha1_block(uint32_t h[5], const uint8_t *p) {
  uint32_t w[80];
  for (int i = 0; i < 16; i++)
    w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
  for (int i = 16; i < 80; i++) w[i] = ROL(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
  uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
  for (int i = 0; i < 80; i++) {
    uint32_t f, k;
    if (i < 20) { f = (b & c) | (~b & d); k = 0x5A827999; }
    else if (i < 40) { f = b ^ c ^ d; k = 0x6ED9EBA1; }
    else if (i < 60) { f = (b & c) | (b & d) | (c & d); k = 0x8F1BBCDC; }
    else { f = b ^ c ^ d; k = 0xCA62C1D6; }
    uint32_t t = ROL(a, 5) + f + e + k + w[i];
    e = d; d = c; c = ROL(b, 30); b = a; a = t;
  }
  h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e;
}

void p2q_sha1(const void *data, size_t len, uint8_t out[20]) {
  uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
  const uint8_t *p = data;
  size_t n = len;
  for (; n >= 64; n -= 64, p += 64) sha1_block(h, p);
  uint8_t tail[128] = {0};
  memcpy(tail, p, n);
  tail[n] = 0x80;
  size_t tl = n + 9 <= 64 ? 64 : 128;
  uint64_t bits = (uint64_t)len * 8;
  for (int i = 0; i < 8; i++) tail[tl - 1 - i] = (uint8_t)(bits >> (8 * i));
  sha1_block(h, tail);
  if (tl == 128) sha1_block(h, tail + 64);
  for (int i = 0; i < 5; i++) {
    out[4 * i] = (uint8_t)(h[i] >> 24); out[4 * i + 1] = (uint8_t)(h[i] >> 16);
    out[4 * i + 2] = (uint8_t)(h[i] >> 8); out[4 * i + 3] = (uint8_t)h[i];
  }
}

int p2q_uuid5(const uint8_t ns[16], const void *name, size_t len, char out[37]) {
  uint8_t stackbuf[512], dig[20];
  uint8_t *buf = stackbuf;
  uint8_t *heap = NULL;
  if (16 + len > sizeof stackbuf) {
    heap = (uint8_t *)malloc(16 + len);
    if (!heap) return P2Q_ENOMEM;
    buf = heap;
  }
  memcpy(buf, ns, 16);
  memcpy(buf + 16, name, len);
  p2q_sha1(buf, 16 + len, dig);
  free(heap);
  dig[6] = (uint8_t)((dig[6] & 0x0F) | 0x50);
  dig[8] = (uint8_t)((dig[8] & 0x3F) | 0x80);
  snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", dig[0],
           dig[1], dig[2], dig[3], dig[4], dig[5], dig[6], dig[7], dig[8], dig[9], dig[10], dig[11],
           dig[12], dig[13], dig[14], dig[15]);
  return 0;
}

/*
 * errors.c — messages and names for the P2Q_E* codes (generated from P2Q_ERRNO_MAP).
 * Pure, thread-safe.
 */
#include "pg2qdrant/errors.h"

const char *p2q_strerror(int err) {
  switch (err) {
  case 0: return "success";
#define XX(name, code, msg) case code: return msg;
    P2Q_ERRNO_MAP(XX)
#undef XX
  default: return "unknown error";
  }
}

const char *p2q_err_name(int err) {
  switch (err) {
  case 0: return "P2Q_OK";
#define XX(name, code, msg) case code: return "P2Q_E" #name;
    P2Q_ERRNO_MAP(XX)
#undef XX
  default: return "P2Q_EUNKNOWN";
  }
}

/* Small helpers shared by the examples (not part of the library API). */
#ifndef RAFT_EXAMPLE_UTIL_H
#define RAFT_EXAMPLE_UTIL_H

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "raft.h"

#define CHECK(expr)                                                                  \
  do {                                                                               \
    if (!(expr)) {                                                                   \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #expr);       \
      exit(1);                                                                       \
    }                                                                                \
  } while (0)

/* Checks that `call` returns `want`, printing the status name and error detail if not. */
#define CHECK_STATUS(call, want)                                                     \
  do {                                                                               \
    raft_status s_ = (call);                                                         \
    if (s_ != (raft_status)(want)) {                                                 \
      char m_[256] = "";                                                             \
      raft_last_error_message(m_, sizeof m_, NULL);                                  \
      fprintf(stderr, "%s:%d: %s returned %u (%s: %s), wanted %u\n", __FILE__,       \
              __LINE__, #call, (unsigned)s_, raft_status_str(s_), m_,                \
              (unsigned)(want));                                                     \
      exit(1);                                                                       \
    }                                                                                \
  } while (0)

#define CHECK_OK(call) CHECK_STATUS(call, RAFT_STATUS_OK)

/* Slow-down factor for timing (RAFT_EXAMPLE_SLOW, e.g. under valgrind). */
static inline unsigned time_scale(void) {
  const char *s = getenv("RAFT_EXAMPLE_SLOW");
  int v = s ? atoi(s) : 1;
  return v > 0 ? (unsigned)v : 1u;
}

static inline void sleep_ms(unsigned ms) {
  struct timespec ts;
  ts.tv_sec = (time_t)(ms / 1000);
  ts.tv_nsec = (long)(ms % 1000) * 1000000L;
  nanosleep(&ts, NULL);
}

static inline uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* A tiny key-value store: the examples' replicated state machine. */
#define KV_MAX 64
#define KV_STR 32
typedef struct kv_store {
  pthread_mutex_t mu;
  size_t n;
  char keys[KV_MAX][KV_STR];
  char vals[KV_MAX][KV_STR];
} kv_store;

static inline void kv_init(kv_store *kv) {
  memset(kv, 0, sizeof *kv);
  pthread_mutex_init(&kv->mu, NULL);
}

static inline void kv_destroy(kv_store *kv) { pthread_mutex_destroy(&kv->mu); }

/* Applies "key=value"; returns 0 on success. */
static inline int kv_apply(kv_store *kv, const uint8_t *cmd, size_t len) {
  char buf[2 * KV_STR];
  if (len == 0 || len >= sizeof buf) return 0; /* ignore foreign commands */
  memcpy(buf, cmd, len);
  buf[len] = '\0';
  char *eq = strchr(buf, '=');
  if (!eq) return 0;
  *eq = '\0';
  const char *key = buf, *val = eq + 1;
  if (strlen(key) >= KV_STR || strlen(val) >= KV_STR) return 0;
  pthread_mutex_lock(&kv->mu);
  size_t i;
  for (i = 0; i < kv->n; i++)
    if (strcmp(kv->keys[i], key) == 0) break;
  if (i == kv->n) {
    if (kv->n == KV_MAX) {
      pthread_mutex_unlock(&kv->mu);
      return 1;
    }
    kv->n++;
    strcpy(kv->keys[i], key);
  }
  strcpy(kv->vals[i], val);
  pthread_mutex_unlock(&kv->mu);
  return 0;
}

/* Copies the value of `key` into `out` (KV_STR bytes); returns 1 if found. */
static inline int kv_get(kv_store *kv, const char *key, char *out) {
  int found = 0;
  pthread_mutex_lock(&kv->mu);
  for (size_t i = 0; i < kv->n; i++) {
    if (strcmp(kv->keys[i], key) == 0) {
      strcpy(out, kv->vals[i]);
      found = 1;
      break;
    }
  }
  pthread_mutex_unlock(&kv->mu);
  return found;
}

/* Waits until `key` has value `want` in `kv`; returns 1 on success. */
static inline int kv_wait(kv_store *kv, const char *key, const char *want, unsigned timeout_ms) {
  uint64_t end = now_ms() + timeout_ms;
  char v[KV_STR];
  while (now_ms() < end) {
    if (kv_get(kv, key, v) && strcmp(v, want) == 0) return 1;
    sleep_ms(10);
  }
  return 0;
}

/* Proposes `cmd` until it succeeds (retrying NOT_LEADER/DROPPED/TIMEOUT/BUSY). */
static inline raft_status propose_retry(raft_node *node, const char *cmd, unsigned timeout_ms) {
  uint64_t end = now_ms() + timeout_ms;
  raft_status s = RAFT_STATUS_TIMEOUT;
  while (now_ms() < end) {
    raft_buf resp = {NULL, 0};
    s = raft_node_propose(node, (const uint8_t *)cmd, strlen(cmd), 2000, &resp);
    raft_buf_free(&resp);
    if (s == RAFT_STATUS_OK) return s;
    if (s != RAFT_STATUS_NOT_LEADER && s != RAFT_STATUS_DROPPED && s != RAFT_STATUS_TIMEOUT &&
        s != RAFT_STATUS_BUSY)
      return s;
    sleep_ms(20);
  }
  return s;
}

/* Waits until `node` reports itself leader; returns 1 on success. */
static inline int wait_leader(raft_node *node, unsigned timeout_ms) {
  uint64_t end = now_ms() + timeout_ms;
  while (now_ms() < end) {
    raft_node_status_info st;
    if (raft_node_status(node, &st) == RAFT_STATUS_OK && st.role == RAFT_ROLE_LEADER) return 1;
    sleep_ms(10);
  }
  return 0;
}

#endif /* RAFT_EXAMPLE_UTIL_H */

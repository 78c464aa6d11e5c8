/* An in-process cluster for the examples: node handles by id behind a mutex, one kv_store
 * per node, and a send callback that hands message bytes straight to the target node's
 * raft_node_step_from (an enqueue-only call, allowed inside callbacks). Define N, the
 * largest node id, before including this header; each node's userdata is its member. */
#ifndef RAFT_EXAMPLES_INPROC_H
#define RAFT_EXAMPLES_INPROC_H
#include "util.h"

/* One node's slot: its id and its state machine. */
typedef struct member {
  uint64_t id;
  kv_store kv;
} member;

static member members[N + 1];
static pthread_mutex_t nodes_mu = PTHREAD_MUTEX_INITIALIZER;
static raft_node *nodes[N + 1]; /* NULL until started and once freed */

static void members_init(void) {
  for (uint64_t id = 1; id <= N; id++) {
    members[id].id = id;
    kv_init(&members[id].kv);
  }
}

static void members_destroy(void) {
  for (uint64_t id = 1; id <= N; id++) kv_destroy(&members[id].kv);
}

static raft_node *node_of(uint64_t id) {
  pthread_mutex_lock(&nodes_mu);
  raft_node *n = id >= 1 && id <= N ? nodes[id] : NULL;
  pthread_mutex_unlock(&nodes_mu);
  return n;
}

/* Publishes `n` as node `id`; returns the handle published before (NULL if none). */
static raft_node *node_publish(uint64_t id, raft_node *n) {
  pthread_mutex_lock(&nodes_mu);
  raft_node *old = nodes[id];
  nodes[id] = n;
  pthread_mutex_unlock(&nodes_mu);
  return old;
}

/* Unpublishes every node, then frees it (no callback can pick up a freed handle). */
static void free_all_nodes(void) {
  for (uint64_t id = 1; id <= N; id++) {
    raft_node *n = node_publish(id, NULL);
    if (n) CHECK_OK(raft_node_free(n));
  }
}

/* Runs on the sender's engine thread. A node freed meanwhile is a stale handle:
 * raft_node_step_from then returns RAFT_STATUS_INVALID_HANDLE, which is harmless. The
 * sender is known in process (its userdata), so the receiver checks the claimed one. */
static void send_cb(void *userdata, uint64_t to, const uint8_t *data, size_t len) {
  const member *from = userdata;
  raft_node *n = node_of(to);
  if (n) (void)raft_node_step_from(n, from->id, data, len);
}

#endif

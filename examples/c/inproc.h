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

static inline void members_init(void) {
  for (uint64_t id = 1; id <= N; id++) {
    members[id].id = id;
    kv_init(&members[id].kv);
  }
}

static inline void members_destroy(void) {
  for (uint64_t id = 1; id <= N; id++) kv_destroy(&members[id].kv);
}

static inline raft_node *node_of(uint64_t id) {
  pthread_mutex_lock(&nodes_mu);
  raft_node *n = id >= 1 && id <= N ? nodes[id] : NULL;
  pthread_mutex_unlock(&nodes_mu);
  return n;
}

/* Publishes `n` as node `id`; returns the handle published before (NULL if none). */
static inline raft_node *node_publish(uint64_t id, raft_node *n) {
  pthread_mutex_lock(&nodes_mu);
  raft_node *old = nodes[id];
  nodes[id] = n;
  pthread_mutex_unlock(&nodes_mu);
  return old;
}

/* Unpublishes every node, then frees it (no callback can pick up a freed handle). */
static inline void free_all_nodes(void) {
  for (uint64_t id = 1; id <= N; id++) {
    raft_node *n = node_publish(id, NULL);
    if (n) CHECK_OK(raft_node_free(n));
  }
}

/* Runs on the sender's engine thread. A node freed meanwhile is a stale handle:
 * raft_node_step_from then returns RAFT_STATUS_INVALID_HANDLE, which is harmless. The
 * sender is known in process (its userdata), so the receiver checks the claimed one. */
static inline void send_cb(void *userdata, uint64_t to, const uint8_t *data, size_t len) {
  const member *from = userdata;
  raft_node *n = node_of(to);
  if (n) (void)raft_node_step_from(n, from->id, data, len);
}

/* The examples' state machine callback: applies `key=value` to the member's kv_store and
 * answers nothing. */
static inline int member_apply(void *userdata, uint64_t index, const uint8_t *cmd, size_t len,
                               raft_buf *out) {
  member *m = userdata;
  (void)index, (void)out;
  return kv_apply(&m->kv, cmd, len);
}

/* A configuration builder for member `id`: voters 1..`voters`, the examples' timeouts
 * (scaled by RAFT_TEST_TIME_SCALE), this header's send callback and `apply`. The caller may
 * set more, then starts it with member_start. */
static inline raft_config_builder *member_config(uint64_t id, uint64_t voters,
                                                 raft_apply_callback apply) {
  raft_config_builder *b;
  CHECK_OK(raft_config_builder_new(&b));
  CHECK_OK(raft_config_builder_set_id(b, id));
  for (uint64_t v = 1; v <= voters; v++) CHECK_OK(raft_config_builder_add_voter(b, v));
  CHECK_OK(raft_config_builder_set_election_timeout_ms(b, 300 * time_scale()));
  CHECK_OK(raft_config_builder_set_heartbeat_ms(b, 50 * time_scale()));
  CHECK_OK(raft_config_builder_set_userdata(b, &members[id], NULL));
  CHECK_OK(raft_config_builder_set_send_callback(b, send_cb));
  CHECK_OK(raft_config_builder_set_apply_callback(b, apply));
  return b;
}

/* Builds the configuration (consuming the builder) and starts the node; not published. */
static inline raft_node *member_start(raft_config_builder *b) {
  raft_config *c;
  raft_node *n;
  CHECK_OK(raft_config_builder_build(b, &c));
  CHECK_OK(raft_node_start(c, &n));
  raft_config_free(c);
  return n;
}

#endif

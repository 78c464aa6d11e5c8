/* Glue between the Go package and raft.h (not part of the library API).
 *
 * Handles (raft_node *, raft_config_builder *, raft_config *) are encoded values, not
 * pointers, so Go keeps them as uintptr_t and only C turns them back into handle types.
 * Every wrapper that can fail captures raft_last_error_message into `msg` in the same C
 * call, on the same thread (a goroutine may move between threads between two cgo calls). */
#ifndef RAFT_GO_BRIDGE_H
#define RAFT_GO_BRIDGE_H

#include <stdint.h>
#include <stdlib.h>

#include "raft.h"

#define RGO_MSG_CAP 512

static inline raft_status rgo_msg(raft_status s, char *msg) {
  if (s != RAFT_STATUS_OK && msg) raft_last_error_message(msg, RGO_MSG_CAP, NULL);
  return s;
}

#define RGO_B(h) ((raft_config_builder *)(h))
#define RGO_N(h) ((const raft_node *)(h))

/* ---- builder ---- */
static inline raft_status rgo_builder_new(uintptr_t *out, char *msg) {
  raft_config_builder *b = NULL;
  raft_status s = rgo_msg(raft_config_builder_new(&b), msg);
  if (s == RAFT_STATUS_OK) *out = (uintptr_t)b;
  return s;
}
static inline void rgo_builder_free(uintptr_t b) { raft_config_builder_free(RGO_B(b)); }
static inline raft_status rgo_set_id(uintptr_t b, uint64_t id, char *msg) {
  return rgo_msg(raft_config_builder_set_id(RGO_B(b), id), msg);
}
static inline raft_status rgo_add_voter(uintptr_t b, uint64_t id, char *msg) {
  return rgo_msg(raft_config_builder_add_voter(RGO_B(b), id), msg);
}
static inline raft_status rgo_set_data_dir(uintptr_t b, const char *p, char *msg) {
  return rgo_msg(raft_config_builder_set_data_dir(RGO_B(b), p), msg);
}
static inline raft_status rgo_set_election_ms(uintptr_t b, uint32_t ms, char *msg) {
  return rgo_msg(raft_config_builder_set_election_timeout_ms(RGO_B(b), ms), msg);
}
static inline raft_status rgo_set_heartbeat_ms(uintptr_t b, uint32_t ms, char *msg) {
  return rgo_msg(raft_config_builder_set_heartbeat_ms(RGO_B(b), ms), msg);
}
static inline raft_status rgo_set_snapshot_entries(uintptr_t b, uint64_t n, char *msg) {
  return rgo_msg(raft_config_builder_set_snapshot_entries(RGO_B(b), n), msg);
}
static inline raft_status rgo_set_no_fsync(uintptr_t b, int on, char *msg) {
  return rgo_msg(raft_config_builder_set_unsafe_no_fsync(RGO_B(b), on != 0), msg);
}
static inline raft_status rgo_set_caller_runs(uintptr_t b, int on, char *msg) {
  return rgo_msg(raft_config_builder_set_caller_runs(RGO_B(b), on != 0), msg);
}
static inline raft_status rgo_set_listen(uintptr_t b, const char *a, char *msg) {
  return rgo_msg(raft_config_builder_set_listen_address(RGO_B(b), a), msg);
}
static inline raft_status rgo_add_peer(uintptr_t b, uint64_t id, const char *a, char *msg) {
  return rgo_msg(raft_config_builder_add_peer(RGO_B(b), id, a), msg);
}
static inline raft_status rgo_set_max_command_bytes(uintptr_t b, uint64_t n, char *msg) {
  return rgo_msg(raft_config_builder_set_max_command_bytes(RGO_B(b), n), msg);
}
static inline raft_status rgo_set_max_snapshot_bytes(uintptr_t b, uint64_t n, char *msg) {
  return rgo_msg(raft_config_builder_set_max_snapshot_bytes(RGO_B(b), n), msg);
}
static inline raft_status rgo_set_cluster_id(uintptr_t b, uint64_t id, char *msg) {
  return rgo_msg(raft_config_builder_set_cluster_id(RGO_B(b), id), msg);
}
static inline raft_status rgo_set_auto_rejoin(uintptr_t b, int manual, uint64_t lag, char *msg) {
  return rgo_msg(raft_config_builder_set_auto_rejoin(
                     RGO_B(b), manual ? RAFT_REJOIN_OPERATOR : RAFT_REJOIN_AUTOMATIC, lag),
                 msg);
}
static inline raft_status rgo_set_secret(uintptr_t b, const void *p, size_t len, char *msg) {
  return rgo_msg(raft_config_builder_set_secret(RGO_B(b), (const uint8_t *)p, len), msg);
}
/* Sets the userdata: a cgo.Handle, deleted by the finaliser once this returns OK. */
raft_status rgo_set_userdata(uintptr_t b, uintptr_t handle, char *msg);
/* Sets the apply callback and, when asked, the send, snapshot and role-change ones. */
raft_status rgo_set_callbacks(uintptr_t b, int transport, int snapshots, int role_change,
                              char *msg);
/* Custom storage: the persist callbacks and the durable state loaded before start. */
raft_status rgo_set_storage(uintptr_t b, char *msg);
static inline raft_status rgo_load_hard_state(uintptr_t b, uint64_t term, uint64_t vote,
                                              uint64_t commit, char *msg) {
  return rgo_msg(raft_config_builder_load_hard_state(RGO_B(b), term, vote, commit), msg);
}
static inline raft_status rgo_load_snapshot(uintptr_t b, const void *meta, size_t meta_len,
                                            const void *data, size_t len, char *msg) {
  return rgo_msg(raft_config_builder_load_snapshot(RGO_B(b), (const uint8_t *)meta, meta_len,
                                                   (const uint8_t *)data, len), msg);
}
static inline raft_status rgo_load_entry(uintptr_t b, uint64_t term, uint64_t index, uint8_t kind,
                                         const void *data, size_t len, char *msg) {
  return rgo_msg(raft_config_builder_load_entry(RGO_B(b), term, index, kind, (const uint8_t *)data, len), msg);
}
static inline raft_status rgo_build(uintptr_t b, uintptr_t *out, char *msg) {
  raft_config *c = NULL;
  raft_status s = rgo_msg(raft_config_builder_build(RGO_B(b), &c), msg);
  if (s == RAFT_STATUS_OK) *out = (uintptr_t)c;
  return s;
}
static inline void rgo_config_free(uintptr_t c) { raft_config_free((raft_config *)c); }

/* Installs (handle != 0) or removes the process-wide log callback. */
raft_status rgo_set_logger(uintptr_t handle, uint32_t max_level, char *msg);

/* ---- node ---- */
static inline raft_status rgo_start(uintptr_t c, uintptr_t *out, char *msg) {
  raft_node *n = NULL;
  raft_status s = rgo_msg(raft_node_start((const raft_config *)c, &n), msg);
  if (s == RAFT_STATUS_OK) *out = (uintptr_t)n;
  return s;
}
static inline raft_status rgo_free(uintptr_t n, char *msg) {
  return rgo_msg(raft_node_free((raft_node *)n), msg);
}
static inline raft_status rgo_shutdown(uintptr_t n, char *msg) {
  return rgo_msg(raft_node_shutdown(RGO_N(n)), msg);
}
static inline raft_status rgo_persisted(uintptr_t n, uint64_t token, int ok) {
  return raft_node_persisted(RGO_N(n), token, ok);
}
static inline raft_status rgo_step(uintptr_t n, const void *p, size_t len, char *msg) {
  return rgo_msg(raft_node_step(RGO_N(n), (const uint8_t *)p, len), msg);
}
static inline raft_status rgo_step_from(uintptr_t n, uint64_t from, const void *p, size_t len, char *msg) {
  return rgo_msg(raft_node_step_from(RGO_N(n), from, (const uint8_t *)p, len), msg);
}
/* Proposes; the completion goes to the Go handle `h` (a cgo.Handle of a callback). */
raft_status rgo_propose_async(uintptr_t n, const void *p, size_t len, uintptr_t h, char *msg);
static inline raft_status rgo_propose_session(uintptr_t n, uint64_t client, uint64_t seq,
                                              const void *p, size_t len, uint64_t ms,
                                              raft_buf *out, char *msg) {
  return rgo_msg(raft_node_propose_session(RGO_N(n), client, seq, (const uint8_t *)p, len, ms, out), msg);
}
static inline raft_status rgo_read_index(uintptr_t n, uint64_t ms, uint64_t *out, char *msg) {
  return rgo_msg(raft_node_read_index(RGO_N(n), ms, out), msg);
}
static inline raft_status rgo_transfer(uintptr_t n, uint64_t to, char *msg) {
  return rgo_msg(raft_node_transfer_leader(RGO_N(n), to), msg);
}
static inline raft_status rgo_status(uintptr_t n, raft_node_status_info *out, char *msg) {
  return rgo_msg(raft_node_status(RGO_N(n), out), msg);
}
static inline raft_status rgo_voters(uintptr_t n, uint64_t *ids, size_t cap, size_t *out_n, char *msg) {
  return rgo_msg(raft_node_voters(RGO_N(n), ids, cap, out_n), msg);
}
static inline raft_status rgo_learners(uintptr_t n, uint64_t *ids, size_t cap, size_t *out_n, char *msg) {
  return rgo_msg(raft_node_learners(RGO_N(n), ids, cap, out_n), msg);
}
static inline raft_status rgo_conf_id(uintptr_t n, uint64_t *out, char *msg) {
  return rgo_msg(raft_node_conf_id(RGO_N(n), out), msg);
}
static inline raft_status rgo_add_learner(uintptr_t n, uint64_t id, uint64_t lag, uint64_t ms, char *msg) {
  return rgo_msg(raft_node_add_learner(RGO_N(n), id, lag, ms), msg);
}
static inline raft_status rgo_promote_learner(uintptr_t n, uint64_t id, uint64_t lag, uint64_t ms, char *msg) {
  return rgo_msg(raft_node_promote_learner(RGO_N(n), id, lag, ms), msg);
}
static inline raft_status rgo_remove_member(uintptr_t n, uint64_t id, uint64_t ms, char *msg) {
  return rgo_msg(raft_node_remove_member(RGO_N(n), id, ms), msg);
}
static inline raft_status rgo_change_membership(uintptr_t n, const uint64_t *v, size_t nv,
                                                const uint64_t *l, size_t nl, uint64_t conf,
                                                uint64_t ms, char *msg) {
  return rgo_msg(raft_node_change_membership(RGO_N(n), v, nv, l, nl, conf, ms), msg);
}
static inline raft_status rgo_peer_progress(uintptr_t n, raft_peer_progress *out, size_t cap,
                                            size_t *out_n, char *msg) {
  return rgo_msg(raft_node_peer_progress(RGO_N(n), out, cap, out_n), msg);
}
static inline raft_status rgo_metrics(uintptr_t n, raft_node_metrics_info *out, char *msg) {
  out->size = sizeof *out;
  return rgo_msg(raft_node_metrics(RGO_N(n), out), msg);
}
static inline raft_status rgo_metrics_text(uintptr_t n, raft_buf *out, char *msg) {
  return rgo_msg(raft_node_metrics_text(RGO_N(n), out), msg);
}

#endif

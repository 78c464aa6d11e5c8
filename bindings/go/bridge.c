/* C trampolines from the engine's callbacks into the Go exports (callbacks.go). The
 * userdata is a cgo.Handle value; C never holds a Go pointer. */
#include "_cgo_export.h"
#include "bridge.h"

static void send_cb(void *ud, uint64_t to, const uint8_t *data, size_t len) {
  raftgoSend((uintptr_t)ud, to, (uint8_t *)data, len);
}

static int apply_cb(void *ud, uint64_t index, const uint8_t *cmd, size_t len, raft_buf *out) {
  return raftgoApply((uintptr_t)ud, index, (uint8_t *)cmd, len, out);
}

static int snapshot_cb(void *ud, raft_snapshot_writer *w) {
  return raftgoSnapshot((uintptr_t)ud, w);
}

static int restore_cb(void *ud, raft_snapshot_reader *r) {
  return raftgoRestore((uintptr_t)ud, r);
}

static void role_cb(void *ud, raft_role role, uint64_t term, uint64_t leader) {
  raftgoRoleChange((uintptr_t)ud, (uint32_t)role, term, leader);
}

static void free_cb(void *ud) { raftgoFreeHandle((uintptr_t)ud); }

static void propose_cb(void *ud, raft_status status, const uint8_t *resp, size_t len) {
  raftgoProposeDone((uintptr_t)ud, (uint32_t)status, (uint8_t *)resp, len);
}

raft_status rgo_set_userdata(uintptr_t b, uintptr_t handle, char *msg) {
  return rgo_msg(raft_config_builder_set_userdata(RGO_B(b), (void *)handle, free_cb), msg);
}

raft_status rgo_set_callbacks(uintptr_t b, int transport, int snapshots, int role_change,
                              char *msg) {
  raft_config_builder *bb = RGO_B(b);
  raft_status s = raft_config_builder_set_apply_callback(bb, apply_cb);
  if (s == RAFT_STATUS_OK && transport) s = raft_config_builder_set_send_callback(bb, send_cb);
  if (s == RAFT_STATUS_OK && snapshots)
    s = raft_config_builder_set_snapshot_callbacks(bb, snapshot_cb, restore_cb);
  if (s == RAFT_STATUS_OK && role_change)
    s = raft_config_builder_set_role_change_callback(bb, role_cb);
  return rgo_msg(s, msg);
}

raft_status rgo_propose_async(uintptr_t n, const void *p, size_t len, uintptr_t h, char *msg) {
  return rgo_msg(raft_node_propose_async(RGO_N(n), (const uint8_t *)p, len, propose_cb, (void *)h),
                 msg);
}

static void log_cb(void *ud, const raft_log_record *r) {
  raftgoLog((uintptr_t)ud, (uint32_t)r->level, (char *)r->target, (char *)r->message,
            (char *)r->file, r->line);
}

raft_status rgo_set_logger(uintptr_t handle, uint32_t max_level, char *msg) {
  if (handle == 0) return rgo_msg(raft_set_log_callback(NULL, RAFT_LOG_LEVEL_OFF, NULL), msg);
  return rgo_msg(raft_set_log_callback(log_cb, max_level, (void *)handle), msg);
}

static void persist_cb(void *ud, uint64_t token, const raft_hard_state *hs, uint64_t replace_from,
                       const raft_entry *entries, size_t n) {
  raftgoPersist((uintptr_t)ud, token, (raft_hard_state *)hs, replace_from, (raft_entry *)entries, n);
}

static void persist_snapshot_cb(void *ud, uint64_t token, uint64_t index, uint64_t term,
                                const uint8_t *meta, size_t meta_len, const uint8_t *data,
                                size_t len, bool keep_log) {
  raftgoPersistSnapshot((uintptr_t)ud, token, index, term, (uint8_t *)meta, meta_len,
                        (uint8_t *)data, len, keep_log ? 1 : 0);
}

raft_status rgo_set_storage(uintptr_t b, char *msg) {
  return rgo_msg(raft_config_builder_set_storage_callbacks(RGO_B(b), persist_cb, persist_snapshot_cb),
                 msg);
}

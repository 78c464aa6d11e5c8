/* Three nodes in one process. The send callback hands message bytes straight to the target
 * node's raft_node_step_from (an enqueue-only call, allowed inside callbacks). Puts keys, kills
 * the leader, puts more keys through the new leader and checks every survivor's values. */
#define _POSIX_C_SOURCE 200809L
#define N 3
#include "inproc.h"

static int apply_cb(void *userdata, uint64_t index, const uint8_t *cmd, size_t len,
                    raft_buf *out) {
  member *m = userdata;
  (void)index;
  if (kv_apply(&m->kv, cmd, len) != 0) return 1;
  return raft_buf_set(out, (const uint8_t *)"stored", 6) == RAFT_STATUS_OK ? 0 : 1;
}

static void role_cb(void *userdata, raft_role role, uint64_t term, uint64_t leader) {
  member *m = userdata;
  if (role == RAFT_ROLE_LEADER)
    printf("node %llu leads term %llu\n", (unsigned long long)m->id, (unsigned long long)term);
  (void)leader;
}

static uint64_t find_leader(unsigned timeout_ms) {
  uint64_t end = now_ms() + timeout_ms;
  while (now_ms() < end) {
    for (uint64_t id = 1; id <= N; id++) {
      raft_node *n = node_of(id);
      raft_node_status_info st;
      if (n && raft_node_status(n, &st) == RAFT_STATUS_OK && st.role == RAFT_ROLE_LEADER)
        return id;
    }
    sleep_ms(20);
  }
  return 0;
}

static void put(uint64_t leader, int i) {
  char cmd[64];
  snprintf(cmd, sizeof cmd, "key%d=value%d", i, i);
  raft_buf resp = {NULL, 0};
  raft_status s = raft_node_propose(node_of(leader), (const uint8_t *)cmd, strlen(cmd),
                                    5000 * time_scale(), &resp);
  if (s != RAFT_STATUS_OK) { /* leadership may move under load: retry anywhere */
    CHECK_OK(propose_retry(node_of(find_leader(10000 * time_scale())), cmd, 20000 * time_scale()));
  } else {
    CHECK(resp.len == 6 && memcmp(resp.data, "stored", 6) == 0);
  }
  raft_buf_free(&resp);
}

static void check_all(uint64_t skip, int upto) {
  for (uint64_t id = 1; id <= N; id++) {
    if (id == skip) continue;
    for (int i = 0; i < upto; i++) {
      char key[KV_STR], val[KV_STR];
      snprintf(key, sizeof key, "key%d", i);
      snprintf(val, sizeof val, "value%d", i);
      if (!kv_wait(&members[id].kv, key, val, 10000 * time_scale())) {
        fprintf(stderr, "node %llu lacks %s=%s\n", (unsigned long long)id, key, val);
        exit(1);
      }
    }
  }
}

int main(void) {
  members_init();
  for (uint64_t id = 1; id <= N; id++) {
    raft_config_builder *b = member_config(id, N, apply_cb);
    CHECK_OK(raft_config_builder_set_role_change_callback(b, role_cb));
    node_publish(id, member_start(b));
  }

  uint64_t leader = find_leader(20000 * time_scale());
  CHECK(leader != 0);
  for (int i = 0; i < 10; i++) put(leader, i);

  /* Per-follower progress at the leader: every member matches at least the 10 writes. */
  raft_peer_progress prog[N];
  size_t np = 0;
  CHECK_OK(raft_node_peer_progress(node_of(leader), prog, N, &np));
  CHECK(np == N);
  for (size_t i = 0; i < np; i++) {
    uint64_t deadline = now_ms() + 5000 * time_scale();
    while (prog[i].match_index < 10 && now_ms() < deadline) {
      sleep_ms(10);
      CHECK_OK(raft_node_peer_progress(node_of(leader), prog, N, &np));
    }
    CHECK(prog[i].match_index >= 10);
  }
  CHECK(raft_node_peer_progress(node_of(leader), prog, 1, &np) == RAFT_STATUS_BUFFER_TOO_SMALL);
  CHECK(np == N);
  check_all(0, 10);

  /* Linearizable read on a follower: the read index comes from the leader, and once it
   * returns the follower has applied everything committed before the call. */
  uint64_t follower = leader % N + 1, read = 0;
  CHECK_OK(raft_node_read_index(node_of(follower), 5000 * time_scale(), &read));
  char v[KV_STR];
  CHECK(read > 0 && kv_get(&members[follower].kv, "key9", v) && strcmp(v, "value9") == 0);

  /* Hand leadership to the follower, then use it. */
  CHECK_OK(raft_node_transfer_leader(node_of(leader), follower));
  uint64_t end = now_ms() + 10000 * time_scale();
  while (find_leader(1000) != follower && now_ms() < end) sleep_ms(20);
  CHECK(find_leader(1000) == follower);
  printf("leadership transferred %llu -> %llu\n", (unsigned long long)leader,
         (unsigned long long)follower);
  leader = follower;
  put(leader, 10);
  check_all(0, 11);

  /* Kill the leader: unpublish it first so no callback picks it up, then free it. */
  CHECK_OK(raft_node_free(node_publish(leader, NULL)));
  printf("killed leader %llu\n", (unsigned long long)leader);

  uint64_t next = find_leader(20000 * time_scale());
  CHECK(next != 0 && next != leader);
  for (int i = 11; i < 20; i++) put(next, i);
  check_all(leader, 20);

  free_all_nodes();
  members_destroy();
  printf("kv_inproc: ok (leaders %llu then %llu)\n", (unsigned long long)leader,
         (unsigned long long)next);
  return 0;
}

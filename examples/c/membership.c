/* Membership from C: three nodes in one process, a fourth added as a learner that the
 * leader promotes by itself once caught up, then a follower removed for good. */
#define _POSIX_C_SOURCE 200809L
#define N 4
#include "inproc.h"

/* Every node starts knowing voters 1..3; node 4 waits to be added. */
static raft_node *start(uint64_t id) { return member_start(member_config(id, 3, member_apply)); }

static int is_voter(raft_node *n, uint64_t id) {
  uint64_t ids[8];
  size_t k = 0;
  if (raft_node_voters(n, ids, 8, &k) != RAFT_STATUS_OK) return 0;
  for (size_t i = 0; i < k; i++)
    if (ids[i] == id) return 1;
  return 0;
}

int main(void) {
  members_init();
  for (uint64_t id = 1; id <= 3; id++) node_publish(id, start(id));
  uint64_t leader = 0;
  for (uint64_t end = now_ms() + 20000 * time_scale(); !leader && now_ms() < end; sleep_ms(20))
    for (uint64_t id = 1; id <= 3; id++) {
      raft_node_status_info st;
      if (raft_node_status(node_of(id), &st) == RAFT_STATUS_OK && st.role == RAFT_ROLE_LEADER)
        leader = id;
    }
  CHECK(leader != 0);
  raft_node *l = node_of(leader);
  CHECK_OK(propose_retry(l, "a=1", 5000 * time_scale()));

  /* Errors are explicit: not the leader, an existing member, id 0. */
  uint64_t follower = leader % 3 + 1;
  CHECK(raft_node_add_learner(node_of(follower), 4, 0, 1000) == RAFT_STATUS_NOT_LEADER);
  CHECK(raft_node_add_learner(l, follower, 0, 1000) == RAFT_STATUS_INVALID_ARGUMENT);
  CHECK(raft_node_add_learner(l, 0, 0, 1000) == RAFT_STATUS_INVALID_ARGUMENT);

  /* Node 4 joins as a learner and is promoted automatically once within 5 entries. */
  raft_node *n4 = start(4);
  node_publish(4, n4);
  CHECK_OK(raft_node_add_learner(l, 4, 5, 5000 * time_scale()));
  uint64_t end = now_ms() + 10000 * time_scale();
  while (!is_voter(l, 4) && now_ms() < end) sleep_ms(20);
  CHECK(is_voter(l, 4));
  CHECK(kv_wait(&members[4].kv, "a", "1", 5000 * time_scale()));
  printf("node 4 added as a learner and promoted to voter\n");

  /* Remove a follower for good: it leaves the configuration and cannot come back. */
  CHECK_OK(raft_node_remove_member(l, follower, 5000 * time_scale()));
  CHECK(!is_voter(l, follower));
  CHECK(raft_node_add_learner(l, follower, 0, 1000) == RAFT_STATUS_INVALID_ARGUMENT);
  CHECK_OK(propose_retry(l, "b=2", 5000 * time_scale()));
  CHECK(kv_wait(&members[4].kv, "b", "2", 5000 * time_scale()));
  printf("node %llu removed; writes continue\n", (unsigned long long)follower);

  free_all_nodes();
  members_destroy();
  printf("membership: OK\n");
  return 0;
}

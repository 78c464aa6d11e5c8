/* A voter whose data directory is wiped (restarted under the same id: a new incarnation)
 * is re-admitted automatically by default, or left to the operator with
 * raft_config_builder_set_auto_rejoin(b, RAFT_REJOIN_OPERATOR, 0): the leader then logs
 * "automatic rejoin is off" and changes nothing until the operator makes the node a
 * learner and promotes it (docs/STORAGE.md, "A voter that lost its state"). */
#define _POSIX_C_SOURCE 200809L
#define N 3
#include <stdatomic.h>

#include "inproc.h"

static char root[] = "/tmp/raft-rejoin-XXXXXX";
static atomic_int operator_needed; /* the leader's "automatic rejoin is off" error */

static void log_cb(void *ud, const raft_log_record *rec) {
  (void)ud;
  if (rec->level == RAFT_LOG_LEVEL_ERROR && strstr(rec->message, "automatic rejoin is off"))
    atomic_fetch_add(&operator_needed, 1);
}

static raft_node *start(const char *phase, uint64_t id, uint32_t mode) {
  char dir[128];
  snprintf(dir, sizeof dir, "%s/%s-%llu", root, phase, (unsigned long long)id);
  raft_config_builder *b = member_config(id, 3, member_apply);
  CHECK_OK(raft_config_builder_set_data_dir(b, dir));
  CHECK_OK(raft_config_builder_set_unsafe_no_fsync(b, true));
  CHECK_OK(raft_config_builder_set_auto_rejoin(b, mode, 8));
  return member_start(b);
}

static uint64_t find_leader(void) {
  for (uint64_t end = now_ms() + 20000 * time_scale(); now_ms() < end; sleep_ms(20))
    for (uint64_t id = 1; id <= N; id++) {
      raft_node_status_info st;
      raft_node *n = node_of(id);
      if (n && raft_node_status(n, &st) == RAFT_STATUS_OK && st.role == RAFT_ROLE_LEADER)
        return id;
    }
  CHECK(!"no leader within 20 s");
  return 0;
}

static size_t ids_of(raft_node *n, int learners, uint64_t *ids) {
  size_t k = 0;
  CHECK_OK(learners ? raft_node_learners(n, ids, 8, &k) : raft_node_voters(n, ids, 8, &k));
  return k;
}

static int has(raft_node *n, int learners, uint64_t id) {
  uint64_t ids[8];
  size_t k = ids_of(n, learners, ids);
  for (size_t i = 0; i < k; i++)
    if (ids[i] == id) return 1;
  return 0;
}

/* Starts 3 nodes, writes, wipes follower X and restarts it; returns X (leader in *out_l,
 * the configuration id before the wipe in *out_conf). */
static uint64_t wipe_a_follower(const char *phase, uint32_t mode, uint64_t *out_l,
                                uint64_t *out_conf) {
  members_init();
  for (uint64_t id = 1; id <= N; id++) node_publish(id, start(phase, id, mode));
  uint64_t l = find_leader();
  CHECK_OK(propose_retry(node_of(l), "a=1", 5000 * time_scale()));
  CHECK_OK(propose_retry(node_of(l), "b=2", 5000 * time_scale()));
  uint64_t x = l % N + 1;
  CHECK(kv_wait(&members[x].kv, "b", "2", 5000 * time_scale()));
  CHECK_OK(raft_node_conf_id(node_of(l), out_conf));
  CHECK_OK(raft_node_free(node_publish(x, NULL)));
  char cmd[160];
  snprintf(cmd, sizeof cmd, "rm -rf '%s/%s-%llu'", root, phase, (unsigned long long)x);
  CHECK(system(cmd) == 0);
  kv_destroy(&members[x].kv);
  kv_init(&members[x].kv);
  node_publish(x, start(phase, x, mode));
  *out_l = l;
  return x;
}

static void finish(void) {
  free_all_nodes();
  members_destroy();
}

int main(void) {
  CHECK(mkdtemp(root) != NULL);
  CHECK_OK(raft_set_log_callback(log_cb, RAFT_LOG_LEVEL_ERROR, NULL));
  raft_config_builder *bad;
  CHECK_OK(raft_config_builder_new(&bad));
  CHECK_STATUS(raft_config_builder_set_auto_rejoin(bad, 2, 8), RAFT_STATUS_INVALID_ARGUMENT);
  raft_config_builder_free(bad);

  /* Automatic (the default, here with lag 8): demoted, caught up, promoted. */
  uint64_t l, conf, now = 0;
  uint64_t x = wipe_a_follower("auto", RAFT_REJOIN_AUTOMATIC, &l, &conf);
  uint64_t end = now_ms() + 20000 * time_scale();
  for (; now_ms() < end; sleep_ms(20)) {
    CHECK_OK(raft_node_conf_id(node_of(l), &now));
    if (now > conf && has(node_of(l), 0, x) && !has(node_of(l), 1, x)) break;
  }
  CHECK(now > conf && has(node_of(l), 0, x) && !has(node_of(l), 1, x));
  CHECK(kv_wait(&members[x].kv, "b", "2", 10000 * time_scale()));
  CHECK(atomic_load(&operator_needed) == 0);
  printf("automatic: wiped node %llu demoted, caught up and promoted\n", (unsigned long long)x);
  finish();

  /* Operator: the leader reports it and changes nothing by itself. */
  x = wipe_a_follower("operator", RAFT_REJOIN_OPERATOR, &l, &conf);
  end = now_ms() + 20000 * time_scale();
  while (atomic_load(&operator_needed) == 0 && now_ms() < end) sleep_ms(20);
  CHECK(atomic_load(&operator_needed) > 0);
  CHECK_OK(raft_node_conf_id(node_of(l), &now));
  CHECK(now == conf && has(node_of(l), 0, x) && !has(node_of(l), 1, x));
  uint64_t others[2];
  size_t k = 0;
  for (uint64_t id = 1; id <= N; id++)
    if (id != x) others[k++] = id;
  CHECK_OK(raft_node_change_membership(node_of(l), others, 2, &x, 1, conf, 5000 * time_scale()));
  CHECK_OK(raft_node_promote_learner(node_of(l), x, 8, 10000 * time_scale()));
  CHECK(has(node_of(l), 0, x) && !has(node_of(l), 1, x));
  CHECK(kv_wait(&members[x].kv, "b", "2", 10000 * time_scale()));
  printf("operator: wiped node %llu re-admitted by hand\n", (unsigned long long)x);
  finish();

  CHECK_OK(raft_set_log_callback(NULL, RAFT_LOG_LEVEL_OFF, NULL));
  char cmd[64];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
  CHECK(system(cmd) == 0);
  printf("rejoin: OK\n");
  return 0;
}

/* Joint-consensus membership from C: three voters in one process take two learners in one
 * change, promote both at once (five voters), then drop two voters at once (three voters),
 * each later change compare-and-set against raft_node_conf_id. Bad arguments and a stale
 * configuration id are refused and change nothing. */
#define _POSIX_C_SOURCE 200809L
#define N 5
#include "inproc.h"

/* Every node starts knowing voters 1..3; nodes 4 and 5 wait to be added. */
static void start(uint64_t id) {
  node_publish(id, member_start(member_config(id, 3, member_apply)));
}

/* A node's view of the configuration: its id, then voters and learners (ascending). */
typedef struct conf_view {
  uint64_t id;
  size_t nv, nl;
  uint64_t v[N], l[N];
} conf_view;

static conf_view view(raft_node *n) {
  conf_view c;
  memset(&c, 0, sizeof c);
  CHECK_OK(raft_node_conf_id(n, &c.id)); /* the id first: see raft_node_conf_id */
  CHECK_OK(raft_node_voters(n, c.v, N, &c.nv));
  CHECK_OK(raft_node_learners(n, c.l, N, &c.nl));
  return c;
}

static int same_view(const conf_view *a, const conf_view *b) {
  return a->id == b->id && a->nv == b->nv && a->nl == b->nl &&
         memcmp(a->v, b->v, a->nv * sizeof a->v[0]) == 0 &&
         memcmp(a->l, b->l, a->nl * sizeof a->l[0]) == 0;
}

/* True if `c` has exactly the voters `v[0..nv]` and learners `l[0..nl]` (ascending). */
static int has_members(const conf_view *c, const uint64_t *v, size_t nv, const uint64_t *l,
                       size_t nl) {
  return c->nv == nv && c->nl == nl && memcmp(c->v, v, nv * sizeof v[0]) == 0 &&
         (nl == 0 || memcmp(c->l, l, nl * sizeof l[0]) == 0);
}

int main(void) {
  members_init();
  for (uint64_t id = 1; id <= 3; id++) start(id);
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
  const unsigned wait_ms = 10000 * time_scale();

  /* Bad arguments are refused before anything is proposed. */
  uint64_t v123[] = {1, 2, 3}, dup[] = {1, 2, 2}, zero[] = {1, 2, 0}, l3[] = {3};
  conf_view before = view(l), after;
  CHECK(before.id == 0); /* the initial configuration */
  CHECK_STATUS(raft_node_change_membership(l, NULL, 3, NULL, 0, 0, 1000),
               RAFT_STATUS_NULL_ARGUMENT);
  CHECK_STATUS(raft_node_change_membership(l, v123, 3, NULL, 1, 0, 1000),
               RAFT_STATUS_NULL_ARGUMENT);
  CHECK_STATUS(raft_node_change_membership(l, NULL, 0, NULL, 0, 0, 1000),
               RAFT_STATUS_INVALID_ARGUMENT); /* no voters */
  CHECK_STATUS(raft_node_change_membership(l, dup, 3, NULL, 0, 0, 1000),
               RAFT_STATUS_INVALID_ARGUMENT);
  CHECK_STATUS(raft_node_change_membership(l, zero, 3, NULL, 0, 0, 1000),
               RAFT_STATUS_INVALID_ARGUMENT);
  CHECK_STATUS(raft_node_change_membership(l, v123, 3, l3, 1, 0, 1000),
               RAFT_STATUS_INVALID_ARGUMENT); /* voter and learner */
  CHECK_STATUS(raft_node_change_membership(node_of(leader % 3 + 1), v123, 3, NULL, 0, 0, 1000),
               RAFT_STATUS_NOT_LEADER);
  CHECK_STATUS(raft_node_conf_id(l, NULL), RAFT_STATUS_NULL_ARGUMENT);
  after = view(l);
  CHECK(same_view(&before, &after));
  CHECK(has_members(&after, v123, 3, NULL, 0));

  /* Nodes 4 and 5 join as learners in one change (expected id 0: no compare-and-set). */
  start(4);
  start(5);
  uint64_t l45[] = {4, 5};
  CHECK_OK(raft_node_change_membership(l, v123, 3, l45, 2, 0, wait_ms));
  conf_view learners = view(l);
  CHECK(learners.id > before.id);
  CHECK(has_members(&learners, v123, 3, l45, 2));
  CHECK(kv_wait(&members[4].kv, "a", "1", wait_ms));
  CHECK(kv_wait(&members[5].kv, "a", "1", wait_ms));
  printf("nodes 4 and 5 added as learners (configuration id %llu)\n",
         (unsigned long long)learners.id);

  /* One joint change promotes both: C_old,new {1,2,3}+{1..5}, then C_new {1..5}. */
  uint64_t v12345[] = {1, 2, 3, 4, 5};
  CHECK_OK(raft_node_change_membership(l, v12345, 5, NULL, 0, learners.id, wait_ms));
  conf_view five = view(l);
  CHECK(five.id > learners.id);
  CHECK(has_members(&five, v12345, 5, NULL, 0));

  /* The id seen before that change is stale now: refused, nothing changes. */
  CHECK_STATUS(raft_node_change_membership(l, v123, 3, NULL, 0, learners.id, 1000),
               RAFT_STATUS_INVALID_ARGUMENT);
  after = view(l);
  CHECK(same_view(&five, &after));
  CHECK_OK(propose_retry(l, "b=2", 5000 * time_scale()));
  for (uint64_t id = 1; id <= N; id++) CHECK(kv_wait(&members[id].kv, "b", "2", wait_ms));
  printf("five voters after one joint change (configuration id %llu)\n",
         (unsigned long long)five.id);

  /* Two followers leave at once. C_new of the previous change may still be in flight:
   * the call then waits for it to commit. */
  uint64_t keep[3], gone[2];
  size_t nk = 0, ng = 0;
  for (uint64_t id = 1; id <= N; id++) {
    if (id != leader && ng < 2)
      gone[ng++] = id;
    else
      keep[nk++] = id;
  }
  CHECK(nk == 3 && ng == 2);
  CHECK_OK(raft_node_change_membership(l, keep, 3, NULL, 0, five.id, wait_ms));
  conf_view three = view(l);
  CHECK(three.id > five.id);
  CHECK(has_members(&three, keep, 3, NULL, 0));
  CHECK_OK(propose_retry(l, "c=3", 5000 * time_scale()));
  for (size_t i = 0; i < nk; i++) CHECK(kv_wait(&members[keep[i]].kv, "c", "3", wait_ms));

  /* Removed ids never come back. */
  uint64_t again[] = {keep[0], keep[1], keep[2], gone[0]};
  CHECK_STATUS(raft_node_change_membership(l, again, 4, NULL, 0, three.id, wait_ms),
               RAFT_STATUS_INVALID_ARGUMENT);
  after = view(l);
  CHECK(has_members(&after, keep, 3, NULL, 0));
  printf("nodes %llu and %llu removed in one change; writes continue\n",
         (unsigned long long)gone[0], (unsigned long long)gone[1]);

  free_all_nodes();
  members_destroy();
  printf("membership_joint: OK\n");
  return 0;
}

/* Metrics and monitoring status from C: three nodes in one process, a fourth added as a
 * learner. Reads raft_node_metrics (size-prefixed raft_node_metrics_info), raft_node_metrics_text
 * (Prometheus text with the names every language uses) and the learner flag of
 * raft_node_peer_progress. */
#define _POSIX_C_SOURCE 200809L
#define N 4
#include "inproc.h"
#include <stddef.h>
#include <string.h>

static raft_node *start(uint64_t id) { return member_start(member_config(id, 3, member_apply)); }

static int text_has(const raft_buf *b, const char *needle) {
  size_t n = strlen(needle);
  for (size_t i = 0; i + n <= b->len; i++)
    if (memcmp(b->data + i, needle, n) == 0) return 1;
  return 0;
}

/* The current leader (0 if none within the time budget). */
static uint64_t find_leader(void) {
  for (uint64_t end = now_ms() + 20000 * time_scale(); now_ms() < end; sleep_ms(20))
    for (uint64_t id = 1; id <= 3; id++) {
      raft_node_status_info st;
      if (node_of(id) && raft_node_status(node_of(id), &st) == RAFT_STATUS_OK &&
          st.role == RAFT_ROLE_LEADER)
        return id;
    }
  return 0;
}

int main(void) {
  members_init();
  for (uint64_t id = 1; id <= 3; id++) node_publish(id, start(id));
  uint64_t leader = find_leader();
  CHECK(leader != 0);
  for (int i = 0; i < 5; i++) CHECK_OK(propose_retry(node_of(leader), "a=1", 5000 * time_scale()));

  /* The struct: the caller sets size; counters and gauges of the same names as the text.
   * Leadership can move on a slow run (valgrind): read the metrics of whoever leads. */
  raft_node_metrics_info m;
  memset(&m, 0, sizeof m);
  CHECK(raft_node_metrics(node_of(leader), &m) == RAFT_STATUS_INVALID_ARGUMENT); /* no size */
  for (int tries = 0; tries < 50; tries++) {
    leader = find_leader();
    CHECK(leader != 0);
    memset(&m, 0, sizeof m);
    m.size = sizeof m;
    CHECK_OK(raft_node_metrics(node_of(leader), &m));
    if (m.role == RAFT_ROLE_LEADER && m.proposals_total >= 5) break;
    sleep_ms(20);
  }
  raft_node *l = node_of(leader);
  CHECK(m.size == sizeof m);
  CHECK(m.role == RAFT_ROLE_LEADER && m.leader_id == leader && m.voted_for == leader);
  CHECK(m.proposals_total >= 5 && m.entries_committed_total >= 5);
  CHECK(m.sent_bytes_total > 0 && m.messages_sent_total > 0 && m.learner == 0);
  printf("leader %llu: term %llu, %llu proposals, %llu bytes sent\n", (unsigned long long)leader,
         (unsigned long long)m.term, (unsigned long long)m.proposals_total,
         (unsigned long long)m.sent_bytes_total);

  /* A shorter (older) struct gets only the fields that fit. */
  raft_node_metrics_info small;
  memset(&small, 0xAB, sizeof small);
  small.size = offsetof(raft_node_metrics_info, role);
  CHECK_OK(raft_node_metrics(l, &small));
  CHECK(small.term >= m.term);
  uint64_t untouched;
  memset(&untouched, 0xAB, sizeof untouched);
  CHECK(memcmp(&small.role, &untouched, sizeof untouched) == 0);

  /* A proposal refused by a follower is a not_leader drop. */
  uint64_t follower = 0;
  for (int tries = 0; tries < 50 && !follower; tries++) {
    uint64_t f = find_leader() % 3 + 1;
    if (raft_node_propose(node_of(f), (const uint8_t *)"x=1", 3, 1000, NULL) ==
        RAFT_STATUS_NOT_LEADER)
      follower = f;
  }
  CHECK(follower != 0);
  raft_node_metrics_info fm;
  memset(&fm, 0, sizeof fm);
  fm.size = sizeof fm;
  CHECK_OK(raft_node_metrics(node_of(follower), &fm));
  CHECK(fm.dropped_total[RAFT_DROP_REASON_NOT_LEADER] >= 1);

  /* The text export: histograms and labelled counters too. */
  raft_buf text = {0};
  CHECK_OK(raft_node_metrics_text(l, &text));
  CHECK(text_has(&text, "# TYPE raft_term gauge"));
  CHECK(text_has(&text, "raft_proposals_total "));
  CHECK(text_has(&text, "# TYPE raft_commit_seconds histogram"));
  CHECK(text_has(&text, "raft_dropped_total{reason=\"inbox_full\"} 0"));
  char peer_line[64];
  snprintf(peer_line, sizeof peer_line, "raft_peer_sent_bytes_total{peer=\"%llu\"}",
           (unsigned long long)(leader % 3 + 1));
  CHECK(text_has(&text, peer_line));
  raft_buf_free(&text);
  CHECK(text.data == NULL && text.len == 0);

  /* Node 4 joins as a learner: flagged in the leader's progress and in its own metrics. */
  node_publish(4, start(4));
  raft_status added = RAFT_STATUS_NOT_LEADER;
  for (int tries = 0; tries < 20 && added == RAFT_STATUS_NOT_LEADER; tries++) {
    leader = find_leader();
    CHECK(leader != 0);
    l = node_of(leader);
    added = raft_node_add_learner(l, 4, 0, 5000 * time_scale());
  }
  CHECK_OK(added);
  raft_peer_progress pr[8];
  size_t k = 0;
  int seen = 0;
  for (int tries = 0; tries < 50 && !seen; tries++) {
    leader = find_leader();
    CHECK(leader != 0);
    if (raft_node_peer_progress(node_of(leader), pr, 8, &k) != RAFT_STATUS_OK) continue;
    for (size_t i = 0; i < k; i++) {
      CHECK(pr[i].learner == (pr[i].id == 4));
      seen += pr[i].id == 4;
    }
  }
  CHECK(seen == 1);
  raft_node_metrics_info m4;
  int learner = 0;
  for (uint64_t end = now_ms() + 10000 * time_scale(); !learner && now_ms() < end; sleep_ms(20)) {
    memset(&m4, 0, sizeof m4);
    m4.size = sizeof m4;
    CHECK_OK(raft_node_metrics(node_of(4), &m4));
    learner = m4.learner == 1;
  }
  CHECK(learner);
  CHECK(m4.conf_id > 0 && m4.role == RAFT_ROLE_FOLLOWER);
  printf("node 4 is a learner (conf id %llu)\n", (unsigned long long)m4.conf_id);

  free_all_nodes();
  members_destroy();
  printf("metrics: OK\n");
  return 0;
}

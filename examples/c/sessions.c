/* Exactly-once client sessions: a retried (client, seq) command is applied once and the
 * retry gets the recorded response. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "raft.h"

static int apply(void *userdata, uint64_t index, const uint8_t *cmd, size_t len,
                 raft_buf *out_response) {
  unsigned long *count = userdata;
  char reply[64];
  (void)cmd, (void)len;
  int n = snprintf(reply, sizeof reply, "applied #%lu at %llu", ++*count,
                   (unsigned long long)index);
  return raft_buf_set(out_response, (const uint8_t *)reply, (size_t)n) == RAFT_STATUS_OK ? 0 : 1;
}

static void send_msg(void *userdata, uint64_t to, const uint8_t *data, size_t len) {
  (void)userdata, (void)to, (void)data, (void)len;
}

#define CHECK(cond, ...)                    \
  do {                                      \
    if (!(cond)) {                          \
      fprintf(stderr, "FAIL: " __VA_ARGS__); \
      fprintf(stderr, "\n");                \
      return 1;                             \
    }                                       \
  } while (0)

int main(void) {
  unsigned long count = 0;
  raft_config_builder *b;
  raft_config *config;
  raft_node *node;
  CHECK(raft_config_builder_new(&b) == RAFT_STATUS_OK, "builder");
  raft_config_builder_set_id(b, 1);
  raft_config_builder_add_voter(b, 1);
  raft_config_builder_set_election_timeout_ms(b, 150);
  raft_config_builder_set_userdata(b, &count, NULL);
  raft_config_builder_set_send_callback(b, send_msg);
  raft_config_builder_set_apply_callback(b, apply);
  CHECK(raft_config_builder_build(b, &config) == RAFT_STATUS_OK, "build");
  CHECK(raft_node_start(config, &node) == RAFT_STATUS_OK, "start");
  raft_config_free(config);

  raft_buf first = {NULL, 0}, retry = {NULL, 0}, next = {NULL, 0};
  raft_status s = RAFT_STATUS_NOT_LEADER;
  for (int i = 0; i < 200 && s == RAFT_STATUS_NOT_LEADER; i++) {
    s = raft_node_propose_session(node, 42, 1, (const uint8_t *)"op", 2, 1000, &first);
    if (s == RAFT_STATUS_NOT_LEADER) nanosleep(&(struct timespec){0, 20 * 1000 * 1000}, NULL);
  }
  CHECK(s == RAFT_STATUS_OK, "first propose: %s", raft_status_str(s));
  s = raft_node_propose_session(node, 42, 1, (const uint8_t *)"op", 2, 1000, &retry);
  CHECK(s == RAFT_STATUS_OK, "retry: %s", raft_status_str(s));
  CHECK(count == 1, "retry applied again (count %lu)", count);
  CHECK(first.len == retry.len && memcmp(first.data, retry.data, first.len) == 0,
        "retry got a different response");
  s = raft_node_propose_session(node, 42, 2, (const uint8_t *)"op", 2, 1000, &next);
  CHECK(s == RAFT_STATUS_OK && count == 2, "next seq: %s", raft_status_str(s));
  s = raft_node_propose_session(node, 42, 1, (const uint8_t *)"op", 2, 1000, NULL);
  CHECK(s == RAFT_STATUS_INVALID_ARGUMENT, "stale seq: %s", raft_status_str(s));
  s = raft_node_propose_session(node, 42, 0, (const uint8_t *)"op", 2, 1000, NULL);
  CHECK(s == RAFT_STATUS_INVALID_ARGUMENT, "seq 0: %s", raft_status_str(s));
  CHECK(count == 2, "refused commands must not apply");
  raft_buf_free(&first);
  raft_buf_free(&retry);
  raft_buf_free(&next);
  CHECK(raft_node_free(node) == RAFT_STATUS_OK, "free");
  printf("sessions: retries applied once\n");
  return 0;
}

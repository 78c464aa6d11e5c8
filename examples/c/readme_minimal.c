/* A complete minimal program: a single-node in-memory cluster whose state machine counts
 * commands. After `make install PREFIX=...` (README.md):
 *   cc -std=c11 readme_minimal.c $(pkg-config --cflags --libs raft) -o readme_minimal */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>

#include "raft.h"

/* Called on the node's apply thread for every committed command, in log order. */
static int apply(void *userdata, uint64_t index, const uint8_t *cmd, size_t len,
                 raft_buf *out_response) {
  unsigned long *count = userdata;
  char reply[96];
  int n = snprintf(reply, sizeof reply, "#%lu at index %llu: %.*s", ++*count,
                   (unsigned long long)index, (int)len, (const char *)cmd);
  return raft_buf_set(out_response, (const uint8_t *)reply, (size_t)n) == RAFT_STATUS_OK ? 0 : 1;
}

/* A one-node cluster never sends; a real one passes the bytes to the peer's raft_node_step. */
static void send_msg(void *userdata, uint64_t to, const uint8_t *data, size_t len) {
  (void)userdata, (void)to, (void)data, (void)len;
}

int main(void) {
  unsigned long count = 0;
  raft_config_builder *b;
  raft_config *config;
  raft_node *node;
  if (raft_config_builder_new(&b) != RAFT_STATUS_OK) return 1;
  raft_config_builder_set_id(b, 1);
  raft_config_builder_add_voter(b, 1);
  raft_config_builder_set_election_timeout_ms(b, 150);
  raft_config_builder_set_userdata(b, &count, NULL);
  raft_config_builder_set_send_callback(b, send_msg);
  raft_config_builder_set_apply_callback(b, apply);
  raft_status s = raft_config_builder_build(b, &config); /* consumes b */
  if (s != RAFT_STATUS_OK) {
    fprintf(stderr, "build: %s\n", raft_status_str(s));
    return 1;
  }
  s = raft_node_start(config, &node);
  raft_config_free(config);
  if (s != RAFT_STATUS_OK) {
    fprintf(stderr, "start: %s\n", raft_status_str(s));
    return 1;
  }
  raft_buf response = {NULL, 0};
  /* Waits up to 5 s: first for the node to elect itself, then for the commit. */
  s = raft_node_propose(node, (const uint8_t *)"hello", 5, 5000, &response);
  if (s == RAFT_STATUS_OK) printf("raft %s: %.*s\n", raft_version(), (int)response.len, (const char *)response.data);
  else fprintf(stderr, "propose: %s\n", raft_status_str(s));
  raft_buf_free(&response);
  raft_node_free(node); /* shuts down and joins the engine threads */
  return s == RAFT_STATUS_OK && count == 1 ? 0 : 1;
}

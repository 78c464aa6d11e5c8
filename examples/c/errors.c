/* Error paths of the C API: every one must give its documented status, never UB. */
#define _POSIX_C_SOURCE 200809L
#include <stdatomic.h>

#include "util.h"

static atomic_int finalised;
static void free_userdata(void *ud) {
  (void)ud;
  atomic_fetch_add(&finalised, 1);
}

static void drop_all(void *ud, uint64_t to, const uint8_t *data, size_t len) {
  (void)ud, (void)to, (void)data, (void)len;
}

/* The node a callback tries to shut down or free (set before the first proposal). */
static raft_node *_Atomic self_node;
static atomic_uint shutdown_in_cb = 0, free_in_cb = 0, propose_in_cb = 0, async_in_cb = 0;

static void async_done(void *ud, raft_status s, const uint8_t *resp, size_t len) {
  (void)resp, (void)len;
  atomic_store((atomic_uint *)ud, (unsigned)s + 1000u);
}
static atomic_uint async_result;

static int apply(void *ud, uint64_t index, const uint8_t *cmd, size_t len, raft_buf *out) {
  (void)ud, (void)index;
  if (len == 9 && memcmp(cmd, "reentrant", 9) == 0) {
    raft_node *n = atomic_load(&self_node);
    atomic_store(&shutdown_in_cb, (unsigned)raft_node_shutdown(n) + 1000u);
    atomic_store(&free_in_cb, (unsigned)raft_node_free(n) + 1000u);
    atomic_store(&propose_in_cb,
                 (unsigned)raft_node_propose(n, (const uint8_t *)"x", 1, 10, NULL) + 1000u);
    /* enqueue-only calls are allowed inside callbacks */
    atomic_store(&async_in_cb,
                 (unsigned)raft_node_propose_async(n, (const uint8_t *)"y", 1, async_done,
                                                   &async_result) + 1000u);
  }
  if (len == 4 && memcmp(cmd, "fail", 4) == 0) return 7; /* fails the node */
  return raft_buf_set(out, (const uint8_t *)"ok", 2) == RAFT_STATUS_OK ? 0 : 1;
}

static raft_config *config(uint64_t id, int cluster_of_three) {
  raft_config_builder *b;
  raft_config *c;
  CHECK_OK(raft_config_builder_new(&b));
  CHECK_OK(raft_config_builder_set_id(b, id));
  CHECK_OK(raft_config_builder_add_voter(b, 1));
  if (cluster_of_three) {
    CHECK_OK(raft_config_builder_add_voter(b, 2));
    CHECK_OK(raft_config_builder_add_voter(b, 3));
  }
  CHECK_OK(raft_config_builder_set_election_timeout_ms(b, 150 * time_scale()));
  CHECK_OK(raft_config_builder_set_userdata(b, &finalised, free_userdata));
  CHECK_OK(raft_config_builder_set_send_callback(b, drop_all));
  CHECK_OK(raft_config_builder_set_apply_callback(b, apply));
  CHECK_OK(raft_config_builder_build(b, &c));
  /* the builder was consumed */
  CHECK_STATUS(raft_config_builder_set_id(b, 1), RAFT_STATUS_INVALID_HANDLE);
  raft_config_builder_free(b); /* ignored: already consumed */
  return c;
}

static void null_and_bad_arguments(void) {
  raft_config_builder *b;
  raft_config *c = NULL;
  raft_node *n = NULL;
  CHECK_STATUS(raft_config_builder_new(NULL), RAFT_STATUS_NULL_ARGUMENT);
  CHECK_STATUS(raft_config_builder_set_id(NULL, 1), RAFT_STATUS_NULL_ARGUMENT);
  CHECK_STATUS(raft_node_start(NULL, &n), RAFT_STATUS_NULL_ARGUMENT);
  CHECK(n == NULL); /* out params untouched on failure */

  CHECK_OK(raft_config_builder_new(&b));
  CHECK_STATUS(raft_config_builder_set_id(b, 0), RAFT_STATUS_INVALID_ARGUMENT);
  CHECK_STATUS(raft_config_builder_add_voter(b, 0), RAFT_STATUS_INVALID_ARGUMENT);
  CHECK_STATUS(raft_config_builder_set_election_timeout_ms(b, 0), RAFT_STATUS_INVALID_ARGUMENT);
  CHECK_STATUS(raft_config_builder_set_listen_address(b, "not an address"),
               RAFT_STATUS_INVALID_ARGUMENT);
  CHECK_STATUS(raft_config_builder_set_listen_address(b, NULL), RAFT_STATUS_NULL_ARGUMENT);
  CHECK_STATUS(raft_config_builder_add_peer(b, 2, "127.0.0.1:notaport"),
               RAFT_STATUS_INVALID_ARGUMENT);
  CHECK_STATUS(raft_config_builder_set_secret(b, NULL, 3), RAFT_STATUS_NULL_ARGUMENT);
  /* lengths no buffer can have are refused before any slice is built */
  CHECK_STATUS(raft_config_builder_set_secret(b, (const uint8_t *)"s", SIZE_MAX),
               RAFT_STATUS_INVALID_ARGUMENT);
  CHECK_STATUS(raft_config_builder_set_secret(b, (const uint8_t *)"s", (size_t)PTRDIFF_MAX + 1),
               RAFT_STATUS_INVALID_ARGUMENT);
  /* a voter added twice is refused; limits must be in range */
  CHECK_OK(raft_config_builder_add_voter(b, 5));
  CHECK_STATUS(raft_config_builder_add_voter(b, 5), RAFT_STATUS_INVALID_ARGUMENT);
  CHECK_STATUS(raft_config_builder_set_max_command_bytes(b, 0), RAFT_STATUS_INVALID_ARGUMENT);
  CHECK_STATUS(raft_config_builder_set_max_command_bytes(b, UINT64_MAX),
               RAFT_STATUS_INVALID_ARGUMENT);
  CHECK_STATUS(raft_config_builder_set_max_snapshot_bytes(b, 0), RAFT_STATUS_INVALID_ARGUMENT);
  /* raft_buf_set with input inside the buffer it replaces (copied before the old is freed),
   * and with an impossible length */
  raft_buf rb = {NULL, 0};
  CHECK_OK(raft_buf_set(&rb, (const uint8_t *)"hello world", 11));
  CHECK_OK(raft_buf_set(&rb, rb.data + 6, 5));
  CHECK(rb.len == 5 && memcmp(rb.data, "world", 5) == 0);
  CHECK_OK(raft_buf_set(&rb, rb.data, rb.len));
  CHECK(rb.len == 5 && memcmp(rb.data, "world", 5) == 0);
  CHECK_STATUS(raft_buf_set(&rb, rb.data, SIZE_MAX), RAFT_STATUS_INVALID_ARGUMENT);
  CHECK(rb.len == 5 && memcmp(rb.data, "world", 5) == 0); /* untouched on failure */
  raft_buf_free(&rb);
  CHECK(strcmp(raft_status_str(RAFT_STATUS_TOO_LARGE), "unknown status") != 0);
  CHECK_STATUS(raft_config_builder_set_data_dir(b, ""), RAFT_STATUS_INVALID_ARGUMENT);
  CHECK_STATUS(raft_config_builder_set_snapshot_callbacks(b, NULL, NULL), RAFT_STATUS_OK);
  CHECK_STATUS(raft_config_builder_build(b, NULL), RAFT_STATUS_NULL_ARGUMENT);
  /* no id, voters or callbacks: build fails and consumes the builder */
  CHECK_STATUS(raft_config_builder_build(b, &c), RAFT_STATUS_INVALID_ARGUMENT);
  CHECK(c == NULL);
  char msg[128];
  size_t full = 0;
  CHECK_OK(raft_last_error_message(msg, sizeof msg, &full));
  CHECK(full > 0 && strstr(msg, "id") != NULL);
  CHECK_STATUS(raft_config_builder_build(b, &c), RAFT_STATUS_INVALID_HANDLE);

  /* timeouts that conflict */
  CHECK_OK(raft_config_builder_new(&b));
  CHECK_OK(raft_config_builder_set_id(b, 1));
  CHECK_OK(raft_config_builder_add_voter(b, 1));
  CHECK_OK(raft_config_builder_set_send_callback(b, drop_all));
  CHECK_OK(raft_config_builder_set_apply_callback(b, apply));
  CHECK_OK(raft_config_builder_set_heartbeat_ms(b, 100));
  CHECK_OK(raft_config_builder_set_election_timeout_ms(b, 100));
  CHECK_STATUS(raft_config_builder_build(b, &c), RAFT_STATUS_INVALID_ARGUMENT);

  /* free(NULL) is a no-op everywhere */
  raft_config_builder_free(NULL);
  raft_config_free(NULL);
  CHECK_OK(raft_node_free(NULL));
  raft_buf_free(NULL);

  CHECK(strcmp(raft_status_str(RAFT_STATUS_OK), "ok") == 0);
  CHECK(strcmp(raft_status_str(12345), "unknown status") == 0);
  CHECK(strcmp(raft_version(), RAFT_VERSION_STRING) == 0);
}

static void not_leader_and_garbage(void) {
  raft_config *c = config(2, 1); /* a follower that never hears from anyone */
  raft_node *n;
  CHECK_OK(raft_node_start(c, &n));
  raft_config_free(c);
  raft_buf resp = {NULL, 0};
  CHECK_STATUS(raft_node_propose(n, (const uint8_t *)"k=v", 3, 500, &resp),
               RAFT_STATUS_NOT_LEADER);
  CHECK(resp.data == NULL);
  uint64_t idx = 77;
  CHECK_STATUS(raft_node_read_index(n, 500, &idx), RAFT_STATUS_NOT_LEADER);
  CHECK(idx == 77);
  CHECK_STATUS(raft_node_transfer_leader(n, 1), RAFT_STATUS_NOT_LEADER);

  const uint8_t garbage[] = {0xde, 0xad, 0xbe, 0xef, 1, 2, 3};
  CHECK_STATUS(raft_node_step(n, garbage, sizeof garbage), RAFT_STATUS_INVALID_ARGUMENT);
  CHECK_STATUS(raft_node_step(n, NULL, 4), RAFT_STATUS_NULL_ARGUMENT);
  CHECK_STATUS(raft_node_step(n, garbage, SIZE_MAX), RAFT_STATUS_INVALID_ARGUMENT);
  CHECK_STATUS(raft_node_propose(n, garbage, (size_t)PTRDIFF_MAX + 1, 10, NULL),
               RAFT_STATUS_INVALID_ARGUMENT);
  uint64_t some_ids[1] = {1};
  CHECK_STATUS(raft_node_change_membership(n, some_ids, SIZE_MAX / 4, NULL, 0, 0, 10),
               RAFT_STATUS_INVALID_ARGUMENT);
  /* A heartbeat claiming sender 1 (format 2, postcard: from 1, to 2, term 1, Heartbeat{0, 0},
   * incarnations 0 and 0): accepted from 1, refused when the transport says it came from 3
   * (a forged sender). */
  const uint8_t hb_from_1[] = {2, 1, 2, 1, 2, 0, 0, 0, 0};
  CHECK_STATUS(raft_node_step_from(n, 3, hb_from_1, sizeof hb_from_1),
               RAFT_STATUS_INVALID_ARGUMENT);
  CHECK_OK(raft_node_step_from(n, 1, hb_from_1, sizeof hb_from_1));
  CHECK_STATUS(raft_node_step_from(n, 1, garbage, sizeof garbage), RAFT_STATUS_INVALID_ARGUMENT);
  CHECK_STATUS(raft_node_step_from(n, 1, NULL, 4), RAFT_STATUS_NULL_ARGUMENT);
  CHECK_STATUS(raft_node_propose(n, NULL, 3, 10, NULL), RAFT_STATUS_NULL_ARGUMENT);
  CHECK_STATUS(raft_node_status(n, NULL), RAFT_STATUS_NULL_ARGUMENT);
  CHECK_STATUS(raft_node_read_index(n, 10, NULL), RAFT_STATUS_NULL_ARGUMENT);
  CHECK_STATUS(raft_node_propose_async(n, (const uint8_t *)"x", 1, NULL, NULL),
               RAFT_STATUS_NULL_ARGUMENT);

  raft_node_status_info st;
  CHECK_OK(raft_node_status(n, &st));
  CHECK(st.id == 2 && st.role != RAFT_ROLE_LEADER && st.voter_count == 3);
  CHECK(st.voters[0] == 1 && st.voters[1] == 2 && st.voters[2] == 3);
  uint64_t ids[2];
  size_t nids = 0;
  CHECK_STATUS(raft_node_voters(n, ids, 2, &nids), RAFT_STATUS_BUFFER_TOO_SMALL);
  CHECK(nids == 3);

  /* double shutdown is fine; then everything reports SHUT_DOWN */
  CHECK_OK(raft_node_shutdown(n));
  CHECK_OK(raft_node_shutdown(n));
  CHECK_STATUS(raft_node_propose(n, (const uint8_t *)"k=v", 3, 100, NULL), RAFT_STATUS_SHUT_DOWN);
  CHECK_STATUS(raft_node_status(n, &st), RAFT_STATUS_SHUT_DOWN);
  atomic_store(&async_result, 0);
  CHECK_OK(raft_node_propose_async(n, (const uint8_t *)"k=v", 3, async_done, &async_result));
  CHECK(atomic_load(&async_result) == RAFT_STATUS_SHUT_DOWN + 1000u);

  /* freed and forged handles */
  CHECK_OK(raft_node_free(n));
  CHECK_STATUS(raft_node_status(n, &st), RAFT_STATUS_INVALID_HANDLE);
  CHECK_STATUS(raft_node_free(n), RAFT_STATUS_INVALID_HANDLE);
  CHECK_STATUS(raft_node_step(n, garbage, sizeof garbage), RAFT_STATUS_INVALID_HANDLE);
  CHECK_STATUS(raft_node_step_from(n, 1, hb_from_1, sizeof hb_from_1), RAFT_STATUS_INVALID_HANDLE);
  raft_node *forged = (raft_node *)(uintptr_t)0x1234;
  CHECK_STATUS(raft_node_propose(forged, (const uint8_t *)"k", 1, 10, NULL),
               RAFT_STATUS_INVALID_HANDLE);
  CHECK_STATUS(raft_node_free(forged), RAFT_STATUS_INVALID_HANDLE);
  raft_node *forged2 = (raft_node *)(uintptr_t)0xFFFFFFFFFFFFFFFAull;
  CHECK_STATUS(raft_node_shutdown(forged2), RAFT_STATUS_INVALID_HANDLE);
  /* a config handle is not a node handle, and vice versa */
  raft_config *c2 = config(1, 0);
  CHECK_STATUS(raft_node_shutdown((raft_node *)c2), RAFT_STATUS_INVALID_HANDLE);
  CHECK_STATUS(raft_node_start((raft_config *)forged, &n), RAFT_STATUS_INVALID_HANDLE);
  raft_config_free(c2);
  CHECK_STATUS(raft_node_start(c2, &n), RAFT_STATUS_INVALID_HANDLE);
  raft_config_free(c2); /* double free of a config: ignored */
}

static void calls_inside_callbacks(void) {
  raft_config *c = config(1, 0); /* single voter: elects itself */
  raft_node *n;
  CHECK_OK(raft_node_start(c, &n));
  raft_config_free(c);
  atomic_store(&self_node, n);
  atomic_store(&async_result, 0);
  CHECK_OK(propose_retry(n, "reentrant", 10000 * time_scale()));
  CHECK(atomic_load(&shutdown_in_cb) == RAFT_STATUS_WOULD_DEADLOCK + 1000u);
  CHECK(atomic_load(&free_in_cb) == RAFT_STATUS_WOULD_DEADLOCK + 1000u);
  CHECK(atomic_load(&propose_in_cb) == RAFT_STATUS_WOULD_DEADLOCK + 1000u);
  CHECK(atomic_load(&async_in_cb) == RAFT_STATUS_OK + 1000u);
  uint64_t end = now_ms() + 5000 * time_scale();
  while (atomic_load(&async_result) == 0 && now_ms() < end) sleep_ms(5);
  CHECK(atomic_load(&async_result) == RAFT_STATUS_OK + 1000u);
  /* the handle survived the refused free */
  raft_node_status_info st;
  CHECK_OK(raft_node_status(n, &st));
  CHECK(st.role == RAFT_ROLE_LEADER && st.applied >= 2);
  uint64_t read = 0;
  CHECK_OK(raft_node_read_index(n, 5000, &read));
  CHECK(read >= 2);
  CHECK_OK(raft_node_free(n));
}

static void failing_state_machine(void) {
  raft_config *c = config(1, 0);
  raft_node *n;
  CHECK_OK(raft_node_start(c, &n));
  raft_config_free(c);
  CHECK_OK(propose_retry(n, "k=v", 10000 * time_scale()));
  /* the waiting proposer learns the node failed (FAILED), not that it was shut down */
  raft_status s = raft_node_propose(n, (const uint8_t *)"fail", 4, 5000, NULL);
  CHECK_STATUS(s, RAFT_STATUS_FAILED);
  raft_node_status_info st;
  uint64_t end = now_ms() + 5000 * time_scale();
  while ((s = raft_node_status(n, &st)) == RAFT_STATUS_OK && now_ms() < end) sleep_ms(10);
  CHECK_STATUS(raft_node_status(n, &st), RAFT_STATUS_FAILED);
  char msg[256];
  CHECK_OK(raft_last_error_message(msg, sizeof msg, NULL));
  CHECK(strstr(msg, "returned 7") != NULL);
  CHECK_OK(raft_node_free(n));
}

/* Commands above max_command_bytes are refused up front with TOO_LARGE by every proposal
 * call; the node keeps serving. */
static void command_limit(void) {
  raft_config_builder *b;
  raft_config *c;
  raft_node *n;
  CHECK_OK(raft_config_builder_new(&b));
  CHECK_OK(raft_config_builder_set_id(b, 1));
  CHECK_OK(raft_config_builder_add_voter(b, 1));
  CHECK_OK(raft_config_builder_set_max_command_bytes(b, 16));
  CHECK_OK(raft_config_builder_set_send_callback(b, drop_all));
  CHECK_OK(raft_config_builder_set_apply_callback(b, apply));
  CHECK_OK(raft_config_builder_build(b, &c));
  CHECK_OK(raft_node_start(c, &n));
  raft_config_free(c);
  CHECK_OK(propose_retry(n, "k=v", 10000 * time_scale()));
  const uint8_t big[17] = "0123456789abcdef";
  raft_buf resp = {NULL, 0};
  CHECK_STATUS(raft_node_propose(n, big, 17, 1000, &resp), RAFT_STATUS_TOO_LARGE);
  CHECK(resp.data == NULL);
  char msg[128];
  CHECK_OK(raft_last_error_message(msg, sizeof msg, NULL));
  CHECK(strstr(msg, "17 bytes") != NULL);
  atomic_store(&async_result, 0);
  CHECK_STATUS(raft_node_propose_async(n, big, 17, async_done, &async_result),
               RAFT_STATUS_TOO_LARGE);
  CHECK(atomic_load(&async_result) == 0); /* cb not called on a refusal */
  CHECK_OK(raft_node_propose(n, big, 16, 5000, &resp));
  raft_buf_free(&resp);
  CHECK_OK(raft_node_free(n));
}

int main(void) {
  null_and_bad_arguments();
  CHECK(atomic_load(&finalised) == 0);
  not_leader_and_garbage();
  /* configs and nodes released: each userdata finalised exactly once (2 so far) */
  CHECK(atomic_load(&finalised) == 2);
  calls_inside_callbacks();
  CHECK(atomic_load(&finalised) == 3);
  failing_state_machine();
  CHECK(atomic_load(&finalised) == 4);
  command_limit();
  printf("errors: all checks passed\n");
  return 0;
}

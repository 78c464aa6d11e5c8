/* Three nodes in three processes (fork) over the built-in TCP transport on 127.0.0.1,
 * authenticated with a shared secret. Whichever node leads writes the keys; every child
 * verifies them in its own state machine, reports to the parent through a pipe, and stays
 * a member until the parent closes its pipe. */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util.h"

#define N 3
#define KEYS 10

static kv_store kv;

static int apply_cb(void *ud, uint64_t index, const uint8_t *cmd, size_t len, raft_buf *out) {
  (void)ud, (void)index, (void)out;
  return kv_apply(&kv, cmd, len);
}

static int have_all(void) {
  for (int i = 0; i < KEYS; i++) {
    char key[KV_STR], val[KV_STR], want[KV_STR];
    snprintf(key, sizeof key, "key%d", i);
    snprintf(want, sizeof want, "value%d", i);
    if (!kv_get(&kv, key, val) || strcmp(val, want) != 0) return 0;
  }
  return 1;
}

static int child(uint64_t id, const unsigned *ports, int up, int down) {
  kv_init(&kv);
  raft_config_builder *b;
  raft_config *c;
  raft_node *n;
  char addr[64];
  CHECK_OK(raft_config_builder_new(&b));
  CHECK_OK(raft_config_builder_set_id(b, id));
  snprintf(addr, sizeof addr, "127.0.0.1:%u", ports[id]);
  CHECK_OK(raft_config_builder_set_listen_address(b, addr));
  for (uint64_t p = 1; p <= N; p++) {
    CHECK_OK(raft_config_builder_add_voter(b, p));
    snprintf(addr, sizeof addr, "127.0.0.1:%u", ports[p]);
    if (p != id) CHECK_OK(raft_config_builder_add_peer(b, p, addr));
  }
  CHECK_OK(raft_config_builder_set_cluster_id(b, 42));
  CHECK_OK(raft_config_builder_set_secret(b, (const uint8_t *)"s3cret", 6));
  CHECK_OK(raft_config_builder_set_election_timeout_ms(b, 300 * time_scale()));
  CHECK_OK(raft_config_builder_set_heartbeat_ms(b, 50 * time_scale()));
  CHECK_OK(raft_config_builder_set_apply_callback(b, apply_cb));
  CHECK_OK(raft_config_builder_build(b, &c));
  CHECK_OK(raft_node_start(c, &n));
  raft_config_free(c);

  uint64_t end = now_ms() + 60000 * time_scale();
  while (!have_all()) {
    if (now_ms() > end) {
      fprintf(stderr, "node %llu: keys never arrived\n", (unsigned long long)id);
      return 1;
    }
    raft_node_status_info st;
    if (raft_node_status(n, &st) == RAFT_STATUS_OK && st.role == RAFT_ROLE_LEADER) {
      for (int i = 0; i < KEYS; i++) {
        char cmd[64];
        snprintf(cmd, sizeof cmd, "key%d=value%d", i, i);
        if (raft_node_propose(n, (const uint8_t *)cmd, strlen(cmd), 3000 * time_scale(), NULL) !=
            RAFT_STATUS_OK)
          break; /* leadership moved: the loop tries again */
      }
      printf("node %llu (leader, term %llu) wrote %d keys\n", (unsigned long long)id,
             (unsigned long long)st.term, KEYS);
      fflush(stdout);
    }
    sleep_ms(50);
  }
  char v = 'V';
  CHECK(write(up, &v, 1) == 1);
  char buf;
  while (read(down, &buf, 1) > 0) {
  } /* stay a member until the parent says we are all done */
  CHECK_OK(raft_node_free(n));
  kv_destroy(&kv);
  return 0;
}

/* Finds a free loopback port below Linux's ephemeral range (32768-60999), so no outgoing
 * connection can take it before the node binds it; falls back to a kernel-chosen port. The
 * socket stays open (so the next call gets another port) until the caller closes `*fd`. */
static unsigned free_port(int *out_fd) {
  static unsigned next = 0;
  if (next == 0) next = 20000 + (unsigned)(getpid() * 7919u) % 12000u;
  for (int attempt = 0; attempt <= 200; attempt++) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (attempt < 200) {
      a.sin_port = htons((uint16_t)next);
      next = 20000 + (next - 20000 + 1) % 12000u;
    }
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0) {
      *out_fd = fd;
      return ntohs(a.sin_port);
    }
    if (fd >= 0) close(fd);
  }
  perror("free_port");
  exit(1);
}

int main(void) {
  unsigned ports[N + 1];
  int fds[N + 1];
  for (int i = 1; i <= N; i++) ports[i] = free_port(&fds[i]);
  for (int i = 1; i <= N; i++) close(fds[i]);
  int up[2], down[N][2];
  pid_t pids[N];
  fflush(stdout);
  CHECK(pipe(up) == 0);
  for (int i = 0; i < N; i++) {
    CHECK(pipe(down[i]) == 0);
    pids[i] = fork();
    CHECK(pids[i] >= 0);
    if (pids[i] == 0) {
      close(up[0]);
      for (int j = 0; j <= i; j++) close(down[j][1]);
      _exit(child((uint64_t)i + 1, ports, up[1], down[i][0]));
    }
    close(down[i][0]);
  }
  close(up[1]);

  int verified = 0, ok = 1;
  uint64_t end = now_ms() + 90000 * time_scale();
  while (verified < N && now_ms() < end) {
    struct pollfd p = {up[0], POLLIN, 0};
    if (poll(&p, 1, 1000) > 0) {
      char c;
      ssize_t r = read(up[0], &c, 1);
      if (r <= 0) break; /* every child died */
      verified++;
    }
  }
  if (verified < N) {
    fprintf(stderr, "only %d of %d nodes verified the keys\n", verified, N);
    ok = 0;
  }
  for (int i = 0; i < N; i++) close(down[i][1]); /* children shut down */
  for (int i = 0; i < N; i++) {
    int status = 0;
    uint64_t until = now_ms() + 30000 * time_scale();
    pid_t r;
    while ((r = waitpid(pids[i], &status, WNOHANG)) == 0 && now_ms() < until) sleep_ms(20);
    if (r == 0) {
      kill(pids[i], SIGKILL);
      waitpid(pids[i], &status, 0);
      ok = 0;
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      fprintf(stderr, "child %d failed (status %d)\n", i + 1, status);
      ok = 0;
    }
  }
  close(up[0]);
  printf("kv_tcp: %s\n", ok ? "ok" : "FAILED");
  return ok ? 0 : 1;
}

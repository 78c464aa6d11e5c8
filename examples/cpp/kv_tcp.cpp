// Three nodes over the built-in TCP transport (127.0.0.1, shared secret), each with a data
// directory, driven through raft.hpp. Writes keys, stops the leader, writes through the new
// leader, restarts the old one from its data directory and checks it catches up.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <filesystem>
#include <memory>

#include "util.hpp"

using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

constexpr uint64_t kN = 3;

// A free loopback port below Linux's ephemeral range (so no outgoing connection takes it
// before the node binds it); the socket stays open until the caller closes `fd`.
unsigned free_port(int &fd) {
  static unsigned next = 20000 + static_cast<unsigned>(getpid() * 7919u) % 12000u;
  for (int attempt = 0; attempt < 200; attempt++) {
    fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<uint16_t>(next));
    unsigned port = next;
    next = 20000 + (next - 20000 + 1) % 12000u;
    if (fd >= 0 && bind(fd, reinterpret_cast<sockaddr *>(&a), sizeof a) == 0) return port;
    if (fd >= 0) close(fd);
  }
  std::perror("free_port");
  std::exit(1);
}

struct Member {
  ex::Kv kv;
  raft::Node node;
};

}  // namespace

int main() {
  std::array<unsigned, kN + 1> ports{};
  std::array<int, kN + 1> fds{};
  for (uint64_t i = 1; i <= kN; i++) ports[i] = free_port(fds[i]);
  for (uint64_t i = 1; i <= kN; i++) close(fds[i]);
  auto addr = [&](uint64_t id) { return "127.0.0.1:" + std::to_string(ports[id]); };

  char tmpl[] = "/tmp/raft-kv-tcp-cpp-XXXXXX";
  CHECK(mkdtemp(tmpl) != nullptr);
  fs::path root(tmpl);
  auto members = std::make_unique<std::array<Member, kN + 1>>();

  auto start = [&](uint64_t id) {
    raft::ConfigBuilder b;
    b.id(id)
        .voters({1, 2, 3})
        .listen(addr(id))
        .cluster_id(42)
        .secret("s3cret")
        .data_dir((root / ("node" + std::to_string(id))).string())
        .unsafe_no_fsync(true)  // a test on a shared machine; never in production
        .election_timeout(300ms * ex::scale())
        .heartbeat(50ms * ex::scale())
        .on_apply([&kv = (*members)[id].kv](uint64_t, raft::Bytes cmd, raft::Response &) {
          kv.apply(cmd);
        });
    for (uint64_t p = 1; p <= kN; p++)
      if (p != id) b.peer(p, addr(p));
    (*members)[id].node = raft::Node::start(b.build());
  };
  auto leader = [&]() -> uint64_t {
    uint64_t found = 0;
    ex::wait_for(
        [&] {
          for (uint64_t id = 1; id <= kN; id++) {
            if (!(*members)[id].node) continue;
            raft::Result<raft::NodeStatus> st = (*members)[id].node.try_status();
            if (st.ok() && st->role == raft::Role::Leader) return (found = id) != 0;
          }
          return false;
        },
        30s);
    return found;
  };
  auto put = [&](int i) {
    std::string cmd = "key" + std::to_string(i) + "=value" + std::to_string(i);
    for (int attempt = 0; attempt < 100; attempt++) {
      uint64_t l = leader();
      CHECK(l != 0);
      raft::Result<raft::Buffer> r = (*members)[l].node.try_propose(cmd, 5s * ex::scale());
      if (r.ok()) return;
      CHECK(r.status().retryable());
      std::this_thread::sleep_for(20ms);
    }
    CHECK(!"put never succeeded");
  };
  auto has = [&](uint64_t id, int upto) {
    return ex::wait_for(
        [&] {
          for (int i = 0; i < upto; i++)
            if ((*members)[id].kv.get("key" + std::to_string(i)) != "value" + std::to_string(i))
              return false;
          return true;
        },
        20s);
  };

  for (uint64_t id = 1; id <= kN; id++) start(id);
  for (int i = 0; i < 10; i++) put(i);
  for (uint64_t id = 1; id <= kN; id++) CHECK(has(id, 10));

  uint64_t old = leader();
  (*members)[old].node.close();
  std::printf("stopped leader %llu\n", static_cast<unsigned long long>(old));
  for (int i = 10; i < 20; i++) put(i);
  uint64_t next = leader();
  CHECK(next != old);

  // Restart from the data directory: an empty state machine is rebuilt from the log.
  (*members)[old].kv.clear();
  CHECK((*members)[old].kv.size() == 0);
  start(old);
  CHECK(has(old, 20));
  std::printf("node %llu restarted from its data directory and caught up\n",
              static_cast<unsigned long long>(old));

  for (uint64_t id = 1; id <= kN; id++) (*members)[id].node.close();
  fs::remove_all(root);
  std::printf("kv_tcp (C++): ok (leaders %llu then %llu)\n", static_cast<unsigned long long>(old),
              static_cast<unsigned long long>(next));
  return 0;
}

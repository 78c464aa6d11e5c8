// A complete program: a one-node in-memory cluster whose state machine counts commands.
// Build: c++ -std=c++17 quickstart.cpp -I include -L target/debug -lraft -pthread
#include <cstdio>
#include <thread>

#include "raft.hpp"

int main() {
  using namespace std::chrono_literals;
  unsigned long count = 0;  // touched only by the apply callable (apply thread)
  try {
    raft::Config config =
        raft::ConfigBuilder()
            .id(1)
            .voter(1)
            .election_timeout(150ms)
            .on_send([](uint64_t /*to*/, raft::Bytes /*msg*/) {})  // one node: never sends
            .on_apply([&count](uint64_t index, raft::Bytes cmd, raft::Response &out) {
              std::string reply = "#" + std::to_string(++count) + " at index " +
                                  std::to_string(index) + ": " + cmd.to_string();
              return out.set(reply);  // a failed Status would stop the node
            })
            .build();
    raft::Node node = raft::Node::start(config);
    for (int i = 0;; i++) {  // wait for the node to elect itself
      raft::Result<raft::Buffer> r = node.try_propose("hello", 1s);
      if (r.ok()) {
        std::printf("raft %s: %s\n", raft::version(), std::string(r->str()).c_str());
        break;
      }
      if (!r.status().is(raft::Code::NotLeader) || i == 200) throw raft::Error(r.status());
      std::this_thread::sleep_for(20ms);
    }
    std::future<raft::Buffer> later = node.propose_future("world");
    std::printf("%s\n", later.get().to_string().c_str());
    node.close();  // shuts down, joins the engine threads; the destructor would too
  } catch (const raft::Error &e) {
    std::fprintf(stderr, "raft error: %s\n", e.what());
    return 1;
  }
  return count == 2 ? 0 : 1;
}

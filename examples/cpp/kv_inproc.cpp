// Three nodes in one process through raft.hpp. The send callable hands the message bytes to
// the target's Node::step_from (naming the sender). Writes keys (blocking, futures, completion callables), checks the
// NotLeader error names the leader, reads linearizably on a follower, transfers leadership,
// adds a fourth node as a learner, promotes and removes it, kills the leader, writes through
// the new one and checks every survivor's state machine.
#include <array>
#include <atomic>
#include <future>
#include <memory>
#include <vector>

#include "util.hpp"

using namespace std::chrono_literals;

namespace {

constexpr uint64_t kMax = 4;  // nodes 1..3 bootstrap, 4 joins later

struct Cluster {
  std::mutex mu;  // guards nodes (held while stepping, so a node is never freed mid-step)
  std::array<raft::Node, kMax + 1> nodes;
  std::array<ex::Kv, kMax + 1> kv;
  std::array<std::pair<uint64_t, std::string>, kMax + 1> last;  // last message sent, and to whom

  // The sender is known in-process, so the receiver checks it (step_from).
  void deliver(uint64_t from, uint64_t to, raft::Bytes msg) {
    std::lock_guard<std::mutex> g(mu);
    last[from] = {to, msg.to_string()};
    if (to >= 1 && to <= kMax && nodes[to]) (void)nodes[to].try_step_from(from, msg);  // drops are fine
  }

  raft::Config config(uint64_t id) {
    return raft::ConfigBuilder()
        .id(id)
        .voters({1, 2, 3})
        .election_timeout(300ms * ex::scale())
        .heartbeat(50ms * ex::scale())
        .max_command_bytes(1024)
        .on_send([this, id](uint64_t to, raft::Bytes msg) { deliver(id, to, msg); })
        .on_apply([this, id](uint64_t, raft::Bytes cmd, raft::Response &out) {
          kv[id].apply(cmd);
          return out.set("stored");
        })
        .on_role_change([id](raft::Role role, uint64_t term, uint64_t) {
          if (role == raft::Role::Leader)
            std::printf("node %llu leads term %llu\n", static_cast<unsigned long long>(id),
                        static_cast<unsigned long long>(term));
        })
        .build();
  }

  void start(uint64_t id) {
    raft::Node n = raft::Node::start(config(id));
    std::lock_guard<std::mutex> g(mu);
    nodes[id] = std::move(n);
  }

  // Takes a node out (under the lock) and frees it outside: its threads are joined.
  void kill(uint64_t id) {
    raft::Node dead;
    {
      std::lock_guard<std::mutex> g(mu);
      dead = std::move(nodes[id]);
    }
    dead.close();
  }

  const raft::Node &node(uint64_t id) {
    std::lock_guard<std::mutex> g(mu);
    return nodes[id];
  }

  uint64_t leader() {
    uint64_t found = 0;
    ex::wait_for(
        [&] {
          // Only the main thread replaces nodes, so it reads them without the lock: holding
          // it across try_status would stall every delivery (and cause elections).
          for (uint64_t id = 1; id <= kMax; id++) {
            if (!nodes[id]) continue;
            raft::Result<raft::NodeStatus> st = nodes[id].try_status();
            if (st.ok() && st->role == raft::Role::Leader) return (found = id) != 0;
          }
          return false;
        },
        20s);
    return found;
  }

  // Writes key=value through whichever node leads, retrying across leader changes.
  void put(const std::string &key, const std::string &value) {
    std::string cmd = key + "=" + value;
    for (int attempt = 0; attempt < 100; attempt++) {
      uint64_t l = leader();
      CHECK(l != 0);
      raft::Result<raft::Buffer> r = node(l).try_propose(cmd, 5s * ex::scale());
      if (r.ok()) {
        CHECK(r->str() == "stored");
        return;
      }
      CHECK(r.status().retryable());
      std::this_thread::sleep_for(20ms);
    }
    CHECK(!"put never succeeded");
  }

  void check_all(uint64_t skip, int upto) {
    for (uint64_t id = 1; id <= 3; id++) {
      if (id == skip) continue;
      for (int i = 0; i < upto; i++) {
        std::string k = "key" + std::to_string(i), v = "value" + std::to_string(i);
        if (!ex::wait_for([&] { return kv[id].get(k) == v; }, 10s)) {
          std::fprintf(stderr, "node %llu lacks %s=%s\n", static_cast<unsigned long long>(id),
                       k.c_str(), v.c_str());
          std::exit(1);
        }
      }
    }
  }
};

}  // namespace

int main() {
  std::atomic<unsigned long> log_records{0};
  CHECK(raft::try_set_log_callback(
            [&log_records](const raft::LogRecord &r) {
              if (r.level <= raft::LogLevel::Info && !r.message.empty()) log_records++;
            },
            raft::LogLevel::Info)
            .ok());

  auto c = std::make_unique<Cluster>();
  for (uint64_t id = 1; id <= 3; id++) c->start(id);
  uint64_t leader = c->leader();
  CHECK(leader != 0);

  // Blocking writes, then 20 in flight at once through futures, then a completion callable.
  for (int i = 0; i < 5; i++) c->put("key" + std::to_string(i), "value" + std::to_string(i));
  std::vector<std::future<raft::Buffer>> inflight;
  for (int i = 5; i < 25; i++)
    inflight.push_back(c->node(leader).propose_future("key" + std::to_string(i) + "=value" +
                                                      std::to_string(i)));
  for (auto &f : inflight) CHECK(f.get().str() == "stored");
  std::promise<raft::Status> done;
  CHECK(c->node(leader)
            .propose_async("key25=value25",
                           [&done](raft::Status s, raft::Bytes) { done.set_value(s); })
            .ok());
  CHECK(done.get_future().get().ok());
  c->check_all(0, 26);

  // A command above max_command_bytes is refused up front, with nothing proposed.
  raft::Result<raft::Buffer> big = c->node(leader).try_propose(std::string(1025, 'x'));
  CHECK(big.status().is(raft::Code::TooLarge) && !big.status().retryable());
  // A real message of the leader, delivered as if another node had sent it, is refused;
  // with its true sender it is accepted.
  std::pair<uint64_t, std::string> m;
  {
    std::lock_guard<std::mutex> g(c->mu);
    m = c->last[leader];
  }
  uint64_t impostor = 1;
  while (impostor == leader || impostor == m.first) impostor++;
  CHECK(c->node(m.first).try_step_from(impostor, m.second).status().is(raft::Code::InvalidArgument));
  CHECK(c->node(m.first).try_step_from(leader, m.second).ok());

  // A follower refuses writes with NotLeader naming the leader (exception and Result forms).
  uint64_t follower = leader % 3 + 1;
  try {
    c->node(follower).propose("nope=1");
    CHECK(!"a follower accepted a write");
  } catch (const raft::Error &e) {
    CHECK(e.code() == raft::Code::NotLeader && e.status().leader() == leader);
  }
  // Linearizable read on the follower: afterwards its state machine has every write.
  uint64_t read = c->node(follower).read_index(5s * ex::scale());
  CHECK(read > 0 && c->kv[follower].get("key25") == "value25");

  // Hand leadership to the follower.
  c->node(leader).transfer_leader(follower);
  CHECK(ex::wait_for([&] { return c->leader() == follower; }, 10s));
  std::printf("leadership transferred %llu -> %llu\n", static_cast<unsigned long long>(leader),
              static_cast<unsigned long long>(follower));
  leader = follower;

  // Node 4 joins as a learner, is promoted, then removed for good.
  c->start(4);
  c->node(leader).add_learner(4, 0, 10s * ex::scale());
  CHECK(c->node(leader).learners() == std::vector<uint64_t>{4});
  CHECK(ex::wait_for([&] { return c->kv[4].get("key25") == "value25"; }, 10s));
  c->node(leader).promote_learner(4, 10, 10s * ex::scale());
  CHECK(c->node(leader).voters() == (std::vector<uint64_t>{1, 2, 3, 4}));
  uint64_t conf = c->node(leader).conf_id();
  c->node(leader).change_membership({1, 2, 3}, {}, conf, 10s * ex::scale());
  CHECK(c->node(leader).voters() == (std::vector<uint64_t>{1, 2, 3}));
  raft::Result<void> stale = c->node(leader).try_change_membership({1, 2, 3}, {}, conf);
  CHECK(stale.status().is(raft::Code::InvalidArgument));  // compare-and-set: conf moved
  c->kill(4);

  c->put("key26", "value26");
  c->check_all(0, 27);

  // Kill the leader; the survivors elect another and keep every write.
  c->kill(leader);
  std::printf("killed leader %llu\n", static_cast<unsigned long long>(leader));
  uint64_t next = c->leader();
  CHECK(next != 0 && next != leader);
  for (int i = 27; i < 35; i++) c->put("key" + std::to_string(i), "value" + std::to_string(i));
  c->check_all(leader, 35);

  for (uint64_t id = 1; id <= kMax; id++) {
    bool alive;
    {
      std::lock_guard<std::mutex> g(c->mu);
      alive = static_cast<bool>(c->nodes[id]);
    }
    if (alive) c->kill(id);
  }
  CHECK(raft::try_clear_log_callback().ok());
  CHECK(log_records.load() > 0);
  std::printf("kv_inproc (C++): ok (leaders %llu then %llu, %lu log records)\n",
              static_cast<unsigned long long>(leader), static_cast<unsigned long long>(next),
              log_records.load());
  return 0;
}

// raft.hpp compiled alone (C++17, C++20, and C++17 with -fno-exceptions; see
// examples/CMakeLists.txt) and exercised on one node: status mapping (including codes this
// header does not know), Result, the deferred builder error, every kind of proposal, a
// state machine that fails, and moved-from owners.
#include "raft.hpp"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>
#include <thread>

#define CHECK(expr)                                                                \
  do {                                                                             \
    if (!(expr)) {                                                                 \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #expr); \
      std::exit(1);                                                                \
    }                                                                              \
  } while (0)

using namespace std::chrono_literals;

static int scale() {
  const char *s = std::getenv("RAFT_EXAMPLE_SLOW");
  return s && std::atoi(s) > 0 ? std::atoi(s) : 1;
}

static void statuses() {
  raft::Status ok;
  CHECK(ok.ok() && ok.family() == raft::Family::Ok && !ok.retryable());
  raft::Status busy(raft::Code::Busy);
  CHECK(!busy.ok() && busy.retryable() && busy.is(raft::Code::Busy));
  CHECK(std::string(busy.name()) == raft_status_str(RAFT_STATUS_BUSY));
  // Codes added to the C ABI later keep their value and family.
  raft::Status future_caller(150u), future_cluster(250u), unknown(12345u);
  CHECK(future_caller.raw() == 150 && future_caller.family() == raft::Family::Caller);
  CHECK(future_cluster.retryable() && !future_caller.retryable());
  CHECK(unknown.family() == raft::Family::Other && std::string(unknown.name()) == "unknown status");
  CHECK(unknown.to_string().find("12345") != std::string::npos);

  raft::Result<int> r(7);
  CHECK(r.ok() && *r == 7);
  raft::Result<int> bad(raft::Status(raft::Code::Timeout, "slow"));
  CHECK(!bad.ok() && bad.status().is(raft::Code::Timeout) && bad.status().message() == "slow");
  CHECK(std::move(bad).value_or(3) == 3);
  raft::Result<int> not_really(raft::Status{});  // an ok status without a value is an error
  CHECK(!not_really.ok());
#if RAFT_HPP_EXCEPTIONS
  bool thrown = false;
  try {
    raft::Result<int> b2(raft::Status(raft::Code::Dropped));
    (void)b2.value();
  } catch (const raft::Error &e) {
    thrown = e.code() == raft::Code::Dropped && std::string(e.what()).find("(203)") != std::string::npos;
  }
  CHECK(thrown);
#endif

  raft::Bytes b("abc");
  CHECK(b.size() == 3 && b.str() == "abc");
  std::vector<uint8_t> v{1, 2, 3, 4};
  raft::Bytes bv(v);
  CHECK(bv.size() == 4 && bv[3] == 4);
  raft::Result<raft::Buffer> copy = raft::Buffer::copy_of(bv);
  CHECK(copy.ok() && copy->size() == 4 && copy->view()[0] == 1);
  raft::Buffer moved = std::move(*copy);
  CHECK(moved.size() == 4 && copy->empty());
}

static void builder_errors() {
  // No id, no voters: refused at build with the library's detail.
  raft::Result<raft::Config> c = raft::ConfigBuilder().on_apply([](uint64_t, raft::Bytes, raft::Response &) {}).try_build();
  CHECK(!c.ok() && c.status().is(raft::Code::InvalidArgument) && !c.status().message().empty());
  // The first failing setter is kept; later setters do not hide it.
  raft::ConfigBuilder b;
  b.id(0).voter(1).election_timeout(std::chrono::hours(2000)).heartbeat(10ms);
  CHECK(b.status().is(raft::Code::InvalidArgument));
  raft::Result<raft::Config> c2 = b.try_build();
  CHECK(!c2.ok());
  raft::Result<raft::Config> again = b.try_build();  // consumed
  CHECK(!again.ok() && again.status().is(raft::Code::InvalidHandle));
  CHECK(raft::ConfigBuilder().max_command_bytes(0).status().is(raft::Code::InvalidArgument));
}

static void one_node() {
  std::atomic<uint64_t> applied{0};
  std::atomic<int> leader_seen{0};
  raft::Result<raft::Config> cfg =
      raft::ConfigBuilder()
          .id(1)
          .voter(1)
          .election_timeout(150ms * scale())
          .heartbeat(30ms * scale())
          .on_send([](uint64_t, raft::Bytes) {})
          .on_role_change([&](raft::Role r, uint64_t, uint64_t) {
            if (r == raft::Role::Leader) leader_seen++;
          })
          .on_apply([&](uint64_t index, raft::Bytes cmd, raft::Response &out) -> raft::Status {
            if (cmd.str() == "boom") {
#if RAFT_HPP_EXCEPTIONS
              throw std::runtime_error("the state machine refuses");
#else
              return raft::Status(raft::Code::Failed);
#endif
            }
            applied = index;
            return out.set(std::string("ok:") + cmd.to_string());
          })
          .try_build();
  CHECK(cfg.ok());
  raft::Result<raft::Node> started = raft::Node::try_start(*cfg);
  CHECK(started.ok());
  raft::Node node = std::move(*started);

  raft::Result<raft::Buffer> r = raft::Status(raft::Code::NotLeader);
  for (int i = 0; i < 500 && !r.ok(); i++) {
    r = node.try_propose("hello", 2s * scale());
    if (!r.ok() && !r.status().retryable()) break;
    if (!r.ok()) std::this_thread::sleep_for(10ms);
  }
  CHECK(r.ok() && r->str() == "ok:hello");
  CHECK(leader_seen.load() >= 1);

  std::future<raft::Result<raft::Buffer>> f = node.try_propose_future(std::string("fut"));
  CHECK(f.wait_for(10s * scale()) == std::future_status::ready);
  raft::Result<raft::Buffer> fr = f.get();
  CHECK(fr.ok() && fr->str() == "ok:fut");

  std::promise<std::string> p;
  CHECK(node.propose_async("cb", [&p](raft::Status s, raft::Bytes resp) {
              p.set_value(s.ok() ? resp.to_string() : std::string("error ") + s.name());
            }).ok());
  CHECK(p.get_future().get() == "ok:cb");

  raft::Result<raft::Buffer> s1 = node.try_propose_session(9, 1, "sess");
  raft::Result<raft::Buffer> s1again = node.try_propose_session(9, 1, "sess");
  CHECK(s1.ok() && s1again.ok() && s1again->str() == "ok:sess");
  CHECK(!node.try_propose_session(9, 0, "old").ok());

  raft::Result<uint64_t> ri = node.try_read_index();
  CHECK(ri.ok() && *ri >= applied.load());
  raft::Result<raft::NodeStatus> st = node.try_status();
  CHECK(st.ok() && st->role == raft::Role::Leader && st->id == 1 && st->voters.size() == 1);
  raft::Result<std::vector<uint64_t>> voters = node.try_voters();
  CHECK(voters.ok() && voters->size() == 1 && (*voters)[0] == 1);
  raft::Result<std::vector<uint64_t>> learners = node.try_learners();
  CHECK(learners.ok() && learners->empty());
  raft::Result<std::vector<raft::PeerProgress>> prog = node.try_peer_progress();
  CHECK(prog.ok() && prog->size() == 1);
  raft::Result<uint64_t> conf = node.try_conf_id();
  CHECK(conf.ok() && *conf == 0);
  // Not a member: refused before anything is proposed.
  CHECK(node.try_change_membership({}, {}).status().is(raft::Code::InvalidArgument));
  CHECK(!node.try_persisted(1).ok());  // no storage callbacks

  // A state machine that fails (throws, or returns a failed status) stops the node.
  raft::Result<raft::Buffer> boom = node.try_propose("boom", 5s * scale());
  CHECK(!boom.ok());
  CHECK(node.try_propose("after", 1s).status().family() == raft::Family::Lifecycle);

  raft::Node moved = std::move(node);
  CHECK(!node && moved);
  CHECK(!node.try_step("x").ok());  // empty owner: a clear error, no crash
  CHECK(moved.try_shutdown().ok() && moved.try_shutdown().ok());
  CHECK(moved.try_close().ok() && !moved);
}

#if RAFT_HPP_EXCEPTIONS
// Owners unwound by an exception release everything (checked by the ASan/LSan and valgrind
// runs of this test): a builder holding callables, a config, a running node.
static void no_leaks_on_exceptions() {
  auto big = std::make_shared<std::vector<uint8_t>>(1 << 20);  // owned by the callables
  for (int stage = 0; stage < 3; stage++) {
    bool caught = false;
    try {
      raft::ConfigBuilder b;
      b.id(1).voter(1).on_send([big](uint64_t, raft::Bytes) {}).on_apply(
          [big](uint64_t, raft::Bytes, raft::Response &) {});
      if (stage == 0) throw std::runtime_error("before build");
      raft::Config c = b.build();
      if (stage == 1) throw std::runtime_error("before start");
      raft::Node n = raft::Node::start(c);
      throw std::runtime_error("while running");
    } catch (const std::runtime_error &) {
      caught = true;
    }
    CHECK(caught);
    CHECK(big.use_count() == 1);  // every copy held by the library was destroyed
  }
}
#endif

int main() {
  statuses();
#if RAFT_HPP_EXCEPTIONS
  no_leaks_on_exceptions();
#endif
  builder_errors();
  one_node();
#if RAFT_HPP_EXCEPTIONS
  std::printf("header_test (C++%ld, exceptions): ok\n", static_cast<long>(__cplusplus / 100 % 100));
#else
  std::printf("header_test (C++%ld, no exceptions): ok\n", static_cast<long>(__cplusplus / 100 % 100));
#endif
  return 0;
}

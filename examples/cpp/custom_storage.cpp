// Bring your own store, through raft.hpp: the node's log, hard state and snapshots live in
// a C++-side "durable store" (std containers here). The persist callables only queue the
// write; a completion thread applies it to the store and then reports it with
// Node::persisted. The node is then closed and restarted from the store alone (the
// ConfigBuilder::load_* calls), and the state machine must come back.
#include <condition_variable>
#include <cstring>
#include <deque>
#include <optional>
#include <vector>

#include "util.hpp"

using namespace std::chrono_literals;

namespace {

struct StoredEntry {
  uint64_t term, index;
  uint8_t kind;
  std::vector<uint8_t> data;
};

struct Durable {
  std::optional<raft::HardState> hs;
  std::vector<StoredEntry> log;
  std::vector<uint8_t> snap_meta, snap_data;
  uint64_t snap_index = 0;
};

struct Job {
  uint64_t token = 0;
  bool snapshot = false;
  std::optional<raft::HardState> hs;
  uint64_t replace_from = 0;
  std::vector<StoredEntry> entries;
  uint64_t snap_index = 0;
  std::vector<uint8_t> meta, data;
  bool keep_log = false;
};

void put_u64(uint8_t *p, uint64_t v) { std::memcpy(p, &v, 8); }
uint64_t get_u64(const uint8_t *p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

class App {
 public:
  App() : completer_([this] { complete_loop(); }) {}
  ~App() {
    {
      std::lock_guard<std::mutex> g(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    completer_.join();
  }

  raft::Config config() {
    raft::ConfigBuilder b;
    b.id(1)
        .voter(1)
        .election_timeout(150ms * ex::scale())
        .heartbeat(30ms * ex::scale())
        .snapshot_entries(10)
        .on_send([](uint64_t, raft::Bytes) {})
        .on_apply([this](uint64_t, raft::Bytes cmd, raft::Response &) {
          if (cmd.size() != 8) return false;
          std::lock_guard<std::mutex> g(mu_);
          count_++, sum_ += get_u64(cmd.data());
          return true;
        })
        .on_snapshot(
            [this](raft::SnapshotWriter &w) {
              uint8_t b[16];
              {
                std::lock_guard<std::mutex> g(mu_);
                put_u64(b, count_), put_u64(b + 8, sum_);
              }
              return w.write(raft::Bytes(b, sizeof b));
            },
            [this](raft::SnapshotReader &r) {
              raft::Result<std::vector<uint8_t>> all = r.read_all();
              if (!all.ok() || all->size() != 16) return false;
              std::lock_guard<std::mutex> g(mu_);
              count_ = get_u64(all->data()), sum_ = get_u64(all->data() + 8);
              return true;
            })
        .on_storage(
            [this](uint64_t token, const raft::HardState *hs, uint64_t replace_from,
                   const raft::Entries &entries) {
              Job j;
              j.token = token;
              if (hs) j.hs = *hs;
              j.replace_from = replace_from;
              for (raft::Entry e : entries)  // borrowed: copy
                j.entries.push_back({e.term, e.index, e.kind, e.data.to_vector()});
              enqueue(std::move(j));
            },
            [this](uint64_t token, const raft::SnapshotToPersist &s) {
              Job j;
              j.token = token, j.snapshot = true, j.snap_index = s.index, j.keep_log = s.keep_log;
              j.meta = s.meta.to_vector(), j.data = s.data.to_vector();
              enqueue(std::move(j));
            });
    std::lock_guard<std::mutex> g(mu_);
    if (!store_.snap_meta.empty()) b.load_snapshot(store_.snap_meta, store_.snap_data);
    for (const StoredEntry &e : store_.log) b.load_entry({e.term, e.index, e.kind, e.data});
    if (store_.hs) b.load_hard_state(*store_.hs);
    return b.build();
  }

  void start() {
    raft::Node n = raft::Node::start(config());
    std::lock_guard<std::mutex> g(mu_);
    node_ = std::move(n);
    cv_.notify_all();
  }

  // Lets the completer finish what it holds, then closes the node; writes queued while
  // shutting down were abandoned by the node and are dropped.
  void stop() {
    raft::Node n;
    {
      std::unique_lock<std::mutex> g(mu_);
      cv_.wait(g, [&] { return queue_.empty() && !busy_; });
      n = std::move(node_);
    }
    n.close();
    std::lock_guard<std::mutex> g(mu_);
    queue_.clear();
  }

  void propose(uint64_t from, uint64_t to) {
    for (uint64_t v = from; v < to; v++) {
      uint8_t cmd[8];
      put_u64(cmd, v);
      raft::Result<raft::Buffer> r = raft::Status(raft::Code::NotLeader);
      for (int tries = 0; tries < 500 && !r.ok(); tries++) {
        r = node().try_propose(raft::Bytes(cmd, sizeof cmd), 5s * ex::scale());
        if (!r.ok() && !r.status().is(raft::Code::NotLeader)) break;
        if (!r.ok()) std::this_thread::sleep_for(10ms);
      }
      CHECK(r.ok());
    }
  }

  std::pair<uint64_t, uint64_t> state() {
    std::lock_guard<std::mutex> g(mu_);
    return {count_, sum_};
  }
  void reset_state() {
    std::lock_guard<std::mutex> g(mu_);
    count_ = sum_ = 0;
  }
  Durable store() {
    std::lock_guard<std::mutex> g(mu_);
    return store_;
  }
  unsigned long completed() {
    std::lock_guard<std::mutex> g(mu_);
    return completed_;
  }
  const raft::Node &node() { return node_; }  // only main starts and stops it

 private:
  void enqueue(Job j) {
    std::lock_guard<std::mutex> g(mu_);
    queue_.push_back(std::move(j));
    cv_.notify_all();
  }

  void apply_job(Job &j) {
    Durable &d = store_;
    if (j.snapshot) {
      if (j.keep_log) {
        while (!d.log.empty() && d.log.front().index <= j.snap_index) d.log.erase(d.log.begin());
      } else {
        d.log.clear();
      }
      d.snap_meta = std::move(j.meta), d.snap_data = std::move(j.data);
      d.snap_index = j.snap_index;
      return;
    }
    if (j.replace_from != 0)
      while (!d.log.empty() && d.log.back().index >= j.replace_from) d.log.pop_back();
    for (StoredEntry &e : j.entries) {
      if (!d.log.empty()) CHECK(d.log.back().index + 1 == e.index);
      d.log.push_back(std::move(e));
    }
    if (j.hs) d.hs = j.hs;
  }

  void complete_loop() {
    std::unique_lock<std::mutex> g(mu_);
    for (;;) {
      cv_.wait(g, [&] { return stop_ || (!queue_.empty() && node_); });
      if (stop_) return;
      Job j = std::move(queue_.front());
      queue_.pop_front();
      busy_ = true;
      g.unlock();
      std::this_thread::sleep_for(1ms);  // "the disk is slow"
      g.lock();
      apply_job(j);  // durable from here on
      const raft::Node &n = node_;
      g.unlock();
      n.persisted(j.token);  // only now may the node rely on the write
      g.lock();
      completed_++;
      busy_ = false;
      cv_.notify_all();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  Durable store_;
  std::deque<Job> queue_;
  bool busy_ = false, stop_ = false;
  raft::Node node_;
  unsigned long completed_ = 0;
  uint64_t count_ = 0, sum_ = 0;
  std::thread completer_;  // last: started once everything else is constructed
};

}  // namespace

int main() {
  // A gap in the loaded log is refused at load time, with the library's detail.
  raft::ConfigBuilder gap;
  gap.load_entry({1, 1, 0, {}}).load_entry({1, 3, 0, {}});
  CHECK(gap.status().is(raft::Code::InvalidArgument) && !gap.status().message().empty());

  App app;
  app.start();
  app.propose(1, 26);
  CHECK(ex::wait_for([&] { return app.state().first >= 25; }, 10s));
  app.stop();
  auto [count, sum] = app.state();
  CHECK(count == 25 && sum == 25 * 26 / 2);
  Durable d = app.store();
  CHECK(app.completed() > 0 && d.hs && d.hs->term > 0);
  CHECK(!d.snap_meta.empty() && d.snap_index >= 10);
  std::printf("first run: snapshot at %llu, %zu entries after it, term %llu\n",
              static_cast<unsigned long long>(d.snap_index), d.log.size(),
              static_cast<unsigned long long>(d.hs->term));

  // Restart from the C++-held store only: the state machine starts empty.
  app.reset_state();
  app.start();
  CHECK(ex::wait_for([&] { return app.state().first >= 25; }, 10s));
  CHECK(app.state().second == sum);
  app.propose(26, 31);
  CHECK(ex::wait_for([&] { return app.state().first >= 30; }, 10s));
  CHECK(app.node().status().applied >= 30);
  app.stop();
  CHECK(app.state().first == 30 && app.state().second == 30 * 31 / 2);
  std::printf("custom_storage (C++): ok (restart recovered 25 values, 30 in the end)\n");
  return 0;
}

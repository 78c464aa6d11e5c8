// W1 through raft.hpp: the C++ twin of bench/c/w1_capi.c (same cluster, same closed loop),
// so the two figures side by side show what the C++ layer costs.
//
// 3 nodes in one process, memory storage, the send callable hands the encoded bytes to the
// target's Node::step, 64-byte commands; W proposals in flight on the leader
// (Node::propose_async with a completion lambda + a POSIX semaphore of W permits);
// committed-and-applied ops/s and commit latency percentiles per W.
//
//   w1-cpp [--secs 4] [--warmup 1] [--size 64] [--windows 1,16,64,256] [--caller-runs 0|1]
//
// Output: a table plus BENCH name=w1.cpp[.caller_runs].c{W}.{ops,p50,p99,p999} lines.
// Build: bench/cpp/build.sh (produces target/release/w1-cpp).
#include <semaphore.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <sched.h>
#include <string>
#include <thread>
#include <vector>

#include "raft.hpp"

namespace {

using Clock = std::chrono::steady_clock;
constexpr uint64_t kN = 3;

[[noreturn]] void die(const std::string &what) {
  std::fprintf(stderr, "w1-cpp: %s\n", what.c_str());
  std::exit(1);
}

uint64_t now_ns() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count());
}

// Counting state machine touched only by its node's apply thread.
struct Member {
  uint64_t applied = 0, sum = 0;
  raft::Node node;
};

std::array<Member, kN + 1> members;
std::array<std::atomic<const raft::Node *>, kN + 1> published{};
std::atomic<uint64_t> refused{0};

sem_t permits;
std::atomic<bool> measuring{false};
std::mutex st_mu;
struct {
  std::vector<uint64_t> lat;
  uint64_t ops = 0, errors = 0;
  uint32_t first_error = 0;
} st;

void record(const raft::Status &s, uint64_t ns) {
  std::lock_guard<std::mutex> g(st_mu);
  if (s.ok()) {
    st.lat.push_back(ns);
    st.ops++;
  } else {
    st.errors++;
    if (st.first_error == 0) st.first_error = s.raw();
  }
}

// Like the C harness: spin a little before sleeping in the kernel.
bool sem_wait_for(uint64_t rel_ns) {
  for (int i = 0; i < 16; i++) {
    if (sem_trywait(&permits) == 0) return true;
    sched_yield();
  }
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  uint64_t ns = static_cast<uint64_t>(ts.tv_nsec) + rel_ns % 1000000000ull;
  ts.tv_sec += static_cast<time_t>(rel_ns / 1000000000ull + ns / 1000000000ull);
  ts.tv_nsec = static_cast<long>(ns % 1000000000ull);
  for (;;) {
    if (sem_timedwait(&permits, &ts) == 0) return true;
    if (errno == EINTR) continue;
    if (errno == ETIMEDOUT) return false;
    die("sem_timedwait failed");
  }
}

double pct_us(const std::vector<uint64_t> &sorted, double q) {
  if (sorted.empty()) return NAN;
  size_t i = static_cast<size_t>(q * static_cast<double>(sorted.size() - 1));
  return static_cast<double>(sorted[std::min(i, sorted.size() - 1)]) / 1000.0;
}

struct Row {
  unsigned window;
  double ops, p50, p99, p999;
  uint64_t errors;
};

Row run_window(const raft::Node &leader, unsigned window, size_t size, double warmup, double secs) {
  {
    std::lock_guard<std::mutex> g(st_mu);
    st.lat.clear();
    st.ops = st.errors = 0;
    st.first_error = 0;
  }
  measuring = false;
  for (unsigned i = 0; i < window; i++) sem_post(&permits);
  std::vector<uint8_t> cmd(size ? size : 1, 0);
  uint64_t seq = 0;
  const uint64_t start = now_ns();
  const uint64_t m_begin = start + static_cast<uint64_t>(warmup * 1e9);
  const uint64_t end = m_begin + static_cast<uint64_t>(secs * 1e9);
  uint64_t m_start = start;
  bool started = false;
  for (;;) {
    uint64_t now = now_ns();
    if (!started && now >= m_begin) {
      started = true;
      m_start = now;
      measuring.store(true, std::memory_order_release);
    }
    if (now >= end) break;
    if (!sem_wait_for(100000000ull)) continue;
    seq++;
    std::memcpy(cmd.data(), &seq, std::min(size, sizeof seq));
    uint64_t t0 = now_ns();
    raft::Result<void> r = leader.propose_async(raft::Bytes(cmd.data(), size), [t0](raft::Status s, raft::Bytes) {
      uint64_t ns = now_ns() - t0;
      if (measuring.load(std::memory_order_acquire)) record(s, ns);
      sem_post(&permits);
    });
    if (r.ok()) continue;
    if (!r.status().retryable()) die("propose_async: " + r.status().to_string());
    if (measuring.load(std::memory_order_acquire)) record(r.status(), 0);
    sem_post(&permits);
  }
  const double m_secs = static_cast<double>(now_ns() - m_start) / 1e9;
  measuring.store(false, std::memory_order_release);
  const uint64_t drain_end = now_ns() + 10000000000ull;
  for (unsigned back = 0; back < window; back++) {
    uint64_t now = now_ns();
    if (now >= drain_end || !sem_wait_for(drain_end - now))
      die("window " + std::to_string(window) + ": proposals still in flight after 10 s");
  }
  std::lock_guard<std::mutex> g(st_mu);
  std::sort(st.lat.begin(), st.lat.end());
  if (st.errors)
    std::fprintf(stderr, "w1-cpp: window %u: %llu errors, first: %s\n", window,
                 static_cast<unsigned long long>(st.errors), raft_status_str(st.first_error));
  return Row{window, static_cast<double>(st.ops) / m_secs, pct_us(st.lat, 0.5), pct_us(st.lat, 0.99),
             pct_us(st.lat, 0.999), st.errors};
}

double parse_num(const char *flag, const char *v, double max) {
  char *e;
  errno = 0;
  double d = std::strtod(v, &e);
  if (errno || e == v || *e || !(d >= 0) || d > max) die(std::string(flag) + ": bad number " + v);
  return d;
}

std::vector<unsigned> parse_windows(const std::string &v) {
  std::vector<unsigned> out;
  size_t pos = 0;
  while (pos <= v.size()) {
    size_t comma = v.find(',', pos);
    std::string part = v.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    double w = parse_num("--windows", part.c_str(), 65536);
    if (w < 1 || w != std::floor(w) || out.size() == 32) die("--windows: bad list " + v);
    out.push_back(static_cast<unsigned>(w));
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  return out;
}

}  // namespace

int main(int argc, char **argv) {
  double secs = 4, warmup = 1;
  size_t size = 64;
  bool caller_runs = false;
  std::vector<unsigned> windows{1, 16, 64, 256};
  for (int i = 1; i < argc; i++) {
    std::string k = argv[i];
    const char *v = i + 1 < argc && std::strncmp(argv[i + 1], "--", 2) != 0 ? argv[++i] : "1";
    if (k == "--secs") secs = parse_num("--secs", v, 1e6);
    else if (k == "--warmup") warmup = parse_num("--warmup", v, 1e6);
    else if (k == "--size") size = static_cast<size_t>(parse_num("--size", v, 1 << 20));
    else if (k == "--windows") windows = parse_windows(v);
    else if (k == "--caller-runs") caller_runs = parse_num("--caller-runs", v, 1) != 0;
    else die("unknown argument " + k + " (usage: w1-cpp [--secs 4] [--warmup 1] [--size 64] "
             "[--windows 1,16,64,256] [--caller-runs 0|1])");
  }
  if (secs <= 0) die("--secs must be > 0");
  if (sem_init(&permits, 0, 0) != 0) die("sem_init failed");

  using namespace std::chrono_literals;
  for (uint64_t id = 1; id <= kN; id++) {
    Member *m = &members[id];
    raft::Result<raft::Config> cfg =
        raft::ConfigBuilder()
            .id(id)
            .voters({1, 2, 3})
            .election_timeout(1000ms)
            .heartbeat(100ms)
            .caller_runs(caller_runs)
            .snapshot_entries(100000)
            .on_send([](uint64_t to, raft::Bytes msg) {
              const raft::Node *n = to >= 1 && to <= kN ? published[to].load(std::memory_order_acquire) : nullptr;
              if (n && !n->try_step(msg).ok()) refused.fetch_add(1, std::memory_order_relaxed);
            })
            .on_apply([m](uint64_t, raft::Bytes cmd, raft::Response &) {
              m->sum += cmd.empty() ? 0 : cmd[0];
              m->applied++;
            })
            .on_snapshot(
                [m](raft::SnapshotWriter &w) {
                  uint64_t s[2] = {m->applied, m->sum};
                  return w.write(raft::Bytes(s, sizeof s));
                },
                [m](raft::SnapshotReader &r) {
                  uint64_t s[2] = {0, 0};
                  raft::Result<size_t> n = r.read(reinterpret_cast<uint8_t *>(s), sizeof s);
                  if (!n.ok() || (*n != 0 && *n != sizeof s)) return false;
                  m->applied = s[0], m->sum = s[1];
                  return true;
                })
            .try_build();
    if (!cfg.ok()) die("build: " + cfg.status().to_string());
    raft::Result<raft::Node> n = raft::Node::try_start(*cfg);
    if (!n.ok()) die("start: " + n.status().to_string());
    members[id].node = std::move(*n);
    published[id].store(&members[id].node, std::memory_order_release);
  }

  const raft::Node *leader = nullptr;
  uint64_t leader_id = 0;
  for (auto deadline = Clock::now() + 10s; !leader && Clock::now() < deadline;) {
    for (uint64_t id = 1; id <= kN && !leader; id++) {
      raft::Result<raft::NodeStatus> s = members[id].node.try_status();
      if (s.ok() && s->role == raft::Role::Leader) leader = &members[id].node, leader_id = id;
    }
    if (!leader) std::this_thread::sleep_for(5ms);
  }
  if (!leader) die("no leader after 10 s");
  std::fprintf(stderr, "w1-cpp: library %s, leader %llu, caller_runs %d\n", raft::version(),
               static_cast<unsigned long long>(leader_id), static_cast<int>(caller_runs));

  const char *prefix = caller_runs ? "w1.cpp.caller_runs" : "w1.cpp";
  std::vector<Row> rows;
  for (unsigned w : windows) {
    Row r = run_window(*leader, w, size, warmup, secs);
    std::printf("BENCH name=%s.c%u.ops value=%.3f unit=ops/s\n", prefix, w, r.ops);
    std::printf("BENCH name=%s.c%u.p50 value=%.3f unit=us\n", prefix, w, r.p50);
    std::printf("BENCH name=%s.c%u.p99 value=%.3f unit=us\n", prefix, w, r.p99);
    std::printf("BENCH name=%s.c%u.p999 value=%.3f unit=us\n", prefix, w, r.p999);
    std::fflush(stdout);
    rows.push_back(r);
  }
  std::printf("\nW1 (C++ raft.hpp, %s): 3 nodes in-process, memory storage, %zu-byte commands, %g s per row\n",
              caller_runs ? "caller-runs" : "default", size, secs);
  std::printf("| in flight | ops/s | p50 us | p99 us | p999 us | errors |\n|---:|---:|---:|---:|---:|---:|\n");
  for (const Row &r : rows)
    std::printf("| %u | %.0f | %.1f | %.1f | %.1f | %llu |\n", r.window, r.ops, r.p50, r.p99, r.p999,
                static_cast<unsigned long long>(r.errors));
  std::fflush(stdout);

  // Stop every node first (no callback runs afterwards), then unpublish and free.
  for (uint64_t id = 1; id <= kN; id++)
    if (!members[id].node.try_shutdown().ok()) die("shutdown failed");
  for (uint64_t id = 1; id <= kN; id++) published[id].store(nullptr);
  for (uint64_t id = 1; id <= kN; id++)
    if (!members[id].node.try_close().ok()) die("close failed");
  std::fprintf(stderr, "w1-cpp: applied per node: %llu %llu %llu; %llu messages refused\n",
               static_cast<unsigned long long>(members[1].applied),
               static_cast<unsigned long long>(members[2].applied),
               static_cast<unsigned long long>(members[3].applied),
               static_cast<unsigned long long>(refused.load()));
  sem_destroy(&permits);
  return 0;
}

// Small helpers shared by the C++ examples (not part of the library API).
#ifndef RAFT_EXAMPLE_UTIL_HPP
#define RAFT_EXAMPLE_UTIL_HPP

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <thread>

#include "raft.hpp"

#define CHECK(expr)                                                                \
  do {                                                                             \
    if (!(expr)) {                                                                 \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #expr); \
      std::exit(1);                                                                \
    }                                                                              \
  } while (0)

namespace ex {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

/// Slow-down factor for timing (RAFT_EXAMPLE_SLOW, e.g. 4 under valgrind).
inline int scale() {
  const char *s = std::getenv("RAFT_EXAMPLE_SLOW");
  int v = s ? std::atoi(s) : 1;
  return v > 0 ? v : 1;
}

/// Waits until `pred()` holds, polling every 10 ms, for at most `timeout` (scaled).
template <class P>
bool wait_for(P pred, std::chrono::milliseconds timeout) {
  auto end = Clock::now() + timeout * scale();
  while (Clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return pred();
}

/// A tiny replicated key-value store: commands are "key=value".
class Kv {
 public:
  /// Applies a command; a command without '=' is ignored.
  void apply(raft::Bytes cmd) {
    std::string_view s = cmd.str();
    auto eq = s.find('=');
    if (eq == std::string_view::npos) return;
    std::lock_guard<std::mutex> g(mu_);
    map_[std::string(s.substr(0, eq))] = std::string(s.substr(eq + 1));
  }
  /// The value of `key` ("" if absent).
  std::string get(const std::string &key) const {
    std::lock_guard<std::mutex> g(mu_);
    auto it = map_.find(key);
    return it == map_.end() ? std::string() : it->second;
  }
  /// Forgets everything.
  void clear() {
    std::lock_guard<std::mutex> g(mu_);
    map_.clear();
  }
  /// Number of keys.
  size_t size() const {
    std::lock_guard<std::mutex> g(mu_);
    return map_.size();
  }

 private:
  mutable std::mutex mu_;
  std::map<std::string, std::string> map_;
};

}  // namespace ex

#endif

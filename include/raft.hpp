// raft.hpp: header-only C++17 interface of raft-manager over its C ABI (raft.h).
//
// * RAII, move-only owners: ConfigBuilder, Config, Node, Buffer.
// * Errors: raft::Status (mapped from raft_status; unknown future codes keep their value and
//   family), thrown as raft::Error by the throwing calls, or returned in a raft::Result<T>
//   by the `try_*` calls (which never throw, for code built with -fno-exceptions: then only
//   the `try_*` calls exist).
// * Callbacks are any callables (lambdas, std::function, function objects). They run on the
//   node's engine threads (see raft.h); an exception escaping one is caught at the boundary
//   (an apply, snapshot or restore callback then fails the node, as a non-zero return does
//   in C; a send or role-change callback's exception is dropped).
// * Timeouts are std::chrono durations; byte inputs are raft::Bytes views (from
//   std::string, std::string_view, std::vector<uint8_t>, arrays, pointer + size).
// * Asynchronous proposals: a completion callable or a std::future.
//
// See docs/CPP.md. Link with -lraft (CMake: target raft::raftxx).
#ifndef RAFT_HPP
#define RAFT_HPP

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <future>
#include <iterator>
#include <limits>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "raft.h"

#if defined(__cpp_exceptions) || defined(__EXCEPTIONS) || defined(_CPPUNWIND)
#define RAFT_HPP_EXCEPTIONS 1
#include <stdexcept>
#else
#define RAFT_HPP_EXCEPTIONS 0
#endif

namespace raft {

/// Library version loaded at run time (compare with RAFT_VERSION_STRING).
inline const char *version() noexcept { return raft_version(); }

/// Named raft_status values. Any other uint32_t value may appear from a newer library:
/// Status keeps it and classifies it by its family (hundreds).
enum class Code : uint32_t {
  Ok = RAFT_STATUS_OK,
  NullArgument = RAFT_STATUS_NULL_ARGUMENT,
  InvalidArgument = RAFT_STATUS_INVALID_ARGUMENT,
  InvalidHandle = RAFT_STATUS_INVALID_HANDLE,
  BufferTooSmall = RAFT_STATUS_BUFFER_TOO_SMALL,
  WouldDeadlock = RAFT_STATUS_WOULD_DEADLOCK,
  TooLarge = RAFT_STATUS_TOO_LARGE,
  NotLeader = RAFT_STATUS_NOT_LEADER,
  Busy = RAFT_STATUS_BUSY,
  Timeout = RAFT_STATUS_TIMEOUT,
  Dropped = RAFT_STATUS_DROPPED,
  ShutDown = RAFT_STATUS_SHUT_DOWN,
  Failed = RAFT_STATUS_FAILED,
  Storage = RAFT_STATUS_STORAGE,
  Panic = RAFT_STATUS_PANIC,
};

/// Family of a status code (its hundreds), stable for codes added later.
enum class Family { Ok, Caller, Cluster, Lifecycle, Internal, Other };

/// A node's role.
enum class Role : uint32_t {
  Follower = RAFT_ROLE_FOLLOWER,
  PreCandidate = RAFT_ROLE_PRE_CANDIDATE,
  Candidate = RAFT_ROLE_CANDIDATE,
  Leader = RAFT_ROLE_LEADER,
};

/// Log levels, most severe first.
enum class LogLevel : uint32_t {
  Off = RAFT_LOG_LEVEL_OFF,
  Error = RAFT_LOG_LEVEL_ERROR,
  Warn = RAFT_LOG_LEVEL_WARN,
  Info = RAFT_LOG_LEVEL_INFO,
  Debug = RAFT_LOG_LEVEL_DEBUG,
  Trace = RAFT_LOG_LEVEL_TRACE,
};

/// Outcome of a call: a raft_status value, the calling thread's error detail captured when
/// it failed, and for NotLeader the leader this node knew of (0 when unknown).
class Status {
 public:
  /// Success.
  Status() noexcept = default;
  /// A status with code `code` (any value, known or not) and an optional detail.
  explicit Status(uint32_t code, std::string message = {}, uint64_t leader = 0)
      : code_(code), message_(std::move(message)), leader_(leader) {}
  /// A status with a named code.
  explicit Status(Code code, std::string message = {}, uint64_t leader = 0)
      : Status(static_cast<uint32_t>(code), std::move(message), leader) {}

  /// Maps the return value of a C call made on this thread, capturing
  /// raft_last_error_message when it failed.
  static Status from_call(uint32_t s) {
    if (s == RAFT_STATUS_OK) return Status();
    size_t len = 0;
    char small[256];
    std::string msg;
    if (raft_last_error_message(small, sizeof small, &len) == RAFT_STATUS_OK) {
      if (len < sizeof small) {
        msg.assign(small, len);
      } else {
        msg.resize(len + 1);
        if (raft_last_error_message(&msg[0], msg.size(), &len) == RAFT_STATUS_OK)
          msg.resize(len < msg.size() ? len : msg.size() - 1);
        else
          msg.clear();
      }
    }
    return Status(s, std::move(msg));
  }

  /// True on success.
  bool ok() const noexcept { return code_ == RAFT_STATUS_OK; }
  /// True on success.
  explicit operator bool() const noexcept { return ok(); }
  /// The raw raft_status value.
  uint32_t raw() const noexcept { return code_; }
  /// The code (may hold a value that is not a named enumerator).
  Code code() const noexcept { return static_cast<Code>(code_); }
  /// True when the code is `c`.
  bool is(Code c) const noexcept { return code() == c; }
  /// Family of the code, by hundreds (so codes added later are classified too).
  Family family() const noexcept {
    switch (code_ / 100) {
      case 0: return code_ == 0 ? Family::Ok : Family::Other;
      case 1: return Family::Caller;
      case 2: return Family::Cluster;
      case 3: return Family::Lifecycle;
      case 9: return Family::Internal;
      default: return Family::Other;
    }
  }
  /// True for the cluster-state family (not leader, busy, timeout, dropped, ...): the same
  /// call may succeed later or elsewhere.
  bool retryable() const noexcept { return family() == Family::Cluster; }
  /// Static name of the code ("unknown status" for values this library does not know).
  const char *name() const noexcept { return raft_status_str(code_); }
  /// Error detail captured from raft_last_error_message (may be empty).
  const std::string &message() const noexcept { return message_; }
  /// For NotLeader: the leader known to this node when the call failed (0 if unknown).
  uint64_t leader() const noexcept { return leader_; }
  /// "name (code): message".
  std::string to_string() const {
    std::string s = name();
    s += " (" + std::to_string(code_) + ")";
    if (!message_.empty()) s += ": " + message_;
    if (leader_ != 0) s += " [leader " + std::to_string(leader_) + "]";
    return s;
  }

 private:
  uint32_t code_ = RAFT_STATUS_OK;
  std::string message_;
  uint64_t leader_ = 0;
};

#if RAFT_HPP_EXCEPTIONS
/// Exception thrown by the throwing calls; carries the Status.
class Error : public std::runtime_error {
 public:
  /// Wraps a failed status.
  explicit Error(Status s) : std::runtime_error(s.to_string()), status_(std::move(s)) {}
  /// The status.
  const Status &status() const noexcept { return status_; }
  /// Shorthand for status().code().
  Code code() const noexcept { return status_.code(); }

 private:
  Status status_;
};
#endif

namespace detail {
[[noreturn]] inline void fail(const Status &s) {
#if RAFT_HPP_EXCEPTIONS
  throw Error(s);
#else
  (void)s;
  std::abort();
#endif
}
}  // namespace detail

/// Either a value or a failed Status (an `expected`-style result). Reading the value of a
/// failed result throws raft::Error (aborts without exceptions).
template <class T>
class Result {
 public:
  /// A successful result.
  Result(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design
  /// A failed result; `s` must not be ok.
  Result(Status s) : status_(std::move(s)) {  // NOLINT: implicit by design
    if (status_.ok()) status_ = Status(Code::InvalidArgument, "ok status without a value");
  }
  /// True when a value is present.
  bool ok() const noexcept { return value_.has_value(); }
  /// True when a value is present.
  explicit operator bool() const noexcept { return ok(); }
  /// The status (ok when a value is present).
  const Status &status() const noexcept { return status_; }
  /// The value; throws raft::Error when failed.
  T &value() & {
    if (!ok()) detail::fail(status_);
    return *value_;
  }
  /// The value; throws raft::Error when failed.
  const T &value() const & {
    if (!ok()) detail::fail(status_);
    return *value_;
  }
  /// The value (moved out); throws raft::Error when failed.
  T value() && {
    if (!ok()) detail::fail(status_);
    return std::move(*value_);
  }
  /// The value or `other` when failed.
  T value_or(T other) && { return ok() ? std::move(*value_) : std::move(other); }
  /// Unchecked access (check ok() first).
  T &operator*() & noexcept { return *value_; }
  /// Unchecked access (check ok() first).
  T *operator->() noexcept { return &*value_; }
  /// Unchecked access (check ok() first).
  const T &operator*() const & noexcept { return *value_; }
  /// Unchecked access (check ok() first).
  const T *operator->() const noexcept { return &*value_; }

 private:
  std::optional<T> value_;
  Status status_;
};

/// Result of a call without a value.
template <>
class Result<void> {
 public:
  /// Success.
  Result() = default;
  /// The given status (ok or not).
  Result(Status s) : status_(std::move(s)) {}  // NOLINT: implicit by design
  /// True on success.
  bool ok() const noexcept { return status_.ok(); }
  /// True on success.
  explicit operator bool() const noexcept { return ok(); }
  /// The status.
  const Status &status() const noexcept { return status_; }
  /// Throws raft::Error when failed.
  void value() const {
    if (!ok()) detail::fail(status_);
  }

 private:
  Status status_;
};

/// A read-only view of bytes (like std::span<const std::byte>), valid as long as what it
/// points at. Views passed to callbacks are valid only during the call.
class Bytes {
 public:
  /// Empty.
  constexpr Bytes() noexcept = default;
  /// `size` bytes at `data`.
  Bytes(const void *data, size_t size) noexcept
      : data_(static_cast<const uint8_t *>(data)), size_(size) {}
  /// The characters of a string view.
  Bytes(std::string_view s) noexcept : Bytes(s.data(), s.size()) {}  // NOLINT
  /// The characters of a string.
  Bytes(const std::string &s) noexcept : Bytes(s.data(), s.size()) {}  // NOLINT
  /// The characters of a string literal (without its NUL).
  template <size_t N>
  Bytes(const char (&s)[N]) noexcept : Bytes(s, N - 1) {}  // NOLINT
  /// Any contiguous container of byte-sized elements (std::vector<uint8_t>, std::array, ...).
  template <class C, class E = std::remove_pointer_t<decltype(std::data(std::declval<const C &>()))>,
            class = std::enable_if_t<sizeof(E) == 1 && std::is_trivially_copyable_v<E> &&
                                     !std::is_convertible_v<const C &, std::string_view>>>
  Bytes(const C &c) noexcept : Bytes(std::data(c), std::size(c)) {}  // NOLINT

  /// First byte (may be nullptr when empty).
  constexpr const uint8_t *data() const noexcept { return data_; }
  /// Number of bytes.
  constexpr size_t size() const noexcept { return size_; }
  /// True when empty.
  constexpr bool empty() const noexcept { return size_ == 0; }
  /// Iteration.
  constexpr const uint8_t *begin() const noexcept { return data_; }
  /// Iteration.
  constexpr const uint8_t *end() const noexcept { return data_ + size_; }
  /// Byte `i` (unchecked).
  constexpr uint8_t operator[](size_t i) const noexcept { return data_[i]; }
  /// The bytes as characters.
  std::string_view str() const noexcept {
    return size_ ? std::string_view(reinterpret_cast<const char *>(data_), size_)
                 : std::string_view();
  }
  /// A copy as a std::string.
  std::string to_string() const { return std::string(str()); }
  /// A copy as a byte vector.
  std::vector<uint8_t> to_vector() const { return std::vector<uint8_t>(begin(), end()); }

 private:
  const uint8_t *data_ = nullptr;
  size_t size_ = 0;
};

/// A byte buffer owned by the library (raft_buf), released on destruction. Move-only.
class Buffer {
 public:
  /// Empty.
  Buffer() noexcept = default;
  /// Takes ownership of `b` (which is left empty).
  explicit Buffer(raft_buf &&b) noexcept : buf_(b) { b = raft_buf{nullptr, 0}; }
  Buffer(const Buffer &) = delete;
  Buffer &operator=(const Buffer &) = delete;
  /// Moves; the source is left empty.
  Buffer(Buffer &&o) noexcept : buf_(o.buf_) { o.buf_ = raft_buf{nullptr, 0}; }
  /// Moves; the source is left empty.
  Buffer &operator=(Buffer &&o) noexcept {
    if (this != &o) {
      raft_buf_free(&buf_);
      buf_ = o.buf_;
      o.buf_ = raft_buf{nullptr, 0};
    }
    return *this;
  }
  ~Buffer() { raft_buf_free(&buf_); }
  /// A library-owned copy of `b`.
  static Result<Buffer> copy_of(Bytes b) noexcept {
    raft_buf out{nullptr, 0};
    raft_status s = raft_buf_set(&out, b.data(), b.size());
    if (s != RAFT_STATUS_OK) return Status::from_call(s);
    return Buffer(std::move(out));
  }
  /// First byte (nullptr when empty).
  const uint8_t *data() const noexcept { return buf_.data; }
  /// Length in bytes.
  size_t size() const noexcept { return buf_.len; }
  /// True when empty.
  bool empty() const noexcept { return buf_.len == 0; }
  /// A view of the bytes.
  Bytes view() const noexcept { return Bytes(buf_.data, buf_.len); }
  /// The bytes as characters.
  std::string_view str() const noexcept { return view().str(); }
  /// A copy as a std::string.
  std::string to_string() const { return view().to_string(); }
  /// A pointer to the underlying raft_buf, for C calls that fill one.
  raft_buf *raw() noexcept { return &buf_; }

 private:
  raft_buf buf_{nullptr, 0};
};

/// Where the apply callback writes its response for the proposer.
class Response {
 public:
  /// Wraps the apply callback's `out_response`.
  explicit Response(raft_buf *out) noexcept : out_(out) {}
  /// Sets the response to a copy of `b`.
  Status set(Bytes b) noexcept {
    raft_status s = raft_buf_set(out_, b.data(), b.size());
    return s == RAFT_STATUS_OK ? Status() : Status::from_call(s);
  }

 private:
  raft_buf *out_;
};

/// Writes a snapshot (valid only inside the snapshot callback).
class SnapshotWriter {
 public:
  /// Wraps the C writer.
  explicit SnapshotWriter(raft_snapshot_writer *w) noexcept : w_(w) {}
  /// Appends bytes; a failed status should make the callback fail.
  Status write(Bytes b) noexcept {
    raft_status s = raft_snapshot_writer_write(w_, b.data(), b.size());
    return s == RAFT_STATUS_OK ? Status() : Status::from_call(s);
  }

 private:
  raft_snapshot_writer *w_;
};

/// Reads a snapshot (valid only inside the restore callback).
class SnapshotReader {
 public:
  /// Wraps the C reader.
  explicit SnapshotReader(raft_snapshot_reader *r) noexcept : r_(r) {}
  /// Reads up to `cap` bytes into `buf` (filling it unless the end is reached); 0 = end.
  Result<size_t> read(uint8_t *buf, size_t cap) noexcept {
    size_t n = 0;
    raft_status s = raft_snapshot_reader_read(r_, buf, cap, &n);
    if (s != RAFT_STATUS_OK) return Status::from_call(s);
    return n;
  }
  /// Reads everything that is left.
  Result<std::vector<uint8_t>> read_all() {
    std::vector<uint8_t> all;
    uint8_t chunk[16384];
    for (;;) {
      Result<size_t> n = read(chunk, sizeof chunk);
      if (!n) return n.status();
      if (*n == 0) return all;
      all.insert(all.end(), chunk, chunk + *n);
    }
  }

 private:
  raft_snapshot_reader *r_;
};

/// A durable hard state (custom storage).
struct HardState {
  uint64_t term = 0;    ///< current term
  uint64_t vote = 0;    ///< vote in `term` (0 = none)
  uint64_t commit = 0;  ///< highest index known committed
};

/// One log entry handed to the persist callback (bytes borrowed for the call).
struct Entry {
  uint64_t term = 0;   ///< term of its leader
  uint64_t index = 0;  ///< position (1-based)
  uint8_t kind = 0;    ///< opaque kind: store and hand back as is
  Bytes data;          ///< payload
};

/// The entries of one persist call (a view; valid during the call).
class Entries {
 public:
  /// Wraps `n` C entries.
  Entries(const raft_entry *e, size_t n) noexcept : e_(e), n_(n) {}
  /// Number of entries.
  size_t size() const noexcept { return n_; }
  /// True when there are none.
  bool empty() const noexcept { return n_ == 0; }
  /// Entry `i` (unchecked).
  Entry operator[](size_t i) const noexcept {
    const raft_entry &r = e_[i];
    return Entry{r.term, r.index, r.kind, Bytes(r.data, r.len)};
  }
  /// Iterator over Entry values.
  class iterator {
   public:
    iterator(const Entries *es, size_t i) noexcept : es_(es), i_(i) {}
    Entry operator*() const noexcept { return (*es_)[i_]; }
    iterator &operator++() noexcept { return ++i_, *this; }
    bool operator!=(const iterator &o) const noexcept { return i_ != o.i_; }
    bool operator==(const iterator &o) const noexcept { return i_ == o.i_; }

   private:
    const Entries *es_;
    size_t i_;
  };
  iterator begin() const noexcept { return iterator(this, 0); }  ///< first
  iterator end() const noexcept { return iterator(this, n_); }   ///< past the last

 private:
  const raft_entry *e_;
  size_t n_;
};

/// A snapshot handed to the persist-snapshot callback (bytes borrowed for the call).
struct SnapshotToPersist {
  uint64_t index = 0;     ///< last index it covers
  uint64_t term = 0;      ///< term of that entry
  Bytes meta;             ///< opaque metadata: hand back to load_snapshot unchanged
  Bytes data;             ///< state machine image
  bool keep_log = false;  ///< false: discard the whole stored log with it
};

/// A node's state (raft_node_status plus the full voter list).
struct NodeStatus {
  uint64_t id = 0;                ///< this node
  Role role = Role::Follower;     ///< current role
  uint64_t term = 0;              ///< current term
  uint64_t leader = 0;            ///< known leader (0 = unknown)
  uint64_t commit = 0;            ///< commit index
  uint64_t applied = 0;           ///< applied index
  uint64_t last_index = 0;        ///< last log index
  std::vector<uint64_t> voters;   ///< voters (first RAFT_STATUS_MAX_VOTERS; see Node::voters)
  size_t voter_count = 0;         ///< total voters
};

/// One member's replication progress (leader only).
struct PeerProgress {
  uint64_t id = 0;           ///< member
  uint64_t match_index = 0;  ///< highest index known to match
  uint64_t next_index = 0;   ///< next index to send
  uint8_t state = 0;         ///< 0 probe, 1 replicate, 2 snapshot
};

namespace detail {

inline Result<void> check(raft_status s) {
  return s == RAFT_STATUS_OK ? Result<void>() : Result<void>(Status::from_call(s));
}

/// Clamps a duration to whole milliseconds in [0, UINT64_MAX].
template <class Rep, class Period>
uint64_t to_ms(std::chrono::duration<Rep, Period> d) noexcept {
  auto ms = std::chrono::duration_cast<std::chrono::duration<double, std::milli>>(d).count();
  if (!(ms > 0)) return 0;
  if (ms >= 1.8e19) return std::numeric_limits<uint64_t>::max();
  return static_cast<uint64_t>(ms + 0.999999);  // round up: never shorter than asked
}

/// Maps a callable's return value (void, bool, int, Status, Result<void>) to the C
/// convention: 0 success, non-zero failure.
template <class F, class... A>
int call_status(F &f, A &&...a) noexcept {
#if RAFT_HPP_EXCEPTIONS
  try {
#endif
    using R = std::invoke_result_t<F &, A...>;
    if constexpr (std::is_void_v<R>) {
      std::invoke(f, std::forward<A>(a)...);
      return 0;
    } else if constexpr (std::is_same_v<R, bool>) {
      return std::invoke(f, std::forward<A>(a)...) ? 0 : 1;
    } else if constexpr (std::is_integral_v<R>) {
      return std::invoke(f, std::forward<A>(a)...) == 0 ? 0 : 1;
    } else {
      return std::invoke(f, std::forward<A>(a)...).ok() ? 0 : 1;
    }
#if RAFT_HPP_EXCEPTIONS
  } catch (...) {
    return 1;
  }
#endif
}

/// Runs a callable whose result is ignored, swallowing exceptions.
template <class F, class... A>
void call_void(F &f, A &&...a) noexcept {
#if RAFT_HPP_EXCEPTIONS
  try {
#endif
    std::invoke(f, std::forward<A>(a)...);
#if RAFT_HPP_EXCEPTIONS
  } catch (...) {
  }
#endif
}

/// The callables of one configuration, owned by the C library through its userdata
/// (finalised when the builder, config and every node started from it are gone).
struct Callbacks {
  std::function<int(uint64_t, Bytes, Response &)> apply;
  std::function<void(uint64_t, Bytes)> send;
  std::function<int(SnapshotWriter &)> snapshot;
  std::function<int(SnapshotReader &)> restore;
  std::function<void(Role, uint64_t, uint64_t)> role_change;
  std::function<void(uint64_t, const HardState *, uint64_t, const Entries &)> persist;
  std::function<void(uint64_t, const SnapshotToPersist &)> persist_snapshot;

  static Callbacks *of(void *ud) noexcept { return static_cast<Callbacks *>(ud); }
  static void free(void *ud) noexcept { delete of(ud); }
  static int on_apply(void *ud, uint64_t index, const uint8_t *cmd, size_t len,
                      raft_buf *out) noexcept {
    Response r(out);
    return call_status(of(ud)->apply, index, Bytes(cmd, len), r);
  }
  static void on_send(void *ud, uint64_t to, const uint8_t *data, size_t len) noexcept {
    call_void(of(ud)->send, to, Bytes(data, len));
  }
  static int on_snapshot(void *ud, raft_snapshot_writer *w) noexcept {
    SnapshotWriter sw(w);
    return call_status(of(ud)->snapshot, sw);
  }
  static int on_restore(void *ud, raft_snapshot_reader *r) noexcept {
    SnapshotReader sr(r);
    return call_status(of(ud)->restore, sr);
  }
  static void on_role(void *ud, raft_role role, uint64_t term, uint64_t leader) noexcept {
    call_void(of(ud)->role_change, static_cast<Role>(role), term, leader);
  }
  static void on_persist(void *ud, uint64_t token, const raft_hard_state *hs,
                         uint64_t replace_from, const raft_entry *e, size_t n) noexcept {
    HardState h{};
    if (hs) h = HardState{hs->term, hs->vote, hs->commit};
    Entries es(e, n);
    call_void(of(ud)->persist, token, hs ? &h : nullptr, replace_from, es);
  }
  static void on_persist_snapshot(void *ud, uint64_t token, uint64_t index, uint64_t term,
                                  const uint8_t *meta, size_t meta_len, const uint8_t *data,
                                  size_t len, bool keep_log) noexcept {
    SnapshotToPersist s{index, term, Bytes(meta, meta_len), Bytes(data, len), keep_log};
    call_void(of(ud)->persist_snapshot, token, s);
  }
};

/// Heap state of one asynchronous proposal (freed by its completion).
struct ProposeCompletion {
  std::function<void(Status, Bytes)> fn;
  static void on_done(void *ud, raft_status s, const uint8_t *resp, size_t len) noexcept {
    std::unique_ptr<ProposeCompletion> c(static_cast<ProposeCompletion *>(ud));
    call_void(c->fn, s == RAFT_STATUS_OK ? Status() : Status(s), Bytes(resp, len));
  }
};

}  // namespace detail

/// An immutable configuration; starts one or more nodes. Move-only.
class Config {
 public:
  /// No configuration.
  Config() noexcept = default;
  /// Takes ownership of a C configuration.
  explicit Config(raft_config *c) noexcept : c_(c) {}
  Config(const Config &) = delete;
  Config &operator=(const Config &) = delete;
  Config(Config &&o) noexcept : c_(std::exchange(o.c_, nullptr)) {}  ///< move
  Config &operator=(Config &&o) noexcept {                          ///< move
    if (this != &o) {
      raft_config_free(c_);
      c_ = std::exchange(o.c_, nullptr);
    }
    return *this;
  }
  ~Config() { raft_config_free(c_); }
  /// The C handle (still owned here).
  const raft_config *raw() const noexcept { return c_; }

 private:
  raft_config *c_ = nullptr;
};

/// Builds a Config. Setters chain; the first failure is kept and reported by build() /
/// try_build() (so a chain needs no error handling in between). Move-only; the callables
/// set here are owned by the library from build() on.
class ConfigBuilder {
 public:
  /// A builder with the library defaults (in-memory storage, election 500 ms, ...).
  ConfigBuilder() noexcept {
    raft_status s = raft_config_builder_new(&b_);
    if (s != RAFT_STATUS_OK) {
      b_ = nullptr;
      first_ = Status::from_call(s);
      return;
    }
    cb_ = new (std::nothrow) detail::Callbacks();
    if (!cb_) {
      first_ = Status(Code::Failed, "out of memory");
      return;
    }
    // From here on the library owns cb_ (freed with the last builder/config/node).
    raft_status u = raft_config_builder_set_userdata(b_, cb_, &detail::Callbacks::free);
    if (u != RAFT_STATUS_OK) {
      delete cb_;
      cb_ = nullptr;
      record(u);
    }
  }
  ConfigBuilder(const ConfigBuilder &) = delete;
  ConfigBuilder &operator=(const ConfigBuilder &) = delete;
  /// Moves.
  ConfigBuilder(ConfigBuilder &&o) noexcept
      : b_(std::exchange(o.b_, nullptr)), cb_(std::exchange(o.cb_, nullptr)),
        first_(std::move(o.first_)) {}
  /// Moves.
  ConfigBuilder &operator=(ConfigBuilder &&o) noexcept {
    if (this != &o) {
      raft_config_builder_free(b_);
      b_ = std::exchange(o.b_, nullptr);
      cb_ = std::exchange(o.cb_, nullptr);
      first_ = std::move(o.first_);
    }
    return *this;
  }
  ~ConfigBuilder() { raft_config_builder_free(b_); }

  /// This node's id (non-zero; required).
  ConfigBuilder &id(uint64_t id) { return record(raft_config_builder_set_id(b_, id)); }
  /// Adds a bootstrap voter (include this node).
  ConfigBuilder &voter(uint64_t id) { return record(raft_config_builder_add_voter(b_, id)); }
  /// Adds bootstrap voters.
  ConfigBuilder &voters(std::initializer_list<uint64_t> ids) {
    for (uint64_t v : ids) voter(v);
    return *this;
  }
  /// Data directory (created if missing); default: memory only.
  ConfigBuilder &data_dir(const std::string &path) {
    return record(raft_config_builder_set_data_dir(b_, path.c_str()));
  }
  /// Base election timeout (default 500 ms).
  template <class Rep, class Period>
  ConfigBuilder &election_timeout(std::chrono::duration<Rep, Period> d) {
    return record_ms(d, [this](uint32_t ms) {
      return raft_config_builder_set_election_timeout_ms(b_, ms);
    });
  }
  /// Heartbeat interval (default 50 ms).
  template <class Rep, class Period>
  ConfigBuilder &heartbeat(std::chrono::duration<Rep, Period> d) {
    return record_ms(d, [this](uint32_t ms) { return raft_config_builder_set_heartbeat_ms(b_, ms); });
  }
  /// Snapshot every `entries` applied entries (0 = never automatically).
  ConfigBuilder &snapshot_entries(uint64_t entries) {
    return record(raft_config_builder_set_snapshot_entries(b_, entries));
  }
  /// Largest command a proposal may carry (default 32 MiB); larger ones get Code::TooLarge.
  ConfigBuilder &max_command_bytes(uint64_t bytes) {
    return record(raft_config_builder_set_max_command_bytes(b_, bytes));
  }
  /// Largest snapshot accepted from a leader (default 64 GiB).
  ConfigBuilder &max_snapshot_bytes(uint64_t bytes) {
    return record(raft_config_builder_set_max_snapshot_bytes(b_, bytes));
  }
  /// Re-admission of a voter that lost its state (raft_config_builder_set_auto_rejoin):
  /// `automatic` (default, `max_lag_entries` 64) or RAFT_REJOIN_OPERATOR.
  ConfigBuilder &auto_rejoin(bool automatic, uint64_t max_lag_entries = 64) {
    return record(raft_config_builder_set_auto_rejoin(
        b_, automatic ? RAFT_REJOIN_AUTOMATIC : RAFT_REJOIN_OPERATOR, max_lag_entries));
  }
  /// UNSAFE outside tests: never fsync the data directory.
  ConfigBuilder &unsafe_no_fsync(bool on) {
    return record(raft_config_builder_set_unsafe_no_fsync(b_, on));
  }
  /// Let callers run protocol passes (see raft_config_builder_set_caller_runs).
  ConfigBuilder &caller_runs(bool on) {
    return record(raft_config_builder_set_caller_runs(b_, on));
  }
  /// Built-in TCP transport listening on "host:port" (instead of a send callable).
  ConfigBuilder &listen(const std::string &address) {
    return record(raft_config_builder_set_listen_address(b_, address.c_str()));
  }
  /// TCP peer `id` at "host:port".
  ConfigBuilder &peer(uint64_t id, const std::string &address) {
    return record(raft_config_builder_add_peer(b_, id, address.c_str()));
  }
  /// TCP cluster id (default 0).
  ConfigBuilder &cluster_id(uint64_t id) {
    return record(raft_config_builder_set_cluster_id(b_, id));
  }
  /// Shared secret authenticating TCP connections (copied).
  ConfigBuilder &secret(Bytes s) {
    return record(raft_config_builder_set_secret(b_, s.empty() ? nullptr : s.data(), s.size()));
  }

  /// The state machine (required): `f(uint64_t index, raft::Bytes cmd, raft::Response&)`,
  /// returning void, bool, int (0 = ok) or Status; failure or an exception fails the node.
  /// Apply thread, log order.
  template <class F>
  ConfigBuilder &on_apply(F f) {
    if (!ready()) return *this;
    cb_->apply = [f = std::move(f)](uint64_t i, Bytes c, Response &r) mutable {
      return detail::call_status(f, i, c, r);
    };
    return record(raft_config_builder_set_apply_callback(b_, &detail::Callbacks::on_apply));
  }
  /// The transport: `f(uint64_t to, raft::Bytes message)`; deliver to that node's
  /// Node::step. Must not block for long; dropping is allowed.
  template <class F>
  ConfigBuilder &on_send(F f) {
    if (!ready()) return *this;
    cb_->send = std::move(f);
    return record(raft_config_builder_set_send_callback(b_, &detail::Callbacks::on_send));
  }
  /// Snapshot `s(raft::SnapshotWriter&)` and restore `r(raft::SnapshotReader&)` (both),
  /// returning void, bool, int or Status.
  template <class S, class R>
  ConfigBuilder &on_snapshot(S s, R r) {
    if (!ready()) return *this;
    cb_->snapshot = [s = std::move(s)](SnapshotWriter &w) mutable {
      return detail::call_status(s, w);
    };
    cb_->restore = [r = std::move(r)](SnapshotReader &rd) mutable {
      return detail::call_status(r, rd);
    };
    return record(raft_config_builder_set_snapshot_callbacks(b_, &detail::Callbacks::on_snapshot,
                                                             &detail::Callbacks::on_restore));
  }
  /// Role changes: `f(raft::Role, uint64_t term, uint64_t leader)` (apply thread).
  template <class F>
  ConfigBuilder &on_role_change(F f) {
    if (!ready()) return *this;
    cb_->role_change = std::move(f);
    return record(
        raft_config_builder_set_role_change_callback(b_, &detail::Callbacks::on_role));
  }
  /// Custom storage: `persist(uint64_t token, const raft::HardState* hs_or_null,
  /// uint64_t replace_from, const raft::Entries&)` and
  /// `persist_snapshot(uint64_t token, const raft::SnapshotToPersist&)`; complete each
  /// token with Node::persisted once durable (see raft_persist_callback).
  template <class P, class S>
  ConfigBuilder &on_storage(P persist, S persist_snapshot) {
    if (!ready()) return *this;
    cb_->persist = std::move(persist);
    cb_->persist_snapshot = std::move(persist_snapshot);
    return record(raft_config_builder_set_storage_callbacks(
        b_, &detail::Callbacks::on_persist, &detail::Callbacks::on_persist_snapshot));
  }
  /// Custom storage, before start: the durable hard state.
  ConfigBuilder &load_hard_state(const HardState &hs) {
    return record(raft_config_builder_load_hard_state(b_, hs.term, hs.vote, hs.commit));
  }
  /// Custom storage, before start: the durable snapshot (first).
  ConfigBuilder &load_snapshot(Bytes meta, Bytes data) {
    return record(raft_config_builder_load_snapshot(b_, meta.data(), meta.size(), data.data(),
                                                    data.size()));
  }
  /// Custom storage, before start: one durable entry (in index order).
  ConfigBuilder &load_entry(const Entry &e) {
    return record(raft_config_builder_load_entry(b_, e.term, e.index, e.kind, e.data.data(),
                                                 e.data.size()));
  }

  /// The first failure so far (ok if none).
  const Status &status() const noexcept { return first_; }
  /// Builds (consuming the builder, whether or not it succeeds).
  Result<Config> try_build() noexcept {
    raft_config_builder *b = std::exchange(b_, nullptr);
    cb_ = nullptr;
    Status err = std::exchange(first_, Status(Code::InvalidHandle, "builder already consumed"));
    if (!err.ok()) {
      raft_config_builder_free(b);
      return err;
    }
    if (!b) return first_;
    raft_config *c = nullptr;
    raft_status s = raft_config_builder_build(b, &c);
    if (s != RAFT_STATUS_OK) return Status::from_call(s);
    return Config(c);
  }
#if RAFT_HPP_EXCEPTIONS
  /// Builds, throwing raft::Error on failure.
  Config build() { return try_build().value(); }
#endif

 private:
  bool ready() const noexcept { return first_.ok() && b_ && cb_; }
  ConfigBuilder &record(raft_status s) {
    if (s != RAFT_STATUS_OK && first_.ok()) first_ = Status::from_call(s);
    return *this;
  }
  template <class Rep, class Period, class Set>
  ConfigBuilder &record_ms(std::chrono::duration<Rep, Period> d, Set set) {
    uint64_t ms = detail::to_ms(d);
    if (ms > std::numeric_limits<uint32_t>::max()) {
      if (first_.ok()) first_ = Status(Code::InvalidArgument, "duration too long");
      return *this;
    }
    return record(set(static_cast<uint32_t>(ms)));
  }

  raft_config_builder *b_ = nullptr;
  detail::Callbacks *cb_ = nullptr;  // owned by the library (userdata)
  Status first_;
};

/// Default timeout of the blocking calls.
inline constexpr std::chrono::milliseconds kDefaultTimeout{5000};

/// A running node. Move-only; destruction shuts it down and frees it (never destroy a Node
/// inside one of its callbacks). All calls are thread-safe.
class Node {
 public:
  /// No node.
  Node() noexcept = default;
  /// Takes ownership of a C node handle.
  explicit Node(raft_node *n) noexcept : n_(n) {}
  Node(const Node &) = delete;
  Node &operator=(const Node &) = delete;
  Node(Node &&o) noexcept : n_(std::exchange(o.n_, nullptr)) {}  ///< move
  Node &operator=(Node &&o) noexcept {                          ///< move
    if (this != &o) {
      reset();
      n_ = std::exchange(o.n_, nullptr);
    }
    return *this;
  }
  ~Node() { reset(); }

  /// Starts a node from `config` (which stays usable).
  static Result<Node> try_start(const Config &config) noexcept {
    raft_node *n = nullptr;
    raft_status s = raft_node_start(config.raw(), &n);
    if (s != RAFT_STATUS_OK) return Status::from_call(s);
    return Node(n);
  }
  /// Delivers a peer's message bytes (copied). Allowed inside callbacks.
  Result<void> try_step(Bytes msg) const noexcept {
    return detail::check(raft_node_step(n_, msg.data(), msg.size()));
  }
  /// Delivers message bytes that the transport knows came from node `from`; a message
  /// claiming another sender is refused (InvalidArgument). Allowed inside callbacks.
  Result<void> try_step_from(uint64_t from, Bytes msg) const noexcept {
    return detail::check(raft_node_step_from(n_, from, msg.data(), msg.size()));
  }
  /// Proposes `cmd` and waits up to `timeout` until it is applied here; returns the state
  /// machine's response. NotLeader errors carry the known leader (Status::leader()).
  template <class Rep = int64_t, class Period = std::milli>
  Result<Buffer> try_propose(Bytes cmd, std::chrono::duration<Rep, Period> timeout =
                                            kDefaultTimeout) const noexcept {
    Buffer out;
    raft_status s = raft_node_propose(n_, cmd.data(), cmd.size(), detail::to_ms(timeout), out.raw());
    if (s != RAFT_STATUS_OK) return with_leader(s);
    return out;
  }
  /// Exactly-once proposal for client session `client_id`, sequence `seq` (1, 2, ...).
  template <class Rep = int64_t, class Period = std::milli>
  Result<Buffer> try_propose_session(uint64_t client_id, uint64_t seq, Bytes cmd,
                                     std::chrono::duration<Rep, Period> timeout =
                                         kDefaultTimeout) const noexcept {
    Buffer out;
    raft_status s = raft_node_propose_session(n_, client_id, seq, cmd.data(), cmd.size(),
                                              detail::to_ms(timeout), out.raw());
    if (s != RAFT_STATUS_OK) return with_leader(s);
    return out;
  }
  /// Proposes without blocking: `done(raft::Status, raft::Bytes response)` runs exactly once
  /// (engine thread or, on immediate refusal after acceptance, this thread) when the call
  /// returns ok; when it returns a failure, `done` is not called. Allowed inside callbacks.
  template <class F>
  Result<void> propose_async(Bytes cmd, F done) const noexcept {
    auto *c = new (std::nothrow) detail::ProposeCompletion();
    if (!c) return Status(Code::Failed, "out of memory");
    c->fn = std::move(done);
    raft_status s = raft_node_propose_async(n_, cmd.data(), cmd.size(),
                                            &detail::ProposeCompletion::on_done, c);
    if (s != RAFT_STATUS_OK) {
      delete c;
      return Status::from_call(s);
    }
    return {};
  }
  /// Proposes without blocking; the future gets the response or the failed Status.
  std::future<Result<Buffer>> try_propose_future(Bytes cmd) const {
    auto p = std::make_shared<std::promise<Result<Buffer>>>();
    std::future<Result<Buffer>> f = p->get_future();
    Result<void> r = propose_async(cmd, [p](Status s, Bytes resp) {
      if (!s.ok()) return p->set_value(Result<Buffer>(std::move(s)));
      Result<Buffer> b = Buffer::copy_of(resp);
      p->set_value(std::move(b));
    });
    if (!r) p->set_value(Result<Buffer>(r.status()));
    return f;
  }
  /// Waits (up to `timeout`) for a linearizable read index applied here; then reading local
  /// state is linearizable.
  template <class Rep = int64_t, class Period = std::milli>
  Result<uint64_t> try_read_index(std::chrono::duration<Rep, Period> timeout =
                                      kDefaultTimeout) const noexcept {
    uint64_t idx = 0;
    raft_status s = raft_node_read_index(n_, detail::to_ms(timeout), &idx);
    if (s != RAFT_STATUS_OK) return with_leader(s);
    return idx;
  }
  /// Leader only: hands leadership to `to` (0 = most up-to-date voter); returns once started.
  Result<void> try_transfer_leader(uint64_t to = 0) const noexcept {
    raft_status s = raft_node_transfer_leader(n_, to);
    return s == RAFT_STATUS_OK ? Result<void>() : Result<void>(with_leader(s));
  }
  /// The node's current state.
  Result<NodeStatus> try_status() const noexcept {
    raft_node_status_info i;
    raft_status s = raft_node_status(n_, &i);
    if (s != RAFT_STATUS_OK) return Status::from_call(s);
    NodeStatus st;
    st.id = i.id, st.role = static_cast<Role>(i.role), st.term = i.term, st.leader = i.leader;
    st.commit = i.commit, st.applied = i.applied, st.last_index = i.last_index;
    st.voter_count = i.voter_count;
    size_t n = i.voter_count < RAFT_STATUS_MAX_VOTERS ? i.voter_count : RAFT_STATUS_MAX_VOTERS;
    st.voters.assign(i.voters, i.voters + n);
    return st;
  }
  /// All voter ids.
  Result<std::vector<uint64_t>> try_voters() const noexcept { return ids(&raft_node_voters); }
  /// All learner ids.
  Result<std::vector<uint64_t>> try_learners() const noexcept { return ids(&raft_node_learners); }
  /// Id of the configuration in force (for compare-and-set membership changes).
  Result<uint64_t> try_conf_id() const noexcept {
    uint64_t id = 0;
    raft_status s = raft_node_conf_id(n_, &id);
    if (s != RAFT_STATUS_OK) return Status::from_call(s);
    return id;
  }
  /// Leader only: adds a learner (auto-promoted within `auto_promote_lag` entries if > 0).
  template <class Rep = int64_t, class Period = std::milli>
  Result<void> try_add_learner(uint64_t id, uint64_t auto_promote_lag = 0,
                               std::chrono::duration<Rep, Period> timeout =
                                   kDefaultTimeout) const noexcept {
    return leader_call(raft_node_add_learner(n_, id, auto_promote_lag, detail::to_ms(timeout)));
  }
  /// Leader only: promotes a learner once within `max_lag` entries.
  template <class Rep = int64_t, class Period = std::milli>
  Result<void> try_promote_learner(uint64_t id, uint64_t max_lag = 0,
                                   std::chrono::duration<Rep, Period> timeout =
                                       kDefaultTimeout) const noexcept {
    return leader_call(raft_node_promote_learner(n_, id, max_lag, detail::to_ms(timeout)));
  }
  /// Leader only: removes a member for good.
  template <class Rep = int64_t, class Period = std::milli>
  Result<void> try_remove_member(uint64_t id, std::chrono::duration<Rep, Period> timeout =
                                                  kDefaultTimeout) const noexcept {
    return leader_call(raft_node_remove_member(n_, id, detail::to_ms(timeout)));
  }
  /// Leader only: moves to exactly these voters and learners (joint consensus when more
  /// than one voter changes); `expected_conf_id` non-zero makes it compare-and-set.
  template <class Rep = int64_t, class Period = std::milli>
  Result<void> try_change_membership(const std::vector<uint64_t> &voters,
                                     const std::vector<uint64_t> &learners,
                                     uint64_t expected_conf_id = 0,
                                     std::chrono::duration<Rep, Period> timeout =
                                         kDefaultTimeout) const noexcept {
    return leader_call(raft_node_change_membership(
        n_, voters.empty() ? nullptr : voters.data(), voters.size(),
        learners.empty() ? nullptr : learners.data(), learners.size(), expected_conf_id,
        detail::to_ms(timeout)));
  }
  /// Leader only: every member's replication progress (empty on a follower).
  Result<std::vector<PeerProgress>> try_peer_progress() const noexcept {
    std::vector<raft_peer_progress> raw(8);
    for (;;) {
      size_t n = 0;
      raft_status s = raft_node_peer_progress(n_, raw.data(), raw.size(), &n);
      if (s == RAFT_STATUS_BUFFER_TOO_SMALL && n > raw.size()) {
        raw.resize(n);
        continue;
      }
      if (s != RAFT_STATUS_OK) return Status::from_call(s);
      std::vector<PeerProgress> out;
      out.reserve(n);
      for (size_t i = 0; i < n; i++)
        out.push_back(PeerProgress{raw[i].id, raw[i].match_index, raw[i].next_index, raw[i].state});
      return out;
    }
  }
  /// Custom storage: completes write `token` (`ok` only once durable). Any thread.
  Result<void> try_persisted(uint64_t token, bool ok = true) const noexcept {
    return detail::check(raft_node_persisted(n_, token, ok ? 1 : 0));
  }
  /// Stops the node (idempotent); the handle stays valid until destruction.
  Result<void> try_shutdown() const noexcept { return detail::check(raft_node_shutdown(n_)); }
  /// Shuts down and frees now (what the destructor does), reporting the outcome.
  Result<void> try_close() noexcept {
    raft_status s = raft_node_free(n_);
    if (s == RAFT_STATUS_OK) n_ = nullptr;
    return detail::check(s);
  }

#if RAFT_HPP_EXCEPTIONS
  /// Throwing forms of the try_* calls above.
  static Node start(const Config &config) { return try_start(config).value(); }
  void step(Bytes msg) const { try_step(msg).value(); }
  void step_from(uint64_t from, Bytes msg) const { try_step_from(from, msg).value(); }
  template <class Rep = int64_t, class Period = std::milli>
  Buffer propose(Bytes cmd, std::chrono::duration<Rep, Period> t = kDefaultTimeout) const {
    return try_propose(cmd, t).value();
  }
  template <class Rep = int64_t, class Period = std::milli>
  Buffer propose_session(uint64_t client, uint64_t seq, Bytes cmd,
                         std::chrono::duration<Rep, Period> t = kDefaultTimeout) const {
    return try_propose_session(client, seq, cmd, t).value();
  }
  /// Proposes without blocking; future.get() returns the response or throws raft::Error.
  std::future<Buffer> propose_future(Bytes cmd) const {
    auto p = std::make_shared<std::promise<Buffer>>();
    std::future<Buffer> f = p->get_future();
    Result<void> r = propose_async(cmd, [p](Status s, Bytes resp) {
      if (!s.ok()) return p->set_exception(std::make_exception_ptr(Error(std::move(s))));
      Result<Buffer> b = Buffer::copy_of(resp);
      if (!b) return p->set_exception(std::make_exception_ptr(Error(b.status())));
      p->set_value(std::move(*b));
    });
    if (!r) p->set_exception(std::make_exception_ptr(Error(r.status())));
    return f;
  }
  template <class Rep = int64_t, class Period = std::milli>
  uint64_t read_index(std::chrono::duration<Rep, Period> t = kDefaultTimeout) const {
    return try_read_index(t).value();
  }
  void transfer_leader(uint64_t to = 0) const { try_transfer_leader(to).value(); }
  NodeStatus status() const { return try_status().value(); }
  std::vector<uint64_t> voters() const { return try_voters().value(); }
  std::vector<uint64_t> learners() const { return try_learners().value(); }
  uint64_t conf_id() const { return try_conf_id().value(); }
  template <class Rep = int64_t, class Period = std::milli>
  void add_learner(uint64_t id, uint64_t lag = 0,
                   std::chrono::duration<Rep, Period> t = kDefaultTimeout) const {
    try_add_learner(id, lag, t).value();
  }
  template <class Rep = int64_t, class Period = std::milli>
  void promote_learner(uint64_t id, uint64_t max_lag = 0,
                       std::chrono::duration<Rep, Period> t = kDefaultTimeout) const {
    try_promote_learner(id, max_lag, t).value();
  }
  template <class Rep = int64_t, class Period = std::milli>
  void remove_member(uint64_t id, std::chrono::duration<Rep, Period> t = kDefaultTimeout) const {
    try_remove_member(id, t).value();
  }
  template <class Rep = int64_t, class Period = std::milli>
  void change_membership(const std::vector<uint64_t> &voters,
                         const std::vector<uint64_t> &learners, uint64_t expected_conf_id = 0,
                         std::chrono::duration<Rep, Period> t = kDefaultTimeout) const {
    try_change_membership(voters, learners, expected_conf_id, t).value();
  }
  std::vector<PeerProgress> peer_progress() const { return try_peer_progress().value(); }
  void persisted(uint64_t token, bool ok = true) const { try_persisted(token, ok).value(); }
  void shutdown() const { try_shutdown().value(); }
  void close() { try_close().value(); }
#endif

  /// The C handle (still owned here; nullptr when empty).
  raft_node *raw() const noexcept { return n_; }
  /// True when this owns a node.
  explicit operator bool() const noexcept { return n_ != nullptr; }

 private:
  void reset() noexcept {
    if (n_) (void)raft_node_free(n_);
    n_ = nullptr;
  }
  // A failed status; for NotLeader with the leader this node knows of.
  Status with_leader(raft_status s) const {
    Status st = Status::from_call(s);
    if (s != RAFT_STATUS_NOT_LEADER) return st;
    raft_node_status_info i;
    if (raft_node_status(n_, &i) != RAFT_STATUS_OK) return st;
    return Status(s, st.message(), i.leader);
  }
  Result<void> leader_call(raft_status s) const {
    return s == RAFT_STATUS_OK ? Result<void>() : Result<void>(with_leader(s));
  }
  using IdsFn = raft_status (*)(const raft_node *, uint64_t *, size_t, size_t *);
  Result<std::vector<uint64_t>> ids(IdsFn fn) const {
    std::vector<uint64_t> v(8);
    for (;;) {
      size_t n = 0;
      raft_status s = fn(n_, v.data(), v.size(), &n);
      if (s == RAFT_STATUS_BUFFER_TOO_SMALL && n > v.size()) {
        v.resize(n);
        continue;
      }
      if (s != RAFT_STATUS_OK) return Status::from_call(s);
      v.resize(n);
      return v;
    }
  }

  raft_node *n_ = nullptr;
};

/// One log event (strings borrowed for the call).
struct LogRecord {
  LogLevel level;             ///< severity
  std::string_view target;    ///< module path
  std::string_view message;   ///< message and key=value fields
  std::string_view file;      ///< source file (may be empty)
  uint32_t line;              ///< source line (0 if unknown)
};

namespace detail {
struct LogSink {
  std::function<void(const LogRecord &)> fn;
  static void on_log(void *ud, const raft_log_record *r) noexcept {
    LogRecord rec{static_cast<LogLevel>(r->level), r->target ? r->target : "",
                  r->message ? r->message : "", r->file ? r->file : "", r->line};
    call_void(static_cast<LogSink *>(ud)->fn, rec);
  }
};
// Every sink ever installed stays allocated (a logging thread may still be inside an old
// one while it is replaced); one small allocation per installation.
inline std::mutex &log_mu() {
  static std::mutex *mu = new std::mutex();
  return *mu;
}
inline std::vector<LogSink *> &log_sinks() {
  static std::vector<LogSink *> *v = new std::vector<LogSink *>();
  return *v;
}
}  // namespace detail

/// Installs the process-wide log callable `f(const raft::LogRecord&)` for events up to
/// `max_level` (any thread, possibly concurrently). Each installation keeps a small
/// allocation for the life of the process.
template <class F>
Result<void> try_set_log_callback(F f, LogLevel max_level) {
  std::lock_guard<std::mutex> g(detail::log_mu());
  auto *sink = new (std::nothrow) detail::LogSink();
  if (!sink) return Status(Code::Failed, "out of memory");
  sink->fn = std::move(f);
  detail::log_sinks().push_back(sink);
  return detail::check(raft_set_log_callback(&detail::LogSink::on_log,
                                             static_cast<uint32_t>(max_level), sink));
}
/// Removes the process-wide log callable.
inline Result<void> try_clear_log_callback() {
  std::lock_guard<std::mutex> g(detail::log_mu());
  return detail::check(raft_set_log_callback(nullptr, RAFT_LOG_LEVEL_OFF, nullptr));
}

}  // namespace raft

#endif  // RAFT_HPP

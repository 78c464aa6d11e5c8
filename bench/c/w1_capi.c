/* W1 through the C ABI: the C twin of bench/src/bin/w1.rs.
 *
 * 3 nodes in one process, memory storage, in-process transport (the send callback hands the
 * encoded message bytes straight to the target node's raft_node_step), 64-byte commands;
 * closed loop on the leader with W proposals in flight (raft_node_propose_async + a POSIX
 * semaphore of W permits), measuring committed-and-applied ops/s and commit latency
 * percentiles for each W.
 *
 *   w1-capi [--secs 4] [--warmup 1] [--size 64] [--windows 1,16,64,256] [--caller-runs 0|1]
 *
 * Output: a table per run plus one line per figure,
 *   BENCH name=w1.capi.c{W}.ops value=... unit=ops/s   (and .p50/.p99/.p999, unit=us;
 *   with --caller-runs 1 the names start w1.capi.caller_runs.)
 *
 * Build: bench/c/build.sh (produces target/release/w1-capi).
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "raft.h"

#define N 3
#define MAX_WINDOWS 32
#define DRAIN_TIMEOUT_NS (10ull * 1000000000ull)

/* ---- error checking ------------------------------------------------------------------ */

static void die_status(const char *what, raft_status s, int line) {
  char m[256] = "";
  raft_last_error_message(m, sizeof m, NULL);
  fprintf(stderr, "w1-capi:%d: %s returned %u (%s%s%s)\n", line, what, (unsigned)s,
          raft_status_str(s), m[0] ? ": " : "", m);
  exit(1);
}

#define CHECK_OK(call)                                                     \
  do {                                                                     \
    raft_status s_ = (call);                                               \
    if (s_ != RAFT_STATUS_OK) die_status(#call, s_, __LINE__);             \
  } while (0)

#define DIE(...)                                                           \
  do {                                                                     \
    fprintf(stderr, "w1-capi: " __VA_ARGS__);                              \
    fputc('\n', stderr);                                                   \
    exit(1);                                                               \
  } while (0)

/* ---- time ---------------------------------------------------------------------------- */

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void sleep_ms(unsigned ms) {
  struct timespec ts;
  ts.tv_sec = (time_t)(ms / 1000);
  ts.tv_nsec = (long)(ms % 1000) * 1000000L;
  nanosleep(&ts, NULL);
}

/* sem_timedwait takes a CLOCK_REALTIME deadline; `rel_ns` from now. Returns 0 when a
 * permit was taken, -1 on timeout. Like crossbeam's blocking receive in the Rust harness,
 * it first tries a few times, yielding, before sleeping in the kernel: a permit usually
 * comes back within microseconds. */
static int sem_wait_for(sem_t *s, uint64_t rel_ns) {
  for (int i = 0; i < 16; i++) {
    if (sem_trywait(s) == 0) return 0;
    sched_yield();
  }
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  uint64_t ns = (uint64_t)ts.tv_nsec + rel_ns % 1000000000ull;
  ts.tv_sec += (time_t)(rel_ns / 1000000000ull + ns / 1000000000ull);
  ts.tv_nsec = (long)(ns % 1000000000ull);
  for (;;) {
    if (sem_timedwait(s, &ts) == 0) return 0;
    if (errno == EINTR) continue;
    if (errno == ETIMEDOUT) return -1;
    perror("sem_timedwait");
    exit(1);
  }
}

/* ---- the in-process cluster ---------------------------------------------------------- */

/* Per-node userdata: a counting state machine (like the Rust bench's CountSm). Only the
 * node's apply thread touches `applied` and `sum`. */
typedef struct member {
  uint64_t id;
  uint64_t applied;
  uint64_t sum;
} member;

static member members[N + 1];
/* Published once started; read by the send callbacks of the other nodes. */
static _Atomic(raft_node *) nodes[N + 1];
/* raft_node_step refusals (BUSY when the inbox is full, SHUT_DOWN at the end). */
static atomic_uint_fast64_t refused;

static void send_cb(void *userdata, uint64_t to, const uint8_t *data, size_t len) {
  (void)userdata;
  raft_node *n = to >= 1 && to <= N ? atomic_load_explicit(&nodes[to], memory_order_acquire)
                                    : NULL;
  if (n && raft_node_step(n, data, len) != RAFT_STATUS_OK)
    atomic_fetch_add_explicit(&refused, 1, memory_order_relaxed);
}

static int apply_cb(void *userdata, uint64_t index, const uint8_t *cmd, size_t len,
                    raft_buf *out) {
  member *m = userdata;
  (void)index;
  (void)out; /* no response */
  m->sum += len ? cmd[0] : 0;
  m->applied++;
  return 0;
}

/* Snapshots (every 100 000 entries, the library default and the Rust harness's setting)
 * keep the in-memory log bounded, as in the Rust W1: the state is the two counters. */
static int snapshot_cb(void *userdata, raft_snapshot_writer *w) {
  member *m = userdata;
  uint64_t st[2] = {m->applied, m->sum};
  return raft_snapshot_writer_write(w, (const uint8_t *)st, sizeof st) == RAFT_STATUS_OK ? 0 : 1;
}

static int restore_cb(void *userdata, raft_snapshot_reader *r) {
  member *m = userdata;
  uint64_t st[2] = {0, 0};
  size_t n = 0;
  if (raft_snapshot_reader_read(r, (uint8_t *)st, sizeof st, &n) != RAFT_STATUS_OK) return 1;
  if (n != 0 && n != sizeof st) return 1;
  m->applied = st[0];
  m->sum = st[1];
  return 0;
}

/* ---- the closed loop ----------------------------------------------------------------- */

typedef struct prop_ctx {
  uint64_t t0; /* CLOCK_MONOTONIC ns at propose time */
} prop_ctx;

static sem_t permits; /* W permits per row */
static atomic_bool measuring;
static pthread_mutex_t st_mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
  uint64_t *lat; /* ns, completions during the measured window */
  size_t n, cap;
  uint64_t ops, errors;
  raft_status first_error; /* RAFT_STATUS_OK when none */
} st;

static void record(raft_status s, uint64_t ns) {
  pthread_mutex_lock(&st_mu);
  if (s == RAFT_STATUS_OK) {
    if (st.n == st.cap) {
      size_t cap = st.cap ? st.cap * 2 : 1u << 16;
      uint64_t *p = realloc(st.lat, cap * sizeof *p);
      if (!p) DIE("out of memory");
      st.lat = p;
      st.cap = cap;
    }
    st.lat[st.n++] = ns;
    st.ops++;
  } else {
    st.errors++;
    if (st.first_error == RAFT_STATUS_OK) st.first_error = s;
  }
  pthread_mutex_unlock(&st_mu);
}

/* Runs on the leader's apply thread (success) or an engine / the proposing thread (error). */
static void propose_cb(void *cb_userdata, raft_status status, const uint8_t *response,
                       size_t response_len) {
  prop_ctx *c = cb_userdata;
  uint64_t ns = now_ns() - c->t0;
  (void)response;
  (void)response_len;
  free(c);
  if (atomic_load_explicit(&measuring, memory_order_acquire)) record(status, ns);
  sem_post(&permits); /* last: the row may end as soon as every permit is back */
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return (x > y) - (x < y);
}

/* Percentile q (0..1) of the sorted samples in microseconds: index floor(q * (n - 1)). */
static double pct_us(const uint64_t *sorted, size_t n, double q) {
  if (n == 0) return NAN;
  size_t i = (size_t)(q * (double)(n - 1)); /* truncation = floor for q >= 0 */
  if (i >= n) i = n - 1;
  return (double)sorted[i] / 1000.0;
}

typedef struct row {
  unsigned window;
  double ops, p50, p99, p999;
  uint64_t errors;
} row;

static row run_window(raft_node *leader, unsigned window, size_t size, double warmup_s,
                      double secs) {
  pthread_mutex_lock(&st_mu);
  st.n = 0;
  st.ops = st.errors = 0;
  st.first_error = RAFT_STATUS_OK;
  pthread_mutex_unlock(&st_mu);
  atomic_store(&measuring, false);
  for (unsigned i = 0; i < window; i++) sem_post(&permits);

  uint8_t *cmd = calloc(size ? size : 1, 1);
  if (!cmd) DIE("out of memory");
  uint64_t seq = 0;
  const uint64_t start = now_ns();
  const uint64_t m_begin = start + (uint64_t)(warmup_s * 1e9);
  const uint64_t end = m_begin + (uint64_t)(secs * 1e9);
  uint64_t m_start = start;
  bool started = false;
  for (;;) {
    uint64_t now = now_ns();
    if (!started && now >= m_begin) {
      started = true;
      m_start = now;
      atomic_store_explicit(&measuring, true, memory_order_release);
    }
    if (now >= end) break;
    if (sem_wait_for(&permits, 100000000ull) != 0) continue; /* 100 ms */
    seq++;
    memcpy(cmd, &seq, size < sizeof seq ? size : sizeof seq);
    prop_ctx *c = malloc(sizeof *c);
    if (!c) DIE("out of memory");
    c->t0 = now_ns();
    raft_status s = raft_node_propose_async(leader, cmd, size, propose_cb, c);
    if (s == RAFT_STATUS_OK) continue; /* propose_cb owns c and the permit */
    /* Refused up front: the callback will not run. Raft-level refusals count as errors
     * (as the Rust bench, where they reach the callback); anything else is a bug. */
    free(c);
    if (s != RAFT_STATUS_NOT_LEADER && s != RAFT_STATUS_BUSY && s != RAFT_STATUS_TIMEOUT &&
        s != RAFT_STATUS_DROPPED)
      die_status("raft_node_propose_async", s, __LINE__);
    if (atomic_load_explicit(&measuring, memory_order_acquire)) record(s, 0);
    sem_post(&permits);
  }
  const double m_secs = (double)(now_ns() - m_start) / 1e9;
  atomic_store_explicit(&measuring, false, memory_order_release);
  free(cmd);

  /* Wait for every in-flight proposal to complete (all W permits back; bounded). */
  const uint64_t drain_end = now_ns() + DRAIN_TIMEOUT_NS;
  for (unsigned back = 0; back < window; back++) {
    uint64_t now = now_ns();
    if (now >= drain_end || sem_wait_for(&permits, drain_end - now) != 0)
      DIE("window %u: %u proposals still in flight after 10 s", window, window - back);
  }
  /* The semaphore is now at 0; the next row posts its own permits. */

  pthread_mutex_lock(&st_mu);
  qsort(st.lat, st.n, sizeof *st.lat, cmp_u64);
  row r = {
      .window = window,
      .ops = (double)st.ops / m_secs,
      .p50 = pct_us(st.lat, st.n, 0.5),
      .p99 = pct_us(st.lat, st.n, 0.99),
      .p999 = pct_us(st.lat, st.n, 0.999),
      .errors = st.errors,
  };
  if (st.errors)
    fprintf(stderr, "w1-capi: window %u: %llu errors, first: %s\n", window,
            (unsigned long long)st.errors, raft_status_str(st.first_error));
  pthread_mutex_unlock(&st_mu);
  return r;
}

/* ---- arguments and output ------------------------------------------------------------ */

static void usage(void) {
  fprintf(stderr,
          "usage: w1-capi [--secs 4] [--warmup 1] [--size 64] [--windows 1,16,64,256] "
          "[--caller-runs 0|1]\n");
  exit(2);
}

static double parse_double(const char *flag, const char *v) {
  char *e;
  errno = 0;
  double d = strtod(v, &e);
  if (errno || e == v || *e || !(d >= 0) || d > 1e6) {
    fprintf(stderr, "w1-capi: %s: bad number %s\n", flag, v);
    usage();
  }
  return d;
}

static unsigned long parse_ulong(const char *flag, const char *v, unsigned long max) {
  char *e;
  errno = 0;
  unsigned long x = strtoul(v, &e, 10);
  if (errno || e == v || *e || v[0] == '-' || x > max) {
    fprintf(stderr, "w1-capi: %s: bad number %s\n", flag, v);
    usage();
  }
  return x;
}

static size_t parse_windows(const char *v, unsigned *out) {
  size_t n = 0;
  const char *p = v;
  for (;;) {
    char *e;
    errno = 0;
    unsigned long x = strtoul(p, &e, 10);
    if (errno || e == p || *p == '-' || x == 0 || x > 65536 || n == MAX_WINDOWS ||
        (*e != ',' && *e != '\0')) {
      fprintf(stderr, "w1-capi: --windows: bad list %s\n", v);
      usage();
    }
    out[n++] = (unsigned)x;
    if (*e == '\0') return n;
    p = e + 1;
  }
}

static void print_table(const char *title, const row *rows, size_t n) {
  static const char *hdr[6] = {"in flight", "ops/s", "p50 us", "p99 us", "p999 us", "errors"};
  char cells[MAX_WINDOWS][6][32];
  size_t w[6];
  for (int j = 0; j < 6; j++) w[j] = strlen(hdr[j]);
  for (size_t i = 0; i < n; i++) {
    snprintf(cells[i][0], 32, "%u", rows[i].window);
    snprintf(cells[i][1], 32, "%.0f", rows[i].ops);
    snprintf(cells[i][2], 32, "%.1f", rows[i].p50);
    snprintf(cells[i][3], 32, "%.1f", rows[i].p99);
    snprintf(cells[i][4], 32, "%.1f", rows[i].p999);
    snprintf(cells[i][5], 32, "%llu", (unsigned long long)rows[i].errors);
    for (int j = 0; j < 6; j++)
      if (strlen(cells[i][j]) > w[j]) w[j] = strlen(cells[i][j]);
  }
  printf("\n%s\n|", title);
  for (int j = 0; j < 6; j++) printf(" %*s |", (int)w[j], hdr[j]);
  printf("\n|");
  for (int j = 0; j < 6; j++) {
    for (size_t k = 0; k < w[j] + 2; k++) putchar('-');
    putchar('|');
  }
  putchar('\n');
  for (size_t i = 0; i < n; i++) {
    putchar('|');
    for (int j = 0; j < 6; j++) printf(" %*s |", (int)w[j], cells[i][j]);
    putchar('\n');
  }
}

static void bench_line(bool caller_runs, unsigned w, const char *what, double value,
                       const char *unit) {
  printf("BENCH name=w1.capi%s.c%u.%s value=%.3f unit=%s\n", caller_runs ? ".caller_runs" : "",
         w, what, value, unit);
}

int main(int argc, char **argv) {
  double secs = 4.0, warmup = 1.0;
  size_t size = 64;
  bool caller_runs = false;
  unsigned windows[MAX_WINDOWS] = {1, 16, 64, 256};
  size_t nwin = 4;

  for (int i = 1; i < argc; i++) {
    const char *k = argv[i];
    const char *v = i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0 ? argv[++i] : "1";
    if (strcmp(k, "--secs") == 0) secs = parse_double(k, v);
    else if (strcmp(k, "--warmup") == 0) warmup = parse_double(k, v);
    else if (strcmp(k, "--size") == 0) size = parse_ulong(k, v, 1ul << 20);
    else if (strcmp(k, "--windows") == 0) nwin = parse_windows(v, windows);
    else if (strcmp(k, "--caller-runs") == 0) caller_runs = parse_ulong(k, v, 1) != 0;
    else {
      fprintf(stderr, "w1-capi: unknown argument %s\n", k);
      usage();
    }
  }
  if (secs <= 0) {
    fprintf(stderr, "w1-capi: --secs must be > 0\n");
    usage();
  }

  if (sem_init(&permits, 0, 0) != 0) {
    perror("sem_init");
    return 1;
  }

  raft_config *configs[N + 1] = {NULL};
  for (uint64_t id = 1; id <= N; id++) {
    members[id].id = id;
    raft_config_builder *b;
    CHECK_OK(raft_config_builder_new(&b));
    CHECK_OK(raft_config_builder_set_id(b, id));
    for (uint64_t v = 1; v <= N; v++) CHECK_OK(raft_config_builder_add_voter(b, v));
    CHECK_OK(raft_config_builder_set_election_timeout_ms(b, 1000));
    CHECK_OK(raft_config_builder_set_heartbeat_ms(b, 100));
    if (caller_runs) CHECK_OK(raft_config_builder_set_caller_runs(b, true));
    CHECK_OK(raft_config_builder_set_userdata(b, &members[id], NULL));
    CHECK_OK(raft_config_builder_set_send_callback(b, send_cb));
    CHECK_OK(raft_config_builder_set_apply_callback(b, apply_cb));
    CHECK_OK(raft_config_builder_set_snapshot_callbacks(b, snapshot_cb, restore_cb));
    CHECK_OK(raft_config_builder_set_snapshot_entries(b, 100000));
    CHECK_OK(raft_config_builder_build(b, &configs[id]));
    raft_node *n;
    CHECK_OK(raft_node_start(configs[id], &n));
    atomic_store_explicit(&nodes[id], n, memory_order_release);
  }

  /* Wait up to 10 s for a leader. */
  raft_node *leader = NULL;
  uint64_t leader_id = 0;
  for (uint64_t deadline = now_ns() + 10000000000ull; !leader && now_ns() < deadline;) {
    for (uint64_t id = 1; id <= N && !leader; id++) {
      raft_node_status_info si;
      raft_node *n = atomic_load(&nodes[id]);
      CHECK_OK(raft_node_status(n, &si));
      if (si.role == RAFT_ROLE_LEADER) {
        leader = n;
        leader_id = id;
      }
    }
    if (!leader) sleep_ms(5);
  }
  if (!leader) DIE("no leader after 10 s");
  fprintf(stderr, "w1-capi: library %s, leader %llu, caller_runs %d\n", raft_version(),
          (unsigned long long)leader_id, (int)caller_runs);

  row rows[MAX_WINDOWS];
  for (size_t i = 0; i < nwin; i++) {
    row r = run_window(leader, windows[i], size, warmup, secs);
    bench_line(caller_runs, r.window, "ops", r.ops, "ops/s");
    bench_line(caller_runs, r.window, "p50", r.p50, "us");
    bench_line(caller_runs, r.window, "p99", r.p99, "us");
    bench_line(caller_runs, r.window, "p999", r.p999, "us");
    fflush(stdout);
    rows[i] = r;
  }

  char title[256];
  snprintf(title, sizeof title,
           "W1 (C ABI, %s): raft-manager, 3 nodes in-process, memory storage, %zu-byte "
           "commands, %g s per row",
           caller_runs ? "caller-runs" : "default", size, secs);
  print_table(title, rows, nwin);
  fflush(stdout);

  /* Stop every node first (no callback runs afterwards; a step into a stopped node just
   * returns SHUT_DOWN), then free the handles and configs. */
  for (uint64_t id = 1; id <= N; id++) CHECK_OK(raft_node_shutdown(atomic_load(&nodes[id])));
  for (uint64_t id = 1; id <= N; id++) {
    raft_node *n = atomic_exchange(&nodes[id], NULL);
    CHECK_OK(raft_node_free(n));
    raft_config_free(configs[id]);
  }
  /* The engine threads are joined: the state machines can be read. */
  fprintf(stderr, "w1-capi: applied per node: %llu %llu %llu\n",
          (unsigned long long)members[1].applied, (unsigned long long)members[2].applied,
          (unsigned long long)members[3].applied);
  uint64_t ref = atomic_load(&refused);
  if (ref) fprintf(stderr, "w1-capi: %llu messages refused by raft_node_step\n",
                   (unsigned long long)ref);
  free(st.lat);
  sem_destroy(&permits);
  pthread_mutex_destroy(&st_mu);
  return 0;
}

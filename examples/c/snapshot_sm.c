/* A custom state machine with snapshots: a running sum, snapshotted every 5 entries through
 * raft_snapshot_writer and restored through raft_snapshot_reader (read with a deliberately
 * tiny buffer). Restarting from the same data directory restores the latest snapshot and
 * replays the log tail. */
#define _POSIX_C_SOURCE 200809L
#include <stdatomic.h>
#include <stdlib.h>

#include "util.h"

#define FILLER 1000 /* extra snapshot bytes, to exercise multi-read restores */

typedef struct summer {
  pthread_mutex_t mu;
  uint64_t count, sum;
  atomic_int snapshots, restores;
} summer;

static raft_snapshot_writer *_Atomic stale_writer;

/* Process-wide log callback: counts the library's "snapshot taken" events. */
static void log_cb(void *ud, const raft_log_record *rec) {
  CHECK(rec->target != NULL && rec->message != NULL && rec->level <= RAFT_LOG_LEVEL_INFO);
  if (strstr(rec->message, "snapshot taken") != NULL) atomic_fetch_add((atomic_int *)ud, 1);
}
static atomic_int logged_snapshots;

static int apply_cb(void *ud, uint64_t index, const uint8_t *cmd, size_t len, raft_buf *out) {
  summer *s = ud;
  char num[32];
  (void)index;
  if (len == 0 || len >= sizeof num) return 1;
  memcpy(num, cmd, len);
  num[len] = '\0';
  pthread_mutex_lock(&s->mu);
  s->count++;
  s->sum += strtoull(num, NULL, 10);
  int n = snprintf(num, sizeof num, "%llu", (unsigned long long)s->sum);
  pthread_mutex_unlock(&s->mu);
  return raft_buf_set(out, (const uint8_t *)num, (size_t)n) == RAFT_STATUS_OK ? 0 : 1;
}

static void put_u64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static uint64_t get_u64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
  return v;
}

static int snapshot_cb(void *ud, raft_snapshot_writer *w) {
  summer *s = ud;
  uint8_t head[16], filler[FILLER];
  pthread_mutex_lock(&s->mu);
  put_u64(head, s->count);
  put_u64(head + 8, s->sum);
  pthread_mutex_unlock(&s->mu);
  for (int i = 0; i < FILLER; i++) filler[i] = (uint8_t)(i * 7);
  if (raft_snapshot_writer_write(w, head, 8) != RAFT_STATUS_OK) return 1;
  if (raft_snapshot_writer_write(w, head + 8, 8) != RAFT_STATUS_OK) return 1;
  if (raft_snapshot_writer_write(w, filler, FILLER) != RAFT_STATUS_OK) return 1;
  atomic_store(&stale_writer, w);
  atomic_fetch_add(&s->snapshots, 1);
  return 0;
}

static int restore_cb(void *ud, raft_snapshot_reader *r) {
  summer *s = ud;
  uint8_t all[16 + FILLER + 8], chunk[7];
  size_t total = 0, n = 0;
  do { /* a small buffer: many calls, the last ones short */
    if (raft_snapshot_reader_read(r, chunk, sizeof chunk, &n) != RAFT_STATUS_OK) return 1;
    if (total + n > sizeof all) return 2;
    memcpy(all + total, chunk, n);
    total += n;
  } while (n > 0);
  if (total != 16 + FILLER) return 3;
  for (int i = 0; i < FILLER; i++)
    if (all[16 + i] != (uint8_t)(i * 7)) return 4;
  pthread_mutex_lock(&s->mu);
  s->count = get_u64(all);
  s->sum = get_u64(all + 8);
  pthread_mutex_unlock(&s->mu);
  atomic_fetch_add(&s->restores, 1);
  return 0;
}

static void send_cb(void *ud, uint64_t to, const uint8_t *data, size_t len) {
  (void)ud, (void)to, (void)data, (void)len;
}

static raft_node *start(const char *dir, summer *s) {
  raft_config_builder *b;
  raft_config *c;
  raft_node *n;
  CHECK_OK(raft_config_builder_new(&b));
  CHECK_OK(raft_config_builder_set_id(b, 1));
  CHECK_OK(raft_config_builder_add_voter(b, 1));
  CHECK_OK(raft_config_builder_set_data_dir(b, dir));
  CHECK_OK(raft_config_builder_set_unsafe_no_fsync(b, true));
  CHECK_OK(raft_config_builder_set_snapshot_entries(b, 5));
  CHECK_OK(raft_config_builder_set_election_timeout_ms(b, 150 * time_scale()));
  CHECK_OK(raft_config_builder_set_userdata(b, s, NULL));
  CHECK_OK(raft_config_builder_set_send_callback(b, send_cb));
  CHECK_OK(raft_config_builder_set_apply_callback(b, apply_cb));
  CHECK_OK(raft_config_builder_set_snapshot_callbacks(b, snapshot_cb, restore_cb));
  CHECK_OK(raft_config_builder_build(b, &c));
  CHECK_OK(raft_node_start(c, &n));
  raft_config_free(c);
  return n;
}

static uint64_t sum_of(summer *s) {
  pthread_mutex_lock(&s->mu);
  uint64_t v = s->sum;
  pthread_mutex_unlock(&s->mu);
  return v;
}

int main(void) {
  char dir[] = "/tmp/raft-snapshot-sm-XXXXXX";
  CHECK(mkdtemp(dir) != NULL);
  CHECK_STATUS(raft_set_log_callback(log_cb, 99, &logged_snapshots), RAFT_STATUS_INVALID_ARGUMENT);
  CHECK_OK(raft_set_log_callback(log_cb, RAFT_LOG_LEVEL_INFO, &logged_snapshots));

  summer a;
  memset(&a, 0, sizeof a);
  pthread_mutex_init(&a.mu, NULL);
  raft_node *n = start(dir, &a);
  CHECK(atomic_load(&a.restores) == 0); /* a fresh directory has no snapshot */
  uint64_t want = 0;
  for (int i = 1; i <= 23; i++) {
    char cmd[16];
    snprintf(cmd, sizeof cmd, "%d", i);
    CHECK_OK(propose_retry(n, cmd, 10000 * time_scale()));
    want += (uint64_t)i;
  }
  CHECK(sum_of(&a) == want);
  CHECK(atomic_load(&a.snapshots) >= 3);
  /* The log record is emitted once the snapshot is stored, after the state machine's
   * snapshot callback returned: wait for it instead of expecting it already. */
  for (uint64_t end = now_ms() + 10000 * time_scale();
       atomic_load(&logged_snapshots) < 1 && now_ms() < end; sleep_ms(5)) {
  }
  CHECK(atomic_load(&logged_snapshots) >= 1);
  CHECK_OK(raft_set_log_callback(NULL, RAFT_LOG_LEVEL_OFF, NULL));
  /* a writer is only valid inside its callback */
  uint8_t x = 1;
  CHECK_STATUS(raft_snapshot_writer_write(atomic_load(&stale_writer), &x, 1),
               RAFT_STATUS_INVALID_HANDLE);
  CHECK_OK(raft_node_free(n));
  printf("first run: sum %llu, %d snapshots\n", (unsigned long long)want,
         atomic_load(&a.snapshots));

  /* Restart from the same directory into an empty state machine. */
  summer b;
  memset(&b, 0, sizeof b);
  pthread_mutex_init(&b.mu, NULL);
  n = start(dir, &b);
  CHECK(atomic_load(&b.restores) == 1); /* restored during raft_node_start */
  CHECK(sum_of(&b) > 0 && sum_of(&b) <= want);
  uint64_t end = now_ms() + 10000 * time_scale();
  while (sum_of(&b) != want && now_ms() < end) sleep_ms(10); /* replay of the log tail */
  CHECK(sum_of(&b) == want);
  raft_buf resp = {NULL, 0};
  CHECK(wait_leader(n, 10000 * time_scale()));
  CHECK_OK(raft_node_propose(n, (const uint8_t *)"24", 2, 5000, &resp));
  want += 24;
  char expect[32];
  snprintf(expect, sizeof expect, "%llu", (unsigned long long)want);
  CHECK(resp.len == strlen(expect) && memcmp(resp.data, expect, resp.len) == 0);
  raft_buf_free(&resp);
  CHECK(resp.data == NULL && resp.len == 0);
  CHECK_OK(raft_node_free(n));
  printf("second run: restored, sum %llu\n", (unsigned long long)want);

  pthread_mutex_destroy(&a.mu);
  pthread_mutex_destroy(&b.mu);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  CHECK(system(cmd) == 0);
  return 0;
}

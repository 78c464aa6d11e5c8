/* Bring your own store: the node's log, hard state and snapshots live in a C-side "durable
 * store" (plain arrays here; a database or file in real life). The persist callbacks only
 * queue the write; a separate completion thread applies it to the store and then reports
 * it with raft_node_persisted. The node is then freed and restarted from the C-held state
 * with the raft_config_builder_load_* calls, and the data must have survived. */
#define _POSIX_C_SOURCE 200809L
#include <stdbool.h>

#include "util.h"

/* ---- the embedder's durable store ---- */

typedef struct stored_entry {
  uint64_t term, index;
  uint8_t kind;
  uint8_t *data;
  size_t len;
} stored_entry;

typedef struct durable {
  bool has_hs;
  uint64_t term, vote, commit;
  stored_entry *entries;
  size_t n, cap;
  uint8_t *snap_meta, *snap_data;
  size_t snap_meta_len, snap_len;
  uint64_t snap_index;
} durable;

static uint8_t *dup_bytes(const uint8_t *p, size_t len) {
  if (len == 0) return NULL;
  uint8_t *c = malloc(len);
  CHECK(c != NULL);
  memcpy(c, p, len);
  return c;
}

/* Drops entries with index >= from. */
static void truncate_from(durable *d, uint64_t from) {
  while (d->n > 0 && d->entries[d->n - 1].index >= from) free(d->entries[--d->n].data);
}

/* Drops entries with index <= upto (they are in the snapshot). */
static void compact_to(durable *d, uint64_t upto) {
  size_t k = 0;
  while (k < d->n && d->entries[k].index <= upto) free(d->entries[k++].data);
  memmove(d->entries, d->entries + k, (d->n - k) * sizeof *d->entries);
  d->n -= k;
}

static void durable_free(durable *d) {
  truncate_from(d, 0);
  free(d->entries);
  free(d->snap_meta);
  free(d->snap_data);
  memset(d, 0, sizeof *d);
}

/* ---- queued writes and the completion thread ---- */

typedef struct job {
  struct job *next;
  uint64_t token;
  bool snapshot;
  /* log write */
  bool has_hs;
  raft_hard_state hs;
  uint64_t replace_from;
  stored_entry *entries;
  size_t n;
  /* snapshot write */
  uint64_t snap_index;
  uint8_t *meta, *data;
  size_t meta_len, len;
  bool keep_log;
} job;

typedef struct app {
  pthread_mutex_t mu;
  pthread_cond_t cond;
  durable store;
  job *head, *tail;
  bool busy, stop;
  const raft_node *node; /* NULL while no node is running */
  pthread_t completer;
  unsigned long persist_calls, completed;
  /* the state machine: count and sum of applied values */
  uint64_t count, sum;
} app;

static void enqueue(app *a, job *j) {
  pthread_mutex_lock(&a->mu);
  if (a->tail) a->tail->next = j; else a->head = j;
  a->tail = j;
  pthread_cond_broadcast(&a->cond);
  pthread_mutex_unlock(&a->mu);
}

static void apply_job(durable *d, job *j) {
  if (j->snapshot) {
    if (j->keep_log) compact_to(d, j->snap_index); else truncate_from(d, 0);
    free(d->snap_meta);
    free(d->snap_data);
    d->snap_meta = j->meta, d->snap_meta_len = j->meta_len;
    d->snap_data = j->data, d->snap_len = j->len;
    d->snap_index = j->snap_index;
    return;
  }
  if (j->replace_from != 0) truncate_from(d, j->replace_from);
  for (size_t i = 0; i < j->n; i++) {
    if (d->n > 0) CHECK(d->entries[d->n - 1].index + 1 == j->entries[i].index);
    if (d->n == d->cap) {
      d->cap = d->cap ? 2 * d->cap : 16;
      d->entries = realloc(d->entries, d->cap * sizeof *d->entries);
      CHECK(d->entries != NULL);
    }
    d->entries[d->n++] = j->entries[i]; /* takes the data */
  }
  free(j->entries);
  if (j->has_hs) {
    d->has_hs = true;
    d->term = j->hs.term, d->vote = j->hs.vote, d->commit = j->hs.commit;
  }
}

static void *completer_main(void *arg) {
  app *a = arg;
  pthread_mutex_lock(&a->mu);
  for (;;) {
    while (!a->stop && (a->head == NULL || a->node == NULL)) pthread_cond_wait(&a->cond, &a->mu);
    if (a->stop) break; /* stop() drained the queue */
    job *j = a->head;
    a->head = j->next;
    if (a->head == NULL) a->tail = NULL;
    a->busy = true;
    pthread_mutex_unlock(&a->mu);
    sleep_ms(1); /* "the disk is slow" */
    pthread_mutex_lock(&a->mu);
    apply_job(&a->store, j); /* durable from here on */
    const raft_node *node = a->node;
    pthread_mutex_unlock(&a->mu);
    /* Only now may the node rely on the write. */
    CHECK_OK(raft_node_persisted(node, j->token, 1));
    free(j);
    pthread_mutex_lock(&a->mu);
    a->completed++;
    a->busy = false;
    pthread_cond_broadcast(&a->cond);
  }
  pthread_mutex_unlock(&a->mu);
  return NULL;
}

/* Storage thread: copy the write (it is borrowed) and queue it. */
static void persist_cb(void *ud, uint64_t token, const raft_hard_state *hs, uint64_t replace_from,
                       const raft_entry *entries, size_t n) {
  app *a = ud;
  job *j = calloc(1, sizeof *j);
  CHECK(j != NULL);
  j->token = token;
  if (hs) j->has_hs = true, j->hs = *hs;
  j->replace_from = replace_from;
  j->n = n;
  if (n > 0) {
    j->entries = calloc(n, sizeof *j->entries);
    CHECK(j->entries != NULL);
    for (size_t i = 0; i < n; i++) {
      stored_entry *e = &j->entries[i];
      e->term = entries[i].term, e->index = entries[i].index, e->kind = entries[i].kind;
      e->data = dup_bytes(entries[i].data, entries[i].len), e->len = entries[i].len;
    }
  }
  pthread_mutex_lock(&a->mu);
  a->persist_calls++;
  pthread_mutex_unlock(&a->mu);
  enqueue(a, j);
}

static void persist_snapshot_cb(void *ud, uint64_t token, uint64_t index, uint64_t term,
                                const uint8_t *meta, size_t meta_len, const uint8_t *data,
                                size_t len, bool keep_log) {
  app *a = ud;
  job *j = calloc(1, sizeof *j);
  CHECK(j != NULL);
  (void)term;
  j->token = token, j->snapshot = true, j->snap_index = index, j->keep_log = keep_log;
  j->meta = dup_bytes(meta, meta_len), j->meta_len = meta_len;
  j->data = dup_bytes(data, len), j->len = len;
  enqueue(a, j);
}

/* ---- state machine ---- */

static void put_u64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static uint64_t get_u64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
  return v;
}

static int apply_cb(void *ud, uint64_t index, const uint8_t *cmd, size_t len, raft_buf *out) {
  app *a = ud;
  (void)index, (void)out;
  if (len != 8) return 1;
  pthread_mutex_lock(&a->mu);
  a->count++;
  a->sum += get_u64(cmd);
  pthread_mutex_unlock(&a->mu);
  return 0;
}

static int snapshot_cb(void *ud, raft_snapshot_writer *w) {
  app *a = ud;
  uint8_t b[16];
  pthread_mutex_lock(&a->mu);
  put_u64(b, a->count), put_u64(b + 8, a->sum);
  pthread_mutex_unlock(&a->mu);
  return raft_snapshot_writer_write(w, b, sizeof b) == RAFT_STATUS_OK ? 0 : 1;
}

static int restore_cb(void *ud, raft_snapshot_reader *r) {
  app *a = ud;
  uint8_t b[16];
  size_t got = 0, n = 0;
  do {
    if (raft_snapshot_reader_read(r, b + got, sizeof b - got, &n) != RAFT_STATUS_OK) return 1;
    got += n;
  } while (n > 0 && got < sizeof b);
  if (got != sizeof b) return 2;
  pthread_mutex_lock(&a->mu);
  a->count = get_u64(b), a->sum = get_u64(b + 8);
  pthread_mutex_unlock(&a->mu);
  return 0;
}

static void send_cb(void *ud, uint64_t to, const uint8_t *data, size_t len) {
  (void)ud, (void)to, (void)data, (void)len; /* single node */
}

/* ---- driving the node ---- */

/* Builds a config whose durable state is loaded from the store. */
static raft_config *make_config(app *a) {
  raft_config_builder *b;
  raft_config *cfg;
  CHECK_OK(raft_config_builder_new(&b));
  CHECK_OK(raft_config_builder_set_id(b, 1));
  CHECK_OK(raft_config_builder_add_voter(b, 1));
  CHECK_OK(raft_config_builder_set_election_timeout_ms(b, 150 * time_scale()));
  CHECK_OK(raft_config_builder_set_heartbeat_ms(b, 30 * time_scale()));
  CHECK_OK(raft_config_builder_set_userdata(b, a, NULL));
  CHECK_OK(raft_config_builder_set_send_callback(b, send_cb));
  CHECK_OK(raft_config_builder_set_apply_callback(b, apply_cb));
  CHECK_OK(raft_config_builder_set_snapshot_callbacks(b, snapshot_cb, restore_cb));
  CHECK_OK(raft_config_builder_set_snapshot_entries(b, 10));
  CHECK_OK(raft_config_builder_set_storage_callbacks(b, persist_cb, persist_snapshot_cb));
  pthread_mutex_lock(&a->mu);
  durable *d = &a->store;
  if (d->snap_meta)
    CHECK_OK(raft_config_builder_load_snapshot(b, d->snap_meta, d->snap_meta_len, d->snap_data,
                                               d->snap_len));
  for (size_t i = 0; i < d->n; i++) {
    stored_entry *e = &d->entries[i];
    CHECK_OK(raft_config_builder_load_entry(b, e->term, e->index, e->kind, e->data, e->len));
  }
  if (d->has_hs) CHECK_OK(raft_config_builder_load_hard_state(b, d->term, d->vote, d->commit));
  pthread_mutex_unlock(&a->mu);
  CHECK_OK(raft_config_builder_build(b, &cfg));
  return cfg;
}

static raft_node *start(app *a) {
  raft_config *cfg = make_config(a);
  raft_node *node;
  CHECK_OK(raft_node_start(cfg, &node));
  raft_config_free(cfg);
  pthread_mutex_lock(&a->mu);
  a->node = node;
  pthread_cond_broadcast(&a->cond);
  pthread_mutex_unlock(&a->mu);
  return node;
}

/* Frees the node, then lets the completion thread finish what it holds (a write that
 * reached the store is durable even if the node never heard about it). */
static void stop(app *a, raft_node *node) {
  pthread_mutex_lock(&a->mu);
  while (a->head != NULL || a->busy) pthread_cond_wait(&a->cond, &a->mu);
  a->node = NULL;
  pthread_mutex_unlock(&a->mu);
  CHECK_OK(raft_node_free(node));
  /* Writes issued while shutting down were abandoned by the node: drop them. */
  pthread_mutex_lock(&a->mu);
  while (a->head != NULL) {
    job *j = a->head;
    a->head = j->next;
    for (size_t i = 0; i < j->n; i++) free(j->entries[i].data);
    free(j->entries);
    free(j->meta);
    free(j->data);
    free(j);
  }
  a->tail = NULL;
  pthread_mutex_unlock(&a->mu);
}

static void propose_values(raft_node *node, uint64_t from, uint64_t to) {
  for (uint64_t v = from; v < to; v++) {
    uint8_t cmd[8];
    put_u64(cmd, v);
    raft_status s;
    for (int tries = 0;; tries++) {
      s = raft_node_propose(node, cmd, sizeof cmd, 5000 * time_scale(), NULL);
      if (s != RAFT_STATUS_NOT_LEADER || tries > 500) break;
      sleep_ms(10);
    }
    CHECK_OK(s);
  }
}

static void wait_applied(app *a, uint64_t count) {
  for (int i = 0; i < 1000; i++) {
    pthread_mutex_lock(&a->mu);
    uint64_t c = a->count;
    pthread_mutex_unlock(&a->mu);
    if (c >= count) return;
    sleep_ms(10);
  }
  CHECK(!"timed out waiting for apply");
}

int main(void) {
  static app a;
  pthread_mutex_init(&a.mu, NULL);
  pthread_cond_init(&a.cond, NULL);
  CHECK(pthread_create(&a.completer, NULL, completer_main, &a) == 0);

  /* A config without storage callbacks cannot load state; a gap in the log is refused. */
  raft_config_builder *b;
  CHECK_OK(raft_config_builder_new(&b));
  CHECK_OK(raft_config_builder_load_entry(b, 1, 1, 0, NULL, 0));
  CHECK_STATUS(raft_config_builder_load_entry(b, 1, 3, 0, NULL, 0), RAFT_STATUS_INVALID_ARGUMENT);
  CHECK_STATUS(raft_config_builder_load_entry(b, 1, 2, 9, NULL, 0), RAFT_STATUS_INVALID_ARGUMENT);
  raft_config_builder_free(b);

  /* First run: 25 values (snapshots every 10 entries go through persist_snapshot). */
  raft_node *node = start(&a);
  propose_values(node, 1, 26);
  wait_applied(&a, 25);
  stop(&a, node);
  pthread_mutex_lock(&a.mu);
  uint64_t sum = a.sum;
  CHECK(a.count == 25 && sum == 25 * 26 / 2);
  CHECK(a.persist_calls > 0 && a.completed > 0);
  CHECK(a.store.has_hs && a.store.term > 0);
  CHECK(a.store.snap_meta != NULL && a.store.snap_index >= 10);
  printf("first run: %lu persist calls, snapshot at %llu, %zu entries after it, term %llu\n",
         a.persist_calls, (unsigned long long)a.store.snap_index, a.store.n,
         (unsigned long long)a.store.term);
  /* The restarted state machine starts empty: everything comes from the store. */
  a.count = 0, a.sum = 0;
  pthread_mutex_unlock(&a.mu);

  /* Restart from the C-held state only, then add more. */
  node = start(&a);
  wait_applied(&a, 25);
  pthread_mutex_lock(&a.mu);
  CHECK(a.count == 25 && a.sum == sum);
  pthread_mutex_unlock(&a.mu);
  propose_values(node, 26, 31);
  wait_applied(&a, 30);
  raft_node_status_info st;
  CHECK_OK(raft_node_status(node, &st));
  CHECK(st.applied >= 30);
  stop(&a, node);
  pthread_mutex_lock(&a.mu);
  CHECK(a.count == 30 && a.sum == 30 * 31 / 2);
  a.stop = true;
  pthread_cond_broadcast(&a.cond);
  pthread_mutex_unlock(&a.mu);
  pthread_join(a.completer, NULL);
  durable_free(&a.store);
  pthread_cond_destroy(&a.cond);
  pthread_mutex_destroy(&a.mu);
  printf("custom_storage: ok (restart recovered %llu values)\n", (unsigned long long)30);
  return 0;
}

/* Testing a C state machine under faults with raft_sim_run: the same apply, snapshot and
 * restore callbacks a real node takes, plus query (the read path) and state_hash. A correct
 * key-value store passes 200 seeds (3 under valgrind); four broken variants are each
 * caught, and the failing seed replays the failure.
 *
 * Commands use the built-in model's format: "put K V", "append K S", "del K", "get K". */
#define _POSIX_C_SOURCE 200809L
#include "util.h"

#define NKEYS 3

enum bug { BUG_NONE, BUG_UNORDERED, BUG_LOSSY_SNAPSHOT };

typedef struct kv {
  char *vals[NKEYS]; /* NULL: absent */
  uint64_t revision; /* writes applied: part of the state */
  enum bug bug;
  uint64_t salt; /* BUG_UNORDERED: this instance's "hash seed" */
} kv;

static enum bug current_bug;
/* Instances created in this run: each gets the next salt, so a replay that creates them in
 * the same order sees the same salts (reset before every run). */
static uint64_t created;

static void *skv_create(void *ud) {
  (void)ud;
  kv *s = calloc(1, sizeof *s);
  if (s != NULL) {
    s->bug = current_bug;
    s->salt = ++created;
  }
  return s;
}

static void skv_destroy(void *inst) {
  kv *s = inst;
  for (int i = 0; i < NKEYS; i++) free(s->vals[i]);
  free(s);
}

/* Parses "OP kN[ ARG]"; returns the key index or -1. */
static int parse(const uint8_t *cmd, size_t len, char *op, size_t opcap, const uint8_t **arg,
                 size_t *arglen) {
  const uint8_t *sp = memchr(cmd, ' ', len);
  if (sp == NULL || (size_t)(sp - cmd) >= opcap) return -1;
  memcpy(op, cmd, (size_t)(sp - cmd));
  op[sp - cmd] = '\0';
  const uint8_t *key = sp + 1, *end = cmd + len;
  if (end - key < 2 || key[0] != 'k' || key[1] < '0' || key[1] >= '0' + NKEYS) return -1;
  *arg = NULL;
  *arglen = 0;
  if (end - key > 2) {
    if (key[2] != ' ') return -1;
    *arg = key + 3;
    *arglen = (size_t)(end - key - 3);
  }
  return key[1] - '0';
}

static char *dup_bytes(const uint8_t *p, size_t n) {
  char *s = malloc(n + 1);
  CHECK(s != NULL);
  memcpy(s, p, n);
  s[n] = '\0';
  return s;
}

/* BROKEN (a): when more than two keys are set, evicts the "first" one in an iteration order
 * that depends on the instance's salt, as a hash map's order depends on its per-process hash
 * seed. */
static void evict_unordered(kv *s) {
  int n = 0;
  for (int i = 0; i < NKEYS; i++) n += s->vals[i] != NULL;
  if (n <= 2) return;
  int start = (int)(((s->salt * 0x9E3779B97F4A7C15u) >> 32) % NKEYS);
  for (int j = 0; j < NKEYS; j++) {
    int i = (start + j) % NKEYS;
    if (s->vals[i] != NULL) {
      free(s->vals[i]);
      s->vals[i] = NULL;
      return;
    }
  }
}

static int skv_apply(void *inst, uint64_t index, const uint8_t *cmd, size_t len, raft_buf *out) {
  kv *s = inst;
  char op[16];
  const uint8_t *arg;
  size_t alen;
  (void)index;
  int k = parse(cmd, len, op, sizeof op, &arg, &alen);
  s->revision++;
  const char *resp = "error: bad command";
  if (k >= 0 && strcmp(op, "put") == 0 && arg != NULL) {
    free(s->vals[k]);
    s->vals[k] = dup_bytes(arg, alen);
    resp = "ok";
  } else if (k >= 0 && strcmp(op, "append") == 0 && arg != NULL) {
    size_t old = s->vals[k] ? strlen(s->vals[k]) : 0;
    char *v = malloc(old + alen + 1);
    CHECK(v != NULL);
    if (old) memcpy(v, s->vals[k], old);
    memcpy(v + old, arg, alen);
    v[old + alen] = '\0';
    free(s->vals[k]);
    s->vals[k] = v;
    resp = v;
  } else if (k >= 0 && strcmp(op, "del") == 0 && arg == NULL) {
    free(s->vals[k]);
    s->vals[k] = NULL;
    resp = "ok";
  }
  int rc = raft_buf_set(out, (const uint8_t *)resp, strlen(resp)) == RAFT_STATUS_OK ? 0 : 1;
  if (s->bug == BUG_UNORDERED) evict_unordered(s);
  return rc;
}

static int skv_query(void *inst, const uint8_t *q, size_t len, raft_buf *out) {
  kv *s = inst;
  char op[16];
  const uint8_t *arg;
  size_t alen;
  int k = parse(q, len, op, sizeof op, &arg, &alen);
  if (k < 0 || strcmp(op, "get") != 0) return 1;
  const char *v = s->vals[k] ? s->vals[k] : "";
  return raft_buf_set(out, (const uint8_t *)v, strlen(v)) == RAFT_STATUS_OK ? 0 : 1;
}

/* Snapshot: revision (8 bytes, left out by BROKEN (b)), then per key a 4-byte length
 * (0xffffffff: absent) and the bytes. */
static int skv_snapshot(void *inst, raft_snapshot_writer *w) {
  kv *s = inst;
  if (s->bug != BUG_LOSSY_SNAPSHOT &&
      raft_snapshot_writer_write(w, (const uint8_t *)&s->revision, 8) != RAFT_STATUS_OK)
    return 1;
  for (int i = 0; i < NKEYS; i++) {
    uint32_t n = s->vals[i] ? (uint32_t)strlen(s->vals[i]) : 0xffffffffu;
    if (raft_snapshot_writer_write(w, (const uint8_t *)&n, 4) != RAFT_STATUS_OK) return 1;
    if (s->vals[i] && raft_snapshot_writer_write(w, (const uint8_t *)s->vals[i], n) != RAFT_STATUS_OK)
      return 1;
  }
  return 0;
}

static int read_exact(raft_snapshot_reader *r, uint8_t *p, size_t n) {
  while (n > 0) {
    size_t got = 0;
    if (raft_snapshot_reader_read(r, p, n, &got) != RAFT_STATUS_OK || got == 0) return 1;
    p += got;
    n -= got;
  }
  return 0;
}

static int skv_restore(void *inst, raft_snapshot_reader *r) {
  kv *s = inst;
  s->revision = 0;
  if (s->bug != BUG_LOSSY_SNAPSHOT && read_exact(r, (uint8_t *)&s->revision, 8)) return 1;
  for (int i = 0; i < NKEYS; i++) {
    uint32_t n;
    if (read_exact(r, (uint8_t *)&n, 4)) return 1;
    free(s->vals[i]);
    s->vals[i] = NULL;
    if (n == 0xffffffffu) continue;
    if (n > (1u << 20)) return 1;
    s->vals[i] = malloc((size_t)n + 1);
    if (s->vals[i] == NULL || read_exact(r, (uint8_t *)s->vals[i], n)) return 1;
    s->vals[i][n] = '\0';
  }
  return 0;
}

static int skv_hash(void *inst, uint64_t *out) {
  kv *s = inst;
  uint64_t h = 0xcbf29ce484222325ull;
  for (int b = 0; b < 8; b++) h = (h ^ ((s->revision >> (8 * b)) & 0xff)) * 0x100000001b3ull;
  for (int i = 0; i < NKEYS; i++) {
    const char *v = s->vals[i] ? s->vals[i] : "\x01";
    for (; *v; v++) h = (h ^ (uint8_t)*v) * 0x100000001b3ull;
    h = (h ^ 0xff) * 0x100000001b3ull;
  }
  *out = h;
  return 0;
}

/* Workloads: which request kinds the clients use. */
enum mode { MODE_GOOD, MODE_NO_SESSION, MODE_LOCAL_READS };

static int workload(void *ud, uint64_t client, uint64_t op, uint64_t random, uint32_t *out_kind,
                    raft_buf *out_data) {
  enum mode m = *(enum mode *)ud;
  char cmd[64];
  unsigned key = (unsigned)(random % NKEYS), pick = (unsigned)((random / NKEYS) % 10);
  int n;
  if (m == MODE_NO_SESSION || (m == MODE_GOOD && pick < 4) || (m == MODE_LOCAL_READS && pick < 5)) {
    n = snprintf(cmd, sizeof cmd, "append k%u %llu.%llu,", key, (unsigned long long)client,
                 (unsigned long long)op);
    *out_kind = m == MODE_NO_SESSION ? RAFT_SIM_REQUEST_KIND_WRITE_WITHOUT_SESSION
                                     : RAFT_SIM_REQUEST_KIND_WRITE;
  } else if (m == MODE_GOOD && pick < 6) {
    n = snprintf(cmd, sizeof cmd, "put k%u %llu.%llu", key, (unsigned long long)client,
                 (unsigned long long)op);
    *out_kind = RAFT_SIM_REQUEST_KIND_WRITE;
  } else {
    n = snprintf(cmd, sizeof cmd, "get k%u", key);
    *out_kind = m == MODE_LOCAL_READS ? RAFT_SIM_REQUEST_KIND_READ_LOCAL : RAFT_SIM_REQUEST_KIND_READ;
  }
  return raft_buf_set(out_data, (const uint8_t *)cmd, (size_t)n) == RAFT_STATUS_OK ? 0 : 1;
}

static const raft_sim_machine machine = {
    .create = skv_create,
    .destroy = skv_destroy,
    .apply = skv_apply,
    .snapshot = skv_snapshot,
    .restore = skv_restore,
    .query = skv_query,
    .state_hash = skv_hash,
};

/* Runs `count` seeds from `first` with the given bug and workload; returns the report. */
static raft_sim_report run(enum bug bug, enum mode mode, uint64_t first, uint64_t count,
                           const char *name) {
  raft_sim_options o;
  CHECK_OK(raft_sim_options_default(&o));
  o.model = RAFT_SIM_MODEL_KIND_KV;
  char hint[128];
  snprintf(hint, sizeof hint, "ctest -R sim_kv  # case %s", name);
  o.replay_hint = hint;
  current_bug = bug;
  created = 0;
  raft_sim_report rep;
  CHECK_OK(raft_sim_run(&o, &machine, workload, &mode, first, count, &rep));
  return rep;
}

/* A broken variant must fail the expected check (`also` is accepted too: a nondeterministic
 * machine may diverge first from its snapshot's copy), and its seed must fail again
 * identically: same check, same words, same replay line. Seeds run one at a time so that
 * each starts with the same salts as its replay. */
static void expect_caught(enum bug bug, enum mode mode, raft_sim_check want, raft_sim_check also,
                          const char *name, uint64_t seeds) {
  raft_sim_report rep;
  for (uint64_t seed = 0;; seed++) {
    CHECK(seed < seeds);
    rep = run(bug, mode, seed, 1, name);
    if (rep.check != RAFT_SIM_CHECK_NONE) break;
    raft_buf_free(&rep.failure);
  }
  printf("%s: %.*s\n", name, (int)rep.failure.len, (const char *)rep.failure.data);
  CHECK(rep.check == (uint32_t)want || rep.check == (uint32_t)also);
  raft_sim_report again = run(bug, mode, rep.seed, 1, name);
  CHECK(again.check == rep.check && again.seed == rep.seed);
  CHECK(again.failure.len == rep.failure.len &&
        memcmp(again.failure.data, rep.failure.data, rep.failure.len) == 0);
  printf("%s: seed %llu replays the failure identically\n\n", name,
         (unsigned long long)rep.seed);
  raft_buf_free(&rep.failure);
  raft_buf_free(&again.failure);
}

int main(void) {
  /* 200 seeds; 3 under valgrind (RAFT_EXAMPLE_SLOW > 1), where a seed takes seconds. */
  uint64_t seeds = time_scale() > 1 ? 3 : 200;
  raft_sim_report ok = run(BUG_NONE, MODE_GOOD, 0, seeds, "correct");
  if (ok.check != RAFT_SIM_CHECK_NONE)
    fprintf(stderr, "%.*s\n", (int)ok.failure.len, (const char *)ok.failure.data);
  /* RAFT_SIM_SEED (a replay) runs just that seed. */
  CHECK(ok.check == RAFT_SIM_CHECK_NONE && ok.completed > ok.seeds_run * 45);
  CHECK(ok.seeds_run == seeds || getenv("RAFT_SIM_SEED") != NULL);
  printf("correct: %llu seeds passed, %llu requests completed, %llu virtual s\n\n",
         (unsigned long long)ok.seeds_run, (unsigned long long)ok.completed,
         (unsigned long long)(ok.virtual_ms / 1000));
  raft_buf_free(&ok.failure);

  const raft_sim_check none = RAFT_SIM_CHECK_NONE;
  expect_caught(BUG_UNORDERED, MODE_GOOD, RAFT_SIM_CHECK_DETERMINISM,
                RAFT_SIM_CHECK_SNAPSHOT_ROUND_TRIP, "unordered", 200);
  expect_caught(BUG_LOSSY_SNAPSHOT, MODE_GOOD, RAFT_SIM_CHECK_SNAPSHOT_ROUND_TRIP, none, "lossy", 200);
  expect_caught(BUG_NONE, MODE_NO_SESSION, RAFT_SIM_CHECK_EXACTLY_ONCE, none, "no_session", 200);
  expect_caught(BUG_NONE, MODE_LOCAL_READS, RAFT_SIM_CHECK_LINEARIZABILITY, none, "local_reads",
                200);

  /* Bad settings are refused with a clear error. */
  raft_sim_options o;
  CHECK_OK(raft_sim_options_default(&o));
  o.nodes = 8;
  raft_sim_report rep;
  enum mode m = MODE_GOOD;
  CHECK_STATUS(raft_sim_run(&o, &machine, workload, &m, 0, 1, &rep), RAFT_STATUS_INVALID_ARGUMENT);
  CHECK_STATUS(raft_sim_run(&o, NULL, workload, &m, 0, 1, &rep), RAFT_STATUS_NULL_ARGUMENT);
  return 0;
}

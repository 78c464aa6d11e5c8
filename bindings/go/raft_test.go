package raft_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	raft "github.com/raft-manager/raft-manager/bindings/go"
)

// kv is the tests' state machine: "key=value" commands; "fail" returns an error and
// "panic" panics (both fail the node). It snapshots as JSON.
type kv struct {
	mu       sync.Mutex
	m        map[string]string
	restores int
}

func newKV() *kv { return &kv{m: map[string]string{}} }

func (s *kv) Apply(index uint64, cmd []byte) ([]byte, error) {
	switch string(cmd) {
	case "fail":
		return nil, errors.New("refused")
	case "panic":
		panic("state machine panic")
	}
	k, v, ok := strings.Cut(string(cmd), "=")
	if !ok {
		return nil, nil
	}
	s.mu.Lock()
	s.m[k] = v
	s.mu.Unlock()
	return []byte(fmt.Sprintf("stored@%d", index)), nil
}

func (s *kv) Snapshot(w io.Writer) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return json.NewEncoder(w).Encode(s.m)
}

func (s *kv) Restore(r io.Reader) error {
	m := map[string]string{}
	if err := json.NewDecoder(r).Decode(&m); err != nil {
		return err
	}
	s.mu.Lock()
	s.m = m
	s.restores++
	s.mu.Unlock()
	return nil
}

func (s *kv) get(k string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[k]
}

// memTransport delivers messages between nodes of one process.
type memTransport struct {
	mu    sync.RWMutex
	nodes map[uint64]*raft.Node
	// last message each node sent, and to whom (for the sender-check test)
	lastMu sync.Mutex
	last   map[uint64]sent
}

type sent struct {
	to  uint64
	msg []byte
}

// sendFrom delivers with the sender named: the receiver checks it (StepFrom).
func (t *memTransport) sendFrom(from, to uint64, msg []byte) {
	t.lastMu.Lock()
	t.last[from] = sent{to, msg}
	t.lastMu.Unlock()
	t.mu.RLock()
	n := t.nodes[to]
	t.mu.RUnlock()
	if n != nil {
		_ = n.StepFrom(from, msg) // a closed node answers ErrInvalidHandle: harmless
	}
}

// sender is one node's Transport over the shared memTransport.
type sender struct {
	from uint64
	t    *memTransport
}

func (s sender) Send(to uint64, msg []byte) { s.t.sendFrom(s.from, to, msg) }

type cluster struct {
	t     *testing.T
	tr    *memTransport
	sms   map[uint64]*kv
	dirs  map[uint64]string
	roles atomic.Int64
	// tune, when set, adjusts each node's Config before it starts.
	tune func(*raft.Config)
}

func newCluster(t *testing.T, ids []uint64, withDirs bool) *cluster {
	return newTunedCluster(t, ids, withDirs, nil)
}

func newTunedCluster(t *testing.T, ids []uint64, withDirs bool, tune func(*raft.Config)) *cluster {
	c := &cluster{t: t, tr: &memTransport{nodes: map[uint64]*raft.Node{}, last: map[uint64]sent{}}, sms: map[uint64]*kv{}, dirs: map[uint64]string{}, tune: tune}
	for _, id := range ids {
		if withDirs {
			c.dirs[id] = filepath.Join(t.TempDir(), fmt.Sprint(id))
		}
		c.start(id, []uint64{1, 2, 3})
	}
	t.Cleanup(c.closeAll)
	return c
}

func (c *cluster) start(id uint64, voters []uint64) {
	c.t.Helper()
	sm := newKV()
	cfg := raft.Config{
		ID: id, Voters: voters, StateMachine: sm, Transport: sender{id, c.tr}, MaxCommandBytes: 1024,
		ElectionTimeout: 300 * time.Millisecond, HeartbeatInterval: 50 * time.Millisecond,
		DataDir: c.dirs[id], UnsafeNoFsync: true, SnapshotEntries: 5,
		OnRoleChange: func(role raft.Role, term, leader uint64) { c.roles.Add(1) },
	}
	if c.tune != nil {
		c.tune(&cfg)
	}
	n, err := raft.NewNode(cfg)
	if err != nil {
		c.t.Fatalf("NewNode(%d): %v", id, err)
	}
	c.tr.mu.Lock()
	c.sms[id] = sm
	c.tr.nodes[id] = n
	c.tr.mu.Unlock()
}

func (c *cluster) node(id uint64) *raft.Node {
	c.tr.mu.RLock()
	defer c.tr.mu.RUnlock()
	return c.tr.nodes[id]
}

func (c *cluster) sm(id uint64) *kv {
	c.tr.mu.RLock()
	defer c.tr.mu.RUnlock()
	return c.sms[id]
}

// kill unpublishes a node, then closes it (outside the lock: its threads are joined).
func (c *cluster) kill(id uint64) {
	c.tr.mu.Lock()
	n := c.tr.nodes[id]
	delete(c.tr.nodes, id)
	c.tr.mu.Unlock()
	if n != nil {
		if err := n.Close(); err != nil {
			c.t.Errorf("Close(%d): %v", id, err)
		}
	}
}

func (c *cluster) closeAll() {
	c.tr.mu.RLock()
	var ids []uint64
	for id := range c.tr.nodes {
		ids = append(ids, id)
	}
	c.tr.mu.RUnlock()
	for _, id := range ids {
		c.kill(id)
	}
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	end := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (c *cluster) leader() uint64 {
	c.t.Helper()
	var found uint64
	waitFor(c.t, "a leader", 20*time.Second, func() bool {
		c.tr.mu.RLock()
		defer c.tr.mu.RUnlock()
		for id, n := range c.tr.nodes {
			if st, err := n.Status(); err == nil && st.Role == raft.Leader {
				found = id
				return true
			}
		}
		return false
	})
	return found
}

// put writes through whichever node leads, retrying retryable errors.
func (c *cluster) put(k, v string) {
	c.t.Helper()
	for attempt := 0; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		resp, err := c.node(c.leader()).Propose(ctx, []byte(k+"="+v))
		cancel()
		if err == nil {
			if !bytes.HasPrefix(resp, []byte("stored@")) {
				c.t.Fatalf("response %q", resp)
			}
			return
		}
		var e *raft.Error
		if attempt > 50 || !errors.As(err, &e) || !e.Status.Retryable() {
			c.t.Fatalf("put %s: %v", k, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (c *cluster) checkAll(ids []uint64, from, to int) {
	c.t.Helper()
	for _, id := range ids {
		for i := from; i < to; i++ {
			k, v := fmt.Sprint("key", i), fmt.Sprint("value", i)
			waitFor(c.t, fmt.Sprintf("node %d to have %s", id, k), 10*time.Second, func() bool { return c.sm(id).get(k) == v })
		}
	}
}

func TestThreeNodesInProcess(t *testing.T) {
	var logged atomic.Int64
	if err := raft.SetLogger(func(r raft.LogRecord) {
		if r.Level <= raft.LogInfo && r.Message != "" && r.Target != "" {
			logged.Add(1)
		}
	}, raft.LogInfo); err != nil {
		t.Fatalf("SetLogger: %v", err)
	}
	defer func() {
		if err := raft.SetLogger(nil, raft.LogOff); err != nil {
			t.Errorf("SetLogger(nil): %v", err)
		}
	}()
	c := newCluster(t, []uint64{1, 2, 3}, false)
	leader := c.leader()

	// Concurrent proposals from many goroutines.
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if _, err := c.node(leader).Propose(ctx, []byte(fmt.Sprintf("key%d=value%d", i, i))); err != nil {
				errs <- err
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("propose: %v", err)
	}
	c.checkAll([]uint64{1, 2, 3}, 0, 20)

	// A follower refuses with ErrNotLeader naming the leader.
	follower := leader%3 + 1
	_, err := c.node(follower).Propose(context.Background(), []byte("x=1"))
	var e *raft.Error
	if !errors.Is(err, raft.ErrNotLeader) || !errors.As(err, &e) || e.Leader != leader {
		t.Fatalf("propose on follower: %v (want ErrNotLeader with leader %d)", err, leader)
	}
	// A command above MaxCommandBytes is refused up front, nothing proposed.
	if _, err := c.node(leader).Propose(context.Background(), make([]byte, 1025)); !errors.Is(err, raft.ErrTooLarge) {
		t.Fatalf("oversized command: %v", err)
	}
	// A real message of the leader, delivered as if another node had sent it, is refused;
	// with its true sender it is accepted.
	c.tr.lastMu.Lock()
	m := c.tr.last[leader]
	c.tr.lastMu.Unlock()
	impostor := uint64(1)
	for impostor == leader || impostor == m.to {
		impostor++
	}
	if err := c.node(m.to).StepFrom(impostor, m.msg); !errors.Is(err, raft.ErrInvalidArgument) {
		t.Fatalf("StepFrom(impostor %d): %v", impostor, err)
	}
	if err := c.node(m.to).StepFrom(leader, m.msg); err != nil {
		t.Fatalf("StepFrom(leader): %v", err)
	}
	// Linearizable read on the follower.
	idx, err := c.node(follower).ReadIndex(context.Background())
	if err != nil || idx == 0 || c.sm(follower).get("key19") != "value19" {
		t.Fatalf("ReadIndex on follower: %d, %v", idx, err)
	}
	// Context already cancelled or past its deadline: nothing is proposed.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.node(leader).Propose(ctx, []byte("y=1")); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled propose: %v", err)
	}
	dctx, dcancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer dcancel()
	if _, err := c.node(leader).ReadIndex(dctx); !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, raft.ErrTimeout) {
		t.Fatalf("expired read index: %v", err)
	}
	// Progress, status, transfer of leadership.
	prog, err := c.node(leader).Progress()
	if err != nil || len(prog) != 3 {
		t.Fatalf("Progress: %v %v", prog, err)
	}
	for _, p := range prog {
		if p.Learner {
			t.Fatalf("voter %d flagged as a learner", p.ID)
		}
	}
	// Metrics: the same names as the other languages.
	lm, err := c.node(leader).Metrics()
	if err != nil || lm.Role != raft.Leader || lm.LeaderID != leader || lm.VotedFor != leader ||
		lm.ProposalsTotal < 20 || lm.SentBytesTotal == 0 || len(lm.DroppedTotal) != 5 {
		t.Fatalf("Metrics: %+v %v", lm, err)
	}
	if _, err := c.node(follower).Propose(context.Background(), []byte("z=1")); !errors.Is(err, raft.ErrNotLeader) {
		t.Fatalf("propose on a follower: %v", err)
	}
	if fm, err := c.node(follower).Metrics(); err != nil || fm.DroppedTotal["not_leader"] == 0 {
		t.Fatalf("follower Metrics: %+v %v", fm, err)
	}
	text, err := c.node(leader).MetricsText()
	if err != nil || !strings.Contains(text, "# TYPE raft_commit_seconds histogram") ||
		!strings.Contains(text, fmt.Sprintf("raft_peer_sent_bytes_total{peer=\"%d\"}", follower)) {
		t.Fatalf("MetricsText: %v\n%s", err, text)
	}
	if err := c.node(leader).TransferLeadership(follower); err != nil {
		t.Fatalf("TransferLeadership: %v", err)
	}
	waitFor(t, "the transfer", 10*time.Second, func() bool {
		st, err := c.node(follower).Status()
		return err == nil && st.Role == raft.Leader
	})
	c.put("key20", "value20")
	c.checkAll([]uint64{1, 2, 3}, 20, 21)
	if c.roles.Load() == 0 {
		t.Fatal("OnRoleChange never called")
	}
	if logged.Load() == 0 {
		t.Fatal("the logger saw no event")
	}
}

func TestFailover(t *testing.T) {
	c := newCluster(t, []uint64{1, 2, 3}, false)
	for i := 0; i < 5; i++ {
		c.put(fmt.Sprint("key", i), fmt.Sprint("value", i))
	}
	old := c.leader()
	c.kill(old)
	for i := 5; i < 10; i++ {
		c.put(fmt.Sprint("key", i), fmt.Sprint("value", i))
	}
	next := c.leader()
	if next == old {
		t.Fatalf("leader %d survived its own death", old)
	}
	var survivors []uint64
	for id := uint64(1); id <= 3; id++ {
		if id != old {
			survivors = append(survivors, id)
		}
	}
	c.checkAll(survivors, 0, 10)
}

func TestRestartFromDataDir(t *testing.T) {
	c := newCluster(t, []uint64{1, 2, 3}, true)
	for i := 0; i < 12; i++ { // snapshots every 5 entries
		c.put(fmt.Sprint("key", i), fmt.Sprint("value", i))
	}
	c.checkAll([]uint64{1, 2, 3}, 0, 12)
	c.closeAll()
	// Fresh state machines: everything comes back from the data directories.
	for id := uint64(1); id <= 3; id++ {
		c.start(id, []uint64{1, 2, 3})
	}
	restored := 0
	for id := uint64(1); id <= 3; id++ {
		c.sm(id).mu.Lock()
		restored += c.sm(id).restores
		c.sm(id).mu.Unlock()
	}
	if restored == 0 {
		t.Fatal("no node restored a snapshot at start")
	}
	c.put("key12", "value12")
	c.checkAll([]uint64{1, 2, 3}, 0, 13)
}

func TestMembership(t *testing.T) {
	c := newCluster(t, []uint64{1, 2, 3}, false)
	c.put("key0", "value0")
	leader := c.leader()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	c.start(4, []uint64{1, 2, 3}) // waits to be added
	if err := c.node(leader).AddLearner(ctx, 4, 0); err != nil {
		t.Fatalf("AddLearner: %v", err)
	}
	if l, err := c.node(leader).Learners(); err != nil || len(l) != 1 || l[0] != 4 {
		t.Fatalf("Learners: %v %v", l, err)
	}
	if err := c.node(leader).AddLearner(ctx, 4, 0); !errors.Is(err, raft.ErrInvalidArgument) {
		t.Fatalf("adding a member twice: %v", err)
	}
	c.checkAll([]uint64{4}, 0, 1)
	if err := c.node(leader).PromoteLearner(ctx, 4, 10); err != nil {
		t.Fatalf("PromoteLearner: %v", err)
	}
	if v, err := c.node(leader).Voters(); err != nil || len(v) != 4 {
		t.Fatalf("Voters: %v %v", v, err)
	}
	conf, err := c.node(leader).ConfID()
	if err != nil || conf == 0 {
		t.Fatalf("ConfID: %d %v", conf, err)
	}
	if err := c.node(leader).ChangeMembership(ctx, []uint64{1, 2, 3}, nil, conf); err != nil {
		t.Fatalf("ChangeMembership: %v", err)
	}
	// Compare-and-set: the configuration moved, so the stale id is refused.
	if err := c.node(leader).ChangeMembership(ctx, []uint64{1, 2, 3}, nil, conf); !errors.Is(err, raft.ErrInvalidArgument) {
		t.Fatalf("stale ChangeMembership: %v", err)
	}
	if err := c.node(leader).RemoveMember(ctx, 4); !errors.Is(err, raft.ErrInvalidArgument) {
		t.Fatalf("removing a removed member: %v", err)
	}
	if v, err := c.node(leader).Voters(); err != nil || len(v) != 3 {
		t.Fatalf("Voters after removal: %v %v", v, err)
	}
	c.kill(4)
	// Remove a follower (a leader removing itself steps down: its call may end DROPPED).
	leader = c.leader()
	gone := follower(c)
	if err := c.node(leader).RemoveMember(ctx, gone); err != nil {
		t.Fatalf("RemoveMember(%d): %v", gone, err)
	}
	if v, err := c.node(leader).Voters(); err != nil || len(v) != 2 {
		t.Fatalf("Voters after RemoveMember: %v %v", v, err)
	}
	c.kill(gone)
	if err := c.node(follower(c)).AddLearner(ctx, 9, 0); !errors.Is(err, raft.ErrNotLeader) {
		t.Fatalf("AddLearner on a follower: %v", err)
	}
}

func follower(c *cluster) uint64 {
	l := c.leader()
	c.tr.mu.RLock()
	defer c.tr.mu.RUnlock()
	for id := range c.tr.nodes {
		if id != l {
			return id
		}
	}
	return 0
}

type nopTransport struct{}

func (nopTransport) Send(uint64, []byte) {}

func singleNode(t *testing.T, sm raft.StateMachine) *raft.Node {
	t.Helper()
	n, err := raft.NewNode(raft.Config{ID: 1, Voters: []uint64{1}, StateMachine: sm, Transport: nopTransport{},
		ElectionTimeout: 150 * time.Millisecond, HeartbeatInterval: 30 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })
	waitFor(t, "election", 10*time.Second, func() bool {
		st, err := n.Status()
		return err == nil && st.Role == raft.Leader
	})
	return n
}

func TestStateMachineFailureStopsNode(t *testing.T) {
	for _, cmd := range []string{"fail", "panic"} {
		t.Run(cmd, func(t *testing.T) {
			n := singleNode(t, newKV())
			resp, err := n.Propose(context.Background(), []byte("a=1"))
			if err != nil || string(resp) != "stored@2" {
				t.Fatalf("propose: %q %v", resp, err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if _, err := n.Propose(ctx, []byte(cmd)); err == nil {
				t.Fatalf("%s was applied", cmd)
			}
			waitFor(t, "the node to stop", 5*time.Second, func() bool {
				_, err := n.Propose(context.Background(), []byte("b=2"))
				return errors.Is(err, raft.ErrFailed) || errors.Is(err, raft.ErrShutDown)
			})
		})
	}
}

func TestErrorsAndSessions(t *testing.T) {
	if s := raft.Status(12345); s.String() != "unknown status" || s.Retryable() {
		t.Fatalf("unknown status: %q retryable %v", s.String(), s.Retryable())
	}
	if !raft.Status(250).Retryable() || raft.Status(150).Retryable() {
		t.Fatal("families")
	}
	err := error(&raft.Error{Op: "x", Status: raft.StatusBusy, Message: "queue full"})
	if !errors.Is(fmt.Errorf("wrapped: %w", err), raft.ErrBusy) || errors.Is(err, raft.ErrTimeout) {
		t.Fatal("errors.Is on *Error")
	}
	if _, err := raft.NewNode(raft.Config{ID: 1, Voters: []uint64{1}, Transport: nopTransport{}}); !errors.Is(err, raft.ErrInvalidArgument) {
		t.Fatalf("no state machine: %v", err)
	}
	_, err = raft.NewNode(raft.Config{ID: 0, Voters: []uint64{1}, StateMachine: newKV(), Transport: nopTransport{}})
	var e *raft.Error
	if !errors.As(err, &e) || e.Status != raft.StatusInvalidArgument || e.Message == "" {
		t.Fatalf("id 0: %v", err)
	}
	_, err = raft.NewNode(raft.Config{ID: 1, Voters: []uint64{1}, StateMachine: newKV(), Transport: nopTransport{},
		ElectionTimeout: 100 * time.Millisecond, HeartbeatInterval: 200 * time.Millisecond})
	if !errors.Is(err, raft.ErrInvalidArgument) {
		t.Fatalf("heartbeat above election timeout: %v", err)
	}

	n := singleNode(t, newKV())
	ctx := context.Background()
	r1, err := n.ProposeSession(ctx, 7, 1, []byte("s=1"))
	if err != nil {
		t.Fatal(err)
	}
	r2, err := n.ProposeSession(ctx, 7, 1, []byte("s=1"))
	if err != nil || !bytes.Equal(r1, r2) {
		t.Fatalf("session retry: %q %q %v", r1, r2, err)
	}
	if _, err := n.ProposeSession(ctx, 7, 0, []byte("s=0")); !errors.Is(err, raft.ErrInvalidArgument) {
		t.Fatalf("old seq: %v", err)
	}
	done := make(chan string, 1)
	if err := n.ProposeAsync([]byte("async=1"), func(resp []byte, err error) { done <- fmt.Sprint(string(resp), err) }); err != nil {
		t.Fatal(err)
	}
	if got := <-done; !strings.HasPrefix(got, "stored@") {
		t.Fatalf("async: %s", got)
	}
	if err := n.Shutdown(); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Propose(ctx, []byte("late=1")); !errors.Is(err, raft.ErrShutDown) {
		t.Fatalf("after Shutdown: %v", err)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := n.Status(); !errors.Is(err, raft.ErrInvalidHandle) {
		t.Fatalf("after Close: %v", err)
	}
}

// README.md starts with examples/quickstart/main.go, and its command lines build and run it.
func TestReadmeQuickstart(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(readme), "```go\n")
	block, _, ok2 := strings.Cut(rest, "```\n")
	if !ok || !ok2 {
		t.Fatal("README.md has no Go block")
	}
	src, err := os.ReadFile("examples/quickstart/main.go")
	if err != nil {
		t.Fatal(err)
	}
	if block != string(src) {
		t.Fatal("README.md's first Go block differs from examples/quickstart/main.go")
	}
	if testing.Short() {
		t.Skip("not running the quickstart in -short mode")
	}
	// Run the README's own command lines (from this directory, as it says).
	var cmds []string
	for _, l := range strings.Split(string(readme), "\n") {
		if strings.HasPrefix(l, "ln -sfn libraft.so ") || strings.HasPrefix(l, "CGO_LDFLAGS=") {
			cmds = append(cmds, l)
		}
	}
	if len(cmds) != 2 {
		t.Fatalf("README.md's run lines not found: %q", cmds)
	}
	out, err := exec.Command("bash", "-euc", strings.Join(cmds, "\n")).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "hello applied at index") {
		t.Fatalf("quickstart: %v\n%s", err, out)
	}
}

// freePorts reserves n loopback ports (the listeners are closed just before the nodes
// bind them).
func freePorts(t *testing.T, n int) []string {
	t.Helper()
	var addrs []string
	var ls []net.Listener
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		addrs = append(addrs, l.Addr().String())
	}
	for _, l := range ls {
		l.Close()
	}
	return addrs
}

// The built-in TCP transport (ListenAddress, Peers, ClusterID, Secret) instead of a Go one.
func TestTCPCluster(t *testing.T) {
	addrs := freePorts(t, 3)
	sms := map[uint64]*kv{}
	nodes := map[uint64]*raft.Node{}
	for id := uint64(1); id <= 3; id++ {
		peers := map[uint64]string{}
		for p := uint64(1); p <= 3; p++ {
			if p != id {
				peers[p] = addrs[p-1]
			}
		}
		sms[id] = newKV()
		n, err := raft.NewNode(raft.Config{ID: id, Voters: []uint64{1, 2, 3}, StateMachine: sms[id],
			ListenAddress: addrs[id-1], Peers: peers, ClusterID: 7, Secret: []byte("s3cret"),
			ElectionTimeout: 300 * time.Millisecond, HeartbeatInterval: 50 * time.Millisecond})
		if err != nil {
			t.Fatalf("NewNode(%d): %v", id, err)
		}
		nodes[id] = n
		defer n.Close()
	}
	var leader *raft.Node
	waitFor(t, "a leader", 20*time.Second, func() bool {
		for _, n := range nodes {
			if st, err := n.Status(); err == nil && st.Role == raft.Leader {
				leader = n
				return true
			}
		}
		return false
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := leader.Propose(ctx, []byte("tcp=yes")); err != nil {
		t.Fatalf("Propose: %v", err)
	}
	for id := uint64(1); id <= 3; id++ {
		waitFor(t, fmt.Sprintf("node %d to apply", id), 10*time.Second, func() bool { return sms[id].get("tcp") == "yes" })
	}
}

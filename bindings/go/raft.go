// Package raft embeds the raft-manager consensus engine (a Rust library with a C ABI) in
// Go programs through cgo.
//
// A Node replicates commands to a StateMachine over a Transport (yours, or the built-in
// TCP transport). Calls are safe from any goroutine. Errors are *Error values; match them
// with errors.Is against ErrNotLeader, ErrBusy, ErrTimeout, ... and read the details
// (leader, status, message) with errors.As.
//
// Callbacks (StateMachine, Snapshotter, Transport, OnRoleChange) run on the engine's own
// threads. They go through a cgo.Handle: C never keeps a Go pointer. Inside a callback
// only Node.Step and Node.ProposeAsync may be called (other calls return
// ErrWouldDeadlock), and Close must never be called from one.
//
// Build: the package links -lraft and includes raft.h from ../../include; point cgo at the
// library, e.g. CGO_LDFLAGS="-L$ROOT/target/release -Wl,-rpath,$ROOT/target/release"
// (see README.md).
package raft

/*
#cgo CFLAGS: -I${SRCDIR}/../../include
#cgo LDFLAGS: -lraft
#include "bridge.h"
*/
import "C"

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"runtime/cgo"
	"sync/atomic"
	"time"
	"unsafe"
)

// StateMachine is the replicated application state.
type StateMachine interface {
	// Apply applies the committed command cmd at log index (in log order, one at a time,
	// on the engine's apply thread) and returns the response for the proposer (may be
	// nil). An error or a panic fails the node: it stops and later calls return ErrFailed.
	Apply(index uint64, cmd []byte) ([]byte, error)
}

// Snapshotter is implemented by state machines that can be snapshotted; without it the
// log is kept whole.
type Snapshotter interface {
	// Snapshot writes the whole state (apply thread).
	Snapshot(w io.Writer) error
	// Restore replaces the state with a snapshot (apply thread, or NewNode's goroutine when
	// restarting from a data directory).
	Restore(r io.Reader) error
}

// Transport carries messages between nodes.
type Transport interface {
	// Send hands msg (owned by the callee) to node to, whose owner passes it to that node's
	// Step. It must not block for long; dropping messages is allowed (Raft retries).
	Send(to uint64, msg []byte)
}

// Role is a node's role.
type Role uint32

// Roles.
const (
	Follower     Role = 0
	PreCandidate Role = 1
	Candidate    Role = 2
	Leader       Role = 3
)

func (r Role) String() string {
	switch r {
	case Follower:
		return "follower"
	case PreCandidate:
		return "pre-candidate"
	case Candidate:
		return "candidate"
	case Leader:
		return "leader"
	}
	return fmt.Sprintf("role(%d)", uint32(r))
}

// Config configures a node. ID, Voters, StateMachine and a transport (Transport, or
// ListenAddress for the built-in TCP transport) are required.
type Config struct {
	// ID is this node's id (non-zero).
	ID uint64
	// Voters is the bootstrap membership (include ID), used when storage is empty.
	Voters []uint64
	// StateMachine applies committed commands; it may also implement Snapshotter.
	StateMachine StateMachine
	// Transport sends messages to other nodes (unless ListenAddress is set).
	Transport Transport
	// OnRoleChange, if set, is called when this node's role, term or known leader changes.
	OnRoleChange func(role Role, term, leader uint64)

	// DataDir keeps the log and snapshots on disk (created if missing); empty = memory.
	DataDir string
	// UnsafeNoFsync never fsyncs DataDir: for tests only.
	UnsafeNoFsync bool
	// ElectionTimeout (default 500 ms) and HeartbeatInterval (default 50 ms).
	ElectionTimeout, HeartbeatInterval time.Duration
	// SnapshotEntries takes a snapshot every that many applied entries (0 = library
	// default, 100000); only with a Snapshotter.
	SnapshotEntries uint64
	// CallerRuns lets calling threads run protocol passes (lower latency in-process).
	CallerRuns bool
	// MaxCommandBytes is the largest command a proposal may carry (0 = library default,
	// 32 MiB); larger ones fail with ErrTooLarge. MaxSnapshotBytes is the largest snapshot
	// accepted from a leader (0 = library default, 64 GiB).
	MaxCommandBytes, MaxSnapshotBytes uint64
	// ManualRejoin: when this node leads and a voter comes back with its state lost (its
	// data directory wiped, restarted under the same id), log an error and leave its
	// re-admission to the operator (ChangeMembership with it as a learner, then
	// PromoteLearner). By default (false) the leader demotes it to learner, catches it up
	// and promotes it once within RejoinMaxLag entries (0 = library default, 64). Either
	// way its votes are not counted until it is re-admitted.
	ManualRejoin bool
	RejoinMaxLag uint64

	// Storage keeps the log, hard state and snapshots in the embedder's store (exclusive
	// with DataDir); Durable is what that store held, loaded before start.
	Storage Storage
	Durable DurableState

	// ListenAddress ("host:port") selects the built-in TCP transport; Peers maps the other
	// nodes' ids to their addresses; ClusterID and Secret (HMAC) protect connections.
	ListenAddress string
	Peers         map[uint64]string
	ClusterID     uint64
	Secret        []byte
}

// Node is a running Raft node. All methods are safe for concurrent use.
type Node struct {
	h      C.uintptr_t // raft_node handle (an encoded value, not a pointer)
	id     uint64
	closed atomic.Bool
}

// DefaultTimeout bounds the blocking calls (ReadIndex, membership changes) whose context
// has no deadline.
var DefaultTimeout = 30 * time.Second

func cbool(b bool) C.int {
	if b {
		return 1
	}
	return 0
}

func durationMs(op string, d time.Duration) (C.uint32_t, error) {
	ms := (d + time.Millisecond - 1) / time.Millisecond
	if d < 0 || ms > math.MaxUint32 {
		return 0, &Error{Op: op, Status: StatusInvalidArgument, Message: "duration out of range"}
	}
	return C.uint32_t(ms), nil
}

// NewNode validates cfg and starts a node: opens storage, restores the latest snapshot
// (Restore runs on this goroutine) and starts the engine threads.
func NewNode(cfg Config) (*Node, error) {
	if cfg.StateMachine == nil {
		return nil, &Error{Op: "new node", Status: StatusInvalidArgument, Message: "StateMachine is required"}
	}
	if cfg.Transport == nil && cfg.ListenAddress == "" {
		return nil, &Error{Op: "new node", Status: StatusInvalidArgument, Message: "Transport or ListenAddress is required"}
	}
	var m msgBuf
	var b C.uintptr_t
	if s := C.rgo_builder_new(&b, m.ptr()); s != C.RAFT_STATUS_OK {
		return nil, newError("new node", s, &m)
	}
	cb := &callbacks{sm: cfg.StateMachine, transport: cfg.Transport, onRole: cfg.OnRoleChange, storage: cfg.Storage}
	cb.snap, _ = cfg.StateMachine.(Snapshotter)
	h := cgo.NewHandle(cb)
	if s := C.rgo_set_userdata(b, C.uintptr_t(h), m.ptr()); s != C.RAFT_STATUS_OK {
		h.Delete()
		C.rgo_builder_free(b)
		return nil, newError("new node", s, &m)
	}
	// From here on the library owns h: freeing the builder, config or node deletes it.
	built := false
	defer func() {
		if !built {
			C.rgo_builder_free(b)
		}
	}()
	step := func(s C.raft_status) error {
		if s != C.RAFT_STATUS_OK {
			return newError("new node", s, &m)
		}
		return nil
	}
	steps := []func() error{
		func() error { return step(C.rgo_set_id(b, C.uint64_t(cfg.ID), m.ptr())) },
		func() error {
			for _, v := range cfg.Voters {
				if err := step(C.rgo_add_voter(b, C.uint64_t(v), m.ptr())); err != nil {
					return err
				}
			}
			return nil
		},
		func() error {
			if cfg.DataDir == "" {
				return nil
			}
			p := C.CString(cfg.DataDir)
			defer C.free(unsafe.Pointer(p))
			return step(C.rgo_set_data_dir(b, p, m.ptr()))
		},
		func() error {
			if cfg.ElectionTimeout == 0 {
				return nil
			}
			ms, err := durationMs("new node: ElectionTimeout", cfg.ElectionTimeout)
			if err != nil {
				return err
			}
			return step(C.rgo_set_election_ms(b, ms, m.ptr()))
		},
		func() error {
			if cfg.HeartbeatInterval == 0 {
				return nil
			}
			ms, err := durationMs("new node: HeartbeatInterval", cfg.HeartbeatInterval)
			if err != nil {
				return err
			}
			return step(C.rgo_set_heartbeat_ms(b, ms, m.ptr()))
		},
		func() error {
			if cfg.SnapshotEntries == 0 {
				return nil
			}
			return step(C.rgo_set_snapshot_entries(b, C.uint64_t(cfg.SnapshotEntries), m.ptr()))
		},
		func() error {
			if cfg.MaxCommandBytes == 0 {
				return nil
			}
			return step(C.rgo_set_max_command_bytes(b, C.uint64_t(cfg.MaxCommandBytes), m.ptr()))
		},
		func() error {
			if cfg.MaxSnapshotBytes == 0 {
				return nil
			}
			return step(C.rgo_set_max_snapshot_bytes(b, C.uint64_t(cfg.MaxSnapshotBytes), m.ptr()))
		},
		func() error {
			if !cfg.ManualRejoin && cfg.RejoinMaxLag == 0 {
				return nil
			}
			lag := cfg.RejoinMaxLag
			if lag == 0 {
				lag = 64
			}
			return step(C.rgo_set_auto_rejoin(b, cbool(cfg.ManualRejoin), C.uint64_t(lag), m.ptr()))
		},
		func() error { return step(C.rgo_set_no_fsync(b, cbool(cfg.UnsafeNoFsync), m.ptr())) },
		func() error { return step(C.rgo_set_caller_runs(b, cbool(cfg.CallerRuns), m.ptr())) },
		func() error {
			if cfg.ListenAddress == "" {
				return nil
			}
			a := C.CString(cfg.ListenAddress)
			defer C.free(unsafe.Pointer(a))
			if err := step(C.rgo_set_listen(b, a, m.ptr())); err != nil {
				return err
			}
			for id, addr := range cfg.Peers {
				pa := C.CString(addr)
				err := step(C.rgo_add_peer(b, C.uint64_t(id), pa, m.ptr()))
				C.free(unsafe.Pointer(pa))
				if err != nil {
					return err
				}
			}
			if err := step(C.rgo_set_cluster_id(b, C.uint64_t(cfg.ClusterID), m.ptr())); err != nil {
				return err
			}
			if len(cfg.Secret) > 0 {
				return step(C.rgo_set_secret(b, unsafe.Pointer(&cfg.Secret[0]), C.size_t(len(cfg.Secret)), m.ptr()))
			}
			return nil
		},
		func() error {
			if cfg.Storage == nil {
				return nil
			}
			if err := step(C.rgo_set_storage(b, m.ptr())); err != nil {
				return err
			}
			return step(loadDurable(b, &cfg.Durable, &m))
		},
		func() error {
			return step(C.rgo_set_callbacks(b, cbool(cfg.Transport != nil), cbool(cb.snap != nil),
				cbool(cfg.OnRoleChange != nil), m.ptr()))
		},
	}
	for _, f := range steps {
		if err := f(); err != nil {
			return nil, err
		}
	}
	var c C.uintptr_t
	built = true // build consumes the builder either way
	if s := C.rgo_build(b, &c, m.ptr()); s != C.RAFT_STATUS_OK {
		return nil, newError("new node", s, &m)
	}
	defer C.rgo_config_free(c)
	var n C.uintptr_t
	if s := C.rgo_start(c, &n, m.ptr()); s != C.RAFT_STATUS_OK {
		return nil, newError("new node", s, &m)
	}
	cb.completions.started(n)
	return &Node{h: n, id: cfg.ID}, nil
}

// ID is this node's id.
func (n *Node) ID() uint64 { return n.id }

// fail builds the error of a failed call; for NotLeader it adds the known leader.
func (n *Node) fail(op string, s C.raft_status, m *msgBuf) error {
	e := newError(op, s, m)
	if e.Status == StatusNotLeader {
		var info C.raft_node_status_info
		if C.rgo_status(n.h, &info, nil) == C.RAFT_STATUS_OK {
			e.Leader = uint64(info.leader)
		}
	}
	return e
}

// Step delivers a message received from a peer (any goroutine, also inside callbacks).
// ErrInvalidArgument for undecodable bytes; ErrBusy when the inbound queue is full.
func (n *Node) Step(msg []byte) error {
	var m msgBuf
	var p unsafe.Pointer
	if len(msg) > 0 {
		p = unsafe.Pointer(&msg[0])
	}
	if s := C.rgo_step(n.h, p, C.size_t(len(msg)), m.ptr()); s != C.RAFT_STATUS_OK {
		return newError("step", s, &m)
	}
	return nil
}

// StepFrom delivers a message that the transport knows came from node from (it
// authenticated the peer, or the sender is in-process): a message claiming another sender
// is refused with ErrInvalidArgument, so one peer cannot speak for another.
func (n *Node) StepFrom(from uint64, msg []byte) error {
	var m msgBuf
	var p unsafe.Pointer
	if len(msg) > 0 {
		p = unsafe.Pointer(&msg[0])
	}
	if s := C.rgo_step_from(n.h, C.uint64_t(from), p, C.size_t(len(msg)), m.ptr()); s != C.RAFT_STATUS_OK {
		return newError("step", s, &m)
	}
	return nil
}

// ProposeAsync proposes cmd without blocking. When it returns nil, done runs exactly once
// with the state machine's response or an error (on an engine thread, or on this
// goroutine before ProposeAsync returns): it must not block. Allowed inside callbacks.
func (n *Node) ProposeAsync(cmd []byte, done func(resp []byte, err error)) error {
	var m msgBuf
	h := cgo.NewHandle(proposeDone(done))
	var p unsafe.Pointer
	if len(cmd) > 0 {
		p = unsafe.Pointer(&cmd[0])
	}
	if s := C.rgo_propose_async(n.h, p, C.size_t(len(cmd)), C.uintptr_t(h), m.ptr()); s != C.RAFT_STATUS_OK {
		h.Delete()
		return n.fail("propose", s, &m)
	}
	return nil
}

// ctxError maps a finished context to an error: a deadline gives an *Error with
// StatusTimeout that also matches context.DeadlineExceeded; a cancellation gives
// context.Canceled wrapped with the operation.
func ctxError(op string, ctx context.Context) error {
	err := ctx.Err()
	if errors.Is(err, context.DeadlineExceeded) {
		return &Error{Op: op, Status: StatusTimeout, cause: err}
	}
	return fmt.Errorf("raft: %s: %w", op, err)
}

type result struct {
	resp []byte
	err  error
}

// Propose proposes cmd and waits until it is applied on this node, returning the state
// machine's response. It returns early when ctx is done: the command may still commit
// (ErrTimeout for a deadline, matching context.DeadlineExceeded too; context.Canceled for
// a cancellation). ErrNotLeader names the known leader (errors.As, Error.Leader).
func (n *Node) Propose(ctx context.Context, cmd []byte) ([]byte, error) {
	if ctx.Err() != nil {
		return nil, ctxError("propose", ctx)
	}
	ch := make(chan result, 1)
	if err := n.ProposeAsync(cmd, func(resp []byte, err error) { ch <- result{resp, err} }); err != nil {
		return nil, err
	}
	select {
	case r := <-ch:
		if r.err != nil {
			var e *Error
			if errors.As(r.err, &e) && e.Status == StatusNotLeader {
				return nil, n.fail("propose", C.raft_status(e.Status), nil)
			}
		}
		return r.resp, r.err
	case <-ctx.Done():
		return nil, ctxError("propose", ctx)
	}
}

// ProposeSession proposes cmd exactly once for client session clientID with sequence
// number seq (1, 2, 3, ... per client): a retry with the same seq returns the recorded
// response without applying again. Blocks until applied, up to ctx's deadline (or
// DefaultTimeout).
func (n *Node) ProposeSession(ctx context.Context, clientID, seq uint64, cmd []byte) ([]byte, error) {
	return blocking(n, ctx, "propose session", func(ms C.uint64_t, m *msgBuf) ([]byte, C.raft_status) {
		var out C.raft_buf
		var p unsafe.Pointer
		if len(cmd) > 0 {
			p = unsafe.Pointer(&cmd[0])
		}
		s := C.rgo_propose_session(n.h, C.uint64_t(clientID), C.uint64_t(seq), p, C.size_t(len(cmd)), ms, &out, m.ptr())
		if s != C.RAFT_STATUS_OK {
			return nil, s
		}
		resp := goBytes(out.data, out.len)
		C.raft_buf_free(&out)
		return resp, s
	})
}

type outcome[T any] struct {
	v   T
	err error
}

// blocking runs a blocking C call with the time left until ctx's deadline (DefaultTimeout
// without one) on its own goroutine, returning early (the call then finishes in the
// background, bounded by that time, and its result is dropped) when ctx is done.
func blocking[T any](n *Node, ctx context.Context, op string, call func(ms C.uint64_t, m *msgBuf) (T, C.raft_status)) (T, error) {
	var zero T
	if ctx.Err() != nil {
		return zero, ctxError(op, ctx)
	}
	timeout := DefaultTimeout
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
	}
	ms := C.uint64_t(0)
	if timeout > 0 {
		ms = C.uint64_t((timeout + time.Millisecond - 1) / time.Millisecond)
	}
	ch := make(chan outcome[T], 1)
	go func() {
		var m msgBuf
		v, s := call(ms, &m)
		if s != C.RAFT_STATUS_OK {
			ch <- outcome[T]{zero, n.fail(op, s, &m)}
			return
		}
		ch <- outcome[T]{v, nil}
	}()
	select {
	case o := <-ch:
		var e *Error
		if errors.As(o.err, &e) && e.Status == StatusTimeout && ctx.Err() != nil {
			e.cause = ctx.Err()
		}
		return o.v, o.err
	case <-ctx.Done():
		return zero, ctxError(op, ctx)
	}
}

// blockingErr is blocking for calls without a result.
func blockingErr(n *Node, ctx context.Context, op string, call func(ms C.uint64_t, m *msgBuf) C.raft_status) error {
	_, err := blocking(n, ctx, op, func(ms C.uint64_t, m *msgBuf) (struct{}, C.raft_status) {
		return struct{}{}, call(ms, m)
	})
	return err
}

// ReadIndex obtains a linearizable read index and waits until this node has applied it:
// reading the local state machine afterwards is linearizable. Works on followers too.
func (n *Node) ReadIndex(ctx context.Context) (uint64, error) {
	return blocking(n, ctx, "read index", func(ms C.uint64_t, m *msgBuf) (uint64, C.raft_status) {
		var idx C.uint64_t
		s := C.rgo_read_index(n.h, ms, &idx, m.ptr())
		return uint64(idx), s
	})
}

// TransferLeadership asks this node (the leader) to hand leadership to voter to (0 = the
// most up-to-date voter). Returns once the transfer started; watch Status.
func (n *Node) TransferLeadership(to uint64) error {
	var m msgBuf
	if s := C.rgo_transfer(n.h, C.uint64_t(to), m.ptr()); s != C.RAFT_STATUS_OK {
		return n.fail("transfer leadership", s, &m)
	}
	return nil
}

// NodeStatus is a snapshot of a node's state.
type NodeStatus struct {
	ID, Term, Leader, Commit, Applied, LastIndex uint64
	Role                                         Role
	// Voters holds the voter ids (all of them; see Node.Voters).
	Voters []uint64
}

// Status returns the node's current state.
func (n *Node) Status() (NodeStatus, error) {
	var m msgBuf
	var i C.raft_node_status_info
	if s := C.rgo_status(n.h, &i, m.ptr()); s != C.RAFT_STATUS_OK {
		return NodeStatus{}, newError("status", s, &m)
	}
	st := NodeStatus{ID: uint64(i.id), Role: Role(i.role), Term: uint64(i.term), Leader: uint64(i.leader),
		Commit: uint64(i.commit), Applied: uint64(i.applied), LastIndex: uint64(i.last_index)}
	if int(i.voter_count) <= len(i.voters) {
		for k := 0; k < int(i.voter_count); k++ {
			st.Voters = append(st.Voters, uint64(i.voters[k]))
		}
		return st, nil
	}
	v, err := n.Voters()
	st.Voters = v
	return st, err
}

func (n *Node) ids(op string, fn func(ids *C.uint64_t, cap C.size_t, out *C.size_t, m *msgBuf) C.raft_status) ([]uint64, error) {
	buf := make([]C.uint64_t, 8)
	for {
		var m msgBuf
		var got C.size_t
		s := fn(&buf[0], C.size_t(len(buf)), &got, &m)
		if s == C.RAFT_STATUS_BUFFER_TOO_SMALL && int(got) > len(buf) {
			buf = make([]C.uint64_t, int(got))
			continue
		}
		if s != C.RAFT_STATUS_OK {
			return nil, newError(op, s, &m)
		}
		out := make([]uint64, int(got))
		for k := range out {
			out[k] = uint64(buf[k])
		}
		return out, nil
	}
}

// Voters returns every voter id, ascending.
func (n *Node) Voters() ([]uint64, error) {
	return n.ids("voters", func(ids *C.uint64_t, c C.size_t, out *C.size_t, m *msgBuf) C.raft_status {
		return C.rgo_voters(n.h, ids, c, out, m.ptr())
	})
}

// Learners returns every learner id, ascending.
func (n *Node) Learners() ([]uint64, error) {
	return n.ids("learners", func(ids *C.uint64_t, c C.size_t, out *C.size_t, m *msgBuf) C.raft_status {
		return C.rgo_learners(n.h, ids, c, out, m.ptr())
	})
}

// ConfID returns the id of the configuration in force (0 = the bootstrap one); pass it to
// ChangeMembership to make the change conditional on no other change in between.
func (n *Node) ConfID() (uint64, error) {
	var m msgBuf
	var id C.uint64_t
	if s := C.rgo_conf_id(n.h, &id, m.ptr()); s != C.RAFT_STATUS_OK {
		return 0, newError("conf id", s, &m)
	}
	return uint64(id), nil
}

// AddLearner (leader only) adds node id as a learner and waits until the change is
// applied here; with autoPromoteLag > 0 the leader promotes it once that close.
func (n *Node) AddLearner(ctx context.Context, id, autoPromoteLag uint64) error {
	return blockingErr(n, ctx, "add learner", func(ms C.uint64_t, m *msgBuf) C.raft_status {
		return C.rgo_add_learner(n.h, C.uint64_t(id), C.uint64_t(autoPromoteLag), ms, m.ptr())
	})
}

// PromoteLearner (leader only) makes learner id a voter once its log is within maxLag
// entries of the leader's.
func (n *Node) PromoteLearner(ctx context.Context, id, maxLag uint64) error {
	return blockingErr(n, ctx, "promote learner", func(ms C.uint64_t, m *msgBuf) C.raft_status {
		return C.rgo_promote_learner(n.h, C.uint64_t(id), C.uint64_t(maxLag), ms, m.ptr())
	})
}

// RemoveMember (leader only) removes member id for good (ids are never reused).
func (n *Node) RemoveMember(ctx context.Context, id uint64) error {
	return blockingErr(n, ctx, "remove member", func(ms C.uint64_t, m *msgBuf) C.raft_status {
		return C.rgo_remove_member(n.h, C.uint64_t(id), ms, m.ptr())
	})
}

// ChangeMembership (leader only) moves the cluster to exactly these voters and learners
// (joint consensus when more than one voter changes). With expectedConfID non-zero the
// change happens only if ConfID still has that value (ErrInvalidArgument otherwise).
func (n *Node) ChangeMembership(ctx context.Context, voters, learners []uint64, expectedConfID uint64) error {
	cv := make([]C.uint64_t, len(voters)+1)
	cl := make([]C.uint64_t, len(learners)+1)
	for k, v := range voters {
		cv[k] = C.uint64_t(v)
	}
	for k, v := range learners {
		cl[k] = C.uint64_t(v)
	}
	return blockingErr(n, ctx, "change membership", func(ms C.uint64_t, m *msgBuf) C.raft_status {
		return C.rgo_change_membership(n.h, &cv[0], C.size_t(len(voters)), &cl[0], C.size_t(len(learners)),
			C.uint64_t(expectedConfID), ms, m.ptr())
	})
}

// PeerProgress is one member's replication progress as the leader sees it.
type PeerProgress struct {
	ID, MatchIndex, NextIndex uint64
	// State: 0 probe, 1 replicate, 2 snapshot.
	State uint8
	// Learner is true for a learner, false for a voter.
	Learner bool
}

// Progress (leader only) returns every member's replication progress (empty elsewhere).
func (n *Node) Progress() ([]PeerProgress, error) {
	buf := make([]C.raft_peer_progress, 8)
	for {
		var m msgBuf
		var got C.size_t
		s := C.rgo_peer_progress(n.h, &buf[0], C.size_t(len(buf)), &got, m.ptr())
		if s == C.RAFT_STATUS_BUFFER_TOO_SMALL && int(got) > len(buf) {
			buf = make([]C.raft_peer_progress, int(got))
			continue
		}
		if s != C.RAFT_STATUS_OK {
			return nil, newError("progress", s, &m)
		}
		out := make([]PeerProgress, int(got))
		for k := range out {
			p := buf[k]
			out[k] = PeerProgress{ID: uint64(p.id), MatchIndex: uint64(p.match_index), NextIndex: uint64(p.next_index), State: uint8(p.state), Learner: p.learner != 0}
		}
		return out, nil
	}
}

// Metrics holds a node's gauges and counters; each field is the metric named in
// docs/OBSERVABILITY.md (raft_ + snake_case of the field name, e.g. ProposalsTotal is
// raft_proposals_total). Histograms and per-peer bytes are in MetricsText.
type Metrics struct {
	Term, LeaderID, CommitIndex, AppliedIndex, LastIndex, VotedFor, ConfID           uint64
	Role                                                                             Role
	Learner                                                                          bool
	LeaderChangesTotal, ProposalsTotal, ProposalsDroppedTotal, EntriesCommittedTotal uint64
	ReadsTotal, MessagesReceivedTotal, ReceivedBytesTotal, MessagesRefusedTotal      uint64
	MessagesSentTotal, SentBytesTotal, SnapshotsSentTotal, SnapshotsTakenTotal       uint64
	SnapshotsInstalledTotal, FsyncsTotal                                             uint64
	// DroppedTotal is raft_dropped_total by reason label: not_leader, busy, inbox_full,
	// too_large, invalid_message.
	DroppedTotal map[string]uint64
}

// Metrics returns the node's gauges and counters (raft_node_metrics).
func (n *Node) Metrics() (Metrics, error) {
	var m msgBuf
	var c C.raft_node_metrics_info
	if s := C.rgo_metrics(n.h, &c, m.ptr()); s != C.RAFT_STATUS_OK {
		return Metrics{}, newError("metrics", s, &m)
	}
	reasons := []string{"not_leader", "busy", "inbox_full", "too_large", "invalid_message"}
	dropped := make(map[string]uint64, len(reasons))
	for i, r := range reasons {
		dropped[r] = uint64(c.dropped_total[i])
	}
	return Metrics{
		Term: uint64(c.term), Role: Role(c.role), LeaderID: uint64(c.leader_id),
		CommitIndex: uint64(c.commit_index), AppliedIndex: uint64(c.applied_index),
		LastIndex: uint64(c.last_index), VotedFor: uint64(c.voted_for), ConfID: uint64(c.conf_id),
		Learner: c.learner != 0, LeaderChangesTotal: uint64(c.leader_changes_total),
		ProposalsTotal: uint64(c.proposals_total), ProposalsDroppedTotal: uint64(c.proposals_dropped_total),
		EntriesCommittedTotal: uint64(c.entries_committed_total), ReadsTotal: uint64(c.reads_total),
		MessagesReceivedTotal: uint64(c.messages_received_total), ReceivedBytesTotal: uint64(c.received_bytes_total),
		MessagesRefusedTotal: uint64(c.messages_refused_total), MessagesSentTotal: uint64(c.messages_sent_total),
		SentBytesTotal: uint64(c.sent_bytes_total), SnapshotsSentTotal: uint64(c.snapshots_sent_total),
		SnapshotsTakenTotal: uint64(c.snapshots_taken_total), SnapshotsInstalledTotal: uint64(c.snapshots_installed_total),
		FsyncsTotal: uint64(c.fsyncs_total), DroppedTotal: dropped,
	}, nil
}

// MetricsText returns every metric (histograms and labelled counters included) in the
// Prometheus text exposition format (raft_node_metrics_text).
func (n *Node) MetricsText() (string, error) {
	var m msgBuf
	var out C.raft_buf
	if s := C.rgo_metrics_text(n.h, &out, m.ptr()); s != C.RAFT_STATUS_OK {
		return "", newError("metrics text", s, &m)
	}
	defer C.raft_buf_free(&out)
	return string(C.GoBytes(unsafe.Pointer(out.data), C.int(out.len))), nil
}

// Shutdown stops the node (pending calls fail with ErrShutDown) and joins its threads;
// idempotent. The node's memory is released by Close.
func (n *Node) Shutdown() error {
	var m msgBuf
	if s := C.rgo_shutdown(n.h, m.ptr()); s != C.RAFT_STATUS_OK {
		return newError("shutdown", s, &m)
	}
	return nil
}

// Close shuts the node down and releases it; later calls return ErrInvalidHandle. A second
// Close returns nil. Never call it from a callback.
func (n *Node) Close() error {
	if n.closed.Swap(true) {
		return nil
	}
	var m msgBuf
	if s := C.rgo_free(n.h, m.ptr()); s != C.RAFT_STATUS_OK {
		n.closed.Store(false)
		return newError("close", s, &m)
	}
	return nil
}

// Version is the loaded library's version.
func Version() string { return C.GoString(C.raft_version()) }

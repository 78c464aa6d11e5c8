package raft

/*
#include "bridge.h"
*/
import "C"

import (
	"sync"
	"unsafe"
)

// HardState is the durable vote state.
type HardState struct{ Term, Vote, Commit uint64 }

// Entry is one log entry. Kind is opaque: store it and hand it back as is.
type Entry struct {
	Term, Index uint64
	Kind        uint8
	Data        []byte
}

// Snapshot is a snapshot to store. Meta is opaque: hand it back unchanged in
// DurableState. KeepLog false means the whole stored log is obsolete (discard it together
// with storing the snapshot); otherwise keep the entries after Index.
type Snapshot struct {
	Index, Term uint64
	Meta, Data  []byte
	KeepLog     bool
}

// Storage keeps the node's log, hard state and snapshots in the embedder's store instead
// of DataDir or memory ("bring your own store", see docs/C_API.md). Calls come one at a
// time (the next only after the previous one's done ran), on an engine thread; the slices
// passed belong to the callee.
type Storage interface {
	// Persist makes one group of writes durable, in this order: if replaceFrom is non-zero,
	// delete every stored entry with index >= replaceFrom; append entries; if hs is not nil,
	// replace the hard state. A crash must keep the whole group or a prefix of it. Call
	// done(true) once — and only once — everything is durable (from any goroutine, also
	// before returning), or done(false) if the write failed (the node then fails).
	Persist(hs *HardState, replaceFrom uint64, entries []Entry, done func(ok bool))
	// PersistSnapshot durably stores s, replacing the previous snapshot; done as Persist.
	PersistSnapshot(s Snapshot, done func(ok bool))
}

// DurableState is what a Storage holds, handed back to NewNode on restart.
type DurableState struct {
	HardState *HardState
	Snapshot  *Snapshot
	Entries   []Entry // in index order, following the snapshot
}

// completions routes done(ok) to raft_node_persisted. A write may be reported before
// NewNode has the node's handle (the storage thread starts inside raft_node_start): such
// completions wait here until the handle is known.
type completions struct {
	mu      sync.Mutex
	node    C.uintptr_t
	pending []pendingCompletion
}

type pendingCompletion struct {
	token uint64
	ok    bool
}

func (c *completions) done(token uint64) func(bool) {
	var once sync.Once
	return func(ok bool) { once.Do(func() { c.complete(token, ok) }) }
}

func (c *completions) complete(token uint64, ok bool) {
	c.mu.Lock()
	if c.node == 0 {
		c.pending = append(c.pending, pendingCompletion{token, ok})
		c.mu.Unlock()
		return
	}
	n := c.node
	c.mu.Unlock()
	// After Close the handle is stale: the library answers INVALID_HANDLE (the write was
	// abandoned at shutdown), which is nothing to report.
	_ = C.rgo_persisted(n, C.uint64_t(token), cbool(ok))
}

// started publishes the node's handle and reports what completed before it was known.
func (c *completions) started(n C.uintptr_t) {
	c.mu.Lock()
	c.node = n
	pending := c.pending
	c.pending = nil
	c.mu.Unlock()
	for _, p := range pending {
		_ = C.rgo_persisted(n, C.uint64_t(p.token), cbool(p.ok))
	}
}

func bytesPtr(b []byte) unsafe.Pointer {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Pointer(&b[0])
}

// loadDurable hands the durable state to the builder.
func loadDurable(b C.uintptr_t, d *DurableState, m *msgBuf) C.raft_status {
	if d.Snapshot != nil {
		s := d.Snapshot
		if st := C.rgo_load_snapshot(b, bytesPtr(s.Meta), C.size_t(len(s.Meta)), bytesPtr(s.Data), C.size_t(len(s.Data)), m.ptr()); st != C.RAFT_STATUS_OK {
			return st
		}
	}
	for _, e := range d.Entries {
		if st := C.rgo_load_entry(b, C.uint64_t(e.Term), C.uint64_t(e.Index), C.uint8_t(e.Kind), bytesPtr(e.Data), C.size_t(len(e.Data)), m.ptr()); st != C.RAFT_STATUS_OK {
			return st
		}
	}
	if hs := d.HardState; hs != nil {
		return C.rgo_load_hard_state(b, C.uint64_t(hs.Term), C.uint64_t(hs.Vote), C.uint64_t(hs.Commit), m.ptr())
	}
	return C.RAFT_STATUS_OK
}

//export raftgoPersist
func raftgoPersist(h C.uintptr_t, token C.uint64_t, hs *C.raft_hard_state, replaceFrom C.uint64_t, entries *C.raft_entry, n C.size_t) {
	cb := callbacksOf(h)
	done := cb.completions.done(uint64(token))
	defer func() {
		if r := recover(); r != nil {
			reportPanic("Storage.Persist", r)
			done(false)
		}
	}()
	var hard *HardState
	if hs != nil {
		hard = &HardState{Term: uint64(hs.term), Vote: uint64(hs.vote), Commit: uint64(hs.commit)}
	}
	var es []Entry
	if n > 0 {
		for _, e := range unsafe.Slice(entries, int(n)) { // C memory, borrowed: copy
			es = append(es, Entry{Term: uint64(e.term), Index: uint64(e.index), Kind: uint8(e.kind), Data: goBytes(e.data, e.len)})
		}
	}
	cb.storage.Persist(hard, uint64(replaceFrom), es, done)
}

//export raftgoPersistSnapshot
func raftgoPersistSnapshot(h C.uintptr_t, token, index, term C.uint64_t, meta *C.uint8_t, metaLen C.size_t, data *C.uint8_t, n C.size_t, keepLog C.int) {
	cb := callbacksOf(h)
	done := cb.completions.done(uint64(token))
	defer func() {
		if r := recover(); r != nil {
			reportPanic("Storage.PersistSnapshot", r)
			done(false)
		}
	}()
	cb.storage.PersistSnapshot(Snapshot{Index: uint64(index), Term: uint64(term), Meta: goBytes(meta, metaLen),
		Data: goBytes(data, n), KeepLog: keepLog != 0}, done)
}

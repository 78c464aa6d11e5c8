package raft_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	raft "github.com/raft-manager/raft-manager/bindings/go"
)

// memStore is an embedder's "durable" store: writes are applied on another goroutine and
// only then reported done, as a real store would after its fsync.
type memStore struct {
	mu        sync.Mutex
	state     raft.DurableState
	writes    int
	snapshots int
}

func (s *memStore) Persist(hs *raft.HardState, replaceFrom uint64, entries []raft.Entry, done func(bool)) {
	go func() {
		s.mu.Lock()
		if replaceFrom != 0 {
			for len(s.state.Entries) > 0 && s.state.Entries[len(s.state.Entries)-1].Index >= replaceFrom {
				s.state.Entries = s.state.Entries[:len(s.state.Entries)-1]
			}
		}
		s.state.Entries = append(s.state.Entries, entries...)
		if hs != nil {
			h := *hs
			s.state.HardState = &h
		}
		s.writes++
		s.mu.Unlock()
		done(true)
	}()
}

func (s *memStore) PersistSnapshot(snap raft.Snapshot, done func(bool)) {
	go func() {
		s.mu.Lock()
		kept := s.state.Entries[:0:0]
		if snap.KeepLog {
			for _, e := range s.state.Entries {
				if e.Index > snap.Index {
					kept = append(kept, e)
				}
			}
		}
		s.state.Entries = kept
		s.state.Snapshot = &snap
		s.snapshots++
		s.mu.Unlock()
		done(true)
	}()
}

func (s *memStore) durable() raft.DurableState {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.state
	d.Entries = append([]raft.Entry(nil), s.state.Entries...)
	return d
}

func TestCustomStorage(t *testing.T) {
	store := &memStore{}
	start := func(sm *kv) *raft.Node {
		n, err := raft.NewNode(raft.Config{ID: 1, Voters: []uint64{1}, StateMachine: sm, Transport: nopTransport{},
			ElectionTimeout: 150 * time.Millisecond, HeartbeatInterval: 30 * time.Millisecond,
			SnapshotEntries: 5, Storage: store, Durable: store.durable()})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	propose := func(n *raft.Node, k, v string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for {
			_, err := n.Propose(ctx, []byte(k+"="+v))
			if err == nil {
				return
			}
			if !errors.Is(err, raft.ErrNotLeader) {
				t.Fatalf("propose %s: %v", k, err)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	sm := newKV()
	n := start(sm)
	for i := 0; i < 12; i++ {
		propose(n, fmt.Sprint("key", i), fmt.Sprint("value", i))
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	d := store.durable()
	store.mu.Lock()
	writes, snaps := store.writes, store.snapshots
	store.mu.Unlock()
	if writes == 0 || snaps == 0 || d.HardState == nil || d.HardState.Term == 0 || d.Snapshot == nil {
		t.Fatalf("store after the first run: %d writes, %d snapshots, %+v", writes, snaps, d.HardState)
	}

	// Restart from the store alone, with an empty state machine.
	sm2 := newKV()
	n2 := start(sm2)
	defer n2.Close()
	waitFor(t, "the restarted node to recover", 10*time.Second, func() bool { return sm2.get("key11") == "value11" })
	for i := 0; i < 12; i++ {
		if got := sm2.get(fmt.Sprint("key", i)); got != fmt.Sprint("value", i) {
			t.Fatalf("key%d = %q after restart", i, got)
		}
	}
	propose(n2, "key12", "value12")
}

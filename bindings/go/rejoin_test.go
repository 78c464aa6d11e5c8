package raft_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	raft "github.com/raft-manager/raft-manager/bindings/go"
)

// wipeAFollower writes, wipes a follower's data directory and restarts it under the same
// id (a new incarnation); it returns that id, the leader and the configuration id before.
func wipeAFollower(t *testing.T, c *cluster) (x, leader, conf uint64) {
	t.Helper()
	for i := 0; i < 5; i++ {
		c.put(fmt.Sprint("key", i), fmt.Sprint("value", i))
	}
	leader = c.leader()
	x = follower(c)
	c.checkAll([]uint64{x}, 0, 5)
	conf, err := c.node(leader).ConfID()
	if err != nil {
		t.Fatalf("ConfID: %v", err)
	}
	c.kill(x)
	if err := os.RemoveAll(c.dirs[x]); err != nil {
		t.Fatal(err)
	}
	c.start(x, []uint64{1, 2, 3})
	return x, leader, conf
}

func membership(t *testing.T, n *raft.Node) (voters, learners []uint64, conf uint64) {
	t.Helper()
	voters, err1 := n.Voters()
	learners, err2 := n.Learners()
	conf, err3 := n.ConfID()
	if err1 != nil || err2 != nil || err3 != nil {
		t.Fatalf("membership: %v %v %v", err1, err2, err3)
	}
	return voters, learners, conf
}

// Config.ManualRejoin and RejoinMaxLag reach the leader: by default a wiped voter is
// demoted, caught up and promoted; with ManualRejoin the leader logs an error, changes
// nothing, and the operator re-admits the node (learner, then PromoteLearner).
func TestRejoinOfAWipedVoter(t *testing.T) {
	var operatorNeeded atomic.Int64
	if err := raft.SetLogger(func(r raft.LogRecord) {
		if r.Level == raft.LogError && strings.Contains(r.Message, "automatic rejoin is off") {
			operatorNeeded.Add(1)
		}
	}, raft.LogError); err != nil {
		t.Fatalf("SetLogger: %v", err)
	}
	defer func() { _ = raft.SetLogger(nil, raft.LogOff) }()

	t.Run("automatic", func(t *testing.T) {
		c := newTunedCluster(t, []uint64{1, 2, 3}, true, func(cfg *raft.Config) { cfg.RejoinMaxLag = 8 })
		x, leader, conf := wipeAFollower(t, c)
		waitFor(t, "the wiped voter demoted and promoted again", 20*time.Second, func() bool {
			v, l, now := membership(t, c.node(leader))
			return now > conf && slices.Contains(v, x) && len(l) == 0
		})
		c.checkAll([]uint64{x}, 0, 5)
		if operatorNeeded.Load() != 0 {
			t.Fatal("the leader asked for the operator with automatic rejoin on")
		}
	})

	t.Run("operator", func(t *testing.T) {
		c := newTunedCluster(t, []uint64{1, 2, 3}, true, func(cfg *raft.Config) { cfg.ManualRejoin = true })
		x, leader, conf := wipeAFollower(t, c)
		waitFor(t, "the leader's error for the operator", 20*time.Second, func() bool {
			return operatorNeeded.Load() > 0
		})
		v, l, now := membership(t, c.node(leader))
		if now != conf || !slices.Contains(v, x) || len(l) != 0 {
			t.Fatalf("the leader changed the membership by itself: voters %v learners %v conf %d (was %d)", v, l, now, conf)
		}
		var others []uint64
		for _, id := range v {
			if id != x {
				others = append(others, id)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := c.node(leader).ChangeMembership(ctx, others, []uint64{x}, conf); err != nil {
			t.Fatalf("ChangeMembership (X a learner): %v", err)
		}
		if err := c.node(leader).PromoteLearner(ctx, x, 8); err != nil {
			t.Fatalf("PromoteLearner: %v", err)
		}
		c.checkAll([]uint64{x}, 0, 5)
	})
}

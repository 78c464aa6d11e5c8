// Command quickstart runs a one-node in-memory cluster whose state machine counts commands.
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	raft "github.com/raft-manager/raft-manager/bindings/go"
)

// counter is the replicated state machine: Apply runs on the engine's apply thread.
type counter struct{ n int }

func (c *counter) Apply(index uint64, cmd []byte) ([]byte, error) {
	c.n++
	return []byte(fmt.Sprintf("%s applied at index %d (#%d)", cmd, index, c.n)), nil
}

// noPeers is the transport of a one-node cluster; a real one passes each message to the
// target node's Step.
type noPeers struct{}

func (noPeers) Send(to uint64, msg []byte) {}

func main() {
	node, err := raft.NewNode(raft.Config{
		ID:              1,
		Voters:          []uint64{1},
		StateMachine:    &counter{},
		Transport:       noPeers{},
		ElectionTimeout: 150 * time.Millisecond,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer node.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		resp, err := node.Propose(ctx, []byte("hello"))
		if errors.Is(err, raft.ErrNotLeader) { // not elected yet
			time.Sleep(20 * time.Millisecond)
			continue
		}
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("raft %s: %s\n", raft.Version(), resp)
		return
	}
}

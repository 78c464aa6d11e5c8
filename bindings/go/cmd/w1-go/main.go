// Command w1-go is W1 through the Go binding: the Go twin of bench/c/w1_capi.c (same
// cluster, same closed loop), so the figures side by side show what cgo and the Go layer
// cost.
//
// 3 nodes in one process, memory storage, a Go transport handing the encoded bytes to the
// target's Node.Step, 64-byte commands; W proposals in flight on the leader
// (Node.ProposeAsync + a channel of W permits); committed-and-applied ops/s and commit
// latency percentiles per W.
//
//	w1-go [-secs 4] [-warmup 1] [-size 64] [-windows 1,16,64,256] [-caller-runs]
//	      [-mode async|goroutines]
//
// -mode goroutines runs W goroutines each looping on the blocking Node.Propose(ctx)
// instead (the idiomatic Go client). Output: a table plus
// BENCH name=w1.go[.caller_runs][.goroutines].c{W}.{ops,p50,p99,p999} lines.
package main

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	raft "github.com/raft-manager/raft-manager/bindings/go"
)

const n = 3

// counter is the state machine (touched only by its node's apply thread, and by
// Snapshot/Restore on that thread).
type counter struct{ applied, sum uint64 }

func (c *counter) Apply(_ uint64, cmd []byte) ([]byte, error) {
	if len(cmd) > 0 {
		c.sum += uint64(cmd[0])
	}
	c.applied++
	return nil, nil
}

func (c *counter) Snapshot(w io.Writer) error {
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], c.applied)
	binary.LittleEndian.PutUint64(b[8:], c.sum)
	_, err := w.Write(b[:])
	return err
}

func (c *counter) Restore(r io.Reader) error {
	var b [16]byte
	if _, err := io.ReadFull(r, b[:]); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	c.applied, c.sum = binary.LittleEndian.Uint64(b[:8]), binary.LittleEndian.Uint64(b[8:])
	return nil
}

// transport: nodes are published once started, read by every send.
type transport struct {
	nodes   [n + 1]atomic.Pointer[raft.Node]
	refused atomic.Uint64
}

func (t *transport) Send(to uint64, msg []byte) {
	if to < 1 || to > n {
		return
	}
	if nd := t.nodes[to].Load(); nd != nil && nd.Step(msg) != nil {
		t.refused.Add(1)
	}
}

type stats struct {
	mu       sync.Mutex
	lat      []time.Duration
	ops      uint64
	errors   uint64
	firstErr error
}

func (s *stats) record(d time.Duration, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil {
		s.lat = append(s.lat, d)
		s.ops++
		return
	}
	s.errors++
	if s.firstErr == nil {
		s.firstErr = err
	}
}

type row struct {
	window         int
	ops            float64
	p50, p99, p999 float64
	errors         uint64
}

func pct(sorted []time.Duration, q float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	i := int(q * float64(len(sorted)-1))
	return float64(sorted[i].Nanoseconds()) / 1000
}

func retryable(err error) bool {
	var e *raft.Error
	return errors.As(err, &e) && e.Status.Retryable()
}

func die(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "w1-go: "+format+"\n", a...)
	os.Exit(1)
}

// runAsync: ProposeAsync with a channel of `window` permits (the C harness's shape).
func runAsync(leader *raft.Node, window, size int, warmup, secs time.Duration) row {
	st := &stats{}
	var measuring atomic.Bool
	permits := make(chan struct{}, window)
	for i := 0; i < window; i++ {
		permits <- struct{}{}
	}
	cmd := make([]byte, max(size, 1))[:size]
	var seq uint64
	start := time.Now()
	mBegin := start.Add(warmup)
	end := mBegin.Add(secs)
	mStart := start
	started := false
	timer := time.NewTimer(time.Hour)
	for {
		now := time.Now()
		if !started && !now.Before(mBegin) {
			started, mStart = true, now
			measuring.Store(true)
		}
		if !now.Before(end) {
			break
		}
		timer.Reset(100 * time.Millisecond)
		select {
		case <-permits:
		case <-timer.C:
			continue
		}
		seq++
		if size >= 8 {
			binary.LittleEndian.PutUint64(cmd, seq)
		}
		t0 := time.Now()
		err := leader.ProposeAsync(cmd, func(_ []byte, err error) {
			if measuring.Load() {
				st.record(time.Since(t0), err)
			}
			permits <- struct{}{}
		})
		if err == nil {
			continue
		}
		if !retryable(err) {
			die("ProposeAsync: %v", err)
		}
		if measuring.Load() {
			st.record(0, err)
		}
		permits <- struct{}{}
	}
	mSecs := time.Since(mStart).Seconds()
	measuring.Store(false)
	drain := time.NewTimer(10 * time.Second)
	for back := 0; back < window; back++ {
		select {
		case <-permits:
		case <-drain.C:
			die("window %d: %d proposals still in flight after 10 s", window, window-back)
		}
	}
	return finish(st, window, mSecs)
}

// runGoroutines: `window` goroutines each looping on the blocking Propose(ctx).
func runGoroutines(leader *raft.Node, window, size int, warmup, secs time.Duration) row {
	st := &stats{}
	var measuring atomic.Bool
	var mStart time.Time
	ctx, cancel := context.WithTimeout(context.Background(), warmup+secs+20*time.Second)
	defer cancel()
	stop := time.Now().Add(warmup + secs)
	var wg sync.WaitGroup
	for g := 0; g < window; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			cmd := make([]byte, max(size, 1))[:size]
			for seq := uint64(g) << 40; time.Now().Before(stop); seq++ {
				if size >= 8 {
					binary.LittleEndian.PutUint64(cmd, seq)
				}
				t0 := time.Now()
				_, err := leader.Propose(ctx, cmd)
				if err != nil && !retryable(err) {
					die("Propose: %v", err)
				}
				if measuring.Load() {
					st.record(time.Since(t0), err)
				}
			}
		}(g)
	}
	time.Sleep(warmup) // the load runs meanwhile; only the measured window is recorded
	mStart = time.Now()
	measuring.Store(true)
	time.Sleep(time.Until(stop))
	mSecs := time.Since(mStart).Seconds()
	measuring.Store(false)
	wg.Wait()
	return finish(st, window, mSecs)
}

func finish(st *stats, window int, mSecs float64) row {
	st.mu.Lock()
	defer st.mu.Unlock()
	sort.Slice(st.lat, func(i, j int) bool { return st.lat[i] < st.lat[j] })
	if st.errors > 0 {
		fmt.Fprintf(os.Stderr, "w1-go: window %d: %d errors, first: %v\n", window, st.errors, st.firstErr)
	}
	return row{window: window, ops: float64(st.ops) / mSecs, p50: pct(st.lat, 0.5), p99: pct(st.lat, 0.99),
		p999: pct(st.lat, 0.999), errors: st.errors}
}

func main() {
	secs := flag.Float64("secs", 4, "measured seconds per row")
	warmup := flag.Float64("warmup", 1, "warm-up seconds per row")
	size := flag.Int("size", 64, "command size in bytes")
	windowsFlag := flag.String("windows", "1,16,64,256", "in-flight counts")
	callerRuns := flag.Bool("caller-runs", false, "set Config.CallerRuns")
	mode := flag.String("mode", "async", "async (ProposeAsync + permits) or goroutines (blocking Propose)")
	flag.Parse()
	if *secs <= 0 || *warmup < 0 || *size < 0 || *size > 1<<20 || (*mode != "async" && *mode != "goroutines") {
		flag.Usage()
		os.Exit(2)
	}
	var windows []int
	for _, w := range strings.Split(*windowsFlag, ",") {
		v, err := strconv.Atoi(w)
		if err != nil || v < 1 || v > 65536 {
			die("-windows: bad list %s", *windowsFlag)
		}
		windows = append(windows, v)
	}

	tr := &transport{}
	var nodes [n + 1]*raft.Node
	sms := [n + 1]*counter{}
	for id := uint64(1); id <= n; id++ {
		sms[id] = &counter{}
		nd, err := raft.NewNode(raft.Config{
			ID: id, Voters: []uint64{1, 2, 3}, StateMachine: sms[id], Transport: tr,
			ElectionTimeout: time.Second, HeartbeatInterval: 100 * time.Millisecond,
			SnapshotEntries: 100000, CallerRuns: *callerRuns,
		})
		if err != nil {
			die("NewNode: %v", err)
		}
		nodes[id] = nd
		tr.nodes[id].Store(nd)
	}
	var leader *raft.Node
	for deadline := time.Now().Add(10 * time.Second); leader == nil && time.Now().Before(deadline); {
		for id := 1; id <= n && leader == nil; id++ {
			if s, err := nodes[id].Status(); err == nil && s.Role == raft.Leader {
				leader = nodes[id]
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	if leader == nil {
		die("no leader after 10 s")
	}
	fmt.Fprintf(os.Stderr, "w1-go: library %s, leader %d, caller_runs %v, mode %s\n", raft.Version(), leader.ID(), *callerRuns, *mode)

	prefix := "w1.go"
	if *callerRuns {
		prefix += ".caller_runs"
	}
	if *mode == "goroutines" {
		prefix += ".goroutines"
	}
	var rows []row
	for _, w := range windows {
		var r row
		if *mode == "async" {
			r = runAsync(leader, w, *size, time.Duration(*warmup*1e9), time.Duration(*secs*1e9))
		} else {
			r = runGoroutines(leader, w, *size, time.Duration(*warmup*1e9), time.Duration(*secs*1e9))
		}
		fmt.Printf("BENCH name=%s.c%d.ops value=%.3f unit=ops/s\n", prefix, w, r.ops)
		fmt.Printf("BENCH name=%s.c%d.p50 value=%.3f unit=us\n", prefix, w, r.p50)
		fmt.Printf("BENCH name=%s.c%d.p99 value=%.3f unit=us\n", prefix, w, r.p99)
		fmt.Printf("BENCH name=%s.c%d.p999 value=%.3f unit=us\n", prefix, w, r.p999)
		rows = append(rows, r)
	}
	fmt.Printf("\nW1 (Go binding, %s, caller_runs %v): 3 nodes in-process, memory storage, %d-byte commands, %g s per row\n",
		*mode, *callerRuns, *size, *secs)
	fmt.Println("| in flight | ops/s | p50 us | p99 us | p999 us | errors |\n|---:|---:|---:|---:|---:|---:|")
	for _, r := range rows {
		fmt.Printf("| %d | %.0f | %.1f | %.1f | %.1f | %d |\n", r.window, r.ops, r.p50, r.p99, r.p999, r.errors)
	}
	for id := 1; id <= n; id++ {
		if err := nodes[id].Shutdown(); err != nil {
			die("Shutdown: %v", err)
		}
	}
	for id := 1; id <= n; id++ {
		tr.nodes[id].Store(nil)
		if err := nodes[id].Close(); err != nil {
			die("Close: %v", err)
		}
	}
	fmt.Fprintf(os.Stderr, "w1-go: applied per node: %d %d %d; %d messages refused\n",
		sms[1].applied, sms[2].applied, sms[3].applied, tr.refused.Load())
}

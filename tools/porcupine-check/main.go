// Command porcupine-check cross-checks raft-manager's own linearizability checker with
// porcupine (the checker etcd uses). It reads histories exported by the simulator
// (src/sim/porcupine.rs explains the line format) from the files of a directory, named
// ok-*.txt when our checker found them linearizable and bad-*.txt when it did not, and
// fails if porcupine disagrees on any of them.
package main

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"
)

type input struct {
	kind     string // get, put, cas
	key      string
	value    string // put: value; cas: new value
	expected *string
}

type output struct {
	unknown bool
	ok      bool    // cas result
	value   *string // get result (nil: absent)
}

type state struct {
	present bool
	value   string
}

func decode(s string) (string, error) {
	if s == "=" {
		return "", nil
	}
	b, err := hex.DecodeString(s)
	return string(b), err
}

func parse(path string) ([]porcupine.Operation, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var ops []porcupine.Operation
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for line := 1; sc.Scan(); line++ {
		p := strings.Fields(sc.Text())
		if len(p) != 8 {
			return nil, fmt.Errorf("%s:%d: want 8 fields, got %d", path, line, len(p))
		}
		client, err1 := strconv.Atoi(p[0])
		call, err2 := strconv.ParseInt(p[1], 10, 64)
		ret := int64(math.MaxInt64)
		var err3 error
		if p[2] != "-" {
			ret, err3 = strconv.ParseInt(p[2], 10, 64)
		}
		key, err4 := decode(p[4])
		if err := firstErr(err1, err2, err3, err4); err != nil {
			return nil, fmt.Errorf("%s:%d: %v", path, line, err)
		}
		in := input{kind: p[3], key: key}
		out := output{unknown: p[7] == "unknown" || p[2] == "-"}
		switch in.kind {
		case "get":
			if out.unknown {
				continue // a read with no result carries no information
			}
			if p[7] != "none" {
				v, err := decode(strings.TrimPrefix(p[7], "="))
				if err != nil {
					return nil, err
				}
				out.value = &v
			}
		case "put":
			if in.value, err1 = decode(p[5]); err1 != nil {
				return nil, err1
			}
		case "cas":
			if p[5] != "-" {
				e, err := decode(p[5])
				if err != nil {
					return nil, err
				}
				in.expected = &e
			}
			if in.value, err1 = decode(p[6]); err1 != nil {
				return nil, err1
			}
			out.ok = p[7] == "true"
		default:
			return nil, fmt.Errorf("%s:%d: unknown operation %q", path, line, in.kind)
		}
		if out.unknown {
			// It may take effect at any point after its call, or never: linearized last, a
			// write has no observable effect, so an open interval models both.
			ret = math.MaxInt64
		}
		ops = append(ops, porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: ret})
	}
	return ops, sc.Err()
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// kvModel: independent registers, partitioned by key; a register starts absent.
var kvModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		var keys []string
		for _, op := range history {
			k := op.Input.(input).key
			if _, ok := byKey[k]; !ok {
				keys = append(keys, k)
			}
			byKey[k] = append(byKey[k], op)
		}
		sort.Strings(keys)
		var out [][]porcupine.Operation
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() interface{} { return state{} },
	Step: func(s, i, o interface{}) (bool, interface{}) {
		st, in, out := s.(state), i.(input), o.(output)
		switch in.kind {
		case "get":
			if out.value == nil {
				return !st.present, st
			}
			return st.present && st.value == *out.value, st
		case "put":
			return true, state{present: true, value: in.value}
		default: // cas
			matches := (in.expected == nil && !st.present) ||
				(in.expected != nil && st.present && st.value == *in.expected)
			if out.unknown {
				if matches {
					return true, state{present: true, value: in.value}
				}
				return true, st
			}
			if out.ok != matches {
				return false, st
			}
			if matches {
				return true, state{present: true, value: in.value}
			}
			return true, st
		}
	},
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: porcupine-check DIR")
		os.Exit(2)
	}
	files, err := filepath.Glob(filepath.Join(os.Args[1], "*.txt"))
	if err != nil || len(files) == 0 {
		fmt.Fprintf(os.Stderr, "porcupine-check: no histories in %s\n", os.Args[1])
		os.Exit(2)
	}
	sort.Strings(files)
	mismatches, ops, unknown := 0, 0, 0
	start := time.Now()
	for _, path := range files {
		history, err := parse(path)
		if err != nil {
			fmt.Fprintln(os.Stderr, "porcupine-check:", err)
			os.Exit(2)
		}
		ops += len(history)
		want := porcupine.Ok
		if strings.HasPrefix(filepath.Base(path), "bad-") {
			want = porcupine.Illegal
		}
		got := porcupine.CheckOperationsTimeout(kvModel, history, 20*time.Second)
		switch {
		case got == porcupine.Unknown:
			unknown++
			fmt.Printf("porcupine-check: %s: porcupine timed out (ours: %s)\n", path, want)
		case got != want:
			mismatches++
			fmt.Printf("porcupine-check: %s: porcupine says %s, our checker said %s\n", path, got, want)
		}
	}
	fmt.Printf("porcupine-check: %d histories, %d operations, %d disagreements, %d undecided, %.1fs\n",
		len(files), ops, mismatches, unknown, time.Since(start).Seconds())
	// A history porcupine cannot decide in time (an illegal one can take exponential time)
	// is reported, not counted as a disagreement; every decided one must agree, and most
	// must be decided.
	if mismatches > 0 || unknown*2 > len(files) {
		os.Exit(1)
	}
}

package raft

/*
#include "bridge.h"
*/
import "C"

import (
	"fmt"
	"io"
	"os"
	"runtime/cgo"
	"unsafe"
)

// callbacks is what a config's userdata handle refers to.
type callbacks struct {
	sm        StateMachine
	snap      Snapshotter // nil when the state machine does not implement it
	transport Transport   // nil with the built-in TCP transport
	onRole    func(role Role, term, leader uint64)
	storage   Storage // nil unless custom storage
	// completions of custom-storage writes (used only with storage).
	completions completions
}

func callbacksOf(h C.uintptr_t) *callbacks { return cgo.Handle(h).Value().(*callbacks) }

// goBytes copies C bytes borrowed for a callback.
func goBytes(p *C.uint8_t, n C.size_t) []byte {
	if n == 0 {
		return []byte{}
	}
	return C.GoBytes(unsafe.Pointer(p), C.int(n))
}

// reportPanic prints a recovered panic from a callback (the node then fails, or, for the
// send and role-change callbacks, the call is dropped).
func reportPanic(where string, r any) {
	fmt.Fprintf(os.Stderr, "raft: panic in %s callback: %v\n", where, r)
}

//export raftgoSend
func raftgoSend(h C.uintptr_t, to C.uint64_t, data *C.uint8_t, n C.size_t) {
	defer func() {
		if r := recover(); r != nil {
			reportPanic("Transport.Send", r)
		}
	}()
	callbacksOf(h).transport.Send(uint64(to), goBytes(data, n))
}

//export raftgoApply
func raftgoApply(h C.uintptr_t, index C.uint64_t, cmd *C.uint8_t, n C.size_t, out *C.raft_buf) (rc C.int) {
	defer func() {
		if r := recover(); r != nil {
			reportPanic("StateMachine.Apply", r)
			rc = 1
		}
	}()
	resp, err := callbacksOf(h).sm.Apply(uint64(index), goBytes(cmd, n))
	if err != nil {
		fmt.Fprintf(os.Stderr, "raft: StateMachine.Apply at index %d failed: %v\n", uint64(index), err)
		return 1
	}
	if len(resp) > 0 {
		if C.raft_buf_set(out, (*C.uint8_t)(unsafe.Pointer(&resp[0])), C.size_t(len(resp))) != C.RAFT_STATUS_OK {
			return 1
		}
	}
	return 0
}

// snapshotWriter is the io.Writer given to Snapshotter.Snapshot.
type snapshotWriter struct{ w *C.raft_snapshot_writer }

func (w snapshotWriter) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if s := C.raft_snapshot_writer_write(w.w, (*C.uint8_t)(unsafe.Pointer(&p[0])), C.size_t(len(p))); s != C.RAFT_STATUS_OK {
		return 0, &Error{Op: "snapshot write", Status: Status(s)}
	}
	return len(p), nil
}

// snapshotReader is the io.Reader given to Snapshotter.Restore.
type snapshotReader struct{ r *C.raft_snapshot_reader }

func (r snapshotReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	var n C.size_t
	if s := C.raft_snapshot_reader_read(r.r, (*C.uint8_t)(unsafe.Pointer(&p[0])), C.size_t(len(p)), &n); s != C.RAFT_STATUS_OK {
		return 0, &Error{Op: "snapshot read", Status: Status(s)}
	}
	if n == 0 {
		return 0, io.EOF
	}
	return int(n), nil
}

//export raftgoSnapshot
func raftgoSnapshot(h C.uintptr_t, w *C.raft_snapshot_writer) (rc C.int) {
	defer func() {
		if r := recover(); r != nil {
			reportPanic("Snapshotter.Snapshot", r)
			rc = 1
		}
	}()
	if err := callbacksOf(h).snap.Snapshot(snapshotWriter{w}); err != nil {
		fmt.Fprintf(os.Stderr, "raft: Snapshotter.Snapshot failed: %v\n", err)
		return 1
	}
	return 0
}

//export raftgoRestore
func raftgoRestore(h C.uintptr_t, r *C.raft_snapshot_reader) (rc C.int) {
	defer func() {
		if p := recover(); p != nil {
			reportPanic("Snapshotter.Restore", p)
			rc = 1
		}
	}()
	if err := callbacksOf(h).snap.Restore(snapshotReader{r}); err != nil {
		fmt.Fprintf(os.Stderr, "raft: Snapshotter.Restore failed: %v\n", err)
		return 1
	}
	return 0
}

//export raftgoRoleChange
func raftgoRoleChange(h C.uintptr_t, role C.uint32_t, term, leader C.uint64_t) {
	defer func() {
		if r := recover(); r != nil {
			reportPanic("OnRoleChange", r)
		}
	}()
	callbacksOf(h).onRole(Role(role), uint64(term), uint64(leader))
}

//export raftgoFreeHandle
func raftgoFreeHandle(h C.uintptr_t) { cgo.Handle(h).Delete() }

// proposeDone receives the outcome of one asynchronous proposal.
type proposeDone func(resp []byte, err error)

//export raftgoProposeDone
func raftgoProposeDone(h C.uintptr_t, status C.uint32_t, resp *C.uint8_t, n C.size_t) {
	handle := cgo.Handle(h)
	done := handle.Value().(proposeDone)
	handle.Delete()
	defer func() {
		if r := recover(); r != nil {
			reportPanic("ProposeAsync completion", r)
		}
	}()
	if Status(status) != StatusOK {
		done(nil, &Error{Op: "propose", Status: Status(status)})
		return
	}
	done(goBytes(resp, n), nil)
}

//export raftgoLog
func raftgoLog(h C.uintptr_t, level C.uint32_t, target, message, file *C.char, line C.uint32_t) {
	defer func() {
		if r := recover(); r != nil {
			reportPanic("logger", r)
		}
	}()
	rec := LogRecord{Level: LogLevel(level), Line: uint32(line)}
	if target != nil {
		rec.Target = C.GoString(target)
	}
	if message != nil {
		rec.Message = C.GoString(message)
	}
	if file != nil {
		rec.File = C.GoString(file)
	}
	cgo.Handle(h).Value().(func(LogRecord))(rec)
}

package raft

/*
#include "bridge.h"
*/
import "C"

import (
	"fmt"
	"strconv"
)

// Status is a raft_status value of the C ABI. Values are stable; a newer library may
// return values this package has no constant for: they keep their number, their name
// comes from the library (raft_status_str) and Retryable classifies them by family.
type Status uint32

// The raft_status values known to this package.
const (
	StatusOK              Status = 0
	StatusNullArgument    Status = 100
	StatusInvalidArgument Status = 101
	StatusInvalidHandle   Status = 102
	StatusBufferTooSmall  Status = 103
	StatusWouldDeadlock   Status = 104
	StatusTooLarge        Status = 105
	StatusNotLeader       Status = 200
	StatusBusy            Status = 201
	StatusTimeout         Status = 202
	StatusDropped         Status = 203
	StatusShutDown        Status = 300
	StatusFailed          Status = 301
	StatusStorage         Status = 302
	StatusPanic           Status = 900
)

// String is the library's name of the status ("unknown status" for values it does not
// know either).
func (s Status) String() string { return C.GoString(C.raft_status_str(C.uint32_t(s))) }

// Retryable reports whether the status is in the cluster-state family (2xx: not leader,
// busy, timeout, dropped, and any such code added later): the call may succeed later or
// on another node.
func (s Status) Retryable() bool { return s/100 == 2 }

// Error is the error type of every failing call. Match it with errors.Is against the
// sentinels (ErrNotLeader, ErrBusy, ...; any *Error with the same Status matches) or
// extract it with errors.As to read the leader, status and detail.
type Error struct {
	// Op names the call that failed ("propose", "read index", ...).
	Op string
	// Status is the C ABI status.
	Status Status
	// Message is the library's detail (raft_last_error_message), possibly empty.
	Message string
	// Leader is, for StatusNotLeader, the leader this node knew of (0 when unknown).
	Leader uint64
	cause  error
}

// Error formats the error.
func (e *Error) Error() string {
	s := "raft"
	if e.Op != "" {
		s += ": " + e.Op
	}
	s += ": " + e.Status.String() + " (" + strconv.FormatUint(uint64(e.Status), 10) + ")"
	if e.Message != "" {
		s += ": " + e.Message
	}
	if e.Leader != 0 {
		s += fmt.Sprintf(" (leader is %d)", e.Leader)
	}
	if e.cause != nil {
		s += ": " + e.cause.Error()
	}
	return s
}

// Is matches any *Error with the same Status (so errors.Is(err, raft.ErrNotLeader) holds
// whatever the leader or message).
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Status == e.Status
}

// Unwrap returns the context error behind a timeout or cancellation, if any.
func (e *Error) Unwrap() error { return e.cause }

// Sentinels for errors.Is.
var (
	ErrNullArgument    = &Error{Status: StatusNullArgument}
	ErrInvalidArgument = &Error{Status: StatusInvalidArgument}
	ErrInvalidHandle   = &Error{Status: StatusInvalidHandle}
	ErrBufferTooSmall  = &Error{Status: StatusBufferTooSmall}
	ErrWouldDeadlock   = &Error{Status: StatusWouldDeadlock}
	ErrTooLarge        = &Error{Status: StatusTooLarge}
	ErrNotLeader       = &Error{Status: StatusNotLeader}
	ErrBusy            = &Error{Status: StatusBusy}
	ErrTimeout         = &Error{Status: StatusTimeout}
	ErrDropped         = &Error{Status: StatusDropped}
	ErrShutDown        = &Error{Status: StatusShutDown}
	ErrFailed          = &Error{Status: StatusFailed}
	ErrStorage         = &Error{Status: StatusStorage}
	ErrPanic           = &Error{Status: StatusPanic}
)

// msgBuf receives raft_last_error_message inside the same C call as the failing one.
type msgBuf [C.RGO_MSG_CAP]C.char

func (m *msgBuf) ptr() *C.char { return &m[0] }

// newError builds the *Error of a failed call; s must not be OK.
func newError(op string, s C.raft_status, m *msgBuf) *Error {
	e := &Error{Op: op, Status: Status(s)}
	if m != nil {
		e.Message = C.GoString(m.ptr())
	}
	return e
}

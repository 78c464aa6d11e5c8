package raft

/*
#include "bridge.h"
*/
import "C"

import (
	"runtime/cgo"
	"sync"
)

// LogLevel is a log severity, most severe first.
type LogLevel uint32

// Log levels.
const (
	LogOff   LogLevel = 0
	LogError LogLevel = 1
	LogWarn  LogLevel = 2
	LogInfo  LogLevel = 3
	LogDebug LogLevel = 4
	LogTrace LogLevel = 5
)

// LogRecord is one log event of the library.
type LogRecord struct {
	Level   LogLevel
	Target  string // module path, e.g. raft::runtime::node
	Message string // message followed by " key=value" fields
	File    string // source file, or ""
	Line    uint32 // source line, or 0
}

var (
	logMu sync.Mutex
	// Every logger ever installed keeps its handle: a logging thread may still be inside
	// the previous one while it is replaced (one small allocation per SetLogger call).
	logHandles []cgo.Handle
)

// SetLogger installs the process-wide receiver of the library's log events up to level
// max (called from any engine thread, possibly concurrently); nil or LogOff removes it.
// The library leaves any process-global tracing subscriber of the host alone.
func SetLogger(f func(LogRecord), max LogLevel) error {
	logMu.Lock()
	defer logMu.Unlock()
	var m msgBuf
	if f == nil || max == LogOff {
		if s := C.rgo_set_logger(0, 0, m.ptr()); s != C.RAFT_STATUS_OK {
			return newError("set logger", s, &m)
		}
		return nil
	}
	h := cgo.NewHandle(f)
	logHandles = append(logHandles, h)
	if s := C.rgo_set_logger(C.uintptr_t(h), C.uint32_t(max), m.ptr()); s != C.RAFT_STATUS_OK {
		return newError("set logger", s, &m)
	}
	return nil
}

package main

import (
	"io"
	"log/slog"
	"sync"
)

// The bounds of the holder's log file, which lives in the run directory —
// on tmpfs, in memory: its first holderLogHead bytes as they come, and, if
// there were more, its last holderLogTail bytes at the end of the hold
// after a record that says how much was dropped between the two.
const (
	holderLogHead = 1 << 20
	holderLogTail = 1 << 20
)

// cappedLog is the holder's log file, bounded as holderLogHead and
// holderLogTail say. It is safe for concurrent use.
type cappedLog struct {
	mu      sync.Mutex // guards the fields below
	w       io.Writer
	written int64    // bytes written to w
	tail    *logTail // the bytes after the head, once it is full
}

func newCappedLog(w io.Writer) *cappedLog { return &cappedLog{w: w} }

// Write writes p to the file while the head has room, else keeps it in
// the tail. It never fails.
func (c *cappedLog) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tail == nil && c.written+int64(len(p)) <= holderLogHead {
		n, _ := c.w.Write(p)
		c.written += int64(n)
		return len(p), nil
	}
	if c.tail == nil {
		c.tail = newLogTail(holderLogTail)
	}
	return c.tail.Write(p)
}

// close writes the tail, if any, after a record that says how many bytes
// were dropped, if any were.
func (c *cappedLog) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tail == nil {
		return
	}
	c.tail.writeDropped(c.w, "holder log: records dropped to bound this file; the last ones follow",
		slog.Int64("head_bytes", holderLogHead), slog.Int64("tail_bytes", holderLogTail))
	c.tail = nil
}

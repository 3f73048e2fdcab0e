package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"sync"

	"github.com/armon/circbuf"
	"github.com/snaphooks/hooks"
)

// quietLogLimit is how much of the log "run --quiet" holds back: the last
// MiB, some thousand records, enough for the story of a failed run, and a
// bound on the memory that a chatty hook can make snaphook use.
const quietLogLimit = 1 << 20

// logTail holds back the log of a quiet run: it keeps the last bytes written
// to it, to be written out if the run went wrong. It is safe for concurrent
// use.
type logTail struct {
	mu  sync.Mutex // guards buf
	buf *circbuf.Buffer
}

func newLogTail(size int64) *logTail {
	buf, err := circbuf.NewBuffer(size)
	if err != nil {
		panic(err) // unreachable: size > 0
	}
	return &logTail{buf: buf}
}

// Write keeps p, dropping the oldest bytes beyond the limit. It never fails.
func (t *logTail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.buf.Write(p)
}

// writeTo writes the records held to w. If older records were dropped, it
// writes first a record that says how many bytes of them, then the held
// records from the first whole one on.
func (t *logTail) writeTo(w io.Writer) {
	t.writeDropped(w, "quiet: the earlier log records were dropped; the last ones follow",
		slog.Int64("limit_bytes", t.buf.Size()))
}

// writeDropped writes the records held to w. If older records were dropped,
// it writes first a warning record msg with attrs and the number of bytes
// dropped, then the held records from the first whole one on.
func (t *logTail) writeDropped(w io.Writer, msg string, attrs ...slog.Attr) {
	t.mu.Lock()
	defer t.mu.Unlock()
	held := t.buf.Bytes()
	if dropped := t.buf.TotalWritten() - int64(len(held)); dropped > 0 {
		// The oldest held record may have lost its beginning.
		if i := bytes.IndexByte(held, '\n'); i >= 0 {
			held = held[i+1:]
		} else {
			held = nil
		}
		dropped = t.buf.TotalWritten() - int64(len(held))
		log := slog.New(hooks.NewLogfmtHandler(w, nil))
		log.LogAttrs(context.Background(), slog.LevelWarn, msg, append([]slog.Attr{slog.Int64("dropped_bytes", dropped)}, attrs...)...)
	}
	_, _ = w.Write(held)
}

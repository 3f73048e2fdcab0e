package hooks

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/armon/circbuf"
)

// maxLogLine is the longest piece of a line logged as one record.
const maxLogLine = 64 << 10

// outputCapture keeps the last size bytes of a process's combined output.
//
// The output is kept in a plain slice while it is short (headMax); only
// when it grows beyond is the ring (armon/circbuf) of size bytes allocated.
// A quiet hook so costs a few bytes, not a megabyte per run, and memory stays
// bounded by size plus headMax whatever the hook writes.
type outputCapture struct {
	size int
	// mu guards head and ring: stdout and stderr are copied by two goroutines.
	mu   sync.Mutex
	head []byte          // the whole output so far, while it is at most min(size, headMax) bytes
	ring *circbuf.Buffer // the last size bytes once the output outgrew head; head is nil then
}

// headMax is the most output an outputCapture keeps before it allocates its ring.
const headMax = 64 << 10

func newOutputCapture(size int) *outputCapture {
	if size <= 0 {
		size = MaxHookLogSizeDefault
	}
	return &outputCapture{size: size}
}

// write appends p to the captured output.
func (o *outputCapture) write(p []byte) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.ring == nil {
		if n := len(o.head) + len(p); n <= min(o.size, headMax) {
			if n > cap(o.head) {
				// Grow as append would, but never past the limit.
				head := make([]byte, len(o.head), min(o.size, headMax, max(n, 2*cap(o.head), 512)))
				copy(head, o.head)
				o.head = head
			}
			o.head = append(o.head, p...)
			return
		}
		ring, err := circbuf.NewBuffer(int64(o.size))
		if err != nil {
			panic(err) // unreachable: size > 0
		}
		_, _ = ring.Write(o.head)
		o.head, o.ring = nil, ring
	}
	_, _ = o.ring.Write(p)
}

// readBufs holds the read buffers of outputCapture.copy, so that a run of a
// hook does not allocate two of them.
var readBufs = sync.Pool{New: func() any { return new([64 << 10]byte) }}

// copy reads r until EOF or an error, into the capture and, when log is
// enabled at level, line by line into log with the line under key stream.
func (o *outputCapture) copy(ctx context.Context, r io.Reader, log *slog.Logger, stream string, level slog.Level) {
	var split *lineSplitter
	var chunkTime time.Time // see below
	if log.Enabled(ctx, level) {
		// Records go straight to the handler, as Logger.LogAttrs would send
		// them but without a source position: the source of a hook's output
		// is the hook, and runtime.Callers for every line is a good part of
		// the cost of logging a chatty hook.
		//
		// The time of a record is read from the clock, time.Now, for the
		// first line of each chunk read, and for the lines after it in the
		// chunk as that reading plus the monotonic time elapsed since: one
		// read of the monotonic clock instead of both clocks per line.
		h := log.Handler()
		split = &lineSplitter{emit: func(line []byte, partial bool) {
			if !h.Enabled(ctx, level) {
				return
			}
			var now time.Time
			if chunkTime.IsZero() {
				now = time.Now()
				chunkTime = now
			} else {
				now = chunkTime.Add(time.Since(chunkTime))
			}
			rec := slog.NewRecord(now, level, "hook output", 0)
			if partial {
				rec.AddAttrs(slog.String(stream, string(line)), slog.Bool("partial", true))
			} else {
				rec.AddAttrs(slog.String(stream, string(line)))
			}
			_ = h.Handle(ctx, rec)
		}}
	}
	bp := readBufs.Get().(*[64 << 10]byte)
	defer readBufs.Put(bp)
	buf := bp[:]
	for {
		n, err := r.Read(buf)
		if n > 0 {
			o.write(buf[:n])
			if split != nil {
				chunkTime = time.Time{}
				split.Write(buf[:n])
			}
		}
		if err != nil {
			break
		}
	}
	if split != nil {
		split.Flush()
	}
}

// bytes returns the captured tail, never nil. It is for when the copying is
// over: the slice may share memory with the capture, which must not be
// written to any more.
func (o *outputCapture) bytes() []byte {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.ring != nil {
		return o.ring.Bytes()
	}
	if o.head == nil {
		return []byte{}
	}
	return o.head
}

// lineSplitter cuts a byte stream into lines for logging. A line split
// across writes comes out whole; "\n" and a "\r" before it are trimmed; a line
// longer than maxLogLine comes out in pieces, all but the last with
// partial=true; Flush emits a last line that has no newline. Every other
// byte is emitted exactly once, in order.
type lineSplitter struct {
	emit    func(line []byte, partial bool)
	pending []byte // the start of a line whose newline has not come yet
	max     int    // piece size; maxLogLine when 0
}

func (s *lineSplitter) limit() int {
	if s.max > 0 {
		return s.max
	}
	return maxLogLine
}

// Write splits p. It never fails.
func (s *lineSplitter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			s.pending = append(s.pending, p...)
			s.emitLong()
			break
		}
		line := p[:i]
		if len(s.pending) > 0 {
			s.pending = append(s.pending, line...)
			line = s.pending
		}
		line = bytes.TrimSuffix(line, []byte{'\r'})
		for len(line) > s.limit() {
			k := s.cut(line)
			s.emit(line[:k], true)
			line = line[k:]
		}
		s.emit(line, false)
		s.pending = s.pending[:0]
		p = p[i+1:]
	}
	return n, nil
}

// emitLong emits full pieces of a pending line that is already too long.
func (s *lineSplitter) emitLong() {
	if len(s.pending) <= s.limit() {
		return
	}
	rest := s.pending
	for len(rest) > s.limit() {
		k := s.cut(rest)
		s.emit(rest[:k], true)
		rest = rest[k:]
	}
	s.pending = append(s.pending[:0], rest...)
}

// cut returns where to cut a piece off line: at the limit, but never right
// after a "\r", which may belong to a "\r\n" still to come.
func (s *lineSplitter) cut(line []byte) int {
	k := s.limit()
	if line[k-1] == '\r' && k > 1 {
		k--
	}
	return k
}

// Flush emits the pending line, if any.
func (s *lineSplitter) Flush() {
	if len(s.pending) > 0 {
		s.emit(s.pending, false)
		s.pending = s.pending[:0]
	}
}

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
// The output goes to a plain slice while it is short (at most headMax
// bytes), and only beyond that into a ring (armon/circbuf) of size bytes.
// Making the 1 MiB ring for every run, whatever the hook writes, made a plan
// with one /bin/true hook about 1.5x as slow as two bare exec runs instead of
// about 1.2x (BenchmarkCommandHookOverhead, medians of interleaved rounds on
// a 2-vCPU VM; 2.2 MB of garbage per plan).
type outputCapture struct {
	size int
	// mu guards head and ring: stdout and stderr are copied by two goroutines.
	mu   sync.Mutex
	head []byte          // the whole output while it is short; nil once ring is used
	ring *circbuf.Buffer // the last size bytes once the output outgrew head
}

// headMax is the most output an outputCapture keeps before it makes its ring.
const headMax = 64 << 10

// newOutputCapture returns a capture of the last size bytes, 1 <= size <=
// MaxHookLogSizeLimit.
func newOutputCapture(size int) *outputCapture { return &outputCapture{size: size} }

// write appends p to the captured output.
func (o *outputCapture) write(p []byte) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.ring == nil {
		if len(o.head)+len(p) <= min(o.size, headMax) {
			o.head = append(o.head, p...)
			return
		}
		ring, err := circbuf.NewBuffer(int64(o.size))
		if err != nil {
			panic(err) // unreachable: CommandHook keeps size positive
		}
		_, _ = ring.Write(o.head)
		o.head, o.ring = nil, ring
	}
	_, _ = o.ring.Write(p)
}

// readBufs holds the read buffers of outputCapture.readStream. A new 32 KiB buffer
// per stream and run, as io.Copy makes, took the plan with one /bin/true
// hook from 1.18x to 1.20x two bare exec runs (BenchmarkCommandHookOverhead,
// medians of 25 interleaved rounds): the budget is 1.16x, and os/exec's
// Cancel already costs 0.02.
var readBufs = sync.Pool{New: func() any { return new([64 << 10]byte) }}

// readStream reads r until EOF or an error into the capture and, when log is
// enabled at level, line by line into log with the line under key stream.
func (o *outputCapture) readStream(ctx context.Context, r io.Reader, log *slog.Logger, stream string, level slog.Level) {
	var lines *lineSplitter
	if log.Enabled(ctx, level) {
		lines = &lineSplitter{emit: func(line []byte, partial bool) {
			// Straight to the handler, as Logger.LogAttrs would send it but
			// without a source position: the source of a hook's output is
			// the hook, not this line.
			rec := slog.NewRecord(time.Now(), level, "hook output", 0)
			rec.AddAttrs(slog.String(stream, string(line)))
			if partial {
				rec.AddAttrs(slog.Bool("partial", true))
			}
			_ = log.Handler().Handle(ctx, rec)
		}}
	}
	buf := readBufs.Get().(*[64 << 10]byte)
	defer readBufs.Put(buf)
	for {
		n, err := r.Read(buf[:])
		o.write(buf[:n])
		if lines != nil {
			lines.Write(buf[:n])
		}
		if err != nil {
			break
		}
	}
	if lines != nil {
		lines.Flush()
	}
}

// bytes returns a copy of the captured tail, never nil.
func (o *outputCapture) bytes() []byte {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.ring == nil {
		return append([]byte{}, o.head...)
	}
	return append([]byte{}, o.ring.Bytes()...)
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

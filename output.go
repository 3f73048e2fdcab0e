package hooks

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"sync"

	"github.com/armon/circbuf"
)

// maxLogLine is the longest piece of a line logged as one record.
const maxLogLine = 64 << 10

// outputCapture keeps the last bytes of a process's combined output.
type outputCapture struct {
	mu   sync.Mutex // guards ring: stdout and stderr are copied by two goroutines
	ring *circbuf.Buffer
}

func newOutputCapture(size int) *outputCapture {
	if size <= 0 {
		size = MaxHookLogSizeDefault
	}
	ring, err := circbuf.NewBuffer(int64(size))
	if err != nil {
		panic(err) // unreachable: size > 0
	}
	return &outputCapture{ring: ring}
}

// copy reads r until EOF or an error, into the ring and, when log is enabled
// at level, line by line into log with the line under key stream.
func (o *outputCapture) copy(ctx context.Context, r io.Reader, log *slog.Logger, stream string, level slog.Level) {
	var split *lineSplitter
	if log.Enabled(ctx, level) {
		split = &lineSplitter{emit: func(line []byte, partial bool) {
			if partial {
				log.LogAttrs(ctx, level, "hook output", slog.String(stream, string(line)), slog.Bool("partial", true))
				return
			}
			log.LogAttrs(ctx, level, "hook output", slog.String(stream, string(line)))
		}}
	}
	buf := make([]byte, 64<<10)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			o.mu.Lock()
			o.ring.Write(buf[:n])
			o.mu.Unlock()
			if split != nil {
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

// bytes returns a copy of the captured tail.
func (o *outputCapture) bytes() []byte {
	o.mu.Lock()
	defer o.mu.Unlock()
	return bytes.Clone(o.ring.Bytes())
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

package hooks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-logfmt/logfmt"
)

type loggerKey struct{}

// discardLogger is what GetLogger returns when ctx carries no logger.
var discardLogger = slog.New(slog.DiscardHandler)

// WithLogger returns a copy of ctx that carries l. Plans and hooks log to the
// logger of the ctx they are given. A nil l means no logging.
func WithLogger(ctx context.Context, l *slog.Logger) context.Context {
	return context.WithValue(ctx, loggerKey{}, l)
}

// GetLogger returns the logger carried by ctx, or a logger that discards
// everything when there is none.
func GetLogger(ctx context.Context) *slog.Logger {
	if l, ok := ctx.Value(loggerKey{}).(*slog.Logger); ok && l != nil {
		return l
	}
	return discardLogger
}

// NewLogfmtHandler returns a slog.Handler that writes each record to w as
// one logfmt line (https://brandur.org/logfmt), encoded with go-logfmt:
//
//	time=2026-11-25T08:00:00.123456789Z level=INFO msg="hook output" hook=/etc/hooks/x edge=Pre fs=tank/db stdout=flushed
//
// The record's time (RFC 3339 with nanoseconds, left out when zero), level,
// source (file:line, with AddSource) and message come first under slog's
// keys, then the attributes. Groups become dotted key prefixes ("g.k=v").
// Every line is valid logfmt whatever the bytes of a message, key or value:
// values are quoted and escaped as needed, and no control rune (IsControl:
// C0, DEL, C1, the bidi controls) is ever written as it is — a value's
// controls become escapes such as "\n", "\u001b", "\u009b" or "\u202e",
// which a logfmt decoder turns back into the runes; runes a key cannot hold
// (space, '=', '"', control runes, invalid UTF-8) are dropped from it, and a
// key left empty by that is written as "!BADKEY". A value go-logfmt cannot
// encode (a struct, a slice) is written as fmt's %+v of it, and one whose
// MarshalText fails as "!ERROR:" and the error.
//
// opts may be nil; Level, AddSource and ReplaceAttr are honoured as by
// slog's own handlers. Each record is written with a single Write call; the
// handler and the handlers derived from it are safe for concurrent use and
// never call w's Write concurrently.
func NewLogfmtHandler(w io.Writer, opts *slog.HandlerOptions) slog.Handler {
	h := &logfmtHandler{w: w, mu: new(sync.Mutex)}
	if opts != nil {
		h.opts = *opts
	}
	return h
}

// logfmtHandler is the handler of NewLogfmtHandler.
type logfmtHandler struct {
	opts   slog.HandlerOptions
	groups []string    // from WithGroup, outermost first
	attrs  []byte      // pairs encoded by WithAttrs, each preceded by a space
	mu     *sync.Mutex // shared by all handlers derived from one; guards w
	w      io.Writer
}

func (h *logfmtHandler) Enabled(_ context.Context, level slog.Level) bool {
	min := slog.LevelInfo
	if h.opts.Level != nil {
		min = h.opts.Level.Level()
	}
	return level >= min
}

func (h *logfmtHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	if len(attrs) == 0 {
		return h
	}
	h2 := *h
	l := newLogfmtLine(slices.Clone(h.attrs)) // h keeps its own
	for _, a := range attrs {
		h.appendAttr(l, h.groups, a)
	}
	h2.attrs = l.buf.Bytes()
	return &h2
}

func (h *logfmtHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	h2 := *h
	h2.groups = append(slices.Clip(h.groups), name)
	return &h2
}

func (h *logfmtHandler) Handle(_ context.Context, r slog.Record) error {
	l := logfmtLines.Get().(*logfmtLine)
	defer func() {
		if l.buf.Cap() <= 64<<10 { // a huge line's buffer goes
			l.buf.Reset()
			logfmtLines.Put(l)
		}
	}()
	if !r.Time.IsZero() {
		h.appendBuiltin(l, slog.Time(slog.TimeKey, r.Time))
	}
	h.appendBuiltin(l, slog.Any(slog.LevelKey, r.Level))
	if h.opts.AddSource && r.PC != 0 {
		f, _ := runtime.CallersFrames([]uintptr{r.PC}).Next()
		h.appendBuiltin(l, slog.String(slog.SourceKey, f.File+":"+strconv.Itoa(f.Line)))
	}
	h.appendBuiltin(l, slog.String(slog.MessageKey, r.Message))
	l.buf.Write(h.attrs)
	r.Attrs(func(a slog.Attr) bool {
		h.appendAttr(l, h.groups, a)
		return true
	})
	l.buf.WriteByte('\n')
	line := bytes.TrimPrefix(l.buf.Bytes(), []byte(" "))

	h.mu.Lock()
	defer h.mu.Unlock()
	_, err := h.w.Write(line)
	return err
}

// appendBuiltin appends one of the record's own fields (time, level, ...),
// passed through ReplaceAttr as slog's handlers do.
func (h *logfmtHandler) appendBuiltin(l *logfmtLine, a slog.Attr) {
	if h.opts.ReplaceAttr != nil {
		a = h.opts.ReplaceAttr(nil, a)
		a.Value = a.Value.Resolve()
		if a.Equal(slog.Attr{}) {
			return
		}
	}
	l.appendPair(a.Key, a.Value)
}

// appendAttr appends a, resolved and passed through ReplaceAttr, under the
// groups; the attributes of a group attribute are appended one by one.
func (h *logfmtHandler) appendAttr(l *logfmtLine, groups []string, a slog.Attr) {
	a.Value = a.Value.Resolve()
	if h.opts.ReplaceAttr != nil && a.Value.Kind() != slog.KindGroup {
		a = h.opts.ReplaceAttr(groups, a)
		a.Value = a.Value.Resolve()
	}
	if a.Equal(slog.Attr{}) {
		return
	}
	if a.Value.Kind() == slog.KindGroup {
		if a.Key != "" {
			groups = append(slices.Clip(groups), a.Key)
		}
		for _, ga := range a.Value.Group() {
			h.appendAttr(l, groups, ga)
		}
		return
	}
	key := a.Key
	if len(groups) > 0 {
		key = strings.Join(groups, ".") + "." + key
	}
	l.appendPair(key, a.Value)
}

// badKey stands for a key with no rune that logfmt allows in a key.
const badKey = "!BADKEY"

// logfmtLine is a line being encoded: pairs, each preceded by a space.
type logfmtLine struct {
	buf bytes.Buffer
	enc *logfmt.Encoder // writes to buf
}

// logfmtLines holds lines for Handle to reuse, as slog's own handlers reuse
// their buffers. It takes five of fourteen allocations out of a record, and
// a chatty hook logs close to a million records a second: measured, its
// logging goes from ~40 to ~65 MB/s with the pool (the budget is 60 MB/s).
var logfmtLines = sync.Pool{New: func() any { return newLogfmtLine(nil) }}

// newLogfmtLine returns a line that starts with b.
func newLogfmtLine(b []byte) *logfmtLine {
	l := &logfmtLine{buf: *bytes.NewBuffer(b)}
	l.enc = logfmt.NewEncoder(&l.buf)
	return l
}

// appendPair appends a space and key=v, encoded by go-logfmt.
func (l *logfmtLine) appendPair(key string, v slog.Value) {
	var val any
	switch v.Kind() {
	case slog.KindTime:
		val = v.Time().Format(time.RFC3339Nano) // MarshalText fails on years past 9999
	default:
		val = v.Any()
	}
	if indexControl(key) >= 0 {
		key = strings.Map(dropControl, key)
	}
	start := l.buf.Len()
	l.buf.WriteByte(' ')
	l.enc.Reset() // the space is written: no separator of its own
	if err := l.enc.EncodeKeyval(key, val); err != nil {
		l.encodeInstead(key, val, err)
	}
	l.escapeValue(start)
}

// dropControl maps the control runes of a key (IsControl) to nothing.
func dropControl(r rune) rune {
	if IsControl(r) {
		return -1
	}
	return r
}

// escapeValue escapes the C1 and bidi controls in the value of the pair
// that starts at start, which go-logfmt passes through as UTF-8 (it escapes
// only C0 and DEL). A quoted value gets "\u009b"-style escapes, which a
// logfmt decoder turns back into the rune; a bare value is quoted first, so
// that the escape decodes too.
func (l *logfmtLine) escapeValue(start int) {
	pair := l.buf.Bytes()[start:]
	if !hasWideControl(pair) {
		return
	}
	eq := bytes.IndexByte(pair, '=') // a key holds no '=' (go-logfmt drops it)
	val := pair[eq+1:]
	var fixed []byte
	if len(val) > 0 && val[0] == '"' {
		fixed = escapeWideControls(val)
	} else { // a bare value has no quote, space or C0 control, but may have '\\'
		fixed = append([]byte{'"'}, escapeWideControls(bytes.ReplaceAll(val, []byte{'\\'}, []byte{'\\', '\\'}))...)
		fixed = append(fixed, '"')
	}
	l.buf.Truncate(start + eq + 1)
	l.buf.Write(fixed)
}

// encodeInstead encodes what it can of a pair that go-logfmt refused with err
// (EncodeKeyval writes nothing then).
func (l *logfmtLine) encodeInstead(key string, val any, err error) {
	if errors.Is(err, logfmt.ErrInvalidKey) {
		key = badKey
		if err = l.enc.EncodeKeyval(key, val); err == nil {
			return
		}
	}
	var merr *logfmt.MarshalerError
	switch {
	case errors.Is(err, logfmt.ErrUnsupportedValueType):
		val = fmt.Sprintf("%+v", val)
	case errors.As(err, &merr):
		val = "!ERROR:" + merr.Err.Error()
	default: // a panicking MarshalText
		val = "!ERROR:" + err.Error()
	}
	_ = l.enc.EncodeKeyval(key, val) // a string key and value: no error
}

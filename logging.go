package hooks

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"runtime"
	"strconv"
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

// LogfmtHandler is a slog.Handler that writes each record as one logfmt line
// (https://brandur.org/logfmt), encoded with go-logfmt:
//
//	time=2026-11-25T08:00:00.000Z level=INFO msg="hook output" hook=/etc/hooks/x edge=Pre fs=tank/db stdout="flushed"
//
// Groups become dotted key prefixes. Values are quoted and escaped as logfmt
// requires, so any bytes in a message or value are safe. Each record is
// written to the writer with a single Write call; a LogfmtHandler and the
// handlers derived from it are safe for concurrent use.
type LogfmtHandler struct {
	opts   slog.HandlerOptions
	prefix string // group prefix for attributes added later, "a.b."
	pre    []byte // encoded attributes from WithAttrs, each preceded by a space
	mu     *sync.Mutex
	w      io.Writer
}

// NewLogfmtHandler returns a handler that writes logfmt to w. opts may be nil;
// Level, AddSource and ReplaceAttr are honoured.
func NewLogfmtHandler(w io.Writer, opts *slog.HandlerOptions) *LogfmtHandler {
	h := &LogfmtHandler{w: w, mu: new(sync.Mutex)}
	if opts != nil {
		h.opts = *opts
	}
	return h
}

// Enabled reports whether level is at or above the handler's minimum level.
func (h *LogfmtHandler) Enabled(_ context.Context, level slog.Level) bool {
	min := slog.LevelInfo
	if h.opts.Level != nil {
		min = h.opts.Level.Level()
	}
	return level >= min
}

// WithAttrs returns a handler whose records carry attrs; they are encoded once, here.
func (h *LogfmtHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	if len(attrs) == 0 {
		return h
	}
	h2 := *h
	lb := newLogfmtBuf()
	lb.b.Write(h.pre)
	for _, a := range attrs {
		h2.appendAttr(lb, h.prefix, a)
	}
	h2.pre = lb.b.Bytes() // a fresh slice: h keeps its own
	return &h2
}

// WithGroup returns a handler that prefixes the keys of later attributes with name.
func (h *LogfmtHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	h2 := *h
	h2.prefix = h.prefix + name + "."
	return &h2
}

// logfmtBuf is the scratch space of one record: Handle takes one from a
// pool, so that encoding a record allocates nothing of its own.
type logfmtBuf struct {
	b   bytes.Buffer
	enc *logfmt.Encoder
	// key and val carry a key and a string value to the encoder. A
	// *encString in an interface costs no allocation, a string does, and
	// go-logfmt encodes a fmt.Stringer exactly as the string it returns.
	key, val encString
	// text carries a formatted time to the encoder, the same way, as an
	// encoding.TextMarshaler.
	text    encText
	scratch []byte
	times   timeCache
	// level and msg remember the encoding of the last level and message
	// pairs: most records of a chatty hook repeat them.
	level, msg pairMemo
}

// pairMemo remembers the go-logfmt encoding of one key and string value.
type pairMemo struct {
	key, val string
	enc      []byte // " key=value", as encode wrote it
}

// maxMemoValue is the longest value a pairMemo keeps.
const maxMemoValue = 64

// encString is a string that go-logfmt encodes as the string itself (see
// writeKey and writeValue of go-logfmt: a value that is not a string, []byte,
// TextMarshaler or error, but a fmt.Stringer, is encoded as its String).
type encString struct{ s string }

func (e *encString) String() string { return e.s }

// encText is encoded by go-logfmt as its bytes would be as a string, except
// that the bytes "null" are not quoted: it only carries formatted times.
type encText struct{ b []byte }

func (e *encText) MarshalText() ([]byte, error) { return e.b, nil }

func newLogfmtBuf() *logfmtBuf {
	lb := new(logfmtBuf)
	lb.enc = logfmt.NewEncoder(&lb.b)
	return lb
}

var logfmtBufs = sync.Pool{New: func() any { return newLogfmtBuf() }}

// Handle writes r as one line.
func (h *LogfmtHandler) Handle(_ context.Context, r slog.Record) error {
	lb := logfmtBufs.Get().(*logfmtBuf)
	defer func() {
		lb.key.s, lb.val.s = "", "" // keep no record alive in the pool
		if lb.b.Cap() <= 64<<10 {
			lb.b.Reset()
			logfmtBufs.Put(lb)
		}
	}()
	b := &lb.b

	if h.opts.ReplaceAttr == nil {
		// The built-in fields as appendBuiltin would write them, without
		// making attributes of them first.
		if !r.Time.IsZero() {
			h.writeRecordTime(lb, r.Time)
		}
		h.writeMemo(lb, &lb.level, slog.LevelKey, r.Level.String())
		if h.opts.AddSource && r.PC != 0 {
			f, _ := runtime.CallersFrames([]uintptr{r.PC}).Next()
			h.writeString(lb, slog.SourceKey, f.File+":"+strconv.Itoa(f.Line))
		}
		h.writeMemo(lb, &lb.msg, slog.MessageKey, r.Message)
	} else {
		if !r.Time.IsZero() {
			h.appendBuiltin(lb, slog.Time(slog.TimeKey, r.Time))
		}
		h.appendBuiltin(lb, slog.Any(slog.LevelKey, r.Level))
		if h.opts.AddSource && r.PC != 0 {
			f, _ := runtime.CallersFrames([]uintptr{r.PC}).Next()
			h.appendBuiltin(lb, slog.String(slog.SourceKey, f.File+":"+strconv.Itoa(f.Line)))
		}
		h.appendBuiltin(lb, slog.String(slog.MessageKey, r.Message))
	}
	b.Write(h.pre)
	r.Attrs(func(a slog.Attr) bool {
		h.appendAttr(lb, h.prefix, a)
		return true
	})
	b.WriteByte('\n')
	line := b.Bytes()
	if len(line) > 0 && line[0] == ' ' {
		line = line[1:]
	}

	h.mu.Lock()
	defer h.mu.Unlock()
	_, err := h.w.Write(line)
	return err
}

// appendBuiltin encodes one of the record's own fields (time, level, ...),
// passing it through ReplaceAttr like slog's built-in handlers do.
func (h *LogfmtHandler) appendBuiltin(lb *logfmtBuf, a slog.Attr) {
	if h.opts.ReplaceAttr != nil {
		a = h.opts.ReplaceAttr(nil, a)
		if a.Equal(slog.Attr{}) {
			return
		}
	}
	h.writeKeyval(lb, a.Key, a.Value)
}

func (h *LogfmtHandler) appendAttr(lb *logfmtBuf, prefix string, a slog.Attr) {
	a.Value = a.Value.Resolve()
	if h.opts.ReplaceAttr != nil && a.Value.Kind() != slog.KindGroup {
		a = h.opts.ReplaceAttr(groupsOf(prefix), a)
		a.Value = a.Value.Resolve()
	}
	if a.Equal(slog.Attr{}) {
		return
	}
	if a.Value.Kind() == slog.KindGroup {
		p := prefix
		if a.Key != "" {
			p += a.Key + "."
		}
		for _, ga := range a.Value.Group() {
			h.appendAttr(lb, p, ga)
		}
		return
	}
	key := a.Key
	if prefix != "" {
		key = prefix + a.Key
	}
	h.writeKeyval(lb, key, a.Value)
}

func (h *LogfmtHandler) writeKeyval(lb *logfmtBuf, key string, v slog.Value) {
	switch v.Kind() {
	case slog.KindString:
		h.writeString(lb, key, v.String())
		return
	case slog.KindTime:
		h.writeTime(lb, key, v.Time())
		return
	}
	var val any
	switch v.Kind() {
	case slog.KindDuration:
		val = v.Duration().String()
	case slog.KindInt64:
		val = v.Int64()
	case slog.KindUint64:
		val = v.Uint64()
	case slog.KindFloat64:
		val = v.Float64()
	case slog.KindBool:
		val = v.Bool()
	default:
		val = v.Any()
	}
	h.encode(lb, key, val)
}

// writeString encodes a string value; it allocates nothing.
func (h *LogfmtHandler) writeString(lb *logfmtBuf, key, s string) {
	lb.val.s = s
	h.encode(lb, key, &lb.val)
}

// writeMemo encodes a string value like writeString, but writes the
// encoding go-logfmt made of the same key and value last time if m has it.
func (h *LogfmtHandler) writeMemo(lb *logfmtBuf, m *pairMemo, key, val string) {
	if m.enc != nil && m.key == key && m.val == val {
		lb.b.Write(m.enc)
		return
	}
	start := lb.b.Len()
	h.writeString(lb, key, val)
	if len(val) <= maxMemoValue {
		m.key, m.val = key, val
		m.enc = append(m.enc[:0], lb.b.Bytes()[start:]...)
	}
}

// writeRecordTime encodes the time of a record as writeTime does, but has
// go-logfmt encode the pair only once a second: it encodes
// time=2006-01-02T15:04:05Z07:00 for the second, and as logfmt never quotes
// the digits and the dot of a fraction of a second, the record's fraction
// is spliced in before the zone. Should the whole second not come out as the
// formatted time verbatim (it always does), every record is encoded.
func (h *LogfmtHandler) writeRecordTime(lb *logfmtBuf, t time.Time) {
	c := &lb.times
	if !c.fresh(t) {
		h.writeTime(lb, slog.TimeKey, t)
		c.enc = c.enc[:0]
		if !c.fresh(t) { // a year of more than four digits: no cache
			return
		}
		lb.scratch = append(lb.scratch[:0], ' ')
		lb.scratch = append(lb.scratch, slog.TimeKey...)
		lb.scratch = append(lb.scratch, '=')
		lb.scratch = append(lb.scratch, c.head...)
		lb.scratch = append(lb.scratch, c.zone...)
		start := lb.b.Len()
		lb.text.b = lb.scratch[len(slog.TimeKey)+2:]
		h.encode(lb, slog.TimeKey, &lb.text) // the whole second, to compare
		if enc := lb.b.Bytes()[start:]; bytes.Equal(enc, lb.scratch) {
			c.enc = append(c.enc, enc[:len(enc)-len(c.zone)]...)
		}
		lb.b.Truncate(start)
		return
	}
	if len(c.enc) == 0 {
		h.writeTime(lb, slog.TimeKey, t)
		return
	}
	lb.b.Write(c.enc)
	lb.b.Write(appendFraction(lb.scratch[:0], t.Nanosecond()))
	lb.b.Write(c.zone)
}

// writeTime encodes t as time.RFC3339Nano; it allocates nothing.
func (h *LogfmtHandler) writeTime(lb *logfmtBuf, key string, t time.Time) {
	lb.scratch = lb.times.appendRFC3339Nano(lb.scratch[:0], t)
	lb.text.b = lb.scratch
	h.encode(lb, key, &lb.text)
}

// encode writes key and val with go-logfmt.
func (h *LogfmtHandler) encode(lb *logfmtBuf, key string, val any) {
	// Every pair is preceded by a space (Handle drops the first one), so
	// that pairs encoded by WithAttrs can be spliced in. The encoder is reset
	// so that it does not add a separator of its own.
	lb.b.WriteByte(' ')
	lb.enc.Reset()
	lb.key.s = key
	if err := lb.enc.EncodeKeyval(&lb.key, val); err != nil {
		// A key or value logfmt cannot hold (a key with only invalid
		// characters, a failing MarshalText): say so instead of dropping it.
		lb.enc.Reset()
		_ = lb.enc.EncodeKeyval(key, "!ERROR:"+err.Error())
	}
}

// timeCache formats times as time.RFC3339Nano does, formatting the date,
// the time of day and the zone only once per second: a chatty hook logs
// thousands of lines a second.
type timeCache struct {
	sec  int64          // the Unix second of head and zone
	loc  *time.Location // the location of head and zone; nil: empty cache
	buf  []byte
	head []byte // "2006-01-02T15:04:05" of sec in loc
	zone []byte // "Z07:00" of sec in loc
	enc  []byte // " time=" and head as go-logfmt encoded them, or empty
}

// fresh reports whether the cache holds the second of t. It refreshes the
// cache, but for times whose year has more than four digits, and reports
// false if it did.
func (c *timeCache) fresh(t time.Time) bool {
	sec, loc := t.Unix(), t.Location()
	if c.loc != nil && sec == c.sec && loc == c.loc {
		return true
	}
	if y := t.Year(); y < 0 || y > 9999 {
		c.loc = nil
		return false
	}
	c.buf = t.Truncate(time.Second).AppendFormat(c.buf[:0], time.RFC3339)
	c.head, c.zone = c.buf[:len("2006-01-02T15:04:05")], c.buf[len("2006-01-02T15:04:05"):]
	c.sec, c.loc = sec, loc
	c.enc = c.enc[:0]
	return false
}

func (c *timeCache) appendRFC3339Nano(dst []byte, t time.Time) []byte {
	if !c.fresh(t) && c.loc == nil {
		return t.AppendFormat(dst, time.RFC3339Nano) // not 4 digits: no cache
	}
	dst = append(dst, c.head...)
	dst = appendFraction(dst, t.Nanosecond())
	return append(dst, c.zone...)
}

// appendFraction appends ns as the ".999999999" of time.RFC3339Nano: nine
// digits with the trailing zeros trimmed, nothing at all for 0.
func appendFraction(dst []byte, ns int) []byte {
	if ns == 0 {
		return dst
	}
	var d [10]byte
	d[0] = '.'
	for i := 9; i > 0; i-- {
		d[i] = byte('0' + ns%10)
		ns /= 10
	}
	n := len(d)
	for d[n-1] == '0' {
		n--
	}
	return append(dst, d[:n]...)
}

func groupsOf(prefix string) []string {
	if prefix == "" {
		return nil
	}
	var gs []string
	start := 0
	for i := 0; i < len(prefix); i++ {
		if prefix[i] == '.' {
			gs = append(gs, prefix[start:i])
			start = i + 1
		}
	}
	return gs
}

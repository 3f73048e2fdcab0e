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
	b := bytes.NewBuffer(append([]byte(nil), h.pre...)) // a fresh slice: h keeps its own
	enc := logfmt.NewEncoder(b)
	for _, a := range attrs {
		h2.appendAttr(b, enc, h.prefix, a)
	}
	h2.pre = b.Bytes()
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

type logfmtBuf struct {
	b   bytes.Buffer
	enc *logfmt.Encoder
}

var logfmtBufs = sync.Pool{New: func() any {
	lb := new(logfmtBuf)
	lb.enc = logfmt.NewEncoder(&lb.b)
	return lb
}}

// Handle writes r as one line.
func (h *LogfmtHandler) Handle(_ context.Context, r slog.Record) error {
	lb := logfmtBufs.Get().(*logfmtBuf)
	defer func() {
		if lb.b.Cap() <= 64<<10 {
			lb.b.Reset()
			logfmtBufs.Put(lb)
		}
	}()
	b, enc := &lb.b, lb.enc
	enc.Reset()

	if !r.Time.IsZero() {
		h.appendBuiltin(b, enc, slog.Time(slog.TimeKey, r.Time))
	}
	h.appendBuiltin(b, enc, slog.Any(slog.LevelKey, r.Level))
	if h.opts.AddSource && r.PC != 0 {
		f, _ := runtime.CallersFrames([]uintptr{r.PC}).Next()
		h.appendBuiltin(b, enc, slog.String(slog.SourceKey, f.File+":"+strconv.Itoa(f.Line)))
	}
	h.appendBuiltin(b, enc, slog.String(slog.MessageKey, r.Message))
	b.Write(h.pre)
	r.Attrs(func(a slog.Attr) bool {
		h.appendAttr(b, enc, h.prefix, a)
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
func (h *LogfmtHandler) appendBuiltin(b *bytes.Buffer, enc *logfmt.Encoder, a slog.Attr) {
	if h.opts.ReplaceAttr != nil {
		a = h.opts.ReplaceAttr(nil, a)
		if a.Equal(slog.Attr{}) {
			return
		}
	}
	h.writeKeyval(b, enc, a.Key, a.Value)
}

func (h *LogfmtHandler) appendAttr(b *bytes.Buffer, enc *logfmt.Encoder, prefix string, a slog.Attr) {
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
			h.appendAttr(b, enc, p, ga)
		}
		return
	}
	h.writeKeyval(b, enc, prefix+a.Key, a.Value)
}

func (h *LogfmtHandler) writeKeyval(b *bytes.Buffer, enc *logfmt.Encoder, key string, v slog.Value) {
	// Every pair is preceded by a space (Handle drops the first one), so
	// that pairs encoded by WithAttrs can be spliced in. The encoder is reset
	// so that it does not add a separator of its own.
	b.WriteByte(' ')
	enc.Reset()
	var val any
	switch v.Kind() {
	case slog.KindString:
		val = v.String()
	case slog.KindTime:
		val = v.Time().Format(time.RFC3339Nano)
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
	if err := enc.EncodeKeyval(key, val); err != nil {
		// A key or value logfmt cannot hold (a key with only invalid
		// characters, a failing MarshalText): say so instead of dropping it.
		enc.Reset()
		_ = enc.EncodeKeyval(key, "!ERROR:"+err.Error())
	}
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

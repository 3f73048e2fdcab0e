package hooks

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/go-logfmt/logfmt"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestGetLoggerWithoutLoggerDiscards(t *testing.T) {
	t.Parallel()
	l := GetLogger(context.Background())
	require.NotNil(t, l)
	assert.False(t, l.Enabled(context.Background(), slog.LevelError))
	assert.Same(t, l, GetLogger(WithLogger(context.Background(), nil)))

	mine := slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil))
	assert.Same(t, mine, GetLogger(WithLogger(context.Background(), mine)))
}

func TestLogfmtHandler(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	h := NewLogfmtHandler(&buf, &slog.HandlerOptions{
		Level: slog.LevelDebug,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey && len(groups) == 0 {
				return slog.Attr{}
			}
			return a
		},
	})
	log := slog.New(h).With("hook", "/etc/my hook", "edge", "Pre").WithGroup("g")
	log.Info("hook output", "stdout", "a \"quoted\" line = x", "n", 3, "d", 1500*time.Millisecond,
		"err", errors.New("boom"), slog.Group("sub", "k", "v"))
	log.Debug("bytes", "stdout", "bad \xff utf8\ttab\x00nul")
	want := `level=INFO msg="hook output" hook="/etc/my hook" edge=Pre g.stdout="a \"quoted\" line = x" g.n=3 g.d=1.5s g.err=boom g.sub.k=v` + "\n"
	lines := strings.SplitAfter(buf.String(), "\n")
	assert.Equal(t, want, lines[0])
	recs := logRecords(t, buf.String())
	require.Len(t, recs, 2)
	assert.Equal(t, "DEBUG", recs[1]["level"])
	assert.Contains(t, recs[1]["g.stdout"], "bad ")
	assert.Contains(t, recs[1]["g.stdout"], "utf8\ttab")
}

func TestLogfmtHandlerLevelAndTime(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	log := slog.New(NewLogfmtHandler(&buf, nil))
	log.Debug("hidden")
	log.Warn("shown")
	recs := logRecords(t, buf.String())
	require.Len(t, recs, 1)
	assert.Equal(t, "WARN", recs[0]["level"])
	_, err := time.Parse(time.RFC3339Nano, recs[0]["time"])
	assert.NoError(t, err)
}

func TestLogfmtHandlerConcurrentRecordsStayWhole(t *testing.T) {
	t.Parallel()
	buf := new(syncBuffer)
	log := slog.New(NewLogfmtHandler(buf, nil))
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				log.Info("line", "payload", strings.Repeat("y", 100))
			}
		}()
	}
	wg.Wait()
	recs := logRecords(t, buf.String())
	assert.Len(t, recs, 1600)
	for _, r := range recs {
		assert.Equal(t, strings.Repeat("y", 100), r["payload"])
	}
}

// lazyName is a slog.LogValuer.
type lazyName struct{ first, last string }

func (n lazyName) LogValue() slog.Value {
	return slog.GroupValue(slog.String("first", n.first), slog.String("last", n.last))
}

// lazyString is a slog.LogValuer that go-logfmt cannot encode unresolved.
type lazyString struct{ s string }

func (s lazyString) LogValue() slog.Value { return slog.StringValue(s.s) }

// failingText is a value whose MarshalText fails.
type failingText struct{}

func (failingText) MarshalText() ([]byte, error) { return nil, errors.New("no text") }

func TestLogfmtHandlerAttrs(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 25, 8, 0, 0, 500, time.UTC)
	cases := []struct {
		name    string
		replace func([]string, slog.Attr) slog.Attr
		log     func(l *slog.Logger)
		want    string
	}{
		{"with_attrs_come_after_the_message_and_before_the_record_attrs", nil,
			func(l *slog.Logger) { l.With("hook", "h", "edge", "Pre").Info("m", "stdout", "x") },
			`level=INFO msg=m hook=h edge=Pre stdout=x`},
		{"with_group_prefixes_only_later_attrs", nil,
			func(l *slog.Logger) { l.With("a", 1).WithGroup("g").With("b", 2).WithGroup("h").Info("m", "c", 3) },
			`level=INFO msg=m a=1 g.b=2 g.h.c=3`},
		{"nested_group_attrs_become_dotted_keys", nil,
			func(l *slog.Logger) { l.Info("m", slog.Group("x", slog.Group("y", "k", "v"), "z", 1)) },
			`level=INFO msg=m x.y.k=v x.z=1`},
		{"group_with_empty_key_is_inlined", nil,
			func(l *slog.Logger) { l.WithGroup("g").Info("m", slog.Group("", "k", "v")) },
			`level=INFO msg=m g.k=v`},
		{"empty_group_and_empty_attr_are_left_out", nil,
			func(l *slog.Logger) { l.WithGroup("g").Info("m", slog.Group("x"), slog.Attr{}) },
			`level=INFO msg=m`},
		{"empty_with_attrs_and_group_name_change_nothing", nil,
			func(l *slog.Logger) { l.With().WithGroup("").Info("m", "k", "v") },
			`level=INFO msg=m k=v`},
		{"log_valuers_are_resolved", nil,
			func(l *slog.Logger) {
				l.With("who", lazyName{"Ada", "Lovelace"}).Info("m", "s", lazyString{"lazy value"})
			},
			`level=INFO msg=m who.first=Ada who.last=Lovelace s="lazy value"`},
		{"values_of_every_kind", nil,
			func(l *slog.Logger) {
				l.Info("m", "i", -3, "u", uint64(7), "f", 1.5, "b", true, "d", 1500*time.Millisecond,
					"t", at, "err", errors.New("boom"), "nil", nil, "bytes", []byte("a b"), "edge", Post)
			},
			`level=INFO msg=m i=-3 u=7 f=1.5 b=true d=1.5s t=2026-11-25T08:00:00.0000005Z err=boom nil=null bytes="a b" edge=Post`},
		{"times_outside_four_digit_years_are_written", nil,
			func(l *slog.Logger) { l.Info("m", "t", time.Date(12026, 1, 2, 3, 4, 5, 0, time.UTC)) },
			`level=INFO msg=m t=12026-01-02T03:04:05Z`},
		{"values_go_logfmt_cannot_encode_are_printed", nil,
			func(l *slog.Logger) { l.Info("m", "s", struct{ A, B int }{1, 2}, "l", []string{"x"}) },
			`level=INFO msg=m s="{A:1 B:2}" l=[x]`},
		{"failing_marshal_text_is_an_error_value", nil,
			func(l *slog.Logger) { l.Info("m", "v", failingText{}) },
			`level=INFO msg=m v="!ERROR:no text"`},
		{"runes_a_key_cannot_hold_are_dropped", nil,
			func(l *slog.Logger) { l.WithGroup("my group").Info("m", "a key=\"x\"\xff", "v") },
			`level=INFO msg=m mygroup.akeyx=v`},
		{"a_key_with_no_valid_rune_is_badkey", nil,
			func(l *slog.Logger) { l.Info("m", " =\"", "v", "", "empty") },
			`level=INFO msg=m !BADKEY=v !BADKEY=empty`},
		{"replace_attr_sees_groups_and_can_drop_or_rename", func(groups []string, a slog.Attr) slog.Attr {
			switch {
			case a.Key == "secret":
				return slog.Attr{}
			case a.Key == "k":
				return slog.String(strings.Join(groups, "/")+"_k", a.Value.String())
			case a.Key == slog.LevelKey:
				return slog.String("lvl", a.Value.Any().(slog.Level).String())
			}
			return a
		},
			func(l *slog.Logger) {
				l.WithGroup("g").With("k", "w").Info("m", "secret", "pw", slog.Group("s", "k", "v"))
			},
			`lvl=INFO msg=m g.g_k=w g.s.g/s_k=v`},
		{"replace_attr_results_are_resolved", func(groups []string, a slog.Attr) slog.Attr {
			if a.Key == slog.MessageKey {
				return slog.Any(a.Key, lazyString{"resolved " + a.Value.String()})
			}
			return a
		},
			func(l *slog.Logger) { l.Warn("m") },
			`level=WARN msg="resolved m"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			c.log(slog.New(NewLogfmtHandler(&buf, &slog.HandlerOptions{ReplaceAttr: c.replace})))
			logRecords(t, buf.String()) // it parses
			line, ok := strings.CutPrefix(buf.String(), "time=")
			require.True(t, ok, "no time in %q", buf.String())
			tm, line, _ := strings.Cut(line, " ")
			_, err := time.Parse(time.RFC3339Nano, tm)
			assert.NoError(t, err)
			assert.Equal(t, c.want+"\n", line)
		})
	}
}

func TestLogfmtHandlerAddSource(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	log := slog.New(NewLogfmtHandler(&buf, &slog.HandlerOptions{AddSource: true}))
	log.Info("m")
	recs := logRecords(t, buf.String())
	require.Len(t, recs, 1)
	assert.Regexp(t, `/logging_test\.go:\d+$`, recs[0][slog.SourceKey])
}

// TestLogfmtHandlerDerivedHandlersShareTheWriterLock writes through handlers
// derived from one handler from many goroutines into a bytes.Buffer, which is
// not safe for concurrent use: the race detector sees it unless all derived
// handlers take one lock.
func TestLogfmtHandlerDerivedHandlersShareTheWriterLock(t *testing.T) {
	t.Parallel()
	w := &writeRecorder{}
	root := slog.New(NewLogfmtHandler(w, nil))
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			log := root.With("g", g).WithGroup("sub")
			for i := 0; i < 50; i++ {
				log.Info("line", "i", i)
			}
		}()
	}
	wg.Wait()
	assert.Len(t, w.writes, 200)
	for _, rec := range w.writes {
		decodeOneLine(t, rec)
	}
}

// writeRecorder keeps every Write call apart, without a lock of its own.
type writeRecorder struct{ writes []string }

func (w *writeRecorder) Write(p []byte) (int, error) {
	w.writes = append(w.writes, string(p))
	return len(p), nil
}

// logfmtKey is what a key becomes in logfmt, as NewLogfmtHandler documents:
// the runes a key cannot hold (space, '=', '"', invalid UTF-8) and every
// control rune (IsControl: C0, DEL, C1, bidi) dropped, "!BADKEY" if none is
// left.
func logfmtKey(k string) string {
	k = strings.Map(func(r rune) rune {
		if r <= ' ' || r == '=' || r == '"' || r == utf8.RuneError || IsControl(r) {
			return -1
		}
		return r
	}, k)
	if k == "" {
		return "!BADKEY"
	}
	return k
}

// logfmtValue is what a decoder reads back from a string value: the string,
// every byte that is not UTF-8 replaced by U+FFFD.
func logfmtValue(v string) string { return string([]rune(v)) }

// decodeOneLine decodes rec, which must be exactly one newline-terminated
// logfmt record, into its pairs in order.
func decodeOneLine(t *testing.T, rec string) [][2]string {
	t.Helper()
	require.True(t, strings.HasSuffix(rec, "\n"), "record %q does not end a line", rec)
	require.Equal(t, 1, strings.Count(rec, "\n"), "record %q is more than one line", rec)
	dec := logfmt.NewDecoderSize(strings.NewReader(rec), 1<<20)
	require.True(t, dec.ScanRecord(), "no record in %q: %v", rec, dec.Err())
	var pairs [][2]string
	for dec.ScanKeyval() {
		pairs = append(pairs, [2]string{string(dec.Key()), string(dec.Value())})
	}
	require.NoError(t, dec.Err(), "record %q", rec)
	require.False(t, dec.ScanRecord())
	return pairs
}

// checkLogfmtRoundTrip logs msg and key=value, with and without groups and
// With attributes, and checks that every record is one Write of one line
// that decodes to exactly the pairs logged.
func checkLogfmtRoundTrip(t *testing.T, msg, group, key, value string) {
	t.Helper()
	w := &writeRecorder{}
	h := NewLogfmtHandler(w, nil)
	at := time.Date(2026, 11, 25, 8, 0, 0, 123, time.UTC)
	head := [][2]string{{"time", "2026-11-25T08:00:00.000000123Z"}, {"level", "INFO"}, {"msg", logfmtValue(msg)}}

	r := slog.NewRecord(at, slog.LevelInfo, msg, 0)
	r.AddAttrs(slog.String(key, value))
	require.NoError(t, h.Handle(context.Background(), r))
	want := append(slices.Clone(head), [2]string{logfmtKey(key), logfmtValue(value)})

	if group != "" {
		hg := h.WithAttrs([]slog.Attr{slog.String(key, value)}).WithGroup(group)
		r := slog.NewRecord(at, slog.LevelInfo, msg, 0)
		r.AddAttrs(slog.String(key, value), slog.Group(group, slog.String(key, value)))
		require.NoError(t, hg.Handle(context.Background(), r))
	}
	require.Len(t, w.writes, 1+min(len(group), 1))
	assert.Equal(t, want, decodeOneLine(t, w.writes[0]))
	if group != "" {
		gk := logfmtKey(group + "." + key)
		want := append(slices.Clone(head), [2]string{logfmtKey(key), logfmtValue(value)},
			[2]string{gk, logfmtValue(value)}, [2]string{logfmtKey(group + "." + group + "." + key), logfmtValue(value)})
		assert.Equal(t, want, decodeOneLine(t, w.writes[1]))
	}
}

func TestLogfmtHandlerOutputParsesBack(t *testing.T) {
	t.Parallel()
	values := []string{"", "null", "plain", "with space", `q"uote`, `back\slash`, "a=b", "tab\tnl\ncr\r",
		"\x00\x1f\x7f", "bad \xff utf8", "\xed\xa0\x80 surrogate", "\uFFFD literal", "ünïcode ✓", "-", "\\\"", strings.Repeat("x", 70000)}
	keys := []string{"stdout", "k y", "k=y", `"k`, "ключ", "\xff", " ", "a.b", "\uFFFD"}
	for _, k := range keys {
		for _, v := range values {
			checkLogfmtRoundTrip(t, v, k, k, v)
		}
	}
}

func FuzzLogfmtHandler(f *testing.F) {
	f.Add("hook output", "g", "stdout", "a line")
	f.Add("multi\nline", "my group", "k=y", "bad \xff utf8 \"quoted\"")
	f.Add("", "", "", "")
	f.Add("null", "\"", " ", "\x00\r\n\t")
	f.Fuzz(checkLogfmtRoundTrip)
}

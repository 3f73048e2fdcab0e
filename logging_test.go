package hooks

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

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

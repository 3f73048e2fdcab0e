package hooks

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Fault tests: each injects one misbehaviour for real and checks that it is
// contained to its own step. The README's guarantee table links here.

// TestFaultBrokenHookPathsFailTheirStepOnly runs a plan whose hooks cannot
// be started: each is an Err step with a clear error and the plan goes on.
func TestFaultBrokenHookPathsFailTheirStepOnly(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	notExec := filepath.Join(dir, "not-executable")
	require.NoError(t, os.WriteFile(notExec, []byte("#!/bin/sh\nexit 0\n"), 0o644))
	badShebang := filepath.Join(dir, "bad-shebang")
	require.NoError(t, os.WriteFile(badShebang, []byte("#!/nonexistent/interpreter\nexit 0\n"), 0o755))
	paths := []struct{ path, why string }{
		{filepath.Join(dir, "missing"), "no such file or directory"},
		{notExec, "permission denied"},
		{dir, "permission denied"},
		{badShebang, "no such file or directory"},
	}
	var list List
	for _, p := range paths {
		h, err := NewCommandHook(HookConfig{Path: p.path})
		require.NoError(t, err)
		list = append(list, h)
	}
	var cbRan atomic.Bool
	rep := runPlan(t, context.Background(), list, func(context.Context) error { cbRan.Store(true); return nil })
	assert.Equal(t, []StepStatus{fail, fail, fail, fail, ok, prErr, prErr, prErr, prErr}, statuses(rep))
	assert.True(t, cbRan.Load(), "the snapshot is still taken")
	for i, p := range paths {
		assert.Contains(t, rep[i].Report.Error(), p.path)
		assert.Contains(t, rep[i].Report.Error(), p.why)
	}

	_, err := HookFromConfig(HookConfig{Type: TypeCommand, Path: "relative/hook.sh"})
	assert.ErrorContains(t, err, "not absolute")
}

func TestFaultMisbehavingOutput(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, script string
		want         string // in the captured output
	}{
		{"closes_stdout_early", "close-stdout", "closing my output\n"},
		{"binary_garbage_and_invalid_utf8", "garbage", "ok line\n"},
		{"reads_stdin", "read-stdin", "read 0 bytes from stdin\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			log, buf := testLogger()
			h := newCommandHook(t, c.script, HookConfig{Timeout: 10 * time.Second})
			rep := runHook(t, WithLogger(context.Background(), log), h, Pre, false, nil)
			require.NoError(t, rep.Err)
			assert.True(t, strings.HasPrefix(string(rep.CapturedStdoutStderrCombined), c.want) ||
				strings.Contains(string(rep.CapturedStdoutStderrCombined), c.want))
			// Every record is still valid logfmt, whatever the bytes.
			recs := outputRecords(t, buf.String())
			assert.NotEmpty(t, recs)
		})
	}
}

// heapPeak samples the live heap until stop is closed and returns the
// highest value seen.
func heapPeak(stop <-chan struct{}) <-chan uint64 {
	out := make(chan uint64, 1)
	go func() {
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		var peak uint64
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			metrics.Read(s)
			peak = max(peak, s[0].Value.Uint64())
			select {
			case <-stop:
				out <- peak
				return
			case <-tick.C:
			}
		}
	}()
	return out
}

// TestFaultGigabyteOfOutputKeepsMemoryBounded is not parallel so that it
// measures its own heap only.
func TestFaultGigabyteOfOutputKeepsMemoryBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 1 GiB through a pipe")
	}
	for _, c := range []struct {
		logging bool
		mib     int
	}{
		{false, 1024},
		{true, 128}, // logging costs about a microsecond a line
	} {
		t.Run(fmt.Sprintf("logging=%v", c.logging), func(t *testing.T) {
			ctx := context.Background()
			var lines atomic.Int64
			if c.logging {
				ctx = WithLogger(ctx, slog.New(NewLogfmtHandler(countingWriter{&lines}, nil)))
			}
			runtime.GC()
			s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
			metrics.Read(s)
			before := s[0].Value.Uint64()
			stop := make(chan struct{})
			peak := heapPeak(stop)
			h := newCommandHook(t, "flood", HookConfig{Timeout: 2 * time.Minute})
			rep := runHook(t, ctx, h, Pre, false, Env{"FLOOD_MIB": fmt.Sprint(c.mib)})
			close(stop)
			require.NoError(t, rep.Err)
			assert.Len(t, rep.CapturedStdoutStderrCombined, MaxHookLogSizeDefault)
			growth := int64(<-peak) - int64(before)
			t.Logf("heap growth while a hook wrote %d MiB: %.1f MiB", c.mib, float64(growth)/(1<<20))
			assert.Less(t, growth, int64(24<<20), "memory does not grow with the output")
			if c.logging {
				assert.Equal(t, int64(c.mib<<20/64), lines.Load(), "every line logged")
			}
		})
	}
}

// countingWriter counts the records a LogfmtHandler writes: one Write each.
type countingWriter struct{ n *atomic.Int64 }

func (w countingWriter) Write(p []byte) (int, error) {
	w.n.Add(1)
	return len(p), nil
}

// TestFaultConcurrentPlansShareOneList runs 200 plans for different datasets
// at once over one List, with pollers, under -race.
func TestFaultConcurrentPlansShareOneList(t *testing.T) {
	t.Parallel()
	record := t.TempDir()
	list := List{
		newCommandHook(t, "h1", HookConfig{ErrIsFatal: true}),
		&testHook{name: "in-process", pre: func(context.Context) error { return nil }},
		newCommandHook(t, "h2", HookConfig{}),
	}
	var wg sync.WaitGroup
	var taken atomic.Int32
	const plans = 200
	sem := make(chan struct{}, 32) // bound the processes alive at once on a small machine
	for i := 0; i < plans; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			fsName := fmt.Sprintf("tank/ds%03d", i)
			fs, err := NewDatasetPath(fsName)
			if !assert.NoError(t, err) {
				return
			}
			filtered, err := list.CopyFilteredForFilesystem(fs)
			if !assert.NoError(t, err) {
				return
			}
			env := Env{EnvFS: fsName, EnvSnapshot: "s", "RECORD": filepath.Join(record, fmt.Sprint(i))}
			if i%10 == 0 {
				env["h2_pre_snapshot"] = "fail"
			}
			cb := NewCallbackHookForFilesystem("snapshot", fs, func(context.Context) error { taken.Add(1); return nil })
			p, err := NewPlan(&filtered, PhaseSnapshot, cb, env)
			if !assert.NoError(t, err) {
				return
			}
			stop, polled := make(chan struct{}), make(chan struct{})
			go func() {
				defer close(polled)
				for {
					select {
					case <-time.After(time.Millisecond):
						_ = p.Report().String()
					case <-stop:
						return
					}
				}
			}()
			p.Run(context.Background(), false)
			close(stop)
			<-polled
			rep := p.Report()
			want := []StepStatus{ok, ok, ok, ok, ok, ok, ok}
			if i%10 == 0 {
				want = []StepStatus{ok, ok, fail, ok, prErr, ok, ok}
			}
			assert.Equal(t, want, statuses(rep), "plan %d", i)
			assert.Equal(t, "h1 pre_snapshot\nh2 pre_snapshot\nh1 post_snapshot\n", strings.Replace(readFile(t, env["RECORD"]), "h2 post_snapshot\n", "", 1))
		}()
	}
	wg.Wait()
	assert.Equal(t, int32(plans), taken.Load())
}

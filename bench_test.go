package hooks

// The benchmarks of issue 5. Each one measures a baseline in the same run, in
// the same binary, next to the figure it is about; scripts/bench.sh runs them
// in interleaved rounds and prints one table of medians and ratios (see
// docs/performance.md).
//
//	BenchmarkCommandHookOverhead  a plan with one /bin/true command hook vs. two bare exec.Command runs
//	BenchmarkPlanOrchestration    build and run a plan of 10 in-process hooks (21 steps)
//	BenchmarkChattyHook           a hook writing 256 MiB of 80-byte lines vs. io.Copy to io.Discard
//	BenchmarkLogfmtRecord         one record of a chatty hook's output, logfmt vs. slog.TextHandler
//	BenchmarkReportPolling        Report from 4 goroutines while the plan runs; Run with and without pollers
//
// BenchmarkChattyPeakRSS is a helper mode of the test binary for
// scripts/bench.sh: it measures the peak RSS of a 1 GiB hook in a process of
// its own, and skips unless SNAPHOOKS_BENCH_RSS is set.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// benchTimed returns how long f takes.
func benchTimed(f func()) time.Duration {
	t0 := time.Now()
	f()
	return time.Since(t0)
}

// benchNoCallback returns an in-process callback that does nothing.
func benchNoCallback() *CallbackHook {
	return NewCallbackHook("snapshot", func(context.Context) error { return nil }, nil)
}

var benchExtra = Env{EnvFS: "tank/db", EnvSnapshot: "zrepl_20261125_080000_000"}

// --- 1. Command-hook overhead ------------------------------------------------

// BenchmarkCommandHookOverhead runs, in every iteration, a plan with one
// command hook running /bin/true (its Pre and Post edges: two processes;
// the callback is an in-process no-op) and, as the baseline, two bare
// exec.Command("/bin/true").Run(). The two alternate in order from one
// iteration to the next, and each is timed on its own, so both see the same
// machine: hook-ns/op and bare-ns/op are their times, ratio = hook / bare.
func BenchmarkCommandHookOverhead(b *testing.B) {
	h, err := NewCommandHook(HookConfig{Type: TypeCommand, Path: "/bin/true"})
	if err != nil {
		b.Fatal(err)
	}
	list := List{h}
	cb := benchNoCallback()
	ctx := context.Background()
	var failed atomic.Bool
	plan := func() {
		p, err := NewPlan(&list, PhaseSnapshot, cb, benchExtra)
		if err != nil {
			b.Fatal(err)
		}
		p.Run(ctx, false)
		if p.Report().HadError() {
			failed.Store(true)
		}
	}
	bare := func() {
		for i := 0; i < 2; i++ {
			if err := exec.Command("/bin/true").Run(); err != nil {
				failed.Store(true)
			}
		}
	}

	var hookT, bareT time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%2 == 0 {
			hookT += benchTimed(plan)
			bareT += benchTimed(bare)
		} else {
			bareT += benchTimed(bare)
			hookT += benchTimed(plan)
		}
	}
	b.StopTimer()
	if failed.Load() {
		b.Fatal("a /bin/true run failed")
	}
	b.ReportMetric(float64(hookT.Nanoseconds())/float64(b.N), "hook-ns/op")
	b.ReportMetric(float64(bareT.Nanoseconds())/float64(b.N), "bare-ns/op")
	b.ReportMetric(float64(hookT)/float64(bareT), "ratio")
}

// --- 2. Orchestration cost ---------------------------------------------------

// benchHook is an in-process hook that does nothing and returns a
// preallocated ok report.
type benchHook struct{ name string }

var benchOKReport HookReport = &CallbackHookReport{Name: "ok"}

func (h *benchHook) Filesystems() Filter { return nil }
func (h *benchHook) ErrIsFatal() bool    { return false }
func (h *benchHook) String() string      { return h.name }
func (h *benchHook) Run(context.Context, Edge, Phase, bool, Env, map[interface{}]interface{}) HookReport {
	return benchOKReport
}

func benchHooks(n int) List {
	l := make(List, n)
	for i := range l {
		l[i] = &benchHook{name: "hook" + strconv.Itoa(i)}
	}
	return l
}

// BenchmarkPlanOrchestration builds (NewPlan) and runs a plan of 10
// in-process hooks, 21 steps, per iteration: without a logger and with the
// logfmt handler writing to io.Discard. The baseline "direct" makes the same
// 21 Run calls, in the same order, without a plan: the difference is the
// cost of the orchestration.
func BenchmarkPlanOrchestration(b *testing.B) {
	list := benchHooks(10)
	cb := benchNoCallback()
	run := func(b *testing.B, ctx context.Context) {
		b.ReportAllocs()
		for b.Loop() {
			p, err := NewPlan(&list, PhaseSnapshot, cb, benchExtra)
			if err != nil {
				b.Fatal(err)
			}
			p.Run(ctx, false)
		}
	}
	b.Run("direct", func(b *testing.B) {
		b.ReportAllocs()
		ctx := context.Background()
		state := make(map[interface{}]interface{})
		for b.Loop() {
			for _, h := range list {
				h.Run(ctx, Pre, PhaseSnapshot, false, benchExtra, state)
			}
			cb.Run(ctx, Callback, PhaseSnapshot, false, benchExtra, nil)
			for i := len(list) - 1; i >= 0; i-- {
				list[i].Run(ctx, Post, PhaseSnapshot, false, benchExtra, state)
			}
		}
	})
	b.Run("nolog", func(b *testing.B) { run(b, context.Background()) })
	b.Run("logfmt", func(b *testing.B) {
		run(b, WithLogger(context.Background(), slog.New(NewLogfmtHandler(io.Discard, nil))))
	})
}

// --- 3. Chatty hook ----------------------------------------------------------

const (
	benchChattyBytes = 256 << 20
	benchChattyLine  = 80
)

var benchChatty struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// benchChattyPath returns the path of testdata/chatty, built once per
// process into a temp dir, or the binary named by SNAPHOOKS_BENCH_CHATTY.
func benchChattyPath(tb testing.TB) string {
	tb.Helper()
	if p := os.Getenv("SNAPHOOKS_BENCH_CHATTY"); p != "" {
		return p
	}
	c := &benchChatty
	c.once.Do(func() {
		c.dir, c.err = os.MkdirTemp("", "snaphooks-bench-")
		if c.err != nil {
			return
		}
		c.path = filepath.Join(c.dir, "chatty")
		out, err := exec.Command("go", "build", "-o", c.path, "./testdata/chatty").CombinedOutput()
		if err != nil {
			c.err = fmt.Errorf("build testdata/chatty: %v\n%s", err, out)
		}
	})
	if c.err != nil {
		tb.Fatal(c.err)
	}
	return c.path
}

// benchChattyEnv sets the environment that chatty reads for total bytes.
func benchChattyEnv(tb testing.TB, total int) int {
	tb.Setenv("CHATTY_BYTES", strconv.Itoa(total))
	tb.Setenv("CHATTY_LINE", strconv.Itoa(benchChattyLine))
	return total / benchChattyLine * benchChattyLine
}

// benchBareRead runs chatty and copies its stdout to io.Discard: the
// baseline of the chatty benchmark.
func benchBareRead(path string) (int64, error) {
	cmd := exec.Command(path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return 0, err
	}
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	n, err := io.Copy(io.Discard, out)
	if werr := cmd.Wait(); err == nil {
		err = werr
	}
	return n, err
}

// benchHookRead runs chatty as the Pre edge of a command hook.
func benchHookRead(ctx context.Context, path string) error {
	h, err := NewCommandHook(HookConfig{Type: TypeCommand, Path: path, Timeout: 10 * time.Minute})
	if err != nil {
		return err
	}
	rep := h.Run(ctx, Pre, PhaseSnapshot, false, benchExtra, map[interface{}]interface{}{}).(*CommandHookReport)
	if rep.Err != nil {
		return rep.Err
	}
	if len(rep.CapturedStdoutStderrCombined) != MaxHookLogSizeDefault {
		return fmt.Errorf("captured %d bytes, want %d", len(rep.CapturedStdoutStderrCombined), MaxHookLogSizeDefault)
	}
	return nil
}

// BenchmarkChattyHook runs a hook that writes 256 MiB of 80-byte lines to
// stdout, with no logger and with the logfmt handler writing to io.Discard,
// and, as the baseline, reads the same stream of the same program with
// exec.Cmd.StdoutPipe and io.Copy into io.Discard. Throughput is in MB/s.
func BenchmarkChattyHook(b *testing.B) {
	path := benchChattyPath(b)
	defer benchRemoveChatty()
	size := benchChattyEnv(b, benchChattyBytes)
	b.Run("baseline", func(b *testing.B) {
		b.SetBytes(int64(size))
		for b.Loop() {
			n, err := benchBareRead(path)
			if err != nil || n != int64(size) {
				b.Fatalf("read %d bytes, want %d: %v", n, size, err)
			}
		}
	})
	b.Run("nolog", func(b *testing.B) {
		b.SetBytes(int64(size))
		ctx := context.Background()
		for b.Loop() {
			if err := benchHookRead(ctx, path); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("logfmt", func(b *testing.B) {
		b.SetBytes(int64(size))
		ctx := WithLogger(context.Background(), slog.New(NewLogfmtHandler(io.Discard, nil)))
		for b.Loop() {
			if err := benchHookRead(ctx, path); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkLogfmtRecord handles one record as a chatty hook logs each line
// of its output (time, level, message, the hook's hook, edge and fs
// attributes, an 80-byte stdout line) with the logfmt handler writing to
// io.Discard; the baseline is slog's own TextHandler on the same record.
func BenchmarkLogfmtRecord(b *testing.B) {
	line := strings.Repeat("x", benchChattyLine-1)
	attrs := []slog.Attr{slog.String("hook", "/etc/hooks/chatty"), slog.String("edge", "Pre"), slog.String("fs", "tank/db")}
	run := func(b *testing.B, h slog.Handler) {
		h = h.WithAttrs(attrs)
		ctx := context.Background()
		b.ReportAllocs()
		for b.Loop() {
			r := slog.NewRecord(time.Now(), slog.LevelInfo, "hook output", 0)
			r.AddAttrs(slog.String("stdout", line))
			if err := h.Handle(ctx, r); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("baseline", func(b *testing.B) { run(b, slog.NewTextHandler(io.Discard, nil)) })
	b.Run("logfmt", func(b *testing.B) { run(b, NewLogfmtHandler(io.Discard, nil)) })
}

// benchRemoveChatty removes the chatty binary built by benchChattyPath.
func benchRemoveChatty() {
	c := &benchChatty
	if c.dir != "" {
		os.RemoveAll(c.dir)
		c.dir = ""
		c.once = sync.Once{}
	}
}

// BenchmarkChattyPeakRSS is a helper mode of the test binary for
// scripts/bench.sh, run with -test.benchtime 1x and skipped unless
// SNAPHOOKS_BENCH_RSS is set. With
// SNAPHOOKS_BENCH_RSS=baseline|nolog|logfmt it runs chatty once, writing
// SNAPHOOKS_BENCH_RSS_BYTES (default 1 GiB), the way the chatty benchmark
// does, and prints the peak resident set size of this process (VmHWM), which
// must not grow with the output.
func BenchmarkChattyPeakRSS(t *testing.B) {
	mode := os.Getenv("SNAPHOOKS_BENCH_RSS")
	if mode == "" {
		t.Skip("helper for scripts/bench.sh: set SNAPHOOKS_BENCH_RSS=baseline|nolog|logfmt")
	}
	total := 1 << 30
	if s := os.Getenv("SNAPHOOKS_BENCH_RSS_BYTES"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			t.Fatal(err)
		}
		total = n
	}
	path := benchChattyPath(t)
	defer benchRemoveChatty()
	size := benchChattyEnv(t, total)

	var lines atomic.Int64
	t0 := time.Now()
	switch mode {
	case "baseline":
		n, err := benchBareRead(path)
		if err != nil || n != int64(size) {
			t.Fatalf("read %d bytes, want %d: %v", n, size, err)
		}
	case "nolog":
		if err := benchHookRead(context.Background(), path); err != nil {
			t.Fatal(err)
		}
	case "logfmt":
		ctx := WithLogger(context.Background(), slog.New(NewLogfmtHandler(benchCountingDiscard{&lines}, nil)))
		if err := benchHookRead(ctx, path); err != nil {
			t.Fatal(err)
		}
		// One record per line, plus none for the plan: the hook runs alone.
		if want := int64(size / benchChattyLine); lines.Load() != want {
			t.Fatalf("logged %d records, want %d", lines.Load(), want)
		}
	default:
		t.Fatalf("unknown SNAPHOOKS_BENCH_RSS=%q", mode)
	}
	elapsed := time.Since(t0)
	hwm, rss := benchProcStatus(t, "VmHWM"), benchProcStatus(t, "VmRSS")
	fmt.Printf("BENCH-RSS mode=%s bytes=%d seconds=%.2f vmhwm_kib=%d vmrss_kib=%d\n",
		mode, size, elapsed.Seconds(), hwm, rss)
}

// benchCountingDiscard counts the records a LogfmtHandler writes (one Write
// each) and discards them.
type benchCountingDiscard struct{ n *atomic.Int64 }

func (w benchCountingDiscard) Write(p []byte) (int, error) {
	w.n.Add(1)
	return len(p), nil
}

// benchProcStatus returns a "kB" field of /proc/self/status.
func benchProcStatus(tb testing.TB, field string) int64 {
	tb.Helper()
	f, err := os.Open("/proc/self/status")
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && k == field {
			n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				tb.Fatal(err)
			}
			return n
		}
	}
	tb.Fatalf("no %s in /proc/self/status", field)
	return 0
}

// --- 4. Polling --------------------------------------------------------------

// benchSink keeps the compiler from dropping the work of benchBusyHook.
var benchSink atomic.Uint64

// benchBusyHook is an in-process hook that does a fixed amount of CPU work
// (not a fixed time: a step that is slowed down must take longer).
type benchBusyHook struct {
	name string
	work int
}

func (h *benchBusyHook) Filesystems() Filter { return nil }
func (h *benchBusyHook) ErrIsFatal() bool    { return false }
func (h *benchBusyHook) String() string      { return h.name }
func (h *benchBusyHook) Run(context.Context, Edge, Phase, bool, Env, map[interface{}]interface{}) HookReport {
	benchSink.Add(benchSpin(h.work))
	return benchOKReport
}

// benchSpin does n rounds of xorshift.
func benchSpin(n int) uint64 {
	x := uint64(88172645463325252)
	for i := 0; i < n; i++ {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
	}
	return x
}

// benchStepWork is the work of one busy step, about 20 µs.
const benchStepWork = 20000

func benchBusyPlan(tb testing.TB) *Plan {
	list := make(List, 10)
	for i := range list {
		list[i] = &benchBusyHook{name: "busy" + strconv.Itoa(i), work: benchStepWork}
	}
	cb := NewCallbackHook("snapshot", func(context.Context) error {
		benchSink.Add(benchSpin(benchStepWork))
		return nil
	}, nil)
	p, err := NewPlan(&list, PhaseSnapshot, cb, benchExtra)
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// benchPollers are goroutines that call Report on a plan until stopped,
// pausing interval between calls (0: none, they only yield).
type benchPollers struct {
	stop chan struct{}
	wg   sync.WaitGroup
	n    atomic.Int64 // Report calls
}

func startBenchPollers(poll func() PlanReport, n int, interval time.Duration) *benchPollers {
	bp := &benchPollers{stop: make(chan struct{})}
	var started sync.WaitGroup
	for i := 0; i < n; i++ {
		bp.wg.Add(1)
		started.Add(1)
		go func() {
			defer bp.wg.Done()
			started.Done()
			for {
				select {
				case <-bp.stop:
					return
				default:
				}
				if len(poll()) != 21 {
					panic("report of a 21-step plan without 21 steps")
				}
				bp.n.Add(1)
				if interval > 0 {
					time.Sleep(interval)
				} else {
					runtime.Gosched()
				}
			}
		}()
	}
	started.Wait()
	return bp
}

func (bp *benchPollers) halt() int64 {
	close(bp.stop)
	bp.wg.Wait()
	return bp.n.Load()
}

// BenchmarkReportPolling measures Report on a 21-step plan that is running.
//
// "report": ns per Report call, made from 4 goroutines in parallel while
// plans of 21 busy steps (about 20 µs of CPU each, a fixed amount of work)
// run back to back; the baseline "report_idle" is one goroutine calling
// Report of a finished plan.
//
// "run_paced" and "run_spinning": every iteration runs one such plan alone
// (run-ns/op), one while 4 goroutines poll its Report (polled-ns/op), and,
// for spinning pollers, one while 4 goroutines do the same work as Report
// (allocate and copy a 21-step report) on a copy, without the plan's lock
// (control-ns/op); the arms take turns in order. ratio = polled / run is
// the slowdown of Run; lock = polled / control is the part of it that the
// plan's lock causes. Paced pollers sleep 100 µs between calls (the timer
// makes it more), far more often than any status display; spinning pollers
// never pause: on a machine with fewer cores than pollers they mostly
// measure the CPU and the garbage they take from Run, which the control
// takes as well.
func BenchmarkReportPolling(b *testing.B) {
	b.Run("report_idle", func(b *testing.B) {
		p := benchBusyPlan(b)
		p.Run(context.Background(), false)
		for b.Loop() {
			if len(p.Report()) != 21 {
				b.Fatal("wrong report length")
			}
		}
	})
	b.Run("report", func(b *testing.B) {
		var cur atomic.Pointer[Plan]
		cur.Store(benchBusyPlan(b))
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			for {
				select {
				case <-stop:
					return
				default:
				}
				p := benchBusyPlan(b)
				cur.Store(p)
				p.Run(context.Background(), false)
			}
		}()
		defer func() { close(stop); <-done }()
		b.SetParallelism((4 + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if len(cur.Load().Report()) != 21 {
					panic("wrong report length")
				}
			}
		})
	})
	for _, c := range []struct {
		name     string
		interval time.Duration
		control  bool
	}{{"run_paced", 100 * time.Microsecond, false}, {"run_spinning", 0, true}} {
		b.Run(c.name, func(b *testing.B) {
			var runT, polledT, controlT time.Duration
			var reports int64
			alone := func() {
				p := benchBusyPlan(b)
				runT += benchTimed(func() { p.Run(context.Background(), false) })
			}
			polled := func() {
				p := benchBusyPlan(b)
				bp := startBenchPollers(p.Report, 4, c.interval)
				polledT += benchTimed(func() { p.Run(context.Background(), false) })
				reports += bp.halt()
			}
			control := func() {
				p := benchBusyPlan(b)
				snapshot := p.Report()
				bp := startBenchPollers(func() PlanReport {
					r := make(PlanReport, len(snapshot))
					copy(r, snapshot)
					return r
				}, 4, c.interval)
				controlT += benchTimed(func() { p.Run(context.Background(), false) })
				bp.halt()
			}
			arms := []func(){alone, polled}
			if c.control {
				arms = append(arms, control)
			}
			for i := 0; i < b.N; i++ {
				for k := range arms {
					arms[(i+k)%len(arms)]()
				}
			}
			n := float64(b.N)
			b.ReportMetric(float64(runT.Nanoseconds())/n, "run-ns/op")
			b.ReportMetric(float64(polledT.Nanoseconds())/n, "polled-ns/op")
			b.ReportMetric(float64(polledT)/float64(runT), "ratio")
			b.ReportMetric(float64(reports)/n, "reports/op")
			if c.control {
				b.ReportMetric(float64(controlT.Nanoseconds())/n, "control-ns/op")
				b.ReportMetric(float64(polledT)/float64(controlT), "lock")
			}
		})
	}
}

// --- Guards for the shortcuts the benchmarks led to ---------------------------

// benchCtxHook is an in-process hook with a timeout whose Post edge hands
// its ctx to post.
type benchCtxHook struct {
	timeout time.Duration
	post    func(ctx context.Context) error
}

func (h *benchCtxHook) Filesystems() Filter    { return nil }
func (h *benchCtxHook) ErrIsFatal() bool       { return false }
func (h *benchCtxHook) String() string         { return "ctx-hook" }
func (h *benchCtxHook) Timeout() time.Duration { return h.timeout }
func (h *benchCtxHook) Run(ctx context.Context, edge Edge, _ Phase, _ bool, _ Env, _ map[interface{}]interface{}) HookReport {
	if edge != Post || h.post == nil {
		return benchOKReport
	}
	return &CallbackHookReport{Name: "post", Err: h.post(ctx)}
}

package hooks

import (
	"context"
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// testHook is an in-process hook whose edges run the given functions.
type testHook struct {
	name           string
	fatal          bool
	postOnPreError bool
	timeout        time.Duration
	pre, post      func(ctx context.Context) error // nil: succeed
}

type testReport struct{ err error }

func (r *testReport) String() string {
	if r.err != nil {
		return r.err.Error()
	}
	return "ok"
}
func (r *testReport) HadError() bool { return r.err != nil }
func (r *testReport) Error() string {
	if r.err != nil {
		return r.err.Error()
	}
	return ""
}

var okReport = &testReport{}

// everything is the filter of testHooks: it passes every dataset.
var everything = func() Filter {
	f, err := DatasetMapFilterFromConfig(map[string]bool{"<": true})
	if err != nil {
		panic(err)
	}
	return f
}()

func (h *testHook) Filesystems() Filter    { return everything }
func (h *testHook) ErrIsFatal() bool       { return h.fatal }
func (h *testHook) PostOnPreError() bool   { return h.postOnPreError }
func (h *testHook) Timeout() time.Duration { return h.timeout }
func (h *testHook) String() string         { return h.name }
func (h *testHook) fn(e Edge) func(context.Context) error {
	if e == Pre {
		return h.pre
	}
	return h.post
}

func (h *testHook) Run(ctx context.Context, edge Edge, phase Phase, dryRun bool, extra Env, state map[interface{}]interface{}) HookReport {
	f := h.fn(edge)
	if f == nil {
		return okReport
	}
	return &testReport{f(ctx)}
}

func statuses(r PlanReport) []StepStatus {
	var s []StepStatus
	for _, st := range r {
		s = append(s, st.Status)
	}
	return s
}

// blockUntilDone returns an edge function that signals started and then
// waits for ctx to be done.
func blockUntilDone(started chan<- struct{}) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		close(started)
		<-ctx.Done()
		return ctx.Err()
	}
}

// checkDetached returns an edge function that records whether its ctx was
// alive and bounded.
func checkDetached(alive, bounded *atomic.Bool) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		alive.Store(ctx.Err() == nil)
		_, ok := ctx.Deadline()
		bounded.Store(ok)
		return nil
	}
}

func runPlan(t *testing.T, ctx context.Context, list List, cb HookJobCallback) PlanReport {
	t.Helper()
	p, err := NewPlan(&list, PhaseSnapshot, NewCallbackHook("snapshot", cb, exactFilter{}), Env{EnvFS: "tank/db"})
	require.NoError(t, err)
	p.Run(ctx, false)
	return p.Report()
}

func TestPlanCancellation(t *testing.T) {
	t.Parallel()
	okCB := func(ctx context.Context) error { return nil }

	t.Run("cancelled_before_run_is_fatal_and_runs_nothing", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		var cbRan atomic.Bool
		rep := runPlan(t, ctx, List{&testHook{name: "a"}, &testHook{name: "b"}}, func(context.Context) error { cbRan.Store(true); return nil })
		assert.Equal(t, []StepStatus{fail, fatal, fatal, fatal, fatal}, statuses(rep))
		assert.False(t, cbRan.Load())
		assert.True(t, rep.HadFatalError())
		assert.True(t, rep.HadError(), "a snapshot that was never taken must not read as success")
		assert.Contains(t, rep[0].Report.Error(), "cancelled before it ran: context canceled")
		assert.NotContains(t, rep.String(), "[Exec]")
	})

	t.Run("cancelled_during_a_pre_edge_unwinds_with_a_live_bounded_ctx", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithCancel(context.Background())
		started := make(chan struct{})
		go func() { <-started; cancel() }()
		var alive, bounded atomic.Bool
		a := &testHook{name: "a", timeout: time.Minute, post: checkDetached(&alive, &bounded)}
		b := &testHook{name: "b", pre: blockUntilDone(started)}
		c := &testHook{name: "c"}
		rep := runPlan(t, ctx, List{a, b, c}, okCB)
		assert.Equal(t, []StepStatus{ok, fail, fail, fatal, fatal, prErr, ok}, statuses(rep))
		assert.Contains(t, rep[2].Report.Error(), "cancelled before it ran")
		assert.True(t, alive.Load(), "post edge ctx is not cancelled by the caller")
		assert.True(t, bounded.Load(), "post edge ctx is bounded by the hook's timeout")
	})

	t.Run("cancelled_after_the_pre_edges_skips_the_callback", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithCancel(context.Background())
		var alive, bounded atomic.Bool
		a := &testHook{name: "a", pre: func(context.Context) error { cancel(); return nil }, post: checkDetached(&alive, &bounded)}
		rep := runPlan(t, ctx, List{a}, okCB)
		assert.Equal(t, []StepStatus{ok, fail, ok}, statuses(rep))
		assert.Contains(t, rep[1].Report.Error(), "snapshot: cancelled before it ran")
		assert.True(t, rep.HadError())
		assert.True(t, rep.HadFatalError(), "the callback could not run")
		assert.True(t, alive.Load())
	})

	t.Run("cancelled_during_the_callback_runs_the_posts", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithCancel(context.Background())
		started := make(chan struct{})
		go func() { <-started; cancel() }()
		var alive, bounded atomic.Bool
		a := &testHook{name: "a", post: checkDetached(&alive, &bounded)}
		rep := runPlan(t, ctx, List{a}, blockUntilDone(started))
		assert.Equal(t, []StepStatus{ok, fail, ok}, statuses(rep))
		assert.True(t, alive.Load())
		assert.True(t, bounded.Load(), "a hook without Timeout gets DefaultHookTimeout")
	})

	t.Run("cancelled_during_a_post_edge_does_not_stop_the_posts", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithCancel(context.Background())
		var aliveA, aliveB, bounded atomic.Bool
		a := &testHook{name: "a", post: checkDetached(&aliveA, &bounded)}
		b := &testHook{name: "b", post: func(ctx context.Context) error {
			cancel()
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
				aliveB.Store(true)
			}
			return nil
		}}
		rep := runPlan(t, ctx, List{a, b}, okCB)
		assert.Equal(t, []StepStatus{ok, ok, ok, ok, ok}, statuses(rep))
		assert.True(t, aliveB.Load())
		assert.True(t, aliveA.Load())
	})

	t.Run("cancelled_command_hook_unwinds_earlier_command_hooks", func(t *testing.T) {
		t.Parallel()
		record := t.TempDir() + "/record"
		ctx, cancel := context.WithCancel(context.Background())
		list := List{newCommandHook(t, "h1", HookConfig{}), newCommandHook(t, "h2", HookConfig{})}
		p, err := NewPlan(&list, PhaseSnapshot, NewCallbackHook("snapshot", okCB, exactFilter{}),
			Env{"RECORD": record, "h2_pre_snapshot": "sleep"})
		require.NoError(t, err)
		done := make(chan struct{})
		go func() { defer close(done); p.Run(ctx, false) }()
		waitFor(t, func() bool { r := p.Report(); return r[1].Status == StepExec })
		time.Sleep(100 * time.Millisecond) // let the script reach its sleep
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("Run did not return after cancellation")
		}
		rep := p.Report()
		assert.Equal(t, []StepStatus{ok, fail, fail, prErr, ok}, statuses(rep))
		assert.ErrorContains(t, rep[1].Report.(*CommandHookReport).Err, "cancelled")
		assert.Contains(t, readFile(t, record), "h1 post_snapshot")
	})
}

func TestPlanContainsPanics(t *testing.T) {
	t.Parallel()
	log, buf := testLogger()
	a := &testHook{name: "a", post: func(context.Context) error { panic("post boom") }}
	b := &testHook{name: "b", pre: func(context.Context) error { panic("pre boom") }}
	c := &testHook{name: "c", fatal: true}
	var postA atomic.Bool
	d := &testHook{name: "d", post: func(context.Context) error { postA.Store(true); return nil }}
	rep := runPlan(t, WithLogger(context.Background(), log), List{d, a, b, c}, func(context.Context) error { panic(errors.New("callback boom")) })
	assert.Equal(t, []StepStatus{ok, ok, fail, ok, fail, ok, prErr, fail, ok}, statuses(rep))
	assert.Equal(t, "b: panic: pre boom", rep[2].Report.Error())
	assert.Equal(t, "snapshot: panic: callback boom", rep[4].Report.Error())
	assert.Equal(t, "a: panic: post boom", rep[7].Report.Error())
	assert.True(t, postA.Load(), "posts go on after a panicking post")
	assert.Contains(t, buf.String(), "hook panicked")
	assert.Contains(t, buf.String(), "plan_stack_test.go", "the stack trace is logged")
}

func TestPlanRunsOnce(t *testing.T) {
	t.Parallel()
	var n atomic.Int32
	list := List{&testHook{name: "a"}}
	p, err := NewPlan(&list, PhaseSnapshot, NewCallbackHook("cb", func(context.Context) error { n.Add(1); return nil }, exactFilter{}), nil)
	require.NoError(t, err)
	p.Run(context.Background(), false)
	p.Run(context.Background(), false)
	assert.Equal(t, int32(1), n.Load())
}

func TestNewPlanRejectsNil(t *testing.T) {
	t.Parallel()
	_, err := NewPlan(&List{}, PhaseSnapshot, nil, nil)
	assert.Error(t, err)
	_, err = NewPlan(&List{nil}, PhaseSnapshot, NewCallbackHook("cb", nil, exactFilter{}), nil)
	assert.ErrorContains(t, err, "hook #1 is nil")
	p, err := NewPlan(nil, PhaseSnapshot, NewCallbackHook("cb", nil, exactFilter{}), nil)
	require.NoError(t, err)
	p.Run(context.Background(), false)
	assert.Equal(t, "cb error: no callback function", p.Report()[0].Report.Error())
}

func TestPlanReportPolledWhileRunning(t *testing.T) {
	t.Parallel()
	var list List
	for i := 0; i < 10; i++ {
		list = append(list, &testHook{name: "h", pre: sleepEdge, post: sleepEdge})
	}
	p, err := NewPlan(&list, PhaseSnapshot, NewCallbackHook("cb", sleepEdge, exactFilter{}), nil)
	require.NoError(t, err)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var sawExec atomic.Int32
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			prev := p.Report()
			for {
				select {
				case <-stop:
					return
				default:
				}
				r := p.Report()
				execs := 0
				for i, s := range r {
					if s.Status == StepExec {
						execs++
						sawExec.Add(1)
						assert.False(t, s.Begin.IsZero(), "a running step shows its Begin")
						assert.NotContains(t, s.String(), "...")
					}
					assert.GreaterOrEqual(t, s.Status, prev[i].Status, "statuses only move forward")
				}
				assert.LessOrEqual(t, execs, 1)
				prev = r
			}
		}()
	}
	p.Run(context.Background(), false)
	close(stop)
	wg.Wait()
	assert.Positive(t, sawExec.Load())
	for _, s := range p.Report() {
		assert.Equal(t, StepOk, s.Status)
	}
}

func sleepEdge(context.Context) error {
	time.Sleep(2 * time.Millisecond)
	return nil
}

// waitFor polls cond until it holds, failing the test after 10s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return string(b)
}

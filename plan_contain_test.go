package hooks

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// brokenHook misbehaves in the ways a Plan must contain.
type brokenHook struct {
	testHook
	panicString, panicFatal bool
	report                  func() HookReport // what Run returns, if set
}

func (h *brokenHook) String() string {
	if h.panicString {
		panic("String boom")
	}
	return h.name
}

func (h *brokenHook) ErrIsFatal() bool {
	if h.panicFatal {
		panic("ErrIsFatal boom")
	}
	return h.fatal
}

func (h *brokenHook) Run(ctx context.Context, edge Edge, phase Phase, dryRun bool, extra Env, state map[interface{}]interface{}) HookReport {
	if h.report != nil && edge == Pre {
		return h.report()
	}
	return h.testHook.Run(ctx, edge, phase, dryRun, extra, state)
}

// panickyReport is a report whose methods panic.
type panickyReport struct{}

func (panickyReport) String() string { panic("report String boom") }
func (panickyReport) HadError() bool { panic("report HadError boom") }
func (panickyReport) Error() string  { panic("report Error boom") }

func TestPlanContainsBrokenHooks(t *testing.T) {
	t.Parallel()
	var typedNilReport *CommandHookReport
	cases := []struct {
		name    string
		hook    Hook
		wantErr string // in the report of the broken hook's Pre edge
	}{
		{"typed_nil_report", &brokenHook{testHook: testHook{name: "b"}, report: func() HookReport { return typedNilReport }}, "b: hook returned no report"},
		{"nil_report", &brokenHook{testHook: testHook{name: "b"}, report: func() HookReport { return nil }}, "b: hook returned no report"},
		{"report_methods_panic", &brokenHook{testHook: testHook{name: "b"}, report: func() HookReport { return panickyReport{} }}, "report HadError boom"},
		{"string_panics_with_a_logger", &brokenHook{testHook: testHook{name: "b", pre: func(context.Context) error { panic("pre boom") }}, panicString: true}, "whose String panicked>: panic: pre boom"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			log, _ := testLogger()
			var postA atomic.Bool
			a := &testHook{name: "a", post: func(context.Context) error { postA.Store(true); return nil }}
			rep := runPlan(t, WithLogger(context.Background(), log), List{a, c.hook}, func(context.Context) error { return nil })
			assert.Equal(t, []StepStatus{ok, fail, ok, prErr, ok}, statuses(rep))
			assert.Contains(t, rep[1].Report.Error(), c.wantErr)
			assert.True(t, postA.Load(), "the earlier hook's post edge ran")
			assert.NotPanics(t, func() { _ = rep.String() })
		})
	}

	t.Run("err_is_fatal_panics_counts_as_fatal", func(t *testing.T) {
		t.Parallel()
		b := &brokenHook{testHook: testHook{name: "b", pre: func(context.Context) error { return assert.AnError }}, panicFatal: true}
		rep := runPlan(t, context.Background(), List{&testHook{name: "a"}, b}, func(context.Context) error { return nil })
		assert.Equal(t, []StepStatus{ok, fail, fatal, fatal, ok}, statuses(rep))
		assert.NotPanics(t, func() { _ = rep.String() })
	})

	t.Run("typed_nil_hook_is_refused", func(t *testing.T) {
		t.Parallel()
		var h *CommandHook
		list := List{&testHook{name: "a"}, h}
		_, err := NewPlan(&list, PhaseSnapshot, NewCallbackHook("cb", nil, exactFilter{}), nil)
		assert.ErrorContains(t, err, "hook #2 is nil")
		fs, _ := NewDatasetPath("tank")
		_, err = list.CopyFilteredForFilesystem(fs)
		assert.ErrorContains(t, err, "hook #2")
	})
}

func TestPostEdgeKnowsWhatHappened(t *testing.T) {
	t.Parallel()
	type envs struct{ pre, cb string }
	record := func(got *envs) func(context.Context, Env) error {
		return func(_ context.Context, env Env) error {
			got.pre, got.cb = env[EnvPreResult], env[EnvCallbackResult]
			return nil
		}
	}
	t.Run("all_ok", func(t *testing.T) {
		t.Parallel()
		var got envs
		rep := runPlan(t, context.Background(), List{&envHook{name: "a", post: record(&got)}}, func(context.Context) error { return nil })
		assert.Equal(t, []StepStatus{ok, ok, ok}, statuses(rep))
		assert.Equal(t, envs{"ok", "ok"}, got)
	})
	t.Run("callback_failed", func(t *testing.T) {
		t.Parallel()
		var got envs
		runPlan(t, context.Background(), List{&envHook{name: "a", post: record(&got)}}, func(context.Context) error { return assert.AnError })
		assert.Equal(t, envs{"ok", "error"}, got)
	})
	t.Run("later_fatal_error", func(t *testing.T) {
		t.Parallel()
		var got envs
		b := &testHook{name: "b", fatal: true, pre: func(context.Context) error { return assert.AnError }}
		runPlan(t, context.Background(), List{&envHook{name: "a", post: record(&got)}, b}, func(context.Context) error { return nil })
		assert.Equal(t, envs{"ok", "skipped"}, got)
	})
	t.Run("own_pre_failed_with_post_on_pre_error", func(t *testing.T) {
		t.Parallel()
		var got envs
		a := &envHook{name: "a", postOnPreError: true, pre: func(context.Context, Env) error { return assert.AnError }, post: record(&got)}
		rep := runPlan(t, context.Background(), List{a}, func(context.Context) error { return nil })
		assert.Equal(t, []StepStatus{fail, ok, ok}, statuses(rep))
		assert.Equal(t, envs{"error", "ok"}, got)
	})
	t.Run("pre_edges_do_not_get_them", func(t *testing.T) {
		t.Parallel()
		var got envs
		got.pre, got.cb = "unset", "unset"
		runPlan(t, context.Background(), List{&envHook{name: "a", pre: record(&got)}}, func(context.Context) error { return nil })
		assert.Equal(t, envs{"", ""}, got)
	})
}

// envHook is an in-process hook whose edges see the env the plan gives them.
type envHook struct {
	name           string
	postOnPreError bool
	pre, post      func(context.Context, Env) error
}

func (h *envHook) Filesystems() Filter  { return everything }
func (h *envHook) ErrIsFatal() bool     { return false }
func (h *envHook) PostOnPreError() bool { return h.postOnPreError }
func (h *envHook) String() string       { return h.name }
func (h *envHook) Run(ctx context.Context, edge Edge, phase Phase, dryRun bool, extra Env, state map[interface{}]interface{}) HookReport {
	f := h.pre
	if edge == Post {
		f = h.post
	}
	if f == nil {
		return okReport
	}
	return &testReport{f(ctx, extra)}
}

// skipReport asks the plan to skip the snapshot.
type skipReport struct{ testReport }

func (skipReport) SkipSnapshot() bool { return true }

// skipHook asks to skip in its Pre edge.
type skipHook struct{ testHook }

func (h *skipHook) Run(ctx context.Context, edge Edge, phase Phase, dryRun bool, extra Env, state map[interface{}]interface{}) HookReport {
	if edge == Pre {
		return &skipReport{}
	}
	return h.testHook.Run(ctx, edge, phase, dryRun, extra, state)
}

func TestPlanSkip(t *testing.T) {
	t.Parallel()
	const skipped, asked = StepSkippedDueToSkip, StepSkipRequested
	t.Run("skip_unwinds_earlier_posts_without_an_error", func(t *testing.T) {
		t.Parallel()
		var cbRan, postB atomic.Bool
		var aPost envs2
		a := &envHook{name: "a", post: func(_ context.Context, env Env) error {
			aPost = envs2{env[EnvPreResult], env[EnvCallbackResult]}
			return nil
		}}
		b := &skipHook{testHook{name: "b", post: func(context.Context) error { postB.Store(true); return nil }}}
		c := &testHook{name: "c"}
		rep := runPlan(t, context.Background(), List{a, b, c}, func(context.Context) error { cbRan.Store(true); return nil })
		assert.Equal(t, []StepStatus{ok, asked, skipped, skipped, skipped, skipped, ok}, statuses(rep))
		assert.False(t, cbRan.Load())
		assert.False(t, postB.Load(), "the skipping hook's own post does not run")
		assert.Equal(t, envs2{"ok", "skipped"}, aPost)
		assert.False(t, rep.HadError())
		assert.False(t, rep.HadFatalError())
		assert.True(t, rep.HadSkip())
		assert.Contains(t, rep.String(), "[SkipRequested]")
	})
	t.Run("post_on_pre_error_runs_the_skipping_hooks_post", func(t *testing.T) {
		t.Parallel()
		var got string
		b := &skipHookEnv{envHook{name: "b", postOnPreError: true, post: func(_ context.Context, env Env) error { got = env[EnvPreResult]; return nil }}}
		rep := runPlan(t, context.Background(), List{b}, func(context.Context) error { return nil })
		assert.Equal(t, []StepStatus{asked, skipped, ok}, statuses(rep))
		assert.Equal(t, "skip", got)
	})
	t.Run("skip_on_a_post_edge_is_ignored", func(t *testing.T) {
		t.Parallel()
		h := &postSkipHook{testHook{name: "a"}}
		rep := runPlan(t, context.Background(), List{h}, func(context.Context) error { return nil })
		assert.Equal(t, []StepStatus{ok, ok, ok}, statuses(rep))
	})
}

type envs2 struct{ pre, cb string }

type skipHookEnv struct{ envHook }

func (h *skipHookEnv) Run(ctx context.Context, edge Edge, phase Phase, dryRun bool, extra Env, state map[interface{}]interface{}) HookReport {
	if edge == Pre {
		return &skipReport{}
	}
	return h.envHook.Run(ctx, edge, phase, dryRun, extra, state)
}

type postSkipHook struct{ testHook }

func (h *postSkipHook) Run(ctx context.Context, edge Edge, phase Phase, dryRun bool, extra Env, state map[interface{}]interface{}) HookReport {
	if edge == Post {
		return &skipReport{}
	}
	return okReport
}

func TestPostEdgeWithTheLargestTimeoutIsNotCutShort(t *testing.T) {
	t.Parallel()
	var alive atomic.Bool
	var deadline time.Time
	a := &testHook{name: "a", timeout: math.MaxInt64, post: func(ctx context.Context) error {
		alive.Store(ctx.Err() == nil)
		deadline, _ = ctx.Deadline()
		return nil
	}}
	rep := runPlan(t, context.Background(), List{a}, func(context.Context) error { return nil })
	require.Equal(t, []StepStatus{ok, ok, ok}, statuses(rep))
	assert.True(t, alive.Load(), "the post edge's ctx is alive")
	assert.True(t, deadline.After(time.Now().Add(100*365*24*time.Hour)), "deadline %v", deadline)
}

// TestPlanSkipExitCode: a command hook configured with skip_exit_code that
// exits with it in its pre edge skips the snapshot without an error; the
// earlier hook's post edge learns that the snapshot was skipped.
func TestPlanSkipExitCode(t *testing.T) {
	t.Parallel()
	record := t.TempDir() + "/record"
	list, err := ListFromConfig(&HookList{
		{Type: TypeCommand, Path: hookPath(t, "h1")},
		{Type: TypeCommand, Path: hookPath(t, "exit-code"), SkipExitCode: 75},
		{Type: TypeCommand, Path: hookPath(t, "h2")},
	})
	require.NoError(t, err)
	var cbRan atomic.Bool
	p, err := NewPlan(list, PhaseSnapshot, NewCallbackHook("snapshot", func(context.Context) error { cbRan.Store(true); return nil }, nil),
		Env{EnvFS: "tank/db", "RECORD": record, "EXIT_CODE": "75"})
	require.NoError(t, err)
	p.Run(context.Background(), false)
	rep := p.Report()

	const skipped = StepSkippedDueToSkip
	assert.Equal(t, []StepStatus{ok, StepSkipRequested, skipped, skipped, skipped, skipped, ok}, statuses(rep))
	assert.False(t, cbRan.Load())
	assert.False(t, rep.HadError())
	assert.False(t, rep.HadFatalError())
	assert.True(t, rep.HadSkip())
	assert.Contains(t, rep[1].Report.String(), "asked to skip the snapshot (exit status 75)")
	assert.Equal(t, "h1 pre_snapshot\nh1 post_snapshot\n", readFile(t, record))
	js, err := rep.MarshalJSON()
	require.NoError(t, err)
	assert.Contains(t, string(js), `"status":"SkipRequested"`)

	// Another exit status is an ordinary error.
	p, err = NewPlan(list, PhaseSnapshot, NewCallbackHook("snapshot", func(context.Context) error { return nil }, nil),
		Env{EnvFS: "tank/db", "EXIT_CODE": "74"})
	require.NoError(t, err)
	p.Run(context.Background(), false)
	assert.Equal(t, StepErr, p.Report()[1].Status)
}

// TestSetPostEnv: what the callback sets with SetPostEnv reaches every Post
// edge, on top of the hook's env and the results; Pre edges never see it.
func TestSetPostEnv(t *testing.T) {
	t.Parallel()
	var pre, post []Env
	rec := func(into *[]Env) func(context.Context, Env) error {
		return func(_ context.Context, env Env) error {
			*into = append(*into, env)
			return nil
		}
	}
	list := List{&envHook{name: "a", pre: rec(&pre), post: rec(&post)}, &envHook{name: "b", pre: rec(&pre), post: rec(&post)}}
	var p *Plan
	p, err := NewPlan(&list, PhaseSnapshot, NewCallbackHook("hold", func(context.Context) error {
		p.SetPostEnv(Env{"SANOID_SCRIPT": "post", EnvCallbackResult: "unknown"})
		return nil
	}, nil), Env{EnvFS: "tank/db"})
	require.NoError(t, err)
	p.Run(context.Background(), false)
	require.Len(t, pre, 2)
	require.Len(t, post, 2)
	for _, env := range pre {
		assert.NotContains(t, env, HookEnvVar("SANOID_SCRIPT"))
	}
	for _, env := range post {
		assert.Equal(t, "post", env["SANOID_SCRIPT"])
		assert.Equal(t, "unknown", env[EnvCallbackResult])
		assert.Equal(t, "ok", env[EnvPreResult])
		assert.Equal(t, "tank/db", env[EnvFS])
	}
}

// TestUnwindingDeadlineGivesEveryPostEdgeItsBound: the Post edges share one
// deadline, the sum of their hooks' timeouts (DefaultHookTimeout for none)
// plus postBackstop each, so every edge starts with at least its own bound
// left, and no more than the sum.
func TestUnwindingDeadlineGivesEveryPostEdgeItsBound(t *testing.T) {
	t.Parallel()
	timeouts := []time.Duration{time.Hour, time.Minute, 0}
	left := make([]time.Duration, len(timeouts))
	var list List
	var budget time.Duration
	for i, d := range timeouts {
		h := &testHook{name: fmt.Sprint("h", i), timeout: d, post: func(ctx context.Context) error {
			deadline, ok := ctx.Deadline()
			if !ok {
				return errors.New("no deadline")
			}
			left[i] = time.Until(deadline)
			return nil
		}}
		list = append(list, h)
		budget += hookTimeout(h) + postBackstop
	}
	rep := runPlan(t, context.Background(), list, func(context.Context) error { return nil })
	require.False(t, rep.HadError(), "%s", reportErrors(rep))
	for i, h := range list {
		assert.GreaterOrEqual(t, left[i], hookTimeout(h)+postBackstop-time.Second/2, "post edge of %s", h)
		assert.LessOrEqual(t, left[i], budget, "post edge of %s", h)
	}
	assert.Greater(t, left[2], hookTimeout(list[1])+hookTimeout(list[0]), "the first edge to unwind has the others' bounds too")
}

// TestUnwindingDeadlineIsRenewedAfterAnOverrun: a Post edge that ignores its
// ctx and runs past its share does not cut short the edges unwound after it:
// the next one starts with its own bound left.
func TestUnwindingDeadlineIsRenewedAfterAnOverrun(t *testing.T) {
	t.Parallel()
	const tiny = time.Millisecond // each bound is tiny + postBackstop; the budget twice that
	var aLeft time.Duration
	var aAlive bool
	a := &testHook{name: "a", timeout: tiny, post: func(ctx context.Context) error {
		deadline, _ := ctx.Deadline()
		aLeft, aAlive = time.Until(deadline), ctx.Err() == nil
		return nil
	}}
	b := &testHook{name: "b", timeout: tiny, post: func(context.Context) error {
		time.Sleep(postBackstop * 3 / 2) // ignores its ctx: leaves a half of a's bound
		return nil
	}}
	rep := runPlan(t, context.Background(), List{a, b}, func(context.Context) error { return nil })
	require.False(t, rep.HadError(), "%s", reportErrors(rep))
	assert.True(t, aAlive, "a's post edge starts with a live ctx")
	assert.Greater(t, aLeft, (tiny+postBackstop)*3/4, "a's post edge starts with its own bound left, not what b left of the budget")
}

// TestUnwindingDeadlineStopsPostEdgesThatWait: Post edges that honour their
// ctx but would wait for ever return when the deadline passes: the first at
// the unwinding's deadline, the sum of both bounds; the second, which then
// has no time left, at a deadline of its own bound.
func TestUnwindingDeadlineStopsPostEdgesThatWait(t *testing.T) {
	t.Parallel()
	wait := func(ctx context.Context) error {
		<-ctx.Done()
		return ctx.Err()
	}
	const tiny = time.Millisecond
	a := &testHook{name: "a", timeout: tiny, post: wait}
	b := &testHook{name: "b", timeout: tiny, post: wait}
	rep := runPlan(t, context.Background(), List{a, b}, func(context.Context) error { return nil })
	require.Equal(t, []StepStatus{ok, ok, ok, fail, fail}, statuses(rep))
	for _, s := range rep[3:] {
		assert.ErrorIs(t, s.Report.(*testReport).err, context.DeadlineExceeded, "%s", s.Hook)
	}
	// The deadlines are set just before the edges begin: allow for that gap.
	const gap = 10 * time.Millisecond
	assert.GreaterOrEqual(t, rep[3].End.Sub(rep[3].Begin), 2*(tiny+postBackstop)-gap, "b's post edge had the unwinding's deadline")
	assert.GreaterOrEqual(t, rep[4].End.Sub(rep[4].Begin), tiny+postBackstop-gap, "a's post edge had its own bound")
}

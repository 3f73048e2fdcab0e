package hooks

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// An outcomeCase runs a real plan: command hooks testdata/hooks/h1..h3 whose
// edges do what env says ("h1_pre_snapshot": "fail"), in-process hooks that
// cancel the plan, and a callback; then it judges the report.
type outcomeCase struct {
	name string
	// hooks builds the list; cancel cancels the plan's ctx with the cause
	// interruptedBy.
	hooks func(t *testing.T, cancel func()) List
	env   map[string]string
	// cb is the callback; nil succeeds.
	cb   func(ctx context.Context, cancel func()) error
	info func(cancelledAt time.Time) RunInfo // nil: the zero RunInfo

	wantFate    Fate
	wantDecider string   // "<edge> <hook>", "" for none
	wantFailed  []string // "<edge> <hook>"
	wantSummary string   // {h1}, {h2}, {h3} stand for the paths of the scripts
	wantError   bool
}

var interruptedBy = errors.New("interrupted by SIGTERM")

// cmdHook is command hook testdata/hooks/<name>.
func cmdHook(name string, cfg HookConfig) func(t *testing.T) Hook {
	return func(t *testing.T) Hook {
		return newCommandHook(t, name, cfg)
	}
}

// hooksOf builds a list of command hooks.
func hooksOf(hs ...func(t *testing.T) Hook) func(t *testing.T, cancel func()) List {
	return func(t *testing.T, cancel func()) List {
		var l List
		for _, h := range hs {
			l = append(l, h(t))
		}
		return l
	}
}

// canceller is an in-process hook whose Pre edge cancels the plan and
// succeeds.
func canceller(cancel func()) Hook {
	return &testHook{name: "canceller", pre: func(context.Context) error { cancel(); return nil }}
}

func TestOutcomeMatrix(t *testing.T) {
	t.Parallel()
	plain := cmdHook("h1", HookConfig{})
	fatalH1 := cmdHook("h1", HookConfig{ErrIsFatal: true})
	h2 := cmdHook("h2", HookConfig{})
	fatalH2 := cmdHook("h2", HookConfig{ErrIsFatal: true})
	skipH2 := cmdHook("h2", HookConfig{SkipExitCode: 1}) // "fail" exits 1: asks to skip
	skipH1 := cmdHook("h1", HookConfig{SkipExitCode: 1})
	cbFails := func(context.Context, func()) error { return errors.New("zfs: out of space") }
	cbInterrupted := func(ctx context.Context, cancel func()) error {
		cancel()
		return errors.New("signal: terminated")
	}
	withCancel := func(time.Time) RunInfo { return RunInfo{Cancel: interruptedBy} }
	cancelLater := func(at time.Time) RunInfo {
		return RunInfo{Cancel: interruptedBy, CancelledAt: at.Add(time.Hour)}
	}

	cases := []outcomeCase{
		// Each alone.
		{
			name: "all_ok_takes_the_snapshot", hooks: hooksOf(plain),
			wantFate: FateTaken, wantDecider: "Callback snapshot",
			wantSummary: "ok: tank/db@s: the hooks succeeded and the snapshot was taken",
		},
		{
			name: "dry_run_is_its_own_fate", hooks: hooksOf(plain),
			info:     func(time.Time) RunInfo { return RunInfo{DryRun: true} },
			wantFate: FateDryRun, wantDecider: "Callback snapshot",
			wantSummary: "ok (dry run): tank/db@s: the hooks and the snapshot ran as a dry run and succeeded",
		},
		{
			name: "non_fatal_pre_error_takes_the_snapshot_and_names_the_hook", hooks: hooksOf(plain),
			env:      map[string]string{"h1_pre_snapshot": "fail"},
			wantFate: FateTaken, wantDecider: "Callback snapshot", wantFailed: []string{"Pre {h1}"}, wantError: true,
			wantSummary: "hook error: tank/db@s: the snapshot was taken, but the pre edge of {h1} failed",
		},
		{
			name: "fatal_pre_error", hooks: hooksOf(fatalH1),
			env:      map[string]string{"h1_pre_snapshot": "fail"},
			wantFate: FateFatal, wantDecider: "Pre {h1}", wantError: true,
			wantSummary: "snapshot skipped: tank/db@s: a pre hook with err_is_fatal failed",
		},
		{
			name: "skip_is_no_error_and_names_who_asked", hooks: hooksOf(skipH1),
			env:      map[string]string{"h1_pre_snapshot": "fail"},
			wantFate: FateSkipped, wantDecider: "Pre {h1}",
			wantSummary: "snapshot skipped: tank/db@s: pre hook {h1} asked to skip it",
		},
		{
			name: "cancellation_names_its_cause",
			hooks: func(t *testing.T, cancel func()) List {
				return List{canceller(cancel), plain(t)}
			},
			wantFate: FateCancelled, wantDecider: "Pre {h1}", wantError: true,
			wantSummary: "snapshot skipped: tank/db@s: interrupted by SIGTERM",
		},
		{
			name: "failed_callback", hooks: hooksOf(plain), cb: cbFails,
			wantFate: FateFailed, wantDecider: "Callback snapshot", wantError: true,
			wantSummary: "snapshot failed: tank/db@s: snapshot error: zfs: out of space",
		},
		{
			name: "failed_post_edge", hooks: hooksOf(plain),
			env:      map[string]string{"h1_post_snapshot": "fail"},
			wantFate: FateTaken, wantDecider: "Callback snapshot", wantFailed: []string{"Post {h1}"}, wantError: true,
			wantSummary: "hook error: tank/db@s: the snapshot was taken, but the post edge of {h1} failed",
		},
		// Skip with anything else: never a fatal error that did not happen.
		{
			name: "skip_after_a_non_fatal_pre_error", hooks: hooksOf(plain, skipH2),
			env:      map[string]string{"h1_pre_snapshot": "fail", "h2_pre_snapshot": "fail"},
			wantFate: FateSkipped, wantDecider: "Pre {h2}", wantFailed: []string{"Pre {h1}"}, wantError: true,
			wantSummary: "snapshot skipped: tank/db@s: pre hook {h2} asked to skip it; also, the pre edge of {h1} failed",
		},
		{
			name: "skip_with_a_failed_post_edge_of_an_earlier_hook", hooks: hooksOf(plain, skipH2),
			env:      map[string]string{"h1_post_snapshot": "fail", "h2_pre_snapshot": "fail"},
			wantFate: FateSkipped, wantDecider: "Pre {h2}", wantFailed: []string{"Post {h1}"}, wantError: true,
			wantSummary: "snapshot skipped: tank/db@s: pre hook {h2} asked to skip it; also, the post edge of {h1} failed",
		},
		{
			name: "skip_before_a_fatal_hook_keeps_it_from_running", hooks: hooksOf(skipH1, fatalH2),
			env:      map[string]string{"h1_pre_snapshot": "fail", "h2_pre_snapshot": "fail"},
			wantFate: FateSkipped, wantDecider: "Pre {h1}",
			wantSummary: "snapshot skipped: tank/db@s: pre hook {h1} asked to skip it",
		},
		{
			name: "skip_then_a_cancellation_is_still_a_skip",
			hooks: func(t *testing.T, cancel func()) List {
				return List{plain(t), skipH2(t)}
			},
			env:      map[string]string{"h2_pre_snapshot": "fail"},
			info:     cancelLater,
			wantFate: FateSkipped, wantDecider: "Pre {h2}",
			wantSummary: "snapshot skipped: tank/db@s: pre hook {h2} asked to skip it",
		},
		// Fatal error with the others.
		{
			name: "fatal_after_a_non_fatal_pre_error", hooks: hooksOf(plain, fatalH2),
			env:      map[string]string{"h1_pre_snapshot": "fail", "h2_pre_snapshot": "fail"},
			wantFate: FateFatal, wantDecider: "Pre {h2}", wantFailed: []string{"Pre {h1}"}, wantError: true,
			wantSummary: "snapshot skipped: tank/db@s: a pre hook with err_is_fatal failed; also, the pre edge of {h1} failed",
		},
		{
			name: "fatal_with_a_failed_post_edge_of_an_earlier_hook", hooks: hooksOf(plain, fatalH2),
			env:      map[string]string{"h1_post_snapshot": "fail", "h2_pre_snapshot": "fail"},
			wantFate: FateFatal, wantDecider: "Pre {h2}", wantFailed: []string{"Post {h1}"}, wantError: true,
			wantSummary: "snapshot skipped: tank/db@s: a pre hook with err_is_fatal failed; also, the post edge of {h1} failed",
		},
		{
			name: "fatal_error_during_a_cancellation_is_the_cancellation", hooks: hooksOf(fatalH1),
			env:      map[string]string{"h1_pre_snapshot": "fail"},
			info:     withCancel,
			wantFate: FateCancelled, wantFailed: []string{"Pre {h1}"}, wantError: true,
			wantSummary: "snapshot skipped: tank/db@s: interrupted by SIGTERM; also, the pre edge of {h1} failed",
		},
		{
			name: "fatal_error_before_a_later_cancellation_stays_fatal", hooks: hooksOf(fatalH1),
			env:      map[string]string{"h1_pre_snapshot": "fail"},
			info:     cancelLater,
			wantFate: FateFatal, wantDecider: "Pre {h1}", wantError: true,
			wantSummary: "snapshot skipped: tank/db@s: a pre hook with err_is_fatal failed",
		},
		// Cancellation with the others.
		{
			name: "cancellation_after_a_non_fatal_pre_error",
			hooks: func(t *testing.T, cancel func()) List {
				return List{plain(t), canceller(cancel), h2(t)}
			},
			env:      map[string]string{"h1_pre_snapshot": "fail"},
			wantFate: FateCancelled, wantDecider: "Pre {h2}", wantFailed: []string{"Pre {h1}"}, wantError: true,
			wantSummary: "snapshot skipped: tank/db@s: interrupted by SIGTERM; also, the pre edge of {h1} failed",
		},
		{
			name: "cancellation_with_a_failed_post_edge",
			hooks: func(t *testing.T, cancel func()) List {
				return List{plain(t), canceller(cancel), h2(t)}
			},
			env:      map[string]string{"h1_post_snapshot": "fail"},
			wantFate: FateCancelled, wantDecider: "Pre {h2}", wantFailed: []string{"Post {h1}"}, wantError: true,
			wantSummary: "snapshot skipped: tank/db@s: interrupted by SIGTERM; also, the post edge of {h1} failed",
		},
		{
			name: "cancellation_during_the_callback_leaves_the_snapshot_unknown", hooks: hooksOf(plain),
			cb: cbInterrupted, info: withCancel,
			wantFate: FateInterrupted, wantDecider: "Callback snapshot", wantError: true,
			wantSummary: "snapshot unknown: tank/db@s: interrupted by SIGTERM while the snapshot was being taken; whether it was taken is unknown",
		},
		{
			name: "cancellation_after_the_callback_failed_is_a_failed_callback", hooks: hooksOf(plain),
			cb: cbFails, info: cancelLater,
			wantFate: FateFailed, wantDecider: "Callback snapshot", wantError: true,
			wantSummary: "snapshot failed: tank/db@s: snapshot error: zfs: out of space",
		},
		{
			name: "cancellation_after_the_callback_succeeded_is_a_snapshot", hooks: hooksOf(plain),
			info:     withCancel,
			wantFate: FateTaken, wantDecider: "Callback snapshot",
			wantSummary: "ok: tank/db@s: the hooks succeeded and the snapshot was taken",
		},
		// A failed callback with the others.
		{
			name: "failed_callback_after_a_non_fatal_pre_error", hooks: hooksOf(plain), cb: cbFails,
			env:      map[string]string{"h1_pre_snapshot": "fail"},
			wantFate: FateFailed, wantDecider: "Callback snapshot", wantFailed: []string{"Pre {h1}"}, wantError: true,
			wantSummary: "snapshot failed: tank/db@s: snapshot error: zfs: out of space; also, the pre edge of {h1} failed",
		},
		{
			name: "failed_callback_and_failed_post_edge", hooks: hooksOf(plain), cb: cbFails,
			env:      map[string]string{"h1_post_snapshot": "fail"},
			wantFate: FateFailed, wantDecider: "Callback snapshot", wantFailed: []string{"Post {h1}"}, wantError: true,
			wantSummary: "snapshot failed: tank/db@s: snapshot error: zfs: out of space; also, the post edge of {h1} failed",
		},
		// Non-fatal pre error with a failed post edge.
		{
			name: "non_fatal_pre_error_and_failed_post_edge_are_both_named", hooks: hooksOf(plain, h2),
			env:      map[string]string{"h1_pre_snapshot": "fail", "h2_post_snapshot": "fail"},
			wantFate: FateTaken, wantDecider: "Callback snapshot", wantFailed: []string{"Pre {h1}", "Post {h2}"}, wantError: true,
			wantSummary: "hook error: tank/db@s: the snapshot was taken, but the pre edge of {h1} and the post edge of {h2} failed",
		},
		{
			name: "dry_run_with_a_failed_post_edge", hooks: hooksOf(plain),
			env:      map[string]string{"h1_post_snapshot": "fail"},
			info:     func(time.Time) RunInfo { return RunInfo{DryRun: true} },
			wantFate: FateDryRun, wantDecider: "Callback snapshot", wantFailed: []string{"Post {h1}"}, wantError: true,
			wantSummary: "hook error (dry run): tank/db@s: the post edge of {h1} failed; the snapshot ran as a dry run",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			runOutcomeCase(t, c)
		})
	}
}

func runOutcomeCase(t *testing.T, c outcomeCase) {
	ctx, cancelCause := context.WithCancelCause(context.Background())
	defer cancelCause(nil)
	cancel := func() { cancelCause(interruptedBy) }
	list := c.hooks(t, cancel)
	cb := func(ctx context.Context) error {
		if c.cb == nil {
			return nil
		}
		return c.cb(ctx, cancel)
	}
	env := Env{EnvFS: "tank/db", EnvSnapshot: "s"}
	for k, v := range c.env {
		env[HookEnvVar(k)] = v
	}
	plan, err := NewPlan(&list, PhaseSnapshot, NewCallbackHook("snapshot", cb, nil), env)
	require.NoError(t, err)
	assert.Equal(t, FatePending, plan.Report().Outcome(RunInfo{}).Fate, "before Run")
	start := time.Now()
	plan.Run(ctx, false)
	rep := plan.Report()
	var info RunInfo
	if c.info != nil {
		info = c.info(start)
	}
	o := rep.Outcome(info)

	paths := strings.NewReplacer("{h1}", hookPath(t, "h1"), "{h2}", hookPath(t, "h2"), "{h3}", hookPath(t, "h3"))
	name := func(s Step) string { return s.Edge.String() + " " + filepath.Clean(hookName(s.Hook)) }
	assert.Equal(t, c.wantFate, o.Fate, "fate; report:\n%s", rep)
	decider := ""
	if o.Decider.Hook != nil {
		decider = name(o.Decider)
	}
	wantDecider := paths.Replace(c.wantDecider)
	assert.Equal(t, wantDecider, decider, "decider")
	var failed []string
	for _, s := range o.Failed {
		failed = append(failed, name(s))
	}
	var wantFailed []string
	for _, f := range c.wantFailed {
		wantFailed = append(wantFailed, paths.Replace(f))
	}
	assert.Equal(t, wantFailed, failed, "failed steps")
	assert.Equal(t, paths.Replace(c.wantSummary), o.Summary("tank/db@s"), "summary")
	assert.Equal(t, c.wantError, o.HadError(), "HadError")
	if o.Fate == FateCancelled || o.Fate == FateInterrupted {
		assert.ErrorIs(t, o.Cancel, interruptedBy)
	} else {
		assert.NoError(t, o.Cancel)
	}
}

func TestOutcomeFailureSummaryNamesAtMostThree(t *testing.T) {
	t.Parallel()
	var o Outcome
	for _, n := range []string{"a", "b", "c", "d", "e"} {
		o.Failed = append(o.Failed, Step{Hook: &testHook{name: n}, Edge: Post})
	}
	assert.Equal(t, "the post edge of a, the post edge of b, the post edge of c and 2 more failed", o.FailureSummary())
	o.Failed = o.Failed[:2]
	assert.Equal(t, "the post edge of a and the post edge of b failed", o.FailureSummary())
}

func TestPlanReportHooks(t *testing.T) {
	t.Parallel()
	list := List{&testHook{name: "a"}, &testHook{name: "b"}}
	plan, err := NewPlan(&list, PhaseSnapshot, NewCallbackHook("cb", nil, nil), nil)
	require.NoError(t, err)
	assert.Equal(t, 2, plan.Report().Hooks())
	assert.Equal(t, 0, PlanReport(nil).Hooks())
}

func TestFateString(t *testing.T) {
	t.Parallel()
	assert.Equal(t, "skipped", FateSkipped.String())
	assert.Equal(t, "Fate(99)", Fate(99).String())
	b, err := FateDryRun.MarshalText()
	require.NoError(t, err)
	assert.Equal(t, "dry-run", string(b))
}

// A daemon judges a finished plan with Outcome: the fate of the snapshot,
// whether anything went wrong, and a line to log.
func ExamplePlanReport_Outcome() {
	snapshot := NewCallbackHook("zfs snapshot", func(context.Context) error {
		return errors.New("out of space")
	}, nil)
	plan, err := NewPlan(nil, PhaseSnapshot, snapshot, Env{EnvFS: "tank/db"})
	if err != nil {
		panic(err)
	}
	plan.Run(context.Background(), false)
	o := plan.Report().Outcome(RunInfo{})
	fmt.Println(o.Fate, o.HadError())
	fmt.Println(o.Summary("tank/db@daily"))
	// Output:
	// failed true
	// snapshot failed: tank/db@daily: zfs snapshot error: out of space
}

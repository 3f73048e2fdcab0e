package hooks

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A planCase runs testdata/hooks/h1..hN (command hooks) around a callback
// that records itself, and checks the statuses and the order of what ran.
type planCase struct {
	name  string
	hooks []HookConfig      // Path is filled in: hooks[i] runs testdata/hooks/h<i+1>
	env   map[string]string // behaviour, e.g. "h1_pre_snapshot": "fail"
	cbErr error

	wantStatus []StepStatus // in report order
	wantRan    []string     // lines of the record file, in order
	wantErr    []string     // per report step: a substring of the report's Error(), or ""
}

const (
	pend  = StepPending
	ok    = StepOk
	fail  = StepErr
	fatal = StepSkippedDueToFatalErr
	prErr = StepSkippedDueToPreErr
)

func TestPlanRules(t *testing.T) {
	t.Parallel()
	cmd := HookConfig{}
	fatalCmd := HookConfig{ErrIsFatal: true}
	cases := []planCase{
		{
			name:       "no_hooks_runs_only_the_callback",
			wantStatus: []StepStatus{ok},
			wantRan:    []string{"callback"},
		},
		{
			name:       "pre_in_order_then_callback_then_post_in_reverse",
			hooks:      []HookConfig{cmd, cmd, cmd},
			wantStatus: []StepStatus{ok, ok, ok, ok, ok, ok, ok},
			wantRan: []string{"h1 pre_snapshot", "h2 pre_snapshot", "h3 pre_snapshot", "callback",
				"h3 post_snapshot", "h2 post_snapshot", "h1 post_snapshot"},
		},
		{
			name:       "non_fatal_pre_error_continues_and_skips_its_own_post",
			hooks:      []HookConfig{cmd, cmd},
			env:        map[string]string{"h1_pre_snapshot": "fail"},
			wantStatus: []StepStatus{fail, ok, ok, ok, prErr},
			wantRan:    []string{"h1 pre_snapshot", "h2 pre_snapshot", "callback", "h2 post_snapshot"},
			wantErr:    []string{"exit status 1", "", "", "", ""},
		},
		{
			name:       "pre_error_skips_only_its_own_post",
			hooks:      []HookConfig{cmd, cmd, cmd},
			env:        map[string]string{"h2_pre_snapshot": "fail"},
			wantStatus: []StepStatus{ok, fail, ok, ok, ok, prErr, ok},
			wantRan: []string{"h1 pre_snapshot", "h2 pre_snapshot", "h3 pre_snapshot", "callback",
				"h3 post_snapshot", "h1 post_snapshot"},
		},
		{
			name:       "fatal_first_hook_skips_everything",
			hooks:      []HookConfig{fatalCmd, cmd},
			env:        map[string]string{"h1_pre_snapshot": "fail"},
			wantStatus: []StepStatus{fail, fatal, fatal, fatal, fatal},
			wantRan:    []string{"h1 pre_snapshot"},
		},
		{
			name:       "fatal_middle_hook_unwinds_the_earlier_hooks",
			hooks:      []HookConfig{cmd, fatalCmd, cmd},
			env:        map[string]string{"h2_pre_snapshot": "fail"},
			wantStatus: []StepStatus{ok, fail, fatal, fatal, fatal, fatal, ok},
			wantRan:    []string{"h1 pre_snapshot", "h2 pre_snapshot", "h1 post_snapshot"},
		},
		{
			name:       "fatal_error_unwinds_earlier_ok_posts_but_not_earlier_failed_ones",
			hooks:      []HookConfig{cmd, cmd, fatalCmd},
			env:        map[string]string{"h1_pre_snapshot": "fail", "h3_pre_snapshot": "fail"},
			wantStatus: []StepStatus{fail, ok, fail, fatal, fatal, ok, prErr},
			wantRan:    []string{"h1 pre_snapshot", "h2 pre_snapshot", "h3 pre_snapshot", "h2 post_snapshot"},
		},
		{
			name:       "post_errors_never_stop_other_posts_even_for_err_is_fatal_hooks",
			hooks:      []HookConfig{fatalCmd, fatalCmd, fatalCmd},
			env:        map[string]string{"h3_post_snapshot": "fail", "h2_post_snapshot": "fail"},
			wantStatus: []StepStatus{ok, ok, ok, ok, fail, fail, ok},
			wantRan: []string{"h1 pre_snapshot", "h2 pre_snapshot", "h3 pre_snapshot", "callback",
				"h3 post_snapshot", "h2 post_snapshot", "h1 post_snapshot"},
		},
		{
			name:       "callback_error_does_not_stop_the_posts",
			hooks:      []HookConfig{cmd},
			cbErr:      errors.New("zfs snapshot failed"),
			wantStatus: []StepStatus{ok, fail, ok},
			wantRan:    []string{"h1 pre_snapshot", "callback", "h1 post_snapshot"},
			wantErr:    []string{"", "snapshot error: zfs snapshot failed", ""},
		},
		{
			name:       "post_on_pre_error_runs_the_post_after_a_failed_pre",
			hooks:      []HookConfig{{PostOnPreError: true}, cmd},
			env:        map[string]string{"h1_pre_snapshot": "fail"},
			wantStatus: []StepStatus{fail, ok, ok, ok, ok},
			wantRan:    []string{"h1 pre_snapshot", "h2 pre_snapshot", "callback", "h2 post_snapshot", "h1 post_snapshot"},
		},
		{
			name:       "post_on_pre_error_runs_the_post_after_a_fatal_pre",
			hooks:      []HookConfig{cmd, {ErrIsFatal: true, PostOnPreError: true}, cmd},
			env:        map[string]string{"h2_pre_snapshot": "fail"},
			wantStatus: []StepStatus{ok, fail, fatal, fatal, fatal, ok, ok},
			wantRan:    []string{"h1 pre_snapshot", "h2 pre_snapshot", "h2 post_snapshot", "h1 post_snapshot"},
		},
		{
			name:       "post_on_pre_error_does_not_run_the_post_of_a_pre_that_never_ran",
			hooks:      []HookConfig{fatalCmd, {PostOnPreError: true}},
			env:        map[string]string{"h1_pre_snapshot": "fail"},
			wantStatus: []StepStatus{fail, fatal, fatal, fatal, fatal},
			wantRan:    []string{"h1 pre_snapshot"},
		},
		{
			name:       "timeout_is_an_error_that_says_so",
			hooks:      []HookConfig{{Timeout: 2 * time.Second}, cmd},
			env:        map[string]string{"h1_pre_snapshot": "sleep"},
			wantStatus: []StepStatus{fail, ok, ok, ok, prErr},
			wantRan:    []string{"h1 pre_snapshot", "h2 pre_snapshot", "callback", "h2 post_snapshot"},
			wantErr:    []string{"timed out after 2s: signal: terminated", "", "", "", ""},
		},
		{
			name:       "post_timeout_is_an_error_that_says_so",
			hooks:      []HookConfig{{Timeout: time.Second}},
			env:        map[string]string{"h1_post_snapshot": "sleep"},
			wantStatus: []StepStatus{ok, ok, fail},
			wantRan:    []string{"h1 pre_snapshot", "callback", "h1 post_snapshot"},
			wantErr:    []string{"", "", "timed out after 1s: signal: terminated"},
		},
		{
			name:       "fatal_timeout_unwinds",
			hooks:      []HookConfig{cmd, {Timeout: time.Second, ErrIsFatal: true}},
			env:        map[string]string{"h2_pre_snapshot": "sleep"},
			wantStatus: []StepStatus{ok, fail, fatal, fatal, ok},
			wantRan:    []string{"h1 pre_snapshot", "h2 pre_snapshot", "h1 post_snapshot"},
			wantErr:    []string{"", "timed out after 1s", "", "", ""},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			runPlanCase(t, c)
		})
	}
}

func runPlanCase(t *testing.T, c planCase) {
	record := filepath.Join(t.TempDir(), "record")
	var list List
	for i, hc := range c.hooks {
		list = append(list, newCommandHook(t, "h"+string(rune('1'+i)), hc))
	}
	fs, err := NewDatasetPath("tank/db")
	require.NoError(t, err)
	cb := NewCallbackHookForFilesystem("snapshot", fs, func(ctx context.Context) error {
		f, err := os.OpenFile(record, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		defer f.Close()
		if _, err := f.WriteString("callback\n"); err != nil {
			return err
		}
		return c.cbErr
	})
	env := Env{EnvFS: "tank/db", EnvSnapshot: "snap1", "RECORD": record}
	for k, v := range c.env {
		env[HookEnvVar(k)] = v
	}
	plan, err := NewPlan(&list, PhaseSnapshot, cb, env)
	require.NoError(t, err)

	before := plan.Report()
	require.Len(t, before, 2*len(c.hooks)+1)
	for _, s := range before {
		assert.Equal(t, pend, s.Status)
	}

	log, logBuf := testLogger()
	plan.Run(WithLogger(context.Background(), log), false)
	rep := plan.Report()

	var got []StepStatus
	for _, s := range rep {
		got = append(got, s.Status)
	}
	assert.Equal(t, c.wantStatus, got, "statuses\n%s", rep)
	ran, _ := os.ReadFile(record)
	assert.Equal(t, c.wantRan, lines(string(ran)), "what ran")
	for i, want := range c.wantErr {
		if want == "" {
			continue
		}
		require.NotNil(t, rep[i].Report, "step %d", i+1)
		assert.Contains(t, rep[i].Report.Error(), want, "step %d", i+1)
	}

	wantFatal, wantErr := false, false
	for _, s := range c.wantStatus {
		wantFatal = wantFatal || s == fatal
		wantErr = wantErr || s == fail
	}
	assert.Equal(t, wantErr, rep.HadError(), "HadError")
	assert.Equal(t, wantFatal, rep.HadFatalError(), "HadFatalError")
	for _, s := range rep {
		switch s.Status {
		case ok, fail:
			assert.False(t, s.Begin.IsZero() || s.End.Before(s.Begin), "times of %s", s)
			assert.NotNil(t, s.Report)
		default:
			assert.True(t, s.Begin.IsZero() && s.Report == nil, "skipped step has no times or report: %s", s)
		}
	}
	if wantFatal {
		assert.Contains(t, logBuf.String(), "level=ERROR")
	}
}

// lines splits s into its lines, without the trailing newline.
func lines(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}

func TestPlanHookFilteredOutDoesNotRun(t *testing.T) {
	t.Parallel()
	record := filepath.Join(t.TempDir(), "record")
	list := List{
		newCommandHook(t, "h1", HookConfig{Filesystems: map[string]bool{"tank<": true, "tank/db": false}}),
		newCommandHook(t, "h2", HookConfig{Filesystems: map[string]bool{"tank/db": true}}),
		newCommandHook(t, "h3", HookConfig{Filesystems: map[string]bool{"zroot<": true}}),
	}
	fs, err := NewDatasetPath("tank/db")
	require.NoError(t, err)
	filtered, err := list.CopyFilteredForFilesystem(fs)
	require.NoError(t, err)
	require.Len(t, filtered, 1)
	assert.Same(t, list[1], filtered[0], "hooks are shared, not copied")

	cb := NewCallbackHookForFilesystem("snapshot", fs, func(context.Context) error { return nil })
	plan, err := NewPlan(&filtered, PhaseSnapshot, cb, Env{EnvFS: fs.ToString(), "RECORD": record})
	require.NoError(t, err)
	plan.Run(context.Background(), false)
	assert.Equal(t, []string{"h2 pre_snapshot", "h2 post_snapshot"}, lines(readFile(t, record)))
}

func TestPlanDryRunReachesTheScript(t *testing.T) {
	t.Parallel()
	list := List{newCommandHook(t, "env", HookConfig{})}
	fs, err := NewDatasetPath("tank/db")
	require.NoError(t, err)
	cb := NewCallbackHookForFilesystem("snapshot", fs, func(context.Context) error { return nil })
	plan, err := NewPlan(&list, PhaseSnapshot, cb, Env{EnvFS: "tank/db", EnvSnapshot: "snap"})
	require.NoError(t, err)
	plan.Run(context.Background(), true)
	rep := plan.Report()
	for _, i := range []int{0, 2} {
		out := string(rep[i].Report.(*CommandHookReport).CapturedStdoutStderrCombined)
		assert.Contains(t, out, "ZREPL_DRYRUN=true\n")
		assert.Contains(t, out, "ZREPL_FS=tank/db\n")
		assert.Contains(t, out, "ZREPL_SNAPNAME=snap\n")
	}
	assert.Contains(t, string(rep[0].Report.(*CommandHookReport).CapturedStdoutStderrCombined), "ZREPL_HOOKTYPE=pre_snapshot\n")
	assert.Contains(t, string(rep[2].Report.(*CommandHookReport).CapturedStdoutStderrCombined), "ZREPL_HOOKTYPE=post_snapshot\n")
}

package hooks

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// envWithout returns a copy of env without keys.
func envWithout(env Env, keys ...HookEnvVar) Env {
	out := copyEnv(env)
	for _, k := range keys {
		delete(out, k)
	}
	return out
}

// manyDatasets returns n dataset names of 28 bytes under tank.
func manyDatasets(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("tank/data/set-%014d", i)
	}
	return out
}

// scopeOf returns a Scope of the datasets names.
func scopeOf(t testing.TB, names []string) Scope {
	t.Helper()
	s := Scope{Datasets: make([]Dataset, len(names))}
	for i, n := range names {
		p, err := NewDatasetPath(n)
		require.NoError(t, err)
		s.Datasets[i] = p
	}
	return s
}

// privateTempDir points os.TempDir at a new empty directory for the test,
// where a plan makes the directory of its dataset lists.
func privateTempDir(t *testing.T) string {
	dir := t.TempDir()
	t.Setenv("TMPDIR", dir)
	return dir
}

// requireEmptyDir fails unless dir holds nothing.
func requireEmptyDir(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Empty(t, entries, "the plan left files in %s", dir)
}

// runFSListPlan runs a job plan of datasets with the hook fs-list-file
// (matching every dataset) and fs-list-file as the callback program, each
// expecting wantLines lines and ZREPL_FS_LIST set as wantEnvList says. It
// returns the report and the paths of the lists they saw.
func runFSListPlan(t *testing.T, datasets []string, wantEnvList bool) (PlanReport, []string) {
	t.Helper()
	tmp := privateTempDir(t)
	seen := filepath.Join(t.TempDir(), "seen")
	envList := "unset"
	if wantEnvList {
		envList = "set"
	}
	extra := Env{EnvSnapshot: "s1", "WANT_LINES": fmt.Sprint(len(datasets)), "WANT_ENV_LIST": envList, "SEEN": seen}
	hook := newCommandHook(t, "fs-list-file", HookConfig{Filesystems: map[string]bool{"tank<": true}})
	list := List{hook}
	cb := NewCallbackHook("snapshot", NewCommandCallback("snapshot", hookPath(t, "fs-list-file"), nil, nil, 0), nil)
	p, err := NewJobPlan(&list, PhaseSnapshot, cb, scopeOf(t, datasets), extra)
	require.NoError(t, err)
	p.Run(context.Background(), false)
	rep := p.Report()
	b, err := os.ReadFile(seen)
	require.NoError(t, err, "report:\n%s", reportErrors(rep))
	requireEmptyDir(t, tmp)
	return rep, strings.Fields(string(b))
}

// reportErrors returns the errors of the failed steps of rep, one per line.
func reportErrors(rep PlanReport) string {
	var b strings.Builder
	for _, s := range rep {
		if s.Report != nil && s.Report.HadError() {
			fmt.Fprintf(&b, "%s: %s\n", s.Edge, s.Report.Error())
		}
	}
	return b.String()
}

func TestJobPlanOf100000DatasetsRunsEveryHookAndTheCommand(t *testing.T) {
	datasets := manyDatasets(100_000) // 2.9 MB as ZREPL_FS_LIST: 22 times what Linux allows
	rep, seen := runFSListPlan(t, datasets, false)
	for i, s := range rep {
		require.Equal(t, StepOk, s.Status, "step %d: %s", i+1, reportErrors(rep))
	}
	require.Len(t, seen, 3, "the pre edge, the post edge and the command")
	for _, path := range seen {
		_, err := os.Stat(path)
		assert.ErrorIs(t, err, os.ErrNotExist, "the list outlived the plan")
	}
	cb, _ := rep.Callback()
	assert.Len(t, cb.Datasets, 100_000)
}

func TestSmallJobPlanSetsTheListInBothAndTheyAgree(t *testing.T) {
	rep, seen := runFSListPlan(t, []string{"tank/db", "tank/log", "tank/www"}, true)
	assert.False(t, rep.HadError(), reportErrors(rep))
	assert.Len(t, seen, 3)
}

// listHook is a Go hook that reads its EnvFSListFile while it runs, and can
// panic.
type listHook struct {
	filteredHook
	panics bool
	seen   []string // the lines of the file, by Pre
	path   string
	modes  [2]os.FileMode // of the file and its directory
}

func (h *listHook) Run(ctx context.Context, e Edge, p Phase, dry bool, extra Env, state map[interface{}]interface{}) HookReport {
	if e == Pre {
		h.path = extra[EnvFSListFile]
		b, err := os.ReadFile(h.path)
		if err != nil {
			return &CallbackHookReport{Name: h.name, Err: err}
		}
		h.seen = strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
		for i, p := range []string{h.path, filepath.Dir(h.path)} {
			fi, err := os.Stat(p)
			if err != nil {
				return &CallbackHookReport{Name: h.name, Err: err}
			}
			h.modes[i] = fi.Mode()
		}
		if h.panics {
			panic("hook panics while the list exists")
		}
	}
	return &CallbackHookReport{Name: h.name}
}

func newListHook(t testing.TB, name string, patterns map[string]bool) *listHook {
	return &listHook{filteredHook: *newFilteredHook(t, name, patterns)}
}

func TestFSListFileOfAHookHasTheDatasetsItMatched(t *testing.T) {
	tmp := privateTempDir(t)
	all := newListHook(t, "all", map[string]bool{"tank<": true})
	some := newListHook(t, "some", map[string]bool{"tank/log": true, "tank/www": true})
	list := List{all, some}
	var cbFile string
	var cbList []byte
	cb := NewCallbackHook("snapshot", func(ctx context.Context) (err error) {
		cbFile = CallbackEnv(ctx)[EnvFSListFile]
		cbList, err = os.ReadFile(cbFile)
		return err
	}, nil)
	p, err := NewJobPlan(&list, PhaseSnapshot, cb, scopeOf(t, []string{"tank/db", "tank/log", "tank/www"}), nil)
	require.NoError(t, err)
	p.Run(context.Background(), false)
	require.False(t, p.Report().HadError(), reportErrors(p.Report()))

	assert.Equal(t, []string{"tank/db", "tank/log", "tank/www"}, all.seen)
	assert.Equal(t, []string{"tank/log", "tank/www"}, some.seen)
	assert.Equal(t, "tank/db\ntank/log\ntank/www\n", string(cbList))
	assert.Equal(t, cbFile, all.path, "a hook that matched every dataset shares the callback's file")
	assert.NotEqual(t, cbFile, some.path)
	requireEmptyDir(t, tmp)
}

func TestFSListFileIsPrivateUnderAPermissiveUmask(t *testing.T) {
	privateTempDir(t)
	old := syscall.Umask(0)
	t.Cleanup(func() { syscall.Umask(old) })
	h := newListHook(t, "h", map[string]bool{"<": true})
	list := List{h}
	p, err := NewJobPlan(&list, PhaseSnapshot, benchNoCallback(), scopeOf(t, []string{"tank/db", "tank/log"}), nil)
	require.NoError(t, err)
	p.Run(context.Background(), false)
	require.False(t, p.Report().HadError(), reportErrors(p.Report()))
	assert.Equal(t, os.FileMode(0o600), h.modes[0].Perm(), "file")
	assert.Equal(t, os.FileMode(0o700), h.modes[1].Perm(), "directory")
	assert.True(t, h.modes[1].IsDir())
}

func TestFSListFileIsRemovedOnEveryPath(t *testing.T) {
	twoDatasets := []string{"tank/db", "tank/log"}
	t.Run("a_plan_that_never_runs_writes_nothing", func(t *testing.T) {
		tmp := privateTempDir(t)
		list := List{newListHook(t, "h", map[string]bool{"<": true})}
		_, err := NewJobPlan(&list, PhaseSnapshot, benchNoCallback(), scopeOf(t, twoDatasets), nil)
		require.NoError(t, err)
		requireEmptyDir(t, tmp)
	})
	t.Run("a_hook_that_panics", func(t *testing.T) {
		tmp := privateTempDir(t)
		h := newListHook(t, "h", map[string]bool{"<": true})
		h.panics = true
		list := List{h}
		p, err := NewJobPlan(&list, PhaseSnapshot, benchNoCallback(), scopeOf(t, twoDatasets), nil)
		require.NoError(t, err)
		p.Run(context.Background(), false)
		assert.Contains(t, p.Report()[0].Report.Error(), "panic")
		assert.Equal(t, twoDatasets, h.seen)
		requireEmptyDir(t, tmp)
	})
	t.Run("a_cancelled_plan", func(t *testing.T) {
		tmp := privateTempDir(t)
		list := List{newListHook(t, "h", map[string]bool{"<": true})}
		p, err := NewJobPlan(&list, PhaseSnapshot, benchNoCallback(), scopeOf(t, twoDatasets), nil)
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		p.Run(ctx, false)
		assert.True(t, p.Report().HadFatalError())
		requireEmptyDir(t, tmp)
	})
	t.Run("a_callback_that_panics", func(t *testing.T) {
		tmp := privateTempDir(t)
		list := List{newListHook(t, "h", map[string]bool{"<": true})}
		cb := NewCallbackHook("snapshot", func(context.Context) error { panic("boom") }, nil)
		p, err := NewJobPlan(&list, PhaseSnapshot, cb, scopeOf(t, twoDatasets), nil)
		require.NoError(t, err)
		p.Run(context.Background(), false)
		assert.True(t, p.Report().HadError())
		requireEmptyDir(t, tmp)
	})
}

func TestFSListFileThatCannotBeWrittenFailsThePlanBeforeAnyHook(t *testing.T) {
	t.Setenv("TMPDIR", filepath.Join(t.TempDir(), "missing"))
	h := newListHook(t, "h", map[string]bool{"<": true})
	list := List{h}
	p, err := NewJobPlan(&list, PhaseSnapshot, benchNoCallback(), scopeOf(t, []string{"tank/db", "tank/log"}), nil)
	require.NoError(t, err)
	p.Run(context.Background(), false)
	rep := p.Report()
	assert.Nil(t, h.seen, "no hook runs")
	assert.Equal(t, []StepStatus{StepSkippedDueToFatalErr, StepErr, StepSkippedDueToFatalErr}, statuses(rep))
	assert.True(t, rep.HadError())
	assert.True(t, rep.HadFatalError())
	assert.Contains(t, rep[1].Report.Error(), "ZREPL_FS_LIST_FILE")
}

func TestOneDatasetPlansGetNoListFile(t *testing.T) {
	tmp := privateTempDir(t)
	h := newFilteredHook(t, "h", map[string]bool{"<": true})
	list := List{h}
	p, err := NewJobPlan(&list, PhaseSnapshot, benchNoCallback(), scopeOf(t, []string{"tank/db"}), nil)
	require.NoError(t, err)
	p.Run(context.Background(), false)
	assert.Equal(t, Env{EnvFS: "tank/db", EnvFSList: "tank/db"}, h.env(Pre))
	requireEmptyDir(t, tmp)
}

func TestFSListEnvIsSetWhileItFits(t *testing.T) {
	// As many names of 63 bytes as fit in "ZREPL_FS_LIST=a\nb..." of
	// MaxFSListEnv bytes, and one more.
	name := func(i int) string { return fmt.Sprintf("tank/%058d", i) }
	var fits []string
	for n := len(EnvFSList); ; { // and "=" and a newline per name, less the last
		d := name(len(fits))
		if n+len(d)+1 > MaxFSListEnv {
			break
		}
		n += len(d) + 1
		fits = append(fits, d)
	}
	over := append(append([]string(nil), fits...), name(len(fits)))

	v, ok := fsListEnv(fits)
	require.True(t, ok)
	assert.LessOrEqual(t, len(EnvFSList)+1+len(v), MaxFSListEnv)
	assert.Greater(t, len(EnvFSList)+1+len(v)+64, MaxFSListEnv, "one more name would not fit")
	_, ok = fsListEnv(over)
	assert.False(t, ok)

	for _, tt := range []struct {
		name     string
		datasets []string
		want     bool
	}{{"at_the_bound", fits, true}, {"one_dataset_over", over, false}} {
		t.Run(tt.name, func(t *testing.T) {
			privateTempDir(t)
			h := newListHook(t, "h", map[string]bool{"<": true})
			list := List{h}
			var cbEnv Env
			cb := NewCallbackHook("snapshot", func(ctx context.Context) error { cbEnv = copyEnv(CallbackEnv(ctx)); return nil }, nil)
			p, err := NewJobPlan(&list, PhaseSnapshot, cb, scopeOf(t, tt.datasets), nil)
			require.NoError(t, err)
			p.Run(context.Background(), false)
			require.False(t, p.Report().HadError(), reportErrors(p.Report()))
			_, set := cbEnv[EnvFSList]
			assert.Equal(t, tt.want, set)
			assert.Equal(t, tt.datasets, h.seen)
			assert.NotEmpty(t, cbEnv[EnvFSListFile])
		})
	}
}

func TestTextAndLogsNameTheFirstTenDatasetsOfAHugeScope(t *testing.T) {
	privateTempDir(t)
	hooks := List{&testHook{name: "a"}}
	p, err := NewJobPlan(&hooks, PhaseSnapshot, benchNoCallback(), scopeOf(t, manyDatasets(100_000)), nil)
	require.NoError(t, err)
	logger, logs := testLogger()
	p.Run(WithLogger(context.Background(), logger), false)
	rep := p.Report()
	want := "tank/data/set-00000000000009 and 99990 more"
	for _, line := range strings.Split(rep.String(), "\n") {
		assert.Less(t, len(line), 1000)
		assert.Contains(t, line, "(tank/data/set-00000000000000, tank/data/set-00000000000001, ")
		assert.Contains(t, line, want+")")
	}
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		assert.Less(t, len(line), 1000)
		assert.Contains(t, line, `datasets="tank/data/set-00000000000000,`)
	}
	js, err := json.Marshal(rep[1])
	require.NoError(t, err)
	assert.Greater(t, len(js), 100_000*28, "JSON lists every dataset")
}

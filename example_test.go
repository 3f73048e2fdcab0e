package hooks_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/snaphooks/hooks"
)

// A daemon's view: parse the hook list once, then per filesystem filter it,
// wrap the snapshot in a plan, run it and read the report. The hooks are the
// sample script testdata/example-hooks/template.sh and /bin/false, which
// fails; neither is err_is_fatal, so the snapshot is still taken.
func ExampleNewPlan() {
	template, err := filepath.Abs(filepath.Join("testdata", "example-hooks", "template.sh"))
	if err != nil {
		panic(err)
	}
	cfg := hooks.HookList{
		{Type: hooks.TypeCommand, Path: template},
		{Type: hooks.TypeCommand, Path: "/bin/false", Filesystems: map[string]bool{"tank/db<": true}},
		{Type: hooks.TypeCommand, Path: "/bin/true", Filesystems: map[string]bool{"zroot<": true}},
	}
	list, err := hooks.ListFromConfig(&cfg)
	if err != nil {
		panic(err)
	}

	fs, err := hooks.NewDatasetPath("tank/db")
	if err != nil {
		panic(err)
	}
	fsHooks, err := list.CopyFilteredForFilesystem(fs) // drops the zroot hook
	if err != nil {
		panic(err)
	}
	snapshot := hooks.NewCallbackHookForFilesystem("zfs snapshot", fs, func(ctx context.Context) error {
		fmt.Println("zfs snapshot tank/db@daily") // a real daemon takes the snapshot here
		return nil
	})
	plan, err := hooks.NewPlan(&fsHooks, hooks.PhaseSnapshot, snapshot,
		hooks.Env{hooks.EnvFS: fs.ToString(), hooks.EnvSnapshot: "daily"})
	if err != nil {
		panic(err)
	}

	plan.Run(context.Background(), false)

	rep := plan.Report()
	for i, s := range rep {
		fmt.Printf("%02d %-8s %-18s %s\n", i+1, s.Edge, s.Status, filepath.Base(s.Hook.String()))
	}
	fmt.Println("had error:", rep.HadError(), "- had fatal error:", rep.HadFatalError())
	// Output:
	// zfs snapshot tank/db@daily
	// 01 Pre      Ok                 template.sh
	// 02 Pre      Err                false
	// 03 Callback Ok                 zfs snapshot
	// 04 Post     SkippedDueToPreErr false
	// 05 Post     Ok                 template.sh
	// had error: true - had fatal error: false
}

// lockHook is a Hook written in Go: its Pre edge takes a lock (or fails, if
// told to), which it hands to its Post edge in the state map.
type lockHook struct {
	name    string
	failPre bool
}

func (h lockHook) Filesystems() hooks.Filter {
	f, err := hooks.DatasetMapFilterFromConfig(map[string]bool{"<": true})
	if err != nil {
		panic(err)
	}
	return f
}

func (h lockHook) ErrIsFatal() bool { return true }

func (h lockHook) String() string { return h.name }

func (h lockHook) Run(ctx context.Context, edge hooks.Edge, phase hooks.Phase, dryRun bool, extra hooks.Env, state map[interface{}]interface{}) hooks.HookReport {
	switch edge {
	case hooks.Pre:
		if h.failPre {
			fmt.Printf("%s: cannot lock %s\n", h.name, extra[hooks.EnvFS])
			return lockReport{errors.New("cannot lock")}
		}
		state["lock"] = "lock on " + extra[hooks.EnvFS]
		fmt.Printf("%s: took the %s\n", h.name, state["lock"])
	case hooks.Post:
		fmt.Printf("%s: released the %s\n", h.name, state["lock"])
	}
	return lockReport{}
}

type lockReport struct{ err error }

func (r lockReport) String() string {
	if r.err != nil {
		return r.err.Error()
	}
	return "ok"
}
func (r lockReport) HadError() bool { return r.err != nil }
func (r lockReport) Error() string {
	if r.err != nil {
		return r.err.Error()
	}
	return ""
}

// Any type that implements Hook can join a plan. Here a hook that is
// err_is_fatal fails its Pre edge: the snapshot is skipped, and the hook
// before it still releases its lock, in its Post edge.
func ExampleHook() {
	list := hooks.List{lockHook{name: "app"}, lockHook{name: "db", failPre: true}}
	fs, _ := hooks.NewDatasetPath("tank/db")
	snapshot := hooks.NewCallbackHookForFilesystem("zfs snapshot", fs, func(ctx context.Context) error {
		fmt.Println("snapshot") // not reached
		return nil
	})
	plan, err := hooks.NewPlan(&list, hooks.PhaseSnapshot, snapshot, hooks.Env{hooks.EnvFS: "tank/db"})
	if err != nil {
		panic(err)
	}
	plan.Run(context.Background(), false)
	for _, s := range plan.Report() {
		fmt.Printf("%-8s %-12s %s\n", s.Edge, s.Hook, s.Status)
	}
	// Output:
	// app: took the lock on tank/db
	// db: cannot lock tank/db
	// app: released the lock on tank/db
	// Pre      app          Ok
	// Pre      db           Err
	// Callback zfs snapshot SkippedDueToFatalErr
	// Post     db           SkippedDueToFatalErr
	// Post     app          Ok
}

// Report may be called at any time, from any goroutine: before Run every
// step is Pending; a status display polls it while Run runs.
func ExamplePlan_Report() {
	list := hooks.List{lockHook{name: "app"}}
	fs, _ := hooks.NewDatasetPath("tank/db")
	snapshot := hooks.NewCallbackHookForFilesystem("zfs snapshot", fs, func(ctx context.Context) error { return nil })
	plan, err := hooks.NewPlan(&list, hooks.PhaseSnapshot, snapshot, hooks.Env{hooks.EnvFS: "tank/db"})
	if err != nil {
		panic(err)
	}
	fmt.Println(plan.Report())

	done := make(chan struct{})
	go func() {
		defer close(done)
		plan.Run(context.Background(), false)
	}()
	// Here a status display would show plan.Report() every few hundred
	// milliseconds until done is closed.
	<-done

	for _, s := range plan.Report() {
		fmt.Println(s.Edge, s.Status, s.End.Sub(s.Begin) >= 0)
	}
	// Output:
	// 01 [Pending] [  ...] ! [Pre]  app
	// 02 [Pending] [  ...] ~ [Callback]  zfs snapshot
	// 03 [Pending] [  ...] ~ [Post]  app
	// app: took the lock on tank/db
	// app: released the lock on tank/db
	// Pre Ok true
	// Callback Ok true
	// Post Ok true
}

// ListFromConfig turns a hook list built in Go (or parsed by ParseHookList)
// into hooks, with the defaults applied; CopyFilteredForFilesystem then picks
// the hooks of one dataset.
func ExampleListFromConfig() {
	cfg := hooks.HookList{
		{Type: hooks.TypeCommand, Path: "/etc/snaphook/hooks/freeze-app.sh", ErrIsFatal: true,
			Filesystems: map[string]bool{"tank/db<": true}},
		{Type: hooks.TypeCommand, Path: "/etc/snaphook/hooks/template.sh",
			Filesystems: map[string]bool{"tank<": true, "tank/tmp<": false}},
		{Type: hooks.TypeCommand, Path: "/etc/snaphook/hooks/notify.sh"}, // every dataset
	}
	list, err := hooks.ListFromConfig(&cfg)
	if err != nil {
		panic(err)
	}
	for _, name := range []string{"tank/db", "tank/tmp", "zroot"} {
		fs, _ := hooks.NewDatasetPath(name)
		fsHooks, _ := list.CopyFilteredForFilesystem(fs)
		fmt.Printf("%s: %v\n", name, fsHooks)
	}

	cfg = append(cfg, hooks.HookConfig{Type: hooks.TypeCommand, Path: "notify.sh"})
	_, err = hooks.ListFromConfig(&cfg)
	fmt.Println(err)
	// Output:
	// tank/db: [/etc/snaphook/hooks/freeze-app.sh /etc/snaphook/hooks/template.sh /etc/snaphook/hooks/notify.sh]
	// tank/tmp: [/etc/snaphook/hooks/notify.sh]
	// zroot: [/etc/snaphook/hooks/notify.sh]
	// create hook #4: path: "notify.sh" is not absolute
}

// The example config of the repository, and the structured errors of a
// broken one: each is a *ConfigError with the hook number, field and line.
func ExampleParseHookList_file() {
	data, err := os.ReadFile(filepath.Join("testdata", "example.yml"))
	if err != nil {
		panic(err)
	}
	cfg, err := hooks.ParseHookList(data)
	if err != nil {
		panic(err)
	}
	for i, c := range cfg {
		fmt.Printf("#%d %s\n", i+1, c.WithDefaults())
	}

	_, err = hooks.ParseHookList([]byte(`hooks:
  - type: command
    path: freeze-app.sh
    timeout: -1s
`))
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var ce *hooks.ConfigError
		if errors.As(e, &ce) {
			fmt.Printf("line %d, hook #%d, field %s: %v\n", ce.Line, ce.Hook, ce.Field, ce.Err)
		}
	}
	// Output:
	// #1 type=command path=/etc/snaphook/hooks/freeze-app.sh timeout=10s err_is_fatal=true post_on_pre_error=true filesystems="{\"tank/db<\": true}"
	// #2 type=command path=/etc/snaphook/hooks/template.sh timeout=30s err_is_fatal=false post_on_pre_error=false filesystems="{\"tank/tmp<\": false, \"tank<\": true}"
	// line 3, hook #1, field path: "freeze-app.sh" is not absolute
	// line 4, hook #1, field timeout: -1s is negative
}

// The filter of the filesystems key: an exact pattern wins over a subtree
// pattern ("<"), and the longest subtree pattern wins over shorter ones.
func ExampleDatasetMapFilter() {
	f, err := hooks.DatasetMapFilterFromConfig(map[string]bool{
		"tank<":        true,
		"tank/foo<":    false,
		"tank/foo/bar": true,
	})
	if err != nil {
		panic(err)
	}
	fmt.Println(f)
	for _, name := range []string{"tank/foo/bar/loo", "tank/bar", "tank/foo/bar", "zroot", "tank/var/log"} {
		p, _ := hooks.NewDatasetPath(name)
		pass, _ := f.Filter(p)
		fmt.Printf("%-16s %v\n", name, pass)
	}
	// Output:
	// {"tank/foo/bar": true, "tank/foo<": false, "tank<": true}
	// tank/foo/bar/loo false
	// tank/bar         true
	// tank/foo/bar     true
	// zroot            false
	// tank/var/log     true
}

// The logfmt handler that the snaphook command logs with. Dropping the time
// makes the output reproducible.
func ExampleNewLogfmtHandler() {
	noTime := func(groups []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey && len(groups) == 0 {
			return slog.Attr{}
		}
		return a
	}
	log := slog.New(hooks.NewLogfmtHandler(os.Stdout, &slog.HandlerOptions{ReplaceAttr: noTime}))
	log.Info("hook output", "hook", "/etc/snaphook/hooks/template.sh", "edge", hooks.Pre, "stdout", `say "cheese"`)
	// Output:
	// level=INFO msg="hook output" hook=/etc/snaphook/hooks/template.sh edge=Pre stdout="say \"cheese\""
}

// A report in logfmt, one line per step, for a log file or anything else that
// reads logfmt. Here the snapshot fails, so its step carries the error; the
// times are set to fixed values only to make the output reproducible.
func ExamplePlanReport_WriteLogfmt() {
	list := hooks.List{lockHook{name: "app"}}
	fs, _ := hooks.NewDatasetPath("tank/db")
	snapshot := hooks.NewCallbackHookForFilesystem("zfs snapshot", fs, func(ctx context.Context) error {
		return errors.New("dataset is busy")
	})
	plan, err := hooks.NewPlan(&list, hooks.PhaseSnapshot, snapshot, hooks.Env{hooks.EnvFS: "tank/db"})
	if err != nil {
		panic(err)
	}
	plan.Run(context.Background(), false)

	rep := plan.Report()
	at := time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)
	for i := range rep {
		rep[i].Begin, rep[i].End = at, at.Add(3*time.Millisecond)
		at = rep[i].End
	}
	if err := rep.WriteLogfmt(os.Stdout); err != nil {
		panic(err)
	}
	// Output:
	// app: took the lock on tank/db
	// app: released the lock on tank/db
	// step=1 edge=Pre status=Ok hook=app fatal=true begin=2026-11-25T08:00:00Z end=2026-11-25T08:00:00.003Z duration=3ms datasets=tank/db report=ok
	// step=2 edge=Callback status=Err hook="zfs snapshot" fatal=false begin=2026-11-25T08:00:00.003Z end=2026-11-25T08:00:00.006Z duration=3ms datasets=tank/db consistency=application report="zfs snapshot error: dataset is busy" error="zfs snapshot error: dataset is busy"
	// step=3 edge=Post status=Ok hook=app fatal=false begin=2026-11-25T08:00:00.006Z end=2026-11-25T08:00:00.009Z duration=3ms datasets=tank/db report=ok
}

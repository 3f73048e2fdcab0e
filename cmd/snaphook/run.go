package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/snaphooks/hooks"
)

// runAbout is the help of run between its usage and its flags.
const runAbout = `Runs the hooks of FILE whose filesystems match DATASET around CMD, as a
stack: the pre_snapshot edges in the order of FILE, then CMD, then the
post_snapshot edges in reverse order. With several --fs, a hook that matches
any of them runs once, around one CMD that snapshots them all (zfs snapshot
a@S b@S is atomic within a pool); with -r, a hook runs when its filesystems
match DATASET or any dataset below it (zfs snapshot -r). The post edge of a
hook runs if its pre edge succeeded (with post_on_pre_error: if it ran at
all), also when CMD fails, when a later pre edge fails fatally, and when
snaphook is interrupted.

CMD takes the snapshot. It runs without a shell, in a process group of its
own, with stdin from /dev/null and the environment of snaphook plus, as for
the hooks, ZREPL_FS=DATASET (the first --fs), ZREPL_FS_LIST (every --fs, one
per line, while it fits in 64 KiB), ZREPL_SNAPNAME=NAME and ZREPL_DRYRUN
("true" or empty). Each hook gets ZREPL_FS and ZREPL_FS_LIST of the datasets
it matched. With more than one --fs, each also gets ZREPL_FS_LIST_FILE, a
private file with the same list, however long. CMD gets ZREPL_CONSISTENCY:
"application" if a hook ran and every pre edge succeeded, else "crash".
So a typical CMD is
  sh -c 'zfs snapshot -o com.example:consistency="$ZREPL_CONSISTENCY" "$ZREPL_FS@$ZREPL_SNAPNAME"'
Its output is logged line by line, like a hook's.

Logs go to stderr as logfmt. The report, one line per step, goes to stdout
at the end, followed by the report of each failed step and the last lines
of its output. While snaphook runs with stdout on a terminal, a status line
shows the running step and how long it has been running.

With --quiet, as for cron, snaphook prints nothing at all when all went
well (exit status 0). Otherwise it prints what it would have printed
without --quiet, at the end: the log on stderr (its last MiB), the report
on stdout.

`

// runSignals is the help of run about signals.
const runSignals = `Signals:
  SIGINT, SIGTERM and SIGHUP cancel the run: no further pre edge runs, CMD is
  not started, or is stopped (SIGTERM to its process group, SIGKILL 5s
  later), and the post edges of the hooks whose pre edge ran still run, each
  bounded by its own timeout (30s by default). Later signals are logged but
  do not cut this cleanup short, so that what a pre edge froze or locked is
  thawed or unlocked; it ends within the sum of those timeouts. SIGKILL
  abandons it (a hook running at that moment keeps running).

`

// snapshotTimeLayout formats the time in generated snapshot names, as zrepl
// does. The "_000" is literal: Go writes fractional seconds only after a dot.
const snapshotTimeLayout = "20060102_150405_000"

// refreshInterval is how often the live view polls the plan's report.
const refreshInterval = 200 * time.Millisecond

// runOptions are the flags of run.
type runOptions struct {
	common            commonFlags
	snapshot, prefix  string
	dryRun, dryRunCmd bool
	timeout           time.Duration
}

// setupRun defines the flags of run.
func setupRun(fset *flag.FlagSet) func([]string, streams) int {
	o := &runOptions{}
	o.common.register(fset, flagConfig, flagScope, flagJSON, flagLogLevel, flagQuiet)
	fset.StringVar(&o.snapshot, "snapshot", "", "the snapshot `NAME`, without \"DATASET@\" (default: PREFIX followed by the UTC time as 20060102_150405_000, the format of zrepl)")
	fset.StringVar(&o.prefix, "prefix", "snaphook_", "the `PREFIX` of a generated snapshot name")
	fset.BoolVar(&o.dryRun, "dry-run", false, "run the hooks with ZREPL_DRYRUN=true, so that they change nothing, and do not run CMD; the report shows the step of CMD as \"(dry run, not run) CMD\" and Ok")
	fset.BoolVar(&o.dryRunCmd, "dry-run-cmd", false, "with --dry-run: run CMD too, with ZREPL_DRYRUN=true, for a CMD that honours it")
	fset.DurationVar(&o.timeout, "timeout", 0, "stop CMD after `DURATION`, e.g. 10m (default 0: never)")
	return o.run
}

// runJob is a run, checked and ready: what the flags and the config said.
type runJob struct {
	scope    hooks.Scope
	datasets []string
	name     string // the snapshot name
	argv     []string
	cmdPath  string
	list     hooks.List
	level    slog.Level
}

// run is the run command, after its flags: check them, load the hooks,
// run the plan, report.
func (o *runOptions) run(argv []string, s streams) int {
	job, code, ok := o.prepare(argv, s)
	if !ok {
		return code
	}
	plan, err := hooks.NewJobPlan(&job.list, hooks.PhaseSnapshot, o.callback(job), job.scope, hooks.Env{hooks.EnvSnapshot: job.name})
	if err != nil {
		return usageError(s, "run", err.Error())
	}
	warnNoHooks("run", o.common.config, job.datasets, job.scope.Recursive, plan, s)
	target := snapshotTarget(job.datasets, job.scope.Recursive, job.name)
	out := o.startOutput(s, target, plan)
	log := slog.New(hooks.NewLogfmtHandler(out.log, &slog.HandlerOptions{Level: job.level}))

	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	sig := watchSignals(ctx, log, cancel)
	log.LogAttrs(ctx, slog.LevelInfo, "run hooks", slog.String("fs", strings.Join(job.datasets, ",")), slog.Bool("recursive", job.scope.Recursive),
		slog.String("snapshot", job.name), slog.Int("hooks", plan.Report().Hooks()), slog.Bool("dry_run", o.dryRun), slog.String("cmd", commandLine(job.argv)))
	plan.Run(hooks.WithLogger(ctx, log), o.dryRun)
	signalName, signalAt := sig.stop()
	out.stopLive()

	rep := plan.Report()
	outcome := rep.Outcome(runInfo(o.dryRun, signalName, signalAt))
	code = exitCodeFor(outcome)
	summary := outcome.Summary(target)
	log.LogAttrs(ctx, slog.LevelInfo, "done", slog.Int("exit_code", code), slog.String("result", summary))
	if o.common.quiet {
		if code == exitOK {
			return code
		}
		out.held.writeTo(s.Stderr)
	}
	if o.common.json {
		o.writeJSON(s, job, rep, outcome, signalName, code, summary)
		return code
	}
	writeTextReport(s.Stdout, rep, summary)
	return code
}

// prepare checks the flags and CMD, and loads the hooks. On error it
// prints it and returns ok=false with the exit code.
func (o *runOptions) prepare(argv []string, s streams) (job runJob, code int, ok bool) {
	fail := func(msg string) (runJob, int, bool) { return runJob{}, usageError(s, "run", msg), false }
	switch {
	case o.common.config == "":
		return fail("missing -c FILE")
	case len(argv) == 0:
		return fail("missing the snapshot command: -- CMD [ARGS...]")
	case o.dryRunCmd && !o.dryRun:
		return fail("--dry-run-cmd needs --dry-run")
	case o.timeout < 0:
		return fail("--timeout must not be negative")
	}
	level, err := o.common.level()
	if err != nil {
		return fail(err.Error())
	}
	scope, err := o.common.scope.scope()
	if err != nil {
		return fail(err.Error())
	}
	name := o.snapshot
	if name == "" {
		name = o.prefix + time.Now().UTC().Format(snapshotTimeLayout)
	}
	if err := checkSnapshotName(name); err != nil {
		return fail(err.Error())
	}
	cfg, list, ok := loadHooks(o.common.config, s)
	if !ok || !trustHooks("run", o.common.config, cfg, s) {
		return runJob{}, exitUsage, false
	}
	// Look CMD up before any hook runs: a typo must not freeze anything.
	cmdPath, err := exec.LookPath(argv[0])
	if err != nil {
		return fail("CMD: " + err.Error())
	}
	warnUntrustedCommand(cmdPath, s)
	return runJob{scope: scope, datasets: scopeNames(scope), name: name, argv: argv, cmdPath: cmdPath, list: list, level: level}, 0, true
}

// callback is the callback step of a run: CMD, or in a dry run without
// --dry-run-cmd a step that only logs that it does not run CMD.
func (o *runOptions) callback(job runJob) *hooks.CallbackHook {
	display := commandLine(job.argv)
	if o.dryRun && !o.dryRunCmd {
		return hooks.NewCallbackHook("(dry run, not run) "+display, func(ctx context.Context) error {
			hooks.GetLogger(ctx).LogAttrs(ctx, slog.LevelInfo, "dry run: not running the snapshot command", slog.String("cmd", display))
			return nil
		}, nil)
	}
	dryRun := ""
	if o.dryRun {
		dryRun = "true"
	}
	// The plan gives CMD the datasets and the snapshot name (and
	// ZREPL_CONSISTENCY), as it gives them to the hooks.
	env := hooks.Env{hooks.EnvDryRun: dryRun}
	return hooks.NewCommandCallbackHook(display, job.cmdPath, job.argv[1:], env, o.timeout)
}

// runOutput is where a run writes while the plan runs: the log, through the
// live view if there is one, or held back by --quiet.
type runOutput struct {
	log  io.Writer
	live *liveView // nil if none
	held *logTail  // with --quiet
}

// startOutput starts the live view, if stdout is a terminal; log records go
// through it when stderr is a terminal too, so that they do not mix with the
// status line. With --quiet, there is no live view and the log is held back.
func (o *runOptions) startOutput(s streams, target string, plan *hooks.Plan) runOutput {
	out := runOutput{log: s.Stderr}
	if o.common.quiet {
		out.held = newLogTail(quietLogLimit)
		out.log = out.held
		return out
	}
	if width, ok := terminalWidth(s.Stdout); ok && os.Getenv("TERM") != "dumb" {
		out.live = startLiveView(s.Stdout, width, refreshInterval, func() string {
			return statusLine(target, plan.Report())
		})
		if _, ok := terminalWidth(s.Stderr); ok {
			out.log = out.live.logWriter(s.Stderr)
		}
	}
	return out
}

// stopLive stops the live view, if there is one.
func (out runOutput) stopLive() {
	if out.live != nil {
		out.live.stop()
	}
}

// writeJSON prints the result of a run as JSON.
func (o *runOptions) writeJSON(s streams, job runJob, rep hooks.PlanReport, outcome hooks.Outcome, signal string, code int, summary string) {
	b, err := json.MarshalIndent(runResult{
		FS:            job.datasets[0],
		Datasets:      job.datasets,
		Recursive:     job.scope.Recursive,
		Snapshot:      job.name,
		DryRun:        o.dryRun,
		Command:       job.argv,
		OK:            code == exitOK,
		HadError:      rep.HadError(),
		HadFatalError: rep.HadFatalError(),
		Skipped:       rep.HadSkip(),
		Fate:          outcome.Fate,
		Signal:        signal,
		ExitCode:      code,
		Result:        summary,
		Steps:         rep,
	}, "", "  ")
	if err != nil { // unreachable: every field encodes
		fmt.Fprintf(s.Stderr, "snaphook run: encode the report: %v\n", err)
		return
	}
	fmt.Fprintf(s.Stdout, "%s\n", b)
}

// runInfo is what a run or a hold knows about its plan beyond the report:
// whether it was a dry run, and the signal that interrupted it, if any.
func runInfo(dryRun bool, signal string, at time.Time) hooks.RunInfo {
	info := hooks.RunInfo{DryRun: dryRun}
	if signal != "" {
		info.Cancel, info.CancelledAt = interruption(signal), at
	}
	return info
}

// exitCodeFor maps the outcome of a finished plan to the exit code of
// snaphook, as exitCodesHelp documents: an error wins over a skip, and a
// skip over a hook error after a snapshot.
func exitCodeFor(o hooks.Outcome) int {
	switch o.Fate {
	case hooks.FateTaken, hooks.FateDryRun:
		if o.HadError() {
			return exitHookError
		}
		return exitOK
	case hooks.FateSkipped:
		if o.HadError() {
			return exitSnapshotFailed
		}
		return exitSkipped
	}
	return exitSnapshotFailed
}

// writeTextReport writes the report as a table, one line per step, then the
// report of each failed step with the last lines of its output, if the hook
// captured any (a command hook), then the summary:
//
//	01 [Err] [  14ms] ! [Pre]  /etc/snaphook/hooks/freeze-app.sh
//	02 [SkippedDueToFatalErr] [   0s] ~ [Callback]  zfs snapshot tank/db@s
//	03 [Ok] [   3ms] ~ [Post]  /etc/snaphook/hooks/freeze-app.sh
//	01 command hook failed with "exit status 3": "ZREPL_DRYRUN='' ... /etc/snaphook/hooks/freeze-app.sh"
//	   output, last 2 lines:
//	   | connecting to /run/app/admin.sock
//	   | cannot reach the admin socket
//	snapshot skipped: tank/db@s: a pre hook with err_is_fatal failed
func writeTextReport(w io.Writer, rep hooks.PlanReport, summary string) {
	fmt.Fprintln(w, sanitize(rep.String()))
	for i, st := range rep {
		if st.Report == nil || st.Status != hooks.StepErr && !hadWarning(st.Report) {
			continue
		}
		fmt.Fprintf(w, "%02d %s\n", i+1, sanitize(st.Report.String()))
		if o, ok := st.Report.(interface{ Output() []byte }); ok {
			writeOutputTail(w, o.Output())
		}
	}
	fmt.Fprintln(w, sanitize(summary))
}

// The bounds of the output of a failed hook in the text report: its last
// outputTailLines lines, of its last outputTailBytes bytes.
const (
	outputTailLines = 10
	outputTailBytes = 4 << 10
)

// writeOutputTail writes the last lines of a hook's output, indented and
// each behind "| ", under a heading that says how many they are. It writes
// nothing for an empty output. A line cut by the byte bound starts with
// "...".
func writeOutputTail(w io.Writer, out []byte) {
	cut := len(out) > outputTailBytes
	if cut {
		out = out[len(out)-outputTailBytes:]
	}
	text := strings.TrimSuffix(string(out), "\n")
	if strings.TrimSpace(text) == "" {
		return
	}
	lines := strings.Split(text, "\n")
	if len(lines) > outputTailLines {
		lines, cut = lines[len(lines)-outputTailLines:], false
	}
	if cut {
		lines[0] = "..." + lines[0]
	}
	fmt.Fprintf(w, "   output, last %s:\n", plural(len(lines), "line", "lines"))
	for _, l := range lines {
		fmt.Fprintf(w, "   | %s\n", sanitize(strings.TrimSuffix(l, "\r")))
	}
}

// runResult is the JSON output of "snaphook run --json".
type runResult struct {
	FS            string           `json:"fs"` // the first dataset
	Datasets      []string         `json:"datasets"`
	Recursive     bool             `json:"recursive"`
	Snapshot      string           `json:"snapshot"`
	DryRun        bool             `json:"dry_run"`
	Command       []string         `json:"command"`
	OK            bool             `json:"ok"`
	HadError      bool             `json:"had_error"`
	HadFatalError bool             `json:"had_fatal_error"`
	Skipped       bool             `json:"skipped"`          // a pre hook asked to skip the snapshot
	Fate          hooks.Fate       `json:"fate"`             // what became of the snapshot: taken, skipped, ...
	Signal        string           `json:"signal,omitempty"` // the first signal received, if any
	ExitCode      int              `json:"exit_code"`
	Result        string           `json:"result"`
	Steps         hooks.PlanReport `json:"steps"`
}

// checkSnapshotName rejects a snapshot name that ZFS would reject: ZFS allows
// letters, digits, "_", "-", ":", "." and " " in a name component.
func checkSnapshotName(name string) error {
	if name == "" {
		return fmt.Errorf("--snapshot: empty snapshot name")
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("_-:. ", r)) {
			return fmt.Errorf("snapshot name %q: %q is not allowed (use letters, digits and _ - : . or space)", name, r)
		}
	}
	return nil
}

// commandLine renders argv as it could have been typed into a POSIX shell.
func commandLine(argv []string) string {
	quoted := make([]string, len(argv))
	for i, a := range argv {
		quoted[i] = shellQuote(a)
	}
	return strings.Join(quoted, " ")
}

// shellQuote quotes s for a POSIX shell if it needs quoting. A string with
// control characters is shown Go-quoted instead, so that it stays on one
// line and no terminal control sequence reaches the screen.
func shellQuote(s string) string {
	if s == "" {
		return "''"
	}
	plain := true
	for _, r := range s {
		switch {
		case r < 0x20 || r == 0x7f:
			return strconv.Quote(s)
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', strings.ContainsRune("/._-+,:@%=", r):
		default:
			plain = false
		}
	}
	if plain {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// sanitize replaces the control characters of s (hooks.IsControl: C0, DEL,
// C1, the bidi controls), except newlines, with "?", so that no text from a
// config or a hook can send a terminal control sequence or a carriage
// return to the screen, or reorder what it shows.
func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r != '\n' && hooks.IsControl(r) {
			return '?'
		}
		return r
	}, s)
}

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
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/snaphooks/hooks"
)

const runHelp = `Usage: snaphook run -c FILE --fs DATASET [--fs DATASET]... [-r] [flags] -- CMD [ARGS...]

Runs the hooks of FILE whose filesystems match DATASET around CMD, as a
stack: the pre_snapshot edges in the order of FILE, then CMD, then the
post_snapshot edges in reverse order. With several --fs, a hook that matches
any of them runs once, around one CMD that snapshots them all (zfs snapshot
a@S b@S is atomic within a pool); with -r, a hook runs when its filesystems
match DATASET or any dataset below it (zfs snapshot -r). The post edge of a hook runs if its
pre edge succeeded (with post_on_pre_error: if it ran at all), also when CMD
fails, when a later pre edge fails fatally, and when snaphook is interrupted.

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

Flags:
  -c, --config FILE    the hook list: YAML, as the "hooks:" of a zrepl job;
                       "-" reads it from stdin
  --fs DATASET         the dataset to snapshot, e.g. tank/db (required); may
                       be repeated for one snapshot of several datasets
  -r, --recursive      each --fs stands for itself and every dataset below it
  --snapshot NAME      the snapshot name, without "DATASET@" (default: PREFIX
                       followed by the UTC time as 20060102_150405_000, the
                       format of zrepl)
  --prefix PREFIX      the prefix of a generated name (default "snaphook_")
  --dry-run            run the hooks with ZREPL_DRYRUN=true, so that they
                       change nothing, and do not run CMD; the report shows
                       the step of CMD as "(dry run, not run) CMD" and Ok
  --dry-run-cmd        with --dry-run: run CMD too, with ZREPL_DRYRUN=true,
                       for a CMD that honours it
  --timeout DURATION   stop CMD after DURATION, e.g. 10m (default 0: never)
  --json               print the report as a JSON object instead of a table
  --log-level LEVEL    debug, info, warn or error (default info)
  -q, --quiet          print nothing if all went well (see above)
  -h, --help           show this help

Signals:
  SIGINT, SIGTERM and SIGHUP cancel the run: no further pre edge runs, CMD is
  not started, or is stopped (SIGTERM to its process group, SIGKILL 5s
  later), and the post edges of the hooks whose pre edge ran still run, each
  bounded by its own timeout (30s by default). Later signals are logged but
  do not cut this cleanup short, so that what a pre edge froze or locked is
  thawed or unlocked; it ends within the sum of those timeouts. SIGKILL
  abandons it (a hook running at that moment keeps running).

` + exitCodesHelp

// snapshotTimeLayout formats the time in generated snapshot names, as zrepl
// does. The "_000" is literal: Go writes fractional seconds only after a dot.
const snapshotTimeLayout = "20060102_150405_000"

// refreshInterval is how often the live view polls the plan's report.
const refreshInterval = 200 * time.Millisecond

type runOptions struct {
	config, snapshot, prefix, logLevel string
	scope                              scopeFlags
	dryRun, dryRunCmd, json, quiet     bool
	timeout                            time.Duration
}

func runCommand(args []string, s streams) int {
	var o runOptions
	fset := flag.NewFlagSet("run", flag.ContinueOnError)
	fset.StringVar(&o.config, "c", "", "")
	fset.StringVar(&o.config, "config", "", "")
	o.scope.register(fset)
	fset.StringVar(&o.snapshot, "snapshot", "", "")
	fset.StringVar(&o.prefix, "prefix", "snaphook_", "")
	fset.BoolVar(&o.dryRun, "dry-run", false, "")
	fset.BoolVar(&o.dryRunCmd, "dry-run-cmd", false, "")
	fset.DurationVar(&o.timeout, "timeout", 0, "")
	fset.BoolVar(&o.json, "json", false, "")
	fset.StringVar(&o.logLevel, "log-level", "info", "")
	fset.BoolVar(&o.quiet, "q", false, "")
	fset.BoolVar(&o.quiet, "quiet", false, "")
	if code, done := parseFlags(fset, args, runHelp, s); done {
		return code
	}
	argv := fset.Args()

	switch {
	case o.config == "":
		return usageError(s, "run", "missing -c FILE")
	case len(argv) == 0:
		return usageError(s, "run", "missing the snapshot command: -- CMD [ARGS...]")
	case o.dryRunCmd && !o.dryRun:
		return usageError(s, "run", "--dry-run-cmd needs --dry-run")
	case o.timeout < 0:
		return usageError(s, "run", "--timeout must not be negative")
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return usageError(s, "run", fmt.Sprintf("--log-level: %q is not one of debug, info, warn, error", o.logLevel))
	}
	scope, err := o.scope.scope()
	if err != nil {
		return usageError(s, "run", err.Error())
	}
	datasets := scopeNames(scope)
	name := o.snapshot
	if name == "" {
		name = o.prefix + time.Now().UTC().Format(snapshotTimeLayout)
	}
	if err := checkSnapshotName(name); err != nil {
		return usageError(s, "run", err.Error())
	}
	_, list, ok := loadHooks(o.config, s)
	if !ok {
		return exitUsage
	}
	// Look CMD up before any hook runs: a typo must not freeze anything.
	cmdPath, err := exec.LookPath(argv[0])
	if err != nil {
		return usageError(s, "run", "CMD: "+err.Error())
	}
	env := hooks.Env{hooks.EnvSnapshot: name} // the plan adds the datasets, for CMD too
	display := commandLine(argv)
	var cb hooks.HookJobCallback
	if o.dryRun && !o.dryRunCmd {
		display = "(dry run, not run) " + display
		cb = func(ctx context.Context) error {
			hooks.GetLogger(ctx).LogAttrs(ctx, slog.LevelInfo, "dry run: not running the snapshot command", slog.String("cmd", commandLine(argv)))
			return nil
		}
	} else {
		cmdEnv := hooks.Env{hooks.EnvDryRun: ""}
		if o.dryRun {
			cmdEnv[hooks.EnvDryRun] = "true"
		}
		cb = hooks.NewCommandCallback(display, cmdPath, argv[1:], cmdEnv, o.timeout)
	}
	plan, err := hooks.NewJobPlan(&list, hooks.PhaseSnapshot, hooks.NewCallbackHook(display, cb, nil), scope, env)
	if err != nil {
		return usageError(s, "run", err.Error())
	}
	target := snapshotTarget(datasets, scope.Recursive, name)

	// The live view, if stdout is a terminal. Log records go through it when
	// stderr is a terminal too, so that they do not mix with the status line.
	// With --quiet, there is no live view and the log is held back.
	var logOut io.Writer = s.Stderr
	var live *liveView
	var heldLog *logTail
	if o.quiet {
		heldLog = newLogTail(quietLogLimit)
		logOut = heldLog
	} else if width, ok := terminalWidth(s.Stdout); ok && os.Getenv("TERM") != "dumb" {
		live = startLiveView(s.Stdout, width, refreshInterval, func() string {
			return statusLine(target, plan.Report())
		})
		if _, ok := terminalWidth(s.Stderr); ok {
			logOut = live.logWriter(s.Stderr)
		}
	}
	log := slog.New(hooks.NewLogfmtHandler(logOut, &slog.HandlerOptions{Level: level}))

	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	sig := watchSignals(ctx, log, cancel)

	log.LogAttrs(ctx, slog.LevelInfo, "run hooks", slog.String("fs", strings.Join(datasets, ",")), slog.Bool("recursive", scope.Recursive),
		slog.String("snapshot", name), slog.Int("hooks", (len(plan.Report())-1)/2), slog.Bool("dry_run", o.dryRun), slog.String("cmd", commandLine(argv)))
	plan.Run(hooks.WithLogger(ctx, log), o.dryRun)

	signalName := sig.stop()
	if live != nil {
		live.stop()
	}
	rep := plan.Report()
	code := exitCodeFor(rep)
	summary := summarize(rep, code, target, !o.dryRun || o.dryRunCmd, signalName)
	log.LogAttrs(ctx, slog.LevelInfo, "done", slog.Int("exit_code", code), slog.String("result", summary))

	if o.quiet {
		if code == exitOK {
			return code
		}
		heldLog.writeTo(s.Stderr)
	}
	if o.json {
		out := runResult{
			FS:            datasets[0],
			Datasets:      datasets,
			Recursive:     scope.Recursive,
			Snapshot:      name,
			DryRun:        o.dryRun,
			Command:       argv,
			OK:            code == exitOK,
			HadError:      rep.HadError(),
			HadFatalError: rep.HadFatalError(),
			Skipped:       rep.HadSkip(),
			Signal:        signalName,
			ExitCode:      code,
			Result:        summary,
			Steps:         rep,
		}
		b, err := json.MarshalIndent(out, "", "  ")
		if err != nil { // unreachable: every field encodes
			fmt.Fprintf(s.Stderr, "snaphook run: encode the report: %v\n", err)
			return code
		}
		fmt.Fprintf(s.Stdout, "%s\n", b)
		return code
	}
	writeTextReport(s.Stdout, rep, summary)
	return code
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
		if st.Status != hooks.StepErr || st.Report == nil {
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
	Signal        string           `json:"signal,omitempty"` // the first signal received, if any
	ExitCode      int              `json:"exit_code"`
	Result        string           `json:"result"`
	Steps         hooks.PlanReport `json:"steps"`
}

// exitCodeFor maps a finished plan's report to the exit code of snaphook.
func exitCodeFor(rep hooks.PlanReport) int {
	if rep.HadSkip() && !rep.HadError() {
		return exitSkipped
	}
	if cb, ok := rep.Callback(); ok && cb.Status != hooks.StepOk {
		return exitSnapshotFailed
	}
	if rep.HadError() {
		return exitHookError
	}
	return exitOK
}

// summarize says in one line what became of the snapshot. cmdRan is false
// in a dry run that does not run CMD.
func summarize(rep hooks.PlanReport, code int, snapshot string, cmdRan bool, signal string) string {
	cb, _ := rep.Callback()
	switch {
	case code == exitOK && cmdRan:
		return fmt.Sprintf("ok: %s: the hooks and the snapshot command succeeded", snapshot)
	case code == exitOK:
		return fmt.Sprintf("ok (dry run): %s: the hooks succeeded; the snapshot command was not run", snapshot)
	case code == exitHookError && cmdRan:
		return fmt.Sprintf("hook error: %s: the snapshot command succeeded, but a hook failed", snapshot)
	case code == exitHookError:
		return fmt.Sprintf("hook error (dry run): %s: a hook failed; the snapshot command was not run", snapshot)
	case code == exitSkipped:
		return fmt.Sprintf("snapshot skipped: %s: %s asked to skip it", snapshot, skipper(rep))
	case signal != "":
		return fmt.Sprintf("snapshot skipped: %s: interrupted by %s", snapshot, signal)
	case cb.Status == hooks.StepErr && cb.Report != nil:
		return fmt.Sprintf("snapshot failed: %s: %s", snapshot, cb.Report.Error())
	default:
		return fmt.Sprintf("snapshot skipped: %s: a pre hook with err_is_fatal failed", snapshot)
	}
}

// signalWatcher cancels a run on SIGINT, SIGTERM or SIGHUP and logs the
// signals that come after.
type signalWatcher struct {
	ch    chan os.Signal
	quit  chan struct{}
	wg    sync.WaitGroup
	first string // the first signal; written by the goroutine, read after wg.Wait
}

func watchSignals(ctx context.Context, log *slog.Logger, cancel context.CancelCauseFunc) *signalWatcher {
	w := &signalWatcher{ch: make(chan os.Signal, 1), quit: make(chan struct{})}
	signal.Notify(w.ch, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		for {
			select {
			case <-w.quit:
				return
			case sig := <-w.ch:
				name := signalName(sig)
				if w.first == "" {
					w.first = name
					log.LogAttrs(ctx, slog.LevelWarn, "signal received: cancelling; the post edges of the hooks that ran still run", slog.String("signal", name))
					cancel(fmt.Errorf("received %s", name))
					continue
				}
				log.LogAttrs(ctx, slog.LevelWarn, "signal received again: still running the post edges, each within its timeout (SIGKILL abandons them)", slog.String("signal", name))
			}
		}
	}()
	return w
}

// stop stops watching and returns the first signal received, or "".
func (w *signalWatcher) stop() string {
	signal.Stop(w.ch)
	close(w.quit)
	w.wg.Wait()
	return w.first
}

func signalName(sig os.Signal) string {
	switch sig {
	case syscall.SIGINT:
		return "SIGINT"
	case syscall.SIGTERM:
		return "SIGTERM"
	case syscall.SIGHUP:
		return "SIGHUP"
	}
	return sig.String()
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

// skipper names the hook that asked to skip the snapshot.
func skipper(rep hooks.PlanReport) string {
	for _, st := range rep {
		if st.Status == hooks.StepSkipRequested {
			return fmt.Sprintf("pre hook %s", st.Hook)
		}
	}
	return "a pre hook"
}

package hooks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// MaxHookLogSizeDefault is how many bytes of a command hook's combined output
// its report keeps: the last ones. The environment variable
// ZREPL_MAX_HOOK_LOG_SIZE overrides it, as in zrepl, and so does
// CommandHook.WithMaxLogSize, up to MaxHookLogSizeLimit.
const MaxHookLogSizeDefault = 1 << 20

// MaxHookLogSizeLimit is the largest log size a command hook accepts (64 MiB):
// a hook holds a buffer of its log size while it runs, and its report a copy
// of what it holds. ZREPL_MAX_HOOK_LOG_SIZE above it is an error;
// CommandHook.WithMaxLogSize clamps to it.
const MaxHookLogSizeLimit = 64 << 20

// EnvMaxHookLogSize names the environment variable that overrides
// MaxHookLogSizeDefault for the command hooks created after it is set: a
// decimal number of bytes from 1 to MaxHookLogSizeLimit, spaces around it
// ignored. Empty is the same as unset; anything else makes NewCommandHook fail.
const EnvMaxHookLogSize = "ZREPL_MAX_HOOK_LOG_SIZE"

// DefaultKillGrace is how long a command hook has to exit after SIGTERM
// before it gets SIGKILL.
const DefaultKillGrace = 5 * time.Second

// CommandHook runs an executable for the Pre and Post edges.
//
// The executable at the hook's path runs directly, without a shell and
// without arguments, in the working directory of the calling process, with
// stdin from /dev/null and the environment of the calling process plus the
// hook environment of NewHookEnv (ZREPL_HOOKTYPE, ZREPL_DRYRUN, ZREPL_TIMEOUT,
// ZREPL_FS, ZREPL_SNAPNAME), which wins on a clash. It runs in a dry run
// too, with ZREPL_DRYRUN=true: the script decides what a dry run means.
//
// The process runs in a process group of its own. When the timeout expires or
// the ctx of Run is done, the whole group gets SIGTERM, and the main process
// SIGKILL if it has not exited after the kill grace period. When the main
// process has exited, on its own or not, whatever is left of its group is
// killed with SIGKILL: no process of the hook outlives its step (a process
// that left the group, with setsid say, is beyond reach). Run reads the
// output pipes for at most the kill grace period after that, so a process
// that escaped the group while holding them cannot make it hang.
//
// Stdout and stderr are captured together, in the order they are read, into a
// ring buffer whose last bytes (MaxHookLogSizeDefault) end up in the report;
// memory stays bounded whatever the hook writes. Each line is also logged to
// the logger of ctx as its own record "hook output", with the line in the
// attribute stdout (at INFO) or stderr (at WARN) and the attributes hook,
// edge and fs. A line split across writes is one record; "\r\n" is trimmed;
// a line longer than 64 KiB is logged in pieces marked partial=true; a last
// line without a newline is logged when the output ends.
//
// A CommandHook is immutable and safe for concurrent use.
type CommandHook struct {
	hookSettings
	path         string
	name         string // the hook attribute of log records; path if empty
	args         []string
	killGrace    time.Duration
	maxLogSize   int // 1..MaxHookLogSizeLimit
	skipExitCode int // 0: none
}

// NewCommandHook returns the command hook that in describes, with
// HookConfig's defaults applied. in.Type may be empty or "command". It fails
// on an invalid config and on an invalid ZREPL_MAX_HOOK_LOG_SIZE.
func NewCommandHook(in HookConfig) (*CommandHook, error) {
	if in.Type == "" {
		in.Type = TypeCommand
	}
	if in.Type != TypeCommand {
		return nil, fmt.Errorf("type: want %q, got %q", TypeCommand, in.Type)
	}
	in = in.WithDefaults()
	if err := in.Validate(); err != nil {
		return nil, err
	}
	return buildCommandHook(in)
}

// buildCommandHook returns the command hook of in, which has its defaults
// applied and is valid (HookFromConfig checked it).
func buildCommandHook(in HookConfig) (*CommandHook, error) {
	settings, err := newHookSettings(in)
	if err != nil {
		return nil, err
	}
	maxLog, err := maxLogSizeFromEnv()
	if err != nil {
		return nil, err
	}
	return &CommandHook{
		hookSettings: settings,
		path:         in.Path,
		killGrace:    DefaultKillGrace,
		maxLogSize:   maxLog,
		skipExitCode: in.SkipExitCode,
	}, nil
}

// maxLogSizeFromEnv returns the log size that ZREPL_MAX_HOOK_LOG_SIZE asks
// for, MaxHookLogSizeDefault if it is unset or empty.
func maxLogSizeFromEnv() (int, error) {
	s := strings.TrimSpace(os.Getenv(EnvMaxHookLogSize))
	if s == "" {
		return MaxHookLogSizeDefault, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > MaxHookLogSizeLimit {
		return 0, fmt.Errorf("environment variable %s: want a number of bytes from 1 to %d (%d MiB), got %q",
			EnvMaxHookLogSize, MaxHookLogSizeLimit, MaxHookLogSizeLimit>>20, os.Getenv(EnvMaxHookLogSize))
	}
	return n, nil
}

// WithKillGrace returns a copy of h that waits d between SIGTERM and SIGKILL,
// and at most d for the output pipes to close. d <= 0 keeps h's value.
func (h *CommandHook) WithKillGrace(d time.Duration) *CommandHook {
	h2 := *h
	if d > 0 {
		h2.killGrace = d
	}
	return &h2
}

// WithMaxLogSize returns a copy of h whose reports keep the last n bytes of
// output. n <= 0 keeps h's value; n above MaxHookLogSizeLimit is taken as
// MaxHookLogSizeLimit.
func (h *CommandHook) WithMaxLogSize(n int) *CommandHook {
	h2 := *h
	if n > 0 {
		h2.maxLogSize = min(n, MaxHookLogSizeLimit)
	}
	return &h2
}

// WithSkipExitCode returns a copy of h whose Pre edge asks to skip the
// snapshot when it exits with status code: its report is then no error, and
// its SkipSnapshot method returns true. The code must be the exit status of
// the main process, which exited on its own; on the Post edge, and after a
// timeout or cancellation, the code is an error as any other non-zero status.
// 0, the default, means that the hook cannot ask to skip.
func (h *CommandHook) WithSkipExitCode(code int) *CommandHook {
	h2 := *h
	h2.skipExitCode = code
	return &h2
}

// String returns the path of the executable.
func (h *CommandHook) String() string { return h.path }

// Run runs the executable for edge and returns a *CommandHookReport. It fails
// if the executable cannot be started, exits non-zero or by a signal, or
// does not finish within the timeout ("timed out after 30s: signal:
// terminated") or before ctx is done ("cancelled (<context.Cause>): signal:
// terminated"); it does not start when ctx is already done. A Pre edge that
// exits with the hook's skip exit code does not fail but asks to skip the
// snapshot (see WithSkipExitCode).
func (h *CommandHook) Run(ctx context.Context, edge Edge, phase Phase, dryRun bool, extra Env, state map[interface{}]interface{}) HookReport {
	env := NewHookEnv(edge, phase, dryRun, h.timeout, extra)
	out, err := h.exec(ctx, edge, env)
	rep := &CommandHookReport{
		Command:                      h.path,
		Args:                         h.args,
		Env:                          env,
		Err:                          err,
		CapturedStdoutStderrCombined: out,
	}
	// Only an exit status of its own counts, not one wrapped in "timed out".
	if exit, ok := err.(*exec.ExitError); ok && edge == Pre && h.skipExitCode != 0 && exit.ExitCode() == h.skipExitCode {
		rep.Err, rep.Skip, rep.skipStatus = nil, true, exit.Error()
	}
	return rep
}

// exec runs the process and returns the tail of its output.
func (h *CommandHook) exec(ctx context.Context, edge Edge, env Env) ([]byte, error) {
	parent := ctx
	var deadline time.Time
	if h.timeout > 0 {
		deadline = time.Now().Add(h.timeout)
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline)
		defer cancel()
	}

	// The pipes are made here, not by os/exec: with an *os.File as Stdout
	// and Stderr, Wait returns as soon as the main process has exited, and
	// not only once the pipes are closed, which a process left behind in
	// the group (a daemon the hook started) would put off until it is
	// killed below.
	outR, outW, errR, errW, err := outputPipes()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, h.path, h.args...)
	cmd.Env = os.Environ()
	for k, v := range env {
		cmd.Env = append(cmd.Env, string(k)+"="+v)
	}
	cmd.Stdout, cmd.Stderr = outW, errW
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// When ctx is done, os/exec calls Cancel, and after WaitDelay kills the
	// main process with SIGKILL; the rest of the group follows once the
	// main process has been waited for.
	var stoppedAt time.Time // set by Cancel, which happens before Wait returns
	cmd.Cancel = func() error {
		err := syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		if errors.Is(err, syscall.ESRCH) {
			return os.ErrProcessDone // the hook ended on its own just now
		}
		stoppedAt = time.Now()
		return err
	}
	cmd.WaitDelay = h.killGrace
	err = cmd.Start()
	outW.Close()
	errW.Close()
	if err != nil {
		outR.Close()
		errR.Close()
		if ctx.Err() != nil { // os/exec starts nothing when ctx is done
			return nil, h.stopped(parent, time.Now(), deadline, errors.New("not started"))
		}
		return nil, err
	}

	out := newOutputCapture(h.maxLogSize)
	log := h.outputLogger(ctx, edge, env)
	var copying sync.WaitGroup
	copying.Add(2)
	go func() { defer copying.Done(); out.readStream(ctx, outR, log, "stdout", slog.LevelInfo) }()
	go func() { defer copying.Done(); out.readStream(ctx, errR, log, "stderr", slog.LevelWarn) }()

	waitErr := cmd.Wait()
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // what is left of the group
	// A process that left the group may still hold the pipes: read them for
	// at most the grace period.
	drainEnd := time.Now().Add(h.killGrace)
	_ = outR.SetReadDeadline(drainEnd)
	_ = errR.SetReadDeadline(drainEnd)
	copying.Wait()
	outR.Close()
	errR.Close()

	if stoppedAt.IsZero() {
		return out.bytes(), waitErr
	}
	return out.bytes(), h.stopped(parent, stoppedAt, deadline, h.signalled(cmd, waitErr))
}

// signalled returns the error of cmd, which was signalled and returned
// waitErr from Wait: how it ended, not what os/exec says for a process that
// exits 0 after Cancel (the ctx error).
func (h *CommandHook) signalled(cmd *exec.Cmd, waitErr error) error {
	var exit *exec.ExitError
	if !errors.As(waitErr, &exit) {
		return errors.New(cmd.ProcessState.String())
	}
	if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
		return fmt.Errorf("%w (SIGKILL: still running %s after SIGTERM)", waitErr, h.killGrace)
	}
	return waitErr
}

// outputPipes returns the pipes for the stdout and stderr of a hook: their
// read and write ends.
func outputPipes() (outR, outW, errR, errW *os.File, err error) {
	outR, outW, err = os.Pipe()
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("create output pipe: %w", err)
	}
	errR, errW, err = os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return nil, nil, nil, nil, fmt.Errorf("create output pipe: %w", err)
	}
	return outR, outW, errR, errW, nil
}

// stopped returns the error of a run that was stopped at time at because
// its ctx was done: it timed out if that was at or after the deadline of its
// own timeout, else it was cancelled by parent. The time decides, not which
// ctx reports what: a parent whose deadline is a little later than the
// hook's own (a Plan bounds a Post edge so) must not turn a timeout into a
// cancellation, whatever the order in which the two timers are seen to fire.
func (h *CommandHook) stopped(parent context.Context, at, deadline time.Time, err error) error {
	if !deadline.IsZero() && !at.Before(deadline) {
		return fmt.Errorf("timed out after %s: %w", h.timeout, err)
	}
	return fmt.Errorf("cancelled (%v): %w", context.Cause(parent), err)
}

// outputLogger returns the logger for the output of a run: that of ctx, with
// the attributes hook, edge and fs.
func (h *CommandHook) outputLogger(ctx context.Context, edge Edge, env Env) *slog.Logger {
	log := GetLogger(ctx)
	if !log.Enabled(ctx, slog.LevelInfo) && !log.Enabled(ctx, slog.LevelWarn) {
		return log
	}
	name := h.name
	if name == "" {
		name = h.path
	}
	attrs := []any{slog.String("hook", name), slog.String("edge", edge.String())}
	if fs, ok := env[EnvFS]; ok {
		attrs = append(attrs, slog.String("fs", fs))
	}
	return log.With(attrs...)
}

// NewCommandCallback returns a callback that runs the program path with args
// the way a CommandHook runs a hook script: in a process group of its own,
// stdin from /dev/null, the environment of the calling process plus env, its
// output logged line by line as "hook output" with hook=name and
// edge=Callback. The program also gets the env the plan gives its callback
// (CallbackEnv: EnvFS, EnvFSList or EnvFSListFile, EnvConsistency, ...); env
// wins over it. A timeout of 0 means none; the callback is still stopped
// (SIGTERM, SIGKILL after DefaultKillGrace) when its ctx is done. The error
// names the program and says how it failed; it carries the last
// MaxHookLogSizeDefault bytes of the program's output, which
// CallbackHookReport.Output returns. NewCommandCallbackHook makes the
// callback hook of it whose env a plan checks before any hook runs.
func NewCommandCallback(name, path string, args []string, env Env, timeout time.Duration) HookJobCallback {
	h := &CommandHook{
		path:         path,
		name:         name,
		args:         append([]string(nil), args...),
		hookSettings: hookSettings{timeout: timeout},
		killGrace:    DefaultKillGrace,
		maxLogSize:   MaxHookLogSizeDefault,
	}
	envCopy := copyEnv(env)
	return func(ctx context.Context) error {
		env := envCopy
		if planEnv := CallbackEnv(ctx); len(planEnv) > 0 {
			env = copyEnv(planEnv)
			maps.Copy(env, envCopy)
		}
		if out, err := h.exec(ctx, Callback, env); err != nil {
			return &outputError{err: fmt.Errorf("%s: %w", shellQuote(path), err), output: out}
		}
		return nil
	}
}

// NewCommandCallbackHook returns NewCallbackHook(name,
// NewCommandCallback(name, path, args, env, timeout), nil), marked as a
// callback that starts a program: NewPlan and NewJobPlan check the env they
// give it against Linux's limits, as they check a command hook's.
func NewCommandCallbackHook(name, path string, args []string, env Env, timeout time.Duration) *CallbackHook {
	h := NewCallbackHook(name, NewCommandCallback(name, path, args, env, timeout), nil)
	h.startsProgram = true
	return h
}

// outputError is an error of a program that carries the end of its output.
type outputError struct {
	err    error
	output []byte
}

func (e *outputError) Error() string { return e.err.Error() }
func (e *outputError) Unwrap() error { return e.err }

// Output returns the last bytes of the combined stdout and stderr of the
// hook, as CapturedStdoutStderrCombined.
func (r *CommandHookReport) Output() []byte { return r.CapturedStdoutStderrCombined }

// CommandHookReport is the report of a CommandHook run.
type CommandHookReport struct {
	Command string
	Args    []string // always empty for hooks from a config
	Env     Env      // the hook environment (not the inherited one)
	Err     error
	// CapturedStdoutStderrCombined holds the last bytes of the combined
	// output, at most the hook's maximum log size.
	CapturedStdoutStderrCombined []byte
	// Skip is true when the Pre edge exited with the hook's skip exit code
	// (CommandHook.WithSkipExitCode): the hook asks to skip the snapshot.
	// Err is nil then.
	Skip bool

	skipStatus string // "exit status 75" when Skip is set by Run
}

// String renders the run as a command line that can be pasted into a POSIX
// shell to run the hook again by hand, environment first, sorted by name:
//
//	command hook: "ZREPL_DRYRUN='' ZREPL_FS='tank/db' ... /etc/hooks/x"
//	command hook failed with "exit status 1": "ZREPL_DRYRUN='' ... /etc/hooks/x"
//	command hook asked to skip the snapshot (exit status 75): "ZREPL_DRYRUN='' ... /etc/hooks/x"
//
// A value with a control rune (IsControl), such as the newlines of
// ZREPL_FS_LIST, is quoted as $'tank/db\ntank/log', which bash and zsh
// read as the value: the text holds no control rune, and stays one line.
func (r *CommandHookReport) String() string {
	keys := make([]string, 0, len(r.Env))
	for k := range r.Env {
		keys = append(keys, string(k))
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(shellQuoteAlways(r.Env[HookEnvVar(k)]))
		b.WriteByte(' ')
	}
	b.WriteString(shellQuote(r.Command))
	for _, a := range r.Args {
		b.WriteByte(' ')
		b.WriteString(shellQuoteAlways(a))
	}
	if r.Skip && r.Err == nil {
		status := ""
		if r.skipStatus != "" {
			status = " (" + r.skipStatus + ")"
		}
		return `command hook asked to skip the snapshot` + status + `: "` + b.String() + `"`
	}
	if r.Err == nil {
		return `command hook: "` + b.String() + `"`
	}
	return fmt.Sprintf("command hook failed with %q: \"%s\"", r.Err.Error(), b.String())
}

// HadError reports whether the hook failed. A hook that asks to skip the
// snapshot did not fail.
func (r *CommandHookReport) HadError() bool { return r.Err != nil }

// SkipSnapshot reports whether the hook asked to skip the snapshot: the
// value of Skip.
func (r *CommandHookReport) SkipSnapshot() bool { return r.Skip }

// Error is "" when the hook succeeded, else "<String()> FAILED with error: <err>",
// with the control runes of err escaped (see Escape).
func (r *CommandHookReport) Error() string {
	if r.Err == nil {
		return ""
	}
	return r.String() + " FAILED with error: " + Escape(r.Err.Error())
}

// shellQuoteAlways quotes s in single quotes for a POSIX shell, or as
// $'...' with escapes if it holds a control rune (see shellQuoteControls).
func shellQuoteAlways(s string) string {
	if indexControl(s) >= 0 {
		return shellQuoteControls(s)
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// shellQuote quotes s for a POSIX shell unless it consists of characters
// that need no quoting, like most paths.
func shellQuote(s string) string {
	if s == "" {
		return "''"
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("/._-+,:@%=", c)) {
			return shellQuoteAlways(s)
		}
	}
	return s
}

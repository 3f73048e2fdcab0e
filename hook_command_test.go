package hooks

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-logfmt/logfmt"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// runHook runs one edge of h with env and returns its report.
func runHook(t *testing.T, ctx context.Context, h *CommandHook, edge Edge, dryRun bool, env Env) *CommandHookReport {
	t.Helper()
	rep := h.Run(ctx, edge, PhaseSnapshot, dryRun, env, map[interface{}]interface{}{})
	cr, ok := rep.(*CommandHookReport)
	require.True(t, ok, "report type %T", rep)
	return cr
}

func TestCommandHookEnvironment(t *testing.T) {
	t.Parallel()
	h := newCommandHook(t, "env", HookConfig{Timeout: 10 * time.Second})
	extra := Env{EnvFS: "tank/db", EnvSnapshot: "zrepl_20261125_080000_000"}
	for _, c := range []struct {
		name   string
		edge   Edge
		phase  Phase
		dryRun bool
		want   string
	}{
		{"pre_snapshot", Pre, PhaseSnapshot, false, "ZREPL_DRYRUN=\nZREPL_FS=tank/db\nZREPL_HOOKTYPE=pre_snapshot\nZREPL_SNAPNAME=zrepl_20261125_080000_000\nZREPL_TIMEOUT=10\n"},
		{"post_snapshot_dry_run", Post, PhaseSnapshot, true, "ZREPL_DRYRUN=true\nZREPL_FS=tank/db\nZREPL_HOOKTYPE=post_snapshot\nZREPL_SNAPNAME=zrepl_20261125_080000_000\nZREPL_TIMEOUT=10\n"},
		{"pre_testing", Pre, PhaseTesting, false, "ZREPL_DRYRUN=\nZREPL_FS=tank/db\nZREPL_HOOKTYPE=pre_testing\nZREPL_SNAPNAME=zrepl_20261125_080000_000\nZREPL_TIMEOUT=10\n"},
	} {
		rep := h.Run(context.Background(), c.edge, c.phase, c.dryRun, extra, nil).(*CommandHookReport)
		require.NoError(t, rep.Err, c.name)
		assert.Equal(t, c.want, string(rep.CapturedStdoutStderrCombined), c.name)
		assert.Equal(t, c.want, envLines(rep.Env), c.name)
	}
}

func envLines(e Env) string {
	var b strings.Builder
	for _, k := range []HookEnvVar{EnvDryRun, EnvFS, EnvType, EnvSnapshot, EnvTimeout} {
		b.WriteString(string(k) + "=" + e[k] + "\n")
	}
	return b.String()
}

func TestNewHookEnv(t *testing.T) {
	t.Parallel()
	env := NewHookEnv(Post, PhaseTesting, true, 2500*time.Millisecond, Env{EnvFS: "a/b", EnvTimeout: "override"})
	assert.Equal(t, Env{EnvType: "post_testing", EnvDryRun: "true", EnvTimeout: "override", EnvFS: "a/b"}, env)
	env = NewHookEnv(Pre, PhaseSnapshot, false, 2500*time.Millisecond, nil)
	assert.Equal(t, Env{EnvType: "pre_snapshot", EnvDryRun: "", EnvTimeout: "2"}, env)
	assert.Equal(t, "Pre_snapshot", Pre.StringForPhase(PhaseSnapshot))
}

func TestCommandHookReportStrings(t *testing.T) {
	t.Parallel()
	h := newCommandHook(t, "exit1", HookConfig{})
	rep := runHook(t, context.Background(), h, Pre, false, Env{EnvFS: "tank/it's here", EnvSnapshot: "s"})
	require.Error(t, rep.Err)
	assert.True(t, rep.HadError())
	assert.Regexp(t, regexp.MustCompile(`^command hook failed.*exit status 1$`), rep.Error())
	assert.Equal(t, "about to fail\n", string(rep.CapturedStdoutStderrCombined))
	// The env is sorted and quoted for a POSIX shell.
	want := `command hook failed with "exit status 1": "ZREPL_DRYRUN='' ZREPL_FS='tank/it'\''s here' ZREPL_HOOKTYPE='pre_snapshot' ZREPL_SNAPNAME='s' ZREPL_TIMEOUT='30' ` + h.String() + `"`
	assert.Equal(t, want, rep.String())

	ok := runHook(t, context.Background(), newCommandHook(t, "env", HookConfig{}), Pre, false, nil)
	assert.Equal(t, "", ok.Error())
	assert.False(t, ok.HadError())
	assert.True(t, strings.HasPrefix(ok.String(), `command hook: "ZREPL_DRYRUN='' `), ok.String())
}

func TestCommandHookReportIsCopyPastable(t *testing.T) {
	t.Parallel()
	// The command line of a report, pasted into sh, runs the hook with the same env.
	h := newCommandHook(t, "env", HookConfig{})
	rep := runHook(t, context.Background(), h, Pre, false, Env{EnvFS: `ta nk/$x"'\`, EnvSnapshot: "s"})
	require.NoError(t, rep.Err)
	line := strings.TrimSuffix(strings.TrimPrefix(rep.String(), `command hook: "`), `"`)
	out, err := runShell(t, line)
	require.NoError(t, err)
	assert.Equal(t, string(rep.CapturedStdoutStderrCombined), out)
}

func TestCommandHookKeepsTheLastMiBOfOutput(t *testing.T) {
	t.Parallel()
	data := make([]byte, 2<<20)
	_, _ = rand.Read(data)
	file := filepath.Join(t.TempDir(), "out")
	require.NoError(t, os.WriteFile(file, data, 0o644))
	h := newCommandHook(t, "cat-file", HookConfig{})
	rep := runHook(t, context.Background(), h, Pre, false, Env{"OUTPUT_FILE": file})
	require.NoError(t, rep.Err)
	require.Len(t, rep.CapturedStdoutStderrCombined, MaxHookLogSizeDefault)
	assert.True(t, bytes.Equal(data[len(data)-MaxHookLogSizeDefault:], rep.CapturedStdoutStderrCombined))

	small := runHook(t, context.Background(), h.WithMaxLogSize(1000), Pre, false, Env{"OUTPUT_FILE": file})
	assert.True(t, bytes.Equal(data[len(data)-1000:], small.CapturedStdoutStderrCombined))
}

func TestCommandHookMaxLogSizeFromEnvironment(t *testing.T) {
	t.Setenv(EnvMaxHookLogSize, "10")
	h := newCommandHook(t, "env", HookConfig{})
	rep := runHook(t, context.Background(), h, Pre, false, nil)
	assert.Equal(t, "IMEOUT=30\n", string(rep.CapturedStdoutStderrCombined))

	t.Setenv(EnvMaxHookLogSize, "lots")
	_, err := NewCommandHook(HookConfig{Path: hookPath(t, "env")})
	assert.ErrorContains(t, err, EnvMaxHookLogSize)
}

// logRecords decodes logfmt records into maps.
func logRecords(t *testing.T, s string) []map[string]string {
	t.Helper()
	var out []map[string]string
	dec := logfmt.NewDecoderSize(strings.NewReader(s), 1<<20)
	for dec.ScanRecord() {
		m := map[string]string{}
		for dec.ScanKeyval() {
			m[string(dec.Key())] = string(dec.Value())
		}
		out = append(out, m)
	}
	require.NoError(t, dec.Err())
	return out
}

func outputRecords(t *testing.T, s string) []map[string]string {
	var out []map[string]string
	for _, r := range logRecords(t, s) {
		if r["msg"] == "hook output" {
			out = append(out, r)
		}
	}
	return out
}

func TestCommandHookLogsEachLine(t *testing.T) {
	t.Parallel()
	log, buf := testLogger()
	h := newCommandHook(t, "split-line", HookConfig{})
	rep := runHook(t, WithLogger(context.Background(), log), h, Pre, false, Env{EnvFS: "tank/db"})
	require.NoError(t, rep.Err)
	recs := outputRecords(t, buf.String())
	require.Len(t, recs, 3, buf.String())
	byText := map[string]map[string]string{}
	for _, r := range recs {
		assert.Equal(t, h.String(), r["hook"])
		assert.Equal(t, "Pre", r["edge"])
		assert.Equal(t, "tank/db", r["fs"])
		byText[r["stdout"]+r["stderr"]] = r
	}
	assert.Equal(t, "INFO", byText["first half second half"]["level"], "a line split across writes is one record")
	assert.Equal(t, "WARN", byText["to stderr"]["level"], "stderr at WARN, CRLF trimmed")
	assert.Equal(t, "INFO", byText["no newline at the end"]["level"], "last line without newline")
}

func TestCommandHookLogsLongLines(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 200_000)
	file := filepath.Join(t.TempDir(), "out")
	require.NoError(t, os.WriteFile(file, []byte(long+"\nafter 1\nafter 2\n"), 0o644))
	log, buf := testLogger()
	h := newCommandHook(t, "cat-file", HookConfig{})
	rep := runHook(t, WithLogger(context.Background(), log), h, Pre, false, Env{"OUTPUT_FILE": file})
	require.NoError(t, rep.Err)
	recs := outputRecords(t, buf.String())
	var joined strings.Builder
	var rest []string
	for _, r := range recs {
		if r["partial"] == "true" || strings.HasPrefix(r["stdout"], "x") {
			assert.LessOrEqual(t, len(r["stdout"]), maxLogLine)
			joined.WriteString(r["stdout"])
			continue
		}
		rest = append(rest, r["stdout"])
	}
	assert.Equal(t, long, joined.String(), "the long line is logged whole, in pieces")
	assert.Equal(t, []string{"after 1", "after 2"}, rest)
}

func TestCommandHookTimeoutKillsIgnoringHook(t *testing.T) {
	t.Parallel()
	pidFile := filepath.Join(t.TempDir(), "pid")
	h := newCommandHook(t, "ignore-term", HookConfig{Timeout: 500 * time.Millisecond}).WithKillGrace(500 * time.Millisecond)
	// Without SIGKILL the hook would never end.
	rep := runHook(t, context.Background(), h, Pre, false, Env{"PIDFILE": pidFile})
	require.Error(t, rep.Err)
	assert.Contains(t, rep.Err.Error(), "timed out after 500ms: signal: killed")
	assert.Contains(t, rep.Err.Error(), "SIGKILL")
	requireGroupGone(t, readPID(t, pidFile))
}

func TestCommandHookDaemonHoldingThePipes(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name    string
		timeout time.Duration
		wait    string
	}{
		{"hook_exits_leaving_a_child", 10 * time.Second, ""},
		{"hook_times_out_waiting_for_its_child", 500 * time.Millisecond, "1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			pidFile, pgidFile := filepath.Join(t.TempDir(), "pid"), filepath.Join(t.TempDir(), "pgid")
			h := newCommandHook(t, "daemonize", HookConfig{Timeout: c.timeout}).WithKillGrace(time.Second)
			// The child sleeps for a day: a Run that waited for it would not return.
			rep := runHook(t, context.Background(), h, Pre, false, Env{"PIDFILE": pidFile, "PGIDFILE": pgidFile, "DAEMONIZE_WAIT": c.wait})
			if c.wait == "" {
				// Not held up by the pipes until the grace period is over.
				assert.NoError(t, rep.Err)
			} else {
				assert.ErrorContains(t, rep.Err, "timed out")
			}
			assert.Contains(t, string(rep.CapturedStdoutStderrCombined), "left a child behind")
			requireGone(t, readPID(t, pidFile))
			requireGroupGone(t, readPID(t, pgidFile))
		})
	}
}

func TestCommandHookCancelled(t *testing.T) {
	t.Parallel()
	started := newOutputSeen("sleeping")
	ctx, cancel := context.WithCancel(WithLogger(context.Background(), slog.New(NewLogfmtHandler(started, nil))))
	h := newCommandHook(t, "sleep", HookConfig{Timeout: time.Minute})
	go func() { <-started.seen; cancel() }()
	rep := runHook(t, ctx, h, Pre, false, nil)
	assert.EqualError(t, rep.Err, "cancelled (context canceled): signal: terminated")
}

// TestCommandHookEscapedProcessHoldingThePipes runs a hook that leaves a
// process behind in a session of its own, beyond the reach of the group
// kill, holding the output pipes: Run stops reading them after the grace
// period.
func TestCommandHookEscapedProcessHoldingThePipes(t *testing.T) {
	t.Parallel()
	pidFile := filepath.Join(t.TempDir(), "pid")
	h := newCommandHook(t, "escape", HookConfig{}).WithKillGrace(300 * time.Millisecond)
	rep := runHook(t, context.Background(), h, Pre, false, Env{"PIDFILE": pidFile})
	escaped := readPID(t, pidFile)
	t.Cleanup(func() { _ = syscall.Kill(escaped, syscall.SIGKILL); requireGone(t, escaped) })
	assert.True(t, processAlive(escaped), "the escaped process still holds the pipes")
	assert.NoError(t, rep.Err)
	assert.Equal(t, "escaping\n", string(rep.CapturedStdoutStderrCombined))
}

func TestCommandCallback(t *testing.T) {
	t.Parallel()
	log, buf := testLogger()
	ctx := WithLogger(context.Background(), log)
	cb := NewCommandCallback("zfs snapshot", "/bin/sh", []string{"-c", `echo "snap $ZREPL_FS@$ZREPL_SNAPNAME"`}, Env{EnvFS: "tank/db", EnvSnapshot: "s1"}, 0)
	require.NoError(t, cb(ctx))
	recs := outputRecords(t, buf.String())
	require.Len(t, recs, 1)
	assert.Equal(t, "snap tank/db@s1", recs[0]["stdout"])
	assert.Equal(t, "zfs snapshot", recs[0]["hook"])
	assert.Equal(t, "Callback", recs[0]["edge"])
	assert.Equal(t, 1, strings.Count(buf.String(), "hook="), "one hook attribute")

	fail := NewCommandCallback("zfs snapshot", "/bin/sh", []string{"-c", "exit 3"}, nil, 0)
	assert.EqualError(t, fail(ctx), "/bin/sh: exit status 3")
	slow := NewCommandCallback("slow", "/bin/sleep", []string{"60"}, nil, 300*time.Millisecond)
	assert.ErrorContains(t, slow(ctx), "timed out after 300ms")
}

// TestGroupMembersSeesALiveGroup proves that requireGroupGone can fail.
func TestGroupMembersSeesALiveGroup(t *testing.T) {
	t.Parallel()
	cmd := exec.Command("/bin/sleep", "30")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	require.NoError(t, cmd.Start())
	assert.Equal(t, []int{cmd.Process.Pid}, groupMembers(cmd.Process.Pid))
	require.NoError(t, cmd.Process.Kill())
	_ = cmd.Wait()
	assert.Empty(t, groupMembers(cmd.Process.Pid))
}

// releaseFifo makes a fifo for testdata/hooks/term-late and opens it for
// reading and writing: the open does not block, and what the test writes
// stays in the fifo until the hook reads it.
func releaseFifo(t *testing.T) (string, *os.File) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "release")
	require.NoError(t, syscall.Mkfifo(path, 0o600))
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	require.NoError(t, err)
	t.Cleanup(func() { f.Close() })
	return path, f
}

// TestCommandHookTimeoutOutlivesTheCtx runs a hook with a ctx whose deadline
// is one second after the hook's own timeout (as a Plan gives a Post edge).
// The hook traps SIGTERM and exits only after that ctx has expired too: the
// error still says that the hook timed out, not that it was cancelled.
func TestCommandHookTimeoutOutlivesTheCtx(t *testing.T) {
	t.Parallel()
	fifo, release := releaseFifo(t)
	const timeout = time.Second
	h := newCommandHook(t, "term-late", HookConfig{Timeout: timeout}).WithKillGrace(time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), timeout+time.Second)
	defer cancel()
	reports := make(chan HookReport, 1)
	go func() { reports <- h.Run(ctx, Post, PhaseSnapshot, false, Env{"RELEASE_FIFO": fifo}, nil) }()
	<-ctx.Done() // the hook cannot have exited: it waits for the fifo
	_, err := release.WriteString("exit\n")
	require.NoError(t, err)
	rep := (<-reports).(*CommandHookReport)
	assert.EqualError(t, rep.Err, "timed out after 1s: exit status 0")
	assert.Contains(t, string(rep.CapturedStdoutStderrCombined), "exiting late after SIGTERM\n")
}

// outputSeen is a log destination that closes seen once a record contains text.
type outputSeen struct {
	text string
	once sync.Once
	seen chan struct{}
}

func newOutputSeen(text string) *outputSeen {
	return &outputSeen{text: text, seen: make(chan struct{})}
}

func (o *outputSeen) Write(p []byte) (int, error) {
	if bytes.Contains(p, []byte(o.text)) {
		o.once.Do(func() { close(o.seen) })
	}
	return len(p), nil
}

func TestCommandHookCancelledSaysWhy(t *testing.T) {
	t.Parallel()
	why := errors.New("daemon shutting down")
	h := newCommandHook(t, "sleep", HookConfig{Timeout: time.Minute})

	t.Run("while_running", func(t *testing.T) {
		t.Parallel()
		started := newOutputSeen("sleeping")
		ctx, cancel := context.WithCancelCause(WithLogger(context.Background(), slog.New(NewLogfmtHandler(started, nil))))
		go func() { <-started.seen; cancel(why) }()
		rep := runHook(t, ctx, h, Pre, false, nil)
		assert.EqualError(t, rep.Err, "cancelled (daemon shutting down): signal: terminated")
	})
	t.Run("before_it_started", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithCancelCause(context.Background())
		cancel(why)
		pidFile := filepath.Join(t.TempDir(), "pid")
		rep := runHook(t, ctx, newCommandHook(t, "ignore-term", HookConfig{}), Pre, false, Env{"PIDFILE": pidFile})
		assert.ErrorContains(t, rep.Err, "cancelled (daemon shutting down)")
		assert.NoFileExists(t, pidFile, "the hook never ran")
	})
	t.Run("by_a_deadline_before_the_timeout", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		rep := runHook(t, ctx, h, Pre, false, nil)
		// ": signal: terminated", or ": not started" on a machine too busy to start it in time.
		assert.ErrorContains(t, rep.Err, "cancelled (context deadline exceeded): ")
	})
}

func TestCommandHookMaxLogSizeIsBounded(t *testing.T) {
	// Not parallel: it sets the environment.
	for _, bad := range []string{"99999999999", "67108865", "0", "-1", "lots", "1e6", "0x100", "4 KiB"} {
		t.Setenv(EnvMaxHookLogSize, bad)
		_, err := NewCommandHook(HookConfig{Path: hookPath(t, "env")})
		if assert.Error(t, err, bad) {
			assert.Equal(t, `environment variable ZREPL_MAX_HOOK_LOG_SIZE: want a number of bytes from 1 to 67108864 (64 MiB), got "`+bad+`"`, err.Error())
		}
	}

	captured := func(h *CommandHook, mib int) int {
		rep := runHook(t, context.Background(), h, Pre, false, Env{"FLOOD_MIB": strconv.Itoa(mib)})
		require.NoError(t, rep.Err)
		return len(rep.CapturedStdoutStderrCombined)
	}
	for value, want := range map[string]int{"": MaxHookLogSizeDefault, " 4096\n": 4096, "67108864": MaxHookLogSizeLimit} {
		t.Setenv(EnvMaxHookLogSize, value)
		assert.Equal(t, want, captured(newCommandHook(t, "flood", HookConfig{}), 65), "%s=%q", EnvMaxHookLogSize, value)
	}
	os.Unsetenv(EnvMaxHookLogSize)

	// From Go, a size beyond the limit is clamped to it (it was an out-of-memory crash).
	h := newCommandHook(t, "flood", HookConfig{})
	assert.Equal(t, MaxHookLogSizeLimit, captured(h.WithMaxLogSize(1<<40), 65))
	assert.Equal(t, MaxHookLogSizeDefault, captured(h.WithMaxLogSize(-1), 2), "n <= 0 keeps the size")
}

func TestCommandHookSkipExitCode(t *testing.T) {
	t.Parallel()
	hook := newCommandHook(t, "exit-code", HookConfig{})
	skip75 := hook.WithSkipExitCode(75)

	pre := runHook(t, context.Background(), skip75, Pre, false, Env{"EXIT_CODE": "75"})
	assert.NoError(t, pre.Err)
	assert.False(t, pre.HadError())
	assert.Equal(t, "", pre.Error())
	assert.True(t, pre.Skip)
	assert.True(t, pre.SkipSnapshot())
	assert.Equal(t, "exiting with 75\n", string(pre.CapturedStdoutStderrCombined))
	assert.Equal(t, `command hook asked to skip the snapshot (exit status 75): "EXIT_CODE='75' ZREPL_DRYRUN='' ZREPL_HOOKTYPE='pre_snapshot' ZREPL_TIMEOUT='30' `+hook.String()+`"`, pre.String())

	dry := runHook(t, context.Background(), skip75, Pre, true, Env{"EXIT_CODE": "75"})
	assert.True(t, dry.SkipSnapshot(), "a dry run skips too: the script decides")
	assert.False(t, dry.HadError())

	for _, c := range []struct {
		name    string
		hook    *CommandHook
		edge    Edge
		code    string
		wantErr string
	}{
		{"post_edge_cannot_skip", skip75, Post, "75", "exit status 75"},
		{"other_exit_code_is_an_error", skip75, Pre, "3", "exit status 3"},
		{"success_is_no_skip", skip75, Pre, "0", ""},
		{"no_skip_code_by_default", hook, Pre, "75", "exit status 75"},
		{"zero_disables_it", skip75.WithSkipExitCode(0), Pre, "75", "exit status 75"},
	} {
		rep := runHook(t, context.Background(), c.hook, c.edge, false, Env{"EXIT_CODE": c.code})
		assert.False(t, rep.Skip, c.name)
		assert.False(t, rep.SkipSnapshot(), c.name)
		if c.wantErr == "" {
			assert.NoError(t, rep.Err, c.name)
		} else {
			assert.EqualError(t, rep.Err, c.wantErr, c.name)
			assert.True(t, rep.HadError(), c.name)
		}
	}

	t.Run("timed_out_hook_exiting_with_it_is_no_skip", func(t *testing.T) {
		t.Parallel()
		fifo, release := releaseFifo(t)
		_, err := release.WriteString("exit\n") // it exits as soon as it gets SIGTERM
		require.NoError(t, err)
		h := newCommandHook(t, "term-late", HookConfig{Timeout: time.Second}).WithSkipExitCode(75)
		rep := runHook(t, context.Background(), h, Pre, false, Env{"RELEASE_FIFO": fifo, "EXIT_CODE": "75"})
		assert.False(t, rep.SkipSnapshot())
		assert.EqualError(t, rep.Err, "timed out after 1s: exit status 75")
	})
}

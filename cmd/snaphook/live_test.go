package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/snaphooks/hooks"
)

// slowConfig writes a hook list whose hook takes a while in its pre edge and
// prints a line that would garble a terminal if it reached it unescaped.
func slowConfig(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	hook := script(t, dir, "slow", `
printf 'working\033[31m red\r\n'
printf 'a carriage\rreturn\n' >&2
[ "$ZREPL_HOOKTYPE" = pre_snapshot ] && sleep 0.7
echo done`)
	return config(t, dir, "- {type: command, path: "+hook+"}\n")
}

// runOnTerminal runs snaphook with args, its stdin, stdout and stderr on a
// pseudo-terminal 200 columns wide, and returns all it wrote there. It skips
// the test if the system has no pseudo-terminals, and fails it if snaphook
// exits with another status than wantCode.
func runOnTerminal(t *testing.T, wantCode int, args ...string) string {
	t.Helper()
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	defer ptmx.Close()
	if err := pty.Setsize(tty, &pty.Winsize{Rows: 24, Cols: 200}); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = append(os.Environ(), "TERM=xterm")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	tty.Close() // the child has its copy; the master sees EOF (EIO) when it exits

	var out bytes.Buffer
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		_, _ = io.Copy(&out, ptmx) // ends with EIO once the child is gone
	}()
	err = cmd.Wait()
	<-copied
	if code := cmd.ProcessState.ExitCode(); code != wantCode {
		t.Fatalf("snaphook: exit code %d (%v), want %d; output:\n%q", code, err, wantCode, out.String())
	}
	return out.String()
}

func TestLiveViewOnTerminal(t *testing.T) {
	cfg := slowConfig(t)
	got := runOnTerminal(t, 0, "run", "-c", cfg, "--fs", "tank/db", "--snapshot", "live", "--", "true")

	// The status line shows the running step and is rewritten in place.
	status := regexp.MustCompile(`\r(step 01/03 \[Exec\] \[[0-9.]+m?s\] ~ \[Pre\]  \S+/slow  \(tank/db@live\))\x1b\[K`)
	if n := len(status.FindAllString(got, -1)); n < 2 {
		t.Errorf("want at least 2 status updates of the running step, got %d:\n%q", n, got)
	}
	// The line drawn again after a log record is never older than the
	// record: after each line of output of the post edge, the line shows the
	// post edge running, not the slow pre edge of two steps before.
	redraw := regexp.MustCompile(`msg="hook output"[^\n]* edge=Post [^\n]*\n\r?\r([^\x1b]*)\x1b\[K`)
	postRedraws := redraw.FindAllStringSubmatch(got, -1)
	if len(postRedraws) == 0 {
		t.Errorf("no status line drawn after the output of the post edge:\n%q", got)
	}
	for _, m := range postRedraws {
		if !strings.HasPrefix(m[1], "step 03/03 [Exec] [") || !strings.Contains(m[1], "~ [Post]  ") {
			t.Errorf("after output of the post edge, the status line shows %q, want step 03/03 [Exec] of the post edge", m[1])
		}
	}
	// Log records never start in the middle of the status line: each begins
	// a line, or follows the clearing of the status line.
	for _, loc := range regexp.MustCompile(`time=`).FindAllStringIndex(got, -1) {
		before := got[:loc[0]]
		if !strings.HasSuffix(before, "\n") && !strings.HasSuffix(before, "\r\x1b[K") {
			t.Errorf("a log record starts mid-line: %q", got[max(0, loc[0]-60):loc[1]])
		}
	}
	// The escape sequence printed by the hook is escaped in the log.
	if strings.Contains(got, "\x1b[31m") {
		t.Errorf("the hook's escape sequence reached the terminal:\n%q", got)
	}
	// The final table comes after the status line was cleared for good.
	last := strings.LastIndex(got, "\r\x1b[K")
	if last < 0 {
		t.Fatalf("the status line was never cleared:\n%q", got)
	}
	tail := got[last:]
	for _, want := range []string{"01 [Ok] [", "02 [Ok] [", "~ [Callback]  true", "03 [Ok] [", "ok: tank/db@live"} {
		if !strings.Contains(tail, want) {
			t.Errorf("the final report lacks %q:\n%q", want, tail)
		}
	}
	if strings.Contains(tail, "[Exec]") {
		t.Errorf("a status line was drawn after the final clear:\n%q", tail)
	}
}

func TestNoControlCharactersOffTerminal(t *testing.T) {
	cfg := slowConfig(t)
	for _, flags := range [][]string{nil, {"--json"}} {
		r := run(t, append(append([]string{"run", "-c", cfg, "--fs", "tank/db"}, flags...), "--", "printf", "%s\n", "\x1b[1mbold\rX")...)
		if r.code != 0 {
			t.Fatalf("exit code %d; stderr:\n%s", r.code, r.stderr)
		}
		for name, s := range map[string]string{"stdout": r.stdout, "stderr": r.stderr} {
			if i := strings.IndexAny(s, "\x1b\r"); i >= 0 {
				t.Errorf("%v: control character in %s at %d:\n%q", flags, name, i, s)
			}
		}
		if !strings.Contains(r.stderr, "red") || !strings.Contains(r.stderr, "bold") {
			t.Errorf("hook and CMD output not logged:\n%s", r.stderr)
		}
	}
}

// TestDevNullIsNoTerminal: /dev/null is a character device, but no terminal.
func TestDevNullIsNoTerminal(t *testing.T) {
	f, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, ok := terminalWidth(f); ok {
		t.Errorf("terminalWidth(%s) reports a terminal", os.DevNull)
	}
}

func TestTruncate(t *testing.T) {
	for _, tt := range []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"exactly10!", 10, "exactly10!"},
		{"a longer line", 10, "a longe..."},
		{"äöüäöüäöüäöü", 6, "äöü..."},
	} {
		if got := truncate(tt.in, tt.n); got != tt.want {
			t.Errorf("truncate(%q, %d) = %q, want %q", tt.in, tt.n, got, tt.want)
		}
	}
}

func TestStatusLineShowsTheStepRunningNow(t *testing.T) {
	hook := func(name string) hooks.Hook { return hooks.NewCallbackHook(name, nil, nil) }
	begin := time.Now()
	step := func(name string, edge hooks.Edge, status hooks.StepStatus) hooks.Step {
		st := hooks.Step{Hook: hook(name), Edge: edge, Status: status}
		if status != hooks.StepPending {
			st.Begin = begin
		}
		if status != hooks.StepPending && status != hooks.StepExec {
			st.End = begin.Add(time.Millisecond)
		}
		return st
	}
	tests := []struct {
		name string
		rep  hooks.PlanReport
		want string
	}{
		{
			name: "nothing_ran_yet",
			rep:  hooks.PlanReport{step("a", hooks.Pre, hooks.StepPending), step("cb", hooks.Callback, hooks.StepPending), step("a", hooks.Post, hooks.StepPending)},
			want: "0/3 steps done  (tank/db@s)",
		},
		{
			name: "the_running_step",
			rep:  hooks.PlanReport{step("a", hooks.Pre, hooks.StepOk), step("cb", hooks.Callback, hooks.StepExec), step("a", hooks.Post, hooks.StepPending)},
			want: "step 02/03 [Exec] [",
		},
		{
			name: "the_latest_running_step_when_an_earlier_one_never_returned",
			rep:  hooks.PlanReport{step("a", hooks.Pre, hooks.StepExec), step("cb", hooks.Callback, hooks.StepSkippedDueToFatalErr), step("a", hooks.Post, hooks.StepExec)},
			want: "step 03/03 [Exec] [",
		},
		{
			name: "between_two_steps_the_one_that_ended_last",
			rep:  hooks.PlanReport{step("a", hooks.Pre, hooks.StepOk), step("cb", hooks.Callback, hooks.StepOk), step("a", hooks.Post, hooks.StepPending)},
			want: "step 02/03 [Ok] [  1ms] ~ [Callback]  cb  (tank/db@s)",
		},
		{
			name: "a_skipped_step_counts_as_ended",
			rep:  hooks.PlanReport{step("a", hooks.Pre, hooks.StepErr), step("cb", hooks.Callback, hooks.StepSkippedDueToFatalErr), step("a", hooks.Post, hooks.StepPending)},
			want: "step 02/03 [SkippedDueToFatalErr] [",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := statusLine("tank/db@s", tt.rep)
			if !strings.HasPrefix(got, tt.want) || !strings.HasSuffix(got, "  (tank/db@s)") {
				t.Errorf("statusLine = %q, want it to begin with %q and end with the snapshot", got, tt.want)
			}
		})
	}
}

// TestLiveViewRedrawsTheCurrentStatusAfterALogRecord: a log record that
// tells of a new step is followed by a status line that shows it, not by the
// line of the last refresh.
func TestLiveViewRedrawsTheCurrentStatusAfterALogRecord(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	var mu sync.Mutex
	status := "step 01/03 [Exec]"
	v := startLiveView(w, 80, time.Hour, func() string { // no refresh but the first
		mu.Lock()
		defer mu.Unlock()
		return status
	})
	var logged bytes.Buffer
	logs := v.logWriter(&logged)
	mu.Lock()
	status = "step 02/03 [Exec]"
	mu.Unlock()
	if _, err := logs.Write([]byte("msg=\"step done\" edge=Pre\n")); err != nil {
		t.Fatal(err)
	}
	v.stop()
	w.Close()
	drawn, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	want := "\rstep 01/03 [Exec]\x1b[K" + // the first refresh
		"\r\x1b[K" + "\rstep 02/03 [Exec]\x1b[K" + // cleared for the record, drawn again
		"\r\x1b[K" // cleared by stop
	if string(drawn) != want {
		t.Errorf("drawn on the terminal:\n%q\nwant:\n%q", drawn, want)
	}
	if logged.String() != "msg=\"step done\" edge=Pre\n" {
		t.Errorf("logged %q", logged.String())
	}
}

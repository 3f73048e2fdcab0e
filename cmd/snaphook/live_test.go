package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
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

func TestLiveViewOnTerminal(t *testing.T) {
	cfg := slowConfig(t)
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
	cmd := exec.CommandContext(ctx, binary, "run", "-c", cfg, "--fs", "tank/db", "--snapshot", "live", "--", "true")
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
	if err := cmd.Wait(); err != nil {
		t.Fatalf("snaphook: %v", err)
	}
	<-copied
	got := out.String()

	// The status line shows the running step and is rewritten in place.
	status := regexp.MustCompile(`\r(step 01/03 \[Exec\] \[[0-9.]+m?s\] ~ \[Pre\]  \S+/slow  \(tank/db@live\))\x1b\[K`)
	if n := len(status.FindAllString(got, -1)); n < 2 {
		t.Errorf("want at least 2 status updates of the running step, got %d:\n%q", n, got)
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

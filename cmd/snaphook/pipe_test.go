package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestRunSurvivesAClosedOutputPipe runs snaphook as in
// "snaphook run ... 2>&1 | head -n 2": stdout and stderr are one pipe whose
// reader goes away while a pre edge runs. snaphook must not die of SIGPIPE:
// the post edge runs and the exit status is the plan's.
func TestRunSurvivesAClosedOutputPipe(t *testing.T) {
	for _, tt := range []struct {
		name      string
		readLines int // what the reader reads before it closes
		flags     []string
	}{
		{"reader_gone_before_the_start", 0, nil},
		{"reader_gone_after_two_lines_as_with_head", 2, nil},
		{"reader_gone_after_two_lines_with_json", 2, []string{"--json"}},
		{"reader_gone_after_two_lines_on_debug", 2, []string{"--log-level", "debug"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			// The first hook's pre edge waits for a line on the gate, a FIFO,
			// so that the reader is gone while the plan is under way; its
			// post edge leaves a marker.
			gate := filepath.Join(dir, "gate")
			if err := syscall.Mkfifo(gate, 0o600); err != nil {
				t.Fatal(err)
			}
			// Held open for writing, so that the hook's open does not wait
			// for a writer, and a write here never waits for the hook.
			gateW, err := os.OpenFile(gate, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer gateW.Close()
			marker := filepath.Join(dir, "post-ran")
			first := script(t, dir, "first", `
case "$ZREPL_HOOKTYPE" in
pre_snapshot) echo waiting for the gate; read _ < "$GATE"; echo through the gate; echo on stderr too >&2 ;;
post_snapshot) echo thawing; touch "$MARKER" ;;
esac
exit 0`)
			fail := script(t, dir, "fail", `echo "cannot reach the admin socket" >&2; exit 3`)
			cfg := config(t, dir, "- {type: command, path: "+first+"}\n- {type: command, path: "+fail+"}\n")

			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			args := append([]string{"run", "-c", cfg, "--fs", "tank/db"}, tt.flags...)
			cmd := exec.CommandContext(ctx, binary, append(args, "--", "echo", "snapshot taken")...)
			cmd.Env = append(os.Environ(), "GATE="+gate, "MARKER="+marker)
			cmd.Stdout, cmd.Stderr = w, w // 2>&1
			if err := cmd.Start(); err != nil {
				w.Close()
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
			w.Close() // snaphook holds the only write end now

			sc := bufio.NewScanner(r)
			var read []string
			for len(read) < tt.readLines && sc.Scan() {
				read = append(read, sc.Text())
			}
			if len(read) < tt.readLines {
				t.Fatalf("read %d lines, want %d: %q", len(read), tt.readLines, read)
			}
			r.Close() // as head does after two lines
			if _, err := gateW.WriteString("open\n"); err != nil {
				t.Fatal(err)
			}

			err = cmd.Wait()
			if code := cmd.ProcessState.ExitCode(); code != exitHookError {
				t.Errorf("exit status %d (%v), want %d: a hook failed and the snapshot was taken", code, err, exitHookError)
			}
			if !exists(marker) {
				t.Errorf("the post edge of the first hook did not run")
			}
		})
	}
}

// TestHooksStartWithSIGPIPEDefault: snaphook survives a broken pipe by
// handling SIGPIPE, not by ignoring it, which hooks and CMD would inherit:
// "producer | head" in a hook would then no longer end the producer.
func TestHooksStartWithSIGPIPEDefault(t *testing.T) {
	dir := t.TempDir()
	hookStatus := filepath.Join(dir, "hook-status")
	cmdStatus := filepath.Join(dir, "cmd-status")
	// The shell's own status: a signal ignored at exec stays ignored.
	hook := script(t, dir, "hook", `[ "$ZREPL_HOOKTYPE" = pre_snapshot ] && grep '^SigIgn:' /proc/$$/status > "$OUT"; exit 0`)
	cfg := config(t, dir, "- {type: command, path: "+hook+"}\n")
	res := runSnaphook(t, invocation{
		args: []string{"run", "-c", cfg, "--fs", "tank/db", "--", "sh", "-c", `grep '^SigIgn:' /proc/$$/status > "$0"`, cmdStatus},
		env:  []string{"OUT=" + hookStatus},
	})
	if res.code != 0 {
		t.Fatalf("exit code %d; stderr:\n%s", res.code, res.stderr)
	}
	for _, f := range []string{hookStatus, cmdStatus} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var mask uint64
		if _, err := fmt.Sscanf(string(b), "SigIgn: %x", &mask); err != nil {
			t.Fatalf("%s: %q: %v", filepath.Base(f), b, err)
		}
		if mask&(1<<(uint(syscall.SIGPIPE)-1)) != 0 {
			t.Errorf("%s: SIGPIPE is ignored (%q)", filepath.Base(f), b)
		}
	}
}

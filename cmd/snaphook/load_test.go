package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/snaphooks/hooks"
)

// tooLargeMsg is what snaphook says of a hook list over hooks.MaxHookListSize.
const tooLargeMsg = "line 1: hook list is larger than 1 MiB, the most a hook list may be\n"

// A config file that never ends fails at the bound, for every command that
// reads one.
func TestConfigFileLargerThanBound(t *testing.T) {
	for _, args := range [][]string{
		{"check", "-c", "/dev/zero"},
		{"run", "-c", "/dev/zero", "--fs", "tank", "--", "true"},
		{"pre", "-c", "/dev/zero", "--fs", "tank"},
	} {
		t.Run(args[0], func(t *testing.T) {
			r := run(t, args...)
			if r.code != exitUsage {
				t.Fatalf("exit code %d, want %d; stderr:\n%s", r.code, exitUsage, r.stderr)
			}
			if want := "/dev/zero: " + tooLargeMsg; r.stderr != want {
				t.Errorf("stderr %q, want %q", r.stderr, want)
			}
		})
	}
}

// An endless stdin (-c -) fails at the bound: snaphook stops reading, so
// the test's writes to the pipe fail once it has exited.
func TestConfigStdinLargerThanBound(t *testing.T) {
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pw.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, "check", "-c", "-")
	cmd.Stdin = pr
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Start()
	pr.Close() // the child holds the read end now
	if err != nil {
		t.Fatal(err)
	}

	written := make(chan int64, 1)
	go func() {
		chunk := bytes.Repeat([]byte("# endless comment "), 4096)
		var n int64
		for {
			m, err := pw.Write(chunk)
			n += int64(m)
			if err != nil { // EPIPE: snaphook exited
				break
			}
		}
		pw.Close()
		written <- n
	}()

	err = cmd.Wait()
	n := <-written
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || exitErr.ExitCode() != exitUsage {
		t.Fatalf("snaphook check -c -: %v, want exit code %d; stderr:\n%s", err, exitUsage, stderr.String())
	}
	if want := stdinName + ": " + tooLargeMsg; stderr.String() != want {
		t.Errorf("stderr %q, want %q", stderr.String(), want)
	}
	// What snaphook read, plus what the pipe buffered, and no more.
	if n < hooks.MaxHookListSize || n > 2*hooks.MaxHookListSize {
		t.Errorf("the test wrote %d bytes before snaphook exited, want a little over %d", n, hooks.MaxHookListSize)
	}
	if strings.TrimSpace(stdout.String()) != "" {
		t.Errorf("stdout:\n%s", stdout.String())
	}
}

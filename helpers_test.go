package hooks

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// hookPath returns the absolute path of a script in testdata/hooks.
func hookPath(t testing.TB, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("testdata", "hooks", name))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// newCommandHook returns the command hook for testdata/hooks/name.
func newCommandHook(t testing.TB, name string, cfg HookConfig) *CommandHook {
	t.Helper()
	cfg.Type = TypeCommand
	cfg.Path = hookPath(t, name)
	h, err := NewCommandHook(cfg)
	if err != nil {
		t.Fatalf("NewCommandHook(%s): %v", name, err)
	}
	return h
}

// syncBuffer is a bytes.Buffer safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testLogger returns a debug-level logfmt logger and the buffer it writes to.
func testLogger() (*slog.Logger, *syncBuffer) {
	buf := new(syncBuffer)
	return slog.New(NewLogfmtHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

// readPID reads a pid written by a test script, waiting for the file.
func readPID(t testing.TB, path string) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := os.ReadFile(path)
		if err == nil && strings.HasSuffix(string(b), "\n") {
			pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
			if err != nil {
				t.Fatalf("bad pid file %s: %v", path, err)
			}
			return pid
		}
		if time.Now().After(deadline) {
			t.Fatalf("no pid in %s", path)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// processAlive reports whether pid is a live (non-zombie) process.
func processAlive(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return false
	}
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	// The state follows the command name in parentheses: "pid (comm) S ...".
	s := string(stat)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z'
	}
	return true
}

// requireGone fails the test unless pid is gone within a second: a process
// that got SIGKILL disappears at once, a zombie is waited for by its parent.
func requireGone(t testing.TB, pid int) {
	t.Helper()
	deadline := time.Now().Add(time.Second)
	for processAlive(pid) {
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("process %d of the hook outlived its step", pid)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// runShell runs line with sh -c and returns its combined output.
func runShell(t testing.TB, line string) (string, error) {
	t.Helper()
	out, err := exec.Command("/bin/sh", "-c", line).CombinedOutput()
	return string(out), err
}

// requireGroupGone fails the test unless no live process is left in the
// process group pgid (a hook's group: its main process's pid) within a second.
func requireGroupGone(t testing.TB, pgid int) {
	t.Helper()
	deadline := time.Now().Add(time.Second)
	for {
		members := groupMembers(pgid)
		if len(members) == 0 {
			return
		}
		if time.Now().After(deadline) {
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			t.Fatalf("processes %v of the hook's group %d outlived its step", members, pgid)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// groupMembers lists the live (non-zombie) processes of process group pgid.
func groupMembers(pgid int) []int {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var out []int
	for _, f := range stats {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		// After "pid (comm) ": state ppid pgrp ...
		fields := strings.Fields(s[i+1:])
		if len(fields) < 3 || fields[0] == "Z" || fields[2] != strconv.Itoa(pgid) {
			continue
		}
		pid, _ := strconv.Atoi(strings.Fields(s)[0])
		out = append(out, pid)
	}
	return out
}

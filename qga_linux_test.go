//go:build linux

package hooks

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// init lets the test binary answer RunWatchdog's re-execution: a copy of it
// started as a qemu-guest-agent watchdog runs the watchdog and exits before
// any test.
func init() {
	if os.Getenv(watchdogEnv) != "" {
		RunWatchdog()
	}
}

// qgaAllowed are the only commands the test agents answer. Above all,
// guest-fsfreeze-freeze (without a list) is blocked: on this host it would
// freeze every filesystem, / included, and stall the machine.
var qgaAllowed = []string{"guest-sync-delimited", "guest-sync", "guest-ping", "guest-info",
	"guest-fsfreeze-status", "guest-fsfreeze-freeze-list", "guest-fsfreeze-thaw"}

// startQGA starts the real qemu-ga on this host, listening on a unix socket
// in a temporary directory, with every command blocked but qgaAllowed, and
// returns the socket once the agent accepts connections. Cleanup stops it
// (after the cleanup of anything registered later, such as loop mounts,
// which thaw by themselves).
func startQGA(t *testing.T, extra ...string) string {
	t.Helper()
	requireFreezeTools(t, "qemu-ga")
	out, err := exec.Command("qemu-ga", "-b", "help").CombinedOutput()
	if err != nil {
		t.Fatalf("qemu-ga -b help: %v\n%s", err, out)
	}
	all := strings.Fields(string(out))
	if !slices.Contains(all, "guest-fsfreeze-freeze") {
		t.Fatalf("qemu-ga -b help does not list guest-fsfreeze-freeze, so the test cannot block it: %q", all)
	}
	var blocked []string
	for _, rpc := range all {
		if !slices.Contains(qgaAllowed, rpc) {
			blocked = append(blocked, rpc)
		}
	}
	dir := t.TempDir()
	sock := filepath.Join(dir, "qga.sock")
	state := filepath.Join(dir, "state")
	if err := os.Mkdir(state, 0o700); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"-m", "unix-listen", "-p", sock, "-t", state, "-f", filepath.Join(dir, "qga.pid"),
		"-l", filepath.Join(dir, "qga.log"), "-b", strings.Join(blocked, ",")}, extra...)
	cmd := exec.Command("qemu-ga", args...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "qga.log"))
			t.Logf("qemu-ga log:\n%s", b)
		}
	})
	await(t, time.Minute, "qemu-ga listening on "+sock, func() bool {
		c, err := net.Dial("unix", sock)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	requireFreezeAllDisabled(t, sock)
	return sock
}

// requireFreezeAllDisabled stops the test unless the agent at sock reports
// guest-fsfreeze-freeze disabled.
func requireFreezeAllDisabled(t *testing.T, sock string) {
	t.Helper()
	var info struct {
		SupportedCommands []struct {
			Name    string `json:"name"`
			Enabled bool   `json:"enabled"`
		} `json:"supported_commands"`
	}
	if err := qgaCall(context.Background(), sock, "guest-info", nil, &info); err != nil {
		t.Fatal(err)
	}
	for _, c := range info.SupportedCommands {
		if c.Name == "guest-fsfreeze-freeze" {
			if c.Enabled {
				t.Fatal("the test agent has guest-fsfreeze-freeze enabled: it could freeze /")
			}
			return
		}
	}
	t.Fatal("the test agent does not list guest-fsfreeze-freeze in guest-info")
}

func TestQGAFreezeListAndThaw(t *testing.T) {
	t.Run("timer_only", func(t *testing.T) { testQGAFreezeListAndThaw(t, false) })
	t.Run("with_the_watchdog_process", func(t *testing.T) { testQGAFreezeListAndThaw(t, true) })
}

func testQGAFreezeListAndThaw(t *testing.T, watchdog bool) {
	mnt := loopMount(t, "ext4")
	sock := startQGA(t)
	ctx := context.Background()
	if watchdog {
		watchdogServed.Store(true) // as RunWatchdog does
		t.Cleanup(func() { watchdogServed.Store(false) })
	}
	g, err := freezeGuest(ctx, sock, []string{mnt}, 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	defer g.release(ctx)
	if (g.watchdog != nil) != watchdog {
		t.Fatalf("watchdog process %v, want %v", g.watchdog != nil, watchdog)
	}
	var wdPIDs []int
	if watchdog {
		wdPIDs = append([]int{g.watchdog.pid()}, descendants(g.watchdog.pid())...)
	}
	if frozen, _ := g.counts(); frozen != 1 {
		t.Fatalf("frozen %d filesystems, want 1", frozen)
	}
	w := requireFrozen(t, mnt)
	if s, err := qgaStatus(ctx, sock); s != "frozen" || err != nil {
		t.Fatalf("status while frozen: %q, %v", s, err)
	}
	if err := g.release(ctx); err != nil {
		t.Fatalf("release: %v", err)
	}
	if _, thawed := g.counts(); thawed != 1 {
		t.Fatalf("thawed %d filesystems, want 1", thawed)
	}
	awaitWritten(t, w, w.Args[len(w.Args)-1], time.Minute)
	if s, err := qgaStatus(ctx, sock); s != "thawed" || err != nil {
		t.Fatalf("status after the thaw: %q, %v", s, err)
	}
	awaitGone(t, "the watchdog", wdPIDs...)
}

func TestQGAWatchdogThawsWhenTheHolderDies(t *testing.T) {
	mnt := loopMount(t, "ext4")
	sock := startQGA(t)
	const maxFreeze = 30 * time.Minute // far beyond the wait below: only the holder's death can thaw
	child, _ := startFreezeChildEnv(t, os.Args[0], "qga-freeze", []string{mnt}, maxFreeze, []string{"SNAPHOOKS_FREEZE_SOCKET=" + sock})
	w := requireFrozen(t, mnt)
	start := time.Now()
	if err := child.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	awaitWritten(t, w, w.Args[len(w.Args)-1], 5*time.Minute)
	t.Logf("thawed %s after the SIGKILL", time.Since(start))
	awaitGone(t, "the watchdog", child.watchdog)
	if s, err := qgaStatus(context.Background(), sock); s != "thawed" || err != nil {
		t.Fatalf("status after the watchdog's thaw: %q, %v", s, err)
	}
}

func TestQGAWatchdogThawsWhenTheHolderHangs(t *testing.T) {
	mnt := loopMount(t, "ext4")
	sock := startQGA(t)
	child, _ := startFreezeChildEnv(t, os.Args[0], "qga-hang", []string{mnt}, 2*time.Second, []string{"SNAPHOOKS_FREEZE_SOCKET=" + sock})
	w := startWriter(t, filepath.Join(mnt, "f"))
	awaitWritten(t, w, filepath.Join(mnt, "f"), 5*time.Minute)
	awaitGone(t, "the watchdog", child.watchdog)
	if err := child.cmd.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("the hung holder is gone (%v): the test proved nothing", err)
	}
}

func TestQGADeadlineThawsWithoutRelease(t *testing.T) {
	mnt := loopMount(t, "ext4")
	sock := startQGA(t)
	g, err := freezeGuest(context.Background(), sock, []string{mnt}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer g.release(context.Background())
	w := startWriter(t, filepath.Join(mnt, "f"))
	awaitWritten(t, w, filepath.Join(mnt, "f"), time.Minute)
	err = g.release(context.Background())
	if !errors.Is(err, errThawedByDeadline) || !strings.Contains(err.Error(), "after 1s: the snapshot may not be consistent") {
		t.Fatalf("release after the deadline: %v, want the deadline error", err)
	}
	if _, thawed := g.counts(); thawed != 1 {
		t.Fatalf("the deadline thawed %d filesystems, want 1", thawed)
	}
}

func TestQGAErrors(t *testing.T) {
	requireFreezeTools(t, "qemu-ga")
	dir := t.TempDir()
	ctx := context.Background()

	t.Run("no_socket", func(t *testing.T) {
		_, err := freezeGuest(ctx, filepath.Join(dir, "missing.qga"), []string{"/srv"}, time.Minute)
		if !errors.Is(err, errQGANotRunning) || !strings.Contains(err.Error(), "the agent is not running") {
			t.Fatalf("freeze without a socket: %v", err)
		}
	})
	t.Run("connection_refused", func(t *testing.T) {
		sock := filepath.Join(dir, "stale.qga")
		l, err := net.Listen("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		l.(*net.UnixListener).SetUnlinkOnClose(false)
		l.Close()
		_, err = qgaThaw(ctx, sock)
		if !errors.Is(err, errQGANotRunning) || !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("thaw on a socket nobody listens on: %v", err)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		sock := filepath.Join(dir, "mute.qga")
		l, err := net.Listen("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		accepted := make(chan net.Conn, 1)
		go func() {
			c, _ := l.Accept()
			accepted <- c
		}()
		tctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		_, err = qgaStatus(tctx, sock)
		if c := <-accepted; c != nil {
			c.Close()
		}
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "guest-fsfreeze-status: no answer") {
			t.Fatalf("status from an agent that never answers: %v", err)
		}
	})
	t.Run("the_guest_freeze_hook_fails", func(t *testing.T) {
		mnt := loopMount(t, "ext4")
		hook := filepath.Join(t.TempDir(), "fsfreeze-hook")
		script := "#!/bin/sh\n[ \"$1\" = freeze ] && exit 3\nexit 0\n"
		if err := os.WriteFile(hook, []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
		sock := startQGA(t, "-F"+hook)
		_, err := freezeGuest(ctx, sock, []string{mnt}, time.Minute)
		if err == nil || !strings.Contains(err.Error(), "guest-fsfreeze-freeze-list: the guest answered: ") {
			t.Fatalf("freeze with a failing guest hook: %v", err)
		}
		t.Logf("the agent's error: %v", err)
		if was, err := thawMount(mnt); was || err != nil {
			t.Fatalf("%s after the failed freeze: frozen %v, %v", mnt, was, err)
		}
		if s, err := qgaStatus(ctx, sock); s != "thawed" || err != nil {
			t.Fatalf("status after the failed freeze: %q, %v", s, err)
		}
	})
}

//go:build linux

package main

// "snaphook pre" and "snaphook post" with an fsfreeze hook, on a
// loop-mounted ext4 filesystem (root only): the holder keeps it frozen until
// post; max_freeze and --max-hold each bound the freeze; a kill -9 of the
// holder thaws it at once (the watchdog). Cleanup thaws the filesystem,
// also when a test fails.

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// freezeLoopMount makes an ext4 filesystem in a file, mounts it on a loop
// device and returns the mount point. Cleanup thaws, unmounts and detaches
// it. It skips the test unless it runs as root.
func freezeLoopMount(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: it loop-mounts and freezes a filesystem")
	}
	lockFreezeTests(t)
	dir := t.TempDir()
	img, mnt := filepath.Join(dir, "fs.img"), filepath.Join(dir, "mnt")
	run := func(name string, args ...string) string {
		t.Helper()
		out, err := exec.Command(name, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out))
	}
	run("truncate", "-s", "64M", img)
	run("mkfs.ext4", "-q", img)
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	dev := run("losetup", "--find", "--show", img)
	t.Cleanup(func() {
		exec.Command("fsfreeze", "--unfreeze", mnt).Run() // fails if not frozen: fine
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("cleanup: umount %s: %v\n%s", mnt, err, out)
		}
		if out, err := exec.Command("losetup", "-d", dev).CombinedOutput(); err != nil {
			t.Errorf("cleanup: losetup -d %s: %v\n%s", dev, err, out)
		}
	})
	run("mount", dev, mnt)
	return mnt
}

// freezeWriter starts a process that writes a file on mnt. Cleanup thaws mnt
// (a writer blocked on a frozen filesystem cannot be killed) and kills the
// writer if it still runs.
func freezeWriter(t *testing.T, mnt string) (*exec.Cmd, chan error) {
	t.Helper()
	w := exec.Command("/bin/sh", "-c", `echo written >"$1"`, "sh", filepath.Join(mnt, fmt.Sprintf("w-%d", time.Now().UnixNano())))
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- w.Wait() }()
	t.Cleanup(func() {
		exec.Command("fsfreeze", "--unfreeze", mnt).Run() // fails if not frozen: fine
		w.Process.Kill()
		<-done
		done <- nil // for a later reader
	})
	return w, done
}

// requireWriterBlocked waits until the writer sleeps in the wait for a
// frozen filesystem.
func requireWriterBlocked(t *testing.T, w *exec.Cmd, done chan error) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/wchan", w.Process.Pid))
		if string(b) == "percpu_rwsem_wait" {
			return
		}
		select {
		case err := <-done:
			done <- err
			t.Fatalf("the writer was not blocked: the filesystem is not frozen (%v)", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the writer never blocked on the frozen filesystem")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// requireWriterThrough waits up to within for the writer to finish.
func requireWriterThrough(t *testing.T, done chan error, within time.Duration, why string) {
	t.Helper()
	select {
	case err := <-done:
		done <- err
		if err != nil {
			t.Fatalf("writer: %v", err)
		}
	case <-time.After(within):
		t.Fatalf("the writer was still blocked %s after %s: the filesystem stayed frozen", within, why)
	}
}

// freezeConfig writes a hook list with one fsfreeze hook of mnt.
func freezeConfig(t *testing.T, mnt, maxFreeze string) string {
	t.Helper()
	return config(t, t.TempDir(), fmt.Sprintf(`
- type: fsfreeze
  mountpoints: [%s]
  max_freeze: %s
  err_is_fatal: true
  filesystems: {"tank/db<": true}
`, mnt, maxFreeze))
}

func TestSplitFsfreezeHeldUntilPost(t *testing.T) {
	mnt := freezeLoopMount(t)
	e := newSplitEnv(t)
	r, held := e.pre(t, nil, "-c", freezeConfig(t, mnt, "10m"), "--fs", "tank/db", "--snapshot", "s1", "--max-hold", "10m")
	if r.code != 0 {
		t.Fatalf("pre: exit code %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	w, done := freezeWriter(t, mnt)
	requireWriterBlocked(t, w, done)
	p := e.post(t, nil, "--fs", "tank/db")
	if p.code != 0 {
		t.Fatalf("post: exit code %d\n%s\n%s", p.code, p.stdout, p.stderr)
	}
	requireWriterThrough(t, done, time.Minute, "post")
	for _, want := range []string{"[Ok]", "fsthaw " + mnt, "ok: tank/db@s1"} {
		if !strings.Contains(p.stdout, want) {
			t.Errorf("post report lacks %q:\n%s", want, p.stdout)
		}
	}
	awaitHolderGone(t, held.HolderPID, 10*time.Second)
}

func TestSplitFsfreezeBoundedByMaxFreezeAndMaxHold(t *testing.T) {
	t.Run("max_freeze", func(t *testing.T) {
		mnt := freezeLoopMount(t)
		e := newSplitEnv(t)
		r, held := e.pre(t, nil, "-c", freezeConfig(t, mnt, "1s"), "--fs", "tank/db", "--snapshot", "s1", "--max-hold", "10m")
		if r.code != 0 {
			t.Fatalf("pre: exit code %d\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		_, done := freezeWriter(t, mnt)
		requireWriterThrough(t, done, time.Minute, "max_freeze 1s, without post")
		p := e.post(t, nil, "--fs", "tank/db")
		if p.code == 0 || !strings.Contains(p.stdout, "thawed by the deadline after 1s: the snapshot may not be consistent") {
			t.Errorf("post after max_freeze: exit code %d, want an error that says the deadline thawed\n%s\n%s", p.code, p.stdout, p.stderr)
		}
		awaitHolderGone(t, held.HolderPID, 10*time.Second)
	})
	t.Run("max_hold", func(t *testing.T) {
		mnt := freezeLoopMount(t)
		e := newSplitEnv(t)
		r, held := e.pre(t, nil, "-c", freezeConfig(t, mnt, "10m"), "--fs", "tank/db", "--snapshot", "s1", "--max-hold", "2s")
		if r.code != 0 {
			t.Fatalf("pre: exit code %d\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		_, done := freezeWriter(t, mnt)
		requireWriterThrough(t, done, time.Minute, "--max-hold 2s, without post")
		awaitHolderGone(t, held.HolderPID, time.Minute)
	})
}

func TestSplitFsfreezeKill9OfTheHolderThaws(t *testing.T) {
	mnt := freezeLoopMount(t)
	e := newSplitEnv(t)
	r, held := e.pre(t, nil, "-c", freezeConfig(t, mnt, "10m"), "--fs", "tank/db", "--snapshot", "s1", "--max-hold", "10m")
	if r.code != 0 {
		t.Fatalf("pre: exit code %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	w, done := freezeWriter(t, mnt)
	requireWriterBlocked(t, w, done)
	killHolder(t, held.HolderPID)
	// max_freeze and --max-hold are 10m: only the watchdog can thaw it.
	requireWriterThrough(t, done, time.Minute, "the holder was killed")
}

func TestCheckDescribesFreezeHooks(t *testing.T) {
	cfg := config(t, t.TempDir(), `
- type: fsfreeze
  mountpoints: [/srv/db, /srv/log]
  filesystems: {"tank/db<": true}
- type: qemu-guest-agent
  socket: /var/run/qemu-server/101.qga
  max_freeze: 3s
  filesystems: {"rpool/data/vm-101-disk-0": true}
`)
	r := run(t, "check", "-c", cfg)
	if r.code != 0 {
		t.Fatalf("exit code %d; stderr:\n%s", r.code, r.stderr)
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^1\s+fsfreeze\s+fsfreeze /srv/db, /srv/log \(max_freeze 10s\)\s+30s\s`),
		regexp.MustCompile(`(?m)^2\s+qemu-guest-agent\s+qemu-guest-agent freeze \(/var/run/qemu-server/101\.qga\) \(max_freeze 3s\)\s+30s\s`),
	} {
		if !want.MatchString(r.stdout) {
			t.Errorf("check output lacks %q:\n%s", want, r.stdout)
		}
	}
}

// qgaAllowed are the only commands the test agent answers: above all,
// guest-fsfreeze-freeze (without a list) is blocked, which on this host
// would freeze every filesystem, / included.
var qgaAllowed = []string{"guest-sync-delimited", "guest-sync", "guest-ping", "guest-info",
	"guest-fsfreeze-status", "guest-fsfreeze-freeze-list", "guest-fsfreeze-thaw"}

// freezeTestsLock is held, once taken, until this test binary exits.
var freezeTestsLock struct {
	once sync.Once
	file *os.File // kept reachable: a collected *os.File closes its descriptor, and the lock with it
	err  error
}

// lockFreezeTests keeps the freeze tests of this test binary apart from
// those of the hooks package, which go test runs at the same time: qemu-ga's
// guest-fsfreeze-thaw thaws every frozen filesystem of the host. It takes
// the same flock as lockFreezeTests of the hooks package's tests, and keeps
// it until this process exits.
func lockFreezeTests(t *testing.T) {
	t.Helper()
	freezeTestsLock.once.Do(func() {
		f, err := os.OpenFile(filepath.Join(os.TempDir(), "snaphooks-freeze-tests.lock"), os.O_CREATE|os.O_RDWR, 0o600)
		if err != nil {
			freezeTestsLock.err = err
			return
		}
		freezeTestsLock.file = f
		freezeTestsLock.err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
	})
	if freezeTestsLock.err != nil {
		t.Fatalf("lock the freeze tests: %v", freezeTestsLock.err)
	}
}

// startTestQGA starts Debian's qemu-ga on this host in listen mode, with
// every command but qgaAllowed blocked, and returns its socket once it
// accepts connections. Cleanup stops it.
func startTestQGA(t *testing.T) string {
	t.Helper()
	lockFreezeTests(t)
	out, err := exec.Command("qemu-ga", "-b", "help").CombinedOutput()
	if err != nil {
		t.Fatalf("qemu-ga -b help (scripts/test.sh installs qemu-guest-agent): %v\n%s", err, out)
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
	dir, err := os.MkdirTemp("", "qga-") // short: a socket path must fit in 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "qga.sock")
	cmd := exec.Command("qemu-ga", "-m", "unix-listen", "-p", sock, "-t", dir, "-f", filepath.Join(dir, "qga.pid"),
		"-l", filepath.Join(dir, "qga.log"), "-b", strings.Join(blocked, ","))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		stop := time.AfterFunc(10*time.Second, func() { cmd.Process.Kill() })
		defer stop.Stop()
		cmd.Wait()
	})
	deadline := time.Now().Add(time.Minute)
	for {
		c, err := net.Dial("unix", sock)
		if err == nil {
			c.Close()
			return sock
		}
		if time.Now().After(deadline) {
			t.Fatalf("qemu-ga never listened on %s: %v", sock, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestSplitQGAKill9OfTheHolderThaws: the holder of a qemu-guest-agent
// freeze is killed; the watchdog, a copy of snaphook that main's
// hooks.RunWatchdog() runs, thaws the guest at once.
func TestSplitQGAKill9OfTheHolderThaws(t *testing.T) {
	mnt := freezeLoopMount(t)
	sock := startTestQGA(t)
	cfg := config(t, t.TempDir(), fmt.Sprintf(`
- type: qemu-guest-agent
  socket: %s
  mountpoints: [%s]
  max_freeze: 10m
  err_is_fatal: true
  filesystems: {"tank/db<": true}
`, sock, mnt))
	e := newSplitEnv(t)
	r, held := e.pre(t, nil, "-c", cfg, "--fs", "tank/db", "--snapshot", "s1", "--max-hold", "10m")
	if r.code != 0 {
		t.Fatalf("pre: exit code %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	w, done := freezeWriter(t, mnt)
	requireWriterBlocked(t, w, done)
	killHolder(t, held.HolderPID)
	// max_freeze and --max-hold are 10m: only the watchdog can thaw it.
	requireWriterThrough(t, done, time.Minute, "the holder was killed")
}

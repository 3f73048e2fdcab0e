//go:build linux

package hooks

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// requireFreezeTools skips the test unless it runs as root, and fails it if
// root lacks a tool the freeze tests need: in CI (root) they must run.
func requireFreezeTools(t *testing.T, tools ...string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: it loop-mounts and freezes filesystems")
	}
	for _, tool := range append([]string{"losetup", "mount", "umount", "sh", "timeout", "head", "fsfreeze"}, tools...) {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is missing (scripts/test.sh installs it): %v", tool, err)
		}
	}
	lockFreezeTests(t)
}

// freezeTestsLock is held, once taken, until this test binary exits.
var freezeTestsLock struct {
	once sync.Once
	file *os.File // kept reachable: a collected *os.File closes its descriptor, and the lock with it
	err  error
}

// lockFreezeTests keeps the freeze tests of this test binary apart from
// those of other test binaries (go test runs packages at the same time):
// qemu-ga's guest-fsfreeze-thaw thaws every frozen filesystem it finds on
// this host, not only those it froze, so the tests of one package would
// thaw what another's expect frozen. The first freeze test takes an
// exclusive flock on a file every package's freeze tests lock, and this
// process keeps it until it exits (the kernel drops it then, whatever the
// way out).
func lockFreezeTests(t *testing.T) {
	t.Helper()
	freezeTestsLock.once.Do(func() {
		f, err := os.OpenFile(filepath.Join(os.TempDir(), "snaphooks-freeze-tests.lock"), os.O_CREATE|os.O_RDWR, 0o600)
		if err != nil {
			freezeTestsLock.err = err
			return
		}
		freezeTestsLock.file = f
		freezeTestsLock.err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
	})
	if freezeTestsLock.err != nil {
		t.Fatalf("lock the freeze tests: %v", freezeTestsLock.err)
	}
}

// loopMount makes a fstype filesystem in a file under t.TempDir, mounts it
// on a loop device and returns the mount point. Cleanup thaws it (a frozen
// filesystem left behind would stall every writer), unmounts it and detaches
// the loop device, also when the test fails.
func loopMount(t *testing.T, fstype string) string {
	t.Helper()
	dir := t.TempDir()
	img, mnt := filepath.Join(dir, fstype+".img"), filepath.Join(dir, "mnt")
	size := "64M"
	if fstype == "xfs" {
		size = "300M" // mkfs.xfs's minimum; the file is sparse
	}
	run := func(name string, args ...string) string {
		t.Helper()
		out, err := exec.Command(name, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out))
	}
	run("truncate", "-s", size, img)
	run("mkfs."+fstype, "-q", img)
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	dev := run("losetup", "--find", "--show", img)
	t.Cleanup(func() {
		if _, err := thawMount(mnt); err != nil {
			t.Errorf("cleanup: %v", err)
		}
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

// startWriter starts a process that creates the file path; on a frozen
// filesystem it blocks until the thaw. Cleanup kills it if it is still there.
func startWriter(t *testing.T, path string) *exec.Cmd {
	t.Helper()
	w := exec.Command("/bin/sh", "-c", `echo written >"$1"`, "sh", path)
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		w.Process.Kill()
		w.Wait()
	})
	return w
}

// awaitBlockedOnFreeze waits until the process pid sleeps in the kernel's
// wait for a frozen filesystem (its wchan is percpu_rwsem_wait).
func awaitBlockedOnFreeze(t *testing.T, pid int) {
	t.Helper()
	await(t, 60*time.Second, fmt.Sprintf("writer %d blocked by the freeze", pid), func() bool {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/wchan", pid))
		return string(b) == "percpu_rwsem_wait"
	})
}

// awaitWritten waits for the writer to exit and checks it wrote path.
func awaitWritten(t *testing.T, w *exec.Cmd, path string, within time.Duration) {
	t.Helper()
	exited := make(chan error, 1)
	go func() { exited <- w.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("writer: %v", err)
		}
	case <-time.After(within):
		w.Process.Kill()
		<-exited
		t.Fatalf("the writer of %s was still blocked after %s: the filesystem was not thawed", path, within)
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != "written\n" {
		t.Fatalf("read %s: %q, %v", path, b, err)
	}
}

// await polls cond until it holds, failing the test after within.
func await(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for: %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// descendants lists the live descendants of pid.
func descendants(pid int) []int {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	var out []int
	for _, f := range strings.Fields(string(b)) {
		c, _ := strconv.Atoi(f)
		out = append(out, c)
		out = append(out, descendants(c)...)
	}
	return out
}

// awaitGone waits until none of pids is alive (zombies count as gone).
func awaitGone(t *testing.T, what string, pids ...int) {
	t.Helper()
	await(t, 60*time.Second, what+" gone", func() bool {
		for _, p := range pids {
			if processAlive(p) {
				return false
			}
		}
		return true
	})
}

// requireFrozen fails unless mnt is frozen: a writer blocks on it. It thaws
// nothing.
func requireFrozen(t *testing.T, mnt string) *exec.Cmd {
	t.Helper()
	w := startWriter(t, filepath.Join(mnt, fmt.Sprintf("probe-%d", time.Now().UnixNano())))
	awaitBlockedOnFreeze(t, w.Process.Pid)
	return w
}

func TestFsfreezeWritersBlockUntilRelease(t *testing.T) {
	requireFreezeTools(t, "mkfs.xfs", "mkfs.ext4")
	for _, fstypes := range [][]string{{"xfs"}, {"ext4"}, {"xfs", "ext4"}} {
		t.Run(strings.Join(fstypes, "_and_"), func(t *testing.T) {
			var mounts []string
			for _, fs := range fstypes {
				mounts = append(mounts, loopMount(t, fs))
			}
			begin := time.Now()
			f, err := freezeFilesystems(context.Background(), mounts, 10*time.Minute, nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("syncfs, watchdog start and freeze in %s", time.Since(begin))
			wdPIDs := append([]int{f.watchdog.pid()}, descendants(f.watchdog.pid())...)
			var writers []*exec.Cmd
			for _, m := range mounts {
				writers = append(writers, requireFrozen(t, m))
			}
			start := time.Now()
			if err := f.release(context.Background()); err != nil {
				t.Fatalf("release: %v", err)
			}
			for i, w := range writers {
				awaitWritten(t, w, w.Args[len(w.Args)-1], time.Minute)
				if was, err := thawMount(mounts[i]); was || err != nil {
					t.Errorf("%s after release: frozen %v, %v", mounts[i], was, err)
				}
			}
			t.Logf("release and writers through in %s", time.Since(start))
			awaitGone(t, "the watchdog and its children", wdPIDs...)
			if err := f.release(context.Background()); err != nil {
				t.Errorf("second release: %v", err)
			}
		})
	}
}

func TestFsfreezeDeadlineThawsWithoutRelease(t *testing.T) {
	requireFreezeTools(t, "mkfs.ext4")
	mnt := loopMount(t, "ext4")
	f, err := freezeFilesystems(context.Background(), []string{mnt}, time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer f.release(context.Background())
	w := startWriter(t, filepath.Join(mnt, "f"))
	// The writer may block or, on a slow machine, arrive after the deadline:
	// either way it must get through without a release.
	awaitWritten(t, w, filepath.Join(mnt, "f"), time.Minute)
	err = f.release(context.Background())
	if !errors.Is(err, errThawedByDeadline) || !strings.Contains(err.Error(), "after 1s: the snapshot may not be consistent") {
		t.Fatalf("release after the deadline: %v, want the deadline error", err)
	}
	awaitGone(t, "the watchdog", f.watchdog.pid())
}

func TestFsfreezeFailedFreezeThawsTheEarlierOnes(t *testing.T) {
	requireFreezeTools(t, "mkfs.ext4")
	first, second := loopMount(t, "ext4"), loopMount(t, "ext4")
	if out, err := exec.Command("fsfreeze", "--freeze", second).CombinedOutput(); err != nil {
		t.Fatalf("fsfreeze --freeze %s: %v\n%s", second, err, out)
	}
	_, err := freezeFilesystems(context.Background(), []string{first, second}, time.Minute, nil)
	if err == nil || !strings.Contains(err.Error(), "fsfreeze "+second+": already frozen") {
		t.Fatalf("freeze with %s already frozen: %v", second, err)
	}
	if was, err := thawMount(first); was || err != nil {
		t.Fatalf("%s after the failed freeze: frozen %v, %v", first, was, err)
	}
}

func TestFsfreezeWatchdogHandOverThawsAtOnce(t *testing.T) {
	requireFreezeTools(t, "mkfs.ext4")
	mnt := loopMount(t, "ext4")
	wd, err := startThawWatchdog([]string{mnt}, 30*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	pids := append([]int{wd.pid()}, descendants(wd.pid())...)
	if err := onMount(mnt, func(fd int) error { return unix.IoctlSetInt(fd, ioctlFIFREEZE, 0) }); err != nil {
		wd.stop(context.Background())
		t.Fatal(err)
	}
	if err := wd.handOver(context.Background()); err != nil {
		t.Fatalf("hand over: %v", err)
	}
	awaitGone(t, "the watchdog and its children", pids...)
	if was, err := thawMount(mnt); was || err != nil {
		t.Fatalf("%s after the hand-over: frozen %v, %v", mnt, was, err)
	}
}

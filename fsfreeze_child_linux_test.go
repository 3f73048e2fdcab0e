//go:build linux

package hooks

// Tests in which another process freezes: the test binary re-executed with
// SNAPHOOKS_FREEZE_CHILD set, so that the test can SIGKILL or stop it.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestFsfreezeHelperProcess is not a test: it is the child process of the
// tests below, and returns at once without SNAPHOOKS_FREEZE_CHILD. Modes:
//   - freeze: freezeFilesystems, print "frozen WATCHDOG-PID", block on stdin;
//   - hang: start the watchdog and freeze with no timer in this process (a
//     holder that hangs; only the first SNAPHOOKS_FREEZE_COUNT mounts if
//     set: a holder stopped between two freezes), print "frozen
//     WATCHDOG-PID", block on stdin;
//   - check: print the error of checkFsfreeze, or "ok";
//   - qga-freeze: RunWatchdog, then freezeGuest through the agent at
//     SNAPHOOKS_FREEZE_SOCKET, print "frozen WATCHDOG-PID", block on stdin;
//   - qga-hang: RunWatchdog, start the watchdog and freeze through the agent
//     with no timer in this process, print "frozen WATCHDOG-PID", block.
func TestFsfreezeHelperProcess(t *testing.T) {
	mode := os.Getenv("SNAPHOOKS_FREEZE_CHILD")
	if mode == "" {
		return
	}
	mounts := strings.Split(os.Getenv("SNAPHOOKS_FREEZE_MOUNTS"), "\n")
	maxFreeze, _ := time.ParseDuration(os.Getenv("SNAPHOOKS_FREEZE_MAX"))
	switch mode {
	case "freeze":
		f, err := freezeFilesystems(context.Background(), mounts, maxFreeze, nil)
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println("frozen", f.watchdog.pid())
	case "hang":
		wd, err := startThawWatchdog(mounts, maxFreeze)
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		n := len(mounts)
		if c := os.Getenv("SNAPHOOKS_FREEZE_COUNT"); c != "" {
			n, _ = strconv.Atoi(c)
		}
		for _, m := range mounts[:n] {
			if err := onMount(m, func(fd int) error { return unix.IoctlSetInt(fd, ioctlFIFREEZE, 0) }); err != nil {
				fmt.Println("error:", err)
				os.Exit(1)
			}
		}
		fmt.Println("frozen", wd.pid())
	case "qga-freeze", "qga-hang":
		RunWatchdog() // opts in: the watchdog is a copy of this binary (see init in qga_linux_test.go)
		sock := os.Getenv("SNAPHOOKS_FREEZE_SOCKET")
		var wd *thawWatchdog
		var err error
		if mode == "qga-freeze" {
			var g *frozenGuest
			if g, err = freezeGuest(context.Background(), sock, mounts, maxFreeze); err == nil {
				wd = g.watchdog
			}
		} else if wd, err = startQGAWatchdog(sock, maxFreeze); err == nil {
			_, err = qgaFreeze(context.Background(), sock, mounts)
		}
		if err != nil || wd == nil {
			fmt.Println("error:", err, "watchdog", wd)
			os.Exit(1)
		}
		fmt.Println("frozen", wd.pid())
	case "check":
		if _, err := checkFsfreeze(mounts, nil); err != nil {
			fmt.Println(err)
		} else {
			fmt.Println("ok")
		}
		os.Exit(0)
	}
	io.Copy(io.Discard, os.Stdin) // until killed
	os.Exit(0)
}

// freezeChild is a child process that froze filesystems.
type freezeChild struct {
	cmd      *exec.Cmd
	watchdog int
}

// startFreezeChild runs exe (the test binary or a copy) as the helper process
// in mode, and, for freeze and hang, waits until it has frozen. Cleanup kills
// it.
func startFreezeChild(t *testing.T, exe, mode string, mounts []string, maxFreeze time.Duration, wrap ...string) (*freezeChild, string) {
	t.Helper()
	return startFreezeChildEnv(t, exe, mode, mounts, maxFreeze, nil, wrap...)
}

// startFreezeChildEnv is startFreezeChild with more environment.
func startFreezeChildEnv(t *testing.T, exe, mode string, mounts []string, maxFreeze time.Duration, env []string, wrap ...string) (*freezeChild, string) {
	t.Helper()
	args := append(wrap, exe, "-test.run=^TestFsfreezeHelperProcess$")
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(append(os.Environ(), env...), "SNAPHOOKS_FREEZE_CHILD="+mode,
		"SNAPHOOKS_FREEZE_MOUNTS="+strings.Join(mounts, "\n"), "SNAPHOOKS_FREEZE_MAX="+maxFreeze.String())
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		stdin.Close()
		cmd.Wait()
	})
	line, _ := bufio.NewReader(out).ReadString('\n')
	line = strings.TrimSpace(line)
	c := &freezeChild{cmd: cmd}
	if mode == "check" {
		return c, line
	}
	pid, ok := strings.CutPrefix(line, "frozen ")
	if !ok {
		t.Fatalf("child %s: %q", mode, line)
	}
	c.watchdog, _ = strconv.Atoi(pid)
	return c, line
}

func TestFsfreezeKill9OfTheHolderThawsAtOnce(t *testing.T) {
	requireFreezeTools(t, "mkfs.xfs", "mkfs.ext4")
	mounts := []string{loopMount(t, "xfs"), loopMount(t, "ext4")}
	const maxFreeze = 30 * time.Minute // far beyond the wait below: only the holder's death can thaw
	child, _ := startFreezeChild(t, os.Args[0], "freeze", mounts, maxFreeze)
	wdPIDs := append([]int{child.watchdog}, descendants(child.watchdog)...)
	var writers []*exec.Cmd
	for _, m := range mounts {
		writers = append(writers, requireFrozen(t, m))
	}
	start := time.Now()
	if err := child.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for _, w := range writers {
		awaitWritten(t, w, w.Args[len(w.Args)-1], 5*time.Minute)
	}
	t.Logf("thawed %s after the SIGKILL; watchdog processes %v gone", time.Since(start), wdPIDs)
	awaitGone(t, "the watchdog and its children", wdPIDs...)
}

// TestFsfreezeKill9AtEveryStep kills the holder after it started the
// watchdog, between two freezes, and after both: the watchdog thaws what is
// frozen and exits, leaving nothing frozen.
func TestFsfreezeKill9AtEveryStep(t *testing.T) {
	requireFreezeTools(t, "mkfs.ext4")
	for n, step := range []string{"watchdog_started_nothing_frozen", "first_of_two_frozen", "both_frozen"} {
		t.Run(step, func(t *testing.T) {
			mounts := []string{loopMount(t, "ext4"), loopMount(t, "ext4")}
			child, _ := startFreezeChildEnv(t, os.Args[0], "hang", mounts, 30*time.Minute,
				[]string{"SNAPHOOKS_FREEZE_COUNT=" + strconv.Itoa(n)})
			wdPIDs := append([]int{child.watchdog}, descendants(child.watchdog)...)
			if err := child.cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			awaitGone(t, "the watchdog and its children", wdPIDs...) // it thaws before it exits
			for _, m := range mounts {
				if was, err := thawMount(m); was || err != nil {
					t.Errorf("%s after the watchdog exited: frozen %v, %v", m, was, err)
				}
			}
		})
	}
}

func TestFsfreezeWatchdogThawsWhenTheHolderHangs(t *testing.T) {
	requireFreezeTools(t, "mkfs.ext4")
	mnt := loopMount(t, "ext4")
	child, _ := startFreezeChild(t, os.Args[0], "hang", []string{mnt}, 2*time.Second)
	wdPIDs := append([]int{child.watchdog}, descendants(child.watchdog)...)
	w := startWriter(t, filepath.Join(mnt, "f"))
	awaitWritten(t, w, filepath.Join(mnt, "f"), 5*time.Minute)
	awaitGone(t, "the watchdog and its children", wdPIDs...)
	if err := child.cmd.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("the hung holder is gone (%v): the test proved nothing", err)
	}
}

func TestFsfreezeRefuses(t *testing.T) {
	requireFreezeTools(t, "mkfs.ext4")
	mnt := loopMount(t, "ext4")
	sub := filepath.Join(mnt, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	tmpfs := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", tmpfs).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v\n%s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", tmpfs).Run() })
	for _, tc := range []struct {
		name   string
		mounts []string
		kept   []keptPath
		setup  func(t *testing.T)
		want   string
	}{
		{name: "the_root_filesystem", mounts: []string{"/"}, want: "fsfreeze /: refused: its filesystem holds the root filesystem"},
		{name: "a_relative_path", mounts: []string{"srv/db"}, want: `fsfreeze "srv/db": not an absolute path`},
		{name: "a_directory_that_is_not_a_mount_point", mounts: []string{sub}, want: "fsfreeze " + sub + ": not a mount point (it is inside " + mnt + ")"},
		{name: "a_missing_path", mounts: []string{filepath.Join(mnt, "nope")}, want: "no such file or directory"},
		{name: "a_filesystem_that_cannot_be_frozen", mounts: []string{tmpfs}, want: "a tmpfs filesystem cannot be frozen"},
		{name: "the_same_filesystem_twice", mounts: []string{mnt, mnt}, want: "the same filesystem as " + mnt},
		{name: "nothing", want: "no mount points to freeze"},
		{name: "the_working_directory", mounts: []string{mnt}, setup: func(t *testing.T) { t.Chdir(sub) },
			want: "refused: its filesystem holds the working directory of this process (" + sub + ")"},
		{name: "the_temporary_directory", mounts: []string{mnt}, setup: func(t *testing.T) { t.Setenv("TMPDIR", sub) },
			want: "refused: its filesystem holds the temporary directory"},
		{name: "the_runtime_directory", mounts: []string{mnt}, setup: func(t *testing.T) { t.Setenv("SNAPHOOK_RUN_DIR", filepath.Join(mnt, "run", "snaphook")) },
			want: "refused: its filesystem holds snaphook's runtime directory (" + mnt + ")"},
		{name: "a_kept_path_of_the_caller", mounts: []string{mnt}, kept: []keptPath{{filepath.Join(sub, "snaphook.log"), "the log file"}},
			want: "refused: its filesystem holds the log file (" + sub + ")"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.setup != nil {
				tc.setup(t)
			}
			_, err := freezeFilesystems(context.Background(), tc.mounts, time.Minute, tc.kept)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("freeze %q: %v, want an error with %q", tc.mounts, err, tc.want)
			}
			if _, err := checkFsfreeze(tc.mounts, tc.kept); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("dry run %q: %v, want an error with %q", tc.mounts, err, tc.want)
			}
		})
	}
	if was, err := thawMount(mnt); was || err != nil {
		t.Fatalf("%s after the refusals: frozen %v, %v", mnt, was, err)
	}
}

// TestFsfreezeRefusesTheMountOfTheExecutable runs a copy of the test binary
// from the filesystem it is asked to freeze.
func TestFsfreezeRefusesTheMountOfTheExecutable(t *testing.T) {
	requireFreezeTools(t, "mkfs.ext4")
	mnt := loopMount(t, "ext4")
	exe := filepath.Join(mnt, "hooks.test")
	copyFile(t, os.Args[0], exe, 0o755)
	_, out := startFreezeChild(t, exe, "check", []string{mnt}, time.Minute)
	if want := "refused: its filesystem holds the executable of this process (" + exe + ")"; !strings.Contains(out, want) {
		t.Fatalf("dry run from a binary on %s: %q, want %q", mnt, out, want)
	}
}

func TestFsfreezeWithoutCapSysAdmin(t *testing.T) {
	requireFreezeTools(t, "mkfs.ext4", "setpriv")
	mnt := loopMount(t, "ext4")
	drop := []string{"setpriv", "--inh-caps=-sys_admin", "--bounding-set=-sys_admin", "--"}
	_, out := startFreezeChild(t, os.Args[0], "check", []string{mnt}, time.Minute, drop...)
	if out != errFreezeNeedsRoot.Error() {
		t.Fatalf("dry run without CAP_SYS_ADMIN: %q, want %q", out, errFreezeNeedsRoot)
	}
	if !errors.Is(freezeError(mnt, syscall.EPERM), errFreezeNeedsRoot) {
		t.Fatal("EPERM of FIFREEZE does not say that fsfreeze needs root")
	}
}

// copyFile copies src to dst with mode.
func copyFile(t *testing.T, src, dst string, mode os.FileMode) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

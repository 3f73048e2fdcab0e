//go:build e2e

package e2e_test

// Shared helpers: the environment scripts/e2e.sh sets, btrfs snapshots
// through a plan's callback, restores, and server processes on the copies.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/snaphooks/hooks"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if os.Getenv("SNAPHOOKS_E2E") != "1" {
		fmt.Fprintln(os.Stderr, "the end-to-end tests need the btrfs filesystem and servers of scripts/e2e.sh: run `bash scripts/e2e.sh` as root")
		os.Exit(2)
	}
	goleak.VerifyTestMain(m)
}

// getenv returns the environment variable name, which scripts/e2e.sh sets;
// the test fails when it is empty.
func getenv(t testing.TB, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		t.Fatalf("%s is not set: run the end-to-end tests with scripts/e2e.sh", name)
	}
	return v
}

// envInt returns the integer environment variable name, or def when unset.
func envInt(t testing.TB, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

// result logs a measurement for the script's summary.
func result(t testing.TB, format string, args ...any) {
	t.Helper()
	t.Logf("RESULT "+format, args...)
}

// snapSeq numbers the snapshots of a test run, so that names never clash.
var snapSeq atomic.Int64

// subvol is what a snapshot covers: a btrfs subvolume, or with block set the
// backing file of a loop-mounted volume (see block_test.go); the live one,
// and where its snapshot goes.
type subvol struct {
	name  string // short name, for logs: "data", "log", "wal"
	live  string // the live subvolume, or the volume's backing file
	snap  string // path of the read-only snapshot (set by newSnapshotSet), or of the file's copy
	block bool   // a volume: its snapshot is a reflink copy, its restore a mount of that copy
}

// newSnapshotSet returns the subvolumes with fresh snapshot paths under
// SNAPHOOKS_E2E_SNAPDIR, and deletes every snapshot taken at those paths when
// the test ends.
func newSnapshotSet(t testing.TB, prefix string, live map[string]string, order ...string) []subvol {
	t.Helper()
	dir := getenv(t, "SNAPHOOKS_E2E_SNAPDIR")
	n := snapSeq.Add(1)
	var set []subvol
	for _, name := range order {
		sv := subvol{name: name, live: live[name], snap: filepath.Join(dir, fmt.Sprintf("%s-%d-%s", prefix, n, name))}
		set = append(set, sv)
		t.Cleanup(func() { deleteSubvolume(t, sv.snap) })
	}
	return set
}

// btrfs returns the path of the btrfs program.
func btrfs(t testing.TB) string {
	t.Helper()
	return lookPath(t, "btrfs")
}

// lookPath returns the path of the program name.
func lookPath(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return p
}

// snapshotCallback returns a plan callback that takes a snapshot of each
// subvolume of set, in order, through hooks.NewCommandCallback: a read-only
// btrfs snapshot, or of a volume a reflink copy of its backing file (a
// block-level, point-in-time copy). between, when not nil, runs after
// snapshot i (before snapshot i+1); its error fails the callback.
func snapshotCallback(t testing.TB, set []subvol, between func(ctx context.Context, i int) error) hooks.HookJobCallback {
	t.Helper()
	var cbs []hooks.HookJobCallback
	for _, sv := range set {
		if sv.block {
			cbs = append(cbs, hooks.NewCommandCallback("volume snapshot "+sv.name, lookPath(t, "cp"),
				[]string{"--reflink=always", sv.live, sv.snap}, nil, time.Minute))
			continue
		}
		cbs = append(cbs, hooks.NewCommandCallback("btrfs snapshot "+sv.name, btrfs(t),
			[]string{"-q", "subvolume", "snapshot", "-r", sv.live, sv.snap}, nil, time.Minute))
	}
	return func(ctx context.Context) error {
		for i, cb := range cbs {
			if err := cb(ctx); err != nil {
				return err
			}
			if between != nil && i < len(cbs)-1 {
				if err := between(ctx, i); err != nil {
					return err
				}
			}
		}
		return nil
	}
}

// runPlan runs one plan of the hooks around cb for the dataset fs and fails
// the test if any step failed. It returns the report.
func runPlan(t testing.TB, ctx context.Context, list *hooks.List, fs string, cb hooks.HookJobCallback) hooks.PlanReport {
	t.Helper()
	filter, err := hooks.DatasetMapFilterFromConfig(map[string]bool{"<": true})
	if err != nil {
		t.Fatal(err)
	}
	plan, err := hooks.NewPlan(list, hooks.PhaseSnapshot, hooks.NewCallbackHook("btrfs snapshot", cb, filter),
		hooks.Env{hooks.EnvFS: fs, hooks.EnvSnapshot: "e2e"})
	if err != nil {
		t.Fatal(err)
	}
	plan.Run(ctx, false)
	rep := plan.Report()
	if rep.HadError() {
		t.Fatalf("plan for %s failed:\n%s", fs, rep)
	}
	return rep
}

// restoreCopy makes a writable snapshot of the read-only snapshot of sv, as a
// restore would, and returns its path. It is deleted when the test ends
// (after the servers started later are stopped: cleanups run last first).
// The copy of a volume is mounted instead (see mountVolume); the error is
// why it would not mount. Anything else that fails, fails the test.
func restoreCopy(t testing.TB, sv subvol) (string, error) {
	t.Helper()
	if sv.block {
		return mountVolume(t, sv)
	}
	dst := sv.snap + "-rw"
	t.Cleanup(func() { deleteSubvolume(t, dst) })
	out, err := exec.Command(btrfs(t), "-q", "subvolume", "snapshot", sv.snap, dst).CombinedOutput()
	if err != nil {
		t.Fatalf("restore %s: btrfs subvolume snapshot: %v: %s", sv.snap, err, out)
	}
	return dst, nil
}

// deleteSnapshot deletes the snapshot of sv, if there is one.
func deleteSnapshot(t testing.TB, sv subvol) {
	t.Helper()
	if !sv.block {
		deleteSubvolume(t, sv.snap)
		return
	}
	if err := os.Remove(sv.snap); err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Errorf("delete the volume snapshot %s: %v", sv.snap, err)
	}
}

// deleteSubvolume deletes the subvolume at path, if there is one.
func deleteSubvolume(t testing.TB, path string) {
	t.Helper()
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return
	}
	if out, err := exec.Command(btrfs(t), "-q", "subvolume", "delete", path).CombinedOutput(); err != nil {
		t.Errorf("delete snapshot %s: %v: %s", path, err, out)
	}
}

// freePort returns a TCP port of 127.0.0.1 that nobody listened on a moment
// ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// server is a database server the test started on a copy. It stays in the
// test binary's process group, so that scripts/e2e.sh ends it together with
// the test binary if the test itself cannot.
type server struct {
	name   string
	cmd    *exec.Cmd
	log    string        // path of its log
	exited chan struct{} // closed when the process has exited
	err    error         // of Wait, once exited is closed
}

// account is a user and group id.
type account struct{ uid, gid uint32 }

// lookupAccount returns the ids of the user name and its primary group.
func lookupAccount(t testing.TB, name string) account {
	t.Helper()
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		t.Fatalf("user %s: uid %q, gid %q", name, u.Uid, u.Gid)
	}
	return account{uint32(uid), uint32(gid)}
}

// startServer starts path with args, its stdout and stderr appended to
// logPath (which owner owns), as runAs unless that is nil (then as root), and
// stops it when the test ends: stop (a signal) first, SIGKILL after 30 s.
func startServer(t testing.TB, name, logPath string, owner account, runAs *account, stop syscall.Signal, path string, args ...string) *server {
	t.Helper()
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	if err := os.Chown(logPath, int(owner.uid), int(owner.gid)); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(path, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if runAs != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: runAs.uid, Gid: runAs.gid}}
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	s := &server{name: name, cmd: cmd, log: logPath, exited: make(chan struct{})}
	go func() {
		s.err = cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-s.exited:
			return
		default:
		}
		_ = cmd.Process.Signal(stop)
		select {
		case <-s.exited:
		case <-time.After(30 * time.Second):
			t.Errorf("%s did not stop within 30s of %v; killing it", name, stop)
			_ = cmd.Process.Kill()
			<-s.exited
		}
	})
	return s
}

// awaitReady calls ready every 20 ms until it succeeds, the server exits or
// the timeout passes. It returns how long that took.
func (s *server) awaitReady(timeout time.Duration, ready func() error) (time.Duration, error) {
	start := time.Now()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var err error
	for {
		if err = ready(); err == nil {
			return time.Since(start), nil
		}
		select {
		case <-s.exited:
			return time.Since(start), fmt.Errorf("%s exited (%v) before accepting connections", s.name, s.err)
		case <-tick.C:
		}
		if time.Since(start) > timeout {
			return time.Since(start), fmt.Errorf("%s did not accept connections within %s: %w", s.name, timeout, err)
		}
	}
}

// tailFile returns the last n lines of the file at path.
func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// median returns the median of ds (the mean of the middle two for an even
// count); 0 for none.
func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// spread returns "median (min–max)" of ds, formatted by f.
func spread(ds []time.Duration, f func(time.Duration) string) string {
	if len(ds) == 0 {
		return "-"
	}
	return fmt.Sprintf("%s (%s–%s)", f(median(ds)), f(slices.Min(ds)), f(slices.Max(ds)))
}

package main

// Tests of "snaphook pre" and "snaphook post" with command hooks: real
// processes and a real detached holder. The MariaDB tests are in
// split_mariadb_test.go.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// splitEnv is the private socket directory of a test's holds.
type splitEnv struct {
	dir string
	env []string
}

func newSplitEnv(t *testing.T) *splitEnv {
	t.Helper()
	// Short: a socket path must fit in 108 bytes.
	dir, err := os.MkdirTemp("", "sh-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	// A race-enabled binary sleeps 1 s at exit (GORACE atexit_sleep_ms),
	// which would make 100 back-to-back cycles take minutes.
	return &splitEnv{dir: dir, env: []string{runDirEnv + "=" + dir, "GORACE=atexit_sleep_ms=0"}}
}

// heldOutput is the part of "snaphook pre --json" the tests look at.
type heldOutput struct {
	Held      bool   `json:"held"`
	HolderPID int    `json:"holder_pid"`
	Result    string `json:"result"`
	PreError  bool   `json:"pre_error"`
	Steps     []struct {
		Edge   string `json:"edge"`
		Status string `json:"status"`
	} `json:"steps"`
}

// pre runs "snaphook pre --json" with args. If it leaves a holder, the
// holder is killed when the test ends, and must be gone.
func (e *splitEnv) pre(t *testing.T, extraEnv []string, args ...string) (result, heldOutput) {
	t.Helper()
	r := runSnaphook(t, invocation{args: append([]string{"pre", "--json"}, args...), env: append(append([]string{}, e.env...), extraEnv...)})
	var h heldOutput
	if r.code == 0 {
		if err := json.Unmarshal([]byte(r.stdout), &h); err != nil || !h.Held || h.HolderPID <= 0 {
			t.Fatalf("pre exited 0 without a hold (%v):\n%s\nstderr:\n%s", err, r.stdout, r.stderr)
		}
		pid := h.HolderPID
		t.Cleanup(func() { killHolder(t, pid) })
	}
	return r, h
}

// statuses returns "edge:status" for every step.
func (h heldOutput) statuses() []string {
	var s []string
	for _, st := range h.Steps {
		s = append(s, st.Edge+":"+st.Status)
	}
	return s
}

// post runs "snaphook post" with args.
func (e *splitEnv) post(t *testing.T, extraEnv []string, args ...string) result {
	t.Helper()
	return runSnaphook(t, invocation{args: append([]string{"post"}, args...), env: append(append([]string{}, e.env...), extraEnv...)})
}

// holderAlive reports whether pid is a live (not zombie) snaphook holder.
func holderAlive(pid int) bool {
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !bytes.Contains(cmdline, []byte(holderCommand)) {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(stat, ')')
	return i >= 0 && !strings.HasPrefix(strings.TrimSpace(string(stat[i+1:])), "Z")
}

// awaitHolderGone waits up to d for the holder pid to exit and fails the
// test if it does not.
func awaitHolderGone(t *testing.T, pid int, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for holderAlive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("holder %d still runs after %s", pid, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// killHolder kills the holder pid if it still runs and checks it is gone.
func killHolder(t *testing.T, pid int) {
	t.Helper()
	if holderAlive(pid) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	awaitHolderGone(t, pid, 10*time.Second)
}

func TestSplitPrePostCommandHooks(t *testing.T) {
	e := newSplitEnv(t)
	dir := t.TempDir()
	trace := filepath.Join(dir, "trace")
	hook := script(t, dir, "hook", `echo "$ZREPL_HOOKTYPE $ZREPL_FS $ZREPL_SNAPNAME" >> "$TRACE"; echo "said $ZREPL_HOOKTYPE"`)
	cfg := config(t, dir, "- {type: command, path: "+hook+"}\n")
	env := []string{"TRACE=" + trace}

	r, held := e.pre(t, env, "-c", cfg, "--fs", "tank/db", "--snapshot", "s1")
	if r.code != 0 {
		t.Fatalf("pre: exit code %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stderr, `stdout="said pre_snapshot"`) {
		t.Errorf("pre did not relay the holder's log:\n%s", r.stderr)
	}
	if got := readFile(t, trace); got != "pre_snapshot tank/db s1\n" {
		t.Errorf("after pre, trace %q", got)
	}
	if !holderAlive(held.HolderPID) {
		t.Fatalf("no holder %d after pre", held.HolderPID)
	}
	if sid := sessionOf(t, held.HolderPID); sid != held.HolderPID {
		t.Errorf("holder %d is in session %d, not in one of its own", held.HolderPID, sid)
	}

	// A second pre for the same dataset fails clearly and leaves the hold.
	r2, _ := e.pre(t, env, "-c", cfg, "--fs", "tank/db")
	if r2.code != exitSnapshotFailed || !strings.Contains(r2.stderr, "tank/db is already held by another snaphook pre") {
		t.Errorf("second pre: exit code %d, stderr:\n%s", r2.code, r2.stderr)
	}
	// Its post (same parent process) releases nothing: that pre did not hold.
	if p2 := e.post(t, env, "--fs", "tank/db"); p2.code != exitSnapshotFailed || !strings.Contains(p2.stderr, "did not hold it") {
		t.Errorf("post after the refused pre: exit code %d, stderr:\n%s", p2.code, p2.stderr)
	}

	p := e.post(t, env, "--fs", "tank/db")
	if p.code != 0 {
		t.Fatalf("post: exit code %d\nstdout:\n%s\nstderr:\n%s", p.code, p.stdout, p.stderr)
	}
	if got := readFile(t, trace); got != "pre_snapshot tank/db s1\npost_snapshot tank/db s1\n" {
		t.Errorf("after post, trace %q", got)
	}
	for _, want := range []string{"[Ok]", "[Callback]  hold until snaphook post (at most 1m0s)", "ok: tank/db@s1: the hooks succeeded"} {
		if !strings.Contains(p.stdout, want) {
			t.Errorf("post stdout lacks %q:\n%s", want, p.stdout)
		}
	}
	if !strings.Contains(p.stderr, `stdout="said post_snapshot"`) {
		t.Errorf("post did not relay the holder's log:\n%s", p.stderr)
	}
	awaitHolderGone(t, held.HolderPID, 10*time.Second)
	if entries, _ := filepath.Glob(filepath.Join(e.dir, "*.sock")); len(entries) > 0 {
		t.Errorf("sockets left behind: %v", entries)
	}

	// The hold is over: post again finds none; pre may hold again.
	if p := e.post(t, env, "--fs", "tank/db"); p.code != exitSnapshotFailed || !strings.Contains(p.stderr, "no hold for tank/db") {
		t.Errorf("second post: exit code %d, stderr:\n%s", p.code, p.stderr)
	}
	r3, held3 := e.pre(t, env, "-c", cfg, "--fs", "tank/db")
	if r3.code != 0 {
		t.Fatalf("pre after post: exit code %d\nstderr:\n%s", r3.code, r3.stderr)
	}
	if p := e.post(t, env, "--fs", "tank/db", "--json"); p.code != 0 {
		t.Errorf("post --json: exit code %d\nstderr:\n%s", p.code, p.stderr)
	} else {
		j := parseJSON(t, p)
		if !j.OK || j.ExitCode != 0 || strings.Join(j.statuses(), " ") != "Pre:Ok Callback:Ok Post:Ok" {
			t.Errorf("post --json: %+v", j)
		}
	}
	awaitHolderGone(t, held3.HolderPID, 10*time.Second)
}

func TestSplitPostWithoutPre(t *testing.T) {
	e := newSplitEnv(t)
	p := e.post(t, nil, "--fs", "tank/db")
	if p.code != exitSnapshotFailed {
		t.Errorf("exit code %d, want %d", p.code, exitSnapshotFailed)
	}
	if !strings.Contains(p.stderr, "snaphook post: no hold for tank/db: no holder is listening") || p.stdout != "" {
		t.Errorf("stdout:\n%s\nstderr:\n%s", p.stdout, p.stderr)
	}
}

func TestSplitFatalPreErrorHoldsNothing(t *testing.T) {
	e := newSplitEnv(t)
	dir := t.TempDir()
	post := filepath.Join(dir, "post-ran")
	first := script(t, dir, "first", `[ "$ZREPL_HOOKTYPE" = post_snapshot ] && touch "$POST"; exit 0`)
	cfg := config(t, dir, "- {type: command, path: "+first+"}\n- {type: command, path: /bin/false, err_is_fatal: true}\n")
	r, _ := e.pre(t, []string{"POST=" + post}, "-c", cfg, "--fs", "tank/db", "--snapshot", "s1")
	if r.code != exitSnapshotFailed {
		t.Fatalf("exit code %d, want 2\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	j := parseJSON(t, r)
	if got := strings.Join(j.statuses(), " "); got != "Pre:Ok Pre:Err Callback:SkippedDueToFatalErr Post:SkippedDueToFatalErr Post:Ok" {
		t.Errorf("steps %s", got)
	}
	if !exists(post) {
		t.Errorf("the post edge of the earlier hook did not run")
	}
	if p := e.post(t, nil, "--fs", "tank/db"); p.code != exitSnapshotFailed || !strings.Contains(p.stderr, "no hold for tank/db") {
		t.Errorf("post: exit code %d, stderr:\n%s", p.code, p.stderr)
	}
}

func TestSplitTwoHoldsAtOnce(t *testing.T) {
	e := newSplitEnv(t)
	dir := t.TempDir()
	trace := filepath.Join(dir, "trace")
	hook := script(t, dir, "hook", `echo "$ZREPL_HOOKTYPE $ZREPL_FS" >> "$TRACE"`)
	cfg := config(t, dir, "- {type: command, path: "+hook+"}\n")
	env := []string{"TRACE=" + trace}
	ra, a := e.pre(t, env, "-c", cfg, "--fs", "tank/a")
	rb, b := e.pre(t, env, "-c", cfg, "--fs", "tank/b")
	if ra.code != 0 || rb.code != 0 {
		t.Fatalf("pre: exit codes %d, %d\n%s\n%s", ra.code, rb.code, ra.stderr, rb.stderr)
	}
	if a.HolderPID == b.HolderPID || !holderAlive(a.HolderPID) || !holderAlive(b.HolderPID) {
		t.Fatalf("holders %d and %d", a.HolderPID, b.HolderPID)
	}
	if p := e.post(t, env, "--fs", "tank/b"); p.code != 0 {
		t.Fatalf("post b: exit code %d\n%s", p.code, p.stderr)
	}
	awaitHolderGone(t, b.HolderPID, 10*time.Second)
	if !holderAlive(a.HolderPID) {
		t.Fatalf("post for tank/b ended the hold of tank/a")
	}
	if p := e.post(t, env, "--fs", "tank/a"); p.code != 0 {
		t.Fatalf("post a: exit code %d\n%s", p.code, p.stderr)
	}
	awaitHolderGone(t, a.HolderPID, 10*time.Second)
	if got := readFile(t, trace); got != "pre_snapshot tank/a\npre_snapshot tank/b\npost_snapshot tank/b\npost_snapshot tank/a\n" {
		t.Errorf("trace %q", got)
	}
}

// TestSplitHoldOfSeveralDatasets: one hold covers several datasets (and one
// of a subtree), each hook runs once, and post finds the hold whatever the
// order of its --fs.
func TestSplitHoldOfSeveralDatasets(t *testing.T) {
	e := newSplitEnv(t)
	dir := t.TempDir()
	trace := filepath.Join(dir, "trace")
	hook := script(t, dir, "hook", `echo "$ZREPL_HOOKTYPE $ZREPL_FS $(echo "$ZREPL_FS_LIST" | paste -sd, -)" >> "$TRACE"`)
	cfg := config(t, dir, "- {type: command, path: "+hook+", filesystems: {\"tank/db\": true, \"tank/log<\": true}}\n")
	env := []string{"TRACE=" + trace}
	r, h := e.pre(t, env, "-c", cfg, "--fs", "tank/db", "--fs", "tank/log")
	if r.code != 0 {
		t.Fatalf("pre: exit code %d\n%s", r.code, r.stderr)
	}
	if p := e.post(t, env, "--fs", "tank/log", "--fs", "tank/db"); p.code != 0 {
		t.Fatalf("post: exit code %d\n%s\n%s", p.code, p.stdout, p.stderr)
	}
	awaitHolderGone(t, h.HolderPID, 10*time.Second)

	r, h = e.pre(t, env, "-c", cfg, "-r", "--fs", "tank")
	if r.code != 0 {
		t.Fatalf("pre -r: exit code %d\n%s", r.code, r.stderr)
	}
	if p := e.post(t, env, "--fs", "tank"); p.code == 0 {
		t.Fatalf("post without -r found the recursive hold:\n%s", p.stdout)
	}
	if p := e.post(t, env, "-r", "--fs", "tank"); p.code != 0 {
		t.Fatalf("post -r: exit code %d\n%s", p.code, p.stderr)
	}
	awaitHolderGone(t, h.HolderPID, 10*time.Second)
	want := "pre_snapshot tank/db tank/db,tank/log\npost_snapshot tank/db tank/db,tank/log\n" +
		"pre_snapshot tank tank\npost_snapshot tank tank\n"
	if got := readFile(t, trace); got != want {
		t.Errorf("trace %q, want %q", got, want)
	}
}

// TestSplitPreDetaches: a caller that waits for the end of pre's output, and
// of a descriptor it let pre inherit, returns while the holder holds.
func TestSplitPreDetaches(t *testing.T) {
	e := newSplitEnv(t)
	cfg := config(t, t.TempDir(), "- {type: command, path: /bin/true}\n")
	inheritedR, inheritedW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer inheritedR.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, "pre", "--json", "-c", cfg, "--fs", "tank/db")
	cmd.Env = append(os.Environ(), e.env...)
	cmd.ExtraFiles = []*os.File{inheritedW} // fd 3 of pre, without close-on-exec
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	inheritedW.Close()
	var stdout bytes.Buffer
	_, _ = stdout.ReadFrom(out) // EOF: no process holds pre's stdout any more
	if err := cmd.Wait(); err != nil {
		t.Fatalf("pre: %v\n%s", err, stdout.String())
	}
	var held heldOutput
	if err := json.Unmarshal(stdout.Bytes(), &held); err != nil || !held.Held {
		t.Fatalf("pre output (%v):\n%s", err, stdout.String())
	}
	t.Cleanup(func() { killHolder(t, held.HolderPID) })
	var b [1]byte
	if n, err := inheritedR.Read(b[:]); n != 0 || err == nil {
		t.Errorf("the inherited pipe is still open in the holder (read %d, %v)", n, err)
	}
	if !holderAlive(held.HolderPID) {
		t.Fatalf("the holder is gone")
	}
	// The holder's stdin is /dev/null; its stdout and stderr are its log.
	for fd, want := range map[int]string{0: "/dev/null", 1: ".log", 2: ".log"} {
		target, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%d", held.HolderPID, fd))
		if err != nil || !strings.HasSuffix(target, want) {
			t.Errorf("holder fd %d is %q (%v), want …%s", fd, target, err, want)
		}
	}
	if p := e.post(t, nil, "--fs", "tank/db"); p.code != 0 {
		t.Errorf("post: exit code %d\n%s", p.code, p.stderr)
	}
}

func TestSplitDeadManSwitchWithoutDatabase(t *testing.T) {
	e := newSplitEnv(t)
	dir := t.TempDir()
	post := filepath.Join(dir, "post-ran")
	hook := script(t, dir, "hook", `[ "$ZREPL_HOOKTYPE" = post_snapshot ] && touch "$POST"; exit 0`)
	cfg := config(t, dir, "- {type: command, path: "+hook+"}\n")
	r, held := e.pre(t, []string{"POST=" + post}, "-c", cfg, "--fs", "tank/db", "--snapshot", "s1", "--max-hold", "300ms")
	if r.code != 0 {
		t.Fatalf("pre: %d\n%s", r.code, r.stderr)
	}
	awaitHolderGone(t, held.HolderPID, 30*time.Second)
	if !exists(post) {
		t.Errorf("the post edge did not run when the hold expired")
	}
	log := readFile(t, filepath.Join(e.dir, "hold-"+holdKey([]string{"tank/db"}, false)+".log"))
	if !strings.Contains(log, `level=ERROR msg="hold expired: no snaphook post came; unwinding"`) {
		t.Errorf("the holder's log lacks the expiry:\n%s", log)
	}
	p := e.post(t, nil, "--fs", "tank/db")
	if p.code != exitSnapshotFailed {
		t.Errorf("post after expiry: exit code %d, want 2", p.code)
	}
	for _, want := range []string{"the hold ended before this post", "hold expired after 300ms: no snaphook post came", "hold expired: tank/db@s1"} {
		if !strings.Contains(p.stdout+p.stderr, want) {
			t.Errorf("post lacks %q:\nstdout:\n%s\nstderr:\n%s", want, p.stdout, p.stderr)
		}
	}
	// The report is given once.
	if p := e.post(t, nil, "--fs", "tank/db"); p.code != exitSnapshotFailed || !strings.Contains(p.stderr, "no hold for tank/db") {
		t.Errorf("second post: exit code %d\n%s", p.code, p.stderr)
	}
}

func TestSplitUsage(t *testing.T) {
	e := newSplitEnv(t)
	cfg := config(t, t.TempDir(), "- {type: command, path: /bin/true}\n")
	tests := []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"pre_without_config", nil, []string{"pre", "--fs", "tank"}, "missing -c FILE"},
		{"pre_without_datasets", nil, []string{"pre", "-c", cfg}, "missing --fs DATASET (and SANOID_TARGETS is not set)"},
		{"pre_max_hold_zero", nil, []string{"pre", "-c", cfg, "--fs", "tank", "--max-hold", "0s"}, "--max-hold must be more than 0"},
		{"pre_bad_dataset", nil, []string{"pre", "-c", cfg, "--fs", "tank@x"}, "--fs: invalid dataset path"},
		{"pre_bad_sanoid_target", []string{"SANOID_TARGETS=tank/,x"}, []string{"pre", "-c", cfg}, "--fs: invalid dataset path"},
		{"pre_argument", nil, []string{"pre", "-c", cfg, "--fs", "a", "extra"}, `unexpected argument "extra"`},
		{"post_without_datasets", nil, []string{"post"}, "missing --fs DATASET"},
		{"relative_run_dir", []string{runDirEnv + "=relative"}, []string{"post", "--fs", "a"}, "is not an absolute path"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runSnaphook(t, invocation{args: tt.args, env: append(append([]string{}, e.env...), tt.env...)})
			if r.code != exitUsage || !strings.Contains(r.stderr, tt.want) {
				t.Errorf("exit code %d, stderr:\n%s\nwant %q", r.code, r.stderr, tt.want)
			}
		})
	}
}

func TestSplitRunDirMustBePrivate(t *testing.T) {
	base := t.TempDir()
	open := filepath.Join(base, "open")
	if err := os.Mkdir(open, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(base, "link")
	if err := os.Symlink(t.TempDir(), link); err != nil {
		t.Fatal(err)
	}
	for name, dir := range map[string]string{"open_to_others": open, "symlink": link} {
		t.Run(name, func(t *testing.T) {
			r := runSnaphook(t, invocation{args: []string{"post", "--fs", "a"}, env: []string{runDirEnv + "=" + dir}})
			if r.code != exitUsage || !strings.Contains(r.stderr, "socket directory: ") {
				t.Errorf("exit code %d, stderr:\n%s", r.code, r.stderr)
			}
		})
	}
	t.Run("xdg_runtime_dir_unset_for_a_user", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("needs root to run as nobody")
		}
		cmd := exec.Command(binaryForNobody(t), "post", "--fs", "a")
		cmd.Env = []string{"PATH=/usr/bin:/bin"}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		out, _ := cmd.CombinedOutput()
		if cmd.ProcessState.ExitCode() != exitUsage || !strings.Contains(string(out), "XDG_RUNTIME_DIR is not set") {
			t.Errorf("exit code %d, output:\n%s", cmd.ProcessState.ExitCode(), out)
		}
	})
}

// binaryForNobody returns a copy of the binary that user nobody may run.
func binaryForNobody(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "sh-nobody-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(binary)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "snaphook")
	if err := os.WriteFile(p, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// sessionOf returns the session id of pid, from /proc.
func sessionOf(t *testing.T, pid int) int {
	t.Helper()
	stat := readFile(t, fmt.Sprintf("/proc/%d/stat", pid))
	fields := strings.Fields(stat[strings.LastIndexByte(stat, ')')+1:])
	sid, err := strconv.Atoi(fields[3]) // state ppid pgrp session
	if err != nil {
		t.Fatal(err)
	}
	return sid
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// gatedHook writes a hook that, in its pre edge, creates dir/started and then
// waits until a line is written to the FIFO dir/gate; every edge is traced.
func gatedHook(t *testing.T, dir string) (hook, started, gate, trace string) {
	t.Helper()
	started, gate, trace = filepath.Join(dir, "started"), filepath.Join(dir, "gate"), filepath.Join(dir, "trace")
	if err := syscall.Mkfifo(gate, 0o600); err != nil {
		t.Fatal(err)
	}
	hook = script(t, dir, "gated", `echo "$ZREPL_HOOKTYPE" >> "`+trace+`"
if [ "$ZREPL_HOOKTYPE" = pre_snapshot ]; then touch "`+started+`"; read line < "`+gate+`"; fi
exit 0`)
	return hook, started, gate, trace
}

// awaitFile waits for path to exist.
func awaitFile(t *testing.T, path string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !exists(path) {
		if time.Now().After(deadline) {
			t.Fatalf("%s did not appear", path)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// openGate lets a gated hook's pre edge finish.
func openGate(t *testing.T, gate string) {
	t.Helper()
	f, err := os.OpenFile(gate, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString("go\n"); err != nil {
		t.Fatal(err)
	}
}

// holderOf finds the pid of the holder of dataset from /proc.
func holderOf(t *testing.T, dataset string) int {
	t.Helper()
	files, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		args := strings.Split(string(b), "\x00")
		if len(args) >= 3 && args[1] == holderCommand && args[2] == dataset {
			pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(f)))
			return pid
		}
	}
	t.Fatalf("no holder of %s", dataset)
	return 0
}

// startPre starts "snaphook pre" without waiting for it.
func (e *splitEnv) startPre(t *testing.T, args ...string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"pre"}, args...)...)
	cmd.Env = append(os.Environ(), e.env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd, &out
}

func TestSplitPostBeforeHeldIsRefused(t *testing.T) {
	e := newSplitEnv(t)
	dir := t.TempDir()
	hook, started, gate, _ := gatedHook(t, dir)
	cfg := config(t, dir, "- {type: command, path: "+hook+"}\n")
	pre, out := e.startPre(t, "-c", cfg, "--fs", "tank/early")
	awaitFile(t, started)
	pid := holderOf(t, "tank/early")
	t.Cleanup(func() { killHolder(t, pid) })
	p := e.post(t, nil, "--fs", "tank/early")
	if p.code != exitSnapshotFailed || !strings.Contains(p.stderr, "not held yet: the pre edges are still running") {
		t.Errorf("post during the pre edges: exit code %d\n%s", p.code, p.stderr)
	}
	openGate(t, gate)
	if err := pre.Wait(); err != nil {
		t.Fatalf("pre: %v\n%s", err, out)
	}
	if p := e.post(t, nil, "--fs", "tank/early"); p.code != 0 {
		t.Errorf("post after pre: exit code %d\n%s", p.code, p.stderr)
	}
	awaitHolderGone(t, pid, 10*time.Second)
}

// TestSplitPreKilledBeforeHeld: if pre dies before it could report the hold
// (say, its caller gave up on it), the holder does not hold: it unwinds.
func TestSplitPreKilledBeforeHeld(t *testing.T) {
	e := newSplitEnv(t)
	dir := t.TempDir()
	hook, started, gate, trace := gatedHook(t, dir)
	cfg := config(t, dir, "- {type: command, path: "+hook+"}\n")
	pre, _ := e.startPre(t, "-c", cfg, "--fs", "tank/orphan", "--max-hold", "10m")
	awaitFile(t, started)
	pid := holderOf(t, "tank/orphan")
	t.Cleanup(func() { killHolder(t, pid) })
	if err := pre.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = pre.Wait()
	openGate(t, gate)
	awaitHolderGone(t, pid, time.Minute)
	if got := readFile(t, trace); got != "pre_snapshot\npost_snapshot\n" {
		t.Errorf("trace %q: the post edge did not run", got)
	}
	p := e.post(t, nil, "--fs", "tank/orphan")
	if p.code != exitSnapshotFailed || !strings.Contains(p.stdout, "snaphook pre went away before it could report the hold") {
		t.Errorf("post: exit code %d\nstdout:\n%s\nstderr:\n%s", p.code, p.stdout, p.stderr)
	}
}

func TestSplitSignals(t *testing.T) {
	t.Run("sigterm_to_the_holder_ends_the_hold", func(t *testing.T) {
		e := newSplitEnv(t)
		dir := t.TempDir()
		trace := filepath.Join(dir, "trace")
		hook := script(t, dir, "hook", `echo "$ZREPL_HOOKTYPE" >> "`+trace+`"`)
		cfg := config(t, dir, "- {type: command, path: "+hook+"}\n")
		r, held := e.pre(t, nil, "-c", cfg, "--fs", "tank/db", "--max-hold", "10m")
		if r.code != 0 {
			t.Fatalf("pre: %d\n%s", r.code, r.stderr)
		}
		if err := syscall.Kill(held.HolderPID, syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		awaitHolderGone(t, held.HolderPID, time.Minute)
		if got := readFile(t, trace); got != "pre_snapshot\npost_snapshot\n" {
			t.Errorf("trace %q", got)
		}
		p := e.post(t, nil, "--fs", "tank/db")
		if p.code != exitSnapshotFailed || !strings.Contains(p.stdout, "hold ended before snaphook post: received SIGTERM") {
			t.Errorf("post: exit code %d\n%s", p.code, p.stdout)
		}
	})
	t.Run("sigint_to_pre_during_the_pre_edges_unwinds", func(t *testing.T) {
		e := newSplitEnv(t)
		dir := t.TempDir()
		trace := filepath.Join(dir, "first-trace")
		first := script(t, dir, "first", `echo "$ZREPL_HOOKTYPE" >> "`+trace+`"`)
		hook, started, _, _ := gatedHook(t, dir)
		cfg := config(t, dir, "- {type: command, path: "+first+"}\n- {type: command, path: "+hook+"}\n")
		pre, out := e.startPre(t, "-c", cfg, "--fs", "tank/int")
		awaitFile(t, started)
		pid := holderOf(t, "tank/int")
		t.Cleanup(func() { killHolder(t, pid) })
		if err := pre.Process.Signal(syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		err := pre.Wait()
		if pre.ProcessState.ExitCode() != exitSnapshotFailed {
			t.Fatalf("pre: %v, want exit 2\n%s", err, out)
		}
		if !strings.Contains(out.String(), "snapshot skipped: tank/int@") || !strings.Contains(out.String(), "interrupted by SIGINT") {
			t.Errorf("pre output:\n%s", out)
		}
		awaitHolderGone(t, pid, time.Minute)
		if got := readFile(t, trace); got != "pre_snapshot\npost_snapshot\n" {
			t.Errorf("the first hook: trace %q", got)
		}
	})
}

func TestSplitNonFatalPreErrorStillHolds(t *testing.T) {
	e := newSplitEnv(t)
	cfg := config(t, t.TempDir(), "- {type: command, path: /bin/false}\n- {type: command, path: /bin/true}\n")
	r, held := e.pre(t, nil, "-c", cfg, "--fs", "tank/db")
	if r.code != 0 || !held.PreError || !strings.HasPrefix(held.Result, "held with a pre hook error (not fatal)") {
		t.Fatalf("pre: exit code %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	p := e.post(t, nil, "--fs", "tank/db", "--json")
	if p.code != exitHookError {
		t.Fatalf("post: exit code %d, want 1\n%s", p.code, p.stderr)
	}
	j := parseJSON(t, p)
	if got := strings.Join(j.statuses(), " "); got != "Pre:Err Pre:Ok Callback:Ok Post:Ok Post:SkippedDueToPreErr" {
		t.Errorf("steps %s", got)
	}
	awaitHolderGone(t, held.HolderPID, 10*time.Second)
}

func TestSplitHelp(t *testing.T) {
	for _, tt := range []struct {
		args []string
		cmd  string
	}{
		{[]string{"help", "pre"}, "pre"}, {[]string{"pre", "--help"}, "pre"},
		{[]string{"help", "post"}, "post"}, {[]string{"post", "-h"}, "post"},
	} {
		t.Run(strings.Join(tt.args, "_"), func(t *testing.T) {
			r := run(t, tt.args...)
			for _, want := range []string{"Usage: snaphook " + tt.cmd + " ", "--fs DATASET", "Exit status:"} {
				if r.code != 0 || !strings.Contains(r.stdout, want) {
					t.Errorf("exit code %d, stdout lacks %q:\n%s", r.code, want, r.stdout)
				}
			}
		})
	}
}

// withoutEnv returns the test's environment without the variables named.
func withoutEnv(names ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		drop := false
		for _, n := range names {
			drop = drop || k == n
		}
		if !drop {
			env = append(env, kv)
		}
	}
	return env
}

// TestSplitDefaultRunDirs holds in the directories of the documented
// defaults: /run/snaphook for root, $XDG_RUNTIME_DIR/snaphook for a user.
func TestSplitDefaultRunDirs(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: /run/snaphook, and running as nobody")
	}
	cfg := config(t, t.TempDir(), "- {type: command, path: /bin/true}\n")
	dataset := fmt.Sprintf("snaphook-test/%d-%d", os.Getpid(), time.Now().UnixNano())

	t.Run("root_uses_/run/snaphook", func(t *testing.T) {
		files := newHoldFiles("/run/snaphook", []string{dataset}, false)
		t.Cleanup(func() {
			for _, f := range []string{files.Sock, files.Lock, files.Log, files.Result} {
				os.Remove(f)
			}
		})
		env := withoutEnv(runDirEnv)
		cmd := exec.Command(binary, "pre", "--json", "-c", cfg, "--fs", dataset, "--max-hold", "10m")
		cmd.Env = env
		out, err := cmd.Output()
		var held heldOutput
		if err != nil || json.Unmarshal(out, &held) != nil || !held.Held {
			t.Fatalf("pre: %v\n%s", err, out)
		}
		t.Cleanup(func() { killHolder(t, held.HolderPID) })
		fi, err := os.Lstat("/run/snaphook")
		if err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 {
			t.Errorf("/run/snaphook: %v, %v", fi.Mode(), err)
		}
		if fi, err := os.Lstat(files.Sock); err != nil || fi.Mode()&os.ModeSocket == 0 {
			t.Errorf("no socket %s: %v", files.Sock, err)
		}
		post := exec.Command(binary, "post", "--fs", dataset)
		post.Env = env
		if out, err := post.CombinedOutput(); err != nil {
			t.Errorf("post: %v\n%s", err, out)
		}
		awaitHolderGone(t, held.HolderPID, 10*time.Second)
	})

	t.Run("user_uses_XDG_RUNTIME_DIR", func(t *testing.T) {
		xdg, err := os.MkdirTemp("", "sh-xdg-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(xdg) })
		if err := os.Chown(xdg, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		exe := binaryForNobody(t)
		nobody := &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		env := append(withoutEnv(runDirEnv, "XDG_RUNTIME_DIR"), "XDG_RUNTIME_DIR="+xdg)
		// The config comes on stdin: nobody may not read the test's temp dir.
		cmd := exec.Command(exe, "pre", "--json", "-c", "-", "--fs", dataset, "--max-hold", "10m")
		cmd.Env, cmd.SysProcAttr, cmd.Dir = env, nobody, "/"
		cmd.Stdin = strings.NewReader("- {type: command, path: /bin/true}\n")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		var held heldOutput
		if err != nil || json.Unmarshal(out, &held) != nil || !held.Held {
			t.Fatalf("pre as nobody: %v\n%s\n%s", err, out, stderr.String())
		}
		t.Cleanup(func() { killHolder(t, held.HolderPID) })
		sock := newHoldFiles(filepath.Join(xdg, "snaphook"), []string{dataset}, false).Sock
		if fi, err := os.Lstat(sock); err != nil || fi.Sys().(*syscall.Stat_t).Uid != 65534 {
			t.Errorf("socket %s: %v", sock, err)
		}
		// root may enter the directory, but the holder serves only nobody.
		root := exec.Command(binary, "post", "--fs", dataset)
		root.Env = append(withoutEnv(runDirEnv), runDirEnv+"="+filepath.Join(xdg, "snaphook"))
		if out, _ := root.CombinedOutput(); root.ProcessState.ExitCode() != exitUsage || !strings.Contains(string(out), "is owned by uid 65534, not by uid 0") {
			t.Errorf("post as root: exit code %d\n%s", root.ProcessState.ExitCode(), out)
		}
		post := exec.Command(exe, "post", "--fs", dataset)
		post.Env, post.SysProcAttr, post.Dir = env, nobody, "/"
		if out, err := post.CombinedOutput(); err != nil {
			t.Errorf("post as nobody: %v\n%s", err, out)
		}
		awaitHolderGone(t, held.HolderPID, 10*time.Second)
	})
}

package main

// Tests of split mode's trust: which post releases which hold, overlapping
// holds, the order of post and the next pre, the dead-man switch while pre
// is stopped. Real processes and real holders throughout.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// failJSON is the part of splitFailJSON the tests look at.
type failJSON struct {
	OK       bool       `json:"ok"`
	Held     bool       `json:"held"`
	HeldBy   *holdEntry `json:"held_by"`
	ExitCode int        `json:"exit_code"`
	Error    string     `json:"error"`
}

// parseFail parses the JSON a failed pre or post printed.
func parseFail(t *testing.T, r result) failJSON {
	t.Helper()
	var j failJSON
	if err := json.Unmarshal([]byte(r.stdout), &j); err != nil {
		t.Fatalf("--json output does not parse: %v\n%s\nstderr:\n%s", err, r.stdout, r.stderr)
	}
	if j.OK || j.Held || j.ExitCode != r.code {
		t.Errorf("JSON %+v for exit code %d", j, r.code)
	}
	return j
}

// tracingConfig writes a config with one hook that appends
// "HOOKTYPE FS" to the returned trace file.
func tracingConfig(t *testing.T, dir string) (cfg, trace string) {
	t.Helper()
	trace = filepath.Join(dir, "trace")
	hook := script(t, dir, "hook", `echo "$ZREPL_HOOKTYPE $ZREPL_FS" >> "`+trace+`"`)
	return config(t, dir, "- {type: command, path: "+hook+"}\n"), trace
}

// TestSplitPostOfRefusedPre is item 1 of the issue, with A and B started by
// the same process one after the other: B's post leaves A's hold alone and
// says so, and A's post then releases it.
func TestSplitPostOfRefusedPre(t *testing.T) {
	e := newSplitEnv(t)
	cfg, trace := tracingConfig(t, t.TempDir())
	ra, a := e.pre(t, nil, "-c", cfg, "--fs", "tank/db", "--snapshot", "A")
	if ra.code != 0 {
		t.Fatalf("pre A: exit code %d\n%s", ra.code, ra.stderr)
	}
	rb, _ := e.pre(t, nil, "-c", cfg, "--fs", "tank/db", "--snapshot", "B")
	if rb.code != exitSnapshotFailed {
		t.Fatalf("pre B: exit code %d, want 2\n%s", rb.code, rb.stderr)
	}
	if j := parseFail(t, rb); j.HeldBy == nil || j.HeldBy.HolderPID != a.HolderPID {
		t.Errorf("pre B does not name A's holder %d: %+v", a.HolderPID, j)
	}
	pb := e.post(t, nil, "--fs", "tank/db", "--json")
	if pb.code != exitSnapshotFailed || !strings.Contains(pb.stderr, "the snaphook pre of this run did not hold it") {
		t.Fatalf("post B: exit code %d\n%s", pb.code, pb.stderr)
	}
	parseFail(t, pb)
	if !holderAlive(a.HolderPID) || readFile(t, trace) != "pre_snapshot tank/db\n" {
		t.Fatalf("post B touched A's hold: holder alive %v, trace %q", holderAlive(a.HolderPID), readFile(t, trace))
	}
	pa := e.post(t, nil, "--fs", "tank/db", "--snapshot", "A")
	if pa.code != 0 || !strings.Contains(pa.stdout, "ok: tank/db@A") {
		t.Fatalf("post A: exit code %d\n%s\n%s", pa.code, pa.stdout, pa.stderr)
	}
	if got := readFile(t, trace); got != "pre_snapshot tank/db\npost_snapshot tank/db\n" {
		t.Errorf("trace %q", got)
	}

	// With snapshot names, the posts may come in any order.
	if r, _ := e.pre(t, nil, "-c", cfg, "--fs", "tank/db", "--snapshot", "C"); r.code != 0 {
		t.Fatalf("pre C: exit code %d\n%s", r.code, r.stderr)
	}
	if r, _ := e.pre(t, nil, "-c", cfg, "--fs", "tank/db", "--snapshot", "D"); r.code != exitSnapshotFailed {
		t.Fatalf("pre D: exit code %d\n%s", r.code, r.stderr)
	}
	if p := e.post(t, nil, "--fs", "tank/db", "--snapshot", "C"); p.code != 0 {
		t.Errorf("post C: exit code %d\n%s", p.code, p.stderr)
	}
	if p := e.post(t, nil, "--fs", "tank/db", "--snapshot", "D"); p.code != exitSnapshotFailed || !strings.Contains(p.stderr, "did not hold it") {
		t.Errorf("post D: exit code %d\n%s", p.code, p.stderr)
	}

	// A refused pre whose post never came does not stand in the way of the
	// next hold of the run.
	if r, _ := e.pre(t, nil, "-c", t.TempDir()+"/missing.yml", "--fs", "tank/db"); r.code != exitUsage {
		t.Fatalf("pre with a missing config: exit code %d\n%s", r.code, r.stderr)
	}
	if r, _ := e.pre(t, nil, "-c", cfg, "--fs", "tank/db"); r.code != 0 {
		t.Fatalf("pre E: exit code %d\n%s", r.code, r.stderr)
	}
	if p := e.post(t, nil, "--fs", "tank/db"); p.code != 0 {
		t.Errorf("post E: exit code %d\n%s", p.code, p.stderr)
	}
}

// TestSplitOwnerIsTheRun: a script's shell runs pre and post (as cron
// does); "sh -c" lines of one process belong to that process (as sanoid's
// system() does); another run's post releases nothing, and --hold-id names
// a run across processes.
func TestSplitOwnerIsTheRun(t *testing.T) {
	e := newSplitEnv(t)
	dir := t.TempDir()
	cfg, trace := tracingConfig(t, dir)
	sh := func(t *testing.T, body string) result {
		t.Helper()
		s := script(t, dir, "run.sh", "#!/bin/sh\n"+body)
		return runSnaphook2(t, e, "/bin/bash", s)
	}

	// A cron script: pre, snapshot, post from one shell.
	// post through a wrapper that stays its parent (timeout).
	r := sh(t, binary+" pre -q -c "+cfg+" --fs tank/a && timeout 60 "+binary+" post -q --fs tank/a\n")
	if r.code != 0 || r.stdout != "" {
		t.Fatalf("script: exit code %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}

	// Lines run through "sh -c" by this process, one shell each.
	pre := runSnaphook2(t, e, "/bin/sh", "-c", binary+" pre --json -c "+cfg+" --fs tank/b; true")
	var held heldOutput
	if err := json.Unmarshal([]byte(pre.stdout), &held); err != nil || !held.Held {
		t.Fatalf("sh -c pre: %v\n%s\n%s", err, pre.stdout, pre.stderr)
	}
	t.Cleanup(func() { killHolder(t, held.HolderPID) })
	// Another run (a script's shell) cannot release it.
	other := sh(t, binary+" post --fs tank/b\n")
	if other.code != exitSnapshotFailed || !strings.Contains(other.stderr, "is held by another run") || !holderAlive(held.HolderPID) {
		t.Fatalf("post of another run: exit code %d\n%s", other.code, other.stderr)
	}
	if p := runSnaphook2(t, e, "/bin/sh", "-c", binary+" post --fs tank/b; true"); !strings.Contains(p.stdout, "ok: tank/b") {
		t.Fatalf("sh -c post: %s\n%s", p.stdout, p.stderr)
	}
	awaitHolderGone(t, held.HolderPID, 10*time.Second)

	// --hold-id: pre in one script, post in another.
	if r := sh(t, binary+" pre -q --hold-id nightly -c "+cfg+" --fs tank/c\n"); r.code != 0 {
		t.Fatalf("pre --hold-id: exit code %d\n%s", r.code, r.stderr)
	}
	pidC := holderPIDFor(t, e, "tank/c")
	t.Cleanup(func() { killHolder(t, pidC) })
	if r := sh(t, binary+" post --hold-id other --fs tank/c\n"); r.code != exitSnapshotFailed {
		t.Errorf("post with another --hold-id: exit code %d\n%s", r.code, r.stderr)
	}
	if r := sh(t, binary+" post -q --hold-id nightly --fs tank/c\n"); r.code != 0 {
		t.Errorf("post --hold-id: exit code %d\n%s", r.code, r.stderr)
	}
	if got := readFile(t, trace); got != "pre_snapshot tank/a\npost_snapshot tank/a\npre_snapshot tank/b\npost_snapshot tank/b\npre_snapshot tank/c\npost_snapshot tank/c\n" {
		t.Errorf("trace %q", got)
	}
}

// runSnaphook2 runs a program (a shell) to completion with the split
// environment of e.
func runSnaphook2(t *testing.T, e *splitEnv, prog string, args ...string) result {
	t.Helper()
	cmd := exec.Command(prog, args...)
	cmd.Env = append(os.Environ(), e.env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		t.Fatalf("%s %q: %v", prog, args, err)
	}
	return result{code: cmd.ProcessState.ExitCode(), stdout: stdout.String(), stderr: stderr.String()}
}

// holderPIDFor returns the holder pid the registry names for dataset, or 0.
func holderPIDFor(t *testing.T, e *splitEnv, dataset string) int {
	t.Helper()
	ent, err := readEntry(newHoldFiles(e.dir, []string{dataset}, false).Entry)
	if err != nil {
		return 0
	}
	return ent.HolderPID
}

// TestSplitOverlappingHoldsAreRefused: a hold covers its datasets and,
// with -r, their subtrees; disjoint holds stay independent; the entry of a
// holder killed with SIGKILL is stale.
func TestSplitOverlappingHoldsAreRefused(t *testing.T) {
	e := newSplitEnv(t)
	cfg, _ := tracingConfig(t, t.TempDir())
	r, db := e.pre(t, nil, "-c", cfg, "--fs", "tank/db")
	if r.code != 0 {
		t.Fatalf("pre tank/db: exit code %d\n%s", r.code, r.stderr)
	}
	for _, args := range [][]string{{"-r", "--fs", "tank"}, {"--fs", "tank/db", "--fs", "tank/log"}, {"--fs", "tank/db", "-r"}} {
		r, _ := e.pre(t, nil, append([]string{"-c", cfg}, args...)...)
		want := fmt.Sprintf("holder pid %d", db.HolderPID)
		if r.code != exitSnapshotFailed || !strings.Contains(r.stderr, "already held by another snaphook pre (tank/db@") || !strings.Contains(r.stderr, want) {
			t.Errorf("pre %q: exit code %d\n%s", args, r.code, r.stderr)
		}
		e.post(t, nil, args...) // consumes the refusal
	}
	// Disjoint: a sibling, and the parent without -r.
	rl, log := e.pre(t, nil, "-c", cfg, "--fs", "tank/log")
	rt, top := e.pre(t, nil, "-c", cfg, "--fs", "tank")
	if rl.code != 0 || rt.code != 0 {
		t.Fatalf("disjoint pre: exit codes %d, %d\n%s\n%s", rl.code, rt.code, rl.stderr, rt.stderr)
	}
	// tank/lo is no parent of tank/log: its subtree does not overlap.
	if r, _ := e.pre(t, nil, "-c", cfg, "--fs", "tank/lo", "-r"); r.code != 0 {
		t.Errorf("pre -r tank/lo: exit code %d\n%s", r.code, r.stderr)
	}
	if p := e.post(t, nil, "--fs", "tank/lo", "-r"); p.code != 0 {
		t.Errorf("post -r tank/lo: exit code %d\n%s", p.code, p.stderr)
	}

	killHolder(t, log.HolderPID) // SIGKILL: its entry is stale now
	if r, _ := e.pre(t, nil, "-c", cfg, "--fs", "tank/log"); r.code != 0 {
		t.Errorf("pre after the holder was killed: exit code %d\n%s", r.code, r.stderr)
	}
	for _, fs := range []string{"tank/db", "tank/log", "tank"} {
		if p := e.post(t, nil, "--fs", fs); p.code != 0 {
			t.Errorf("post %s: exit code %d\n%s", fs, p.code, p.stderr)
		}
	}
	awaitHolderGone(t, top.HolderPID, 10*time.Second)
}

// TestSplitBackToBack: post returns only after the hold is gone, so a pre
// right after it never finds it held.
func TestSplitBackToBack(t *testing.T) {
	e := newSplitEnv(t)
	cfg := config(t, t.TempDir(), "- {type: command, path: /bin/true}\n")
	for i := range 100 {
		r, _ := e.pre(t, nil, "-c", cfg, "--fs", "tank/db")
		if r.code != 0 {
			t.Fatalf("cycle %d: pre: exit code %d\n%s", i, r.code, r.stderr)
		}
		if p := e.post(t, nil, "-q", "--fs", "tank/db"); p.code != 0 {
			t.Fatalf("cycle %d: post: exit code %d\n%s", i, p.code, p.stderr)
		}
	}
}

// TestSplitMaxHoldWhilePreIsStopped: the dead-man switch runs from the
// moment the holder starts, even while pre is stopped (SIGSTOP) during the
// pre edges: the holder stops the pre edge that never ends and unwinds by
// itself, and pre, continued, says so.
func TestSplitMaxHoldWhilePreIsStopped(t *testing.T) {
	e := newSplitEnv(t)
	dir := t.TempDir()
	hook, started, _, trace := gatedHook(t, dir) // its gate is never opened
	posted := filepath.Join(dir, "posted")
	post := script(t, dir, "post", `[ "$ZREPL_HOOKTYPE" = post_snapshot ] && touch "`+posted+`"; exit 0`)
	cfg := config(t, dir, "- {type: command, path: "+post+"}\n- {type: command, path: "+hook+"}\n")
	cmd, out := e.startPre(t, "-c", cfg, "--fs", "tank/db", "--max-hold", "1s")
	awaitFile(t, started)
	if err := cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	awaitFile(t, posted) // the holder unwound by itself
	if st := procState(t, cmd.Process.Pid); !strings.HasPrefix(st, "T") {
		t.Fatalf("pre is not stopped any more: %s", st)
	}
	if err := cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != exitSnapshotFailed || !strings.Contains(out.String(), "hold expired") {
		t.Fatalf("pre: exit code %d (%v)\n%s", code, err, out.String())
	}
	if got := readFile(t, trace); got != "pre_snapshot\n" {
		t.Errorf("trace of the gated hook %q", got)
	}
	if p := e.post(t, nil, "--fs", "tank/db"); p.code != exitSnapshotFailed || !strings.Contains(p.stderr, "did not hold it") {
		t.Errorf("post: exit code %d\n%s", p.code, p.stderr)
	}
}

// procState returns the state letter of pid from /proc/PID/stat.
func procState(t *testing.T, pid int) string {
	t.Helper()
	b := readFile(t, fmt.Sprintf("/proc/%d/stat", pid))
	return strings.TrimSpace(b[strings.LastIndexByte(b, ')')+1:])
}

// TestSplitMaxHoldBound: --max-hold has the hooks' upper bound.
func TestSplitMaxHoldBound(t *testing.T) {
	e := newSplitEnv(t)
	cfg := config(t, t.TempDir(), "- {type: command, path: /bin/true}\n")
	r := runSnaphook(t, invocation{args: []string{"pre", "-c", cfg, "--fs", "tank", "--max-hold", "25h"}, env: e.env})
	if r.code != exitUsage || !strings.Contains(r.stderr, "longer than the maximum of 24h0m0s") {
		t.Errorf("exit code %d\n%s", r.code, r.stderr)
	}
}

// TestSplitChattyHookLogIsBounded: 100 MB of hook output leave a holder
// log of at most its head and tail.
func TestSplitChattyHookLogIsBounded(t *testing.T) {
	e := newSplitEnv(t)
	dir := t.TempDir()
	hook := script(t, dir, "chatty", `[ "$ZREPL_HOOKTYPE" = pre_snapshot ] && head -c 100000000 /dev/zero | tr '\0' x; exit 0`)
	cfg := config(t, dir, "- {type: command, path: "+hook+"}\n")
	pre := runSnaphook(t, invocation{args: []string{"pre", "-q", "-c", cfg, "--fs", "tank/db"}, env: e.env})
	pid := holderPIDFor(t, e, "tank/db")
	t.Cleanup(func() { killHolder(t, pid) })
	if r := pre; r.code != 0 || r.stderr != "" || r.stdout != "" {
		t.Fatalf("pre: exit code %d\n%.2000s", r.code, r.stderr)
	}
	if p := e.post(t, nil, "-q", "--fs", "tank/db"); p.code != 0 {
		t.Fatalf("post: exit code %d\n%.2000s", p.code, p.stderr)
	}
	// The holder writes the bounded log's kept tail when it closes it,
	// after it answered post: read the file once the holder is gone.
	awaitHolderGone(t, pid, time.Minute)
	log := newHoldFiles(e.dir, []string{"tank/db"}, false).Log
	fi, err := os.Stat(log)
	if err != nil {
		t.Fatal(err)
	}
	if max := int64(holderLogHead + holderLogTail + 4096); fi.Size() > max {
		t.Errorf("holder log has %d bytes, want at most %d", fi.Size(), max)
	}
	b := readFile(t, log)
	for _, want := range []string{"records dropped to bound this file", "hold: done"} {
		if !strings.Contains(b, want) {
			t.Errorf("holder log lacks %q", want)
		}
	}
}

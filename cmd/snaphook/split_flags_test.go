package main

// Tests of what pre and post print and accept: --json on every exit, the
// same flags on both lines, -q, post's environment and --snapshot-result
// for the post edges, and the reports of holds that ended oddly.

import (
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSplitJSONOnEveryExit: with --json, pre and post print one JSON object
// whatever the exit.
func TestSplitJSONOnEveryExit(t *testing.T) {
	e := newSplitEnv(t)
	dir := t.TempDir()
	cfg, _ := tracingConfig(t, dir)
	bad := config(t, t.TempDir(), "- {type: nope}\n")
	r, a := e.pre(t, nil, "-c", cfg, "--fs", "tank/db")
	if r.code != 0 {
		t.Fatalf("pre: exit code %d\n%s", r.code, r.stderr)
	}
	tests := []struct {
		name string
		args []string
		code int
	}{
		{"pre_bad_usage", []string{"pre", "--json", "--fs", "tank/x"}, exitUsage},
		{"pre_bad_config", []string{"pre", "--json", "-c", bad, "--fs", "tank/x"}, exitUsage},
		{"post_after_bad_config", []string{"post", "--json", "--fs", "tank/x"}, exitSnapshotFailed},
		{"pre_already_held", []string{"pre", "--json", "-c", cfg, "--fs", "tank/db"}, exitSnapshotFailed},
		{"post_after_refused_pre", []string{"post", "--json", "--fs", "tank/db"}, exitSnapshotFailed},
		{"post_no_hold", []string{"post", "--json", "--fs", "tank/none"}, exitSnapshotFailed},
		{"post_bad_usage", []string{"post", "--json", "--snapshot-result", "maybe", "--fs", "tank/db"}, exitUsage},
		{"post_other_snapshot", []string{"post", "--json", "--fs", "tank/db", "--snapshot", "other"}, exitSnapshotFailed},
		{"post_other_run", []string{"post", "--json", "--hold-id", "x", "--fs", "tank/db"}, exitSnapshotFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runSnaphook(t, invocation{args: tt.args, env: e.env})
			if r.code != tt.code {
				t.Errorf("exit code %d, want %d\n%s", r.code, tt.code, r.stderr)
			}
			if j := parseFail(t, r); j.Error == "" {
				t.Errorf("no error in %+v", j)
			}
		})
	}
	if !holderAlive(a.HolderPID) {
		t.Fatalf("a failed pre or post ended the hold")
	}
	if p := e.post(t, nil, "--fs", "tank/db"); p.code != 0 {
		t.Errorf("post: exit code %d\n%s", p.code, p.stderr)
	}
}

// TestSplitPostTakesPreFlags: post accepts every flag of pre; those that
// name the hold must agree with it.
func TestSplitPostTakesPreFlags(t *testing.T) {
	e := newSplitEnv(t)
	cfg, trace := tracingConfig(t, t.TempDir())
	line := []string{"-c", cfg, "--fs", "tank/db", "-r", "--snapshot", "S", "--prefix", "p_", "--max-hold", "30s", "--log-level", "warn"}
	if r, _ := e.pre(t, nil, line...); r.code != 0 {
		t.Fatalf("pre: exit code %d\n%s", r.code, r.stderr)
	}
	for _, args := range [][]string{
		{"-c", cfg, "--fs", "tank/db", "--snapshot", "S"},       // without -r
		{"-c", cfg, "--fs", "tank/db", "-r", "--snapshot", "T"}, // another snapshot
		{"--fs", "tank", "-r"},                                  // another dataset
	} {
		if p := e.post(t, nil, args...); p.code != exitSnapshotFailed {
			t.Errorf("post %q: exit code %d\n%s", args, p.code, p.stderr)
		}
	}
	if got := readFile(t, trace); got != "pre_snapshot tank/db\n" {
		t.Fatalf("a post with other flags released the hold: trace %q", got)
	}
	p := e.post(t, nil, append(line, "-q")...)
	if p.code != 0 || p.stdout != "" || p.stderr != "" {
		t.Errorf("post with pre's flags and -q: exit code %d\nstdout:\n%s\nstderr:\n%s", p.code, p.stdout, p.stderr)
	}
}

// TestSplitQuiet: -q prints nothing when all went well, and everything when
// not.
func TestSplitQuiet(t *testing.T) {
	e := newSplitEnv(t)
	dir := t.TempDir()
	cfg, _ := tracingConfig(t, dir)
	r := runSnaphook(t, invocation{args: []string{"pre", "-q", "-c", cfg, "--fs", "tank/db"}, env: e.env})
	pid := holderPIDFor(t, e, "tank/db")
	t.Cleanup(func() { killHolder(t, pid) })
	if r.code != 0 || r.stdout != "" || r.stderr != "" {
		t.Fatalf("pre -q: exit code %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	fatal := config(t, t.TempDir(), "- {type: command, path: /bin/false, err_is_fatal: true}\n")
	r = runSnaphook(t, invocation{args: []string{"pre", "-q", "-c", fatal, "--fs", "tank/x"}, env: e.env})
	if r.code != exitSnapshotFailed || !strings.Contains(r.stderr, "fatal pre edge error") || !strings.Contains(r.stdout, "[Err]") {
		t.Errorf("failed pre -q: exit code %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	if p := e.post(t, nil, "-q", "--fs", "tank/db"); p.code != 0 || p.stdout != "" || p.stderr != "" {
		t.Errorf("post -q: exit code %d\nstdout:\n%s\nstderr:\n%s", p.code, p.stdout, p.stderr)
	}
	if p := e.post(t, nil, "-q", "--fs", "tank/db"); p.code != exitSnapshotFailed || !strings.Contains(p.stderr, "no hold for tank/db") {
		t.Errorf("post -q without a hold: exit code %d\n%s", p.code, p.stderr)
	}
}

// TestSplitPostEdgesSeePostsEnvironment: the post edges get the environment
// of post (SANOID_SCRIPT=post), and ZREPL_CALLBACK_RESULT from
// --snapshot-result, "unknown" without it.
func TestSplitPostEdgesSeePostsEnvironment(t *testing.T) {
	e := newSplitEnv(t)
	dir := t.TempDir()
	trace := filepath.Join(dir, "trace")
	hook := script(t, dir, "hook", `echo "$ZREPL_HOOKTYPE $SANOID_SCRIPT $ZREPL_CALLBACK_RESULT $ZREPL_FS" >> "`+trace+`"`)
	cfg := config(t, dir, "- {type: command, path: "+hook+"}\n")
	tests := []struct {
		result string // --snapshot-result, "" for none
		want   string
		code   int
	}{
		{"", "post_snapshot post unknown tank/db", 0},
		{"ok", "post_snapshot post ok tank/db", 0},
		{"failed", "post_snapshot post error tank/db", exitSnapshotFailed},
	}
	for _, tt := range tests {
		if r, _ := e.pre(t, []string{"SANOID_SCRIPT=pre", "ZREPL_FS=nope"}, "-c", cfg, "--fs", "tank/db"); r.code != 0 {
			t.Fatalf("pre: exit code %d\n%s", r.code, r.stderr)
		}
		args := []string{"--fs", "tank/db"}
		if tt.result != "" {
			args = append(args, "--snapshot-result", tt.result)
		}
		p := e.post(t, []string{"SANOID_SCRIPT=post", "ZREPL_FS=nope"}, args...)
		if p.code != tt.code {
			t.Errorf("--snapshot-result %q: exit code %d, want %d\n%s", tt.result, p.code, tt.code, p.stderr)
		}
		lines := strings.Split(strings.TrimSpace(readFile(t, trace)), "\n")
		if got := lines[len(lines)-1]; got != tt.want || lines[len(lines)-2] != "pre_snapshot pre  tank/db" {
			t.Errorf("--snapshot-result %q: trace %q, want %q last", tt.result, lines, tt.want)
		}
	}
}

// TestSplitPostAfterFailedConfigLoad: after a pre that failed at config
// load, post does not print the report of an earlier hold that ended
// without a post.
func TestSplitPostAfterFailedConfigLoad(t *testing.T) {
	e := newSplitEnv(t)
	dir := t.TempDir()
	cfg, _ := tracingConfig(t, dir)
	r, held := e.pre(t, nil, "-c", cfg, "--fs", "tank/db")
	if r.code != 0 {
		t.Fatalf("pre: exit code %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	// The hold ends without a post and leaves its report.
	if err := syscall.Kill(held.HolderPID, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	awaitHolderGone(t, held.HolderPID, time.Minute)
	if !exists(newHoldFiles(e.dir, []string{"tank/db"}, false).Result) {
		t.Fatalf("no result file")
	}
	bad := config(t, t.TempDir(), "- {type: nope}\n")
	if r := runSnaphook(t, invocation{args: []string{"pre", "-c", bad, "--fs", "tank/db"}, env: e.env}); r.code != exitUsage {
		t.Fatalf("pre with a bad config: exit code %d\n%s", r.code, r.stderr)
	}
	p := e.post(t, nil, "--fs", "tank/db")
	if p.code != exitSnapshotFailed || strings.Contains(p.stdout, "hold expired") || !strings.Contains(p.stderr, "did not hold it") {
		t.Errorf("post: exit code %d\nstdout:\n%s\nstderr:\n%s", p.code, p.stdout, p.stderr)
	}
}

// TestSplitTerminatedHolderMayHaveTaken: SIGTERM to a holder that holds
// reports that the snapshot may have been taken, not that it was skipped.
func TestSplitTerminatedHolderMayHaveTaken(t *testing.T) {
	e := newSplitEnv(t)
	cfg, trace := tracingConfig(t, t.TempDir())
	r, held := e.pre(t, nil, "-c", cfg, "--fs", "tank/db")
	if r.code != 0 {
		t.Fatalf("pre: exit code %d\n%s", r.code, r.stderr)
	}
	if err := syscall.Kill(held.HolderPID, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	awaitHolderGone(t, held.HolderPID, time.Minute)
	p := e.post(t, nil, "--fs", "tank/db")
	if p.code != exitSnapshotFailed || !strings.Contains(p.stdout, "whether the snapshot was taken is unknown") || strings.Contains(p.stdout, "skipped") {
		t.Errorf("post: exit code %d\nstdout:\n%s\nstderr:\n%s", p.code, p.stdout, p.stderr)
	}
	if got := readFile(t, trace); got != "pre_snapshot tank/db\npost_snapshot tank/db\n" {
		t.Errorf("trace %q", got)
	}
}

// TestSplitNoHookMatchesWarns: a typo in filesystems warns on stderr, also
// under -q, in pre and in run; the exit code stays.
func TestSplitNoHookMatchesWarns(t *testing.T) {
	e := newSplitEnv(t)
	cfg := config(t, t.TempDir(), "- {type: command, path: /bin/true, filesystems: {\"tank/dv\": true}}\n")
	r := runSnaphook(t, invocation{args: []string{"pre", "-q", "-c", cfg, "--fs", "tank/db"}, env: e.env})
	pid := holderPIDFor(t, e, "tank/db")
	t.Cleanup(func() { killHolder(t, pid) })
	if r.code != 0 || !strings.Contains(r.stderr, "warning: no hook of "+cfg+" matches tank/db") {
		t.Errorf("pre: exit code %d\n%s", r.code, r.stderr)
	}
	if p := e.post(t, nil, "-q", "--fs", "tank/db"); p.code != 0 {
		t.Errorf("post: exit code %d\n%s", p.code, p.stderr)
	}
	rr := run(t, "run", "-q", "-c", cfg, "--fs", "tank/db", "--", "true")
	if rr.code != 0 || !strings.Contains(rr.stderr, "warning: no hook of "+cfg+" matches tank/db") {
		t.Errorf("run: exit code %d\n%s", rr.code, rr.stderr)
	}
}

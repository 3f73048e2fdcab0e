package main

import (
	"encoding/json"
	"strings"
	"syscall"
	"testing"
	"time"
)

// outcomeJSON is the part of the --json output that states the outcome.
type outcomeJSON struct {
	HadError      bool   `json:"had_error"`
	HadFatalError bool   `json:"had_fatal_error"`
	Skipped       bool   `json:"skipped"`
	Fate          string `json:"fate"`
	Signal        string `json:"signal"`
	ExitCode      int    `json:"exit_code"`
	Result        string `json:"result"`
}

// lastLineOf returns the last line of s.
func lastLineOf(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1]
}

// TestRunOutcomes runs every combination of skip, non-fatal pre error,
// fatal pre error, cancellation, failed CMD and failed post edge that can
// happen together, and checks the exit code, the summary in the text report
// and the JSON: a summary names what happened, and nothing that did not.
func TestRunOutcomes(t *testing.T) {
	dir := t.TempDir()
	preFail := script(t, dir, "pre-fail", `[ "$ZREPL_HOOKTYPE" = pre_snapshot ] && exit 1; exit 0`)
	postFail := script(t, dir, "post-fail", `[ "$ZREPL_HOOKTYPE" = post_snapshot ] && exit 1; exit 0`)
	skip := script(t, dir, "skip", `[ "$ZREPL_HOOKTYPE" = pre_snapshot ] && exit 75; exit 0`)
	// interrupt sends SIGINT to snaphook, its parent, and waits to be
	// stopped by the cancellation that follows.
	interrupt := script(t, dir, "interrupt", `[ "$ZREPL_HOOKTYPE" = pre_snapshot ] || exit 0; kill -INT $PPID; exec sleep 60`)
	hook := func(path, extra string) string { return "- {type: command, path: " + path + extra + "}\n" }
	skipHook := hook(skip, ", skip_exit_code: 75")
	fatalHook := hook(preFail, ", err_is_fatal: true")

	tests := []struct {
		name      string
		hooks     string
		cmd       []string // default: true
		wantCode  int
		wantFate  string
		wantFatal bool // had_fatal_error
		wantSkip  bool
		wantSig   string
		want      string // the summary; {name} stands for the path of script name
	}{
		{
			name: "skip", hooks: skipHook, wantCode: exitSkipped, wantFate: "skipped", wantSkip: true,
			want: "snapshot skipped: tank/db@s: pre hook {skip} asked to skip it",
		},
		{
			name: "skip_and_non_fatal_pre_error_exits_2_and_names_both", hooks: hook(preFail, "") + skipHook,
			wantCode: exitSnapshotFailed, wantFate: "skipped", wantSkip: true,
			want: "snapshot skipped: tank/db@s: pre hook {skip} asked to skip it; also, the pre edge of {pre-fail} failed",
		},
		{
			name: "skip_and_failed_post_edge_exits_2_and_names_both", hooks: hook(postFail, "") + skipHook,
			wantCode: exitSnapshotFailed, wantFate: "skipped", wantSkip: true,
			want: "snapshot skipped: tank/db@s: pre hook {skip} asked to skip it; also, the post edge of {post-fail} failed",
		},
		{
			name: "non_fatal_pre_error", hooks: hook(preFail, ""), wantCode: exitHookError, wantFate: "taken",
			want: "hook error: tank/db@s: the snapshot was taken, but the pre edge of {pre-fail} failed",
		},
		{
			name: "fatal_pre_error", hooks: fatalHook, wantCode: exitSnapshotFailed, wantFate: "fatal", wantFatal: true,
			want: "snapshot skipped: tank/db@s: a pre hook with err_is_fatal failed",
		},
		{
			name: "fatal_and_non_fatal_pre_errors", hooks: hook(postFail, "") + hook(preFail, "") + fatalHook,
			wantCode: exitSnapshotFailed, wantFate: "fatal", wantFatal: true,
			want: "snapshot skipped: tank/db@s: a pre hook with err_is_fatal failed; also, the pre edge of {pre-fail} and the post edge of {post-fail} failed",
		},
		{
			name: "failed_cmd", hooks: hook(postFail, ""), cmd: []string{"/bin/sh", "-c", "exit 3"},
			wantCode: exitSnapshotFailed, wantFate: "failed",
			want: "snapshot failed: tank/db@s: /bin/sh -c 'exit 3' error: /bin/sh: exit status 3; also, the post edge of {post-fail} failed",
		},
		{
			name: "failed_cmd_after_a_non_fatal_pre_error", hooks: hook(preFail, ""), cmd: []string{"/bin/sh", "-c", "exit 3"},
			wantCode: exitSnapshotFailed, wantFate: "failed",
			want: "snapshot failed: tank/db@s: /bin/sh -c 'exit 3' error: /bin/sh: exit status 3; also, the pre edge of {pre-fail} failed",
		},
		{
			name: "failed_post_edge", hooks: hook(postFail, ""), wantCode: exitHookError, wantFate: "taken",
			want: "hook error: tank/db@s: the snapshot was taken, but the post edge of {post-fail} failed",
		},
		{
			name: "interrupted_during_the_pre_edges_with_a_failed_post_edge", hooks: hook(postFail, "") + hook(interrupt, "") + hook(preFail, ""),
			wantCode: exitSnapshotFailed, wantFate: "cancelled", wantFatal: true, wantSig: "SIGINT",
			want: "snapshot skipped: tank/db@s: interrupted by SIGINT; also, the pre edge of {interrupt} and the post edge of {post-fail} failed",
		},
		{
			name: "interrupted_during_cmd_leaves_the_snapshot_unknown", hooks: hook(postFail, ""),
			cmd:      []string{"sh", "-c", "kill -INT $PPID; exec sleep 60"},
			wantCode: exitSnapshotFailed, wantFate: "interrupted", wantSig: "SIGINT",
			want: "snapshot unknown: tank/db@s: interrupted by SIGINT while the snapshot was being taken; whether it was taken is unknown; also, the post edge of {post-fail} failed",
		},
	}
	paths := strings.NewReplacer("{skip}", skip, "{pre-fail}", preFail, "{post-fail}", postFail, "{interrupt}", interrupt)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := config(t, t.TempDir(), tt.hooks)
			cmd := tt.cmd
			if cmd == nil {
				cmd = []string{"true"}
			}
			want := paths.Replace(tt.want)
			args := append([]string{"run", "-c", cfg, "--fs", "tank/db", "--snapshot", "s", "--"}, cmd...)
			r := run(t, args...)
			if r.code != tt.wantCode || lastLineOf(r.stdout) != want {
				t.Errorf("text: exit code %d, want %d; summary\n%s\nwant\n%s\nstderr:\n%s", r.code, tt.wantCode, lastLineOf(r.stdout), want, r.stderr)
			}
			r = run(t, append([]string{"run", "--json"}, args[1:]...)...)
			var j outcomeJSON
			if err := json.Unmarshal([]byte(r.stdout), &j); err != nil {
				t.Fatalf("--json: %v\n%s", err, r.stdout)
			}
			wantJSON := outcomeJSON{HadError: tt.wantCode != exitOK && tt.wantCode != exitSkipped, HadFatalError: tt.wantFatal, Skipped: tt.wantSkip,
				Fate: tt.wantFate, Signal: tt.wantSig, ExitCode: tt.wantCode, Result: want}
			if j != wantJSON || r.code != tt.wantCode {
				t.Errorf("JSON (exit code %d):\n%+v\nwant\n%+v", r.code, j, wantJSON)
			}
		})
	}
}

// TestPrePostOutcomes: pre and post summarise as run does. A skip together
// with a non-fatal pre error makes pre exit 2 and name both; a non-fatal
// pre error and a failed post edge make post exit 1 and name both.
func TestPrePostOutcomes(t *testing.T) {
	dir := t.TempDir()
	preFail := script(t, dir, "pre-fail", `[ "$ZREPL_HOOKTYPE" = pre_snapshot ] && exit 1; exit 0`)
	postFail := script(t, dir, "post-fail", `[ "$ZREPL_HOOKTYPE" = post_snapshot ] && exit 1; exit 0`)
	skip := script(t, dir, "skip", `[ "$ZREPL_HOOKTYPE" = pre_snapshot ] && exit 75; exit 0`)

	t.Run("pre_skip_and_non_fatal_pre_error", func(t *testing.T) {
		e := newSplitEnv(t)
		cfg := config(t, t.TempDir(), "- {type: command, path: "+preFail+"}\n- {type: command, path: "+skip+", skip_exit_code: 75}\n")
		r, _ := e.pre(t, nil, "-c", cfg, "--fs", "tank/db", "--snapshot", "s")
		want := "snapshot skipped: tank/db@s: pre hook " + skip + " asked to skip it; also, the pre edge of " + preFail + " failed; nothing is held"
		var j outcomeJSON
		if err := json.Unmarshal([]byte(r.stdout), &j); err != nil {
			t.Fatalf("pre --json: %v\n%s\n%s", err, r.stdout, r.stderr)
		}
		wantJSON := outcomeJSON{HadError: true, Skipped: true, Fate: "skipped", ExitCode: exitSnapshotFailed, Result: want}
		if r.code != exitSnapshotFailed || j != wantJSON {
			t.Errorf("pre: exit code %d, JSON\n%+v\nwant\n%+v", r.code, j, wantJSON)
		}
		r = runSnaphook(t, invocation{args: []string{"pre", "-c", cfg, "--fs", "tank/db", "--snapshot", "s"}, env: e.env})
		if r.code != exitSnapshotFailed || lastLineOf(r.stdout) != want {
			t.Errorf("pre: exit code %d, summary\n%s\nwant\n%s", r.code, lastLineOf(r.stdout), want)
		}
	})
	t.Run("post_non_fatal_pre_error_and_failed_post_edge", func(t *testing.T) {
		e := newSplitEnv(t)
		cfg := config(t, t.TempDir(), "- {type: command, path: "+postFail+"}\n- {type: command, path: "+preFail+"}\n")
		for _, jsonOut := range []bool{false, true} {
			r, _ := e.pre(t, nil, "-c", cfg, "--fs", "tank/db", "--snapshot", "s")
			if r.code != exitOK {
				t.Fatalf("pre: exit code %d\n%s\n%s", r.code, r.stdout, r.stderr)
			}
			want := "hook error: tank/db@s: the hold lasted until snaphook post, but the pre edge of " + preFail + " and the post edge of " + postFail + " failed"
			if !jsonOut {
				p := e.post(t, nil, "--fs", "tank/db")
				if p.code != exitHookError || lastLineOf(p.stdout) != want {
					t.Errorf("post: exit code %d, summary\n%s\nwant\n%s", p.code, lastLineOf(p.stdout), want)
				}
				continue
			}
			p := e.post(t, nil, "--fs", "tank/db", "--json")
			var j outcomeJSON
			if err := json.Unmarshal([]byte(p.stdout), &j); err != nil {
				t.Fatalf("post --json: %v\n%s", err, p.stdout)
			}
			wantJSON := outcomeJSON{HadError: true, Fate: "taken", ExitCode: exitHookError, Result: want}
			if p.code != exitHookError || j != wantJSON {
				t.Errorf("post: exit code %d, JSON\n%+v\nwant\n%+v", p.code, j, wantJSON)
			}
		}
	})
}

// TestHolderSignalLeavesTheSnapshotUnknown: a holder stopped by SIGTERM
// while it holds cannot know whether the snapshot was taken meanwhile, and
// says so, rather than that the snapshot was skipped.
func TestHolderSignalLeavesTheSnapshotUnknown(t *testing.T) {
	e := newSplitEnv(t)
	cfg := config(t, t.TempDir(), "- {type: command, path: /bin/true}\n")
	r, held := e.pre(t, nil, "-c", cfg, "--fs", "tank/db", "--snapshot", "s", "--max-hold", "10m")
	if r.code != exitOK {
		t.Fatalf("pre: exit code %d\n%s", r.code, r.stderr)
	}
	if err := syscall.Kill(held.HolderPID, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	awaitHolderGone(t, held.HolderPID, time.Minute)
	p := e.post(t, nil, "--fs", "tank/db", "--json")
	var j outcomeJSON
	if err := json.Unmarshal([]byte(p.stdout), &j); err != nil {
		t.Fatalf("post --json: %v\n%s", err, p.stdout)
	}
	want := outcomeJSON{HadError: true, Fate: "interrupted", Signal: "SIGTERM", ExitCode: exitSnapshotFailed,
		Result: "hold interrupted: tank/db@s: interrupted by SIGTERM during the hold; whether the snapshot was taken is unknown"}
	if p.code != exitSnapshotFailed || j != want {
		t.Errorf("post: exit code %d, JSON\n%+v\nwant\n%+v", p.code, j, want)
	}
}

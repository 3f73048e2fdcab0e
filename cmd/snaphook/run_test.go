package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestRunExitCodes(t *testing.T) {
	dir := t.TempDir()
	ok := script(t, dir, "ok", "exit 0")
	fail := script(t, dir, "fail", `echo "failing on purpose" >&2; exit 1`)
	preFail := script(t, dir, "pre-fail", `[ "$ZREPL_HOOKTYPE" = pre_snapshot ] && exit 1; exit 0`)
	postFail := script(t, dir, "post-fail", `[ "$ZREPL_HOOKTYPE" = post_snapshot ] && exit 1; exit 0`)
	marker := filepath.Join(dir, "snapshot-taken")
	snapshot := script(t, dir, "snapshot", `touch "$1"`)

	tests := []struct {
		name     string
		hooks    string
		cmd      []string
		wantCode int
		wantCmd  bool // whether CMD ran
	}{
		{
			name:     "all_ok_exits_0",
			hooks:    "- {type: command, path: " + ok + "}",
			wantCode: 0, wantCmd: true,
		},
		{
			name:     "no_matching_hook_exits_0",
			hooks:    "- {type: command, path: " + fail + ", filesystems: {\"zroot<\": true}}",
			wantCode: 0, wantCmd: true,
		},
		{
			name:     "non_fatal_pre_error_takes_the_snapshot_and_exits_1",
			hooks:    "- {type: command, path: " + preFail + "}",
			wantCode: 1, wantCmd: true,
		},
		{
			name:     "post_error_exits_1",
			hooks:    "- {type: command, path: " + postFail + ", err_is_fatal: true}",
			wantCode: 1, wantCmd: true,
		},
		{
			name:     "fatal_pre_error_skips_the_snapshot_and_exits_2",
			hooks:    "- {type: command, path: " + ok + "}\n- {type: command, path: " + fail + ", err_is_fatal: true}",
			wantCode: 2, wantCmd: false,
		},
		{
			name:     "failing_cmd_exits_2",
			hooks:    "- {type: command, path: " + ok + "}",
			cmd:      []string{"sh", "-c", "touch \"$0\"; exit 3", marker},
			wantCode: 2, wantCmd: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			os.Remove(marker)
			cfg := config(t, t.TempDir(), tt.hooks)
			cmd := tt.cmd
			if cmd == nil {
				cmd = []string{snapshot, marker}
			}
			r := run(t, append([]string{"run", "-c", cfg, "--fs", "tank/db", "--"}, cmd...)...)
			if r.code != tt.wantCode {
				t.Errorf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, tt.wantCode, r.stdout, r.stderr)
			}
			if got := exists(marker); got != tt.wantCmd {
				t.Errorf("CMD ran: %v, want %v", got, tt.wantCmd)
			}
		})
	}
}

func TestUsageErrorsExit64(t *testing.T) {
	dir := t.TempDir()
	good := config(t, dir, "- {type: command, path: /bin/true}")
	bad := filepath.Join(dir, "bad.yml")
	if err := os.WriteFile(bad, []byte("- type: command\n  path: bin/x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		args       []string
		wantStderr string
	}{
		{"no_command", nil, "no command given"},
		{"unknown_command", []string{"snap"}, `unknown command "snap"`},
		{"unknown_flag", []string{"run", "-c", good, "--fs", "tank", "--bogus", "--", "true"}, "flag provided but not defined: -bogus"},
		{"missing_config", []string{"run", "--fs", "tank", "--", "true"}, "missing -c FILE"},
		{"missing_fs", []string{"run", "-c", good, "--", "true"}, "missing --fs"},
		{"missing_cmd", []string{"run", "-c", good, "--fs", "tank"}, "missing the snapshot command"},
		{"bad_dataset", []string{"run", "-c", good, "--fs", "tank@snap", "--", "true"}, "--fs: invalid dataset path"},
		{"bad_snapshot_name", []string{"run", "-c", good, "--fs", "tank", "--snapshot", "a/b", "--", "true"}, `snapshot name "a/b"`},
		{"bad_log_level", []string{"run", "-c", good, "--fs", "tank", "--log-level", "loud", "--", "true"}, "--log-level"},
		{"dry_run_cmd_without_dry_run", []string{"run", "-c", good, "--fs", "tank", "--dry-run-cmd", "--", "true"}, "--dry-run-cmd needs --dry-run"},
		{"cmd_not_found", []string{"run", "-c", good, "--fs", "tank", "--", "no-such-command-here"}, `CMD: exec: "no-such-command-here"`},
		{"config_not_found", []string{"run", "-c", filepath.Join(dir, "nope.yml"), "--fs", "tank", "--", "true"}, "no such file"},
		{"bad_config", []string{"run", "-c", bad, "--fs", "tank", "--", "true"}, `bad.yml: hook #1 (line 2): path: "bin/x" is not absolute`},
		{"check_bad_config", []string{"check", "-c", bad}, `bad.yml: hook #1 (line 2): path: "bin/x" is not absolute`},
		{"check_bad_dataset", []string{"check", "-c", good, "--fs", "tank/"}, "--fs: invalid dataset path"},
		{"check_extra_argument", []string{"check", "-c", good, "tank"}, `unexpected argument "tank"`},
		{"help_unknown_command", []string{"help", "snap"}, `unknown command "snap"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := run(t, tt.args...)
			if r.code != exitUsage {
				t.Errorf("exit code %d, want %d\nstderr:\n%s", r.code, exitUsage, r.stderr)
			}
			if !strings.Contains(r.stderr, tt.wantStderr) {
				t.Errorf("stderr does not contain %q:\n%s", tt.wantStderr, r.stderr)
			}
			if r.stdout != "" {
				t.Errorf("stdout not empty:\n%s", r.stdout)
			}
		})
	}
}

func TestHelpExits0AndDocumentsExitCodes(t *testing.T) {
	for _, args := range [][]string{
		{"--help"}, {"-h"}, {"help"}, {"help", "run"}, {"help", "check"},
		{"run", "--help"}, {"run", "-h"}, {"check", "--help"},
	} {
		t.Run(strings.Join(args, "_"), func(t *testing.T) {
			r := run(t, args...)
			if r.code != 0 {
				t.Fatalf("exit code %d, want 0; stderr:\n%s", r.code, r.stderr)
			}
			if !strings.Contains(r.stdout, "Usage:") || !strings.Contains(r.stdout, "Exit status:") {
				t.Errorf("help lacks usage or exit status:\n%s", r.stdout)
			}
			if args[0] != "check" && (len(args) < 2 || args[1] != "check") {
				for _, code := range []string{"\n  0 ", "\n  1 ", "\n  2 ", "\n  64 "} {
					if !strings.Contains(r.stdout, code) {
						t.Errorf("help does not document exit code %q:\n%s", strings.TrimSpace(code), r.stdout)
					}
				}
			}
		})
	}
}

// jsonResult is the part of the --json output the tests look at.
type jsonResult struct {
	FS            string   `json:"fs"`
	Datasets      []string `json:"datasets"`
	Skipped       bool     `json:"skipped"`
	Snapshot      string   `json:"snapshot"`
	DryRun        bool     `json:"dry_run"`
	Command       []string `json:"command"`
	OK            bool     `json:"ok"`
	HadError      bool     `json:"had_error"`
	HadFatalError bool     `json:"had_fatal_error"`
	Signal        string   `json:"signal"`
	ExitCode      int      `json:"exit_code"`
	Result        string   `json:"result"`
	Steps         []struct {
		Step   int    `json:"step"`
		Edge   string `json:"edge"`
		Status string `json:"status"`
		Hook   string `json:"hook"`
		Error  string `json:"error"`
	} `json:"steps"`
}

func parseJSON(t *testing.T, r result) jsonResult {
	t.Helper()
	var j jsonResult
	if err := json.Unmarshal([]byte(r.stdout), &j); err != nil {
		t.Fatalf("--json output does not parse: %v\n%s", err, r.stdout)
	}
	return j
}

// statuses returns "edge:status" for every step.
func (j jsonResult) statuses() []string {
	var s []string
	for _, st := range j.Steps {
		s = append(s, st.Edge+":"+st.Status)
	}
	return s
}

func TestRunJSON(t *testing.T) {
	dir := t.TempDir()
	ok := script(t, dir, "ok", "exit 0")
	fail := script(t, dir, "fail", "exit 1")
	cfg := config(t, dir, "- {type: command, path: "+ok+"}\n- {type: command, path: "+fail+"}\n")

	r := run(t, "run", "-c", cfg, "--fs", "tank/db", "--snapshot", "s1", "--json", "--", "true")
	if r.code != 1 {
		t.Fatalf("exit code %d, want 1; stderr:\n%s", r.code, r.stderr)
	}
	// The raw object has every documented key.
	var raw map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &raw); err != nil {
		t.Fatalf("--json output does not parse: %v\n%s", err, r.stdout)
	}
	for _, key := range []string{"fs", "snapshot", "dry_run", "command", "ok", "had_error", "had_fatal_error", "exit_code", "result", "steps"} {
		if _, found := raw[key]; !found {
			t.Errorf("--json output lacks %q", key)
		}
	}
	j := parseJSON(t, r)
	if j.FS != "tank/db" || j.Snapshot != "s1" || j.DryRun || j.OK || !j.HadError || j.HadFatalError || j.ExitCode != 1 {
		t.Errorf("unexpected result: %+v", j)
	}
	if strings.Join(j.Command, " ") != "true" {
		t.Errorf("command %q, want [true]", j.Command)
	}
	want := []string{"Pre:Ok", "Pre:Err", "Callback:Ok", "Post:SkippedDueToPreErr", "Post:Ok"}
	if got := j.statuses(); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("steps %v, want %v", got, want)
	}
	if j.Steps[1].Step != 2 || j.Steps[1].Hook != fail || !strings.Contains(j.Steps[1].Error, "exit status 1") {
		t.Errorf("step 2: %+v", j.Steps[1])
	}
}

func TestRunTextReport(t *testing.T) {
	dir := t.TempDir()
	fail := script(t, dir, "fail", "exit 1")
	cfg := config(t, dir, "- {type: command, path: "+fail+", err_is_fatal: true}\n")
	r := run(t, "run", "-c", cfg, "--fs", "tank/db", "--snapshot", "s1", "--", "true")
	if r.code != 2 {
		t.Fatalf("exit code %d, want 2; stderr:\n%s", r.code, r.stderr)
	}
	for _, want := range []string{
		"01 [Err] [",
		"] ! [Pre]  " + fail + "\n",
		"02 [SkippedDueToFatalErr] [   0s] ~ [Callback]  true\n",
		"03 [SkippedDueToFatalErr] [   0s] ~ [Post]  " + fail + "\n",
		`01 command hook failed with "exit status 1"`,
		"snapshot skipped: tank/db@s1: a pre hook with err_is_fatal failed\n",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, r.stdout)
		}
	}
	if !strings.Contains(r.stderr, `level=ERROR msg="fatal pre edge error`) {
		t.Errorf("stderr lacks the fatal error log record:\n%s", r.stderr)
	}
}

// readEnv reads a file of NAME=value lines written by env.
func readEnv(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("CMD did not write its environment: %v", err)
	}
	m := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		k, v, _ := strings.Cut(line, "=")
		m[k] = v
	}
	return m
}

func TestRunCmdEnvironment(t *testing.T) {
	dir := t.TempDir()
	hookEnv := filepath.Join(dir, "hook-env")
	hook := script(t, dir, "hook", `[ "$ZREPL_HOOKTYPE" = pre_snapshot ] && env | grep '^ZREPL_' > "$HOOK_ENV"; exit 0`)
	cmdEnv := filepath.Join(dir, "cmd-env")
	printEnv := script(t, dir, "print-env", `env | grep '^ZREPL_' > "$1"`)
	cfg := config(t, dir, "- {type: command, path: "+hook+"}\n")
	generated := regexp.MustCompile(`^snaphook_\d{8}_\d{6}_000$`)

	tests := []struct {
		name        string
		flags       []string
		wantSnap    *regexp.Regexp
		wantDryRun  string
		wantCmdRuns bool
	}{
		{"generated_name", nil, generated, "", true},
		{"given_name", []string{"--snapshot", "daily-1"}, regexp.MustCompile(`^daily-1$`), "", true},
		{"prefix", []string{"--prefix", "zrepl_"}, regexp.MustCompile(`^zrepl_\d{8}_\d{6}_000$`), "", true},
		{"dry_run_does_not_run_cmd", []string{"--dry-run"}, generated, "true", false},
		{"dry_run_cmd_runs_cmd_with_dryrun_set", []string{"--dry-run", "--dry-run-cmd"}, generated, "true", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			os.Remove(cmdEnv)
			os.Remove(hookEnv)
			args := append([]string{"run", "-c", cfg, "--fs", "tank/db", "--json"}, tt.flags...)
			r := runSnaphook(t, invocation{
				args: append(args, "--", printEnv, cmdEnv),
				env:  []string{"HOOK_ENV=" + hookEnv},
			})
			if r.code != 0 {
				t.Fatalf("exit code %d; stderr:\n%s", r.code, r.stderr)
			}
			j := parseJSON(t, r)
			if !tt.wantSnap.MatchString(j.Snapshot) {
				t.Errorf("snapshot %q does not match %s", j.Snapshot, tt.wantSnap)
			}
			if j.DryRun != (tt.wantDryRun == "true") {
				t.Errorf("dry_run %v", j.DryRun)
			}
			hook := readEnv(t, hookEnv)
			if hook["ZREPL_FS"] != "tank/db" || hook["ZREPL_SNAPNAME"] != j.Snapshot || hook["ZREPL_DRYRUN"] != tt.wantDryRun {
				t.Errorf("hook environment %v", hook)
			}
			if !tt.wantCmdRuns {
				if exists(cmdEnv) {
					t.Errorf("CMD ran in a dry run without --dry-run-cmd")
				}
				if cb := j.Steps[1]; cb.Edge != "Callback" || cb.Status != "Ok" || !strings.HasPrefix(cb.Hook, "(dry run, not run) ") {
					t.Errorf("callback step %+v", cb)
				}
				return
			}
			got := readEnv(t, cmdEnv)
			want := map[string]string{"ZREPL_FS": "tank/db", "ZREPL_SNAPNAME": j.Snapshot, "ZREPL_DRYRUN": tt.wantDryRun}
			for k, v := range want {
				if got[k] != v {
					t.Errorf("CMD saw %s=%q, want %q (all: %v)", k, got[k], v, got)
				}
			}
		})
	}
}

func TestRunConfigFromStdin(t *testing.T) {
	dir := t.TempDir()
	ok := script(t, dir, "ok", "echo hello from the hook")
	r := runSnaphook(t, invocation{
		args:  []string{"run", "-c", "-", "--fs", "tank/db", "--", "true"},
		stdin: "hooks:\n  - {type: command, path: " + ok + "}\n",
	})
	if r.code != 0 {
		t.Fatalf("exit code %d; stderr:\n%s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, `stdout="hello from the hook"`) {
		t.Errorf("hook output not logged:\n%s", r.stderr)
	}
	r = runSnaphook(t, invocation{
		args:  []string{"run", "-c", "-", "--fs", "tank/db", "--", "true"},
		stdin: "- type: command\n  path: x\n",
	})
	if r.code != exitUsage || !strings.Contains(r.stderr, `<stdin>: hook #1 (line 2): path: "x" is not absolute`) {
		t.Errorf("exit code %d, stderr:\n%s", r.code, r.stderr)
	}
}

func TestRunLogLevel(t *testing.T) {
	dir := t.TempDir()
	ok := script(t, dir, "ok", "echo chatty")
	cfg := config(t, dir, "- {type: command, path: "+ok+"}\n")
	r := run(t, "run", "-c", cfg, "--fs", "tank/db", "--log-level", "warn", "--", "true")
	if r.code != 0 || r.stderr != "" {
		t.Errorf("exit code %d, stderr at level warn:\n%s", r.code, r.stderr)
	}
	r = run(t, "run", "-c", cfg, "--fs", "tank/db", "--log-level", "debug", "--", "true")
	if !strings.Contains(r.stderr, "level=DEBUG") || !strings.Contains(r.stderr, `stdout=chatty`) {
		t.Errorf("stderr at level debug:\n%s", r.stderr)
	}
}

func TestRunTimeoutStopsCmd(t *testing.T) {
	dir := t.TempDir()
	cfg := config(t, dir, "[]")
	pidFile := filepath.Join(dir, "pid")
	start := time.Now()
	r := run(t, "run", "-c", cfg, "--fs", "tank/db", "--timeout", "200ms", "--",
		"sh", "-c", `echo $$ > "$0"; sleep 30 & sleep 30`, pidFile)
	if r.code != 2 {
		t.Errorf("exit code %d, want 2; stderr:\n%s", r.code, r.stderr)
	}
	if !strings.Contains(r.stdout, "timed out after 200ms") {
		t.Errorf("stdout does not say the command timed out:\n%s", r.stdout)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("took %v", d)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pgid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	assertGroupGone(t, pgid) // CMD and the child it left in the background
}

// TestRunSignalUnwinds interrupts snaphook during a slow pre hook, and again
// during the post hook of an earlier hook: the post hook completes, the
// snapshot is skipped, the slow hook's processes are gone.
func TestRunSignalUnwinds(t *testing.T) {
	dir := t.TempDir()
	postDone := filepath.Join(dir, "post-done")
	pidFile := filepath.Join(dir, "slow-pid")
	snapTaken := filepath.Join(dir, "snapshot-taken")
	first := script(t, dir, "first", `
case "$ZREPL_HOOKTYPE" in
post_snapshot) echo post-started; sleep 1; touch "$POST_DONE" ;;
esac
exit 0`)
	slow := script(t, dir, "slow", `
echo $$ > "$PID_FILE"
echo slow-started
sleep 30
exit 0`)
	cfg := config(t, dir, "- {type: command, path: "+first+"}\n- {type: command, path: "+slow+", timeout: 1m}\n")

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, "run", "-c", cfg, "--fs", "tank/db", "--json", "--", "touch", snapTaken)
	cmd.Env = append(os.Environ(), "POST_DONE="+postDone, "PID_FILE="+pidFile)
	stdout := new(strings.Builder)
	cmd.Stdout = stdout
	stderrPipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })

	// Follow the log; send SIGINT when the slow pre hook has started, and
	// again when the post hook of the first hook has started.
	var log strings.Builder
	sc := bufio.NewScanner(stderrPipe)
	for sc.Scan() {
		line := sc.Text()
		log.WriteString(line + "\n")
		switch {
		case strings.Contains(line, "stdout=slow-started"):
			if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
				t.Fatal(err)
			}
		case strings.Contains(line, "stdout=post-started"):
			if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
				t.Fatal(err)
			}
		}
	}
	_, _ = io.Copy(io.Discard, stderrPipe)
	err = cmd.Wait()
	code := cmd.ProcessState.ExitCode()
	if code != 2 {
		t.Fatalf("exit code %d (%v), want 2; log:\n%s", code, err, log.String())
	}
	if !exists(postDone) {
		t.Errorf("the post hook of the first hook did not complete; log:\n%s", log.String())
	}
	if exists(snapTaken) {
		t.Errorf("CMD ran although snaphook was interrupted before it")
	}
	if !strings.Contains(log.String(), "signal received again") {
		t.Errorf("the second signal was not logged:\n%s", log.String())
	}
	j := parseJSON(t, result{stdout: stdout.String()})
	want := "Pre:Ok Pre:Err Callback:Err Post:SkippedDueToPreErr Post:Ok"
	if got := strings.Join(j.statuses(), " "); got != want {
		t.Errorf("steps %s, want %s", got, want)
	}
	if j.Signal != "SIGINT" || !j.HadFatalError || !strings.Contains(j.Result, "interrupted by SIGINT") {
		t.Errorf("result %+v", j)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pgid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	assertGroupGone(t, pgid)
}

// TestRunTextReportShowsTheOutputOfAFailedHook: why a hook failed is in the
// report, not only in the log: the last lines of its output.
func TestRunTextReportShowsTheOutputOfAFailedHook(t *testing.T) {
	dir := t.TempDir()
	// All on stderr: the order of lines on stdout and stderr, two pipes,
	// is not kept in the captured output.
	fail := script(t, dir, "fail", `
exec 1>&2
i=1
while [ $i -le 12 ]; do echo "step $i of the checks"; i=$((i+1)); done
echo "cannot reach the admin socket" >&2
exit 3`)
	quietFail := script(t, dir, "quiet-fail", "exit 4")
	ok := script(t, dir, "ok", "echo all fine")
	cfg := config(t, dir, "- {type: command, path: "+ok+"}\n- {type: command, path: "+quietFail+"}\n- {type: command, path: "+fail+"}\n")
	r := run(t, "run", "-c", cfg, "--fs", "tank/db", "--snapshot", "s1", "--", "true")
	if r.code != exitHookError {
		t.Fatalf("exit code %d, want %d; stderr:\n%s", r.code, exitHookError, r.stderr)
	}
	want := `03 command hook failed with "exit status 3": "` // then the command line
	i := strings.Index(r.stdout, want)
	if i < 0 {
		t.Fatalf("stdout lacks %q:\n%s", want, r.stdout)
	}
	tail := r.stdout[i:]
	tail = tail[strings.IndexByte(tail, '\n')+1:]
	wantTail := "   output, last 10 lines:\n" +
		"   | step 4 of the checks\n" +
		"   | step 5 of the checks\n" +
		"   | step 6 of the checks\n" +
		"   | step 7 of the checks\n" +
		"   | step 8 of the checks\n" +
		"   | step 9 of the checks\n" +
		"   | step 10 of the checks\n" +
		"   | step 11 of the checks\n" +
		"   | step 12 of the checks\n" +
		"   | cannot reach the admin socket\n" +
		"hook error: tank/db@s1: "
	if !strings.HasPrefix(tail, wantTail) {
		t.Errorf("after the report of step 3, stdout has\n%s\nwant\n%s", tail, wantTail)
	}
	// A failed hook without output gets no heading; one that succeeded
	// gets nothing at all.
	if n := strings.Count(r.stdout, "output, last"); n != 1 {
		t.Errorf("%d output headings, want 1:\n%s", n, r.stdout)
	}
	if strings.Contains(r.stdout, "all fine") {
		t.Errorf("the output of a hook that succeeded is in the report:\n%s", r.stdout)
	}
}

func TestWriteOutputTail(t *testing.T) {
	long := strings.Repeat("x", outputTailBytes+100)
	tests := []struct {
		name, out, want string
	}{
		{"no_output_no_heading", "", ""},
		{"blank_output_no_heading", "\n \n", ""},
		{"one_line", "cannot reach the admin socket\n", "   output, last 1 line:\n   | cannot reach the admin socket\n"},
		{"no_final_newline", "a\nb", "   output, last 2 lines:\n   | a\n   | b\n"},
		{"crlf_and_control_characters", "a\r\n\x1b[31mred\x07\r\n", "   output, last 2 lines:\n   | a\n   | ?[31mred?\n"},
		{"blank_lines_inside_kept", "a\n\nb\n", "   output, last 3 lines:\n   | a\n   | \n   | b\n"},
		{"a_line_cut_by_the_byte_bound", long + "\nend\n", "   output, last 2 lines:\n   | ..." + strings.Repeat("x", outputTailBytes-5) + "\n   | end\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b strings.Builder
			writeOutputTail(&b, []byte(tt.out))
			if b.String() != tt.want {
				t.Errorf("got\n%q\nwant\n%q", b.String(), tt.want)
			}
		})
	}
}

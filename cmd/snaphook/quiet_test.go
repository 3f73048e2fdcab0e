package main

import (
	"fmt"
	"strings"
	"testing"
)

// TestRunQuiet: --quiet prints nothing at all when all went well, even if
// the hooks wrote to stderr (logged as warnings); when something went
// wrong, it prints the log and the report as without --quiet.
func TestRunQuiet(t *testing.T) {
	dir := t.TempDir()
	chatty := script(t, dir, "chatty", `echo "chatty on stdout"; echo "chatty on stderr" >&2`)
	fail := script(t, dir, "fail", `echo "cannot reach the admin socket" >&2; exit 3`)
	fatal := script(t, dir, "fatal", `[ "$ZREPL_HOOKTYPE" = pre_snapshot ] && { echo "frozen? no" >&2; exit 5; }; exit 0`)
	okCfg := config(t, t.TempDir(), "- {type: command, path: "+chatty+"}\n")
	failCfg := config(t, t.TempDir(), "- {type: command, path: "+chatty+"}\n- {type: command, path: "+fail+"}\n")
	fatalCfg := config(t, t.TempDir(), "- {type: command, path: "+fatal+", err_is_fatal: true}\n")

	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout []string // nil: stdout must be empty
		wantStderr []string // nil: stderr must be empty
	}{
		{
			name: "all_ok_prints_nothing", wantCode: 0,
			args: []string{"-q", "-c", okCfg, "--", "true"},
		},
		{
			name: "all_ok_with_json_and_debug_log_prints_nothing", wantCode: 0,
			args: []string{"--quiet", "--json", "--log-level", "debug", "-c", okCfg, "--", "true"},
		},
		{
			name: "all_ok_in_a_dry_run_prints_nothing", wantCode: 0,
			args: []string{"-q", "--dry-run", "-c", okCfg, "--", "true"},
		},
		{
			name: "hook_error_prints_the_log_and_the_report", wantCode: exitHookError,
			args:       []string{"-q", "-c", failCfg, "--", "true"},
			wantStdout: []string{"02 [Err] [", "   | cannot reach the admin socket\n", "hook error: tank/db@s: "},
			wantStderr: []string{`msg="run hooks"`, `stderr="chatty on stderr"`, `stderr="cannot reach the admin socket"`, `msg=done exit_code=1`},
		},
		{
			name: "hook_error_with_json_prints_the_json", wantCode: exitHookError,
			args:       []string{"-q", "--json", "-c", failCfg, "--", "true"},
			wantStdout: []string{`"exit_code": 1`},
			wantStderr: []string{`stderr="cannot reach the admin socket"`},
		},
		{
			name: "failed_cmd_prints_the_log_and_the_report", wantCode: exitSnapshotFailed,
			args:       []string{"-q", "-c", okCfg, "--", "sh", "-c", "echo no space left >&2; exit 1"},
			wantStdout: []string{"snapshot failed: tank/db@s: "},
			wantStderr: []string{`stderr="no space left"`},
		},
		{
			name: "skipped_snapshot_prints_the_log_and_the_report", wantCode: exitSnapshotFailed,
			args:       []string{"-q", "-c", fatalCfg, "--", "true"},
			wantStdout: []string{"   | frozen? no\n", "snapshot skipped: tank/db@s: "},
			wantStderr: []string{`msg="fatal pre edge error`},
		},
		{
			name: "usage_error_is_printed", wantCode: exitUsage,
			args:       []string{"-q", "-c", okCfg, "--", "no-such-command-here"},
			wantStderr: []string{`CMD: exec: "no-such-command-here"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := run(t, append([]string{"run", "--fs", "tank/db", "--snapshot", "s"}, tt.args...)...)
			if r.code != tt.wantCode {
				t.Errorf("exit code %d, want %d", r.code, tt.wantCode)
			}
			for name, c := range map[string]struct {
				got  string
				want []string
			}{"stdout": {r.stdout, tt.wantStdout}, "stderr": {r.stderr, tt.wantStderr}} {
				if c.want == nil && c.got != "" {
					t.Errorf("%s not empty:\n%s", name, c.got)
				}
				for _, w := range c.want {
					if !strings.Contains(c.got, w) {
						t.Errorf("%s lacks %q:\n%s", name, w, c.got)
					}
				}
			}
		})
	}
}

// TestRunQuietOnTerminal: no status line either.
func TestRunQuietOnTerminal(t *testing.T) {
	cfg := slowConfig(t)
	if got := runOnTerminal(t, 0, "run", "-q", "-c", cfg, "--fs", "tank/db", "--", "true"); got != "" {
		t.Errorf("wrote to the terminal:\n%q", got)
	}
}

func TestLogTailKeepsTheLastWholeRecords(t *testing.T) {
	tail := newLogTail(100)
	var all strings.Builder
	for i := range 20 {
		rec := fmt.Sprintf("level=INFO msg=record n=%d\n", i) // 27 or 28 bytes
		all.WriteString(rec)
		if _, err := tail.Write([]byte(rec)); err != nil {
			t.Fatal(err)
		}
	}
	var out strings.Builder
	tail.writeTo(&out)
	first, rest, _ := strings.Cut(out.String(), "\n")
	if !strings.Contains(first, `level=WARN msg="quiet: the earlier log records were dropped; the last ones follow"`) ||
		!strings.Contains(first, fmt.Sprintf("dropped_bytes=%d", all.Len()-len(rest))) ||
		!strings.Contains(first, "limit_bytes=100") {
		t.Errorf("first line %q", first)
	}
	want := "level=INFO msg=record n=17\nlevel=INFO msg=record n=18\nlevel=INFO msg=record n=19\n"
	if rest != want {
		t.Errorf("held records:\n%s\nwant:\n%s", rest, want)
	}

	// Below the limit, the log is written as it came.
	small := newLogTail(100)
	_, _ = small.Write([]byte("level=INFO msg=one\n"))
	out.Reset()
	small.writeTo(&out)
	if out.String() != "level=INFO msg=one\n" {
		t.Errorf("got %q", out.String())
	}
}

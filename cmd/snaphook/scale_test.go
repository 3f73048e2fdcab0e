package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/snaphooks/hooks"
)

// manyFS returns n --fs flags of 45-byte datasets under tank: 4,000 of them
// make a ZREPL_FS_LIST of 180 KB, more than Linux allows one string.
func manyFS(n int) []string {
	var args []string
	for i := range n {
		args = append(args, "--fs", fmt.Sprintf("tank/data/set-%030d", i))
	}
	return args
}

func TestRunPassesManyDatasetsAndTheConsistencyLabelToCMD(t *testing.T) {
	dir := t.TempDir()
	// The hook and CMD write what they saw: the lines of ZREPL_FS_LIST_FILE,
	// whether ZREPL_FS_LIST is set, and (CMD) ZREPL_CONSISTENCY.
	report := `{ if [ -n "${ZREPL_FS_LIST_FILE:-}" ]; then wc -l < "$ZREPL_FS_LIST_FILE"; else echo none; fi; echo "${ZREPL_FS_LIST+set}"; echo "${ZREPL_CONSISTENCY:-}"; } > "$1"`
	hook := script(t, dir, "hook", `[ "$ZREPL_HOOKTYPE" = pre_snapshot ] || exit 0; set -- "$HOOK_SAW"; `+report+`; exit "${HOOK_EXIT:-0}"`)
	cmd := script(t, dir, "cmd", report)
	cfgAll := config(t, dir, "- {type: command, path: "+hook+"}\n")
	cfgNone := filepath.Join(dir, "none.yml")
	if err := os.WriteFile(cfgNone, []byte("- {type: command, path: "+hook+", filesystems: {'zroot<': true}}\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name      string
		cfg       string
		fs        []string
		hookExit  string
		wantHook  string // what the hook saw; "" if it did not run
		wantCMD   string
		wantCode  int
		wantLabel string
	}{
		{"4000_datasets_in_the_file_not_the_env", cfgAll, manyFS(4000), "0", "4000\n\n\n", "4000\n\napplication\n", 0, "application"},
		{"two_datasets_in_both", cfgAll, []string{"--fs", "tank/db", "--fs", "tank/log"}, "0", "2\nset\n\n", "2\nset\napplication\n", 0, "application"},
		{"one_dataset_gets_no_file", cfgAll, []string{"--fs", "tank/db"}, "0", "none\nset\n\n", "none\nset\napplication\n", 0, "application"},
		{"a_failed_pre_edge_is_crash", cfgAll, []string{"--fs", "tank/db"}, "1", "none\nset\n\n", "none\nset\ncrash\n", exitHookError, "crash"},
		{"no_hook_matched_is_crash", cfgNone, manyFS(4000), "0", "", "4000\n\ncrash\n", 0, "crash"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hookSaw, cmdSaw := filepath.Join(t.TempDir(), "hook"), filepath.Join(t.TempDir(), "cmd")
			args := append(append([]string{"run", "-c", tt.cfg, "--snapshot", "s1", "--json"}, tt.fs...), "--", cmd, cmdSaw)
			r := runSnaphook(t, invocation{args: args, env: []string{"HOOK_SAW=" + hookSaw, "HOOK_EXIT=" + tt.hookExit}})
			if r.code != tt.wantCode {
				t.Fatalf("exit code %d, want %d; stderr:\n%.2000s", r.code, tt.wantCode, r.stderr)
			}
			if got := readFile(t, cmdSaw); got != tt.wantCMD {
				t.Errorf("CMD saw %q, want %q", got, tt.wantCMD)
			}
			if tt.wantHook == "" {
				if exists(hookSaw) {
					t.Errorf("the hook ran")
				}
			} else if got := readFile(t, hookSaw); got != tt.wantHook {
				t.Errorf("the hook saw %q, want %q", got, tt.wantHook)
			}
			if want := `"consistency": "` + tt.wantLabel + `"`; !strings.Contains(r.stdout, want) {
				t.Errorf("the JSON report has no %s", want)
			}
		})
	}
}

// requireNoControl fails if s holds a control rune (hooks.IsControl) other
// than a newline.
func requireNoControl(t *testing.T, what, s string) {
	t.Helper()
	for i, r := range s {
		if r != '\n' && hooks.IsControl(r) {
			t.Fatalf("%s: control rune %U at byte %d of %q", what, r, i, s)
		}
	}
}

func TestCheckAndRunEscapeC1AndBidiControls(t *testing.T) {
	dir := t.TempDir()
	// A hook whose name and output hold C1 and bidi controls.
	hook := script(t, dir, "hook\u202egnp.exe\u009b", `printf 'out\302\233[2J\342\200\256x\n'; exit 1`)
	cfg := config(t, dir, "- {type: command, path: "+strconv.QuoteToASCII(hook)+"}\n") // YAML reads Go's \u escapes
	r := run(t, "check", "-c", cfg, "--fs", "tank/db")
	if r.code != 0 {
		t.Fatalf("check: exit code %d; stderr:\n%s", r.code, r.stderr)
	}
	requireNoControl(t, "check stdout", r.stdout)
	requireNoControl(t, "check stderr", r.stderr)

	for _, flags := range [][]string{nil, {"--json"}} {
		r = run(t, append(append([]string{"run", "-c", cfg, "--fs", "tank/db"}, flags...), "--", "true")...)
		if r.code != exitHookError {
			t.Fatalf("run %v: exit code %d; stderr:\n%s", flags, r.code, r.stderr)
		}
		requireNoControl(t, fmt.Sprintf("run %v stdout", flags), r.stdout)
		requireNoControl(t, fmt.Sprintf("run %v stderr", flags), r.stderr)
	}
}

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRunScope: with several --fs, or -r, every matching hook runs once
// around one CMD, and each gets the datasets it matched.
func TestRunScope(t *testing.T) {
	dir := t.TempDir()
	record := filepath.Join(dir, "record")
	rec := script(t, dir, "rec", `printf '%s %s fs=%s list=%s\n' "$(basename "$0")" "$ZREPL_HOOKTYPE" "$ZREPL_FS" "$(echo "$ZREPL_FS_LIST" | paste -sd, -)" >>"`+record+`"`)
	for _, name := range []string{"db", "log", "both", "deep", "other"} {
		if err := os.Symlink(rec, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	cfg := config(t, dir, `
- {type: command, path: `+dir+`/db, filesystems: {"tank/db": true}}
- {type: command, path: `+dir+`/both, filesystems: {"tank/db": true, "tank/log<": true}}
- {type: command, path: `+dir+`/deep, filesystems: {"tank<": false, "tank/deep/er<": true}}
- {type: command, path: `+dir+`/other, filesystems: {"zroot<": true}}
- {type: command, path: `+dir+`/log, filesystems: {"tank/log": true}}
`)
	snap := script(t, dir, "snap", `printf 'snapshot fs=%s list=%s\n' "$ZREPL_FS" "$(echo "$ZREPL_FS_LIST" | paste -sd, -)" >>"`+record+`"`)

	tests := []struct {
		name string
		args []string
		want []string
	}{
		{
			name: "two_datasets_each_hook_once",
			args: []string{"--fs", "tank/db", "--fs", "tank/log", "--fs", "tank/db"},
			want: []string{
				"db pre_snapshot fs=tank/db list=tank/db",
				"both pre_snapshot fs=tank/db list=tank/db,tank/log",
				"log pre_snapshot fs=tank/log list=tank/log",
				"snapshot fs=tank/db list=tank/db,tank/log",
				"log post_snapshot fs=tank/log list=tank/log",
				"both post_snapshot fs=tank/db list=tank/db,tank/log",
				"db post_snapshot fs=tank/db list=tank/db",
			},
		},
		{
			name: "recursive_matches_below_the_root",
			args: []string{"-r", "--fs", "tank"},
			want: []string{
				"db pre_snapshot fs=tank list=tank",
				"both pre_snapshot fs=tank list=tank",
				"deep pre_snapshot fs=tank list=tank",
				"log pre_snapshot fs=tank list=tank",
				"snapshot fs=tank list=tank",
				"log post_snapshot fs=tank list=tank",
				"deep post_snapshot fs=tank list=tank",
				"both post_snapshot fs=tank list=tank",
				"db post_snapshot fs=tank list=tank",
			},
		},
		{
			name: "not_recursive_runs_no_hook_for_the_parent",
			args: []string{"--fs", "tank"},
			want: []string{"snapshot fs=tank list=tank"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			os.Remove(record)
			args := append(append([]string{"run", "-c", cfg, "--json", "--snapshot", "s1"}, tt.args...), "--", snap)
			r := run(t, args...)
			if r.code != exitOK {
				t.Fatalf("exit code %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
			}
			b, err := os.ReadFile(record)
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Split(strings.TrimSpace(string(b)), "\n"); strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("ran:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			j := parseJSON(t, r)
			if len(j.Datasets) == 0 || j.FS != j.Datasets[0] {
				t.Errorf("JSON fs %q, datasets %q", j.FS, j.Datasets)
			}
		})
	}
}

func TestCheckScope(t *testing.T) {
	dir := t.TempDir()
	cfg := config(t, dir, `
- {type: command, path: /bin/true, filesystems: {"tank/db": true}}
- {type: command, path: /bin/true, filesystems: {"tank<": false, "tank/deep/er<": true}}
`)
	r := run(t, "check", "-c", cfg, "--fs", "tank/db", "--fs", "tank/log")
	for _, want := range []string{"tank/db       runs #1\n", "tank/log      runs no hook\n", "all together  runs #1\n"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, r.stdout)
		}
	}
	r = run(t, "check", "-c", cfg, "-r", "--fs", "tank")
	if !strings.Contains(r.stdout, "tank (recursive)  runs #1 #2\n") {
		t.Errorf("recursive check:\n%s", r.stdout)
	}
}

// TestRunAndPreSkip: a pre hook that exits with its skip_exit_code makes
// run exit 3 without running CMD, and pre exit 3 without leaving a holder;
// the earlier hook's post edge runs and learns that the snapshot was skipped.
func TestRunAndPreSkip(t *testing.T) {
	dir := t.TempDir()
	record := filepath.Join(dir, "record")
	first := script(t, dir, "first", `echo "first $ZREPL_HOOKTYPE ${ZREPL_CALLBACK_RESULT:-}" >>"`+record+`"`)
	skipper := script(t, dir, "skipper", `[ "$ZREPL_HOOKTYPE" = pre_snapshot ] && exit 75; exit 0`)
	cfg := config(t, dir, "- {type: command, path: "+first+"}\n- {type: command, path: "+skipper+", skip_exit_code: 75}\n")
	marker := filepath.Join(dir, "snapshot-taken")

	r := run(t, "run", "-c", cfg, "--fs", "tank/db", "--json", "--", "touch", marker)
	if r.code != exitSkipped {
		t.Fatalf("run: exit code %d, want %d\n%s\n%s", r.code, exitSkipped, r.stdout, r.stderr)
	}
	if exists(marker) {
		t.Error("CMD ran although a pre hook asked to skip")
	}
	j := parseJSON(t, r)
	if !j.Skipped || j.HadError || !strings.Contains(j.Result, "asked to skip") {
		t.Errorf("JSON: skipped %v, had_error %v, result %q", j.Skipped, j.HadError, j.Result)
	}
	if got := readFile(t, record); got != "first pre_snapshot \nfirst post_snapshot skipped\n" {
		t.Errorf("record %q", got)
	}

	os.Remove(record)
	e := newSplitEnv(t)
	pr, _ := e.pre(t, nil, "-c", cfg, "--fs", "tank/db")
	if pr.code != exitSkipped {
		t.Fatalf("pre: exit code %d, want %d\n%s\n%s", pr.code, exitSkipped, pr.stdout, pr.stderr)
	}
	if got := readFile(t, record); got != "first pre_snapshot \nfirst post_snapshot skipped\n" {
		t.Errorf("pre: record %q", got)
	}
	if p := e.post(t, nil, "--fs", "tank/db"); p.code == exitOK {
		t.Errorf("post after a skipped pre exited 0:\n%s", p.stdout)
	}
}

// TestRunShowsWhyCMDFailed: the last lines of a failed CMD's output are in
// the text report and in the JSON, as for a failed hook.
func TestRunShowsWhyCMDFailed(t *testing.T) {
	dir := t.TempDir()
	cfg := config(t, dir, "- {type: command, path: /bin/true}\n")
	cmd := []string{"sh", "-c", "echo 'cannot open tank/db: dataset is busy' >&2; exit 1"}
	r := run(t, append([]string{"run", "-c", cfg, "--fs", "tank/db", "--"}, cmd...)...)
	if r.code != exitSnapshotFailed || !strings.Contains(r.stdout, "   | cannot open tank/db: dataset is busy\n") {
		t.Errorf("exit code %d, stdout:\n%s", r.code, r.stdout)
	}
	r = run(t, append([]string{"run", "-c", cfg, "--fs", "tank/db", "--json", "--"}, cmd...)...)
	if !strings.Contains(r.stdout, `"output": "cannot open tank/db: dataset is busy\n"`) {
		t.Errorf("JSON lacks the output:\n%s", r.stdout)
	}
}

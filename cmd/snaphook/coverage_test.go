package main

// Tests of the coverage check against real servers whose files span two
// btrfs subvolumes mounted apart (see coverage_env_test.go): "snaphook
// check", "run", "pre" and the library, in the modes warn, strict and off,
// with one dataset, both, and -r over their parent.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/snaphooks/hooks"
)

// coverageScope is a --fs selection of a case.
type coverageScope struct {
	name string
	args []string // the --fs (and -r) flags
	miss bool     // the snapshot misses tank/log
}

var coverageScopes = []coverageScope{
	{"one_dataset", []string{"--fs", "tank/db"}, true},
	{"both_datasets", []string{"--fs", "tank/db", "--fs", "tank/log"}, false},
	{"recursive_over_the_parent", []string{"-r", "--fs", "tank"}, false},
}

// scope returns the library's Scope of the flags.
func (c coverageScope) scope() hooks.Scope {
	var s hooks.Scope
	for i, a := range c.args {
		switch {
		case a == "-r":
			s.Recursive = true
		case a == "--fs":
			p, _ := hooks.NewDatasetPath(c.args[i+1])
			s.Datasets = append(s.Datasets, p)
		}
	}
	return s
}

// coverageConfig writes a hook list with a mariadb-backup-stage and a
// postgres-checkpoint hook, both err_is_fatal, in mode ("" leaves the key
// out: the default).
func coverageConfig(t *testing.T, w *coverageWorld, mode, pgDSN string) string {
	t.Helper()
	key := ""
	if mode != "" {
		key = "\n  coverage: " + mode
	}
	return config(t, t.TempDir(), fmt.Sprintf(`- type: mariadb-backup-stage
  dsn: %q
  err_is_fatal: true
  filesystems: {"tank<": true}%s
- type: postgres-checkpoint
  dsn: %q
  err_is_fatal: true
  filesystems: {"tank<": true}%s
`, w.myDSN, key, pgDSN, key))
}

// One world, one server of each kind, for every case: starting them is
// what takes time.
func TestDBCoverage(t *testing.T) {
	w := newCoverageWorld(t)
	t.Run("check", w.testCheck)
	for _, mode := range []string{hooks.CoverageWarn, hooks.CoverageStrict, hooks.CoverageOff} {
		w.testLibraryAndRun(t, mode)
	}
	t.Run("pre", w.testPre)
	t.Run("role_without_pg_read_all_settings", w.testRoleWithoutSettings)
	// The server is left running without its directory here for as short a
	// time as it takes: dry runs and check ask it, and touch no file.
	t.Run("server_not_on_this_host", w.testNotOnThisHost)
}

// misses are what the coverage check says of a snapshot of tank/db alone:
// the MariaDB redo log and the PostgreSQL WAL are on tank/log.
func (w *coverageWorld) misses() (myMiss, pgMiss string) {
	return fmt.Sprintf("the redo log (%s) is on tank/log, which this snapshot does not include", w.myRedo),
		fmt.Sprintf("the WAL (%s/pg_wal) is on tank/log, which this snapshot does not include", w.pgLink)
}

func (w *coverageWorld) testCheck(t *testing.T) {
	myMiss, pgMiss := w.misses()
	misses := []string{myMiss, pgMiss}
	cfg := coverageConfig(t, w, "", w.pgDSN)
	for _, sc := range coverageScopes {
		t.Run(sc.name, func(t *testing.T) {
			r := run(t, append([]string{"check", "-c", cfg}, sc.args...)...)
			if r.code != exitOK {
				t.Fatalf("exit code %d; stderr:\n%s", r.code, r.stderr)
			}
			for _, want := range []string{
				"the data directory  " + w.myData, "the redo log        " + w.myRedo,
				"the data directory  " + w.pgLink + " -> " + filepath.Join(w.db, "pg", "data"),
				"the WAL             " + w.pgLink + "/pg_wal -> " + filepath.Join(w.log, "pg", "wal"),
				"tank/db   " + w.db + " (btrfs)", "tank/log  " + w.log + " (btrfs)",
			} {
				if !strings.Contains(r.stdout, want) {
					t.Errorf("stdout lacks %q:\n%s", want, r.stdout)
				}
			}
			requireMisses(t, sc.miss, r.stderr, misses)
			verdict := "holds them all"
			if sc.miss {
				verdict = "a snapshot of tank/db misses tank/log"
			}
			if strings.Count(r.stdout, verdict) != 2 {
				t.Errorf("stdout does not say %q for both hooks:\n%s", verdict, r.stdout)
			}
		})
	}
}

// testLibraryAndRun runs a job plan of the library and "snaphook run" for
// each scope in mode.
func (w *coverageWorld) testLibraryAndRun(t *testing.T, mode string) {
	myMiss, pgMiss := w.misses()
	misses := []string{myMiss, pgMiss}
	cfg := coverageConfig(t, w, mode, w.pgDSN)
	for _, sc := range coverageScopes {
		fails := mode == hooks.CoverageStrict && sc.miss
		warns := mode == hooks.CoverageWarn && sc.miss
		t.Run("library_"+mode+"_"+sc.name, func(t *testing.T) {
			rep, logs, snapped := coveragePlan(t, cfg, sc.scope(), false)
			text := reportText(rep)
			if snapped == fails {
				t.Errorf("snapshot taken: %t, want %t:\n%s", snapped, !fails, text)
			}
			if fails && (!strings.Contains(text, "coverage (strict): "+myMiss) || !rep.HadFatalError()) {
				t.Errorf("no fatal strict coverage error:\n%s", text)
			}
			requireMisses(t, warns || fails, text, misses[:1])
			requireMisses(t, warns, text, misses[1:])
			requireMisses(t, warns || fails, logs, misses[:1])
			requireMisses(t, warns, logs, misses[1:])
			if warns && !strings.Contains(logs, "level=WARN") {
				t.Errorf("the warning is not logged at WARN:\n%s", logs)
			}
		})
		t.Run("run_"+mode+"_"+sc.name, func(t *testing.T) {
			marker := filepath.Join(t.TempDir(), "snapshot")
			r := run(t, append(append([]string{"run", "-c", cfg}, sc.args...), "--", "touch", marker)...)
			want := exitOK
			if fails {
				want = exitSnapshotFailed
			}
			if r.code != want || exists(marker) == fails {
				t.Fatalf("exit code %d (want %d), snapshot taken %t; stdout:\n%s\nstderr:\n%s", r.code, want, exists(marker), r.stdout, r.stderr)
			}
			requireMisses(t, warns || fails, r.stdout, misses[:1])
			requireMisses(t, warns, r.stdout, misses[1:])
		})
	}
}

func (w *coverageWorld) testPre(t *testing.T) {
	myMiss, pgMiss := w.misses()
	e := newSplitEnv(t)
	for _, tt := range []struct {
		mode  string
		sc    coverageScope
		held  bool
		warns bool
	}{
		{hooks.CoverageWarn, coverageScopes[0], true, true},
		{hooks.CoverageStrict, coverageScopes[0], false, false},
		{hooks.CoverageOff, coverageScopes[0], true, false},
		{hooks.CoverageStrict, coverageScopes[1], true, false},
		{hooks.CoverageStrict, coverageScopes[2], true, false},
	} {
		t.Run(tt.mode+"_"+tt.sc.name, func(t *testing.T) {
			cfg := coverageConfig(t, w, tt.mode, w.pgDSN)
			r, h := e.pre(t, nil, append([]string{"-c", cfg, "--snapshot", "s1"}, tt.sc.args...)...)
			if h.Held != tt.held {
				t.Fatalf("held %t, want %t; exit code %d\nstdout:\n%s\nstderr:\n%s", h.Held, tt.held, r.code, r.stdout, r.stderr)
			}
			out := r.stdout + r.stderr
			if !tt.held && (r.code != exitSnapshotFailed || !strings.Contains(out, "coverage (strict): "+jsonText(myMiss))) {
				t.Errorf("exit code %d, want %d with the strict coverage error:\n%s", r.code, exitSnapshotFailed, out)
			}
			requireMisses(t, tt.warns, out, []string{jsonText(pgMiss)})
			if tt.held {
				if p := e.post(t, nil, tt.sc.args...); p.code != exitOK {
					t.Errorf("post: exit code %d\n%s\n%s", p.code, p.stdout, p.stderr)
				}
			}
		})
	}
}

func (w *coverageWorld) testRoleWithoutSettings(t *testing.T) {
	for _, mode := range []string{hooks.CoverageWarn, hooks.CoverageStrict} {
		t.Run(mode, func(t *testing.T) {
			cfg := coverageConfig(t, w, mode, w.pgNoRead)
			rep, logs, snapped := coveragePlan(t, cfg, coverageScopes[1].scope(), false)
			text := reportText(rep)
			if snapped != (mode == hooks.CoverageWarn) {
				t.Errorf("snapshot taken: %t in mode %s:\n%s", snapped, mode, text)
			}
			for _, want := range []string{"coverage unknown: the role may not read data_directory", "pg_read_all_settings"} {
				if !strings.Contains(text, want) || mode == hooks.CoverageWarn && !strings.Contains(logs, want) {
					t.Errorf("report or log lacks %q:\n%s\n%s", want, text, logs)
				}
			}
			r := run(t, "check", "-c", cfg, "--fs", "tank/db")
			if !strings.Contains(r.stdout, "not known: coverage unknown: the role may not read data_directory") {
				t.Errorf("check does not say why:\n%s\n%s", r.stdout, r.stderr)
			}
		})
	}
}

func (w *coverageWorld) testNotOnThisHost(t *testing.T) {
	w.hidePostgresDir(t)
	unknown := fmt.Sprintf("coverage unknown: the data directory (%s), the WAL (%s/pg_wal): no such directory on this host", w.pgLink, w.pgLink)
	for _, mode := range []string{hooks.CoverageWarn, hooks.CoverageStrict} {
		t.Run(mode, func(t *testing.T) {
			cfg := coverageConfig(t, w, mode, w.pgDSN)
			rep, logs, snapped := coveragePlan(t, cfg, coverageScopes[1].scope(), true)
			text := reportText(rep)
			if snapped != (mode == hooks.CoverageWarn) {
				t.Errorf("snapshot taken: %t in mode %s:\n%s", snapped, mode, text)
			}
			if !strings.Contains(text, unknown) || strings.Count(text, "coverage unknown") != 1 {
				t.Errorf("the report does not say %q once:\n%s", unknown, text)
			}
			if mode == hooks.CoverageWarn && strings.Count(logs, "coverage unknown") != 1 {
				t.Errorf("the log does not say it once:\n%s", logs)
			}
		})
	}
	r := run(t, "check", "-c", coverageConfig(t, w, "", w.pgDSN), "--fs", "tank/db", "--fs", "tank/log")
	if !strings.Contains(r.stdout, "not on this host: no such directory") || !strings.Contains(r.stdout, "may miss some of them: coverage unknown") {
		t.Errorf("check does not say the directories are not here:\n%s", r.stdout)
	}
}

// coveragePlan runs a job plan of the hooks of cfg for scope around a
// callback that records whether it ran, and returns the report, the log
// and whether the snapshot was taken.
func coveragePlan(t *testing.T, cfg string, scope hooks.Scope, dryRun bool) (hooks.PlanReport, string, bool) {
	t.Helper()
	data, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hl, err := hooks.ParseHookList(data)
	if err != nil {
		t.Fatal(err)
	}
	list, err := hooks.ListFromConfig(&hl)
	if err != nil {
		t.Fatal(err)
	}
	snapped := false
	cb := hooks.NewCallbackHook("snapshot", func(context.Context) error { snapped = true; return nil }, nil)
	plan, err := hooks.NewJobPlan(list, hooks.PhaseSnapshot, cb, scope, hooks.Env{hooks.EnvSnapshot: "s1"})
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	plan.Run(hooks.WithLogger(t.Context(), log), dryRun)
	return plan.Report(), logs.String(), snapped
}

// reportText is the report with the text of each step's report.
func reportText(rep hooks.PlanReport) string {
	var b strings.Builder
	b.WriteString(rep.String())
	for _, s := range rep {
		if s.Report != nil {
			b.WriteString("\n" + s.Edge.String() + " " + s.Hook.String() + ": " + s.Report.String())
		}
	}
	return b.String()
}

// requireMisses checks that text holds every message of misses, or none.
func requireMisses(t *testing.T, want bool, text string, misses []string) {
	t.Helper()
	for _, m := range misses {
		if strings.Contains(text, m) != want {
			t.Errorf("mentions %q: %t, want %t:\n%s", m, !want, want, text)
		}
	}
}

// jsonText is s as it appears inside a JSON string.
func jsonText(s string) string {
	b, _ := json.Marshal(s)
	return string(b[1 : len(b)-1])
}

package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func TestCheckListsHooksAndDatasets(t *testing.T) {
	dir := t.TempDir()
	freeze := script(t, dir, "freeze", "exit 0")
	all := script(t, dir, "all", "exit 0")
	notExec := filepath.Join(dir, "not-executable")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := config(t, dir, `hooks:
  - type: command
    path: `+freeze+`
    err_is_fatal: true
    timeout: 10s
    filesystems: {"tank/db<": true}
  - type: command
    path: `+all+`
  - type: command
    path: `+notExec+`
    post_on_pre_error: true
    filesystems: {"zroot<": true, "zroot/tmp<": false}
`)
	r := run(t, "check", "-c", cfg, "--fs", "tank/db", "--fs", "tank/home", "--fs", "backup")
	if r.code != 0 {
		t.Fatalf("exit code %d; stderr:\n%s", r.code, r.stderr)
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`hooks.yml: 3 hooks\n`),
		regexp.MustCompile(`(?m)^#\s+TYPE\s+HOOK\s+TIMEOUT\s+ERR_IS_FATAL\s+POST_ON_PRE_ERROR\s+FILESYSTEMS$`),
		regexp.MustCompile(`(?m)^1\s+command\s+` + regexp.QuoteMeta(freeze) + `\s+10s\s+true\s+false\s+\{"tank/db<": true\}$`),
		regexp.MustCompile(`(?m)^2\s+command\s+` + regexp.QuoteMeta(all) + `\s+30s\s+false\s+false\s+\{"<": true\}$`),
		regexp.MustCompile(`(?m)^3\s+command\s+` + regexp.QuoteMeta(notExec) + `\s+30s\s+false\s+true\s+\{"zroot/tmp<": false, "zroot<": true\}$`),
		regexp.MustCompile(`(?m)^tank/db\s+runs #1 #2$`),
		regexp.MustCompile(`(?m)^tank/home\s+runs #2$`),
		regexp.MustCompile(`(?m)^backup\s+runs #2$`),
	} {
		if !want.MatchString(r.stdout) {
			t.Errorf("stdout does not match %s:\n%s", want, r.stdout)
		}
	}
	for _, want := range []string{
		"warning: hook #3: " + notExec + ": not executable\n",
		"warning: hook #3 (" + notExec + ") matches none of the datasets given with --fs\n",
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	if strings.Contains(r.stderr, "hook #1") || strings.Contains(r.stderr, "hook #2") {
		t.Errorf("warnings about good hooks:\n%s", r.stderr)
	}
}

func TestCheckWithoutDatasetsOnlyLists(t *testing.T) {
	dir := t.TempDir()
	cfg := config(t, dir, "- {type: command, path: "+script(t, dir, "h", "exit 0")+", filesystems: {\"zroot<\": true}}\n")
	r := run(t, "check", "-c", cfg)
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("exit code %d; stderr:\n%s", r.code, r.stderr)
	}
	if !strings.Contains(r.stdout, "1 hook\n") || strings.Contains(r.stdout, "runs") {
		t.Errorf("stdout:\n%s", r.stdout)
	}
}

func TestCheckReportsEveryErrorWithItsLine(t *testing.T) {
	dir := t.TempDir()
	cfg := config(t, dir, `# line 1
- type: command
  path: relative/hook
- type: command
  path: /bin/true
  timeout: -5s
  filesystems:
    "tank<<": true
- type: bogus
- type: postgres-checkpoint
  dsn: "host=db password=hunter2 user=x"
  path: /bin/true
  filesystems: {"tank/pg<": true}
`)
	r := run(t, "check", "-c", cfg, "--fs", "tank")
	if r.code != exitUsage {
		t.Fatalf("exit code %d, want %d; stderr:\n%s", r.code, exitUsage, r.stderr)
	}
	lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
	want := []string{
		`hooks.yml: hook #1 (line 3): path: "relative/hook" is not absolute`,
		`hooks.yml: hook #2 (line 6): timeout: -5s is negative`,
		`hooks.yml: hook #2 (line 8): filesystems: pattern "tank<<"`,
		`hooks.yml: hook #3 (line 9): type: unknown hook type "bogus"`,
		`hooks.yml: hook #4 (line 12): path: not allowed for a postgres-checkpoint hook`,
	}
	if len(lines) != len(want) {
		t.Fatalf("want %d error lines, got %d:\n%s", len(want), len(lines), r.stderr)
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], filepath.Join(dir, w)) {
			t.Errorf("line %d: %q, want prefix %q", i+1, lines[i], filepath.Join(dir, w))
		}
	}
	if strings.Contains(r.stderr, "hunter2") {
		t.Errorf("a DSN password leaked:\n%s", r.stderr)
	}
	if r.stdout != "" {
		t.Errorf("stdout not empty:\n%s", r.stdout)
	}
}

func TestCheckExampleConfig(t *testing.T) {
	r := run(t, "check", "-c", filepath.Join("..", "..", "testdata", "example.yml"), "--fs", "tank/db", "--fs", "tank/tmp/x")
	if r.code != 0 {
		t.Fatalf("exit code %d; stderr:\n%s", r.code, r.stderr)
	}
	for _, want := range []string{"tank/db       runs #1 #2\n", "tank/tmp/x    runs no hook\n", "all together  runs #1 #2\n"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, r.stdout)
		}
	}
}

func TestCheckDatabaseHooksHidePasswords(t *testing.T) {
	dir := t.TempDir()
	cfg := config(t, dir, `- type: postgres-checkpoint
  dsn: "host=db user=backup password=hunter2 dbname=postgres"
  filesystems: {"tank/pg<": true}
- type: mysql-lock-tables
  dsn: "backup:hunter2@tcp(db:3306)/"
  filesystems: {"tank/my<": true}
`)
	r := run(t, "check", "-c", cfg, "--fs", "tank/pg")
	if r.code != 0 {
		t.Fatalf("exit code %d; stderr:\n%s", r.code, r.stderr)
	}
	if strings.Contains(r.stdout+r.stderr, "hunter2") {
		t.Errorf("a DSN password leaked:\n%s\n%s", r.stdout, r.stderr)
	}
	for _, want := range []string{
		`postgres checkpoint (backup@db:5432/postgres)`,
		`MySQL FLUSH TABLES WITH READ LOCK (backup@db:3306)`,
		"tank/pg  runs #1\n",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, r.stdout)
		}
	}
	if !strings.Contains(r.stderr, "warning: hook #2 (") {
		t.Errorf("no warning about the unmatched mysql hook:\n%s", r.stderr)
	}
}

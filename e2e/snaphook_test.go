//go:build e2e

package e2e_test

// The same snapshot of MariaDB's two subvolumes as in mariadb_test.go, taken
// through the snaphook command instead of the library: one `snaphook run`
// with a --fs for each subvolume's "dataset", whose CMD snapshots both.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// Dataset names that stand for the two MariaDB subvolumes on the command
// line of snaphook and in the filesystems of its hook.
const (
	myDataDataset = "e2e/mariadb-data"
	myLogDataset  = "e2e/mariadb-log"
)

// buildSnaphook builds the snaphook command into dir and returns its path.
func buildSnaphook(t testing.TB, dir string) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command, to build snaphook: %v", err)
	}
	bin := filepath.Join(dir, "snaphook")
	out, err := exec.Command(goBin, "build", "-o", bin, "github.com/snaphooks/hooks/cmd/snaphook").CombinedOutput()
	if err != nil {
		t.Fatalf("go build snaphook: %v\n%s", err, out)
	}
	return bin
}

// shQuote quotes s for sh.
func shQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// yamlQuote quotes s as a single-quoted YAML scalar.
func yamlQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// writeSnapScript writes the CMD of snaphook: a script that takes a read-only
// btrfs snapshot of each dataset of ZREPL_FS_LIST, in its order, mapping the
// dataset names to the subvolumes of set (data, log) and failing on any other
// name, or if ZREPL_FS_LIST is empty. It ignores ZREPL_SNAPNAME: the
// snapshots go to the paths of set, which the test deletes.
func writeSnapScript(t testing.TB, dir string, set []subvol) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("#!/bin/sh\nset -eu\n")
	b.WriteString("[ -n \"${ZREPL_FS_LIST:-}\" ] || { echo 'ZREPL_FS_LIST is empty' >&2; exit 1; }\n")
	b.WriteString("printf '%s\\n' \"$ZREPL_FS_LIST\" | while IFS= read -r fs; do\n\tcase $fs in\n")
	for i, ds := range []string{myDataDataset, myLogDataset} {
		fmt.Fprintf(&b, "\t%s) %s -q subvolume snapshot -r %s %s ;;\n",
			shQuote(ds), shQuote(btrfs(t)), shQuote(set[i].live), shQuote(set[i].snap))
	}
	b.WriteString("\t*) echo \"not a dataset of this test: $fs\" >&2; exit 1 ;;\n\tesac\ndone\n")
	path := filepath.Join(dir, "snapshot-both.sh")
	if err := os.WriteFile(path, []byte(b.String()), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// writeLockConfig writes the hook list of snaphook: one lock hook of type typ
// for the two datasets, with the DSN of the lock user, readable by root only.
func writeLockConfig(t testing.TB, dir string, env *myEnv, typ string) string {
	t.Helper()
	cfg := fmt.Sprintf(`hooks:
  - type: %s
    dsn: %s
    err_is_fatal: true
    timeout: 1m
    filesystems:
      %s: true
      %s: true
`, typ, yamlQuote(env.lockDSN), yamlQuote(myDataDataset), yamlQuote(myLogDataset))
	path := filepath.Join(dir, "hooks.yml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// runJSON is the part of `snaphook run --json` this test reads.
type runJSON struct {
	Datasets []string `json:"datasets"`
	OK       bool     `json:"ok"`
	ExitCode int      `json:"exit_code"`
	Result   string   `json:"result"`
	Steps    []struct {
		Edge     string     `json:"edge"`
		Status   string     `json:"status"`
		Hook     string     `json:"hook"`
		Begin    *time.Time `json:"begin"`
		End      *time.Time `json:"end"`
		Datasets []string   `json:"datasets"`
		Report   string     `json:"report"`
	} `json:"steps"`
}

// TestSnaphookRunMariaDB takes the snapshot of MariaDB's datadir and redo log
// subvolumes under the writer through `snaphook run --fs data --fs log`, with
// each lock hook type: the run must succeed, run the hook's pre and post edge
// once for both datasets, around one CMD that snapshots both, and the copy
// must be clean as in TestMariaDBSnapshot — in a try in which InnoDB's
// checkpoint did not move during the run (up to three tries).
func TestSnaphookRunMariaDB(t *testing.T) {
	env := newMyEnv(t)
	db := setupMySchema(t, env)
	p := &myPrimary{env: env, db: db, w: startMyWriter(t, db)}
	// Under SNAPHOOKS_E2E_TMP, so that scripts/e2e.sh finds anything left
	// running from here by its path.
	dir, err := os.MkdirTemp(env.tmp, "snaphook-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	bin := buildSnaphook(t, dir)

	for _, typ := range lockHookTypes {
		t.Run(typ, func(t *testing.T) {
			const tries = 3
			for try := 1; try <= tries; try++ {
				moved := false
				t.Run(fmt.Sprintf("try%d", try), func(t *testing.T) {
					moved = snaphookRound(t, p, bin, dir, typ)
				})
				if !moved || t.Failed() {
					return
				}
			}
			t.Errorf("the checkpoint moved during the run in all %d tries: nothing was shown", tries)
		})
	}
}

// snaphookRound runs one `snaphook run` with a lock hook of type typ and
// checks its report and copy. It reports whether InnoDB's checkpoint moved
// during the run, in which case the copy is only logged.
func snaphookRound(t *testing.T, p *myPrimary, bin, dir, typ string) (ckptMoved bool) {
	env, db, w := p.env, p.db, p.w
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	set := newSnapshotSet(t, "cli", map[string]string{"data": env.data, "log": env.log}, "data", "log")
	script := writeSnapScript(t, dir, set)
	config := writeLockConfig(t, dir, env, typ)
	defer os.Remove(config) // it holds the DSN

	ckptBefore, err := myCheckpoint(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	snapName := fmt.Sprintf("e2e_%d", snapSeq.Add(1))
	cmd := exec.CommandContext(ctx, bin, "run", "-c", config, "--fs", myDataDataset, "--fs", myLogDataset,
		"--snapshot", snapName, "--timeout", "2m", "--json", "--", script)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	runErr := cmd.Run()
	elapsed := time.Since(start)
	if err := os.Remove(config); err != nil {
		t.Errorf("remove the config: %v", err)
	}
	if runErr != nil {
		t.Fatalf("snaphook run: %v\nstdout:\n%s\nstderr:\n%s", runErr, stdout.String(), stderr.String())
	}
	if strings.Contains(stdout.String()+stderr.String(), env.lockDSN) {
		t.Errorf("snaphook printed the DSN")
	}
	ckptAfter, err := myCheckpoint(ctx, db)
	if err != nil {
		t.Fatal(err)
	}

	var rep runJSON
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("snaphook run --json: %v\n%s", err, stdout.String())
	}
	both := []string{myDataDataset, myLogDataset}
	if !rep.OK || rep.ExitCode != 0 || !slices.Equal(rep.Datasets, both) {
		t.Fatalf("snaphook run: ok %v, exit_code %d, datasets %q, want true, 0, %q: %s", rep.OK, rep.ExitCode, rep.Datasets, both, rep.Result)
	}
	count := map[string]int{}
	var lockedAt time.Time // the end of the pre edge: the lock is held from here
	for _, s := range rep.Steps {
		count[s.Edge]++
		if s.Status != "Ok" {
			t.Errorf("step %s %s: status %s: %s", s.Edge, s.Hook, s.Status, s.Report)
		}
		if s.Edge == "Pre" || s.Edge == "Post" {
			if !slices.Equal(s.Datasets, both) {
				t.Errorf("step %s %s: datasets %q, want %q", s.Edge, s.Hook, s.Datasets, both)
			}
		}
		if s.Edge == "Pre" && s.End != nil {
			lockedAt = *s.End
		}
	}
	if count["Pre"] != 1 || count["Callback"] != 1 || count["Post"] != 1 {
		t.Fatalf("steps: %d pre, %d callback, %d post, want one each (the hook once around one CMD): %s", count["Pre"], count["Callback"], count["Post"], stdout.String())
	}
	if lockedAt.IsZero() {
		t.Fatalf("the pre step has no end time: %s", stdout.String())
	}

	// A commit acknowledged before the pre edge ended was committed before
	// the lock was taken: none completes from then until the post edge,
	// which begins after the pre edge ended. So the snapshot has it.
	w.mu.Lock()
	ackedBefore := int64(0)
	for i, c := range w.commits {
		if !c.Before(lockedAt) {
			break
		}
		ackedBefore = int64(i + 1)
	}
	w.mu.Unlock()
	r := snapped{data: set[0], log: set[1], ackedBefore: ackedBefore, fillerN: p.fillerN}
	out := checkMyCopy(t, env, r)
	ckptMoved = ckptAfter != ckptBefore
	t.Logf("snaphook run with %s: %s (checkpoint moved: %v)", typ, out, ckptMoved)
	if ckptMoved {
		return true // the lock cannot help then: see TestMariaDBSnapshot's flushing case
	}
	if !out.consistent() || len(out.repaired) > 0 {
		t.Errorf("the copy taken through snaphook run with %s is not clean: %s", typ, out)
	}
	result(t, "mariadb %-52s %s; snaphook run took %.0f ms; it held all %d transactions acknowledged before the lock",
		"snaphook run --fs data --fs log, "+typ+":", out, float64(elapsed)/float64(time.Millisecond), ackedBefore)
	return false
}

//go:build e2e

package e2e_test

// Block-level snapshots of two volumes: a second MariaDB with its datadir and
// redo log, and a second PostgreSQL with its data directory and WAL, each on
// two XFS filesystems on loop devices whose backing files are on the btrfs
// filesystem. A volume snapshot is a reflink copy of a backing file
// (`cp --reflink=always`): a block-level, point-in-time copy, as an LVM,
// cloud disk or zvol snapshot is, taken one volume after the other. The
// restore attaches the copies to loop devices, mounts them and starts a
// server on them.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/snaphooks/hooks"
)

// blockPrefix starts the names of the environment variables of the servers
// on volumes (see doc.go).
const blockPrefix = "SNAPHOOKS_E2E_BLOCK_"

// newVolumeSet returns the volumes mounted at live[name] for each name of
// order, with fresh paths for their snapshots (copies of their backing files)
// in images, and deletes those copies when the test ends. The backing file of
// the volume mounted at /x/NAME is images/NAME.img (scripts/e2e.sh).
func newVolumeSet(t testing.TB, images, prefix string, live map[string]string, order ...string) []subvol {
	t.Helper()
	n := snapSeq.Add(1)
	var set []subvol
	for _, name := range order {
		sv := subvol{
			name:  name,
			live:  filepath.Join(images, filepath.Base(live[name])+".img"),
			snap:  filepath.Join(images, fmt.Sprintf("%s-%d-%s.img", prefix, n, name)),
			block: true,
		}
		set = append(set, sv)
		t.Cleanup(func() { deleteSnapshot(t, sv) })
	}
	return set
}

// mountVolume attaches the snapshot of sv (a copy of an XFS volume) to a
// loop device and mounts it, as a restore would, and returns the mount
// point. The copy has the UUID of the mounted original, hence nouuid; the
// mount replays XFS's log. A mount that fails is the returned error, for the
// outcome; anything else fails the test. Unmounted and detached when the
// test ends, after the servers started later are stopped.
func mountVolume(t testing.TB, sv subvol) (string, error) {
	t.Helper()
	out, err := exec.Command(lookPath(t, "losetup"), "--find", "--show", sv.snap).Output()
	if err != nil {
		t.Fatalf("losetup %s: %v", sv.snap, err)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() {
		if out, err := exec.Command(lookPath(t, "losetup"), "-d", dev).CombinedOutput(); err != nil {
			t.Errorf("losetup -d %s: %v: %s", dev, err, out)
		}
	})
	dir := filepath.Join(getenv(t, "SNAPHOOKS_E2E_TMP"), strings.TrimSuffix(filepath.Base(sv.snap), ".img")+"-mnt")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.Remove(dir); err != nil {
			t.Errorf("remove the mount point: %v", err)
		}
	})
	if out, err := exec.Command(lookPath(t, "mount"), "-t", "xfs", "-o", "nouuid", dev, dir).CombinedOutput(); err != nil {
		return "", fmt.Errorf("mount %s (%s): %v: %s", sv.snap, dev, err, strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() {
		if out, err := exec.Command(lookPath(t, "umount"), dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s; detaching it lazily", dir, err, out)
			_ = exec.Command(lookPath(t, "umount"), "-l", dir).Run()
		}
	})
	return dir, nil
}

// freezeName names the rows of the fsfreeze hook.
const freezeName = "fsfreeze of both"

// freezeHook is the configuration of an fsfreeze hook that freezes the
// filesystems mounted at mounts for the snapshot: in its Pre edge in order,
// thawed in reverse in its Post edge, and by its watchdog at max_freeze
// whatever happens. Cleanup thaws them all the same (scripts/e2e.sh does too,
// before anything else in its teardown).
func freezeHook(t testing.TB, filesystems map[string]bool, mounts ...string) hooks.HookConfig {
	t.Helper()
	bin := lookPath(t, "fsfreeze")
	t.Cleanup(func() {
		for _, m := range mounts {
			_ = exec.Command(bin, "-u", m).Run() // not frozen: an error, as it should be
		}
	})
	return hooks.HookConfig{
		Type:        hooks.TypeFSFreeze,
		Mountpoints: mounts,
		MaxFreeze:   10 * time.Second,
		ErrIsFatal:  true,
		Timeout:     time.Minute,
		Filesystems: filesystems,
	}
}

// blockFlushWait bounds the wait for InnoDB's checkpoint between the two
// snapshots in the flushing rows that freeze: frozen, it cannot move, and
// the writers wait as long as the filesystems stay frozen.
const blockFlushWait = 3 * time.Second

// blockMyCase is a row of TestBlockMariaDB: a strategy, and what every copy
// must be ("clean": consistent and no table needing repair; "consistent";
// "": measured and reported only).
type blockMyCase struct {
	s    myStrategy
	want string
}

// blockMyCases are the rows: no hook, each lock hook, fsfreeze of both
// volumes alone and after mysql-lock-tables; each also while InnoDB flushes.
func blockMyCases(t testing.TB, env *myEnv) []blockMyCase {
	t.Helper()
	freeze := freezeHook(t, map[string]bool{myDatasetRoot + "<": true}, env.data, env.log)
	lockTables := myLockConfig(env, hooks.TypeMySQLLockTables)
	base := []struct {
		name   string
		cfgs   []hooks.HookConfig
		frozen bool
		want   string
	}{
		{name: "no hook"},
		{name: hooks.TypeMySQLLockTables, cfgs: []hooks.HookConfig{lockTables}},
		{name: hooks.TypeMariaDBBackupStage, cfgs: []hooks.HookConfig{myLockConfig(env, hooks.TypeMariaDBBackupStage)}},
		{name: freezeName, cfgs: []hooks.HookConfig{freeze}, frozen: true, want: "consistent"},
		{name: hooks.TypeMySQLLockTables + ", then " + freezeName, cfgs: []hooks.HookConfig{lockTables, freeze}, frozen: true, want: "clean"},
	}
	var cases []blockMyCase
	for _, flushing := range []bool{false, true} {
		for _, c := range base {
			s := myStrategy{name: c.name, flushing: flushing}
			if len(c.cfgs) > 0 {
				s.lock = hookList(t, c.cfgs...)
			}
			if flushing {
				s.name += ", InnoDB flushing"
				if c.frozen {
					s.flushWait = blockFlushWait
				}
			}
			cases = append(cases, blockMyCase{s: s, want: c.want})
		}
	}
	return cases
}

// TestBlockMariaDB snapshots the volumes of MariaDB's datadir and redo log,
// one after the other, under the writer, with each strategy of blockMyCases,
// and checks a copy of every snapshot. The rows that freeze both volumes must
// give consistent copies (and clean ones with the lock); the others are
// measured and reported.
func TestBlockMariaDB(t *testing.T) {
	env := newMyEnvFrom(t, blockPrefix)
	db := setupMySchema(t, env)
	p := &myPrimary{env: env, db: db, w: startMyWriter(t, db)}
	tries := envInt(t, "SNAPHOOKS_E2E_BLOCK_TRIES", 2)
	for _, c := range blockMyCases(t, env) {
		t.Run(strings.ReplaceAll(c.s.name, " ", "_"), func(t *testing.T) {
			rounds := measureMy(t, p, c.s, tries)
			for i, r := range rounds {
				switch {
				case c.want == "clean" && (!r.out.consistent() || len(r.out.repaired) > 0),
					c.want == "consistent" && !r.out.consistent():
					t.Errorf("round %d: the copy taken with %s is not %s: %s", i+1, c.s.name, c.want, r.out)
				}
			}
			result(t, "mariadb on volumes %-56s %s", c.s.name+":", myTally(rounds))
		})
	}
}

// BenchmarkBlockWriterStall measures how long the writer goes without a
// commit around a snapshot of both MariaDB volumes (see
// BenchmarkMariaDBWriterStall): with no hook, with mysql-lock-tables, with
// both volumes frozen (the frozen window), and with both.
func BenchmarkBlockWriterStall(b *testing.B) {
	env := newMyEnvFrom(b, blockPrefix)
	freeze := freezeHook(b, map[string]bool{myDatasetRoot + "<": true}, env.data, env.log)
	lockTables := myLockConfig(env, hooks.TypeMySQLLockTables)
	cases := []myStrategy{
		{name: "no hook"},
		{name: hooks.TypeMySQLLockTables, lock: hookList(b, lockTables)},
		{name: freezeName, lock: hookList(b, freeze)},
		{name: hooks.TypeMySQLLockTables + ", then " + freezeName, lock: hookList(b, lockTables, freeze)},
	}
	writerStall(b, env, "block writer stall", "snapshot of both volumes", cases)
}

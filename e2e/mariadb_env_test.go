//go:build e2e

package e2e_test

// The environment of a MariaDB test (the server on btrfs subvolumes, or the
// one on XFS volumes) and the hook lists its snapshots are taken with.

import (
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/snaphooks/hooks"
)

// myEnv is what a MariaDB test needs from scripts/e2e.sh.
type myEnv struct {
	admin    *mysql.Config // all privileges; DBName e2e
	lockDSN  string        // RELOAD only, for the lock hooks
	data     string        // the datadir subvolume, or volume (its mount point)
	log      string        // the redo log subvolume, or volume
	images   string        // of the server on volumes: the directory of their backing files; "" on subvolumes
	mariadbd string
	opts     []string
	tmp      string
}

// newMyEnv returns the environment of the MariaDB on btrfs subvolumes.
func newMyEnv(t testing.TB) *myEnv {
	t.Helper()
	return newMyEnvFrom(t, "SNAPHOOKS_E2E_")
}

// newMyEnvFrom returns the environment of the MariaDB whose variables start
// with prefix: SNAPHOOKS_E2E_ for the server on subvolumes,
// SNAPHOOKS_E2E_BLOCK_ for the one on volumes.
func newMyEnvFrom(t testing.TB, prefix string) *myEnv {
	t.Helper()
	cfg, err := mysql.ParseDSN(getenv(t, prefix+"MY_ADMIN_DSN"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.DBName = "e2e"
	env := &myEnv{
		admin:    cfg,
		lockDSN:  getenv(t, prefix+"MY_LOCK_DSN"),
		data:     getenv(t, prefix+"MY_DATA"),
		log:      getenv(t, prefix+"MY_LOG"),
		mariadbd: getenv(t, "SNAPHOOKS_E2E_MARIADBD"),
		opts:     strings.Fields(getenv(t, "SNAPHOOKS_E2E_MY_OPTS")),
		tmp:      getenv(t, "SNAPHOOKS_E2E_TMP"),
	}
	if prefix == blockPrefix {
		env.images = getenv(t, blockPrefix+"IMAGES")
	}
	return env
}

// snapshotSet returns where a round's snapshots of the data and log go:
// btrfs snapshots of the subvolumes, or copies of the volumes.
func (env *myEnv) snapshotSet(t testing.TB, prefix string) []subvol {
	t.Helper()
	live := map[string]string{"data": env.data, "log": env.log}
	if env.images != "" {
		return newVolumeSet(t, env.images, prefix, live, "data", "log")
	}
	return newSnapshotSet(t, prefix, live, "data", "log")
}

// myLockList builds the hook list of one lock hook of type typ for the
// datasets below myDatasetRoot, through hooks.ListFromConfig as a
// configuration file would.
func myLockList(t testing.TB, env *myEnv, typ string) *hooks.List {
	t.Helper()
	return hookList(t, myLockConfig(env, typ))
}

// myLockConfig is the configuration of a lock hook of type typ for the
// datasets below myDatasetRoot.
func myLockConfig(env *myEnv, typ string) hooks.HookConfig {
	return hooks.HookConfig{
		Type:        typ,
		DSN:         env.lockDSN,
		ErrIsFatal:  true,
		Timeout:     time.Minute,
		Filesystems: map[string]bool{myDatasetRoot + "<": true},
	}
}

// hookList builds the hook list of cfgs through hooks.ListFromConfig, as a
// configuration file would.
func hookList(t testing.TB, cfgs ...hooks.HookConfig) *hooks.List {
	t.Helper()
	l := hooks.HookList(cfgs)
	list, err := hooks.ListFromConfig(&l)
	if err != nil {
		t.Fatalf("hook list %v: %v", cfgs, err)
	}
	return list
}

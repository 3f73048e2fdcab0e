package hooks

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	"github.com/go-sql-driver/mysql"
)

// The statements of the mariadb-backup-stage hook, which are also the What
// of its reports. The Pre edge runs the stages in this order; the Post edge
// runs mariadbBackupEnd.
var mariadbBackupStages = [...]string{
	"BACKUP STAGE START",
	"BACKUP STAGE FLUSH",
	"BACKUP STAGE BLOCK_DDL",
	"BACKUP STAGE BLOCK_COMMIT",
}

const mariadbBackupEnd = "BACKUP STAGE END"

// mariadbBackupStageSince is the first MariaDB release with BACKUP STAGE.
var mariadbBackupStageSince = [3]int{10, 4, 1}

// MariaDBBackupStage is the mariadb-backup-stage hook: it holds MariaDB's
// backup locks while the snapshot is taken, so that no commit is half-done
// in the snapshot and no table is being created, dropped or renamed.
//
// It serves the purpose of MySQLLockTables with less impact on a running
// server. FLUSH TABLES WITH READ LOCK stops every write on the server as soon
// as it is granted, and must wait for every running write statement first.
// The backup stages let InnoDB (and other transactional engines) keep
// accepting writes until the last stage, BLOCK_COMMIT, which waits only for
// commits in progress and then holds every commit until BACKUP STAGE END.
// Writes to non-transactional tables (MyISAM, non-transactional Aria) are
// blocked from the FLUSH stage on, and DDL from BLOCK_DDL on. Reads are never
// blocked. Only one session of a server can be in a backup stage at a time: a
// second BACKUP STAGE START waits for the first session's BACKUP STAGE END.
//
// The backup stages belong to the session that runs them, like the read lock
// of MySQLLockTables, and end with BACKUP STAGE END on that session or when
// that session ends. So the Pre edge pins one connection, as MySQLLockTables
// does, and hands it to the Post edge of the same hook in the state map.
//
// What Run does:
//
//   - Pre: it reads the filesystem from extra[EnvFS]. If there is none, or it
//     is not a valid dataset name, or the hook's filter fails on it, the
//     report is an error. If the filter does not pass it, the hook takes no
//     lock, logs that at DEBUG and reports ok ("... skipped: ..."). Otherwise
//     it connects, checks that the server is MariaDB 10.4.1 or later (MySQL
//     and its forks have no BACKUP STAGE: the error says so), sets the
//     session's lock_wait_timeout to what is left of the hook's timeout
//     (whole seconds, at least 1), and runs BACKUP STAGE START, FLUSH,
//     BLOCK_DDL and BLOCK_COMMIT, all bounded by the hook's timeout. A running
//     DDL statement or commit, or another session's backup, can make a stage
//     wait; the timeout ends that wait. On any error, and on a panic, the
//     connection is closed, which ends the backup stages the session entered.
//   - Pre in a dry run: it connects, checks the server version, closes the
//     connection and takes no lock. The privilege to lock is not checked.
//   - Pre, dry run or not, first: the coverage check of MySQLLockTables.
//   - Post: it takes the connection out of the state, runs BACKUP STAGE END
//     on it, bounded by the hook's timeout, and closes the connection — also
//     when BACKUP STAGE END fails (the session was killed, the server
//     restarted), and the report is then an error. When the Pre edge took no
//     lock (dry run, filesystem not matched) Post does nothing and reports
//     ok. When the state holds nothing from a Pre edge (it failed, or did not
//     run) Post reports an error and does nothing else; it never panics.
//   - Callback: it does nothing and reports ok.
//
// The hook's timeout bounds each edge, not how long the lock is held: that
// is up to the callback. A Plan runs the Post edge on every path on which the
// Pre edge succeeded (a later fatal error, a failed or panicking callback, a
// cancelled ctx), so the lock is always released; code that runs the edges
// without a Plan must do the same. EdgeString(Post) names the Post edge
// "MariaDB BACKUP STAGE END (<target>)". The DSN and its handling are those of
// MySQLLockTables; no report, error, String or log record contains its
// password. The session needs the RELOAD privilege, no other.
//
// A MariaDBBackupStage is immutable and safe for concurrent use; concurrent
// plans that share it take their turns on the server, as said above.
type MariaDBBackupStage struct {
	heldHook
	config *mysql.Config // parsed once; each Pre edge connects with a clone

	// afterStage, when set (by tests only), is called after each stage of
	// the Pre edge succeeded, with its statement.
	afterStage func(stmt string)
}

// newMariaDBBackupStage returns the hook that in describes. in has its
// defaults applied and is valid. Its keys, DSN syntax and timeouts are those
// of the mysql-lock-tables hook, so its configuration is made the same way.
func newMariaDBBackupStage(in HookConfig) (*MariaDBBackupStage, error) {
	my, err := newMySQLLockTables(in)
	if err != nil {
		return nil, err
	}
	h := &MariaDBBackupStage{config: my.config}
	h.heldHook = mysqlHeldHook(my.hookSettings, my.config, "MariaDB BACKUP STAGE", "MariaDB "+mariadbBackupEnd, mariadbBackupStages[0], mariadbBackupEnd, h.take)
	h.check = my.check
	return h, nil
}

// ServerFiles asks the server where it keeps its files, as
// MySQLLockTables.ServerFiles does; see ServerFiler.
func (h *MariaDBBackupStage) ServerFiles(ctx context.Context) ([]ServerFile, error) {
	return boundedServerFiles(ctx, h.timeout, h.config.Passwd, func(ctx context.Context) ([]ServerFile, error) {
		return mysqlLocatedFiles(ctx, h.config)
	})
}

// String returns "MariaDB BACKUP STAGE (<target>)", where the target is
// named as for MySQLLockTables.String; never the password.
func (h *MariaDBBackupStage) String() string { return h.name }

// Run enters the backup stages on the Pre edge and ends them on the Post
// edge; see MariaDBBackupStage. It returns a *MariaDBBackupStageReport.
func (h *MariaDBBackupStage) Run(ctx context.Context, edge Edge, phase Phase, dryRun bool, extra Env, state map[interface{}]interface{}) HookReport {
	return h.run(ctx, edge, dryRun, extra, state)
}

// take connects, checks the server and enters the backup stages (or only
// checks, in a dry run). It returns the statement that ran last or failed,
// or the note of a dry run.
func (h *MariaDBBackupStage) take(ctx context.Context, log *slog.Logger, _ Env, dryRun bool, hold func(heldResource)) (string, error) {
	what := mariadbBackupStages[0]
	s, err := openMySQLSession(ctx, log, h.config, mariadbBackupEnd)
	if err != nil {
		return what, err
	}
	hold(s)
	var version string
	if err := s.conn.QueryRowContext(ctx, "SELECT VERSION()").Scan(&version); err != nil {
		return what, fmt.Errorf("check server version: %w", err)
	}
	if err := checkBackupStageVersion(version); err != nil {
		return what, err
	}
	if dryRun {
		log.DebugContext(ctx, "dry run: connected to mariadb and checked its version, took no lock", slog.String("version", version))
		return what + " (dry run: connected and checked the server version, took no lock)", nil
	}
	secs, err := s.setLockWaitTimeout(ctx)
	if err != nil {
		return what, err
	}
	log.DebugContext(ctx, "entering the backup stages", slog.String("version", version), slog.Int64("lock_wait_timeout_s", secs))
	for _, stmt := range mariadbBackupStages {
		what = stmt
		if _, err := s.conn.ExecContext(ctx, stmt); err != nil {
			return what, err
		}
		s.locked = true
		if h.afterStage != nil {
			h.afterStage(stmt)
		}
	}
	return what, nil
}

// checkBackupStageVersion returns nil if version, the result of SELECT
// VERSION(), is that of a MariaDB server that has BACKUP STAGE (10.4.1 or
// later), and otherwise an error that says why the hook cannot run there.
func checkBackupStageVersion(version string) error {
	// MariaDB 10 and 11 announce themselves to old clients as "5.5.5-10...".
	// VERSION() has no such prefix, but do not trip over one.
	v := strings.TrimPrefix(version, "5.5.5-")
	since := fmt.Sprintf("%d.%d.%d", mariadbBackupStageSince[0], mariadbBackupStageSince[1], mariadbBackupStageSince[2])
	fail := func(why string) error {
		return fmt.Errorf("%s needs MariaDB %s or later: server is %s%s", TypeMariaDBBackupStage, since, strconv.Quote(version), why)
	}
	if !strings.Contains(strings.ToLower(v), "mariadb") {
		return fail(" (not MariaDB: MySQL and its forks have no BACKUP STAGE; use " + TypeMySQLLockTables + ")")
	}
	got, ok := parseVersionPrefix(v)
	if !ok {
		return fail(" (cannot read its version number)")
	}
	for i := range got {
		if got[i] != mariadbBackupStageSince[i] {
			if got[i] < mariadbBackupStageSince[i] {
				return fail(" (too old: use " + TypeMySQLLockTables + ")")
			}
			break
		}
	}
	return nil
}

// parseVersionPrefix reads "major.minor.patch" from the start of v, as in
// "10.11.6-MariaDB-0+deb12u1".
func parseVersionPrefix(v string) (out [3]int, ok bool) {
	if end := strings.IndexFunc(v, func(r rune) bool { return r != '.' && (r < '0' || r > '9') }); end >= 0 {
		v = v[:end]
	}
	parts := strings.Split(v, ".")
	if len(parts) < len(out) {
		return out, false
	}
	for i := range out {
		n, err := strconv.Atoi(parts[i])
		if err != nil {
			return out, false
		}
		out[i] = n
	}
	return out, true
}

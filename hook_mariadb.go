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
// without a Plan must do the same. The DSN and its handling are those of
// MySQLLockTables; no report, error, String or log record contains its
// password. The session needs the RELOAD privilege, no other.
//
// A MariaDBBackupStage is immutable and safe for concurrent use; concurrent
// plans that share it take their turns on the server, as said above.
type MariaDBBackupStage struct {
	hookSettings
	config *mysql.Config // parsed once; each Pre edge connects with a clone
	name   string        // String: "MariaDB BACKUP STAGE (<target>)"

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
	return &MariaDBBackupStage{hookSettings: my.hookSettings, config: my.config, name: "MariaDB BACKUP STAGE (" + mysqlTarget(my.config) + ")"}, nil
}

// String returns "MariaDB BACKUP STAGE (<target>)", where the target is
// named as for MySQLLockTables.String; never the password.
func (h *MariaDBBackupStage) String() string { return h.name }

// mariadbStateKey is the key of the hook's entry in the state map. Its value
// is a *mysqlLockState.
type mariadbStateKey struct{}

// Run enters the backup stages on the Pre edge and ends them on the Post
// edge; see MariaDBBackupStage. It returns a *MariaDBBackupStageReport.
func (h *MariaDBBackupStage) Run(ctx context.Context, edge Edge, phase Phase, dryRun bool, extra Env, state map[interface{}]interface{}) HookReport {
	log := GetLogger(ctx).With(slog.String("hook", h.String()), slog.String("edge", edge.String()))
	if fs, ok := extra[EnvFS]; ok {
		log = log.With(slog.String("fs", fs))
	}
	switch edge {
	case Pre:
		return h.pre(ctx, log, dryRun, extra, state)
	case Post:
		return h.post(ctx, log, state)
	}
	return &MariaDBBackupStageReport{What: "nothing to do on the " + edge.String() + " edge"}
}

func (h *MariaDBBackupStage) pre(parent context.Context, log *slog.Logger, dryRun bool, extra Env, state map[interface{}]interface{}) *MariaDBBackupStageReport {
	what, err := takeMySQLSession(parent, log, extra, state, mariadbStateKey{}, mariadbBackupStages[0], h.hookSettings, h.config.Passwd,
		func(ctx context.Context) (*mysqlLockState, string, error) { return h.lock(ctx, log, dryRun) })
	return &MariaDBBackupStageReport{What: what, Err: err}
}

// lock connects, checks the server and enters the backup stages (or only
// checks, in a dry run). what is the statement that ran last or failed, or
// the note of a dry run. On success in a dry run the state holds no
// connection. On error, and on a panic, the connection is closed.
func (h *MariaDBBackupStage) lock(ctx context.Context, log *slog.Logger, dryRun bool) (_ *mysqlLockState, what string, err error) {
	what = mariadbBackupStages[0]
	st, err := openMySQLSession(ctx, log, h.config)
	if err != nil {
		return nil, what, err
	}
	handedOver := false
	defer func() {
		if !handedOver {
			if cerr := st.end(); cerr != nil && err == nil {
				err = cerr
			}
		}
	}()

	var version string
	if err := st.conn.QueryRowContext(ctx, "SELECT VERSION()").Scan(&version); err != nil {
		return nil, what, fmt.Errorf("check server version: %w", err)
	}
	if err := checkBackupStageVersion(version); err != nil {
		return nil, what, err
	}
	if dryRun {
		log.DebugContext(ctx, "dry run: connected to mariadb and checked its version, took no lock", slog.String("version", version))
		// Closed by the deferred close: Post finds no connection, and knows why.
		return &mysqlLockState{noLock: "dry run"}, what + " (dry run: connected and checked the server version, took no lock)", nil
	}

	secs, err := mysqlSetLockWaitTimeout(ctx, st.conn)
	if err != nil {
		return nil, what, err
	}
	log.DebugContext(ctx, "entering the backup stages", slog.String("version", version), slog.Int64("lock_wait_timeout_s", secs))
	for _, stmt := range mariadbBackupStages {
		what = stmt
		if _, err := st.conn.ExecContext(ctx, stmt); err != nil {
			return nil, what, err
		}
		if h.afterStage != nil {
			h.afterStage(stmt)
		}
	}
	handedOver = true
	return st, what, nil
}

func (h *MariaDBBackupStage) post(parent context.Context, log *slog.Logger, state map[interface{}]interface{}) *MariaDBBackupStageReport {
	what, err := releaseMySQLSession(parent, log, state, mariadbStateKey{}, mariadbBackupEnd, h.timeout, h.config.Passwd)
	return &MariaDBBackupStageReport{What: what, Err: err}
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

// MariaDBBackupStageReport is the report of a MariaDBBackupStage run. What is
// the statement the edge ran last, or the one that failed: on the Pre edge
// one of "BACKUP STAGE START", "BACKUP STAGE FLUSH", "BACKUP STAGE BLOCK_DDL"
// or "BACKUP STAGE BLOCK_COMMIT" (the last one when all went well; "BACKUP
// STAGE START" when connecting or checking the server failed), on the Post
// edge "BACKUP STAGE END"; followed by a note when the edge ran none (dry
// run, filesystem not matched). Err is nil when the run succeeded.
type MariaDBBackupStageReport struct {
	What string
	Err  error
}

// String is What, or "<What>: <err>" when the run failed.
func (r *MariaDBBackupStageReport) String() string {
	if r.Err != nil {
		return r.What + ": " + r.Err.Error()
	}
	return r.What
}

// HadError reports whether the run failed.
func (r *MariaDBBackupStageReport) HadError() bool { return r.Err != nil }

// Error is String() when the run failed, else "".
func (r *MariaDBBackupStageReport) Error() string {
	if r.Err == nil {
		return ""
	}
	return r.String()
}

package hooks

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/go-sql-driver/mysql"
)

// The statements of the mysql-lock-tables hook, which are also the What of
// its reports.
const (
	mysqlLockStmt   = "FLUSH TABLES WITH READ LOCK"
	mysqlUnlockStmt = "UNLOCK TABLES"
)

// mysqlIOTimeoutMargin is how much later than the hook's timeout the I/O
// deadlines of the driver end an edge, if its ctx has not ended it.
const mysqlIOTimeoutMargin = 5 * time.Second

// MySQLLockTables is the mysql-lock-tables hook: it holds a global read lock
// on a MySQL or MariaDB server while the snapshot is taken, so that no write
// is half-done in the snapshot.
//
// Pre takes the lock and Post releases it, on one and the same session: a
// lock taken with FLUSH TABLES WITH READ LOCK belongs to the session that
// took it and is released by UNLOCK TABLES on that session or when that
// session ends. So the Pre edge opens a *sql.DB of its own, pins one
// connection with DB.Conn, and keeps both in the state map that the plan
// hands to the Post edge of the same hook.
//
// What Run does:
//
//   - Pre: it reads the filesystem from extra[EnvFS]. If there is none, or it
//     is not a valid dataset name, or the hook's filter fails on it, the
//     report is an error. If the filter does not pass it, the hook takes no
//     lock, logs that at DEBUG and reports ok ("... skipped: ..."). Otherwise
//     it connects, sets the session's lock_wait_timeout to what is left of
//     the hook's timeout (whole seconds, at least 1) and runs FLUSH TABLES
//     WITH READ LOCK, all bounded by the hook's timeout: a long-running query
//     or a LOCK TABLES of another session can make the flush wait, and the
//     timeout is what ends that wait ("timed out after <timeout>: ..."). On
//     any error, and on a panic, the connection is closed, which releases a
//     lock the server may have granted.
//   - Pre in a dry run: it connects and pings the server, closes the
//     connection and takes no lock. The privilege to lock is not checked.
//   - Pre, dry run or not, before anything else: unless the hook's coverage
//     mode is CoverageOff (HookConfig.Coverage), it asks the server where it
//     keeps its files, on a session of its own that it closes (see
//     ServerFiles), and checks that the snapshot holds all of them (see
//     CheckCoverage): under CoverageWarn a problem is logged at WARN and is
//     in the report's Warnings; under CoverageStrict it fails the Pre edge
//     before any lock is taken. An error connecting there fails the edge
//     as the lock's own connection would.
//   - Post: it takes the connection out of the state, runs UNLOCK TABLES on
//     it, bounded by the hook's timeout (on a ctx that the caller's
//     cancellation does not end), and closes the connection and its
//     *sql.DB — also when UNLOCK TABLES fails (the server was restarted, the
//     session was killed): closing the session releases any lock it still
//     holds, and the report is an error. When the Pre edge took no lock
//     (dry run, filesystem not matched) Post does nothing and reports ok.
//     When the state holds nothing from a Pre edge (it failed, or did not
//     run) Post reports an error and does nothing else; it never panics.
//   - Callback: it does nothing and reports ok.
//
// The hook's timeout bounds each edge: connecting and locking, unlocking.
// It does not bound how long the lock is held: that is up to the callback.
//
// A Plan runs the Post edge of every hook whose Pre edge succeeded, also when
// a later hook fails fatally, when the callback fails or panics and when the
// plan's ctx is cancelled (with a ctx that the caller cannot cancel, bounded
// by the hook's timeout), so that the lock is released on every path.
//
// Code that runs the edges itself, without a Plan, must run the Post edge
// with the state map of a successful Pre edge, or the lock is held until the
// process exits.
//
// The driver's own log messages go to the logger of the Pre edge's ctx, at
// WARN. String names the hook by the target its DSN gives, for instance
// "MySQL FLUSH TABLES WITH READ LOCK (backup@127.0.0.1:3306)", so that two
// hooks of this type can be told apart in reports and logs. EdgeString(Post)
// names the Post edge by what it does, "MySQL UNLOCK TABLES (<target>)":
// reports and logs show that name for the step. No report, error, String or
// log record contains the DSN's password.
//
// A MySQLLockTables is immutable and safe for concurrent use: the
// connections of concurrent plans live in their state maps, not in the hook.
type MySQLLockTables struct {
	heldHook
	config *mysql.Config // parsed once; each Pre edge connects with a clone

	// afterLock, when set (by tests only), is called right after the lock was
	// taken, before the connection is handed to the state map.
	afterLock func()
}

// newMySQLLockTables returns the hook that in describes. in has its defaults
// applied and is valid. The DSN is parsed here, in the syntax of
// go-sql-driver/mysql ("user:password@tcp(host:port)/"), so that a run does
// not fail on it later.
func newMySQLLockTables(in HookConfig) (*MySQLLockTables, error) {
	settings, err := newHookSettings(in)
	if err != nil {
		return nil, err
	}
	cfg, err := parseMySQLDSN(in.DSN)
	if err != nil {
		return nil, &ConfigError{Field: "dsn", Err: err}
	}
	timeout := settings.timeout
	// Every edge is bounded by its ctx, which the driver watches. As a
	// backstop, each read and write on the connection gets an I/O deadline a
	// little later than that, unless the DSN sets one (readTimeout,
	// writeTimeout); the dial is bounded by the timeout, or by the DSN's
	// shorter timeout.
	if cfg.Timeout <= 0 || cfg.Timeout > timeout {
		cfg.Timeout = timeout
	}
	for _, d := range []*time.Duration{&cfg.ReadTimeout, &cfg.WriteTimeout} {
		if *d <= 0 {
			*d = timeout + mysqlIOTimeoutMargin
		}
	}
	h := &MySQLLockTables{config: cfg}
	h.heldHook = mysqlHeldHook(settings, cfg, "MySQL "+mysqlLockStmt, "MySQL "+mysqlUnlockStmt, mysqlLockStmt, mysqlUnlockStmt, h.take)
	h.check = mysqlCoverageCheck(coverageMode(in), cfg)
	return h, nil
}

// mysqlCoverageCheck returns the heldHook.check of a lock hook: the
// coverage check of the server of cfg, in mode; nil for CoverageOff.
func mysqlCoverageCheck(mode string, cfg *mysql.Config) func(context.Context, *slog.Logger, Env) ([]string, error) {
	if mode == CoverageOff {
		return nil
	}
	return func(ctx context.Context, log *slog.Logger, extra Env) ([]string, error) {
		return coverageCheck(ctx, log, mode, extra, func(ctx context.Context) ([]ServerFile, error) {
			return mysqlLocatedFiles(ctx, cfg)
		})
	}
}

// ServerFiles asks the server where it keeps its files (datadir, the InnoDB
// directories, the binary log, MariaDB's Aria log), on a session of its
// own, and locates them on this host; see ServerFiler. It needs no
// privilege beyond connecting.
func (h *MySQLLockTables) ServerFiles(ctx context.Context) ([]ServerFile, error) {
	return boundedServerFiles(ctx, h.timeout, h.config.Passwd, func(ctx context.Context) ([]ServerFile, error) {
		return mysqlLocatedFiles(ctx, h.config)
	})
}

// mysqlHeldHook returns the engine of a hook that holds a lock on a pinned
// session of the server cfg names: name and postName are String and
// EdgeString(Post) without the target.
func mysqlHeldHook(s hookSettings, cfg *mysql.Config, name, postName, lock, unlock string,
	take func(ctx context.Context, log *slog.Logger, extra Env, dryRun bool, hold func(heldResource)) (string, error)) heldHook {
	target := " (" + mysqlTarget(cfg) + ")"
	return heldHook{
		hookSettings: s,
		name:         name + target,
		postName:     postName + target,
		preAction:    lock,
		postAction:   unlock,
		words:        heldWords{resource: "connection", notTaken: "no lock was taken", released: "released"},
		secret:       cfg.Passwd,
		take:         take,
	}
}

// String returns "MySQL FLUSH TABLES WITH READ LOCK (<target>)", where the
// target is <user>@<host>:<port>/<database> (a Unix socket shows as
// unix(<path>); an empty database is left out).
func (h *MySQLLockTables) String() string { return h.name }

// Run takes the lock on the Pre edge and releases it on the Post edge; see
// MySQLLockTables. It returns a *MyLockTablesReport.
func (h *MySQLLockTables) Run(ctx context.Context, edge Edge, phase Phase, dryRun bool, extra Env, state map[interface{}]interface{}) HookReport {
	return h.run(ctx, edge, dryRun, extra, state)
}

// take connects and takes the lock (or pings, in a dry run).
func (h *MySQLLockTables) take(ctx context.Context, log *slog.Logger, _ Env, dryRun bool, hold func(heldResource)) (string, error) {
	s, err := openMySQLSession(ctx, log, h.config, mysqlUnlockStmt)
	if err != nil {
		return "", err
	}
	hold(s)
	if dryRun {
		if err := s.conn.PingContext(ctx); err != nil {
			return "", fmt.Errorf("ping: %w", err)
		}
		log.DebugContext(ctx, "dry run: connected and pinged mysql, took no lock")
		return mysqlLockStmt + " (dry run: connected and pinged, took no lock)", nil
	}
	secs, err := s.setLockWaitTimeout(ctx)
	if err != nil {
		return "", err
	}
	log.DebugContext(ctx, "taking the global read lock", slog.Int64("lock_wait_timeout_s", secs))
	if _, err := s.conn.ExecContext(ctx, mysqlLockStmt); err != nil {
		return "", err
	}
	s.locked = true
	if h.afterLock != nil {
		h.afterLock()
	}
	return "", nil
}

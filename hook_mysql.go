package hooks

import (
	"context"
	"database/sql"
	"errors"
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
//   - Post: it takes the connection out of the state, runs UNLOCK TABLES on
//     it, bounded by the hook's timeout, and closes the connection and its
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
// hooks of this type can be told apart in reports and logs. No report,
// error, String or log record contains the DSN's password.
//
// A MySQLLockTables is immutable and safe for concurrent use: the
// connections of concurrent plans live in their state maps, not in the hook.
type MySQLLockTables struct {
	hookSettings
	config *mysql.Config // parsed once; each Pre edge connects with a clone
	name   string        // String: the statement and the target

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
	return &MySQLLockTables{hookSettings: settings, config: cfg, name: "MySQL " + mysqlLockStmt + " (" + mysqlTarget(cfg) + ")"}, nil
}

// String returns "MySQL FLUSH TABLES WITH READ LOCK (<target>)", where the
// target is <user>@<host>:<port>/<database> (a Unix socket shows as
// unix(<path>); an empty database is left out).
func (h *MySQLLockTables) String() string { return h.name }

// mysqlStateKey is the key of the hook's entry in the state map. Its value
// is a *mysqlLockState.
type mysqlStateKey struct{}

// mysqlLockState is what the Pre edge hands to the Post edge: the session
// that holds the lock, or why there is none.
type mysqlLockState struct {
	db     *sql.DB
	conn   *sql.Conn // nil when no lock was taken
	noLock string    // why no lock was taken, when conn is nil
}

// end closes the pinned connection and its DB, which ends the session.
func (s *mysqlLockState) end() error {
	var errs []error
	if s.conn != nil {
		if err := s.conn.Close(); err != nil && !errors.Is(err, sql.ErrConnDone) {
			errs = append(errs, fmt.Errorf("close connection: %w", err))
		}
	}
	if s.db != nil {
		if err := s.db.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close database handle: %w", err))
		}
	}
	return errors.Join(errs...)
}

// Run takes the lock on the Pre edge and releases it on the Post edge; see
// MySQLLockTables. It returns a *MyLockTablesReport.
func (h *MySQLLockTables) Run(ctx context.Context, edge Edge, phase Phase, dryRun bool, extra Env, state map[interface{}]interface{}) HookReport {
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
	return &MyLockTablesReport{What: "nothing to do on the " + edge.String() + " edge"}
}

func (h *MySQLLockTables) pre(parent context.Context, log *slog.Logger, dryRun bool, extra Env, state map[interface{}]interface{}) *MyLockTablesReport {
	what, err := takeMySQLSession(parent, log, extra, state, mysqlStateKey{}, mysqlLockStmt, h.hookSettings, h.config.Passwd,
		func(ctx context.Context) (*mysqlLockState, string, error) {
			st, err := h.lock(ctx, log, dryRun)
			if err == nil && dryRun {
				return st, mysqlLockStmt + " (dry run: connected and pinged, took no lock)", nil
			}
			return st, mysqlLockStmt, err
		})
	return &MyLockTablesReport{What: what, Err: err}
}

// takeMySQLSession is the Pre edge of a hook that holds a lock on one pinned
// MySQL session (mysql-lock-tables, mariadb-backup-stage). It checks the
// state map and the hook's filter, runs lock bounded by the hook's timeout,
// and keeps the session lock returns in state under key, for
// releaseMySQLSession in the Post edge. first names the edge's first
// statement, for the report of an edge that takes no lock. It returns what
// to report and the error, without the password.
func takeMySQLSession(parent context.Context, log *slog.Logger, extra Env, state map[interface{}]interface{}, key any, first string,
	s hookSettings, passwd string, lock func(ctx context.Context) (st *mysqlLockState, what string, err error)) (string, error) {
	if state == nil {
		return first, errors.New("no state map to keep the connection in for the post edge")
	}
	if old, ok := state[key].(*mysqlLockState); ok {
		// Not done by a Plan. Never leave a lock behind all the same.
		delete(state, key)
		_ = old.end()
	}
	fs, pass, err := dbHookFilesystem(s.filter, extra)
	if err != nil {
		return first, err
	}
	if !pass {
		log.DebugContext(parent, "filesystem not matched by the hook's filter: no lock")
		state[key] = &mysqlLockState{noLock: "the filesystem was not matched"}
		return first + " skipped: filesystem " + fs + " not matched", nil
	}

	ctx, cancel := context.WithTimeout(parent, s.timeout)
	defer cancel()
	st, what, err := lock(ctx)
	if err == nil {
		state[key] = st
	}
	return what, redactSecret(describeTimeout(parent, ctx, s.timeout, err), passwd)
}

// lock connects and takes the lock (or pings, in a dry run). On success in a
// dry run the state holds no connection. On error, and on a panic, every
// connection it opened is closed.
func (h *MySQLLockTables) lock(ctx context.Context, log *slog.Logger, dryRun bool) (_ *mysqlLockState, err error) {
	st, err := openMySQLSession(ctx, log, h.config)
	if err != nil {
		return nil, err
	}
	handedOver := false
	defer func() {
		if !handedOver {
			if cerr := st.end(); cerr != nil && err == nil {
				err = cerr
			}
		}
	}()

	if dryRun {
		if err := st.conn.PingContext(ctx); err != nil {
			return nil, fmt.Errorf("ping: %w", err)
		}
		log.DebugContext(ctx, "dry run: connected and pinged mysql, took no lock")
		// Closed by the deferred close: Post finds no connection, and knows why.
		return &mysqlLockState{noLock: "dry run"}, nil
	}

	secs, err := mysqlSetLockWaitTimeout(ctx, st.conn)
	if err != nil {
		return nil, err
	}
	log.DebugContext(ctx, "taking the global read lock", slog.Int64("lock_wait_timeout_s", secs))
	if _, err := st.conn.ExecContext(ctx, mysqlLockStmt); err != nil {
		return nil, err
	}
	if h.afterLock != nil {
		h.afterLock()
	}
	handedOver = true
	return st, nil
}

// openMySQLSession opens a *sql.DB of its own for config and pins one
// connection of it, so that every statement of a hook lands on one session
// (locks belong to the session that took them). The caller closes the state
// it returns, which ends the session. On error nothing is left open.
func openMySQLSession(ctx context.Context, log *slog.Logger, config *mysql.Config) (*mysqlLockState, error) {
	cfg := config.Clone()
	cfg.Logger = mysqlDriverLogger{log: log, secret: config.Passwd}
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("configure driver: %w", err)
	}
	st := &mysqlLockState{db: sql.OpenDB(connector)}
	// The DB exists for the one pinned connection. No idle connection may be
	// closed under it.
	st.db.SetMaxOpenConns(1)
	st.db.SetConnMaxLifetime(0)
	st.db.SetConnMaxIdleTime(0)

	log.DebugContext(ctx, "connecting to mysql",
		slog.String("net", cfg.Net), slog.String("addr", cfg.Addr), slog.String("user", cfg.User))
	st.conn, err = st.db.Conn(ctx)
	if err != nil {
		_ = st.end()
		return nil, fmt.Errorf("connect: %w", err)
	}
	return st, nil
}

// mysqlSetLockWaitTimeout sets the session's lock_wait_timeout to what is
// left until the deadline of ctx (whole seconds, at least 1), and returns
// it. The server then gives up waiting for a lock when the hook would,
// rather than keep other sessions waiting behind a lock nobody wants any
// more.
func mysqlSetLockWaitTimeout(ctx context.Context, conn *sql.Conn) (int64, error) {
	secs := int64(1)
	if deadline, ok := ctx.Deadline(); ok {
		secs = max(secs, int64((time.Until(deadline)+time.Second-1)/time.Second))
	}
	if _, err := conn.ExecContext(ctx, fmt.Sprintf("SET SESSION lock_wait_timeout = %d", secs)); err != nil {
		return 0, fmt.Errorf("set lock_wait_timeout: %w", err)
	}
	return secs, nil
}

func (h *MySQLLockTables) post(parent context.Context, log *slog.Logger, state map[interface{}]interface{}) *MyLockTablesReport {
	what, err := releaseMySQLSession(parent, log, state, mysqlStateKey{}, mysqlUnlockStmt, h.timeout, h.config.Passwd)
	return &MyLockTablesReport{What: what, Err: err}
}

// releaseMySQLSession ends the lock that a Pre edge left in state under key:
// it runs stmt (UNLOCK TABLES, BACKUP STAGE END) on that same session,
// bounded by timeout, and closes the session, which ends the lock in any
// case. It returns what to report and the error, without the password.
// Without a session from the Pre edge, it is an error, never a panic.
func releaseMySQLSession(parent context.Context, log *slog.Logger, state map[interface{}]interface{}, key any, stmt string, timeout time.Duration, passwd string) (what string, err error) {
	st, ok := state[key].(*mysqlLockState)
	if !ok || st == nil {
		return stmt, errors.New("no connection from the pre edge: it failed or did not run, so there is no lock to release")
	}
	delete(state, key)
	if st.conn == nil {
		return stmt + " skipped: no lock was taken (" + st.noLock + ")", nil
	}
	ctx, cancel := context.WithTimeout(parent, timeout)
	defer cancel()
	_, err = st.conn.ExecContext(ctx, stmt)
	err = describeTimeout(parent, ctx, timeout, err)
	if err != nil {
		err = fmt.Errorf("%w (closing the connection instead, which ends the lock if the session still holds one)", err)
	}
	if cerr := st.end(); cerr != nil {
		log.WarnContext(parent, "close the locking session", slog.String("err", redactSecret(cerr, passwd).Error()))
	}
	return stmt, redactSecret(err, passwd)
}

// mysqlDriverLogger sends the driver's log messages (go-sql-driver/mysql
// logs some errors itself, such as an unexpected EOF) to a slog.Logger.
type mysqlDriverLogger struct {
	log    *slog.Logger
	secret string
}

func (l mysqlDriverLogger) Print(v ...any) {
	msg := redactSecret(errors.New(fmt.Sprint(v...)), l.secret).Error()
	l.log.Warn("mysql driver", slog.String("detail", msg))
}

// MyLockTablesReport is the report of a MySQLLockTables run. What is the
// statement the edge ran, "FLUSH TABLES WITH READ LOCK" or "UNLOCK TABLES",
// followed by a note when the edge ran none (dry run, filesystem not
// matched). Err is nil when the run succeeded.
type MyLockTablesReport struct {
	What string
	Err  error
}

// String is What, or "<What>: <err>" when the run failed.
func (r *MyLockTablesReport) String() string {
	if r.Err != nil {
		return r.What + ": " + r.Err.Error()
	}
	return r.What
}

// HadError reports whether the run failed.
func (r *MyLockTablesReport) HadError() bool { return r.Err != nil }

// Error is String() when the run failed, else "".
func (r *MyLockTablesReport) Error() string {
	if r.Err == nil {
		return ""
	}
	return r.String()
}

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

// What the database hooks (postgres-checkpoint, mysql-lock-tables,
// mariadb-backup-stage) share: the filesystem of a run, how an ended ctx is
// said in an error, and the pinned MySQL session the two lock hooks hold.

// dbCloseTimeout bounds how long closing a database connection may take. It
// runs with a ctx that the caller cannot cancel, so that a connection is
// closed on shutdown too.
const dbCloseTimeout = 5 * time.Second

// dbHookFilesystem returns the filesystem of a database hook's run, from
// extra[EnvFS], and whether filter passes it. It fails if there is none, if
// it is not a valid dataset name, or if the filter fails.
func dbHookFilesystem(filter Filter, extra Env) (fs string, pass bool, err error) {
	fs, ok := extra[EnvFS]
	if !ok {
		return "", false, fmt.Errorf("no filesystem in the hook environment (%s)", EnvFS)
	}
	p, err := NewDatasetPath(fs)
	if err != nil {
		return fs, false, err
	}
	pass, err = filter.Filter(p)
	if err != nil {
		return fs, false, fmt.Errorf("filter filesystem %q: %w", fs, err)
	}
	return fs, pass, nil
}

// describeTimeout says in err why ctx, derived from parent with the given
// timeout, ended the run: its own timeout ("timed out after <timeout>: ..."),
// or the end of parent ("cancelled (<cause>): ...", as a command hook says
// it).
func describeTimeout(parent, ctx context.Context, timeout time.Duration, err error) error {
	switch {
	case err == nil || !ctxEnded(ctx):
		return err
	case ctxEnded(parent):
		cause := context.Cause(parent)
		if cause == nil { // the deadline passed, its timer has not fired yet
			cause = context.DeadlineExceeded
		}
		return fmt.Errorf("cancelled (%v): %w", cause, err)
	default:
		return fmt.Errorf("timed out after %s: %w", timeout, err)
	}
}

// ctxEnded reports whether ctx is done or its deadline has passed: on a busy
// machine the timer that cancels ctx may fire a little after the deadline
// that a driver's I/O deadline has already hit.
func ctxEnded(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	deadline, ok := ctx.Deadline()
	return ok && !time.Now().Before(deadline)
}

// mysqlSession is one pinned session of a MySQL or MariaDB server, opened
// by openMySQLSession: locks belong to the session that took them, so every
// statement of a lock hook runs on it. As a heldResource, release runs
// unlock on it once locked is set, and closes it, which ends whatever the
// session still holds.
type mysqlSession struct {
	db     *sql.DB
	conn   *sql.Conn
	log    *slog.Logger
	secret string // the password, redacted from what release logs
	unlock string // the statement that ends the lock: UNLOCK TABLES, BACKUP STAGE END
	locked bool   // the session took (part of) its lock: release runs unlock
}

// release runs the unlock statement if the session locked, bounded by ctx,
// and closes the session in any case. The error is that of the statement;
// closing errors are logged.
func (s *mysqlSession) release(ctx context.Context) error {
	var err error
	if s.locked {
		if _, err = s.conn.ExecContext(ctx, s.unlock); err != nil {
			err = fmt.Errorf("%w (closing the connection instead, which ends the lock if the session still holds one)", err)
		}
	}
	if cerr := s.end(); cerr != nil {
		s.log.WarnContext(ctx, "close the locking session", slog.String("err", redactSecret(cerr, s.secret).Error()))
	}
	return err
}

// end closes the pinned connection and its DB, which ends the session.
func (s *mysqlSession) end() error {
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

// openMySQLSession opens a *sql.DB of its own for config and pins one
// connection of it, whose lock unlock ends. The caller releases the
// session. On error nothing is left open.
func openMySQLSession(ctx context.Context, log *slog.Logger, config *mysql.Config, unlock string) (*mysqlSession, error) {
	cfg := config.Clone()
	cfg.Logger = mysqlDriverLogger{log: log, secret: config.Passwd}
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("configure driver: %w", err)
	}
	s := &mysqlSession{db: sql.OpenDB(connector), log: log, secret: config.Passwd, unlock: unlock}
	// The DB exists for the one pinned connection. No idle connection may be
	// closed under it.
	s.db.SetMaxOpenConns(1)
	s.db.SetConnMaxLifetime(0)
	s.db.SetConnMaxIdleTime(0)

	log.DebugContext(ctx, "connecting to mysql",
		slog.String("net", cfg.Net), slog.String("addr", cfg.Addr), slog.String("user", cfg.User))
	s.conn, err = s.db.Conn(ctx)
	if err != nil {
		_ = s.end()
		return nil, fmt.Errorf("connect: %w", err)
	}
	return s, nil
}

// setLockWaitTimeout sets the session's lock_wait_timeout to what is left
// until the deadline of ctx (whole seconds, at least 1), and returns it. The
// server then gives up waiting for a lock when the hook would, rather than
// keep other sessions waiting behind a lock nobody wants any more.
func (s *mysqlSession) setLockWaitTimeout(ctx context.Context) (int64, error) {
	secs := int64(1)
	if deadline, ok := ctx.Deadline(); ok {
		secs = max(secs, int64((time.Until(deadline)+time.Second-1)/time.Second))
	}
	if _, err := s.conn.ExecContext(ctx, fmt.Sprintf("SET SESSION lock_wait_timeout = %d", secs)); err != nil {
		return 0, fmt.Errorf("set lock_wait_timeout: %w", err)
	}
	return secs, nil
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

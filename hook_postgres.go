package hooks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// pgInsufficientPrivilege is the SQLSTATE of insufficient_privilege.
const pgInsufficientPrivilege = "42501"

// PgChkptHook is the postgres-checkpoint hook: on the Pre edge it connects to
// a PostgreSQL server and runs CHECKPOINT, so that the server has written its
// dirty pages to disk shortly before the snapshot and a server started from
// the snapshot has little WAL to replay. The snapshot is crash-consistent with
// or without it; the checkpoint only shortens crash recovery.
//
// What Run does:
//
//   - On the Callback and Post edges it does nothing and returns an ok report.
//   - On the Pre edge it reads the filesystem from extra[EnvFS]. If there is
//     none, or it is not a valid dataset name, or the hook's filter fails on
//     it, the report is an error. If the filter does not pass it, the hook
//     does nothing, logs that at DEBUG and returns an ok report.
//   - Otherwise it connects with the DSN, sets the session's
//     statement_timeout to what is left of the hook's timeout (or of the ctx's
//     deadline, if that is sooner) and runs CHECKPOINT. Connecting and the
//     checkpoint together are bounded by the hook's timeout; an expired
//     timeout makes the error begin with "timed out after <timeout>".
//   - In a dry run it connects and pings the server instead: the DSN, the
//     network and the password are checked, but no checkpoint is requested
//     and the privilege to run one is not.
//
// The connection is always closed before Run returns, with a ctx that the
// caller's ctx cannot cancel. Nothing is kept in the state map.
//
// A role that may not run CHECKPOINT gets an error that says so: the role
// needs SUPERUSER or, on PostgreSQL 15 and later, membership in the
// predefined role pg_checkpoint.
//
// String names the hook by the target its DSN gives, for instance
// "postgres checkpoint (backup@127.0.0.1:5432/postgres)", so that two hooks
// of this type can be told apart in reports and logs. No report, error,
// String or log record contains the DSN's password: should a driver error
// quote it, it is replaced by "xxxxx".
//
// A PgChkptHook is immutable and safe for concurrent use.
type PgChkptHook struct {
	hookSettings
	config   *pgx.ConnConfig // parsed once; each run connects with a copy
	password string          // redacted from every error text
	name     string          // String: the hook type and its target
}

// newPgChkptHook returns the hook that in describes. in has its defaults
// applied and is valid. The DSN is parsed here, as libpq would parse it
// (keyword/value or URL form, PG* environment variables, the password file),
// so that a run does not fail on it later.
func newPgChkptHook(in HookConfig) (*PgChkptHook, error) {
	settings, err := newHookSettings(in)
	if err != nil {
		return nil, err
	}
	cfg, err := parsePgDSN(in.DSN)
	if err != nil {
		return nil, &ConfigError{Field: "dsn", Err: err}
	}
	return &PgChkptHook{
		hookSettings: settings,
		config:       cfg,
		password:     cfg.Password,
		name:         "postgres checkpoint (" + pgTarget(cfg) + ")",
	}, nil
}

// String returns "postgres checkpoint (<user>@<host>:<port>/<database>)".
func (h *PgChkptHook) String() string { return h.name }

// Run requests a checkpoint on the Pre edge; see PgChkptHook. It returns a
// *PgChkptHookReport. state is not used.
func (h *PgChkptHook) Run(ctx context.Context, edge Edge, phase Phase, dryRun bool, extra Env, state map[interface{}]interface{}) HookReport {
	if edge != Pre {
		return &PgChkptHookReport{}
	}
	log := GetLogger(ctx).With(slog.String("hook", h.String()), slog.String("edge", edge.String()))
	fs, pass, err := dbHookFilesystem(h.filter, extra)
	if err != nil {
		return &PgChkptHookReport{Err: err}
	}
	log = log.With(slog.String("fs", fs))
	if !pass {
		log.DebugContext(ctx, "filesystem not matched by the hook's filter: no checkpoint")
		return &PgChkptHookReport{}
	}
	return &PgChkptHookReport{Err: redactSecret(h.run(ctx, log, dryRun), h.password)}
}

// run connects, sets statement_timeout and checkpoints (or pings, in a dry
// run), bounded by the hook's timeout, and closes the connection.
func (h *PgChkptHook) run(parent context.Context, log *slog.Logger, dryRun bool) (err error) {
	ctx, cancel := context.WithTimeout(parent, h.timeout)
	defer cancel()
	defer func() { err = describeTimeout(parent, ctx, h.timeout, err) }()

	cfg := h.config.Copy()
	if cfg.ConnectTimeout <= 0 || cfg.ConnectTimeout > h.timeout {
		cfg.ConnectTimeout = h.timeout
	}
	log.DebugContext(ctx, "connecting to postgres",
		slog.String("host", cfg.Host), slog.Int("port", int(cfg.Port)),
		slog.String("user", cfg.User), slog.String("database", cfg.Database), slog.Bool("dry_run", dryRun))
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(parent), min(h.timeout, dbCloseTimeout))
		defer cancel()
		if cerr := conn.Close(closeCtx); cerr != nil && err == nil {
			err = fmt.Errorf("close connection: %w", cerr)
		}
	}()

	if dryRun {
		if err := conn.Ping(ctx); err != nil {
			return fmt.Errorf("ping: %w", err)
		}
		log.DebugContext(ctx, "dry run: connected and pinged postgres, no checkpoint")
		return nil
	}

	// The statement is built from an integer: SET takes no bind parameters.
	ms := int64(pgMaxStatementTimeout / time.Millisecond)
	if deadline, ok := ctx.Deadline(); ok {
		ms = pgStatementTimeout(time.Until(deadline))
	}
	if _, err := conn.Exec(ctx, fmt.Sprintf("SET statement_timeout = %d", ms)); err != nil {
		return fmt.Errorf("set statement_timeout: %w", err)
	}
	log.DebugContext(ctx, "running CHECKPOINT", slog.Int64("statement_timeout_ms", ms))
	if _, err := conn.Exec(ctx, "CHECKPOINT"); err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == pgInsufficientPrivilege {
			return fmt.Errorf("CHECKPOINT: insufficient privilege: the role needs SUPERUSER or, on PostgreSQL 15+, membership in pg_checkpoint: %w", err)
		}
		return fmt.Errorf("CHECKPOINT: %w", err)
	}
	return nil
}

// pgMaxStatementTimeout is the largest statement_timeout PostgreSQL accepts:
// an int32 number of milliseconds.
const pgMaxStatementTimeout = math.MaxInt32 * time.Millisecond

// pgStatementTimeout returns the statement_timeout in milliseconds for a
// statement that may take d: at least 1 (0 would mean no timeout) and at
// most what PostgreSQL accepts, whatever the hook's timeout or the ctx's
// deadline says.
func pgStatementTimeout(d time.Duration) int64 {
	return max(1, min(d, pgMaxStatementTimeout).Milliseconds())
}

// PgChkptHookReport is the report of a PgChkptHook run. Err is nil when the
// run succeeded, including the runs that had nothing to do.
type PgChkptHookReport struct {
	Err error
}

// String is "postgres CHECKPOINT completed" or
// "postgres CHECKPOINT failed: <err>".
func (r *PgChkptHookReport) String() string {
	if r.Err != nil {
		return "postgres CHECKPOINT failed: " + r.Err.Error()
	}
	return "postgres CHECKPOINT completed"
}

// HadError reports whether the run failed.
func (r *PgChkptHookReport) HadError() bool { return r.Err != nil }

// Error is String() when the run failed, else "".
func (r *PgChkptHookReport) Error() string {
	if r.Err == nil {
		return ""
	}
	return r.String()
}

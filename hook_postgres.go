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
//   - Before the checkpoint (or the ping), on the same connection, it checks
//     that the snapshot holds every file of the server, in the hook's
//     coverage mode (HookConfig.Coverage; see CheckCoverage and
//     ServerFiles): under CoverageWarn a problem is logged at WARN and is in
//     the report's Warnings, under CoverageStrict it fails the Pre edge
//     before the checkpoint. Reading data_directory needs SUPERUSER or the
//     privileges of pg_read_all_settings; without them coverage is unknown.
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
	coverage string          // CoverageWarn, CoverageStrict or CoverageOff
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
		coverage:     coverageMode(in),
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
	warnings, err := h.run(ctx, log, dryRun, extra)
	return &PgChkptHookReport{Warnings: warnings, Err: redactSecret(err, h.password)}
}

// run connects, checks coverage, sets statement_timeout and checkpoints (or
// pings, in a dry run), bounded by the hook's timeout, and closes the
// connection.
func (h *PgChkptHook) run(parent context.Context, log *slog.Logger, dryRun bool, extra Env) (warnings []string, err error) {
	ctx, cancel := context.WithTimeout(parent, h.timeout)
	defer cancel()
	defer func() { err = describeTimeout(parent, ctx, h.timeout, err) }()

	conn, err := h.connect(ctx, log, dryRun)
	if err != nil {
		return nil, err
	}
	defer func() {
		if cerr := h.close(parent, conn); cerr != nil && err == nil {
			err = cerr
		}
	}()
	warnings, err = coverageCheck(ctx, log, h.coverage, extra, func(ctx context.Context) ([]ServerFile, error) {
		return pgLocatedFiles(ctx, conn)
	})
	if err != nil {
		return nil, err
	}
	return warnings, h.checkpoint(ctx, log, conn, dryRun)
}

// connect connects to the server, bounded by ctx and the hook's timeout.
func (h *PgChkptHook) connect(ctx context.Context, log *slog.Logger, dryRun bool) (*pgx.Conn, error) {
	cfg := h.config.Copy()
	if cfg.ConnectTimeout <= 0 || cfg.ConnectTimeout > h.timeout {
		cfg.ConnectTimeout = h.timeout
	}
	log.DebugContext(ctx, "connecting to postgres",
		slog.String("host", cfg.Host), slog.Int("port", int(cfg.Port)),
		slog.String("user", cfg.User), slog.String("database", cfg.Database), slog.Bool("dry_run", dryRun))
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	return conn, nil
}

// close closes conn with a ctx that the end of parent does not end.
func (h *PgChkptHook) close(parent context.Context, conn *pgx.Conn) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(parent), min(h.timeout, dbCloseTimeout))
	defer cancel()
	if err := conn.Close(ctx); err != nil {
		return fmt.Errorf("close connection: %w", err)
	}
	return nil
}

// ServerFiles asks the server where it keeps its files (data_directory, its
// WAL, its tablespaces) and locates them on this host; see ServerFiler.
// Reading data_directory needs SUPERUSER or the privileges of
// pg_read_all_settings: without them the error wraps ErrCoverageUnknown.
func (h *PgChkptHook) ServerFiles(parent context.Context) ([]ServerFile, error) {
	return boundedServerFiles(parent, h.timeout, h.password, func(ctx context.Context) (_ []ServerFile, err error) {
		conn, err := h.connect(ctx, GetLogger(ctx), true)
		if err != nil {
			return nil, err
		}
		defer func() {
			if cerr := h.close(parent, conn); cerr != nil && err == nil {
				err = cerr
			}
		}()
		return pgLocatedFiles(ctx, conn)
	})
}

// checkpoint sets statement_timeout and runs CHECKPOINT on conn, or pings
// the server in a dry run.
func (h *PgChkptHook) checkpoint(ctx context.Context, log *slog.Logger, conn *pgx.Conn, dryRun bool) error {
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
// run succeeded, including the runs that had nothing to do. Warnings are
// what the Pre edge warns about whether it succeeded or not (the coverage
// check: a file of the server that the snapshot does not hold).
type PgChkptHookReport struct {
	Err      error
	Warnings []string
}

// String is "postgres CHECKPOINT completed" or
// "postgres CHECKPOINT failed: <err>", followed by "; warning: <warning>"
// for each of Warnings.
func (r *PgChkptHookReport) String() string {
	if r.Err != nil {
		return "postgres CHECKPOINT failed: " + r.Err.Error() + warningsText(r.Warnings)
	}
	return "postgres CHECKPOINT completed" + warningsText(r.Warnings)
}

// HadError reports whether the run failed.
func (r *PgChkptHookReport) HadError() bool { return r.Err != nil }

// HadWarning reports whether the report has Warnings, whether the run failed
// or not.
func (r *PgChkptHookReport) HadWarning() bool { return len(r.Warnings) > 0 }

// Error is String() when the run failed, else "".
func (r *PgChkptHookReport) Error() string {
	if r.Err == nil {
		return ""
	}
	return r.String()
}

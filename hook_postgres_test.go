package hooks

// Integration tests of the postgres-checkpoint hook against the PostgreSQL
// server that scripts/test.sh starts (see dbenv_test.go), and the helpers
// that the database hook tests share (dbRunPlan, dbRequireNoSecret,
// dbBlackhole).
//
// The PostgreSQL tests do not run in parallel: they count the server's
// checkpoints.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// dbTestFS is the filesystem of the database hook tests' plans; the hooks'
// filters pass it.
const dbTestFS = "tank/db"

// dbTestFilter is the filesystems setting of the database hooks under test.
var dbTestFilter = map[string]bool{"tank/db<": true}

// dbPlanRun is the outcome of a plan run by dbRunPlan.
type dbPlanRun struct {
	report  PlanReport
	logs    string        // everything logged at DEBUG and above
	elapsed time.Duration // how long Run took
}

// dbRunPlan runs a plan of list around cb (nil: a callback that succeeds)
// for dbTestFS, with a logger that records everything. A callback must
// report failures with t.Error, not t.Fatal: a Goexit in the callback would
// skip the post edges and leave locks behind.
func dbRunPlan(t *testing.T, ctx context.Context, list List, cb HookJobCallback, dryRun bool) dbPlanRun {
	t.Helper()
	if cb == nil {
		cb = func(context.Context) error { return nil }
	}
	fs, err := NewDatasetPath(dbTestFS)
	require.NoError(t, err)
	plan, err := NewPlan(&list, PhaseSnapshot, NewCallbackHookForFilesystem("snapshot", fs, cb), Env{EnvFS: dbTestFS, EnvSnapshot: "snap1"})
	require.NoError(t, err)
	logger, buf := testLogger()
	start := time.Now()
	plan.Run(WithLogger(ctx, logger), dryRun)
	run := dbPlanRun{report: plan.Report(), logs: buf.String(), elapsed: time.Since(start)}
	t.Logf("plan took %v:\n%s", run.elapsed.Round(time.Millisecond), run.report)
	for _, s := range run.report {
		if s.Report != nil && s.Report.HadError() {
			t.Logf("%s %s: %s", s.Edge, s.Hook, s.Report.Error())
		}
	}
	return run
}

// dbStatuses returns the status of every step of r, in report order.
func dbStatuses(r PlanReport) []StepStatus {
	out := make([]StepStatus, len(r))
	for i, s := range r {
		out[i] = s.Status
	}
	return out
}

// dbRequireNoSecret fails the test if secret appears in any rendering of the
// plan's report (String, JSON, logfmt, every step's report, error and hook
// name) or in its logs.
func dbRequireNoSecret(t *testing.T, secret string, run dbPlanRun) {
	t.Helper()
	require.NotEmpty(t, secret)
	texts := map[string]string{"report": run.report.String(), "logs": run.logs}
	j, err := json.Marshal(run.report)
	require.NoError(t, err)
	texts["json"] = string(j)
	var lf bytes.Buffer
	require.NoError(t, run.report.WriteLogfmt(&lf))
	texts["logfmt"] = lf.String()
	for i, s := range run.report {
		texts[fmt.Sprintf("step %d hook", i)] = s.Hook.String()
		if s.Report != nil {
			texts[fmt.Sprintf("step %d report", i)] = s.Report.String()
			texts[fmt.Sprintf("step %d error", i)] = s.Report.Error()
		}
	}
	for what, text := range texts {
		if strings.Contains(text, secret) {
			t.Errorf("the password %q shows in the %s:\n%s", secret, what, text)
		}
	}
}

// dbRequireReportHasNoSecret is dbRequireNoSecret for a single hook report.
func dbRequireReportHasNoSecret(t *testing.T, secret string, rep HookReport, logs string) {
	t.Helper()
	for what, text := range map[string]string{"report": rep.String(), "error": rep.Error(), "logs": logs} {
		if strings.Contains(text, secret) {
			t.Errorf("the password %q shows in the %s:\n%s", secret, what, text)
		}
	}
}

// dbClosedPort returns a port on 127.0.0.1 that refuses connections.
func dbClosedPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	require.NoError(t, l.Close())
	return port
}

// dbBlackhole returns the port of a server on 127.0.0.1 that accepts
// connections and never says a word. It is stopped, and its connections
// closed, when the test ends.
func dbBlackhole(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var (
		mu    sync.Mutex
		conns []net.Conn
		wg    sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = l.Close()
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return l.Addr().(*net.TCPAddr).Port
}

// pgHook returns the postgres-checkpoint hook for dsn, built from its
// configuration as a daemon would.
func pgHook(t *testing.T, dsn string, timeout time.Duration, fatal bool) Hook {
	t.Helper()
	h, err := HookFromConfig(HookConfig{
		Type:        TypePostgresCheckpoint,
		DSN:         dsn,
		Timeout:     timeout,
		ErrIsFatal:  fatal,
		Filesystems: dbTestFilter,
	})
	require.NoError(t, err)
	return h
}

// pgConfigFromEnv parses the PostgreSQL DSN in the environment variable name.
func pgConfigFromEnv(t *testing.T, name string) *pgx.ConnConfig {
	t.Helper()
	cfg, err := pgx.ParseConfig(dsnFromEnv(t, name))
	require.NoError(t, err)
	require.NotEmpty(t, cfg.Password, "%s has no password to check for leaks", name)
	return cfg
}

// pgKeywordDSN returns the keyword/value form of cfg, with password.
func pgKeywordDSN(cfg *pgx.ConnConfig, password string) string {
	return fmt.Sprintf("host=%s port=%d user=%s password='%s' dbname=%s sslmode=disable connect_timeout=10",
		cfg.Host, cfg.Port, cfg.User, password, cfg.Database)
}

// pgWaitCheckpoints waits until the server has counted at least want
// requested checkpoints, and returns the count.
func pgWaitCheckpoints(t *testing.T, admin *pgx.Conn, want int64) int64 {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		n := pgCheckpointsRequested(t, admin)
		if n >= want {
			return n
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server counts %d requested checkpoints, want at least %d", n, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// pgRoleIsSuperuser asks the server whether role is SUPERUSER.
func pgRoleIsSuperuser(t *testing.T, admin *pgx.Conn, role string) bool {
	t.Helper()
	var super bool
	require.NoError(t, admin.QueryRow(t.Context(), "SELECT rolsuper FROM pg_roles WHERE rolname = $1", role).Scan(&super))
	return super
}

func TestPostgresCheckpoint(t *testing.T) {
	admin := pgAdmin(t)
	cfg := pgConfigFromEnv(t, "SNAPHOOKS_TEST_PG_DSN")
	// The role has pg_checkpoint and nothing else: no SUPERUSER needed.
	require.False(t, pgRoleIsSuperuser(t, admin, cfg.User), "the checkpoint role must not be SUPERUSER")

	for name, dsn := range map[string]string{
		"url_dsn":           dsnFromEnv(t, "SNAPHOOKS_TEST_PG_DSN"),
		"keyword_value_dsn": pgKeywordDSN(cfg, cfg.Password),
	} {
		t.Run(name+"_pg_checkpoint_role_checkpoints", func(t *testing.T) {
			before := pgCheckpointsRequested(t, admin)
			run := dbRunPlan(t, t.Context(), List{pgHook(t, dsn, 10*time.Second, true)}, nil, false)

			require.Equal(t, []StepStatus{StepOk, StepOk, StepOk}, dbStatuses(run.report))
			require.Equal(t, "postgres CHECKPOINT completed", run.report[0].Report.String())
			require.Equal(t, "", run.report[0].Report.Error())
			require.Equal(t, fmt.Sprintf("postgres checkpoint (%s@%s:%d/%s)", cfg.User, cfg.Host, cfg.Port, cfg.Database), run.report[0].Hook.String())
			require.Contains(t, run.logs, "statement_timeout_ms=")
			pgWaitCheckpoints(t, admin, before+1)
			dbRequireNoSecret(t, cfg.Password, run)
		})
	}
}

func TestPostgresDryRunDoesNotCheckpoint(t *testing.T) {
	admin := pgAdmin(t)
	cfg := pgConfigFromEnv(t, "SNAPHOOKS_TEST_PG_DSN")

	t.Run("dry_run_connects_and_pings_only", func(t *testing.T) {
		before := pgCheckpointsRequested(t, admin)
		run := dbRunPlan(t, t.Context(), List{pgHook(t, dsnFromEnv(t, "SNAPHOOKS_TEST_PG_DSN"), 10*time.Second, true)}, nil, true)
		require.Equal(t, []StepStatus{StepOk, StepOk, StepOk}, dbStatuses(run.report))
		require.Contains(t, run.logs, "dry run: connected and pinged postgres")

		// Counts are published in order: once this checkpoint is counted, a
		// checkpoint of the dry run would have been too.
		_, err := admin.Exec(t.Context(), "CHECKPOINT")
		require.NoError(t, err)
		require.Equal(t, before+1, pgWaitCheckpoints(t, admin, before+1), "the dry run requested a checkpoint")
	})

	t.Run("dry_run_checks_the_password", func(t *testing.T) {
		const wrong = "wrong-s3cret-pg-dryrun"
		run := dbRunPlan(t, t.Context(), List{pgHook(t, pgKeywordDSN(cfg, wrong), 10*time.Second, true)}, nil, true)
		require.Equal(t, []StepStatus{StepErr, StepSkippedDueToFatalErr, StepSkippedDueToFatalErr}, dbStatuses(run.report))
		require.Contains(t, run.report[0].Report.Error(), "password authentication failed")
		dbRequireNoSecret(t, wrong, run)
	})
}

// TestPostgresConcurrentPlansShareOneHook: one hook, several plans at once,
// as in a daemon that snapshots many filesystems.
func TestPostgresConcurrentPlansShareOneHook(t *testing.T) {
	admin := pgAdmin(t)
	cfg := pgConfigFromEnv(t, "SNAPHOOKS_TEST_PG_DSN")
	hook := pgHook(t, dsnFromEnv(t, "SNAPHOOKS_TEST_PG_DSN"), 10*time.Second, true)
	fs, err := NewDatasetPath(dbTestFS)
	require.NoError(t, err)
	const n = 4
	before := pgCheckpointsRequested(t, admin)

	logger, buf := testLogger()
	plans := make([]*Plan, n)
	for i := range plans {
		plans[i], err = NewPlan(&List{hook}, PhaseSnapshot, NewCallbackHookForFilesystem("snapshot", fs, func(context.Context) error { return nil }), Env{EnvFS: dbTestFS})
		require.NoError(t, err)
	}
	var wg sync.WaitGroup
	for _, p := range plans {
		wg.Add(1)
		go func() { defer wg.Done(); p.Run(WithLogger(t.Context(), logger), false) }()
	}
	wg.Wait()

	for _, p := range plans {
		run := dbPlanRun{report: p.Report(), logs: buf.String()}
		require.Equal(t, []StepStatus{StepOk, StepOk, StepOk}, dbStatuses(run.report), "%s", run.report)
		dbRequireNoSecret(t, cfg.Password, run)
	}
	// Concurrent requests may share one checkpoint: at least one happened.
	pgWaitCheckpoints(t, admin, before+1)
}

func TestPostgresRoleWithoutPrivilege(t *testing.T) {
	admin := pgAdmin(t)
	cfg := pgConfigFromEnv(t, "SNAPHOOKS_TEST_PG_NOPRIV_DSN")
	before := pgCheckpointsRequested(t, admin)

	run := dbRunPlan(t, t.Context(), List{pgHook(t, dsnFromEnv(t, "SNAPHOOKS_TEST_PG_NOPRIV_DSN"), 10*time.Second, true)}, nil, false)

	require.Equal(t, []StepStatus{StepErr, StepSkippedDueToFatalErr, StepSkippedDueToFatalErr}, dbStatuses(run.report))
	msg := run.report[0].Report.Error()
	require.True(t, strings.HasPrefix(msg, "postgres CHECKPOINT failed: CHECKPOINT: insufficient privilege"), msg)
	require.Contains(t, msg, "the role needs SUPERUSER or, on PostgreSQL 15+, membership in pg_checkpoint")
	require.Contains(t, msg, "SQLSTATE 42501")
	require.Contains(t, run.logs, "fatal pre edge error")
	dbRequireNoSecret(t, cfg.Password, run)

	_, err := admin.Exec(t.Context(), "CHECKPOINT")
	require.NoError(t, err)
	require.Equal(t, before+1, pgWaitCheckpoints(t, admin, before+1), "a checkpoint happened without the privilege")
}

func TestPostgresWrongPassword(t *testing.T) {
	cfg := pgConfigFromEnv(t, "SNAPHOOKS_TEST_PG_DSN")
	const wrong = "wrong-s3cret-pg"
	for name, dsn := range map[string]string{
		"url_dsn":           fmt.Sprintf("postgres://%s:%s@%s:%d/%s?sslmode=disable", cfg.User, wrong, cfg.Host, cfg.Port, cfg.Database),
		"keyword_value_dsn": pgKeywordDSN(cfg, wrong),
	} {
		t.Run(name, func(t *testing.T) {
			run := dbRunPlan(t, t.Context(), List{pgHook(t, dsn, 10*time.Second, false)}, nil, false)
			require.Equal(t, []StepStatus{StepErr, StepOk, StepSkippedDueToPreErr}, dbStatuses(run.report))
			msg := run.report[0].Report.Error()
			require.True(t, strings.HasPrefix(msg, "postgres CHECKPOINT failed: connect: "), msg)
			require.Contains(t, msg, "password authentication failed")
			dbRequireNoSecret(t, wrong, run)
		})
	}
}

func TestPostgresUnreachableServer(t *testing.T) {
	const (
		secret  = "s3cret-pg-unreachable"
		timeout = time.Second
		// slack covers connection set-up and a loaded machine under -race.
		slack = 3 * time.Second
	)
	closedPort := dbClosedPort(t)
	blackholePort := dbBlackhole(t)
	servers := []struct {
		name string
		dsn  string
		want string // in the error
	}{
		{"closed_port", fmt.Sprintf("postgres://snap:%s@127.0.0.1:%d/postgres", secret, closedPort), "connection refused"},
		{"blackhole_that_never_answers", fmt.Sprintf("host=127.0.0.1 port=%d user=snap password=%s dbname=postgres sslmode=disable", blackholePort, secret), "timed out after 1s"},
	}
	for _, srv := range servers {
		for _, fatal := range []bool{true, false} {
			name := srv.name + "_is_a_pre_error"
			want := []StepStatus{StepErr, StepOk, StepSkippedDueToPreErr}
			if fatal {
				name += "_fatal_with_err_is_fatal"
				want = []StepStatus{StepErr, StepSkippedDueToFatalErr, StepSkippedDueToFatalErr}
			}
			t.Run(name, func(t *testing.T) {
				called := false
				cb := func(context.Context) error { called = true; return nil }
				run := dbRunPlan(t, t.Context(), List{pgHook(t, srv.dsn, timeout, fatal)}, cb, false)

				require.Equal(t, want, dbStatuses(run.report))
				require.Equal(t, !fatal, called, "callback called")
				require.Less(t, run.elapsed, timeout+slack)
				msg := run.report[0].Report.Error()
				require.True(t, strings.HasPrefix(msg, "postgres CHECKPOINT failed: "), msg)
				require.Contains(t, msg, srv.want)
				dbRequireNoSecret(t, secret, run)
			})
		}
	}
}

func TestPostgresStatementTimeoutFollowsTheDeadline(t *testing.T) {
	dsn := dsnFromEnv(t, "SNAPHOOKS_TEST_PG_DSN")
	logger, buf := testLogger()
	ctx, cancel := context.WithTimeout(WithLogger(t.Context(), logger), 3*time.Second)
	defer cancel()

	rep := pgHook(t, dsn, time.Minute, false).Run(ctx, Pre, PhaseSnapshot, false, Env{EnvFS: dbTestFS}, map[interface{}]interface{}{})
	require.False(t, rep.HadError(), rep.Error())

	var ms int64
	for _, line := range strings.Split(buf.String(), "\n") {
		if i := strings.Index(line, "statement_timeout_ms="); i >= 0 {
			_, err := fmt.Sscanf(line[i:], "statement_timeout_ms=%d", &ms)
			require.NoError(t, err)
		}
	}
	require.Greater(t, ms, int64(0), "no statement_timeout logged:\n%s", buf)
	require.LessOrEqual(t, ms, int64(3000), "statement_timeout ignores the ctx deadline")
}

// TestPostgresStatementTimeoutIsBounded: whatever the hook's timeout (here
// one that configuration refuses, set past the validation), the hook sends
// a statement_timeout that PostgreSQL accepts.
func TestPostgresStatementTimeoutIsBounded(t *testing.T) {
	dsn := dsnFromEnv(t, "SNAPHOOKS_TEST_PG_DSN")
	h, err := newPgChkptHook(HookConfig{Type: TypePostgresCheckpoint, DSN: dsn, Timeout: 1000 * time.Hour, Filesystems: dbTestFilter})
	require.NoError(t, err)
	logger, buf := testLogger()
	rep := h.Run(WithLogger(t.Context(), logger), Pre, PhaseSnapshot, false, Env{EnvFS: dbTestFS}, map[interface{}]interface{}{})
	require.False(t, rep.HadError(), rep.Error())
	require.Contains(t, buf.String(), fmt.Sprintf("statement_timeout_ms=%d", math.MaxInt32))
}

func TestPgStatementTimeout(t *testing.T) {
	for _, c := range []struct {
		in   time.Duration
		want int64
	}{
		{-time.Second, 1},
		{0, 1},
		{time.Microsecond, 1},
		{1500 * time.Millisecond, 1500},
		{MaxHookTimeout, int64(MaxHookTimeout / time.Millisecond)},
		{math.MaxInt32 * time.Millisecond, math.MaxInt32},
		{1000 * time.Hour, math.MaxInt32},
		{math.MaxInt64, math.MaxInt32},
	} {
		require.Equal(t, c.want, pgStatementTimeout(c.in), "%v", c.in)
	}
}

// TestPostgresHookEdgesAndFilter checks what the hook does without
// connecting: its DSN points at a closed port, so a connection attempt
// would fail the run.
func TestPostgresHookEdgesAndFilter(t *testing.T) {
	const secret = "s3cret-pg-noconnect"
	port := dbClosedPort(t)
	h, err := HookFromConfig(HookConfig{
		Type:           TypePostgresCheckpoint,
		DSN:            fmt.Sprintf("postgres://snap:%s@127.0.0.1:%d/postgres", secret, port),
		Filesystems:    dbTestFilter,
		PostOnPreError: true,
	})
	require.NoError(t, err)
	require.IsType(t, &PgChkptHook{}, h)
	require.Equal(t, fmt.Sprintf("postgres checkpoint (snap@127.0.0.1:%d/postgres)", port), h.String())
	require.Equal(t, DefaultHookTimeout, h.(*PgChkptHook).Timeout())
	require.True(t, h.(*PgChkptHook).PostOnPreError())
	require.False(t, h.ErrIsFatal())

	run := func(edge Edge, extra Env) (HookReport, string) {
		logger, buf := testLogger()
		rep := h.Run(WithLogger(t.Context(), logger), edge, PhaseSnapshot, false, extra, map[interface{}]interface{}{})
		dbRequireReportHasNoSecret(t, secret, rep, buf.String())
		return rep, buf.String()
	}

	t.Run("post_and_callback_edges_do_nothing", func(t *testing.T) {
		for _, edge := range []Edge{Callback, Post} {
			rep, _ := run(edge, Env{EnvFS: dbTestFS})
			require.False(t, rep.HadError(), rep.Error())
			require.Equal(t, "postgres CHECKPOINT completed", rep.String())
		}
	})
	t.Run("filesystem_not_matched_does_nothing", func(t *testing.T) {
		rep, logs := run(Pre, Env{EnvFS: "tank/other"})
		require.False(t, rep.HadError(), rep.Error())
		require.Contains(t, logs, "not matched")
	})
	t.Run("no_filesystem_is_an_error", func(t *testing.T) {
		rep, _ := run(Pre, Env{})
		require.True(t, rep.HadError())
		require.Contains(t, rep.Error(), "no filesystem in the hook environment (ZREPL_FS)")
	})
	t.Run("invalid_filesystem_is_an_error", func(t *testing.T) {
		rep, _ := run(Pre, Env{EnvFS: "tank/db@snap"})
		require.True(t, rep.HadError())
		require.Contains(t, rep.Error(), "invalid dataset path")
	})
	t.Run("matched_filesystem_connects", func(t *testing.T) {
		rep, _ := run(Pre, Env{EnvFS: "tank/db/data"})
		require.True(t, rep.HadError())
		require.Contains(t, rep.Error(), "connection refused")
	})
}

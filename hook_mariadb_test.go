package hooks

// Tests of the mariadb-backup-stage hook: the version check and the
// configuration without a server, the rest against the MariaDB server that
// scripts/test.sh starts (see dbenv_test.go) and against private servers
// that a test may kill (myStartPrivateServer).
//
// The tests do not run in parallel: a server has one backup at a time, and
// the read lock of the comparison with mysql-lock-tables is global. What the
// server does is asked of the server: its process list (a statement's state,
// such as "Waiting for backup lock"), and a writer session with
// lock_wait_timeout=1 that tries an INSERT.

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/stretchr/testify/require"
)

// mdbHook returns the mariadb-backup-stage hook for dsn, built from its
// configuration as a daemon would.
func mdbHook(t *testing.T, dsn string, timeout time.Duration, fatal bool) *MariaDBBackupStage {
	return dbHookFromConfig[*MariaDBBackupStage](t, TypeMariaDBBackupStage, dsn, timeout, fatal)
}

// mdbProcess is a row of the server's process list.
type mdbProcess struct {
	id                int64
	user, state, info string
}

// mdbProcesses returns the server's process list.
func mdbProcesses(ctx context.Context, admin *sql.DB) ([]mdbProcess, error) {
	rows, err := admin.QueryContext(ctx, "SELECT ID, USER, COALESCE(STATE, ''), COALESCE(INFO, '') FROM information_schema.PROCESSLIST")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ps []mdbProcess
	for rows.Next() {
		var p mdbProcess
		if err := rows.Scan(&p.id, &p.user, &p.state, &p.info); err != nil {
			return nil, err
		}
		ps = append(ps, p)
	}
	return ps, rows.Err()
}

// mdbAwaitProcess polls the process list until a process matches, and
// returns it. It fails after dbTestTimeout. It uses no t.Fatal, so
// callbacks may call it.
func mdbAwaitProcess(ctx context.Context, admin *sql.DB, what string, match func(mdbProcess) bool) (mdbProcess, error) {
	ctx, cancel := context.WithTimeout(ctx, dbTestTimeout)
	defer cancel()
	var last []mdbProcess
	for {
		ps, err := mdbProcesses(ctx, admin)
		if err != nil {
			return mdbProcess{}, fmt.Errorf("await %s: %w", what, err)
		}
		for _, p := range ps {
			if match(p) {
				return p, nil
			}
		}
		last = ps
		select {
		case <-ctx.Done():
			return mdbProcess{}, fmt.Errorf("await %s: not in the process list within %v: %+v", what, dbTestTimeout, last)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// mdbStatement is a statement that runs on a session of its own, in the
// background.
type mdbStatement struct {
	query string
	id    int64         // the session's process id
	done  chan struct{} // closed when the statement returned
	err   error         // what it returned; read after done
}

// running reports whether the statement has not returned yet.
func (s *mdbStatement) running() bool {
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

// mdbStart runs query on a session of db of its own, in a goroutine that the
// test waits for, and returns once the server shows the query in its process
// list with a state for which inState is true. lockWait is the session's
// lock_wait_timeout in seconds. If the test ends while the query runs, the
// query is killed. mdbStart uses no t.Fatal, so callbacks may call it.
func mdbStart(t *testing.T, db, admin *sql.DB, query string, lockWait int, inState func(string) bool) (*mdbStatement, error) {
	s := &mdbStatement{query: query, done: make(chan struct{})}
	ctx, cancel := context.WithTimeout(context.Background(), 2*dbTestTimeout)
	conn, err := db.Conn(ctx)
	if err == nil {
		_, err = conn.ExecContext(ctx, fmt.Sprintf("SET SESSION lock_wait_timeout = %d", lockWait))
		if err == nil {
			err = conn.QueryRowContext(ctx, "SELECT CONNECTION_ID()").Scan(&s.id)
		}
		if err != nil {
			_ = conn.Close()
		}
	}
	if err != nil {
		cancel()
		return nil, fmt.Errorf("start %s: %w", query, err)
	}
	go func() {
		defer close(s.done)
		defer cancel()
		defer conn.Close()
		_, s.err = conn.ExecContext(ctx, query)
	}()
	t.Cleanup(func() {
		if s.running() {
			_, _ = admin.ExecContext(context.Background(), fmt.Sprintf("KILL QUERY %d", s.id))
		}
		<-s.done
	})
	_, err = mdbAwaitProcess(t.Context(), admin, query, func(p mdbProcess) bool { return p.id == s.id && p.info == query && inState(p.state) })
	return s, err
}

// kill ends the statement with KILL QUERY, if it runs, and waits for it to
// return.
func (s *mdbStatement) kill(t *testing.T, admin *sql.DB) {
	t.Helper()
	if s.running() {
		_, err := admin.ExecContext(t.Context(), fmt.Sprintf("KILL QUERY %d", s.id))
		require.NoError(t, err)
	}
	<-s.done
}

// mdbState returns a predicate that is true for exactly state.
func mdbState(state string) func(string) bool { return func(s string) bool { return s == state } }

// mdbRequireReleased checks, after a plan, that the hook left nothing behind:
// no session of user, the writer can write, and a new backup can start.
func mdbRequireReleased(t *testing.T, admin, writer *sql.DB, user string) {
	t.Helper()
	myRequireUnlocked(t, admin, writer, user)
	mdbRequireNoBackup(t, admin)
}

// mdbRequireNoBackup checks that no session of the server is in a backup
// stage: another one can start at once.
func mdbRequireNoBackup(t *testing.T, admin *sql.DB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), dbTestTimeout)
	defer cancel()
	conn, err := admin.Conn(ctx)
	require.NoError(t, err)
	defer conn.Close()
	_, err = conn.ExecContext(ctx, "SET SESSION lock_wait_timeout = 1")
	require.NoError(t, err)
	_, err = conn.ExecContext(ctx, "BACKUP STAGE START")
	require.NoError(t, err, "another session is still in a backup stage")
	_, err = conn.ExecContext(ctx, "BACKUP STAGE END")
	require.NoError(t, err)
}

func TestMariaDBBackupStageVersionCheck(t *testing.T) {
	for _, c := range []struct {
		version string
		want    string // "" for ok, else a part of the error
	}{
		{"10.4.1-MariaDB", ""},
		{"10.4.34-MariaDB-1:10.4.34+maria~ubu2004", ""},
		{"10.11.19-MariaDB-0+deb12u1", ""},
		{"11.4.2-MariaDB-log", ""},
		{"5.5.5-10.6.18-MariaDB", ""},
		{"10.5.0-mariadb", ""},
		{"12.0.1-MariaDB", ""},
		{"10.4.0-MariaDB", `server is "10.4.0-MariaDB" (too old`},
		{"10.3.39-MariaDB-0+deb10u2", `server is "10.3.39-MariaDB-0+deb10u2" (too old`},
		{"5.5.68-MariaDB", "too old"},
		{"9.9.9-MariaDB", "too old"},
		{"8.0.36", `server is "8.0.36" (not MariaDB: MySQL and its forks have no BACKUP STAGE; use mysql-lock-tables)`},
		{"8.0.36-0ubuntu0.22.04.1", "not MariaDB"},
		{"8.0.35-27", "not MariaDB"}, // Percona Server
		{"5.7.44-log", "not MariaDB"},
		{"MariaDB", "cannot read its version number"},
		{"10.x-MariaDB", "cannot read its version number"},
		{"10.11-MariaDB", "cannot read its version number"},
		{"", "not MariaDB"},
	} {
		t.Run(c.version, func(t *testing.T) {
			err := checkBackupStageVersion(c.version)
			if c.want == "" {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			require.True(t, strings.HasPrefix(err.Error(), "mariadb-backup-stage needs MariaDB 10.4.1 or later: server is "), err.Error())
			require.Contains(t, err.Error(), c.want)
		})
	}
}

func TestMariaDBBackupStageConfig(t *testing.T) {
	const secret = "s3cret-mdb-config"
	t.Run("same_keys_as_mysql_lock_tables", func(t *testing.T) {
		list, err := ParseHookList([]byte(`
- type: mariadb-backup-stage
  dsn: "snap:` + secret + `@tcp(db1:3306)/"
  timeout: 1m
  err_is_fatal: true
  post_on_pre_error: true
  filesystems: {"tank/mariadb<": true}
`))
		require.NoError(t, err)
		hooks, err := ListFromConfig(&list)
		require.NoError(t, err)
		require.Len(t, *hooks, 1)
		h, ok := (*hooks)[0].(*MariaDBBackupStage)
		require.True(t, ok, "%T", (*hooks)[0])
		require.True(t, strings.HasPrefix(h.String(), "MariaDB BACKUP STAGE (snap@db1:3306"), h.String())
		require.Equal(t, time.Minute, h.Timeout())
		require.True(t, h.ErrIsFatal())
		require.True(t, h.PostOnPreError())
		require.NotContains(t, list[0].String(), secret)
	})
	t.Run("default_timeout", func(t *testing.T) {
		h := mdbHook(t, "snap:"+secret+"@tcp(db1:3306)/", 0, false)
		require.Equal(t, DefaultHookTimeout, h.Timeout())
	})
	for _, c := range []struct {
		name, yaml, want string
	}{
		{"dsn_is_required", "- type: mariadb-backup-stage\n  filesystems: {tank<: true}\n", "hook #1 (line 1): dsn: required for a mariadb-backup-stage hook"},
		{"filesystems_are_required", "- type: mariadb-backup-stage\n  dsn: u@tcp(db)/\n", "hook #1 (line 1): filesystems: required for a mariadb-backup-stage hook"},
		{"path_is_not_allowed", "- type: mariadb-backup-stage\n  dsn: u@tcp(db)/\n  path: /bin/true\n  filesystems: {tank<: true}\n", "hook #1 (line 3): path: not allowed for a mariadb-backup-stage hook"},
		{"dsn_must_parse", "- type: mariadb-backup-stage\n  dsn: u:" + secret + "@tcp(db\n  filesystems: {tank<: true}\n", "hook #1 (line 2): dsn: cannot parse MySQL DSN"},
		{"unknown_type_lists_it", "- type: mariadb\n", `(want "command", "postgres-checkpoint", "mysql-lock-tables", "mariadb-backup-stage", "fsfreeze" or "qemu-guest-agent")`},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseHookList([]byte(c.yaml))
			require.Error(t, err)
			require.Contains(t, err.Error(), c.want)
			require.NotContains(t, err.Error(), secret)
		})
	}
	t.Run("dsn_shown_by_target", func(t *testing.T) {
		cfg := HookConfig{Type: TypeMariaDBBackupStage, DSN: "snap:" + secret + "@tcp(db1:3306)/", Filesystems: dbTestFilter}
		require.NoError(t, cfg.Validate())
		require.NotContains(t, cfg.String(), secret)
	})
}

// TestMariaDBBackupStageBlocksCommitsDuringCallback: with the RELOAD-only
// user, the pre edge enters BLOCK_COMMIT; a commit of another session waits
// during the callback and goes through after the post edge.
func TestMariaDBBackupStageBlocksCommitsDuringCallback(t *testing.T) {
	admin, writer := mysqlAdmin(t), myWriter(t)
	dsn, user, password := myHookDSN(t)

	myRequireReloadOnly(t, admin, user)

	const note = "committed after the backup stage"
	insert := "INSERT INTO " + myProbeTable + " (note) VALUES ('" + note + "')"
	var waiting *mdbStatement
	ran := false
	held := myLockHeldCallback(t, admin, writer, user, &ran)
	cb := func(ctx context.Context) error {
		if err := held(ctx); err != nil {
			return err
		}
		// An autocommit INSERT runs, and its commit waits for the backup lock.
		var err error
		waiting, err = mdbStart(t, writer, admin, insert, int(dbTestTimeout/time.Second), mdbState("Waiting for backup lock"))
		if err != nil {
			return err
		}
		if !waiting.running() {
			t.Errorf("the INSERT returned during the callback: %v", waiting.err)
		}
		return nil
	}
	run := dbRunPlan(t, t.Context(), List{mdbHook(t, dsn, 10*time.Second, true)}, cb, false)

	require.True(t, ran, "callback ran")
	require.Equal(t, []StepStatus{StepOk, StepOk, StepOk}, dbStatuses(run.report))
	require.True(t, strings.HasPrefix(run.report[0].Hook.String(), "MariaDB BACKUP STAGE ("), run.report[0].Hook.String())
	require.Contains(t, run.report.String(), "[Post]  MariaDB BACKUP STAGE END ("+user+"@127.0.0.1:")
	require.Equal(t, "BACKUP STAGE BLOCK_COMMIT", run.report[0].Report.String())
	require.Equal(t, "BACKUP STAGE END", run.report[2].Report.String())

	require.NotNil(t, waiting)
	<-waiting.done
	require.NoError(t, waiting.err, "the INSERT that waited during the callback")
	var n int
	require.NoError(t, writer.QueryRowContext(t.Context(), "SELECT COUNT(*) FROM "+myProbeTable+" WHERE note = ?", note).Scan(&n))
	require.Positive(t, n, "the waiting INSERT was committed after the post edge")
	mdbRequireReleased(t, admin, writer, user)
	dbRequireNoSecret(t, password, run)
}

// TestMariaDBBackupStageStages checks what each stage blocks, on the server,
// right after the pre edge entered it: InnoDB and crash-safe Aria tables
// keep taking writes until BLOCK_COMMIT, a non-transactional (MyISAM) table
// is blocked from FLUSH on, DDL from BLOCK_DDL on.
func TestMariaDBBackupStageStages(t *testing.T) {
	admin, writer := mysqlAdmin(t), myWriter(t)
	dsn, user, password := myHookDSN(t)
	const myisam, aria = "snaphooks_backup_stage_myisam", "snaphooks_backup_stage_aria"
	_, err := writer.ExecContext(t.Context(), "CREATE TABLE IF NOT EXISTS "+myisam+" (id INT) ENGINE=MyISAM")
	require.NoError(t, err)
	_, err = writer.ExecContext(t.Context(), "CREATE TABLE IF NOT EXISTS "+aria+" (id INT) ENGINE=Aria TRANSACTIONAL=1")
	require.NoError(t, err)

	// try runs stmt as the writer, waiting at most a second for a lock.
	try := func(ctx context.Context, stmt string) error { return myTry(ctx, writer, stmt) }
	innodb := "INSERT INTO " + myProbeTable + " (note) VALUES ('between the stages')"
	crashSafe := "INSERT INTO " + aria + " (id) VALUES (1)"
	nontrans := "INSERT INTO " + myisam + " (id) VALUES (1)"
	ddl := "CREATE TABLE snaphooks_backup_stage_ddl (id INT)"
	want := map[string]map[string]bool{ // stage → statement → blocked
		"BACKUP STAGE START":        {innodb: false, crashSafe: false, nontrans: false},
		"BACKUP STAGE FLUSH":        {innodb: false, crashSafe: false, nontrans: true},
		"BACKUP STAGE BLOCK_DDL":    {innodb: false, crashSafe: false, nontrans: true, ddl: true},
		"BACKUP STAGE BLOCK_COMMIT": {innodb: true, crashSafe: true, nontrans: true, ddl: true},
	}
	var seen []string
	h := mdbHook(t, dsn, 10*time.Second, true)
	h.afterStage = func(stage string) {
		seen = append(seen, stage)
		for stmt, blocked := range want[stage] {
			err := try(t.Context(), stmt)
			switch {
			case blocked && !myIsLockWaitTimeout(err):
				t.Errorf("after %s: %s: got %v, want a lock wait timeout (1205)", stage, stmt, err)
			case !blocked && err != nil:
				t.Errorf("after %s: %s: %v", stage, stmt, err)
			}
		}
	}
	run := dbRunPlan(t, t.Context(), List{h}, nil, false)

	require.Equal(t, []StepStatus{StepOk, StepOk, StepOk}, dbStatuses(run.report))
	require.Equal(t, []string{"BACKUP STAGE START", "BACKUP STAGE FLUSH", "BACKUP STAGE BLOCK_DDL", "BACKUP STAGE BLOCK_COMMIT"}, seen)
	mdbRequireReleased(t, admin, writer, user)
	require.NoError(t, try(t.Context(), nontrans), "the MyISAM table after the post edge")
	dbRequireNoSecret(t, password, run)
}

// TestMariaDBBackupStageDoesNotWaitForLongStatements compares the pre edges
// of mariadb-backup-stage and mysql-lock-tables while another session runs a
// long statement on an InnoDB table.
//
// A long read delays neither on MariaDB: since 10.4, FLUSH TABLES WITH READ
// LOCK no longer waits for read-only statements (on MySQL it does, in state
// "Waiting for table flush"). A long write is the difference: FLUSH TABLES
// WITH READ LOCK waits for it to end ("Waiting for backup lock"), and every
// other writer queues up behind; the backup stages do not wait for it.
func TestMariaDBBackupStageDoesNotWaitForLongStatements(t *testing.T) {
	admin, writer := mysqlAdmin(t), myWriter(t)
	dsn, user, password := myHookDSN(t)
	_, err := writer.ExecContext(t.Context(), "INSERT INTO "+myProbeTable+" (note) VALUES ('row for the long read')")
	require.NoError(t, err)
	hourLong := int(time.Hour / time.Second)

	// backupStageDoesNotWait runs a plan of the backup-stage hook while long
	// runs, and checks in the callback that long is still running.
	backupStageDoesNotWait := func(t *testing.T, long *mdbStatement) {
		t.Helper()
		cb := func(ctx context.Context) error {
			if !long.running() {
				return fmt.Errorf("the long statement returned before the callback: %v", long.err)
			}
			_, err := mdbAwaitProcess(ctx, admin, long.query, func(p mdbProcess) bool { return p.id == long.id && p.info == long.query })
			return err
		}
		run := dbRunPlan(t, t.Context(), List{mdbHook(t, dsn, 10*time.Second, true)}, cb, false)
		require.Equal(t, []StepStatus{StepOk, StepOk, StepOk}, dbStatuses(run.report))
		require.True(t, long.running(), "the long statement is still running after the plan")
		dbRequireNoSecret(t, password, run)
	}

	t.Run("long_read_delays_neither", func(t *testing.T) {
		long, err := mdbStart(t, writer, admin, fmt.Sprintf("SELECT SLEEP(%d) FROM %s LIMIT 1", hourLong, myProbeTable), 1, mdbState("User sleep"))
		require.NoError(t, err)
		backupStageDoesNotWait(t, long)

		// MariaDB >= 10.4: FLUSH TABLES WITH READ LOCK does not wait for reads either.
		cb := func(ctx context.Context) error {
			if !long.running() {
				return fmt.Errorf("the long read returned before the callback: %v", long.err)
			}
			return nil
		}
		run := dbRunPlan(t, t.Context(), List{myHook(t, dsn, 10*time.Second, true)}, cb, false)
		require.Equal(t, []StepStatus{StepOk, StepOk, StepOk}, dbStatuses(run.report))
		require.True(t, long.running())

		long.kill(t, admin)
		mdbRequireReleased(t, admin, writer, user)
	})

	t.Run("long_write_delays_flush_tables_with_read_lock_only", func(t *testing.T) {
		query := fmt.Sprintf("INSERT INTO %s (note) SELECT 'long write' FROM DUAL WHERE SLEEP(%d) = 0", myProbeTable, hourLong)
		long, err := mdbStart(t, writer, admin, query, 1, mdbState("User sleep"))
		require.NoError(t, err)
		backupStageDoesNotWait(t, long)

		// FLUSH TABLES WITH READ LOCK waits for the long write, until it ends.
		my := myHook(t, dsn, dbTestTimeout, true)
		state := map[interface{}]interface{}{}
		logger, buf := testLogger()
		ctx := WithLogger(t.Context(), logger)
		preDone := make(chan HookReport, 1)
		go func() { preDone <- my.Run(ctx, Pre, PhaseSnapshot, false, Env{EnvFS: dbTestFS}, state) }()
		var pre HookReport
		t.Cleanup(func() {
			// Whatever failed: end the long write, so that the pre edge ends,
			// and release the lock it may have taken.
			if pre == nil {
				long.kill(t, admin)
				<-preDone
			}
			_ = my.Run(context.Background(), Post, PhaseSnapshot, false, Env{EnvFS: dbTestFS}, state)
		})

		_, err = mdbAwaitProcess(t.Context(), admin, "FLUSH TABLES WITH READ LOCK waiting", func(p mdbProcess) bool {
			return p.user == user && p.info == mysqlLockStmt && p.state == "Waiting for backup lock"
		})
		require.NoError(t, err)
		select {
		case rep := <-preDone:
			pre = rep
			t.Fatalf("the FLUSH TABLES WITH READ LOCK pre edge returned while the long write ran: %s", rep)
		default:
		}
		require.True(t, long.running())

		long.kill(t, admin)
		var mysqlErr *mysql.MySQLError
		require.ErrorAs(t, long.err, &mysqlErr, "the killed write")
		require.Equal(t, uint16(1317), mysqlErr.Number, "query execution was interrupted: %v", long.err)
		pre = <-preDone
		require.False(t, pre.HadError(), "FLUSH TABLES WITH READ LOCK after the long write ended: %s", pre.Error())
		post := my.Run(ctx, Post, PhaseSnapshot, false, Env{EnvFS: dbTestFS}, state)
		require.False(t, post.HadError(), post.Error())
		require.NotContains(t, buf.String(), password)
		mdbRequireReleased(t, admin, writer, user)
	})
}

// TestMariaDBBackupStageNeedsReload: a user without RELOAD fails at the first
// stage, with the server's error that names the privilege, and leaves no
// session behind.
func TestMariaDBBackupStageNeedsReload(t *testing.T) {
	admin, writer := mysqlAdmin(t), myWriter(t)
	dsn := dsnFromEnv(t, "SNAPHOOKS_TEST_MYSQL_WRITER_DSN")
	cfg, err := mysql.ParseDSN(dsn)
	require.NoError(t, err)

	run := dbRunPlan(t, t.Context(), List{mdbHook(t, dsn, 10*time.Second, true)}, nil, false)

	require.Equal(t, []StepStatus{StepErr, StepSkippedDueToFatalErr, StepSkippedDueToFatalErr}, dbStatuses(run.report))
	msg := run.report[0].Report.Error()
	require.True(t, strings.HasPrefix(msg, "BACKUP STAGE START: "), msg)
	require.Contains(t, msg, "RELOAD privilege")
	require.True(t, mysqlIsDenied(run.report[0].Report.(*MariaDBBackupStageReport).Err), msg)
	mdbRequireNoBackup(t, admin)
	require.NoError(t, myTryInsert(t.Context(), writer))
	dbRequireNoSecret(t, cfg.Passwd, run)
}

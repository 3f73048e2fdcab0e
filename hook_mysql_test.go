package hooks

// Integration tests of the mysql-lock-tables hook against the MariaDB server
// that scripts/test.sh starts (see dbenv_test.go) and against private
// throwaway servers that a test may kill.
//
// The tests do not run in parallel: the lock under test is global to the
// server. Whether the lock is held is asked of the server itself: a writer
// session with lock_wait_timeout=1 tries an INSERT.

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/stretchr/testify/require"
)

// myProbeTable is the table the writer inserts into, in database snaphooks_test.
const myProbeTable = "snaphooks_lock_probe"

// myHook returns the mysql-lock-tables hook for dsn, built from its
// configuration as a daemon would.
func myHook(t *testing.T, dsn string, timeout time.Duration, fatal bool) *MySQLLockTables {
	return dbHookFromConfig[*MySQLLockTables](t, TypeMySQLLockTables, dsn, timeout, fatal)
}

// dbHookFromConfig returns the database hook of type typ for dsn, with the
// filesystems dbTestFilter, built from its configuration as a daemon would.
func dbHookFromConfig[H Hook](t *testing.T, typ, dsn string, timeout time.Duration, fatal bool) H {
	t.Helper()
	h, err := HookFromConfig(HookConfig{Type: typ, DSN: dsn, Timeout: timeout, ErrIsFatal: fatal, Filesystems: dbTestFilter})
	require.NoError(t, err)
	require.IsType(t, *new(H), h)
	return h.(H)
}

// myHookDSN returns the DSN of the RELOAD-only user, and its user and password.
func myHookDSN(t *testing.T) (dsn, user, password string) {
	t.Helper()
	dsn = dsnFromEnv(t, "SNAPHOOKS_TEST_MYSQL_DSN")
	cfg, err := mysql.ParseDSN(dsn)
	require.NoError(t, err)
	require.NotEmpty(t, cfg.Passwd, "SNAPHOOKS_TEST_MYSQL_DSN has no password to check for leaks")
	// Tests count the user's sessions: let those of an earlier test end.
	ids, err := myAwaitNoSessions(t.Context(), mysqlAdmin(t), cfg.User)
	require.NoError(t, err)
	require.Empty(t, ids, "sessions of %s left by an earlier test", cfg.User)
	return dsn, cfg.User, cfg.Passwd
}

// myWriter returns the writer's pool, with the probe table created.
func myWriter(t *testing.T) *sql.DB {
	t.Helper()
	w := mysqlOpen(t, "SNAPHOOKS_TEST_MYSQL_WRITER_DSN")
	ctx, cancel := context.WithTimeout(t.Context(), dbTestTimeout)
	defer cancel()
	_, err := w.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS "+myProbeTable+" (id INT AUTO_INCREMENT PRIMARY KEY, note VARCHAR(100)) ENGINE=InnoDB")
	require.NoError(t, err)
	return w
}

// myTryInsert inserts a row as the writer, waiting at most a second for a
// lock. It uses no t.Fatal, so callbacks may call it.
func myTryInsert(ctx context.Context, writer *sql.DB) error {
	return myTry(ctx, writer, "INSERT INTO "+myProbeTable+" (note) VALUES ('probe')")
}

// myTry runs stmt on a session of writer of its own, waiting at most a
// second for a lock.
func myTry(ctx context.Context, writer *sql.DB, stmt string) error {
	ctx, cancel := context.WithTimeout(ctx, dbTestTimeout)
	defer cancel()
	conn, err := writer.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "SET SESSION lock_wait_timeout = 1"); err != nil {
		return err
	}
	_, err = conn.ExecContext(ctx, stmt)
	return err
}

// myIsLockWaitTimeout reports whether err is ER_LOCK_WAIT_TIMEOUT (1205).
func myIsLockWaitTimeout(err error) bool {
	var myErr *mysql.MySQLError
	return errors.As(err, &myErr) && myErr.Number == 1205
}

// mySessions returns the ids of the server's sessions of user.
func mySessions(ctx context.Context, admin *sql.DB, user string) ([]int64, error) {
	ps, err := mdbProcesses(ctx, admin)
	if err != nil {
		return nil, err
	}
	var ids []int64
	for _, p := range ps {
		if p.user == user {
			ids = append(ids, p.id)
		}
	}
	return ids, nil
}

// myAwaitNoSessions waits, for up to 10s, until the server lists no session
// of user, and returns those it still lists then. A session that the client
// closed leaves the processlist only once the server has handled the
// disconnect, which a loaded machine delays.
func myAwaitNoSessions(ctx context.Context, admin *sql.DB, user string) ([]int64, error) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		ids, err := mySessions(ctx, admin, user)
		if err != nil || len(ids) == 0 || time.Now().After(deadline) {
			return ids, err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// myRequireUnlocked checks, after a plan, that the hook left nothing behind
// on the server: no session of user, and the writer can write.
func myRequireUnlocked(t *testing.T, admin, writer *sql.DB, user string) {
	t.Helper()
	ids, err := myAwaitNoSessions(t.Context(), admin, user)
	require.NoError(t, err)
	require.Empty(t, ids, "sessions of %s outlived the plan", user)
	require.NoError(t, myTryInsert(t.Context(), writer), "the writer is still blocked after the plan")
}

// myLockHeldCallback returns a callback that checks, on the server, that the
// hook's session exists and blocks the writer, and records that it ran.
func myLockHeldCallback(t *testing.T, admin, writer *sql.DB, user string, ran *bool) HookJobCallback {
	return func(ctx context.Context) error {
		*ran = true
		ids, err := mySessions(ctx, admin, user)
		if err != nil || len(ids) != 1 {
			t.Errorf("during the callback: sessions of %s: %v, %v; want exactly one", user, ids, err)
		}
		if err := myTryInsert(ctx, writer); !myIsLockWaitTimeout(err) {
			t.Errorf("during the callback: INSERT from another session: got %v, want a lock wait timeout (1205)", err)
		}
		return nil
	}
}

// myNoLockCallback returns the callback of a dry run: it checks, on the
// server, that the hook keeps no session and the writer can write, and
// records that it ran.
func myNoLockCallback(t *testing.T, admin, writer *sql.DB, user string, ran *bool) HookJobCallback {
	return func(ctx context.Context) error {
		*ran = true
		if ids, err := myAwaitNoSessions(ctx, admin, user); err != nil || len(ids) != 0 {
			t.Errorf("during the dry-run callback: sessions of %s: %v, %v; want none", user, ids, err)
		}
		if err := myTryInsert(ctx, writer); err != nil {
			t.Errorf("during the dry-run callback: INSERT: %v", err)
		}
		return nil
	}
}

// myWriteScript writes an executable shell script with body to a temp dir
// and returns its path.
func myWriteScript(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "hook.sh")
	require.NoError(t, os.WriteFile(path, []byte("#!/bin/sh\n"+body+"\n"), 0o755))
	return path
}

func TestMySQLLockBlocksWritersDuringCallback(t *testing.T) {
	admin, writer := mysqlAdmin(t), myWriter(t)
	dsn, user, password := myHookDSN(t)

	myRequireReloadOnly(t, admin, user)

	ran := false
	run := dbRunPlan(t, t.Context(), List{myHook(t, dsn, 10*time.Second, true)}, myLockHeldCallback(t, admin, writer, user, &ran), false)

	require.True(t, ran, "callback ran")
	require.Equal(t, []StepStatus{StepOk, StepOk, StepOk}, dbStatuses(run.report))
	require.Equal(t, "FLUSH TABLES WITH READ LOCK", run.report[0].Report.String())
	require.Equal(t, "UNLOCK TABLES", run.report[2].Report.String())
	require.Equal(t, "", run.report[2].Report.Error())
	cfg, err := mysql.ParseDSN(dsn)
	require.NoError(t, err)
	require.Equal(t, "MySQL FLUSH TABLES WITH READ LOCK ("+user+"@"+cfg.Addr+")", run.report[0].Hook.String())
	require.Contains(t, run.report.String(), "[Pre]  MySQL FLUSH TABLES WITH READ LOCK ("+user+"@127.0.0.1:")
	// The post edge is named by what it does, in the text, the JSON and the logs.
	require.Contains(t, run.report.String(), "[Post]  MySQL UNLOCK TABLES ("+user+"@127.0.0.1:")
	js, err := json.Marshal(run.report[2])
	require.NoError(t, err)
	require.Contains(t, string(js), `"hook":"MySQL UNLOCK TABLES (`+user+`@127.0.0.1:`)
	require.Contains(t, run.logs, `hook="MySQL UNLOCK TABLES (`+user+`@127.0.0.1:`)
	myRequireUnlocked(t, admin, writer, user)
	dbRequireNoSecret(t, password, run)
}

// TestMySQLConcurrentPlansShareOneHook: one hook, several plans at once,
// as in a daemon that snapshots many filesystems. Each plan locks and
// unlocks its own session.
func TestMySQLConcurrentPlansShareOneHook(t *testing.T) {
	admin, writer := mysqlAdmin(t), myWriter(t)
	dsn, user, password := myHookDSN(t)
	const n = 3
	hook := myHook(t, dsn, 10*time.Second, true)
	fs, err := NewDatasetPath(dbTestFS)
	require.NoError(t, err)

	// Every callback waits until all n plans hold their lock.
	var locked sync.WaitGroup
	locked.Add(n)
	allLocked := make(chan struct{})
	go func() { locked.Wait(); close(allLocked) }()
	// The first query of any callback runs before any plan unlocks: the
	// most sessions a callback saw is the number of locks held at once.
	var (
		mu          sync.Mutex
		maxSessions int
	)
	cb := func(ctx context.Context) error {
		locked.Done()
		select {
		case <-allLocked:
		case <-time.After(dbTestTimeout):
			return errors.New("the other plans did not take their lock")
		}
		ids, err := mySessions(ctx, admin, user)
		if err != nil {
			return err
		}
		mu.Lock()
		maxSessions = max(maxSessions, len(ids))
		mu.Unlock()
		return nil
	}

	logger, buf := testLogger()
	plans := make([]*Plan, n)
	for i := range plans {
		plans[i], err = NewPlan(&List{hook}, PhaseSnapshot, NewCallbackHookForFilesystem("snapshot", fs, cb), Env{EnvFS: dbTestFS})
		require.NoError(t, err)
	}
	var wg sync.WaitGroup
	for _, p := range plans {
		wg.Add(1)
		go func() { defer wg.Done(); p.Run(WithLogger(t.Context(), logger), false) }()
	}
	wg.Wait()

	require.Equal(t, n, maxSessions, "sessions of %s while every plan held its lock", user)
	for _, p := range plans {
		run := dbPlanRun{report: p.Report(), logs: buf.String()}
		require.Equal(t, []StepStatus{StepOk, StepOk, StepOk}, dbStatuses(run.report), "%s", run.report)
		dbRequireNoSecret(t, password, run)
	}
	myRequireUnlocked(t, admin, writer, user)
}

func TestMySQLWrongPassword(t *testing.T) {
	dsn, _, _ := myHookDSN(t)
	cfg, err := mysql.ParseDSN(dsn)
	require.NoError(t, err)
	cfg.Passwd = "wrong-s3cret-my"

	run := dbRunPlan(t, t.Context(), List{myHook(t, cfg.FormatDSN(), 10*time.Second, true)}, nil, false)

	require.Equal(t, []StepStatus{StepErr, StepSkippedDueToFatalErr, StepSkippedDueToFatalErr}, dbStatuses(run.report))
	msg := run.report[0].Report.Error()
	require.True(t, strings.HasPrefix(msg, "FLUSH TABLES WITH READ LOCK: connect: "), msg)
	require.Contains(t, msg, "Access denied")
	dbRequireNoSecret(t, cfg.Passwd, run)
}

func TestMySQLUnreachableServer(t *testing.T) {
	const (
		secret  = "s3cret-my-unreachable"
		timeout = time.Second
		slack   = 3 * time.Second // a loaded machine under -race
	)
	for name, port := range map[string]int{"closed_port": dbClosedPort(t), "blackhole_that_never_answers": dbBlackhole(t)} {
		t.Run(name+"_is_a_fatal_pre_error", func(t *testing.T) {
			dsn := fmt.Sprintf("snap:%s@tcp(127.0.0.1:%d)/", secret, port)
			run := dbRunPlan(t, t.Context(), List{myHook(t, dsn, timeout, true)}, nil, false)

			require.Equal(t, []StepStatus{StepErr, StepSkippedDueToFatalErr, StepSkippedDueToFatalErr}, dbStatuses(run.report))
			require.Less(t, run.elapsed, timeout+slack)
			msg := run.report[0].Report.Error()
			require.True(t, strings.HasPrefix(msg, "FLUSH TABLES WITH READ LOCK: "), msg)
			dbRequireNoSecret(t, secret, run)
		})
	}
}

// myPrivateServer is a MariaDB server of one test, which the test may kill.
type myPrivateServer struct {
	dsn, user, password string  // of a user with only RELOAD, over TCP
	root                *sql.DB // root over the unix socket, for the test's queries
	kill                func()  // SIGKILL and reap the server; idempotent
}

// myStartPrivateServer starts a MariaDB server with its data in a temp dir
// on a free port of 127.0.0.1, and a user with only RELOAD. The server is
// killed when the test ends, if the test did not kill it.
func myStartPrivateServer(t *testing.T) *myPrivateServer {
	t.Helper()
	mariadbd := dsnFromEnv(t, "SNAPHOOKS_TEST_MARIADBD")
	installDB := dsnFromEnv(t, "SNAPHOOKS_TEST_MARIADB_INSTALL_DB")
	dir := t.TempDir()
	data, tmp := filepath.Join(dir, "data"), filepath.Join(dir, "tmp")
	sock, errLog := filepath.Join(dir, "mysqld.sock"), filepath.Join(dir, "server.log")
	require.NoError(t, os.MkdirAll(tmp, 0o700))
	common := []string{
		"--no-defaults", "--datadir=" + data, "--tmpdir=" + tmp,
		"--innodb-buffer-pool-size=32M", "--innodb-log-file-size=16M", "--performance-schema=OFF",
		"--skip-log-bin", "--skip-name-resolve",
	}
	if os.Geteuid() == 0 {
		common = append(common, "--user=root") // the temp dir is not the mysql user's
	}

	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	install := exec.CommandContext(ctx, installDB, append(common, "--auth-root-authentication-method=normal", "--skip-test-db")...)
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", installDB, err, out)
	}

	port := dbClosedPort(t)
	srv := exec.Command(mariadbd, append(common,
		"--socket="+sock, fmt.Sprintf("--port=%d", port), "--bind-address=127.0.0.1", "--skip-networking=0",
		"--pid-file="+filepath.Join(dir, "mysqld.pid"), "--log-error="+errLog)...)
	require.NoError(t, srv.Start())
	exited := make(chan struct{})
	go func() { _ = srv.Wait(); close(exited) }()
	var once sync.Once
	kill := func() {
		once.Do(func() {
			_ = srv.Process.Kill()
			<-exited
		})
	}
	t.Cleanup(kill)

	root, err := sql.Open("mysql", "root@unix("+sock+")/")
	require.NoError(t, err)
	t.Cleanup(func() { _ = root.Close() })
	root.SetMaxIdleConns(0) // no idle connection to a killed server
	for {
		pctx, pcancel := context.WithTimeout(ctx, time.Second)
		err := root.PingContext(pctx)
		pcancel()
		if err == nil {
			break
		}
		select {
		case <-exited:
			log, _ := os.ReadFile(errLog)
			t.Fatalf("mariadbd exited before it was ready: %v\n%s", err, log)
		case <-ctx.Done():
			log, _ := os.ReadFile(errLog)
			t.Fatalf("mariadbd not ready within a minute: %v\n%s", err, log)
		case <-time.After(50 * time.Millisecond):
		}
	}

	p := &myPrivateServer{user: "snaphooks_private", password: "s3cret-my-private", root: root, kill: kill}
	for _, q := range []string{
		fmt.Sprintf("CREATE USER '%s'@'127.0.0.1' IDENTIFIED BY '%s'", p.user, p.password),
		fmt.Sprintf("GRANT RELOAD ON *.* TO '%s'@'127.0.0.1'", p.user),
	} {
		_, err := root.ExecContext(ctx, q)
		require.NoError(t, err)
	}
	p.dsn = fmt.Sprintf("%s:%s@tcp(127.0.0.1:%d)/", p.user, p.password, port)
	return p
}

package hooks

// Tests that every hook holding a lock on a MySQL or MariaDB session
// (mysql-lock-tables, mariadb-backup-stage) must pass alike, run over both
// hook types against the MariaDB server that scripts/test.sh starts (see
// dbenv_test.go) and against private servers that a test may kill
// (myStartPrivateServer). What is held is asked of the server: the
// sessions of the hook's user, and a writer session that tries an INSERT.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/stretchr/testify/require"
)

// lockHookType is a hook type that holds a lock on a session, with what its
// tests expect of it.
type lockHookType struct {
	typ      string // the hook type, also the subtest's name
	newHook  func(t *testing.T, dsn string, timeout time.Duration, fatal bool) Hook
	name     string // String without the target
	postName string // EdgeString(Post) without the target
	first    string // What of a pre edge that failed before it locked
	locked   string // What of a pre edge that took the lock
	unlock   string // What of the post edge
	dryRun   string // What of a dry-run pre edge
	// blocker is a statement of another session that makes the pre edge
	// wait for its lock; unblock ends it.
	blocker, unblock string
	// released checks, after a plan, that the hook left nothing behind.
	released func(t *testing.T, admin, writer *sql.DB, user string)
	// panicPaths are the paths on which the pre edge panics after it took
	// (part of) its lock.
	panicPaths func(writer *sql.DB) []lockPath
}

func lockHookTypes() []lockHookType {
	return []lockHookType{{
		typ: TypeMySQLLockTables,
		newHook: func(t *testing.T, dsn string, timeout time.Duration, fatal bool) Hook {
			return myHook(t, dsn, timeout, fatal)
		},
		name:     "MySQL FLUSH TABLES WITH READ LOCK",
		postName: "MySQL UNLOCK TABLES",
		first:    mysqlLockStmt, locked: mysqlLockStmt, unlock: mysqlUnlockStmt,
		dryRun:  "FLUSH TABLES WITH READ LOCK (dry run: connected and pinged, took no lock)",
		blocker: "LOCK TABLES snaphooks_test." + myProbeTable + " WRITE", unblock: "UNLOCK TABLES",
		released: myRequireUnlocked,
		panicPaths: func(writer *sql.DB) []lockPath {
			return []lockPath{lockPathPanicInPre("panic_in_pre_after_the_lock_was_taken", writer, func(lock Hook) {
				lock.(*MySQLLockTables).afterLock = func() { panic("boom after the lock") }
			})}
		},
	}, {
		typ: TypeMariaDBBackupStage,
		newHook: func(t *testing.T, dsn string, timeout time.Duration, fatal bool) Hook {
			return mdbHook(t, dsn, timeout, fatal)
		},
		name:     "MariaDB BACKUP STAGE",
		postName: "MariaDB BACKUP STAGE END",
		first:    mariadbBackupStages[0], locked: "BACKUP STAGE BLOCK_COMMIT", unlock: mariadbBackupEnd,
		dryRun:  "BACKUP STAGE START (dry run: connected and checked the server version, took no lock)",
		blocker: "BACKUP STAGE START", unblock: "BACKUP STAGE END",
		released: mdbRequireReleased,
		panicPaths: func(writer *sql.DB) []lockPath {
			panicAfter := func(stage string) func(lock Hook) {
				return func(lock Hook) {
					lock.(*MariaDBBackupStage).afterStage = func(s string) {
						if s == stage {
							panic("boom after " + s)
						}
					}
				}
			}
			return []lockPath{
				lockPathPanicInPre("panic_in_pre_after_block_commit", writer, panicAfter("BACKUP STAGE BLOCK_COMMIT")),
				lockPathPanicInPre("panic_in_pre_between_stages", writer, panicAfter("BACKUP STAGE FLUSH")),
			}
		},
	}}
}

// TestMySQLLockHooksWithoutServer checks the edges that need no server: the
// DSN points at a closed port, so a connection attempt fails the run.
func TestMySQLLockHooksWithoutServer(t *testing.T) {
	const secret = "s3cret-my-noconnect"
	for _, ht := range lockHookTypes() {
		t.Run(ht.typ, func(t *testing.T) {
			port := dbClosedPort(t)
			h, err := HookFromConfig(HookConfig{
				Type:           ht.typ,
				DSN:            fmt.Sprintf("snap:%s@tcp(127.0.0.1:%d)/", secret, port),
				Filesystems:    dbTestFilter,
				PostOnPreError: true,
			})
			require.NoError(t, err)
			target := fmt.Sprintf(" (snap@127.0.0.1:%d)", port)
			require.Equal(t, ht.name+target, h.String())
			require.Equal(t, ht.name+target, stepName(h, Pre))
			require.Equal(t, ht.postName+target, stepName(h, Post), "the post edge is named by what it does")
			require.Equal(t, DefaultHookTimeout, hookTimeout(h))
			require.True(t, postOnPreError(h))
			require.False(t, h.ErrIsFatal())
			lockHookEdgesWithoutServer(t, ht, h, secret)
		})
	}
}

// lockHookEdgesWithoutServer runs the edges of h, whose server does not
// answer, on their own.
func lockHookEdgesWithoutServer(t *testing.T, ht lockHookType, h Hook, secret string) {
	run := func(edge Edge, extra Env, state map[interface{}]interface{}) HookReport {
		logger, buf := testLogger()
		rep := h.Run(WithLogger(t.Context(), logger), edge, PhaseSnapshot, false, extra, state)
		require.IsType(t, &HeldReport{}, rep)
		dbRequireReportHasNoSecret(t, secret, rep, buf.String())
		return rep
	}
	env := Env{EnvFS: dbTestFS}

	t.Run("post_without_pre_is_an_error_not_a_panic", func(t *testing.T) {
		rep := run(Post, env, map[interface{}]interface{}{})
		require.True(t, rep.HadError())
		require.True(t, strings.HasPrefix(rep.Error(), ht.unlock+": no connection from the pre edge: "), rep.Error())
		rep = run(Post, env, nil)
		require.True(t, rep.HadError())
	})
	t.Run("failed_pre_leaves_post_an_error", func(t *testing.T) {
		state := map[interface{}]interface{}{}
		rep := run(Pre, env, state)
		require.True(t, strings.HasPrefix(rep.Error(), ht.first+": connect: "), rep.Error())
		require.Contains(t, rep.Error(), "connection refused")
		require.Empty(t, state)
		rep = run(Post, env, state)
		require.Contains(t, rep.Error(), "no connection from the pre edge")
	})
	t.Run("filesystem_not_matched_takes_no_lock", func(t *testing.T) {
		state := map[interface{}]interface{}{}
		rep := run(Pre, Env{EnvFS: "tank/other"}, state)
		require.False(t, rep.HadError(), rep.Error())
		require.Equal(t, ht.first+" skipped: filesystem tank/other not matched", rep.String())
		rep = run(Post, Env{EnvFS: "tank/other"}, state)
		require.False(t, rep.HadError(), rep.Error())
		require.Equal(t, ht.unlock+" skipped: no lock was taken (the filesystem was not matched)", rep.String())
	})
	t.Run("no_filesystem_is_an_error", func(t *testing.T) {
		rep := run(Pre, Env{}, map[interface{}]interface{}{})
		require.Equal(t, ht.first+": no filesystem in the hook environment (ZREPL_FS)", rep.Error())
	})
	t.Run("no_state_map_is_an_error", func(t *testing.T) {
		rep := run(Pre, env, nil)
		require.True(t, rep.HadError())
		require.Contains(t, rep.Error(), "no state map")
	})
	t.Run("callback_edge_does_nothing", func(t *testing.T) {
		rep := run(Callback, env, map[interface{}]interface{}{})
		require.False(t, rep.HadError(), rep.Error())
	})
}

func TestMySQLLockHooksDryRunTakesNoLock(t *testing.T) {
	for _, ht := range lockHookTypes() {
		t.Run(ht.typ, func(t *testing.T) {
			admin, writer := mysqlAdmin(t), myWriter(t)
			dsn, user, password := myHookDSN(t)

			ran := false
			cb := myNoLockCallback(t, admin, writer, user, &ran)
			run := dbRunPlan(t, t.Context(), List{ht.newHook(t, dsn, 10*time.Second, true)}, cb, true)

			require.True(t, ran, "callback ran")
			require.Equal(t, []StepStatus{StepOk, StepOk, StepOk}, dbStatuses(run.report))
			require.Equal(t, ht.dryRun, run.report[0].Report.String())
			require.Equal(t, ht.unlock+" skipped: no lock was taken (dry run)", run.report[2].Report.String())
			ht.released(t, admin, writer, user)
			dbRequireNoSecret(t, password, run)

			t.Run("dry_run_checks_the_password", func(t *testing.T) {
				cfg, err := mysql.ParseDSN(dsn)
				require.NoError(t, err)
				cfg.Passwd = "wrong-s3cret-my-dryrun"
				run := dbRunPlan(t, t.Context(), List{ht.newHook(t, cfg.FormatDSN(), 10*time.Second, true)}, nil, true)
				require.Equal(t, []StepStatus{StepErr, StepSkippedDueToFatalErr, StepSkippedDueToFatalErr}, dbStatuses(run.report))
				msg := run.report[0].Report.Error()
				require.True(t, strings.HasPrefix(msg, ht.first+": connect: "), msg)
				require.Contains(t, msg, "Access denied")
				dbRequireNoSecret(t, cfg.Passwd, run)
			})
		})
	}
}

// lockPath is one way a plan unwinds after the pre edge of a lock hook
// (mysql-lock-tables, mariadb-backup-stage); runLockPaths runs them.
type lockPath struct {
	name string
	// hooks returns the plan's hooks, the lock hook first; nil: just it.
	hooks func(t *testing.T, lock Hook) List
	// cb gets the callback that checks that the lock is held, and the
	// plan's cancel func; nil: that callback.
	cb     func(held HookJobCallback, cancel context.CancelFunc) HookJobCallback
	want   []StepStatus
	wantCb bool // whether the callback is called
	unlock bool // whether the lock hook's post edge runs its unlock statement
}

// lockPathsAfterTheLock are the paths every lock hook must release its
// lock on, once taken: a later fatal hook, a failing or panicking callback,
// a cancellation. failing is a hook script that fails.
func lockPathsAfterTheLock(failing string) []lockPath {
	return []lockPath{
		{
			name: "later_err_is_fatal_hook_fails",
			hooks: func(t *testing.T, lock Hook) List {
				cmd, err := HookFromConfig(HookConfig{Type: TypeCommand, Path: failing, ErrIsFatal: true})
				require.NoError(t, err)
				return List{lock, cmd}
			},
			want:   []StepStatus{StepOk, StepErr, StepSkippedDueToFatalErr, StepSkippedDueToFatalErr, StepOk},
			unlock: true,
		},
		{
			name: "callback_fails",
			cb: func(held HookJobCallback, _ context.CancelFunc) HookJobCallback {
				return func(ctx context.Context) error {
					_ = held(ctx)
					return errors.New("snapshot failed")
				}
			},
			want: []StepStatus{StepOk, StepErr, StepOk}, wantCb: true, unlock: true,
		},
		{
			name: "callback_panics",
			cb: func(held HookJobCallback, _ context.CancelFunc) HookJobCallback {
				return func(ctx context.Context) error {
					_ = held(ctx)
					panic("snapshot panicked")
				}
			},
			want: []StepStatus{StepOk, StepErr, StepOk}, wantCb: true, unlock: true,
		},
		{
			name: "ctx_cancelled_during_callback",
			cb: func(held HookJobCallback, cancel context.CancelFunc) HookJobCallback {
				return func(ctx context.Context) error {
					_ = held(ctx)
					cancel()
					return ctx.Err()
				}
			},
			want: []StepStatus{StepOk, StepErr, StepOk}, wantCb: true, unlock: true,
		},
	}
}

// lockPathPanicInPre is the path of a lock hook whose pre edge panics after
// it took (part of) its lock: arm makes the hook panic. The lock must be
// gone by the time the callback runs.
func lockPathPanicInPre(name string, writer *sql.DB, arm func(lock Hook)) lockPath {
	return lockPath{
		name: name,
		hooks: func(t *testing.T, lock Hook) List {
			arm(lock)
			return List{lock}
		},
		cb: func(HookJobCallback, context.CancelFunc) HookJobCallback {
			return func(ctx context.Context) error { return myTryInsert(ctx, writer) }
		},
		want:   []StepStatus{StepErr, StepOk, StepSkippedDueToPreErr},
		wantCb: true,
	}
}

// runLockPaths runs each path with a new lock hook from newHook, and checks
// the statuses, the post edge's unlock statement, that released holds on the
// server afterwards, and that password shows nowhere.
func runLockPaths(t *testing.T, paths []lockPath, newHook func(t *testing.T) Hook, unlockStmt, password string,
	held func(t *testing.T) HookJobCallback, released func(t *testing.T)) {
	for _, c := range paths {
		t.Run(c.name, func(t *testing.T) {
			lock := newHook(t)
			list := List{lock}
			if c.hooks != nil {
				list = c.hooks(t, lock)
			}
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			cb := held(t)
			if c.cb != nil {
				cb = c.cb(cb, cancel)
			}
			called := false
			run := dbRunPlan(t, ctx, list, func(ctx context.Context) error { called = true; return cb(ctx) }, false)

			require.Equal(t, c.want, dbStatuses(run.report))
			require.Equal(t, c.wantCb, called, "callback called")
			post := run.report[len(run.report)-1]
			require.Equal(t, Post, post.Edge)
			if c.unlock {
				require.Equal(t, unlockStmt, post.Report.String())
			}
			released(t)
			dbRequireNoSecret(t, password, run)
		})
	}
}

// TestMySQLLockHooksReleasedOnEveryPath runs the paths on which a plan
// unwinds after the lock was taken, and checks on the server that the lock
// is gone afterwards.
func TestMySQLLockHooksReleasedOnEveryPath(t *testing.T) {
	for _, ht := range lockHookTypes() {
		t.Run(ht.typ, func(t *testing.T) {
			admin, writer := mysqlAdmin(t), myWriter(t)
			dsn, user, password := myHookDSN(t)
			paths := append(lockPathsAfterTheLock(myWriteScript(t, "echo failing on purpose >&2\nexit 1")), ht.panicPaths(writer)...)
			runLockPaths(t, paths,
				func(t *testing.T) Hook { return ht.newHook(t, dsn, 10*time.Second, false) },
				ht.unlock, password,
				func(t *testing.T) HookJobCallback {
					ran := false
					return myLockHeldCallback(t, admin, writer, user, &ran)
				},
				func(t *testing.T) { ht.released(t, admin, writer, user) })
		})
	}
}

// TestMySQLLockHooksConnectionKilledDuringCallback: the session that holds
// the lock is killed during the callback; the post edge fails at once.
func TestMySQLLockHooksConnectionKilledDuringCallback(t *testing.T) {
	const timeout = 5 * time.Second
	for _, ht := range lockHookTypes() {
		t.Run(ht.typ, func(t *testing.T) {
			admin, writer := mysqlAdmin(t), myWriter(t)
			dsn, user, password := myHookDSN(t)
			cb := func(ctx context.Context) error {
				ids, err := mySessions(ctx, admin, user)
				if err != nil || len(ids) != 1 {
					return fmt.Errorf("sessions of %s: %v, %v; want exactly one", user, ids, err)
				}
				if _, err := admin.ExecContext(ctx, fmt.Sprintf("KILL %d", ids[0])); err != nil {
					return fmt.Errorf("KILL %d: %w", ids[0], err)
				}
				return nil
			}
			run := dbRunPlan(t, t.Context(), List{ht.newHook(t, dsn, timeout, true)}, cb, false)

			require.Equal(t, []StepStatus{StepOk, StepOk, StepErr}, dbStatuses(run.report))
			post := run.report[2]
			require.True(t, strings.HasPrefix(post.Report.Error(), ht.unlock+": "), post.Report.Error())
			require.Less(t, post.End.Sub(post.Begin), timeout, "post edge waited for its timeout")
			require.Contains(t, run.logs, "step failed")
			ht.released(t, admin, writer, user)
			dbRequireNoSecret(t, password, run)
		})
	}
}

// TestMySQLLockHooksServerKilledDuringCallback: the server is killed while
// the lock is held; the post edge fails within the hook's timeout.
func TestMySQLLockHooksServerKilledDuringCallback(t *testing.T) {
	const timeout = 5 * time.Second
	for _, ht := range lockHookTypes() {
		t.Run(ht.typ, func(t *testing.T) {
			srv := myStartPrivateServer(t)
			ran := false
			cb := func(ctx context.Context) error {
				ran = true
				ids, err := mySessions(ctx, srv.root, srv.user)
				if err != nil || len(ids) != 1 {
					t.Errorf("during the callback: sessions of %s: %v, %v; want exactly one", srv.user, ids, err)
				}
				srv.kill()
				return nil
			}
			run := dbRunPlan(t, t.Context(), List{ht.newHook(t, srv.dsn, timeout, true)}, cb, false)

			require.True(t, ran, "callback ran")
			require.Equal(t, []StepStatus{StepOk, StepOk, StepErr}, dbStatuses(run.report))
			post := run.report[2]
			require.True(t, strings.HasPrefix(post.Report.Error(), ht.unlock+": "), post.Report.Error())
			require.Less(t, post.End.Sub(post.Begin), timeout, "post edge waited for its timeout")
			dbRequireNoSecret(t, srv.password, run)
		})
	}
}

// TestMySQLLockHooksWaitEndsAtTheTimeout: another session keeps the lock
// waiting (a LOCK TABLES ... WRITE, another backup); the pre edge gives up at
// the hook's timeout and leaves nothing behind.
func TestMySQLLockHooksWaitEndsAtTheTimeout(t *testing.T) {
	const (
		timeout = time.Second
		slack   = 3 * time.Second // a loaded machine under -race
	)
	for _, ht := range lockHookTypes() {
		t.Run(ht.typ, func(t *testing.T) {
			admin, writer := mysqlAdmin(t), myWriter(t)
			dsn, user, password := myHookDSN(t)
			blocker, err := admin.Conn(t.Context())
			require.NoError(t, err)
			defer blocker.Close()
			_, err = blocker.ExecContext(t.Context(), ht.blocker)
			require.NoError(t, err)
			unblocked := false
			defer func() {
				if !unblocked {
					_, _ = blocker.ExecContext(context.Background(), ht.unblock)
				}
			}()

			run := dbRunPlan(t, t.Context(), List{ht.newHook(t, dsn, timeout, true)}, nil, false)

			require.Equal(t, []StepStatus{StepErr, StepSkippedDueToFatalErr, StepSkippedDueToFatalErr}, dbStatuses(run.report))
			require.Less(t, run.elapsed, timeout+slack)
			msg := run.report[0].Report.Error()
			require.True(t, strings.HasPrefix(msg, ht.first+": "), msg)
			require.True(t, strings.Contains(msg, "timed out after 1s") || strings.Contains(msg, "Lock wait timeout"), msg)

			_, err = blocker.ExecContext(t.Context(), ht.unblock)
			require.NoError(t, err)
			unblocked = true
			ht.released(t, admin, writer, user)
			dbRequireNoSecret(t, password, run)
		})
	}
}

// myRequireReloadOnly checks that user has the RELOAD privilege and no
// other: enough for either lock hook.
func myRequireReloadOnly(t *testing.T, admin *sql.DB, user string) {
	t.Helper()
	var privs []string
	rows, err := admin.QueryContext(t.Context(), "SELECT PRIVILEGE_TYPE FROM information_schema.USER_PRIVILEGES WHERE GRANTEE LIKE ?", "'"+user+"'@%")
	require.NoError(t, err)
	defer rows.Close()
	for rows.Next() {
		var p string
		require.NoError(t, rows.Scan(&p))
		privs = append(privs, p)
	}
	require.NoError(t, rows.Err())
	require.Equal(t, []string{"RELOAD"}, privs, "privileges of %s", user)
}

// Package hooks runs pre- and post-snapshot hooks around a snapshot: it
// freezes or flushes a database, or runs an admin's scripts, just before a
// filesystem is snapshotted and undoes it just after. It is a standalone port
// of the hooks package of zrepl, with the same API, the same semantics and
// the same environment for hook scripts, and with zrepl's defects fixed.
//
// # The model
//
// A Hook has two edges, Pre and Post. A Plan wraps the hooks of one
// filesystem around a callback (the snapshot) as a stack:
//
//	Pre  hook 1 ───────────────────────────┐
//	  Pre  hook 2 ───────────────┐         │
//	    Callback (take snapshot) │         │
//	  Post hook 2 ◄──────────────┘         │
//	Post hook 1 ◄──────────────────────────┘
//
// Its report lists the 2n+1 steps in that order: pre[0..n-1], callback,
// post[n-1..0]. The Pre and Post edge of a hook share a state map, so the
// Pre edge can hand a resource (the locked database connection) to the Post
// edge. Run executes the plan, once (later calls return at once):
//
//   - Pre edges run in configuration order. Each step is StepExec while it
//     runs, then StepOk or StepErr.
//   - A failing Pre edge of a hook whose ErrIsFatal is false is logged and
//     the plan goes on, but that hook's Post edge is skipped
//     (StepSkippedDueToPreErr).
//   - A failing Pre edge of an err_is_fatal hook stops the Pre edges: its own
//     Post edge, the later hooks and the callback are skipped
//     (StepSkippedDueToFatalErr), and the Post edges of the earlier hooks
//     whose Pre succeeded still run, in reverse order. zrepl documents this
//     but never runs them; here the stack unwinds.
//   - Cancelling the ctx of Run before or during the Pre edges counts as a
//     fatal error: the step that could not start because of it (the next Pre
//     edge, or the callback) is StepErr ("cancelled before it ran: <cause>"),
//     the rest are StepSkippedDueToFatalErr, and the earlier Post edges still
//     run. So a cancelled plan always reports HadError.
//   - A Pre edge that asks to skip the snapshot (a SkipReport, such as a
//     command hook exiting with its skip_exit_code) is StepSkipRequested and
//     ends the Pre edges without an error: StepSkippedDueToSkip for the
//     callback and the later hooks; the earlier Post edges unwind.
//   - Otherwise the callback runs; its error does not stop the Post edges.
//   - Post edges run in reverse order, for the hooks whose Pre edge
//     succeeded. A Post error never stops another Post edge, even for an
//     err_is_fatal hook. Post edges run with a ctx that the caller's
//     cancellation does not reach (context.WithoutCancel), so that a lock
//     taken before the snapshot is released on shutdown too, under one
//     deadline for the whole unwinding: the sum of each hook's timeout
//     (DefaultHookTimeout if it has none) plus a second. An edge that would
//     start with less than its own timeout plus a second left, because an
//     earlier one overran, gets a deadline of its own that far off. So every
//     Post edge has at least that long, the hook's own timeout fires first,
//     and hooks that honour their ctx end the unwinding within twice the sum.
//   - A hook configured with post_on_pre_error runs its Post edge whenever
//     its Pre edge ran, even if it failed, fatally or not (an xfs_freeze
//     that timed out after freezing). A Pre edge that never ran still skips
//     its Post edge.
//   - Whatever a hook does, only its own step fails and the stack unwinds as
//     for any error: a panic in a hook, in the callback, or in a hook's
//     String or ErrIsFatal ("panic: ...", the stack trace is logged); a nil
//     or typed-nil report; a report whose methods panic. NewPlan refuses a
//     typed-nil hook. A hook that ignores its ctx and never returns still
//     blocks Run: hooks must honour ctx (the built-in hooks honour their
//     timeout).
//
// Post edges learn what happened from EnvPreResult and EnvCallbackResult.
//
// After Run, PlanReport.HadError tells whether any step is StepErr,
// PlanReport.HadFatalError whether any step is StepSkippedDueToFatalErr,
// i.e. the callback was skipped because of an error (which implies
// HadError), and PlanReport.HadSkip whether a Pre edge asked to skip it.
// Plan.Report returns a copy and may be polled from any goroutine while Run
// works: it never waits for a hook and costs O(steps); a running step shows
// its Begin, so a poller sees how long it has run.
//
// # Hook types
//
// CommandHook runs an executable with the zrepl environment (ZREPL_HOOKTYPE,
// ZREPL_FS, ZREPL_SNAPNAME, ZREPL_DRYRUN, ZREPL_TIMEOUT) in a process group of
// its own that is killed on timeout; PgChkptHook runs CHECKPOINT on a
// PostgreSQL server before the snapshot; MySQLLockTables holds FLUSH TABLES
// WITH READ LOCK on one pinned MySQL/MariaDB connection across the snapshot.
// MariaDBBackupStage holds MariaDB's BACKUP STAGE locks the same way. A
// CallbackHook is the step in the middle. Hook is an interface, so a daemon
// can add its own kinds.
//
// # Use from a daemon
//
// Parse the hook list once, at config load, and make a plan per filesystem
// and snapshot:
//
//	list, err := hooks.ListFromConfig(&cfg)                 // cfg: hooks.HookList, e.g. from ParseHookList
//	fsHooks, err := list.CopyFilteredForFilesystem(fs)      // per filesystem
//	cb := hooks.NewCallbackHookForFilesystem("snapshot", fs, takeSnapshot)
//	plan, err := hooks.NewPlan(&fsHooks, hooks.PhaseSnapshot, cb,
//		hooks.Env{hooks.EnvFS: fs.ToString(), hooks.EnvSnapshot: name})
//	plan.Run(hooks.WithLogger(ctx, logger), dryRun)
//	if rep := plan.Report(); rep.HadError() { ... rep.String() ... }
//
// # Job scope
//
// A snapshot may cover several datasets (zfs snapshot tank/db@s tank/log@s)
// or a dataset and its subtree (zfs snapshot -r tank@s). NewJobPlan makes one
// plan for a Scope: every hook whose filter passes at least one of its
// datasets (with Scope.Recursive: the dataset or anything below it, see
// SubtreeFilter) runs once, around one callback, with EnvFS set to the first
// dataset it matched and EnvFSList to all of them:
//
//	scope := hooks.Scope{Datasets: []hooks.Dataset{db, log}}
//	plan, err := hooks.NewJobPlan(list, hooks.PhaseSnapshot, cb, scope, hooks.Env{hooks.EnvSnapshot: name})
//
// Logging goes to the *slog.Logger carried by the ctx (WithLogger); without
// one, nothing is logged. NewLogfmtHandler writes logfmt.
package hooks

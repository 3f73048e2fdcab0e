package hooks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// heldHook is the engine of the hooks that hold something while the
// snapshot is taken: a lock on a database session (mysql-lock-tables,
// mariadb-backup-stage), and next frozen filesystems or a frozen VM. A hook
// type embeds a heldHook, fills in its fields when it is created, and lets
// run do the rest:
//
//   - Pre: the filesystem is read from extra[EnvFS] and checked against the
//     hook's filter (see dbHookFilesystem). If the filter does not pass it,
//     nothing is taken and the report is ok: "<preAction> skipped:
//     filesystem <fs> not matched". Otherwise check (if set) and then take
//     run, bounded together by the hook's timeout: an error of check fails
//     the edge before anything is taken, its warnings go to the report's
//     Warnings. Every resource take hands to hold is the engine's to
//     release from then on: if take fails, panics, or the run is a dry run,
//     the engine releases all of them before the Pre edge returns (the
//     panic goes on to the caller, a Plan reports it); if take succeeds,
//     they are kept in the state map, under the hook itself, for the Post
//     edge.
//   - Post: the resources are taken out of the state map and released, in
//     the reverse order of hold, bounded by the hook's timeout on a ctx that
//     the caller's cancellation does not end. The report's What is
//     postAction. With nothing in the state from a Pre edge (it failed, or
//     did not run), the report is an error, never a panic; with nothing held
//     (dry run, filesystem not matched) it is ok: "<postAction> skipped:
//     <words.notTaken> (dry run)".
//   - Callback, and any other edge: nothing; an ok report.
//
// maxHold, when not zero, bounds how long the resources are held: at
// maxHold after take succeeded a timer releases them by itself, whether or
// not the Post edge ever runs. Exactly one release happens: the deadline
// and the Post edge race for the resources under a mutex, the loser does
// not release. A Post edge that lost waits until the deadline's release is
// done and reports an error: "<words.released> by the deadline after
// <maxHold>: the snapshot may not be consistent" (and the release's own
// error, if it failed).
//
// Every error text has secret replaced (see redactSecret), and a timeout or
// cancellation said as describeTimeout says it. Reports are *HeldReport.
// Logs of run carry the attributes hook (EdgeString of the edge), edge and
// fs. A heldHook is immutable once made: what one plan holds lives in that
// plan's state map, so one hook serves concurrent plans.
type heldHook struct {
	hookSettings

	name       string // String: the hook, and what its Pre edge does
	postName   string // EdgeString(Post): what the Post edge does, e.g. "MySQL UNLOCK TABLES (target)"
	preAction  string // What of a Pre report when take says nothing else, e.g. "FLUSH TABLES WITH READ LOCK"
	postAction string // What of every Post report, e.g. "UNLOCK TABLES"
	words      heldWords
	secret     string        // replaced by "xxxxx" in every error text; "" for none
	maxHold    time.Duration // 0: held until the Post edge

	// check, when set, runs before take, bounded by the same ctx: it returns
	// warnings for the Pre report, or an error that fails the Pre edge before
	// anything is taken (the coverage check of the database hooks).
	check func(ctx context.Context, log *slog.Logger, extra Env) (warnings []string, err error)

	// take takes the resources, bounded by ctx: it passes each to hold as
	// soon as it holds something that needs a release, so that a later
	// failure or panic releases it. It returns What for the Pre report (""
	// for preAction) and an error. In a dry run it checks what it can and
	// may hold nothing; whatever it held is released when it returns.
	take func(ctx context.Context, log *slog.Logger, extra Env, dryRun bool, hold func(heldResource)) (what string, err error)
}

// heldResource is one thing a held hook holds. release ends the hold,
// bounded by ctx, which the caller's cancellation never ends; it is called
// exactly once, from the Pre edge (after a failure, a panic, a dry run), the
// Post edge or the deadline's timer, and never concurrently with itself.
// It must release as far as it can also when it returns an error (a failed
// UNLOCK TABLES still closes the session), and stop any watchdog it runs.
type heldResource interface {
	release(ctx context.Context) error
}

// heldWords are the nouns of a held hook's messages.
type heldWords struct {
	resource string // what the Pre edge hands to the Post edge: "connection"
	notTaken string // why a Post edge has nothing to release: "no lock was taken"
	released string // how the deadline ends a hold: "released", "thawed"
}

// heldState is what a Pre edge leaves in the state map for its Post edge.
type heldState struct {
	notHeld string // why nothing is held, when res is empty

	mu       sync.Mutex // guards the fields below
	res      []heldResource
	claimed  bool        // someone (the deadline or the Post edge) took res to release it
	timer    *time.Timer // the deadline; nil without maxHold
	deadline chan struct{}
	err      error // of the deadline's release, set before deadline is closed
}

// claim returns the resources if nobody claimed them before, and marks them
// claimed: the caller releases them.
func (s *heldState) claim() ([]heldResource, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.claimed {
		return nil, false
	}
	s.claimed = true
	return s.res, true
}

// String returns the hook's name, that of its Pre edge.
func (h *heldHook) String() string { return h.name }

// EdgeString names the hook for a step of edge: the Post edge by what it
// does (releasing), every other edge by String.
func (h *heldHook) EdgeString(edge Edge) string {
	if edge == Post && h.postName != "" {
		return h.postName
	}
	return h.name
}

// run is the Run of a held hook; see heldHook.
func (h *heldHook) run(ctx context.Context, edge Edge, dryRun bool, extra Env, state map[interface{}]interface{}) *HeldReport {
	log := GetLogger(ctx).With(slog.String("hook", h.EdgeString(edge)), slog.String("edge", edge.String()))
	if fs, ok := extra[EnvFS]; ok {
		log = log.With(slog.String("fs", fs))
	}
	switch edge {
	case Pre:
		what, warnings, err := h.pre(ctx, log, dryRun, extra, state)
		return &HeldReport{What: what, Warnings: warnings, Err: redactSecret(err, h.secret)}
	case Post:
		what, err := h.post(ctx, log, state)
		return &HeldReport{What: what, Err: redactSecret(err, h.secret)}
	}
	return &HeldReport{What: "nothing to do on the " + edge.String() + " edge"}
}

func (h *heldHook) pre(parent context.Context, log *slog.Logger, dryRun bool, extra Env, state map[interface{}]interface{}) (string, []string, error) {
	if state == nil {
		return h.preAction, nil, fmt.Errorf("no state map to keep the %s in for the post edge", h.words.resource)
	}
	if old, ok := state[h].(*heldState); ok {
		// Not done by a Plan. Never leave anything held behind all the same.
		delete(state, h)
		if _, err := h.releaseState(parent, log, old); err != nil {
			log.WarnContext(parent, "release what an earlier pre edge left held", slog.String("err", redactSecret(err, h.secret).Error()))
		}
	}
	fs, pass, err := dbHookFilesystem(h.filter, extra)
	if err != nil {
		return h.preAction, nil, err
	}
	if !pass {
		log.DebugContext(parent, "filesystem not matched by the hook's filter: nothing taken")
		state[h] = &heldState{notHeld: "the filesystem was not matched"}
		return h.preAction + " skipped: filesystem " + fs + " not matched", nil, nil
	}

	ctx, cancel := context.WithTimeout(parent, h.timeout)
	defer cancel()
	var warnings []string
	if h.check != nil {
		if warnings, err = h.check(ctx, log, extra); err != nil {
			return h.preAction, nil, describeTimeout(parent, ctx, h.timeout, err)
		}
	}
	st, what, err := h.takeAll(ctx, log, extra, dryRun)
	if what == "" {
		what = h.preAction
	}
	if err != nil {
		return what, warnings, describeTimeout(parent, ctx, h.timeout, err)
	}
	if dryRun {
		st.notHeld = "dry run"
	} else if len(st.res) == 0 {
		st.notHeld = "take held nothing"
	}
	h.startDeadline(parent, log, st)
	state[h] = st
	return what, warnings, nil
}

// takeAll runs take and returns what it holds. On an error, in a dry run,
// and on a panic (which it passes on) it releases whatever take held, with
// a ctx that outlives ctx, and returns an empty state.
func (h *heldHook) takeAll(ctx context.Context, log *slog.Logger, extra Env, dryRun bool) (_ *heldState, what string, err error) {
	st := &heldState{}
	done := false
	defer func() {
		if done && err == nil && !dryRun {
			return
		}
		v := recover()
		if rerr := h.releaseAll(ctx, st.res); rerr != nil {
			log.WarnContext(ctx, "release what the pre edge took", slog.String("err", redactSecret(rerr, h.secret).Error()))
		}
		st.res = nil
		if v != nil {
			panic(v)
		}
	}()
	what, err = h.take(ctx, log, extra, dryRun, func(r heldResource) { st.res = append(st.res, r) })
	done = true
	return st, what, err
}

// startDeadline arms the timer that releases what st holds at maxHold, if
// the hook has one and st holds something.
func (h *heldHook) startDeadline(parent context.Context, log *slog.Logger, st *heldState) {
	if h.maxHold <= 0 || len(st.res) == 0 {
		return
	}
	base := context.WithoutCancel(parent) // the timer fires long after parent may have ended
	st.deadline = make(chan struct{})
	st.mu.Lock()
	defer st.mu.Unlock()
	st.timer = time.AfterFunc(h.maxHold, func() {
		res, ok := st.claim()
		if !ok {
			return // the Post edge was first: it releases
		}
		log.WarnContext(base, h.words.released+" by the deadline: the post edge did not come in time", slog.Duration("max_hold", h.maxHold))
		st.err = h.releaseAll(base, res)
		close(st.deadline)
	})
}

func (h *heldHook) post(parent context.Context, log *slog.Logger, state map[interface{}]interface{}) (string, error) {
	st, ok := state[h].(*heldState)
	if !ok || st == nil {
		return h.postAction, fmt.Errorf("no %s from the pre edge: it failed or did not run, so there is nothing to release", h.words.resource)
	}
	delete(state, h)
	if st.notHeld != "" {
		return h.postAction + " skipped: " + h.words.notTaken + " (" + st.notHeld + ")", nil
	}
	byDeadline, err := h.releaseState(parent, log, st)
	if byDeadline {
		why := fmt.Errorf("%s by the deadline after %s: the snapshot may not be consistent", h.words.released, h.maxHold)
		if err != nil {
			return h.postAction, fmt.Errorf("%w; the release failed: %w", why, err)
		}
		return h.postAction, why
	}
	return h.postAction, err
}

// releaseState releases what st holds, unless the deadline claimed it
// first: then it waits for the deadline's release to end and returns its
// error, with byDeadline set.
func (h *heldHook) releaseState(parent context.Context, log *slog.Logger, st *heldState) (byDeadline bool, err error) {
	res, ok := st.claim()
	if !ok {
		<-st.deadline
		return true, st.err
	}
	st.mu.Lock()
	if st.timer != nil {
		st.timer.Stop()
	}
	st.mu.Unlock()
	return false, h.releaseAll(parent, res)
}

// releaseAll releases res in the reverse order of take, each on a ctx that
// the end of parent does not end, all together bounded by the hook's
// timeout. The error says a timeout or cancellation as describeTimeout does.
func (h *heldHook) releaseAll(parent context.Context, res []heldResource) error {
	if len(res) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(parent), h.timeout)
	defer cancel()
	var errs []error
	for i := len(res) - 1; i >= 0; i-- {
		errs = append(errs, h.release(ctx, res[i]))
	}
	return describeTimeout(parent, ctx, h.timeout, errors.Join(errs...))
}

// release calls r.release and turns a panic into an error, so that one
// broken resource does not keep the others held.
func (h *heldHook) release(ctx context.Context, r heldResource) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("release panicked: %v", v)
		}
	}()
	return r.release(ctx)
}

// HeldReport is the report of a hook that holds something while the
// snapshot is taken: MySQLLockTables, MariaDBBackupStage. What is what the
// edge did: the statement it ran last, or the one that failed, followed by
// a note when it did nothing (dry run, filesystem not matched). Warnings
// are what the Pre edge warns about whether it succeeded or not (the
// coverage check: a file of the server that the snapshot does not hold).
// Err is nil when the run succeeded.
type HeldReport struct {
	What     string
	Warnings []string
	Err      error
}

// MyLockTablesReport is the report of a MySQLLockTables run: What is
// "FLUSH TABLES WITH READ LOCK" on the Pre edge, "UNLOCK TABLES" on the Post
// edge.
type MyLockTablesReport = HeldReport

// MariaDBBackupStageReport is the report of a MariaDBBackupStage run. What
// is the statement the edge ran last, or the one that failed: on the Pre
// edge one of "BACKUP STAGE START", "BACKUP STAGE FLUSH", "BACKUP STAGE
// BLOCK_DDL" or "BACKUP STAGE BLOCK_COMMIT" (the last one when all went
// well; "BACKUP STAGE START" when connecting or checking the server failed),
// on the Post edge "BACKUP STAGE END".
type MariaDBBackupStageReport = HeldReport

// String is What, or "<What>: <err>" when the run failed, followed by
// "; warning: <warning>" for each of Warnings.
func (r *HeldReport) String() string {
	s := r.What
	if r.Err != nil {
		s += ": " + r.Err.Error()
	}
	return s + warningsText(r.Warnings)
}

// HadError reports whether the run failed.
func (r *HeldReport) HadError() bool { return r.Err != nil }

// HadWarning reports whether the report has Warnings, whether the run failed
// or not.
func (r *HeldReport) HadWarning() bool { return len(r.Warnings) > 0 }

// Error is String() when the run failed, else "".
func (r *HeldReport) Error() string {
	if r.Err == nil {
		return ""
	}
	return r.String()
}

package hooks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

// Plan runs hooks around a callback as a stack: the Pre edges in order, the
// callback, the Post edges in reverse order. See the package documentation
// for which step runs or is skipped when.
//
// A Plan runs once. Its Report may be read at any time from any goroutine.
type Plan struct {
	phase Phase

	// steps holds every step in report order: the Pre edges of hooks
	// 0..n-1, the callback, the Post edges of hooks n-1..0. Hook i owns
	// steps[i] and steps[2n-i] (see pre, post), states[i], the state map its
	// two edges share, and env(i), the extra env its edges get.
	steps  []Step
	states []map[interface{}]interface{}
	envs   []Env  // nil if every hook has cbEnv (a NewPlan; see env)
	cbEnv  Env    // the extra env of the callback
	scope  *Scope // of a job plan: handed to the hooks in the ctx (withCoverageScope)
	// listFiles makes Run write EnvFSListFile files (a job plan of more
	// than one dataset; see writeFSLists).
	listFiles bool
	logFS     slog.Attr

	ran atomic.Bool

	// mu guards Status, Begin, End and Report of every step, and postEnv.
	// It is held for bookkeeping only, never while a hook runs.
	mu      sync.Mutex
	postEnv Env // set by SetPostEnv
}

// SetPostEnv adds env to the environment of the Post edges: every Post edge
// of a Run in which SetPostEnv returned before the callback ended gets env
// on top of its hook's extra env and of EnvPreResult and EnvCallbackResult,
// so env may override those. A later call replaces env; a call after the
// callback ended changes nothing. It is meant for a callback that learns
// late what the Post edges should see: snaphook's holder gives them the
// environment of the "snaphook post" that ended the hold.
func (p *Plan) SetPostEnv(env Env) {
	env = copyEnv(env)
	p.mu.Lock()
	p.postEnv = env
	p.mu.Unlock()
}

// env returns the extra env of hook i.
func (p *Plan) env(i int) Env {
	if p.envs == nil {
		return p.cbEnv
	}
	return p.envs[i]
}

// hooks is the number of hooks of the plan.
func (p *Plan) hooks() int { return len(p.states) }

// pre returns the Pre step of hook i.
func (p *Plan) pre(i int) *Step { return &p.steps[i] }

// post returns the Post step of hook i.
func (p *Plan) post(i int) *Step { return &p.steps[2*p.hooks()-i] }

// callback returns the Callback step.
func (p *Plan) callback() *Step { return &p.steps[p.hooks()] }

// NewPlan returns a plan that runs the hooks of *hooks around cb in the given
// phase. extra is added to the environment of every hook (typically EnvFS and
// EnvSnapshot); if it has EnvFS but no EnvFSList, EnvFSList is set to the
// same dataset. Every step starts StepPending. The list is read once, here;
// a nil hooks is an empty list. It fails if cb or a hook is nil (a nil
// interface or a nil pointer), or if a program the plan starts with extra
// could not be started: a variable longer than Linux allows one environment
// string (128 KiB), or extra and the environment of this process together
// more than Linux allows a program (a quarter of the stack limit, at most 6
// MiB, less 16 KiB kept for arguments); the error names the variable. The
// programs a plan starts are those of its command hooks (CommandHook) and of
// a callback made by NewCommandCallbackHook; in-process hooks and a Go
// callback start none, and their env is not checked.
//
// NewPlan takes the hooks as given: filter them first with
// List.CopyFilteredForFilesystem, or use NewJobPlan, which filters for a
// Scope of several datasets.
func NewPlan(hooks *List, phase Phase, cb *CallbackHook, extra Env) (*Plan, error) {
	var list List
	if hooks != nil {
		list = *hooks
	}
	env := copyEnv(extra)
	if fs, ok := env[EnvFS]; ok {
		if _, ok := env[EnvFSList]; !ok {
			env[EnvFSList] = fs
		}
	}
	var all []string
	if fs := env[EnvFS]; fs != "" {
		all = []string{fs}
	}
	return newPlan(list, phase, cb, nil, nil, env, all)
}

// newPlan makes the plan of list around cb. envs[i] is the extra env of hook
// i and datasets[i] the datasets it covers; cbEnv and cbDatasets are those
// of the callback, and of every hook if envs and datasets are nil.
func newPlan(list List, phase Phase, cb *CallbackHook, envs []Env, datasets [][]string, cbEnv Env, cbDatasets []string) (*Plan, error) {
	if cb == nil {
		return nil, errors.New("new plan: callback hook is nil")
	}
	n := len(list)
	p := &Plan{
		phase:  phase,
		steps:  make([]Step, 2*n+1),
		states: make([]map[interface{}]interface{}, n),
		envs:   envs,
		cbEnv:  cbEnv,
	}
	switch {
	case len(cbDatasets) == 1:
		p.logFS = slog.String("fs", cbDatasets[0])
	case len(cbDatasets) > 1:
		p.logFS = slog.String("datasets", datasetsText(cbDatasets, ","))
	}
	for i, h := range list {
		if isNil(h) {
			return nil, fmt.Errorf("new plan: hook #%d is nil", i+1)
		}
		ds := cbDatasets
		if datasets != nil {
			ds = datasets[i]
		}
		pre, post := p.pre(i), p.post(i)
		pre.Hook, pre.Edge, pre.Status, pre.Datasets = h, Pre, StepPending, ds
		post.Hook, post.Edge, post.Status, post.Datasets = h, Post, StepPending, ds
		p.states[i] = make(map[interface{}]interface{})
	}
	*p.callback() = Step{Hook: cb, Edge: Callback, Status: StepPending, Datasets: cbDatasets}
	if err := p.checkExecEnvs(); err != nil {
		return nil, fmt.Errorf("new plan: %w", err)
	}
	return p, nil
}

// Report returns a copy of the steps in report order: pre[0..n-1], callback,
// post[n-1..0]. It never waits for a running hook; a step that is running
// shows StepExec and its Begin.
func (p *Plan) Report() PlanReport {
	r := make(PlanReport, len(p.steps))
	p.mu.Lock()
	copy(r, p.steps)
	p.mu.Unlock()
	return r
}

// stop is why the Pre edges stopped early.
type stop int

const (
	goOn          stop = iota
	stopFatal          // a fatal Pre error
	stopCancelled      // the ctx of Run was done
	stopSkip           // a Pre edge asked to skip the snapshot
)

// status is the status of the steps that a stop skips.
func (s stop) status() StepStatus {
	if s == stopSkip {
		return StepSkippedDueToSkip
	}
	return StepSkippedDueToFatalErr
}

// Run runs the plan once; later calls return at once. dryRun is passed to
// every hook and to hook scripts as ZREPL_DRYRUN=true; the callback runs in a
// dry run too and must check for itself whether to act. The Pre edges and
// the callback run with ctx, the Post edges with a ctx its cancellation does
// not reach. In which order the steps run, and what a failed, skipping,
// panicking or cancelled step does to the others, is the package's model:
// see the package documentation. A hook that never returns blocks Run: hooks
// must honour ctx. The logger is taken from ctx (see WithLogger).
//
// The callback gets EnvConsistency (see there). In a job plan of more than
// one dataset, Run first writes the EnvFSListFile files, and removes them
// before it returns; if they cannot be written, no hook runs and the
// callback fails with the reason.
func (p *Plan) Run(ctx context.Context, dryRun bool) {
	if !p.ran.CompareAndSwap(false, true) {
		return
	}
	if p.scope != nil {
		ctx = withCoverageScope(ctx, *p.scope)
	}
	log := GetLogger(ctx)
	if p.logFS.Key != "" && log.Enabled(ctx, slog.LevelError) {
		log = log.With(p.logFS)
	}
	removeLists, err := p.writeFSLists()
	if err != nil {
		p.failToStart(ctx, log, err)
		return
	}
	defer removeLists()

	why := goOn
	ran := 0 // how many Pre edges ran: the first ran of them
	for i := range p.hooks() {
		s := p.pre(i)
		if why == goOn && ctx.Err() != nil {
			why = stopCancelled
			p.failCancelled(ctx, log, s)
			continue
		}
		if why != goOn {
			p.skip(s, why.status())
			continue
		}
		ran++
		rep, status := p.exec(ctx, log, s, p.states[i], p.env(i), dryRun)
		switch {
		case status == StepSkipRequested:
			why = stopSkip
			logStep(ctx, log, slog.LevelWarn, "pre edge asked to skip the snapshot: skipping the callback, unwinding", s)
		case status == StepOk:
		case hookErrIsFatal(s.Hook):
			why = stopFatal
			logStep(ctx, log, slog.LevelError, "fatal pre edge error: skipping the callback, unwinding", s, slog.String("err", rep.Error()))
		default:
			logStep(ctx, log, slog.LevelWarn, "pre edge error: continuing", s, slog.String("err", rep.Error()))
		}
	}

	cb := p.callback()
	switch {
	case why != goOn:
		p.skip(cb, why.status())
	case ctx.Err() != nil:
		p.failCancelled(ctx, log, cb)
	default:
		p.execCallback(ctx, log, dryRun)
	}
	p.unwind(ctx, log, why, ran, dryRun)
}

// unwind runs, in reverse order, the Post edges of the hooks whose Pre edge
// was Ok, or ran and whose hook wants its Post edge after a Pre error, and
// marks the others skipped. Cleanup must not depend on the caller's ctx
// still being alive: the Post edges run under a ctx its cancellation does
// not reach, with one deadline for the whole unwinding, the sum of their
// bounds (see postBudget). An edge that would start with less than its own
// bound left, because an earlier one overran, gets a deadline of its own
// bound: every edge has at least its bound, the unwinding at most twice the
// sum.
func (p *Plan) unwind(ctx context.Context, log *slog.Logger, why stop, ran int, dryRun bool) {
	p.mu.Lock()
	envs := postEnvs{cbResult: resultOf(p.callback().Status), override: p.postEnv}
	p.mu.Unlock()
	detached := context.WithoutCancel(ctx)
	postCtx, cancelPost := context.WithDeadline(detached, time.Now().Add(p.postBudget()))
	defer func() { cancelPost() }()
	var last time.Time // when the last Post edge ended
	for i := p.hooks() - 1; i >= 0; i-- {
		pre, post := p.pre(i), p.post(i)
		switch {
		case pre.Status == StepOk || i < ran && postOnPreError(post.Hook):
			if d, _ := postCtx.Deadline(); d.Sub(last) < postBound(post.Hook) { // an earlier edge overran
				cancelPost()
				var cancel context.CancelFunc
				postCtx, cancel = context.WithDeadline(detached, time.Now().Add(postBound(post.Hook)))
				cancelPost = cancel
			}
			p.exec(postCtx, log, post, p.states[i], envs.of(p, i, resultOf(pre.Status)), dryRun)
			last = post.End
		case i >= ran:
			p.skipPost(ctx, log, post, why.status())
		case pre.Status == StepSkipRequested:
			p.skipPost(ctx, log, post, StepSkippedDueToSkip)
		case hookErrIsFatal(pre.Hook):
			// As in zrepl, the fatal hook's own Post counts as skipped by
			// the fatal error.
			p.skipPost(ctx, log, post, StepSkippedDueToFatalErr)
		default:
			p.skipPost(ctx, log, post, StepSkippedDueToPreErr)
		}
	}
}

// postEnvs makes the envs of the Post edges of one unwinding: a hook's env
// with the results and SetPostEnv's env added.
type postEnvs struct {
	cbResult int               // the callback's result, an index in results
	override Env               // SetPostEnv's env when the callback ended
	made     [len(results)]Env // if the hooks share one env: one per Pre result
}

// of returns the env of the Post edge of hook i of p whose Pre edge ended
// in results[preResult].
func (e *postEnvs) of(p *Plan, i, preResult int) Env {
	if env := e.made[preResult]; env != nil {
		return env
	}
	env := copyEnv(p.env(i))
	env[EnvPreResult], env[EnvCallbackResult] = results[preResult], results[e.cbResult]
	maps.Copy(env, e.override)
	if p.envs == nil {
		e.made[preResult] = env
	}
	return env
}

// results are the values of EnvPreResult and EnvCallbackResult.
var results = [...]string{"ok", "error", "skip", "skipped"}

// resultOf is the index in results of the result of a step that ended in
// status.
func resultOf(status StepStatus) int {
	switch status {
	case StepOk:
		return 0
	case StepErr:
		return 1
	case StepSkipRequested:
		return 2
	}
	return 3
}

// postBackstop is how much longer than its hook's timeout a Post edge has
// at least: a hook that enforces its own timeout, like CommandHook, hits its
// own bound first and reports "timed out after <timeout>"; the plan's
// deadline is only a backstop for hooks that do not.
const postBackstop = time.Second

// postBound is the least time a Post edge of h is given: h's timeout
// (DefaultHookTimeout if it has none) plus postBackstop, at most the longest
// Duration.
func postBound(h Hook) time.Duration {
	return min(hookTimeout(h), math.MaxInt64-postBackstop) + postBackstop
}

// postBudget is how long the Post edges may take together: the sum of the
// bounds of every hook's, at most the longest Duration.
func (p *Plan) postBudget() (sum time.Duration) {
	for i := range p.hooks() {
		if sum += postBound(p.post(i).Hook); sum < 0 {
			return math.MaxInt64
		}
	}
	return sum
}

// logStep logs msg with the step's hook and edge.
func logStep(ctx context.Context, log *slog.Logger, level slog.Level, msg string, s *Step, attrs ...slog.Attr) {
	if !log.Enabled(ctx, level) {
		return
	}
	all := append([]slog.Attr{slog.String("hook", stepName(s.Hook, s.Edge)), slog.String("edge", s.Edge.String())}, attrs...)
	log.LogAttrs(ctx, level, msg, all...)
}

func (p *Plan) skipPost(ctx context.Context, log *slog.Logger, s *Step, status StepStatus) {
	p.skip(s, status)
	logStep(ctx, log, slog.LevelInfo, "skip post edge", s, slog.String("status", status.String()))
}

// skip marks a step as not run.
func (p *Plan) skip(s *Step, status StepStatus) {
	p.mu.Lock()
	s.Status = status
	p.mu.Unlock()
}

// failCancelled marks a step that could not start because ctx is done as
// failed, so that a cancelled plan reports HadError.
func (p *Plan) failCancelled(ctx context.Context, log *slog.Logger, s *Step) {
	now := time.Now()
	rep := &errorReport{hook: hookName(s.Hook), err: fmt.Errorf("cancelled before it ran: %w", context.Cause(ctx)), cancelled: true}
	p.mu.Lock()
	s.Status, s.Begin, s.End, s.Report = StepErr, now, now, rep
	p.mu.Unlock()
	logStep(ctx, log, slog.LevelError, "plan cancelled: skipping the callback, unwinding", s, slog.Any("err", context.Cause(ctx)))
}

// exec runs one step with ctx, records its outcome and returns its report
// and status. The wall clock is read once per step: End is Begin plus the
// time since, read on the monotonic clock.
func (p *Plan) exec(ctx context.Context, log *slog.Logger, s *Step, state map[interface{}]interface{}, env Env, dryRun bool) (HookReport, StepStatus) {
	begin := time.Now()
	p.mu.Lock()
	s.Status, s.Begin = StepExec, begin
	p.mu.Unlock()

	logStep(ctx, log, slog.LevelDebug, "run step", s)
	rep, status := p.runHook(ctx, log, s, state, env, dryRun)
	took := time.Since(begin)
	p.mu.Lock()
	s.Status, s.End, s.Report = status, begin.Add(took), rep
	p.mu.Unlock()

	switch {
	case status == StepOk:
		logStep(ctx, log, slog.LevelInfo, "step done", s, slog.Duration("duration", took))
	case s.Edge != Pre: // Run logs a Pre error with what it means for the plan
		logStep(ctx, log, slog.LevelError, "step failed", s, slog.Duration("duration", took), slog.String("err", rep.Error()))
	}
	return rep, status
}

// runHook runs the hook of s and returns a report that is safe to use, and
// the status of s: StepErr if the report has an error, StepSkipRequested if
// a Pre edge asks to skip the snapshot (see SkipReport), else StepOk. A
// panic, a nil report, or a report whose methods panic become an error
// report.
func (p *Plan) runHook(ctx context.Context, log *slog.Logger, s *Step, state map[interface{}]interface{}, env Env, dryRun bool) (rep HookReport, status StepStatus) {
	returned := false
	defer func() {
		v := recover()
		switch {
		case v == nil:
			return
		case !returned:
			logStep(ctx, log, slog.LevelError, "hook panicked", s, slog.Any("panic", v), slog.String("stack", string(debug.Stack())))
			rep = &errorReport{hook: hookName(s.Hook), err: fmt.Errorf("panic: %v", v)}
		case isNil(rep): // a method of a nil report panics too
			rep = &errorReport{hook: hookName(s.Hook), err: errors.New("hook returned no report")}
		default:
			rep = &errorReport{hook: hookName(s.Hook), err: fmt.Errorf("hook returned a report whose methods panic: %v", v)}
		}
		status = StepErr
	}()
	rep = s.Hook.Run(ctx, s.Edge, p.phase, dryRun, env, state)
	returned = true
	if hadError, _, _ := rep.HadError(), rep.Error(), rep.String(); hadError {
		return rep, StepErr
	}
	if sr, ok := rep.(SkipReport); ok && s.Edge == Pre && sr.SkipSnapshot() {
		return rep, StepSkipRequested
	}
	return rep, StepOk
}

// errorReport is the report of a step whose hook panicked or returned no
// usable report, or that could not run because the plan was cancelled.
type errorReport struct {
	hook      string
	err       error
	cancelled bool // the step could not start: the plan was cancelled
}

func (r *errorReport) String() string { return r.Error() }
func (r *errorReport) HadError() bool { return true }
func (r *errorReport) Error() string  { return r.hook + ": " + r.err.Error() }
func (r *errorReport) Unwrap() error  { return r.err }

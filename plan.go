package hooks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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
	// two edges share, and envs[i], the extra env its edges get.
	steps  []Step
	states []map[interface{}]interface{}
	envs   []Env
	cbEnv  Env    // the extra env of the callback
	shared bool   // every hook has the same env (a NewPlan): post edges can share theirs too
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
// interface or a nil pointer), or if a hook could not be started with
// extra: a variable longer than Linux allows one environment string (128
// KiB), or extra and the environment of this process together more than
// Linux allows a program (a quarter of the stack limit, at most 6 MiB, less
// 16 KiB kept for arguments); the error names the variable.
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
	envs := make([]Env, len(list))
	datasets := make([][]string, len(list))
	for i := range list {
		envs[i], datasets[i] = env, all
	}
	p, err := newPlan(list, phase, cb, envs, datasets, env, all)
	if err != nil {
		return nil, err
	}
	p.shared = true
	return p, nil
}

// newPlan makes the plan of list around cb. envs[i] is the extra env of hook
// i and datasets[i] the datasets it covers; cbEnv and cbDatasets are those
// of the callback.
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
		*p.pre(i) = Step{Hook: h, Edge: Pre, Status: StepPending, Datasets: datasets[i]}
		*p.post(i) = Step{Hook: h, Edge: Post, Status: StepPending, Datasets: datasets[i]}
		p.states[i] = make(map[interface{}]interface{})
	}
	*p.callback() = Step{Hook: cb, Edge: Callback, Status: StepPending, Datasets: cbDatasets}
	if err := checkExecEnvs(list, envs, hookName(cb), cbEnv); err != nil {
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
	preRan := make([]bool, p.hooks())
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
		preRan[i] = true
		rep := p.exec(ctx, log, s, p.states[i], p.envs[i], dryRun)
		switch {
		case wantsSkip(rep):
			why = stopSkip
			logStep(ctx, log, slog.LevelWarn, "pre edge asked to skip the snapshot: skipping the callback, unwinding", s)
		case !rep.HadError():
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
	postEnv := p.postEnvs(resultOf(cb.Status)) // only this goroutine writes statuses

	// Unwind. Cleanup must not depend on the caller's ctx still being alive.
	postCtx := context.WithoutCancel(ctx)
	for i := p.hooks() - 1; i >= 0; i-- {
		pre, post := p.pre(i), p.post(i)
		switch {
		case pre.Status == StepOk || preRan[i] && postOnPreError(post.Hook):
			p.exec(postCtx, log, post, p.states[i], postEnv(i, resultOf(pre.Status)), dryRun)
		case !preRan[i]:
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

// postEnvs returns the function that makes the env of the Post edge of
// hook i whose Pre edge ended in preResult: its hook's, with the results and
// SetPostEnv's env added. Hooks that share one env share these maps too, one
// per result.
func (p *Plan) postEnvs(cbResult string) func(i int, preResult string) Env {
	p.mu.Lock()
	override := p.postEnv
	p.mu.Unlock()
	byResult := map[string]Env{} // if p.shared
	return func(i int, preResult string) Env {
		if env, ok := byResult[preResult]; ok {
			return env
		}
		env := copyEnv(p.envs[i])
		env[EnvPreResult], env[EnvCallbackResult] = preResult, cbResult
		for k, v := range override {
			env[k] = v
		}
		if p.shared {
			byResult[preResult] = env
		}
		return env
	}
}

// resultOf is the value of EnvPreResult and EnvCallbackResult for a step
// that ended in status.
func resultOf(status StepStatus) string {
	switch status {
	case StepOk:
		return "ok"
	case StepErr:
		return "error"
	case StepSkipRequested:
		return "skip"
	}
	return "skipped"
}

// postBackstop is how much later than a hook's timeout the ctx of its Post
// edge ends: a hook that enforces its own timeout, like CommandHook, hits its
// own bound first and reports "timed out after <timeout>"; the plan's bound
// is only a backstop for hooks that do not.
const postBackstop = time.Second

// addSaturating returns t+d, or the latest time a Duration reaches from t if
// d is so large that the sum overflows (d has saturated already).
func addSaturating(t time.Time, d time.Duration) time.Time {
	if d < 0 { // an overflow of timeout+postBackstop
		d = 1<<63 - 1
	}
	return t.Add(d)
}

func logCancelled(ctx context.Context, log *slog.Logger, s *Step) {
	logStep(ctx, log, slog.LevelError, "plan cancelled: skipping the callback, unwinding", s, slog.Any("err", context.Cause(ctx)))
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
	logCancelled(ctx, log, s)
}

// exec runs one step and records its outcome. A Post edge runs bounded by
// its hook's timeout (DefaultHookTimeout for a hook that has none) plus
// postBackstop, from its Begin; Run passes it a ctx the caller no longer
// cancels. The wall clock is read once per step: End is Begin plus the time
// since, read on the monotonic clock.
func (p *Plan) exec(ctx context.Context, log *slog.Logger, s *Step, state map[interface{}]interface{}, env Env, dryRun bool) HookReport {
	begin := time.Now()
	p.mu.Lock()
	s.Status, s.Begin = StepExec, begin
	p.mu.Unlock()
	if s.Edge == Post {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, addSaturating(begin, hookTimeout(s.Hook)+postBackstop))
		defer cancel()
	}

	logStep(ctx, log, slog.LevelDebug, "run step", s)
	rep := p.runHook(ctx, log, s, state, env, dryRun)

	end := begin.Add(time.Since(begin))
	status := StepOk
	switch {
	case rep.HadError():
		status = StepErr
	case s.Edge == Pre && wantsSkip(rep):
		status = StepSkipRequested
	}
	p.mu.Lock()
	s.Status, s.End, s.Report = status, end, rep
	p.mu.Unlock()

	switch {
	case status == StepOk:
		logStep(ctx, log, slog.LevelInfo, "step done", s, slog.Duration("duration", end.Sub(s.Begin)))
	case s.Edge != Pre: // Run logs a Pre error with what it means for the plan
		logStep(ctx, log, slog.LevelError, "step failed", s, slog.Duration("duration", end.Sub(s.Begin)), slog.String("err", rep.Error()))
	}
	return rep
}

// runHook runs the hook of s and returns a report that is safe to use: a
// panic, a nil report, or a report whose methods panic become an error report.
func (p *Plan) runHook(ctx context.Context, log *slog.Logger, s *Step, state map[interface{}]interface{}, env Env, dryRun bool) (rep HookReport) {
	defer func() {
		if v := recover(); v != nil {
			logStep(ctx, log, slog.LevelError, "hook panicked", s, slog.Any("panic", v), slog.String("stack", string(debug.Stack())))
			rep = &errorReport{hook: hookName(s.Hook), err: fmt.Errorf("panic: %v", v)}
		}
	}()
	rep = s.Hook.Run(ctx, s.Edge, p.phase, dryRun, env, state)
	if err := checkReport(rep); err != nil {
		return &errorReport{hook: hookName(s.Hook), err: err}
	}
	return rep
}

// checkReport returns an error if rep is nil or one of its methods panics.
func checkReport(rep HookReport) (err error) {
	if isNil(rep) {
		return errors.New("hook returned no report")
	}
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("hook returned a report whose methods panic: %v", v)
		}
	}()
	_, _, _ = rep.HadError(), rep.Error(), rep.String()
	wantsSkip(rep)
	return nil
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

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

// Plan runs the hooks of one filesystem around a callback, as a stack: the
// Pre edges in order, the callback, the Post edges in reverse order. See the
// package documentation for which step runs or is skipped when.
//
// A Plan runs once. Its Report may be read at any time from any goroutine.
type Plan struct {
	phase Phase
	env   Env

	// pre[i] and post[i] belong to hook i and share states[i]; steps holds
	// the same steps in report order.
	pre, post []*Step
	callback  *Step
	steps     []*Step
	states    []map[interface{}]interface{}

	ran atomic.Bool

	// mu guards Status, Begin, End and Report of every step. It is held for
	// bookkeeping only, never while a hook runs.
	mu sync.Mutex
}

// NewPlan returns a plan that runs the hooks of *hooks around cb in the given
// phase. extra is added to the environment of every hook (typically EnvFS and
// EnvSnapshot). Every step starts StepPending. The list is read once, here; a
// nil hooks is an empty list. It fails if cb or a hook is nil.
func NewPlan(hooks *List, phase Phase, cb *CallbackHook, extra Env) (*Plan, error) {
	if cb == nil {
		return nil, errors.New("new plan: callback hook is nil")
	}
	var list List
	if hooks != nil {
		list = *hooks
	}
	n := len(list)
	p := &Plan{
		phase:  phase,
		env:    make(Env, len(extra)),
		pre:    make([]*Step, n),
		post:   make([]*Step, n),
		states: make([]map[interface{}]interface{}, n),
		steps:  make([]*Step, 0, 2*n+1),
	}
	for k, v := range extra {
		p.env[k] = v
	}
	// One allocation for all steps keeps NewPlan cheap for large lists.
	all := make([]Step, 2*n+1)
	for i, h := range list {
		if h == nil {
			return nil, fmt.Errorf("new plan: hook #%d is nil", i+1)
		}
		p.pre[i] = &all[i]
		p.post[i] = &all[n+1+i]
		*p.pre[i] = Step{Hook: h, Edge: Pre, Status: StepPending}
		*p.post[i] = Step{Hook: h, Edge: Post, Status: StepPending}
		p.states[i] = make(map[interface{}]interface{})
	}
	p.callback = &all[n]
	*p.callback = Step{Hook: cb, Edge: Callback, Status: StepPending}
	p.steps = append(p.steps, p.pre...)
	p.steps = append(p.steps, p.callback)
	for i := n - 1; i >= 0; i-- {
		p.steps = append(p.steps, p.post[i])
	}
	return p, nil
}

// Report returns a copy of the steps in report order: pre[0..n-1], callback,
// post[n-1..0]. It never waits for a running hook; a step that is running
// shows StepExec and its Begin.
func (p *Plan) Report() PlanReport {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := make(PlanReport, len(p.steps))
	for i, s := range p.steps {
		r[i] = *s
	}
	return r
}

// Run runs the plan once; later calls return at once. dryRun is passed to
// every hook and to hook scripts as ZREPL_DRYRUN=true; the callback runs in a
// dry run too and must check for itself whether to act.
//
// The Pre edges and the callback run with ctx. If ctx is done before or
// during the Pre edges, that is a fatal error: no further Pre edge and no
// callback runs. The Post edges never see the cancellation of ctx: they run
// with context.WithoutCancel(ctx), bounded by each hook's own timeout, so a
// lock taken in a Pre edge is released on shutdown too. A panic in a hook or
// in the callback makes its step StepErr ("panic: ...") and the plan goes on.
// The logger is taken from ctx (see WithLogger).
func (p *Plan) Run(ctx context.Context, dryRun bool) {
	if !p.ran.CompareAndSwap(false, true) {
		return
	}
	log := GetLogger(ctx)
	if fs, ok := p.env[EnvFS]; ok && log.Enabled(ctx, slog.LevelError) {
		log = log.With(slog.String("fs", fs))
	}

	fatal := false
	for i, s := range p.pre {
		if !fatal && ctx.Err() != nil {
			fatal = true
			logCancelled(ctx, log)
		}
		if fatal {
			p.skip(s, StepSkippedDueToFatalErr)
			continue
		}
		rep := p.exec(ctx, log, s, p.states[i], dryRun)
		if !rep.HadError() {
			continue
		}
		if s.Hook.ErrIsFatal() {
			fatal = true
			logStep(ctx, log, slog.LevelError, "fatal pre edge error: skipping the callback, unwinding", s, slog.String("err", rep.Error()))
		} else {
			logStep(ctx, log, slog.LevelWarn, "pre edge error: continuing", s, slog.String("err", rep.Error()))
		}
	}
	if !fatal && ctx.Err() != nil {
		fatal = true
		logCancelled(ctx, log)
	}

	if fatal {
		p.skip(p.callback, StepSkippedDueToFatalErr)
	} else {
		p.exec(ctx, log, p.callback, nil, dryRun)
	}

	// Unwind. Cleanup must not depend on the caller's ctx still being alive.
	// Only this goroutine writes the statuses, so it may read them unlocked.
	postCtx := context.WithoutCancel(ctx)
	for i := len(p.post) - 1; i >= 0; i-- {
		pre, post := p.pre[i], p.post[i]
		preRan := pre.Status == StepOk || pre.Status == StepErr
		switch {
		case pre.Status == StepOk || preRan && postOnPreError(post.Hook):
			p.execPost(postCtx, log, post, p.states[i], dryRun)
		case !preRan:
			p.skipPost(ctx, log, post, StepSkippedDueToFatalErr)
		case pre.Hook.ErrIsFatal():
			// As in zrepl, the fatal hook's own Post counts as skipped by
			// the fatal error.
			p.skipPost(ctx, log, post, StepSkippedDueToFatalErr)
		default:
			p.skipPost(ctx, log, post, StepSkippedDueToPreErr)
		}
	}
}

func logCancelled(ctx context.Context, log *slog.Logger) {
	log.LogAttrs(ctx, slog.LevelError, "plan cancelled before the callback: skipping it, unwinding", slog.Any("err", context.Cause(ctx)))
}

// logStep logs msg with the step's hook and edge, building the attributes
// only when the level is enabled: a plan without a logger must not allocate.
func logStep(ctx context.Context, log *slog.Logger, level slog.Level, msg string, s *Step, attrs ...slog.Attr) {
	if !log.Enabled(ctx, level) {
		return
	}
	all := append([]slog.Attr{slog.String("hook", hookName(s.Hook)), slog.String("edge", s.Edge.String())}, attrs...)
	log.LogAttrs(ctx, level, msg, all...)
}

func (p *Plan) skipPost(ctx context.Context, log *slog.Logger, s *Step, status StepStatus) {
	p.skip(s, status)
	logStep(ctx, log, slog.LevelInfo, "skip post edge", s, slog.String("status", status.String()))
}

// execPost runs a Post edge bounded by the hook's timeout, if it has one, or
// DefaultHookTimeout: ctx is no longer cancelled by the caller.
func (p *Plan) execPost(ctx context.Context, log *slog.Logger, s *Step, state map[interface{}]interface{}, dryRun bool) {
	bound := DefaultHookTimeout
	if t, ok := s.Hook.(timeouter); ok && t.Timeout() > 0 {
		bound = t.Timeout()
	}
	ctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	p.exec(ctx, log, s, state, dryRun)
}

func postOnPreError(h Hook) bool {
	x, ok := h.(postOnPreErrorer)
	return ok && x.PostOnPreError()
}

// skip marks a step as not run.
func (p *Plan) skip(s *Step, status StepStatus) {
	p.mu.Lock()
	s.Status = status
	p.mu.Unlock()
}

// exec runs one step and records its outcome. A panic in the hook is
// recovered into an error report.
func (p *Plan) exec(ctx context.Context, log *slog.Logger, s *Step, state map[interface{}]interface{}, dryRun bool) HookReport {
	p.mu.Lock()
	s.Status = StepExec
	s.Begin = time.Now()
	p.mu.Unlock()

	logStep(ctx, log, slog.LevelDebug, "run step", s)
	rep := p.runHook(ctx, log, s, state, dryRun)

	end := time.Now()
	status := StepOk
	if rep.HadError() {
		status = StepErr
	}
	p.mu.Lock()
	s.Status, s.End, s.Report = status, end, rep
	p.mu.Unlock()

	if status == StepOk {
		logStep(ctx, log, slog.LevelInfo, "step done", s, slog.Duration("duration", end.Sub(s.Begin)))
	} else if s.Edge != Pre { // Run logs a Pre error with what it means for the plan
		if log.Enabled(ctx, slog.LevelError) {
			logStep(ctx, log, slog.LevelError, "step failed", s, slog.Duration("duration", end.Sub(s.Begin)), slog.String("err", rep.Error()))
		}
	}
	return rep
}

func (p *Plan) runHook(ctx context.Context, log *slog.Logger, s *Step, state map[interface{}]interface{}, dryRun bool) (rep HookReport) {
	defer func() {
		if v := recover(); v != nil {
			logStep(ctx, log, slog.LevelError, "hook panicked", s, slog.Any("panic", v), slog.String("stack", string(debug.Stack())))
			rep = &errorReport{hook: hookName(s.Hook), err: fmt.Errorf("panic: %v", v)}
		}
	}()
	rep = s.Hook.Run(ctx, s.Edge, p.phase, dryRun, p.env, state)
	if rep == nil {
		rep = &errorReport{hook: hookName(s.Hook), err: errors.New("hook returned no report")}
	}
	return rep
}

// errorReport is the report of a step whose hook panicked or returned no
// report of its own.
type errorReport struct {
	hook string
	err  error
}

func (r *errorReport) String() string { return r.Error() }
func (r *errorReport) HadError() bool { return true }
func (r *errorReport) Error() string  { return r.hook + ": " + r.err.Error() }

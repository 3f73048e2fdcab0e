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

	// steps holds every step in report order: the Pre edges of hooks
	// 0..n-1, the callback, the Post edges of hooks n-1..0. Hook i owns
	// steps[i] and steps[2n-i] (see pre, post) and states[i], the state map
	// its two edges share.
	steps  []Step
	states []map[interface{}]interface{}

	ran atomic.Bool

	// mu guards Status, Begin, End and Report of every step. It is held for
	// bookkeeping only, never while a hook runs.
	mu sync.Mutex
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
		phase: phase,
		env:   make(Env, len(extra)),
		// One allocation for all steps keeps NewPlan cheap for large lists.
		steps:  make([]Step, 2*n+1),
		states: make([]map[interface{}]interface{}, n),
	}
	for k, v := range extra {
		p.env[k] = v
	}
	for i, h := range list {
		if h == nil {
			return nil, fmt.Errorf("new plan: hook #%d is nil", i+1)
		}
		*p.pre(i) = Step{Hook: h, Edge: Pre, Status: StepPending}
		*p.post(i) = Step{Hook: h, Edge: Post, Status: StepPending}
		p.states[i] = make(map[interface{}]interface{})
	}
	*p.callback() = Step{Hook: cb, Edge: Callback, Status: StepPending}
	return p, nil
}

// Report returns a copy of the steps in report order: pre[0..n-1], callback,
// post[n-1..0]. It never waits for a running hook; a step that is running
// shows StepExec and its Begin.
func (p *Plan) Report() PlanReport {
	r := make(PlanReport, len(p.steps)) // allocated before locking: the lock is for the copy only
	p.mu.Lock()
	copy(r, p.steps)
	p.mu.Unlock()
	return r
}

// Run runs the plan once; later calls return at once. dryRun is passed to
// every hook and to hook scripts as ZREPL_DRYRUN=true; the callback runs in a
// dry run too and must check for itself whether to act.
//
// The Pre edges and the callback run with ctx. If ctx is done before or
// during the Pre edges, that is a fatal error: no further Pre edge and no
// callback runs. The Post edges never see the cancellation of ctx: they run
// with context.WithoutCancel(ctx), bounded by each hook's own timeout (plus a
// second, so that the hook's own bound fires first), so a lock
// taken in a Pre edge is released on shutdown too. A panic in a hook or
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

	clk := newClock(!log.Enabled(ctx, slog.LevelError))
	fatal := false
	for i := range p.hooks() {
		s := p.pre(i)
		if !fatal && ctx.Err() != nil {
			fatal = true
			logCancelled(ctx, log)
		}
		if fatal {
			p.skip(s, StepSkippedDueToFatalErr)
			continue
		}
		rep := p.exec(ctx, log, s, p.states[i], dryRun, &clk, clk.begin())
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
		p.skip(p.callback(), StepSkippedDueToFatalErr)
	} else {
		p.exec(ctx, log, p.callback(), nil, dryRun, &clk, clk.begin())
	}

	// Unwind. Cleanup must not depend on the caller's ctx still being alive.
	// Only this goroutine writes the statuses, so it may read them unlocked.
	postCtx := context.WithoutCancel(ctx)
	var bounds []postContext // one per Post edge, allocated with the first
	for i := p.hooks() - 1; i >= 0; i-- {
		pre, post := p.pre(i), p.post(i)
		preRan := pre.Status == StepOk || pre.Status == StepErr
		switch {
		case pre.Status == StepOk || preRan && postOnPreError(post.Hook):
			if bounds == nil {
				bounds = make([]postContext, p.hooks())
			}
			p.execPost(&bounds[i], postCtx, log, post, p.states[i], dryRun, &clk)
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

// execPost runs a Post edge on ctx, which is no longer cancelled by the
// caller, bounded by the hook's timeout (DefaultHookTimeout for a hook that
// has none) plus postBackstop. bound is the (zero) postContext of the step.
func (p *Plan) execPost(bound *postContext, ctx context.Context, log *slog.Logger, s *Step, state map[interface{}]interface{}, dryRun bool, clk *clock) {
	d := DefaultHookTimeout
	if t, ok := s.Hook.(timeouter); ok && t.Timeout() > 0 {
		d = t.Timeout()
	}
	begin := clk.begin()
	bound.parent, bound.deadline = ctx, begin.Add(d+postBackstop)
	defer bound.release()
	p.exec(bound, log, s, state, dryRun, clk, begin)
}

// postBackstop is how much later than a hook's timeout the ctx of its Post
// edge ends: a hook that enforces its own timeout, like CommandHook, hits its
// own bound first and reports "timed out after <timeout>"; the plan's bound
// is only a backstop for hooks that do not.
const postBackstop = time.Second

// postContext is the ctx of a Post edge: context.WithDeadline(parent,
// deadline), where parent is no longer cancelled by the caller, made lazily.
// Deadline answers at once, and so do Value and Err until the real context
// is made; the real context, and the timer behind it, are made when someone
// asks for Done, for Err after the deadline, or derives a context from it
// (which asks for Done). Most in-process hooks never do, and a plan of them
// so costs no timer and no allocation per Post edge. Once the step is over
// (release) it is cancelled, as WithDeadline's ctx is by its cancel function.
//
// Once made, Value comes from the real context, so that a context derived
// from c hooks onto it as onto any context of the context package, and is
// cancelled with it at once.
type postContext struct {
	parent   context.Context
	deadline time.Time
	released atomic.Bool // the step is over
	made     atomic.Bool // ctx and cancel are set
	once     sync.Once
	ctx      context.Context    // context.WithDeadline(parent, deadline)
	cancel   context.CancelFunc // cancels ctx
}

// make returns the real context, making it on the first call, cancelled if
// the step is over.
func (c *postContext) make() context.Context {
	c.once.Do(func() {
		if c.released.Load() {
			c.ctx, c.cancel = context.WithCancel(c.parent)
		} else {
			c.ctx, c.cancel = context.WithDeadline(c.parent, c.deadline)
		}
		c.made.Store(true)
	})
	// released is stored before made is loaded in release, and made before
	// released is loaded here: one of the two sees the other and cancels.
	if c.released.Load() {
		c.cancel()
	}
	return c.ctx
}

// Deadline returns the deadline of the step.
func (c *postContext) Deadline() (time.Time, bool) { return c.deadline, true }

// Done returns a channel that is closed at the deadline or when the step is over.
func (c *postContext) Done() <-chan struct{} { return c.make().Done() }

// Err returns nil while the step runs and its deadline has not passed, then
// context.DeadlineExceeded or context.Canceled, as WithDeadline's ctx would.
func (c *postContext) Err() error {
	if !c.made.Load() && !c.released.Load() && time.Now().Before(c.deadline) {
		return nil
	}
	return c.make().Err()
}

// Value returns the value of the parent for key.
func (c *postContext) Value(key any) any {
	if c.made.Load() {
		return c.ctx.Value(key)
	}
	return c.parent.Value(key)
}

func (c *postContext) String() string { return "hooks.postContext" }

// release ends the step: the ctx is cancelled from now on.
func (c *postContext) release() {
	c.released.Store(true)
	if c.made.Load() {
		c.make() // cancels it
	}
}

func postOnPreError(h Hook) bool {
	x, ok := h.(postOnPreErrorer)
	return ok && x.PostOnPreError()
}

// clock reads the time for the Begin and End of the steps of one run of a
// plan, at less than the cost of two time.Now per step (which is most of the
// cost of a plan of in-process hooks):
//   - a reading is the time the run began plus the monotonic time elapsed
//     since: one read of the monotonic clock instead of a read of both
//     clocks (so a step of the wall clock during the run does not show in
//     Begin and End; durations are right in any case);
//   - when nothing is logged, only bookkeeping runs between the End of a step
//     and the Begin of the next, and one reading serves as both.
type clock struct {
	t0    time.Time
	quiet bool      // nothing is logged
	last  time.Time // the latest reading, if quiet
}

func newClock(quiet bool) clock {
	t0 := time.Now()
	return clock{t0: t0, quiet: quiet, last: t0}
}

func (c *clock) now() time.Time { return c.t0.Add(time.Since(c.t0)) }

// begin returns the Begin of a step that starts now.
func (c *clock) begin() time.Time {
	if c.quiet {
		return c.last
	}
	return c.now()
}

// end returns the End of a step that is done now.
func (c *clock) end() time.Time {
	c.last = c.now()
	return c.last
}

// skip marks a step as not run.
func (p *Plan) skip(s *Step, status StepStatus) {
	p.mu.Lock()
	s.Status = status
	p.mu.Unlock()
}

// exec runs one step, which begins now, and records its outcome. A panic in
// the hook is recovered into an error report.
func (p *Plan) exec(ctx context.Context, log *slog.Logger, s *Step, state map[interface{}]interface{}, dryRun bool, clk *clock, begin time.Time) HookReport {
	p.mu.Lock()
	s.Status = StepExec
	s.Begin = begin
	p.mu.Unlock()

	if log.Enabled(ctx, slog.LevelDebug) {
		logStep(ctx, log, slog.LevelDebug, "run step", s)
	}
	rep := p.runHook(ctx, log, s, state, dryRun)

	end := clk.end()
	status := StepOk
	if rep.HadError() {
		status = StepErr
	}
	p.mu.Lock()
	s.Status, s.End, s.Report = status, end, rep
	p.mu.Unlock()

	if status == StepOk {
		if log.Enabled(ctx, slog.LevelInfo) {
			logStep(ctx, log, slog.LevelInfo, "step done", s, slog.Duration("duration", end.Sub(s.Begin)))
		}
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

package hooks

import (
	"context"
	"log/slog"
	"time"
)

// consistency is the value of EnvConsistency for a callback that runs now:
// ConsistencyApplication if the plan has hooks and every Pre edge ran and
// succeeded, else ConsistencyCrash. Only the goroutine of Run, which writes
// the statuses, may call it.
func (p *Plan) consistency() string {
	if p.hooks() == 0 {
		return ConsistencyCrash
	}
	for i := range p.hooks() {
		if p.pre(i).Status != StepOk {
			return ConsistencyCrash
		}
	}
	return ConsistencyApplication
}

// execCallback runs the callback with the plan's callback env and
// EnvConsistency, which its step records.
func (p *Plan) execCallback(ctx context.Context, log *slog.Logger, dryRun bool) {
	cb := p.callback()
	label := p.consistency()
	p.mu.Lock()
	cb.Consistency = label
	p.mu.Unlock()
	logStep(ctx, log, slog.LevelDebug, "snapshot consistency", cb, slog.String("consistency", label))
	p.exec(withConsistency(ctx, &cb.Consistency), log, cb, nil, p.cbEnv, dryRun)
}

// failToStart ends a plan that could not start (its EnvFSListFile files
// could not be written): no hook runs, every hook's steps are skipped as by
// a fatal error, and the callback fails with err.
func (p *Plan) failToStart(ctx context.Context, log *slog.Logger, err error) {
	cb := p.callback()
	for i := range p.hooks() {
		p.skip(p.pre(i), StepSkippedDueToFatalErr)
		p.skip(p.post(i), StepSkippedDueToFatalErr)
	}
	now := time.Now()
	rep := &errorReport{hook: hookName(cb.Hook), err: err}
	p.mu.Lock()
	cb.Status, cb.Begin, cb.End, cb.Report = StepErr, now, now, rep
	p.mu.Unlock()
	logStep(ctx, log, slog.LevelError, "plan cannot start: skipping every step", cb, slog.String("err", err.Error()))
}

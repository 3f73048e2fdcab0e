package hooks

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Fate is what became of the snapshot of a plan: whether its callback ran,
// and if not, why not.
type Fate int

// The fates of a snapshot. See Outcome for the step that decided each.
const (
	// FatePending: the callback has not finished; the plan is still
	// running (or never ran).
	FatePending Fate = iota
	// FateTaken: the callback ran and succeeded.
	FateTaken
	// FateDryRun: the callback ran and succeeded in a dry run
	// (RunInfo.DryRun), so it took no snapshot.
	FateDryRun
	// FateFailed: the callback ran and failed.
	FateFailed
	// FateInterrupted: the callback ran and failed after the plan was
	// cancelled (RunInfo.Cancel): it may have taken the snapshot before it
	// was stopped, or not.
	FateInterrupted
	// FateSkipped: a Pre edge asked to skip the snapshot
	// (StepSkipRequested); the callback did not run.
	FateSkipped
	// FateFatal: the Pre edge of an err_is_fatal hook failed; the callback
	// did not run.
	FateFatal
	// FateCancelled: the plan was cancelled before the callback could
	// start; the callback did not run.
	FateCancelled
)

var fateNames = [...]string{"pending", "taken", "dry-run", "failed", "interrupted", "skipped", "fatal", "cancelled"}

// String returns the name of the fate, as in "skipped", or "Fate(n)".
func (f Fate) String() string {
	if f >= 0 && int(f) < len(fateNames) {
		return fateNames[f]
	}
	return "Fate(" + strconv.Itoa(int(f)) + ")"
}

// MarshalText encodes the fate as its String.
func (f Fate) MarshalText() ([]byte, error) { return []byte(f.String()), nil }

// RunInfo is what the caller of Plan.Run knows that the plan's report does
// not record. Its zero value means: not a dry run, not cancelled.
type RunInfo struct {
	// DryRun is true if the plan ran as a dry run: a callback that succeeds
	// then makes FateDryRun, not FateTaken.
	DryRun bool
	// Cancel is why the ctx of Plan.Run was cancelled (for a ctx made by
	// context.WithCancelCause, context.Cause), nil if it was not. Its text
	// completes "snapshot skipped: <snapshot>: " in Summary, so it should
	// say what happened: "interrupted by SIGTERM".
	Cancel error
	// CancelledAt is when the ctx was cancelled, if known. A cancellation
	// after the callback ended does not change the fate; without a time, a
	// cancellation counts as having come before.
	CancelledAt time.Time
}

// Outcome is the judgement of a plan's report: what became of the snapshot,
// which step decided it, and which other steps failed. PlanReport.Outcome
// makes it; Summary says it in one line.
type Outcome struct {
	Fate Fate
	// Decider is the step that decided the fate: the Pre edge that asked to
	// skip (FateSkipped) or failed (FateFatal), the step that could not
	// start because the plan was cancelled (FateCancelled; the zero Step if
	// only RunInfo.Cancel tells of the cancellation), else the callback.
	Decider Step
	// Cancel is the cause of a cancellation that decided the fate
	// (FateCancelled, FateInterrupted), nil otherwise.
	Cancel error
	// Failed are the steps that failed (StepErr), in report order, other
	// than the Decider and the steps that could not start because the plan
	// was cancelled.
	Failed []Step
}

// Outcome judges the report of a finished plan. A report of a plan that
// has not run its callback yet is FatePending. info adds what the report
// cannot know; its zero value is right for a plan that ran without a dry
// run and was not cancelled.
//
// The fate follows from the callback's step: Ok is FateTaken (FateDryRun in
// a dry run); Err is FateFailed, or FateInterrupted if the plan was
// cancelled before it ended, or FateCancelled if it could not start because
// of that; SkippedDueToSkip is FateSkipped; SkippedDueToFatalErr is
// FateCancelled if the plan was cancelled, else FateFatal.
func (r PlanReport) Outcome(info RunInfo) Outcome {
	var o Outcome
	cbAt := r.index(func(s Step) bool { return s.Edge == Callback })
	cancelledBefore := func(end time.Time) bool {
		return info.Cancel != nil && (info.CancelledAt.IsZero() || !info.CancelledAt.After(end))
	}
	decider := -1
	if cbAt < 0 {
		return o // FatePending
	}
	switch cb := r[cbAt]; {
	case cb.Status == StepPending || cb.Status == StepExec:
		o.Fate = FatePending
	case cb.Status == StepOk && info.DryRun:
		o.Fate, decider = FateDryRun, cbAt
	case cb.Status == StepOk:
		o.Fate, decider = FateTaken, cbAt
	case cb.Status == StepErr && cancelledStep(cb):
		o.Fate, o.Cancel, decider = FateCancelled, firstNonNil(info.Cancel, cancelCause(cb)), cbAt
	case cb.Status == StepErr && cancelledBefore(cb.End):
		o.Fate, o.Cancel, decider = FateInterrupted, info.Cancel, cbAt
	case cb.Status == StepErr:
		o.Fate, decider = FateFailed, cbAt
	case cb.Status == StepSkippedDueToSkip:
		o.Fate, decider = FateSkipped, r.index(func(s Step) bool { return s.Status == StepSkipRequested })
	default: // StepSkippedDueToFatalErr
		stopper := r.index(func(s Step) bool { return s.Edge == Pre && s.Status == StepErr && hookErrIsFatal(s.Hook) })
		cancelled := r.index(cancelledStep)
		switch {
		case cancelled >= 0:
			o.Fate, o.Cancel, decider = FateCancelled, firstNonNil(info.Cancel, cancelCause(r[cancelled])), cancelled
		case stopper >= 0 && cancelledBefore(r[stopper].End):
			// The fatal error may be the cancellation's doing (a hook
			// stopped by it); the cancellation happened in any case.
			o.Fate, o.Cancel = FateCancelled, info.Cancel
		case stopper >= 0:
			o.Fate, decider = FateFatal, stopper
		default:
			o.Fate, o.Cancel = FateCancelled, info.Cancel
		}
	}
	if decider >= 0 {
		o.Decider = r[decider]
	}
	for i, s := range r {
		if s.Status == StepErr && i != decider && !cancelledStep(s) {
			o.Failed = append(o.Failed, s)
		}
	}
	return o
}

// index returns the index of the first step of r for which match is true,
// or -1.
func (r PlanReport) index(match func(Step) bool) int {
	for i, s := range r {
		if match(s) {
			return i
		}
	}
	return -1
}

// cancelledStep reports whether s could not start because the plan was
// cancelled.
func cancelledStep(s Step) bool {
	e, ok := s.Report.(*errorReport)
	return ok && e.cancelled
}

// cancelCause returns the cause of the cancellation that kept s from
// starting.
func cancelCause(s Step) error {
	e, ok := s.Report.(*errorReport)
	if !ok {
		return nil
	}
	if cause := errors.Unwrap(e.err); cause != nil {
		return cause
	}
	return e.err
}

func firstNonNil(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// HadError reports whether anything went wrong: a step failed, the plan was
// cancelled, or the callback did not succeed for any reason but a skip asked
// for or a plan still running.
func (o Outcome) HadError() bool {
	switch o.Fate {
	case FateTaken, FateDryRun, FateSkipped, FatePending:
		return len(o.Failed) > 0
	}
	return true
}

// maxNamedFailures is how many failed steps FailureSummary names.
const maxNamedFailures = 3

// FailureSummary names the steps of o.Failed in words, as Summary does:
// "the post edge of /etc/hooks/unfreeze.sh failed", "" if none failed.
func (o Outcome) FailureSummary() string {
	if len(o.Failed) == 0 {
		return ""
	}
	var parts []string
	for i, s := range o.Failed {
		if i == maxNamedFailures {
			parts = append(parts, fmt.Sprintf("%d more", len(o.Failed)-i))
			break
		}
		parts = append(parts, fmt.Sprintf("the %s edge of %s", strings.ToLower(s.Edge.String()), hookName(s.Hook)))
	}
	var b strings.Builder
	for i, p := range parts {
		switch {
		case i == 0:
		case i == len(parts)-1:
			b.WriteString(" and ")
		default:
			b.WriteString(", ")
		}
		b.WriteString(p)
	}
	b.WriteString(" failed")
	return b.String()
}

// Summary says in one line what became of the snapshot named snapshot
// ("tank/db@daily"), what decided it, and which hooks failed:
//
//	ok: tank/db@s: the hooks succeeded and the snapshot was taken
//	hook error: tank/db@s: the snapshot was taken, but the post edge of /x failed
//	snapshot skipped: tank/db@s: pre hook /y asked to skip it; also, the pre edge of /x failed
//
// It names only what the report (and the RunInfo given to Outcome) shows:
// a skip by the hook that asked for it, a fatal error, a cancellation by its
// cause, a failed callback by its error, and then each failed step. The
// line holds no control character: they are escaped as Escape does.
func (o Outcome) Summary(snapshot string) string {
	return Escape(o.summary(snapshot))
}

func (o Outcome) summary(snapshot string) string {
	failures := o.FailureSummary()
	also := ""
	if failures != "" {
		also = "; also, " + failures
	}
	switch o.Fate {
	case FateTaken:
		if failures != "" {
			return fmt.Sprintf("hook error: %s: the snapshot was taken, but %s", snapshot, failures)
		}
		return fmt.Sprintf("ok: %s: the hooks succeeded and the snapshot was taken", snapshot)
	case FateDryRun:
		if failures != "" {
			return fmt.Sprintf("hook error (dry run): %s: %s; the snapshot ran as a dry run", snapshot, failures)
		}
		return fmt.Sprintf("ok (dry run): %s: the hooks and the snapshot ran as a dry run and succeeded", snapshot)
	case FateFailed:
		return fmt.Sprintf("snapshot failed: %s: %s%s", snapshot, reportError(o.Decider), also)
	case FateInterrupted:
		return fmt.Sprintf("snapshot unknown: %s: %v while the snapshot was being taken; whether it was taken is unknown%s", snapshot, o.Cancel, also)
	case FateSkipped:
		return fmt.Sprintf("snapshot skipped: %s: pre hook %s asked to skip it%s", snapshot, hookName(o.Decider.Hook), also)
	case FateFatal:
		return fmt.Sprintf("snapshot skipped: %s: a pre hook with err_is_fatal failed%s", snapshot, also)
	case FateCancelled:
		cause := "cancelled"
		if o.Cancel != nil {
			cause = o.Cancel.Error()
		}
		return fmt.Sprintf("snapshot skipped: %s: %s%s", snapshot, cause, also)
	}
	return fmt.Sprintf("not finished: %s: the plan has not run its callback yet", snapshot)
}

// reportError is the error of a failed step's report.
func reportError(s Step) string {
	if s.Report == nil {
		return "failed"
	}
	return s.Report.Error()
}

// Hooks returns the number of hooks of the plan whose report r is: each has
// a Pre and a Post step, and the callback one more.
func (r PlanReport) Hooks() int {
	if len(r) == 0 {
		return 0
	}
	return (len(r) - 1) / 2
}

package hooks

import (
	"context"
	"errors"
)

// HookJobCallback is the work a Plan wraps its hooks around, typically taking
// the snapshot. It runs with the ctx given to Plan.Run.
type HookJobCallback func(ctx context.Context) error

// CallbackHook is the Callback step of a Plan: a HookJobCallback with a name.
type CallbackHook struct {
	cb            HookJobCallback
	filter        Filter
	displayString string
	startsProgram bool // made by NewCommandCallbackHook: a plan checks its env (see NewPlan)
}

// NewCallbackHook returns a callback hook named displayString that runs cb and
// reports filter as its Filesystems.
func NewCallbackHook(displayString string, cb HookJobCallback, filter Filter) *CallbackHook {
	return &CallbackHook{cb: cb, filter: filter, displayString: displayString}
}

// NewCallbackHookForFilesystem returns a callback hook named displayString
// that runs cb and whose filter passes exactly fs. fs may be any Dataset (a
// *DatasetPath, or zrepl's *zfs.DatasetPath); a nil fs passes nothing.
func NewCallbackHookForFilesystem(displayString string, fs Dataset, cb HookJobCallback) *CallbackHook {
	f := exactFilter{}
	if !isNil(fs) {
		f.name, f.ok = fs.ToString(), true
	}
	return NewCallbackHook(displayString, cb, f)
}

// Filesystems returns the hook's filter.
func (h *CallbackHook) Filesystems() Filter { return h.filter }

// ErrIsFatal returns false: nothing runs after the callback that its error could stop.
func (h *CallbackHook) ErrIsFatal() bool { return false }

// String returns the display string.
func (h *CallbackHook) String() string { return h.displayString }

// Run calls the callback with ctx, which carries extra for CallbackEnv, and
// reports its error. The edge, phase, dry-run flag and state are not passed
// on: a callback that needs them captures them itself. A nil callback is an
// error, not a panic.
func (h *CallbackHook) Run(ctx context.Context, edge Edge, phase Phase, dryRun bool, extra Env, state map[interface{}]interface{}) HookReport {
	if h.cb == nil {
		return &CallbackHookReport{Name: h.displayString, Err: errors.New("no callback function")}
	}
	return &CallbackHookReport{Name: h.displayString, Err: h.cb(withCallbackEnv(ctx, extra))}
}

// CallbackHookReport is the report of a CallbackHook.
type CallbackHookReport struct {
	Name string
	Err  error
}

// String is the name when the callback succeeded, else Error().
func (r *CallbackHookReport) String() string {
	if r.Err != nil {
		return r.Error()
	}
	return r.Name
}

// Output returns the last bytes of the output of a callback made by
// NewCommandCallback that failed, or nil.
func (r *CallbackHookReport) Output() []byte {
	var e *outputError
	if errors.As(r.Err, &e) {
		return e.output
	}
	return nil
}

// HadError reports whether the callback returned an error.
func (r *CallbackHookReport) HadError() bool { return r.Err != nil }

// Error is "<name> error: <err>", or "" when the callback succeeded.
func (r *CallbackHookReport) Error() string {
	if r.Err == nil {
		return ""
	}
	return r.Name + " error: " + r.Err.Error()
}

// exactFilter passes exactly the dataset named name, if ok.
type exactFilter struct {
	name string
	ok   bool
}

func (f exactFilter) Filter(p *DatasetPath) (bool, error) {
	if p == nil {
		return false, errors.New("filter: nil dataset path")
	}
	return f.ok && f.name == p.ToString(), nil
}

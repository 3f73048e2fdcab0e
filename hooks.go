package hooks

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// Hook is one configured hook. A Plan calls Run once for the Pre edge and
// once for the Post edge of every hook in its list, with the same state map,
// so a hook can hand a resource (a database connection, say) from Pre to Post.
//
// Implementations must be safe for concurrent use: one List is typically
// shared by the plans of many filesystems running at the same time.
type Hook interface {
	// Filesystems is the filter that selects the filesystems this hook runs for.
	Filesystems() Filter
	// ErrIsFatal reports whether an error on the Pre edge stops the plan.
	// It has no meaning for the other edges.
	ErrIsFatal() bool
	// Run runs the hook for one edge and returns its report, never nil.
	// dryRun asks the hook to check what it can without changing anything.
	// extra carries the plan's environment (EnvFS, EnvSnapshot, ...).
	Run(ctx context.Context, edge Edge, phase Phase, dryRun bool, extra Env, state map[interface{}]interface{}) HookReport
	// String names the hook in reports and logs. It never contains a secret.
	String() string
}

// HookReport is the outcome of one Run of a Hook.
type HookReport interface {
	// String describes the outcome, ok or not.
	String() string
	// HadError reports whether the run failed.
	HadError() bool
	// Error describes the failure, or is "" when the run succeeded.
	Error() string
}

// List is an ordered list of hooks. The order is the configuration order:
// Pre edges run in it, Post edges in reverse.
type List []Hook

// Dataset is a dataset name as another package may hold it: *DatasetPath,
// or zrepl's own *zfs.DatasetPath. Only ToString is used: the name, with
// components separated by "/".
type Dataset interface {
	ToString() string
}

// datasetPath returns fs as a *DatasetPath, parsing its name if it is of
// another type. It fails for a nil fs or an invalid name.
func datasetPath(fs Dataset) (*DatasetPath, error) {
	if isNil(fs) {
		return nil, errors.New("dataset is nil")
	}
	if p, ok := fs.(*DatasetPath); ok {
		return p, nil
	}
	return NewDatasetPath(fs.ToString())
}

// CopyFilteredForFilesystem returns the hooks of l whose filter passes fs, in
// order. The hooks themselves are shared, not copied. fs may be any Dataset
// (a *DatasetPath, or zrepl's *zfs.DatasetPath). It fails if fs is not a
// valid dataset name, or if a filter fails or panics, naming the hook.
func (l List) CopyFilteredForFilesystem(fs Dataset) (List, error) {
	p, err := datasetPath(fs)
	if err != nil {
		return nil, fmt.Errorf("filter hooks: %w", err)
	}
	out := make(List, 0, len(l))
	for i, h := range l {
		pass, err := filterHook(h, p, false)
		if err != nil {
			return nil, fmt.Errorf("filter hook #%d (%s) for filesystem %q: %w", i+1, hookName(h), p.ToString(), err)
		}
		if pass {
			out = append(out, h)
		}
	}
	return out, nil
}

// filterHook reports whether the filter of h passes p or, if subtree is
// set, p or any dataset below it (see SubtreeFilter). A nil hook or filter,
// and a panic, are errors.
func filterHook(h Hook, p *DatasetPath, subtree bool) (pass bool, err error) {
	if isNil(h) {
		return false, errors.New("hook is nil")
	}
	defer func() {
		if v := recover(); v != nil {
			pass, err = false, fmt.Errorf("filter panicked: %v", v)
		}
	}()
	f := h.Filesystems()
	if isNil(f) {
		return false, errors.New("hook has no filter")
	}
	if subtree {
		if sf, ok := f.(SubtreeFilter); ok {
			return sf.FilterSubtree(p)
		}
	}
	return f.Filter(p)
}

// Edge is the point of a Plan at which a hook runs: before the callback, the
// callback itself, or after it.
type Edge uint

// The edges. Their values are those of zrepl.
const (
	Pre      Edge = 1
	Callback Edge = 2
	Post     Edge = 4
)

// String returns "Pre", "Callback" or "Post", or "Edge(n)" for other values.
func (e Edge) String() string {
	switch e {
	case Pre:
		return "Pre"
	case Callback:
		return "Callback"
	case Post:
		return "Post"
	}
	return "Edge(" + strconv.FormatUint(uint64(e), 10) + ")"
}

// StringForPhase returns the edge and phase joined by an underscore, as in
// "Pre_snapshot". Its lower-case form is the value of ZREPL_HOOKTYPE.
func (e Edge) StringForPhase(p Phase) string {
	return e.String() + "_" + string(p)
}

// MarshalText encodes the edge as its String.
func (e Edge) MarshalText() ([]byte, error) { return []byte(e.String()), nil }

// UnmarshalText decodes "Pre", "Callback" or "Post".
func (e *Edge) UnmarshalText(b []byte) error {
	for _, c := range []Edge{Pre, Callback, Post} {
		if string(b) == c.String() {
			*e = c
			return nil
		}
	}
	return fmt.Errorf("unknown edge %q", b)
}

// Phase names the job a plan belongs to. It appears in ZREPL_HOOKTYPE.
type Phase string

// The phases zrepl knows.
const (
	PhaseSnapshot Phase = "snapshot"
	PhaseTesting  Phase = "testing"
)

// HookEnvVar is the name of an environment variable set for hook scripts.
type HookEnvVar string

// The environment variables of a hook script, the same as zrepl's.
const (
	EnvType     HookEnvVar = "ZREPL_HOOKTYPE" // lower-case edge_phase: "pre_snapshot", "post_snapshot"
	EnvDryRun   HookEnvVar = "ZREPL_DRYRUN"   // "true" in a dry run, else ""
	EnvFS       HookEnvVar = "ZREPL_FS"       // the filesystem, e.g. "tank/db"
	EnvSnapshot HookEnvVar = "ZREPL_SNAPNAME" // the snapshot name, without "fs@"
	EnvTimeout  HookEnvVar = "ZREPL_TIMEOUT"  // the hook's timeout in whole seconds
)

// The environment variables this package adds to zrepl's.
const (
	// EnvFSList lists the datasets a hook runs for, one per line, in the
	// order of the plan's Scope (for a recursive scope, the roots it
	// matched). EnvFS is the first of them. The callback gets every dataset
	// of the plan. A one-dataset plan sets it to EnvFS.
	//
	// It is set only while it fits: a job plan (NewJobPlan) leaves it out
	// of the env of a hook or callback whose "ZREPL_FS_LIST=..." string
	// would be longer than MaxFSListEnv (64 KiB, about 1,800 datasets of 36
	// bytes), half of Linux's limit on one environment string (128 KiB,
	// MAX_ARG_STRLEN), past which no hook could start. EnvFSListFile always
	// has the whole list in a job plan of more than one dataset: scripts
	// that may see many datasets read that file.
	EnvFSList HookEnvVar = "ZREPL_FS_LIST"
	// EnvFSListFile is the path of a file that lists the same datasets as
	// EnvFSList, one per line (each line ends with a newline), however many
	// they are. Every hook and the callback of a job plan (NewJobPlan) of
	// more than one dataset get it; other plans do not set it. The file is
	// private (mode 0600, in a directory of mode 0700 made for the plan
	// with os.MkdirTemp, under os.TempDir), written when Plan.Run starts
	// and removed when Run returns, also after a panic or a cancellation; a
	// plan that never runs leaves no file. Hooks may read it, not keep it.
	EnvFSListFile HookEnvVar = "ZREPL_FS_LIST_FILE"
	// EnvConsistency tells the callback (the snapshot command) what the
	// snapshot will hold: ConsistencyApplication when at least one hook ran
	// and every Pre edge succeeded, else ConsistencyCrash (a Pre edge failed
	// without err_is_fatal, or no hook matched). Only the callback gets it;
	// the Step of the callback records it (Step.Consistency). With ZFS,
	// keep it on the snapshot as a user property:
	//
	//	zfs snapshot -o com.example:consistency="$ZREPL_CONSISTENCY" "$ZREPL_FS@$ZREPL_SNAPNAME"
	//
	// A Go callback reads it with CallbackEnv.
	EnvConsistency HookEnvVar = "ZREPL_CONSISTENCY"
	// EnvPreResult tells a Post edge how its own Pre edge ended: "ok",
	// "error" (the Post edge runs after an error only with
	// post_on_pre_error), or "skip" (the Pre edge asked to skip the
	// snapshot). It is not set for other edges.
	EnvPreResult HookEnvVar = "ZREPL_PRE_RESULT"
	// EnvCallbackResult tells a Post edge what became of the callback, the
	// snapshot: "ok", "error", or "skipped" (it did not run: a fatal error,
	// a cancellation or a skip came first). It is not set for other edges.
	EnvCallbackResult HookEnvVar = "ZREPL_CALLBACK_RESULT"
)

// The values of EnvConsistency.
const (
	// ConsistencyApplication is a snapshot taken while every matching
	// hook had brought its application to a consistent state: at least
	// one hook ran, and every Pre edge succeeded.
	ConsistencyApplication = "application"
	// ConsistencyCrash is a snapshot that holds what a crash at that
	// moment would leave: no hook matched, or a Pre edge failed.
	ConsistencyCrash = "crash"
)

// Env maps hook environment variables to their values.
type Env map[HookEnvVar]string

// NewHookEnv returns the environment of a hook run: EnvType from edge and
// phase, EnvDryRun, EnvTimeout in whole seconds, and every entry of extra,
// which wins over the others on a clash.
func NewHookEnv(edge Edge, phase Phase, dryRun bool, timeout time.Duration, extra Env) Env {
	env := make(Env, 3+len(extra))
	env[EnvType] = strings.ToLower(edge.StringForPhase(phase))
	env[EnvDryRun] = ""
	if dryRun {
		env[EnvDryRun] = "true"
	}
	env[EnvTimeout] = strconv.FormatInt(int64(timeout/time.Second), 10)
	maps.Copy(env, extra)
	return env
}

// HookFromConfig validates in, applies its defaults (see HookConfig.WithDefaults)
// and returns the hook it describes: a *CommandHook, *PgChkptHook,
// *MySQLLockTables or *MariaDBBackupStage (see HookTypes).
func HookFromConfig(in HookConfig) (Hook, error) {
	in = in.WithDefaults()
	if err := in.Validate(); err != nil {
		return nil, err
	}
	t, ok := lookupHookType(in.Type)
	if !ok {
		return nil, fmt.Errorf("type: unknown hook type %q", in.Type) // unreachable after Validate
	}
	return t.build(in)
}

// ListFromConfig returns the hooks of in, in order. The first invalid hook
// fails the whole list with an error that names it: "create hook #2: ...".
// A nil in is an empty list. The fsfreeze hooks of the list refuse to
// freeze the filesystems of the list's command hooks' executables.
func ListFromConfig(in *HookList) (*List, error) {
	if in == nil {
		return &List{}, nil
	}
	l := make(List, 0, len(*in))
	for i, c := range *in {
		h, err := HookFromConfig(c)
		if err != nil {
			return nil, fmt.Errorf("create hook #%d: %w", i+1, err)
		}
		l = append(l, h)
	}
	keepCommandScripts(*in, l)
	return &l, nil
}

// hookSettings holds what every configured hook has, with the methods of
// Hook (and of the optional interfaces a Plan asks for) that report it.
// CommandHook, PgChkptHook, MySQLLockTables and MariaDBBackupStage embed it.
type hookSettings struct {
	timeout        time.Duration
	errIsFatal     bool
	postOnPreError bool
	filter         Filter
}

// newHookSettings returns the settings of in, which has its defaults applied
// and is valid. A Timeout of 0 still becomes DefaultHookTimeout.
func newHookSettings(in HookConfig) (hookSettings, error) {
	filter, err := DatasetMapFilterFromConfig(in.Filesystems)
	if err != nil {
		return hookSettings{}, &ConfigError{Field: "filesystems", Err: err}
	}
	timeout := in.Timeout
	if timeout <= 0 {
		timeout = DefaultHookTimeout
	}
	return hookSettings{timeout: timeout, errIsFatal: in.ErrIsFatal, postOnPreError: in.PostOnPreError, filter: filter}, nil
}

// Filesystems returns the hook's filter.
func (s hookSettings) Filesystems() Filter { return s.filter }

// ErrIsFatal reports whether a Pre error of the hook stops the plan.
func (s hookSettings) ErrIsFatal() bool { return s.errIsFatal }

// PostOnPreError reports whether the Post edge runs although the Pre edge failed.
func (s hookSettings) PostOnPreError() bool { return s.postOnPreError }

// Timeout is how long one edge of the hook may take.
func (s hookSettings) Timeout() time.Duration { return s.timeout }

// postOnPreErrorer is implemented by hooks whose Post edge may run although
// their Pre edge failed (HookConfig.PostOnPreError).
type postOnPreErrorer interface{ PostOnPreError() bool }

// timeouter is implemented by hooks that know their timeout. A Plan uses it
// to bound Post edges that run after the caller's ctx was cancelled.
type timeouter interface{ Timeout() time.Duration }

// SkipReport is a HookReport that can ask the plan to skip the snapshot. A
// Pre edge whose report is a SkipReport with SkipSnapshot true and HadError
// false ends the Pre edges without an error: the step becomes
// StepSkipRequested, the callback and the later hooks are skipped
// (StepSkippedDueToSkip), and the earlier hooks' Post edges unwind as usual.
// CommandHookReport is one (HookConfig.SkipExitCode). On other edges
// SkipSnapshot has no effect.
type SkipReport interface {
	HookReport
	SkipSnapshot() bool
}

// The calls below ask a hook or report for something on behalf of a Plan.
// They never panic: a hook that is nil or panics gets a safe answer, so that
// one broken hook cannot stop the stack from unwinding.

// isNil reports whether v is a nil interface or holds a nil pointer, map,
// slice, func or channel.
func isNil(v any) bool {
	if v == nil {
		return true
	}
	switch r := reflect.ValueOf(v); r.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Slice, reflect.Func, reflect.Chan, reflect.Interface:
		return r.IsNil()
	}
	return false
}

// hookName returns h.String(), or a placeholder if h is nil or String panics.
func hookName(h Hook) (name string) {
	if isNil(h) {
		return "<nil hook>"
	}
	defer func() {
		if recover() != nil {
			name = fmt.Sprintf("<%T whose String panicked>", h)
		}
	}()
	return h.String()
}

// edgeStringer is implemented by hooks whose edges do different things, so
// that reports and logs name a step by what its edge does: the Post edge of
// mysql-lock-tables is "MySQL UNLOCK TABLES (...)", not the String of the
// hook, "MySQL FLUSH TABLES WITH READ LOCK (...)". EdgeString names the hook
// for a step of edge; it never contains a secret.
type edgeStringer interface{ EdgeString(edge Edge) string }

// stepName names the step of h for edge: EdgeString if h has it, else (and
// if EdgeString panics) hookName.
func stepName(h Hook, edge Edge) (name string) {
	es, ok := h.(edgeStringer)
	if !ok || isNil(h) {
		return hookName(h)
	}
	defer func() {
		if recover() != nil {
			name = hookName(h)
		}
	}()
	return es.EdgeString(edge)
}

// hookErrIsFatal returns h.ErrIsFatal(), or true if h is nil or it panics: a
// hook that cannot say is treated as one whose failure must stop the
// snapshot.
func hookErrIsFatal(h Hook) bool { return h == nil || ask(true, h.ErrIsFatal) }

// postOnPreError reports whether h asks for its Post edge after a failed Pre
// edge (false if it panics).
func postOnPreError(h Hook) bool {
	x, ok := h.(postOnPreErrorer)
	return ok && ask(false, x.PostOnPreError)
}

// hookTimeout returns the timeout of h, or DefaultHookTimeout if h has none
// (or Timeout panics).
func hookTimeout(h Hook) time.Duration {
	if t, ok := h.(timeouter); ok {
		if d := ask(0, t.Timeout); d > 0 {
			return d
		}
	}
	return DefaultHookTimeout
}

// ask returns f(), or fallback if f panics.
func ask[T any](fallback T, f func() T) (v T) {
	defer func() {
		if recover() != nil {
			v = fallback
		}
	}()
	return f()
}

// copyEnv returns a copy of env that the caller may change.
func copyEnv(env Env) Env {
	if env == nil {
		return Env{}
	}
	return maps.Clone(env)
}

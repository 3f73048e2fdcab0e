package hooks

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"
)

// StepStatus is the state of one Step of a Plan. The values are those of
// zrepl, each a single bit; the values this package adds come after them.
type StepStatus int

// The states of a step. A step starts Pending; Run moves it to Exec and then
// to Ok or Err, or straight to one of the Skipped states.
const (
	StepPending              StepStatus = 1 << iota // not run yet
	StepExec                                        // running now
	StepOk                                          // ran and succeeded
	StepErr                                         // ran and failed
	StepSkippedDueToFatalErr                        // not run: a fatal error or cancellation came first
	StepSkippedDueToPreErr                          // not run: a Post edge whose Pre edge failed
	// StepSkipRequested is a Pre edge that ran and asked to skip the
	// snapshot without an error (see SkipReport, HookConfig.SkipExitCode).
	StepSkipRequested
	// StepSkippedDueToSkip is a step that did not run because a Pre edge
	// asked to skip the snapshot: the later Pre edges, the callback, the
	// Post edges of those hooks and that of the hook that asked.
	StepSkippedDueToSkip
)

var stepStatusNames = []struct {
	s    StepStatus
	name string
}{
	{StepPending, "Pending"},
	{StepExec, "Exec"},
	{StepOk, "Ok"},
	{StepErr, "Err"},
	{StepSkippedDueToFatalErr, "SkippedDueToFatalErr"},
	{StepSkippedDueToPreErr, "SkippedDueToPreErr"},
	{StepSkipRequested, "SkipRequested"},
	{StepSkippedDueToSkip, "SkippedDueToSkip"},
}

// String returns the name of the status, as in "Ok", or "StepStatus(n)".
func (s StepStatus) String() string {
	for _, n := range stepStatusNames {
		if n.s == s {
			return n.name
		}
	}
	return "StepStatus(" + strconv.Itoa(int(s)) + ")"
}

// MarshalText encodes the status as its String.
func (s StepStatus) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText decodes a status name such as "Ok".
func (s *StepStatus) UnmarshalText(b []byte) error {
	for _, n := range stepStatusNames {
		if n.name == string(b) {
			*s = n.s
			return nil
		}
	}
	return fmt.Errorf("unknown step status %q", b)
}

// Step is one entry of a PlanReport: one edge of one hook, or the callback.
// A Step in a report is a copy; changing it changes nothing in the Plan.
type Step struct {
	Hook   Hook
	Edge   Edge
	Status StepStatus
	// Begin is set when the step starts to run (Exec), End when it is done.
	// Both are zero for a step that never ran.
	Begin, End time.Time
	// Report is the hook's report; nil while the step has not finished and
	// for skipped steps.
	Report HookReport
	// Datasets are the datasets the step runs for, in the plan's order: for
	// a hook, those its filter passed (for a recursive scope, the roots);
	// for the callback, all of the plan's. Empty if the plan was given none.
	Datasets []string
	// Consistency is, for a callback that ran, the value of EnvConsistency
	// it was given: ConsistencyApplication or ConsistencyCrash. It is ""
	// for other steps and for a callback that did not run.
	Consistency string
}

// fatalMark is "!" for the Pre edge of an err_is_fatal hook, else "~".
func (s Step) fatalMark() string {
	if s.Edge == Pre && !isNil(s.Hook) && hookErrIsFatal(s.Hook) {
		return "!"
	}
	return "~"
}

// Duration is how long the step ran: End−Begin once it is done, the time
// since Begin while it runs, zero if it never ran.
func (s Step) Duration() time.Duration {
	switch {
	case s.Begin.IsZero():
		return 0
	case s.Status == StepExec || s.End.IsZero():
		return time.Since(s.Begin)
	}
	return s.End.Sub(s.Begin)
}

// String formats the step as in zrepl's status display:
//
//	[Ok] [  12ms] ! [Pre]  /etc/hooks/freeze.sh
//
// The runtime is "..." while Pending, the time it has run while Exec, the
// duration rounded to milliseconds otherwise. "!" marks the Pre edge of an
// err_is_fatal hook, "~" every other step. The hook is named by what the
// edge does where the hook says so (the Post edge of mysql-lock-tables is
// "MySQL UNLOCK TABLES (...)"), else by its String. A step that runs for
// more than one dataset lists them after the hook: "(tank/db, tank/log)", or
// the first ten of them and how many more there are. A callback that ran
// ends with its consistency label: "consistency=application". Control runes
// of the hook's name or a dataset are escaped (see Escape), so the line is
// always one line and sends no control sequence to a terminal.
func (s Step) String() string {
	runtime := "..."
	if s.Status != StepPending {
		runtime = s.Duration().Round(time.Millisecond).String()
	}
	line := fmt.Sprintf("[%s] [%5s] %s [%s]  %s", s.Status, runtime, s.fatalMark(), s.Edge, stepName(s.Hook, s.Edge))
	if len(s.Datasets) > 1 {
		line += " (" + datasetsText(s.Datasets, ", ") + ")"
	}
	if s.Consistency != "" {
		line += " consistency=" + s.Consistency
	}
	return Escape(line)
}

// stepJSON is the serialised form of a Step.
type stepJSON struct {
	Step     int        `json:"step,omitempty"`
	Edge     Edge       `json:"edge"`
	Status   StepStatus `json:"status"`
	Hook     string     `json:"hook"`
	Fatal    bool       `json:"fatal"`
	Begin    *time.Time `json:"begin,omitempty"`
	End      *time.Time `json:"end,omitempty"`
	Duration string     `json:"duration"`
	Seconds  float64    `json:"duration_seconds"`
	Datasets []string   `json:"datasets,omitempty"`
	Report   string     `json:"report,omitempty"`
	Error    string     `json:"error,omitempty"`
	Output   string     `json:"output,omitempty"`

	Consistency string `json:"consistency,omitempty"` // of a callback that ran
}

// maxReportOutput bounds the captured output that the encodings of a failed
// step carry.
const maxReportOutput = 4 << 10

func (s Step) toJSON(n int) stepJSON {
	j := stepJSON{
		Step:     n,
		Edge:     s.Edge,
		Status:   s.Status,
		Hook:     stepName(s.Hook, s.Edge),
		Fatal:    s.fatalMark() == "!",
		Datasets: s.Datasets,
	}
	j.Consistency = s.Consistency
	if !s.Begin.IsZero() {
		b := s.Begin
		j.Begin = &b
	}
	if !s.End.IsZero() {
		e := s.End
		j.End = &e
	}
	d := s.Duration()
	j.Duration = d.Round(time.Millisecond).String()
	j.Seconds = d.Seconds()
	if s.Report != nil {
		j.Report = s.Report.String()
		if s.Report.HadError() {
			j.Error = s.Report.Error()
			j.Output = outputTail(s.Report, maxReportOutput)
		}
	}
	return j
}

// MarshalJSON encodes the step as an object with its edge, status, hook name,
// fatal flag, begin and end (RFC 3339, absent if zero), duration, datasets,
// the consistency label of a callback that ran ("consistency"), the text of
// its report and error, and for a failed command hook the last 4 KiB of its
// output ("output"). Statuses and edges are their names. The C1 and bidi
// controls (see IsControl), which encoding/json writes as they are, are
// escaped as "\u009b" like the C0 controls.
func (s Step) MarshalJSON() ([]byte, error) { return marshalEscaped(s.toJSON(0)) }

// marshalEscaped is json.Marshal of v with every control rune escaped.
func marshalEscaped(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return escapeWideControls(b), nil
}

// PlanReport is a snapshot of the steps of a Plan, in report order:
// pre[0..n-1], callback, post[n-1..0].
type PlanReport []Step

// HadError reports whether some step ended in StepErr.
func (r PlanReport) HadError() bool {
	for _, s := range r {
		if s.Status == StepErr {
			return true
		}
	}
	return false
}

// HadFatalError reports whether a fatal error or a cancellation kept the
// callback from running: some step was skipped because of it
// (StepSkippedDueToFatalErr), or could not start because the plan was
// cancelled. A report with a fatal error always has an error too (HadError).
func (r PlanReport) HadFatalError() bool {
	for _, s := range r {
		if s.Status == StepSkippedDueToFatalErr {
			return true
		}
		if e, ok := s.Report.(*errorReport); ok && e.cancelled {
			return true
		}
	}
	return false
}

// HadSkip reports whether a Pre edge asked to skip the snapshot
// (StepSkipRequested). The callback did not run, and that is not an error:
// HadError and HadFatalError may both be false. A caller that judges a plan
// by HadError alone must ask HadSkip, or look at the callback's status,
// before it counts the snapshot as taken.
func (r PlanReport) HadSkip() bool {
	for _, s := range r {
		if s.Status == StepSkipRequested {
			return true
		}
	}
	return false
}

// Callback returns the step of the callback, and false if r has none. Its
// Status tells whether the snapshot was taken: StepOk.
func (r PlanReport) Callback() (Step, bool) {
	for _, s := range r {
		if s.Edge == Callback {
			return s, true
		}
	}
	return Step{}, false
}

// String formats one line per step (see Step.String, which escapes control
// runes), numbered from 01, joined by newlines.
func (r PlanReport) String() string {
	var b strings.Builder
	for i, s := range r {
		if i > 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "%02d %s", i+1, s)
	}
	return b.String()
}

// MarshalJSON encodes the report as an array of steps (see Step.MarshalJSON),
// each with its 1-based number in "step".
func (r PlanReport) MarshalJSON() ([]byte, error) {
	out := make([]stepJSON, len(r))
	for i, s := range r {
		out[i] = s.toJSON(i + 1)
	}
	return marshalEscaped(out)
}

// WriteLogfmt writes the report to w as logfmt (encoded by go-logfmt), one
// line per step with the keys step (numbered from 1), edge, status, hook,
// fatal, begin and end (RFC 3339, when set), duration, datasets (joined by
// ",", when set), consistency, report, error and output (when set), valued
// as in MarshalJSON. Control runes are escaped as by NewLogfmtHandler. It
// writes all lines with one Write call; the error is that of the Write.
func (r PlanReport) WriteLogfmt(w io.Writer) error {
	var buf bytes.Buffer
	for i, s := range r {
		j := s.toJSON(i + 1)
		kv := []any{"step", j.Step, "edge", j.Edge, "status", j.Status, "hook", j.Hook, "fatal", j.Fatal}
		if j.Begin != nil {
			kv = append(kv, "begin", j.Begin.Format(time.RFC3339Nano))
		}
		if j.End != nil {
			kv = append(kv, "end", j.End.Format(time.RFC3339Nano))
		}
		kv = append(kv, "duration", j.Duration)
		if len(j.Datasets) > 0 {
			kv = append(kv, "datasets", strings.Join(j.Datasets, ","))
		}
		if j.Consistency != "" {
			kv = append(kv, "consistency", j.Consistency)
		}
		if j.Report != "" {
			kv = append(kv, "report", j.Report)
		}
		if j.Error != "" {
			kv = append(kv, "error", j.Error)
		}
		if j.Output != "" {
			kv = append(kv, "output", j.Output)
		}
		l := newLogfmtLine(nil)
		for k := 0; k < len(kv); k += 2 {
			l.appendPair(kv[k].(string), slog.AnyValue(kv[k+1]))
		}
		buf.Write(bytes.TrimPrefix(l.buf.Bytes(), []byte(" ")))
		buf.WriteByte('\n')
	}
	_, err := w.Write(buf.Bytes())
	return err
}

// outputTail returns the last max bytes, at most, of the output a step
// captured (see CommandHookReport.Output, CallbackHookReport.Output),
// starting at a line if one starts in them, as valid UTF-8; "" for reports
// without output.
func outputTail(rep HookReport, max int) string {
	r, ok := rep.(interface{ Output() []byte })
	if !ok || isNil(r) {
		return ""
	}
	out := r.Output()
	if len(out) > max {
		out = out[len(out)-max:]
		if i := bytes.IndexByte(out, '\n'); i >= 0 && i < len(out)-1 {
			out = out[i+1:]
		}
	}
	return strings.ToValidUTF8(string(out), "\uFFFD")
}

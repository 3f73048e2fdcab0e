package main

// The outcome of a hold: the report post prints, and the file that keeps it
// for a later post when the hold ended without one.

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/snaphooks/hooks"
)

// holdResultJSON is the object "snaphook pre --json" (when nothing is held)
// and "snaphook post --json" print.
type holdResultJSON struct {
	Datasets      []string         `json:"datasets"`
	Recursive     bool             `json:"recursive"`
	Snapshot      string           `json:"snapshot"`
	HolderPID     int              `json:"holder_pid"`
	OK            bool             `json:"ok"`
	HadError      bool             `json:"had_error"`
	HadFatalError bool             `json:"had_fatal_error"`
	Skipped       bool             `json:"skipped"` // a pre hook asked to skip the snapshot
	Fate          hooks.Fate       `json:"fate"`    // what became of the snapshot: taken, skipped, ...
	Expired       bool             `json:"expired"`
	Signal        string           `json:"signal,omitempty"` // a signal the holder received
	ExitCode      int              `json:"exit_code"`
	Result        string           `json:"result"`
	Steps         hooks.PlanReport `json:"steps"`
}

// resultFor renders the final report of the hold as post prints it: the
// text as run prints it, and the JSON. signal is the first signal the
// holder received, at, "" if none.
func (h *holder) resultFor(rep hooks.PlanReport, signal string, at time.Time) holdResult {
	outcome := rep.Outcome(runInfo(false, signal, at))
	code := exitCodeFor(outcome)
	summary, expired := h.summarize(rep, outcome)
	var text strings.Builder
	writeTextReport(&text, rep, summary)
	j, err := json.Marshal(holdResultJSON{
		Datasets:      h.job.Datasets,
		Recursive:     h.job.Recursive,
		Snapshot:      h.job.Snapshot,
		HolderPID:     os.Getpid(),
		OK:            code == exitOK,
		HadError:      rep.HadError(),
		HadFatalError: rep.HadFatalError(),
		Skipped:       rep.HadSkip(),
		Fate:          outcome.Fate,
		Expired:       expired,
		Signal:        signal,
		ExitCode:      code,
		Result:        summary,
		Steps:         rep,
	})
	if err != nil { // unreachable: every field encodes
		j = []byte(`{}`)
	}
	return holdResult{Owner: h.job.Owner, Code: code, Text: text.String(), JSON: j}
}

// summarize says in one line what became of the hold: the outcome's
// summary, in the words of a hold where the callback is the hold itself.
// expired is true if no post came within --max-hold.
func (h *holder) summarize(rep hooks.PlanReport, o hooks.Outcome) (summary string, expired bool) {
	target := snapshotTarget(h.job.Datasets, h.job.Recursive, h.job.Snapshot)
	cb, _ := rep.Callback()
	also := ""
	if f := o.FailureSummary(); f != "" {
		also = "; also, " + f
	}
	switch {
	case h.hasExpired() && o.Fate != hooks.FateTaken && o.Fate != hooks.FateSkipped:
		end := time.Now()
		if cb.End.After(cb.Begin) {
			end = cb.End
		}
		return fmt.Sprintf("hold expired: %s: no snaphook post came within %s after the holder started; the post edges ran at %s%s", target, h.maxHold, end.Format(time.RFC3339), also), true
	case o.Fate == hooks.FateTaken && len(o.Failed) == 0:
		return fmt.Sprintf("ok: %s: the hooks succeeded and held for %s, until snaphook post", target, cb.Duration().Round(time.Millisecond)), false
	case o.Fate == hooks.FateTaken:
		return fmt.Sprintf("hook error: %s: the hold lasted until snaphook post, but %s", target, o.FailureSummary()), false
	case o.Fate == hooks.FateFailed:
		return fmt.Sprintf("hold failed: %s: %s%s", target, cb.Report.Error(), also), false
	case o.Fate == hooks.FateInterrupted:
		return fmt.Sprintf("hold interrupted: %s: %v during the hold; whether the snapshot was taken is unknown%s", target, o.Cancel, also), false
	}
	return o.Summary(target) + "; nothing is held", false
}

// lastLine returns the last non-empty line of s.
func lastLine(s string) string {
	s = strings.TrimRight(s, "\n")
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// writeResult writes res to path (mode 0600), atomically.
func writeResult(path string, res holdResult) error {
	b, err := json.Marshal(res)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("write the result file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write the result file: %w", err)
	}
	return nil
}

// readResult reads and removes the result file a hold of owner's run left
// without a post. It returns false if there is none, or if it is another
// run's (which it leaves alone).
func readResult(path, owner string) (holdResult, bool, error) {
	if err := checkPrivate(path, false); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return holdResult{}, false, nil
		}
		return holdResult{}, false, err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return holdResult{}, false, err
	}
	var res holdResult
	if err := json.Unmarshal(b, &res); err != nil {
		_ = os.Remove(path)
		return holdResult{}, false, fmt.Errorf("%s: %w", filepath.Base(path), err)
	}
	if res.Owner != owner {
		return holdResult{}, false, nil
	}
	_ = os.Remove(path)
	return res, true, nil
}

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
	Expired       bool             `json:"expired"`
	Signal        string           `json:"signal,omitempty"` // a signal the holder received
	ExitCode      int              `json:"exit_code"`
	Result        string           `json:"result"`
	Steps         hooks.PlanReport `json:"steps"`
}

// resultFor renders the final report of the hold as post prints it: the
// text as run prints it, and the JSON.
func (h *holder) resultFor(rep hooks.PlanReport, signal string) holdResult {
	code := exitCodeFor(rep)
	target := snapshotTarget(h.job.Datasets, h.job.Recursive, h.job.Snapshot)
	cb, _ := rep.Callback()
	expired := cb.Status == hooks.StepErr && cb.Report != nil && strings.Contains(cb.Report.Error(), holdExpiredMsg)
	var summary string
	switch {
	case code == exitOK:
		summary = fmt.Sprintf("ok: %s: the hooks succeeded and held for %s, until snaphook post", target, cb.Duration().Round(time.Millisecond))
	case code == exitHookError:
		summary = fmt.Sprintf("hook error: %s: the hold lasted until snaphook post, but a hook failed", target)
	case expired:
		summary = fmt.Sprintf("hold expired: %s: no snaphook post came within %s; the post edges ran at %s", target, h.maxHold, cb.End.Format(time.RFC3339))
	case code == exitSkipped:
		summary = fmt.Sprintf("snapshot skipped: %s: %s asked to skip it; nothing is held", target, skipper(rep))
	case cb.Status == hooks.StepErr && cb.Report != nil && signal == "":
		summary = fmt.Sprintf("hold failed: %s: %s", target, cb.Report.Error())
	case signal != "":
		summary = fmt.Sprintf("snapshot skipped: %s: the holder was interrupted by %s; nothing is held", target, signal)
	default:
		summary = fmt.Sprintf("snapshot skipped: %s: a pre hook with err_is_fatal failed; nothing is held", target)
	}
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
		Expired:       expired,
		Signal:        signal,
		ExitCode:      code,
		Result:        summary,
		Steps:         rep,
	})
	if err != nil { // unreachable: every field encodes
		j = []byte(`{}`)
	}
	return holdResult{Code: code, Text: text.String(), JSON: j}
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

// readResult reads and removes the result file a hold left without a post.
// It returns false if there is none.
func readResult(path string) (holdResult, bool, error) {
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
	_ = os.Remove(path)
	var res holdResult
	if err := json.Unmarshal(b, &res); err != nil {
		return holdResult{}, false, fmt.Errorf("%s: %w", filepath.Base(path), err)
	}
	return res, true, nil
}

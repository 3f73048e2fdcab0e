package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/creack/pty"
	"github.com/snaphooks/hooks"
)

// The terminal control sequences of the live view: go to the start of the
// line, and clear from the cursor to the end of the line.
const (
	carriageReturn = "\r"
	clearToEOL     = "\x1b[K"
)

// terminalWidth reports whether f is a terminal and, if so, its width in
// columns (80 if the terminal does not say). A character device that is not
// a terminal, such as /dev/null, is not one.
func terminalWidth(f *os.File) (int, bool) {
	fi, err := f.Stat()
	if err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return 0, false
	}
	_, cols, err := pty.Getsize(f)
	if err != nil {
		return 0, false
	}
	if cols <= 0 {
		cols = 80
	}
	return cols, true
}

// liveView keeps one status line at the bottom of a terminal, recomputed and
// rewritten in place every interval until stop. Text written through
// logWriter clears the line first and redraws it, recomputed, after, so log
// records and the status line never mix on the screen even when they share
// it, and the line never shows an older state than the records above it.
type liveView struct {
	term   *os.File
	status func() string

	// mu guards width, line, shown and stopped, and is held while writing
	// to the terminal, so that a status update and a log record never
	// interleave.
	mu      sync.Mutex
	width   int
	line    string // the status line as last drawn
	shown   bool   // whether line is on the screen
	stopped bool

	bg *background // the refresh loop
}

// startLiveView draws status() on term now and then every interval.
func startLiveView(term *os.File, width int, interval time.Duration, status func() string) *liveView {
	v := &liveView{term: term, status: status, width: width, bg: newBackground()}
	v.refresh()
	v.bg.Go(func(ctx context.Context) {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				v.refresh()
			}
		}
	})
	return v
}

// refresh recomputes the status line and draws it.
func (v *liveView) refresh() {
	line := sanitize(v.status())
	width, ok := terminalWidth(v.term) // follow resizes
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.stopped {
		return
	}
	if ok {
		v.width = width
	}
	v.draw(line)
}

// draw makes line, a sanitized status line, the one on the screen,
// truncated to the width. mu must be held.
func (v *liveView) draw(line string) {
	v.line = truncate(line, v.width-1) // a full-width line would wrap on some terminals
	_, _ = io.WriteString(v.term, carriageReturn+v.line+clearToEOL)
	v.shown = true
}

// clearLine removes the status line from the screen. mu must be held.
func (v *liveView) clearLine() {
	if v.shown {
		_, _ = io.WriteString(v.term, carriageReturn+clearToEOL)
		v.shown = false
	}
}

// logWriter returns a writer to w that clears the status line before each
// write and draws it after, recomputed: the record may tell of a step that
// began or ended since the last refresh, and the line must not contradict
// it until the next one. Each write should be whole lines, as those of a
// slog handler are.
func (v *liveView) logWriter(w io.Writer) io.Writer {
	return writerFunc(func(p []byte) (int, error) {
		// The status is computed without holding mu, as in refresh: no
		// lock of the plan is ever taken under mu.
		line := sanitize(v.status())
		v.mu.Lock()
		defer v.mu.Unlock()
		v.clearLine()
		n, err := w.Write(p)
		if !v.stopped {
			v.draw(line)
		}
		return n, err
	})
}

// stop stops the updates and clears the status line. Writes through
// logWriter go straight to their writer after that.
func (v *liveView) stop() {
	v.bg.stop()
	v.mu.Lock()
	defer v.mu.Unlock()
	v.clearLine()
	v.stopped = true
}

type writerFunc func(p []byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// statusLine describes a running plan in one line: the step that runs now,
// as in the report, then the snapshot. The snapshot comes last, so that it is
// what a narrow terminal cuts off.
//
//	step 02/05 [Exec] [1.203s] ~ [Pre]  /etc/snaphook/hooks/template.sh  (tank/db@snaphook_20260101_120000_000)
//
// The step that runs now is the latest one in StepExec: steps run one after
// the other, so an earlier step still in StepExec can only be one whose hook
// never returned to the plan, and showing it would hide the progress of the
// plan. Between two steps, when none is in StepExec, it is the step that
// ended last; before the first, "0/N steps done".
func statusLine(target string, rep hooks.PlanReport) string {
	show := -1
	for i, st := range rep {
		if st.Status == hooks.StepExec {
			show = i
		}
	}
	if show < 0 {
		for i, st := range rep {
			if st.Status != hooks.StepPending {
				show = i
			}
		}
	}
	if show < 0 {
		return fmt.Sprintf("0/%d steps done  (%s)", len(rep), target)
	}
	return fmt.Sprintf("step %02d/%02d %s  (%s)", show+1, len(rep), rep[show], target)
}

// truncate cuts s to at most n runes, marking a cut with "...".
func truncate(s string, n int) string {
	if n < 4 {
		n = 4
	}
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-3]) + "..."
}

package main

// What pre and post share: one definition of their flags, so that the two
// lines of a run can be written alike, and the way they print.

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/snaphooks/hooks"
)

// maxMaxHold is the largest --max-hold: as long as a hook's timeout may be.
const maxMaxHold = hooks.MaxHookTimeout

// holdFlags are the flags of pre and post. Post takes them all: those that
// name the hold (--fs, -r, --snapshot, --hold-id) must agree with pre's;
// the others (-c, --prefix, --max-hold, --log-level) are pre's business and
// ignored by post, so that both lines may be the same but for the word.
type holdFlags struct {
	common           commonFlags
	snapshot, prefix string
	maxHold          time.Duration
	holdID           string
}

// register defines the flags of pre and post in fset.
func (f *holdFlags) register(fset *flag.FlagSet) {
	f.common.register(fset, flagConfig, flagScope, flagJSON, flagLogLevel, flagQuiet)
	fset.StringVar(&f.snapshot, "snapshot", "", "the snapshot `NAME`: pre passes it as ZREPL_SNAPNAME (default: $SANOID_SNAPNAME, else PREFIX and the UTC time); post, if given, checks that the hold is for it")
	fset.StringVar(&f.prefix, "prefix", "snaphook_", "the `PREFIX` of a name pre generates")
	fset.DurationVar(&f.maxHold, "max-hold", defaultMaxHold, "the dead-man switch: if no \"snaphook post\" came within `DURATION` after the holder started the pre edges, the holder runs the post edges by itself, logs an error, and a later post reports \"hold expired\"; more than 0, at most 24h")
	fset.StringVar(&f.holdID, "hold-id", "", "name the run with `ID`: post releases only a hold whose pre had the same ID (default: the run is the process that runs pre and post, as for sanoid, zfs-autobackup and a script)")
}

// splitOut is how pre and post print: errors on stderr at once; the log
// relayed from the holder on stderr and the report on stdout, both held
// back with --quiet until the exit code says whether to print them. With
// --json, every exit prints one JSON object on stdout.
type splitOut struct {
	cmd  string // "pre" or "post"
	s    streams
	json bool

	log    io.Writer     // the relayed log: s.Stderr or tail
	report io.Writer     // the report: s.Stdout or reportBuf
	tail   *logTail      // with --quiet: the last of the log
	buf    *bytes.Buffer // with --quiet: the report

	datasets  []string // the hold, once known, for the JSON of a failure
	recursive bool
	snapshot  string
}

// newSplitOut returns the output of command cmd with the flags c.
func newSplitOut(cmd string, s streams, c *commonFlags) *splitOut {
	o := &splitOut{cmd: cmd, s: s, json: c.json, log: s.Stderr, report: s.Stdout}
	if c.quiet {
		o.tail, o.buf = newLogTail(quietLogLimit), &bytes.Buffer{}
		o.log, o.report = o.tail, o.buf
	}
	return o
}

// finish returns code after printing what --quiet held back, if code is
// not 0.
func (o *splitOut) finish(code int) int {
	if o.tail != nil && code != exitOK {
		o.tail.writeTo(o.s.Stderr)
		_, _ = o.s.Stdout.Write(o.buf.Bytes())
	}
	return code
}

// splitFailJSON is what pre --json and post --json print when they end
// without a report of hook steps: nothing was held or released.
type splitFailJSON struct {
	OK        bool       `json:"ok"`
	Held      bool       `json:"held"`
	Datasets  []string   `json:"datasets,omitempty"`
	Recursive bool       `json:"recursive"`
	Snapshot  string     `json:"snapshot,omitempty"`
	HeldBy    *holdEntry `json:"held_by,omitempty"` // the live hold in the way
	ExitCode  int        `json:"exit_code"`
	Error     string     `json:"error"`
}

// fail prints "snaphook CMD: message" on stderr and, with --json, the
// failure as JSON on stdout, and returns code. blocker is the live hold
// that was in the way, if any.
func (o *splitOut) fail(code int, blocker *holdEntry, format string, a ...any) int {
	msg := sanitize(fmt.Sprintf(format, a...))
	fmt.Fprintf(o.s.Stderr, "snaphook %s: %s\n", o.cmd, msg)
	o.failJSON(code, blocker, msg)
	return o.finish(code)
}

// usage prints a usage error, and the JSON with --json, and returns
// exitUsage.
func (o *splitOut) usage(msg string) int {
	code := usageError(o.s, o.cmd, msg)
	o.failJSON(code, nil, msg)
	return o.finish(code)
}

func (o *splitOut) failJSON(code int, blocker *holdEntry, msg string) {
	if !o.json {
		return
	}
	b, _ := json.MarshalIndent(splitFailJSON{
		Datasets: o.datasets, Recursive: o.recursive, Snapshot: o.snapshot,
		HeldBy: blocker, ExitCode: code, Error: msg,
	}, "", "  ")
	fmt.Fprintf(o.s.Stdout, "%s\n", b)
}

package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"syscall"
)

const postHelp = `Usage: snaphook post [--fs DATASET]... [-r] [flags]

Asks the holder that "snaphook pre" left for the same datasets to run the
post_snapshot edges, prints its log to stderr as they run and the report of
the whole hold (pre edges, the hold, post edges) to stdout, and exits with
the code "snaphook run" would have.

Without --fs, the datasets come from $SANOID_TARGETS, as for pre. -c FILE may
be given, so that pre's line can be reused, but the post edges are those of
the config pre read; a different FILE is logged as a warning.

If the holder's --max-hold passed before this post, the holder has already
run the post edges: post prints that report, which says "hold expired", and
exits 2. If no holder exists for the datasets, post says so and exits 2.

Flags:
  -c, --config FILE   optional, see above
  --fs DATASET        a dataset given to pre; may be repeated
  -r, --recursive     as given to pre
  --json              print the report as JSON
  -h, --help          show this help

` + exitCodesHelp + `  (post also exits 2 when no hold was found: no pre ran, pre failed, or
  the hold ended and its report was already given to another post)
`

func postCommand(args []string, s streams) int {
	var (
		target  targetFlags
		config  string
		jsonOut bool
	)
	fset := flag.NewFlagSet("post", flag.ContinueOnError)
	fset.StringVar(&config, "c", "", "")
	fset.StringVar(&config, "config", "", "")
	target.add(fset)
	fset.BoolVar(&jsonOut, "json", false, "")
	if code, done := parseFlags(fset, args, postHelp, s); done {
		return code
	}
	if fset.NArg() > 0 {
		return usageError(s, "post", fmt.Sprintf("unexpected argument %q", fset.Arg(0)))
	}
	datasets, _, err := target.datasets()
	if err != nil {
		return usageError(s, "post", err.Error())
	}
	if config != "" && config != "-" {
		if abs, err := filepath.Abs(config); err == nil {
			config = abs
		}
	}
	dir, err := runDir()
	if err != nil {
		fmt.Fprintf(s.Stderr, "snaphook post: %v\n", err)
		return exitUsage
	}
	files := newHoldFiles(dir, datasets, target.recursive)
	what := datasetList(datasets, target.recursive)
	print := func(res *holdResult) int {
		printResult(s, res, jsonOut)
		return res.Code
	}
	// noHolder reports what became of a hold whose holder is gone.
	noHolder := func(why string) int {
		res, ok, err := readResult(files.Result)
		switch {
		case err != nil:
			fmt.Fprintf(s.Stderr, "snaphook post: %s: %s; and its result file: %v\n", what, why, err)
			return exitSnapshotFailed
		case ok:
			fmt.Fprintf(s.Stderr, "snaphook post: %s: the hold ended before this post; its report:\n", what)
			return print(&res)
		}
		fmt.Fprintf(s.Stderr, "snaphook post: no hold for %s: %s (did snaphook pre run for the same datasets, and succeed?)\n", what, why)
		return exitSnapshotFailed
	}

	conn, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: files.Sock, Net: "unix"})
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) {
			return noHolder("no holder is listening on " + files.Sock)
		}
		fmt.Fprintf(s.Stderr, "snaphook post: connect to the holder of %s: %v\n", what, err)
		return exitSnapshotFailed
	}
	defer conn.Close()
	if uid, err := peerUID(conn); err != nil || uid != os.Geteuid() {
		fmt.Fprintf(s.Stderr, "snaphook post: the process on %s is not a holder of this user (uid %d, %v)\n", files.Sock, uid, err)
		return exitSnapshotFailed
	}
	if err := (msgWriter{conn}).send(message{Post: &postReq{PID: os.Getpid(), Config: config}}); err != nil {
		return noHolder(fmt.Sprintf("the holder went away (%v)", err))
	}
	r := newMsgReader(conn)
	for {
		msg, err := r.next()
		switch {
		case err != nil:
			return noHolder(fmt.Sprintf("the holder went away before its report (%v)", err))
		case msg.Log != "":
			fmt.Fprintln(s.Stderr, msg.Log)
		case msg.Error != "":
			fmt.Fprintf(s.Stderr, "snaphook post: holder of %s: %s\n", what, sanitize(msg.Error))
			return exitSnapshotFailed
		case msg.Done != nil:
			return print(msg.Done)
		}
	}
}

// printResult prints the final report of a hold to stdout: as JSON
// (indented, as "snaphook run --json") or as text.
func printResult(s streams, res *holdResult, jsonOut bool) {
	if !jsonOut {
		fmt.Fprint(s.Stdout, res.Text)
		return
	}
	var b bytes.Buffer
	if err := json.Indent(&b, res.JSON, "", "  "); err != nil {
		b.Reset()
		b.Write(res.JSON)
	}
	fmt.Fprintf(s.Stdout, "%s\n", b.Bytes())
}

// checkLogLevel checks a --log-level value.
func checkLogLevel(s string) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(s)); err != nil {
		return fmt.Errorf("--log-level: %q is not one of debug, info, warn, error", s)
	}
	return nil
}

// heldJSON is what "snaphook pre --json" prints when it leaves a hold.
type heldJSON struct {
	Held      bool            `json:"held"`
	Datasets  []string        `json:"datasets"`
	Recursive bool            `json:"recursive"`
	Snapshot  string          `json:"snapshot"`
	HolderPID int             `json:"holder_pid"`
	MaxHold   string          `json:"max_hold"`
	PreError  bool            `json:"pre_error"`
	Result    string          `json:"result"`
	Steps     json.RawMessage `json:"steps"`
}

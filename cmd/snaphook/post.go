package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"
)

// postAbout is the help of post between its usage and its flags.
const postAbout = `Asks the holder that "snaphook pre" left for the same datasets to run the
post_snapshot edges, prints its log to stderr as they run and the report of
the whole hold (pre edges, the hold, post edges) to stdout, and exits with
the code "snaphook run" would have.

Without --fs, the datasets come from $SANOID_TARGETS, as for pre. -c FILE may
be given, so that pre's line can be reused, but the post edges are those of
the config pre read; a different FILE is logged as a warning.

If the holder's --max-hold passed before this post, the holder has already
run the post edges: post prints that report, which says "hold expired", and
exits 2. If no holder exists for the datasets, post says so and exits 2.

`

// postExits is the exit status section of post's help.
const postExits = exitCodesHelp + `  (post also exits 2 when no hold was found: no pre ran, pre failed, or
  the hold ended and its report was already given to another post)
`

// setupPost defines the flags of post.
func setupPost(fset *flag.FlagSet) func([]string, streams) int {
	var c commonFlags
	c.register(fset, flagConfig, flagScope, flagJSON)
	return func(args []string, s streams) int { return postCommand(&c, args, s) }
}

// postCommand is the post command, after its flags: find the holder of the
// datasets and have it unwind, or read the result of a hold that ended.
func postCommand(c *commonFlags, args []string, s streams) int {
	if len(args) > 0 {
		return usageError(s, "post", fmt.Sprintf("unexpected argument %q", args[0]))
	}
	datasets, _, err := holdDatasets(&c.scope)
	if err != nil {
		return usageError(s, "post", err.Error())
	}
	config := c.config
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
	p := poster{s: s, files: newHoldFiles(dir, datasets, c.scope.recursive), what: datasetList(datasets, c.scope.recursive), json: c.json}
	return p.post(config)
}

// poster is one post: the hold it asks for, and how it prints.
type poster struct {
	s     streams
	files holdFiles
	what  string // the datasets, for messages
	json  bool
}

// post asks the holder to unwind and prints its log and its report.
func (p poster) post(config string) int {
	s := p.s
	conn, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: p.files.Sock, Net: "unix"})
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) {
			return p.noHolder("no holder is listening on " + p.files.Sock)
		}
		fmt.Fprintf(s.Stderr, "snaphook post: connect to the holder of %s: %v\n", p.what, err)
		return exitSnapshotFailed
	}
	defer conn.Close()
	if uid, err := peerUID(conn); err != nil || uid != os.Geteuid() {
		fmt.Fprintf(s.Stderr, "snaphook post: the process on %s is not a holder of this user (uid %d, %v)\n", p.files.Sock, uid, err)
		return exitSnapshotFailed
	}
	if err := (msgWriter{conn}).send(message{Post: &postReq{PID: os.Getpid(), Config: config}}); err != nil {
		return p.noHolder(fmt.Sprintf("the holder went away (%v)", err))
	}
	r := newMsgReader(conn)
	for {
		msg, err := r.next()
		switch {
		case err != nil:
			return p.noHolder(fmt.Sprintf("the holder went away before its report (%v)", err))
		case msg.Log != "":
			fmt.Fprintln(s.Stderr, msg.Log)
		case msg.Error != "":
			fmt.Fprintf(s.Stderr, "snaphook post: holder of %s: %s\n", p.what, sanitize(msg.Error))
			return exitSnapshotFailed
		case msg.Done != nil:
			printResult(s, msg.Done, p.json)
			return msg.Done.Code
		}
	}
}

// noHolder reports what became of a hold whose holder is gone: the result
// it left, if any.
func (p poster) noHolder(why string) int {
	res, ok, err := readResult(p.files.Result)
	switch {
	case err != nil:
		fmt.Fprintf(p.s.Stderr, "snaphook post: %s: %s; and its result file: %v\n", p.what, why, err)
		return exitSnapshotFailed
	case ok:
		fmt.Fprintf(p.s.Stderr, "snaphook post: %s: the hold ended before this post; its report:\n", p.what)
		printResult(p.s, &res, p.json)
		return res.Code
	}
	fmt.Fprintf(p.s.Stderr, "snaphook post: no hold for %s: %s (did snaphook pre run for the same datasets, and succeed?)\n", p.what, why)
	return exitSnapshotFailed
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

package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// postAbout is the help of post between its usage and its flags.
const postAbout = `Asks the holder that "snaphook pre" of the same run left for the same
datasets to run the post_snapshot edges, prints its log to stderr as they
run and the report of the whole hold (pre edges, the hold, post edges) to
stdout, and returns once the hold is gone, with the code "snaphook run"
would have.

A run is the process that runs pre and post (sanoid, zfs-autobackup, the
shell of a script), or the ID of --hold-id. post releases only its own
run's hold: if this run's pre did not hold (it failed, or another hold
overlapped), or the hold is another run's, post says so and exits 2.

post takes pre's flags, so that both lines may be alike: --fs, -r,
--snapshot and --hold-id must name the hold pre made; the others are
pre's business. Without --fs, the datasets come from $SANOID_TARGETS and
the snapshot from $SANOID_SNAPNAME, as for pre. The post edges see post's
environment (SANOID_SCRIPT=post), and ZREPL_CALLBACK_RESULT from
--snapshot-result: "unknown" unless the caller says.

If --max-hold passed before this post, the holder has already run the
post edges: post prints that report, which says "hold expired", and exits 2.

`

// postExits is the exit status section of post's help.
const postExits = exitCodesHelp + `  (post also exits 2 when it released nothing: no pre ran, this run's
  pre did not hold, the hold is another run's, or its report was already
  given to another post)
`

// postOptions are the flags of post: those of pre, and --snapshot-result.
type postOptions struct {
	holdFlags
	snapshotResult string
}

// setupPost defines the flags of post.
func setupPost(fset *flag.FlagSet) func([]string, streams) int {
	o := &postOptions{}
	o.register(fset)
	fset.StringVar(&o.snapshotResult, "snapshot-result", "unknown", "what became of the snapshot, if the caller knows: ok, failed or unknown; the post edges get it as ZREPL_CALLBACK_RESULT (ok, error or unknown), and failed makes the hold's outcome a failed snapshot")
	return o.run
}

// run is the post command, after its flags: find the hold of this run for
// the datasets and have its holder unwind, or read the result of a hold
// that ended.
func (o *postOptions) run(args []string, s streams) int {
	out := newSplitOut("post", s, &o.common)
	if len(args) > 0 {
		return out.usage(fmt.Sprintf("unexpected argument %q", args[0]))
	}
	switch o.snapshotResult {
	case "ok", "failed", "unknown":
	default:
		return out.usage(fmt.Sprintf("--snapshot-result %q is not one of ok, failed, unknown", o.snapshotResult))
	}
	datasets, fromSanoid, err := holdDatasets(&o.common.scope)
	if err != nil {
		return out.usage(err.Error())
	}
	snapshot := o.snapshot
	if snapshot == "" && fromSanoid {
		// sanoid 2.1 passes "dataset@name" to the post script.
		env := os.Getenv("SANOID_SNAPNAME")
		snapshot = env[strings.LastIndexByte(env, '@')+1:]
	}
	out.datasets, out.recursive, out.snapshot = datasets, o.common.scope.recursive, snapshot
	owner, err := holdOwner(o.holdID)
	if err != nil {
		return out.fail(exitUsage, nil, "%v", err)
	}
	config := o.common.config
	if config != "" && config != "-" {
		if abs, err := filepath.Abs(config); err == nil {
			config = abs
		}
	}
	dir, err := runDir()
	if err != nil {
		return out.fail(exitUsage, nil, "%v", err)
	}
	p := poster{
		out: out, dir: dir, files: newHoldFiles(dir, datasets, out.recursive), what: datasetList(datasets, out.recursive),
		req: postReq{PID: os.Getpid(), Config: config, Owner: owner, Env: os.Environ(), SnapshotResult: o.snapshotResult},
	}
	return out.finish(p.post())
}

// poster is one post: the hold it asks for, and how it prints.
type poster struct {
	out   *splitOut
	dir   string
	files holdFiles
	what  string  // the datasets, for messages
	req   postReq // what it asks of the holder
}

// post finds the hold of this run, asks its holder to unwind and prints its
// log and its report.
func (p poster) post() int {
	found, code := p.find()
	if !found {
		return code
	}
	conn, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: p.files.Sock, Net: "unix"})
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) {
			return p.noHolder("its holder ended just now")
		}
		return p.out.fail(exitSnapshotFailed, nil, "connect to the holder of %s: %v", p.what, err)
	}
	defer conn.Close()
	if uid, err := peerUID(conn); err != nil || uid != os.Geteuid() {
		return p.out.fail(exitSnapshotFailed, nil, "the process on %s is not a holder of this user (uid %d, %v)", p.files.Sock, uid, err)
	}
	if err := (msgWriter{conn}).send(message{Post: &p.req}); err != nil {
		return p.noHolder(fmt.Sprintf("the holder went away (%v)", err))
	}
	r := newMsgReader(conn)
	for {
		msg, err := r.next()
		switch {
		case err != nil:
			return p.noHolder(fmt.Sprintf("the holder went away before its report (%v)", err))
		case msg.Log != "":
			fmt.Fprintln(p.out.log, msg.Log)
		case msg.Error != "":
			return p.out.fail(exitSnapshotFailed, nil, "holder of %s: %s", p.what, msg.Error)
		case msg.Done != nil:
			printResult(p.out.report, msg.Done, p.out.json)
			return msg.Done.Code
		}
	}
}

// find looks in the registry for the live hold of this post's run and
// datasets. It returns false and the exit code, after printing why, if
// there is none to release: this run's pre did not hold, the hold is
// another run's, its snapshot or datasets are not post's, or no hold is
// live (then the result a hold of this run left is printed, if any).
func (p poster) find() (bool, int) {
	reg, err := lockRegistry(p.dir)
	if err != nil {
		return false, p.out.fail(exitSnapshotFailed, nil, "%v", err)
	}
	defer reg.unlock()
	e, ok, err := reg.lookup(p.files)
	if err != nil {
		return false, p.out.fail(exitSnapshotFailed, nil, "read the registry: %v", err)
	}
	if ok && e.Owner == p.req.Owner && p.out.snapshot != "" && e.Snapshot == p.out.snapshot {
		return true, exitOK // the very hold of this post, whatever pres were refused since
	}
	if reason, refused, err := reg.takeRefusal(p.req.Owner, p.files, p.out.snapshot); err != nil {
		return false, p.out.fail(exitSnapshotFailed, nil, "read what pre left for this run: %v", err)
	} else if refused {
		return false, p.out.fail(exitSnapshotFailed, nil, "no hold for %s: the snaphook pre of this run did not hold it (%s): nothing to release", p.what, reason)
	}
	switch {
	case ok && e.Owner != p.req.Owner:
		return false, p.out.fail(exitSnapshotFailed, &e, "%s is held by another run (%s), not by this one: not released (its own snaphook post releases it; see --hold-id)", p.what, e.what())
	case ok && p.out.snapshot != "" && p.out.snapshot != e.Snapshot:
		return false, p.out.fail(exitSnapshotFailed, &e, "the hold of %s is for snapshot %q, not %q: not released", p.what, e.Snapshot, p.out.snapshot)
	case ok:
		return true, exitOK
	}
	live, err := reg.live()
	if err != nil {
		return false, p.out.fail(exitSnapshotFailed, nil, "read the registry: %v", err)
	}
	for _, e := range live {
		if e.Owner != p.req.Owner {
			continue
		}
		if _, ok := overlapping([]holdEntry{e}, p.out.datasets, p.out.recursive); ok {
			return false, p.out.fail(exitSnapshotFailed, &e, "%s is not the hold of this run (%s): give post the --fs and -r of pre", p.what, e.what())
		}
	}
	return false, p.resultOf("no holder is listening on " + p.files.Sock)
}

// noHolder reports what became of a hold whose holder is gone: the result
// it left, if any.
func (p poster) noHolder(why string) int {
	reg, err := lockRegistry(p.dir)
	if err != nil {
		return p.out.fail(exitSnapshotFailed, nil, "%v", err)
	}
	defer reg.unlock()
	return p.resultOf(why)
}

// resultOf prints the result a hold of this run left, if any; the caller
// has the registry lock.
func (p poster) resultOf(why string) int {
	res, ok, err := readResult(p.files.Result, p.req.Owner)
	switch {
	case err != nil:
		return p.out.fail(exitSnapshotFailed, nil, "%s: %s; and its result file: %v", p.what, why, err)
	case ok:
		fmt.Fprintf(p.out.s.Stderr, "snaphook post: %s: the hold ended before this post; its report:\n", p.what)
		printResult(p.out.report, &res, p.out.json)
		return res.Code
	}
	return p.out.fail(exitSnapshotFailed, nil, "no hold for %s: %s (did snaphook pre run for the same datasets in this run, and succeed?)", p.what, why)
}

// printResult prints the final report of a hold to stdout: as JSON
// (indented, as "snaphook run --json") or as text.
func printResult(w io.Writer, res *holdResult, jsonOut bool) {
	if !jsonOut {
		fmt.Fprint(w, res.Text)
		return
	}
	var b bytes.Buffer
	if err := json.Indent(&b, res.JSON, "", "  "); err != nil {
		b.Reset()
		b.Write(res.JSON)
	}
	fmt.Fprintf(w, "%s\n", b.Bytes())
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

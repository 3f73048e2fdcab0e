package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/snaphooks/hooks"
)

// defaultMaxHold is the dead-man switch of a hold: a holder that no post
// reached within it unwinds by itself. Short, because a database lock stalls
// writers while it is held: a snapshot takes well under a second.
const defaultMaxHold = 60 * time.Second

// preAbout is the help of pre between its usage and its flags.
const preAbout = `Runs the pre_snapshot edges of the hooks of FILE that match DATASET and,
unless a pre edge with err_is_fatal failed, leaves a holder: a detached
process that keeps each hook's state (the pinned database sessions, with
their locks) until "snaphook post" for the same datasets, or until
--max-hold has passed (counted from the start of the pre edges). pre
returns as soon as the pre edges are done.
Between pre and post, take the snapshot:
  snaphook pre -c hooks.yml --fs tank/db --snapshot "$S"
  zfs snapshot "tank/db@$S"
  snaphook post --fs tank/db

The holder runs in a session of its own, with stdin, stdout and stderr away
from the caller and no inherited descriptor, so a tool that waits for pre's
output (sanoid, zfs-autobackup) returns at once. It listens on a Unix socket
in /run/snaphook (root) or $XDG_RUNTIME_DIR/snaphook (other users), a
directory only its user may enter, and serves only that user. Its log goes
to a file next to the socket, and to pre's stderr until pre returns.

Only the post of the same run releases the hold: a run is the process that
runs both lines (sanoid, zfs-autobackup, the shell of a script), or the ID
of --hold-id. A hold covers its datasets and, with -r, everything below
them; a pre whose datasets overlap a live hold fails, and its run's post
then releases nothing.

Without --fs, the datasets come from sanoid's environment: SANOID_TARGETS
(comma-separated) and the snapshot name from SANOID_SNAPNAME. So in
sanoid.conf:
  pre_snapshot_script = /usr/local/bin/snaphook pre -c /etc/snaphook/hooks.yml
  post_snapshot_script = /usr/local/bin/snaphook post
  no_inconsistent_snapshot = yes

`

// preExits is the exit status section of pre's help.
const preExits = `Exit status:
  0   the pre edges ran (a non-fatal pre hook error is logged and reported
      again by post) and the holder holds: take the snapshot, then run post
  2   nothing is held: a pre hook with err_is_fatal failed, pre was
      interrupted, a live hold overlaps the datasets, --max-hold passed
      before pre returned, or the holder could not start; the post edges
      of the hooks that ran have run
  3   nothing is held: a pre hook asked to skip the snapshot (skip_exit_code)
      and no hook failed; the post edges of the hooks before it have run
      (a skip together with a hook error exits 2)
  64  bad usage or bad config, or a hook list or hook script that others
      than root and the running user could change; nothing ran
`

// holdDatasets returns the datasets of --fs, or else those of
// $SANOID_TARGETS, checked, without duplicates. fromSanoid tells which.
func holdDatasets(f *scopeFlags) (datasets []string, fromSanoid bool, err error) {
	if len(f.fs) == 0 {
		env := os.Getenv("SANOID_TARGETS")
		if env == "" {
			return nil, false, errors.New("missing --fs DATASET (and SANOID_TARGETS is not set)")
		}
		f.fs = strings.Split(env, ",")
		fromSanoid = true
	}
	sc, err := f.scope()
	if err != nil {
		return nil, false, err
	}
	return scopeNames(sc), fromSanoid, nil
}

// preOptions are the flags of pre.
type preOptions struct {
	holdFlags
}

// setupPre defines the flags of pre.
func setupPre(fset *flag.FlagSet) func([]string, streams) int {
	o := &preOptions{}
	o.register(fset)
	return o.run
}

// run is the pre command, after its flags: check them and the config, then
// start the holder. Every exit after the datasets are known but the hold's
// is remembered for this run's post (see registry.refuse).
func (o *preOptions) run(args []string, s streams) int {
	out := newSplitOut("pre", s, &o.common)
	switch {
	case o.common.config == "":
		return out.usage("missing -c FILE")
	case len(args) > 0:
		return out.usage(fmt.Sprintf("unexpected argument %q", args[0]))
	case o.maxHold <= 0:
		return out.usage("--max-hold must be more than 0")
	case o.maxHold > maxMaxHold:
		return out.usage(fmt.Sprintf("--max-hold %s is longer than the maximum of %s", o.maxHold, maxMaxHold))
	}
	if _, err := o.common.level(); err != nil {
		return out.usage(err.Error())
	}
	datasets, fromSanoid, err := holdDatasets(&o.common.scope)
	if err != nil {
		return out.usage(err.Error())
	}
	snapshot := o.snapshot
	if snapshot == "" && fromSanoid {
		snapshot = os.Getenv("SANOID_SNAPNAME")
	}
	if snapshot == "" {
		snapshot = o.prefix + time.Now().UTC().Format(snapshotTimeLayout)
	}
	out.datasets, out.recursive, out.snapshot = datasets, o.common.scope.recursive, snapshot
	if err := checkSnapshotName(snapshot); err != nil {
		return out.usage(err.Error())
	}
	owner, err := holdOwner(o.holdID)
	if err != nil {
		return out.fail(exitUsage, nil, "%v", err)
	}
	dir, err := runDir()
	if err != nil {
		return out.fail(exitUsage, nil, "%v", err)
	}
	job := holdJob{
		Datasets: datasets, Recursive: out.recursive, Snapshot: snapshot, MaxHold: o.maxHold.String(),
		LogLevel: o.common.logLevel, Owner: owner, Files: newHoldFiles(dir, datasets, out.recursive),
	}
	code := o.hold(&job, out)
	if code != exitOK {
		remember(job, fmt.Sprintf("snaphook pre exited %d", code), out)
	}
	return out.finish(code)
}

// hold loads the config into job and starts the holder.
func (o *preOptions) hold(job *holdJob, out *splitOut) int {
	name, data, ok := readHooks(o.common.config, out.s)
	if !ok {
		out.failJSON(exitUsage, nil, "cannot read the config")
		return exitUsage
	}
	cfg, list, ok := parseHooks(name, data, out.s)
	if !ok || !trustHooks("pre", o.common.config, cfg, out.s) {
		out.failJSON(exitUsage, nil, "bad config")
		return exitUsage
	}
	plan, err := newHoldPlan(list, job.Datasets, job.Recursive, job.Snapshot, "", nil)
	if err != nil {
		return out.fail(exitUsage, nil, "%v", err)
	}
	warnNoHooks("pre", name, job.Datasets, job.Recursive, plan, out.s)
	if name != stdinName {
		if abs, err := filepath.Abs(name); err == nil {
			name = abs
		}
	}
	job.ConfigName, job.Config = name, data
	return startHolder(*job, out)
}

// warnNoHooks warns on stderr, also under --quiet, if no hook of the
// config matches the datasets of plan: most likely a typo in
// "filesystems", which would otherwise hold, or guard, nothing silently.
func warnNoHooks(cmd, config string, datasets []string, recursive bool, plan *hooks.Plan, s streams) {
	if plan.Report().Hooks() > 0 {
		return
	}
	fmt.Fprintf(s.Stderr, "snaphook %s: warning: no hook of %s matches %s: no hook will run (a typo in \"filesystems\"? see snaphook check)\n",
		cmd, config, datasetList(datasets, recursive))
}

// remember records in the registry that the pre of job's run did not hold,
// so that the post of this run releases nothing (and says why).
func remember(job holdJob, reason string, out *splitOut) {
	reg, err := lockRegistry(filepath.Dir(job.Files.Lock))
	if err == nil {
		err = reg.refuse(job.Owner, job.Files, job.Snapshot, reason)
		reg.unlock()
	}
	if err != nil {
		fmt.Fprintf(out.s.Stderr, "snaphook pre: remember that this pre did not hold: %v\n", err)
	}
}

// startHolder checks that no live hold overlaps job's, takes the hold's
// lock, listens on its socket, starts the holder with both, registers the
// hold, hands the holder the job and relays its log until it holds or its
// plan ended.
func startHolder(job holdJob, out *splitOut) int {
	reg, err := lockRegistry(filepath.Dir(job.Files.Lock))
	if err != nil {
		return out.fail(exitSnapshotFailed, nil, "%v", err)
	}
	cmd, ctrl, code := spawnRegistered(reg, job, out)
	reg.unlock()
	if cmd == nil {
		return code
	}
	defer ctrl.Close()

	// A signal to pre before the hold is up goes to the holder, which
	// unwinds and reports.
	bg := newBackground()
	defer bg.stop()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, interruptSignals...)
	bg.Go(func(ctx context.Context) {
		defer signal.Stop(sigs)
		for {
			select {
			case sig := <-sigs:
				_ = cmd.Process.Signal(sig)
			case <-ctx.Done():
				return
			}
		}
	})

	if err := (msgWriter{ctrl}).send(message{Job: &job}); err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return out.fail(exitSnapshotFailed, nil, "hand the job to the holder: %v", err)
	}
	return relayUntilHeld(cmd, ctrl, job, out)
}

// spawnRegistered starts the holder of job under the registry lock and
// registers its hold. It returns the holder and the control socket, or a
// nil cmd and the exit code of pre, after printing why: another live hold
// overlaps job's, or the holder could not start.
func spawnRegistered(reg *registry, job holdJob, out *splitOut) (*exec.Cmd, net.Conn, int) {
	live, err := reg.live()
	if err != nil {
		return nil, nil, out.fail(exitSnapshotFailed, nil, "%v", err)
	}
	target := datasetList(job.Datasets, job.Recursive)
	if e, ok := overlapping(live, job.Datasets, job.Recursive); ok {
		return nil, nil, out.fail(exitSnapshotFailed, &e, "%s is already held by another snaphook pre (%s): nothing is held; run snaphook post for that hold first, or wait for its --max-hold", target, e.what())
	}
	lockF, sockF, err := prepareHold(job.Files)
	if errors.Is(err, errAlreadyHeld) { // a holder that has not registered: cannot happen under the registry lock
		return nil, nil, out.fail(exitSnapshotFailed, nil, "%s is already held by another snaphook pre (socket %s)", target, job.Files.Sock)
	}
	if err != nil {
		return nil, nil, out.fail(exitSnapshotFailed, nil, "%v", err)
	}
	defer lockF.Close() // the holder has its own copy, and keeps the lock
	defer sockF.Close()
	cmd, ctrl, err := spawnHolder(job, lockF, sockF)
	if err != nil {
		_ = os.Remove(job.Files.Sock)
		return nil, nil, out.fail(exitSnapshotFailed, nil, "%v", err)
	}
	entry := holdEntry{HolderPID: cmd.Process.Pid, Owner: job.Owner, Datasets: job.Datasets, Recursive: job.Recursive, Snapshot: job.Snapshot}
	err = reg.add(job.Files, entry)
	if err == nil {
		err = reg.forgetRefusals(job.Owner, job.Files)
	}
	if err != nil {
		ctrl.Close()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		_ = os.Remove(job.Files.Sock)
		return nil, nil, out.fail(exitSnapshotFailed, nil, "%v", err)
	}
	return cmd, ctrl, exitOK
}

// spawnHolder starts the holder, detached, with the lock and the listening
// socket of the hold and one end of a socket pair, and returns the process
// and the other end. On error, no holder runs.
func spawnHolder(job holdJob, lockF, sockF *os.File) (*exec.Cmd, net.Conn, error) {
	pair, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("socketpair: %w", err)
	}
	ours, theirs := os.NewFile(uintptr(pair[0]), "control"), os.NewFile(uintptr(pair[1]), "control")
	defer ours.Close() // FileConn dups it
	defer theirs.Close()
	logF, err := os.OpenFile(job.Files.Log, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("open the holder's log: %w", err)
	}
	defer logF.Close()
	exe, err := os.Executable()
	if err != nil {
		return nil, nil, fmt.Errorf("find my own executable: %w", err)
	}
	// The holder must not keep open what the caller handed us: a tool that
	// waits for the end of our output would wait for the holder.
	closeOnExecAll()
	cmd := exec.Command(exe, append([]string{holderCommand}, job.Datasets...)...)
	cmd.Stdout, cmd.Stderr = logF, logF // stdin: /dev/null
	cmd.ExtraFiles = []*os.File{theirs, sockF, lockF}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("start the holder: %w", err)
	}
	ctrl, err := net.FileConn(ours)
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, nil, fmt.Errorf("control socket: %w", err)
	}
	return cmd, ctrl, nil
}

// relayUntilHeld prints the holder's log lines until it confirms that it
// holds (exit 0) or reports that its plan ended before the hold was
// confirmed: the pre edges failed or asked to skip, or --max-hold passed
// before pre could acknowledge the hold (the exit code of that plan).
func relayUntilHeld(cmd *exec.Cmd, ctrl net.Conn, job holdJob, out *splitOut) int {
	r := newMsgReader(ctrl)
	var held *holdInfo
	for {
		msg, err := r.next()
		switch {
		case err != nil:
			waitErr := cmd.Wait()
			return out.fail(exitSnapshotFailed, nil, "the holder ended before it held %s (%v; %v); its log: %s", datasetList(job.Datasets, job.Recursive), err, waitErr, job.Files.Log)
		case msg.Log != "":
			fmt.Fprintln(out.log, msg.Log)
		case msg.Error != "":
			_ = cmd.Wait()
			return out.fail(exitSnapshotFailed, nil, "holder: %s", msg.Error)
		case msg.Done != nil:
			// The plan ended before the hold was confirmed: nothing is held.
			_ = cmd.Wait()
			printResult(out.report, msg.Done, out.json)
			if msg.Done.Code == exitOK || msg.Done.Code == exitHookError {
				return exitSnapshotFailed // the hold ended before pre could return
			}
			return msg.Done.Code
		case msg.Held != nil:
			// If the hold expired meanwhile, the holder has gone on: its
			// done follows, and this ack fails or goes unread.
			held = msg.Held
			_ = (msgWriter{ctrl}).send(message{Ack: true})
		case msg.Confirmed && held != nil:
			_ = cmd.Process.Release()
			printHeld(out.report, job, held, out.json)
			return exitOK
		}
	}
}

// printHeld prints that the holder holds: the report of the pre edges and a
// summary, or the JSON object.
func printHeld(w io.Writer, job holdJob, held *holdInfo, jsonOut bool) {
	summary := fmt.Sprintf("held: %s: the pre edges ran (hooks: %d); holder pid %d waits up to %s for snaphook post",
		snapshotTarget(job.Datasets, job.Recursive, job.Snapshot), held.Hooks, held.PID, job.MaxHold)
	if held.PreError {
		summary = "held with a pre hook error (not fatal): " + strings.TrimPrefix(summary, "held: ")
	}
	if jsonOut {
		b, _ := json.MarshalIndent(heldJSON{
			Held: true, Datasets: job.Datasets, Recursive: job.Recursive, Snapshot: job.Snapshot,
			HolderPID: held.PID, MaxHold: job.MaxHold, PreError: held.PreError, Result: summary, Steps: held.Steps,
		}, "", "  ")
		fmt.Fprintf(w, "%s\n", b)
		return
	}
	fmt.Fprintln(w, held.Report)
	fmt.Fprintln(w, sanitize(summary))
}

// errAlreadyHeld: another holder has the lock of the datasets.
var errAlreadyHeld = errors.New("already held")

// prepareHold takes the lock of a hold (flock, without waiting: it fails
// with errAlreadyHeld if another holder has it), removes what an earlier
// hold left, and listens on the hold's socket (mode 0600). The holder
// inherits both files.
func prepareHold(files holdFiles) (lockF, sockF *os.File, err error) {
	lockF, err = os.OpenFile(files.Lock, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("open the lock file: %w", err)
	}
	defer func() {
		if err != nil {
			lockF.Close()
		}
	}()
	if err := checkPrivate(files.Lock, false); err != nil {
		return nil, nil, fmt.Errorf("lock file: %w", err)
	}
	if err := syscall.Flock(int(lockF.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, nil, errAlreadyHeld
		}
		return nil, nil, fmt.Errorf("lock %s: %w", files.Lock, err)
	}
	// Under the lock, whatever an earlier hold left behind is stale.
	for _, f := range []string{files.Sock, files.Result} {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, nil, fmt.Errorf("remove the stale %s: %w", f, err)
		}
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: files.Sock, Net: "unix"})
	if err != nil {
		return nil, nil, fmt.Errorf("listen: %w", err)
	}
	ln.SetUnlinkOnClose(false) // the holder removes it
	defer ln.Close()           // the holder listens on its copy
	if err := os.Chmod(files.Sock, 0o600); err != nil {
		_ = os.Remove(files.Sock)
		return nil, nil, fmt.Errorf("chmod the socket: %w", err)
	}
	sockF, err = ln.File()
	if err != nil {
		_ = os.Remove(files.Sock)
		return nil, nil, fmt.Errorf("listening socket: %w", err)
	}
	return lockF, sockF, nil
}

// closeOnExecAll marks every descriptor above stderr close-on-exec, so that
// a child gets only what os/exec passes it on purpose. Go opens its own
// descriptors close-on-exec; this catches those the caller let us inherit.
func closeOnExecAll() {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return
	}
	for _, e := range entries {
		fd, err := strconv.Atoi(e.Name())
		if err != nil || fd <= 2 {
			continue
		}
		syscall.CloseOnExec(fd)
	}
}

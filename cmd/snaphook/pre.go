package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
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
--max-hold has passed. pre returns as soon as the pre edges are done.
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
      interrupted, the datasets are already held by another pre, or the
      holder could not start; the post edges of the hooks that ran have run
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
	common           commonFlags
	snapshot, prefix string
	maxHold          time.Duration
}

// setupPre defines the flags of pre.
func setupPre(fset *flag.FlagSet) func([]string, streams) int {
	o := &preOptions{}
	o.common.register(fset, flagConfig, flagScope, flagJSON, flagLogLevel)
	fset.StringVar(&o.snapshot, "snapshot", "", "the snapshot `NAME` for ZREPL_SNAPNAME (default: $SANOID_SNAPNAME, else PREFIX and the UTC time)")
	fset.StringVar(&o.prefix, "prefix", "snaphook_", "the `PREFIX` of a generated snapshot name")
	fset.DurationVar(&o.maxHold, "max-hold", defaultMaxHold, "the dead-man switch: if no \"snaphook post\" comes within `DURATION` after the pre edges, the holder runs the post edges by itself, logs an error, and a later post reports \"hold expired\"; > 0")
	return o.run
}

// run is the pre command, after its flags: check them and the config, then
// start the holder.
func (o *preOptions) run(args []string, s streams) int {
	switch {
	case o.common.config == "":
		return usageError(s, "pre", "missing -c FILE")
	case len(args) > 0:
		return usageError(s, "pre", fmt.Sprintf("unexpected argument %q", args[0]))
	case o.maxHold <= 0:
		return usageError(s, "pre", "--max-hold must be more than 0")
	}
	if _, err := o.common.level(); err != nil {
		return usageError(s, "pre", err.Error())
	}
	datasets, fromSanoid, err := holdDatasets(&o.common.scope)
	if err != nil {
		return usageError(s, "pre", err.Error())
	}
	snapshot := o.snapshot
	if snapshot == "" && fromSanoid {
		snapshot = os.Getenv("SANOID_SNAPNAME")
	}
	if snapshot == "" {
		snapshot = o.prefix + time.Now().UTC().Format(snapshotTimeLayout)
	}
	if err := checkSnapshotName(snapshot); err != nil {
		return usageError(s, "pre", err.Error())
	}
	recursive := o.common.scope.recursive
	name, data, ok := readHooks(o.common.config, s)
	if !ok {
		return exitUsage
	}
	if cfg, list, ok := parseHooks(name, data, s); !ok || !trustHooks("pre", o.common.config, cfg, s) {
		return exitUsage
	} else if _, err := newHoldPlan(list, datasets, recursive, snapshot, "", nil); err != nil {
		return usageError(s, "pre", err.Error())
	}
	if name != stdinName {
		if abs, err := filepath.Abs(name); err == nil {
			name = abs
		}
	}
	dir, err := runDir()
	if err != nil {
		fmt.Fprintf(s.Stderr, "snaphook pre: %v\n", err)
		return exitUsage
	}
	job := holdJob{
		ConfigName: name, Config: data, Datasets: datasets, Recursive: recursive,
		Snapshot: snapshot, MaxHold: o.maxHold.String(), LogLevel: o.common.logLevel,
		Files: newHoldFiles(dir, datasets, recursive),
	}
	return startHolder(job, o.common.json, s)
}

// startHolder takes the hold's lock, listens on its socket, starts the
// holder with both, hands it the job and relays its log until it holds or
// its plan ended.
func startHolder(job holdJob, jsonOut bool, s streams) int {
	target := datasetList(job.Datasets, job.Recursive)
	fail := func(format string, a ...any) int {
		fmt.Fprintf(s.Stderr, "snaphook pre: "+format+"\n", a...)
		return exitSnapshotFailed
	}
	lockF, sockF, err := prepareHold(job.Files)
	if errors.Is(err, errAlreadyHeld) {
		return fail("%s is already held by another snaphook pre (socket %s): run snaphook post for it first, or wait for its --max-hold", target, job.Files.Sock)
	}
	if err != nil {
		return fail("%v", err)
	}
	defer lockF.Close() // the holder has its own copy, and keeps the lock
	defer sockF.Close()
	cmd, ctrl, err := spawnHolder(job, lockF, sockF)
	if err != nil {
		_ = os.Remove(job.Files.Sock)
		return fail("%v", err)
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
		return fail("hand the job to the holder: %v", err)
	}
	return relayUntilHeld(cmd, ctrl, job, jsonOut, s, fail)
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

// relayUntilHeld prints the holder's log lines until it reports that it
// holds (exit 0) or that its plan ended before the hold (the exit code of
// that plan). fail prints an error and returns its exit code.
func relayUntilHeld(cmd *exec.Cmd, ctrl net.Conn, job holdJob, jsonOut bool, s streams, fail func(string, ...any) int) int {
	r := newMsgReader(ctrl)
	for {
		msg, err := r.next()
		switch {
		case err != nil:
			waitErr := cmd.Wait()
			return fail("the holder ended before it held %s (%v; %v); its log: %s", datasetList(job.Datasets, job.Recursive), err, waitErr, job.Files.Log)
		case msg.Log != "":
			fmt.Fprintln(s.Stderr, msg.Log)
		case msg.Error != "":
			_ = cmd.Wait()
			return fail("holder: %s", msg.Error)
		case msg.Done != nil:
			// The plan ended before the callback: nothing is held.
			_ = cmd.Wait()
			printResult(s, msg.Done, jsonOut)
			if msg.Done.Code == exitOK || msg.Done.Code == exitHookError {
				return exitSnapshotFailed // cannot happen: the callback ran
			}
			return msg.Done.Code
		case msg.Held != nil:
			if err := (msgWriter{ctrl}).send(message{Ack: true}); err != nil {
				_ = cmd.Wait()
				return fail("acknowledge the hold: %v", err)
			}
			_ = cmd.Process.Release()
			printHeld(s, job, msg.Held, jsonOut)
			return exitOK
		}
	}
}

// printHeld prints that the holder holds: the report of the pre edges and a
// summary, or the JSON object.
func printHeld(s streams, job holdJob, held *holdInfo, jsonOut bool) {
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
		fmt.Fprintf(s.Stdout, "%s\n", b)
		return
	}
	fmt.Fprintln(s.Stdout, held.Report)
	fmt.Fprintln(s.Stdout, sanitize(summary))
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

package main

// The owner of a hold: what ties a "snaphook post" to the "snaphook pre" of
// the same run, with no setting in the three documented integrations.
//
// sanoid runs both lines with Perl's system() from its own process (through
// /bin/sh -c when the line has shell metacharacters); zfs-autobackup runs
// both with subprocess from its own process, without a shell; a cron script
// runs both from the shell that runs the script. So the owner is the nearest
// ancestor that is not a shell started only to run one command ("sh -c ..."):
// the sanoid or zfs-autobackup process, or the script's shell; it also looks
// through the wrappers that stay the parent of the command they run, a new
// one for each line (sudo, timeout, flock...). Its pid and
// its start time (so that a reused pid is another owner) name the run.
// Everyone else says which run a line belongs to with --hold-id.

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// holdOwner returns the owner key of this process's run: "id:ID" if holdID
// is set, else "pid:PID:START" of the owner process (see the file comment).
func holdOwner(holdID string) (string, error) {
	if holdID != "" {
		return "id:" + holdID, nil
	}
	pid := os.Getppid()
	for range 64 { // a bound against a cycle in a changing process tree
		st, err := readProcStat(pid)
		if err != nil {
			return "", fmt.Errorf("find the process that runs pre and post (give --hold-id to name the run): %w", err)
		}
		if pid <= 1 || !wrappers[st.comm] && !isOneCommandShell(pid, st.comm) {
			return fmt.Sprintf("pid:%d:%d", pid, st.start), nil
		}
		pid = st.ppid
	}
	return "", errors.New("find the process that runs pre and post: too many shells above this one (give --hold-id to name the run)")
}

// procStat is what holdOwner reads from /proc/PID/stat.
type procStat struct {
	comm  string
	ppid  int
	start uint64 // in clock ticks after boot
}

// readProcStat reads the name, parent and start time of pid.
func readProcStat(pid int) (procStat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, err
	}
	// "PID (COMM) STATE PPID ..."; COMM may contain spaces and ")".
	open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || end < open {
		return procStat{}, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	fields := strings.Fields(string(b[end+1:]))
	if len(fields) < 20 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	ppid, err1 := strconv.Atoi(fields[1])
	start, err2 := strconv.ParseUint(fields[19], 10, 64) // field 22 of the line
	if err1 != nil || err2 != nil {
		return procStat{}, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	return procStat{comm: string(b[open+1 : end]), ppid: ppid, start: start}, nil
}

// shells are the process names of the shells holdOwner looks through.
var shells = map[string]bool{"sh": true, "dash": true, "bash": true, "zsh": true, "ksh": true, "mksh": true, "ash": true, "busybox": true, "fish": true}

// wrappers are the process names of commands that run another command as
// their child and wait for it: a new process for each line of a run.
var wrappers = map[string]bool{"sudo": true, "doas": true, "su": true, "runuser": true, "timeout": true, "flock": true, "chronic": true}

// isOneCommandShell reports whether pid, named comm, is a shell that runs
// one command line given with -c: a process of its own for each line, so
// not the owner of a run. A shell that runs a script, or an interactive
// one, is.
func isOneCommandShell(pid int, comm string) bool {
	if !shells[comm] {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	for _, arg := range strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")[1:] {
		if !strings.HasPrefix(arg, "-") || arg == "--" {
			return false // the script or the command string: no -c before it
		}
		if !strings.HasPrefix(arg, "--") && strings.ContainsRune(arg, 'c') {
			return true
		}
	}
	return false
}

// ownerAlive reports whether the owner of a key still runs: false only for
// a "pid:" owner whose process is gone or was replaced by another one with
// the same pid.
func ownerAlive(owner string) bool {
	var pid int
	var start uint64
	if _, err := fmt.Sscanf(owner, "pid:%d:%d", &pid, &start); err != nil {
		return true
	}
	st, err := readProcStat(pid)
	return err == nil && st.start == start
}

//go:build linux

package hooks

// The thaw watchdog of fsfreeze: a process that is not the one that froze, so that a
// filesystem is thawed even if the freezing process is SIGKILLed, runs out of
// memory, crashes or hangs.
//
// Why a /bin/sh script over util-linux and coreutils rather than a re-exec of
// our own binary: a library cannot rely on the program that embeds it
// answering a re-exec, while sh, timeout, head and fsfreeze are on every
// Linux system that has FIFREEZE users. Everything the watchdog runs is
// resolved to an absolute path before the freeze, and the filesystems that
// hold those programs are refused (freezeKeptPaths), so the watchdog never
// needs a frozen filesystem: sh and its "timeout head" pair are resident
// before the freeze, and fsfreeze is loaded from an unfrozen filesystem.
//
// The protocol is one pipe, the watchdog's stdin, whose only writer is the
// freezing process (the descriptor is close-on-exec, so no other child
// inherits it):
//   - "done\n" then close: the freezing process has thawed; the watchdog
//     exits without touching the filesystems (someone else may have frozen
//     them since);
//   - end of file without "done": the freezing process died; the watchdog
//     thaws at once;
//   - nothing until the deadline: the freezing process hangs; the watchdog
//     thaws.
// A thaw of a filesystem that is not frozen fails with EINVAL and changes
// nothing, so a thaw by both sides is harmless. The watchdog ignores SIGINT,
// SIGHUP and SIGTERM and runs in its own process group: a Ctrl-C or a
// "systemctl stop" that kills the freezing process leaves the watchdog to
// thaw. Its output goes to /dev/null once it reported ready: a pipe to a
// dead parent would kill it with SIGPIPE before it thawed.

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"
)

// watchdogScript is run as: sh -c watchdogScript sh FSFREEZE TIMEOUT HEAD
// SECONDS MOUNT... with the mounts in thaw order.
const watchdogScript = `trap '' INT HUP TERM
fsfreeze=$1 timeout=$2 head=$3 secs=$4
shift 4
echo ready
exec >/dev/null 2>&1
msg=$("$timeout" -s KILL "$secs" "$head" -n 1)
[ "$msg" = done ] && exit 0
for m do "$fsfreeze" --unfreeze "$m"; done
exit 0
`

// watchdogTools are the programs the watchdog runs.
func watchdogTools() []string { return []string{"sh", "timeout", "head", "fsfreeze"} }

// lookPathAbs is exec.LookPath with symlinks resolved, so the result names
// the filesystem the program is loaded from.
func lookPathAbs(name string) (string, error) {
	p, err := exec.LookPath(name)
	if err != nil {
		return "", err
	}
	if p, err = filepath.Abs(p); err != nil {
		return "", err
	}
	return filepath.EvalSymlinks(p)
}

// startThawWatchdog starts a watchdog that thaws mounts (in reverse order) at
// maxFreeze from now unless told otherwise, and returns once it is running
// its script.
func startThawWatchdog(mounts []string, maxFreeze time.Duration) (*thawWatchdog, error) {
	var tools []string
	for _, name := range watchdogTools() {
		p, err := lookPathAbs(name)
		if err != nil {
			return nil, fmt.Errorf("start the thaw watchdog: %w", err)
		}
		tools = append(tools, p)
	}
	args := []string{"-c", watchdogScript, "sh", tools[3], tools[1], tools[2],
		strconv.FormatFloat(maxFreeze.Seconds(), 'f', 3, 64) + "s"}
	for i := len(mounts) - 1; i >= 0; i-- {
		args = append(args, mounts[i])
	}
	cmd := exec.Command(tools[0], args...)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	return startWatchdogProcess(cmd)
}

// Command snaphook runs pre- and post-snapshot hooks, configured as in zrepl,
// around a snapshot command. It is meant for people who snapshot from cron,
// sanoid or their own scripts, and it is the example of how to embed the
// hooks package: everything it does beyond parsing flags is a call into
// github.com/snaphooks/hooks.
//
// Usage:
//
//	snaphook run -c FILE --fs DATASET [flags] -- CMD [ARGS...]
//	snaphook check -c FILE [--fs DATASET]...
//	snaphook pre -c FILE [--fs DATASET]... [flags]
//	snaphook post [--fs DATASET]... [flags]
//	snaphook version
//
// Run "snaphook help" for the commands, and "snaphook help COMMAND" for the
// flags, the signals and the exit codes of one; commands.go holds them all.
package main

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/snaphooks/hooks"
)

// The exit codes of snaphook. They are part of its interface: scripts branch
// on them.
const (
	// exitOK: every step went well.
	exitOK = 0
	// exitHookError: a hook failed, but the snapshot command ran and
	// succeeded.
	exitHookError = 1
	// exitSnapshotFailed: the snapshot command did not run (a fatal pre hook
	// error, an interruption) or failed.
	exitSnapshotFailed = 2
	// exitSkipped: a pre hook asked to skip the snapshot (skip_exit_code);
	// that is not an error, but there is no snapshot.
	exitSkipped = 3
	// exitUsage: bad usage or a bad config; no hook and no command ran.
	// The value is EX_USAGE of sysexits.h.
	exitUsage = 64
)

// exitCodesHelp documents the exit codes of run and post; pre and check
// have their own.
const exitCodesHelp = `Exit status:
  0   all went well
  1   a hook failed, but the snapshot was taken (CMD ran and succeeded)
  2   no snapshot, and something went wrong: a pre hook with err_is_fatal
      failed, snaphook was interrupted, CMD failed (or was stopped by a
      signal: whether it took the snapshot is unknown), or a hook failed
      when a pre hook asked to skip the snapshot
  3   a pre hook asked to skip the snapshot (skip_exit_code), and no hook
      failed: no error, no snapshot
  64  bad usage or bad config, or a hook list or hook script that others
      than root and the running user could change; nothing ran
When several apply, the first of 64, 2, 3, 1 wins: a skip together with a
hook error exits 2, and the summary line names both.
`

// streams are the standard files of the process. Stdout and Stderr are files,
// not writers, because the live view needs to know whether they are
// terminals.
type streams struct {
	Stdin          io.Reader
	Stdout, Stderr *os.File
}

func main() {
	hooks.RunWatchdog() // in a thaw watchdog's copy of this program, it never returns
	survivePipeErrors()
	os.Exit(snaphook(os.Args[1:], streams{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr}))
}

// snaphook runs the command line args (without the program name) and
// returns the exit code.
func snaphook(args []string, s streams) int {
	if len(args) == 0 {
		fmt.Fprint(s.Stderr, "snaphook: no command given\n\n"+mainHelp())
		return exitUsage
	}
	name, rest := args[0], args[1:]
	switch name {
	case "help", "-h", "-help", "--help":
		return helpCommand(rest, s)
	case "-version", "--version":
		name = "version"
	}
	cmd := lookupCommand(name)
	if cmd == nil {
		fmt.Fprintf(s.Stderr, "snaphook: unknown command %q (want %s)\nRun 'snaphook help' for usage.\n", name, commandNames())
		return exitUsage
	}
	return cmd.exec(rest, s)
}

// survivePipeErrors keeps a broken stdout or stderr (a closed pipe, as in
// "snaphook run ... 2>&1 | head") from killing snaphook. Without it, Go
// ends a program that writes to a broken pipe on fd 1 or 2 with SIGPIPE,
// and a run would stop in the middle of the plan, leaving frozen what a pre
// edge froze. With SIGPIPE handled, such a write fails with EPIPE instead,
// and every write to stdout and stderr ignores its error: the plan and its
// post edges go on, and the exit status is the plan's. The signal is caught,
// not ignored, so hooks and CMD start with the default action for SIGPIPE.
func survivePipeErrors() {
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
}

// usageError prints a usage error of command name and returns exitUsage.
func usageError(s streams, name, msg string) int {
	fmt.Fprintf(s.Stderr, "snaphook %s: %s\nRun 'snaphook %s --help' for usage.\n", name, msg, name)
	return exitUsage
}

// stringList is a flag that may be given several times.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ", ") }

func (l *stringList) Set(v string) error {
	*l = append(*l, v)
	return nil
}

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
//	snaphook version
//
// Run "snaphook help" for the flags, the signals and the exit codes.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
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

// exitCodesHelp documents the exit codes in every help text.
const exitCodesHelp = `Exit status:
  0   all went well
  1   a hook failed, but the snapshot was taken (CMD ran and succeeded)
  2   the snapshot was skipped or failed: a pre hook with err_is_fatal
      failed, snaphook was interrupted, or CMD failed
  3   a pre hook asked to skip the snapshot (skip_exit_code): no error,
      no snapshot
  64  bad usage or bad config; nothing ran
`

const mainHelp = `snaphook runs pre- and post-snapshot hooks around a snapshot command.
The hooks are configured as in zrepl (command, postgres-checkpoint and
mysql-lock-tables hooks) and get zrepl's environment variables.

Usage:
  snaphook run -c FILE --fs DATASET [flags] -- CMD [ARGS...]
  snaphook check -c FILE [--fs DATASET]...
  snaphook pre -c FILE [--fs DATASET]... [--max-hold DURATION]
  snaphook post [--fs DATASET]...
  snaphook version
  snaphook help [run | check | pre | post | version]

Commands:
  run     run the hooks of FILE that match DATASET around CMD
  check   validate FILE, list its hooks and which of them run for each DATASET
  pre     run the pre edges and leave a holder that keeps the hooks' locks
  post    have that holder run the post edges (for sanoid, zfs-autobackup)
  version print the version of snaphook and of Go it was built with
          (also: snaphook --version)

Run 'snaphook help run' or 'snaphook run --help' for the flags of a command.

` + exitCodesHelp

// streams are the standard files of the process. Stdout and Stderr are files,
// not writers, because the live view needs to know whether they are
// terminals.
type streams struct {
	Stdin          io.Reader
	Stdout, Stderr *os.File
}

func main() {
	survivePipeErrors()
	os.Exit(snaphook(os.Args[1:], streams{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr}))
}

// snaphook runs the command line args (without the program name) and
// returns the exit code.
func snaphook(args []string, s streams) int {
	if len(args) == 0 {
		fmt.Fprint(s.Stderr, "snaphook: no command given\n\n"+mainHelp)
		return exitUsage
	}
	switch cmd, rest := args[0], args[1:]; cmd {
	case "run":
		return runCommand(rest, s)
	case "check":
		return checkCommand(rest, s)
	case "version", "-version", "--version":
		return versionCommand(rest, s)
	case "pre":
		return preCommand(rest, s)
	case "post":
		return postCommand(rest, s)
	case holderCommand:
		return runHolder(s)
	case "help", "-h", "-help", "--help":
		if len(rest) == 0 {
			fmt.Fprint(s.Stdout, mainHelp)
			return exitOK
		}
		switch rest[0] {
		case "run":
			fmt.Fprint(s.Stdout, runHelp)
			return exitOK
		case "check":
			fmt.Fprint(s.Stdout, checkHelp)
			return exitOK
		case "pre":
			fmt.Fprint(s.Stdout, preHelp)
			return exitOK
		case "post":
			fmt.Fprint(s.Stdout, postHelp)
			return exitOK
		}
		fmt.Fprintf(s.Stderr, "snaphook help: unknown command %q (want run or check)\n", rest[0])
		return exitUsage
	default:
		fmt.Fprintf(s.Stderr, "snaphook: unknown command %q (want run or check)\nRun 'snaphook help' for usage.\n", cmd)
		return exitUsage
	}
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

// parseFlags parses args with fset, which must have been created with
// flag.ContinueOnError. It returns done=true with the exit code if the
// command is over: after printing help (exit 0) or a usage error (64).
func parseFlags(fset *flag.FlagSet, args []string, help string, s streams) (code int, done bool) {
	fset.SetOutput(io.Discard) // the errors are printed below, the help by us
	fset.Usage = func() {}
	err := fset.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(s.Stdout, help)
		return exitOK, true
	}
	if err != nil {
		return usageError(s, fset.Name(), err.Error()), true
	}
	return 0, false
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

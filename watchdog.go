package hooks

// The watchdog process that thaws what a freeze left frozen: its start, the
// "done" that stops it, and, for programs that opt in with RunWatchdog, the
// watchdog that thaws a guest through its agent (see qga_freeze.go).

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
)

// thawWatchdog is a running watchdog process. It reads its stdin, whose only
// writer is the freezing process: "done" means thawed, stop; end of file
// without "done" means the freezing process died, thaw now; nothing until
// its deadline means the freezing process hangs, thaw.
type thawWatchdog struct {
	cmd     *exec.Cmd
	tell    *os.File  // write end of the watchdog's stdin
	started time.Time // before the process started: its deadline is no earlier than started+maxFreeze
}

// startWatchdogProcess starts cmd as a watchdog in its own process group,
// in "/", with its stdin a pipe from this process and its stderr discarded,
// and returns once it printed "ready" on its stdout.
func startWatchdogProcess(cmd *exec.Cmd) (*thawWatchdog, error) {
	stdinR, stdinW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("start the thaw watchdog: %w", err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		stdinR.Close()
		stdinW.Close()
		return nil, fmt.Errorf("start the thaw watchdog: %w", err)
	}
	defer outR.Close()
	cmd.Stdin, cmd.Stdout, cmd.Stderr, cmd.Dir = stdinR, outW, nil, "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	w := &thawWatchdog{cmd: cmd, tell: stdinW, started: time.Now()}
	err = cmd.Start()
	stdinR.Close()
	outW.Close()
	if err != nil {
		stdinW.Close()
		return nil, fmt.Errorf("start the thaw watchdog: %w", err)
	}
	// "ready" comes before the watchdog reads its stdin; without it the
	// watchdog is not running, and nothing may be frozen.
	outR.SetReadDeadline(time.Now().Add(30 * time.Second))
	line, err := bufio.NewReader(outR).ReadString('\n')
	if line != "ready\n" {
		w.stop(context.Background())
		return nil, fmt.Errorf("start the thaw watchdog: it did not report ready: %q, %v", line, err)
	}
	return w, nil
}

// pid is the watchdog's process id.
func (w *thawWatchdog) pid() int { return w.cmd.Process.Pid }

// stop tells the watchdog that the filesystems are thawed and waits for it
// to exit. If ctx ends first, it kills the watchdog. It is called once, or
// handOver is.
func (w *thawWatchdog) stop(ctx context.Context) error {
	_, werr := io.WriteString(w.tell, "done\n")
	return w.wait(ctx, werr)
}

// handOver closes the watchdog's stdin without "done", so that it thaws now
// as if this process had died, and waits for it to exit: the last resort
// when this process failed to thaw. If ctx ends first, it kills the
// watchdog.
func (w *thawWatchdog) handOver(ctx context.Context) error {
	return w.wait(ctx, nil)
}

// wait closes the watchdog's stdin and waits for it to exit; werr is the
// error of what was written before, if any.
func (w *thawWatchdog) wait(ctx context.Context, werr error) error {
	w.tell.Close()
	exited := make(chan error, 1)
	go func() { exited <- w.cmd.Wait() }()
	select {
	case err := <-exited:
		if werr != nil && !errors.Is(werr, syscall.EPIPE) {
			return fmt.Errorf("stop the thaw watchdog: %w", werr)
		}
		if err != nil {
			return fmt.Errorf("thaw watchdog: %w", err)
		}
		return nil
	case <-ctx.Done():
		syscall.Kill(-w.cmd.Process.Pid, syscall.SIGKILL)
		<-exited
		return fmt.Errorf("stop the thaw watchdog: %w", ctx.Err())
	}
}

// The environment of a watchdog started by re-executing this program.
const (
	watchdogEnv         = "SNAPHOOKS_WATCHDOG"          // what to thaw: "qga"
	watchdogSocketEnv   = "SNAPHOOKS_WATCHDOG_SOCKET"   // the agent's socket
	watchdogDeadlineEnv = "SNAPHOOKS_WATCHDOG_DEADLINE" // seconds until it thaws by itself
)

// watchdogServed records that this program called RunWatchdog: a copy of it
// started with the watchdog's environment runs the watchdog rather than the
// program. It is set once, at the start of main, and only read after.
var watchdogServed atomic.Bool

// RunWatchdog makes this program its own thaw watchdog. A program that embeds
// the library calls it first thing in main, before it parses flags or does
// anything else:
//
//	func main() {
//		hooks.RunWatchdog()
//		...
//	}
//
// In the program itself, RunWatchdog returns at once, and records that the
// program's executable answers the call: a qemu-guest-agent freeze then
// starts a copy of the executable as a watchdog process, which thaws the
// guest at max_freeze, or at once if the program dies (SIGKILL, out of
// memory, a crash), and exits when the program thaws on its own. In such a
// copy (recognised by its environment), RunWatchdog does that work and exits
// the process; it never returns.
//
// Without the call, a guest is thawed at max_freeze only by a timer in the
// program, which cannot help if the program dies. (fsfreeze does not need
// the call: its watchdog is a /bin/sh script.)
func RunWatchdog() {
	if os.Getenv(watchdogEnv) == "" {
		watchdogServed.Store(true)
		return
	}
	os.Exit(runWatchdog(os.Stdin, os.Stdout))
}

// runWatchdog is the watchdog process: it reports ready, then thaws the
// guest at the deadline or when its stdin ends without "done". It ignores
// SIGINT, SIGHUP and SIGTERM: a Ctrl-C or a service stop aimed at the
// program leaves it to thaw. It returns the exit status.
func runWatchdog(in io.Reader, out io.Writer) int {
	signal.Ignore(syscall.SIGINT, syscall.SIGHUP, syscall.SIGTERM)
	socket := os.Getenv(watchdogSocketEnv)
	secs, err := strconv.ParseFloat(os.Getenv(watchdogDeadlineEnv), 64)
	if os.Getenv(watchdogEnv) != "qga" || socket == "" || err != nil {
		fmt.Fprintf(os.Stderr, "thaw watchdog: bad environment %s=%q %s=%q\n", watchdogEnv, os.Getenv(watchdogEnv), watchdogDeadlineEnv, os.Getenv(watchdogDeadlineEnv))
		return 2
	}
	deadline := time.NewTimer(time.Duration(secs * float64(time.Second)))
	defer deadline.Stop()
	if _, err := io.WriteString(out, "ready\n"); err != nil {
		return 2
	}
	told := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(in).ReadString('\n')
		told <- line
	}()
	select {
	case line := <-told:
		if line == "done\n" {
			return 0
		}
	case <-deadline.C:
	}
	ctx, cancel := context.WithTimeout(context.Background(), qgaThawTimeout)
	defer cancel()
	if _, err := qgaThaw(ctx, socket); err != nil {
		return 1
	}
	return 0
}

// startQGAWatchdog starts a copy of this program as the watchdog of the
// guest behind socket, if the program called RunWatchdog; otherwise it
// returns nil and no error.
func startQGAWatchdog(socket string, maxFreeze time.Duration) (*thawWatchdog, error) {
	if !watchdogServed.Load() {
		return nil, nil
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("start the thaw watchdog: %w", err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), watchdogEnv+"=qga", watchdogSocketEnv+"="+socket,
		watchdogDeadlineEnv+"="+strconv.FormatFloat(maxFreeze.Seconds(), 'f', 3, 64))
	return startWatchdogProcess(cmd)
}

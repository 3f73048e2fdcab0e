package hooks

// A guest frozen through its agent, held until release or the deadline.
//
// The deadline is kept by a timer in this process and, if the program called
// RunWatchdog, by a watchdog process (a copy of the program) that also thaws
// at once if this process dies. Unlike fsfreeze's watchdog, it cannot be a
// /bin/sh script: a shell cannot speak to a unix socket, and socat, nc -U or
// python3 are not on every host; a library cannot re-execute the program
// that embeds it unless the program answers the call, hence the opt-in.
// The guest's filesystems are not the host's, so the watchdog's executable
// may live anywhere.

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// qgaThawTimeout bounds a thaw that no caller's context bounds: the one at
// the deadline, and the one after a freeze that failed.
const qgaThawTimeout = 30 * time.Second

// frozenGuest is a guest whose filesystems its agent froze: a resource of
// the held-hook engine, released by release. Until release, a timer in this
// process thaws the guest at maxFreeze.
type frozenGuest struct {
	socket    string
	frozen    int // how many filesystems the agent froze
	maxFreeze time.Duration
	timer     *time.Timer

	// mu guards the fields below; the timer's thaw and release hold it while
	// they talk to the agent, so they never do at once.
	mu       sync.Mutex
	watchdog *thawWatchdog // nil without RunWatchdog, or once stopped
	thawed   int           // how many the agent thawed
	deadline bool          // the timer thawed
	err      error
	released bool
	relErr   error
}

// freezeGuest freezes the guest's filesystems through the agent at socket
// (all of them if mountpoints is empty) and arms the deadline. ctx bounds
// the freeze. It starts the watchdog process first if the program called
// RunWatchdog. If the freeze fails for another reason than an agent that is
// not running, it sends a thaw as well (a freeze that timed out may have
// frozen the guest after all) and returns both errors; if that thaw fails
// too, the watchdog process, if any, tries once more before it returns.
func freezeGuest(ctx context.Context, socket string, mountpoints []string, maxFreeze time.Duration) (*frozenGuest, error) {
	if maxFreeze <= 0 {
		return nil, fmt.Errorf("qemu-guest-agent %s: max_freeze %s is not positive", socket, maxFreeze)
	}
	start := time.Now()
	wd, err := startQGAWatchdog(socket, maxFreeze)
	if err != nil {
		return nil, fmt.Errorf("qemu-guest-agent %s: %w", socket, err)
	}
	if wd != nil {
		start = wd.started
	}
	g := &frozenGuest{socket: socket, maxFreeze: maxFreeze, watchdog: wd}
	g.frozen, err = qgaFreeze(ctx, socket, mountpoints)
	if err != nil {
		tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), qgaThawTimeout)
		defer cancel()
		if !errors.Is(err, errQGANotRunning) {
			if _, terr := qgaThaw(tctx, socket); terr != nil {
				err = errors.Join(err, fmt.Errorf("thaw after the failed freeze: %w", terr))
				if wd != nil { // it tries once more, and we wait for it
					return nil, errors.Join(err, wd.handOver(tctx))
				}
			}
		}
		return nil, errors.Join(err, g.stopWatchdog(tctx))
	}
	g.timer = time.AfterFunc(time.Until(start.Add(maxFreeze)), g.thawByDeadline)
	return g, nil
}

// thawByDeadline is the timer's thaw at maxFreeze.
func (g *frozenGuest) thawByDeadline() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.deadline || (g.released && g.relErr == nil) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), qgaThawTimeout)
	defer cancel()
	g.thawed, g.err = qgaThaw(ctx, g.socket)
	g.deadline = true
	g.err = errors.Join(g.err, g.stopWatchdog(ctx))
}

// stopWatchdog stops the watchdog process, if any and not stopped yet.
func (g *frozenGuest) stopWatchdog(ctx context.Context) error {
	if g.watchdog == nil {
		return nil
	}
	wd := g.watchdog
	g.watchdog = nil
	return wd.stop(ctx)
}

// release thaws the guest (connecting anew) unless the deadline did, and
// returns an error that wraps errThawedByDeadline if it did. ctx bounds the
// thaw. It then stops the watchdog process and waits for it. If the thaw
// fails, the deadline's thaw and the watchdog stay armed and try again.
// release may be called more than once; later calls return the first one's
// error.
func (g *frozenGuest) release(ctx context.Context) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.released {
		return g.relErr
	}
	g.released = true
	if g.deadline {
		g.relErr = errors.Join(fmt.Errorf("qemu-guest-agent %s: %w after %s: the snapshot may not be consistent",
			g.socket, errThawedByDeadline, g.maxFreeze), g.err)
		return g.relErr
	}
	g.thawed, g.relErr = qgaThaw(ctx, g.socket)
	if g.relErr == nil {
		g.timer.Stop()
		g.relErr = g.stopWatchdog(ctx)
	} // else the deadline's thaw and the watchdog stay armed: they try once more
	return g.relErr
}

// counts returns how many filesystems the agent froze and thawed.
func (g *frozenGuest) counts() (frozen, thawed int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.frozen, g.thawed
}

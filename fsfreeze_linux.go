//go:build linux

package hooks

// Freezing filesystems with FIFREEZE and thawing them with FITHAW, with a
// deadline kept twice: in this process (a timer) and by the thaw watchdog, a
// separate process that also thaws if this one dies.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The ioctls of linux/fs.h, _IOWR('X', 119, int) and _IOWR('X', 120, int);
// golang.org/x/sys/unix does not define them. The encoding is the same on
// every Linux architecture.
const (
	ioctlFIFREEZE = 0xC0045877
	ioctlFITHAW   = 0xC0045878
)

// frozenFS is a set of frozen filesystems: a resource of the held-hook
// engine, released by release. Until release, they are thawed (in reverse
// order) at the deadline by a timer in this process and by the thaw
// watchdog, and at once by the watchdog if this process dies.
type frozenFS struct {
	mounts    []string
	maxFreeze time.Duration
	watchdog  *thawWatchdog
	timer     *time.Timer

	// mu guards the fields below; the timer's thaw and release hold it
	// while they thaw, so they never run at once.
	mu       sync.Mutex
	thawed   bool  // by the deadline or by release
	deadline bool  // the timer thawed them
	err      error // what the timer's thaw found, reported by release
	released bool
	relErr   error
}

// checkFsfreeze is the dry run of a freeze: it checks mountpoints as
// freezeFilesystems does (and the privilege), and freezes nothing. It
// returns the mount points with symlinks resolved.
func checkFsfreeze(mountpoints []string, kept []keptPath) ([]string, error) {
	mounts, err := checkFreezable(mountpoints, freezeKeptPaths(kept))
	if err != nil {
		return nil, err
	}
	if ok, err := hasCapSysAdmin(); err != nil {
		return nil, fmt.Errorf("fsfreeze: %w", err)
	} else if !ok {
		return nil, errFreezeNeedsRoot
	}
	return mounts, nil
}

// freezeFilesystems checks mountpoints (see checkFreezable, with the
// caller's kept paths added to freezeKeptPaths), flushes each (syncfs), starts
// the thaw watchdog and freezes them in order. If a freeze fails, those
// already frozen are thawed and the error says which one failed and why. On
// success the caller must call release; the filesystems are thawed at the
// latest maxFreeze after the watchdog started, whatever happens to the
// caller.
func freezeFilesystems(ctx context.Context, mountpoints []string, maxFreeze time.Duration, kept []keptPath) (*frozenFS, error) {
	if maxFreeze <= 0 {
		return nil, fmt.Errorf("fsfreeze: max_freeze %s is not positive", maxFreeze)
	}
	mounts, err := checkFsfreeze(mountpoints, kept)
	if err != nil {
		return nil, err
	}
	for _, m := range mounts {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("fsfreeze %s: %w", m, err)
		}
		if err := onMount(m, func(fd int) error { return unix.Syncfs(fd) }); err != nil {
			return nil, fmt.Errorf("fsfreeze %s: flush (syncfs): %w", m, err)
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("fsfreeze: %w", err)
	}
	wd, err := startThawWatchdog(mounts, maxFreeze)
	if err != nil {
		return nil, fmt.Errorf("fsfreeze: %w", err)
	}
	f := &frozenFS{mounts: mounts, maxFreeze: maxFreeze, watchdog: wd}
	for i, m := range mounts {
		err := onMount(m, func(fd int) error { return unix.IoctlSetInt(fd, ioctlFIFREEZE, 0) })
		if err == nil {
			continue
		}
		err = freezeError(m, err)
		f.mounts = mounts[:i]
		f.release(context.WithoutCancel(ctx))
		return nil, err
	}
	// The watchdog's clock started after wd.started: ours runs out first.
	f.timer = time.AfterFunc(time.Until(wd.started.Add(maxFreeze)), f.thawByDeadline)
	return f, nil
}

// freezeError explains a failed FIFREEZE of mount m.
func freezeError(m string, err error) error {
	switch {
	case errors.Is(err, syscall.EPERM):
		return fmt.Errorf("fsfreeze %s: %w", m, errFreezeNeedsRoot)
	case errors.Is(err, syscall.EBUSY):
		return fmt.Errorf("fsfreeze %s: already frozen (by another process?): %w", m, err)
	case errors.Is(err, syscall.EOPNOTSUPP):
		return fmt.Errorf("fsfreeze %s: the filesystem cannot be frozen: %w", m, err)
	}
	return fmt.Errorf("fsfreeze %s: freeze: %w", m, err)
}

// onMount opens the mount point m and calls do with its descriptor.
func onMount(m string, do func(fd int) error) error {
	fd, err := unix.Open(m, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return do(fd)
}

// thawMount thaws m. It returns wasFrozen false, and no error, if m was not
// frozen (FITHAW answers EINVAL): thawing is idempotent.
func thawMount(m string) (wasFrozen bool, err error) {
	err = onMount(m, func(fd int) error { return unix.IoctlSetInt(fd, ioctlFITHAW, 0) })
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, syscall.EINVAL):
		return false, nil
	case errors.Is(err, syscall.EPERM):
		return false, fmt.Errorf("thaw %s: %w", m, errFreezeNeedsRoot)
	}
	return false, fmt.Errorf("thaw %s: %w", m, err)
}

// thawAll thaws the mounts in reverse order, all of them whatever fails. It
// returns the mounts that were no longer frozen and the errors.
func (f *frozenFS) thawAll() (notFrozen []string, err error) {
	var errs []error
	for i := len(f.mounts) - 1; i >= 0; i-- {
		was, err := thawMount(f.mounts[i])
		if err != nil {
			errs = append(errs, err)
		} else if !was {
			notFrozen = append(notFrozen, f.mounts[i])
		}
	}
	return notFrozen, errors.Join(errs...)
}

// thawByDeadline is the timer's thaw at maxFreeze.
func (f *frozenFS) thawByDeadline() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.thawed {
		return
	}
	_, f.err = f.thawAll()
	f.thawed, f.deadline = true, true
}

// release thaws the filesystems in reverse order, stops the watchdog and
// waits for it to exit (killing it if ctx ends first; it would exit by
// itself at its deadline). The error wraps errThawedByDeadline if the
// deadline thawed them first, and says so if something else had thawed one
// before. release may be called more than once; later calls return the
// first one's error.
func (f *frozenFS) release(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.released {
		return f.relErr
	}
	f.released = true
	if f.timer != nil {
		f.timer.Stop()
	}
	var errs []error
	if f.deadline {
		errs = append(errs, fmt.Errorf("fsfreeze %s: %w after %s: the snapshot may not be consistent",
			strings.Join(f.mounts, ", "), errThawedByDeadline, f.maxFreeze))
		errs = append(errs, f.err)
	} else {
		notFrozen, err := f.thawAll()
		errs = append(errs, err)
		if len(notFrozen) > 0 {
			errs = append(errs, fmt.Errorf("fsfreeze %s: was thawed before the post edge (by the watchdog's deadline or another process): the snapshot may not be consistent",
				strings.Join(notFrozen, ", ")))
		}
	}
	f.thawed = true
	errs = append(errs, f.watchdog.stop(ctx))
	f.relErr = errors.Join(errs...)
	return f.relErr
}

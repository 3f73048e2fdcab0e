//go:build !linux

package hooks

import (
	"context"
	"errors"
	"time"
)

// errFsfreezeLinuxOnly is the error of every freeze outside Linux.
var errFsfreezeLinuxOnly = errors.New("fsfreeze: FIFREEZE exists only on Linux")

// keptPath is a path that must stay writable while filesystems are frozen.
type keptPath struct {
	path, what string
}

// frozenFS is never made outside Linux.
type frozenFS struct{}

// release has nothing to thaw outside Linux.
func (f *frozenFS) release(context.Context) error { return nil }

// checkFsfreeze fails outside Linux.
func checkFsfreeze([]string, []keptPath) ([]string, error) { return nil, errFsfreezeLinuxOnly }

// freezeFilesystems fails outside Linux.
func freezeFilesystems(context.Context, []string, time.Duration, []keptPath) (*frozenFS, error) {
	return nil, errFsfreezeLinuxOnly
}

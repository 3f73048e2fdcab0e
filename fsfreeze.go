package hooks

import "errors"

// errThawedByDeadline is wrapped by the error of a release that found the
// filesystems thawed by the max_freeze deadline.
var errThawedByDeadline = errors.New("thawed by the deadline")

// errFreezeNeedsRoot is the error of a freeze without the privilege.
var errFreezeNeedsRoot = errors.New("fsfreeze needs root (CAP_SYS_ADMIN)")

// Both kinds of freeze are resources of the held-hook engine.
var (
	_ heldResource = (*frozenFS)(nil)
	_ heldResource = (*frozenGuest)(nil)
)

package hooks

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// FSFreezeHook is the fsfreeze hook: it freezes filesystems of this host
// (FIFREEZE) while the snapshot is taken, so that the snapshots of several
// volumes (LVM, cloud disks, zvols, loop devices) are of one moment: no
// write reaches any of them between the first snapshot and the last. It
// needs root (CAP_SYS_ADMIN).
//
// What Run does, on the held-hook engine (filter, timeout, err_is_fatal and
// post_on_pre_error as for MySQLLockTables):
//
//   - Pre: for a filesystem the hook's filter passes, it checks that each
//     mount point may be frozen (a mount point of a filesystem type that can
//     be frozen; not "/", nor the filesystem of the executable, working,
//     temporary or runtime directory, the watchdog's programs, or a command
//     hook's script of the same list), flushes each (syncfs), and freezes
//     them in order. If one fails, those already frozen are thawed and the
//     edge fails. The report says how many were frozen.
//   - Pre in a dry run: the same checks, and the privilege; nothing is
//     frozen. Without root the error says so.
//   - Post: it thaws them in reverse order (FITHAW) and says how many.
//
// A filesystem is never left frozen: past max_freeze a timer in this
// process thaws them, and so does a watchdog process (a /bin/sh script)
// that also thaws at once if this process dies. The Post edge then reports
// the error "... thawed by the deadline after <max_freeze>: the snapshot
// may not be consistent".
//
// String is "fsfreeze <mount>, <mount>"; EdgeString(Post) is "fsthaw
// <mount>, <mount>". An FSFreezeHook is immutable and safe for concurrent
// use, but two plans cannot freeze the same filesystem at once: the second
// freeze fails ("already frozen").
type FSFreezeHook struct {
	heldHook
	mountpoints []string
	maxFreeze   time.Duration
	kept        []keptPath // what must stay writable besides freezeKeptPaths
}

// newFSFreezeHook returns the hook that in describes. in has its defaults
// applied and is valid.
func newFSFreezeHook(in HookConfig) (*FSFreezeHook, error) {
	settings, err := newHookSettings(in)
	if err != nil {
		return nil, err
	}
	mounts := strings.Join(in.Mountpoints, ", ")
	h := &FSFreezeHook{mountpoints: in.Mountpoints, maxFreeze: in.MaxFreeze}
	h.heldHook = heldHook{
		hookSettings: settings,
		name:         "fsfreeze " + mounts,
		postName:     "fsthaw " + mounts,
		preAction:    "freeze " + mounts,
		postAction:   "thaw " + mounts,
		words:        heldWords{resource: "frozen filesystems", notTaken: "nothing was frozen", released: "thawed"},
		// maxHold stays 0: freezeFilesystems keeps the max_freeze deadline
		// itself (a timer and the watchdog process), and release reports it.
		take: h.take,
	}
	return h, nil
}

// keep adds paths that must stay writable while the hook's filesystems are
// frozen: the scripts of the command hooks of the same list. Only
// ListFromConfig calls it, before the hook is used.
func (h *FSFreezeHook) keep(paths ...keptPath) { h.kept = append(h.kept, paths...) }

// Mountpoints returns the mount points the hook freezes, in order. The
// slice is the caller's.
func (h *FSFreezeHook) Mountpoints() []string { return append([]string(nil), h.mountpoints...) }

// MaxFreeze returns the longest the hook keeps its filesystems frozen.
func (h *FSFreezeHook) MaxFreeze() time.Duration { return h.maxFreeze }

// Run freezes on the Pre edge and thaws on the Post edge; see FSFreezeHook.
// It returns a *HeldReport.
func (h *FSFreezeHook) Run(ctx context.Context, edge Edge, phase Phase, dryRun bool, extra Env, state map[interface{}]interface{}) HookReport {
	r := h.run(ctx, edge, dryRun, extra, state)
	if edge == Post && r.Err == nil && !strings.Contains(r.What, " skipped: ") {
		r.What = fmt.Sprintf("thawed %d filesystem%s: %s", len(h.mountpoints), plural(len(h.mountpoints)), strings.Join(h.mountpoints, ", "))
	}
	return r
}

// take checks the mount points (dry run) or freezes them.
func (h *FSFreezeHook) take(ctx context.Context, log *slog.Logger, _ Env, dryRun bool, hold func(heldResource)) (string, error) {
	if dryRun {
		mounts, err := checkFsfreeze(h.mountpoints, h.kept)
		if err != nil {
			return "", err
		}
		log.DebugContext(ctx, "dry run: the mount points can be frozen; froze nothing")
		return fmt.Sprintf("freeze %s (dry run: %d filesystem%s can be frozen, froze nothing)", strings.Join(mounts, ", "), len(mounts), plural(len(mounts))), nil
	}
	start := time.Now()
	f, err := freezeFilesystems(ctx, h.mountpoints, h.maxFreeze, h.kept)
	if err != nil {
		return "", err
	}
	hold(f)
	log.InfoContext(ctx, "froze filesystems", slog.Any("mountpoints", h.mountpoints),
		slog.Duration("took", time.Since(start)), slog.Duration("max_freeze", h.maxFreeze))
	return fmt.Sprintf("froze %d filesystem%s: %s", len(h.mountpoints), plural(len(h.mountpoints)), strings.Join(h.mountpoints, ", ")), nil
}

// plural is "s" unless n is 1.
func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// keepCommandScripts tells the fsfreeze hooks of l, made from in, to keep
// the executables of in's command hooks writable: a script on a frozen
// filesystem could not even be read from a cold cache without risk, and
// whatever it writes there would wait for the thaw.
func keepCommandScripts(in HookList, l List) {
	var kept []keptPath
	for i, c := range in {
		if c.Type == TypeCommand {
			kept = append(kept, keptPath{path: c.Path, what: fmt.Sprintf("the executable of hook #%d", i+1)})
		}
	}
	if len(kept) == 0 {
		return
	}
	for _, h := range l {
		if f, ok := h.(*FSFreezeHook); ok {
			f.keep(kept...)
		}
	}
}

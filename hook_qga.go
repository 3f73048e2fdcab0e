package hooks

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// QGAFreezeHook is the qemu-guest-agent hook: it freezes the filesystems of
// a virtual machine through its QEMU guest agent while the snapshot of the
// machine's disks (zvols, LVM volumes, image files) is taken, so that the
// snapshot is consistent from inside the guest.
//
// What Run does, on the held-hook engine (filter, timeout, err_is_fatal and
// post_on_pre_error as for MySQLLockTables):
//
//   - Pre: for a filesystem the hook's filter passes, it connects to the
//     agent's socket, synchronises (guest-sync-delimited) and freezes the
//     guest's filesystems (guest-fsfreeze-freeze), or only its mountpoints
//     (guest-fsfreeze-freeze-list), and disconnects. The report says how
//     many the agent froze. An agent that is not running, a guest whose
//     freeze hook failed, a timeout: each fails the edge, and a thaw is sent
//     in case the guest froze after all.
//   - Pre in a dry run: it asks the agent for its freeze status
//     (guest-fsfreeze-status) and freezes nothing; a guest that is frozen
//     already is an error.
//   - Post: it connects anew and thaws (guest-fsfreeze-thaw); the report
//     says how many filesystems the agent thawed.
//
// The guest is never left frozen by this hook: past max_freeze a timer in
// this process thaws it, and, if the program called RunWatchdog, so does a
// watchdog process that also thaws at once if this process dies. The Post
// edge then reports "... thawed by the deadline after <max_freeze>: the
// snapshot may not be consistent".
//
// String is "qemu-guest-agent freeze (<socket>)"; EdgeString(Post) is
// "qemu-guest-agent thaw (<socket>)". A QGAFreezeHook is immutable and safe
// for concurrent use.
type QGAFreezeHook struct {
	heldHook
	socket      string
	mountpoints []string
	maxFreeze   time.Duration
}

// newQGAFreezeHook returns the hook that in describes. in has its defaults
// applied and is valid.
func newQGAFreezeHook(in HookConfig) (*QGAFreezeHook, error) {
	settings, err := newHookSettings(in)
	if err != nil {
		return nil, err
	}
	h := &QGAFreezeHook{socket: in.Socket, mountpoints: in.Mountpoints, maxFreeze: in.MaxFreeze}
	target := " (" + in.Socket + ")"
	h.heldHook = heldHook{
		hookSettings: settings,
		name:         "qemu-guest-agent freeze" + target,
		postName:     "qemu-guest-agent thaw" + target,
		preAction:    "guest-fsfreeze-freeze",
		postAction:   "guest-fsfreeze-thaw",
		words:        heldWords{resource: "frozen guest", notTaken: "nothing was frozen", released: "thawed"},
		// maxHold stays 0: freezeGuest keeps the max_freeze deadline itself
		// (a timer and the watchdog process), and release reports it.
		take: h.take,
	}
	if len(in.Mountpoints) > 0 {
		h.preAction = "guest-fsfreeze-freeze-list " + strings.Join(in.Mountpoints, ", ")
	}
	return h, nil
}

// Socket returns the path of the agent's socket.
func (h *QGAFreezeHook) Socket() string { return h.socket }

// MaxFreeze returns the longest the hook keeps the guest frozen.
func (h *QGAFreezeHook) MaxFreeze() time.Duration { return h.maxFreeze }

// Run freezes the guest on the Pre edge and thaws it on the Post edge; see
// QGAFreezeHook. It returns a *HeldReport.
func (h *QGAFreezeHook) Run(ctx context.Context, edge Edge, phase Phase, dryRun bool, extra Env, state map[interface{}]interface{}) HookReport {
	var guest *frozenGuest
	if edge == Post {
		guest = heldGuest(state, &h.heldHook)
	}
	r := h.run(ctx, edge, dryRun, extra, state)
	if guest != nil {
		_, thawed := guest.counts()
		r.What = fmt.Sprintf("%s: thawed %d filesystem%s", h.postAction, thawed, plural(thawed))
	}
	return r
}

// heldGuest returns the frozen guest that the Pre edge of h left in state,
// or nil.
func heldGuest(state map[interface{}]interface{}, h *heldHook) *frozenGuest {
	st, ok := state[h].(*heldState)
	if !ok || st == nil {
		return nil
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	for _, r := range st.res {
		if g, ok := r.(*frozenGuest); ok {
			return g
		}
	}
	return nil
}

// take asks the agent for its status (dry run) or freezes the guest.
func (h *QGAFreezeHook) take(ctx context.Context, log *slog.Logger, _ Env, dryRun bool, hold func(heldResource)) (string, error) {
	if dryRun {
		status, err := qgaStatus(ctx, h.socket)
		if err != nil {
			return "guest-fsfreeze-status", err
		}
		if status != "thawed" {
			return "guest-fsfreeze-status", fmt.Errorf("qemu-guest-agent %s: the guest is %s already (frozen by someone else?)", h.socket, status)
		}
		log.DebugContext(ctx, "dry run: the agent answers and the guest is thawed; froze nothing")
		return h.preAction + " (dry run: the agent answers, the guest is thawed; froze nothing)", nil
	}
	start := time.Now()
	g, err := freezeGuest(ctx, h.socket, h.mountpoints, h.maxFreeze)
	if err != nil {
		return "", err
	}
	hold(g)
	frozen, _ := g.counts()
	log.InfoContext(ctx, "froze the guest's filesystems", slog.Int("frozen", frozen),
		slog.Duration("took", time.Since(start)), slog.Duration("max_freeze", h.maxFreeze))
	return fmt.Sprintf("%s: froze %d filesystem%s", h.preAction, frozen, plural(frozen)), nil
}

//go:build linux

package hooks

// Plans with the fsfreeze and qemu-guest-agent hooks, on loop-mounted XFS
// and ext4 filesystems and the real qemu-ga (see fsfreeze_linux_test.go and
// qga_linux_test.go for the helpers). Every loop mount is thawed by its
// cleanup, also when a test fails.

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// freezePlan runs a plan of list around cb for the dataset tank/db and
// returns its report.
func freezePlan(t *testing.T, list List, dryRun bool, cb func(ctx context.Context) error) PlanReport {
	t.Helper()
	p, err := NewPlan(&list, PhaseTesting, NewCallbackHook("snapshot", cb, nil), Env{EnvFS: "tank/db"})
	require.NoError(t, err)
	p.Run(context.Background(), dryRun)
	return p.Report()
}

// heldReport returns the report of step i as a *HeldReport.
func heldReport(t *testing.T, r PlanReport, i int) *HeldReport {
	t.Helper()
	h, ok := r[i].Report.(*HeldReport)
	require.True(t, ok, "step %d: report %T", i, r[i].Report)
	return h
}

// freezeHook returns the hook that c describes, with filesystems tank/db<.
func freezeHook(t *testing.T, c HookConfig) Hook {
	t.Helper()
	c.Filesystems = map[string]bool{"tank/db<": true}
	h, err := HookFromConfig(c)
	require.NoError(t, err)
	return h
}

// requireThawed fails unless a write to each mount goes through.
func requireThawed(t *testing.T, mounts ...string) {
	t.Helper()
	for _, m := range mounts {
		p := filepath.Join(m, "thawed-probe")
		awaitWritten(t, startWriter(t, p), p, time.Minute)
	}
}

func TestFSFreezeHookPlanFreezesAroundTheCallback(t *testing.T) {
	requireFreezeTools(t, "mkfs.xfs", "mkfs.ext4")
	mounts := []string{loopMount(t, "xfs"), loopMount(t, "ext4")}
	h := freezeHook(t, HookConfig{Type: TypeFSFreeze, Mountpoints: mounts, ErrIsFatal: true})
	var writers []*exec.Cmd
	r := freezePlan(t, List{h}, false, func(context.Context) error {
		for _, m := range mounts { // a writer blocks on each while the snapshot is taken
			writers = append(writers, requireFrozen(t, m))
		}
		return nil
	})
	require.False(t, r.HadError(), "%v", r)
	assert.Equal(t, "froze 2 filesystems: "+strings.Join(mounts, ", "), heldReport(t, r, 0).What)
	assert.Equal(t, "thawed 2 filesystems: "+strings.Join(mounts, ", "), heldReport(t, r, 2).What)
	assert.Equal(t, "fsthaw "+strings.Join(mounts, ", "), r[2].Hook.(*FSFreezeHook).EdgeString(Post))
	for _, w := range writers {
		awaitWritten(t, w, w.Args[len(w.Args)-1], time.Minute)
	}

	t.Run("dry_run_freezes_nothing", func(t *testing.T) {
		r := freezePlan(t, List{h}, true, func(context.Context) error {
			requireThawed(t, mounts...)
			return nil
		})
		require.False(t, r.HadError(), "%v", r)
		assert.Contains(t, heldReport(t, r, 0).What, "(dry run: 2 filesystems can be frozen, froze nothing)")
		assert.Contains(t, heldReport(t, r, 2).What, "skipped: nothing was frozen (dry run)")
	})
	t.Run("filesystem_not_matched_freezes_nothing", func(t *testing.T) {
		p, err := NewPlan(&List{h}, PhaseTesting, NewCallbackHook("snapshot", func(context.Context) error {
			requireThawed(t, mounts...)
			return nil
		}, nil), Env{EnvFS: "tank/other"})
		require.NoError(t, err)
		p.Run(context.Background(), false)
		r := p.Report()
		require.False(t, r.HadError(), "%v", r)
		assert.Contains(t, heldReport(t, r, 0).What, "skipped: filesystem tank/other not matched")
	})
}

func TestFSFreezeHookDeadlineThawsAndPostSaysSo(t *testing.T) {
	requireFreezeTools(t, "mkfs.ext4")
	mnt := loopMount(t, "ext4")
	h := freezeHook(t, HookConfig{Type: TypeFSFreeze, Mountpoints: []string{mnt}, MaxFreeze: time.Second})
	r := freezePlan(t, List{h}, false, func(context.Context) error {
		// The callback outlasts max_freeze: the writer gets through without
		// the post edge.
		p := filepath.Join(mnt, "f")
		awaitWritten(t, startWriter(t, p), p, time.Minute)
		return nil
	})
	post := heldReport(t, r, 2)
	require.Error(t, post.Err)
	const msg = "thawed by the deadline after 1s: the snapshot may not be consistent"
	assert.Equal(t, 1, strings.Count(post.Err.Error(), msg), "post error: %v", post.Err)
	assert.Equal(t, StepErr, r[2].Status)
	if was, err := thawMount(mnt); was || err != nil {
		t.Fatalf("%s after the plan: frozen %v, %v", mnt, was, err)
	}
}

func TestFSFreezeHookRefusedMounts(t *testing.T) {
	requireFreezeTools(t, "mkfs.ext4")
	mnt := loopMount(t, "ext4")
	script := filepath.Join(mnt, "hook.sh")
	require.NoError(t, os.WriteFile(script, []byte("#!/bin/sh\nexit 0\n"), 0o755))
	cases := []struct {
		name string
		list HookList
		want string
	}{
		{"root", HookList{{Type: TypeFSFreeze, Mountpoints: []string{"/"}, ErrIsFatal: true}}, "the root filesystem"},
		{"not_a_mount_point", HookList{{Type: TypeFSFreeze, Mountpoints: []string{mnt, filepath.Join(mnt, "..")}, ErrIsFatal: true}}, "not a mount point"},
		{"the_script_of_a_command_hook", HookList{
			{Type: TypeCommand, Path: script},
			{Type: TypeFSFreeze, Mountpoints: []string{mnt}, ErrIsFatal: true},
		}, "the executable of hook #1"},
	}
	for _, c := range cases {
		for _, dryRun := range []bool{false, true} {
			name := c.name
			if dryRun {
				name += "_dry_run"
			}
			t.Run(name, func(t *testing.T) {
				for i := range c.list {
					c.list[i].Filesystems = map[string]bool{"tank/db<": true}
				}
				l, err := ListFromConfig(&c.list)
				require.NoError(t, err)
				i := len(*l) - 1
				r := freezePlan(t, *l, dryRun, func(context.Context) error {
					t.Error("the callback ran after a fatal error")
					return nil
				})
				pre := heldReport(t, r, i)
				require.Error(t, pre.Err)
				assert.Contains(t, pre.Err.Error(), c.want)
				assert.Equal(t, StepSkippedDueToFatalErr, r[i+1].Status, "the callback")
				requireThawed(t, mnt)
			})
		}
	}
}

func TestQGAFreezeHookPlan(t *testing.T) {
	mnt := loopMount(t, "ext4")
	sock := startQGA(t)
	h := freezeHook(t, HookConfig{Type: TypeQEMUGuestAgent, Socket: sock, Mountpoints: []string{mnt}, ErrIsFatal: true})
	assert.Equal(t, "qemu-guest-agent freeze ("+sock+")", h.String())
	var w *exec.Cmd
	r := freezePlan(t, List{h}, false, func(ctx context.Context) error {
		w = requireFrozen(t, mnt)
		s, err := qgaStatus(ctx, sock)
		if s != "frozen" {
			t.Errorf("status in the callback: %q, %v", s, err)
		}
		return nil
	})
	require.False(t, r.HadError(), "%v", r)
	assert.Equal(t, "guest-fsfreeze-freeze-list "+mnt+": froze 1 filesystem", heldReport(t, r, 0).What)
	// The agent's thaw thaws every frozen filesystem it finds: on this host,
	// also one that another test (of another package) froze at that moment.
	assert.Regexp(t, `^guest-fsfreeze-thaw: thawed (1 filesystem|[1-9][0-9]* filesystems)$`, heldReport(t, r, 2).What)
	awaitWritten(t, w, w.Args[len(w.Args)-1], time.Minute)

	t.Run("dry_run_freezes_nothing", func(t *testing.T) {
		r := freezePlan(t, List{h}, true, func(context.Context) error {
			requireThawed(t, mnt)
			return nil
		})
		require.False(t, r.HadError(), "%v", r)
		assert.Contains(t, heldReport(t, r, 0).What, "dry run: the agent answers, the guest is thawed; froze nothing")
	})
	t.Run("deadline", func(t *testing.T) {
		h := freezeHook(t, HookConfig{Type: TypeQEMUGuestAgent, Socket: sock, Mountpoints: []string{mnt}, MaxFreeze: time.Second})
		r := freezePlan(t, List{h}, false, func(context.Context) error {
			p := filepath.Join(mnt, "after-deadline")
			awaitWritten(t, startWriter(t, p), p, time.Minute)
			return nil
		})
		post := heldReport(t, r, 2)
		require.Error(t, post.Err)
		assert.Equal(t, 1, strings.Count(post.Err.Error(), "thawed by the deadline after 1s: the snapshot may not be consistent"), "post error: %v", post.Err)
	})
	t.Run("agent_not_running", func(t *testing.T) {
		for _, dryRun := range []bool{false, true} {
			h := freezeHook(t, HookConfig{Type: TypeQEMUGuestAgent, Socket: filepath.Join(t.TempDir(), "none.qga"), ErrIsFatal: true})
			r := freezePlan(t, List{h}, dryRun, func(context.Context) error { return nil })
			pre := heldReport(t, r, 0)
			require.Error(t, pre.Err)
			assert.Contains(t, pre.Err.Error(), "the agent is not running")
			assert.Equal(t, StepSkippedDueToFatalErr, r[1].Status)
		}
	})
}

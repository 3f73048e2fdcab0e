package hooks

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// fakeHold is an in-process resource of the held-hook engine: it counts its
// releases and closes released on the first.
type fakeHold struct {
	name     string
	mu       sync.Mutex
	n        int
	order    *[]string // appended to on release, if set
	released chan struct{}
}

func newFakeHold(name string, order *[]string) *fakeHold {
	return &fakeHold{name: name, order: order, released: make(chan struct{})}
}

func (f *fakeHold) release(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	if f.n == 1 {
		close(f.released)
	}
	if f.order != nil {
		*f.order = append(*f.order, f.name)
	}
	return nil
}

func (f *fakeHold) releases() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n
}

// fakeHeldHook returns a held hook whose take runs take.
func fakeHeldHook(t *testing.T, maxHold time.Duration, take func(ctx context.Context, hold func(heldResource)) (string, error)) *heldHook {
	t.Helper()
	s, err := newHookSettings(HookConfig{Type: TypeCommand, Filesystems: dbTestFilter, Timeout: 10 * time.Second})
	require.NoError(t, err)
	return &heldHook{
		hookSettings: s,
		name:         "fake FREEZE (x)",
		postName:     "fake THAW (x)",
		preAction:    "FREEZE",
		postAction:   "THAW",
		words:        heldWords{resource: "frozen thing", notTaken: "nothing was frozen", released: "thawed"},
		secret:       "hunter2",
		maxHold:      maxHold,
		take: func(ctx context.Context, _ *slog.Logger, _ Env, _ bool, hold func(heldResource)) (string, error) {
			return take(ctx, hold)
		},
	}
}

// fakeHeldRun runs h as a Hook would be run.
type fakeHeldRun struct{ *heldHook }

func (h fakeHeldRun) Run(ctx context.Context, edge Edge, _ Phase, dryRun bool, extra Env, state map[interface{}]interface{}) HookReport {
	return h.run(ctx, edge, dryRun, extra, state)
}

var fakeEnv = Env{EnvFS: dbTestFS}

func TestHeldHookReleasesOnce(t *testing.T) {
	res := newFakeHold("r", nil)
	h := fakeHeldHook(t, time.Hour, func(_ context.Context, hold func(heldResource)) (string, error) {
		hold(res)
		return "", nil
	})
	state := map[interface{}]interface{}{}
	pre := h.run(t.Context(), Pre, false, fakeEnv, state)
	require.Equal(t, "FREEZE", pre.String())
	require.Zero(t, res.releases(), "released before the post edge")
	post := h.run(t.Context(), Post, false, fakeEnv, state)
	require.Equal(t, "THAW", post.String())
	require.Equal(t, 1, res.releases())
	require.Empty(t, state, "the post edge leaves nothing in the state")

	again := h.run(t.Context(), Post, false, fakeEnv, state)
	require.True(t, strings.HasPrefix(again.Error(), "THAW: no frozen thing from the pre edge: "), again.Error())
	require.Equal(t, 1, res.releases(), "a second post edge releases nothing")
}

func TestHeldHookPostWithoutPre(t *testing.T) {
	h := fakeHeldHook(t, 0, func(context.Context, func(heldResource)) (string, error) { panic("take must not run") })
	var rep HookReport
	require.NotPanics(t, func() { rep = h.run(t.Context(), Post, false, fakeEnv, map[interface{}]interface{}{}) })
	require.Equal(t, "THAW: no frozen thing from the pre edge: it failed or did not run, so there is nothing to release", rep.Error())
	require.NotPanics(t, func() { rep = h.run(t.Context(), Post, false, fakeEnv, nil) })
	require.True(t, rep.HadError())
}

func TestHeldHookDeadlineReleases(t *testing.T) {
	res := newFakeHold("r", nil)
	h := fakeHeldHook(t, 10*time.Millisecond, func(_ context.Context, hold func(heldResource)) (string, error) {
		hold(res)
		return "", nil
	})
	state := map[interface{}]interface{}{}
	pre := h.run(t.Context(), Pre, false, fakeEnv, state)
	require.False(t, pre.HadError(), pre.Error())
	<-res.released // by the deadline, with no post edge in sight

	post := h.run(t.Context(), Post, false, fakeEnv, state)
	require.Equal(t, "THAW: thawed by the deadline after 10ms: the snapshot may not be consistent", post.Error())
	require.Equal(t, 1, res.releases())
}

// TestHeldHookDeadlineRacesPost lets the deadline and the post edge race:
// whoever wins, there is exactly one release, and the post edge says who.
func TestHeldHookDeadlineRacesPost(t *testing.T) {
	for range 200 {
		res := newFakeHold("r", nil)
		h := fakeHeldHook(t, time.Microsecond, func(_ context.Context, hold func(heldResource)) (string, error) {
			hold(res)
			return "", nil
		})
		state := map[interface{}]interface{}{}
		require.False(t, h.run(t.Context(), Pre, false, fakeEnv, state).HadError())
		post := h.run(t.Context(), Post, false, fakeEnv, state)
		require.Equal(t, 1, res.releases())
		if post.HadError() {
			require.Contains(t, post.Error(), "thawed by the deadline after 1µs")
		}
	}
}

func TestHeldHookTakeFailsOrPanics(t *testing.T) {
	for _, c := range []struct {
		name  string
		fail  func() error
		panic bool
	}{
		{name: "error_after_partial_take", fail: func() error { return errors.New("third thing: device busy (hunter2)") }},
		{name: "panic_after_partial_take", panic: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			var order []string
			a, b := newFakeHold("a", &order), newFakeHold("b", &order)
			h := fakeHeldHook(t, time.Hour, func(_ context.Context, hold func(heldResource)) (string, error) {
				hold(a)
				hold(b)
				if c.panic {
					panic("boom after two")
				}
				return "FREEZE c", c.fail()
			})
			state := map[interface{}]interface{}{}
			if c.panic {
				require.PanicsWithValue(t, "boom after two", func() { h.run(t.Context(), Pre, false, fakeEnv, state) })
			} else {
				pre := h.run(t.Context(), Pre, false, fakeEnv, state)
				require.Equal(t, "FREEZE c: third thing: device busy (xxxxx)", pre.Error())
			}
			require.Equal(t, []string{"b", "a"}, order, "released in reverse order, once each")
			require.Empty(t, state)
			post := h.run(t.Context(), Post, false, fakeEnv, state)
			require.Contains(t, post.Error(), "no frozen thing from the pre edge")
			require.Equal(t, []string{"b", "a"}, order)
		})
	}
}

func TestHeldHookDryRunAndFilter(t *testing.T) {
	res := newFakeHold("r", nil)
	h := fakeHeldHook(t, 0, func(_ context.Context, hold func(heldResource)) (string, error) {
		hold(res)
		return "FREEZE (dry run: checked)", nil
	})
	state := map[interface{}]interface{}{}
	require.Equal(t, "FREEZE (dry run: checked)", h.run(t.Context(), Pre, true, fakeEnv, state).String())
	require.Equal(t, 1, res.releases(), "a dry run releases what it held before the pre edge returns")
	require.Equal(t, "THAW skipped: nothing was frozen (dry run)", h.run(t.Context(), Post, true, fakeEnv, state).String())

	other := Env{EnvFS: "tank/other"}
	require.Equal(t, "FREEZE skipped: filesystem tank/other not matched", h.run(t.Context(), Pre, false, other, state).String())
	require.Equal(t, "THAW skipped: nothing was frozen (the filesystem was not matched)", h.run(t.Context(), Post, false, other, state).String())
	require.Equal(t, 1, res.releases())
}

// TestHeldHookPostEdgeNamedByWhatItDoes: reports, JSON and logs name the
// post edge by its release.
func TestHeldHookPostEdgeNamedByWhatItDoes(t *testing.T) {
	res := newFakeHold("r", nil)
	h := fakeHeldHook(t, 0, func(_ context.Context, hold func(heldResource)) (string, error) {
		hold(res)
		return "", nil
	})
	run := dbRunPlan(t, t.Context(), List{fakeHeldRun{h}}, nil, false)
	require.Equal(t, []StepStatus{StepOk, StepOk, StepOk}, dbStatuses(run.report))
	text := run.report.String()
	require.Contains(t, text, "[Pre]  fake FREEZE (x)")
	require.Contains(t, text, "[Post]  fake THAW (x)")
	js, err := json.Marshal(run.report)
	require.NoError(t, err)
	require.Contains(t, string(js), `"edge":"Post","status":"Ok","hook":"fake THAW (x)"`)
	require.Contains(t, run.logs, `hook="fake THAW (x)" edge=Post`)
	require.Equal(t, "fake FREEZE (x)", fakeHeldRun{h}.String(), "String stays the hook's name")
}

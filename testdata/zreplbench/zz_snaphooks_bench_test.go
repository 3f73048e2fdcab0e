package hooks_test

// The work of snaphooks' BenchmarkPlanOrchestration/nolog (bench_test.go),
// through zrepl's hooks package: scripts/zrepl-bench.sh copies this file into
// internal/daemon/hooks of a zrepl checkout (the package is internal to
// zrepl's module) and runs it beside snaphooks' own benchmark.

import (
	"context"
	"strconv"
	"testing"

	"github.com/zrepl/zrepl/internal/daemon/hooks"
)

type zbHook struct{ name string }

var zbOKReport hooks.HookReport = &hooks.CallbackHookReport{Name: "ok"}

func (h *zbHook) Filesystems() hooks.Filter { return nil }
func (h *zbHook) ErrIsFatal() bool          { return false }
func (h *zbHook) String() string            { return h.name }
func (h *zbHook) Run(context.Context, hooks.Edge, hooks.Phase, bool, hooks.Env, map[interface{}]interface{}) hooks.HookReport {
	return zbOKReport
}

func BenchmarkPlanOrchestration(b *testing.B) {
	list := make(hooks.List, 10)
	for i := range list {
		list[i] = &zbHook{name: "hook" + strconv.Itoa(i)}
	}
	cb := hooks.NewCallbackHook("snapshot", func(context.Context) error { return nil }, nil)
	extra := hooks.Env{hooks.EnvFS: "tank/db", hooks.EnvSnapshot: "zrepl_20261125_080000_000"}
	b.Run("nolog", func(b *testing.B) {
		b.ReportAllocs()
		ctx := context.Background()
		for b.Loop() {
			p, err := hooks.NewPlan(&list, hooks.PhaseSnapshot, cb, extra)
			if err != nil {
				b.Fatal(err)
			}
			p.Run(ctx, false)
		}
	})
}

package hooks

import (
	"context"
	"fmt"
	"os/exec"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// myJobHook is a mysql-lock-tables hook whose filter passes the datasets of
// the job-scope tests.
func myJobHook(tb testing.TB, dsn string) Hook {
	tb.Helper()
	h, err := HookFromConfig(HookConfig{
		Type:        TypeMySQLLockTables,
		DSN:         dsn,
		Timeout:     30 * time.Second,
		ErrIsFatal:  true,
		Filesystems: map[string]bool{"tank<": true},
	})
	require.NoError(tb, err)
	return h
}

// TestMySQLJobPlanLocksOnceAroundTwoSnapshots: a plan of two datasets takes
// the lock once, holds it across a callback that runs two separate snapshot
// commands, and releases it.
func TestMySQLJobPlanLocksOnceAroundTwoSnapshots(t *testing.T) {
	admin, writer := mysqlAdmin(t), myWriter(t)
	dsn, user, _ := myHookDSN(t)
	list := List{myJobHook(t, dsn)}

	var checks []string
	checkLocked := func(ctx context.Context, after string) {
		ids, err := mySessions(ctx, admin, user)
		if err != nil || len(ids) != 1 {
			t.Errorf("after %s: sessions of %s: %v, %v; want exactly one: one lock for both datasets", after, user, ids, err)
		}
		if err := myTryInsert(ctx, writer); !myIsLockWaitTimeout(err) {
			t.Errorf("after %s: INSERT from another session: got %v, want a lock wait timeout (1205)", after, err)
		}
		checks = append(checks, after)
	}
	cb := NewCallbackHook("snapshot", func(ctx context.Context) error {
		for _, fs := range []string{"tank/db", "tank/log"} {
			// One command per dataset, as on a filesystem whose snapshots are
			// not atomic across datasets (btrfs).
			if err := exec.CommandContext(ctx, "true", "snapshot", fs+"@s1").Run(); err != nil {
				return err
			}
			checkLocked(ctx, "snapshot of "+fs)
		}
		return nil
	}, nil)
	scope := Scope{Datasets: datasets(t, "tank/db", "tank/log")}
	p, err := NewJobPlan(&list, PhaseSnapshot, cb, scope, Env{EnvSnapshot: "s1"})
	require.NoError(t, err)
	p.Run(t.Context(), false)
	rep := p.Report()

	require.Equal(t, []StepStatus{StepOk, StepOk, StepOk}, dbStatuses(rep), "one pre edge, one callback, one post edge:\n%s", rep)
	require.Equal(t, []string{"tank/db", "tank/log"}, rep[0].Datasets)
	require.Equal(t, []string{"snapshot of tank/db", "snapshot of tank/log"}, checks)
	myRequireUnlocked(t, admin, writer, user)
}

// BenchmarkMySQLRound compares a snapshot round over n datasets with one
// mysql-lock-tables hook: one plan per dataset (zrepl's way: n connections,
// n locks) against one job plan (one of each). It reports the locks taken
// per round. Run it under scripts/test.sh, which starts the server:
//
//	bash scripts/test.sh -run '^$' -bench MySQLRound -benchtime 3x .
func BenchmarkMySQLRound(b *testing.B) {
	dsn := dsnFromEnv(b, "SNAPHOOKS_TEST_MYSQL_DSN")
	list := List{myJobHook(b, dsn)}
	noop := func(context.Context) error { return nil }
	for _, n := range []int{10, 100, 1000} {
		names := make([]string, n)
		for i := range names {
			names[i] = fmt.Sprintf("tank/ds%04d", i)
		}
		ds := datasets(b, names...)
		locks := func(r PlanReport) int {
			k := 0
			for _, s := range r {
				if s.Edge == Pre && s.Status == StepOk {
					k++
				}
			}
			return k
		}
		b.Run(fmt.Sprintf("per-dataset/n=%d", n), func(b *testing.B) {
			taken := 0
			for i := 0; i < b.N; i++ {
				for _, d := range ds {
					fsHooks, err := list.CopyFilteredForFilesystem(d)
					require.NoError(b, err)
					p, err := NewPlan(&fsHooks, PhaseSnapshot, NewCallbackHookForFilesystem("snapshot", d, noop), Env{EnvFS: d.ToString()})
					require.NoError(b, err)
					p.Run(context.Background(), false)
					require.False(b, p.Report().HadError())
					taken += locks(p.Report())
				}
			}
			b.ReportMetric(float64(taken)/float64(b.N), "locks/round")
		})
		b.Run(fmt.Sprintf("job/n=%d", n), func(b *testing.B) {
			taken := 0
			for i := 0; i < b.N; i++ {
				p, err := NewJobPlan(&list, PhaseSnapshot, NewCallbackHook("snapshot", noop, nil), Scope{Datasets: ds}, nil)
				require.NoError(b, err)
				p.Run(context.Background(), false)
				require.False(b, p.Report().HadError())
				taken += locks(p.Report())
			}
			b.ReportMetric(float64(taken)/float64(b.N), "locks/round")
		})
	}
}

// BenchmarkFilterScope filters n datasets against a hook list whose filters
// have 1000 patterns in all: the cost per dataset must not grow with n.
func BenchmarkFilterScope(b *testing.B) {
	var list List
	for h := 0; h < 10; h++ {
		patterns := map[string]bool{}
		for i := 0; i < 100; i++ {
			patterns[fmt.Sprintf("tank/h%d/p%03d<", h, i)] = i%3 != 0
		}
		f, err := DatasetMapFilterFromConfig(patterns)
		require.NoError(b, err)
		list = append(list, &filteredHook{name: fmt.Sprintf("h%d", h), filter: f})
	}
	for _, n := range []int{1000, 10000} {
		for _, recursive := range []bool{false, true} {
			names := make([]string, n)
			for i := range names {
				names[i] = fmt.Sprintf("tank/h%d/p%03d/ds%05d", i%10, i%150, i)
			}
			scope := Scope{Datasets: datasets(b, names...), Recursive: recursive}
			b.Run(fmt.Sprintf("n=%d/recursive=%v", n, recursive), func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					if _, err := list.CopyFilteredForScope(scope); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/dataset")
			})
		}
	}
}

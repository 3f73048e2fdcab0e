package hooks

// The cost of a job plan as its scope grows (issue 20): plan creation
// (NewJobPlan), filtering (List.CopyFilteredForScope) and a run of 10
// in-process hooks at 1,000, 10,000 and 100,000 datasets. Each reports
// ns/dataset next to the baseline "parse", NewDatasetPath of every name,
// which any caller with that many datasets pays: the cost stays linear when
// ns/dataset stays flat from 1k to 100k.
//
//	go test -run '^$' -bench BenchmarkJobPlanScale -benchtime 5x .

import (
	"context"
	"fmt"
	"testing"
)

// benchScopeHook is an in-process hook with a filter that does nothing.
type benchScopeHook struct {
	benchHook
	filter Filter
}

func (h *benchScopeHook) Filesystems() Filter { return h.filter }

// benchScopeHooks returns 10 hooks: 5 whose filter passes every dataset
// under tank, 5 that pass one dataset each.
func benchScopeHooks(tb testing.TB) List {
	l := make(List, 10)
	for i := range l {
		patterns := map[string]bool{"tank<": true}
		if i%2 == 1 {
			patterns = map[string]bool{fmt.Sprintf("tank/data/set-%014d", i): true}
		}
		f, err := DatasetMapFilterFromConfig(patterns)
		if err != nil {
			tb.Fatal(err)
		}
		l[i] = &benchScopeHook{benchHook: benchHook{name: fmt.Sprint("hook", i)}, filter: f}
	}
	return l
}

func BenchmarkJobPlanScale(b *testing.B) {
	list := benchScopeHooks(b)
	cb := benchNoCallback()
	for _, n := range []int{1_000, 10_000, 100_000} {
		names := manyDatasets(n)
		scope := scopeOf(b, names)
		perDataset := func(b *testing.B) {
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/dataset")
		}
		b.Run(fmt.Sprintf("%dk/parse", n/1000), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				for _, name := range names {
					if _, err := NewDatasetPath(name); err != nil {
						b.Fatal(err)
					}
				}
			}
			perDataset(b)
		})
		b.Run(fmt.Sprintf("%dk/filter", n/1000), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := list.CopyFilteredForScope(scope); err != nil {
					b.Fatal(err)
				}
			}
			perDataset(b)
		})
		b.Run(fmt.Sprintf("%dk/new", n/1000), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := NewJobPlan(&list, PhaseSnapshot, cb, scope, benchExtra); err != nil {
					b.Fatal(err)
				}
			}
			perDataset(b)
		})
		b.Run(fmt.Sprintf("%dk/new_and_run", n/1000), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				p, err := NewJobPlan(&list, PhaseSnapshot, cb, scope, benchExtra)
				if err != nil {
					b.Fatal(err)
				}
				p.Run(context.Background(), false)
				if rep := p.Report(); rep.HadError() {
					b.Fatal(reportErrors(rep))
				}
			}
			perDataset(b)
		})
	}
}

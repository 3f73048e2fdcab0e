package hooks

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// filteredHook is an in-process hook with a DatasetMapFilter that records the
// env of its edges.
type filteredHook struct {
	name   string
	filter Filter
	mu     sync.Mutex
	envs   map[Edge]Env
}

func newFilteredHook(t testing.TB, name string, patterns map[string]bool) *filteredHook {
	t.Helper()
	f, err := DatasetMapFilterFromConfig(patterns)
	require.NoError(t, err)
	return &filteredHook{name: name, filter: f, envs: map[Edge]Env{}}
}

func (h *filteredHook) Filesystems() Filter { return h.filter }
func (h *filteredHook) ErrIsFatal() bool    { return false }
func (h *filteredHook) String() string      { return h.name }
func (h *filteredHook) Run(ctx context.Context, edge Edge, phase Phase, dryRun bool, extra Env, state map[interface{}]interface{}) HookReport {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.envs[edge] = extra
	return okReport
}

func (h *filteredHook) env(e Edge) Env {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.envs[e]
}

func datasets(t testing.TB, names ...string) []Dataset {
	t.Helper()
	out := make([]Dataset, len(names))
	for i, n := range names {
		p, err := NewDatasetPath(n)
		require.NoError(t, err)
		out[i] = p
	}
	return out
}

func TestJobPlanRunsEachMatchingHookOnce(t *testing.T) {
	t.Parallel()
	db := newFilteredHook(t, "db", map[string]bool{"tank/db": true})
	both := newFilteredHook(t, "both", map[string]bool{"tank/log<": true, "tank/db": true})
	logOnly := newFilteredHook(t, "log", map[string]bool{"tank/log": true})
	none := newFilteredHook(t, "none", map[string]bool{"zroot<": true})
	list := List{db, both, none, logOnly}
	var cbRuns int
	cb := NewCallbackHook("snapshot", func(context.Context) error { cbRuns++; return nil }, nil)
	scope := Scope{Datasets: datasets(t, "tank/db", "tank/log", "tank/db")}
	p, err := NewJobPlan(&list, PhaseSnapshot, cb, scope, Env{EnvSnapshot: "s1", EnvFS: "ignored"})
	require.NoError(t, err)
	p.Run(context.Background(), false)
	rep := p.Report()

	var names []string
	for _, s := range rep {
		names = append(names, s.Edge.String()+" "+hookName(s.Hook))
	}
	assert.Equal(t, []string{"Pre db", "Pre both", "Pre log", "Callback snapshot", "Post log", "Post both", "Post db"}, names)
	assert.Equal(t, 1, cbRuns)
	assert.False(t, rep.HadError())

	// A plan of two datasets gives every hook ZREPL_FS_LIST_FILE too (see
	// fslist_test.go); here only the rest counts.
	for _, h := range []*filteredHook{db, both, logOnly} {
		assert.NotEmpty(t, h.env(Pre)[EnvFSListFile], h.name)
	}
	assert.Equal(t, Env{EnvFS: "tank/db", EnvFSList: "tank/db", EnvSnapshot: "s1"}, envWithout(db.env(Pre), EnvFSListFile))
	assert.Equal(t, Env{EnvFS: "tank/db", EnvFSList: "tank/db\ntank/log", EnvSnapshot: "s1"}, envWithout(both.env(Pre), EnvFSListFile))
	assert.Equal(t, Env{EnvFS: "tank/log", EnvFSList: "tank/log", EnvSnapshot: "s1"}, envWithout(logOnly.env(Pre), EnvFSListFile))
	assert.Equal(t, "ok", both.env(Post)[EnvCallbackResult])
	assert.Nil(t, none.env(Pre))

	cbStep, _ := rep.Callback()
	assert.Equal(t, []string{"tank/db", "tank/log"}, cbStep.Datasets)
	assert.Equal(t, []string{"tank/db", "tank/log"}, rep[1].Datasets)
	assert.Contains(t, rep.String(), "both (tank/db, tank/log)")
	js, err := rep.MarshalJSON()
	require.NoError(t, err)
	assert.Contains(t, string(js), `"datasets":["tank/db","tank/log"]`)
	var lf strings.Builder
	require.NoError(t, rep.WriteLogfmt(&lf))
	assert.Contains(t, lf.String(), "datasets=tank/db,tank/log")
}

func TestJobPlanRecursive(t *testing.T) {
	t.Parallel()
	below := newFilteredHook(t, "below", map[string]bool{"tank<": false, "tank/deep/er<": true})
	other := newFilteredHook(t, "other", map[string]bool{"zroot<": true})
	child := newFilteredHook(t, "child", map[string]bool{"tank/db": true})
	list := List{below, other, child}
	cb := NewCallbackHook("snapshot", func(context.Context) error { return nil }, nil)

	p, err := NewJobPlan(&list, PhaseSnapshot, cb, Scope{Datasets: datasets(t, "tank"), Recursive: true}, nil)
	require.NoError(t, err)
	p.Run(context.Background(), false)
	assert.Len(t, p.Report(), 5, "two hooks around the callback")
	assert.Equal(t, "tank", below.env(Pre)[EnvFS], "ZREPL_FS is the root")
	assert.Equal(t, "tank", child.env(Pre)[EnvFSList])
	assert.Nil(t, other.env(Pre))

	// Not recursive: only tank itself is asked, and no hook passes it.
	filtered, err := list.CopyFilteredForScope(Scope{Datasets: datasets(t, "tank")})
	require.NoError(t, err)
	assert.Empty(t, filtered)
}

func TestScopeErrors(t *testing.T) {
	t.Parallel()
	cb := NewCallbackHook("snapshot", nil, nil)
	_, err := NewJobPlan(nil, PhaseSnapshot, cb, Scope{}, nil)
	assert.ErrorContains(t, err, "scope has no dataset")
	_, err = NewJobPlan(nil, PhaseSnapshot, cb, Scope{Datasets: []Dataset{zfsPath("tank//x")}}, nil)
	assert.ErrorContains(t, err, `invalid dataset path "tank//x"`)
	_, err = NewJobPlan(nil, PhaseSnapshot, cb, Scope{Datasets: []Dataset{nil}}, nil)
	assert.ErrorContains(t, err, "dataset is nil")
	var nilPath *DatasetPath
	_, err = NewJobPlan(nil, PhaseSnapshot, cb, Scope{Datasets: []Dataset{nilPath}}, nil)
	assert.ErrorContains(t, err, "dataset is nil")
}

// zfsPath stands for zrepl's *zfs.DatasetPath: a dataset type of another
// package that has ToString.
type zfsPath string

func (p zfsPath) ToString() string { return string(p) }

func TestForeignDatasetTypes(t *testing.T) {
	t.Parallel()
	h := newFilteredHook(t, "db", map[string]bool{"tank/db": true})
	list := List{h}
	got, err := list.CopyFilteredForFilesystem(zfsPath("tank/db"))
	require.NoError(t, err)
	assert.Len(t, got, 1)
	_, err = list.CopyFilteredForFilesystem(zfsPath("tank/db@snap"))
	assert.ErrorContains(t, err, "forbidden character")

	cb := NewCallbackHookForFilesystem("snapshot", zfsPath("tank/db"), func(context.Context) error { return nil })
	pass, err := cb.Filesystems().Filter(mustPath(t, "tank/db"))
	require.NoError(t, err)
	assert.True(t, pass)
	pass, _ = cb.Filesystems().Filter(mustPath(t, "tank"))
	assert.False(t, pass)
}

func TestOneDatasetPlanSetsFSList(t *testing.T) {
	t.Parallel()
	h := newFilteredHook(t, "db", map[string]bool{"<": true})
	list := List{h}
	p, err := NewPlan(&list, PhaseSnapshot, NewCallbackHook("cb", nil, nil), Env{EnvFS: "tank/db"})
	require.NoError(t, err)
	p.Run(context.Background(), false)
	assert.Equal(t, "tank/db", h.env(Pre)[EnvFSList])
}

func mustPath(t testing.TB, s string) *DatasetPath {
	t.Helper()
	p, err := NewDatasetPath(s)
	require.NoError(t, err)
	return p
}

func TestFilterSubtree(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		patterns map[string]bool
		root     string
		want     bool
	}{
		{"excluded_root_with_included_deep_subtree", map[string]bool{"tank<": false, "tank/deep/er<": true}, "tank", true},
		{"other_pool", map[string]bool{"zroot<": true}, "tank", false},
		{"root_itself", map[string]bool{"tank": true}, "tank", true},
		{"exact_child", map[string]bool{"tank/db": true}, "tank", true},
		{"exact_child_excluded", map[string]bool{"tank/db": false}, "tank", false},
		{"root_excluded_exactly_but_children_pass", map[string]bool{"tank<": true, "tank": false}, "tank", true},
		{"ancestor_subtree_passes", map[string]bool{"<": true}, "tank/a/b", true},
		{"ancestor_excluded_nearer", map[string]bool{"<": true, "tank/a<": false}, "tank/a/b", false},
		{"exclusions_at_several_depths", map[string]bool{"<": true, "tank<": false, "tank/a<": true, "tank/a/b<": false}, "tank/a/b", false},
		{"included_below_an_exclusion", map[string]bool{"tank<": false, "tank/a<": true, "tank/a/b<": false, "tank/a/b/c": true}, "tank/a/b", true},
		{"sibling_prefix_is_not_below", map[string]bool{"tank/dbx<": true}, "tank/db", false},
		{"pattern_above_excluded", map[string]bool{"tank/db<": false}, "tank/db/x", false},
		{"no_patterns", map[string]bool{}, "tank", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := DatasetMapFilterFromConfig(c.patterns)
			require.NoError(t, err)
			got, err := f.FilterSubtree(mustPath(t, c.root))
			require.NoError(t, err)
			assert.Equal(t, c.want, got)
			assert.Equal(t, c.want, bruteSubtree(f, c.patterns, mustPath(t, c.root)))
		})
	}
}

// bruteSubtree decides FilterSubtree by asking f about root and every
// dataset below it up to one level deeper than the deepest pattern, with
// the components that appear in the patterns plus one that appears nowhere.
func bruteSubtree(f *DatasetMapFilter, patterns map[string]bool, root *DatasetPath) bool {
	comps := map[string]bool{"fresh-component": true}
	depth := 0
	for p := range patterns {
		name := strings.TrimSuffix(p, subtreeMarker)
		if name == "" {
			continue
		}
		parts := strings.Split(name, "/")
		depth = max(depth, len(parts))
		for _, c := range parts {
			comps[c] = true
		}
	}
	var walk func(p *DatasetPath) bool
	walk = func(p *DatasetPath) bool {
		if pass, _ := f.Filter(p); pass {
			return true
		}
		if p.Length() > depth {
			return false
		}
		for c := range comps {
			child := &DatasetPath{comps: append(append([]string(nil), p.comps...), c)}
			if walk(child) {
				return true
			}
		}
		return false
	}
	return walk(root)
}

// FuzzFilterSubtree compares FilterSubtree with the brute-force walk over
// generated patterns on a small alphabet.
func FuzzFilterSubtree(f *testing.F) {
	f.Add([]byte{0x01, 0x12, 0x80, 0x23}, []byte{1})
	f.Add([]byte{0xff, 0x00, 0x41, 0x7f, 0x13}, []byte{0, 2})
	names := []string{"a", "b", "c"}
	f.Fuzz(func(t *testing.T, spec, root []byte) {
		// Each byte of spec is one pattern: bits 0-1 and 2-3 and 4-5 pick up
		// to three components (3 = stop), bit 6 the "<", bit 7 the value.
		patterns := map[string]bool{}
		for _, b := range spec[:min(len(spec), 8)] {
			var parts []string
			for k := 0; k < 3; k++ {
				c := (b >> (2 * k)) & 3
				if c == 3 {
					break
				}
				parts = append(parts, names[c])
			}
			p := strings.Join(parts, "/")
			if b&0x40 != 0 || p == "" {
				p += subtreeMarker
			}
			patterns[p] = b&0x80 != 0
		}
		var rootParts []string
		for _, b := range root[:min(len(root), 3)] {
			rootParts = append(rootParts, names[int(b)%len(names)])
		}
		if len(rootParts) == 0 {
			rootParts = []string{"a"}
		}
		filter, err := DatasetMapFilterFromConfig(patterns)
		if err != nil {
			t.Fatalf("patterns %v: %v", patterns, err)
		}
		rp := &DatasetPath{comps: rootParts}
		got, err := filter.FilterSubtree(rp)
		if err != nil {
			t.Fatal(err)
		}
		if want := bruteSubtree(filter, patterns, rp); got != want {
			t.Fatalf("patterns %v root %s: FilterSubtree = %v, brute force = %v", patterns, rp, got, want)
		}
	})
}

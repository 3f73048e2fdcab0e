package hooks

import (
	"encoding/json"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// mustDatasetPath parses s or fails the test.
func mustDatasetPath(t testing.TB, s string) *DatasetPath {
	t.Helper()
	p, err := NewDatasetPath(s)
	require.NoError(t, err)
	return p
}

func TestNewDatasetPath(t *testing.T) {
	cases := []struct {
		name    string
		in      string
		length  int
		wantErr string // substring of the error; "" for success
	}{
		{name: "empty_string_is_the_empty_path", in: "", length: 0},
		{name: "pool_has_one_component", in: "tank", length: 1},
		{name: "components_split_on_slash", in: "tank/db/data", length: 3},
		{name: "zfs_punctuation_is_allowed", in: "tank/my-db_1.0:x", length: 2},
		{name: "spaces_are_allowed_inside_names", in: "tank/my data", length: 2},
		{name: "non_ascii_is_allowed", in: "tank/données", length: 2},
		{name: "at_sign_separates_snapshots", in: "tank@snap", wantErr: `forbidden character '@'`},
		{name: "hash_separates_bookmarks", in: "tank#book", wantErr: `forbidden character '#'`},
		{name: "pipe_is_forbidden", in: "tank|x", wantErr: `forbidden character '|'`},
		{name: "tab_is_forbidden", in: "tank\tx", wantErr: `forbidden character '\t'`},
		{name: "less_than_is_forbidden", in: "tank<", wantErr: `forbidden character '<'`},
		{name: "greater_than_is_forbidden", in: "tank>", wantErr: `forbidden character '>'`},
		{name: "star_is_forbidden", in: "tank/*", wantErr: `forbidden character '*'`},
		{name: "nul_is_forbidden", in: "tank\x00x", wantErr: `control character '\x00'`},
		{name: "newline_is_forbidden", in: "tank\nx", wantErr: `control character '\n'`},
		{name: "del_is_forbidden", in: "tank\x7f", wantErr: `control character '\x7f'`},
		{name: "trailing_slash_is_forbidden", in: "tank/", wantErr: `ends in "/"`},
		{name: "slash_alone_is_forbidden", in: "/", wantErr: `ends in "/"`},
		{name: "leading_slash_is_an_empty_component", in: "/tank", wantErr: "empty component"},
		{name: "double_slash_is_an_empty_component", in: "tank//a", wantErr: "empty component"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := NewDatasetPath(c.in)
			if c.wantErr != "" {
				require.Error(t, err)
				assert.Nil(t, p)
				assert.Contains(t, err.Error(), c.wantErr)
				assert.Contains(t, err.Error(), fmt.Sprintf("%q", c.in), "the error names the dataset")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, c.length, p.Length())
			assert.Equal(t, c.length == 0, p.Empty())
			assert.Equal(t, c.in, p.ToString())
			assert.Equal(t, c.in, p.String())
		})
	}
}

func TestDatasetPathEqual(t *testing.T) {
	var nilPath *DatasetPath
	cases := []struct {
		name string
		p, q *DatasetPath
		want bool
	}{
		{"same_name_is_equal", mustDatasetPath(t, "tank/a"), mustDatasetPath(t, "tank/a"), true},
		{"different_last_component", mustDatasetPath(t, "tank/a"), mustDatasetPath(t, "tank/b"), false},
		{"prefix_is_not_equal", mustDatasetPath(t, "tank"), mustDatasetPath(t, "tank/a"), false},
		{"longer_is_not_equal", mustDatasetPath(t, "tank/a"), mustDatasetPath(t, "tank"), false},
		{"empty_paths_are_equal", mustDatasetPath(t, ""), mustDatasetPath(t, ""), true},
		{"nil_equals_empty", nilPath, mustDatasetPath(t, ""), true},
		{"empty_equals_nil", mustDatasetPath(t, ""), nilPath, true},
		{"nil_is_not_a_pool", nilPath, mustDatasetPath(t, "tank"), false},
		{"pool_is_not_nil", mustDatasetPath(t, "tank"), nilPath, false},
		{"components_not_strings_are_compared", mustDatasetPath(t, "tank/ab"), mustDatasetPath(t, "tank/a"), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			assert.Equal(t, c.want, c.p.Equal(c.q))
		})
	}
}

func TestDatasetPathHasPrefix(t *testing.T) {
	var nilPath *DatasetPath
	cases := []struct {
		name      string
		p, prefix *DatasetPath
		want      bool
	}{
		{"parent_is_a_prefix", mustDatasetPath(t, "tank/foo"), mustDatasetPath(t, "tank"), true},
		{"path_is_its_own_prefix", mustDatasetPath(t, "tank/foo"), mustDatasetPath(t, "tank/foo"), true},
		{"partial_component_is_not_a_prefix", mustDatasetPath(t, "tank/foo"), mustDatasetPath(t, "ta"), false},
		{"partial_last_component_is_not_a_prefix", mustDatasetPath(t, "tank/foo"), mustDatasetPath(t, "tank/fo"), false},
		{"child_is_not_a_prefix", mustDatasetPath(t, "tank"), mustDatasetPath(t, "tank/foo"), false},
		{"sibling_is_not_a_prefix", mustDatasetPath(t, "tank/foo"), mustDatasetPath(t, "tank/bar"), false},
		{"other_pool_is_not_a_prefix", mustDatasetPath(t, "tank/foo"), mustDatasetPath(t, "zroot"), false},
		{"empty_is_a_prefix_of_all", mustDatasetPath(t, "tank/foo"), mustDatasetPath(t, ""), true},
		{"empty_is_a_prefix_of_empty", mustDatasetPath(t, ""), mustDatasetPath(t, ""), true},
		{"nil_prefix_is_empty", mustDatasetPath(t, "tank"), nilPath, true},
		{"nil_path_has_only_empty_prefix", nilPath, mustDatasetPath(t, "tank"), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			assert.Equal(t, c.want, c.p.HasPrefix(c.prefix))
		})
	}
}

func TestDatasetPathNilIsEmpty(t *testing.T) {
	var p *DatasetPath
	assert.Equal(t, "", p.ToString())
	assert.Equal(t, "", p.String())
	assert.Equal(t, 0, p.Length())
	assert.True(t, p.Empty())
	assert.Nil(t, p.Copy())
	b, err := json.Marshal(p)
	require.NoError(t, err)
	assert.Equal(t, `null`, string(b), "encoding/json writes null for a nil pointer")
}

func TestDatasetPathCopyIsIndependent(t *testing.T) {
	p := mustDatasetPath(t, "tank/db")
	q := p.Copy()
	require.True(t, p.Equal(q))
	q.comps[0] = "zroot"
	assert.Equal(t, "tank/db", p.ToString())
}

func TestDatasetPathJSON(t *testing.T) {
	p := mustDatasetPath(t, "tank/db")
	b, err := json.Marshal(p)
	require.NoError(t, err)
	assert.Equal(t, `"tank/db"`, string(b))

	var q DatasetPath
	require.NoError(t, json.Unmarshal(b, &q))
	assert.True(t, p.Equal(&q))

	assert.ErrorContains(t, json.Unmarshal([]byte(`"tank@snap"`), &q), "forbidden character")
	assert.Error(t, json.Unmarshal([]byte(`42`), &q))
}

// specFilter is the filter of the examples of SPEC.md §8.
var specFilter = map[string]bool{
	"tank<":        true,
	"tank/foo<":    false,
	"tank/foo/bar": true,
}

func TestDatasetMapFilter(t *testing.T) {
	cases := []struct {
		name     string
		patterns map[string]bool
		path     string
		want     bool
	}{
		// The examples of the spec.
		{"spec_child_of_exact_pattern_is_excluded_by_subtree", specFilter, "tank/foo/bar/loo", false},
		{"spec_sibling_passes_by_pool_subtree", specFilter, "tank/bar", true},
		{"spec_exact_pattern_beats_subtree", specFilter, "tank/foo/bar", true},
		{"spec_other_pool_does_not_match", specFilter, "zroot", false},
		{"spec_deep_descendant_passes", specFilter, "tank/var/log", true},
		{"spec_subtree_root_itself_matches", specFilter, "tank/foo", false},
		{"spec_pool_itself_matches_its_subtree", specFilter, "tank", true},

		{"subtree_alone_matches_everything", map[string]bool{"<": true}, "zroot/a/b", true},
		{"subtree_alone_matches_the_empty_path", map[string]bool{"<": true}, "", true},
		{"subtree_alone_false_excludes_everything", map[string]bool{"<": false, "tank": true}, "zroot", false},
		{"exact_beats_subtree_alone", map[string]bool{"<": false, "tank": true}, "tank", true},
		{"exact_false_beats_subtree_true", map[string]bool{"tank<": true, "tank/a": false}, "tank/a", false},
		{"exact_does_not_match_children", map[string]bool{"tank/a": true}, "tank/a/b", false},
		{"exact_does_not_match_parent", map[string]bool{"tank/a": true}, "tank", false},
		{"longest_subtree_wins", map[string]bool{"<": false, "tank<": true, "tank/a<": false, "tank/a/b<": true}, "tank/a/b/c", true},
		{"longest_subtree_wins_in_the_middle", map[string]bool{"<": false, "tank<": true, "tank/a<": false, "tank/a/b<": true}, "tank/a/x", false},
		{"shorter_subtree_applies_outside_the_longer", map[string]bool{"tank<": true, "tank/a<": false}, "tank/b", true},
		{"subtree_matches_whole_components_only", map[string]bool{"tank/a<": true}, "tank/ab", false},
		{"no_match_is_false", map[string]bool{"tank<": true}, "zroot", false},
		{"empty_filter_passes_nothing", map[string]bool{}, "tank", false},
		{"nil_filter_map_passes_nothing", nil, "tank", false},
		{"empty_path_matches_no_named_subtree", map[string]bool{"tank<": true}, "", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := DatasetMapFilterFromConfig(c.patterns)
			require.NoError(t, err)
			pass, err := f.Filter(mustDatasetPath(t, c.path))
			require.NoError(t, err)
			assert.Equal(t, c.want, pass)
		})
	}
}

func TestDatasetMapFilterFromConfigRejectsBadPatterns(t *testing.T) {
	cases := []struct {
		name    string
		pattern string
		wantErr string
	}{
		{"two_subtree_markers", "tank<<", `more than one "<"`},
		{"two_subtree_markers_apart", "tank</a<", `more than one "<"`},
		{"subtree_marker_not_at_the_end", "tank</a", `"<" is only allowed at the end`},
		{"subtree_marker_at_the_start", "<tank", `"<" is only allowed at the end`},
		{"empty_pattern", "", "is empty"},
		{"leading_space", " tank<", "white space"},
		{"trailing_space", "tank/a ", "white space"},
		{"forbidden_character", "tank@snap", `forbidden character '@'`},
		{"forbidden_character_before_subtree", "tank/*<", `forbidden character '*'`},
		{"trailing_slash_before_subtree", "tank/<", `ends in "/"`},
		{"trailing_slash", "tank/", `ends in "/"`},
		{"leading_slash", "/tank<", "empty component"},
		{"empty_component", "tank//a", "empty component"},
		{"control_character", "tank\x01<", "control character"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := DatasetMapFilterFromConfig(map[string]bool{"zroot<": true, c.pattern: true})
			require.Error(t, err)
			assert.Nil(t, f)
			assert.Contains(t, err.Error(), c.wantErr)
			assert.Contains(t, err.Error(), fmt.Sprintf("pattern %q", c.pattern), "the error names the pattern")
		})
	}
}

func TestDatasetMapFilterFromConfigReportsFirstBadPatternInSortedOrder(t *testing.T) {
	_, err := DatasetMapFilterFromConfig(map[string]bool{"b<<": true, "a<<": true, "c<<": true})
	require.Error(t, err)
	assert.Contains(t, err.Error(), `"a<<"`)
}

func TestDatasetMapFilterNilPathIsAnError(t *testing.T) {
	f, err := DatasetMapFilterFromConfig(map[string]bool{"<": true})
	require.NoError(t, err)
	pass, err := f.Filter(nil)
	assert.Error(t, err)
	assert.False(t, pass)
}

func TestDatasetMapFilterZeroAndNilPassNothing(t *testing.T) {
	var zero DatasetMapFilter
	pass, err := zero.Filter(mustDatasetPath(t, "tank"))
	require.NoError(t, err)
	assert.False(t, pass)

	var nilFilter *DatasetMapFilter
	pass, err = nilFilter.Filter(mustDatasetPath(t, "tank"))
	require.NoError(t, err)
	assert.False(t, pass)
	assert.Equal(t, "{}", nilFilter.String())
}

func TestDatasetMapFilterIsAFilter(t *testing.T) {
	f, err := DatasetMapFilterFromConfig(specFilter)
	require.NoError(t, err)
	var _ Filter = f
}

func TestDatasetMapFilterPatternsAndString(t *testing.T) {
	in := map[string]bool{"tank<": true, "tank/foo<": false, "tank/foo/bar": true, "<": false}
	f, err := DatasetMapFilterFromConfig(in)
	require.NoError(t, err)

	assert.Equal(t, in, f.Patterns())
	assert.Equal(t, `{"<": false, "tank/foo/bar": true, "tank/foo<": false, "tank<": true}`, f.String())

	// Neither the input map nor the returned one is shared with the filter.
	in["tank<"] = false
	f.Patterns()["tank<"] = false
	pass, err := f.Filter(mustDatasetPath(t, "tank/x"))
	require.NoError(t, err)
	assert.True(t, pass)
}

func TestDatasetMapFilterConcurrentUse(t *testing.T) {
	f, err := DatasetMapFilterFromConfig(specFilter)
	require.NoError(t, err)
	want := map[string]bool{
		"tank/foo/bar/loo": false,
		"tank/bar":         true,
		"tank/foo/bar":     true,
		"zroot":            false,
		"tank/var/log":     true,
	}
	paths := map[string]*DatasetPath{}
	for name := range want {
		paths[name] = mustDatasetPath(t, name)
	}

	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 500; i++ {
				for name, p := range paths {
					pass, err := f.Filter(p)
					if err != nil || pass != want[name] {
						errs <- fmt.Errorf("%s: pass=%v err=%v, want %v", name, pass, err, want[name])
						return
					}
				}
				_ = f.String()
				_ = f.Patterns()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func BenchmarkDatasetMapFilter(b *testing.B) {
	f, err := DatasetMapFilterFromConfig(specFilter)
	require.NoError(b, err)
	p := mustDatasetPath(b, "tank/foo/bar/loo")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.Filter(p); err != nil {
			b.Fatal(err)
		}
	}
}

func ExampleDatasetMapFilterFromConfig() {
	f, err := DatasetMapFilterFromConfig(map[string]bool{
		"tank<":        true,  // tank and everything below it ...
		"tank/foo<":    false, // ... except tank/foo and below ...
		"tank/foo/bar": true,  // ... but tank/foo/bar itself
	})
	if err != nil {
		panic(err)
	}
	for _, name := range []string{"tank/bar", "tank/foo", "tank/foo/bar", "tank/foo/bar/loo", "zroot"} {
		p, _ := NewDatasetPath(name)
		pass, _ := f.Filter(p)
		fmt.Printf("%-17s %v\n", name, pass)
	}
	// Output:
	// tank/bar          true
	// tank/foo          false
	// tank/foo/bar      true
	// tank/foo/bar/loo  false
	// zroot             false
}

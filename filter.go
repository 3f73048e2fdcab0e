package hooks

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"unicode"
)

// datasetPathForbidden are the characters that NewDatasetPath rejects anywhere
// in a name: they separate snapshots (@) and bookmarks (#) from their dataset,
// or have a meaning in filter patterns (<) and shells.
const datasetPathForbidden = "@#|\t<>*"

// DatasetPath is the name of a ZFS dataset (a filesystem or volume), split
// into its components: "tank/db/data" has the three components "tank", "db"
// and "data". The empty path, with no components, names no dataset; it is what
// NewDatasetPath("") returns.
//
// A DatasetPath made by NewDatasetPath is never changed by the methods of this
// package, so it may be shared between goroutines. A nil *DatasetPath behaves
// as the empty path in every method.
type DatasetPath struct {
	comps []string
}

// NewDatasetPath parses s as a dataset name whose components are separated by
// "/". The empty string gives the empty path.
//
// It returns an error that names s if s contains one of the characters
// @ # | < > * or a tab, any other control character (NUL included), if it
// ends in "/", or if it has an empty component ("/tank", "tank//db"). The last
// two rules are stricter than zrepl, which accepts such names although ZFS
// never produces them.
func NewDatasetPath(s string) (*DatasetPath, error) {
	comps, err := splitDatasetPath(s)
	if err != nil {
		return nil, fmt.Errorf("invalid dataset path %q: %w", s, err)
	}
	return &DatasetPath{comps: comps}, nil
}

// splitDatasetPath validates s and returns its components. Its errors do not
// repeat s, so that callers can say what s was (a dataset or a pattern).
func splitDatasetPath(s string) ([]string, error) {
	if s == "" {
		return nil, nil
	}
	if i := strings.IndexAny(s, datasetPathForbidden); i >= 0 {
		r := rune(s[i]) // every forbidden character is ASCII
		return nil, fmt.Errorf("contains forbidden character %s", strconv.QuoteRune(r))
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return nil, fmt.Errorf("contains control character %s", strconv.QuoteRune(r))
		}
	}
	if strings.HasSuffix(s, "/") {
		return nil, errors.New(`ends in "/"`)
	}
	comps := strings.Split(s, "/")
	for _, c := range comps {
		if c == "" {
			return nil, errors.New("has an empty component")
		}
	}
	return comps, nil
}

// ToString returns the dataset name: the components joined by "/". It is ""
// for the empty path.
func (p *DatasetPath) ToString() string {
	if p == nil {
		return ""
	}
	return strings.Join(p.comps, "/")
}

// String returns the dataset name, as ToString does.
func (p *DatasetPath) String() string {
	return p.ToString()
}

// Length returns the number of components of p: 0 for the empty path, 1 for a
// pool such as "tank", 2 for "tank/db".
func (p *DatasetPath) Length() int {
	if p == nil {
		return 0
	}
	return len(p.comps)
}

// Empty reports whether p has no components.
func (p *DatasetPath) Empty() bool {
	return p.Length() == 0
}

// Equal reports whether p and q have the same components.
func (p *DatasetPath) Equal(q *DatasetPath) bool {
	if p.Length() != q.Length() {
		return false
	}
	for i := 0; i < p.Length(); i++ {
		if p.comps[i] != q.comps[i] {
			return false
		}
	}
	return true
}

// HasPrefix reports whether the first components of p are those of prefix.
// It compares whole components: "tank/foo" has the prefixes "", "tank" and
// "tank/foo", but not "ta" or "tank/fo". The empty path is a prefix of every
// path, and every path is a prefix of itself.
func (p *DatasetPath) HasPrefix(prefix *DatasetPath) bool {
	n := prefix.Length()
	if n > p.Length() {
		return false
	}
	for i := 0; i < n; i++ {
		if p.comps[i] != prefix.comps[i] {
			return false
		}
	}
	return true
}

// Copy returns a path equal to p that shares no memory with it, or nil if p
// is nil.
func (p *DatasetPath) Copy() *DatasetPath {
	if p == nil {
		return nil
	}
	comps := make([]string, len(p.comps))
	copy(comps, p.comps)
	return &DatasetPath{comps: comps}
}

// MarshalJSON encodes p as a JSON string holding its name.
func (p *DatasetPath) MarshalJSON() ([]byte, error) {
	return json.Marshal(p.ToString())
}

// UnmarshalJSON decodes a JSON string holding a dataset name, with the rules
// of NewDatasetPath.
func (p *DatasetPath) UnmarshalJSON(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return err
	}
	q, err := NewDatasetPath(s)
	if err != nil {
		return err
	}
	*p = *q
	return nil
}

// Filter decides whether a hook applies to a dataset.
type Filter interface {
	// Filter reports whether p passes the filter. It returns an error, and
	// pass false, if p cannot be judged (for example when p is nil).
	Filter(p *DatasetPath) (pass bool, err error)
}

// subtreeMarker is the suffix of a filter pattern that makes it match a
// dataset and all its descendants; on its own it matches every dataset.
const subtreeMarker = "<"

// DatasetMapFilter is the Filter built from the "filesystems" map of a hook's
// configuration, as in zrepl. Each key is a pattern, each value says whether
// the datasets it matches pass:
//
//	filesystems:
//	  "tank<": true          # tank and every dataset below it ...
//	  "tank/foo<": false     # ... except tank/foo and its descendants,
//	  "tank/foo/bar": true   # but tank/foo/bar itself (not its children)
//
// A pattern is a dataset name (see NewDatasetPath) optionally followed by
// "<", which stands for that dataset and its whole subtree; "<" on its own
// matches every dataset.
//
// For a dataset, a pattern without "<" that names exactly that dataset
// decides; otherwise the longest "<" pattern that is a prefix of it (in whole
// components) decides; if no pattern matches, the dataset does not pass. So
// in the example tank/bar and tank/foo/bar pass, tank/foo/bar/loo and zroot
// do not.
//
// A DatasetMapFilter does not change after construction: it is safe for
// concurrent use by any number of goroutines. Its zero value, and a nil
// *DatasetMapFilter, pass nothing.
type DatasetMapFilter struct {
	// exact maps the name of each pattern without "<" to its value.
	exact map[string]bool
	// subtree maps the name before the "<" of each "<" pattern ("" for "<"
	// alone) to its value.
	subtree map[string]bool
	// passing holds the path of every pattern whose value is true, for
	// FilterSubtree.
	passing []*DatasetPath
}

// DatasetMapFilterFromConfig builds a DatasetMapFilter from a map of patterns
// (see DatasetMapFilter) to pass values. The map is not retained.
//
// It returns an error naming the offending pattern if a pattern is empty
// (write "<" to match everything), has leading or trailing white space (an
// accident of quoting that would otherwise match nothing), contains more than
// one "<" (zrepl silently accepts that), has "<" anywhere but at the end, or
// is not a valid dataset name before its "<". When several patterns are
// invalid, the error is about the first in sorted order.
// An empty or nil map gives a filter that passes nothing.
func DatasetMapFilterFromConfig(in map[string]bool) (*DatasetMapFilter, error) {
	f := &DatasetMapFilter{exact: make(map[string]bool), subtree: make(map[string]bool)}
	for _, pattern := range sortedPatterns(in) {
		path, subtree, err := parseFilterPattern(pattern)
		if err != nil {
			return nil, err
		}
		if subtree {
			f.subtree[path.ToString()] = in[pattern]
		} else {
			f.exact[path.ToString()] = in[pattern]
		}
		if in[pattern] {
			f.passing = append(f.passing, path)
		}
	}
	return f, nil
}

// parseFilterPattern validates one pattern of a DatasetMapFilter and returns
// its dataset path and whether it ends in "<". Its error names the pattern.
func parseFilterPattern(pattern string) (path *DatasetPath, subtree bool, err error) {
	fail := func(format string, args ...any) (*DatasetPath, bool, error) {
		return nil, false, fmt.Errorf("pattern %q: %s", pattern, fmt.Sprintf(format, args...))
	}
	switch {
	case pattern == "":
		return fail(`is empty (use %q to match every dataset)`, subtreeMarker)
	case strings.TrimSpace(pattern) != pattern:
		return fail("has leading or trailing white space")
	case strings.Count(pattern, subtreeMarker) > 1:
		return fail("contains more than one %q", subtreeMarker)
	}
	name, subtree := strings.CutSuffix(pattern, subtreeMarker)
	if strings.Contains(name, subtreeMarker) {
		return fail("%q is only allowed at the end", subtreeMarker)
	}
	comps, err := splitDatasetPath(name)
	if err != nil {
		return fail("%v", err)
	}
	return &DatasetPath{comps: comps}, subtree, nil
}

// sortedPatterns returns the keys of m in ascending order.
func sortedPatterns(m map[string]bool) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Filter reports whether p passes f, by the rules described at
// DatasetMapFilter. It returns an error only if p is nil. Its cost grows with
// the depth of p, not with the number of patterns.
func (f *DatasetMapFilter) Filter(p *DatasetPath) (pass bool, err error) {
	if p == nil {
		return false, errors.New("filter: nil dataset path")
	}
	if f == nil {
		return false, nil
	}
	if pass, ok := f.exact[p.ToString()]; ok {
		return pass, nil
	}
	pass, _ = f.longestSubtree(p)
	return pass, nil
}

// longestSubtree returns the value of the longest "<" pattern that matches p
// (p itself or one of its ancestors), and whether there is one.
func (f *DatasetMapFilter) longestSubtree(p *DatasetPath) (pass, found bool) {
	for n := p.Length(); n >= 0; n-- {
		if pass, ok := f.subtree[strings.Join(p.comps[:n], "/")]; ok {
			return pass, true
		}
	}
	return false, false
}

// FilterSubtree reports whether root or any dataset below it passes f,
// decided from the patterns alone: no dataset needs to exist. So for
// {"tank<": false, "tank/deep/er<": true} it is true for tank (tank/deep/er
// passes), and for {"zroot<": true} false for tank. It returns an error only
// if root is nil.
//
// A dataset below root passes if a pattern with value true names it or a
// dataset between it and root, or if the longest "<" pattern that matches
// root is true (a child of root that no other pattern names then passes).
func (f *DatasetMapFilter) FilterSubtree(root *DatasetPath) (pass bool, err error) {
	if pass, err := f.Filter(root); pass || err != nil {
		return pass, err
	}
	if f == nil {
		return false, nil
	}
	if pass, _ := f.longestSubtree(root); pass {
		return true, nil
	}
	for _, p := range f.passing {
		if p.Length() > root.Length() && p.HasPrefix(root) {
			return true, nil
		}
	}
	return false, nil
}

// Patterns returns a copy of the patterns of f with their values, as they
// were given to DatasetMapFilterFromConfig.
func (f *DatasetMapFilter) Patterns() map[string]bool {
	m := map[string]bool{}
	if f == nil {
		return m
	}
	for name, pass := range f.exact {
		m[name] = pass
	}
	for name, pass := range f.subtree {
		m[name+subtreeMarker] = pass
	}
	return m
}

// String lists the patterns of f in sorted order, each quoted as a Go string:
// {"tank/foo<": false, "tank<": true}. For the patterns seen in practice this
// is also YAML and JSON.
func (f *DatasetMapFilter) String() string {
	return formatPatterns(f.Patterns())
}

// formatPatterns formats a filesystems map as DatasetMapFilter.String does.
func formatPatterns(m map[string]bool) string {
	var b strings.Builder
	b.WriteByte('{')
	for i, pattern := range sortedPatterns(m) {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.Quote(pattern))
		b.WriteString(": ")
		b.WriteString(strconv.FormatBool(m[pattern]))
	}
	b.WriteByte('}')
	return b.String()
}

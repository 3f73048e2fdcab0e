package hooks

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Scope is what one snapshot covers: several datasets, snapshotted together
// (zfs snapshot tank/db@s tank/log@s), and with Recursive each of them with
// every dataset below it (zfs snapshot -r tank@s).
//
// A plan for a Scope (NewJobPlan) runs every hook whose filter passes at
// least one of its datasets once, around one callback, instead of once per
// dataset: one lock around one atomic snapshot of all of them.
type Scope struct {
	// Datasets are the datasets in the order given; duplicates count once.
	// They may be of any Dataset type.
	Datasets []Dataset
	// Recursive makes each dataset stand for itself and its whole subtree:
	// a hook matches when its filter passes the dataset or any dataset
	// below it. A DatasetMapFilter decides that exactly from its patterns;
	// other filters opt in by implementing SubtreeFilter, and are otherwise
	// asked about the dataset itself only.
	Recursive bool
}

// SubtreeFilter is a Filter that can also tell whether any dataset in a
// subtree passes, without a listing of the datasets. DatasetMapFilter
// implements it.
type SubtreeFilter interface {
	Filter
	// FilterSubtree reports whether root or any dataset below it passes.
	FilterSubtree(root *DatasetPath) (pass bool, err error)
}

// scopedHook is a hook of a scope with the datasets it matched.
type scopedHook struct {
	hook     Hook
	datasets []string
}

// paths validates the datasets of s and returns them without duplicates.
func (s Scope) paths() ([]*DatasetPath, error) {
	if len(s.Datasets) == 0 {
		return nil, errors.New("scope has no dataset")
	}
	seen := make(map[string]bool, len(s.Datasets))
	out := make([]*DatasetPath, 0, len(s.Datasets))
	for _, d := range s.Datasets {
		p, err := datasetPath(d)
		if err != nil {
			return nil, fmt.Errorf("scope: %w", err)
		}
		if p.Empty() {
			return nil, errors.New("scope: dataset name is empty")
		}
		if name := p.ToString(); !seen[name] {
			seen[name] = true
			out = append(out, p)
		}
	}
	return out, nil
}

// match returns the hooks of l that match at least one dataset of s, in
// order, each with the datasets it matched in the order of s, and the
// datasets of s.
func (l List) match(s Scope) ([]scopedHook, []string, error) {
	paths, err := s.paths()
	if err != nil {
		return nil, nil, err
	}
	names := make([]string, len(paths))
	for i, p := range paths {
		names[i] = p.ToString()
	}
	var out []scopedHook
	for i, h := range l {
		var matched []string
		for j, p := range paths {
			pass, err := filterHook(h, p, s.Recursive)
			if err != nil {
				return nil, nil, fmt.Errorf("filter hook #%d (%s) for filesystem %q: %w", i+1, hookName(h), names[j], err)
			}
			if pass {
				matched = append(matched, names[j])
			}
		}
		if matched != nil {
			out = append(out, scopedHook{hook: h, datasets: matched})
		}
	}
	return out, names, nil
}

// CopyFilteredForScope returns the hooks of l whose filter passes at least
// one dataset of s (for a recursive scope: a dataset or any dataset below
// it), in order. The hooks are shared, not copied. It fails if s has no
// dataset or an invalid one, or if a filter fails, naming the hook.
func (l List) CopyFilteredForScope(s Scope) (List, error) {
	matched, _, err := l.match(s)
	if err != nil {
		return nil, err
	}
	out := make(List, len(matched))
	for i, m := range matched {
		out[i] = m.hook
	}
	return out, nil
}

// NewJobPlan returns a plan for one snapshot of every dataset of scope: the
// hooks of *hooks (unfiltered, in configuration order) whose filter passes at
// least one dataset of the scope run their Pre and Post edge once each,
// around cb. A Scope of one dataset gives the plan that NewPlan gives for the
// hooks CopyFilteredForFilesystem selects.
//
// Each hook's env is extra plus EnvFS, the first dataset it matched, and
// EnvFSList, every dataset it matched, one per line (for a recursive scope,
// the roots whose subtree it matched); the callback's env has EnvFS, the
// first dataset of the scope, and EnvFSList, all of them. These win over the
// same keys in extra. Each step's Datasets says the same. EnvFSList is left
// out where it would be longer than MaxFSListEnv; in a plan of more than one
// dataset, every hook and the callback get EnvFSListFile, a file with the
// same list, however long (see there). The plan runs for 100,000 datasets
// as for two.
//
// The database hooks learn the whole scope (every dataset, and whether it is
// recursive) from the plan, to check that the snapshot holds every file of
// their server (see CheckCoverage).
//
// It fails if cb is nil or a hook nil, if the scope has no dataset or an
// invalid one, if a filter fails, or if the env is too large (see NewPlan).
func NewJobPlan(hooks *List, phase Phase, cb *CallbackHook, scope Scope, extra Env) (*Plan, error) {
	var list List
	if hooks != nil {
		list = *hooks
	}
	for i, h := range list {
		if isNil(h) {
			return nil, fmt.Errorf("new plan: hook #%d is nil", i+1)
		}
	}
	matched, all, err := list.match(scope)
	if err != nil {
		return nil, fmt.Errorf("new plan: %w", err)
	}
	withDatasets := func(ds []string) Env {
		env := copyEnv(extra)
		env[EnvFS] = ds[0]
		delete(env, EnvFSListFile) // the plan's own, or none
		if list, ok := fsListEnv(ds); ok {
			env[EnvFSList] = list
		} else {
			delete(env, EnvFSList)
		}
		return env
	}
	l := make(List, len(matched))
	envs := make([]Env, len(matched))
	datasets := make([][]string, len(matched))
	for i, m := range matched {
		l[i], envs[i], datasets[i] = m.hook, withDatasets(m.datasets), m.datasets
	}
	p, err := newPlan(l, phase, cb, envs, datasets, withDatasets(all), all)
	if err != nil {
		return nil, err
	}
	p.scope = &Scope{Datasets: slices.Clone(scope.Datasets), Recursive: scope.Recursive}
	p.listFiles = len(all) > 1
	return p, nil
}

// maxListedDatasets is how many datasets a log record or a line of the text
// report names before it counts the rest: a step of 100,000 datasets must
// not make a line of megabytes. The JSON and logfmt reports list them all.
const maxListedDatasets = 10

// datasetsText joins datasets with sep, or, if there are more than
// maxListedDatasets, the first of them and "and N more".
func datasetsText(datasets []string, sep string) string {
	if len(datasets) <= maxListedDatasets {
		return strings.Join(datasets, sep)
	}
	return strings.Join(datasets[:maxListedDatasets], sep) + fmt.Sprintf(" and %d more", len(datasets)-maxListedDatasets)
}

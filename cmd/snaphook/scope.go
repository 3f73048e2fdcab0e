package main

import (
	"errors"
	"flag"
	"fmt"

	"github.com/snaphooks/hooks"
)

// scopeFlags are the flags that say what a snapshot covers: --fs, which may
// be repeated, and -r/--recursive.
type scopeFlags struct {
	fs        stringList
	recursive bool
}

// register adds the flags to fset.
func (f *scopeFlags) register(fset *flag.FlagSet) {
	fset.Var(&f.fs, "fs", "the `DATASET` to snapshot, e.g. tank/db; may be repeated for one snapshot of several datasets")
	usage := "each --fs stands for itself and every dataset below it (zfs snapshot -r)"
	fset.BoolVar(&f.recursive, "r", false, usage)
	fset.BoolVar(&f.recursive, "recursive", false, usage)
}

// scope returns the scope the flags describe. It fails if no --fs was given
// or one is not a valid dataset name; a dataset given twice counts once.
func (f *scopeFlags) scope() (hooks.Scope, error) {
	if len(f.fs) == 0 {
		return hooks.Scope{}, errors.New("missing --fs DATASET")
	}
	var sc hooks.Scope
	seen := map[string]bool{}
	for _, name := range f.fs {
		p, err := hooks.NewDatasetPath(name)
		if err != nil {
			return hooks.Scope{}, fmt.Errorf("--fs: %w", err)
		}
		if p.Empty() {
			return hooks.Scope{}, errors.New("--fs: empty dataset name")
		}
		if !seen[p.ToString()] {
			seen[p.ToString()] = true
			sc.Datasets = append(sc.Datasets, p)
		}
	}
	sc.Recursive = f.recursive
	return sc, nil
}

// scopeNames returns the names of the datasets of sc.
func scopeNames(sc hooks.Scope) []string {
	names := make([]string, len(sc.Datasets))
	for i, d := range sc.Datasets {
		names[i] = d.ToString()
	}
	return names
}

// snapshotTarget names a snapshot of datasets in messages: "tank/db@s",
// "tank/db@s, tank/log@s", or "tank@s (recursive)".
func snapshotTarget(datasets []string, recursive bool, snapshot string) string {
	names := make([]string, len(datasets))
	for i, d := range datasets {
		names[i] = d + "@" + snapshot
	}
	return datasetList(names, recursive)
}

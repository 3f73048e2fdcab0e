package main

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/snaphooks/hooks"
)

// checkCoverage is the part of "snaphook check" that needs the servers: for
// each database hook of list that a run with scope would run, it connects
// to the hook's server (as a dry run does), lists where the server keeps its
// files and on which datasets, and says which datasets the snapshot of
// scope would miss. The listing goes to stdout; each problem, and a server
// that cannot be asked, is a warning on stderr. It never changes check's
// exit status: the file is valid either way.
func checkCoverage(ctx context.Context, s streams, list hooks.List, scope hooks.Scope) {
	target := datasetList(scopeNames(scope), scope.Recursive)
	for i, h := range list {
		filer, ok := h.(hooks.ServerFiler)
		if !ok {
			continue
		}
		if hs, err := (hooks.List{h}).CopyFilteredForScope(scope); err != nil || len(hs) == 0 {
			continue
		}
		name := sanitize(h.String())
		fmt.Fprintf(s.Stdout, "\nhook #%d %s: where the server keeps its files\n", i+1, name)
		files, err := filer.ServerFiles(ctx)
		if err != nil {
			fmt.Fprintf(s.Stdout, "  not known: %s\n", sanitize(err.Error()))
			fmt.Fprintf(s.Stderr, "warning: hook #%d (%s): %s\n", i+1, name, sanitize(err.Error()))
			continue
		}
		printServerFiles(s, files)
		problems, err := hooks.CheckCoverage(files, scope)
		if err != nil { // the scope was validated already
			fmt.Fprintf(s.Stderr, "warning: hook #%d (%s): %s\n", i+1, name, sanitize(err.Error()))
			continue
		}
		fmt.Fprintf(s.Stdout, "  a snapshot of %s %s\n", target, coverageVerdict(files, problems))
		for _, p := range problems {
			fmt.Fprintf(s.Stderr, "warning: hook #%d (%s): %s\n", i+1, name, sanitize(p.Message))
		}
	}
}

// printServerFiles lists files: role, path (and where its links lead),
// dataset, mount.
func printServerFiles(s streams, files []hooks.ServerFile) {
	tw := tabwriter.NewWriter(s.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  ROLE\tPATH\tDATASET\tMOUNT")
	for _, f := range files {
		path := f.Path
		if f.Resolved != "" && f.Resolved != f.Path {
			path += " -> " + f.Resolved
		}
		dataset, mount := f.Dataset, f.Mount+" ("+f.FSType+")"
		switch {
		case f.NotHere != "":
			dataset, mount = "?", "not on this host: "+f.NotHere
		case dataset == "":
			dataset = "-"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", sanitize(f.Role), sanitize(path), sanitize(dataset), sanitize(mount))
	}
	tw.Flush()
}

// coverageVerdict completes "a snapshot of <target> ...".
func coverageVerdict(files []hooks.ServerFile, problems []hooks.CoverageProblem) string {
	var missed []string
	unknown := false
	for _, p := range problems {
		if p.Unknown() {
			unknown = true
		} else if !contains(missed, p.Dataset) {
			missed = append(missed, p.Dataset)
		}
	}
	switch {
	case len(missed) > 0:
		return "misses " + strings.Join(missed, ", ")
	case unknown:
		return "may miss some of them: coverage unknown"
	}
	for _, f := range files {
		if f.Dataset == "" {
			return "may miss them: they are on " + f.Mount + " (" + f.FSType + "), which is neither a ZFS dataset nor a btrfs subvolume mounted on its own"
		}
	}
	return "holds them all"
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// hadWarning reports whether a step's report warns about something although
// the step may have succeeded (the coverage check of a database hook): the
// text report shows such a report as it shows a failed one.
func hadWarning(r hooks.HookReport) bool {
	w, ok := r.(interface{ HadWarning() bool })
	return ok && w.HadWarning()
}

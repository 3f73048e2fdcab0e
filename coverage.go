package hooks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
)

// Coverage: a snapshot of a live database is only of use if it holds every
// file of the server (its data, its redo log or WAL, its tablespaces), taken
// at one moment. The database hooks ask their server where it keeps its
// files, find the dataset that holds each of them in the mount table, and
// compare those datasets with the ones the snapshot takes.

// The values of HookConfig.Coverage, the YAML key "coverage" of a database
// hook.
const (
	// CoverageWarn, the default, logs at WARN what the snapshot misses (or
	// that coverage is unknown, and why) and adds it to the Pre edge's
	// report; the hook goes on.
	CoverageWarn = "warn"
	// CoverageStrict fails the Pre edge before it takes anything if the
	// snapshot misses a file of the server, or if that cannot be verified.
	CoverageStrict = "strict"
	// CoverageOff skips the check.
	CoverageOff = "off"
)

// ErrCoverageUnknown is wrapped by the errors of ServerFiles when the hook
// could not learn where its server keeps its files (PostgreSQL: the role may
// not read data_directory).
var ErrCoverageUnknown = errors.New("coverage unknown")

// ServerFile is one place where a database server keeps files that a
// snapshot must hold, and where that place is on this host.
type ServerFile struct {
	// Role says what the server keeps there: "the data directory", "the redo
	// log", "the WAL", `the tablespace "ts1"`, ...
	Role string
	// Path is the directory as the server reports it (for MySQL's binary log,
	// the directory of log_bin_basename; for PostgreSQL's WAL, pg_wal in the
	// data directory).
	Path string
	// Resolved is Path with its symbolic links followed on this host (the WAL
	// directory that initdb --waldir links to); "" when Path is not visible.
	Resolved string
	// Mount is the mount point of the filesystem that holds Resolved, and
	// FSType its type ("zfs", "btrfs", "ext4", ...); "" when not visible.
	Mount, FSType string
	// Dataset is the dataset that holds the files: the ZFS dataset mounted at
	// Mount, or the btrfs subvolume mounted there on its own (-o
	// subvol=tank/db stands for "tank/db"). "" on any other filesystem, and
	// when the path is not visible here.
	Dataset string
	// NotHere says why the path could not be located on this host: the
	// server is reached over the network from another host, or the path does
	// not exist here (a container, another mount namespace). "" when Mount
	// is known.
	NotHere string
}

// ServerFiler is implemented by the database hooks (PgChkptHook,
// MySQLLockTables, MariaDBBackupStage): ServerFiles connects to the hook's
// server, as a dry run does, and returns where it keeps its files, each
// located on this host's mount table, in the order: data directory first,
// then the others, one entry per distinct directory. The hook's timeout
// bounds it. It fails if it cannot connect or query the server, and with
// an error wrapping ErrCoverageUnknown if the server will not tell (see
// the hook's documentation for the privilege it needs). The error never
// contains the DSN's password.
type ServerFiler interface {
	ServerFiles(ctx context.Context) ([]ServerFile, error)
}

// CoverageProblem is one reason why a snapshot may not hold every file of a
// database server.
type CoverageProblem struct {
	// Files are the server's files the problem is about.
	Files []ServerFile
	// Dataset is the dataset that holds Files and that the snapshot does not
	// include; "" when the problem is that coverage is unknown.
	Dataset string
	// Message says it in one sentence, for instance "the redo log
	// (/srv/log/redo) is on tank/log, which this snapshot does not include".
	Message string
}

// Unknown reports whether the problem is that coverage could not be
// verified, rather than a dataset that the snapshot does not include.
func (p CoverageProblem) Unknown() bool { return p.Dataset == "" }

// String returns Message.
func (p CoverageProblem) String() string { return p.Message }

// CheckCoverage compares where a server keeps its files (as ServerFiles
// returns them) with the datasets of scope: a file is covered if its
// dataset is one of them or, with scope.Recursive, lies below one. It
// returns, in the order of files:
//
//   - one problem per file whose dataset the snapshot does not include;
//   - at most one unknown problem for the files that are not visible on
//     this host, saying why;
//   - at most one unknown problem for files on filesystems that are neither
//     ZFS nor btrfs subvolumes mounted on their own, when they are on more
//     than one such filesystem, or also on a dataset: the files span several
//     filesystems, which it names.
//
// Files on one single such filesystem, and nothing else, are no problem of
// CheckCoverage: the snapshot is not a ZFS or btrfs snapshot of them, and
// nothing more can be said (see coverageUnverified). No problems means every
// file is covered. It fails if scope has no dataset or an invalid one.
func CheckCoverage(files []ServerFile, scope Scope) ([]CoverageProblem, error) {
	paths, err := scope.paths()
	if err != nil {
		return nil, err
	}
	var out []CoverageProblem
	var notHere, noDataset []ServerFile
	for _, f := range files {
		switch {
		case f.NotHere != "":
			notHere = append(notHere, f)
		case f.Dataset == "":
			noDataset = append(noDataset, f)
		case !datasetCovered(f.Dataset, paths, scope.Recursive):
			out = append(out, CoverageProblem{
				Files: []ServerFile{f}, Dataset: f.Dataset,
				Message: fmt.Sprintf("%s (%s) is on %s, which this snapshot does not include", f.Role, f.Path, f.Dataset),
			})
		}
	}
	if len(notHere) > 0 {
		out = append(out, CoverageProblem{Files: notHere, Message: "coverage unknown: " + notHereReasons(notHere)})
	}
	mounts := distinctMounts(noDataset)
	if len(mounts) > 1 || len(mounts) == 1 && len(noDataset)+len(notHere) < len(files) {
		out = append(out, CoverageProblem{Files: noDataset, Message: fmt.Sprintf(
			"coverage unknown: %s not on a ZFS dataset or a btrfs subvolume mounted on its own, and the server's files span several filesystems (%s): a snapshot of one does not hold the others",
			fileList(noDataset), strings.Join(allMounts(files), ", "))})
	}
	return out, nil
}

// coverageUnverified says why coverage cannot be verified for files of which
// CheckCoverage found no problem, or "" if it can: files on one filesystem
// that is neither ZFS nor a btrfs subvolume mounted on its own.
func coverageUnverified(files []ServerFile) string {
	var noDataset []ServerFile
	for _, f := range files {
		if f.NotHere == "" && f.Dataset == "" {
			noDataset = append(noDataset, f)
		}
	}
	if len(noDataset) == 0 {
		return ""
	}
	return fmt.Sprintf("coverage unknown: %s on %s, which is neither a ZFS dataset nor a btrfs subvolume mounted on its own",
		fileList(noDataset), strings.Join(distinctMounts(noDataset), ", "))
}

// datasetCovered reports whether dataset is one of paths or, with
// recursive, lies below one.
func datasetCovered(dataset string, paths []*DatasetPath, recursive bool) bool {
	for _, p := range paths {
		root := p.ToString()
		if dataset == root || recursive && strings.HasPrefix(dataset, root+"/") {
			return true
		}
	}
	return false
}

// notHereReasons lists the files that are not visible here with their
// reasons, each reason once: a server on another host is said once for all
// its files.
func notHereReasons(files []ServerFile) string {
	var order []string
	byReason := map[string][]ServerFile{}
	for _, f := range files {
		if _, ok := byReason[f.NotHere]; !ok {
			order = append(order, f.NotHere)
		}
		byReason[f.NotHere] = append(byReason[f.NotHere], f)
	}
	parts := make([]string, len(order))
	for i, why := range order {
		parts[i] = fileList(byReason[why]) + ": " + why
	}
	return strings.Join(parts, "; ")
}

// fileList names files as "the data directory (/a)" or "the data directory
// (/a), the redo log (/b)".
func fileList(files []ServerFile) string {
	parts := make([]string, len(files))
	for i, f := range files {
		parts[i] = f.Role + " (" + f.Path + ")"
	}
	return strings.Join(parts, ", ")
}

// distinctMounts returns the mounts of files, each once, as "/srv (ext4)".
func distinctMounts(files []ServerFile) []string {
	var out []string
	for _, f := range files {
		if f.Mount == "" {
			continue
		}
		m := f.Mount + " (" + f.FSType + ")"
		if !slices.Contains(out, m) {
			out = append(out, m)
		}
	}
	return out
}

// allMounts is distinctMounts of all files, with the dataset for those that
// have one: "/tank/db (tank/db)".
func allMounts(files []ServerFile) []string {
	var out []string
	for _, f := range files {
		if f.Mount == "" {
			continue
		}
		m := f.Mount + " (" + f.FSType + ")"
		if f.Dataset != "" {
			m = f.Mount + " (" + f.Dataset + ")"
		}
		if !slices.Contains(out, m) {
			out = append(out, m)
		}
	}
	return out
}

// coverageScopeKey is the context key of the Scope of the plan a hook runs
// in; see withCoverageScope.
type coverageScopeKey struct{}

// withCoverageScope returns ctx carrying the scope of a job plan (NewJobPlan),
// which Plan.Run hands to its hooks: the datasets of the whole snapshot,
// and whether it is recursive, which a hook's own env (the datasets it
// matched) does not say.
func withCoverageScope(ctx context.Context, s Scope) context.Context {
	return context.WithValue(ctx, coverageScopeKey{}, s)
}

// coverageScope returns the scope of the snapshot a hook's Pre edge runs
// for: the plan's, if ctx carries it, and otherwise the datasets of the
// hook's env (EnvFSList, or EnvFS), not recursive.
func coverageScope(ctx context.Context, extra Env) Scope {
	if s, ok := ctx.Value(coverageScopeKey{}).(Scope); ok {
		return s
	}
	list := extra[EnvFSList]
	if list == "" {
		list = extra[EnvFS]
	}
	var s Scope
	for _, name := range strings.Split(list, "\n") {
		if name != "" {
			s.Datasets = append(s.Datasets, datasetName(name))
		}
	}
	return s
}

// datasetName is a Dataset given by its name.
type datasetName string

// ToString returns the name.
func (d datasetName) ToString() string { return string(d) }

// coverageCheck is the check a database hook's Pre edge runs before it
// takes anything, in the hook's coverage mode. files asks the server on the
// hook's session. It returns the warnings for the report (mode warn) or an
// error: in mode strict a problem or an unknown coverage; in every mode
// the error of files when it could not reach or query the server.
func coverageCheck(ctx context.Context, log *slog.Logger, mode string, extra Env, files func(context.Context) ([]ServerFile, error)) (warnings []string, err error) {
	if mode == CoverageOff {
		return nil, nil
	}
	fail := func(msg string) ([]string, error) {
		if mode == CoverageStrict {
			return nil, fmt.Errorf("coverage (strict): %s", msg)
		}
		log.WarnContext(ctx, msg)
		return []string{msg}, nil
	}
	found, err := files(ctx)
	if err != nil {
		if ctx.Err() != nil || !errors.Is(err, ErrCoverageUnknown) {
			// Not reaching the server is the hook's failure, as it would
			// be without the check: said the same way.
			return nil, err
		}
		return fail(err.Error())
	}
	problems, err := CheckCoverage(found, coverageScope(ctx, extra))
	if err != nil {
		return fail("coverage unknown: " + err.Error())
	}
	if len(problems) == 0 {
		if why := coverageUnverified(found); why != "" {
			if mode == CoverageStrict {
				return nil, fmt.Errorf("coverage (strict): %s", why)
			}
			log.InfoContext(ctx, why)
			return nil, nil
		}
		log.DebugContext(ctx, "coverage verified: the snapshot includes every file of the server", slog.String("mounts", strings.Join(allMounts(found), ", ")))
		return nil, nil
	}
	msgs := make([]string, len(problems))
	for i, p := range problems {
		msgs[i] = p.Message
	}
	if mode == CoverageStrict {
		return nil, fmt.Errorf("coverage (strict): %s", strings.Join(msgs, "; "))
	}
	for _, m := range msgs {
		log.WarnContext(ctx, m)
	}
	return msgs, nil
}

// warningsText is the tail of a report's String for its warnings:
// "; warning: <w>" for each.
func warningsText(warnings []string) string {
	var b strings.Builder
	for _, w := range warnings {
		b.WriteString("; warning: ")
		b.WriteString(w)
	}
	return b.String()
}

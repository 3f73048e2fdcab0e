package hooks

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// MaxFSListEnv is the longest "ZREPL_FS_LIST=..." environment string a job
// plan sets, in bytes: 64 KiB, half of Linux's limit on one string of the
// environment (MAX_ARG_STRLEN, 128 KiB), so that the list leaves room for
// the rest of the environment within the limit on all of it. A longer list
// is left out; EnvFSListFile always has it (see EnvFSList).
const MaxFSListEnv = 64 << 10

// fsListEnv returns datasets joined by newlines, the value of EnvFSList,
// and whether "ZREPL_FS_LIST=<value>" fits in MaxFSListEnv. It stops
// counting at the bound, so a huge list costs no more than a short one.
func fsListEnv(datasets []string) (string, bool) {
	n := len(EnvFSList) // and "=" and a newline per name, less the one after the last
	for _, d := range datasets {
		n += len(d) + 1
		if n > MaxFSListEnv {
			return "", false
		}
	}
	return strings.Join(datasets, "\n"), true
}

// writeFSLists writes the EnvFSListFile files of a job plan of more than one
// dataset into a new private directory and sets EnvFSListFile in the env of
// every hook and of the callback: the callback's file lists all the plan's
// datasets, and a hook that matched all of them shares it; a hook that
// matched fewer gets a file of its own. remove removes the directory. For
// other plans it does nothing.
func (p *Plan) writeFSLists() (remove func(), err error) {
	if !p.listFiles {
		return func() {}, nil
	}
	// MkdirTemp makes the directory with mode 0700, and the files are made
	// with 0600: a umask can take permissions away, never add them.
	dir, err := os.MkdirTemp("", "snaphooks-fs-list-")
	if err != nil {
		return nil, fmt.Errorf("write the dataset list (%s): %w", EnvFSListFile, err)
	}
	remove = func() { _ = os.RemoveAll(dir) }
	all := p.callback().Datasets
	allPath := filepath.Join(dir, "datasets")
	if err := writeLines(allPath, all); err != nil {
		remove()
		return nil, err
	}
	p.cbEnv[EnvFSListFile] = allPath
	for i := range p.hooks() {
		ds, path := p.pre(i).Datasets, allPath
		if len(ds) != len(all) { // a hook's datasets are some of the plan's, in order
			path = filepath.Join(dir, "datasets-hook-"+strconv.Itoa(i+1))
			if err := writeLines(path, ds); err != nil {
				remove()
				return nil, err
			}
		}
		p.env(i)[EnvFSListFile] = path
	}
	return remove, nil
}

// writeLines writes lines into a new file at path, mode 0600, each line
// followed by a newline.
func writeLines(path string, lines []string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("write the dataset list (%s): %w", EnvFSListFile, err)
	}
	w := bufio.NewWriterSize(f, 64<<10)
	for _, l := range lines {
		w.WriteString(l)
		w.WriteByte('\n')
	}
	err = w.Flush()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write the dataset list (%s): %w", EnvFSListFile, err)
	}
	return nil
}

//go:build linux

package hooks

// Which mounts a freeze may take: each must be a mount point (as
// /proc/self/mountinfo lists it) of a filesystem type that can be frozen, and
// none may share its filesystem with "/" or with what snaphook itself needs
// while the filesystems are frozen.

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// freezableTypes are the filesystem types whose kernel driver implements
// FIFREEZE. Others (tmpfs, zfs, nfs, overlay, fuse, ...) answer EOPNOTSUPP or
// would freeze nothing useful; ZFS needs no freeze: one "zfs snapshot" of
// several datasets is atomic.
var freezableTypes = map[string]bool{
	"ext2": true, "ext3": true, "ext4": true, "xfs": true, "btrfs": true, "f2fs": true,
	"jfs": true, "reiserfs": true, "nilfs2": true, "gfs2": true, "ocfs2": true, "bcachefs": true,
}

// keptPath is a path that must stay writable while filesystems are frozen,
// and what it is (for the error).
type keptPath struct {
	path, what string
}

// freezeKeptPaths lists what snaphook (or the program that embeds the
// library) needs while filesystems are frozen: its executable, working
// directory, temporary directory and runtime directory, and the programs of
// the thaw watchdog; extra adds the caller's own (a log file, hook scripts).
// A path that does not exist (yet) is kept by the mount of its nearest
// existing parent.
func freezeKeptPaths(extra []keptPath) []keptPath {
	kept := []keptPath{{"/", "the root filesystem"}}
	if exe, err := os.Executable(); err == nil {
		kept = append(kept, keptPath{exe, "the executable of this process"})
	}
	if wd, err := os.Getwd(); err == nil {
		kept = append(kept, keptPath{wd, "the working directory of this process"})
	}
	kept = append(kept, keptPath{os.TempDir(), "the temporary directory"})
	for _, dir := range runtimeDirs() {
		kept = append(kept, keptPath{dir, "snaphook's runtime directory"})
	}
	for _, tool := range watchdogTools() {
		if p, err := lookPathAbs(tool); err == nil {
			kept = append(kept, keptPath{p, "the thaw watchdog's program " + tool})
		}
	}
	return append(kept, extra...)
}

// runtimeDirs are the directories where snaphook keeps its holders' sockets
// (see runDir in cmd/snaphook): $SNAPHOOK_RUN_DIR, /run/snaphook for root,
// $XDG_RUNTIME_DIR for others.
func runtimeDirs() []string {
	var dirs []string
	if d := os.Getenv("SNAPHOOK_RUN_DIR"); d != "" {
		dirs = append(dirs, d)
	}
	if os.Geteuid() == 0 {
		dirs = append(dirs, "/run/snaphook")
	} else if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		dirs = append(dirs, d)
	}
	return dirs
}

// resolveExisting returns p with symlinks resolved, or, if p does not exist,
// the resolved nearest existing parent.
func resolveExisting(p string) (string, error) {
	p = filepath.Clean(p)
	for {
		r, err := filepath.EvalSymlinks(p)
		if err == nil {
			return r, nil
		}
		if !errors.Is(err, os.ErrNotExist) || p == "/" {
			return "", err
		}
		p = filepath.Dir(p)
	}
}

// checkFreezable checks, without freezing anything, that each of mountpoints
// is an absolute path that is a mount point of a filesystem type that can be
// frozen, that no two share a filesystem, and that none shares its
// filesystem with one of kept. It returns the mount points with symlinks
// resolved, in the given order.
func checkFreezable(mountpoints []string, kept []keptPath) ([]string, error) {
	if len(mountpoints) == 0 {
		return nil, errors.New("no mount points to freeze")
	}
	table, err := readMountTable()
	if err != nil {
		return nil, err
	}
	keptDev := make(map[string]keptPath)
	for _, k := range kept {
		r, err := resolveExisting(k.path)
		if err != nil {
			continue // not reachable, so not needed from here
		}
		if m, ok := table.find(r); ok {
			if _, dup := keptDev[m.dev]; !dup {
				keptDev[m.dev] = keptPath{r, k.what}
			}
		}
	}
	resolved := make([]string, 0, len(mountpoints))
	seen := make(map[string]string)
	for _, mp := range mountpoints {
		if !filepath.IsAbs(mp) {
			return nil, fmt.Errorf("fsfreeze %q: not an absolute path", mp)
		}
		r, err := filepath.EvalSymlinks(mp)
		if err != nil {
			return nil, fmt.Errorf("fsfreeze %s: %w", mp, err)
		}
		m, ok := table.find(r)
		if !ok || m.point != r {
			return nil, fmt.Errorf("fsfreeze %s: not a mount point (it is inside %s)", mp, m.point)
		}
		if !freezableTypes[m.fsType] {
			return nil, fmt.Errorf("fsfreeze %s: a %s filesystem cannot be frozen", mp, m.fsType)
		}
		if k, ok := keptDev[m.dev]; ok {
			return nil, fmt.Errorf("fsfreeze %s: refused: its filesystem holds %s (%s), which must stay writable while frozen", mp, k.what, k.path)
		}
		if other, ok := seen[m.dev]; ok {
			return nil, fmt.Errorf("fsfreeze %s: the same filesystem as %s (%s): freeze it once", mp, other, m.source)
		}
		seen[m.dev] = mp
		resolved = append(resolved, r)
	}
	return resolved, nil
}

// hasCapSysAdmin reports whether this process has CAP_SYS_ADMIN in its
// effective set, which FIFREEZE and FITHAW need.
func hasCapSysAdmin() (bool, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return false, fmt.Errorf("read the capabilities: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				return false, fmt.Errorf("read the capabilities: %w", err)
			}
			const capSysAdmin = 21
			return caps&(1<<capSysAdmin) != 0, nil
		}
	}
	return false, errors.New("read the capabilities: no CapEff in /proc/self/status")
}

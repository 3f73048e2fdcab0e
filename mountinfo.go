package hooks

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// mountInfoPath is the mount table of the calling process's mount namespace.
const mountInfoPath = "/proc/self/mountinfo"

// mount is one line of a mountinfo file (see proc(5)), with its escapes
// (\040 for a space, \011, \012, \134) decoded.
type mount struct {
	id, parent   int
	dev          string // major:minor of the filesystem: one per superblock (bind mounts and btrfs subvolumes of one filesystem share it)
	root         string // the directory of the filesystem mounted here; for btrfs the subvolume path, "/tank/db"
	point        string // where it is mounted, absolute
	fsType       string // "zfs", "btrfs", "ext4", ...
	source       string // for zfs the dataset, "tank/db"; for others a device or a name
	superOptions string // the filesystem's options; for btrfs "...,subvol=/tank/db"
}

// dataset returns the dataset a mount stands for: the source of a zfs mount,
// and for a btrfs mount the subvolume it shows (its subvol= option, or else
// its root), without the leading "/"; "" for the top level of a btrfs
// filesystem and for any other filesystem.
func (m mount) dataset() string {
	switch m.fsType {
	case "zfs":
		return m.source
	case "btrfs":
		sub := m.root
		for _, opt := range strings.Split(m.superOptions, ",") {
			if v, ok := strings.CutPrefix(opt, "subvol="); ok {
				sub = v
			}
		}
		return strings.Trim(sub, "/")
	}
	return ""
}

// mountTable is a process's mount table, in the order of its mountinfo file:
// a later mount on the same mount point hides an earlier one.
type mountTable []mount

// readMountTable reads the mount table of this process's mount namespace.
func readMountTable() (mountTable, error) {
	f, err := os.Open(mountInfoPath)
	if err != nil {
		return nil, fmt.Errorf("read mount table: %w", err)
	}
	defer f.Close()
	t, err := parseMountInfo(f)
	if err != nil {
		return nil, fmt.Errorf("read mount table %s: %w", mountInfoPath, err)
	}
	return t, nil
}

// parseMountInfo parses a mountinfo file:
//
//	36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
//
// that is: mount ID, parent ID, major:minor, root, mount point, mount
// options, optional fields ended by "-", filesystem type, source, super
// options. It fails on the first line it cannot read, naming it.
func parseMountInfo(r io.Reader) (mountTable, error) {
	var t mountTable
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for n := 1; sc.Scan(); n++ {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		m, err := parseMountLine(sc.Text())
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		t = append(t, m)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return t, nil
}

// parseMountLine parses one line of a mountinfo file.
func parseMountLine(line string) (mount, error) {
	fields := strings.Fields(line)
	sep := -1
	for i := 6; i < len(fields); i++ {
		if fields[i] == "-" {
			sep = i
			break
		}
	}
	if sep < 0 || len(fields) < sep+3 {
		return mount{}, fmt.Errorf("malformed mountinfo line %q", line)
	}
	id, err1 := strconv.Atoi(fields[0])
	parent, err2 := strconv.Atoi(fields[1])
	if err1 != nil || err2 != nil {
		return mount{}, fmt.Errorf("malformed mount IDs in %q", line)
	}
	m := mount{
		id:     id,
		parent: parent,
		dev:    fields[2],
		root:   unescapeMountField(fields[3]),
		point:  unescapeMountField(fields[4]),
		fsType: unescapeMountField(fields[sep+1]),
		source: unescapeMountField(fields[sep+2]),
	}
	if len(fields) > sep+3 {
		m.superOptions = unescapeMountField(fields[sep+3])
	}
	return m, nil
}

// unescapeMountField decodes the octal escapes the kernel writes for a
// space, tab, newline and backslash (\040, \011, \012, \134); anything else
// is kept as it is.
func unescapeMountField(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) {
			v := (s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0')
			b.WriteByte(v)
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }

// find returns the mount that holds path, an absolute path without symbolic
// links: the one whose mount point is the longest prefix of path, by whole
// components, and of those the last in the table (it hides the others).
func (t mountTable) find(path string) (mount, bool) {
	best, found := -1, false
	for i, m := range t {
		if !pathWithin(path, m.point) {
			continue
		}
		if !found || len(m.point) >= len(t[best].point) {
			best, found = i, true
		}
	}
	if !found {
		return mount{}, false
	}
	return t[best], true
}

// pathWithin reports whether path is dir or lies below it; both are clean
// absolute paths.
func pathWithin(path, dir string) bool {
	if dir == "/" {
		return strings.HasPrefix(path, "/")
	}
	return path == dir || strings.HasPrefix(path, dir+"/")
}

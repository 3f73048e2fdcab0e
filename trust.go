package hooks

// Hooks run with the rights of whoever runs the plan, most often root from
// cron or a snapshot daemon. Whoever can change the hook list, a hook's
// executable, or a directory on the way to either can run code with those
// rights. The checks here refuse that, as cron, sudo and OpenSSH's
// StrictModes do for their own files.

import (
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
)

// maxTrustSymlinks bounds the symlinks followed on one path, as the kernel's
// ELOOP does.
const maxTrustSymlinks = 40

// TrustError is one file, directory or symlink that someone other than root
// or the running user could change, on the way to a file that decides what
// runs: the hook list or a hook's executable. Its text names the path, its
// owner and mode, what is wrong and the command that fixes it:
//
//	/srv/hooks (a directory on the path of /srv/hooks/freeze.sh): owner root, mode 0777: writable by group and others: chmod go-w /srv/hooks
type TrustError struct {
	// Path is what is at fault, after symlinks: the file itself, a
	// directory on its way, or a symlink in a sticky directory.
	Path string
	// Of is the file that was checked, as it was named, if it is not Path
	// itself (Path is a directory on its way, or what a symlink points to);
	// else "".
	Of string
	// UID is the owner of Path, Owner its user name (the uid in decimal if
	// it has none).
	UID   uint32
	Owner string
	// Mode is the mode of Path: its type and permission bits, with the
	// setuid, setgid and sticky bits.
	Mode fs.FileMode
	// Reason says what is wrong ("owned by bob, not by root", "writable by
	// others").
	Reason string
	// Fix is a shell command that repairs it ("chmod go-w /srv/hooks").
	Fix string
}

// Error names the path (and the file it was checked for, if another),
// its owner and mode, the reason and the fix.
func (e *TrustError) Error() string {
	what := e.Path
	if e.Of != "" && e.Of != e.Path {
		kind := "the target of"
		if e.Mode&fs.ModeSymlink != 0 {
			kind = "a symlink on the path of"
		} else if e.Mode.IsDir() {
			kind = "a directory on the path of"
		}
		what += " (" + kind + " " + e.Of + ")"
	}
	return fmt.Sprintf("%s: owner %s, mode %04o: %s: %s", what, e.Owner, unixPerm(e.Mode), e.Reason, e.Fix)
}

// CheckTrust checks the hook list file at configPath and the executable of
// every command hook of list: each must be owned by root or by the running
// user (the effective uid), and not writable by group or others; so must
// every directory on the way to it, except that a directory with the
// sticky bit (such as /tmp) may be writable by others if the entry in it on
// the way is owned by root or the running user. A symlink is judged by what
// it points to and by every directory on the way to both, its own included.
// A path that does not exist (yet) is judged by the directories on the way
// to it that do.
//
// It returns one error per path at fault, each a *TrustError wrapped with
// the file it was checked for ("hook list: ...", "hook #2: ..."), and the
// errors of paths it could not examine; nil if all is well. A path on the
// way to several files is reported once. configPath "" (a list read from
// stdin or built in Go) checks the executables alone. Access control lists
// are not looked at: a file whose ACL gives others write access passes.
//
// A daemon calls it on its own configuration before it runs a plan, and
// refuses to run if it returns anything.
func CheckTrust(configPath string, list HookList) []error {
	c := newTrustChecker(uint32(os.Geteuid()))
	var errs []error
	if configPath != "" {
		for _, err := range c.check(configPath) {
			errs = append(errs, fmt.Errorf("hook list: %w", err))
		}
	}
	for i, h := range list {
		if h.Type != TypeCommand || h.Path == "" {
			continue
		}
		for _, err := range c.check(h.Path) {
			errs = append(errs, fmt.Errorf("hook #%d: %w", i+1, err))
		}
	}
	return errs
}

// CheckFileTrust applies the rules of CheckTrust to the file at path alone:
// for instance the snapshot command a daemon runs next to its hooks. It
// returns a *TrustError for each path at fault, and the errors of paths it
// could not examine.
func CheckFileTrust(path string) []error {
	return newTrustChecker(uint32(os.Geteuid())).check(path)
}

// CheckPasswordPrivacy returns an error if the hook list file at
// configPath can be read by group or others and list holds a password in
// the DSN of a database hook — the text names the file and the fix
// ("hooks.yml is readable by group and others and holds a password (hook
// #2): chmod 600 hooks.yml") — or if configPath cannot be examined. It is
// meant as a warning: the password has been readable already. A password
// that the driver takes from elsewhere (PGPASSWORD, the libpq password
// file) is not in the list and does not count. configPath "" returns nil.
func CheckPasswordPrivacy(configPath string, list HookList) error {
	if configPath == "" {
		return nil
	}
	n := 0
	for i, h := range list {
		if dsnHoldsPassword(h.Type, h.DSN) {
			n = i + 1
			break
		}
	}
	if n == 0 {
		return nil
	}
	fi, err := os.Stat(configPath)
	if err != nil {
		return fmt.Errorf("check who may read the hook list: %w", err)
	}
	var who string
	switch perm := fi.Mode().Perm(); {
	case perm&0o044 == 0o044:
		who = "group and others"
	case perm&0o040 != 0:
		who = "group"
	case perm&0o004 != 0:
		who = "others"
	default:
		return nil
	}
	return fmt.Errorf("%s is readable by %s and holds a password (hook #%d): chmod 600 %s", configPath, who, n, configPath)
}

// pgPasswordKey finds a password keyword in a libpq keyword/value string.
var pgPasswordKey = regexp.MustCompile(`(?:^|\s)password\s*=`)

// dsnHoldsPassword reports whether dsn, the DSN of a hook of type typ,
// holds a password itself. pgx fills in a password from PGPASSWORD or the
// password file too, so for PostgreSQL the password the driver parsed counts
// only if the string names one: in the user info or the "password"
// parameter of a URL, or as the keyword "password".
func dsnHoldsPassword(typ, dsn string) bool {
	switch typ {
	case TypePostgresCheckpoint:
		cfg, err := parsePgDSN(dsn)
		if err != nil || cfg.Password == "" {
			return false
		}
		if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
			u, err := url.Parse(dsn)
			if err != nil {
				return false
			}
			_, inUser := u.User.Password()
			return inUser || u.Query().Get("password") != ""
		}
		return pgPasswordKey.MatchString(dsn)
	case TypeMySQLLockTables, TypeMariaDBBackupStage:
		cfg, err := parseMySQLDSN(dsn)
		return err == nil && cfg.Passwd != ""
	}
	return false
}

// trustChecker applies the rules of CheckTrust relative to uid, reporting
// each path at fault once.
type trustChecker struct {
	uid      uint32
	seen     map[string]bool // paths already judged
	names    map[uint32]string
	trustees string // "root" or "root or alice", for the reasons
}

func newTrustChecker(uid uint32) *trustChecker {
	c := &trustChecker{uid: uid, seen: map[string]bool{}, names: map[uint32]string{}, trustees: "root"}
	if uid != 0 {
		c.trustees = "root or " + c.userName(uid)
	}
	return c
}

// userName returns the name of uid, or uid in decimal if it has none.
func (c *trustChecker) userName(uid uint32) string {
	if n, ok := c.names[uid]; ok {
		return n
	}
	n := strconv.FormatUint(uint64(uid), 10)
	if u, err := user.LookupId(n); err == nil {
		n = u.Username
	}
	c.names[uid] = n
	return n
}

// trustWalk is the state of one check: where the walk is and what it
// found.
type trustWalk struct {
	c      *trustChecker
	path   string   // as it was named
	errs   []error  // what was found
	cur    string   // the directory reached, without symlinks
	sticky bool     // cur is open to others but sticky: its entries must be trusted
	rest   []string // the components still to walk
	links  int      // symlinks followed
}

// check walks path from / one component at a time, following symlinks as
// the kernel does, and judges every directory it passes and the file it
// ends at.
func (c *trustChecker) check(path string) []error {
	abs := path // not cleaned: "link/.." is the parent of what link points to
	if !filepath.IsAbs(path) {
		wd, err := os.Getwd()
		if err != nil {
			return []error{fmt.Errorf("check %s: %w", path, err)}
		}
		abs = wd + "/" + path
	}
	w := &trustWalk{c: c, path: path, rest: strings.Split(abs, "/")}
	if err := w.enter("/"); err != nil {
		return []error{err}
	}
	for len(w.rest) > 0 {
		done, err := w.step()
		if err != nil {
			return append(w.errs, err)
		}
		if done {
			break
		}
	}
	return w.errs
}

// enter judges the directory dir and makes it the current one.
func (w *trustWalk) enter(dir string) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("check %s: %w", w.path, err)
	}
	w.judge(dir, fi, func(st *syscall.Stat_t) (string, string) { return w.c.judgeDir(dir, st) })
	w.cur, w.sticky = dir, isStickyOpen(fi)
	return nil
}

// step walks the next component: it judges a directory and enters it,
// follows a symlink, or judges the file at the end (done). A path that
// does not resolve is done: running it fails, and nothing more is to be
// trusted.
func (w *trustWalk) step() (done bool, err error) {
	name := w.rest[0]
	w.rest = w.rest[1:]
	switch name {
	case "", ".":
		return false, nil
	case "..":
		// cur has no symlinks, and its parent was judged on the way in.
		w.cur = filepath.Dir(w.cur)
		w.sticky = stickyOpen(w.cur)
		return false, nil
	}
	next := filepath.Join(w.cur, name)
	fi, err := os.Lstat(next)
	switch {
	case errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR):
		return true, nil
	case err != nil:
		return true, fmt.Errorf("check %s: %w", w.path, err)
	case fi.Mode()&fs.ModeSymlink != 0:
		return false, w.follow(next, fi)
	case fi.IsDir():
		return false, w.enter(next)
	case strings.Join(w.rest, "") != "":
		return true, nil // a file in the middle: running it fails
	}
	w.judge(next, fi, func(st *syscall.Stat_t) (string, string) { return w.c.judgeFile(next, fi, st) })
	if w.links == 0 { // next is the path as named
		for _, err := range w.errs {
			if te, ok := err.(*TrustError); ok && te.Path == next {
				te.Of = ""
			}
		}
	}
	return true, nil
}

// follow puts what the symlink link points to in front of the components
// still to walk. A link in a sticky directory must be trusted itself.
func (w *trustWalk) follow(link string, fi fs.FileInfo) error {
	if w.sticky {
		w.judge(link, fi, func(st *syscall.Stat_t) (string, string) { return w.c.judgeStickyEntry(link, st) })
	}
	w.links++
	if w.links > maxTrustSymlinks {
		return fmt.Errorf("check %s: too many levels of symbolic links", w.path)
	}
	target, err := os.Readlink(link)
	if err != nil {
		return fmt.Errorf("check %s: %w", w.path, err)
	}
	if filepath.IsAbs(target) {
		w.cur, w.sticky = "/", stickyOpen("/")
	}
	w.rest = append(strings.Split(target, "/"), w.rest...)
	return nil
}

// judge records a *TrustError for p unless p was judged before or reason
// finds nothing wrong.
func (w *trustWalk) judge(p string, fi fs.FileInfo, reason func(st *syscall.Stat_t) (string, string)) {
	if w.c.seen[p] {
		return
	}
	w.c.seen[p] = true
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		w.errs = append(w.errs, fmt.Errorf("check %s: no owner information", p))
		return
	}
	if why, fix := reason(st); why != "" {
		w.errs = append(w.errs, &TrustError{Path: p, Of: w.path, UID: st.Uid, Owner: w.c.userName(st.Uid), Mode: fi.Mode(), Reason: why, Fix: fix})
	}
}

// stickyOpen is isStickyOpen for the directory dir.
func stickyOpen(dir string) bool {
	fi, err := os.Lstat(dir)
	return err == nil && isStickyOpen(fi)
}

// isStickyOpen reports whether a directory may be written by group or
// others but has the sticky bit.
func isStickyOpen(fi fs.FileInfo) bool {
	return fi.Mode()&fs.ModeSticky != 0 && fi.Mode().Perm()&0o022 != 0
}

// judgeFile returns what is wrong with the file p and the fix, or "".
func (c *trustChecker) judgeFile(p string, fi fs.FileInfo, st *syscall.Stat_t) (reason, fix string) {
	return c.judgeOwnerAndMode(p, st, fi.Mode().Perm()&0o022)
}

// judgeDir returns what is wrong with the directory p and the fix, or "".
// Write access for group or others is allowed with the sticky bit: then
// only the owner of an entry can remove or replace it, and the entries on
// the way are judged by their owner.
func (c *trustChecker) judgeDir(p string, st *syscall.Stat_t) (reason, fix string) {
	writable := fs.FileMode(st.Mode) & 0o022
	if st.Mode&syscall.S_ISVTX != 0 {
		writable = 0
	}
	return c.judgeOwnerAndMode(p, st, writable)
}

// judgeStickyEntry returns what is wrong with a symlink in a sticky
// directory that others may write: its owner may replace it.
func (c *trustChecker) judgeStickyEntry(p string, st *syscall.Stat_t) (reason, fix string) {
	if c.trusted(st.Uid) {
		return "", ""
	}
	return fmt.Sprintf("owned by %s, not by %s, in a sticky directory others may write", c.userName(st.Uid), c.trustees),
		"chown -h root " + shellArg(p)
}

// judgeOwnerAndMode judges the owner of p and its write bits for group and
// others (writable, 0 if they do not count).
func (c *trustChecker) judgeOwnerAndMode(p string, st *syscall.Stat_t, writable fs.FileMode) (reason, fix string) {
	var reasons, fixes []string
	if !c.trusted(st.Uid) {
		reasons = append(reasons, fmt.Sprintf("owned by %s, not by %s", c.userName(st.Uid), c.trustees))
		fixes = append(fixes, "chown root "+shellArg(p))
	}
	switch {
	case writable&0o022 == 0o022:
		reasons = append(reasons, "writable by group and others")
	case writable&0o020 != 0:
		reasons = append(reasons, "writable by group")
	case writable&0o002 != 0:
		reasons = append(reasons, "writable by others")
	}
	if writable != 0 {
		fixes = append(fixes, "chmod go-w "+shellArg(p))
	}
	return strings.Join(reasons, ", "), strings.Join(fixes, " && ")
}

// trusted reports whether uid may change what runs: root or the running
// user.
func (c *trustChecker) trusted(uid uint32) bool { return uid == 0 || uid == c.uid }

// unixPerm returns the permission bits of m with setuid, setgid and sticky
// in their Unix places.
func unixPerm(m fs.FileMode) uint32 {
	p := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		p |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		p |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		p |= 0o1000
	}
	return p
}

// shellArg quotes p for a shell if it needs it.
func shellArg(p string) string {
	if p != "" && !strings.ContainsFunc(p, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/._-+,:@%", r))
	}) {
		return p
	}
	return "'" + strings.ReplaceAll(p, "'", `'\''`) + "'"
}

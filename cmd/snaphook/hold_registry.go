package main

// The registry of live holds in the private run directory: one entry file
// per hold, read and changed only under the directory's lock, so that a pre
// sees every hold that overlaps its own, and a post finds the hold of its
// own run. An entry whose hold lock (flock'ed by its holder for as long as
// it holds) is free belongs to a holder that died: it is stale and removed.
// The registry also remembers the pre of a run that did not hold, so that
// the post of that run releases nothing.

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/snaphooks/hooks"
)

// registryLockName is the lock file of the registry in the run directory.
const registryLockName = "registry.lock"

// registryWait bounds the wait for the registry's lock, which is held only
// for a few file operations: longer means its holder is stopped.
const registryWait = 30 * time.Second

// holdEntry is the registry's record of a live hold.
type holdEntry struct {
	HolderPID int      `json:"holder_pid"`
	Owner     string   `json:"owner"` // see holdOwner
	Datasets  []string `json:"datasets"`
	Recursive bool     `json:"recursive"`
	Snapshot  string   `json:"snapshot"`
}

// what describes the hold for messages: "tank/db (recursive)@S, holder pid N".
func (e holdEntry) what() string {
	return fmt.Sprintf("%s, holder pid %d", snapshotTarget(e.Datasets, e.Recursive, e.Snapshot), e.HolderPID)
}

// registry is the locked registry of a run directory.
type registry struct {
	dir  string
	lock *os.File // flock'ed until unlock
}

// lockRegistry takes the registry lock of dir, waiting up to registryWait.
func lockRegistry(dir string) (*registry, error) {
	path := filepath.Join(dir, registryLockName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open the registry lock: %w", err)
	}
	if err := checkPrivate(path, false); err != nil {
		f.Close()
		return nil, fmt.Errorf("registry lock: %w", err)
	}
	deadline := time.Now().Add(registryWait)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return &registry{dir: dir, lock: f}, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) || time.Now().After(deadline) {
			f.Close()
			return nil, fmt.Errorf("lock the registry %s: %w", path, err)
		}
		time.Sleep(5 * time.Millisecond) // held for microseconds; flock has no timeout
	}
}

// unlock releases the registry lock.
func (r *registry) unlock() { r.lock.Close() }

// live returns the live holds, after removing the entries of holders that
// died and the refusals of owners that are gone.
func (r *registry) live() ([]holdEntry, error) {
	paths, err := filepath.Glob(filepath.Join(r.dir, "hold-*.entry"))
	if err != nil {
		return nil, err
	}
	var live []holdEntry
	for _, p := range paths {
		base := strings.TrimSuffix(p, ".entry")
		e, err := readEntry(p)
		if err == nil && lockTaken(base+".lock") {
			live = append(live, e)
			continue
		}
		for _, stale := range []string{p, base + ".sock"} {
			if err := os.Remove(stale); err != nil && !errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("remove the stale %s: %w", stale, err)
			}
		}
	}
	r.dropOldRefusals()
	return live, nil
}

// lookup returns the live hold of exactly files' datasets, if any.
func (r *registry) lookup(files holdFiles) (holdEntry, bool, error) {
	if _, err := r.live(); err != nil {
		return holdEntry{}, false, err
	}
	e, err := readEntry(files.Entry)
	if errors.Is(err, os.ErrNotExist) {
		return holdEntry{}, false, nil
	}
	return e, err == nil, err
}

// readEntry reads the entry file at path.
func readEntry(path string) (holdEntry, error) {
	var e holdEntry
	if err := checkPrivate(path, false); err != nil {
		return e, err
	}
	b, err := os.ReadFile(path)
	if err == nil {
		err = json.Unmarshal(b, &e)
	}
	return e, err
}

// lockTaken reports whether a holder has the flock of the lock file path.
func lockTaken(path string) bool {
	f, err := os.OpenFile(path, os.O_RDWR|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	return errors.Is(syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB), syscall.EWOULDBLOCK)
}

// add records the hold e with files.
func (r *registry) add(files holdFiles, e holdEntry) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(files.Entry, b); err != nil {
		return fmt.Errorf("register the hold: %w", err)
	}
	return nil
}

// overlapping returns a live hold that shares a dataset with datasets (a
// recursive hold covers its subtrees), if any.
func overlapping(live []holdEntry, datasets []string, recursive bool) (holdEntry, bool) {
	for _, e := range live {
		for _, a := range datasets {
			for _, b := range e.Datasets {
				if covers(a, recursive, b) || covers(b, e.Recursive, a) {
					return e, true
				}
			}
		}
	}
	return holdEntry{}, false
}

// covers reports whether a hold of root (and, if recursive, its subtree)
// covers dataset d.
func covers(root string, recursive bool, d string) bool {
	return d == root || recursive && strings.HasPrefix(d, root+"/")
}

// refusal is the registry's memory of the pres of a run that did not hold.
type refusal struct {
	Owner string       `json:"owner"`
	Pres  []refusedPre `json:"pres"` // the latest last
}

// refusedPre is one pre that did not hold.
type refusedPre struct {
	Snapshot string `json:"snapshot"`
	Reason   string `json:"reason"`
}

// refusalPath is the file of the refusals of owner for the datasets of
// files.
func (r *registry) refusalPath(owner string, files holdFiles) string {
	h := sha256.Sum256([]byte(owner + "\n" + filepath.Base(files.Lock)))
	return filepath.Join(r.dir, "refused-"+hex.EncodeToString(h[:])[:20]+".json")
}

// refuse remembers that a pre of owner for the datasets of files and
// snapshot did not hold, and why.
func (r *registry) refuse(owner string, files holdFiles, snapshot, reason string) error {
	path := r.refusalPath(owner, files)
	rf, _ := readRefusal(path)
	rf.Owner = owner
	rf.Pres = append(rf.Pres, refusedPre{Snapshot: snapshot, Reason: reason})
	b, err := json.Marshal(rf)
	if err != nil {
		return err
	}
	return writeFileAtomic(path, b)
}

// forgetRefusals forgets the refusals of owner for the datasets of files:
// a pre of the run held them, so the posts of the earlier pres are not to
// come any more.
func (r *registry) forgetRefusals(owner string, files holdFiles) error {
	err := os.Remove(r.refusalPath(owner, files))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// takeRefusal forgets the latest refusal of owner for the datasets of
// files — of snapshot, unless that is "" — and returns its reason; ok is
// false if there is none.
func (r *registry) takeRefusal(owner string, files holdFiles, snapshot string) (reason string, ok bool, err error) {
	path := r.refusalPath(owner, files)
	rf, err := readRefusal(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	i := len(rf.Pres) - 1
	for i >= 0 && snapshot != "" && rf.Pres[i].Snapshot != snapshot {
		i--
	}
	if i < 0 {
		return "", false, nil
	}
	reason = rf.Pres[i].Reason
	rf.Pres = append(rf.Pres[:i], rf.Pres[i+1:]...)
	if len(rf.Pres) == 0 {
		return reason, true, os.Remove(path)
	}
	b, err := json.Marshal(rf)
	if err != nil {
		return "", false, err
	}
	return reason, true, writeFileAtomic(path, b)
}

func readRefusal(path string) (refusal, error) {
	var rf refusal
	if err := checkPrivate(path, false); err != nil {
		return rf, err
	}
	b, err := os.ReadFile(path)
	if err == nil {
		err = json.Unmarshal(b, &rf)
	}
	return rf, err
}

// dropOldRefusals removes the refusals whose owner process is gone, and
// those of a --hold-id older than the longest hold: no post of theirs is
// still to come.
func (r *registry) dropOldRefusals() {
	paths, _ := filepath.Glob(filepath.Join(r.dir, "refused-*.json"))
	for _, p := range paths {
		rf, err := readRefusal(p)
		fi, statErr := os.Lstat(p)
		old := statErr == nil && time.Since(fi.ModTime()) > hooks.MaxHookTimeout
		if err != nil || !ownerAlive(rf.Owner) || old {
			_ = os.Remove(p)
		}
	}
}

// writeFileAtomic writes b to path (mode 0600) through a rename.
func writeFileAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	_ = os.Remove(tmp) // a leftover would keep its mode
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

package main

// The rendezvous of "snaphook pre", the holder it leaves behind, and
// "snaphook post": a private directory, one set of files per hold, and the
// messages they exchange.

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// runDirEnv overrides the private directory of the holders' sockets. The
// directory gets the same checks as the default one.
const runDirEnv = "SNAPHOOK_RUN_DIR"

// runDir returns the private directory of the holders' sockets, creating it
// (mode 0700) if it does not exist: $SNAPHOOK_RUN_DIR if set, else
// /run/snaphook for root and $XDG_RUNTIME_DIR/snaphook for other users. It
// fails if the directory is a symlink, not a directory, not owned by the
// effective uid, or open to group or others: someone else could then plant or
// reach a socket there.
func runDir() (string, error) {
	dir := os.Getenv(runDirEnv)
	switch {
	case dir != "":
	case os.Geteuid() == 0:
		dir = "/run/snaphook"
	default:
		xdg := os.Getenv("XDG_RUNTIME_DIR")
		if xdg == "" {
			return "", errors.New("XDG_RUNTIME_DIR is not set: snaphook keeps its holder's socket in $XDG_RUNTIME_DIR/snaphook for users other than root (set it, e.g. to /run/user/$(id -u), or set " + runDirEnv + ")")
		}
		dir = filepath.Join(xdg, "snaphook")
	}
	if !filepath.IsAbs(dir) {
		return "", fmt.Errorf("socket directory %q is not an absolute path", dir)
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return "", fmt.Errorf("create the socket directory: %w", err)
	}
	if err := checkPrivate(dir, true); err != nil {
		return "", fmt.Errorf("socket directory: %w", err)
	}
	return dir, nil
}

// checkPrivate fails unless path (not followed if a symlink) is a directory
// (wantDir) or a regular file owned by the effective uid with no permission
// for group or others.
func checkPrivate(path string, wantDir bool) error {
	fi, err := os.Lstat(path)
	if err != nil {
		return err
	}
	switch {
	case fi.Mode()&os.ModeSymlink != 0:
		return fmt.Errorf("%s is a symlink", path)
	case wantDir && !fi.IsDir():
		return fmt.Errorf("%s is not a directory", path)
	case !wantDir && !fi.Mode().IsRegular():
		return fmt.Errorf("%s is not a regular file", path)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("%s: no owner information", path)
	}
	if int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("%s is owned by uid %d, not by uid %d", path, st.Uid, os.Geteuid())
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("%s has mode %04o; want no access for group and others (0700 for a directory)", path, fi.Mode().Perm())
	}
	return nil
}

// holdFiles are the files of one hold in the socket directory. Their names
// derive from the datasets alone (never from a DSN or the config), so that
// "snaphook post" finds the holder of "snaphook pre" for the same datasets,
// whatever the snapshot name.
type holdFiles struct {
	Sock   string `json:"sock"`   // the holder listens here
	Lock   string `json:"lock"`   // flock'ed by the holder as long as it holds
	Result string `json:"result"` // the final report of a hold that ended without a post
	Log    string `json:"log"`    // the holder's log, rewritten by each hold
	Entry  string `json:"entry"`  // the hold's entry in the registry (hold_registry.go)
}

// holdKey names the hold of datasets, recursive or not: a hash of the
// sorted, de-duplicated list.
func holdKey(datasets []string, recursive bool) string {
	sorted := append([]string(nil), datasets...)
	sort.Strings(sorted)
	h := sha256.New()
	fmt.Fprintf(h, "snaphook hold v1\nrecursive=%v\n", recursive)
	prev := ""
	for i, d := range sorted {
		if i > 0 && d == prev {
			continue
		}
		prev = d
		fmt.Fprintf(h, "%s\n", d)
	}
	return hex.EncodeToString(h.Sum(nil))[:20]
}

func newHoldFiles(dir string, datasets []string, recursive bool) holdFiles {
	base := filepath.Join(dir, "hold-"+holdKey(datasets, recursive))
	return holdFiles{Sock: base + ".sock", Lock: base + ".lock", Result: base + ".result", Log: base + ".log", Entry: base + ".entry"}
}

// peerUID returns the uid of the process at the other end of conn, as the
// kernel recorded it when the connection was made (SO_PEERCRED).
func peerUID(conn *net.UnixConn) (int, error) {
	raw, err := conn.SyscallConn()
	if err != nil {
		return 0, err
	}
	var cred *syscall.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil {
		return 0, err
	}
	if credErr != nil {
		return 0, fmt.Errorf("SO_PEERCRED: %w", credErr)
	}
	return int(cred.Uid), nil
}

// message is one line of the protocol between the holder and its clients,
// JSON, one object per line. Exactly one field is set.
//
// Holder to pre (on the control socket): job is the first message, the other
// way; then log lines, and either held (then pre answers ack, and the holder
// confirmed, or done if the hold ended before the ack) or done.
// Post to holder: post. Holder to post: log lines, then done or error.
type message struct {
	Job  *holdJob  `json:"job,omitempty"`
	Log  string    `json:"log,omitempty"`
	Held *holdInfo `json:"held,omitempty"`
	Ack  bool      `json:"ack,omitempty"`
	// Confirmed: the holder got the ack while it held.
	Confirmed bool        `json:"confirmed,omitempty"`
	Post      *postReq    `json:"post,omitempty"`
	Done      *holdResult `json:"done,omitempty"`
	Error     string      `json:"error,omitempty"`
}

// holdJob is what pre hands the holder. It travels over the control socket,
// not on the command line, which every user can read with ps.
type holdJob struct {
	ConfigName string    `json:"config_name"`
	Config     []byte    `json:"config"`
	Datasets   []string  `json:"datasets"`
	Recursive  bool      `json:"recursive"`
	Snapshot   string    `json:"snapshot"`
	MaxHold    string    `json:"max_hold"`
	LogLevel   string    `json:"log_level"`
	Owner      string    `json:"owner"` // the run that may release the hold (holdOwner)
	Files      holdFiles `json:"files"`
}

// holdInfo is the holder's report that the pre edges are done and it holds.
type holdInfo struct {
	PID      int             `json:"pid"`
	Hooks    int             `json:"hooks"`
	PreError bool            `json:"pre_error"` // a non-fatal pre edge failed
	Report   string          `json:"report"`    // the steps so far, as text
	Steps    json.RawMessage `json:"steps"`     // the steps so far, as JSON
}

// postReq is a post's request to run the post edges.
type postReq struct {
	PID    int    `json:"pid"`
	Config string `json:"config,omitempty"` // the absolute path of post's -c, if given
	Owner  string `json:"owner"`            // the run of the post (holdOwner)
	// Env is the environment of the post, for the post edges.
	Env []string `json:"env"`
	// SnapshotResult is post's --snapshot-result: ok, failed or unknown.
	SnapshotResult string `json:"snapshot_result"`
}

// holdResult is the final outcome of a hold: what post prints and its exit
// code. Text is the report as "snaphook run" prints it; JSON is the object
// "--json" prints.
type holdResult struct {
	Owner string          `json:"owner"` // the run of the hold: only its post may read the result
	Code  int             `json:"code"`
	Text  string          `json:"text"`
	JSON  json.RawMessage `json:"json"`
}

// msgWriter writes messages to w, one JSON object per line.
type msgWriter struct{ w io.Writer }

// sendTimeout bounds the write of a message to a socket, so that a client
// that stopped reading cannot stall the holder's hooks.
const sendTimeout = 10 * time.Second

func (m msgWriter) send(msg message) error {
	b, err := json.Marshal(msg)
	if err != nil {
		return err
	}
	if c, ok := m.w.(net.Conn); ok {
		_ = c.SetWriteDeadline(time.Now().Add(sendTimeout))
	}
	_, err = m.w.Write(append(b, '\n'))
	return err
}

// msgReader reads the messages of a msgWriter. A line is at most 16 MiB (a
// report with the captured output of many hooks).
type msgReader struct{ sc *bufio.Scanner }

func newMsgReader(r io.Reader) msgReader {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	return msgReader{sc}
}

// next returns the next message, io.EOF at a clean end.
func (m msgReader) next() (message, error) {
	if !m.sc.Scan() {
		if err := m.sc.Err(); err != nil {
			return message{}, err
		}
		return message{}, io.EOF
	}
	var msg message
	if err := json.Unmarshal(m.sc.Bytes(), &msg); err != nil {
		return message{}, fmt.Errorf("bad message: %w", err)
	}
	return msg, nil
}

// datasetList formats datasets for messages: "tank/db, tank/log".
func datasetList(datasets []string, recursive bool) string {
	s := strings.Join(datasets, ", ")
	if recursive {
		s += " (recursive)"
	}
	return s
}

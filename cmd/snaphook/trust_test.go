package main

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// otherUser makes a user without a home, removed when the test ends, and
// returns its name, uid and gid. It needs root.
func otherUser(t *testing.T) (name string, uid, gid int) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("making a user needs root (CI runs the tests as root)")
	}
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	name = "shtrust" + hex.EncodeToString(b)
	if out, err := exec.Command("useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", "--user-group", name).CombinedOutput(); err != nil {
		t.Fatalf("useradd %s: %v\n%s", name, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("userdel", name).CombinedOutput(); err != nil {
			t.Errorf("userdel %s: %v\n%s", name, err, out)
		}
	})
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	return name, uid, gid
}

// chmod sets the mode of path, whatever the umask.
func chmod(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func TestTrustRefusesWhatOthersCanChange(t *testing.T) {
	dir := t.TempDir()
	ran := filepath.Join(dir, "ran")
	hook := script(t, dir, "hook", `touch "`+ran+`"`)
	cfg := config(t, dir, "- {type: command, path: "+hook+"}\n")
	chmod(t, cfg, 0o666)
	e := newSplitEnv(t)
	for _, args := range [][]string{
		{"run", "-c", cfg, "--fs", "tank/a", "--", "true"},
		{"pre", "-c", cfg, "--fs", "tank/a"},
		{"check", "-c", cfg},
	} {
		t.Run(args[0], func(t *testing.T) {
			r := runSnaphook(t, invocation{args: args, env: e.env})
			want := "snaphook " + args[0] + ": untrusted: hook list: " + cfg + ": owner root, mode 0666: writable by group and others: chmod go-w " + cfg + "\n"
			if r.code != exitUsage || !strings.Contains(r.stderr, want) || !strings.Contains(r.stderr, "refusing to run the hooks of "+cfg) {
				t.Errorf("exit code %d, want %d and %q; stderr:\n%s", r.code, exitUsage, want, r.stderr)
			}
			if exists(ran) {
				t.Errorf("the hook ran")
			}
		})
	}
}

func TestTrustCheckListsEveryViolation(t *testing.T) {
	name, uid, gid := otherUser(t)
	dir := t.TempDir()
	open := filepath.Join(dir, "open")
	if err := os.Mkdir(open, 0o700); err != nil {
		t.Fatal(err)
	}
	chmod(t, open, 0o777)
	inOpen := script(t, open, "in-open", "exit 0")
	writable := script(t, dir, "writable", "exit 0")
	chmod(t, writable, 0o775)
	theirs := script(t, dir, "theirs", "exit 0")
	if err := os.Chown(theirs, uid, gid); err != nil {
		t.Fatal(err)
	}
	safe := script(t, dir, "safe", "exit 0")
	cfg := config(t, dir, "- {type: command, path: "+safe+"}\n- {type: command, path: "+inOpen+"}\n- {type: command, path: "+writable+"}\n- {type: command, path: "+theirs+"}\n")
	chmod(t, cfg, 0o646)

	r := run(t, "check", "-c", cfg)
	if r.code != exitUsage {
		t.Errorf("exit code %d, want %d", r.code, exitUsage)
	}
	for _, want := range []string{
		"untrusted: hook list: " + cfg + ": owner root, mode 0646: writable by others: chmod go-w " + cfg,
		"untrusted: hook #2: " + open + " (a directory on the path of " + inOpen + "): owner root, mode 0777: writable by group and others: chmod go-w " + open,
		"untrusted: hook #3: " + writable + ": owner root, mode 0775: writable by group: chmod go-w " + writable,
		"untrusted: hook #4: " + theirs + ": owner " + name + ", mode 0755: owned by " + name + ", not by root: chown root " + theirs,
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	if n := strings.Count(r.stderr, "untrusted: "); n != 4 {
		t.Errorf("%d violations listed, want 4:\n%s", n, r.stderr)
	}
}

func TestTrustStdinListChecksItsHooks(t *testing.T) {
	dir := t.TempDir()
	hook := script(t, dir, "hook", "exit 0")
	chmod(t, hook, 0o757)
	r := runSnaphook(t, invocation{args: []string{"check", "-c", "-"}, stdin: "- {type: command, path: " + hook + "}\n"})
	if r.code != exitUsage || !strings.Contains(r.stderr, "untrusted: hook #1: "+hook+": owner root, mode 0757") || !strings.Contains(r.stderr, "refusing to run the hooks of <stdin>") {
		t.Errorf("exit code %d, stderr:\n%s", r.code, r.stderr)
	}
}

func TestTrustPasswordWarning(t *testing.T) {
	// The database hook is for other datasets: run and check never connect.
	list := "- {type: mysql-lock-tables, dsn: \"u:hunter2@tcp(127.0.0.1:1)/\", filesystems: {\"other<\": true}}\n"
	for _, tc := range []struct {
		name string
		mode os.FileMode
		warn bool
	}{{"readable_0644_warned", 0o644, true}, {"private_0600_silent", 0o600, false}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := config(t, dir, list)
			chmod(t, cfg, tc.mode)
			want := "warning: " + cfg + " is readable by group and others and holds a password (hook #1): chmod 600 " + cfg + "\n"
			for _, args := range [][]string{{"check", "-c", cfg}, {"run", "-c", cfg, "--fs", "tank/a", "--", "true"}} {
				r := run(t, args...)
				if r.code != 0 || strings.Contains(r.stdout+r.stderr, "hunter2") {
					t.Errorf("%s: exit code %d\nstdout:\n%s\nstderr:\n%s", args[0], r.code, r.stdout, r.stderr)
				}
				if got := strings.Contains(r.stderr, want); got != tc.warn {
					t.Errorf("%s: warned %v, want %v; stderr:\n%s", args[0], got, tc.warn, r.stderr)
				}
			}
		})
	}
}

func TestTrustSnapshotCommandWarnsOnly(t *testing.T) {
	dir := t.TempDir()
	ran := filepath.Join(dir, "ran")
	cmd := script(t, dir, "snap", `touch "`+ran+`"`)
	chmod(t, cmd, 0o777)
	cfg := config(t, dir, "[]\n")
	r := run(t, "run", "-c", cfg, "--fs", "tank/a", "--", cmd)
	want := "warning: snapshot command: " + cmd + ": owner root, mode 0777: writable by group and others: chmod go-w " + cmd
	if r.code != 0 || !strings.Contains(r.stderr, want) || !exists(ran) {
		t.Errorf("exit code %d, ran %v, want 0, true and %q; stderr:\n%s", r.code, exists(ran), want, r.stderr)
	}
}

// TestTrustFilesWrittenArePrivate holds under umask 0: the socket
// directory, socket, lock and log of a hold, and the result file of a hold
// that expired, are still private.
func TestTrustFilesWrittenArePrivate(t *testing.T) {
	e := newSplitEnv(t)
	runDir := filepath.Join(e.dir, "run") // made by snaphook
	e.env = []string{runDirEnv + "=" + runDir}
	dir := t.TempDir()
	cfg := config(t, dir, "- {type: command, path: "+script(t, dir, "hook", "exit 0")+"}\n")
	// The test's own files are made before: under umask 0, t.TempDir is
	// 0777, and the hook list in it is refused.
	old := syscall.Umask(0)
	t.Cleanup(func() { syscall.Umask(old) })
	assertMode := func(path string, want os.FileMode) {
		t.Helper()
		fi, err := os.Lstat(path)
		if err != nil {
			t.Error(err)
		} else if fi.Mode() != want {
			t.Errorf("%s: mode %v, want %v", path, fi.Mode(), want)
		}
	}

	r, _ := e.pre(t, nil, "-c", cfg, "--fs", "tank/held")
	if r.code != 0 {
		t.Fatalf("pre: exit code %d\n%s", r.code, r.stderr)
	}
	held := filepath.Join(runDir, "hold-"+holdKey([]string{"tank/held"}, false))
	assertMode(runDir, os.ModeDir|0o700)
	assertMode(held+".sock", os.ModeSocket|0o600)
	assertMode(held+".lock", 0o600)
	assertMode(held+".log", 0o600)
	if p := e.post(t, nil, "--fs", "tank/held"); p.code != 0 {
		t.Errorf("post: exit code %d\n%s", p.code, p.stderr)
	}

	r, h := e.pre(t, nil, "-c", cfg, "--fs", "tank/expired", "--max-hold", "300ms")
	if r.code != 0 {
		t.Fatalf("pre: exit code %d\n%s", r.code, r.stderr)
	}
	awaitHolderGone(t, h.HolderPID, 30*time.Second)
	assertMode(filepath.Join(runDir, "hold-"+holdKey([]string{"tank/expired"}, false))+".result", 0o600)
}

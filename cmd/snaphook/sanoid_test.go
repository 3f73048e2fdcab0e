package main

// TestSanoid runs the real sanoid (Debian's package, fetched with apt-get
// download and unpacked with dpkg -x) with snaphook pre and post as its
// pre_snapshot_script and post_snapshot_script, and a stand-in zfs
// (testdata/sanoid/zfs) that checks, at the moment of "zfs snapshot", that
// the hooks hold what they promise.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// sanoidUnavailable fails the test under SNAPHOOKS_REQUIRE_DB=1 (CI), where
// sanoid must be tested, and skips it elsewhere.
func sanoidUnavailable(t *testing.T, format string, a ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, a...)
	if os.Getenv("SNAPHOOKS_REQUIRE_DB") == "1" {
		t.Fatalf("sanoid is needed (SNAPHOOKS_REQUIRE_DB=1): %s", msg)
	}
	t.Skip(msg)
}

// sanoidBinary returns a sanoid script from Debian's package, unpacked into a
// cache directory (~/.cache/snaphooks-test/sanoid) on first use. The script
// reads its defaults from /usr/share/sanoid; the copy points at the unpacked
// ones instead, and is otherwise the package's.
func sanoidBinary(t *testing.T) string {
	t.Helper()
	if out, err := exec.Command("perl", "-MConfig::IniFiles", "-MCapture::Tiny", "-e", "1").CombinedOutput(); err != nil {
		sanoidUnavailable(t, "sanoid's Perl modules (libconfig-inifiles-perl, libcapture-tiny-perl): %v\n%s", err, out)
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "snaphooks-test", "sanoid")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil { // other test runs fetch it too
		t.Fatal(err)
	}
	script := filepath.Join(dir, "sanoid")
	if _, err := os.Stat(script); err == nil {
		return script
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dl := exec.CommandContext(ctx, "apt-get", "download", "sanoid")
	dl.Dir = dir
	if out, err := dl.CombinedOutput(); err != nil {
		sanoidUnavailable(t, "apt-get download sanoid: %v\n%s", err, out)
	}
	debs, _ := filepath.Glob(filepath.Join(dir, "sanoid_*.deb"))
	if len(debs) == 0 {
		sanoidUnavailable(t, "apt-get download sanoid left no sanoid_*.deb in %s", dir)
	}
	root := filepath.Join(dir, "root")
	if out, err := exec.CommandContext(ctx, "dpkg", "-x", debs[len(debs)-1], root).CombinedOutput(); err != nil {
		t.Fatalf("dpkg -x: %v\n%s", err, out)
	}
	src, err := os.ReadFile(filepath.Join(root, "usr/sbin/sanoid"))
	if err != nil {
		t.Fatal(err)
	}
	const defaults = `"/usr/share/sanoid/sanoid.defaults.conf"`
	if !strings.Contains(string(src), defaults) {
		t.Fatalf("the packaged sanoid does not read %s; update this test", defaults)
	}
	patched := strings.Replace(string(src), defaults, strconv.Quote(filepath.Join(root, "usr/share/sanoid/sanoid.defaults.conf")), 1)
	if err := os.WriteFile(script+".tmp", []byte(patched), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(script+".tmp", script); err != nil {
		t.Fatal(err)
	}
	return script
}

// holderPIDs finds "holder pid N" in pre's output.
var holderPIDRe = regexp.MustCompile(`holder pid (\d+)`)

func TestSanoid(t *testing.T) {
	sanoid := sanoidBinary(t)
	srv := startSplitServer(t)
	client, err := exec.LookPath("mariadb")
	if err != nil {
		if client, err = exec.LookPath("mysql"); err != nil {
			sanoidUnavailable(t, "no mariadb or mysql client for the stand-in zfs")
		}
	}
	standIn, err := filepath.Abs("testdata/sanoid")
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := os.ReadFile("testdata/sanoid/sanoid.conf.in")
	if err != nil {
		t.Fatal(err)
	}

	// runSanoid runs "sanoid --take-snapshots" with hooks cfg and returns
	// its output and the stand-in's trace.
	runSanoid := func(t *testing.T, e *splitEnv, cfg, marker string) (out, trace string) {
		t.Helper()
		dir := t.TempDir()
		confDir, traceFile := filepath.Join(dir, "conf"), filepath.Join(dir, "trace")
		if err := os.Mkdir(confDir, 0o700); err != nil {
			t.Fatal(err)
		}
		conf := strings.NewReplacer("@SNAPHOOK@", binary, "@HOOKS@", cfg).Replace(string(tmpl))
		if err := os.WriteFile(filepath.Join(confDir, "sanoid.conf"), []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(traceFile, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "perl", sanoid, "--take-snapshots", "--verbose", "--configdir="+confDir,
			"--cache-dir="+filepath.Join(dir, "cache"), "--run-dir="+filepath.Join(dir, "run"))
		cmd.Env = append(os.Environ(), e.env...)
		cmd.Env = append(cmd.Env, "PATH="+standIn+":"+os.Getenv("PATH"), "SPLIT_TRACE="+traceFile, "SPLIT_MARKER="+marker,
			"SPLIT_MYSQL="+client, "SPLIT_MYSQL_SOCKET="+srv.sock)
		b, err := cmd.CombinedOutput()
		if m := holderPIDRe.FindSubmatch(b); m != nil {
			pid, _ := strconv.Atoi(string(m[1]))
			t.Cleanup(func() { killHolder(t, pid) })
		}
		if err != nil {
			t.Fatalf("sanoid: %v\n%s", err, b)
		}
		return string(b), readFile(t, traceFile)
	}

	t.Run("lock_held_across_the_snapshots", func(t *testing.T) {
		e := newSplitEnv(t)
		cfg, marker := srv.lockConfig(t, t.TempDir())
		out, trace := runSanoid(t, e, cfg, marker)
		t.Logf("sanoid output:\n%s\nzfs trace:\n%s", out, trace)
		if strings.Contains(out, "WARN:") || strings.Contains(out, "CRITICAL") {
			t.Errorf("sanoid warned (a failed or slow script?):\n%s", out)
		}
		// Two snapshots (daily, hourly), each taken while the command hook's
		// marker was there and the lock blocked a writer.
		snaps := regexp.MustCompile(`(?m)^zfs snapshot tank/db@autosnap_\S+_(daily|hourly)\nmarker: present\ninsert: blocked$`).FindAllString(trace, -1)
		if len(snaps) != 2 {
			t.Errorf("want 2 snapshots taken under the hooks' protection, got %d; trace:\n%s", len(snaps), trace)
		}
		if !strings.Contains(out, "held: tank/db@autosnap_") || !strings.Contains(out, "ok: tank/db@autosnap_") {
			t.Errorf("sanoid's output lacks snaphook's held and ok lines:\n%s", out)
		}
		// After sanoid: the post edges ran, the lock is gone, and so is the holder.
		if exists(marker) {
			t.Errorf("the command hook's post edge did not run")
		}
		srv.requireUnlocked(t, "after sanoid")
		m := holderPIDRe.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("no holder pid in sanoid's output:\n%s", out)
		}
		pid, _ := strconv.Atoi(m[1])
		awaitHolderGone(t, pid, 10*time.Second)
	})

	t.Run("fatal_pre_error_makes_sanoid_skip_the_snapshot", func(t *testing.T) {
		e := newSplitEnv(t)
		dir := t.TempDir()
		cfg, marker := srv.lockConfig(t, dir)
		b, err := os.ReadFile(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(cfg, append(b, "- {type: command, path: /bin/false, err_is_fatal: true}\n"...), 0o600); err != nil {
			t.Fatal(err)
		}
		out, trace := runSanoid(t, e, cfg, marker)
		if strings.Contains(trace, "zfs snapshot") {
			t.Errorf("sanoid took a snapshot although pre failed:\n%s", trace)
		}
		if !strings.Contains(out, "WARN: pre_snapshot_script failed") || !strings.Contains(out, "snapshot skipped: tank/db@autosnap_") {
			t.Errorf("sanoid's output:\n%s", out)
		}
		if exists(marker) {
			t.Errorf("the command hook's post edge did not run when a later pre edge failed")
		}
		srv.requireUnlocked(t, "after the failed pre")
		if holderPIDRe.MatchString(out) {
			t.Errorf("a holder was left:\n%s", out)
		}
	})
}

package main

// Tests of "snaphook pre" and "snaphook post" against a private MariaDB
// server of each test: the lock under test is global to a server, so they do
// not share the server of scripts/test.sh with the library's tests, which run
// at the same time.

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

// splitServer is a private MariaDB server of one test.
type splitServer struct {
	dsn, user, password string  // a user with only RELOAD, over TCP
	root                *sql.DB // root over the unix socket
	sock                string  // the unix socket
}

// requireDBEnv returns the value of name, failing the test when it is unset
// and SNAPHOOKS_REQUIRE_DB=1 (scripts/test.sh, CI), skipping it otherwise.
func requireDBEnv(t *testing.T, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		if os.Getenv("SNAPHOOKS_REQUIRE_DB") == "1" {
			t.Fatalf("%s not set although SNAPHOOKS_REQUIRE_DB=1", name)
		}
		t.Skipf("%s not set; run scripts/test.sh", name)
	}
	return v
}

// startSplitServer starts a MariaDB server with its data in a temp dir, on a
// free port of 127.0.0.1, with a RELOAD-only user and a probe table; it is
// killed when the test ends.
func startSplitServer(t *testing.T) *splitServer {
	t.Helper()
	mariadbd := requireDBEnv(t, "SNAPHOOKS_TEST_MARIADBD")
	installDB := requireDBEnv(t, "SNAPHOOKS_TEST_MARIADB_INSTALL_DB")
	dir := t.TempDir()
	data, tmp := filepath.Join(dir, "data"), filepath.Join(dir, "tmp")
	sock, errLog := filepath.Join(dir, "my.sock"), filepath.Join(dir, "server.log")
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		t.Fatal(err)
	}
	common := []string{
		"--no-defaults", "--datadir=" + data, "--tmpdir=" + tmp,
		"--innodb-buffer-pool-size=32M", "--innodb-log-file-size=16M", "--performance-schema=OFF",
		"--skip-log-bin", "--skip-name-resolve",
	}
	if os.Geteuid() == 0 {
		common = append(common, "--user=root")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, installDB, append(common, "--auth-root-authentication-method=normal", "--skip-test-db")...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", installDB, err, out)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	srv := exec.Command(mariadbd, append(common, "--socket="+sock, fmt.Sprintf("--port=%d", port),
		"--bind-address=127.0.0.1", "--skip-networking=0", "--pid-file="+filepath.Join(dir, "my.pid"), "--log-error="+errLog)...)
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = srv.Wait(); close(exited) }()
	var once sync.Once
	t.Cleanup(func() {
		once.Do(func() {
			_ = srv.Process.Kill()
			<-exited
		})
	})
	root, err := sql.Open("mysql", "root@unix("+sock+")/")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { root.Close() })
	for {
		pctx, pcancel := context.WithTimeout(ctx, time.Second)
		err := root.PingContext(pctx)
		pcancel()
		if err == nil {
			break
		}
		select {
		case <-exited:
			log, _ := os.ReadFile(errLog)
			t.Fatalf("mariadbd exited before it was ready: %v\n%s", err, log)
		case <-ctx.Done():
			t.Fatalf("mariadbd not ready: %v", err)
		case <-time.After(50 * time.Millisecond):
		}
	}
	s := &splitServer{user: "snaphooks_split", password: "s3cret-split-hook", root: root, sock: sock}
	for _, q := range []string{
		fmt.Sprintf("CREATE USER '%s'@'127.0.0.1' IDENTIFIED BY '%s'", s.user, s.password),
		fmt.Sprintf("GRANT RELOAD ON *.* TO '%s'@'127.0.0.1'", s.user),
		"CREATE DATABASE probe",
		"CREATE TABLE probe.t (id INT AUTO_INCREMENT PRIMARY KEY, note VARCHAR(100)) ENGINE=InnoDB",
	} {
		if _, err := root.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	s.dsn = fmt.Sprintf("%s:%s@tcp(127.0.0.1:%d)/", s.user, s.password, port)
	return s
}

// tryInsert inserts a row, waiting at most a second for a lock.
func (s *splitServer) tryInsert(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := s.root.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "SET SESSION lock_wait_timeout = 1"); err != nil {
		return err
	}
	_, err = conn.ExecContext(ctx, "INSERT INTO probe.t (note) VALUES ('probe')")
	return err
}

// isLockWaitTimeout reports whether err is ER_LOCK_WAIT_TIMEOUT (1205).
func isLockWaitTimeout(err error) bool {
	var myErr *mysql.MySQLError
	return errors.As(err, &myErr) && myErr.Number == 1205
}

// requireLocked fails unless an INSERT times out waiting for the lock.
func (s *splitServer) requireLocked(t *testing.T, when string) {
	t.Helper()
	if err := s.tryInsert(context.Background()); !isLockWaitTimeout(err) {
		t.Fatalf("%s: INSERT from another session: got %v, want a lock wait timeout (1205)", when, err)
	}
}

// requireUnlocked waits until the hook user has no session left (the server
// may take a moment to notice a killed client) and then inserts a row.
func (s *splitServer) requireUnlocked(t *testing.T, when string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var n int
		if err := s.root.QueryRow("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = ?", s.user).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d sessions of %s remain", when, n, s.user)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := s.tryInsert(context.Background()); err != nil {
		t.Fatalf("%s: INSERT: %v", when, err)
	}
}

// lockConfig writes a config with a mysql-lock-tables hook for tank/db and a
// command hook that writes a marker in its pre edge and removes it in its
// post edge. The file is mode 0600: it holds a password.
func (s *splitServer) lockConfig(t *testing.T, dir string) (cfg, marker string) {
	t.Helper()
	marker = filepath.Join(dir, "frozen")
	hook := script(t, dir, "freeze", `case "$ZREPL_HOOKTYPE" in pre_snapshot) touch "`+marker+`";; post_snapshot) rm "`+marker+`";; esac`)
	cfg = filepath.Join(dir, "hooks.yml")
	yaml := fmt.Sprintf("- {type: command, path: %s}\n- {type: mysql-lock-tables, dsn: %q, filesystems: {\"tank/db\": true}, err_is_fatal: true}\n", hook, s.dsn)
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfg, marker
}

// requireNoPasswordInProcesses fails if any process's command line holds pw.
func requireNoPasswordInProcesses(t *testing.T, pw string) {
	t.Helper()
	files, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err == nil && bytes.Contains(b, []byte(pw)) {
			t.Errorf("%s shows the password: %q", f, bytes.ReplaceAll(b, []byte{0}, []byte{' '}))
		}
	}
}

func TestSplitMariaDB(t *testing.T) {
	srv := startSplitServer(t)

	t.Run("lock_held_across_pre_and_post", func(t *testing.T) {
		e := newSplitEnv(t)
		cfg, marker := srv.lockConfig(t, t.TempDir())
		r, held := e.pre(t, nil, "-c", cfg, "--fs", "tank/db", "--snapshot", "s1", "--max-hold", "10m")
		if r.code != 0 {
			t.Fatalf("pre: exit code %d\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		if !exists(marker) {
			t.Errorf("the command hook's pre edge did not run")
		}
		srv.requireLocked(t, "after pre")
		requireNoPasswordInProcesses(t, srv.password)

		// A writer without a short lock wait blocks until post.
		inserted := make(chan error, 1)
		go func() {
			_, err := srv.root.Exec("INSERT INTO probe.t (note) VALUES ('blocked')")
			inserted <- err
		}()
		deadline := time.Now().Add(30 * time.Second)
		for {
			var n int
			if err := srv.root.QueryRow("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE 'INSERT INTO probe.t%blocked%' AND STATE LIKE 'Waiting%'").Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n == 1 {
				break
			}
			select {
			case err := <-inserted:
				t.Fatalf("the INSERT was not blocked by the hold: %v", err)
			default:
			}
			if time.Now().After(deadline) {
				t.Fatal("the INSERT never showed up waiting")
			}
			time.Sleep(20 * time.Millisecond)
		}
		p := e.post(t, nil, "--fs", "tank/db")
		if p.code != 0 {
			t.Fatalf("post: exit code %d\n%s\n%s", p.code, p.stdout, p.stderr)
		}
		if err := <-inserted; err != nil {
			t.Errorf("the blocked INSERT after post: %v", err)
		}
		if exists(marker) {
			t.Errorf("the command hook's post edge did not run")
		}
		for _, want := range []string{"[Ok]", "MySQL FLUSH TABLES WITH READ LOCK", "ok: tank/db@s1"} {
			if !strings.Contains(p.stdout, want) {
				t.Errorf("post report lacks %q:\n%s", want, p.stdout)
			}
		}
		awaitHolderGone(t, held.HolderPID, 10*time.Second)
		srv.requireUnlocked(t, "after post")
		logs, _ := filepath.Glob(filepath.Join(e.dir, "*"))
		for _, out := range append([]string{r.stdout, r.stderr, p.stdout, p.stderr}, logs...) {
			if b, err := os.ReadFile(out); err == nil {
				out = string(b)
			}
			if strings.Contains(out, srv.password) {
				t.Errorf("the password shows up in output or logs:\n%s", out)
			}
		}
	})

	t.Run("released_by_the_dead_man_switch", func(t *testing.T) {
		e := newSplitEnv(t)
		cfg, marker := srv.lockConfig(t, t.TempDir())
		r, held := e.pre(t, nil, "-c", cfg, "--fs", "tank/db", "--snapshot", "s1", "--max-hold", "2s")
		if r.code != 0 {
			t.Fatalf("pre: exit code %d\n%s", r.code, r.stderr)
		}
		// That the lock was taken is in pre's report (whether it is still
		// held when the test looks depends on the machine's speed).
		if got := strings.Join(held.statuses(), " "); got != "Pre:Ok Pre:Ok Callback:Exec Post:Pending Post:Pending" {
			t.Fatalf("pre steps %s", got)
		}
		awaitHolderGone(t, held.HolderPID, time.Minute)
		srv.requireUnlocked(t, "after the hold expired")
		if exists(marker) {
			t.Errorf("the command hook's post edge did not run on expiry")
		}
		p := e.post(t, nil, "--fs", "tank/db", "--json")
		if p.code != exitSnapshotFailed {
			t.Fatalf("post: exit code %d\n%s", p.code, p.stderr)
		}
		var j struct {
			heldOutput
			Expired  bool `json:"expired"`
			ExitCode int  `json:"exit_code"`
		}
		if err := json.Unmarshal([]byte(p.stdout), &j); err != nil || !j.Expired || j.ExitCode != 2 || !strings.HasPrefix(j.Result, "hold expired: tank/db@s1") {
			t.Errorf("post --json (%v):\n%s", err, p.stdout)
		}
		if got := strings.Join(j.statuses(), " "); got != "Pre:Ok Pre:Ok Callback:Err Post:Ok Post:Ok" {
			t.Errorf("steps after expiry: %s", got)
		}
	})

	t.Run("released_by_the_server_when_the_holder_is_killed", func(t *testing.T) {
		e := newSplitEnv(t)
		cfg, marker := srv.lockConfig(t, t.TempDir())
		r, held := e.pre(t, nil, "-c", cfg, "--fs", "tank/db", "--max-hold", "10m")
		if r.code != 0 {
			t.Fatalf("pre: exit code %d\n%s", r.code, r.stderr)
		}
		srv.requireLocked(t, "after pre")
		if err := syscall.Kill(held.HolderPID, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		awaitHolderGone(t, held.HolderPID, 10*time.Second)
		srv.requireUnlocked(t, "after kill -9 of the holder")
		// What the server cannot undo: the command hook's pre edge.
		if !exists(marker) {
			t.Errorf("the marker of the command hook is gone; a kill -9 runs no post edge")
		}
		p := e.post(t, nil, "--fs", "tank/db")
		if p.code != exitSnapshotFailed || !strings.Contains(p.stderr, "no hold for tank/db") {
			t.Errorf("post: exit code %d\n%s", p.code, p.stderr)
		}
		// The dead holder's lock is gone with it: a new pre may hold.
		r2, _ := e.pre(t, nil, "-c", cfg, "--fs", "tank/db")
		if r2.code != 0 {
			t.Fatalf("pre after the kill: exit code %d\n%s", r2.code, r2.stderr)
		}
		if p := e.post(t, nil, "--fs", "tank/db"); p.code != 0 {
			t.Errorf("post: exit code %d\n%s", p.code, p.stderr)
		}
		srv.requireUnlocked(t, "after post")
	})

	t.Run("only_the_own_runs_post_releases_the_lock", func(t *testing.T) {
		e := newSplitEnv(t)
		dir := t.TempDir()
		cfg, _ := srv.lockConfig(t, dir)
		r, held := e.pre(t, nil, "-c", cfg, "--fs", "tank/db", "--snapshot", "A", "--max-hold", "10m")
		if r.code != 0 {
			t.Fatalf("pre A: exit code %d\n%s", r.code, r.stderr)
		}
		srv.requireLocked(t, "after pre A")
		// B, started by the same process after A, overlaps: refused; its
		// post releases nothing.
		for _, args := range [][]string{{"--fs", "tank/db"}, {"-r", "--fs", "tank"}} {
			if r, _ := e.pre(t, nil, append([]string{"-c", cfg}, args...)...); r.code != exitSnapshotFailed {
				t.Fatalf("pre B %q: exit code %d\n%s", args, r.code, r.stderr)
			}
			if p := e.post(t, nil, args...); p.code != exitSnapshotFailed {
				t.Errorf("post B %q: exit code %d\n%s", args, p.code, p.stderr)
			}
			srv.requireLocked(t, fmt.Sprintf("after B's post %q", args))
		}
		// Another run's post (a script's shell) releases nothing.
		other := runSnaphook2(t, e, "/bin/bash", script(t, dir, "other.sh", binary+" post --fs tank/db\n"))
		if other.code != exitSnapshotFailed || !strings.Contains(other.stderr, "held by another run") {
			t.Errorf("post of another run: exit code %d\n%s", other.code, other.stderr)
		}
		srv.requireLocked(t, "after another run's post")
		if p := e.post(t, nil, "--fs", "tank/db", "--snapshot", "A"); p.code != 0 {
			t.Fatalf("post A: exit code %d\n%s", p.code, p.stderr)
		}
		srv.requireUnlocked(t, "after post A")
		awaitHolderGone(t, held.HolderPID, 10*time.Second)
	})

	t.Run("peer_of_another_uid_refused", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("needs root to run a client as nobody")
		}
		e := newSplitEnv(t)
		cfg, _ := srv.lockConfig(t, t.TempDir())
		r, held := e.pre(t, nil, "-c", cfg, "--fs", "tank/db", "--max-hold", "10m")
		if r.code != 0 {
			t.Fatalf("pre: exit code %d\n%s", r.code, r.stderr)
		}
		sock := filepath.Join(e.dir, "hold-"+holdKey([]string{"tank/db"}, false)+".sock")
		nobody := &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}

		// snaphook post as nobody: the directory is not its own.
		post := exec.Command(binaryForNobody(t), "post", "--fs", "tank/db")
		post.Env = append([]string{"PATH=/usr/bin:/bin"}, e.env...)
		post.SysProcAttr = nobody
		out, _ := post.CombinedOutput()
		if post.ProcessState.ExitCode() != exitUsage || !strings.Contains(string(out), "is owned by uid 0, not by uid 65534") {
			t.Errorf("post as nobody: exit code %d\n%s", post.ProcessState.ExitCode(), out)
		}

		// A client of uid nobody that can pass the directory's permissions
		// (CAP_DAC_OVERRIDE) reaches the socket, and the holder refuses it.
		client := exec.Command("perl", "-MIO::Socket::UNIX", "-e",
			`$SIG{PIPE} = "IGNORE"; my $s = IO::Socket::UNIX->new(Peer => $ARGV[0]) or die "connect: $!\n"; print $s qq({"post":{"pid":$$}}\n); print while <$s>;`, sock)
		client.SysProcAttr = &syscall.SysProcAttr{
			Credential:  nobody.Credential,
			AmbientCaps: []uintptr{1}, // CAP_DAC_OVERRIDE
		}
		out, err := client.CombinedOutput()
		if err != nil || !strings.Contains(string(out), `"error":"refused: peer uid 65534 is not the holder's uid 0"`) {
			t.Errorf("client as nobody: %v\n%s", err, out)
		}
		srv.requireLocked(t, "after the refused client")
		if !holderAlive(held.HolderPID) {
			t.Fatal("the refused client ended the hold")
		}
		if p := e.post(t, nil, "--fs", "tank/db"); p.code != 0 || !strings.Contains(p.stdout, "ok: tank/db@") {
			t.Errorf("post as root: exit code %d\n%s\n%s", p.code, p.stdout, p.stderr)
		}
		srv.requireUnlocked(t, "after post")
	})
}

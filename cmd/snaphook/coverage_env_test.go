package main

// The world of the coverage tests: one btrfs filesystem on a loop device,
// with the subvolumes tank, tank/db and tank/log, of which tank/db and
// tank/log are mounted on their own (-o subvol=), and on them a MariaDB
// server (datadir on tank/db, redo log on tank/log) and a PostgreSQL server
// (data directory on tank/db, WAL on tank/log by initdb --waldir). All of it
// is undone when the test ends, also when it fails.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// coverageWorld is the subvolumes and the servers on them.
type coverageWorld struct {
	dir      string // the test's directory, 0755: the postgres user reaches into it
	db, log  string // mount points of tank/db and tank/log
	myDSN    string // RELOAD only, over TCP
	myData   string // datadir, on tank/db
	myRedo   string // innodb_log_group_home_dir, on tank/log
	pgLink   string // the data directory as the server was given it: a symbolic link into tank/db
	pgDSN    string // pg_checkpoint and pg_read_all_settings, over TCP
	pgNoRead string // pg_checkpoint only: may not read data_directory
}

// mustRun runs name with args, bounded by two minutes, and fails the test with
// its output if it fails.
func mustRun(t *testing.T, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// newCoverageWorld makes the filesystem and starts both servers.
func newCoverageWorld(t *testing.T) *coverageWorld {
	t.Helper()
	mariadbd := requireDBEnv(t, "SNAPHOOKS_TEST_MARIADBD")
	installDB := requireDBEnv(t, "SNAPHOOKS_TEST_MARIADB_INSTALL_DB")
	pgBin := requireDBEnv(t, "SNAPHOOKS_TEST_PG_BIN")
	if os.Geteuid() != 0 {
		t.Fatal("the coverage tests mount a btrfs filesystem: run them as root (scripts/test.sh)")
	}
	dir, err := os.MkdirTemp("", "snaphooks-coverage-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	w := &coverageWorld{dir: dir, db: filepath.Join(dir, "db"), log: filepath.Join(dir, "log")}
	w.mountSubvolumes(t)
	w.startMariaDB(t, mariadbd, installDB)
	w.startPostgres(t, pgBin)
	return w
}

// mountSubvolumes makes the btrfs filesystem on a sparse file and mounts
// tank/db and tank/log apart.
func (w *coverageWorld) mountSubvolumes(t *testing.T) {
	t.Helper()
	img := filepath.Join(w.dir, "btrfs.img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(1 << 30); err != nil { // sparse: holds what the servers write
		t.Fatal(err)
	}
	f.Close()
	mustRun(t, "mkfs.btrfs", "-q", "-f", img)
	loop := mustRun(t, "losetup", "--find", "--show", img)
	t.Cleanup(func() {
		if out, err := exec.Command("losetup", "-d", loop).CombinedOutput(); err != nil {
			t.Errorf("losetup -d %s: %v\n%s", loop, err, out)
		}
	})
	top := filepath.Join(w.dir, "top")
	for _, d := range []string{top, w.db, w.log} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	mustRun(t, "mount", "-t", "btrfs", loop, top)
	for _, sv := range []string{"tank", "tank/db", "tank/log"} {
		if out, err := exec.Command("btrfs", "-q", "subvolume", "create", filepath.Join(top, sv)).CombinedOutput(); err != nil {
			_ = exec.Command("umount", top).Run()
			t.Fatalf("btrfs subvolume create %s: %v\n%s", sv, err, out)
		}
	}
	mustRun(t, "umount", top)
	for _, m := range []struct{ sv, at string }{{"tank/db", w.db}, {"tank/log", w.log}} {
		mustRun(t, "mount", "-t", "btrfs", "-o", "subvol="+m.sv, loop, m.at)
		at := m.at
		t.Cleanup(func() {
			if out, err := exec.Command("umount", at).CombinedOutput(); err != nil {
				t.Errorf("umount %s: %v\n%s", at, err, out)
			}
		})
		if err := os.Chmod(m.at, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

// freePort returns a port of 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startServer starts a server process and stops it with sig when the test
// ends (before the subvolumes are unmounted), waiting for it to exit. ready
// is polled until it succeeds, the process exits, or a minute passed.
func startServer(t *testing.T, what string, cmd *exec.Cmd, logPath string, sig syscall.Signal, ready func(context.Context) error) {
	t.Helper()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", what, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(sig)
		select {
		case <-exited:
		case <-time.After(time.Minute):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for {
		pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
		err := ready(pctx)
		pcancel()
		if err == nil {
			return
		}
		select {
		case <-exited:
			log, _ := os.ReadFile(logPath)
			t.Fatalf("%s exited before it was ready: %v\n%s", what, err, log)
		case <-ctx.Done():
			t.Fatalf("%s not ready: %v", what, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (w *coverageWorld) startMariaDB(t *testing.T, mariadbd, installDB string) {
	t.Helper()
	w.myData, w.myRedo = filepath.Join(w.db, "mysql"), filepath.Join(w.log, "mysql-redo")
	run := filepath.Join(w.dir, "my-run")
	for _, d := range []string{w.myData, w.myRedo, run} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	common := []string{
		"--no-defaults", "--user=root", "--datadir=" + w.myData, "--innodb-log-group-home-dir=" + w.myRedo,
		"--tmpdir=" + run, "--innodb-buffer-pool-size=32M", "--innodb-log-file-size=16M",
		"--performance-schema=OFF", "--skip-log-bin", "--skip-name-resolve",
	}
	mustRun(t, installDB, append(common, "--auth-root-authentication-method=normal", "--skip-test-db")...)
	sock, logPath, port := filepath.Join(run, "my.sock"), filepath.Join(run, "server.log"), freePort(t)
	cmd := exec.Command(mariadbd, append(common, "--socket="+sock, fmt.Sprintf("--port=%d", port),
		"--bind-address=127.0.0.1", "--skip-networking=0", "--pid-file="+filepath.Join(run, "my.pid"), "--log-error="+logPath)...)
	root, err := sql.Open("mysql", "root@unix("+sock+")/")
	if err != nil {
		t.Fatal(err)
	}
	startServer(t, "mariadbd", cmd, logPath, syscall.SIGTERM, root.PingContext)
	t.Cleanup(func() { root.Close() }) // runs before the server stops
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, q := range []string{
		"CREATE USER 'cov'@'127.0.0.1' IDENTIFIED BY 's3cret-cov-my'",
		"GRANT RELOAD ON *.* TO 'cov'@'127.0.0.1'",
	} {
		if _, err := root.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	w.myDSN = fmt.Sprintf("cov:s3cret-cov-my@tcp(127.0.0.1:%d)/", port)
}

func (w *coverageWorld) startPostgres(t *testing.T, pgBin string) {
	t.Helper()
	parent, walParent := filepath.Join(w.db, "pg"), filepath.Join(w.log, "pg")
	run := filepath.Join(w.dir, "pg-run")
	for _, d := range []string{parent, walParent, run} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
		mustRun(t, "chown", "postgres:postgres", d)
	}
	data := filepath.Join(parent, "data")
	mustRun(t, "runuser", "-u", "postgres", "--", filepath.Join(pgBin, "initdb"), "-D", data, "--waldir="+filepath.Join(walParent, "wal"),
		"-U", "cov_admin", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync")
	// The server is given its data directory by a symbolic link, which it
	// reports as data_directory: removing the link later makes the server
	// look like one of another host (its directory is nowhere here).
	w.pgLink = filepath.Join(w.dir, "pgdata")
	if err := os.Symlink(data, w.pgLink); err != nil {
		t.Fatal(err)
	}
	port, logPath := freePort(t), filepath.Join(run, "server.log")
	cmd := exec.Command("setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--",
		filepath.Join(pgBin, "postgres"), "-D", w.pgLink, "-c", "listen_addresses=127.0.0.1", "-c", fmt.Sprintf("port=%d", port),
		"-c", "unix_socket_directories="+run, "-c", "fsync=off", "-c", "shared_buffers=16MB", "-c", "max_connections=20")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logFile.Close() })
	cmd.Stdout, cmd.Stderr = logFile, logFile
	admin := fmt.Sprintf("postgres://cov_admin@127.0.0.1:%d/postgres?sslmode=disable", port)
	startServer(t, "postgres", cmd, logPath, syscall.SIGINT, func(ctx context.Context) error {
		conn, err := pgx.Connect(ctx, admin)
		if err != nil {
			return err
		}
		return conn.Close(ctx)
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, q := range []string{
		"CREATE ROLE cov LOGIN", "GRANT pg_checkpoint, pg_read_all_settings TO cov",
		"CREATE ROLE cov_noread LOGIN", "GRANT pg_checkpoint TO cov_noread",
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	w.pgDSN = fmt.Sprintf("postgres://cov@127.0.0.1:%d/postgres?sslmode=disable", port)
	w.pgNoRead = fmt.Sprintf("postgres://cov_noread@127.0.0.1:%d/postgres?sslmode=disable", port)
}

// hidePostgresDir removes the link by which the PostgreSQL server knows its
// data directory until the test ends: meanwhile the server looks like one of
// another host. The server itself works in its data directory by relative
// paths, but a checkpoint would not survive it: ask it, do not let it write.
func (w *coverageWorld) hidePostgresDir(t *testing.T) {
	t.Helper()
	target, err := os.Readlink(w.pgLink)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(w.pgLink); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.Symlink(target, w.pgLink); err != nil && !errors.Is(err, os.ErrExist) {
			t.Errorf("restore %s: %v", w.pgLink, err)
		}
	})
}

package hooks

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// testUser is a user made for a test.
type testUser struct {
	name     string
	uid, gid int
}

// newTestUser makes a user without a home and a login shell, removed when
// the test ends. It needs root.
func newTestUser(t *testing.T) testUser {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("making a user needs root (CI runs the tests as root)")
	}
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	name := "shtrust" + hex.EncodeToString(b)
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
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return testUser{name: name, uid: uid, gid: gid}
}

// trustDir returns a new directory of mode 0755 that every user can reach
// (t.TempDir's parent is private to root), removed when the test ends.
func trustDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "trust-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// mkfile writes a file at path with mode (umask aside) and returns path.
func mkfile(t *testing.T, path string, mode os.FileMode, body string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	return path
}

// mkdir makes a directory at path with mode (umask aside; 0o1000 is the
// sticky bit) and returns path.
func mkdir(t *testing.T, path string, mode os.FileMode) string {
	t.Helper()
	if mode&0o1000 != 0 {
		mode = mode&^0o1000 | os.ModeSticky
	}
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	return path
}

func chown(t *testing.T, path string, u testUser) {
	t.Helper()
	if err := os.Lchown(path, u.uid, u.gid); err != nil {
		t.Fatal(err)
	}
}

func symlink(t *testing.T, target, link string) string {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	return link
}

// faults returns the paths of the *TrustErrors in errs, and fails on any
// other error.
func faults(t *testing.T, errs []error) []string {
	t.Helper()
	paths := []string{}
	for _, err := range errs {
		var te *TrustError
		if !errors.As(err, &te) {
			t.Errorf("not a *TrustError: %v", err)
			continue
		}
		paths = append(paths, te.Path)
	}
	return paths
}

func TestCheckTrust(t *testing.T) {
	other := newTestUser(t)
	script := "#!/bin/sh\nexit 0\n"
	// Each case builds files in its own directory (mode 0755, owned by
	// root) and returns the hook list's path, a hook's path, and the paths
	// that must be at fault.
	cases := []struct {
		name  string
		build func(t *testing.T, dir string) (list, hook string, want []string)
	}{
		{"safe_modes_accepted", func(t *testing.T, dir string) (string, string, []string) {
			d := mkdir(t, filepath.Join(dir, "etc"), 0o755)
			return mkfile(t, filepath.Join(d, "hooks.yml"), 0o644, ""), mkfile(t, filepath.Join(d, "hook.sh"), 0o755, script), nil
		}},
		{"private_modes_accepted", func(t *testing.T, dir string) (string, string, []string) {
			d := mkdir(t, filepath.Join(dir, "etc"), 0o700)
			return mkfile(t, filepath.Join(d, "hooks.yml"), 0o600, ""), mkfile(t, filepath.Join(d, "hook.sh"), 0o700, script), nil
		}},
		{"world_writable_list_refused", func(t *testing.T, dir string) (string, string, []string) {
			l := mkfile(t, filepath.Join(dir, "hooks.yml"), 0o666, "")
			return l, mkfile(t, filepath.Join(dir, "hook.sh"), 0o755, script), []string{l}
		}},
		{"world_writable_hook_refused", func(t *testing.T, dir string) (string, string, []string) {
			h := mkfile(t, filepath.Join(dir, "hook.sh"), 0o757, script)
			return mkfile(t, filepath.Join(dir, "hooks.yml"), 0o644, ""), h, []string{h}
		}},
		{"group_writable_hook_refused", func(t *testing.T, dir string) (string, string, []string) {
			h := mkfile(t, filepath.Join(dir, "hook.sh"), 0o775, script)
			return mkfile(t, filepath.Join(dir, "hooks.yml"), 0o644, ""), h, []string{h}
		}},
		{"world_writable_parent_dir_refused_once", func(t *testing.T, dir string) (string, string, []string) {
			d := mkdir(t, filepath.Join(dir, "open"), 0o777)
			return mkfile(t, filepath.Join(d, "hooks.yml"), 0o644, ""), mkfile(t, filepath.Join(d, "hook.sh"), 0o755, script), []string{d}
		}},
		{"group_writable_grandparent_dir_refused", func(t *testing.T, dir string) (string, string, []string) {
			g := mkdir(t, filepath.Join(dir, "g"), 0o775)
			d := mkdir(t, filepath.Join(g, "etc"), 0o755)
			return mkfile(t, filepath.Join(d, "hooks.yml"), 0o644, ""), mkfile(t, filepath.Join(d, "hook.sh"), 0o755, script), []string{g}
		}},
		{"file_of_other_user_refused", func(t *testing.T, dir string) (string, string, []string) {
			l := mkfile(t, filepath.Join(dir, "hooks.yml"), 0o644, "")
			chown(t, l, other)
			return l, mkfile(t, filepath.Join(dir, "hook.sh"), 0o755, script), []string{l}
		}},
		{"dir_of_other_user_refused", func(t *testing.T, dir string) (string, string, []string) {
			d := mkdir(t, filepath.Join(dir, "theirs"), 0o755)
			chown(t, d, other)
			return mkfile(t, filepath.Join(dir, "hooks.yml"), 0o644, ""), mkfile(t, filepath.Join(d, "hook.sh"), 0o755, script), []string{d}
		}},
		{"symlink_to_writable_file_refused", func(t *testing.T, dir string) (string, string, []string) {
			real := mkfile(t, filepath.Join(dir, "real.sh"), 0o777, script)
			return mkfile(t, filepath.Join(dir, "hooks.yml"), 0o644, ""), symlink(t, "real.sh", filepath.Join(dir, "hook.sh")), []string{real}
		}},
		{"symlink_into_writable_dir_refused", func(t *testing.T, dir string) (string, string, []string) {
			d := mkdir(t, filepath.Join(dir, "open"), 0o777)
			mkfile(t, filepath.Join(d, "real.sh"), 0o755, script)
			return mkfile(t, filepath.Join(dir, "hooks.yml"), 0o644, ""), symlink(t, "open/real.sh", filepath.Join(dir, "hook.sh")), []string{d}
		}},
		{"symlink_in_writable_dir_refused", func(t *testing.T, dir string) (string, string, []string) {
			safe := mkdir(t, filepath.Join(dir, "safe"), 0o755)
			real := mkfile(t, filepath.Join(safe, "real.sh"), 0o755, script)
			d := mkdir(t, filepath.Join(dir, "open"), 0o777)
			return mkfile(t, filepath.Join(dir, "hooks.yml"), 0o644, ""), symlink(t, real, filepath.Join(d, "hook.sh")), []string{d}
		}},
		{"symlinked_dir_with_dotdot_judged_by_target", func(t *testing.T, dir string) (string, string, []string) {
			open := mkdir(t, filepath.Join(dir, "open"), 0o757)
			sub := mkdir(t, filepath.Join(open, "sub"), 0o755)
			mkfile(t, filepath.Join(open, "hook.sh"), 0o755, script)
			link := symlink(t, sub, filepath.Join(dir, "link"))
			return mkfile(t, filepath.Join(dir, "hooks.yml"), 0o644, ""), link + "/../hook.sh", []string{open}
		}},
		{"sticky_dir_root_file_accepted", func(t *testing.T, dir string) (string, string, []string) {
			d := mkdir(t, filepath.Join(dir, "tmp"), 0o1777)
			return mkfile(t, filepath.Join(d, "hooks.yml"), 0o600, ""), mkfile(t, filepath.Join(d, "hook.sh"), 0o755, script), nil
		}},
		{"sticky_dir_other_users_file_refused", func(t *testing.T, dir string) (string, string, []string) {
			d := mkdir(t, filepath.Join(dir, "tmp"), 0o1777)
			h := mkfile(t, filepath.Join(d, "hook.sh"), 0o755, script)
			chown(t, h, other)
			return mkfile(t, filepath.Join(d, "hooks.yml"), 0o600, ""), h, []string{h}
		}},
		{"sticky_dir_other_users_symlink_refused", func(t *testing.T, dir string) (string, string, []string) {
			d := mkdir(t, filepath.Join(dir, "tmp"), 0o1777)
			real := mkfile(t, filepath.Join(dir, "real.sh"), 0o755, script)
			link := symlink(t, real, filepath.Join(d, "hook.sh"))
			chown(t, link, other)
			return mkfile(t, filepath.Join(dir, "hooks.yml"), 0o644, ""), link, []string{link}
		}},
		{"sticky_dir_of_other_user_refused", func(t *testing.T, dir string) (string, string, []string) {
			d := mkdir(t, filepath.Join(dir, "tmp"), 0o1777)
			chown(t, d, other)
			return mkfile(t, filepath.Join(d, "hooks.yml"), 0o644, ""), mkfile(t, filepath.Join(dir, "hook.sh"), 0o755, script), []string{d}
		}},
		{"missing_hook_judged_by_its_dirs", func(t *testing.T, dir string) (string, string, []string) {
			d := mkdir(t, filepath.Join(dir, "open"), 0o777)
			return mkfile(t, filepath.Join(dir, "hooks.yml"), 0o644, ""), filepath.Join(d, "missing", "hook.sh"), []string{d}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := trustDir(t)
			listPath, hookPath, want := tc.build(t, dir)
			list := HookList{{Type: TypeCommand, Path: "/bin/true"}, {Type: TypeCommand, Path: hookPath}}
			errs := CheckTrust(listPath, list)
			got := faults(t, errs)
			if want == nil {
				want = []string{}
			}
			if !slices.Equal(got, want) {
				t.Errorf("paths at fault %q, want %q; errors:\n%v", got, want, errors.Join(errs...))
			}
		})
	}
}

func TestTrustErrorText(t *testing.T) {
	other := newTestUser(t)
	dir := trustDir(t)
	open := mkdir(t, filepath.Join(dir, "open dir"), 0o777)
	h := mkfile(t, filepath.Join(open, "hook.sh"), 0o666, "")
	chown(t, h, other)
	link := symlink(t, h, filepath.Join(dir, "hook"))
	l := mkfile(t, filepath.Join(dir, "hooks.yml"), 0o664, "")

	errs := CheckTrust(l, HookList{{Type: TypeCommand, Path: link}})
	want := []string{
		"hook list: " + l + ": owner root, mode 0664: writable by group: chmod go-w " + l,
		"hook #1: " + open + " (a directory on the path of " + link + "): owner root, mode 0777: writable by group and others: chmod go-w '" + open + "'",
		"hook #1: " + h + " (the target of " + link + "): owner " + other.name + ", mode 0666: owned by " + other.name + ", not by root, writable by group and others: chown root '" + h + "' && chmod go-w '" + h + "'",
	}
	var got []string
	for _, err := range errs {
		got = append(got, err.Error())
	}
	if !slices.Equal(got, want) {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	var te *TrustError
	if len(errs) < 3 || !errors.As(errs[2], &te) || te.UID != uint32(other.uid) || te.Owner != other.name || te.Mode.Perm() != 0o666 || te.Of != link {
		t.Errorf("TrustError fields: %+v", te)
	}
}

func TestCheckFileTrust(t *testing.T) {
	dir := trustDir(t)
	safe := mkfile(t, filepath.Join(dir, "safe"), 0o755, "")
	open := mkfile(t, filepath.Join(dir, "open"), 0o777, "")
	if errs := CheckFileTrust(safe); len(errs) != 0 {
		t.Errorf("CheckFileTrust(%s) = %v", safe, errs)
	}
	if got := faults(t, CheckFileTrust(open)); !slices.Equal(got, []string{open}) {
		t.Errorf("CheckFileTrust(%s) at fault: %q", open, got)
	}
}

func TestCheckPasswordPrivacy(t *testing.T) {
	t.Setenv("PGPASSWORD", "from-the-environment")
	cases := []struct {
		name string
		mode os.FileMode
		hook HookConfig
		want string // "" for no warning
	}{
		{"pg_keyword_password_in_0644_list_warned", 0o644, HookConfig{Type: TypePostgresCheckpoint, DSN: "host=db user=u password=hunter2"}, "is readable by group and others and holds a password (hook #2): chmod 600 "},
		{"pg_url_password_in_0640_list_warned", 0o640, HookConfig{Type: TypePostgresCheckpoint, DSN: "postgres://u:hunter2@db/x"}, "is readable by group and holds a password (hook #2)"},
		{"pg_url_password_parameter_warned", 0o604, HookConfig{Type: TypePostgresCheckpoint, DSN: "postgres://u@db/x?password=hunter2"}, "is readable by others and holds a password"},
		{"mysql_password_in_0644_list_warned", 0o644, HookConfig{Type: TypeMySQLLockTables, DSN: "u:hunter2@tcp(db:3306)/"}, "holds a password"},
		{"mariadb_password_in_0644_list_warned", 0o644, HookConfig{Type: TypeMariaDBBackupStage, DSN: "u:hunter2@tcp(db:3306)/"}, "holds a password"},
		{"password_in_0600_list_silent", 0o600, HookConfig{Type: TypeMySQLLockTables, DSN: "u:hunter2@tcp(db:3306)/"}, ""},
		{"pg_password_from_environment_silent", 0o644, HookConfig{Type: TypePostgresCheckpoint, DSN: "host=db user=u"}, ""},
		{"pg_url_password_from_environment_silent", 0o644, HookConfig{Type: TypePostgresCheckpoint, DSN: "postgres://u@db/x"}, ""},
		{"mysql_without_password_silent", 0o644, HookConfig{Type: TypeMySQLLockTables, DSN: "u@unix(/run/mysqld/mysqld.sock)/"}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := mkfile(t, filepath.Join(t.TempDir(), "hooks.yml"), tc.mode, "")
			list := HookList{{Type: TypeCommand, Path: "/bin/true"}, tc.hook}
			err := CheckPasswordPrivacy(path, list)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("warned: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("got %v, want a warning with %q", err, tc.want)
			case err != nil && strings.Contains(err.Error(), "hunter2"):
				t.Errorf("the warning shows the password: %v", err)
			}
		})
	}
	if err := CheckPasswordPrivacy("", HookList{{Type: TypeMySQLLockTables, DSN: "u:p@tcp(db:3306)/"}}); err != nil {
		t.Errorf("no file: %v", err)
	}
}

// trustAsEnv names the file that TestCheckTrustAsUserProcess checks.
const trustAsEnv = "SNAPHOOKS_TRUST_AS_PATH"

// TestCheckTrustAsUserProcess is not a test of its own: TestCheckTrustAsUser
// runs the test binary as another user with it, and it prints the paths at
// fault of the file in $SNAPHOOKS_TRUST_AS_PATH as JSON.
func TestCheckTrustAsUserProcess(t *testing.T) {
	path := os.Getenv(trustAsEnv)
	if path == "" {
		return
	}
	var faults []string
	for _, err := range CheckFileTrust(path) {
		var te *TrustError
		if !errors.As(err, &te) {
			faults = append(faults, "error: "+err.Error())
			continue
		}
		faults = append(faults, te.Path+" "+te.Reason)
	}
	b, _ := json.Marshal(faults)
	fmt.Printf("FAULTS %s\n", b)
}

func TestCheckTrustAsUser(t *testing.T) {
	alice := newTestUser(t)
	bob := newTestUser(t)
	dir := trustDir(t)
	// A copy of the test binary that alice may run.
	b, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	bin := mkfile(t, filepath.Join(dir, "hooks.test"), 0o755, string(b))

	own := mkfile(t, filepath.Join(dir, "own.sh"), 0o755, "")
	chown(t, own, alice)
	ownOpen := mkfile(t, filepath.Join(dir, "own-open.sh"), 0o777, "")
	chown(t, ownOpen, alice)
	ownDir := mkdir(t, filepath.Join(dir, "alice"), 0o755)
	chown(t, ownDir, alice)
	inOwnDir := mkfile(t, filepath.Join(ownDir, "hook.sh"), 0o755, "")
	bobs := mkfile(t, filepath.Join(dir, "bob.sh"), 0o755, "")
	chown(t, bobs, bob)
	cases := []struct {
		name, path string
		want       []string
	}{
		{"own_file_accepted", own, nil},
		{"roots_file_accepted", mkfile(t, filepath.Join(dir, "root.sh"), 0o755, ""), nil},
		{"roots_file_in_own_dir_accepted", inOwnDir, nil},
		{"own_writable_file_refused", ownOpen, []string{ownOpen + " writable by group and others"}},
		{"other_users_file_refused", bobs, []string{bobs + " owned by " + bob.name + ", not by root or " + alice.name}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(bin, "-test.run=^TestCheckTrustAsUserProcess$")
			cmd.Env = append(os.Environ(), trustAsEnv+"="+tc.path)
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(alice.uid), Gid: uint32(alice.gid)}}
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			_, line, ok := strings.Cut(string(out), "FAULTS ")
			line, _, _ = strings.Cut(line, "\n")
			var got []string
			if !ok || json.Unmarshal([]byte(line), &got) != nil {
				t.Fatalf("no faults in the output:\n%s", out)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("as %s: at fault %q, want %q", alice.name, got, tc.want)
			}
		})
	}
}

package main

import (
	"os/exec"
	"runtime"
	"strings"
	"testing"
)

// TestVersion: "snaphook version" and "snaphook --version" print the module
// version and the Go version that the build recorded, as "go version -m"
// reads them from the binary.
func TestVersion(t *testing.T) {
	out, err := exec.Command("go", "version", "-m", binary).Output()
	if err != nil {
		t.Fatalf("go version -m: %v", err)
	}
	// "<binary>: go1.25.1", then "\tmod\tgithub.com/snaphooks/hooks\t(devel)\t".
	lines := strings.Split(string(out), "\n")
	_, goVersion, _ := strings.Cut(lines[0], ": ")
	modVersion := ""
	for _, l := range lines[1:] {
		if f := strings.Split(strings.TrimSpace(l), "\t"); len(f) >= 3 && f[0] == "mod" {
			modVersion = f[2]
		}
	}
	if goVersion == "" || modVersion == "" {
		t.Fatalf("go version -m printed no Go or module version:\n%s", out)
	}
	want := "snaphook " + modVersion + " " + goVersion + " " + runtime.GOOS + "/" + runtime.GOARCH + "\n"

	for _, args := range [][]string{{"version"}, {"--version"}, {"-version"}} {
		r := run(t, args...)
		if r.code != 0 || r.stdout != want || r.stderr != "" {
			t.Errorf("snaphook %s: exit code %d, stdout %q, stderr %q; want 0, %q, nothing", args[0], r.code, r.stdout, r.stderr, want)
		}
	}
	r := run(t, "version", "--help")
	if r.code != 0 || !strings.Contains(r.stdout, "Usage: snaphook version") {
		t.Errorf("snaphook version --help: exit code %d, stdout:\n%s", r.code, r.stdout)
	}
	r = run(t, "version", "extra")
	if r.code != exitUsage || !strings.Contains(r.stderr, `unexpected argument "extra"`) || r.stdout != "" {
		t.Errorf("snaphook version extra: exit code %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}

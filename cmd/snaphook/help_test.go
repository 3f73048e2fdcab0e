package main

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/snaphooks/hooks"
)

// update rewrites the golden help texts: go test -run TestHelpGolden -update
var update = flag.Bool("update", false, "rewrite the golden files in testdata/help")

// TestHelpGolden pins every help text: a change to one shows in review as a
// change to its golden file. Each command's help is the same whichever way
// it is asked for.
func TestHelpGolden(t *testing.T) {
	golden := func(t *testing.T, name, got string) {
		t.Helper()
		path := filepath.Join("testdata", "help", name+".golden")
		if *update {
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
				t.Fatal(err)
			}
			return
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run go test -run TestHelpGolden -update to write it)", err)
		}
		if got != string(want) {
			t.Errorf("help differs from %s (run go test -run TestHelpGolden -update if the change is meant):\ngot:\n%s\nwant:\n%s", path, got, want)
		}
	}
	t.Run("main", func(t *testing.T) {
		var first string
		for i, args := range [][]string{{"help"}, {"--help"}, {"-h"}, {"-help"}} {
			r := run(t, args...)
			if r.code != exitOK || r.stderr != "" {
				t.Fatalf("%v: exit code %d, stderr %q", args, r.code, r.stderr)
			}
			if i == 0 {
				first = r.stdout
				golden(t, "main", r.stdout)
			} else if r.stdout != first {
				t.Errorf("%v differs from help:\n%s", args, r.stdout)
			}
		}
	})
	for _, c := range commands {
		if c.hidden {
			continue
		}
		t.Run(c.name, func(t *testing.T) {
			r := run(t, "help", c.name)
			if r.code != exitOK || r.stderr != "" {
				t.Fatalf("help %s: exit code %d, stderr %q", c.name, r.code, r.stderr)
			}
			golden(t, c.name, r.stdout)
			for _, flag := range []string{"--help", "-h"} {
				if o := run(t, c.name, flag); o.code != exitOK || o.stdout != r.stdout {
					t.Errorf("%s %s: exit code %d, output differs from help %s:\n%s", c.name, flag, o.code, c.name, o.stdout)
				}
			}
		})
	}
}

// TestHelpListsEveryCommandAndHookType: the main help names every command
// that is not hidden and every hook type the library knows; the hidden
// holder command appears nowhere.
func TestHelpListsEveryCommandAndHookType(t *testing.T) {
	help := run(t, "help").stdout
	for _, c := range commands {
		if c.hidden {
			if strings.Contains(help, c.name) {
				t.Errorf("help shows the hidden command %q", c.name)
			}
			continue
		}
		if !strings.Contains(help, "\n  snaphook "+c.name) || !strings.Contains(help, "\n  "+c.name+" ") {
			t.Errorf("help lacks command %q:\n%s", c.name, help)
		}
	}
	for _, typ := range hooks.HookTypes() {
		if !strings.Contains(help, typ) {
			t.Errorf("help lacks hook type %q", typ)
		}
	}
	if r := run(t, "help", holderCommand); r.code != exitUsage {
		t.Errorf("help %s: exit code %d, want %d", holderCommand, r.code, exitUsage)
	}
}

// TestUnknownCommandListsTheCommands: both messages name the real commands.
func TestUnknownCommandListsTheCommands(t *testing.T) {
	want := "(want run, check, pre, post or version)"
	for _, args := range [][]string{{"snap"}, {"help", "snap"}} {
		r := run(t, args...)
		if r.code != exitUsage || !strings.Contains(r.stderr, want) {
			t.Errorf("%v: exit code %d, stderr %q, want it to contain %q", args, r.code, r.stderr, want)
		}
	}
}

// TestEveryFlagHasUsage: every flag of every command says what it does, so
// that its line in the help is not empty.
func TestEveryFlagHasUsage(t *testing.T) {
	for _, c := range commands {
		fset := flag.NewFlagSet(c.name, flag.ContinueOnError)
		c.setup(fset)
		fset.VisitAll(func(f *flag.Flag) {
			if strings.TrimSpace(f.Usage) == "" {
				t.Errorf("%s --%s has no usage text", c.name, f.Name)
			}
		})
	}
}

func TestWrap(t *testing.T) {
	got := wrap("one two three four five", 9)
	want := []string{"one two", "three", "four five"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("wrap: %q, want %q", got, want)
	}
	if got := wrap("", 9); len(got) != 1 || got[0] != "" {
		t.Errorf("wrap of nothing: %q", got)
	}
}

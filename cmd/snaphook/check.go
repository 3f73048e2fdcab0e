package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/snaphooks/hooks"
)

// checkAbout is the help of check between its usage and its flags.
const checkAbout = `Validates FILE as "snaphook run" reads it. If FILE is invalid, prints every
problem to stderr, one per line, with the hook number, the field and the line:
  hooks.yml: hook #2 (line 7): path: "bin/x" is not absolute
and exits with status 64.

Otherwise it lists the hooks (number, type, path or database, timeout,
err_is_fatal, post_on_pre_error, filesystems; never a password), then for
each --fs DATASET the hooks that "snaphook run --fs DATASET" would run, in
the order of their pre edges, and with several --fs the hooks that one run
with all of them would run, each once. With -r, each DATASET stands for
itself and every dataset below it, as for "snaphook run -r". On stderr it
warns about command hooks whose path is not an executable file on this
machine, and, if --fs was given, about hooks that match none of the
datasets.

With --fs, it also connects to the server of each database hook that the run
would run (as a dry run does), lists where the server keeps its files (data,
redo log or WAL, tablespaces, ...) and on which datasets, and warns on stderr
about each file the snapshot would miss ("the redo log (/srv/log) is on
tank/log, which this snapshot does not include") or whose dataset it cannot
tell.

`

// checkExits is the exit status section of check's help.
const checkExits = `Exit status:
  0   FILE is valid (warnings or not)
  64  FILE is invalid or unreadable, others could change it or a hook
      script it names, or bad usage
`

// setupCheck defines the flags of check.
func setupCheck(fset *flag.FlagSet) func([]string, streams) int {
	var c commonFlags
	c.register(fset, flagConfig, flagScope)
	return func(args []string, s streams) int { return checkCommand(&c, args, s) }
}

// checkCommand is the check command, after its flags.
func checkCommand(c *commonFlags, args []string, s streams) int {
	switch {
	case c.config == "":
		return usageError(s, "check", "missing -c FILE")
	case len(args) > 0:
		return usageError(s, "check", fmt.Sprintf("unexpected argument %q", args[0]))
	}
	var scope hooks.Scope
	if len(c.scope.fs) > 0 {
		var err error
		if scope, err = c.scope.scope(); err != nil {
			return usageError(s, "check", err.Error())
		}
	}
	cfg, list, ok := loadHooks(c.config, s)
	if !ok || !trustHooks("check", c.config, cfg, s) {
		return exitUsage
	}
	name := c.config
	if name == "-" {
		name = stdinName
	}
	listHooks(s, name, cfg, list)
	if len(scope.Datasets) == 0 {
		return exitOK
	}
	return listScopes(s, name, cfg, list, scope)
}

// listHooks prints the hooks of the config read from name, and warns on
// stderr about command hooks whose path is not an executable file here.
func listHooks(s streams, name string, cfg hooks.HookList, list hooks.List) {
	fmt.Fprintf(s.Stdout, "%s: %s\n", name, plural(len(list), "hook", "hooks"))
	if len(list) > 0 {
		tw := tabwriter.NewWriter(s.Stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "#\tTYPE\tHOOK\tTIMEOUT\tERR_IS_FATAL\tPOST_ON_PRE_ERROR\tFILESYSTEMS")
		for i, h := range list {
			c := cfg[i].WithDefaults()
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%t\t%t\t%s\n", i+1, c.Type, sanitize(describeHook(c, h)),
				c.Timeout, c.ErrIsFatal, c.PostOnPreError, sanitize(fmt.Sprint(h.Filesystems())))
		}
		tw.Flush()
	}
	for i, c := range cfg {
		if c.Type != hooks.TypeCommand {
			continue
		}
		if err := checkExecutable(c.Path); err != nil {
			fmt.Fprintf(s.Stderr, "warning: hook #%d: %s\n", i+1, sanitize(err.Error()))
		}
	}
}

// listScopes prints the hooks that run for each dataset of scope, and for
// all of them together, and warns about hooks that match none.
func listScopes(s streams, name string, cfg hooks.HookList, list hooks.List, scope hooks.Scope) int {
	fmt.Fprintln(s.Stdout)
	matched := make([]bool, len(list))
	tw := tabwriter.NewWriter(s.Stdout, 0, 0, 2, ' ', 0)
	runs := func(label string, sc hooks.Scope) bool {
		var nums []string
		for i, h := range list {
			hs, err := hooks.List{h}.CopyFilteredForScope(sc)
			if err != nil {
				fmt.Fprintf(s.Stderr, "%s: hook #%d: %v\n", name, i+1, err)
				return false
			}
			if len(hs) > 0 {
				matched[i] = true
				nums = append(nums, "#"+strconv.Itoa(i+1))
			}
		}
		what := "no hook"
		if len(nums) > 0 {
			what = strings.Join(nums, " ")
		}
		fmt.Fprintf(tw, "%s\truns %s\n", label, what)
		return true
	}
	suffix := ""
	if scope.Recursive {
		suffix = " (recursive)"
	}
	for _, d := range scope.Datasets {
		if !runs(d.ToString()+suffix, hooks.Scope{Datasets: []hooks.Dataset{d}, Recursive: scope.Recursive}) {
			return exitUsage
		}
	}
	if len(scope.Datasets) > 1 && !runs("all together"+suffix, scope) {
		return exitUsage
	}
	tw.Flush()
	for i, m := range matched {
		if !m {
			fmt.Fprintf(s.Stderr, "warning: hook #%d (%s) matches none of the datasets given with --fs\n", i+1, sanitize(describeHook(cfg[i], list[i])))
		}
	}
	checkCoverage(context.Background(), s, list, scope)
	return exitOK
}

// describeHook names a hook for the listing: the path of a command hook; for
// a database hook its name, which shows its target but never the password;
// for a freeze hook its name and how long it may keep them frozen.
func describeHook(c hooks.HookConfig, h hooks.Hook) string {
	if c.Type == hooks.TypeCommand {
		return c.Path
	}
	if f, ok := h.(interface{ MaxFreeze() time.Duration }); ok {
		return fmt.Sprintf("%s (max_freeze %s)", h, f.MaxFreeze())
	}
	return h.String()
}

// checkExecutable returns an error if path is not an executable regular file.
func checkExecutable(path string) error {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%s: no such file on this machine", path)
	case err != nil:
		return err
	case !fi.Mode().IsRegular():
		return fmt.Errorf("%s: not a regular file", path)
	case fi.Mode().Perm()&0o111 == 0:
		return fmt.Errorf("%s: not executable", path)
	}
	return nil
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}

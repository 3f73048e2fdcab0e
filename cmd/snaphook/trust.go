package main

import (
	"fmt"

	"github.com/snaphooks/hooks"
)

// trustHooks applies hooks.CheckTrust to the hook list at path and the
// executables of its command hooks before anything runs: it prints every
// path that someone other than root or the running user could change, with
// its owner, mode and fix, and returns false if there is one; the caller
// exits with exitUsage. It also warns if the list holds a DSN password and
// others can read it (hooks.CheckPasswordPrivacy). A list read from stdin
// (path "-") has no file to judge: only its executables are checked.
func trustHooks(cmd, path string, cfg hooks.HookList, s streams) bool {
	file := path
	if path == "-" {
		file = ""
	}
	if err := hooks.CheckPasswordPrivacy(file, cfg); err != nil {
		fmt.Fprintf(s.Stderr, "warning: %s\n", sanitize(err.Error()))
	}
	errs := hooks.CheckTrust(file, cfg)
	if len(errs) == 0 {
		return true
	}
	for _, err := range errs {
		fmt.Fprintf(s.Stderr, "snaphook %s: untrusted: %s\n", cmd, sanitize(err.Error()))
	}
	name := path
	if path == "-" {
		name = stdinName
	}
	fmt.Fprintf(s.Stderr, "snaphook %s: refusing to run the hooks of %s: only root and the user snaphook runs as may be able to change them\n", cmd, sanitize(name))
	return false
}

// warnUntrustedCommand warns about each path on the way to the snapshot
// command cmdPath that someone other than root or the running user could
// change. It does not refuse: the command comes from the caller's own
// command line.
func warnUntrustedCommand(cmdPath string, s streams) {
	for _, err := range hooks.CheckFileTrust(cmdPath) {
		fmt.Fprintf(s.Stderr, "warning: snapshot command: %s\n", sanitize(err.Error()))
	}
}

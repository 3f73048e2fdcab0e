package main

import (
	"fmt"
	"io"
	"os"

	"github.com/snaphooks/hooks"
)

// stdinName stands for the config file when it is read from stdin ("-c -").
const stdinName = "<stdin>"

// loadHooks reads the hook list at path, or stdin if path is "-", parses it
// with hooks.ParseHookList and builds it with hooks.ListFromConfig. On error
// it prints every problem on a line of its own to stderr, prefixed with the
// file name ("hooks.yml: hook #2 (line 7): path: ..."), and returns false.
func loadHooks(path string, s streams) (hooks.HookList, hooks.List, bool) {
	name, data, ok := readHooks(path, s)
	if !ok {
		return nil, nil, false
	}
	return parseHooks(name, data, s)
}

// readHooks reads the hook list at path, or stdin if path is "-", and returns
// the name to show for it. It reads at most hooks.MaxHookListSize+1 bytes,
// so a file or stdin that does not end (-c /dev/zero) stops at the bound;
// parseHooks rejects what is over it. On error it prints it and returns
// false.
func readHooks(path string, s streams) (name string, data []byte, ok bool) {
	name = path
	r := s.Stdin
	if path == "-" {
		name = stdinName
	} else {
		f, err := os.Open(path)
		if err != nil {
			fmt.Fprintf(s.Stderr, "%s: %v\n", name, err)
			return name, nil, false
		}
		defer f.Close()
		r = f
	}
	data, err := io.ReadAll(io.LimitReader(r, hooks.MaxHookListSize+1))
	if err != nil {
		fmt.Fprintf(s.Stderr, "%s: %v\n", name, err)
		return name, nil, false
	}
	return name, data, true
}

// parseHooks parses and builds the hook list data read from name, printing
// every problem as loadHooks does.
func parseHooks(name string, data []byte, s streams) (hooks.HookList, hooks.List, bool) {
	cfg, err := hooks.ParseHookList(data)
	if err != nil {
		for _, e := range splitErrors(err) {
			fmt.Fprintf(s.Stderr, "%s: %v\n", name, e)
		}
		return nil, nil, false
	}
	list, err := hooks.ListFromConfig(&cfg)
	if err != nil {
		fmt.Fprintf(s.Stderr, "%s: %v\n", name, err)
		return nil, nil, false
	}
	return cfg, *list, true
}

// splitErrors returns the errors joined in err (by errors.Join), or err alone.
func splitErrors(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

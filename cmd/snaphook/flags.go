package main

// The flags: those several commands share, registered by one helper, and
// the rendering of a command's flags in its help, from its FlagSet.

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
)

// sharedFlag names a flag, or a group of flags, that several commands take.
type sharedFlag int

const (
	flagConfig   sharedFlag = iota // -c, --config FILE
	flagScope                      // --fs DATASET (repeatable), -r, --recursive
	flagJSON                       // --json
	flagLogLevel                   // --log-level LEVEL
	flagQuiet                      // -q, --quiet
)

// commonFlags holds the values of the shared flags. A command registers the
// ones it takes with one call of register.
type commonFlags struct {
	config   string
	scope    scopeFlags
	json     bool
	logLevel string
	quiet    bool
}

// register defines the shared flags in which on fset, each with its usage
// text.
func (c *commonFlags) register(fset *flag.FlagSet, which ...sharedFlag) {
	for _, f := range which {
		switch f {
		case flagConfig:
			usage := "read the hook list from `FILE`: YAML, as the \"hooks:\" of a zrepl job; \"-\" reads it from stdin"
			fset.StringVar(&c.config, "c", "", usage)
			fset.StringVar(&c.config, "config", "", usage)
		case flagScope:
			c.scope.register(fset)
		case flagJSON:
			fset.BoolVar(&c.json, "json", false, "print the report as a JSON object instead of text")
		case flagLogLevel:
			fset.StringVar(&c.logLevel, "log-level", "info", "log records of `LEVEL` and above: debug, info, warn or error")
		case flagQuiet:
			usage := "print nothing if all went well; else, at the end, what would have been printed"
			fset.BoolVar(&c.quiet, "q", false, usage)
			fset.BoolVar(&c.quiet, "quiet", false, usage)
		}
	}
}

// level returns the --log-level as a slog.Level, or an error that says
// what is wrong with it.
func (c *commonFlags) level() (slog.Level, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.logLevel)); err != nil {
		return 0, fmt.Errorf("--log-level: %q is not one of debug, info, warn, error", c.logLevel)
	}
	return level, nil
}

// parseFlags parses args with fset, which must have been created with
// flag.ContinueOnError. It returns done=true with the exit code if the
// command is over: after printing the help of cmd (exit 0) or a usage error
// (64).
func parseFlags(cmd *command, fset *flag.FlagSet, args []string, s streams) (code int, done bool) {
	fset.SetOutput(io.Discard) // the errors are printed below, the help by us
	fset.Usage = func() {}
	err := fset.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(s.Stdout, cmd.help())
		return exitOK, true
	}
	if err != nil {
		return usageError(s, fset.Name(), err.Error()), true
	}
	return 0, false
}

// helpWidth is the width the help text is wrapped to.
const helpWidth = 78

// writeFlagHelp writes the flags of fset as a help section: one entry per
// flag, a short and a long name that share one variable together
// ("-c, --config FILE"), in the order of their names, each with its usage
// text wrapped beside it, and "-h, --help" last. A default that is not the
// zero value is added as "(default ...)".
func writeFlagHelp(w io.Writer, fset *flag.FlagSet) {
	type entry struct {
		names []string
		fl    *flag.Flag
	}
	var entries []*entry
	byValue := map[flag.Value]*entry{}
	fset.VisitAll(func(f *flag.Flag) {
		if e, ok := byValue[f.Value]; ok {
			e.names = append(e.names, f.Name)
			return
		}
		e := &entry{names: []string{f.Name}, fl: f}
		byValue[f.Value] = e
		entries = append(entries, e)
	})
	var lefts, usages []string
	for _, e := range entries {
		sort.Slice(e.names, func(i, j int) bool { return len(e.names[i]) < len(e.names[j]) })
		dashed := make([]string, len(e.names))
		for i, n := range e.names {
			dashed[i] = "--" + n
			if len(n) == 1 {
				dashed[i] = "-" + n
			}
		}
		placeholder, usage := flag.UnquoteUsage(e.fl)
		left := strings.Join(dashed, ", ")
		if placeholder != "" {
			left += " " + placeholder
		}
		if d := e.fl.DefValue; d != "" && d != "false" && d != "0" && d != "0s" && d != "[]" {
			usage += fmt.Sprintf(" (default %s)", d)
		}
		lefts, usages = append(lefts, left), append(usages, usage)
	}
	lefts, usages = append(lefts, "-h, --help"), append(usages, "show this help")
	col := 0
	for _, l := range lefts {
		col = max(col, len(l))
	}
	col += 4 // two spaces of indent, two between the columns
	for i, l := range lefts {
		lines := wrap(usages[i], helpWidth-col)
		fmt.Fprintf(w, "  %-*s  %s\n", col-4, l, lines[0])
		for _, line := range lines[1:] {
			fmt.Fprintf(w, "%*s%s\n", col, "", line)
		}
	}
}

// wrap splits text into lines of at most width runes, at spaces; a word
// longer than width gets a line of its own.
func wrap(text string, width int) []string {
	var lines []string
	line := ""
	for _, word := range strings.Fields(text) {
		switch {
		case line == "":
			line = word
		case len([]rune(line))+1+len([]rune(word)) <= width:
			line += " " + word
		default:
			lines = append(lines, line)
			line = word
		}
	}
	return append(lines, line)
}

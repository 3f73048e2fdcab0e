package main

// The commands of snaphook, in one table that drives dispatch, "snaphook
// help", "snaphook help CMD" and "snaphook CMD --help".

import (
	"flag"
	"fmt"
	"strings"

	"github.com/snaphooks/hooks"
)

// command is one command of snaphook.
type command struct {
	name string
	// synopsis are its usage lines, each after "snaphook ".
	synopsis []string
	// summary says in one line what it does, for the list of commands.
	summary string
	// about is its help between the usage and the flags; after comes
	// after the flags (e.g. the signals); exits is its "Exit status:"
	// section.
	about, after, exits string
	// setup defines the command's flags on fset, with their usage texts,
	// and returns the function that runs the command with the arguments
	// left after the flags.
	setup func(fset *flag.FlagSet) func(args []string, s streams) int
	// raw commands get their arguments unparsed, and no help.
	raw    bool
	hidden bool
}

// commands are the commands of snaphook, in the order of the help.
var commands = []*command{
	{
		name:     "run",
		synopsis: []string{"run -c FILE --fs DATASET [--fs DATASET]... [-r] [flags] -- CMD [ARGS...]"},
		summary:  "run the hooks of FILE that match DATASET around CMD",
		about:    runAbout, after: runSignals, exits: exitCodesHelp,
		setup: setupRun,
	},
	{
		name:     "check",
		synopsis: []string{"check -c FILE [--fs DATASET]... [-r]"},
		summary:  "validate FILE, list its hooks and which of them run for each DATASET",
		about:    checkAbout, exits: checkExits,
		setup: setupCheck,
	},
	{
		name:     "pre",
		synopsis: []string{"pre -c FILE [--fs DATASET]... [-r] [flags]"},
		summary:  "run the pre edges and leave a holder that keeps the hooks' locks",
		about:    preAbout, exits: preExits,
		setup: setupPre,
	},
	{
		name:     "post",
		synopsis: []string{"post [--fs DATASET]... [-r] [flags]"},
		summary:  "have that holder run the post edges (for sanoid, zfs-autobackup)",
		about:    postAbout, exits: postExits,
		setup: setupPost,
	},
	{
		name:     "version",
		synopsis: []string{"version", "--version"},
		summary:  "print the version of snaphook and of Go it was built with",
		about:    versionAbout,
		setup:    setupVersion,
	},
	{
		name:   holderCommand,
		raw:    true,
		hidden: true,
		setup: func(*flag.FlagSet) func([]string, streams) int {
			return func(_ []string, s streams) int { return runHolder(s) }
		},
	},
}

// lookupCommand returns the command called name, or nil.
func lookupCommand(name string) *command {
	for _, c := range commands {
		if c.name == name {
			return c
		}
	}
	return nil
}

// commandNames lists the commands that are not hidden: "run, check, pre,
// post or version".
func commandNames() string {
	var names []string
	for _, c := range commands {
		if !c.hidden {
			names = append(names, c.name)
		}
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

// exec parses the command's flags from args and runs it.
func (c *command) exec(args []string, s streams) int {
	fset := flag.NewFlagSet(c.name, flag.ContinueOnError)
	run := c.setup(fset)
	if c.raw {
		return run(args, s)
	}
	if code, done := parseFlags(c, fset, args, s); done {
		return code
	}
	return run(fset.Args(), s)
}

// help is the command's help text: its usage, what it does, its flags as
// its FlagSet defines them, and its exit status.
func (c *command) help() string {
	var b strings.Builder
	for i, line := range c.synopsis {
		prefix := "Usage: "
		if i > 0 {
			prefix = "       "
		}
		fmt.Fprintf(&b, "%ssnaphook %s\n", prefix, line)
	}
	b.WriteString("\n" + strings.TrimRight(c.about, "\n") + "\n")
	fset := flag.NewFlagSet(c.name, flag.ContinueOnError)
	c.setup(fset)
	b.WriteString("\nFlags:\n")
	writeFlagHelp(&b, fset)
	for _, section := range []string{c.after, c.exits} {
		if section != "" {
			b.WriteString("\n" + strings.TrimRight(section, "\n") + "\n")
		}
	}
	return b.String()
}

// mainHelp is the help of snaphook: the commands, the hook types the
// library knows, the exit codes.
func mainHelp() string {
	var b strings.Builder
	b.WriteString(`snaphook runs pre- and post-snapshot hooks around a snapshot command.
The hooks are configured as in zrepl and get zrepl's environment variables.

Usage:
`)
	width := 0
	for _, c := range commands {
		if !c.hidden {
			width = max(width, len(c.name))
		}
	}
	for _, c := range commands {
		if !c.hidden {
			fmt.Fprintf(&b, "  snaphook %s\n", c.synopsis[0])
		}
	}
	b.WriteString("  snaphook help [COMMAND]\n\nCommands:\n")
	for _, c := range commands {
		if !c.hidden {
			fmt.Fprintf(&b, "  %-*s  %s\n", width, c.name, c.summary)
		}
	}
	types := strings.Join(hooks.HookTypes(), ", ")
	fmt.Fprintf(&b, "\nHook types (the \"type\" of a hook in FILE):\n")
	for _, line := range wrap(types, helpWidth-2) {
		fmt.Fprintf(&b, "  %s\n", line)
	}
	b.WriteString("\nRun 'snaphook help COMMAND' or 'snaphook COMMAND --help' for the flags of a\ncommand.\n\n")
	b.WriteString(exitCodesHelp)
	return b.String()
}

// helpCommand is "snaphook help [COMMAND]".
func helpCommand(args []string, s streams) int {
	if len(args) == 0 {
		fmt.Fprint(s.Stdout, mainHelp())
		return exitOK
	}
	c := lookupCommand(args[0])
	if c == nil || c.hidden {
		fmt.Fprintf(s.Stderr, "snaphook help: unknown command %q (want %s)\n", args[0], commandNames())
		return exitUsage
	}
	fmt.Fprint(s.Stdout, c.help())
	return exitOK
}

package main

import (
	"flag"
	"fmt"
	"runtime"
	"runtime/debug"
)

// versionAbout is the help of version.
const versionAbout = `Prints the version of snaphook (of the module github.com/snaphooks/hooks it
was built from: a release tag such as v1.2.0 for "go install ...@v1.2.0", a
pseudo-version for a build from a git checkout, "(devel)" when Go recorded
none), the Go version it was built with, and the platform, on one line:
  snaphook v1.2.0 go1.25.1 linux/amd64
`

// setupVersion defines the flags of version: none.
func setupVersion(*flag.FlagSet) func([]string, streams) int { return versionCommand }

// versionCommand prints the version line; it takes no arguments.
func versionCommand(args []string, s streams) int {
	if len(args) > 0 {
		return usageError(s, "version", fmt.Sprintf("unexpected argument %q", args[0]))
	}
	fmt.Fprintln(s.Stdout, versionLine())
	return exitOK
}

// versionLine is "snaphook VERSION GOVERSION GOOS/GOARCH", with the version
// of the main module as the build recorded it.
func versionLine() string {
	version, goVersion := "(devel)", runtime.Version()
	if info, ok := debug.ReadBuildInfo(); ok {
		if info.Main.Version != "" {
			version = info.Main.Version
		}
		if info.GoVersion != "" {
			goVersion = info.GoVersion
		}
	}
	return fmt.Sprintf("snaphook %s %s %s/%s", version, goVersion, runtime.GOOS, runtime.GOARCH)
}

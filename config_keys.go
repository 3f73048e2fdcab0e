package hooks

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// hookType is one entry of hookTypeTable: a hook type and how a valid
// configuration of it, with its defaults applied, becomes a Hook.
type hookType struct {
	name  string
	build func(HookConfig) (Hook, error)
}

// hookTypeTable lists the hook types in the order HookTypes and the error
// messages name them. A new hook type is one entry here, plus the hook types
// of hookKeyTable that take or require its keys.
var hookTypeTable = []hookType{
	{TypeCommand, builder(buildCommandHook)},
	{TypePostgresCheckpoint, builder(newPgChkptHook)},
	{TypeMySQLLockTables, builder(newMySQLLockTables)},
	{TypeMariaDBBackupStage, builder(newMariaDBBackupStage)},
	{TypeFSFreeze, builder(newFSFreezeHook)},
	{TypeQEMUGuestAgent, builder(newQGAFreezeHook)},
}

// builder turns the constructor of a hook type into a hookType.build that
// returns a nil Hook, not a typed nil, on error.
func builder[H Hook](build func(HookConfig) (H, error)) func(HookConfig) (Hook, error) {
	return func(c HookConfig) (Hook, error) {
		h, err := build(c)
		if err != nil {
			return nil, err
		}
		return h, nil
	}
}

// HookTypes returns the known hook types, as written in the "type" key of a
// hook's configuration: TypeCommand, TypePostgresCheckpoint,
// TypeMySQLLockTables, TypeMariaDBBackupStage and any added later. The slice
// is the caller's.
func HookTypes() []string {
	names := make([]string, len(hookTypeTable))
	for i, t := range hookTypeTable {
		names[i] = t.name
	}
	return names
}

// lookupHookType returns the entry of hookTypeTable named name.
func lookupHookType(name string) (hookType, bool) {
	for _, t := range hookTypeTable {
		if t.name == name {
			return t, true
		}
	}
	return hookType{}, false
}

// hookKey is one entry of hookKeyTable: a key of a hook's configuration.
type hookKey struct {
	name string // the YAML key
	// types are the hook types that take the key; nil: every type.
	types []string
	// required are the hook types that must set the key.
	required []string
	// decode stores the YAML value v of the key in c, or reports with d.fail
	// why it cannot.
	decode func(d *hookDecoder, key string, v *yaml.Node, c *HookConfig)
	// check appends to ps what is wrong with the key's value in c, whether
	// c was parsed or built in Go; nil if nothing can be. It runs for every
	// hook type: k.takes, k.requires and k.misplaced say what applies.
	check func(k hookKey, c HookConfig, ps *problems)
}

// hookKeyTable lists the keys of a hook in the order their values are
// checked (the order of HookConfig's fields). A new key is one entry here
// plus its field of HookConfig. The decoders for the kinds of value a key
// may have are stringValue, boolValue, durationValue, stringsValue (a list
// of strings) and enumValue; absPathProblem checks an absolute path. The
// keys of the freeze hooks show each kind: mountpoints (a list of absolute
// paths, checked by checkMountpoints, which hookKey.applies starts),
// max_freeze (a duration) and socket (an absolute path).
var hookKeyTable = []hookKey{
	{name: "type",
		decode: stringValue(func(c *HookConfig) *string { return &c.Type }),
		check:  checkType},
	{name: "err_is_fatal",
		decode: boolValue(func(c *HookConfig) *bool { return &c.ErrIsFatal })},
	{name: "timeout",
		decode: durationValue(func(c *HookConfig) *time.Duration { return &c.Timeout }),
		check:  checkTimeout},
	{name: "filesystems", required: quiescingTypes,
		decode: decodeFilesystems,
		check:  checkFilesystems},
	{name: "post_on_pre_error",
		decode: boolValue(func(c *HookConfig) *bool { return &c.PostOnPreError })},
	{name: "path", types: []string{TypeCommand}, required: []string{TypeCommand},
		decode: stringValue(func(c *HookConfig) *string { return &c.Path }),
		check:  checkPath},
	{name: "dsn", types: databaseTypes, required: databaseTypes,
		decode: stringValue(func(c *HookConfig) *string { return &c.DSN }),
		check:  checkDSN},
	{name: "skip_exit_code", types: []string{TypeCommand},
		decode: decodeSkipExitCode,
		check:  checkSkipExitCode},
	{name: "coverage", types: databaseTypes,
		decode: enumValue(func(c *HookConfig) *string { return &c.Coverage }, coverageModes...),
		check:  checkCoverage},
	{name: "mountpoints", types: freezeTypes, required: []string{TypeFSFreeze},
		decode: stringsValue(func(c *HookConfig) *[]string { return &c.Mountpoints }),
		check:  checkMountpoints},
	{name: "max_freeze", types: freezeTypes,
		decode: durationValue(func(c *HookConfig) *time.Duration { return &c.MaxFreeze }),
		check:  checkMaxFreeze},
	{name: "socket", types: []string{TypeQEMUGuestAgent}, required: []string{TypeQEMUGuestAgent},
		decode: stringValue(func(c *HookConfig) *string { return &c.Socket }),
		check:  checkSocket},
}

// coverageModes are the values of the key coverage.
var coverageModes = []string{CoverageWarn, CoverageStrict, CoverageOff}

// databaseTypes are the hook types that talk to a database server.
var databaseTypes = []string{TypePostgresCheckpoint, TypeMySQLLockTables, TypeMariaDBBackupStage}

// freezeTypes are the hook types that freeze filesystems.
var freezeTypes = []string{TypeFSFreeze, TypeQEMUGuestAgent}

// quiescingTypes are the hook types that must say which datasets they
// quiesce (filesystems): the database and freeze hooks.
var quiescingTypes = slices.Concat(databaseTypes, freezeTypes)

// lookupHookKey returns the entry of hookKeyTable named name.
func lookupHookKey(name string) (hookKey, bool) {
	for _, k := range hookKeyTable {
		if k.name == name {
			return k, true
		}
	}
	return hookKey{}, false
}

// hookKeyNames lists the keys of a hook for error messages.
func hookKeyNames() string {
	names := make([]string, len(hookKeyTable))
	for i, k := range hookKeyTable {
		names[i] = k.name
	}
	return strings.Join(names, ", ")
}

// takes reports whether a hook of type typ takes the key.
func (k hookKey) takes(typ string) bool { return k.types == nil || slices.Contains(k.types, typ) }

// requires reports whether a hook of type typ must set the key.
func (k hookKey) requires(typ string) bool { return slices.Contains(k.required, typ) }

// misplaced reports whether typ is a known hook type that does not take the
// key. An unknown type is reported as such, not at each of its keys.
func (k hookKey) misplaced(typ string) bool {
	_, known := lookupHookType(typ)
	return known && !k.takes(typ)
}

// applies is the part of a key's check that every key with types or
// required can share: it reports whether the value of the key, which is set
// or not, is to be checked further, and appends what it found: "not allowed
// for a T hook" for a key set on a known type that does not take it,
// "required for a T hook" for a key missing on a type that requires it.
// The value of an unknown type is not checked.
func (k hookKey) applies(typ string, set bool, ps *problems) bool {
	switch {
	case k.misplaced(typ):
		if set {
			ps.add(k.name, "not allowed for a %s hook", typ)
		}
		return false
	case !k.takes(typ): // an unknown type, reported at the key type
		return false
	case !set:
		if k.requires(typ) {
			ps.add(k.name, "required for a %s hook", typ)
		}
		return false
	}
	return true
}

// problem is one finding of HookConfig.problems.
type problem struct {
	field   string // YAML key
	pattern string // for field "filesystems": the pattern at fault, if any
	err     error
}

// problems collects the findings of HookConfig.problems.
type problems []problem

// add appends a problem of field.
func (ps *problems) add(field, format string, args ...any) {
	*ps = append(*ps, problem{field: field, err: fmt.Errorf(format, args...)})
}

// problems returns everything that is wrong with c, in the order of
// hookKeyTable; for Filesystems, the patterns in sorted order.
func (c HookConfig) problems() []problem {
	var ps problems
	for _, k := range hookKeyTable {
		if k.check != nil {
			k.check(k, c, &ps)
		}
	}
	return ps
}

// hookTypeNames lists the known types for error messages:
// "a", "b" or "c".
func hookTypeNames() string {
	var b strings.Builder
	for i, t := range hookTypeTable {
		switch {
		case i == 0:
		case i == len(hookTypeTable)-1:
			b.WriteString(" or ")
		default:
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%q", t.name)
	}
	return b.String()
}

func checkType(k hookKey, c HookConfig, ps *problems) {
	if _, known := lookupHookType(c.Type); known {
		return
	}
	if c.Type == "" {
		ps.add(k.name, "missing (want %s)", hookTypeNames())
		return
	}
	ps.add(k.name, "unknown hook type %q (want %s)", c.Type, hookTypeNames())
}

func checkTimeout(k hookKey, c HookConfig, ps *problems) {
	switch {
	case c.Timeout < 0:
		ps.add(k.name, "%v is negative", c.Timeout)
	case c.Timeout > MaxHookTimeout:
		ps.add(k.name, "%v is longer than the maximum of %v", c.Timeout, MaxHookTimeout)
	}
}

func checkFilesystems(k hookKey, c HookConfig, ps *problems) {
	if k.requires(c.Type) && len(c.Filesystems) == 0 {
		what := "the database quiesced"
		if slices.Contains(freezeTypes, c.Type) {
			what = "the filesystems frozen"
		}
		ps.add(k.name, "required for a %s hook: list the datasets whose snapshots need %s", c.Type, what)
	}
	for _, pattern := range sortedPatterns(c.Filesystems) {
		if _, _, err := parseFilterPattern(pattern); err != nil {
			*ps = append(*ps, problem{field: k.name, pattern: pattern, err: err})
		}
	}
}

func checkPath(k hookKey, c HookConfig, ps *problems) {
	if !k.applies(c.Type, c.Path != "", ps) {
		return
	}
	if err := absPathProblem(c.Path); err != nil {
		ps.add(k.name, "%w", err)
	}
}

// absPathProblem returns what makes p no absolute path, or nil.
func absPathProblem(p string) error {
	switch {
	case strings.IndexByte(p, 0) >= 0:
		return errors.New("contains a NUL byte")
	case !filepath.IsAbs(p):
		return fmt.Errorf("%q is not absolute", p)
	}
	return nil
}

func checkDSN(k hookKey, c HookConfig, ps *problems) {
	if !k.applies(c.Type, c.DSN != "", ps) {
		return
	}
	if _, err := dsnTarget(c.Type, c.DSN); err != nil {
		*ps = append(*ps, problem{field: k.name, err: err})
	}
}

func checkSkipExitCode(k hookKey, c HookConfig, ps *problems) {
	switch {
	case c.SkipExitCode == 0:
	case c.SkipExitCode < 1 || c.SkipExitCode > 255:
		ps.add(k.name, "%d is not an exit status from 1 to 255", c.SkipExitCode)
	case !k.takes(c.Type) && c.Type != "":
		ps.add(k.name, "not allowed for a %s hook (only for command hooks)", c.Type)
	}
}

func checkCoverage(k hookKey, c HookConfig, ps *problems) {
	if !k.applies(c.Type, c.Coverage != "", ps) {
		return
	}
	if !slices.Contains(coverageModes, c.Coverage) {
		ps.add(k.name, "%q is not warn, strict or off", c.Coverage)
	}
}

func checkMountpoints(k hookKey, c HookConfig, ps *problems) {
	if !k.applies(c.Type, len(c.Mountpoints) > 0, ps) {
		return // not allowed, required, or an unknown type
	}
	seen := make(map[string]int, len(c.Mountpoints))
	for i, p := range c.Mountpoints {
		if err := absPathProblem(p); err != nil {
			ps.add(k.name, "item %d: %w", i+1, err)
			continue
		}
		clean := filepath.Clean(p)
		if first, dup := seen[clean]; dup {
			ps.add(k.name, "item %d: %q is item %d again", i+1, p, first)
			continue
		}
		seen[clean] = i + 1
	}
}

func checkMaxFreeze(k hookKey, c HookConfig, ps *problems) {
	if !k.applies(c.Type, c.MaxFreeze != 0, ps) {
		return
	}
	switch {
	case c.MaxFreeze < 0:
		ps.add(k.name, "%v is negative", c.MaxFreeze)
	case c.MaxFreeze > MaxMaxFreeze:
		ps.add(k.name, "%v is longer than the maximum of %v: every writer of a frozen filesystem waits that long", c.MaxFreeze, MaxMaxFreeze)
	}
}

func checkSocket(k hookKey, c HookConfig, ps *problems) {
	if !k.applies(c.Type, c.Socket != "", ps) {
		return
	}
	if err := absPathProblem(c.Socket); err != nil {
		ps.add(k.name, "%w", err)
	}
}
